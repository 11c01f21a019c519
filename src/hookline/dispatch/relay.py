"""The relay destination: an attempt to a ``relay://`` endpoint (``hookline listen``) handed to the
listener through the store, and the listener's answer turned into the attempt's outcome.

The request is signed exactly as an HTTP attempt is (``Headers``), written for the session
(``hookline.store.relay.post``), and the attempt waits for the answer the API process holding the
session writes back, up to the attempt's deadline. No answer by then is a timeout, as it would be over
HTTP; an answer that comes later is not kept. The listener reports what the local app said (its status
and body) or why it could not say anything, which is recorded like any receiver's answer.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from hookline.dispatch.sender import AttemptResult, Headers, Request
from hookline.signing import SignatureStyle
from hookline.store import relay
from hookline.store.engine import Store

# Waiting for an answer: first look soon (a listener on the same machine answers in milliseconds), then
# less often, never less often than this.
FIRST_LOOK = 0.01
SLOWEST_LOOK = 0.2


class RelayDestination:
    def __init__(self, store: Store, style: SignatureStyle = SignatureStyle(), body_limit: int = 64 * 1024):
        self._store = store
        self._headers = Headers(style)
        self._body_limit = body_limit

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, request: Request) -> AttemptResult:
        started = time.time()
        clock = time.perf_counter()
        token = relay.token_of(request.url)
        try:
            if token is None:
                raise ValueError("not a relay URL")
            headers, recorded = self._headers.build(request, int(started))
        except ValueError as exc:
            unbuilt = f"the request could not be built: {exc}"
            return AttemptResult(started, 0, None, None, unbuilt, None, {}, "invalid_request")
        deadline = datetime.now(UTC) + timedelta(seconds=request.timeout)
        async with self._store.write() as conn:
            exchange_id = await relay.post(
                conn,
                token=token,
                event_id=request.event_id,
                event_type=request.event_type,
                headers=headers,
                body=request.body,
                deadline=deadline,
            )
        reply = await self._answer(exchange_id, clock + request.timeout)
        duration_ms = int((time.perf_counter() - clock) * 1000)
        if reply is None:
            async with self._store.write() as conn:
                await relay.withdraw(conn, exchange_id)
            problem = f"the listener did not answer within {request.timeout:g} s"
            return AttemptResult(started, duration_ms, None, None, problem, None, recorded, "timeout")
        body = reply.response_body[: self._body_limit] if reply.response_body is not None else None
        return AttemptResult(
            started,
            duration_ms,
            reply.status_code,
            body,
            reply.error,
            None,
            recorded,
            None if reply.status_code is not None else "connection",
        )

    async def _answer(self, exchange_id: int, until: float) -> relay.Answer | None:
        pause = FIRST_LOOK
        while True:
            left = until - time.perf_counter()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            async with self._store.write() as conn:
                found = await relay.collect(conn, [exchange_id])
            if exchange_id in found:
                return found[exchange_id]
            pause = min(pause * 2, SLOWEST_LOOK)
