"""The statistics query (issue 11): how fast ``GET /v1/webhooks/{id}/stats`` and ``GET /v1/webhooks/stats``
answer over 30 days of history.

The history is written straight into the deployment's database as the workers would have left it at
this moment: for each endpoint, 30 days of attempts in the summaries of each level that compaction
keeps (days for the retention, hours for the last 3 days, minutes for the last 3 h, the current
periods included), made with compaction's own ``level_sums``, and the current minute's many small
batches' rows that the recorder appended since the last compaction run (30 s apart). Each of
``STATS_ENDPOINTS`` webhooks has ``stats_attempts`` attempts in its 30 days (10,000,000 in the full
run), so the one-webhook query covers that many and the tenant query ten times as many. The rows are
made by ``hookline.rollups`` itself from a lognormal latency (median 80 ms), so their sketches are as
large as real ones. Then each query runs ``STATS_QUERIES`` times through the API process; the answer's
attempt count is checked against what was written.
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
from hookline.rollups import DAY, HOUR, MINUTE, SPANS, Rollup, span_start
from hookline.store import rollups as rollup_rows
from hookline.store.engine import Store

STATS_ENDPOINTS = 10
STATS_QUERIES = 40
RECENT_BATCH_ROWS = 100  # small rows for the last minute (appended since the last compaction run)
RETENTION = timedelta(days=90)  # the deployment's (HOOKLINE_STATS_RETENTION's default)


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


def _spans(now: datetime, base: Rollup) -> list[Rollup]:
    """30 days of ``base`` minutes, in as few rows as the levels need: days, then the hours of the last
    3 days, then the minutes of the last 3 h (up to the current minute)."""
    rows: list[Rollup] = []
    first = span_start(now - timedelta(days=30), DAY)
    hours_from = rollup_rows.kept_from(HOUR, now, RETENTION)
    minutes_from = rollup_rows.kept_from(MINUTE, now, RETENTION)
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
    return rows


def history(
    endpoint_id: int, now: datetime, attempts: int, rng: random.Random
) -> tuple[list[Rollup], list[Rollup]]:
    """30 days of one endpoint as compaction leaves them at ``now`` (see the module docstring): (the
    summaries of every level, the batches' rows not added yet)."""
    per_minute = max(1, attempts // (30 * 1440))
    spans = _spans(now, _minute(endpoint_id, now, per_minute, rng))
    summaries = [
        summary
        for level in SPANS
        for summary in rollup_rows.level_sums(spans, level, rollup_rows.kept_from(level, now, RETENTION))
    ]
    current = span_start(now, MINUTE)  # not compacted yet: one small row per batch
    batches = [
        _minute(endpoint_id, current, max(1, per_minute // RECENT_BATCH_ROWS), rng)
        for _ in range(RECENT_BATCH_ROWS)
    ]
    return summaries, batches


async def _write(url: str, summaries: list[Rollup], batches: list[Rollup]) -> None:
    store = Store.from_url(url)
    try:
        async with store.write() as conn:
            for i in range(0, len(summaries), 2000):
                await rollup_rows.append(conn, summaries[i : i + 2000], summaries=True)
            await rollup_rows.append(conn, batches)
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
        summaries: list[Rollup] = []
        batches: list[Rollup] = []
        for endpoint_id in ids:
            levels, recent = history(endpoint_id, now, sizes.stats_attempts, rng)
            summaries.extend(levels)
            batches.extend(recent)
        asyncio.run(_write(deploy.database_url, summaries, batches))
        # Each level counts every attempt: the days alone, with the batches, say how many there are.
        counted = [r for r in summaries if r.span == DAY] + batches
        written = {e: before[e] + sum(r.attempts for r in counted if r.endpoint_id == e) for e in ids}
        bench.add(
            "stats",
            backend,
            f"history written: {STATS_ENDPOINTS} webhooks x 30 days",
            time.monotonic() - started,
            "s",
            note=f"{len(summaries) + len(batches):,} rollup rows for {sum(r.attempts for r in counted):,} "
            "attempts",
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
