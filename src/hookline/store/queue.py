"""The delivery queue: claim due deliveries per endpoint under a lease, record attempts, finish or
reschedule.

A claim is one short transaction (``Claim``): announced work is taken in (``endpoint_wakes``), the due
endpoints are read and locked, oldest ``due_at`` first (``FOR UPDATE SKIP LOCKED``: concurrent workers
take different endpoints), the scheduler (``hookline.dispatch.scheduler``) grants each some deliveries,
one statement leases them from the head of each endpoint's queue and returns what sending needs, and
the endpoints' new state is written. A lease is ``lease_until`` on the delivery, an unindexed column
(a HOT update); if the worker dies the row is simply due again when the lease ends: nothing is lost.
An endpoint's deliveries are leased to one worker at a time: while another worker's lease is live at the
head of its queue, a claim takes none of them (that worker sends them, at most the endpoint's cap at
once), so the cap holds across workers without a counter.

Results are recorded in one transaction too (``Recording``): the endpoints' rows are locked in id
order, the worker's health rules decide their new state, then the deliveries, their attempts and the
states are written. On PostgreSQL these statements run on the pooled connection's asyncpg driver
directly; SQLite runs the same steps through SQLAlchemy, one process owning the queue.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.rollups import Rollup
from hookline.sealing import Keyring, SealError
from hookline.store import endpoint_state as states
from hookline.store import notices as notice_rows
from hookline.store import rollups as rollup_rows
from hookline.store.endpoint_state import FIELDS, MUTABLE, Candidate, EndpointState, Grant, Head
from hookline.store.endpoints import PREVIOUS_SECRETS, SECRET_HEADERS, open_credentials
from hookline.store.engine import Store, driver_connection
from hookline.store.notices import Notice
from hookline.store.schema import attempts, deliveries, endpoint_state, endpoint_wakes, endpoints, events


# Job and Outcome are made once per delivery and never changed (``dataclasses.replace`` makes a new one):
# not frozen only because a frozen dataclass's __init__ sets each field through object.__setattr__, about
# five times the cost of a plain one (4.6 us more per instance on the bench machine, per delivery).
@dataclass(slots=True)
class Job:
    """A claimed delivery and what sending it needs. The endpoint's options are as stored: a row written
    by an older version (or by hand) may hold anything, so the worker checks them before use. Its
    credentials are opened (``headers`` holds the secret headers too); if one does not open with this
    process's keys, ``unreadable`` says why and the worker does not send it."""

    delivery_id: int
    attempt: int  # the number of the attempt about to be made (1 for the first)
    endpoint_id: int
    tenant_id: str
    endpoint_active: bool
    url: str
    secret: str = field(repr=False)
    previous_secrets: list[dict[str, str]] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    timeout_ms: int | None
    retry_schedule: list[float] | None
    max_in_flight: int | None
    event_id: str
    event_type: str
    payload: bytes
    lease_until: datetime
    accepted_at: datetime | None = None  # when its event was accepted (end-to-end latency)
    notes: tuple[str, ...] = ()  # set by the worker's checks: options replaced by the service default
    unreadable: str | None = None  # why a credential of the endpoint could not be opened here
    # The endpoint's ed25519 key (v1a signatures); None: HMAC only.
    signing_key: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class Outcome:
    """What a worker learned from one attempt, ready to be written."""

    delivery_id: int
    endpoint_id: int
    tenant_id: str  # with endpoint_id: what the delivery belonged to when it was claimed
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    request_headers: dict[str, str]
    status: str  # pending (retry) | succeeded | failed
    next_attempt_at: datetime | None
    retry_after: str | None = None  # the receiver's Retry-After, for the endpoint's pause
    sent: bool = True  # False: given up without a request (its options could not be used)
    failure: str | None = None  # why no answer came (``AttemptResult.failure``), for the statistics
    event_id: str = ""  # what the delivery carries, for ``delivery.exhausted``
    event_type: str = ""


# --- claiming ------------------------------------------------------------------------------------------

MAX_WAKES = 10_000  # announcements taken in per claim (the rest by the next)


class Claim:
    """One claim transaction; see the module docstring. ``due_endpoints``, ``lease``, ``save``, in order."""

    async def take_wakes(self, now: datetime) -> bool:
        """Take in the announcements committed so far: their endpoints have work. True if some are
        left for a later claim (their endpoints were locked elsewhere, or there were too many)."""
        raise NotImplementedError

    async def due_endpoints(self, now: datetime, limit: int) -> list[Candidate]:
        raise NotImplementedError

    async def lease(
        self, grants: Sequence[Grant], now: datetime, lease_until: datetime
    ) -> tuple[list[Job], dict[int, Head]]:
        raise NotImplementedError

    async def save(self, changed: Sequence[EndpointState], now: datetime) -> None:
        raise NotImplementedError

    async def next_due(self, now: datetime) -> datetime | None:
        """When the next endpoint that is not due now becomes due (None: none waits)."""
        raise NotImplementedError


_NEXT_DUE = sa.select(sa.func.min(endpoint_state.c.due_at)).where(
    endpoint_state.c.due_at > sa.bindparam("now", type_=endpoint_state.c.due_at.type)
)
_PG_NEXT_DUE = "SELECT min(due_at) FROM endpoint_state WHERE due_at > $1"


@asynccontextmanager
async def claiming(store: Store, worker_id: str) -> AsyncIterator[Claim]:
    if store.is_sqlite:
        async with store.write() as conn:
            yield _SqliteClaim(conn, worker_id, store.keyring)
        return
    async with driver_connection(store) as conn, conn.transaction():
        yield _PgClaim(conn, worker_id, store.keyring)


def _heads(
    grants: Sequence[Grant], taken: Mapping[int, int], stats: Sequence[Any], lease_until: datetime
) -> dict[int, Head]:
    """Head per granted endpoint from the lease's counts: (endpoint_id, free, leased_until, next_due,
    elsewhere). The leases just taken count among the endpoint's leases: if this worker dies, they are
    its work again when they end."""
    heads = {}
    for endpoint_id, free, leased_until, next_due, elsewhere in stats:
        got = taken.get(endpoint_id, 0)
        if got and (leased_until is None or lease_until < leased_until):
            leased_until = lease_until
        heads[endpoint_id] = Head(endpoint_id, got, max(free - got, 0), leased_until, next_due, elsewhere)
    for g in grants:
        heads.setdefault(g.endpoint_id, Head(g.endpoint_id))
    return heads


def _jobs(rows: Iterable[Any], lease_until: datetime, keyring: Keyring) -> list[Job]:
    """Jobs from lease rows. An endpoint's stored options are decoded and its credentials opened once
    per claim, not per job (the decoded values are only read); the keyring remembers what it opened, so
    the next claim for the endpoint opens nothing."""
    decoded: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    jobs = []
    for r in rows:
        key = (r[2], r[6], r[7], r[8], r[10], r[17], r[-1])
        options = decoded.get(key)
        if options is None:
            options = decoded[key] = (*_credentials(r, keyring), _json(r[10], None))
        jobs.append(_job(r, lease_until, *options))
    return jobs


def _credentials(r: Any, keyring: Keyring) -> tuple[str, Any, Any, str | None, str | None]:
    """(secret, previous secrets, custom headers with the secret ones, why they could not be opened,
    the ed25519 signing key). The signing key is the last column on both backends."""
    stored = {
        "secret": r[6],
        "signing_key": r[-1],
        PREVIOUS_SECRETS: _json(r[7], []),
        SECRET_HEADERS: _json(r[17], {}),
    }
    headers = _json(r[8], {})
    try:
        opened = open_credentials(keyring, r[3], stored)
    except SealError as exc:
        return "", [], {}, str(exc), None
    secret_headers = opened[SECRET_HEADERS]
    if secret_headers:
        both = isinstance(headers, dict) and isinstance(secret_headers, dict)
        headers = {**headers, **secret_headers} if both else UNREADABLE
    return opened["secret"], opened[PREVIOUS_SECRETS], headers, None, opened["signing_key"]


def _job(
    r: Any,
    lease_until: datetime,
    secret: str,
    previous_secrets: Any,
    headers: Any,
    unreadable: str | None,
    signing_key: str | None,
    retry_schedule: Any,
) -> Job:
    return Job(
        delivery_id=r[0],
        attempt=r[1] + 1,
        endpoint_id=r[2],
        tenant_id=r[3],
        endpoint_active=r[4],
        url=r[5],
        secret=secret,
        previous_secrets=previous_secrets,
        headers=headers,
        timeout_ms=r[9],
        retry_schedule=retry_schedule,
        max_in_flight=r[11],
        event_id=r[12],
        event_type=r[13],
        payload=r[14],
        lease_until=lease_until,
        accepted_at=r[16],
        unreadable=unreadable,
        signing_key=signing_key,
    )


# PostgreSQL: the statements of a claim, in its transaction.

# Announcements committed so far are taken in (their deliveries are committed with them, so the lease
# below sees them); the endpoints they name have work. An endpoint that was idle takes its place in
# line from when its row last changed (about when it was last served), not from now: behind it are the
# endpoints served since, so a quiet endpoint's new event does not queue behind a busy tenant's
# backlog. Only the wakes of endpoints this transaction could lock are taken: one locked by another
# worker may be settling as idle from a lease that did not see the new deliveries, so its wakes stay
# for a later claim (the statement says how many were left), as do those beyond the limit. Wakes of an
# endpoint that is gone are dropped. Nothing here waits for a lock.
_PG_TAKE_WAKES = """
WITH w AS (
    SELECT id, endpoint_id FROM endpoint_wakes ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
), s AS (
    SELECT endpoint_id, work_at FROM endpoint_state
    WHERE endpoint_id IN (SELECT endpoint_id FROM w)
    ORDER BY endpoint_id
    FOR UPDATE SKIP LOCKED
), taken AS (
    DELETE FROM endpoint_wakes
    WHERE id IN (
        SELECT id FROM w WHERE endpoint_id IN (SELECT endpoint_id FROM s)
           OR NOT EXISTS (SELECT 1 FROM endpoint_state AS e WHERE e.endpoint_id = w.endpoint_id)
    )
    RETURNING id
), woken AS (
    UPDATE endpoint_state SET work_at = LEAST(updated_at, $1)
    WHERE endpoint_id IN (SELECT endpoint_id FROM s WHERE work_at IS NULL OR work_at > $1)
)
SELECT (SELECT count(*) FROM w) - (SELECT count(*) FROM taken), (SELECT count(*) FROM w)
"""

_STATE_COLUMNS = ", ".join(f"s.{name}" for name in FIELDS)
_PG_DUE_ENDPOINTS = f"""
SELECT {_STATE_COLUMNS}, p.rate_limit, p.max_in_flight, p.circuit_breaker::text
FROM endpoint_state AS s JOIN endpoints AS p ON p.id = s.endpoint_id
WHERE s.due_at <= $1
ORDER BY s.due_at
LIMIT $2
FOR UPDATE OF s SKIP LOCKED
"""

# Per granted endpoint: its first ``window`` due deliveries (the head). An endpoint is leased to one
# worker at a time: if another worker's lease is live in the head, nothing is taken (that worker sends
# them, at most its cap at once). Otherwise the first ``quota`` of the head not leased are leased. The
# rows come back in two kinds: 'j', a leased delivery with what sending it needs; 's', one per endpoint,
# what the head held (unleased rows, the earliest lease end) and when its next delivery not yet due is
# due.
_PG_LEASE = """
WITH g AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[]) AS g(endpoint_id, quota, size)
), head AS (
    SELECT g.endpoint_id, g.quota, h.id, h.next_attempt_at, h.lease_until, h.leased_by
    FROM g CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at, d.lease_until, d.leased_by FROM deliveries AS d
        WHERE d.endpoint_id = g.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= $4
        ORDER BY d.next_attempt_at, d.id
        LIMIT g.size
    ) AS h
), elsewhere AS (
    SELECT DISTINCT endpoint_id FROM head WHERE lease_until > $4 AND leased_by <> $6
), free AS (
    SELECT endpoint_id, id, quota,
           row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS k
    FROM head
    WHERE (lease_until IS NULL OR lease_until <= $4)
      AND endpoint_id NOT IN (SELECT endpoint_id FROM elsewhere)
), leased AS (
    -- By primary key, whatever the statistics say. When they still said no delivery was pending (a
    -- large history of finished ones, analyzed before a burst), the planner took the pending index for
    -- a one-row index and scanned all of it: joined to ``free``, 5 s a claim with 5,100,000 finished
    -- deliveries; by id but with ``status = 'pending'`` (which lets it use that index), 0.1-0.2 s.
    -- ``status || ''`` keeps the same test but hides it from the index's predicate: 13 ms, as with
    -- fresh statistics.
    UPDATE deliveries AS d SET lease_until = $5, leased_by = $6
    WHERE d.id = ANY (ARRAY(SELECT id FROM free WHERE k <= quota))
      AND d.status || '' = 'pending' AND (d.lease_until IS NULL OR d.lease_until <= $4)
    RETURNING d.id, d.attempts, d.endpoint_id, d.event_seq, d.tenant_id, d.next_attempt_at
)
SELECT 'j', l.id, l.attempts, l.endpoint_id, l.tenant_id, p.active, p.url, p.secret,
       p.previous_secrets::text, p.headers::text, p.timeout_ms, p.retry_schedule::text, p.max_in_flight,
       e.id, e.event_type, e.payload, l.next_attempt_at, e.created_at, p.secret_headers::text, NULL::bool,
       p.signing_key
FROM leased AS l
JOIN endpoints AS p ON p.id = l.endpoint_id AND p.tenant_id = l.tenant_id
JOIN events AS e ON e.seq = l.event_seq
UNION ALL
SELECT 's', g.endpoint_id, (SELECT count(*) FROM free AS f WHERE f.endpoint_id = g.endpoint_id)::int,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       (SELECT min(h.lease_until) FROM head AS h WHERE h.endpoint_id = g.endpoint_id AND h.lease_until > $4),
       (SELECT min(d.next_attempt_at) FROM deliveries AS d
        WHERE d.endpoint_id = g.endpoint_id AND d.status = 'pending' AND d.next_attempt_at > $4),
       NULL, g.endpoint_id IN (SELECT endpoint_id FROM elsewhere), NULL
FROM g
"""

# The lease is planned for the values at hand, never from a cached generic plan. A generic plan is
# built once per connection from the statistics of that moment, and one built while the queue was
# nearly empty (a fresh deployment's first deliveries) updated the leased rows by scanning every
# pending delivery instead of looking each up by id: with 50,000 pending it took ~1 s per claim, and
# the worker ran at a few hundred deliveries a second until asyncpg re-prepared the statement (300 s).
# Reproduced with plan_cache_mode = force_generic_plan and auto_explain; PostgreSQL's default mode
# switches to the generic plan after five executions, so it fell into this now and then. Planning the
# lease each time costs about a millisecond.
_PG_PLAN_EACH_TIME = "SET LOCAL plan_cache_mode = force_custom_plan"

_PG_SAVE_TYPES = {
    "work_at": "timestamptz",
    "blocked_until": "timestamptz",
    "hold": "text",
    "breaker_state": "text",
    "consecutive_failures": "int",
    "window_started_at": "timestamptz",
    "window_requests": "int",
    "window_failures": "int",
    "opened_at": "timestamptz",
    "next_probe_at": "timestamptz",
    "open_count": "int",
    "limiter_tat": "timestamptz",
    "paused_until": "timestamptz",
    "last_success_at": "timestamptz",
    "failing_since": "timestamptz",
    "verification": "text",
    "verification_error": "text",
    "verified_at": "timestamptz",
    "alert_window_started_at": "timestamptz",
    "alert_window_requests": "int",
    "alert_window_failures": "int",
    "failing_alerted_at": "timestamptz",
}
assert tuple(_PG_SAVE_TYPES) == MUTABLE
_PG_SAVE = (
    "UPDATE endpoint_state AS s SET "
    + ", ".join(f"{name} = u.{name}" for name in MUTABLE)
    + ", updated_at = $1 FROM unnest($2::bigint[], "
    + ", ".join(f"${i + 3}::{kind}[]" for i, kind in enumerate(_PG_SAVE_TYPES.values()))
    + ") AS u(endpoint_id, "
    + ", ".join(MUTABLE)
    + ") WHERE s.endpoint_id = u.endpoint_id"
)
# A claim's save and its next due time in one round trip: the rows just written report their new due_at
# (RETURNING sees the generated column), the others are read as they were.
# The leading comments tell the two statements apart in pg_stat_activity, which shows a statement's first
# kilobyte only: the claim's and the recorder's begin with the same save.
_PG_SAVE_AND_NEXT_DUE = (
    "/* claim */ WITH saved AS (" + _PG_SAVE + " RETURNING s.endpoint_id, s.due_at) SELECT least("
    "(SELECT min(due_at) FROM saved WHERE due_at > $1), "
    "(SELECT min(due_at) FROM endpoint_state WHERE due_at > $1 "
    "AND endpoint_id NOT IN (SELECT endpoint_id FROM saved)))"
)


def _pg_save_args(changed: Sequence[EndpointState], now: datetime) -> list[Any]:
    return [now, [s.endpoint_id for s in changed], *([getattr(s, name) for s in changed] for name in MUTABLE)]


async def _pg_save(conn: asyncpg.Connection, changed: Sequence[EndpointState], now: datetime) -> None:
    if changed:
        await conn.execute(_PG_SAVE, *_pg_save_args(changed, now))


def _shifted(statement: str, by: int) -> str:
    """``statement`` with its parameters renumbered from ``$1 + by`` (to follow another's)."""
    return re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + by}", statement)


# A batch's states and statistics rows in one statement (one round trip fewer per batch of answers).
_PG_SAVE_AND_APPEND = f"/* record */ WITH saved AS ({_PG_SAVE}) " + _shifted(
    rollup_rows.PG_APPEND.strip(), 2 + len(MUTABLE)
)


def _candidate(r: Any) -> Candidate:
    n = len(FIELDS)
    state = EndpointState(*r[:n])
    return Candidate(state, rate_limit=r[n], max_in_flight=r[n + 1], circuit_breaker=_json(r[n + 2], None))


class _PgClaim(Claim):
    def __init__(self, conn: asyncpg.Connection, worker_id: str, keyring: Keyring) -> None:
        self._conn = conn
        self._worker_id = worker_id
        self._keyring = keyring
        self._next_due: datetime | None = None

    async def take_wakes(self, now: datetime) -> bool:
        left, seen = await self._conn.fetchrow(_PG_TAKE_WAKES, now, MAX_WAKES)
        return bool(left) or seen >= MAX_WAKES

    async def due_endpoints(self, now: datetime, limit: int) -> list[Candidate]:
        return [_candidate(r) for r in await self._conn.fetch(_PG_DUE_ENDPOINTS, now, limit)]

    async def lease(
        self, grants: Sequence[Grant], now: datetime, lease_until: datetime
    ) -> tuple[list[Job], dict[int, Head]]:
        if not grants:
            return [], {}
        await self._conn.execute(_PG_PLAN_EACH_TIME)
        rows = await self._conn.fetch(
            _PG_LEASE,
            [g.endpoint_id for g in grants],
            [g.quota for g in grants],
            [g.window for g in grants],
            now,
            lease_until,
            self._worker_id,
        )
        # In each endpoint's queue order, oldest due first (the run queue sends them in this order).
        leased = sorted((r for r in rows if r[0] == "j"), key=lambda r: (r[16], r[1]))
        jobs = _jobs((r[1:] for r in leased), lease_until, self._keyring)
        taken: dict[int, int] = {}
        for job in jobs:
            taken[job.endpoint_id] = taken.get(job.endpoint_id, 0) + 1
        stats = [(r[1], r[2], r[16], r[17], r[19]) for r in rows if r[0] == "s"]
        return jobs, _heads(grants, taken, stats, lease_until)

    async def save(self, changed: Sequence[EndpointState], now: datetime) -> None:
        if not changed:
            self._next_due = await self._conn.fetchval(_PG_NEXT_DUE, now)
            return
        columns = [[getattr(s, name) for s in changed] for name in MUTABLE]
        self._next_due = await self._conn.fetchval(
            _PG_SAVE_AND_NEXT_DUE, now, [s.endpoint_id for s in changed], *columns
        )

    async def next_due(self, now: datetime) -> datetime | None:
        """Read with ``save`` (the claim's last step), in the same round trip."""
        return self._next_due


# SQLite: the same steps; the store's write lock makes the process the only writer.

_SQLITE_JOB_COLUMNS = (
    deliveries.c.id,
    deliveries.c.attempts,
    deliveries.c.endpoint_id,
    deliveries.c.tenant_id,
    endpoints.c.active,
    endpoints.c.url,
    endpoints.c.secret,
    sa.type_coerce(endpoints.c.previous_secrets, sa.Text),
    sa.type_coerce(endpoints.c.headers, sa.Text),
    endpoints.c.timeout_ms,
    sa.type_coerce(endpoints.c.retry_schedule, sa.Text),
    endpoints.c.max_in_flight,
    events.c.id,
    events.c.event_type,
    events.c.payload,
    deliveries.c.next_attempt_at,  # as the PostgreSQL claim's rows: [16] is when the event was accepted
    events.c.created_at,
    sa.type_coerce(endpoints.c.secret_headers, sa.Text),
    endpoints.c.signing_key,  # last, as in the PostgreSQL claim's rows
)


# An endpoint's state and the settings that bound it, as ``_candidate`` reads them.
_SQLITE_CANDIDATES = sa.select(
    *states.COLUMNS,
    endpoints.c.rate_limit,
    endpoints.c.max_in_flight,
    sa.type_coerce(endpoints.c.circuit_breaker, sa.Text),
).join(endpoints, endpoints.c.id == endpoint_state.c.endpoint_id)


class _SqliteClaim(Claim):
    def __init__(self, conn: AsyncConnection, worker_id: str, keyring: Keyring) -> None:
        self._conn = conn
        self._worker_id = worker_id
        self._keyring = keyring

    async def take_wakes(self, now: datetime) -> bool:
        conn = self._conn
        wakes = (
            await conn.execute(
                sa.select(endpoint_wakes.c.id, endpoint_wakes.c.endpoint_id)
                .order_by(endpoint_wakes.c.id)
                .limit(MAX_WAKES)
            )
        ).all()
        if wakes:
            await conn.execute(endpoint_wakes.delete().where(endpoint_wakes.c.id <= max(w.id for w in wakes)))
            last_changed = endpoint_state.c.updated_at
            await conn.execute(
                endpoint_state.update()
                .where(
                    endpoint_state.c.endpoint_id.in_({w.endpoint_id for w in wakes}),
                    sa.or_(endpoint_state.c.work_at.is_(None), endpoint_state.c.work_at > now),
                )
                .values(work_at=sa.case((last_changed < now, last_changed), else_=now))
            )
        return len(wakes) >= MAX_WAKES

    async def due_endpoints(self, now: datetime, limit: int) -> list[Candidate]:
        query = (
            _SQLITE_CANDIDATES.where(endpoint_state.c.due_at <= now)
            .order_by(endpoint_state.c.due_at)
            .limit(limit)
        )
        return [_candidate(tuple(r)) for r in await self._conn.execute(query)]

    async def lease(
        self, grants: Sequence[Grant], now: datetime, lease_until: datetime
    ) -> tuple[list[Job], dict[int, Head]]:
        conn = self._conn
        leased: list[int] = []
        taken: dict[int, int] = {}
        stats = []
        for g in grants:
            head = (
                await conn.execute(
                    sa.select(deliveries.c.id, deliveries.c.lease_until, deliveries.c.leased_by)
                    .where(
                        deliveries.c.endpoint_id == g.endpoint_id,
                        deliveries.c.status == "pending",
                        deliveries.c.next_attempt_at <= now,
                    )
                    .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                    .limit(g.window)
                )
            ).all()
            live = [r for r in head if r.lease_until is not None and r.lease_until > now]
            elsewhere = any(r.leased_by != self._worker_id for r in live)
            # Another worker holding the endpoint sends these; else the unleased ones may be taken.
            free = [] if elsewhere else [r.id for r in head if r.lease_until is None or r.lease_until <= now]
            chosen = free[: g.quota]
            leased.extend(chosen)
            taken[g.endpoint_id] = len(chosen)
            held = [r.lease_until for r in head if r.lease_until is not None and r.lease_until > now]
            next_due = (
                await conn.execute(
                    sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
                        deliveries.c.endpoint_id == g.endpoint_id,
                        deliveries.c.status == "pending",
                        deliveries.c.next_attempt_at > now,
                    )
                )
            ).scalar()
            stats.append((g.endpoint_id, len(free), min(held) if held else None, next_due, elsewhere))
        if not leased:
            return [], _heads(grants, taken, stats, lease_until)
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(leased))
            .values(lease_until=lease_until, leased_by=self._worker_id)
        )
        query = (
            sa.select(*_SQLITE_JOB_COLUMNS)
            .join(
                endpoints,
                sa.and_(
                    endpoints.c.id == deliveries.c.endpoint_id,
                    endpoints.c.tenant_id == deliveries.c.tenant_id,
                ),
            )
            .join(events, events.c.seq == deliveries.c.event_seq)
            .where(deliveries.c.id.in_(leased))
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        )
        jobs = _jobs(await conn.execute(query), lease_until, self._keyring)
        return jobs, _heads(grants, taken, stats, lease_until)

    async def save(self, changed: Sequence[EndpointState], now: datetime) -> None:
        await states.save(self._conn, changed, now)

    async def next_due(self, now: datetime) -> datetime | None:
        moment: datetime | None = (await self._conn.execute(_NEXT_DUE, {"now": now})).scalar()
        return moment


# Recording statements.

_ATTEMPT_COLUMNS = (
    "delivery_id",
    "endpoint_id",
    "attempt",
    "started_at",
    "duration_ms",
    "status_code",
    "response_body",
    "error",
    "request_headers",
)

# SQLite: an attempt row is inserted only if its delivery is still there, for the same endpoint and
# tenant (a delivery deleted with its webhook or tenant while the attempt was in flight has no row left
# to attach it to). The writer is serialised, so this check and the delivery update see the same rows.
_INSERT_ATTEMPT = attempts.insert().from_select(
    _ATTEMPT_COLUMNS,
    sa.select(*(sa.bindparam(f"a_{name}", type_=attempts.c[name].type) for name in _ATTEMPT_COLUMNS)).where(
        sa.exists().where(
            deliveries.c.id == sa.bindparam("a_delivery_id"),
            deliveries.c.endpoint_id == sa.bindparam("a_endpoint_id"),
            deliveries.c.tenant_id == sa.bindparam("a_tenant_id"),
        )
    ),
)

_UPDATE_DELIVERY = (
    deliveries.update()
    .where(
        deliveries.c.id == sa.bindparam("b_id"),
        deliveries.c.endpoint_id == sa.bindparam("b_endpoint_id"),
        deliveries.c.tenant_id == sa.bindparam("b_tenant_id"),
    )
    .values(
        status=sa.bindparam("b_status"),
        attempts=sa.bindparam("b_attempts"),
        next_attempt_at=sa.bindparam("b_next", type_=deliveries.c.next_attempt_at.type),
        lease_until=None,
        leased_by=None,
        last_status_code=sa.bindparam("b_code"),
        last_error=sa.bindparam("b_error"),
        updated_at=sa.bindparam("b_now", type_=deliveries.c.updated_at.type),
        completed_at=sa.bindparam("b_completed", type_=deliveries.c.completed_at.type),
    )
)


# Deliveries first, and only those still there for the endpoint and tenant they were claimed for; then
# the attempts of exactly the rows updated. The UPDATE locks those rows until the commit, so a concurrent
# DELETE of the webhook (or tenant) either waits for this statement or has already removed them, and the
# attempts' foreign key always holds. Still one statement, one round trip.
_RECORD_PG = """
WITH updated AS (
    UPDATE deliveries AS d
    SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at, lease_until = NULL,
        leased_by = NULL,
        last_status_code = u.code, last_error = u.error, updated_at = $10::timestamptz,
        completed_at = CASE WHEN u.status = 'pending' THEN NULL ELSE $10::timestamptz END
    FROM unnest($11::bigint[], $12::text[], $13::int[], $14::timestamptz[], $15::int[], $16::text[],
                $17::bigint[], $18::text[])
         AS u(id, status, attempts, next_attempt_at, code, error, endpoint_id, tenant_id)
    WHERE d.id = u.id AND d.endpoint_id = u.endpoint_id AND d.tenant_id = u.tenant_id
    RETURNING d.id
), inserted AS (
    INSERT INTO attempts (delivery_id, endpoint_id, attempt, started_at, duration_ms, status_code,
                          response_body, error, request_headers)
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],
                         $7::text[], $8::text[], $9::jsonb[])
        AS a(delivery_id, endpoint_id, attempt, started_at, duration_ms, status_code, response_body, error,
             request_headers)
    WHERE a.delivery_id IN (SELECT id FROM updated)
)
SELECT id FROM updated
"""


# --- recording -----------------------------------------------------------------------------------------


class Recording:
    """One transaction writing a batch of results, in this order: ``endpoints`` (their state rows,
    locked), ``deliveries`` (the outcomes and attempts), then ``finish``."""

    async def endpoints(self, keys: Collection[tuple[int, str]]) -> dict[int, Candidate]:
        """The rows of the (endpoint id, tenant id) pairs that exist as such, locked, with settings."""
        raise NotImplementedError

    async def deliveries(self, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
        """Write the outcomes, only for deliveries still there for the endpoint and tenant they were
        claimed for (the result of one whose webhook or tenant was deleted meanwhile is silently left
        out, so it can neither break the batch nor land on another row). Returns the ids written."""
        raise NotImplementedError

    async def finish(
        self,
        changed: Sequence[EndpointState],
        disable: Mapping[int, str],
        rollups: Sequence[Rollup],
        raised: Sequence[Notice],
        now: datetime,
    ) -> None:
        """Write what the batch did: the endpoints' new states (disabling those in ``disable``, with the
        reason), its statistics rows (``hookline.store.rollups``) and the operational events it raised
        (``hookline.store.notices``)."""
        raise NotImplementedError


@asynccontextmanager
async def recording(store: Store) -> AsyncIterator[Recording]:
    if store.is_sqlite:
        async with store.write() as conn:
            yield _SqliteRecording(conn)
        return
    async with driver_connection(store) as conn, conn.transaction():
        yield _PgRecording(conn)


_PG_LOCK_ENDPOINTS = f"""
SELECT {_STATE_COLUMNS}, p.rate_limit, p.max_in_flight, p.circuit_breaker::text
FROM endpoint_state AS s
JOIN unnest($1::bigint[], $2::text[]) AS k(endpoint_id, tenant_id)
    ON k.endpoint_id = s.endpoint_id AND k.tenant_id = s.tenant_id
JOIN endpoints AS p ON p.id = s.endpoint_id
ORDER BY s.endpoint_id
FOR UPDATE OF s
"""

_PG_DISABLE = """
UPDATE endpoints SET active = false, disabled_reason = u.reason, updated_at = $1
FROM unnest($2::bigint[], $3::text[]) AS u(id, reason)
WHERE endpoints.id = u.id
"""


class _PgRecording(Recording):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def endpoints(self, keys: Collection[tuple[int, str]]) -> dict[int, Candidate]:
        ordered = sorted(keys)
        rows = await self._conn.fetch(_PG_LOCK_ENDPOINTS, [k[0] for k in ordered], [k[1] for k in ordered])
        return {c.state.endpoint_id: c for c in map(_candidate, rows)}

    async def deliveries(self, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
        if not outcomes:
            return set()
        sent = [o for o in outcomes if o.sent]
        rows = await self._conn.fetch(
            _RECORD_PG,
            [o.delivery_id for o in sent],
            [o.endpoint_id for o in sent],
            [o.attempt for o in sent],
            [o.started_at for o in sent],
            [o.duration_ms for o in sent],
            [o.status_code for o in sent],
            [o.response_body for o in sent],
            [o.error for o in sent],
            [orjson.dumps(o.request_headers).decode() for o in sent],
            now,
            [o.delivery_id for o in outcomes],
            [o.status for o in outcomes],
            [o.attempt for o in outcomes],
            [o.next_attempt_at or now for o in outcomes],
            [o.status_code for o in outcomes],
            [o.error for o in outcomes],
            [o.endpoint_id for o in outcomes],
            [o.tenant_id for o in outcomes],
        )
        return {r[0] for r in rows}

    async def finish(
        self,
        changed: Sequence[EndpointState],
        disable: Mapping[int, str],
        rollups: Sequence[Rollup],
        raised: Sequence[Notice],
        now: datetime,
    ) -> None:
        conn = self._conn
        if changed and rollups:  # the usual batch: one round trip for both
            await conn.execute(
                _PG_SAVE_AND_APPEND, *_pg_save_args(changed, now), *rollup_rows.pg_append_args(rollups)
            )
        elif changed:
            await conn.execute(_PG_SAVE, *_pg_save_args(changed, now))
        elif rollups:
            await conn.execute(rollup_rows.PG_APPEND, *rollup_rows.pg_append_args(rollups))
        if disable:
            await conn.execute(_PG_DISABLE, now, list(disable), list(disable.values()))
        if raised:
            await conn.execute(notice_rows.PG_INSERT, *notice_rows.pg_insert_args(raised, now))


class _SqliteRecording(Recording):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def endpoints(self, keys: Collection[tuple[int, str]]) -> dict[int, Candidate]:
        query = _SQLITE_CANDIDATES.where(endpoint_state.c.endpoint_id.in_([k[0] for k in keys]))
        rows = await self._conn.execute(query)
        found = (_candidate(tuple(r)) for r in rows)
        return {c.state.endpoint_id: c for c in found if (c.state.endpoint_id, c.state.tenant_id) in keys}

    async def deliveries(self, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
        conn = self._conn
        if not outcomes:
            return set()
        query = sa.select(deliveries.c.id, deliveries.c.endpoint_id, deliveries.c.tenant_id).where(
            deliveries.c.id.in_([o.delivery_id for o in outcomes])
        )
        there = {(r.id, r.endpoint_id, r.tenant_id) for r in await conn.execute(query)}
        outcomes = [o for o in outcomes if (o.delivery_id, o.endpoint_id, o.tenant_id) in there]
        if outcomes:
            await conn.execute(
                _UPDATE_DELIVERY,
                [
                    {
                        "b_id": o.delivery_id,
                        "b_endpoint_id": o.endpoint_id,
                        "b_tenant_id": o.tenant_id,
                        "b_status": o.status,
                        "b_attempts": o.attempt,
                        "b_next": o.next_attempt_at or now,
                        "b_code": o.status_code,
                        "b_error": o.error,
                        "b_now": now,
                        "b_completed": None if o.status == "pending" else now,
                    }
                    for o in outcomes
                ],
            )
        sent = [o for o in outcomes if o.sent]
        if sent:
            await conn.execute(
                _INSERT_ATTEMPT,
                [
                    {
                        "a_delivery_id": o.delivery_id,
                        "a_endpoint_id": o.endpoint_id,
                        "a_tenant_id": o.tenant_id,
                        "a_attempt": o.attempt,
                        "a_started_at": o.started_at,
                        "a_duration_ms": o.duration_ms,
                        "a_status_code": o.status_code,
                        "a_response_body": o.response_body,
                        "a_error": o.error,
                        "a_request_headers": o.request_headers,
                    }
                    for o in sent
                ],
            )
        return {o.delivery_id for o in outcomes}

    async def finish(
        self,
        changed: Sequence[EndpointState],
        disable: Mapping[int, str],
        rollups: Sequence[Rollup],
        raised: Sequence[Notice],
        now: datetime,
    ) -> None:
        await states.save(self._conn, changed, now)
        for endpoint_id, reason in disable.items():
            await self._conn.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(active=False, disabled_reason=reason, updated_at=now)
            )
        await rollup_rows.append(self._conn, rollups)
        await notice_rows.insert(self._conn, raised, now)


async def release(store: Store, delivery_ids: Sequence[int], worker_id: str, now: datetime) -> None:
    """Hand claimed but unsent deliveries back, due at once (a clean shutdown leaves no lease behind)."""
    if not delivery_ids:
        return
    async with store.write() as conn:
        rows = await conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id.in_(list(delivery_ids)),
                deliveries.c.leased_by == worker_id,
                deliveries.c.status == "pending",
            )
            .values(lease_until=None, leased_by=None)
            .returning(deliveries.c.endpoint_id)
        )
        await states.wake(conn, [r.endpoint_id for r in rows])


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached or is busy now (try the same write again
    later), rather than that this write can never succeed (a constraint, an unstorable value)."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
    if isinstance(exc, asyncpg.exceptions._base.DataError):  # a value asyncpg cannot encode
        return False
    return isinstance(exc, _UNAVAILABLE)


_UNAVAILABLE = (
    OSError,  # includes ConnectionError
    TimeoutError,
    sa.exc.TimeoutError,  # no pooled connection came free
    sa.exc.DisconnectionError,
    asyncpg.InterfaceError,  # connection closed, or another operation in progress on it
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,  # shutdown, statement cancelled
)


UNREADABLE = "(unreadable JSON)"


def _json(text: str | bytes | None, empty: Any) -> Any:
    """A stored JSON option as Python, ``empty`` for NULL. Never raises: one row holding JSON that orjson
    refuses (1e400, a 25-digit integer, NaN written by an older version) must not fail the whole
    claim; Python's decoder takes those, and what neither can read becomes ``UNREADABLE``, which the
    worker's checks reject like any other invalid value."""
    if text is None:
        return empty
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return UNREADABLE
    return empty if value is None else value
