"""Events and their fan-out: an accepted event and its deliveries are written in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.catalog import subscribes_to
from hookline.store.endpoints import Subscription, active_subscriptions
from hookline.store.engine import Store
from hookline.store.queue import wake_workers
from hookline.store.schema import deliveries, events


@dataclass(frozen=True)
class Accepted:
    """What the API answers for an ingested event; ``created`` is False for a replayed duplicate."""

    id: str
    event: str
    deliveries: int
    created: bool


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    tenant_id: str
    event_type: str
    idempotency_key: str | None
    channels: list[str] | None
    payload: bytes
    delivery_count: int
    created_at: datetime

    @property
    def body(self) -> dict[str, Any]:
        decoded: dict[str, Any] = orjson.loads(self.payload)
        return decoded


@dataclass(frozen=True)
class DeliverySummary:
    id: int
    endpoint_id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


def receives(sub: Subscription, event_type: str, channels: list[str] | None) -> bool:
    """An endpoint receives an event when it subscribes to its type and, if it lists channels,
    shares at least one channel with the event."""
    if not subscribes_to(sub.events, event_type):
        return False
    if sub.channels:
        return bool(channels) and not set(sub.channels).isdisjoint(channels or ())
    return True


def format_timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _existing(
    conn: AsyncConnection, tenant_id: str, event_id: str | None, idempotency_key: str | None
) -> Accepted | None:
    conditions = []
    if event_id is not None:
        conditions.append(events.c.id == event_id)
    if idempotency_key is not None:
        conditions.append(events.c.idempotency_key == idempotency_key)
    if not conditions:
        return None
    query = (
        sa.select(events.c.id, events.c.event_type, events.c.delivery_count)
        .where(events.c.tenant_id == tenant_id, sa.or_(*conditions))
        .order_by(events.c.seq)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return Accepted(row[0], row[1], row[2], created=False) if row else None


async def ingest(
    store: Store,
    *,
    tenant_id: str,
    event_id: str,
    client_id: bool,
    event_type: str,
    data: Any,
    channels: list[str] | None,
    idempotency_key: str | None,
    now: datetime,
) -> Accepted:
    """Store the event and one pending delivery per subscribed active endpoint, atomically.

    A repeated client-supplied id or idempotency key returns the first event's result and writes
    nothing; two such requests racing each other are settled by the unique constraints."""
    lookup_id = event_id if client_id else None
    payload = orjson.dumps(
        {"id": event_id, "event": event_type, "timestamp": format_timestamp(now), "data": data}
    )
    try:
        async with store.write() as conn:
            if (found := await _existing(conn, tenant_id, lookup_id, idempotency_key)) is not None:
                return found
            targets = [
                s.endpoint_id
                for s in await active_subscriptions(conn, tenant_id)
                if receives(s, event_type, channels)
            ]
            seq = (
                await conn.execute(
                    events.insert()
                    .values(
                        id=event_id,
                        tenant_id=tenant_id,
                        event_type=event_type,
                        idempotency_key=idempotency_key,
                        channels=channels,
                        payload=payload,
                        delivery_count=len(targets),
                        created_at=now,
                    )
                    .returning(events.c.seq)
                )
            ).scalar_one()
            if targets:
                await conn.execute(
                    deliveries.insert(),
                    [
                        {
                            "event_seq": seq,
                            "endpoint_id": endpoint_id,
                            "tenant_id": tenant_id,
                            "event_type": event_type,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for endpoint_id in targets
                    ],
                )
                await wake_workers(conn, store)
    except IntegrityError:
        async with store.read() as conn:
            found = await _existing(conn, tenant_id, lookup_id, idempotency_key)
        if found is None:
            raise
        return found
    if targets:
        store.announce_new_work()
    return Accepted(event_id, event_type, len(targets), created=True)


async def get_event(conn: AsyncConnection, tenant_id: str, event_id: str) -> Event | None:
    query = events.select().where(events.c.tenant_id == tenant_id, events.c.id == event_id)
    row = (await conn.execute(query)).mappings().first()
    return Event(**row) if row else None


async def list_events(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    before: int | None,
    limit: int,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Event]:
    """Newest first; ``before`` is the ``seq`` cursor of the last event of the previous page."""
    query = events.select().where(events.c.tenant_id == tenant_id).order_by(events.c.seq.desc()).limit(limit)
    if before is not None:
        query = query.where(events.c.seq < before)
    if event_type is not None:
        query = query.where(events.c.event_type == event_type)
    if since is not None:
        query = query.where(events.c.created_at >= since)
    if until is not None:
        query = query.where(events.c.created_at < until)
    return [Event(**row) for row in (await conn.execute(query)).mappings()]


async def deliveries_of(conn: AsyncConnection, event_seq: int) -> list[DeliverySummary]:
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.endpoint_id,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.next_attempt_at,
            deliveries.c.last_status_code,
            deliveries.c.last_error,
            deliveries.c.created_at,
            deliveries.c.completed_at,
        )
        .where(deliveries.c.event_seq == event_seq)
        .order_by(deliveries.c.id)
    )
    return [DeliverySummary(**row) for row in (await conn.execute(query)).mappings()]
