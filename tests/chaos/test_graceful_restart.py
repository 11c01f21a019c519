"""Chaos 5: SIGTERM a worker under load, then start another.

* the worker exits 0 within its drain timeout, having finished and recorded what it had in flight (every
  event the receiver saw before the exit is recorded as succeeded, and none is sent again);
* it leaves no row leased in its name (claimed-but-unsent work is handed back);
* with a 120 s lease, the next worker delivers the rest well before any lease could have expired.

CI: 1,000 events; long mode: 5,000.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.chaos.procs import (
    Db,
    Processes,
    Report,
    base_env,
    event_body,
    new_tenant,
    start_api,
    start_receiver,
    start_workers,
    wait_for,
)

ENDPOINTS = 10
LEASE = 120.0
DRAIN = 10.0


def test_sigterm_drains_and_restart_does_not_wait_for_leases(
    pg_url: str, procs: Processes, report: Report, is_long: bool
) -> None:
    n = 5_000 if is_long else 1_000
    receiver = start_receiver(procs, [{"prefix": "/", "delay": 0.2}])
    env = base_env(
        HOOKLINE_DATABASE_URL=pg_url,
        HOOKLINE_LEASE=f"{LEASE:g}s",
        HOOKLINE_DRAIN_TIMEOUT=f"{DRAIN:g}s",
        HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT="5",
    )
    _, base_url = start_api(procs, "api", env)
    tenant = new_tenant(base_url)
    tenant.webhooks([{"url": receiver.url(f"/term/{i}"), "channels": [f"c{i}"]} for i in range(ENDPOINTS)])
    (worker,) = start_workers(procs, ["worker-a"], env)
    worker_id = worker.worker_id()
    assert worker_id
    accepted = set(tenant.post_batches([event_body(i, f"c{i % ENDPOINTS}") for i in range(n)]))
    db = Db(url=pg_url)

    wait_for(lambda: len(receiver.sync().ok_ids()) >= n // 4, 120, "a quarter of the deliveries", procs.diag)
    held = db.leased_by(worker_id)
    assert held, "the worker held no lease when stopped: nothing was under way"
    worker.signal(signal.SIGTERM)
    try:
        code = worker.popen.wait(DRAIN + 30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within {DRAIN + 30:g} s of SIGTERM\n{procs.diag()}")
    assert code == 0, procs.diag()
    assert any(e.get("event") == "worker stopped" for e in worker.log_events()), procs.diag()

    # Nothing left leased in its name; whatever reached the receiver was finished and recorded.
    assert not db.fetch("SELECT id FROM deliveries WHERE leased_by = $1", worker_id)
    sent = receiver.sync().ok_ids()
    assert len(sent) < n, "everything was delivered before the stop; the test proves nothing"
    succeeded = {
        r[0]
        for r in db.fetch(
            "SELECT e.id FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.status = 'succeeded'"
        )
    }
    assert sent <= succeeded, f"{len(sent - succeeded)} sends were not recorded before the exit"

    restarted = time.monotonic()
    start_workers(procs, ["worker-b"], env)

    def done() -> bool:
        return accepted <= receiver.sync().ok_ids() and db.states() == {"succeeded": n}

    # Well before the lease: a row left leased by the stopped worker would hold things up for 120 s.
    wait_for(
        done,
        LEASE / 2,
        "the restarted worker to deliver the rest",
        lambda: f"missing={len(accepted - receiver.ok_ids())} states={db.states()}\n{procs.diag()}",
        interval=0.5,
    )
    rest_took = time.monotonic() - restarted
    line = report.write(
        "5 SIGTERM and restart (postgresql)",
        accepted,
        receiver,
        db=db,
        delivered_before_stop=len(sent),
        leased_at_sigterm=len(held),
        lease_s=LEASE,
        rest_delivered_after_restart_s=round(rest_took, 1),
    )
    assert line["lost"] == 0
    assert line["duplicated"] == 0
    assert db.leased_rows() == 0
