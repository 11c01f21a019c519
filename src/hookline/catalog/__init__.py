"""Event-type catalog: the default event types, name/pattern rules and payload schema checks."""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match, relevance

__all__ = [
    "EVENT_NAME_PATTERN",
    "MAX_EVENT_NAME_LENGTH",
    "OPERATIONAL_EVENTS",
    "EventType",
    "UnknownEventType",
    "first_schema_error",
    "is_valid_event_name",
    "is_valid_pattern",
    "load_default_catalog",
    "normalize_subscription",
    "pattern_matches",
    "subscribes_to",
    "suggest",
    "validator_for",
]

MAX_EVENT_NAME_LENGTH = 100
# No lookaheads, so the same pattern also works for pydantic (Rust regex); length is checked separately.
EVENT_NAME_PATTERN = r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$"
_EVENT_NAME_RE = re.compile(EVENT_NAME_PATTERN)
WILDCARD = "*"
# hookline's own operational events (``hookline.notices``): delivered only to endpoints that name them
# (exactly or by a prefix pattern such as ``endpoint.*``), never through ``*``, so a receiver that takes
# "everything" the platform sends does not start receiving hookline's alerts, and cannot feed them back.
OPERATIONAL_EVENTS = frozenset(
    {
        "endpoint.disabled",
        "endpoint.enabled",
        "endpoint.verified",
        "endpoint.circuit_opened",
        "endpoint.circuit_closed",
        "endpoint.failing",
        "delivery.exhausted",
    }
)


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    schema: dict[str, Any]
    example: dict[str, Any]
    group: str = ""
    source: str = "custom"


@functools.cache
def _default_catalog() -> tuple[EventType, ...]:
    text = resources.files(__name__).joinpath("default_event_types.json").read_text(encoding="utf-8")
    return tuple(EventType(**item) for item in json.loads(text))


def load_default_catalog() -> list[EventType]:
    """The built-in event types (parsed once; each call returns a new list)."""
    return list(_default_catalog())


def is_valid_event_name(name: str) -> bool:
    return 0 < len(name) <= MAX_EVENT_NAME_LENGTH and _EVENT_NAME_RE.fullmatch(name) is not None


def is_valid_pattern(p: str) -> bool:
    """`*`, an exact event name, or an event-name prefix followed by `.*`."""
    if p == WILDCARD:
        return True
    return is_valid_event_name(p[:-2] if p.endswith(".*") else p)


def pattern_matches(pattern: str, event_name: str) -> bool:
    if pattern == WILDCARD:
        return event_name not in OPERATIONAL_EVENTS
    if pattern.endswith(".*"):
        return event_name.startswith(pattern[:-1])
    return pattern == event_name


def subscribes_to(patterns: Sequence[str], event_name: str) -> bool:
    return any(pattern_matches(p, event_name) for p in patterns)


def suggest(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Known names closest to `name`, closest first."""
    if limit <= 0:
        return []
    return difflib.get_close_matches(name, list(known), n=limit)


def _quoted_list(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


class UnknownEventType(ValueError):
    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        message = f"unknown event type {name!r}"
        if name.endswith(".*"):
            message += f" (no event type starts with {name[:-1]!r})"
        elif self.suggestions:
            message += f" (did you mean {_quoted_list(self.suggestions)}?)"
        super().__init__(message)


def normalize_subscription(patterns: Sequence[str], known: Collection[str]) -> list[str]:
    """Validate patterns against the known event names; dedupe in order; `*` absorbs every pattern
    but those naming operational events (which `*` does not cover)."""
    result: list[str] = []
    for p in patterns:
        if not is_valid_pattern(p):
            raise ValueError(f"invalid event pattern {p!r}")
        if p.endswith(".*"):
            if not any(pattern_matches(p, name) for name in known):
                raise UnknownEventType(p)
        elif p != WILDCARD and p not in known:
            raise UnknownEventType(p, suggest(p, known))
        if p not in result:
            result.append(p)
    if WILDCARD not in result:
        return result
    return [WILDCARD, *(p for p in result if any(pattern_matches(p, op) for op in OPERATIONAL_EVENTS))]


# Keywords whose results can differ between `jsonschema` and `jsonschema_rs` (Python `re` against Rust
# regexes: `$` before a final newline, Unicode `\d`/`\w`; float `multipleOf` rounding; dynamic references).
# A schema using any of them is checked by `jsonschema` alone, so its answers never change.
_PYTHON_ONLY_KEYWORDS = frozenset(
    {"pattern", "patternProperties", "multipleOf", "$dynamicRef", "$dynamicAnchor", "$recursiveRef"}
)
_DRAFT_2020_12 = (
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2020-12/schema#",
)


def _uses_python_only_keyword(schema: Any) -> bool:
    if isinstance(schema, dict):
        if any(k in _PYTHON_ONLY_KEYWORDS for k in schema) or schema.get(
            "$schema", _DRAFT_2020_12[0]
        ) not in (_DRAFT_2020_12):
            return True
        return any(_uses_python_only_keyword(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_uses_python_only_keyword(v) for v in schema)
    return False


def _no_retrieval(uri: str) -> Any:
    raise ValueError(f"remote references are not fetched ({uri})")


def _all_finite(value: Any) -> bool:
    """False if `value` holds a NaN or an infinity (JSON bodies may carry them): `jsonschema_rs` sees
    those as null, so its verdict on such data is not `jsonschema`'s."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(map(_all_finite, value.values()))
    if kind is list:
        return all(map(_all_finite, value))
    return True


@dataclass(frozen=True)
class _Checker:
    """The `jsonschema` validator (error messages, the reference behaviour) and, when the schema only
    uses keywords both libraries treat alike, a compiled `jsonschema_rs` validator for the valid case."""

    python: Draft202012Validator
    fast: Any  # jsonschema_rs validator, or None


def _fast_validator(schema: dict[str, Any]) -> Any:
    if _uses_python_only_keyword(schema):
        return None
    try:
        # Formats are annotations, as in `jsonschema` without a format checker; nothing is fetched.
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, retriever=_no_retrieval)
    except Exception:  # a schema the Rust side cannot compile: `jsonschema` alone checks it
        return None


@functools.lru_cache(maxsize=512)
def _compiled(schema_key: str) -> _Checker:
    schema = json.loads(schema_key)
    Draft202012Validator.check_schema(schema)
    return _Checker(Draft202012Validator(schema), _fast_validator(schema))


# The same schema object (an event type held by the registry) finds its validator without re-serializing
# the schema; the entry keeps the schema alive, so its id cannot be reused by another object.
_BY_IDENTITY: dict[int, tuple[dict[str, Any], _Checker]] = {}


def _checker_for(schema: dict[str, Any]) -> _Checker:
    hit = _BY_IDENTITY.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    checker = _compiled(json.dumps(schema, sort_keys=True))
    if len(_BY_IDENTITY) >= 1024:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[id(schema)] = (schema, checker)
    return checker


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    """A compiled (and cached) draft 2020-12 validator; raises `SchemaError` for an invalid schema."""
    return _checker_for(schema).python


def _fast_says_valid(fast: Any, data: Any) -> bool:
    try:
        return bool(fast.is_valid(data)) and _all_finite(data)
    except Exception:  # data the Rust side cannot convert: `jsonschema` decides
        return False


def first_schema_error(schema: dict[str, Any], data: Any) -> str | None:
    """The most relevant validation error as `data.<path>: <message>`, or None when `data` is valid.

    Valid data is recognised by `jsonschema_rs` (compiled once per schema); only when it says "invalid"
    (or cannot take the data: an integer beyond 64 bits, a NaN, a lone surrogate) does `jsonschema`
    decide, and look for the error, so the verdicts and messages are `jsonschema`'s."""
    checker = _checker_for(schema)
    if checker.fast is not None:
        if _fast_says_valid(checker.fast, data):
            return None
    elif checker.python.is_valid(data):  # the common case, cheaper than ranking errors
        return None
    validator = checker.python
    error = best_match(validator.iter_errors(data), key=relevance)
    if error is None:
        return None
    path = "data"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"{path}: {error.message}"
