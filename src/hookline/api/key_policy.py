"""What an API key may do and where from: the scopes, and the networks of ``allowed_ips``; with the
checks of both as a client gives them when it creates a key. Pure (no I/O): the API's request path,
the key routes and the property tests share these rules.

Scopes, from the broadest:

* ``admin``: the operator's admin key alone (tenants, their keys, custom event types, any tenant's data);
* ``tenant:manage``: everything of its own tenant (webhooks, their secrets, tests and replays, the
  tenant's API keys); implies ``events:write`` and ``read``;
* ``events:write``: post events, and nothing else: what a platform's backend needs;
* ``read``: read its tenant's webhooks (not their secrets), events, deliveries, statistics and the
  event types: what a support tool needs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

TenantScope = Literal["tenant:manage", "events:write", "read"]  # what a tenant's key may hold
ADMIN: Final = "admin"
MANAGE: Final = "tenant:manage"
EVENTS_WRITE: Final = "events:write"
READ: Final = "read"
SCOPES: Final = (ADMIN, MANAGE, EVENTS_WRITE, READ)
TENANT_SCOPES: Final[tuple[TenantScope, ...]] = (MANAGE, EVENTS_WRITE, READ)
# What a key created without ``scopes`` gets: what every key could do before scopes existed.
DEFAULT_SCOPES: Final[tuple[TenantScope, ...]] = (MANAGE,)
_IMPLIES: Final = {
    ADMIN: frozenset(SCOPES),
    MANAGE: frozenset(TENANT_SCOPES),
    EVENTS_WRITE: frozenset({EVENTS_WRITE}),
    READ: frozenset({READ}),
}
MAX_ALLOWED_IPS: Final = 100
_MAPPED_IPV4 = ipaddress.IPv6Network("::ffff:0:0/96")


def effective(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes a key holds, with those they imply (``tenant:manage`` -> also ``events:write``,
    ``read``). Unknown names grant nothing."""
    held: set[str] = set()
    for name in scopes:
        held |= _IMPLIES.get(name, frozenset())
    return frozenset(held)


def parse_scopes(given: Sequence[Any]) -> tuple[str, ...]:
    """A tenant key's scopes as a client gives them: de-duplicated, in the order of ``SCOPES``; or a
    ``ValueError`` naming the first problem."""
    if not given:
        raise ValueError(f"'scopes' is empty: give at least one of {', '.join(TENANT_SCOPES)}")
    for index, name in enumerate(given):
        if name == ADMIN:
            raise ValueError(
                f"scopes[{index}]: 'admin' belongs to the operator's admin key alone; a tenant key can "
                f"have {', '.join(TENANT_SCOPES)}"
            )
        if name not in TENANT_SCOPES:
            shown = repr(name) if isinstance(name, str) else f"of type {type(name).__name__}"
            raise ValueError(
                f"scopes[{index}]: unknown scope {shown[:80]} (a tenant key can have "
                f"{', '.join(TENANT_SCOPES)})"
            )
    return tuple(name for name in TENANT_SCOPES if name in given)


def parse_allowed_ips(given: Sequence[str]) -> tuple[IPNetwork, ...]:
    """The networks a key may be used from, as a client writes them (CIDRs such as ``203.0.113.0/24`` or
    ``2001:db8::/32``; a bare address is its /32 or /128): de-duplicated, in the order given; or a
    ``ValueError`` naming the first entry that is not one, and why."""
    if not given:
        raise ValueError("'allowed_ips' is empty: omit it (or give null) to allow every address")
    if len(given) > MAX_ALLOWED_IPS:
        raise ValueError(f"'allowed_ips' has {len(given)} networks; at most {MAX_ALLOWED_IPS}")
    networks: list[IPNetwork] = []
    for index, text in enumerate(given):
        network = _network(f"allowed_ips[{index}]", text)
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def _network(where: str, text: str) -> IPNetwork:
    shown = repr(text[:64])
    if "%" in text:
        raise ValueError(f"{where}: {shown} has a zone id (%...); give the network without it")
    stripped = text.strip()
    if not stripped.isascii():  # never an address; said plainly, not by ipaddress
        raise ValueError(f"{where}: {shown} is not an IP network{_EXAMPLE}")
    try:
        network = ipaddress.ip_network(stripped, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(stripped, strict=False)
        except ValueError:
            raise ValueError(f"{where}: {shown} is not an IP network{_EXAMPLE}") from None
        raise ValueError(f"{where}: {shown} has host bits set (did you mean '{loose}'?)") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_IPV4):
        raise ValueError(f"{where}: {shown} is an IPv4-mapped IPv6 network; write it as IPv4")
    return network


_EXAMPLE = " (write a CIDR such as 203.0.113.0/24 or 2001:db8::/32, or one address)"


def allows(networks: Sequence[IPNetwork], address: IPAddress | None) -> bool:
    """Whether ``address`` (None: unknown) is in one of ``networks``."""
    return address is not None and any(address in network for network in networks)


def within(networks: Sequence[IPNetwork], bounds: Sequence[IPNetwork]) -> IPNetwork | None:
    """The first of ``networks`` that is not inside one of ``bounds`` (None: all are)."""
    for network in networks:
        if not any(
            network.version == bound.version and network.subnet_of(bound)  # type: ignore[arg-type]
            for bound in bounds
        ):
            return network
    return None
