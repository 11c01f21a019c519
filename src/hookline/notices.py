"""Operational events: what hookline itself reports about endpoints and deliveries.

    endpoint.disabled / endpoint.enabled / endpoint.verified
    endpoint.circuit_opened / endpoint.circuit_closed / endpoint.failing
    delivery.exhausted

Each is raised as a ``Notice`` in the transaction that makes the change it reports (a batch of answers
in the worker; an owner's enable, disable, verification or breaker reset in the API), so it is raised
exactly when the change commits. A worker then publishes it (``hookline.store.notices``): as an event
of the endpoint's tenant, delivered like any event to the tenant's endpoints that subscribe to it (the
catch-all ``*`` does not: ``catalog.OPERATIONAL_EVENTS``), and as an event of the operator's tenant
(``store.notices.OPERATOR_TENANT``), which holds the operator webhook (HOOKLINE_OPERATOR_WEBHOOK_URL).

They cannot loop: nothing is raised about the operator tenant's endpoints, no ``delivery.exhausted`` is
raised for the delivery of an operational event, and a notice about an endpoint in trouble (disabled,
breaker open, failing, a delivery exhausted) is never delivered to that endpoint.

This module is pure: it decides what to raise from the states before and after a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hookline.catalog import OPERATIONAL_EVENTS
from hookline.dispatch.alerting import AlertPolicy
from hookline.dispatch.health import Verdict
from hookline.store.endpoint_state import EndpointState
from hookline.store.events import format_timestamp
from hookline.store.notices import Notice, raised_for
from hookline.store.queue import Outcome

# What reports a recovery rather than trouble (logged as information, not as a warning).
GOOD_NEWS = frozenset({"endpoint.enabled", "endpoint.verified", "endpoint.circuit_closed"})


def _about(kind: str, tenant_id: str, webhook_id: int, exclude: bool, /, **data: Any) -> Notice:
    assert kind in OPERATIONAL_EVENTS
    fields = {"tenant_id": tenant_id, "webhook_id": webhook_id, **data}
    return Notice(tenant_id, webhook_id, kind, fields, exclude)


def disabled(tenant_id: str, webhook_id: int, *, trigger: str, reason: str | None, at: datetime) -> Notice:
    return _about(
        "endpoint.disabled",
        tenant_id,
        webhook_id,
        True,
        trigger=trigger,
        reason=reason,
        disabled_at=format_timestamp(at),
    )


def enabled(tenant_id: str, webhook_id: int, at: datetime) -> Notice:
    return _about("endpoint.enabled", tenant_id, webhook_id, False, enabled_at=format_timestamp(at))


def verified(tenant_id: str, webhook_id: int, at: datetime) -> Notice:
    return _about("endpoint.verified", tenant_id, webhook_id, False, verified_at=format_timestamp(at))


def circuit_closed(tenant_id: str, webhook_id: int, *, trigger: str, at: datetime) -> Notice:
    return _about(
        "endpoint.circuit_closed",
        tenant_id,
        webhook_id,
        False,
        trigger=trigger,
        closed_at=format_timestamp(at),
    )


def after_answers(before: EndpointState, verdict: Verdict, now: datetime, alert: AlertPolicy) -> list[Notice]:
    """What a batch of answers raised for their endpoint: ``before`` as the batch found it (locked),
    ``verdict`` what the answers made of it."""
    tenant_id, webhook_id, after = before.tenant_id, before.endpoint_id, verdict.state
    if not raised_for(tenant_id):
        return []
    found = []
    if before.breaker_state == "closed" and after.breaker_state == "open":
        found.append(
            _about(
                "endpoint.circuit_opened",
                tenant_id,
                webhook_id,
                True,
                opened_at=format_timestamp(after.opened_at or now),
                next_probe_at=format_timestamp(after.next_probe_at or now),
                consecutive_failures=after.consecutive_failures,
                window_requests=after.window_requests,
                window_failures=after.window_failures,
            )
        )
    elif before.breaker_state != "closed" and after.breaker_state == "closed":
        found.append(circuit_closed(tenant_id, webhook_id, trigger="probe", at=now))
    if verdict.disable is not None:
        found.append(disabled(tenant_id, webhook_id, trigger="automatic", reason=verdict.disable, at=now))
    if (failing := verdict.failing) is not None:
        found.append(
            _about(
                "endpoint.failing",
                tenant_id,
                webhook_id,
                True,
                failure_rate=round(failing.failure_rate, 4),
                attempts=failing.attempts,
                failures=failing.failures,
                threshold=alert.failure_rate,
                window_seconds=alert.window,
                window_started_at=format_timestamp(failing.window_started_at),
                detected_at=format_timestamp(now),
            )
        )
    return found


def exhausted(
    tenant_id: str,
    webhook_id: int,
    *,
    delivery_id: int,
    event_id: str,
    event_type: str,
    attempts: int,
    status_code: int | None,
    error: str | None,
    at: datetime,
) -> Notice | None:
    """``delivery.exhausted`` for a delivery that failed for good, unless that delivery carried an
    operational event (or went to the operator's tenant): those are not reported again."""
    if not raised_for(tenant_id) or event_type in OPERATIONAL_EVENTS:
        return None
    return _about(
        "delivery.exhausted",
        tenant_id,
        webhook_id,
        True,
        delivery_id=delivery_id,
        event_id=event_id,
        event_type=event_type,
        attempts=attempts,
        last_status_code=status_code,
        last_error=error,
        failed_at=format_timestamp(at),
    )


def exhausted_all(outcomes: Iterable[Outcome], now: datetime) -> list[Notice]:
    """``delivery.exhausted`` for each of ``outcomes`` (written) that failed a delivery for good."""
    found = []
    for o in outcomes:
        if o.status != "failed":
            continue
        notice = exhausted(
            o.tenant_id,
            o.endpoint_id,
            delivery_id=o.delivery_id,
            event_id=o.event_id,
            event_type=o.event_type,
            attempts=o.attempt,
            status_code=o.status_code,
            error=o.error,
            at=now,
        )
        if notice is not None:
            found.append(notice)
    return found
