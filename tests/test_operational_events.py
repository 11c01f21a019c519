"""Operational events end to end: each fires once when its condition is met, reaches the operator webhook
and the tenant's subscribed endpoints (never the endpoint in trouble, never through ``*``), validates
against its catalog schema, and cannot loop. The real API, the real Worker and real loopback receivers,
on SQLite and PostgreSQL; plus the alert's window rules as properties (hypothesis).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline.api.services import Services
from hookline.catalog import OPERATIONAL_EVENTS, first_schema_error, load_default_catalog
from hookline.config import ConfigError, load_settings
from hookline.dispatch.alerting import AlertPolicy, watch_failure_rate
from hookline.signing import generate_secret
from hookline.store import notices as notice_rows
from hookline.store.endpoint_state import EndpointState
from hookline.store.notices import OPERATOR_TENANT, Notice
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Received, Receiver, Reply
from tests.test_delivery import hook, post, running
from tests.test_endpoint_health import BASE_SETTINGS, breaker, queue_events

SCHEMAS = {t.name: t.schema for t in load_default_catalog()}
EXAMPLES = {t.name: t.example for t in load_default_catalog()}
OPERATOR_SECRET = generate_secret()
QUIET = 0.4  # seconds after the last expected event in which nothing more may arrive


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # A loaded machine can stall the in-process receiver past 1 s: the timed-out request is then sent
    # again (at least once, rightly), and "each event arrives once" would fail for no fault of ours.
    return {**BASE_SETTINGS, "delivery_timeout": "5s", "lease": "10s"}


@pytest.fixture
async def rx() -> Any:
    async with Receiver() as receiver:
        yield receiver


def operator(rx: Receiver) -> dict[str, Any]:
    """The worker settings that make ``rx``'s /operator the operator webhook."""
    return {"operator_webhook_url": rx.url("/operator"), "operator_webhook_secret": OPERATOR_SECRET}


def operational(requests: list[Received]) -> list[dict[str, Any]]:
    """The operational events among ``requests`` (bodies), in arrival order."""
    bodies = [json.loads(r.body) for r in requests]
    return [b for b in bodies if b.get("event") in OPERATIONAL_EVENTS]


def kinds(requests: list[Received]) -> list[tuple[str, int]]:
    return [(b["event"], b["data"]["webhook_id"]) for b in operational(requests)]


async def arrived(rx: Receiver, path: str, expected: Counter[tuple[str, int]]) -> list[Received]:
    """Wait until ``path`` has received the operational events ``expected`` (a multiset of (type,
    webhook)), then a quiet moment; fail if it received anything else, or anything twice."""
    deadline = asyncio.get_running_loop().time() + 10
    while Counter(kinds(rx.to(path))) != expected:
        got = Counter(kinds(rx.to(path)))
        assert not got - expected, f"{path} received unexpected events: {got - expected}"
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path} received {got}, expected {expected}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(QUIET)
    assert Counter(kinds(rx.to(path))) == expected, f"{path} received more than {expected}"
    return rx.to(path)


def assert_valid(requests: list[Received], secret: str | None = None) -> None:
    """Every operational event in ``requests`` matches its catalog schema (and is signed with
    ``secret``, when given)."""
    for request in requests:
        body = json.loads(request.body)
        if body.get("event") not in OPERATIONAL_EVENTS:
            continue
        assert first_schema_error(SCHEMAS[body["event"]], body["data"]) is None, body
        if secret is not None:
            StandardWebhook(secret).verify(request.body, request.headers)


# --- the breaker: opened, closed by a probe, closed by a reset --------------------------------------------


async def test_circuit_opened_and_closed_reach_subscribers_and_operator_once_never_the_subject(
    api: Api, services: Services, rx: Receiver
) -> None:
    tenant, auth = await api.tenant()
    rx.always("/a", Reply(500))
    a = await hook(
        api,
        auth,
        rx.url("/a"),
        events=["message.received", "endpoint.*"],
        circuit_breaker={"consecutive_failures": 3, "cooldown": 0.5},
        max_in_flight=1,
    )
    await hook(api, auth, rx.url("/b"), events=["endpoint.*", "delivery.exhausted"])
    await hook(api, auth, rx.url("/all"), events=["*"])
    async with running(services, **operator(rx)):
        await queue_events(api, auth, 3)
        opened = Counter({("endpoint.circuit_opened", a["id"]): 1})
        [notice] = operational(await arrived(rx, "/b", opened))
        assert notice["data"]["tenant_id"] == tenant
        cb = await breaker(api, auth, a["id"])
        # The same opening, or (its probe failing on a loaded machine, cooldown 0.5 s) a later one.
        opened_at = datetime.fromisoformat(notice["data"]["opened_at"])
        assert opened_at.replace(microsecond=0) <= datetime.fromisoformat(cb["opened_at"])
        assert notice["data"]["consecutive_failures"] == 3
        await arrived(rx, "/operator", opened)
        assert kinds(rx.to("/a")) == []  # never to the endpoint whose breaker opened

        rx.always("/a", Reply(200))  # the probe succeeds, the breaker closes
        both = opened + Counter({("endpoint.circuit_closed", a["id"]): 1})
        closed = operational(await arrived(rx, "/b", both))[-1]
        assert closed["event"] == "endpoint.circuit_closed" and closed["data"]["trigger"] == "probe"
        await arrived(rx, "/operator", both)
        # A recovery goes to the endpoint itself too, if it subscribes.
        await arrived(rx, "/a", Counter({("endpoint.circuit_closed", a["id"]): 1}))
    assert kinds(rx.to("/all")) == []  # "*" does not take operational events
    assert len(rx.to("/all")) == 3
    assert_valid(rx.to("/b"))
    assert_valid(rx.to("/operator"), OPERATOR_SECRET)
    # The same events are in the tenant's event log, and the operator's (with the same ids).
    found = assert_ok(await api.http.get("/v1/events", params={"limit": 100}, headers=auth))
    tenant_ids = {e["id"] for e in found["items"] if e["event"] in OPERATIONAL_EVENTS}
    ops = assert_ok(
        await api.http.get(
            "/v1/events", params={"limit": 100, "tenant_id": OPERATOR_TENANT}, headers=api.admin
        )
    )
    assert tenant_ids == {e["id"] for e in ops["items"]} and len(tenant_ids) == 2
    # The tenant's copies went to /b and to /a (the closed one); the operator's to the operator webhook.
    assert sorted(e["deliveries"] for e in found["items"] if e["event"] in OPERATIONAL_EVENTS) == [1, 2]
    assert [e["deliveries"] for e in ops["items"]] == [1, 1]


async def test_a_breaker_reset_raises_circuit_closed_once_and_only_if_it_was_open(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    rx.always("/a", Reply(503))
    a = await hook(
        api,
        auth,
        rx.url("/a"),
        events=["message.received"],
        circuit_breaker={"consecutive_failures": 2, "cooldown": 60},
    )
    calm = await hook(api, auth, rx.url("/calm"), events=["message.received"])
    await hook(api, auth, rx.url("/b"), events=["endpoint.circuit_opened", "endpoint.circuit_closed"])
    async with running(services, **operator(rx)):
        await queue_events(api, auth, 2)
        await arrived(rx, "/b", Counter({("endpoint.circuit_opened", a["id"]): 1}))
        rx.always("/a", Reply(200))  # recovered: the reset's deliveries succeed (or it would open again)
        reset = assert_ok(await api.http.post("/v1/webhooks/circuit-breaker/reset", json={}, headers=auth))
        assert a["id"] in reset["reset"] and calm["id"] in reset["reset"]  # calm was closed: no news
        expected = Counter({("endpoint.circuit_opened", a["id"]): 1, ("endpoint.circuit_closed", a["id"]): 1})
        requests = await arrived(rx, "/b", expected)
        assert operational(requests)[-1]["data"]["trigger"] == "reset"
        await arrived(rx, "/operator", expected)


# --- disabled and enabled ---------------------------------------------------------------------------------


async def test_disabled_by_410_then_enabled_and_disabled_by_the_owner(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    rx.always("/a", Reply(410))
    a = await hook(api, auth, rx.url("/a"), events=["message.received", "endpoint.*"])
    await hook(api, auth, rx.url("/b"), events=["endpoint.disabled", "endpoint.enabled"])
    url = f"/v1/webhooks/{a['id']}"
    async with running(services, **operator(rx)):
        await post(api, auth)
        first = Counter({("endpoint.disabled", a["id"]): 1})
        [gone] = operational(await arrived(rx, "/b", first))
        assert gone["data"]["trigger"] == "automatic"
        assert gone["data"]["reason"] == "the endpoint answered 410 Gone"
        # Disabling what is disabled changes nothing, and raises nothing.
        assert_ok(await api.http.patch(url, json={"active": False}, headers=auth))
        rx.always("/a", Reply(200))
        assert_ok(await api.http.patch(url, json={"active": True}, headers=auth))
        assert_ok(await api.http.patch(url, json={"active": True}, headers=auth))  # already enabled
        # A recovery goes to the endpoint itself too (it subscribes): wait for it before disabling.
        await arrived(rx, "/a", Counter({("endpoint.enabled", a["id"]): 1}))
        assert_ok(await api.http.patch(url, json={"active": False}, headers=auth))
        expected = first + Counter({("endpoint.enabled", a["id"]): 1, ("endpoint.disabled", a["id"]): 1})
        events = operational(await arrived(rx, "/b", expected))
        assert [e["event"] for e in events] == ["endpoint.disabled", "endpoint.enabled", "endpoint.disabled"]
        assert events[-1]["data"]["trigger"] == "manual" and events[-1]["data"]["reason"] is None
        # The 410 also failed its delivery for good (410 is not retried): the operator hears of it.
        await arrived(rx, "/operator", expected + Counter({("delivery.exhausted", a["id"]): 1}))
        assert kinds(rx.to("/a")) == [("endpoint.enabled", a["id"])]  # never the disabled ones
    assert_valid(rx.to("/operator"), OPERATOR_SECRET)


async def test_verified_is_raised_when_the_handshake_passes(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    rx.always("/v", Reply(echo_challenge=True))
    await hook(api, auth, rx.url("/b"), events=["endpoint.verified"])
    async with running(services, **operator(rx)):
        v = await hook(api, auth, rx.url("/v"), events=["message.received"], verify=True)
        assert v["verification"]["status"] == "verified"
        expected = Counter({("endpoint.verified", v["id"]): 1})
        await arrived(rx, "/b", expected)
        await arrived(rx, "/operator", expected)
        # Verifying again an endpoint already verified is not news.
        assert_ok(await api.http.post(f"/v1/webhooks/{v['id']}/verify", headers=auth))
        await arrived(rx, "/b", expected)


# --- failing, exhausted, and no loops ---------------------------------------------------------------------


async def test_failing_once_and_exhausted_per_delivery_without_loops(
    api: Api, services: Services, rx: Receiver
) -> None:
    """A receiver answering 400 to everything: each delivery fails at once (exhausted), and the endpoint
    is reported failing once. The subscriber of those reports answers 400 too: its own failures are
    reported (failing, to the operator), but the failed deliveries of operational events raise nothing
    more."""
    tenant, auth = await api.tenant()
    rx.always("/a", Reply(400))
    rx.always("/b", Reply(400))
    a = await hook(api, auth, rx.url("/a"), events=["message.received"])
    b = await hook(api, auth, rx.url("/b"), events=["delivery.exhausted", "endpoint.failing"])
    alert = {"alert_failure_rate": 0.5, "alert_min_attempts": 4, "alert_window": 60.0}
    async with running(services, **operator(rx), **alert):
        await queue_events(api, auth, 6)
        to_b = Counter({("delivery.exhausted", a["id"]): 6, ("endpoint.failing", a["id"]): 1})
        requests = await arrived(rx, "/b", to_b)
        to_operator = to_b + Counter({("endpoint.failing", b["id"]): 1})
        await arrived(rx, "/operator", to_operator)
    failing = next(e for e in operational(requests) if e["event"] == "endpoint.failing")["data"]
    assert failing["tenant_id"] == tenant and failing["threshold"] == 0.5 and failing["window_seconds"] == 60
    assert failing["failures"] == failing["attempts"] >= 4 and failing["failure_rate"] == 1.0
    exhausted = [e["data"] for e in operational(requests) if e["event"] == "delivery.exhausted"]
    assert {e["last_status_code"] for e in exhausted} == {400} and {e["attempts"] for e in exhausted} == {1}
    assert {e["event_type"] for e in exhausted} == {"message.received"}
    assert len({e["delivery_id"] for e in exhausted}) == 6
    page = assert_ok(await api.http.get("/v1/events", params={"limit": 100}, headers=auth))
    logged = Counter(e["event"] for e in page["items"])
    # B's own failing went nowhere in the tenant (B is the only subscriber): only the operator keeps it.
    assert logged == Counter({"message.received": 6, "delivery.exhausted": 6, "endpoint.failing": 1})
    assert_valid(rx.to("/operator"), OPERATOR_SECRET)


# --- the API's side -----------------------------------------------------------------------------------------


async def test_a_platform_cannot_post_an_operational_event(api: Api) -> None:
    _, auth = await api.tenant()
    body = {"event": "endpoint.disabled", "data": {"tenant_id": "x", "webhook_id": 1}}
    response = await api.http.post("/v1/events", json=body, headers=auth)
    assert_error(
        response, 400, "event type 'endpoint.disabled' is raised by hookline itself and cannot be posted"
    )
    batch = {"events": [{"event": "webhook.test", "data": {"message": "hi"}}, body]}
    response = await api.http.post("/v1/events/batch", json=batch, headers=auth)
    assert_error(
        response,
        400,
        "events[1]: event type 'endpoint.disabled' is raised by hookline itself and cannot be posted",
    )


async def test_a_test_send_may_send_an_operational_event_with_its_example(api: Api, rx: Receiver) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/alerts"), events=["message.received"])
    sent = assert_ok(
        await api.http.post(
            f"/v1/webhooks/{endpoint['id']}/test", json={"event": "endpoint.failing"}, headers=auth
        )
    )
    assert sent["succeeded"] and sent["event"] == "endpoint.failing"
    [request] = rx.to("/alerts")
    body = json.loads(request.body)
    assert body["event"] == "endpoint.failing" and body["data"] == EXAMPLES["endpoint.failing"]


async def test_a_wildcard_subscription_keeps_the_operational_patterns_named_beside_it(api: Api) -> None:
    _, auth = await api.tenant()
    created = await hook(api, auth, "https://example.com/h", events=["message.sent", "*", "endpoint.*"])
    assert created["events"] == ["*", "endpoint.*"]
    created = await hook(api, auth, "https://example.com/h", events=["*", "message.*"])
    assert created["events"] == ["*"]


# --- the operator webhook and the outbox --------------------------------------------------------------------


async def test_the_operator_webhook_follows_the_settings(api: Api, services: Services) -> None:
    store, now = services.store, datetime.now(UTC)
    secret = generate_secret()
    await notice_rows.ensure_operator_webhook(store, "https://ops.example.com/a", secret, now)
    await notice_rows.ensure_operator_webhook(store, "https://ops.example.com/b", secret, now)
    listed = assert_ok(
        await api.http.get("/v1/webhooks", params={"tenant_id": OPERATOR_TENANT}, headers=api.admin)
    )
    [found] = listed["items"]
    assert found["url"] == "https://ops.example.com/b"
    assert sorted(found["events"]) == sorted(OPERATIONAL_EVENTS)
    await notice_rows.ensure_operator_webhook(store, None, None, now)
    listed = assert_ok(
        await api.http.get("/v1/webhooks", params={"tenant_id": OPERATOR_TENANT}, headers=api.admin)
    )
    assert listed["items"] == []


async def test_a_notice_of_a_deleted_tenant_still_reaches_the_operator(api: Api, services: Services) -> None:
    tenant, _ = await api.tenant()
    store, now = services.store, datetime.now(UTC)
    notice = Notice(
        tenant, 7, "endpoint.enabled", {"tenant_id": tenant, "webhook_id": 7, "enabled_at": "x"}, False
    )
    async with store.write() as conn:
        await notice_rows.insert(conn, [notice], now)
    assert_ok(await api.http.delete(f"/v1/tenants/{tenant}", headers=api.admin))
    published = await notice_rows.publish(store)
    assert published == [notice]
    assert await notice_rows.publish(store) == []  # published once
    ops = assert_ok(
        await api.http.get("/v1/events", params={"tenant_id": OPERATOR_TENANT}, headers=api.admin)
    )
    [event] = ops["items"]
    assert event["event"] == "endpoint.enabled" and event["data"]["tenant_id"] == tenant


def test_the_operator_webhook_needs_a_usable_url_and_secret() -> None:
    with pytest.raises(ConfigError, match="HOOKLINE_OPERATOR_WEBHOOK_SECRET is required"):
        load_settings(operator_webhook_url="https://ops.example.com/hook")
    with pytest.raises(ConfigError, match="HOOKLINE_OPERATOR_WEBHOOK_URL: URL must be HTTPS"):
        load_settings(operator_webhook_url="http://ops.example.com/hook", operator_webhook_secret="s3cret")
    with pytest.raises(ConfigError, match="HOOKLINE_OPERATOR_WEBHOOK_SECRET: secret starting with"):
        load_settings(operator_webhook_url="https://ops.example.com/hook", operator_webhook_secret="whsec_x")
    with pytest.raises(ConfigError, match="HOOKLINE_ALERT_FAILURE_RATE"):
        load_settings(alert_failure_rate=0)


# --- the failure-rate alert's rules -------------------------------------------------------------------------

BATCHES = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=30, allow_nan=False),  # seconds since the previous batch
        st.lists(st.sampled_from([200, 204, 400, 500, 503, None]), min_size=1, max_size=8),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    batches=BATCHES,
    rate=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    min_attempts=st.integers(min_value=1, max_value=12),
)
def test_failing_is_reported_once_per_episode(
    batches: list[tuple[float, list[int | None]]], rate: float, min_attempts: int
) -> None:
    """Against a plain model of windows: the counts are exact, an alert comes exactly when a window
    first reaches the threshold while no episode is running, and an episode ends only with a whole
    window under the rate."""
    policy = AlertPolicy(failure_rate=rate, window=20.0, min_attempts=min_attempts)
    state = EndpointState(1, "t")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window_start: datetime | None = None
    requests = failures = 0
    in_episode = False
    for wait, codes in batches:
        now += timedelta(seconds=wait)
        if window_start is None or (now - window_start).total_seconds() >= policy.window:
            if in_episode and failures < rate * requests:
                in_episode = False
            window_start, requests, failures = now, 0, 0
        requests += len(codes)
        failures += sum(1 for c in codes if c is None or not 200 <= c < 300)
        should_alert = not in_episode and requests >= min_attempts and failures >= rate * requests
        state, failing = watch_failure_rate(state, codes, now, policy)
        assert (failing is not None) == should_alert
        if failing is not None:
            in_episode = True
            assert (failing.attempts, failing.failures) == (requests, failures)
            assert failing.window_started_at == window_start
        assert (state.alert_window_requests, state.alert_window_failures) == (requests, failures)
        assert (state.failing_alerted_at is not None) == in_episode
