"""Relay sessions (``hookline listen``): a temporary endpoint whose deliveries travel over the
listener's own outbound connection instead of an HTTP request, so a developer's machine receives real
deliveries without a tunnel.

A session is an ordinary endpoint of its tenant whose URL is ``relay://<token>``, plus a row in
``relay_listeners`` naming the connection that holds it now. Everything else is the usual pipeline:
fan-out, signatures, the attempt log, retries, statistics. Only the last step differs, and it goes
through the store so that any worker can reach a listener connected to any API process:

    worker: post(request) -> relay_exchanges row -> API process holding the session: take() -> listener
    listener's answer -> API process: answer() -> row -> worker: collect() -> the attempt's outcome

While no listener is connected the endpoint is held (``HOLD_OFFLINE``): its deliveries wait without
spending attempts and go out in order when a listener attaches again. A session nobody has attached to
for a while is deleted with its endpoint (``expire``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.sealing import Keyring
from hookline.store import audit_log
from hookline.store import endpoint_state as states
from hookline.store.endpoint_state import HOLD_OFFLINE
from hookline.store.endpoints import RELAY_SCHEME, Endpoint, delete_endpoint, insert_endpoint
from hookline.store.schema import relay_exchanges, relay_listeners

SCHEME = RELAY_SCHEME
# How long a worker's request waits to be taken after its deadline before housekeeping removes it (the
# worker removes its own; this is for one that died waiting).
EXCHANGE_GRACE = timedelta(minutes=1)
# A holder proves it is alive (``heartbeat``) every ``HEARTBEAT``; one silent for ``STALE`` is gone.
HEARTBEAT = timedelta(seconds=10)
STALE = timedelta(seconds=60)


def relay_url(token: str) -> str:
    return SCHEME + token


def token_of(url: str) -> str | None:
    """The session token of a relay endpoint's URL; None for any other URL."""
    return url[len(SCHEME) :] if url.startswith(SCHEME) else None


def new_token() -> str:
    return "rl_" + secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    endpoint_id: int
    tenant_id: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """A signed request taken for a listener."""

    id: int
    event_id: str
    event_type: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    """What the listener said about an exchange: a status (and body), or why there is none."""

    status_code: int | None
    response_body: str | None
    error: str | None
    duration_ms: int | None


# --- sessions (the API process holding the connection) --------------------------------------------------


async def open_session(
    conn: AsyncConnection, *, tenant_id: str, connection: str, now: datetime, keyring: Keyring, **fields: Any
) -> tuple[Session, Endpoint]:
    """A new session held by ``connection``: its endpoint (``fields``: events, secret, description...)
    and its listener row."""
    token = new_token()
    endpoint = await insert_endpoint(
        conn, tenant_id=tenant_id, now=now, keyring=keyring, url=relay_url(token), active=True, **fields
    )
    await conn.execute(
        relay_listeners.insert().values(
            token=token,
            endpoint_id=endpoint.id,
            tenant_id=tenant_id,
            connection=connection,
            created_at=now,
            seen_at=now,
        )
    )
    return Session(token, endpoint.id, tenant_id), endpoint


async def find_session(conn: AsyncConnection, tenant_id: str, token: str) -> Session | None:
    """The tenant's session ``token`` (another tenant's is not found)."""
    row = (
        await conn.execute(
            sa.select(relay_listeners.c.endpoint_id).where(
                relay_listeners.c.token == token, relay_listeners.c.tenant_id == tenant_id
            )
        )
    ).first()
    return Session(token, row[0], tenant_id) if row else None


async def attach(conn: AsyncConnection, session: Session, connection: str, now: datetime) -> bool:
    """``connection`` holds the session from now on (a previous one is replaced: it stops being sent
    anything); its held deliveries are released. False if the session is gone."""
    # The state row first: every writer of a session takes it before its listener row, so two of them
    # never wait on each other in a circle.
    state = (await states.lock(conn, [session.endpoint_id])).get(session.endpoint_id)
    updated = await conn.execute(
        relay_listeners.update()
        .where(relay_listeners.c.token == session.token)
        .values(connection=connection, seen_at=now)
    )
    if state is None or updated.rowcount == 0:
        return False
    if state.hold == HOLD_OFFLINE:
        await states.save(conn, [state.changed(hold=None, work_at=now)], now)
    return True


async def detach(conn: AsyncConnection, session: Session, connection: str, now: datetime) -> bool:
    """``connection`` has gone. If it still held the session, the endpoint's deliveries are held until
    a listener attaches again (True); if another connection took over meanwhile, nothing changes."""
    state = (await states.lock(conn, [session.endpoint_id])).get(session.endpoint_id)
    updated = await conn.execute(
        relay_listeners.update()
        .where(relay_listeners.c.token == session.token, relay_listeners.c.connection == connection)
        .values(connection=None, seen_at=now)
    )
    if updated.rowcount == 0:
        return False
    if state is not None and state.hold is None:
        await states.save(conn, [state.changed(hold=HOLD_OFFLINE)], now)
    return True


async def heartbeat(conn: AsyncConnection, token: str, connection: str, now: datetime) -> bool:
    """``connection`` is alive and still holds session ``token`` (False: it was replaced or is gone)."""
    updated = await conn.execute(
        relay_listeners.update()
        .where(relay_listeners.c.token == token, relay_listeners.c.connection == connection)
        .values(seen_at=now)
    )
    return updated.rowcount > 0


async def take(
    conn: AsyncConnection, token: str, connection: str, now: datetime, limit: int
) -> list[Exchange]:
    """Up to ``limit`` requests waiting for session ``token``, oldest first, marked as taken by
    ``connection`` (each is taken once)."""
    waiting = (
        sa.select(relay_exchanges.c.id)
        .where(
            relay_exchanges.c.token == token,
            relay_exchanges.c.taken_by.is_(None),
            relay_exchanges.c.deadline > now,
            sa.exists().where(relay_listeners.c.token == token, relay_listeners.c.connection == connection),
        )
        .order_by(relay_exchanges.c.id)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        waiting = waiting.with_for_update(skip_locked=True)
    ids = list((await conn.execute(waiting)).scalars())
    if not ids:
        return []
    rows = await conn.execute(
        relay_exchanges.update()
        .where(relay_exchanges.c.id.in_(ids), relay_exchanges.c.taken_by.is_(None))
        .values(taken_by=connection)
        .returning(
            relay_exchanges.c.id,
            relay_exchanges.c.event_id,
            relay_exchanges.c.event_type,
            relay_exchanges.c.headers,
            relay_exchanges.c.body,
        )
    )
    taken = [Exchange(r.id, r.event_id, r.event_type, dict(r.headers), bytes(r.body)) for r in rows]
    return sorted(taken, key=lambda x: x.id)


async def answer(
    conn: AsyncConnection, exchange_id: int, connection: str, reply: Answer, now: datetime
) -> bool:
    """Keep the listener's ``reply`` to an exchange ``connection`` took. False if there is no such
    exchange waiting (answered already, given up by its worker, or taken by another connection)."""
    updated = await conn.execute(
        relay_exchanges.update()
        .where(
            relay_exchanges.c.id == exchange_id,
            relay_exchanges.c.taken_by == connection,
            relay_exchanges.c.answered_at.is_(None),
        )
        .values(
            answered_at=now,
            status_code=reply.status_code,
            response_body=reply.response_body,
            error=reply.error,
            duration_ms=reply.duration_ms,
        )
    )
    return updated.rowcount > 0


# --- exchanges (the worker making an attempt) ------------------------------------------------------------


async def post(
    conn: AsyncConnection,
    *,
    token: str,
    event_id: str,
    event_type: str,
    headers: dict[str, str],
    body: bytes,
    deadline: datetime,
) -> int:
    """A signed request for session ``token``, to be answered by ``deadline``; its exchange id."""
    query = (
        relay_exchanges.insert()
        .values(
            token=token,
            event_id=event_id,
            event_type=event_type,
            headers=headers,
            body=body,
            deadline=deadline,
        )
        .returning(relay_exchanges.c.id)
    )
    return int((await conn.execute(query)).scalar_one())


async def collect(conn: AsyncConnection, exchange_ids: Sequence[int]) -> dict[int, Answer]:
    """The answers that have come for ``exchange_ids``; those exchanges are removed."""
    if not exchange_ids:
        return {}
    rows = await conn.execute(
        relay_exchanges.delete()
        .where(relay_exchanges.c.id.in_(list(exchange_ids)), relay_exchanges.c.answered_at.is_not(None))
        .returning(
            relay_exchanges.c.id,
            relay_exchanges.c.status_code,
            relay_exchanges.c.response_body,
            relay_exchanges.c.error,
            relay_exchanges.c.duration_ms,
        )
    )
    return {r.id: Answer(r.status_code, r.response_body, r.error, r.duration_ms) for r in rows}


async def withdraw(conn: AsyncConnection, exchange_id: int) -> None:
    """The worker stopped waiting: an answer that comes later is not kept."""
    await conn.execute(relay_exchanges.delete().where(relay_exchanges.c.id == exchange_id))


# --- housekeeping ----------------------------------------------------------------------------------------


async def expire(conn: AsyncConnection, now: datetime, keep: timedelta) -> int:
    """Housekeeping: a holder silent for ``STALE`` is taken for gone (its API process died without
    saying so) and the session held; sessions no one has held for ``keep`` are deleted with their
    endpoints (deliveries, statistics); exchanges a dead worker left are removed. How many sessions
    went."""
    await conn.execute(relay_exchanges.delete().where(relay_exchanges.c.deadline < now - EXCHANGE_GRACE))
    silent = (
        await conn.execute(
            sa.select(
                relay_listeners.c.token,
                relay_listeners.c.endpoint_id,
                relay_listeners.c.tenant_id,
                relay_listeners.c.connection,
            )
            .where(relay_listeners.c.connection.is_not(None), relay_listeners.c.seen_at < now - STALE)
            .order_by(relay_listeners.c.endpoint_id)
        )
    ).all()
    for token, endpoint_id, tenant_id, connection in silent:
        await detach(conn, Session(token, endpoint_id, tenant_id), connection, now)
    stale = (
        await conn.execute(
            sa.select(relay_listeners.c.endpoint_id, relay_listeners.c.tenant_id)
            .where(relay_listeners.c.connection.is_(None), relay_listeners.c.seen_at < now - keep)
            .order_by(relay_listeners.c.endpoint_id)
        )
    ).all()
    for endpoint_id, tenant_id in stale:
        await delete_endpoint(conn, tenant_id, endpoint_id)
        gone = audit_log.Entry(
            "webhook.listen_expired", tenant_id, audit_log.SYSTEM, None, "webhook", str(endpoint_id)
        )
        await audit_log.record(conn, gone, now)
    return len(stale)
