"""HOOKLINE_SECRET_KEY as an operator meets it, with real `hookline` processes: PostgreSQL roles refuse to
start without it (or with a key that cannot open the database), `serve` on SQLite generates a key file
once and reuses it, and `hookline secrets rotate-key` re-seals everything while a worker delivers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline.api.services import Services
from hookline.sealing import Keyring, generate_key
from hookline.store import credentials
from hookline.store.endpoints import purpose
from hookline.store.engine import Store
from tests.chaos.procs import ADMIN_KEY, HOOKLINE, SECRET_KEY, Proc, Processes, base_env, free_port
from tests.conftest import Api, assert_ok, throwaway_pg_database
from tests.receivers import Receiver
from tests.test_secrets_at_rest import post, stored, webhook, whsec


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"allow_http": True, "allowed_networks": "127.0.0.0/8"}


@pytest.fixture
def pg_db() -> Any:
    with throwaway_pg_database("hookline_test_keys") as url:
        yield url


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


def env_without_key(**settings: str) -> dict[str, str]:
    """The processes' usual environment without HOOKLINE_SECRET_KEY (plus ``settings``)."""
    env = base_env()
    del env["HOOKLINE_SECRET_KEY"]
    return {**env, **settings}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOOKLINE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


async def until(check: Any, what: str, timeout: float = 30.0, diag: Any = str) -> Any:
    """Poll ``check`` (without blocking the event loop: the test's receiver runs on it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{diag()}")
        await asyncio.sleep(0.1)
    return value


async def started_worker(procs: Processes, name: str, env: dict[str, str]) -> Proc:
    worker = procs.hookline(name, "worker", env=env, cwd=procs.directory)
    await until(lambda: worker.worker_id() or not worker.alive(), f"{name} to start", diag=procs.diag)
    assert worker.alive(), procs.diag()
    return worker


def test_generate_key_prints_a_new_key_each_time(tmp_path: Path) -> None:
    first, second = (run(["secrets", "generate-key"], env_without_key(), tmp_path) for _ in range(2))
    assert first.returncode == second.returncode == 0, first.stderr
    keys = [first.stdout.strip(), second.stdout.strip()]
    assert keys[0] != keys[1]
    assert Keyring.parse(",".join(keys)).ids  # both valid, distinct keys


def test_postgresql_roles_refuse_to_start_without_the_key(tmp_path: Path, pg_db: str) -> None:
    for command in (["api", "--port", str(free_port())], ["worker"], ["migrate"], ["serve"]):
        result = run(command, env_without_key(HOOKLINE_DATABASE_URL=pg_db), tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.startswith("hookline: HOOKLINE_SECRET_KEY is required with PostgreSQL"), (
            result.stderr
        )
        assert "hookline secrets generate-key" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []  # no key file, no data directory


def test_a_malformed_key_stops_the_process_naming_the_variable_not_the_value(tmp_path: Path) -> None:
    almost = generate_key()[:-2]
    result = run(["worker"], env_without_key(HOOKLINE_SECRET_KEY=almost), tmp_path)
    assert result.returncode == 2, result.stderr
    assert "HOOKLINE_SECRET_KEY: key 1 of 1 is not 32 bytes in base64url" in result.stderr
    assert almost not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_a_key_that_cannot_open_the_database_is_refused_at_start(tmp_path: Path, pg_db: str) -> None:
    first, wrong = generate_key(), generate_key()
    migrated = run(["migrate"], base_env(HOOKLINE_DATABASE_URL=pg_db, HOOKLINE_SECRET_KEY=first), tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    sealed_with = Keyring.parse(first).primary
    for command in (["worker"], ["api", "--port", str(free_port())], ["secrets", "rotate-key"]):
        result = run(command, base_env(HOOKLINE_DATABASE_URL=pg_db, HOOKLINE_SECRET_KEY=wrong), tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert (
            "HOOKLINE_SECRET_KEY does not hold the key that sealed this database's secrets "
            f"(key id {sealed_with}; the keys given have ids {Keyring.parse(wrong).primary})"
        ) in result.stderr
        for leak in (first, wrong, "Traceback"):
            assert leak not in result.stderr + result.stdout


def test_migrate_seals_the_secrets_an_older_version_stored_in_clear(tmp_path: Path) -> None:
    """The upgrade's one step: `hookline migrate` seals what is in clear (with the key file here)."""
    db = tmp_path / "hookline.db"
    env = env_without_key(HOOKLINE_DATABASE_URL=f"sqlite:///{db}")
    assert run(["migrate"], env, tmp_path).returncode == 0
    legacy, previous = whsec(), whsec()
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:  # as the older version wrote them
        conn.execute(
            "INSERT INTO tenants (id, name, metadata, created_at, updated_at)"
            " VALUES ('t', 't', '{}', '2026-01-01', '2026-01-01')"
        )
        conn.execute(
            "INSERT INTO endpoints (tenant_id, url, description, secret, events, headers, metadata,"
            " active, created_at, updated_at, previous_secrets) VALUES ('t', 'https://example.com/', '',"
            " ?, '[\"*\"]', '{}', '{}', 1, '2026-01-01', '2026-01-01', ?)",
            (legacy, json.dumps([{"secret": previous, "expires_at": "2099-01-01T00:00:00+00:00"}])),
        )
    migrated = run(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert '"values": 2' in migrated.stderr and "sealed the secrets stored in clear" in migrated.stderr
    ring = Keyring.parse((tmp_path / "secret.key").read_text())
    with contextlib.closing(sqlite3.connect(db)) as conn:
        [(secret, previous_text)] = conn.execute("SELECT secret, previous_secrets FROM endpoints").fetchall()
    assert ring.open(secret, purpose("secret", "t")) == legacy
    [old] = json.loads(previous_text)
    assert ring.open(old["secret"], purpose("previous_secrets", "t")) == previous
    assert legacy not in migrated.stderr + migrated.stdout


async def test_serve_generates_the_key_file_once_and_reuses_it(tmp_path: Path, procs: Processes) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_without_key(HOOKLINE_PORT=str(port))
    key_file = tmp_path / "hookline-data" / "secret.key"

    async def serve(name: str) -> Proc:
        proc = procs.hookline(name, "serve", env=env, cwd=tmp_path)

        def healthy() -> bool:
            assert proc.alive(), procs.diag()
            try:
                return httpx.get(f"{base}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        await until(healthy, f"{name} to answer", diag=procs.diag)
        return proc

    first = await serve("first")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    ring = Keyring.parse(key)
    [announced] = [e for e in first.log_events() if "generated the secret key" in e["event"]]
    assert announced["key_file"] == str(key_file) and "back it up" in announced["event"]
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    secret = whsec()
    with httpx.Client(base_url=base, headers=admin, timeout=10) as http:
        tenant = http.post("/v1/tenants", json={"name": "Keys"}).json()["data"]["id"]
        body = {"url": "https://receiver.example.com/hook", "secret": secret, "tenant_id": tenant}
        created = http.post("/v1/webhooks", json=body)
        assert created.status_code == 201, created.text
    first.signal(signal.SIGTERM)
    assert first.popen.wait(30) == 0, procs.diag()

    second = await serve("second")
    assert key_file.read_text().strip() == key  # reused, not replaced
    assert not [e for e in second.log_events() if "generated the secret key" in e["event"]]
    with httpx.Client(base_url=base, headers=admin, timeout=10) as http:
        hook_id = created.json()["data"]["id"]
        revealed = http.get(f"/v1/webhooks/{hook_id}/secret", params={"tenant_id": tenant})
        assert revealed.json()["data"]["secret"] == secret, revealed.text
    [sealed] = await stored(f"sqlite:///{tmp_path / 'hookline-data' / 'hookline.db'}", "secret")
    assert sealed.startswith(f"sealed:v1:{ring.primary}:")
    for proc in (first, second):
        assert key not in "\n".join(proc.lines())


async def test_rotate_key_re_seals_everything_while_a_worker_process_delivers(
    api: Api, services: Services, rx: Receiver, database_url: str, procs: Processes
) -> None:
    """The README's procedure: the worker restarted with "new,old"; `hookline secrets rotate-key` while
    events flow (every one arrives, signed); then a worker holding only the new key delivers."""
    _, auth = await api.tenant()
    hooks = [
        await webhook(api, auth, rx.url(f"/k{n}"), secret=whsec(), secret_headers={"X-Token": f"t{n}"})
        for n in range(2)
    ]
    new = generate_key()
    env = base_env(
        HOOKLINE_DATABASE_URL=database_url,
        HOOKLINE_SECRET_KEY=f"{new},{SECRET_KEY}",
        HOOKLINE_POLL_INTERVAL="100ms",
    )
    worker = await started_worker(procs, "worker-both", env)
    for n in range(5):
        await post(api, auth, n)
    rotate = await asyncio.create_subprocess_exec(
        str(HOOKLINE),
        "secrets",
        "rotate-key",
        env=env,
        cwd=procs.directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    for n in range(5, 20):
        await post(api, auth, n)
        await asyncio.sleep(0.02)
    out, err = await asyncio.wait_for(rotate.communicate(), 60)
    assert rotate.returncode == 0, err.decode()
    new_id = Keyring.parse(new).primary
    assert out.decode().startswith(
        "re-sealed 4 secrets of 2 webhooks; every stored secret is sealed with key"
    )
    assert f"key {new_id}." in out.decode()
    for n in range(2):
        await rx.wait_for(20, f"/k{n}", timeout=30)
    worker.signal(signal.SIGTERM)
    assert worker.popen.wait(30) == 0, procs.diag()
    store = Store.from_url(database_url, Keyring.parse(new))
    try:
        assert await credentials.stored_key_ids(store) == {new_id: 4}
    finally:
        await store.close()

    await started_worker(procs, "worker-new", {**env, "HOOKLINE_SECRET_KEY": new})
    await post(api, auth, 99)
    for n, hook_ in enumerate(hooks):
        received = await rx.wait_for(21, f"/k{n}", timeout=30)
        assert len({r.headers["webhook-id"] for r in received}) == 21
        for request in received:
            assert request.headers["x-token"] == f"t{n}"
            StandardWebhook(hook_["secret"]).verify(request.body, request.headers)
    services.store.keyring = Keyring.parse(new)  # this API process too, restarted with the new key
    deadline = asyncio.get_running_loop().time() + 15
    for hook_ in hooks:  # none failed (a request received may be recorded a moment later)
        while True:
            path = f"/v1/webhooks/{hook_['id']}/deliveries?limit=50"
            items = assert_ok(await api.http.get(path, headers=auth))["items"]
            found = {d["status"] for d in items}
            assert "failed" not in found, items
            if len(items) == 21 and found == {"succeeded"}:
                break
            assert asyncio.get_running_loop().time() < deadline, items
            await asyncio.sleep(0.1)
