"""Test sends (seeds 000, 001, 003): a signed event sent to an endpoint now, on request, and its outcome.

A test send takes the path of a delivery wherever the receiver could tell the difference (the body's
shape, the signatures, the endpoint's custom headers and timeout, the egress policy checked at connect
time) and none where the endpoint's standing is concerned: it skips the queue, the circuit breaker and
the rate limit, and its outcome never counts toward the endpoint's health. It is kept like a delivery,
marked ``test``: an event of its own, a finished delivery to this endpoint alone, and its one attempt.

An endpoint that takes part in the verification handshake and has not passed it is not sent to: the
handshake is its receiver's consent to our requests, and a test send must not go around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from hookline.api.ingest import check_event
from hookline.api.services import Services
from hookline.dispatch.options import signing_keys, signing_secrets
from hookline.dispatch.sender import Request as SendRequest
from hookline.dispatch.sender import Sender
from hookline.ids import new_id
from hookline.signing import signature_schemes
from hookline.store import deliveries
from hookline.store import endpoint_state as states
from hookline.store.endpoints import Endpoint
from hookline.store.events import delivered_body, format_timestamp

TEST_EVENT = "webhook.test"
GONE = "the webhook was deleted while its test was being sent"
TEST_MESSAGE = "This is a test event from hookline."
RESPONSE_BODY_LIMIT = 4096  # bytes of the receiver's answer kept and shown
MAX_ENDPOINTS = 50  # the tenant-wide form tests at most this many endpoints in one request
CONCURRENCY = 10  # requests of the tenant-wide form in flight at once
UNVERIFIED = ("pending", "failed")


class Gone(Exception):
    """The endpoint was deleted while its test send was out: nothing could be kept of it."""


async def event_and_data(
    services: Services, event: str | None, data: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """The event type to send and its payload, checked: ``data`` must fit the type's schema. A payload
    of None means the default (for ``webhook.test`` one naming the endpoint, else the type's example)."""
    name = event or TEST_EVENT
    if data is None and name != TEST_EVENT:
        found = await services.registry.get(name)
        data = dict(found.example) if found is not None else None
    await check_event(services, name, data if data is not None else {"message": TEST_MESSAGE})
    return name, data


def _default_data(event: str, endpoint: Endpoint) -> dict[str, Any]:
    return {"message": TEST_MESSAGE, "webhook_id": endpoint.id} if event == TEST_EVENT else {}


async def unverified(services: Services, endpoints: Sequence[Endpoint]) -> dict[int, str]:
    """The endpoints among ``endpoints`` that must pass the handshake before anything is sent to them,
    with their verification status."""
    found: dict[int, str] = {}
    async with services.store.read() as conn:
        for tenant_id in {e.tenant_id for e in endpoints}:
            ids = [e.id for e in endpoints if e.tenant_id == tenant_id]
            for endpoint_id, state in (await states.of_endpoints(conn, tenant_id, ids)).items():
                if state.verification in UNVERIFIED:
                    found[endpoint_id] = state.verification
    return found


def not_sent(endpoint: Endpoint, event: str, reason: str) -> dict[str, Any]:
    return {
        "webhook_id": endpoint.id,
        "url": endpoint.url,
        "sent": False,
        "succeeded": False,
        "event": event,
        "event_id": None,
        "delivery_id": None,
        "status_code": None,
        "duration_ms": 0,
        "response_body": None,
        "error": reason,
        "signatures": [],
    }


def unverified_reason(endpoint: Endpoint, status: str) -> str:
    return (
        f"webhook {endpoint.id} has not passed the verification handshake ({status}): "
        f"POST /v1/webhooks/{endpoint.id}/verify first"
    )


async def send_one(
    services: Services, sender: Sender, endpoint: Endpoint, event: str, data: dict[str, Any] | None
) -> dict[str, Any]:
    """Send one test event to ``endpoint`` now, record it, and answer with its outcome."""
    settings = services.settings
    now = services.now()
    event_id = new_id("evt")
    payload = data if data is not None else _default_data(event, endpoint)
    body = delivered_body(event_id, event, format_timestamp(now), payload)
    timeout = endpoint.timeout_ms / 1000 if endpoint.timeout_ms else settings.delivery_timeout
    result = await sender.send(
        SendRequest(
            url=endpoint.url,
            event_id=event_id,
            event_type=event,
            body=body,
            secrets=signing_secrets(endpoint.secret, endpoint.previous_secrets, now),
            custom_headers=endpoint.delivered_headers,
            timeout=timeout,
            signing_keys=signing_keys(endpoint.signing_key, endpoint.previous_secrets, now),
        )
    )
    code = result.status_code
    succeeded = code is not None and 200 <= code < 300
    sent = deliveries.SentTest(
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=event,
        payload=body,
        created_at=now,
        started_at=datetime.fromtimestamp(result.started_at, UTC),
        duration_ms=result.duration_ms,
        status_code=code,
        response_body=result.response_body,
        error=result.error,
        request_headers=result.request_headers,
        succeeded=succeeded,
    )
    try:
        async with services.store.write() as conn:
            delivery_id = await deliveries.record_test_send(conn, endpoint.tenant_id, sent)
    except IntegrityError:  # the webhook (or its tenant) was deleted while the request was out
        raise Gone(GONE) from None
    return {
        "webhook_id": endpoint.id,
        "url": endpoint.url,
        "sent": bool(result.request_headers),  # no headers: the request could not even be built
        "succeeded": succeeded,
        "event": event,
        "event_id": event_id,
        "delivery_id": delivery_id,
        "status_code": code,
        "duration_ms": result.duration_ms,
        "response_body": result.response_body,
        "error": result.error,
        "signatures": signature_schemes(result.request_headers, settings.signature_style),
    }


async def send_all(
    services: Services, endpoints: Sequence[Endpoint], event: str, data: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """A test send to each of ``endpoints`` (at most ``CONCURRENCY`` at once), in their order. An
    endpoint that has not passed its handshake is reported, not sent to."""
    held = await unverified(services, endpoints)
    turns = asyncio.Semaphore(CONCURRENCY)
    async with services.sending(body_limit=RESPONSE_BODY_LIMIT) as sender:

        async def one(endpoint: Endpoint) -> dict[str, Any]:
            if (status := held.get(endpoint.id)) is not None:
                return not_sent(endpoint, event, unverified_reason(endpoint, status))
            async with turns:
                try:
                    return await send_one(services, sender, endpoint, event, data)
                except Gone:
                    return not_sent(endpoint, event, GONE)

        return list(await asyncio.gather(*(one(e) for e in endpoints)))
