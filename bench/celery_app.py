"""The usual Python alternative: Celery with a Redis broker, one task per delivery.

Configured the way Celery's documentation recommends for many short, I/O-bound tasks that must not be
lost: late acknowledgement (``acks_late`` + ``task_reject_on_worker_lost``), results ignored, a large
prefetch multiplier ("Optimizing": short tasks want 64 or 128), a visibility timeout far above any task's
run time, JSON serialisation. The task retries with ``autoretry_for`` + ``retry_backoff`` +
``retry_jitter``, sends with a module-level ``requests.Session`` (a pool sized to the concurrency), signs
with hookline's own ``signature_headers`` and makes one durable write per attempt to PostgreSQL (an
autocommit INSERT, one connection per worker thread or process).

Settings come from the environment: ``BENCH_CELERY_BROKER``, ``BENCH_CELERY_PG``,
``BENCH_CELERY_PREFETCH`` (64), ``BENCH_CELERY_POOL_SIZE`` (connections per host, 64).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg
import requests
from celery import Celery  # type: ignore[import-untyped]
from requests.adapters import HTTPAdapter

from hookline.signing import signature_headers

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/15")
PG_DSN = os.environ.get("BENCH_CELERY_PG", "")
QUEUE = "bench-deliveries"

app = Celery("bench", broker=BROKER)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "64")),
    worker_disable_rate_limits=True,
    broker_transport_options={"visibility_timeout": 3600},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

session = requests.Session()
_pool = int(os.environ.get("BENCH_CELERY_POOL_SIZE", "64"))
session.mount("http://", HTTPAdapter(pool_connections=16, pool_maxsize=_pool))
session.mount("https://", HTTPAdapter(pool_connections=16, pool_maxsize=_pool))

_local = threading.local()

SCHEMA = """
CREATE TABLE IF NOT EXISTS celery_attempts (
    id bigserial PRIMARY KEY,
    delivery_id text NOT NULL,
    attempt integer NOT NULL,
    status_code integer,
    error text,
    duration_ms integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def _db() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(PG_DSN, autocommit=True)
        _local.conn = conn
    return conn


def record(delivery_id: str, attempt: int, status: int | None, error: str | None, duration_ms: int) -> None:
    """The durable status write of one attempt (autocommit: committed before the task returns)."""
    _db().execute(
        "INSERT INTO celery_attempts (delivery_id, attempt, status_code, error, duration_ms)"
        " VALUES (%s, %s, %s, %s, %s)",
        (delivery_id, attempt, status, error, duration_ms),
    )


class DeliveryFailed(Exception):
    """A non-2xx answer: retried like a connection error."""


@app.task(  # type: ignore[untyped-decorator]
    bind=True,
    autoretry_for=(requests.RequestException, DeliveryFailed),
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def deliver(self: Any, delivery_id: str, url: str, event_id: str, body: str, secret: str) -> None:
    payload = body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": "celery-bench/1"}
    headers.update(
        signature_headers(
            event_id=event_id,
            event_type="message.sent",
            timestamp=int(time.time()),
            body=payload,
            secrets=[secret],
        )
    )
    attempt = self.request.retries + 1
    clock = time.perf_counter()
    try:
        response = session.post(url, data=payload, headers=headers, timeout=(5, 15), allow_redirects=False)
    except requests.RequestException as exc:
        record(delivery_id, attempt, None, str(exc), int((time.perf_counter() - clock) * 1000))
        raise
    record(delivery_id, attempt, response.status_code, None, int((time.perf_counter() - clock) * 1000))
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}")
