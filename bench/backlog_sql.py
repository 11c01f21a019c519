"""Backlogs written straight into a deployment's database, faster than any API could take them.

``queue_due`` inserts pending deliveries due now for some endpoints (round robin over them), all of one
real event of the tenant, in one statement; ``wake`` then announces the endpoints (``endpoint_wakes``,
and a NOTIFY on PostgreSQL) as ingest would, so the dispatcher takes them in on its next claim (SQLite's
``serve`` at its next poll, within a second). ``delete_pending`` clears what a phase left behind.

PostgreSQL goes through ``bench.pg``; SQLite through the standard library on the deployment's file, beside
the running ``serve`` (WAL: each statement waits for the write lock like any writer).
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg

from bench import pg
from bench.api import wait_delivered
from bench.deploy import Deployment

WAKE_CHANNEL = "hookline_work"  # hookline.store.engine.WAKE_CHANNEL


@contextlib.contextmanager
def _sqlite(deploy: Deployment) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(deploy.dir / "hookline.db", timeout=60)
    try:
        with conn:  # one transaction, committed on success
            yield conn
    finally:
        conn.close()


def _sqlite_all(deploy: Deployment, sql: str, *args: Any) -> list[Any]:
    with _sqlite(deploy) as conn:
        return conn.execute(sql, args).fetchall()


def seed_event(deploy: Deployment, tenant: str, channel: str) -> None:
    """Post one real event for ``tenant`` on ``channel`` and wait until it arrived: the template of the
    deliveries ``queue_due`` writes (a tenant needs one delivered event before it can have a backlog)."""
    before = deploy.sink.stats()["count"]
    deploy.api.post_event(tenant, deploy.example, channel=channel)
    wait_delivered(deploy.sink, before + 1, deploy.sending_procs())


def queue_due(deploy: Deployment, tenant: str, endpoint_ids: Sequence[int], rows: int) -> float:
    """Insert ``rows`` pending deliveries due now, spread round robin over ``endpoint_ids`` (of ``tenant``),
    each of the tenant's latest delivered event. Returns the seconds it took (PostgreSQL: with ANALYZE).
    Nothing is claimed until ``wake``."""
    ids = list(endpoint_ids)
    started = time.monotonic()
    if deploy.backend == "postgresql":
        url = deploy.database_url
        seq = pg.query(
            url,
            "SELECT event_seq FROM deliveries WHERE tenant_id = $1 AND status = 'succeeded'"
            " ORDER BY id DESC LIMIT 1",
            tenant,
        )[0][0]
        pg.query(
            url,
            """INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, event_type, status, attempts,
                                       next_attempt_at, created_at, updated_at)
               SELECT $1, ($2::bigint[])[1 + g % $4], $3, 'message.sent', 'pending', 0, now(), now(), now()
               FROM generate_series(0, $5 - 1) AS g""",
            seq,
            ids,
            tenant,
            len(ids),
            rows,
        )
        pg.query(url, "ANALYZE deliveries")
    else:
        # The template row's timestamps are in the past (due at once) and in the store's own format.
        template = _sqlite_all(
            deploy,
            "SELECT id FROM deliveries WHERE tenant_id = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1",
            tenant,
        )[0][0]
        slots = ", ".join("(?, ?)" for _ in ids)
        with _sqlite(deploy) as conn:
            conn.execute(
                f"""WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < ? - 1),
                         e(k, endpoint_id) AS (VALUES {slots})
                    INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, event_type, status, attempts,
                                            next_attempt_at, created_at, updated_at)
                    SELECT t.event_seq, e.endpoint_id, t.tenant_id, t.event_type, 'pending', 0,
                           t.completed_at, t.completed_at, t.completed_at
                    FROM g JOIN e ON e.k = g.n % ? CROSS JOIN deliveries AS t
                    WHERE t.id = ?""",
                (rows, *(v for pair in enumerate(ids) for v in pair), len(ids), template),
            )
    return time.monotonic() - started


def wake(deploy: Deployment, endpoint_ids: Sequence[int]) -> None:
    """Announce new work for ``endpoint_ids``, as the ingest path does."""
    ids = list(endpoint_ids)
    if deploy.backend == "postgresql":
        url = deploy.database_url
        pg.query(url, "INSERT INTO endpoint_wakes (endpoint_id) SELECT unnest($1::bigint[])", ids)
        pg.query(url, "SELECT pg_notify($1, '')", WAKE_CHANNEL)
    else:
        with _sqlite(deploy) as conn:
            conn.executemany("INSERT INTO endpoint_wakes (endpoint_id) VALUES (?)", [(i,) for i in ids])


def pending(deploy: Deployment, endpoint_ids: Sequence[int]) -> int:
    """Pending deliveries of ``endpoint_ids`` (leased ones included)."""
    ids = list(endpoint_ids)
    if deploy.backend == "postgresql":
        sql = "SELECT count(*) FROM deliveries WHERE status = 'pending' AND endpoint_id = ANY($1::bigint[])"
        return int(pg.query(deploy.database_url, sql, ids)[0][0])
    marks = ", ".join("?" for _ in ids)
    sql = f"SELECT count(*) FROM deliveries WHERE status = 'pending' AND endpoint_id IN ({marks})"
    return int(_sqlite_all(deploy, sql, *ids)[0][0])


def delete_pending(deploy: Deployment, endpoint_ids: Sequence[int]) -> int:
    """Delete the pending deliveries of ``endpoint_ids`` (what a phase left undelivered); returns how many.
    Results of those still in flight find no row and are dropped by the worker, as for a deleted webhook."""
    ids = list(endpoint_ids)
    if deploy.backend == "postgresql":
        sql = (
            "WITH gone AS (DELETE FROM deliveries"
            " WHERE status = 'pending' AND endpoint_id = ANY($1::bigint[]) RETURNING 1)"
            " SELECT count(*) FROM gone"
        )
        for tries in itertools.count(1):
            try:
                return int(pg.query(deploy.database_url, sql, ids)[0][0])
            except asyncpg.DeadlockDetectedError:  # with a worker leasing or recording the same rows
                if tries == 5:
                    raise
                time.sleep(0.1)
    marks = ", ".join("?" for _ in ids)
    with _sqlite(deploy) as conn:
        cursor = conn.execute(
            f"DELETE FROM deliveries WHERE status = 'pending' AND endpoint_id IN ({marks})", ids
        )
        return cursor.rowcount
