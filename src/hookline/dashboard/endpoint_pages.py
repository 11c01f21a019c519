"""The tenant's endpoints: the list with health at a glance, and what a viewer with the
``manage_endpoints`` capability may change there."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from hookline.api.envelope import ApiError
from hookline.api.routes import event_types, webhooks
from hookline.api.services import Services, get_services
from hookline.dashboard.viewer import ADMIN, Viewer
from hookline.dashboard.web import (
    act,
    acting_tenant,
    call,
    new_router,
    page,
    render,
    tenant_query,
    validated,
)
from hookline.rollups import HOUR, span_start
from hookline.store import rollups as rollup_rows
from hookline.store.portal_links import MANAGE_ENDPOINTS, VIEW_SECRETS

router = new_router()
TREND_HOURS = 24

# --- endpoints ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """An endpoint's success rate hour by hour over the last day, as a sparkline's points."""

    rates: list[float | None]  # per hour, oldest first; None: no attempt that hour
    overall: float | None  # over the day

    def points(self, width: float = 96.0, height: float = 24.0) -> str:
        """The SVG polyline's points (x from the left; the template mirrors nothing: time runs
        left to right in both directions, as on the charts)."""
        step = width / max(1, len(self.rates) - 1)
        return " ".join(
            f"{i * step:.1f},{height - 2 - rate * (height - 4):.1f}"
            for i, rate in enumerate(self.rates)
            if rate is not None
        )


async def _success_trends(services: Services, tenant_id: str, now: datetime) -> dict[int, Trend]:
    """Every endpoint's last 24 hours from the statistics' rollups: one read for the whole tenant."""
    until = span_start(now, HOUR) + timedelta(seconds=HOUR)
    since = until - timedelta(hours=TREND_HOURS)
    async with services.store.read() as conn:
        rows = await rollup_rows.read(conn, since=since, until=until, bucket=HOUR, tenant_id=tenant_id)
    hours: dict[int, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    for r in rollup_rows.fold(rows, HOUR):
        hours[r.endpoint_id][r.start] = (r.attempts, r.outcomes.get("2xx", 0))
    trends = {}
    for endpoint_id, by_hour in hours.items():
        slots = [by_hour.get(since + timedelta(hours=h)) for h in range(TREND_HOURS)]
        rates = [ok / total if total else None for total, ok in (s or (0, 0) for s in slots)]
        total = sum(s[0] for s in slots if s)
        good = sum(s[1] for s in slots if s)
        trends[endpoint_id] = Trend(rates, good / total if total else None)
    return trends


@router.get("/endpoints")
async def endpoints_page(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        if viewer.kind == ADMIN and not viewer.tenant_id:
            return RedirectResponse("/ui/operator", status_code=303)
        found = await call(
            webhooks.list_webhooks, services, viewer.principal, 250, None, acting_tenant(viewer)
        )
        trends = await _success_trends(services, viewer.tenant_id or "", services.now())
        return render(
            request,
            services,
            "endpoints.html",
            viewer,
            active="endpoints",
            endpoints=found["items"],
            trends=trends,
        )

    return await page(request, services, build)


@router.post("/endpoints/{webhook_id}/active")
async def set_endpoint_active(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, form: Any) -> Response:
        body = webhooks.WebhookUpdate(active=form.get("active") == "true")
        await call(
            webhooks.update_webhook,
            webhook_id,
            body,
            services,
            viewer.principal,
            viewer.actor,
            acting_tenant(viewer),
        )
        return RedirectResponse("/ui/endpoints" + tenant_query(viewer), status_code=303)

    return await act(request, services, MANAGE_ENDPOINTS, change)


# --- creating and editing -------------------------------------------------------------------------------

FORM_FIELDS = ("url", "description", "patterns", "channels", "headers", "rate_limit", "timeout_seconds")
NUMBERS = {"rate_limit": float, "timeout_seconds": float, "max_in_flight": int}


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def _headers(text: str) -> dict[str, str]:
    """``Name: value`` lines; a line without a colon is an error the API would not word better."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ApiError(400, f"headers: line {number} is not 'Name: value'")
        found[name.strip()] = value.strip()
    return found


def _fields(form: Any) -> dict[str, Any]:
    """The API's fields from the endpoint form (what the viewer typed, as typed, for a form shown again
    is ``form`` itself)."""
    text = {name: str(form.get(name) or "") for name in (*FORM_FIELDS, "max_in_flight")}
    chosen = [str(v) for v in form.getlist("events")] + _split(text["patterns"])
    fields: dict[str, Any] = {
        "url": text["url"].strip(),
        "description": text["description"].strip(),
        "events": list(dict.fromkeys(chosen)) or None,
        "channels": _split(text["channels"]) or None,
        "headers": _headers(text["headers"]),
    }
    secret_text = str(form.get("secret_headers") or "")
    if form.get("clear_secret_headers") == "true":
        fields["secret_headers"] = {}
    elif secret_text.strip():  # never shown again, nor put back in the form after an error
        fields["secret_headers"] = _headers(secret_text)
    for name, kind in NUMBERS.items():
        raw = text[name].strip()
        if not raw:
            fields[name] = None
            continue
        try:
            fields[name] = kind(raw)
        except ValueError:
            raise ApiError(400, f"'{name}' must be a {'whole ' if kind is int else ''}number") from None
    return fields


async def _catalog(services: Services, viewer: Viewer) -> list[dict[str, Any]]:
    found = await call(event_types.list_event_types, services, viewer.principal)
    return list(found["items"])


def _form_values(endpoint: dict[str, Any] | None) -> dict[str, Any]:
    """The form's values for an existing endpoint (None: a new one)."""
    if endpoint is None:
        return {
            **dict.fromkeys(("url", "description", "patterns", "channels", "headers"), ""),
            **dict.fromkeys(NUMBERS, ""),
            "events": [],
        }
    return {
        "url": endpoint["url"],
        "description": endpoint["description"],
        "events": endpoint["events"],
        "patterns": ", ".join(e for e in endpoint["events"] if "*" in e),
        "channels": ", ".join(endpoint["channels"] or []),
        "headers": "\n".join(f"{k}: {v}" for k, v in endpoint["headers"].items()),
        "rate_limit": endpoint["rate_limit"] or "",
        "timeout_seconds": endpoint["timeout_seconds"] or "",
        "max_in_flight": endpoint["max_in_flight"] or "",
    }


def _typed(form: Any) -> dict[str, Any]:
    values = {name: str(form.get(name) or "") for name in (*FORM_FIELDS, "max_in_flight")}
    return {**values, "events": [str(v) for v in form.getlist("events")]}


async def _show_form(
    request: Request,
    services: Services,
    viewer: Viewer,
    *,
    endpoint: dict[str, Any] | None,
    values: dict[str, Any],
    error: str | None = None,
    status: int = 200,
) -> Response:
    catalog = await _catalog(services, viewer)
    return render(
        request,
        services,
        "endpoint_form.html",
        viewer,
        status=status,
        active="endpoints",
        endpoint=endpoint,
        values=values,
        catalog=catalog,
        error=error,
    )


async def _webhook(services: Services, viewer: Viewer, webhook_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await call(
        webhooks.get_webhook, webhook_id, services, viewer.principal, acting_tenant(viewer)
    )
    return found


@router.get("/endpoints/new")
async def new_endpoint_form(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        return await _show_form(request, services, viewer, endpoint=None, values=_form_values(None))

    return await page(request, services, build, MANAGE_ENDPOINTS)


@router.post("/endpoints/new")
async def create_endpoint(request: Request, services: Services = Depends(get_services)) -> Response:
    async def change(viewer: Viewer, form: Any) -> Response:
        try:
            fields = _fields(form)
            body = validated(webhooks.WebhookCreate, **fields, tenant_id=acting_tenant(viewer))
            created = await call(webhooks.create_webhook, body, services, viewer.principal, viewer.actor)
        except ApiError as error:  # the form again, with what was typed and the API's words
            return await _show_form(
                request,
                services,
                viewer,
                endpoint=None,
                values=_typed(form),
                error=error.error,
                status=error.code,
            )
        secret = created["secret"] if viewer.can(VIEW_SECRETS) else None
        return render(
            request,
            services,
            "endpoint_created.html",
            viewer,
            active="endpoints",
            endpoint=created,
            secret=secret,
        )

    return await act(request, services, MANAGE_ENDPOINTS, change)


@router.get("/endpoints/{webhook_id}/edit")
async def edit_endpoint_form(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def build(viewer: Viewer) -> Response:
        endpoint = await _webhook(services, viewer, webhook_id)
        return await _show_form(request, services, viewer, endpoint=endpoint, values=_form_values(endpoint))

    return await page(request, services, build, MANAGE_ENDPOINTS)


@router.post("/endpoints/{webhook_id}/edit")
async def update_endpoint(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, form: Any) -> Response:
        endpoint = await _webhook(services, viewer, webhook_id)
        try:
            fields = _fields(form)
            if fields["events"] is None:
                raise ApiError(400, "choose at least one event type (or * for all of them)")
            body = validated(webhooks.WebhookUpdate, **fields)
            await call(
                webhooks.update_webhook,
                webhook_id,
                body,
                services,
                viewer.principal,
                viewer.actor,
                acting_tenant(viewer),
            )
        except ApiError as error:  # the form again, with what was typed and the API's words
            return await _show_form(
                request,
                services,
                viewer,
                endpoint=endpoint,
                values=_typed(form),
                error=error.error,
                status=error.code,
            )
        return RedirectResponse("/ui/endpoints" + tenant_query(viewer), status_code=303)

    return await act(request, services, MANAGE_ENDPOINTS, change)


# --- secrets, verification, deletion --------------------------------------------------------------------


@router.post("/endpoints/{webhook_id}/secret")
async def reveal_secret(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    """Shown on its own page after a POST (never in a GET's page, which a browser may keep), and
    recorded in the audit log by the API's operation."""

    async def change(viewer: Viewer, form: Any) -> Response:
        rotated = form.get("rotate") == "true"
        if rotated:
            body = webhooks.SecretRotation(grace_period_seconds=_grace(form.get("grace_period_seconds")))
            shown = await call(
                webhooks.rotate_secret,
                webhook_id,
                services,
                viewer.principal,
                viewer.actor,
                body,
                acting_tenant(viewer),
            )
        else:
            shown = await call(
                webhooks.get_webhook_secret,
                webhook_id,
                services,
                viewer.principal,
                viewer.actor,
                acting_tenant(viewer),
            )
        endpoint = await _webhook(services, viewer, webhook_id)
        return render(
            request,
            services,
            "secret.html",
            viewer,
            active="endpoints",
            endpoint=endpoint,
            shown=shown,
            rotated=rotated,
        )

    return await act(request, services, VIEW_SECRETS, change)


def _grace(value: Any) -> int:
    try:
        seconds = int(str(value))
    except ValueError:
        raise ApiError(400, "'grace_period_seconds' must be a whole number") from None
    return seconds


@router.post("/endpoints/{webhook_id}/verify")
async def verify_endpoint(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, _: Any) -> Response:
        outcome = await call(
            webhooks.verify_webhook,
            webhook_id,
            services,
            viewer.principal,
            viewer.actor,
            acting_tenant(viewer),
        )
        endpoint = await _webhook(services, viewer, webhook_id)
        return render(
            request, services, "verified.html", viewer, active="endpoints", endpoint=endpoint, outcome=outcome
        )

    return await act(request, services, MANAGE_ENDPOINTS, change)


@router.get("/endpoints/{webhook_id}/delete")
async def confirm_delete(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def build(viewer: Viewer) -> Response:
        endpoint = await _webhook(services, viewer, webhook_id)
        return render(
            request, services, "endpoint_delete.html", viewer, active="endpoints", endpoint=endpoint
        )

    return await page(request, services, build, MANAGE_ENDPOINTS)


@router.post("/endpoints/{webhook_id}/delete")
async def delete_endpoint(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, _: Any) -> Response:
        await call(
            webhooks.delete_webhook,
            webhook_id,
            services,
            viewer.principal,
            viewer.actor,
            acting_tenant(viewer),
        )
        return RedirectResponse("/ui/endpoints" + tenant_query(viewer), status_code=303)

    return await act(request, services, MANAGE_ENDPOINTS, change)
