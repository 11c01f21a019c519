"""What a batch of attempts does to their endpoint: breaker, pause, success history, auto-disable.

Pure: it takes the endpoint's state as read (under its lock) and the attempts' answers in the order
they ended, and returns the state to write and, when the endpoint must be disabled, why.

* every answer goes to the breaker (``hookline.dispatch.breaker``);
* a 429 or 503 with ``Retry-After`` pauses the whole endpoint until then (bounded by the service's
  ``retry_after_max``), not only the delivery that got it;
* ``410 Gone`` disables the endpoint at once; so does failing for ``auto_disable_after`` without a
  single success in between. A disabled endpoint's deliveries are held, not failed;
* the failure-rate alert (``hookline.dispatch.alerting``) counts the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hookline.dispatch import breaker as breakers
from hookline.dispatch import limiter
from hookline.dispatch.alerting import AlertPolicy, Failing, watch_failure_rate
from hookline.dispatch.breaker import BreakerPolicy
from hookline.dispatch.retry import parse_retry_after
from hookline.dispatch.scheduler import blocked_until, breaker_of, with_breaker
from hookline.store.endpoint_state import HOLD_DISABLED, HOLD_UNVERIFIED, EndpointState

GONE = "the endpoint answered 410 Gone"


@dataclass(frozen=True, slots=True)
class Answer:
    """One attempt as the endpoint's health sees it."""

    status_code: int | None  # None: no answer (timeout, connection refused, TLS, ...)
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    state: EndpointState
    disable: str | None = None  # a reason, when these answers disable the endpoint (not if it was)
    failing: Failing | None = None  # set when these answers made the endpoint failing


def after_attempts(
    state: EndpointState,
    answers: Sequence[Answer],
    now: datetime,
    *,
    policy: BreakerPolicy,
    rate: limiter.RateLimit | None,
    auto_disable_after: float | None,
    retry_after_max: float,
    alert: AlertPolicy | None = None,
) -> Verdict:
    b = breakers.record(breaker_of(state), (breakers.is_failure(a.status_code) for a in answers), now, policy)
    # One pass over the answers on plain values, one new state at the end: a batch can hold hundreds.
    last_success_at, failing_since, paused_until = (
        state.last_success_at,
        state.failing_since,
        state.paused_until,
    )
    disable: str | None = None
    for a in answers:
        code = a.status_code
        if code is not None and 200 <= code < 300:
            last_success_at, failing_since = now, None
            continue
        if failing_since is None:
            failing_since = now
        if code == 410:
            disable = GONE
        if code in (429, 503) and (wait := parse_retry_after(a.retry_after, now)) is not None:
            until = now + timedelta(seconds=min(wait, retry_after_max))
            if paused_until is None or until > paused_until:
                paused_until = until
    if (
        disable is None
        and auto_disable_after is not None
        and failing_since is not None
        and (now - failing_since).total_seconds() >= auto_disable_after
    ):
        disable = (
            f"failing since {failing_since.isoformat(timespec='seconds')} without a success "
            f"(auto-disabled after {_duration(auto_disable_after)})"
        )
    if state.hold == HOLD_DISABLED:
        disable = None  # disabled already (answers of sends that were out): nothing new to report
    state = with_breaker(
        state,
        b,
        last_success_at=last_success_at,
        failing_since=failing_since,
        paused_until=paused_until,
        hold=HOLD_DISABLED if disable is not None else state.hold,
        # More may be due (a retry, the rest of a queue): the next claim looks.
        work_at=now if state.work_at is None or state.work_at > now else state.work_at,
    )
    state = state.changed(blocked_until=blocked_until(state, now, rate))
    failing = None
    if alert is not None and answers:
        state, failing = watch_failure_rate(state, [a.status_code for a in answers], now, alert)
    return Verdict(state, disable, failing)


def enabled_again(state: EndpointState, now: datetime) -> EndpointState:
    """An endpoint re-enabled by its owner: health forgotten, held deliveries released (unless it still
    waits for its verification)."""
    return with_breaker(state, breakers.reset()).changed(
        hold=HOLD_UNVERIFIED if state.verification in ("pending", "failed") else None,
        paused_until=None,
        failing_since=None,
        limiter_tat=None,
        blocked_until=None,
        work_at=now,
        alert_window_started_at=None,
        alert_window_requests=0,
        alert_window_failures=0,
        failing_alerted_at=None,
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
