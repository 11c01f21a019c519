"""Chaos 3: a flapping receiver. Half of all requests answer 500 at random and some hang past the delivery
timeout; with a compressed retry schedule every event is still delivered, no retry comes before the
schedule allows it, and the attempt log (GET /v1/deliveries/{id}) records every request the receiver saw:
as many attempts as requests, a 500 for each 500, a timeout for each hung request, one 200.

CI: 300 events over 10 endpoints; long mode: 2,000.
"""

from __future__ import annotations

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from tests.chaos.procs import (
    Db,
    Processes,
    Report,
    base_env,
    event_body,
    new_tenant,
    ok,
    start_api,
    start_receiver,
    start_workers,
    wait_for,
)

ENDPOINTS = 10
# 30 retries: with 60% of requests failing or hanging, an event fails all 31 attempts with p ~ 1e-7.
SCHEDULE = [0.1, 0.2, 0.3, 0.4, 0.5] + [0.5] * 25
FAIL, HANG = 0.5, 0.1
TIMEOUT = 1.0


def seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_flapping_receiver_every_event_delivered_every_attempt_recorded(
    pg_url: str, procs: Processes, report: Report, is_long: bool
) -> None:
    n = 2_000 if is_long else 300
    rules = [{"prefix": "/", "fail": FAIL, "hang": HANG, "hang_seconds": TIMEOUT * 2}]
    receiver = start_receiver(procs, rules, seed=20240605)
    env = base_env(
        HOOKLINE_DATABASE_URL=pg_url,
        HOOKLINE_RETRY_SCHEDULE=",".join(f"{int(w * 1000)}ms" for w in SCHEDULE),
        HOOKLINE_DELIVERY_TIMEOUT=f"{TIMEOUT:g}s",
        HOOKLINE_LEASE="30s",
        # A receiver failing 60 % of requests would rightly open its circuit breaker and hold the
        # deliveries for minutes; this test is about retries and the attempt log, so the breaker stays
        # out of its way (tests/test_endpoint_health.py tests the breaker).
        HOOKLINE_BREAKER_CONSECUTIVE_FAILURES="10000",
        HOOKLINE_BREAKER_FAILURE_RATE="1.0",
    )
    _, base_url = start_api(procs, "api", env)
    start_workers(procs, ["worker"], env)
    tenant = new_tenant(base_url)
    hooks = tenant.webhooks(
        [{"url": receiver.url(f"/flap/{i}"), "channels": [f"c{i}"]} for i in range(ENDPOINTS)]
    )
    accepted = set(tenant.post_batches([event_body(i, f"c{i % ENDPOINTS}") for i in range(n)], size=100))
    db = Db(url=pg_url)

    def done() -> bool:
        return accepted <= receiver.sync().ok_ids() and db.states() == {"succeeded": n}

    wait_for(
        done,
        240,
        f"all {n} events through the flapping receiver",
        lambda: f"missing={len(accepted - receiver.ok_ids())} states={db.states()}\n{procs.diag()}",
        interval=0.5,
    )
    receiver.sync()

    with tenant.client() as client:
        delivery_ids: list[int] = []
        for hook in hooks:
            params: dict[str, Any] = {"limit": 250}
            while True:
                page = ok(client.get(f"/v1/webhooks/{hook['id']}/deliveries", params=params))
                delivery_ids.extend(d["id"] for d in page["items"])
                if not page["next_cursor"]:
                    break
                params["cursor"] = page["next_cursor"]
        assert len(delivery_ids) == n
        with ThreadPoolExecutor(4) as pool:
            views = list(pool.map(lambda i: ok(client.get(f"/v1/deliveries/{i}")), delivery_ids))

    tally: Counter[str] = Counter()
    for view in views:
        event_id, log = view["event_id"], view["attempt_log"]
        seen = receiver.by_id[event_id]
        assert view["status"] == "succeeded", view
        assert view["attempts"] == len(log), view
        # One recorded attempt per request the receiver saw, and of the same kind.
        assert len(log) == sum(seen.values()), (event_id, seen, log)
        kinds = Counter(
            "ok"
            if a["status_code"] == 200
            else "fail"
            if a["status_code"] == 500
            else "hang"
            if (a["error"] or "").startswith("timed out")
            else f"other: {a['status_code']} {a['error']}"
            for a in log
        )
        assert kinds == Counter({k: v for k, v in seen.items() if v}), (event_id, seen, log)
        assert [a["attempt"] for a in log] == list(range(1, len(log) + 1))
        assert len(log) <= len(SCHEDULE) + 1
        assert log[-1]["status_code"] == 200
        # No retry earlier than the schedule allows: attempt k+1 starts at least SCHEDULE[k-1] after
        # attempt k ended (the worker schedules from the moment it recorded the result).
        for before, after in itertools.pairwise(log):
            ended = seconds(before["started_at"]) + before["duration_ms"] / 1000
            wait = SCHEDULE[before["attempt"] - 1]
            assert seconds(after["started_at"]) >= ended + wait - 0.005, (event_id, before, after)
        tally.update(kinds)

    line = report.write(
        "3 receiver flapping",
        accepted,
        receiver,
        db=db,
        endpoints=ENDPOINTS,
        attempts=sum(tally.values()),
        answered_500=tally["fail"],
        hung_recorded_as_timeout=tally["hang"],
        max_attempts=max(len(v["attempt_log"]) for v in views),
    )
    assert line["lost"] == 0
    assert line["duplicated"] == 0
    assert tally["hang"] > 0 and tally["fail"] > 0
