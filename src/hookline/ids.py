"""Identifiers: a short prefix naming the kind, then a time-ordered random part (ULID layout)."""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    return "".join([_CROCKFORD[(value >> shift) & 31] for shift in range(5 * (length - 1), -1, -5)])


def new_id(prefix: str) -> str:
    """``new_id("evt")`` -> ``"evt_01J9Z3..."``: 48 bits of milliseconds, 80 random bits, sortable by time."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_base32((millis << 80) | secrets.randbits(80), 26)}"
