"""The one JSON decoder for request bodies: every body hookline accepts goes through ``decode``.

``BodyLimitMiddleware`` decodes each non-empty body once, at the edge, and leaves the value in the ASGI
scope; the lean ingest path and the FastAPI routes (through ``StrictJsonRoute``) both read it from there,
so no route can parse a body by other rules (Python's ``json`` auto-detects UTF-16 and reads NaN: that
is how NaN once reached the worker).

What is accepted is what the store can hold and every later read can serialise again:

* UTF-8 only (a ``charset`` other than utf-8 is a 415), no byte order mark;
* no NaN or Infinity, no number outside the 64-bit integer range, integer or not (PostgreSQL's jsonb
  prints 1e20 back as a 21-digit integer, which orjson then cannot encode). Integers may be
  -2**63 .. 2**64-1; a non-integer must lie strictly between -2**63 and 2**64, because a float is
  stored as its shortest repr: the float -2**63 is written "-9.223372036854776e18", which jsonb prints
  back as -9223372036854776000, below the int64 range (the largest float under 2**64 comes back as
  18446744073709550000, which fits);
* no NUL in strings or keys (PostgreSQL refuses it in text and jsonb), no unpaired UTF-16 surrogates;
* at most ``MAX_DEPTH`` levels of nesting. Stored values come back wrapped two to four levels deeper
  (a delivery's payload, the response envelope, a page of items) and orjson stops at 254 levels: 64
  leaves ample room and is more than any real event needs.

The happy path is one ``orjson.loads`` and one loop over the values without recursion; the slow,
exact checks run only to word the error for a body orjson refused.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

MAX_DEPTH = 64
SCOPE_KEY = "hookline.json"  # where the middleware leaves the decoded body

_LOWEST, _HIGHEST = -(2**63), 2**64 - 1
_OUT_OF_RANGE = "request body has a number outside the 64-bit integer range"
_TOO_DEEP = f"request body is nested more than {MAX_DEPTH} levels deep"
_JSON_TYPE = "Content-Type must be application/json"


class BodyRejected(ValueError):
    """A body hookline will not read; ``status`` is 400 or 415 and ``message`` names the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_content_type(value: bytes | None) -> None:
    """A non-empty body must be declared as JSON (``application/json`` or ``application/*+json``), in
    UTF-8 if a charset is named."""
    if value is None:
        raise BodyRejected(415, f"{_JSON_TYPE} (the request has no Content-Type)")
    media, _, params = value.decode("latin-1").partition(";")
    media = media.strip().lower()
    kind, _, subtype = media.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise BodyRejected(415, f"{_JSON_TYPE} (got {media!r})" if media else _JSON_TYPE)
    for param in params.split(";"):
        name, _, setting = param.partition("=")
        if name.strip().lower() == "charset":
            charset = setting.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise BodyRejected(415, f"charset {charset!r} is not supported: send JSON in UTF-8")


def decode(raw: bytes) -> Any:
    """The value of a JSON body, or ``BodyRejected`` (400) naming why hookline cannot take it."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyRejected(400, _why_refused(raw, str(exc))) from None
    problem = _problem(value, nul_possible=b"\\u0000" in raw)
    if problem is _LOOK_CLOSER:
        problem = _exact_problem(raw.decode("utf-8"))
    if problem:
        raise BodyRejected(400, problem)
    return value


# Floats strictly inside this bound are fine whatever literal they came from. Beyond it, orjson may have
# read an integer outside the 64-bit range as a float: only the literal can tell.
_SURELY_FINE = 2.0**63
_LOOK_CLOSER = "look closer"


def _problem(value: Any, *, nul_possible: bool) -> str | None:
    """Why a decoded value cannot be stored, ``_LOOK_CLOSER``, or None. orjson already refused NaN,
    Infinity, surrogates and invalid UTF-8; what is left: depth, numbers beyond the 64-bit range, and
    NUL (only possible from a ``\\u0000`` escape).

    One level at a time (no recursion, no stack of tuples): ``level`` holds the containers at ``depth``,
    the first a list wrapping the body itself at depth 0; scalars are checked as they are met."""
    verdict = None
    level: list[Any] = [[value]]
    depth = 0
    while level:
        if depth > MAX_DEPTH:
            return _TOO_DEEP
        below: list[Any] = []
        keep = below.append
        for container in level:
            if type(container) is dict:
                if nul_possible and any("\0" in key for key in container):
                    return _NUL
                children = container.values()
            else:
                children = container
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    keep(child)
                elif kind is float:
                    if not -_SURELY_FINE < child < _SURELY_FINE:
                        verdict = _LOOK_CLOSER
                elif nul_possible and kind is str and "\0" in child:
                    return _NUL
        level = below
        depth += 1
    return verdict


_NUL = "request body must not contain NUL (\\u0000) characters"


# --- wording the refusal of a body orjson could not read ------------------------------------------


class _Unstorable(ValueError):
    pass


def _parse_int(text: str) -> int:
    value = int(text)
    if not _LOWEST <= value <= _HIGHEST:
        raise _Unstorable(_OUT_OF_RANGE)
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and _LOWEST < value < 2.0**64):  # strictly: see the module docstring
        raise _Unstorable(_OUT_OF_RANGE)
    return value


def _parse_constant(text: str) -> Any:
    raise _Unstorable(f"request body must not contain {text} (it is not valid JSON)")


def _exact_problem(text: str) -> str | None:
    """The slow, exact reading: every number as its literal says."""
    try:
        json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except _Unstorable as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return "request body is not valid JSON"
    return None


def _why_refused(raw: bytes, orjson_error: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        return "request body must not start with a byte order mark"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "request body is not valid UTF-8 (JSON must be sent as UTF-8)"
    if "depth limit" in orjson_error or "recursion" in orjson_error:
        return _TOO_DEEP
    if b"\0" in raw[:2]:  # JSON text starts with an ASCII character: a zero byte beside it is UTF-16/32
        return "request body is not valid JSON (it looks like UTF-16 or UTF-32: send UTF-8)"
    if "\0" in text:
        return _NUL
    if problem := _exact_problem(text):
        return problem
    if "surrogate" in orjson_error:
        return "request body must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"
    return "request body is not valid JSON"
