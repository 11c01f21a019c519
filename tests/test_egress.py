from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from hookline.egress import (
    BlockedAddressError,
    PolicyResolver,
    UrlPolicy,
    UrlRejected,
    assert_connectable,
    check_webhook_url,
    header_problem,
    is_blocked_address,
    make_connector,
    parse_networks,
)

STRICT = UrlPolicy()
HTTPS_ONLY = "URL must be HTTPS (set HOOKLINE_ALLOW_HTTP=true to allow http:// for local development)"
NETWORKS_HINT = "HOOKLINE_ALLOWED_NETWORKS can allow it"
LOOPBACK_HINT = "HOOKLINE_ALLOWED_NETWORKS=127.0.0.0/8 can allow it for local development"
LOOPBACK_OK = UrlPolicy(allow_http=True, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))


def rejection(url: str, policy: UrlPolicy = STRICT) -> str:
    with pytest.raises(UrlRejected) as info:
        check_webhook_url(url, policy)
    assert str(info.value) == info.value.message
    return info.value.message


# --- check_webhook_url ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://example.com:8443/hook?a=1&b=2#fragment",
        "https://EXAMPLE.com/Path",
        "https://api.example.co.uk./hooks",
        "https://bücher.example/",
        "https://[2606:4700::1111]/",
        "https://8.8.8.8/",
    ],
)
def test_accepts_public_https_urls(url: str) -> None:
    assert check_webhook_url(url, STRICT) == url


def test_strips_but_does_not_rewrite() -> None:
    assert (
        check_webhook_url("  https://Example.com/a/../b?q=%41 \n", STRICT)
        == "https://Example.com/a/../b?q=%41"
    )


def test_http_only_when_allowed() -> None:
    assert rejection("http://example.com/hook") == HTTPS_ONLY
    assert (
        check_webhook_url("http://example.com/hook", UrlPolicy(allow_http=True)) == "http://example.com/hook"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/" + "a" * 2029, "URL is longer than 2048 characters"),
        ("", "URL must be an absolute http(s) URL"),
        ("example.com/hook", "URL must be an absolute http(s) URL"),
        ("//example.com/hook", "URL must be an absolute http(s) URL"),
        ("/relative/path", "URL must be an absolute http(s) URL"),
        ("localhost:8080", "URL must be an absolute http(s) URL"),
        ("mailto:ops@example.com", "URL must be an absolute http(s) URL"),
        ("https:///path-only", "URL must be an absolute http(s) URL"),
        ("https://exa mple.com/", "URL must not contain whitespace or control characters"),
        ("https://example.com/\x00", "URL must not contain whitespace or control characters"),
        ("ftp://example.com/file", "URL scheme 'ftp' is not supported"),
        ("file://example.com/etc/passwd", "URL scheme 'file' is not supported"),
        ("gopher://example.com/", "URL scheme 'gopher' is not supported"),
        ("https://user:secret@example.com/", "URL must not contain credentials"),
        ("https://user@example.com/", "URL must not contain credentials"),
        ("https://example.com:443@evil.example/", "URL must not contain credentials"),
        ("https://example.com:0/", "URL port must be between 1 and 65535"),
        ("https://example.com:65536/", "URL port must be between 1 and 65535"),
        ("https://exa<mple.com/", "URL host 'exa<mple.com' is not a valid host name"),
        ("https://a..example.com/", "URL host 'a..example.com' is not a valid host name"),
        ("https://1.2.3.4.5/", "URL host '1.2.3.4.5' is not a valid host name"),
        ("https://999.1.1.1/", "URL host '999.1.1.1' is not a valid host name"),
        ("https://localhost/", f"URL host 'localhost' is not a public address ({LOOPBACK_HINT})"),
        ("https://localhost./", f"URL host 'localhost.' is not a public address ({LOOPBACK_HINT})"),
        ("https://LocalHost:8080/", f"URL host 'localhost' is not a public address ({LOOPBACK_HINT})"),
        ("https://api.localhost/", f"URL host 'api.localhost' is not a public address ({LOOPBACK_HINT})"),
        ("https://localhost.localdomain/", "URL host 'localhost.localdomain' is not a public address"),
        ("https://metadata.google.internal/", "URL host 'metadata.google.internal' is not a public address"),
        ("https://printer.local/", "URL host 'printer.local' is not a public address"),
        ("https://db.svc.cluster.local/", "URL host 'db.svc.cluster.local' is not a public address"),
        ("https://router.home.arpa/", "URL host 'router.home.arpa' is not a public address"),
        ("https://redis/", "URL host 'redis' is not a public address"),
        (
            "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",  # fullwidth, mapped by IDNA
            f"URL host 'localhost' is not a public address ({LOOPBACK_HINT})",
        ),
    ],
)
def test_rejections(url: str, message: str) -> None:
    assert rejection(url) == message


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://127.0.0.1/", "127.0.0.1"),
        ("https://10.0.0.1:8443/x", "10.0.0.1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://0.0.0.0/", "0.0.0.0"),
        ("https://[::1]/", "::1"),
        ("https://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
        ("https://[fd00::1]/", "fd00::1"),
        ("https://[fe80::1%25eth0]/", "fe80::1%25eth0"),
        # legacy IPv4 spellings, read the way inet_aton() reads them
        ("https://2130706433/", "2130706433"),
        ("https://0x7f.1/", "0x7f.1"),
        ("https://0x7f000001/", "0x7f000001"),
        ("https://127.1/", "127.1"),
        ("https://0177.0.0.1/", "0177.0.0.1"),
        ("https://0/", "0"),
        ("https://127.0.0.1./", "127.0.0.1."),
        ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "127.0.0.1"),  # fullwidth, mapped by IDNA
    ],
)
def test_rejects_non_public_ip_literals(url: str, host: str) -> None:
    assert rejection(url) == f"URL host {host!r} is not a public address ({NETWORKS_HINT})"


def test_allowed_networks_exempt_ip_literals_and_localhost() -> None:
    assert check_webhook_url("http://127.0.0.1:8080/hook", LOOPBACK_OK) == "http://127.0.0.1:8080/hook"
    assert check_webhook_url("http://127.1:8080/", LOOPBACK_OK) == "http://127.1:8080/"
    assert check_webhook_url("http://[::ffff:127.0.0.1]/", LOOPBACK_OK) == "http://[::ffff:127.0.0.1]/"
    assert (
        rejection("http://10.0.0.1/", LOOPBACK_OK)
        == f"URL host '10.0.0.1' is not a public address ({NETWORKS_HINT})"
    )
    # Names that mean "this network" are not made public by allowing loopback.
    assert rejection("http://redis:6379/", LOOPBACK_OK) == "URL host 'redis' is not a public address"
    assert rejection("http://localhost.localdomain/", LOOPBACK_OK).startswith(
        "URL host 'localhost.localdomain'"
    )


# --- finding 8 (issue 9): localhost when loopback is allowed; refusals name the setting ---------------


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/hook", "http://LOCALHOST./", "http://api.localhost:3000/x"]
)
@pytest.mark.parametrize("network", ["127.0.0.0/8", "127.0.0.1/32", "::1/128"])
def test_localhost_is_allowed_when_loopback_is(url: str, network: str) -> None:
    policy = UrlPolicy(allow_http=True, allowed_networks=(ipaddress.ip_network(network),))
    assert check_webhook_url(url, policy) == url


def test_localhost_refusal_names_the_setting_that_allows_it() -> None:
    private_only = UrlPolicy(allow_http=True, allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert rejection("http://localhost:8080/", private_only) == (
        f"URL host 'localhost' is not a public address ({LOOPBACK_HINT})"
    )
    assert rejection("http://localhost:8080/") == HTTPS_ONLY


def test_blocked_connection_names_the_setting() -> None:
    assert NETWORKS_HINT in str(BlockedAddressError("example.test", ["10.0.0.5"]))


# --- finding 6 (issue 9): ports as written -----------------------------------------------------------


@pytest.mark.parametrize(
    "port", ["+443", "0443", "00000000000443", "\u0664\u0664\u0663", "443\u00b2", "-1", "", "4_43", "0x1bb"]
)
def test_ports_must_be_plain_digits(port: str) -> None:
    # yarl reads "+443", "0443" and Arabic-Indic digits as 443; other clients refuse them or differ.
    assert (
        rejection(f"https://example.com:{port}/hook")
        == "URL port must be written as plain digits (e.g. :8443)"
    )


@pytest.mark.parametrize("url", ["https://example.com:+443/", "https://[2606:4700::1111]:+443/"])
def test_signed_port_is_refused_with_ipv6_too(url: str) -> None:
    assert rejection(url) == "URL port must be written as plain digits (e.g. :8443)"


@pytest.mark.parametrize("port", ["1", "443", "8443", "65535"])
def test_plain_ports_are_accepted(port: str) -> None:
    url = f"https://example.com:{port}/hook"
    assert check_webhook_url(url, STRICT) == url
    assert (
        check_webhook_url(f"https://[2606:4700::1111]:{port}/", STRICT)
        == f"https://[2606:4700::1111]:{port}/"
    )


# --- finding 6 (issue 9): custom headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "keep-alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Expect",
        "Proxy-Authorization",
        "proxy-connection",
        "Proxy-Anything",
        "Content-Encoding",
        "Transfer-Encoding",
        "Content-Length",
        "Host",
    ],
)
def test_hop_by_hop_and_framing_headers_are_refused(name: str) -> None:
    assert header_problem(name, "x") == (
        f"header '{name}' controls how the request is carried and cannot be set on an endpoint"
    )


@pytest.mark.parametrize("name", ["Authorization", "X-Api-Token", "Accept", "X-Proxy-Id"])
def test_ordinary_headers_are_allowed(name: str) -> None:
    assert header_problem(name, "Bearer abc.def\tghi ~!") is None


SECRET = "Bearer sk_live_0123456789"


@pytest.mark.parametrize("control", [chr(c) for c in [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F]])
def test_control_characters_in_values_are_refused_without_echoing_them(control: str) -> None:
    problem = header_problem("Authorization", SECRET + control)
    assert problem == "invalid value for header 'Authorization' (control characters are not allowed)"
    assert "sk_live" not in problem


@pytest.mark.parametrize("text", ["caf\u00e9", "\u0085", "\u2028", "\ud800", "token\u00a0"])
def test_values_beyond_visible_ascii_are_refused(text: str) -> None:
    assert header_problem("X-Token", text) == (
        "invalid value for header 'X-Token' (only visible ASCII characters, spaces and tabs)"
    )


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=50))
def test_header_values_are_sent_only_if_every_character_is_sendable(text: str) -> None:
    sendable = all(c == "\t" or " " <= c <= "~" for c in text)
    assert (header_problem("X-Any", text) is None) == sendable


# --- is_blocked_address -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "192.0.0.9",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "::",
        "::1",
        "::127.0.0.1",
        "::8.8.8.8",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "2001:0:4136:e378::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0:808:808",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::808:808",
        "2002:7f00:1::1",
        "2002:a00:1::1",
    ],
)
def test_blocked_addresses(address: str) -> None:
    assert is_blocked_address(ipaddress.ip_address(address), STRICT)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses(address: str) -> None:
    assert not is_blocked_address(ipaddress.ip_address(address), STRICT)


def test_allowed_networks_exemption() -> None:
    policy = UrlPolicy(allowed_networks=parse_networks("127.0.0.0/8, 10.20.0.0/16, fd00::/8"))
    for address in ("127.0.0.1", "10.20.30.40", "fd00::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"):
        assert not is_blocked_address(ipaddress.ip_address(address), policy), address
    for address in ("10.21.0.1", "::1", "169.254.169.254", "fe80::1"):
        assert is_blocked_address(ipaddress.ip_address(address), policy), address


# --- parse_networks ---------------------------------------------------------------------------


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" , ") == ()
    assert parse_networks("127.0.0.0/8,, ::1/128 ,10.0.0.5") == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.0.0.5/32"),
    )


@pytest.mark.parametrize("value", ["nope", "10.0.0.0/33", "10.0.0.1/8", "127.0.0.0/8,300.1.1.1"])
def test_parse_networks_errors(value: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid network '[^']+': .+"):
        parse_networks(value)


# --- connect-time checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/", "https://[::1]/", "http://2130706433/", "http://0x7f.1/", "http://10.0.0.5/"],
)
def test_assert_connectable_blocks_ip_literals(url: str) -> None:
    with pytest.raises(BlockedAddressError, match="not a public address"):
        assert_connectable(url, STRICT)


def test_assert_connectable_leaves_names_to_resolver() -> None:
    assert_connectable("https://example.com/", STRICT)
    assert_connectable("http://localhost:8080/", STRICT)
    assert_connectable("https://8.8.8.8/", STRICT)
    assert_connectable("http://127.0.0.1:8080/", LOOPBACK_OK)


class FakeResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_resolver_drops_blocked_addresses() -> None:
    resolver = PolicyResolver(STRICT, FakeResolver("10.0.0.5", "93.184.215.14", "::1", "2606:4700::1111"))
    results = await resolver.resolve("example.test", 443)
    assert [r["host"] for r in results] == ["93.184.215.14", "2606:4700::1111"]


async def test_resolver_raises_when_nothing_is_left() -> None:
    resolver = PolicyResolver(STRICT, FakeResolver("10.0.0.5"))
    with pytest.raises(BlockedAddressError) as info:
        await resolver.resolve("example.test", 443)
    assert str(info.value) == (
        f"refusing to connect to 'example.test' at 10.0.0.5: not a public address ({NETWORKS_HINT})"
    )
    assert info.value.host == "example.test"
    assert info.value.addresses == ("10.0.0.5",)
    assert isinstance(info.value, OSError)


@pytest.fixture
async def loopback_server() -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_real_request_to_localhost_is_blocked(loopback_server: int) -> None:
    async with aiohttp.ClientSession(connector=make_connector(UrlPolicy())) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://localhost:{loopback_server}/")
    assert isinstance(info.value.os_error, BlockedAddressError)
    assert isinstance(info.value.__cause__, BlockedAddressError)
    assert "refusing to connect to 'localhost' at 127.0.0.1" in str(info.value)


async def test_real_request_succeeds_with_exemption(loopback_server: int) -> None:
    async with (
        aiohttp.ClientSession(connector=make_connector(LOOPBACK_OK)) as session,
        session.get(f"http://localhost:{loopback_server}/") as response,
    ):
        assert response.status == 200
        assert await response.text() == "ok"


async def test_ip_literal_needs_assert_connectable(loopback_server: int) -> None:
    url = f"http://127.0.0.1:{loopback_server}/"
    with pytest.raises(BlockedAddressError, match=r"refusing to connect to '127\.0\.0\.1' at 127\.0\.0\.1"):
        assert_connectable(url, UrlPolicy())
    assert_connectable(url, LOOPBACK_OK)
