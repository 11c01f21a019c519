"""The address a request comes from, as a key's ``allowed_ips`` checks it.

The socket peer, unless ``HOOKLINE_TRUSTED_PROXIES`` lists it: then the request came through a proxy
of the operator's, and the client is the right-most address of ``X-Forwarded-For`` that is not itself
a trusted proxy (each proxy appends the peer it saw, so everything left of the last untrusted hop was
written by whoever sent the request and proves nothing). A peer that is not a trusted proxy is the
client, whatever ``X-Forwarded-For`` says: anyone can send that header.

uvicorn's own proxy-header handling is switched off (``proxy_headers=False`` where hookline starts it),
so this is the one rule. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from hookline.api.key_policy import IPAddress, IPNetwork

FORWARDED_FOR = b"x-forwarded-for"


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The client's address (None: it cannot be told, e.g. a trusted proxy wrote something that is not
    an address; a key with ``allowed_ips`` is then refused)."""
    address = parse_address(peer)
    if address is None or not _trusted(address, trusted):
        return address
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed([h for h in hops if h]):
        address = parse_address(hop)
        if address is None or not _trusted(address, trusted):
            return address
    return address  # every hop is a trusted proxy: the left-most one is as far as anyone can tell


def _trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def parse_address(text: str | None) -> IPAddress | None:
    """``203.0.113.7``, ``2001:db8::1``, and the forms proxies write with a port (``203.0.113.7:4711``,
    ``[2001:db8::1]:4711``); an IPv4-mapped IPv6 address as its IPv4 address. None for anything else
    (``unknown``, a name, garbage)."""
    if not text or len(text) > 64 or not text.isascii():
        return None
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            address = ipaddress.IPv6Address(text.partition("%")[0])
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address
