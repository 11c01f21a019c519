"""/v1/webhooks: seed 002's shape, URL and subscription rules, pagination, updates, tenant isolation."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from hookline.config import ConfigError, load_settings
from tests.conftest import Api, assert_error, assert_ok

SEED_002_BODY = {
    "url": "https://your-server.com/webhook",
    "secret": "string",
    "events": ["message.received", "connection.connected"],
}
HOOK = {"url": "https://example.com/hook", "events": ["message.received"]}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ALLOW_HTTP = pytest.mark.parametrize("settings_overrides", [{"allow_http": True}], ids=["allow_http"])
HTTPS_ONLY = "URL must be HTTPS (set HOOKLINE_ALLOW_HTTP=true to allow http:// for local development)"
NETWORKS_HINT = "HOOKLINE_ALLOWED_NETWORKS can allow it"
LOOPBACK_HINT = "HOOKLINE_ALLOWED_NETWORKS=127.0.0.0/8 can allow it for local development"


async def create(api: Api, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(
        await api.http.post("/v1/webhooks", json={**HOOK, **body}, headers=auth), 201
    )
    return data


async def fetch(api: Api, auth: dict[str, str], hook_id: int | str, query: str = "") -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(await api.http.get(f"/v1/webhooks/{hook_id}{query}", headers=auth))
    return data


# --- seed 002 ---------------------------------------------------------------------------------------


async def test_create_matches_seed_002(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json=SEED_002_BODY, headers=auth)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] is True
    assert body["code"] == 201
    assert body["message"] == "Webhook created successfully"
    data = body["data"]
    assert isinstance(data["id"], int) and not isinstance(data["id"], bool)
    assert data["url"] == "https://your-server.com/webhook"
    assert data["events"] == ["message.received", "connection.connected"]
    assert data["active"] is True
    assert ISO_UTC.match(data["created_at"]), data["created_at"]


async def test_get_matches_seed_002(api: Api) -> None:
    _, auth = await api.tenant()
    created = assert_ok(await api.http.post("/v1/webhooks", json=SEED_002_BODY, headers=auth), 201)
    response = await api.http.get(f"/v1/webhooks/{created['id']}", headers=auth)
    body = response.json()
    assert body["message"] == "Webhook retrieved successfully"
    data = assert_ok(response)
    for field in ("id", "url", "events", "active", "created_at"):
        assert data[field] == created[field], field


async def test_given_secret_is_kept(api: Api) -> None:
    _, auth = await api.tenant()
    created = assert_ok(await api.http.post("/v1/webhooks", json=SEED_002_BODY, headers=auth), 201)
    assert created["secret"] == "string"
    secret = assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/secret", headers=auth))
    assert secret == {"id": created["id"], "secret": "string"}


async def test_missing_secret_is_generated(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    other = await create(api, auth)
    assert other["secret"] != secret


async def test_secret_is_not_in_get_or_list(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    for response in (
        await api.http.get(f"/v1/webhooks/{created['id']}", headers=auth),
        await api.http.get("/v1/webhooks", headers=auth),
    ):
        assert response.status_code == 200
        assert created["secret"] not in response.text
        assert '"secret"' not in response.text


async def test_secret_is_available_from_its_own_route(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    secret = assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/secret", headers=auth))
    assert secret["secret"] == created["secret"]


async def test_malformed_whsec_secret_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "secret": "whsec_not base64"}, headers=auth)
    body = assert_error(response, 400)
    assert "secret" in body["error"]
    assert "not base64" not in body["error"]


# --- URL rules --------------------------------------------------------------------------------------


async def test_http_url_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks", json={**HOOK, "url": "http://example.com/hook"}, headers=auth
    )
    body = assert_error(response, 400, HTTPS_ONLY)
    assert body["message"] == "Bad request"
    assert assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"] == []


@ALLOW_HTTP
async def test_http_url_is_accepted_with_allow_http(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth, url="http://example.com/hook")
    assert created["url"] == "http://example.com/hook"


@ALLOW_HTTP
async def test_allow_http_still_blocks_private_addresses(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "url": "http://10.0.0.1/hook"}, headers=auth)
    assert_error(response, 400, f"URL host '10.0.0.1' is not a public address ({NETWORKS_HINT})")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://10.1.2.3/hook", "10.1.2.3"),
        ("https://192.168.0.10:8443/hook", "192.168.0.10"),
        ("https://172.16.5.4/hook", "172.16.5.4"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://[::1]/hook", "::1"),
    ],
)
async def test_non_public_hosts_are_rejected(api: Api, url: str, host: str) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "url": url}, headers=auth)
    assert_error(response, 400, f"URL host {host!r} is not a public address ({NETWORKS_HINT})")


@pytest.mark.parametrize("host", ["localhost", "api.localhost"])
async def test_localhost_is_refused_naming_the_setting(api: Api, host: str) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "url": f"https://{host}/hook"}, headers=auth)
    assert_error(response, 400, f"URL host {host!r} is not a public address ({LOOPBACK_HINT})")


@pytest.mark.parametrize(
    "settings_overrides", [{"allow_http": True, "allowed_networks": "127.0.0.0/8"}], ids=["loopback"]
)
async def test_localhost_is_accepted_when_loopback_is_allowed(api: Api) -> None:
    """Issue 9, finding 8: local development with HOOKLINE_ALLOWED_NETWORKS=127.0.0.0/8 refused localhost."""
    _, auth = await api.tenant()
    created = await create(api, auth, url="http://localhost:8080/hook")
    assert created["url"] == "http://localhost:8080/hook"
    patched = await api.http.patch(
        f"/v1/webhooks/{created['id']}", json={"url": "http://app.localhost:3000/in"}, headers=auth
    )
    assert assert_ok(patched)["url"] == "http://app.localhost:3000/in"


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/hook", "/relative/path", "https://"])
async def test_malformed_urls_are_rejected(api: Api, url: str) -> None:
    _, auth = await api.tenant()
    body = assert_error(await api.http.post("/v1/webhooks", json={**HOOK, "url": url}, headers=auth), 400)
    assert body["error"].startswith("URL "), body["error"]


# --- subscriptions ----------------------------------------------------------------------------------


async def test_unknown_event_is_400_with_suggestion(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "events": ["mesage.sent"]}, headers=auth)
    body = assert_error(response, 400)
    assert "'mesage.sent'" in body["error"]
    assert "did you mean" in body["error"] and "'message.sent'" in body["error"]


async def test_wildcard_matching_nothing_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "events": ["nothing.*"]}, headers=auth)
    body = assert_error(response, 400)
    assert "'nothing.*'" in body["error"]


@pytest.mark.parametrize(
    ("events", "stored"),
    [
        (["message.*"], ["message.*"]),
        (["*"], ["*"]),
        (["message.*", "order.created"], ["message.*", "order.created"]),
        (["message.sent", "message.sent"], ["message.sent"]),
        (["message.sent", "*"], ["*"]),
    ],
    ids=["prefix-wildcard", "star", "mixed", "deduplicated", "star-absorbs"],
)
async def test_subscription_patterns(api: Api, events: list[str], stored: list[str]) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth, events=events)
    assert created["events"] == stored
    assert (await fetch(api, auth, created["id"]))["events"] == stored


async def test_events_omitted_means_everything(api: Api) -> None:
    _, auth = await api.tenant()
    created = assert_ok(
        await api.http.post("/v1/webhooks", json={"url": "https://example.com/hook"}, headers=auth), 201
    )
    assert created["events"] == ["*"]


async def test_optional_fields_round_trip(api: Api) -> None:
    _, auth = await api.tenant()
    fields = {
        "description": "orders to the ERP",
        "channels": ["store-1", "store:2"],
        "headers": {"X-Api-Token": "abc123", "Authorization": "Basic Zm9vOmJhcg=="},
        "metadata": {"team": "erp", "nested": {"n": 1, "list": [1, "two"]}},
    }
    created = await create(api, auth, **fields)
    fetched = await fetch(api, auth, created["id"])
    for name, value in fields.items():
        assert created[name] == value, name
        assert fetched[name] == value, name


@pytest.mark.parametrize(
    "header",
    ["webhook-id", "Webhook-Signature", "X-Webhook-Signature", "x-webhook-event", "Content-Type", "Host"],
)
async def test_reserved_headers_are_rejected(api: Api, header: str) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "headers": {header: "x"}}, headers=auth)
    assert_error(response, 400, f"header '{header}' is set by hookline and cannot be overridden")


async def test_header_value_with_newline_is_rejected(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks", json={**HOOK, "headers": {"X-Custom": "a\r\nInjected: yes"}}, headers=auth
    )
    assert_error(response, 400, "invalid value for header 'X-Custom' (control characters are not allowed)")


# --- listing ----------------------------------------------------------------------------------------


async def test_list_pages_with_a_cursor(api: Api) -> None:
    _, auth = await api.tenant()
    created = [(await create(api, auth, description=f"hook {i}"))["id"] for i in range(5)]
    seen: list[int] = []
    pages = 0
    url = "/v1/webhooks?limit=2"
    while True:
        data = assert_ok(await api.http.get(url, headers=auth))
        pages += 1
        assert len(data["items"]) <= 2
        seen += [hook["id"] for hook in data["items"]]
        if data["next_cursor"] is None:
            break
        url = f"/v1/webhooks?limit=2&cursor={data['next_cursor']}"
    assert pages == 3
    assert seen == created


@pytest.mark.parametrize("decoded", [b"%%%", b"abc", b"9" * 30, b"\xff\xfe", "²".encode()])
async def test_garbage_cursor_is_400(api: Api, decoded: bytes) -> None:
    _, auth = await api.tenant()
    cursor = base64.urlsafe_b64encode(decoded).decode().rstrip("=")
    response = await api.http.get("/v1/webhooks", params={"cursor": cursor}, headers=auth)
    assert_error(response, 400, "query parameter 'cursor' is not a cursor this API returned")


async def test_non_base64_cursor_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    assert_error(await api.http.get("/v1/webhooks?cursor=%25%25%25", headers=auth), 400)


# --- updating and deleting --------------------------------------------------------------------------


async def test_patch_updates_fields(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    change = {
        "url": "https://example.org/new",
        "events": ["order.*"],
        "active": False,
        "description": "paused for maintenance",
    }
    response = await api.http.patch(f"/v1/webhooks/{created['id']}", json=change, headers=auth)
    updated = assert_ok(response)
    assert response.json()["message"] == "Webhook updated successfully"
    assert "secret" not in updated
    fetched = await fetch(api, auth, created["id"])
    for name, value in change.items():
        assert updated[name] == value, name
        assert fetched[name] == value, name
    assert fetched["created_at"] == created["created_at"]


async def test_patch_leaves_unmentioned_fields_alone(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth, description="keep me", channels=["a"])
    assert_ok(await api.http.patch(f"/v1/webhooks/{created['id']}", json={"active": False}, headers=auth))
    fetched = await fetch(api, auth, created["id"])
    assert fetched["active"] is False
    assert fetched["description"] == "keep me"
    assert fetched["channels"] == ["a"]
    assert fetched["url"] == created["url"]
    assert fetched["events"] == created["events"]


async def test_patch_can_reactivate(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    await api.http.patch(f"/v1/webhooks/{created['id']}", json={"active": False}, headers=auth)
    updated = assert_ok(
        await api.http.patch(f"/v1/webhooks/{created['id']}", json={"active": True}, headers=auth)
    )
    assert updated["active"] is True


async def test_patch_with_http_url_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    response = await api.http.patch(
        f"/v1/webhooks/{created['id']}", json={"url": "http://example.com/hook"}, headers=auth
    )
    assert_error(response, 400, HTTPS_ONLY)
    assert (await fetch(api, auth, created["id"]))["url"] == created["url"]


async def test_patch_with_null_url_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    response = await api.http.patch(f"/v1/webhooks/{created['id']}", json={"url": None}, headers=auth)
    assert_error(response, 400, "'url' cannot be null")
    assert (await fetch(api, auth, created["id"]))["url"] == created["url"]


async def test_patch_with_unknown_event_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    response = await api.http.patch(
        f"/v1/webhooks/{created['id']}", json={"events": ["mesage.sent"]}, headers=auth
    )
    assert "'message.sent'" in assert_error(response, 400)["error"]
    assert (await fetch(api, auth, created["id"]))["events"] == created["events"]


async def test_patch_with_reserved_header_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    response = await api.http.patch(
        f"/v1/webhooks/{created['id']}", json={"headers": {"webhook-id": "x"}}, headers=auth
    )
    assert_error(response, 400)


async def test_delete_then_404(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth)
    deleted = assert_ok(await api.http.delete(f"/v1/webhooks/{created['id']}", headers=auth))
    assert deleted == {"id": created["id"], "deleted": True}
    assert_error(await api.http.get(f"/v1/webhooks/{created['id']}", headers=auth), 404)
    assert_error(await api.http.get(f"/v1/webhooks/{created['id']}/secret", headers=auth), 404)
    assert_error(await api.http.delete(f"/v1/webhooks/{created['id']}", headers=auth), 404)
    assert assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"] == []


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("raw_id", ["abc", "-1", "1.5", "99999999999999999999999", "\u00b2", "\u0661"])
async def test_non_numeric_or_unknown_id_is_404(api: Api, method: str, raw_id: str) -> None:
    _, auth = await api.tenant()
    kwargs: dict[str, Any] = {"json": {"description": "x"}} if method == "PATCH" else {}
    response = await api.http.request(method, f"/v1/webhooks/{raw_id}", headers=auth, **kwargs)
    assert_error(response, 404, f"webhook '{raw_id}' not found")


async def test_non_ascii_digits_are_not_webhook_ids(api: Api) -> None:
    _, auth = await api.tenant()
    hook = await create(api, auth)
    arabic_indic = "".join(chr(0x660 + int(d)) for d in str(hook["id"]))
    assert_error(await api.http.get(f"/v1/webhooks/{arabic_indic}", headers=auth), 404)
    assert_error(await api.http.delete(f"/v1/webhooks/{arabic_indic}", headers=auth), 404)
    assert (await fetch(api, auth, hook["id"]))["id"] == hook["id"]


# --- tenant isolation -------------------------------------------------------------------------------


@pytest.fixture
async def two_tenants(api: Api) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """(A's auth, B's auth, a webhook of A's)."""
    _, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    hook = await create(api, auth_a, description="A's hook")
    return auth_a, auth_b, hook


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("GET", "/secret", None),
        ("PATCH", "", {"url": "https://attacker.example/steal", "active": False}),
        ("DELETE", "", None),
    ],
    ids=["get", "secret", "patch", "delete"],
)
async def test_other_tenants_webhook_is_404(
    api: Api,
    two_tenants: tuple[dict[str, str], dict[str, str], dict[str, Any]],
    method: str,
    suffix: str,
    body: Any,
) -> None:
    auth_a, auth_b, hook = two_tenants
    response = await api.http.request(method, f"/v1/webhooks/{hook['id']}{suffix}", json=body, headers=auth_b)
    assert_error(response, 404, f"webhook '{hook['id']}' not found")
    assert hook["secret"] not in response.text
    unchanged = await fetch(api, auth_a, hook["id"])
    assert unchanged["url"] == hook["url"]
    assert unchanged["active"] is True
    assert unchanged["updated_at"] == hook["updated_at"]


async def test_other_tenants_webhook_is_not_listed(
    api: Api, two_tenants: tuple[dict[str, str], dict[str, str], dict[str, Any]]
) -> None:
    auth_a, auth_b, hook = two_tenants
    own = await create(api, auth_b)
    listed = assert_ok(await api.http.get("/v1/webhooks", headers=auth_b))["items"]
    assert [h["id"] for h in listed] == [own["id"]]
    listed_a = assert_ok(await api.http.get("/v1/webhooks", headers=auth_a))["items"]
    assert [h["id"] for h in listed_a] == [hook["id"]]


async def test_tenant_key_with_another_tenant_id_is_403(api: Api) -> None:
    tenant_a, auth_a = await api.tenant("A")
    tenant_b, auth_b = await api.tenant("B")
    hook = await create(api, auth_a)
    response = await api.http.post("/v1/webhooks", json={**HOOK, "tenant_id": tenant_a}, headers=auth_b)
    assert_error(response, 403)
    assert_error(await api.http.get(f"/v1/webhooks?tenant_id={tenant_a}", headers=auth_b), 403)
    assert_error(await api.http.get(f"/v1/webhooks/{hook['id']}?tenant_id={tenant_a}", headers=auth_b), 403)
    assert_error(
        await api.http.delete(f"/v1/webhooks/{hook['id']}?tenant_id={tenant_a}", headers=auth_b), 403
    )
    assert (await fetch(api, auth_a, hook["id"]))["id"] == hook["id"]
    assert assert_ok(await api.http.get("/v1/webhooks", headers=auth_b))["items"] == []
    assert tenant_b != tenant_a


async def test_tenant_key_with_its_own_tenant_id_is_fine(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    created = await create(api, auth, tenant_id=tenant_id)
    assert created["tenant_id"] == tenant_id
    assert (await fetch(api, auth, created["id"], f"?tenant_id={tenant_id}"))["id"] == created["id"]


# --- the admin key ----------------------------------------------------------------------------------


async def test_admin_creates_for_a_tenant(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    created = await create(api, api.admin, tenant_id=tenant_id)
    assert created["tenant_id"] == tenant_id
    assert (await fetch(api, auth, created["id"]))["id"] == created["id"]


async def test_admin_reads_updates_and_deletes_for_a_tenant(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    hook = await create(api, auth)
    query = f"?tenant_id={tenant_id}"
    assert (await fetch(api, api.admin, hook["id"], query))["url"] == hook["url"]
    listed = assert_ok(await api.http.get(f"/v1/webhooks{query}", headers=api.admin))["items"]
    assert [h["id"] for h in listed] == [hook["id"]]
    secret = assert_ok(await api.http.get(f"/v1/webhooks/{hook['id']}/secret{query}", headers=api.admin))
    assert secret["secret"] == hook["secret"]
    patched = assert_ok(
        await api.http.patch(f"/v1/webhooks/{hook['id']}{query}", json={"active": False}, headers=api.admin)
    )
    assert patched["active"] is False
    assert (await fetch(api, auth, hook["id"]))["active"] is False
    assert_ok(await api.http.delete(f"/v1/webhooks/{hook['id']}{query}", headers=api.admin))
    assert_error(await api.http.get(f"/v1/webhooks/{hook['id']}", headers=auth), 404)


async def test_admin_with_the_wrong_tenant_id_gets_404(api: Api) -> None:
    _, auth_a = await api.tenant("A")
    tenant_b, _ = await api.tenant("B")
    hook = await create(api, auth_a)
    response = await api.http.get(f"/v1/webhooks/{hook['id']}?tenant_id={tenant_b}", headers=api.admin)
    assert_error(response, 404, f"webhook '{hook['id']}' not found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/webhooks", HOOK),
        ("GET", "/v1/webhooks", None),
        ("GET", "/v1/webhooks/1", None),
        ("GET", "/v1/webhooks/1/secret", None),
        ("PATCH", "/v1/webhooks/1", {"active": False}),
        ("DELETE", "/v1/webhooks/1", None),
    ],
)
async def test_admin_without_tenant_id_is_400(api: Api, method: str, path: str, body: Any) -> None:
    response = await api.http.request(method, path, json=body, headers=api.admin)
    assert_error(response, 400, "tenant_id is required when using the admin key")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/webhooks", {**HOOK, "tenant_id": "ghost"}),
        ("GET", "/v1/webhooks?tenant_id=ghost", None),
        ("GET", "/v1/webhooks/1?tenant_id=ghost", None),
        ("PATCH", "/v1/webhooks/1?tenant_id=ghost", {"active": False}),
        ("DELETE", "/v1/webhooks/1?tenant_id=ghost", None),
    ],
)
async def test_admin_with_unknown_tenant_is_404(api: Api, method: str, path: str, body: Any) -> None:
    response = await api.http.request(method, path, json=body, headers=api.admin)
    assert_error(response, 404, "tenant 'ghost' not found")


async def test_an_empty_events_list_is_refused(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks", json={"url": "https://example.com/hook", "events": []}, headers=auth
    )
    assert_error(response, 400, "'events' must name at least one event type (use [\"*\"] for all)")


@pytest.mark.parametrize("settings_overrides", [{"signature_header_prefix": "X-Awal-Webhook"}])
async def test_headers_under_the_branded_signature_prefix_are_reserved(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks",
        json={"url": "https://example.com/hook", "headers": {"x-awal-webhook-signature": "forged"}},
        headers=auth,
    )
    assert_error(
        response, 400, "header 'x-awal-webhook-signature' is set by hookline and cannot be overridden"
    )


# --- issue 9, finding 6: accepted but undeliverable or unsafe -----------------------------------------


async def _refused_on_create_and_patch(api: Api, body: dict[str, Any], error: str) -> None:
    """The same 400 on POST and on PATCH; the stored endpoint is unchanged by the PATCH."""
    _, auth = await api.tenant()
    assert_error(await api.http.post("/v1/webhooks", json={**HOOK, **body}, headers=auth), 400, error)
    created = await create(api, auth)
    patch = await api.http.patch(f"/v1/webhooks/{created['id']}", json=body, headers=auth)
    assert_error(patch, 400, error)
    shown = {k: v for k, v in created.items() if k not in ("secret", "public_key")}  # creation's only
    assert await fetch(api, auth, created["id"]) == shown


@pytest.mark.parametrize("port", ["+443", "0443", "\u0664\u0664\u0663"])
async def test_port_not_written_as_plain_digits_is_400(api: Api, port: str) -> None:
    url = f"https://example.com:{port}/hook"
    await _refused_on_create_and_patch(
        api, {"url": url}, "URL port must be written as plain digits (e.g. :8443)"
    )


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Expect",
        "Proxy-Authorization",
        "Content-Encoding",
    ],
)
async def test_hop_by_hop_and_framing_headers_are_400(api: Api, name: str) -> None:
    await _refused_on_create_and_patch(
        api,
        {"headers": {name: "x"}},
        f"header '{name}' controls how the request is carried and cannot be set on an endpoint",
    )


@pytest.mark.parametrize("control", ["\x01", "\x08", "\x0b", "\x1b", "\x7f"])
async def test_control_characters_in_header_values_are_400_without_the_value(api: Api, control: str) -> None:
    token = "Bearer sk_live_do_not_echo"
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks", json={**HOOK, "headers": {"Authorization": token + control}}, headers=auth
    )
    assert_error(
        response, 400, "invalid value for header 'Authorization' (control characters are not allowed)"
    )
    assert "sk_live" not in response.text


async def test_authorization_and_tabs_stay_allowed(api: Api) -> None:
    _, auth = await api.tenant()
    created = await create(api, auth, headers={"Authorization": "Bearer a\tb", "X-Proxy-Id": "7"})
    assert created["headers"] == {"Authorization": "Bearer a\tb", "X-Proxy-Id": "7"}


RETRY_RANGE = "'retry_schedule': retry waits must be between 100ms and 7d"


@pytest.mark.parametrize(
    ("schedule", "got"),
    [
        ("0.0000001ms", "1e-10s"),
        ("1m,50ms", "0.05s"),
        ("8d", "691200s"),
        ([1e-300], "1e-300s"),
        ([60, 0.0001], "0.0001s"),
        ([0], "0s"),
        ([-1], "-1s"),
        ([700000], "700000s"),
    ],
)
async def test_retry_waits_out_of_range_are_400(api: Api, schedule: Any, got: str) -> None:
    await _refused_on_create_and_patch(api, {"retry_schedule": schedule}, f"{RETRY_RANGE} (got {got})")


@pytest.mark.parametrize("schedule", ["1e-300", "1" * 400, "\u0661s"])
async def test_retry_waits_that_are_not_durations_are_400(api: Api, schedule: str) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "retry_schedule": schedule}, headers=auth)
    assert assert_error(response, 400)["error"].startswith("'retry_schedule': invalid duration")


@pytest.mark.parametrize(
    ("schedule", "stored"), [("100ms,7d", [0.1, 604800.0]), ([0.1, 604800], [0.1, 604800.0])]
)
async def test_retry_waits_at_the_limits_are_accepted(api: Api, schedule: Any, stored: list[float]) -> None:
    _, auth = await api.tenant()
    assert (await create(api, auth, retry_schedule=schedule))["retry_schedule"] == stored


@pytest.mark.parametrize("value", ["0.0000001ms", "1e-300", "50ms", "8d", "1" * 400 + "s"])
def test_the_service_retry_schedule_follows_the_same_rule(value: str) -> None:
    with pytest.raises(ConfigError, match="HOOKLINE_RETRY_SCHEDULE: "):
        load_settings(retry_schedule=value)
