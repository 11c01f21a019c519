"""Fixtures of the chaos suite (tests/chaos): its modes, processes, databases and report file.

CI mode (the default) runs every scenario with bounded sizes. The long mode, for release checks, scales
them up and adds the one-hour soak:

    pytest tests/chaos --chaos-long          # or: HOOKLINE_CHAOS_LONG=1 pytest tests/chaos

Each scenario appends one JSON line to ``<pytest basetemp>/chaos-results.jsonl`` (and prints it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.procs import HOOKLINE, Report, base_env, free_port
from tests.conftest import IN_CI, PG_SERVER_URL
from tests.pg import pg_exec

LONG_ENV = "HOOKLINE_CHAOS_LONG"
SCENARIO_TIMEOUT = 900
AS_POSTGRES = ("runuser", "-u", "postgres", "--")  # tests run as root, and initdb refuses root


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-long",
        action="store_true",
        default=False,
        help=f"run the chaos suite at release-check sizes, with the one-hour soak (or set {LONG_ENV}=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a chaos scenario: real processes, real faults (tests/chaos)")
    config.addinivalue_line("markers", "chaos_long: runs only in the chaos long mode (--chaos-long)")


def long_mode(config: pytest.Config) -> bool:
    flag = os.environ.get(LONG_ENV, "").lower() in ("1", "true", "yes")
    try:
        return flag or bool(config.getoption("--chaos-long"))
    except ValueError:  # the option was not registered (this conftest loaded after option parsing)
        return flag


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    is_long = long_mode(config)
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.chaos)
        if not item.get_closest_marker("timeout"):
            # Above the suite's 120 s default: each scenario polls with its own, longer deadlines.
            item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT))
        if item.get_closest_marker("chaos_long") and not is_long:
            item.add_marker(pytest.mark.skip(reason=f"long mode only: pass --chaos-long or set {LONG_ENV}=1"))


@pytest.fixture(scope="session", autouse=True)
def _sigterm_runs_teardown() -> Iterator[None]:
    """A SIGTERM (a CI timeout, `timeout`, a supervisor) interrupts the run like Ctrl-C, so that the
    teardowns still stop every process and the throwaway cluster."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def is_long(pytestconfig: pytest.Config) -> bool:
    return long_mode(pytestconfig)


@pytest.fixture(scope="session")
def report(is_long: bool, tmp_path_factory: pytest.TempPathFactory) -> Report:
    return Report(tmp_path_factory.getbasetemp() / "chaos-results.jsonl", is_long)


# --- PostgreSQL: a migrated template, and a fresh copy of it for each test -------------------------------


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (mandatory with CI=true)")
    pytest.skip(reason)


def migrate(url: str) -> None:
    done = subprocess.run(
        [str(HOOKLINE), "migrate"],
        env=base_env(HOOKLINE_DATABASE_URL=url),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def _database_url(server_url: str, name: str) -> str:
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"hookline_chaos_tmpl_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        pg_exec(PG_SERVER_URL, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        _skip_or_fail(f"PostgreSQL is not reachable at {PG_SERVER_URL}: {type(exc).__name__}: {exc}")
    try:
        migrate(_database_url(PG_SERVER_URL, name))
        yield name
    finally:
        pg_exec(PG_SERVER_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A migrated, empty database of its own on the shared server, dropped at the end."""
    name = f"hookline_chaos_{os.getpid()}_{secrets.token_hex(4)}"
    pg_exec(PG_SERVER_URL, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield _database_url(PG_SERVER_URL, name)
    finally:
        pg_exec(PG_SERVER_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- a throwaway PostgreSQL cluster that the test may stop and start --------------------------------------


def _pg_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


@dataclass
class Cluster:
    directory: Path
    port: int
    pg_ctl: str

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*AS_POSTGRES, self.pg_ctl, "-D", str(self.data), *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace") + self.log_tail()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-l", str(self.directory / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            lines = (self.directory / "server.log").read_text(errors="replace").splitlines()
            return "\n--- throwaway cluster log ---\n" + "\n".join(lines[-n:])
        return ""


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test alone (initdb in a temporary directory, trust auth, a free port),
    started; stopped and removed at the end whatever happens."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl or not shutil.which("runuser"):
        _skip_or_fail("initdb, pg_ctl or runuser is not available: cannot make a throwaway cluster")
    assert initdb and pg_ctl
    try:
        subprocess.run(["id", "postgres"], capture_output=True, check=True)
    except (subprocess.CalledProcessError, OSError):
        _skip_or_fail("no 'postgres' user to run a throwaway cluster as")
    # Not under pytest's basetemp: that is private to root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="hookline-chaos-pg-"))
    cluster = Cluster(directory, free_port(), pg_ctl)
    try:
        shutil.chown(directory, "postgres", "postgres")
        done = subprocess.run(
            [*AS_POSTGRES, initdb, "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "--no-sync"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(Exception):
                subprocess.run(
                    [*AS_POSTGRES, pg_ctl, "-D", str(cluster.data), "-m", "immediate", "-w", "stop"],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
        shutil.rmtree(directory, ignore_errors=True)
