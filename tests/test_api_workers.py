"""``hookline api --workers N`` (HOOKLINE_API_WORKERS): N API processes on one socket, stopped together."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import httpx

from tests.conftest import SECRET_KEY
from tests.test_cli import (
    STOP_DEADLINE,
    Processes,
    clean_env,
    cli_pg_url,  # noqa: F401  (fixture)
    data,
    free_port,
    processes,  # noqa: F401  (fixture)
    run,
    stop,
    wait_healthy,
)


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and "spawn_main" in (entry / "cmdline").read_text():
                found.add(int(entry.name))
    return found


def test_several_api_processes_share_the_port_and_stop_together(
    tmp_path: Path,
    processes: Processes,  # noqa: F811
    cli_pg_url: str,  # noqa: F811
) -> None:
    admin_key = "hk_admin_" + secrets.token_hex(8)
    env = clean_env(
        HOOKLINE_DATABASE_URL=cli_pg_url,
        HOOKLINE_ADMIN_KEY=admin_key,
        HOOKLINE_API_WORKERS="2",
        HOOKLINE_SECRET_KEY=SECRET_KEY,
    )
    assert run(["migrate"], cwd=tmp_path, env=env).returncode == 0
    port = free_port()
    proc, log = processes.start(["api", "--port", str(port)], cwd=tmp_path, env=env, name="workers")
    wait_healthy(proc, log, f"http://127.0.0.1:{port}")
    workers = children(proc.pid)
    assert len(workers) == 2, log.read_text()

    admin = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        tenant = data(http.post("/v1/tenants", json={"name": "Acme"}, headers=admin), 201)
        example = data(http.get("/v1/event-types/message.sent", headers=admin), 200)["example"]
        body = {"event": "message.sent", "data": example, "tenant_id": tenant["id"]}
        for n in range(20):  # fresh connections: the kernel hands them to either process
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as one:
                data(one.post("/v1/events", json={**body, "id": f"e{n}"}, headers=admin), 202)
        listed = data(http.get(f"/v1/events?limit=100&tenant_id={tenant['id']}", headers=admin), 200)
        assert len(listed["items"]) == 20

    assert stop(proc) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    deadline = time.monotonic() + STOP_DEADLINE
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_when_one_api_process_dies_the_others_stop_and_the_command_fails(
    tmp_path: Path,
    processes: Processes,  # noqa: F811
    cli_pg_url: str,  # noqa: F811
) -> None:
    env = clean_env(
        HOOKLINE_DATABASE_URL=cli_pg_url,
        HOOKLINE_ADMIN_KEY="hk_admin_" + secrets.token_hex(8),
        HOOKLINE_SECRET_KEY=SECRET_KEY,
    )
    assert run(["migrate"], cwd=tmp_path, env=env).returncode == 0
    port = free_port()
    proc, log = processes.start(
        ["api", "--port", str(port), "--workers", "2"], cwd=tmp_path, env=env, name="w"
    )
    wait_healthy(proc, log, f"http://127.0.0.1:{port}")
    first, second = sorted(children(proc.pid))
    os.kill(first, signal.SIGKILL)
    assert proc.wait(timeout=STOP_DEADLINE) == 1
    assert not Path(f"/proc/{second}").exists() or "Z" in Path(f"/proc/{second}/stat").read_text().split()[2]


def test_several_api_processes_need_postgresql(tmp_path: Path) -> None:
    env = clean_env(HOOKLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'hookline.db'}")
    result = run(["api", "--workers", "2", "--port", str(free_port())], cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "HOOKLINE_API_WORKERS" in result.stderr and "PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_setting_is_checked(tmp_path: Path) -> None:
    result = run(["api"], cwd=tmp_path, env=clean_env(HOOKLINE_API_WORKERS="0"))
    assert result.returncode == 2
    assert "HOOKLINE_API_WORKERS" in result.stderr
