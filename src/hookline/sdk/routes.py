"""The API's routes as the SDK knows them, and the request one SDK call makes.

Every route the SDK calls is declared once here as a :class:`Route` (method, path template, the SDK
method that covers it, whether retrying it is safe). ``ROUTES`` is the SDK's table of coverage:
``tests/test_sdk_coverage.py`` compares it with the server's OpenAPI document, so a route added to the
API without an SDK method fails the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, ready for a transport: what to send, whether a retry is safe, how to read the
    envelope's ``data``."""

    route: Route
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry: bool = False


@dataclass(frozen=True)
class Route:
    """``Route("GET", "/v1/webhooks/{webhook_id}", "webhooks.get")``: registered in ``ROUTES``.

    ``retry``: whether the transport may send the request again after a 429/502/503/504 or a broken
    connection. By default only for idempotent methods; a route whose effect is not idempotent despite
    its method (``GET /v1/webhooks/test`` sends test events) says ``retry=False``."""

    method: str
    path: str
    sdk: str  # the SDK method that covers it, as "<resource>.<method>" on Client and AsyncClient
    retry: bool | None = None
    register: bool = field(default=True, repr=False, compare=False)  # False: ``Client.request``'s

    def __post_init__(self) -> None:
        if not self.register:
            return
        key = (self.method, self.path)
        if key in ROUTES:
            raise ValueError(f"route {self.method} {self.path} is declared twice")
        ROUTES[key] = self

    @property
    def retryable(self) -> bool:
        return self.method in IDEMPOTENT_METHODS if self.retry is None else self.retry

    def call(
        self,
        parse: Callable[[Any], T],
        *,
        path: Mapping[str, str | int] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
    ) -> Call[T]:
        """The request for this route: path parameters quoted (an id holding ``/`` or ``?`` stays one
        segment), query parameters that are None left out, ``retry`` overriding the route's default
        (``POST /v1/events`` is safe to retry once it carries an id or an Idempotency-Key)."""
        url = self.path.format(**{k: quote(str(v), safe="") for k, v in (path or {}).items()})
        return Call(
            route=self,
            path=url,
            parse=parse,
            params={k: _query_value(v) for k, v in (params or {}).items() if v is not None},
            json=json,
            headers=dict(headers or {}),
            retry=self.retryable if retry is None else retry,
        )


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):  # datetime: ISO 8601, as the API's time filters want
        return value.isoformat()
    return value


ROUTES: dict[tuple[str, str], Route] = {}
