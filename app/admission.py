"""Admission under overload: how many /predict requests are in flight, and the refusal.

One object per app, shared by the two places that refuse: the HTTP protocol, which
answers a refused request straight from the parser (no ASGI task, no body read, a few
microseconds), and the ASGI middleware, for what reaches the application anyway (a
pipelined request, or a server other than `python -m app`). Both count a refusal in the
same metrics as any other /predict answer: status 503, no model or version.
"""

from __future__ import annotations

import json

from .errors import error_body, http_response_bytes
from .metrics import Metrics

PREDICT_PATH = "/predict"
RETRY_AFTER_S = 1
# The scope key by which the HTTP protocol tells the middleware it has admitted a request.
RESERVED = "app.admission_reserved"


class Admission:
    """Requests to /predict in flight in this process, against a limit. Used only on the
    event loop's thread, so the counter needs no lock."""

    def __init__(self, limit: int, metrics: Metrics, refused_pause_s: float = 0.0) -> None:
        self.limit = limit
        # How long the HTTP protocol leaves a refused connection unread (app.http_protocol).
        self.refused_pause_s = refused_pause_s
        self.in_flight = 0
        self.message = f"overloaded: {limit} requests in flight; retry shortly"
        self.body = json.dumps(error_body("overloaded", self.message)).encode()
        # Label lookups resolved once: a refusal must cost microseconds.
        self._refused = metrics.requests.labels("", "", "503")
        self._refused_seconds = metrics.request_seconds.labels("", "")

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

    def http_response(self, keep_alive: bool, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        """The whole 503 answer, for the protocol to write as it is."""
        headers = [*default_headers, (b"retry-after", str(RETRY_AFTER_S).encode())]
        if not keep_alive:
            headers.append((b"connection", b"close"))
        return http_response_bytes(503, "Service Unavailable", self.body, headers)
