"""Tokenize and feed for evaluation, benchmarks and calibration: the service's own encoder
(`inference.TextEncoder`), so that what is measured offline is what is served."""

from __future__ import annotations

from inference import TextEncoder

# The name the compression steps have used for it.
BatchEncoder = TextEncoder

__all__ = ["BatchEncoder", "TextEncoder"]
