"""Attempt rollups in the store (``attempt_rollups``): appending, reading, compacting.

Every attempt is counted in exactly one row at any time. The recorder appends one row per endpoint and
minute with each batch of answers (in the batch's transaction, so a batch rolled back counts nothing).
Compaction (``compact``, run by the workers, one at a time) moves rows, never copies them: it merges
the rows of each minute into one, folds minutes older than ``MINUTES_KEPT`` into hours and
hours older than ``HOURS_KEPT`` into days, and drops days past the retention. A row that arrives late
for a period already folded (an answer recorded long after its attempt started) is folded by the next
run. So a query adds up rows of any span in its window, and the age of the window bounds how fine its
buckets may be (``finest_bucket``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.rollups import DAY, HOUR, MINUTE, Rollup, merged, span_start
from hookline.store.engine import Store
from hookline.store.schema import attempt_rollups, endpoints

MINUTES_KEPT = timedelta(hours=3)  # minute rows: then folded into hours
HOURS_KEPT = timedelta(days=3)  # hour rows: then folded into days
COMPACT_BATCH = 20_000  # rows read per compaction transaction
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
    """The smallest bucket (seconds) a window starting at ``since`` can be cut into: rows older than
    ``MINUTES_KEPT`` are hours, older than ``HOURS_KEPT`` days."""
    if since >= now - MINUTES_KEPT:
        return MINUTE
    if since >= now - HOURS_KEPT:
        return HOUR
    return DAY


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


async def append(conn: AsyncConnection, rollups: Sequence[Rollup]) -> None:
    """Append rows through SQLAlchemy (SQLite's recorder, and compaction on both backends)."""
    if rollups:
        await conn.execute(attempt_rollups.insert(), [values(r) for r in rollups])


# --- reading (the stats queries) ------------------------------------------------------------------------


async def read(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime,
    tenant_id: str | None,
    endpoint_ids: Sequence[int] | None = None,
) -> list[Rollup]:
    """The rows starting in [since, until): of the endpoints given, else of the tenant, else of all."""
    query = sa.select(*_selected(conn.dialect.name)).where(
        attempt_rollups.c.start >= since, attempt_rollups.c.start < until
    )
    if endpoint_ids is not None:
        query = query.where(attempt_rollups.c.endpoint_id.in_(list(endpoint_ids)))
    if tenant_id is not None:
        query = query.where(attempt_rollups.c.tenant_id == tenant_id)
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


async def _fold_step(conn: AsyncConnection, span: int, into: int, before: datetime) -> int:
    """Fold rows of ``span`` starting before ``before`` into rows of ``into``; returns the rows read.
    With ``span == into`` only periods with more than one row are touched."""
    c = attempt_rollups.c
    where = [c.span == span, c.start < before]
    if span == into:
        crowded = (
            sa.select(c.endpoint_id, c.start)
            .where(*where)
            .group_by(c.endpoint_id, c.start)
            .having(sa.func.count() > 1)
            .limit(COMPACT_BATCH)
            .subquery()
        )
        query = sa.select(c.id, *_selected(conn.dialect.name)).join(
            crowded, sa.and_(crowded.c.endpoint_id == c.endpoint_id, crowded.c.start == c.start)
        )
        query = query.where(c.span == span)
    else:
        query = (
            sa.select(c.id, *_selected(conn.dialect.name)).where(*where).order_by(c.id).limit(COMPACT_BATCH)
        )
    rows = (await conn.execute(query)).all()
    if not rows:
        return 0
    # A period whose rows this batch only partly holds gets two rows of ``into``: the same-span step
    # that follows merges them.
    await conn.execute(attempt_rollups.delete().where(c.id.in_([r.id for r in rows])))
    await append(conn, fold((from_row(r[1:]) for r in rows), into))
    return len(rows)


async def compact(store: Store, now: datetime, *, retention: timedelta) -> int:
    """One compaction run; returns how many rows it read. Safe to call from every worker: on
    PostgreSQL a run that finds another one going does nothing."""
    # Merging the rows of a period moves them into one: rows appended meanwhile are left for the next
    # run, so even the current minute can be merged (no period has to be over first).
    everything = now + timedelta(days=1)
    steps = (
        (MINUTE, MINUTE, everything),
        (MINUTE, HOUR, span_start(now - MINUTES_KEPT, HOUR)),
        (HOUR, HOUR, everything),
        (HOUR, DAY, span_start(now - HOURS_KEPT, DAY)),
        (DAY, DAY, everything),
    )
    total = 0
    for span, into, before in steps:
        while True:
            async with store.write() as conn:
                if not store.is_sqlite:
                    got = (
                        await conn.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY})"))
                    ).scalar()
                    if not got:
                        return total
                read_rows = await _fold_step(conn, span, into, before)
            total += read_rows
            if read_rows < COMPACT_BATCH:
                break
    # Past the retention there are only days (older rows were folded into days above); the span in the
    # condition lets the (span, start) index find them.
    async with store.write() as conn:
        c = attempt_rollups.c
        await conn.execute(
            attempt_rollups.delete().where(c.span == DAY, c.start < span_start(now - retention, DAY))
        )
        # Rows of a webhook deleted while a batch or this compaction was writing them.
        await conn.execute(attempt_rollups.delete().where(c.endpoint_id.not_in(sa.select(endpoints.c.id))))
    return total
