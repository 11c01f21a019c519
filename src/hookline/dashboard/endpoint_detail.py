"""One endpoint in detail: its settings, its delivery charts and figures over a window, its circuit
breaker (reset), a test send, and its delivery log (filters, pages, each delivery's attempts, retry,
replay). Everything goes through the API's own operations (``hookline.dashboard.web.call``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from hookline.api.envelope import ApiError
from hookline.api.routes import (
    circuit_breaker,
    deliveries,
    event_types,
    events,
    stats,
    webhook_tests,
    webhooks,
)
from hookline.api.services import Services, get_services
from hookline.dashboard.i18n import N_
from hookline.dashboard.viewer import ADMIN, Viewer
from hookline.dashboard.web import (
    act,
    acting_tenant,
    call,
    new_router,
    page,
    pretty,
    render,
    validated,
)
from hookline.store.portal_links import MANAGE_ENDPOINTS, RETRY_REPLAY, SEND_TESTS

router = new_router()

WINDOWS = ("1h", "24h", "7d", "30d")
STATUSES = ("pending", "succeeded", "failed")
PAGE_SIZE = 25
TEST_EVENT = "webhook.test"


def _url(viewer: Viewer, path: str, **params: Any) -> str:
    """``path`` with ``params`` (empty ones left out) and, for the operator, the tenant they look at."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    if viewer.kind == ADMIN and viewer.tenant_id:
        query["tenant"] = viewer.tenant_id
    return path + ("?" + urlencode(query) if query else "")


def _moment(raw: str, name: str) -> datetime | None:
    """A time from a form (``datetime-local``: no zone, read as UTC; or ISO 8601 with a zone)."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"'{name}' is not a date and time (e.g. 2025-01-01T00:00)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _chart_data(report: Mapping[str, Any]) -> dict[str, Any]:
    """The series as columns for static/charts.js (uPlot: times in seconds, then one array a line)."""
    series = report["series"]
    times, rate, ok, failed, p50, p95 = [], [], [], [], [], []
    for b in series:
        times.append(datetime.fromisoformat(str(b["start"]).replace("Z", "+00:00")).timestamp())
        total = b["attempts"]["total"]
        good = b["attempts"].get("2xx", 0)
        rate.append(None if b["success_rate"] is None else round(b["success_rate"] * 100, 2))
        ok.append(good)
        failed.append(total - good)
        p50.append(b["latency_ms"]["p50"])
        p95.append(b["latency_ms"]["p95"])
    return {
        "times": times,
        "rate": rate,
        "succeeded": ok,
        "failed": failed,
        "p50": p50,
        "p95": p95,
    }


def _rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The buckets that saw attempts, for the figures table."""
    rows = []
    for b in report["series"]:
        total = b["attempts"]["total"]
        if total:
            good = b["attempts"].get("2xx", 0)
            rows.append(
                {
                    "start": b["start"],
                    "total": total,
                    "succeeded": good,
                    "failed": total - good,
                    "rate": b["success_rate"],
                    "p50": b["latency_ms"]["p50"],
                    "p95": b["latency_ms"]["p95"],
                }
            )
    return rows


async def _catalog(services: Services, viewer: Viewer) -> list[dict[str, Any]]:
    """The event types a test may send, each with its example as JSON text (``webhook.test`` first)."""
    found = await call(event_types.list_event_types, services, viewer.principal)
    types = [
        {"name": t["name"], "example": pretty(t["example"])}
        for t in found["items"]
        if t["name"] != TEST_EVENT
    ]
    # webhook.test first, empty: its default data names the endpoint (hookline.api.testsend).
    return [{"name": TEST_EVENT, "example": ""}, *types]


# --- the page -------------------------------------------------------------------------------------------


@router.get("/endpoints/{webhook_id}")
async def endpoint_page(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def build(viewer: Viewer) -> Response:
        q = request.query_params
        window = q.get("window") if q.get("window") in WINDOWS else "24h"
        status = q.get("status") if q.get("status") in STATUSES else None
        event = (q.get("event") or "").strip() or None
        since_text = q.get("since", "")
        cursor = q.get("cursor") or None
        tenant = acting_tenant(viewer)
        filter_error = None
        hook = await call(webhooks.get_webhook, webhook_id, services, viewer.principal, tenant)
        report = await call(
            stats.webhook_stats, webhook_id, services, viewer.principal, None, None, window, None, tenant
        )
        breaker = await call(circuit_breaker.get_breaker, webhook_id, services, viewer.principal, tenant)
        try:
            since = _moment(since_text, "since")
        except ApiError as error:
            filter_error, since = error.error, None
        log = await call(
            deliveries.list_deliveries,
            webhook_id,
            services,
            viewer.principal,
            PAGE_SIZE,
            cursor,
            status,
            event,
            since,
            None,
            tenant,
        )
        catalog = await _catalog(services, viewer) if viewer.can(SEND_TESTS) else []
        filters = {"status": status, "event": event, "since": since_text, "window": window}
        return render(
            request,
            services,
            "endpoint_detail.html",
            viewer,
            active="endpoints",
            hook=hook,
            report=report,
            chart=_chart_data(report),
            rows=_rows(report),
            breaker=breaker,
            deliveries=log["items"],
            next_page=_url(viewer, request.url.path, **filters, cursor=log["next_cursor"])
            if log["next_cursor"]
            else None,
            filtered=bool(status or event or since_text),
            filters=filters,
            filter_error=filter_error,
            windows=WINDOWS,
            window_links={w: _url(viewer, request.url.path, window=w) for w in WINDOWS},
            statuses=STATUSES,
            catalog=catalog,
            here=_url(viewer, request.url.path),
            notice=_notice(q),
            statuses_label=_STATUS_LABELS,
        )

    return await page(request, services, build)


_STATUS_LABELS = {"pending": N_("Pending"), "succeeded": N_("Succeeded"), "failed": N_("Failed")}


def _notice(q: Mapping[str, str]) -> dict[str, Any] | None:
    """What the last change did (the page it redirected to says so; the template words it)."""
    if q.get("reset"):
        return {"kind": "reset"}
    if (queued := q.get("queued")) is not None and queued.isdigit():
        return {"kind": "queued", "count": int(queued)}
    return None


# --- changes --------------------------------------------------------------------------------------------


@router.post("/endpoints/{webhook_id}/breaker/reset")
async def reset_endpoint_breaker(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, _: Any) -> Response:
        await call(
            circuit_breaker.reset_breaker,
            webhook_id,
            services,
            viewer.principal,
            viewer.actor,
            acting_tenant(viewer),
        )
        return RedirectResponse(_url(viewer, f"/ui/endpoints/{webhook_id}", reset=1), status_code=303)

    return await act(request, services, MANAGE_ENDPOINTS, change)


@router.post("/endpoints/{webhook_id}/replay")
async def replay_deliveries(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, form: Any) -> Response:
        status = str(form.get("status") or "") or None
        since = _moment(str(form.get("since") or ""), "since")
        if since is None:
            raise ApiError(400, "'since' is required: the replay starts from that time")
        until = _moment(str(form.get("until") or ""), "until")
        body = validated(deliveries.ReplayRequest, since=since, until=until, status=status)
        done = await call(
            deliveries.replay,
            webhook_id,
            body,
            services,
            viewer.principal,
            viewer.actor,
            acting_tenant(viewer),
        )
        return RedirectResponse(
            _url(viewer, f"/ui/endpoints/{webhook_id}", queued=done["requeued"]), status_code=303
        )

    return await act(request, services, RETRY_REPLAY, change)


@router.post("/endpoints/{webhook_id}/test")
async def send_test(
    webhook_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def change(viewer: Viewer, form: Any) -> Response:
        tenant = acting_tenant(viewer)
        hook = await call(webhooks.get_webhook, webhook_id, services, viewer.principal, tenant)
        catalog = await _catalog(services, viewer)
        event = str(form.get("event") or "") or TEST_EVENT
        text = str(form.get("data") or "")
        chosen = {"event": event, "data": text}
        problem: dict[str, Any] | None = None
        data: Any = None
        if text.strip():
            try:
                data = json.loads(text)
            except ValueError as exc:
                problem = {"kind": "json", "detail": str(exc)}
            else:
                if not isinstance(data, dict):
                    problem = {"kind": "object", "detail": ""}
        outcome = None
        if problem is None:
            body = validated(webhook_tests.SendTest, event=event, data=data)
            try:
                outcome = await call(
                    webhook_tests.test_webhook, webhook_id, services, viewer.principal, body, tenant
                )
            except ApiError as error:
                if error.code == 404:
                    raise
                problem = {"kind": "api", "detail": error.error}
        return render(
            request,
            services,
            "test_result.html",
            viewer,
            status=200 if problem is None else 400,
            active="endpoints",
            hook=hook,
            outcome=outcome,
            problem=problem,
            catalog=catalog,
            chosen=chosen,
            back=_url(viewer, f"/ui/endpoints/{webhook_id}"),
        )

    return await act(request, services, SEND_TESTS, change)


# --- one delivery ---------------------------------------------------------------------------------------


@router.get("/deliveries/{delivery_id}")
async def delivery_page(
    delivery_id: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    async def build(viewer: Viewer) -> Response:
        found = await call(
            deliveries.get_delivery, delivery_id, services, viewer.principal, acting_tenant(viewer)
        )
        attempts = [{**a, "headers_json": pretty(a["request_headers"] or {})} for a in found["attempt_log"]]
        body = None
        try:  # the request body: the event as delivered (its data is gone once retention prunes it)
            event = await call(
                events.get_event, found["event_id"], services, viewer.principal, acting_tenant(viewer)
            )
            if event.get("data") is not None:
                body = pretty(
                    {
                        "id": event["id"],
                        "event": event["event"],
                        "timestamp": event["timestamp"],
                        "data": event["data"],
                    }
                )
        except ApiError:
            body = None  # a test send's event is not kept as an event
        return render(
            request,
            services,
            "delivery.html",
            viewer,
            active="endpoints",
            delivery=found,
            attempts=attempts,
            body=body,
            back=_url(viewer, f"/ui/endpoints/{found['webhook_id']}"),
            retried=bool(request.query_params.get("retried")),
            statuses_label=_STATUS_LABELS,
        )

    return await page(request, services, build)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(delivery_id: str, request: Request, services: Services = Depends(get_services)) -> Response:
    async def change(viewer: Viewer, _: Any) -> Response:
        await call(
            deliveries.retry_delivery,
            delivery_id,
            services,
            viewer.principal,
            viewer.actor,
            acting_tenant(viewer),
        )
        return RedirectResponse(_url(viewer, f"/ui/deliveries/{delivery_id}", retried=1), status_code=303)

    return await act(request, services, RETRY_REPLAY, change)
