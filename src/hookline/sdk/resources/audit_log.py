"""``client.audit_log``: who changed what, when, from where (``GET /v1/audit-log``), newest first.

A tenant key reads its own tenant's log (a key with ``tenant:manage``); the admin key reads every
entry, or one tenant's with ``tenant_id`` (the client's default tenant applies, as everywhere).
"""

from __future__ import annotations

from hookline.sdk.models import AuditEntry
from hookline.sdk.pagination import AsyncPager, Page, PageCall, Pager, page_parser
from hookline.sdk.resources._base import AsyncResource, Ops, SyncResource
from hookline.sdk.resources.deliveries import Moment
from hookline.sdk.routes import Call, Route

LIST = Route("GET", "/v1/audit-log", "audit_log.list")


class _Ops(Ops):
    def _page(
        self,
        limit: int | None,
        action: str | None,
        resource_type: str | None,
        resource_id: str | int | None,
        actor: str | None,
        since: Moment | None,
        until: Moment | None,
        tenant_id: str | None,
    ) -> PageCall[AuditEntry]:
        tenant = self._tenant(tenant_id)

        def page_call(cursor: str | None) -> Call[Page[AuditEntry]]:
            params = {
                "limit": limit,
                "cursor": cursor,
                "action": action,
                "resource_type": resource_type,
                "resource_id": str(resource_id) if resource_id is not None else None,
                "actor": actor,
                "since": since,
                "until": until,
                "tenant_id": tenant,
            }
            return LIST.call(page_parser(AuditEntry.from_dict), params=params)

        return page_call


class AuditLog(SyncResource, _Ops):
    def list(
        self,
        *,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | int | None = None,
        actor: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> Pager[AuditEntry]:
        """Entries newest first; ``action`` is one (``"webhook.updated"``) or a kind (``"webhook.*"``)."""
        page = self._page(limit, action, resource_type, resource_id, actor, since, until, tenant_id)
        return Pager(self._run, page, cursor)


class AsyncAuditLog(AsyncResource, _Ops):
    def list(
        self,
        *,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | int | None = None,
        actor: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        tenant_id: str | None = None,
    ) -> AsyncPager[AuditEntry]:
        page = self._page(limit, action, resource_type, resource_id, actor, since, until, tenant_id)
        return AsyncPager(self._run, page, cursor)
