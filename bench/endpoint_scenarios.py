"""Scenarios of the per-endpoint dispatcher: fairness between tenants, the circuit breaker, the rate limit.

Each builds its backlog straight in the database (``bench.backlog_sql``: pending deliveries due now, then
the endpoints' wakes), so what is measured is the dispatcher, not the ingest API. Per-endpoint figures
come from the sink's per-path arrival times (``Sink.counts`` / ``Sink.arrivals``).

* fairness: tenant A has a backlog (over 20 endpoints, then all on one) while tenant B posts
  ``fairness_rate`` events/s to its own endpoint; B's p99 (202 to receipt) against B alone, and how fast
  A drains meanwhile.
* breaker: a backlog over 50 healthy endpoints and one answering 500, against the same over 51 healthy
  ones: the healthy throughput, and how many requests the failing endpoint got (the trip, then only the
  probes the cool-down schedule allows).
* ratelimit (PostgreSQL: two worker processes): endpoints limited to 5 and 1000 requests/s, each with a
  backlog larger than the window allows; the rate the sink saw.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from bench import backlog_sql
from bench.deploy import TENANT, Deployment
from bench.procs import wait_until
from bench.scenarios import Bench, deployed, percentile

NOISY_TENANT = "noisy"  # tenant A of the fairness scenario; tenant B is the deployment's own (TENANT)
RAMP = 1.0  # seconds after the first arrival left out of rate windows


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _first_arrival(bench: Bench, deploy: Deployment, paths: list[str], timeout: float = 60) -> float:
    """Unix time of the first request to any of ``paths`` since the last sink reset."""
    wait_until(
        lambda: any(bench.sink.paths().get(p, 0) for p in paths),
        timeout,
        "the first delivery of the backlog",
        deploy.sending_procs(),
    )
    return min(times[0] for p in paths if (times := bench.sink.arrivals(p)))


def _worker_cpu(deploy: Deployment) -> dict[str, float]:
    return {role: p.cpu_seconds() for role, p in deploy.hookline_procs().items() if role != "api"}


# --- fairness ---------------------------------------------------------------------------------------------


def fairness(bench: Bench, backend: str) -> None:
    sizes = bench.sizes
    rows = sizes.fairness_rows if backend == "postgresql" else sizes.fairness_rows_sqlite
    with deployed(bench, backend, "fairness") as deploy:
        deploy.add_tenant(NOISY_TENANT)
        deploy.add_endpoints("a", 20, tenant=NOISY_TENANT)
        deploy.add_endpoints("m", 1, tenant=NOISY_TENANT)
        deploy.add_endpoints("q", 1)  # tenant B's
        backlog_sql.seed_event(deploy, NOISY_TENANT, "a0")
        bench.sink.reset()
        quiet = _tenant_b(bench, deploy, [])
        bench.add(
            "fairness",
            backend,
            f"B alone, {sizes.fairness_rate}/s: p99",
            quiet["p99"],
            "ms",
            note=f"p50 {quiet['p50']:.1f} ms; {quiet['note']}",
        )
        for label, prefix in (("20 endpoints", "a"), ("1 endpoint", "m")):
            ids = [e.id for e in deploy.endpoints[prefix]]
            a_paths = [deploy.sink_path(prefix, i) for i in range(len(ids))]
            seconds = backlog_sql.queue_due(deploy, NOISY_TENANT, ids, rows)
            bench.add(
                "fairness",
                backend,
                f"A: {rows:,} due on {label}: inserted in",
                seconds,
                "s",
                note="one INSERT ... SELECT" + (", then ANALYZE" if backend == "postgresql" else ""),
            )
            bench.sink.reset()
            backlog_sql.wake(deploy, ids)
            run = _tenant_b(bench, deploy, a_paths)
            left = backlog_sql.delete_pending(deploy, ids)
            lasted = left > 0
            bench.add(
                "fairness",
                backend,
                f"A on {label}: drained/s beside B",
                run["a_rate"],
                "deliveries/s",
                note=f"{run['a_delivered']:,} in {run['window']:.1f} s; {left:,} still pending, then deleted"
                + ("" if lasted else " (the backlog ran out: the phase measured less than a backlog)"),
            )
            bench.add("fairness", backend, f"B beside A on {label}: p99", run["p99"], "ms", note=run["note"])
            bench.add(
                "fairness",
                backend,
                f"B p99: A on {label} / B alone",
                run["p99"] / quiet["p99"],
                "x",
                at_most=2,
                note=f"p50 {run['p50']:.1f} ms vs {quiet['p50']:.1f} ms",
                holds=lasted and run["complete"],
            )
            time.sleep(1)  # what A had in flight lands before the next phase


def _tenant_b(bench: Bench, deploy: Deployment, a_paths: list[str]) -> dict[str, Any]:
    """Tenant B posts ``fairness_rate`` events/s (one per request) to its endpoint ``q0``; its latencies
    (202 to first receipt) once every accepted event arrived, and what reached ``a_paths`` meanwhile."""
    sizes = bench.sizes
    b_path = deploy.sink_path("q", 0)
    started = time.time()
    load = bench.loadgen(
        deploy,
        "q",
        1,
        "rate",
        "--rate",
        str(sizes.fairness_rate),
        "--duration",
        str(sizes.fairness_seconds),
        concurrency=64,
        record=True,
    )
    result, _ = bench.loadgen_result(load, timeout=sizes.fairness_seconds + 300)
    ended = time.time()
    counts = bench.sink.counts(started, ended)
    a_delivered = sum(counts.get(p, 0) for p in a_paths)
    accepted = result["accepted"]
    complete = True
    try:
        wait_until(
            lambda: bench.sink.paths().get(b_path, 0) >= accepted,
            120,
            "tenant B's deliveries",
            deploy.sending_procs(),
        )
    except RuntimeError:
        complete = False
    arrivals = bench.sink.times()
    sent: dict[str, float] = result["times"]
    latencies = [arrivals[i] - t for i, t in sent.items() if i in arrivals]
    achieved = accepted / max(result["last_202"] - result["first_post"], 1e-9)
    note = f"{len(latencies):,}/{accepted:,} delivered; API answered {achieved:,.0f} events/s"
    return {
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "a_delivered": a_delivered,
        "a_rate": a_delivered / max(ended - started, 1e-9),
        "window": ended - started,
        "complete": complete and len(latencies) >= accepted,
        "note": note,
    }


# --- breaker ----------------------------------------------------------------------------------------------


def probe_slots(window: float, cooldown: float, max_cooldown: float) -> int:
    """How many probes fit in ``window`` seconds after a breaker first opens, if every probe fails: the
    k-th goes after cool-downs of ``cooldown * 2**(i-1)`` (bounded by ``max_cooldown``) for i = 1..k.
    An upper bound: each real probe also waits for a claim and its answer."""
    slots, elapsed = 0, 0.0
    while True:
        elapsed += min(cooldown * 2.0**slots, max_cooldown)
        if elapsed > window:
            return slots
        slots += 1


BREAKER_CONSECUTIVE = 10  # hookline's default HOOKLINE_BREAKER_CONSECUTIVE_FAILURES
BREAKER_MAX_COOLDOWN = 600.0  # hookline's default HOOKLINE_BREAKER_MAX_COOLDOWN
MAX_IN_FLIGHT = 20  # hookline's default HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT


def breaker(bench: Bench, backend: str) -> None:
    sizes = bench.sizes
    env = {"HOOKLINE_BREAKER_COOLDOWN": f"{sizes.breaker_cooldown:g}s"}
    with deployed(bench, backend, "breaker", env) as deploy:
        deploy.add_endpoints("h", 51)
        deploy.add_endpoints("n", 51, kinds=["ok"] * 50 + ["fail"])
        rates = {}
        for label, prefix in (("51 healthy", "h"), ("50 healthy + one 500", "n")):
            run = _breaker_run(bench, deploy, prefix)
            rates[prefix] = run["rate"]
            note = f"{run['healthy']:,} in {sizes.breaker_seconds:g} s; {run['left']:,} healthy still pending"
            if not run["lasted"]:
                note += " (the backlog ran out)"
            bench.add(
                "breaker", backend, f"{label}: healthy deliveries/s", run["rate"], "deliveries/s", note=note
            )
            if prefix == "n":
                _failing_endpoint(bench, backend, run)
        bench.add(
            "breaker",
            backend,
            "healthy throughput: one failing / all healthy",
            rates["n"] / rates["h"] * 100,
            "%",
            at_least=95,
        )


def _breaker_run(bench: Bench, deploy: Deployment, prefix: str) -> dict[str, Any]:
    """A due backlog over the 51 endpoints ``{prefix}0..50``; healthy deliveries/s over ``breaker_seconds``
    after a second of ramp-up; for the failing endpoint (``n50``) its arrivals and the breaker's openings."""
    sizes = bench.sizes
    endpoints = deploy.endpoints[prefix]
    ids = [e.id for e in endpoints]
    healthy_paths = [deploy.sink_path(prefix, i) for i in range(50)]
    failing = prefix == "n"
    backlog_sql.queue_due(deploy, TENANT, ids, sizes.breaker_rows)
    bench.sink.reset()
    backlog_sql.wake(deploy, ids)
    openings: set[dt.datetime] = set()

    def watch() -> None:
        # Endpoint 50's breaker, in both runs alike: the API calls cost the same CPU (on SQLite, in the
        # process that delivers). Often enough to see every opening before its cool-down ends.
        opened = deploy.api.breaker(TENANT, endpoints[50].id).get("opened_at")
        if opened:
            openings.add(dt.datetime.fromisoformat(opened.replace("Z", "+00:00")))

    watching = time.time() + 60
    while not any(bench.sink.paths().get(p, 0) for p in healthy_paths):
        watch()
        if time.time() > watching:
            raise RuntimeError("no delivery of the backlog arrived within 60 s")
        time.sleep(min(0.25, sizes.breaker_cooldown / 4))
    first = _first_arrival(bench, deploy, healthy_paths)
    start, end = first + RAMP, first + RAMP + sizes.breaker_seconds
    while time.time() < end:
        watch()
        time.sleep(min(0.25, sizes.breaker_cooldown / 4))
    counts = bench.sink.counts(start, end)
    healthy = sum(counts.get(p, 0) for p in healthy_paths)
    fail_times = bench.sink.arrivals(deploy.sink_path(prefix, 50, "fail")) if failing else []
    read_at = time.time()
    left = backlog_sql.delete_pending(deploy, ids[:50])  # the healthy endpoints' part
    backlog_sql.delete_pending(deploy, ids[50:])
    return {
        "rate": healthy / sizes.breaker_seconds,
        "healthy": healthy,
        "left": left,
        "lasted": left > 0,
        "fail_times": fail_times,
        "openings": sorted(openings),
        "read_at": read_at,
    }


def _failing_endpoint(bench: Bench, backend: str, run: dict[str, Any]) -> None:
    """While the breaker is open only probes may reach the endpoint: one after each cool-down. What
    arrives within the first cool-down was claimed before it opened (in flight as the 10th failure was
    recorded); every request after the first cool-down is a probe, so those are held to the schedule."""
    sizes = bench.sizes
    fail_times: list[float] = run["fail_times"]
    openings: list[dt.datetime] = run["openings"]
    trip = BREAKER_CONSECUTIVE - 1 + MAX_IN_FLIGHT
    name = "failing endpoint: requests after the first cool-down"
    if not openings:
        note = f"the breaker was never seen open; {len(fail_times)} requests in all"
        bench.add("breaker", backend, name, None, "requests", at_most=0, note=note)
        return
    opened = openings[0].timestamp()
    cooled = opened + sizes.breaker_cooldown
    window = run["read_at"] - opened
    slots = probe_slots(window, sizes.breaker_cooldown, BREAKER_MAX_COOLDOWN)
    before = sum(1 for t in fail_times if t < opened)
    in_flight = sum(1 for t in fail_times if opened <= t < cooled)
    probes = sum(1 for t in fail_times if t >= cooled)
    bench.add(
        "breaker",
        backend,
        name,
        probes,
        "requests",
        at_most=slots,
        note=f"cool-down {sizes.breaker_cooldown:g} s doubling: {slots} probe slots in the {window:.1f} s "
        f"after it opened; {len(openings)} openings seen",
    )
    bench.add(
        "breaker",
        backend,
        "failing endpoint: requests in all",
        len(fail_times),
        "requests",
        at_most=trip + slots,
        note=f"{before} before it opened + {in_flight} in flight as it opened (at most {trip} together: the "
        f"{BREAKER_CONSECUTIVE}th consecutive failure trips it, {MAX_IN_FLIGHT} may be in flight) + {probes} "
        "probes",
    )


# --- rate limit -------------------------------------------------------------------------------------------


RATE_LIMITS = ((5.0, None), (1000.0, 200))  # (requests/s, max_in_flight: high enough not to bind)


def ratelimit(bench: Bench, backend: str) -> None:
    if backend != "postgresql":
        bench.add(
            "ratelimit",
            backend,
            "skipped",
            None,
            "",
            note="PostgreSQL only: the limit is measured across two worker processes",
        )
        return
    seconds = bench.sizes.ratelimit_seconds
    with deployed(bench, backend, "ratelimit", workers=2) as deploy:
        for n, (limit, cap) in enumerate(RATE_LIMITS):
            prefix = f"r{n}_"
            options: dict[str, Any] = {"rate_limit": limit}
            if cap is not None:
                options["max_in_flight"] = cap
            deploy.add_endpoints(prefix, 1, **options)
            ids = [deploy.endpoints[prefix][0].id]
            path = deploy.sink_path(prefix, 0)
            backlog = int(limit * (seconds + RAMP + 5) * 1.5)  # more than the window can take
            backlog_sql.queue_due(deploy, TENANT, ids, backlog)
            bench.sink.reset()
            cpu_before = _worker_cpu(deploy)
            backlog_sql.wake(deploy, ids)
            first = _first_arrival(bench, deploy, [path])
            start, end = first + RAMP, first + RAMP + seconds
            _sleep_until(end + 0.2)
            received = bench.sink.counts(start, end).get(path, 0)
            cpu = {role: used - cpu_before.get(role, 0.0) for role, used in _worker_cpu(deploy).items()}
            left = backlog_sql.delete_pending(deploy, ids)
            rate = received / seconds
            cpus = " + ".join(f"{used:.1f}" for used in cpu.values())
            note = f"{received:,} in {seconds:g} s after {RAMP:g} s ramp-up; {left:,} still pending"
            bench.add("ratelimit", backend, f"limit {limit:g}/s: received/s", rate, "requests/s", note=note)
            bench.add(
                "ratelimit",
                backend,
                f"limit {limit:g}/s: received / limit",
                rate / limit * 100,
                "%",
                at_least=90,
                at_most=110,
                note=f"2 workers (CPU s {cpus}); max_in_flight {cap or 'default'}",
                holds=left > 0,
            )
