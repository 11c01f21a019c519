"""Events and their fan-out: an accepted event and its deliveries are written in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.catalog import subscribes_to
from hookline.javascript_json import stable
from hookline.store.endpoints import Subscription
from hookline.store.engine import Store
from hookline.store.schema import events


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
    pruned_at: datetime | None  # retention removed the payload (``payload`` is empty)

    @property
    def body(self) -> dict[str, Any] | None:
        """The delivered body, decoded; None once retention removed it."""
        if self.pruned_at is not None:
            return None
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


def delivered_body(event_id: str, event_type: str, timestamp: str, data: Any) -> bytes:
    """The bytes an endpoint receives for an event (and that are signed): ``{"id", "event", "timestamp",
    "data"}``, serialized once and stored as they are, laid out as JavaScript writes them
    (``hookline.javascript_json``: a receiver that checks ``JSON.stringify(req.body)`` gets these bytes)."""
    body = {"id": event_id, "event": event_type, "timestamp": timestamp, "data": stable(data)}
    return orjson.dumps(body)


@dataclass(frozen=True)
class NewEvent:
    """An event to ingest; ``client_id`` says whether the platform chose the id (then it de-duplicates)."""

    id: str
    client_id: bool
    event_type: str
    data: Any
    channels: list[str] | None = None
    idempotency_key: str | None = None
    exclude_endpoint: int | None = None  # an endpoint never to deliver it to (an operational event's subject)
    only_if_routed: bool = False  # not stored at all when no endpoint receives it (operational events)

    def dedup_keys(self) -> list[tuple[str, str]]:
        """What makes a repeat of this event recognisable: its own id (if chosen) and its key."""
        found = [("id", self.id)] if self.client_id else []
        if self.idempotency_key is not None:
            found.append(("key", self.idempotency_key))
        return found


# Raw statements for the reads on the write path: no SQL construction, compilation or cache-key work per
# call (a single-event group commit runs them for every transaction).
# Two index lookups (the unique (tenant_id, id) and (tenant_id, idempotency_key)), never a scan of the
# tenant's events; an event found by both appears twice, to the same effect.
_PG_ACCEPTED = (
    "SELECT id, event_type, delivery_count, idempotency_key FROM events"
    " WHERE tenant_id = $1 AND id = ANY($2::text[])"
    " UNION ALL SELECT id, event_type, delivery_count, idempotency_key FROM events"
    " WHERE tenant_id = $1 AND idempotency_key = ANY($3::text[])"
)
_SQLITE_ACCEPTED = (
    "SELECT id, event_type, delivery_count, idempotency_key FROM events"
    " WHERE tenant_id = ?1 AND id IN (SELECT value FROM json_each(?2))"
    " UNION ALL SELECT id, event_type, delivery_count, idempotency_key FROM events"
    " WHERE tenant_id = ?1 AND idempotency_key IN (SELECT value FROM json_each(?3))"
)
# The JSON columns come back as text and are parsed here (see ``_parsed``), not by the driver's codec.
_PG_SUBSCRIPTIONS = "SELECT id, events::text, channels::text FROM endpoints WHERE tenant_id = $1 ORDER BY id"
_SQLITE_SUBSCRIPTIONS = "SELECT id, events, channels FROM endpoints WHERE tenant_id = ? ORDER BY id"


async def _already_accepted(
    conn: AsyncConnection, tenant_id: str, items: Sequence[NewEvent]
) -> dict[tuple[str, str], Accepted]:
    ids = [i.id for i in items if i.client_id]
    keys = [i.idempotency_key for i in items if i.idempotency_key is not None]
    if not ids and not keys:
        return {}
    rows: Any
    if conn.dialect.name == "sqlite":
        rows = await conn.exec_driver_sql(
            _SQLITE_ACCEPTED, (tenant_id, orjson.dumps(ids).decode(), orjson.dumps(keys).decode())
        )
    else:
        rows = await conn.exec_driver_sql(_PG_ACCEPTED, (tenant_id, ids, keys))
    found: dict[tuple[str, str], Accepted] = {}
    for event_id, event_type, delivery_count, idempotency_key in rows:
        accepted = Accepted(event_id, event_type, delivery_count, created=False)
        found[("id", event_id)] = accepted
        if idempotency_key is not None:
            found[("key", idempotency_key)] = accepted
    return found


_PARSED: dict[str | None, Any] = {}


def _parsed(text: str | None) -> Any:
    """A JSON column's value; the few distinct subscription lists are parsed once, not per write."""
    try:
        return _PARSED[text]
    except KeyError:
        pass
    value = None if text is None else orjson.loads(text)
    if len(_PARSED) >= 4096:
        _PARSED.clear()
    _PARSED[text] = value
    return value


async def _subscriptions(conn: AsyncConnection, tenant_id: str) -> list[Subscription]:
    """The tenant's endpoints and what they subscribe to. A disabled endpoint gets its deliveries too:
    they are held until it is enabled again (or discarded then), never silently dropped."""
    statement = _SQLITE_SUBSCRIPTIONS if conn.dialect.name == "sqlite" else _PG_SUBSCRIPTIONS
    rows: Any = await conn.exec_driver_sql(statement, (tenant_id,))  # plain tuples (raw SQL, no types)
    return [
        Subscription(endpoint_id, _parsed(patterns), _parsed(channels))
        for endpoint_id, patterns, channels in rows
    ]


def _first_match(found: dict[tuple[str, str], Accepted], item: NewEvent) -> Accepted | None:
    for key in item.dedup_keys():
        if key in found:
            return found[key]
    return None


class _Entry(NamedTuple):
    tenant_id: str
    item: NewEvent
    now: datetime


# PostgreSQL: the events and their deliveries in one statement (one round trip, one plan for any batch
# size). Each column travels as one array; the deliveries find their event's generated ``seq`` through
# the CTE's RETURNING, so no key comes back to Python. WITH ORDINALITY keeps delivery ids in the order
# of the events and their targets. The endpoints' wakes (``endpoint_wakes``) commit with them.
_PG_INSERT = """
WITH e AS (
    INSERT INTO events
        (id, tenant_id, event_type, idempotency_key, channels, payload, delivery_count, created_at)
    SELECT id, tenant_id, event_type, idempotency_key, channels::jsonb, payload, delivery_count, created_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[],
                $8::timestamptz[])
        AS t(id, tenant_id, event_type, idempotency_key, channels, payload, delivery_count, created_at)
    RETURNING seq, id, tenant_id, event_type, created_at
), wakes AS (
    INSERT INTO endpoint_wakes (endpoint_id)
    SELECT DISTINCT endpoint_id FROM unnest($11::bigint[]) AS w(endpoint_id)
)
INSERT INTO deliveries
    (event_seq, endpoint_id, tenant_id, event_type, status, attempts, next_attempt_at, created_at, updated_at)
SELECT e.seq, d.endpoint_id, e.tenant_id, e.event_type, 'pending', 0, e.created_at, e.created_at, e.created_at
FROM unnest($9::text[], $10::text[], $11::bigint[]) WITH ORDINALITY AS d(tenant_id, event_id, endpoint_id, n)
JOIN e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
ORDER BY d.n
"""

# SQLite: the events with one executemany (bound by the driver, in C), then every delivery with one
# INSERT ... SELECT that finds each event's ``seq`` by its unique (tenant_id, id).
_SQLITE_INSERT_EVENTS = (
    "INSERT INTO events (id, tenant_id, event_type, idempotency_key, channels, payload, delivery_count,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_INSERT_DELIVERIES = """
INSERT INTO deliveries
    (event_seq, endpoint_id, tenant_id, event_type, status, attempts, next_attempt_at, created_at, updated_at)
SELECT e.seq, json_extract(d.value, '$[2]'), e.tenant_id, e.event_type, 'pending', 0,
       e.created_at, e.created_at, e.created_at
FROM json_each(?) AS d CROSS JOIN events AS e
WHERE e.tenant_id = json_extract(d.value, '$[0]') AND e.id = json_extract(d.value, '$[1]')
ORDER BY d.key
"""
_SQLITE_INSERT_WAKES = (
    "INSERT INTO endpoint_wakes (endpoint_id) SELECT DISTINCT json_extract(value, '$[2]') FROM json_each(?)"
)


def _decide(
    entries: Sequence[_Entry],
    found_by_tenant: dict[str, dict[tuple[str, str], Accepted]],
    subscriptions_by_tenant: dict[str, list[Subscription]],
) -> tuple[list[Accepted], list[tuple[_Entry, list[int]]]]:
    """Each entry's answer, and the new events with the endpoints they go to (in entry order)."""
    results: list[Accepted] = []
    fresh: list[tuple[_Entry, list[int]]] = []
    routes: dict[tuple[str, str, tuple[str, ...] | None], list[int]] = {}
    for entry in entries:
        tenant_id, item, _ = entry
        found = found_by_tenant.get(tenant_id)
        if found and (prior := _first_match(found, item)) is not None:
            results.append(Accepted(prior.id, prior.event, prior.deliveries, created=False))
            continue
        channels = item.channels
        route = (tenant_id, item.event_type, tuple(channels) if channels else None)
        if (targets := routes.get(route)) is None:  # matched once per tenant, type and channels
            targets = routes[route] = [
                s.endpoint_id
                for s in subscriptions_by_tenant[tenant_id]
                if receives(s, item.event_type, channels)
            ]
        if item.exclude_endpoint is not None:
            targets = [e for e in targets if e != item.exclude_endpoint]
        if item.only_if_routed and not targets:
            results.append(Accepted(item.id, item.event_type, 0, created=False))
            continue
        accepted = Accepted(item.id, item.event_type, len(targets), created=True)
        results.append(accepted)
        fresh.append((entry, targets))
        if item.client_id or item.idempotency_key is not None:  # a repeat later in the batch replays it
            if found is None:
                found = found_by_tenant[tenant_id] = {}
            for key in item.dedup_keys():
                found[key] = accepted
    return results, fresh


_BINDERS: dict[tuple[str, str], Callable[[Any], Any]] = {}


def _timestamp_binder(dialect: Dialect) -> Callable[[Any], Any]:
    """How SQLAlchemy binds a ``UtcDateTime`` on this dialect (UTC-aware on PostgreSQL, the sortable
    text of the DATETIME type on SQLite), so rows written here compare like rows written by it."""
    key = (dialect.name, dialect.driver)
    if (binder := _BINDERS.get(key)) is None:
        process = events.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        binder = _BINDERS[key] = process if process is not None else (lambda value: value)
    return binder


async def _insert(conn: AsyncConnection, is_sqlite: bool, fresh: list[tuple[_Entry, list[int]]]) -> None:
    """Insert the new events and their pending deliveries (the statements above)."""
    bind_time = _timestamp_binder(conn.dialect)
    stamps: dict[datetime, tuple[Any, str]] = {}  # per distinct `now`: bound value, payload timestamp
    dumps = orjson.dumps
    ids: list[str] = []
    tenant_ids: list[str] = []
    types: list[str] = []
    keys: list[str | None] = []
    channels: list[str] = []
    payloads: list[bytes] = []
    counts: list[int] = []
    created: list[Any] = []
    for (tenant_id, item, now), targets in fresh:
        if (stamp := stamps.get(now)) is None:
            stamp = stamps[now] = (bind_time(now), format_timestamp(now))
        ids.append(item.id)
        tenant_ids.append(tenant_id)
        types.append(item.event_type)
        keys.append(item.idempotency_key)
        channels.append(dumps(item.channels).decode())  # JSON, "null" for none (as the JSON type binds)
        payloads.append(delivered_body(item.id, item.event_type, stamp[1], item.data))
        counts.append(len(targets))
        created.append(stamp[0])
    if is_sqlite:
        await conn.exec_driver_sql(
            _SQLITE_INSERT_EVENTS,
            list(zip(ids, tenant_ids, types, keys, channels, payloads, counts, created, strict=True)),
        )
        targets_json = dumps(
            [
                [entry.tenant_id, entry.item.id, endpoint_id]
                for entry, targets in fresh
                for endpoint_id in targets
            ]
        )
        if targets_json != b"[]":
            await conn.exec_driver_sql(_SQLITE_INSERT_DELIVERIES, (targets_json.decode(),))
            await conn.exec_driver_sql(_SQLITE_INSERT_WAKES, (targets_json.decode(),))
        return
    d_tenants: list[str] = []
    d_events: list[str] = []
    d_endpoints: list[int] = []
    for entry, targets in fresh:
        if targets:
            d_tenants.extend([entry.tenant_id] * len(targets))
            d_events.extend([entry.item.id] * len(targets))
            d_endpoints.extend(targets)
    await conn.exec_driver_sql(
        _PG_INSERT,
        (ids, tenant_ids, types, keys, channels, payloads, counts, created, d_tenants, d_events, d_endpoints),
    )


@asynccontextmanager
async def _writing(store: Store) -> AsyncIterator[AsyncConnection]:
    """Where ``_write`` runs. On PostgreSQL everything it changes is one statement (``_PG_INSERT``),
    atomic and committed on its own, and the reads before it see committed rows either way: autocommit
    saves the BEGIN and COMMIT round trips. SQLite writes take the store's write lock and a transaction."""
    if store.is_sqlite:
        async with store.write() as conn:
            yield conn
        return
    async with store.engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def _write_in(
    conn: AsyncConnection, is_sqlite: bool, entries: Sequence[_Entry]
) -> tuple[list[Accepted], bool]:
    """Store ``entries`` (of any tenants) through ``conn``: the answers, and whether any delivery was
    created (then the caller announces new work once it has committed)."""
    found_by_tenant: dict[str, dict[tuple[str, str], Accepted]] = {}
    subscriptions_by_tenant: dict[str, list[Subscription]] = {}
    for tenant_id in dict.fromkeys(entry.tenant_id for entry in entries):
        items = [entry.item for entry in entries if entry.tenant_id == tenant_id]
        found_by_tenant[tenant_id] = await _already_accepted(conn, tenant_id, items)
        subscriptions_by_tenant[tenant_id] = await _subscriptions(conn, tenant_id)
    results, fresh = _decide(entries, found_by_tenant, subscriptions_by_tenant)
    if fresh:
        await _insert(conn, is_sqlite, fresh)
    return results, any(targets for _, targets in fresh)


async def ingest_within(
    conn: AsyncConnection, is_sqlite: bool, events_by_tenant: Sequence[tuple[str, NewEvent, datetime]]
) -> bool:
    """Store events and their deliveries in the caller's transaction (``hookline.store.notices``
    publishing operational events). True if a delivery was created: announce new work after commit."""
    _, created = await _write_in(conn, is_sqlite, [_Entry(*entry) for entry in events_by_tenant])
    return created


async def _write(store: Store, entries: Sequence[_Entry]) -> list[Accepted]:
    """One transaction for all ``entries`` (of any tenants); see ``ingest_many``."""
    async with _writing(store) as conn:
        results, created = await _write_in(conn, store.is_sqlite, entries)
    if created:
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
    """Store events and one pending delivery per subscribed endpoint, all in one transaction.

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
