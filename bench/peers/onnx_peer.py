"""What every peer serves: a registry version's model.onnx in onnxruntime, with the session
options of the service (`inference.open_session`: the same intra-op threads, one inter-op
thread, every graph optimisation, threads that sleep between runs) and its tokenizer.json
through `tokenizers`; a batch of texts in, each text's label and probabilities out.

The plain code a user of a serving framework writes: a batch is padded to its longest text
(the service also sorts a batch into length groups, which the peers do not)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from inference import TextEncoder, open_session  # noqa: E402
from registry import Manifest  # noqa: E402


class OnnxTextClassifier:
    def __init__(self, version_dir: Path | str, threads: int) -> None:
        version_dir = Path(version_dir)
        manifest = Manifest.read(version_dir)
        self.session = open_session(version_dir / manifest.model_file, "cpu", threads)
        inputs = {i.name for i in self.session.get_inputs()}
        self.encoder = TextEncoder(version_dir / manifest.tokenizer_file, manifest.max_length,
                                   inputs)
        self.labels = list(manifest.labels)

    def __call__(self, texts: list[str]) -> list[dict]:
        logits = self.session.run(None, self.encoder(texts))[0]
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
        return [{"label": self.labels[int(p.argmax())], "score": float(p.max()),
                 "scores": dict(zip(self.labels, p.tolist(), strict=True))}
                for p in probabilities]


def parse_args(description: str) -> argparse.Namespace:
    """The flags every peer script takes; the batching ones default to the service's own
    (APP_MAX_BATCH_SIZE=32, APP_MAX_WAIT_MS=2)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model-dir", required=True, help="a registry version's folder")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=2,
                        help="onnxruntime intra-op threads, per worker")
    parser.add_argument("--workers", type=int, default=1, help="processes holding the model")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    return parser.parse_args()
