"""Delivery statistics for a webhook, a tenant or the whole service, from the rollups.

A query picks a window (``since``/``until``, or a ``window`` length ending now; default the last 24 h,
at most ``HOOKLINE_STATS_RETENTION``) and a bucket size (1m, 5m, 1h, 1d), reads the rollup rows of the
window at the level that bucket size needs (``hookline.store.rollups``: a day's summary per day for 1d
buckets) and adds them up: per bucket for the series, and over the window.
Buckets are aligned on UTC (a 1h bucket starts on the hour), and the window is widened to whole buckets.
Nothing here reads the attempt log. Two figures are "now", not "over the window": how many deliveries
are pending and how many of those are held, and the circuit breakers' states.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from hookline.api.envelope import bad_request
from hookline.api.services import Services
from hookline.rollups import BUCKETS, OUTCOMES, RELATIVE_ACCURACY, Rollup, bucketed, merged, span_start
from hookline.store import rollups as store
from hookline.store.schema import deliveries, endpoint_state

DEFAULT_WINDOW = timedelta(hours=24)
MAX_BUCKETS = 1500  # buckets in one answer's series
_NAMES = {seconds: name for name, seconds in BUCKETS.items()}


def _human(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)} days"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} hours"
    return f"{int(seconds // 60)} minutes"


def window(
    services: Services,
    *,
    since: datetime | None,
    until: datetime | None,
    length: float | None,
    bucket: str | None,
) -> tuple[datetime, datetime, int]:
    """The window, widened to whole buckets, and the bucket size in seconds; a 400 naming the problem
    if it cannot be answered."""
    now = services.now()
    retention = timedelta(seconds=services.settings.stats_retention)
    if since is not None and length is not None:
        raise bad_request("give 'since' or 'window', not both")
    until = until or now
    if length is not None:
        if length <= 0:
            raise bad_request("'window' must be a positive duration")
        since = until - timedelta(seconds=length)
    since = since or until - DEFAULT_WINDOW
    if until <= since:
        raise bad_request("'until' must be after 'since'")
    if since < now - retention:
        raise bad_request(f"statistics are kept for {_human(retention.total_seconds())}: 'since' is earlier")
    finest = store.finest_bucket(since, now)
    if bucket is None:
        seconds = next(
            (
                s
                for s in sorted(BUCKETS.values())
                if s >= finest and (until - since).total_seconds() / s <= 400
            ),
            max(BUCKETS.values()),
        )
    else:
        seconds = BUCKETS[bucket]
        if seconds < finest:
            kept = store.MINUTES_KEPT if seconds < 3600 else store.HOURS_KEPT
            raise bad_request(
                f"{bucket} buckets reach back {_human(kept.total_seconds())}; "
                f"for this window use {' or '.join(n for s, n in sorted(_NAMES.items()) if s >= finest)}"
            )
    start = span_start(since, seconds)
    end = span_start(until, seconds)
    if end < until:
        end += timedelta(seconds=seconds)
    if (end - start).total_seconds() / seconds > MAX_BUCKETS:
        raise bad_request(
            f"the window holds more than {MAX_BUCKETS} buckets of {_NAMES[seconds]}: use larger ones"
        )
    return start, end, seconds


def _latency(r: Rollup) -> dict[str, float | None]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    p50, p95, p99 = r.quantiles((0.5, 0.95, 0.99))
    return {"p50": rounded(p50), "p95": rounded(p95), "p99": rounded(p99)}


def _attempts(r: Rollup) -> dict[str, int]:
    return {"total": r.attempts, **{kind: r.outcomes.get(kind, 0) for kind in OUTCOMES}}


def _rate(r: Rollup) -> float | None:
    return None if r.attempts == 0 else round(r.outcomes.get("2xx", 0) / r.attempts, 4)


async def _now_counts(
    services: Services, tenant_id: str | None, endpoint_id: int | None
) -> tuple[dict[str, int], dict[str, int]]:
    """(pending and held deliveries now, circuit breakers by state) for the scope. Held as
    ``hookline.api.endpoint_health.held_reason`` says: a hold, a breaker not closed, or a pause."""
    now = services.now()
    d, s = deliveries.c, endpoint_state.c
    held = sa.or_(s.hold.is_not(None), s.breaker_state != "closed", s.paused_until > now)
    counts = (
        sa.select(sa.func.count(), sa.func.count().filter(held))
        .select_from(deliveries.join(endpoint_state, s.endpoint_id == d.endpoint_id))
        .where(d.status == "pending")
    )
    breakers = sa.select(s.breaker_state, sa.func.count()).group_by(s.breaker_state)
    if endpoint_id is not None:
        counts = counts.where(d.endpoint_id == endpoint_id)
        breakers = breakers.where(s.endpoint_id == endpoint_id)
    if tenant_id is not None:
        counts = counts.where(d.tenant_id == tenant_id)
        breakers = breakers.where(s.tenant_id == tenant_id)
    async with services.store.read() as conn:
        pending, on_hold = (await conn.execute(counts)).one()
        states = {"closed": 0, "open": 0, "half_open": 0}
        for state, n in await conn.execute(breakers):
            states[state] = states.get(state, 0) + n
    return {"pending": pending, "held": on_hold}, states


async def report(
    services: Services,
    *,
    tenant_id: str | None,
    endpoint_id: int | None,
    start: datetime,
    end: datetime,
    bucket: int,
) -> dict[str, Any]:
    async with services.store.read() as conn:
        rows = await store.read(
            conn,
            since=start,
            until=end,
            bucket=bucket,
            tenant_id=tenant_id,
            endpoint_ids=None if endpoint_id is None else [endpoint_id],
        )
    buckets = bucketed(rows, bucket)
    total = merged(
        buckets.values(), endpoint_id=endpoint_id or 0, tenant_id=tenant_id or "", span=bucket, start=start
    )
    now_counts, breakers = await _now_counts(services, tenant_id, endpoint_id)
    series = []
    step = timedelta(seconds=bucket)
    at = start
    empty = Rollup(0, "", bucket, start)
    while at < end:
        b = buckets.get(at, empty)
        series.append(
            {
                "start": at,
                "attempts": _attempts(b),
                "success_rate": _rate(b),
                "deliveries": {"succeeded": b.succeeded, "failed": b.failed},
                "latency_ms": _latency(b),
            }
        )
        at += step
    mean = None if total.attempts == 0 else round(total.duration_ms / total.attempts, 1)
    return {
        "webhook_id": endpoint_id,
        "tenant_id": tenant_id,
        "since": start,
        "until": end,
        "bucket": _NAMES[bucket],
        "attempts": _attempts(total),
        "success_rate": _rate(total),
        "deliveries": {"succeeded": total.succeeded, "failed": total.failed, **now_counts},
        "latency_ms": {**_latency(total), "mean": mean, "relative_accuracy": RELATIVE_ACCURACY},
        "status_codes": dict(sorted(total.codes.items(), key=lambda item: int(item[0]))),
        "last_success_at": total.last_success_at,
        "last_failure_at": total.last_failure_at,
        "circuit_breakers": breakers,
        "series": series,
    }
