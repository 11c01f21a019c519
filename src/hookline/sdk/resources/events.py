"""``client.events``: post events (one, or a batch in one transaction), list them, read one.

Retrying a post is safe only when the server can recognise the repeat: an event ``id`` (a repeated id
creates nothing and answers the first result) or an ``Idempotency-Key``. Unless the client was made
with ``generate_event_ids=False``, the SDK gives every event posted without either an id of its own
(``evt_`` + a ULID, the server's format), so posts are always retried safely on 429/502/503/504 and
broken connections. Such an id costs the server nothing more than its own would (an Idempotency-Key
is one more indexed column). With ``generate_event_ids=False``, a post without an id or key is sent
once.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hookline.sdk.models import BatchAccepted, Event, EventAccepted
from hookline.sdk.pagination import AsyncPager, Page, PageCall, Pager, page_parser
from hookline.sdk.resources._base import AsyncResource, Ops, SyncResource, body
from hookline.sdk.resources.deliveries import Moment
from hookline.sdk.routes import Call, Route

POST = Route("POST", "/v1/events", "events.post")
BATCH = Route("POST", "/v1/events/batch", "events.post_batch")
LIST = Route("GET", "/v1/events", "events.list")
GET = Route("GET", "/v1/events/{event_id}", "events.get")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


def new_event_id() -> str:
    """``evt_`` + 26 characters: 48 bits of milliseconds and 80 random bits (ULID layout), sortable by
    time like the ids the server makes."""
    millis = time.time_ns() // 1_000_000
    stamp = "".join(_CROCKFORD[(millis >> shift) & 31] for shift in range(45, -1, -5))
    return f"evt_{stamp}{base64.b32encode(os.urandom(10)).translate(_TO_CROCKFORD).decode()}"


class _Ops(Ops):
    def _post(
        self,
        event: str,
        data: Mapping[str, Any],
        event_id: str | None,
        channels: Sequence[str] | None,
        idempotency_key: str | None,
        tenant_id: str | None,
    ) -> Call[EventAccepted]:
        if event_id is None and idempotency_key is None and self._options.generate_event_ids:
            event_id = new_event_id()
        json = body(
            event=event,
            data=dict(data),
            id=event_id,
            channels=list(channels) if channels is not None else None,
            tenant_id=self._tenant(tenant_id),
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        safe = event_id is not None or idempotency_key is not None
        return POST.call(EventAccepted.from_dict, json=json, headers=headers, retry=safe)

    def _batch(self, events: Iterable[Mapping[str, Any]], tenant_id: str | None) -> Call[BatchAccepted]:
        items = [dict(e) for e in events]
        if self._options.generate_event_ids:
            for item in items:
                if item.get("id") is None:
                    item["id"] = new_event_id()
        safe = all(item.get("id") is not None for item in items)
        json = body(events=items, tenant_id=self._tenant(tenant_id))
        return BATCH.call(BatchAccepted.from_dict, json=json, retry=safe)

    def _page(
        self,
        limit: int | None,
        event: str | None,
        since: Moment | None,
        until: Moment | None,
        tenant_id: str | None,
    ) -> PageCall[Event]:
        tenant = self._tenant(tenant_id)

        def page_call(cursor: str | None) -> Call[Page[Event]]:
            params = {
                "limit": limit,
                "cursor": cursor,
                "event": event,
                "since": since,
                "until": until,
                "tenant_id": tenant,
            }
            return LIST.call(page_parser(Event.from_dict), params=params)

        return page_call

    def _get(self, event_id: str, tenant_id: str | None) -> Call[Event]:
        params = {"tenant_id": self._tenant(tenant_id)}
        return GET.call(Event.from_dict, path={"event_id": event_id}, params=params)


class Events(SyncResource, _Ops):
    def post(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        channels: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        tenant_id: str | None = None,
    ) -> EventAccepted:
        """Post an event: stored with one delivery per subscribed webhook before the answer (202).
        A repeated ``id`` or ``idempotency_key`` creates nothing and answers the first result."""
        return self._run(self._post(event, data, id, channels, idempotency_key, tenant_id))

    def post_batch(
        self, events: Iterable[Mapping[str, Any]], *, tenant_id: str | None = None
    ) -> BatchAccepted:
        """Post up to 1,000 events ``{"event", "data", "id"?, "channels"?}`` in one transaction: all or
        nothing (the error names the index of the event refused)."""
        return self._run(self._batch(events, tenant_id))

    def list(
        self,
        *,
        event: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> Pager[Event]:
        """The tenant's events, newest first."""
        return Pager(self._run, self._page(limit, event, since, until, tenant_id), cursor)

    def get(self, event_id: str, *, tenant_id: str | None = None) -> Event:
        """An event with the state of each of its deliveries (``delivery_status``)."""
        return self._run(self._get(event_id, tenant_id))


class AsyncEvents(AsyncResource, _Ops):
    async def post(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        channels: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        tenant_id: str | None = None,
    ) -> EventAccepted:
        return await self._run(self._post(event, data, id, channels, idempotency_key, tenant_id))

    async def post_batch(
        self, events: Iterable[Mapping[str, Any]], *, tenant_id: str | None = None
    ) -> BatchAccepted:
        return await self._run(self._batch(events, tenant_id))

    def list(
        self,
        *,
        event: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> AsyncPager[Event]:
        return AsyncPager(self._run, self._page(limit, event, since, until, tenant_id), cursor)

    async def get(self, event_id: str, *, tenant_id: str | None = None) -> Event:
        return await self._run(self._get(event_id, tenant_id))
