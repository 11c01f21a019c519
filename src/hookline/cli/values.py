"""Values given on the command line, read into what the API takes: JSON objects (``--data``,
``--metadata``: text, ``@file`` or ``@-`` for stdin), ``NAME=VALUE`` pairs, lists, moments (ISO 8601 or
``2h`` ago), and ``--set path=value`` overrides of a catalog example. Pure functions; a value that
cannot be read raises ``ValueError`` saying why, which the command reports as a usage error.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class OverrideError(ValueError):
    """A ``--set`` that cannot be applied; the message names the path."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def strict_json(text: str) -> Any:
    """JSON as the API reads it: NaN and Infinity are not numbers it accepts."""
    return json.loads(text, parse_constant=_no_constants)


def json_object(value: str) -> dict[str, Any]:
    """A JSON object given as text, as ``@path`` (a file's contents) or as ``@-`` (stdin)."""
    if value.startswith("@"):
        source = value[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {source}: {exc}") from None
    else:
        text = value
    try:
        parsed = strict_json(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"a JSON object ({{...}}) is needed, not {type(parsed).__name__}")
    return parsed


def json_or_text(value: str) -> Any:
    """``--set``'s value: JSON when it parses as JSON (``5``, ``true``, ``null``, ``"5"``, ``[1]``),
    else the text itself (``hello``)."""
    try:
        return strict_json(value)
    except ValueError:
        return value


def pairs(items: Iterable[str], what: str = "NAME=VALUE") -> dict[str, str]:
    """``NAME=VALUE`` items (split at the first ``=``) as a mapping."""
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{item!r} is not {what}")
        found[name] = value
    return found


def names(items: Iterable[str]) -> list[str]:
    """Repeated options and comma-separated ones alike: ``--events a,b --events c`` is a, b, c."""
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(value: str, now: datetime | None = None, *, ahead: bool = False) -> str:
    """A time filter: ISO 8601 with a timezone (``2025-01-01T00:00:00Z``) as given, or a duration
    (``90s``, ``30m``, ``2h``, ``7d``, ``1w``) meaning that long before now (``ahead``: after now, as for
    a key's expiry)."""
    text = value.strip()
    if match := _DURATION.fullmatch(text):
        amount, unit = float(match[1]), _UNITS[match[2]]
        length = timedelta(**{unit: amount})
        return ((now or datetime.now(UTC)) + (length if ahead else -length)).isoformat()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ISO 8601 time (2025-01-01T00:00:00Z) nor a duration (30m, 2h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} needs a timezone (e.g. 2025-01-01T00:00:00Z)")
    return parsed.isoformat()


# --- --set path=value -------------------------------------------------------------------------------------


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``items.0.sku=X`` -> (["items", "0", "sku"], "X"). Keys are separated by dots; a backslash takes
    the next character as it is (``a\\.b`` is the key ``a.b``); the path ends at the first ``=`` that
    is not escaped, and what follows is the value (``json_or_text``)."""
    segments: list[str] = []
    current: list[str] = []
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            segments.append("".join(current))
            current = []
        elif char == "=":
            segments.append("".join(current))
            if any(segment == "" for segment in segments):
                raise OverrideError(f"{text!r}: the path {text[:index]!r} has an empty key")
            return segments, json_or_text(text[index + 1 :])
        else:
            current.append(char)
    raise OverrideError(f"{text!r} is not PATH=VALUE (e.g. items.0.sku=X)")


def format_path(segments: Sequence[str]) -> str:
    """The text ``parse_assignment`` reads back as these keys."""
    return ".".join(re.sub(r"([\\.=])", r"\\\1", segment) for segment in segments)


def apply_overrides(document: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """A copy of ``document`` with each ``path=value`` assignment made, in order. Every path must lead
    to something the document has: an object's key, or an array's index (``items.0``); a path that
    does not raises ``OverrideError`` naming the first part of it that is missing."""
    result = copy.deepcopy(document)
    for assignment in assignments:
        path, value = parse_assignment(assignment)
        set_path(result, path, value)
    return result


def set_path(document: Any, path: Sequence[str], value: Any) -> None:
    """Replace what ``path`` leads to in ``document`` (in place) by ``value``."""
    parent = document
    for depth, key in enumerate(path):
        where = format_path(path[: depth + 1])
        if isinstance(parent, dict):
            if key not in parent:
                raise OverrideError(f"the example has no {where!r}")
            slot: Any = key
        elif isinstance(parent, list):
            if not (key.isascii() and key.isdigit()) or int(key) >= len(parent):
                above = format_path(path[:depth]) or "the document"
                raise OverrideError(
                    f"the example has no {where!r} ({above} is an array of {len(parent)} items)"
                )
            slot = int(key)
        else:
            above = format_path(path[:depth])
            raise OverrideError(f"the example has no {where!r} ({above!r} is {_kind(parent)})")
        if depth == len(path) - 1:
            parent[slot] = value
        else:
            parent = parent[slot]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "a string"
    return "a number"
