"""Tenants (the platform's customers) and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    theme: dict[str, Any] = field(default_factory=dict)  # the dashboard's look (hookline.api.theme)


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime
    scopes: tuple[str, ...] = ("tenant:manage",)  # as granted (hookline.api.key_policy), not implied ones
    expires_at: datetime | None = None
    allowed_ips: tuple[str, ...] | None = None  # CIDRs; None: any address
    rate_limit: float | None = None  # requests per second
    last_used_at: datetime | None = None

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> ApiKey:
        values = {name: row[name] for name in _KEY_FIELDS}
        allowed = values["allowed_ips"]
        return cls(
            **{
                **values,
                "scopes": tuple(values["scopes"].split()),
                "allowed_ips": tuple(allowed) if allowed is not None else None,
            }
        )


_KEY_FIELDS = (
    "id",
    "tenant_id",
    "name",
    "prefix",
    "created_at",
    "scopes",
    "expires_at",
    "allowed_ips",
    "rate_limit",
    "last_used_at",
)
_KEY_COLUMNS = [api_keys.c[name] for name in _KEY_FIELDS]  # every column but the hash


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
    theme: dict[str, Any] | None = None,
) -> Tenant:
    row = Tenant(tenant_id or new_id("tn"), name, metadata, now, now, retention_seconds, theme or {})
    await conn.execute(
        tenants.insert().values(
            id=row.id,
            name=name,
            metadata=metadata,
            retention_seconds=retention_seconds,
            theme=row.theme,
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
    conn: AsyncConnection,
    *,
    tenant_id: str,
    name: str,
    now: datetime,
    scopes: tuple[str, ...] = ("tenant:manage",),
    expires_at: datetime | None = None,
    allowed_ips: tuple[str, ...] | None = None,
    rate_limit: float | None = None,
) -> tuple[ApiKey, str]:
    """Returns the key record and the key itself, which is never stored and cannot be shown again."""
    key = generate_api_key()
    record = ApiKey(
        new_id("key"), tenant_id, name, key[:10], now, scopes, expires_at, allowed_ips, rate_limit
    )
    await conn.execute(
        api_keys.insert().values(
            id=record.id,
            tenant_id=tenant_id,
            name=name,
            prefix=record.prefix,
            key_hash=hash_key(key),
            created_at=now,
            scopes=" ".join(scopes),
            expires_at=expires_at,
            allowed_ips=list(allowed_ips) if allowed_ips is not None else None,
            rate_limit=rate_limit,
        )
    )
    return record, key


async def list_api_keys(conn: AsyncConnection, tenant_id: str) -> list[ApiKey]:
    query = sa.select(*_KEY_COLUMNS).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.id)
    return [ApiKey.from_row(row) for row in (await conn.execute(query)).mappings()]


async def delete_api_key(conn: AsyncConnection, tenant_id: str, key_id: str) -> bool:
    result = await conn.execute(
        api_keys.delete().where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id)
    )
    return result.rowcount > 0


async def get_api_key(conn: AsyncConnection, key_id: str) -> ApiKey | None:
    """The key with this id (a dashboard session names the key it was opened with), or None."""
    row = (await conn.execute(sa.select(*_KEY_COLUMNS).where(api_keys.c.id == key_id))).mappings().first()
    return ApiKey.from_row(row) if row is not None else None


async def key_for_hash(conn: AsyncConnection, key_hash: str) -> ApiKey | None:
    """The key with this hash, or None. Looked up by hash (a unique index): the clear key never reaches
    the database, and the lookup's timing can tell at most something about a SHA-256 of a random
    256-bit token, which is no help in guessing one."""
    query = sa.select(*_KEY_COLUMNS).where(api_keys.c.key_hash == key_hash)
    row = (await conn.execute(query)).mappings().first()
    return ApiKey.from_row(row) if row is not None else None


async def record_key_use(conn: AsyncConnection, used: Mapping[str, datetime]) -> None:
    """Set each key's ``last_used_at`` (key id -> when), never back in time; one statement for all."""
    if not used:
        return
    when = sa.bindparam("used_at", type_=api_keys.c.last_used_at.type)
    statement = (
        api_keys.update()
        .where(
            api_keys.c.id == sa.bindparam("key_id"),
            sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < when),
        )
        .values(last_used_at=when)
    )
    await conn.execute(statement, [{"key_id": k, "used_at": t} for k, t in sorted(used.items())])
