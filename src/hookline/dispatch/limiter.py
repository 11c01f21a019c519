"""The rate limit of one endpoint: GCRA (the generic cell rate algorithm), pure arithmetic.

The whole state is one timestamp, the theoretical arrival time ``tat``: when the endpoint would be
"paid up" if every request so far had gone out exactly at the rate. A request may go now when ``tat`` is
at most ``burst - 1`` intervals ahead of now. Kept in the store and changed only under the endpoint's row
lock, it holds across every worker together; nothing counts down or drifts when a worker dies.

Deliveries beyond the limit are not dropped: they stay due, and the scheduler comes back for them when
``next_allowed`` says the next one may go.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float  # requests per second, > 0
    # How many seconds' worth may go at once after a quiet spell (see ``burst``). An endpoint's limit
    # keeps the default; the API's per-key and per-tenant request limits allow a second's worth.
    burst_seconds: float = 0.1

    @property
    def interval(self) -> timedelta:
        """The time one request costs (rounded to the microsecond: for display, not for arithmetic)."""
        return timedelta(seconds=1 / self.rate)

    @property
    def burst(self) -> int:
        """How many may go at once after a quiet spell: ``burst_seconds`` worth, at least one. For an
        endpoint a tenth of a second's worth: small, so that the limit holds over short windows too, yet
        enough that a fast rate is not one request per claim."""
        return max(1, math.floor(self.rate * self.burst_seconds + 1e-9))


# Arithmetic in float seconds, not timedelta: a timedelta interval is rounded to whole microseconds,
# which at 4,990/s would enforce 5,000/s. Only the stored ``tat`` is rounded, once per charge.


def _ahead(tat: datetime | None, now: datetime) -> float:
    """Seconds ``tat`` is ahead of ``now`` (0 when behind)."""
    return max((tat - now).total_seconds(), 0.0) if tat is not None else 0.0


def allowance(tat: datetime | None, now: datetime, limit: RateLimit) -> int:
    """How many requests may go now."""
    spent = _ahead(tat, now) * limit.rate  # intervals already spent in advance
    return max(0, math.floor(limit.burst - spent + 1e-9))


def charge(tat: datetime | None, now: datetime, limit: RateLimit, sent: int) -> datetime | None:
    """``tat`` after ``sent`` more requests now (unchanged when none went)."""
    if sent <= 0:
        return tat
    # Rounded up to the microsecond: rounding errors add up over many charges, and must only ever make
    # the limit stricter, never looser.
    micros = math.ceil((_ahead(tat, now) + sent / limit.rate) * 1_000_000 - 1e-6)
    return now + timedelta(microseconds=micros)


def next_allowed(tat: datetime | None, now: datetime, limit: RateLimit) -> datetime | None:
    """When the next request may go, if not now (None: it may go now)."""
    if tat is None or allowance(tat, now, limit) > 0:
        return None
    # Rounded to the microsecond not before the exact moment, so that the caller is never early.
    lead = math.floor((limit.burst - 1) / limit.rate * 1_000_000)
    return tat - timedelta(microseconds=lead)
