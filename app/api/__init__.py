"""HTTP routers, one per concern: prediction, administration, A/B experiments (feedback,
reports), health and metrics, and the Open Inference Protocol (V2)."""

from fastapi import APIRouter

from . import admin, experiments, health, oip, predict

api_router = APIRouter()
api_router.include_router(predict.router)
api_router.include_router(admin.router)
api_router.include_router(experiments.router)
api_router.include_router(health.router)
api_router.include_router(oip.router)

__all__ = ["api_router"]
