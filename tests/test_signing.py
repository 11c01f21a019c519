"""Signing interoperates with the public Standard Webhooks libraries and the seed receivers."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook

from hookline.signing import (
    SignatureError,
    SignatureStyle,
    generate_secret,
    signature_headers,
    signing_key,
    validate_secret,
    verify_seed_style,
    verify_standard,
)

BODY = b'{"event":"message.received","data":{"text":"h\xc3\xa9llo","n":1}}'
EVENT_ID = "msg_2b7Qh9XzT1"
EVENT_TYPE = "message.received"

# (name, verify(secret_or_key, body, headers)) for each public library.
LIBRARIES: list[tuple[str, Callable[[str | bytes, bytes, dict[str, str]], Any]]] = [
    ("standardwebhooks", lambda secret, body, headers: StandardWebhook(secret).verify(body, headers)),
    ("svix", lambda secret, body, headers: SvixWebhook(secret).verify(body, headers)),
]
library_param = pytest.mark.parametrize(("library", "lib_verify"), LIBRARIES, ids=[n for n, _ in LIBRARIES])


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def sign(
    secrets: list[str], *, timestamp: int | None = None, body: bytes = BODY, **kw: Any
) -> dict[str, str]:
    return signature_headers(
        event_id=EVENT_ID,
        event_type=EVENT_TYPE,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        body=body,
        secrets=secrets,
        **kw,
    )


def seed_hex(secret: str, timestamp: str, body: bytes) -> str:
    """What a seed receiver computes: HMAC-SHA256(secret, f"{timestamp}.{body}"), hex."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


# --- secrets ---------------------------------------------------------------------------------------


def test_generated_secret_format() -> None:
    generated = [generate_secret() for _ in range(20)]
    assert len(set(generated)) == len(generated)
    for secret in generated:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[len("whsec_") :], validate=True)) == 24
        assert len(signing_key(secret)) == 24
        assert validate_secret(secret) is None


def test_signing_key() -> None:
    key = bytes(range(32))
    assert signing_key(whsec(key)) == key
    assert signing_key(whsec(key).rstrip("=")) == key  # unpadded, as the libraries accept
    assert signing_key("plain-secret") == b"plain-secret"
    assert signing_key("whsec_not base64!") == b"whsec_not base64!"
    assert signing_key("whsec_AAAA==") == b"whsec_AAAA=="  # excess padding is not valid base64
    assert signing_key("sécret") == "sécret".encode()


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 257, "at most 256 characters"),
        ("has space", "whitespace or control"),
        ("tab\there", "whitespace or control"),
        ("nul\x00", "whitespace or control"),
        ("zero\u200bwidth", "whitespace or control"),
        ("lone\ud800surrogate", "whitespace or control"),
        ("whsec_" + base64.b64encode(bytes(23)).decode(), "base64 of 24 to 64 bytes"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "base64 of 24 to 64 bytes"),
        ("whsec_not-base64-at-all-but-long-enough", "base64 of 24 to 64 bytes"),
        ("whsec_", "base64 of 24 to 64 bytes"),
        # Receivers (hookline_receiver) read these as ed25519 keys, not HMAC secrets.
        ("whpk_" + base64.b64encode(bytes(32)).decode(), "ed25519 keys"),
        ("whsk_" + base64.b64encode(bytes(32)).decode(), "ed25519 keys"),
    ],
)
def test_validate_secret_rejects(secret: str, problem: str) -> None:
    message = validate_secret(secret)
    assert message is not None and problem in message
    if len(secret) > 6:
        assert secret not in message


@pytest.mark.parametrize(
    "secret",
    [
        "x",
        "x" * 256,
        "s3cr3t-with-punctuation!@#$%^&*()",
        "sécret-ünïcode",
        whsec(bytes(24)),
        whsec(bytes(64)),
        whsec(bytes(40)).rstrip("="),
    ],
)
def test_validate_secret_accepts(secret: str) -> None:
    assert validate_secret(secret) is None


# --- style -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "X Webhook", "X-Webhook:", "X-Wébhook", "X-Webhook\r\n", "webhook"])
def test_style_rejects_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError):
        SignatureStyle(header_prefix=prefix)


def test_style_is_immutable_and_checks_form() -> None:
    style = SignatureStyle()
    with pytest.raises(dataclasses.FrozenInstanceError):
        style.header_prefix = "X-Other"  # type: ignore[misc]
    with pytest.raises(ValueError):
        SignatureStyle(hex_form="base64")  # type: ignore[arg-type]


# --- headers ---------------------------------------------------------------------------------------


def test_signature_headers_shape() -> None:
    headers = sign([generate_secret()], timestamp=1_700_000_000)
    assert set(headers) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Webhook-Signature",
        "X-Webhook-Timestamp",
        "X-Webhook-Id",
        "X-Webhook-Event",
    }
    assert headers["webhook-id"] == headers["X-Webhook-Id"] == EVENT_ID
    assert headers["webhook-timestamp"] == headers["X-Webhook-Timestamp"] == "1700000000"
    assert headers["X-Webhook-Event"] == EVENT_TYPE
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["X-Webhook-Signature"].startswith("sha256=")


def test_standard_signature_by_hand() -> None:
    key = bytes(range(24))
    headers = sign([whsec(key)], timestamp=1_700_000_000)
    expected = hmac.new(key, f"{EVENT_ID}.1700000000.".encode() + BODY, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()


@pytest.mark.parametrize(
    "bad",
    [
        {"event_id": ""},
        {"event_id": "evt\r\nX-Injected: 1"},
        {"event_id": " padded"},
        {"event_type": "a\nb"},
        {"timestamp": -1},
        {"timestamp": True},
        {"secrets": []},
        {"secrets": [""]},
        {"secrets": ["whsec_"]},
    ],
)
def test_signature_headers_rejects_bad_input(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "event_id": EVENT_ID,
        "event_type": EVENT_TYPE,
        "timestamp": 1_700_000_000,
        "body": BODY,
        "secrets": [generate_secret()],
    }
    with pytest.raises(ValueError):
        signature_headers(**(args | bad))


def test_signature_headers_rejects_str_body_and_str_secrets() -> None:
    with pytest.raises(TypeError):
        sign([generate_secret()], body=BODY.decode())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(generate_secret())  # type: ignore[arg-type]


# --- interoperability with the public libraries ----------------------------------------------------


@library_param
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(generate_secret(), id="random-whsec"),
        whsec(bytes(range(64))),
        whsec(b"\xfb\xff" * 20),  # base64 with '+' and '/'
        whsec(bytes(range(25))).rstrip("="),  # unpadded
    ],
)
def test_libraries_verify_whsec_secrets(library: str, lib_verify: Callable[..., Any], secret: str) -> None:
    headers = sign([secret])
    lib_verify(secret, BODY, headers)
    verify_standard(body=BODY, headers=headers, secrets=[secret])


@library_param
@pytest.mark.parametrize("secret", ["plain-shared-secret", "abcdabcdabcdabcd", "sécret"])
def test_libraries_verify_plain_secrets_given_the_key(
    library: str, lib_verify: Callable[..., Any], secret: str
) -> None:
    # The libraries base64-decode every str secret, so a plain secret is handed over as its key bytes.
    headers = sign([secret])
    lib_verify(signing_key(secret), BODY, headers)
    verify_standard(body=BODY, headers=headers, secrets=[secret])


@library_param
def test_rotation_each_secret_alone(library: str, lib_verify: Callable[..., Any]) -> None:
    old, new = generate_secret(), generate_secret()
    headers = sign([old, new])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        lib_verify(secret, BODY, headers)
        verify_standard(body=BODY, headers=headers, secrets=[secret])
    with pytest.raises(WebhookVerificationError):
        lib_verify(generate_secret(), BODY, headers)


@library_param
def test_libraries_reject_tampering(library: str, lib_verify: Callable[..., Any]) -> None:
    secret = generate_secret()
    headers = sign([secret])
    with pytest.raises(WebhookVerificationError):
        lib_verify(secret, BODY.replace(b"1", b"2"), headers)
    with pytest.raises(WebhookVerificationError):
        lib_verify(generate_secret(), BODY, headers)
    with pytest.raises(WebhookVerificationError):
        lib_verify(secret, BODY, sign([secret], timestamp=int(time.time()) - 3600))


# --- seed style ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "value_prefix"),
    [
        (SignatureStyle(), "sha256="),
        (SignatureStyle(hex_form="hex"), ""),
        (SignatureStyle(header_prefix="X-Awal-Webhook", hex_form="hex"), ""),
        (SignatureStyle(header_prefix="X-Awal-Webhook"), "sha256="),
    ],
)
def test_seed_signature_by_hand(style: SignatureStyle, value_prefix: str) -> None:
    secret = generate_secret()  # the whole string is the key, as process.env.WEBHOOK_SECRET would be
    headers = sign([secret], style=style)
    prefix = style.header_prefix
    stamp = headers[f"{prefix}-Timestamp"]
    assert headers[f"{prefix}-Signature"] == value_prefix + seed_hex(secret, stamp, BODY)
    assert headers[f"{prefix}-Id"] == EVENT_ID
    assert headers[f"{prefix}-Event"] == EVENT_TYPE
    verify_seed_style(body=BODY, headers=headers, secrets=[secret], style=style)


def test_seed_rotation_lists_one_value_per_secret() -> None:
    old, new = "old-plain-secret", generate_secret()
    style = SignatureStyle(header_prefix="X-Awal-Webhook", hex_form="hex")
    headers = sign([old, new], style=style)
    stamp = headers["X-Awal-Webhook-Timestamp"]
    assert headers["X-Awal-Webhook-Signature"] == f"{seed_hex(old, stamp, BODY)},{seed_hex(new, stamp, BODY)}"
    for secret in (old, new):
        verify_seed_style(body=BODY, headers=headers, secrets=[secret], style=style)


def test_seed_verifier_honours_the_configured_form() -> None:
    secret = generate_secret()
    headers = sign([secret], style=SignatureStyle(hex_form="hex"))
    with pytest.raises(SignatureError, match="no signature matched"):
        verify_seed_style(body=BODY, headers=headers, secrets=[secret])


# --- our verifiers ---------------------------------------------------------------------------------

VERIFIERS: list[tuple[str, Callable[..., None]]] = [
    ("standard", verify_standard),
    ("seed", verify_seed_style),
]
verifier_param = pytest.mark.parametrize(("kind", "verify"), VERIFIERS, ids=[n for n, _ in VERIFIERS])


@verifier_param
def test_verifiers_reject_tampering(kind: str, verify: Callable[..., None]) -> None:
    secret = generate_secret()
    now = 1_700_000_000
    headers = sign([secret], timestamp=now)
    verify(body=BODY, headers=headers, secrets=[secret], now=now)
    with pytest.raises(SignatureError, match=r"^no signature matched$"):
        verify(body=BODY + b" ", headers=headers, secrets=[secret], now=now)
    with pytest.raises(SignatureError, match=r"^no signature matched$"):
        verify(body=BODY, headers=headers, secrets=[generate_secret()], now=now)
    with pytest.raises(SignatureError, match=r"^timestamp outside the tolerance of 300 s$"):
        verify(body=BODY, headers=headers, secrets=[secret], now=now + 301)
    with pytest.raises(SignatureError, match=r"^timestamp outside the tolerance of 300 s$"):
        verify(body=BODY, headers=headers, secrets=[secret], now=now - 301)
    verify(body=BODY, headers=headers, secrets=[secret], now=now + 300)
    with pytest.raises(SignatureError, match=r"^timestamp outside the tolerance of 10 s$"):
        verify(body=BODY, headers=headers, secrets=[secret], now=now + 11, tolerance=10)


@verifier_param
def test_verifiers_reject_a_forged_timestamp(kind: str, verify: Callable[..., None]) -> None:
    secret = generate_secret()
    headers = sign([secret], timestamp=1_700_000_000)
    forged = {name: "1700000100" if "imestamp" in name else value for name, value in headers.items()}
    with pytest.raises(SignatureError, match="no signature matched"):
        verify(body=BODY, headers=forged, secrets=[secret], now=1_700_000_100)


@verifier_param
def test_verifiers_accept_any_secret_and_any_case(kind: str, verify: Callable[..., None]) -> None:
    secret = generate_secret()
    headers = {name.upper(): value for name, value in sign([secret]).items()}
    verify(body=BODY, headers=headers, secrets=[generate_secret(), secret])


@verifier_param
def test_verifiers_sign_raw_bytes(kind: str, verify: Callable[..., None]) -> None:
    body = b"\xff\xfe not utf-8 \x00"
    secret = "plain-secret"
    verify(body=body, headers=sign([secret], body=body), secrets=[secret])
    with pytest.raises(TypeError):
        verify(body=body.decode("latin-1"), headers=sign([secret], body=body), secrets=[secret])


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header(missing: str) -> None:
    secret = generate_secret()
    headers = sign([secret])
    del headers[missing]
    with pytest.raises(SignatureError, match=f"^missing header '{missing}'$"):
        verify_standard(body=BODY, headers=headers, secrets=[secret])


@pytest.mark.parametrize("missing", ["X-Awal-Webhook-Timestamp", "X-Awal-Webhook-Signature"])
def test_seed_missing_header(missing: str) -> None:
    secret = generate_secret()
    style = SignatureStyle(header_prefix="X-Awal-Webhook")
    headers = sign([secret], style=style)
    headers[missing] = ""
    with pytest.raises(SignatureError, match=f"^missing header '{missing}'$"):
        verify_seed_style(body=BODY, headers=headers, secrets=[secret], style=style)


@pytest.mark.parametrize(
    "signature",
    ["v1", "v1,", "v1,@@@", "v1a,abc v2,def", "v1,é", "v1," + base64.b64encode(bytes(32)).decode(), ",,, "],
)
def test_standard_malformed_signatures_do_not_match(signature: str) -> None:
    secret = generate_secret()
    headers = sign([secret]) | {"webhook-signature": signature}
    with pytest.raises(SignatureError, match="no signature matched"):
        verify_standard(body=BODY, headers=headers, secrets=[secret])


def test_standard_skips_unknown_versions() -> None:
    secret = generate_secret()
    headers = sign([secret])
    headers["webhook-signature"] = "v1a,c29tZXRoaW5n v2,xyz  " + headers["webhook-signature"]
    verify_standard(body=BODY, headers=headers, secrets=[secret])


@pytest.mark.parametrize("signature", ["sha256=", "sha256=zz", "sha256=é" * 3, "sha256=" + "0" * 64, ","])
def test_seed_malformed_signatures_do_not_match(signature: str) -> None:
    secret = generate_secret()
    headers = sign([secret]) | {"X-Webhook-Signature": signature}
    with pytest.raises(SignatureError, match="no signature matched"):
        verify_seed_style(body=BODY, headers=headers, secrets=[secret])


@verifier_param
@pytest.mark.parametrize("stamp", ["", "abc", "12.5", "-5", " 1700000000", "١٢٣", "9" * 40])
def test_verifiers_reject_bad_timestamps(kind: str, verify: Callable[..., None], stamp: str) -> None:
    secret = generate_secret()
    headers = {name: stamp if "imestamp" in name else value for name, value in sign([secret]).items()}
    with pytest.raises(SignatureError) as caught:
        verify(body=BODY, headers=headers, secrets=[secret])
    assert "timestamp" in str(caught.value).lower()


@verifier_param
def test_verifiers_reject_misconfiguration(kind: str, verify: Callable[..., None]) -> None:
    headers = sign([generate_secret()])
    with pytest.raises(ValueError):
        verify(body=BODY, headers=headers, secrets=[])
    with pytest.raises(TypeError):
        verify(body=BODY, headers=headers, secrets="whsec_single")
    with pytest.raises(ValueError):
        verify(body=BODY, headers=headers, secrets=[generate_secret()], tolerance=-1)


def test_secrets_never_leak_into_errors() -> None:
    secret = "lone-\ud800-surrogate-secret"
    with pytest.raises(ValueError) as caught:
        sign([secret])
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert caught.value.__context__ is None and caught.value.__cause__ is None

    good = generate_secret()
    headers = sign([good])
    for wrong in (generate_secret(), "plain-secret-value"):
        with pytest.raises(SignatureError) as failed:
            verify_standard(body=BODY + b"!", headers=headers, secrets=[good, wrong])
        text = str(failed.value) + repr(failed.value)
        assert good not in text and wrong not in text
        assert headers["webhook-signature"] not in text
