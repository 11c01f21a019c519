"""``client.tenants`` (admin key), ``client.tenants.keys`` (admin key, or a tenant's own
``tenant:manage`` key) and ``client.tenants.portal_links`` (admin key)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hookline.sdk.models import ApiKey, Deleted, PortalLink, Tenant
from hookline.sdk.pagination import AsyncPager, Page, PageCall, Pager, page_parser
from hookline.sdk.resources._base import AsyncResource, Ops, SyncResource, body
from hookline.sdk.routes import Call, Route
from hookline.sdk.transport import Options

CREATE = Route("POST", "/v1/tenants", "tenants.create")
LIST = Route("GET", "/v1/tenants", "tenants.list")
GET = Route("GET", "/v1/tenants/{tenant_id}", "tenants.get")
UPDATE = Route("PATCH", "/v1/tenants/{tenant_id}", "tenants.update")
DELETE = Route("DELETE", "/v1/tenants/{tenant_id}", "tenants.delete")
KEY_CREATE = Route("POST", "/v1/tenants/{tenant_id}/keys", "tenants.keys.create")
KEY_LIST = Route("GET", "/v1/tenants/{tenant_id}/keys", "tenants.keys.list")
KEY_REVOKE = Route("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", "tenants.keys.revoke")
LINK_CREATE = Route("POST", "/v1/tenants/{tenant_id}/portal-links", "tenants.portal_links.create")
LINK_LIST = Route("GET", "/v1/tenants/{tenant_id}/portal-links", "tenants.portal_links.list")
LINK_REVOKE = Route("DELETE", "/v1/tenants/{tenant_id}/portal-links/{link_id}", "tenants.portal_links.revoke")


class _Ops(Ops):
    def _create(
        self,
        name: str,
        tenant_id: str | None,
        metadata: Mapping[str, Any] | None,
        theme: Mapping[str, Any] | None = None,
    ) -> Call[Tenant]:
        json = body(
            name=name,
            id=tenant_id,
            metadata=dict(metadata) if metadata is not None else None,
            theme=dict(theme) if theme is not None else None,
        )
        return CREATE.call(Tenant.from_dict, json=json)

    @staticmethod
    def _page(limit: int | None) -> PageCall[Tenant]:
        return lambda cursor: LIST.call(
            page_parser(Tenant.from_dict), params={"limit": limit, "cursor": cursor}
        )

    @staticmethod
    def _update(
        tenant_id: str,
        name: str | None,
        metadata: Mapping[str, Any] | None,
        theme: Mapping[str, Any] | None = None,
    ) -> Call[Tenant]:
        json = body(
            name=name,
            metadata=dict(metadata) if metadata is not None else None,
            theme=dict(theme) if theme is not None else None,
        )
        return UPDATE.call(Tenant.from_dict, path={"tenant_id": tenant_id}, json=json)


class _KeyOps(Ops):
    @staticmethod
    def _create(
        tenant_id: str,
        name: str | None,
        scopes: Sequence[str] | None,
        expires_at: datetime | str | None,
        allowed_ips: Sequence[str] | None,
        rate_limit: float | None,
    ) -> Call[ApiKey]:
        json = body(
            name=name,
            scopes=list(scopes) if scopes is not None else None,
            expires_at=expires_at,
            allowed_ips=list(allowed_ips) if allowed_ips is not None else None,
            rate_limit=rate_limit,
        )
        return KEY_CREATE.call(ApiKey.from_dict, path={"tenant_id": tenant_id}, json=json)

    @staticmethod
    def _page(tenant_id: str) -> PageCall[ApiKey]:
        def page_call(cursor: str | None) -> Call[Page[ApiKey]]:
            # One page holds every key today; a cursor is followed if the API ever pages them.
            parse = page_parser(ApiKey.from_dict)
            return KEY_LIST.call(parse, path={"tenant_id": tenant_id}, params={"cursor": cursor})

        return page_call


class Keys(SyncResource, _KeyOps):
    def create(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | str | None = None,
        allowed_ips: Sequence[str] | None = None,
        rate_limit: float | None = None,
    ) -> ApiKey:
        """A new API key of the tenant; ``.key`` is the key itself, shown only in this answer.
        ``scopes`` default to ``["tenant:manage"]``; ``expires_at`` (timezone-aware), ``allowed_ips``
        (CIDRs) and ``rate_limit`` (requests per second) are optional limits."""
        return self._run(self._create(tenant_id, name, scopes, expires_at, allowed_ips, rate_limit))

    def list(self, tenant_id: str) -> Pager[ApiKey]:
        """The tenant's keys (their prefixes, never the keys)."""
        return Pager(self._run, self._page(tenant_id), None)

    def revoke(self, tenant_id: str, key_id: str) -> Deleted:
        path = {"tenant_id": tenant_id, "key_id": key_id}
        return self._run(KEY_REVOKE.call(Deleted.from_dict, path=path))


class AsyncKeys(AsyncResource, _KeyOps):
    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | str | None = None,
        allowed_ips: Sequence[str] | None = None,
        rate_limit: float | None = None,
    ) -> ApiKey:
        return await self._run(self._create(tenant_id, name, scopes, expires_at, allowed_ips, rate_limit))

    def list(self, tenant_id: str) -> AsyncPager[ApiKey]:
        return AsyncPager(self._run, self._page(tenant_id), None)

    async def revoke(self, tenant_id: str, key_id: str) -> Deleted:
        path = {"tenant_id": tenant_id, "key_id": key_id}
        return await self._run(KEY_REVOKE.call(Deleted.from_dict, path=path))


class _LinkOps(Ops):
    @staticmethod
    def _create(
        tenant_id: str,
        capabilities: Sequence[str] | None,
        expires_in: int | None,
        theme: Mapping[str, Any] | None,
        locale: str | None,
        note: str | None,
    ) -> Call[PortalLink]:
        json = body(
            capabilities=list(capabilities) if capabilities is not None else None,
            expires_in=expires_in,
            theme=dict(theme) if theme is not None else None,
            locale=locale,
            note=note,
        )
        return LINK_CREATE.call(PortalLink.from_dict, path={"tenant_id": tenant_id}, json=json)

    @staticmethod
    def _page(tenant_id: str) -> PageCall[PortalLink]:
        def page_call(cursor: str | None) -> Call[Page[PortalLink]]:
            parse = page_parser(PortalLink.from_dict)
            return LINK_LIST.call(parse, path={"tenant_id": tenant_id}, params={"cursor": cursor})

        return page_call


class PortalLinks(SyncResource, _LinkOps):
    def create(
        self,
        tenant_id: str,
        *,
        capabilities: Sequence[str] | None = None,
        expires_in: int | None = None,
        theme: Mapping[str, Any] | None = None,
        locale: str | None = None,
        note: str | None = None,
    ) -> PortalLink:
        """A signed URL (``.url``, shown only in this answer) that opens the dashboard for the tenant:
        ``capabilities`` ``["read_only"]`` (the default) or any of ``manage_endpoints``,
        ``view_secrets``, ``send_tests``, ``retry_replay``; ``expires_in`` seconds (default 3600, at
        most 7 days); ``theme`` ``{accent, logo_url, mode}``; ``locale`` ``"en"`` or ``"ar"``."""
        return self._run(self._create(tenant_id, capabilities, expires_in, theme, locale, note))

    def list(self, tenant_id: str) -> Pager[PortalLink]:
        return Pager(self._run, self._page(tenant_id), None)

    def revoke(self, tenant_id: str, link_id: str) -> Deleted:
        """Revoke the link; the sessions it opened end too."""
        return self._run(
            LINK_REVOKE.call(Deleted.from_dict, path={"tenant_id": tenant_id, "link_id": link_id})
        )


class AsyncPortalLinks(AsyncResource, _LinkOps):
    async def create(
        self,
        tenant_id: str,
        *,
        capabilities: Sequence[str] | None = None,
        expires_in: int | None = None,
        theme: Mapping[str, Any] | None = None,
        locale: str | None = None,
        note: str | None = None,
    ) -> PortalLink:
        return await self._run(self._create(tenant_id, capabilities, expires_in, theme, locale, note))

    def list(self, tenant_id: str) -> AsyncPager[PortalLink]:
        return AsyncPager(self._run, self._page(tenant_id), None)

    async def revoke(self, tenant_id: str, link_id: str) -> Deleted:
        path = {"tenant_id": tenant_id, "link_id": link_id}
        return await self._run(LINK_REVOKE.call(Deleted.from_dict, path=path))


class Tenants(SyncResource, _Ops):
    def __init__(self, options: Options, run: Any) -> None:
        super().__init__(options, run)
        self.keys = Keys(options, run)
        self.portal_links = PortalLinks(options, run)

    def create(
        self,
        name: str,
        *,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        theme: Mapping[str, Any] | None = None,
    ) -> Tenant:
        """A tenant (one of your customers); ``id`` is yours to choose, generated if absent; ``theme``
        (``{accent, logo_url, mode}``) is its dashboard's look."""
        return self._run(self._create(name, id, metadata, theme))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Pager[Tenant]:
        return Pager(self._run, self._page(limit), cursor)

    def get(self, tenant_id: str) -> Tenant:
        return self._run(GET.call(Tenant.from_dict, path={"tenant_id": tenant_id}))

    def update(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        theme: Mapping[str, Any] | None = None,
    ) -> Tenant:
        return self._run(self._update(tenant_id, name, metadata, theme))

    def delete(self, tenant_id: str) -> Deleted:
        """Delete the tenant and everything it owns (keys, webhooks, events, deliveries)."""
        return self._run(DELETE.call(Deleted.from_dict, path={"tenant_id": tenant_id}))


class AsyncTenants(AsyncResource, _Ops):
    def __init__(self, options: Options, run: Any) -> None:
        super().__init__(options, run)
        self.keys = AsyncKeys(options, run)
        self.portal_links = AsyncPortalLinks(options, run)

    async def create(
        self,
        name: str,
        *,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        theme: Mapping[str, Any] | None = None,
    ) -> Tenant:
        return await self._run(self._create(name, id, metadata, theme))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> AsyncPager[Tenant]:
        return AsyncPager(self._run, self._page(limit), cursor)

    async def get(self, tenant_id: str) -> Tenant:
        return await self._run(GET.call(Tenant.from_dict, path={"tenant_id": tenant_id}))

    async def update(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        theme: Mapping[str, Any] | None = None,
    ) -> Tenant:
        return await self._run(self._update(tenant_id, name, metadata, theme))

    async def delete(self, tenant_id: str) -> Deleted:
        return await self._run(DELETE.call(Deleted.from_dict, path={"tenant_id": tenant_id}))
