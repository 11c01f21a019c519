"""Retention (hookline.store.retention) on SQLite and PostgreSQL: what goes, what stays, what the API
says about a pruned delivery, and that pruning beside a working worker loses no delivery.

Old history is written straight into the tables with the times it would have (an event, its
deliveries, their attempts); recent traffic goes through the API and the real worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookline.api.services import Services
from hookline.dispatch.worker import Worker
from hookline.ids import new_id
from hookline.store import retention
from hookline.store.engine import Store
from hookline.store.events import format_timestamp
from hookline.store.schema import attempts, deliveries, endpoints, events, tenants
from hookline.store.tenants import insert_tenant
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Receiver

DAY = timedelta(days=1)
RETENTION = 30 * DAY
SUMMARIES = 90 * DAY
PAYLOAD = b'{"id":"x","event":"message.received","timestamp":"t","data":{"body":"secret"}}'


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "allow_http": True,
        "allowed_networks": "127.0.0.0/8",
        "retry_schedule": "200ms",
        "retry_jitter": 0,
        "poll_interval": "100ms",
        "delivery_timeout": "2s",
        "lease": "5s",
        "drain_timeout": "2s",
    }


def now() -> datetime:
    return datetime.now(UTC)


# --- writing history -----------------------------------------------------------------------------------


async def tenant(store: Store, tenant_id: str, retention_days: int | None = None) -> int:
    """A tenant and one endpoint of it (not scheduled: no worker claims this history)."""
    async with store.write() as conn:
        await insert_tenant(
            conn,
            tenant_id=tenant_id,
            name=tenant_id,
            metadata={},
            now=now(),
            retention_seconds=retention_days * 86400 if retention_days else None,
        )
        return int(
            (
                await conn.execute(
                    endpoints.insert()
                    .values(
                        tenant_id=tenant_id,
                        url="https://example.com/hook",
                        description="",
                        secret="whsec_" + "A" * 32,
                        events=["*"],
                        channels=None,
                        headers={},
                        metadata={},
                        active=True,
                        created_at=now(),
                        updated_at=now(),
                    )
                    .returning(endpoints.c.id)
                )
            ).scalar_one()
        )


@dataclass(frozen=True)
class Written:
    seq: int
    event_id: str
    tenant_id: str
    deliveries: list[int]


async def history(
    store: Store, tenant_id: str, endpoint: int, *, age: timedelta, statuses: list[str], tries: int = 2
) -> Written:
    """An event accepted ``age`` ago with one delivery per status (finished a minute later, each with
    ``tries`` attempts); a pending one has its attempts but no end."""
    created = now() - age
    event_id = new_id("evt")
    async with store.write() as conn:
        seq = (
            await conn.execute(
                events.insert()
                .values(
                    id=event_id,
                    tenant_id=tenant_id,
                    event_type="message.received",
                    idempotency_key=None,
                    channels=None,
                    payload=PAYLOAD,
                    delivery_count=len(statuses),
                    created_at=created,
                )
                .returning(events.c.seq)
            )
        ).scalar_one()
        ids = []
        for status in statuses:
            done = None if status == "pending" else created + timedelta(minutes=1)
            delivery = (
                await conn.execute(
                    deliveries.insert()
                    .values(
                        event_seq=seq,
                        endpoint_id=endpoint,
                        tenant_id=tenant_id,
                        event_type="message.received",
                        status=status,
                        attempts=tries,
                        next_attempt_at=created,
                        last_status_code=200 if status == "succeeded" else 500,
                        last_error=None,
                        created_at=created,
                        updated_at=done or created,
                        completed_at=done,
                    )
                    .returning(deliveries.c.id)
                )
            ).scalar_one()
            ids.append(int(delivery))
            for n in range(1, tries + 1):
                await conn.execute(
                    attempts.insert().values(
                        delivery_id=delivery,
                        endpoint_id=endpoint,
                        attempt=n,
                        started_at=created,
                        duration_ms=5,
                        status_code=500,
                        response_body="boom",
                        error=None,
                        request_headers={"webhook-id": event_id},
                    )
                )
    return Written(int(seq), event_id, tenant_id, ids)


@dataclass(frozen=True)
class Seen:
    payload: bytes | None  # None: the event row is gone
    pruned_deliveries: set[int]
    live_deliveries: set[int]  # rows present and not pruned
    attempts: int  # attempt rows of the event's deliveries


async def seen(store: Store, written: Written) -> Seen:
    async with store.read() as conn:
        payload = (
            await conn.execute(sa.select(events.c.payload).where(events.c.seq == written.seq))
        ).scalar()
        rows = (
            await conn.execute(
                sa.select(deliveries.c.id, deliveries.c.pruned_at).where(
                    deliveries.c.event_seq == written.seq
                )
            )
        ).all()
        count = (
            await conn.execute(
                sa.select(sa.func.count()).where(attempts.c.delivery_id.in_(written.deliveries or [-1]))
            )
        ).scalar_one()
    return Seen(
        payload,
        {r.id for r in rows if r.pruned_at is not None},
        {r.id for r in rows if r.pruned_at is None},
        count,
    )


async def prune(store: Store, **options: Any) -> retention.Pruned:
    options.setdefault("retention", RETENTION)
    options.setdefault("summary_retention", SUMMARIES)
    return await retention.prune(store, now(), **options)


# --- what goes and what stays --------------------------------------------------------------------------


async def test_old_finished_deliveries_lose_attempts_and_payload_recent_and_pending_stay(
    services: Services,
) -> None:
    store = services.store
    endpoint = await tenant(store, "acme")
    old = await history(store, "acme", endpoint, age=40 * DAY, statuses=["succeeded", "failed"])
    recent = await history(store, "acme", endpoint, age=10 * DAY, statuses=["succeeded"])
    old_pending = await history(store, "acme", endpoint, age=60 * DAY, statuses=["pending"])
    mixed = await history(store, "acme", endpoint, age=40 * DAY, statuses=["succeeded", "pending"])
    lonely = await history(store, "acme", endpoint, age=40 * DAY, statuses=[])

    done = await prune(store)

    gone = await seen(store, old)
    assert gone.payload == b"" and gone.attempts == 0
    assert gone.pruned_deliveries == set(old.deliveries) and not gone.live_deliveries
    kept = await seen(store, recent)
    assert kept.payload == PAYLOAD and kept.attempts == 2 and kept.live_deliveries == set(recent.deliveries)
    pending = await seen(store, old_pending)
    assert pending.payload == PAYLOAD and pending.attempts == 2 and not pending.pruned_deliveries
    # The finished delivery of an event still being delivered loses its attempts; the payload stays.
    half = await seen(store, mixed)
    assert half.payload == PAYLOAD
    assert half.pruned_deliveries == {mixed.deliveries[0]} and half.live_deliveries == {mixed.deliveries[1]}
    assert half.attempts == 2  # the pending delivery's
    assert (await seen(store, lonely)).payload is None  # an event that made no delivery is deleted
    assert (done.attempts, done.deliveries, done.payloads, done.events_deleted) == (6, 3, 1, 1)

    again = await prune(store)
    assert again.rows == 0 and again.complete


async def test_a_tenants_own_retention_wins_both_ways(services: Services) -> None:
    store = services.store
    short = await tenant(store, "short", retention_days=7)
    long = await tenant(store, "long", retention_days=60)
    by_short = await history(store, "short", short, age=10 * DAY, statuses=["succeeded"])
    by_long = await history(store, "long", long, age=40 * DAY, statuses=["succeeded"])
    older = await history(store, "long", long, age=61 * DAY, statuses=["failed"])

    await prune(store)

    assert (await seen(store, by_short)).payload == b""  # 10 days > its 7, though < the service's 30
    assert (await seen(store, by_long)).payload == PAYLOAD  # 40 days > 30, but it keeps 60
    assert (await seen(store, older)).payload == b""


async def test_a_tenant_scoped_prune_leaves_other_tenants_alone(services: Services) -> None:
    store = services.store
    mine = await tenant(store, "mine")
    theirs = await tenant(store, "theirs")
    my_old = await history(store, "mine", mine, age=40 * DAY, statuses=["succeeded"])
    their_old = await history(store, "theirs", theirs, age=400 * DAY, statuses=["succeeded"])

    done = await prune(store, tenant_id="mine", older_than=timedelta(days=1))

    assert done.tenants == 1
    assert (await seen(store, my_old)).payload == b""
    untouched = await seen(store, their_old)
    assert untouched.payload == PAYLOAD and untouched.attempts == 2 and not untouched.pruned_deliveries


async def test_summaries_are_deleted_after_their_own_retention(services: Services) -> None:
    store = services.store
    endpoint = await tenant(store, "acme")
    ancient = await history(store, "acme", endpoint, age=100 * DAY, statuses=["succeeded", "failed"])
    old = await history(store, "acme", endpoint, age=80 * DAY, statuses=["succeeded"])
    held = await history(store, "acme", endpoint, age=100 * DAY, statuses=["pending"])

    done = await prune(store)

    assert (await seen(store, ancient)).payload is None  # summaries past 90 days: gone entirely
    async with store.read() as conn:
        left = (
            await conn.execute(sa.select(sa.func.count()).where(deliveries.c.id.in_(ancient.deliveries)))
        ).scalar_one()
    assert left == 0
    assert (await seen(store, old)).pruned_deliveries == set(old.deliveries)  # a summary, still there
    assert (await seen(store, held)).payload == PAYLOAD  # pending: never pruned, whatever its age
    assert done.summaries_deleted == 2


async def test_small_batches_reach_every_row(services: Services) -> None:
    store = services.store
    endpoint = await tenant(store, "acme")
    old = [
        await history(store, "acme", endpoint, age=(40 + i) * DAY, statuses=["succeeded"]) for i in range(7)
    ]
    pending = [await history(store, "acme", endpoint, age=45 * DAY, statuses=["pending"]) for _ in range(3)]

    done = await prune(store, batch=2)

    assert [(await seen(store, w)).payload for w in old] == [b""] * 7
    assert [(await seen(store, w)).payload for w in pending] == [PAYLOAD] * 3  # passed over, batch by batch
    assert done.payloads == 7 and done.statements > 7


async def test_a_paced_run_waits_between_batches_so_statements_take_at_most_its_share(
    services: Services,
) -> None:
    """The workers' pacing (HOOKLINE_RETENTION_SHARE): the run's wall time is at least its statements'
    time divided by the share, however slow the machine (waits only ever add time)."""
    store = services.store
    endpoint = await tenant(store, "acme")
    old = [await history(store, "acme", endpoint, age=40 * DAY, statuses=["succeeded"]) for _ in range(6)]

    started = time.monotonic()
    done = await prune(store, batch=2, share=0.25)
    elapsed = time.monotonic() - started

    assert [(await seen(store, w)).payload for w in old] == [b""] * 6
    assert set(done.seconds) >= {"find events", "mark deliveries", "delete attempts", "empty payloads"}
    assert elapsed >= sum(done.seconds.values()) / 0.25
    with pytest.raises(ValueError, match="share"):
        await prune(store, share=0.0)


# --- the API -------------------------------------------------------------------------------------------


async def _age(store: Store, event_seq: int, by: timedelta) -> None:
    """Move an event and its deliveries ``by`` into the past, as if they had happened then."""
    async with store.write() as conn:
        created = (
            await conn.execute(sa.select(events.c.created_at).where(events.c.seq == event_seq))
        ).scalar_one()
        await conn.execute(events.update().where(events.c.seq == event_seq).values(created_at=created - by))
        d = deliveries.c
        for row in (
            await conn.execute(sa.select(d.id, d.created_at, d.completed_at).where(d.event_seq == event_seq))
        ).all():
            await conn.execute(
                deliveries.update()
                .where(d.id == row.id)
                .values(created_at=row.created_at - by, completed_at=row.completed_at - by)
            )


@contextlib.asynccontextmanager
async def running(services: Services) -> AsyncIterator[Worker]:
    worker = Worker(services.store, services.settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def _settled(api: Api, auth: dict[str, str], ident: int) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        found: dict[str, Any] = assert_ok(await api.http.get(f"/v1/deliveries/{ident}", headers=auth))
        if found["status"] != "pending":
            return found
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)


async def test_a_pruned_delivery_is_still_readable_by_id_and_says_so(api: Api, services: Services) -> None:
    tenant_id, auth = await api.tenant()
    async with Receiver() as rx:
        hook = assert_ok(
            await api.http.post("/v1/webhooks", json={"url": rx.url("/hook"), "events": ["*"]}, headers=auth),
            201,
        )
        example = assert_ok(await api.http.get("/v1/event-types/message.received", headers=auth))["example"]
        posted = assert_ok(
            await api.http.post(
                "/v1/events", json={"event": "message.received", "data": example}, headers=auth
            ),
            202,
        )
        async with running(services):
            event = assert_ok(await api.http.get(f"/v1/events/{posted['id']}", headers=auth))
            ident = event["delivery_status"][0]["id"]
            before = await _settled(api, auth, ident)
    assert before["status"] == "succeeded" and len(before["attempt_log"]) == 1 and before["pruned"] is False
    async with services.store.read() as conn:
        seq = (await conn.execute(sa.select(events.c.seq).where(events.c.id == posted["id"]))).scalar_one()
    await _age(services.store, seq, 31 * DAY)

    await prune(services.store)

    after = assert_ok(await api.http.get(f"/v1/deliveries/{ident}", headers=auth))
    assert after["pruned"] is True and after["attempt_log"] == []
    kept = ("id", "webhook_id", "event_id", "event", "status", "attempts", "last_status_code", "updated_at")
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    assert after["created_at"] < before["created_at"]  # aged by the test, as stored
    assert after["last_status_code"] == 200 and after["attempts"] == 1
    shown = assert_ok(await api.http.get(f"/v1/events/{posted['id']}", headers=auth))
    assert shown["pruned"] is True and shown["data"] is None
    delivered_at = datetime.fromisoformat(event["timestamp"])  # what the payload carried, aged as the rows
    assert shown["timestamp"] == format_timestamp(delivered_at - 31 * DAY)
    assert shown["delivery_status"][0]["pruned"] is True
    listed = assert_ok(await api.http.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=auth))["items"]
    assert [d["pruned"] for d in listed] == [True]
    # Its payload is gone: it cannot be sent again, by a retry or a replay.
    refused = assert_error(await api.http.post(f"/v1/deliveries/{ident}/retry", headers=auth), 409)
    assert "pruned by retention" in refused["error"]
    replay = {"since": (now() - 400 * DAY).isoformat()}
    replayed = assert_ok(
        await api.http.post(f"/v1/webhooks/{hook['id']}/replay", json=replay, headers=auth), 202
    )
    assert replayed["requeued"] == 0
    # Another tenant does not see the summary either.
    _, other = await api.tenant("Other")
    assert_error(await api.http.get(f"/v1/deliveries/{ident}", headers=other), 404)
    assert tenant_id


async def test_a_tenants_retention_is_set_shown_and_reset_through_the_api(
    api: Api, services: Services
) -> None:
    created = assert_ok(
        await api.http.post(
            "/v1/tenants",
            json={"name": "Acme", "id": "acme", "retention_seconds": 7 * 86400},
            headers=api.admin,
        ),
        201,
    )
    assert created["retention_seconds"] == 7 * 86400
    same = assert_ok(await api.http.patch("/v1/tenants/acme", json={"name": "Acme 2"}, headers=api.admin))
    assert same["retention_seconds"] == 7 * 86400  # not given: unchanged
    reset = assert_ok(
        await api.http.patch("/v1/tenants/acme", json={"retention_seconds": None}, headers=api.admin)
    )
    assert reset["retention_seconds"] is None and reset["name"] == "Acme 2"
    too_short = await api.http.patch("/v1/tenants/acme", json={"retention_seconds": 60}, headers=api.admin)
    assert too_short.status_code in (400, 422) and "retention_seconds" in too_short.text
    async with services.store.read() as conn:
        stored = (
            await conn.execute(sa.select(tenants.c.retention_seconds).where(tenants.c.id == "acme"))
        ).scalar_one()
    assert stored is None


# --- pruning beside the worker -------------------------------------------------------------------------


async def test_pruning_while_deliveries_flow_loses_no_delivery(api: Api, services: Services) -> None:
    """A worker delivers fresh events to a real receiver while prune runs repeatedly over old history
    (in batches of 3): every fresh event arrives, every delivery ends succeeded with its attempt, and
    the old history is pruned."""
    store = services.store
    _, auth = await api.tenant()
    hidden = await tenant(store, "old-history")
    old = [
        await history(store, "old-history", hidden, age=40 * DAY, statuses=["succeeded"]) for _ in range(30)
    ]
    async with Receiver() as rx:
        hook = assert_ok(
            await api.http.post("/v1/webhooks", json={"url": rx.url("/hook"), "events": ["*"]}, headers=auth),
            201,
        )
        example = assert_ok(await api.http.get("/v1/event-types/message.received", headers=auth))["example"]
        stop = asyncio.Event()
        runs: list[retention.Pruned] = []

        async def pruning() -> None:
            while not stop.is_set():
                runs.append(await prune(store, batch=3))
                await asyncio.sleep(0.01)

        async with running(services):
            pruner = asyncio.create_task(pruning())
            ids = []
            for _ in range(60):
                body = {"event": "message.received", "data": example}
                ids.append(assert_ok(await api.http.post("/v1/events", json=body, headers=auth), 202)["id"])
            await rx.wait_for(60, "/hook")
            stop.set()
            await pruner
    delivered = {r.headers["webhook-id"] for r in rx.requests}
    assert delivered == set(ids)
    listed = assert_ok(await api.http.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=100", headers=auth))[
        "items"
    ]
    assert len(listed) == 60 and all(d["status"] == "succeeded" and not d["pruned"] for d in listed)
    assert [(await seen(store, w)).payload for w in old] == [b""] * 30
    assert sum(r.payloads for r in runs) == 30


# --- a model of what goes ------------------------------------------------------------------------------

HISTORY = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # tenant
        st.integers(0, 120),  # age in days
        st.lists(st.sampled_from(["succeeded", "failed", "pending"]), max_size=3),
    ),
    max_size=12,
)
OVERRIDES = {"a": None, "b": 7, "c": 60}  # days; None: the service's 30


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(written=HISTORY, tenant_scope=st.sampled_from([None, "a", "b"]))
async def test_exactly_the_rows_that_should_go_are_gone(
    services: Services, written: list[tuple[str, int, list[str]]], tenant_scope: str | None
) -> None:
    store = services.store
    async with store.write() as conn:
        await conn.execute(deliveries.delete())
        await conn.execute(events.delete())
        await conn.execute(endpoints.delete())
        await conn.execute(tenants.delete())
    hooks = {t: await tenant(store, t, days) for t, days in OVERRIDES.items()}
    rows = [
        await history(store, t, hooks[t], age=timedelta(days=age, hours=12), statuses=statuses)
        for t, age, statuses in written
    ]

    await prune(store, tenant_id=tenant_scope, batch=2)

    for (t, age, statuses), w in zip(written, rows, strict=True):
        keep = OVERRIDES[t] or 30
        in_scope = tenant_scope in (None, t)
        finished = [d for d, s in zip(w.deliveries, statuses, strict=True) if s != "pending"]
        pruned = in_scope and age >= keep
        found = await seen(store, w)
        if not statuses:
            assert (found.payload is None) == pruned
        elif pruned and "pending" not in statuses and age >= max(keep, 90):
            assert found.payload is None and not found.pruned_deliveries and not found.live_deliveries
        elif pruned:
            assert found.pruned_deliveries == set(finished)
            assert found.payload == (PAYLOAD if "pending" in statuses else b"")
            assert found.attempts == 2 * (len(statuses) - len(finished))
        else:
            assert found.payload == PAYLOAD and not found.pruned_deliveries
            assert found.attempts == 2 * len(statuses)


# --- hookline prune ------------------------------------------------------------------------------------


def hookline(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HOOKLINE_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "hookline"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_prune_command_removes_what_is_older_and_says_what(
    services: Services, database_url: str
) -> None:
    store = services.store
    mine = await tenant(store, "mine")
    theirs = await tenant(store, "theirs")
    my_old = await history(store, "mine", mine, age=40 * DAY, statuses=["succeeded", "failed"])
    my_recent = await history(store, "mine", mine, age=5 * DAY, statuses=["succeeded"])
    their_old = await history(store, "theirs", theirs, age=40 * DAY, statuses=["succeeded"])

    scoped = await asyncio.to_thread(
        hookline, "prune", "--older-than", "30d", "--tenant", "mine", "--database-url", database_url
    )
    assert scoped.returncode == 0, scoped.stderr
    assert scoped.stdout.strip() == (
        "pruned: 4 attempts, 2 deliveries (summaries kept), 1 payloads; deleted: 0 events, "
        "0 expired delivery summaries (1 tenants)"
    )
    assert (await seen(store, my_old)).payload == b""
    assert (await seen(store, my_recent)).payload == PAYLOAD
    assert (await seen(store, their_old)).payload == PAYLOAD

    shorter = await asyncio.to_thread(hookline, "prune", "--older-than", "3d", "--database-url", database_url)
    assert shorter.returncode == 0, shorter.stderr
    assert shorter.stdout.startswith("pruned: 4 attempts, 2 deliveries")  # my recent one and theirs
    assert (await seen(store, my_recent)).payload == b"" and (await seen(store, their_old)).payload == b""

    unknown = await asyncio.to_thread(hookline, "prune", "--tenant", "nobody", "--database-url", database_url)
    assert (unknown.returncode, unknown.stderr.strip()) == (4, "hookline: tenant 'nobody' not found")
    typo = await asyncio.to_thread(hookline, "prune", "--older-than", "30", "--database-url", database_url)
    assert typo.returncode == 2 and "'30' is less than 1h" in typo.stderr
