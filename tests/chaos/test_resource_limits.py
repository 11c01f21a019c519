"""Chaos 6: receivers that abuse the worker's resources.

* an endpoint that streams an endless response body (the worker reads at most its body limit);
* an endpoint that trickles one byte per second (the attempt deadline covers the body too);
* many slow endpoints at once, the receiver holding each request 2 s (CI: 1,000 endpoints; long mode:
  10,000), the worker allowed to have all of them in flight at once;
* and one healthy endpoint, posted to while all that is going on, in another tenant.

The worker's peak memory (VmHWM from /proc/<pid>/status) stays under 250 MB, the healthy endpoint's events
all arrive while the slow ones are still being held, and every event is delivered in the end.
"""

from __future__ import annotations

import time

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

MEMORY_LIMIT = 250 * 1024 * 1024
HOLD = 2.0
PER_SLOW_ENDPOINT = 3
ABUSIVE = 5  # events each to the endless and the trickling endpoint
TENANT_SIZE = 500


def test_endless_trickling_and_slow_endpoints_do_not_exhaust_the_worker(
    pg_url: str, procs: Processes, report: Report, is_long: bool
) -> None:
    slow = 10_000 if is_long else 1_000
    healthy_events = 500 if is_long else 100
    rules = [
        {"prefix": "/slow/", "delay": HOLD},
        {"prefix": "/endless", "endless": True, "max_seconds": 60},
        {"prefix": "/trickle", "trickle": 1.0, "max_seconds": 60},
    ]
    receiver = start_receiver(procs, rules)
    env = base_env(
        HOOKLINE_DATABASE_URL=pg_url,
        HOOKLINE_WORKER_CONCURRENCY=str(slow + 200),
        HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT="1",
        HOOKLINE_DELIVERY_TIMEOUT="10s",
        HOOKLINE_LEASE="60s",
        HOOKLINE_RETRY_SCHEDULE="1s,1s,2s,2s,5s",
    )
    t0 = time.monotonic()
    _, base_url = start_api(procs, "api", env)
    abusive = new_tenant(base_url)
    abusive.webhooks(
        [
            {"url": receiver.url("/endless"), "channels": ["endless"], "max_in_flight": ABUSIVE},
            {
                "url": receiver.url("/trickle"),
                "channels": ["trickle"],
                "max_in_flight": ABUSIVE,
                "timeout_seconds": 3,
            },
        ]
    )
    # The slow endpoints in tenants of TENANT_SIZE: ingest matches each event against every endpoint of
    # its tenant, and 10,000 endpoints in one tenant would make posting the slow part of this test.
    slow_tenants = [new_tenant(base_url) for _ in range(0, slow, TENANT_SIZE)]
    for t, tenant in enumerate(slow_tenants):
        first = t * TENANT_SIZE
        tenant.webhooks(
            [
                {"url": receiver.url(f"/slow/{i}"), "channels": [f"s{i}"]}
                for i in range(first, min(first + TENANT_SIZE, slow))
            ],
            threads=4,
        )
    healthy = new_tenant(base_url)
    healthy.webhook(receiver.url("/healthy/0"), max_in_flight=10)
    print(f"\n{time.monotonic() - t0:.1f}s endpoints created")

    # Everything is queued before the worker starts, so that it can take on every slow endpoint at once.
    bodies = [event_body(i, "endless") for i in range(ABUSIVE)]
    bodies += [event_body(i, "trickle") for i in range(ABUSIVE)]
    accepted = set(abusive.post_batches(bodies))
    for _round in range(PER_SLOW_ENDPOINT):
        for t, tenant in enumerate(slow_tenants):
            first = t * TENANT_SIZE
            chunk = [event_body(i, f"s{i}") for i in range(first, min(first + TENANT_SIZE, slow))]
            accepted |= set(tenant.post_batches(chunk, size=TENANT_SIZE, threads=1))
    assert len(accepted) == 2 * ABUSIVE + slow * PER_SLOW_ENDPOINT
    print(f"{time.monotonic() - t0:.1f}s events posted")
    (worker,) = start_workers(procs, ["worker"], env)

    # Once (nearly) every slow endpoint is being held, or each has been reached and some still are,
    # the healthy tenant posts its events. (1,000 at once is no trouble; at 10,000 the worker's first
    # requests come back before it has opened the last connections, and a few thousand is the most.)
    def slow_busy() -> bool:
        in_flight = receiver.sync().inflight.get("slow", 0)
        reached = len({e[1] for e in receiver.entries if e[1].startswith("/slow/")})
        return in_flight >= slow * 0.9 or (reached >= slow and in_flight > 0)

    wait_for(
        slow_busy,
        180,
        f"{slow} slow endpoints in flight",
        lambda: f"in flight: {receiver.inflight}\n{procs.diag()}",
    )
    print(f"{time.monotonic() - t0:.1f}s slow in flight")
    healthy_posted = time.time()
    healthy_ids = set(healthy.post_batches([event_body(i) for i in range(healthy_events)], size=100))
    wait_for(
        lambda: healthy_ids <= receiver.sync().ok_ids(),
        120,
        "the healthy endpoint's events",
        lambda: (
            f"missing={len(healthy_ids - receiver.ok_ids())} in flight: {receiver.inflight}\n{procs.diag()}"
        ),
    )
    accepted |= healthy_ids
    print(f"{time.monotonic() - t0:.1f}s healthy delivered")
    db = Db(url=pg_url)

    def done() -> bool:
        return accepted <= receiver.sync().ok_ids() and db.states() == {"succeeded": len(accepted)}

    wait_for(
        done,
        300,
        "every event delivered",
        lambda: f"missing={len(accepted - receiver.ok_ids())} states={db.states()}\n{procs.diag()}",
        interval=0.5,
    )
    print(f"{time.monotonic() - t0:.1f}s all delivered")
    peak = worker.peak_rss()
    assert worker.alive() and peak > 0, procs.diag()

    # Each healthy event arrived while slow requests were being held (more requests in flight elsewhere
    # than the endless and trickling endpoints alone can account for).
    healthy_arrivals = [e for e in receiver.entries if e[1].startswith("/healthy/")]
    assert len(healthy_arrivals) == len(healthy_ids)
    idle = [e for e in healthy_arrivals if e[5] <= 2 * ABUSIVE]
    assert not idle, f"{len(idle)} healthy events arrived when the slow endpoints were not busy"
    streamed = [e for e in receiver.entries if e[1] in ("/endless", "/trickle")]
    assert len(streamed) >= 2 * ABUSIVE
    # A 200 status followed by an endless body: read up to the body limit, then the connection closed.
    # A 200 followed by a trickle: the deadline ends the attempt; the 200 counts, the timeout is recorded.
    kinds = db.fetch(
        "SELECT substr(e.url, length(e.url) - 6), a.status_code, a.error IS NOT NULL, count(*)"
        " FROM attempts a JOIN endpoints e ON e.id = a.endpoint_id"
        " WHERE e.url LIKE '%/endless' OR e.url LIKE '%/trickle' GROUP BY 1, 2, 3"
    )
    assert sorted(kinds) == [("endless", 200, False, ABUSIVE), ("trickle", 200, True, ABUSIVE)], kinds

    line = report.write(
        "6 resource limits (endless, trickle, slow endpoints)",
        accepted,
        receiver,
        db=db,
        slow_endpoints=slow,
        slow_held_s=HOLD,
        max_slow_in_flight=receiver.max_group_inflight.get("slow", 0),
        max_busy_at_healthy_arrival=max(e[5] for e in healthy_arrivals),
        min_busy_at_healthy_arrival=min(e[5] for e in healthy_arrivals),
        healthy_events=len(healthy_ids),
        healthy_all_arrived_after_s=round(max(e[2] for e in healthy_arrivals) - healthy_posted, 1),
        worker_peak_rss_mb=round(peak / 2**20, 1),
        memory_limit_mb=MEMORY_LIMIT // 2**20,
    )
    assert line["lost"] == 0
    assert peak < MEMORY_LIMIT, f"worker peak RSS {peak / 2**20:.0f} MB"
