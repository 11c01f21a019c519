"""``hookline.Client`` and ``hookline.AsyncClient``: one attribute per area of the API.

    client = hookline.Client("https://hooks.example.com", "hk_...")
    hook = client.webhooks.create("https://app.example.com/hook", events=["message.*"])
    client.events.post("message.received", {"message_id": "m1", ...})
    for delivery in client.deliveries.list(hook.id, status="failed"):
        client.deliveries.retry(delivery.id)

With the admin key, calls that act on a tenant need its id: give ``tenant_id=`` to the client (the
default of every call) or to a call (which wins). ``with_options`` makes a client that shares the
connection pool with other settings (another key, tenant, timeout or retry budget).
"""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Any, Self

import httpx

from hookline.sdk.models import EgressIps, Health
from hookline.sdk.resources._base import UNSET
from hookline.sdk.resources.audit_log import AsyncAuditLog, AuditLog
from hookline.sdk.resources.circuit_breakers import AsyncCircuitBreakers, CircuitBreakers
from hookline.sdk.resources.deliveries import AsyncDeliveries, Deliveries
from hookline.sdk.resources.event_types import AsyncEventTypes, EventTypes
from hookline.sdk.resources.events import AsyncEvents, Events
from hookline.sdk.resources.stats import AsyncStatsResource, StatsResource
from hookline.sdk.resources.tenants import AsyncTenants, Tenants
from hookline.sdk.resources.webhooks import AsyncWebhooks, Webhooks
from hookline.sdk.routes import Call, Route
from hookline.sdk.transport import AsyncTransport, Options, SyncTransport

HEALTH = Route("GET", "/health", "health")
EGRESS_IPS = Route("GET", "/v1/egress-ips", "egress_ips")
DEFAULT_URL = "http://127.0.0.1:8000"


def _options(
    base_url: str,
    api_key: str | None,
    tenant_id: str | None,
    timeout: float | None,
    max_retries: int,
    backoff_factor: float,
    max_retry_wait: float,
    generate_event_ids: bool,
) -> Options:
    return Options(
        base_url=base_url,
        api_key=api_key,
        tenant_id=tenant_id,
        timeout=timeout,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        max_retry_wait=max_retry_wait,
        generate_event_ids=generate_event_ids,
    )


def _changed(options: Options, **changes: Any) -> Options:
    return dataclasses.replace(options, **{k: v for k, v in changes.items() if v is not UNSET})


def _raw_call(method: str, path: str, params: Any, json: Any, retry: bool | None) -> Call[Any]:
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', not {path!r}")
    route = Route(method.upper(), path, "request", retry=retry, register=False)
    return route.call(lambda data: data, params=params, json=json)


class Client:
    """The synchronous client (httpx). Arguments:

    ``base_url`` where hookline listens; ``api_key`` the admin key or a tenant's key; ``tenant_id`` the
    tenant calls act on by default (admin key); ``timeout`` seconds for each request (None: no limit);
    ``max_retries`` extra attempts of a safe call after a 429/502/503/504 or a broken connection, waiting
    ``backoff_factor`` x 2^n seconds (jittered) or the server's Retry-After, unless that is longer than
    ``max_retry_wait``; ``generate_event_ids`` gives posted events an id when they have none, so that
    their retries are safe (see ``hookline.sdk.resources.events``); ``http_client`` an httpx client to
    send with (its transport and pool; the SDK sets URL, headers and timeout per request), which the
    caller then closes.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        tenant_id: str | None = None,
        timeout: float | None = 30.0,
        max_retries: int = 2,
        backoff_factor: float = 0.5,
        max_retry_wait: float = 60.0,
        generate_event_ids: bool = True,
        http_client: httpx.Client | None = None,
    ) -> None:
        options = _options(
            base_url, api_key, tenant_id, timeout, max_retries, backoff_factor, max_retry_wait,
            generate_event_ids,
        )  # fmt: skip
        self._owns_http = http_client is None
        self._setup(options, http_client or httpx.Client(follow_redirects=False, trust_env=True))

    def _setup(self, options: Options, http: httpx.Client) -> None:
        self.options = options
        self._http = http
        self._transport = SyncTransport(options, http)
        run = self._transport.run
        self.tenants = Tenants(options, run)
        self.webhooks = Webhooks(options, run)
        self.circuit_breakers = CircuitBreakers(options, run)
        self.deliveries = Deliveries(options, run)
        self.events = Events(options, run)
        self.event_types = EventTypes(options, run)
        self.stats = StatsResource(options, run)
        self.audit_log = AuditLog(options, run)

    def with_options(
        self,
        *,
        api_key: str | None = UNSET,
        tenant_id: str | None = UNSET,
        timeout: float | None = UNSET,
        max_retries: int = UNSET,
    ) -> Client:
        """A client with these settings changed, sharing this one's connections (close this one)."""
        changed = _changed(
            self.options, api_key=api_key, tenant_id=tenant_id, timeout=timeout, max_retries=max_retries
        )
        other = object.__new__(Client)
        other._owns_http = False
        other._setup(changed, self._http)
        return other

    def health(self) -> Health:
        """Liveness and database check (no key needed)."""
        return self._transport.run(HEALTH.call(Health.from_dict))

    def egress_ips(self) -> EgressIps:
        """The addresses deliveries come from, for receivers' allow-lists (any key)."""
        return self._transport.run(EGRESS_IPS.call(EgressIps.from_dict))

    def request(
        self, method: str, path: str, *, params: Any = None, json: Any = None, retry: bool | None = None
    ) -> Any:
        """Any route, by hand: ``client.request("GET", "/v1/webhooks")`` answers the envelope's
        ``data`` (or raises, as every call). ``retry`` defaults to the method's idempotency."""
        return self._transport.run(_raw_call(method, path, params, json, retry))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"hookline.Client({self.options.base_url!r}, tenant_id={self.options.tenant_id!r})"


class AsyncClient:
    """The asyncio client: the same arguments and resources as :class:`Client`, with coroutines
    (``await client.webhooks.get(1)``) and async pagers (``async for w in client.webhooks.list()``)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        tenant_id: str | None = None,
        timeout: float | None = 30.0,
        max_retries: int = 2,
        backoff_factor: float = 0.5,
        max_retry_wait: float = 60.0,
        generate_event_ids: bool = True,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        options = _options(
            base_url, api_key, tenant_id, timeout, max_retries, backoff_factor, max_retry_wait,
            generate_event_ids,
        )  # fmt: skip
        self._owns_http = http_client is None
        self._setup(options, http_client or httpx.AsyncClient(follow_redirects=False, trust_env=True))

    def _setup(self, options: Options, http: httpx.AsyncClient) -> None:
        self.options = options
        self._http = http
        self._transport = AsyncTransport(options, http)
        run = self._transport.run
        self.tenants = AsyncTenants(options, run)
        self.webhooks = AsyncWebhooks(options, run)
        self.circuit_breakers = AsyncCircuitBreakers(options, run)
        self.deliveries = AsyncDeliveries(options, run)
        self.events = AsyncEvents(options, run)
        self.event_types = AsyncEventTypes(options, run)
        self.stats = AsyncStatsResource(options, run)
        self.audit_log = AsyncAuditLog(options, run)

    def with_options(
        self,
        *,
        api_key: str | None = UNSET,
        tenant_id: str | None = UNSET,
        timeout: float | None = UNSET,
        max_retries: int = UNSET,
    ) -> AsyncClient:
        changed = _changed(
            self.options, api_key=api_key, tenant_id=tenant_id, timeout=timeout, max_retries=max_retries
        )
        other = object.__new__(AsyncClient)
        other._owns_http = False
        other._setup(changed, self._http)
        return other

    async def health(self) -> Health:
        return await self._transport.run(HEALTH.call(Health.from_dict))

    async def egress_ips(self) -> EgressIps:
        return await self._transport.run(EGRESS_IPS.call(EgressIps.from_dict))

    async def request(
        self, method: str, path: str, *, params: Any = None, json: Any = None, retry: bool | None = None
    ) -> Any:
        return await self._transport.run(_raw_call(method, path, params, json, retry))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"hookline.AsyncClient({self.options.base_url!r}, tenant_id={self.options.tenant_id!r})"
