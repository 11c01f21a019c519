"""Sealing credentials at rest: a text value encrypted with AES-256-GCM under a key of the keyring that
``HOOKLINE_SECRET_KEY`` holds, so that a copy of the database alone reveals none of them.

A sealed value is ASCII text that names its format and the key that sealed it::

    sealed:v1:<key id>:<base64url of a random 12-byte nonce, the ciphertext and its 16-byte tag>

* The key id is 8 hex digits derived from the key (HMAC-SHA256 of the key over a fixed label): a reader
  finds the key without trying each, and an operator sees which key a value still needs. It reveals
  nothing usable about the key.
* The associated data is the value's header (format and key id) and its *purpose*, a text naming what
  the value is (``endpoints.secret`` and the tenant it belongs to, say): a sealed value copied into
  another column, or another tenant's row, does not open. Changing any byte of a sealed value or of its
  purpose makes ``open`` fail with ``SealError``.
* A keyring holds one or more keys (``HOOKLINE_SECRET_KEY=new,old``): the first seals, every one opens,
  so the key can be rotated while every process keeps working (``hookline secrets rotate-key``
  re-seals everything with the first).
* A key is 32 random bytes written in base64url (43 characters, padding optional);
  ``generate_key`` (``hookline secrets generate-key``) makes one.

Opening costs microseconds, but the worker reads an endpoint's secret with every delivery: a keyring
remembers what it opened, by sealed text and purpose (bounded), so a busy endpoint costs one opening.
A value that does not start with ``sealed:`` is plaintext written before sealing existed; ``read``
passes it through (``open`` does not) until ``hookline migrate`` seals it.

No key, plaintext or sealed payload ever appears in an exception message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from secrets import token_bytes

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["KEY_BYTES", "KeyFormatError", "Keyring", "SealError", "generate_key", "is_sealed", "key_id_of"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SEALED = "sealed:"  # every sealed value starts so, whatever its format version
PREFIX = SEALED + "v1:"
_ID_LABEL = b"hookline secret key id"
_AAD_LABEL = b"hookline sealed value\x00"
CACHE_SIZE = 10_000
GENERATE_HINT = "generate one with `hookline secrets generate-key`"


class SealError(ValueError):
    """A sealed value cannot be opened (or a value cannot be sealed). The message says why, naming at
    most the key id; ``key_id`` is that id when the value names one."""

    def __init__(self, message: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


class KeyFormatError(ValueError):
    """The text given as keys is not a list of keys; the message says which one, never its value."""


def generate_key() -> str:
    """A new key: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(token_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED)


def key_id_of(value: str) -> str | None:
    """The id of the key that sealed ``value`` (None for plaintext, or a format this code does not know)."""
    if not value.startswith(PREFIX):
        return None
    found, colon, _ = value[len(PREFIX) :].partition(":")
    return found if colon else None


def _key_id(key: bytes) -> str:
    return hmac.new(key, _ID_LABEL, hashlib.sha256).hexdigest()[:8]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict base64url (padding optional): None for anything else, including a non-canonical spelling
    (unused low bits set in the last character), so that no two texts decode to the same bytes."""
    if not text.isascii():
        return None
    try:
        raw = base64.b64decode(
            text.translate(str.maketrans("-_", "+/")) + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == text.rstrip("=") else None


def _associated_data(key_id: str, purpose: str) -> bytes:
    return _AAD_LABEL + f"{PREFIX}{key_id}:".encode("ascii") + purpose.encode("utf-8", "surrogatepass")


class Keyring:
    """The keys that seal and open values: the first seals, all open. Built from ``HOOKLINE_SECRET_KEY``
    with ``parse``; ``Keyring()`` holds no key (it reads plaintext and refuses the rest)."""

    def __init__(self, keys: Iterable[bytes] = (), *, cache_size: int = CACHE_SIZE) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        self._raw: dict[str, bytes] = {}
        for position, key in enumerate(keys, start=1):
            if len(key) != KEY_BYTES:
                raise KeyFormatError(f"key {position} is not {KEY_BYTES} bytes")
            kid = _key_id(key)
            if kid in self._ciphers:
                raise KeyFormatError(f"key {position} is listed twice (id {kid})")
            self._ciphers[kid] = AESGCM(key)
            self._raw[kid] = key
        self._opened: dict[tuple[str, str], str] = {}
        self._cache_size = cache_size

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """``"key1,key2"`` (base64url of 32 bytes each; spaces around commas ignored) -> a keyring
        sealing with key1."""
        parts = [part.strip() for part in text.split(",")]
        if not any(parts):
            raise KeyFormatError(f"holds no key ({GENERATE_HINT})")
        keys = []
        for position, part in enumerate(parts, start=1):
            raw = _b64decode(part) if part else None
            if raw is None or len(raw) != KEY_BYTES:
                raise KeyFormatError(
                    f"key {position} of {len(parts)} is not {KEY_BYTES} bytes in base64url ({GENERATE_HINT})"
                )
            keys.append(raw)
        return cls(keys)

    @property
    def ids(self) -> tuple[str, ...]:
        """The keys' ids, the sealing key's first."""
        return tuple(self._ciphers)

    @property
    def primary(self) -> str | None:
        """The id of the key that seals (None: the keyring is empty)."""
        return next(iter(self._ciphers), None)

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self._ciphers)})"

    def derived(self, purpose: str) -> list[bytes]:
        """A 32-byte key for ``purpose`` derived from each key (HKDF-SHA256), the sealing key's first:
        what signs dashboard sessions and portal links, never the sealing keys themselves."""
        return [
            HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(raw)
            for raw in self._raw.values()
        ]

    def seal(self, text: str, purpose: str) -> str:
        """``text`` sealed with the first key, for ``purpose`` (what the value is: it must be given
        again to open it)."""
        kid = self.primary
        if kid is None:
            raise SealError("no secret key is configured (HOOKLINE_SECRET_KEY)")
        nonce = token_bytes(NONCE_BYTES)
        data = self._ciphers[kid].encrypt(
            nonce, text.encode("utf-8", "surrogatepass"), _associated_data(kid, purpose)
        )
        return f"{PREFIX}{kid}:{_b64encode(nonce + data)}"

    def open(self, sealed: str, purpose: str) -> str:
        """The text ``sealed`` holds, if it was sealed for ``purpose`` by a key of this keyring and not
        altered since; else ``SealError``."""
        cached = self._opened.get((sealed, purpose))
        if cached is not None:
            return cached
        if not sealed.startswith(SEALED):
            raise SealError("the value is not sealed")
        if not sealed.startswith(PREFIX):
            raise SealError("the value is sealed in a format this version does not know")
        kid, colon, payload = sealed[len(PREFIX) :].partition(":")
        if not colon:
            raise SealError("the sealed value is malformed")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealError(
                f"the value was sealed with key {kid!r}, which HOOKLINE_SECRET_KEY does not hold"
                if len(kid) == 8 and kid.isalnum()
                else "the sealed value is malformed",
                kid,
            )
        raw = _b64decode(payload)
        if raw is None or len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SealError("the sealed value is malformed", kid)
        try:
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(kid, purpose))
        except InvalidTag:
            raise SealError(
                f"the sealed value does not open with key {kid!r}: it was altered, or sealed for "
                "another place",
                kid,
            ) from None
        text = plain.decode("utf-8", "surrogatepass")
        if len(self._opened) >= self._cache_size:
            self._opened.clear()
        self._opened[(sealed, purpose)] = text
        return text

    def read(self, stored: str, purpose: str) -> str:
        """A stored value as text: opened if sealed, as it is if it is plaintext from before sealing."""
        return self.open(stored, purpose) if stored.startswith(SEALED) else stored

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` is sealed with the first key (nothing to re-seal)."""
        kid = self.primary
        return kid is not None and stored.startswith(f"{PREFIX}{kid}:")
