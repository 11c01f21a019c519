"""Reading deliveries and their attempts, putting deliveries back in the queue (retry, replay), and
writing a test send's event, delivery and attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store import audit_log, endpoint_state
from hookline.store.engine import Store
from hookline.store.schema import attempts, deliveries, events

STATUSES = ("pending", "succeeded", "failed")


@dataclass(frozen=True)
class Delivery:
    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    test: bool  # made by a test send: never retried nor replayed
    pruned: bool  # retention deleted its attempts (and, once the event's last, the payload): a summary


@dataclass(frozen=True)
class Attempt:
    id: int
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    request_headers: dict[str, str]


_COLUMNS = (
    deliveries.c.id,
    deliveries.c.endpoint_id,
    events.c.id.label("event_id"),
    deliveries.c.event_type,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.next_attempt_at,
    deliveries.c.last_status_code,
    deliveries.c.last_error,
    deliveries.c.created_at,
    deliveries.c.updated_at,
    deliveries.c.completed_at,
    deliveries.c.test,
    deliveries.c.pruned_at.is_not(None).label("pruned"),
)


def _select() -> sa.Select[Any]:
    return sa.select(*_COLUMNS).join(events, events.c.seq == deliveries.c.event_seq)


async def list_for_endpoint(
    conn: AsyncConnection,
    tenant_id: str,
    endpoint_id: int,
    *,
    before: int | None,
    limit: int,
    status: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Delivery]:
    """Newest first; ``before`` is the id cursor of the previous page's last delivery."""
    query = (
        _select()
        .where(deliveries.c.tenant_id == tenant_id, deliveries.c.endpoint_id == endpoint_id)
        .order_by(deliveries.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(deliveries.c.id < before)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if event_type is not None:
        query = query.where(deliveries.c.event_type == event_type)
    if since is not None:
        query = query.where(deliveries.c.created_at >= since)
    if until is not None:
        query = query.where(deliveries.c.created_at < until)
    return [Delivery(**row) for row in (await conn.execute(query)).mappings()]


async def for_event(conn: AsyncConnection, event_seq: int) -> list[Delivery]:
    query = _select().where(deliveries.c.event_seq == event_seq).order_by(deliveries.c.id)
    return [Delivery(**row) for row in (await conn.execute(query)).mappings()]


async def get_delivery(conn: AsyncConnection, tenant_id: str, delivery_id: int) -> Delivery | None:
    query = _select().where(deliveries.c.tenant_id == tenant_id, deliveries.c.id == delivery_id)
    row = (await conn.execute(query)).mappings().first()
    return Delivery(**row) if row else None


_ATTEMPT_FIELDS = [f.name for f in fields(Attempt)]
_DELIVERY_FIELDS = [f.name for f in fields(Delivery)]


async def get_with_attempts(
    conn: AsyncConnection, tenant_id: str, delivery_id: int
) -> tuple[Delivery, list[Attempt]] | None:
    """A delivery and every attempt, oldest first, read in one statement: one snapshot, so a result
    recorded meanwhile cannot show an attempt that the delivery does not count yet."""
    query = (
        _select()
        .add_columns(*(attempts.c[name].label(f"attempt_{name}") for name in _ATTEMPT_FIELDS))
        .outerjoin(attempts, attempts.c.delivery_id == deliveries.c.id)
        .where(deliveries.c.tenant_id == tenant_id, deliveries.c.id == delivery_id)
        .order_by(attempts.c.id)
    )
    rows = (await conn.execute(query)).mappings().all()
    if not rows:
        return None
    delivery = Delivery(**{name: rows[0][name] for name in _DELIVERY_FIELDS})
    log = [
        Attempt(**{name: row[f"attempt_{name}"] for name in _ATTEMPT_FIELDS})
        for row in rows
        if row["attempt_id"] is not None
    ]
    return delivery, log


async def requeue(
    store: Store,
    tenant_id: str,
    *,
    now: datetime,
    delivery_id: int | None = None,
    endpoint_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: Sequence[str] = STATUSES,
    audit: audit_log.Entry | None = None,
) -> int:
    """Make matching deliveries due now (a manual retry or a replay); returns how many. ``audit`` is
    recorded in the same transaction, with the count (``requeued``).

    A delivery in flight keeps its lease: requeueing it only moves its due time, so at worst it is
    sent once more, which at-least-once delivery allows. A held endpoint's deliveries stay held. Test
    sends are left alone: they were made once, on request. So are pruned deliveries, whose payload is
    gone (``hookline.store.retention``): this statement and the pruning one lock the rows they change,
    so a delivery is pruned or queued again, never both."""
    conditions = [
        deliveries.c.tenant_id == tenant_id,
        deliveries.c.status.in_(list(statuses)),
        deliveries.c.test.is_(sa.false()),
        deliveries.c.pruned_at.is_(None),
    ]
    if delivery_id is not None:
        conditions.append(deliveries.c.id == delivery_id)
    if endpoint_id is not None:
        conditions.append(deliveries.c.endpoint_id == endpoint_id)
    if since is not None:
        conditions.append(deliveries.c.created_at >= since)
    if until is not None:
        conditions.append(deliveries.c.created_at < until)
    async with store.write() as conn:
        result = await conn.execute(
            deliveries.update()
            .where(*conditions)
            .values(status="pending", next_attempt_at=now, completed_at=None, updated_at=now)
            .returning(deliveries.c.endpoint_id)
        )
        woken = [row.endpoint_id for row in result]
        await endpoint_state.wake(conn, woken)
        count = len(woken)
        if audit is not None:
            await audit_log.record(conn, replace(audit, changes={**audit.changes, "requeued": count}), now)
    if count:
        store.announce_new_work()
    return count


@dataclass(frozen=True)
class SentTest:
    """One test send, as made: what was sent (``payload``, the exact bytes) and what came back."""

    endpoint_id: int
    event_id: str
    event_type: str
    payload: bytes
    created_at: datetime
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    request_headers: dict[str, str]
    succeeded: bool


async def record_test_send(conn: AsyncConnection, tenant_id: str, sent: SentTest) -> int:
    """Write a test send as an event of its own (to this endpoint alone), a finished delivery marked
    ``test`` and its one attempt; returns the delivery id. Nothing is queued and no endpoint state
    changes: a test never counts toward an endpoint's health."""
    seq = (
        await conn.execute(
            events.insert()
            .values(
                id=sent.event_id,
                tenant_id=tenant_id,
                event_type=sent.event_type,
                idempotency_key=None,
                channels=None,
                payload=sent.payload,
                delivery_count=1,
                created_at=sent.created_at,
            )
            .returning(events.c.seq)
        )
    ).scalar_one()
    now = sent.started_at + timedelta(milliseconds=sent.duration_ms)
    delivery_id = (
        await conn.execute(
            deliveries.insert()
            .values(
                event_seq=seq,
                endpoint_id=sent.endpoint_id,
                tenant_id=tenant_id,
                event_type=sent.event_type,
                status="succeeded" if sent.succeeded else "failed",
                attempts=1,
                next_attempt_at=sent.created_at,
                last_status_code=sent.status_code,
                last_error=sent.error,
                created_at=sent.created_at,
                updated_at=now,
                completed_at=now,
                test=True,
            )
            .returning(deliveries.c.id)
        )
    ).scalar_one()
    await conn.execute(
        attempts.insert().values(
            delivery_id=delivery_id,
            endpoint_id=sent.endpoint_id,
            attempt=1,
            started_at=sent.started_at,
            duration_ms=sent.duration_ms,
            status_code=sent.status_code,
            response_body=sent.response_body,
            error=sent.error,
            request_headers=sent.request_headers,
        )
    )
    return int(delivery_id)
