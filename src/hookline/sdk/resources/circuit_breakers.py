"""``client.circuit_breakers``: each webhook's breaker, and the tenant's all at once."""

from __future__ import annotations

import builtins
from typing import Any

from hookline.sdk.models import CircuitBreaker, parse_list
from hookline.sdk.resources._base import AsyncResource, Ops, SyncResource
from hookline.sdk.routes import Call, Route

LIST = Route("GET", "/v1/webhooks/circuit-breaker", "circuit_breakers.list")
RESET_ALL = Route("POST", "/v1/webhooks/circuit-breaker/reset", "circuit_breakers.reset_all")
GET = Route("GET", "/v1/webhooks/{webhook_id}/circuit-breaker", "circuit_breakers.get")
RESET = Route("POST", "/v1/webhooks/{webhook_id}/circuit-breaker/reset", "circuit_breakers.reset")


def _reset_ids(data: Any) -> builtins.list[int]:
    return [int(i) for i in data["reset"]]


class _Ops(Ops):
    def _all(self, tenant_id: str | None) -> Call[list[CircuitBreaker]]:
        return LIST.call(parse_list(CircuitBreaker), params={"tenant_id": self._tenant(tenant_id)})

    def _reset_all(self, tenant_id: str | None) -> Call[list[int]]:
        return RESET_ALL.call(_reset_ids, params={"tenant_id": self._tenant(tenant_id)})

    def _one(self, route: Route, webhook_id: int | str, tenant_id: str | None) -> Call[CircuitBreaker]:
        params = {"tenant_id": self._tenant(tenant_id)}
        return route.call(CircuitBreaker.from_dict, path={"webhook_id": webhook_id}, params=params)


class CircuitBreakers(SyncResource, _Ops):
    def list(self, *, tenant_id: str | None = None) -> builtins.list[CircuitBreaker]:
        """The breaker of each of the tenant's webhooks (its first thousand)."""
        return self._run(self._all(tenant_id))

    def get(self, webhook_id: int | str, *, tenant_id: str | None = None) -> CircuitBreaker:
        return self._run(self._one(GET, webhook_id, tenant_id))

    def reset(self, webhook_id: int | str, *, tenant_id: str | None = None) -> CircuitBreaker:
        """Close the webhook's breaker: its held deliveries go at once."""
        return self._run(self._one(RESET, webhook_id, tenant_id))

    def reset_all(self, *, tenant_id: str | None = None) -> builtins.list[int]:
        """Close the breakers of all the tenant's webhooks; answers the ids of those reset."""
        return self._run(self._reset_all(tenant_id))


class AsyncCircuitBreakers(AsyncResource, _Ops):
    async def list(self, *, tenant_id: str | None = None) -> builtins.list[CircuitBreaker]:
        return await self._run(self._all(tenant_id))

    async def get(self, webhook_id: int | str, *, tenant_id: str | None = None) -> CircuitBreaker:
        return await self._run(self._one(GET, webhook_id, tenant_id))

    async def reset(self, webhook_id: int | str, *, tenant_id: str | None = None) -> CircuitBreaker:
        return await self._run(self._one(RESET, webhook_id, tenant_id))

    async def reset_all(self, *, tenant_id: str | None = None) -> builtins.list[int]:
        return await self._run(self._reset_all(tenant_id))
