"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class PredictRequest(BaseModel):
    """`{"texts": [...]}` or `{"text": "..."}`; `model` and `version` pin a variant."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["a wonderful film", "dull and boring"]}]},
    )

    texts: list[StrictStr] | None = None
    text: StrictStr | None = None
    model: StrictStr | None = None
    version: StrictStr | None = None


class PredictionOut(BaseModel):
    label: str
    score: float
    scores: dict[str, float]


class PredictResponse(BaseModel):
    model: str
    version: str
    predictions: list[PredictionOut]


class RoutesRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"weights": {"1": 90, "2": 10}}]}
    )

    weights: dict[str, float] = Field(min_length=1)


class RoutesResponse(BaseModel):
    model: str
    weights: dict[str, float]


class LoadResponse(BaseModel):
    model: str
    version: str
    loaded: bool
    already_loaded: bool = False
    provider: str | None = None
    load_seconds: float | None = None
    model_bytes: int | None = None


class Readiness(BaseModel):
    status: str
    reason: str | None = None
    models: dict[str, list[str]]


class ErrorDetail(BaseModel):
    type: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    400: "malformed request (e.g. an invalid Content-Length)",
    401: "missing or malformed `Authorization: Bearer <key>` header",
    403: "wrong API key, or the admin endpoints are disabled (no APP_API_KEY)",
    404: "unknown model or version, or the version is not loaded",
    409: "conflicts with the current routes or loaded versions",
    413: "request body larger than APP_MAX_BODY_BYTES",
    422: "invalid input",
    503: "overloaded, no routable version, or registry unavailable; see Retry-After",
    504: "no answer within APP_REQUEST_TIMEOUT_S",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can answer, all with the
    `ErrorResponse` body. `descriptions` override the defaults by `_<code>`."""
    return {
        code: {
            "model": ErrorResponse,
            "description": descriptions.get(f"_{code}", _ERROR_DESCRIPTIONS[code]),
        }
        for code in codes
    }
