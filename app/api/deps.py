"""Typed dependencies for the shared objects made once in the app's lifespan.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
thread, and four thread hops per request cost about as much as the model itself.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from ..errors import AdminDisabled, Forbidden, Unauthorized
from ..metrics import Metrics
from ..models import ModelManager
from ..routing import Router
from ..settings import Settings
from .serving import InferencePath, inference_path


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


async def get_router(request: Request) -> Router:
    return request.app.state.router


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
RouterDep = Annotated[Router, Depends(get_router)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_inference_path(request: Request) -> InferencePath:
    return inference_path(request.app.state)


InferencePathDep = Annotated[InferencePath, Depends(get_inference_path)]


async def require_admin(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """`Authorization: Bearer <APP_API_KEY>`, compared in constant time. With no key
    configured the admin endpoints are disabled (403), never open."""
    if settings.api_key is None:
        raise AdminDisabled("admin endpoints are disabled: set APP_API_KEY to enable them")
    if not authorization:
        raise Unauthorized("missing 'Authorization: Bearer <key>' header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    expected = settings.api_key.get_secret_value().encode()
    if not secrets.compare_digest(token.strip().encode(), expected):
        raise Forbidden("wrong API key")


AdminDep = Depends(require_admin)
