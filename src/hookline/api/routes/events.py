"""/v1/events: the platform posts events; each is stored with its deliveries before we answer 202."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from hookline.api.access import EventsWrite, Read
from hookline.api.auth import ServicesDep, resolve_tenant
from hookline.api.envelope import ApiError, not_found, ok
from hookline.api.ingest import EVENT_ID, MAX_BATCH, MAX_IDEMPOTENCY_KEY, accept_batch, accept_event
from hookline.api.pagination import Cursor, Limit, Moment, decode_int_cursor, page, require_timezone
from hookline.api.responses import BatchAccepted, Envelope, EventAccepted, EventDetail, EventOut, Page
from hookline.api.routes.deliveries import delivery_view
from hookline.api.routes.webhooks import TenantQuery, _check_channels
from hookline.api.routing import StrictJsonRoute
from hookline.store import deliveries as delivery_store
from hookline.store import events as store
from hookline.store.events import Event

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=StrictJsonRoute)


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=100, description="the event type, e.g. message.received")
    data: dict[str, Any]
    id: str | None = Field(default=None, pattern=EVENT_ID, description="your id; repeated ids are ignored")
    channels: list[str] | None = None
    tenant_id: str | None = None

    _channels = field_validator("channels")(_check_channels)


def event_view(e: Event) -> dict[str, Any]:
    body = e.body
    return {
        "id": e.id,
        "event": e.event_type,
        # A pruned event's timestamp is the one its payload carried: the time it was accepted.
        "timestamp": body["timestamp"] if body is not None else store.format_timestamp(e.created_at),
        "data": body["data"] if body is not None else None,
        "channels": e.channels,
        "deliveries": e.delivery_count,
        "created_at": e.created_at,
        "pruned": body is None,
    }


@router.post(
    "", status_code=202, summary="Post an event for delivery", response_model=Envelope[EventAccepted]
)
async def create_event(
    body: EventCreate,
    services: ServicesDep,
    principal: EventsWrite,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY)] = None,
) -> Response:
    # Well-formed requests are served by hookline.api.ingest.FastIngest before FastAPI sees them, with
    # the same result; this declaration documents the route and answers the rest.
    return await accept_event(
        services, principal, body.tenant_id, body.event, body.data, body.id, body.channels, idempotency_key
    )


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]
    id: str | None = Field(default=None, pattern=EVENT_ID)
    channels: list[str] | None = None

    _channels = field_validator("channels")(_check_channels)


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)
    tenant_id: str | None = None


@router.post(
    "/batch",
    status_code=202,
    summary=f"Post up to {MAX_BATCH} events in one transaction",
    response_model=Envelope[BatchAccepted],
)
async def create_events(body: EventBatch, services: ServicesDep, principal: EventsWrite) -> Response:
    """All or nothing: one invalid event rejects the batch (the error names its index)."""
    entries = [(e.event, e.data, e.id, e.channels) for e in body.events]
    return await accept_batch(services, principal, body.tenant_id, entries)


@router.get("", summary="List events, newest first", response_model=Envelope[Page[EventOut]])
async def list_events(
    services: ServicesDep,
    principal: Read,
    limit: Limit = 50,
    cursor: Cursor = None,
    event: Annotated[str | None, Query(description="only this event type")] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.read() as conn:
        rows = await store.list_events(
            conn,
            tenant,
            before=decode_int_cursor(cursor),
            limit=limit + 1,
            event_type=event,
            since=require_timezone("since", since),
            until=require_timezone("until", until),
        )
    last = rows[limit - 1].seq if len(rows) > limit else None
    return ok(page([event_view(e) for e in rows], limit, last), "Events retrieved successfully")


@router.get(
    "/{event_id}",
    summary="Get an event and the state of its deliveries",
    response_model=Envelope[EventDetail],
)
async def get_event(
    event_id: str, services: ServicesDep, principal: Read, tenant_id: str | None = TenantQuery
) -> Response:
    if event_id == "batch":  # the path of POST /v1/events/batch, not an event id
        raise ApiError(405, "method GET is not allowed on /v1/events/batch", {"Allow": "POST"})
    tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.read() as conn:
        found = await store.get_event(conn, tenant, event_id)
        deliveries = await delivery_store.for_event(conn, found.seq) if found else []
    if found is None:
        raise not_found(f"event '{event_id}' not found")
    view = event_view(found)
    view["delivery_status"] = [delivery_view(d) for d in deliveries]
    return ok(view, "Event retrieved successfully")
