"""The worker's own queue of claimed deliveries: which one to send next when a slot comes free.

A worker leases an endpoint's deliveries ahead of sending them (a claim is a transaction: taking a
round's worth at a time keeps their cost per delivery low) and sends them from here:

* at most ``cap`` of an endpoint's deliveries are being sent at once (its ``max_in_flight``); no other
  worker sends to an endpoint while this one holds its leases (``hookline.store.queue``), so the cap
  holds across workers;
* tenants take turns, and within a tenant its endpoints, one delivery at a time: a tenant with a deep
  queue here does not delay a tenant whose one delivery just arrived;
* an endpoint's deliveries go in the order they were claimed (oldest first).

Pure bookkeeping, no I/O: the worker starts what ``take`` returns and reports ``finished``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, Protocol, TypeVar


class Item(Protocol):
    @property
    def endpoint_id(self) -> int: ...

    @property
    def tenant_id(self) -> str: ...


T = TypeVar("T", bound=Item)


class RunQueue(Generic[T]):
    def __init__(self) -> None:
        self._waiting: dict[int, deque[T]] = {}
        self._caps: dict[int, int] = {}
        self._sending: dict[int, int] = {}
        self._paused: dict[int, int] = {}
        self._tenants: dict[int, str] = {}
        # Endpoints that may start one now (waiting, under their cap, not paused), by tenant in turn order.
        self._ready: OrderedDict[str, deque[int]] = OrderedDict()
        self._in_line: set[int] = set()
        self._queued = 0

    def __len__(self) -> int:
        """Deliveries waiting (not being sent)."""
        return self._queued

    def waiting(self, endpoint_id: int) -> int:
        queue = self._waiting.get(endpoint_id)
        return len(queue) if queue else 0

    def sending(self, endpoint_id: int) -> int:
        return self._sending.get(endpoint_id, 0)

    def cap(self, endpoint_id: int) -> int | None:
        """The endpoint's cap, while it has deliveries waiting or being sent here."""
        return self._caps.get(endpoint_id)

    def put(self, item: T, cap: int) -> None:
        """Queue ``item``; its endpoint sends at most ``cap`` at once (the latest cap given wins)."""
        endpoint_id = item.endpoint_id
        self._caps[endpoint_id] = max(cap, 1)
        self._tenants[endpoint_id] = item.tenant_id
        queue = self._waiting.get(endpoint_id)
        if queue is None:
            queue = self._waiting[endpoint_id] = deque()
        queue.append(item)
        self._queued += 1
        if len(queue) == 1:
            self._enter(endpoint_id)

    def take(self) -> T | None:
        """The next delivery to send (now counted as sending), or None if no endpoint with waiting
        deliveries may start one (each is at its cap, or paused)."""
        if not self._ready:
            return None
        tenant, endpoints = next(iter(self._ready.items()))
        endpoint_id = endpoints.popleft()
        self._in_line.discard(endpoint_id)
        queue = self._waiting[endpoint_id]
        item = queue.popleft()
        self._queued -= 1
        sending = self._sending[endpoint_id] = self.sending(endpoint_id) + 1
        if queue and sending < self._caps[endpoint_id]:
            endpoints.append(endpoint_id)  # its next one waits for its turn again
            self._in_line.add(endpoint_id)
        elif not queue:
            del self._waiting[endpoint_id]
        # The tenant goes to the back of the line (or leaves it, with nothing ready).
        del self._ready[tenant]
        if endpoints:
            self._ready[tenant] = endpoints
        return item

    def finished(self, item: T) -> None:
        """``item``, taken earlier, is no longer being sent."""
        endpoint_id = item.endpoint_id
        sending = self._sending[endpoint_id] - 1
        if sending:
            self._sending[endpoint_id] = sending
        else:
            del self._sending[endpoint_id]
        if sending == self._caps[endpoint_id] - 1:  # it was at its cap
            self._enter(endpoint_id)
        self._forget(endpoint_id)

    def pause(self, endpoint_id: int) -> None:
        """Start nothing more for ``endpoint_id`` until as many ``resume`` calls (the worker pauses an
        endpoint from a failed answer until that answer is recorded and its breaker has seen it)."""
        self._paused[endpoint_id] = self._paused.get(endpoint_id, 0) + 1
        self._leave(endpoint_id)

    def resume(self, endpoint_id: int) -> None:
        paused = self._paused.get(endpoint_id, 0) - 1
        if paused > 0:
            self._paused[endpoint_id] = paused
            return
        self._paused.pop(endpoint_id, None)
        self._enter(endpoint_id)
        self._forget(endpoint_id)

    def remove(self, endpoint_id: int) -> list[T]:
        """Take every waiting delivery of ``endpoint_id`` out (those being sent stay counted)."""
        queue = self._waiting.pop(endpoint_id, None)
        if not queue:
            return []
        self._queued -= len(queue)
        self._leave(endpoint_id)
        self._forget(endpoint_id)
        return list(queue)

    def drain(self) -> list[T]:
        """Take every waiting delivery out."""
        return [item for endpoint_id in list(self._waiting) for item in self.remove(endpoint_id)]

    def _enter(self, endpoint_id: int) -> None:
        """Into the line (at the back of its tenant's endpoints) if it may start one now."""
        if (
            self._waiting.get(endpoint_id)
            and self.sending(endpoint_id) < self._caps[endpoint_id]
            and endpoint_id not in self._paused
            and endpoint_id not in self._in_line
        ):
            self._ready.setdefault(self._tenants[endpoint_id], deque()).append(endpoint_id)
            self._in_line.add(endpoint_id)

    def _leave(self, endpoint_id: int) -> None:
        if endpoint_id not in self._in_line:
            return
        self._in_line.discard(endpoint_id)
        tenant = self._tenants[endpoint_id]
        endpoints = self._ready[tenant]
        endpoints.remove(endpoint_id)
        if not endpoints:
            del self._ready[tenant]

    def _forget(self, endpoint_id: int) -> None:
        """Drop what is kept of an endpoint with nothing waiting, sent or paused."""
        if (
            endpoint_id not in self._waiting
            and endpoint_id not in self._sending
            and endpoint_id not in self._paused
        ):
            self._caps.pop(endpoint_id, None)
            self._tenants.pop(endpoint_id, None)
