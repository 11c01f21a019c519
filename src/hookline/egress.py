"""Egress policy: which webhook URLs and custom headers hookline accepts, and which addresses it
connects to.

Protection against server-side request forgery happens in two places, and both are needed:

* at registration, :func:`check_webhook_url` rejects malformed URLs, internal host names and
  non-public IP literals (host names are *not* resolved there);
* at delivery, every name is resolved by us and only addresses the policy allows are used:
  :func:`resolve_allowed` for the pyreqwest sender (which pins each host name to the address it
  returned), :class:`PolicyResolver` inside the aiohttp connector from :func:`make_connector`.
  IP-literal hosts are never resolved, so the senders check them with :func:`check_ip_literal`
  (aiohttp: :func:`assert_connectable`) before every request.

Connections go to exactly the addresses the policy let through, so DNS rebinding between the
check and the connect is not possible. A sender must not let an HTTP proxy resolve names, which would
move resolution out of our hands (the egress proxy, ``hookline.fixed_egress``, is asked for the
checked address), and must not follow redirects: a redirect to an IP literal would bypass the
literal check.

Custom headers (:func:`header_problem`) are checked here too, because they are part of what goes out:
a header that changes how the request is framed or carried (``Connection``, ``Transfer-Encoding``,
``Proxy-*``...) or a value no HTTP client can send would make every delivery fail, or worse, be sent
differently by each sender.

Every refusal that a setting can lift names the setting, so an operator testing locally knows what
to change; refusals no setting can lift (internal names such as ``*.internal``) do not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

__all__ = [
    "BlockedAddressError",
    "IPAddress",
    "IPNetwork",
    "PolicyResolver",
    "UrlPolicy",
    "UrlRejected",
    "assert_connectable",
    "check_ip_literal",
    "check_webhook_url",
    "header_problem",
    "is_blocked_address",
    "make_connector",
    "parse_networks",
    "resolve_allowed",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048

# Ranges that ``is_global`` misses, or whose treatment differs between Python versions.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "::/96",  # unspecified, loopback and deprecated IPv4-compatible addresses
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/32",  # Teredo
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Host names that can only mean something on the local network (RFC 6761, RFC 6762, RFC 8375
# and common private conventions); the name itself or any subdomain is rejected.
_INTERNAL_NAMES = (
    "localhost",
    "localdomain",
    "local",
    "internal",
    "intranet",
    "lan",
    "home",
    "home.arpa",
    "corp",
)

_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Characters of every IPv4 spelling inet_aton() accepts (decimal, octal, hex; 1 to 4 parts).
_NUMERIC_HOST_RE = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_NUMBER_RE = re.compile(r"[0-9]+|0x[0-9a-f]*", re.IGNORECASE)
_CONTROL_OR_SPACE_RE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")  # plain decimal digits, no sign, no leading zero

# What the refusals that a setting can lift say about it.
_HTTP_HINT = "set HOOKLINE_ALLOW_HTTP=true to allow http:// for local development"
_NETWORKS_HINT = "HOOKLINE_ALLOWED_NETWORKS can allow it"
_LOOPBACK_HINT = "HOOKLINE_ALLOWED_NETWORKS=127.0.0.0/8 can allow it for local development"
_LOOPBACK = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))

# Custom header names an endpoint may not set: hop-by-hop headers (RFC 9110 7.6.1) and the ones that
# frame or encode the body. They describe the connection or the bytes, which only the sender decides.
# (hookline's own headers -- Content-Type, signatures... -- are reserved by the API, which knows the
# configured signature prefix.)
FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "content-encoding",
        "transfer-encoding",
        "content-length",
        "host",
    }
)
FORBIDDEN_HEADER_PREFIXES = ("proxy-",)
MAX_HEADER_VALUE = 4096
# A value is visible ASCII, spaces and tabs (RFC 9110 field-value without obs-text): clients encode
# anything beyond ASCII differently (aiohttp as UTF-8, others as Latin-1 or not at all).
_HEADER_VALUE_RE = re.compile(r"[\t\x20-\x7e]*")
_HEADER_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class UrlPolicy:
    """What hookline may connect to; ``allowed_networks`` are exempt from address blocking."""

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()


class UrlRejected(ValueError):
    """A webhook URL was refused; ``message`` is safe to show to the customer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BlockedAddressError(OSError):
    """A connection was refused by the egress policy (an ``OSError``, so aiohttp reports it as a
    connection error)."""

    def __init__(self, host: str, addresses: Iterable[str]) -> None:
        self.host = host
        self.addresses = tuple(dict.fromkeys(addresses))
        addresses = ", ".join(self.addresses)
        message = f"refusing to connect to {host!r} at {addresses}: not a public address ({_NETWORKS_HINT})"
        super().__init__(message)
        self.strerror = message  # aiohttp's ClientConnectorError shows strerror


def is_blocked_address(ip: IPAddress, policy: UrlPolicy) -> bool:
    """Return True unless ``ip`` is globally routable or inside ``policy.allowed_networks``.

    ``ipaddress``'s ``is_global`` covers loopback, private, link-local, shared (CGNAT),
    reserved, documentation and benchmarking ranges, but it considers multicast global and its
    tables vary between Python versions, so multicast and ``_EXTRA_BLOCKED`` are checked
    explicitly. IPv6 addresses that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged
    by the embedded address, since that is where the packets end up.
    """
    if any(ip in network for network in policy.allowed_networks):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_blocked_address(embedded, policy)
    return not ip.is_global or ip.is_multicast or any(ip in network for network in _EXTRA_BLOCKED)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ip_literal(host: str) -> IPAddress | None:
    """Return the address an (unbracketed) URL host denotes literally, or None for a name.

    IPv4 is read with ``inet_aton`` semantics, as the system resolver would, so ``2130706433``,
    ``0x7f.1`` and ``127.1`` all mean 127.0.0.1.
    """
    host = host.removesuffix(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])  # drop any zone id
        except ValueError:
            return None
    if not _NUMERIC_HOST_RE.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_webhook_url(url: str, policy: UrlPolicy) -> str:
    """Validate a customer's endpoint URL and return it stripped of surrounding whitespace.

    Raises :class:`UrlRejected` with a user-facing message. Host names are not resolved here;
    the addresses they resolve to are checked at connect time by :class:`PolicyResolver`.
    """
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejected(f"URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL_OR_SPACE_RE.search(url):
        raise UrlRejected("URL must not contain whitespace or control characters")
    try:
        parsed = URL(url)
    except ValueError as exc:
        if "port" in str(exc).lower():
            _check_port(url)  # the specific complaint about how it is written, if there is one
            raise UrlRejected("URL port must be between 1 and 65535") from None
        raise UrlRejected("URL must be an absolute http(s) URL") from None

    host = parsed.raw_host
    if parsed.scheme not in ("http", "https"):
        if parsed.scheme and host:
            raise UrlRejected(f"URL scheme {parsed.scheme!r} is not supported")
        raise UrlRejected("URL must be an absolute http(s) URL")
    if not host:
        raise UrlRejected("URL must be an absolute http(s) URL")
    if parsed.scheme == "http" and not policy.allow_http:
        raise UrlRejected(f"URL must be HTTPS ({_HTTP_HINT})")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise UrlRejected("URL must not contain credentials")
    _check_port(url)
    _check_host(host, policy)
    return url


def _check_port(url: str) -> None:
    """The port as written, not as yarl reads it: yarl (like ``int()``) accepts ``+443``, ``0443``
    and non-ASCII digits, which other HTTP clients refuse or read differently."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        raise UrlRejected("URL must be an absolute http(s) URL") from None
    host_port = netloc.rpartition("@")[2]
    if host_port.startswith("["):
        _, _, after = host_port.partition("]")
        has_port, port = after.startswith(":"), after[1:]
    else:
        _, colon, port = host_port.rpartition(":")
        has_port = bool(colon)
    if not has_port:
        return
    if not (port.isascii() and port.isdigit()) or (port.startswith("0") and port.strip("0")):
        raise UrlRejected("URL port must be written as plain digits (e.g. :8443)")
    if not (_PORT_RE.fullmatch(port) and int(port) <= 65535):
        raise UrlRejected("URL port must be between 1 and 65535")


def _check_host(host: str, policy: UrlPolicy) -> None:
    ip = _ip_literal(host)
    if ip is not None:
        if is_blocked_address(ip, policy):
            raise UrlRejected(f"URL host {host!r} is not a public address ({_NETWORKS_HINT})")
        return
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_LABEL_RE.fullmatch(label) for label in labels)
        or _NUMBER_RE.fullmatch(labels[-1])  # looks numeric but is not a valid IPv4 address
    ):
        raise UrlRejected(f"URL host {host!r} is not a valid host name")
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: loopback by definition. Allowed when the loopback addresses are; the addresses
        # it resolves to at delivery still go through the policy.
        if not any(not is_blocked_address(ip, policy) for ip in _LOOPBACK):
            raise UrlRejected(f"URL host {host!r} is not a public address ({_LOOPBACK_HINT})")
        return
    if len(labels) == 1 or any(name == n or name.endswith("." + n) for n in _INTERNAL_NAMES):
        raise UrlRejected(f"URL host {host!r} is not a public address")


def header_problem(name: str, value: str) -> str | None:
    """Why an endpoint may not send the custom header ``name: value``, or None.

    The answer names the header but never shows the value: header values are often credentials.
    """
    lowered = name.lower()
    if lowered in FORBIDDEN_HEADERS or lowered.startswith(FORBIDDEN_HEADER_PREFIXES):
        return f"header '{name}' controls how the request is carried and cannot be set on an endpoint"
    if _HEADER_CONTROL_RE.search(value):
        return f"invalid value for header '{name}' (control characters are not allowed)"
    if not _HEADER_VALUE_RE.fullmatch(value):
        return f"invalid value for header '{name}' (only visible ASCII characters, spaces and tabs)"
    if len(value) > MAX_HEADER_VALUE:
        return f"invalid value for header '{name}' (longer than {MAX_HEADER_VALUE} characters)"
    return None


def assert_connectable(url: URL | str, policy: UrlPolicy) -> None:
    """Raise :class:`BlockedAddressError` if ``url``'s host is a blocked IP literal.

    Call before every request: aiohttp connects to IP-literal hosts without asking the resolver,
    so :class:`PolicyResolver` alone does not cover them. Host names are left to the resolver.
    """
    host = URL(url).raw_host if isinstance(url, str) else url.raw_host
    if host is not None:
        check_ip_literal(host, policy)


def check_ip_literal(host: str, policy: UrlPolicy) -> bool:
    """For a URL host as an HTTP client parsed it (``127.0.0.1``, ``[::1]``): True if it is an IP
    literal the policy allows, False if it is a name (to be resolved with :func:`resolve_allowed`).
    Raises :class:`BlockedAddressError` for a blocked literal."""
    ip = _ip_literal(host.removeprefix("[").removesuffix("]"))
    if ip is None:
        return False
    if is_blocked_address(ip, policy):
        raise BlockedAddressError(host, [str(ip)])
    return True


async def resolve_allowed(host: str, port: int, policy: UrlPolicy) -> list[str]:
    """Resolve ``host`` with the system resolver and return the addresses the policy allows, in the
    resolver's order. Raises :class:`BlockedAddressError` when it resolved only to blocked addresses,
    ``OSError`` (``socket.gaierror``) when it did not resolve."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    allowed = [address for address in found if not _blocked_text(address, policy)]
    if not allowed:
        raise BlockedAddressError(host, found)
    return allowed


def _blocked_text(address: str, policy: UrlPolicy) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True  # not an address we understand: fail closed
    return is_blocked_address(ip, policy)


class PolicyResolver(AbstractResolver):
    """Resolver that drops every address the policy blocks (wraps ``ThreadedResolver`` by default).

    Raises :class:`BlockedAddressError` when nothing is left. Does not see IP-literal hosts; see
    :func:`assert_connectable`.
    """

    def __init__(self, policy: UrlPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()  # needs the running loop, so created lazily
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if not self._blocked(result["host"])]
        if results and not allowed:
            raise BlockedAddressError(host, [result["host"] for result in results])
        return allowed

    def _blocked(self, address: str) -> bool:
        return _blocked_text(address, self._policy)

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def make_connector(policy: UrlPolicy, **kwargs: Any) -> aiohttp.TCPConnector:
    """Build a ``TCPConnector`` that resolves through :class:`PolicyResolver`.

    Must be called with a running event loop; ``kwargs`` go to ``TCPConnector``. (The connector
    does not close a resolver it was given; the default inner ``ThreadedResolver`` holds nothing.)
    """
    return aiohttp.TCPConnector(resolver=PolicyResolver(policy), **kwargs)


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """Parse a comma-separated CIDR list such as ``HOOKLINE_ALLOWED_NETWORKS``; blanks are ignored."""
    networks: list[IPNetwork] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise ValueError(f"invalid network {item!r}: {exc}") from None
    return tuple(networks)
