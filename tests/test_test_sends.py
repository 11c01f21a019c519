"""Test sends (issue 11, seeds 000/001/003): ``POST /v1/webhooks/{id}/test``, ``GET`` and ``POST
/v1/webhooks/test``. The real API and real loopback receivers (tests/receivers.py), on SQLite and
PostgreSQL. What users rely on: the outcome reported is what the receiver did (200, 503, a timeout),
the request is signed like a delivery, it is kept in the log marked ``test``, and it never touches the
endpoint's health, breaker or rate limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Receiver, Reply
from tests.test_delivery import hook
from tests.test_endpoint_health import BASE_SETTINGS, breaker, webhook


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(BASE_SETTINGS)


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


async def send_test(api: Api, auth: dict[str, str], hook_id: int, body: Any = None) -> dict[str, Any]:
    path = f"/v1/webhooks/{hook_id}/test"
    response = (
        await api.http.post(path, headers=auth)
        if body is None
        else await api.http.post(path, json=body, headers=auth)
    )
    outcome: dict[str, Any] = assert_ok(response)
    return outcome


async def delivery_detail(api: Api, auth: dict[str, str], delivery_id: int) -> dict[str, Any]:
    found: dict[str, Any] = assert_ok(await api.http.get(f"/v1/deliveries/{delivery_id}", headers=auth))
    return found


def seed_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The seeds' scheme, computed here from its description: hex HMAC-SHA256 of "timestamp.body"."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


async def test_a_test_send_to_a_receiver_that_answers_200(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    rx.always("/ok", Reply(200, b'{"received": true}'))
    created = await hook(api, auth, rx.url("/ok"), events=["message.received"])
    outcome = await send_test(api, auth, created["id"])

    assert outcome["sent"] is True and outcome["succeeded"] is True
    assert outcome["status_code"] == 200 and outcome["error"] is None
    assert outcome["response_body"] == '{"received": true}'
    assert outcome["event"] == "webhook.test" and outcome["duration_ms"] >= 0
    assert outcome["signatures"] == [
        {"scheme": "standard-webhooks", "header": "webhook-signature", "signatures": 1},
        {"scheme": "hmac-sha256-hex", "header": "X-Webhook-Signature", "signatures": 1},
    ]
    (request,) = rx.to("/ok")
    # Signed like a delivery: both schemes verify, with code we did not write for the first.
    StandardWebhook(created["secret"]).verify(request.body, request.headers)
    stamp = request.headers["x-webhook-timestamp"]
    assert request.headers["x-webhook-signature"] == seed_signature(created["secret"], stamp, request.body)
    body = json.loads(request.body)
    assert body["id"] == outcome["event_id"] == request.headers["webhook-id"]
    assert body["event"] == "webhook.test"
    assert body["data"] == {"message": "This is a test event from hookline.", "webhook_id": created["id"]}

    # Kept in the log, marked test, with its one attempt.
    detail = await delivery_detail(api, auth, outcome["delivery_id"])
    assert detail["test"] is True and detail["status"] == "succeeded" and detail["attempts"] == 1
    assert detail["webhook_id"] == created["id"] and detail["event_id"] == outcome["event_id"]
    (attempt,) = detail["attempt_log"]
    assert attempt["test"] is True and attempt["status_code"] == 200
    listed = assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/deliveries", headers=auth))
    assert [d["id"] for d in listed["items"]] == [outcome["delivery_id"]]
    # The event is the tenant's, to this endpoint alone.
    event = assert_ok(await api.http.get(f"/v1/events/{outcome['event_id']}", headers=auth))
    assert event["event"] == "webhook.test" and event["deliveries"] == 1
    # A success does not count toward health either.
    assert (await webhook(api, auth, created["id"]))["health"]["last_success_at"] is None


async def test_failures_and_timeouts_are_reported_and_leave_the_breaker_alone(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    rx.always("/down", Reply(503, b"maintenance"))
    rx.always("/slow", Reply(hang=True))
    down = await hook(api, auth, rx.url("/down"))
    slow = await hook(api, auth, rx.url("/slow"), timeout_seconds=1)

    # More failures than the breaker's consecutive limit (10): a real delivery would open it.
    for _ in range(12):
        outcome = await send_test(api, auth, down["id"])
        assert outcome["succeeded"] is False and outcome["sent"] is True
        assert outcome["status_code"] == 503 and outcome["response_body"] == "maintenance"
    timed_out = await send_test(api, auth, slow["id"])
    assert timed_out["succeeded"] is False and timed_out["status_code"] is None
    assert timed_out["error"] == "timed out after 1 s"

    for endpoint in (down, slow):
        state = await breaker(api, auth, endpoint["id"])
        assert state["state"] == "closed" and state["consecutive_failures"] == 0
        assert state["window"]["requests"] == 0 and state["window"]["failures"] == 0
        health = (await webhook(api, auth, endpoint["id"]))["health"]
        assert health["failing_since"] is None and health["circuit_breaker"] == "closed"
    detail = await delivery_detail(api, auth, timed_out["delivery_id"])
    assert detail["status"] == "failed" and detail["last_error"] == "timed out after 1 s"


async def test_a_test_send_ignores_the_rate_limit_and_a_disabled_endpoint_can_be_tested(
    api: Api, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    created = await hook(api, auth, rx.url("/limited"), rate_limit=1)
    for _ in range(3):
        assert (await send_test(api, auth, created["id"]))["succeeded"] is True
    assert len(rx.to("/limited")) == 3  # within a second: the limit of 1/s is for deliveries
    assert_ok(await api.http.patch(f"/v1/webhooks/{created['id']}", json={"active": False}, headers=auth))
    assert (await send_test(api, auth, created["id"]))["succeeded"] is True
    assert len(rx.to("/limited")) == 4


async def test_a_named_event_type_sends_its_example_or_the_data_given(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    created = await hook(api, auth, rx.url("/typed"))
    example = assert_ok(await api.http.get("/v1/event-types/message.received", headers=auth))["example"]
    first = await send_test(api, auth, created["id"], {"event": "message.received"})
    own = dict(example, text="hello from the test")
    second = await send_test(api, auth, created["id"], {"event": "message.received", "data": own})
    assert first["event"] == second["event"] == "message.received"
    bodies = [json.loads(r.body) for r in rx.to("/typed")]
    assert [b["event"] for b in bodies] == ["message.received", "message.received"]
    assert bodies[0]["data"] == example and bodies[1]["data"] == own


async def test_bad_test_requests_are_refused_with_the_reason(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    created = await hook(api, auth, rx.url("/refused"))
    path = f"/v1/webhooks/{created['id']}/test"
    unknown = await api.http.post(path, json={"event": "mesage.received"}, headers=auth)
    assert "unknown event type 'mesage.received'" in assert_error(unknown, 400)["error"]
    wrong = await api.http.post(path, json={"event": "message.received", "data": {"from": 5}}, headers=auth)
    assert_error(wrong, 400)
    extra = await api.http.post(path, json={"evnt": "webhook.test"}, headers=auth)
    assert_error(extra, 400)
    assert_error(
        await api.http.post("/v1/webhooks/999999/test", headers=auth), 404, "webhook '999999' not found"
    )
    assert rx.requests == []

    # Another tenant's webhook does not exist for this one.
    _, other = await api.tenant("Other")
    assert_error(await api.http.post(path, headers=other), 404, f"webhook '{created['id']}' not found")
    assert rx.requests == []


async def test_an_unverified_endpoint_is_not_sent_a_test(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    rx.always("/unsure", Reply(500))
    created = await hook(api, auth, rx.url("/unsure"), verify=True)
    assert created["verification"]["status"] == "failed"
    handshakes = len(rx.to("/unsure"))
    refused = await api.http.post(f"/v1/webhooks/{created['id']}/test", headers=auth)
    expected = (
        f"webhook {created['id']} has not passed the verification handshake (failed): "
        f"POST /v1/webhooks/{created['id']}/verify first"
    )
    assert_error(refused, 409, expected)
    report = assert_ok(await api.http.get("/v1/webhooks/test", headers=auth))
    assert report["tested"] == 1 and report["succeeded"] == 0
    (result,) = report["results"]
    assert result["sent"] is False and result["error"] == expected and result["delivery_id"] is None
    assert len(rx.to("/unsure")) == handshakes


async def test_the_tenant_wide_forms_test_every_endpoint_of_the_tenant_only(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    _, other = await api.tenant("Other")
    assert_error(
        await api.http.get("/v1/webhooks/test", headers=auth),
        404,
        "the tenant has no webhook to test: register one with POST /v1/webhooks",
    )
    rx.always("/b", Reply(500))
    a = await hook(api, auth, rx.url("/a"))
    b = await hook(api, auth, rx.url("/b"))
    await hook(api, other, rx.url("/not-mine"))

    report = assert_ok(await api.http.get("/v1/webhooks/test", headers=auth))
    assert report["tested"] == 2 and report["succeeded"] == 1
    by_id = {r["webhook_id"]: r for r in report["results"]}
    assert by_id[a["id"]]["succeeded"] is True and by_id[a["id"]]["status_code"] == 200
    assert by_id[b["id"]]["succeeded"] is False and by_id[b["id"]]["status_code"] == 500
    assert rx.to("/not-mine") == []

    posted = assert_ok(
        await api.http.post("/v1/webhooks/test", json={"event": "message.received"}, headers=auth)
    )
    assert posted["tested"] == 2 and {r["event"] for r in posted["results"]} == {"message.received"}
    named = assert_ok(await api.http.get("/v1/webhooks/test?event=message.received", headers=auth))
    assert {r["event"] for r in named["results"]} == {"message.received"}
    assert_error(await api.http.get("/v1/webhooks/test?event=nope.nope", headers=auth), 400)
    assert len(rx.to("/a")) == len(rx.to("/b")) == 3
    assert rx.to("/not-mine") == []


async def test_test_deliveries_are_neither_retried_nor_replayed(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    rx.always("/once", Reply(500))
    created = await hook(api, auth, rx.url("/once"))
    outcome = await send_test(api, auth, created["id"])
    retry = await api.http.post(f"/v1/deliveries/{outcome['delivery_id']}/retry", headers=auth)
    assert_error(
        retry,
        409,
        f"delivery {outcome['delivery_id']} was a test send and is not retried: "
        f"send another with POST /v1/webhooks/{created['id']}/test",
    )
    replayed = assert_ok(
        await api.http.post(
            f"/v1/webhooks/{created['id']}/replay", json={"since": "2000-01-01T00:00:00Z"}, headers=auth
        ),
        202,
    )
    assert replayed["requeued"] == 0
    assert (await delivery_detail(api, auth, outcome["delivery_id"]))["status"] == "failed"


async def test_a_webhook_deleted_while_its_test_is_out_is_a_404(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    rx.always("/going", Reply(200, delay=0.5))
    created = await hook(api, auth, rx.url("/going"))

    async def delete_meanwhile() -> None:
        await rx.wait_for(1, "/going")
        assert (await api.http.delete(f"/v1/webhooks/{created['id']}", headers=auth)).status_code == 200

    response, _ = await asyncio.gather(
        api.http.post(f"/v1/webhooks/{created['id']}/test", headers=auth), delete_meanwhile()
    )
    assert_error(response, 404, f"webhook '{created['id']}' not found")
