"""Who is looking at the dashboard, and what they may do: the ``Viewer`` of a request, from its session.

A session is a signed cookie (``hookline.signed_tokens``, purpose ``SESSION``) naming how it was opened:

* ``admin``: the operator's admin key was entered (the cookie holds a fingerprint of the admin key, so
  changing ``HOOKLINE_ADMIN_KEY`` ends the sessions);
* ``key``: a tenant's API key was entered (the cookie holds the key's id: revoking or expiring the key
  ends the session; the key's scopes say what it may do: ``tenant:manage`` everything, ``read`` only
  reading; a key without ``read`` cannot sign in);
* ``link``: a portal link was opened (the cookie holds the link's id: revoking the link ends it; the
  link's capabilities say what it may do).

Each session has a CSRF token: every form carries it and every POST must send it back (the form field
or the ``X-CSRF-Token`` header htmx sends). Key and link rows are looked up at most every few seconds
per process (``KeyCache``), as the API does for keys.

Cookies are ``HttpOnly`` and ``Secure`` (browsers keep ``Secure`` cookies of ``http://localhost`` and
``127.0.0.1`` too); ``SameSite=Lax`` for sessions opened here, ``SameSite=None; Partitioned`` for those
opened by a portal link, which live in a platform's frame (a partitioned cookie is that site's alone).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hookline.api.audit import Actor
from hookline.api.client_address import FORWARDED_FOR, client_address, parse_address
from hookline.api.key_policy import MANAGE, READ, allows
from hookline.api.principal import OPERATOR, Principal
from hookline.api.services import KeyCache, Services
from hookline.api.theme import merged
from hookline.dashboard.i18n import N_
from hookline.signed_tokens import SESSION, BadToken
from hookline.store import portal_links
from hookline.store.portal_links import CAPABILITIES, PortalLink
from hookline.store.tenants import ApiKey, get_api_key, get_tenant

COOKIE = "hookline_session"
LOCALE_COOKIE = "hookline_locale"
SIGN_IN_CSRF_COOKIE = "hookline_sign_in"  # the sign-in form's own CSRF token (no session yet)
SESSION_SECONDS = 12 * 3600  # a session opened by a key; a link's ends with the link
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

ADMIN, KEY, LINK = "admin", "key", "link"


class SignedOut(Exception):
    """No usable session: sign in (``reason`` says why, for the sign-in page)."""

    def __init__(self, reason: str | None = None, *, portal: bool = False) -> None:
        super().__init__(reason or "")
        self.reason = reason
        self.portal = portal  # a portal link's session: its way back is a new link, not the sign-in form


@dataclass(frozen=True)
class Viewer:
    kind: str  # ADMIN, KEY or LINK
    principal: Principal
    tenant_id: str | None  # None: the operator, before choosing a tenant
    capabilities: frozenset[str]  # what may be changed (hookline.store.portal_links.CAPABILITIES)
    csrf: str
    actor: Actor
    link: PortalLink | None = None
    theme: dict[str, Any] = field(default_factory=dict)

    @property
    def is_operator(self) -> bool:
        return self.kind == ADMIN

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def read_only(self) -> bool:
        return not self.capabilities


def admin_fingerprint(services: Services) -> str:
    return hmac.new(services.admin_key_hash.encode(), b"dashboard", hashlib.sha256).hexdigest()[:32]


def client_of(request: Request, services: Services) -> str | None:
    peer = request.client.host if request.client else None
    forwarded = [v.decode("latin-1") for name, v in request.scope["headers"] if name == FORWARDED_FOR]
    address = client_address(peer, forwarded, services.settings.trusted_proxies)
    return str(address) if address is not None else None


def open_session(
    response: Response, services: Services, kind: str, ident: str, tenant_id: str | None
) -> None:
    """Set the session cookie on ``response`` (a new CSRF token with it)."""
    payload = {"k": kind, "id": ident, "t": tenant_id, "c": secrets.token_urlsafe(24), "at": int(time.time())}
    value = services.signer(SESSION).sign(payload)
    linked = kind == LINK
    response.set_cookie(
        COOKIE,
        value,
        max_age=None if linked else SESSION_SECONDS,
        path="/ui",
        secure=True,
        httponly=True,
        samesite="none" if linked else "lax",
    )
    if linked:
        _partitioned(response)


def _partitioned(response: Response) -> None:
    """Mark the cookie just set ``Partitioned`` (Python's http.cookies knows it only from 3.14)."""
    header, cookie = response.raw_headers[-1]
    assert header == b"set-cookie"
    response.raw_headers[-1] = (header, cookie + b"; Partitioned")


def close_session(response: Response, viewer: Viewer) -> None:
    """Delete the session cookie: with the attributes it was set with (a partitioned cookie is only
    deleted by a partitioned deletion)."""
    linked = viewer.kind == LINK
    response.delete_cookie(
        COOKIE, path="/ui", secure=True, httponly=True, samesite="none" if linked else "lax"
    )
    if linked:
        _partitioned(response)


class Sessions:
    """Reads a request's session into a ``Viewer`` (the rows behind it cached for a few seconds)."""

    def __init__(self) -> None:
        self._keys: KeyCache[ApiKey] = KeyCache(ttl=5.0)
        self._links: KeyCache[PortalLink] = KeyCache(ttl=5.0)
        self._themes: KeyCache[dict[str, Any]] = KeyCache(ttl=5.0)

    async def _theme(self, services: Services, tenant_id: str) -> dict[str, Any]:
        """The tenant's own theme (``hookline.api.theme``), cached like the rows above."""
        theme = self._themes.get(tenant_id)
        if theme is None:
            async with services.store.read() as conn:
                tenant = await get_tenant(conn, tenant_id)
            theme = dict(tenant.theme) if tenant is not None else {}
            self._themes.put(tenant_id, theme)
        return theme

    async def viewer(self, request: Request, services: Services) -> Viewer:
        raw = request.cookies.get(COOKIE)
        if not raw:
            raise SignedOut()
        try:
            payload = services.signer(SESSION).read(raw, max_age=7 * 86400)
        except BadToken:
            raise SignedOut(N_("Your session has ended. Sign in again.")) from None
        kind, ident, csrf = payload.get("k"), str(payload.get("id", "")), str(payload.get("c", ""))
        actor_address = client_of(request, services)
        if kind == ADMIN:
            if not hmac.compare_digest(ident, admin_fingerprint(services)):
                raise SignedOut(N_("Your session has ended. Sign in again."))
            if time.time() - int(payload.get("at", 0)) > SESSION_SECONDS:
                raise SignedOut(N_("Your session has ended. Sign in again."))
            tenant = request.query_params.get("tenant") or None
            return Viewer(
                ADMIN, OPERATOR, tenant, frozenset(CAPABILITIES), csrf, Actor("admin", actor_address)
            )
        if kind == KEY:
            if time.time() - int(payload.get("at", 0)) > SESSION_SECONDS:
                raise SignedOut(N_("Your session has ended. Sign in again."))
            key = self._keys.get(ident)
            if key is None:
                async with services.store.read() as conn:
                    key = await get_api_key(conn, ident)
                if key is None:
                    raise SignedOut(N_("The API key of this session was revoked. Sign in again."))
                self._keys.put(ident, key)
            if key.expires_at is not None and key.expires_at <= services.now():
                raise SignedOut(N_("The API key of this session has expired."))
            principal = Principal.of_key(key)
            if principal.allowed_ips and not allows(principal.allowed_ips, parse_address(actor_address)):
                raise SignedOut(N_("This API key may not be used from this address."))
            if READ not in principal.scopes:
                raise SignedOut(N_("This API key cannot read the dashboard (it lacks the 'read' scope)."))
            capabilities = frozenset(CAPABILITIES) if MANAGE in principal.scopes else frozenset()
            actor = Actor(key.id, actor_address)
            theme = await self._theme(services, key.tenant_id)
            return Viewer(KEY, principal, key.tenant_id, capabilities, csrf, actor, theme=theme)
        if kind == LINK:
            link = self._links.get(ident)
            if link is None:
                async with services.store.read() as conn:
                    link = await portal_links.get(conn, ident)
                if link is None:
                    raise SignedOut(N_("This portal link is no longer valid."), portal=True)
                self._links.put(ident, link)
            if not link.usable(services.now()):
                raise SignedOut(expired_or_revoked(link, services.now()), portal=True)
            capabilities = frozenset(link.capabilities)
            scopes = frozenset({READ, MANAGE} if capabilities else {READ})
            principal = Principal(tenant_id=link.tenant_id, key_id=f"portal_link:{link.id}", scopes=scopes)
            actor = Actor(principal.key_id, actor_address)
            theme = merged(await self._theme(services, link.tenant_id), link.theme)
            return Viewer(LINK, principal, link.tenant_id, capabilities, csrf, actor, link, theme)
        raise SignedOut()


def expired_or_revoked(link: PortalLink, now: datetime) -> str:
    if link.revoked_at is not None:
        return N_("This portal link was revoked.")
    return N_("This portal link has expired. Ask for a new one.")


def csrf_ok(viewer_csrf: str, sent: str | None) -> bool:
    return bool(sent) and bool(viewer_csrf) and hmac.compare_digest(viewer_csrf, sent or "")
