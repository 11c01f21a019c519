"""Choosing how a delivery is carried: the one module that knows every implementation. They import
``hookline.dispatch.sender`` (the shared types and rules); nothing imports back, so the imports go one
way.

* HTTP, by the client ``HOOKLINE_SENDER`` names (pyreqwest or aiohttp), directly or through the egress
  proxy (``HOOKLINE_EGRESS_PROXY``; aiohttp only: pyreqwest cannot keep the pinning through a proxy);
* ``relay://`` endpoints (``hookline listen``), through the store to the listener's connection
  (``hookline.dispatch.relay``), when a store is given.
"""

from __future__ import annotations

from hookline.dispatch.relay import RelayDestination
from hookline.dispatch.sender import AttemptResult, Request, Sender, SenderKind
from hookline.dispatch.sender_aiohttp import AiohttpSender
from hookline.dispatch.sender_reqwest import ReqwestSender
from hookline.egress import UrlPolicy
from hookline.fixed_egress import PYREQWEST_CANNOT_PROXY, EgressProxy
from hookline.signing import SignatureStyle
from hookline.store.engine import Store
from hookline.store.relay import SCHEME as RELAY_SCHEME


def make_sender(
    kind: SenderKind,
    policy: UrlPolicy,
    *,
    style: SignatureStyle = SignatureStyle(),
    body_limit: int = 64 * 1024,
    store: Store | None = None,
    proxy: EgressProxy | None = None,
) -> Sender:
    http: Sender
    if kind == "aiohttp":
        http = AiohttpSender(policy, style=style, body_limit=body_limit, proxy=proxy)
    elif proxy is not None:
        raise ValueError(PYREQWEST_CANNOT_PROXY)
    else:
        http = ReqwestSender(policy, style=style, body_limit=body_limit)
    if store is None:
        return http
    return Destinations(http, RelayDestination(store, style, body_limit))


class Destinations:
    """Each request to the destination its URL names: relay sessions, or HTTP (which applies the egress
    policy, so a ``relay://`` URL never reaches the network)."""

    def __init__(self, http: Sender, relay: Sender) -> None:
        self.http = http
        self.relay = relay

    async def start(self) -> None:
        await self.http.start()
        await self.relay.start()

    async def close(self) -> None:
        await self.relay.close()
        await self.http.close()

    async def send(self, request: Request) -> AttemptResult:
        if request.url.startswith(RELAY_SCHEME):
            return await self.relay.send(request)
        return await self.http.send(request)
