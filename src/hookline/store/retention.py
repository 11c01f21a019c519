"""Retention: removing old payloads and attempts in small batches, keeping each delivery's summary.

Two stages, each walking one tenant's events oldest first, a batch of ``PRUNE_BATCH`` events per short
transaction (never a long lock, on either backend):

1. **Payloads and attempts.** Of the tenant's events older than its retention, the finished deliveries
   that finished before the cutoff are marked ``pruned_at`` and their attempts deleted; an event whose
   deliveries are all pruned has its payload emptied (``events.pruned_at``), and an event that made no
   delivery at all is deleted (nothing refers to it). A pending delivery is never touched, however old:
   its event keeps its payload, and the event is looked at again by the next run.
2. **Summaries.** A pruned event older than the summaries' retention is deleted with its deliveries.

Marking the delivery row is what keeps a concurrent retry or replay safe: both change only deliveries
whose ``pruned_at`` is NULL, and both statements lock the rows they change, so a delivery is either
pruned (and not sent again: its payload is going) or put back in the queue (and not pruned: it is
pending again), never both.

Each tenant's cutoff is its own ``retention_seconds`` or the service's; ``older_than`` (``hookline
prune --older-than``) replaces both. The workers' runs are paced (``share``): removing rows competes with
the deliveries for the database, so after each batch a run waits long enough that removing takes at most
that share of its time. One run at a time across processes (a PostgreSQL advisory lock held
by the run); a run may stop after ``budget`` seconds, and the next one carries on: what is left is found
again by the same walk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store.engine import Store
from hookline.store.schema import BigId, UtcDateTime, attempts, deliveries, events, tenants

PRUNE_BATCH = 500  # events per transaction (with their deliveries and attempts)
_LOCK_KEY = 7_310_472_552  # PostgreSQL advisory lock: one retention run at a time across processes
FINISHED = ("succeeded", "failed")


@dataclass
class Pruned:
    """What a run removed. ``statements`` and ``longest_statement`` (seconds) describe its cost."""

    attempts: int = 0  # attempt rows deleted
    deliveries: int = 0  # deliveries marked pruned (their attempts gone, the summary kept)
    payloads: int = 0  # events whose payload was removed
    events_deleted: int = 0  # events deleted: no delivery at all, or their summaries expired
    summaries_deleted: int = 0  # deliveries deleted with their expired summaries
    tenants: int = 0  # tenants looked at
    complete: bool = True  # false: stopped by the time budget (or another run holds the lock)
    statements: int = 0
    longest_statement: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)  # time in statements, by step

    def add(self, other: Pruned) -> None:
        """Adds another run's figures to these (``complete`` and ``tenants`` are left alone)."""
        for name in (
            "attempts",
            "deliveries",
            "payloads",
            "events_deleted",
            "summaries_deleted",
            "statements",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.longest_statement = max(self.longest_statement, other.longest_statement)
        for step, spent in other.seconds.items():
            self.seconds[step] = self.seconds.get(step, 0.0) + spent

    @property
    def rows(self) -> int:
        return self.attempts + self.deliveries + self.payloads + self.events_deleted + self.summaries_deleted


@dataclass(frozen=True)
class Cutoffs:
    tenant_id: str
    payloads: datetime  # finished deliveries (and their events) from before this are pruned
    summaries: datetime  # pruned events from before this are deleted with their deliveries


async def cutoffs(
    conn: AsyncConnection,
    now: datetime,
    *,
    retention: timedelta,
    summary_retention: timedelta,
    tenant_id: str | None = None,
    older_than: timedelta | None = None,
) -> list[Cutoffs]:
    """Each tenant's cutoffs (only ``tenant_id``'s, if given): its own retention or the service's (or
    ``older_than`` for everyone); summaries are kept at least as long as the payloads."""
    query = sa.select(tenants.c.id, tenants.c.retention_seconds).order_by(tenants.c.id)
    if tenant_id is not None:
        query = query.where(tenants.c.id == tenant_id)
    found = []
    for row in await conn.execute(query):
        own = timedelta(seconds=row.retention_seconds) if row.retention_seconds else retention
        keep = older_than if older_than is not None else own
        found.append(Cutoffs(row.id, now - keep, now - max(summary_retention, keep, own)))
    return found


class _Timer:
    def __init__(self, totals: Pruned) -> None:
        self.totals = totals

    async def run(self, conn: AsyncConnection, step: str, statement: sa.Executable) -> sa.CursorResult[Any]:
        started = time.perf_counter()
        result = await conn.execute(statement)
        elapsed = time.perf_counter() - started
        totals = self.totals
        totals.statements += 1
        totals.longest_statement = max(totals.longest_statement, elapsed)
        totals.seconds[step] = totals.seconds.get(step, 0.0) + elapsed
        return result


def _after(key: tuple[datetime, int] | None) -> list[sa.ColumnElement[bool]]:
    if key is None:
        return []
    created, seq = key
    return [
        sa.tuple_(events.c.created_at, events.c.seq)
        > sa.tuple_(sa.literal(created, UtcDateTime()), sa.literal(seq, BigId))
    ]


async def _oldest(
    conn: AsyncConnection,
    timer: _Timer,
    tenant_id: str,
    before: datetime,
    *,
    pruned: bool,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[tuple[datetime, int]]:
    """The tenant's oldest events from before ``before``, pruned or not (one partial index each)."""
    state = events.c.pruned_at.is_not(None) if pruned else events.c.pruned_at.is_(None)
    query = (
        sa.select(events.c.created_at, events.c.seq)
        .where(events.c.tenant_id == tenant_id, state, events.c.created_at < before, *_after(after))
        .order_by(events.c.created_at, events.c.seq)
        .limit(limit)
    )
    return [(row.created_at, row.seq) for row in await timer.run(conn, "find events", query)]


async def _prune_payloads(
    conn: AsyncConnection, timer: _Timer, seqs: Sequence[int], cutoff: datetime, now: datetime
) -> None:
    totals = timer.totals
    d = deliveries.c
    marked = await timer.run(
        conn,
        "mark deliveries",
        deliveries.update()
        .where(
            d.event_seq.in_(seqs),
            d.pruned_at.is_(None),
            d.status.in_(FINISHED),
            d.completed_at < cutoff,
        )
        .values(pruned_at=now),
    )
    totals.deliveries += marked.rowcount
    if marked.rowcount:
        pruned_deliveries = sa.select(d.id).where(d.event_seq.in_(seqs), d.pruned_at.is_not(None))
        gone = await timer.run(
            conn, "delete attempts", attempts.delete().where(attempts.c.delivery_id.in_(pruned_deliveries))
        )
        totals.attempts += gone.rowcount
    of_event = sa.select(d.id).where(d.event_seq == events.c.seq)
    lonely = await timer.run(
        conn,
        "delete unsent events",
        events.delete().where(events.c.seq.in_(seqs), events.c.pruned_at.is_(None), ~of_event.exists()),
    )
    totals.events_deleted += lonely.rowcount
    emptied = await timer.run(
        conn,
        "empty payloads",
        events.update()
        .where(
            events.c.seq.in_(seqs),
            events.c.pruned_at.is_(None),
            ~of_event.where(d.pruned_at.is_(None)).exists(),
        )
        .values(payload=b"", pruned_at=now),
    )
    totals.payloads += emptied.rowcount


async def _delete_summaries(conn: AsyncConnection, timer: _Timer, seqs: Sequence[int]) -> None:
    totals = timer.totals
    d = deliveries.c
    # Every delivery of a pruned event is pruned (see _prune_payloads); the attempts were deleted then.
    gone = await timer.run(conn, "delete summaries", deliveries.delete().where(d.event_seq.in_(seqs)))
    totals.summaries_deleted += gone.rowcount
    dropped = await timer.run(
        conn,
        "delete summaries",
        events.delete().where(events.c.seq.in_(seqs), events.c.pruned_at.is_not(None)),
    )
    totals.events_deleted += dropped.rowcount


@asynccontextmanager
async def _one_run(store: Store) -> AsyncIterator[bool]:
    """Whether this run may go ahead: on PostgreSQL, while no other run holds the lock (held on a
    connection of its own for the whole run). SQLite's single writer orders runs anyway."""
    if store.is_sqlite:
        yield True
        return
    async with store.engine.connect() as conn:
        locked = bool((await conn.execute(sa.text(f"SELECT pg_try_advisory_lock({_LOCK_KEY})"))).scalar())
        await conn.commit()
        try:
            yield locked
        finally:
            if locked:
                await conn.execute(sa.text(f"SELECT pg_advisory_unlock({_LOCK_KEY})"))
                await conn.commit()


async def prune(
    store: Store,
    now: datetime,
    *,
    retention: timedelta,
    summary_retention: timedelta,
    tenant_id: str | None = None,
    older_than: timedelta | None = None,
    batch: int = PRUNE_BATCH,
    budget: float | None = None,
    share: float = 1.0,
) -> Pruned:
    """One retention run over every tenant (or ``tenant_id``); returns what it removed. Stops starting
    batches after ``budget`` seconds (``complete`` is then false). With ``share`` below 1, waits after
    each batch so that batches take at most that share of the run's time, leaving the database to the
    deliveries meanwhile."""
    if not 0.0 < share <= 1.0:
        raise ValueError("share must be in (0, 1]")
    totals = Pruned()
    timer = _Timer(totals)
    deadline = None if budget is None else time.monotonic() + budget
    async with _one_run(store) as allowed:
        if not allowed:
            totals.complete = False
            return totals
        async with store.read() as conn:
            plan = await cutoffs(
                conn,
                now,
                retention=retention,
                summary_retention=summary_retention,
                tenant_id=tenant_id,
                older_than=older_than,
            )
        for cut in plan:
            totals.tenants += 1
            for pruned in (False, True):
                before = cut.summaries if pruned else cut.payloads
                after: tuple[datetime, int] | None = None
                while True:
                    if deadline is not None and time.monotonic() >= deadline:
                        totals.complete = False
                        return totals
                    batch_started = time.monotonic()
                    async with store.write() as conn:
                        found = await _oldest(
                            conn, timer, cut.tenant_id, before, pruned=pruned, after=after, limit=batch
                        )
                        seqs = [seq for _, seq in found]
                        if pruned and seqs:
                            await _delete_summaries(conn, timer, seqs)
                        elif seqs:
                            await _prune_payloads(conn, timer, seqs, cut.payloads, now)
                    if len(found) < batch:
                        break
                    # Pruned events leave the walk by themselves; the ones kept (pending work) are passed.
                    after = None if pruned else found[-1]
                    if share < 1.0:
                        await asyncio.sleep((time.monotonic() - batch_started) * (1.0 - share) / share)
    return totals
