"""HTTP routers, one per concern: prediction, administration, health and metrics."""

from fastapi import APIRouter

from . import admin, health, predict

api_router = APIRouter()
api_router.include_router(predict.router)
api_router.include_router(admin.router)
api_router.include_router(health.router)

__all__ = ["api_router"]
