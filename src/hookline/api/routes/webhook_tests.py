"""Test sends: ``POST /v1/webhooks/{id}/test`` (seed 003) for one endpoint, ``GET /v1/webhooks/test``
(seed 000) and ``POST /v1/webhooks/test`` for every endpoint of the tenant. The rules are in
``hookline.api.testsend``.

Registered before the webhooks router, so ``/v1/webhooks/test`` is this resource, not a webhook with
that id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from hookline.api import testsend
from hookline.api.access import Manage
from hookline.api.auth import ServicesDep, resolve_tenant
from hookline.api.envelope import ApiError, bad_request, not_found, ok
from hookline.api.responses import Envelope, SendTestOutcome, SendTestReport
from hookline.api.routes.webhooks import TenantQuery, endpoint_or_404
from hookline.api.routing import StrictJsonRoute
from hookline.api.services import Services
from hookline.catalog import MAX_EVENT_NAME_LENGTH
from hookline.store import endpoints as store

router = APIRouter(prefix="/v1/webhooks", tags=["test sends"], route_class=StrictJsonRoute)


class SendTest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    event: str | None = Field(
        default=None,
        max_length=MAX_EVENT_NAME_LENGTH,
        description="the event type to send (default `webhook.test`)",
    )
    data: dict[str, Any] | None = Field(
        default=None,
        description="the event's data, checked against the type's schema (default: the type's example)",
    )


def _message(outcome: dict[str, Any]) -> str:
    if outcome["succeeded"]:
        return "Test event delivered"
    return "Test event not sent" if not outcome["sent"] else "Test event failed"


@router.post(
    "/{webhook_id}/test",
    summary="Send a test event to a webhook now",
    response_model=Envelope[SendTestOutcome],
    responses={409: {"description": "the webhook has not passed its verification handshake"}},
)
async def test_webhook(
    webhook_id: str,
    services: ServicesDep,
    principal: Manage,
    body: SendTest | None = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    """Sends a signed event (`webhook.test`, or the type named) to the webhook at once and answers
    with what happened: the status code, latency, the start of the answer, the error, and the
    signature schemes sent. It skips the queue, the circuit breaker and the rate limit, never counts
    toward the webhook's health, and is kept in the delivery log marked `test`. A failed test is not an
    error of this request: the answer is 200 either way."""
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    event, data = await testsend.event_and_data(
        services, body.event if body else None, body.data if body else None
    )
    if (status := (await testsend.unverified(services, [endpoint])).get(endpoint.id)) is not None:
        raise ApiError(409, testsend.unverified_reason(endpoint, status))
    try:
        async with services.sending(body_limit=testsend.RESPONSE_BODY_LIMIT) as sender:
            outcome = await testsend.send_one(services, sender, endpoint, event, data)
    except testsend.Gone:
        raise not_found(f"webhook '{webhook_id}' not found") from None
    return ok(outcome, _message(outcome))


async def _test_all(
    services: Services, tenant: str, event: str | None, data: dict[str, Any] | None
) -> Response:
    event, data = await testsend.event_and_data(services, event, data)
    async with services.store.read() as conn:
        found = await store.list_endpoints(
            conn, tenant, after=None, limit=testsend.MAX_ENDPOINTS + 1, keyring=services.store.keyring
        )
    if not found:
        raise not_found("the tenant has no webhook to test: register one with POST /v1/webhooks")
    if len(found) > testsend.MAX_ENDPOINTS:
        raise bad_request(
            f"the tenant has more than {testsend.MAX_ENDPOINTS} webhooks, the most one request tests: "
            "test them one at a time with POST /v1/webhooks/{id}/test"
        )
    results = await testsend.send_all(services, found, event, data)
    succeeded = sum(1 for r in results if r["succeeded"])
    report = {"tested": len(results), "succeeded": succeeded, "results": results}
    return ok(report, f"{succeeded} of {len(results)} test events delivered")


@router.get(
    "/test",
    summary="Send a test event to every webhook of the tenant",
    response_model=Envelope[SendTestReport],
)
async def test_all_get(
    services: ServicesDep,
    principal: Manage,
    event: str | None = Query(
        default=None, max_length=MAX_EVENT_NAME_LENGTH, description="the event type (default `webhook.test`)"
    ),
    tenant_id: str | None = TenantQuery,
) -> Response:
    """Seed 000's form: a test send to each of the tenant's webhooks (at most 50), with the type's
    example as its data; the answer lists each outcome. See `POST /v1/webhooks/{id}/test`."""
    tenant = await resolve_tenant(services, principal, tenant_id)
    return await _test_all(services, tenant, event, None)


@router.post(
    "/test",
    summary="Send a test event to every webhook of the tenant",
    response_model=Envelope[SendTestReport],
)
async def test_all_post(
    services: ServicesDep,
    principal: Manage,
    body: SendTest | None = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    """Seed 003's form: like `GET /v1/webhooks/test`, with the event type and data in the body."""
    tenant = await resolve_tenant(services, principal, tenant_id)
    return await _test_all(services, tenant, body.event if body else None, body.data if body else None)
