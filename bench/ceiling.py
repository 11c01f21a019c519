"""The ceiling: a bare asyncio process POSTing pre-built, pre-signed payloads to the sink. No database, no
queue, no retry bookkeeping: what one Python process with the same HTTP client can push to the same sink.

    python -m bench.ceiling --sink-port P --deliveries N --endpoints K --client aiohttp|pyreqwest --out F

Payloads and their signature headers (``hookline.signing.signature_headers``, the same two schemes hookline
sends) are built before the clock starts. One session, ``--concurrency`` requests in flight. Before the
clock, ``--warmup`` requests to the sink's ``/warm`` path open the connections (hookline's deployments
are warmed the same way, by events delivered before the measured load). The result file holds
``{"start", "end", "sent", "errors", "cpu"}``: unix times around the sending, and the process's CPU
seconds (user + system) spent in that window alone, the sender's own cost per request.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import uvloop

from hookline.signing import generate_secret, signature_headers

Send = Callable[[str, bytes, dict[str, str]], Awaitable[int]]
Job = tuple[str, bytes, dict[str, str]]


def build_jobs(sink_port: int, deliveries: int, endpoints: int, data: dict[str, object]) -> list[Job]:
    secret = generate_secret()
    stamp = int(time.time())
    jobs = []
    for i in range(deliveries):
        event_id = f"evt_ceiling_{i:08d}"
        body = orjson.dumps(
            {"id": event_id, "event": "message.sent", "timestamp": "2026-01-01T00:00:00.000Z", "data": data}
        )
        headers = {"Content-Type": "application/json", "User-Agent": "hookline-bench-ceiling/1"}
        headers.update(
            signature_headers(
                event_id=event_id, event_type="message.sent", timestamp=stamp, body=body, secrets=[secret]
            )
        )
        jobs.append((f"http://127.0.0.1:{sink_port}/ok/{i % endpoints}", body, headers))
    return jobs


Result = tuple[float, float, int, int, float]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(jobs: list[Job], send: Send, concurrency: int, warmup: int) -> Result:
    if warmup:
        url, body, headers = jobs[0]
        warm = url[: url.index("/ok/")] + "/warm/0"
        await asyncio.gather(*(send(warm, body, headers) for _ in range(warmup)))
    position = 0
    errors = 0

    async def lane() -> None:
        nonlocal position, errors
        while position < len(jobs):
            url, body, headers = jobs[position]
            position += 1
            try:
                status = await send(url, body, headers)
            except Exception:
                errors += 1
                continue
            if status != 200:
                errors += 1

    cpu = _cpu()
    start = time.time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return start, time.time(), len(jobs) - errors, errors, _cpu() - cpu


async def with_aiohttp(jobs: list[Job], concurrency: int, warmup: int) -> Result:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:

        async def send(url: str, body: bytes, headers: dict[str, str]) -> int:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.read()
                return response.status

        return await run(jobs, send, concurrency, warmup)


async def with_pyreqwest(jobs: list[Job], concurrency: int, warmup: int) -> Result:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().max_connections(concurrency).follow_redirects(False).build()
    async with client:

        async def send(url: str, body: bytes, headers: dict[str, str]) -> int:
            response = await client.post(url).headers(headers).body_bytes(body).build().send()
            await response.bytes()
            return response.status

        return await run(jobs, send, concurrency, warmup)


def main(args: argparse.Namespace) -> None:
    jobs = build_jobs(args.sink_port, args.deliveries, args.endpoints, orjson.loads(args.data))
    runner = with_aiohttp if args.client == "aiohttp" else with_pyreqwest
    start, end, sent, errors, cpu = uvloop.run(runner(jobs, args.concurrency, args.warmup))
    result = {"start": start, "end": end, "sent": sent, "errors": errors, "cpu": cpu}
    Path(args.out).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--sink-port", type=int, required=True)
    parser.add_argument("--deliveries", type=int, required=True)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--client", choices=("aiohttp", "pyreqwest"), default="aiohttp")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=0, help="requests to /warm before the clock")
    parser.add_argument("--data", default="{}")
    parser.add_argument("--out", required=True)
    main(parser.parse_args())
