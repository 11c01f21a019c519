"""What a batch of attempts does to its endpoint (hookline.dispatch.health): the breaker, a receiver's
Retry-After pausing the whole endpoint, 410 Gone and auto-disable, and re-enabling.

Examples pin each rule; hypothesis checks for any batch of answers that a 410 always disables, that the
last answer being a 2xx clears the failure history, and that auto-disable comes only after the configured
period without a single success.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hookline.dispatch import limiter
from hookline.dispatch.breaker import Breaker, BreakerPolicy
from hookline.dispatch.health import GONE, Answer, after_attempts, enabled_again
from hookline.dispatch.scheduler import breaker_of
from hookline.store.endpoint_state import HOLD_DISABLED, HOLD_UNVERIFIED, EndpointState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86_400.0
POLICY = BreakerPolicy(consecutive_failures=3, min_requests=1000, cooldown=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def after(
    state: EndpointState,
    *answers: Answer | int | None,
    now: datetime = T0,
    auto_disable_after: float | None = 5 * DAY,
    retry_after_max: float = 3600.0,
    rate: limiter.RateLimit | None = None,
) -> tuple[EndpointState, str | None]:
    batch = [a if isinstance(a, Answer) else Answer(a) for a in answers]
    verdict = after_attempts(
        state,
        batch,
        now,
        policy=POLICY,
        rate=rate,
        auto_disable_after=auto_disable_after,
        retry_after_max=retry_after_max,
    )
    return verdict.state, verdict.disable


FRESH = EndpointState(1, "t1")


# --- success history and auto-disable -----------------------------------------------------------------------


def test_a_success_is_remembered_and_clears_the_failure_history() -> None:
    state, disable = after(FRESH.changed(failing_since=at(-DAY)), 200)
    assert (state.last_success_at, state.failing_since, disable) == (T0, None, None)


def test_the_first_failure_starts_the_failing_period_and_later_ones_keep_it() -> None:
    state, _ = after(FRESH, 500, now=at(10))
    assert state.failing_since == at(10)
    state, _ = after(state, None, 404, now=at(20))
    assert state.failing_since == at(10)
    assert state.last_success_at is None


def test_a_failure_after_a_success_in_the_same_batch_starts_a_new_failing_period() -> None:
    state, _ = after(FRESH.changed(failing_since=at(-DAY)), 503, 204, 500)
    assert (state.last_success_at, state.failing_since) == (T0, T0)


def test_auto_disable_comes_after_the_period_without_a_success_not_before() -> None:
    failing = FRESH.changed(failing_since=at(-5 * DAY + 1))
    state, disable = after(failing, 500)
    assert disable is None
    assert state.hold is None
    state, disable = after(failing, 500, now=at(1))
    assert disable == ("failing since 2025-12-27T00:00:01+00:00 without a success (auto-disabled after 5d)")
    assert state.hold == HOLD_DISABLED


def test_a_success_in_the_batch_saves_an_endpoint_failing_for_too_long() -> None:
    state, disable = after(FRESH.changed(failing_since=at(-30 * DAY)), 500, 200, 500)
    assert disable is None
    assert state.hold is None


def test_no_auto_disable_when_it_is_turned_off() -> None:
    _, disable = after(FRESH.changed(failing_since=at(-365 * DAY)), 500, auto_disable_after=None)
    assert disable is None


@pytest.mark.parametrize(("seconds", "said"), [(90.0, "90s"), (120.0, "2m"), (7200.0, "2h"), (1.5, "1.5s")])
def test_the_reason_says_the_period_in_a_readable_unit(seconds: float, said: str) -> None:
    _, disable = after(FRESH.changed(failing_since=at(-DAY)), 500, auto_disable_after=seconds)
    assert disable is not None and disable.endswith(f"(auto-disabled after {said})")


def test_answers_to_an_endpoint_disabled_already_report_no_new_disable() -> None:
    """Sends that were out when it was disabled: it stays disabled, and nothing says it again (the
    recorder writes no second reason, no second ``endpoint.disabled`` is raised)."""
    disabled = FRESH.changed(hold=HOLD_DISABLED, failing_since=at(-30 * DAY))
    for answers in ((410,), (500,)):
        state, disable = after(disabled, *answers)
        assert disable is None
        assert state.hold == HOLD_DISABLED


@pytest.mark.parametrize("before", [None, 200, 500])
def test_410_gone_disables_at_once(before: int | None) -> None:
    answers = (410,) if before is None else (before, 410)
    state, disable = after(FRESH, *answers)
    assert disable == GONE
    assert state.hold == HOLD_DISABLED


# --- Retry-After --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pauses_the_whole_endpoint(status: int) -> None:
    state, _ = after(FRESH, Answer(status, "120"))
    assert state.paused_until == at(120)
    assert state.blocked_until == at(120)


def test_retry_after_as_an_http_date() -> None:
    state, _ = after(FRESH, Answer(503, format_datetime(at(300), usegmt=True)))
    assert state.paused_until == at(300)


def test_retry_after_is_bounded_by_retry_after_max() -> None:
    state, _ = after(FRESH, Answer(429, "999999"), retry_after_max=600)
    assert state.paused_until == at(600)


@pytest.mark.parametrize(
    "answer", [Answer(500, "120"), Answer(429, None), Answer(429, "soon"), Answer(200, "60")]
)
def test_no_pause_without_a_usable_retry_after_on_429_or_503(answer: Answer) -> None:
    state, _ = after(FRESH, answer)
    assert state.paused_until is None


def test_a_pause_is_only_ever_extended() -> None:
    paused = FRESH.changed(paused_until=at(500))
    assert after(paused, Answer(429, "60"))[0].paused_until == at(500)
    assert after(paused, Answer(429, "60"), Answer(503, "900"), Answer(429, "10"))[0].paused_until == at(900)


# --- breaker, work_at, blocked_until ------------------------------------------------------------------------


def test_failures_open_the_breaker_and_block_the_endpoint_until_the_probe() -> None:
    state, disable = after(FRESH, 500, None, 429)
    assert disable is None
    assert state.breaker_state == "open"
    assert state.next_probe_at == at(30)
    assert state.blocked_until == at(30)


def test_a_successful_probe_closes_the_breaker() -> None:
    probing = FRESH.changed(
        breaker_state="half_open", next_probe_at=at(10), open_count=3, consecutive_failures=9
    )
    state, _ = after(probing, 200)
    assert breaker_of(state) == Breaker()
    assert state.blocked_until is None


def test_the_rate_limit_is_part_of_blocked_until() -> None:
    state, _ = after(FRESH.changed(limiter_tat=at(2)), 200, rate=limiter.RateLimit(1))
    assert state.blocked_until == at(2)


@pytest.mark.parametrize(("work_at", "expected"), [(None, T0), (at(60), T0), (at(-60), at(-60))])
def test_the_next_claim_looks_at_the_endpoint(work_at: datetime | None, expected: datetime) -> None:
    assert after(FRESH.changed(work_at=work_at), 500)[0].work_at == expected


# --- enabled again ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verification", "hold"),
    [("not_required", None), ("verified", None), ("pending", HOLD_UNVERIFIED), ("failed", HOLD_UNVERIFIED)],
)
def test_enabled_again_forgets_the_endpoints_health(verification: str, hold: str | None) -> None:
    sick = EndpointState(
        1,
        "t1",
        hold=HOLD_DISABLED,
        breaker_state="open",
        consecutive_failures=12,
        window_requests=40,
        window_failures=30,
        opened_at=at(-5),
        next_probe_at=at(600),
        open_count=4,
        limiter_tat=at(3),
        paused_until=at(60),
        failing_since=at(-9 * DAY),
        last_success_at=at(-10 * DAY),
        blocked_until=at(600),
        verification=verification,
    )
    state = enabled_again(sick, T0)
    assert breaker_of(state) == Breaker()
    assert (state.hold, state.paused_until, state.failing_since) == (hold, None, None)
    assert (state.limiter_tat, state.blocked_until, state.work_at) == (None, None, T0)
    assert (state.verification, state.endpoint_id, state.tenant_id) == (verification, 1, "t1")
    assert state.last_success_at == at(-10 * DAY)


# --- any batch ----------------------------------------------------------------------------------------------

codes = st.one_of(st.none(), st.integers(100, 599), st.sampled_from([200, 204, 410, 429, 500, 503]))
answers = st.lists(
    st.builds(Answer, codes, st.one_of(st.none(), st.integers(0, 10**6).map(str), st.just("junk"))),
    max_size=8,
)


@settings(max_examples=300)
@example(batch=[Answer(500)], failing_for=1.0, paused_until=None, period=3600.0)  # exactly the period
@given(
    batch=answers,
    failing_for=st.one_of(st.none(), st.floats(0, 3)),  # as a share of the period
    paused_until=st.one_of(st.none(), st.integers(-3600, 3600).map(at)),
    period=st.one_of(st.none(), st.floats(1, 10 * DAY)),
)
def test_any_batch(
    batch: list[Answer], failing_for: float | None, paused_until: datetime | None, period: float | None
) -> None:
    failing_since = None if failing_for is None else T0 - timedelta(seconds=failing_for * (period or DAY))
    before = FRESH.changed(failing_since=failing_since, paused_until=paused_until)
    verdict = after_attempts(
        before, batch, T0, policy=POLICY, rate=None, auto_disable_after=period, retry_after_max=3600
    )
    state = verdict.state
    statuses = [a.status_code for a in batch]
    succeeded = [s for s in statuses if s is not None and 200 <= s < 300]

    # a 410 always disables
    if 410 in statuses:
        assert verdict.disable == GONE
    # auto-disable only after the configured period with no success
    overdue = (
        period is not None
        and not succeeded
        and failing_since is not None
        and (T0 - failing_since).total_seconds() >= period
    )
    if 410 not in statuses:
        assert (verdict.disable is not None) == overdue
    assert (state.hold == HOLD_DISABLED) == (verdict.disable is not None)
    # a 2xx clears failing_since; a failure after it starts the period again, now
    if batch and statuses[-1] in succeeded:
        assert state.failing_since is None
    if succeeded:
        assert state.last_success_at == T0
        assert state.failing_since in (None, T0)
    elif batch:
        assert state.failing_since == (failing_since or T0)
    else:
        assert state.failing_since == failing_since
    # Retry-After on 429/503 pauses, bounded, and never shortens a pause
    pauses = [
        T0 + timedelta(seconds=min(int(a.retry_after), 3600))
        for a in batch
        if a.status_code in (429, 503) and a.retry_after and a.retry_after.isdigit()
    ]
    longest = max([p for p in [paused_until, *pauses] if p is not None], default=None)
    assert state.paused_until == longest
    assert state.work_at == T0
    assert state.blocked_until is None or state.blocked_until > T0
