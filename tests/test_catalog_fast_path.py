"""The jsonschema_rs fast path gives the same verdicts and messages as jsonschema alone."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from hookline import catalog
from hookline.catalog import first_schema_error, load_default_catalog, validator_for

CATALOG = load_default_catalog()

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    1.5,
    -7,
    2**70,
    float("nan"),
    float("inf"),
    "",
    "x",
    "2025-01-15T12:00:00Z",
    "not a date",
    "not a uri",
    [],
    ["a", 1],
    {},
    {"a": {"b": [1, "2"]}},
]


def reference_error(schema: dict[str, Any], data: Any) -> str | None:
    """What first_schema_error answered before the fast path: jsonschema alone."""
    validator = validator_for(schema)
    if validator.is_valid(data):
        return None
    error = catalog.best_match(validator.iter_errors(data), key=catalog.relevance)
    assert error is not None
    path = "data"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"{path}: {error.message}"


def mutations(example: dict[str, Any], rng: random.Random) -> list[Any]:
    out: list[Any] = [example, [], "x", None]
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in node:
                paths.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for index in range(len(node)):
                paths.append((node, index))
                walk(node[index])

    for _ in range(60):
        data = copy.deepcopy(example)
        paths.clear()
        walk(data)
        for parent, key in rng.sample(paths, min(len(paths), rng.randint(1, 3))):
            if rng.random() < 0.2 and isinstance(parent, dict):
                parent.pop(key, None)
            else:
                parent[key] = rng.choice(ODD_VALUES)
        out.append(data)
    return out


@pytest.mark.parametrize("event_type", CATALOG, ids=lambda et: et.name)
def test_default_catalog_uses_the_fast_path_and_agrees(event_type: catalog.EventType) -> None:
    assert catalog._checker_for(event_type.schema).fast is not None
    rng = random.Random(event_type.name)
    for data in mutations(event_type.example, rng):
        assert first_schema_error(event_type.schema, data) == reference_error(event_type.schema, data)


@pytest.mark.parametrize(
    ("schema", "data"),
    [
        ({"type": "integer"}, 2**70),  # beyond 64 bits: jsonschema_rs cannot take it
        ({"type": "string"}, 2**70),
        ({"type": "number"}, float("nan")),  # valid for jsonschema, not for jsonschema_rs
        ({"type": "number", "maximum": 5}, float("inf")),
        ({"type": "string", "format": "date-time"}, "yesterday"),  # formats are annotations
        ({"type": "string", "format": "uri"}, "not a uri"),
        ({"type": "string", "format": "email"}, "nobody"),
        ({"const": 1}, True),
        ({"enum": [0]}, False),
        ({"uniqueItems": True}, [1, True]),
        ({"uniqueItems": True}, [1, 1.0]),
        ({"properties": {"a": {"pattern": "^a$"}}}, {"a": "a\n"}),  # Python re: $ before a newline
        ({"properties": {"a": {"pattern": "^\\d+$"}}}, {"a": "١٢٣"}),  # Python re: Unicode digits
        ({"patternProperties": {"^\\w$": {"type": "string"}}}, {"é": 1}),
        ({"multipleOf": 0.01}, 1e308),
        ({"$ref": "#/$defs/s", "$defs": {"s": {"type": "string"}}}, 1),
        ({"$ref": "https://json-schema.org/draft/2020-12/schema"}, {"type": 5}),
        ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"}, 1),
        ({"type": "object", "required": ["a"], "additionalProperties": False}, {"b": 1}),
        ({"type": "object", "unevaluatedProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}),
    ],
)
def test_edge_cases_answer_as_jsonschema_does(schema: dict[str, Any], data: Any) -> None:
    assert first_schema_error(schema, data) == reference_error(schema, data)


def test_schemas_with_regexes_or_other_drafts_use_jsonschema_only() -> None:
    assert catalog._checker_for({"properties": {"a": {"pattern": "x"}}}).fast is None
    assert catalog._checker_for({"$schema": "http://json-schema.org/draft-07/schema#"}).fast is None
    assert catalog._checker_for({"type": "object", "properties": {"a": {"format": "uri"}}}).fast is not None


def test_remote_references_are_never_fetched() -> None:
    # jsonschema_rs would retrieve it; with retrieval refused the schema is left to jsonschema.
    assert catalog._checker_for({"$ref": "http://127.0.0.1:9/schema.json"}).fast is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_not_taken_for_null(bad: float) -> None:
    # jsonschema_rs turns NaN and infinities into null, which "null" accepts; jsonschema does not.
    schema = {"type": "object", "properties": {"a": {"type": ["string", "null"]}, "b": {"minimum": 0}}}
    assert first_schema_error(schema, {"a": bad}) == reference_error(schema, {"a": bad}) is not None
    assert first_schema_error(schema, {"b": [bad]}) == reference_error(schema, {"b": [bad]})
    assert first_schema_error(schema, {"b": -float("inf")}) == reference_error(schema, {"b": -float("inf")})


def test_lone_surrogates_are_left_to_jsonschema() -> None:
    schema = {"type": "object", "properties": {"a": {"maxLength": 1}}}
    data = {"a": "\ud800x"}
    assert first_schema_error(schema, data) == reference_error(schema, data) is not None
