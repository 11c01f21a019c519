"""The strict JSON decoder (``hookline.api.jsonbody``) on its own, and the one promise it exists for:
whatever it accepts, the store can hold and every later read can serialise again.

The decoder is tested without HTTP first (hypothesis: values within the limits come back equal; any
value at all is either refused with a 400 or survives what PostgreSQL's jsonb does to numbers), then
through the API on both backends for the boundary it once got wrong: a float equal to -2**63 was
accepted, jsonb printed it back as -9223372036854776000 (below the int64 range), and GET /v1/tenants
answered 500 for every tenant. The end-to-end cases of issue 9 (UTF-16, NaN, depth, NUL in paths,
Content-Type, the extremes read back by every route) are in ``tests/test_strict_json.py``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.exceptions import HTTPException

from hookline.api.jsonbody import MAX_DEPTH, BodyRejected, check_content_type, decode
from hookline.api.routing import StrictJsonRequest
from tests.conftest import Api, assert_error, assert_ok

OUT_OF_RANGE = "request body has a number outside the 64-bit integer range"
TOO_DEEP = f"request body is nested more than {MAX_DEPTH} levels deep"
NUL = "request body must not contain NUL (\\u0000) characters"
JSON = {"Content-Type": "application/json"}

# Floats at the edges of what is accepted: the largest float below 2**64 and the smallest above -2**63.
HIGHEST_FLOAT = 18446744073709549568.0
LOWEST_FLOAT = -9223372036854774784.0


def refusal(raw: bytes) -> tuple[int, str]:
    with pytest.raises(BodyRejected) as caught:
        decode(raw)
    return caught.value.status, caught.value.message


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def depth(value: Any) -> int:
    """Container levels, without recursion (the values under test may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


# --- what PostgreSQL does to a stored value --------------------------------------------------------


def through_jsonb(value: Any) -> Any:
    """``value`` as it comes back from a jsonb column: written as SQLAlchemy writes it (json.dumps), held
    as numeric (exact decimal, printed without an exponent), read back with json.loads."""

    def numeric(literal: str) -> Any:
        return json.loads(format(Decimal(literal), "f"))

    return json.loads(json.dumps(value), parse_float=numeric)


def as_decimals(value: Any) -> Any:
    """``value`` with every number as the decimal its JSON text says: the float 1.844674407370955e19 and
    the integer 18446744073709550000 that jsonb gives back for it are the same JSON number."""
    return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)


def readable(value: Any) -> None:
    """Serialises as the deepest response does: envelope, page, item, field."""
    orjson.dumps({"data": {"items": [{"metadata": value}]}})


# --- values within the limits -----------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
ACCEPTED_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(min_value=LOWEST_FLOAT, max_value=HIGHEST_FLOAT, allow_nan=False)
    | TEXT
)
accepted_values = st.recursive(
    ACCEPTED_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=accepted_values)
@example(value={"max": 2**64 - 1, "min": -(2**63), "high": HIGHEST_FLOAT, "low": LOWEST_FLOAT})
@example(value={"tiny": 5e-324, "negative_zero": -0.0, "astral": "\U0001f600\U0010fffd", "": [{}, []]})
@example(value={"escapes": '" \\ / \b \f \n \r \t \x01 \x1f \x7f \u2028 \u2029 \ufffe \uffff'})
def test_values_within_the_limits_are_decoded_unchanged(value: Any) -> None:
    assert decode(orjson.dumps(value)) == value
    assert as_decimals(through_jsonb(value)) == as_decimals(value)  # PostgreSQL gives back the same numbers
    readable(through_jsonb(value))


# --- any value: refused, or readable after the store ----------------------------------------------

BOUNDARIES = [
    -(2**63) - 1,
    -(2**63),
    2**64 - 1,
    2**64,
    -(2.0**63),  # the float that broke GET /v1/tenants on PostgreSQL
    LOWEST_FLOAT,
    HIGHEST_FLOAT,
    2.0**64,
    1e20,
    -1e19,
    10**25,
]
ANY_SCALARS = (
    st.none()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(BOUNDARIES)
    | TEXT
)
any_values = st.recursive(
    ANY_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=any_values)
@example(value={"v": -(2.0**63)})
@example(value={"v": 2.0**64})
@example(value={"v": -(2**63) - 1})
def test_every_accepted_value_can_be_read_back_after_postgresql(value: Any) -> None:
    raw = json.dumps(value).encode()  # json.dumps: orjson refuses to write the out-of-range integers
    try:
        decoded = decode(raw)
    except BodyRejected as exc:
        assert (exc.status, exc.message) == (400, OUT_OF_RANGE)
        return
    readable(decoded)
    readable(through_jsonb(decoded))


@pytest.mark.parametrize(
    "literal",
    [
        b"-9223372036854775808.0",
        b"-9.223372036854776e18",
        b"-9223372036854775807.9",
        b"1.8446744073709552e19",
    ],
)
def test_a_float_at_the_edge_of_the_range_is_refused(literal: bytes) -> None:
    assert refusal(b'{"v": ' + literal + b"}") == (400, OUT_OF_RANGE)


# --- depth -----------------------------------------------------------------------------------------


def test_the_depth_limit_is_exact_and_never_recursion() -> None:
    assert depth(decode(nested(MAX_DEPTH))) == MAX_DEPTH
    for levels in (MAX_DEPTH + 1, 254, 1_023, 1_024, 1_025, 200_000):
        assert refusal(nested(levels)) == (400, TOO_DEEP), levels
    scalars_at_the_bottom = b'{"a":' * (MAX_DEPTH - 1) + b'{"x": 1, "y": "z"}' + b"}" * (MAX_DEPTH - 1)
    assert depth(decode(scalars_at_the_bottom)) == MAX_DEPTH  # scalars are not a level
    # An unreadable number beside the refused depth: the depth is named.
    assert refusal(b"[" * 100 + b"1e20" + b"]" * 100) == (400, TOO_DEEP)


# --- the words of each refusal ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b'{"a": "x\x00y"}', 400, NUL),  # a raw NUL byte: not UTF-16, just a NUL
        (b'{"a": "x\\u0000y"}', 400, NUL),
        (b'{"x\\u0000": 1}', 400, NUL),
        (b'["\\ud83d"]', 400, "request body must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"),
        (
            b'["\\ude00\\ud83d"]',
            400,
            "request body must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)",
        ),
        (b'"\xed\xa0\x80"', 400, "request body is not valid UTF-8 (JSON must be sent as UTF-8)"),
        (b'"\xff"', 400, "request body is not valid UTF-8 (JSON must be sent as UTF-8)"),
        (b'\xef\xbb\xbf{"a": 1}', 400, "request body must not start with a byte order mark"),
        (
            '{"a": 1}'.encode("utf-16-le"),
            400,
            "request body is not valid JSON (it looks like UTF-16 or UTF-32: send UTF-8)",
        ),
        (
            ' {"a": 1}'.encode("utf-32-be"),
            400,
            "request body is not valid JSON (it looks like UTF-16 or UTF-32: send UTF-8)",
        ),
        (b"[NaN]", 400, "request body must not contain NaN (it is not valid JSON)"),
        (b"[-Infinity]", 400, "request body must not contain -Infinity (it is not valid JSON)"),
        (b"[1e400]", 400, OUT_OF_RANGE),
        (b"[-1e400]", 400, OUT_OF_RANGE),
        (b"[1234567890123456789012345]", 400, OUT_OF_RANGE),
        (b'{"a": 1,}', 400, "request body is not valid JSON"),
        (b"{'a': 1}", 400, "request body is not valid JSON"),
    ],
)
def test_each_refusal_names_its_reason(raw: bytes, status: int, message: str) -> None:
    assert refusal(raw) == (status, message)


def test_the_escaped_characters_that_are_allowed_are_kept() -> None:
    raw = rb'{"s": "\u0001\u001f\"\\\/\b\f\n\r\t\ud83d\ude00\u00e9", "\u00e9": [], "": {}}'
    assert decode(raw) == {"s": '\x01\x1f"\\/\b\f\n\r\t\U0001f600\u00e9', "\u00e9": [], "": {}}


# --- Content-Type -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"application/json",
        b"Application/JSON",
        b"application/json; charset=utf-8",
        b'application/json;charset="UTF-8"',
        b"application/json; charset=utf8",
        b"application/merge-patch+json",  # application/*+json is JSON by RFC 6839
        b"application/json; boundary=x",
    ],
)
def test_json_content_types_are_accepted(value: bytes) -> None:
    check_content_type(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Content-Type must be application/json (the request has no Content-Type)"),
        (b"", "Content-Type must be application/json"),
        (b"text/json", "Content-Type must be application/json (got 'text/json')"),
        (b"application/jsonx", "Content-Type must be application/json (got 'application/jsonx')"),
        (b"application/x-ndjson", "Content-Type must be application/json (got 'application/x-ndjson')"),
        (
            b"multipart/form-data; boundary=x",
            "Content-Type must be application/json (got 'multipart/form-data')",
        ),
        (b"application/json; charset=utf-16", "charset 'utf-16' is not supported: send JSON in UTF-8"),
        (b"application/json; charset=latin1", "charset 'latin1' is not supported: send JSON in UTF-8"),
    ],
)
def test_other_content_types_are_415(value: bytes | None, message: str) -> None:
    with pytest.raises(BodyRejected) as caught:
        check_content_type(value)
    assert (caught.value.status, caught.value.message) == (415, message)


# --- FastAPI's reading, when no middleware decoded the body first ----------------------------------


def _request(raw: bytes, content_type: str) -> StrictJsonRequest:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    headers = [(b"content-type", content_type.encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    return StrictJsonRequest(scope, receive)


async def test_the_route_class_reads_bodies_with_the_same_decoder() -> None:
    """Without BodyLimitMiddleware (an app assembled otherwise), FastAPI still never sees json.loads:
    the UTF-16 NaN of finding 3 is refused by the route class too."""
    assert await _request(b'{"a": [1, 2.5]}', "application/json").json() == {"a": [1, 2.5]}
    utf16 = '{"retry_schedule": [NaN]}'.encode("utf-16-le")
    with pytest.raises(HTTPException) as caught:
        await _request(utf16, "application/json").json()
    assert caught.value.status_code == 400 and "UTF-16" in caught.value.detail
    with pytest.raises(HTTPException) as caught:
        await _request(utf16, "application/json; charset=utf-16").json()
    assert caught.value.status_code == 415


# --- through the API, on both backends ---------------------------------------------------------------


async def test_a_float_of_minus_2_63_is_refused_and_every_list_still_answers(api: Api) -> None:
    """It was a 201 on PostgreSQL, then GET /v1/tenants answered 500 for every tenant (and GET
    /v1/webhooks for the tenant, after a PATCH of its webhook's metadata)."""
    tenant_id, auth = await api.tenant()
    hook = assert_ok(
        await api.http.post("/v1/webhooks", json={"url": "https://example.com/hook"}, headers=auth), 201
    )
    writes = [
        ("POST", "/v1/tenants", b'{"name": "Edge", "metadata": {"v": %s}}', api.admin),
        ("PATCH", f"/v1/tenants/{tenant_id}", b'{"metadata": {"v": %s}}', api.admin),
        ("POST", "/v1/webhooks", b'{"url": "https://example.com/h", "metadata": {"v": %s}}', auth),
        ("PATCH", f"/v1/webhooks/{hook['id']}", b'{"metadata": {"v": %s}}', auth),
    ]
    for literal in (b"-9223372036854775808.0", b"-9.223372036854776e18"):
        for method, path, template, who in writes:
            response = await api.http.request(
                method, path, content=template % literal, headers={**who, **JSON}
            )
            assert_error(response, 400, OUT_OF_RANGE)
    tenants = assert_ok(await api.http.get("/v1/tenants", headers=api.admin))["items"]
    assert [t["metadata"] for t in tenants] == [{}]
    hooks = assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"]
    assert [h["metadata"] for h in hooks] == [{}]


async def test_floats_at_the_edges_are_accepted_and_read_back(api: Api) -> None:
    """The same JSON numbers come back from every read (on PostgreSQL as the integers jsonb prints)."""
    tenant_id, auth = await api.tenant()
    metadata = {"high": HIGHEST_FLOAT, "low": LOWEST_FLOAT, "max": 2**64 - 1, "min": -(2**63), "tiny": 5e-324}
    assert_ok(
        await api.http.patch(f"/v1/tenants/{tenant_id}", json={"metadata": metadata}, headers=api.admin)
    )
    hook = {"url": "https://example.com/hook", "metadata": metadata}
    hook_id = assert_ok(await api.http.post("/v1/webhooks", json=hook, headers=auth), 201)["id"]
    get = api.http.get
    seen = [
        assert_ok(await get(f"/v1/tenants/{tenant_id}", headers=api.admin))["metadata"],
        *(t["metadata"] for t in assert_ok(await get("/v1/tenants", headers=api.admin))["items"]),
        assert_ok(await get(f"/v1/webhooks/{hook_id}", headers=auth))["metadata"],
        *(h["metadata"] for h in assert_ok(await get("/v1/webhooks", headers=auth))["items"]),
    ]
    assert [as_decimals(m) for m in seen] == [as_decimals(metadata)] * 4


async def test_a_raw_nul_byte_in_a_body_is_named(api: Api) -> None:
    _, auth = await api.tenant()
    raw = b'{"url": "https://example.com/hook", "description": "a\x00b"}'
    assert_error(await api.http.post("/v1/webhooks", content=raw, headers={**auth, **JSON}), 400, NUL)
    assert assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"] == []
