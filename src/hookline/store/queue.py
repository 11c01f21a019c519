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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from hookline.store.engine import Store, driver_connection
from hookline.store.schema import attempts, deliveries, endpoints, events


@dataclass(frozen=True, slots=True)
class Job:
    delivery_id: int
    attempt: int  # the number of the attempt about to be made (1 for the first)
    endpoint_id: int
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

    def secrets(self) -> list[str]:
        """The current secret, then every previous one still inside its grace period."""
        if not self.previous_secrets:
            return [self.secret]
        now = datetime.now(UTC)
        valid = [self.secret]
        for old in self.previous_secrets:
            if datetime.fromisoformat(old["expires_at"]) > now:
                valid.append(old["secret"])
        return valid


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker learned from one attempt, ready to be written."""

    delivery_id: int
    endpoint_id: int
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
            endpoints.c.active,
            endpoints.c.url,
            endpoints.c.secret,
            endpoints.c.previous_secrets,
            endpoints.c.headers,
            endpoints.c.timeout_ms,
            endpoints.c.retry_schedule,
            endpoints.c.max_in_flight,
            events.c.id.label("event_id"),
            events.c.event_type,
            events.c.payload,
        )
        .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
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
            endpoint_active=r.active,
            url=r.url,
            secret=r.secret,
            previous_secrets=r.previous_secrets or [],
            headers=r.headers or {},
            timeout_ms=r.timeout_ms,
            retry_schedule=r.retry_schedule,
            max_in_flight=r.max_in_flight,
            event_id=r.event_id,
            event_type=r.event_type,
            payload=r.payload,
            lease_until=lease_until,
        )
        for r in rows
    ]


async def record(store: Store, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Write a batch of attempts and the resulting delivery states in one transaction."""
    if not outcomes:
        return
    if not store.is_sqlite:
        await _record_pg(store, outcomes, now)
        return
    async with store.write() as conn:
        sent = [o for o in outcomes if o.sent]
        if sent:
            await conn.execute(
                attempts.insert(),
                [
                    {
                        "delivery_id": o.delivery_id,
                        "endpoint_id": o.endpoint_id,
                        "attempt": o.attempt,
                        "started_at": o.started_at,
                        "duration_ms": o.duration_ms,
                        "status_code": o.status_code,
                        "response_body": o.response_body,
                        "error": o.error,
                        "request_headers": o.request_headers,
                    }
                    for o in sent
                ],
            )
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == sa.bindparam("b_id"))
            .values(
                status=sa.bindparam("b_status"),
                attempts=sa.bindparam("b_attempts"),
                next_attempt_at=sa.bindparam("b_next", type_=deliveries.c.next_attempt_at.type),
                leased_by=None,
                last_status_code=sa.bindparam("b_code"),
                last_error=sa.bindparam("b_error"),
                updated_at=now,
                completed_at=sa.bindparam("b_completed", type_=deliveries.c.completed_at.type),
            ),
            [
                {
                    "b_id": o.delivery_id,
                    "b_status": o.status,
                    "b_attempts": o.attempt,
                    "b_next": o.next_attempt_at or now,
                    "b_code": o.status_code,
                    "b_error": o.error,
                    "b_completed": None if o.status == "pending" else now,
                }
                for o in outcomes
            ],
        )
        for o in outcomes:
            if o.disable_endpoint:
                await conn.execute(
                    endpoints.update()
                    .where(endpoints.c.id == o.endpoint_id)
                    .values(active=False, disabled_reason=o.disable_endpoint, updated_at=now)
                )


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
    RETURNING d.id, d.attempts, d.endpoint_id, d.event_seq
)
SELECT l.id, l.attempts, l.endpoint_id, p.active, p.url, p.secret, p.previous_secrets::text,
       p.headers::text, p.timeout_ms, p.retry_schedule::text, p.max_in_flight,
       e.id AS event_id, e.event_type, e.payload
FROM leased AS l
JOIN endpoints AS p ON p.id = l.endpoint_id
JOIN events AS e ON e.seq = l.event_seq
ORDER BY l.id
"""

_RECORD_PG = """
WITH attempt_rows AS (
    INSERT INTO attempts (delivery_id, endpoint_id, attempt, started_at, duration_ms, status_code,
                          response_body, error, request_headers)
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],
                         $7::text[], $8::text[], $9::jsonb[])
)
UPDATE deliveries AS d
SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at, leased_by = NULL,
    last_status_code = u.code, last_error = u.error, updated_at = $10::timestamptz,
    completed_at = CASE WHEN u.status = 'pending' THEN NULL ELSE $10::timestamptz END
FROM unnest($11::bigint[], $12::text[], $13::int[], $14::timestamptz[], $15::int[], $16::text[])
     AS u(id, status, attempts, next_attempt_at, code, error)
WHERE d.id = u.id
"""

_DISABLE_ENDPOINT_PG = """
UPDATE endpoints SET active = false, disabled_reason = $2, updated_at = $3 WHERE id = $1
"""


def _json(text: str | None, empty: Any) -> Any:
    return orjson.loads(text) if text is not None else empty


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
            endpoint_active=r[3],
            url=r[4],
            secret=r[5],
            previous_secrets=_json(r[6], []),
            headers=_json(r[7], {}),
            timeout_ms=r[8],
            retry_schedule=_json(r[9], None),
            max_in_flight=r[10],
            event_id=r[11],
            event_type=r[12],
            payload=r[13],
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
        )
        for o in disabling:
            await conn.execute(_DISABLE_ENDPOINT_PG, o.endpoint_id, o.disable_endpoint, now)
