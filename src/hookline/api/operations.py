"""The operator's probes: ``/healthz`` (the process answers), ``/readyz`` (it can do its work),
``/health`` (the older combined check) and ``/metrics`` (Prometheus). Served by the API on its port and,
for ``hookline worker``, on ``HOOKLINE_WORKER_PORT`` (``worker_app``).

``/healthz`` and ``/readyz`` need no key (Kubernetes probes send none) and tell nothing about tenants.
``/metrics`` needs the admin key or ``HOOKLINE_METRICS_TOKEN``: it names tenants and their backlog.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, FastAPI, Header
from prometheus_client.core import GaugeMetricFamily
from starlette.responses import Response

from hookline import __version__, metrics
from hookline.api.access import no_key, own_token
from hookline.api.envelope import ApiError, EnvelopeResponse, ok
from hookline.api.responses import Envelope, Health
from hookline.api.services import Services
from hookline.store import migrate
from hookline.store import overview as overview_rows
from hookline.store.tenants import hash_key

PROBE_TIMEOUT = 2.0  # seconds a readiness check waits for the database
OVERVIEW_TTL = 1.0  # seconds a /metrics answer reuses the store's overview (concurrent scrapes share a read)
TENANT_SERIES = 20  # queue series name at most this many tenants (those waiting longest); the rest: "other"
# Who may call them (hookline.api.access): probes send no key and learn nothing about tenants; /metrics
# names tenants and their backlog, and checks its own token (Operations.authorize_metrics).
PROBE = no_key("a probe: says whether the process works, nothing about tenants")
METRICS = own_token("the admin key or HOOKLINE_METRICS_TOKEN, checked by Operations.authorize_metrics")
HELD_REASONS = ("disabled", "unverified", "offline", "circuit_open", "paused")
BREAKER_STATES = ("closed", "open", "half_open")


class WorkerProbe(Protocol):
    """What readiness asks of a worker running in the process (``hookline.dispatch.worker.Worker``)."""

    last_tick: float | None

    def ticking(self) -> bool: ...


class Operations:
    """The probes of one process: its services and, if it runs one, its worker."""

    def __init__(self, services: Services, worker: WorkerProbe | None = None) -> None:
        self.services = services
        self.worker = worker
        self._overview: overview_rows.Overview | None = None
        self._overview_at = 0.0
        self._overview_lock = asyncio.Lock()

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether this process can do its work, and each check's finding."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                schema = await migrate.schema_state(self.services.store)
            checks["database"] = "ok"
            # "ahead": migrated by a newer release during a rolling upgrade; migrations only add, so
            # this code still works against it (docs/deployment.md).
            checks["migrations"] = "behind: run `hookline migrate`" if schema == "behind" else schema
        except Exception as exc:  # unreachable, refused, timed out: not ready, whatever the cause
            checks["database"] = f"unreachable ({type(exc).__name__})"
        if self.worker is not None:
            if self.worker.ticking():
                checks["worker"] = "ticking"
            elif self.worker.last_tick is None:
                checks["worker"] = "starting"
            else:
                checks["worker"] = f"stalled (no turn for {time.monotonic() - self.worker.last_tick:.0f}s)"
        ready = (
            checks["database"] == "ok"
            and not checks.get("migrations", "").startswith("behind")
            and checks.get("worker", "ticking") == "ticking"
        )
        return ready, checks

    async def overview(self) -> overview_rows.Overview | None:
        """The store's overview, at most ``OVERVIEW_TTL`` old (one read at a time); None if unreachable."""
        async with self._overview_lock:
            if self._overview is None or time.monotonic() - self._overview_at > OVERVIEW_TTL:
                try:
                    async with asyncio.timeout(PROBE_TIMEOUT):
                        async with self.services.store.read() as conn:
                            self._overview = await overview_rows.read(conn, datetime.now(UTC))
                    self._overview_at = time.monotonic()
                except Exception:
                    return None
            return self._overview

    def sample_pool(self) -> None:
        """This process's connections in use and idle (``hookline_db_pool_connections``)."""
        pool = self.services.store.engine.pool
        checked_out = getattr(pool, "checkedout", None)  # a queue pool (PostgreSQL, file SQLite)
        if checked_out is not None:
            metrics.set_pool(checked_out(), pool.checkedin())  # type: ignore[attr-defined]

    async def sample_pool_forever(self, every: float = 5.0) -> None:
        while True:
            self.sample_pool()
            await asyncio.sleep(every)

    async def metrics_text(self) -> bytes:
        self.sample_pool()
        return metrics.render(gauges(await self.overview()))

    def authorize_metrics(self, authorization: str) -> None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "/metrics needs 'Authorization: Bearer <key>' (the admin key or HOOKLINE_METRICS_TOKEN)",
                {"WWW-Authenticate": "Bearer"},
            )
        token = token.strip()
        wanted = self.services.settings.metrics_token
        if wanted is not None and hmac.compare_digest(token.encode(), wanted.encode()):
            return
        if self.services.is_admin(hash_key(token)):
            return
        raise ApiError(401, "invalid metrics token", {"WWW-Authenticate": "Bearer"})


def gauges(overview: overview_rows.Overview | None) -> list[GaugeMetricFamily]:
    """The store's state as gauge families (``hookline_store_up`` 0 and nothing else if unreadable)."""
    up = GaugeMetricFamily("hookline_store_up", "1 if the store answered the last /metrics read, else 0.")
    up.add_metric([], 0.0 if overview is None else 1.0)
    if overview is None:
        return [up]
    pending = GaugeMetricFamily(
        "hookline_queue_pending",
        "Deliveries waiting (due or scheduled for a retry, held or not), by tenant.",
        labels=["tenant"],
    )
    due = GaugeMetricFamily(
        "hookline_queue_due", "Deliveries due now and free to go (not held), by tenant.", labels=["tenant"]
    )
    age = GaugeMetricFamily(
        "hookline_queue_oldest_due_age_seconds",
        "How long the oldest due delivery (not held) has been due, by tenant (0: none due).",
        labels=["tenant"],
    )
    now = overview.taken_at
    ranked = sorted(
        overview.queues, key=lambda q: (q.oldest_due_at or datetime.max.replace(tzinfo=UTC), -q.pending)
    )
    other = [0, 0, 0.0]
    for n, queue in enumerate(ranked):
        waited = (now - queue.oldest_due_at).total_seconds() if queue.oldest_due_at else 0.0
        if n < TENANT_SERIES:
            pending.add_metric([queue.tenant_id], queue.pending)
            due.add_metric([queue.tenant_id], queue.due)
            age.add_metric([queue.tenant_id], max(waited, 0.0))
        else:
            other = [other[0] + queue.pending, other[1] + queue.due, max(other[2], waited)]
    if len(ranked) > TENANT_SERIES:
        pending.add_metric(["other"], other[0])
        due.add_metric(["other"], other[1])
        age.add_metric(["other"], max(other[2], 0.0))
    held = GaugeMetricFamily(
        "hookline_deliveries_held",
        "Pending deliveries held back, by reason (disabled, unverified, offline, circuit_open, paused).",
        labels=["reason"],
    )
    for reason in HELD_REASONS:
        held.add_metric([reason], overview.held.get(reason, 0))
    endpoints = GaugeMetricFamily(
        "hookline_endpoints",
        "Endpoints by state: their breaker's (closed, open, half_open) if enabled, else disabled.",
        labels=["state"],
    )
    for state in BREAKER_STATES:
        endpoints.add_metric([state], overview.breakers.get(state, 0))
    endpoints.add_metric(["disabled"], overview.disabled_endpoints)
    return [up, pending, due, age, held, endpoints]


def router(operations: Operations) -> APIRouter:
    routes = APIRouter(tags=["operations"])

    # /healthz, /readyz and /metrics are the operator's, outside the API's versioned document (the
    # README and docs/deployment.md describe them); /health stays in it, as it always was.
    @routes.get("/healthz", include_in_schema=False, dependencies=[Depends(PROBE)])
    async def healthz() -> Response:
        return ok({"version": __version__}, "hookline is alive")

    @routes.get("/readyz", include_in_schema=False, dependencies=[Depends(PROBE)])
    async def readyz() -> Response:
        ready, checks = await operations.readiness()
        if ready:
            return ok(checks, "hookline is ready")
        failed = ", ".join(f"{k}: {v}" for k, v in checks.items() if v not in ("ok", "current", "ticking"))
        body = {"status": False, "code": 503, "message": "Service unavailable"}
        return EnvelopeResponse({**body, "error": f"not ready ({failed})", "data": checks}, status_code=503)

    @routes.get(
        "/health",
        summary="Liveness and database check (kept for existing monitors; prefer /readyz)",
        response_model=Envelope[Health],
        dependencies=[Depends(PROBE)],
    )
    async def health() -> Response:
        async with operations.services.store.read() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return ok({"version": __version__, "database": "ok"}, "hookline is healthy")

    @routes.get("/metrics", include_in_schema=False, dependencies=[Depends(METRICS)])
    async def prometheus(authorization: Annotated[str, Header()] = "") -> Response:
        operations.authorize_metrics(authorization)
        return Response(await operations.metrics_text(), media_type=metrics.CONTENT_TYPE)

    return routes


def worker_app(operations: Operations) -> FastAPI:
    """``hookline worker``'s own small server (HOOKLINE_WORKER_PORT): the same probes, nothing else."""
    from hookline.api.errors import install_error_handlers

    app = FastAPI(
        title="hookline worker", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    install_error_handlers(app)
    app.include_router(router(operations))
    return app
