"""The circuit breaker's state transitions (hookline.dispatch.breaker), without a clock or a database.

Examples pin the documented thresholds (N consecutive failures, a failure rate over a window with a
minimum of requests, one probe at a time, a doubling bounded cool-down); a hypothesis walk through any
sequence of answers, probes and clock steps checks the invariants the scheduler relies on.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline.dispatch.breaker import (
    Breaker,
    BreakerPolicy,
    blocked_until,
    cooldown,
    is_failure,
    policy_problem,
    policy_with,
    probe,
    record,
    reset,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# A policy that only opens on consecutive failures: the failure-rate rule cannot interfere.
BY_COUNT = BreakerPolicy(consecutive_failures=3, min_requests=100_000)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def next_probe(b: Breaker) -> datetime:
    assert b.next_probe_at is not None
    return b.next_probe_at


def opened(policy: BreakerPolicy = BY_COUNT, now: datetime = T0) -> Breaker:
    b = record(Breaker(), [True] * policy.consecutive_failures, now, policy)
    assert b.state == "open"
    return b


# --- what counts as a failure -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [None, 408, 429, 500, 502, 503, 504, 599])
def test_no_answer_5xx_408_and_429_are_failures(status: int | None) -> None:
    assert is_failure(status)


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304, 400, 401, 403, 404, 409, 410, 413, 422, 499])
def test_other_answers_show_a_receiver_that_is_up(status: int) -> None:
    assert not is_failure(status)


@given(st.integers(100, 599))
def test_is_failure_for_every_status_code(status: int) -> None:
    assert is_failure(status) == (status >= 500 or status in (408, 429))


# --- closed -> open -----------------------------------------------------------------------------------------


def test_opens_at_exactly_n_consecutive_failures() -> None:
    b = record(Breaker(), [True, True], T0, BY_COUNT)
    assert b.state == "closed"
    assert b.consecutive_failures == 2
    b = record(b, [True], at(1), BY_COUNT)
    assert b.state == "open"
    assert b.opened_at == at(1)
    assert b.next_probe_at == at(1 + BY_COUNT.cooldown)
    assert b.open_count == 1
    assert blocked_until(b) == b.next_probe_at


def test_a_success_restarts_the_count_of_consecutive_failures() -> None:
    b = record(Breaker(), [True, True, False, True, True], T0, BY_COUNT)
    assert b.state == "closed"
    assert b.consecutive_failures == 2
    assert (b.window_requests, b.window_failures) == (5, 4)
    assert blocked_until(b) is None


def test_a_non_failure_4xx_restarts_the_count_too() -> None:
    answers = [500, 503, 404, 500, 503]
    b = record(Breaker(), [is_failure(s) for s in answers], T0, BY_COUNT)
    assert b.state == "closed"


def test_opens_on_the_failure_rate_once_min_requests_are_in_the_window() -> None:
    policy = BreakerPolicy(consecutive_failures=10_000, failure_rate=0.5, min_requests=20, window=60)
    # failure, success, ... : 10 failures of 19 requests is over 50 %, but fewer than min_requests.
    b = record(Breaker(), [i % 2 == 0 for i in range(19)], T0, policy)
    assert b.state == "closed"
    assert b.failure_rate > 0.5
    # The 20th is a success: a success never opens the breaker, whatever the rate.
    b = record(b, [False], at(1), policy)
    assert b.state == "closed"
    assert (b.window_requests, b.window_failures) == (20, 10)
    # The 21st fails: 11 of 21.
    b = record(b, [True], at(2), policy)
    assert b.state == "open"


def test_the_rate_threshold_is_inclusive() -> None:
    policy = BreakerPolicy(consecutive_failures=10_000, failure_rate=0.25, min_requests=4)
    b = record(Breaker(), [False, False, False, True], T0, policy)  # 1 of 4 = 25 %
    assert b.state == "open"


def test_failures_of_an_elapsed_window_are_forgotten() -> None:
    policy = BreakerPolicy(consecutive_failures=10_000, failure_rate=0.5, min_requests=20, window=60)
    b = record(Breaker(), [True, False] * 9 + [True], T0, policy)  # 10 of 19
    assert b.state == "closed"
    b = record(b, [True], at(60), policy)  # a new window: 1 of 1, below min_requests
    assert b.state == "closed"
    assert (b.window_started_at, b.window_requests, b.window_failures) == (at(60), 1, 1)
    # Within the window it would have opened (11 of 20):
    assert (
        record(
            replace(b, window_started_at=T0, window_requests=19, window_failures=10), [True], at(59.9), policy
        ).state
        == "open"
    )


# --- open -> half_open -> closed / open ---------------------------------------------------------------------


def test_open_holds_until_next_probe_at_then_lets_exactly_one_probe_through() -> None:
    b = opened()
    before = next_probe(b) - MICROSECOND
    assert probe(b, before, before + timedelta(seconds=30)) == (0, b)

    now = b.next_probe_at
    assert now is not None
    deadline = now + timedelta(seconds=30)
    allowed, half = probe(b, now, deadline)
    assert allowed == 1
    assert half.state == "half_open"
    assert half.next_probe_at == deadline
    assert blocked_until(half) == deadline
    # The probe is out: nothing else goes until its deadline, not even from another worker.
    assert probe(half, now, deadline + timedelta(seconds=30)) == (0, half)
    assert probe(half, deadline - MICROSECOND, deadline + timedelta(seconds=30)) == (0, half)
    # Its worker died: once the deadline passes, another single probe may go.
    allowed, again = probe(half, deadline, deadline + timedelta(seconds=60))
    assert allowed == 1
    assert again.state == "half_open"
    assert again.next_probe_at == deadline + timedelta(seconds=60)


def test_a_closed_breaker_sets_no_limit() -> None:
    b = Breaker()
    assert probe(b, T0, at(30)) == (None, b)


def test_a_successful_probe_closes_and_forgets_everything() -> None:
    b = opened()
    _, half = probe(b, next_probe(b), at(1000))
    closed = record(half, [False], at(40), BY_COUNT)
    assert closed == Breaker()
    assert closed == reset(half)


def test_a_failed_probe_reopens_with_a_doubled_cool_down_up_to_the_maximum() -> None:
    policy = BreakerPolicy(consecutive_failures=1, cooldown=30, max_cooldown=600)
    b = opened(policy)
    waits = []
    for _ in range(8):
        now = b.next_probe_at
        assert now is not None
        assert b.opened_at is not None
        waits.append((now - b.opened_at).total_seconds())
        _, half = probe(b, now, now + timedelta(seconds=5))
        b = record(half, [True], now + timedelta(seconds=1), policy)
        assert b.state == "open"
        assert b.opened_at == now + timedelta(seconds=1)
    assert waits == [30, 60, 120, 240, 480, 600, 600, 600]
    assert b.open_count == 9


def test_answers_to_attempts_sent_before_it_opened_do_not_close_it() -> None:
    b = opened()
    later = record(b, [False, False, True], at(1), BY_COUNT)
    assert later.state == "open"
    assert (later.opened_at, later.next_probe_at, later.open_count) == (b.opened_at, b.next_probe_at, 1)


def test_after_a_success_the_cool_down_starts_again_from_the_first() -> None:
    policy = BreakerPolicy(consecutive_failures=1, cooldown=30, max_cooldown=600)
    b = opened(policy)
    _, half = probe(b, next_probe(b), at(1000))
    b = record(half, [True], at(31), policy)  # re-opened: 60 s
    assert b.next_probe_at == at(91)
    _, half = probe(b, next_probe(b), at(1000))
    b = record(half, [False], at(92), policy)
    assert b.state == "closed"
    b = record(b, [True], at(100), policy)
    assert b.next_probe_at == at(130)


@pytest.mark.parametrize(
    ("open_count", "expected"), [(0, 30.0), (1, 30.0), (2, 60.0), (5, 480.0), (6, 600.0), (10_000, 600.0)]
)
def test_cooldown(open_count: int, expected: float) -> None:
    assert cooldown(BreakerPolicy(cooldown=30, max_cooldown=600), open_count) == expected


def test_cooldown_is_bounded_even_when_the_first_one_is_longer_than_the_maximum() -> None:
    assert cooldown(BreakerPolicy(cooldown=900, max_cooldown=60), 1) == 60


# --- per-endpoint overrides ---------------------------------------------------------------------------------


def test_valid_overrides_are_applied() -> None:
    overrides = {
        "consecutive_failures": 5,
        "failure_rate": 0.25,
        "min_requests": 8.0,
        "window": 30,
        "cooldown": 1.5,
        "max_cooldown": 90,
    }
    assert policy_problem(overrides) is None
    policy = policy_with(BreakerPolicy(), overrides)
    assert policy == BreakerPolicy(5, 0.25, 8, 30.0, 1.5, 90.0)
    assert type(policy.min_requests) is int
    assert type(policy.window) is float


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ([], "must be an object"),
        ("x", "must be an object"),
        ({"threshold": 3}, "unknown setting 'threshold'"),
        ({"consecutive_failures": 0}, "'consecutive_failures' must be an integer from 1 to 10000"),
        ({"consecutive_failures": 2.5}, "'consecutive_failures' must be an integer from 1 to 10000"),
        ({"consecutive_failures": True}, "'consecutive_failures' must be an integer"),
        ({"consecutive_failures": "3"}, "'consecutive_failures' must be an integer"),
        ({"min_requests": 100_001}, "'min_requests' must be an integer from 1 to 100000"),
        ({"failure_rate": 0}, "'failure_rate' must be a number from 0.01 to 1"),
        ({"failure_rate": 1.01}, "'failure_rate' must be a number from 0.01 to 1"),
        ({"failure_rate": float("nan")}, "'failure_rate' must be a number"),
        ({"window": float("inf")}, "'window' must be a number from 1 to 86400"),
        ({"cooldown": None}, "'cooldown' must be a number"),
        ({"max_cooldown": 7 * 86_400 + 1}, "'max_cooldown' must be a number from 0.1 to 604800"),
        ({"consecutive_failures": float("nan")}, "'consecutive_failures' must be an integer"),
    ],
)
def test_unusable_overrides_are_explained(overrides: object, problem: str) -> None:
    found = policy_problem(overrides)
    assert found is not None
    assert found.startswith(problem)


@pytest.mark.parametrize(
    "overrides", [None, {}, "x", {"cooldown": 5, "window": -1}, {"cooldown": 5, "typo": 1}]
)
def test_unusable_or_empty_overrides_leave_the_default_whole(overrides: object) -> None:
    default = BreakerPolicy(cooldown=7)
    assert policy_with(default, overrides) is default


# Found by this test: float(10**400) raised OverflowError, and one such stored row failed every claim.
def test_a_huge_integer_is_a_problem_not_a_crash() -> None:
    problem = policy_problem({"consecutive_failures": 10**400})
    assert problem is not None and problem.startswith("'consecutive_failures' must be an integer")
    default = BreakerPolicy()
    assert policy_with(default, {"min_requests": 10**400}) is default


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "consecutive_failures",
                "failure_rate",
                "min_requests",
                "window",
                "cooldown",
                "max_cooldown",
                "other",
            ]
        ),
        st.one_of(
            st.integers(-(10**6), 10**6),
            st.floats(allow_nan=True),
            st.booleans(),
            st.none(),
            st.text(max_size=3),
        ),
    )
)
def test_overrides_are_either_explained_or_applied_whole(overrides: dict[str, object]) -> None:
    default = BreakerPolicy()
    policy = policy_with(default, overrides)
    if policy_problem(overrides) is not None or not overrides:
        assert policy is default
    else:
        for name, value in overrides.items():
            assert getattr(policy, name) == value
            assert type(getattr(policy, name)) is type(getattr(default, name))


# --- any walk through the states ----------------------------------------------------------------------------

policies = st.builds(
    BreakerPolicy,
    consecutive_failures=st.integers(1, 6),
    failure_rate=st.sampled_from([0.01, 0.25, 0.5, 1.0]),
    min_requests=st.integers(1, 10),
    window=st.sampled_from([1.0, 10.0, 60.0]),
    cooldown=st.sampled_from([0.1, 1.0, 30.0, 1000.0]),
    max_cooldown=st.sampled_from([0.1, 5.0, 600.0, 604_800.0]),
)
statuses = st.one_of(st.none(), st.sampled_from([200, 204, 301, 400, 404, 408, 410, 429, 500, 502, 503]))
steps = st.one_of(
    st.tuples(st.just("wait"), st.floats(0, 2000)),
    st.tuples(st.just("answers"), st.lists(statuses, max_size=8)),
    st.tuples(st.just("probe"), st.floats(0.001, 120)),
)


@settings(max_examples=300)
@given(policy=policies, walk=st.lists(steps, max_size=40))
def test_invariants_hold_in_every_reachable_state(
    policy: BreakerPolicy, walk: list[tuple[str, object]]
) -> None:
    b = Breaker()
    now = T0
    for kind, arg in walk:
        if kind == "wait":
            assert isinstance(arg, float)
            now += timedelta(seconds=arg)
        elif kind == "answers":
            assert isinstance(arg, list)
            before = b
            failures = [is_failure(s) for s in arg]
            b = record(b, failures, now, policy)
            # A batch is worth its answers one at a time: how a worker batches results changes nothing.
            one_by_one = before
            for failed in failures:
                one_by_one = record(one_by_one, [failed], now, policy)
            if failures:  # (closed by a probe within the batch: the window starts with the next one)
                assert replace(b, window_started_at=None) == replace(one_by_one, window_started_at=None)
                assert b.window_started_at in (None, one_by_one.window_started_at)
            if b.state == "open" and (before.state != "open" or b.opened_at != before.opened_at):
                assert b.opened_at == now  # it opened now, for the cool-down its opening count says
        else:
            assert isinstance(arg, float)
            deadline = now + timedelta(seconds=arg)
            allowed, after = probe(b, now, deadline)
            if b.state == "closed":
                assert (allowed, after) == (None, b)
            elif b.next_probe_at is not None and now < b.next_probe_at:
                assert (allowed, after) == (0, b)  # open and cooling down, or a probe is out
            else:
                assert allowed == 1
                assert (after.state, after.next_probe_at) == ("half_open", deadline)
                # exactly one: asking again before the deadline lets nothing through
                assert probe(after, now, deadline + timedelta(seconds=1))[0] == 0
            b = after
        check_invariants(b, now, policy)


def check_invariants(b: Breaker, now: datetime, policy: BreakerPolicy) -> None:
    assert 0 <= b.window_failures <= b.window_requests
    assert b.consecutive_failures >= 0
    if b.state == "closed":
        assert blocked_until(b) is None
        # successes and non-failure answers never open a closed breaker
        for answers in ([False], [False] * 50):
            assert record(b, answers, now, policy).state == "closed"
        assert (
            record(b, [is_failure(s) for s in (200, 301, 400, 404, 410, 422)], now, policy).state == "closed"
        )
    else:
        assert b.open_count >= 1
        assert blocked_until(b) == b.next_probe_at
    if b.state == "open":
        assert b.opened_at is not None and b.next_probe_at is not None
        wait = b.next_probe_at - b.opened_at
        # the cool-down never exceeds max_cooldown (timedelta keeps microseconds)
        assert wait <= timedelta(seconds=policy.max_cooldown) + MICROSECOND
        assert abs(wait.total_seconds() - cooldown(policy, b.open_count)) <= 1e-6
        if now < b.next_probe_at:
            assert probe(b, now, now + timedelta(seconds=1)) == (0, b)
        # answers to attempts sent before it opened change nothing but the counts
        late = record(b, [False, True, False], now, policy)
        assert (late.state, late.opened_at, late.next_probe_at, late.open_count) == (
            "open",
            b.opened_at,
            b.next_probe_at,
            b.open_count,
        )
    if b.state == "half_open":
        # a success in half_open always closes, and resets
        assert record(b, [False], now, policy) == Breaker()
        reopened = record(b, [True], now, policy)
        assert reopened.state == "open"
        assert reopened.open_count == b.open_count + 1
        assert next_probe(reopened) - now == timedelta(seconds=cooldown(policy, b.open_count + 1))
