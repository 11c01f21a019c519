"""The dashboard's pages under /ui: sign-in (a key, or a portal link), endpoints, the event catalog, the
operator's view, sign-out and the language switch.

Pages act through the API's own operations, called in process with the viewer's principal (``call``):
the same validation, the same error messages, the same audit log entries as over HTTP, one way to do
each thing. What a viewer may change is checked twice: forms are only rendered for a capability the
viewer has, and every POST checks it again with the CSRF token (``_changing``). Every answer carries a
Content-Security-Policy (scripts and styles from /ui/static only, ``frame-ancestors`` from
``HOOKLINE_PORTAL_FRAME_ANCESTORS``), ``X-Content-Type-Options`` and ``Referrer-Policy: no-referrer``
(a portal link's token must not leak through a referrer).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import orjson
from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import APIRouter, Depends, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hookline.api.access import own_token
from hookline.api.auth import principal_for
from hookline.api.envelope import ApiError
from hookline.api.key_policy import READ
from hookline.api.routes import event_types, tenants, webhooks
from hookline.api.services import Services, get_services
from hookline.dashboard import i18n
from hookline.dashboard.i18n import N_
from hookline.dashboard.viewer import (
    ADMIN,
    CSRF_FIELD,
    CSRF_HEADER,
    KEY,
    LINK,
    LOCALE_COOKIE,
    SIGN_IN_CSRF_COOKIE,
    Sessions,
    SignedOut,
    Viewer,
    admin_fingerprint,
    close_session,
    csrf_ok,
    expired_or_revoked,
    open_session,
)
from hookline.signed_tokens import PORTAL_LINK, BadToken
from hookline.store import portal_links
from hookline.store.portal_links import MANAGE_ENDPOINTS

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_PATH = "/ui/static"
SESSION_DECISION = own_token("the dashboard's session cookie, or the sign-in form (hookline.dashboard)")

router = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(SESSION_DECISION)])
sessions = Sessions()

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    extensions=["jinja2.ext.i18n"],
    undefined=jinja2.StrictUndefined,
)
templates.install_gettext_callables(i18n.gettext_, i18n.ngettext_, newstyle=True)  # type: ignore[attr-defined]


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


# --- rendering ------------------------------------------------------------------------------------------


def _locale(request: Request, viewer: Viewer | None) -> str:
    link_locale = viewer.link.locale if viewer is not None and viewer.link is not None else None
    chosen = request.cookies.get(LOCALE_COOKIE)
    return i18n.pick(link_locale, chosen, accept_language=request.headers.get("accept-language", ""))


def _csp(services: Services, nonce: str) -> str:
    ancestors = " ".join(services.settings.portal_frame_ancestors) or "'none'"
    return (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data: https:; "
        f"connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
        f"frame-ancestors {ancestors}"
    )


def render(
    request: Request,
    services: Services,
    template: str,
    viewer: Viewer | None = None,
    status: int = 200,
    active: str | None = None,
    **context: Any,
) -> HTMLResponse:
    locale = _locale(request, viewer)
    nonce = secrets.token_urlsafe(16)
    babel_locale = i18n.babel_locale(locale)
    with i18n.use(locale):
        html = templates.get_template(template).render(
            request=request,
            viewer=viewer,
            locale=locale,
            dir=i18n.direction(locale),
            languages=i18n.LANGUAGES,
            nonce=nonce,
            csrf_field=CSRF_FIELD,
            theme=_theme(viewer),
            number=lambda value: format_decimal(value, locale=babel_locale),
            moment=lambda value: _moment(value, babel_locale),
            tenant_query=_tenant_query(viewer),
            active=active,
            **context,
        )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = _csp(services, nonce)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _theme(viewer: Viewer | None) -> dict[str, Any]:
    theme = dict(viewer.theme) if viewer is not None else {}
    theme.setdefault("mode", "auto")
    return theme


def _tenant_query(viewer: Viewer | None) -> str:
    """What links keep in the operator's URLs: the tenant they are looking at."""
    if viewer is not None and viewer.kind == ADMIN and viewer.tenant_id:
        return "?" + urlencode({"tenant": viewer.tenant_id})
    return ""


def _moment(value: Any, locale: Any) -> str:
    """A time as text in UTC (the browser rewrites it in the viewer's time zone: static/app.js)."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return format_datetime(moment, "medium", tzinfo=None, locale=locale)


# --- who is looking -------------------------------------------------------------------------------------


async def _viewer(request: Request, services: Services) -> Viewer:
    return await sessions.viewer(request, services)


def _sign_in_redirect(reason: str | None = None) -> RedirectResponse:
    target = "/ui/sign-in" + (f"?{urlencode({'reason': reason})}" if reason else "")
    return RedirectResponse(target, status_code=303)


async def _page(
    request: Request, services: Services, build: Callable[[Viewer], Awaitable[Response]]
) -> Response:
    """A page for a signed-in viewer; anyone else goes to the sign-in page (a portal link's ended
    session sees why, and no sign-in form: its way back is a new link)."""
    try:
        viewer = await _viewer(request, services)
    except SignedOut as out:
        if out.portal:
            return render(request, services, "message.html", status=403, title=out.reason, detail=None)
        return _sign_in_redirect(out.reason)
    return await build(viewer)


async def _changing(request: Request, services: Services, capability: str | None) -> tuple[Viewer, Any]:
    """The viewer of a POST and its form, if the session holds ``capability`` and the CSRF token came
    back; else an ``ApiError`` (403) the caller renders."""
    viewer = await _viewer(request, services)
    form = await request.form()
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_ok(viewer.csrf, sent if isinstance(sent, str) else None):
        raise ApiError(403, "the form is missing its CSRF token or it does not match this session")
    if capability is not None and not viewer.can(capability):
        raise ApiError(403, "this session cannot change anything here (its access is read-only)")
    return viewer, form


async def call(operation: Callable[..., Awaitable[Response]], *args: Any, **kwargs: Any) -> Any:
    """An API operation, in process; its answer's ``data`` (its errors raise ``ApiError``)."""
    response = await operation(*args, **kwargs)
    return orjson.loads(response.body)["data"]


async def _refused(
    request: Request, services: Services, error: ApiError, viewer: Viewer | None = None
) -> Response:
    """The page for a refused request: the error as the API words it."""
    if viewer is None:
        with contextlib.suppress(SignedOut):
            viewer = await _viewer(request, services)
    return render(
        request,
        services,
        "message.html",
        viewer=viewer,
        status=error.code,
        title=N_("Not allowed"),
        detail=error.error,
    )


# --- sign-in, portal links, sign-out, language ------------------------------------------------------------


@router.get("")
async def home(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        target = "/ui/operator" if viewer.kind == ADMIN and not viewer.tenant_id else "/ui/endpoints"
        return RedirectResponse(target + _tenant_query(viewer), status_code=303)

    return await _page(request, services, build)


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
    try:
        viewer, _ = await _changing(request, services, None)
    except SignedOut:
        return _sign_in_redirect()
    except ApiError as error:
        return await _refused(request, services, error)
    if viewer.kind == LINK:
        response: Response = render(
            request, services, "message.html", title=N_("You have signed out."), detail=None
        )
    else:
        response = _sign_in_redirect()
    close_session(response)
    return response


@router.post("/language")
async def choose_language(request: Request, services: Services = Depends(get_services)) -> Response:
    """The language switch (no session needed: the sign-in page has it too)."""
    form = await request.form()
    locale = form.get("locale")
    back = form.get("next")
    target = back if isinstance(back, str) and back.startswith("/ui") and "//" not in back else "/ui"
    response = RedirectResponse(target, status_code=303)
    if isinstance(locale, str) and locale in i18n.LANGUAGES:
        response.set_cookie(
            LOCALE_COOKIE, locale, max_age=365 * 86400, path="/ui", secure=True, samesite="lax"
        )
    return response


# --- endpoints ------------------------------------------------------------------------------------------


def _acting_tenant(viewer: Viewer) -> str | None:
    return viewer.tenant_id if viewer.kind == ADMIN else None


@router.get("/endpoints")
async def endpoints_page(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        if viewer.kind == ADMIN and not viewer.tenant_id:
            return RedirectResponse("/ui/operator", status_code=303)
        try:
            found = await call(
                webhooks.list_webhooks, services, viewer.principal, 250, None, _acting_tenant(viewer)
            )
        except ApiError as error:
            return await _refused(request, services, error, viewer)
        return render(
            request, services, "endpoints.html", viewer, active="endpoints", endpoints=found["items"]
        )

    return await _page(request, services, build)


@router.post("/endpoints/{webhook_id}/active")
async def set_endpoint_active(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    try:
        viewer, form = await _changing(request, services, MANAGE_ENDPOINTS)
        active = form.get("active") == "true"
        body = webhooks.WebhookUpdate(active=active)
        await call(
            webhooks.update_webhook,
            webhook_id,
            body,
            services,
            viewer.principal,
            viewer.actor,
            _acting_tenant(viewer),
        )
    except SignedOut:
        return _sign_in_redirect()
    except ApiError as error:
        return await _refused(request, services, error)
    return RedirectResponse("/ui/endpoints" + _tenant_query(viewer), status_code=303)


# --- the event catalog and the operator's view ------------------------------------------------------------


@router.get("/event-types")
async def catalog_page(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        found = await call(event_types.list_event_types, services, viewer.principal)
        items = [
            {**t, "schema_json": _pretty(t["schema"]), "example_json": _pretty(t["example"])}
            for t in found["items"]
        ]
        return render(request, services, "event_types.html", viewer, active="event-types", event_types=items)

    return await _page(request, services, build)


@router.get("/operator")
async def operator_page(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        if viewer.kind != ADMIN:
            return await _refused(
                request, services, ApiError(403, "only the operator (admin key) sees this page"), viewer
            )
        found = await call(tenants.list_tenants, services, viewer.principal, 250, None)
        async with services.store.read() as conn:
            links = await portal_links.list_for(conn, None, limit=50)
        page = {"tenants": found["items"], "links": links, "now": services.now()}
        return render(request, services, "operator.html", viewer, active="operator", **page)

    return await _page(request, services, build)


def _pretty(value: Mapping[str, Any] | Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
