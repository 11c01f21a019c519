"""/v1/event-types: the shipped catalog (every event name in the seeds) and admin-defined custom types."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import Api, assert_error, assert_ok

SEED_EVENT_NAMES = [
    "message.incoming",
    "message.sent",
    "message.delivered",
    "message.read",
    "session.connected",
    "session.disconnected",
    "group.created",
    "group.updated",
    "message_status",
    "incoming_message",
    "message.received",
    "connection.connected",
    "message.status.updated",
    "conversation.created",
    "conversation.updated",
    "order.created",
    "order.status.updated",
    "contact.created",
    "contact.updated",
    "newMessage",
]

CUSTOM = {
    "name": "invoice.paid",
    "description": "An invoice was paid in full.",
    "schema": {
        "type": "object",
        "required": ["invoice_id", "amount"],
        "properties": {"invoice_id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0}},
    },
    "example": {"invoice_id": "inv_1", "amount": 1200},
}


async def add_custom(api: Api, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(
        await api.http.post("/v1/event-types", json={**CUSTOM, **overrides}, headers=api.admin), 201
    )
    return data


async def listed_names(api: Api, auth: dict[str, str]) -> list[str]:
    data = assert_ok(await api.http.get("/v1/event-types", headers=auth))
    return [t["name"] for t in data["items"]]


# --- the default catalog ----------------------------------------------------------------------------


async def test_catalog_lists_every_seed_event(api: Api) -> None:
    _, auth = await api.tenant()
    names = await listed_names(api, auth)
    assert len(SEED_EVENT_NAMES) == len(set(SEED_EVENT_NAMES)) == 20
    missing = set(SEED_EVENT_NAMES) - set(names)
    assert not missing, missing


async def test_catalog_entries_are_documented(api: Api) -> None:
    _, auth = await api.tenant()
    items = assert_ok(await api.http.get("/v1/event-types", headers=auth))["items"]
    by_name = {t["name"]: t for t in items}
    for name in SEED_EVENT_NAMES:
        entry = by_name[name]
        assert isinstance(entry["description"], str) and entry["description"].strip(), name
        assert isinstance(entry["schema"], dict) and entry["schema"].get("type") == "object", name
        assert isinstance(entry["example"], dict) and entry["example"], name
        assert entry["source"].startswith("seed-"), name
        Draft202012Validator(entry["schema"]).validate(entry["example"])


async def test_catalog_needs_a_key(api: Api) -> None:
    assert_error(await api.http.get("/v1/event-types"), 401)


async def test_admin_can_read_the_catalog(api: Api) -> None:
    assert set(SEED_EVENT_NAMES) <= set(await listed_names(api, api.admin))


@pytest.mark.parametrize("name", ["message.received", "newMessage", "message.status.updated"])
async def test_get_one_event_type(api: Api, name: str) -> None:
    _, auth = await api.tenant()
    response = await api.http.get(f"/v1/event-types/{name}", headers=auth)
    entry = assert_ok(response)
    assert response.json()["message"] == "Event type retrieved successfully"
    assert entry["name"] == name
    assert entry["description"]
    Draft202012Validator(entry["schema"]).validate(entry["example"])


async def test_unknown_event_type_is_404_with_suggestion(api: Api) -> None:
    _, auth = await api.tenant()
    body = assert_error(await api.http.get("/v1/event-types/mesage.sent", headers=auth), 404)
    assert "'mesage.sent'" in body["error"]
    assert "did you mean" in body["error"] and "'message.sent'" in body["error"]


async def test_unknown_event_type_without_close_match_is_404(api: Api) -> None:
    _, auth = await api.tenant()
    body = assert_error(await api.http.get("/v1/event-types/zzzzzz", headers=auth), 404)
    assert "'zzzzzz'" in body["error"]
    assert "did you mean" not in body["error"]


# --- custom event types -----------------------------------------------------------------------------


async def test_admin_creates_a_custom_type(api: Api) -> None:
    response = await api.http.post("/v1/event-types", json=CUSTOM, headers=api.admin)
    created = assert_ok(response, 201)
    assert response.json()["message"] == "Event type created successfully"
    assert created["name"] == "invoice.paid"
    assert created["source"] == "custom"
    assert created["group"] == "invoice"
    assert created["schema"] == CUSTOM["schema"]
    assert created["example"] == CUSTOM["example"]


async def test_custom_type_is_listed_and_fetchable(api: Api) -> None:
    _, auth = await api.tenant()
    await add_custom(api)
    assert "invoice.paid" in await listed_names(api, auth)
    fetched = assert_ok(await api.http.get("/v1/event-types/invoice.paid", headers=auth))
    assert fetched["description"] == CUSTOM["description"]
    assert fetched["schema"] == CUSTOM["schema"]


async def test_custom_type_can_be_subscribed_to(api: Api) -> None:
    _, auth = await api.tenant()
    await add_custom(api)
    for events in (["invoice.paid"], ["invoice.*"]):
        hook = assert_ok(
            await api.http.post(
                "/v1/webhooks", json={"url": "https://example.com/hook", "events": events}, headers=auth
            ),
            201,
        )
        assert hook["events"] == events


async def test_custom_type_can_be_posted_as_an_event(api: Api) -> None:
    _, auth = await api.tenant()
    await add_custom(api)
    await api.http.post(
        "/v1/webhooks", json={"url": "https://example.com/hook", "events": ["invoice.paid"]}, headers=auth
    )
    event = {"event": "invoice.paid", "data": {"invoice_id": "inv_9", "amount": 5}}
    accepted = assert_ok(await api.http.post("/v1/events", json=event, headers=auth), 202)
    assert accepted["event"] == "invoice.paid"
    assert accepted["deliveries"] == 1


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"invoice_id": "inv_9"}, "data"),
        ({"invoice_id": "inv_9", "amount": "five"}, "data.amount"),
        ({"invoice_id": "inv_9", "amount": -1}, "data.amount"),
    ],
    ids=["missing-field", "wrong-type", "below-minimum"],
)
async def test_custom_type_schema_is_enforced_on_events(api: Api, data: dict[str, Any], path: str) -> None:
    _, auth = await api.tenant()
    await add_custom(api)
    response = await api.http.post("/v1/events", json={"event": "invoice.paid", "data": data}, headers=auth)
    body = assert_error(response, 400)
    assert body["error"].startswith(path + ":"), body["error"]
    assert assert_ok(await api.http.get("/v1/events", headers=auth))["items"] == []


async def test_custom_type_defaults(api: Api) -> None:
    created = assert_ok(await api.http.post("/v1/event-types", json={"name": "ping"}, headers=api.admin), 201)
    assert created["schema"] == {"type": "object"}
    assert created["example"] == {}
    assert created["group"] == "ping"


async def test_tenant_key_cannot_create_event_types(api: Api) -> None:
    _, auth = await api.tenant()
    assert_error(await api.http.post("/v1/event-types", json=CUSTOM, headers=auth), 403)
    assert_error(await api.http.get("/v1/event-types/invoice.paid", headers=auth), 404)


async def test_duplicate_custom_type_is_409(api: Api) -> None:
    await add_custom(api)
    response = await api.http.post(
        "/v1/event-types", json={**CUSTOM, "description": "changed"}, headers=api.admin
    )
    body = assert_error(response, 409)
    assert "'invoice.paid'" in body["error"]
    fetched = assert_ok(await api.http.get("/v1/event-types/invoice.paid", headers=api.admin))
    assert fetched["description"] == CUSTOM["description"]


async def test_redefining_a_shipped_type_is_409(api: Api) -> None:
    response = await api.http.post(
        "/v1/event-types", json={**CUSTOM, "name": "message.sent"}, headers=api.admin
    )
    assert_error(response, 409)
    fetched = assert_ok(await api.http.get("/v1/event-types/message.sent", headers=api.admin))
    assert fetched["source"] != "custom"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nonsense"},
        {"type": "object", "properties": {"amount": {"type": 5}}},
        {"type": "object", "required": "amount"},
    ],
    ids=["unknown-type", "bad-nested-type", "required-not-a-list"],
)
async def test_invalid_json_schema_is_400(api: Api, schema: dict[str, Any]) -> None:
    response = await api.http.post(
        "/v1/event-types", json={**CUSTOM, "schema": schema, "example": {}}, headers=api.admin
    )
    body = assert_error(response, 400)
    assert body["error"].startswith("'schema' is not a valid JSON Schema"), body["error"]
    assert_error(await api.http.get("/v1/event-types/invoice.paid", headers=api.admin), 404)


@pytest.mark.parametrize(
    ("schema", "ref"),
    [
        ({"$ref": "https://example.com/schemas/invoice.json"}, "https://example.com/schemas/invoice.json"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "#/$defs/missing"),
    ],
    ids=["remote", "dangling-local"],
)
async def test_unresolvable_ref_is_400(api: Api, schema: dict[str, Any], ref: str) -> None:
    """Otherwise the first event reaching the reference would fail with a 500."""
    response = await api.http.post(
        "/v1/event-types", json={**CUSTOM, "schema": schema, "example": {}}, headers=api.admin
    )
    assert_error(
        response, 400, f"'schema' has a $ref that cannot be resolved: {ref!r} (remote refs are not fetched)"
    )
    assert_error(await api.http.get("/v1/event-types/invoice.paid", headers=api.admin), 404)


async def test_local_refs_are_accepted_and_enforced(api: Api) -> None:
    _, auth = await api.tenant()
    schema = {
        "type": "object",
        "$defs": {"money": {"type": "integer", "minimum": 0}},
        "properties": {"amount": {"$ref": "#/$defs/money"}},
        "required": ["amount"],
    }
    await add_custom(api, schema=schema, example={"amount": 3})
    good = await api.http.post(
        "/v1/events", json={"event": "invoice.paid", "data": {"amount": 3}}, headers=auth
    )
    assert_ok(good, 202)
    bad = await api.http.post(
        "/v1/events", json={"event": "invoice.paid", "data": {"amount": -3}}, headers=auth
    )
    assert assert_error(bad, 400)["error"].startswith("data.amount:")


async def test_example_not_matching_schema_is_400(api: Api) -> None:
    response = await api.http.post(
        "/v1/event-types",
        json={**CUSTOM, "example": {"invoice_id": "inv_1", "amount": "lots"}},
        headers=api.admin,
    )
    body = assert_error(response, 400)
    assert body["error"].startswith("'example' does not match 'schema': data.amount"), body["error"]
    assert_error(await api.http.get("/v1/event-types/invoice.paid", headers=api.admin), 404)


@pytest.mark.parametrize("name", ["has space", "trailing.", ".leading", "a..b", "x" * 101, "wild.*", "*"])
async def test_invalid_event_type_name_is_400(api: Api, name: str) -> None:
    response = await api.http.post("/v1/event-types", json={**CUSTOM, "name": name}, headers=api.admin)
    body = assert_error(response, 400)
    assert body["error"].startswith("'name'"), body["error"]
