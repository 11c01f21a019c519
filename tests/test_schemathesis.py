"""schemathesis (every check it has) against a real `hookline api` process, on SQLite and PostgreSQL,
with the admin key and with a tenant key: the OpenAPI document must describe what the API really does.

Why a process and the CLI rather than the pytest plugin over ASGI: the app's store is bound to the event
loop it was opened on, and schemathesis drives ASGI apps from its own loop and thread; a process on
loopback is the deployment as users run it (uvicorn, httptools, the middlewares), and the CLI runs every
phase (examples, coverage, fuzzing) and every check with one command that anyone can copy from a failure.

Deterministic (``--generation-deterministic``) and bounded (``--max-examples``), so a run is repeatable
and each of the four runs takes seconds. Data is seeded first (a tenant, its key, a webhook, an event)
and the id parameters are pinned to it, so the GET-by-id routes answer something other than 404.

Generation settings, and why they are not a weakening: strings are generated as UTF-8 (a client cannot
send an unpaired surrogate in UTF-8 at all; the strict decoder's tests cover raw invalid bytes), NUL
included (refused with a 400 in paths, queries and bodies by design). ``positive_data_acceptance``
also accepts a 400: the API's rules go beyond what OpenAPI can express (the event-type catalog, each
type's JSON Schema for ``data``, HTTPS and SSRF rules for URLs), so a schema-valid request can be
rightly refused; every 400 must still be the documented error envelope (``response_schema_conformance``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.chaos.procs import ADMIN_KEY, Processes, base_env, start_api

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
MAX_EXAMPLES = 15
TENANT = "acme"
EVENT_ID = "evt_seeded"

CONFIG = """
[generation]
codec = "utf-8"

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

"""


def _ok(response: httpx.Response, code: int = 200) -> dict[str, object]:
    assert response.status_code == code, response.text
    data: dict[str, object] = response.json()["data"]
    return data


def _seed(base_url: str) -> str:
    """A tenant, its key, a webhook and an event (which creates a delivery). Returns the tenant key."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base_url, timeout=10) as http:
        _ok(http.post("/v1/tenants", json={"name": "Acme", "id": TENANT}, headers=admin), 201)
        key = str(_ok(http.post(f"/v1/tenants/{TENANT}/keys", headers=admin), 201)["key"])
        tenant = {"Authorization": f"Bearer {key}"}
        _ok(http.post("/v1/webhooks", json={"url": "https://example.com/hook"}, headers=tenant), 201)
        example = _ok(http.get("/v1/event-types/message.received", headers=tenant))["example"]
        event = {"event": "message.received", "data": example, "id": EVENT_ID}
        _ok(http.post("/v1/events", json=event, headers=tenant), 202)
    return key


@pytest.mark.parametrize("role", ["admin", "tenant"])
def test_schemathesis_finds_nothing(database_url: str, role: str, procs: Processes, tmp_path: Path) -> None:
    env = base_env(HOOKLINE_DATABASE_URL=database_url, HOOKLINE_LOG_LEVEL="warning")
    _, base_url = start_api(procs, "api", env)
    key = _seed(base_url)
    pinned = {"path.webhook_id": "1", "path.delivery_id": "1", "path.event_id": EVENT_ID}
    if role == "admin":
        key = ADMIN_KEY
        pinned |= {"query.tenant_id": TENANT, "path.tenant_id": TENANT}
    config = tmp_path / "schemathesis.toml"
    parameters = "\n".join(f'"{name}" = "{value}"' for name, value in pinned.items())
    config.write_text(CONFIG + "\n[parameters]\n" + parameters + "\n")
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{base_url}/v1/openapi.json",
        # No --checks: every check is on by default, and a flag would override the per-operation
        # [[operations]] entries of the configuration.
        "--header",
        f"Authorization: Bearer {key}",
        "--generation-deterministic",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:] + procs.diag()
