"""The Open Inference Protocol (KServe V2) REST API: `router` serves it under `/v2`."""

from .router import router

__all__ = ["router"]
