"""The aiohttp sender (``HOOKLINE_SENDER=aiohttp``): one pooled session per worker, keep-alive on.

Every connection goes through the egress policy (``hookline.egress``): names are resolved and pinned to
allowed addresses by the connector's ``PolicyResolver``, IP literals are checked before the request.
Redirects are not followed. The deadline covers the whole attempt (connect, send, headers, body), so a
receiver that trickles bytes cannot hold a slot past it.

With an egress proxy (``HOOKLINE_EGRESS_PROXY``, ``hookline.fixed_egress``) the sender resolves and checks
the host itself (``egress.resolve_allowed``, cached for ``dns_ttl`` seconds) and hands aiohttp the URL with
the checked address in place of the name, plus the name as ``Host`` and as the TLS server name. aiohttp
then asks the proxy for ``CONNECT <address>:<port>`` and runs TLS through the tunnel, verifying the
certificate for the name; a plain ``http://`` URL (development only) goes to the proxy as an
absolute-form request for ``http://<address>:<port>/...``, the way HTTP proxies forward plain HTTP. The
connector then resolves nothing but the proxy's own name (``ProxyOnlyResolver``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from http import HTTPStatus
from typing import NamedTuple

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from hookline.dispatch.sender import HttpSender, Reply, Request, clean_body
from hookline.egress import (
    BlockedAddressError,
    UrlPolicy,
    assert_connectable,
    check_ip_literal,
    make_connector,
    resolve_allowed,
)
from hookline.fixed_egress import EgressProxy
from hookline.signing import SignatureStyle


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BlockedAddressError):
        return str(exc)
    if isinstance(exc, socket.gaierror):  # hookline's own resolution (through a proxy)
        return f"connection failed: could not resolve host ({exc.strerror or exc})"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return _proxy_refused(exc)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return _proxy_unreachable(exc.os_error)
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


def _proxy_refused(exc: aiohttp.ClientHttpProxyError) -> str:
    """The proxy answered CONNECT with something else than 200. Its reason phrase is not quoted (the
    standard one is): what a proxy writes there is not ours to put in an attempt record."""
    target = exc.request_info.url  # the tunnel's target (its ``real_url`` is the proxy's own URL)
    try:
        phrase = HTTPStatus(exc.status).phrase
    except ValueError:
        phrase = "non-standard status"
    where = f"{target.host_subcomponent}:{target.port}"
    text = f"the egress proxy refused the tunnel to {where}: {exc.status} {phrase}"
    if exc.status == 407:
        text += " (check the credentials in HOOKLINE_EGRESS_PROXY)"
    return text


def _proxy_unreachable(os_error: OSError) -> str:
    """No connection to the proxy. Said without the proxy's address: attempt records are the tenant's to
    read, and the proxy is the operator's (who knows where it is)."""
    if isinstance(os_error, socket.gaierror):
        why = "its host name did not resolve"
    elif os_error.errno:
        why = os.strerror(os_error.errno)
    else:
        why = type(os_error).__name__
    return f"the egress proxy could not be reached ({why})"


class ProxyOnlyResolver(AbstractResolver):
    """The connector's resolver when a proxy is set. Every request URL then names an address the policy
    already let through, so the one name aiohttp has to resolve is the proxy's: exempt from the policy,
    because it is the operator's, and only ever connected to as the proxy. Any other name is refused (a
    lookup for it would be a destination that escaped the check)."""

    def __init__(self, proxy_host: str) -> None:
        self._proxy_host = proxy_host.rstrip(".").lower()
        self._inner: ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".").lower() != self._proxy_host:
            raise OSError(f"refusing to resolve {host!r}: only the egress proxy's own name is resolved")
        if self._inner is None:
            self._inner = ThreadedResolver()  # needs the running loop, so created lazily
        return await self._inner.resolve(host, port, family)

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class _Via(NamedTuple):
    """How one request is made: the URL (with the checked address when through a proxy), its headers,
    the name TLS verifies when the URL holds an address, and the headers of the proxy's CONNECT."""

    url: str | URL
    headers: dict[str, str]
    server_hostname: str | None = None
    proxy_headers: dict[str, str] | None = None


class AiohttpSender(HttpSender):
    errors = (aiohttp.ClientError, OSError, ValueError)

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        style: SignatureStyle = SignatureStyle(),
        body_limit: int = 64 * 1024,
        connection_limit: int = 0,
        proxy: EgressProxy | None = None,
        dns_ttl: float = 60.0,
    ) -> None:
        super().__init__(policy, style, body_limit)
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        self._proxy = proxy
        self._proxy_url = URL(proxy.url) if proxy is not None else None
        # Basic credentials (RFC 7617, UTF-8): with the CONNECT of an https:// URL, with the request itself
        # for an http:// one (which goes to the proxy as it is).
        self._proxy_authorization = (
            {"Proxy-Authorization": aiohttp.encode_basic_auth(proxy.username, proxy.password)}
            if proxy is not None and proxy.has_credentials
            else {}
        )
        self._dns_ttl = dns_ttl
        self._addresses: dict[str, tuple[str, float]] = {}  # host name -> (checked address, until)

    async def start(self) -> None:
        if self._proxy is None:
            connector = make_connector(
                self._policy,
                limit=self._connection_limit,
                limit_per_host=0,
                ttl_dns_cache=60,
                keepalive_timeout=30,
            )
        else:
            connector = aiohttp.TCPConnector(
                resolver=ProxyOnlyResolver(self._proxy.host),
                limit=self._connection_limit,
                limit_per_host=0,
                ttl_dns_cache=60,
                keepalive_timeout=30,
            )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # no proxy from the environment: the policy must see the real target
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
            if self._proxy is None:
                assert_connectable(request.url, self._policy)
                via = _Via(request.url, headers)
            else:
                via = await self._through_proxy(request.url, headers)
            async with self._session.post(
                via.url,
                data=request.body,
                headers=via.headers,
                allow_redirects=False,
                proxy=self._proxy_url,
                proxy_headers=via.proxy_headers,
                server_hostname=via.server_hostname,
            ) as response:
                reply.status = response.status
                reply.retry_after = response.headers.get("Retry-After")
                raw, complete = await self._read_capped(response.content)
                reply.text = clean_body(raw)
                if not complete:
                    response.close()  # do not return a connection with unread bytes to the pool

    def _describe(self, exc: BaseException) -> str:
        if (
            self._proxy is not None
            and isinstance(exc, aiohttp.ClientConnectorDNSError)
            and exc.host.rstrip(".").lower() == self._proxy.host.rstrip(".")
        ):
            return _proxy_unreachable(exc.os_error)
        return _describe(exc)

    async def _through_proxy(self, text: str, headers: dict[str, str]) -> _Via:
        """The request for the proxy: ``text`` with its host replaced by the address the policy allows,
        the headers with the URL's own ``Host``, and the name TLS must verify (none for an IP literal)."""
        url = URL(text)
        host = url.raw_host
        if not host or url.port is None:
            raise ValueError("URL has no host")
        literal = check_ip_literal(host, self._policy)  # a blocked literal raises BlockedAddressError
        address = await self._checked_address(host, url.port)
        headers = {**headers, "Host": url.host_port_subcomponent or host}
        if url.scheme == "https":
            server_hostname = None if literal else host.rstrip(".")
            return _Via(url.with_host(address), headers, server_hostname, self._proxy_authorization)
        return _Via(url.with_host(address), {**headers, **self._proxy_authorization})

    async def _checked_address(self, host: str, port: int) -> str:
        """The address of ``host`` the proxy is asked for (an IP literal resolves to itself, written the
        standard way), kept for ``dns_ttl`` seconds: the first one the policy allows, IPv4 before IPv6.
        Through a proxy only one address is tried, and a proxy without IPv6 is common."""
        now = time.monotonic()
        known = self._addresses.get(host)
        if known is not None and known[1] > now:
            return known[0]
        allowed = await resolve_allowed(host, port, self._policy)
        address = next((a for a in allowed if ":" not in a), allowed[0])
        if len(self._addresses) >= 10_000:
            self._addresses.clear()
        self._addresses[host] = (address, now + self._dns_ttl)
        return address

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
