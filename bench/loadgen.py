"""Load generator, in its own process: posts events to hookline's API and records when each 202 came back.

    python -m bench.loadgen --api URL --key KEY --tenant T --out result.json count --events N --batch B
    python -m bench.loadgen ... rate --rate R --duration D --batch B

``count`` posts N events as fast as it can with ``--concurrency`` requests in flight (closed loop).
``rate`` posts at a steady R events/s for D seconds (open loop: a request is due at its time whether or not
earlier ones have answered; with ``--concurrency`` in flight already it waits, and the delay is reported as
``max_late``; requests not started by 1.25 x duration + 5 s are skipped and counted in ``skipped``, so an
API that cannot keep up ends the run in bounded time). ``--batch 1`` uses ``POST /v1/events``, more uses
``POST /v1/events/batch``. Event i carries channel ``{prefix}{i % channels}`` when ``--channels`` is
given, so each event reaches one endpoint.
The result file: ``{"first_post", "last_202", "accepted", "errors", "error_sample", "max_late", "skipped",
"times": {event id: unix time its 202 arrived}}`` (times only with ``--record``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

EVENT_TYPE = "message.sent"


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data: dict[str, Any] = orjson.loads(args.data)
        self.next_index = 0
        self.first_post = 0.0
        self.last_202 = 0.0
        self.accepted = 0
        self.errors = 0
        self.error_sample = ""
        self.max_late = 0.0
        self.skipped = 0
        self.times: dict[str, float] = {}
        self.session: aiohttp.ClientSession | None = None
        self.headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}

    def _event(self) -> dict[str, Any]:
        event: dict[str, Any] = {"event": EVENT_TYPE, "data": self.data}
        if self.args.channels:
            event["channels"] = [f"{self.args.channel_prefix}{self.next_index % self.args.channels}"]
        self.next_index += 1
        return event

    def _request(self, size: int) -> tuple[str, bytes]:
        if self.args.batch == 1:
            body = {**self._event(), "tenant_id": self.args.tenant}
            return f"{self.args.api}/v1/events", orjson.dumps(body)
        events = [self._event() for _ in range(size)]
        return f"{self.args.api}/v1/events/batch", orjson.dumps(
            {"events": events, "tenant_id": self.args.tenant}
        )

    async def post(self, size: int) -> None:
        assert self.session is not None
        url, body = self._request(size)
        if not self.first_post:
            self.first_post = time.time()
        try:
            async with self.session.post(url, data=body, headers=self.headers) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._error(f"{type(exc).__name__}: {exc}", size)
            return
        now = time.time()
        if status != 202:
            self._error(f"{status}: {raw[:300]!r}", size)
            return
        self.last_202 = now
        data = orjson.loads(raw)["data"]
        ids = [data["id"]] if self.args.batch == 1 else [item["id"] for item in data["items"]]
        self.accepted += len(ids)
        if self.args.record:
            for event_id in ids:
                self.times[event_id] = now

    def _error(self, text: str, size: int) -> None:
        self.errors += size
        if not self.error_sample:
            self.error_sample = text

    async def run_count(self) -> None:
        total, batch = self.args.events, self.args.batch
        sizes = [min(batch, total - start) for start in range(0, total, batch)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for size in sizes:
            queue.put_nowait(size)

        async def client() -> None:
            while not queue.empty():
                await self.post(queue.get_nowait())

        await asyncio.gather(*(client() for _ in range(self.args.concurrency)))

    async def run_rate(self) -> None:
        rate, batch = self.args.rate, self.args.batch
        interval = batch / rate
        count = max(1, round(self.args.duration * rate / batch))
        slots = asyncio.Semaphore(self.args.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            try:
                await self.post(batch)
            finally:
                slots.release()

        start = time.monotonic() + 0.05
        deadline = start + self.args.duration * 1.25 + 5
        for i in range(count):
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            if time.monotonic() > deadline:
                slots.release()
                self.skipped = (count - i) * batch
                break
            self.max_late = max(self.max_late, time.monotonic() - due)
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*list(tasks))

    async def main(self) -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=self.args.concurrency, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=self.args.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            if self.args.mode == "count":
                await self.run_count()
            else:
                await self.run_rate()
        return {
            "first_post": self.first_post,
            "last_202": self.last_202,
            "accepted": self.accepted,
            "errors": self.errors,
            "error_sample": self.error_sample,
            "max_late": self.max_late,
            "skipped": self.skipped,
            "times": self.times,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--api", required=True, help="hookline's base URL")
    parser.add_argument("--key", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--data", required=True, help="the event's data, as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--channels", type=int, default=0)
    parser.add_argument("--channel-prefix", default="c")
    parser.add_argument("--record", action="store_true", help="record every event's 202 time")
    parser.add_argument("--timeout", type=float, default=120.0)
    modes = parser.add_subparsers(dest="mode", required=True)
    count = modes.add_parser("count")
    count.add_argument("--events", type=int, required=True)
    rate = modes.add_parser("rate")
    rate.add_argument("--rate", type=float, required=True, help="events per second")
    rate.add_argument("--duration", type=float, required=True, help="seconds")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    outcome = uvloop.run(Generator(arguments).main())
    Path(arguments.out).write_bytes(orjson.dumps(outcome))
