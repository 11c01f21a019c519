"""The dispatcher end to end: the real Worker in-process, events posted through the API, real HTTP
receivers on loopback (tests/receivers.py), on SQLite and PostgreSQL.

Schedules are compressed (200 ms retries, 1 s deadline, 5 s lease); every wait is a functional deadline
(poll until a state is reached, fail after a few seconds), never a speed assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook

from hookline.api.services import Services
from hookline.dispatch.worker import Worker
from hookline.store.engine import Store
from hookline.store.schema import endpoints
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Received, Receiver, Reply

BODY_LIMIT = 1024


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "allow_http": True,
        "allowed_networks": "127.0.0.0/8",
        "retry_schedule": "200ms,200ms,200ms",
        "retry_jitter": 0,
        "poll_interval": "100ms",
        "delivery_timeout": "1s",
        "lease": "5s",
        "drain_timeout": "2s",
        "response_body_limit": BODY_LIMIT,
    }


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


@contextlib.asynccontextmanager
async def running(services: Services, **changes: Any) -> AsyncIterator[Worker]:
    """The real Worker on the test's store, with ``changes`` applied to the module's settings."""
    settings = services.settings.model_copy(update=changes) if changes else services.settings
    worker = Worker(services.store, settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


SENDERS = pytest.mark.parametrize("sender", ["pyreqwest", "aiohttp"])


# --- helpers -------------------------------------------------------------------------------------------

_EXAMPLES: dict[str, dict[str, Any]] = {}


async def example(api: Api, auth: dict[str, str], name: str) -> dict[str, Any]:
    if name not in _EXAMPLES:
        found = assert_ok(await api.http.get(f"/v1/event-types/{name}", headers=auth))
        _EXAMPLES[name] = found["example"]
    return dict(_EXAMPLES[name])


async def hook(api: Api, auth: dict[str, str], url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "events": ["*"], **fields}
    created: dict[str, Any] = assert_ok(await api.http.post("/v1/webhooks", json=body, headers=auth), 201)
    return created


async def post(
    api: Api, auth: dict[str, str], event: str = "message.received", data: dict[str, Any] | None = None
) -> str:
    data = data if data is not None else await example(api, auth, event)
    accepted = assert_ok(
        await api.http.post("/v1/events", json={"event": event, "data": data}, headers=auth), 202
    )
    event_id: str = accepted["id"]
    return event_id


async def delivery_id(api: Api, auth: dict[str, str], event_id: str, hook_id: int) -> int:
    event = assert_ok(await api.http.get(f"/v1/events/{event_id}", headers=auth))
    found = [d["id"] for d in event["delivery_status"] if d["webhook_id"] == hook_id]
    assert len(found) == 1, event
    result: int = found[0]
    return result


async def delivery(api: Api, auth: dict[str, str], ident: int) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(await api.http.get(f"/v1/deliveries/{ident}", headers=auth))
    return data


async def until(
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    ready: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Poll ``fetch`` until ``ready`` holds; fail with the last value after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if ready(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {value}")
        await asyncio.sleep(0.05)


async def settled(api: Api, auth: dict[str, str], ident: int, timeout: float = 10.0) -> dict[str, Any]:
    """The delivery once it is succeeded or failed."""
    return await until(
        lambda: delivery(api, auth, ident), lambda d: d["status"] in ("succeeded", "failed"), timeout
    )


async def attempted(
    api: Api, auth: dict[str, str], ident: int, count: int = 1, timeout: float = 10.0
) -> dict[str, Any]:
    """The delivery once at least ``count`` attempts are recorded."""
    return await until(lambda: delivery(api, auth, ident), lambda d: len(d["attempt_log"]) >= count, timeout)


def seed_signature(secret: str, request: Received, prefix: str = "X-Webhook") -> str:
    timestamp = request.headers[f"{prefix}-timestamp".lower()]
    message = timestamp.encode() + b"." + request.body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- signatures and payload ----------------------------------------------------------------------------


@SENDERS
async def test_delivery_is_signed_verifiable_and_shaped(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/signed"), headers={"X-Custom-Token": "custom-value-123"})
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    data = await example(api, auth, "message.received") | {
        "body": 'مرحبا ✓ — naïve \u2028 "quoted" </script>',
        "extra": {"n": [1, 2.5, None, True], "big": 9007199254740991},  # JavaScript's largest exact
    }
    async with running(services, sender=sender):
        event_id = await post(api, auth, data=data)
        (request,) = await rx.wait_for(1, "/signed")
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))

    headers = request.headers
    # Standard Webhooks, checked by two independent public implementations.
    assert StandardWebhook(secret).verify(request.body, headers)["id"] == event_id
    SvixWebhook(secret).verify(request.body, headers)
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(other).verify(request.body, headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(secret).verify(request.body.replace(b"}", b" }", 1), headers)
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]

    # The seeds' style: sha256=<hex HMAC(secret as UTF-8, "{timestamp}.{body}")>.
    assert headers["x-webhook-signature"] == "sha256=" + seed_signature(secret, request)
    assert headers["x-webhook-timestamp"] == headers["webhook-timestamp"]
    assert headers["x-webhook-id"] == event_id
    assert headers["x-webhook-event"] == "message.received"

    body = json.loads(request.body)
    assert set(body) == {"id", "event", "timestamp", "data"}
    assert body["id"] == event_id == headers["webhook-id"]
    assert body["event"] == "message.received"
    assert body["data"] == data
    assert request.method == "POST"
    assert headers["user-agent"].startswith("hookline/")
    assert headers["content-type"] == "application/json"
    assert headers["x-custom-token"] == "custom-value-123"

    assert found["status"] == "succeeded" and found["attempts"] == 1
    (attempt,) = found["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["request_headers"]["X-Custom-Token"] == "[redacted]"
    assert "custom-value-123" not in json.dumps(found)
    assert secret not in json.dumps(found)


@SENDERS
async def test_custom_headers_cannot_override_ours(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    """Whatever custom headers an endpoint holds (written straight to the store here, past registration's
    checks, e.g. from before the signature prefix was branded), ours win and are sent exactly once, in
    any letter case."""
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/clash"))
    forged = {
        "x-awal-webhook-signature": "forged",
        "X-AWAL-WEBHOOK-ID": "forged-id",
        "Webhook-Signature": "v1,Zm9yZ2Vk",
        "content-type": "text/plain",
        "USER-AGENT": "evil/1.0",
        "X-Kept": "kept",
    }
    async with services.store.write() as conn:
        await conn.execute(endpoints.update().where(endpoints.c.id == endpoint["id"]).values(headers=forged))
    async with running(
        services, sender=sender, signature_header_prefix="X-Awal-Webhook", signature_hex_form="hex"
    ):
        event_id = await post(api, auth)
        (request,) = await rx.wait_for(1, "/clash")
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
    # The attempt log shows the headers as sent: one entry per name, ours, the kept one redacted.
    recorded = {name.lower(): value for name, value in found["attempt_log"][0]["request_headers"].items()}
    assert len(recorded) == len(found["attempt_log"][0]["request_headers"])
    assert recorded["content-type"] == "application/json"
    assert recorded["x-awal-webhook-id"] == event_id
    assert recorded["x-kept"] == "[redacted]"
    secret = endpoint["secret"]
    assert request.header_values("X-Awal-Webhook-Signature") == [
        seed_signature(secret, request, "X-Awal-Webhook")
    ]
    assert request.header_values("X-Awal-Webhook-Id") == [event_id]
    assert len(request.header_values("webhook-signature")) == 1
    StandardWebhook(secret).verify(request.body, request.headers)
    assert request.header_values("Content-Type") == ["application/json"]
    assert len(request.header_values("User-Agent")) == 1
    assert request.headers["user-agent"].startswith("hookline/")
    assert request.headers["x-kept"] == "kept"


async def test_branded_seed_style_headers_with_bare_hex(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/branded"))
    async with running(services, signature_header_prefix="X-Awal-Webhook", signature_hex_form="hex"):
        event_id = await post(api, auth, "order.created")
        (request,) = await rx.wait_for(1, "/branded")
    headers = request.headers
    signature = headers["x-awal-webhook-signature"]
    assert signature == seed_signature(endpoint["secret"], request, "X-Awal-Webhook")
    assert len(signature) == 64 and not signature.startswith("sha256=")
    assert headers["x-awal-webhook-id"] == event_id
    assert headers["x-awal-webhook-event"] == "order.created"
    assert headers["x-awal-webhook-timestamp"] == headers["webhook-timestamp"]
    assert "x-webhook-signature" not in headers
    StandardWebhook(endpoint["secret"]).verify(request.body, headers)


async def test_rotation_signs_with_old_and_new_secret(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/rotated"))
    old = endpoint["secret"]
    rotated = assert_ok(await api.http.post(f"/v1/webhooks/{endpoint['id']}/secret/rotate", headers=auth))
    new = rotated["secret"]
    assert new != old
    async with running(services):
        await post(api, auth)
        (request,) = await rx.wait_for(1, "/rotated")
    headers = request.headers
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    StandardWebhook(old).verify(request.body, headers)
    StandardWebhook(new).verify(request.body, headers)
    SvixWebhook(old).verify(request.body, headers)
    seed_values = headers["x-webhook-signature"].split(",")
    assert sorted(seed_values) == sorted("sha256=" + seed_signature(secret, request) for secret in (old, new))
    # Without a grace period the replaced secret stops signing at once.
    body = {"grace_period_seconds": 0}
    newest = assert_ok(
        await api.http.post(f"/v1/webhooks/{endpoint['id']}/secret/rotate", json=body, headers=auth)
    )["secret"]
    async with running(services):
        await post(api, auth)
        requests = await rx.wait_for(2, "/rotated")
    latest = requests[1].headers
    assert len(latest["webhook-signature"].split(" ")) == 2  # newest, and `old` still in its grace
    StandardWebhook(newest).verify(requests[1].body, latest)
    StandardWebhook(old).verify(requests[1].body, latest)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(new).verify(requests[1].body, latest)


# --- retry policy ----------------------------------------------------------------------------------------


@SENDERS
async def test_retry_on_500_then_success_records_every_attempt(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/flaky"), headers={"X-Api-Key": "do-not-log-me"})
    rx.plan("/flaky", Reply(500, body=b"E" * 5000), Reply(200, body=b"thanks"))
    async with running(services, sender=sender):
        event_id = await post(api, auth)
        ident = await delivery_id(api, auth, event_id, endpoint["id"])
        found = await settled(api, auth, ident)
    first, second = rx.to("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    assert first.body == second.body

    assert found["status"] == "succeeded" and found["attempts"] == 2
    assert found["last_status_code"] == 200
    log = found["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2]
    assert [a["status_code"] for a in log] == [500, 200]
    assert log[0]["response_body"] == "E" * BODY_LIMIT
    assert log[1]["response_body"] == "thanks"
    assert moment(log[1]["started_at"]) > moment(log[0]["started_at"])
    for attempt in log:
        assert isinstance(attempt["duration_ms"], int) and attempt["duration_ms"] >= 0
        recorded = attempt["request_headers"]
        assert recorded["X-Api-Key"] == "[redacted]"
        assert recorded["webhook-id"] == event_id
        assert recorded["User-Agent"].startswith("hookline/")
    assert "do-not-log-me" not in json.dumps(found)


async def test_400_and_401_are_not_retried_and_410_disables(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    hooks = {code: await hook(api, auth, rx.url(f"/answer-{code}")) for code in (400, 401, 410)}
    for code in hooks:
        rx.always(f"/answer-{code}", Reply(code))
    async with running(services):
        event_id = await post(api, auth)
        results = {
            code: await settled(api, auth, await delivery_id(api, auth, event_id, h["id"]))
            for code, h in hooks.items()
        }
        await asyncio.sleep(0.4)  # two retry periods: a retry would have arrived by now
    for code, found in results.items():
        assert found["status"] == "failed", found
        assert found["attempts"] == 1 and found["last_status_code"] == code
        assert len(rx.to(f"/answer-{code}")) == 1
    gone = assert_ok(await api.http.get(f"/v1/webhooks/{hooks[410]['id']}", headers=auth))
    assert gone["active"] is False
    assert gone["disabled_reason"] and "410" in gone["disabled_reason"]
    for code in (400, 401):
        still = assert_ok(await api.http.get(f"/v1/webhooks/{hooks[code]['id']}", headers=auth))
        assert still["active"] is True and still["disabled_reason"] is None


async def test_retry_after_is_honoured(api: Api, services: Services, rx: Receiver) -> None:
    """429 and 503 with ``Retry-After: 1``: the next attempt comes about 1 s later, not after the 200 ms
    of the schedule."""
    _, auth = await api.tenant()
    hooks = {code: await hook(api, auth, rx.url(f"/busy-{code}")) for code in (429, 503)}
    for code in hooks:
        rx.plan(f"/busy-{code}", Reply(code, headers={"Retry-After": "1"}), Reply(200))
    async with running(services):
        event_id = await post(api, auth)
        results = {
            code: await settled(api, auth, await delivery_id(api, auth, event_id, h["id"]))
            for code, h in hooks.items()
        }
    for code, found in results.items():
        assert found["status"] == "succeeded"
        first, second = found["attempt_log"]
        assert first["status_code"] == code and second["status_code"] == 200
        gap = moment(second["started_at"]) - moment(first["started_at"])
        assert gap >= timedelta(seconds=0.9), (code, gap)  # the schedule alone would retry after 200 ms
        arrivals = rx.to(f"/busy-{code}")
        assert arrivals[1].at - arrivals[0].at >= 0.9


async def test_failed_once_the_schedule_runs_out(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/down"))
    rx.always("/down", Reply(500, body=b"down"))
    schedule = services.settings.retry_schedule
    async with running(services):
        event_id = await post(api, auth)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
        await asyncio.sleep(0.4)  # two retry periods: a fifth attempt would have arrived by now
    assert found["status"] == "failed"
    assert found["attempts"] == 1 + len(schedule) == 4
    assert [a["attempt"] for a in found["attempt_log"]] == [1, 2, 3, 4]
    assert all(a["status_code"] == 500 for a in found["attempt_log"])
    assert found["next_attempt_at"] is None and found["completed_at"] is not None
    assert len(rx.to("/down")) == 4


async def test_per_endpoint_schedule_replaces_the_default(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/short"), retry_schedule="100ms")
    rx.always("/short", Reply(502))
    async with running(services):
        event_id = await post(api, auth)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
    assert found["status"] == "failed" and found["attempts"] == 2
    assert len(rx.to("/short")) == 2


# --- what a receiver can do wrong ------------------------------------------------------------------------


@SENDERS
async def test_hanging_or_trickling_receiver_times_out_and_is_rescheduled(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    """The deadline covers the whole attempt: a receiver that never answers, and one that answers 200
    and then trickles its body forever, both end at the 1 s deadline."""
    _, auth = await api.tenant()
    hanging = await hook(api, auth, rx.url("/hang"), retry_schedule="30s")
    trickling = await hook(api, auth, rx.url("/trickle"), retry_schedule="30s")
    rx.always("/hang", Reply(hang=True))
    rx.always("/trickle", Reply(trickle=True))
    async with running(services, sender=sender):
        event_id = await post(api, auth)
        found = await attempted(api, auth, await delivery_id(api, auth, event_id, hanging["id"]))
        cut = await attempted(api, auth, await delivery_id(api, auth, event_id, trickling["id"]))
    (attempt,) = found["attempt_log"]
    assert attempt["status_code"] is None
    assert "timed out" in attempt["error"]
    assert found["status"] == "pending" and found["attempts"] == 1
    assert "timed out" in found["last_error"]
    assert moment(found["next_attempt_at"]) > moment(attempt["started_at"]) + timedelta(seconds=20)
    assert len(rx.to("/hang")) == 1

    (attempt,) = cut["attempt_log"]
    assert "timed out" in attempt["error"]
    assert attempt["status_code"] == 200  # the head arrived before the deadline and is recorded
    assert cut["status"] == "succeeded"  # a 200 counts, however its body ended
    assert attempt["duration_ms"] < 4000  # bounded by the 1 s deadline, not by the receiver
    assert len(rx.to("/trickle")) == 1


async def test_endpoint_timeout_cannot_outlast_the_lease(api: Api, services: Services, rx: Receiver) -> None:
    """An endpoint may ask for a longer deadline than the lease covers (3 s here); the attempt must still
    end while the delivery is leased, or the delivery is claimed and sent again while still in flight."""
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/slowpoke"), timeout_seconds=8, retry_schedule="30s")
    rx.always("/slowpoke", Reply(hang=True))
    async with running(services, lease=3.0):
        event_id = await post(api, auth)
        ident = await delivery_id(api, auth, event_id, endpoint["id"])
        found = await attempted(api, auth, ident, timeout=12)
    assert len(rx.to("/slowpoke")) == 1
    assert "timed out" in found["attempt_log"][0]["error"]


@SENDERS
async def test_redirect_is_not_followed(api: Api, services: Services, rx: Receiver, sender: str) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/moved"))
    rx.plan("/moved", Reply(redirect=rx.url("/target")), Reply(200))
    async with running(services, sender=sender):
        event_id = await post(api, auth)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
    assert rx.to("/target") == []
    assert len(rx.to("/moved")) == 2
    first, second = found["attempt_log"]
    assert first["status_code"] == 302 and "redirect" in first["error"]
    assert second["status_code"] == 200
    assert found["status"] == "succeeded"


@SENDERS
async def test_response_body_is_truncated_to_the_limit(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    _, auth = await api.tenant()
    big = await hook(api, auth, rx.url("/big"))
    endless = await hook(api, auth, rx.url("/endless"))
    text = (b"0123456789abcdef" * 640)[: 10 * 1024]
    rx.always("/big", Reply(200, body=text))
    rx.always("/endless", Reply(endless=True))
    async with running(services, sender=sender):
        event_id = await post(api, auth)
        found_big = await settled(api, auth, await delivery_id(api, auth, event_id, big["id"]))
        found_endless = await settled(api, auth, await delivery_id(api, auth, event_id, endless["id"]))
    assert found_big["attempt_log"][0]["response_body"] == text[:BODY_LIMIT].decode()
    (attempt,) = found_endless["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["response_body"] == "x" * BODY_LIMIT
    assert found_endless["status"] == "succeeded"


@SENDERS
async def test_a_body_of_announced_length_sent_in_parts_is_recorded_whole(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    """A Content-Length body is read until that length has come (the sender stops there without waiting
    for the end of the stream), however it is split, and cut at the limit like any other."""
    _, auth = await api.tenant()
    short = await hook(api, auth, rx.url("/short"), max_in_flight=1)
    long = await hook(api, auth, rx.url("/long"))
    rx.always("/short", Reply(200, parts=(b"first half, ", b"second half")))
    rx.always("/long", Reply(200, parts=(b"a" * (BODY_LIMIT - 10), b"b" * 100)))
    async with running(services, sender=sender):
        event_ids = [await post(api, auth) for _ in range(2)]
        found = [await settled(api, auth, await delivery_id(api, auth, e, short["id"])) for e in event_ids]
        found_long = await settled(api, auth, await delivery_id(api, auth, event_ids[0], long["id"]))
    for each in found:
        assert each["status"] == "succeeded"
        assert each["attempt_log"][0]["response_body"] == "first half, second half"
    assert found_long["attempt_log"][0]["response_body"] == "a" * (BODY_LIMIT - 10) + "b" * 10


@SENDERS
async def test_response_body_with_nul_bytes_is_recorded(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    """PostgreSQL text cannot hold NUL; a receiver answering one must not make the attempt unrecordable."""
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/nul"))
    rx.always("/nul", Reply(200, body=b"ok\x00\xff done"))
    async with running(services, sender=sender):
        event_id = await post(api, auth)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]), timeout=6)
    assert found["status"] == "succeeded" and found["attempts"] == 1
    body = found["attempt_log"][0]["response_body"]
    assert body.startswith("ok") and body.endswith(" done")
    assert len(rx.to("/nul")) == 1


async def test_stop_finishes_in_flight_sends_and_hands_back_the_rest(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/drain"), max_in_flight=1)
    rx.always("/drain", Reply(200, delay=0.3))
    async with running(services):
        event_ids = [await post(api, auth) for _ in range(3)]
        await rx.wait_for(1, "/drain")
        await asyncio.sleep(0.1)  # the worker claims the next one, which must wait for the first
    # Stopped while the first send was in flight: it finished and was recorded...
    idents = [await delivery_id(api, auth, e, endpoint["id"]) for e in event_ids]
    states = [await delivery(api, auth, i) for i in idents]
    assert [d["status"] for d in states].count("succeeded") == 1
    assert len(rx.to("/drain")) == 1
    # ...and nothing else stayed leased: the rest is due now, not when a lease runs out.
    async with services.store.read() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT leased_by, next_attempt_at FROM deliveries WHERE status = 'pending'")
            )
        ).all()
    assert len(rows) == 2
    assert all(row.leased_by is None for row in rows)
    for found in states:
        if found["status"] == "pending":
            assert found["attempts"] == 0
            assert moment(found["next_attempt_at"]) <= datetime.now(UTC)
    async with running(services):
        await rx.wait_for(3, "/drain")
        for ident in idents:
            await settled(api, auth, ident)
    assert sorted(r.headers["webhook-id"] for r in rx.to("/drain")) == sorted(event_ids)


# --- fairness and egress ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backlog", [False, True], ids=["live", "backlog"])
async def test_hanging_endpoint_does_not_starve_others(
    api: Api, services: Services, rx: Receiver, backlog: bool
) -> None:
    """Per-endpoint cap 2, worker capacity 8: ten events for a hanging endpoint (the oldest, in the backlog
    case) leave room for another endpoint's twenty, which all arrive before the first hang times out (5 s:
    with the 1 s default, a loaded machine now and then took longer than that for the twenty)."""
    _, auth = await api.tenant()
    hang = 5.0
    await hook(
        api, auth, rx.url("/stuck"), events=["message.received"], retry_schedule="30s", timeout_seconds=hang
    )
    await hook(api, auth, rx.url("/quick"), events=["order.created"])
    rx.always("/stuck", Reply(hang=True))
    worker_settings = {"max_in_flight_per_endpoint": 2, "worker_concurrency": 8}

    async def post_all() -> None:
        for _ in range(10):
            await post(api, auth, "message.received")
        if not backlog:
            await rx.wait_for(2, "/stuck")
        # One batch: the deadline below measures the worker, not twenty requests to the API.
        data = await example(api, auth, "order.created")
        batch = {"events": [{"event": "order.created", "data": data} for _ in range(20)]}
        assert_ok(await api.http.post("/v1/events/batch", json=batch, headers=auth), 202)

    if backlog:
        await post_all()
    async with running(services, **worker_settings):
        if not backlog:
            await post_all()
        quick = await rx.wait_for(20, "/quick", timeout=10)
        stuck = rx.to("/stuck")
    first_hang = min(r.at for r in stuck)
    # Every quick delivery arrived before the hanging requests reached their 1 s deadline...
    assert max(r.at for r in quick) < first_hang + hang, max(r.at for r in quick) - first_hang
    # ...and until then, never more than two requests were in flight to the hanging endpoint.
    assert len([r for r in stuck if r.at < first_hang + hang - 0.1]) == 2
    assert len({r.headers["webhook-id"] for r in quick}) == 20


@SENDERS
async def test_send_time_egress_policy_refuses_loopback(
    api: Api, services: Services, rx: Receiver, sender: str
) -> None:
    """Registered while loopback was allowed; a worker whose policy no longer allows it must refuse to
    connect, for an IP literal and for a name that resolves to loopback."""
    _, auth = await api.tenant()
    literal = await hook(api, auth, rx.url("/ssrf"), retry_schedule="30s")
    named = await hook(api, auth, rx.url("/ssrf"), retry_schedule="30s")
    async with services.store.write() as conn:  # registration refuses names like localhost
        await conn.execute(
            endpoints.update()
            .where(endpoints.c.id == named["id"])
            .values(url=f"http://localhost:{rx.port}/ssrf")
        )
    async with running(services, sender=sender, allowed_networks=()):
        event_id = await post(api, auth)
        results = [
            await attempted(api, auth, await delivery_id(api, auth, event_id, h["id"]))
            for h in (literal, named)
        ]
    for found in results:
        (attempt,) = found["attempt_log"]
        assert attempt["status_code"] is None
        assert "refusing to connect" in attempt["error"], attempt["error"]
        assert found["status"] == "pending"  # a connection error is retried (the policy may change)
    assert rx.requests == []


# --- the delivery API ------------------------------------------------------------------------------------


async def test_list_filter_and_paginate_deliveries(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/listed"))
    rx.plan("/listed", Reply(400))  # whichever delivery comes first fails for good
    async with running(services):
        messages = [await post(api, auth, "message.received") for _ in range(3)]
        orders = [await post(api, auth, "order.created") for _ in range(2)]
        idents = {e: await delivery_id(api, auth, e, endpoint["id"]) for e in messages + orders}
        for ident in idents.values():
            await settled(api, auth, ident)
    base = f"/v1/webhooks/{endpoint['id']}/deliveries"

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = assert_ok(await api.http.get(base, params=params, headers=auth))
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [d["id"] for d in seen] == sorted(idents.values(), reverse=True)
    assert {d["event_id"] for d in seen} == set(idents)
    assert all(d["webhook_id"] == endpoint["id"] for d in seen)

    failed = assert_ok(await api.http.get(base, params={"status": "failed"}, headers=auth))["items"]
    succeeded = assert_ok(await api.http.get(base, params={"status": "succeeded"}, headers=auth))["items"]
    assert len(failed) == 1 and len(succeeded) == 4
    assert failed[0]["last_status_code"] == 400 and failed[0]["attempts"] == 1
    by_event = assert_ok(await api.http.get(base, params={"event": "order.created"}, headers=auth))["items"]
    assert sorted(d["event_id"] for d in by_event) == sorted(orders)
    assert all(d["event"] == "order.created" for d in by_event)
    none = assert_ok(await api.http.get(base, params={"status": "pending"}, headers=auth))["items"]
    assert none == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert assert_ok(await api.http.get(base, params={"since": later}, headers=auth))["items"] == []
    assert assert_ok(await api.http.get(base, params={"until": earlier}, headers=auth))["items"] == []
    window = {"since": earlier, "until": later}
    assert len(assert_ok(await api.http.get(base, params=window, headers=auth))["items"]) == 5
    assert_error(await api.http.get(base, params={"since": "2025-01-01T00:00:00"}, headers=auth), 400)
    assert_error(await api.http.get(base, params={"status": "lost"}, headers=auth), 400)


async def test_manual_retry_resends_a_failed_delivery(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/retry-me"))
    rx.plan("/retry-me", Reply(400, body=b"bad"))
    async with running(services):
        event_id = await post(api, auth)
        ident = await delivery_id(api, auth, event_id, endpoint["id"])
        first = await settled(api, auth, ident)
        assert first["status"] == "failed" and first["attempts"] == 1
        queued = assert_ok(await api.http.post(f"/v1/deliveries/{ident}/retry", headers=auth), 202)
        assert queued == {"id": ident, "status": "pending"}
        await rx.wait_for(2, "/retry-me")
        again = await until(lambda: delivery(api, auth, ident), lambda d: d["status"] == "succeeded")
    assert again["attempts"] == 2
    assert [a["status_code"] for a in again["attempt_log"]] == [400, 200]
    first_request, second_request = rx.to("/retry-me")
    assert first_request.headers["webhook-id"] == second_request.headers["webhook-id"] == event_id
    assert first_request.body == second_request.body


async def test_replay_requeues_matching_deliveries(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/replayed"))
    since = datetime.now(UTC) - timedelta(seconds=5)
    replay = f"/v1/webhooks/{endpoint['id']}/replay"
    async with running(services):
        event_ids = [await post(api, auth) for _ in range(2)]
        for event_id in event_ids:
            await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        nothing = assert_ok(await api.http.post(replay, json={"since": future}, headers=auth), 202)
        assert nothing["requeued"] == 0
        only_failed = {"since": since.isoformat(), "status": "failed"}
        assert assert_ok(await api.http.post(replay, json=only_failed, headers=auth), 202)["requeued"] == 0
        answered = assert_ok(
            await api.http.post(replay, json={"since": since.isoformat()}, headers=auth), 202
        )
        assert answered == {"webhook_id": endpoint["id"], "requeued": 2}
        requests = await rx.wait_for(4, "/replayed")
        for event_id in event_ids:
            ident = await delivery_id(api, auth, event_id, endpoint["id"])
            await until(lambda i=ident: delivery(api, auth, i), lambda d: d["attempts"] == 2)
    assert sorted(r.headers["webhook-id"] for r in requests) == sorted(event_ids * 2)
    assert_error(await api.http.post(replay, json={"since": "2025-01-01T00:00:00"}, headers=auth), 400)


async def test_delivery_routes_are_tenant_isolated(api: Api, services: Services, rx: Receiver) -> None:
    _, auth = await api.tenant("Owner")
    _, stranger = await api.tenant("Stranger")
    endpoint = await hook(api, auth, rx.url("/private"))
    async with running(services):
        event_id = await post(api, auth)
        ident = await delivery_id(api, auth, event_id, endpoint["id"])
        await settled(api, auth, ident)
    since = {"since": "2020-01-01T00:00:00Z"}
    assert_error(await api.http.get(f"/v1/deliveries/{ident}", headers=stranger), 404)
    assert_error(await api.http.post(f"/v1/deliveries/{ident}/retry", headers=stranger), 404)
    assert_error(await api.http.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=stranger), 404)
    assert_error(
        await api.http.post(f"/v1/webhooks/{endpoint['id']}/replay", json=since, headers=stranger), 404
    )
    assert_error(await api.http.get("/v1/deliveries/not-a-number", headers=auth), 404)
    # The stranger's failed attempts changed nothing.
    found = await delivery(api, auth, ident)
    assert found["status"] == "succeeded" and found["attempts"] == 1
    assert len(rx.to("/private")) == 1
    async with services.store.read() as conn:
        pending = await conn.execute(sa.text("SELECT count(*) FROM deliveries WHERE status = 'pending'"))
        assert pending.scalar_one() == 0


async def test_one_endpoint_backlog_larger_than_a_batch_flows_without_waiting_for_the_poll(
    api: Api, services: Services, rx: Receiver
) -> None:
    """A single busy endpoint is skipped by the claim while it has a local backlog; when that backlog
    runs out the worker must claim again at once, not at the next safety-net poll (here 60 s)."""
    _, auth = await api.tenant()
    await hook(api, auth, rx.url("/one"), events=["message.sent"])
    data = await example(api, auth, "message.sent")
    batch = {"events": [{"event": "message.sent", "data": data} for _ in range(60)]}
    assert_ok(await api.http.post("/v1/events/batch", json=batch, headers=auth), 202)
    async with running(services, poll_interval=60.0, worker_batch_size=10, max_in_flight_per_endpoint=2):
        received = await rx.wait_for(60, "/one", timeout=20)
    assert len({r.headers["webhook-id"] for r in received}) == 60


async def test_a_worker_in_another_process_is_woken_by_postgresql_notify(
    api: Api, services: Services, rx: Receiver, database_url: str
) -> None:
    """The worker has its own connection pool (as in another process): only NOTIFY can wake it before its
    60 s safety-net poll."""
    if not database_url.startswith("postgresql"):
        pytest.skip("NOTIFY is PostgreSQL's; SQLite wakes its single process in-process")
    _, auth = await api.tenant()
    await hook(api, auth, rx.url("/notify"), events=["message.sent"])
    other_store = Store.from_url(database_url, services.store.keyring)
    worker = Worker(other_store, services.settings.model_copy(update={"poll_interval": 60.0}))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)  # let the worker's first (empty) claim pass and its LISTEN start
        event_id = await post(api, auth, "message.sent")
        [received] = await rx.wait_for(1, "/notify", timeout=10)
        assert received.headers["webhook-id"] == event_id
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)
        await other_store.close()
