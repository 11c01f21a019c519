"""POST /v1/events/batch: many events in one transaction, all or nothing."""

from __future__ import annotations

import asyncio
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


async def test_concurrent_single_posts_of_several_tenants_are_each_stored_in_their_own_tenant(
    api: Api,
) -> None:
    """Single events posted at once are group-committed; each must still land in its own tenant, with
    its own subscriptions, and answer with its own id."""
    auth_a, example, hook_a = await _setup(api)
    _, auth_b = await api.tenant("B")
    assert_ok(
        await api.http.post(
            "/v1/webhooks", json={"url": "https://example.com/b", "events": ["order.*"]}, headers=auth_b
        ),
        201,
    )
    order = assert_ok(await api.http.get("/v1/event-types/order.created", headers=auth_b))["example"]

    async def post(auth: dict[str, str], event: str, data: dict[str, Any], n: int) -> dict[str, Any]:
        body = {"event": event, "data": data, "id": f"{event}-{n}"}
        answer: dict[str, Any] = assert_ok(await api.http.post("/v1/events", json=body, headers=auth), 202)
        return answer

    answers = await asyncio.gather(
        *(post(auth_a, "message.sent", example, n) for n in range(30)),
        *(post(auth_b, "order.created", order, n) for n in range(30)),
        *(post(auth_b, "message.sent", example, n) for n in range(10)),  # B has no message.* endpoint
    )
    assert [a["id"] for a in answers[:30]] == [f"message.sent-{n}" for n in range(30)]
    assert all(a["deliveries"] == 1 for a in answers[:60])
    assert all(a["deliveries"] == 0 for a in answers[60:])
    listed_a = assert_ok(await api.http.get("/v1/events?limit=250", headers=auth_a))["items"]
    listed_b = assert_ok(await api.http.get("/v1/events?limit=250", headers=auth_b))["items"]
    assert len(listed_a) == 30 and len(listed_b) == 40
    event = assert_ok(await api.http.get("/v1/events/message.sent-7", headers=auth_a))
    assert [d["webhook_id"] for d in event["delivery_status"]] == [hook_a]
    assert_ok(await api.http.get("/v1/events/message.sent-7", headers=auth_b))  # B's own event, same id
