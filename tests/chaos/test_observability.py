"""Metrics and probes of real processes: ``hookline api --workers 2`` and a ``hookline worker`` with its
own probe port, on PostgreSQL.

- After a known workload (events posted one by one and in a batch, fanned out to an endpoint that
  answers 200 and one that answers 500 until its retries run out) the counters say exactly that, whichever
  API process answered each request and whichever answers the scrape.
- ``/healthz`` answers while the process lives; ``/readyz`` turns 503 when the database is stopped or
  the worker's loop stalls, and 200 again when they are back.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.chaos.conftest import Cluster, migrate
from tests.chaos.procs import ADMIN_KEY, Processes, base_env, free_port, wait_for, wait_healthy
from tests.pg import pg_exec
from tests.receivers import Receiver, Reply
from tests.samples import MESSAGE

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
METRICS_TOKEN = "metrics-token-for-the-tests-0123"
ONE_BACKEND = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")


def scrape(url: str, token: str = ADMIN_KEY) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics as {(name, labels): value}."""
    answer = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in answer.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        samples[name, pairs] = float(value)
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum over every series of ``name`` that has ``labels`` (among others)."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= pairs)


@pytest.fixture
def deployment(database_url: str, procs: Processes) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Two API processes on one port and a worker with its probe port: (api url, worker url, env)."""
    api_port, worker_port = free_port(), free_port()
    env = base_env(
        HOOKLINE_DATABASE_URL=database_url,
        HOOKLINE_PORT=str(api_port),
        HOOKLINE_WORKER_PORT=str(worker_port),
        HOOKLINE_METRICS_TOKEN=METRICS_TOKEN,
        HOOKLINE_RETRY_SCHEDULE="200ms",  # one quick retry, then the delivery has failed
        # The failing endpoint's breaker stays closed, so that every delivery runs its course.
        HOOKLINE_BREAKER_CONSECUTIVE_FAILURES="1000",
        HOOKLINE_BREAKER_MIN_REQUESTS="1000",
    )
    api = procs.hookline("api", "api", "--workers", "2", env=env, cwd=procs.directory)
    api_url, worker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
    wait_healthy(api_url, api, procs)
    worker = procs.hookline("worker", "worker", env=env, cwd=procs.directory)
    wait_for(lambda: _answers(f"{worker_url}/readyz") == 200, 30, "the worker to be ready", worker.tail)
    yield api_url, worker_url, env


def _answers(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return None


@ONE_BACKEND
async def test_metrics_count_a_known_workload_across_processes(
    deployment: tuple[str, str, dict[str, str]], database_url: str
) -> None:
    api_url, worker_url, _ = deployment
    before_api, before_worker = scrape(api_url), scrape(worker_url, METRICS_TOKEN)
    async with Receiver() as receiver:
        receiver.always("/ok", Reply(200))
        receiver.always("/bad", Reply(500))
        async with httpx.AsyncClient(base_url=api_url, headers=ADMIN) as http:
            tenant = (await http.post("/v1/tenants", json={"name": "Metrics"})).json()["data"]["id"]
            for path in ("/ok", "/bad"):
                created = await http.post(
                    "/v1/webhooks",
                    json={"tenant_id": tenant, "url": receiver.url(path), "events": ["message.received"]},
                )
                assert created.status_code == 201, created.text
        # A new connection per request: the kernel spreads them over both API processes.
        for i in range(10):
            async with httpx.AsyncClient(base_url=api_url, headers=ADMIN) as http:
                posted = await http.post(
                    "/v1/events",
                    json={
                        "tenant_id": tenant,
                        "event": "message.received",
                        "data": {**MESSAGE, "message_id": f"m{i}"},
                    },
                )
                assert posted.status_code == 202, posted.text
        async with httpx.AsyncClient(base_url=api_url, headers=ADMIN) as http:
            batch = [
                {"event": "message.received", "data": {**MESSAGE, "message_id": f"b{i}"}} for i in range(5)
            ]
            posted = await http.post("/v1/events/batch", json={"tenant_id": tenant, "events": batch})
            assert posted.status_code == 202, posted.text
            assert (await http.get("/v1/no-such-route")).status_code == 404

        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            deadline = time.monotonic() + 30
            query = "SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND status <> 'pending'"
            while await conn.fetchval(query, tenant) != 30:
                assert time.monotonic() < deadline, "the 30 deliveries did not finish in 30 s"
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        # The last results are counted once written; the worker's counters are its own.
        await asyncio.sleep(1.5)  # and the store's overview is read anew (it is reused for 1 s)

    api, worker = scrape(api_url), scrape(worker_url, METRICS_TOKEN)

    def grew(now: dict, before: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
        return value(now, name, **labels) - value(before, name, **labels)

    accepted = {"event_type": "message.received", "tenant_class": "tenant"}
    assert grew(api, before_api, "hookline_events_accepted_total", **accepted) == 15
    assert grew(api, before_api, "hookline_ingest_batch_size_count") == 11
    assert grew(api, before_api, "hookline_ingest_batch_size_sum") == 15
    route = {"route": "/v1/events", "method": "POST", "status": "202"}
    assert grew(api, before_api, "hookline_api_requests_total", **route) == 10
    created = {"route": "/v1/webhooks", "method": "POST", "status": "201"}
    assert grew(api, before_api, "hookline_api_requests_total", **created) == 2
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert grew(api, before_api, "hookline_api_requests_total", **unmatched) == 1
    assert value(api, "hookline_build_info", version=__import__("hookline").__version__) == 1

    # The worker: 15 successes at the first attempt; 15 failures, each tried twice.
    assert grew(worker, before_worker, "hookline_attempts_total", status_class="2xx") == 15
    assert grew(worker, before_worker, "hookline_attempts_total", status_class="5xx") == 30
    assert grew(worker, before_worker, "hookline_attempt_duration_seconds_count", status_class="2xx") == 15
    assert grew(worker, before_worker, "hookline_deliveries_finished_total", outcome="succeeded") == 15
    assert grew(worker, before_worker, "hookline_deliveries_finished_total", outcome="failed") == 15
    assert grew(worker, before_worker, "hookline_delivery_latency_seconds_count") == 15
    assert value(worker, "hookline_attempts_in_flight") == 0
    assert value(worker, "hookline_worker_last_tick_timestamp_seconds") > time.time() - 30

    # The store's view, from either process: nothing waits for this tenant; its endpoints are closed.
    for samples in (api, worker):
        assert value(samples, "hookline_store_up") == 1
        assert value(samples, "hookline_queue_pending", tenant=tenant) == 0
        assert value(samples, "hookline_queue_oldest_due_age_seconds", tenant=tenant) == 0
        assert value(samples, "hookline_endpoints", state="closed") >= 2
        assert total(samples, "hookline_db_pool_connections") >= 1


@ONE_BACKEND
async def test_metrics_need_a_key_and_show_the_backlog(
    deployment: tuple[str, str, dict[str, str]], database_url: str
) -> None:
    api_url, worker_url, _ = deployment
    for url in (api_url, worker_url):
        refused = httpx.get(f"{url}/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"].startswith("/metrics needs 'Authorization: Bearer <key>'")
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid metrics token")
        assert ADMIN_KEY not in wrong.text and METRICS_TOKEN not in wrong.text
    async with httpx.AsyncClient(base_url=api_url, headers=ADMIN) as http:
        tenant = (await http.post("/v1/tenants", json={"name": "Backlog"})).json()["data"]["id"]
        hook = await http.post(
            "/v1/webhooks",
            json={"tenant_id": tenant, "url": "http://127.0.0.1:9/gone", "events": ["message.received"]},
        )
        webhook_id = hook.json()["data"]["id"]
        disabled = await http.patch(
            f"/v1/webhooks/{webhook_id}", params={"tenant_id": tenant}, json={"active": False}
        )
        assert disabled.status_code == 200, disabled.text
        for i in range(3):
            await http.post(
                "/v1/events",
                json={
                    "tenant_id": tenant,
                    "event": "message.received",
                    "data": {**MESSAGE, "message_id": f"m{i}"},
                },
            )
    # Held by the disabled endpoint: pending, not due for the queue, counted as held.
    samples = scrape(api_url, METRICS_TOKEN)
    assert value(samples, "hookline_queue_pending", tenant=tenant) == 3
    assert value(samples, "hookline_queue_due", tenant=tenant) == 0
    assert value(samples, "hookline_deliveries_held", reason="disabled") >= 3
    assert value(samples, "hookline_endpoints", state="disabled") >= 1


@ONE_BACKEND
def test_readyz_turns_unready_while_the_worker_loop_stalls(
    deployment: tuple[str, str, dict[str, str]], database_url: str
) -> None:
    api_url, worker_url, _ = deployment
    for url in (api_url, worker_url):
        assert httpx.get(f"{url}/healthz").json()["status"] is True
    ready = httpx.get(f"{worker_url}/readyz").json()
    assert ready["data"] == {"database": "ok", "migrations": "current", "worker": "ticking"}
    assert httpx.get(f"{api_url}/readyz").json()["data"] == {"database": "ok", "migrations": "current"}

    async def hold_lock(seconds: float) -> None:
        # The claim reads endpoint_state first: an exclusive lock on it stops the loop mid-claim.
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE endpoint_state IN ACCESS EXCLUSIVE MODE")
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    if await asyncio.to_thread(_answers, f"{worker_url}/readyz") == 503:
                        return
                raise AssertionError("the worker stayed ready with its loop stuck")
        finally:
            await conn.close()

    asyncio.run(hold_lock(30))
    # Unready said why (checked while stuck, above); released, the loop turns and it is ready again.
    wait_for(lambda: _answers(f"{worker_url}/readyz") == 200, 20, "the worker to be ready again")
    assert httpx.get(f"{api_url}/readyz").status_code == 200  # the API has no worker to wait for


def test_readyz_and_healthz_while_the_database_is_stopped(own_cluster: Cluster, procs: Processes) -> None:
    pg_exec(own_cluster.server_url, 'CREATE DATABASE "hookline"')
    url = own_cluster.server_url.rsplit("/", 1)[0] + "/hookline"
    migrate(url)
    api_port, worker_port = free_port(), free_port()
    env = base_env(
        HOOKLINE_DATABASE_URL=url, HOOKLINE_PORT=str(api_port), HOOKLINE_WORKER_PORT=str(worker_port)
    )
    api = procs.hookline("api", "api", env=env, cwd=procs.directory)
    api_url, worker_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{worker_port}"
    wait_healthy(api_url, api, procs)
    procs.hookline("worker", "worker", env=env, cwd=procs.directory)
    wait_for(lambda: _answers(f"{worker_url}/readyz") == 200, 30, "the worker to be ready", procs.diag)

    own_cluster.stop()
    try:
        for url_ in (api_url, worker_url):
            answer = httpx.get(f"{url_}/readyz", timeout=10)
            assert answer.status_code == 503, answer.text
            body = answer.json()
            assert body["status"] is False and body["data"]["database"].startswith("unreachable")
            assert body["error"].startswith("not ready (database: unreachable")
            assert httpx.get(f"{url_}/healthz").status_code == 200  # alive all the same
        # /metrics still answers, saying the store is down
        assert value(scrape(api_url), "hookline_store_up") == 0
    finally:
        own_cluster.start()
    for url_ in (api_url, worker_url):
        wait_for(lambda u=url_: _answers(f"{u}/readyz") == 200, 30, f"{url_} to be ready again", procs.diag)
