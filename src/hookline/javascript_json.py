"""JSON as JavaScript writes it: delivered bodies that survive ``JSON.stringify(JSON.parse(body))``.

Receivers written from the seeds' own code (seed 003's Express handler) sign-check
``JSON.stringify(req.body)``, not the bytes received. That only works if the body hookline signs is
exactly what ``JSON.stringify`` writes for the value ``JSON.parse`` reads from it. orjson already escapes
strings the same way (``\\"``, ``\\\\``, ``\\b\\f\\n\\r\\t``, other controls as ``\\u00xx``, everything else
raw); two things differ, and ``stable`` rewrites them:

* numbers that are not integers: JavaScript writes the shortest digits that read back (as Python's
  ``repr`` does) but in its own layout (``Number::toString``): ``1250`` for 1250.0, ``0.000001`` for
  1e-06, ``100000000000000000000`` for 1e20, ``1e+21``, ``-0`` as ``0``;
* keys that are array indices (``"0"`` .. ``"4294967294"`` written canonically): a JavaScript object
  lists them first, in ascending order, before the other keys in insertion order.

Integers beyond ±(2**53 - 1) cannot be read back exactly by JavaScript at all; ``unsafe_integer`` finds
the first one, for ingest to refuse (``HOOKLINE_JSON_SAFE_INTEGERS``).

Any JSON reader sees the same values in a stable body; only the layout changed.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INDEX = 2**32 - 2  # the largest array index: ToUint32(key) == key, and key != 2**32 - 1


def js_number(x: float) -> str:
    """``x`` as JavaScript's ``Number.prototype.toString()`` writes it (ECMA-262 Number::toString)."""
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number(-x)
    mantissa, _, exponent = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    n = len(whole) + (int(exponent) if exponent else 0)  # x = 0.<digits> * 10**n
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{head}e{sign}{abs(e)}"


def _is_index(key: str) -> bool:
    return (
        0 < len(key) <= 10
        and key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and int(key) <= _MAX_INDEX
    )


def stable(value: Any) -> Any:
    """``value`` laid out as JavaScript would write it, for ``orjson.dumps``: floats become
    ``orjson.Fragment``s of their JavaScript text, objects with index keys are reordered. Anything
    that needs no change is returned as it is (no copy)."""
    kind = type(value)
    if kind is float:
        return orjson.Fragment(js_number(value).encode())
    if kind is dict:
        out = None
        for key, child in value.items():
            new = stable(child)
            if new is not child and out is None:
                out = dict(value)
            if out is not None:
                out[key] = new
        found = out if out is not None else value
        indices = [key for key in found if _is_index(key)]
        if indices:
            ordered = {key: found[key] for key in sorted(indices, key=int)}
            ordered.update((key, child) for key, child in found.items() if key not in ordered)
            return ordered
        return found
    if kind is list:
        items = None
        for position, child in enumerate(value):
            new = stable(child)
            if new is not child and items is None:
                items = list(value)
            if items is not None:
                items[position] = new
        return items if items is not None else value
    return value


def unsafe_integer(value: Any) -> tuple[str, int] | None:
    """The first integer JavaScript cannot read exactly, and where it is (``data.order.id``)."""
    found = _unsafe(value)
    if found is None:
        return None
    where, number = found
    return "data" + "".join(reversed(where)), number


def _unsafe(value: Any) -> tuple[list[str], int] | None:
    """(the path to it, innermost first; the integer): the path is only built for a hit."""
    kind = type(value)
    if kind is int:
        return ([], value) if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else None
    if kind is dict:
        for key, child in value.items():
            if (found := _unsafe(child)) is not None:
                found[0].append(f".{key}")
                return found
    elif kind is list:
        for position, child in enumerate(value):
            if (found := _unsafe(child)) is not None:
                found[0].append(f"[{position}]")
                return found
    return None
