"""Delivered bodies survive ``JSON.stringify(JSON.parse(body))`` byte for byte: checked against the real
Node.js, for every JSON value hookline accepts (hypothesis), not against a model of it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline.catalog import load_default_catalog
from hookline.javascript_json import MAX_SAFE_INTEGER, js_number, stable, unsafe_integer
from hookline.store.events import delivered_body
from tests.conftest import Api, assert_error, assert_ok

NODE = shutil.which("node")


class Node:
    """One ``node`` process answering ``JSON.stringify(JSON.parse(line))`` per line."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        assert NODE is not None, "Node.js is required (the seeds' receivers are JavaScript)"
        script = Path(__file__).parent / "js" / "roundtrip.js"
        self.proc = subprocess.Popen(
            [NODE, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        self.waiting = False  # a line was written and its answer not read

    def roundtrip(self, body: bytes) -> bytes:
        if self.waiting:
            # The last round trip was interrupted (a test's timeout) after writing: its answer would be
            # read as this one's. A fresh process instead.
            self.close()
            self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        assert b"\n" not in body
        self.waiting = True
        self.proc.stdin.write(body + b"\n")
        answer = self.proc.stdout.readline().rstrip(b"\n")
        self.waiting = False
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    process = Node()
    yield process
    process.close()


KEYS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    st.integers(0, 2**32 + 5).map(str),  # array indices, and just past them
    st.sampled_from(
        ["0", "01", "-1", "1.5", "4294967294", "4294967295", "\uff11", "\u0663"]
    ),  # non-ASCII digits are not indices
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: float(round(f))),  # integral floats
    st.text(st.characters(exclude_categories=("Cs",))),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=30,
)


# 600 examples: about 20 s on a quiet machine (drawing the nested values is most of it).
@settings(max_examples=600, deadline=None)
@given(data=st.dictionaries(KEYS, VALUES, max_size=6))
def test_a_delivered_body_is_what_json_stringify_writes(node: Node, data: dict[str, Any]) -> None:
    body = delivered_body("evt_1", "order.created", "2026-11-28T12:00:00.000Z", data)
    assert node.roundtrip(body) == body
    # The same values, laid out anew.
    assert _as_javascript_reads(orjson.loads(body)["data"]) == _as_javascript_reads(data)


@settings(max_examples=3000, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_js_number_is_number_to_string(node: Node, x: float) -> None:
    assert node.roundtrip(js_number(x).encode()) == js_number(x).encode()
    assert node.roundtrip(orjson.dumps(x)) == js_number(x).encode()
    assert float(js_number(x)) == x


def test_every_catalog_example_is_stable(node: Node) -> None:
    """Including seed 003's ``order.created`` with its ``"total": 1250.00``, once refused with a 401."""
    for event_type in load_default_catalog():
        body = delivered_body("evt_1", event_type.name, "2026-11-28T12:00:00.000Z", event_type.example)
        assert node.roundtrip(body) == body, event_type.name
    order = next(t for t in load_default_catalog() if t.name == "order.created")
    assert b'"total":1250' in delivered_body("e", "order.created", "t", order.example)


def test_keys_javascript_lists_first() -> None:
    data = {"b": 1, "10": 2, "a": 3, "2": 4, "01": 5, "4294967295": 6, "4294967294": 7, "0": 8}
    assert list(stable(data)) == ["0", "2", "10", "4294967294", "b", "a", "01", "4294967295"]
    plain = {"a": [1, "x", None], "b": {"c": True}}
    assert stable(plain) is plain  # nothing to change: no copy


def test_the_first_unsafe_integer_is_named_with_its_path() -> None:
    assert unsafe_integer({"a": [1, {"b": 2**53}]}) == ("data.a[1].b", 2**53)
    assert unsafe_integer({"a": -(2**53)}) == ("data.a", -(2**53))
    assert unsafe_integer({"a": MAX_SAFE_INTEGER, "b": -MAX_SAFE_INTEGER, "c": 1e300, "d": True}) is None


def _as_javascript_reads(value: Any) -> Any:
    """What JavaScript reads from a body holding ``value``: every number as a double (1250.0 and 1250
    are one number; so are 2.316858371341227e16 and 23168583713412270, its shortest writing)."""
    if type(value) in (int, float):
        return float(value)
    if isinstance(value, dict):
        return {k: _as_javascript_reads(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_javascript_reads(v) for v in value]
    return value


# --- at ingest -----------------------------------------------------------------------------------------


async def test_an_integer_javascript_cannot_read_is_refused_at_ingest_with_its_path(api: Api) -> None:
    _, auth = await api.tenant()
    data = {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2**53}]}
    for path, body in (
        ("/v1/events", {"event": "webhook.test", "data": {"message": "m", **data}}),
        ("/v1/events/batch", {"events": [{"event": "webhook.test", "data": {"message": "m", **data}}]}),
    ):
        response = await api.http.post(path, json=body, headers=auth)
        prefix = "events[0]: " if path.endswith("batch") else ""
        assert_error(
            response,
            400,
            f"{prefix}data.items[1].qty: 9007199254740992 is beyond the integers JavaScript reads exactly "
            "(±9007199254740991): send it as a string (or set HOOKLINE_JSON_SAFE_INTEGERS=false)",
        )
    fine = {"event": "webhook.test", "data": {"message": "m", "qty": 2**53 - 1, "total": 1250.0}}
    assert_ok(await api.http.post("/v1/events", json=fine, headers=auth), 202)


@pytest.mark.parametrize("settings_overrides", [{"json_safe_integers": False}])
async def test_the_setting_lets_such_integers_through(api: Api) -> None:
    _, auth = await api.tenant()
    body = {"event": "webhook.test", "data": {"message": "m", "id": 2**63}}
    accepted = assert_ok(await api.http.post("/v1/events", json=body, headers=auth), 202)
    found = assert_ok(await api.http.get(f"/v1/events/{accepted['id']}", headers=auth))
    assert found["data"]["id"] == 2**63
