"""The worker's run queue (hookline.dispatch.runqueue): which claimed delivery is sent next.

Examples pin the turns and the cap; a hypothesis state machine puts, takes, finishes, pauses, resumes
and removes in any order and checks that no endpoint ever has more than its cap being sent, that a paused
endpoint starts nothing, that every delivery put comes
out exactly once and in its endpoint's order, that nothing ready is left behind, and that a tenant that
could go waits for at most one turn of the other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hookline.dispatch.runqueue import RunQueue


@dataclass(frozen=True)
class Item:
    endpoint_id: int
    tenant_id: str
    n: int


def items(endpoint_id: int, tenant: str, count: int, start: int = 0) -> list[Item]:
    return [Item(endpoint_id, tenant, start + i) for i in range(count)]


def test_tenants_take_turns_whatever_their_queues_hold() -> None:
    q: RunQueue[Item] = RunQueue()
    for item in items(1, "a", 50):
        q.put(item, cap=100)
    q.put(Item(2, "b", 0), cap=1)
    taken = [q.take() for _ in range(3)]
    assert [(i.tenant_id, i.n) for i in taken if i] == [("a", 0), ("b", 0), ("a", 1)]


def test_endpoints_of_a_tenant_take_turns() -> None:
    q: RunQueue[Item] = RunQueue()
    for item in items(1, "a", 3) + items(2, "a", 3):
        q.put(item, cap=10)
    assert [(i.endpoint_id, i.n) for i in iter(q.take, None)] == [
        (1, 0),
        (2, 0),
        (1, 1),
        (2, 1),
        (1, 2),
        (2, 2),
    ]


def test_an_endpoint_at_its_cap_waits_for_a_finish() -> None:
    q: RunQueue[Item] = RunQueue()
    for item in items(1, "a", 5):
        q.put(item, cap=2)
    first, second = q.take(), q.take()
    assert first is not None and second is not None
    assert q.take() is None
    assert (q.sending(1), q.waiting(1), len(q)) == (2, 3, 3)
    q.finished(first)
    third = q.take()
    assert third is not None and third.n == 2
    assert q.take() is None


def test_removing_an_endpoint_returns_what_waits_and_keeps_counting_what_is_sent() -> None:
    q: RunQueue[Item] = RunQueue()
    for item in items(1, "a", 4) + items(2, "b", 1):
        q.put(item, cap=1)
    sent = q.take()
    assert sent == Item(1, "a", 0)
    assert q.remove(1) == items(1, "a", 3, start=1)
    assert q.sending(1) == 1 and q.waiting(1) == 0
    assert q.take() == Item(2, "b", 0)
    assert q.take() is None
    q.finished(sent)
    assert len(q) == 0 and q.sending(1) == 0


class Machine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.q: RunQueue[Item] = RunQueue()
        self.caps: dict[int, int] = {}
        self.tenant_of: dict[int, str] = {}
        self.waiting: dict[int, list[Item]] = {}  # the model: what waits, per endpoint, in order
        self.sending: Counter[int] = Counter()
        self.paused: Counter[int] = Counter()
        self.out: list[Item] = []
        self.next_n = 0
        self.passed_over: Counter[str] = Counter()  # takes in a row a ready tenant did not get

    @rule(endpoint_id=st.integers(1, 6), count=st.integers(1, 5), cap=st.integers(1, 4))
    def put(self, endpoint_id: int, count: int, cap: int) -> None:
        tenant = self.tenant_of.setdefault(endpoint_id, "ab"[endpoint_id % 2])
        cap = self.caps.setdefault(endpoint_id, cap)  # an endpoint keeps its cap
        for _ in range(count):
            item = Item(endpoint_id, tenant, self.next_n)
            self.next_n += 1
            self.q.put(item, cap)
            self.waiting.setdefault(endpoint_id, []).append(item)

    @rule()
    def take(self) -> None:
        item = self.q.take()
        ready = self.ready()
        if item is None:
            assert ready == []  # nothing that may go is left behind
            return
        assert item.endpoint_id in ready
        assert item == self.waiting[item.endpoint_id].pop(0)  # its endpoint's order
        self.sending[item.endpoint_id] += 1
        self.out.append(item)
        # Turns: a tenant that could go waits for at most one turn of each other tenant.
        ready_tenants = {self.tenant_of[e] for e in ready}
        for tenant in "ab":
            passed_over = tenant in ready_tenants and tenant != item.tenant_id
            self.passed_over[tenant] = self.passed_over[tenant] + 1 if passed_over else 0
            assert self.passed_over[tenant] <= 1, f"tenant {tenant} waited two turns of the other"

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        item = self.out.pop(data.draw(st.integers(0, len(self.out) - 1)))
        self.q.finished(item)
        self.sending[item.endpoint_id] -= 1

    @rule(endpoint_id=st.integers(1, 6))
    def pause(self, endpoint_id: int) -> None:
        self.q.pause(endpoint_id)
        self.paused[endpoint_id] += 1

    @precondition(lambda self: any(self.paused.values()))
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        endpoint_id = data.draw(st.sampled_from(sorted(e for e, n in self.paused.items() if n)))
        self.q.resume(endpoint_id)
        self.paused[endpoint_id] -= 1

    def ready(self) -> list[int]:
        return [
            e for e, w in self.waiting.items() if w and self.sending[e] < self.caps[e] and not self.paused[e]
        ]

    @rule(endpoint_id=st.integers(1, 6))
    def remove(self, endpoint_id: int) -> None:
        assert self.q.remove(endpoint_id) == self.waiting.pop(endpoint_id, [])

    @invariant()
    def a_tenant_that_cannot_go_leaves_the_line(self) -> None:
        """Back in line (something of it may go again), it queues behind the others: its wait counts
        from then."""
        ready = {self.tenant_of[e] for e in self.ready()}
        for tenant in "ab":
            if tenant not in ready:
                self.passed_over[tenant] = 0

    @invariant()
    def counts_agree(self) -> None:
        assert len(self.q) == sum(len(w) for w in self.waiting.values())
        for e, cap in self.caps.items():
            assert self.q.sending(e) == self.sending[e] <= cap
            assert self.q.waiting(e) == len(self.waiting.get(e, []))
            if self.waiting.get(e) or self.sending[e]:
                assert self.q.cap(e) == cap


Machine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
test_the_run_queue_keeps_caps_order_and_turns = Machine.TestCase
