"""Pure ASGI middleware: the request body limit, admission under overload, and the metrics
of every inference answer (`/predict` and the Open Inference Protocol's infer)."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .admission import RESERVED, RETRY_AFTER_S, Admission, is_inference_path
from .errors import error_answer
from .metrics import Metrics


async def _send_error(
    send: Send, scope: Scope, status: int, type_: str, message: str,
    extra_headers: tuple[tuple[bytes, bytes], ...] = ((b"connection", b"close"),),
) -> None:
    """An error answer from the middleware, in the shape of the API the request's path
    belongs to. By default it closes the connection: the request's body has not been read."""
    status, answer = error_answer(scope["path"], status, type_, message)
    body = json.dumps(answer).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *extra_headers],
    })
    await send({"type": "http.response.body", "body": body})


class AdmissionMiddleware:
    """503 with Retry-After, at once, for an inference request (`/predict`, a V2 infer) that
    finds the admission's limit of requests already in flight. It is answered before its
    body is read or validated, so refusing costs microseconds and leaves the cores to the
    requests already accepted. The connection stays open: the server discards the unread
    body, and a client that retries need not reconnect. (`python -m app` refuses most such
    requests earlier, in the HTTP protocol; this is for what reaches the application
    anyway.)"""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_inference_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        admission = self.admission
        if not scope.get(RESERVED):  # else admitted and counted by the HTTP protocol
            if admission.full:
                headers = ((b"retry-after", str(RETRY_AFTER_S).encode()),)
                await _send_error(send, scope, 503, "overloaded", admission.message, headers)
                return
            admission.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            admission.in_flight -= 1


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: by its Content-Length when declared, and by
    counting the bytes as they stream in (chunked uploads declare none). The body is
    read here, at most `max_bytes`, and replayed to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = f"request body is larger than {self.max_bytes} bytes"
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, scope, 400, "bad_request", "invalid Content-Length")
                    return
                if declared > self.max_bytes:
                    await _send_error(send, scope, 413, "payload_too_large", too_large)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_error(send, scope, 413, "payload_too_large", too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(b"".join(chunks), receive), send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands an already-read body to the app once, then the client's
    messages (a disconnect, say)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class PredictMetricsMiddleware:
    """Latency and status of every inference answer (`/predict`, a V2 infer), whatever
    produced it, labelled with the version that answered (from X-Model-Version; empty when
    none did)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_inference_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "model": "", "version": ""}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"x-model-version":
                        model, _, version = value.decode().partition("/")
                        seen.update(model=model, version=version)
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            labels = (seen["model"], seen["version"])
            self.metrics.request_seconds.labels(*labels).observe(time.perf_counter() - start)
            self.metrics.requests.labels(*labels, str(seen["status"])).inc()
