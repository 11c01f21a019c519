"""The rules of API keys that need no database: scopes and what they imply, ``allowed_ips`` as clients
write them, the client address behind trusted proxies, and the per-process request rate limits.
Property-based where the input is a client's (hookline.api.key_policy, hookline.api.client_address)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hookline.api.client_address import client_address, parse_address
from hookline.api.envelope import ApiError
from hookline.api.key_policy import (
    MAX_ALLOWED_IPS,
    SCOPES,
    TENANT_SCOPES,
    allows,
    effective,
    parse_allowed_ips,
    parse_scopes,
    within,
)
from hookline.api.principal import REQUEST_BURST_SECONDS, Principal
from hookline.api.rate_limits import RequestRateLimiter
from hookline.dispatch.limiter import RateLimit

# --- scopes -----------------------------------------------------------------------------------------------


def test_what_each_scope_implies() -> None:
    assert effective(["admin"]) == frozenset(SCOPES)
    assert effective(["tenant:manage"]) == {"tenant:manage", "events:write", "read"}
    assert effective(["events:write"]) == {"events:write"}
    assert effective(["read"]) == {"read"}
    assert effective(["read", "events:write"]) == {"read", "events:write"}
    assert effective(["nope"]) == frozenset()


@pytest.mark.parametrize(
    ("given_scopes", "error"),
    [
        ([], "'scopes' is empty: give at least one of tenant:manage, events:write, read"),
        (
            ["read", "admin"],
            "scopes[1]: 'admin' belongs to the operator's admin key alone; a tenant key can have "
            "tenant:manage, events:write, read",
        ),
        (
            ["Read"],
            "scopes[0]: unknown scope 'Read' (a tenant key can have tenant:manage, events:write, read)",
        ),
        (
            [7],
            "scopes[0]: unknown scope of type int (a tenant key can have tenant:manage, events:write, read)",
        ),
    ],
)
def test_scopes_a_tenant_key_cannot_have_are_named(given_scopes: list[Any], error: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_scopes(given_scopes)
    assert str(raised.value) == error


@given(st.lists(st.one_of(st.sampled_from([*SCOPES, "", "read ", "events"]), st.text(max_size=20))))
def test_parse_scopes_accepts_exactly_lists_of_tenant_scopes(names: list[str]) -> None:
    if names and all(name in TENANT_SCOPES for name in names):
        parsed = parse_scopes(names)
        assert set(parsed) == set(names) and len(parsed) == len(set(names))
        assert list(parsed) == sorted(parsed, key=SCOPES.index)
    else:
        with pytest.raises(ValueError) as raised:
            parse_scopes(names)
        bad = next((i for i, name in enumerate(names) if name not in TENANT_SCOPES), None)
        assert str(raised.value).startswith("'scopes' is empty" if bad is None else f"scopes[{bad}]: ")


# --- allowed_ips ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("10.0.0.1/8", "allowed_ips[0]: '10.0.0.1/8' has host bits set (did you mean '10.0.0.0/8'?)"),
        (
            "office",
            "allowed_ips[0]: 'office' is not an IP network (write a CIDR such as 203.0.113.0/24 or "
            "2001:db8::/32, or one address)",
        ),
        (
            "10.0.0.0/33",
            "allowed_ips[0]: '10.0.0.0/33' is not an IP network (write a CIDR such as "
            "203.0.113.0/24 or 2001:db8::/32, or one address)",
        ),
        (
            "fe80::/64%eth0",
            "allowed_ips[0]: 'fe80::/64%eth0' has a zone id (%...); give the network without it",
        ),
        (
            "::ffff:10.0.0.0/104",
            "allowed_ips[0]: '::ffff:10.0.0.0/104' is an IPv4-mapped IPv6 network; write it as IPv4",
        ),
    ],
)
def test_networks_that_are_not_cidrs_are_named_with_why(entry: str, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_allowed_ips([entry])
    assert str(raised.value) == error


def test_allowed_ips_normalizes_and_bounds_the_list() -> None:
    assert [str(n) for n in parse_allowed_ips(["203.0.113.7", " 2001:DB8::/32 ", "203.0.113.7/32"])] == [
        "203.0.113.7/32",
        "2001:db8::/32",
    ]
    with pytest.raises(ValueError, match="'allowed_ips' is empty: omit it"):
        parse_allowed_ips([])
    with pytest.raises(ValueError, match=f"at most {MAX_ALLOWED_IPS}"):
        parse_allowed_ips([f"10.0.{i // 256}.{i % 256}" for i in range(MAX_ALLOWED_IPS + 1)])


_NETWORKS = st.one_of(
    st.ip_addresses(v=4).flatmap(
        lambda a: st.integers(0, 32).map(lambda p: ipaddress.ip_network(f"{a}/{p}", strict=False))
    ),
    st.ip_addresses(v=6).flatmap(
        lambda a: st.integers(0, 128).map(lambda p: ipaddress.ip_network(f"{a}/{p}", strict=False))
    ),
)


@given(st.lists(_NETWORKS, min_size=1, max_size=5))
def test_every_network_written_as_its_cidr_is_accepted_as_itself(networks: list[Any]) -> None:
    usable = [
        n for n in networks if not (n.version == 6 and n.subnet_of(ipaddress.ip_network("::ffff:0:0/96")))
    ]
    if not usable:
        return
    parsed = parse_allowed_ips([str(n) for n in usable])
    assert list(parsed) == list(dict.fromkeys(usable))


@given(st.lists(st.text(max_size=50), min_size=1, max_size=4))
@example(["١٢٧.0.0.1"])
@example(["127.0.0.1/0x8"])
def test_any_text_is_either_a_network_or_a_named_error(entries: list[str]) -> None:
    try:
        parsed = parse_allowed_ips(entries)
    except ValueError as exc:
        assert str(exc).startswith("allowed_ips[")
        index = int(str(exc)[len("allowed_ips[") :].partition("]")[0])
        assert repr(entries[index][:64]) in str(exc)
        return
    written = [ipaddress.ip_network(entry.strip()) for entry in entries]
    assert list(parsed) == list(dict.fromkeys(written))


@given(_NETWORKS, st.ip_addresses())
def test_allows_is_membership(network: Any, address: Any) -> None:
    assert allows([network], address) == (address in network)
    assert not allows([network], None)


def test_within_names_the_first_network_outside_the_bounds() -> None:
    bounds = parse_allowed_ips(["10.0.0.0/8", "2001:db8::/32"])
    assert within(parse_allowed_ips(["10.1.0.0/16", "2001:db8:1::/48"]), bounds) is None
    assert str(within(parse_allowed_ips(["10.1.0.0/16", "0.0.0.0/0"]), bounds)) == "0.0.0.0/0"
    assert str(within(parse_allowed_ips(["::/0"]), bounds)) == "::/0"


# --- the client address -----------------------------------------------------------------------------------

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.7", [], "203.0.113.7"),
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # an untrusted peer's header means nothing
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["198.51.100.1, 10.0.0.9"], "198.51.100.1"),  # through two proxies of ours
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the client's own entry is ignored
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # two headers are one list
        ("10.0.0.5", ["10.0.0.7, 10.0.0.9"], "10.0.0.7"),  # all ours: the left-most
        ("10.0.0.5", [], "10.0.0.5"),  # our proxy, without the header
        ("10.0.0.5", ["unknown"], None),  # garbage from our proxy: cannot be told
        ("10.0.0.5", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("10.0.0.5", ["198.51.100.1:4711"], "198.51.100.1"),
        ("::ffff:203.0.113.7", [], "203.0.113.7"),
        (None, ["198.51.100.1"], None),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(
    peer: str | None, forwarded: list[str], client: str | None
) -> None:
    found = client_address(peer, forwarded, PROXIES)
    assert (str(found) if found is not None else None) == client


@given(st.ip_addresses(), st.lists(st.ip_addresses().map(str), max_size=5), st.lists(_NETWORKS, max_size=3))
def test_a_peer_that_is_not_a_trusted_proxy_is_the_client_whatever_it_forwards(
    peer: Any, forwarded: list[str], trusted: list[Any]
) -> None:
    if any(peer in network for network in trusted):
        return
    expected = peer.ipv4_mapped if peer.version == 6 and peer.ipv4_mapped else peer
    assert client_address(str(peer), [", ".join(forwarded)], trusted) == expected


@given(st.text(max_size=70))
def test_parse_address_never_raises(text: str) -> None:
    parsed = parse_address(text)
    if parsed is not None:
        assert parsed.version in (4, 6)


# --- request rate limits (per process) --------------------------------------------------------------------


def _key(key_id: str, tenant: str, rate: float | None = None) -> Principal:
    limit = RateLimit(rate, REQUEST_BURST_SECONDS) if rate else None
    return Principal(tenant_id=tenant, key_id=key_id, scopes=frozenset({"read"}), rate_limit=limit)


def _refused(limiter: RequestRateLimiter, principal: Principal) -> ApiError | None:
    try:
        limiter.admit(principal)
    except ApiError as exc:
        return exc
    return None


def test_a_key_limit_lets_a_seconds_worth_through_then_says_when_to_come_back() -> None:
    now = [0.0]
    limiter = RequestRateLimiter(None, clock=lambda: now[0])
    key = _key("key_a", "acme", 2)
    assert _refused(limiter, key) is None and _refused(limiter, key) is None
    refused = _refused(limiter, key)
    assert refused is not None and refused.code == 429
    assert refused.headers == {"Retry-After": "1"}
    assert refused.error == "this API key's rate limit (2 requests per second) is exceeded; retry after 1s"
    now[0] = 0.49
    assert _refused(limiter, key) is not None  # refused requests cost nothing: still half a second
    now[0] = 0.5
    assert _refused(limiter, key) is None
    assert _refused(limiter, _key("key_b", "acme", 2)) is None  # another key of the tenant: its own


def test_a_slow_limit_says_how_many_seconds_to_wait() -> None:
    now = [0.0]
    limiter = RequestRateLimiter(None, clock=lambda: now[0])
    key = _key("key_a", "acme", 0.1)
    assert _refused(limiter, key) is None
    refused = _refused(limiter, key)
    assert refused is not None and refused.headers == {"Retry-After": "10"}
    now[0] = 9.2
    refused = _refused(limiter, key)
    assert refused is not None and refused.headers == {"Retry-After": "1"}


def test_a_tenant_limit_holds_for_all_its_keys_and_for_no_other_tenant() -> None:
    now = [0.0]
    limiter = RequestRateLimiter(3, clock=lambda: now[0])
    results = [_refused(limiter, _key(f"key_{n}", "acme")) for n in range(5)]
    assert [r is None for r in results] == [True, True, True, False, False]
    refused = results[3]
    assert refused is not None and refused.error == (
        "tenant 'acme''s rate limit (3 requests per second) is exceeded; retry after 1s"
    )
    assert all(_refused(limiter, _key("key_x", "globex")) is None for _ in range(3))


def test_the_admin_key_and_unlimited_tenants_are_never_refused() -> None:
    limiter = RequestRateLimiter(None, clock=lambda: 0.0)
    assert all(_refused(limiter, _key("key_a", "acme")) is None for _ in range(1000))
    operator = Principal(tenant_id=None, key_id="admin", scopes=frozenset(SCOPES))
    limited = RequestRateLimiter(1, clock=lambda: 0.0)
    assert all(_refused(limited, operator) is None for _ in range(1000))


@given(st.floats(0.01, 5000), st.lists(st.floats(0, 0.5), max_size=60))
def test_no_second_lets_more_than_the_rate_plus_its_burst_through(rate: float, steps: list[float]) -> None:
    now = [0.0]
    limiter = RequestRateLimiter(None, clock=lambda: now[0])
    key = _key("key_a", "acme", rate)
    admitted: list[float] = []
    for step in steps:
        now[0] += step
        for _ in range(3):
            if _refused(limiter, key) is None:
                admitted.append(now[0])
    burst = RateLimit(rate, REQUEST_BURST_SECONDS).burst
    for start in admitted:
        in_window = sum(1 for t in admitted if start <= t < start + 1.0)
        assert in_window <= rate * 1.0 + burst + 1e-6
