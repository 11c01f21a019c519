"""The aiohttp sender (``HOOKLINE_SENDER=aiohttp``): one pooled session per worker, keep-alive on.

Every connection goes through the egress policy (``hookline.egress``): names are resolved and pinned to
allowed addresses by the connector's ``PolicyResolver``, IP literals are checked before the request.
Redirects are not followed. The deadline covers the whole attempt (connect, send, headers, body), so a
receiver that trickles bytes cannot hold a slot past it.
"""

from __future__ import annotations

import asyncio

import aiohttp

from hookline.dispatch.sender import HttpSender, Reply, Request, clean_body
from hookline.egress import BlockedAddressError, UrlPolicy, assert_connectable, make_connector
from hookline.signing import SignatureStyle


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


class AiohttpSender(HttpSender):
    errors = (aiohttp.ClientError, OSError, ValueError)

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        style: SignatureStyle = SignatureStyle(),
        body_limit: int = 64 * 1024,
        connection_limit: int = 0,
    ) -> None:
        super().__init__(policy, style, body_limit)
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

    async def _exchange(self, request: Request, headers: dict[str, str], reply: Reply, clock: float) -> None:
        assert self._session is not None, "Sender.start() was not called"
        async with asyncio.timeout(request.timeout):
            assert_connectable(request.url, self._policy)
            async with self._session.post(
                request.url, data=request.body, headers=headers, allow_redirects=False
            ) as response:
                reply.status = response.status
                reply.retry_after = response.headers.get("Retry-After")
                raw, complete = await self._read_capped(response.content)
                reply.text = clean_body(raw)
                if not complete:
                    response.close()  # do not return a connection with unread bytes to the pool

    def _describe(self, exc: BaseException) -> str:
        return _describe(exc)

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
