"""Every route says who may call it (hookline.api.access), and every operation holds to it.

* Each route of the app, the OpenAPI document's operations and the ones FastAPI does not publish
  (probes, /metrics, the docs, the /v1/listen WebSocket), has exactly one access decision; a route
  without one fails here with what to add.
* ``POLICY`` is the decision for each of them, written out: a new route fails until someone decides.
* Table-driven, on both backends, through the lean ingest path and without it: every operation called
  with a key of each scope answers 403 ``this API key lacks the '<scope>' scope`` when the key lacks it,
  and neither 401 nor 403 when it holds it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends

from hookline.api.access import HOW_TO_DECIDE, NoKey, RequireScope, lacks, route_access
from hookline.api.app import FRAMEWORK_ROUTES, create_app
from hookline.api.auth import authenticate
from hookline.api.key_policy import effective
from hookline.api.principal import Principal
from hookline.api.services import Services
from hookline.dashboard import web
from tests.conftest import ADMIN_KEY, assert_error
from tests.samples import MESSAGE

MANAGE, WRITE, READ, ADMIN = "tenant:manage", "events:write", "read", "admin"
NO_KEY, OWN_TOKEN = "no key", "own token"
# The dashboard's pages: a session cookie (or its sign-in form), never an API key in a header; what each
# kind of session may do is tested in a browser (tests/test_dashboard_browser.py).
DASHBOARD = "dashboard session"

# The decision for every route, written out. A new route fails test_the_policy_is_written_out until it
# is added here (after deciding: read-only for support tools? a platform's backend? its tenant's owner?).
POLICY: dict[tuple[str, str], str] = {
    ("POST", "/v1/tenants"): ADMIN,
    ("GET", "/v1/tenants"): ADMIN,
    ("GET", "/v1/tenants/{tenant_id}"): ADMIN,
    ("PATCH", "/v1/tenants/{tenant_id}"): ADMIN,
    ("DELETE", "/v1/tenants/{tenant_id}"): ADMIN,
    ("POST", "/v1/tenants/{tenant_id}/keys"): MANAGE,
    ("GET", "/v1/tenants/{tenant_id}/keys"): MANAGE,
    ("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}"): MANAGE,
    ("POST", "/v1/event-types"): ADMIN,
    ("GET", "/v1/event-types"): READ,
    ("GET", "/v1/egress-ips"): READ,
    ("GET", "/v1/audit-log"): MANAGE,
    ("POST", "/v1/tenants/{tenant_id}/portal-links"): ADMIN,
    ("GET", "/v1/tenants/{tenant_id}/portal-links"): ADMIN,
    ("DELETE", "/v1/tenants/{tenant_id}/portal-links/{link_id}"): ADMIN,
    ("GET", "/v1/event-types/{name}"): READ,
    ("POST", "/v1/events"): WRITE,
    ("POST", "/v1/events/batch"): WRITE,
    ("GET", "/v1/events"): READ,
    ("GET", "/v1/events/{event_id}"): READ,
    ("POST", "/v1/webhooks"): MANAGE,
    ("GET", "/v1/webhooks"): READ,
    ("GET", "/v1/webhooks/{webhook_id}"): READ,
    ("PATCH", "/v1/webhooks/{webhook_id}"): MANAGE,
    ("DELETE", "/v1/webhooks/{webhook_id}"): MANAGE,
    ("GET", "/v1/webhooks/{webhook_id}/secret"): MANAGE,  # a signing secret can forge deliveries
    ("GET", "/v1/webhooks/{webhook_id}/public-key"): READ,  # verifies, cannot sign
    ("POST", "/v1/webhooks/{webhook_id}/secret/rotate"): MANAGE,
    ("POST", "/v1/webhooks/{webhook_id}/verify"): MANAGE,
    ("POST", "/v1/webhooks/set"): MANAGE,
    ("POST", "/v1/webhooks/{webhook_id}/test"): MANAGE,
    ("GET", "/v1/webhooks/test"): MANAGE,  # a GET that sends requests
    ("POST", "/v1/webhooks/test"): MANAGE,
    ("GET", "/v1/webhooks/stats"): READ,
    ("GET", "/v1/webhooks/{webhook_id}/stats"): READ,
    ("GET", "/v1/webhooks/circuit-breaker"): READ,
    ("POST", "/v1/webhooks/circuit-breaker/reset"): MANAGE,
    ("GET", "/v1/webhooks/{webhook_id}/circuit-breaker"): READ,
    ("POST", "/v1/webhooks/{webhook_id}/circuit-breaker/reset"): MANAGE,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): READ,
    ("POST", "/v1/webhooks/{webhook_id}/replay"): MANAGE,
    ("GET", "/v1/deliveries/{delivery_id}"): READ,
    ("POST", "/v1/deliveries/{delivery_id}/retry"): MANAGE,
    ("WEBSOCKET", "/v1/listen"): MANAGE,  # a session is a webhook, and its secret comes with it
    ("GET", "/health"): NO_KEY,
    ("GET", "/healthz"): NO_KEY,
    ("GET", "/readyz"): NO_KEY,
    ("GET", "/metrics"): OWN_TOKEN,
    ("GET", "/ui"): DASHBOARD,
    ("GET", "/ui/sign-in"): DASHBOARD,
    ("POST", "/ui/sign-in"): DASHBOARD,
    ("POST", "/ui/sign-out"): DASHBOARD,
    ("GET", "/ui/language"): DASHBOARD,
    ("GET", "/ui/portal"): DASHBOARD,
    ("GET", "/ui/endpoints"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/active"): DASHBOARD,
    ("GET", "/ui/endpoints/new"): DASHBOARD,
    ("POST", "/ui/endpoints/new"): DASHBOARD,
    ("GET", "/ui/endpoints/{webhook_id}/edit"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/edit"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/secret"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/verify"): DASHBOARD,
    ("GET", "/ui/endpoints/{webhook_id}/delete"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/delete"): DASHBOARD,
    ("GET", "/ui/endpoints/{webhook_id}"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/breaker/reset"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/test"): DASHBOARD,
    ("POST", "/ui/endpoints/{webhook_id}/replay"): DASHBOARD,
    ("GET", "/ui/deliveries/{delivery_id}"): DASHBOARD,
    ("POST", "/ui/deliveries/{delivery_id}/retry"): DASHBOARD,
    ("GET", "/ui/event-types"): DASHBOARD,
    ("GET", "/ui/operator"): DASHBOARD,
    ("POST", "/ui/operator/tenants"): DASHBOARD,
    ("POST", "/ui/operator/portal-links"): DASHBOARD,
    ("POST", "/ui/operator/portal-links/{link_id}/revoke"): DASHBOARD,
    ("GET", "/v1/openapi.json"): NO_KEY,
    ("GET", "/docs"): NO_KEY,
    ("GET", "/docs/oauth2-redirect"): NO_KEY,
}
KEY_SCOPES = ([READ], [WRITE], [MANAGE], [READ, WRITE])


def _declared(services: Services, app: Any = None) -> dict[tuple[str, str], str]:
    """(method, path) -> what the app's routes declare (HEAD, which Starlette adds to GETs, left out)."""
    found: dict[tuple[str, str], str] = {}
    for access in route_access((app or create_app(services)).routes, FRAMEWORK_ROUTES):
        assert len(access.decisions) == 1, lacks(access)
        [decision] = access.decisions
        name = (
            decision.scope
            if isinstance(decision, RequireScope)
            else NO_KEY
            if isinstance(decision, NoKey)
            else DASHBOARD
            if decision is web.SESSION_DECISION
            else OWN_TOKEN
        )
        for method in access.methods:
            if method != "HEAD":
                found[(method, access.path)] = name
    return found


async def test_every_route_has_exactly_one_access_decision(services: Services) -> None:
    app = create_app(services)
    missing = [lacks(a) for a in route_access(app.routes, FRAMEWORK_ROUTES) if len(a.decisions) != 1]
    assert not missing, "\n".join(missing)
    document = app.openapi()
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert operations <= set(_declared(services, app)), "an operation of the OpenAPI document has no route?"


async def test_the_policy_is_written_out(services: Services) -> None:
    declared = _declared(services)
    undecided = sorted(set(declared) - set(POLICY))
    assert not undecided, f"routes missing from POLICY in tests/test_access.py: {undecided}"
    assert sorted(set(POLICY) - set(declared)) == [], "POLICY names routes the app does not have"
    assert declared == POLICY


async def test_a_route_without_a_decision_fails_with_what_to_add(services: Services) -> None:
    app = create_app(services)

    @app.get("/v1/oops")
    async def oops(principal: Annotated[Principal, Depends(authenticate)]) -> None: ...

    [undecided] = [a for a in route_access(app.routes, FRAMEWORK_ROUTES) if len(a.decisions) != 1]
    message = lacks(undecided)
    assert message == f"GET /v1/oops has no access decision: {HOW_TO_DECIDE}"
    assert "`principal: Read`" in message and "Depends(no_key('why'))" in message


async def test_each_operation_documents_the_scope_it_needs(services: Services) -> None:
    document = create_app(services).openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            decision = POLICY[(method.upper(), path)]
            if decision == NO_KEY:
                assert "security" not in operation, (method, path)
                continue
            assert operation["security"] == [{"bearer": [decision]}], (method, path)
            assert f"Needs a key with the `{decision}` scope." in operation["description"]
            assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
            assert "Retry-After" in operation["responses"]["429"]["headers"]


# --- every operation, with a key of each scope ------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["lean-ingest", "fastapi-only"])
async def http(request: pytest.FixtureRequest, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=create_app(services, lean_ingest=request.param), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as client:
        yield client


async def _keys(http: httpx.AsyncClient) -> dict[str, tuple[str, frozenset[str]]]:
    """A tenant ("acme") with a key of each scope set, and a tenant for the admin key to act on."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for name in ("acme", "victim"):
        created = await http.post("/v1/tenants", json={"name": name, "id": name}, headers=admin)
        assert created.status_code == 201, created.text
    keys = {"admin": (ADMIN_KEY, effective(["admin"]))}
    for scopes in KEY_SCOPES:
        made = await http.post("/v1/tenants/acme/keys", json={"scopes": scopes}, headers=admin)
        assert made.status_code == 201, made.text
        keys["+".join(scopes)] = (made.json()["data"]["key"], effective(scopes))
    return keys


def _request(method: str, path: str, role: str) -> dict[str, Any]:
    values = {
        "tenant_id": "victim" if role == "admin" else "acme",
        "key_id": "key_nope",
        "link_id": "pl_nope",
        "webhook_id": "1",
        "delivery_id": "1",
        "event_id": "evt_nope",
        "name": "message.received",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)
    request: dict[str, Any] = {"method": method, "url": url}
    if path == "/v1/events":  # well-formed: the lean path serves it (when the app has it)
        request["json"] = {"event": "message.received", "data": MESSAGE}
    elif path == "/v1/events/batch":
        request["json"] = {"events": [{"event": "message.received", "data": MESSAGE}]}
    elif method in ("POST", "PATCH"):
        request["json"] = {}  # refused (400) after the access check, so nothing is changed
    return request


async def test_every_operation_with_a_key_of_each_scope(http: httpx.AsyncClient) -> None:
    keys = await _keys(http)
    checked = 0
    for (method, path), needed in sorted(POLICY.items()):
        if method == "WEBSOCKET":
            continue  # tests/test_api_keys.py opens /v1/listen with each scope, on a real server
        if needed == DASHBOARD:
            continue
        for role, (key, held) in keys.items():
            request = _request(method, path, role)
            response = await http.request(**request, headers={"Authorization": f"Bearer {key}"})
            where = f"{method} {path} with a {role} key"
            if needed == OWN_TOKEN:  # /metrics: the admin key or its token; a tenant key is no token
                assert response.status_code == (200 if role == "admin" else 401), where
            elif needed == NO_KEY or needed in held:
                assert response.status_code not in (401, 403), (where, response.text)
            else:
                assert response.status_code == 403, (where, response.text)
                assert_error(response, 403, f"this API key lacks the '{needed}' scope")
            checked += 1
        if needed == NO_KEY:
            anonymous = await http.request(**_request(method, path, "anonymous"))
            assert anonymous.status_code not in (401, 403), (method, path)
    dashboard = sum(1 for needed in POLICY.values() if needed == DASHBOARD)
    assert checked == (len(POLICY) - 1 - dashboard) * len(keys)
