"""Events and their fan-out: an accepted event and its deliveries are written in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
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


@dataclass(frozen=True)
class _Entry:
    tenant_id: str
    item: NewEvent
    now: datetime


async def _write(store: Store, entries: Sequence[_Entry]) -> list[Accepted]:
    """One transaction for all ``entries`` (of any tenants); see ``ingest_many``."""
    results: list[Accepted] = []
    fresh: list[tuple[_Entry, list[int]]] = []
    async with store.write() as conn:
        by_tenant: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            by_tenant.setdefault(entry.tenant_id, []).append(index)
        answers: dict[int, Accepted] = {}
        for tenant_id, indexes in by_tenant.items():
            found = await _already_accepted(conn, tenant_id, [entries[i].item for i in indexes])
            subscriptions = await active_subscriptions(conn, tenant_id)
            routes: dict[tuple[str, tuple[str, ...] | None], list[int]] = {}
            for index in indexes:
                item = entries[index].item
                if (prior := _first_match(found, item)) is not None:
                    answers[index] = Accepted(prior.id, prior.event, prior.deliveries, created=False)
                    continue
                route = (item.event_type, tuple(item.channels) if item.channels else None)
                if (targets := routes.get(route)) is None:  # matched once per type and channels
                    targets = routes[route] = [
                        s.endpoint_id for s in subscriptions if receives(s, item.event_type, item.channels)
                    ]
                answers[index] = accepted = Accepted(item.id, item.event_type, len(targets), created=True)
                fresh.append((entries[index], targets))
                for key in item.dedup_keys():  # a repeat later in the same batch replays this one
                    found[key] = accepted
        results = [answers[i] for i in range(len(entries))]
        if not fresh:
            return results
        inserted = await conn.execute(
            events.insert().returning(events.c.seq, sort_by_parameter_order=True),
            [
                {
                    "id": entry.item.id,
                    "tenant_id": entry.tenant_id,
                    "event_type": entry.item.event_type,
                    "idempotency_key": entry.item.idempotency_key,
                    "channels": entry.item.channels,
                    "payload": orjson.dumps(
                        {
                            "id": entry.item.id,
                            "event": entry.item.event_type,
                            "timestamp": format_timestamp(entry.now),
                            "data": entry.item.data,
                        }
                    ),
                    "delivery_count": len(targets),
                    "created_at": entry.now,
                }
                for entry, targets in fresh
            ],
        )
        delivery_rows = [
            {
                "event_seq": seq,
                "endpoint_id": endpoint_id,
                "tenant_id": entry.tenant_id,
                "event_type": entry.item.event_type,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": entry.now,
                "created_at": entry.now,
                "updated_at": entry.now,
            }
            for seq, (entry, targets) in zip(inserted.scalars().all(), fresh, strict=True)
            for endpoint_id in targets
        ]
        if delivery_rows:
            await conn.execute(deliveries.insert(), delivery_rows)
    if delivery_rows:
        store.announce_new_work()
    return results


async def _write_settling_races(store: Store, entries: Sequence[_Entry]) -> list[Accepted]:
    """``_write``; if a concurrent writer took one of the ids first (a unique constraint fails), the
    entries are taken one by one, and the one that lost the race answers with the winner's result."""
    try:
        return await _write(store, entries)
    except IntegrityError:
        if len(entries) > 1:
            return [(await _write_settling_races(store, [entry]))[0] for entry in entries]
        entry = entries[0]
        async with store.read() as conn:
            prior = _first_match(await _already_accepted(conn, entry.tenant_id, [entry.item]), entry.item)
        if prior is None:
            raise
        return [prior]


async def ingest_many(
    store: Store, tenant_id: str, items: Sequence[NewEvent], now: datetime
) -> list[Accepted]:
    """Store events and one pending delivery per subscribed active endpoint, all in one transaction.

    An event whose client-chosen id or idempotency key was seen before returns the first result
    (``created=False``) and writes nothing. Requests racing with the same id are settled by the unique
    constraints: the loser's transaction fails, and its events are then taken one by one."""
    return await _write_settling_races(store, [_Entry(tenant_id, item, now) for item in items])


class EventWriter:
    """Group commit for events posted one per request.

    A request whose event arrives while a write is in flight joins the next transaction, so concurrent
    requests share one commit (one WAL flush, one fsync) instead of queueing for one each. A lone request
    is written at once: grouping adds no wait, it only collects what is already waiting. Each request is
    answered after the commit that holds its event."""

    max_group = 500

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[tuple[_Entry, asyncio.Future[Accepted]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def ingest(self, tenant_id: str, item: NewEvent, now: datetime) -> Accepted:
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append((_Entry(tenant_id, item, now), future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            group = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
            try:
                results = await _write(self._store, [entry for entry, _ in group])
            except IntegrityError:
                # Another writer took one of these ids first: settle each request on its own, so that
                # each gets its own answer (a committed event is never reported as a failure).
                for entry, future in group:
                    await _answer(future, _write_settling_races(self._store, [entry]))
                continue
            except Exception as exc:  # nothing was committed: every request gets the error (e.g. a 503)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)


async def _answer(future: asyncio.Future[Accepted], write: Awaitable[list[Accepted]]) -> None:
    try:
        [result] = await write
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(result)


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
