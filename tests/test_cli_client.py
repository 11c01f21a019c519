"""The client commands as a user runs them: ``python -m hookline ...`` as a real process against a real
``hookline serve`` (one for the module, on SQLite: the commands only speak HTTP), delivering to a real
receiver on loopback (tests/receivers.py, in a thread of its own). What is asserted is what people and
scripts rely on: the data (``--json``), the exit codes, one-line errors, and profiles."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

import hookline
from tests.chaos.procs import ADMIN_KEY, Processes, base_env, free_port, start_api
from tests.receivers import Received, Receiver

T = TypeVar("T")


class ThreadedReceiver:
    """tests/receivers.py's Receiver on an event loop of its own thread, for synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.receiver = self._call(self._open())

    @staticmethod
    async def _open() -> Receiver:
        return await Receiver().__aenter__()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def url(self, path: str) -> str:
        return self.receiver.url(path)

    def wait_for(self, count: int, path: str) -> list[Received]:
        return self._call(self.receiver.wait_for(count, path, timeout=30))

    def close(self) -> None:
        self._call(self.receiver.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Service:
    url: str
    key: str  # a tenant's key
    tenant: str
    home: Path  # HOME and the profiles file of the commands run

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a command: no HOOKLINE_* setting of the test's own, no real home."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
        env.update(HOME=str(self.home), HOOKLINE_CONFIG=str(self.home / "profiles.toml"))
        env.update(extra)
        return env

    def run(
        self, *args: str, env: dict[str, str] | None = None, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """``hookline ARGS`` with nothing connecting it to the service: the test says how."""
        return subprocess.run(
            [sys.executable, "-m", "hookline", *args],
            env=env or self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def as_tenant(self, *args: str, key: str | None = None) -> tuple[str, ...]:
        """``ARGS --json`` for the service, as the tenant (or with ``key``)."""
        return (*args, "--url", self.url, "--key", key or self.key, "--json")

    def as_admin(self, *args: str) -> tuple[str, ...]:
        return self.as_tenant(*args, key=ADMIN_KEY)

    def ok(self, *args: str, key: str | None = None) -> Any:
        """``hookline ARGS --json`` as the tenant (or with ``key``): exit 0, and the JSON it printed."""
        result = self.run(*self.as_tenant(*args, key=key))
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr
        return json.loads(result.stdout)

    def admin(self, *args: str) -> Any:
        return self.ok(*args, key=ADMIN_KEY)

    def webhook(self, url: str, events: list[str] | None = None) -> str:
        """A webhook of the tenant, made with the SDK (for tests of other commands); its id."""
        with hookline.Client(self.url, self.key) as client:
            return str(client.webhooks.create(url, events=events).id)

    def batch(self, *calls: tuple[Any, ...], env: dict[str, str] | None = None) -> list[str]:
        """Independent commands at once, each ``(exit code, *args)`` or ``((exit code, *args), env)``:
        a command exiting 0 gives its stdout, any other its one line on stderr (see ``fails``)."""

        def one(call: tuple[Any, ...]) -> str:
            (code, *args), call_env = call if isinstance(call[0], tuple) else (call, env)
            if code == 0:
                result = self.run(*args, env=call_env)
                assert result.returncode == 0, (args, result.stderr)
                return result.stdout
            return self.fails(code, *args, env=call_env)

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, calls))

    def fails(self, code: int, *args: str, env: dict[str, str] | None = None) -> str:
        """``hookline ARGS`` exits with ``code``, printing nothing but one line on stderr; that line."""
        result = self.run(*args, env=env)
        assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
        assert result.stdout == "" and "Traceback" not in result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith("hookline: "), line
        return line


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("cli-client")
    shutil.copy(sqlite_template, directory / "hookline.db")
    procs = Processes(directory)
    try:
        env = base_env(HOOKLINE_DATABASE_URL=f"sqlite:///{directory / 'hookline.db'}")
        _, url = start_api(procs, "serve", env, command="serve")
        with hookline.Client(url, ADMIN_KEY) as admin:
            tenant = admin.tenants.create("CLI", id="cli").id
            key = admin.tenants.keys.create(tenant).key
        assert key is not None
        home = directory / "home"
        home.mkdir()
        yield Service(url, key, tenant, home)
    finally:
        procs.kill_all()


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadedReceiver]:
    threaded = ThreadedReceiver()
    try:
        yield threaded
    finally:
        threaded.close()


def delivered(received: Received) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(received.body)
    return body


def test_a_created_webhook_is_listed_shown_updated_and_deleted(service: Service) -> None:
    created = service.ok(
        "webhooks", "create", "http://127.0.0.1:9/created", "--events", "message.*,order.created",
        "--description", "from the CLI", "--header", "X-Team=chat", "--max-in-flight", "3",
    )  # fmt: skip
    assert created["secret"].startswith("whsec_")
    assert (created["events"], created["headers"], created["max_in_flight"]) == (
        ["message.*", "order.created"], {"X-Team": "chat"}, 3,
    )  # fmt: skip
    hook = str(created["id"])
    listed = {hook["id"]: hook for hook in service.ok("webhooks", "list")}
    assert listed[created["id"]]["url"] == "http://127.0.0.1:9/created"
    assert "secret" not in listed[created["id"]]

    table = service.run("webhooks", "show", hook, "--url", service.url, "--key", service.key)
    assert table.returncode == 0, table.stderr
    assert "http://127.0.0.1:9/created" in table.stdout and "from the CLI" in table.stdout

    updated = service.ok(
        "webhooks", "update", hook, "--disable", "--description", "off", "--reset", "max-in-flight"
    )
    assert (updated["active"], updated["description"], updated["max_in_flight"]) == (False, "off", None)
    assert service.ok("webhooks", "delete", hook, "--yes") == {"id": created["id"], "deleted": True}


def test_an_ed25519_webhook_shows_its_public_key_and_can_go_back_to_hmac(service: Service) -> None:
    created = service.ok("webhooks", "create", "http://127.0.0.1:9/signed", "--signing", "ed25519")
    assert created["signing"] == "ed25519" and created["public_key"].startswith("whpk_")
    hook = str(created["id"])
    assert service.ok("webhooks", "public-key", hook)["public_key"] == created["public_key"]
    connection = ("--url", service.url, "--key", service.key)
    table = service.run("webhooks", "public-key", hook, *connection)
    assert table.returncode == 0 and created["public_key"] in table.stdout, table.stderr
    assert service.ok("webhooks", "update", hook, "--signing", "hmac")["signing"] == "hmac"
    line = service.fails(1, "webhooks", "public-key", hook, *connection)
    assert line.startswith(f"hookline: 409: webhook {hook} signs with HMAC only"), line
    assert "'signing'" in service.fails(1, "webhooks", "update", hook, "--signing", "rsa", *connection)
    service.ok("webhooks", "delete", hook, "--yes")  # the module's other tests count the tenant's webhooks


def test_send_delivers_the_example_or_the_data_given_once_per_id(
    service: Service, receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    service.webhook(receiver.url("/send"), ["message.received"])
    example = service.ok("send", "message.received")
    [request] = receiver.wait_for(1, "/send")
    assert request.headers["webhook-id"] == example["id"] and example["deliveries"] == 1
    body = delivered(request)
    assert body["event"] == "message.received" and body["data"]["body"] == "Hello, I need help"

    data = {"message_id": "m-cli", "from": "966500000001", "body": "from a file"}
    (tmp_path / "message.json").write_text(json.dumps(data))
    args = ("send", "message.received", "--data", f"@{tmp_path / 'message.json'}", "--id", "evt_cli_send_1")
    assert service.ok(*args)["id"] == "evt_cli_send_1"
    assert service.ok(*args)["id"] == "evt_cli_send_1"
    [_, request] = receiver.wait_for(2, "/send")
    assert delivered(request)["data"] == data
    events = {r.headers["webhook-id"] for r in receiver.receiver.to("/send")}
    assert events == {example["id"], "evt_cli_send_1"}  # the repeated id created nothing


def test_trigger_overrides_land_in_the_delivered_body(service: Service, receiver: ThreadedReceiver) -> None:
    service.webhook(receiver.url("/trigger"), ["group.created"])
    service.ok(
        "trigger", "group.created", "--set", "name=VIP customers", "--set", 'participants.1="966500000009"',
        "--set", "createdAt=2026-01-01T00:00:00Z",
    )  # fmt: skip
    [request] = receiver.wait_for(1, "/trigger")
    assert delivered(request)["data"] == {
        "groupId": "120363012345678901@g.us",
        "name": "VIP customers",
        "participants": ["966501234567", "966500000009"],
        "createdAt": "2026-01-01T00:00:00Z",
    }


def test_deliveries_retry_replay_test_sends_and_stats(service: Service, receiver: ThreadedReceiver) -> None:
    hook = service.webhook(receiver.url("/log"), ["order.created"])
    sent = service.ok("trigger", "order.created", "--set", "total=99.5")
    receiver.wait_for(1, "/log")
    [delivery] = service.ok("deliveries", "list", hook)
    assert (delivery["event_id"], delivery["webhook_id"]) == (sent["id"], int(hook))
    shown = service.ok("deliveries", "show", str(delivery["id"]))
    assert [a["status_code"] for a in shown["attempt_log"]] == [200]

    assert service.ok("deliveries", "retry", str(delivery["id"])) == {
        "id": delivery["id"],
        "status": "pending",
    }
    receiver.wait_for(2, "/log")
    assert service.ok("replay", hook, "--since", "1h", "--dry-run") == {
        "webhook_id": int(hook), "dry_run": True, "would_requeue": 1,
    }  # fmt: skip
    assert service.ok("replay", hook, "--since", "1h") == {"webhook_id": int(hook), "requeued": 1}
    assert {r.headers["webhook-id"] for r in receiver.wait_for(3, "/log")} == {sent["id"]}

    outcome = service.ok("webhooks", "test", hook)
    assert (outcome["succeeded"], outcome["event"], outcome["status_code"]) == (True, "webhook.test", 200)
    stats = service.ok("webhooks", "stats", hook)
    assert stats["webhook_id"] == int(hook) and stats["attempts"]["total"] >= 3


def test_errors_are_one_line_with_the_api_error_and_an_exit_code(service: Service) -> None:
    tenant = ("--url", service.url, "--key", service.key)
    admin = ("--url", service.url, "--key", ADMIN_KEY)
    down = f"http://127.0.0.1:{free_port()}"
    hook = service.webhook("http://127.0.0.1:9/errors")
    lines = service.batch(
        (1, "webhooks", "list", "--url", service.url, "--key", "hk_wrong"),
        (1, "send", "mesage.received", "--data", '{"from": "x"}', *tenant),
        (4, "send", "mesage.received", *tenant),  # looking its example up: a 404
        (1, "send", "message.received", "--data", "{}", *tenant),
        (4, "deliveries", "show", "999999", *tenant),
        (4, "webhooks", "show", "999999", *tenant),
        (4, "tenants", "show", "nobody", *admin),
        (3, "webhooks", "list", "--url", down, "--key", service.key),
        (2, "send", "message.received", "--data", "{nope", *tenant),
        (2, "replay", hook, "--since", "2026-01-01", *tenant),
        (2, "trigger", "group.created", "--set", "participants.5=1", *tenant),
        (2, "trigger", "group.created", "--set", "owner.name=x", *tenant),
        (2, "webhooks", "delete", hook, *tenant),  # no terminal to confirm on: --yes is needed
    )
    assert lines[0] == "hookline: 401: invalid or revoked API key"
    assert lines[1].startswith(
        "hookline: 400: unknown event type 'mesage.received' (did you mean 'message.received'"
    )
    assert lines[2].startswith("hookline: 404: unknown event type 'mesage.received' (did you mean")
    assert lines[3] == "hookline: 400: data: 'message_id' is a required property"
    assert lines[4:7] == [
        "hookline: 404: delivery '999999' not found",
        "hookline: 404: webhook '999999' not found",
        "hookline: 404: tenant 'nobody' not found",
    ]
    assert lines[7].startswith(f"hookline: cannot reach the server: GET {down}/v1/webhooks")
    assert lines[8].startswith("hookline: --data: not valid JSON")
    assert lines[9] == "hookline: --since: '2026-01-01' needs a timezone (e.g. 2025-01-01T00:00:00Z)"
    assert lines[10] == (
        "hookline: --set: the example has no 'participants.5' (participants is an array of 2 items)"
    )
    assert lines[11] == "hookline: --set: the example has no 'owner'"
    assert "Pass --yes to confirm" in lines[12]
    usage = service.run("webhooks", "create", *tenant)  # Typer's own usage error: no URL
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_tenants_and_keys_with_the_admin_key(service: Service) -> None:
    tenant = service.admin("tenants", "create", "Globex", "--id", "globex", "--metadata", '{"plan": "pro"}')
    assert (tenant["id"], tenant["metadata"]) == ("globex", {"plan": "pro"})
    assert "globex" in {t["id"] for t in service.admin("tenants", "list")}
    assert service.admin("tenants", "update", "globex", "--name", "Globex Inc")["name"] == "Globex Inc"

    limits = (
        "--scope",
        "read,events:write",
        "--expires",
        "30d",
        "--allow-ip",
        "127.0.0.0/8",
        "--rate-limit",
        "5",
    )
    key = service.admin("keys", "create", "globex", "--name", "ci", *limits)
    assert key["key"].startswith("hk_")
    assert (key["scopes"], key["allowed_ips"], key["rate_limit"]) == (
        ["events:write", "read"],
        ["127.0.0.0/8"],
        5,
    )
    lifetime = datetime.fromisoformat(key["expires_at"]) - datetime.fromisoformat(key["created_at"])
    assert timedelta(days=30) - timedelta(minutes=1) < lifetime <= timedelta(days=30)
    listed, webhooks = service.batch(
        (0, *service.as_admin("keys", "list", "globex")),
        (0, *service.as_tenant("webhooks", "list", key=key["key"])),
    )
    assert json.loads(listed) == [{k: v for k, v in key.items() if k != "key"}]
    assert json.loads(webhooks) == []
    assert service.admin("keys", "revoke", "globex", key["id"]) == {"id": key["id"], "deleted": True}
    # With the admin key, --tenant says whose webhooks.
    hook = service.webhook("http://127.0.0.1:9/admin")
    revoked, deleted, by_admin = service.batch(
        (1, "webhooks", "list", "--url", service.url, "--key", key["key"]),
        (0, *service.as_admin("tenants", "delete", "globex", "--yes")),
        (0, *service.as_admin("webhooks", "list", "--tenant", service.tenant)),
    )
    assert revoked == "hookline: 401: invalid or revoked API key"
    assert json.loads(deleted) == {"id": "globex", "deleted": True}
    assert int(hook) in {h["id"] for h in json.loads(by_admin)}


def test_profiles_precedence_file_mode_and_masked_keys(service: Service) -> None:
    env = service.env()
    saved = service.run(
        "profiles", "set", "default", "--url", service.url, "--key", "-", env=env, stdin=service.key
    )
    assert saved.returncode == 0, saved.stderr
    assert service.key not in saved.stdout + saved.stderr
    down = f"http://127.0.0.1:{free_port()}"
    assert service.run("profiles", "set", "down", "--url", down, "--key", "hk_wrong", env=env).returncode == 0
    assert stat.S_IMODE((service.home / "profiles.toml").stat().st_mode) == 0o600

    def check(code: int, *args: str, **variables: str) -> tuple[Any, ...]:
        return (code, "webhooks", "list", "--json", *args), service.env(**variables)

    shown, table, *_ = service.batch(
        (0, "profiles", "list", "--json"),
        (0, "profiles", "list"),
        check(0),  # the profile called default
        check(3, "--profile", "down"),  # that profile's URL
        check(1, HOOKLINE_PROFILE="down", HOOKLINE_URL=service.url),  # the environment's URL, its key
        check(1, HOOKLINE_API_KEY="hk_wrong"),  # the environment over the profile
        check(0, "--key", service.key, HOOKLINE_API_KEY="hk_wrong"),  # the flag over the environment
        check(2, "--profile", "prod"),
        env=env,
    )
    masked = {p["name"]: p["key"] for p in json.loads(shown)}
    assert masked == {"default": service.key[:10] + "…", "down": "hk…"}
    assert service.url in table and service.key not in table

    assert service.run("profiles", "remove", "default", env=env).returncode == 0
    assert "no API key" in service.fails(2, "webhooks", "list", env=env)


def test_help_names_the_exit_codes_and_client_commands_leave_the_server_unloaded(service: Service) -> None:
    shown = service.run("--help")
    codes = "0 ok; 1 the API refused the request (4xx other than 404); 2 usage or configuration error; 3"
    assert f"Exit codes of the commands for a service: {codes}" in " ".join(shown.stdout.split())
    assert f"Exit codes: {codes}" in " ".join(service.run("replay", "--help").stdout.split())
    for group in ("send", "trigger", "webhooks", "deliveries", "replay", "tenants", "keys", "profiles"):
        assert f"  {group}" in shown.stdout, group
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted({'sqlalchemy', 'uvicorn', 'fastapi'} & set(sys.modules))))\n"
        "from hookline.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "webhooks",
            "list",
            "--json",
            "--url",
            service.url,
            "--key",
            service.key,
        ],
        env=service.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
