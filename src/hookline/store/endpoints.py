"""Webhook endpoints: where a tenant wants its events delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store.schema import endpoints


@dataclass(frozen=True)
class Endpoint:
    id: int
    tenant_id: str
    url: str
    description: str
    secret: str
    events: list[str]
    channels: list[str] | None
    headers: dict[str, str]
    metadata: dict[str, Any]
    active: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    timeout_ms: int | None = None
    retry_schedule: list[float] | None = None
    max_in_flight: int | None = None
    previous_secrets: list[dict[str, str]] = field(default_factory=list)


async def insert_endpoint(conn: AsyncConnection, *, tenant_id: str, now: datetime, **fields: Any) -> Endpoint:
    values = {"tenant_id": tenant_id, "created_at": now, "updated_at": now, **fields}
    new_id = (await conn.execute(endpoints.insert().values(**values).returning(endpoints.c.id))).scalar_one()
    return Endpoint(id=new_id, disabled_reason=None, **values)


async def get_endpoint(conn: AsyncConnection, tenant_id: str, endpoint_id: int) -> Endpoint | None:
    query = endpoints.select().where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
    row = (await conn.execute(query)).mappings().first()
    return Endpoint(**row) if row else None


async def list_endpoints(
    conn: AsyncConnection, tenant_id: str, *, after: int | None, limit: int
) -> list[Endpoint]:
    query = endpoints.select().where(endpoints.c.tenant_id == tenant_id).order_by(endpoints.c.id).limit(limit)
    if after is not None:
        query = query.where(endpoints.c.id > after)
    return [Endpoint(**row) for row in (await conn.execute(query)).mappings()]


async def update_endpoint(
    conn: AsyncConnection, tenant_id: str, endpoint_id: int, changes: dict[str, Any], now: datetime
) -> bool:
    query = (
        endpoints.update()
        .where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
        .values(**changes, updated_at=now)
    )
    return (await conn.execute(query)).rowcount > 0


async def delete_endpoint(conn: AsyncConnection, tenant_id: str, endpoint_id: int) -> bool:
    query = endpoints.delete().where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
    return (await conn.execute(query)).rowcount > 0


@dataclass(frozen=True)
class Subscription:
    endpoint_id: int
    events: list[str]
    channels: list[str] | None


async def active_subscriptions(conn: AsyncConnection, tenant_id: str) -> list[Subscription]:
    query = sa.select(endpoints.c.id, endpoints.c.events, endpoints.c.channels).where(
        endpoints.c.tenant_id == tenant_id, endpoints.c.active.is_(True)
    )
    return [Subscription(*row) for row in await conn.execute(query)]
