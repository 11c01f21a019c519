"""The SDK round-trips every route of the API, on SQLite and PostgreSQL, with both clients:
``hookline.AsyncClient`` on the app in process (httpx's ASGI transport) and ``hookline.Client`` over
real HTTP, against the app served by uvicorn on a loopback port. Test sends and the verification
handshake reach a real receiver (tests/receivers.py).

One scenario serves both clients: the sync client's calls run in a worker thread (``Threaded``), so the
event loop that runs uvicorn and the receiver keeps going while a call blocks.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

import hookline
from hookline.api.app import create_app
from hookline.api.services import Services
from hookline.sdk.pagination import Pager
from hookline.sdk.resources._base import SyncResource
from hookline.sdk.routes import ROUTES
from tests.conftest import ADMIN_KEY
from tests.receivers import Receiver, Reply


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"allow_http": True, "allowed_networks": "127.0.0.0/8", "delivery_timeout": "2s"}


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


# --- the sync client seen from async code ---------------------------------------------------------------


class Threaded:
    """Proxies a sync client (or one of its resources): each method runs in a worker thread."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, SyncResource):
            return Threaded(value)
        if not callable(value):
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await asyncio.to_thread(value, *args, **kwargs)
            if isinstance(result, Pager):
                return ThreadedPager(result)
            if isinstance(result, hookline.Client):
                return Threaded(result)
            return result

        return call


class ThreadedPager:
    def __init__(self, pager: Pager[Any]) -> None:
        self._pager = pager

    async def first_page(self) -> Any:
        return await asyncio.to_thread(self._pager.first_page)

    async def to_list(self) -> list[Any]:
        return await asyncio.to_thread(self._pager.to_list)

    async def pages(self) -> AsyncIterator[Any]:
        for page in await asyncio.to_thread(lambda: list(self._pager.pages())):
            yield page


async def a(value: Any) -> Any:
    """The value of a call of either client: awaited when it is awaitable (``list()`` is not)."""
    return await value if inspect.isawaitable(value) else value


async def items(value: Any) -> list[Any]:
    """Every item of a list call, following the cursors."""
    return list(await (await a(value)).to_list())


async def first_page(value: Any) -> Any:
    """The first page of a list call (one request)."""
    return await (await a(value)).first_page()


async def raises(kind: type[hookline.HooklineError], value: Any) -> hookline.HooklineError:
    with pytest.raises(kind) as caught:
        await a(value)
    return caught.value


# --- both clients on the app ----------------------------------------------------------------------------


@dataclass
class Harness:
    admin: Any  # hookline.AsyncClient, or Threaded(hookline.Client)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of each request sent

    def routes_called(self) -> set[tuple[str, str]]:
        """The SDK routes the requests sent went to (a literal path wins over a template)."""
        by_specificity = sorted(ROUTES, key=lambda key: key[1].count("{"))
        patterns = [(key, re.compile(re.sub(r"\{[^}]+\}", "[^/]+", key[1]) + "$")) for key in by_specificity]
        found = set()
        for method, path in self.requests:
            for key, pattern in patterns:
                if key[0] == method and pattern.match(path):
                    found.add(key)
                    break
        return found


@pytest.fixture(params=["async", "sync"])
async def sdk(request: pytest.FixtureRequest, services: Services) -> AsyncIterator[Harness]:
    app = create_app(services)
    harness = Harness(admin=None)
    if request.param == "async":

        async def record(sent: httpx.Request) -> None:
            harness.requests.append((sent.method, sent.url.path))

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, event_hooks={"request": [record]}) as http:
            harness.admin = hookline.AsyncClient("http://hookline.test", ADMIN_KEY, http_client=http)
            yield harness
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        http = httpx.Client(
            event_hooks={"request": [lambda s: harness.requests.append((s.method, s.url.path))]}
        )
        with http:
            harness.admin = Threaded(hookline.Client(f"http://127.0.0.1:{port}", ADMIN_KEY, http_client=http))
            yield harness
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()


# --- every route ----------------------------------------------------------------------------------------


async def test_every_route_round_trips(sdk: Harness, rx: Receiver) -> None:
    admin = sdk.admin
    rx.always("/hook", Reply(200, echo_challenge=True))

    health = await a(admin.health())
    assert (health.version, health.database) == (hookline.__version__, "ok")

    # Tenants and keys (admin).
    tenant = await a(admin.tenants.create("Acme", id="acme", metadata={"plan": "pro"}))
    assert (tenant.id, tenant.name, tenant.metadata) == ("acme", "Acme", {"plan": "pro"})
    assert tenant.created_at.tzinfo is not None and tenant.raw["id"] == "acme"
    assert "acme" in [t.id for t in await items(admin.tenants.list())]
    assert (await a(admin.tenants.get("acme"))).name == "Acme"
    assert (await a(admin.tenants.update("acme", name="Acme Inc"))).name == "Acme Inc"
    key = await a(admin.tenants.keys.create("acme", name="sdk"))
    assert key.key.startswith("hk_") and key.key.startswith(key.prefix) and key.tenant_id == "acme"
    spare = await a(admin.tenants.keys.create("acme"))
    assert {k.id for k in await items(admin.tenants.keys.list("acme"))} == {key.id, spare.id}
    assert all(k.key is None for k in await items(admin.tenants.keys.list("acme")))
    revoked = await a(admin.tenants.keys.revoke("acme", spare.id))
    assert (revoked.id, revoked.deleted) == (spare.id, True)

    client = await a(admin.with_options(api_key=key.key))  # the tenant's key
    as_acme = await a(admin.with_options(tenant_id="acme"))  # the admin key, acting on acme by default
    assert (await a(client.egress_ips())).addresses == []  # none published in these settings

    # Event types.
    assert "message.received" in [t.name for t in await items(client.event_types.list())]
    example = (await a(client.event_types.get("message.received"))).example
    thing = await a(
        admin.event_types.create(
            "sdk.thing",
            description="a custom type",
            schema={"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
            example={"n": 1},
        )
    )
    assert (thing.name, thing.source, thing.group, thing.example) == ("sdk.thing", "custom", "sdk", {"n": 1})

    # Webhooks.
    hook = await a(
        client.webhooks.create(
            rx.url("/hook"),
            events=["message.*", "sdk.thing"],
            description="orders",
            metadata={"team": "a"},
            retry_schedule="1m,5m",
            circuit_breaker={"consecutive_failures": 3},
        )
    )
    assert hook.secret.startswith("whsec_") and hook.tenant_id == "acme"
    assert hook.retry_schedule == [60.0, 300.0] and hook.circuit_breaker == {"consecutive_failures": 3}
    assert hook.health.circuit_breaker == "closed" and hook.verification.status == "not_required"
    other = await a(as_acme.webhooks.create(rx.url("/hook"), events=["*"], signing="ed25519"))
    assert other.tenant_id == "acme" and other.signing == "ed25519" and other.public_key.startswith("whpk_")
    keys = await a(client.webhooks.get_public_key(other.id))
    assert keys.verifying_keys == [other.public_key] and keys.previous_public_keys == []
    assert (await a(client.webhooks.update(other.id, signing="ed25519"))).signing == "ed25519"
    await raises(hookline.Conflict, client.webhooks.get_public_key(hook.id))  # HMAC only
    assert [w.id for w in await items(client.webhooks.list())] == [hook.id, other.id]
    found = await a(client.webhooks.get(hook.id))
    assert found.id == hook.id and found.secret is None and found.metadata == {"team": "a"}
    updated = await a(client.webhooks.update(hook.id, description="all orders", channels=["eu"]))
    assert (updated.description, updated.channels) == ("all orders", ["eu"])
    cleared = await a(client.webhooks.update(hook.id, channels=None))  # None sends null: every channel
    assert cleared.channels is None and cleared.description == "all orders"
    assert (await a(client.webhooks.get_secret(hook.id))).secret == hook.secret
    rotated = await a(client.webhooks.rotate_secret(hook.id, grace_period_seconds=60))
    assert rotated.secret != hook.secret and len(rotated.previous_secrets_expire_at) == 1
    assert rotated.previous_secrets_expire_at[0] > datetime.now(UTC)
    verified = await a(client.webhooks.verify(hook.id))
    assert (verified.verified, verified.status, verified.status_code) == (True, "verified", 200)
    sent = await a(client.webhooks.test(hook.id))
    assert sent.sent and sent.succeeded and sent.event == "webhook.test" and sent.status_code == 200
    assert {s.scheme for s in sent.signatures} == {"standard-webhooks", "hmac-sha256-hex"}
    sent_thing = await a(client.webhooks.test(hook.id, event="sdk.thing", data={"n": 2}))
    assert sent_thing.succeeded and sent_thing.event == "sdk.thing"
    report = await a(client.webhooks.test_all())  # GET /v1/webhooks/test
    assert (report.tested, report.succeeded) == (2, 2)
    report = await a(client.webhooks.test_all("sdk.thing", data={"n": 3}))  # POST /v1/webhooks/test
    assert (report.tested, report.succeeded) == (2, 2) and {r.event for r in report.results} == {"sdk.thing"}
    moved = await a(client.webhooks.set_default(rx.url("/hook?default"), events=["message.*", "sdk.thing"]))
    assert moved.id == hook.id and moved.url.endswith("?default") and moved.secret is None
    await a(admin.tenants.create("Beta", id="beta"))
    made = await a(admin.webhooks.set_default(rx.url("/hook"), tenant_id="beta"))  # created: with its secret
    assert made.tenant_id == "beta" and made.secret.startswith("whsec_") and made.events == ["*"]

    # Circuit breakers.
    breakers = await a(client.circuit_breakers.list())
    assert {(b.webhook_id, b.state) for b in breakers} == {(hook.id, "closed"), (other.id, "closed")}
    assert (await a(client.circuit_breakers.get(hook.id))).held == 0
    assert (await a(client.circuit_breakers.reset(hook.id))).state == "closed"
    assert sorted(await a(client.circuit_breakers.reset_all())) == [hook.id, other.id]

    # Events.
    accepted = await a(client.events.post("message.received", example))
    assert accepted.id.startswith("evt_") and accepted.deliveries == 2
    first = await a(client.events.post("sdk.thing", {"n": 5}, id="order-1"))
    again = await a(client.events.post("sdk.thing", {"n": 5}, id="order-1"))
    assert (first.id, again.id, again.deliveries) == ("order-1", "order-1", 2)
    keyed = await a(client.events.post("sdk.thing", {"n": 6}, idempotency_key="k-1"))
    assert (await a(client.events.post("sdk.thing", {"n": 6}, idempotency_key="k-1"))).id == keyed.id
    batch = await a(
        as_acme.events.post_batch(
            [
                {"event": "sdk.thing", "data": {"n": 7}},
                {"event": "sdk.thing", "data": {"n": 8}, "id": "order-1"},
            ]
        )
    )
    assert batch.accepted == 1 and [i.created for i in batch.items] == [True, False]  # order-1 was known
    assert batch.items[1].id == "order-1"
    listed = await items(client.events.list())
    posted = [batch.items[0].id, keyed.id, "order-1", accepted.id]  # newest first (test sends are events too)
    assert [e.id for e in listed if e.id in posted] == posted
    assert [e.id for e in await items(client.events.list(event="message.received"))] == [accepted.id]
    event = await a(client.events.get(accepted.id))
    assert event.data == example and event.timestamp.endswith("Z")
    assert {d.webhook_id for d in event.delivery_status} == {hook.id, other.id}

    # Deliveries.
    deliveries = await items(client.deliveries.list(hook.id))
    tests = [d for d in deliveries if d.test]
    real = [d for d in deliveries if not d.test]
    assert len(tests) == 4 and {d.status for d in tests} == {"succeeded"}
    assert {d.event_id for d in real} >= {accepted.id, "order-1"}
    pending = await items(client.deliveries.list(hook.id, status="pending", event="message.received"))
    assert [d.event_id for d in pending] == [accepted.id]
    detail = await a(client.deliveries.get(tests[0].id))
    assert detail.attempt_log[0].status_code == 200 and detail.attempt_log[0].test
    attempts = await a(client.deliveries.attempts(tests[0].id))
    assert [t.attempt for t in attempts] == [1]
    queued = await a(client.deliveries.retry(pending[0].id))
    assert (queued.id, queued.status) == (pending[0].id, "pending")
    replayed = await a(client.deliveries.replay(hook.id, since=datetime.now(UTC) - timedelta(hours=1)))
    assert replayed.webhook_id == hook.id and replayed.requeued >= len(real)

    # Statistics.
    mine = await a(client.stats.tenant(window="1h"))
    assert mine.tenant_id == "acme" and mine.webhook_id is None and mine.attempts.total >= 0
    assert (await a(as_acme.stats.tenant())).tenant_id == "acme"
    one = await a(client.stats.webhook(hook.id, bucket="1h"))
    assert (one.webhook_id, one.bucket) == (hook.id, "1h") and one.series
    assert (await a(admin.stats.service(window="1d"))).tenant_id is None

    # The audit log: the replay just made, by the tenant's key; the operator reads acme's through as_acme.
    [entry] = await items(client.audit_log.list(action="webhook.replayed", resource_id=hook.id, limit=1))
    assert (entry.action, entry.resource.type, entry.resource.id) == (
        "webhook.replayed",
        "webhook",
        str(hook.id),
    )
    assert entry.actor.key_id == key.id and entry.tenant_id == "acme" and entry.at.tzinfo is not None
    assert entry.changes["requeued"] == replayed.requeued
    created = await items(as_acme.audit_log.list(action="tenant.*"))
    assert [(e.action, e.actor.key_id) for e in created] == [
        ("tenant.updated", "admin"),
        ("tenant.created", "admin"),
    ]

    # Portal links (admin).
    link = await a(admin.tenants.portal_links.create("acme", capabilities=["send_tests"], expires_in=120))
    assert link.url is not None and "/ui/portal?token=" in link.url and link.capabilities == ["send_tests"]
    assert [found.id for found in await items(admin.tenants.portal_links.list("acme"))] == [link.id]
    assert (await a(admin.tenants.portal_links.revoke("acme", link.id))).deleted

    # Deleting.
    deleted = await a(client.webhooks.delete(other.id))
    assert (deleted.id, deleted.deleted) == (other.id, True)
    await a(admin.tenants.keys.revoke("acme", key.id))
    gone = await raises(hookline.Unauthorized, client.webhooks.get(hook.id))
    assert gone.error == "invalid or revoked API key"
    assert (await a(admin.tenants.delete("acme"))).deleted

    called = sdk.routes_called()
    assert called == set(ROUTES), f"not exercised: {sorted(set(ROUTES) - called)}"


# --- pagination -----------------------------------------------------------------------------------------


async def test_list_calls_follow_the_cursors_lazily(sdk: Harness) -> None:
    await a(sdk.admin.tenants.create("Paged", id="paged"))
    client = await a(sdk.admin.with_options(tenant_id="paged"))
    created = [(await a(client.webhooks.create(f"https://example.com/{n}"))).id for n in range(7)]

    pager = await a(client.webhooks.list(limit=3))
    assert sdk.requests[-1][0] == "POST"  # nothing sent until the pager is used
    pages = [page async for page in pager.pages()]
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert [p.next_cursor is None for p in pages] == [False, False, True]
    assert [w.id for p in pages for w in p.items] == created
    assert [w.id for w in await items(client.webhooks.list(limit=3))] == created

    first = await first_page(client.webhooks.list(limit=2))
    assert [w.id for w in first.items] == created[:2] and first.next_cursor
    rest = await items(client.webhooks.list(limit=2, cursor=first.next_cursor))
    assert [w.id for w in rest] == created[2:]
    sent = len(sdk.requests)
    assert len(await items(client.webhooks.list(limit=250))) == 7 and len(sdk.requests) == sent + 1

    example = (await a(client.event_types.get("webhook.test"))).example
    posted = [(await a(client.events.post("webhook.test", example))).id for _ in range(5)]
    assert [e.id for e in await items(client.events.list(limit=2))] == posted[::-1]  # newest first

    for n in range(3):
        await a(sdk.admin.tenants.create(f"T{n}"))
    tenants = await items(sdk.admin.tenants.list(limit=2))
    assert len(tenants) == 4 and len({t.id for t in tenants}) == 4


# --- errors ---------------------------------------------------------------------------------------------


async def test_errors_carry_the_status_and_the_envelopes_error(sdk: Harness) -> None:
    admin = sdk.admin
    await a(admin.tenants.create("Acme", id="acme"))
    key = (await a(admin.tenants.keys.create("acme"))).key
    client = await a(admin.with_options(api_key=key))

    missing = await raises(hookline.NotFound, client.webhooks.get(999999))
    assert (missing.status_code, missing.message, missing.error) == (
        404,
        "Not found",
        "webhook '999999' not found",
    )
    assert str(missing) == "404 Not found: webhook '999999' not found"
    assert missing.body["status"] is False and isinstance(missing, hookline.ClientError)

    refused = await raises(hookline.BadRequest, client.events.post("mesage.received", {}))
    assert refused.status_code == 400 and refused.error.startswith("unknown event type 'mesage.received'")
    assert "did you mean 'message.received'" in refused.error
    bad = await raises(hookline.BadRequest, client.webhooks.create("ftp://example.com/h"))
    assert bad.error
    forbidden = await raises(hookline.Forbidden, first_page(client.tenants.list()))
    assert (forbidden.status_code, forbidden.error) == (403, "this API key lacks the 'admin' scope")
    other_tenant = await raises(hookline.Forbidden, client.webhooks.get(1, tenant_id="beta"))
    assert other_tenant.error == "a tenant key can only act on its own tenant"
    no_tenant = await raises(hookline.BadRequest, first_page(admin.webhooks.list()))
    assert no_tenant.error == "tenant_id is required when using the admin key"
    taken = await raises(hookline.Conflict, admin.tenants.create("Again", id="acme"))
    assert (taken.status_code, taken.error) == (409, "tenant 'acme' already exists")
    nobody = await a(admin.with_options(api_key="hk_wrong"))
    wrong = await raises(hookline.Unauthorized, first_page(nobody.webhooks.list()))
    assert (wrong.status_code, wrong.error) == (401, "invalid or revoked API key")
    naive = await raises(hookline.BadRequest, first_page(client.events.list(since=datetime(2025, 1, 1))))
    assert naive.error == "'since' needs a timezone (e.g. 2025-01-01T00:00:00Z)"
    gone = await raises(hookline.NotFound, client.deliveries.retry(999999))
    assert gone.error == "delivery '999999' not found"
