"""The online prediction service: `python -m app --host H --port P --models DIR`.

Layout: `settings` (one `Settings`, env prefix `APP_`), `errors` (errors carry their
HTTP status), `classifier` (one registry version on onnxruntime + tokenizers),
`batcher` (per-version asyncio micro-batcher), `gate` (the process's limit on
batches running at once, shared by every version), `routing` (A/B weights, stable key
hash), `models` (load / unload / describe), `metrics` (all Prometheus metrics,
prefix `textclf_`), `middleware` (body limit, /predict metrics), `api/` (routers),
`main` (`create_app(settings)` and the lifespan).

Endpoints:
- `POST /predict` `{"texts": [...]}` or `{"text": "..."}`, optional `model`, `version`;
  header `X-Routing-Key` for sticky A/B assignment. Answers carry `X-Model-Version`.
- `GET /models` (public): the registry's models and versions, manifest metrics, task
  and label setup (a question answerer's `qa` settings), weights, load state, provider,
  load errors (and `registry_error` when the registry
  folder has gone: loaded versions keep serving from memory).
- `GET /admin/routes`, `PUT /admin/routes/{name}` `{"weights": {"1": 90, "2": 10}}`,
  `POST /admin/models/{name}/{version}/load`, `DELETE /admin/models/{name}/{version}`:
  need `Authorization: Bearer $APP_API_KEY`; disabled (403) when no key is set. A
  version with weight > 0 cannot be unloaded (409): roll back by setting weights.
- `GET /healthz` (alive), `GET /readyz` (200 when every routed model has a loaded
  version with weight; 503 with no routed model at all, and from SIGTERM on),
  `GET /metrics`, `GET /docs`. Every error answer is `{"error": {"type", "message"}}`
  and documented in the OpenAPI schema.

SIGTERM (`__main__.GracefulServer`): stop accepting connections, answer every request
already received (up to 30 s), then drain the batchers in the lifespan shutdown; exit 0.

Start-up loads every version named in `<models>/routes.json`; without that file, each
model is routed 100 % to its newest version. The serving path imports neither torch
nor transformers.
"""

import os

# Each batch is tokenized on its worker's own thread, and several workers run at once
# (`inference.plan_threads`): the tokenizers library's own thread pool on top took the
# cores from them (two workers at batch 16: 783 sentences/s with it, 1,108 without).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
