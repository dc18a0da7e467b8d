"""POST /predict: validate, pick a version (pinned or routed), queue, answer."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from registry import ModelRef, check_safe_name

from ..classifier import Prediction
from ..errors import BadInput, NotFound, Timeout, Unavailable
from ..settings import Settings
from .deps import ManagerDep, MetricsDep, RouterDep, SettingsDep
from .schemas import PredictRequest, PredictResponse, error_responses

router = APIRouter(tags=["predict"])

MODEL_VERSION_HEADER = "X-Model-Version"


def clean_texts(body: PredictRequest, settings: Settings) -> list[str]:
    if body.texts is not None and body.text is not None:
        raise BadInput("send either 'text' or 'texts', not both")
    if body.texts is None and body.text is None:
        raise BadInput("send 'texts' (a list of strings) or 'text' (a string)")
    texts = body.texts if body.texts is not None else [body.text or ""]
    if not texts:
        raise BadInput("'texts' is empty: send at least one text")
    if len(texts) > settings.texts_limit:
        raise BadInput(
            f"{len(texts)} texts in one request; the limit is {settings.texts_limit}: "
            "split the request"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise BadInput(f"text {i} is empty or only whitespace")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(f"text {i} is not valid Unicode (lone surrogate)") from None
        if len(text) > settings.max_text_chars:
            raise BadInput(
                f"text {i} has {len(text)} characters; the limit is {settings.max_text_chars}"
            )
    return texts


def safe(value: str, what: str) -> str:
    try:
        return check_safe_name(value, what)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=error_responses(
        400, 404, 413, 422, 503, 504,
        _404="unknown model or version, or the pinned version is not loaded",
        _503="overloaded, no loaded version, or the pinned version is being loaded or "
        "unloaded; see Retry-After",
    ),
)
async def predict(
    body: PredictRequest,
    settings: SettingsDep,
    manager: ManagerDep,
    routes: RouterDep,
    metrics: MetricsDep,
    x_routing_key: Annotated[str | None, Header(max_length=256)] = None,
) -> JSONResponse:
    """Classify texts. Answers come in input order. Requests with the same
    `X-Routing-Key` go to the same version while the route weights are unchanged."""
    texts = clean_texts(body, settings)
    name = safe(body.model, "name") if body.model is not None else default_model(settings, routes)
    if body.version is not None:
        ref = ModelRef(name=name, version=safe(body.version, "version"))
        method = "pinned"
    else:
        version, method = routes.choose(name, x_routing_key, manager.loaded_versions(name))
        if version is None:
            raise _no_version(name, method, manager)
        ref = ModelRef(name=name, version=version)
    loaded = manager.get(ref)
    if loaded is None:
        if manager.changing(ref):
            raise Unavailable(f"model version {ref} is being loaded or unloaded: retry shortly")
        if manager.exists(ref):
            raise NotFound(
                f"model version {ref} exists but is not loaded: load it with "
                f"POST /admin/models/{ref.name}/{ref.version}/load"
            )
        raise NotFound(f"unknown model version {ref}")
    # No await between the lookup and the submit: an unload cannot slip in between.
    future = loaded.batcher.submit(texts)
    metrics.ab_assignments.labels(ref.name, ref.version, method).inc()
    try:
        predictions = await asyncio.wait_for(future, timeout=settings.request_timeout_s)
    except asyncio.TimeoutError:
        raise Timeout(
            f"no answer from {ref} within {settings.request_timeout_s} s"
        ) from None
    content = {
        "model": ref.name,
        "version": ref.version,
        "predictions": [_prediction_out(p) for p in predictions],
    }
    return JSONResponse(content, headers={MODEL_VERSION_HEADER: str(ref)})


def _prediction_out(p: Prediction) -> dict[str, Any]:
    """A prediction's JSON: `labels` only for a multi-label version."""
    out: dict[str, Any] = {"label": p.label, "score": p.score, "scores": p.scores}
    if p.labels is not None:
        out["labels"] = p.labels
    return out


def default_model(settings: Settings, routes: RouterDep) -> str:
    if settings.default_model is not None:
        return settings.default_model
    names = routes.models()
    if len(names) == 1:
        return names[0]
    if not names:
        raise Unavailable("no model is routed yet: publish a model and load it")
    raise BadInput(f"several models are served ({', '.join(names)}): name one with 'model'")


def _no_version(name: str, why: str, manager: ManagerDep) -> Exception:
    if why == "unrouted":
        if manager.loaded_versions(name) or manager.has_model(name):
            return NotFound(
                f"model {name!r} has no route: pin a 'version', or set its weights with "
                f"PUT /admin/routes/{name}"
            )
        return NotFound(f"unknown model {name!r}")
    return Unavailable(f"no loaded version of {name!r} has route weight: try again shortly")

