"""Sending one delivery attempt: sign the stored bytes, POST them, read a bounded response.

One pooled aiohttp session per worker, keep-alive on. Every connection goes through the egress policy
(``hookline.egress``): names are resolved and pinned to public addresses, IP literals are checked before
the request. Redirects are not followed. The deadline covers the whole attempt (connect, send, headers,
body), so a receiver that trickles bytes cannot hold a slot past it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from hookline import __version__
from hookline.egress import BlockedAddressError, UrlPolicy, assert_connectable, make_connector
from hookline.signing import SignatureStyle, signature_headers

USER_AGENT = f"hookline/{__version__}"
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Request:
    url: str
    event_id: str
    event_type: str
    body: bytes
    secrets: Sequence[str]
    custom_headers: Mapping[str, str]
    timeout: float


@dataclass(frozen=True)
class AttemptResult:
    started_at: float  # unix time
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    retry_after: str | None
    request_headers: dict[str, str]  # as sent, custom header values redacted


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BlockedAddressError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddressError):
        return str(exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate error: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed: {exc.strerror or exc}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Sender:
    def __init__(
        self,
        policy: UrlPolicy,
        *,
        style: SignatureStyle = SignatureStyle(),
        body_limit: int = 64 * 1024,
        connection_limit: int = 0,
    ) -> None:
        self._policy = policy
        self._style = style
        self._body_limit = body_limit
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = make_connector(
            self._policy,
            limit=self._connection_limit,
            limit_per_host=0,
            ttl_dns_cache=60,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # never through a proxy: the policy must see the real target
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def own_headers(self, request: Request, timestamp: int) -> dict[str, str]:
        """The headers hookline sets itself: content type, user agent and the signatures."""
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **signature_headers(
                event_id=request.event_id,
                event_type=request.event_type,
                timestamp=timestamp,
                body=request.body,
                secrets=request.secrets,
                style=self._style,
            ),
        }

    def headers(self, request: Request, timestamp: int, own: dict[str, str] | None = None) -> dict[str, str]:
        """Custom headers, minus any that (in any letter case) would replace ours, then ours."""
        own = own if own is not None else self.own_headers(request, timestamp)
        taken = {name.lower() for name in own}
        headers = {k: v for k, v in request.custom_headers.items() if k.lower() not in taken}
        headers.update(own)
        return headers

    async def send(self, request: Request) -> AttemptResult:
        assert self._session is not None, "Sender.start() was not called"
        started = time.time()
        clock = time.perf_counter()
        own = self.own_headers(request, int(started))
        headers = self.headers(request, int(started), own)
        recorded = {k: (v if k in own else REDACTED) for k, v in headers.items()}
        status: int | None = None
        text: str | None = None
        retry_after: str | None = None
        problem: str | None = None
        try:
            async with asyncio.timeout(request.timeout):
                assert_connectable(request.url, self._policy)
                async with self._session.post(
                    request.url, data=request.body, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
                    raw, complete = await self._read_capped(response.content)
                    # NUL cannot be stored in PostgreSQL text: an attempt that cannot be recorded
                    # would block every other result of its batch.
                    text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
                    if not complete:
                        response.close()  # do not return a connection with unread bytes to the pool
        except TimeoutError:
            problem = f"timed out after {request.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            problem = _describe(exc)
        if status is not None and 300 <= status < 400:
            problem = f"redirect ({status}) not followed"
        duration_ms = int((time.perf_counter() - clock) * 1000)
        return AttemptResult(started, duration_ms, status, text, problem, retry_after, recorded)

    async def _read_capped(self, content: aiohttp.StreamReader) -> tuple[bytes, bool]:
        """Up to ``body_limit`` bytes; whether the body ended within them."""
        chunks: list[bytes] = []
        size = 0
        while size < self._body_limit:
            chunk = await content.read(self._body_limit - size)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), content.at_eof()
