"""The scheduler's pure decisions (hookline.dispatch.scheduler): which due endpoints may send in a claim and
how many each (``plan``), and what each endpoint's row says after the lease (``settle``).

Examples pin each bound (cap, rate limit, breaker, Retry-After pause) and the round robin; hypothesis
checks, for any set of due endpoints in any state, that a claim never grants more than the worker's free
slots or more than any bound allows, that no endpoint that may send is starved, and that tenants share.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hookline.dispatch import breaker as breakers
from hookline.dispatch import limiter
from hookline.dispatch.breaker import Breaker, BreakerPolicy
from hookline.dispatch.scheduler import (
    AHEAD,
    MAX_IN_FLIGHT,
    Limits,
    blocked_until,
    breaker_of,
    cap_of,
    plan,
    policy_of,
    rate_of,
    settle,
    settle_all,
    tenant_turns,
    with_breaker,
)
from hookline.store.endpoint_state import Candidate, EndpointState, Grant, Head

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = T0 + timedelta(seconds=30)
LIMITS = Limits(max_in_flight=20, rate_limit=None)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def due(
    endpoint_id: int, tenant: str = "t1", *, candidate: dict[str, Any] | None = None, **state: Any
) -> Candidate:
    return Candidate(EndpointState(endpoint_id, tenant, work_at=at(-1), **state), **(candidate or {}))


def quotas(grants: list[Grant]) -> dict[int, int]:
    return {g.endpoint_id: g.quota for g in grants}


# --- an endpoint's settings, as stored ----------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "cap"), [(1, 1), (7, 7), (MAX_IN_FLIGHT, MAX_IN_FLIGHT)])
def test_a_valid_stored_cap_is_used(stored: int, cap: int) -> None:
    assert cap_of(due(1, candidate={"max_in_flight": stored}), LIMITS) == cap


@pytest.mark.parametrize("stored", [None, 0, -3, MAX_IN_FLIGHT + 1, True, 5.0, "5", [5]])
def test_an_unusable_stored_cap_falls_back_to_the_service_default(stored: object) -> None:
    assert cap_of(due(1, candidate={"max_in_flight": stored}), LIMITS) == 20


@pytest.mark.parametrize("stored", [0.5, 3, 100_000])
def test_a_valid_stored_rate_is_used(stored: float) -> None:
    assert rate_of(due(1, candidate={"rate_limit": stored}), LIMITS) == limiter.RateLimit(float(stored))


@pytest.mark.parametrize("stored", [None, 0, -1, 100_001, float("inf"), float("nan"), True, "5"])
def test_an_unusable_stored_rate_falls_back_to_the_service_default(stored: object) -> None:
    c = due(1, candidate={"rate_limit": stored})
    assert rate_of(c, LIMITS) is None
    assert rate_of(c, Limits(rate_limit=50)) == limiter.RateLimit(50)


def test_the_endpoints_breaker_overrides_replace_the_service_policy() -> None:
    limits = Limits(breaker=BreakerPolicy(cooldown=5))
    assert policy_of(due(1, candidate={"circuit_breaker": {"cooldown": 9}}), limits) == BreakerPolicy(
        cooldown=9
    )
    assert policy_of(due(1, candidate={"circuit_breaker": {"cooldown": -9}}), limits) == BreakerPolicy(
        cooldown=5
    )


def test_the_breaker_round_trips_through_the_row() -> None:
    b = Breaker("open", 4, at(-10), 9, 5, at(-1), at(29), 2)
    state = with_breaker(EndpointState(1, "t"), b)
    assert breaker_of(state) == b
    assert breaker_of(EndpointState(1, "t", breaker_state="garbage")).state == "closed"


# --- plan: the bounds ---------------------------------------------------------------------------------------


def test_an_endpoint_gets_up_to_a_round_ahead_of_its_cap_less_its_stock_in_this_worker() -> None:
    c = due(1, candidate={"max_in_flight": 5})
    grants, states = plan([c], 1000, T0, LEASE, LIMITS)
    assert grants == [Grant(1, 5 + AHEAD, 5 + AHEAD + 1)]  # the lease looks one further: is more there?
    assert states == {1: due(1).state}
    # 30 in stock (waiting or being sent), 50 leases held (20 more sent, their answers not written):
    # 30 fewer, and the lease looks past the 50 at the head of the queue.
    grants, _ = plan([c], 1000, T0, LEASE, LIMITS, {1: 30}, {1: 50})
    assert grants == [Grant(1, 5 + AHEAD - 30, 50 + 5 + AHEAD - 30 + 1)]
    assert plan([c], 1000, T0, LEASE, LIMITS, {1: 5 + AHEAD}, {1: 5 + AHEAD})[0] == []


def test_the_rate_limit_bounds_a_grant_to_its_allowance() -> None:
    c = due(1, candidate={"rate_limit": 50})  # burst 5
    assert plan([c], 100, T0, LEASE, LIMITS)[0] == [Grant(1, 5, 6)]
    spent = due(1, candidate={"rate_limit": 50}, limiter_tat=at(0.1))  # 5 intervals ahead: nothing
    assert plan([spent], 100, T0, LEASE, LIMITS)[0] == []
    assert plan([spent], 100, at(0.02), LEASE, LIMITS)[0] == [Grant(1, 1, 2)]


def test_a_paused_endpoint_gets_nothing_until_the_pause_ends() -> None:
    c = due(1, paused_until=at(10))
    assert plan([c], 100, T0, LEASE, LIMITS)[0] == []
    assert plan([c], 100, at(10), LEASE, LIMITS)[0] == [Grant(1, 100, 101)]


def test_an_open_breaker_holds_everything_then_lets_one_probe_through() -> None:
    c = due(1, breaker_state="open", opened_at=at(-5), next_probe_at=at(25), open_count=1)
    grants, states = plan([c], 100, T0, LEASE, LIMITS)
    assert grants == []
    assert states[1] == c.state
    grants, states = plan([c], 100, at(25), at(55), LIMITS)
    assert grants == [Grant(1, 1, 2)]
    assert states[1] == c.state.changed(breaker_state="half_open", next_probe_at=at(55))


def test_a_probe_held_back_by_the_rate_limit_or_a_pause_leaves_the_breaker_open() -> None:
    breaker: dict[str, Any] = {"breaker_state": "open", "next_probe_at": at(-1), "open_count": 1}
    for c in (
        due(1, candidate={"rate_limit": 1}, limiter_tat=at(5), **breaker),
        due(1, paused_until=at(5), **breaker),
    ):
        grants, states = plan([c], 100, T0, LEASE, LIMITS)
        assert grants == []
        assert states[1] == c.state


def test_a_half_open_breaker_with_its_probe_out_gets_nothing() -> None:
    c = due(1, breaker_state="half_open", next_probe_at=at(10), open_count=1)
    assert plan([c], 100, T0, LEASE, LIMITS) == ([], {1: c.state})


def test_no_budget_no_grant() -> None:
    assert plan([due(1), due(2)], 0, T0, LEASE, LIMITS)[0] == []


# --- plan: sharing the budget -------------------------------------------------------------------------------


def test_a_short_budget_is_shared_one_at_a_time_in_turn() -> None:
    cs = [due(1), due(2), due(3, candidate={"max_in_flight": 1}), due(4)]
    stock = {3: AHEAD}  # room for one more
    assert quotas(plan(cs, 9, T0, LEASE, LIMITS, stock, stock)[0]) == {1: 3, 2: 3, 3: 1, 4: 2}


def test_tenants_take_turns_in_the_order_they_first_appear() -> None:
    cs = [due(1, "a"), due(2, "a"), due(3, "b"), due(4, "a"), due(5, "c"), due(6, "b")]
    assert [c.state.endpoint_id for c in tenant_turns(cs)] == [1, 3, 5, 2, 6, 4]


def test_with_one_slot_the_oldest_due_endpoint_goes() -> None:
    assert plan([due(7, "b"), due(3, "a")], 1, T0, LEASE, LIMITS)[0] == [Grant(7, 1, 2)]


# Found by this test: the budget used to go one unit per endpoint per pass, so tenant "b" with nine
# endpoints took 9 of 10 slots beside tenant "a" with one.
@example(endpoints_of_b=9, budget=10, b_first=False)
@given(endpoints_of_b=st.integers(2, 30), budget=st.integers(2, 40), b_first=st.booleans())
def test_a_tenant_with_many_endpoints_gets_the_same_turns_as_a_tenant_with_one(
    endpoints_of_b: int, budget: int, b_first: bool
) -> None:
    """Both tenants always have more to send than the budget: the budget alternates between them."""
    a = [due(1, "a", candidate={"max_in_flight": 100})]
    b = [due(100 + i, "b") for i in range(endpoints_of_b)]
    grants, _ = plan(b + a if b_first else a + b, budget, T0, LEASE, LIMITS)
    given_to_a = sum(g.quota for g in grants if g.endpoint_id == 1)
    given_to_b = sum(g.quota for g in grants if g.endpoint_id != 1)
    assert given_to_a + given_to_b == budget
    assert abs(given_to_a - given_to_b) <= 1


# --- plan: any set of due endpoints -------------------------------------------------------------------------

offsets = st.one_of(
    st.none(), st.integers(-60_000_000, 60_000_000).map(lambda us: T0 + timedelta(microseconds=us))
)


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    ids = draw(st.lists(st.integers(1, 10_000), unique=True, min_size=0, max_size=12))
    found = []
    for endpoint_id in ids:
        breaker_state = draw(st.sampled_from(["closed", "closed", "open", "half_open"]))
        state = EndpointState(
            endpoint_id,
            draw(st.sampled_from(["a", "b", "c"])),
            work_at=at(-1),
            breaker_state=breaker_state,
            next_probe_at=draw(offsets) if breaker_state != "closed" else None,
            open_count=0 if breaker_state == "closed" else draw(st.integers(1, 5)),
            limiter_tat=draw(offsets),
            paused_until=draw(offsets),
        )
        found.append(
            Candidate(
                state,
                rate_limit=draw(
                    st.one_of(st.none(), st.floats(0.1, 500), st.sampled_from([0, -1, "x", True]))
                ),
                max_in_flight=draw(
                    st.one_of(st.none(), st.integers(1, 30), st.sampled_from([0, 20_000, "7"]))
                ),
            )
        )
    return found


def bounds(c: Candidate, now: datetime, limits: Limits, stock: int = 0) -> int:
    """The most an endpoint may be granted now, computed from each bound on its own."""
    most = max(cap_of(c, limits) + AHEAD - stock, 0)
    if c.state.paused_until is not None and c.state.paused_until > now:
        most = 0
    breaker_allows, _ = breakers.probe(breaker_of(c.state), now, LEASE)
    if breaker_allows is not None:
        most = min(most, breaker_allows)
    if (rate := rate_of(c, limits)) is not None:
        most = min(most, limiter.allowance(c.state.limiter_tat, now, rate))
    return most


@settings(max_examples=300)
@given(
    cs=candidates(),
    budget=st.integers(0, 300),
    default_rate=st.sampled_from([None, 5.0, 200.0]),
    holding=st.lists(st.tuples(st.integers(0, 140), st.integers(0, 100)), min_size=12, max_size=12),
)
def test_a_plan_respects_the_budget_and_every_bound_and_starves_no_one(
    cs: list[Candidate], budget: int, default_rate: float | None, holding: list[tuple[int, int]]
) -> None:
    limits = Limits(max_in_flight=20, rate_limit=default_rate)
    stock = {c.state.endpoint_id: n for c, (n, _) in zip(cs, holding, strict=False)}
    held = {c.state.endpoint_id: n + unwritten for c, (n, unwritten) in zip(cs, holding, strict=False)}
    grants, states = plan(cs, budget, T0, LEASE, limits, stock, held)
    by_id = {c.state.endpoint_id: c for c in cs}
    got = quotas(grants)
    most = {e: bounds(c, T0, limits, stock[e]) for e, c in by_id.items()}

    assert sum(got.values()) <= budget
    assert len(got) == len(grants)  # one grant per endpoint at most
    for g in grants:
        assert 1 <= g.quota <= most[g.endpoint_id]
        # this worker never has more than a round ahead of the cap in stock
        assert stock[g.endpoint_id] + g.quota <= cap_of(by_id[g.endpoint_id], limits) + AHEAD
        assert g.window == held[g.endpoint_id] + g.quota + 1
    may_send = [e for e, n in most.items() if n > 0]
    tenant = {e: c.state.tenant_id for e, c in by_id.items()}
    tenants_may_send = {tenant[e] for e in may_send}
    if budget >= len(tenants_may_send):
        assert {tenant[e] for e in got} == tenants_may_send  # every tenant that may send gets one
    if budget >= len(may_send) and len(tenants_may_send) == 1:
        assert set(got) == set(may_send)  # one tenant: every endpoint that may send gets one
    if sum(got.values()) < budget:
        assert got == {e: most[e] for e in may_send}  # nothing left on the table
    # work conserving, and fair: tenants take turns (no tenant gets two more than another tenant that
    # could have taken more), and so do the endpoints within a tenant
    per_tenant: dict[str, int] = {}
    for e, n in got.items():
        per_tenant[tenant[e]] = per_tenant.get(tenant[e], 0) + n
    wanting = {
        t for t in tenants_may_send if any(got.get(e, 0) < most[e] for e in may_send if tenant[e] == t)
    }
    for n in per_tenant.values():
        for other in wanting:
            assert n <= per_tenant.get(other, 0) + 1
    for e, n in got.items():
        for other in may_send:
            if tenant[other] == tenant[e] and got.get(other, 0) < most[other]:
                assert n <= got.get(other, 0) + 1

    assert set(states) == set(by_id)
    for e, state in states.items():
        before = by_id[e].state
        if state != before:  # only a probe that goes changes the row, to half open until its lease ends
            assert most[e] >= 1 and breaker_of(before).state != "closed"
            assert state == before.changed(breaker_state="half_open", next_probe_at=LEASE)


# --- settle -------------------------------------------------------------------------------------------------


def test_settle_charges_the_limiter_for_what_was_taken_and_remembers_until_when_it_is_blocked() -> None:
    c = due(1, candidate={"rate_limit": 100})  # burst 10, 10 ms apart
    state = settle(c, c.state, Head(1, taken=10, unleased_left=3), T0, LIMITS)
    assert state.limiter_tat == at(0.1)
    assert state.work_at == T0
    assert state.blocked_until == at(0.01)
    # Taking fewer leaves room: not blocked.
    state = settle(c, c.state, Head(1, taken=4), T0, LIMITS)
    assert state.limiter_tat == at(0.04)
    assert state.blocked_until is None


def test_settle_without_a_rate_limit_leaves_the_limiter_alone() -> None:
    c = due(1, limiter_tat=at(3))
    assert settle(c, c.state, Head(1, taken=5), T0, LIMITS).limiter_tat == at(3)


@pytest.mark.parametrize(
    ("head", "work_at"),
    [
        (Head(1, taken=2, unleased_left=1, leased_until=at(30), next_due=at(5)), T0),
        (Head(1, taken=2, leased_until=at(30), next_due=at(5)), at(5)),
        (Head(1, taken=2, leased_until=at(30), next_due=at(50)), at(30)),
        (Head(1, taken=0, next_due=at(50)), at(50)),
        (Head(1, taken=3), None),
    ],
)
def test_settle_says_when_the_endpoint_has_work_again(head: Head, work_at: datetime | None) -> None:
    c = due(1)
    assert settle(c, c.state, head, T0, LIMITS).work_at == work_at


def test_without_a_grant_work_at_is_kept_and_the_block_is_remembered() -> None:
    c = due(1, paused_until=at(40), breaker_state="open", next_probe_at=at(20), open_count=1)
    state = settle(c, c.state, None, T0, LIMITS)
    assert state.work_at == c.state.work_at
    assert state.blocked_until == at(40)
    assert blocked_until(c.state, at(40), None) is None


def test_a_probe_that_found_nothing_to_send_leaves_the_breaker_as_it_was() -> None:
    c = due(1, breaker_state="open", next_probe_at=at(-1), open_count=2)
    _, states = plan([c], 1, T0, LEASE, LIMITS)
    assert states[1].breaker_state == "half_open"
    state = settle(c, states[1], Head(1, taken=0, next_due=at(60)), T0, LIMITS)
    assert breaker_of(state) == breaker_of(c.state)
    assert state.work_at == at(60)
    # The probe that went keeps the breaker half open, blocked until its lease ends.
    state = settle(c, states[1], Head(1, taken=1, leased_until=LEASE), T0, LIMITS)
    assert state.breaker_state == "half_open"
    assert state.blocked_until == LEASE


def test_a_probe_that_lost_the_budget_leaves_the_breaker_as_it_was() -> None:
    probing = due(2, "b", breaker_state="open", next_probe_at=at(-1), open_count=1)
    cs = [due(1, "a"), probing]
    grants, states = plan(cs, 1, T0, LEASE, LIMITS)
    assert grants == [Grant(1, 1, 2)]
    changed = settle_all(cs, states, {1: Head(1, taken=1, leased_until=LEASE)}, T0, LIMITS)
    assert [s.endpoint_id for s in changed] == [1]


def test_settle_all_returns_only_the_rows_that_change() -> None:
    cs = [due(1), due(2, paused_until=at(9)), due(3, candidate={"rate_limit": 10})]
    grants, states = plan(cs, 100, T0, LEASE, LIMITS)
    assert quotas(grants) == {1: 99, 3: 1}
    heads = {1: Head(1, taken=20, unleased_left=5), 3: Head(3, taken=1, leased_until=LEASE)}
    changed = {s.endpoint_id: s for s in settle_all(cs, states, heads, T0, LIMITS)}
    assert changed[1] == cs[0].state.changed(work_at=T0)
    assert changed[2] == cs[1].state.changed(blocked_until=at(9))  # not granted, but its block is kept
    assert changed[3] == cs[2].state.changed(work_at=LEASE, limiter_tat=at(0.1), blocked_until=at(0.1))
    assert settle_all([due(4)], {}, {}, T0, LIMITS) == []


@settings(max_examples=300)
@given(
    cs=candidates(),
    budget=st.integers(0, 40),
    seen=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 5), offsets, offsets), min_size=12, max_size=12
    ),
)
def test_settle_follows_the_plan_and_the_lease(
    cs: list[Candidate], budget: int, seen: list[tuple[int, int, datetime | None, datetime | None]]
) -> None:
    grants, states = plan(cs, budget, T0, LEASE, LIMITS)
    heads = {}
    for g, (taken, left, leased_until, next_due) in zip(grants, seen, strict=False):
        heads[g.endpoint_id] = Head(g.endpoint_id, min(taken, g.quota), left, leased_until, next_due)
    changed = {s.endpoint_id: s for s in settle_all(cs, states, heads, T0, LIMITS)}
    for c in cs:
        e = c.state.endpoint_id
        head = heads.get(e)
        after = changed.get(e, c.state)
        taken = head.taken if head else 0
        rate = rate_of(c, LIMITS)
        if rate is not None:
            assert after.limiter_tat == limiter.charge(c.state.limiter_tat, T0, rate, taken)
        else:
            assert after.limiter_tat == c.state.limiter_tat
        if taken:
            assert breaker_of(after) == breaker_of(states[e])
        else:
            assert breaker_of(after) == breaker_of(c.state)  # no probe went: the breaker is as it was
        if head is None:
            assert after.work_at == c.state.work_at
        elif head.unleased_left or head.elsewhere:
            assert after.work_at == T0
        else:
            later = [m for m in (head.leased_until, head.next_due) if m is not None]
            assert after.work_at == (min(later) if later else None)
        moments = [breakers.blocked_until(breaker_of(after)), after.paused_until]
        if rate is not None:
            moments.append(limiter.next_allowed(after.limiter_tat, T0, rate))
        future = [m for m in moments if m is not None and m > T0]
        assert after.blocked_until == (max(future) if future else None)
        if after.blocked_until is None and rate is not None:
            assert limiter.allowance(after.limiter_tat, T0, rate) >= 1
        if e not in changed:
            assert settle(c, states[e], head, T0, LIMITS) == c.state


def test_an_endpoint_another_worker_holds_goes_to_the_back_of_the_line() -> None:
    """The other worker's lease ends late (it holds the endpoint while it has work), but it may let go of
    the endpoint at any time: the endpoint stays due, behind the others, not parked until that lease."""
    c = due(1)
    state = settle(c, c.state, Head(1, elsewhere=True, leased_until=at(300)), T0, LIMITS)
    assert state.work_at == T0


def test_a_blocked_until_of_now_is_not_a_block() -> None:
    c = due(1, paused_until=T0, breaker_state="open", next_probe_at=T0, open_count=1)
    assert blocked_until(c.state, T0, None) is None
