"""``client.stats``: delivery statistics of a webhook, of a tenant, or of the whole service."""

from __future__ import annotations

from hookline.sdk.models import Bucket, Stats
from hookline.sdk.resources._base import AsyncResource, Ops, SyncResource
from hookline.sdk.resources.deliveries import Moment
from hookline.sdk.routes import Call, Route

TENANT = Route("GET", "/v1/webhooks/stats", "stats.tenant")
WEBHOOK = Route("GET", "/v1/webhooks/{webhook_id}/stats", "stats.webhook")


class _Ops(Ops):
    @staticmethod
    def _params(
        since: Moment | None, until: Moment | None, window: str | None, bucket: Bucket | None
    ) -> dict[str, object]:
        return {"since": since, "until": until, "window": window, "bucket": bucket}

    def _tenant_stats(self, tenant: str | None, params: dict[str, object]) -> Call[Stats]:
        return TENANT.call(Stats.from_dict, params={**params, "tenant_id": tenant})

    def _webhook_stats(
        self, webhook_id: int | str, tenant_id: str | None, params: dict[str, object]
    ) -> Call[Stats]:
        params = {**params, "tenant_id": self._tenant(tenant_id)}
        return WEBHOOK.call(Stats.from_dict, path={"webhook_id": webhook_id}, params=params)


class StatsResource(SyncResource, _Ops):
    """``since``/``until`` bound the window (``until`` defaults to now), ``window`` gives its length
    instead of ``since`` (``24h``, ``7d``; default 24h), ``bucket`` the series' bucket."""

    def tenant(
        self,
        *,
        since: Moment | None = None,
        until: Moment | None = None,
        window: str | None = None,
        bucket: Bucket | None = None,
        tenant_id: str | None = None,
    ) -> Stats:
        """The tenant's statistics (the key's tenant; with the admin key, ``tenant_id`` or the
        client's default)."""
        params = self._params(since, until, window, bucket)
        return self._run(self._tenant_stats(self._tenant(tenant_id), params))

    def service(
        self,
        *,
        since: Moment | None = None,
        until: Moment | None = None,
        window: str | None = None,
        bucket: Bucket | None = None,
    ) -> Stats:
        """The whole service's statistics (admin key; the client's default tenant is not applied)."""
        return self._run(self._tenant_stats(None, self._params(since, until, window, bucket)))

    def webhook(
        self,
        webhook_id: int | str,
        *,
        since: Moment | None = None,
        until: Moment | None = None,
        window: str | None = None,
        bucket: Bucket | None = None,
        tenant_id: str | None = None,
    ) -> Stats:
        params = self._params(since, until, window, bucket)
        return self._run(self._webhook_stats(webhook_id, tenant_id, params))


class AsyncStatsResource(AsyncResource, _Ops):
    async def tenant(
        self,
        *,
        since: Moment | None = None,
        until: Moment | None = None,
        window: str | None = None,
        bucket: Bucket | None = None,
        tenant_id: str | None = None,
    ) -> Stats:
        params = self._params(since, until, window, bucket)
        return await self._run(self._tenant_stats(self._tenant(tenant_id), params))

    async def service(
        self,
        *,
        since: Moment | None = None,
        until: Moment | None = None,
        window: str | None = None,
        bucket: Bucket | None = None,
    ) -> Stats:
        return await self._run(self._tenant_stats(None, self._params(since, until, window, bucket)))

    async def webhook(
        self,
        webhook_id: int | str,
        *,
        since: Moment | None = None,
        until: Moment | None = None,
        window: str | None = None,
        bucket: Bucket | None = None,
        tenant_id: str | None = None,
    ) -> Stats:
        params = self._params(since, until, window, bucket)
        return await self._run(self._webhook_stats(webhook_id, tenant_id, params))
