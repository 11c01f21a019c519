"""The logs of a full run hold no secret, and every line is one JSON object.

Real processes at log level ``debug`` (SQLite: ``serve``; PostgreSQL: ``api`` and ``worker``) go
through what an operator's week holds: tenants and keys, webhooks with signing secrets, an ed25519
signing key and custom header values, a secret (and key pair) rotation and reveal, deliveries that
fail and are retried, a test send, a verification handshake, a wrong key, a metrics scrape, and the
operator webhook. Then every line the processes wrote is searched for every secret the run used.
Delivery lines name the event, the delivery, its endpoint and tenant, the attempt and its outcome.
"""

from __future__ import annotations

import base64
import json
import secrets
import signal

import httpx
import pytest

from hookline.sealing import Keyring
from hookline.store.endpoints import get_endpoint
from hookline.store.engine import Store
from tests.chaos.procs import ADMIN_KEY, HOOKLINE, SECRET_KEY, Processes, base_env, free_port, wait_healthy
from tests.receivers import Receiver, Reply
from tests.samples import MESSAGE

DELIVERY_FIELDS = {"event_id", "delivery_id", "endpoint_id", "tenant_id", "attempt", "outcome"}


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def forms(secret: str) -> list[str]:
    """A secret as it could leak: whole, and a whsec_ secret's or whsk_ key's base64 alone or decoded as
    hex (and a whsk_ key's seed alone)."""
    found = [secret]
    for prefix in ("whsec_", "whsk_"):
        if secret.startswith(prefix):
            key = secret.removeprefix(prefix)
            raw = base64.b64decode(key)
            found += [key, raw.hex()]
            if prefix == "whsk_":
                found += [base64.b64encode(raw[:32]).decode().rstrip("="), raw[:32].hex()]
    return found


async def test_a_full_run_logs_no_secret_and_only_json_lines(database_url: str, procs: Processes) -> None:
    operator_secret, metrics_token = whsec(), "metrics-" + secrets.token_hex(16)
    header_value, secret_header_value = "hdr-" + secrets.token_hex(12), "Bearer " + secrets.token_hex(12)
    port = free_port()
    async with Receiver() as receiver:
        receiver.plan("/flaky", Reply(500), Reply(500))  # then the default answer, 200
        env = base_env(
            HOOKLINE_DATABASE_URL=database_url,
            HOOKLINE_PORT=str(port),
            HOOKLINE_LOG_LEVEL="debug",
            HOOKLINE_RETRY_SCHEDULE="200ms,200ms,200ms",
            HOOKLINE_METRICS_TOKEN=metrics_token,
            HOOKLINE_OPERATOR_WEBHOOK_URL=receiver.url("/operator"),
            HOOKLINE_OPERATOR_WEBHOOK_SECRET=operator_secret,
        )
        sqlite = database_url.startswith("sqlite")
        main = procs.hookline("api", "serve" if sqlite else "api", env=env, cwd=procs.directory)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, main, procs)
        if not sqlite:
            procs.hookline("worker", "worker", env=env, cwd=procs.directory)
        used = [ADMIN_KEY, SECRET_KEY, operator_secret, metrics_token, header_value, secret_header_value]
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as http:
            tenant = (await http.post("/v1/tenants", json={"name": "Logs"})).json()["data"]["id"]
            key = (await http.post(f"/v1/tenants/{tenant}/keys")).json()["data"]["key"]
            used.append(key)
            as_tenant = {"Authorization": f"Bearer {key}"}
            endpoint_secret = whsec()
            used.append(endpoint_secret)
            created = await http.post(
                "/v1/webhooks",
                headers=as_tenant,
                json={
                    "url": receiver.url("/flaky"),
                    "events": ["message.received"],
                    "secret": endpoint_secret,
                    "headers": {"X-Partner-Token": header_value},
                    "signing": "ed25519",
                    "secret_headers": {"Authorization": secret_header_value},
                },
            )
            assert created.status_code == 201, created.text
            hook = created.json()["data"]["id"]
            rotated = await http.post(f"/v1/webhooks/{hook}/secret/rotate", headers=as_tenant)
            assert rotated.status_code == 200, rotated.text
            revealed = await http.get(f"/v1/webhooks/{hook}/secret", headers=as_tenant)
            used.append(revealed.json()["data"]["secret"])
            for i in range(3):
                posted = await http.post(
                    "/v1/events",
                    headers=as_tenant,
                    json={"event": "message.received", "data": {**MESSAGE, "message_id": f"m{i}"}},
                )
                assert posted.status_code == 202, posted.text
            wrong = "hk_" + secrets.token_urlsafe(24)
            used.append(wrong)
            assert (
                await http.get("/v1/webhooks", headers={"Authorization": f"Bearer {wrong}"})
            ).status_code == 401
            scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
            assert scraped.status_code == 200
            await receiver.wait_for(3 + 2, "/flaky", timeout=30)  # two failures, then all three
            tested = await http.post(f"/v1/webhooks/{hook}/test", headers=as_tenant, json={})
            assert tested.status_code in (200, 202), tested.text
            await http.post(f"/v1/webhooks/{hook}/verify", headers=as_tenant)
            # An operational event (endpoint.disabled) goes to the operator's webhook, signed.
            patched = await http.patch(f"/v1/webhooks/{hook}", headers=as_tenant, json={"active": False})
            assert patched.status_code == 200, patched.text
            await receiver.wait_for(1, "/operator", timeout=30)

    for proc in procs.started:
        proc.signal(signal.SIGTERM)
    for proc in procs.started:
        proc.popen.wait(30)
    store = Store.from_url(database_url, Keyring.parse(SECRET_KEY))
    try:
        async with store.read() as conn:
            endpoint = await get_endpoint(conn, tenant, hook, keyring=store.keyring)
    finally:
        await store.close()
    assert endpoint is not None and endpoint.signing_key is not None
    signing_keys = [endpoint.signing_key, *(old["signing_key"] for old in endpoint.previous_secrets)]
    assert len(signing_keys) == 2  # the key pair rotated with the secret
    used += signing_keys
    lines = [line for proc in procs.started for line in proc.lines()]
    assert any("delivery attempt failed" in line for line in lines)
    text = "\n".join(lines)
    for secret in used:
        for form in forms(secret):
            assert form not in text, f"a secret ({form[:8]}...) is in the logs"
    deliveries = []
    for line in lines:
        entry = json.loads(line)  # every line: one JSON object
        assert isinstance(entry, dict) and {"event", "level", "timestamp"} <= entry.keys(), line
        if "delivery_id" in entry:
            deliveries.append(entry)
    assert deliveries
    for entry in deliveries:
        assert entry.keys() >= DELIVERY_FIELDS, entry
    outcomes = {e["outcome"] for e in deliveries if e["event"].startswith("delivery attempt")}
    assert {"pending", "succeeded"} <= outcomes


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_terminal_gets_readable_lines(database_url: str, procs: Processes) -> None:
    """On a terminal the same lines are for people: not JSON, level and message first."""
    import os
    import pty
    import subprocess
    import time

    port = free_port()
    env = base_env(HOOKLINE_DATABASE_URL=database_url, HOOKLINE_PORT=str(port))
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(HOOKLINE), "serve"],
        env=env,
        cwd=procs.directory,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    try:
        output = b""
        deadline = time.monotonic() + 30
        while b"worker started" not in output and time.monotonic() < deadline:
            try:
                output += os.read(primary, 4096)
            except OSError:
                break
        line = next(raw for raw in output.decode(errors="replace").splitlines() if "worker started" in raw)
        assert not line.lstrip().startswith("{")
        assert "info" in line and "worker started" in line
    finally:
        proc.terminate()
        proc.wait(20)
        os.close(primary)
