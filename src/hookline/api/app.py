"""The FastAPI application: routers, envelope error handling, body limit, OpenAPI at /v1/openapi.json."""

from __future__ import annotations

from fastapi import FastAPI

from hookline import __version__
from hookline.api import operations
from hookline.api.errors import install_error_handlers
from hookline.api.ingest import FastIngest
from hookline.api.limits import BodyLimitMiddleware
from hookline.api.openapi import install_openapi
from hookline.api.request_metrics import RequestMetrics
from hookline.api.routes import (
    circuit_breaker,
    deliveries,
    egress_ips,
    event_types,
    events,
    listen,
    stats,
    tenants,
    webhook_tests,
    webhooks,
)
from hookline.api.services import Services

DESCRIPTION = """Self-hosted webhook delivery. Every answer uses one envelope:
`{"status": true, "code": 200, "message": "...", "data": {...}}`, or for errors
`{"status": false, "code": 400, "message": "Bad request", "error": "URL must be HTTPS"}`.
Authenticate with `Authorization: Bearer <key>`: the operator's admin key, or a tenant's API key."""


def create_app(
    services: Services, *, lean_ingest: bool = True, worker: operations.WorkerProbe | None = None
) -> FastAPI:
    """``lean_ingest=False`` leaves POST /v1/events[/batch] to FastAPI alone (the tests compare both).
    ``worker``: the worker running in this process, if any (``/readyz`` checks that it turns)."""
    app = FastAPI(
        title="hookline",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.services = services
    install_error_handlers(app)
    install_openapi(app)
    # Added last is outermost: the body limit, then the lean ingest path (POST /v1/events[/batch]).
    if lean_ingest:
        app.add_middleware(FastIngest, services=services)
    app.add_middleware(BodyLimitMiddleware, max_bytes=services.settings.max_body_bytes)
    app.add_middleware(RequestMetrics)
    # circuit_breaker, webhook_tests and stats before webhooks: /v1/webhooks/circuit-breaker,
    # /v1/webhooks/test and /v1/webhooks/stats are not webhook ids.
    for module in (
        tenants,
        circuit_breaker,
        webhook_tests,
        stats,
        webhooks,
        deliveries,
        event_types,
        events,
        listen,
        egress_ips,
    ):
        app.include_router(module.router)

    app.include_router(operations.router(operations.Operations(services, worker)))
    return app
