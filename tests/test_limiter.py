"""The endpoint rate limiter (hookline.dispatch.limiter, GCRA): pure arithmetic on one timestamp.

What a user relies on: over any window of length T no more than ``rate * T + burst`` requests go, and a
caller that always has work and comes back at ``next_allowed`` gets the whole rate. The windows are
checked exactly (integer microseconds, fractions), over any sequence of clock steps and requests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hookline.dispatch.limiter import RateLimit, allowance, charge, next_allowed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.1, 1), (1, 1), (9.99, 1), (10, 1), (19.9, 1), (20, 2), (250, 25), (5000, 500)]
)
def test_burst_is_a_tenth_of_a_seconds_worth_and_at_least_one(rate: float, burst: int) -> None:
    assert RateLimit(rate).burst == burst


@pytest.mark.parametrize(("rate", "burst"), [(0.1, 1), (1, 1), (1.99, 1), (2, 2), (250, 250)])
def test_the_api_request_limits_burst_is_a_seconds_worth(rate: float, burst: int) -> None:
    assert RateLimit(rate, burst_seconds=1.0).burst == burst


def test_a_fresh_endpoint_may_send_a_burst_then_one_per_interval() -> None:
    limit = RateLimit(100)  # burst 10, one per 10 ms
    assert allowance(None, T0, limit) == 10
    assert next_allowed(None, T0, limit) is None
    tat = charge(None, T0, limit, 10)
    assert tat == T0 + timedelta(milliseconds=100)
    assert allowance(tat, T0, limit) == 0
    assert next_allowed(tat, T0, limit) == T0 + timedelta(milliseconds=10)
    assert allowance(tat, T0 + timedelta(microseconds=9_999), limit) == 0
    assert allowance(tat, T0 + timedelta(milliseconds=10), limit) == 1
    assert allowance(tat, T0 + timedelta(milliseconds=25), limit) == 2


def test_a_quiet_spell_gives_back_one_burst_not_more() -> None:
    limit = RateLimit(100)
    tat = charge(None, T0, limit, 3)
    assert allowance(tat, T0 + timedelta(hours=1), limit) == 10
    assert charge(tat, T0 + timedelta(hours=1), limit, 1) == T0 + timedelta(hours=1, milliseconds=10)


def test_sending_nothing_changes_nothing() -> None:
    limit = RateLimit(5)
    assert charge(None, T0, limit, 0) is None
    assert charge(T0, T0 + timedelta(seconds=9), limit, 0) == T0


def test_a_slow_rate_allows_one_request_per_interval() -> None:
    limit = RateLimit(0.1)  # one per 10 s
    tat = charge(None, T0, limit, 1)
    assert allowance(tat, T0 + timedelta(seconds=9.999999), limit) == 0
    assert next_allowed(tat, T0, limit) == T0 + timedelta(seconds=10)
    assert allowance(tat, T0 + timedelta(seconds=10), limit) == 1


def test_next_allowed_is_none_whenever_something_may_go() -> None:
    limit = RateLimit(50)
    tat = charge(None, T0, limit, 5)
    assert allowance(tat, T0, limit) == 0
    moment = next_allowed(tat, T0, limit)
    assert moment is not None
    assert next_allowed(tat, moment, limit) is None
    assert allowance(tat, moment, limit) == 1


def window_excess(times: list[int], rate: Fraction | float) -> Fraction | float:
    """The most by which the requests sent at ``times`` (microseconds, sorted) exceed ``rate * T`` in
    any window of length T: max over i <= j of (j - i + 1) - rate * (t_j - t_i)."""
    worst: Fraction | float = 0
    lowest: Fraction | float | None = None
    for j, t in enumerate(times):
        start = j - rate * t / 1_000_000
        lowest = start if lowest is None else min(lowest, start)
        worst = max(worst, j + 1 - rate * t / 1_000_000 - lowest)
    return worst


def send(limit: RateLimit, events: list[tuple[float, int]]) -> list[int]:
    """Requests sent for ``events`` (a clock step, in intervals, then how many are waiting): the times
    of those that went, in microseconds from T0."""
    interval_us = 1_000_000 / limit.rate
    now, tat, sent = T0, None, []
    for step, waiting in events:
        now += timedelta(microseconds=round(step * interval_us))
        go = min(waiting, allowance(tat, now, limit))
        assert go >= 0
        tat = charge(tat, now, limit, go)
        sent += [(now - T0) // timedelta(microseconds=1)] * go
    return sent


EVENTS = st.lists(st.tuples(st.floats(0, 3), st.integers(0, 40)), max_size=200)


@settings(max_examples=200)
@given(interval_us=st.integers(200, 10_000_000), events=EVENTS)
def test_no_window_ever_holds_more_than_rate_times_its_length_plus_burst(
    interval_us: int, events: list[tuple[float, int]]
) -> None:
    """Rates from 0.1 to 5000 per second whose interval is a whole number of microseconds."""
    rate = Fraction(1_000_000, interval_us)
    limit = RateLimit(float(rate))
    assert window_excess(send(limit, events), rate) <= limit.burst


# Found by this test: an interval kept as a timedelta (rounded to the microsecond) enforced 4,990/s
# as 5,000/s; the limiter now counts in float seconds.
@settings(max_examples=200)
@example(rate=4990.0, events=[(0.0, 1000)] + [(1.0, 1)] * 600)
@given(rate=st.floats(0.1, 5000, exclude_min=True), events=EVENTS)
def test_no_window_ever_holds_more_than_rate_times_its_length_plus_burst_at_any_rate(
    rate: float, events: list[tuple[float, int]]
) -> None:
    limit = RateLimit(rate)
    assert window_excess(send(limit, events), Fraction(rate)) <= limit.burst


@settings(max_examples=200)
@given(rate=st.floats(0.1, 5000, exclude_min=True), intervals=st.integers(1, 3000))
def test_a_caller_with_work_that_comes_back_at_next_allowed_gets_the_whole_rate(
    rate: float, intervals: int
) -> None:
    """Always work waiting, and the caller comes back exactly at ``next_allowed``: over a window of
    ``intervals / rate`` seconds, at least ``rate * T - 1`` requests go."""
    limit = RateLimit(rate)
    window_end = T0 + timedelta(seconds=intervals / rate)
    now, tat, sent = T0, None, 0
    while now <= window_end:
        go = allowance(tat, now, limit)
        assert go >= 1  # next_allowed never sends the caller back too early
        tat = charge(tat, now, limit, go)
        sent += go
        moment = next_allowed(tat, now, limit)
        assert moment is not None and moment > now  # the allowance was used up
        now = moment
    assert sent >= rate * (window_end - T0).total_seconds() - 1
    assert sent >= intervals - 1


@given(
    rate=st.floats(0.1, 100_000, exclude_min=True),
    ahead_us=st.integers(-(10**9), 10**9),
)
def test_allowance_is_between_zero_and_burst_and_next_allowed_is_when_it_turns_positive(
    rate: float, ahead_us: int
) -> None:
    limit = RateLimit(rate)
    tat = T0 + timedelta(microseconds=ahead_us)
    got = allowance(tat, T0, limit)
    assert 0 <= got <= limit.burst
    assert allowance(tat, T0 + timedelta(days=1), limit) == limit.burst
    moment = next_allowed(tat, T0, limit)
    if got > 0:
        assert moment is None
    else:
        assert moment is not None and moment > T0
        assert allowance(tat, moment, limit) == 1
        assert allowance(tat, moment - timedelta(microseconds=1), limit) == 0
        exact = (tat - T0).total_seconds() - (limit.burst - 1) / limit.rate  # seconds after T0
        assert -1e-9 <= (moment - T0).total_seconds() - exact < 1e-6  # the microsecond at or just after it
