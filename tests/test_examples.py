"""The examples (examples/) run as they are documented: a real ``hookline serve``, each receiver as a real
process on a loopback port (uvicorn for FastAPI, Flask's development server, ``node`` for Express, its
express installed from the npm registry with the example's lock file), and the chat platform as a
subprocess.

Each receiver accepts exactly the platform's events, once, even when the platform runs again; hookline
records its handshake as passed; and it refuses what is tampered with, signed with another secret, stale
or unsigned, answering the handshake only when it is signed.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import hookline
from hookline.signing import signature_headers
from tests.chaos.procs import ADMIN_KEY, Proc, Processes, base_env, free_port, start_api, wait_for
from tests.test_seed_receivers import NODE, npm_ci

EXAMPLES = Path(__file__).parents[1] / "examples"
RECEIVERS = EXAMPLES / "receivers"
EXPRESS = RECEIVERS / "express"
PLATFORM = EXAMPLES / "platform" / "chat_platform.py"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
KINDS = ["fastapi", "flask", "express"]


def _load_platform() -> Any:
    spec = importlib.util.spec_from_file_location("chat_platform", PLATFORM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chat_platform = _load_platform()


@pytest.fixture(scope="module")
def express_installed() -> None:
    """express for the Express example, from the npm registry with its committed lock file (once)."""
    npm_ci(EXPRESS)


@dataclass
class Receiver:
    kind: str
    proc: Proc
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def accepted(self) -> list[dict[str, Any]]:
        """What the receiver handled (its RECEIVED_LOG), in order."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url, content=body, headers={"Content-Type": "application/json", **headers})


def start_receiver(
    procs: Processes, kind: str, request: pytest.FixtureRequest, secret: str = SECRET
) -> Receiver:
    port = free_port()
    log = procs.directory / f"{kind}-received.jsonl"
    env = {**os.environ, "WEBHOOK_SECRET": secret, "RECEIVED_LOG": str(log), "PORT": str(port)}
    if kind == "fastapi":
        argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(RECEIVERS), "fastapi_app:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        proc = procs.spawn(kind, argv, env)
    elif kind == "flask":
        argv = [sys.executable, "-m", "flask", "--app", str(RECEIVERS / "flask_app.py"), "run"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        proc = procs.spawn(kind, argv, env)
    else:
        request.getfixturevalue("express_installed")
        assert NODE is not None
        proc = procs.spawn(kind, [NODE, "server.js"], env, cwd=EXPRESS)

    def listening() -> bool:
        assert proc.alive(), proc.tail()
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        except httpx.TransportError:
            return False
        return True

    wait_for(listening, 30, f"the {kind} receiver to listen", proc.tail, interval=0.1)
    return Receiver(kind, proc, port, log)


@pytest.fixture(params=KINDS)
def receiver(request: pytest.FixtureRequest, procs: Processes) -> Receiver:
    return start_receiver(procs, request.param, request)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``hookline serve`` on a SQLite file, one for the module (each test makes a tenant of its own); its
    base URL. Killed by pid at the end, as the ``procs`` fixture does."""
    server_procs = Processes(tmp_path_factory.mktemp("hookline"))
    try:
        env = base_env(HOOKLINE_DATABASE_URL=f"sqlite:///{server_procs.directory / 'hookline.db'}")
        _, base_url = start_api(server_procs, "hookline", env, command="serve")
        yield base_url
    finally:
        server_procs.kill_all()


def tenant_key(base_url: str) -> str:
    """A new tenant's API key, made with the admin key as the README's Quick start does."""
    with hookline.Client(base_url, ADMIN_KEY) as admin:
        tenant = admin.tenants.create("Example platform customer")
        return admin.tenants.keys.create(tenant.id).key


def run_platform(base_url: str, key: str, receiver: str, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(PLATFORM), "--url", base_url, "--key", key, "--receiver", receiver]
    return subprocess.run([*argv, "--wait", "30", *extra], capture_output=True, text=True, timeout=60)


def without_times(data: dict[str, Any]) -> dict[str, Any]:
    """The data without its clock readings, which the platform takes at its first run."""
    return {k: v for k, v in data.items() if k not in ("timestamp", "created_at")}


def assert_got_the_conversation(receiver: Receiver, number: int) -> None:
    """The receiver handled each of the conversation's events exactly once, with the data posted."""
    expected = {event_id: (kind, data) for event_id, kind, data in chat_platform.conversation(number)}
    got = receiver.accepted()
    assert Counter(entry["id"] for entry in got) == Counter(list(expected)), got
    for entry in got:
        kind, data = expected[entry["id"]]
        assert entry["type"] == kind
        assert without_times(entry["data"]) == without_times(data)


def signed(body: bytes, *, event_id: str, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    """The headers hookline would send with ``body`` (both signature styles), signed ``age`` s ago."""
    return signature_headers(
        event_id=event_id, event_type="message.received", timestamp=int(time.time()) - age, body=body,
        secrets=[secret],
    )  # fmt: skip


def event_body(event_id: str) -> bytes:
    data = {"message_id": "wamid.direct", "from": "96650000000", "body": "sent by the test"}
    payload = {
        "id": event_id,
        "event": "message.received",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "data": data,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def test_the_platform_s_conversation_reaches_each_receiver_once(
    server: str, receiver: Receiver, procs: Processes
) -> None:
    key = tenant_key(server)
    first = run_platform(server, key, receiver.url, "--secret", SECRET)
    assert first.returncode == 0, first.stdout + first.stderr + procs.diag()
    assert "verification handshake: verified" in first.stdout, first.stdout
    assert_got_the_conversation(receiver, 1)
    with hookline.Client(server, key) as client:
        [hook] = list(client.webhooks.list())
        assert hook.url == receiver.url and hook.verification.status == "verified"
        assert sorted(hook.events) == sorted(chat_platform.EVENTS)
        deliveries = list(client.deliveries.list(hook.id))
        assert len(deliveries) == 5 and {d.status for d in deliveries} == {"succeeded"}

    # Again: the webhook is reused and the same event ids create nothing, so nothing arrives twice.
    again = run_platform(server, key, receiver.url, "--secret", SECRET)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already exists: reusing it" in again.stdout
    assert_got_the_conversation(receiver, 1)

    # Another conversation is new.
    other = run_platform(server, key, receiver.url, "--secret", SECRET, "--conversation", "2")
    assert other.returncode == 0, other.stdout + other.stderr
    assert Counter(e["id"] for e in receiver.accepted()) == Counter(
        [event_id for n in (1, 2) for event_id, _, _ in chat_platform.conversation(n)]
    )


def test_each_receiver_refuses_what_does_not_verify(receiver: Receiver) -> None:
    body = event_body("evt_direct_1")
    good = signed(body, event_id="evt_direct_1")
    refused = {
        "tampered body": (body.replace(b"sent by the test", b"sent by someone"), good),
        "another secret": (body, signed(body, event_id="evt_direct_1", secret=OTHER_SECRET)),
        "stale timestamp": (body, signed(body, event_id="evt_direct_1", age=600)),
        "future timestamp": (body, signed(body, event_id="evt_direct_1", age=-600)),
        "another event id": (body, {**good, "webhook-id": "evt_other", "X-Webhook-Id": "evt_other"}),
        "no signature": (body, {}),
        "garbled signature": (
            body,
            {**good, "webhook-signature": "v1,AAAA", "X-Webhook-Signature": "sha256=00"},
        ),
    }
    for what, (request_body, headers) in refused.items():
        response = receiver.post(request_body, headers)
        assert response.status_code in (400, 401), (what, response.status_code, response.text)
    assert receiver.accepted() == []

    # The authentic request is handled; its repeat (a retry) is acknowledged and not handled again.
    for _ in range(2):
        response = receiver.post(body, good)
        assert response.status_code == 200, response.text
    assert [e["id"] for e in receiver.accepted()] == ["evt_direct_1"]


def test_each_receiver_takes_the_largest_event_hookline_accepts(server: str, receiver: Receiver) -> None:
    """hookline accepts events up to 1 MiB (HOOKLINE_MAX_BODY_BYTES); each receiver takes its delivery
    (express.raw alone stops at 100 kB with a 413, which hookline retries until the delivery fails)."""
    data = {"message_id": "wamid.large", "from": "96650000000", "type": "text", "body": "x" * 1_000_000}
    with hookline.Client(server, tenant_key(server)) as client:
        client.webhooks.create(receiver.url, events=["message.received"], secret=SECRET)
        event_id = client.events.post("message.received", data).id

        def settled() -> Any:
            [delivery] = client.events.get(event_id).delivery_status or [None]
            return delivery if delivery is not None and delivery.status != "pending" else None

        delivery = wait_for(settled, 30, "the large event's delivery", receiver.proc.tail)
    assert delivery.status == "succeeded", (delivery, receiver.proc.tail())
    [entry] = receiver.accepted()
    assert entry["id"] == event_id and entry["data"] == data


def test_each_receiver_answers_only_a_signed_handshake(receiver: Receiver) -> None:
    challenge = secrets.token_urlsafe(24)
    body = json.dumps({"type": "verification", "challenge": challenge}).encode()
    answer = receiver.post(body, signed(body, event_id="evt_handshake"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"challenge": challenge}
    forged = receiver.post(body, signed(body, event_id="evt_handshake", secret=OTHER_SECRET))
    assert forged.status_code == 401 and challenge not in forged.text
    assert receiver.post(body, {}).status_code == 401
    assert receiver.accepted() == []  # the handshake is not an event


def test_a_receiver_without_the_secret_holds_the_events_until_it_has_it(
    server: str, procs: Processes, request: pytest.FixtureRequest
) -> None:
    """The handshake fails while the receiver has another secret: the events are posted and held; with the
    webhook's secret given (rotated to), the platform's re-run passes the handshake, the held events go
    out and nothing is posted twice."""
    receiver = start_receiver(procs, "fastapi", request)
    key = tenant_key(server)
    first = run_platform(server, key, receiver.url, "--secret", OTHER_SECRET)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "verification handshake: failed" in first.stdout and "held" in first.stdout, first.stdout
    assert receiver.accepted() == []

    again = run_platform(server, key, receiver.url, "--secret", SECRET)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "rotating to --secret" in again.stdout and "verification handshake: verified" in again.stdout
    assert_got_the_conversation(receiver, 1)
