"""Standard Webhooks ``v1a`` (ed25519) signatures, for endpoints with ``"signing": "ed25519"``.

What receivers rely on is checked with code that shares nothing with hookline's: PyNaCl (libsodium, not
``cryptography``) and this file's own reading of ``webhook-signature`` (``v1a_verifies``). Deliveries
are real: the worker in-process, a receiver on loopback, both backends (tests/test_delivery.py's
fixtures). hookline's receiver library must accept them with the ``whpk_`` key alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.exceptions import BadSignatureError
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline.api.services import Services
from hookline.signing import generate_signing_key, public_key, signature_headers, signature_schemes
from hookline.store import endpoints as endpoint_rows
from hookline_receiver import NoMatchingSignature, verify
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Received, Receiver, Reply
from tests.test_delivery import delivery_id, post, running, rx, settings_overrides, settled

__all__ = ["rx", "settings_overrides"]  # fixtures of tests/test_delivery.py, used here

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
KEYS = [generate_signing_key(), generate_signing_key()]


# --- an independent verifier ---------------------------------------------------------------------------


def v1a_entries(header: str) -> list[bytes]:
    """The decoded ``v1a`` signatures of a ``webhook-signature`` value, read here, not by hookline."""
    found = []
    for entry in header.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1a":
            found.append(base64.b64decode(value, validate=True))
    return found


def v1a_verifies(public: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether any ``v1a`` signature of the request is ``public``'s over ``"{id}.{timestamp}.{body}"``,
    as libsodium sees it."""
    assert public.startswith("whpk_")
    raw = base64.b64decode(public.removeprefix("whpk_"), validate=True)
    assert len(raw) == 32
    key = nacl.signing.VerifyKey(raw)
    message = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for signature in v1a_entries(headers["webhook-signature"]):
        try:
            key.verify(message, signature)
        except BadSignatureError:
            continue
        return True
    return False


def tampered(headers: Mapping[str, str], body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The request with its body, its timestamp or its id changed (signatures kept)."""
    stamp = str(int(headers["webhook-timestamp"]) + 1)
    return [
        (dict(headers), body + b" "),
        ({**headers, "webhook-timestamp": stamp}, body),
        ({**headers, "webhook-id": headers["webhook-id"] + "x"}, body),
    ]


# --- keys and signing, without a service ------------------------------------------------------------


def test_a_generated_key_is_a_standard_webhooks_key_pair_libsodium_agrees_with() -> None:
    key = generate_signing_key()
    assert key.startswith("whsk_") and key not in KEYS
    raw = base64.b64decode(key.removeprefix("whsk_"), validate=True)
    assert len(raw) == 64  # seed, then public key: libsodium's (and Svix's) secret key layout
    derived = nacl.signing.SigningKey(raw[:32]).verify_key.encode()
    assert raw[32:] == derived
    assert public_key(key) == "whpk_" + base64.b64encode(derived).decode()


EVENT_IDS = st.from_regex(r"[\x21-\x7e]([\x20-\x7e]{0,40}[\x21-\x7e])?", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=2048), event_id=EVENT_IDS, timestamp=st.integers(0, 10**11))
def test_v1a_signatures_verify_with_libsodium_and_nothing_else_changes(
    body: bytes, event_id: str, timestamp: int
) -> None:
    common = {"event_id": event_id, "event_type": "message.received", "timestamp": timestamp, "body": body}
    hmac_only = signature_headers(**common, secrets=[SECRET])
    headers = signature_headers(**common, secrets=[SECRET], signing_keys=KEYS)
    # The HMAC headers are the same; webhook-signature gains one v1a entry per key, after the v1 ones.
    assert {k: v for k, v in headers.items() if k != "webhook-signature"} == {
        k: v for k, v in hmac_only.items() if k != "webhook-signature"
    }
    first, *rest = headers["webhook-signature"].split(" ")
    assert first == hmac_only["webhook-signature"] and len(rest) == 2
    assert all(entry.startswith("v1a,") for entry in rest)
    assert all(len(signature) == 64 for signature in v1a_entries(headers["webhook-signature"]))
    for key in KEYS:
        assert v1a_verifies(public_key(key), headers, body)
        for changed, changed_body in tampered(headers, body):
            assert not v1a_verifies(public_key(key), changed, changed_body)
    assert not v1a_verifies(public_key(generate_signing_key()), headers, body)


def test_a_key_that_cannot_be_used_is_an_error_that_does_not_quote_it() -> None:
    common: dict[str, Any] = {"event_id": "evt_1", "event_type": "t", "timestamp": 1, "body": b"{}"}
    raw = bytearray(base64.b64decode(KEYS[0].removeprefix("whsk_")))
    raw[-1] ^= 1  # the public half no longer the seed's
    broken = "whsk_" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(ValueError, match=r"signing key #2: .* public half") as raised:
        signature_headers(**common, secrets=[SECRET], signing_keys=[KEYS[0], broken])
    assert broken[5:40] not in str(raised.value)
    with pytest.raises(TypeError):
        signature_headers(**common, secrets=[SECRET], signing_keys=KEYS[0])


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=120),
        st.from_regex(r"whsk_[A-Za-z0-9+/=]{0,100}", fullmatch=True),
        st.just(KEYS[0]).map(lambda k: k[:-2]),
    )
)
def test_parsing_a_signing_key_accepts_only_whsk_seed_and_public_key(text: str) -> None:
    try:
        found = public_key(text)
    except ValueError as exc:
        assert len(text) < 12 or text not in str(exc)
        return
    encoded = text.removeprefix("whsk_").rstrip("=")
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    assert text.startswith("whsk_") and len(raw) == 64
    assert found == "whpk_" + base64.b64encode(nacl.signing.SigningKey(raw[:32]).verify_key.encode()).decode()


@given(bit=st.integers(0, 64 * 8 - 1))
def test_any_changed_bit_of_a_key_is_refused(bit: int) -> None:
    raw = bytearray(base64.b64decode(KEYS[0].removeprefix("whsk_")))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ValueError, match="public half"):
        public_key("whsk_" + base64.b64encode(bytes(raw)).decode())


def test_test_sends_report_the_v1a_signatures_apart() -> None:
    headers = signature_headers(
        event_id="evt_1", event_type="t", timestamp=1, body=b"{}", secrets=[SECRET, SECRET], signing_keys=KEYS
    )
    assert signature_schemes(headers) == [
        {"scheme": "standard-webhooks", "header": "webhook-signature", "signatures": 2},
        {"scheme": "standard-webhooks-ed25519", "header": "webhook-signature", "signatures": 2},
        {"scheme": "hmac-sha256-hex", "header": "X-Webhook-Signature", "signatures": 2},
    ]


# --- the API ---------------------------------------------------------------------------------------------


async def ed25519_hook(api: Api, auth: dict[str, str], url: str = "https://example.com/h") -> dict[str, Any]:
    body = {"url": url, "events": ["*"], "signing": "ed25519"}
    created: dict[str, Any] = assert_ok(await api.http.post("/v1/webhooks", json=body, headers=auth), 201)
    return created


async def test_the_public_key_route_is_the_tenants_and_only_for_ed25519_webhooks(api: Api) -> None:
    tenant, auth = await api.tenant()
    created = await ed25519_hook(api, auth)
    assert created["signing"] == "ed25519" and created["public_key"].startswith("whpk_")
    assert created["secret"].startswith("whsec_")  # the HMAC signatures stay
    found = assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/public-key", headers=auth))
    assert found == {"id": created["id"], "public_key": created["public_key"], "previous_public_keys": []}
    as_admin = await api.http.get(
        f"/v1/webhooks/{created['id']}/public-key", params={"tenant_id": tenant}, headers=api.admin
    )
    assert assert_ok(as_admin) == found

    plain = assert_ok(
        await api.http.post("/v1/webhooks", json={"url": "https://example.com/p"}, headers=auth), 201
    )
    assert plain["signing"] == "hmac" and plain["public_key"] is None
    assert_error(
        await api.http.get(f"/v1/webhooks/{plain['id']}/public-key", headers=auth),
        409,
        f"webhook {plain['id']} signs with HMAC only and has no public key: "
        f'PATCH /v1/webhooks/{plain["id"]} with {{"signing": "ed25519"}} to give it one',
    )

    _, other = await api.tenant("Other")
    for ident in (created["id"], plain["id"]):
        assert_error(
            await api.http.get(f"/v1/webhooks/{ident}/public-key", headers=other),
            404,
            f"webhook '{ident}' not found",
        )
    assert_error(await api.http.get("/v1/webhooks/x1/public-key", headers=auth), 404)


async def test_signing_is_turned_on_and_off_by_an_update(api: Api) -> None:
    _, auth = await api.tenant()
    plain = assert_ok(
        await api.http.post("/v1/webhooks", json={"url": "https://example.com/p"}, headers=auth), 201
    )
    path = f"/v1/webhooks/{plain['id']}"
    on = assert_ok(await api.http.patch(path, json={"signing": "ed25519"}, headers=auth))
    assert on["signing"] == "ed25519"
    key = assert_ok(await api.http.get(f"{path}/public-key", headers=auth))["public_key"]
    # Asking again keeps the key pair; other changes keep it too.
    assert_ok(await api.http.patch(path, json={"signing": "ed25519", "description": "d"}, headers=auth))
    assert assert_ok(await api.http.get(f"{path}/public-key", headers=auth))["public_key"] == key
    assert assert_ok(await api.http.get(path, headers=auth))["signing"] == "ed25519"

    off = assert_ok(await api.http.patch(path, json={"signing": "hmac"}, headers=auth))
    assert off["signing"] == "hmac"
    assert_error(await api.http.get(f"{path}/public-key", headers=auth), 409)
    again = assert_ok(await api.http.patch(path, json={"signing": "ed25519"}, headers=auth))
    assert again["signing"] == "ed25519"
    assert assert_ok(await api.http.get(f"{path}/public-key", headers=auth))["public_key"] != key

    assert_error(
        await api.http.patch(path, json={"signing": None}, headers=auth), 400, "'signing' cannot be null"
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    value=st.one_of(
        st.sampled_from(["hmac", "ed25519", "ED25519", "rsa", "", " ed25519", "v1a"]),
        st.text(max_size=10),
        st.none(),
        st.integers(),
        st.booleans(),
        st.lists(st.just("ed25519"), max_size=2),
    )
)
async def test_signing_takes_hmac_or_ed25519_and_refuses_anything_else_with_a_400(
    api: Api, value: Any
) -> None:
    _, auth = await api.tenant()
    response = await api.http.post(
        "/v1/webhooks", json={"url": "https://example.com/h", "signing": value}, headers=auth
    )
    if value in ("hmac", "ed25519") or value is None:
        created = assert_ok(response, 201)
        assert created["signing"] == (value or "hmac")
        assert (created["public_key"] is not None) == (value == "ed25519")
    else:
        assert "signing" in assert_error(response, 400)["error"]


def key_forms(signing_key: str) -> list[str]:
    """A signing key as it could leak: whole, its base64 alone, its seed in base64 or hex."""
    encoded = signing_key.removeprefix("whsk_")
    seed = base64.b64decode(encoded)[:32]
    return [signing_key, encoded, base64.b64encode(seed).decode().rstrip("="), seed.hex()]


async def test_the_signing_key_is_in_no_answer(api: Api, services: Services) -> None:
    tenant, auth = await api.tenant()
    answers = []

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        response = await api.http.request(method, path, headers=kwargs.pop("headers", auth), **kwargs)
        assert response.status_code < 300, response.text
        answers.append(response.text)
        return response.json().get("data")

    created = await call("POST", "/v1/webhooks", json={"url": "https://example.com/h", "signing": "ed25519"})
    path = f"/v1/webhooks/{created['id']}"
    await call("GET", path)
    await call("GET", "/v1/webhooks")
    await call("GET", "/v1/webhooks", params={"tenant_id": tenant}, headers=api.admin)
    await call("PATCH", path, json={"description": "x", "signing": "ed25519"})
    await call("GET", f"{path}/secret")
    await call("POST", f"{path}/secret/rotate")
    await call("GET", f"{path}/public-key")
    await call("POST", "/v1/webhooks/set", json={"webhookUrl": "https://example.com/h"})
    await call("GET", "/v1/openapi.json")
    async with services.store.read() as conn:
        stored = await endpoint_rows.get_endpoint(conn, tenant, created["id"], keyring=services.store.keyring)
    assert stored is not None and stored.signing_key is not None
    keys = [stored.signing_key] + [old["signing_key"] for old in stored.previous_secrets]
    assert len(keys) == 2
    text = "\n".join(answers)
    assert "whsk_" not in text and "signing_key" not in text
    for key in keys:
        for form in key_forms(key):
            assert form not in text


# --- real deliveries ---------------------------------------------------------------------------------------


async def deliver(api: Api, services: Services, rx: Receiver, auth: dict[str, str], path: str) -> Received:
    """One event posted and delivered to ``path``; the request as received."""
    async with running(services):
        await post(api, auth)
        requests = await rx.wait_for(len(rx.to(path)) + 1, path)
    return requests[-1]


async def test_a_v1a_delivery_verifies_with_libsodium_and_the_receiver_library(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    endpoint = await ed25519_hook(api, auth, rx.url("/v1a"))
    public = assert_ok(await api.http.get(f"/v1/webhooks/{endpoint['id']}/public-key", headers=auth))[
        "public_key"
    ]
    async with running(services):
        event_id = await post(api, auth)
        (request,) = await rx.wait_for(1, "/v1a")
        found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
    assert found["status"] == "succeeded"
    headers, body = request.headers, request.body
    v1, v1a = headers["webhook-signature"].split(" ")
    assert v1.startswith("v1,") and v1a.startswith("v1a,")
    assert v1a_verifies(public, headers, body)
    for changed, changed_body in tampered(headers, body):
        assert not v1a_verifies(public, changed, changed_body)
    # The HMAC signatures are still there for receivers that check them.
    StandardWebhook(endpoint["secret"]).verify(body, headers)
    signed = headers["x-webhook-timestamp"].encode() + b"." + body
    seed = hmac.new(endpoint["secret"].encode(), signed, hashlib.sha256)
    assert headers["x-webhook-signature"] == "sha256=" + seed.hexdigest()
    # hookline's receiver library, given the public key alone: only v1a can match.
    verified = verify(body, headers, public)
    assert (verified.scheme, verified.id) == ("v1a", event_id)
    for changed, changed_body in tampered(headers, body):
        with pytest.raises(NoMatchingSignature):
            verify(changed_body, changed, public)
    assert json.loads(body)["id"] == event_id
    assert "whsk_" not in json.dumps(found)


async def test_a_rotation_signs_with_both_keys_for_the_grace_period(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    endpoint = await ed25519_hook(api, auth, rx.url("/rotated"))
    path = f"/v1/webhooks/{endpoint['id']}"
    first = endpoint["public_key"]
    rotated = assert_ok(await api.http.post(f"{path}/secret/rotate", headers=auth))
    second = rotated["public_key"]
    assert second.startswith("whpk_") and second != first
    keys = assert_ok(await api.http.get(f"{path}/public-key", headers=auth))
    assert keys["public_key"] == second
    [previous] = keys["previous_public_keys"]
    assert previous["public_key"] == first
    assert previous["expires_at"] == rotated["previous_secrets_expire_at"][0]

    request = await deliver(api, services, rx, auth, "/rotated")
    entries = request.headers["webhook-signature"].split(" ")
    assert [e.split(",")[0] for e in entries] == ["v1", "v1", "v1a", "v1a"]
    for public in (first, second):
        assert v1a_verifies(public, request.headers, request.body)
        assert verify(request.body, request.headers, [public]).scheme == "v1a"

    # Without a grace period the replaced key stops at once; the first is still in its own.
    third = assert_ok(
        await api.http.post(f"{path}/secret/rotate", json={"grace_period_seconds": 0}, headers=auth)
    )["public_key"]
    keys = assert_ok(await api.http.get(f"{path}/public-key", headers=auth))
    assert [keys["public_key"], *(k["public_key"] for k in keys["previous_public_keys"])] == [third, first]
    request = await deliver(api, services, rx, auth, "/rotated")
    assert v1a_verifies(third, request.headers, request.body)
    assert v1a_verifies(first, request.headers, request.body)
    assert not v1a_verifies(second, request.headers, request.body)
    with pytest.raises(NoMatchingSignature):
        verify(request.body, request.headers, second)

    # Back to HMAC only: no v1a at all, not even from the keys still in their grace period.
    assert_ok(await api.http.patch(path, json={"signing": "hmac"}, headers=auth))
    request = await deliver(api, services, rx, auth, "/rotated")
    assert "v1a," not in request.headers["webhook-signature"]
    assert not v1a_entries(request.headers["webhook-signature"])


async def test_test_sends_and_the_handshake_are_signed_with_v1a_too(
    api: Api, services: Services, rx: Receiver
) -> None:
    """A receiver that checks only v1a must be able to check everything hookline sends it."""
    _, auth = await api.tenant()
    rx.always("/checked", Reply(echo_challenge=True))
    endpoint = await ed25519_hook(api, auth, rx.url("/checked"))
    public = endpoint["public_key"]
    tested = assert_ok(await api.http.post(f"/v1/webhooks/{endpoint['id']}/test", json={}, headers=auth))
    assert tested["succeeded"] is True
    assert {"scheme": "standard-webhooks-ed25519", "header": "webhook-signature", "signatures": 1} in tested[
        "signatures"
    ]
    verified = assert_ok(await api.http.post(f"/v1/webhooks/{endpoint['id']}/verify", headers=auth))
    assert verified["verified"] is True, verified
    test_send, handshake = rx.to("/checked")
    for request in (test_send, handshake):
        assert v1a_verifies(public, request.headers, request.body)
    assert verify(handshake.body, handshake.headers, public).challenge is not None
