"""The dashboard's way in and out: the home redirect, sign-in with an API key, portal links, sign-out,
the language switch; and the pages every viewer has: the event catalog and the operator's view."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from hookline.api.auth import principal_for
from hookline.api.envelope import ApiError
from hookline.api.key_policy import READ
from hookline.api.routes import event_types, tenants
from hookline.api.routes import portal_links as portal_links_api
from hookline.api.services import Services, get_services
from hookline.dashboard import i18n
from hookline.dashboard.i18n import N_
from hookline.dashboard.viewer import (
    ADMIN,
    CSRF_FIELD,
    KEY,
    LINK,
    LOCALE_COOKIE,
    SIGN_IN_CSRF_COOKIE,
    Viewer,
    admin_fingerprint,
    close_session,
    csrf_ok,
    expired_or_revoked,
    open_session,
)
from hookline.dashboard.web import (
    act,
    call,
    new_router,
    page,
    pretty,
    render,
    sign_in_redirect,
    tenant_query,
    validated,
)
from hookline.signed_tokens import PORTAL_LINK, BadToken
from hookline.store import overview, portal_links

router = new_router()

CAPABILITY_NAMES = {
    "manage_endpoints": N_("Manage endpoints"),
    "view_secrets": N_("View secrets"),
    "send_tests": N_("Send tests"),
    "retry_replay": N_("Retry and replay"),
}

# --- sign-in, portal links, sign-out, language ------------------------------------------------------------


@router.get("")
async def home(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        target = "/ui/operator" if viewer.kind == ADMIN and not viewer.tenant_id else "/ui/endpoints"
        return RedirectResponse(target + tenant_query(viewer), status_code=303)

    return await page(request, services, build)


@router.get("/sign-in")
async def sign_in_form(request: Request, services: Services = Depends(get_services)) -> Response:
    token = secrets.token_urlsafe(24)
    reason = request.query_params.get("reason")
    response = render(request, services, "sign_in.html", reason=reason, error=None, form_csrf=token)
    response.set_cookie(SIGN_IN_CSRF_COOKIE, token, path="/ui", secure=True, httponly=True, samesite="strict")
    return response


@router.post("/sign-in")
async def sign_in(request: Request, services: Services = Depends(get_services)) -> Response:
    form = await request.form()
    expected = request.cookies.get(SIGN_IN_CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD)
    key = form.get("api_key")

    def again(error: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        page = render(
            request, services, "sign_in.html", status=status, reason=None, error=error, form_csrf=token
        )
        page.set_cookie(SIGN_IN_CSRF_COOKIE, token, path="/ui", secure=True, httponly=True, samesite="strict")
        return page

    if not isinstance(sent, str) or not csrf_ok(expected, sent):
        return again(N_("The form expired. Try again."), 403)
    if not isinstance(key, str) or not key.strip():
        return again(N_("Enter an API key."), 400)
    try:
        principal = await principal_for(services, key.strip(), request.scope)
    except ApiError as exc:
        return again(exc.error if exc.code != 401 else N_("This API key is not valid."), exc.code)
    if principal.is_admin:
        response = RedirectResponse("/ui/operator", status_code=303)
        open_session(response, services, ADMIN, admin_fingerprint(services), None)
    elif READ in principal.scopes:
        response = RedirectResponse("/ui/endpoints", status_code=303)
        open_session(response, services, KEY, principal.key_id, principal.tenant_id)
    else:
        return again(N_("This API key cannot read the dashboard (it lacks the 'read' scope)."), 403)
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path="/ui", secure=True, httponly=True, samesite="strict")
    return response


@router.get("/portal")
async def open_portal_link(request: Request, services: Services = Depends(get_services)) -> Response:
    """A portal link: its token names a link; a usable one opens a session for its tenant."""
    token = request.query_params.get("token", "")
    try:
        payload = services.signer(PORTAL_LINK).read(token, max_age=7 * 86400 + 60)
    except BadToken:
        title = N_("This portal link is not valid.")
        return render(request, services, "message.html", status=403, title=title, detail=None)
    async with services.store.read() as conn:
        link = await portal_links.get(conn, str(payload.get("link", "")))
    if link is None:
        return render(
            request,
            services,
            "message.html",
            status=403,
            title=N_("This portal link is not valid."),
            detail=None,
        )
    if not link.usable(services.now()):
        title = expired_or_revoked(link, services.now())
        return render(request, services, "message.html", status=403, title=title, detail=None)
    response = RedirectResponse("/ui/endpoints", status_code=303)
    open_session(response, services, LINK, link.id, link.tenant_id)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, services: Services = Depends(get_services)) -> Response:
    async def change(viewer: Viewer, _: Any) -> Response:
        if viewer.kind == LINK:
            response: Response = render(
                request, services, "message.html", title=N_("You have signed out."), detail=None
            )
        else:
            response = sign_in_redirect()
        close_session(response, viewer)
        return response

    return await act(request, services, None, change)


@router.get("/language")
async def choose_language(request: Request, services: Services = Depends(get_services)) -> Response:
    """The language switch: a link, not a form (it changes nothing but the viewer's own preference
    cookie, so it needs no CSRF token; no session needed: the sign-in page has it too)."""
    locale = request.query_params.get("locale")
    back = request.query_params.get("next")
    target = back if isinstance(back, str) and back.startswith("/ui") and "//" not in back else "/ui"
    response = RedirectResponse(target, status_code=303)
    if isinstance(locale, str) and locale in i18n.LANGUAGES:
        response.set_cookie(
            LOCALE_COOKIE, locale, max_age=365 * 86400, path="/ui", secure=True, samesite="lax"
        )
    return response


# --- the event catalog and the operator's view ------------------------------------------------------------


@router.get("/event-types")
async def catalog_page(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        found = await call(event_types.list_event_types, services, viewer.principal)
        items = [
            {**t, "schema_json": pretty(t["schema"]), "example_json": pretty(t["example"])}
            for t in found["items"]
        ]
        return render(request, services, "event_types.html", viewer, active="event-types", event_types=items)

    return await page(request, services, build)


@router.get("/operator")
async def operator_page(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        if viewer.kind != ADMIN:
            raise ApiError(403, "only the operator (admin key) sees this page")
        found = await call(tenants.list_tenants, services, viewer.principal, 250, None)
        now = services.now()
        async with services.store.read() as conn:
            links = await portal_links.list_for(conn, None, limit=50)
            queues = await overview.read(conn, now)
            failing = await overview.failing_endpoints(conn)
        page = {
            "tenants": found["items"],
            "links": links,
            "now": now,
            "queues": sorted(queues.queues, key=lambda q: -q.pending),
            "failing": failing,
            "capability_names": CAPABILITY_NAMES,
            "lifetimes": LINK_LIFETIMES,
        }
        return render(request, services, "operator.html", viewer, active="operator", **page)

    return await page(request, services, build)


# --- the operator's actions: tenants and portal links ------------------------------------------------------

LINK_LIFETIMES = (3600, 86400, 7 * 86400)


def _operator_only(viewer: Viewer) -> None:
    if viewer.kind != ADMIN:
        raise ApiError(403, "only the operator (admin key) can do this")


@router.post("/operator/tenants")
async def create_tenant(request: Request, services: Services = Depends(get_services)) -> Response:
    async def change(viewer: Viewer, form: Any) -> Response:
        _operator_only(viewer)
        name, ident = str(form.get("name") or "").strip(), str(form.get("id") or "").strip()
        body = validated(tenants.TenantCreate, name=name, id=ident or None)
        await call(tenants.create_tenant, body, services, viewer.principal, viewer.actor)
        return RedirectResponse("/ui/operator", status_code=303)

    return await act(request, services, None, change)


@router.post("/operator/portal-links")
async def create_portal_link(request: Request, services: Services = Depends(get_services)) -> Response:
    """The URL is shown on the page this answers, once (as the API shows it once)."""

    async def change(viewer: Viewer, form: Any) -> Response:
        _operator_only(viewer)
        tenant_id = str(form.get("tenant_id") or "")
        chosen = [str(c) for c in form.getlist("capabilities")] or ["read_only"]
        lifetime = str(form.get("expires_in") or LINK_LIFETIMES[0])
        if lifetime not in {str(seconds) for seconds in LINK_LIFETIMES}:
            raise ApiError(400, "'expires_in' must be one of the offered lifetimes")
        locale = str(form.get("locale") or "") or None
        fields = {"capabilities": chosen, "expires_in": int(lifetime), "locale": locale}
        body = validated(portal_links_api.PortalLinkCreate, **fields, note=str(form.get("note") or ""))
        made = await call(
            portal_links_api.create_portal_link,
            tenant_id,
            body,
            request,
            services,
            viewer.principal,
            viewer.actor,
        )
        return render(
            request,
            services,
            "portal_link_created.html",
            viewer,
            active="operator",
            link=made,
            names=CAPABILITY_NAMES,
        )

    return await act(request, services, None, change)


@router.post("/operator/portal-links/{link_id}/revoke")
async def revoke_portal_link(
    link_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, form: Any) -> Response:
        _operator_only(viewer)
        tenant_id = str(form.get("tenant_id") or "")
        await call(
            portal_links_api.revoke_portal_link, tenant_id, link_id, services, viewer.principal, viewer.actor
        )
        return RedirectResponse("/ui/operator", status_code=303)

    return await act(request, services, None, change)
