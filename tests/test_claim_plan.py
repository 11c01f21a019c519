"""How PostgreSQL plans the claim's lease when its statistics are stale: a large history of finished
deliveries analyzed while nothing was pending, then a burst. The lease must still update the rows it
picked by primary key; planned as a scan of the pending index (which the stale statistics call a
one-row index) it cost 0.1-5 s a claim instead of ~13 ms (docs/benchmarks.md, issue 13)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from hookline.store import migrate
from hookline.store.engine import Store
from hookline.store.queue import _PG_LEASE, _PG_PLAN_EACH_TIME
from tests.conftest import throwaway_pg_database

ENDPOINTS = 10
FINISHED_EVENTS = 25_000  # two finished deliveries each
BURST_EVENTS = 300  # one pending delivery per endpoint each


@pytest.fixture(scope="module")
def stale_url() -> Iterator[str]:
    with throwaway_pg_database("hookline_plan") as url:
        asyncio.run(_fill(url))
        yield url


async def _fill(url: str) -> None:
    store = Store.from_url(url)
    try:
        await migrate.upgrade(store)
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            f"""
            INSERT INTO tenants VALUES ('t1', 't', '{{}}', now(), now(), NULL);
            INSERT INTO endpoints (id, tenant_id, url, description, secret, events, headers, metadata,
                                   active, created_at, updated_at)
              SELECT i, 't1', 'https://example.com/' || i, '', 'whsec_x', '["*"]', '{{}}', '{{}}', true,
                     now(), now()
              FROM generate_series(1, {ENDPOINTS}) AS i;
            INSERT INTO endpoint_state (endpoint_id, tenant_id, updated_at)
              SELECT i, 't1', now() FROM generate_series(1, {ENDPOINTS}) AS i;
            INSERT INTO events (seq, id, tenant_id, event_type, payload, delivery_count, created_at)
              SELECT i, 'old' || i, 't1', 'message.received', '\\x7b7d', 2, now() - interval '40 days'
              FROM generate_series(1, {FINISHED_EVENTS}) AS i;
            INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, event_type, status, attempts,
                                    next_attempt_at, created_at, updated_at, completed_at)
              SELECT i, 1 + (i * 2 + j) % {ENDPOINTS}, 't1', 'message.received', 'succeeded', 1,
                     now() - interval '40 days', now() - interval '40 days', now() - interval '40 days',
                     now() - interval '40 days'
              FROM generate_series(1, {FINISHED_EVENTS}) AS i, generate_series(0, 1) AS j;
            """
        )
        await conn.execute("VACUUM ANALYZE")
        await conn.execute(
            f"""
            INSERT INTO events (seq, id, tenant_id, event_type, payload, delivery_count, created_at)
              SELECT i, 'new' || i, 't1', 'message.received', '\\x7b7d', {ENDPOINTS}, now()
              FROM generate_series({FINISHED_EVENTS + 1}, {FINISHED_EVENTS + BURST_EVENTS}) AS i;
            INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, event_type, status, attempts,
                                    next_attempt_at, created_at, updated_at)
              SELECT i, e, 't1', 'message.received', 'pending', 0, now() - interval '1 second', now(),
                     now()
              FROM generate_series({FINISHED_EVENTS + 1}, {FINISHED_EVENTS + BURST_EVENTS}) AS i,
                   generate_series(1, {ENDPOINTS}) AS e;
            """
        )
    finally:
        await conn.close()


def _lease_args(quota: int) -> list[Any]:
    now = datetime.now(UTC)
    ids = list(range(1, ENDPOINTS + 1))
    return [ids, [quota] * ENDPOINTS, [quota + 1] * ENDPOINTS, now, now + timedelta(seconds=30), "w1"]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _lease(url: str, quota: int, explain: bool) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(_PG_PLAN_EACH_TIME)
            if explain:
                # ANALYZE: the plan actually run, in a transaction rolled back below.
                raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + _PG_LEASE, *_lease_args(quota))
                rows: list[Any] = json.loads(raw) if isinstance(raw, str) else raw
            else:
                rows = list(await conn.fetch(_PG_LEASE, *_lease_args(quota)))
            raise _RollBack(rows)
    except _RollBack as done:
        return done.rows
    finally:
        await conn.close()


class _RollBack(Exception):
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows


def test_stale_statistics_still_say_nothing_is_pending(stale_url: str) -> None:
    """The premise: the planner's view is the one analyzed before the burst."""
    conn_rows = asyncio.run(
        _fetch(stale_url, "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'deliveries'")
    )
    assert conn_rows[0][0] >= ENDPOINTS * BURST_EVENTS


async def _fetch(url: str, query: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def test_lease_updates_by_primary_key_with_stale_statistics(stale_url: str) -> None:
    plan = asyncio.run(_lease(stale_url, quota=20, explain=True))[0]["Plan"]
    updates = [
        n for n in _nodes(plan) if n.get("Node Type") == "ModifyTable" and n.get("Operation") == "Update"
    ]
    assert len(updates) == 1
    scans = [
        n for n in _nodes(updates[0]) if "Scan" in n["Node Type"] and n.get("Relation Name") == "deliveries"
    ]
    assert [(s["Node Type"], s.get("Index Name")) for s in scans] == [("Index Scan", "pk_deliveries")], scans
    # It read the rows it leased, not every pending delivery.
    assert scans[0]["Actual Rows"] == 20 * ENDPOINTS


def test_lease_with_stale_statistics_takes_each_endpoints_quota_oldest_first(stale_url: str) -> None:
    rows = asyncio.run(_lease(stale_url, quota=20, explain=False))
    leased = [r for r in rows if r[0] == "j"]
    assert len(leased) == 20 * ENDPOINTS
    by_endpoint: dict[int, list[int]] = {}
    for r in leased:
        by_endpoint.setdefault(r[3], []).append(r[13])
    assert sorted(by_endpoint) == list(range(1, ENDPOINTS + 1))
    oldest = [f"new{FINISHED_EVENTS + i}" for i in range(1, 21)]
    assert all(sorted(ids, key=lambda i: int(i[3:])) == oldest for ids in by_endpoint.values())
