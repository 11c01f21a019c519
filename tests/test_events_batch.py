"""POST /v1/events/batch: many events in one transaction, all or nothing."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, assert_error, assert_ok


async def _setup(api: Api) -> tuple[dict[str, str], dict[str, Any], int]:
    _, auth = await api.tenant()
    hook = assert_ok(
        await api.http.post(
            "/v1/webhooks", json={"url": "https://example.com/a", "events": ["message.*"]}, headers=auth
        ),
        201,
    )
    example = assert_ok(await api.http.get("/v1/event-types/message.sent", headers=auth))["example"]
    return auth, example, hook["id"]


async def test_batch_accepts_every_event_with_its_deliveries(api: Api) -> None:
    auth, example, hook_id = await _setup(api)
    batch = [{"event": "message.sent", "data": example} for _ in range(25)]
    data = assert_ok(await api.http.post("/v1/events/batch", json={"events": batch}, headers=auth), 202)
    assert data["accepted"] == 25
    ids = [item["id"] for item in data["items"]]
    assert len(set(ids)) == 25
    assert all(item["deliveries"] == 1 and item["created"] for item in data["items"])
    event = assert_ok(await api.http.get(f"/v1/events/{ids[7]}", headers=auth))
    assert [d["webhook_id"] for d in event["delivery_status"]] == [hook_id]
    listed = assert_ok(await api.http.get("/v1/events?limit=250", headers=auth))
    assert {e["id"] for e in listed["items"]} == set(ids)


async def test_one_invalid_event_rejects_the_whole_batch_and_names_it(api: Api) -> None:
    auth, example, _ = await _setup(api)
    batch = [{"event": "message.sent", "data": example}, {"event": "message.sent", "data": {"to": 5}}]
    response = await api.http.post("/v1/events/batch", json={"events": batch}, headers=auth)
    body = assert_error(response, 400)
    assert body["error"].startswith("events[1]: data")
    unknown = [{"event": "message.sent", "data": example}, {"event": "mesage.sent", "data": example}]
    response = await api.http.post("/v1/events/batch", json={"events": unknown}, headers=auth)
    assert assert_error(response, 400)["error"].startswith("events[1]: unknown event type 'mesage.sent'")
    listed = assert_ok(await api.http.get("/v1/events", headers=auth))
    assert listed["items"] == []


async def test_repeated_ids_within_and_across_batches_create_nothing_new(api: Api) -> None:
    auth, example, _ = await _setup(api)
    batch = [
        {"event": "message.sent", "data": example, "id": "m-1"},
        {"event": "message.sent", "data": example, "id": "m-1"},
        {"event": "message.sent", "data": example, "id": "m-2"},
    ]
    first = assert_ok(await api.http.post("/v1/events/batch", json={"events": batch}, headers=auth), 202)
    assert [i["created"] for i in first["items"]] == [True, False, True]
    assert first["accepted"] == 2
    again = assert_ok(await api.http.post("/v1/events/batch", json={"events": batch}, headers=auth), 202)
    assert again["accepted"] == 0
    assert [i["id"] for i in again["items"]] == ["m-1", "m-1", "m-2"]
    listed = assert_ok(await api.http.get("/v1/events", headers=auth))
    assert sorted(e["id"] for e in listed["items"]) == ["m-1", "m-2"]


async def test_batch_size_is_bounded(api: Api) -> None:
    auth, example, _ = await _setup(api)
    too_many = [{"event": "message.sent", "data": example}] * 1001
    response = await api.http.post("/v1/events/batch", json={"events": too_many}, headers=auth)
    assert "1000" in assert_error(response, 400)["error"]
    assert_error(await api.http.post("/v1/events/batch", json={"events": []}, headers=auth), 400)


async def test_admin_batch_needs_a_tenant_and_stays_in_it(api: Api) -> None:
    tenant_a, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    example = assert_ok(await api.http.get("/v1/event-types/message.sent", headers=auth_a))["example"]
    batch = {"events": [{"event": "message.sent", "data": example, "id": "x-1"}]}
    assert_error(await api.http.post("/v1/events/batch", json=batch, headers=api.admin), 400)
    assert_ok(
        await api.http.post("/v1/events/batch", json={**batch, "tenant_id": tenant_a}, headers=api.admin), 202
    )
    assert_ok(await api.http.get("/v1/events/x-1", headers=auth_a))
    assert_error(await api.http.get("/v1/events/x-1", headers=auth_b), 404)
