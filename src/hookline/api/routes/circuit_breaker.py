"""/v1/webhooks/.../circuit-breaker: each endpoint's breaker, and the tenant's all at once (seed 000).

Registered before the webhooks router, so ``/v1/webhooks/circuit-breaker`` is this resource, not a
webhook with that id.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from hookline.api import endpoint_health
from hookline.api.access import Manage, Read
from hookline.api.audit import Who
from hookline.api.auth import ServicesDep, resolve_tenant
from hookline.api.envelope import ok
from hookline.api.responses import BreakerReset, CircuitBreakerOut, Envelope
from hookline.api.routes.webhooks import TenantQuery, endpoint_or_404
from hookline.api.routing import StrictJsonRoute
from hookline.api.services import Services
from hookline.store import endpoints as store

router = APIRouter(prefix="/v1/webhooks", tags=["circuit breaker"], route_class=StrictJsonRoute)

MAX_ENDPOINTS = 1000  # the account-level forms cover a tenant's first thousand endpoints


async def _all(services: Services, tenant: str) -> list[store.Endpoint]:
    async with services.store.read() as conn:
        return await store.list_endpoints(
            conn, tenant, after=None, limit=MAX_ENDPOINTS, keyring=services.store.keyring
        )


@router.get(
    "/circuit-breaker",
    summary="Circuit breakers of all the tenant's webhooks",
    response_model=Envelope[list[CircuitBreakerOut]],
)
async def list_breakers(
    services: ServicesDep, principal: Read, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    found = await _all(services, tenant)
    loaded = await endpoint_health.load(services, found)
    views = [endpoint_health.breaker_view(services, e, *loaded[e.id]) for e in found]
    return ok(views, "Circuit breakers retrieved successfully")


@router.post(
    "/circuit-breaker/reset",
    summary="Reset the circuit breakers of all the tenant's webhooks",
    response_model=Envelope[BreakerReset],
)
async def reset_breakers(
    services: ServicesDep, principal: Manage, who: Who, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    ids = [e.id for e in await _all(services, tenant)]
    audit = who.entry("webhook.circuit_breaker_reset", tenant, "webhook", None)
    reset = await endpoint_health.reset_breakers(services, ids, audit)
    services.store.announce_new_work()
    return ok({"reset": reset}, "Circuit breakers reset successfully")


@router.get(
    "/{webhook_id}/circuit-breaker",
    summary="A webhook's circuit breaker",
    response_model=Envelope[CircuitBreakerOut],
)
async def get_breaker(
    webhook_id: str, services: ServicesDep, principal: Read, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    state, held = (await endpoint_health.load(services, [endpoint]))[endpoint.id]
    return ok(
        endpoint_health.breaker_view(services, endpoint, state, held),
        "Circuit breaker retrieved successfully",
    )


@router.post(
    "/{webhook_id}/circuit-breaker/reset",
    summary="Reset a webhook's circuit breaker (its held deliveries go again)",
    response_model=Envelope[CircuitBreakerOut],
)
async def reset_breaker(
    webhook_id: str, services: ServicesDep, principal: Manage, who: Who, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    audit = who.entry("webhook.circuit_breaker_reset", tenant, "webhook", endpoint.id)
    await endpoint_health.reset_breakers(services, [endpoint.id], audit)
    services.store.announce_new_work()
    state, held = (await endpoint_health.load(services, [endpoint]))[endpoint.id]
    return ok(
        endpoint_health.breaker_view(services, endpoint, state, held), "Circuit breaker reset successfully"
    )
