"""/v1/tenants (the admin key) and their API keys (the admin key, or a ``tenant:manage`` key of the
tenant itself: a key cannot make a key that may do more than it may, or from more places, or for
longer, or more often)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from hookline.api.access import AdminOnly, Manage
from hookline.api.audit import Who, diff
from hookline.api.auth import ServicesDep
from hookline.api.envelope import ApiError, bad_request, not_found, ok
from hookline.api.key_policy import (
    DEFAULT_SCOPES,
    MAX_ALLOWED_IPS,
    TenantScope,
    parse_allowed_ips,
    parse_scopes,
    within,
)
from hookline.api.pagination import Cursor, Limit, decode_cursor, page
from hookline.api.principal import Principal
from hookline.api.responses import ApiKeyCreated, ApiKeyOut, Deleted, Envelope, Page, TenantOut
from hookline.api.routing import StrictJsonRoute
from hookline.api.theme import Theme
from hookline.store import audit_log
from hookline.store import tenants as store
from hookline.store.tenants import ApiKey, Tenant

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], route_class=StrictJsonRoute)

TENANT_ID = r"^[A-Za-z0-9_-]{1,64}$"
# A tenant's own retention period, in seconds: from an hour (as HOOKLINE_RETENTION) to ten years.
RetentionSeconds = Annotated[
    int | None,
    Field(
        ge=3600,
        le=3650 * 86400,
        description="how long this tenant's event payloads and delivery attempts are kept, in seconds "
        "(at least 3600); null: the service's HOOKLINE_RETENTION",
    ),
]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, pattern=TENANT_ID, description="your own id; generated if absent")
    metadata: dict[str, Any] = Field(default_factory=dict)
    retention_seconds: RetentionSeconds = None
    theme: Theme | None = Field(default=None, description="the dashboard's look for this tenant")


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None
    retention_seconds: RetentionSeconds = None  # null: back to the service's retention
    theme: Theme | None = Field(default=None, description="replaces the tenant's theme ({} clears it)")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="default", min_length=1, max_length=200)
    scopes: list[TenantScope] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        description="what the key may do: tenant:manage (everything of the tenant; implies the other "
        "two), events:write (post events), read (read-only)",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="when the key stops working (in the future); null: never"
    )
    allowed_ips: list[Annotated[str, Field(max_length=100)]] | None = Field(
        default=None,
        max_length=MAX_ALLOWED_IPS,
        description="the networks (CIDRs) the key may be used from; null: anywhere. The client address "
        "is the connection's peer, or behind HOOKLINE_TRUSTED_PROXIES the address they forwarded",
    )
    rate_limit: float | None = Field(
        default=None, gt=0, le=1_000_000, description="requests per second, per API process; null: none"
    )

    @field_validator("scopes", mode="before")
    @classmethod
    def _scopes(cls, value: Any) -> Any:
        return list(parse_scopes(value)) if isinstance(value, list) else value

    @field_validator("allowed_ips")
    @classmethod
    def _allowed_ips(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [str(network) for network in parse_allowed_ips(value)]


def tenant_view(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "metadata": t.metadata,
        "retention_seconds": t.retention_seconds,
        "theme": t.theme,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def key_view(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "tenant_id": k.tenant_id,
        "name": k.name,
        "prefix": k.prefix,
        "created_at": k.created_at,
        "scopes": list(k.scopes),
        "expires_at": k.expires_at,
        "allowed_ips": list(k.allowed_ips) if k.allowed_ips is not None else None,
        "rate_limit": k.rate_limit,
        "last_used_at": k.last_used_at,
    }


async def _existing_tenant(services: ServicesDep, tenant_id: str) -> Tenant:
    async with services.store.read() as conn:
        tenant = await store.get_tenant(conn, tenant_id)
    if tenant is None:
        raise not_found(f"tenant '{tenant_id}' not found")
    return tenant


@router.post(
    "",
    status_code=201,
    summary="Create a tenant",
    response_model=Envelope[TenantOut],
    responses={409: {"description": "Conflict: a tenant with this id already exists"}},
)
async def create_tenant(body: TenantCreate, services: ServicesDep, _: AdminOnly, who: Who) -> Response:
    now = services.now()
    try:
        async with services.store.write() as conn:
            tenant = await store.insert_tenant(
                conn,
                tenant_id=body.id,
                name=body.name,
                metadata=body.metadata,
                retention_seconds=body.retention_seconds,
                theme=body.theme.stored() if body.theme is not None else None,
                now=now,
            )
            created = {
                "name": tenant.name,
                "metadata": tenant.metadata,
                "retention_seconds": body.retention_seconds,
                "theme": tenant.theme,
            }
            await audit_log.record(
                conn, who.entry("tenant.created", tenant.id, "tenant", tenant.id, created), now
            )
    except IntegrityError:
        raise ApiError(409, f"tenant '{body.id}' already exists") from None
    return ok(tenant_view(tenant), "Tenant created successfully", 201)


@router.get("", summary="List tenants", response_model=Envelope[Page[TenantOut]])
async def list_tenants(
    services: ServicesDep, _: AdminOnly, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    async with services.store.read() as conn:
        rows = await store.list_tenants(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [tenant_view(t) for t in rows]
    return ok(page(items, limit, rows[limit - 1].id if len(rows) > limit else None), "Tenants retrieved")


@router.get("/{tenant_id}", summary="Get a tenant", response_model=Envelope[TenantOut])
async def get_tenant(tenant_id: str, services: ServicesDep, _: AdminOnly) -> Response:
    return ok(tenant_view(await _existing_tenant(services, tenant_id)), "Tenant retrieved successfully")


@router.patch("/{tenant_id}", summary="Update a tenant", response_model=Envelope[TenantOut])
async def update_tenant(
    tenant_id: str, body: TenantUpdate, services: ServicesDep, _: AdminOnly, who: Who
) -> Response:
    # null leaves a name or metadata as they are; for retention_seconds it means the service's default.
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True, exclude={"theme"}).items()
        if v is not None or k == "retention_seconds"
    }
    if body.theme is not None:
        changes["theme"] = body.theme.stored()
    now = services.now()
    async with services.store.write() as conn:
        before = await store.get_tenant(conn, tenant_id)
        if before is None or not await store.update_tenant(conn, tenant_id, changes, now):
            raise not_found(f"tenant '{tenant_id}' not found")
        changed = diff(tenant_view(before), changes)
        await audit_log.record(
            conn, who.entry("tenant.updated", tenant_id, "tenant", tenant_id, changed), now
        )
    return ok(tenant_view(await _existing_tenant(services, tenant_id)), "Tenant updated successfully")


@router.delete(
    "/{tenant_id}", summary="Delete a tenant and everything it owns", response_model=Envelope[Deleted]
)
async def delete_tenant(tenant_id: str, services: ServicesDep, _: AdminOnly, who: Who) -> Response:
    now = services.now()
    async with services.store.write() as conn:
        if not await store.delete_tenant(conn, tenant_id):
            raise not_found(f"tenant '{tenant_id}' not found")
        await audit_log.record(conn, who.entry("tenant.deleted", tenant_id, "tenant", tenant_id), now)
    services.key_cache.clear()
    services.known_tenants.clear()
    return ok({"id": tenant_id, "deleted": True}, "Tenant deleted successfully")


def _own_tenant(principal: Principal, tenant_id: str) -> None:
    """A tenant key manages its own tenant's keys; another tenant is a 404, as any of its resources."""
    if principal.tenant_id is not None and principal.tenant_id != tenant_id:
        raise not_found(f"tenant '{tenant_id}' not found")


def _no_broader(principal: Principal, body: KeyCreate) -> KeyCreate:
    """The key to create, within the limits of the key that creates it: a limit the body leaves out is
    the creator's, and one beyond it is a 403 (an expiring key must not mint one that never expires, a
    key bound to an office network one usable from anywhere). The admin key has no limits."""
    changes: dict[str, Any] = {}
    if principal.expires_at is not None:
        if body.expires_at is None:
            changes["expires_at"] = principal.expires_at
        elif body.expires_at > principal.expires_at:
            raise ApiError(403, f"expires_at: a key cannot create a key that outlives it ({_at(principal)})")
    if principal.allowed_ips:
        if body.allowed_ips is None:
            changes["allowed_ips"] = [str(network) for network in principal.allowed_ips]
        elif (outside := within(parse_allowed_ips(body.allowed_ips), principal.allowed_ips)) is not None:
            raise ApiError(403, f"allowed_ips: '{outside}' is not within this key's own allowed_ips")
    if principal.rate_limit is not None:
        own = principal.rate_limit.rate
        if body.rate_limit is None:
            changes["rate_limit"] = own
        elif body.rate_limit > own:
            raise ApiError(403, f"rate_limit: {body.rate_limit:g} is above this key's own ({own:g})")
    # Scopes need no check: only tenant:manage (or the admin key) creates keys, and it holds them all.
    return body.model_copy(update=changes)


def _at(principal: Principal) -> str:
    assert principal.expires_at is not None
    return "it expires at " + principal.expires_at.isoformat().replace("+00:00", "Z")


@router.post(
    "/{tenant_id}/keys",
    status_code=201,
    summary="Create an API key (shown once)",
    response_model=Envelope[ApiKeyCreated],
)
async def create_key(
    tenant_id: str, services: ServicesDep, principal: Manage, who: Who, body: KeyCreate | None = None
) -> Response:
    _own_tenant(principal, tenant_id)
    wanted = _no_broader(principal, body or KeyCreate())
    now = services.now()
    if wanted.expires_at is not None and wanted.expires_at <= now:
        raise bad_request("expires_at must be in the future")
    await _existing_tenant(services, tenant_id)
    async with services.store.write() as conn:
        record, key = await store.insert_api_key(
            conn,
            tenant_id=tenant_id,
            name=wanted.name,
            now=now,
            scopes=tuple(wanted.scopes),
            expires_at=wanted.expires_at.astimezone(UTC) if wanted.expires_at is not None else None,
            allowed_ips=tuple(wanted.allowed_ips) if wanted.allowed_ips is not None else None,
            rate_limit=wanted.rate_limit,
        )
        view = key_view(record)
        created = {
            k: view[k] for k in ("name", "prefix", "scopes", "expires_at", "allowed_ips", "rate_limit")
        }
        await audit_log.record(
            conn, who.entry("api_key.created", tenant_id, "api_key", record.id, created), now
        )
    return ok({**key_view(record), "key": key}, "API key created; store it now, it is not shown again", 201)


@router.get(
    "/{tenant_id}/keys",
    summary="List a tenant's API keys (prefixes only)",
    response_model=Envelope[Page[ApiKeyOut]],
)
async def list_keys(tenant_id: str, services: ServicesDep, principal: Manage) -> Response:
    _own_tenant(principal, tenant_id)
    await _existing_tenant(services, tenant_id)
    async with services.store.read() as conn:
        keys = await store.list_api_keys(conn, tenant_id)
    return ok({"items": [key_view(k) for k in keys], "next_cursor": None}, "API keys retrieved")


@router.delete("/{tenant_id}/keys/{key_id}", summary="Revoke an API key", response_model=Envelope[Deleted])
async def delete_key(
    tenant_id: str, key_id: str, services: ServicesDep, principal: Manage, who: Who
) -> Response:
    _own_tenant(principal, tenant_id)
    now = services.now()
    async with services.store.write() as conn:
        if not await store.delete_api_key(conn, tenant_id, key_id):
            raise not_found(f"API key '{key_id}' not found")
        await audit_log.record(conn, who.entry("api_key.revoked", tenant_id, "api_key", key_id), now)
    services.key_cache.clear()
    return ok({"id": key_id, "deleted": True}, "API key revoked")
