"""The CPU budget per delivery, stage by stage (issue 16): where the fan-out shape's CPU goes.

One run of the fan-out shape (10 endpoints on one channel) on PostgreSQL, measured three ways at once:

* ``/proc`` per thread: the worker's main thread (Python: claiming, signing, the Python side of sending,
  recording, the event loop) and the threads of pyreqwest's Rust runtime (the HTTP exchange itself);
  the API process (ingest); the PostgreSQL server per role (``bench.pg.ServerCpu``);
* py-spy sampling the worker's Python stacks, so the main thread's CPU is split by stage: a sample counts
  for the first stage in ``STAGES`` whose function it holds, the rest is the event loop and scheduling
  (uvloop itself, task steps, the run queue);
* ``pg_stat_activity`` sampled every 10 ms: which statement each of the worker's connections is running
  on the CPU (not waiting for a lock, the WAL or the client), so the server's CPU for the worker is split
  between the claim's statements and the recorder's.

Without py-spy (the ``bench`` extra) the main thread is reported whole.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from bench.procs import cpu_times
from bench.scenarios import Bench, deployed
from hookline.store import notices, queue
from hookline.store import rollups as rollup_rows

# Python frames that mark a stage of the worker's main thread, first match wins (signing happens inside
# sending; a result is built inside the attempt's task, after the exchange).
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sign", ("signature_headers",)),
    ("claim", ("Worker.claim",)),
    ("record", ("Worker._flush", "Worker.write_results", "Worker._finish", "Worker._record")),
    ("send", ("HttpSender.send", "Worker._attempt")),
)
LOOP = "event loop and scheduling"

CLAIM_STATEMENTS = (
    queue._PG_TAKE_WAKES,
    queue._PG_DUE_ENDPOINTS,
    queue._PG_PLAN_EACH_TIME,
    queue._PG_LEASE,
    queue._PG_SAVE_AND_NEXT_DUE,
    queue._PG_NEXT_DUE,
)
RECORD_STATEMENTS = (
    queue._PG_LOCK_ENDPOINTS,
    queue._RECORD_PG,
    queue._PG_SAVE_AND_APPEND,
    queue._PG_SAVE,
    queue._PG_DISABLE,
    rollup_rows.PG_APPEND,
    notices.PG_INSERT,
)


def _squeeze(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


_KNOWN = (
    ("claim", tuple(_squeeze(s) for s in CLAIM_STATEMENTS)),
    ("record", tuple(_squeeze(s) for s in RECORD_STATEMENTS)),
)


def statement_kind(sql: str) -> str:
    """ "claim", "record" or "other" (BEGIN, COMMIT, housekeeping) for a statement's text as
    ``pg_stat_activity`` shows it (possibly cut at ``track_activity_query_size``)."""
    text = _squeeze(sql)
    if len(text) >= 20:
        for kind, known in _KNOWN:
            if any(statement.startswith(text) for statement in known):
                return kind
    return "other"


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``."""
    found = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            found[int(tid)] = cpu_times(f"/proc/{pid}/task/{tid}/stat")[0]
    return found


def stage_of(stack: str) -> str:
    for stage, marks in STAGES:
        if any(f";{mark} (" in stack or stack.startswith(f"{mark} (") for mark in marks):
            return stage
    return LOOP


def stage_shares(raw: Path) -> dict[str, float]:
    """Share of the sampled stacks (py-spy's raw format: ``frame;frame;... count``) per stage."""
    counts: collections.Counter[str] = collections.Counter()
    with contextlib.suppress(OSError):
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                counts[stage_of(stack)] += int(count)
    total = sum(counts.values())
    return {stage: n / total for stage, n in counts.items()} if total else {}


class StatementSampler:
    """Counts, every 10 ms, the statements the worker's connections run on the CPU, by kind."""

    def __init__(self, server_url: str) -> None:
        self.url = server_url
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT query FROM pg_stat_activity WHERE application_name = 'hookline worker'"
                    " AND state = 'active' AND wait_event_type IS NULL"
                )
                for row in rows:
                    self.counts[statement_kind(row["query"])] += 1
                await asyncio.sleep(0.01)
        finally:
            await conn.close()

    def __enter__(self) -> StatementSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def sampling(pid: int, out: Path) -> Iterator[bool]:
    """py-spy on ``pid`` while the block runs (raw stacks into ``out``); yields whether it runs."""
    spy = _py_spy()
    if spy is None:
        yield False
        return
    proc = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def budget(bench: Bench, backend: str) -> None:
    if backend != "postgresql":
        return
    events = bench.sizes.fanout_events
    with deployed(bench, backend, "budget") as deploy:
        deploy.add_endpoints("f", 10, shared_channel=True)
        bench.pipeline_rate(deploy, "f", 1, max(events // 10, 10), max(events // 10, 10) * 10)  # warm
        worker = deploy.worker_proc
        assert worker is not None
        raw = bench.workdir / f"budget-{bench.next_run()}.txt"
        before = thread_cpu(worker.pid)
        with sampling(worker.pid, raw) as sampled, StatementSampler(bench.dbs.server_url) as statements:
            run = bench.pipeline_rate(deploy, "f", 1, events, events * 10)
        after = thread_cpu(worker.pid)
    delivered = max(run["delivered"], 1)
    per = 1000 / delivered
    main = (after.get(worker.pid, 0.0) - before.get(worker.pid, 0.0)) * per
    runtime = sum(v - before.get(tid, 0.0) for tid, v in after.items() if tid != worker.pid) * per
    shares = stage_shares(raw) if sampled else {}
    pg_roles = run["pg_cpu_ms_by_role"]
    kinds = statements.counts
    on_cpu = kinds["claim"] + kinds["record"]
    claim_share = kinds["claim"] / on_cpu if on_cpu else 0.5
    pg_worker = pg_roles.get("worker", 0.0)
    rows: list[tuple[str, float, str]] = [
        ("ingest: API process", run["cpu_ms_by_role"].get("api", 0.0), "parse, validate, insert, answer"),
        ("ingest: PostgreSQL", pg_roles.get("api", 0.0), "events and delivery rows"),
    ]
    if shares:
        rows.append(("claim: worker (Python)", main * shares.get("claim", 0.0), "plan, rows into jobs"))
    rows.append(
        ("claim: PostgreSQL", pg_worker * claim_share, f"{kinds['claim']} samples of its statements on CPU")
    )
    if shares:
        rows += [
            ("sign", main * shares.get("sign", 0.0), "two HMAC-SHA256 per attempt"),
            ("send: worker (Python)", main * shares.get("send", 0.0), "request, headers, answer"),
        ]
    rows.append(("send: HTTP in pyreqwest's threads", runtime, "Rust: connection I/O, HTTP/1.1"))
    if shares:
        rows.append(("record: worker (Python)", main * shares.get("record", 0.0), "results, health, rollups"))
    rows.append(("record: PostgreSQL", pg_worker * (1 - claim_share), f"{kinds['record']} samples on CPU"))
    if shares:
        rows.append((f"{LOOP}: worker", main * shares.get(LOOP, 0.0), "uvloop, task steps, run queue"))
    else:
        rows.append(("worker main thread (py-spy not installed)", main, ""))
    rows.append(("PostgreSQL background", pg_roles.get("server", 0.0), "WAL writer, checkpointer, vacuum"))
    total = sum(value for _, value, _ in rows)
    for name, value, note in rows:
        share = f"{value / total * 100:.0f} % of the total" if total else ""
        bench.add("budget", backend, name, value, "CPU ms", note="; ".join(p for p in (share, note) if p))
    bench.add(
        "budget",
        backend,
        "total per delivery",
        total,
        "CPU ms",
        note=f"{run['rate']:,.0f} deliveries/s in this run; the sink's own: {run['sink_cpu_ms']:.3f} ms",
        key="budget:total",
    )
