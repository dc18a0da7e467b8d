"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from registry import MAX_ROUTE_WEIGHT, SAFE_NAME_MAX_LENGTH, SAFE_NAME_PATTERN

# The schema declares what the API accepts, no more and no less: schema-driven clients and
# fuzzers then send only what is served, and what the schema excludes is refused. The
# checks themselves stay in the handlers, whose messages say how to fix a request; these
# fragments only publish them.
NAME_SCHEMA: dict[str, Any] = {"pattern": SAFE_NAME_PATTERN, "maxLength": SAFE_NAME_MAX_LENGTH}
# A text must hold a character other than whitespace (JSON Schema patterns are searches).
# Whitespace spelled out rather than `\S`: a schema's `\S` is ECMA-262's, for which
# U+001C-U+001F and U+0085 are visible and U+FEFF is blank, the reverse of Python's
# str.isspace; a fuzzer sent "\x1f", which the schema allowed and the check refused. The
# same class means the same in both, and check_texts searches with this very pattern.
TEXT_PATTERN = (r"[^\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
                r"\u3000\ufeff]")
TEXT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": TEXT_PATTERN}
# Exactly one of `texts` (a list) and `text` (a string); the other absent or null.
ONE_OF_TEXT_OR_TEXTS: list[dict[str, Any]] = [
    {"required": ["texts"], "properties": {"texts": {"type": "array"}, "text": {"type": "null"}}},
    {"required": ["text"], "properties": {"text": {"type": "string"}, "texts": {"type": "null"}}},
]


class PredictRequest(BaseModel):
    """`{"texts": [...]}` or `{"text": "..."}`; `model` and `version` pin a variant."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"texts": ["a wonderful film", "dull and boring"]}],
            "oneOf": ONE_OF_TEXT_OR_TEXTS,
        },
    )

    texts: list[StrictStr] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "items": TEXT_SCHEMA}
    )
    text: StrictStr | None = Field(default=None, json_schema_extra={"pattern": TEXT_PATTERN})
    model: StrictStr | None = Field(default=None, json_schema_extra=NAME_SCHEMA)
    version: StrictStr | None = Field(default=None, json_schema_extra=NAME_SCHEMA)


class EntityOut(BaseModel):
    """A named entity: its type, its text, `start`/`end` character offsets into the
    text as sent (`text[start:end]` is `text`) and the mean probability of its words'
    tags."""

    label: str
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float


class PredictionOut(BaseModel):
    """`label`/`score`: the most probable label; `scores`: every label's probability
    (softmax, or for a multi-label version each label's sigmoid); `labels`: a
    multi-label version's answer, the labels at or above their thresholds (absent for
    a single-label version); `entities`: a token-classification version's answer
    (absent otherwise), whose `label`/`score` are then the most confident entity's type
    and score ("O" and the mean word probability when there is none) and `scores` each
    entity type's best score."""

    label: str
    score: float
    scores: dict[str, float]
    labels: list[str] | None = Field(
        default=None, description="multi-label versions only: the labels at or above their "
        "thresholds (none, one or several)")
    entities: list[EntityOut] | None = Field(
        default=None, description="token-classification versions only: the entities "
        "found, in text order")
    prediction_id: str | None = Field(
        default=None, description="send it back with the right label to POST /feedback "
        "(absent for token-classification versions)")


class PredictResponse(BaseModel):
    model: str
    version: str
    predictions: list[PredictionOut]


# A route weight: a finite JSON number in [0, MAX_ROUTE_WEIGHT] (no strings, no NaN).
RouteWeight = Annotated[
    float, Field(strict=True, ge=0, le=MAX_ROUTE_WEIGHT, allow_inf_nan=False)
]


class ShadowIn(BaseModel):
    """A version that also answers a sampled `fraction` of the routed requests, off the
    response's path, to be compared with the routed versions (app.experiments)."""

    model_config = ConfigDict(extra="forbid")

    version: StrictStr = Field(json_schema_extra=NAME_SCHEMA)
    fraction: float = Field(strict=True, ge=0, le=1, allow_inf_nan=False)


class RoutesRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [
            {"weights": {"1": 90, "2": 10}},
            {"weights": {"1": 90, "2": 10}, "shadow": {"version": "3", "fraction": 0.25}},
        ]}
    )

    weights: dict[StrictStr, RouteWeight] = Field(
        min_length=1,
        json_schema_extra={
            "propertyNames": NAME_SCHEMA,
            # Some version must get traffic: not every weight may be 0.
            "not": {"additionalProperties": {"maximum": 0}},
        },
    )
    # Omitted or null: no shadow (a PUT replaces the whole route, shadow included).
    shadow: ShadowIn | None = None


class RoutesResponse(BaseModel):
    model: str
    weights: dict[str, float]
    shadow: ShadowIn | None = None


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
    410: "the prediction is older than APP_FEEDBACK_MAX_AGE_S",
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


def publish_limits(openapi: dict[str, Any], max_texts: int, max_text_chars: int) -> None:
    """Write the service's configured input limits into its OpenAPI schema (in place):
    how many texts a request may hold and how long each may be."""
    props = openapi["components"]["schemas"]["PredictRequest"]["properties"]
    props["texts"]["maxItems"] = max_texts
    props["texts"]["items"]["maxLength"] = max_text_chars
    props["text"]["maxLength"] = max_text_chars
