"""The pyreqwest sender's egress pinning, against a real receiver on loopback; and, for both senders,
custom headers that cannot be sent are refused without their values appearing anywhere.

reqwest resolves names itself; hookline resolves them first (``egress.resolve_allowed``) and pins each
name to the address that passed the policy. These tests replace the system resolution with a fixed
answer, so a name that does not exist anywhere (``*.pinned.test``) can only be reached through the pin.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from hookline.dispatch import sender_reqwest
from hookline.dispatch.sender import Request, SenderKind, hide_values
from hookline.dispatch.sender_reqwest import ReqwestSender
from hookline.dispatch.senders import make_sender
from hookline.egress import BlockedAddressError, UrlPolicy, parse_networks
from hookline.signing import generate_secret
from tests.receivers import Receiver, Reply

LOOPBACK_OK = UrlPolicy(allow_http=True, allowed_networks=parse_networks("127.0.0.0/8"))
STRICT = UrlPolicy(allow_http=True)


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


def request(url: str, timeout: float = 5.0) -> Request:
    return Request(
        url=url,
        event_id="evt_pinned",
        event_type="message.sent",
        body=b'{"ok":true}',
        secrets=[generate_secret()],
        custom_headers={"X-Custom": "secret-value"},
        timeout=timeout,
    )


class FixedResolution:
    """Stands in for the system resolver: every name resolves to ``answer``; counts the lookups."""

    def __init__(self, answer: list[str]) -> None:
        self.answer = answer
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int, policy: UrlPolicy) -> list[str]:
        self.lookups.append(host)
        await asyncio.sleep(0.01)
        allowed = [a for a in self.answer if a.startswith("127.") and policy.allowed_networks]
        if not allowed:
            raise BlockedAddressError(host, self.answer)
        return allowed


async def test_a_name_is_pinned_to_the_address_hookline_resolved(
    rx: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolution = FixedResolution(["127.0.0.1"])
    monkeypatch.setattr(sender_reqwest, "resolve_allowed", resolution)
    sender = ReqwestSender(LOOPBACK_OK)
    await sender.start()
    try:
        url = f"http://hooks.pinned.test:{rx.port}/pinned"
        results = await asyncio.gather(*(sender.send(request(url)) for _ in range(20)))
    finally:
        await sender.close()
    assert [r.status_code for r in results] == [200] * 20, results[0].error
    assert resolution.lookups == ["hooks.pinned.test"]  # one lookup for 20 concurrent requests
    (first, *_) = rx.to("/pinned")
    assert first.headers["host"] == f"hooks.pinned.test:{rx.port}"
    assert results[0].request_headers["X-Custom"] == "[redacted]"
    assert first.headers["x-custom"] == "secret-value"


async def test_the_pin_is_renewed_after_its_ttl(rx: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    resolution = FixedResolution(["127.0.0.1"])
    monkeypatch.setattr(sender_reqwest, "resolve_allowed", resolution)
    sender = ReqwestSender(LOOPBACK_OK, dns_ttl=0.05)
    await sender.start()
    try:
        url = f"http://ttl.pinned.test:{rx.port}/ttl"
        assert (await sender.send(request(url))).status_code == 200
        await asyncio.sleep(0.1)
        resolution.answer = ["10.0.0.7"]  # the name now points somewhere the policy blocks
        refused = await sender.send(request(url))
    finally:
        await sender.close()
    assert resolution.lookups == ["ttl.pinned.test", "ttl.pinned.test"]
    assert refused.status_code is None
    assert "refusing to connect to 'ttl.pinned.test' at 10.0.0.7" in (refused.error or "")
    assert len(rx.to("/ttl")) == 1


async def test_blocked_ip_literals_and_names_are_refused_without_a_request(rx: Receiver) -> None:
    sender = ReqwestSender(STRICT)
    await sender.start()
    try:
        literal = await sender.send(request(rx.url("/blocked")))
        spelled = await sender.send(request(f"http://0x7f.1:{rx.port}/blocked"))  # 127.0.0.1 in hex
        named = await sender.send(request(f"http://localhost:{rx.port}/blocked"))
    finally:
        await sender.close()
    for result in (literal, spelled, named):
        assert result.status_code is None
        assert result.error is not None and "refusing to connect" in result.error, result.error
    assert rx.requests == []


async def test_connection_errors_and_deadlines_are_described(rx: Receiver) -> None:
    rx.always("/slow", Reply(hang=True))
    sender = ReqwestSender(LOOPBACK_OK)
    await sender.start()
    try:
        refused = await sender.send(request("http://127.0.0.1:1/closed"))
        slow = await sender.send(request(rx.url("/slow"), timeout=0.3))
    finally:
        await sender.close()
    assert refused.error is not None and refused.error.startswith("connection failed:"), refused.error
    assert slow.error == "timed out after 0.3 s"
    assert 250 <= slow.duration_ms < 2000


# --- custom header values never reach an error (issue 9, finding 6) ----------------------------------------


@pytest.mark.parametrize("kind", ["pyreqwest", "aiohttp"])
@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Authorization": "Bearer s3cr3t\x01token"}, "custom header 'Authorization' has an invalid value"),
        ({"X-Del": "s3cr3t\x7f"}, "custom header 'X-Del' has an invalid value"),
        ({"X-Split": "s3cr3t\r\nX-Injected: 1"}, "custom header 'X-Split' has an invalid value"),
        ({"Bad Name s3cr3t": "v"}, "a custom header has an invalid name"),
    ],
)
async def test_an_invalid_custom_header_is_refused_without_its_value(
    rx: Receiver, kind: SenderKind, headers: dict[str, str], error: str
) -> None:
    sender = make_sender(kind, LOOPBACK_OK)
    await sender.start()
    try:
        result = await sender.send(dataclasses.replace(request(rx.url("/headers")), custom_headers=headers))
    finally:
        await sender.close()
    assert result.status_code is None and result.error is not None
    assert result.error == f"the request could not be built: {error} (not shown)"
    assert "s3cr3t" not in repr(result)
    assert rx.requests == []


async def test_header_values_quoted_by_a_client_error_are_hidden() -> None:
    value = "Bearer s3cr3t\x01token"
    headers = {"Authorization": value, "X-Short": "ab"}
    for quoted in (value, "Bearer s3cr3ttoken", "Bearer s3cr3t\\x01token"):
        hidden = hide_values(f"ValueError: Invalid header value: {quoted}", headers)
        assert "s3cr3t" not in hidden and hidden.endswith("(not shown)")
    assert hide_values("about ab", headers) == "about ab"  # too short to be a secret, too common to hide
