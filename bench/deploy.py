"""A hookline deployment on loopback, as an operator would run it.

* PostgreSQL: a throwaway database, ``hookline migrate``, then ``hookline api`` and ``hookline worker``
  (``workers=2``: two worker processes sharing the queue, as an operator scales out).
* SQLite: ``hookline serve`` (API + worker in one process) on a file in a temporary directory; for
  "API only" phases ``hookline api`` on the same file.

``stop_worker()`` / ``start_worker()`` switch between "API only" and "API + worker" without losing data.
Each start of a sending process is confirmed by a warm-up event that must reach the sink.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench.api import ADMIN_KEY, Endpoint, HooklineApi, Sink
from bench.pg import Databases
from bench.procs import Proc, Processes, free_port, wait_until
from hookline.sealing import generate_key

TENANT = "bench"
SECRET_KEY = generate_key()  # HOOKLINE_SECRET_KEY: every process of a run shares it
BACKENDS = ("sqlite", "postgresql")


class Deployment:
    def __init__(
        self,
        backend: str,
        label: str,
        procs: Processes,
        dbs: Databases,
        sink: Sink,
        workdir: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        assert backend in BACKENDS
        assert workers == 1 or backend == "postgresql", "SQLite runs one process (serve)"
        self.backend = backend
        self.label = label
        self.procs = procs
        self.dbs = dbs
        self.sink = sink
        self.dir = workdir / f"{label}-{backend}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.api = HooklineApi(self.port)
        self.extra_env = env or {}
        self.database_url = ""
        self.api_proc: Proc | None = None
        self.worker_proc: Proc | None = None  # PostgreSQL's worker, or SQLite's serve
        self.workers = workers
        self.more_workers: list[Proc] = []  # PostgreSQL's second, third, ... worker
        self.example: dict[str, Any] = {}
        self.endpoints: dict[str, list[Endpoint]] = {}
        self.warmup_events = 20

    # --- processes -------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            "HOOKLINE_ALLOW_HTTP": "true",
            "HOOKLINE_ALLOWED_NETWORKS": "127.0.0.0/8",
            "HOOKLINE_ADMIN_KEY": ADMIN_KEY,
            "HOOKLINE_SECRET_KEY": SECRET_KEY,
            "HOOKLINE_LOG_LEVEL": "warning",
            "HOOKLINE_PORT": str(self.port),
            "HOOKLINE_DATABASE_URL": self.database_url,
            "HOOKLINE_DATA_DIR": str(self.dir),
            "HOOKLINE_DRAIN_TIMEOUT": "2s",  # stopping is not measured; do not wait for hanging requests
            **self.extra_env,
        }

    def _hookline(self, role: str, name: str = "") -> Proc:
        name = f"{self.label}-{self.backend}-{name or role}"
        return self.procs.start(name, [sys.executable, "-m", "hookline.cli", role], env=self.env())

    def _start_more_workers(self) -> None:
        self.more_workers = [self._hookline("worker", f"worker{n}") for n in range(2, self.workers + 1)]

    def _start_api(self, role: str) -> Proc:
        proc = self._hookline(role)
        wait_until(self.api.healthy, 60, f"hookline {role} on port {self.port}", [proc])
        return proc

    def start(self) -> Deployment:
        if self.backend == "postgresql":
            self.database_url = self.dbs.create(self.label)
            migrate = self._hookline("migrate")
            if migrate.popen.wait(120) != 0:
                raise RuntimeError(f"hookline migrate failed:\n{migrate.tail()}")
            self.procs.stop(migrate)
            self.worker_proc = self._hookline("worker")  # starts while the API does
            self._start_more_workers()
            self.api_proc = self._start_api("api")
        else:
            self.database_url = f"sqlite:///{self.dir / 'hookline.db'}"
            self.worker_proc = self._start_api("serve")
        self.api.create_tenant(TENANT)
        self.example = self.api.example()
        self.add_endpoints("warm", 1)
        self.warm_up()
        return self

    def hookline_procs(self) -> dict[str, Proc]:
        found = {}
        if self.api_proc is not None:
            found["api"] = self.api_proc
        if self.worker_proc is not None:
            found["worker" if self.backend == "postgresql" else "serve"] = self.worker_proc
        for n, proc in enumerate(self.more_workers, start=2):
            found[f"worker{n}"] = proc
        return found

    def sending_procs(self) -> list[Proc]:
        """The processes that deliver: every worker (PostgreSQL) or serve (SQLite)."""
        return [p for p in (self.worker_proc, *self.more_workers) if p is not None]

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.hookline_procs().values())

    def reset_peak_rss(self) -> None:
        for proc in self.hookline_procs().values():
            proc.reset_peak_rss()

    def stop_worker(self) -> None:
        """From here on only the API runs (SQLite: ``serve`` is replaced by ``api`` on the same file)."""
        for proc in self.sending_procs():
            self.procs.stop(proc)
        self.worker_proc = None
        self.more_workers = []
        if self.backend == "sqlite":
            self.api_proc = self._start_api("api")

    def start_worker(self, warm_up: bool = True) -> Proc:
        if self.backend == "postgresql":
            self.worker_proc = self._hookline("worker")
            self._start_more_workers()
        else:
            if self.api_proc is not None:
                self.procs.stop(self.api_proc)
                self.api_proc = None
            self.worker_proc = self._start_api("serve")
        if warm_up:
            self.warm_up()
        return self.worker_proc

    def warm_up(self) -> None:
        """Post a few events and wait until the sink has them all: the worker is up and its pools warm."""
        events = self.warmup_events
        before = self.sink.stats()["count"]
        for _ in range(events):
            self.api.post_event(TENANT, self.example, channel="warm0")
        procs = [*self.sending_procs(), *([self.api_proc] if self.api_proc is not None else [])]
        wait_until(lambda: self.sink.stats()["count"] >= before + events, 60, "warm-up deliveries", procs)
        time.sleep(0.2)

    # --- tenants and endpoints ---------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str) -> None:
        """Another tenant beside ``TENANT`` (the admin key acts for it with ``tenant_id``)."""
        self.api.create_tenant(tenant_id)

    def add_endpoints(
        self,
        prefix: str,
        count: int,
        kinds: list[str] | None = None,
        tenant: str = TENANT,
        **options: Any,
    ) -> None:
        """``count`` endpoints of ``tenant`` with channels ``{prefix}0..`` (all on one channel ``{prefix}0``
        when ``options`` holds ``shared_channel=True``); ``kinds`` picks /ok, /fail or /hang per endpoint;
        other ``options`` go into the webhook's JSON (``rate_limit``, ``max_in_flight``, ...)."""
        shared = options.pop("shared_channel", False)
        made = []
        for i in range(count):
            kind = kinds[i] if kinds else "ok"
            channel = f"{prefix}0" if shared else f"{prefix}{i}"
            url = self.sink.url(kind, f"{self.label}-{prefix}{i}")
            made.append(self.api.create_endpoint(tenant, url, channel=channel, **options))
        self.endpoints[prefix] = made

    def sink_path(self, prefix: str, index: int, kind: str = "ok") -> str:
        """The sink path endpoint ``{prefix}{index}`` posts to (see ``add_endpoints``)."""
        return self.sink.path(kind, f"{self.label}-{prefix}{index}")

    def loadgen_args(self, prefix: str, channels: int, tenant: str = TENANT) -> list[str]:
        import orjson

        return [
            "--api",
            self.api.base,
            "--key",
            ADMIN_KEY,
            "--tenant",
            tenant,
            "--data",
            orjson.dumps(self.example).decode(),
            "--channels",
            str(channels),
            "--channel-prefix",
            prefix,
        ]

    # --- teardown --------------------------------------------------------------------------------------

    def close(self) -> None:
        for proc in (*self.sending_procs(), self.api_proc):
            if proc is not None:
                self.procs.stop(proc)
        self.worker_proc = self.api_proc = None
        self.more_workers = []
        if self.backend == "postgresql" and self.database_url:
            self.dbs.drop(self.database_url)
            self.database_url = ""  # closed: a second close drops nothing
