"""The circuit breaker of one endpoint: pure state transitions, no clock and no I/O of its own.

    closed --(N consecutive failures, or a failure rate over the window)--> open
    open   --(cool-down over: one probe is claimed)--> half_open
    half_open --(the probe succeeds)--> closed    --(it fails)--> open, with a longer cool-down

While the breaker is not closed the endpoint's deliveries are held: the scheduler does not claim them,
so no attempt is spent. The cool-down doubles with each re-opening (bounded), and resets on a success.
What counts as a failure is a transport error or timeout, a 5xx, 408 or 429: the receiver is not coping.
Any other answer, a 4xx included, shows a receiver that is up, and counts as a success here.

The state is kept in the store (``endpoint_state``) so that every worker agrees; these functions take the
state as read and return the state to write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

BreakerStateName = Literal["closed", "open", "half_open"]
TRIPPING_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When to open and how long to stay open. Defaults follow the common practice of resilience
    libraries: open at 10 consecutive failures, or at 50 % failures of at least 20 requests in 60 s."""

    consecutive_failures: int = 10
    failure_rate: float = 0.5
    min_requests: int = 20
    window: float = 60.0  # seconds
    cooldown: float = 30.0  # seconds, the first time it opens
    max_cooldown: float = 600.0  # the longest cool-down, however often it re-opens


@dataclass(frozen=True, slots=True)
class Breaker:
    state: BreakerStateName = "closed"
    consecutive_failures: int = 0
    window_started_at: datetime | None = None
    window_requests: int = 0
    window_failures: int = 0
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None  # open: when a probe may go; half_open: when the probe is late
    open_count: int = 0  # openings since the last success: the cool-down grows with it

    @property
    def failure_rate(self) -> float:
        return self.window_failures / self.window_requests if self.window_requests else 0.0


POLICY_FIELDS = {
    # name: (type, lowest, highest)
    "consecutive_failures": (int, 1, 10_000),
    "failure_rate": (float, 0.01, 1.0),
    "min_requests": (int, 1, 100_000),
    "window": (float, 1.0, 86_400.0),
    "cooldown": (float, 0.1, 86_400.0),
    "max_cooldown": (float, 0.1, 7 * 86_400.0),
}


def policy_problem(overrides: object) -> str | None:
    """Why ``overrides`` (an endpoint's ``circuit_breaker`` setting) cannot be used, or None."""
    if not isinstance(overrides, dict):
        return "must be an object"
    for name, value in overrides.items():
        if name not in POLICY_FIELDS:
            return f"unknown setting {name!r} (known: {', '.join(POLICY_FIELDS)})"
        kind, low, high = POLICY_FIELDS[name]
        ok_type = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int and isinstance(value, float):  # 3.0 is an integer; never float() an int: 10**400
            ok_type = value.is_integer()
        if not ok_type or not low <= value <= high:
            what = "an integer" if kind is int else "a number"
            return f"{name!r} must be {what} from {low:g} to {high:g}"
    return None


def policy_with(default: BreakerPolicy, overrides: object) -> BreakerPolicy:
    """``default`` with an endpoint's overrides; overrides that cannot be used (a row written by hand or
    by an older version) are ignored as a whole."""
    if not overrides or policy_problem(overrides) is not None:
        return default
    assert isinstance(overrides, dict)
    values = {name: POLICY_FIELDS[name][0](value) for name, value in overrides.items()}
    return replace(default, **values)


def is_failure(status_code: int | None) -> bool:
    """Whether an attempt's answer counts against the endpoint (no answer at all does)."""
    return status_code is None or status_code >= 500 or status_code in TRIPPING_STATUSES


def cooldown(policy: BreakerPolicy, open_count: int) -> float:
    """The cool-down after the ``open_count``-th opening in a row (1 for the first)."""
    return float(min(policy.cooldown * 2.0 ** min(max(open_count - 1, 0), 64), policy.max_cooldown))


def blocked_until(breaker: Breaker) -> datetime | None:
    """Until when the breaker holds the endpoint's deliveries (None: closed, not holding)."""
    return None if breaker.state == "closed" else breaker.next_probe_at


def probe(breaker: Breaker, now: datetime, probe_deadline: datetime) -> tuple[int | None, Breaker]:
    """How many deliveries may be claimed now (None: no limit from the breaker), and the state to keep.

    Open and cooled down, or half open with its probe overdue (the worker sending it died): one probe,
    half open until ``probe_deadline`` (the probe's lease). Otherwise, not closed: none."""
    if breaker.state == "closed":
        return None, breaker
    if breaker.next_probe_at is not None and breaker.next_probe_at > now:
        return 0, breaker
    return 1, replace(breaker, state="half_open", next_probe_at=probe_deadline)


def record(breaker: Breaker, failures: Iterable[bool], now: datetime, policy: BreakerPolicy) -> Breaker:
    """The state after attempts that ended now, in the order they ended (True: a failure)."""
    if (
        breaker.window_started_at is None
        or (now - breaker.window_started_at).total_seconds() >= policy.window
    ):
        breaker = replace(breaker, window_started_at=now, window_requests=0, window_failures=0)
    # A closed breaker counts on plain integers until it trips: no copy per attempt.
    requests, failed_count, consecutive = (
        breaker.window_requests,
        breaker.window_failures,
        breaker.consecutive_failures,
    )
    pending = iter(failures)
    if breaker.state == "closed":
        for failed in pending:
            requests += 1
            failed_count += failed
            consecutive = consecutive + 1 if failed else 0
            if failed and _trips(policy, requests, failed_count, consecutive):
                breaker = _open(_counted(breaker, requests, failed_count, consecutive), now, policy)
                break
        else:
            return _counted(breaker, requests, failed_count, consecutive)
    for failed in pending:  # open or half open: each attempt may change it
        breaker = _one(breaker, failed, now, policy)
    return breaker


def _counted(b: Breaker, requests: int, failures: int, consecutive: int) -> Breaker:
    if (requests, failures, consecutive) == (b.window_requests, b.window_failures, b.consecutive_failures):
        return b
    return replace(b, window_requests=requests, window_failures=failures, consecutive_failures=consecutive)


def _one(b: Breaker, failed: bool, now: datetime, policy: BreakerPolicy) -> Breaker:
    b = replace(
        b,
        window_requests=b.window_requests + 1,
        window_failures=b.window_failures + failed,
        consecutive_failures=b.consecutive_failures + 1 if failed else 0,
    )
    if b.state == "half_open":
        return _open(b, now, policy) if failed else reset(b)
    if b.state == "open":  # an attempt sent before it opened: counted, changes nothing
        return b
    tripped = _trips(policy, b.window_requests, b.window_failures, b.consecutive_failures)
    return _open(b, now, policy) if failed and tripped else b


def _trips(policy: BreakerPolicy, requests: int, failures: int, consecutive: int) -> bool:
    """Whether a closed breaker with these counts opens (after a failure)."""
    return consecutive >= policy.consecutive_failures or (
        requests >= policy.min_requests and failures / requests >= policy.failure_rate
    )


def _open(b: Breaker, now: datetime, policy: BreakerPolicy) -> Breaker:
    count = b.open_count + 1
    wait = timedelta(seconds=cooldown(policy, count))
    return replace(b, state="open", opened_at=now, next_probe_at=now + wait, open_count=count)


def reset(b: Breaker | None = None) -> Breaker:
    """Closed, with no failures counted (a success after a probe, or an operator's reset)."""
    return Breaker()
