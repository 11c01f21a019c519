"""Event ingest: what ``POST /v1/events`` and ``POST /v1/events/batch`` do, and a lean way in for them.

Both routes are declared in ``hookline.api.routes.events`` (so FastAPI documents them in the OpenAPI
document and answers every malformed request), but an ordinary request never reaches FastAPI:
``FastIngest``, a pure ASGI middleware, takes POSTs to exactly those two paths, takes the body as the
edge's strict decoder left it (``hookline.api.jsonbody``: the value FastAPI's routes get too) and checks
it by hand against the same rules as the pydantic models. A request that passes goes
straight to the shared handlers below (``accept_event``, ``accept_batch``), the same ones the FastAPI
routes call, after the same authentication and the scope those routes declare. Anything it does not
recognise as well-formed (not JSON, a missing or extra field, a wrong type, a bad channel, an over-long
header...) is handed to FastAPI unchanged, body included, so every
error keeps its exact status code and text. FastAPI's dependency solving, the pydantic models and the
response classes cost more CPU than the rest of a single-event request together.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hookline import metrics, tracing
from hookline.api.access import RequireScope
from hookline.api.auth import CHALLENGE, Principal, principal_for, resolve_tenant
from hookline.api.envelope import ApiError, bad_request, error
from hookline.api.errors import database_error, database_unavailable_error, unexpected_error
from hookline.api.jsonbody import SCOPE_KEY
from hookline.api.routes.webhooks import _check_channels
from hookline.api.services import Services
from hookline.catalog import OPERATIONAL_EVENTS, first_schema_error, suggest
from hookline.ids import new_id
from hookline.javascript_json import MAX_SAFE_INTEGER, unsafe_integer
from hookline.store import events as store
from hookline.store.events import Accepted, NewEvent
from hookline.store.tenants import get_tenant

EVENT_ID = r"^[A-Za-z0-9_.:-]{1,200}$"
MAX_BATCH = 1000
MAX_IDEMPOTENCY_KEY = 200

_EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}")  # EVENT_ID, matched with fullmatch as pydantic does
_SINGLE_FIELDS = frozenset({"event", "data", "id", "channels", "tenant_id"})
_BATCH_FIELDS = frozenset({"events", "tenant_id"})
_ITEM_FIELDS = frozenset({"event", "data", "id", "channels"})

# --- what both ways in share ------------------------------------------------------------------------


async def check_event(services: Services, name: str, data: dict[str, Any], where: str = "") -> None:
    """Raise a 400 naming the problem if ``name`` is unknown or ``data`` breaks its schema."""
    event_type = await services.registry.get(name)
    if event_type is None:
        hints = suggest(name, await services.registry.names())
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise bad_request(f"{where}unknown event type '{name}'{hint}")
    if problem := first_schema_error(event_type.schema, data):
        raise bad_request(f"{where}{problem}")
    if services.settings.json_safe_integers and (found := unsafe_integer(data)) is not None:
        path, number = found
        raise bad_request(
            f"{where}{path}: {number} is beyond the integers JavaScript reads exactly "
            f"(±{MAX_SAFE_INTEGER}): send it as a string (or set HOOKLINE_JSON_SAFE_INTEGERS=false)"
        )


def refuse_operational(name: str, where: str = "") -> None:
    """Operational events are raised by hookline alone: a platform cannot post (forge) one."""
    if name in OPERATIONAL_EVENTS:
        raise bad_request(f"{where}event type '{name}' is raised by hookline itself and cannot be posted")


async def _tenant_gone(services: Services, principal: Principal, tenant_id: str) -> None:
    """After a failed insert: if the tenant was deleted meanwhile (by another process, which this one's
    caches do not hear of), answer as if it had been gone before the request; otherwise return."""
    async with services.store.read() as conn:
        if await get_tenant(conn, tenant_id) is not None:
            return
    services.known_tenants.clear()
    services.key_cache.clear()
    if principal.is_admin:
        raise ApiError(404, f"tenant '{tenant_id}' not found")
    raise ApiError(401, "invalid or revoked API key", CHALLENGE)


_ACCEPTED = b'{"status":true,"code":202,"message":"Event accepted for delivery","data":'
_REPLAYED = b'{"status":true,"code":202,"message":"Event already accepted; nothing new was created","data":'
_JSON = (b"content-type", b"application/json")
_REPLAYED_HEADER = (b"idempotent-replayed", b"true")


class Answer(Response):
    """A 202 with a pre-rendered envelope: the bytes and headers ``envelope.ok`` would produce, without
    its work (a dict, the generic encoder, header bookkeeping)."""

    def __init__(self, body: bytes, replayed: bool = False) -> None:  # no super().__init__: all set here
        self.status_code = 202
        self.body = body
        self.background = None
        length = (b"content-length", str(len(body)).encode())
        self.raw_headers = [_REPLAYED_HEADER, length, _JSON] if replayed else [length, _JSON]


async def accept_event(
    services: Services,
    principal: Principal,
    requested_tenant: str | None,
    event: str,
    data: dict[str, Any],
    event_id: str | None,
    channels: list[str] | None,
    idempotency_key: str | None,
) -> Answer:
    """``POST /v1/events`` once the request is known to be well-formed: check, store, answer."""
    tenant_id = await resolve_tenant(services, principal, requested_tenant, cached=True)
    refuse_operational(event)
    await check_event(services, event, data)
    item = NewEvent(
        id=event_id or new_id("evt"),
        client_id=event_id is not None,
        event_type=event,
        data=data,
        channels=channels,
        idempotency_key=idempotency_key or None,
    )
    started = time.time_ns()
    try:
        accepted = await services.event_writer.ingest(tenant_id, item, services.now())
    except IntegrityError:
        await _tenant_gone(services, principal, tenant_id)
        raise
    view = orjson.dumps({"id": accepted.id, "event": accepted.event, "deliveries": accepted.deliveries})
    if accepted.created:
        metrics.events_accepted.labels(event, metrics.tenant_class(tenant_id)).inc()
        metrics.ingest_batch_size.observe(1)
        if tracing.enabled():
            tracing.ingested(tenant_id, [(accepted.id, event)], started, time.time_ns())
        return Answer(_ACCEPTED + view + b"}")
    return Answer(_REPLAYED + view + b"}", replayed=True)


async def accept_batch(
    services: Services,
    principal: Principal,
    requested_tenant: str | None,
    entries: Sequence[tuple[str, dict[str, Any], str | None, list[str] | None]],
) -> Answer:
    """``POST /v1/events/batch`` once the request is known to be well-formed. ``entries`` holds
    (event, data, id, channels) per event. All or nothing: one invalid event rejects the batch."""
    tenant_id = await resolve_tenant(services, principal, requested_tenant, cached=True)
    for index, (event, data, _, _) in enumerate(entries):
        refuse_operational(event, f"events[{index}]: ")
        await check_event(services, event, data, f"events[{index}]: ")
    items = [
        NewEvent(
            id=event_id or new_id("evt"),
            client_id=event_id is not None,
            event_type=event,
            data=data,
            channels=channels,
        )
        for event, data, event_id, channels in entries
    ]
    started = time.time_ns()
    try:
        results = await store.ingest_many(services.store, tenant_id, items, services.now())
    except IntegrityError:
        await _tenant_gone(services, principal, tenant_id)
        raise
    accepted = sum(r.created for r in results)
    _count_accepted(tenant_id, results, accepted)
    if tracing.enabled():
        tracing.ingested(tenant_id, [(r.id, r.event) for r in results if r.created], started, time.time_ns())
    body = {
        "status": True,
        "code": 202,
        "message": f"{accepted} events accepted for delivery",
        "data": {
            "accepted": accepted,
            "items": [
                {"id": r.id, "event": r.event, "deliveries": r.deliveries, "created": r.created}
                for r in results
            ],
        },
    }
    return Answer(orjson.dumps(body))


def _count_accepted(tenant_id: str, results: Sequence[Accepted], accepted: int) -> None:
    """``hookline_events_accepted`` (one increment per event type) and the batch's size."""
    per_type: dict[str, int] = {}
    for r in results:
        if r.created:
            per_type[r.event] = per_type.get(r.event, 0) + 1
    kind = metrics.tenant_class(tenant_id)
    for event_type, n in per_type.items():
        metrics.events_accepted.labels(event_type, kind).inc(n)
    if accepted:
        metrics.ingest_batch_size.observe(accepted)


# --- the lean way in --------------------------------------------------------------------------------


class _Malformed(Exception):
    """The request is not one the lean path is sure about: FastAPI answers it (with the exact error)."""


def _string(value: Any, low: int = 0, high: int | None = None) -> str:
    if type(value) is not str or len(value) < low or (high is not None and len(value) > high):
        raise _Malformed
    return value


def _optional_string(value: Any) -> str | None:
    return None if value is None else _string(value)


def _event_fields(
    body: dict[str, Any],
) -> tuple[str, dict[str, Any], str | None, list[str] | None]:
    """``event``, ``data``, ``id`` and ``channels`` of an event object, checked as the models do."""
    event = _string(body.get("event"), 1, 100)
    data = body.get("data")
    if type(data) is not dict:
        raise _Malformed
    event_id = body.get("id")
    if event_id is not None and (type(event_id) is not str or _EVENT_ID.fullmatch(event_id) is None):
        raise _Malformed
    channels = body.get("channels")
    if channels is not None:
        if type(channels) is not list or any(type(c) is not str for c in channels):
            raise _Malformed
        try:
            channels = _check_channels(channels)
        except ValueError:
            raise _Malformed from None
    return event, data, event_id, channels


class FastIngest:
    """Serves well-formed ``POST /v1/events`` and ``POST /v1/events/batch`` without FastAPI (see the
    module's docstring). Sits inside ``BodyLimitMiddleware``, so the body it reads is within the limit
    and free of values hookline cannot store."""

    def __init__(self, app: ASGIApp, services: Services, single: RequireScope, batch: RequireScope) -> None:
        """``single`` and ``batch``: the scopes the two routes declare (``access.required_scope``)."""
        self.app = app
        self.services = services
        self.single_scope = single
        self.batch_scope = batch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path = scope["path"]
            if path == "/v1/events":
                await self._serve(scope, receive, send, batch=False)
                return
            if path == "/v1/events/batch":
                await self._serve(scope, receive, send, batch=True)
                return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, *, batch: bool) -> None:
        # BodyLimitMiddleware (outside this one) has read the body and decoded it with the one strict
        # decoder; what is not there (an empty body) is FastAPI's to answer.
        if SCOPE_KEY not in scope:
            await self.app(scope, receive, send)
            return
        try:
            await self._answer(scope, receive, send, scope[SCOPE_KEY], batch)
        except _Malformed:
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, body: Any, batch: bool) -> None:
        authorization = idempotency_key = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"idempotency-key":
                idempotency_key = value if idempotency_key is None else idempotency_key
        if type(body) is not dict:
            raise _Malformed
        services = self.services
        try:
            if batch:
                if not body.keys() <= _BATCH_FIELDS:
                    raise _Malformed
                events = body.get("events")
                if type(events) is not list or not 1 <= len(events) <= MAX_BATCH:
                    raise _Malformed
                entries = []
                for entry in events:
                    if type(entry) is not dict or not entry.keys() <= _ITEM_FIELDS:
                        raise _Malformed
                    entries.append(_event_fields(entry))
                tenant = _optional_string(body.get("tenant_id"))
                principal = await principal_for(services, (authorization or b"").decode("latin-1"), scope)
                self.batch_scope.check(principal)
                answer = await accept_batch(services, principal, tenant, entries)
            else:
                if not body.keys() <= _SINGLE_FIELDS:
                    raise _Malformed
                event, data, event_id, channels = _event_fields(body)
                tenant = _optional_string(body.get("tenant_id"))
                key = None
                if idempotency_key is not None:
                    key = idempotency_key.decode("latin-1")
                    if len(key) > MAX_IDEMPOTENCY_KEY:
                        raise _Malformed
                principal = await principal_for(services, (authorization or b"").decode("latin-1"), scope)
                self.single_scope.check(principal)
                answer = await accept_event(services, principal, tenant, event, data, event_id, channels, key)
        except _Malformed:
            raise
        except ApiError as exc:
            await error(exc.code, exc.error, exc.headers)(scope, receive, send)
            return
        except Exception as exc:
            # What FastAPI's exception handlers would answer (a 503 for an unreachable database...).
            request = Request(scope)
            if isinstance(exc, DBAPIError):
                response = await database_error(request, exc)
            elif isinstance(exc, ConnectionError | TimeoutError):
                response = await database_unavailable_error(request, exc)
            else:
                response = await unexpected_error(request, exc)
            await response(scope, receive, send)
            return
        await answer(scope, receive, send)
