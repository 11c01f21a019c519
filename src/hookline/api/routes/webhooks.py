"""/v1/webhooks: a tenant's endpoints (seed 002's shape), their secrets and subscriptions."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from hookline.api.auth import Authenticated, ServicesDep, resolve_tenant
from hookline.api.envelope import bad_request, not_found, ok
from hookline.api.pagination import Cursor, Limit, decode_int_cursor, page
from hookline.api.responses import (
    Deleted,
    Envelope,
    Page,
    SecretRotated,
    WebhookCreated,
    WebhookOut,
    WebhookSecret,
)
from hookline.api.routing import StrictJsonRoute
from hookline.api.services import Services
from hookline.catalog import UnknownEventType, normalize_subscription
from hookline.config import parse_retry_schedule
from hookline.egress import UrlRejected, check_webhook_url, header_problem
from hookline.signing import generate_secret, validate_secret
from hookline.store import endpoints as store
from hookline.store.endpoints import Endpoint

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=StrictJsonRoute)

CHANNEL = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Headers hookline sets itself; an endpoint's custom headers may not replace them. (Hop-by-hop and
# framing headers are refused by hookline.egress.header_problem.)
RESERVED_HEADERS = {"content-type", "content-length", "host", "user-agent"}
RESERVED_PREFIXES = ("webhook-", "x-webhook-")
MAX_METADATA_BYTES = 8192


def _check_channels(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if len(value) > 10:
        raise ValueError("'channels' may list at most 10 channels")
    for channel in value:
        if not CHANNEL.match(channel):
            raise ValueError(f"invalid channel {channel!r} (1-128 of A-Z a-z 0-9 _ . : -)")
    return list(dict.fromkeys(value)) or None


def _check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > 20:
        raise ValueError("'headers' may hold at most 20 headers")
    for name, text in value.items():
        if not HEADER_NAME.match(name):
            raise ValueError(f"invalid header name {name!r}")
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
            raise ValueError(f"header '{name}' is set by hookline and cannot be overridden")
        if problem := header_problem(name, text):
            raise ValueError(problem)
    return value


def _check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"'metadata' is larger than {MAX_METADATA_BYTES} bytes")
    return value


def _check_schedule(value: str | list[float] | None) -> list[float] | None:
    """The same rules as HOOKLINE_RETRY_SCHEDULE, for both spellings ("1m,5m" and [60, 300])."""
    if value is None:
        return None
    try:
        return list(parse_retry_schedule(value))
    except ValueError as exc:
        raise ValueError(f"'retry_schedule': {exc}") from None


class _EndpointFields(BaseModel):
    # strict: no false for 0, no 0 for a datetime (lax coercions the OpenAPI document does not promise)
    model_config = ConfigDict(extra="forbid", strict=True)
    events: list[str] | None = Field(default=None, max_length=100)
    timeout_seconds: float | None = Field(default=None, gt=0, le=120, description="per-attempt deadline")
    retry_schedule: str | list[float] | None = Field(
        default=None, description='waits before each retry, e.g. "1m,5m,15m,1h,6h" (default: the service\'s)'
    )
    max_in_flight: int | None = Field(default=None, ge=1, le=10_000, description="concurrent requests cap")
    description: str | None = Field(default=None, max_length=1000)
    channels: list[str] | None = None
    headers: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None

    _channels = field_validator("channels")(_check_channels)
    _headers = field_validator("headers")(_check_headers)
    _metadata = field_validator("metadata")(_check_metadata)
    _schedule = field_validator("retry_schedule")(_check_schedule)


class WebhookCreate(_EndpointFields):
    url: str = Field(max_length=4096)
    secret: str | None = None
    tenant_id: str | None = None


class WebhookUpdate(_EndpointFields):
    url: str | None = Field(default=None, max_length=4096)
    active: bool | None = None


def webhook_view(e: Endpoint) -> dict[str, Any]:
    return {
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "active": e.active,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "tenant_id": e.tenant_id,
        "description": e.description,
        "channels": e.channels,
        "headers": e.headers,
        "metadata": e.metadata,
        "disabled_reason": e.disabled_reason,
        "timeout_seconds": e.timeout_ms / 1000 if e.timeout_ms else None,
        "retry_schedule": e.retry_schedule,
        "max_in_flight": e.max_in_flight,
    }


def _options(changes: dict[str, Any]) -> dict[str, Any]:
    """API field names -> store columns, for the delivery options present in ``changes``."""
    if "timeout_seconds" in changes:
        seconds = changes.pop("timeout_seconds")
        changes["timeout_ms"] = round(seconds * 1000) if seconds is not None else None
    return changes


def _url(services: Services, url: str) -> str:
    try:
        return check_webhook_url(url, services.url_policy)
    except UrlRejected as exc:
        raise bad_request(str(exc)) from None


def _branded_headers(services: Services, headers: dict[str, str] | None) -> None:
    """Custom headers may not use the (configurable) prefix of hookline's own signature headers."""
    prefix = services.settings.signature_header_prefix.lower() + "-"
    for name in headers or {}:
        if name.lower().startswith(prefix):
            raise bad_request(f"header '{name}' is set by hookline and cannot be overridden")


async def _events(services: Services, patterns: list[str]) -> list[str]:
    if not patterns:
        raise bad_request("'events' must name at least one event type (use [\"*\"] for all)")
    try:
        return normalize_subscription(patterns, await services.registry.names())
    except (UnknownEventType, ValueError) as exc:
        raise bad_request(str(exc)) from None


def numeric_id(raw: str, kind: str = "webhook") -> int:
    """Ids of webhooks and deliveries are integers; anything else cannot exist (404, not 400)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # "²".isdigit() is True
        raise not_found(f"{kind} '{raw}' not found")
    return int(raw)


async def endpoint_or_404(services: Services, tenant_id: str, raw_id: str) -> Endpoint:
    async with services.store.read() as conn:
        endpoint = await store.get_endpoint(conn, tenant_id, numeric_id(raw_id))
    if endpoint is None:
        raise not_found(f"webhook '{raw_id}' not found")
    return endpoint


TenantQuery = Query(default=None, description="the tenant to act on (admin key only)")


@router.post(
    "", status_code=201, summary="Register a webhook endpoint", response_model=Envelope[WebhookCreated]
)
async def create_webhook(body: WebhookCreate, services: ServicesDep, principal: Authenticated) -> Response:
    tenant_id = await resolve_tenant(services, principal, body.tenant_id)
    url = _url(services, body.url)
    _branded_headers(services, body.headers)
    if body.secret is not None and (problem := validate_secret(body.secret)):
        raise bad_request(problem)
    events = await _events(services, body.events if body.events is not None else ["*"])
    secret = body.secret or generate_secret()
    async with services.store.write() as conn:
        endpoint = await store.insert_endpoint(
            conn,
            tenant_id=tenant_id,
            now=services.now(),
            url=url,
            description=body.description or "",
            secret=secret,
            events=events,
            channels=body.channels,
            headers=body.headers or {},
            metadata=body.metadata or {},
            active=True,
            **_options(body.model_dump(include={"timeout_seconds", "retry_schedule", "max_in_flight"})),
        )
    return ok({**webhook_view(endpoint), "secret": secret}, "Webhook created successfully", 201)


@router.get("", summary="List webhook endpoints", response_model=Envelope[Page[WebhookOut]])
async def list_webhooks(
    services: ServicesDep,
    principal: Authenticated,
    limit: Limit = 50,
    cursor: Cursor = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.read() as conn:
        rows = await store.list_endpoints(conn, tenant, after=decode_int_cursor(cursor), limit=limit + 1)
    last = rows[limit - 1].id if len(rows) > limit else None
    return ok(page([webhook_view(e) for e in rows], limit, last), "Webhooks retrieved successfully")


@router.get("/{webhook_id}", summary="Get a webhook endpoint", response_model=Envelope[WebhookOut])
async def get_webhook(
    webhook_id: str, services: ServicesDep, principal: Authenticated, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    return ok(
        webhook_view(await endpoint_or_404(services, tenant, webhook_id)), "Webhook retrieved successfully"
    )


@router.get(
    "/{webhook_id}/secret",
    summary="Get a webhook endpoint's signing secret",
    response_model=Envelope[WebhookSecret],
)
async def get_webhook_secret(
    webhook_id: str, services: ServicesDep, principal: Authenticated, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    return ok({"id": endpoint.id, "secret": endpoint.secret}, "Webhook secret retrieved successfully")


@router.patch("/{webhook_id}", summary="Update a webhook endpoint", response_model=Envelope[WebhookOut])
async def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    services: ServicesDep,
    principal: Authenticated,
    tenant_id: str | None = TenantQuery,
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    changes = body.model_dump(exclude_unset=True)
    for field in ("url", "active", "description", "headers", "metadata"):
        if field in changes and changes[field] is None:
            raise bad_request(f"'{field}' cannot be null")
    if "url" in changes:
        changes["url"] = _url(services, changes["url"])
    _branded_headers(services, changes.get("headers"))
    if "events" in changes:
        changes["events"] = await _events(
            services, changes["events"] if changes["events"] is not None else ["*"]
        )
    if changes.get("active"):
        changes["disabled_reason"] = None
    _options(changes)
    async with services.store.write() as conn:
        if not await store.update_endpoint(conn, tenant, numeric_id(webhook_id), changes, services.now()):
            raise not_found(f"webhook '{webhook_id}' not found")
    return ok(
        webhook_view(await endpoint_or_404(services, tenant, webhook_id)), "Webhook updated successfully"
    )


@router.delete("/{webhook_id}", summary="Delete a webhook endpoint", response_model=Envelope[Deleted])
async def delete_webhook(
    webhook_id: str, services: ServicesDep, principal: Authenticated, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.write() as conn:
        if not await store.delete_endpoint(conn, tenant, numeric_id(webhook_id)):
            raise not_found(f"webhook '{webhook_id}' not found")
    return ok({"id": int(webhook_id), "deleted": True}, "Webhook deleted successfully")


class SecretRotation(BaseModel):
    # strict: no false for 0, no 0 for a datetime (lax coercions the OpenAPI document does not promise)
    model_config = ConfigDict(extra="forbid", strict=True)
    secret: str | None = Field(default=None, description="the new secret; generated if absent")
    grace_period_seconds: int = Field(
        default=86400, ge=0, le=30 * 86400, description="how long the old secret keeps signing too"
    )


@router.post(
    "/{webhook_id}/secret/rotate",
    summary="Rotate the signing secret, with a grace period",
    response_model=Envelope[SecretRotated],
)
async def rotate_secret(
    webhook_id: str,
    services: ServicesDep,
    principal: Authenticated,
    body: SecretRotation | None = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    """During the grace period every delivery carries one signature per valid secret."""
    body = body or SecretRotation()
    tenant = await resolve_tenant(services, principal, tenant_id)
    if body.secret is not None and (problem := validate_secret(body.secret)):
        raise bad_request(problem)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    now = services.now()
    still_valid = [
        old for old in endpoint.previous_secrets if datetime.fromisoformat(old["expires_at"]) > now
    ]
    if body.grace_period_seconds:
        expires = now + timedelta(seconds=body.grace_period_seconds)
        still_valid.insert(0, {"secret": endpoint.secret, "expires_at": expires.isoformat()})
    new_secret = body.secret or generate_secret()
    changes = {"secret": new_secret, "previous_secrets": still_valid[:5]}
    async with services.store.write() as conn:
        await store.update_endpoint(conn, tenant, endpoint.id, changes, now)
    data = {
        "id": endpoint.id,
        "secret": new_secret,
        "previous_secrets_expire_at": [old["expires_at"] for old in still_valid[:5]],
    }
    return ok(data, "Webhook secret rotated successfully")
