"""Per-endpoint scheduling end to end: circuit breaker, rate limit, Retry-After pause, 410 and auto-disable,
the verification handshake, the default-webhook form, tenant isolation and the cross-worker concurrency
cap. The real API, the real Worker and real loopback receivers (tests/receivers.py), on SQLite and
PostgreSQL.

Settings are compressed (100 ms retries, 50 ms poll, sub-second cool-downs); timing assertions compare
arrival times at the receiver with the moments the API reports (opened_at, next_probe_at,
paused_until), never the speed of the machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline.api.services import Services
from hookline.dispatch.worker import Worker
from hookline.store.engine import Store
from hookline.store.queue import Job, Outcome
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Received, Receiver, Reply
from tests.test_delivery import delivery, delivery_id, example, hook, moment, post, running, settled, until

BASE_SETTINGS: dict[str, Any] = {
    "allow_http": True,
    "allowed_networks": "127.0.0.0/8",
    "retry_schedule": "100ms,100ms,100ms",
    "retry_jitter": 0,
    "poll_interval": "50ms",
    "delivery_timeout": "1s",
    "lease": "5s",
    "drain_timeout": "2s",
}
GONE = "the endpoint answered 410 Gone"
SLACK = 0.02  # seconds: monotonic (receiver) against wall clock (API) over a few seconds


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(BASE_SETTINGS)


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


# --- helpers -------------------------------------------------------------------------------------------

_MONOTONIC_TO_WALL = time.time() - time.monotonic()


def wall(request: Received) -> datetime:
    """When ``request`` arrived, on the wall clock the API's timestamps use."""
    return datetime.fromtimestamp(request.at + _MONOTONIC_TO_WALL, UTC)


async def webhook(api: Api, auth: dict[str, str], hook_id: int) -> dict[str, Any]:
    found: dict[str, Any] = assert_ok(await api.http.get(f"/v1/webhooks/{hook_id}", headers=auth))
    return found


async def breaker(api: Api, auth: dict[str, str], hook_id: int) -> dict[str, Any]:
    found: dict[str, Any] = assert_ok(
        await api.http.get(f"/v1/webhooks/{hook_id}/circuit-breaker", headers=auth)
    )
    return found


async def breaker_opened(api: Api, auth: dict[str, str], hook_id: int) -> dict[str, Any]:
    """The endpoint's breaker once it is open (fails after a few seconds)."""
    return await until(lambda: breaker(api, auth, hook_id), lambda b: b["state"] == "open")


async def deliveries_of(api: Api, auth: dict[str, str], hook_id: int) -> list[dict[str, Any]]:
    page = assert_ok(
        await api.http.get(f"/v1/webhooks/{hook_id}/deliveries", params={"limit": 250}, headers=auth)
    )
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return sorted(items, key=lambda d: d["id"])


async def all_settled(api: Api, auth: dict[str, str], hook_id: int, count: int) -> list[dict[str, Any]]:
    """The endpoint's ``count`` deliveries, once none is pending (fails after a few seconds)."""

    async def fetch() -> dict[str, Any]:
        return {"items": await deliveries_of(api, auth, hook_id)}

    def done(found: dict[str, Any]) -> bool:
        items = found["items"]
        return len(items) == count and all(d["status"] != "pending" for d in items)

    result: list[dict[str, Any]] = (await until(fetch, done, timeout=10))["items"]
    return result


async def queue_events(api: Api, auth: dict[str, str], count: int, event: str = "message.received") -> None:
    data = await example(api, auth, event)
    batch = {"events": [{"event": event, "data": data} for _ in range(count)]}
    accepted = assert_ok(await api.http.post("/v1/events/batch", json=batch, headers=auth), 202)
    assert accepted["accepted"] == count


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def most_in_one_second(arrivals: list[float]) -> int:
    """The most arrivals within any window [t, t + 1 s)."""
    arrivals = sorted(arrivals)
    return max(len([b for b in arrivals[i:] if b < a + 1.0]) for i, a in enumerate(arrivals))


# --- 1. the circuit breaker ------------------------------------------------------------------------------


async def test_breaker_opens_holds_without_spending_attempts_and_a_probe_closes_it(
    api: Api, services: Services, rx: Receiver
) -> None:
    """Three failures in a row open it; while open only one probe per cool-down reaches the receiver
    (the cool-down doubles after a failed probe); held deliveries spend no attempt; a successful probe
    closes it and every held delivery goes."""
    _, auth = await api.tenant()
    cb = {"consecutive_failures": 3, "cooldown": 0.5}
    # One at a time, so exactly three requests are sent before the third failure opens the breaker.
    endpoint = await hook(api, auth, rx.url("/cb"), circuit_breaker=cb, max_in_flight=1)
    assert endpoint["circuit_breaker"] == cb
    rx.always("/cb", Reply(500))
    await queue_events(api, auth, 6)
    async with running(services):
        first = await breaker_opened(api, auth, endpoint["id"])
        assert first["webhook_id"] == endpoint["id"]
        assert first["consecutive_failures"] == 3
        assert first["held"] == 6
        opened_at, first_probe_at = moment(first["opened_at"]), moment(first["next_probe_at"])
        assert abs((first_probe_at - opened_at).total_seconds() - 0.5) < 0.01
        asked = datetime.now(UTC)
        health = (await webhook(api, auth, endpoint["id"]))["health"]
        if asked < first_probe_at - timedelta(seconds=SLACK):  # (a slow machine may ask after the probe)
            assert health["circuit_breaker"] == "open"
        assert health["held_reason"] == "circuit_open" and health["held"] == 6

        # The probe fails: open again, for twice as long.
        second = await until(
            lambda: breaker(api, auth, endpoint["id"]),
            lambda b: b["state"] == "open" and b["consecutive_failures"] == 4,
        )
        reopened_at, second_probe_at = moment(second["opened_at"]), moment(second["next_probe_at"])
        assert abs((second_probe_at - reopened_at).total_seconds() - 1.0) < 0.01
        # Every attempt so far is a request the receiver saw: holding spent none.
        sent = rx.to("/cb")
        assert len(sent) == 4
        held = await deliveries_of(api, auth, endpoint["id"])
        assert all(d["status"] == "pending" for d in held)
        assert sum(d["attempts"] for d in held) == 4
        assert sorted(d["attempts"] for d in held) == [0, 0, 1, 1, 1, 1], held
        await asyncio.sleep(0.3)  # retries are due every 100 ms: none may go while the breaker is open
        assert len(rx.to("/cb")) == 4
        assert [d["attempts"] for d in await deliveries_of(api, auth, endpoint["id"])] == [
            d["attempts"] for d in held
        ]

        rx.always("/cb", Reply(200))
        done = await all_settled(api, auth, endpoint["id"], 6)
        closed = await breaker(api, auth, endpoint["id"])

    requests = rx.to("/cb")
    assert len(requests) == 10  # 3 failures, 2 probes, then the 5 others once
    # Three before it opened; then exactly one request per cool-down, each no earlier than its probe time.
    assert all(wall(r) <= opened_at + timedelta(seconds=SLACK) for r in requests[:3])
    assert wall(requests[3]) >= first_probe_at - timedelta(seconds=SLACK)
    assert wall(requests[3]) <= reopened_at + timedelta(seconds=SLACK)
    assert wall(requests[4]) >= second_probe_at - timedelta(seconds=SLACK)
    assert all(d["status"] == "succeeded" for d in done)
    assert sum(d["attempts"] for d in done) == 10
    assert closed["state"] == "closed" and closed["consecutive_failures"] == 0
    assert closed["held"] == 0 and closed["next_probe_at"] is None


async def test_resetting_breakers_releases_held_deliveries_at_once(
    api: Api, services: Services, rx: Receiver
) -> None:
    """One endpoint's reset, then the account-level reset: each closes the breaker long before its 60 s
    cool-down and the held deliveries go at once. The account-level list shows the tenant's breakers."""
    _, auth = await api.tenant()
    cb = {"consecutive_failures": 2, "cooldown": 60}
    first = await hook(api, auth, rx.url("/first"), circuit_breaker=cb)
    second = await hook(api, auth, rx.url("/second"), circuit_breaker=cb)
    rx.always("/first", Reply(503))
    rx.always("/second", Reply(503))
    async with running(services):
        for _ in range(2):
            await post(api, auth)
        for h in (first, second):
            await breaker_opened(api, auth, h["id"])
        listed = assert_ok(await api.http.get("/v1/webhooks/circuit-breaker", headers=auth))
        assert sorted(b["webhook_id"] for b in listed) == [first["id"], second["id"]]
        assert all(b["state"] == "open" and b["held"] == 2 for b in listed)
        assert all(b["consecutive_failures"] == 2 and b["next_probe_at"] is not None for b in listed)
        rx.always("/first", Reply(200))
        rx.always("/second", Reply(200))

        reset = assert_ok(
            await api.http.post(f"/v1/webhooks/{first['id']}/circuit-breaker/reset", headers=auth)
        )
        assert reset["webhook_id"] == first["id"]
        assert reset["state"] == "closed" and reset["consecutive_failures"] == 0 and reset["held"] == 0
        assert all(d["status"] == "succeeded" for d in await all_settled(api, auth, first["id"], 2))
        assert (await breaker(api, auth, second["id"]))["state"] == "open"  # only the one named
        assert len(rx.to("/second")) == 2

        everyone = assert_ok(await api.http.post("/v1/webhooks/circuit-breaker/reset", headers=auth))
        assert everyone == {"reset": [first["id"], second["id"]]}
        assert all(d["status"] == "succeeded" for d in await all_settled(api, auth, second["id"], 2))
    for h in (first, second):
        assert (await breaker(api, auth, h["id"]))["state"] == "closed"
        assert [d["attempts"] for d in await deliveries_of(api, auth, h["id"])] == [2, 2]


# --- 2. what counts against an endpoint ------------------------------------------------------------------


async def test_4xx_answers_other_than_408_and_429_do_not_open_the_breaker(
    api: Api, services: Services, rx: Receiver
) -> None:
    """A receiver answering 400 or 404 is up: with a threshold of two failures and a 60 s cool-down, an
    opened breaker would hold the deliveries (and these never settle); instead all run their course."""
    _, auth = await api.tenant()
    cb = {"consecutive_failures": 2, "cooldown": 60}
    hooks = {path: await hook(api, auth, rx.url(path), circuit_breaker=cb) for path in ("/e400", "/e404")}
    rx.always("/e400", Reply(400))
    rx.always("/e404", Reply(404))
    # 500 and 404 alternating, one at a time: never two failures in a row.
    mixed = await hook(api, auth, rx.url("/mixed"), circuit_breaker=cb, max_in_flight=1)
    rx.plan("/mixed", *[Reply(500), Reply(404)] * 4)
    async with running(services):
        for _ in range(3):
            await post(api, auth)
        e400 = await all_settled(api, auth, hooks["/e400"]["id"], 3)
        e404 = await all_settled(api, auth, hooks["/e404"]["id"], 3)
        mixed_done = await all_settled(api, auth, mixed["id"], 3)
    assert [(d["status"], d["attempts"]) for d in e400] == [("failed", 1)] * 3  # 400 is not retried
    assert [(d["status"], d["attempts"]) for d in e404] == [("failed", 4)] * 3  # retried, never held
    assert len(rx.to("/e400")) == 3 and len(rx.to("/e404")) == 12
    assert all(d["status"] == "succeeded" for d in mixed_done)
    for h in (*hooks.values(), mixed):
        found = await breaker(api, auth, h["id"])
        assert found["state"] == "closed" and found["consecutive_failures"] == 0
        assert found["opened_at"] is None


async def test_408_429_timeouts_and_refused_connections_open_the_breaker(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    cb = {"consecutive_failures": 2, "cooldown": 60}
    hooks = {
        "408": await hook(api, auth, rx.url("/e408"), circuit_breaker=cb),
        "429": await hook(api, auth, rx.url("/e429"), circuit_breaker=cb),
        "timeout": await hook(api, auth, rx.url("/hang"), circuit_breaker=cb, timeout_seconds=0.2),
        "refused": await hook(api, auth, f"http://127.0.0.1:{closed_port()}/nobody", circuit_breaker=cb),
    }
    rx.always("/e408", Reply(408))
    rx.always("/e429", Reply(429))  # no Retry-After: only the breaker can hold it back
    rx.always("/hang", Reply(hang=True))
    async with running(services):
        for _ in range(2):
            await post(api, auth)
        opened = {kind: await breaker_opened(api, auth, h["id"]) for kind, h in hooks.items()}
        await asyncio.sleep(0.3)  # retries are due every 100 ms: none may go while the breaker is open
        for kind, h in hooks.items():
            held = await deliveries_of(api, auth, h["id"])
            assert [(d["status"], d["attempts"]) for d in held] == [("pending", 1)] * 2, (kind, held)
    for kind, found in opened.items():
        assert found["consecutive_failures"] == 2, (kind, found)
        assert found["held"] == 2
    for path in ("/e408", "/e429", "/hang"):
        assert len(rx.to(path)) == 2, path
    timed_out = await deliveries_of(api, auth, hooks["timeout"]["id"])
    assert all("timed out" in d["last_error"] for d in timed_out)
    refused = await deliveries_of(api, auth, hooks["refused"]["id"])
    assert all(d["last_status_code"] is None and d["last_error"] for d in refused)


# --- 3. the rate limit ---------------------------------------------------------------------------------


async def test_rate_limit_spreads_deliveries_and_can_be_set_and_cleared(
    api: Api, services: Services, rx: Receiver
) -> None:
    """10 requests per second (burst 1): 25 queued events arrive no more than 11 in any second, one every
    100 ms; cleared, a backlog goes at once."""
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/paced"), rate_limit=10)
    assert endpoint["rate_limit"] == 10
    assert endpoint["health"]["rate_limit"] == 10
    await queue_events(api, auth, 25)
    async with running(services):
        received = await rx.wait_for(25, "/paced", timeout=15)
    arrivals = sorted(r.at for r in received)
    assert most_in_one_second(arrivals) <= 11, arrivals
    span = arrivals[-1] - arrivals[0]
    # 24 intervals of 100 ms after the first (less what the first request's own latency may hide)...
    assert span >= 2.2, span
    # ...and the limit is a pace, not a crawl: nothing waits for the 50 ms poll or longer.
    assert span < 5.0, span
    assert len({r.headers["webhook-id"] for r in received}) == 25

    url = f"/v1/webhooks/{endpoint['id']}"
    changed = assert_ok(await api.http.patch(url, json={"rate_limit": 2.5}, headers=auth))
    assert changed["rate_limit"] == 2.5 and changed["health"]["rate_limit"] == 2.5
    cleared = assert_ok(await api.http.patch(url, json={"rate_limit": None}, headers=auth))
    assert cleared["rate_limit"] is None and cleared["health"]["rate_limit"] is None
    assert (await webhook(api, auth, endpoint["id"]))["rate_limit"] is None
    await queue_events(api, auth, 15)
    async with running(services):
        unlimited = (await rx.wait_for(40, "/paced", timeout=10))[25:]
    assert most_in_one_second([r.at for r in unlimited]) == 15


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, "'rate_limit': input should be greater than 0"),
        (-1, "'rate_limit': input should be greater than 0"),
        ("x", "'rate_limit': input should be a valid number"),
        (1e9, "'rate_limit': input should be less than or equal to 100000"),
    ],
)
async def test_invalid_rate_limit_is_400(api: Api, value: object, error: str) -> None:
    _, auth = await api.tenant()
    body = {"url": "https://example.com/hook", "rate_limit": value}
    assert_error(await api.http.post("/v1/webhooks", json=body, headers=auth), 400, error)
    created = await hook(api, auth, "https://example.com/hook", rate_limit=5)
    url = f"/v1/webhooks/{created['id']}"
    assert_error(await api.http.patch(url, json={"rate_limit": value}, headers=auth), 400, error)
    assert (await webhook(api, auth, created["id"]))["rate_limit"] == 5


# --- 4. Retry-After pauses the whole endpoint ------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_pauses_the_whole_endpoint(
    api: Api, services: Services, rx: Receiver, status: int
) -> None:
    """After one answer with ``Retry-After: 1`` no request reaches the endpoint for a second, for any of
    its deliveries (the other two were due at once)."""
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/busy"), max_in_flight=1)
    rx.plan("/busy", Reply(status, headers={"Retry-After": "1"}))
    await queue_events(api, auth, 3)
    async with running(services):
        paused = await until(
            lambda: webhook(api, auth, endpoint["id"]), lambda w: w["health"]["paused_until"] is not None
        )
        done = await all_settled(api, auth, endpoint["id"], 3)
    health = paused["health"]
    assert health["held_reason"] == "paused" and health["held"] == 3
    first, *rest = rx.to("/busy")
    until_at = moment(health["paused_until"])
    assert timedelta(seconds=0.99) <= until_at - wall(first) <= timedelta(seconds=1.5)
    assert len(rest) == 3
    assert all(wall(r) >= until_at - timedelta(seconds=SLACK) for r in rest)
    # The first request after the pause is another delivery: the pause held it, not its own schedule.
    assert rest[0].headers["webhook-id"] != first.headers["webhook-id"]
    assert all(d["status"] == "succeeded" for d in done)
    assert sorted(d["attempts"] for d in done) == [1, 1, 2]


# --- 5. 410 Gone, disabled endpoints and enabling them again -----------------------------------------


@pytest.mark.parametrize("discard_held", [False, True], ids=["release", "discard"])
async def test_410_disables_at_once_and_holds_new_deliveries_until_enabled(
    api: Api, services: Services, rx: Receiver, discard_held: bool
) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/gone"))
    url = f"/v1/webhooks/{endpoint['id']}"
    rx.always("/gone", Reply(410))
    async with running(services):
        gone = await settled(api, auth, await delivery_id(api, auth, await post(api, auth), endpoint["id"]))
        assert gone["status"] == "failed" and gone["attempts"] == 1
        disabled = await webhook(api, auth, endpoint["id"])
        assert disabled["active"] is False
        assert disabled["disabled_reason"] == GONE
        assert disabled["health"]["disabled_reason"] == GONE

        held_ids = [await delivery_id(api, auth, await post(api, auth), endpoint["id"]) for _ in range(2)]
        await asyncio.sleep(0.3)  # six polls: nothing is sent to a disabled endpoint
        assert len(rx.to("/gone")) == 1
        for ident in held_ids:
            found = await delivery(api, auth, ident)
            assert found["status"] == "pending" and found["attempts"] == 0, found
        health = (await webhook(api, auth, endpoint["id"]))["health"]
        assert health["held"] == 2 and health["held_reason"] == "disabled"

        for body in ({"discard_held": True}, {"active": False, "discard_held": True}):
            response = await api.http.patch(url, json=body, headers=auth)
            assert_error(response, 400, "'discard_held' applies only with \"active\": true")
        assert (await webhook(api, auth, endpoint["id"]))["active"] is False

        rx.always("/gone", Reply(200))
        enable = {"active": True, "discard_held": True} if discard_held else {"active": True}
        enabled = assert_ok(await api.http.patch(url, json=enable, headers=auth))
        assert enabled["active"] is True and enabled["disabled_reason"] is None
        assert enabled["health"]["disabled_reason"] is None
        results = [await settled(api, auth, ident) for ident in held_ids]
        # Enabled, the endpoint takes new events either way.
        fresh = await settled(api, auth, await delivery_id(api, auth, await post(api, auth), endpoint["id"]))
    assert fresh["status"] == "succeeded"
    after = await webhook(api, auth, endpoint["id"])
    assert after["health"]["held"] == 0 and after["health"]["held_reason"] is None
    if discard_held:
        assert all(d["status"] == "failed" and d["attempts"] == 0 for d in results), results
        assert all(d["last_error"] == "discarded when the endpoint was enabled again" for d in results)
        assert len(rx.to("/gone")) == 2  # the 410 and the fresh event
    else:
        assert all(d["status"] == "succeeded" and d["attempts"] == 1 for d in results), results
        assert len(rx.to("/gone")) == 4


# --- 6. auto-disable -------------------------------------------------------------------------------------


async def test_an_endpoint_failing_without_a_success_for_too_long_is_disabled(
    api: Api, services: Services, rx: Receiver
) -> None:
    """auto_disable_after = 1 s: an endpoint that only fails is disabled (its delivery held, not failed);
    one that fails as often but succeeds in between stays enabled."""
    _, auth = await api.tenant()
    never_open = {"consecutive_failures": 10_000, "min_requests": 100_000}  # only auto-disable holds it
    patient = {"retry_schedule": [0.2] * 20, "circuit_breaker": never_open}
    down = await hook(api, auth, rx.url("/down"), **patient)
    flaky = await hook(api, auth, rx.url("/flaky"), max_in_flight=1, **patient)
    rx.always("/down", Reply(500))
    rx.plan("/flaky", *[Reply(500), Reply(200)] * 50)
    async with running(services, auto_disable_after=1.0):
        event_id = await post(api, auth)
        (first_flaky,) = await rx.wait_for(1, "/flaky")
        while time.monotonic() < first_flaky.at + 1.5:  # failing half the time for longer than 1 s
            await post(api, auth, "order.created")
            await asyncio.sleep(0.15)
        disabled = await until(
            lambda: webhook(api, auth, down["id"]), lambda w: w["active"] is False, timeout=6
        )
        ident = await delivery_id(api, auth, event_id, down["id"])
        still = await webhook(api, auth, flaky["id"])
    reason = disabled["disabled_reason"]
    assert "without a success" in reason and "auto-disabled after 1s" in reason, reason
    health = disabled["health"]
    assert health["disabled_reason"] == reason and health["held_reason"] == "disabled"
    assert health["last_success_at"] is None
    failing_since = moment(health["failing_since"])
    assert moment(disabled["updated_at"]) - failing_since >= timedelta(seconds=1)
    assert wall(rx.to("/down")[0]) <= failing_since + timedelta(seconds=SLACK)
    held = await delivery(api, auth, ident)
    assert held["status"] == "pending"  # held, not failed: enabling it again sends it
    assert held["attempts"] == len(held["attempt_log"]) >= 2
    assert still["active"] is True and still["disabled_reason"] is None
    assert still["health"]["last_success_at"] is not None


# --- 7. the verification handshake -----------------------------------------------------------------------


def assert_handshake(request: Received, secret: str) -> None:
    """A verification request: signed like a delivery, ``{"type": "verification", "challenge": ...}``."""
    StandardWebhook(secret).verify(request.body, request.headers)
    body = json.loads(request.body)
    assert set(body) == {"type", "challenge"} and body["type"] == "verification"
    assert isinstance(body["challenge"], str) and len(body["challenge"]) >= 16


async def test_verified_endpoint_gets_deliveries_and_a_new_url_is_verified_again(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    rx.always("/verify-ok", Reply(echo_challenge=True))
    rx.always("/moved", Reply(echo_challenge=True))
    rx.always("/broken", Reply(500))
    endpoint = await hook(api, auth, rx.url("/verify-ok"), verify=True)
    verification = endpoint["verification"]
    assert verification["status"] == "verified" and verification["error"] is None
    assert verification["verified_at"] is not None
    (handshake,) = rx.to("/verify-ok")
    assert_handshake(handshake, endpoint["secret"])
    challenges = {json.loads(handshake.body)["challenge"]}
    url = f"/v1/webhooks/{endpoint['id']}"
    async with running(services):
        event_id = await post(api, auth)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
        assert found["status"] == "succeeded"

        moved = assert_ok(await api.http.patch(url, json={"url": rx.url("/moved")}, headers=auth))
        (again,) = rx.to("/moved")
        assert_handshake(again, endpoint["secret"])
        challenges.add(json.loads(again.body)["challenge"])
        assert moved["verification"]["status"] == "verified"
        assert moment(moved["verification"]["verified_at"]) > moment(verification["verified_at"])

        broken = assert_ok(await api.http.patch(url, json={"url": rx.url("/broken")}, headers=auth))
        assert broken["verification"]["status"] == "failed"
        assert broken["verification"]["error"] == "the endpoint answered 500, not 200"
        assert broken["verification"]["verified_at"] is None
        held = await delivery_id(api, auth, await post(api, auth), endpoint["id"])
        await asyncio.sleep(0.3)
        found = await delivery(api, auth, held)
        assert found["status"] == "pending" and found["attempts"] == 0
        health = (await webhook(api, auth, endpoint["id"]))["health"]
        assert health["held"] == 1 and health["held_reason"] == "unverified"
    assert len(rx.to("/broken")) == 1  # the handshake only
    assert len(challenges) == 2  # a fresh challenge each time
    event_requests = [r for r in rx.requests if json.loads(r.body).get("type") != "verification"]
    assert [r.path for r in event_requests] == ["/verify-ok"]


@pytest.mark.parametrize(
    ("reply", "error", "status_code"),
    [
        (
            Reply(200, body=b'{"challenge": "not-the-one-we-sent"}'),
            "the answer's challenge does not match the one sent",
            200,
        ),
        (Reply(200, body=b"ok"), 'the answer is not JSON with a "challenge" string', 200),
        (Reply(500), "the endpoint answered 500, not 200", 500),
    ],
    ids=["wrong-challenge", "no-challenge", "500"],
)
async def test_failed_verification_holds_deliveries_until_verify_succeeds(
    api: Api, services: Services, rx: Receiver, reply: Reply, error: str, status_code: int
) -> None:
    _, auth = await api.tenant()
    rx.always("/picky", reply)
    endpoint = await hook(api, auth, rx.url("/picky"), verify=True)
    assert endpoint["verification"] == {"status": "failed", "verified_at": None, "error": error}
    assert endpoint["health"]["held_reason"] == "unverified"
    async with running(services):
        idents = [await delivery_id(api, auth, await post(api, auth), endpoint["id"]) for _ in range(2)]
        await asyncio.sleep(0.3)  # six polls: nothing is sent to an unverified endpoint
        assert len(rx.to("/picky")) == 1
        for ident in idents:
            found = await delivery(api, auth, ident)
            assert found["status"] == "pending" and found["attempts"] == 0
        health = (await webhook(api, auth, endpoint["id"]))["health"]
        assert health["held"] == 2 and health["held_reason"] == "unverified"

        verify = f"/v1/webhooks/{endpoint['id']}/verify"
        still = assert_ok(await api.http.post(verify, headers=auth))
        assert still["verified"] is False and still["status"] == "failed"
        assert still["error"] == error and still["status_code"] == status_code
        rx.always("/picky", Reply(echo_challenge=True))
        fixed = assert_ok(await api.http.post(verify, headers=auth))
        assert fixed["verified"] is True and fixed["status"] == "verified"
        assert fixed["error"] is None and fixed["status_code"] == 200
        assert fixed["webhook_id"] == endpoint["id"]
        results = [await settled(api, auth, ident) for ident in idents]
    assert all(d["status"] == "succeeded" and d["attempts"] == 1 for d in results)
    after = await webhook(api, auth, endpoint["id"])
    assert after["verification"]["status"] == "verified" and after["verification"]["error"] is None
    assert after["health"]["held"] == 0 and after["health"]["held_reason"] is None
    handshakes, events = rx.to("/picky")[:3], rx.to("/picky")[3:]
    for request in handshakes:
        assert_handshake(request, endpoint["secret"])
    assert sorted(r.headers["webhook-id"] for r in events) == sorted(
        [(await delivery(api, auth, i))["event_id"] for i in idents]
    )


# --- 8. the default webhook (POST /v1/webhooks/set) ------------------------------------------------------


async def test_set_creates_then_updates_the_default_webhook(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    body = {"webhookUrl": rx.url("/default"), "events": ["message.received"]}
    created = assert_ok(await api.http.post("/v1/webhooks/set", json=body, headers=auth), 201)
    assert created["url"] == rx.url("/default") and created["events"] == ["message.received"]
    assert created["secret"].startswith("whsec_") and created["active"] is True

    body = {"webhookUrl": rx.url("/default-2"), "events": ["order.created", "message.received"]}
    updated = assert_ok(await api.http.post("/v1/webhooks/set", json=body, headers=auth), 200)
    assert updated["id"] == created["id"]
    assert updated["url"] == rx.url("/default-2")
    assert updated["events"] == ["order.created", "message.received"]
    assert "secret" not in updated
    listed = assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"]
    assert [(w["id"], w["url"]) for w in listed] == [(created["id"], rx.url("/default-2"))]

    async with running(services):
        event_id = await post(api, auth, "order.created")
        (request,) = await rx.wait_for(1, "/default-2")
    assert request.headers["webhook-id"] == event_id
    StandardWebhook(created["secret"]).verify(request.body, request.headers)
    assert rx.to("/default") == []

    unknown = {"webhookUrl": rx.url("/default"), "events": ["message.recieved"]}
    response = await api.http.post("/v1/webhooks/set", json=unknown, headers=auth)
    assert assert_error(response, 400)["error"].startswith("unknown event type 'message.recieved'")
    assert (await webhook(api, auth, created["id"]))["url"] == rx.url("/default-2")  # unchanged


@pytest.mark.parametrize("settings_overrides", [{}], ids=["https-only"])
async def test_set_refuses_http_when_not_allowed(api: Api) -> None:
    _, auth = await api.tenant()
    body = {"webhookUrl": "http://example.com/hook", "events": ["message.received"]}
    response = await api.http.post("/v1/webhooks/set", json=body, headers=auth)
    assert_error(
        response,
        400,
        "URL must be HTTPS (set HOOKLINE_ALLOW_HTTP=true to allow http:// for local development)",
    )
    assert assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"] == []
    https = {"webhookUrl": "https://example.com/hook"}
    created = assert_ok(await api.http.post("/v1/webhooks/set", json=https, headers=auth), 201)
    assert created["events"] == ["*"]


# --- 9. tenants never see each other's -------------------------------------------------------------------


async def test_breakers_and_verification_are_tenant_isolated(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, owner = await api.tenant("Owner")
    _, stranger = await api.tenant("Stranger")
    cb = {"consecutive_failures": 2, "cooldown": 60}
    mine = await hook(api, owner, rx.url("/mine"), circuit_breaker=cb)
    theirs = await hook(api, stranger, rx.url("/theirs"), circuit_breaker=cb)
    rx.always("/mine", Reply(500))
    async with running(services):
        for _ in range(2):
            await post(api, owner)
        await breaker_opened(api, owner, mine["id"])
        ident = mine["id"]
        for response in (
            await api.http.get(f"/v1/webhooks/{ident}/circuit-breaker", headers=stranger),
            await api.http.post(f"/v1/webhooks/{ident}/circuit-breaker/reset", headers=stranger),
            await api.http.post(f"/v1/webhooks/{ident}/verify", headers=stranger),
        ):
            assert_error(response, 404, f"webhook '{ident}' not found")
        listed = assert_ok(await api.http.get("/v1/webhooks/circuit-breaker", headers=stranger))
        assert [b["webhook_id"] for b in listed] == [theirs["id"]]
        assert listed[0]["state"] == "closed"
        reset = assert_ok(await api.http.post("/v1/webhooks/circuit-breaker/reset", headers=stranger))
        assert reset == {"reset": [theirs["id"]]}
        await asyncio.sleep(0.3)
        still = await breaker(api, owner, mine["id"])
    assert still["state"] == "open" and still["held"] == 2
    assert len(rx.to("/mine")) == 2  # nothing the stranger did released or verified anything
    own = assert_ok(await api.http.get("/v1/webhooks/circuit-breaker", headers=owner))
    assert [b["webhook_id"] for b in own] == [mine["id"]]


# --- 10. max_in_flight across workers --------------------------------------------------------------------


async def test_max_in_flight_holds_across_workers(
    api: Api, services: Services, rx: Receiver, database_url: str
) -> None:
    """Two workers, each with its own connection pool (as two processes) and room for five sends: only the
    endpoint's cap of three across both keeps a fourth request from reaching the slow receiver (each
    would send three on its own, six together), and the peak of three shows the cap is reached."""
    if not database_url.startswith("postgresql"):
        pytest.skip("workers in several processes share a database on PostgreSQL")
    _, auth = await api.tenant()
    await hook(api, auth, rx.url("/slow"), max_in_flight=3)
    rx.always("/slow", Reply(200, delay=0.3))
    await queue_events(api, auth, 20)
    settings = services.settings.model_copy(update={"worker_concurrency": 5})
    stores = [Store.from_url(database_url, services.store.keyring) for _ in range(2)]
    workers = [Worker(store, settings) for store in stores]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        received = await rx.wait_for(20, "/slow", timeout=20)
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
        for store in stores:
            await store.close()
    assert rx.peak_in_flight("/slow") == 3
    assert len(received) == 20
    assert len({r.headers["webhook-id"] for r in received}) == 20


def answered(job: Job, now: datetime) -> Outcome:
    return Outcome(
        delivery_id=job.delivery_id,
        endpoint_id=job.endpoint_id,
        tenant_id=job.tenant_id,
        attempt=job.attempt,
        started_at=now,
        duration_ms=5,
        status_code=200,
        response_body="ok",
        error=None,
        request_headers={},
        status="succeeded",
        next_attempt_at=None,
    )


async def test_an_endpoint_is_leased_to_one_worker_at_a_time(api: Api, services: Services) -> None:
    """A worker claims an endpoint's deliveries ahead and sends at most its cap of them at once; a second
    worker sending beside it would break the cap. So while one worker's lease is live at the head of
    the endpoint's queue, another worker's claim takes none of its deliveries, and takes the rest once
    the first worker's answers are written."""
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, "https://example.com/hook", max_in_flight=2)
    idents = [await delivery_id(api, auth, await post(api, auth), endpoint["id"]) for _ in range(5)]
    first = Worker(services.store, services.settings, worker_id="first")
    second = Worker(services.store, services.settings, worker_id="second")
    now = datetime.now(UTC)
    jobs, _ = await first.claim(3, now)
    assert [j.delivery_id for j in jobs] == idents[:3]  # more than the cap: the next ones, in order
    later = now + timedelta(milliseconds=1)
    assert (await second.claim(10, later))[0] == []
    await first.write_results([answered(j, later) for j in jobs], later)
    taken, _ = await second.claim(10, later + timedelta(milliseconds=1))
    assert [j.delivery_id for j in taken] == idents[3:]


async def test_a_wake_for_an_endpoint_another_claim_is_settling_is_not_lost(
    api: Api, services: Services, database_url: str
) -> None:
    """Another worker's claim holds the endpoint's row and settles it idle (its lease ran before the new
    event committed). A claim that runs meanwhile must leave the event's wake for later rather than
    take it: taken then, the endpoint would stay idle with a delivery due and no wake left."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: no claim runs beside another")
    import asyncpg
    import sqlalchemy as sa

    _, auth = await api.tenant()
    endpoint = await hook(api, auth, "https://example.com/hook")
    ident = await delivery_id(api, auth, await post(api, auth), endpoint["id"])
    worker = Worker(services.store, services.settings)
    other = await asyncpg.connect(
        sa.make_url(database_url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        # The endpoint is due (its work taken in), and the other claim is settling it as idle.
        await other.execute("UPDATE endpoint_state SET work_at = now() - interval '1 second'")
        transaction = other.transaction()
        await transaction.start()
        await other.execute("UPDATE endpoint_state SET work_at = NULL WHERE endpoint_id = $1", endpoint["id"])
        now = datetime.now(UTC)
        assert (await worker.claim(10, now))[0] == []  # the endpoint is locked: skipped
        await transaction.commit()
        jobs, _ = await worker.claim(10, now + timedelta(milliseconds=1))
        assert [j.delivery_id for j in jobs] == [ident]
    finally:
        await other.close()


async def test_enabling_an_active_endpoint_discards_nothing(
    api: Api, services: Services, rx: Receiver
) -> None:
    """``discard_held`` fails the deliveries a disabled endpoint held; on an endpoint that is not
    disabled there are none, and its queued retries stay queued."""
    _, auth = await api.tenant()
    rx.always("/retrying", Reply(500))
    endpoint = await hook(api, auth, rx.url("/retrying"), retry_schedule="1h")
    ident = await delivery_id(api, auth, await post(api, auth), endpoint["id"])
    async with running(services):
        await rx.wait_for(1, "/retrying")
        await until(lambda: delivery(api, auth, ident), lambda d: d["attempts"] == 1)
    url = f"/v1/webhooks/{endpoint['id']}"
    assert_ok(await api.http.patch(url, json={"active": True, "discard_held": True}, headers=auth))
    found = await delivery(api, auth, ident)
    assert found["status"] == "pending" and found["attempts"] == 1


async def test_breaker_thresholds_read_back_as_given(api: Api) -> None:
    _, auth = await api.tenant()
    given = {"consecutive_failures": 1000, "failure_rate": 0.25, "cooldown": 1.5}
    created = assert_ok(
        await api.http.post(
            "/v1/webhooks",
            json={"url": "https://example.com/hook", "circuit_breaker": given},
            headers=auth,
        ),
        201,
    )
    assert created["circuit_breaker"] == given
    assert isinstance(created["circuit_breaker"]["consecutive_failures"], int)
    refused = await api.http.post(
        "/v1/webhooks",
        json={"url": "https://example.com/hook", "circuit_breaker": {"consecutive_failures": 2.5}},
        headers=auth,
    )
    assert_error(refused, 400, "'circuit_breaker': 'consecutive_failures' must be an integer from 1 to 10000")
