"""POST/GET /v1/events: validation, fan-out, idempotency (also under concurrency), isolation, listing."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from hookline.api.app import create_app
from hookline.api.services import Services
from hookline.store.engine import Store
from hookline.store.event_types import EventTypeRegistry
from hookline.store.schema import deliveries, events
from tests.conftest import Api, assert_error, assert_ok


async def example(api: Api, auth: dict[str, str], name: str = "message.received") -> dict[str, Any]:
    """The catalog's example payload for an event type: valid data by definition."""
    data: dict[str, Any] = assert_ok(await api.http.get(f"/v1/event-types/{name}", headers=auth))["example"]
    return data


async def webhook(
    api: Api, auth: dict[str, str], events: list[str], channels: list[str] | None = None
) -> int:
    body: dict[str, Any] = {"url": "https://example.com/hook", "events": events}
    if channels is not None:
        body["channels"] = channels
    created = assert_ok(await api.http.post("/v1/webhooks", json=body, headers=auth), 201)
    hook_id: int = created["id"]
    return hook_id


async def post_event(
    api: Api,
    auth: dict[str, str],
    body: dict[str, Any],
    idempotency_key: str | None = None,
) -> Any:
    headers = dict(auth)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return assert_ok(await api.http.post("/v1/events", json=body, headers=headers), 202)


async def delivered_to(api: Api, auth: dict[str, str], event_id: str) -> set[int]:
    event = assert_ok(await api.http.get(f"/v1/events/{event_id}", headers=auth))
    return {d["webhook_id"] for d in event["delivery_status"]}


async def listed_ids(api: Api, auth: dict[str, str], **params: Any) -> list[str]:
    data = assert_ok(await api.http.get("/v1/events", params=params, headers=auth))
    return [e["id"] for e in data["items"]]


async def count_rows(services: Services, table: sa.Table, tenant_id: str) -> int:
    async with services.store.read() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
        return int((await conn.execute(query)).scalar_one())


def fixed_time(moment: datetime) -> datetime:
    return moment


# --- accepting and fanning out -------------------------------------------------------------------------


async def test_post_answers_202_with_id_and_delivery_count(api: Api) -> None:
    _, auth = await api.tenant()
    await webhook(api, auth, ["message.received"])
    await webhook(api, auth, ["*"])
    accepted = await post_event(api, auth, {"event": "message.received", "data": await example(api, auth)})
    assert isinstance(accepted["id"], str) and accepted["id"]
    assert accepted["event"] == "message.received"
    assert accepted["deliveries"] == 2


async def test_fan_out_reaches_exact_prefix_and_star_subscriptions_only(api: Api) -> None:
    _, auth = await api.tenant()
    exact = await webhook(api, auth, ["message.received"])
    prefix = await webhook(api, auth, ["message.*"])
    star = await webhook(api, auth, ["*"])
    await webhook(api, auth, ["message.sent"])
    await webhook(api, auth, ["order.*"])
    accepted = await post_event(api, auth, {"event": "message.received", "data": await example(api, auth)})
    assert accepted["deliveries"] == 3
    assert await delivered_to(api, auth, accepted["id"]) == {exact, prefix, star}


async def test_fan_out_creates_one_delivery_per_endpoint_even_with_overlapping_patterns(
    api: Api, services: Services
) -> None:
    tenant_id, auth = await api.tenant()
    hook = await webhook(api, auth, ["message.received", "message.*"])
    accepted = await post_event(api, auth, {"event": "message.received", "data": await example(api, auth)})
    assert accepted["deliveries"] == 1
    assert await delivered_to(api, auth, accepted["id"]) == {hook}
    assert await count_rows(services, deliveries, tenant_id) == 1


async def test_inactive_endpoint_gets_a_held_delivery(api: Api) -> None:
    """Nothing is lost while an endpoint is disabled: its deliveries are created and held."""
    _, auth = await api.tenant()
    active = await webhook(api, auth, ["message.received"])
    paused = await webhook(api, auth, ["message.received"])
    patched = assert_ok(await api.http.patch(f"/v1/webhooks/{paused}", json={"active": False}, headers=auth))
    assert patched["active"] is False
    accepted = await post_event(api, auth, {"event": "message.received", "data": await example(api, auth)})
    assert accepted["deliveries"] == 2
    assert await delivered_to(api, auth, accepted["id"]) == {active, paused}
    view = assert_ok(await api.http.get(f"/v1/webhooks/{paused}", headers=auth))
    assert view["health"]["held_reason"] == "disabled" and view["health"]["held"] == 1


async def test_channel_endpoint_receives_only_events_on_its_channels(api: Api) -> None:
    _, auth = await api.tenant()
    on_a = await webhook(api, auth, ["*"], channels=["a"])
    on_b = await webhook(api, auth, ["*"], channels=["b"])
    everything = await webhook(api, auth, ["*"])
    data = await example(api, auth)

    tagged = await post_event(api, auth, {"event": "message.received", "data": data, "channels": ["a", "c"]})
    assert await delivered_to(api, auth, tagged["id"]) == {on_a, everything}

    both = await post_event(api, auth, {"event": "message.received", "data": data, "channels": ["b", "a"]})
    assert await delivered_to(api, auth, both["id"]) == {on_a, on_b, everything}


async def test_event_without_channels_reaches_only_endpoints_without_channels(api: Api) -> None:
    _, auth = await api.tenant()
    await webhook(api, auth, ["*"], channels=["a"])
    everything = await webhook(api, auth, ["*"])
    accepted = await post_event(api, auth, {"event": "message.received", "data": await example(api, auth)})
    assert accepted["deliveries"] == 1
    assert await delivered_to(api, auth, accepted["id"]) == {everything}


async def test_event_with_no_subscriber_is_accepted_with_zero_deliveries(api: Api) -> None:
    _, auth = await api.tenant()
    await webhook(api, auth, ["order.*"])
    accepted = await post_event(api, auth, {"event": "message.received", "data": await example(api, auth)})
    assert accepted["deliveries"] == 0
    event = assert_ok(await api.http.get(f"/v1/events/{accepted['id']}", headers=auth))
    assert event["delivery_status"] == []


async def test_get_event_shows_data_and_pending_deliveries(api: Api) -> None:
    _, auth = await api.tenant()
    hook = await webhook(api, auth, ["message.received"])
    data = await example(api, auth)
    accepted = await post_event(api, auth, {"event": "message.received", "data": data, "channels": ["x"]})
    event = assert_ok(await api.http.get(f"/v1/events/{accepted['id']}", headers=auth))
    assert event["id"] == accepted["id"]
    assert event["event"] == "message.received"
    assert event["data"] == data
    assert event["channels"] == ["x"]
    assert event["deliveries"] == 1
    [delivery] = event["delivery_status"]
    assert delivery["webhook_id"] == hook
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0
    assert delivery["next_attempt_at"] is not None
    assert delivery["completed_at"] is None


async def test_admin_posts_for_a_tenant_with_tenant_id(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    hook = await webhook(api, auth, ["message.received"])
    body = {"event": "message.received", "data": await example(api, auth), "tenant_id": tenant_id}
    accepted = await post_event(api, api.admin, body)
    assert await delivered_to(api, auth, accepted["id"]) == {hook}


# --- validation -----------------------------------------------------------------------------------------


async def test_data_of_the_wrong_type_is_400_with_its_path(api: Api) -> None:
    _, auth = await api.tenant()
    data = {**await example(api, auth), "from": 123}
    response = await api.http.post(
        "/v1/events", json={"event": "message.received", "data": data}, headers=auth
    )
    assert_error(response, 400, "data.from: 123 is not of type 'string'")


async def test_missing_required_property_is_400(api: Api, services: Services) -> None:
    tenant_id, auth = await api.tenant()
    data = await example(api, auth)
    del data["message_id"]
    response = await api.http.post(
        "/v1/events", json={"event": "message.received", "data": data}, headers=auth
    )
    assert_error(response, 400, "data: 'message_id' is a required property")
    assert await count_rows(services, events, tenant_id) == 0


async def test_unknown_event_type_is_400_naming_it_with_a_suggestion(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/events", json={"event": "mesage.sent", "data": {"messageId": "m"}}, headers=auth
    )
    error = assert_error(response, 400)["error"]
    assert "'mesage.sent'" in error
    assert "did you mean" in error and "'message.sent'" in error


async def test_data_must_be_an_object(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/events", json={"event": "message.received", "data": [1]}, headers=auth
    )
    assert_error(response, 400)


# --- idempotency ----------------------------------------------------------------------------------------


async def test_repeated_idempotency_key_returns_first_event_and_creates_nothing(
    api: Api, services: Services
) -> None:
    tenant_id, auth = await api.tenant()
    await webhook(api, auth, ["message.received"])
    body = {"event": "message.received", "data": await example(api, auth)}
    first = await post_event(api, auth, body, idempotency_key="order-42")
    again = await post_event(api, auth, body, idempotency_key="order-42")
    assert again == first
    assert await listed_ids(api, auth) == [first["id"]]
    assert len(await delivered_to(api, auth, first["id"])) == 1
    assert await count_rows(services, deliveries, tenant_id) == 1


async def test_replay_is_marked_in_a_header(api: Api) -> None:
    _, auth = await api.tenant()
    body = {"event": "message.received", "data": await example(api, auth)}
    headers = {**auth, "Idempotency-Key": "k1"}
    first = await api.http.post("/v1/events", json=body, headers=headers)
    again = await api.http.post("/v1/events", json=body, headers=headers)
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"


async def test_repeated_client_id_returns_first_event_and_creates_nothing(
    api: Api, services: Services
) -> None:
    tenant_id, auth = await api.tenant()
    await webhook(api, auth, ["message.received"])
    body = {"event": "message.received", "data": await example(api, auth), "id": "evt_client_1"}
    first = await post_event(api, auth, body)
    again = await post_event(api, auth, body)
    assert first["id"] == again["id"] == "evt_client_1"
    assert again["deliveries"] == first["deliveries"] == 1
    assert await listed_ids(api, auth) == ["evt_client_1"]
    assert await count_rows(services, deliveries, tenant_id) == 1


async def test_concurrent_duplicate_idempotency_keys_create_one_event(api: Api, services: Services) -> None:
    tenant_id, auth = await api.tenant()
    await webhook(api, auth, ["message.received"])
    await webhook(api, auth, ["*"])
    body = {"event": "message.received", "data": await example(api, auth)}
    headers = {**auth, "Idempotency-Key": "same-key"}
    responses = await asyncio.gather(
        *(api.http.post("/v1/events", json=body, headers=headers) for _ in range(20))
    )
    accepted = [assert_ok(r, 202) for r in responses]
    assert len({a["id"] for a in accepted}) == 1
    assert {a["deliveries"] for a in accepted} == {2}
    assert await count_rows(services, events, tenant_id) == 1
    assert await count_rows(services, deliveries, tenant_id) == 2


async def test_concurrent_duplicate_client_ids_create_one_event(api: Api, services: Services) -> None:
    tenant_id, auth = await api.tenant()
    await webhook(api, auth, ["message.received"])
    body = {"event": "message.received", "data": await example(api, auth), "id": "evt_race"}
    responses = await asyncio.gather(
        *(api.http.post("/v1/events", json=body, headers=auth) for _ in range(20))
    )
    accepted = [assert_ok(r, 202) for r in responses]
    assert {a["id"] for a in accepted} == {"evt_race"}
    assert await count_rows(services, events, tenant_id) == 1
    assert await count_rows(services, deliveries, tenant_id) == 1


async def test_idempotency_keys_are_per_tenant(api: Api, services: Services) -> None:
    tenant_a, auth_a = await api.tenant("A")
    tenant_b, auth_b = await api.tenant("B")
    body = {"event": "message.received", "data": await example(api, auth_a)}
    from_a = await post_event(api, auth_a, body, idempotency_key="shared")
    from_b = await post_event(api, auth_b, body, idempotency_key="shared")
    assert from_a["id"] != from_b["id"]
    assert await count_rows(services, events, tenant_a) == 1
    assert await count_rows(services, events, tenant_b) == 1


async def test_client_ids_are_per_tenant(api: Api, services: Services) -> None:
    tenant_a, auth_a = await api.tenant("A")
    tenant_b, auth_b = await api.tenant("B")
    body = {"event": "message.received", "data": await example(api, auth_a), "id": "evt_1"}
    await post_event(api, auth_a, body)
    await post_event(api, auth_b, body)
    assert await count_rows(services, events, tenant_a) == 1
    assert await count_rows(services, events, tenant_b) == 1


# --- isolation ------------------------------------------------------------------------------------------


async def test_another_tenants_event_is_404(api: Api) -> None:
    _, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    accepted = await post_event(
        api, auth_a, {"event": "message.received", "data": await example(api, auth_a)}
    )
    assert_error(await api.http.get(f"/v1/events/{accepted['id']}", headers=auth_b), 404)
    assert_ok(await api.http.get(f"/v1/events/{accepted['id']}", headers=auth_a))


async def test_another_tenants_events_are_not_listed(api: Api) -> None:
    _, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    data = await example(api, auth_a)
    mine = await post_event(api, auth_b, {"event": "message.received", "data": data})
    await post_event(api, auth_a, {"event": "message.received", "data": data})
    assert await listed_ids(api, auth_b) == [mine["id"]]


async def test_tenant_key_cannot_post_for_another_tenant(api: Api, services: Services) -> None:
    tenant_a, _ = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    body = {"event": "message.received", "data": await example(api, auth_b), "tenant_id": tenant_a}
    response = await api.http.post("/v1/events", json=body, headers=auth_b)
    assert response.status_code in (403, 404)
    assert_error(response, response.status_code)
    assert await count_rows(services, events, tenant_a) == 0


# --- listing --------------------------------------------------------------------------------------------


async def test_list_is_newest_first_with_cursor_pagination(api: Api) -> None:
    _, auth = await api.tenant()
    data = await example(api, auth)
    posted = [
        (await post_event(api, auth, {"event": "message.received", "data": data}))["id"] for _ in range(5)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = assert_ok(await api.http.get("/v1/events", params=params, headers=auth))
        assert len(page["items"]) <= 2
        seen += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == posted[::-1]
    assert pages == 3


async def test_list_filters_by_event_type(api: Api) -> None:
    _, auth = await api.tenant()
    received = await post_event(api, auth, {"event": "message.received", "data": await example(api, auth)})
    await post_event(api, auth, {"event": "message.sent", "data": await example(api, auth, "message.sent")})
    assert await listed_ids(api, auth, event="message.received") == [received["id"]]


async def three_days_of_events(api: Api, services: Services, auth: dict[str, str]) -> list[str]:
    """Post one event at midnight (UTC) of 1, 2 and 3 January 2025; returns their ids, oldest first."""
    data = await example(api, auth)
    ids = []
    for day in (1, 2, 3):
        # The API stamps events with services.now(): pin it.
        services.now = functools.partial(fixed_time, datetime(2025, 1, day, tzinfo=UTC))  # type: ignore[method-assign]
        ids.append((await post_event(api, auth, {"event": "message.received", "data": data}))["id"])
    return ids


async def test_list_since_includes_events_from_that_moment_on(api: Api, services: Services) -> None:
    _, auth = await api.tenant()
    ids = await three_days_of_events(api, services, auth)
    assert await listed_ids(api, auth, since="2025-01-02T00:00:00Z") == [ids[2], ids[1]]


async def test_list_until_excludes_events_from_that_moment_on(api: Api, services: Services) -> None:
    _, auth = await api.tenant()
    ids = await three_days_of_events(api, services, auth)
    assert await listed_ids(api, auth, until="2025-01-02T00:00:00Z") == [ids[0]]


async def test_list_since_and_until_together_select_a_window(api: Api, services: Services) -> None:
    _, auth = await api.tenant()
    ids = await three_days_of_events(api, services, auth)
    window = {"since": "2025-01-01T12:00:00+00:00", "until": "2025-01-03T00:00:00Z"}
    assert await listed_ids(api, auth, **window) == [ids[1]]


async def test_list_time_filters_honour_the_utc_offset(api: Api, services: Services) -> None:
    _, auth = await api.tenant()
    ids = await three_days_of_events(api, services, auth)
    # 03:00 at +03:00 is midnight UTC, the instant of the second event; a naive comparison of wall
    # clocks would put it three hours later and leave the second event out.
    assert await listed_ids(api, auth, since="2025-01-02T03:00:00+03:00") == [ids[2], ids[1]]
    assert await listed_ids(api, auth, until="2025-01-02T03:00:01+03:00") == [ids[1], ids[0]]


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", ["2025-01-01T00:00:00", "2025-01-01"])
async def test_naive_datetime_filter_is_400(api: Api, name: str, value: str) -> None:
    _, auth = await api.tenant()
    response = await api.http.get("/v1/events", params={name: value}, headers=auth)
    error = assert_error(response, 400)["error"]
    assert f"'{name}'" in error and "timezone" in error


# --- the stored payload ---------------------------------------------------------------------------------


async def test_stored_payload_is_id_event_timestamp_data(api: Api, services: Services) -> None:
    tenant_id, auth = await api.tenant()
    data = await example(api, auth)
    accepted = await post_event(api, auth, {"event": "message.received", "data": data})
    async with services.store.read() as conn:
        query = sa.select(events.c.payload).where(
            events.c.tenant_id == tenant_id, events.c.id == accepted["id"]
        )
        raw = (await conn.execute(query)).scalar_one()
    payload = orjson.loads(raw)
    assert list(payload) == ["id", "event", "timestamp", "data"]
    assert payload["id"] == accepted["id"]
    assert payload["event"] == "message.received"
    assert payload["data"] == data
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None


async def test_duplicates_racing_through_two_api_processes_create_one_event(
    api: Api, services: Services, database_url: str
) -> None:
    """Two API processes (each its own pool and group-commit writer) get the same Idempotency-Key at once:
    the unique constraint settles the race, and every request answers with the one event."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several API processes share one database only on PostgreSQL")
    tenant_id, auth = await api.tenant()
    await webhook(api, auth, ["message.received"])
    second_store = Store.from_url(database_url, services.store.keyring)
    second = Services(
        settings=services.settings,
        store=second_store,
        registry=EventTypeRegistry(second_store),
        admin_key_hash=services.admin_key_hash,
    )
    transport = httpx.ASGITransport(app=create_app(second), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://second.test") as other:
            body = {"event": "message.received", "data": await example(api, auth)}
            headers = {**auth, "Idempotency-Key": "raced"}
            assert_ok(await other.get("/v1/webhooks", headers=auth))  # both processes warm, then race
            responses = await asyncio.gather(
                *(client.post("/v1/events", json=body, headers=headers) for client in [api.http, other] * 10)
            )
    finally:
        await second_store.close()
    accepted = [assert_ok(r, 202) for r in responses]
    assert len({a["id"] for a in accepted}) == 1
    assert await count_rows(services, events, tenant_id) == 1
    assert await count_rows(services, deliveries, tenant_id) == 1
