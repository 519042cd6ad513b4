"""The monitoring API's app factory: every router, the error answers and the OpenAPI document.

Endpoints that touch PostgreSQL, Redis or Kafka are plain ``def`` functions, which FastAPI runs in
its thread pool: a slow server never blocks the event loop. Swagger UI and ReDoc are off (they
load from a CDN); the OpenAPI document is at ``/api/openapi.json``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import Depends, FastAPI

from streams.clock import utc_now
from streams.operate.api import (
    ab,
    alerts,
    closed_loop,
    dashboard,
    flags,
    health,
    monitoring,
    pipeline,
    prometheus,
)
from streams.operate.api.auth import require_read_token
from streams.operate.api.errors import install_error_handlers, openapi_with_400
from streams.operate.api.guards import RequestGuards
from streams.operate.api.resources import Resources
from streams.operate.api.responses import ErrorDetail
from streams.settings import Settings

OPENAPI_URL = "/api/openapi.json"
_ERRORS = {
    400: {"model": ErrorDetail, "description": "Invalid parameter"},
    503: {"model": ErrorDetail, "description": "PostgreSQL or Redis unavailable"},
}
_AUTH_ERRORS = {
    **_ERRORS,
    401: {"model": ErrorDetail, "description": "Missing or wrong bearer token"},
}


def create_app(
    settings: Settings,
    *,
    resources: Resources | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """The API for the servers named in ``settings`` (or the given ``resources``); its clients
    are released when the app shuts down."""
    shared = resources or Resources.from_settings(settings, clock=clock)

    sampler = pipeline.sampler_for(shared)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sampler.start()
        yield
        sampler.stop()
        shared.close()

    app = FastAPI(
        title="delaycast monitoring API",
        version="1",
        description="Live metrics of the ML and heuristic arms, the A/B outcome, alerts, the "
        "rollout flags, health and Prometheus metrics. Times are UTC; windows are event time.",
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        lifespan=lifespan,
    )
    app.state.resources = shared
    app.state.pipeline_sampler = sampler
    app.state.metrics_registry = prometheus.registry_for(lambda: prometheus.read_scrape(shared))
    install_error_handlers(app)
    app.include_router(health.router)
    reads = [Depends(require_read_token)]  # open unless API_READ_TOKEN is set
    for router in (
        monitoring.router,
        ab.router,
        alerts.router,
        closed_loop.router,
        pipeline.router,
    ):
        app.include_router(router, responses=_AUTH_ERRORS, dependencies=reads)  # type: ignore[arg-type]
    app.include_router(flags.router, responses=_AUTH_ERRORS, dependencies=reads)  # type: ignore[arg-type]
    app.include_router(prometheus.router, dependencies=reads)
    app.include_router(dashboard.router)
    openapi_with_400(app)
    app.add_middleware(
        RequestGuards,
        allowed_hosts=settings.allowed_hosts,
        max_body_bytes=settings.api_max_body_bytes,
    )
    return app
