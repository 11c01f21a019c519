"""/v1/tenants and their API keys (admin key only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from hookline.api.auth import Admin, ServicesDep
from hookline.api.envelope import ApiError, not_found, ok
from hookline.api.pagination import Cursor, Limit, decode_cursor, page
from hookline.api.responses import ApiKeyCreated, ApiKeyOut, Deleted, Envelope, Page, TenantOut
from hookline.api.routing import StrictJsonRoute
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


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None
    retention_seconds: RetentionSeconds = None  # null: back to the service's retention


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="default", min_length=1, max_length=200)


def tenant_view(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "metadata": t.metadata,
        "retention_seconds": t.retention_seconds,
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
async def create_tenant(body: TenantCreate, services: ServicesDep, _: Admin) -> Response:
    try:
        async with services.store.write() as conn:
            tenant = await store.insert_tenant(
                conn,
                tenant_id=body.id,
                name=body.name,
                metadata=body.metadata,
                retention_seconds=body.retention_seconds,
                now=services.now(),
            )
    except IntegrityError:
        raise ApiError(409, f"tenant '{body.id}' already exists") from None
    return ok(tenant_view(tenant), "Tenant created successfully", 201)


@router.get("", summary="List tenants", response_model=Envelope[Page[TenantOut]])
async def list_tenants(services: ServicesDep, _: Admin, limit: Limit = 50, cursor: Cursor = None) -> Response:
    async with services.store.read() as conn:
        rows = await store.list_tenants(conn, after=decode_cursor(cursor), limit=limit + 1)
    items = [tenant_view(t) for t in rows]
    return ok(page(items, limit, rows[limit - 1].id if len(rows) > limit else None), "Tenants retrieved")


@router.get("/{tenant_id}", summary="Get a tenant", response_model=Envelope[TenantOut])
async def get_tenant(tenant_id: str, services: ServicesDep, _: Admin) -> Response:
    return ok(tenant_view(await _existing_tenant(services, tenant_id)), "Tenant retrieved successfully")


@router.patch("/{tenant_id}", summary="Update a tenant", response_model=Envelope[TenantOut])
async def update_tenant(tenant_id: str, body: TenantUpdate, services: ServicesDep, _: Admin) -> Response:
    # null leaves a name or metadata as they are; for retention_seconds it means the service's default.
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if v is not None or k == "retention_seconds"
    }
    async with services.store.write() as conn:
        if not await store.update_tenant(conn, tenant_id, changes, services.now()):
            raise not_found(f"tenant '{tenant_id}' not found")
    return ok(tenant_view(await _existing_tenant(services, tenant_id)), "Tenant updated successfully")


@router.delete(
    "/{tenant_id}", summary="Delete a tenant and everything it owns", response_model=Envelope[Deleted]
)
async def delete_tenant(tenant_id: str, services: ServicesDep, _: Admin) -> Response:
    async with services.store.write() as conn:
        if not await store.delete_tenant(conn, tenant_id):
            raise not_found(f"tenant '{tenant_id}' not found")
    services.key_cache.clear()
    services.known_tenants.clear()
    return ok({"id": tenant_id, "deleted": True}, "Tenant deleted successfully")


@router.post(
    "/{tenant_id}/keys",
    status_code=201,
    summary="Create an API key (shown once)",
    response_model=Envelope[ApiKeyCreated],
)
async def create_key(
    tenant_id: str, services: ServicesDep, _: Admin, body: KeyCreate | None = None
) -> Response:
    await _existing_tenant(services, tenant_id)
    async with services.store.write() as conn:
        record, key = await store.insert_api_key(
            conn, tenant_id=tenant_id, name=(body or KeyCreate()).name, now=services.now()
        )
    return ok({**key_view(record), "key": key}, "API key created; store it now, it is not shown again", 201)


@router.get(
    "/{tenant_id}/keys",
    summary="List a tenant's API keys (prefixes only)",
    response_model=Envelope[Page[ApiKeyOut]],
)
async def list_keys(tenant_id: str, services: ServicesDep, _: Admin) -> Response:
    await _existing_tenant(services, tenant_id)
    async with services.store.read() as conn:
        keys = await store.list_api_keys(conn, tenant_id)
    return ok({"items": [key_view(k) for k in keys], "next_cursor": None}, "API keys retrieved")


@router.delete("/{tenant_id}/keys/{key_id}", summary="Revoke an API key", response_model=Envelope[Deleted])
async def delete_key(tenant_id: str, key_id: str, services: ServicesDep, _: Admin) -> Response:
    async with services.store.write() as conn:
        if not await store.delete_api_key(conn, tenant_id, key_id):
            raise not_found(f"API key '{key_id}' not found")
    services.key_cache.clear()
    return ok({"id": key_id, "deleted": True}, "API key revoked")
