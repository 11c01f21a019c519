"""Relay sessions in the store (``hookline.store.relay``), on SQLite and PostgreSQL: who holds a session,
when its deliveries are held, how a request and its answer pass between a worker and a listener, and
what housekeeping removes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookline.api.routes.listen import parse_answer
from hookline.api.services import Services
from hookline.store import audit_log, relay
from hookline.store import endpoint_state as states
from hookline.store.endpoint_state import HOLD_DISABLED, HOLD_OFFLINE
from hookline.store.schema import endpoints, relay_exchanges, relay_listeners
from hookline.store.tenants import insert_tenant

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "description": "hookline listen",
    "secret": "whsec_" + "A" * 32,
    "events": ["*"],
    "channels": None,
    "headers": {},
    "metadata": {},
}


async def _session(services: Services, connection: str = "c0", tenant: str = "acme") -> relay.Session:
    async with services.store.write() as conn:
        if (
            await conn.execute(sa.text("SELECT 1 FROM tenants WHERE id = :t"), {"t": tenant})
        ).first() is None:
            await insert_tenant(conn, tenant_id=tenant, name=tenant, metadata={}, now=NOW)
        session, endpoint = await relay.open_session(
            conn, tenant_id=tenant, connection=connection, now=NOW, keyring=services.store.keyring, **FIELDS
        )
    assert endpoint.url == relay.relay_url(session.token)
    return session


async def _hold(services: Services, session: relay.Session) -> str | None:
    async with services.store.read() as conn:
        return (await states.of_endpoints(conn, session.tenant_id, [session.endpoint_id]))[
            session.endpoint_id
        ].hold


async def _post(
    services: Services, token: str, body: bytes = b'{"a":1}', deadline: datetime | None = None
) -> int:
    async with services.store.write() as conn:
        return await relay.post(
            conn,
            token=token,
            event_id="evt_1",
            event_type="message.received",
            headers={"webhook-id": "evt_1"},
            body=body,
            deadline=deadline or NOW + timedelta(seconds=15),
        )


async def test_a_request_is_taken_once_by_the_holder_and_its_answer_collected_once(
    services: Services,
) -> None:
    session = await _session(services, "c0")
    body = '{"total":1250.00,"name":"\u0645\u0631\u062d\u0628\u0627"}'.encode()
    exchange_id = await _post(services, session.token, body)
    async with services.store.write() as conn:
        assert await relay.take(conn, session.token, "intruder", NOW, 16) == []
        [taken] = await relay.take(conn, session.token, "c0", NOW, 16)
        assert await relay.take(conn, session.token, "c0", NOW, 16) == []  # taken once
    assert (taken.id, taken.body, taken.headers) == (exchange_id, body, {"webhook-id": "evt_1"})
    reply = relay.Answer(201, "ok", None, 4)
    async with services.store.write() as conn:
        assert await relay.collect(conn, [exchange_id]) == {}  # no answer yet
        assert not await relay.answer(conn, exchange_id, "intruder", reply, NOW)
        assert await relay.answer(conn, exchange_id, "c0", reply, NOW)
        assert not await relay.answer(conn, exchange_id, "c0", reply, NOW)  # once
        assert await relay.collect(conn, [exchange_id]) == {exchange_id: reply}
        assert await relay.collect(conn, [exchange_id]) == {}
        assert (await conn.execute(sa.select(sa.func.count()).select_from(relay_exchanges))).scalar() == 0


async def test_requests_past_their_deadline_or_of_another_session_are_not_taken(services: Services) -> None:
    mine = await _session(services, "c0")
    other = await _session(services, "c1", tenant="globex")
    await _post(services, mine.token, deadline=NOW - timedelta(seconds=1))
    await _post(services, other.token)
    async with services.store.write() as conn:
        assert await relay.take(conn, mine.token, "c0", NOW, 16) == []
        assert await relay.find_session(conn, "acme", other.token) is None  # another tenant's: not found
        assert await relay.find_session(conn, "globex", other.token) == other


async def test_a_withdrawn_request_takes_no_late_answer(services: Services) -> None:
    session = await _session(services, "c0")
    exchange_id = await _post(services, session.token)
    async with services.store.write() as conn:
        await relay.take(conn, session.token, "c0", NOW, 16)
        await relay.withdraw(conn, exchange_id)
        assert not await relay.answer(conn, exchange_id, "c0", relay.Answer(200, "", None, 1), NOW)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["attach", "detach", "heartbeat", "disable"]), st.sampled_from(["c0", "c1", "c2"])
    ),
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
async def test_the_endpoint_is_held_exactly_while_no_listener_holds_the_session(
    services: Services, ops: list[tuple[str, str]]
) -> None:
    """Against a plain model: the last connection to attach holds the session until it detaches (a
    replaced one detaching changes nothing); the endpoint is held offline exactly while no one holds
    it, unless its owner disabled it, which no listener undoes."""
    session = await _session(services, "c0")
    holder: str | None = "c0"
    disabled = False
    for op, connection in ops:
        async with services.store.write() as conn:
            if op == "attach":
                assert await relay.attach(conn, session, connection, NOW)
                holder = connection
            elif op == "detach":
                assert await relay.detach(conn, session, connection, NOW) == (holder == connection)
                if holder == connection:
                    holder = None
            elif op == "heartbeat":
                assert await relay.heartbeat(conn, session.token, connection, NOW) == (holder == connection)
            else:
                state = (await states.lock(conn, [session.endpoint_id]))[session.endpoint_id]
                await states.save(conn, [state.changed(hold=HOLD_DISABLED)], NOW)
                disabled = True
            stored = (
                await conn.execute(
                    sa.select(relay_listeners.c.connection).where(relay_listeners.c.token == session.token)
                )
            ).scalar()
        assert stored == holder
        expected = HOLD_DISABLED if disabled else (None if holder else HOLD_OFFLINE)
        assert await _hold(services, session) == expected


async def test_housekeeping_detaches_a_silent_holder_then_deletes_the_forgotten_session(
    services: Services,
) -> None:
    session = await _session(services, "c0")
    kept = await _session(services, "c1")
    keep = timedelta(hours=1)
    async with services.store.write() as conn:
        await relay.heartbeat(conn, kept.token, "c1", NOW + relay.STALE)
        # Silent for longer than STALE: taken for gone, and the endpoint held.
        assert await relay.expire(conn, NOW + relay.STALE + timedelta(seconds=1), keep) == 0
    assert await _hold(services, session) == HOLD_OFFLINE
    assert await _hold(services, kept) is None
    async with services.store.write() as conn:
        assert await relay.expire(conn, NOW + keep, keep) == 0  # not forgotten for long enough yet
        assert await relay.expire(conn, NOW + keep + relay.STALE + timedelta(seconds=2), keep) == 1
        left = (await conn.execute(sa.select(endpoints.c.id))).scalars().all()
        [gone] = await audit_log.list_entries(
            conn, tenant_id=None, all_tenants=True, filters=audit_log.Filters(), limit=10
        )
    assert left == [kept.endpoint_id]
    # The deletion is in the audit log, by hookline itself.
    assert (gone.action, gone.actor, gone.client_address) == ("webhook.listen_expired", "system", None)
    assert (gone.tenant_id, gone.resource_type, gone.resource_id) == (
        session.tenant_id,
        "webhook",
        str(session.endpoint_id),
    )


async def test_housekeeping_removes_requests_a_dead_worker_left(services: Services) -> None:
    session = await _session(services, "c0")
    await _post(services, session.token, deadline=NOW)
    async with services.store.write() as conn:
        await relay.expire(conn, NOW + relay.EXCHANGE_GRACE / 2, timedelta(hours=1))
        assert (await conn.execute(sa.select(sa.func.count()).select_from(relay_exchanges))).scalar() == 1
        await relay.expire(conn, NOW + relay.EXCHANGE_GRACE * 2, timedelta(hours=1))
        assert (await conn.execute(sa.select(sa.func.count()).select_from(relay_exchanges))).scalar() == 0


@pytest.mark.parametrize("url", ["https://example.com/relay://x", "relay:/x", "http://relay"])
def test_only_relay_urls_name_a_session(url: str) -> None:
    assert relay.token_of(url) is None
    assert relay.token_of(relay.relay_url("rl_abc")) == "rl_abc"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ANSWERS = st.fixed_dictionaries(
    {"type": st.just("answer"), "id": st.integers(-3, 2**64) | JSON},
    optional={
        "status": st.integers(0, 1000) | JSON,
        "body": st.text(max_size=300) | JSON,
        "error": st.text(max_size=600) | JSON,
        "duration_ms": st.integers(-5, 2**40) | JSON,
    },
)


@settings(max_examples=400, deadline=None)
@given(message=ANSWERS | JSON | st.text())
def test_a_listeners_message_is_an_answer_within_bounds_or_a_reason(message: Any) -> None:
    """Whatever a listener sends, the server gets a bounded answer it can store, or a ValueError that
    says what is wrong (sent back to the listener); never another exception."""
    text = message if isinstance(message, str) else json.dumps(message)
    try:
        exchange_id, answer = parse_answer(text, body_limit=100)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(exchange_id, int) and exchange_id >= 1
    assert answer.status_code is None or 100 <= answer.status_code <= 599
    assert answer.status_code is not None or answer.error  # no answer without a reason
    assert answer.response_body is None or len(answer.response_body) <= 100
    assert answer.error is None or len(answer.error) <= 500
    assert "\x00" not in (answer.response_body or "") + (answer.error or "")
