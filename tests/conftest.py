"""Shared fixtures: every store-touching test runs on SQLite and on a real PostgreSQL.

PostgreSQL: each test run creates its own database (``hookline_test_<pid>_<random>``) on the server named
by HOOKLINE_TEST_PG_URL (default: the local server, database ``test``) and drops it at the end, so runs
cannot disturb each other. With CI=true a missing PostgreSQL fails the run; elsewhere those tests skip,
saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import sqlalchemy as sa

from hookline.api.app import create_app
from hookline.api.services import Services
from hookline.config import Settings, load_settings
from hookline.runtime import open_services
from hookline.store import migrate, schema
from hookline.store.engine import Store
from tests.chaos.procs import SECRET_KEY, Processes
from tests.pg import pg_exec

PG_SERVER_URL = os.environ.get("HOOKLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_KEY = "hk_admin_test_" + secrets.token_hex(8)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# A loaded 2-core machine (CI, or a benchmark beside the suite) can make drawing examples slow; that is
# not a property of the code under test. Tests that set their own health checks list too_slow as well.
hypothesis.settings.register_profile(
    "hookline", suppress_health_check=[hypothesis.HealthCheck.too_slow], deadline=None
)
hypothesis.settings.load_profile("hookline")
# Every table a test may fill (the default event types stay: a test's custom ones are deleted).
TABLES = [table.name for table in schema.metadata.sorted_tables if table.name != "event_types"]


async def _prepare(url: str) -> None:
    store = Store.from_url(url)
    try:
        await migrate.upgrade(store)
        services, _ = await open_services(
            load_settings(database_url=url, admin_key=ADMIN_KEY, secret_key=SECRET_KEY), auto_migrate=False
        )
        await services.store.close()
    finally:
        await store.close()


@contextlib.contextmanager
def throwaway_pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards. Skips the test when the server is
    not reachable, and fails it instead in CI, where PostgreSQL tests are mandatory."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        pg_exec(PG_SERVER_URL, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        reason = f"PostgreSQL is not reachable at {PG_SERVER_URL}: {type(exc).__name__}: {exc}"
        if IN_CI:
            pytest.fail(f"{reason} (PostgreSQL tests are mandatory with CI=true)")
        pytest.skip(reason)
    try:
        yield str(sa.make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False))
    finally:
        pg_exec(PG_SERVER_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with throwaway_pg_database("hookline_test") as url:
        asyncio.run(_prepare(url))
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_prepare(f"sqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database (default event types loaded) on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "hookline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("pg_url")
    yield url
    truncate = f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"
    pg_exec(url, f"{truncate}; DELETE FROM event_types WHERE source = 'custom'")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Real hookline processes (tests/chaos/procs.py), none of which outlives the test."""
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.kill_all()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(database_url: str, settings_overrides: dict[str, Any]) -> Settings:
    overrides = {"secret_key": SECRET_KEY, **settings_overrides}
    return load_settings(database_url=database_url, admin_key=ADMIN_KEY, **overrides)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services, _ = await open_services(settings, auto_migrate=False)
    try:
        yield services
    finally:
        await services.store.close()


@dataclass
class Api:
    """An HTTP client bound to the app, with the admin key at hand."""

    http: httpx.AsyncClient

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth(ADMIN_KEY)

    async def tenant(self, name: str = "Acme") -> tuple[str, dict[str, str]]:
        """Create a tenant and a key; returns (tenant id, auth headers for that key)."""
        created = await self.http.post("/v1/tenants", json={"name": name}, headers=self.admin)
        assert created.status_code == 201, created.text
        tenant_id = created.json()["data"]["id"]
        key = await self.http.post(f"/v1/tenants/{tenant_id}/keys", headers=self.admin)
        assert key.status_code == 201, key.text
        return tenant_id, self.auth(key.json()["data"]["key"])


@pytest.fixture
async def api(services: Services) -> AsyncIterator[Api]:
    app = create_app(services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as http:
        yield Api(http)


def assert_error(response: httpx.Response, code: int, error: str | None = None) -> dict[str, Any]:
    """The error envelope of seed 002, with this status and (if given) this exact error text."""
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"status", "code", "message", "error"}, body
    assert body["status"] is False and body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    if error is not None:
        assert body["error"] == error, body["error"]
    return body


def assert_ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    body = response.json()
    assert set(body) == {"status", "code", "message", "data"}, body
    assert body["status"] is True and body["code"] == code
    return body["data"]
