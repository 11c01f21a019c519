"""Chaos 7 (long mode only): the soak. One hour at 200 events/s through a `hookline api` and a
`hookline worker` on PostgreSQL, sampling every minute the processes' memory (VmRSS) and the delivery
latency (receiver arrival minus the moment the event was posted, carried in the event as ``sent_at``).

Flat means: the last quarter's average of each series is within 20% of the first quarter's. Every event
is delivered, none twice.

    HOOKLINE_CHAOS_LONG=1 pytest tests/chaos/test_soak.py -s
    # shorter or slower, e.g. to try the test itself:
    HOOKLINE_CHAOS_LONG=1 HOOKLINE_CHAOS_SOAK_SECONDS=240 HOOKLINE_CHAOS_SOAK_SAMPLE=20 pytest ...
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any

import httpx
import pytest

from tests.chaos.conftest import Cluster, migrate
from tests.chaos.procs import (
    EVENT_TYPE,
    Db,
    Processes,
    Report,
    base_env,
    new_tenant,
    ok,
    start_api,
    start_receiver,
    start_workers,
    wait_for,
)
from tests.pg import pg_exec

DURATION = float(os.environ.get("HOOKLINE_CHAOS_SOAK_SECONDS", "3600"))
RATE = int(os.environ.get("HOOKLINE_CHAOS_SOAK_RATE", "200"))
SAMPLE = float(os.environ.get("HOOKLINE_CHAOS_SOAK_SAMPLE", "60"))
TICK = 0.1  # a batch of RATE * TICK events every TICK seconds
ENDPOINTS = 10
FLAT = 0.20


class PacedPoster(threading.Thread):
    """Posts RATE events a second in small batches, on a fixed timetable (no drift), until stopped."""

    def __init__(self, base_url: str, auth: dict[str, str]) -> None:
        super().__init__(name="soak-poster", daemon=True)
        self.client = httpx.Client(base_url=base_url, headers=auth, timeout=30)
        self.stop_event = threading.Event()
        self.accepted: list[str] = []
        self.errors: list[str] = []
        self.late_ticks = 0

    def run(self) -> None:
        per_tick = max(1, round(RATE * TICK))
        start = time.monotonic()
        n = 0
        try:
            for tick in range(10**9):
                if self.stop_event.is_set():
                    return
                now = time.time()
                events: list[dict[str, Any]] = [
                    {
                        "event": EVENT_TYPE,
                        "data": {"messageId": f"msg_{n + k}", "from": "966501234567", "sent_at": now},
                        "channels": [f"c{(n + k) % ENDPOINTS}"],
                    }
                    for k in range(per_tick)
                ]
                n += per_tick
                try:
                    data = ok(self.client.post("/v1/events/batch", json={"events": events}), 202)
                    self.accepted.extend(item["id"] for item in data["items"])
                except (AssertionError, httpx.HTTPError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                pause = start + (tick + 1) * TICK - time.monotonic()
                if pause > 0:
                    self.stop_event.wait(pause)
                else:
                    self.late_ticks += 1
        finally:
            self.client.close()


def quarter_ratio(series: list[float]) -> float:
    quarter = max(1, len(series) // 4)
    first, last = statistics.fmean(series[:quarter]), statistics.fmean(series[-quarter:])
    return last / first if first else float("inf")


@pytest.mark.chaos_long
@pytest.mark.timeout(DURATION + 1200)
def test_soak_memory_and_latency_stay_flat(own_cluster: Cluster, procs: Processes, report: Report) -> None:
    # A cluster of its own, with PostgreSQL's default settings: the shared test server runs without
    # autovacuum, and an hour of queue updates without vacuum measures the missing vacuum, not hookline.
    pg_exec(own_cluster.server_url, 'CREATE DATABASE "hookline"')
    pg_url = own_cluster.server_url.rsplit("/", 1)[0] + "/hookline"
    migrate(pg_url)
    receiver = start_receiver(procs, [{"prefix": "/", "delay": 0.0}])
    env = base_env(HOOKLINE_DATABASE_URL=pg_url, HOOKLINE_LOG_LEVEL="warning")
    api, base_url = start_api(procs, "api", env)
    (worker,) = start_workers(procs, ["worker"], {**env, "HOOKLINE_LOG_LEVEL": "info"})
    tenant = new_tenant(base_url)
    tenant.webhooks([{"url": receiver.url(f"/soak/{i}"), "channels": [f"c{i}"]} for i in range(ENDPOINTS)])

    samples: list[dict[str, float]] = []
    poster = PacedPoster(base_url, tenant.auth)
    started = time.monotonic()
    poster.start()
    try:
        while time.monotonic() - started < DURATION:
            window_start = len(receiver.entries)
            time.sleep(min(SAMPLE, max(0.0, DURATION - (time.monotonic() - started))))
            receiver.sync()
            latencies = [e[4] for e in receiver.entries[window_start:] if e[4] is not None]
            assert api.alive() and worker.alive(), procs.diag()
            samples.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "worker_rss_mb": round(worker.rss() / 2**20, 1),
                    "api_rss_mb": round(api.rss() / 2**20, 1),
                    "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0.0,
                    "latency_p95_ms": round(statistics.quantiles(latencies, n=20)[-1] * 1000, 1)
                    if len(latencies) > 20
                    else 0.0,
                    "delivered": len(latencies),
                    "accepted_total": len(poster.accepted),
                }
            )
            print(f"soak sample {samples[-1]}", flush=True)
    finally:
        poster.stop_event.set()
        poster.join(60)

    assert not poster.errors, poster.errors[:5]
    accepted = set(poster.accepted)
    db = Db(url=pg_url)

    def done() -> bool:
        return accepted <= receiver.sync().ok_ids() and db.states() == {"succeeded": len(accepted)}

    wait_for(done, 600, "the soak's events to be delivered", procs.diag, interval=2.0)
    ratios = {
        name: round(quarter_ratio([s[name] for s in samples]), 3)
        for name in ("worker_rss_mb", "api_rss_mb", "latency_p50_ms")
    }
    line = report.write(
        "7 soak",
        accepted,
        receiver,
        db=db,
        duration_s=DURATION,
        rate_per_s=RATE,
        achieved_rate_per_s=round(len(accepted) / DURATION, 1),
        late_ticks=poster.late_ticks,
        last_quarter_over_first=ratios,
        samples=samples,
    )
    assert line["lost"] == 0
    assert line["duplicated"] == 0
    for name, ratio in ratios.items():
        assert abs(ratio - 1) <= FLAT, f"{name}: last quarter / first quarter = {ratio} ({samples})"
