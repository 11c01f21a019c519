"""/v1/listen: the server end of ``hookline listen``, a WebSocket that makes a developer's machine a
receiver without a tunnel (see ``hookline.store.relay`` for how deliveries reach it).

The client connects with a tenant key holding ``tenant:manage`` (``Authorization: Bearer``: a session
is a webhook, and its secret comes with it), the events it wants
(``?events=message.received,order.*``, default all) or the session it resumes (``?session=rl_...``).
A refusal is the API's usual error envelope with its status, sent instead of the upgrade. Then, as JSON
text messages::

    server: {"type": "session", "session": "rl_...", "webhook_id": 7, "secret": "whsec_...",
             "events": [...], "resumed": false}
    server: {"type": "delivery", "id": 41, "event_id": "...", "event_type": "...",
             "headers": {...}, "body": "<the exact signed body>"}
    client: {"type": "answer", "id": 41, "status": 200, "body": "...", "duration_ms": 12}
    client: {"type": "answer", "id": 41, "error": "connection refused"}      (no answer from its app)
    server: {"type": "error", "error": "..."}                                 (a message it cannot use)

A session outlives its connection: deliveries wait (held) while no listener is connected and go out
when one resumes the session. A second connection to the same session replaces the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any, TypeGuard

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from hookline.api.access import Manage
from hookline.api.audit import Actor, Who
from hookline.api.auth import resolve_tenant
from hookline.api.envelope import ApiError, error, not_found
from hookline.api.errors import database_unavailable
from hookline.api.routes.webhooks import subscription_events
from hookline.api.services import Services
from hookline.signing import generate_secret
from hookline.store import audit_log, relay
from hookline.store.endpoints import Endpoint, get_endpoint

log = structlog.get_logger("hookline.listen")

router = APIRouter(tags=["listen"])

TAKE_AT_ONCE = 16
# Looking for requests to pass on: soon after the last one, then less often while it is quiet.
FIRST_LOOK = 0.02
SLOWEST_LOOK = 0.25
MAX_ERROR_CHARS = 500
# Close codes (4000-4999 are the application's): the listener stops on these two, reconnects on others.
SESSION_GONE = 4404
TAKEN_OVER = 4409


@router.websocket("/v1/listen")
async def listen(websocket: WebSocket, principal: Manage, who: Who) -> None:
    # A refused key (or a database away while it is looked up) is answered by the app's error handlers,
    # as the error envelope instead of the upgrade, before this runs.
    services: Services = websocket.app.state.services
    params = websocket.query_params
    try:
        tenant_id = await resolve_tenant(services, principal, params.get("tenant_id"))
        token = params.get("session")
        session = await _find(services, tenant_id, token) if token else None
        events = None if session else await _events(services, params.get("events"))
    except ApiError as exc:
        await websocket.send_denial_response(error(exc.code, exc.error, exc.headers))
        return
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning("database unavailable", path="/v1/listen", error=type(exc).__name__)
        unavailable = error(503, "the database is unavailable; try again shortly", {"Retry-After": "5"})
        await websocket.send_denial_response(unavailable)
        return
    await websocket.accept()
    connection = secrets.token_hex(8)
    try:
        opened = await _open(services, tenant_id, session, events, connection, who)
    except Exception as exc:  # the store is unavailable: say so; the listener tries again
        log.warning("relay session could not be opened", error=type(exc).__name__)
        await _close(websocket, 1011, "the session could not be opened; try again")
        return
    if opened is None:
        await _close(websocket, SESSION_GONE, f"session '{token}' not found")
        return
    session, endpoint, resumed = opened
    services.store.announce_new_work()  # what was held while no one listened is due now
    log.info("listener attached", webhook_id=endpoint.id, resumed=resumed)
    await websocket.send_text(
        _json(
            {
                "type": "session",
                "session": session.token,
                "webhook_id": endpoint.id,
                "secret": endpoint.secret,
                "events": endpoint.events,
                "resumed": resumed,
            }
        )
    )
    try:
        await _serve(services, websocket, session, connection)
    finally:
        with contextlib.suppress(Exception):  # housekeeping takes over a listener left attached
            async with services.store.write() as conn:
                await relay.detach(conn, session, connection, services.now())
        log.info("listener detached", webhook_id=endpoint.id)


async def _open(
    services: Services,
    tenant_id: str,
    session: relay.Session | None,
    events: list[str] | None,
    connection: str,
    who: Actor,
) -> tuple[relay.Session, Endpoint, bool] | None:
    """A new session held by ``connection``, or ``session`` attached to it (None if it is gone now);
    with its endpoint and whether it was resumed."""
    now = services.now()
    async with services.store.write() as conn:
        if session is None:
            session, endpoint = await relay.open_session(
                conn,
                tenant_id=tenant_id,
                connection=connection,
                now=now,
                keyring=services.store.keyring,
                description="hookline listen",
                secret=generate_secret(),
                events=events,
                channels=None,
                headers={},
                metadata={},
            )
            entry = who.entry("webhook.listen_opened", tenant_id, "webhook", endpoint.id, {"events": events})
            await audit_log.record(conn, entry, now)
            return session, endpoint, False
        found = await get_endpoint(conn, tenant_id, session.endpoint_id, keyring=services.store.keyring)
        if found is None or not await relay.attach(conn, session, connection, now):
            return None
        return session, found, True


async def _find(services: Services, tenant_id: str, token: str) -> relay.Session:
    async with services.store.read() as conn:
        session = await relay.find_session(conn, tenant_id, token)
    if session is None:
        raise not_found(f"session '{token}' not found")
    return session


async def _events(services: Services, raw: str | None) -> list[str]:
    """``?events=a,b.*`` (default all), checked as a webhook's ``events`` are."""
    return await subscription_events(services, [p.strip() for p in (raw or "*").split(",") if p.strip()])


async def _serve(services: Services, websocket: WebSocket, session: relay.Session, connection: str) -> None:
    """Pass requests on and answers back until the listener goes or another connection replaces it."""
    passing = asyncio.create_task(_pass_on(services, websocket, session, connection))
    reading = asyncio.create_task(_read_answers(services, websocket, connection))
    try:
        done, _ = await asyncio.wait({passing, reading}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (passing, reading):
            task.cancel()
        await asyncio.gather(passing, reading, return_exceptions=True)
    if passing in done:
        problem = passing.exception()
        if problem is None:
            await _close(websocket, TAKEN_OVER, "another listener took over this session")
        else:  # the store failed: the listener reconnects and resumes
            log.warning("relay session failed", error=type(problem).__name__)
            await _close(websocket, 1011, "the relay failed; reconnect to resume")


async def _pass_on(services: Services, websocket: WebSocket, session: relay.Session, connection: str) -> None:
    """Returns when another connection holds the session."""
    pause = FIRST_LOOK
    beat = 0.0
    while True:
        now = services.now()
        async with services.store.write() as conn:
            if time.monotonic() - beat >= relay.HEARTBEAT.total_seconds():
                if not await relay.heartbeat(conn, session.token, connection, now):
                    return
                beat = time.monotonic()
            taken = await relay.take(conn, session.token, connection, now, TAKE_AT_ONCE)
        for exchange in taken:
            await websocket.send_text(
                _json(
                    {
                        "type": "delivery",
                        "id": exchange.id,
                        "event_id": exchange.event_id,
                        "event_type": exchange.event_type,
                        "headers": exchange.headers,
                        "body": exchange.body.decode("utf-8", errors="replace"),
                    }
                )
            )
        pause = FIRST_LOOK if taken else min(pause * 2, SLOWEST_LOOK)
        await asyncio.sleep(pause)


async def _read_answers(services: Services, websocket: WebSocket, connection: str) -> None:
    """Returns when the listener disconnects."""
    limit = services.settings.response_body_limit
    while True:
        try:
            text = await websocket.receive_text()
        except (WebSocketDisconnect, KeyError):  # KeyError: a binary frame has no "text"
            return
        try:
            exchange_id, reply = parse_answer(text, limit)
        except ValueError as exc:
            await websocket.send_text(_json({"type": "error", "error": str(exc)}))
            continue
        async with services.store.write() as conn:
            await relay.answer(conn, exchange_id, connection, reply, services.now())


def parse_answer(text: str, body_limit: int) -> tuple[int, relay.Answer]:
    """A listener's answer message, checked; ``ValueError`` says what is wrong with it."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("a message must be a JSON object") from None
    if not isinstance(message, dict) or message.get("type") != "answer":
        raise ValueError('the only message a listener sends is {"type": "answer", ...}')
    exchange_id = message.get("id")
    if not _is_int(exchange_id) or exchange_id < 1:
        raise ValueError("'id' must be the positive integer of a delivery sent to you")
    status = message.get("status")
    if status is not None and (not _is_int(status) or not 100 <= status <= 599):
        raise ValueError("'status' must be an HTTP status code (100-599) or null")
    body = message.get("body")
    if body is not None and not isinstance(body, str):
        raise ValueError("'body' must be a string or null")
    problem = message.get("error")
    if problem is not None and not isinstance(problem, str):
        raise ValueError("'error' must be a string or null")
    duration = message.get("duration_ms")
    if duration is not None and (not _is_int(duration) or duration < 0):
        raise ValueError("'duration_ms' must be a non-negative integer or null")
    if status is None and not problem:
        problem = "the listener gave no status"
    reply = relay.Answer(
        status_code=status,
        response_body=body[:body_limit].replace("\x00", "\ufffd") if body is not None else None,
        error=problem[:MAX_ERROR_CHARS].replace("\x00", "\ufffd") if problem else None,
        duration_ms=min(duration, 2**31 - 1) if duration is not None else None,
    )
    return exchange_id, reply


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**62) < value < 2**62


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # it may be gone already
        await websocket.send_text(_json({"type": "error", "error": reason}))
        await websocket.close(code, reason)
