"""`POST /predict`'s common case without the framework's per-request machinery.

Under load the service's event loop spent more time in FastAPI than the model spent
answering: routing, dependency solving, pydantic validation of the body and the response
wrappers took about 1 ms of Python a request on this project's 2-core test machine, where
the model takes under 1 ms (docs/benchmarks.md, "Where the time went"). This middleware
answers a well-formed request itself: the body parsed by orjson, its four fields checked
by type, then the same `InferencePath`, the same checks of the texts (`texts_of`) and the
same answer (`answer_content`) as the route.

Anything else (not JSON, a field of the wrong type, an unknown field, an over-long
`X-Routing-Key`) goes on to the route unchanged, with its body replayed, so every
refusal keeps the route's message and details. It sits inside the body limit, admission
and metrics middleware, which therefore see both paths alike.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AppError, app_error_answer, error_answer
from ..middleware import replay_body
from .answers import expect_texts
from .predict import MODEL_VERSION_HEADER, answer_content, texts_of
from .serving import inference_path

log = logging.getLogger(__name__)

FIELDS = frozenset({"text", "texts", "model", "version"})
MAX_ROUTING_KEY = 256  # the route's `X-Routing-Key` limit: longer goes to it for its 422


def simple_body(body: bytes) -> dict[str, Any] | None:
    """The body's fields when it is a JSON object the route would accept as typed (strings,
    a list of strings, nulls; no other field), else None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:  # also lone surrogates: the route reads and names them
        return None
    if type(data) is not dict or not data.keys() <= FIELDS:
        return None
    for key in ("text", "model", "version"):
        value = data.get(key)
        if value is not None and type(value) is not str:
            return None
    texts = data.get("texts")
    if texts is not None and (type(texts) is not list
                              or any(type(text) is not str for text in texts)):
        return None
    return data


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; None when the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _serialized(content: Any, status: int, headers: list[tuple[bytes, bytes]]
                ) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
    """The answer's JSON bytes; when it cannot be serialized, the 500 the route's
    handler for an unexpected error gives (errors.py), without the answer's headers."""
    try:
        return orjson.dumps(content), status, headers
    except TypeError:  # orjson.JSONEncodeError is one: a type it cannot write, a cycle
        log.exception("unhandled error on POST /predict: the answer is not serializable")
        status, answer = error_answer("/predict", 500, "internal_error",
                                      "internal server error")
        return orjson.dumps(answer), status, []


class FastPredictMiddleware:
    """Answers `POST /predict` with a simple JSON body; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != "/predict"
                or scope["method"] != "POST" or not _is_json(scope)):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        data = simple_body(body)
        routing_key = _header(scope, b"x-routing-key")
        if data is None or (routing_key is not None and len(routing_key) > MAX_ROUTING_KEY):
            await self.app(scope, replay_body(body, receive), send)
            return
        status, content, headers = await self._answer(scope, data, routing_key)
        payload, status, headers = _serialized(content, status, headers)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()), *headers]})
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    async def _answer(scope: Scope, data: dict[str, Any], routing_key: str | None
                      ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        path = inference_path(scope["app"].state)
        try:
            texts = texts_of(data.get("texts"), data.get("text"), path.settings)
            served = await path.classify(texts, data.get("model"), data.get("version"),
                                         routing_key, check=expect_texts)
        except AppError as exc:
            status, answer = app_error_answer("POST", "/predict", exc)
            return status, answer, [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                    for k, v in exc.headers.items()]
        except Exception:  # a bug: the route's handler would answer the same
            log.exception("unhandled error on POST /predict")
            status, answer = error_answer("/predict", 500, "internal_error",
                                          "internal server error")
            return status, answer, []
        version = str(served.ref).encode("latin-1")
        return 200, answer_content(served), [(MODEL_VERSION_HEADER.lower().encode(), version)]

