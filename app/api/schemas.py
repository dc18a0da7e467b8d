"""Request and response bodies of the HTTP API."""

from __future__ import annotations

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
