"""The tenant's endpoints: the list with health at a glance, and what a viewer with the
``manage_endpoints`` capability may change there."""

from __future__ import annotations

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from hookline.api.envelope import ApiError
from hookline.api.routes import webhooks
from hookline.api.services import Services, get_services
from hookline.dashboard.viewer import ADMIN, SignedOut, Viewer
from hookline.dashboard.web import (
    acting_tenant,
    call,
    changing,
    new_router,
    page,
    refused,
    render,
    sign_in_redirect,
    tenant_query,
)
from hookline.store.portal_links import MANAGE_ENDPOINTS

router = new_router()

# --- endpoints ------------------------------------------------------------------------------------------


@router.get("/endpoints")
async def endpoints_page(request: Request, services: Services = Depends(get_services)) -> Response:
    async def build(viewer: Viewer) -> Response:
        if viewer.kind == ADMIN and not viewer.tenant_id:
            return RedirectResponse("/ui/operator", status_code=303)
        try:
            found = await call(
                webhooks.list_webhooks, services, viewer.principal, 250, None, acting_tenant(viewer)
            )
        except ApiError as error:
            return await refused(request, services, error, viewer)
        return render(
            request, services, "endpoints.html", viewer, active="endpoints", endpoints=found["items"]
        )

    return await page(request, services, build)


@router.post("/endpoints/{webhook_id}/active")
async def set_endpoint_active(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    try:
        viewer, form = await changing(request, services, MANAGE_ENDPOINTS)
        active = form.get("active") == "true"
        body = webhooks.WebhookUpdate(active=active)
        await call(
            webhooks.update_webhook,
            webhook_id,
            body,
            services,
            viewer.principal,
            viewer.actor,
            acting_tenant(viewer),
        )
    except SignedOut:
        return sign_in_redirect()
    except ApiError as error:
        return await refused(request, services, error)
    return RedirectResponse("/ui/endpoints" + tenant_query(viewer), status_code=303)
