"""Administration: list the registry, change routes, load and unload versions.

`GET /models` is public (it shows what the registry holds, nothing secret); every
`/admin/*` endpoint needs `Authorization: Bearer <APP_API_KEY>`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import ValidationError

from registry import ModelRef, ShadowRoute, check_shadow

from ..errors import BadInput, Conflict, NotFound
from ..models import LoadError
from .deps import AdminDep, ManagerDep, RouterDep
from .schemas import NAME_SCHEMA, LoadResponse, RoutesRequest, RoutesResponse, error_responses

ADMIN_ERRORS = (401, 403)

# Path segments that name a model and a version: their pattern is published in the schema
# and checked by model_ref(), whose message says what a valid name is.
NamePath = Annotated[str, Path(json_schema_extra=NAME_SCHEMA)]

router = APIRouter()


def model_ref(name: str, version: str) -> ModelRef:
    try:
        return ModelRef(name=name, version=version)
    except ValidationError as exc:
        raise BadInput(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


@router.get("/models", tags=["models"])
async def list_models(manager: ManagerDep) -> dict[str, Any]:
    """Every model and version in the registry: manifest metrics, route weight, whether
    it is loaded and on which execution provider."""
    models = manager.describe()
    if not manager.registry_available():
        return {
            "models": models,
            "registry_error": "the registry folder is missing: only loaded versions are "
            "listed, and no other version can be loaded",
        }
    return {"models": models}


@router.get(
    "/admin/routes", tags=["admin"], dependencies=[AdminDep],
    responses=error_responses(*ADMIN_ERRORS),
)
async def get_routes(routes: RouterDep) -> dict[str, dict[str, float]]:
    return {name: dict(weights) for name, weights in routes.routes.items()}


@router.put(
    "/admin/routes/{name}",
    tags=["admin"],
    dependencies=[AdminDep],
    response_model=RoutesResponse,
    responses=error_responses(
        *ADMIN_ERRORS, 400, 409, 413, 422, 503,
        _409="a version with weight > 0, or the shadow, is not loaded or not in the "
        "registry; or the shadow is the only version with weight",
        _503="the routes cannot be saved (APP_PERSIST_ROUTES) to the registry",
    ),
)
async def put_routes(name: NamePath, body: RoutesRequest, manager: ManagerDep) -> RoutesResponse:
    """Replace a model's traffic weights, e.g. `{"weights": {"1": 90, "2": 10}}`, and
    its shadow: `"shadow": {"version": "3", "fraction": 0.25}` also sends a quarter of the
    routed requests to version 3, off the response's path, to compare it (omitted or
    null: no shadow). Every version with weight > 0, and the shadow, must be loaded.
    Rollback: set the weights back."""
    for version in body.weights:
        model_ref(name, version)
    shadow = None
    if body.shadow is not None:
        model_ref(name, body.shadow.version)
        shadow = ShadowRoute(version=body.shadow.version, fraction=body.shadow.fraction)
        try:
            check_shadow(body.weights, shadow)
        except ValueError as exc:
            raise Conflict(str(exc)) from None
    try:
        await manager.set_weights(name, body.weights, shadow)
    except ValueError as exc:
        raise BadInput(str(exc).splitlines()[0]) from None
    return RoutesResponse(model=name, weights=body.weights, shadow=body.shadow)


@router.post(
    "/admin/models/{name}/{version}/load",
    tags=["admin"],
    dependencies=[AdminDep],
    response_model=LoadResponse,
    responses=error_responses(
        *ADMIN_ERRORS, 400, 404, 413, 422,
        _404="the version is not in the registry",
        _422="invalid name or version, or the version is corrupt, incomplete or invalid",
    ),
)
async def load_version(name: NamePath, version: NamePath, manager: ManagerDep) -> LoadResponse:
    """Verify and load a version (it gets no traffic until its route weight is set)."""
    ref = model_ref(name, version)
    try:
        lv, new = await manager.load(ref)
    except LoadError as exc:
        raise BadInput(f"cannot load {ref}: {exc}") from None
    return LoadResponse(
        model=name, version=version, loaded=True, already_loaded=not new,
        provider=lv.provider, load_seconds=lv.load_seconds, model_bytes=lv.model_bytes,
    )


@router.delete(
    "/admin/models/{name}/{version}",
    tags=["admin"],
    dependencies=[AdminDep],
    response_model=LoadResponse,
    responses=error_responses(
        *ADMIN_ERRORS, 400, 404, 409, 413, 422,
        _404="the version is not loaded", _409="the version still has route weight > 0",
    ),
)
async def unload_version(name: NamePath, version: NamePath, manager: ManagerDep) -> LoadResponse:
    """Unload a version with route weight 0. Its queued requests finish first."""
    ref = model_ref(name, version)
    if manager.get(ref) is None:
        raise NotFound(f"model version {ref} is not loaded")
    await manager.unload(ref)
    return LoadResponse(model=name, version=version, loaded=False)
