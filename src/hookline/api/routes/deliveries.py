"""Delivery logs and redelivery: /v1/webhooks/{id}/deliveries, /v1/deliveries/{id} (+ /retry),
/v1/webhooks/{id}/replay."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from hookline.api.access import Manage, Read
from hookline.api.audit import Who
from hookline.api.auth import ServicesDep, resolve_tenant
from hookline.api.envelope import ApiError, bad_request, not_found, ok
from hookline.api.pagination import Cursor, Limit, Moment, decode_int_cursor, page, require_timezone
from hookline.api.responses import DeliveryDetail, DeliveryOut, DeliveryQueued, Envelope, Page, Replayed
from hookline.api.routes.webhooks import TenantQuery, endpoint_or_404, numeric_id
from hookline.api.routing import StrictJsonRoute
from hookline.store import deliveries as store
from hookline.store.deliveries import Attempt, Delivery

router = APIRouter(tags=["deliveries"], route_class=StrictJsonRoute)

Status = Literal["pending", "succeeded", "failed"]


def delivery_view(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhook_id": d.endpoint_id,
        "event_id": d.event_id,
        "event": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at if d.status == "pending" else None,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "completed_at": d.completed_at,
        "test": d.test,
        "pruned": d.pruned,
    }


def attempt_view(a: Attempt, *, test: bool) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "test": test,
        "started_at": a.started_at,
        "duration_ms": a.duration_ms,
        "status_code": a.status_code,
        "response_body": a.response_body,
        "error": a.error,
        "request_headers": a.request_headers,
    }


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    summary="List a webhook's deliveries, newest first",
    response_model=Envelope[Page[DeliveryOut]],
)
async def list_deliveries(
    webhook_id: str,
    services: ServicesDep,
    principal: Read,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Status | None = None,
    event: Annotated[str | None, Query(description="only this event type")] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    async with services.store.read() as conn:
        rows = await store.list_for_endpoint(
            conn,
            tenant,
            endpoint.id,
            before=decode_int_cursor(cursor),
            limit=limit + 1,
            status=status,
            event_type=event,
            since=require_timezone("since", since),
            until=require_timezone("until", until),
        )
    last = rows[limit - 1].id if len(rows) > limit else None
    return ok(page([delivery_view(d) for d in rows], limit, last), "Deliveries retrieved successfully")


async def _delivery(services: ServicesDep, tenant: str, raw_id: str) -> Delivery:
    async with services.store.read() as conn:
        found = await store.get_delivery(conn, tenant, numeric_id(raw_id, "delivery"))
    if found is None:
        raise not_found(f"delivery '{raw_id}' not found")
    return found


@router.get(
    "/v1/deliveries/{delivery_id}",
    summary="Get a delivery with every attempt",
    response_model=Envelope[DeliveryDetail],
)
async def get_delivery(
    delivery_id: str, services: ServicesDep, principal: Read, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.read() as conn:
        found = await store.get_with_attempts(conn, tenant, numeric_id(delivery_id, "delivery"))
    if found is None:
        raise not_found(f"delivery '{delivery_id}' not found")
    delivery, attempts = found
    view = delivery_view(delivery) | {"attempt_log": [attempt_view(a, test=delivery.test) for a in attempts]}
    return ok(view, "Delivery retrieved successfully")


@router.post(
    "/v1/deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Deliver again now",
    response_model=Envelope[DeliveryQueued],
    responses={
        409: {
            "description": "the delivery was a test send (send another test instead), or was pruned by "
            "retention (its payload is gone)"
        }
    },
)
async def retry_delivery(
    delivery_id: str, services: ServicesDep, principal: Manage, who: Who, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    found = await _delivery(services, tenant, delivery_id)
    if found.test:
        raise ApiError(
            409,
            f"delivery {found.id} was a test send and is not retried: "
            f"send another with POST /v1/webhooks/{found.endpoint_id}/test",
        )
    if found.pruned:
        raise ApiError(
            409,
            f"delivery {found.id} was pruned by retention (finished more than the retention period ago): "
            "its payload and attempts are gone, so it cannot be sent again",
        )
    audit = who.entry("delivery.retried", tenant, "delivery", found.id, {"webhook_id": found.endpoint_id})
    await store.requeue(services.store, tenant, now=services.now(), delivery_id=found.id, audit=audit)
    return ok({"id": found.id, "status": "pending"}, "Delivery queued for another attempt", 202)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: Moment
    until: Moment | None = None
    status: Status | None = Field(default=None, description="only deliveries in this state (default: all)")


@router.post(
    "/v1/webhooks/{webhook_id}/replay",
    status_code=202,
    summary="Re-queue a webhook's deliveries",
    response_model=Envelope[Replayed],
)
async def replay(
    webhook_id: str,
    body: ReplayRequest,
    services: ServicesDep,
    principal: Manage,
    who: Who,
    tenant_id: str | None = TenantQuery,
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    since, until = require_timezone("since", body.since), require_timezone("until", body.until)
    if until is not None and since is not None and until <= since:
        raise bad_request("'until' must be after 'since'")
    count = await store.requeue(
        services.store,
        tenant,
        now=services.now(),
        endpoint_id=endpoint.id,
        since=since,
        until=until,
        statuses=(body.status,) if body.status else store.STATUSES,
        audit=who.entry(
            "webhook.replayed",
            tenant,
            "webhook",
            endpoint.id,
            {"since": since, "until": until, "status": body.status},
        ),
    )
    return ok({"webhook_id": endpoint.id, "requeued": count}, f"{count} deliveries queued again", 202)
