"""The statistics query (issue 11): how fast ``GET /v1/webhooks/{id}/stats`` and ``GET /v1/webhooks/stats``
answer over 30 days of history.

The history is written straight into the deployment's database as the workers would have left it at
this moment: ``attempt_rollups`` rows per endpoint for 30 days, compacted (days older than 3 days,
hours older than 3 h, minutes since, and the current minute still in the many small rows that batches
append between compaction runs, 30 s apart). Each of ``STATS_ENDPOINTS`` webhooks has
``stats_attempts`` attempts in its 30 days (10,000,000 in the full run), so the one-webhook query
covers that many and the tenant query ten times as many. The rows are made by ``hookline.rollups``
itself from a lognormal latency (median 80 ms), so their sketches are as large as real ones. Then each
query runs ``STATS_QUERIES`` times through the API process; the answer's attempt count is checked
against what was written.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.api import call
from bench.deploy import ADMIN_KEY, TENANT, Deployment
from bench.scenarios import Bench, deployed, percentile
from hookline.rollups import DAY, HOUR, MINUTE, Rollup, span_start
from hookline.store import rollups as rollup_rows
from hookline.store.engine import Store

STATS_ENDPOINTS = 10
STATS_QUERIES = 40
RECENT_BATCH_ROWS = 100  # small rows for the last minute (appended since the last compaction run)


def _minute(endpoint_id: int, start: datetime, attempts: int, rng: random.Random) -> Rollup:
    r = Rollup(endpoint_id, TENANT, MINUTE, start)
    for _ in range(attempts):
        roll = rng.random()
        code = 200 if roll < 0.95 else (503 if roll < 0.98 else None)
        duration = int(rng.lognormvariate(4.38, 0.6))  # median ~80 ms
        r.add_attempt(
            started_at=start + timedelta(seconds=rng.random() * 59),
            duration_ms=duration,
            status_code=code,
            failure=None if code is not None else "timeout",
            final="succeeded" if code == 200 else None,
        )
    return r


def _scaled(base: Rollup, span: int, start: datetime, factor: int) -> Rollup:
    r = Rollup(base.endpoint_id, base.tenant_id, span, start)
    r.attempts = base.attempts * factor
    r.outcomes = {k: v * factor for k, v in base.outcomes.items()}
    r.codes = {k: v * factor for k, v in base.codes.items()}
    r.latency = {k: v * factor for k, v in base.latency.items()}
    r.duration_ms = base.duration_ms * factor
    r.succeeded = base.succeeded * factor
    r.failed = base.failed * factor
    r.last_success_at = r.last_failure_at = start + timedelta(seconds=span - 1)
    return r


def history(endpoint_id: int, now: datetime, attempts: int, rng: random.Random) -> list[Rollup]:
    """30 days of one endpoint's rows as compaction leaves them at ``now`` (see the module docstring)."""
    per_minute = max(1, attempts // (30 * 1440))
    base = _minute(endpoint_id, now, per_minute, rng)
    rows: list[Rollup] = []
    first = span_start(now - timedelta(days=30), DAY)
    hours_from = span_start(now - rollup_rows.HOURS_KEPT, DAY)
    minutes_from = span_start(now - rollup_rows.MINUTES_KEPT, HOUR)
    at = first
    while at < hours_from:
        rows.append(_scaled(base, DAY, at, 1440))
        at += timedelta(days=1)
    while at < minutes_from:
        rows.append(_scaled(base, HOUR, at, 60))
        at += timedelta(hours=1)
    recent = span_start(now, MINUTE)
    while at < recent:
        rows.append(_scaled(base, MINUTE, at, 1))
        at += timedelta(minutes=1)
    while at <= now:  # not compacted yet: one small row per batch
        for _ in range(RECENT_BATCH_ROWS):
            rows.append(_minute(endpoint_id, at, max(1, per_minute // RECENT_BATCH_ROWS), rng))
        at += timedelta(minutes=1)
    return rows


async def _write(url: str, rows: list[Rollup]) -> None:
    store = Store.from_url(url)
    try:
        async with store.write() as conn:
            for i in range(0, len(rows), 2000):
                await rollup_rows.append(conn, rows[i : i + 2000])
    finally:
        await store.close()


def _timed(deploy: Deployment, path: str) -> tuple[list[float], dict[str, Any]]:
    url = f"{deploy.api.base}{path}"
    for _ in range(3):  # warm up
        call("GET", url, key=ADMIN_KEY, timeout=30)
    times = []
    answer: dict[str, Any] = {}
    for _ in range(STATS_QUERIES):
        started = time.perf_counter()
        answer = call("GET", url, key=ADMIN_KEY, timeout=30)["data"]
        times.append((time.perf_counter() - started) * 1000)
    return times, answer


def stats(bench: Bench, backend: str) -> None:
    sizes = bench.sizes
    with deployed(bench, backend, "stats") as deploy:
        deploy.add_endpoints("k", STATS_ENDPOINTS)
        ids = [e.id for e in deploy.endpoints["k"]]
        # What the deployment's own warm-up deliveries already put in the statistics.
        before = {
            e: call(
                "GET", f"{deploy.api.base}/v1/webhooks/{e}/stats?window=30d&tenant_id={TENANT}", key=ADMIN_KEY
            )["data"]["attempts"]["total"]
            for e in ids
        }
        tenant_before = call(
            "GET", f"{deploy.api.base}/v1/webhooks/stats?window=30d&tenant_id={TENANT}", key=ADMIN_KEY
        )["data"]["attempts"]["total"] - sum(before.values())
        now = datetime.now(UTC)
        rng = random.Random(11)
        started = time.monotonic()
        rows: list[Rollup] = []
        for endpoint_id in ids:
            rows.extend(history(endpoint_id, now, sizes.stats_attempts, rng))
        asyncio.run(_write(deploy.database_url, rows))
        written = {e: before[e] + sum(r.attempts for r in rows if r.endpoint_id == e) for e in ids}
        bench.add(
            "stats",
            backend,
            f"history written: {STATS_ENDPOINTS} webhooks x 30 days",
            time.monotonic() - started,
            "s",
            note=f"{len(rows):,} rollup rows for {sum(r.attempts for r in rows):,} attempts",
        )
        queries = (
            ("one webhook, 30 days (1d buckets)", f"/v1/webhooks/{ids[0]}/stats?window=30d", [ids[0]], True),
            (
                f"tenant of {STATS_ENDPOINTS} webhooks, 30 days (1d)",
                "/v1/webhooks/stats?window=30d",
                ids,
                False,
            ),
            ("one webhook, 24 h (1h buckets)", f"/v1/webhooks/{ids[0]}/stats?window=24h", None, False),
            (
                "one webhook, 3 h (1m buckets)",
                f"/v1/webhooks/{ids[0]}/stats?window=3h&bucket=1m",
                None,
                False,
            ),
        )
        for label, path, covered, target in queries:
            times, answer = _timed(deploy, f"{path}&tenant_id={TENANT}")
            expected = (
                sum(written[e] for e in covered) + (tenant_before if len(covered or ()) > 1 else 0)
                if covered
                else None
            )
            got = answer["attempts"]["total"]
            complete = expected is None or got == expected
            note = (
                f"p50 {statistics.median(times):.1f} ms over {STATS_QUERIES} queries; "
                f"{got:,} attempts in the answer" + ("" if complete else f", expected {expected:,}: WRONG")
            )
            bench.add(
                "stats",
                backend,
                f"{label}: p99",
                percentile(times, 99),
                "ms",
                at_most=50 if target else None,
                note=note,
                holds=complete,
            )
