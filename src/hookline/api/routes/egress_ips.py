"""``GET /v1/egress-ips``: the source addresses deliveries come from (``HOOKLINE_EGRESS_IPS``), for
receivers that allow-list the sender's IPs (seed 001: "IP Whitelisting: Configure allowed IP addresses").

Any key with the ``read`` scope may read it (tenant or admin): the addresses are no secret (every receiver
sees them), but the rest of the API is behind a key too, and a platform hands them on to its receivers in
its own documentation.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from hookline.api.access import Read
from hookline.api.auth import ServicesDep
from hookline.api.envelope import ok
from hookline.api.responses import EgressIpsOut, Envelope
from hookline.api.routing import StrictJsonRoute
from hookline.fixed_egress import published

router = APIRouter(prefix="/v1/egress-ips", tags=["egress"], route_class=StrictJsonRoute)


@router.get(
    "",
    summary="List the source addresses of deliveries",
    description="The addresses (and networks) receivers see hookline's requests come from, as the operator "
    "published them with HOOKLINE_EGRESS_IPS; empty when none are published.",
    response_model=Envelope[EgressIpsOut],
)
async def list_egress_ips(services: ServicesDep, principal: Read) -> Response:
    addresses = published(services.settings.egress_ips)
    return ok({"addresses": addresses}, "Egress addresses retrieved successfully")
