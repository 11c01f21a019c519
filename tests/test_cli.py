"""The ``hookline`` command as a user runs it: real processes, real HTTP, real files."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.conftest import SECRET_KEY, throwaway_pg_database

HOOKLINE = Path(sys.executable).parent / "hookline"
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any HOOKLINE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HOOKLINE_")}
    env.update(extra)
    return env


class Processes:
    """Starts hookline processes and makes sure none outlives the test."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[subprocess.Popen[bytes], list[IO[bytes]]]] = []

    def start(
        self, args: list[str], *, cwd: Path, env: dict[str, str], name: str
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Returns the process and the file its stderr goes to (a file: a full pipe would block it)."""
        log = self.logs / f"{name}.stderr"
        out = (self.logs / f"{name}.stdout").open("wb")
        err = log.open("wb")
        proc = subprocess.Popen(
            [str(HOOKLINE), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        self.started.append((proc, [out, err]))
        return proc, log

    def close(self) -> None:
        for proc, files in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            for file in files:
                file.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    try:
        yield procs
    finally:
        procs.close()


def run(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOOKLINE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def wait_healthy(proc: subprocess.Popen[bytes], log: Path, base_url: str) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hookline exited with {proc.returncode} before answering:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling the subprocess, bounded by the deadline
    pytest.fail(f"hookline did not answer /health within {START_DEADLINE}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=STOP_DEADLINE)


def printed_admin_keys(log: Path) -> list[str]:
    return [line.strip() for line in log.read_text().splitlines() if line.startswith("  hk_admin_")]


def data(response: httpx.Response, code: int) -> Any:
    assert response.status_code == code, response.text
    return response.json()["data"]


def test_hookline_script_is_installed() -> None:
    assert HOOKLINE.exists(), f"no hookline script next to {sys.executable}"


def test_serve_from_an_empty_directory(tmp_path: Path, processes: Processes) -> None:
    """The README's path: first start generates and prints an admin key; the full flow works over HTTP;
    SIGTERM stops cleanly; a second start reuses the stored key."""
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env()

    proc, log = processes.start(["serve", "--port", str(port)], cwd=workdir, env=env, name="first")
    wait_healthy(proc, log, base)
    [admin_key] = printed_admin_keys(log)
    admin = {"Authorization": f"Bearer {admin_key}"}
    assert (workdir / "hookline-data" / "hookline.db").is_file()

    with httpx.Client(base_url=base, timeout=10) as http:
        tenant = data(http.post("/v1/tenants", json={"name": "Acme"}, headers=admin), 201)
        key = data(http.post(f"/v1/tenants/{tenant['id']}/keys", headers=admin), 201)["key"]
        auth = {"Authorization": f"Bearer {key}"}
        # The serve process also runs the delivery worker: a .invalid host (RFC 6761) never resolves, so
        # no request leaves this machine and the delivery stays pending (its first retry is minutes away).
        hook = data(
            http.post(
                "/v1/webhooks",
                json={"url": "https://hookline-cli-test.invalid/hook", "events": ["message.received"]},
                headers=auth,
            ),
            201,
        )
        example = data(http.get("/v1/event-types/message.received", headers=auth), 200)["example"]
        accepted = data(
            http.post("/v1/events", json={"event": "message.received", "data": example}, headers=auth), 202
        )
        assert accepted["deliveries"] == 1
        event = data(http.get(f"/v1/events/{accepted['id']}", headers=auth), 200)
        [delivery] = event["delivery_status"]
        assert delivery["webhook_id"] == hook["id"]
        assert delivery["status"] == "pending"
        assert event["data"] == example

    assert stop(proc) == 0, log.read_text()
    assert "Traceback" not in log.read_text()

    again, log2 = processes.start(["serve", "--port", str(port)], cwd=workdir, env=env, name="second")
    wait_healthy(again, log2, base)
    assert printed_admin_keys(log2) == []
    assert "hk_admin_" not in log2.read_text()
    tenants = httpx.get(f"{base}/v1/tenants", headers=admin, timeout=10)
    assert tenants.status_code == 200, tenants.text
    assert [t["id"] for t in tenants.json()["data"]["items"]] == [tenant["id"]]
    assert stop(again) == 0, log2.read_text()


def test_serve_with_admin_key_from_environment_prints_no_key(tmp_path: Path, processes: Processes) -> None:
    port = free_port()
    chosen = "hk_admin_chosen_" + secrets.token_hex(8)
    proc, log = processes.start(
        ["serve", "--port", str(port)], cwd=tmp_path, env=clean_env(HOOKLINE_ADMIN_KEY=chosen), name="chosen"
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(proc, log, base)
    assert printed_admin_keys(log) == []
    response = httpx.get(f"{base}/v1/tenants", headers={"Authorization": f"Bearer {chosen}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert stop(proc) == 0, log.read_text()


def test_invalid_configuration_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run(
        ["serve", "--port", str(free_port())], cwd=tmp_path, env=clean_env(HOOKLINE_RETRY_SCHEDULE="bogus")
    )
    assert result.returncode == 2, result.stderr
    assert "HOOKLINE_RETRY_SCHEDULE" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "hookline-data").exists()


def test_invalid_database_url_flag_exits_2(tmp_path: Path) -> None:
    result = run(["migrate", "--database-url", "mysql://x"], cwd=tmp_path, env=clean_env())
    assert result.returncode == 2, result.stderr
    assert "HOOKLINE_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [["migrate"], ["api"], ["serve"], ["admin-key", "reset"]])
def test_unreachable_database_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    """Nothing listens on the port: the command says which database failed (password hidden), no traceback."""
    url = f"postgresql://hookline:s3cret-pw@127.0.0.1:{free_port()}/hookline"
    result = run(
        command, cwd=tmp_path, env=clean_env(HOOKLINE_DATABASE_URL=url, HOOKLINE_SECRET_KEY=SECRET_KEY)
    )
    assert result.returncode == 1, result.stderr
    assert "database error (postgresql://hookline:***@127.0.0.1:" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert "hk_admin_" not in result.stderr + result.stdout


@pytest.fixture
def cli_pg_url() -> Iterator[str]:
    """A throwaway, empty PostgreSQL database for this test only."""
    with throwaway_pg_database("hookline_test_cli") as url:
        yield url


def test_postgresql_api_needs_migrate_first(tmp_path: Path, processes: Processes, cli_pg_url: str) -> None:
    env = clean_env(
        HOOKLINE_DATABASE_URL=cli_pg_url,
        HOOKLINE_ADMIN_KEY="hk_admin_" + secrets.token_hex(8),
        HOOKLINE_SECRET_KEY=SECRET_KEY,
    )
    port = free_port()

    early = run(["api", "--port", str(port)], cwd=tmp_path, env=env)
    assert early.returncode == 2, early.stderr
    assert "hookline migrate" in early.stderr
    assert "Traceback" not in early.stderr + early.stdout

    migrated = run(["migrate"], cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "Traceback" not in migrated.stderr

    proc, log = processes.start(["api", "--port", str(port)], cwd=tmp_path, env=env, name="pg-api")
    wait_healthy(proc, log, f"http://127.0.0.1:{port}")
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["data"]
    assert health["database"] == "ok"
    assert stop(proc) == 0, log.read_text()
    assert not (tmp_path / "hookline-data").exists()


def test_migrate_twice_succeeds(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    env = clean_env(HOOKLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'db' / 'hookline.db'}")
    first = run(["migrate"], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    second = run(["migrate"], cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    assert (tmp_path / "db" / "hookline.db").is_file()


def test_migrate_prints_the_admin_key_it_creates_once(tmp_path: Path) -> None:
    env = clean_env(HOOKLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'hookline.db'}")
    first = run(["migrate"], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert len([line for line in first.stderr.splitlines() if line.startswith("  hk_admin_")]) == 1
    second = run(["migrate"], cwd=tmp_path, env=env)
    assert "hk_admin_" not in second.stderr + second.stdout


def test_a_worker_started_first_creates_no_admin_key_nobody_sees(
    tmp_path: Path, processes: Processes, cli_pg_url: str
) -> None:
    """Issue 9, finding 8: on a fresh PostgreSQL database, `worker` before `api` made the admin key and
    printed nothing; only a role that prints it may make it."""
    env = clean_env(HOOKLINE_DATABASE_URL=cli_pg_url, HOOKLINE_SECRET_KEY=SECRET_KEY)
    from hookline.store import migrate as migrations  # the schema without `hookline migrate`'s key
    from hookline.store.engine import Store

    async def upgrade() -> None:
        store = Store.from_url(cli_pg_url)
        try:
            await migrations.upgrade(store)
        finally:
            await store.close()

    import asyncio

    asyncio.run(upgrade())
    worker, worker_log = processes.start(["worker"], cwd=tmp_path, env=env, name="worker-first")
    deadline = time.monotonic() + START_DEADLINE
    while "worker started" not in worker_log.read_text() and time.monotonic() < deadline:
        assert worker.poll() is None, worker_log.read_text()
        time.sleep(0.1)
    assert "worker started" in worker_log.read_text()
    assert "hk_admin_" not in worker_log.read_text()
    port = free_port()
    api, api_log = processes.start(["api", "--port", str(port)], cwd=tmp_path, env=env, name="api-second")
    wait_healthy(api, api_log, f"http://127.0.0.1:{port}")
    [admin_key] = printed_admin_keys(api_log)
    tenants = httpx.get(
        f"http://127.0.0.1:{port}/v1/tenants", headers={"Authorization": f"Bearer {admin_key}"}, timeout=10
    )
    assert tenants.status_code == 200, tenants.text
    assert stop(api) == 0 and stop(worker) == 0


@pytest.mark.parametrize("command", [["serve"], ["api"]])
def test_a_port_in_use_is_one_line(tmp_path: Path, command: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = clean_env(HOOKLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'hookline.db'}")
        if command == ["api"]:
            assert run(["migrate"], cwd=tmp_path, env=env).returncode == 0
        result = run([*command, "--port", str(port)], cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    # One line and nothing else: the port is taken before the database is opened, so a first `serve`
    # on a busy port neither creates the database nor makes (and prints) an admin key.
    assert result.stderr.splitlines() == [
        f"hookline: cannot listen on 127.0.0.1:{port}: address already in use"
    ]
    assert result.stdout == ""
    if command == ["serve"]:
        assert not (tmp_path / "hookline.db").exists()


def test_an_sqlite_url_in_a_missing_directory_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "dir"
    env = clean_env(HOOKLINE_DATABASE_URL=f"sqlite:///{missing / 'x.db'}")
    for command in (["migrate"], ["serve", "--port", str(free_port())]):
        result = run(command, cwd=tmp_path, env=env)
        assert result.returncode == 1, result.stderr
        assert f"the directory of the SQLite database does not exist: {missing}" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "typo").exists()
    assert not (tmp_path / "hookline-data").exists()


def test_help_shows_the_environment_variables_and_version_exists(tmp_path: Path) -> None:
    shown = run(["serve", "--help"], cwd=tmp_path, env=clean_env())
    assert "[env: HOOKLINE_HOST]" in shown.stdout and "[env: HOOKLINE_DEV]" in shown.stdout, shown.stdout
    assert "[env: HOOKLINE_DATABASE_URL]" in shown.stdout and "--database-url URL" in shown.stdout
    top = run(["--help"], cwd=tmp_path, env=clean_env())
    assert "--version" in top.stdout
    assert all("<bool>" not in help_text for help_text in (shown.stdout, top.stdout)), top.stdout
    version = run(["--version"], cwd=tmp_path, env=clean_env())
    assert version.returncode == 0
    from hookline import __version__

    assert version.stdout.strip() == __version__


def test_dev_mode_allows_a_loopback_http_receiver_and_says_so(tmp_path: Path, processes: Processes) -> None:
    port = free_port()
    env = clean_env(HOOKLINE_ADMIN_KEY="hk_admin_" + secrets.token_hex(8))
    proc, log = processes.start(["serve", "--dev", "--port", str(port)], cwd=tmp_path, env=env, name="dev")
    base = f"http://127.0.0.1:{port}"
    wait_healthy(proc, log, base)
    [warning] = [line for line in log.read_text().splitlines() if "DEVELOPMENT MODE" in line]
    assert "http:// URLs and loopback receivers" in warning and "never use this in production" in warning
    assert '"level": "warning"' in warning
    admin = {"Authorization": f"Bearer {env['HOOKLINE_ADMIN_KEY']}"}
    with httpx.Client(base_url=base, timeout=10) as http:
        data(http.post("/v1/tenants", json={"name": "Acme", "id": "acme"}, headers=admin), 201)
        for url in ("http://localhost:9/hook", "http://127.0.0.1:9/hook"):
            body = {"url": url, "tenant_id": "acme"}
            data(http.post("/v1/webhooks", json=body, headers=admin), 201)
    assert stop(proc) == 0, log.read_text()
