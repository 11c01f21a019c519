"""The SDK covers the API: every (method, path) of the OpenAPI document is a route the SDK declares
(``hookline.sdk.routes.ROUTES``), each named after a method that both clients have; and the SDK stays
a light client (httpx, nothing of the server)."""

from __future__ import annotations

import inspect
import operator
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hookline
from hookline import sdk
from hookline.api.app import create_app
from hookline.api.services import Services
from hookline.sdk.routes import ROUTES


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    """The document does not depend on the database: SQLite alone."""
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite:///{path}"


def _operations(services: Services) -> set[tuple[str, str]]:
    document: dict[str, Any] = create_app(services).openapi()
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


async def test_every_route_of_the_openapi_document_is_covered_by_the_sdk(services: Services) -> None:
    operations = _operations(services)
    missing = sorted(operations - set(ROUTES))
    assert not missing, f"routes without an SDK method (declare a Route in hookline/sdk/resources): {missing}"
    stale = sorted(set(ROUTES) - operations)
    assert not stale, f"SDK routes the API does not have: {stale}"


@pytest.mark.parametrize("client_class", [hookline.Client, hookline.AsyncClient])
def test_each_route_names_a_method_of_both_clients(client_class: type[Any]) -> None:
    client = client_class("http://127.0.0.1:1", "hk_x")
    for route in ROUTES.values():
        method = operator.attrgetter(route.sdk)(client)
        assert callable(method), route
        if client_class is hookline.AsyncClient and not route.sdk.endswith(".list"):
            assert inspect.iscoroutinefunction(method), route


def test_only_safe_routes_are_retried() -> None:
    retried = {key for key, route in ROUTES.items() if route.retryable}
    assert all(method in ("GET", "DELETE") for method, _ in retried)
    assert ("GET", "/v1/webhooks/test") not in retried  # sends test events
    assert {("GET", "/v1/webhooks"), ("DELETE", "/v1/webhooks/{webhook_id}")} <= retried
    # POST /v1/events is retried per call: when the event has an id or an Idempotency-Key.
    assert ("POST", "/v1/events") not in retried


def test_the_package_exports_the_sdk_lazily() -> None:
    assert hookline.Client is sdk.Client and hookline.NotFound is sdk.NotFound
    assert set(sdk.__all__) == set(hookline._sdk_names)
    with pytest.raises(AttributeError):
        _ = hookline.Nope  # type: ignore[attr-defined]


def test_import_hookline_does_not_import_the_sdk_and_the_sdk_not_the_server() -> None:
    code = """
import sys
import hookline
assert "httpx" not in sys.modules and "hookline.sdk" not in sys.modules, "import hookline is not light"
hookline.Client
server = [m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette", "sqlalchemy", "pydantic",
          "uvicorn", "asyncpg", "aiosqlite") or m.startswith(("hookline.api", "hookline.store",
          "hookline.dispatch", "hookline.config", "hookline.catalog"))]
assert not server, server
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
