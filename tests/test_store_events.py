"""The store's event write path (``ingest_many``, ``EventWriter``): the rows it writes, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hookline.api.services import Services
from hookline.config import Settings
from hookline.dispatch.worker import Worker
from hookline.store import events as store_events
from hookline.store.endpoints import insert_endpoint
from hookline.store.engine import Store
from hookline.store.events import EventWriter, NewEvent, get_event, ingest_many, list_events
from hookline.store.schema import deliveries, events
from hookline.store.tenants import insert_tenant

NOW = datetime(2025, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
DATA = {"messageId": "m1", "to": "966501234567", "status": "sent", "note": "é ✓ \n \u0000"}


async def _tenant(
    store: Store, tenant_id: str, subscriptions: list[tuple[list[str], list[str] | None]]
) -> list[int]:
    async with store.write() as conn:
        await insert_tenant(conn, tenant_id=tenant_id, name=tenant_id, metadata={}, now=NOW)
        return [
            (
                await insert_endpoint(
                    conn,
                    tenant_id=tenant_id,
                    now=NOW,
                    keyring=store.keyring,
                    url=f"https://example.com/{i}",
                    description="",
                    secret="whsec_test",
                    events=patterns,
                    channels=channels,
                    headers={},
                    metadata={},
                    active=True,
                )
            ).id
            for i, (patterns, channels) in enumerate(subscriptions)
        ]


def _event(event_id: str, event_type: str = "message.sent", **fields: Any) -> NewEvent:
    return NewEvent(id=event_id, client_id=True, event_type=event_type, data=DATA, **fields)


async def _rows(store: Store, table: sa.Table, order: sa.ColumnElement[Any]) -> list[Any]:
    async with store.read() as conn:
        return list((await conn.execute(table.select().order_by(order))).mappings())


async def test_events_and_deliveries_are_written_as_before(services: Services) -> None:
    store = services.store
    all_msgs, blue, orders = await _tenant(
        store, "tn_a", [(["message.*"], None), (["*"], ["blue"]), (["order.created"], None)]
    )
    items = [
        _event("e1"),  # all_msgs
        _event("e2", channels=["blue", "red"], idempotency_key="k2"),  # all_msgs + blue
        _event("e3", "order.created", channels=["red"]),  # orders
        _event("e4", "session.connected"),  # nobody
        _event("e5", channels=["blue"]),  # all_msgs + blue
    ]
    results = await ingest_many(store, "tn_a", items, NOW)
    assert [(r.id, r.event, r.deliveries, r.created) for r in results] == [
        ("e1", "message.sent", 1, True),
        ("e2", "message.sent", 2, True),
        ("e3", "order.created", 1, True),
        ("e4", "session.connected", 0, True),
        ("e5", "message.sent", 2, True),
    ]

    stored = await _rows(store, events, events.c.seq)
    assert [e["id"] for e in stored] == ["e1", "e2", "e3", "e4", "e5"]
    for row, item, result in zip(stored, items, results, strict=True):
        assert row["tenant_id"] == "tn_a"
        assert row["event_type"] == item.event_type
        assert row["idempotency_key"] == item.idempotency_key
        assert row["channels"] == item.channels
        assert row["delivery_count"] == result.deliveries
        assert row["created_at"] == NOW
        timestamp = "2025-03-04T05:06:07.891Z"
        body = {"id": item.id, "event": item.event_type, "timestamp": timestamp, "data": DATA}
        assert bytes(row["payload"]) == orjson.dumps(body)  # the exact bytes that get signed and sent

    seq = {e["id"]: e["seq"] for e in stored}
    sent = await _rows(store, deliveries, deliveries.c.id)
    # Delivery ids follow the events, then each event's targets in endpoint order.
    assert [(d["event_seq"], d["endpoint_id"]) for d in sent] == [
        (seq["e1"], all_msgs),
        (seq["e2"], all_msgs),
        (seq["e2"], blue),
        (seq["e3"], orders),
        (seq["e5"], all_msgs),
        (seq["e5"], blue),
    ]
    for d in sent:
        assert d["tenant_id"] == "tn_a"
        assert d["event_type"] == ("order.created" if d["endpoint_id"] == orders else "message.sent")
        assert (d["status"], d["attempts"], d["leased_by"], d["last_status_code"]) == (
            "pending",
            0,
            None,
            None,
        )
        assert (d["last_error"], d["completed_at"]) == (None, None)
        assert d["next_attempt_at"] == d["created_at"] == d["updated_at"] == NOW

    async with store.read() as conn:
        found = await get_event(conn, "tn_a", "e2")
        assert found is not None and found.body["data"] == DATA and found.channels == ["blue", "red"]
        assert [e.id for e in await list_events(conn, "tn_a", before=None, limit=10, since=NOW)] == [
            "e5",
            "e4",
            "e3",
            "e2",
            "e1",
        ]
        # Stored timestamps compare like the ones SQLAlchemy binds (SQLite keeps them as text).
        due = sa.select(sa.func.count()).select_from(deliveries)
        assert (await conn.execute(due.where(deliveries.c.next_attempt_at <= NOW))).scalar() == 6
        assert (await conn.execute(due.where(deliveries.c.next_attempt_at < NOW))).scalar() == 0

    worker = Worker(store, Settings())
    assert (await worker.claim(10, NOW - timedelta(microseconds=1)))[0] == []
    jobs, _ = await worker.claim(10, NOW)
    assert sorted((j.event_id, j.endpoint_id) for j in jobs) == sorted(
        (e, ep)
        for e, ep in [
            ("e1", all_msgs),
            ("e2", all_msgs),
            ("e2", blue),
            ("e3", orders),
            ("e5", all_msgs),
            ("e5", blue),
        ]
    )
    assert {bytes(j.payload) for j in jobs if j.event_id == "e1"} == {bytes(stored[0]["payload"])}


async def test_repeats_in_and_across_batches_replay_the_first(services: Services) -> None:
    store = services.store
    await _tenant(store, "tn_a", [(["*"], None)])
    generated = NewEvent(id="evt_gen", client_id=False, event_type="message.sent", data=DATA)
    first = await ingest_many(
        store,
        "tn_a",
        [
            _event("a"),
            _event("b", idempotency_key="k"),
            _event("a"),
            _event("c", idempotency_key="k"),
            generated,
        ],
        NOW,
    )
    assert [(r.id, r.created) for r in first] == [
        ("a", True),
        ("b", True),
        ("a", False),
        ("b", False),
        ("evt_gen", True),
    ]
    again = await ingest_many(
        store, "tn_a", [_event("x", idempotency_key="k"), _event("a"), _event("d")], NOW
    )
    assert [(r.id, r.deliveries, r.created) for r in again] == [
        ("b", 1, False),
        ("a", 1, False),
        ("d", 1, True),
    ]
    assert [e["id"] for e in await _rows(store, events, events.c.seq)] == ["a", "b", "evt_gen", "d"]
    assert len(await _rows(store, deliveries, deliveries.c.id)) == 4


async def test_nothing_new_announces_nothing(services: Services) -> None:
    store = services.store
    await _tenant(store, "tn_a", [(["order.*"], None)])
    wakes: list[int] = []
    store.on_new_work(lambda: wakes.append(1))
    await ingest_many(store, "tn_a", [_event("a")], NOW)  # nobody subscribes: no delivery
    assert wakes == []
    await ingest_many(store, "tn_a", [_event("b", "order.created"), _event("c", "order.created")], NOW)
    assert wakes == [1]
    await ingest_many(store, "tn_a", [_event("b", "order.created")], NOW)  # a replay
    assert wakes == [1]


async def test_same_ids_in_two_tenants_are_two_events(services: Services) -> None:
    store = services.store
    [a_hook] = await _tenant(store, "tn_a", [(["*"], None)])
    [b_hook] = await _tenant(store, "tn_b", [(["*"], None)])
    writer = EventWriter(store)
    results = await asyncio.gather(
        *(
            writer.ingest(tenant, _event(event_id), NOW)
            for tenant in ("tn_a", "tn_b")
            for event_id in ("x", "y")
        )
    )
    assert all(r.created and r.deliveries == 1 for r in results)
    stored = await _rows(store, events, events.c.seq)
    assert sorted((e["tenant_id"], e["id"]) for e in stored) == [
        ("tn_a", "x"),
        ("tn_a", "y"),
        ("tn_b", "x"),
        ("tn_b", "y"),
    ]
    by_seq = {e["seq"]: e["tenant_id"] for e in stored}
    sent = await _rows(store, deliveries, deliveries.c.id)
    assert sorted((by_seq[d["event_seq"]], d["tenant_id"], d["endpoint_id"]) for d in sent) == [
        ("tn_a", "tn_a", a_hook),
        ("tn_a", "tn_a", a_hook),
        ("tn_b", "tn_b", b_hook),
        ("tn_b", "tn_b", b_hook),
    ]


async def test_a_lost_race_rolls_back_the_batch_and_settles_each_event(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer committed one of the ids between the duplicate check and the insert: the unique
    constraint fails the whole transaction (nothing of it stays), then each event is taken alone."""
    store = services.store
    await _tenant(store, "tn_a", [(["*"], None)])
    await ingest_many(store, "tn_a", [_event("b", idempotency_key="kb")], NOW)

    real = store_events._already_accepted
    calls = 0

    async def blind_once(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return {} if calls == 1 else await real(*args)

    monkeypatch.setattr(store_events, "_already_accepted", blind_once)
    with pytest.raises(IntegrityError):
        await store_events._write(
            store, [store_events._Entry("tn_a", _event(i), NOW) for i in ("a", "b", "c")]
        )
    assert [e["id"] for e in await _rows(store, events, events.c.seq)] == ["b"]
    assert len(await _rows(store, deliveries, deliveries.c.id)) == 1

    calls = 0
    results = await ingest_many(
        store, "tn_a", [_event("a"), _event("z", idempotency_key="kb"), _event("c")], NOW
    )
    assert [(r.id, r.created) for r in results] == [("a", True), ("b", False), ("c", True)]
    assert [e["id"] for e in await _rows(store, events, events.c.seq)] == ["b", "a", "c"]
    assert len(await _rows(store, deliveries, deliveries.c.id)) == 3


async def test_a_deleted_tenant_fails_the_write(services: Services) -> None:
    with pytest.raises(IntegrityError):
        await ingest_many(services.store, "tn_gone", [_event("a")], NOW)


async def test_a_large_batch_with_fan_out(services: Services) -> None:
    store = services.store
    hooks = await _tenant(store, "tn_a", [(["*"], [f"c{i % 3}"]) for i in range(6)])
    items = [
        NewEvent(
            id=f"evt_{i:04d}",
            client_id=False,
            event_type="message.sent",
            data={"i": i},
            channels=[f"c{i % 3}"],
        )
        for i in range(1000)
    ]
    results = await ingest_many(store, "tn_a", items, NOW)
    assert all(r.created and r.deliveries == 2 for r in results)
    stored = await _rows(store, events, events.c.seq)
    assert [e["id"] for e in stored] == [i.id for i in items]
    seq_index = {e["seq"]: n for n, e in enumerate(stored)}
    sent = await _rows(store, deliveries, deliveries.c.id)
    assert [(seq_index[d["event_seq"]], d["endpoint_id"]) for d in sent] == [
        (n, hook) for n in range(1000) for hook in hooks if hooks.index(hook) % 3 == n % 3
    ]
