"""POST /predict: validate, pick a version (pinned or routed), queue, answer."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from ..classifier import Prediction
from ..errors import BadInput
from ..settings import Settings
from .answers import answer_questions, expect_texts
from .deps import InferencePathDep
from .schemas import PredictRequest, PredictResponse, error_responses
from .serving import Served, check_texts, default_model, safe

__all__ = ["MODEL_VERSION_HEADER", "answer_content", "clean_texts", "default_model", "router",
           "safe", "texts_of"]

router = APIRouter(tags=["predict"])

MODEL_VERSION_HEADER = "X-Model-Version"


def clean_texts(body: PredictRequest, settings: Settings) -> list[str]:
    return texts_of(body.texts, body.text, settings)


def texts_of(texts: list[str] | None, text: str | None, settings: Settings) -> list[str]:
    """The request's texts from its `texts` or `text` field (exactly one), checked."""
    if texts is not None and text is not None:
        raise BadInput("send either 'text' or 'texts', not both")
    if texts is None and text is None:
        raise BadInput("send 'texts' (a list of strings) or 'text' (a string)")
    return check_texts(texts if texts is not None else [text or ""], settings)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=error_responses(
        400, 404, 409, 413, 422, 503, 504,
        _404="unknown model or version, or the pinned version is not loaded",
        _409="the version's task takes the other kind of input: 'inputs' (questions) "
        "for a question-answering version, 'texts' for a classifier",
        _503="overloaded, no loaded version, or the pinned version is being loaded or "
        "unloaded; see Retry-After",
    ),
)
async def predict(
    body: PredictRequest,
    path: InferencePathDep,
    x_routing_key: Annotated[str | None, Header(max_length=256)] = None,
) -> JSONResponse:
    """Classify texts, or answer `inputs` (questions about contexts) with spans of the
    contexts. Answers come in input order. Requests with the same `X-Routing-Key` go to
    the same version while the route weights are unchanged."""
    if body.inputs is not None:  # question answering: app/api/answers.py
        if body.texts is not None or body.text is not None:
            raise BadInput("send either 'inputs' (questions) or 'texts', not both")
        ref, answers = await answer_questions(body.inputs, body.model, body.version,
                                              x_routing_key, path)
        content = {"model": ref.name, "version": ref.version, "predictions": answers}
        return JSONResponse(content, headers={MODEL_VERSION_HEADER: str(ref)})
    texts = clean_texts(body, path.settings)
    served = await path.classify(texts, body.model, body.version, x_routing_key,
                                 check=expect_texts)
    return JSONResponse(answer_content(served), headers={MODEL_VERSION_HEADER: str(served.ref)})


def answer_content(served: Served) -> dict[str, Any]:
    """The JSON body of a `/predict` answer (both paths: `fast_predict` and the route)."""
    outs = [_prediction_out(p) for p in served.predictions]
    for out, prediction_id in zip(outs, served.prediction_ids or (), strict=False):
        out["prediction_id"] = prediction_id  # for POST /feedback
    return {"model": served.ref.name, "version": served.ref.version, "predictions": outs}


def _prediction_out(p: Prediction) -> dict[str, Any]:
    """A prediction's JSON: `labels` only for a multi-label version, `entities` only
    for a token-classification one."""
    out: dict[str, Any] = {"label": p.label, "score": p.score, "scores": p.scores}
    if p.labels is not None:
        out["labels"] = p.labels
    if p.entities is not None:
        out["entities"] = [asdict(e) for e in p.entities]
    return out
