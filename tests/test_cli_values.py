"""The client commands' pure parts, in process: reading ``--set path=value`` (a hypothesis model),
``--data``, times, and the profiles file; tests/test_cli_client.py runs the commands for real."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.cli import values
from hookline.cli.connection import (
    DEFAULT_URL,
    ConfigurationError,
    mask_key,
    read_profiles,
    resolve_connection,
    write_profiles,
)
from hookline.cli.values import OverrideError, apply_overrides, format_path, parse_assignment

keys = st.text(min_size=1, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)
documents = st.dictionaries(keys, json_values, min_size=1, max_size=4)


def paths_in(document: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path that leads somewhere in ``document``."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths_in(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths_in(value, (*prefix, str(index)))
    return found


def at(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        document = document[int(key)] if isinstance(document, list) else document[key]
    return document


@given(st.lists(keys, min_size=1, max_size=5), json_values)
def test_a_path_and_json_value_read_back_as_written(path: list[str], value: Any) -> None:
    assert parse_assignment(f"{format_path(path)}={json.dumps(value)}") == (path, value)


@given(st.data(), documents, json_values)
def test_an_override_changes_what_its_path_leads_to_and_nothing_else(
    data: st.DataObject, document: dict[str, Any], value: Any
) -> None:
    path = data.draw(st.sampled_from(paths_in(document)))
    before = json.dumps(document)
    changed = apply_overrides(document, [f"{format_path(path)}={json.dumps(value)}"])
    assert json.dumps(document) == before  # the example itself is left as it was
    assert at(changed, path) == value
    # Everything off the path is as it was: putting the old value back gives the document again.
    old = json.dumps(at(document, path))
    assert apply_overrides(changed, [f"{format_path(path)}={old}"]) == document


@given(st.data(), documents, keys)
def test_a_path_missing_from_the_example_is_refused_naming_it(
    data: st.DataObject, document: dict[str, Any], missing: str
) -> None:
    containers = [p for p in paths_in(document) if isinstance(at(document, p), dict)]
    parent = data.draw(st.sampled_from([(), *containers]))
    if missing in at(document, parent):
        return
    path = format_path([*parent, missing])
    with pytest.raises(OverrideError) as refused:
        apply_overrides(document, [f"{path}.deeper=1", f"{path}=1"])
    assert repr(path) in str(refused.value)


def test_overrides_index_arrays_and_read_values_as_json_or_text() -> None:
    example = {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}], "note": "x", "n": 1}
    changed = apply_overrides(
        example, ["items.1.sku=X", "items.0.qty=5", "note=hello world", 'n="7"', "note=null", "n=NaN"]
    )
    assert changed == {"items": [{"sku": "A", "qty": 5}, {"sku": "X", "qty": 2}], "note": None, "n": "NaN"}
    for bad, named in [
        ("items.2.sku=X", "'items.2' (items is an array of 2 items)"),
        ("items.x=1", "'items.x'"),
        ("note.deeper=1", "'note.deeper' ('note' is a string)"),
        ("nope=1", "'nope'"),
    ]:
        with pytest.raises(OverrideError, match="the example has no " + _escape(named)):
            apply_overrides(example, [bad])
    for malformed in ["items", "a..b=1", "=1"]:
        with pytest.raises(OverrideError):
            apply_overrides(example, [malformed])
    assert parse_assignment(r"a\.b.c\=d=e=f") == (["a.b", "c=d"], "e=f")


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_data_is_a_json_object_from_text_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text('{"a": [1, 2]}')
    assert values.json_object(f"@{tmp_path / 'data.json'}") == {"a": [1, 2]}
    assert values.json_object('{"b": true}') == {"b": True}
    for bad, reason in [("[1]", "a JSON object"), ('{"x": NaN}', "NaN"), ("{", "not valid JSON")]:
        with pytest.raises(ValueError, match=reason):
            values.json_object(bad)
    with pytest.raises(ValueError, match="cannot read"):
        values.json_object(f"@{tmp_path / 'missing.json'}")


def test_times_are_iso_with_a_zone_or_a_duration_ago() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert values.moment("2h", now) == "2026-01-02T10:00:00+00:00"
    assert values.moment("7d", now) == "2025-12-26T12:00:00+00:00"
    assert values.moment("2026-01-01T00:00:00Z") == "2026-01-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="needs a timezone"):
        values.moment("2026-01-01T00:00:00")
    with pytest.raises(ValueError, match="neither"):
        values.moment("yesterday")


def test_profiles_file_round_trip_mode_and_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "profiles.toml"
    monkeypatch.setenv("HOOKLINE_CONFIG", str(path))
    odd = 'we"ird\\ \t\x01 ☃'
    write_profiles({"default": {"url": "http://d:1", "key": "hk_default"}, "odd name": {"key": odd}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_profiles() == {
        "default": {"url": "http://d:1", "key": "hk_default"},
        "odd name": {"key": odd},
    }

    # flag or environment (merged by Typer) > the profile > the default
    assert resolve_connection(None, None, None).url == "http://d:1"
    assert resolve_connection("http://flag:2", None, None).url == "http://flag:2"
    assert resolve_connection(None, "hk_flag", None).key == "hk_flag"
    named = resolve_connection(None, None, "odd name")
    assert (named.url, named.key, named.profile) == (DEFAULT_URL, odd, "odd name")
    with pytest.raises(ConfigurationError, match="no profile 'prod'"):
        resolve_connection(None, None, "prod")
    write_profiles({})
    with pytest.raises(ConfigurationError, match="no API key"):
        resolve_connection(None, None, None)
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        resolve_connection("localhost:8000", "hk", None)
    path.write_text("[profiles.x]\nkey = 5\n")
    with pytest.raises(ConfigurationError, match=r"profiles.x.key must be a string"):
        read_profiles()


@pytest.mark.parametrize("key", ["hk_" + "a" * 43, "hk_admin_" + "b" * 43, "short", ""])
def test_a_masked_key_shows_at_most_its_prefix(key: str) -> None:
    masked = mask_key(key)
    assert masked.endswith("…")
    shown = masked[:-1]
    assert key.startswith(shown) and len(shown) <= min(10, len(key) // 3)
