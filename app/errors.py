"""Errors that carry their HTTP status, and the handlers that turn them into JSON.

Every error answer has one shape: `{"error": {"type": ..., "message": ..., ...}}`.
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


def http_response_bytes(
    status: int, reason: str, body: bytes, headers: list[tuple[bytes, bytes]],
) -> bytes:
    """A whole HTTP/1.1 answer with a JSON body, for the places that write to the socket
    themselves (the HTTP protocol's refusals) rather than through ASGI."""
    lines = [f"HTTP/1.1 {status} {reason}".encode("latin-1")]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"content-type: application/json", b"content-length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _app_error(request: Request, exc: AppError) -> JSONResponse:
    if exc.status >= 500 and not isinstance(exc, Overloaded):
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return JSONResponse(
        error_body(exc.type, exc.message, exc.details), status_code=exc.status,
        headers=exc.headers,
    )


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
    return JSONResponse(error_body("bad_input", message, details), status_code=422)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    type_ = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(type_, str(exc.detail)), status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_handlers(app: FastAPI) -> None:
    # Handlers are typed by the exception they receive; Starlette's signature is looser.
    app.add_exception_handler(AppError, _app_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
