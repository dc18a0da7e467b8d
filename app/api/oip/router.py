"""The Open Inference Protocol (KServe V2) over REST: health, metadata and infer.

Infer serves classifiers (input `text`), token classifiers (input `text`, output
`entities`) and question answerers (inputs `question` and `context`): which tensors a
version takes and gives is its task's (`tasks.py`), listed in its model metadata. Infer
goes through the same path as `POST /predict` (`serving.InferencePath`: routing by
weight and `X-Routing-Key`, pinned versions, the batchers, the time-out), and the same
admission and request metrics (by path). Errors take the protocol's shape,
`{"error": "<message>"}` (`app.errors.error_answer`). Health answers are 200 with an
empty body for true and 4xx for false, as the protocol says: 400 (with the reason) when
not ready, 404 for an unknown model or version.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from registry import ModelRef

from ...errors import BadInput, NotFound, NotReady
from ...models import LoadedVersion
from ...question_answerer import QuestionContext
from ...routing import version_order
from ...settings import Settings
from ..admin import NamePath
from ..answers import check_pairs
from ..deps import InferencePathDep
from ..health import draining, not_ready_reason, serving_versions
from ..predict import MODEL_VERSION_HEADER
from ..serving import InferencePath, check_texts, safe
from .outputs import BINARY_TYPE, HEADER_LENGTH, Answered, infer_answer
from .schemas import (
    CONTEXT_NAME,
    QUESTION_NAME,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
    infer_request_body,
    oip_error_responses,
)
from .tasks import TaskCheck, tensors_for
from .tensors import Decoded, decode_request

SERVER_NAME = "textclf"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "onnxruntime_onnx"  # Triton's name for an ONNX Runtime model

router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
RoutingKey = Annotated[str | None, Header(max_length=256)]
_EMPTY = {"content": {}}  # a health answer: the status is the answer, the body is empty


@router.get("", response_model=ServerMetadata)
async def server_metadata(request: Request) -> dict[str, Any]:
    """The server's name, version and protocol extensions."""
    return {"name": SERVER_NAME, "version": request.app.version, "extensions": EXTENSIONS}


@router.get("/health/live", response_class=Response,
            responses={200: {"description": "live", **_EMPTY}})
async def server_live() -> Response:
    """200 while the process serves requests."""
    return Response()


@router.get(
    "/health/ready", response_class=Response,
    responses={200: {"description": "ready", **_EMPTY},
               **oip_error_responses(400, _400="not ready (the message says why)")},
)
async def server_ready(request: Request, path: InferencePathDep) -> Response:
    """200 when every routed model has a loaded version with weight > 0, as `/readyz`;
    400 otherwise, and from the moment a shutdown starts."""
    reason = not_ready_reason(draining(request), path.manager, path.routes)
    if reason is not None:
        raise NotReady(reason)
    return Response()


_MODEL_READY = {200: {"description": "ready", **_EMPTY}, **oip_error_responses(
    400, 404, _400="invalid name, or not ready (the message says why)",
    _404="unknown model or version")}


@router.get("/models/{name}/ready", response_class=Response, responses=_MODEL_READY)
async def model_ready(name: NamePath, path: InferencePathDep) -> Response:
    """200 when the model has a loaded version with route weight > 0: requests that do
    not pin a version are served."""
    name = safe(name, "name")
    if not serving_versions(name, path.manager, path.routes):
        if not (path.manager.has_model(name) or path.routes.weights(name) is not None
                or path.manager.loaded_versions(name)):
            raise NotFound(f"unknown model {name!r}")
        raise NotReady(f"model {name!r} has no loaded version with route weight")
    return Response()


@router.get("/models/{name}/versions/{version}/ready", response_class=Response,
            responses=_MODEL_READY)
async def version_ready(name: NamePath, version: NamePath, path: InferencePathDep) -> Response:
    """200 when the version is loaded: requests pinned to it are served."""
    ref = ModelRef(name=safe(name, "name"), version=safe(version, "version"))
    if path.manager.get(ref) is None:
        if not path.manager.exists(ref):
            raise NotFound(f"unknown model version {ref}")
        raise NotReady(f"model version {ref} is not loaded")
    return Response()


_METADATA = oip_error_responses(400, 404, 503, _400="invalid model or version name",
                                _503="the version is being loaded or unloaded; retry")


@router.get("/models/{name}", response_model=ModelMetadata, responses=_METADATA,
            response_model_exclude_none=True)
async def model_metadata(name: NamePath, path: InferencePathDep) -> dict[str, Any]:
    """The model's loaded versions, and the inputs, outputs and labels (a classifier's:
    the columns of `probabilities`; a token classifier's: its entity types) of the
    version a request that pins none is most likely to get (the loaded version with the
    most route weight, else the newest loaded). The inputs and outputs are the version's
    task's: `text` in for classifiers, `question` and `context` for question answerers."""
    return _metadata(path, _likeliest(path, safe(name, "name")))


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata,
            responses=_METADATA, response_model_exclude_none=True)
async def version_metadata(
    name: NamePath, version: NamePath, path: InferencePathDep,
) -> dict[str, Any]:
    """As the model's metadata, for this loaded version."""
    ref = ModelRef(name=safe(name, "name"), version=safe(version, "version"))
    return _metadata(path, path.loaded(ref))


def _likeliest(path: InferencePath, name: str) -> LoadedVersion:
    loaded = sorted(path.manager.loaded_versions(name), key=version_order)
    if not loaded:
        if path.manager.has_model(name):
            raise NotFound(f"model {name!r} has no loaded version: load one with "
                           f"POST /admin/models/{name}/<version>/load")
        raise NotFound(f"unknown model {name!r}")
    weights = path.routes.weights(name) or {}
    best = max(reversed(loaded), key=lambda v: weights.get(v, 0.0))  # ties: the newest
    return path.loaded(ModelRef(name=name, version=best))


def _metadata(path: InferencePath, loaded: LoadedVersion) -> dict[str, Any]:
    name = loaded.ref.name
    tensors = tensors_for(loaded.manifest.task)
    return {
        "name": name,
        "versions": sorted(path.manager.loaded_versions(name), key=version_order),
        "platform": PLATFORM,
        **tensors.metadata(list(loaded.classifier.labels)),
    }


_INFER = dict(
    response_model=InferenceResponse,
    openapi_extra=infer_request_body(),
    responses={
        200: {"description": "the outputs; with binary outputs, the JSON then their data "
              f"({HEADER_LENGTH} gives the JSON's length)",
              "content": {BINARY_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
        **oip_error_responses(400, 404, 413, 503, 504),
    },
)


@router.post("/models/{name}/infer", **_INFER)
async def infer(
    request: Request, name: NamePath, path: InferencePathDep, x_routing_key: RoutingKey = None,
) -> Response:
    """Answer the inputs with the version routing picks: classify the texts of the BYTES
    input `text` (shape [n] or [n, 1]; a token classifier answers their `entities`), or
    answer the BYTES inputs `question` and `context` (one shape) with spans of the
    contexts. Requests with the same `X-Routing-Key` go to the same version while the
    route weights are unchanged."""
    return await _infer(request, path, name, None, x_routing_key)


@router.post("/models/{name}/versions/{version}/infer", **_INFER)
async def infer_version(
    request: Request, name: NamePath, version: NamePath, path: InferencePathDep,
    x_routing_key: RoutingKey = None,
) -> Response:
    """Answer the inputs with this version."""
    return await _infer(request, path, name, version, x_routing_key)


async def _infer(
    request: Request, path: InferencePath, name: str, version: str | None,
    routing_key: str | None,
) -> Response:
    headers = request.headers
    decoded = decode_request(await request.body(), headers.get(HEADER_LENGTH),
                             headers.get("content-encoding"))
    inputs = (_questions(decoded, path.settings) if decoded.asks_questions
              else check_texts(decoded.texts, path.settings))
    check = TaskCheck(decoded)  # the version's task must take these inputs
    served = await path.classify(inputs, name, version, routing_key,  # type: ignore[arg-type]
                                 check=check)
    ids = served.prediction_ids or [None] * len(served.predictions)
    answered = [Answered(p, i) for p, i in zip(served.predictions, ids, strict=True)]
    body, answer_headers = infer_answer(served.ref, check.tensors.outputs, answered,
                                        decoded.batch_shape, check.outputs, decoded.id)
    answer_headers[MODEL_VERSION_HEADER] = str(served.ref)
    return Response(body, headers=answer_headers)


def _questions(decoded: Decoded, settings: Settings) -> list[QuestionContext]:
    """The (question, context) pairs of a question request, checked as /predict's."""
    questions, contexts = decoded.inputs[QUESTION_NAME], decoded.inputs[CONTEXT_NAME]
    if len(questions) > settings.texts_limit:
        raise BadInput(f"{len(questions)} questions in one request; the limit is "
                       f"{settings.texts_limit}: split the request")
    return check_pairs(list(zip(questions, contexts, strict=True)), settings,
                       lambda i, field: f"element {i} of input {field!r}")
