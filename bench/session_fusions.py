"""What leaving SkipLayerNormalization unfused buys: every shipped version (or the given
model files), onnxruntime's default fusions against the service's CPU session
(`inference.open_session`, which disables `inference.session.CPU_UNFUSED`), interleaved.

    python bench/session_fusions.py                  # every version models/routes.json routes
    python bench/session_fusions.py a.onnx b.onnx    # these files

Prints, per model and shape (batch x tokens, random in-vocabulary ids), the median
milliseconds a call of each session over interleaved rounds, the ratio (service / default:
below 1 is faster) and how many argmax answers agree. One intra-op thread, as the service
runs each batch.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.session import CPU, open_session, session_options  # noqa: E402
from registry import RoutingTable  # noqa: E402

SHAPES = ((1, 20), (1, 160), (32, 24))
ROUNDS = 9


def routed_models(registry: Path) -> list[Path]:
    """The model file of each name's most-routed version."""
    files = []
    for name, weights in RoutingTable.read(registry).routes.items():
        version = max(weights.items(), key=lambda kv: kv[1])[0]
        files.append(registry / name / version / "model.onnx")
    return files


def _feed(session: ort.InferenceSession, batch: int, tokens: int,
          rng: np.random.Generator) -> dict[str, np.ndarray]:
    # Ids low enough for any cut vocabulary the registry holds (the smallest keeps ~4.7k).
    shape = (batch, tokens)
    values = {"input_ids": rng.integers(1000, 4000, shape), "attention_mask": np.ones(shape),
              "token_type_ids": np.zeros(shape)}
    return {i.name: values[i.name].astype(np.int64) for i in session.get_inputs()}


def _median_ms(session: ort.InferenceSession, feed: dict[str, np.ndarray], calls: int) -> float:
    session.run(None, feed)
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feed)
    return (time.perf_counter() - start) / calls * 1e3


def compare(model_file: Path, rng: np.random.Generator) -> list[str]:
    """One line per shape: default vs service session, interleaved rounds."""
    default = ort.InferenceSession(str(model_file), sess_options=session_options(1),
                                   providers=[CPU])
    service = open_session(model_file, "cpu", 1)
    lines = []
    for batch, tokens in SHAPES:
        feed = _feed(default, batch, tokens, rng)
        agree = float(np.mean(default.run(None, feed)[0].argmax(-1)
                              == service.run(None, feed)[0].argmax(-1)))
        calls = max(3, 4000 // (batch * tokens))
        times: dict[str, list[float]] = {"default": [], "service": []}
        for _ in range(ROUNDS):
            times["default"].append(_median_ms(default, feed, calls))
            times["service"].append(_median_ms(service, feed, calls))
        d, s = (float(np.median(times[k])) for k in ("default", "service"))
        lines.append(f"| {model_file.parent.parent.name}/{model_file.parent.name} | "
                     f"{batch} x {tokens} | {d:.3f} | {s:.3f} | {s / d:.2f} | "
                     f"{100 * agree:.1f} % |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="model.onnx files")
    args = parser.parse_args()
    files = args.models or routed_models(ROOT / "models")
    print(f"{platform.processor() or platform.machine()}, onnxruntime {ort.__version__}, "
          f"1 intra-op thread, {ROUNDS} interleaved rounds")
    print("| model | batch x tokens | default ms | service ms | ratio | same argmax |")
    print("| --- | --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for model_file in files:
        for line in compare(model_file, rng):
            print(line, flush=True)


if __name__ == "__main__":
    main()
