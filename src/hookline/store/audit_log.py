"""The audit log: who changed what, when, and from where.

An entry is written by ``record`` in the caller's transaction, the one that makes the change, so it
exists exactly when the change committed (a secret shown is recorded before it is shown: if the entry
cannot be written, the secret is not shown). Entries never hold a secret: ``changes`` is built by
``hookline.audit`` with secret values replaced by ``[redacted]`` (tests read the raw table for any
secret). Read newest first by ``list_entries``; removed after
``HOOKLINE_AUDIT_RETENTION`` by the workers' housekeeping (``expire``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.store.schema import audit_log

EXPIRE_BATCH = 5000

# Who made a change that no API key made.
CLI = "cli"  # a `hookline` command run on the server (e.g. `hookline secrets rotate-key`)
SYSTEM = "system"  # hookline itself (e.g. housekeeping deleting an abandoned `hookline listen` session)


@dataclass(frozen=True, slots=True)
class Entry:
    """One change, as recorded (``id`` and ``at`` are set by ``record``)."""

    action: str  # e.g. "webhook.updated"; see hookline.audit for the list
    tenant_id: str | None  # the tenant it concerns; None: the whole service
    actor: str  # the API key's id, "admin", "cli" or "system"
    client_address: str | None  # where the request came from (None: not over HTTP)
    resource_type: str  # "tenant", "api_key", "webhook", "delivery", "event_type", "secret_key"
    resource_id: str | None
    changes: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    at: datetime | None = None


async def record(conn: AsyncConnection, entry: Entry, now: datetime) -> None:
    """Write ``entry`` in the caller's transaction."""
    await conn.execute(
        audit_log.insert().values(
            at=now,
            tenant_id=entry.tenant_id,
            actor=entry.actor,
            client_address=entry.client_address,
            action=entry.action,
            resource_type=entry.resource_type,
            resource_id=entry.resource_id,
            changes=entry.changes,
        )
    )


@dataclass(frozen=True, slots=True)
class Filters:
    action: str | None = None  # exact, or a prefix ending in ".*" ("webhook.*")
    resource_type: str | None = None
    resource_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_entries(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    all_tenants: bool,
    filters: Filters,
    not_before: datetime | None = None,
    before: int | None = None,
    limit: int,
) -> list[Entry]:
    """Entries newest first: ``tenant_id``'s, or with ``all_tenants`` every one (service-wide ones
    included). ``not_before``: none older (a tenant sees nothing from before it was created, such as a
    deleted namesake's history). ``before``: the cursor, an entry id."""
    c = audit_log.c
    conditions: list[sa.ColumnElement[bool]] = []
    if not all_tenants:
        conditions.append(c.tenant_id == tenant_id)
    if not_before is not None:
        conditions.append(c.at >= not_before)
    if before is not None:
        conditions.append(c.id < before)
    if filters.action is not None:
        if filters.action.endswith(".*"):
            prefix = filters.action[:-1]
            conditions.append(sa.func.substr(c.action, 1, len(prefix)) == prefix)
        else:
            conditions.append(c.action == filters.action)
    if filters.resource_type is not None:
        conditions.append(c.resource_type == filters.resource_type)
    if filters.resource_id is not None:
        conditions.append(c.resource_id == filters.resource_id)
    if filters.actor is not None:
        conditions.append(c.actor == filters.actor)
    if filters.since is not None:
        conditions.append(c.at >= filters.since)
    if filters.until is not None:
        conditions.append(c.at < filters.until)
    rows = await conn.execute(sa.select(audit_log).where(*conditions).order_by(c.id.desc()).limit(limit))
    return [
        Entry(
            id=r.id,
            at=r.at,
            tenant_id=r.tenant_id,
            actor=r.actor,
            client_address=r.client_address,
            action=r.action,
            resource_type=r.resource_type,
            resource_id=r.resource_id,
            changes=r.changes,
        )
        for r in rows
    ]


async def expire(conn: AsyncConnection, older_than: datetime) -> int:
    """Housekeeping: delete up to ``EXPIRE_BATCH`` entries from before ``older_than``; how many."""
    oldest = (
        sa.select(audit_log.c.id)
        .where(audit_log.c.at < older_than)
        .order_by(audit_log.c.id)
        .limit(EXPIRE_BATCH)
        .scalar_subquery()
    )
    result = await conn.execute(audit_log.delete().where(audit_log.c.id.in_(oldest)))
    return result.rowcount or 0
