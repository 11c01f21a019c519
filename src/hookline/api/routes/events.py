"""/v1/events: the platform posts events; each is stored with its deliveries before we answer 202."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from hookline.api.auth import Authenticated, ServicesDep, resolve_tenant
from hookline.api.envelope import bad_request, not_found, ok
from hookline.api.pagination import Cursor, Limit, decode_int_cursor, page, require_timezone
from hookline.api.routes.deliveries import delivery_view
from hookline.api.routes.webhooks import TenantQuery, _check_channels
from hookline.catalog import first_schema_error, suggest
from hookline.ids import new_id
from hookline.store import deliveries as delivery_store
from hookline.store import events as store
from hookline.store.events import Event, NewEvent

router = APIRouter(prefix="/v1/events", tags=["events"])

EVENT_ID = r"^[A-Za-z0-9_.:-]{1,200}$"


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
        "timestamp": body["timestamp"],
        "data": body["data"],
        "channels": e.channels,
        "deliveries": e.delivery_count,
        "created_at": e.created_at,
    }


@router.post("", status_code=202, summary="Post an event for delivery")
async def create_event(
    body: EventCreate,
    services: ServicesDep,
    principal: Authenticated,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    tenant_id = await resolve_tenant(services, principal, body.tenant_id)
    await _checked(services, body.event, body.data)
    item = NewEvent(
        id=body.id or new_id("evt"),
        client_id=body.id is not None,
        event_type=body.event,
        data=body.data,
        channels=body.channels,
        idempotency_key=idempotency_key or None,
    )
    accepted = await services.event_writer.ingest(tenant_id, item, services.now())
    data = {"id": accepted.id, "event": accepted.event, "deliveries": accepted.deliveries}
    if accepted.created:
        return ok(data, "Event accepted for delivery", 202)
    return ok(data, "Event already accepted; nothing new was created", 202, {"Idempotent-Replayed": "true"})


MAX_BATCH = 1000


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


async def _checked(services: ServicesDep, name: str, data: dict[str, Any], where: str = "") -> None:
    """Raise a 400 naming the problem if ``name`` is unknown or ``data`` breaks its schema."""
    event_type = await services.registry.get(name)
    if event_type is None:
        hints = suggest(name, await services.registry.names())
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise bad_request(f"{where}unknown event type '{name}'{hint}")
    if problem := first_schema_error(event_type.schema, data):
        raise bad_request(f"{where}{problem}")


@router.post("/batch", status_code=202, summary=f"Post up to {MAX_BATCH} events in one transaction")
async def create_events(body: EventBatch, services: ServicesDep, principal: Authenticated) -> Response:
    """All or nothing: one invalid event rejects the batch (the error names its index)."""
    tenant_id = await resolve_tenant(services, principal, body.tenant_id)
    for index, entry in enumerate(body.events):
        await _checked(services, entry.event, entry.data, f"events[{index}]: ")
    items = [
        NewEvent(
            id=entry.id or new_id("evt"),
            client_id=entry.id is not None,
            event_type=entry.event,
            data=entry.data,
            channels=entry.channels,
        )
        for entry in body.events
    ]
    results = await store.ingest_many(services.store, tenant_id, items, services.now())
    data = {
        "accepted": sum(r.created for r in results),
        "items": [
            {"id": r.id, "event": r.event, "deliveries": r.deliveries, "created": r.created} for r in results
        ],
    }
    return ok(data, f"{data['accepted']} events accepted for delivery", 202)


@router.get("", summary="List events, newest first")
async def list_events(
    services: ServicesDep,
    principal: Authenticated,
    limit: Limit = 50,
    cursor: Cursor = None,
    event: Annotated[str | None, Query(description="only this event type")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
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


@router.get("/{event_id}", summary="Get an event and the state of its deliveries")
async def get_event(
    event_id: str, services: ServicesDep, principal: Authenticated, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.read() as conn:
        found = await store.get_event(conn, tenant, event_id)
        deliveries = await delivery_store.for_event(conn, found.seq) if found else []
    if found is None:
        raise not_found(f"event '{event_id}' not found")
    view = event_view(found)
    view["delivery_status"] = [delivery_view(d) for d in deliveries]
    return ok(view, "Event retrieved successfully")
