"""The delivery queue: claim due deliveries under a lease, record attempts, finish or reschedule.

A claim moves ``next_attempt_at`` to the end of the lease and stamps ``leased_by``. If the worker dies,
the row is simply due again when the lease ends: nothing is lost. On PostgreSQL concurrent workers skip
each other's rows (``FOR UPDATE SKIP LOCKED``); on SQLite one process owns the queue.

On PostgreSQL these are the hottest statements of the service, so they are written in SQL below and run
on the pooled connection's asyncpg driver directly: a claim is one statement (select, lease, join), a
batch of results is one statement (attempt rows inserted and deliveries updated from arrays).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa

from hookline.store.engine import Store, driver_connection
from hookline.store.schema import attempts, deliveries, endpoints, events


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery and what sending it needs. The endpoint's options are as stored: a row written
    by an older version (or by hand) may hold anything, so the worker checks them before use."""

    delivery_id: int
    attempt: int  # the number of the attempt about to be made (1 for the first)
    endpoint_id: int
    tenant_id: str
    endpoint_active: bool
    url: str
    secret: str
    previous_secrets: list[dict[str, str]]
    headers: dict[str, str]
    timeout_ms: int | None
    retry_schedule: list[float] | None
    max_in_flight: int | None
    event_id: str
    event_type: str
    payload: bytes
    lease_until: datetime
    notes: tuple[str, ...] = ()  # set by the worker's checks: options replaced by the service default


@dataclass(frozen=True, slots=True)
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
    disable_endpoint: str | None = None
    sent: bool = True  # False: given up without a request (the endpoint was disabled)


async def claim(
    store: Store,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    lease: float,
    skip_endpoints: Collection[int] = (),
) -> list[Job]:
    lease_until = now + timedelta(seconds=lease)
    if not store.is_sqlite:
        return await _claim_pg(store, worker_id, limit, now, lease_until, skip_endpoints)
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.attempts,
            deliveries.c.endpoint_id,
            deliveries.c.tenant_id,
            endpoints.c.active,
            endpoints.c.url,
            endpoints.c.secret,
            sa.type_coerce(endpoints.c.previous_secrets, sa.Text).label("previous_secrets"),
            sa.type_coerce(endpoints.c.headers, sa.Text).label("headers"),
            endpoints.c.timeout_ms,
            sa.type_coerce(endpoints.c.retry_schedule, sa.Text).label("retry_schedule"),
            endpoints.c.max_in_flight,
            events.c.id.label("event_id"),
            events.c.event_type,
            events.c.payload,
        )
        .join(
            endpoints,
            sa.and_(
                endpoints.c.id == deliveries.c.endpoint_id, endpoints.c.tenant_id == deliveries.c.tenant_id
            ),
        )
        .join(events, events.c.seq == deliveries.c.event_seq)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if skip_endpoints:
        query = query.where(deliveries.c.endpoint_id.not_in(list(skip_endpoints)))
    async with store.write() as conn:
        rows = (await conn.execute(query)).all()
        if not rows:
            return []
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([r.id for r in rows]))
            .values(next_attempt_at=lease_until, leased_by=worker_id)
        )
    return [
        Job(
            delivery_id=r.id,
            attempt=r.attempts + 1,
            endpoint_id=r.endpoint_id,
            tenant_id=r.tenant_id,
            endpoint_active=r.active,
            url=r.url,
            secret=r.secret,
            previous_secrets=_json(r.previous_secrets, []),
            headers=_json(r.headers, {}),
            timeout_ms=r.timeout_ms,
            retry_schedule=_json(r.retry_schedule, None),
            max_in_flight=r.max_in_flight,
            event_id=r.event_id,
            event_type=r.event_type,
            payload=r.payload,
            lease_until=lease_until,
        )
        for r in rows
    ]


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
        leased_by=None,
        last_status_code=sa.bindparam("b_code"),
        last_error=sa.bindparam("b_error"),
        updated_at=sa.bindparam("b_now", type_=deliveries.c.updated_at.type),
        completed_at=sa.bindparam("b_completed", type_=deliveries.c.completed_at.type),
    )
)


def _disable_endpoint(outcome: Outcome, now: datetime) -> sa.Update:
    """A 410's verdict applies to the endpoint the request went to: same id, same tenant, and only while
    the delivery it answered still exists for that endpoint."""
    return (
        endpoints.update()
        .where(
            endpoints.c.id == outcome.endpoint_id,
            endpoints.c.tenant_id == outcome.tenant_id,
            sa.exists().where(
                deliveries.c.id == outcome.delivery_id, deliveries.c.endpoint_id == outcome.endpoint_id
            ),
        )
        .values(active=False, disabled_reason=outcome.disable_endpoint, updated_at=now)
    )


async def record(store: Store, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Write a batch of attempts and the resulting delivery states in one transaction.

    Only deliveries that still exist and still belong to the endpoint and tenant they were claimed for
    are written: the result of one whose webhook or tenant was deleted meanwhile is silently left out,
    so it can neither break the batch (a foreign key) nor land on another row."""
    if not outcomes:
        return
    if not store.is_sqlite:
        await _record_pg(store, outcomes, now)
        return
    async with store.write() as conn:
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
        for o in outcomes:
            if o.disable_endpoint:
                await conn.execute(_disable_endpoint(o, now))


async def release(store: Store, delivery_ids: Sequence[int], worker_id: str, now: datetime) -> None:
    """Hand claimed but unsent deliveries back, due at once (a clean shutdown leaves no lease behind)."""
    if not delivery_ids:
        return
    async with store.write() as conn:
        await conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id.in_(list(delivery_ids)),
                deliveries.c.leased_by == worker_id,
                deliveries.c.status == "pending",
            )
            .values(next_attempt_at=now, leased_by=None)
        )


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


# --- PostgreSQL ----------------------------------------------------------------------------------------

_CLAIM_PG = """
WITH due AS (
    SELECT id FROM deliveries
    WHERE status = 'pending' AND next_attempt_at <= $1 AND endpoint_id <> ALL($3::bigint[])
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE deliveries AS d SET next_attempt_at = $4, leased_by = $5
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.attempts, d.endpoint_id, d.event_seq, d.tenant_id
)
SELECT l.id, l.attempts, l.endpoint_id, l.tenant_id, p.active, p.url, p.secret, p.previous_secrets::text,
       p.headers::text, p.timeout_ms, p.retry_schedule::text, p.max_in_flight,
       e.id AS event_id, e.event_type, e.payload
FROM leased AS l
JOIN endpoints AS p ON p.id = l.endpoint_id AND p.tenant_id = l.tenant_id
JOIN events AS e ON e.seq = l.event_seq
ORDER BY l.id
"""

# Deliveries first, and only those still there for the endpoint and tenant they were claimed for; then
# the attempts of exactly the rows updated. The UPDATE locks those rows until the commit, so a concurrent
# DELETE of the webhook (or tenant) either waits for this statement or has already removed them, and the
# attempts' foreign key always holds. Still one statement, one round trip.
_RECORD_PG = """
WITH updated AS (
    UPDATE deliveries AS d
    SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at, leased_by = NULL,
        last_status_code = u.code, last_error = u.error, updated_at = $10::timestamptz,
        completed_at = CASE WHEN u.status = 'pending' THEN NULL ELSE $10::timestamptz END
    FROM unnest($11::bigint[], $12::text[], $13::int[], $14::timestamptz[], $15::int[], $16::text[],
                $17::bigint[], $18::text[])
         AS u(id, status, attempts, next_attempt_at, code, error, endpoint_id, tenant_id)
    WHERE d.id = u.id AND d.endpoint_id = u.endpoint_id AND d.tenant_id = u.tenant_id
    RETURNING d.id
)
INSERT INTO attempts (delivery_id, endpoint_id, attempt, started_at, duration_ms, status_code,
                      response_body, error, request_headers)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],
                     $7::text[], $8::text[], $9::jsonb[])
    AS a(delivery_id, endpoint_id, attempt, started_at, duration_ms, status_code, response_body, error,
         request_headers)
WHERE a.delivery_id IN (SELECT id FROM updated)
"""

# See ``_disable_endpoint``.
_DISABLE_ENDPOINT_PG = """
UPDATE endpoints SET active = false, disabled_reason = $2, updated_at = $3
WHERE id = $1 AND tenant_id = $4
  AND EXISTS (SELECT 1 FROM deliveries WHERE id = $5 AND endpoint_id = $1)
"""


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


async def _claim_pg(
    store: Store,
    worker_id: str,
    limit: int,
    now: datetime,
    lease_until: datetime,
    skip_endpoints: Collection[int],
) -> list[Job]:
    async with driver_connection(store) as conn:
        rows = await conn.fetch(_CLAIM_PG, now, limit, list(skip_endpoints), lease_until, worker_id)
    return [
        Job(
            delivery_id=r[0],
            attempt=r[1] + 1,
            endpoint_id=r[2],
            tenant_id=r[3],
            endpoint_active=r[4],
            url=r[5],
            secret=r[6],
            previous_secrets=_json(r[7], []),
            headers=_json(r[8], {}),
            timeout_ms=r[9],
            retry_schedule=_json(r[10], None),
            max_in_flight=r[11],
            event_id=r[12],
            event_type=r[13],
            payload=r[14],
            lease_until=lease_until,
        )
        for r in rows
    ]


async def _record_pg(store: Store, outcomes: Sequence[Outcome], now: datetime) -> None:
    sent = [o for o in outcomes if o.sent]
    disabling = [o for o in outcomes if o.disable_endpoint]
    async with driver_connection(store) as conn, contextlib.AsyncExitStack() as stack:
        if disabling:  # more than one statement: one transaction
            await stack.enter_async_context(conn.transaction())
        await conn.execute(
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
        for o in disabling:
            await conn.execute(
                _DISABLE_ENDPOINT_PG, o.endpoint_id, o.disable_endpoint, now, o.tenant_id, o.delivery_id
            )
