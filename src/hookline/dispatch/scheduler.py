"""Which endpoints may send now, and how much: the scheduler's pure decisions.

A claim reads the endpoints that are due (``endpoint_state.due_at <= now``, oldest first, locked), and
``plan`` turns them into grants:

* tenants take turns, and within a tenant its endpoints (the oldest due first), one delivery at a
  time, until the worker's free slots are spent: a tenant with a thousand busy endpoints gets the same
  turns in a claim as a tenant with one;
* each endpoint's grant is bounded by its breaker (nothing while open, one probe when cooled down), its
  rate limit (``hookline.dispatch.limiter``) and how many of its deliveries this worker has in stock:
  at most ``cap + AHEAD`` (a round being sent, the next ones waiting in its run queue,
  ``hookline.dispatch.runqueue``, which sends at most ``cap`` at once). The store leases an endpoint's
  deliveries to one worker at a time (none while another worker's lease is live at the head of its
  queue), so the cap (``max_in_flight``) holds across all workers together, and a dead worker's hold
  ends with its leases.

After the lease, ``settle`` says what to remember: the rate limiter charged for what was taken, when the
endpoint has work again (now, if it has more; else the end of its earliest lease or its next retry),
and until when it may not send. A served endpoint's ``due_at`` becomes now, behind every endpoint that
has waited longer: round robin, with no per-claim cost for the depth of any queue.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hookline.dispatch import breaker as breakers
from hookline.dispatch import limiter
from hookline.dispatch.breaker import Breaker, BreakerPolicy
from hookline.dispatch.options import MAX_IN_FLIGHT
from hookline.store.endpoint_state import Candidate, EndpointState, Grant, Head

MAX_RATE = 100_000.0  # requests per second: beyond, a stored value is treated as no limit
# Deliveries of one endpoint a worker may hold beyond the ``cap`` it sends at once: claimed ahead, a claim
# (a transaction) serves many deliveries instead of the few that finished since the last one.
AHEAD = 200


@dataclass(frozen=True, slots=True)
class Limits:
    """The service's defaults, which an endpoint's own settings replace."""

    max_in_flight: int = 20
    rate_limit: float | None = None
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)


def cap_of(candidate: Candidate, limits: Limits) -> int:
    value = candidate.max_in_flight
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_IN_FLIGHT:
        return value
    return limits.max_in_flight


def rate_of(candidate: Candidate, limits: Limits) -> limiter.RateLimit | None:
    value = candidate.rate_limit
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= MAX_RATE:
        return limiter.RateLimit(float(value))
    return limiter.RateLimit(limits.rate_limit) if limits.rate_limit else None


def policy_of(candidate: Candidate, limits: Limits) -> BreakerPolicy:
    return breakers.policy_with(limits.breaker, candidate.circuit_breaker)


def breaker_of(state: EndpointState) -> Breaker:
    return Breaker(
        state=state.breaker_state if state.breaker_state in ("open", "half_open") else "closed",  # type: ignore[arg-type]
        consecutive_failures=state.consecutive_failures,
        window_started_at=state.window_started_at,
        window_requests=state.window_requests,
        window_failures=state.window_failures,
        opened_at=state.opened_at,
        next_probe_at=state.next_probe_at,
        open_count=state.open_count,
    )


def with_breaker(state: EndpointState, b: Breaker, **more: Any) -> EndpointState:
    """``state`` holding breaker ``b`` (and the ``more`` changes, in the same copy)."""
    return state.changed(
        **more,
        breaker_state=b.state,
        consecutive_failures=b.consecutive_failures,
        window_started_at=b.window_started_at,
        window_requests=b.window_requests,
        window_failures=b.window_failures,
        opened_at=b.opened_at,
        next_probe_at=b.next_probe_at,
        open_count=b.open_count,
    )


def blocked_until(state: EndpointState, now: datetime, rate: limiter.RateLimit | None) -> datetime | None:
    """The latest of what keeps the endpoint from sending after ``now``: its breaker, its rate limit,
    a receiver's Retry-After. None when nothing does."""
    moments = [
        breakers.blocked_until(breaker_of(state)),
        limiter.next_allowed(state.limiter_tat, now, rate) if rate else None,
        state.paused_until,
    ]
    later = [m for m in moments if m is not None and m > now]
    return max(later) if later else None


def stops_sending(state: EndpointState, now: datetime) -> bool:
    """Whether the endpoint may send nothing more for now: held (disabled, unverified), its breaker
    open, or paused by a receiver's Retry-After. (A rate limit only spaces what it sends.)"""
    return (
        state.hold is not None
        or state.breaker_state == "open"
        or (state.paused_until is not None and state.paused_until > now)
    )


def tenant_turns(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates reordered so that tenants take turns: the first endpoint of each tenant (in the order
    tenants first appear), then the second of each, and so on."""
    by_tenant: OrderedDict[str, deque[Candidate]] = OrderedDict()
    for c in candidates:
        by_tenant.setdefault(c.state.tenant_id, deque()).append(c)
    ordered: list[Candidate] = []
    while by_tenant:
        for tenant in list(by_tenant):
            queue = by_tenant[tenant]
            ordered.append(queue.popleft())
            if not queue:
                del by_tenant[tenant]
    return ordered


def plan(
    candidates: Sequence[Candidate],
    budget: int,
    now: datetime,
    lease_until: datetime,
    limits: Limits,
    stock: Mapping[int, int] | None = None,
    held: Mapping[int, int] | None = None,
) -> tuple[list[Grant], dict[int, EndpointState]]:
    """Grants for up to ``budget`` deliveries, and each candidate's state as decided (a breaker that lets
    its probe through becomes half open). Candidates that may send nothing get no grant.

    ``stock``: per endpoint, how many of its deliveries wait or are being sent in this worker (it takes
    up to ``cap + AHEAD`` less those). ``held``: how many leases this worker holds on its deliveries,
    those and the ones sent whose answers are not written yet (the lease looks past them)."""
    stock = stock or {}
    held = held or {}
    wants: dict[int, int] = {}
    states: dict[int, EndpointState] = {}
    order = tenant_turns(candidates)
    for c in order:
        state = c.state
        quota: float = max(cap_of(c, limits) + AHEAD - stock.get(state.endpoint_id, 0), 0)
        if state.paused_until is not None and state.paused_until > now:
            quota = 0
        allowed, b = breakers.probe(breaker_of(state), now, lease_until)
        if allowed is not None:
            quota = min(quota, allowed)
        if (rate := rate_of(c, limits)) is not None:
            quota = min(quota, limiter.allowance(state.limiter_tat, now, rate))
        states[state.endpoint_id] = state
        wants[state.endpoint_id] = int(quota)
        if allowed == 1 and quota >= 1:  # the probe goes: half open until its lease ends
            states[state.endpoint_id] = with_breaker(state, b)
    # One delivery at a time: tenants in turn, and within a tenant its endpoints in turn, so a short
    # budget is shared by tenants first (a tenant with nine endpoints gets no more than one with one).
    given = dict.fromkeys(wants, 0)
    turns: OrderedDict[str, deque[int]] = OrderedDict()
    for c in order:
        if wants[c.state.endpoint_id] > 0:
            turns.setdefault(c.state.tenant_id, deque()).append(c.state.endpoint_id)
    left = budget
    while left > 0 and turns:
        for tenant in list(turns):
            if left == 0:
                break
            queue = turns[tenant]
            endpoint_id = queue.popleft()
            given[endpoint_id] += 1
            left -= 1
            if given[endpoint_id] < wants[endpoint_id]:
                queue.append(endpoint_id)
            if not queue:
                del turns[tenant]
    # The lease looks past what this worker holds (at the head of the queue) to the ones it may take,
    # and one further: whether more is waiting.
    grants = [Grant(e, n, held.get(e, 0) + n + 1) for e, n in given.items() if n > 0]
    return grants, states


def settle(
    candidate: Candidate, state: EndpointState, head: Head | None, now: datetime, limits: Limits
) -> EndpointState:
    """The endpoint's state after a claim: ``state`` as planned, ``head`` what its lease saw (None when
    it got no grant)."""
    rate = rate_of(candidate, limits)
    taken = head.taken if head else 0
    if rate is not None:
        state = state.changed(limiter_tat=limiter.charge(state.limiter_tat, now, rate, taken))
    if state is not candidate.state and state.breaker_state == "half_open" and not taken:
        state = candidate.state  # the probe found nothing to send: the breaker stays as it was
    if head is not None:
        if head.unleased_left > 0 or head.elsewhere:
            # More is due (or another worker sends it, and may stop holding it at any time): back in
            # line, behind the others.
            work_at: datetime | None = now
        else:
            later = [m for m in (head.leased_until, head.next_due) if m is not None]
            work_at = min(later) if later else None
        state = state.changed(work_at=work_at)
    return state.changed(blocked_until=blocked_until(state, now, rate))


def waits_for_rate(
    candidate: Candidate, state: EndpointState, head: Head | None, now: datetime, limits: Limits
) -> bool:
    """Whether a due endpoint leaves deliveries waiting after a claim because of its rate limit: nothing
    or not all of its head was taken, and the limiter lets nothing more go now (``state`` as settled)."""
    rate = rate_of(candidate, limits)
    if rate is None or (head is not None and head.unleased_left == 0):
        return False
    return limiter.next_allowed(state.limiter_tat, now, rate) is not None


def settle_all(
    candidates: Sequence[Candidate],
    planned: Mapping[int, EndpointState],
    heads: Mapping[int, Head],
    now: datetime,
    limits: Limits,
) -> list[EndpointState]:
    """``settle`` for every candidate whose state changes."""
    changed = []
    for c in candidates:
        endpoint_id = c.state.endpoint_id
        new = settle(c, planned.get(endpoint_id, c.state), heads.get(endpoint_id), now, limits)
        if new != c.state:
            changed.append(new)
    return changed
