"""`create_app(settings)`: the FastAPI application and its lifespan."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from inference import ThreadPlan

from .admission import Admission
from .api import api_router
from .api.fast_predict import FastPredictMiddleware
from .api.oip.schemas import publish_oip_schema
from .api.qa_schemas import publish_qa_limits
from .api.schemas import publish_limits
from .errors import install_handlers
from .experiments import Experiments
from .metrics import Metrics
from .middleware import AdmissionMiddleware, BodyLimitMiddleware, PredictMetricsMiddleware
from .models import ModelManager
from .routing import Router
from .settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()  # per app instance: tests can build several apps

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        router = Router()
        manager = ModelManager(settings, metrics, router)
        app.state.router = router
        app.state.manager = manager
        app.state.experiments = Experiments(settings, metrics, manager, router)
        _log_start(settings, manager.thread_plan)
        await manager.start()
        try:
            yield
        finally:
            # uvicorn gets here after the requests it had received are answered (or
            # after its graceful time-out): what is still queued is finished, then the
            # inference threads are released.
            app.state.draining = True
            log.info("shutting down: draining %d loaded version(s)", len(manager.loaded()))
            await app.state.experiments.stop()
            await manager.stop()

    app = FastAPI(
        title="Text classification service",
        version="0.1.0",
        description="Compressed BERT classifiers from the versioned registry, with A/B "
        "routing and dynamic batching.",
        lifespan=lifespan,
        **telemetry_option(settings.opentelemetry),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.admission = Admission(settings.in_flight_limit, metrics, settings.refused_pause_s)
    app.state.draining = False  # True from SIGTERM on: /readyz answers 503
    install_handlers(app)
    app.include_router(api_router)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate_openapi()
            publish_limits(schema, settings.texts_limit, settings.max_text_chars)
            publish_qa_limits(schema, settings.max_text_chars, settings.max_context_chars)
            publish_oip_schema(schema, settings.texts_limit, settings.max_text_chars,
                               settings.max_context_chars)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    # Outermost last: metrics see the 413s of the body limit and the 503s of admission too;
    # admission refuses before the body is read; the fast path gets a body within the limit.
    app.add_middleware(FastPredictMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AdmissionMiddleware, admission=app.state.admission)
    app.add_middleware(PredictMetricsMiddleware, metrics=metrics)
    return app


def telemetry_option(enabled: bool) -> dict[str, Any]:
    """FastAPI's `telemetry` argument turning its OpenTelemetry bridge off (FastAPI
    releases before the bridge have neither the argument nor the cost)."""
    if enabled or "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _log_start(settings: Settings, plan: ThreadPlan) -> None:
    log.info(
        "serving from %s (max batch %d, max wait %g ms, queue %d, providers %s, "
        "%d batch(es) at once per version on %d thread(s) each)",
        settings.models_dir, settings.max_batch_size, settings.max_wait_ms,
        settings.max_queue, settings.providers, plan.workers, plan.threads,
    )
    if settings.api_key is None:
        log.warning("APP_API_KEY is not set: admin endpoints are disabled")
