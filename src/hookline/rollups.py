"""Delivery statistics as rollups: what a stats query reads instead of the attempt log.

A ``Rollup`` sums the attempts of one endpoint over one span of time (a minute, an hour, a day): how many,
how they ended (2xx, 4xx, 5xx, timeout, connection error, blocked by the egress policy, other), which
status codes came back, how many deliveries finished (succeeded, failed for good), the latest success
and failure, and the attempts' latency as a sketch. Rollups merge: the rollup of two sets of attempts is
the merge of their rollups, exactly for the counts and the sketch alike. That is what lets the recorder
write one small row per endpoint and minute with each batch of answers, lets compaction add those rows
into summaries per minute, hour and day, and lets a query add up a 90-day window from ninety day
summaries per endpoint, whatever the number of attempts behind them.

The latency sketch is DDSketch's logarithmic mapping (the ``ddsketch`` package) with a relative accuracy
of 1 %: a quantile read from it is within 1 % of the true quantile of the recorded latencies (whole
milliseconds). It is kept sparse, as ``{bin: count}``: bin 0 holds zero durations, bin ``k + 1`` the
durations the mapping puts at key ``k``.

Pure: no I/O. ``hookline.store.rollups`` writes and reads the rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)

MINUTE, HOUR, DAY = 60, 3600, 86400
SPANS = (MINUTE, HOUR, DAY)
BUCKETS = {"1m": MINUTE, "5m": 5 * MINUTE, "1h": HOUR, "1d": DAY}

# How an attempt ended. A failure without an answer is classified by the sender (``AttemptResult.failure``).
Failure = Literal["timeout", "connection", "blocked", "invalid_request"]
OUTCOMES = ("2xx", "4xx", "5xx", "timeout", "connection_error", "blocked", "other")
_FAILURE_OUTCOME = {
    "timeout": "timeout",
    "connection": "connection_error",
    "blocked": "blocked",
    "invalid_request": "other",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Answered(Protocol):
    """What a rollup needs of a recorded outcome (``hookline.store.queue.Outcome``)."""

    @property
    def endpoint_id(self) -> int: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def status_code(self) -> int | None: ...
    @property
    def failure(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def sent(self) -> bool: ...


def outcome_of(status_code: int | None, failure: str | None) -> str:
    """The class of an attempt's ending: by its status code if an answer came, else by its failure."""
    if status_code is not None:
        if 200 <= status_code < 300:
            return "2xx"
        if 400 <= status_code < 500:
            return "4xx"
        if 500 <= status_code < 600:
            return "5xx"
        return "other"
    return _FAILURE_OUTCOME.get(failure or "", "other")


def latency_bin(duration_ms: int) -> int:
    return 0 if duration_ms <= 0 else _MAPPING.key(duration_ms) + 1


def bin_value(latency: int) -> float:
    """The representative duration of a bin (within ``RELATIVE_ACCURACY`` of every duration in it)."""
    return 0.0 if latency == 0 else float(_MAPPING.value(latency - 1))


def span_start(moment: datetime, span: int) -> datetime:
    """The start of the ``span``-second period holding ``moment`` (periods aligned on the Unix epoch, UTC:
    minutes, hours and days start where a clock says they do)."""
    seconds = math.floor((moment - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % span)


@dataclass
class Rollup:
    """The attempts of one endpoint in one span. Mutable while it is being built or merged."""

    endpoint_id: int
    tenant_id: str
    span: int
    start: datetime
    attempts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # OUTCOMES -> count (absent: 0)
    # Keyed by text, as the JSON columns hold them: rows merge without converting their keys.
    codes: dict[str, int] = field(default_factory=dict)  # status code -> count
    latency: dict[str, int] = field(default_factory=dict)  # sketch bin -> count
    duration_ms: int = 0  # the sum, for the mean
    succeeded: int = 0  # deliveries that finished with this attempt, delivered
    failed: int = 0  # deliveries that finished with this attempt, failed for good
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None

    def add_attempt(
        self,
        *,
        started_at: datetime,
        duration_ms: int,
        status_code: int | None,
        failure: str | None,
        final: str | None,  # "succeeded" or "failed" if the delivery ended with it, else None
    ) -> None:
        self.attempts += 1
        kind = outcome_of(status_code, failure)
        self.outcomes[kind] = self.outcomes.get(kind, 0) + 1
        if status_code is not None:
            code = str(status_code)
            self.codes[code] = self.codes.get(code, 0) + 1
        b = str(latency_bin(duration_ms))
        self.latency[b] = self.latency.get(b, 0) + 1
        self.duration_ms += max(duration_ms, 0)
        if final is not None:
            self.add_finished(final)
        if kind == "2xx":
            self.last_success_at = _later(self.last_success_at, started_at)
        else:
            self.last_failure_at = _later(self.last_failure_at, started_at)

    def add_finished(self, final: str) -> None:
        """A delivery that ended without an attempt (it could not be sent as configured)."""
        if final == "succeeded":
            self.succeeded += 1
        elif final == "failed":
            self.failed += 1

    def merge(self, other: Rollup) -> None:
        """Add ``other`` (any endpoint, span or start: the caller decides what it stands for)."""
        self.attempts += other.attempts
        _add(self.outcomes, other.outcomes)
        _add(self.codes, other.codes)
        _add(self.latency, other.latency)
        self.duration_ms += other.duration_ms
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.last_success_at = _later(self.last_success_at, other.last_success_at)
        self.last_failure_at = _later(self.last_failure_at, other.last_failure_at)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of the latencies, in ms, within ``RELATIVE_ACCURACY``; None if empty."""
        return quantiles(self.latency, (q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles at once (one pass over the sorted bins)."""
        return quantiles(self.latency, qs)


def quantiles(latency: Mapping[str, int], qs: Sequence[float]) -> list[float | None]:
    """DDSketch's rank rule over sparse bins: for each ``q``, the bin holding rank ``q * (n - 1)``."""
    total = sum(latency.values())
    if total == 0:
        return [None for _ in qs]
    bins = sorted(latency, key=int)
    found: list[float | None] = []
    for q in qs:
        rank = q * (total - 1)
        seen = 0
        value = bin_value(int(bins[-1]))
        for b in bins:
            seen += latency[b]
            if seen > rank:
                value = bin_value(int(b))
                break
        found.append(value)
    return found


def _add(into: dict[Any, int], more: Mapping[Any, int]) -> None:
    if not into:  # a bucket's first row, most often its only one: copied in C
        into.update(more)
        return
    for key, count in more.items():
        into[key] = into.get(key, 0) + count


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def of_outcomes(outcomes: Iterable[Answered]) -> list[Rollup]:
    """One row per endpoint and minute (of each attempt's start) for a batch of written outcomes. A
    delivery given up without a request counts as finished, not as an attempt."""
    rows: dict[tuple[int, datetime], Rollup] = {}
    for o in outcomes:
        start = span_start(o.started_at, MINUTE)
        row = rows.get((o.endpoint_id, start))
        if row is None:
            row = rows[(o.endpoint_id, start)] = Rollup(o.endpoint_id, o.tenant_id, MINUTE, start)
        final = o.status if o.status != "pending" else None
        if o.sent:
            row.add_attempt(
                started_at=o.started_at,
                duration_ms=o.duration_ms,
                status_code=o.status_code,
                failure=o.failure,
                final=final,
            )
        elif final is not None:
            row.add_finished(final)
    return list(rows.values())


def merged(
    rollups: Iterable[Rollup], *, endpoint_id: int, tenant_id: str, span: int, start: datetime
) -> Rollup:
    total = Rollup(endpoint_id, tenant_id, span, start)
    for r in rollups:
        total.merge(r)
    return total


def bucketed(rows: Iterable[Rollup], bucket: int) -> dict[datetime, Rollup]:
    """The rows merged per ``bucket``-second period of their start, whatever their endpoints."""
    buckets: dict[datetime, Rollup] = {}
    for row in rows:
        at = span_start(row.start, bucket)
        if (into := buckets.get(at)) is None:
            into = buckets[at] = Rollup(row.endpoint_id, row.tenant_id, bucket, at)
        into.merge(row)
    return buckets
