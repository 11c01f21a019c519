"""Retention (issue 13): what pruning a large history costs the deliveries flowing meanwhile.

PostgreSQL. The deployment's database gets ``retention_attempts`` old attempts (10,000,000 in the full
run), written with ``generate_series`` as the workers would have left them 31 to 60 days ago: an event
per 4 attempts (its payload the size of a real one), two finished deliveries per event, two attempts
per delivery (a 503, then a 200, with request headers and a response body). Then ``VACUUM ANALYZE``.

The deployment's own retention is set far out (``HOOKLINE_RETENTION=3650d``), so its worker's
housekeeping finds nothing to do; the harness runs ``hookline.store.retention.prune`` itself, in a
thread beside the deployment, as the worker's housekeeping calls it (one run after another, ``--older-than
30d``), paced by the workers' default ``HOOKLINE_RETENTION_SHARE``: that is the "with pruning" phase. The
"unpaced" phase runs it flat out (share 1, as ``hookline prune`` does). Phases alternate, without pruning,
with it, unpaced, ``repeats`` times each, each delivering ``fanout_events`` x 10 endpoints through the API;
the medians give the throughput ratios. The prune rate is rows removed per second (attempts deleted,
deliveries marked, payloads emptied) while the deliveries flow, and then alone; where the statements'
time went is noted by step; the longest single statement any prune transaction ran is the lock a delivery
could wait behind at worst.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench import pg
from bench.deploy import TENANT, Deployment
from bench.scenarios import Bench, deployed
from hookline.config import Settings
from hookline.store import retention
from hookline.store.engine import Store

ALONE_SECONDS = 20.0  # pruning with no deliveries, for its own rate (the smoke run: 2 s)
WORKER_SHARE: float = Settings.model_fields["retention_share"].default  # the workers' pacing
OLDER_THAN = timedelta(days=30)
RESPONSE = "x" * 120  # a receiver's short answer
HEADERS = (
    '{"content-type": "application/json", "user-agent": "hookline/0.1.0", "webhook-id": "evt_old",'
    ' "webhook-timestamp": "1735689600",'
    ' "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",'
    ' "X-Webhook-Signature": "sha256=0d5e3f1b2c4a69788f2e1c3b5a7d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f809"}'
)


def load_history(deploy: Deployment, attempts: int) -> float:
    """Write ``attempts`` old attempts (see the module docstring); returns the seconds it took."""
    url = deploy.database_url
    events = max(1, attempts // 4)
    endpoints = [e.id for e in deploy.endpoints["r"]]
    payload = (
        b'{"id":"evt_old","event":"message.sent","timestamp":"2026-01-01T00:00:00.000Z","data":'
        + b'{"message_id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA","status":"sent",'
        + b'"to":"16505551234","conversation":{"id":"CONVERSATION_ID","origin":{"type":"user_initiated"}},'
        + b'"pricing":{"billable":true,"pricing_model":"CBP","category":"user_initiated"}}}'
    )
    started = time.monotonic()
    # Spread over 30 days, oldest first, as ingest would have numbered them.
    pg.query(
        url,
        """INSERT INTO events (id, tenant_id, event_type, idempotency_key, channels, payload, delivery_count,
                               created_at)
           SELECT 'evt_old_' || g, $1, 'message.sent', NULL, NULL, $2, 2,
                  now() - interval '60 days' + (g * (2592000.0 / $3)) * interval '1 second'
           FROM generate_series(1, $3) AS g""",
        TENANT,
        payload,
        events,
    )
    pg.query(
        url,
        """INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, event_type, status, attempts,
                                   next_attempt_at, last_status_code, created_at, updated_at, completed_at)
           SELECT e.seq, ($1::bigint[])[1 + (e.seq + k) % cardinality($1::bigint[])], e.tenant_id,
                  e.event_type, 'succeeded', 2, e.created_at, 200, e.created_at,
                  e.created_at + interval '1 minute', e.created_at + interval '1 minute'
           FROM events AS e CROSS JOIN generate_series(1, 2) AS k
           WHERE e.id LIKE 'evt_old_%'""",
        endpoints,
    )
    pg.query(
        url,
        """INSERT INTO attempts (delivery_id, endpoint_id, attempt, started_at, duration_ms, status_code,
                                 response_body, error, request_headers)
           SELECT d.id, d.endpoint_id, k, d.created_at + (k - 1) * interval '30 seconds', 40 + k,
                  CASE k WHEN 1 THEN 503 ELSE 200 END, $1, NULL, $2::jsonb
           FROM deliveries AS d CROSS JOIN generate_series(1, 2) AS k
           WHERE d.completed_at < now() - interval '30 days'""",
        RESPONSE,
        HEADERS,
    )
    pg.query(url, "VACUUM ANALYZE events, deliveries, attempts")
    return time.monotonic() - started


@dataclass
class Pruner:
    """Retention runs one after another in a thread, until stopped (as the worker's housekeeping runs
    them), adding up what they removed."""

    url: str
    share: float = 1.0  # retention.prune's pacing
    totals: retention.Pruned = field(default_factory=retention.Pruned)
    seconds: float = 0.0  # spent in runs that removed something (not idling once all is done)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(600)

    async def _loop(self) -> None:
        store = Store.from_url(self.url)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                run = await retention.prune(
                    store,
                    datetime.now(UTC),
                    retention=OLDER_THAN,
                    summary_retention=timedelta(days=3650),
                    older_than=OLDER_THAN,
                    budget=1.0,  # comes back to the stop flag every second
                    share=self.share,
                )
                self.totals.add(run)
                if run.rows:
                    self.seconds += time.monotonic() - started
                elif run.complete:
                    await asyncio.sleep(0.2)  # all done: a run now and then, like the housekeeping
        finally:
            await store.close()


def _remaining(url: str) -> int:
    """Old attempts still there (the deliveries measured here add recent ones)."""
    return int(
        pg.query(url, "SELECT count(*) FROM attempts WHERE started_at < now() - interval '30 days'")[0][0]
    )


def retention_scenario(bench: Bench, backend: str) -> None:
    if backend != "postgresql":
        return
    sizes = bench.sizes
    env = {"HOOKLINE_RETENTION": "3650d", "HOOKLINE_SUMMARY_RETENTION": "3650d"}
    with deployed(bench, backend, "retention", env) as deploy:
        deploy.add_endpoints("r", 10, shared_channel=True)
        seconds = load_history(deploy, sizes.retention_attempts)
        url = deploy.database_url
        written = _remaining(url)
        bench.add(
            "retention",
            backend,
            f"history written: {written:,} old attempts",
            seconds,
            "s",
            note=f"generate_series: {max(1, sizes.retention_attempts // 4):,} events x 2 deliveries x 2 "
            "attempts, then VACUUM ANALYZE",
        )
        events = sizes.fanout_events
        pruners = {"paced": Pruner(url, WORKER_SHARE), "unpaced": Pruner(url)}
        rates: dict[str, list[float]] = {"without": [], "paced": [], "unpaced": []}
        for _ in range(sizes.repeats):
            for phase in ("without", "paced", "unpaced"):
                pruner = pruners.get(phase)
                if pruner is not None:
                    pruner.start()
                    time.sleep(1.0)  # pruning under way before the first event is posted
                try:
                    run = bench.pipeline_rate(deploy, "r", 1, events, events * 10)
                finally:
                    if pruner is not None:
                        pruner.stop()
                rates[phase].append(run["rate"])
        medians = {phase: statistics.median(values) for phase, values in rates.items()}
        labels = {
            "without": "without pruning",
            "paced": f"with paced pruning (share {WORKER_SHARE:g}, as the workers prune)",
            "unpaced": "with unpaced pruning (share 1, as hookline prune)",
        }
        for phase, value in medians.items():
            bench.add(
                "retention",
                backend,
                f"deliveries/s {labels[phase]}",
                value,
                "deliveries/s",
                note=f"{events:,}x10; median of {', '.join(f'{r:,.0f}' for r in rates[phase])}",
            )
        without = medians["without"]
        for phase, target in (("paced", 95), ("unpaced", None)):
            bench.add(
                "retention",
                backend,
                f"throughput {phase} pruning / without",
                medians[phase] / without * 100,
                "%",
                at_least=target,
                note=f"pruning costs {(1 - medians[phase] / without) * 100:.1f} % of delivery throughput",
            )
        for phase, pruner in pruners.items():
            flowing = pruner.totals
            rows = flowing.attempts + flowing.deliveries + flowing.payloads
            spent = sum(flowing.seconds.values()) or 1e-9
            steps = ", ".join(f"{step} {t / spent:.0%}" for step, t in sorted(flowing.seconds.items()))
            bench.add(
                "retention",
                backend,
                f"prune rate while deliveries flow, {phase}",
                rows / max(pruner.seconds, 1e-9),
                "rows/s",
                note=f"{flowing.attempts:,} attempts, {flowing.deliveries:,} deliveries, "
                f"{flowing.payloads:,} payloads in {pruner.seconds:.0f} s; statement time: {steps}",
            )
        alone = Pruner(url)
        alone.start()
        time.sleep(2.0 if bench.quick else ALONE_SECONDS)
        alone.stop()
        rows_alone = alone.totals.attempts + alone.totals.deliveries + alone.totals.payloads
        bench.add(
            "retention",
            backend,
            "prune rate alone",
            rows_alone / max(alone.seconds, 1e-9),
            "rows/s",
            note=f"{alone.totals.attempts / max(alone.seconds, 1e-9):,.0f} attempts/s; {_remaining(url):,} "
            f"attempts left of {written:,}",
        )
        runs = [*(p.totals for p in pruners.values()), alone.totals]
        bench.add(
            "retention",
            backend,
            "longest single prune statement",
            max(t.longest_statement for t in runs) * 1000,
            "ms",
            note=f"of {sum(t.statements for t in runs):,} statements, batches of "
            f"{retention.PRUNE_BATCH} events",
        )
