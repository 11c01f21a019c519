"""Request body limits, enforced before the body reaches a route (pure ASGI middleware).

* Size: over ``max_bytes`` is a 413, whether the body has a Content-Length or is streamed.
* JSON values hookline cannot store or send back: NUL characters (PostgreSQL refuses them in text and
  jsonb), unpaired UTF-16 surrogates, NaN/Infinity, and numbers outside the 64-bit integer range
  (orjson cannot encode them). They are a 400 on every backend instead of a 500. A quick pass (orjson,
  which refuses most of them itself) clears ordinary bodies; only the others get the slow, exact check.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline.api.envelope import error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await self._too_large(scope, receive, send)
                    return
                break
        # Chunked or lying bodies: read it all (up to the limit) before the route sees any of it.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        if _is_json(scope) and (problem := _json_problem(raw)):
            await error(400, problem)(scope, receive, send)
            return
        body = {"type": "http.request", "body": raw, "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = error(413, f"request body is larger than the limit of {self.max_bytes} bytes")
        await too_large(scope, receive, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # FastAPI reads a body without Content-Type as JSON


# Only these spellings can produce the values refused below; without one, the body is fine as it is.
_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]|NaN|Infinity|\d{19}|[eE][+-]?\d{2}")
# PostgreSQL's jsonb prints 1e20 back as 100000000000000000000, which orjson cannot encode: a number
# outside the 64-bit integer range, integer or not, would make every later read of that row fail.
_LOWEST, _HIGHEST = -(2**63), 2**64 - 1
_OUT_OF_RANGE = "request body has a number outside the 64-bit integer range"


class _Unstorable(ValueError):
    pass


def _parse_int(text: str) -> int:
    value = int(text)
    if not _LOWEST <= value <= _HIGHEST:
        raise _Unstorable(_OUT_OF_RANGE)
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and _LOWEST <= value < 2.0**64):
        raise _Unstorable(_OUT_OF_RANGE)
    return value


def _parse_constant(text: str) -> Any:
    raise _Unstorable(f"request body must not contain {text} (it is not valid JSON)")


# Floats strictly inside this bound are fine whatever literal they came from (orjson reads an integer
# outside the 64-bit range as a float, which then lies outside it too).
_SURELY_FINE_BOUND = 2.0**63


def _surely_fine(body: bytes) -> bool:
    """A quick way to clear a body: orjson refuses NaN, Infinity and unpaired surrogates, NUL
    can only come from a ``\\u0000`` escape, and only floats can be out of range. False means "look
    closely" (``_json_problem`` then decides, and words the answer), not that the body is wrong."""
    if b"\\u0000" in body:
        return False
    try:
        stack: list[Any] = [orjson.loads(body)]
    except orjson.JSONDecodeError:
        return False
    bound = _SURELY_FINE_BOUND
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
        elif kind is float and not -bound < value < bound:
            return False
    return True


def _json_problem(body: bytes) -> str | None:
    """Why a JSON body holds a value hookline cannot store, or None (also when it is not JSON at all)."""
    # _surely_fine first: it costs less than the regex (which scans slowly: no literal to look for).
    if _surely_fine(body) or _SUSPECT.search(body) is None:
        return None
    try:
        stack: list[Any] = [
            json.loads(body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
        ]
    except _Unstorable as exc:
        return str(exc)
    except ValueError:
        return None  # the route answers "request body is not valid JSON"
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\0" in value:
                return "request body must not contain NUL (\\u0000) characters"
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    return "request body must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
