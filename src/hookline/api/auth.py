"""Who is calling: the operator (admin key) or one tenant (tenant key); and which tenant a call acts on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hookline.api.envelope import ApiError
from hookline.api.services import Services, get_services
from hookline.store.tenants import get_tenant, hash_key, tenant_for_key_hash

CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    tenant_id: str | None  # None: the admin key

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None


async def authenticate(request: Request, services: Annotated[Services, Depends(get_services)]) -> Principal:
    return await principal_for(services, request.headers.get("authorization", ""))


async def principal_for(services: Services, authorization: str) -> Principal:
    """The caller named by an ``Authorization`` header value (also used by the lean ingest routes)."""
    header = authorization.strip()
    if not header:
        raise ApiError(401, "missing Authorization header (send 'Authorization: Bearer <key>')", CHALLENGE)
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    key_hash = hash_key(token)
    if services.is_admin(key_hash):
        return Principal(None)
    tenant_id = services.key_cache.get(key_hash)
    if tenant_id is None:
        async with services.store.read() as conn:
            tenant_id = await tenant_for_key_hash(conn, key_hash)
        if tenant_id is None:
            raise ApiError(401, "invalid or revoked API key", CHALLENGE)
        services.key_cache.put(key_hash, tenant_id)
    return Principal(tenant_id)


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "this operation needs the admin key")
    return principal


async def resolve_tenant(
    services: Services, principal: Principal, requested: str | None, *, cached: bool = False
) -> str:
    """The tenant a call acts on. Tenant keys act on their own tenant; the admin key names one.

    ``cached``: trust a tenant seen in the last few seconds (``Services.known_tenants``) instead of a
    query per call. Only for callers that cope with the tenant having been deleted meanwhile by another
    process (event ingest: see ``hookline.api.ingest``)."""
    if principal.tenant_id is not None:
        if requested and requested != principal.tenant_id:
            raise ApiError(403, "a tenant key can only act on its own tenant")
        return principal.tenant_id
    if not requested:
        raise ApiError(400, "tenant_id is required when using the admin key")
    if cached and services.known_tenants.get(requested) is not None:
        return requested
    async with services.store.read() as conn:
        if await get_tenant(conn, requested) is None:
            raise ApiError(404, f"tenant '{requested}' not found")
    services.known_tenants.put(requested, requested)
    return requested


Authenticated = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(require_admin)]
ServicesDep = Annotated[Services, Depends(get_services)]
