"""Service-wide values kept in the database (the generated admin key's hash)."""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store.schema import service_meta
from hookline.store.tenants import hash_key

ADMIN_KEY_HASH = "admin_key_hash"


async def get_value(conn: AsyncConnection, key: str) -> str | None:
    query = sa.select(service_meta.c.value).where(service_meta.c.key == key)
    return (await conn.execute(query)).scalar_one_or_none()


async def set_value(conn: AsyncConnection, key: str, value: str, now: datetime) -> None:
    updated = await conn.execute(
        service_meta.update().where(service_meta.c.key == key).values(value=value, updated_at=now)
    )
    if updated.rowcount == 0:
        await conn.execute(service_meta.insert().values(key=key, value=value, updated_at=now))


def generate_admin_key() -> str:
    return "hk_admin_" + secrets.token_urlsafe(32)


async def ensure_admin_key_hash(conn: AsyncConnection, now: datetime) -> tuple[str, str | None]:
    """The stored admin key hash, creating a key on first start. Returns (hash, new key or None);
    the new key is shown once to the operator and never stored in clear."""
    stored = await get_value(conn, ADMIN_KEY_HASH)
    if stored is not None:
        return stored, None
    key = generate_admin_key()
    await set_value(conn, ADMIN_KEY_HASH, hash_key(key), now)
    return hash_key(key), key
