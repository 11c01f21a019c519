"""Identifiers: a short prefix naming the kind, then a time-ordered random part (ULID layout)."""

from __future__ import annotations

import base64
import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# RFC 4648 base32 digits -> Crockford's: 10 random bytes become the last 16 characters in one call.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
_stamp: tuple[int, str] = (-1, "")  # the last millisecond seen and its 10 characters


def _base32(value: int, length: int) -> str:
    return "".join([_CROCKFORD[(value >> shift) & 31] for shift in range(5 * (length - 1), -1, -5)])


def new_id(prefix: str) -> str:
    """``new_id("evt")`` -> ``"evt_01J9Z3..."``: 48 bits of milliseconds, 80 random bits, sortable by time."""
    global _stamp
    millis = time.time_ns() // 1_000_000
    stamp = _stamp
    if stamp[0] != millis:
        stamp = _stamp = (millis, _base32(millis, 10))
    return f"{prefix}_{stamp[1]}{base64.b32encode(os.urandom(10)).translate(_TO_CROCKFORD).decode()}"
