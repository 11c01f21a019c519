"""The lean ingest path (hookline.api.ingest.FastIngest) answers exactly as FastAPI alone would.

Every request here goes once through the app as served (lean path in front) and once through the same
app without it; status, envelope and the headers a client sees must match."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hookline.api.app import create_app
from hookline.api.services import Services
from hookline.store.schema import tenants
from tests.conftest import Api, assert_error, assert_ok

EVENT = "message.received"
HEADERS = ("content-type", "www-authenticate", "idempotent-replayed", "retry-after", "allow")


@pytest.fixture
async def plain(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app without the lean path: FastAPI answers every request."""
    transport = httpx.ASGITransport(app=create_app(services, lean_ingest=False), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as http:
        yield http


async def example(api: Api, auth: dict[str, str], name: str = EVENT) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(await api.http.get(f"/v1/event-types/{name}", headers=auth))["example"]
    return data


async def same_answer(
    api: Api, plain: httpx.AsyncClient, path: str, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    lean = await api.http.post(path, content=content, headers=headers)
    other = await plain.post(path, content=content, headers=headers)
    assert lean.status_code == other.status_code, (lean.text, other.text)
    if lean.status_code == 202:  # accepted by both (each with its own new id)
        lean_body, other_body = lean.json(), other.json()
        lean_body["data"].pop("id")
        other_body["data"].pop("id")
        assert lean_body == other_body
    else:
        assert lean.json() == other.json()
    for name in HEADERS:
        assert lean.headers.get(name) == other.headers.get(name), name
    return lean


def body(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


JSON = {"Content-Type": "application/json"}


def single_cases(data: dict[str, Any]) -> list[tuple[str, bytes, dict[str, str]]]:
    ok = {"event": EVENT, "data": data}
    return [
        ("not-json", b'{"event": ', JSON),
        ("empty", b"", JSON),
        ("array", body([ok]), JSON),
        ("string", body("x"), JSON),
        ("form", b"event=x", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("text-plain", body(ok), {"Content-Type": "text/plain"}),
        ("missing-event", body({"data": data}), JSON),
        ("empty-event", body({**ok, "event": ""}), JSON),
        ("long-event", body({**ok, "event": "x" * 101}), JSON),
        ("int-event", body({**ok, "event": 5}), JSON),
        ("null-event", body({**ok, "event": None}), JSON),
        ("missing-data", body({"event": EVENT}), JSON),
        ("list-data", body({**ok, "data": [1]}), JSON),
        ("null-data", body({**ok, "data": None}), JSON),
        ("bad-id", body({**ok, "id": "has space"}), JSON),
        ("id-newline", body({**ok, "id": "abc\n"}), JSON),
        ("long-id", body({**ok, "id": "a" * 201}), JSON),
        ("int-id", body({**ok, "id": 7}), JSON),
        ("empty-id", body({**ok, "id": ""}), JSON),
        ("channels-string", body({**ok, "channels": "a"}), JSON),
        ("channels-int", body({**ok, "channels": [1]}), JSON),
        ("channels-bad", body({**ok, "channels": ["a b"]}), JSON),
        ("channels-many", body({**ok, "channels": [f"c{i}" for i in range(11)]}), JSON),
        ("tenant-int", body({**ok, "tenant_id": 3}), JSON),
        ("extra-field", body({**ok, "colour": "blue"}), JSON),
        ("nul", body({**ok, "data": {**data, "body": "a\x00b"}}), JSON),
        ("huge-float", body({**ok, "data": {**data, "n": 1e20}}), JSON),
        ("huge-int", body({**ok, "data": {**data, "n": 2**64}}), JSON),
        ("bom", b"\xef\xbb\xbf" + body(ok), JSON),  # refused by both: one decoder at the edge
        ("int-just-below-range", body({**ok, "data": {**data, "n": -(2**63) - 1}}), JSON),
        ("nan", body({**ok, "data": {**data, "n": float("nan")}}), JSON),
        ("unknown-type", body({**ok, "event": "mesage.received"}), JSON),
        ("schema", body({**ok, "data": {**data, "from": 123}}), JSON),
        ("idempotency-key-too-long", body(ok), {**JSON, "Idempotency-Key": "k" * 201}),
    ]


async def test_malformed_single_events_answer_as_fastapi_does(api: Api, plain: httpx.AsyncClient) -> None:
    _, auth = await api.tenant()
    data = await example(api, auth)
    for _name, content, headers in single_cases(data):
        for who in (auth, api.admin, {}, api.auth("hk_wrong")):
            response = await same_answer(api, plain, "/v1/events", content, {**headers, **who})
            assert_error(response, response.status_code)


async def test_tenant_errors_answer_as_fastapi_does(api: Api, plain: httpx.AsyncClient) -> None:
    _, auth_a = await api.tenant("A")
    ok = {"event": EVENT, "data": await example(api, auth_a)}
    cases = [
        (body(ok), api.admin),  # the admin key must name a tenant
        (body({**ok, "tenant_id": "nope"}), api.admin),
        (body({**ok, "tenant_id": "other"}), auth_a),
        (body({"events": [ok]}), api.admin),
        (body({"events": [ok], "tenant_id": "nope"}), api.admin),
        (body({"events": [ok], "tenant_id": "other"}), auth_a),
    ]
    for content, auth in cases:
        path = "/v1/events/batch" if b'"events"' in content else "/v1/events"
        response = await same_answer(api, plain, path, content, {**JSON, **auth})
        assert response.status_code in (400, 403, 404), response.text
        assert_error(response, response.status_code)


async def test_malformed_batches_answer_as_fastapi_does(api: Api, plain: httpx.AsyncClient) -> None:
    _, auth = await api.tenant()
    data = await example(api, auth)
    item = {"event": EVENT, "data": data}
    cases = [
        body({"events": []}),
        body({"events": [item] * 1001}),
        body({"events": item}),
        body({"events": [item, {**item, "colour": "x"}]}),
        body({"events": [item, {**item, "event": ""}]}),
        body({"events": [item, {**item, "tenant_id": "x"}]}),
        body({"events": [item, {**item, "channels": ["a b"]}]}),
        body({"events": [item, {**item, "id": "a b"}]}),
        body({"events": [item, 5]}),
        body({"events": [item], "colour": "x"}),
        body({"events": [item], "tenant_id": 5}),
        body({"events": [item, {**item, "event": "mesage.sent"}]}),
        body({"events": [item, {**item, "data": {"to": 5}}]}),
        body([item]),
        b"",
        b"{",
    ]
    for content in cases:
        for who in (auth, {}, api.auth("hk_wrong")):
            response = await same_answer(api, plain, "/v1/events/batch", content, {**JSON, **who})
            assert_error(response, response.status_code)
    listed = assert_ok(await api.http.get("/v1/events", headers=auth))
    assert listed["items"] == []


async def test_accepted_and_replayed_answers_match(api: Api, plain: httpx.AsyncClient) -> None:
    _, auth = await api.tenant()
    assert_ok(
        await api.http.post(
            "/v1/webhooks", json={"url": "https://example.com/a", "events": ["*"]}, headers=auth
        ),
        201,
    )
    data = await example(api, auth)
    for client, prefix in ((api.http, "lean"), (plain, "plain")):
        event = {"event": EVENT, "data": data, "id": f"{prefix}-1", "channels": ["x", "x"]}
        headers = {
            **auth,
            "Idempotency-Key": f"{prefix}-key",
            "Content-Type": "application/json; charset=utf-8",
        }
        first = await client.post("/v1/events", content=body(event), headers=headers)
        again = await client.post("/v1/events", content=body(event), headers=headers)
        assert first.json() == {
            "status": True,
            "code": 202,
            "message": "Event accepted for delivery",
            "data": {"id": f"{prefix}-1", "event": EVENT, "deliveries": 1},
        }
        assert "idempotent-replayed" not in first.headers
        assert again.json()["message"] == "Event already accepted; nothing new was created"
        assert again.json()["data"] == first.json()["data"]
        assert again.headers["idempotent-replayed"] == "true"
        for response in (first, again):
            assert response.status_code == 202
            assert response.headers["content-type"] == "application/json"
            assert response.headers["content-length"] == str(len(response.content))
        batch = {"events": [{"event": EVENT, "data": data, "id": f"{prefix}-b{i % 2}"} for i in range(3)]}
        answer = await client.post("/v1/events/batch", content=body(batch), headers={**auth, **JSON})
        assert answer.status_code == 202
        assert answer.json()["message"] == "2 events accepted for delivery"
        assert [i["created"] for i in answer.json()["data"]["items"]] == [True, True, False]
    stored = assert_ok(await api.http.get("/v1/events/lean-1", headers=auth))
    assert stored["channels"] == ["x"]
    assert stored["data"] == data


async def test_body_without_content_type_is_415_as_on_every_route(api: Api) -> None:
    """Issue 9, finding 7: /v1/events read a body without Content-Type as JSON, /v1/webhooks did not."""
    _, auth = await api.tenant()
    event = {"event": EVENT, "data": await example(api, auth)}
    for path in ("/v1/events", "/v1/events/batch", "/v1/webhooks"):
        response = await api.http.post(path, content=body(event), headers=auth)
        assert_error(response, 415, "Content-Type must be application/json (the request has no Content-Type)")


async def test_openapi_still_documents_both_ingest_routes(api: Api) -> None:
    spec = (await api.http.get("/v1/openapi.json")).json()
    assert "post" in spec["paths"]["/v1/events"]
    assert "post" in spec["paths"]["/v1/events/batch"]
    parameters = spec["paths"]["/v1/events"]["post"]["parameters"]
    assert [p["name"] for p in parameters] == ["idempotency-key"]


async def test_tenant_deleted_by_another_process_is_404_for_the_admin_not_500(
    api: Api, services: Services
) -> None:
    """The admin key's tenant check is cached for a few seconds; a tenant deleted meanwhile elsewhere
    (here: straight in the database, so this process's caches do not know) is still a clean answer."""
    tenant_id, auth = await api.tenant()
    event = {"event": EVENT, "data": await example(api, auth), "tenant_id": tenant_id}
    assert_ok(await api.http.post("/v1/events", json=event, headers=api.admin), 202)
    assert_ok(await api.http.post("/v1/events", json=event, headers=auth), 202)
    async with services.store.write() as conn:
        await conn.execute(sa.delete(tenants).where(tenants.c.id == tenant_id))
    response = await api.http.post("/v1/events", json=event, headers=api.admin)
    assert_error(response, 404, f"tenant '{tenant_id}' not found")
    batch = {"events": [{"event": EVENT, "data": event["data"]}], "tenant_id": tenant_id}
    assert_error(await api.http.post("/v1/events/batch", json=batch, headers=api.admin), 404)


async def test_tenant_key_of_a_tenant_deleted_elsewhere_is_401_not_500(api: Api, services: Services) -> None:
    tenant_id, auth = await api.tenant()
    event = {"event": EVENT, "data": await example(api, auth)}
    assert_ok(await api.http.post("/v1/events", json=event, headers=auth), 202)  # the key is now cached
    async with services.store.write() as conn:
        await conn.execute(sa.delete(tenants).where(tenants.c.id == tenant_id))
    assert_error(
        await api.http.post("/v1/events", json=event, headers=auth), 401, "invalid or revoked API key"
    )


async def test_deleting_a_tenant_through_the_api_forgets_it_at_once(api: Api) -> None:
    tenant_id, auth = await api.tenant()
    event = {"event": EVENT, "data": await example(api, auth), "tenant_id": tenant_id}
    assert_ok(await api.http.post("/v1/events", json=event, headers=api.admin), 202)
    assert_ok(await api.http.delete(f"/v1/tenants/{tenant_id}", headers=api.admin))
    response = await api.http.post("/v1/events", json=event, headers=api.admin)
    assert_error(response, 404, f"tenant '{tenant_id}' not found")


async def test_well_formed_posts_do_not_reach_fastapi(services: Services) -> None:
    from hookline.api.ingest import FastIngest

    app = create_app(services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as http:
        api = Api(http)
        _, auth = await api.tenant()
        data = await example(api, auth)
        layer: Any = app.middleware_stack
        while not isinstance(layer, FastIngest):
            layer = layer.app
        reached: list[str] = []
        inner = layer.app

        async def spy(scope: Any, receive: Any, send: Any) -> None:
            reached.append(scope["path"])
            await inner(scope, receive, send)

        layer.app = spy
        assert_ok(await http.post("/v1/events", json={"event": EVENT, "data": data}, headers=auth), 202)
        batch = {"events": [{"event": EVENT, "data": data}]}
        assert_ok(await http.post("/v1/events/batch", json=batch, headers=auth), 202)
        assert_error(await http.post("/v1/events", json={"event": "nope", "data": {}}, headers=auth), 400)
        assert reached == []
        missing = await http.post("/v1/events", json={"event": EVENT}, headers=auth)
        assert_error(missing, 400, "'data' is required")
        assert reached == ["/v1/events"]
