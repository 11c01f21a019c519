"""The dispatcher: a loop that claims due deliveries, sends them concurrently, and records the results.

    claim (batch, under a lease) -> send (bounded per endpoint) -> record attempts -> finish or reschedule

New work wakes the loop at once (PostgreSQL LISTEN/NOTIFY across processes, a callback within one);
a slow poll is only the safety net and the clock for retries. ``stop()`` drains: claiming stops,
in-flight sends get ``drain_timeout`` to finish, and every claimed-but-unsent delivery is handed back
so no one waits for a lease to expire after a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog

from hookline.config import Settings
from hookline.dispatch.retry import RetryPolicy, Verdict
from hookline.dispatch.sender import AttemptResult, Request, make_sender
from hookline.egress import UrlPolicy
from hookline.signing import SignatureStyle
from hookline.store import queue
from hookline.store.engine import DATABASE_ERRORS, WAKE_CHANNEL, Store
from hookline.store.queue import Job, Outcome

log = structlog.get_logger("hookline.worker")


def _now() -> datetime:
    return datetime.now(UTC)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(self, store: Store, settings: Settings, *, worker_id: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        self.retry_policy = RetryPolicy(
            schedule=settings.retry_schedule,
            no_retry_statuses=settings.no_retry_statuses,
            jitter=settings.retry_jitter,
            retry_after_max=settings.retry_after_max,
        )
        self.sender = make_sender(
            settings.sender,
            UrlPolicy(allow_http=settings.allow_http, allowed_networks=settings.allowed_networks),
            style=SignatureStyle(
                header_prefix=settings.signature_header_prefix,
                hex_form="hex" if settings.signature_hex_form == "hex" else "sha256=",
            ),
            body_limit=settings.response_body_limit,
        )
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running: dict[asyncio.Task[None], Job] = {}
        self._in_flight: defaultdict[int, int] = defaultdict(int)
        self._waiting: defaultdict[int, deque[Job]] = defaultdict(deque)
        self._outcomes: list[Outcome] = []
        self._to_release: list[int] = []
        self._record_needed = asyncio.Event()
        self._recorder_closing = False

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        await self.sender.start()
        self.store.on_new_work(self.wake)
        recorder = asyncio.create_task(self._recorder(), name="hookline-recorder")
        helpers = []
        if not self.store.is_sqlite:
            helpers.append(asyncio.create_task(self._listen(), name="hookline-listen"))
        log.info("worker started", worker_id=self.worker_id)
        try:
            await self._claim_loop()
        finally:
            await self._drain()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            # Never cancel the recorder mid-flush: it holds the batch it took out of the lists (outcomes
            # and leases to hand back) and would drop it. Let it finish its flush and stop by itself.
            self._recorder_closing = True
            self._record_needed.set()
            await asyncio.gather(recorder, return_exceptions=True)
            await self._flush()
            await self.sender.close()
            self._stopped.set()
            log.info("worker stopped", worker_id=self.worker_id)

    # --- claiming --------------------------------------------------------------------------------

    def _cap(self, job: Job) -> int:
        return job.max_in_flight or self.settings.max_in_flight_per_endpoint

    def _free(self) -> int:
        """How many more deliveries to claim. Jobs waiting for a saturated endpoint use no connection, so
        they do not count against the concurrency (a hanging endpoint's backlog must not starve the
        others); they are only bounded, at as many again as the concurrency."""
        running = len(self._running)
        waiting = sum(len(q) for q in self._waiting.values())
        concurrency = self.settings.worker_concurrency
        return min(concurrency - running, 2 * concurrency - running - waiting)

    async def _claim_loop(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            free = self._free()
            if free <= 0:
                self._slot_freed.clear()
                await self._wait(self._slot_freed, self.settings.poll_interval)
                continue
            limit = min(free, self.settings.worker_batch_size)
            # Endpoints with at least a full round of work waiting here are left out of the claim.
            saturated = [ep for ep, q in self._waiting.items() if q and len(q) >= self._cap(q[0])]
            self._wake.clear()
            try:
                jobs = await queue.claim(
                    self.store,
                    worker_id=self.worker_id,
                    limit=limit,
                    now=_now(),
                    lease=self.settings.lease,
                    skip_endpoints=saturated,
                )
                backoff = 0.1
            except Exception as exc:  # the claim loop must not die: the worker would sit idle
                error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, DATABASE_ERRORS):
                    log.warning("claim failed; retrying", error=error, wait=backoff)
                else:
                    log.error("claim failed unexpectedly; retrying", error=error, wait=backoff, exc_info=True)
                await self._wait(self._stopping, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for job in jobs:
                self._dispatch(job)
            if len(jobs) < limit:
                await self._wait(self._wake, self.settings.poll_interval)

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    def _dispatch(self, job: Job) -> None:
        if not job.endpoint_active:
            self._finish(job, None, "the endpoint is disabled; not sent")
            return
        if self._in_flight[job.endpoint_id] >= self._cap(job):
            self._waiting[job.endpoint_id].append(job)
            return
        self._start(job)

    def _start(self, job: Job) -> None:
        self._in_flight[job.endpoint_id] += 1
        task = asyncio.create_task(self._attempt(job))
        self._running[task] = job
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        job = self._running.pop(task)
        endpoint = job.endpoint_id
        self._in_flight[endpoint] -= 1
        waiting = self._waiting[endpoint]
        cap = self._cap(waiting[0]) if waiting else 0
        was_skipped = bool(waiting) and len(waiting) >= cap  # see the claim loop
        if self._stopping.is_set():
            self._to_release.extend(j.delivery_id for j in waiting)
            waiting.clear()
        while waiting and self._in_flight[endpoint] < self._cap(waiting[0]):
            next_job = waiting.popleft()
            # A job that waited so long that its lease could end mid-send goes back to the queue. The
            # slack for recording is at most 5 s and leaves room even when the lease is only twice the
            # timeout (otherwise every waiting job would go back at once, however briefly it waited).
            timeout = self._timeout(next_job)
            margin = timedelta(seconds=timeout + min(5.0, (self.settings.lease - timeout) / 2))
            if next_job.lease_until - _now() < margin:
                self._to_release.append(next_job.delivery_id)
                self._record_needed.set()
                continue
            self._start(next_job)
        if was_skipped and len(waiting) < cap:
            # Its local backlog is down to less than a round: claim more for it now (while the rest is
            # still being sent), not at the next poll.
            self._wake.set()
        if not waiting:
            del self._waiting[endpoint]
            if not self._in_flight[endpoint]:
                del self._in_flight[endpoint]
        self._slot_freed.set()

    # --- sending ---------------------------------------------------------------------------------

    def _timeout(self, job: Job) -> float:
        wanted = job.timeout_ms / 1000 if job.timeout_ms else self.settings.delivery_timeout
        # An endpoint may ask for more than the lease covers; the attempt must end while the delivery
        # is still leased, or it is claimed and sent again while this send is in flight.
        return min(wanted, self.settings.lease / 2)

    async def _attempt(self, job: Job) -> None:
        request = Request(
            url=job.url,
            event_id=job.event_id,
            event_type=job.event_type,
            body=job.payload,
            secrets=job.secrets(),
            custom_headers=job.headers,
            timeout=self._timeout(job),
        )
        try:
            result = await self.sender.send(request)
        except asyncio.CancelledError:
            self._to_release.append(job.delivery_id)
            raise
        self._finish(job, result)

    def _finish(self, job: Job, result: AttemptResult | None, not_sent: str | None = None) -> None:
        now = _now()
        if result is None:
            outcome = Outcome(
                delivery_id=job.delivery_id,
                endpoint_id=job.endpoint_id,
                attempt=job.attempt - 1,
                started_at=now,
                duration_ms=0,
                status_code=None,
                response_body=None,
                error=not_sent,
                request_headers={},
                status="failed",
                next_attempt_at=None,
                sent=False,
            )
        else:
            decision = self.retry_policy.decide(
                attempt=job.attempt,
                status_code=result.status_code,
                retry_after=result.retry_after,
                schedule=tuple(job.retry_schedule) if job.retry_schedule else None,
            )
            status = {Verdict.SUCCEEDED: "succeeded", Verdict.FAILED: "failed", Verdict.RETRY: "pending"}
            outcome = Outcome(
                delivery_id=job.delivery_id,
                endpoint_id=job.endpoint_id,
                attempt=job.attempt,
                started_at=datetime.fromtimestamp(result.started_at, UTC),
                duration_ms=result.duration_ms,
                status_code=result.status_code,
                response_body=result.response_body,
                error=result.error,
                request_headers=result.request_headers,
                status=status[decision.verdict],
                next_attempt_at=now + timedelta(seconds=decision.wait)
                if decision.verdict is Verdict.RETRY
                else None,
                disable_endpoint=decision.disable_endpoint,
            )
        self._outcomes.append(outcome)
        self._record_needed.set()

    # --- recording -------------------------------------------------------------------------------

    async def _recorder(self) -> None:
        while not self._recorder_closing:
            await self._record_needed.wait()
            self._record_needed.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Write every finished attempt and hand back released leases; on a database error keep them
        and try again (a lease that runs out meanwhile means a duplicate send, never a lost one)."""
        delay = 0.1
        while self._outcomes or self._to_release:
            outcomes, self._outcomes = self._outcomes, []
            released, self._to_release = self._to_release, []
            try:
                if outcomes:
                    await queue.record(self.store, outcomes, _now())
                    outcomes = []
                await queue.release(self.store, released, self.worker_id, _now())
                return
            except Exception as exc:  # whatever it is, the recorder must live on and keep the results
                self._outcomes[:0] = outcomes
                self._to_release[:0] = released
                error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, DATABASE_ERRORS):
                    log.warning("recording results failed; retrying", error=error)
                else:
                    log.error("recording results failed unexpectedly; retrying", error=error, exc_info=True)
                if self._stopped.is_set():
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- shutdown --------------------------------------------------------------------------------

    async def _drain(self) -> None:
        for waiting in self._waiting.values():
            self._to_release.extend(j.delivery_id for j in waiting)
        self._waiting.clear()
        if self._running:
            _, pending = await asyncio.wait(list(self._running), timeout=self.settings.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- wake-ups across processes ---------------------------------------------------------------

    async def _listen(self) -> None:
        import asyncpg

        dsn = sa.make_url(self.settings.effective_database_url).set(drivername="postgresql")
        while not self._stopping.is_set():
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=10)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection failed; polling meanwhile", error=type(exc).__name__)
                await self._wait(self._stopping, 2.0)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(WAKE_CHANNEL, lambda *_: self._wake.set())
                self._wake.set()  # anything announced while we were not listening
                await lost.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
