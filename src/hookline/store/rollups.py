"""Attempt rollups in the store (``attempt_rollups``): appending, reading, compacting.

Two kinds of rows. A batch's row: the recorder appends one per endpoint and minute with each batch of
answers (in the batch's transaction, so a batch rolled back counts nothing). A summary: one per
endpoint and period at each of three levels, minutes, hours and days, written by compaction
(``compact``, run by the workers, one at a time).

Every attempt is counted exactly once per level: in that level's summary of its period, or in its
batch's row until compaction has added that row, never in both. Compaction adds a batch's rows to the
summaries of every level and deletes them in one transaction, so a run that dies midway has added
nothing and one that commits has added each row once; rows appended meanwhile, late ones included (an
answer recorded long after its attempt started), wait for the next run. Summaries of the current minute,
hour and day grow run by run: a level is complete up to the last run, not only for closed periods. Each
level reaches back a while (``kept_from``: minutes ``MINUTES_KEPT``, hours ``HOURS_KEPT``, days the
retention); older summaries are deleted, since a coarser level still counts their attempts.

So a query reads, for its whole window, the summaries of one level, the coarsest its buckets can be cut
from (``level_of``), and the batches' rows not added yet: a 30-day answer in days is about 30
summaries per endpoint, however many attempts and minutes are behind them. The age of the window bounds
how fine its buckets may be (``finest_bucket``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.rollups import DAY, HOUR, MINUTE, SPANS, Rollup, merged, span_start
from hookline.store.engine import Store
from hookline.store.schema import attempt_rollups, endpoints

MINUTES_KEPT = timedelta(hours=3)  # minute summaries: then only hours and days count them
HOURS_KEPT = timedelta(days=3)  # hour summaries: then only days count them
COMPACT_BATCH = 1_000  # batches' rows added per compaction transaction (see the note at ``compact``)
_LOCK_KEY = 7_310_472_551  # PostgreSQL advisory lock: one compaction at a time across workers

_COLUMNS = (
    "endpoint_id",
    "tenant_id",
    "span",
    "start",
    "attempts",
    "outcomes",
    "codes",
    "latency",
    "duration_ms",
    "succeeded",
    "failed",
    "last_success_at",
    "last_failure_at",
)


def finest_bucket(since: datetime, now: datetime) -> int:
    """The smallest bucket (seconds) a window starting at ``since`` can be cut into: minutes are kept
    for ``MINUTES_KEPT``, hours for ``HOURS_KEPT``."""
    if since >= now - MINUTES_KEPT:
        return MINUTE
    if since >= now - HOURS_KEPT:
        return HOUR
    return DAY


def level_of(bucket: int) -> int:
    """The level whose summaries a query in buckets of ``bucket`` seconds reads: the coarsest that cuts
    them exactly (5-minute buckets are read from minutes)."""
    return max(span for span in SPANS if bucket % span == 0)


def kept_from(level: int, now: datetime, retention: timedelta) -> datetime:
    """The start of the oldest period of ``level`` kept at ``now``. Whole hours of minutes and whole days
    of hours: at least ``MINUTES_KEPT`` / ``HOURS_KEPT`` (what ``finest_bucket`` promises), whatever the
    time of the run."""
    if level == MINUTE:
        return span_start(now - MINUTES_KEPT, HOUR)
    if level == HOUR:
        return span_start(now - HOURS_KEPT, DAY)
    return span_start(now - retention, DAY)


def values(r: Rollup) -> dict[str, Any]:
    return {
        "endpoint_id": r.endpoint_id,
        "tenant_id": r.tenant_id,
        "span": r.span,
        "start": r.start,
        "attempts": r.attempts,
        "outcomes": r.outcomes,
        "codes": r.codes,
        "latency": r.latency,
        "duration_ms": r.duration_ms,
        "succeeded": r.succeeded,
        "failed": r.failed,
        "last_success_at": r.last_success_at,
        "last_failure_at": r.last_failure_at,
    }


_JSON_COLUMNS = ("outcomes", "codes", "latency")
_COUNTED = _COLUMNS[_COLUMNS.index("attempts") :]  # what merging changes (the rest names the row)


def _counts(r: Rollup) -> dict[str, Any]:
    row = values(r)
    return {name: row[name] for name in _COUNTED}


def _json(value: Any) -> dict[str, int]:
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


def _selected(dialect: str) -> list[Any]:
    """The columns in ``_COLUMNS`` order, the JSON ones as text (parsed here by orjson, several times
    faster than the driver's default decoder on the rows a stats query reads)."""
    c = attempt_rollups.c
    return [
        (sa.cast(c[name], sa.Text) if dialect == "postgresql" else sa.type_coerce(c[name], sa.Text))
        if name in _JSON_COLUMNS
        else c[name]
        for name in _COLUMNS
    ]


def from_row(row: Sequence[Any]) -> Rollup:
    """A rollup from a row of ``_selected`` (or of the columns in ``_COLUMNS`` order)."""
    (endpoint_id, tenant_id, span, start, attempts, outcomes, codes, latency, duration_ms, succeeded, failed,
     last_success_at, last_failure_at) = row  # fmt: skip
    return Rollup(
        endpoint_id=endpoint_id,
        tenant_id=tenant_id,
        span=span,
        start=start,
        attempts=attempts,
        outcomes=_json(outcomes),
        codes=_json(codes),
        latency=_json(latency),
        duration_ms=duration_ms,
        succeeded=succeeded,
        failed=failed,
        last_success_at=last_success_at,
        last_failure_at=last_failure_at,
    )


# --- appending (the recorder) ---------------------------------------------------------------------------


PG_APPEND = f"""
INSERT INTO attempt_rollups ({", ".join(_COLUMNS)})
SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::jsonb[],
                     $7::jsonb[], $8::jsonb[], $9::bigint[], $10::int[], $11::int[], $12::timestamptz[],
                     $13::timestamptz[])
"""


def pg_append_args(rollups: Sequence[Rollup]) -> list[list[Any]]:
    """The arrays of ``PG_APPEND`` (asyncpg binds them; the JSON columns travel as text)."""
    rows = [values(r) for r in rollups]
    dumps = orjson.dumps
    return [
        [dumps(row[name]).decode() if name in _JSON_COLUMNS else row[name] for row in rows]
        for name in _COLUMNS
    ]


async def append(conn: AsyncConnection, rollups: Sequence[Rollup], *, summaries: bool = False) -> None:
    """Append rows through SQLAlchemy: batches' rows (SQLite's recorder) or a level's summaries
    (compaction; the benchmark's history)."""
    if not rollups:
        return
    rows = [values(r) for r in rollups]
    if summaries:
        for row in rows:
            row["summary"] = True
    await conn.execute(attempt_rollups.insert(), rows)


# --- reading (the stats queries) ------------------------------------------------------------------------


async def read(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime,
    bucket: int,
    tenant_id: str | None,
    endpoint_ids: Sequence[int] | None = None,
) -> list[Rollup]:
    """What a query in buckets of ``bucket`` seconds adds up over [since, until) (both on the bucket's
    edges): the summaries of its level and the batches' rows not added to them yet; of the endpoints
    given, else of the tenant, else of all."""
    c = attempt_rollups.c
    query = sa.select(*_selected(conn.dialect.name)).where(
        c.start >= since,
        c.start < until,
        sa.or_(sa.and_(c.summary, c.span == level_of(bucket)), ~c.summary),
    )
    if endpoint_ids is not None:
        query = query.where(c.endpoint_id.in_(list(endpoint_ids)))
    if tenant_id is not None:
        query = query.where(c.tenant_id == tenant_id)
    return [from_row(r) for r in await conn.execute(query)]


# --- compacting -----------------------------------------------------------------------------------------


def fold(rows: Iterable[Rollup], span: int) -> list[Rollup]:
    """The rows merged per endpoint and ``span``-second period."""
    groups: dict[tuple[int, datetime], list[Rollup]] = defaultdict(list)
    for r in rows:
        groups[(r.endpoint_id, span_start(r.start, span))].append(r)
    return [
        merged(group, endpoint_id=endpoint_id, tenant_id=group[0].tenant_id, span=span, start=start)
        for (endpoint_id, start), group in groups.items()
    ]


def level_sums(batch: Iterable[Rollup], level: int, kept: datetime) -> list[Rollup]:
    """The batches' rows that ``level`` counts, merged per endpoint and period: rows no coarser than the
    level (a day's row, written before the levels, cannot be cut into hours) of a period it keeps (from
    ``kept`` on)."""
    return fold((r for r in batch if r.span <= level and span_start(r.start, level) >= kept), level)


async def _summaries_of(
    conn: AsyncConnection, level: int, periods: set[tuple[int, datetime]]
) -> dict[tuple[int, datetime], tuple[int, Rollup]]:
    """The summaries (id, rollup) of ``level`` for these (endpoint, period)s, where there are some. Read
    by endpoint and a range of starts (short bind lists, whatever the batch), then picked here."""
    c = attempt_rollups.c
    starts = [start for _, start in periods]
    query = sa.select(c.id, *_selected(conn.dialect.name)).where(
        c.summary,
        c.span == level,
        c.endpoint_id.in_({endpoint_id for endpoint_id, _ in periods}),
        c.start >= min(starts),
        c.start <= max(starts),
    )
    found = ((row[0], from_row(row[1:])) for row in await conn.execute(query))
    return {key: (row_id, r) for row_id, r in found if (key := (r.endpoint_id, r.start)) in periods}


async def _add_to_level(conn: AsyncConnection, batch: Sequence[Rollup], level: int, kept: datetime) -> None:
    """Add the batches' rows to the summaries of ``level``: a summary they grow is read, merged here and
    updated in place (on PostgreSQL it can stay heap-only: no indexed column changes), a period without
    one gets it (one per endpoint and period: the unique index holds compaction to that)."""
    sums = level_sums(batch, level, kept)
    if not sums:
        return
    current = await _summaries_of(conn, level, {(r.endpoint_id, r.start) for r in sums})
    grown: list[tuple[int, Rollup]] = []
    new: list[Rollup] = []
    for r in sums:
        if (found := current.get((r.endpoint_id, r.start))) is None:
            new.append(r)
        else:
            found[1].merge(r)
            grown.append(found)
    if grown:
        c = attempt_rollups.c
        await conn.execute(
            attempt_rollups.update().where(c.id == sa.bindparam("row_id")),
            [{"row_id": row_id, **_counts(r)} for row_id, r in grown],
        )
    await append(conn, new, summaries=True)


async def _add_batches(conn: AsyncConnection, now: datetime, retention: timedelta) -> int:
    """Add up to ``COMPACT_BATCH`` batches' rows to every level and delete them; returns how many."""
    c = attempt_rollups.c
    rows = (
        await conn.execute(
            sa.select(c.id, *_selected(conn.dialect.name)).where(~c.summary).limit(COMPACT_BATCH)
        )
    ).all()
    if not rows:
        return 0
    await conn.execute(attempt_rollups.delete().where(c.id.in_([r[0] for r in rows])))
    batch = [from_row(r[1:]) for r in rows]
    for level in SPANS:
        await _add_to_level(conn, batch, level, kept_from(level, now, retention))
    return len(rows)


async def _expire(conn: AsyncConnection, now: datetime, retention: timedelta) -> None:
    """Delete the summaries older than their level keeps (a coarser level counts them still; past the
    retention, none does)."""
    c = attempt_rollups.c
    for level in SPANS:
        await conn.execute(
            attempt_rollups.delete().where(
                c.summary, c.span == level, c.start < kept_from(level, now, retention)
            )
        )


async def _locked(conn: AsyncConnection, store: Store) -> bool:
    """Whether this transaction may compact: on PostgreSQL, one at a time across workers (SQLite has one
    writer anyway)."""
    if store.is_sqlite:
        return True
    return bool((await conn.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY})"))).scalar())


async def compact(store: Store, now: datetime, *, retention: timedelta) -> int:
    """One compaction run; returns how many batches' rows it added. Safe to call from every worker: on
    PostgreSQL a run that finds another one going does nothing. Each step is one transaction.

    A step's rows are decoded, folded and merged in Python on the worker's event loop, so nothing is
    sent, claimed or recorded while it runs: steps of ``COMPACT_BATCH`` rows keep each pause short.
    With 20,000 rows a step (and as many bind parameters in its delete) the worker stopped for
    100-350 ms every 30 s, the slowest 1 % of deliveries at 500 events/s (measured, 202-to-receipt over
    60 s: max 265-352 ms, p99 29-91 ms in three runs; with 1,000 rows a step, max 103-105 ms, p99
    36-51 ms in two)."""
    total = 0
    while True:
        async with store.write() as conn:
            if not await _locked(conn, store):
                return total
            added = await _add_batches(conn, now, retention)
        total += added
        if added < COMPACT_BATCH:
            break
    async with store.write() as conn:
        if not await _locked(conn, store):
            return total
        await _expire(conn, now, retention)
        # Rows of a webhook deleted while a batch or this compaction was writing them.
        c = attempt_rollups.c
        await conn.execute(attempt_rollups.delete().where(c.endpoint_id.not_in(sa.select(endpoints.c.id))))
    return total
