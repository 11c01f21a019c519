"""The FastAPI application: routers, envelope error handling, body limit, OpenAPI at /v1/openapi.json."""

from __future__ import annotations

from fastapi import FastAPI

from hookline import __version__
from hookline.api import access, operations
from hookline.api.errors import install_error_handlers
from hookline.api.ingest import FastIngest
from hookline.api.limits import BodyLimitMiddleware
from hookline.api.openapi import install_openapi
from hookline.api.request_metrics import RequestMetrics
from hookline.api.routes import (
    audit_log,
    circuit_breaker,
    deliveries,
    egress_ips,
    event_types,
    events,
    listen,
    portal_links,
    stats,
    tenants,
    webhook_tests,
    webhooks,
)
from hookline.api.services import Services

DESCRIPTION = """Self-hosted webhook delivery. Every answer uses one envelope:
`{"status": true, "code": 200, "message": "...", "data": {...}}`, or for errors
`{"status": false, "code": 400, "message": "Bad request", "error": "URL must be HTTPS"}`.
Authenticate with `Authorization: Bearer <key>`: the operator's admin key, or a tenant's API key.
Each operation names the scope its key needs (`admin`, `tenant:manage`, `events:write`, `read`)."""
# The routes FastAPI makes itself (from openapi_url and docs_url) take no dependency; their access
# decision is declared here (hookline.api.access).
_DESCRIBES_THE_API = access.no_key("the API's own description, the same for everyone")
FRAMEWORK_ROUTES: dict[str, access.Decision] = {
    "/v1/openapi.json": _DESCRIBES_THE_API,
    "/docs": _DESCRIBES_THE_API,
    "/docs/oauth2-redirect": _DESCRIBES_THE_API,
    "/ui/static": access.no_key("the dashboard's stylesheets, scripts and images: public files"),
}


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
        audit_log,
        portal_links,
    ):
        app.include_router(module.router)
    app.include_router(operations.router(operations.Operations(services, worker)))
    # The dashboard (/ui) is a surface on top of the API: it calls the routes' operations in process.
    from hookline.dashboard import site

    site.install(app)

    # Added last is outermost: the body limit, then the lean ingest path (POST /v1/events[/batch]),
    # which enforces the scopes those routes declare.
    if lean_ingest:
        single = access.required_scope(app.routes, "POST", "/v1/events")
        batch = access.required_scope(app.routes, "POST", "/v1/events/batch")
        app.add_middleware(FastIngest, services=services, single=single, batch=batch)
    app.add_middleware(BodyLimitMiddleware, max_bytes=services.settings.max_body_bytes)
    app.add_middleware(RequestMetrics)
    return app
