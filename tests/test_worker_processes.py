"""The dispatcher as real processes: `hookline api` / `hookline worker` / `hookline serve` subprocesses,
a real PostgreSQL (or SQLite for `serve`), and a real HTTP receiver on loopback.

    1. a SIGKILLed worker loses nothing: another worker completes its deliveries once the lease ends;
    2. three workers on one PostgreSQL deliver N events exactly once;
    3. SIGTERM drains: the worker exits 0 in time and hands back the leases of unsent work;
    4. `hookline serve` on SQLite delivers signed events and, after a SIGKILL and a restart, every one.

Each PostgreSQL test module run gets its own database (random name), migrated with `hookline migrate` and
dropped WITH (FORCE) at the end. With CI=true PostgreSQL is mandatory; elsewhere those tests skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from tests.chaos import procs as chaos
from tests.chaos.procs import free_port
from tests.conftest import throwaway_pg_database
from tests.pg import pg_fetch

HOOKLINE = Path(sys.executable).parent / "hookline"
ADMIN_KEY = chaos.ADMIN_KEY
EVENT_TYPE = "message.incoming"

T = TypeVar("T")


# --- small utilities -------------------------------------------------------------------------------------
# The chaos suite's helpers, with this module's faster polling.


def wait_for(check: Callable[[], T], timeout: float, what: str, diag: Callable[[], str] = str) -> T:
    return chaos.wait_for(check, timeout, what, diag, interval=0.05)


def base_env(**settings: str) -> dict[str, str]:
    return chaos.base_env(**{"HOOKLINE_POLL_INTERVAL": "100ms", **settings})


# --- the receiver: aiohttp on loopback, in a thread with its own event loop -----------------------------


@dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers 200 to POST /hook after ``delay`` seconds; records every request when it arrives."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self._received.append(
                Received(request.headers.get("webhook-id", ""), dict(request.headers), body)
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(text="ok")

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.received()]

    def counts(self) -> Counter[str]:
        return Counter(self.ids())

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def make_receiver() -> Iterator[Callable[[float], Receiver]]:
    started: list[Receiver] = []

    def make(delay: float = 0.0) -> Receiver:
        receiver = Receiver(delay).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


# --- hookline processes ----------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def lines(self) -> list[str]:
        try:
            return self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def tail(self, n: int = 25) -> str:
        state = "running" if self.popen.poll() is None else f"exited {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}) ---\n" + "\n".join(self.lines()[-n:])

    def worker_id(self) -> str | None:
        """The id the worker stamps on its leases, from its 'worker started' log line."""
        for line in self.lines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "worker started":
                return str(entry["worker_id"])
        return None

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)


@dataclass
class Processes:
    """Every hookline process a test starts; all are SIGKILLed (by pid) at teardown."""

    directory: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str], cwd: Path | None = None) -> Proc:
        log = self.directory / f"{len(self.started):02d}-{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(HOOKLINE), *args],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def diag(self) -> str:
        return "\n".join(p.tail() for p in self.started)

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.popen.poll() is None:
                proc.popen.kill()
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(10)


def start_workers(procs: Processes, names: list[str], env: dict[str, str]) -> list[Proc]:
    """Start worker processes together; return once each has logged its start (and id)."""
    workers = [procs.start(name, "worker", env=env) for name in names]

    def started(worker: Proc) -> Callable[[], bool]:
        return lambda: worker.worker_id() is not None or worker.popen.poll() is not None

    for worker in workers:
        wait_for(started(worker), 30, f"{worker.name} to start", procs.diag)
        assert worker.popen.poll() is None, procs.diag()
    return workers


def start_worker(procs: Processes, name: str, env: dict[str, str]) -> Proc:
    return start_workers(procs, [name], env)[0]


def wait_healthy(client: httpx.Client, proc: Proc, procs: Processes) -> None:
    def healthy() -> bool:
        assert proc.popen.poll() is None, f"{proc.name} exited early\n{procs.diag()}"
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, 30, f"{proc.name} to answer /health", procs.diag)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.kill_all()


# --- the API, through HTTP -------------------------------------------------------------------------------


def ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json()["data"]


@dataclass
class Tenant:
    client: httpx.Client
    auth: dict[str, str]

    def webhook(self, url: str) -> dict[str, Any]:
        body = {"url": url, "events": [EVENT_TYPE]}
        data: dict[str, Any] = ok(self.client.post("/v1/webhooks", json=body, headers=self.auth), 201)
        return data

    def post_event(self, n: int = 0) -> str:
        body = {"event": EVENT_TYPE, "data": {"messageId": f"msg_{n}", "from": "966501234567"}}
        data = ok(self.client.post("/v1/events", json=body, headers=self.auth), 202)
        assert data["deliveries"] == 1, data
        event_id: str = data["id"]
        return event_id

    def post_events(self, count: int) -> list[str]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(self.post_event, range(count)))

    def deliveries(self, hook_id: int, status: str | None = None) -> list[dict[str, Any]]:
        """Every delivery of a webhook, through the paginated deliveries API."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 250}
        if status:
            params["status"] = status
        while True:
            page = ok(self.client.get(f"/v1/webhooks/{hook_id}/deliveries", params=params, headers=self.auth))
            items.extend(page["items"])
            if not page["next_cursor"]:
                return items
            params["cursor"] = page["next_cursor"]

    def event_statuses(self, event_id: str) -> list[str]:
        event = ok(self.client.get(f"/v1/events/{event_id}", headers=self.auth))
        return [d["status"] for d in event["delivery_status"]]


def new_tenant(client: httpx.Client) -> Tenant:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    tenant = ok(client.post("/v1/tenants", json={"name": f"t-{secrets.token_hex(3)}"}, headers=admin), 201)
    key = ok(client.post(f"/v1/tenants/{tenant['id']}/keys", headers=admin), 201)
    return Tenant(client, {"Authorization": f"Bearer {key['key']}"})


# --- PostgreSQL: one throwaway database for the module, one `hookline api` in front of it ---------------


@pytest.fixture(scope="module")
def pg_db() -> Iterator[str]:
    with throwaway_pg_database("hookline_procs") as url:
        migrated = subprocess.run(
            [str(HOOKLINE), "migrate"],
            env=base_env(HOOKLINE_DATABASE_URL=url),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr.decode(errors="replace")
        yield url


@dataclass
class PgStack:
    url: str
    client: httpx.Client
    procs: Processes

    def env(self, **settings: str) -> dict[str, str]:
        return base_env(HOOKLINE_DATABASE_URL=self.url, **settings)


@pytest.fixture(scope="module")
def pg_api(pg_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Processes]]:
    api_procs = Processes(tmp_path_factory.mktemp("api"))
    try:
        port = free_port()
        api = api_procs.start(
            "api", "api", env=base_env(HOOKLINE_DATABASE_URL=pg_db, HOOKLINE_PORT=str(port))
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            wait_healthy(client, api, api_procs)
            yield client, api_procs
    finally:
        api_procs.kill_all()


@pytest.fixture
def pg(pg_db: str, pg_api: tuple[httpx.Client, Processes], procs: Processes) -> PgStack:
    client, api_procs = pg_api
    assert api_procs.started[0].popen.poll() is None, api_procs.diag()
    return PgStack(pg_db, client, procs)


def db_states(url: str, hook_id: int) -> dict[str, int]:
    rows = pg_fetch(
        url, "SELECT status, count(*) AS n FROM deliveries WHERE endpoint_id = $1 GROUP BY status", hook_id
    )
    return {r["status"]: r["n"] for r in rows}


def leased_event_ids(url: str, worker_id: str) -> set[str]:
    rows = pg_fetch(
        url,
        "SELECT e.id FROM deliveries d JOIN events e ON e.seq = d.event_seq"
        " WHERE d.leased_by = $1 AND d.status = 'pending'",
        worker_id,
    )
    return {r["id"] for r in rows}


# --- 1. SIGKILL: nothing lost --------------------------------------------------------------------------


def test_sigkilled_worker_loses_nothing(pg: PgStack, make_receiver: Callable[[float], Receiver]) -> None:
    receiver = make_receiver(0.5)
    tenant = new_tenant(pg.client)
    hook = tenant.webhook(receiver.url)
    cap = 10
    env = pg.env(
        HOOKLINE_DELIVERY_TIMEOUT="1s",
        HOOKLINE_LEASE="2s",
        HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT=str(cap),
    )
    worker_a = start_worker(pg.procs, "worker-a", env)
    posted = tenant.post_events(50)
    assert len(set(posted)) == 50

    # The first wave has been answered and the second is in flight: work is half done.
    wait_for(lambda: len(set(receiver.ids())) >= cap + 5, 30, "some deliveries", pg.procs.diag)
    worker_a.signal(signal.SIGKILL)
    worker_a.popen.wait(10)
    arrived_before = set(receiver.ids())
    assert len(arrived_before) < len(posted), "everything arrived before the kill; the test proves nothing"
    worker_a_id = worker_a.worker_id()
    assert worker_a_id
    held_by_a = leased_event_ids(pg.url, worker_a_id)
    assert held_by_a, "the killed worker held no lease: nothing was in flight"

    start_worker(pg.procs, "worker-b", env)

    def all_done() -> bool:
        return set(receiver.ids()) >= set(posted) and db_states(pg.url, hook["id"]) == {"succeeded": 50}

    wait_for(
        all_done,
        45,
        "every event to arrive and succeed",
        lambda: (
            f"missing={len(set(posted) - set(receiver.ids()))} "
            f"states={db_states(pg.url, hook['id'])}\n{pg.procs.diag()}"
        ),
    )

    counts = receiver.counts()
    duplicates = {event_id for event_id, n in counts.items() if n > 1}
    print(
        f"\nSIGKILL: {len(posted)} events, {sum(counts.values())} requests, "
        f"{len(duplicates)} duplicated ids, {len(arrived_before)} arrived before the kill, "
        f"{len(held_by_a)} leased by the killed worker"
    )
    assert set(counts) == set(posted)  # nothing lost, nothing foreign
    assert max(counts.values()) <= 2, counts.most_common(3)
    # A duplicate can only be a send whose result the killed worker never recorded.
    assert duplicates <= held_by_a, duplicates - held_by_a
    assert len(duplicates) <= len(held_by_a)

    deliveries = tenant.deliveries(hook["id"])
    assert len(deliveries) == 50
    assert {d["status"] for d in deliveries} == {"succeeded"}
    assert {d["event_id"] for d in deliveries} == set(posted)
    assert not pg_fetch(
        pg.url, "SELECT id FROM deliveries WHERE endpoint_id = $1 AND leased_by IS NOT NULL", hook["id"]
    )


# --- 2. Three workers, no duplicate ----------------------------------------------------------------------


def test_three_workers_deliver_each_event_exactly_once(
    pg: PgStack, make_receiver: Callable[[float], Receiver]
) -> None:
    receiver = make_receiver(0.0)
    tenant = new_tenant(pg.client)
    hook = tenant.webhook(receiver.url)
    env = pg.env()
    workers = start_workers(pg.procs, [f"worker-{i}" for i in range(3)], env)
    assert len({w.worker_id() for w in workers}) == 3

    n = 300
    posted = tenant.post_events(n)
    assert len(set(posted)) == n

    wait_for(
        lambda: len(set(receiver.ids())) >= n and db_states(pg.url, hook["id"]) == {"succeeded": n},
        60,
        f"{n} deliveries",
        lambda: (
            f"arrived={len(set(receiver.ids()))} states={db_states(pg.url, hook['id'])}\n" + pg.procs.diag()
        ),
    )
    counts = receiver.counts()
    assert set(counts) == set(posted)
    duplicates = {event_id: k for event_id, k in counts.items() if k > 1}
    assert not duplicates, (
        f"{len(duplicates)} events delivered more than once: {list(duplicates.items())[:5]}"
    )
    assert all(w.popen.poll() is None for w in workers), pg.procs.diag()

    deliveries = tenant.deliveries(hook["id"], status="succeeded")
    assert len(deliveries) == n
    assert all(d["attempts"] == 1 for d in deliveries)
    rows = pg_fetch(
        pg.url,
        "SELECT a.delivery_id, count(*) AS n FROM attempts a WHERE a.endpoint_id = $1 GROUP BY a.delivery_id",
        hook["id"],
    )
    assert len(rows) == n and all(r["n"] == 1 for r in rows)


# --- 3. SIGTERM drains ------------------------------------------------------------------------------------


def test_sigterm_drains_and_leaves_no_lease(pg: PgStack, make_receiver: Callable[[float], Receiver]) -> None:
    """SIGTERM while deliveries are in flight: they finish and are recorded within the drain timeout, no
    lease is left behind, and the next worker takes the rest at once (not after the 60 s lease)."""
    receiver = make_receiver(0.3)
    tenant = new_tenant(pg.client)
    hook = tenant.webhook(receiver.url)
    drain_timeout = 5.0
    env = pg.env(
        HOOKLINE_LEASE="60s",
        HOOKLINE_MAX_IN_FLIGHT_PER_ENDPOINT="2",
        HOOKLINE_DRAIN_TIMEOUT=f"{drain_timeout:g}s",
    )
    # Posted before the worker starts: the worker claims them ahead (the endpoint's cap plus a round), and
    # sends 2 at a time (the endpoint's cap); the others wait in its run queue, leased.
    posted = tenant.post_events(40)
    worker = start_worker(pg.procs, "worker-drained", env)
    worker_id = worker.worker_id()
    assert worker_id

    wait_for(lambda: len(receiver.ids()) >= 3, 30, "the first deliveries", pg.procs.diag)
    held = leased_event_ids(pg.url, worker_id)
    assert len(held) > 2, f"expected deliveries claimed ahead; the worker holds {len(held)} leases"

    stopped_at = time.monotonic()
    worker.signal(signal.SIGTERM)
    try:
        code = worker.popen.wait(drain_timeout + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within {drain_timeout + 10:g} s of SIGTERM\n{pg.procs.diag()}")
    assert code == 0, pg.procs.diag()
    print(f"\nSIGTERM: exited 0 after {time.monotonic() - stopped_at:.2f} s holding {len(held)} leases")
    assert "worker stopped" in worker.log.read_text(), pg.procs.diag()

    # A clean stop leaves no lease behind: what it sent is recorded, what it claimed ahead and did not
    # send is handed back.
    assert not pg_fetch(pg.url, "SELECT id FROM deliveries WHERE leased_by = $1", worker_id)
    sent_before = receiver.counts()
    assert len(sent_before) < len(posted)

    start_worker(pg.procs, "worker-next", env)
    wait_for(
        lambda: set(receiver.ids()) >= set(posted) and db_states(pg.url, hook["id"]) == {"succeeded": 40},
        20,  # far less than the 60 s lease: the leases of unsent work were released
        "every event after the restart",
        lambda: (
            f"missing={len(set(posted) - set(receiver.ids()))} "
            f"states={db_states(pg.url, hook['id'])}\n{pg.procs.diag()}"
        ),
    )
    counts = receiver.counts()
    assert set(counts) == set(posted)
    # In-flight sends finished and were recorded during the drain: nothing is sent twice.
    assert max(counts.values()) == 1, counts.most_common(3)
    assert {d["status"] for d in tenant.deliveries(hook["id"])} == {"succeeded"}


# --- 4. `hookline serve` on SQLite ------------------------------------------------------------------------


def test_serve_on_sqlite_signs_and_survives_sigkill(
    procs: Processes, tmp_path: Path, make_receiver: Callable[[float], Receiver]
) -> None:
    home = tmp_path / "serve-home"
    home.mkdir()
    receiver = make_receiver(0.0)
    settings = {"HOOKLINE_DELIVERY_TIMEOUT": "1s", "HOOKLINE_LEASE": "2s"}

    with contextlib.ExitStack() as clients:

        def start_serve(name: str) -> tuple[Proc, httpx.Client]:
            port = free_port()
            serve = procs.start(name, "serve", env=base_env(HOOKLINE_PORT=str(port), **settings), cwd=home)
            client = clients.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15))
            wait_healthy(client, serve, procs)
            return serve, client

        serve, client = start_serve("serve-1")
        assert (home / "hookline-data" / "hookline.db").exists()
        tenant = new_tenant(client)
        hook = tenant.webhook(receiver.url)
        assert hook["secret"].startswith("whsec_")

        first = tenant.post_event()
        wait_for(lambda: first in receiver.ids(), 10, "the first event", procs.diag)
        request = next(r for r in receiver.received() if r.webhook_id == first)
        payload = Webhook(hook["secret"]).verify(request.body, request.headers)
        assert payload["id"] == first and payload["event"] == EVENT_TYPE
        assert payload["data"] == {"messageId": "msg_0", "from": "966501234567"}
        wait_for(lambda: tenant.event_statuses(first) == ["succeeded"], 10, "the first success", procs.diag)

        # Now a slow receiver: kill -9 the process while deliveries are in flight and queued.
        receiver.delay = 0.5
        posted = tenant.post_events(20)
        wait_for(lambda: set(receiver.ids()) & set(posted), 20, "pending deliveries in flight", procs.diag)
        serve.signal(signal.SIGKILL)
        serve.popen.wait(10)
        assert set(posted) - set(receiver.ids()), (
            "everything arrived before the kill; the test proves nothing"
        )

        serve, tenant.client = start_serve("serve-2")
        wait_for(lambda: set(receiver.ids()) >= set(posted), 30, "every event after the restart", procs.diag)
        wait_for(
            lambda: all(tenant.event_statuses(e) == ["succeeded"] for e in posted),
            20,
            "every delivery to succeed",
            procs.diag,
        )
        counts = receiver.counts()
        print(f"\nserve SIGKILL: {len(posted)} events, {sum(counts[e] for e in posted)} requests")
        assert set(counts) == {first, *posted}
        for event_id in posted:
            request = next(r for r in receiver.received() if r.webhook_id == event_id)
            assert Webhook(hook["secret"]).verify(request.body, request.headers)["id"] == event_id
