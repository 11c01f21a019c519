"""Portal links: a signed URL that opens the dashboard for one tenant, with some capabilities.

The URL carries a signed token naming a row here (``hookline.dashboard.tokens``); the row says what the
link allows and whether it still works. A link is usable until ``expires_at`` unless revoked; the
sessions it opened end with it (the dashboard checks the row on each request, cached for seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.ids import new_id
from hookline.store.schema import portal_links

# What a link may let its holder do beyond reading (``read_only``: none of them).
MANAGE_ENDPOINTS = "manage_endpoints"  # create, edit, enable/disable, verify, delete, reset breakers
VIEW_SECRETS = "view_secrets"  # reveal and rotate signing secrets
SEND_TESTS = "send_tests"
RETRY_REPLAY = "retry_replay"  # retry a delivery, replay a range
CAPABILITIES = (MANAGE_ENDPOINTS, VIEW_SECRETS, SEND_TESTS, RETRY_REPLAY)
READ_ONLY = "read_only"


@dataclass(frozen=True, slots=True)
class PortalLink:
    id: str
    tenant_id: str
    capabilities: tuple[str, ...]
    theme: dict[str, Any]
    locale: str | None
    note: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


def _link(row: sa.RowMapping) -> PortalLink:
    return PortalLink(
        id=row["id"],
        tenant_id=row["tenant_id"],
        capabilities=tuple(row["capabilities"]),
        theme=dict(row["theme"]),
        locale=row["locale"],
        note=row["note"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


async def insert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    capabilities: Sequence[str],
    theme: dict[str, Any],
    locale: str | None,
    note: str,
    created_by: str,
    now: datetime,
    expires_at: datetime,
) -> PortalLink:
    link = PortalLink(
        id=new_id("pl"),
        tenant_id=tenant_id,
        capabilities=tuple(capabilities),
        theme=theme,
        locale=locale,
        note=note,
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    await conn.execute(
        portal_links.insert().values(
            id=link.id,
            tenant_id=tenant_id,
            capabilities=list(link.capabilities),
            theme=theme,
            locale=locale,
            note=note,
            created_by=created_by,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return link


async def get(conn: AsyncConnection, link_id: str) -> PortalLink | None:
    row = (await conn.execute(portal_links.select().where(portal_links.c.id == link_id))).mappings().first()
    return _link(row) if row is not None else None


async def list_for(conn: AsyncConnection, tenant_id: str | None, *, limit: int = 100) -> list[PortalLink]:
    """A tenant's links (None: every tenant's), newest first."""
    query = sa.select(portal_links).order_by(portal_links.c.created_at.desc(), portal_links.c.id.desc())
    if tenant_id is not None:
        query = query.where(portal_links.c.tenant_id == tenant_id)
    return [_link(row) for row in (await conn.execute(query.limit(limit))).mappings()]


async def revoke(conn: AsyncConnection, tenant_id: str, link_id: str, now: datetime) -> bool:
    """Revoke a link of ``tenant_id`` (revoking one twice keeps the first time); False: no such link."""
    result = await conn.execute(
        portal_links.update()
        .where(portal_links.c.id == link_id, portal_links.c.tenant_id == tenant_id)
        .values(revoked_at=sa.func.coalesce(portal_links.c.revoked_at, now))
    )
    return result.rowcount > 0
