"""The shipped model behind LitServe, with LitServe's own dynamic batching.

    python bench/peers/litserve_peer.py --model-dir models/sst2-sentiment/8 --port 8002

POST /predict {"text": "..."} -> {"label": ..., "score": ..., "scores": {...}}; GET /health
is 200 once the workers have loaded the model. --workers inference worker processes (1: the
service's one model copy; LitServe advises one per core on CPUs), each with its own
onnxruntime session of --threads threads, as many API-server processes (LitServe's default),
requests passed over ZeroMQ (`fast_queue`, which LitServe
recommends above 100 requests/s). Batches of up to --max-batch-size requests, gathered for at
most --max-wait-ms (LitServe's `max_batch_size` and `batch_timeout`).
"""

from __future__ import annotations

import litserve as ls
from onnx_peer import OnnxTextClassifier, parse_args


class TextClassifierAPI(ls.LitAPI):
    def __init__(self, model_dir: str, threads: int, **batching: float) -> None:
        super().__init__(**batching)
        self.model_dir, self.threads = model_dir, threads

    def setup(self, device: str) -> None:
        self.model = OnnxTextClassifier(self.model_dir, self.threads)

    def decode_request(self, request: dict) -> str:
        return request["text"]

    def predict(self, texts: list[str]) -> list[dict]:
        return self.model(list(texts))

    def encode_response(self, output: dict) -> dict:
        return output


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0])
    api = TextClassifierAPI(args.model_dir, args.threads, max_batch_size=args.max_batch_size,
                            batch_timeout=args.max_wait_ms / 1000)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=args.workers,
                          fast_queue=True)
    server.run(host=args.host, port=args.port, log_level="warning",
               generate_client_file=False)


if __name__ == "__main__":
    main()
