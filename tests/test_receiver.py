"""hookline_receiver.verify accepts what hookline and the public Standard Webhooks libraries sign, and
rejects everything else with the specific error."""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import assume, given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

import hookline.receiver
import hookline_receiver
from hookline.signing import SignatureStyle, generate_secret, signature_headers, signing_key
from hookline.store.events import delivered_body
from hookline_receiver import (
    MalformedHeader,
    MalformedPayload,
    MissingHeader,
    NoMatchingSignature,
    TimestampExpired,
    Verifier,
    WebhookVerificationError,
    verify,
)

EVENT_ID = "evt_01JRECEIVER"
EVENT_TYPE = "message.received"
DATA = {"text": "h\u00e9llo", "n": 1}
BODY = delivered_body(EVENT_ID, EVENT_TYPE, "2026-01-01T00:00:00.000Z", DATA)
NOW = 1_700_000_000


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def hookline_headers(
    secrets: list[str],
    *,
    body: bytes = BODY,
    timestamp: int = NOW,
    style: SignatureStyle | None = None,
    event_id: str = EVENT_ID,
    event_type: str = EVENT_TYPE,
) -> dict[str, str]:
    """What hookline's worker sends."""
    return signature_headers(
        event_id=event_id,
        event_type=event_type,
        timestamp=timestamp,
        body=body,
        secrets=secrets,
        style=style or SignatureStyle(),
    )


def only(headers: dict[str, str], scheme: str) -> dict[str, str]:
    """The headers of one scheme: Standard Webhooks' or the seed style's."""
    return {k: v for k, v in headers.items() if k.startswith("webhook-") == (scheme == "standard")}


# --- hookline's own deliveries ---------------------------------------------------------------------


def test_verifies_a_hookline_delivery() -> None:
    secret = generate_secret()
    event = verify(BODY, hookline_headers([secret]), secret, now=NOW)
    assert (event.id, event.type, event.data, event.timestamp) == (EVENT_ID, EVENT_TYPE, DATA, NOW)
    assert event.scheme == "v1"  # both schemes are sent; Standard Webhooks is preferred
    assert event.payload == json.loads(BODY) and event.body == BODY and event.challenge is None
    assert hookline.receiver.verify is verify  # the server's name for the same thing


@pytest.mark.parametrize(
    "secret", [pytest.param(generate_secret(), id="random-whsec"), "plain-shared-secret", "s\u00e9cret"]
)
@pytest.mark.parametrize("scheme", ["standard", "seed"])
def test_each_scheme_alone_verifies(secret: str, scheme: str) -> None:
    headers = only(hookline_headers([secret]), scheme)
    event = verify(BODY, headers, secret, now=NOW)  # detected from the headers
    assert event.scheme == ("v1" if scheme == "standard" else "seed")
    assert (event.id, event.type, event.data) == (EVENT_ID, EVENT_TYPE, DATA)
    forced = verify(BODY, hookline_headers([secret]), [secret], scheme=scheme, now=NOW)  # type: ignore[arg-type]
    assert forced.scheme == event.scheme


@pytest.mark.parametrize(
    "style",
    [
        SignatureStyle(header_prefix="X-Awal-Webhook"),
        SignatureStyle(header_prefix="X-Awal-Webhook", hex_form="hex"),
        SignatureStyle(hex_form="hex"),
    ],
)
def test_seed_style_with_any_prefix_and_either_form(style: SignatureStyle) -> None:
    secret = generate_secret()
    headers = only(hookline_headers([secret], style=style), "seed")
    event = verify(BODY, headers, secret, prefix=style.header_prefix, now=NOW)
    assert (event.scheme, event.id, event.type) == ("seed", EVENT_ID, EVENT_TYPE)
    # Insisting on the other form, or reading another prefix, finds nothing to match.
    other = "hex" if style.hex_form == "sha256=" else "sha256="
    with pytest.raises(NoMatchingSignature, match="no well-formed"):
        verify(BODY, headers, secret, prefix=style.header_prefix, hex_form=other, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(MissingHeader, match=r"'webhook-signature'.*'X-Other-Signature'"):
        verify(BODY, headers, secret, prefix="X-Other", now=NOW)


def test_seed_id_comes_from_the_signed_body() -> None:
    # The seed style signs only "{timestamp}.{body}": a replay with another X-Webhook-Id keeps its id.
    secret = generate_secret()
    headers = only(hookline_headers([secret]), "seed") | {"X-Webhook-Id": "evt_other"}
    assert verify(BODY, headers, secret, now=NOW).id == EVENT_ID
    body = b'{"n": 1}'  # no id in the body: the header is all there is
    headers = only(hookline_headers([secret], body=body), "seed")
    event = verify(body, headers, secret, now=NOW)
    assert (event.id, event.type, event.data) == (EVENT_ID, EVENT_TYPE, {"n": 1})


def test_the_handshake_challenge_is_exposed() -> None:
    secret = generate_secret()
    body = b'{"type":"verification","challenge":"c-123"}'
    headers = hookline_headers([secret], body=body, event_id="verify_1", event_type="verification")
    event = verify(body, headers, secret, now=NOW)
    assert (event.challenge, event.type, event.id) == ("c-123", "verification", "verify_1")
    assert verify(BODY, hookline_headers([secret]), secret, now=NOW).challenge is None


def test_headers_in_any_case_and_shape() -> None:
    secret = generate_secret()
    headers = hookline_headers([secret])
    for shaped in (
        {k.upper(): v for k, v in headers.items()},
        list(headers.items()),  # (name, value) pairs, as ASGI servers hand them over
    ):
        assert verify(BODY, shaped, secret, now=NOW).id == EVENT_ID


# --- other Standard Webhooks senders ---------------------------------------------------------------

SIGNERS = {
    "standardwebhooks": lambda key, msg_id, at, body: StandardWebhook(key).sign(msg_id, at, body),
    "svix": lambda key, msg_id, at, body: SvixWebhook(key).sign(msg_id, at, body),
}


def library_headers(
    library: str, key: str | bytes, *, timestamp: int = NOW, prefix: str = "webhook"
) -> dict[str, str]:
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    signature = SIGNERS[library](key, EVENT_ID, at, BODY.decode())
    return {f"{prefix}-id": EVENT_ID, f"{prefix}-timestamp": str(timestamp), f"{prefix}-signature": signature}


@pytest.mark.parametrize("library", list(SIGNERS))
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(generate_secret(), id="random-whsec"),
        whsec(bytes(range(64))),
        whsec(b"\xfb\xff" * 20),
        whsec(bytes(range(25))).rstrip("="),
    ],
)
def test_verifies_the_public_libraries_signatures(library: str, secret: str) -> None:
    event = verify(BODY, library_headers(library, secret), secret, now=NOW)
    assert (event.scheme, event.id, event.type, event.data) == ("v1", EVENT_ID, EVENT_TYPE, DATA)
    with pytest.raises(NoMatchingSignature):
        verify(BODY, library_headers(library, generate_secret()), secret, now=NOW)


@pytest.mark.parametrize("library", list(SIGNERS))
def test_raw_key_bytes_and_plain_secrets(library: str) -> None:
    # The libraries take bytes as the raw key; hookline keys a plain secret by its UTF-8 bytes.
    headers = library_headers(library, b"plain-shared-secret")
    assert verify(BODY, headers, b"plain-shared-secret", now=NOW).scheme == "v1"
    assert verify(BODY, headers, "plain-shared-secret", now=NOW).scheme == "v1"
    assert signing_key("plain-shared-secret") == b"plain-shared-secret"


def test_svix_headers() -> None:
    secret = generate_secret()
    headers = library_headers("svix", secret, prefix="svix")
    assert verify(BODY, headers, secret, now=NOW).id == EVENT_ID
    del headers["svix-timestamp"]
    with pytest.raises(MissingHeader, match=r"^missing header 'svix-timestamp'$"):
        verify(BODY, headers, secret, now=NOW)


@pytest.mark.parametrize("library", list(SIGNERS))
def test_rotation(library: str) -> None:
    old, new, unrelated = generate_secret(), generate_secret(), generate_secret()
    signed_by_both = hookline_headers([old, new])
    from_library = library_headers(library, old)
    from_library["webhook-signature"] += " " + library_headers(library, new)["webhook-signature"]
    for headers in (signed_by_both, from_library, only(signed_by_both, "seed")):
        for secrets in ([old], [new], [unrelated, new], (unrelated, old)):
            verify(BODY, headers, secrets, now=NOW)
        with pytest.raises(NoMatchingSignature, match=r"^no signature matched$"):
            verify(BODY, headers, [unrelated, generate_secret()], now=NOW)


# --- rejections ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["standard", "seed"])
def test_rejects_tampering_and_wrong_secrets(scheme: str) -> None:
    secret = generate_secret()
    headers = only(hookline_headers([secret]), scheme)
    header = "webhook-signature" if scheme == "standard" else "X-Webhook-Signature"
    for body, secrets in (
        (BODY.replace(b"1", b"2"), secret),
        (BODY + b" ", secret),
        (BODY, generate_secret()),
    ):
        with pytest.raises(NoMatchingSignature, match=r"^no signature matched$") as caught:
            verify(body, headers, secrets, now=NOW)
        assert caught.value.header == header and caught.value.status_code == 401
    forged = {k: str(NOW + 1) if "imestamp" in k else v for k, v in headers.items()}
    with pytest.raises(NoMatchingSignature):
        verify(BODY, forged, secret, now=NOW)


@pytest.mark.parametrize("scheme", ["standard", "seed"])
def test_rejects_stale_and_future_timestamps(scheme: str) -> None:
    secret = generate_secret()
    headers = only(hookline_headers([secret]), scheme)
    header = "webhook-timestamp" if scheme == "standard" else "X-Webhook-Timestamp"
    verify(BODY, headers, secret, now=NOW + 300)
    verify(BODY, headers, secret, now=NOW - 300)
    for now, in_future in ((NOW + 301, False), (NOW - 301, True)):
        with pytest.raises(TimestampExpired, match=r"^timestamp outside the tolerance of 300 s$") as caught:
            verify(BODY, headers, secret, now=now)
        assert (caught.value.header, caught.value.in_future, caught.value.timestamp) == (
            header,
            in_future,
            NOW,
        )
    with pytest.raises(TimestampExpired, match="tolerance of 10 s"):
        verify(BODY, headers, secret, 10, now=NOW + 11)
    with pytest.raises(TimestampExpired, match=r"tolerance of 2.5 s"):
        verify(BODY, headers, secret, tolerance=2.5, now=NOW + 3)
    # Without `now`, the clock decides.
    fresh = only(hookline_headers([secret], timestamp=int(time.time())), scheme)
    verify(BODY, fresh, secret)
    with pytest.raises(TimestampExpired):
        verify(BODY, headers, secret)


@pytest.mark.parametrize(
    ("scheme", "missing"),
    [
        ("standard", "webhook-id"),
        ("standard", "webhook-timestamp"),
        ("standard", "webhook-signature"),
        ("seed", "X-Webhook-Timestamp"),
        ("seed", "X-Webhook-Signature"),
    ],
)
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_missing_headers(scheme: str, missing: str, how: str) -> None:
    secret = generate_secret()
    headers = only(hookline_headers([secret]), scheme)
    if how == "absent":
        del headers[missing]
    else:
        headers[missing] = " "
    with pytest.raises(MissingHeader, match=f"^missing header '{missing}'$") as caught:
        verify(BODY, headers, secret, now=NOW)
    assert caught.value.header == missing


def test_no_signature_headers_at_all() -> None:
    with pytest.raises(MissingHeader, match=r"'webhook-signature' .*or 'X-Webhook-Signature'"):
        verify(BODY, {"Content-Type": "application/json"}, generate_secret(), now=NOW)
    with pytest.raises(MissingHeader, match=r"^missing header 'webhook-id'$"):
        verify(BODY, {}, generate_secret(), scheme="standard", now=NOW)
    with pytest.raises(MissingHeader, match=r"^missing header 'X-Webhook-Timestamp'$"):
        verify(BODY, {}, generate_secret(), scheme="seed", now=NOW)


@pytest.mark.parametrize("stamp", ["abc", "12.5", "-5", " 1700000000", "\u0661\u0662\u0663", "9" * 40])
@pytest.mark.parametrize("scheme", ["standard", "seed"])
def test_malformed_timestamps(stamp: str, scheme: str) -> None:
    secret = generate_secret()
    headers = {
        k: stamp if "imestamp" in k else v for k, v in only(hookline_headers([secret]), scheme).items()
    }
    header = "webhook-timestamp" if scheme == "standard" else "X-Webhook-Timestamp"
    with pytest.raises(MalformedHeader, match=f"^header '{header}' is not an integer unix timestamp$"):
        verify(BODY, headers, secret, now=NOW)


@pytest.mark.parametrize(
    ("signature", "detail"),
    [
        ("v1,@@@ v2,abc", "no well-formed v1 or v1a signature"),
        ("v1a," + base64.b64encode(bytes(64)).decode(), "no 'whpk_' public key"),
    ],
)
def test_no_match_says_why_when_it_can(signature: str, detail: str) -> None:
    secret = generate_secret()
    headers = hookline_headers([secret]) | {"webhook-signature": signature}
    with pytest.raises(NoMatchingSignature, match=f"^no signature matched: .*{detail}"):
        verify(BODY, headers, secret, now=NOW)


def test_signed_but_not_json() -> None:
    secret = generate_secret()
    body = b"\xff\xfe not json"
    headers = hookline_headers([secret], body=body)
    with pytest.raises(MalformedPayload, match=r"^the body is not JSON$") as caught:
        verify(body, headers, secret, now=NOW)
    assert caught.value.status_code == 400
    check = Verifier(secret).check(body, headers, now=NOW)  # the signature alone is fine
    assert (check.scheme, check.message_id, check.timestamp) == ("v1", EVENT_ID, NOW)
    with pytest.raises(NoMatchingSignature):  # tampering is still reported as such
        verify(body + b"!", headers, secret, now=NOW)


def test_errors_are_one_family_and_never_quote_secrets() -> None:
    assert issubclass(WebhookVerificationError, ValueError)
    for error in (MissingHeader, MalformedHeader, TimestampExpired, NoMatchingSignature, MalformedPayload):
        assert issubclass(error, WebhookVerificationError)
    good, wrong = generate_secret(), "plain-secret-value"
    headers = hookline_headers([good])
    with pytest.raises(WebhookVerificationError) as caught:
        verify(BODY + b"!", headers, [wrong, good], now=NOW)
    text = str(caught.value) + repr(caught.value) + repr(Verifier([good, wrong]))
    assert good not in text and wrong not in text and headers["webhook-signature"] not in text


def test_misconfiguration() -> None:
    secret = generate_secret()
    with pytest.raises(ValueError, match="at least one secret"):
        Verifier([])
    with pytest.raises(ValueError, match="secret #2 is empty"):
        Verifier([secret, ""])
    with pytest.raises(ValueError, match="secret #1 has an empty key"):
        Verifier("whsec_")
    with pytest.raises(TypeError, match="secret #1 is not a string or bytes"):
        Verifier([1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not valid Unicode"):
        Verifier("lone-\ud800-surrogate")
    for bad in (
        {"tolerance": -1},
        {"tolerance": True},
        {"scheme": "v2"},
        {"prefix": ""},
        {"hex_form": "b64"},
    ):
        with pytest.raises(ValueError):
            Verifier(secret, **bad)
    with pytest.raises(TypeError, match="raw bytes"):
        verify(BODY.decode(), hookline_headers([secret]), secret, now=NOW)  # type: ignore[arg-type]


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    secret = generate_secret()
    for scheme in ("standard", "seed"):
        calls.clear()
        with pytest.raises(NoMatchingSignature):
            verify(BODY + b"!", only(hookline_headers([secret]), scheme), secret, now=NOW)
        assert len(calls) == 1


# --- v1a: ed25519 ----------------------------------------------------------------------------------


def ed25519_keys() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, "whpk_" + base64.b64encode(raw).decode()


def v1a(private: Ed25519PrivateKey, *, body: bytes = BODY, timestamp: int = NOW) -> str:
    """A Standard Webhooks asymmetric signature: ed25519 over "{id}.{timestamp}.{body}"."""
    signed = f"{EVENT_ID}.{timestamp}.".encode() + body
    return "v1a," + base64.b64encode(private.sign(signed)).decode()


def v1a_headers(signature: str, timestamp: int = NOW) -> dict[str, str]:
    return {"webhook-id": EVENT_ID, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_v1a_ed25519() -> None:
    private, public = ed25519_keys()
    event = verify(BODY, v1a_headers(v1a(private)), public, now=NOW)
    assert (event.scheme, event.id, event.data) == ("v1a", EVENT_ID, DATA)
    with pytest.raises(NoMatchingSignature, match=r"^no signature matched$"):
        verify(BODY + b" ", v1a_headers(v1a(private)), public, now=NOW)
    with pytest.raises(NoMatchingSignature):
        verify(BODY, v1a_headers(v1a(private)), ed25519_keys()[1], now=NOW)
    with pytest.raises(TimestampExpired):
        verify(BODY, v1a_headers(v1a(private)), public, now=NOW + 301)


def test_v1a_next_to_v1_and_rotation() -> None:
    private, public = ed25519_keys()
    _, other_public = ed25519_keys()
    secret = generate_secret()
    both = v1a_headers(hookline_headers([secret])["webhook-signature"] + " " + v1a(private))
    assert verify(BODY, both, public, now=NOW).scheme == "v1a"
    assert verify(BODY, both, secret, now=NOW).scheme == "v1"
    assert verify(BODY, both, [other_public, public], now=NOW).scheme == "v1a"
    with pytest.raises(NoMatchingSignature):
        verify(BODY, both, [other_public, generate_secret()], now=NOW)
    with pytest.raises(NoMatchingSignature, match="no HMAC secret"):
        verify(BODY, hookline_headers([secret]), public, now=NOW)


def test_v1a_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="not base64 of 32 bytes"):
        Verifier("whpk_" + base64.b64encode(bytes(31)).decode())
    with pytest.raises(ValueError, match="needs only the public key"):
        Verifier("whsk_" + base64.b64encode(bytes(32)).decode())


def test_v1a_without_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = ed25519_keys()
    headers = v1a_headers(v1a(private))
    for name in (
        "cryptography",
        "cryptography.exceptions",
        "cryptography.hazmat.primitives.asymmetric.ed25519",
    ):
        monkeypatch.setitem(sys.modules, name, None)  # what a missing package looks like to import
    with pytest.raises(ImportError, match=r"pip install 'hookline-receiver\[ed25519\]'"):
        verify(BODY, headers, public, now=NOW)
    # HMAC secrets never need it.
    secret = generate_secret()
    assert verify(BODY, hookline_headers([secret]), secret, now=NOW).scheme == "v1"


# --- properties ------------------------------------------------------------------------------------

text_secrets = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
key_secrets = st.binary(min_size=1, max_size=64).map(whsec)


def usable(secret: str) -> bool:
    return bool(signing_key(secret)) and not secret.startswith(("whpk_", "whsk_"))


@given(body=st.binary(max_size=2048), secret=st.one_of(text_secrets, key_secrets))
def test_property_what_hookline_signs_verifies(body: bytes, secret: str) -> None:
    assume(usable(secret))
    headers = hookline_headers([secret], body=body)
    for scheme in ("standard", "seed"):
        check = Verifier(secret, scheme=scheme).check(body, headers, now=NOW)
        assert check.timestamp == NOW


@given(body=st.binary(min_size=1, max_size=2048), secret=st.one_of(text_secrets, key_secrets), data=st.data())
def test_property_any_flipped_bit_fails(body: bytes, secret: str, data: st.DataObject) -> None:
    assume(usable(secret))
    headers = hookline_headers([secret], body=body)
    bit = data.draw(st.integers(0, len(body) * 8 - 1))
    flipped = bytearray(body)
    flipped[bit // 8] ^= 1 << (bit % 8)
    for scheme in ("standard", "seed"):
        with pytest.raises(NoMatchingSignature):
            Verifier(secret, scheme=scheme).check(bytes(flipped), headers, now=NOW)


def test_package_version_and_names() -> None:
    assert hookline_receiver.__version__
    assert set(hookline.receiver.__all__) <= set(hookline_receiver.__all__)
