"""Every error class answers in the envelope of seed 002, with a specific, human-readable ``error``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Api, assert_error, assert_ok

LIMIT = 2048
HOOK = {"url": "https://example.com/hook"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": LIMIT}


def assert_not_a_pydantic_dump(error: str) -> None:
    for marker in ("input_value", "https://errors.pydantic.dev", "type=", "[{", "loc"):
        assert marker not in error, error


# --- routing ----------------------------------------------------------------------------------------


async def test_unknown_route_is_404_envelope(api: Api) -> None:
    body = assert_error(await api.http.get("/v1/nothing-here", headers=api.admin), 404)
    assert body["message"] == "Not found"
    assert "/v1/nothing-here" in body["error"]


async def test_unknown_route_without_auth_is_404_envelope(api: Api) -> None:
    assert_error(await api.http.get("/no/such/path"), 404)


async def test_wrong_method_is_405_envelope(api: Api) -> None:
    response = await api.http.put("/v1/webhooks", json=HOOK, headers=api.admin)
    body = assert_error(response, 405)
    assert body["message"] == "Method not allowed"
    assert "PUT" in body["error"]
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


# --- authentication and authorization ---------------------------------------------------------------


async def test_missing_authorization_is_401_with_challenge(api: Api) -> None:
    response = await api.http.get("/v1/webhooks")
    body = assert_error(response, 401)
    assert "Authorization" in body["error"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_bad_key_is_401_with_challenge(api: Api) -> None:
    response = await api.http.get("/v1/webhooks", headers=api.auth("hk_not_a_real_key"))
    assert_error(response, 401, "invalid or revoked API key")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_401_has_the_seed_002_shape(api: Api) -> None:
    response = await api.http.post("/v1/webhooks", json=HOOK, headers=api.auth("wrong"))
    assert response.status_code == 401
    body = response.json()
    assert list(body) == ["status", "code", "message", "error"]
    assert body["status"] is False
    assert body["code"] == 401
    assert body["message"] == "Unauthorized"
    assert isinstance(body["error"], str) and body["error"]


async def test_tenant_key_on_admin_route_is_403(api: Api) -> None:
    _, auth = await api.tenant()
    body = assert_error(await api.http.get("/v1/tenants", headers=auth), 403)
    assert body["message"] == "Forbidden"
    assert "admin" in body["error"]


async def test_tenant_key_cannot_create_tenants(api: Api) -> None:
    _, auth = await api.tenant()
    assert_error(await api.http.post("/v1/tenants", json={"name": "Evil"}, headers=auth), 403)
    listed = (await api.http.get("/v1/tenants", headers=api.admin)).json()["data"]["items"]
    assert [t["name"] for t in listed] == ["Acme"]


# --- body size limit --------------------------------------------------------------------------------


async def test_body_over_limit_with_content_length_is_413(api: Api) -> None:
    _, auth = await api.tenant()
    payload = b'{"url": "https://example.com/hook", "description": "' + b"x" * LIMIT + b'"}'
    response = await api.http.post(
        "/v1/webhooks", content=payload, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.request.headers["content-length"] == str(len(payload))
    body = assert_error(response, 413)
    assert body["message"] == "Payload too large"
    assert str(LIMIT) in body["error"]


async def test_streamed_body_over_limit_is_413(api: Api) -> None:
    _, auth = await api.tenant()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"url": "https://example.com/hook", "description": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    response = await api.http.post(
        "/v1/webhooks", content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413)
    listed = (await api.http.get("/v1/webhooks", headers=auth)).json()["data"]["items"]
    assert listed == []


async def test_streamed_body_under_limit_is_accepted(api: Api) -> None:
    _, auth = await api.tenant()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"url": "https://example.com/hook",'
        yield b' "description": "streamed"}'

    response = await api.http.post(
        "/v1/webhooks", content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["description"] == "streamed"


# --- request validation -----------------------------------------------------------------------------


async def test_invalid_json_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks", content=b'{"url": ', headers={**auth, "Content-Type": "application/json"}
    )
    body = assert_error(response, 400, "request body is not valid JSON")
    assert body["message"] == "Bad request"


async def test_missing_required_field_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={"events": ["*"]}, headers=auth)
    assert_error(response, 400, "'url' is required")


async def test_unknown_field_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json={**HOOK, "colour": "blue"}, headers=auth)
    assert_error(response, 400, "unknown field 'colour'")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": 123}, "'url'"),
        ({**HOOK, "events": "message.sent"}, "'events'"),
        ({**HOOK, "events": [1]}, "'events[0]'"),
        ({**HOOK, "headers": {"X-Custom": 5}}, "'headers.X-Custom'"),
    ],
    ids=["url-int", "events-string", "events-item-int", "header-value-int"],
)
async def test_wrong_type_is_specific_400(api: Api, payload: dict[str, Any], field: str) -> None:
    _, auth = await api.tenant()
    body = assert_error(await api.http.post("/v1/webhooks", json=payload, headers=auth), 400)
    assert body["error"].startswith(field + ":"), body["error"]
    assert_not_a_pydantic_dump(body["error"])


async def test_wrong_query_parameter_type_is_specific_400(api: Api) -> None:
    _, auth = await api.tenant()
    body = assert_error(await api.http.get("/v1/webhooks?limit=lots", headers=auth), 400)
    assert body["error"].startswith("query parameter 'limit'"), body["error"]
    assert_not_a_pydantic_dump(body["error"])


async def test_non_json_content_type_is_415(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks",
        content=b"url=https://example.com/hook",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    body = assert_error(
        response, 415, "Content-Type must be application/json (got 'application/x-www-form-urlencoded')"
    )
    assert body["message"] == "Unsupported media type"


async def test_json_array_body_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", json=[HOOK], headers=auth)
    assert_error(response, 400, "request body must be a JSON object")


async def test_empty_body_is_400(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.post("/v1/webhooks", headers={**auth, "Content-Type": "application/json"})
    assert_error(response, 400, "request body is required")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'"a\\u0000b"', "request body must not contain NUL (\\u0000) characters"),
        (b'{"k\\u0000": 1}', "request body must not contain NUL (\\u0000) characters"),
        (b'"\\ud800"', "request body must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"),
        (b"NaN", "request body must not contain NaN (it is not valid JSON)"),
        (b"1e400", "request body has a number outside the 64-bit integer range"),
        (b"1e20", "request body has a number outside the 64-bit integer range"),
        (b"-1e19", "request body has a number outside the 64-bit integer range"),
        (b"123456789012345678901234567890", "request body has a number outside the 64-bit integer range"),
    ],
    ids=[
        "nul-in-value",
        "nul-in-key",
        "lone-surrogate",
        "nan",
        "inf",
        "float-1e20",
        "float-minus-1e19",
        "huge-int",
    ],
)
async def test_json_values_that_cannot_be_stored_are_400(api: Api, raw: bytes, error: str) -> None:
    """PostgreSQL refuses NUL in text and jsonb, and the JSON encoder refuses the others: a 400, not a 500."""
    _, auth = await api.tenant()
    payload = b'{"url": "https://example.com/hook", "metadata": {"value": ' + raw + b"}}"
    response = await api.http.post(
        "/v1/webhooks", content=payload, headers={**auth, "Content-Type": "application/json"}
    )
    assert_error(response, 400, error)
    assert assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"] == []


async def test_nul_in_a_tenant_name_is_400(api: Api) -> None:
    response = await api.http.post("/v1/tenants", json={"name": "Ac\x00me"}, headers=api.admin)
    assert_error(response, 400, "request body must not contain NUL (\\u0000) characters")


async def test_json_values_near_the_limits_are_accepted(api: Api) -> None:
    _, auth = await api.tenant()
    metadata = {
        "max": 2**64 - 1,
        "min": -(2**63),
        "emoji": "\U0001f600",
        "text": "NaN",
        "float": 1.5e19,
        "tiny": 1e-300,
        "precise": 0.12345678901234568,
    }
    created = assert_ok(
        await api.http.post("/v1/webhooks", json={**HOOK, "metadata": metadata}, headers=auth), 201
    )
    fetched = assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}", headers=auth))
    assert fetched["metadata"] == metadata


# --- documentation ----------------------------------------------------------------------------------


async def test_openapi_lists_the_v1_paths(api: Api) -> None:
    response = await api.http.get("/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    for path in ("/v1/webhooks", "/v1/webhooks/{webhook_id}", "/v1/events", "/v1/tenants", "/v1/event-types"):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/v1/webhooks"]
    assert "post" in spec["paths"]["/v1/events"]


async def test_docs_are_served_as_html(api: Api) -> None:
    response = await api.http.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/v1/openapi.json" in response.text
