"""Helpers of the chaos suite: real `hookline` processes, the receiver process, the API over HTTP, the
database, and the per-scenario report. The ideas are those of tests/test_worker_processes.py (a throwaway
database, processes started with a clean HOOKLINE_* environment and killed by pid at teardown, polling
with deadlines), grown for thousands of events.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from hookline.sealing import generate_key
from tests.pg import pg_fetch

HOOKLINE = Path(sys.executable).parent / "hookline"
RECEIVER_SCRIPT = Path(__file__).with_name("receiver.py")
ADMIN_KEY = "hk_admin_chaos_" + secrets.token_hex(8)
SECRET_KEY = generate_key()  # HOOKLINE_SECRET_KEY of the processes and of tests.conftest's services
EVENT_TYPE = "message.incoming"

T = TypeVar("T")


# --- small utilities -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], T],
    timeout: float,
    what: str,
    diag: Callable[[], str] = str,
    interval: float = 0.25,
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{diag()}")
        time.sleep(interval)


def proc_status(pid: int, field_name: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), in bytes; 0 once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def base_env(**settings: str) -> dict[str, str]:
    """The parent's environment without any HOOKLINE_* setting, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_ADMIN_KEY=ADMIN_KEY,
        HOOKLINE_SECRET_KEY=SECRET_KEY,
        HOOKLINE_ALLOW_HTTP="true",
        HOOKLINE_ALLOWED_NETWORKS="127.0.0.0/8",
        HOOKLINE_POLL_INTERVAL="200ms",
        HOOKLINE_RETRY_JITTER="0",
        HOOKLINE_LOG_LEVEL="info",
    )
    env.update(settings)
    return env


# --- processes -------------------------------------------------------------------------------------------


try:
    _PRCTL: Callable[..., int] | None = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child, before exec: have the kernel SIGKILL it if the test process dies (Linux
    PR_SET_PDEATHSIG), so that not even a SIGKILLed pytest leaves hookline processes behind."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def lines(self) -> list[str]:
        try:
            return self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def tail(self, n: int = 20) -> str:
        state = "running" if self.alive() else f"exited {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}) ---\n" + "\n".join(self.lines()[-n:])

    def log_events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.lines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found

    def worker_id(self) -> str | None:
        """The id the worker stamps on its leases, from its 'worker started' log line."""
        for entry in self.log_events():
            if entry.get("event") == "worker started":
                return str(entry["worker_id"])
        return None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        self.signal(signal.SIGKILL)
        self.popen.wait(15)

    def peak_rss(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")


@dataclass
class Processes:
    """Every process a test starts; all are SIGKILLed (by pid) and reaped at teardown."""

    directory: Path
    started: list[Proc] = field(default_factory=list)
    on_teardown: list[Callable[[], None]] = field(default_factory=list)

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> Proc:
        log = self.directory / f"{len(self.started):02d}-{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def hookline(self, name: str, *args: str, env: dict[str, str], cwd: Path | None = None) -> Proc:
        return self.spawn(name, [str(HOOKLINE), *args], env, cwd)

    def diag(self) -> str:
        return "\n".join(p.tail() for p in self.started)

    def kill_all(self) -> None:
        for close in self.on_teardown:
            with contextlib.suppress(Exception):
                close()
        for proc in self.started:
            if proc.alive():
                proc.popen.kill()
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(15)


def wait_started(procs: Processes, workers: Iterable[Proc], timeout: float = 60) -> None:
    """Until each worker has logged its start (and so its lease id)."""

    def started(worker: Proc) -> Callable[[], bool]:
        return lambda: worker.worker_id() is not None or not worker.alive()

    for worker in workers:
        wait_for(started(worker), timeout, f"{worker.name} to start", procs.diag, interval=0.1)
        assert worker.alive(), procs.diag()


def start_workers(procs: Processes, names: Sequence[str], env: dict[str, str]) -> list[Proc]:
    workers = [procs.hookline(name, "worker", env=env) for name in names]
    wait_started(procs, workers)
    return workers


def wait_healthy(base_url: str, proc: Proc, procs: Processes, timeout: float = 60) -> None:
    def healthy() -> bool:
        assert proc.alive(), f"{proc.name} exited early\n{procs.diag()}"
        try:
            return httpx.get(f"{base_url}/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, timeout, f"{proc.name} to answer /health", procs.diag, interval=0.1)


def start_api(procs: Processes, name: str, env: dict[str, str], command: str = "api") -> tuple[Proc, str]:
    port = free_port()
    proc = procs.hookline(name, command, env={**env, "HOOKLINE_PORT": str(port)}, cwd=procs.directory)
    base_url = f"http://127.0.0.1:{port}"
    wait_healthy(base_url, proc, procs)
    return proc, base_url


# --- the receiver process --------------------------------------------------------------------------------


OUTCOMES = ("ok", "fail", "hang", "endless", "trickle")
ANSWERED_2XX = ("ok", "endless", "trickle")  # endless and trickling bodies come after a 200 status


class Receiver:
    """A client of tests/chaos/receiver.py: pulls its request log and keeps the tallies."""

    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        self.entries: list[list[Any]] = []
        self.by_id: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.inflight: dict[str, int] = {}
        self.max_inflight: dict[str, int] = {}
        self.max_group_inflight: dict[str, int] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set_rules(self, rules: list[dict[str, Any]]) -> None:
        self.http.post("/_control/rules", json=rules).raise_for_status()

    def sync(self) -> Receiver:
        """Fetch the requests logged since the last call."""
        response = self.http.get("/_control/log", params={"since": len(self.entries)})
        response.raise_for_status()
        body = response.json()
        for entry in body["entries"]:
            self.entries.append(entry)
            self.by_id[entry[0]][entry[3]] += 1
        self.inflight = body["inflight"]
        self.max_inflight = body["max_inflight"]
        self.max_group_inflight = body["max_group_inflight"]
        return self

    def ok_ids(self) -> set[str]:
        """Ids of events the receiver answered 2xx at least once (delivered)."""
        return {i for i, c in self.by_id.items() if any(c[k] for k in ANSWERED_2XX)}

    def requests_for(self, event_id: str) -> int:
        return sum(self.by_id[event_id].values())

    def duplicates(self) -> dict[str, int]:
        """Events answered 2xx more than once: event id -> extra successful requests."""
        successes = {i: sum(c[k] for k in ANSWERED_2XX) for i, c in self.by_id.items()}
        return {i: n - 1 for i, n in successes.items() if n > 1}

    def close(self) -> None:
        self.http.close()


def start_receiver(procs: Processes, rules: list[dict[str, Any]] | None = None, seed: int = 1) -> Receiver:
    argv = [sys.executable, str(RECEIVER_SCRIPT), "--rules", json.dumps(rules or []), "--seed", str(seed)]
    proc = procs.spawn("receiver", argv, env=dict(os.environ))

    def port() -> int | None:
        assert proc.alive(), proc.tail()
        for line in proc.lines():
            if line.startswith("PORT "):
                return int(line.split()[1])
        return None

    found = wait_for(port, 30, "the receiver to listen", proc.tail, interval=0.05)
    assert found is not None
    receiver = Receiver(proc, found)
    procs.on_teardown.append(receiver.close)
    return receiver


# --- the API, through HTTP -------------------------------------------------------------------------------


def ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["status"] is True and body["code"] == code, body
    return body["data"]


def event_body(n: int, channel: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": EVENT_TYPE,
        "data": {"messageId": f"msg_{n}", "from": "966501234567", **extra},
    }
    if channel is not None:
        body["channels"] = [channel]
    return body


@dataclass
class Tenant:
    base_url: str
    auth: dict[str, str]
    id: str

    def client(self, base_url: str | None = None, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=base_url or self.base_url, headers=self.auth, timeout=timeout)

    def webhook(self, url: str, **options: Any) -> dict[str, Any]:
        body = {"url": url, "events": [EVENT_TYPE], **options}
        with self.client() as client:
            data: dict[str, Any] = ok(client.post("/v1/webhooks", json=body), 201)
        return data

    def webhooks(self, specs: Sequence[dict[str, Any]], threads: int = 4) -> list[dict[str, Any]]:
        """Create many endpoints (each spec: url plus options)."""
        with self.client() as client:

            def create(spec: dict[str, Any]) -> dict[str, Any]:
                data: dict[str, Any] = ok(
                    client.post("/v1/webhooks", json={"events": [EVENT_TYPE], **spec}), 201
                )
                return data

            with ThreadPoolExecutor(threads) as pool:
                return list(pool.map(create, specs))

    def post_batches(
        self,
        bodies: Sequence[dict[str, Any]],
        size: int = 200,
        base_urls: Sequence[str] = (),
        threads: int = 2,
    ) -> list[str]:
        """Post events through /v1/events/batch (round-robin over ``base_urls``); the ids that got a 202."""
        urls = list(base_urls) or [self.base_url]
        chunks = [list(bodies[i : i + size]) for i in range(0, len(bodies), size)]
        clients = [self.client(u, timeout=60) for u in urls]
        try:

            def post(index: int) -> list[str]:
                client = clients[index % len(clients)]
                data = ok(client.post("/v1/events/batch", json={"events": chunks[index]}), 202)
                assert data["accepted"] == len(chunks[index]), data
                return [item["id"] for item in data["items"]]

            with ThreadPoolExecutor(threads) as pool:
                return [event_id for ids in pool.map(post, range(len(chunks))) for event_id in ids]
        finally:
            for client in clients:
                client.close()

    def attempt_log(self, client: httpx.Client, delivery_id: int) -> dict[str, Any]:
        data: dict[str, Any] = ok(client.get(f"/v1/deliveries/{delivery_id}"))
        return data


def new_tenant(base_url: str) -> Tenant:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        tenant = ok(
            client.post("/v1/tenants", json={"name": f"chaos-{secrets.token_hex(3)}"}, headers=admin), 201
        )
        key = ok(client.post(f"/v1/tenants/{tenant['id']}/keys", headers=admin), 201)
    return Tenant(base_url, {"Authorization": f"Bearer {key['key']}"}, tenant["id"])


# --- the database ----------------------------------------------------------------------------------------


def sqlite_fetch(path: Path, query: str, *args: Any) -> list[Any]:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return list(conn.execute(query, args).fetchall())
    finally:
        conn.close()


STATES_SQL = "SELECT status, count(*) FROM deliveries GROUP BY status"
LEASED_SQL = (
    "SELECT e.id FROM deliveries d JOIN events e ON e.seq = d.event_seq"
    " WHERE d.leased_by = {param} AND d.status = 'pending'"
)


@dataclass
class Db:
    """The queue as the test sees it, on either backend."""

    url: str | None = None  # PostgreSQL
    path: Path | None = None  # SQLite

    def fetch(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.path is not None:
            return sqlite_fetch(self.path, query.replace("$1", "?"), *args)
        assert self.url is not None
        return [tuple(r) for r in pg_fetch(self.url, query, *args)]

    def states(self) -> dict[str, int]:
        return {status: n for status, n in self.fetch(STATES_SQL)}

    def leased_by(self, worker_id: str) -> set[str]:
        return {r[0] for r in self.fetch(LEASED_SQL.format(param="$1"), worker_id)}

    def leased_rows(self) -> int:
        return int(self.fetch("SELECT count(*) FROM deliveries WHERE leased_by IS NOT NULL")[0][0])


# --- reporting -------------------------------------------------------------------------------------------


@dataclass
class Report:
    path: Path
    long_mode: bool

    def write(
        self, scenario: str, accepted: set[str], receiver: Receiver, *, db: Db | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Print and append one JSON line: accepted / delivered / lost / duplicated, and the extras."""
        receiver.sync()
        delivered = accepted & receiver.ok_ids()
        duplicates = {i: n for i, n in receiver.duplicates().items() if i in accepted}
        line: dict[str, Any] = {
            "scenario": scenario,
            "mode": "long" if self.long_mode else "ci",
            "accepted": len(accepted),
            "delivered": len(delivered),
            "lost": len(accepted - delivered),
            "duplicated": sum(duplicates.values()),
            "duplicated_events": len(duplicates),
            "requests": sum(receiver.requests_for(i) for i in accepted),
        }
        if db is not None:
            line["db_states"] = db.states()
        line.update(extra)
        print(f"\nCHAOS {json.dumps(line, sort_keys=False)}")
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        return line
