"""The scenarios. Each one drives real processes on loopback and adds figures to ``Bench.figures``.

Timing rules, the same everywhere:
* deliveries/s = deliveries received by the sink / (last receipt at the sink - first post of the load);
* latency = the sink's arrival time of an event - the time its 202 came back to the load generator;
* CPU = utime + stime (/proc/<pid>/stat, children included) of hookline's processes over the run, and
  on PostgreSQL the server's own (``bench.pg.ServerCpu``), per delivery;
* a ceiling runs at the concurrency hookline itself may use for the same shape (10 endpoints x 20 in
  flight = 200; one endpoint with ``max_in_flight`` 64 = 64), both warmed up before their clocks start;
* peak RSS = VmHWM of each hookline process, its window reset at the start of every scenario.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import pg
from bench.api import Sink, wait_delivered
from bench.before import Before
from bench.deploy import TENANT, Deployment
from bench.procs import Proc, Processes, Usage


@dataclass(frozen=True)
class Sizes:
    name: str
    fanout_events: int  # x 10 endpoints
    single_events: int  # x 1 endpoint with max_in_flight 64
    ceiling_deliveries: int
    celery_events: int  # x 10 endpoints, per pool
    celery_pools: tuple[tuple[str, int], ...]  # (pool, concurrency)
    latency_rates: tuple[int, ...]
    latency_seconds: float
    burst_rate: int
    burst_seconds: float
    burst_wait: float  # give up waiting for the drain after this many seconds past the burst
    noisy_events: int  # a multiple of 52
    noisy_rate: int
    noisy_seconds: float
    backlog_rows: int
    backlog_events: int
    backlog_rate: int
    backlog_seconds: float
    ingest_single: int
    ingest_batched: int
    fairness_rows: int  # tenant A's due backlog, over 20 endpoints, then on one (PostgreSQL)
    fairness_rows_sqlite: int  # the same on SQLite
    fairness_rate: int  # tenant B's events/s
    fairness_seconds: float
    breaker_rows: int  # due backlog over 51 endpoints, more than the run can deliver
    breaker_seconds: float
    breaker_cooldown: float  # HOOKLINE_BREAKER_COOLDOWN for the run, seconds
    ratelimit_seconds: float  # the measured window, after a second of ramp-up
    stats_attempts: int  # attempts in each webhook's 30 days of statistics history
    retention_attempts: int  # old finished attempts for pruning to remove (PostgreSQL)
    warmup_events: int
    repeats: int  # runs of each ceiling and throughput shape; the median counts (these machines are noisy)


CELERY_POOLS = (("prefork", 8), ("threads", 32))

# The default run: the sizes (10,000 events x 10 endpoints and 100,000 x 1, a 100,000-delivery
# ceiling, ...), about 40 minutes on 2 cores (the fairness, breaker and ratelimit
# scenarios about 10 of them).
FULL = Sizes(
    name="full",
    fanout_events=10_000,
    single_events=100_000,
    ceiling_deliveries=100_000,
    celery_events=2_000,
    celery_pools=CELERY_POOLS,
    latency_rates=(500, 2000),
    latency_seconds=20,
    burst_rate=3500,
    burst_seconds=30,
    burst_wait=300,
    noisy_events=20_800,
    noisy_rate=500,
    noisy_seconds=15,
    backlog_rows=1_000_000,
    backlog_events=20_000,
    backlog_rate=500,
    backlog_seconds=15,
    ingest_single=10_000,
    ingest_batched=100_000,
    fairness_rows=1_000_000,
    fairness_rows_sqlite=100_000,
    fairness_rate=100,
    fairness_seconds=20,
    breaker_rows=600_000,
    breaker_seconds=60,
    breaker_cooldown=5,
    ratelimit_seconds=30,
    stats_attempts=10_000_000,
    retention_attempts=10_000_000,
    warmup_events=20,
    repeats=3,
)

# A smoke run for CI: every code path, tiny sizes, figures meaningless.
QUICK = Sizes(
    name="quick",
    fanout_events=50,
    single_events=300,
    ceiling_deliveries=2_000,
    celery_events=20,
    celery_pools=(("threads", 32),),
    latency_rates=(50, 100),
    latency_seconds=1,
    burst_rate=300,
    burst_seconds=1,
    burst_wait=30,
    noisy_events=520,
    noisy_rate=100,
    noisy_seconds=1,
    backlog_rows=10_000,
    backlog_events=500,
    backlog_rate=100,
    backlog_seconds=1,
    ingest_single=100,
    ingest_batched=1_000,
    fairness_rows=5_000,
    fairness_rows_sqlite=2_000,
    fairness_rate=100,
    fairness_seconds=1,
    breaker_rows=5_000,
    breaker_seconds=2,
    breaker_cooldown=0.5,
    ratelimit_seconds=2,
    stats_attempts=20_000,
    retention_attempts=10_000,
    warmup_events=5,
    repeats=1,
)

SCENARIOS = (
    "ceiling",
    "celery",
    "throughput",
    "ingest",
    "latency",
    "burst",
    "noisy",
    "backlog",
    "fairness",
    "breaker",
    "ratelimit",
    "stats",
    "retention",
    "budget",
    "scaleout",
)


@dataclass(frozen=True)
class Load:
    """A running load generator and the file it will write its result to."""

    proc: Proc
    out: Path


@dataclass
class Figure:
    scenario: str
    backend: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    verdict: str = ""  # PASS, MISS, "smoke" (a --quick run: too small for a verdict), or empty
    note: str = ""
    code: str = ""  # "" for the working tree's code; ``Before.label`` for --before's run of a scenario
    # The name without the code's label: what a figure and its twin from the other code share.
    measure: str = ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# The concurrency hookline may use for each throughput shape, which is what its ceiling runs at. Fan-out:
# 10 endpoints at the default 20 in flight each; single: one endpoint created with max_in_flight 64.
FANOUT_IN_FLIGHT = 200
SINGLE_IN_FLIGHT = 64
CEILING_CONCURRENCY = (FANOUT_IN_FLIGHT, SINGLE_IN_FLIGHT)


@dataclass
class Bench:
    sizes: Sizes
    quick: bool
    backends: tuple[str, ...]
    procs: Processes
    dbs: pg.Databases
    sink: Sink
    sink_proc: Proc | None = None
    figures: list[Figure] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)  # keyed figures, for ratios
    _runs: Iterator[int] = field(default_factory=itertools.count)
    _server_cpu: pg.ServerCpu | None = None
    before: Before | None = None  # --before: an earlier commit's code, run beside the working tree's
    # While a scenario runs on --before's code (``running_before``): its label, added to each row.
    code: str = ""

    @property
    def before_label(self) -> str:
        return self.before.label if self.before is not None else ""

    @contextlib.contextmanager
    def running_before(self) -> Iterator[Before]:
        """While a scenario runs again on --before's code: its rows are named and keyed as that code's."""
        assert self.before is not None
        self.code = self.before.label
        try:
            yield self.before
        finally:
            self.code = ""

    def server_cpu(self) -> pg.ServerCpu:
        """The local PostgreSQL server's CPU, per role (read from /proc)."""
        if self._server_cpu is None:
            self._server_cpu = pg.ServerCpu(self.dbs.server_url)
        return self._server_cpu

    def sink_cpu(self) -> float:
        return self.sink_proc.cpu_seconds() if self.sink_proc is not None else 0.0

    @property
    def workdir(self) -> Path:
        return self.procs.workdir

    def add(
        self,
        scenario: str,
        backend: str,
        name: str,
        value: float | None,
        unit: str,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        note: str = "",
        key: str | None = None,
        holds: bool = True,
    ) -> None:
        """Record a figure; with ``at_least``/``at_most`` (or both: a range) it gets PASS or MISS (MISS also
        when ``holds`` is False: a precondition of the target, such as the offered rate, was not met)."""
        target, verdict = "", ""
        if at_least is not None or at_most is not None:
            if at_least is not None and at_most is not None:
                target = f"{fmt(at_least, unit)} .. {fmt(at_most, unit)}"
                passed = value is not None and at_least <= value <= at_most
            elif at_least is not None:
                target = f">= {fmt(at_least, unit)}"
                passed = value is not None and value >= at_least
            else:
                assert at_most is not None
                target = f"<= {fmt(at_most, unit)}"
                passed = value is not None and value <= at_most
            verdict = "PASS" if passed and holds else "MISS"
            if self.quick:  # the smoke run's sizes are far too small for a figure to mean anything
                verdict = "smoke"
        measure = name
        if self.code:
            name, key = f"{name} [{self.code}]", (f"{key}:{self.code}" if key is not None else None)
        self.figures.append(
            Figure(scenario, backend, name, value, unit, target, verdict, note, self.code, measure)
        )
        if key is not None and value is not None:
            self.values[key] = value
        shown = fmt(value, unit) if value is not None else "n/a"
        print(
            f"  {scenario:<10} {backend:<10} {name:<38} {shown:>14} {target:>12} {verdict:<5} {note}",
            flush=True,
        )

    def deployment(
        self, backend: str, label: str, env: dict[str, str] | None = None, workers: int = 1
    ) -> Deployment:
        if self.code and self.before is not None:  # inside running_before: the deployment runs that code
            label, env = f"{label}-{self.before.commit}", {**(env or {}), **self.before.env}
        deploy = Deployment(backend, label, self.procs, self.dbs, self.sink, self.workdir, env, workers)
        deploy.warmup_events = self.sizes.warmup_events
        return deploy.start()

    # --- the load generator ----------------------------------------------------------------------------

    def next_run(self) -> int:
        """A number for the next helper process's log and result file names."""
        return next(self._runs)

    def loadgen(
        self,
        deploy: Deployment,
        prefix: str,
        channels: int,
        *mode: str,
        batch: int = 1,
        concurrency: int = 16,
        record: bool = False,
        tenant: str = TENANT,
    ) -> Load:
        """Start ``bench.loadgen`` against ``deploy``; ``mode``: its ``count ...`` or ``rate ...`` words."""
        run = self.next_run()
        out = self.workdir / f"loadgen-{run}.json"
        args = [*deploy.loadgen_args(prefix, channels, tenant), "--out", str(out)]
        args += ["--batch", str(batch), "--concurrency", str(concurrency)]
        if record:
            args.append("--record")
        return Load(self.procs.python(f"loadgen-{run}", "bench.loadgen", *args, *mode), out)

    def loadgen_result(self, load: Load, timeout: float = 600) -> tuple[dict[str, Any], Usage]:
        usage = load.proc.finish(timeout)
        self.procs.forget(load.proc)
        if usage.returncode != 0:
            raise RuntimeError(f"load generator failed ({usage.returncode}):\n{load.proc.tail()}")
        result: dict[str, Any] = orjson.loads(load.out.read_bytes())
        if result["errors"]:
            print(f"  note: {result['errors']} events refused: {result['error_sample']}", flush=True)
        return result, usage

    # --- shared measurements ---------------------------------------------------------------------------

    def memory(self, scenario: str, deploy: Deployment, roles: tuple[str, ...] = ()) -> None:
        for role, proc in deploy.hookline_procs().items():
            if roles and role not in roles:
                continue
            sender = role.startswith("worker") or role == "serve"
            self.add(
                scenario,
                deploy.backend,
                f"peak RSS {role}",
                proc.peak_rss_mb(),
                "MB",
                at_most=250 if sender else None,
            )

    def pipeline_rate(
        self, deploy: Deployment, prefix: str, channels: int, events: int, expected: int
    ) -> dict[str, Any]:
        """Post ``events`` in batches of 1000 (2 in flight) and wait for ``expected`` receipts at the sink.
        CPU figures are ms per delivery: hookline's per role, PostgreSQL's per role (PostgreSQL only),
        the sink's."""
        self.sink.reset()
        roles = deploy.hookline_procs()
        before = {role: proc.cpu_seconds() for role, proc in roles.items()}
        server = self.server_cpu() if deploy.backend == "postgresql" else None
        server = server if server is not None and server.local else None  # a remote server: not counted
        server_before = server.snapshot() if server is not None else {}
        sink_before = self.sink_cpu()
        load = self.loadgen(
            deploy, prefix, channels, "count", "--events", str(events), batch=1000, concurrency=2
        )
        stats = wait_delivered(self.sink, expected, list(roles.values()))
        hookline = {role: proc.cpu_seconds() - before[role] for role, proc in roles.items()}
        database = server.since(server_before) if server is not None else {}
        sink = self.sink_cpu() - sink_before
        result, _ = self.loadgen_result(load)
        elapsed = max(stats["last"] - result["first_post"], 1e-9)
        note = "" if stats["count"] >= expected else f"incomplete: {stats['count']} of {expected}"
        per = 1000 / max(stats["count"], 1)  # seconds -> ms per delivery
        return {
            "rate": stats["count"] / elapsed,
            "cpu_ms": sum(hookline.values()) * per,
            "cpu_ms_by_role": {role: v * per for role, v in hookline.items()},
            "pg_cpu_ms": sum(database.values()) * per if server is not None else None,
            "pg_cpu_ms_by_role": {role: v * per for role, v in database.items()},
            "sink_cpu_ms": sink * per,
            "delivered": stats["count"],
            "note": note,
        }

    def steady_latency(
        self,
        deploy: Deployment,
        prefix: str,
        channels: int,
        rate: float,
        seconds: float,
        batch: int = 1,
        expected_share: float = 1.0,
        wait: float = 120.0,
    ) -> dict[str, Any]:
        """Post at ``rate`` events/s for ``seconds``; latencies of the events that reach /ok (waiting at
        most ``wait`` seconds after the load for the last of them)."""
        self.sink.reset()
        load = self.loadgen(
            deploy,
            prefix,
            channels,
            "rate",
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
            batch=batch,
            concurrency=256,
            record=True,
        )
        result, _ = self.loadgen_result(load, timeout=seconds + 300)
        expected = int(result["accepted"] * expected_share)
        stats = wait_delivered(
            self.sink, expected, list(deploy.hookline_procs().values()), stall=30, limit=wait
        )
        arrivals = self.sink.times()
        sent: dict[str, float] = result["times"]
        latencies = [arrivals[i] - t for i, t in sent.items() if i in arrivals]
        achieved = result["accepted"] / max(result["last_202"] - result["first_post"], 1e-9)
        return {
            "p50": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000,
            "p99": percentile(latencies, 99) * 1000,
            "max": max(latencies, default=float("nan")) * 1000,
            "achieved": achieved,
            "max_late": result["max_late"],
            "delivered": len(latencies),
            "expected": expected,
            "skipped": result["skipped"],
            "first_post": result["first_post"],
            "last_202": result["last_202"],
            "last_receipt": stats["last"],
        }


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("ms", "s", "MB", "x"):
        digits = 2 if unit == "x" or abs(value) < 10 else 1 if abs(value) < 100 else 0
        return f"{value:,.{digits}f} {unit}"
    if unit == "%":
        return f"{value:.0f} %"
    if unit == "CPU ms":
        return f"{value:.3f} {unit}"
    if unit.startswith("CPU"):
        return f"{value:.2f} {unit}"
    return f"{value:,.0f} {unit}"


@contextlib.contextmanager
def deployed(
    bench: Bench, backend: str, label: str, env: dict[str, str] | None = None, workers: int = 1
) -> Iterator[Deployment]:
    deploy = bench.deployment(backend, label, env, workers)
    try:
        yield deploy
    finally:
        deploy.close()


# --- 2. the ceiling ---------------------------------------------------------------------------------------


def ceiling(bench: Bench, data: dict[str, Any]) -> None:
    """Each client at each concurrency hookline uses (``CEILING_CONCURRENCY``), warmed up first; the
    sender's CPU is that of its sending window alone (not building and signing the payloads)."""
    clients = ["aiohttp"]
    try:
        import pyreqwest  # noqa: F401

        clients.append("pyreqwest")
    except ImportError:
        bench.add("ceiling", "-", "pyreqwest", None, "deliveries/s", note="not installed")
    for client in clients:
        for concurrency in CEILING_CONCURRENCY:
            runs = [_ceiling_once(bench, client, concurrency, data) for _ in range(bench.sizes.repeats)]
            rates = [r["rate"] for r in runs]
            errors = sum(r["errors"] for r in runs)
            notes = [f"{errors} errors"] if errors else []
            if len(rates) > 1:
                notes.append(f"median of {len(rates)}: {', '.join(f'{r:,.0f}' for r in rates)}")
            label = f"{client} at {concurrency}"
            bench.add(
                "ceiling",
                "-",
                f"{label}: deliveries/s",
                statistics.median(rates),
                "deliveries/s",
                note="; ".join(notes),
                key=f"ceiling:{client}:{concurrency}",
            )
            bench.add(
                "ceiling",
                "-",
                f"{label}: sender CPU ms / request",
                statistics.median(r["cpu_ms"] for r in runs),
                "CPU ms",
                note=f"sending only; the sink's: {statistics.median(r['sink_cpu_ms'] for r in runs):.3f} ms",
                key=f"ceiling-cpu:{client}:{concurrency}",
            )


def _ceiling_once(bench: Bench, client: str, concurrency: int, data: dict[str, Any]) -> dict[str, Any]:
    """One ceiling run: deliveries/s, the sender's and the sink's CPU ms per request, errors."""
    bench.sink.reset()
    run = bench.next_run()
    out = bench.workdir / f"ceiling-{run}.json"
    sink_before = bench.sink_cpu()
    proc = bench.procs.python(
        f"ceiling-{client}",
        "bench.ceiling",
        *("--sink-port", str(bench.sink.port), "--deliveries", str(bench.sizes.ceiling_deliveries)),
        *("--endpoints", "10", "--client", client, "--data", orjson.dumps(data).decode(), "--out", str(out)),
        *("--concurrency", str(concurrency), "--warmup", str(concurrency)),
    )
    usage = proc.finish(600)
    bench.procs.forget(proc)
    if usage.returncode != 0:
        raise RuntimeError(f"ceiling ({client}) failed:\n{proc.tail()}")
    result = orjson.loads(out.read_bytes())
    stats = bench.sink.stats()
    count = max(stats["count"], 1)
    return {
        "rate": stats["count"] / max(stats["last"] - result["start"], 1e-9),
        "cpu_ms": result["cpu"] / count * 1000,
        "sink_cpu_ms": (bench.sink_cpu() - sink_before) / count * 1000,
        "errors": int(result["errors"]),
    }


# --- 3. Celery ------------------------------------------------------------------------------------------


def celery(bench: Bench, data: dict[str, Any]) -> None:
    from bench.celery_baseline import CeleryBaseline, missing_dependency

    if "postgresql" not in bench.backends:
        bench.add("celery", "-", "deliveries/s", None, "deliveries/s", note="needs PostgreSQL (--backends)")
        return
    if problem := missing_dependency():
        bench.add("celery", "-", "deliveries/s", None, "deliveries/s", note=f"skipped: {problem}")
        return
    events = bench.sizes.celery_events
    best = 0.0
    with CeleryBaseline(bench.procs, bench.dbs, bench.sink, data) as baseline:
        for pool, concurrency in bench.sizes.celery_pools:
            result = baseline.run(pool, concurrency, events, 10)
            note = f"-c {concurrency}; {result['attempts_recorded']} attempts recorded"
            if result["delivered"] < events * 10:
                note += f"; incomplete: {result['delivered']} of {events * 10}"
            bench.add("celery", "-", f"{pool} pool: deliveries/s", result["rate"], "deliveries/s", note=note)
            bench.add(
                "celery",
                "-",
                f"{pool} pool: CPU s / 1k deliveries",
                result["cpu_per_1k"],
                "CPU s",
                note="worker only",
            )
            bench.add(
                "celery",
                "-",
                f"{pool} pool: peak RSS worker",
                result["peak_rss_mb"],
                "MB",
                note="all pool processes",
            )
            best = max(best, result["rate"])
    bench.values["celery:best"] = best


# --- 1. throughput (+ 9. memory) ---------------------------------------------------------------------------


def throughput(bench: Bench, deploy: Deployment, earlier: Deployment | None = None) -> None:
    """Each shape, ``repeats`` times (the median counts). With ``earlier`` (``--before``: the same
    endpoints, served by an earlier commit's code) the two take turns run by run, which one goes first
    alternating, so that the machine's drift falls on both alike; then a row per figure for each, and
    the change."""
    backend = deploy.backend
    deploy.reset_peak_rss()
    shapes = (
        ("fanout", "f", bench.sizes.fanout_events, 10),
        ("single", "s", bench.sizes.single_events, 1),
    )
    sides = [deploy] if earlier is None else [deploy, earlier]
    for key, prefix, events, fan in shapes:
        label = f"{events:,}x{fan}"
        for side in sides:
            # Unmeasured first: the connections to these endpoints open, as the ceiling's warm-up opens its.
            bench.pipeline_rate(side, prefix, 1, max(events // 10, 10), max(events // 10, 10) * fan)
        runs: dict[str, list[dict[str, Any]]] = {side.label: [] for side in sides}
        for n in range(bench.sizes.repeats):
            for side in sides if n % 2 == 0 else sides[::-1]:
                runs[side.label].append(bench.pipeline_rate(side, prefix, 1, events, events * fan))
        for side in sides:
            name = label if side is deploy else f"{label} {bench.before_label}"
            suffix = "" if side is deploy else ":before"
            _throughput_rows(bench, backend, key + suffix, name, runs[side.label])
        if earlier is not None:
            _change_rows(bench, backend, key, label)
            _paired_rows(bench, deploy, earlier, prefix, events, fan, label)
    bench.memory("throughput", deploy)


def _paired_rows(
    bench: Bench, deploy: Deployment, earlier: Deployment, prefix: str, events: int, fan: int, label: str
) -> None:
    """Both deployments take the same load at the same moment, ``repeats`` rounds: each one's hookline CPU
    per delivery over the same window, so that the machine's drift (which moves a series run after run
    by a fifth and more on a shared host) falls on both alike. The row is the median of the rounds'
    ratios, now / before; rates are not compared here (the two share the machine)."""
    ratios = []
    sides = (deploy, earlier)
    for _ in range(bench.sizes.repeats):
        bench.sink.reset()
        before = [side.cpu_seconds() for side in sides]
        loads = [
            bench.loadgen(side, prefix, 1, "count", "--events", str(events), batch=1000, concurrency=2)
            for side in sides
        ]
        wait_delivered(bench.sink, events * fan * 2, [p for s in sides for p in s.hookline_procs().values()])
        for load in loads:
            bench.loadgen_result(load)
        now, then = (side.cpu_seconds() - start for side, start in zip(sides, before, strict=True))
        ratios.append(now / max(then, 1e-9))
    bench.add(
        "change",
        deploy.backend,
        f"{label}: hookline CPU, both at once, now / {bench.before_label}",
        statistics.median(ratios),
        "x",
        note="the same load on both at the same moment; per round: " + ", ".join(f"{r:.3f}" for r in ratios),
    )


def _throughput_rows(bench: Bench, backend: str, key: str, label: str, runs: list[dict[str, Any]]) -> None:
    rates = [r["rate"] for r in runs]
    notes = [r["note"] for r in runs if r["note"]]
    if len(runs) > 1:
        notes.append(f"median of {len(runs)}: {', '.join(f'{r:,.0f}' for r in rates)}")
    bench.add(
        "throughput",
        backend,
        f"{label}: deliveries/s",
        statistics.median(rates),
        "deliveries/s",
        note="; ".join(notes),
        key=f"throughput:{key}:{backend}",
    )
    by_role = _median_roles([r["cpu_ms_by_role"] for r in runs])
    bench.add(
        "throughput",
        backend,
        f"{label}: hookline CPU ms / delivery",
        statistics.median(r["cpu_ms"] for r in runs),
        "CPU ms",
        note=", ".join(f"{role} {v:.3f}" for role, v in by_role.items())
        + f"; the sink's: {statistics.median(r['sink_cpu_ms'] for r in runs):.3f} ms",
        key=f"cpu:{key}:{backend}",
    )
    if all(r["pg_cpu_ms"] is not None for r in runs) and backend == "postgresql":
        by_role = _median_roles([r["pg_cpu_ms_by_role"] for r in runs])
        bench.add(
            "throughput",
            backend,
            f"{label}: PostgreSQL CPU ms / delivery",
            statistics.median(r["pg_cpu_ms"] for r in runs),
            "CPU ms",
            note="for " + ", ".join(f"{role} {v:.3f}" for role, v in by_role.items()),
            key=f"pg-cpu:{key}:{backend}",
        )


def _change_rows(bench: Bench, backend: str, key: str, label: str) -> None:
    """The working tree against the earlier commit, figure by figure: after / before."""
    for kind, unit in (("throughput", "deliveries/s"), ("cpu", "hookline CPU"), ("pg-cpu", "PostgreSQL CPU")):
        now = bench.values.get(f"{kind}:{key}:{backend}")
        then = bench.values.get(f"{kind}:{key}:before:{backend}")
        if now is None or not then:
            continue
        bench.add(
            "change",
            backend,
            f"{label}: {unit}, now / {bench.before_label}",
            now / then,
            "x",
            note=f"{then:,.3f} -> {now:,.3f}" if kind != "throughput" else f"{then:,.0f} -> {now:,.0f}",
        )


def before_rows(bench: Bench, backend: str, *scenarios: str) -> None:
    """A ``change`` row for each figure with a target that ``scenarios`` gave on both codes: now / before.
    No verdict: which way is better depends on the figure, and on a host that drifts a single pair of
    runs taken one after the other tells only a large change."""
    if bench.before is None:
        return
    label = bench.before.label
    earlier: dict[tuple[str, str], list[Figure]] = {}  # in order: a scenario may give a figure once per phase
    for f in bench.figures:
        if f.backend == backend and f.code == label and f.scenario in scenarios:
            earlier.setdefault((f.scenario, f.measure), []).append(f)
    for now in [f for f in bench.figures if f.backend == backend and not f.code and f.scenario in scenarios]:
        twins = earlier.get((now.scenario, now.measure))
        then = twins.pop(0) if twins else None
        if not now.target or then is None or now.value is None or not then.value:
            continue
        bench.add(
            "change",
            backend,
            f"{now.scenario} {now.measure}, now / {label}",
            now.value / then.value,
            "x",
            note=f"now {fmt(now.value, now.unit)}, before {fmt(then.value, then.unit)}",
        )


def _median_roles(runs: list[dict[str, float]]) -> dict[str, float]:
    roles = sorted({role for run in runs for role in run})
    return {role: statistics.median(run.get(role, 0.0) for run in runs) for role in roles}


# --- 8. ingest, then the drain ------------------------------------------------------------------------


def ingest(bench: Bench, deploy: Deployment) -> None:
    backend = deploy.backend
    deploy.stop_worker()
    assert deploy.api_proc is not None
    deploy.reset_peak_rss()
    bench.sink.reset()
    total = 0
    for label, events, batch, concurrency, target in (
        ("single events/s (32 clients)", bench.sizes.ingest_single, 1, 32, 2_000),
        ("batched events/s (1000 per request)", bench.sizes.ingest_batched, 1000, 4, 20_000),
    ):
        cpu_before = deploy.cpu_seconds()
        load = bench.loadgen(
            deploy, "i", 10, "count", "--events", str(events), batch=batch, concurrency=concurrency
        )
        result, usage = bench.loadgen_result(load)
        cpu = deploy.cpu_seconds() - cpu_before
        rate = result["accepted"] / max(result["last_202"] - result["first_post"], 1e-9)
        per_1k = cpu / max(result["accepted"], 1) * 1000
        note = f"API CPU {per_1k:.2f} s/1k events; load generator CPU {usage.cpu_seconds:.1f} s"
        if result["errors"]:
            note += f"; {result['errors']} refused"
        bench.add(
            "ingest",
            backend,
            label,
            rate,
            "events/s",
            at_least=target if backend == "postgresql" else None,
            note=note,
        )
        total += result["accepted"]
    bench.memory("ingest", deploy, ("api",))
    # The drain: everything above is queued; start the worker alone and time it.
    worker = deploy.start_worker(warm_up=False)
    stats = wait_delivered(bench.sink, total, [worker])
    rate = stats["count"] / max(stats["last"] - stats["first"], 1e-9)
    note = "first to last receipt" + (
        "" if stats["count"] >= total else f"; incomplete {stats['count']}/{total}"
    )
    bench.add(
        "drain",
        backend,
        f"{total:,} queued: deliveries/s",
        rate,
        "deliveries/s",
        note=note,
        key=f"drain:{backend}",
    )
    role = "worker" if backend == "postgresql" else "serve"
    bench.memory("drain", deploy, (role,))
    deploy.warm_up()


# --- 4. latency -------------------------------------------------------------------------------------------


def latency(bench: Bench, deploy: Deployment) -> None:
    backend = deploy.backend
    deploy.reset_peak_rss()
    for rate in bench.sizes.latency_rates:
        run = bench.steady_latency(deploy, "l", 10, rate, bench.sizes.latency_seconds)
        limit = 50 if rate <= 500 else 200
        sustained = run["achieved"] >= 0.9 * rate
        note = f"API answered {run['achieved']:,.0f} events/s"
        if not sustained:
            note += f" (offered {rate}/s: not sustained; {run['skipped']:,} not sent)"
        note += f"; {run['delivered']:,}/{run['expected']:,} delivered"
        bench.add("latency", backend, f"{rate}/s: p50", run["p50"], "ms")
        bench.add("latency", backend, f"{rate}/s: p95", run["p95"], "ms")
        bench.add(
            "latency", backend, f"{rate}/s: p99", run["p99"], "ms", at_most=limit, note=note, holds=sustained
        )
    bench.memory("latency", deploy)


# --- 5. burst ---------------------------------------------------------------------------------------------


def burst(bench: Bench, deploy: Deployment) -> None:
    backend = deploy.backend
    deploy.reset_peak_rss()
    rate, seconds = bench.sizes.burst_rate, bench.sizes.burst_seconds
    run = bench.steady_latency(
        deploy, "b", 10, rate, seconds, batch=max(1, rate // 10), wait=bench.sizes.burst_wait + seconds
    )
    complete = run["delivered"] >= run["expected"]
    drained = run["last_receipt"] - run["last_202"] if complete else None
    sustained = run["achieved"] >= 0.9 * rate
    note = f"{run['delivered']:,}/{run['expected']:,} delivered"
    if not complete:
        note += f" when the harness stopped waiting ({bench.sizes.burst_wait:g} s)"
    note += f"; API accepted {run['achieved']:,.0f} events/s" + (
        "" if sustained else " (burst not sustained)"
    )
    bench.add(
        "burst",
        backend,
        f"{rate}/s x {seconds:g} s: drained after end",
        drained,
        "s",
        at_most=60,
        note=note,
        holds=sustained,
    )
    bench.add(
        "burst",
        backend,
        "max lag (202 to receipt)",
        run["max"] / 1000,
        "s",
        note=f"p99 {run['p99'] / 1000:.2f} s",
    )
    bench.memory("burst", deploy)


# --- 6. noisy neighbour -----------------------------------------------------------------------------------


NOISY_ENV = {
    "HOOKLINE_DELIVERY_TIMEOUT": "2s",
    "HOOKLINE_LEASE": "10s",
    "HOOKLINE_RETRY_SCHEDULE": "5s,10s,30s",
}


def noisy(bench: Bench, backend: str) -> None:
    sizes = bench.sizes
    with deployed(bench, backend, "noisy", NOISY_ENV) as deploy:
        deploy.add_endpoints("h", 52)
        deploy.add_endpoints("n", 52, kinds=["ok"] * 50 + ["hang", "fail"])
        runs = {}
        for label, prefix, healthy in (("52 healthy", "h", 52), ("50 healthy + hang + 500", "n", 50)):
            deploy.reset_peak_rss()
            events = sizes.noisy_events
            expected = sum(1 for i in range(events) if i % 52 < healthy)
            # One run per phase: a repeat would meet the previous run's retries still in flight (three
            # times the noise), so medians of repeats would measure another scenario.
            tp = bench.pipeline_rate(deploy, prefix, 52, events, expected)
            lat = bench.steady_latency(
                deploy,
                prefix,
                52,
                sizes.noisy_rate,
                sizes.noisy_seconds,
                batch=max(1, sizes.noisy_rate // 10),
                expected_share=healthy / 52,
            )
            stats = bench.sink.stats()
            runs[prefix] = (tp["rate"], lat["p99"])
            bench.add(
                "noisy",
                backend,
                f"{label}: healthy deliveries/s",
                tp["rate"],
                "deliveries/s",
                note=tp["note"],
            )
            note = f"at {sizes.noisy_rate}/s in batches every 100 ms; p50 {lat['p50']:.1f} ms"
            if prefix == "n":
                note += f"; sink saw {stats['hang']} hanging, {stats['fail']} failing requests"
            bench.add("noisy", backend, f"{label}: healthy p99", lat["p99"], "ms", note=note)
            bench.memory("noisy", deploy)
        (rate_h, p99_h), (rate_n, p99_n) = runs["h"], runs["n"]
        bench.add(
            "noisy",
            backend,
            "healthy throughput: noisy / all-healthy",
            rate_n / rate_h * 100,
            "%",
            at_least=90,
        )
        bench.add("noisy", backend, "healthy p99: noisy / all-healthy", p99_n / p99_h, "x", at_most=2)


# --- 7. backlog -------------------------------------------------------------------------------------------


def backlog(bench: Bench, backend: str) -> None:
    if backend != "postgresql":
        return
    sizes = bench.sizes
    with deployed(bench, backend, "backlog") as deploy:
        deploy.add_endpoints("e", 10)
        deploy.add_endpoints("p", 1)
        figures = {}
        for phase in ("empty", "backlog"):
            if phase == "backlog":
                seconds = _park_deliveries(bench, deploy, sizes.backlog_rows)
                bench.add(
                    "backlog",
                    backend,
                    f"inserted {sizes.backlog_rows:,} future deliveries",
                    seconds,
                    "s",
                    note="generate_series, then ANALYZE",
                )
            deploy.reset_peak_rss()
            tp = bench.pipeline_rate(deploy, "e", 10, sizes.backlog_events, sizes.backlog_events)
            lat = bench.steady_latency(
                deploy,
                "e",
                10,
                sizes.backlog_rate,
                sizes.backlog_seconds,
                batch=max(1, sizes.backlog_rate // 10),
            )
            figures[phase] = (tp["rate"], lat["p50"], lat["p99"])
            bench.add(
                "backlog", backend, f"{phase} queue: claim rate", tp["rate"], "deliveries/s", note=tp["note"]
            )
            bench.add(
                "backlog",
                backend,
                f"{phase} queue: new-event p99",
                lat["p99"],
                "ms",
                note=f"at {sizes.backlog_rate}/s in batches every 100 ms; p50 {lat['p50']:.1f} ms",
            )
            bench.memory("backlog", deploy)
        pending = pg.query(deploy.database_url, "SELECT count(*) FROM deliveries WHERE status = 'pending'")[
            0
        ][0]
        (rate_e, p50_e, p99_e), (rate_b, p50_b, p99_b) = figures["empty"], figures["backlog"]
        bench.add(
            "backlog",
            backend,
            "claim rate: backlog / empty",
            rate_b / rate_e * 100,
            "%",
            at_least=80,
            note=f"{pending:,} still pending",
        )
        bench.add(
            "backlog",
            backend,
            "new-event p99: backlog / empty",
            p99_b / p99_e,
            "x",
            at_most=1.2,
            note=f"p50 ratio {p50_b / p50_e:.2f}",
        )


def _park_deliveries(bench: Bench, deploy: Deployment, rows: int) -> float:
    """Insert ``rows`` pending deliveries due in a day, for one endpoint and one real event."""
    before = bench.sink.stats()["count"]
    deploy.api.post_event(TENANT, deploy.example, channel="p0")
    wait_delivered(bench.sink, before + 1, list(deploy.hookline_procs().values()))
    url = deploy.database_url
    seq = pg.query(url, "SELECT max(seq) FROM events")[0][0]
    endpoint = deploy.endpoints["p"][0].id
    started = time.monotonic()
    pg.query(
        url,
        """INSERT INTO deliveries (event_seq, endpoint_id, tenant_id, event_type, status, attempts,
                                   next_attempt_at, created_at, updated_at)
           SELECT $1, $2, $3, 'message.sent', 'pending', 0, now() + interval '1 day', now(), now()
           FROM generate_series(1, $4)""",
        seq,
        endpoint,
        TENANT,
        rows,
    )
    pg.query(url, "ANALYZE deliveries")
    return time.monotonic() - started


# --- the ratios -------------------------------------------------------------------------------------------


def ratios(bench: Bench) -> None:
    """Each shape against the ceilings at its own concurrency (issue 16's targets on PostgreSQL: fan-out
    >= 50 % of pyreqwest and >= 100 % of aiohttp, one endpoint at 64 in flight >= 40 % of pyreqwest;
    SQLite keeps issue 4's 40 % of aiohttp for the fan-out), Celery, and the CPU per delivery against the
    bare pyreqwest sender's CPU per request (hookline + PostgreSQL <= 3x)."""
    values, sizes = bench.values, bench.sizes
    shapes = (
        ("fanout", sizes.fanout_events, 10, FANOUT_IN_FLIGHT),
        ("single", sizes.single_events, 1, SINGLE_IN_FLIGHT),
    )
    targets = {
        ("postgresql", "fanout", "aiohttp"): 100,
        ("postgresql", "fanout", "pyreqwest"): 50,
        ("postgresql", "single", "pyreqwest"): 40,
        ("sqlite", "fanout", "aiohttp"): 40,
    }
    for backend in bench.backends:
        for shape, events, fan, concurrency in shapes:
            mine = values.get(f"throughput:{shape}:{backend}")
            if mine is None:
                continue
            label = f"{events:,}x{fan}"
            for client in ("aiohttp", "pyreqwest"):
                top = values.get(f"ceiling:{client}:{concurrency}")
                if top:
                    bench.add(
                        "ratio",
                        backend,
                        f"{label} / {client} ceiling at {concurrency}",
                        mine / top * 100,
                        "%",
                        at_least=targets.get((backend, shape, client)),
                    )
            celery_best = values.get("celery:best")
            if celery_best and shape == "fanout":
                bench.add(
                    "ratio",
                    backend,
                    f"{label} / Celery (best pool)",
                    mine / celery_best,
                    "x",
                    at_least=10 if backend == "postgresql" else None,
                )
            sender = values.get(f"ceiling-cpu:pyreqwest:{concurrency}")
            cpu = values.get(f"cpu:{shape}:{backend}")
            if sender and cpu is not None:
                database = values.get(f"pg-cpu:{shape}:{backend}", 0.0)
                bench.add(
                    "ratio",
                    backend,
                    f"{label}: CPU per delivery / pyreqwest's per request",
                    (cpu + database) / sender,
                    "x",
                    at_most=3 if backend == "postgresql" else None,
                    note=f"hookline {cpu:.3f} + PostgreSQL {database:.3f} ms against {sender:.3f} ms",
                )
        drain = values.get(f"drain:{backend}")
        top = values.get(f"ceiling:aiohttp:{FANOUT_IN_FLIGHT}")
        if drain and top:
            label = f"drain (worker alone) / aiohttp ceiling at {FANOUT_IN_FLIGHT}"
            bench.add("ratio", backend, label, drain / top * 100, "%")
