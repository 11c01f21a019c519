"""The Python SDK of hookline's REST API (``/v1``): ``hookline.Client`` and ``hookline.AsyncClient``.

Depends on httpx alone: it imports nothing of the server (FastAPI, SQLAlchemy, ``hookline.api``), so
a program that only talks to a hookline service stays light.

    import hookline

    with hookline.Client("http://127.0.0.1:8000", "hk_...") as client:
        hook = client.webhooks.create("https://app.example.com/hook", events=["message.*"])
        client.events.post("message.received", {...})

Layout: ``routes`` (every route the SDK covers, and the request of one call), ``transport`` (sending,
timeouts, retries, the envelope), ``errors``, ``models``, ``pagination``, ``resources/`` (one module
per area of the API), ``client``.
"""

from hookline.sdk.client import AsyncClient, Client
from hookline.sdk.errors import (
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    HooklineConnectionError,
    HooklineError,
    HooklineTimeout,
    InvalidResponse,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from hookline.sdk.pagination import AsyncPager, Page, Pager
from hookline.sdk.resources._base import UNSET

__all__ = [
    "UNSET",
    "AsyncClient",
    "AsyncPager",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "HooklineConnectionError",
    "HooklineError",
    "HooklineTimeout",
    "InvalidResponse",
    "MethodNotAllowed",
    "NotFound",
    "Page",
    "Pager",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
]
