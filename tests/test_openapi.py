"""The OpenAPI document tells the truth: security, error answers with the envelope's schema, and
success schemas that real answers validate against (on both backends)."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import Api, assert_ok

ERROR_REF = "#/components/schemas/ErrorEnvelope"


async def _document(api: Api) -> dict[str, Any]:
    response = await api.http.get("/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


async def test_every_operation_but_health_needs_the_bearer_key(api: Api) -> None:
    document = await _document(api)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the operator's admin key, or a tenant's API key",
    }
    for path, method, op in _operations(document):
        if path == "/health":
            assert "security" not in op
        else:
            [requirement] = op["security"]
            assert list(requirement) == ["bearer"] and len(requirement["bearer"]) == 1, (method, path)
            assert {"401", "403", "429", "503"} <= set(op["responses"]), (method, path)


async def test_error_answers_are_the_envelope_and_never_422_or_500(api: Api) -> None:
    document = await _document(api)
    for path, method, op in _operations(document):
        codes = set(op["responses"])
        assert not codes & {"422", "500"}, (method, path)
        for code, response in op["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            if code.startswith(("4", "5")):
                assert schema == {"$ref": ERROR_REF}, (method, path, code)
            else:
                assert schema["$ref"].endswith("Envelope_" + schema["$ref"].split("Envelope_")[-1])
        if "requestBody" in op:
            assert {"400", "413", "415"} <= codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
    assert set(document["paths"]["/v1/tenants"]["post"]["responses"]) >= {"409", "403"}
    assert "409" in document["paths"]["/v1/event-types"]["post"]["responses"]
    assert "404" not in document["paths"]["/v1/event-types"]["get"]["responses"]


def _validator(document: dict[str, Any], method: str, path: str, status: int) -> jsonschema.Validator:
    schema = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"][
        "schema"
    ]
    root = {"components": document["components"], **schema}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


async def test_real_answers_validate_against_the_documented_schemas(api: Api) -> None:
    document = await _document(api)
    tenant_id, auth = await api.tenant()
    samples: list[tuple[str, str, httpx.Response]] = []

    async def call(method: str, template: str, url: str, **kwargs: Any) -> Any:
        response = await api.http.request(method, url, **kwargs)
        samples.append((method.lower(), template, response))
        return response.json().get("data")

    hook = await call(
        "POST",
        "/v1/webhooks",
        "/v1/webhooks",
        json={"url": "https://example.com/h", "retry_schedule": "1m"},
        headers=auth,
    )
    example = (await api.http.get("/v1/event-types/message.received", headers=auth)).json()["data"]["example"]
    event = {"event": "message.received", "data": example, "id": "evt_openapi"}
    await call("POST", "/v1/events", "/v1/events", json=event, headers=auth)
    await call("POST", "/v1/events/batch", "/v1/events/batch", json={"events": [event]}, headers=auth)
    await call("GET", "/v1/events", "/v1/events", headers=auth)
    await call("GET", "/v1/events/{event_id}", "/v1/events/evt_openapi", headers=auth)
    await call("GET", "/v1/webhooks", "/v1/webhooks", headers=auth)
    await call("GET", "/v1/webhooks/{webhook_id}", f"/v1/webhooks/{hook['id']}", headers=auth)
    await call("GET", "/v1/webhooks/{webhook_id}/secret", f"/v1/webhooks/{hook['id']}/secret", headers=auth)
    signed = await call(
        "POST",
        "/v1/webhooks",
        "/v1/webhooks",
        json={"url": "https://example.com/k", "signing": "ed25519"},
        headers=auth,
    )
    public_key = "/v1/webhooks/{webhook_id}/public-key"
    await call("GET", public_key, f"/v1/webhooks/{signed['id']}/public-key", headers=auth)
    await call("GET", public_key, f"/v1/webhooks/{hook['id']}/public-key", headers=auth)  # 409: HMAC only
    await call(
        "POST",
        "/v1/webhooks/{webhook_id}/secret/rotate",
        f"/v1/webhooks/{hook['id']}/secret/rotate",
        headers=auth,
    )
    deliveries = await call(
        "GET", "/v1/webhooks/{webhook_id}/deliveries", f"/v1/webhooks/{hook['id']}/deliveries", headers=auth
    )
    delivery_id = deliveries["items"][0]["id"]
    await call("GET", "/v1/deliveries/{delivery_id}", f"/v1/deliveries/{delivery_id}", headers=auth)
    await call(
        "POST", "/v1/deliveries/{delivery_id}/retry", f"/v1/deliveries/{delivery_id}/retry", headers=auth
    )
    await call(
        "POST",
        "/v1/webhooks/{webhook_id}/replay",
        f"/v1/webhooks/{hook['id']}/replay",
        json={"since": "2000-01-01T00:00:00Z"},
        headers=auth,
    )
    await call("GET", "/v1/event-types", "/v1/event-types", headers=auth)
    await call("GET", "/v1/egress-ips", "/v1/egress-ips", headers=auth)
    await call("GET", "/v1/tenants", "/v1/tenants", headers=api.admin)
    await call("GET", "/v1/tenants/{tenant_id}", f"/v1/tenants/{tenant_id}", headers=api.admin)
    await call("GET", "/v1/tenants/{tenant_id}/keys", f"/v1/tenants/{tenant_id}/keys", headers=api.admin)
    await call("DELETE", "/v1/webhooks/{webhook_id}", f"/v1/webhooks/{hook['id']}", headers=auth)
    await call("GET", "/health", "/health")
    # Errors, each with its documented envelope.
    await call("GET", "/v1/webhooks", "/v1/webhooks")  # 401
    await call("GET", "/v1/tenants", "/v1/tenants", headers=auth)  # 403
    await call("GET", "/v1/webhooks/{webhook_id}", "/v1/webhooks/999999", headers=auth)  # 404
    await call("POST", "/v1/webhooks", "/v1/webhooks", json={"url": "http://x.example"}, headers=auth)  # 400
    await call(
        "POST", "/v1/tenants", "/v1/tenants", json={"name": "A", "id": tenant_id}, headers=api.admin
    )  # 409
    await call(
        "POST", "/v1/webhooks", "/v1/webhooks", content=b"{}", headers={**auth, "Content-Type": "text/plain"}
    )

    statuses = set()
    for method, template, response in samples:
        assert str(response.status_code) in document["paths"][template][method]["responses"], (
            method,
            template,
        )
        errors = list(
            _validator(document, method, template, response.status_code).iter_errors(response.json())
        )
        assert not errors, (method, template, response.status_code, [e.message for e in errors][:3])
        statuses.add(response.status_code)
    assert statuses >= {200, 201, 202, 400, 401, 403, 404, 409, 415}


@pytest.mark.parametrize("field", ["secret", "previous_secrets", "signing_key"])
async def test_the_webhook_schema_has_no_secret_fields(api: Api, field: str) -> None:
    document = await _document(api)
    assert field not in document["components"]["schemas"]["WebhookOut"]["properties"]
    _, auth = await api.tenant()
    hook = assert_ok(
        await api.http.post("/v1/webhooks", json={"url": "https://example.com/h"}, headers=auth), 201
    )
    assert field not in assert_ok(await api.http.get(f"/v1/webhooks/{hook['id']}", headers=auth))
