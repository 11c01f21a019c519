"""Webhook endpoints: where a tenant wants its events delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store import endpoint_state
from hookline.store.endpoint_state import HOLD_UNVERIFIED, EndpointState
from hookline.store.schema import attempt_rollups, endpoints

# The URL scheme of a ``hookline listen`` session's endpoint (``hookline.store.relay``).
RELAY_SCHEME = "relay://"


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
    rate_limit: float | None = None
    circuit_breaker: dict[str, float] | None = None
    signing_key: str | None = None  # ed25519 ``whsk_...`` (v1a signatures); None: HMAC only


async def insert_endpoint(
    conn: AsyncConnection, *, tenant_id: str, now: datetime, verify: bool = False, **fields: Any
) -> Endpoint:
    """A new endpoint and its scheduler state; ``verify``: held until its verification handshake passes."""
    values = {"tenant_id": tenant_id, "created_at": now, "updated_at": now, **fields}
    new_id = (await conn.execute(endpoints.insert().values(**values).returning(endpoints.c.id))).scalar_one()
    state = EndpointState(
        new_id,
        tenant_id,
        hold=HOLD_UNVERIFIED if verify else None,
        verification="pending" if verify else "not_required",
    )
    await endpoint_state.create(conn, state, now)
    return Endpoint(id=new_id, disabled_reason=None, **values)


async def get_endpoint(conn: AsyncConnection, tenant_id: str, endpoint_id: int) -> Endpoint | None:
    query = endpoints.select().where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
    row = (await conn.execute(query)).mappings().first()
    return Endpoint(**row) if row else None


async def list_endpoints(
    conn: AsyncConnection, tenant_id: str, *, after: int | None, limit: int, relays: bool = True
) -> list[Endpoint]:
    """``relays=False``: without the temporary endpoints of ``hookline listen`` sessions."""
    query = endpoints.select().where(endpoints.c.tenant_id == tenant_id).order_by(endpoints.c.id).limit(limit)
    if not relays:
        query = query.where(~endpoints.c.url.startswith(RELAY_SCHEME, autoescape=True))
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
    # The scheduler's row first, as a claim or a recording takes it (before any delivery row): the
    # cascade below then never waits on one of them while holding what it needs.
    await endpoint_state.lock(conn, [endpoint_id])
    query = endpoints.delete().where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
    if (await conn.execute(query)).rowcount == 0:
        return False
    # Its statistics (no foreign key: see ``attempt_rollups``).
    await conn.execute(
        attempt_rollups.delete().where(
            attempt_rollups.c.tenant_id == tenant_id, attempt_rollups.c.endpoint_id == endpoint_id
        )
    )
    return True


@dataclass(frozen=True)
class Subscription:
    endpoint_id: int
    events: list[str]
    channels: list[str] | None
