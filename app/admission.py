"""Admission under overload: how many inference requests are in flight, and the refusal.

Inference requests are `POST /predict` and the Open Inference Protocol's
`POST /v2/models/{name}[/versions/{version}]/infer` (`is_inference_path`): they share one
count and one limit, as they share the batchers.

One object per app, shared by the two places that refuse: the HTTP protocol, which
answers a refused request straight from the parser (no ASGI task, no body read, a few
microseconds), and the ASGI middleware, for what reaches the application anyway (a
pipelined request, or a server other than `python -m app`). Both count a refusal in the
same metrics as any other inference answer: status 503, no model or version.
"""

from __future__ import annotations

import json
import re

from .errors import OIP_PREFIX, error_answer, http_response_bytes
from .metrics import Metrics

PREDICT_PATH = "/predict"
# POST /v2/models/{name}/infer and /v2/models/{name}/versions/{version}/infer.
_OIP_INFER = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/infer")
RETRY_AFTER_S = 1
# The scope key by which the HTTP protocol tells the middleware it has admitted a request.
RESERVED = "app.admission_reserved"


def is_inference_path(path: str) -> bool:
    """True for the path of an inference request (`/predict`, or a V2 `.../infer`): the
    requests that are admitted, shed under overload and counted in the request metrics."""
    return path == PREDICT_PATH or _OIP_INFER.fullmatch(path) is not None


class Admission:
    """Inference requests in flight in this process, against a limit. Used only on the
    event loop's thread, so the counter needs no lock."""

    def __init__(self, limit: int, metrics: Metrics, refused_pause_s: float = 0.0) -> None:
        self.limit = limit
        # How long the HTTP protocol leaves a refused connection unread (app.http_protocol).
        self.refused_pause_s = refused_pause_s
        self.in_flight = 0
        self.message = f"overloaded: {limit} requests in flight; retry shortly"
        # The refusal's body in each API's error shape, made once.
        self.body = self._body(PREDICT_PATH)
        self.oip_body = self._body(OIP_PREFIX)
        # Label lookups resolved once: a refusal must cost microseconds.
        self._refused = metrics.requests.labels("", "", "503")
        self._refused_seconds = metrics.request_seconds.labels("", "")

    def _body(self, path: str) -> bytes:
        return json.dumps(error_answer(path, 503, "overloaded", self.message)[1]).encode()

    @property
    def full(self) -> bool:
        return self.in_flight >= self.limit

    def reserve(self, scope: dict) -> None:
        """Count a request in flight before its ASGI task starts (the HTTP protocol does
        this); the middleware sees the mark and only counts it out when it is answered."""
        self.in_flight += 1
        scope[RESERVED] = True

    def count_refusal(self, seconds: float) -> None:
        """A refusal answered outside the ASGI middlewares that count the others."""
        self._refused.inc()
        self._refused_seconds.observe(seconds)

    def http_response(
        self, keep_alive: bool, default_headers: list[tuple[bytes, bytes]], oip: bool = False,
    ) -> bytes:
        """The whole 503 answer, for the protocol to write as it is; `oip`: to a request of
        the Open Inference Protocol, in its error shape."""
        headers = [*default_headers, (b"retry-after", str(RETRY_AFTER_S).encode())]
        if not keep_alive:
            headers.append((b"connection", b"close"))
        body = self.oip_body if oip else self.body
        return http_response_bytes(503, "Service Unavailable", body, headers)
