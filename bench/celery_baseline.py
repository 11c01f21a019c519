"""Running the Celery baseline: a Redis database, a PostgreSQL table, a worker, a producer process.

    python -m bench.celery_baseline produce --events N --endpoints K --sink-port P --name NAME --out F

The producer publishes one ``deliver`` task per (event, endpoint), the way an application would call
``deliver.delay(...)`` after accepting an event; the figure is first publish to last receipt at the sink,
like hookline's throughput. ``CeleryBaseline`` (used by the scenarios) owns a free Redis database number
(flushed at the end) and a throwaway PostgreSQL database for the attempt table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.api import Sink, wait_delivered
from bench.pg import Databases, query
from bench.procs import Proc, Processes, wait_until

REDIS_URL = "redis://127.0.0.1:6379"


def missing_dependency() -> str | None:
    """None when Celery, redis, requests and psycopg import and Redis answers; else why not."""
    try:
        import celery  # type: ignore[import-untyped]  # noqa: F401
        import psycopg  # noqa: F401
        import redis
        import requests  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[bench]')"
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} does not answer: {exc}"
    return None


def free_redis_db() -> int:
    """The first empty database number (1-15) on the local Redis server."""
    import redis

    for number in range(1, 16):
        if redis.Redis.from_url(f"{REDIS_URL}/{number}").dbsize() == 0:
            return number
    raise RuntimeError("no empty Redis database among 1-15")


class CeleryBaseline:
    def __init__(self, procs: Processes, dbs: Databases, sink: Sink, data: dict[str, Any]) -> None:
        self.procs = procs
        self.data = orjson.dumps(data).decode()
        self.dbs = dbs
        self.sink = sink
        self.redis_db = 0
        self.pg_url = ""

    def __enter__(self) -> CeleryBaseline:
        from bench.celery_app import SCHEMA

        self.redis_db = free_redis_db()
        self.pg_url = self.dbs.create("celery")
        query(self.pg_url, SCHEMA)
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        if self.pg_url:
            self.dbs.drop(self.pg_url)

    def flush(self) -> None:
        import redis

        if self.redis_db:
            redis.Redis.from_url(f"{REDIS_URL}/{self.redis_db}").flushdb()

    def env(self, concurrency: int) -> dict[str, str]:
        return {
            "BENCH_CELERY_BROKER": f"{REDIS_URL}/{self.redis_db}",
            "BENCH_CELERY_PG": self.pg_url,
            "BENCH_CELERY_POOL_SIZE": str(max(concurrency, 10)),
        }

    def produce(self, name: str, events: int, endpoints: int, concurrency: int) -> Proc:
        out = self.procs.workdir / f"{name}.json"
        return self.procs.python(
            name,
            "bench.celery_baseline",
            "produce",
            *("--events", str(events), "--endpoints", str(endpoints), "--sink-port", str(self.sink.port)),
            *("--name", name, "--out", str(out), "--data", self.data),
            env=self.env(concurrency),
        )

    def run(self, pool: str, concurrency: int, events: int, endpoints: int) -> dict[str, Any]:
        """Start a worker with ``pool``, warm it up, push ``events x endpoints`` deliveries through it."""
        self.flush()
        query(self.pg_url, "TRUNCATE celery_attempts")
        worker = self.procs.python(
            f"celery-{pool}",
            "celery",
            *("-A", "bench.celery_app", "worker", "--pool", pool, "--concurrency", str(concurrency)),
            *("--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"),
            env=self.env(concurrency),
        )
        try:
            base = self.sink.stats()["count"]
            warm = self.produce(f"celery-{pool}-warm", 50, 1, concurrency)
            wait_until(lambda: self.sink.stats()["count"] >= base + 50, 90, "Celery warm-up", [worker])
            self.procs.stop(warm)
            self.sink.reset()
            worker.reset_peak_rss()
            cpu_before = worker.cpu_seconds()
            producer = self.produce(f"celery-{pool}-run", events, endpoints, concurrency)
            total = events * endpoints
            stats = wait_delivered(self.sink, total, [worker])
            cpu = worker.cpu_seconds() - cpu_before
            producer.finish(120)
            self.procs.forget(producer)
            started = orjson.loads((self.procs.workdir / f"celery-{pool}-run.json").read_bytes())["start"]
            attempts = query(self.pg_url, "SELECT count(*) FROM celery_attempts")[0][0]
            return {
                "rate": stats["count"] / (stats["last"] - started),
                "delivered": stats["count"],
                "cpu_per_1k": cpu / max(stats["count"], 1) * 1000,
                "peak_rss_mb": worker.peak_rss_mb(),
                "attempts_recorded": attempts,
            }
        finally:
            self.procs.stop(worker)


def produce(args: argparse.Namespace) -> None:
    from bench.celery_app import deliver
    from hookline.signing import generate_secret

    secret = generate_secret()
    data = orjson.loads(args.data)
    jobs = []
    for i in range(args.events):
        event_id = f"evt_{args.name}_{i:08d}"
        body = orjson.dumps(
            {"id": event_id, "event": "message.sent", "timestamp": "2026-01-01T00:00:00.000Z", "data": data}
        ).decode()
        for k in range(args.endpoints):
            url = f"http://127.0.0.1:{args.sink_port}/ok/{args.name}-{k}"
            jobs.append((f"{event_id}:{k}", url, event_id, body, secret))
    start = time.time()
    for job in jobs:
        deliver.apply_async(args=job)
    Path(args.out).write_bytes(orjson.dumps({"start": start, "end": time.time()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.celery_baseline")
    commands = parser.add_subparsers(dest="command", required=True)
    producer = commands.add_parser("produce")
    producer.add_argument("--events", type=int, required=True)
    producer.add_argument("--endpoints", type=int, default=1)
    producer.add_argument("--sink-port", type=int, required=True)
    producer.add_argument("--name", required=True)
    producer.add_argument("--out", required=True)
    producer.add_argument("--data", default="{}", help="the event's data, as JSON")
    arguments = parser.parse_args()
    if arguments.command == "produce":
        produce(arguments)
    else:  # pragma: no cover
        sys.exit(2)
