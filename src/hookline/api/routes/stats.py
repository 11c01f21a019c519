"""Delivery statistics: ``GET /v1/webhooks/{id}/stats`` and ``GET /v1/webhooks/stats`` (seed 000).

Registered before the webhooks router, so ``/v1/webhooks/stats`` is this resource, not a webhook with
that id. The figures and their rules are in ``hookline.api.stats``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from hookline.api import stats
from hookline.api.access import Read
from hookline.api.auth import ServicesDep, resolve_tenant
from hookline.api.envelope import bad_request, ok
from hookline.api.pagination import Moment, require_timezone
from hookline.api.responses import Envelope, StatsOut
from hookline.api.routes.webhooks import TenantQuery, endpoint_or_404
from hookline.api.routing import StrictJsonRoute
from hookline.api.services import Services
from hookline.config import parse_duration

router = APIRouter(prefix="/v1/webhooks", tags=["statistics"], route_class=StrictJsonRoute)

Bucket = Literal["1m", "5m", "1h", "1d"]
Since = Annotated[Moment | None, Query(description="start of the window (ISO 8601 with a timezone)")]
Until = Annotated[Moment | None, Query(description="end of the window (default now)")]
Window = Annotated[
    str | None,
    Query(max_length=20, description="the window's length ending at `until`, e.g. 24h, 7d (default 24h)"),
]
BucketQuery = Annotated[
    Bucket | None, Query(description="the series' bucket size (default: the finest giving at most 400)")
]


def _window(
    services: Services,
    since: datetime | None,
    until: datetime | None,
    length: str | None,
    bucket: Bucket | None,
) -> tuple[datetime, datetime, int]:
    seconds = None
    if length is not None:
        try:
            seconds = parse_duration(length)
        except ValueError as exc:
            raise bad_request(f"'window': {exc}") from None
    return stats.window(
        services,
        since=require_timezone("since", since),
        until=require_timezone("until", until),
        length=seconds,
        bucket=bucket,
    )


@router.get(
    "/stats", summary="Delivery statistics of the tenant (or the service)", response_model=Envelope[StatsOut]
)
async def tenant_stats(
    services: ServicesDep,
    principal: Read,
    since: Since = None,
    until: Until = None,
    window: Window = None,
    bucket: BucketQuery = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    """Over the window: attempts by outcome, success rate, latency percentiles, status codes, last
    success and failure, deliveries finished; now: pending and held deliveries, breakers by state; and
    the series per bucket. A tenant key sees its tenant; the admin key passes `tenant_id`, or none for
    the whole service."""
    scope = (
        None
        if principal.is_admin and tenant_id is None
        else await resolve_tenant(services, principal, tenant_id)
    )
    start, end, seconds = _window(services, since, until, window, bucket)
    data = await stats.report(
        services, tenant_id=scope, endpoint_id=None, start=start, end=end, bucket=seconds
    )
    return ok(data, "Statistics retrieved successfully")


@router.get(
    "/{webhook_id}/stats", summary="Delivery statistics of a webhook", response_model=Envelope[StatsOut]
)
async def webhook_stats(
    webhook_id: str,
    services: ServicesDep,
    principal: Read,
    since: Since = None,
    until: Until = None,
    window: Window = None,
    bucket: BucketQuery = None,
    tenant_id: str | None = TenantQuery,
) -> Response:
    """The same figures for one webhook (see `GET /v1/webhooks/stats`)."""
    tenant = await resolve_tenant(services, principal, tenant_id)
    endpoint = await endpoint_or_404(services, tenant, webhook_id)
    start, end, seconds = _window(services, since, until, window, bucket)
    data = await stats.report(
        services, tenant_id=tenant, endpoint_id=endpoint.id, start=start, end=end, bucket=seconds
    )
    return ok(data, "Statistics retrieved successfully")
