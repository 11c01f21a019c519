"""Events and their fan-out: an accepted event and its deliveries are written in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass(frozen=True)
class NewEvent:
    """An event to ingest; ``client_id`` says whether the platform chose the id (then it de-duplicates)."""

    id: str
    client_id: bool
    event_type: str
    data: Any
    channels: list[str] | None = None
    idempotency_key: str | None = None

    def dedup_keys(self) -> list[tuple[str, str]]:
        """What makes a repeat of this event recognisable: its own id (if chosen) and its key."""
        found = [("id", self.id)] if self.client_id else []
        if self.idempotency_key is not None:
            found.append(("key", self.idempotency_key))
        return found


async def _already_accepted(
    conn: AsyncConnection, tenant_id: str, items: Sequence[NewEvent]
) -> dict[tuple[str, str], Accepted]:
    ids = [i.id for i in items if i.client_id]
    keys = [i.idempotency_key for i in items if i.idempotency_key is not None]
    if not ids and not keys:
        return {}
    query = sa.select(
        events.c.id, events.c.event_type, events.c.delivery_count, events.c.idempotency_key
    ).where(events.c.tenant_id == tenant_id, sa.or_(events.c.id.in_(ids), events.c.idempotency_key.in_(keys)))
    found: dict[tuple[str, str], Accepted] = {}
    for row in await conn.execute(query):
        accepted = Accepted(row.id, row.event_type, row.delivery_count, created=False)
        found[("id", row.id)] = accepted
        if row.idempotency_key is not None:
            found[("key", row.idempotency_key)] = accepted
    return found


def _first_match(found: dict[tuple[str, str], Accepted], item: NewEvent) -> Accepted | None:
    for key in item.dedup_keys():
        if key in found:
            return found[key]
    return None


async def _write(store: Store, tenant_id: str, items: Sequence[NewEvent], now: datetime) -> list[Accepted]:
    stamp = format_timestamp(now)
    async with store.write() as conn:
        found = await _already_accepted(conn, tenant_id, items)
        subscriptions = await active_subscriptions(conn, tenant_id)
        results: list[Accepted] = []
        fresh: list[tuple[NewEvent, list[int]]] = []
        routes: dict[tuple[str, tuple[str, ...] | None], list[int]] = {}
        for item in items:
            if (prior := _first_match(found, item)) is not None:
                results.append(Accepted(prior.id, prior.event, prior.deliveries, created=False))
                continue
            route = (item.event_type, tuple(item.channels) if item.channels else None)
            if (targets := routes.get(route)) is None:  # matched once per type and channels in a batch
                targets = routes[route] = [
                    s.endpoint_id for s in subscriptions if receives(s, item.event_type, item.channels)
                ]
            accepted = Accepted(item.id, item.event_type, len(targets), created=True)
            results.append(accepted)
            fresh.append((item, targets))
            for key in item.dedup_keys():  # a repeat later in the same batch replays this one
                found[key] = accepted
        if not fresh:
            return results
        inserted = await conn.execute(
            events.insert().returning(events.c.seq, sort_by_parameter_order=True),
            [
                {
                    "id": item.id,
                    "tenant_id": tenant_id,
                    "event_type": item.event_type,
                    "idempotency_key": item.idempotency_key,
                    "channels": item.channels,
                    "payload": orjson.dumps(
                        {"id": item.id, "event": item.event_type, "timestamp": stamp, "data": item.data}
                    ),
                    "delivery_count": len(targets),
                    "created_at": now,
                }
                for item, targets in fresh
            ],
        )
        delivery_rows = [
            {
                "event_seq": seq,
                "endpoint_id": endpoint_id,
                "tenant_id": tenant_id,
                "event_type": item.event_type,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for seq, (item, targets) in zip(inserted.scalars().all(), fresh, strict=True)
            for endpoint_id in targets
        ]
        if delivery_rows:
            await conn.execute(deliveries.insert(), delivery_rows)
    if delivery_rows:
        store.announce_new_work()
    return results


async def ingest_many(
    store: Store, tenant_id: str, items: Sequence[NewEvent], now: datetime
) -> list[Accepted]:
    """Store events and one pending delivery per subscribed active endpoint, all in one transaction.

    An event whose client-chosen id or idempotency key was seen before returns the first result
    (``created=False``) and writes nothing. Requests racing with the same id are settled by the unique
    constraints: the loser's transaction fails, and its events are then taken one by one."""
    try:
        return await _write(store, tenant_id, items, now)
    except IntegrityError:
        if len(items) > 1:
            return [(await ingest_many(store, tenant_id, [item], now))[0] for item in items]
        async with store.read() as conn:
            prior = _first_match(await _already_accepted(conn, tenant_id, items), items[0])
        if prior is None:
            raise
        return [prior]


async def ingest(store: Store, *, tenant_id: str, item: NewEvent, now: datetime) -> Accepted:
    return (await ingest_many(store, tenant_id, [item], now))[0]


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
