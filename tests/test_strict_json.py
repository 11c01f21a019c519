"""Issue 9, findings 3, 4, 5 and 7: what the edge of the API accepts, and that whatever it accepts can be
read back by every route.

One strict JSON decoder (``hookline.api.jsonbody``) reads every request body, so these tests send bodies
as a hostile client would (UTF-16, NaN, 25-digit integers, lone surrogates, invalid UTF-8, 1,000 levels of
nesting, NUL in a path) and check three things each time: the exact status and error text, that nothing
was stored, and that the tenant's list routes still answer (the old code stored some of these shapes and
then answered 500 on every later read). The accepted extremes (the deepest body, the largest and smallest
numbers, astral characters, escapes) are written through every resource that stores JSON and read back
through every list and detail route. Deep bodies are built as bytes: orjson itself refuses to write
more than 254 levels, which is the point of the limit.

Everything runs in-process on both backends, except the one request that only uvicorn's HTTP parser
sees (a 70,000-character path), which needs a real ``hookline api`` process.
"""

from __future__ import annotations

import itertools
import shutil
import socket
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as outcome
from hypothesis import strategies as st

from tests.chaos.procs import Processes, base_env, start_api
from tests.conftest import Api, assert_error, assert_ok

MAX_DEPTH = 64  # hookline.api.jsonbody.MAX_DEPTH, spelled out so the test states the contract
HOOK = {"url": "https://example.com/hook"}
ANY_TYPE = "strict.any"  # a custom event type whose schema takes any object
JSON = {"Content-Type": "application/json"}

TOO_DEEP = f"request body is nested more than {MAX_DEPTH} levels deep"
OUT_OF_RANGE = "request body has a number outside the 64-bit integer range"
SURROGATE = "request body must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"
NOT_UTF8 = "request body is not valid UTF-8 (JSON must be sent as UTF-8)"
LOOKS_UTF16 = "request body is not valid JSON (it looks like UTF-16 or UTF-32: send UTF-8)"
NO_UTF16 = "charset 'utf-16' is not supported: send JSON in UTF-8"
NO_CONTENT_TYPE = "Content-Type must be application/json (the request has no Content-Type)"
DECODER_ERRORS = {TOO_DEEP, OUT_OF_RANGE, SURROGATE, NOT_UTF8, LOOKS_UTF16}


# --- helpers ---------------------------------------------------------------------------------------


def nested(levels: int, inner: bytes = b"{}") -> bytes:
    """``levels`` levels of JSON containers (objects and arrays alternating), as bytes."""
    opens = [b'{"d":' if i % 2 == 0 else b"[" for i in range(levels - 1)]
    closes = [b"}" if i % 2 == 0 else b"]" for i in range(levels - 1)]
    return b"".join(opens) + inner + b"".join(reversed(closes))


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


async def send(
    api: Api, method: str, path: str, raw: bytes, auth: dict[str, str], content_type: str | None = None
) -> httpx.Response:
    headers = {**auth, "Content-Type": content_type or "application/json"}
    return await api.http.request(method, path, content=raw, headers=headers)


async def any_type(api: Api) -> None:
    """The permissive custom event type (created once per database)."""
    response = await api.http.post(
        "/v1/event-types", json={"name": ANY_TYPE, "schema": {"type": "object"}}, headers=api.admin
    )
    assert response.status_code in (201, 409), response.text


async def setup(api: Api) -> tuple[str, dict[str, str], str]:
    """A tenant, its key, a webhook for every event, and the permissive event type."""
    tenant_id, auth = await api.tenant()
    hook = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=auth), 201)
    await any_type(api)
    return tenant_id, auth, str(hook["id"])


async def still_readable(api: Api, auth: dict[str, str]) -> tuple[list[Any], list[Any], list[Any]]:
    """The tenants, the tenant's webhooks and its events: every one of these lists must still answer 200."""
    tenants = assert_ok(await api.http.get("/v1/tenants", headers=api.admin))["items"]
    hooks = assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"]
    events = assert_ok(await api.http.get("/v1/events", headers=auth))["items"]
    return tenants, hooks, events


def event(data: bytes) -> bytes:
    return b'{"event": "' + ANY_TYPE.encode() + b'", "data": ' + data + b"}"


def hook_with_metadata(metadata: bytes) -> bytes:
    return b'{"url": "https://example.com/hook", "metadata": ' + metadata + b"}"


def tenant_with_metadata(metadata: bytes) -> bytes:
    return b'{"name": "Refused", "metadata": ' + metadata + b"}"


# --- finding 3: UTF-16, NaN and numbers out of range ------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "content_type", "status", "error"),
    [
        ("utf-16-le", "application/json", 400, LOOKS_UTF16),
        ("utf-16-be", "application/json", 400, LOOKS_UTF16),
        ("utf-16", "application/json", 400, NOT_UTF8),  # with a byte order mark
        ("utf-16-le", "application/json; charset=utf-16", 415, NO_UTF16),
    ],
)
async def test_utf16_webhook_with_nan_schedule_is_refused(
    api: Api, encoding: str, content_type: str, status: int, error: str
) -> None:
    """It was a 201 on SQLite (a 500 on PostgreSQL), and the worker then looped on the NaN for ever."""
    _, auth = await api.tenant()
    raw = '{"url": "https://example.com/hook", "retry_schedule": [NaN]}'.encode(encoding)
    assert_error(await send(api, "POST", "/v1/webhooks", raw, auth, content_type), status, error)
    assert (await still_readable(api, auth))[1] == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le"])
async def test_nan_and_infinity_in_event_data_are_refused(api: Api, literal: str, encoding: str) -> None:
    """Via UTF-16 they were stored as null (202)."""
    _, auth, _ = await setup(api)
    raw = event(b'{"n": ' + literal.encode() + b"}").decode().encode(encoding)
    if encoding != "utf-8":
        expected = LOOKS_UTF16
    elif literal == "1e400":
        expected = OUT_OF_RANGE
    else:
        expected = f"request body must not contain {literal} (it is not valid JSON)"
    assert_error(await send(api, "POST", "/v1/events", raw, auth), 400, expected)
    assert (await still_readable(api, auth))[2] == []


BAD_VALUES = [
    pytest.param(b"1234567890123456789012345", OUT_OF_RANGE, id="25-digit-int"),
    pytest.param(b"-1234567890123456789012345", OUT_OF_RANGE, id="25-digit-negative-int"),
    pytest.param(b"18446744073709551616", OUT_OF_RANGE, id="2**64"),
    pytest.param(b"1e20", OUT_OF_RANGE, id="1e20"),
    pytest.param(b'"\\ud800"', SURROGATE, id="lone-high-surrogate"),
    pytest.param(b'"a\\udc00b"', SURROGATE, id="lone-low-surrogate"),
    pytest.param(b'"\xed\xa0\x80"', NOT_UTF8, id="raw-ED-A0-80"),
]


@pytest.mark.parametrize(("value", "error"), BAD_VALUES)
async def test_unstorable_values_in_event_data_are_refused(api: Api, value: bytes, error: str) -> None:
    _, auth, _ = await setup(api)
    assert_error(await send(api, "POST", "/v1/events", event(b'{"v": ' + value + b"}"), auth), 400, error)
    batch = b'{"events": [' + event(b'{"v": ' + value + b"}") + b"]}"
    assert_error(await send(api, "POST", "/v1/events/batch", batch, auth), 400, error)
    assert (await still_readable(api, auth))[2] == []


@pytest.mark.parametrize(("value", "error"), BAD_VALUES)
async def test_unstorable_values_in_metadata_are_refused(api: Api, value: bytes, error: str) -> None:
    """Tenant metadata with 1e20 or a 25-digit integer used to commit, then break GET /v1/tenants for all;
    PATCH of webhook metadata with 1e20 committed then answered 500 on PostgreSQL."""
    tenant_id, auth, hook_id = await setup(api)
    before = await still_readable(api, auth)
    metadata = b'{"v": ' + value + b"}"
    assert_error(
        await send(api, "POST", "/v1/tenants", tenant_with_metadata(metadata), api.admin), 400, error
    )
    patch = b'{"metadata": ' + metadata + b"}"
    assert_error(await send(api, "PATCH", f"/v1/tenants/{tenant_id}", patch, api.admin), 400, error)
    assert_error(await send(api, "POST", "/v1/webhooks", hook_with_metadata(metadata), auth), 400, error)
    assert_error(await send(api, "PATCH", f"/v1/webhooks/{hook_id}", patch, auth), 400, error)
    assert await still_readable(api, auth) == before


@pytest.mark.parametrize("value", ["1234567890123456789012345", '"\\ud800"', "NaN", "1e400"])
async def test_utf16_bodies_with_unstorable_values_are_refused_everywhere(api: Api, value: str) -> None:
    """Through UTF-16, 25-digit integers and lone surrogates were 500s and NaN was stored as null."""
    tenant_id, auth, hook_id = await setup(api)
    before = await still_readable(api, auth)
    metadata = '{"v": ' + value + "}"
    writes = [
        ("POST", "/v1/events", f'{{"event": "{ANY_TYPE}", "data": {metadata}}}', auth),
        ("POST", "/v1/events/batch", f'{{"events": [{{"event": "{ANY_TYPE}", "data": {metadata}}}]}}', auth),
        ("POST", "/v1/webhooks", f'{{"url": "https://example.com/hook", "metadata": {metadata}}}', auth),
        ("PATCH", f"/v1/webhooks/{hook_id}", f'{{"metadata": {metadata}}}', auth),
        ("POST", "/v1/tenants", f'{{"name": "Refused", "metadata": {metadata}}}', api.admin),
        ("PATCH", f"/v1/tenants/{tenant_id}", f'{{"metadata": {metadata}}}', api.admin),
    ]
    for method, path, text, who in writes:
        response = await send(api, method, path, text.encode("utf-16-le"), who)
        assert_error(response, 400, LOOKS_UTF16)
    assert await still_readable(api, auth) == before


# --- finding 4: shapes of JSON ----------------------------------------------------------------------


@pytest.mark.parametrize("levels", [1_000, 1_025, 5_000, 100_000])
async def test_deeply_nested_bodies_are_refused(api: Api, levels: int) -> None:
    """1,000+ levels were a RecursionError (500) in the body-limit middleware."""
    _, auth, _ = await setup(api)
    for path in ("/v1/events", "/v1/webhooks"):
        assert_error(await send(api, "POST", path, nested(levels), auth), 400, TOO_DEEP)
    assert_error(await send(api, "POST", "/v1/events", event(nested(levels)), auth), 400, TOO_DEEP)
    _, hooks, events = await still_readable(api, auth)
    assert len(hooks) == 1 and events == []


@pytest.mark.parametrize("levels", [MAX_DEPTH, 250, 253, 254, 500, 1_022])
async def test_deep_event_data_is_refused(api: Api, levels: int) -> None:
    """253-1,022 levels were a 500; about 250 was accepted and broke GET /v1/events for good."""
    _, auth, _ = await setup(api)
    assert_error(await send(api, "POST", "/v1/events", event(nested(levels)), auth), 400, TOO_DEEP)
    batch = b'{"events": [' + event(nested(levels)) + b"]}"
    assert_error(await send(api, "POST", "/v1/events/batch", batch, auth), 400, TOO_DEEP)
    assert (await still_readable(api, auth))[2] == []


@pytest.mark.parametrize("levels", [250, 254, 300])
async def test_deep_metadata_is_refused(api: Api, levels: int) -> None:
    """Webhook metadata of 254+ levels was a 500, about 250 broke GET /v1/webhooks; tenant metadata of 300
    levels committed and then broke GET /v1/tenants for every tenant."""
    tenant_id, auth, hook_id = await setup(api)
    before = await still_readable(api, auth)
    metadata = nested(levels)
    assert_error(await send(api, "POST", "/v1/webhooks", hook_with_metadata(metadata), auth), 400, TOO_DEEP)
    patch = b'{"metadata": ' + metadata + b"}"
    assert_error(await send(api, "PATCH", f"/v1/webhooks/{hook_id}", patch, auth), 400, TOO_DEEP)
    response = await send(api, "POST", "/v1/tenants", tenant_with_metadata(metadata), api.admin)
    assert_error(response, 400, TOO_DEEP)
    assert_error(await send(api, "PATCH", f"/v1/tenants/{tenant_id}", patch, api.admin), 400, TOO_DEEP)
    assert await still_readable(api, auth) == before


# --- the accepted extremes, read back by every route ------------------------------------------------

ASTRAL = "\U0001f600\U0001d11e\U0010fffd"
EXTREMES: dict[str, Any] = {
    "max": 2**64 - 1,
    "min": -(2**63),
    "big_float": 1.7e19,
    "smallest_float": 5e-324,
    "negative_float": -9.2e18,
    "astral": ASTRAL * 300,
    "escapes": '" \\ \n \t \u2028 \u2029 \x01 \x7f / \u00e9',
    "empty_object": {},
    "empty_list": [],
    "lists": [[], [{}], [[[]]]],
    "key " + ASTRAL + ' "\\\n': True,
    "nothing": None,
}


def deepest(level: int, tag: str) -> dict[str, Any]:
    """The extremes, plus nesting that brings a body to exactly ``MAX_DEPTH`` levels when this object
    sits at ``level`` of the body (the body itself is level 1)."""
    return {**EXTREMES, "tag": tag, "deep": orjson.loads(nested(MAX_DEPTH - level))}


def body(value: dict[str, Any]) -> bytes:
    assert depth(value) == MAX_DEPTH, depth(value)  # exactly the limit, not a level less
    return orjson.dumps(value)


def one_deeper(value: dict[str, Any]) -> bytes:
    """The same body with its deepest object (the last ``{}``: "deep" is the last key) one level deeper."""
    raw = body(value)
    split = raw.rindex(b"{}")
    return raw[:split] + b'{"d":{}}' + raw[split + 2 :]


async def read_everything(
    api: Api, tenant_id: str, auth: dict[str, str], hook_id: str, event_ids: list[str]
) -> dict[str, Any]:
    """Every list and detail route that shows stored JSON (or its neighbours), each a 200."""
    get = api.http.get
    tenants = assert_ok(await get("/v1/tenants?limit=100", headers=api.admin))["items"]
    hooks = assert_ok(await get("/v1/webhooks", headers=auth))["items"]
    events = assert_ok(await get("/v1/events", headers=auth))["items"]
    deliveries = assert_ok(await get(f"/v1/webhooks/{hook_id}/deliveries", headers=auth))["items"]
    assert len(deliveries) == len(event_ids)
    for delivery in deliveries:
        assert_ok(await get(f"/v1/deliveries/{delivery['id']}", headers=auth))
    types = assert_ok(await get("/v1/event-types?limit=100", headers=auth))["items"]
    return {
        "tenant_list": next(t for t in tenants if t["id"] == tenant_id)["metadata"],
        "tenant": assert_ok(await get(f"/v1/tenants/{tenant_id}", headers=api.admin))["metadata"],
        "hook_list": next(h for h in hooks if str(h["id"]) == hook_id)["metadata"],
        "hook": assert_ok(await get(f"/v1/webhooks/{hook_id}", headers=auth))["metadata"],
        "event_list": {e["id"]: e["data"] for e in events},
        "events": {i: assert_ok(await get(f"/v1/events/{i}", headers=auth))["data"] for i in event_ids},
        "type_list": next(t for t in types if t["name"] == ANY_TYPE)["example"],
        "type": assert_ok(await get(f"/v1/event-types/{ANY_TYPE}", headers=auth))["example"],
    }


# The 64-bit extremes in event data need HOOKLINE_JSON_SAFE_INTEGERS=false (by default an integer beyond
# what JavaScript reads exactly is refused at ingest: tests/test_javascript_json.py).
@pytest.mark.parametrize("settings_overrides", [{"json_safe_integers": False}])
async def test_the_accepted_extremes_are_read_back_intact_by_every_route(api: Api) -> None:
    """Issue 9: "values that are stored must be readable back", through every resource that stores JSON."""
    admin = api.admin
    created = await send(api, "POST", "/v1/tenants", body({"name": "X", "metadata": deepest(2, "t1")}), admin)
    tenant_id = assert_ok(created, 201)["id"]
    key = assert_ok(await api.http.post(f"/v1/tenants/{tenant_id}/keys", headers=admin), 201)["key"]
    auth = api.auth(key)
    hook = await send(api, "POST", "/v1/webhooks", body({**HOOK, "metadata": deepest(2, "w1")}), auth)
    hook_id = str(assert_ok(hook, 201)["id"])
    type_body = {"name": ANY_TYPE, "schema": {"type": "object"}, "example": deepest(2, "x")}
    assert_ok(await send(api, "POST", "/v1/event-types", body(type_body), admin), 201)
    single = {"event": ANY_TYPE, "id": "evt_single", "data": deepest(2, "e1")}
    assert_ok(await send(api, "POST", "/v1/events", body(single), auth), 202)
    batch = {"events": [{"event": ANY_TYPE, "id": "evt_batch", "data": deepest(4, "e2")}]}
    assert_ok(await send(api, "POST", "/v1/events/batch", body(batch), auth), 202)
    events = ["evt_single", "evt_batch"]

    seen = await read_everything(api, tenant_id, auth, hook_id, events)
    assert seen["tenant_list"] == seen["tenant"] == deepest(2, "t1")
    assert seen["hook_list"] == seen["hook"] == deepest(2, "w1")
    assert seen["type_list"] == seen["type"] == deepest(2, "x")
    expected_events = {"evt_single": deepest(2, "e1"), "evt_batch": deepest(4, "e2")}
    assert seen["event_list"] == seen["events"] == expected_events

    patch = body({"metadata": deepest(2, "t2")})
    assert_ok(await send(api, "PATCH", f"/v1/tenants/{tenant_id}", patch, admin))
    patch = body({"metadata": deepest(2, "w2")})
    assert_ok(await send(api, "PATCH", f"/v1/webhooks/{hook_id}", patch, auth))
    seen = await read_everything(api, tenant_id, auth, hook_id, events)
    assert seen["tenant_list"] == seen["tenant"] == deepest(2, "t2")
    assert seen["hook_list"] == seen["hook"] == deepest(2, "w2")

    # One level deeper than the limit is refused, on every one of those writes, and changes nothing.
    refusals = [
        ("POST", "/v1/tenants", {"name": "Y", "metadata": deepest(2, "t3")}, admin),
        ("PATCH", f"/v1/tenants/{tenant_id}", {"metadata": deepest(2, "t3")}, admin),
        ("POST", "/v1/webhooks", {**HOOK, "metadata": deepest(2, "w3")}, auth),
        ("PATCH", f"/v1/webhooks/{hook_id}", {"metadata": deepest(2, "w3")}, auth),
        ("POST", "/v1/event-types", {**type_body, "name": "strict.other"}, admin),
        ("POST", "/v1/events", {**single, "id": "evt_deeper"}, auth),
        ("POST", "/v1/events/batch", {"events": [{**batch["events"][0], "id": "evt_deeper"}]}, auth),
    ]
    for method, path, value, who in refusals:
        assert_error(await send(api, method, path, one_deeper(value), who), 400, TOO_DEEP)
    assert await read_everything(api, tenant_id, auth, hook_id, events) == seen
    assert (await api.http.get("/v1/event-types/strict.other", headers=auth)).status_code == 404


# --- any value within the limits: accepted and read back equal, or a decoder's 400 ------------------

_ids = itertools.count()
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(codec="utf-8", exclude_characters="\x00")), children, max_size=4
        )
    ),
    max_leaves=20,
)


def same_json(read: Any, sent: Any) -> bool:
    """Whether ``read`` is ``sent`` as JSON: a float that is a whole number may come back as an integer
    (bodies are laid out as JavaScript writes them: ``hookline.javascript_json``), the same double."""
    if isinstance(read, dict) and isinstance(sent, dict):
        return read.keys() == sent.keys() and all(same_json(read[k], sent[k]) for k in sent)
    if isinstance(read, list) and isinstance(sent, list):
        return len(read) == len(sent) and all(same_json(a, b) for a, b in zip(read, sent, strict=True))
    if type(sent) is float and type(read) in (int, float):
        return float(read) == sent
    return type(read) is type(sent) and read == sent


# Integers across the whole 64-bit range (HOOKLINE_JSON_SAFE_INTEGERS=false lets event data hold them).
@pytest.mark.parametrize("settings_overrides", [{"json_safe_integers": False}])
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=json_values)
async def test_any_json_value_is_stored_and_read_back_or_refused_with_a_400(api: Api, value: Any) -> None:
    _, auth, _ = await setup(api)
    event_id = f"evt_prop_{next(_ids)}"
    raw = orjson.dumps({"event": ANY_TYPE, "id": event_id, "data": {"v": value}})
    response = await send(api, "POST", "/v1/events", raw, auth)
    outcome(str(response.status_code))
    if response.status_code == 400:
        assert assert_error(response, 400)["error"] in DECODER_ERRORS, response.text
        assert (await api.http.get(f"/v1/events/{event_id}", headers=auth)).status_code == 404
        return
    assert_ok(response, 202)
    assert same_json(
        assert_ok(await api.http.get(f"/v1/events/{event_id}", headers=auth))["data"], {"v": value}
    )
    assert same_json([e["data"] for e in (await still_readable(api, auth))[2]], [{"v": value}])


# --- finding 5: control characters in a path or query ---------------------------------------------

IN_PATH = "request path must not contain control characters (such as NUL)"
IN_QUERY = "query parameters must not contain control characters (such as NUL)"


@pytest.mark.parametrize(
    ("path", "who", "error"),
    [
        ("/v1/events/%00", "tenant", IN_PATH),
        ("/v1/events/evt%00x", "tenant", IN_PATH),
        ("/v1/events?event=%00", "tenant", IN_QUERY),
        ("/v1/events?event=a%1fb", "tenant", IN_QUERY),
        ("/v1/events?tenant_id=%00", "admin", IN_QUERY),
        ("/v1/webhooks?tenant_id=%00", "admin", IN_QUERY),
        ("/v1/tenants/%00", "admin", IN_PATH),
        ("/v1/tenants/%00/keys", "admin", IN_PATH),
        ("/v1/webhooks/%00", "tenant", IN_PATH),
        ("/v1/webhooks/%7f/deliveries", "tenant", IN_PATH),
        ("/v1/deliveries/%00", "tenant", IN_PATH),
        ("/v1/event-types/%00", "tenant", IN_PATH),
    ],
)
async def test_control_characters_in_path_or_query_are_400(api: Api, path: str, who: str, error: str) -> None:
    """NUL reached PostgreSQL as text and was a 500 there (SQLite answered 404)."""
    _, auth = await api.tenant()
    headers = api.admin if who == "admin" else auth
    assert_error(await api.http.get(path, headers=headers), 400, error)


async def test_nul_in_the_path_of_a_write_is_400_and_creates_nothing(api: Api) -> None:
    response = await api.http.post("/v1/tenants/%00/keys", headers=api.admin)
    assert_error(response, 400, IN_PATH)
    assert assert_ok(await api.http.get("/v1/tenants", headers=api.admin))["items"] == []


# --- finding 7: consistent edges --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch", "/v1/webhooks", "/v1/tenants"])
@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        (None, NO_CONTENT_TYPE),
        ("text/json", "Content-Type must be application/json (got 'text/json')"),
        ("text/plain", "Content-Type must be application/json (got 'text/plain')"),
        ("application/json; charset=utf-16", NO_UTF16),
        ("application/json; charset=latin-1", "charset 'latin-1' is not supported: send JSON in UTF-8"),
    ],
)
async def test_a_body_not_declared_as_utf8_json_is_415_on_every_route(
    api: Api, path: str, content_type: str | None, error: str
) -> None:
    """/v1/events read a body without Content-Type as JSON while /v1/webhooks answered 415; text/json
    was a 400."""
    _, auth, _ = await setup(api)
    before = await still_readable(api, auth)
    valid = {
        "/v1/events": {"event": ANY_TYPE, "data": {}},
        "/v1/events/batch": {"events": [{"event": ANY_TYPE, "data": {}}]},
        "/v1/webhooks": HOOK,
        "/v1/tenants": {"name": "Other"},
    }[path]
    headers = {**(api.admin if path == "/v1/tenants" else auth)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await api.http.post(path, content=orjson.dumps(valid), headers=headers)
    assert_error(response, 415, error)
    assert await still_readable(api, auth) == before


async def test_a_path_over_2048_characters_is_414(api: Api) -> None:
    _, auth = await api.tenant()
    response = await api.http.get("/v1/events/" + "a" * 3_000, headers=auth)
    assert_error(response, 414, "request path is longer than 2048 characters")
    response = await api.http.get("/v1/events/" + "a" * 2_000, headers=auth)
    assert_error(response, 404)  # at the limit: an ordinary unknown event


async def test_get_on_the_batch_route_is_405_allowing_post(api: Api) -> None:
    """It was routed to GET /v1/events/{id} (a 404 for an event called "batch")."""
    _, auth = await api.tenant()
    response = await api.http.get("/v1/events/batch", headers=auth)
    assert_error(response, 405, "method GET is not allowed on /v1/events/batch")
    assert response.headers["allow"] == "POST"


# --- finding 7, with a real process: what uvicorn's own parser refuses ------------------------------


def test_a_path_the_http_parser_refuses_gets_the_envelope(
    procs: Processes, tmp_path: Path, sqlite_template: Path
) -> None:
    """A 64 KB path never reaches the app: uvicorn answered a plain-text 400 itself. One process start
    (SQLite): this is about the HTTP layer, not the store."""
    database = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, database)
    env = base_env(HOOKLINE_DATABASE_URL=f"sqlite:///{database}", HOOKLINE_LOG_LEVEL="warning")
    _, base_url = start_api(procs, "api", env)
    # httpx refuses to build a URL this long, so the request is written by hand.
    host, port = base_url.removeprefix("http://").split(":")
    request = b"GET /v1/events/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    response = httpx.Response(int(status_line.split()[1]), headers=headers, content=content)
    assert_error(
        response,
        400,
        "the request could not be read as HTTP/1.1 (malformed, or a request line or headers too long)",
    )
    with httpx.Client(base_url=base_url, timeout=10) as http:
        response = http.get("/v1/events/" + "a" * 3_000)
        assert_error(response, 414, "request path is longer than 2048 characters")
        assert http.get("/health").status_code == 200  # and the server is still serving
