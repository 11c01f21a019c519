"""Scale-out (issue 16): 1, 2 and 4 ``hookline worker`` processes on one PostgreSQL, then 1 and 2 API
processes (``HOOKLINE_API_WORKERS``), each figure from its own deployment in the same run.

Two shapes per worker count: the fan-out (10,000 events x 10 endpoints on one channel, as in
``throughput``) and many endpoints (the single shape's events spread over 100 endpoints, one each). An
endpoint's deliveries are leased to one worker at a time (that is how its ``max_in_flight`` holds across
workers), so ten busy endpoints spread over workers only as their leases turn over, while a hundred spread
at once. The API figure: single events (one per request, 32 clients) with two workers delivering them.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.scenarios import Bench, deployed

WORKERS = (1, 2, 4)
MANY = 100  # endpoints of the many-endpoints shape


def _shape(bench: Bench, deploy: Any, prefix: str, channels: int, events: int, fan: int) -> dict[str, Any]:
    runs = [bench.pipeline_rate(deploy, prefix, channels, events, events * fan) for _ in range(2)]
    best = max(runs, key=lambda r: r["rate"])  # two runs, the better one: the first may still warm a worker
    best["rates"] = [r["rate"] for r in runs]
    return best


def scaleout(bench: Bench, backend: str) -> None:
    if backend != "postgresql":
        return
    sizes = bench.sizes
    many_events = max(sizes.single_events // 2, MANY)
    base: dict[str, float] = {}
    for workers in WORKERS:
        with deployed(bench, backend, f"scale{workers}", workers=workers) as deploy:
            deploy.add_endpoints("f", 10, shared_channel=True)
            deploy.add_endpoints("m", MANY)
            # Unmeasured first: every worker's connections to the sink open.
            bench.pipeline_rate(deploy, "m", MANY, MANY * 10, MANY * 10)
            for key, label, prefix, channels, events, fan in (
                ("fanout", f"{sizes.fanout_events:,}x10", "f", 1, sizes.fanout_events, 10),
                ("many", f"{many_events:,} over {MANY} endpoints", "m", MANY, many_events, 1),
            ):
                run = _shape(bench, deploy, prefix, channels, events, fan)
                base.setdefault(key, run["rate"])
                database = "n/a" if run["pg_cpu_ms"] is None else f"{run['pg_cpu_ms']:.3f}"
                note = (
                    f"{run['rate'] / base[key]:.2f}x one worker; hookline {run['cpu_ms']:.3f} + PostgreSQL "
                    f"{database} CPU ms per delivery; runs: " + ", ".join(f"{r:,.0f}" for r in run["rates"])
                )
                bench.add(
                    "scaleout",
                    backend,
                    f"{workers} worker{'s' if workers > 1 else ''}, {label}: deliveries/s",
                    run["rate"],
                    "deliveries/s",
                    note=note,
                )
    for api_workers in (1, 2):
        env = {"HOOKLINE_API_WORKERS": str(api_workers)}
        with deployed(bench, backend, f"scaleapi{api_workers}", env=env, workers=2) as deploy:
            deploy.add_endpoints("m", MANY)
            rates = []
            for _ in range(2):
                bench.sink.reset()
                cpu_before = deploy.cpu_seconds()
                load = bench.loadgen(
                    deploy, "m", MANY, "count", "--events", str(sizes.ingest_single), batch=1, concurrency=32
                )
                result, _ = bench.loadgen_result(load)
                rates.append(result["accepted"] / max(result["last_202"] - result["first_post"], 1e-9))
            cpu = (deploy.cpu_seconds() - cpu_before) / max(sizes.ingest_single, 1) * 1000
            bench.add(
                "scaleout",
                backend,
                f"{api_workers} API process{'es' if api_workers > 1 else ''}: single events/s (32 clients)",
                statistics.median(rates),
                "events/s",
                note=f"2 workers delivering meanwhile; hookline CPU {cpu:.2f} ms per event (last run); runs: "
                + ", ".join(f"{r:,.0f}" for r in rates),
            )
