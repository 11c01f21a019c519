"""``GET /v1/audit-log``: who changed what, when, from where (``hookline.api.audit`` lists the actions).

The operator (admin key) reads every entry, service-wide ones included, or one tenant's with
``tenant_id``. A tenant key with ``tenant:manage`` reads its own tenant's, from the tenant's creation
on (a deleted tenant's history stays the operator's, never a namesake's): the log shows the addresses
and key ids of everyone who changed the tenant's setup, which is for whoever manages it, not for
read-only support tools.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from hookline.api.access import Manage
from hookline.api.audit import ACTIONS, RESOURCE_TYPES
from hookline.api.auth import ServicesDep, resolve_tenant
from hookline.api.envelope import bad_request, ok
from hookline.api.pagination import Cursor, Limit, Moment, decode_int_cursor, page, require_timezone
from hookline.api.responses import AuditEntryOut, Envelope, Page
from hookline.api.routing import StrictJsonRoute
from hookline.store import audit_log as store
from hookline.store.audit_log import Entry, Filters
from hookline.store.tenants import get_tenant

router = APIRouter(prefix="/v1/audit-log", tags=["audit log"], route_class=StrictJsonRoute)


def entry_view(e: Entry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "tenant_id": e.tenant_id,
        "action": e.action,
        "actor": {"key_id": e.actor, "address": e.client_address},
        "resource": {"type": e.resource_type, "id": e.resource_id},
        "changes": e.changes,
    }


def _action(value: str | None) -> str | None:
    if value is None:
        return None
    kind = value[:-2] if value.endswith(".*") else None
    if value in ACTIONS or kind in RESOURCE_TYPES:
        return value
    raise bad_request(
        f"unknown action '{value}' (one of {', '.join(ACTIONS)}; or a kind with '.*', e.g. 'webhook.*')"
    )


def _resource_type(value: str | None) -> str | None:
    if value is not None and value not in RESOURCE_TYPES:
        raise bad_request(f"unknown resource_type '{value}' (one of {', '.join(RESOURCE_TYPES)})")
    return value


@router.get(
    "",
    summary="The audit log, newest first",
    description="Every change to tenants, API keys, webhooks and event types, every secret shown, replay "
    "and manual retry: who (key id), when, from where, what changed (secrets never written).",
    response_model=Envelope[Page[AuditEntryOut]],
)
async def list_audit_log(
    services: ServicesDep,
    principal: Manage,
    limit: Limit = 50,
    cursor: Cursor = None,
    tenant_id: Annotated[
        str | None, Query(description="only this tenant's entries (admin key; a tenant key reads its own)")
    ] = None,
    action: Annotated[str | None, Query(description="an action, or a kind of them ('webhook.*')")] = None,
    resource_type: Annotated[str | None, Query(description="tenant, api_key, webhook, ...")] = None,
    resource_id: Annotated[str | None, Query(max_length=200, description="e.g. a webhook's id")] = None,
    actor: Annotated[
        str | None, Query(max_length=64, description="a key id, 'admin', 'cli' or 'system'")
    ] = None,
    since: Moment | None = None,
    until: Moment | None = None,
) -> Response:
    filters = Filters(
        action=_action(action),
        resource_type=_resource_type(resource_type),
        resource_id=resource_id,
        actor=actor,
        since=require_timezone("since", since),
        until=require_timezone("until", until),
    )
    before = decode_int_cursor(cursor)
    not_before = None
    if principal.is_admin and tenant_id is None:
        tenant = None
    elif principal.is_admin:
        tenant = tenant_id  # the operator may read a deleted tenant's history too
    else:
        tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.read() as conn:
        if not principal.is_admin and tenant is not None:
            own = await get_tenant(conn, tenant)
            not_before = own.created_at if own is not None else None
        rows = await store.list_entries(
            conn,
            tenant_id=tenant,
            all_tenants=tenant is None,
            filters=filters,
            not_before=not_before,
            before=before,
            limit=limit + 1,
        )
    last = rows[limit - 1].id if len(rows) > limit else None
    return ok(page([entry_view(e) for e in rows], limit, last), "Audit log retrieved successfully")
