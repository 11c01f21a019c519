"""Request rate limits of the API: per key (its ``rate_limit``) and per tenant
(``HOOKLINE_TENANT_RATE_LIMIT``), answered with a 429 and ``Retry-After``.

The algorithm is the endpoints' GCRA, and ``hookline.dispatch.limiter.RateLimit`` says the rate and
the burst (here a second's worth): one "theoretical arrival time" per key and per tenant, no counters,
no timers. Kept in float seconds of the monotonic clock rather than with that module's functions,
whose timestamp is a stored column rounded up to the microsecond at each charge: right for a worker
that charges a batch at a time, but charged one request at a time the roundings add up and refuse
the last request of a full burst (3 at 3/s let 2 through). The timestamps live in this process's
memory, not in the store: a shared limit would cost a database write per request, on the path that
takes thousands of events a second. So a limit holds per API process; N processes (``hookline api
--workers N``, or several machines) let through up to N times as much.

A request is counted against both its key's limit and its tenant's, and only when both let it through:
a refused request costs nothing, so a client that backs off as ``Retry-After`` says is not punished
twice. The operator's admin key is not limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from hookline.api.envelope import ApiError
from hookline.api.principal import REQUEST_BURST_SECONDS, Principal
from hookline.dispatch.limiter import RateLimit

PRUNE_ABOVE = 10_000  # tracked keys or tenants before the idle ones are forgotten


class RequestRateLimiter:
    """This process's GCRA timestamps (monotonic seconds), per key id and per tenant id."""

    def __init__(self, tenant_rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.tenant_limit = RateLimit(tenant_rate, REQUEST_BURST_SECONDS) if tenant_rate else None
        self._clock = clock
        self._keys: dict[str, float] = {}
        self._tenants: dict[str, float] = {}

    def admit(self, principal: Principal) -> None:
        """Count one request of ``principal``, or raise the 429 that says how long to wait."""
        key_limit, tenant_limit, tenant_id = principal.rate_limit, self.tenant_limit, principal.tenant_id
        if tenant_id is None or (key_limit is None and tenant_limit is None):
            return
        now = self._clock()
        key_tat = self._keys.get(principal.key_id, now)
        if key_limit is not None and (wait := _wait(key_tat, now, key_limit)):
            raise _refusal(f"this API key's rate limit ({key_limit.rate:g} requests per second)", wait)
        tenant_tat = self._tenants.get(tenant_id, now)
        if tenant_limit is not None and (wait := _wait(tenant_tat, now, tenant_limit)):
            refused = f"tenant '{tenant_id}''s rate limit ({tenant_limit.rate:g} requests per second)"
            raise _refusal(refused, wait)
        if key_limit is not None:
            _charge(self._keys, principal.key_id, key_tat, now, key_limit)
        if tenant_limit is not None:
            _charge(self._tenants, tenant_id, tenant_tat, now, tenant_limit)


def _wait(tat: float, now: float, limit: RateLimit) -> float:
    """0 if a request may go now, else the seconds until one may: when ``tat`` (how far the requests
    so far are paid in advance) is no more than ``burst - 1`` intervals ahead."""
    early = tat - now - (limit.burst - 1) / limit.rate
    return early if early > 1e-9 else 0.0


def _charge(tats: dict[str, float], name: str, tat: float, now: float, limit: RateLimit) -> None:
    if len(tats) >= PRUNE_ABOVE:  # forget whoever is paid up: for them no timestamp is the same
        for idle in [idle for idle, at in tats.items() if at <= now]:
            del tats[idle]
    tats[name] = max(tat, now) + 1 / limit.rate


def _refusal(what: str, wait: float) -> ApiError:
    seconds = max(1, math.ceil(wait))  # Retry-After is whole seconds: never earlier than allowed
    return ApiError(429, f"{what} is exceeded; retry after {seconds}s", {"Retry-After": str(seconds)})
