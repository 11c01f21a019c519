"""The outbox of operational events (``notices``), and the operator's tenant and webhook.

A notice is written in the transaction that makes the change it reports (``insert``; the worker's batch
of answers writes its own with ``PG_INSERT``), so it exists exactly when the change committed.
``publish`` turns a batch of them into events and deletes them, in one transaction: each is published
once, even with several workers, and none is lost if a worker dies. See ``hookline.notices``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.catalog import OPERATIONAL_EVENTS
from hookline.ids import new_id
from hookline.store import events
from hookline.store.endpoints import delete_endpoint, insert_endpoint, seal_credentials
from hookline.store.engine import Store
from hookline.store.events import NewEvent
from hookline.store.schema import endpoints, notices, tenants

# The operator's tenant: an id the API cannot create (":" is outside its pattern), so it never collides
# with a platform's tenant. It holds the operator webhook, and a copy of every operational event.
OPERATOR_TENANT = "hookline:operator"
OPERATOR_WEBHOOK = "the operator webhook (HOOKLINE_OPERATOR_WEBHOOK_URL)"
PUBLISH_BATCH = 200


@dataclass(frozen=True, slots=True)
class Notice:
    tenant_id: str
    webhook_id: int | None  # the endpoint it is about
    event_type: str
    data: dict[str, Any]
    exclude_subject: bool  # never delivered to the endpoint it is about (it is the one in trouble)


def raised_for(tenant_id: str) -> bool:
    """Whether changes to this tenant's endpoints raise notices (not the operator's own: no loops)."""
    return tenant_id != OPERATOR_TENANT


def _row(n: Notice, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": n.tenant_id,
        "webhook_id": n.webhook_id,
        "event_type": n.event_type,
        "data": n.data,
        "exclude_subject": n.exclude_subject,
        "created_at": now,
    }


async def insert(conn: AsyncConnection, found: Sequence[Notice], now: datetime) -> None:
    """Raise ``found`` in the caller's transaction."""
    if found:
        await conn.execute(notices.insert(), [_row(n, now) for n in found])


# The worker's recording transaction on PostgreSQL (asyncpg, no SQLAlchemy): every notice of a batch in
# one statement.
PG_INSERT = """
INSERT INTO notices (tenant_id, webhook_id, event_type, data, exclude_subject, created_at)
SELECT t, w, e, d::jsonb, x, $6
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bool[]) AS u(t, w, e, d, x)
"""


def pg_insert_args(found: Sequence[Notice], now: datetime) -> tuple[Any, ...]:
    return (
        [n.tenant_id for n in found],
        [n.webhook_id for n in found],
        [n.event_type for n in found],
        [orjson.dumps(n.data).decode() for n in found],
        [n.exclude_subject for n in found],
        now,
    )


async def publish(store: Store, limit: int = PUBLISH_BATCH) -> list[Notice]:
    """Publish the oldest waiting notices (at most ``limit``): each becomes an event of the operator's
    tenant (its alert log) and, when one of the tenant's endpoints receives it, of its tenant (a
    tenant's event log is not filled with alerts nobody subscribed to), with the same id and the time
    it was raised; and is deleted, all in one transaction. Returns what was published."""
    async with store.read() as conn:  # most polls find none: no write lock, no transaction for that
        if (await conn.execute(sa.select(notices.c.id).limit(1))).first() is None:
            return []
    query = sa.select(notices).order_by(notices.c.id).limit(limit)
    if not store.is_sqlite:
        query = query.with_for_update(skip_locked=True)  # several workers publish different notices
    async with store.write() as conn:
        rows = (await conn.execute(query)).mappings().all()
        if not rows:
            return []
        await _ensure_operator_tenant(conn, rows[0]["created_at"])
        named = {r["tenant_id"] for r in rows}
        there = set((await conn.execute(sa.select(tenants.c.id).where(tenants.c.id.in_(named)))).scalars())
        entries: list[tuple[str, NewEvent, datetime]] = []
        for r in rows:
            event_id = new_id("evt")
            exclude = r["webhook_id"] if r["exclude_subject"] else None
            if r["tenant_id"] in there:
                tenant_copy = NewEvent(
                    event_id, False, r["event_type"], r["data"], exclude_endpoint=exclude, only_if_routed=True
                )
                entries.append((r["tenant_id"], tenant_copy, r["created_at"]))
            entries.append(
                (OPERATOR_TENANT, NewEvent(event_id, False, r["event_type"], r["data"]), r["created_at"])
            )
        created = await events.ingest_within(conn, store.is_sqlite, entries)
        await conn.execute(notices.delete().where(notices.c.id.in_([r["id"] for r in rows])))
    if created:
        store.announce_new_work()
    return [
        Notice(r["tenant_id"], r["webhook_id"], r["event_type"], r["data"], r["exclude_subject"])
        for r in rows
    ]


async def _ensure_operator_tenant(conn: AsyncConnection, now: datetime) -> None:
    found = await conn.execute(sa.select(tenants.c.id).where(tenants.c.id == OPERATOR_TENANT))
    if found.first() is None:
        await conn.execute(
            tenants.insert().values(
                id=OPERATOR_TENANT, name="hookline operator", metadata={}, created_at=now, updated_at=now
            )
        )


async def ensure_operator_webhook(store: Store, url: str | None, secret: str | None, now: datetime) -> None:
    """Make the operator's tenant hold exactly the webhook the settings name (none without a URL),
    subscribed to every operational event. Its other settings (active, options) are left as they are.
    Without a URL the tenant is not created here: the first notice published creates it."""
    async with store.write() as conn:
        if url is not None:
            await _ensure_operator_tenant(conn, now)
        query = (
            sa.select(endpoints.c.id).where(endpoints.c.tenant_id == OPERATOR_TENANT).order_by(endpoints.c.id)
        )
        existing = list((await conn.execute(query)).scalars())
        keep = existing[0] if existing and url else None
        for endpoint_id in existing:
            if endpoint_id != keep:
                await delete_endpoint(conn, OPERATOR_TENANT, endpoint_id)
        if url is None or secret is None:
            return
        wanted: dict[str, Any] = {"url": url, "secret": secret, "events": sorted(OPERATIONAL_EVENTS)}
        if keep is not None:
            sealed = seal_credentials(store.keyring, OPERATOR_TENANT, wanted)
            await conn.execute(
                endpoints.update().where(endpoints.c.id == keep).values(**sealed, updated_at=now)
            )
            return
        await insert_endpoint(
            conn,
            tenant_id=OPERATOR_TENANT,
            now=now,
            keyring=store.keyring,
            description=OPERATOR_WEBHOOK,
            channels=None,
            headers={},
            metadata={},
            active=True,
            **wanted,
        )
