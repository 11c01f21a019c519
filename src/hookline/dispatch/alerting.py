"""The failure-rate alert of one endpoint (``endpoint.failing``): pure, no clock and no I/O of its own.

Answers are counted in windows of ``window`` seconds, each starting with the first answer after the
last one ended. When at least ``min_attempts`` answers of the current window hold ``failure_rate`` or
more failures (any answer but a 2xx, and no answer at all: what fails a delivery, unlike the breaker,
which counts a 4xx as a receiver that is up), the endpoint is reported failing, once: it is reported
again only after a whole window under the rate has ended the episode. The counts live in the endpoint's
state (``endpoint_state``), so every worker adds to the same window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hookline.store.endpoint_state import EndpointState


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When an endpoint is reported failing (``endpoint.failing``)."""

    failure_rate: float = 0.25
    window: float = 300.0  # seconds
    min_attempts: int = 10


@dataclass(frozen=True, slots=True)
class Failing:
    """The window that crossed the alert's threshold, as it stood when it did."""

    attempts: int
    failures: int
    window_started_at: datetime

    @property
    def failure_rate(self) -> float:
        return self.failures / self.attempts


def is_failure(status_code: int | None) -> bool:
    return status_code is None or not 200 <= status_code < 300


def watch_failure_rate(
    state: EndpointState, status_codes: Sequence[int | None], now: datetime, policy: AlertPolicy
) -> tuple[EndpointState, Failing | None]:
    """Count the answers (their status codes; None: no answer) in the alert's window: the new state,
    and what to report if they made the endpoint failing."""
    started, requests, failures, alerted = (
        state.alert_window_started_at,
        state.alert_window_requests,
        state.alert_window_failures,
        state.failing_alerted_at,
    )
    if started is None or (now - started).total_seconds() >= policy.window:
        if alerted is not None and failures < policy.failure_rate * requests:
            alerted = None  # a whole window under the rate: the episode is over
        started, requests, failures = now, 0, 0
    requests += len(status_codes)
    failures += sum(map(is_failure, status_codes))
    failing = None
    if alerted is None and requests >= policy.min_attempts and failures >= policy.failure_rate * requests:
        alerted = now
        failing = Failing(requests, failures, started)
    state = state.changed(
        alert_window_started_at=started,
        alert_window_requests=requests,
        alert_window_failures=failures,
        failing_alerted_at=alerted,
    )
    return state, failing
