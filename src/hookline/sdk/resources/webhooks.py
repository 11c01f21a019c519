"""``client.webhooks``: a tenant's endpoints, their secrets and public keys, verification, test sends
and the single-webhook form (``/v1/webhooks...``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from hookline.sdk.models import (
    Deleted,
    TestSendOutcome,
    TestSendReport,
    VerifyOutcome,
    Webhook,
    WebhookPublicKey,
    WebhookSecret,
)
from hookline.sdk.pagination import AsyncPager, Page, PageCall, Pager, page_parser
from hookline.sdk.resources._base import UNSET, AsyncResource, Ops, SyncResource, body
from hookline.sdk.routes import Call, Route

CREATE = Route("POST", "/v1/webhooks", "webhooks.create")
LIST = Route("GET", "/v1/webhooks", "webhooks.list")
GET = Route("GET", "/v1/webhooks/{webhook_id}", "webhooks.get")
UPDATE = Route("PATCH", "/v1/webhooks/{webhook_id}", "webhooks.update")
DELETE = Route("DELETE", "/v1/webhooks/{webhook_id}", "webhooks.delete")
SECRET = Route("GET", "/v1/webhooks/{webhook_id}/secret", "webhooks.get_secret")
ROTATE = Route("POST", "/v1/webhooks/{webhook_id}/secret/rotate", "webhooks.rotate_secret")
PUBLIC_KEY = Route("GET", "/v1/webhooks/{webhook_id}/public-key", "webhooks.get_public_key")
VERIFY = Route("POST", "/v1/webhooks/{webhook_id}/verify", "webhooks.verify")
TEST = Route("POST", "/v1/webhooks/{webhook_id}/test", "webhooks.test")
# GET sends test events: not idempotent, never retried.
TEST_ALL_GET = Route("GET", "/v1/webhooks/test", "webhooks.test_all", retry=False)
TEST_ALL_POST = Route("POST", "/v1/webhooks/test", "webhooks.test_all")
SET_DEFAULT = Route("POST", "/v1/webhooks/set", "webhooks.set_default")

Id = int | str
T = TypeVar("T")


class _Ops(Ops):
    def _create(self, url: str, tenant_id: str | None, fields: dict[str, Any]) -> Call[Webhook]:
        return CREATE.call(Webhook.from_dict, json=body(url=url, tenant_id=self._tenant(tenant_id), **fields))

    def _page(self, limit: int | None, tenant_id: str | None) -> PageCall[Webhook]:
        tenant = self._tenant(tenant_id)

        def page_call(cursor: str | None) -> Call[Page[Webhook]]:
            params = {"limit": limit, "cursor": cursor, "tenant_id": tenant}
            return LIST.call(page_parser(Webhook.from_dict), params=params)

        return page_call

    def _one(
        self, route: Route, parse: Callable[[Any], T], webhook_id: Id, tenant_id: str | None, **kw: Any
    ) -> Call[T]:
        params = {**kw.pop("params", {}), "tenant_id": self._tenant(tenant_id)}
        return route.call(parse, path={"webhook_id": webhook_id}, params=params, **kw)

    def _test_all(
        self, event: str | None, data: Mapping[str, Any] | None, tenant_id: str | None
    ) -> Call[TestSendReport]:
        params = {"tenant_id": self._tenant(tenant_id)}
        if data is None:
            return TEST_ALL_GET.call(TestSendReport.from_dict, params={**params, "event": event})
        return TEST_ALL_POST.call(
            TestSendReport.from_dict, params=params, json=body(event=event, data=dict(data))
        )

    def _set_default(self, url: str, events: Sequence[str] | None, tenant_id: str | None) -> Call[Webhook]:
        fields = body(webhookUrl=url, events=list(events) if events is not None else None)
        return SET_DEFAULT.call(Webhook.from_dict, json={**fields, **body(tenant_id=self._tenant(tenant_id))})


def _endpoint_fields(**fields: Any) -> dict[str, Any]:
    """Sequences as lists and mappings as dicts, for the JSON body (UNSET and None pass as they are)."""
    for name, value in fields.items():
        if isinstance(value, Mapping):
            fields[name] = dict(value)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            fields[name] = list(value)
    return fields


class Webhooks(SyncResource, _Ops):
    def create(
        self,
        url: str,
        *,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        description: str | None = None,
        channels: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        secret_headers: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_seconds: float | None = None,
        retry_schedule: str | Sequence[float] | None = None,
        max_in_flight: int | None = None,
        rate_limit: float | None = None,
        circuit_breaker: Mapping[str, float] | None = None,
        verify: bool | None = None,
        signing: str | None = None,
        tenant_id: str | None = None,
    ) -> Webhook:
        """Register an endpoint; the answer holds its signing ``secret`` (also at ``get_secret``).
        ``events`` defaults to every type but the operational ones (``["*"]``). ``secret_headers`` are
        sent like ``headers`` but kept encrypted and never shown again. ``signing="ed25519"`` also signs
        with an ed25519 key pair (v1a); the answer holds its ``public_key``."""
        fields = _endpoint_fields(
            events=events, secret=secret, description=description, channels=channels, headers=headers,
            secret_headers=secret_headers, metadata=metadata, timeout_seconds=timeout_seconds,
            retry_schedule=retry_schedule, max_in_flight=max_in_flight, rate_limit=rate_limit,
            circuit_breaker=circuit_breaker, verify=verify, signing=signing,
        )  # fmt: skip
        return self._run(self._create(url, tenant_id, fields))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, tenant_id: str | None = None
    ) -> Pager[Webhook]:
        """Every webhook of the tenant, oldest first, fetched ``limit`` (1-250) per request."""
        return Pager(self._run, self._page(limit, tenant_id), cursor)

    def get(self, webhook_id: Id, *, tenant_id: str | None = None) -> Webhook:
        return self._run(self._one(GET, Webhook.from_dict, webhook_id, tenant_id))

    def update(
        self,
        webhook_id: Id,
        *,
        url: str = UNSET,
        active: bool = UNSET,
        discard_held: bool = UNSET,
        events: Sequence[str] | None = UNSET,
        description: str = UNSET,
        channels: Sequence[str] | None = UNSET,
        headers: Mapping[str, str] = UNSET,
        secret_headers: Mapping[str, str] = UNSET,
        metadata: Mapping[str, Any] = UNSET,
        timeout_seconds: float | None = UNSET,
        retry_schedule: str | Sequence[float] | None = UNSET,
        max_in_flight: int | None = UNSET,
        rate_limit: float | None = UNSET,
        circuit_breaker: Mapping[str, float] | None = UNSET,
        signing: str = UNSET,
        tenant_id: str | None = None,
    ) -> Webhook:
        """Change the fields given; None resets an option to the service's default (``channels=None``:
        every channel). ``active=True`` re-enables the endpoint and releases its held deliveries
        (``discard_held=True``: fails them instead). ``signing="ed25519"`` gives it an ed25519 key pair
        (v1a signatures), ``signing="hmac"`` takes it away."""
        fields = _endpoint_fields(
            url=url, active=active, discard_held=discard_held, events=events, description=description,
            channels=channels, headers=headers, secret_headers=secret_headers, metadata=metadata,
            timeout_seconds=timeout_seconds,
            retry_schedule=retry_schedule, max_in_flight=max_in_flight, rate_limit=rate_limit,
            circuit_breaker=circuit_breaker, signing=signing,
        )  # fmt: skip
        json = body(keep_none=True, **fields)
        return self._run(self._one(UPDATE, Webhook.from_dict, webhook_id, tenant_id, json=json))

    def delete(self, webhook_id: Id, *, tenant_id: str | None = None) -> Deleted:
        return self._run(self._one(DELETE, Deleted.from_dict, webhook_id, tenant_id))

    def get_secret(self, webhook_id: Id, *, tenant_id: str | None = None) -> WebhookSecret:
        return self._run(self._one(SECRET, WebhookSecret.from_dict, webhook_id, tenant_id))

    def get_public_key(self, webhook_id: Id, *, tenant_id: str | None = None) -> WebhookPublicKey:
        """The ``whpk_`` key(s) receivers verify an ed25519 webhook's v1a signatures with (a
        ``Conflict`` for a webhook that signs with HMAC only)."""
        return self._run(self._one(PUBLIC_KEY, WebhookPublicKey.from_dict, webhook_id, tenant_id))

    def rotate_secret(
        self,
        webhook_id: Id,
        *,
        secret: str | None = None,
        grace_period_seconds: int | None = None,
        tenant_id: str | None = None,
    ) -> WebhookSecret:
        """A new secret (``secret``, or generated); the old one keeps signing for the grace period
        (default 24 h). An ed25519 webhook gets a new key pair too (``public_key``), the same way."""
        json = body(secret=secret, grace_period_seconds=grace_period_seconds)
        return self._run(self._one(ROTATE, WebhookSecret.from_dict, webhook_id, tenant_id, json=json))

    def verify(self, webhook_id: Id, *, tenant_id: str | None = None) -> VerifyOutcome:
        """Run the verification handshake now; a failed handshake is an outcome, not an exception."""
        return self._run(self._one(VERIFY, VerifyOutcome.from_dict, webhook_id, tenant_id))

    def test(
        self,
        webhook_id: Id,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> TestSendOutcome:
        """Send a test event (``webhook.test``, or ``event`` with ``data`` or the type's example) now;
        a failed test is an outcome (``succeeded=False``), not an exception."""
        json = body(event=event, data=dict(data) if data is not None else None)
        return self._run(self._one(TEST, TestSendOutcome.from_dict, webhook_id, tenant_id, json=json))

    def test_all(
        self, event: str | None = None, *, data: Mapping[str, Any] | None = None, tenant_id: str | None = None
    ) -> TestSendReport:
        """A test send to every webhook of the tenant (at most 50). Without ``data`` this is
        ``GET /v1/webhooks/test`` (the type's example is sent), with it ``POST /v1/webhooks/test``."""
        return self._run(self._test_all(event, data, tenant_id))

    def set_default(
        self, url: str, *, events: Sequence[str] | None = None, tenant_id: str | None = None
    ) -> Webhook:
        """The single-webhook form: point the tenant's default webhook (its oldest) at ``url``, creating
        it if the tenant has none (then the answer holds its ``secret``)."""
        return self._run(self._set_default(url, events, tenant_id))


class AsyncWebhooks(AsyncResource, _Ops):
    async def create(
        self,
        url: str,
        *,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        description: str | None = None,
        channels: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        secret_headers: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_seconds: float | None = None,
        retry_schedule: str | Sequence[float] | None = None,
        max_in_flight: int | None = None,
        rate_limit: float | None = None,
        circuit_breaker: Mapping[str, float] | None = None,
        verify: bool | None = None,
        signing: str | None = None,
        tenant_id: str | None = None,
    ) -> Webhook:
        """See :meth:`Webhooks.create`."""
        fields = _endpoint_fields(
            events=events, secret=secret, description=description, channels=channels, headers=headers,
            secret_headers=secret_headers, metadata=metadata, timeout_seconds=timeout_seconds,
            retry_schedule=retry_schedule, max_in_flight=max_in_flight, rate_limit=rate_limit,
            circuit_breaker=circuit_breaker, verify=verify, signing=signing,
        )  # fmt: skip
        return await self._run(self._create(url, tenant_id, fields))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, tenant_id: str | None = None
    ) -> AsyncPager[Webhook]:
        return AsyncPager(self._run, self._page(limit, tenant_id), cursor)

    async def get(self, webhook_id: Id, *, tenant_id: str | None = None) -> Webhook:
        return await self._run(self._one(GET, Webhook.from_dict, webhook_id, tenant_id))

    async def update(
        self,
        webhook_id: Id,
        *,
        url: str = UNSET,
        active: bool = UNSET,
        discard_held: bool = UNSET,
        events: Sequence[str] | None = UNSET,
        description: str = UNSET,
        channels: Sequence[str] | None = UNSET,
        headers: Mapping[str, str] = UNSET,
        secret_headers: Mapping[str, str] = UNSET,
        metadata: Mapping[str, Any] = UNSET,
        timeout_seconds: float | None = UNSET,
        retry_schedule: str | Sequence[float] | None = UNSET,
        max_in_flight: int | None = UNSET,
        rate_limit: float | None = UNSET,
        circuit_breaker: Mapping[str, float] | None = UNSET,
        signing: str = UNSET,
        tenant_id: str | None = None,
    ) -> Webhook:
        """See :meth:`Webhooks.update`."""
        fields = _endpoint_fields(
            url=url, active=active, discard_held=discard_held, events=events, description=description,
            channels=channels, headers=headers, secret_headers=secret_headers, metadata=metadata,
            timeout_seconds=timeout_seconds,
            retry_schedule=retry_schedule, max_in_flight=max_in_flight, rate_limit=rate_limit,
            circuit_breaker=circuit_breaker, signing=signing,
        )  # fmt: skip
        json = body(keep_none=True, **fields)
        return await self._run(self._one(UPDATE, Webhook.from_dict, webhook_id, tenant_id, json=json))

    async def delete(self, webhook_id: Id, *, tenant_id: str | None = None) -> Deleted:
        return await self._run(self._one(DELETE, Deleted.from_dict, webhook_id, tenant_id))

    async def get_secret(self, webhook_id: Id, *, tenant_id: str | None = None) -> WebhookSecret:
        return await self._run(self._one(SECRET, WebhookSecret.from_dict, webhook_id, tenant_id))

    async def get_public_key(self, webhook_id: Id, *, tenant_id: str | None = None) -> WebhookPublicKey:
        return await self._run(self._one(PUBLIC_KEY, WebhookPublicKey.from_dict, webhook_id, tenant_id))

    async def rotate_secret(
        self,
        webhook_id: Id,
        *,
        secret: str | None = None,
        grace_period_seconds: int | None = None,
        tenant_id: str | None = None,
    ) -> WebhookSecret:
        json = body(secret=secret, grace_period_seconds=grace_period_seconds)
        return await self._run(self._one(ROTATE, WebhookSecret.from_dict, webhook_id, tenant_id, json=json))

    async def verify(self, webhook_id: Id, *, tenant_id: str | None = None) -> VerifyOutcome:
        return await self._run(self._one(VERIFY, VerifyOutcome.from_dict, webhook_id, tenant_id))

    async def test(
        self,
        webhook_id: Id,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> TestSendOutcome:
        json = body(event=event, data=dict(data) if data is not None else None)
        return await self._run(self._one(TEST, TestSendOutcome.from_dict, webhook_id, tenant_id, json=json))

    async def test_all(
        self, event: str | None = None, *, data: Mapping[str, Any] | None = None, tenant_id: str | None = None
    ) -> TestSendReport:
        return await self._run(self._test_all(event, data, tenant_id))

    async def set_default(
        self, url: str, *, events: Sequence[str] | None = None, tenant_id: str | None = None
    ) -> Webhook:
        return await self._run(self._set_default(url, events, tenant_id))
