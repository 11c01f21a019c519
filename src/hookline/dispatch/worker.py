"""The dispatcher: a loop that chooses endpoints, claims their due deliveries, sends them concurrently,
and records the results.

    choose endpoints (hookline.dispatch.scheduler) -> claim (under a lease) -> send -> record
    (attempts, delivery states, and what they mean for the endpoint: hookline.dispatch.health)

Which endpoints, and how many deliveries each, is decided per claim from state every worker shares
(``endpoint_state``): tenants and endpoints take turns, each bounded by its breaker and rate limit. An
endpoint that may not send is simply not claimed: its deliveries are held, spending no attempt. A
worker claims an endpoint's deliveries ahead (up to a round beyond its cap, ``scheduler.AHEAD``) and
sends them from its run queue (``hookline.dispatch.runqueue``): tenants in turn, at most the endpoint's
cap at once. While it holds them no other worker sends to that endpoint, so the cap holds across
workers; it claims again when less than a round is left. Answers that stop an endpoint (its breaker
opens, a Retry-After pauses it, it is disabled) hand back what is still waiting here.

New work wakes the loop at once (PostgreSQL LISTEN/NOTIFY across processes, a callback within one);
a slow poll is only the safety net and the clock for retries. ``stop()`` drains: claiming stops,
in-flight sends get most of ``drain_timeout`` to finish, and every claimed-but-unsent delivery is handed
back so no one waits for a lease to expire after a clean stop. The whole stop, final writes included,
ends within ``drain_timeout``: what cannot be written by then is left to its lease (at-least-once).

The recorder cannot be poisoned: a batch that fails for a reason other than an unavailable database is
written one result at a time, and a result that still cannot be written is dropped (logged, counted in
``dropped_results``; its lease runs out and it is sent again) instead of holding back everyone else's.
What the worker reads from an endpoint row is checked first (``hookline.dispatch.options``): a bad value
fails or adjusts one delivery, never the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import secrets
import socket
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog

from hookline import metrics, notices, rollups, tracing
from hookline.config import Settings
from hookline.dispatch import health, options, scheduler
from hookline.dispatch.retry import RetryPolicy, Verdict
from hookline.dispatch.runqueue import RunQueue
from hookline.dispatch.sender import AttemptResult, Request
from hookline.dispatch.senders import make_sender
from hookline.store import audit_log as audit_rows
from hookline.store import notices as notice_rows
from hookline.store import queue, retention
from hookline.store import relay as relay_rows
from hookline.store import rollups as rollup_rows
from hookline.store.engine import DATABASE_ERRORS, WAKE_CHANNEL, Store
from hookline.store.queue import Job, Outcome

log = structlog.get_logger("hookline.worker")

MAX_CANDIDATES = 256  # endpoints read per claim
LOOK_AGAIN = 0.005  # seconds before a claim that left wakes behind (their endpoints locked) looks again
# A batch of answers is written once this many are in, or this long after the first (one transaction
# for many answers; sending does not wait for it, only the next claim for the endpoint, and a failed
# answer's endpoint).
RECORD_BATCH = 128
RECORD_GATHER = 0.005
STALL_GRACE = 10.0  # seconds beyond two poll intervals before /readyz calls the claim loop stalled
COMPACT_EVERY = 30.0  # seconds between compactions of the statistics' rollups
UNREADABLE_SAY_EVERY = 60.0  # seconds between log lines about one endpoint's credentials not opening


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
        self.alert_policy = settings.alert_policy
        self.limits = scheduler.Limits(
            max_in_flight=settings.max_in_flight_per_endpoint,
            rate_limit=settings.rate_limit,
            breaker=settings.breaker_policy,
        )
        self.sender = make_sender(
            settings.sender,
            settings.url_policy,
            style=settings.signature_style,
            body_limit=settings.response_body_limit,
            store=store,
            proxy=settings.egress_proxy,
        )
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running: dict[asyncio.Task[None], Job] = {}
        self._queue: RunQueue[Job] = RunQueue()
        # Deliveries this worker holds a lease on, per endpoint: waiting, being sent, or finished and
        # not yet written (or handed back). The claim takes at most a round ahead of them.
        self._held: dict[int, int] = {}
        self._held_total = 0
        self._more: set[int] = set()  # endpoints whose last lease saw more waiting than it took
        # Until when each endpoint may not send (a rate limit, a pause, its breaker), as its last claim
        # here settled it: no claim for more before then, and the claim loop wakes then.
        self._blocked: dict[int, datetime] = {}
        # Whether ``endpoint_wakes`` may hold something: set by announcements and by the safety-net
        # poll, so a claim right after a recorded batch skips that statement.
        self._wakes_announced = True
        # Whether a claim should look at the endpoints again: a retry was written or leases handed back.
        self._look_again = False
        self._claim_at_least = max(1, min(settings.worker_batch_size, settings.worker_concurrency) // 8)
        self._outcomes: list[Outcome] = []
        self._to_release: list[Job] = []
        self._record_needed = asyncio.Event()
        self._notices_raised = asyncio.Event()  # set when a batch raised operational events
        self._recorder_closing = False
        self._flush_deadline: float | None = None  # loop time by which a stopping worker gives up writing
        self.dropped_results = 0  # results that could not be written at all (see _record_alone)
        self.last_tick: float | None = None  # monotonic time of the claim loop's last turn
        self._tally = metrics.AttemptTally()
        self._log_successes = settings.log_level == "debug"
        self._unreadable_said: dict[int, float] = {}  # endpoint -> when its credentials were last logged

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def tick(self) -> None:
        """The claim loop turned (at least every poll interval while it is healthy)."""
        self.last_tick = time.monotonic()
        metrics.worker_tick().set(time.time())
        metrics.attempts_in_flight.set(len(self._running))

    def ticking(self) -> bool:
        """Whether the claim loop turned recently enough: within twice the poll interval, plus a few
        seconds for a claim that takes long on a loaded database. False before it started."""
        if self.last_tick is None:
            return False
        return time.monotonic() - self.last_tick <= 2 * self.settings.poll_interval + STALL_GRACE

    def wake(self) -> None:
        """New work was announced (in this process, or by NOTIFY): the next claim takes in the wakes."""
        self._wakes_announced = True
        self._wake.set()

    async def run(self) -> None:
        await self.sender.start()
        self.store.on_new_work(self.wake)
        recorder = asyncio.create_task(self._recorder(), name="hookline-recorder")
        helpers = [
            asyncio.create_task(self._compactor(), name="hookline-compactor"),
            asyncio.create_task(self._publisher(), name="hookline-publisher"),
        ]
        if not self.store.is_sqlite:
            helpers.append(asyncio.create_task(self._listen(), name="hookline-listen"))
        if self.settings.egress_proxy is not None:  # its URL without the credentials
            log.info("deliveries go through the egress proxy", proxy=str(self.settings.egress_proxy))
        log.info("worker started", worker_id=self.worker_id)
        try:
            await self._claim_loop()
        finally:
            self._hand_back(self._queue.drain())  # claimed, not started: back to the queue
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.drain_timeout
            # Sends get the drain timeout less a reserve for writing their results.
            await self._drain(deadline - min(1.0, self.settings.drain_timeout / 4))
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            # The recorder finishes its flush and stops by itself (a flush gives up at the deadline).
            # Only one stuck in a write past the deadline is cancelled; it puts its batch back first.
            self._flush_deadline = deadline
            self._recorder_closing = True
            self._record_needed.set()
            done, _ = await asyncio.wait([recorder], timeout=max(deadline - loop.time(), 0.0))
            if not done:
                recorder.cancel()
                await asyncio.gather(recorder, return_exceptions=True)
            await self._flush()
            await self.sender.close()
            self._stopped.set()
            log.info("worker stopped", worker_id=self.worker_id)

    # --- claiming --------------------------------------------------------------------------------

    def _budget(self) -> int:
        """How many more deliveries this worker may claim: it holds at most its concurrency plus a batch
        (the run queue's next ones). New work always gets a look, whatever it holds."""
        room = self.settings.worker_concurrency + self.settings.worker_batch_size - self._held_total
        if self._wakes_announced:
            room = max(room, self._claim_at_least)
        return min(room, self.settings.worker_batch_size)

    async def _claim_loop(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            self.tick()
            budget = self._budget()
            self._wake.clear()
            if budget <= 0:
                await self._wait(self._wake, self.settings.poll_interval)
                continue
            try:
                jobs, next_due = await self.claim(budget)
                backoff = 0.1
            except Exception as exc:  # the claim loop must not die: the worker would sit idle
                self._wakes_announced = True  # wakes it may have taken were rolled back
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
            self._pump()
            if not (self._wakes_announced or self._look_again):
                # Set during the claim by an endpoint running low before this claim's jobs came: not
                # a reason to claim again (if it still runs low, its next answer says so).
                self._wake.clear()
            if not jobs and not self._wakes_announced:
                # Nothing taken: the endpoints we came for may be locked by our own recorder. Claim
                # again after it, not at every answer meanwhile (new work still wakes us at once).
                await self._wait(self._stopping, LOOK_AGAIN)
            if len(jobs) < budget:
                # Nothing more now: wait for new work, an endpoint of ours running low, a retry
                # recorded, the next endpoint that becomes due (a rate limit, a breaker's probe, a
                # retry), or the poll, whichever comes first.
                wait = self.settings.poll_interval
                for moment in (next_due, self._next_unblocked()):
                    if moment is not None:
                        wait = min(wait, max((moment - _now()).total_seconds(), 0.001))
                if self._wakes_announced:  # wakes were left (their endpoints locked): look again soon
                    wait = min(wait, LOOK_AGAIN)
                await self._wait(self._wake, wait)
                if not self._wake.is_set() and wait >= self.settings.poll_interval:
                    self._wakes_announced = True  # the safety-net poll: look for missed wakes too

    async def claim(self, budget: int, now: datetime | None = None) -> tuple[list[Job], datetime | None]:
        """Choose endpoints, lease their deliveries: one claim transaction. Returns the jobs and when
        the next endpoint becomes due (None: none is waiting). The jobs are held by this worker from
        here on: ``_dispatch`` each."""
        started = time.time_ns()
        now = now or _now()
        lease_until = now + timedelta(seconds=self.settings.lease)
        take_wakes, self._wakes_announced = self._wakes_announced, False
        self._look_again = False
        async with queue.claiming(self.store, self.worker_id) as claim:
            if take_wakes and await claim.take_wakes(now):
                self._wakes_announced = True  # some are left for the next claim
            candidates = await claim.due_endpoints(now, min(max(budget, 16), MAX_CANDIDATES))
            stock = {e: self._queue.waiting(e) + self._queue.sending(e) for e in self._held}
            grants, planned = scheduler.plan(
                candidates, budget, now, lease_until, self.limits, stock, self._held
            )
            jobs, heads = await claim.lease(grants, now, lease_until)
            settled = scheduler.settle_all(candidates, planned, heads, now, self.limits)
            await claim.save(settled, now)
            next_due = await claim.next_due(now)
        if jobs and tracing.enabled():
            tracing.claimed(
                [(j.tenant_id, j.event_id) for j in jobs], started, time.time_ns(), self.worker_id
            )
        for job in jobs:
            self._hold(job.endpoint_id, 1)
        for endpoint_id, head in heads.items():
            if head.unleased_left > 0:
                self._more.add(endpoint_id)
            else:
                self._more.discard(endpoint_id)
        changed = {s.endpoint_id: s for s in settled}
        for c in candidates:  # a probe let through: open -> half open
            after = changed.get(c.state.endpoint_id, c.state).breaker_state
            if after != c.state.breaker_state:
                metrics.breaker_transitions.labels(after).inc()
        waits = sum(
            scheduler.waits_for_rate(
                c, changed.get(c.state.endpoint_id, c.state), heads.get(c.state.endpoint_id), now, self.limits
            )
            for c in candidates
        )
        if waits:
            metrics.rate_limit_waits.inc(waits)
        for endpoint_id in [e for e, until in self._blocked.items() if until <= now]:
            self._blocked.pop(endpoint_id)  # looked for once now (if not due, its next answer brings it)
        for c in candidates:
            until = changed.get(c.state.endpoint_id, c.state).blocked_until
            if until is not None and until > now:
                self._blocked[c.state.endpoint_id] = until
            else:
                self._blocked.pop(c.state.endpoint_id, None)
        return jobs, next_due

    def _next_unblocked(self) -> datetime | None:
        """When the first endpoint this worker wants more of may send again (another worker's claim may
        have made it due before then without telling this one)."""
        moments = [until for e, until in self._blocked.items() if e in self._more]
        return min(moments) if moments else None

    def _hold(self, endpoint_id: int, n: int) -> None:
        held = self._held.get(endpoint_id, 0) + n
        self._held_total += n
        if held > 0:
            self._held[endpoint_id] = held
        else:
            self._held.pop(endpoint_id, None)
            if endpoint_id not in self._more:
                self._blocked.pop(endpoint_id, None)

    def _let_go(self, jobs: Sequence[Job | Outcome]) -> None:
        """These are written (or handed back): this worker no longer holds them. An endpoint paused by
        a failed answer among them goes on (unless the answer stopped it: see ``_stop_sending``)."""
        for job in jobs:
            self._hold(job.endpoint_id, -1)
            if isinstance(job, Outcome) and _pauses(job):
                self._queue.resume(job.endpoint_id)
        self._pump()
        if any(self._runs_low(job.endpoint_id) for job in jobs):
            self._wake.set()

    def _runs_low(self, endpoint_id: int) -> bool:
        """Whether to claim more for an endpoint this worker sends to: it has more waiting in the store
        and less than half of ``AHEAD`` (at least a round) waits here. Asked when answers have been
        written, so the claim does not find the endpoint's row locked by the recorder."""
        if endpoint_id not in self._more:
            return False
        if (until := self._blocked.get(endpoint_id)) is not None and until > _now():
            return False  # the claim loop's timer brings it back
        cap = self._queue.cap(endpoint_id) or self.limits.max_in_flight
        return self._queue.waiting(endpoint_id) < max(cap, scheduler.AHEAD // 2)

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    def _dispatch(self, job: Job) -> None:
        if not job.endpoint_active:  # disabled since the claim read it: its deliveries are held
            self._hand_back([job])
            return
        if job.unreadable is not None:
            # This process lacks the key that sealed the endpoint's credentials (started without the
            # new key of a rotation, say). Not the endpoint's fault: no attempt is spent; the lease is
            # kept, so that the delivery goes to a worker holding the key when it runs out.
            said = self._unreadable_said.get(job.endpoint_id)
            if said is None or time.monotonic() - said > UNREADABLE_SAY_EVERY:
                self._unreadable_said[job.endpoint_id] = time.monotonic()
                log.error(
                    "cannot open the endpoint's credentials with HOOKLINE_SECRET_KEY; its deliveries are "
                    "not sent here, but left to their leases for a worker holding the key",
                    delivery_id=job.delivery_id,
                    endpoint_id=job.endpoint_id,
                    error=job.unreadable,
                )
            self._let_go([job])
            return
        checked = options.check(job)
        if checked.problem is not None:
            self._finish(job, None, f"{checked.problem}; not sent")
            return
        job = checked.job
        self._queue.put(job, job.max_in_flight or self.limits.max_in_flight)

    def _pump(self) -> None:
        """Start waiting deliveries while slots are free (tenants in turn, each endpoint under its cap)."""
        while len(self._running) < self.settings.worker_concurrency and not self._stopping.is_set():
            job = self._queue.take()
            if job is None:
                return
            # A job that waited so long that its lease could end mid-send goes back to the queue. The
            # slack for recording is at most 5 s and leaves room even when the lease is only twice the
            # timeout.
            timeout = self._timeout(job)
            margin = timedelta(seconds=timeout + min(5.0, (self.settings.lease - timeout) / 2))
            if job.lease_until - _now() < margin:
                self._queue.finished(job)
                self._hand_back([job])
                continue
            self._start(job)

    def _hand_back(self, jobs: Sequence[Job]) -> None:
        if jobs:
            self._to_release.extend(jobs)
            self._record_needed.set()

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._attempt(job))
        self._running[task] = job
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        job = self._running.pop(task)
        self._queue.finished(job)
        self._pump()

    # --- sending ---------------------------------------------------------------------------------

    def _timeout(self, job: Job) -> float:
        wanted = job.timeout_ms / 1000 if job.timeout_ms else self.settings.delivery_timeout
        # An endpoint may ask for more than the lease covers; the attempt must end while the delivery
        # is still leased, or it is claimed and sent again while this send is in flight.
        return min(wanted, self.settings.lease / 2)

    async def _attempt(self, job: Job) -> None:
        try:
            secrets: Sequence[str] = [job.secret]
            keys: Sequence[str] = [job.signing_key] if job.signing_key else ()
            if job.previous_secrets:  # only a rotation's grace periods need the clock
                now = _now()
                secrets = options.signing_secrets(job.secret, job.previous_secrets, now)
                if job.signing_key:
                    keys = options.signing_keys(job.signing_key, job.previous_secrets, now)
            request = Request(
                url=job.url,
                event_id=job.event_id,
                event_type=job.event_type,
                body=job.payload,
                secrets=secrets,
                custom_headers=job.headers,
                timeout=self._timeout(job),
                signing_keys=keys,
            )
            result = await self.sender.send(request)
        except asyncio.CancelledError:
            self._to_release.append(job)
            raise
        except Exception as exc:  # nothing foreseen: this attempt fails, the worker goes on
            kind = type(exc).__name__  # not the message: it could quote a header or a secret
            log.error("delivery attempt failed unexpectedly", delivery_id=job.delivery_id, error=kind)
            error = f"the attempt failed unexpectedly ({kind})"
            result = AttemptResult(time.time(), 0, None, None, error, None, {})
        self._finish(job, result)

    def _finish(self, job: Job, result: AttemptResult | None, not_sent: str | None = None) -> None:
        now = _now()
        if result is None:
            outcome = Outcome(
                delivery_id=job.delivery_id,
                endpoint_id=job.endpoint_id,
                tenant_id=job.tenant_id,
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
                event_id=job.event_id,
                event_type=job.event_type,
            )
        else:
            decision = self.retry_policy.decide(
                attempt=job.attempt,
                status_code=result.status_code,
                retry_after=result.retry_after,
                schedule=tuple(job.retry_schedule) if job.retry_schedule else None,
            )
            error = "; ".join(p for p in (result.error, *job.notes) if p) or None
            outcome = Outcome(
                delivery_id=job.delivery_id,
                endpoint_id=job.endpoint_id,
                tenant_id=job.tenant_id,
                attempt=job.attempt,
                started_at=datetime.fromtimestamp(result.started_at, UTC),
                duration_ms=result.duration_ms,
                status_code=result.status_code,
                response_body=result.response_body,
                error=error,
                request_headers=result.request_headers,
                status=_STATUS[decision.verdict],
                next_attempt_at=now + timedelta(seconds=decision.wait)
                if decision.verdict is Verdict.RETRY
                else None,
                retry_after=result.retry_after,
                failure=result.failure,
                event_id=job.event_id,
                event_type=job.event_type,
            )
        self._outcomes.append(outcome)
        self._record_needed.set()
        self._count(job, outcome, result, now)
        if _pauses(outcome):
            # Nothing more for this endpoint until its breaker has seen this answer: the next ones
            # wait here for the answer to be written, and are handed back if it stopped the endpoint.
            self._queue.pause(outcome.endpoint_id)
        if outcome.status != "succeeded":
            _log_failure(outcome)
        elif self._log_successes:  # checked here: building the line's fields costs even when filtered
            log.debug("delivery attempt succeeded", **_ids(outcome), status_code=outcome.status_code)

    def _count(self, job: Job, outcome: Outcome, result: AttemptResult | None, now: datetime) -> None:
        """The metrics of one attempt (``hookline.metrics``), published with the batch it is written in."""
        if result is None:
            kind = "not_sent"
            self._tally.attempt(kind, None)
        else:
            kind = metrics.status_class(result.status_code, result.failure)
            self._tally.attempt(kind, result.duration_ms / 1000)
        if self.settings.metrics_endpoint_labels:
            metrics.endpoint_attempts.labels(job.tenant_id, str(job.endpoint_id), kind).inc()
        if outcome.status == "succeeded":
            accepted = job.accepted_at
            self._tally.finished("succeeded", (now - accepted).total_seconds() if accepted else None)
        elif outcome.status == "failed":
            self._tally.finished("failed", None)
        if tracing.enabled() and result is not None:
            started = int(result.started_at * 1e9)
            tracing.attempted(
                tenant_id=job.tenant_id,
                event_id=job.event_id,
                delivery_id=job.delivery_id,
                endpoint_id=job.endpoint_id,
                attempt=job.attempt,
                outcome=outcome.status,
                status_class=kind,
                status_code=result.status_code,
                started_ns=started,
                ended_ns=started + result.duration_ms * 1_000_000,
            )

    # --- recording -------------------------------------------------------------------------------

    async def _recorder(self) -> None:
        while not self._recorder_closing:
            await self._record_needed.wait()
            if len(self._outcomes) < RECORD_BATCH and not self._to_release and not self._stopping.is_set():
                await asyncio.sleep(RECORD_GATHER)  # a few more answers: one transaction for them all
            self._record_needed.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Write every finished attempt and hand back released leases. While the database is unavailable
        keep them and try again (a lease that runs out meanwhile means a duplicate send, never a lost
        one); a stopping worker tries until its deadline, then leaves the rest to their leases."""
        delay = 0.1
        while self._outcomes or self._to_release:
            if self._past_deadline():
                log.warning(
                    "stopping without writing every result; their leases expire and they are sent again",
                    results=len(self._outcomes),
                    leases=len(self._to_release),
                )
                return
            self._tally.publish()  # the metrics of the attempts about to be written
            outcomes, self._outcomes = self._outcomes, []
            released, self._to_release = self._to_release, []
            retries = any(o.status == "pending" for o in outcomes)
            try:
                async with self._before_deadline():
                    await self._record(outcomes)  # empties ``outcomes`` as it writes them
                    ids = [job.delivery_id for job in released]
                    await queue.release(self.store, ids, self.worker_id, _now())
                    self._let_go(released)
                    released = []
                if ids or retries:
                    # Handed back (release() announced their endpoints), or a retry written: a claim
                    # looks at their endpoints (and learns when the retry is due).
                    self._wakes_announced = self._wakes_announced or bool(ids)
                    self._look_again = True
                    self._wake.set()
                if not self._to_release:
                    return
                continue  # answers stopped an endpoint: hand back what waited for it
            except BaseException as exc:  # keep what is not written yet, whatever happened
                self._outcomes[:0] = outcomes
                self._to_release[:0] = released
                if not isinstance(exc, Exception):
                    raise
                if queue.unavailable(exc):
                    log.warning("recording results failed; retrying", error=_describe(exc, message=True))
                else:
                    log.error("recording results failed unexpectedly; retrying", error=_describe(exc))
                await self._pause(delay)
                delay = min(delay * 2, 5.0)

    async def _record(self, pending: list[Outcome]) -> None:
        """Write ``pending`` (one statement), emptying it. If that fails for any other reason than an
        unavailable database, write the results one at a time, so that one that cannot be written
        holds back no other. Raises (``pending`` keeping what is not written yet) if the database is
        unavailable. The one-at-a-time path only ever runs after a failure."""
        if not pending:
            return
        try:
            self._stop_sending(await self.write_results(pending, _now()))
            self._let_go(pending)
            pending.clear()
            return
        except Exception as exc:
            if queue.unavailable(exc):
                raise
            log.warning(
                "a batch of results could not be written; writing them one at a time",
                results=len(pending),
                error=_describe(exc),
            )
        while pending:
            await self._record_alone(pending[0])
            self._let_go(pending[:1])
            del pending[0]

    async def _record_alone(self, outcome: Outcome) -> None:
        """Write one result; failing that, the result without its details (response, headers, error
        text: the likely unstorable parts); failing that, drop it, log it and count it."""
        try:
            self._stop_sending(await self.write_results([outcome], _now()))
            return
        except Exception as exc:
            if queue.unavailable(exc):
                raise
            first = _describe(exc)
        bare = dataclasses.replace(
            outcome,
            response_body=None,
            request_headers={},
            error=f"the attempt's details could not be stored ({first})",
            status_code=outcome.status_code if 100 <= (outcome.status_code or 0) <= 999 else None,
        )
        try:
            self._stop_sending(await self.write_results([bare], _now()))
            log.warning("a result was written without its details", **_ids(outcome), error=first)
        except Exception as exc:
            if queue.unavailable(exc):
                raise
            self.dropped_results += 1
            log.error(
                "a result could not be written and was dropped; its lease expires and it is sent again",
                **_ids(outcome),
                error=_describe(exc),
                dropped_results=self.dropped_results,
            )

    def _stop_sending(self, stopped: Collection[int]) -> None:
        """Hand back what waits here for endpoints that may not send now (see ``write_results``)."""
        for endpoint_id in stopped:
            self._hand_back(self._queue.remove(endpoint_id))

    async def write_results(self, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
        """Record ``outcomes`` and what they do to their endpoints, in one transaction. Only results
        written (their delivery still there for the endpoint and tenant it was claimed for) count
        towards an endpoint's health. Returns the endpoints these answers stopped: breaker open,
        paused by a Retry-After, or disabled."""
        async with queue.recording(self.store) as rec:
            endpoints = await rec.endpoints({(o.endpoint_id, o.tenant_id) for o in outcomes})
            written = await rec.deliveries(outcomes, now)
            answers: dict[int, list[health.Answer]] = {}
            for o in outcomes:
                if o.delivery_id in written and o.endpoint_id in endpoints:
                    found = answers.setdefault(o.endpoint_id, [])
                    if o.sent:
                        found.append(health.Answer(o.status_code, o.retry_after))
            changed, disable, raised = [], {}, []
            for endpoint_id, found in answers.items():
                candidate = endpoints[endpoint_id]
                verdict = health.after_attempts(
                    candidate.state,
                    found,
                    now,
                    policy=scheduler.policy_of(candidate, self.limits),
                    rate=scheduler.rate_of(candidate, self.limits),
                    auto_disable_after=self.settings.auto_disable_after,
                    retry_after_max=self.settings.retry_after_max,
                    alert=self.alert_policy,
                )
                changed.append(verdict.state)
                raised.extend(notices.after_answers(candidate.state, verdict, now, self.alert_policy))
                if verdict.disable is not None:
                    disable[endpoint_id] = verdict.disable
                    log.warning("endpoint disabled", endpoint_id=endpoint_id, reason=verdict.disable)
            raised.extend(
                notices.exhausted_all(
                    (o for o in outcomes if o.delivery_id in written and o.endpoint_id in endpoints), now
                )
            )
            rows = rollups.of_outcomes(o for o in outcomes if o.delivery_id in written)
            await rec.finish(changed, disable, rows, raised, now)
        for state in changed:
            before = endpoints[state.endpoint_id].state.breaker_state
            if state.breaker_state != before:
                metrics.breaker_transitions.labels(state.breaker_state).inc()
        if raised:
            self._notices_raised.set()
        return {s.endpoint_id for s in changed if scheduler.stops_sending(s, now)}

    def _past_deadline(self) -> bool:
        return self._flush_deadline is not None and asyncio.get_running_loop().time() >= self._flush_deadline

    def _before_deadline(self) -> contextlib.AbstractAsyncContextManager[object]:
        if self._flush_deadline is None:
            return contextlib.nullcontext()
        return asyncio.timeout_at(self._flush_deadline)

    async def _pause(self, seconds: float) -> None:
        if self._flush_deadline is not None:
            seconds = min(seconds, max(self._flush_deadline - asyncio.get_running_loop().time(), 0.0))
        await asyncio.sleep(seconds)

    # --- shutdown --------------------------------------------------------------------------------

    async def _drain(self, until: float) -> None:
        """Give what is being sent until ``until`` (loop time); what is cancelled is handed back."""
        if self._running:
            timeout = max(until - asyncio.get_running_loop().time(), 0.0)
            _, pending = await asyncio.wait(list(self._running), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- wake-ups across processes ---------------------------------------------------------------

    async def _publisher(self) -> None:
        """Publish operational events (``hookline.store.notices``): at once when this worker raised
        some, and at every poll for those raised elsewhere (the API, other workers). Every worker
        publishes; each notice is published by one. First the operator's webhook is made to match the
        settings (until that succeeds, each round tries again)."""
        url = (self.settings.operator_webhook_url or "").strip() or None
        operator_ready = False
        delay = self.settings.poll_interval
        while not self._stopping.is_set():
            self._notices_raised.clear()
            try:
                if not operator_ready:
                    secret = self.settings.operator_webhook_secret
                    await notice_rows.ensure_operator_webhook(self.store, url, secret, _now())
                    operator_ready = True
                published = await notice_rows.publish(self.store)
                delay = self.settings.poll_interval
            except Exception as exc:  # kept in the outbox: the next run publishes them
                log.warning("publishing operational events failed; retrying", error=_describe(exc))
                published, delay = [], min(delay * 2, 5.0)
            for notice in published:
                _log_notice(notice)
            if len(published) < notice_rows.PUBLISH_BATCH:
                await self._wait(self._notices_raised, delay)

    async def _compactor(self) -> None:
        """Housekeeping now and then: compact the statistics' rollups (every worker tries; one at a time
        runs), delete the relay sessions (``hookline listen``) no one has held for ``relay_keep``, and
        prune what is older than the retention period (one worker at a time)."""
        await self._wait(self._stopping, random.uniform(1.0, COMPACT_EVERY))
        while not self._stopping.is_set():
            try:
                await rollup_rows.compact(
                    self.store, _now(), retention=timedelta(seconds=self.settings.stats_retention)
                )
            except Exception as exc:  # the next run tries again; nothing is lost meanwhile
                log.warning("statistics compaction failed", error=f"{type(exc).__name__}: {exc}")
            try:
                async with self.store.write() as conn:
                    gone = await relay_rows.expire(conn, _now(), timedelta(seconds=self.settings.relay_keep))
                if gone:
                    log.info("relay sessions expired", sessions=gone)
            except Exception as exc:  # the next run tries again
                log.warning("expiring relay sessions failed", error=f"{type(exc).__name__}: {exc}")
            try:
                oldest = _now() - timedelta(seconds=self.settings.audit_retention)
                async with self.store.write() as conn:
                    expired = await audit_rows.expire(conn, oldest)
                if expired:
                    log.info("audit log entries expired", entries=expired)
            except Exception as exc:  # the next run tries again
                log.warning("expiring audit log entries failed", error=f"{type(exc).__name__}: {exc}")
            # A backlog left by the budget is taken up again at once: the pacing alone bounds its share.
            backlog = await self._prune()
            await self._wait(self._stopping, 0.0 if backlog else COMPACT_EVERY)

    async def _prune(self) -> bool:
        """Retention (``hookline.store.retention``): at most ``COMPACT_EVERY`` seconds of it per round,
        paced by ``HOOKLINE_RETENTION_SHARE``, so a large backlog (the first run on an old database) is
        worked off round after round without taking the database from the deliveries. Whether a backlog
        is left: the budget stopped a run that was removing rows (not one another worker holds)."""
        try:
            pruned = await retention.prune(
                self.store,
                _now(),
                retention=timedelta(seconds=self.settings.retention),
                summary_retention=timedelta(seconds=self.settings.summary_retention),
                budget=COMPACT_EVERY,
                share=self.settings.retention_share,
            )
        except Exception as exc:  # the next round tries again; nothing is half-removed
            log.warning("retention pruning failed", error=_describe(exc))
            return False  # the next round tries again, after the usual wait
        if pruned.rows:
            log.info(
                "pruned by retention",
                attempts=pruned.attempts,
                deliveries=pruned.deliveries,
                payloads=pruned.payloads,
                events_deleted=pruned.events_deleted,
                summaries_deleted=pruned.summaries_deleted,
            )
        return not pruned.complete and pruned.rows > 0

    async def _listen(self) -> None:
        import asyncpg

        dsn = sa.make_url(self.settings.effective_database_url).set(drivername="postgresql")
        while not self._stopping.is_set():
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    dsn.render_as_string(hide_password=False),
                    timeout=10,
                    server_settings={"application_name": "hookline worker"},  # as the pool's
                )
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection failed; polling meanwhile", error=type(exc).__name__)
                await self._wait(self._stopping, 2.0)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(WAKE_CHANNEL, lambda *_: self.wake())
                self.wake()  # anything announced while we were not listening
                await lost.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)


_STATUS = {Verdict.SUCCEEDED: "succeeded", Verdict.FAILED: "failed", Verdict.RETRY: "pending"}


def _pauses(outcome: Outcome) -> bool:
    """Whether an answer holds back its endpoint's next sends until it is written: any answer but a
    success (a failure counts towards the breaker; a 429 or 503 may pause the endpoint; 410 disables it)."""
    code = outcome.status_code
    return outcome.sent and not (code is not None and 200 <= code < 300)


def _log_failure(outcome: Outcome) -> None:
    """One line per failed attempt, for an operator watching the console: which delivery, what went
    wrong (status or error, never a response body or a header value) and when it is tried again."""
    fields = {
        **_ids(outcome),
        "status_code": outcome.status_code,
        "error": outcome.error,
        "next_try": outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else "gave up",
    }
    if not outcome.sent:
        log.warning("delivery not sent", **fields)
    else:
        log.warning("delivery attempt failed", **fields)


def _log_notice(notice: notice_rows.Notice) -> None:
    """One line per operational event published; a warning for trouble, info for a recovery."""
    fields = {k: v for k, v in notice.data.items() if k != "last_error"}  # an error can quote a body
    write = log.info if notice.event_type in notices.GOOD_NEWS else log.warning
    write(notice.event_type, **fields)


def _ids(outcome: Outcome) -> dict[str, object]:
    """What every delivery log line names: the event, the delivery, its endpoint and tenant, which
    attempt, and its outcome (succeeded, pending: to be retried, or failed)."""
    return {
        "event_id": outcome.event_id,
        "delivery_id": outcome.delivery_id,
        "endpoint_id": outcome.endpoint_id,
        "tenant_id": outcome.tenant_id,
        "attempt": outcome.attempt,
        "outcome": outcome.status,
    }


def _describe(exc: BaseException, *, message: bool = False) -> str:
    """An error for the log: its kind (and SQLSTATE), the message only if asked. A failed write's
    message can quote the values it was given, which may hold a receiver's answer or a header."""
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    cause = (
        cause.__cause__
        if cause.__cause__ is not None and type(cause).__module__.startswith("sqlalchemy")
        else cause
    )
    kind = type(cause).__name__
    if (sqlstate := getattr(cause, "sqlstate", None)) is not None:
        kind = f"{kind} ({sqlstate})"
    return f"{kind}: {exc}" if message else kind
