"""``client.deliveries``: a webhook's delivery log, one delivery with its attempts, retry and replay."""

from __future__ import annotations

import builtins
from datetime import datetime

from hookline.sdk.models import Attempt, Delivery, DeliveryQueued, DeliveryStatus, Replayed
from hookline.sdk.pagination import AsyncPager, Page, PageCall, Pager, page_parser
from hookline.sdk.resources._base import AsyncResource, Ops, SyncResource, body
from hookline.sdk.routes import Call, Route

LIST = Route("GET", "/v1/webhooks/{webhook_id}/deliveries", "deliveries.list")
GET = Route("GET", "/v1/deliveries/{delivery_id}", "deliveries.get")
RETRY = Route("POST", "/v1/deliveries/{delivery_id}/retry", "deliveries.retry")
REPLAY = Route("POST", "/v1/webhooks/{webhook_id}/replay", "deliveries.replay")

Id = int | str
Moment = datetime | str  # a timezone-aware datetime, or ISO 8601 text with a timezone


def _attempts(delivery: Delivery) -> builtins.list[Attempt]:
    return delivery.attempt_log or []


class _Ops(Ops):
    def _page(
        self,
        webhook_id: Id,
        limit: int | None,
        status: DeliveryStatus | None,
        event: str | None,
        since: Moment | None,
        until: Moment | None,
        tenant_id: str | None,
    ) -> PageCall[Delivery]:
        tenant = self._tenant(tenant_id)

        def page_call(cursor: str | None) -> Call[Page[Delivery]]:
            params = {
                "limit": limit,
                "cursor": cursor,
                "status": status,
                "event": event,
                "since": since,
                "until": until,
                "tenant_id": tenant,
            }
            parse = page_parser(Delivery.from_dict)
            return LIST.call(parse, path={"webhook_id": webhook_id}, params=params)

        return page_call

    def _get(self, delivery_id: Id, tenant_id: str | None) -> Call[Delivery]:
        params = {"tenant_id": self._tenant(tenant_id)}
        return GET.call(Delivery.from_dict, path={"delivery_id": delivery_id}, params=params)

    def _retry(self, delivery_id: Id, tenant_id: str | None) -> Call[DeliveryQueued]:
        params = {"tenant_id": self._tenant(tenant_id)}
        return RETRY.call(DeliveryQueued.from_dict, path={"delivery_id": delivery_id}, params=params)

    def _replay(
        self,
        webhook_id: Id,
        since: Moment,
        until: Moment | None,
        status: DeliveryStatus | None,
        tenant_id: str | None,
    ) -> Call[Replayed]:
        params = {"tenant_id": self._tenant(tenant_id)}
        json = body(since=since, until=until, status=status)
        return REPLAY.call(Replayed.from_dict, path={"webhook_id": webhook_id}, params=params, json=json)


class Deliveries(SyncResource, _Ops):
    def list(
        self,
        webhook_id: Id,
        *,
        status: DeliveryStatus | None = None,
        event: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> Pager[Delivery]:
        """A webhook's deliveries, newest first."""
        page_call = self._page(webhook_id, limit, status, event, since, until, tenant_id)
        return Pager(self._run, page_call, cursor)

    def get(self, delivery_id: Id, *, tenant_id: str | None = None) -> Delivery:
        """A delivery with its ``attempt_log``."""
        return self._run(self._get(delivery_id, tenant_id))

    def attempts(self, delivery_id: Id, *, tenant_id: str | None = None) -> builtins.list[Attempt]:
        """Every attempt of a delivery, oldest first (``get(...).attempt_log``)."""
        return _attempts(self.get(delivery_id, tenant_id=tenant_id))

    def retry(self, delivery_id: Id, *, tenant_id: str | None = None) -> DeliveryQueued:
        """Send the delivery again now (a test send's delivery cannot be: Conflict)."""
        return self._run(self._retry(delivery_id, tenant_id))

    def replay(
        self,
        webhook_id: Id,
        *,
        since: Moment,
        until: Moment | None = None,
        status: DeliveryStatus | None = None,
        tenant_id: str | None = None,
    ) -> Replayed:
        """Queue again a webhook's deliveries created in [since, until) (only ``status`` ones if given)."""
        return self._run(self._replay(webhook_id, since, until, status, tenant_id))


class AsyncDeliveries(AsyncResource, _Ops):
    def list(
        self,
        webhook_id: Id,
        *,
        status: DeliveryStatus | None = None,
        event: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> AsyncPager[Delivery]:
        page_call = self._page(webhook_id, limit, status, event, since, until, tenant_id)
        return AsyncPager(self._run, page_call, cursor)

    async def get(self, delivery_id: Id, *, tenant_id: str | None = None) -> Delivery:
        return await self._run(self._get(delivery_id, tenant_id))

    async def attempts(self, delivery_id: Id, *, tenant_id: str | None = None) -> builtins.list[Attempt]:
        return _attempts(await self.get(delivery_id, tenant_id=tenant_id))

    async def retry(self, delivery_id: Id, *, tenant_id: str | None = None) -> DeliveryQueued:
        return await self._run(self._retry(delivery_id, tenant_id))

    async def replay(
        self,
        webhook_id: Id,
        *,
        since: Moment,
        until: Moment | None = None,
        status: DeliveryStatus | None = None,
        tenant_id: str | None = None,
    ) -> Replayed:
        return await self._run(self._replay(webhook_id, since, until, status, tenant_id))
