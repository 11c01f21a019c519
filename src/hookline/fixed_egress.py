"""Fixed egress: the HTTP proxy every outbound request leaves through (``HOOKLINE_EGRESS_PROXY``), and the
source addresses the operator publishes for receivers' allow-lists (``HOOKLINE_EGRESS_IPS``,
``GET /v1/egress-ips``).

The proxy does not take the egress policy's place (``hookline.egress``): hookline still resolves every
destination and checks each address itself, then asks the proxy for a tunnel to the checked *address*
(``CONNECT 203.0.113.9:443``), never to the host name, which the proxy would resolve again, to wherever
the name points by then. TLS runs end to end through the tunnel, with the host name's SNI and
certificate check, and the request carries the URL's own ``Host``. The proxy's own address is not checked
against the policy: it is the operator's, and hookline only ever connects to it as the proxy.

Credentials in the proxy URL (``http://user:password@host:port``) stay out of every repr, message and
log line: ``EgressProxy`` shows only host and port, and no parsing error quotes what it was given.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = [
    "PYREQWEST_CANNOT_PROXY",
    "EgressProxy",
    "parse_egress_ips",
    "parse_egress_proxy",
    "published",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Why HOOKLINE_SENDER=pyreqwest refuses a proxy (at start, never by falling back to something weaker).
PYREQWEST_CANNOT_PROXY = (
    "HOOKLINE_EGRESS_PROXY needs HOOKLINE_SENDER=aiohttp (the default when a proxy is set): pyreqwest "
    "asks a proxy to CONNECT to the host name, so the proxy, not hookline, would choose the address"
)

_SHAPE = "write http://host:port or http://user:password@host:port"
# Labels of letters, digits, hyphens and underscores (container service names often have them).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME_RE = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
_CONTROL_OR_SPACE_RE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class EgressProxy:
    """An HTTP proxy that tunnels (``CONNECT``) to the addresses hookline names. ``host`` is a name or an
    IP address (IPv6 without brackets); the credentials, if any, are not part of the repr."""

    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """``http://host:port``, without the credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def has_credentials(self) -> bool:
        return bool(self.username or self.password)

    def __str__(self) -> str:
        return self.url


def parse_egress_proxy(text: str) -> EgressProxy | None:
    """``http://user:secret@proxy.internal:3128`` -> ``EgressProxy``; blank -> None (no proxy).

    Raises ``ValueError`` with a message that never repeats the text (it may hold a password).
    """
    text = text.strip()
    if not text:
        return None
    if _CONTROL_OR_SPACE_RE.search(text):
        raise ValueError(f"must not contain spaces or control characters ({_SHAPE})")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ValueError(f"is not a URL ({_SHAPE})") from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        if scheme == "https":
            raise ValueError(
                "must be an http:// proxy URL: hookline asks the proxy for a CONNECT tunnel and runs TLS "
                "to the receiver through it (a TLS connection to the proxy itself is not supported)"
            )
        if scheme and parts.netloc:
            raise ValueError(f"scheme {scheme!r} is not supported: only HTTP CONNECT proxies ({_SHAPE})")
        raise ValueError(f"is not a URL ({_SHAPE})")
    if (parts.path not in ("", "/")) or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(f"must not have a path, query or fragment ({_SHAPE})")
    userinfo, at, host_port = parts.netloc.rpartition("@")
    host, port = _host_and_port(host_port)
    username = password = ""
    if at:
        raw_user, _, raw_password = userinfo.partition(":")
        username, password = unquote(raw_user), unquote(raw_password)
        if not username:
            raise ValueError(f"has a password but no user name ({_SHAPE})")
        if ":" in username:
            raise ValueError("the proxy user name must not contain ':' (a Basic credential cannot hold it)")
        if _CONTROL_RE.search(username + password):
            raise ValueError("the proxy credentials must not contain control characters")
    return EgressProxy(host, port, username, password)


def _host_and_port(host_port: str) -> tuple[str, int]:
    if host_port.startswith("["):
        inside, bracket, after = host_port[1:].partition("]")
        if not bracket:
            raise ValueError(f"is not a URL ({_SHAPE})")
        try:
            host = str(ipaddress.IPv6Address(inside))
        except ValueError:
            raise ValueError(f"the proxy host is not a valid IPv6 address ({_SHAPE})") from None
        colon, port = after[:1], after[1:]
        if after and colon != ":":
            raise ValueError(f"is not a URL ({_SHAPE})")
    else:
        host, colon, port = host_port.rpartition(":")
        if not colon:
            host, port = host_port, ""
        host = host.lower()
        if not host:
            raise ValueError(f"has no proxy host ({_SHAPE})")
        if not _valid_host(host):
            raise ValueError(f"the proxy host is not a valid host name or IPv4 address ({_SHAPE})")
    if not port:
        raise ValueError(f"must name the proxy's port, e.g. http://proxy.internal:3128 ({_SHAPE})")
    if not (_PORT_RE.fullmatch(port) and int(port) <= 65535):
        raise ValueError("the proxy port must be a number from 1 to 65535")
    return host, int(port)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        numeric = host.replace(".", "").isdigit()  # looks like an address, but is not one
        return len(host) <= 253 and _NAME_RE.fullmatch(host) is not None and not numeric
    return True


def parse_egress_ips(value: str) -> tuple[IPNetwork, ...]:
    """``"203.0.113.7, 198.51.100.0/28"`` -> the networks (a single address is a /32 or /128), in the
    order given, without repeats; blanks are ignored. A network with host bits set is refused rather than
    published as something other than what was written."""
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if "%" in item:
            raise ValueError(f"invalid address or network {item!r}: a zone (%...) cannot be published")
        try:
            network = ipaddress.ip_network(item)
        except ValueError as exc:
            raise ValueError(f"invalid address or network {item!r}: {exc}") from None
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def published(networks: tuple[IPNetwork, ...]) -> list[str]:
    """As receivers read them: ``203.0.113.7`` for a single address, ``198.51.100.0/28`` for a network."""
    return [
        str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
        for network in networks
    ]
