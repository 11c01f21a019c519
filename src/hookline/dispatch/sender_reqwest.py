"""The pyreqwest sender (the default): Rust's reqwest and hyper under asyncio, about half of aiohttp's CPU
per request.

reqwest resolves names itself and has no resolver hook in pyreqwest, so the egress policy is kept by
pinning: hookline resolves each host name itself (``egress.resolve_allowed``, which drops every address
the policy blocks) and builds one client per host name with that name mapped to the allowed address
(``ClientBuilder.resolve``). A pinned client is only ever given URLs of its own host; the pin is renewed
after ``dns_ttl`` seconds. IP-literal hosts are checked against the policy before every request and go
through one shared client (reqwest does not resolve literals). Host names are taken from reqwest's own
URL parser, so the name that is pinned is exactly the name reqwest looks up.

No redirects, no proxy (not even from the environment), no decompression. The deadline covers the whole
attempt (resolution, connect, send, headers, capped body read).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, PyreqwestError
from pyreqwest.http import Url
from pyreqwest.response import ResponseBodyReader

from hookline.dispatch.sender import HttpSender, Reply, Request, clean_body
from hookline.egress import BlockedAddressError, UrlPolicy, check_ip_literal, resolve_allowed
from hookline.signing import SignatureStyle

__all__ = ["ReqwestSender"]


@dataclass(slots=True)
class _Pin:
    client: Client
    address: str
    renew_at: float  # time.monotonic()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BlockedAddressError):
        return str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, PyreqwestError):  # resolution failed
        return f"connection failed: could not resolve host ({exc.strerror or exc})"
    if isinstance(exc, PyreqwestError):
        details = getattr(exc, "details", None) or {}
        causes = [c.get("message", "") for c in details.get("causes") or [] if isinstance(c, dict)]
        detail = causes[-1] if causes else (exc.args[0] if exc.args else type(exc).__name__)
        lowered = " ".join(causes).lower()
        if "certificate" in lowered or "invalidcertificate" in lowered:
            return f"TLS certificate error: {detail}"
        if "tls" in lowered or "ssl" in lowered:
            return f"TLS error: {detail}"
        if "connection closed before message completed" in lowered or "incomplete message" in lowered:
            return "the server closed the connection without answering"
        if isinstance(exc, ConnectError):
            return f"connection failed: {detail}"
        return f"{type(exc).__name__}: {detail}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ReqwestSender(HttpSender):
    errors = (PyreqwestError, OSError, ValueError)

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        style: SignatureStyle = SignatureStyle(),
        body_limit: int = 64 * 1024,
        dns_ttl: float = 60.0,
        max_hosts: int = 1024,
    ) -> None:
        super().__init__(policy, style, body_limit)
        self._dns_ttl = dns_ttl
        self._max_hosts = max_hosts
        self._direct: Client | None = None
        self._pins: OrderedDict[str, _Pin] = OrderedDict()
        self._pinning: dict[str, asyncio.Future[Client]] = {}
        self._retired: list[Client] = []
        # Parsed URLs and the policy's verdict on literal hosts, per string (endpoints repeat).
        self._urls: dict[str, Url] = {}
        self._literals: dict[str, bool | BlockedAddressError] = {}

    def _builder(self) -> ClientBuilder:
        return (
            ClientBuilder()
            .follow_redirects(False)
            .no_proxy()
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .default_cookie_store(False)
            .pool_idle_timeout(timedelta(seconds=30))
            .https_only(not self._policy.allow_http)
        )

    async def start(self) -> None:
        self._direct = self._builder().build()

    async def close(self) -> None:
        clients = [pin.client for pin in self._pins.values()] + self._retired
        if self._direct is not None:
            clients.append(self._direct)
        self._pins.clear()
        self._retired.clear()
        self._direct = None
        for client in clients:
            await client.close()

    def _ready_client(self, url: Url) -> Client | None:
        """The client for ``url`` if no resolution is needed (an allowed IP literal or a live pin)."""
        host = url.host_str
        if not host:
            return None
        verdict = self._literals.get(host)
        if verdict is True:
            return self._direct
        pin = self._pins.get(host) if verdict is False else None
        if pin is not None and pin.renew_at > time.monotonic():
            self._pins.move_to_end(host)
            return pin.client
        return None

    async def _client_for(self, url: Url) -> Client:
        assert self._direct is not None, "Sender.start() was not called"
        host = url.host_str
        if not host:
            raise ValueError("URL has no host")
        verdict = self._literals.get(host)
        if verdict is None:
            try:
                verdict = check_ip_literal(host, self._policy)
            except BlockedAddressError as exc:
                verdict = exc
            if len(self._literals) >= 100_000:
                self._literals.clear()
            self._literals[host] = verdict
        if isinstance(verdict, BlockedAddressError):
            raise BlockedAddressError(verdict.host, verdict.addresses)  # a fresh one: no growing traceback
        if verdict:
            return self._direct
        pending = self._pinning.get(host)
        if pending is None:  # one resolution per host, however many requests wait for it
            pending = asyncio.ensure_future(self._pin(host, url.port_or_known_default or 443))
            self._pinning[host] = pending
            pending.add_done_callback(self._pinned)
        return await asyncio.shield(pending)

    def _url(self, text: str) -> Url:
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= 100_000:
                self._urls.clear()
            url = self._urls[text] = Url(text)
        return url

    def _pinned(self, done: asyncio.Future[Client]) -> None:
        for host, future in list(self._pinning.items()):
            if future is done:
                del self._pinning[host]

    async def _pin(self, host: str, port: int) -> Client:
        addresses = await resolve_allowed(host, port, self._policy)
        pin = self._pins.pop(host, None)
        if pin is not None and pin.address in addresses:
            address, client = pin.address, pin.client  # unchanged: keep the pooled connections
        else:
            if pin is not None:
                self._retired.append(pin.client)  # requests may still be using it; closed at close()
            address = addresses[0]
            client = self._builder().resolve(host, address, port).build()
        self._pins[host] = _Pin(client, address, time.monotonic() + self._dns_ttl)
        while len(self._pins) > self._max_hosts:
            _, oldest = self._pins.popitem(last=False)
            self._retired.append(oldest.client)
        if len(self._retired) > self._max_hosts:
            # Clients retired long ago have finished their requests (an attempt ends within its deadline).
            stale, self._retired = self._retired[: -self._max_hosts], self._retired[-self._max_hosts :]
            for old in stale:
                await old.close()
        return client

    async def _exchange(self, request: Request, headers: dict[str, str], reply: Reply, clock: float) -> None:
        url = self._url(request.url)
        client = self._ready_client(url)
        if client is None:  # a host name not pinned yet (or due for renewal): resolve within the deadline
            async with asyncio.timeout(request.timeout):
                client = await self._client_for(url)
        # reqwest's total timeout covers connect, send, headers and the body (streamed reads too).
        remaining = request.timeout - (time.perf_counter() - clock)
        builder = (
            client.post(url)
            .headers(headers)
            .body_bytes(request.body)
            .timeout(timedelta(seconds=max(remaining, 0.001)))
            # Hand the response over as soon as its head arrives: with a read-ahead buffer, a body
            # that trickles would hide even the status until the deadline.
            .streamed_read_buffer_limit(0)
        )
        async with builder.build_streamed() as response:
            reply.status = response.status
            reply.retry_after = response.get_header("retry-after")
            length = _length(response.get_header("content-length"))
            reply.text = clean_body(await self._read_capped(response.body_reader, length))

    def _describe(self, exc: BaseException) -> str:
        return _describe(exc)

    async def _read_capped(self, reader: ResponseBodyReader, length: int | None) -> bytes:
        """Up to ``body_limit`` bytes. What is left unread is dropped with the connection, which hyper then
        does not reuse. A body whose ``length`` was announced ends when that much has come, without one
        more read to see its end (an await per attempt less; hyper keeps the connection: the body it
        framed by Content-Length is complete)."""
        chunks: list[bytes] = []
        size = 0
        limit = self._body_limit if length is None else min(self._body_limit, length)
        while size < limit:
            chunk = await reader.read(limit - size)
            if chunk is None:
                break
            chunks.append(bytes(chunk))
            size += len(chunk)
        return b"".join(chunks)


def _length(value: str | None) -> int | None:
    """A response's Content-Length as a number of bytes; None when absent or not a plain number (hyper
    rejects a malformed one before the response reaches us)."""
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    return int(value)
