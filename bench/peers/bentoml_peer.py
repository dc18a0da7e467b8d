"""The shipped model behind BentoML, with BentoML's adaptive batching.

    python bench/peers/bentoml_peer.py --model-dir models/sst2-sentiment/8 --port 8003

POST /predict {"text": ["..."]} -> [{"label": ..., "score": ..., "scores": {...}}] (a batchable
BentoML API takes and answers a list; one sentence per request here); GET /readyz is 200 once
the service has loaded the model. --workers worker processes (1: the service's one model
copy; BentoML's `workers="cpu_count"` is one per core), each with its own onnxruntime
session of --threads threads and its own batching. Requests are merged into batches of up to
--max-batch-size by BentoML's adaptive dispatcher, which chooses how long to wait from the
latencies it measures (there is no fixed wait to set); `max_latency_ms` only sheds a request
(503) that could not be answered within it, and is set to wrk's 10 s time-out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bentoml
from onnx_peer import OnnxTextClassifier, parse_args

MAX_BATCH_SIZE = int(os.environ.get("PEER_MAX_BATCH_SIZE", "32"))
WORKERS = int(os.environ.get("PEER_WORKERS", "1"))


@bentoml.service(workers=WORKERS, traffic={"timeout": 10},
                  logging={"access": {"enabled": False}})  # as the service: no access log
class TextClassifier:
    def __init__(self) -> None:
        self.model = OnnxTextClassifier(os.environ["PEER_MODEL_DIR"],
                                        int(os.environ["PEER_THREADS"]))

    @bentoml.api(route="/predict", batchable=True, max_batch_size=MAX_BATCH_SIZE,
                 max_latency_ms=10_000)
    def predict(self, text: list[str]) -> list[dict]:
        return self.model(text)


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0])
    os.environ.update(PEER_MODEL_DIR=str(Path(args.model_dir).resolve()),
                      PEER_THREADS=str(args.threads),
                      PEER_MAX_BATCH_SIZE=str(args.max_batch_size),
                      PEER_WORKERS=str(args.workers),
                      BENTOML_DO_NOT_TRACK="true")
    here = str(Path(__file__).resolve().parent)
    os.execv(sys.executable, [sys.executable, "-m", "bentoml", "serve",
                              "bentoml_peer:TextClassifier", "--working-dir", here,
                              "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
