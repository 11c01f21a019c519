"""What to do after an attempt: done, retry later (when), or give up (and maybe disable the endpoint).

Defaults follow seed 003: 2xx is success; 400 and 401 are not retried; other failures are retried after
1 min, 5 min, 15 min, 1 h and 6 h, then the delivery is ``failed``. 410 Gone also disables the endpoint.
A ``Retry-After`` on 429 or 503 replaces the scheduled wait, within bounds.

An endpoint's own schedule comes from its row; whatever the row says, its waits (after jitter) stay
within ``ENDPOINT_WAITS``: a stored 1e-300 s must not turn into a retry storm, nor 1e300 s into an
overflow (see ``hookline.dispatch.options``, which checks the schedule before it gets here).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum

from hookline.config import MAX_RETRY_WAIT, MIN_RETRY_WAIT

# The shortest and longest wait an endpoint may ask for: the API's rule (hookline.config), enforced again here
# for rows written before it or by hand.
ENDPOINT_WAITS = (MIN_RETRY_WAIT, MAX_RETRY_WAIT)


class Verdict(Enum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    wait: float = 0.0  # seconds until the next attempt, for RETRY
    disable_endpoint: str | None = None  # a reason, when the endpoint must be disabled


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...]
    no_retry_statuses: frozenset[int] = frozenset({400, 401})
    jitter: float = 0.1
    retry_after_max: float = 6 * 3600.0

    def decide(
        self,
        *,
        attempt: int,
        status_code: int | None,
        retry_after: str | None = None,
        schedule: tuple[float, ...] | None = None,
    ) -> Decision:
        """``attempt`` counts from 1 (the attempt that just finished); ``status_code`` is None when no
        response came back (timeout, connection or TLS error, refused address)."""
        if status_code is not None and 200 <= status_code < 300:
            return Decision(Verdict.SUCCEEDED)
        if status_code == 410:
            return Decision(Verdict.FAILED, disable_endpoint="the endpoint answered 410 Gone")
        if status_code in self.no_retry_statuses:
            return Decision(Verdict.FAILED)
        waits = schedule or self.schedule
        if attempt > len(waits):
            return Decision(Verdict.FAILED)
        wait = waits[attempt - 1]
        if status_code in (429, 503) and (hinted := parse_retry_after(retry_after)) is not None:
            return Decision(Verdict.RETRY, min(max(hinted, 0.0), self.retry_after_max))
        if self.jitter:
            wait *= random.uniform(1 - self.jitter, 1 + self.jitter)
        if schedule:
            wait = min(max(wait, ENDPOINT_WAITS[0]), ENDPOINT_WAITS[1])
        return Decision(Verdict.RETRY, wait)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not str.isdigit alone: "²" is a digit to it
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)
