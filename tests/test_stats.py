"""Delivery statistics (issue 11): ``GET /v1/webhooks/{id}/stats`` and ``GET /v1/webhooks/stats``.

End to end on SQLite and PostgreSQL (the real API, the real Worker, loopback receivers): the figures must
match the attempts recorded, exactly for counts (in total and per bucket) and within the sketch's stated
accuracy for percentiles, whoever asks (a webhook, a tenant, the operator for the whole service). The
rollups' merge and compaction rules are checked with hypothesis against a direct count.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookline.api.services import Services
from hookline.rollups import (
    BUCKETS,
    DAY,
    HOUR,
    MINUTE,
    RELATIVE_ACCURACY,
    Rollup,
    bucketed,
    merged,
    of_outcomes,
    outcome_of,
    span_start,
)
from hookline.store import rollups as rollup_rows
from hookline.store.queue import Outcome
from hookline.store.schema import attempt_rollups
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Receiver, Reply
from tests.test_delivery import hook, running
from tests.test_endpoint_health import BASE_SETTINGS, all_settled, closed_port, queue_events


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(BASE_SETTINGS) | {"retry_schedule": "100ms", "delivery_timeout": "500ms", "lease": "2s"}


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def attempts_of(api: Api, auth: dict[str, str], hook_id: int) -> list[dict[str, Any]]:
    """Every attempt recorded for the webhook, from the delivery log (what the stats must match)."""
    found: list[dict[str, Any]] = []
    page = assert_ok(await api.http.get(f"/v1/webhooks/{hook_id}/deliveries?limit=250", headers=auth))
    for item in page["items"]:
        detail = assert_ok(await api.http.get(f"/v1/deliveries/{item['id']}", headers=auth))
        found.extend(
            dict(a, delivery_status=detail["status"], test=detail["test"]) for a in detail["attempt_log"]
        )
    return found


def expected_outcome(attempt: dict[str, Any]) -> str:
    code = attempt["status_code"]
    if code is not None:
        return outcome_of(code, None)
    error = attempt["error"] or ""
    if error.startswith("timed out"):
        return "timeout"
    if error.startswith("connection failed"):
        return "connection_error"
    return "other"


def exact_quantile(durations: list[int], q: float) -> int:
    ordered = sorted(durations)
    return ordered[math.floor(q * (len(ordered) - 1))]


def within_accuracy(reported: float | None, true: int) -> bool:
    assert reported is not None
    if true == 0:
        return reported == 0
    return abs(reported - true) <= true * RELATIVE_ACCURACY + 0.05  # the answer is rounded to 0.1 ms


async def stats(api: Api, auth: dict[str, str], path: str, **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = assert_ok(await api.http.get(path, params=params, headers=auth))
    return found


# --- end to end ------------------------------------------------------------------------------------------


async def test_stats_match_the_attempts_recorded(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    rx.plan(
        "/mixed", *([Reply(200)] * 6 + [Reply(503)] * 3 + [Reply(404)] * 2 + [Reply(200, delay=0.05)] * 4)
    )
    rx.always("/mixed", Reply(200))
    rx.always("/slow", Reply(hang=True))
    patient = {"circuit_breaker": {"consecutive_failures": 1000, "min_requests": 1000}}  # no breaker here
    mixed = await hook(api, auth, rx.url("/mixed"), **patient)
    slow = await hook(api, auth, rx.url("/slow"), **patient)
    refused = await hook(api, auth, f"http://127.0.0.1:{closed_port()}/x", **patient)
    await queue_events(api, auth, 12)
    async with running(services):
        for endpoint in (mixed, slow, refused):
            await all_settled(api, auth, endpoint["id"], 12)

    everything: list[dict[str, Any]] = []
    for endpoint in (mixed, slow, refused):
        recorded = await attempts_of(api, auth, endpoint["id"])
        everything.extend(recorded)
        found = await stats(api, auth, f"/v1/webhooks/{endpoint['id']}/stats", window="1h", bucket="1m")
        outcomes = Counter(expected_outcome(a) for a in recorded)
        assert found["webhook_id"] == endpoint["id"] and found["bucket"] == "1m"
        assert found["attempts"]["total"] == len(recorded)
        assert {k: v for k, v in found["attempts"].items() if k != "total" and v} == dict(outcomes)
        codes = Counter(str(a["status_code"]) for a in recorded if a["status_code"] is not None)
        assert found["status_codes"] == dict(codes)
        assert found["deliveries"]["succeeded"] + found["deliveries"]["failed"] == 12
        assert found["deliveries"]["pending"] == 0 and found["deliveries"]["held"] == 0
        ok = outcomes.get("2xx", 0)
        assert found["success_rate"] == round(ok / len(recorded), 4)
        durations = [a["duration_ms"] for a in recorded]
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            assert within_accuracy(found["latency_ms"][name], exact_quantile(durations, q)), (name, found)
        assert found["latency_ms"]["mean"] == round(sum(durations) / len(durations), 1)
        # Per bucket: the attempts by the minute they started.
        per_minute = Counter(span_start(moment(a["started_at"]), MINUTE) for a in recorded)
        series = {
            moment(b["start"]): b["attempts"]["total"] for b in found["series"] if b["attempts"]["total"]
        }
        assert series == dict(per_minute)
        assert sum(b["attempts"]["total"] for b in found["series"]) == len(recorded)
        successes = [moment(a["started_at"]) for a in recorded if expected_outcome(a) == "2xx"]
        failures = [moment(a["started_at"]) for a in recorded if expected_outcome(a) != "2xx"]
        assert (moment(found["last_success_at"]) if found["last_success_at"] else None) == max(
            successes, default=None
        )
        assert (moment(found["last_failure_at"]) if found["last_failure_at"] else None) == max(
            failures, default=None
        )

    # The delivery outcomes of the mixed endpoint: 503s retried once, 404s not retried.
    tenant = await stats(api, auth, "/v1/webhooks/stats", window="1h")
    assert tenant["attempts"]["total"] == len(everything)
    assert tenant["deliveries"]["succeeded"] + tenant["deliveries"]["failed"] == 36
    assert (
        tenant["bucket"] == "1m"
        and tenant["circuit_breakers"]["closed"] + tenant["circuit_breakers"]["open"] == 3
    )


async def test_each_scope_sees_its_own_and_the_operator_sees_all(
    api: Api, services: Services, rx: Receiver
) -> None:
    tenant_a, auth_a = await api.tenant("A")
    tenant_b, auth_b = await api.tenant("B")
    a = await hook(api, auth_a, rx.url("/a"))
    b = await hook(api, auth_b, rx.url("/b"))
    await queue_events(api, auth_a, 3)
    await queue_events(api, auth_b, 5)
    async with running(services):
        await all_settled(api, auth_a, a["id"], 3)
        await all_settled(api, auth_b, b["id"], 5)
    # A test send is not counted.
    assert_ok(await api.http.post(f"/v1/webhooks/{a['id']}/test", headers=auth_a))

    # What the delivery logs recorded (a retry under load is one more attempt); A's test send is in its
    # log but not in its statistics.
    n_a = len([x for x in await attempts_of(api, auth_a, a["id"]) if not x["test"]])
    n_b = len(await attempts_of(api, auth_b, b["id"]))
    assert n_a >= 3 and n_b >= 5
    assert (await stats(api, auth_a, "/v1/webhooks/stats"))["attempts"]["total"] == n_a
    assert (await stats(api, auth_b, "/v1/webhooks/stats"))["attempts"]["total"] == n_b
    assert (await stats(api, auth_a, f"/v1/webhooks/{a['id']}/stats"))["attempts"]["total"] == n_a
    assert_error(await api.http.get(f"/v1/webhooks/{b['id']}/stats", headers=auth_a), 404)
    admin = api.admin
    assert (await stats(api, admin, "/v1/webhooks/stats"))["attempts"]["total"] == n_a + n_b
    everything = await stats(api, admin, "/v1/webhooks/stats")
    assert everything["tenant_id"] is None
    assert (await stats(api, admin, "/v1/webhooks/stats", tenant_id=tenant_b))["attempts"]["total"] == n_b
    assert (await stats(api, admin, f"/v1/webhooks/{a['id']}/stats", tenant_id=tenant_a))["attempts"][
        "total"
    ] == n_a
    # The default: the last 24 h in hourly buckets (1-minute ones reach back 3 h).
    default = await stats(api, auth_a, "/v1/webhooks/stats")
    assert default["bucket"] == "1h" and len(default["series"]) in (24, 25)


async def test_windows_that_cannot_be_answered_are_refused_with_the_reason(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    path = "/v1/webhooks/stats"
    cases = {
        (("window", "7d"), ("bucket", "1m")): "1m buckets reach back 3 hours; for this window use 1d",
        (("window", "2d"), ("bucket", "5m")): "5m buckets reach back 3 hours; for this window use 1h or 1d",
        (("window", "30d"), ("bucket", "1h")): "1h buckets reach back 3 days; for this window use 1d",
        (("window", "100d"),): "statistics are kept for 90 days: 'since' is earlier",
        (("window", "soon"),): "'window': invalid duration 'soon' (use e.g. 30s, 5m, 1h)",
        (("since", "2026-01-01T00:00:00Z"), ("window", "1h")): "give 'since' or 'window', not both",
        (("since", "2999-01-01T00:00:00Z"),): "'until' must be after 'since'",
    }
    for params, error in cases.items():
        assert_error(await api.http.get(path, params=dict(params), headers=auth), 400, error)
    assert_error(await api.http.get(path, params={"bucket": "2m"}, headers=auth), 400)
    assert_error(await api.http.get("/v1/webhooks/999/stats", headers=auth), 404, "webhook '999' not found")


# --- the rollups' rules -----------------------------------------------------------------------------------

BASE = datetime(2026, 11, 1, tzinfo=UTC)

attempt = st.builds(
    lambda endpoint, offset, duration, code, failure, status, sent: Outcome(
        delivery_id=0,
        endpoint_id=endpoint,
        tenant_id=f"t{endpoint % 2}",
        attempt=1,
        started_at=BASE + timedelta(seconds=offset),
        duration_ms=duration,
        status_code=code,
        response_body=None,
        error=None,
        request_headers={},
        status=status,
        next_attempt_at=None,
        failure=None if code is not None else failure,
        sent=sent,
    ),
    st.integers(1, 3),
    st.floats(0, 20 * DAY, allow_nan=False),
    st.integers(0, 60_000),
    st.one_of(st.none(), st.sampled_from([200, 201, 204, 301, 400, 404, 408, 429, 500, 503])),
    st.sampled_from(["timeout", "connection", "blocked", "invalid_request"]),
    st.sampled_from(["pending", "succeeded", "failed"]),
    st.booleans(),
)


def direct(outcomes: list[Outcome]) -> Rollup:
    """The whole batch counted in one rollup, attempt by attempt (what every fold must agree with)."""
    total = Rollup(0, "", DAY, BASE)
    for o in outcomes:
        final = None if o.status == "pending" else o.status
        if o.sent:
            total.add_attempt(
                started_at=o.started_at,
                duration_ms=o.duration_ms,
                status_code=o.status_code,
                failure=o.failure,
                final=final,
            )
        elif final is not None:
            total.add_finished(final)
    return total


def same(a: Rollup, b: Rollup) -> bool:
    keys = ("attempts", "outcomes", "codes", "latency", "duration_ms", "succeeded", "failed")
    return all(getattr(a, k) == getattr(b, k) for k in keys) and (a.last_success_at, a.last_failure_at) == (
        b.last_success_at,
        b.last_failure_at,
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(attempt, max_size=60), st.lists(st.integers(0, 60), max_size=5))
def test_folding_rows_into_hours_and_days_loses_nothing(outcomes: list[Outcome], cuts: list[int]) -> None:
    # Batches as the recorder writes them (the cuts split the list), folded minute -> hour -> day.
    edges = sorted({0, len(outcomes), *(c for c in cuts if c < len(outcomes))})
    rows: list[Rollup] = []
    for lo, hi in itertools.pairwise(edges):
        rows.extend(of_outcomes(outcomes[lo:hi]))
    assert all(r.span == MINUTE and r.start == span_start(r.start, MINUTE) for r in rows)
    for span in (MINUTE, HOUR, DAY):
        rows = rollup_rows.fold(rows, span)
        assert len({(r.endpoint_id, r.start) for r in rows}) == len(rows)
        assert all(r.span == span and r.start == span_start(r.start, span) for r in rows)
        total = Rollup(0, "", DAY, BASE)
        for r in rows:
            total.merge(r)
        assert same(total, direct(outcomes))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 600_000), min_size=1, max_size=300), st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0])
)
def test_a_percentile_is_within_the_stated_accuracy(durations: list[int], q: float) -> None:
    r = Rollup(1, "t", MINUTE, BASE)
    for d in durations:
        r.add_attempt(started_at=BASE, duration_ms=d, status_code=200, failure=None, final=None)
    assert within_accuracy(r.quantile(q), exact_quantile(durations, q))


# --- the levels: any window, in any buckets, as the raw minutes count it ---------------------------------

RETENTION = timedelta(days=10)
LAST = BASE + timedelta(days=12, hours=1)  # when the windows are asked: after every attempt below

step_attempt = st.builds(
    lambda which, offset, duration, code: (which, BASE + timedelta(seconds=offset), duration, code),
    st.integers(0, 1),
    st.floats(0, 12 * DAY, allow_nan=False),
    st.integers(0, 60_000),
    st.sampled_from([200, 201, 404, 500, 503, None]),
)
program = st.lists(
    st.tuples(st.lists(step_attempt, min_size=1, max_size=8), st.none() | st.floats(0, 12 * DAY + 3600)),
    min_size=1,
    max_size=12,
)


@st.composite
def queries(draw: st.DrawFn) -> tuple[datetime, datetime, int]:
    """A window and bucket size the API accepts at ``LAST``, widened to whole buckets as it does."""
    since = LAST - timedelta(seconds=draw(st.floats(1, RETENTION.total_seconds())))
    finest = rollup_rows.finest_bucket(since, LAST)
    bucket = draw(st.sampled_from([b for b in BUCKETS.values() if b >= finest]))
    until = since + (LAST - since) * draw(st.floats(0.01, 1))
    end = span_start(until, bucket)
    if end < until:
        end += timedelta(seconds=bucket)
    return span_start(since, bucket), end, bucket


@pytest.fixture
async def two_hooks(api: Api, rx: Receiver) -> tuple[str, list[int]]:
    """A tenant and two of its webhooks (compaction sweeps the rows of webhooks that do not exist)."""
    tenant, auth = await api.tenant()
    return tenant, [(await hook(api, auth, rx.url(f"/{n}")))["id"] for n in range(2)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=program, asked=st.lists(queries(), min_size=1, max_size=4))
async def test_any_window_read_from_the_levels_is_what_the_raw_minutes_say(
    services: Services,
    two_hooks: tuple[str, list[int]],
    steps: list[tuple[list[tuple[int, datetime, int, int | None]], float | None]],
    asked: list[tuple[datetime, datetime, int]],
) -> None:
    """Batches appended in any order (late ones too), compacted now and then as time goes on: every
    window and bucket size the API accepts gets, per bucket, what the batches' own rows add up to."""
    tenant, ids = two_hooks
    async with services.store.write() as conn:
        await conn.execute(attempt_rollups.delete())
    raw: list[Rollup] = []
    compacted_at = BASE
    for attempts, compact_at in steps:
        rows = of_outcomes(
            Outcome(
                delivery_id=0,
                endpoint_id=ids[which],
                tenant_id=tenant,
                attempt=1,
                started_at=started_at,
                duration_ms=duration,
                status_code=code,
                response_body=None,
                error=None,
                request_headers={},
                status="pending" if code else "failed",
                next_attempt_at=None,
                failure=None if code else "timeout",
            )
            for which, started_at, duration, code in attempts
        )
        raw.extend(rows)
        async with services.store.write() as conn:
            await rollup_rows.append(conn, rows)
        if compact_at is not None:
            compacted_at = max(compacted_at, BASE + timedelta(seconds=compact_at))
            await rollup_rows.compact(services.store, compacted_at, retention=RETENTION)
    for start, end, bucket in asked:
        async with services.store.read() as conn:
            read = await rollup_rows.read(conn, since=start, until=end, bucket=bucket, tenant_id=None)
        expected = bucketed((r for r in raw if start <= r.start < end), bucket)
        found = bucketed(read, bucket)
        assert found.keys() == expected.keys()
        assert all(same(found[at], expected[at]) for at in expected), (start, end, bucket)


async def stored(services: Services) -> list[tuple[bool, Rollup]]:
    """Every row of ``attempt_rollups``: (whether it is a level's summary, its rollup)."""
    c = attempt_rollups.c
    async with services.store.read() as conn:
        result = await conn.execute(sa.select(c.summary, *(c[name] for name in rollup_rows._COLUMNS)))
        return [(bool(row[0]), rollup_rows.from_row(row[1:])) for row in result]


def level_total(rows: list[tuple[bool, Rollup]], level: int) -> Rollup:
    return merged(
        (r for summary, r in rows if summary and r.span == level),
        endpoint_id=0,
        tenant_id="",
        span=level,
        start=BASE,
    )


def kept(outcomes: list[Outcome], level: int, now: datetime, retention: timedelta) -> list[Outcome]:
    """The attempts whose period ``level`` still keeps at ``now``."""
    since = rollup_rows.kept_from(level, now, retention)
    return [o for o in outcomes if span_start(o.started_at, level) >= since]


@pytest.mark.parametrize("rows_a_step", [rollup_rows.COMPACT_BATCH, 37])
async def test_compaction_adds_every_batch_to_every_level_once(
    api: Api, services: Services, rx: Receiver, monkeypatch: pytest.MonkeyPatch, rows_a_step: int
) -> None:
    """Rows of 20 days, several per minute as batches write them, compacted as if it were 20 days later
    (in steps of ``COMPACT_BATCH`` rows, which the 1,030 rows here take two or 28 of): no batch's row is
    left, each level counts every attempt of the periods it keeps exactly once (one summary per endpoint
    and period, however many steps grew it), a second run changes nothing, and a shorter retention then
    drops the days older than it."""
    monkeypatch.setattr(rollup_rows, "COMPACT_BATCH", rows_a_step)
    _, auth = await api.tenant()
    endpoint = (await hook(api, auth, rx.url("/c")))["id"]
    tenant = (await stats(api, auth, f"/v1/webhooks/{endpoint}/stats"))["tenant_id"]
    outcomes = [
        Outcome(
            delivery_id=0,
            endpoint_id=endpoint,
            tenant_id=tenant,
            attempt=1,
            started_at=BASE + timedelta(minutes=37 * n),
            duration_ms=n % 500,
            status_code=(200, 503, None)[n % 3],
            response_body=None,
            error=None,
            request_headers={},
            status=("succeeded", "pending", "failed")[n % 3],
            next_attempt_at=None,
            failure="timeout" if n % 3 == 2 else None,
        )
        for n in range(800)  # 37-minute steps: about 20.5 days
    ]
    async with services.store.write() as conn:
        for batch in range(0, len(outcomes), 7):
            await rollup_rows.append(conn, of_outcomes(outcomes[batch : batch + 7]))
            await rollup_rows.append(
                conn, of_outcomes(outcomes[batch : batch + 2])
            )  # a second row per minute
    doubled = outcomes + [o for batch in range(0, len(outcomes), 7) for o in outcomes[batch : batch + 2]]
    now = BASE + timedelta(days=20, hours=14)  # the last attempts are minutes old
    retention = timedelta(days=90)

    await rollup_rows.compact(services.store, now, retention=retention)
    after = await stored(services)
    assert all(summary for summary, _ in after)
    assert len({(r.span, r.start) for _, r in after}) == len(after)
    for level in (MINUTE, HOUR, DAY):
        assert same(level_total(after, level), direct(kept(doubled, level, now, retention)))
    assert all(r.start >= rollup_rows.kept_from(r.span, now, retention) for _, r in after)
    assert {r.span for _, r in after} == {MINUTE, HOUR, DAY}

    await rollup_rows.compact(services.store, now, retention=retention)
    assert sorted((r.span, r.start, r.attempts) for _, r in await stored(services)) == sorted(
        (r.span, r.start, r.attempts) for _, r in after
    )
    await rollup_rows.compact(services.store, now, retention=timedelta(days=10))
    days = [r for _, r in await stored(services) if r.span == DAY]
    assert days and all(r.start >= span_start(now - timedelta(days=10), DAY) for r in days)
    assert same(
        level_total([(True, r) for r in days], DAY), direct(kept(doubled, DAY, now, timedelta(days=10)))
    )


async def test_a_compaction_that_fails_midway_adds_nothing(
    api: Api, services: Services, rx: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batches' rows are added to the minutes and hours, then writing the days fails: the whole step
    is undone (the rows are still batches' rows, no summary was kept), and the next run counts them once."""
    tenant, auth = await api.tenant()
    endpoint = (await hook(api, auth, rx.url("/c")))["id"]
    now = datetime.now(UTC)
    row = Rollup(endpoint, tenant, MINUTE, span_start(now, MINUTE))
    row.add_attempt(started_at=now, duration_ms=7, status_code=200, failure=None, final="succeeded")
    async with services.store.write() as conn:
        await rollup_rows.append(conn, [row, row])
    add_to_level = rollup_rows._add_to_level

    async def failing_at_days(conn: Any, batch: Any, level: int, since: datetime) -> None:
        if level == DAY:
            raise RuntimeError("the process died")
        await add_to_level(conn, batch, level, since)

    monkeypatch.setattr(rollup_rows, "_add_to_level", failing_at_days)
    with pytest.raises(RuntimeError):
        await rollup_rows.compact(services.store, now, retention=timedelta(days=90))
    assert sorted((summary, r.attempts) for summary, r in await stored(services)) == [(False, 1), (False, 1)]
    monkeypatch.undo()
    await rollup_rows.compact(services.store, now, retention=timedelta(days=90))
    after = await stored(services)
    assert sorted((summary, r.span, r.attempts) for summary, r in after) == [
        (True, MINUTE, 2),
        (True, HOUR, 2),
        (True, DAY, 2),
    ]


async def test_compaction_while_batches_are_appended_counts_each_once(
    api: Api, services: Services, rx: Receiver
) -> None:
    """Batches keep committing (some late, for minutes already summed) while compaction runs again and
    again: every attempt ends up in each level exactly once."""
    tenant, auth = await api.tenant()
    ids = [(await hook(api, auth, rx.url(f"/{n}")))["id"] for n in range(2)]
    now = datetime.now(UTC)
    outcomes = [
        Outcome(
            delivery_id=0,
            endpoint_id=ids[n % 2],
            tenant_id=tenant,
            attempt=1,
            # Mostly the last minutes, in order; every fifth one from up to two hours before.
            started_at=now - timedelta(seconds=(7000 - 13 * n) if n % 5 else (n * 37) % 7200),
            duration_ms=n % 900,
            status_code=(200, 500, 404)[n % 3],
            response_body=None,
            error=None,
            request_headers={},
            status="succeeded",
            next_attempt_at=None,
        )
        for n in range(500)
    ]
    appended = asyncio.Event()

    async def record() -> None:
        for batch in range(0, len(outcomes), 5):
            async with services.store.write() as conn:
                await rollup_rows.append(conn, of_outcomes(outcomes[batch : batch + 5]))
            await asyncio.sleep(0)
        appended.set()

    async def compact_meanwhile() -> int:
        runs = 0
        while not appended.is_set():
            await rollup_rows.compact(services.store, now, retention=timedelta(days=90))
            runs += 1
            await asyncio.sleep(0)
        return runs

    _, runs = await asyncio.gather(record(), compact_meanwhile())
    assert runs > 1
    await rollup_rows.compact(services.store, now, retention=timedelta(days=90))
    after = await stored(services)
    assert all(summary for summary, _ in after)
    for level in (MINUTE, HOUR, DAY):
        assert same(level_total(after, level), direct(outcomes))
        summaries = [(r.endpoint_id, r.start) for _, r in after if r.span == level]
        assert len(set(summaries)) == len(summaries)


async def test_deleting_a_webhook_or_its_tenant_deletes_its_statistics(
    api: Api, services: Services, rx: Receiver
) -> None:
    tenant, auth = await api.tenant()
    a = (await hook(api, auth, rx.url("/a")))["id"]
    b = (await hook(api, auth, rx.url("/b")))["id"]
    now = datetime.now(UTC)

    def row(endpoint_id: int, owner: str) -> Rollup:
        r = Rollup(endpoint_id, owner, MINUTE, span_start(now, MINUTE))
        r.add_attempt(started_at=now, duration_ms=5, status_code=200, failure=None, final="succeeded")
        return r

    async def rows() -> list[Rollup]:
        return [r for _, r in await stored(services)]

    async with services.store.write() as conn:
        # The last one belongs to no webhook: what a batch committing beside a deletion leaves behind.
        await rollup_rows.append(
            conn, [row(a, tenant), row(a, tenant), row(b, tenant), row(a + b + 1000, tenant)]
        )
    assert (await stats(api, auth, "/v1/webhooks/stats", window="1h"))["attempts"]["total"] == 4

    assert (await api.http.delete(f"/v1/webhooks/{a}", headers=auth)).status_code == 200
    assert sorted(r.endpoint_id for r in await rows()) == [b, a + b + 1000]
    await rollup_rows.compact(services.store, now, retention=timedelta(days=90))
    assert [r.endpoint_id for r in await rows()] == [b, b, b]  # its summaries: a minute, an hour, a day
    assert (await stats(api, auth, "/v1/webhooks/stats", window="1h"))["attempts"]["total"] == 1

    assert (await api.http.delete(f"/v1/tenants/{tenant}", headers=api.admin)).status_code == 200
    assert await rows() == []
