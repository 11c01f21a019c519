"""Chaos 4: many processes on one PostgreSQL. Two `hookline api` and three `hookline worker` processes,
events spread over 100 endpoints and posted through both APIs while the workers deliver:

* every event is delivered, and exactly once (nothing crashed, so there is no excuse for a duplicate);
* the per-endpoint concurrency cap holds across all the workers together (HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT
  = k is derived from the leases in the store, not counted per process): the receiver counts requests in
  flight per endpoint and the highest count must stay <= k, with 3 workers.

CI: 3,000 events; long mode: 20,000.
"""

from __future__ import annotations

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

ENDPOINTS = 100
CAP = 2
WORKERS = 3


def test_two_apis_three_workers_hundred_endpoints(
    pg_url: str, procs: Processes, report: Report, is_long: bool
) -> None:
    n = 20_000 if is_long else 3_000
    receiver = start_receiver(procs, [{"prefix": "/", "delay": 0.02}])
    env = base_env(HOOKLINE_DATABASE_URL=pg_url, HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT=str(CAP))
    api_1, url_1 = start_api(procs, "api-1", env)
    api_2, url_2 = start_api(procs, "api-2", env)
    workers = start_workers(procs, [f"worker-{i}" for i in range(WORKERS)], env)
    assert len({w.worker_id() for w in workers}) == WORKERS
    tenant = new_tenant(url_1)
    tenant.webhooks(
        [{"url": receiver.url(f"/ep/{i}"), "channels": [f"c{i}"]} for i in range(ENDPOINTS)], threads=4
    )
    bodies = [event_body(i, f"c{i % ENDPOINTS}") for i in range(n)]
    accepted = set(tenant.post_batches(bodies, size=100, base_urls=[url_1, url_2], threads=4))
    assert len(accepted) == n
    db = Db(url=pg_url)

    def done() -> bool:
        return accepted <= receiver.sync().ok_ids() and db.states() == {"succeeded": n}

    wait_for(
        done,
        300,
        f"all {n} events delivered",
        lambda: f"missing={len(accepted - receiver.ok_ids())} states={db.states()}\n{procs.diag()}",
        interval=0.5,
    )
    processes = [api_1, api_2, *workers]
    assert all(p.alive() for p in processes), procs.diag()
    receiver.sync()

    # Exactly once: one request per event (no crash, so no duplicate), one attempt per delivery.
    requests = {event_id: sum(c.values()) for event_id, c in receiver.by_id.items()}
    assert set(requests) == accepted
    assert max(requests.values()) == 1, sorted(requests.items(), key=lambda kv: -kv[1])[:5]
    assert db.fetch("SELECT max(attempts), min(attempts) FROM deliveries") == [(1, 1)]
    peak = max(receiver.max_inflight.values())
    assert len(receiver.max_inflight) == ENDPOINTS
    assert peak <= CAP, receiver.max_inflight

    line = report.write(
        "4 many processes (2 api, 3 workers, postgresql)",
        accepted,
        receiver,
        db=db,
        endpoints=ENDPOINTS,
        cap=CAP,
        max_in_flight_seen=peak,
        endpoints_at_the_cap=sum(1 for v in receiver.max_inflight.values() if v == CAP),
        workers=WORKERS,
        apis=2,
    )
    assert line["lost"] == 0
    assert line["duplicated"] == 0
