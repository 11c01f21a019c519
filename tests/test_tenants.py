"""/v1/tenants and their API keys: admin-only CRUD, keys shown once, revocation, cascading delete."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from hookline.api.services import KeyCache, Services
from hookline.store.schema import api_keys
from tests.conftest import Api, assert_error, assert_ok

HOOK = {"url": "https://example.com/hook", "events": ["message.received"]}


async def create_tenant(api: Api, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(await api.http.post("/v1/tenants", json=body, headers=api.admin), 201)
    return data


async def create_key(api: Api, tenant_id: str) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(
        await api.http.post(f"/v1/tenants/{tenant_id}/keys", json={"name": "ci"}, headers=api.admin), 201
    )
    return data


# --- tenants ----------------------------------------------------------------------------------------


async def test_create_tenant_generates_an_id(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme", metadata={"plan": "pro"})
    assert isinstance(tenant["id"], str) and tenant["id"]
    assert tenant["name"] == "Acme"
    assert tenant["metadata"] == {"plan": "pro"}
    assert tenant["created_at"].endswith("Z")


async def test_create_tenant_with_own_id(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme", id="acme-42")
    assert tenant["id"] == "acme-42"
    fetched = assert_ok(await api.http.get("/v1/tenants/acme-42", headers=api.admin))
    assert fetched["name"] == "Acme"


async def test_duplicate_tenant_id_is_409(api: Api) -> None:
    await create_tenant(api, name="Acme", id="acme")
    response = await api.http.post("/v1/tenants", json={"name": "Other", "id": "acme"}, headers=api.admin)
    body = assert_error(response, 409)
    assert "acme" in body["error"]
    fetched = assert_ok(await api.http.get("/v1/tenants/acme", headers=api.admin))
    assert fetched["name"] == "Acme"


async def test_invalid_tenant_id_is_400(api: Api) -> None:
    response = await api.http.post("/v1/tenants", json={"name": "Acme", "id": "a b/c"}, headers=api.admin)
    body = assert_error(response, 400)
    assert body["error"].startswith("'id'"), body["error"]


async def test_get_tenant(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme")
    fetched = assert_ok(await api.http.get(f"/v1/tenants/{tenant['id']}", headers=api.admin))
    assert fetched == tenant


async def test_get_unknown_tenant_is_404(api: Api) -> None:
    assert_error(await api.http.get("/v1/tenants/nope", headers=api.admin), 404, "tenant 'nope' not found")


async def test_list_tenants_pages_with_a_cursor(api: Api) -> None:
    created = {(await create_tenant(api, name=f"T{i}"))["id"] for i in range(5)}
    seen: list[str] = []
    pages = 0
    url = "/v1/tenants?limit=2"
    while True:
        data = assert_ok(await api.http.get(url, headers=api.admin))
        pages += 1
        assert len(data["items"]) <= 2
        seen += [t["id"] for t in data["items"]]
        if data["next_cursor"] is None:
            break
        url = f"/v1/tenants?limit=2&cursor={data['next_cursor']}"
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == created


async def test_cursor_with_a_nul_byte_is_400(api: Api) -> None:
    cursor = base64.urlsafe_b64encode(b"\x00abc").decode().rstrip("=")
    response = await api.http.get("/v1/tenants", params={"cursor": cursor}, headers=api.admin)
    assert_error(response, 400, "query parameter 'cursor' is not a cursor this API returned")


async def test_patch_tenant(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme", metadata={"plan": "free"})
    updated = assert_ok(
        await api.http.patch(
            f"/v1/tenants/{tenant['id']}",
            json={"name": "Acme Inc", "metadata": {"plan": "pro"}},
            headers=api.admin,
        )
    )
    assert updated["name"] == "Acme Inc"
    assert updated["metadata"] == {"plan": "pro"}
    fetched = assert_ok(await api.http.get(f"/v1/tenants/{tenant['id']}", headers=api.admin))
    assert fetched["name"] == "Acme Inc"
    assert fetched["created_at"] == tenant["created_at"]


async def test_patch_unknown_tenant_is_404(api: Api) -> None:
    assert_error(await api.http.patch("/v1/tenants/nope", json={"name": "X"}, headers=api.admin), 404)


async def test_delete_tenant_then_404(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme")
    deleted = assert_ok(await api.http.delete(f"/v1/tenants/{tenant['id']}", headers=api.admin))
    assert deleted == {"id": tenant["id"], "deleted": True}
    assert_error(await api.http.get(f"/v1/tenants/{tenant['id']}", headers=api.admin), 404)
    assert_error(await api.http.delete(f"/v1/tenants/{tenant['id']}", headers=api.admin), 404)


async def test_tenant_routes_need_a_key(api: Api) -> None:
    assert_error(await api.http.get("/v1/tenants"), 401)
    assert_error(await api.http.post("/v1/tenants", json={"name": "Acme"}), 401)


# --- API keys ---------------------------------------------------------------------------------------


async def test_create_key_returns_the_key_once(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme")
    created = await create_key(api, tenant["id"])
    assert created["key"].startswith("hk_")
    assert created["key"].startswith(created["prefix"])
    assert created["tenant_id"] == tenant["id"]
    assert created["name"] == "ci"


async def test_create_key_for_unknown_tenant_is_404(api: Api) -> None:
    assert_error(await api.http.post("/v1/tenants/nope/keys", headers=api.admin), 404)


async def test_list_keys_shows_prefixes_only(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme")
    created = await create_key(api, tenant["id"])
    response = await api.http.get(f"/v1/tenants/{tenant['id']}/keys", headers=api.admin)
    [listed] = assert_ok(response)["items"]
    assert listed["id"] == created["id"]
    assert listed["prefix"] == created["prefix"]
    assert "key" not in listed
    assert created["key"] not in response.text
    assert hashlib.sha256(created["key"].encode()).hexdigest() not in response.text
    assert "hash" not in response.text


async def test_key_authenticates_its_tenant(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme")
    auth = api.auth((await create_key(api, tenant["id"]))["key"])
    hook = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth), 201)
    assert hook["tenant_id"] == tenant["id"]


async def test_revoked_key_is_401(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme")
    key = await create_key(api, tenant["id"])
    auth = api.auth(key["key"])
    assert_ok(await api.http.get("/v1/webhooks", headers=auth))
    revoked = assert_ok(
        await api.http.delete(f"/v1/tenants/{tenant['id']}/keys/{key['id']}", headers=api.admin)
    )
    assert revoked["deleted"] is True
    assert_error(await api.http.get("/v1/webhooks", headers=auth), 401)
    listed = assert_ok(await api.http.get(f"/v1/tenants/{tenant['id']}/keys", headers=api.admin))
    assert listed["items"] == []


async def test_revoking_one_key_keeps_the_others(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme")
    first, second = await create_key(api, tenant["id"]), await create_key(api, tenant["id"])
    assert first["key"] != second["key"]
    await api.http.delete(f"/v1/tenants/{tenant['id']}/keys/{first['id']}", headers=api.admin)
    assert_ok(await api.http.get("/v1/webhooks", headers=api.auth(second["key"])))


async def test_revoking_a_key_through_another_tenant_is_404(api: Api) -> None:
    acme = await create_tenant(api, name="Acme")
    other = await create_tenant(api, name="Other")
    key = await create_key(api, acme["id"])
    response = await api.http.delete(f"/v1/tenants/{other['id']}/keys/{key['id']}", headers=api.admin)
    assert_error(response, 404)
    assert_ok(await api.http.get("/v1/webhooks", headers=api.auth(key["key"])))


async def test_tenant_routes_are_admin_only_and_key_routes_the_tenants_own(api: Api) -> None:
    tenant_id, auth = await api.tenant()  # a tenant:manage key (the default)
    assert_error(await api.http.get(f"/v1/tenants/{tenant_id}", headers=auth), 403)
    assert_ok(await api.http.post(f"/v1/tenants/{tenant_id}/keys", headers=auth), 201)
    assert len(assert_ok(await api.http.get(f"/v1/tenants/{tenant_id}/keys", headers=auth))["items"]) == 2


# --- deleting a tenant ------------------------------------------------------------------------------


async def test_deleting_a_tenant_revokes_its_keys(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    assert_ok(await api.http.delete(f"/v1/tenants/{tenant_id}", headers=api.admin))
    assert_error(await api.http.get("/v1/webhooks", headers=auth), 401)


async def test_deleting_a_tenant_removes_its_webhooks_and_events(api: Api) -> None:
    tenant = await create_tenant(api, name="Acme", id="acme")
    auth = api.auth((await create_key(api, "acme"))["key"])
    assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth), 201)
    example = assert_ok(await api.http.get("/v1/event-types/message.received", headers=auth))["example"]
    event = {"event": "message.received", "data": example, "id": "evt-1"}
    assert assert_ok(await api.http.post("/v1/events", json=event, headers=auth), 202)["deliveries"] == 1

    assert_ok(await api.http.delete(f"/v1/tenants/{tenant['id']}", headers=api.admin))

    # A new tenant with the same id starts empty: nothing of the old one survived.
    await create_tenant(api, name="Acme again", id="acme")
    hooks = assert_ok(await api.http.get("/v1/webhooks?tenant_id=acme", headers=api.admin))
    assert hooks["items"] == []
    events = assert_ok(await api.http.get("/v1/events?tenant_id=acme", headers=api.admin))
    assert events["items"] == []
    assert_error(await api.http.get("/v1/events/evt-1?tenant_id=acme", headers=api.admin), 404)


async def test_deleting_a_tenant_leaves_other_tenants_alone(api: Api) -> None:
    doomed, _ = await api.tenant("Doomed")
    _, survivor_auth = await api.tenant("Survivor")
    hook = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=survivor_auth), 201)
    assert_ok(await api.http.delete(f"/v1/tenants/{doomed}", headers=api.admin))
    assert_ok(await api.http.get(f"/v1/webhooks/{hook['id']}", headers=survivor_auth))


async def test_a_key_revoked_by_another_process_stops_working_when_the_cache_entry_expires(
    api: Api, services: Services
) -> None:
    """Revocation through this process is immediate (tested above); a row deleted elsewhere (another
    API process) is noticed once the cached entry's TTL runs out."""
    now = [0.0]  # the cache's clock, moved by hand so a slow machine cannot expire the entry early
    services.key_cache = KeyCache(ttl=5.0, clock=lambda: now[0])
    _, auth = await api.tenant()
    assert_ok(await api.http.get("/v1/webhooks", headers=auth))
    async with services.store.write() as conn:
        await conn.execute(api_keys.delete())
    now[0] = 4.9
    assert_ok(await api.http.get("/v1/webhooks", headers=auth))  # still cached
    now[0] = 5.1
    assert_error(await api.http.get("/v1/webhooks", headers=auth), 401, "invalid or revoked API key")
