"""/v1/webhooks: a tenant's endpoints (seed 002's shape), their secrets and subscriptions."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from hookline.api import endpoint_health
from hookline.api.access import Manage, Read
from hookline.api.audit import Who, diff
from hookline.api.auth import ServicesDep, resolve_tenant
from hookline.api.envelope import ApiError, bad_request, not_found, ok
from hookline.api.pagination import Cursor, Limit, decode_int_cursor, page
from hookline.api.responses import (
    Deleted,
    Envelope,
    Page,
    SecretRotated,
    VerifyOutcome,
    WebhookCreated,
    WebhookOut,
    WebhookPublicKey,
    WebhookSecret,
)
from hookline.api.routing import StrictJsonRoute
from hookline.api.services import Services
from hookline.catalog import UnknownEventType, normalize_subscription
from hookline.config import parse_retry_schedule
from hookline.dispatch.breaker import POLICY_FIELDS, policy_problem
from hookline.dispatch.options import still_valid
from hookline.dispatch.sender import REDACTED
from hookline.egress import UrlRejected, check_webhook_url, header_problem
from hookline.signing import generate_secret, generate_signing_key, public_key, validate_secret
from hookline.store import audit_log, relay
from hookline.store import endpoints as store
from hookline.store.endpoint_state import EndpointState
from hookline.store.endpoints import Endpoint

OPTION_FIELDS = {"timeout_seconds", "retry_schedule", "max_in_flight", "rate_limit", "circuit_breaker"}

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


def _check_breaker(value: dict[str, float] | None) -> dict[str, float] | None:
    if value is not None and (problem := policy_problem(value)) is not None:
        raise ValueError(f"'circuit_breaker': {problem}")
    # Counts as integers (stored and shown as 10, not 10.0), durations as given.
    return {name: POLICY_FIELDS[name][0](v) for name, v in value.items()} if value else None


class _EndpointFields(BaseModel):
    # strict: no false for 0, no 0 for a datetime (lax coercions the OpenAPI document does not promise)
    model_config = ConfigDict(extra="forbid", strict=True)
    events: list[str] | None = Field(default=None, max_length=100)
    timeout_seconds: float | None = Field(default=None, gt=0, le=120, description="per-attempt deadline")
    retry_schedule: str | list[float] | None = Field(
        default=None, description='waits before each retry, e.g. "1m,5m,15m,1h,6h" (default: the service\'s)'
    )
    max_in_flight: int | None = Field(
        default=None, ge=1, le=10_000, description="concurrent requests cap, across all workers"
    )
    rate_limit: float | None = Field(
        default=None, gt=0, le=100_000, description="requests per second, across all workers"
    )
    circuit_breaker: dict[str, float] | None = Field(
        default=None,
        description="breaker thresholds replacing the service's: consecutive_failures, failure_rate, "
        "min_requests, window, cooldown, max_cooldown (seconds)",
    )
    description: str | None = Field(default=None, max_length=1000)
    channels: list[str] | None = None
    headers: dict[str, str] | None = None
    secret_headers: dict[str, str] | None = Field(
        default=None,
        description="custom headers whose values are credentials (an Authorization header, say): sent "
        "with every request like `headers`, kept encrypted, never shown again",
    )
    metadata: dict[str, Any] | None = None
    signing: Literal["hmac", "ed25519"] | None = Field(
        default=None,
        description='"ed25519": hookline makes the endpoint an ed25519 key pair and signs every delivery '
        "with Standard Webhooks' v1a too (receivers verify with the public key, GET "
        '/v1/webhooks/{id}/public-key; the HMAC signatures stay); "hmac" (the default): HMAC only',
    )

    _channels = field_validator("channels")(_check_channels)
    _headers = field_validator("headers", "secret_headers")(_check_headers)
    _metadata = field_validator("metadata")(_check_metadata)
    _schedule = field_validator("retry_schedule")(_check_schedule)
    _breaker = field_validator("circuit_breaker")(_check_breaker)


class WebhookCreate(_EndpointFields):
    url: str = Field(max_length=4096)
    secret: str | None = None
    tenant_id: str | None = None
    verify: bool | None = Field(
        default=None,
        description="hold deliveries until the endpoint answers the verification handshake "
        "(default: the service's HOOKLINE_VERIFICATION_REQUIRED)",
    )


class WebhookUpdate(_EndpointFields):
    url: str | None = Field(default=None, max_length=4096)
    active: bool | None = None
    discard_held: bool | None = Field(
        default=None, description='with "active": true, fail the held deliveries instead of sending them'
    )


async def webhook_views(services: Services, found: list[Endpoint]) -> list[dict[str, Any]]:
    loaded = await endpoint_health.load(services, found)
    return [webhook_view(services, e, *loaded[e.id]) for e in found]


def webhook_view(services: Services, e: Endpoint, state: EndpointState, held: int) -> dict[str, Any]:
    return {
        "id": e.id,
        "url": e.url,
        "kind": "relay" if relay.token_of(e.url) is not None else "http",
        "events": e.events,
        "active": e.active,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "tenant_id": e.tenant_id,
        "description": e.description,
        "channels": e.channels,
        "headers": e.headers,
        "secret_headers": dict.fromkeys(e.secret_headers, REDACTED),
        "metadata": e.metadata,
        "disabled_reason": e.disabled_reason,
        "timeout_seconds": e.timeout_ms / 1000 if e.timeout_ms else None,
        "retry_schedule": e.retry_schedule,
        "max_in_flight": e.max_in_flight,
        "rate_limit": e.rate_limit,
        "circuit_breaker": e.circuit_breaker,
        "signing": "ed25519" if e.signing_key else "hmac",
        "verification": endpoint_health.verification_view(state),
        "health": endpoint_health.health_view(services, e, state, held),
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


def _custom_headers(headers: dict[str, str], secret_headers: dict[str, str]) -> None:
    """The plain and the secret headers an endpoint will have: no name in both, at most 20 together."""
    plain = {name.lower() for name in headers}
    for name in secret_headers:
        if name.lower() in plain:
            raise bad_request(f"header '{name}' is in both 'headers' and 'secret_headers'")
    if len(headers) + len(secret_headers) > 20:
        raise bad_request("'headers' and 'secret_headers' may hold at most 20 headers together")


async def subscription_events(services: Services, patterns: list[str]) -> list[str]:
    """``patterns`` checked against the catalog and normalized, or a 400 naming what is wrong."""
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
        endpoint = await store.get_endpoint(
            conn, tenant_id, numeric_id(raw_id), keyring=services.store.keyring
        )
    if endpoint is None:
        raise not_found(f"webhook '{raw_id}' not found")
    return endpoint


TenantQuery = Query(default=None, description="the tenant to act on (admin key only)")


@router.post(
    "", status_code=201, summary="Register a webhook endpoint", response_model=Envelope[WebhookCreated]
)
async def create_webhook(body: WebhookCreate, services: ServicesDep, principal: Manage, who: Who) -> Response:
    tenant_id = await resolve_tenant(services, principal, body.tenant_id)
    url = _url(services, body.url)
    _branded_headers(services, body.headers)
    _branded_headers(services, body.secret_headers)
    _custom_headers(body.headers or {}, body.secret_headers or {})
    if body.secret is not None and (problem := validate_secret(body.secret)):
        raise bad_request(problem)
    events = await subscription_events(services, body.events if body.events is not None else ["*"])
    secret = body.secret or generate_secret()
    signing_key = generate_signing_key() if body.signing == "ed25519" else None
    verify = services.settings.verification_required if body.verify is None else body.verify
    now = services.now()
    async with services.store.write() as conn:
        endpoint = await store.insert_endpoint(
            conn,
            tenant_id=tenant_id,
            now=now,
            keyring=services.store.keyring,
            verify=verify,
            url=url,
            description=body.description or "",
            secret=secret,
            signing_key=signing_key,
            events=events,
            channels=body.channels,
            headers=body.headers or {},
            secret_headers=body.secret_headers or {},
            metadata=body.metadata or {},
            active=True,
            **_options(body.model_dump(include=OPTION_FIELDS)),
        )
        fields = body.model_dump(exclude={"secret", "tenant_id"}) | {
            "url": url,
            "events": events,
            "verify": verify,
        }
        entry = who.entry("webhook.created", tenant_id, "webhook", endpoint.id, fields)
        await audit_log.record(conn, entry, now)
    if verify:
        await endpoint_health.verify(services, endpoint)
    [view] = await webhook_views(services, [endpoint])
    created = {**view, "secret": secret, "public_key": public_key(signing_key) if signing_key else None}
    return ok(created, "Webhook created successfully", 201)


@router.get("", summary="List webhook endpoints", response_model=Envelope[Page[WebhookOut]])
async def list_webhooks(
    services: ServicesDep,
    principal: Read,
    limit: Limit = 50,
    cursor: Cursor = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    async with services.store.read() as conn:
        rows = await store.list_endpoints(
            conn, tenant, after=decode_int_cursor(cursor), limit=limit + 1, keyring=services.store.keyring
        )
    last = rows[limit - 1].id if len(rows) > limit else None
    views = await webhook_views(services, rows[:limit])
    extra = rows[limit:]  # only says whether another page exists
    return ok(page([*views, *extra], limit, last), "Webhooks retrieved successfully")


@router.get("/{webhook_id}", summary="Get a webhook endpoint", response_model=Envelope[WebhookOut])
async def get_webhook(
    webhook_id: str, services: ServicesDep, principal: Read, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    [view] = await webhook_views(services, [await endpoint_or_404(services, tenant, webhook_id)])
    return ok(view, "Webhook retrieved successfully")


@router.get(
    "/{webhook_id}/secret",
    summary="Get a webhook endpoint's signing secret",
    response_model=Envelope[WebhookSecret],
)
async def get_webhook_secret(
    webhook_id: str, services: ServicesDep, principal: Manage, who: Who, tenant_id: str | None = TenantQuery
) -> Response:
    """Recorded in the audit log (``webhook.secret_revealed``) before it is shown."""
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    async with services.store.write() as conn:
        await audit_log.record(
            conn, who.entry("webhook.secret_revealed", tenant, "webhook", endpoint.id), services.now()
        )
    return ok({"id": endpoint.id, "secret": endpoint.secret}, "Webhook secret retrieved successfully")


@router.patch("/{webhook_id}", summary="Update a webhook endpoint", response_model=Envelope[WebhookOut])
async def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    services: ServicesDep,
    principal: Manage,
    who: Who,
    tenant_id: str | None = TenantQuery,
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    changes = body.model_dump(exclude_unset=True)
    discard_held = bool(changes.pop("discard_held", False))
    if discard_held and changes.get("active") is not True:
        raise bad_request("'discard_held' applies only with \"active\": true")
    never_null = (
        "url",
        "active",
        "description",
        "headers",
        "secret_headers",
        "metadata",
        "discard_held",
        "signing",
    )
    for field in never_null:
        if field in changes and changes[field] is None:
            raise bad_request(f"'{field}' cannot be null")
    if "url" in changes:
        changes["url"] = _url(services, changes["url"])
    _branded_headers(services, changes.get("headers"))
    _branded_headers(services, changes.get("secret_headers"))
    if "events" in changes:
        changes["events"] = await subscription_events(
            services, changes["events"] if changes["events"] is not None else ["*"]
        )
    if changes.get("active"):
        changes["disabled_reason"] = None
    _options(changes)
    signing = changes.pop("signing", None)
    before = await endpoint_or_404(services, tenant, webhook_id)
    if "url" in changes and relay.token_of(before.url) is not None:
        raise bad_request("a `hookline listen` session's webhook keeps its relay:// URL")
    changes.update(_signing_changes(before, signing))
    if changes.get("secret_headers") and relay.token_of(before.url) is not None:
        # Its requests travel through the store to the listener: a credential would lie there in clear.
        raise bad_request("a `hookline listen` session's webhook takes no 'secret_headers'")
    if "headers" in changes or "secret_headers" in changes:
        _custom_headers(
            changes.get("headers", before.headers), changes.get("secret_headers", before.secret_headers)
        )
    now = services.now()
    async with services.store.write() as conn:
        if not await store.update_endpoint(
            conn, tenant, before.id, changes, now, keyring=services.store.keyring
        ):
            raise not_found(f"webhook '{webhook_id}' not found")
        changed = diff(dataclasses.asdict(before), changes)
        if discard_held:
            changed["discard_held"] = True
        await audit_log.record(conn, who.entry("webhook.updated", tenant, "webhook", before.id, changed), now)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    if "active" in changes:
        await endpoint_health.set_active(
            services, endpoint, active=changes["active"], discard_held=discard_held
        )
    if "url" in changes and changes["url"] != before.url:
        await endpoint_health.verify_again_after_move(services, endpoint)
    [view] = await webhook_views(services, [endpoint])
    return ok(view, "Webhook updated successfully")


def _signing_changes(endpoint: Endpoint, signing: str | None) -> dict[str, Any]:
    """The store changes that give ``endpoint`` the ``signing`` asked for: a new key pair when it turns
    to ed25519; no key (nor any kept by a rotation) when it turns back to HMAC only; none otherwise."""
    if signing == "ed25519" and endpoint.signing_key is None:
        return {"signing_key": generate_signing_key()}
    if signing == "hmac" and endpoint.signing_key is not None:
        kept = [{k: v for k, v in old.items() if k != "signing_key"} for old in endpoint.previous_secrets]
        return {"signing_key": None, "previous_secrets": kept}
    return {}


@router.delete("/{webhook_id}", summary="Delete a webhook endpoint", response_model=Envelope[Deleted])
async def delete_webhook(
    webhook_id: str, services: ServicesDep, principal: Manage, who: Who, tenant_id: str | None = TenantQuery
) -> Response:
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint_id = numeric_id(webhook_id)
    async with services.store.write() as conn:
        if not await store.delete_endpoint(conn, tenant, endpoint_id):
            raise not_found(f"webhook '{webhook_id}' not found")
        entry = who.entry("webhook.deleted", tenant, "webhook", endpoint_id)
        await audit_log.record(conn, entry, services.now())
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
    summary="Rotate the signing secret (and ed25519 key pair), with a grace period",
    response_model=Envelope[SecretRotated],
)
async def rotate_secret(
    webhook_id: str,
    services: ServicesDep,
    principal: Manage,
    who: Who,
    body: SecretRotation | None = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    """During the grace period every delivery carries one signature per valid secret. An ed25519
    webhook's key pair is replaced at the same time, its old key signing (v1a) for the same period."""
    body = body or SecretRotation()
    tenant = await resolve_tenant(services, principal, tenant_id)
    if body.secret is not None and (problem := validate_secret(body.secret)):
        raise bad_request(problem)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    now = services.now()
    kept = [old for old in endpoint.previous_secrets if datetime.fromisoformat(old["expires_at"]) > now]
    if body.grace_period_seconds:
        expires = now + timedelta(seconds=body.grace_period_seconds)
        replaced = {"secret": endpoint.secret, "expires_at": expires.isoformat()}
        if endpoint.signing_key is not None:
            replaced["signing_key"] = endpoint.signing_key
        kept.insert(0, replaced)
    new_secret = body.secret or generate_secret()
    new_key = generate_signing_key() if endpoint.signing_key is not None else None
    changes = {"secret": new_secret, "previous_secrets": kept[:5], "signing_key": new_key}
    async with services.store.write() as conn:
        await store.update_endpoint(conn, tenant, endpoint.id, changes, now, keyring=services.store.keyring)
        rotated = {"grace_period_seconds": body.grace_period_seconds, "secret_given": body.secret is not None}
        rotated |= diff(dataclasses.asdict(endpoint), changes, ("secret", "signing_key"))
        await audit_log.record(
            conn, who.entry("webhook.secret_rotated", tenant, "webhook", endpoint.id, rotated), now
        )
    data = {
        "id": endpoint.id,
        "secret": new_secret,
        "previous_secrets_expire_at": [old["expires_at"] for old in kept[:5]],
        "public_key": public_key(new_key) if new_key else None,
    }
    return ok(data, "Webhook secret rotated successfully")


@router.get(
    "/{webhook_id}/public-key",
    summary="Get a webhook endpoint's ed25519 public key(s)",
    response_model=Envelope[WebhookPublicKey],
    responses={409: {"description": 'the webhook signs with HMAC only (its "signing" is "hmac")'}},
)
async def get_public_key(
    webhook_id: str, services: ServicesDep, principal: Read, tenant_id: str | None = TenantQuery
) -> Response:
    """What receivers verify the webhook's v1a signatures with, no shared secret needed: the current
    key and, during a rotation's grace period, the replaced ones that still sign. Public by nature,
    but scoped like the rest of the webhook."""
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    if endpoint.signing_key is None:
        raise ApiError(
            409,
            f"webhook {endpoint.id} signs with HMAC only and has no public key: "
            f'PATCH /v1/webhooks/{endpoint.id} with {{"signing": "ed25519"}} to give it one',
        )
    previous = [old for old in still_valid(endpoint.previous_secrets, services.now()) if "signing_key" in old]
    try:
        data = {
            "id": endpoint.id,
            "public_key": public_key(endpoint.signing_key),
            "previous_public_keys": [
                {"public_key": public_key(old["signing_key"]), "expires_at": old["expires_at"]}
                for old in previous
            ],
        }
    except ValueError:  # a stored key that is not one (written by hand): say so, never quote it
        raise ApiError(
            409,
            f"webhook {endpoint.id}'s stored ed25519 key is invalid: PATCH /v1/webhooks/{endpoint.id} "
            'with {"signing": "hmac"}, then {"signing": "ed25519"}, to make a new key pair',
        ) from None
    return ok(data, "Webhook public key retrieved successfully")


@router.post(
    "/{webhook_id}/verify",
    summary="Run the verification handshake again",
    response_model=Envelope[VerifyOutcome],
)
async def verify_webhook(
    webhook_id: str, services: ServicesDep, principal: Manage, who: Who, tenant_id: str | None = TenantQuery
) -> Response:
    """POSTs ``{"type": "verification", "challenge": ...}``, signed; the endpoint is verified when it
    answers 200 with the same challenge. Until then its deliveries are held. The answer says how it
    went, whichever way (a failed handshake is not an error of this request)."""
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    audit = who.entry("webhook.verification_requested", tenant, "webhook", endpoint.id)
    outcome = await endpoint_health.verify(services, endpoint, audit=audit)
    data = {
        "webhook_id": endpoint.id,
        "verified": outcome.verified,
        "status": "verified" if outcome.verified else "failed",
        "error": outcome.error,
        "status_code": outcome.status_code,
        "duration_ms": outcome.duration_ms,
    }
    message = "Webhook verified" if outcome.verified else "Webhook verification failed"
    return ok(data, message)


class DefaultWebhook(BaseModel):
    """Seed 000's single-webhook form."""

    model_config = ConfigDict(extra="forbid", strict=True)
    webhookUrl: str = Field(max_length=4096)
    events: list[str] | None = Field(default=None, max_length=100)
    tenant_id: str | None = None


@router.post(
    "/set",
    summary="Create or update the tenant's default webhook (single-webhook form)",
    response_model=Envelope[WebhookOut],
    responses={201: {"model": Envelope[WebhookCreated], "description": "created"}},
)
async def set_default_webhook(
    body: DefaultWebhook, services: ServicesDep, principal: Manage, who: Who
) -> Response:
    """The default webhook is the tenant's oldest endpoint (not a ``hookline listen`` session's); with
    none, one is created (201, with its secret). Events default to all. It is an ordinary endpoint:
    ``GET /v1/webhooks`` lists it."""
    tenant_id = await resolve_tenant(services, principal, body.tenant_id)
    url = _url(services, body.webhookUrl)
    events = await subscription_events(services, body.events if body.events is not None else ["*"])
    async with services.store.read() as conn:
        # A listen session's webhook is never the default: it keeps its relay:// URL.
        existing = await store.list_endpoints(
            conn, tenant_id, after=None, limit=1, relays=False, keyring=services.store.keyring
        )
    if not existing:
        return await create_webhook(
            WebhookCreate(url=url, events=events, tenant_id=tenant_id), services, principal, who
        )
    endpoint = existing[0]
    now = services.now()
    changes = {"url": url, "events": events}
    async with services.store.write() as conn:
        await store.update_endpoint(
            conn, tenant_id, endpoint.id, changes, now, keyring=services.store.keyring
        )
        changed = diff(dataclasses.asdict(endpoint), changes)
        await audit_log.record(
            conn, who.entry("webhook.updated", tenant_id, "webhook", endpoint.id, changed), now
        )
    updated = await endpoint_or_404(services, tenant_id, str(endpoint.id))
    if url != endpoint.url:
        await endpoint_health.verify_again_after_move(services, updated)
    [view] = await webhook_views(services, [updated])
    return ok(view, "Webhook updated successfully")
