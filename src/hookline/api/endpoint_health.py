"""What the API shows and changes of an endpoint's scheduler state: health, breaker, verification.

The rules live in ``hookline.dispatch`` (breaker, health, verification) and the rows in
``hookline.store.endpoint_state``; this module reads them for a tenant's endpoints, turns them into the
answers' shapes, and applies an owner's actions (reset a breaker, enable, verify) under the row lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hookline import metrics, notices
from hookline.api.services import Services
from hookline.dispatch import breaker as breakers
from hookline.dispatch import health, scheduler, verification
from hookline.store import audit_log
from hookline.store import endpoint_state as states
from hookline.store import notices as notice_rows
from hookline.store.audit_log import Entry
from hookline.store.endpoint_state import HOLD_DISABLED, EndpointState, hold_for
from hookline.store.endpoints import Endpoint
from hookline.store.schema import deliveries


def held_reason(state: EndpointState, now: datetime) -> str | None:
    if state.hold is not None:
        return state.hold
    if state.breaker_state != "closed":
        return "circuit_open"
    if state.paused_until is not None and state.paused_until > now:
        return "paused"
    return None


async def load(services: Services, endpoints: Sequence[Endpoint]) -> dict[int, tuple[EndpointState, int]]:
    """Each endpoint's state and how many deliveries it holds (0 unless it is held)."""
    now = services.now()
    async with services.store.read() as conn:
        found: dict[int, EndpointState] = {}
        for tenant_id in {e.tenant_id for e in endpoints}:
            ids = [e.id for e in endpoints if e.tenant_id == tenant_id]
            found.update(await states.of_endpoints(conn, tenant_id, ids))
        for e in endpoints:
            found.setdefault(e.id, EndpointState(e.id, e.tenant_id))
        holding = [i for i, s in found.items() if held_reason(s, now) is not None]
        counts = await states.pending_counts(conn, holding)
    return {i: (s, counts.get(i, 0)) for i, s in found.items()}


def limits(services: Services) -> scheduler.Limits:
    settings = services.settings
    return scheduler.Limits(settings.max_in_flight_per_endpoint, settings.rate_limit, settings.breaker_policy)


def _candidate(e: Endpoint, state: EndpointState) -> states.Candidate:
    return states.Candidate(state, e.rate_limit, e.max_in_flight, e.circuit_breaker)


def health_view(services: Services, e: Endpoint, state: EndpointState, held: int) -> dict[str, Any]:
    rate = scheduler.rate_of(_candidate(e, state), limits(services))
    return {
        "circuit_breaker": state.breaker_state,
        "rate_limit": rate.rate if rate else None,
        "held": held,
        "held_reason": held_reason(state, services.now()),
        "disabled_reason": e.disabled_reason,
        "paused_until": state.paused_until,
        "last_success_at": state.last_success_at,
        "failing_since": state.failing_since,
    }


def verification_view(state: EndpointState) -> dict[str, Any]:
    return {
        "status": state.verification,
        "verified_at": state.verified_at,
        "error": state.verification_error,
    }


def breaker_view(services: Services, e: Endpoint, state: EndpointState, held: int) -> dict[str, Any]:
    policy = scheduler.policy_of(_candidate(e, state), limits(services))
    b = scheduler.breaker_of(state)
    return {
        "webhook_id": e.id,
        "state": b.state,
        "consecutive_failures": b.consecutive_failures,
        "failure_rate": round(b.failure_rate, 4),
        "window": {
            "started_at": b.window_started_at,
            "seconds": policy.window,
            "requests": b.window_requests,
            "failures": b.window_failures,
        },
        "opened_at": b.opened_at,
        "next_probe_at": b.next_probe_at if b.state != "closed" else None,
        "held": held if b.state != "closed" else 0,
    }


async def reset_breakers(services: Services, endpoint_ids: Sequence[int], audit: Entry) -> list[int]:
    """Close the breakers of ``endpoint_ids`` (and forget their failures): held deliveries go again.
    A breaker that was not closed raises ``endpoint.circuit_closed`` (trigger ``reset``). ``audit`` is
    recorded with the ids of the breakers that were open or half-open."""
    now = services.now()
    async with services.store.write() as conn:
        locked = await states.lock(conn, endpoint_ids)
        changed = [
            scheduler.with_breaker(s, breakers.reset()).changed(
                work_at=now, blocked_until=None, paused_until=None
            )
            for s in locked.values()
        ]
        await states.save(conn, changed, now)
        await notice_rows.insert(
            conn,
            [
                notices.circuit_closed(s.tenant_id, s.endpoint_id, trigger="reset", at=now)
                for s in locked.values()
                if s.breaker_state != "closed" and notice_rows.raised_for(s.tenant_id)
            ],
            now,
        )
        was_open = sorted(s.endpoint_id for s in locked.values() if s.breaker_state != "closed")
        await audit_log.record(conn, replace(audit, changes={**audit.changes, "reset": was_open}), now)
    reopened = sum(s.breaker_state != "closed" for s in locked.values())
    if reopened:
        metrics.breaker_transitions.labels("closed").inc(reopened)
    return sorted(locked)


async def set_active(services: Services, e: Endpoint, *, active: bool, discard_held: bool) -> None:
    """Apply an owner's enable or disable to the state: disabling holds the deliveries; enabling a
    disabled endpoint resets its health and releases them, or with ``discard_held`` fails them first.
    Enabling an endpoint that is not disabled changes nothing (its queued retries are not "held")."""
    now = services.now()
    async with services.store.write() as conn:
        state = (await states.lock(conn, [e.id])).get(e.id)
        if state is None:
            return
        raised = notice_rows.raised_for(e.tenant_id)
        if not active:
            if state.hold != HOLD_DISABLED:
                await states.save(conn, [state.changed(hold=HOLD_DISABLED)], now)
                if raised:
                    notice = notices.disabled(e.tenant_id, e.id, trigger="manual", reason=None, at=now)
                    await notice_rows.insert(conn, [notice], now)
            return
        if state.hold != HOLD_DISABLED:
            return
        if raised:
            await notice_rows.insert(conn, [notices.enabled(e.tenant_id, e.id, now)], now)
        if discard_held:
            await conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.endpoint_id == e.id,
                    deliveries.c.status == "pending",
                    sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now),
                )
                .values(
                    status="failed",
                    last_error="discarded when the endpoint was enabled again",
                    leased_by=None,
                    completed_at=now,
                    updated_at=now,
                )
            )
        await states.save(conn, [health.enabled_again(state, now)], now)


async def verify(services: Services, e: Endpoint, audit: Entry | None = None) -> verification.Outcome:
    """Run the handshake against ``e`` now and keep its result: verified releases the held deliveries,
    failed keeps holding them. ``audit`` (a request for it) is recorded with the result."""
    settings = services.settings
    timeout = e.timeout_ms / 1000 if e.timeout_ms else min(settings.delivery_timeout, 10.0)
    async with services.sending(body_limit=4096) as sender:
        outcome = await verification.handshake(
            sender,
            url=e.url,
            signing_secrets=[e.secret],
            headers=e.delivered_headers,
            timeout=timeout,
            signing_keys=[e.signing_key] if e.signing_key else [],
        )
    now = services.now()
    async with services.store.write() as conn:
        state = (await states.lock(conn, [e.id])).get(e.id)
        if state is not None:
            status = "verified" if outcome.verified else "failed"
            active = (
                await conn.execute(sa.text("SELECT active FROM endpoints WHERE id = :id"), {"id": e.id})
            ).scalar()
            if outcome.verified and state.verification != "verified" and notice_rows.raised_for(e.tenant_id):
                await notice_rows.insert(conn, [notices.verified(e.tenant_id, e.id, now)], now)
            state = state.changed(
                verification=status,
                verification_error=outcome.error,
                verified_at=now if outcome.verified else None,
                hold=hold_for(active=bool(active), verification=status),
                work_at=now,
            )
            await states.save(conn, [state], now)
        if audit is not None:
            result = {"verified": outcome.verified, "status_code": outcome.status_code}
            await audit_log.record(conn, replace(audit, changes={**audit.changes, **result}), now)
    return outcome


async def verify_again_after_move(services: Services, e: Endpoint) -> None:
    """``e``'s URL changed: an endpoint that takes part in the handshake must pass it again at the new
    URL (its deliveries are held meanwhile); one that never needed it is left alone."""
    now = services.now()
    async with services.store.write() as conn:
        state = (await states.lock(conn, [e.id])).get(e.id)
        if state is None or state.verification == "not_required":
            return
        hold = hold_for(active=state.hold != HOLD_DISABLED, verification="pending")
        pending = state.changed(verification="pending", verified_at=None, verification_error=None, hold=hold)
        await states.save(conn, [pending], now)
    await verify(services, e)
