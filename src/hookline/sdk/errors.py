"""Exceptions of the SDK. Every one is a :class:`HooklineError`; an answer of the API that is an error
raises the subclass for its status, carrying the envelope's ``error`` (the specific reason, e.g.
``URL must be HTTPS``), ``message`` (the status's reason phrase) and ``status_code``.

    try:
        client.webhooks.create(url="http://example.com")
    except hookline.BadRequest as exc:
        print(exc.status_code, exc.error)   # 400 URL must be HTTPS
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class HooklineError(Exception):
    """Base of every SDK exception.

    ``status_code``: the HTTP status (None when no answer came: a connection error or a timeout);
    ``message``: the envelope's ``message`` ("Bad request"); ``error``: the envelope's ``error``, what
    went wrong; ``body``: the decoded answer (or its text, if it was not JSON); ``retry_after``: seconds
    the server asked to wait (429, 503), if it said."""

    def __init__(
        self,
        error: str,
        *,
        status_code: int | None = None,
        message: str = "",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code
        self.message = message
        self.body = body
        self.headers: Mapping[str, str] = dict(headers or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.status_code is None:
            return self.error
        return f"{self.status_code} {self.message or 'Error'}: {self.error}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, error={self.error!r})"


class HooklineConnectionError(HooklineError):
    """No answer: the server could not be reached, or the connection broke."""


class HooklineTimeout(HooklineConnectionError):
    """No answer within the client's timeout."""


class InvalidResponse(HooklineError):
    """An answer that is not hookline's envelope (a proxy's error page, a wrong URL)."""


class ClientError(HooklineError):
    """A 4xx answer: the request must change before it can succeed (429 aside)."""


class BadRequest(ClientError):
    """400: the request is malformed or breaks a rule; ``error`` says which."""


class Unauthorized(ClientError):
    """401: no key, or a key that is invalid or revoked."""


class Forbidden(ClientError):
    """403: the key may not do this (admin-only, or another tenant)."""


class NotFound(ClientError):
    """404: no such resource (for this tenant)."""


class MethodNotAllowed(ClientError):
    """405."""


class Conflict(ClientError):
    """409: it already exists, or the resource is in a state that forbids this (a test delivery)."""


class PayloadTooLarge(ClientError):
    """413: the body is larger than the server's HOOKLINE_MAX_BODY_BYTES."""


class UnsupportedMediaType(ClientError):
    """415."""


class RateLimited(ClientError):
    """429: too many requests; ``retry_after`` says how long to wait, when the server said."""


class ServerError(HooklineError):
    """A 5xx answer."""


class ServiceUnavailable(ServerError):
    """503: the server (its database) is unavailable for now; ``retry_after`` as sent."""


_BY_STATUS: dict[int, type[HooklineError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_class(status_code: int) -> type[HooklineError]:
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if 400 <= status_code < 500:
        return ClientError
    if status_code >= 500:
        return ServerError
    return InvalidResponse


def error_for(
    status_code: int, body: Any, headers: Mapping[str, str], retry_after: float | None
) -> HooklineError:
    """The exception for an answer that is not a success envelope."""
    if isinstance(body, dict) and body.get("status") is False and isinstance(body.get("error"), str):
        error, message = body["error"], str(body.get("message", ""))
        cls = error_class(status_code)
    else:
        text = body if isinstance(body, str) else repr(body)
        error = f"unexpected answer (HTTP {status_code}): {text[:200]}"
        message = ""
        cls = error_class(status_code) if status_code >= 400 else InvalidResponse
    return cls(
        error,
        status_code=status_code,
        message=message,
        body=body,
        headers=headers,
        retry_after=retry_after,
    )
