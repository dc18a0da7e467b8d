"""Errors that carry their HTTP status, and the handlers that turn them into JSON.

Every error answer of the service's own API has one shape:
`{"error": {"type": ..., "message": ..., ...}}`. Under `/v2` (the Open Inference
Protocol) errors take that protocol's shape instead, `{"error": "<message>"}`, and a
refused input is 400 (the protocol has no 422): `error_answer()` decides both by path,
for the handlers here and for the middleware and HTTP protocol that answer themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    status: int = 500
    type: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.details = details


class BadInput(AppError):
    status = 422
    type = "bad_input"


class NotFound(AppError):
    status = 404
    type = "not_found"


class NotReady(AppError):
    """A V2 health check's "false": the protocol answers it with a 4xx status."""

    status = 400
    type = "not_ready"


class Conflict(AppError):
    status = 409
    type = "conflict"


class Unauthorized(AppError):
    status = 401
    type = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status = 403
    type = "forbidden"


class AdminDisabled(AppError):
    """No API key is configured: admin endpoints are off, not open."""

    status = 403
    type = "admin_disabled"


class Overloaded(AppError):
    """A queue is full (or no version can serve yet): try again shortly."""

    status = 503
    type = "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class Unavailable(Overloaded):
    type = "unavailable"


class RegistryUnavailable(AppError):
    """The registry folder cannot be read or written (removed, unmounted, read-only)."""

    status = 503
    type = "registry_unavailable"


class InferenceFailed(AppError):
    status = 500
    type = "inference_failed"


class Timeout(AppError):
    status = 504
    type = "timeout"


def error_body(type_: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


# The Open Inference Protocol's paths (app.api.oip).
OIP_PREFIX = "/v2"


def is_oip_path(path: str) -> bool:
    """True for a path of the Open Inference Protocol (`/v2`, `/v2/...`)."""
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


def error_answer(
    path: str, status: int, type_: str, message: str, details: Any = None,
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of an error answer to a request for `path`, in the shape of
    the API that path belongs to."""
    if is_oip_path(path):
        return (400 if status == 422 else status), {"error": message}
    return status, error_body(type_, message, details)


def _json_error(
    request: Request, status: int, type_: str, message: str, details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    status, body = error_answer(request.scope.get("path", ""), status, type_, message, details)
    return JSONResponse(body, status_code=status, headers=headers)


def http_response_bytes(
    status: int, reason: str, body: bytes, headers: list[tuple[bytes, bytes]],
) -> bytes:
    """A whole HTTP/1.1 answer with a JSON body, for the places that write to the socket
    themselves (the HTTP protocol's refusals) rather than through ASGI."""
    lines = [f"HTTP/1.1 {status} {reason}".encode("latin-1")]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"content-type: application/json", b"content-length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def app_error_answer(method: str, path: str, exc: AppError) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of an AppError's answer to `method path`; a 5xx other than
    overload is logged. The handlers here and `api.fast_predict` answer through it."""
    if exc.status >= 500 and not isinstance(exc, Overloaded):
        log.error("%s %s: %s", method, path, exc.message)
    return error_answer(path, exc.status, exc.type, exc.message, exc.details)


def _app_error(request: Request, exc: AppError) -> JSONResponse:
    status, body = app_error_answer(request.method, request.scope.get("path", ""), exc)
    return JSONResponse(body, status_code=status, headers=exc.headers)


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        details.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    if any(d["type"] == "json_invalid" for d in details):
        message = "request body is not valid JSON"
    elif details:
        message = f"{details[0]['loc']}: {details[0]['msg']}"
    else:
        message = "invalid request"
    return _json_error(request, 422, "bad_input", message, details)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    type_ = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _json_error(request, exc.status_code, type_, str(exc.detail),
                       headers=getattr(exc, "headers", None))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json_error(request, 500, "internal_error", "internal server error")


def install_handlers(app: FastAPI) -> None:
    # Handlers are typed by the exception they receive; Starlette's signature is looser.
    app.add_exception_handler(AppError, _app_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
