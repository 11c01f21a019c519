"""A real HTTP receiver for delivery tests: an aiohttp server on 127.0.0.1 (ephemeral port) that records
every request and answers each one as told.

    async with Receiver() as rx:
        rx.plan("/hook", Reply(500), Reply(200))   # the first request answers 500, the next 200
        rx.always("/gone", Reply(410))             # every request to /gone answers 410
        url = rx.url("/hook")
        await rx.wait_for(2, "/hook")

Unplanned requests answer 200 with a small body. A ``hang`` reply never answers (until the receiver
closes); ``delay`` answers after a pause; ``trickle`` sends the status and headers, then one byte now
and then, forever; ``endless`` streams a body as fast as the client reads it, forever; ``parts``
sends a body of a known length in pieces, a pause between them; ``redirect`` answers 302 with a
Location; ``echo_challenge`` answers (with its status) ``{"challenge": ...}`` holding the request's own
JSON ``challenge`` (a verification handshake done right). ``peak_in_flight(path)`` is
the most requests to ``path`` the receiver was answering at once. ``Receiver(ssl_context=...)`` serves
HTTPS (``tests/certs.py`` makes the context); each request records the ``peer`` it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    trickle: bool = False
    endless: bool = False
    redirect: str | None = None
    delay: float = 0.0  # seconds to wait before answering
    echo_challenge: bool = False  # answer {"challenge": <the request's "challenge">}
    # The body in these parts, a pause between them, under a Content-Length of the whole.
    parts: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Received:
    path: str
    method: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    raw_headers: list[tuple[str, str]]  # as received, in order
    body: bytes
    at: float  # time.monotonic() when the request arrived
    peer: tuple[str, int] | None = None  # (address, port) of the connection it came on

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.raw_headers if k.lower() == name.lower()]


class Receiver:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.requests: list[Received] = []
        self._plans: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self._defaults: dict[str, Reply] = {}
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self._peaks: defaultdict[str, int] = defaultdict(int)
        self.port = 0

    # --- instructions ----------------------------------------------------------------------------

    def plan(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies``, in order."""
        self._plans[path].extend(replies)

    def always(self, path: str, reply: Reply) -> None:
        """Answer every request to ``path`` (after any planned replies) with ``reply``."""
        self._defaults[path] = reply

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- observations ----------------------------------------------------------------------------

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def peak_in_flight(self, path: str) -> int:
        """The most requests to ``path`` that were being answered at the same time."""
        return self._peaks[path]

    async def wait_for(self, count: int, path: str, timeout: float = 10.0) -> list[Received]:
        """Wait until ``path`` has received at least ``count`` requests; fail after ``timeout``."""
        try:
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: len(self.to(path)) >= count)
        except TimeoutError:
            raise AssertionError(
                f"{path} received {len(self.to(path))} requests within {timeout} s, expected {count}"
            ) from None
        return self.to(path)

    # --- server ----------------------------------------------------------------------------------

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_reply(self, path: str) -> Reply:
        planned = self._plans.get(path)
        if planned:
            return planned.popleft()
        return self._defaults.get(path, Reply())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        raw = [(k, v) for k, v in request.headers.items()]
        joined: dict[str, str] = {}
        for name, value in raw:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peer = (str(peername[0]), int(peername[1])) if peername else None
        received = Received(request.path, request.method, joined, raw, body, time.monotonic(), peer)
        reply = self._next_reply(request.path)
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        self._in_flight[request.path] += 1
        self._peaks[request.path] = max(self._peaks[request.path], self._in_flight[request.path])
        try:
            return await self._answer(request, reply, body)
        finally:
            self._in_flight[request.path] -= 1

    async def _answer(self, request: web.Request, reply: Reply, body: bytes) -> web.StreamResponse:
        if reply.hang:
            await self._closing.wait()
            return web.Response(status=503)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.redirect is not None:
            return web.Response(status=302, headers={"Location": reply.redirect, **reply.headers})
        if reply.trickle or reply.endless:
            response = web.StreamResponse(status=reply.status, headers=reply.headers)
            response.content_type = "text/plain"
            await response.prepare(request)
            with contextlib.suppress(ConnectionError, RuntimeError):
                while not self._closing.is_set():
                    if reply.trickle:
                        await response.write(b".")
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(0.2):
                                await self._closing.wait()
                    else:
                        await response.write(b"x" * 16384)
            return response
        if reply.parts:
            response = web.StreamResponse(status=reply.status, headers=reply.headers)
            response.content_length = sum(len(part) for part in reply.parts)
            await response.prepare(request)
            for n, part in enumerate(reply.parts):
                if n:
                    await asyncio.sleep(0.05)
                await response.write(part)
            await response.write_eof()
            return response
        if reply.echo_challenge:
            return web.json_response(
                {"challenge": _challenge(body)}, status=reply.status, headers=reply.headers
            )
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


def _challenge(body: bytes) -> object:
    """The ``challenge`` of a JSON object body (None if there is none)."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get("challenge") if isinstance(value, dict) else None
