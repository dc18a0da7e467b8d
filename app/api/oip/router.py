"""The Open Inference Protocol (KServe V2) over REST: health, metadata and infer.

Infer goes through the same path as `POST /predict` (`serving.InferencePath`: routing by
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
from ...routing import version_order
from ..admin import NamePath
from ..answers import texts_only
from ..deps import InferencePathDep
from ..health import draining, not_ready_reason, serving_versions
from ..predict import MODEL_VERSION_HEADER
from ..serving import InferencePath, check_texts, safe
from .outputs import BINARY_TYPE, HEADER_LENGTH, OUTPUTS, infer_answer
from .schemas import (
    INPUT_DATATYPE,
    INPUT_NAME,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
    infer_request_body,
    oip_error_responses,
)
from .tensors import decode_request

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


@router.get("/models/{name}", response_model=ModelMetadata, responses=_METADATA)
async def model_metadata(name: NamePath, path: InferencePathDep) -> dict[str, Any]:
    """The model's loaded versions, its input and outputs, and the labels that are the
    columns of `probabilities`, of the version a request that pins none is most likely
    to get (the loaded version with the most route weight, else the newest loaded)."""
    return _metadata(path, _likeliest(path, safe(name, "name")))


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata,
            responses=_METADATA)
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
    labels = list(loaded.classifier.labels)
    name = loaded.ref.name
    return {
        "name": name,
        "versions": sorted(path.manager.loaded_versions(name), key=version_order),
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [-1]}],
        "outputs": [spec.metadata(len(labels)) for spec in OUTPUTS],
        "labels": labels,
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
    """Classify the texts of the BYTES input `text` (shape [n] or [n, 1]) with the
    version routing picks; requests with the same `X-Routing-Key` go to the same version
    while the route weights are unchanged."""
    return await _infer(request, path, name, None, x_routing_key)


@router.post("/models/{name}/versions/{version}/infer", **_INFER)
async def infer_version(
    request: Request, name: NamePath, version: NamePath, path: InferencePathDep,
    x_routing_key: RoutingKey = None,
) -> Response:
    """Classify the texts with this version."""
    return await _infer(request, path, name, version, x_routing_key)


async def _infer(
    request: Request, path: InferencePath, name: str, version: str | None,
    routing_key: str | None,
) -> Response:
    headers = request.headers
    decoded = decode_request(await request.body(), headers.get(HEADER_LENGTH),
                             headers.get("content-encoding"))
    texts = check_texts(decoded.texts, path.settings)
    served = await path.classify(texts, name, version, routing_key, check=texts_only)
    if any(p.entities is not None for p in served.predictions):
        raise BadInput(f"model version {served.ref} is a token-classification model: V2 "
                       "infer serves sequence classifiers only; use POST /predict")
    body, answer_headers = infer_answer(served.ref, served.predictions, decoded.batch_shape,
                                        decoded.outputs, decoded.id)
    answer_headers[MODEL_VERSION_HEADER] = str(served.ref)
    return Response(body, headers=answer_headers)
