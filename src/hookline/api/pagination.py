"""Cursor pagination: ``?limit=50&cursor=...``; pages answer ``{"items": [...], "next_cursor": ...}``."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator

from hookline.api.envelope import bad_request

Limit = Annotated[int, Query(ge=1, le=250, description="page size")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        raise bad_request("query parameter 'cursor' is not a cursor this API returned") from None
    if not value.isprintable():  # e.g. a NUL byte, which PostgreSQL rejects in text
        raise bad_request("query parameter 'cursor' is not a cursor this API returned")
    return value


def decode_int_cursor(cursor: str | None) -> int | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:  # must fit a BIGINT
        raise bad_request("query parameter 'cursor' is not a cursor this API returned")
    return int(value)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_only(value: Any) -> Any:
    """pydantic reads a number (or a numeric string) as a Unix time; hookline's time filters are
    ISO 8601 only, as the OpenAPI document says (``until=0.5`` is a mistake, not 1970)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError(
            "time filters must be ISO 8601 date-times with a timezone (e.g. 2025-01-01T00:00:00Z)"
        )
    return value


Moment = Annotated[datetime, BeforeValidator(_iso_only)]


def require_timezone(name: str, moment: datetime | None) -> datetime | None:
    """Time filters must say which time they mean: a naive datetime is a 400, never a guess."""
    if moment is not None and moment.tzinfo is None:
        raise bad_request(f"'{name}' needs a timezone (e.g. 2025-01-01T00:00:00Z)")
    return moment


def page(items: list[Any], limit: int, last_key: str | int | None) -> dict[str, Any]:
    """``items`` was fetched with ``limit + 1`` rows to learn whether another page exists."""
    more = len(items) > limit
    return {
        "items": items[:limit],
        "next_cursor": encode_cursor(last_key) if more and last_key is not None else None,
    }
