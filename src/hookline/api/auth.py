"""Who is calling (the operator's admin key, or one tenant's key with its scopes), whether that key may
be used now, from there, this often; and which tenant a call acts on.

What a route requires of the caller is declared next to the route (``hookline.api.access``); this
module only establishes the ``Principal``. A tenant key is refused when it is unknown or revoked (401),
expired (401), used from outside its ``allowed_ips`` (403) or over its own or its tenant's rate limit
(429, ``hookline.api.rate_limits``). The admin key is compared in constant time; tenant keys are found
by their SHA-256 (``hookline.store.tenants.key_for_hash``) and cached by it for a few seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.types import Scope

from hookline.api.client_address import FORWARDED_FOR, client_address
from hookline.api.envelope import ApiError
from hookline.api.key_policy import allows
from hookline.api.principal import ADMIN_KEY_ID, OPERATOR, Principal
from hookline.api.services import Services, get_services
from hookline.store.tenants import get_tenant, hash_key, key_for_hash

__all__ = ["ADMIN_KEY_ID", "CHALLENGE", "Principal", "ServicesDep", "authenticate", "principal_for"]

CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def authenticate(
    connection: HTTPConnection, services: Annotated[Services, Depends(get_services)]
) -> Principal:
    """The caller of an HTTP request or a WebSocket (``hookline.api.access`` builds on it)."""
    return await principal_for(services, connection.headers.get("authorization", ""), connection.scope)


async def principal_for(services: Services, authorization: str, scope: Scope) -> Principal:
    """The caller named by an ``Authorization`` header value, if its key may be used for this request
    (``scope``: the ASGI scope, for the client's address). Also used by the lean ingest routes."""
    header = authorization.strip()
    if not header:
        raise ApiError(401, "missing Authorization header (send 'Authorization: Bearer <key>')", CHALLENGE)
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    key_hash = hash_key(token)
    if services.is_admin(key_hash):
        return OPERATOR
    principal = services.key_cache.get(key_hash)
    if principal is None:
        async with services.store.read() as conn:
            key = await key_for_hash(conn, key_hash)
        if key is None:
            raise ApiError(401, "invalid or revoked API key", CHALLENGE)
        principal = Principal.of_key(key)
        services.key_cache.put(key_hash, principal)
    if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
        expired = principal.expires_at.isoformat().replace("+00:00", "Z")
        raise ApiError(401, f"this API key expired at {expired}", CHALLENGE)
    if principal.allowed_ips:
        _check_address(services, principal, scope)
    services.rate_limiter.admit(principal)
    services.key_usage.note(principal.key_id)
    return principal


def _check_address(services: Services, principal: Principal, scope: Scope) -> None:
    peer = scope.get("client")
    forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == FORWARDED_FOR]
    address = client_address(peer[0] if peer else None, forwarded, services.settings.trusted_proxies)
    if not allows(principal.allowed_ips, address):
        where = str(address) if address is not None else "an address that cannot be told"
        raise ApiError(403, f"this API key may not be used from {where} (not in its allowed_ips)")


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


ServicesDep = Annotated[Services, Depends(get_services)]
