"""Fixed egress (issue 14; seed 001: receivers allow-list the sender's IPs): every outbound request through
``HOOKLINE_EGRESS_PROXY``, an HTTP CONNECT proxy, with the egress policy kept; ``GET /v1/egress-ips``.

Real parts: a CONNECT proxy on loopback (tests/connect_proxy.py) that records what it is asked for, HTTPS
receivers with certificates of a throwaway CA (tests/certs.py), the real Worker and API on SQLite and
PostgreSQL, and real ``hookline`` processes. What users rely on:

* the proxy is asked for ``CONNECT <checked address>:<port>``, never the host name, and TLS through the
  tunnel is verified for the host name; the receiver sees the proxy as its peer and the URL's ``Host``;
* a blocked destination (a private literal, a name that resolves to one) is refused before the proxy is
  asked anything, and a redirect to one is not followed; the proxy's own loopback address is exempt;
* a proxy that refuses (403, 407, 502) or cannot be reached is a specific attempt error, retried;
* the proxy's credentials appear in no attempt record, answer or log line;
* pyreqwest, which can only ask a proxy for the host name, refuses to start with one.

Where a name must resolve to a public address (none exists on a test machine), the system resolution is
replaced by a table (``Names``) and the proxy routes that address to a loopback receiver.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp.connector
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyreqwest.client import ClientBuilder
from pyreqwest.proxy import ProxyBuilder

from hookline.api.services import Services
from hookline.config import ConfigError, load_settings
from hookline.dispatch import sender_aiohttp
from hookline.dispatch.sender import AttemptResult, Request, Sender
from hookline.dispatch.senders import make_sender
from hookline.egress import (
    BlockedAddressError,
    UrlPolicy,
    is_blocked_address,
    parse_networks,
    resolve_allowed,
)
from hookline.fixed_egress import (
    PYREQWEST_CANNOT_PROXY,
    EgressProxy,
    parse_egress_ips,
    parse_egress_proxy,
    published,
)
from hookline.signing import generate_secret
from tests.certs import CertificateAuthority
from tests.chaos import procs as chaos
from tests.conftest import Api, assert_error, assert_ok
from tests.connect_proxy import ConnectProxy
from tests.receivers import Receiver, Reply
from tests.test_delivery import attempted, delivery_id, hook, post, running, settled

USER = "hookline-egress"
PASSWORD = "pw-Zq8!x~secret"  # distinctive: searched for in everything the tests can see
CREDENTIALS = (USER, PASSWORD)
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PUBLIC = "93.184.215.14"  # a public address; the proxy's route takes it to a loopback receiver
LOOPBACK = UrlPolicy(allow_http=True, allowed_networks=parse_networks("127.0.0.0/8,::1/128"))
PUBLIC_ONLY = UrlPolicy(allow_http=True)  # the production rules (plus http:// for plain receivers)
STRICT = UrlPolicy()
CA = CertificateAuthority()


def proxy_url(proxy: ConnectProxy, credentials: tuple[str, str] | None = CREDENTIALS) -> EgressProxy:
    user, password = credentials or ("", "")
    return EgressProxy("127.0.0.1", proxy.port, user, password)


def request(url: str, timeout: float = 5.0) -> Request:
    return Request(
        url=url,
        event_id="evt_egress",
        event_type="message.sent",
        body=b'{"ok":true}',
        secrets=[generate_secret()],
        custom_headers={},
        timeout=timeout,
    )


@contextlib.asynccontextmanager
async def sending(policy: UrlPolicy, proxy: EgressProxy) -> AsyncIterator[Sender]:
    sender = make_sender("aiohttp", policy, proxy=proxy)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.close()


def shows_no_credentials(*texts: object) -> None:
    for text in texts:
        rendered = text if isinstance(text, str) else json.dumps(text, default=str)
        assert PASSWORD not in rendered and BASIC not in rendered, rendered


def recorded(result: AttemptResult) -> list[object]:
    return [result.error, result.response_body, result.request_headers, repr(result)]


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's default verifying context (made once, when aiohttp is imported) with the test CA as its
    only root: the handshake, the chain and the host-name check are aiohttp's and OpenSSL's own."""
    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", CA.client_context())


class Names:
    """Stands in for the system resolver in ``egress.resolve_allowed`` for the names in ``table`` (other
    names, ``localhost``, really resolve), applying the policy exactly as it does."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def __call__(self, host: str, port: int, policy: UrlPolicy) -> list[str]:
        found = self.table.get(host.rstrip("."))
        if found is None:
            return await resolve_allowed(host, port, policy)
        allowed = [a for a in found if not is_blocked_address(ipaddress.ip_address(a), policy)]
        if not allowed:
            raise BlockedAddressError(host, found)
        return allowed


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Names:
    table = Names({"hooks.example.com": [PUBLIC], "internal.example.com": ["10.0.0.7"]})
    monkeypatch.setattr(sender_aiohttp, "resolve_allowed", table)
    return table


# --- the proxy URL and the published addresses ----------------------------------------------------------

_LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9_-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
_NAMES = (
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join).filter(lambda n: not n.replace(".", "").isdigit())
)
_HOSTS = st.one_of(
    _NAMES.map(lambda n: (n, n.lower())),
    st.ip_addresses(v=4).map(lambda ip: (str(ip), str(ip))),
    st.ip_addresses(v=6).map(lambda ip: (f"[{ip.exploded}]", str(ip))),
)
_SECRET_TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=20)


@given(
    host=_HOSTS,
    port=st.integers(1, 65535),
    user=st.text(
        st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=":"), min_size=1, max_size=20
    ),
    password=_SECRET_TEXT,
)
def test_a_proxy_url_is_read_back_exactly_and_its_password_never_shown(
    host: tuple[str, str], port: int, user: str, password: str
) -> None:
    written, expected_host = host
    secret = "s3cr3t-" + password
    text = f"http://{quote(user, safe='')}:{quote(secret, safe='')}@{written}:{port}"
    proxy = parse_egress_proxy(text)
    assert proxy == EgressProxy(expected_host, port, user, secret)
    assert parse_egress_proxy(f"  {proxy.url}/ ") == EgressProxy(expected_host, port)  # no credentials
    for shown in (repr(proxy), str(proxy), proxy.url):
        assert "s3cr3t-" not in shown and quote("s3cr3t-") not in shown
    assert parse_egress_proxy(proxy.url) is not None and proxy.has_credentials


@given(
    scheme=st.sampled_from(["http", "https", "socks5", "HTTP", "", "http:"]),
    host=st.sampled_from(["proxy.internal", "[::1]", "10.0.0.5", "", "bad host", "-x-", "1.2.3", "[nope]"]),
    port=st.sampled_from([":3128", "", ":0", ":65536", ":+80", ":x", ":03128"]),
    tail=st.sampled_from(["", "/", "/path", "?q", "#f", " ", "\n"]),
    password=_SECRET_TEXT,
)
def test_a_bad_proxy_url_is_refused_without_repeating_its_password(
    scheme: str, host: str, port: str, tail: str, password: str
) -> None:
    secret = "s3cr3t-" + quote(password, safe="")
    text = f"{scheme}://user:{secret}@{host}{port}{tail}"
    try:
        proxy = parse_egress_proxy(text)
    except ValueError as exc:
        assert "s3cr3t-" not in str(exc)
        return
    assert proxy is not None and scheme.lower() == "http" and port not in ("", ":0", ":65536")
    assert proxy.password == "s3cr3t-" + password


def test_a_blank_proxy_setting_means_no_proxy() -> None:
    assert parse_egress_proxy("") is None
    assert parse_egress_proxy("   ") is None


_NETWORKS = st.one_of(
    st.ip_addresses().map(lambda ip: ipaddress.ip_network(ip)),
    st.tuples(st.ip_addresses(v=4), st.integers(8, 32)).map(lambda t: ipaddress.ip_network(t, strict=False)),
    st.tuples(st.ip_addresses(v=6), st.integers(16, 128)).map(
        lambda t: ipaddress.ip_network(t, strict=False)
    ),
)


@given(st.lists(_NETWORKS, max_size=8), st.sampled_from([",", ", ", " ,", ",,"]))
def test_the_published_addresses_are_read_back_as_written(
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network], separator: str
) -> None:
    unique = list(dict.fromkeys(networks))
    shown = published(tuple(unique))
    assert parse_egress_ips(separator.join(shown)) == tuple(unique)
    assert parse_egress_ips(separator.join(str(n) for n in networks)) == tuple(unique)  # "/32" accepted too
    for network, text in zip(unique, shown, strict=True):
        assert ("/" in text) == (network.prefixlen < network.max_prefixlen)  # a single address: bare


@given(st.text(max_size=40))
def test_any_egress_address_list_is_read_or_refused_with_a_value_error(text: str) -> None:
    try:
        networks = parse_egress_ips(text)
    except ValueError as exc:
        assert str(exc).startswith("invalid address or network")
        return
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in networks)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("198.51.100.1/24", "198.51.100.1/24 has host bits set"),
        ("203.0.113.7, example.com", "invalid address or network 'example.com'"),
        ("fe80::1%eth0", "a zone (%...) cannot be published"),
    ],
)
def test_an_egress_address_that_is_not_one_is_refused(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=r"^HOOKLINE_EGRESS_IPS: ") as caught:
        load_settings(egress_ips=text)
    assert error in str(caught.value)


# --- settings ---------------------------------------------------------------------------------------------


def test_a_proxy_makes_aiohttp_the_sender_and_its_credentials_stay_out_of_reprs() -> None:
    settings = load_settings(egress_proxy=f"http://{USER}:{quote(PASSWORD)}@proxy.internal:3128")
    assert settings.egress_proxy == EgressProxy("proxy.internal", 3128, USER, PASSWORD)
    assert settings.sender == "aiohttp"
    assert load_settings().sender == "pyreqwest" and load_settings().egress_proxy is None
    assert load_settings(egress_proxy=" ").egress_proxy is None
    shows_no_credentials(repr(settings), str(settings), repr(settings.egress_proxy))


def test_pyreqwest_with_a_proxy_stops_the_process_at_start() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(egress_proxy="http://proxy.internal:3128", sender="pyreqwest")
    assert PYREQWEST_CANNOT_PROXY in str(caught.value)
    with pytest.raises(ValueError, match="HOOKLINE_EGRESS_PROXY needs HOOKLINE_SENDER=aiohttp"):
        make_sender("pyreqwest", LOOPBACK, proxy=EgressProxy("127.0.0.1", 3128))


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (f"https://{USER}:{PASSWORD}@proxy.internal:3128", "must be an http:// proxy URL"),
        (f"socks5://{USER}:{PASSWORD}@proxy.internal:1080", "scheme 'socks5' is not supported"),
        (f"http://{USER}:{PASSWORD}@proxy.internal", "must name the proxy's port"),
        (f"http://{USER}:{PASSWORD}@proxy.internal:3128/x", "must not have a path, query or fragment"),
        (f"http://{USER}:{PASSWORD}@proxy..internal:3128", "the proxy host is not a valid host name"),
        (f"http://:{PASSWORD}@proxy.internal:3128", "has a password but no user name"),
        (f"http://{USER}:{PASSWORD}@proxy.internal:99999", "the proxy port must be a number from 1 to 65535"),
    ],
)
def test_a_bad_proxy_setting_is_refused_without_its_password(url: str, error: str) -> None:
    with pytest.raises(ConfigError, match=r"^HOOKLINE_EGRESS_PROXY: ") as caught:
        load_settings(egress_proxy=url)
    assert error in str(caught.value)
    shows_no_credentials(str(caught.value), repr(caught.value))


# --- the sender through the proxy -----------------------------------------------------------------------


@pytest.mark.usefixtures("trust_test_ca")
async def test_https_goes_through_a_tunnel_to_the_checked_address_verified_for_the_name(names: Names) -> None:
    # The production rules: nothing on loopback may be reached, but the proxy (the operator's) is.
    async with (
        Receiver(ssl_context=CA.server_context("hooks.example.com")) as rx,
        ConnectProxy(credentials=CREDENTIALS, route=("127.0.0.1", rx.port)) as proxy,
        sending(STRICT, proxy_url(proxy)) as sender,
    ):
        results = [await sender.send(request("https://hooks.example.com/hook")) for _ in range(3)]
    assert [r.status_code for r in results] == [200] * 3, results[0].error
    assert proxy.targets() == [f"{PUBLIC}:443"]  # the address, never the name; one tunnel, kept alive
    assert proxy.asked[0].headers["proxy-authorization"] == f"Basic {BASIC}"
    received = rx.to("/hook")
    assert len(received) == 3
    for got in received:
        assert got.headers["host"] == "hooks.example.com"  # the URL's own Host, through the tunnel
        assert got.peer is not None and got.peer[1] in proxy.upstream_ports  # it came from the proxy
        assert "proxy-authorization" not in got.headers
    for result in results:
        shows_no_credentials(*recorded(result))


@pytest.mark.usefixtures("trust_test_ca")
@pytest.mark.parametrize("certified", [PUBLIC, "other.example.net"])
async def test_the_certificate_is_checked_for_the_host_name_not_the_address(
    names: Names, certified: str
) -> None:
    async with (
        Receiver(ssl_context=CA.server_context(certified)) as rx,
        ConnectProxy(route=("127.0.0.1", rx.port)) as proxy,
        sending(STRICT, proxy_url(proxy, None)) as sender,
    ):
        result = await sender.send(request("https://hooks.example.com/hook"))
    assert result.status_code is None and result.failure == "connection"
    assert result.error is not None and result.error.startswith("TLS certificate error"), result.error
    assert "hooks.example.com" in result.error
    assert proxy.targets() == [f"{PUBLIC}:443"]
    assert rx.requests == []


@pytest.mark.usefixtures("trust_test_ca")
async def test_a_name_on_loopback_is_reached_by_address_and_verified_by_name() -> None:
    async with (
        Receiver(ssl_context=CA.server_context("localhost")) as rx,
        ConnectProxy() as proxy,
        sending(LOOPBACK, proxy_url(proxy, None)) as sender,
    ):
        result = await sender.send(request(f"https://localhost:{rx.port}/local"))
    assert result.status_code == 200, result.error
    assert proxy.targets() == [f"127.0.0.1:{rx.port}"]  # IPv4 first, when a name has both
    (got,) = rx.to("/local")
    assert got.headers["host"] == f"localhost:{rx.port}"


async def test_plain_http_goes_to_the_proxy_as_an_absolute_url_with_the_address() -> None:
    async with (
        Receiver() as rx,
        ConnectProxy(credentials=CREDENTIALS) as proxy,
        sending(LOOPBACK, proxy_url(proxy)) as sender,
    ):
        result = await sender.send(request(f"http://localhost:{rx.port}/plain?x=1"))
    assert result.status_code == 200, result.error
    (asked,) = proxy.asked
    assert (asked.method, asked.target) == ("POST", f"http://127.0.0.1:{rx.port}/plain?x=1")
    (got,) = rx.to("/plain")
    assert got.headers["host"] == f"localhost:{rx.port}"
    assert got.peer is not None and got.peer[1] in proxy.upstream_ports
    shows_no_credentials(*recorded(result))


async def test_blocked_destinations_are_refused_before_the_proxy_is_asked(names: Names) -> None:
    async with ConnectProxy() as proxy, sending(PUBLIC_ONLY, proxy_url(proxy)) as sender:
        urls = [
            f"http://127.0.0.1:{proxy.port}/",  # even the proxy's own address, as a destination
            f"http://0x7f.1:{proxy.port}/",  # 127.0.0.1, spelled in hex
            f"http://localhost:{proxy.port}/",  # a real name that resolves to loopback
            "http://10.0.0.1/",
            "http://[::ffff:10.0.0.1]/",
            "https://[fd00::1]/",
            "https://internal.example.com/",  # a name that resolves to a private address
        ]
        results = [await sender.send(request(url)) for url in urls]
    for url, result in zip(urls, results, strict=True):
        assert result.status_code is None and result.failure == "blocked", (url, result)
        assert result.error is not None and result.error.startswith("refusing to connect to"), result.error
    assert "internal.example.com" in (results[-1].error or "") and "10.0.0.7" in (results[-1].error or "")
    assert proxy.connections == 0 and proxy.asked == []


async def test_the_proxys_name_is_exempt_only_as_the_proxy(names: Names) -> None:
    async with (
        Receiver() as rx,
        ConnectProxy(route=("127.0.0.1", rx.port)) as proxy,
        sending(PUBLIC_ONLY, EgressProxy("localhost", proxy.port)) as sender,
    ):
        through = await sender.send(request("http://hooks.example.com/named-proxy"))
        blocked = await sender.send(request(f"http://localhost:{proxy.port}/named-proxy"))
    assert through.status_code == 200, through.error  # "localhost" resolved, for the proxy
    assert blocked.failure == "blocked"  # the same name as a destination
    assert proxy.targets() == [f"http://{PUBLIC}/named-proxy"]
    assert len(rx.to("/named-proxy")) == 1


@pytest.mark.usefixtures("trust_test_ca")
async def test_a_redirect_to_a_blocked_address_is_not_followed(names: Names) -> None:
    async with Receiver(ssl_context=CA.server_context("hooks.example.com")) as rx:
        rx.always("/moved", Reply(redirect="http://10.0.0.1/admin"))
        async with (
            ConnectProxy(route=("127.0.0.1", rx.port)) as proxy,
            sending(STRICT, proxy_url(proxy)) as sender,
        ):
            result = await sender.send(request("https://hooks.example.com/moved"))
    assert result.status_code == 302 and result.error == "redirect (302) not followed"
    assert proxy.targets() == [f"{PUBLIC}:443"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (403, f"the egress proxy refused the tunnel to {PUBLIC}:443: 403 Forbidden"),
        (502, f"the egress proxy refused the tunnel to {PUBLIC}:443: 502 Bad Gateway"),
    ],
)
async def test_a_proxy_that_refuses_the_tunnel_is_a_connection_failure(
    names: Names, answer: int, error: str
) -> None:
    async with ConnectProxy(answer=answer) as proxy, sending(STRICT, proxy_url(proxy)) as sender:
        result = await sender.send(request("https://hooks.example.com/hook"))
    assert (result.status_code, result.error, result.failure) == (None, error, "connection")
    assert proxy.targets() == [f"{PUBLIC}:443"]
    shows_no_credentials(*recorded(result))


async def test_wrong_proxy_credentials_are_a_407_that_names_the_setting(names: Names) -> None:
    async with (
        ConnectProxy(credentials=(USER, "the-right-one")) as proxy,
        sending(STRICT, proxy_url(proxy)) as sender,
    ):
        result = await sender.send(request("https://hooks.example.com/hook"))
    assert result.error == (
        f"the egress proxy refused the tunnel to {PUBLIC}:443: 407 Proxy Authentication Required "
        "(check the credentials in HOOKLINE_EGRESS_PROXY)"
    )
    assert result.failure == "connection"
    shows_no_credentials(*recorded(result))


async def test_an_unreachable_proxy_is_a_connection_failure_that_hides_its_address(names: Names) -> None:
    closed = chaos.free_port()
    async with sending(STRICT, EgressProxy("127.0.0.1", closed, USER, PASSWORD)) as sender:
        refused = await sender.send(request("https://hooks.example.com/hook"))
    async with sending(STRICT, EgressProxy("proxy.invalid", 3128)) as sender:
        unresolved = await sender.send(request("https://hooks.example.com/hook"))
    assert (refused.status_code, refused.failure) == (None, "connection")
    assert refused.error == "the egress proxy could not be reached (Connection refused)"
    assert unresolved.error == "the egress proxy could not be reached (its host name did not resolve)"
    assert unresolved.failure == "connection"
    shows_no_credentials(*recorded(refused))


async def test_a_destination_name_that_does_not_resolve_never_reaches_the_proxy() -> None:
    async with ConnectProxy() as proxy, sending(STRICT, proxy_url(proxy)) as sender:
        result = await sender.send(request("https://hooks.invalid/hook"))  # RFC 6761: never resolves
    assert (result.status_code, result.failure) == (None, "connection")
    assert result.error is not None
    assert result.error.startswith("connection failed: could not resolve host"), result.error
    assert proxy.connections == 0


async def test_reqwest_would_ask_the_proxy_for_the_host_name() -> None:
    """Why pyreqwest refuses a proxy: pinned to the checked address (as ReqwestSender pins), reqwest still
    asks the proxy to CONNECT to the name, which the proxy resolves as it likes. (If this ever fails,
    pyreqwest has learned to tunnel to an address and the refusal can be lifted.)"""
    async with ConnectProxy(answer=403) as proxy:
        client = (
            ClientBuilder()
            .resolve("hooks.example.com", "127.0.0.1", 443)
            .proxy(ProxyBuilder.all(proxy.url))
            .build()
        )
        try:
            with contextlib.suppress(Exception):
                await client.post("https://hooks.example.com/hook").body_bytes(b"{}").build().send()
        finally:
            await client.close()
    assert proxy.targets() == ["hooks.example.com:443"]


# --- the worker, test sends and handshakes through the proxy (both backends) ----------------------------


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    async with ConnectProxy(credentials=CREDENTIALS) as running_proxy:
        yield running_proxy


@pytest.fixture
def settings_overrides(proxy: ConnectProxy) -> dict[str, Any]:
    return {
        "allow_http": True,
        "allowed_networks": "127.0.0.0/8,::1/128",
        "retry_schedule": "200ms,200ms,200ms",
        "retry_jitter": 0,
        "poll_interval": "100ms",
        "delivery_timeout": "2s",
        "lease": "5s",
        "drain_timeout": "2s",
        "egress_proxy": f"http://{USER}:{quote(PASSWORD)}@127.0.0.1:{proxy.port}",
        "egress_ips": "203.0.113.7, 198.51.100.0/28, 2001:db8:1::/48",
    }


@pytest.fixture
async def tls_rx() -> AsyncIterator[Receiver]:
    async with Receiver(ssl_context=CA.server_context("localhost")) as receiver:
        yield receiver


@pytest.mark.usefixtures("trust_test_ca")
async def test_deliveries_test_sends_and_handshakes_go_through_the_proxy(
    api: Api, services: Services, proxy: ConnectProxy, tls_rx: Receiver
) -> None:
    assert services.settings.sender == "aiohttp"
    tls_rx.always("/hook", Reply(200, echo_challenge=True))
    _, auth = await api.tenant()
    url = f"https://localhost:{tls_rx.port}/hook"
    endpoint = await hook(api, auth, url, verify=True)  # the handshake, made by the API
    assert endpoint["verification"]["status"] == "verified"
    tested = assert_ok(await api.http.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth))
    assert tested["succeeded"] is True, tested
    async with running(services):
        event_id = await post(api, auth)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
    assert found["status"] == "succeeded", found
    kinds = [json.loads(r.body).get("type") or json.loads(r.body)["event"] for r in tls_rx.to("/hook")]
    assert kinds == ["verification", "webhook.test", "message.received"]
    assert all(r.peer is not None and r.peer[1] in proxy.upstream_ports for r in tls_rx.requests)
    assert set(proxy.targets()) == {f"127.0.0.1:{tls_rx.port}"}
    assert all(a.method == "CONNECT" for a in proxy.asked)
    shows_no_credentials(found, tested, endpoint)


async def test_a_refusing_proxy_is_recorded_on_each_attempt_and_retried(
    api: Api, services: Services, proxy: ConnectProxy
) -> None:
    proxy.answer = 502
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, "https://localhost:9/hook")
    async with running(services):
        event_id = await post(api, auth)
        ident = await delivery_id(api, auth, event_id, endpoint["id"])
        found = await attempted(api, auth, ident, count=2)
    errors = {attempt["error"] for attempt in found["attempt_log"]}
    assert errors == {"the egress proxy refused the tunnel to 127.0.0.1:9: 502 Bad Gateway"}
    assert all(attempt["status_code"] is None for attempt in found["attempt_log"])
    assert (
        found["status"] in ("pending", "failed") and found["attempts"] >= 2
    )  # retried, not given up at once
    shows_no_credentials(found)


async def test_an_unreachable_proxy_is_recorded_and_retried(api: Api, services: Services) -> None:
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, "http://127.0.0.1:9/hook")
    nowhere = EgressProxy("127.0.0.1", chaos.free_port(), USER, PASSWORD)
    async with running(services, egress_proxy=nowhere):
        ident = await delivery_id(api, auth, await post(api, auth), endpoint["id"])
        found = await attempted(api, auth, ident, count=2)
    assert {a["error"] for a in found["attempt_log"]} == {
        "the egress proxy could not be reached (Connection refused)"
    }
    shows_no_credentials(found)


async def test_the_published_egress_addresses_are_listed_for_any_key(api: Api) -> None:
    _, auth = await api.tenant()
    expected = {"addresses": ["203.0.113.7", "198.51.100.0/28", "2001:db8:1::/48"]}
    assert assert_ok(await api.http.get("/v1/egress-ips", headers=auth)) == expected
    assert assert_ok(await api.http.get("/v1/egress-ips", headers=api.admin)) == expected
    assert_error(await api.http.get("/v1/egress-ips"), 401)
    assert_error(await api.http.get("/v1/egress-ips", headers=api.auth("hk_nope")), 401)


# --- real processes -------------------------------------------------------------------------------------


@pytest.fixture
def ca_file(tmp_path: Path) -> Iterator[Path]:
    yield CA.write(tmp_path)


async def test_hookline_serve_delivers_through_the_proxy_and_logs_no_credentials(
    procs: chaos.Processes, ca_file: Path
) -> None:
    async with (
        Receiver(ssl_context=CA.server_context("localhost")) as rx,
        ConnectProxy(credentials=CREDENTIALS) as proxy,
    ):
        env = chaos.base_env(
            HOOKLINE_EGRESS_PROXY=f"http://{USER}:{quote(PASSWORD)}@127.0.0.1:{proxy.port}",
            HOOKLINE_EGRESS_IPS="203.0.113.7",
            HOOKLINE_LOG_LEVEL="debug",
            SSL_CERT_FILE=str(ca_file),  # OpenSSL's own variable: how an operator trusts a private CA
        )
        # Started in a thread: the receiver and the proxy run on this loop meanwhile.
        serve, base_url = await asyncio.to_thread(chaos.start_api, procs, "serve", env, "serve")
        admin = {"Authorization": f"Bearer {chaos.ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=base_url, headers=admin, timeout=30) as http:
            ips = chaos.ok(await http.get("/v1/egress-ips"))
            assert ips == {"addresses": ["203.0.113.7"]}
            chaos.ok(await http.post("/v1/tenants", json={"name": "Acme", "id": "acme"}), 201)
            url = f"https://localhost:{rx.port}/hook"
            hook_body = {"url": url, "events": ["*"], "tenant_id": "acme"}
            chaos.ok(await http.post("/v1/webhooks", json=hook_body), 201)
            chaos.ok(await http.post("/v1/events", json={**chaos.event_body(1), "tenant_id": "acme"}), 202)
            (got,) = await rx.wait_for(1, "/hook", timeout=30)
    assert got.peer is not None and got.peer[1] in proxy.upstream_ports
    assert proxy.targets() == [f"127.0.0.1:{rx.port}"]
    serve.signal(signal.SIGTERM)
    await asyncio.to_thread(serve.popen.wait, 30)
    log = serve.log.read_text()
    assert "deliveries go through the egress proxy" in log and f"127.0.0.1:{proxy.port}" in log
    shows_no_credentials(log)


def test_a_worker_with_pyreqwest_and_a_proxy_refuses_to_start(procs: chaos.Processes) -> None:
    env = chaos.base_env(
        HOOKLINE_SENDER="pyreqwest",
        HOOKLINE_EGRESS_PROXY=f"http://{USER}:{quote(PASSWORD)}@127.0.0.1:3128",
        HOOKLINE_DATABASE_URL=f"sqlite:///{procs.directory}/never.db",
    )
    worker = procs.hookline("worker", "worker", env=env)
    assert worker.popen.wait(60) == 2
    log = worker.log.read_text()
    assert PYREQWEST_CANNOT_PROXY in log
    shows_no_credentials(log)
