"""Chaos 1: SIGKILL in the middle of N deliveries, then restart: every accepted event is delivered, and
the only duplicates are deliveries the killed process held (leased) when it died.

* a `hookline worker` on PostgreSQL (with a separate `hookline api`);
* the single `hookline serve` process on SQLite (API and worker in one).

CI: N = 2,000 each; long mode: 10,000.
"""

from __future__ import annotations

from pathlib import Path

from tests.chaos.procs import (
    Db,
    Processes,
    Receiver,
    Report,
    base_env,
    event_body,
    new_tenant,
    start_api,
    start_receiver,
    start_workers,
    wait_for,
    wait_started,
)

ENDPOINTS = 10
# Short enough that the rows the killed process held come back soon; twice the delivery timeout.
SETTINGS = {"HOOKLINE_DELIVERY_TIMEOUT": "2s", "HOOKLINE_LEASE": "4s"}


def size(is_long: bool) -> int:
    return 10_000 if is_long else 2_000


def wait_all_delivered(
    receiver: Receiver, accepted: set[str], db: Db, procs: Processes, timeout: float
) -> None:
    def done() -> bool:
        return accepted <= receiver.sync().ok_ids() and db.states() == {"succeeded": len(accepted)}

    wait_for(
        done,
        timeout,
        f"all {len(accepted)} accepted events to be delivered",
        lambda: f"missing={len(accepted - receiver.ok_ids())} states={db.states()}\n{procs.diag()}",
        interval=0.5,
    )


def check_duplicates(receiver: Receiver, accepted: set[str], held: set[str]) -> dict[str, int]:
    duplicates = receiver.duplicates()
    assert set(receiver.ok_ids()) <= accepted, "the receiver got events nobody posted"
    # A second success can only be a send whose result the killed process never recorded: a row it held.
    assert set(duplicates) <= held, sorted(set(duplicates) - held)[:10]
    assert all(n == 1 for n in duplicates.values()), duplicates
    return duplicates


def test_sigkill_worker_on_postgresql(pg_url: str, procs: Processes, report: Report, is_long: bool) -> None:
    n = size(is_long)
    receiver = start_receiver(procs, [{"prefix": "/", "delay": 0.02}])
    env = base_env(HOOKLINE_DATABASE_URL=pg_url, **SETTINGS)
    _, base_url = start_api(procs, "api", env)
    tenant = new_tenant(base_url)
    tenant.webhooks([{"url": receiver.url(f"/kill/{i}"), "channels": [f"c{i}"]} for i in range(ENDPOINTS)])
    accepted = set(tenant.post_batches([event_body(i, f"c{i % ENDPOINTS}") for i in range(n)]))
    assert len(accepted) == n
    db = Db(url=pg_url)

    (worker,) = start_workers(procs, ["worker-a"], env)
    wait_for(lambda: len(receiver.sync().ok_ids()) >= n * 0.4, 180, "40% of the deliveries", procs.diag, 0.1)
    worker.kill()
    worker_id = worker.worker_id()
    assert worker_id
    held = db.leased_by(worker_id)
    before = receiver.sync().ok_ids()
    assert len(before) < n, "everything arrived before the kill; the test proves nothing"
    assert held, "the killed worker held no lease: nothing was in flight"

    start_workers(procs, ["worker-b"], env)
    wait_all_delivered(receiver, accepted, db, procs, timeout=300)
    duplicates = check_duplicates(receiver, accepted, held)
    line = report.write(
        "1a worker SIGKILL (postgresql)",
        accepted,
        receiver,
        db=db,
        delivered_before_kill=len(before),
        held_by_killed=len(held),
    )
    assert line["lost"] == 0
    assert line["duplicated"] == sum(duplicates.values()) <= len(held)
    assert db.leased_rows() == 0


def test_sigkill_serve_on_sqlite(procs: Processes, tmp_path: Path, report: Report, is_long: bool) -> None:
    n = size(is_long)
    home = tmp_path / "serve-home"
    home.mkdir()
    receiver = start_receiver(procs, [{"prefix": "/", "delay": 0.02}])
    env = base_env(**SETTINGS)
    serve, base_url = start_api(procs, "serve-1", env, command="serve")
    db = Db(path=procs.directory / "hookline-data" / "hookline.db")
    assert db.path is not None and db.path.exists()
    tenant = new_tenant(base_url)
    tenant.webhooks([{"url": receiver.url(f"/kill/{i}"), "channels": [f"c{i}"]} for i in range(ENDPOINTS)])
    # Posted while the same process delivers: ingest and delivery share the one SQLite writer.
    accepted = set(tenant.post_batches([event_body(i, f"c{i % ENDPOINTS}") for i in range(n)]))
    assert len(accepted) == n
    wait_started(procs, [serve])

    wait_for(lambda: len(receiver.sync().ok_ids()) >= n * 0.4, 180, "40% of the deliveries", procs.diag, 0.1)
    serve.kill()
    worker_id = serve.worker_id()
    assert worker_id
    held = db.leased_by(worker_id)
    before = receiver.sync().ok_ids()
    assert len(before) < n, "everything arrived before the kill; the test proves nothing"
    assert held, "the killed process held no lease: nothing was in flight"

    start_api(procs, "serve-2", env, command="serve")
    wait_all_delivered(receiver, accepted, db, procs, timeout=300)
    duplicates = check_duplicates(receiver, accepted, held)
    line = report.write(
        "1b serve SIGKILL (sqlite)",
        accepted,
        receiver,
        db=db,
        delivered_before_kill=len(before),
        held_by_killed=len(held),
    )
    assert line["lost"] == 0
    assert line["duplicated"] == sum(duplicates.values()) <= len(held)
    assert db.leased_rows() == 0
