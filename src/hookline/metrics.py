"""Prometheus metrics: what each process counts, and the text ``/metrics`` answers.

Counters and histograms are kept by the process that sees the thing happen (the API counts events
accepted and requests, the worker counts attempts). Processes started together (``hookline api
--workers N``) share a directory of metric files (prometheus-client's multiprocess mode, switched on by
``PROMETHEUS_MULTIPROC_DIR`` before this module is imported), so any one of them answers for all. The
state of the whole service (queue depth, held deliveries, breakers) is read from the store when asked
(``hookline.store.overview``), whichever process answers.

Labels are bounded: no event, delivery or endpoint ids; event types come from the catalog the operator
controls; per-endpoint series only with ``HOOKLINE_METRICS_ENDPOINT_LABELS``.
"""

from __future__ import annotations

import bisect
import functools
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hookline import __version__
from hookline.store.notices import OPERATOR_TENANT

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. An attempt is bounded by the delivery timeout (15 s by default, at most the lease's half);
# the end-to-end latency includes retries, so it reaches hours.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    *(300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0),
)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# --- the API ----------------------------------------------------------------------------------------

events_accepted = Counter(
    "hookline_events_accepted",
    "Events accepted for delivery (a replay of an idempotent request is not counted again).",
    ["event_type", "tenant_class"],
)
ingest_batch_size = Histogram(
    "hookline_ingest_batch_size",
    "Events per accepted ingest request (1 for POST /v1/events).",
    buckets=BATCH_BUCKETS,
)
api_requests = Counter(
    "hookline_api_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
api_request_duration = Histogram(
    "hookline_api_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=REQUEST_BUCKETS,
)

# --- the worker -------------------------------------------------------------------------------------

attempts = Counter(
    "hookline_attempts",
    "Delivery attempts made, by outcome: 2xx, 3xx, 4xx, 5xx (the receiver's answer), timeout, "
    "connection, blocked (refused by the egress policy), or not_sent (the endpoint's options were "
    "unusable).",
    ["status_class"],
)
attempt_duration = Histogram(
    "hookline_attempt_duration_seconds",
    "Duration of delivery attempts, from the request to the answer (or the failure).",
    ["status_class"],
    buckets=ATTEMPT_BUCKETS,
)
deliveries_finished = Counter(
    "hookline_deliveries_finished",
    "Deliveries that reached a final state: succeeded, or failed (retries exhausted, or an answer "
    "that is never retried).",
    ["outcome"],
)
delivery_latency = Histogram(
    "hookline_delivery_latency_seconds",
    "End to end: from the event's acceptance to its delivery's successful attempt (retries included).",
    buckets=LATENCY_BUCKETS,
)
attempts_in_flight = Gauge(
    "hookline_attempts_in_flight",
    "Delivery attempts waiting for the receiver's answer right now.",
    multiprocess_mode="livesum",
)
rate_limit_waits = Counter(
    "hookline_rate_limit_waits",
    "Times a worker left an endpoint's due deliveries waiting because of its rate limit.",
)
breaker_transitions = Counter(
    "hookline_breaker_transitions",
    "Endpoint circuit breakers changing state, by the state entered: open, half_open (a probe goes), "
    "closed (a probe succeeded, or an owner reset it).",
    ["to"],
)


@functools.cache
def worker_tick() -> Gauge:
    """``hookline_worker_last_tick_timestamp_seconds``, made by the first worker of the process: a
    process without a worker has no such series (rather than a 0 that looks like a stalled loop)."""
    return Gauge(
        "hookline_worker_last_tick_timestamp_seconds",
        "Unix time of the worker loop's last turn (it turns at least every HOOKLINE_POLL_INTERVAL).",
        multiprocess_mode="max",
    )


# --- every process ----------------------------------------------------------------------------------

db_pool_connections = Gauge(
    "hookline_db_pool_connections",
    "Database connections of the processes' pools: in_use, idle.",
    ["state"],
    multiprocess_mode="livesum",
)
build_info = Gauge(
    "hookline_build_info", "hookline's version (always 1).", ["version"], multiprocess_mode="max"
)
build_info.labels(__version__).set(1)

# Per endpoint: only with HOOKLINE_METRICS_ENDPOINT_LABELS (one series per endpoint and outcome).
endpoint_attempts = Counter(
    "hookline_endpoint_attempts",
    "Delivery attempts per endpoint, by outcome (only with HOOKLINE_METRICS_ENDPOINT_LABELS).",
    ["tenant_id", "endpoint_id", "status_class"],
)


def status_class(status_code: int | None, failure: str | None) -> str:
    """The ``status_class`` label of an attempt."""
    if status_code is not None:
        return f"{min(max(status_code // 100, 1), 5)}xx"
    if failure in ("timeout", "blocked"):
        return failure
    return "connection"


def tenant_class(tenant_id: str) -> str:
    """The ``tenant_class`` label: the operator's own tenant (operational events) or a tenant's."""
    return "operator" if tenant_id == OPERATOR_TENANT else "tenant"


def set_pool(in_use: int, idle: int) -> None:
    db_pool_connections.labels("in_use").set(in_use)
    db_pool_connections.labels("idle").set(idle)


class _Observed:
    """Observations of one histogram series, held until published: bucket counts and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0

    def add(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def publish(self, series: Any) -> None:
        """Into a prometheus_client histogram child: what ``observe`` does, one call per bucket rather
        than per observation (its ``_buckets`` are per bucket, cumulated when collected)."""
        for i, n in enumerate(self.counts):
            if n:
                series._buckets[i].inc(n)
                self.counts[i] = 0
        series._sum.inc(self.total)
        self.total = 0.0


class AttemptTally:
    """The worker's per-attempt metrics, counted in plain Python as attempts finish and published once
    per batch of written results. Published one by one, a label lookup and a locked observe per figure
    cost ~40 µs an attempt on the benchmark machine, about a tenth of a delivery's CPU."""

    def __init__(self) -> None:
        self._attempts: dict[str, int] = {}
        self._durations: dict[str, _Observed] = {}
        self._finished: dict[str, int] = {}
        self._latency = _Observed(LATENCY_BUCKETS)
        self._latencies = 0

    def attempt(self, kind: str, seconds: float | None) -> None:
        self._attempts[kind] = self._attempts.get(kind, 0) + 1
        if seconds is not None:
            observed = self._durations.get(kind)
            if observed is None:
                observed = self._durations[kind] = _Observed(ATTEMPT_BUCKETS)
            observed.add(seconds)

    def finished(self, outcome: str, latency: float | None) -> None:
        self._finished[outcome] = self._finished.get(outcome, 0) + 1
        if latency is not None:
            self._latency.add(latency)
            self._latencies += 1

    def publish(self) -> None:
        for kind, n in self._attempts.items():
            if n:
                attempts.labels(kind).inc(n)
                self._attempts[kind] = 0
        for kind, observed in self._durations.items():
            observed.publish(attempt_duration.labels(kind))
        for outcome, n in self._finished.items():
            if n:
                deliveries_finished.labels(outcome).inc(n)
                self._finished[outcome] = 0
        if self._latencies:
            self._latency.publish(delivery_latency)
            self._latencies = 0


# --- several processes ------------------------------------------------------------------------------


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def share_between_processes() -> Path | None:
    """Before starting the processes of one command: give them a fresh directory to share their metrics
    in (unless the operator named one in PROMETHEUS_MULTIPROC_DIR). Returns the directory made here
    (to remove when they have stopped), or None."""
    if multiprocess_enabled():
        return None
    made = Path(tempfile.mkdtemp(prefix="hookline-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)
    return made


def process_stopped(pid: int) -> None:
    """A process of the group ended: its live gauges (in flight, pool) stop counting."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_shared(directory: Path | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == str(directory):
            del os.environ[MULTIPROC_ENV]


# --- the answer -------------------------------------------------------------------------------------


class _Families(Collector):
    """Metric families made for one answer (the store's gauges)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render(extra: Iterable[GaugeMetricFamily] = ()) -> bytes:
    """The Prometheus text for this process (or its group) plus ``extra`` families."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    own = CollectorRegistry()
    own.register(_Families(extra))
    return text + generate_latest(own)
