"""The edge of every request, before a route sees it (pure ASGI middleware).

* Path and query: control characters (NUL above all, which PostgreSQL refuses in text) are a 400 on
  every route and backend, before any of them can reach a query.
* Size: over ``max_bytes`` is a 413, whether the body has a Content-Length or is streamed.
* A non-empty body must be JSON (415 otherwise) and is decoded here, once, by the strict decoder of
  ``hookline.api.jsonbody``; the value is left in the scope for the routes (400 when it is refused).
  The dashboard's HTML forms (under ``/ui/``) are the one exception: form-encoded, parsed there.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookline.api.envelope import error
from hookline.api.jsonbody import SCOPE_KEY, BodyRejected, check_content_type, decode

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_QUERY = re.compile(rb"[\x00-\x1f\x7f]|%(?:[01][0-9a-fA-F]|7[fF])")  # raw or %-escaped
DASHBOARD_PREFIX = "/ui/"
MAX_PATH = 2048  # characters; longer paths are a 414 (no route of ours needs more than ~300)


def _target_problem(scope: Scope) -> tuple[int, str] | None:
    path: str = scope.get("path", "")
    if len(path) > MAX_PATH:
        return 414, f"request path is longer than {MAX_PATH} characters"
    if _CONTROL.search(path):
        return 400, "request path must not contain control characters (such as NUL)"
    query: bytes = scope.get("query_string", b"")
    if _CONTROL_IN_QUERY.search(query):
        return 400, "query parameters must not contain control characters (such as NUL)"
    return None


FORM_TYPE = b"application/x-www-form-urlencoded"


def _dashboard_form(scope: Scope, content_type: bytes | None) -> bool:
    return (
        scope["path"].startswith(DASHBOARD_PREFIX)
        and content_type is not None
        and content_type.split(b";")[0].strip().lower() == FORM_TYPE
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if problem := _target_problem(scope):
            await error(*problem)(scope, receive, send)
            return
        limit = self.max_bytes
        content_type: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await self._too_large(scope, receive, send)
                    return
            elif name == b"content-type" and content_type is None:
                content_type = value
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
        if raw and not _dashboard_form(scope, content_type):
            try:
                check_content_type(content_type)
                scope[SCOPE_KEY] = decode(raw)
            except BodyRejected as exc:
                await error(exc.status, exc.message)(scope, receive, send)
                return
        body = {"type": "http.request", "body": raw, "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = error(413, f"request body is larger than the limit of {self.max_bytes} bytes")
        await too_large(scope, receive, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
