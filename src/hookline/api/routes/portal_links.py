"""/v1/tenants/{id}/portal-links: signed URLs that open the dashboard for one tenant (admin key).

A platform embeds the dashboard for one of its customers with such a link: it opens a session scoped
to that tenant, with the capabilities the link names (``read_only``, or any of ``manage_endpoints``,
``view_secrets``, ``send_tests``, ``retry_replay``), optional theme overrides and a language. The link
works until it expires (default 1 hour, at most 7 days) or is revoked; revoking it also ends the
sessions it opened. The URL is shown once, when the link is made: the list shows the links, not their
URLs. Framing is allowed only to the origins of ``HOOKLINE_PORTAL_FRAME_ANCESTORS``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from hookline.api.access import AdminOnly
from hookline.api.audit import Who
from hookline.api.auth import ServicesDep
from hookline.api.envelope import bad_request, not_found, ok
from hookline.api.responses import Deleted, Envelope, Page, PortalLinkCreated, PortalLinkOut
from hookline.api.routing import StrictJsonRoute
from hookline.api.theme import Theme
from hookline.signed_tokens import PORTAL_LINK
from hookline.store import audit_log
from hookline.store import portal_links as store
from hookline.store.portal_links import CAPABILITIES, READ_ONLY, PortalLink
from hookline.store.tenants import get_tenant

router = APIRouter(prefix="/v1/tenants", tags=["portal links"], route_class=StrictJsonRoute)

DEFAULT_TTL = 3600
MAX_TTL = 7 * 86400
LOCALES = ("en", "ar")  # hookline.dashboard.i18n's; kept here so the API does not import the dashboard
PORTAL_PATH = "/ui/portal"
Capability = Literal["read_only", "manage_endpoints", "view_secrets", "send_tests", "retry_replay"]


def _read_only() -> list[Capability]:
    return ["read_only"]


class PortalLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    capabilities: list[Capability] = Field(
        default_factory=_read_only,
        min_length=1,
        description="['read_only'], or any of manage_endpoints, view_secrets, send_tests, retry_replay",
    )
    expires_in: int = Field(default=DEFAULT_TTL, ge=60, le=MAX_TTL, description="seconds (at most 7 days)")
    theme: Theme = Field(default_factory=Theme)
    locale: Literal["en", "ar"] | None = Field(default=None, description="the language; null: the viewer's")
    note: str = Field(default="", max_length=200, description="what the link is for (shown to the operator)")


def link_view(link: PortalLink) -> dict[str, Any]:
    return {
        "id": link.id,
        "tenant_id": link.tenant_id,
        "capabilities": list(link.capabilities),
        "theme": link.theme,
        "locale": link.locale,
        "note": link.note,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "revoked_at": link.revoked_at,
    }


def _base_url(request: Request, public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/")


@router.post(
    "/{tenant_id}/portal-links",
    status_code=201,
    summary="Make a portal link: the dashboard for one tenant, to embed (URL shown once)",
    response_model=Envelope[PortalLinkCreated],
)
async def create_portal_link(
    tenant_id: str, body: PortalLinkCreate, request: Request, services: ServicesDep, _: AdminOnly, who: Who
) -> Response:
    wanted: list[str] = list(dict.fromkeys(body.capabilities))
    if READ_ONLY in wanted and len(wanted) > 1:
        raise bad_request("capabilities: 'read_only' cannot be combined with other capabilities")
    capabilities = [] if wanted == [READ_ONLY] else [c for c in CAPABILITIES if c in wanted]
    theme = body.theme.stored()
    now = services.now()
    async with services.store.write() as conn:
        if await get_tenant(conn, tenant_id) is None:
            raise not_found(f"tenant '{tenant_id}' not found")
        link = await store.insert(
            conn,
            tenant_id=tenant_id,
            capabilities=capabilities,
            theme=theme,
            locale=body.locale,
            note=body.note,
            created_by=who.key_id,
            now=now,
            expires_at=now + timedelta(seconds=body.expires_in),
        )
        created = {
            "capabilities": capabilities or [READ_ONLY],
            "expires_at": link.expires_at,
            "note": body.note,
        }
        await audit_log.record(
            conn, who.entry("portal_link.created", tenant_id, "portal_link", link.id, created), now
        )
    token = services.signer(PORTAL_LINK).sign({"link": link.id})
    url = f"{_base_url(request, services.settings.public_url)}{PORTAL_PATH}?token={token}"
    return ok({**link_view(link), "url": url}, "Portal link created; the URL is not shown again", 201)


@router.get(
    "/{tenant_id}/portal-links",
    summary="List a tenant's portal links (without their URLs)",
    response_model=Envelope[Page[PortalLinkOut]],
)
async def list_portal_links(tenant_id: str, services: ServicesDep, _: AdminOnly) -> Response:
    async with services.store.read() as conn:
        if await get_tenant(conn, tenant_id) is None:
            raise not_found(f"tenant '{tenant_id}' not found")
        links = await store.list_for(conn, tenant_id)
    return ok({"items": [link_view(link) for link in links], "next_cursor": None}, "Portal links retrieved")


@router.delete(
    "/{tenant_id}/portal-links/{link_id}",
    summary="Revoke a portal link (and end the sessions it opened)",
    response_model=Envelope[Deleted],
)
async def revoke_portal_link(
    tenant_id: str, link_id: str, services: ServicesDep, _: AdminOnly, who: Who
) -> Response:
    now = services.now()
    async with services.store.write() as conn:
        if not await store.revoke(conn, tenant_id, link_id, now):
            raise not_found(f"portal link '{link_id}' not found")
        await audit_log.record(conn, who.entry("portal_link.revoked", tenant_id, "portal_link", link_id), now)
    return ok({"id": link_id, "deleted": True}, "Portal link revoked")
