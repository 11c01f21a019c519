"""API keys with scopes and limits: what a key may do, until when, from where and how often; a tenant
managing its own keys; ``last_used_at``. On both backends; the client-address rules with real requests
from loopback addresses to a real ``hookline api`` (a client bound to 127.0.0.2 is another machine to
the server), the rest through the app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hookline.api.rate_limits import RequestRateLimiter
from hookline.api.services import Services
from hookline.store import migrate
from hookline.store.engine import Store
from tests.chaos.procs import ADMIN_KEY as PROC_ADMIN_KEY
from tests.chaos.procs import Processes, base_env, start_api
from tests.conftest import Api, assert_error, assert_ok, throwaway_pg_database
from tests.samples import MESSAGE

HOOK = {"url": "https://example.com/hook", "events": ["message.received"]}
EVENT = {"event": "message.received", "data": MESSAGE}


async def _tenant(api: Api, tenant_id: str = "acme") -> None:
    assert_ok(
        await api.http.post("/v1/tenants", json={"name": tenant_id, "id": tenant_id}, headers=api.admin), 201
    )


async def _key(
    api: Api, tenant_id: str = "acme", by: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    response = await api.http.post(f"/v1/tenants/{tenant_id}/keys", json=body, headers=by or api.admin)
    data: dict[str, Any] = assert_ok(response, 201)
    return data


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- scopes -----------------------------------------------------------------------------------------------


async def test_a_key_has_the_scopes_it_was_given_and_the_listing_shows_them(api: Api) -> None:
    await _tenant(api)
    default = await _key(api)
    reader = await _key(api, name="support", scopes=["read", "read"])
    assert default["scopes"] == ["tenant:manage"]  # what every key could do before scopes existed
    assert reader["scopes"] == ["read"]
    listed = assert_ok(await api.http.get("/v1/tenants/acme/keys", headers=api.admin))["items"]
    assert {k["id"]: k["scopes"] for k in listed} == {
        default["id"]: ["tenant:manage"],
        reader["id"]: ["read"],
    }
    for key in listed:
        assert (key["expires_at"], key["allowed_ips"], key["rate_limit"], key["last_used_at"]) == (None,) * 4

    auth = api.auth(reader["key"])
    assert_ok(await api.http.get("/v1/webhooks", headers=auth))
    refused = await api.http.post("/v1/events", json=EVENT, headers=auth)
    assert_error(refused, 403, "this API key lacks the 'events:write' scope")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"scopes": []}, "'scopes' is empty: give at least one of tenant:manage, events:write, read"),
        (
            {"scopes": ["admin"]},
            "scopes[0]: 'admin' belongs to the operator's admin key alone; a tenant key can have "
            "tenant:manage, events:write, read",
        ),
        ({"scopes": "read"}, "'scopes': input should be a valid list"),
        (
            {"allowed_ips": ["10.0.0.1/8"]},
            "allowed_ips[0]: '10.0.0.1/8' has host bits set (did you mean '10.0.0.0/8'?)",
        ),
        ({"allowed_ips": []}, "'allowed_ips' is empty: omit it (or give null) to allow every address"),
        ({"expires_at": "2999-01-01T00:00:00"}, "'expires_at': input should have timezone info"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at must be in the future"),
        ({"rate_limit": 0}, "'rate_limit': input should be greater than 0"),
    ],
)
async def test_a_key_that_cannot_be_made_is_a_specific_400(
    api: Api, body: dict[str, Any], error: str
) -> None:
    await _tenant(api)
    assert_error(await api.http.post("/v1/tenants/acme/keys", json=body, headers=api.admin), 400, error)
    assert assert_ok(await api.http.get("/v1/tenants/acme/keys", headers=api.admin))["items"] == []


async def test_a_tenant_manage_key_manages_its_own_tenants_keys_and_no_other(api: Api) -> None:
    await _tenant(api)
    await _tenant(api, "globex")
    owner = api.auth((await _key(api))["key"])
    made = await _key(api, by=owner, name="backend", scopes=["events:write"])
    assert made["tenant_id"] == "acme" and made["scopes"] == ["events:write"]
    assert_ok(await api.http.post("/v1/events", json=EVENT, headers=api.auth(made["key"])), 202)
    listed = assert_ok(await api.http.get("/v1/tenants/acme/keys", headers=owner))["items"]
    assert made["id"] in {k["id"] for k in listed}
    assert_ok(await api.http.delete(f"/v1/tenants/acme/keys/{made['id']}", headers=owner))
    assert_error(await api.http.post("/v1/events", json=EVENT, headers=api.auth(made["key"])), 401)

    other = await _key(api, "globex")
    for response in (
        await api.http.post("/v1/tenants/globex/keys", json={}, headers=owner),
        await api.http.get("/v1/tenants/globex/keys", headers=owner),
        await api.http.delete(f"/v1/tenants/globex/keys/{other['id']}", headers=owner),
    ):
        assert_error(response, 404, "tenant 'globex' not found")
    assert_ok(await api.http.get("/v1/webhooks", headers=api.auth(other["key"])))  # not revoked

    reader = api.auth((await _key(api, scopes=["read"]))["key"])
    refused = await api.http.get("/v1/tenants/acme/keys", headers=reader)
    assert_error(refused, 403, "this API key lacks the 'tenant:manage' scope")
    assert_error(
        await api.http.get("/v1/tenants", headers=owner), 403, "this API key lacks the 'admin' scope"
    )


async def test_a_key_cannot_make_a_key_broader_than_itself(api: Api) -> None:
    await _tenant(api)
    expires = datetime.now(UTC) + timedelta(days=1)
    limited = await _key(api, expires_at=_iso(expires), allowed_ips=["127.0.0.0/8", "::1"], rate_limit=50)
    by = api.auth(limited["key"])  # the app's test client comes from 127.0.0.1

    inherited = await _key(api, by=by)
    assert inherited["expires_at"] == limited["expires_at"]
    assert inherited["allowed_ips"] == ["127.0.0.0/8", "::1/128"]
    assert inherited["rate_limit"] == 50
    narrower = await _key(
        api, by=by, expires_at=_iso(expires - timedelta(hours=1)), allowed_ips=["127.0.0.2"], rate_limit=5
    )
    assert (narrower["allowed_ips"], narrower["rate_limit"]) == (["127.0.0.2/32"], 5)

    for body, error in (
        (
            {"expires_at": _iso(expires + timedelta(seconds=1))},
            f"expires_at: a key cannot create a key that outlives it (it expires at {limited['expires_at']})",
        ),
        (
            {"allowed_ips": ["127.0.0.0/8", "0.0.0.0/0"]},
            "allowed_ips: '0.0.0.0/0' is not within this key's own allowed_ips",
        ),
        ({"rate_limit": 51}, "rate_limit: 51 is above this key's own (50)"),
    ):
        assert_error(await api.http.post("/v1/tenants/acme/keys", json=body, headers=by), 403, error)


# --- expiry -----------------------------------------------------------------------------------------------


async def test_an_expired_key_is_401_even_while_cached(api: Api) -> None:
    await _tenant(api)
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    key = await _key(api, expires_at=_iso(expires))
    assert key["expires_at"] == _iso(expires)
    auth = api.auth(key["key"])
    assert_ok(await api.http.get("/v1/webhooks", headers=auth))  # now in this process's key cache
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    response = await api.http.get("/v1/webhooks", headers=auth)
    assert_error(response, 401, f"this API key expired at {_iso(expires)}")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(await api.http.post("/v1/events", json=EVENT, headers=auth), 401)  # the lean path too


# --- rate limits ------------------------------------------------------------------------------------------


@pytest.fixture
def clock(services: Services) -> list[float]:
    """The request limiter's clock, moved by hand (a loaded machine must not refill a bucket)."""
    now = [0.0]
    services.rate_limiter = RequestRateLimiter(services.settings.tenant_rate_limit, clock=lambda: now[0])
    return now


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(api: Api, clock: list[float]) -> None:
    await _tenant(api)
    auth = api.auth((await _key(api, rate_limit=2))["key"])
    other = api.auth((await _key(api))["key"])
    for _ in range(2):
        assert_ok(await api.http.post("/v1/events", json=EVENT, headers=auth), 202)
    for response in (
        await api.http.post("/v1/events", json=EVENT, headers=auth),  # the lean path
        await api.http.get("/v1/webhooks", headers=auth),
    ):
        assert_error(
            response, 429, "this API key's rate limit (2 requests per second) is exceeded; retry after 1s"
        )
        assert response.headers["retry-after"] == "1"
    assert_ok(await api.http.get("/v1/webhooks", headers=other))  # the tenant's other key is not limited
    clock[0] = 0.5
    assert_ok(await api.http.get("/v1/webhooks", headers=auth))


@pytest.mark.parametrize("settings_overrides", [{"tenant_rate_limit": 3}])
async def test_one_tenants_flood_does_not_limit_another(api: Api, clock: list[float]) -> None:
    await _tenant(api)
    await _tenant(api, "globex")
    acme = [api.auth((await _key(api))["key"]) for _ in range(2)]
    globex = api.auth((await _key(api, "globex"))["key"])
    statuses = [(await api.http.get("/v1/webhooks", headers=acme[n % 2])).status_code for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]  # both keys count against acme's limit
    refused = await api.http.post("/v1/events", json=EVENT, headers=acme[0])
    assert_error(
        refused, 429, "tenant 'acme''s rate limit (3 requests per second) is exceeded; retry after 1s"
    )
    assert refused.headers["retry-after"] == "1"
    for _ in range(3):
        assert_ok(await api.http.get("/v1/webhooks", headers=globex))
    for _ in range(5):  # the operator is never limited
        assert_ok(await api.http.get("/v1/webhooks", params={"tenant_id": "acme"}, headers=api.admin))


# --- last use ---------------------------------------------------------------------------------------------


async def test_last_used_at_is_recorded_without_a_write_per_request(api: Api, services: Services) -> None:
    await _tenant(api)
    used, unused = await _key(api), await _key(api)

    async def last_used() -> dict[str, str | None]:
        items = assert_ok(await api.http.get("/v1/tenants/acme/keys", headers=api.admin))["items"]
        return {k["id"]: k["last_used_at"] for k in items}

    before = datetime.now(UTC)
    for _ in range(3):
        assert_ok(await api.http.post("/v1/events", json=EVENT, headers=api.auth(used["key"])), 202)
    assert await last_used() == {used["id"]: None, unused["id"]: None}  # noted, not written yet
    await services.key_usage.flush(services.store)
    after = await last_used()
    assert after[unused["id"]] is None
    stamp = datetime.fromisoformat(str(after[used["id"]]))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)

    # The API process writes them by itself, on a schedule (a minute in production).
    assert_ok(await api.http.get("/v1/webhooks", headers=api.auth(unused["key"])))
    flusher = asyncio.create_task(services.key_usage.flush_forever(services.store, every=0.05))
    try:
        for _ in range(100):
            if (await last_used())[unused["id"]] is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        flusher.cancel()
    assert (await last_used())[unused["id"]] is not None


# --- where a key is used from: a real server, real client addresses -------------------------------------


@dataclass
class Server:
    url: str
    key: str  # a tenant:manage key of "acme", allowed from 127.0.0.2 only
    reader: str  # a read key of "acme", allowed anywhere

    def client(self, source: str) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, transport=transport, timeout=10)

    def get(self, source: str, key: str | None = None, forwarded: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if forwarded is not None:
            headers["X-Forwarded-For"] = forwarded
        with self.client(source) as http:
            return http.get("/v1/webhooks", headers=headers)


async def _migrate(url: str) -> None:
    store = Store.from_url(url)
    try:
        await migrate.upgrade(store)
    finally:
        await store.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``hookline api`` trusting 127.0.0.3 (a proxy of the operator's) and nothing else; one per backend
    for the module (starting a process is most of these tests' time)."""
    directory = tmp_path_factory.mktemp("keys")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{directory / 'hookline.db'}"
            shutil.copy(request.getfixturevalue("sqlite_template"), directory / "hookline.db")
        else:
            url = stack.enter_context(throwaway_pg_database("hookline_keys"))
            asyncio.run(_migrate(url))
        procs = Processes(directory)
        stack.callback(procs.kill_all)
        env = base_env(HOOKLINE_DATABASE_URL=url, HOOKLINE_TRUSTED_PROXIES="127.0.0.3/32")
        _, base_url = start_api(procs, "api", env)
        admin = {"Authorization": f"Bearer {PROC_ADMIN_KEY}"}
        with httpx.Client(base_url=base_url, timeout=10, headers=admin) as http:
            assert http.post("/v1/tenants", json={"name": "Acme", "id": "acme"}).status_code == 201
            made = http.post("/v1/tenants/acme/keys", json={"allowed_ips": ["127.0.0.2"]})
            reader = http.post("/v1/tenants/acme/keys", json={"scopes": ["read"]})
            assert made.status_code == reader.status_code == 201, made.text + reader.text
        yield Server(base_url, made.json()["data"]["key"], reader.json()["data"]["key"])


def _refused_from(response: httpx.Response, address: str) -> None:
    assert_error(response, 403, f"this API key may not be used from {address} (not in its allowed_ips)")


def test_allowed_ips_are_checked_against_the_connections_peer(server: Server) -> None:
    assert_ok(server.get("127.0.0.2"))
    _refused_from(server.get("127.0.0.4"), "127.0.0.4")
    _refused_from(server.get("127.0.0.1"), "127.0.0.1")
    with server.client("127.0.0.4") as http:  # the lean ingest path checks it too
        posted = http.post("/v1/events", json=EVENT, headers={"Authorization": f"Bearer {server.key}"})
    _refused_from(posted, "127.0.0.4")


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(server: Server) -> None:
    _refused_from(server.get("127.0.0.4", forwarded="127.0.0.2"), "127.0.0.4")
    _refused_from(server.get("127.0.0.1", forwarded="127.0.0.2, 127.0.0.3"), "127.0.0.1")


def test_behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_hop(server: Server) -> None:
    assert_ok(server.get("127.0.0.3", forwarded="127.0.0.2"))
    assert_ok(server.get("127.0.0.3", forwarded="127.0.0.9, 127.0.0.2"))  # the client's own entry: ignored
    assert_ok(server.get("127.0.0.3", forwarded="127.0.0.2, 127.0.0.3"))  # through two of our proxies
    _refused_from(server.get("127.0.0.3", forwarded="127.0.0.2, 127.0.0.9"), "127.0.0.9")
    _refused_from(server.get("127.0.0.3"), "127.0.0.3")  # our proxy, forwarding nobody
    refused = server.get("127.0.0.3", forwarded="not-an-address")
    assert_error(
        refused,
        403,
        "this API key may not be used from an address that cannot be told (not in its allowed_ips)",
    )
    assert_ok(server.get("127.0.0.4", key=server.reader))  # a key without allowed_ips: from anywhere


async def test_the_listen_websocket_needs_tenant_manage(server: Server) -> None:
    url = server.url.replace("http://", "ws://") + "/v1/listen"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers={"Authorization": f"Bearer {server.reader}"}):
            pass
    assert refused.value.response.status_code == 403
    body = json.loads(refused.value.response.body or b"{}")
    assert body["error"] == "this API key lacks the 'tenant:manage' scope"
    # The manage key, from an address it may not be used from: refused the same way.
    with pytest.raises(InvalidStatus) as elsewhere:
        async with connect(url, additional_headers={"Authorization": f"Bearer {server.key}"}):
            pass
    assert elsewhere.value.response.status_code == 403
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {server.key}"}, local_addr=("127.0.0.2", 0)
    ) as ws:
        session = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert session["type"] == "session"
