"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..metrics import CONTENT_TYPE
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
    if getattr(request.app.state, "draining", False):
        return JSONResponse(
            {"status": "not ready", "reason": "shutting down", "models": {}}, status_code=503
        )
    missing = []
    for name, weights in routes.routes.items():
        loaded = set(manager.loaded_versions(name))
        if not any(w > 0 and v in loaded for v, w in weights.items()):
            missing.append(name)
    models = {
        name: sorted(manager.loaded_versions(name)) for name in routes.models()
    }
    if not routes.routes:
        return JSONResponse(
            {"status": "not ready", "reason": "no models loaded", "models": {}}, status_code=503
        )
    if missing:
        return JSONResponse(
            {
                "status": "not ready",
                "reason": f"no loaded version with weight for: {', '.join(sorted(missing))}",
                "models": models,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "models": models})


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE)
