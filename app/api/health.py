"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..metrics import CONTENT_TYPE
from ..models import ModelManager
from ..routing import Router
from .deps import ManagerDep, MetricsDep, RouterDep
from .schemas import Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"model": Readiness, "description": "ready to serve"},
        503: {"model": Readiness, "description": "not ready (see reason); retry later"},
    },
)
async def readyz(request: Request, manager: ManagerDep, routes: RouterDep) -> JSONResponse:
    """200 when every routed model has a loaded version with weight > 0. 503 otherwise,
    including when no model is routed at all (an empty registry serves nothing) and from
    the moment a shutdown starts (SIGTERM): in-flight requests finish, new traffic should
    go to other replicas."""
    reason = not_ready_reason(draining(request), manager, routes)
    if reason is None:
        return JSONResponse({"status": "ready", "models": _loaded_by_model(manager, routes)})
    models = {} if draining(request) or not routes.routes else _loaded_by_model(manager, routes)
    return JSONResponse(
        {"status": "not ready", "reason": reason, "models": models}, status_code=503
    )


def draining(request: Request) -> bool:
    """True from the moment a shutdown starts (SIGTERM)."""
    return getattr(request.app.state, "draining", False)


def serving_versions(name: str, manager: ModelManager, routes: Router) -> list[str]:
    """The versions of `name` that routed requests can reach: loaded, with weight > 0."""
    weights = routes.weights(name) or {}
    return [v for v in manager.loaded_versions(name) if weights.get(v, 0) > 0]


def not_ready_reason(draining: bool, manager: ModelManager, routes: Router) -> str | None:
    """Why the service is not ready (None when it is): shutting down, nothing routed, or
    a routed model with no loaded version of weight > 0."""
    if draining:
        return "shutting down"
    if not routes.routes:
        return "no models loaded"
    missing = [name for name in routes.routes if not serving_versions(name, manager, routes)]
    if missing:
        return f"no loaded version with weight for: {', '.join(sorted(missing))}"
    return None


def _loaded_by_model(manager: ModelManager, routes: Router) -> dict[str, list[str]]:
    return {name: sorted(manager.loaded_versions(name)) for name in routes.models()}


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE)
