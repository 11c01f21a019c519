"""The audit log: every change to tenants, keys and webhooks, every secret shown, replay and manual
retry is recorded with who, when, from where and what changed (never a secret); the operator reads all
of it, a tenant its own from its creation on. Through the app on both backends; the raw table is read
with the databases' own drivers for secrets (``tests/test_secrets_at_rest.py`` does it for every
table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.api.audit import ACTIONS, Actor, Change, diff
from hookline.api.services import Services
from hookline.store import audit_log
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Receiver, Reply
from tests.samples import MESSAGE
from tests.test_secrets_at_rest import as_text, raw_dump

HOOK = {"url": "https://example.com/hook", "events": ["message.received"]}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The test client's requests come from 127.0.0.1, here a proxy of the operator's.
    return {"trusted_proxies": "127.0.0.1/32", "allow_http": True, "allowed_networks": "127.0.0.0/8"}


async def log(api: Api, auth: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    """The whole log as ``auth`` sees it, newest first, page by page."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"/v1/audit-log?limit=3{query}" + (f"&cursor={cursor}" if cursor else "")
        found = assert_ok(await api.http.get(url, headers=auth))
        entries += found["items"]
        cursor = found["next_cursor"]
        if cursor is None:
            return entries


def actions(entries: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in reversed(entries)]  # oldest first, as they happened


async def test_each_change_is_recorded_with_who_when_where_and_what(api: Api, services: Services) -> None:
    began = datetime.now(UTC)
    tenant_id, auth = await api.tenant()  # tenant.created and api_key.created, by the admin key
    minted = assert_ok(
        await api.http.post(
            f"/v1/tenants/{tenant_id}/keys", json={"name": "ci", "scopes": ["read"]}, headers=auth
        ),
        201,
    )
    hook = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth), 201)
    path = f"/v1/webhooks/{hook['id']}"
    forwarded = {**auth, "X-Forwarded-For": "198.51.100.23"}
    patch = {
        "url": "https://example.com/moved",
        "description": "moved",
        "secret_headers": {"X-Token": "s3cr3t-value"},
    }
    assert_ok(await api.http.patch(path, json=patch, headers=forwarded))
    assert_ok(await api.http.get(f"{path}/secret", headers=auth))
    assert_ok(await api.http.post(f"{path}/secret/rotate", json={"grace_period_seconds": 60}, headers=auth))
    assert_ok(await api.http.post(f"{path}/circuit-breaker/reset", headers=auth))
    replay = {"since": (began - timedelta(hours=1)).isoformat()}
    assert_ok(await api.http.post(f"{path}/replay", json=replay, headers=auth), 202)
    assert_ok(await api.http.patch(f"/v1/tenants/{tenant_id}", json={"name": "Acme Ltd"}, headers=api.admin))
    assert_ok(await api.http.delete(f"/v1/tenants/{tenant_id}/keys/{minted['id']}", headers=auth))
    assert_ok(await api.http.delete(path, headers=auth))

    entries = await log(api, auth)
    assert actions(entries) == [
        "tenant.created",
        "api_key.created",
        "api_key.created",
        "webhook.created",
        "webhook.updated",
        "webhook.secret_revealed",
        "webhook.secret_rotated",
        "webhook.circuit_breaker_reset",
        "webhook.replayed",
        "tenant.updated",
        "api_key.revoked",
        "webhook.deleted",
    ]
    by_action = {e["action"]: e for e in entries}
    assert all(e["tenant_id"] == tenant_id for e in entries)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    for e in entries:
        assert began - timedelta(seconds=1) <= datetime.fromisoformat(e["at"]) <= datetime.now(UTC)
    # Who: the admin key made the tenant and its first key; the tenant's key the rest.
    tenant_key_id = by_action["webhook.created"]["actor"]["key_id"]
    assert tenant_key_id.startswith("key_")
    assert entries[-1]["actor"] == {"key_id": "admin", "address": "127.0.0.1"}
    assert entries[-2]["actor"]["key_id"] == "admin" and entries[-2]["resource"]["type"] == "api_key"
    assert entries[-3]["actor"]["key_id"] == tenant_key_id  # the read-only key, minted by the tenant key
    assert by_action["tenant.updated"]["actor"]["key_id"] == "admin"
    # From where: the address a trusted proxy forwarded.
    assert by_action["webhook.updated"]["actor"] == {"key_id": tenant_key_id, "address": "198.51.100.23"}
    # What: an update's fields from/to, secrets redacted (secret headers by name).
    assert by_action["webhook.updated"]["changes"] == {
        "url": {"from": HOOK["url"], "to": "https://example.com/moved"},
        "description": {"from": "", "to": "moved"},
        "secret_headers": {"from": {}, "to": {"X-Token": "[redacted]"}},
    }
    assert by_action["webhook.updated"]["resource"] == {"type": "webhook", "id": str(hook["id"])}
    assert by_action["webhook.secret_rotated"]["changes"] == {
        "grace_period_seconds": 60,
        "secret_given": False,
        "secret": {"from": "[redacted]", "to": "[redacted]"},
    }
    assert by_action["webhook.replayed"]["changes"]["requeued"] == 0
    assert by_action["webhook.circuit_breaker_reset"]["changes"] == {"reset": []}
    assert by_action["tenant.updated"]["changes"] == {"name": {"from": "Acme", "to": "Acme Ltd"}}
    created = by_action["webhook.created"]["changes"]
    assert created["url"] == HOOK["url"] and created["events"] == ["message.received"]
    assert "secret" not in created
    key_created = entries[-3]["changes"]
    assert key_created["name"] == "ci" and key_created["scopes"] == ["read"]
    assert by_action["api_key.revoked"]["resource"] == {"type": "api_key", "id": minted["id"]}

    # No secret in the table, read raw: not the webhook's secret, the header's value, nor an API key.
    dump = await raw_dump(services.settings.database_url)
    text = as_text({"audit_log": dump["audit_log"]})
    assert len(dump["audit_log"]) == len(entries)
    assert "s3cr3t-value" not in text and "whsec_" not in text and minted["key"] not in text
    assert auth["Authorization"].removeprefix("Bearer ") not in text


async def test_a_verification_request_is_recorded_with_its_result(api: Api) -> None:
    _, auth = await api.tenant()
    async with Receiver() as rx:
        rx.always("/v", Reply(echo_challenge=True))
        body = {"url": rx.url("/v"), "events": ["message.received"], "verify": False}
        hook = assert_ok(await api.http.post("/v1/webhooks", json=body, headers=auth), 201)
        assert assert_ok(await api.http.post(f"/v1/webhooks/{hook['id']}/verify", headers=auth))["verified"]
        rx.always("/v", Reply(status=500))
        assert not assert_ok(await api.http.post(f"/v1/webhooks/{hook['id']}/verify", headers=auth))[
            "verified"
        ]
    entries = await log(api, auth, "&action=webhook.verification_requested")
    assert [e["changes"] for e in reversed(entries)] == [
        {"verified": True, "status_code": 200},
        {"verified": False, "status_code": 500},
    ]
    assert_ok(await api.http.post("/v1/webhooks/circuit-breaker/reset", headers=auth))
    [reset] = await log(api, auth, "&action=webhook.circuit_breaker_reset")
    assert reset["resource"] == {"type": "webhook", "id": None} and reset["changes"] == {"reset": []}


async def test_a_refused_change_leaves_no_entry(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    before = await log(api, api.admin)
    duplicate = await api.http.post("/v1/tenants", json={"id": tenant_id, "name": "again"}, headers=api.admin)
    assert_error(duplicate, 409)
    assert_error(
        await api.http.post("/v1/webhooks", json={**HOOK, "events": ["mesage.sent"]}, headers=auth), 400
    )
    assert_error(await api.http.delete("/v1/webhooks/999999", headers=auth), 404)
    assert await log(api, api.admin) == before


async def test_retries_and_replays_record_what_they_queued(api: Api) -> None:
    _, auth = await api.tenant()
    hook = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth), 201)
    event = {"event": "message.received", "data": MESSAGE}
    accepted = await api.http.post("/v1/events", json=event, headers=auth)
    assert accepted.status_code == 202, accepted.text
    [delivery] = assert_ok(await api.http.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=auth))["items"]
    assert_ok(await api.http.post(f"/v1/deliveries/{delivery['id']}/retry", headers=auth), 202)
    replay = {"since": "2020-01-01T00:00:00Z", "status": "pending"}
    assert_ok(await api.http.post(f"/v1/webhooks/{hook['id']}/replay", json=replay, headers=auth), 202)
    retried, replayed = (
        (await log(api, auth, "&action=delivery.retried"))[0],
        (await log(api, auth, "&action=webhook.replayed"))[0],
    )
    assert retried["resource"] == {"type": "delivery", "id": str(delivery["id"])}
    assert retried["changes"] == {"webhook_id": hook["id"], "requeued": 1}
    assert replayed["changes"] == {
        "since": "2020-01-01T00:00:00+00:00",
        "until": None,
        "status": "pending",
        "requeued": 1,
    }


async def test_a_tenant_reads_only_its_own_log_and_only_since_it_was_created(api: Api) -> None:
    a, auth_a = await api.tenant("A")
    b, auth_b = await api.tenant("B")
    assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth_b), 201)
    event_type = {"name": "shop.order.shipped", "description": "an order left the warehouse", "schema": {}}
    assert_ok(await api.http.post("/v1/event-types", json=event_type, headers=api.admin), 201)

    mine = await log(api, auth_a)
    assert actions(mine) == ["tenant.created", "api_key.created"]
    assert {e["tenant_id"] for e in mine} == {a}
    assert_error(
        await api.http.get(f"/v1/audit-log?tenant_id={b}", headers=auth_a),
        403,
        "a tenant key can only act on its own tenant",
    )
    # The operator reads everything, service-wide entries included, or one tenant's.
    everything = await log(api, api.admin)
    assert {e["tenant_id"] for e in everything} == {a, b, None}
    [service_wide] = [e for e in everything if e["tenant_id"] is None]
    assert service_wide["action"] == "event_type.created"
    assert service_wide["resource"] == {"type": "event_type", "id": "shop.order.shipped"}
    assert actions(await log(api, api.admin, f"&tenant_id={b}")) == [
        "tenant.created",
        "api_key.created",
        "webhook.created",
    ]

    # A deleted tenant's history stays the operator's; a namesake created later starts afresh.
    assert_ok(await api.http.delete(f"/v1/tenants/{b}", headers=api.admin))
    again = assert_ok(
        await api.http.post("/v1/tenants", json={"id": b, "name": "B again"}, headers=api.admin), 201
    )
    key = assert_ok(await api.http.post(f"/v1/tenants/{again['id']}/keys", headers=api.admin), 201)
    namesake = await log(api, api.auth(key["key"]))
    assert actions(namesake) == ["tenant.created", "api_key.created"]
    assert actions(await log(api, api.admin, f"&tenant_id={b}")) == [
        "tenant.created",
        "api_key.created",
        "webhook.created",
        "tenant.deleted",
        "tenant.created",
        "api_key.created",
    ]


async def test_filters_and_their_errors(api: Api) -> None:
    _, auth = await api.tenant()
    first = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth), 201)
    second = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth), 201)
    assert_ok(await api.http.patch(f"/v1/webhooks/{first['id']}", json={"description": "x"}, headers=auth))
    webhook_entries = await log(api, auth, "&action=webhook.*")
    assert actions(webhook_entries) == ["webhook.created", "webhook.created", "webhook.updated"]
    one = await log(api, auth, f"&resource_type=webhook&resource_id={second['id']}")
    assert actions(one) == ["webhook.created"]
    key_id = webhook_entries[0]["actor"]["key_id"]
    assert len(await log(api, auth, f"&actor={key_id}")) == 3
    assert await log(api, auth, "&actor=admin") != []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert await log(api, auth, f"&since={later}") == []
    assert len(await log(api, auth, f"&until={later}")) == 5

    assert_error(
        await api.http.get("/v1/audit-log?action=webhook.updatd", headers=auth),
        400,
    )
    body = (await api.http.get("/v1/audit-log?action=webhook.updatd", headers=auth)).json()
    assert body["error"].startswith("unknown action 'webhook.updatd' (one of tenant.created, ")
    assert_error(
        await api.http.get("/v1/audit-log?resource_type=hook", headers=auth),
        400,
        "unknown resource_type 'hook' "
        "(one of tenant, api_key, webhook, delivery, event_type, secret_key, portal_link)",
    )
    assert_error(await api.http.get("/v1/audit-log?since=2025-01-01T00:00:00", headers=auth), 400)
    assert_error(await api.http.get("/v1/audit-log?cursor=%%%", headers=auth), 400)


async def test_read_only_and_event_keys_cannot_read_the_log(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    for scope in ("read", "events:write"):
        key = assert_ok(
            await api.http.post(f"/v1/tenants/{tenant_id}/keys", json={"scopes": [scope]}, headers=auth), 201
        )
        assert_error(
            await api.http.get("/v1/audit-log", headers=api.auth(key["key"])),
            403,
            "this API key lacks the 'tenant:manage' scope",
        )


async def test_old_entries_expire_in_batches(services: Services) -> None:
    now = datetime.now(UTC)
    actor = Actor("admin", None)
    async with services.store.write() as conn:
        for age_days in (400, 370, 10):
            entry = actor.entry("tenant.updated", "t", "tenant", "t")
            await audit_log.record(conn, entry, now - timedelta(days=age_days))
    async with services.store.write() as conn:
        assert await audit_log.expire(conn, now - timedelta(days=365)) == 2
    async with services.store.read() as conn:
        left = await audit_log.list_entries(
            conn, tenant_id=None, all_tenants=True, filters=audit_log.Filters(), limit=10
        )
    assert [e.at for e in left] == [now - timedelta(days=10)]


def test_every_action_is_named_once() -> None:
    assert len(set(ACTIONS)) == len(ACTIONS)
    assert all(a.count(".") == 1 and a == a.lower() for a in ACTIONS)


# --- what an entry may hold ------------------------------------------------------------------------------

# "sec_" marks them: no header name, URL or marker of the entry can contain it.
secret_text = st.builds("sec_{}".format, st.text(min_size=4, max_size=40))


@given(
    old=secret_text,
    new=secret_text,
    header=st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True),
    header_value=secret_text,
    url=st.from_regex(r"https://[a-z]{1,10}\.example/[a-z]{0,10}", fullmatch=True),
)
def test_an_entry_never_holds_a_secret_value(
    old: str, new: str, header: str, header_value: str, url: str
) -> None:
    """Whatever the secrets are, the entry holds none of them; plain fields are kept as they are."""
    before = {"secret": old, "signing_key": old, "url": "https://before.example/", "secret_headers": {}}
    after = {
        "secret": new,
        "signing_key": None,
        "url": url,
        "secret_headers": {header: header_value},
        "previous_secrets": [{"secret": old, "expires_at": "2030-01-01T00:00:00+00:00"}],
    }
    entry = Actor("key_x", "192.0.2.1").entry("webhook.updated", "t", "webhook", 1, diff(before, after))
    text = orjson.dumps(entry.changes).decode()
    for secret in (old, new, header_value):
        assert orjson.dumps(secret).decode()[1:-1] not in text
    if url != before["url"]:
        assert entry.changes["url"] == {"from": "https://before.example/", "to": url}
    assert entry.changes["signing_key"] == {"from": "[redacted]", "to": None}
    assert entry.changes["secret_headers"]["to"] == {header: "[redacted]"}
    assert entry.changes["previous_secrets"] == {"from": None, "to": ["[redacted]"]}


def test_diff_lists_only_what_changed() -> None:
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": Change(2, 3)}
    assert diff({"a": 1}, {"a": 1}) == {}
