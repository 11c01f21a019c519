"""The response envelope of every API answer (seed 002):

``{"status": true, "code": 201, "message": "Webhook created successfully", "data": {...}}``
``{"status": false, "code": 400, "message": "Bad request", "error": "URL must be HTTPS"}``
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

REASONS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    414: "URI too long",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ApiError(Exception):
    """Raised anywhere in a request; rendered as an error envelope with this status and text."""

    def __init__(self, code: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.code = code
        self.error = error
        self.headers = headers


def bad_request(error: str) -> ApiError:
    return ApiError(400, error)


def not_found(error: str) -> ApiError:
    return ApiError(404, error)


class EnvelopeResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)


def ok(data: Any, message: str, code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return EnvelopeResponse(
        {"status": True, "code": code, "message": message, "data": data}, status_code=code, headers=headers
    )


def error(code: int, text: str, headers: dict[str, str] | None = None) -> Response:
    body = {"status": False, "code": code, "message": REASONS.get(code, "Error"), "error": text}
    return EnvelopeResponse(body, status_code=code, headers=headers)
