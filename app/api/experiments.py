"""A/B experiments over HTTP: `POST /feedback` (public: the id it carries is signed, so
it cannot be forged) and `GET /admin/experiments/{name}` (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ..errors import NotFound
from ..experiments import Experiments
from ..experiments.relay import FORWARDED_HEADER
from .admin import ADMIN_ERRORS, NamePath
from .deps import AdminDep, ManagerDep
from .schemas import error_responses
from .serving import safe

router = APIRouter()

Label = Annotated[StrictStr, Field(max_length=256)]
Labels = Annotated[list[Label], Field(max_length=1000)]


class FeedbackRequest(BaseModel):
    """The right answer to a prediction: one label, or for a multi-label model the list
    of labels that apply (empty when none does)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prediction_id": "p1.WyJzc3Qy...", "label": "positive"}]})

    prediction_id: StrictStr = Field(min_length=1, max_length=4096)
    label: Label | Labels


class ShadowJudgement(BaseModel):
    version: str
    correct: bool | None = Field(description="null when this replica does not hold the "
                                 "shadow's answer (still running, dropped, or another "
                                 "replica ran the copy)")


class FeedbackResponse(BaseModel):
    model: str
    version: str
    correct: bool
    shadow: ShadowJudgement | None = None


async def get_experiments(request: Request) -> Experiments:
    return request.app.state.experiments


@router.post(
    "/feedback", tags=["experiments"], response_model=FeedbackResponse,
    responses=error_responses(
        400, 403, 409, 410, 413, 422,
        _403="the prediction_id was not issued by this service (or a replica sharing "
        "its APP_FEEDBACK_KEY): forged, altered or malformed",
        _409="feedback for this prediction was already recorded",
        _422="invalid body, or a label the model does not have, or a list for a "
        "single-label model (one label for a multi-label one)",
    ),
)
async def feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse | Response:
    """Tell whether a prediction was right: `{"prediction_id": <from /predict>, "label":
    "positive"}`. Counts correct/incorrect for the version that answered, and for the
    shadow version when this process ran the copy (`textclf_feedback_answers_total`).
    With `APP_REPLICA_URL` set on every replica, feedback is relayed to the replica that
    issued the id and its answer passed on."""
    experiments = await get_experiments(request)
    relayed = await experiments.relayed(body.prediction_id, body.model_dump(),
                                        FORWARDED_HEADER in request.headers)
    if relayed is not None:
        return Response(relayed.body, status_code=relayed.status,
                        media_type="application/json")
    judged = experiments.judge(body.prediction_id, body.label)
    shadow = None
    if judged.shadow_version is not None:
        shadow = ShadowJudgement(version=judged.shadow_version, correct=judged.shadow_correct)
    return FeedbackResponse(model=judged.model, version=judged.version,
                            correct=judged.correct, shadow=shadow)


@router.get(
    "/admin/experiments/{name}", tags=["admin"], dependencies=[AdminDep],
    responses=error_responses(*ADMIN_ERRORS, 400, 404, 413, 422,
                              _404="the model has no route and no counts"),
)
async def experiment(name: NamePath, request: Request, manager: ManagerDep) -> dict[str, Any]:
    """Per version: requests, feedback, online accuracy with a 95 % Wilson interval,
    agreement with the version it was compared with, and a two-proportion test against
    the baseline (the routed version with the largest weight) with its verdict. The counts
    are this process's; Prometheus adds replicas up."""
    safe(name, "name")
    experiments = await get_experiments(request)
    if not experiments.knows(name) and not manager.has_model(name):
        raise NotFound(f"unknown model {name!r}")
    return experiments.report(name)
