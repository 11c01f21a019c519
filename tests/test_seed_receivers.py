"""The seeds' own webhook handlers (seeds 001, 003 and 004: Express on Node.js, from the npm registry) run as
real receivers and accept every delivery: every catalog example, and generated payloads across the JSON
values hookline accepts (hypothesis). Seed 003's handler checks the HMAC of ``JSON.stringify(req.body)``,
not of the bytes received: it only passes because bodies are laid out as JavaScript writes them
(``hookline.javascript_json``). The seeds' code is in tests/js/seeds, unchanged between a header and a
footer that start it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookline.api.services import Services
from hookline.catalog import OPERATIONAL_EVENTS, load_default_catalog
from hookline.javascript_json import MAX_SAFE_INTEGER
from tests.conftest import Api, assert_ok
from tests.test_delivery import running
from tests.test_javascript_json import KEYS

JS = Path(__file__).parent / "js"
NODE, NPM = shutil.which("node"), shutil.which("npm")
SECRET = "seed003-" + secrets.token_hex(16)  # a plain string secret, as seed 003's WEBHOOK_SECRET is
ANY_TYPE = "seed.any"  # a custom event type taking any object: the generated payloads

# What ingest accepts (``hookline.api.jsonbody``): no NUL, no lone surrogate, numbers within the 64-bit
# range, integers within JavaScript's exact range (``HOOKLINE_JSON_SAFE_INTEGERS``).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"))
NUMBERS = st.floats(min_value=-9.2e18, max_value=1.8e19, allow_nan=False, allow_infinity=False)
ACCEPTED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | NUMBERS
    | NUMBERS.map(lambda f: float(round(f)))
    | TEXT,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(KEYS.filter(lambda k: "\0" not in k), children, max_size=6)
    ),
    max_leaves=30,
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "allow_http": True,
        "allowed_networks": "127.0.0.0/8",
        "retry_schedule": "100ms",
        "retry_jitter": 0,
        "poll_interval": "50ms",
        "delivery_timeout": "5s",
        "lease": "10s",
        "drain_timeout": "2s",
        # Seed 003's header names and bare hex signatures.
        "signature_header_prefix": "X-Awal-Webhook",
        "signature_hex_form": "hex",
    }


@dataclass(frozen=True)
class Seed:
    name: str
    path: str  # the route its handler serves
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def npm_ci(directory: Path, *packages: str) -> None:
    """Install the Express app in ``directory`` from the npm registry with its committed lock file
    (``npm ci``), unless its node_modules has express (and ``packages``) already. Also used by
    tests/test_examples.py and the dashboard's browser tests (axe-core)."""
    assert NODE is not None and NPM is not None, "Node.js and npm are required (the Express receivers)"
    # Test processes run in parallel (pytest-xdist): one installs while the others wait for it.
    with (directory / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((directory / "node_modules" / name).is_dir() for name in ("express", *packages)):
            subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=directory, check=True, timeout=300)


@pytest.fixture(scope="module")
def seeds() -> Iterator[dict[str, Seed]]:
    """The three seeds' handlers, each a node process listening on loopback (express installed from the
    npm registry with the committed lock file, once)."""
    npm_ci(JS)
    routes = {"seed001": "/webhook", "seed003": "/webhooks/awalchat", "seed004": "/my/webhook/url"}
    started: dict[str, Seed] = {}
    procs = []
    try:
        for name, path in routes.items():
            seed = Seed(name, path, _free_port())
            env = {**os.environ, "PORT": str(seed.port), "WEBHOOK_SECRET": SECRET}
            proc = subprocess.Popen(
                [NODE, str(JS / "seeds" / f"{name}.js")], cwd=JS, env=env, stdout=subprocess.PIPE
            )
            procs.append(proc)
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"listening", f"{name} did not start"
            started[name] = seed
        yield started
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


@asynccontextmanager
async def hooks(api: Api, seeds: dict[str, Seed]) -> AsyncIterator[tuple[dict[str, str], dict[str, int]]]:
    """A tenant with one webhook per seed handler (every event, and the operational ones by name)."""
    _, auth = await api.tenant()
    ids = {}
    for seed in seeds.values():
        body = {"url": seed.url, "secret": SECRET, "events": ["*", *sorted(OPERATIONAL_EVENTS)]}
        ids[seed.name] = assert_ok(await api.http.post("/v1/webhooks", json=body, headers=auth), 201)["id"]
    yield auth, ids


async def settled_deliveries(
    api: Api, auth: dict[str, str], hook_id: int, count: int
) -> list[dict[str, Any]]:
    """The webhook's ``count`` deliveries once none is pending (fails after 30 s)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 250} | ({"cursor": cursor} if cursor else {})
            page = assert_ok(
                await api.http.get(f"/v1/webhooks/{hook_id}/deliveries", params=params, headers=auth)
            )
            items += page["items"]
            if (cursor := page["next_cursor"]) is None:
                break
        if len(items) == count and all(d["status"] != "pending" for d in items):
            return items
        assert asyncio.get_running_loop().time() < deadline, f"{len(items)} of {count} deliveries settled"
        await asyncio.sleep(0.1)


def assert_all_accepted(deliveries: list[dict[str, Any]], seed: str) -> None:
    refused = [
        (d["event_id"], d["status"], d.get("last_status_code"))
        for d in deliveries
        if d["status"] != "succeeded"
    ]
    assert not refused, f"{seed} refused {len(refused)} deliveries: {refused[:5]}"


async def test_the_seeds_handlers_accept_every_catalog_example(
    api: Api, services: Services, seeds: dict[str, Seed]
) -> None:
    catalog = load_default_catalog()
    postable = [t for t in catalog if t.name not in OPERATIONAL_EVENTS]
    async with hooks(api, seeds) as (auth, ids), running(services):
        batch = {"events": [{"event": t.name, "data": t.example} for t in postable]}
        assert_ok(await api.http.post("/v1/events/batch", json=batch, headers=auth), 202)
        for name in sorted(OPERATIONAL_EVENTS):  # not postable: sent as tests, with their examples
            for hook_id in ids.values():
                sent = assert_ok(
                    await api.http.post(f"/v1/webhooks/{hook_id}/test", json={"event": name}, headers=auth)
                )
                assert sent["succeeded"], (name, sent)
        for seed, hook_id in ids.items():
            deliveries = await settled_deliveries(api, auth, hook_id, len(postable) + len(OPERATIONAL_EVENTS))
            assert_all_accepted(deliveries, seed)
    async with httpx.AsyncClient() as http:
        received = (await http.get(f"http://127.0.0.1:{seeds['seed003'].port}/received")).json()
    orders = [data for kind, data in received if kind == "order.created"]
    order = next(t for t in catalog if t.name == "order.created").example
    assert orders and orders[-1]["total"] == order["total"] == 1250  # seed 003's 1250.00, verified


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payloads=st.lists(
        st.dictionaries(KEYS.filter(lambda k: "\0" not in k), ACCEPTED, max_size=6), min_size=1, max_size=15
    )
)
async def test_the_seeds_handlers_accept_generated_payloads(
    api: Api, services: Services, seeds: dict[str, Seed], payloads: list[dict[str, Any]]
) -> None:
    response = await api.http.post(
        "/v1/event-types", json={"name": ANY_TYPE, "schema": {"type": "object"}}, headers=api.admin
    )
    assert response.status_code in (201, 409), response.text
    async with hooks(api, seeds) as (auth, ids), running(services):
        batch = {"events": [{"event": ANY_TYPE, "data": data} for data in payloads]}
        assert_ok(await api.http.post("/v1/events/batch", json=batch, headers=auth), 202)
        for seed, hook_id in ids.items():
            assert_all_accepted(await settled_deliveries(api, auth, hook_id, len(payloads)), seed)
