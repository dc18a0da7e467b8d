"""The named quantization settings and calibration methods `QuantConfig` accepts
(`compression.config.steps` re-exports both)."""

from __future__ import annotations

from typing import Any

# Named quantization settings: `QuantConfig.preset(name)` and the CLI's `--preset` choices
# (in this order) read this one table.
QUANT_PRESETS: dict[str, dict[str, Any]] = {
    "static": {"mode": "static", "per_channel": True},
    "static-int4-embeddings": {"mode": "static", "per_channel": True, "embedding_bits": 4},
    "static-float-outputs": {"mode": "static", "per_channel": True, "float_outputs": True},
    "static-float-outputs-int4-embeddings": {"mode": "static", "per_channel": True,
                                             "float_outputs": True, "embedding_bits": 4},
    "dynamic": {"mode": "dynamic", "per_channel": False},
    "dynamic-per-channel": {"mode": "dynamic", "per_channel": True},
    "weight-only-int8": {"mode": "weight-only", "bits": 8},
    "weight-only-int4": {"mode": "weight-only", "bits": 4},
}
CALIBRATIONS = ("minmax", "entropy", "percentile")
