"""Chaos 2: the database goes away during ingest and delivery, then comes back.

The test runs its own throwaway PostgreSQL cluster (initdb in a temporary directory, a free port) and
stops it with ``pg_ctl stop -m fast`` for a while (CI: 5 s; long mode: 10 s) while events are being posted
one by one and a backlog is being delivered by two workers. Meanwhile:

* the API answers every request with 202 or with a 503 error envelope (``status: false, code: 503``),
  never a 500, never a hang, never a dropped connection;
* every event id that got a 202 is stored and delivered once the database is back; ids that got a 503
  are not owed (the report says how many of them were stored all the same);
* the workers survive, back off (their logs say so) and reconnect by themselves.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos.conftest import Cluster, migrate
from tests.chaos.procs import (
    EVENT_TYPE,
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
from tests.pg import pg_exec

ENDPOINTS = 4


@dataclass
class Poster:
    """Threads that post single events (with ids of their own) until told to stop, keeping every answer."""

    base_url: str
    auth: dict[str, str]
    threads: int = 2
    pause: float = 0.02
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # 503
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # anything but a 202 or an enveloped 503
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Poster:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, args=(n,), name=f"poster-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(60)

    def count(self, status: int) -> int:
        with self._lock:
            return self.statuses[status]

    def _run(self, thread: int) -> None:
        with httpx.Client(base_url=self.base_url, headers=self.auth, timeout=30) as client:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                event_id = f"evt_p{thread}_{n}"
                body: dict[str, Any] = {
                    "id": event_id,
                    "event": EVENT_TYPE,
                    "data": {"messageId": f"msg_{thread}_{n}", "from": "966501234567"},
                    "channels": [f"c{n % ENDPOINTS}"],
                }
                self._post(client, event_id, body)
                self._stop.wait(self.pause)

    def _post(self, client: httpx.Client, event_id: str, body: dict[str, Any]) -> None:
        try:
            response = client.post("/v1/events", json=body)
        except httpx.HTTPError as exc:
            with self._lock:
                self.problems.append(f"{event_id}: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 202:
                self.accepted.append(event_id)
                return
            try:
                envelope = response.json()
            except ValueError:
                envelope = None
            if (
                response.status_code == 503
                and isinstance(envelope, dict)
                and envelope.get("status") is False
                and envelope.get("code") == 503
                and envelope.get("error")
            ):
                self.refused.append(event_id)
                return
            self.problems.append(f"{event_id}: {response.status_code} {response.text[:300]}")


def test_database_down_during_ingest_and_delivery(
    own_cluster: Cluster, procs: Processes, report: Report, is_long: bool
) -> None:
    outage = 10.0 if is_long else 5.0
    backlog = 6_000 if is_long else 1_500
    pg_exec(own_cluster.server_url, 'CREATE DATABASE "hookline"')
    url = own_cluster.server_url.rsplit("/", 1)[0] + "/hookline"
    migrate(url)
    db = Db(url=url)

    receiver = start_receiver(procs, [{"prefix": "/", "delay": 0.1}])
    env = base_env(
        HOOKLINE_DATABASE_URL=url,
        HOOKLINE_DELIVERY_TIMEOUT="5s",
        HOOKLINE_LEASE="60s",  # longer than the outage: a row in flight is not sent twice meanwhile
        HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT="4",
    )
    api, base_url = start_api(procs, "api", env)
    workers = start_workers(procs, ["worker-1", "worker-2"], env)
    tenant = new_tenant(base_url)
    tenant.webhooks([{"url": receiver.url(f"/db/{i}"), "channels": [f"c{i}"]} for i in range(ENDPOINTS)])
    preloaded = tenant.post_batches([event_body(i, f"c{i % ENDPOINTS}") for i in range(backlog)])

    poster = Poster(base_url, tenant.auth).start()
    try:
        wait_for(
            lambda: len(receiver.sync().ok_ids()) >= 200 and poster.count(202) >= 50,
            120,
            "delivery and ingest under way",
            procs.diag,
        )
        before_outage = poster.count(202)
        delivered_at_stop = len(receiver.sync().ok_ids())
        own_cluster.stop()
        stopped_at = time.monotonic()
        wait_for(lambda: poster.count(503) >= 5, 60, "the API to answer 503", procs.diag)
        # The outage itself: a fault held for a while, not an assertion.
        time.sleep(max(0.0, outage - (time.monotonic() - stopped_at)))
        down_for = time.monotonic() - stopped_at
        refused_during = poster.count(503)
        delivered_during = len(receiver.sync().ok_ids()) - delivered_at_stop
        own_cluster.start()
        restarted_at = time.monotonic()
        accepted_at_restart = poster.count(202)
        wait_for(
            lambda: poster.count(202) >= accepted_at_restart + 50,
            120,
            "the API to accept events again",
            lambda: f"statuses={poster.statuses}\n{procs.diag()}",
        )
        back_after = time.monotonic() - restarted_at
    finally:
        poster.stop()

    assert not poster.problems, poster.problems[:10]
    assert set(poster.statuses) <= {202, 503}, poster.statuses
    accepted = set(preloaded) | set(poster.accepted)
    assert len(accepted) == len(preloaded) + len(poster.accepted)

    def done() -> bool:
        return accepted <= receiver.sync().ok_ids() and db.states() == {"succeeded": len(accepted)}

    wait_for(
        done,
        300,
        "every accepted event to be delivered",
        lambda: f"missing={len(accepted - receiver.ok_ids())} states={db.states()}\n{procs.diag()}",
        interval=0.5,
    )
    assert api.alive() and all(w.alive() for w in workers), procs.diag()
    stored = {r[0] for r in db.fetch("SELECT id FROM events")}
    assert accepted <= stored
    backoffs = sum(
        1
        for w in workers
        for entry in w.log_events()
        if entry.get("event") in ("claim failed; retrying", "recording results failed; retrying")
    )
    assert backoffs > 0, "the workers never noticed the outage"

    line = report.write(
        "2 database down (own cluster)",
        accepted,
        receiver,
        db=db,
        outage_s=round(down_for, 1),
        api_202=poster.count(202),
        api_503=poster.count(503),
        accepted_before_outage=before_outage,
        refused_during_outage=refused_during,
        stored_despite_503=len(set(poster.refused) & stored),
        delivered_during_outage=delivered_during,
        api_back_after_s=round(back_after, 1),
        worker_backoff_logs=backoffs,
        preloaded=len(preloaded),
    )
    assert line["lost"] == 0
