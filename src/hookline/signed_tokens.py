"""Signed, expiring tokens the dashboard hands out: portal links' tokens and session cookies.

Both are itsdangerous ``URLSafeTimedSerializer`` values (HMAC-SHA256 over a JSON payload and a
timestamp), signed with keys derived from ``HOOKLINE_SECRET_KEY`` (``Keyring.derived``: one per purpose,
never the sealing keys themselves), so every API process verifies what another signed, and rotating the
secret key (``"new,old"``) keeps the old key's tokens valid until the old key is removed. Without a
secret key (a test's bare store) the keys derive from the admin key's hash instead. Signed, not
encrypted: a token says nothing secret (ids, capabilities, a CSRF token that is only good with it).

A token that is not one, was altered, or was signed by another key is ``BadToken``; one older than its
``max_age``, ``ExpiredToken``. The payloads' own rules (a portal link's row, a session's expiry) are
checked by their readers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from hookline.sealing import Keyring

PORTAL_LINK = "hookline portal link"
SESSION = "hookline dashboard session"


class BadToken(ValueError):
    """Not a token this service signed (or altered since)."""


class ExpiredToken(BadToken):
    """Signed here, but older than it may be."""


class Signer:
    """Signs and reads one kind of token (``purpose``)."""

    def __init__(self, keyring: Keyring, fallback: bytes, purpose: str) -> None:
        keys = keyring.derived(purpose) or [hashlib.sha256(fallback + purpose.encode()).digest()]
        # itsdangerous signs with the last key and accepts any: the sealing key's derivation goes last.
        self._serializer = URLSafeTimedSerializer(list(reversed(keys)), salt=purpose)

    def sign(self, payload: dict[str, Any]) -> str:
        return self._serializer.dumps(payload)

    def read(self, token: str, max_age: int) -> dict[str, Any]:
        """The payload of ``token`` if this service signed it at most ``max_age`` seconds ago."""
        if not token or len(token) > 4096:
            raise BadToken("not a token")
        try:
            payload = self._serializer.loads(token, max_age=max_age)
        except SignatureExpired:
            raise ExpiredToken("expired") from None
        except BadData:
            raise BadToken("not a token this service signed") from None
        if not isinstance(payload, dict):
            raise BadToken("not a token this service signed")
        return payload
