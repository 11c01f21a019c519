"""What every dashboard page shares: the templates and how a page is rendered (language, theme,
security headers), who the viewer is (``page``, ``changing``), and how pages act: through the API's own
operations, called in process with the viewer's principal (``call``), so the dashboard has the same
validation, error messages, tenant scoping and audit log entries as the API: one way to do each thing.

What a viewer may change is checked twice: forms are only rendered for a capability the viewer has, and
every POST checks it again with the CSRF token (``changing``). Every answer carries a
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
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
import orjson
from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import APIRouter, Depends, Request
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hookline.api.access import own_token
from hookline.api.envelope import ApiError
from hookline.api.errors import describe_validation_error
from hookline.api.services import Services
from hookline.dashboard import i18n
from hookline.dashboard.i18n import N_
from hookline.dashboard.viewer import (
    ADMIN,
    CSRF_FIELD,
    CSRF_HEADER,
    LOCALE_COOKIE,
    Sessions,
    SignedOut,
    Viewer,
    csrf_ok,
)

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_PATH = "/ui/static"
SESSION_DECISION = own_token("the dashboard's session cookie, or the sign-in form (hookline.dashboard)")

sessions = Sessions()
M = TypeVar("M", bound=BaseModel)


def new_router() -> APIRouter:
    """A router for pages under /ui (every route declares the session decision, for the access test)."""
    return APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(SESSION_DECISION)])


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
            tenant_query=tenant_query(viewer),
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


def tenant_query(viewer: Viewer | None) -> str:
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


async def viewer_of(request: Request, services: Services) -> Viewer:
    return await sessions.viewer(request, services)


def sign_in_redirect(reason: str | None = None) -> RedirectResponse:
    target = "/ui/sign-in" + (f"?{urlencode({'reason': reason})}" if reason else "")
    return RedirectResponse(target, status_code=303)


async def page(
    request: Request,
    services: Services,
    build: Callable[[Viewer], Awaitable[Response]],
    capability: str | None = None,
) -> Response:
    """A page for a signed-in viewer (holding ``capability``, if one is named); anyone else goes to the
    sign-in page (a portal link's ended session sees why, and no sign-in form: its way back is a new
    link). A refusal ``build`` meets (the API's, say a 404) is the page, as the API words it."""
    try:
        viewer = await viewer_of(request, services)
    except SignedOut as out:
        if out.portal:
            return render(request, services, "message.html", status=403, title=out.reason, detail=None)
        return sign_in_redirect(out.reason)
    if capability is not None and not viewer.can(capability):
        return await refused(request, services, not_allowed(viewer), viewer)
    try:
        return await build(viewer)
    except ApiError as error:
        return await refused(request, services, error, viewer)


async def act(
    request: Request,
    services: Services,
    capability: str | None,
    change: Callable[[Viewer, Any], Awaitable[Response]],
) -> Response:
    """A POST: the CSRF token and ``capability`` checked (``changing``), then ``change(viewer, form)``.
    A session that is gone goes to the sign-in page; a refusal (ours or the API's) is the page."""
    try:
        viewer, form = await changing(request, services, capability)
        return await change(viewer, form)
    except SignedOut:
        return sign_in_redirect()
    except ApiError as error:
        return await refused(request, services, error)


async def changing(request: Request, services: Services, capability: str | None) -> tuple[Viewer, Any]:
    """The viewer of a POST and its form, if the session holds ``capability`` and the CSRF token came
    back; else an ``ApiError`` (403) the caller renders."""
    viewer = await viewer_of(request, services)
    form = await request.form()
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_ok(viewer.csrf, sent if isinstance(sent, str) else None):
        raise ApiError(403, "the form is missing its CSRF token or it does not match this session")
    if capability is not None and not viewer.can(capability):
        raise not_allowed(viewer)
    return viewer, form


def not_allowed(viewer: Viewer) -> ApiError:
    """The refusal of what the viewer's session may not do."""
    if viewer.read_only:
        return ApiError(403, "this session cannot change anything here (its access is read-only)")
    return ApiError(403, "this session may not do this (its portal link does not allow it)")


async def call(operation: Callable[..., Awaitable[Response]], *args: Any, **kwargs: Any) -> Any:
    """An API operation, in process; its answer's ``data`` (its errors raise ``ApiError``)."""
    response = await operation(*args, **kwargs)
    return orjson.loads(response.body)["data"]


async def refused(
    request: Request, services: Services, error: ApiError, viewer: Viewer | None = None
) -> Response:
    """The page for a refused request: the error as the API words it."""
    if viewer is None:
        with contextlib.suppress(SignedOut):
            viewer = await viewer_of(request, services)
    return render(
        request,
        services,
        "message.html",
        viewer=viewer,
        status=error.code,
        title=N_("Not allowed"),
        detail=error.error,
    )


def validated(model: type[M], **fields: Any) -> M:
    """``model`` built from a form's fields, or the API's own 400 for what it refuses (``'url' is
    required``, ``'timeout_seconds': input should be less than or equal to 120``)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        described = describe_validation_error({**first, "loc": ("body", *first.get("loc", ()))})
        raise ApiError(400, described) from None


def acting_tenant(viewer: Viewer) -> str | None:
    return viewer.tenant_id if viewer.kind == ADMIN else None


def pretty(value: Mapping[str, Any] | Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
