"""Endpoint state: the row per endpoint the scheduler reads and every worker agrees on.

Whoever changes a row holds its lock: a claim (``FOR UPDATE SKIP LOCKED``), a batch of results and the
API's resets (``FOR UPDATE``, in endpoint id order, so two of them never wait on each other in a circle).
The decisions (breaker, rate limit, holds) are made by ``hookline.dispatch``; this module only reads and
writes the rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store.schema import deliveries, endpoint_state, endpoint_wakes

HOLD_DISABLED = "disabled"
HOLD_UNVERIFIED = "unverified"
HOLD_OFFLINE = "offline"  # a relay session's endpoint while no listener is connected (hookline listen)


def hold_for(*, active: bool, verification: str) -> str | None:
    """Why an endpoint's deliveries are held, if they are: disabled first, then not verified."""
    if not active:
        return HOLD_DISABLED
    if verification in ("pending", "failed"):
        return HOLD_UNVERIFIED
    return None


@dataclass(frozen=True, slots=True)
class EndpointState:
    endpoint_id: int
    tenant_id: str
    work_at: datetime | None = None
    blocked_until: datetime | None = None
    hold: str | None = None
    breaker_state: str = "closed"
    consecutive_failures: int = 0
    window_started_at: datetime | None = None
    window_requests: int = 0
    window_failures: int = 0
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    open_count: int = 0
    limiter_tat: datetime | None = None
    paused_until: datetime | None = None
    last_success_at: datetime | None = None
    failing_since: datetime | None = None
    verification: str = "not_required"
    verification_error: str | None = None
    verified_at: datetime | None = None
    # The failure-rate alert (``endpoint.failing``): the current window's counts, and when the alert
    # was raised (None: not failing, or the episode is over).
    alert_window_started_at: datetime | None = None
    alert_window_requests: int = 0
    alert_window_failures: int = 0
    failing_alerted_at: datetime | None = None

    def changed(self, **changes: Any) -> EndpointState:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A due endpoint as a claim read it: its state and the settings that bound it (as stored)."""

    state: EndpointState
    rate_limit: Any = None
    max_in_flight: Any = None
    circuit_breaker: Any = None


@dataclass(frozen=True, slots=True)
class Grant:
    endpoint_id: int
    quota: int  # how many deliveries to lease, at most
    window: int  # how many of the endpoint's first due deliveries the lease looks at


@dataclass(frozen=True, slots=True)
class Head:
    """What the lease saw at the head of an endpoint's queue."""

    endpoint_id: int
    taken: int = 0  # leased now
    unleased_left: int = 0  # due, not leased, within the head, not taken
    leased_until: datetime | None = None  # the earliest end of a lease already held in the head
    next_due: datetime | None = None  # the earliest pending delivery not yet due
    elsewhere: bool = False  # another worker's lease is live at the head: that worker sends them


FIELDS = tuple(f.name for f in dataclasses.fields(EndpointState))
MUTABLE = FIELDS[2:]  # everything but the keys
COLUMNS = tuple(endpoint_state.c[name] for name in FIELDS)


def from_row(row: Any) -> EndpointState:
    return EndpointState(**{name: row[name] for name in FIELDS})


async def create(conn: AsyncConnection, state: EndpointState, now: datetime) -> None:
    await conn.execute(endpoint_state.insert().values(**dataclasses.asdict(state), updated_at=now))


async def lock(conn: AsyncConnection, endpoint_ids: Collection[int]) -> dict[int, EndpointState]:
    """The rows of ``endpoint_ids``, locked until the transaction ends (in id order)."""
    if not endpoint_ids:
        return {}
    query = (
        sa.select(*COLUMNS)
        .where(endpoint_state.c.endpoint_id.in_(sorted(endpoint_ids)))
        .order_by(endpoint_state.c.endpoint_id)
    )
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return {row.endpoint_id: from_row(row._mapping) for row in await conn.execute(query)}


_SAVE = (
    endpoint_state.update()
    .where(endpoint_state.c.endpoint_id == sa.bindparam("k_endpoint_id"))
    .values(
        {name: sa.bindparam(f"v_{name}", type_=endpoint_state.c[name].type) for name in MUTABLE}
        | {"updated_at": sa.bindparam("v_updated_at", type_=endpoint_state.c.updated_at.type)}
    )
)


async def save(conn: AsyncConnection, states: Iterable[EndpointState], now: datetime) -> None:
    """Write ``states`` (rows the caller has locked)."""
    params = [
        {"k_endpoint_id": s.endpoint_id, "v_updated_at": now} | {f"v_{n}": getattr(s, n) for n in MUTABLE}
        for s in states
    ]
    if params:
        await conn.execute(_SAVE, params)


async def wake(conn: AsyncConnection, endpoint_ids: Iterable[int]) -> None:
    """Announce new due work for ``endpoint_ids`` (in the transaction that creates it)."""
    rows = [{"endpoint_id": e} for e in dict.fromkeys(endpoint_ids)]
    if rows:
        await conn.execute(endpoint_wakes.insert(), rows)


async def of_endpoints(
    conn: AsyncConnection, tenant_id: str, endpoint_ids: Sequence[int]
) -> dict[int, EndpointState]:
    if not endpoint_ids:
        return {}
    query = sa.select(*COLUMNS).where(
        endpoint_state.c.tenant_id == tenant_id, endpoint_state.c.endpoint_id.in_(list(endpoint_ids))
    )
    return {row.endpoint_id: from_row(row._mapping) for row in await conn.execute(query)}


async def pending_counts(conn: AsyncConnection, endpoint_ids: Sequence[int]) -> dict[int, int]:
    """Pending deliveries per endpoint (held ones, while the endpoint is held)."""
    if not endpoint_ids:
        return {}
    query = (
        sa.select(deliveries.c.endpoint_id, sa.func.count())
        .where(deliveries.c.endpoint_id.in_(list(endpoint_ids)), deliveries.c.status == "pending")
        .group_by(deliveries.c.endpoint_id)
    )
    counts = {endpoint_id: 0 for endpoint_id in endpoint_ids}
    counts.update({row[0]: row[1] for row in await conn.execute(query)})
    return counts
