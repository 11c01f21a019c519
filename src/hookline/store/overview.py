"""The state of the whole service at a glance, for ``/metrics``: the queue per tenant (how many
deliveries wait, how many are due, since when the oldest due one waits), held deliveries by reason, and
endpoints by breaker state. Two grouped reads over the pending deliveries (their partial index) and the
endpoints; ``/metrics`` caches the answer for a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store.schema import deliveries, endpoint_state, endpoints


@dataclass(frozen=True, slots=True)
class TenantQueue:
    tenant_id: str
    pending: int = 0  # waiting deliveries, due or not, held or not
    due: int = 0  # due now and free to go (not held)
    oldest_due_at: datetime | None = None  # the earliest due time among ``due``


@dataclass(frozen=True, slots=True)
class Overview:
    taken_at: datetime
    queues: list[TenantQueue] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)  # pending deliveries by held reason
    breakers: dict[str, int] = field(default_factory=dict)  # enabled endpoints by breaker state
    disabled_endpoints: int = 0


def _held_reason(now: datetime) -> sa.ColumnElement[str | None]:
    """As ``hookline.api.endpoint_health.held_reason``: the hold, else an open breaker, else a pause."""
    s = endpoint_state.c
    return sa.case(
        (s.hold.is_not(None), s.hold),
        (s.breaker_state != "closed", sa.literal("circuit_open")),
        (s.paused_until > now, sa.literal("paused")),
        else_=sa.null(),
    )


async def read(conn: AsyncConnection, now: datetime) -> Overview:
    d = deliveries.c
    reason = _held_reason(now).label("reason")
    due = d.next_attempt_at <= now
    pending = (
        sa.select(
            d.tenant_id,
            reason,
            sa.func.count().label("pending"),
            sa.func.count().filter(due).label("due"),
            sa.func.min(d.next_attempt_at).filter(due).label("oldest"),
        )
        .select_from(deliveries.outerjoin(endpoint_state, endpoint_state.c.endpoint_id == d.endpoint_id))
        .where(d.status == "pending")
        .group_by(d.tenant_id, reason)
    )
    queues: dict[str, TenantQueue] = {}
    held: dict[str, int] = {}
    for tenant_id, why, count, due_count, oldest in await conn.execute(pending):
        queue = queues.get(tenant_id) or TenantQueue(tenant_id)
        if why is None:
            queue = TenantQueue(tenant_id, queue.pending + count, due_count, oldest)
        else:
            held[why] = held.get(why, 0) + count
            queue = TenantQueue(tenant_id, queue.pending + count, queue.due, queue.oldest_due_at)
        queues[tenant_id] = queue
    s = endpoint_state.c
    states = (
        sa.select(endpoints.c.active, s.breaker_state, sa.func.count())
        .select_from(endpoints.outerjoin(endpoint_state, s.endpoint_id == endpoints.c.id))
        .group_by(endpoints.c.active, s.breaker_state)
    )
    breakers: dict[str, int] = {}
    disabled = 0
    for active, breaker, count in await conn.execute(states):
        if not active:
            disabled += count
        else:
            breakers[breaker or "closed"] = breakers.get(breaker or "closed", 0) + count
    return Overview(now, list(queues.values()), held, breakers, disabled)


@dataclass(frozen=True, slots=True)
class FailingEndpoint:
    id: int
    tenant_id: str
    url: str
    active: bool
    breaker_state: str
    failing_since: datetime | None
    disabled_reason: str | None


async def failing_endpoints(conn: AsyncConnection, *, limit: int = 50) -> list[FailingEndpoint]:
    """Endpoints in trouble across every tenant, the longest failing first: a breaker not closed,
    failures since their last success, or disabled (the operator's view in the dashboard)."""
    s = endpoint_state.c
    e = endpoints.c
    query = (
        sa.select(e.id, e.tenant_id, e.url, e.active, s.breaker_state, s.failing_since, e.disabled_reason)
        .select_from(endpoints.join(endpoint_state, s.endpoint_id == e.id))
        .where(sa.or_(s.breaker_state != "closed", s.failing_since.is_not(None), e.active.is_(sa.false())))
        .order_by(s.failing_since.is_(None), s.failing_since, e.id)
        .limit(limit)
    )
    return [FailingEndpoint(*row) for row in await conn.execute(query)]
