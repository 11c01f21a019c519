"""Verification of one webhook request: the single implementation (hookline's server uses it too).

Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature``, a space separated list of ``v1,<base64 HMAC-SHA256>`` and ``v1a,<base64 ed25519>``
signatures of ``"{id}.{timestamp}.{body}"`` (Svix's ``svix-*`` headers are read the same way). The seed
style: ``{prefix}-Signature``, a comma separated list of ``sha256=<hex>`` or bare hex HMAC-SHA256 of
``"{timestamp}.{body}"``, next to ``{prefix}-Timestamp`` (``{prefix}-Id`` and ``{prefix}-Event`` are
not signed).

Standard library only; ``v1a`` needs the ``cryptography`` package, imported when a ``whpk_`` public key
is first used. No secret, key or signature ever appears in an exception message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TOLERANCE",
    "PUBLIC_KEY_PREFIX",
    "SECRET_KEY_PREFIX",
    "SECRET_PREFIX",
    "STANDARD_ID_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "MalformedHeader",
    "MalformedPayload",
    "MissingHeader",
    "NoMatchingSignature",
    "Scheme",
    "SignatureCheck",
    "TimestampExpired",
    "VerifiedWebhook",
    "Verifier",
    "WebhookVerificationError",
    "decode_base64",
    "standard_hmac_key",
    "utf8_key",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks markers, not secrets
PUBLIC_KEY_PREFIX = "whpk_"
SECRET_KEY_PREFIX = "whsk_"  # noqa: S105
DEFAULT_TOLERANCE = 300
DEFAULT_PREFIX = "X-Webhook"

STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
_SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
_STANDARD_HEADERS = (STANDARD_ID_HEADER, STANDARD_TIMESTAMP_HEADER, STANDARD_SIGNATURE_HEADER)

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_MAX_TIMESTAMP_DIGITS = 12
_SHA256_SIZE = 32
_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64

# Which scheme to verify: "auto" reads it from the headers (Standard Webhooks when any of its headers is
# there, else the seed style); "standard" and "seed" insist on one.
Scheme = Literal["auto", "standard", "seed"]
Secret = str | bytes


# --- errors ----------------------------------------------------------------------------------------


class WebhookVerificationError(ValueError):
    """The request is not an authentic, fresh webhook. The message says why, never quoting a secret."""

    status_code = 401  # what a receiver should answer


class MissingHeader(WebhookVerificationError):
    """A header the scheme needs is absent or empty."""

    def __init__(self, header: str, message: str | None = None) -> None:
        self.header = header
        super().__init__(message or f"missing header {header!r}")


class MalformedHeader(WebhookVerificationError):
    """A header is there but cannot be read (a timestamp that is not integer unix seconds)."""

    def __init__(self, header: str, message: str) -> None:
        self.header = header
        super().__init__(message)


class TimestampExpired(WebhookVerificationError):
    """The signed timestamp is further from now than the tolerance, in the past or in the future."""

    def __init__(self, header: str, timestamp: int, now: int, tolerance: float) -> None:
        self.header = header
        self.timestamp = timestamp
        self.now = now
        self.tolerance = tolerance
        seconds = int(tolerance) if float(tolerance).is_integer() else tolerance
        super().__init__(f"timestamp outside the tolerance of {seconds} s")

    @property
    def in_future(self) -> bool:
        return self.timestamp > self.now


class NoMatchingSignature(WebhookVerificationError):
    """No signature in the header was made with any of the given secrets over this body."""

    def __init__(self, header: str, detail: str | None = None) -> None:
        self.header = header
        super().__init__("no signature matched" + (f": {detail}" if detail else ""))


class MalformedPayload(WebhookVerificationError):
    """The signature is good but the body is not JSON."""

    status_code = 400

    def __init__(self) -> None:
        super().__init__("the body is not JSON")


# --- keys ------------------------------------------------------------------------------------------


def decode_base64(text: str) -> bytes | None:
    """Strict standard base64 (padding optional, as the public libraries allow), or None."""
    if _BASE64.fullmatch(text) is None or ("=" in text and len(text) % 4):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def utf8_key(secret: str) -> bytes:
    """``secret``'s UTF-8 bytes: the seed style's key, and the Standard key of a plain secret."""
    try:
        return secret.encode()
    except UnicodeEncodeError:
        pass
    # Raised outside the handler so the original error, which quotes the secret, is not chained.
    raise ValueError("secret is not valid Unicode text")


def standard_hmac_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of ``secret``.

    A ``whsec_`` secret whose remainder is valid base64 is keyed by the decoded bytes (as the
    ``standardwebhooks`` and ``svix`` libraries do); any other secret by its UTF-8 bytes.
    """
    if secret.startswith(SECRET_PREFIX):
        key = decode_base64(secret[len(SECRET_PREFIX) :])
        if key is not None:
            return key
    return utf8_key(secret)


@dataclass(frozen=True)
class _Keys:
    standard: tuple[bytes, ...] = ()  # v1 HMAC keys
    seed: tuple[bytes, ...] = ()  # seed-style HMAC keys
    ed25519: tuple[bytes, ...] = ()  # v1a raw public keys


def _parse_secrets(secrets: Secret | Iterable[Secret]) -> _Keys:
    listed: list[object] = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    if not listed:
        raise ValueError("at least one secret is required")
    standard: list[bytes] = []
    seed: list[bytes] = []
    ed25519: list[bytes] = []
    for position, secret in enumerate(listed, start=1):
        name = f"secret #{position}"
        if isinstance(secret, (bytes, bytearray)):  # a raw HMAC key
            if not secret:
                raise ValueError(f"{name} is empty")
            standard.append(bytes(secret))
            seed.append(bytes(secret))
        elif isinstance(secret, str):
            if not secret:
                raise ValueError(f"{name} is empty")
            if secret.startswith(PUBLIC_KEY_PREFIX):
                key = decode_base64(secret[len(PUBLIC_KEY_PREFIX) :])
                if key is None or len(key) != _ED25519_KEY_SIZE:
                    raise ValueError(
                        f"{name} starts with {PUBLIC_KEY_PREFIX!r} but is not base64 of 32 bytes"
                    )
                ed25519.append(key)
            elif secret.startswith(SECRET_KEY_PREFIX):
                raise ValueError(
                    f"{name} is an ed25519 signing key ({SECRET_KEY_PREFIX!r}): a receiver needs only "
                    f"the public key ({PUBLIC_KEY_PREFIX!r}); keep the signing key with the sender"
                )
            else:
                key = standard_hmac_key(secret)
                if not key:
                    raise ValueError(f"{name} has an empty key")
                standard.append(key)
                seed.append(utf8_key(secret))
        else:
            raise TypeError(f"{name} is not a string or bytes")
    return _Keys(tuple(standard), tuple(seed), tuple(ed25519))


# --- headers ---------------------------------------------------------------------------------------


def _lowercased(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; of a repeated header the last value counts."""
    items = getattr(headers, "items", None)  # a Mapping, or a framework's multi-dict
    pairs = cast("Iterable[tuple[str, str]]", items() if callable(items) else headers)
    return {str(name).lower(): value for name, value in pairs}


def _require(headers: dict[str, str], name: str) -> str:
    value = headers.get(name.lower(), "")
    if not isinstance(value, str) or not value.strip():
        raise MissingHeader(name)
    return value


def _checked_timestamp(name: str, text: str, tolerance: float, now: int | None) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIMESTAMP_DIGITS):
        raise MalformedHeader(name, f"header {name!r} is not an integer unix timestamp")
    stamp = int(text)
    current = int(time.time()) if now is None else now
    if abs(current - stamp) > tolerance:
        raise TimestampExpired(name, stamp, current, tolerance)
    return stamp


def _mac(key: bytes, signed_prefix: bytes, body: bytes) -> bytes:
    """HMAC-SHA256 of ``signed_prefix + body`` without building the concatenation."""
    mac = hmac.new(key, signed_prefix, hashlib.sha256)
    mac.update(body)
    return mac.digest()


def _hmac_match(candidates: list[bytes], keys: Iterable[bytes], signed_prefix: bytes, body: bytes) -> bool:
    for key in keys:
        expected = _mac(key, signed_prefix, body)
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return True
    return False


def _ed25519_match(candidates: list[bytes], keys: Iterable[bytes], message: bytes) -> bool:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        pass
    else:
        for key in keys:
            public = Ed25519PublicKey.from_public_bytes(key)
            for candidate in candidates:
                try:
                    public.verify(candidate, message)
                except InvalidSignature:
                    continue
                return True
        return False
    raise ImportError(
        "verifying v1a (ed25519) signatures needs the 'cryptography' package: "
        "pip install 'hookline-receiver[ed25519]' (or pip install cryptography)"
    )


def _standard_candidates(value: str) -> tuple[list[bytes], list[bytes]]:
    """The decoded ``v1`` and ``v1a`` signatures of a ``webhook-signature`` value; anything else (other
    versions, entries that do not decode) is skipped, as the spec asks for forward compatibility."""
    v1: list[bytes] = []
    v1a: list[bytes] = []
    for entry in value.split():
        version, _, encoded = entry.partition(",")
        if version == "v1":
            digest = decode_base64(encoded)
            if digest is not None and len(digest) == _SHA256_SIZE:
                v1.append(digest)
        elif version == "v1a":
            signature = decode_base64(encoded)
            if signature is not None and len(signature) == _ED25519_SIGNATURE_SIZE:
                v1a.append(signature)
    return v1, v1a


def _seed_candidates(value: str, hex_form: Literal["sha256=", "hex"] | None) -> list[bytes]:
    """The digests of a comma separated seed-style value, each ``sha256=<hex>`` or bare hex (only the
    form given, when one is)."""
    found = []
    for entry in value.split(","):
        entry = entry.strip()
        if entry.startswith("sha256="):
            if hex_form == "hex":
                continue
            entry = entry[len("sha256=") :]
        elif hex_form == "sha256=":
            continue
        if _HEX_DIGEST.fullmatch(entry) is not None:
            found.append(bytes.fromhex(entry))
    return found


def _no_match_detail(keys: _Keys, v1: list[bytes], v1a: list[bytes]) -> str | None:
    if not v1 and not v1a:
        return "the header holds no well-formed v1 or v1a signature"
    if v1 and not v1a and not keys.standard:
        return "the header holds only v1 (HMAC) signatures and no HMAC secret was given"
    if v1a and not v1 and not keys.ed25519:
        return (
            f"the header holds only v1a (ed25519) signatures and no {PUBLIC_KEY_PREFIX!r} public key "
            "was given"
        )
    return None


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureCheck:
    """What a good signature vouches for: which signature matched (``v1``, ``v1a`` or ``seed``), the
    signed timestamp and, for Standard Webhooks, the signed message id; ``headers`` are the request's,
    names lower-cased."""

    scheme: Literal["v1", "v1a", "seed"]
    timestamp: int
    message_id: str | None
    headers: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class VerifiedWebhook:
    """An authentic, fresh webhook.

    ``id`` is the event id to de-duplicate on (``webhook-id``; in the seed style the body's signed
    ``"id"``, else the unsigned ``{prefix}-Id`` header); ``type`` the body's ``"type"`` or ``"event"``
    (else the seed style's ``{prefix}-Event``); ``data`` the body's ``"data"`` (else the whole payload);
    ``payload`` the decoded JSON body; ``challenge`` the challenge of hookline's verification handshake
    (``{"type": "verification", "challenge": ...}``), else None.
    """

    id: str | None
    type: str | None
    data: Any
    payload: Any
    timestamp: int
    scheme: Literal["v1", "v1a", "seed"]
    challenge: str | None = None
    body: bytes = field(default=b"", repr=False)


# --- verifier --------------------------------------------------------------------------------------


class Verifier:
    """Verifies requests with fixed secrets and options; build it once (bad secrets fail here).

    ``secrets``: one or several (during a rotation any may match): ``whsec_...`` or plain secret strings
    as the sender shows them, ``whpk_...`` ed25519 public keys (for ``v1a``), or raw key bytes.
    ``tolerance``: how far (seconds, past or future) the signed timestamp may be from now. ``scheme``:
    ``"auto"`` (default), ``"standard"`` or ``"seed"``. ``prefix``: the seed style's header prefix.
    ``hex_form``: accept only ``"sha256="`` or only bare ``"hex"`` seed signatures (default: either).
    """

    def __init__(
        self,
        secrets: Secret | Iterable[Secret],
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        scheme: Scheme = "auto",
        prefix: str = DEFAULT_PREFIX,
        hex_form: Literal["sha256=", "hex"] | None = None,
    ) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise ValueError("tolerance must be a non-negative number of seconds")
        if scheme not in ("auto", "standard", "seed"):
            raise ValueError(f"scheme must be 'auto', 'standard' or 'seed', not {scheme!r}")
        if not isinstance(prefix, str) or not prefix or prefix.lower() == "webhook":
            raise ValueError("prefix must be a header prefix such as 'X-Webhook'")
        if hex_form not in (None, "sha256=", "hex"):
            raise ValueError(f"hex_form must be 'sha256=', 'hex' or None, not {hex_form!r}")
        self._keys = _parse_secrets(secrets)
        self.tolerance = tolerance
        self.scheme: Scheme = scheme
        self.prefix = prefix
        self.hex_form = hex_form

    def __repr__(self) -> str:
        keys = self._keys
        count = len(keys.standard) + len(keys.ed25519)
        return f"Verifier({count} secret(s), scheme={self.scheme!r}, prefix={self.prefix!r})"

    def check(
        self,
        body: bytes,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        *,
        now: int | None = None,
    ) -> SignatureCheck:
        """Check the signature and timestamp only (the body need not be JSON); raise a
        ``WebhookVerificationError`` unless the request is authentic and fresh."""
        if not isinstance(body, (bytes, bytearray)):
            raise TypeError(f"body must be the raw bytes as received, not {type(body).__name__}")
        body = bytes(body)
        found = _lowercased(headers)
        names = self._standard_names(found)
        if names is not None:
            return self._check_standard(body, found, names, now)
        return self._check_seed(body, found, now)

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        *,
        now: int | None = None,
    ) -> VerifiedWebhook:
        """Check the request (see ``check``) and decode its JSON body."""
        checked = self.check(body, headers, now=now)
        try:
            payload = json.loads(body)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            raise MalformedPayload() from None
        fields = payload if isinstance(payload, dict) else {}
        event_id = checked.message_id
        event_type = _text(fields.get("type")) or _text(fields.get("event"))
        if checked.scheme == "seed":
            # The seed style signs only the timestamp and the body: the body's id over the header's.
            event_id = _text(fields.get("id")) or checked.headers.get(f"{self.prefix}-id".lower())
            event_type = event_type or checked.headers.get(f"{self.prefix}-event".lower())
        challenge = _text(fields.get("challenge")) if fields.get("type") == "verification" else None
        return VerifiedWebhook(
            id=event_id or None,
            type=event_type or None,
            data=fields.get("data", payload),
            payload=payload,
            timestamp=checked.timestamp,
            scheme=checked.scheme,
            challenge=challenge,
            body=bytes(body),
        )

    # --- the schemes -------------------------------------------------------------------------------

    def _standard_names(self, found: dict[str, str]) -> tuple[str, str, str] | None:
        """The Standard header names to read, or None for the seed style."""
        if self.scheme == "seed":
            return None
        if any(name in found for name in _STANDARD_HEADERS):
            return _STANDARD_HEADERS
        if any(name in found for name in _SVIX_HEADERS):
            return _SVIX_HEADERS
        if self.scheme == "standard":
            return _STANDARD_HEADERS
        seed_headers = (f"{self.prefix}-signature".lower(), f"{self.prefix}-timestamp".lower())
        if any(name in found for name in seed_headers):
            return None
        raise MissingHeader(
            STANDARD_SIGNATURE_HEADER,
            f"missing header {STANDARD_SIGNATURE_HEADER!r} (Standard Webhooks) "
            f"or {self.prefix + '-Signature'!r}",
        )

    def _check_standard(
        self, body: bytes, found: dict[str, str], names: tuple[str, str, str], now: int | None
    ) -> SignatureCheck:
        id_header, timestamp_header, signature_header = names
        message_id = _require(found, id_header)
        stamp = _require(found, timestamp_header)
        signatures = _require(found, signature_header)
        timestamp = _checked_timestamp(timestamp_header, stamp, self.tolerance, now)
        v1, v1a = _standard_candidates(signatures)
        signed_prefix = f"{message_id}.{stamp}.".encode()
        keys = self._keys
        if v1 and _hmac_match(v1, keys.standard, signed_prefix, body):
            return SignatureCheck("v1", timestamp, message_id, found)
        if v1a and keys.ed25519 and _ed25519_match(v1a, keys.ed25519, signed_prefix + body):
            return SignatureCheck("v1a", timestamp, message_id, found)
        raise NoMatchingSignature(signature_header, _no_match_detail(keys, v1, v1a))

    def _check_seed(self, body: bytes, found: dict[str, str], now: int | None) -> SignatureCheck:
        timestamp_header = f"{self.prefix}-Timestamp"
        signature_header = f"{self.prefix}-Signature"
        stamp = _require(found, timestamp_header)
        signatures = _require(found, signature_header)
        timestamp = _checked_timestamp(timestamp_header, stamp, self.tolerance, now)
        candidates = _seed_candidates(signatures, self.hex_form)
        if candidates and _hmac_match(candidates, self._keys.seed, f"{stamp}.".encode(), body):
            return SignatureCheck("seed", timestamp, None, found)
        detail = None
        if not candidates:
            form = {"sha256=": "sha256=<hex>", "hex": "hex"}.get(self.hex_form or "", "sha256=<hex> or hex")
            detail = f"the header holds no well-formed {form} signature"
        elif not self._keys.seed:
            detail = "no HMAC secret was given"
        raise NoMatchingSignature(signature_header, detail)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def verify(
    body: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    secrets: Secret | Iterable[Secret],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    scheme: Scheme = "auto",
    prefix: str = DEFAULT_PREFIX,
    hex_form: Literal["sha256=", "hex"] | None = None,
    now: int | None = None,
) -> VerifiedWebhook:
    """Verify one webhook request and return what it carries; raise a ``WebhookVerificationError``
    (``MissingHeader``, ``MalformedHeader``, ``TimestampExpired``, ``NoMatchingSignature``,
    ``MalformedPayload``) unless it is authentic, fresh and JSON. ``body`` is the raw body as received.
    See ``Verifier`` for the options; a receiver that verifies many requests builds one ``Verifier``."""
    verifier = Verifier(secrets, tolerance=tolerance, scheme=scheme, prefix=prefix, hex_form=hex_form)
    return verifier.verify(body, headers, now=now)
