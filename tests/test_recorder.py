"""The recorder cannot be poisoned, and ids are never reused (issue 9, findings 1 and 2), on both backends.

A webhook or tenant deleted while one of its attempts is in flight used to make the attempt row violate
the ``attempts`` foreign key; the worker then put the whole batch back for ever: nothing was recorded for
anyone and a stop never finished. SQLite reused the ids of deleted rows, so such a late result (or a
late 410) could land on another tenant's new delivery or endpoint. Here: the reproduction as reported,
results that cannot be written, a database that is down during a stop, ids after deletes, and writes
keyed by an id that no longer belongs to the same tenant and endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hookline.api.services import Services
from hookline.dispatch.worker import Worker
from hookline.store import queue
from hookline.store.queue import Outcome
from tests.conftest import Api, assert_ok
from tests.receivers import Receiver, Reply
from tests.test_delivery import delivery, delivery_id, hook, post, running, rx, settings_overrides, settled

__all__ = ["rx", "settings_overrides"]  # fixtures shared with test_delivery

DRAIN = 2.0  # the drain timeout of test_delivery's settings


async def _stop_within_drain(worker: Worker, task: asyncio.Task[None]) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    worker.stop()
    await asyncio.wait_for(task, DRAIN + 1.0)  # a wedged stop fails here instead of hanging the run
    took = loop.time() - started
    assert took <= DRAIN + 0.25, f"the stop took {took:.2f} s, the drain timeout is {DRAIN} s"
    return took


async def _attempt_rows(services: Services, delivery: int) -> int:
    async with services.store.read() as conn:
        query = sa.text("SELECT count(*) FROM attempts WHERE delivery_id = :d")
        return int((await conn.execute(query, {"d": delivery})).scalar_one())


# --- finding 1, as reported ----------------------------------------------------------------------------


@pytest.mark.parametrize("deleted", ["webhook", "tenant"])
async def test_deleting_a_webhook_during_its_attempt_does_not_wedge_the_recorder(
    api: Api, services: Services, rx: Receiver, deleted: str
) -> None:
    tenant_a, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    slow = await hook(api, auth_a, rx.url("/slow"))
    fast = await hook(api, auth_b, rx.url("/fast"))
    rx.always("/slow", Reply(200, delay=0.5))
    worker = Worker(services.store, services.settings)
    task = asyncio.create_task(worker.run())
    try:
        doomed_event = await post(api, auth_a)
        doomed = await delivery_id(api, auth_a, doomed_event, slow["id"])
        await rx.wait_for(1, "/slow")
        if deleted == "webhook":
            gone = await api.http.delete(f"/v1/webhooks/{slow['id']}", headers=auth_a)
        else:
            gone = await api.http.delete(f"/v1/tenants/{tenant_a}", headers=api.admin)
        assert_ok(gone)
        await asyncio.sleep(0.7)  # the slow attempt has finished: its result is in the recorder
        event_id = await post(api, auth_b)
        found = await settled(api, auth_b, await delivery_id(api, auth_b, event_id, fast["id"]), timeout=5)
        assert found["status"] == "succeeded" and len(found["attempt_log"]) == 1
    finally:
        await _stop_within_drain(worker, task)
    assert await _attempt_rows(services, doomed) == 0
    assert worker.dropped_results == 0  # left out at the root, not dropped after a failure
    assert len(rx.to("/slow")) == 1  # not sent again lease after lease


# --- results that cannot be written ---------------------------------------------------------------------


async def test_a_result_that_cannot_be_written_holds_back_no_other(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/x"))
    idents = [await delivery_id(api, auth, await post(api, auth), endpoint["id"]) for _ in range(4)]
    now = datetime.now(UTC)
    jobs, _ = await Worker(services.store, services.settings).claim(10, now)
    by_id = {job.delivery_id: job for job in jobs}
    assert sorted(by_id) == sorted(idents)

    def outcome(ident: int, **changes: Any) -> Outcome:
        job = by_id[ident]
        fields: dict[str, Any] = {
            "delivery_id": ident,
            "endpoint_id": job.endpoint_id,
            "tenant_id": job.tenant_id,
            "attempt": 1,
            "started_at": now,
            "duration_ms": 5,
            "status_code": 200,
            "response_body": "fine",
            "error": None,
            "request_headers": {"User-Agent": "hookline"},
            "status": "succeeded",
            "next_attempt_at": None,
        }
        return Outcome(**(fields | changes))

    good, bad_body, unwritable, good_too = idents
    worker = Worker(services.store, services.settings)
    worker._outcomes = [
        outcome(good),
        outcome(bad_body, response_body="lone surrogate \ud800"),  # cannot be encoded
        outcome(unwritable, duration_ms=2**70),  # no integer column holds it
        outcome(good_too),
    ]
    await asyncio.wait_for(worker._flush(), 10)
    assert worker._outcomes == []
    assert worker.dropped_results == 1
    for ident in (good, good_too):
        found = await delivery(api, auth, ident)
        assert found["status"] == "succeeded" and found["attempt_log"][0]["response_body"] == "fine"
    stripped = await delivery(api, auth, bad_body)
    assert stripped["status"] == "succeeded" and stripped["attempt_log"][0]["response_body"] is None
    assert "could not be stored" in stripped["last_error"]
    dropped = await delivery(api, auth, unwritable)
    assert dropped["status"] == "pending" and dropped["attempt_log"] == []  # its lease brings it back


async def test_stop_is_bounded_when_the_database_cannot_be_written(
    api: Api, services: Services, rx: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/down"))

    async def unavailable(*_: Any, **__: Any) -> None:
        raise ConnectionRefusedError("the database is down")

    def refused(*_: Any, **__: Any) -> Any:
        raise ConnectionRefusedError("the database is down")

    worker = Worker(services.store, services.settings)
    task = asyncio.create_task(worker.run())
    try:
        await post(api, auth)
        await rx.wait_for(1, "/down")
        monkeypatch.setattr(queue, "recording", refused)
        monkeypatch.setattr(queue, "release", unavailable)
        await asyncio.sleep(0.3)  # the recorder is retrying by now
    finally:
        await _stop_within_drain(worker, task)
    assert worker._outcomes, "the result was kept, not dropped: its lease brings the delivery back"
    assert worker.dropped_results == 0
    assert endpoint["active"]


# --- finding 2: ids and the writes keyed by them ------------------------------------------------------------


async def _max(services: Services, table: str, column: str) -> int:
    async with services.store.read() as conn:
        return int((await conn.execute(sa.text(f"SELECT max({column}) FROM {table}"))).scalar_one())


async def test_ids_of_deleted_rows_are_never_reused(api: Api, services: Services, rx: Receiver) -> None:
    tenant_a, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    first = await hook(api, auth_a, rx.url("/a"))
    event_a = await post(api, auth_a)
    delivery_a = await delivery_id(api, auth_a, event_a, first["id"])
    seq_a = await _max(services, "events", "seq")
    # The newest endpoint, delivery and event go: SQLite without AUTOINCREMENT reuses exactly these.
    assert_ok(await api.http.delete(f"/v1/tenants/{tenant_a}", headers=api.admin))
    second = await hook(api, auth_b, rx.url("/b"))
    event_b = await post(api, auth_b)
    assert second["id"] > first["id"]
    assert await delivery_id(api, auth_b, event_b, second["id"]) > delivery_a
    assert await _max(services, "events", "seq") > seq_a


async def test_a_late_410_for_a_deleted_endpoint_disables_no_other(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    gone = await hook(api, auth_a, rx.url("/gone"))
    rx.always("/gone", Reply(410, delay=0.5))
    async with running(services) as worker:
        await post(api, auth_a)
        await rx.wait_for(1, "/gone")
        assert_ok(await api.http.delete(f"/v1/webhooks/{gone['id']}", headers=auth_a))
        other = await hook(api, auth_b, rx.url("/other"))
        await asyncio.sleep(0.8)  # the 410 has come back and been recorded
        event_id = await post(api, auth_b)
        await settled(api, auth_b, await delivery_id(api, auth_b, event_id, other["id"]), timeout=5)
    assert worker.dropped_results == 0
    found = assert_ok(await api.http.get(f"/v1/webhooks/{other['id']}", headers=auth_b))
    assert found["active"] is True and found["disabled_reason"] is None


async def test_writes_keyed_by_id_check_the_tenant_and_endpoint_they_were_claimed_for(
    api: Api, services: Services, rx: Receiver
) -> None:
    """Forged results that carry another tenant's delivery or endpoint id (what id reuse used to
    produce) change nothing of that tenant's: no attempt, no state, no disabled endpoint."""
    tenant_a, auth_a = await api.tenant("A")
    _, auth_b = await api.tenant("B")
    endpoint_a = await hook(api, auth_a, rx.url("/a"))
    endpoint_b = await hook(api, auth_b, rx.url("/b"))
    victim = await delivery_id(api, auth_b, await post(api, auth_b), endpoint_b["id"])
    now = datetime.now(UTC)
    late = Outcome(
        delivery_id=victim,
        endpoint_id=endpoint_a["id"],
        tenant_id=tenant_a,
        attempt=1,
        started_at=now,
        duration_ms=3,
        status_code=410,
        response_body="tenant A's receiver said this",
        error=None,
        request_headers={"webhook-id": "evt_of_tenant_a"},
        status="failed",
        next_attempt_at=None,
    )
    forged_endpoint = dataclasses.replace(late, endpoint_id=endpoint_b["id"])  # B's ids, A's tenant
    worker = Worker(services.store, services.settings)
    await worker.write_results([late, forged_endpoint], now + timedelta(seconds=1))
    found = await delivery(api, auth_b, victim)
    assert found["status"] == "pending" and found["attempts"] == 0 and found["attempt_log"] == []
    assert "tenant A" not in str(found)
    for endpoint, auth in ((endpoint_b, auth_b), (endpoint_a, auth_a)):
        still = assert_ok(await api.http.get(f"/v1/webhooks/{endpoint['id']}", headers=auth))
        assert still["active"] is True
