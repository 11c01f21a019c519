"""Signing and verification of webhook deliveries.

Every delivery carries two signature schemes side by side:

* Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. A ``whsec_`` secret
  is keyed by its base64-decoded bytes, exactly as the ``standardwebhooks`` and ``svix`` libraries do.
* The "seed" scheme many hand-written receivers expect: ``{prefix}-Signature`` holding the hex
  HMAC-SHA256 of ``"{timestamp}.{body}"``, keyed by the whole secret string's UTF-8 bytes, next to
  ``{prefix}-Timestamp``, ``{prefix}-Id`` and ``{prefix}-Event``.

With several secrets (rotation) each scheme lists one signature per secret, and a verifier accepts
the delivery when any listed signature matches any of its secrets.

Everything here is pure (no I/O, no module state) and no secret, key or expected signature ever
appears in an exception message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from secrets import token_bytes
from typing import Literal

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "STANDARD_ID_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "SignatureError",
    "SignatureStyle",
    "generate_secret",
    "signature_headers",
    "signature_schemes",
    "signing_key",
    "validate_secret",
    "verify_seed_style",
    "verify_standard",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks marker, not a secret
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
MAX_SECRET_CHARS = 256
GENERATED_KEY_BYTES = 24
DEFAULT_TOLERANCE = 300

STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# RFC 9110 "token": the characters allowed in a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Printable ASCII without surrounding blanks: survives any HTTP stack byte for byte.
_HEADER_TEXT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
# Control, invisible-format and surrogate code points never belong in a secret.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_MAX_TIMESTAMP_DIGITS = 12
_SHA256_SIZE = 32


class SignatureError(ValueError):
    """A delivery did not verify. The message names the problem, never secret material."""


# --- secrets ---------------------------------------------------------------------------------------


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(GENERATED_KEY_BYTES)).decode("ascii")


def _decode_base64(text: str) -> bytes | None:
    """Strict standard base64 (padding optional, as the public libraries allow), or None."""
    if _BASE64.fullmatch(text) is None or ("=" in text and len(text) % 4):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of ``secret``.

    A ``whsec_`` secret whose remainder is valid base64 is keyed by the decoded bytes; any other
    secret by its UTF-8 bytes.
    """
    if secret.startswith(SECRET_PREFIX):
        key = _decode_base64(secret[len(SECRET_PREFIX) :])
        if key is not None:
            return key
    return _utf8(secret)


def validate_secret(secret: str) -> str | None:
    """Why ``secret`` is unusable, or None when it is fine."""
    if not secret:
        return "secret must not be empty"
    if len(secret) > MAX_SECRET_CHARS:
        return f"secret must be at most {MAX_SECRET_CHARS} characters"
    if any(ch.isspace() or unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in secret):
        return "secret must not contain whitespace or control characters"
    if secret.startswith(SECRET_PREFIX):
        key = _decode_base64(secret[len(SECRET_PREFIX) :])
        if key is None or not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            return (
                f"secret starting with {SECRET_PREFIX!r} must be base64 of "
                f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes"
            )
    return None


def _utf8(secret: str) -> bytes:
    try:
        return secret.encode()
    except UnicodeEncodeError:
        pass
    # Raised outside the handler so the original error, which quotes the secret, is not chained.
    raise ValueError("secret is not valid Unicode text")


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
    return (standard_key, _utf8(secret)) if standard_key else None


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
        found.append(
            {
                "scheme": "standard-webhooks",
                "header": STANDARD_SIGNATURE_HEADER,
                "signatures": len(standard.split()),
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
) -> dict[str, str]:
    """The seven signature headers of one delivery attempt of ``body``.

    Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (space separated
    ``v1,...`` values). Seed style: ``{prefix}-Signature`` (comma separated), ``{prefix}-Timestamp``,
    ``{prefix}-Id`` and ``{prefix}-Event``. One signature per secret, in the order given.
    """
    _check_body(body)
    for name, value in (("event_id", event_id), ("event_type", event_type)):
        if not isinstance(value, str) or _HEADER_TEXT.fullmatch(value) is None:
            raise ValueError(f"{name} must be printable ASCII without surrounding spaces")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer of unix seconds")
    key_pairs = _key_pairs(secrets)

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


def _check_tolerance(tolerance: int) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError("tolerance must be a non-negative number of seconds")


def _lowercased(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _require(headers: dict[str, str], name: str) -> str:
    value = headers.get(name.lower(), "")
    if not value.strip():
        raise SignatureError(f"missing header {name!r}")
    return value


def _check_timestamp(name: str, text: str, tolerance: int, now: int | None) -> None:
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIMESTAMP_DIGITS):
        raise SignatureError(f"header {name!r} is not an integer unix timestamp")
    current = int(time.time()) if now is None else now
    if abs(current - int(text)) > tolerance:
        raise SignatureError(f"timestamp outside the tolerance of {tolerance} s")


def _any_match(candidates: list[bytes], keys: list[bytes], signed_prefix: bytes, body: bytes) -> bool:
    for key in keys:
        expected = _mac(key, signed_prefix, body).digest()
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return True
    return False


def _standard_candidates(header_value: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a ``webhook-signature`` value; other versions are skipped."""
    found = []
    for entry in header_value.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        digest = _decode_base64(encoded)
        if digest is not None and len(digest) == _SHA256_SIZE:
            found.append(digest)
    return found


def _seed_candidates(header_value: str, value_prefix: str) -> list[bytes]:
    """The decoded digests of a comma separated seed-style signature value."""
    found = []
    for entry in header_value.split(","):
        entry = entry.strip()
        if not entry.startswith(value_prefix):
            continue
        hex_digest = entry[len(value_prefix) :]
        if _HEX_DIGEST.fullmatch(hex_digest) is not None:
            found.append(bytes.fromhex(hex_digest))
    return found


def verify_standard(
    *,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> None:
    """Check a Standard Webhooks delivery; raise SignatureError unless it is authentic and fresh."""
    _check_body(body)
    _check_tolerance(tolerance)
    keys = [standard_key for standard_key, _ in _key_pairs(secrets)]
    found = _lowercased(headers)
    event_id = _require(found, STANDARD_ID_HEADER)
    stamp = _require(found, STANDARD_TIMESTAMP_HEADER)
    signatures = _require(found, STANDARD_SIGNATURE_HEADER)
    _check_timestamp(STANDARD_TIMESTAMP_HEADER, stamp, tolerance, now)
    candidates = _standard_candidates(signatures)
    if not _any_match(candidates, keys, f"{event_id}.{stamp}.".encode(), body):
        raise SignatureError("no signature matched")


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
    _check_body(body)
    _check_tolerance(tolerance)
    keys = [seed_key for _, seed_key in _key_pairs(secrets)]
    found = _lowercased(headers)
    stamp = _require(found, style.timestamp_header)
    signatures = _require(found, style.signature_header)
    _check_timestamp(style.timestamp_header, stamp, tolerance, now)
    candidates = _seed_candidates(signatures, style.value_prefix)
    if not _any_match(candidates, keys, f"{stamp}.".encode(), body):
        raise SignatureError("no signature matched")
