"""Signing and verification of webhook deliveries.

Every delivery carries two signature schemes side by side:

* Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. A ``whsec_`` secret
  is keyed by its base64-decoded bytes, exactly as the ``standardwebhooks`` and ``svix`` libraries do.
* The "seed" scheme many hand-written receivers expect: ``{prefix}-Signature`` holding the hex
  HMAC-SHA256 of ``"{timestamp}.{body}"``, keyed by the whole secret string's UTF-8 bytes, next to
  ``{prefix}-Timestamp``, ``{prefix}-Id`` and ``{prefix}-Event``.

An endpoint that opted in to asymmetric signatures also gets Standard Webhooks' ``v1a,<base64 ed25519
signature of "{id}.{timestamp}.{body}">`` in ``webhook-signature``, beside its ``v1`` entries: receivers
verify those with the endpoint's public key (``whpk_`` + base64 of its 32 bytes) and no shared secret.
hookline keeps the signing key as ``whsk_`` + base64 of the 32-byte seed followed by the 32-byte public
key (libsodium's and Svix's layout); each key text is loaded into a key object once (``_ed25519_key``).

With several secrets (rotation) each scheme lists one signature per secret (and per signing key), and
a verifier accepts the delivery when any listed signature matches any of its secrets.

Verification, the key derivation and the header names are ``hookline_receiver``'s (the small
dependency-free package receivers install); ``verify_standard`` and ``verify_seed_style`` are that
verifier with one scheme forced.

Everything here is pure (no I/O; the only module state is the caches of derived keys) and no secret,
key or expected signature ever appears in an exception message or a repr.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from secrets import token_bytes
from typing import TYPE_CHECKING, Literal

from hookline_receiver import (
    DEFAULT_TOLERANCE,
    PUBLIC_KEY_PREFIX,
    SECRET_KEY_PREFIX,
    SECRET_PREFIX,
    STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER,
    Verifier,
    decode_base64,
    utf8_key,
)
from hookline_receiver import WebhookVerificationError as SignatureError
from hookline_receiver import standard_hmac_key as signing_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "STANDARD_ID_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "SignatureError",
    "SignatureStyle",
    "generate_secret",
    "generate_signing_key",
    "public_key",
    "signature_headers",
    "signature_schemes",
    "signing_key",
    "validate_secret",
    "verify_seed_style",
    "verify_standard",
]

MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
MAX_SECRET_CHARS = 256
GENERATED_KEY_BYTES = 24
ED25519_SEED_BYTES = 32
ED25519_PUBLIC_BYTES = 32

# RFC 9110 "token": the characters allowed in a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Printable ASCII without surrounding blanks: survives any HTTP stack byte for byte.
_HEADER_TEXT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
# Control, invisible-format and surrogate code points never belong in a secret.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})

# --- secrets ---------------------------------------------------------------------------------------


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(GENERATED_KEY_BYTES)).decode("ascii")


def validate_secret(secret: str) -> str | None:
    """Why ``secret`` is unusable, or None when it is fine."""
    if not secret:
        return "secret must not be empty"
    if len(secret) > MAX_SECRET_CHARS:
        return f"secret must be at most {MAX_SECRET_CHARS} characters"
    if any(ch.isspace() or unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in secret):
        return "secret must not contain whitespace or control characters"
    if secret.startswith((PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX)):
        # Receivers read these as ed25519 keys (Standard Webhooks' v1a), never as HMAC secrets.
        return f"secret must not start with {PUBLIC_KEY_PREFIX!r} or {SECRET_KEY_PREFIX!r} (ed25519 keys)"
    if secret.startswith(SECRET_PREFIX):
        key = decode_base64(secret[len(SECRET_PREFIX) :])
        if key is None or not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            return (
                f"secret starting with {SECRET_PREFIX!r} must be base64 of "
                f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes"
            )
    return None


def _key_pairs(secrets: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """(standard key, seed key) for each secret, each derived once."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not a single string")
    if not secrets:
        raise ValueError("at least one secret is required")
    pairs = []
    for position, secret in enumerate(secrets, start=1):
        if not isinstance(secret, str):
            raise TypeError(f"secret #{position} is not a string")
        if not secret:
            raise ValueError(f"secret #{position} is empty")
        pair = _key_pair(secret)
        if pair is None:
            raise ValueError(f"secret #{position} has an empty key")
        pairs.append(pair)
    return pairs


@functools.lru_cache(maxsize=4096)
def _key_pair(secret: str) -> tuple[bytes, bytes] | None:
    """Both keys of one secret; a worker signs with the same few secrets over and over."""
    standard_key = signing_key(secret)
    return (standard_key, utf8_key(secret)) if standard_key else None


# --- ed25519 keys (Standard Webhooks v1a) ------------------------------------------------------------
# ``cryptography`` is imported when a key is first made or loaded: the HMAC path never needs it.


def generate_signing_key() -> str:
    """A new ed25519 signing key: ``whsk_`` + base64 of the seed and the public key (64 bytes)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes_raw() + private.public_key().public_bytes_raw()
    return SECRET_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def public_key(signing_key: str) -> str:
    """The ``whpk_`` public key of a ``whsk_`` signing key (what receivers verify ``v1a`` with)."""
    _, public = _ed25519_key(signing_key)
    return PUBLIC_KEY_PREFIX + base64.b64encode(public).decode("ascii")


@functools.lru_cache(maxsize=1024)
def _ed25519_key(signing_key: str) -> tuple[Ed25519PrivateKey, bytes]:
    """The private key object and raw public key of a ``whsk_`` text, loaded once per text (a worker
    signs with the same few keys over and over). The stored public half must be the seed's."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not isinstance(signing_key, str) or not signing_key.startswith(SECRET_KEY_PREFIX):
        raise ValueError(f"signing key does not start with {SECRET_KEY_PREFIX!r}")
    raw = decode_base64(signing_key[len(SECRET_KEY_PREFIX) :])
    if raw is None or len(raw) != ED25519_SEED_BYTES + ED25519_PUBLIC_BYTES:
        raise ValueError("signing key is not base64 of 64 bytes (an ed25519 seed and public key)")
    private = Ed25519PrivateKey.from_private_bytes(raw[:ED25519_SEED_BYTES])
    public = private.public_key().public_bytes_raw()
    if not hmac.compare_digest(public, raw[ED25519_SEED_BYTES:]):
        raise ValueError("signing key's public half is not its seed's public key")
    return private, public


def _private_keys(signing_keys: Sequence[str]) -> list[Ed25519PrivateKey]:
    if isinstance(signing_keys, str):
        raise TypeError("signing keys must be a sequence of strings, not a single string")
    keys = []
    for position, text in enumerate(signing_keys, start=1):
        try:
            private, _ = _ed25519_key(text)
        except ValueError as exc:
            raise ValueError(f"signing key #{position}: {exc}") from None
        keys.append(private)
    return keys


# --- style -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignatureStyle:
    """How the seed-style headers are named and how their signatures are written."""

    header_prefix: str = "X-Webhook"
    hex_form: Literal["sha256=", "hex"] = "sha256="

    def __post_init__(self) -> None:
        if not isinstance(self.header_prefix, str) or _TOKEN.fullmatch(self.header_prefix) is None:
            raise ValueError(f"header prefix {self.header_prefix!r} is not a valid HTTP header token")
        if self.header_prefix.lower() == "webhook":
            raise ValueError("header prefix 'webhook' would clash with the Standard Webhooks headers")
        if self.hex_form not in ("sha256=", "hex"):
            raise ValueError(f"hex form must be 'sha256=' or 'hex', not {self.hex_form!r}")

    @property
    def signature_header(self) -> str:
        return f"{self.header_prefix}-Signature"

    @property
    def timestamp_header(self) -> str:
        return f"{self.header_prefix}-Timestamp"

    @property
    def id_header(self) -> str:
        return f"{self.header_prefix}-Id"

    @property
    def event_header(self) -> str:
        return f"{self.header_prefix}-Event"

    @property
    def value_prefix(self) -> str:
        """What goes before the hex digest: ``"sha256="`` or nothing."""
        return "sha256=" if self.hex_form == "sha256=" else ""


_DEFAULT_STYLE = SignatureStyle()


def signature_schemes(
    headers: Mapping[str, str], style: SignatureStyle = _DEFAULT_STYLE
) -> list[dict[str, object]]:
    """Which signature schemes a request's ``headers`` (as sent) carry: for each, its name, the header
    and how many signatures it lists (one per secret in use). Says what was sent, never a signature."""
    found: list[dict[str, object]] = []
    lowered = {name.lower(): value for name, value in headers.items()}
    standard = lowered.get(STANDARD_SIGNATURE_HEADER)
    if standard:
        entries = standard.split()
        asymmetric = sum(1 for entry in entries if entry.startswith("v1a,"))
        found.append(
            {
                "scheme": "standard-webhooks",
                "header": STANDARD_SIGNATURE_HEADER,
                "signatures": len(entries) - asymmetric,
            }
        )
        if asymmetric:
            found.append(
                {
                    "scheme": "standard-webhooks-ed25519",
                    "header": STANDARD_SIGNATURE_HEADER,
                    "signatures": asymmetric,
                }
            )
    seed = lowered.get(style.signature_header.lower())
    if seed:
        found.append(
            {
                "scheme": "hmac-sha256-hex",
                "header": style.signature_header,
                "signatures": len(seed.split(",")),
            }
        )
    return found


# --- signing ---------------------------------------------------------------------------------------


def _mac(key: bytes, signed_prefix: bytes, body: bytes) -> hmac.HMAC:
    """HMAC-SHA256 of ``signed_prefix + body`` without building the concatenation."""
    mac = hmac.new(key, signed_prefix, hashlib.sha256)
    mac.update(body)
    return mac


def _check_body(body: bytes) -> None:
    if not isinstance(body, bytes):
        raise TypeError(f"body must be the raw bytes as sent, not {type(body).__name__}")


def signature_headers(
    *,
    event_id: str,
    event_type: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str],
    style: SignatureStyle = _DEFAULT_STYLE,
    signing_keys: Sequence[str] = (),
) -> dict[str, str]:
    """The seven signature headers of one delivery attempt of ``body``.

    Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (space separated
    ``v1,...`` values, then a ``v1a,...`` value per ed25519 ``signing_keys`` entry). Seed style:
    ``{prefix}-Signature`` (comma separated), ``{prefix}-Timestamp``, ``{prefix}-Id`` and
    ``{prefix}-Event``. One signature per secret (and signing key), in the order given.
    """
    _check_body(body)
    for name, value in (("event_id", event_id), ("event_type", event_type)):
        if not isinstance(value, str) or _HEADER_TEXT.fullmatch(value) is None:
            raise ValueError(f"{name} must be printable ASCII without surrounding spaces")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer of unix seconds")
    key_pairs = _key_pairs(secrets)
    private_keys = _private_keys(signing_keys) if signing_keys else ()

    stamp = str(timestamp)
    standard_prefix = f"{event_id}.{stamp}.".encode()
    seed_prefix = f"{stamp}.".encode()
    value_prefix = style.value_prefix
    standard_values = []
    seed_values = []
    for standard_key, seed_key in key_pairs:
        digest = _mac(standard_key, standard_prefix, body).digest()
        standard_values.append("v1," + base64.b64encode(digest).decode("ascii"))
        seed_values.append(value_prefix + _mac(seed_key, seed_prefix, body).hexdigest())
    if private_keys:
        message = standard_prefix + body
        for private in private_keys:
            standard_values.append("v1a," + base64.b64encode(private.sign(message)).decode("ascii"))

    return {
        STANDARD_ID_HEADER: event_id,
        STANDARD_TIMESTAMP_HEADER: stamp,
        STANDARD_SIGNATURE_HEADER: " ".join(standard_values),
        style.signature_header: ",".join(seed_values),
        style.timestamp_header: stamp,
        style.id_header: event_id,
        style.event_header: event_type,
    }


# --- verification ----------------------------------------------------------------------------------


def _sequence(secrets: Sequence[str]) -> Sequence[str]:
    """The server's stricter contract: always a sequence (the receiver also takes a single secret)."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not a single string")
    return secrets


def verify_standard(
    *,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> None:
    """Check a Standard Webhooks delivery; raise SignatureError unless it is authentic and fresh."""
    verifier = Verifier(_sequence(secrets), tolerance=tolerance, scheme="standard")
    verifier.check(body, headers, now=now)


def verify_seed_style(
    *,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    style: SignatureStyle = _DEFAULT_STYLE,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> None:
    """Check a seed-style delivery; raise SignatureError unless it is authentic and fresh.

    Signatures must be written in ``style.hex_form``; entries in another form do not match.
    """
    verifier = Verifier(
        _sequence(secrets),
        tolerance=tolerance,
        scheme="seed",
        prefix=style.header_prefix,
        hex_form=style.hex_form,
    )
    verifier.check(body, headers, now=now)
