"""Tenants (the platform's customers) and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.ids import new_id
from hookline.store.schema import api_keys, attempt_rollups, tenants


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    retention_seconds: int | None = None  # None: the service's HOOKLINE_RETENTION


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime


def hash_key(key: str) -> str:
    """Keys are 256-bit random tokens, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> str:
    return "hk_" + secrets.token_urlsafe(32)


async def insert_tenant(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    name: str,
    metadata: dict[str, Any],
    now: datetime,
    retention_seconds: int | None = None,
) -> Tenant:
    row = Tenant(tenant_id or new_id("tn"), name, metadata, now, now, retention_seconds)
    await conn.execute(
        tenants.insert().values(
            id=row.id,
            name=name,
            metadata=metadata,
            retention_seconds=retention_seconds,
            created_at=now,
            updated_at=now,
        )
    )
    return row


async def get_tenant(conn: AsyncConnection, tenant_id: str) -> Tenant | None:
    row = (await conn.execute(tenants.select().where(tenants.c.id == tenant_id))).mappings().first()
    return Tenant(**row) if row else None


async def list_tenants(conn: AsyncConnection, *, after: str | None, limit: int) -> list[Tenant]:
    query = tenants.select().order_by(tenants.c.id).limit(limit)
    if after is not None:
        query = query.where(tenants.c.id > after)
    return [Tenant(**row) for row in (await conn.execute(query)).mappings()]


async def update_tenant(
    conn: AsyncConnection, tenant_id: str, changes: dict[str, Any], now: datetime
) -> bool:
    result = await conn.execute(
        tenants.update().where(tenants.c.id == tenant_id).values(**changes, updated_at=now)
    )
    return result.rowcount > 0


async def delete_tenant(conn: AsyncConnection, tenant_id: str) -> bool:
    """Deletes the tenant and, through ON DELETE CASCADE, everything it owns (and its statistics, which
    have no foreign key: see ``attempt_rollups``)."""
    result = await conn.execute(tenants.delete().where(tenants.c.id == tenant_id))
    if result.rowcount == 0:
        return False
    await conn.execute(attempt_rollups.delete().where(attempt_rollups.c.tenant_id == tenant_id))
    return True


async def insert_api_key(
    conn: AsyncConnection, *, tenant_id: str, name: str, now: datetime
) -> tuple[ApiKey, str]:
    """Returns the key record and the key itself, which is never stored and cannot be shown again."""
    key = generate_api_key()
    record = ApiKey(new_id("key"), tenant_id, name, key[:10], now)
    await conn.execute(
        api_keys.insert().values(
            id=record.id,
            tenant_id=tenant_id,
            name=name,
            prefix=record.prefix,
            key_hash=hash_key(key),
            created_at=now,
        )
    )
    return record, key


async def list_api_keys(conn: AsyncConnection, tenant_id: str) -> list[ApiKey]:
    query = (
        sa.select(
            api_keys.c.id, api_keys.c.tenant_id, api_keys.c.name, api_keys.c.prefix, api_keys.c.created_at
        )
        .where(api_keys.c.tenant_id == tenant_id)
        .order_by(api_keys.c.id)
    )
    return [ApiKey(**row) for row in (await conn.execute(query)).mappings()]


async def delete_api_key(conn: AsyncConnection, tenant_id: str, key_id: str) -> bool:
    result = await conn.execute(
        api_keys.delete().where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id)
    )
    return result.rowcount > 0


async def tenant_for_key_hash(conn: AsyncConnection, key_hash: str) -> str | None:
    """The tenant a key belongs to, or None. Looked up by hash: the clear key never reaches the database."""
    query = sa.select(api_keys.c.tenant_id).where(api_keys.c.key_hash == key_hash)
    return (await conn.execute(query)).scalar_one_or_none()
