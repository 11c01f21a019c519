"""A fast webhook receiver for benchmarks, in its own process (uvloop, keep-alive, a hand-rolled parse).

    python -m bench.sink PORT

``POST /ok/...`` answers 200 and records (webhook-id, arrival time); ``/fail/...`` answers 500;
``/hang/...`` never answers (the sender's deadline ends it); ``/warm/...`` answers 200 and records nothing
(a sender's warm-up before its clock starts). Control: ``GET /_stats`` ->
``{"count", "unique", "first", "last", "fail", "hang"}`` (``count``: requests to /ok, ``unique``: distinct
webhook-ids, ``first``/``last``: unix times of the first and latest /ok arrival, ``fail``/``hang``: requests
to those paths); ``GET /_times`` -> ``{"id": first arrival unix time, ...}``; ``POST /_reset``.

Every request to /ok, /fail and /hang is also recorded by its path, with its arrival time, for
per-endpoint figures: ``GET /_paths`` -> ``{path: requests}``; ``GET /_counts?from=T0&to=T1`` ->
``{path: requests that arrived in [T0, T1)}``; ``GET /_arrivals?path=P`` -> ``[arrival unix time, ...]``.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import sys
import time
from array import array
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import uvloop

RECEIVED: dict[bytes, float] = {}
COUNT = 0
FIRST = 0.0
LAST = 0.0
OTHER = {"fail": 0, "hang": 0}
ARRIVALS: dict[bytes, array[float]] = {}  # path -> arrival times, in order

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"


def _arrived(path: bytes, now: float) -> None:
    times = ARRIVALS.get(path)
    if times is None:
        times = ARRIVALS[path] = array("d")
    times.append(now)


def _query(url: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url.decode()).query).items()}


def _counts(query: dict[str, str]) -> dict[str, int]:
    start, end = float(query.get("from", "0")), float(query.get("to", "inf"))
    found = {}
    for path, times in ARRIVALS.items():
        n = bisect.bisect_left(times, end) - bisect.bisect_left(times, start)
        if n:
            found[path.decode()] = n
    return found


def _json(payload: Any) -> bytes:
    body = orjson.dumps(payload)
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


HEAD_END = b"\r\n\r\n"
# The two header values the sink needs, found by one scan of the header block each (no callback per
# header: a sink as cheap as a fast real receiver, so that it takes little of the machine from the sender).
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
WEBHOOK_ID = re.compile(rb"\r\nwebhook-id:[ \t]*([^\r]*)", re.IGNORECASE)


class SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive requests with a Content-Length body (what every sender here sends), parsed by
    hand: the request line, two header values, and the body skipped by its length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.skip = 0  # body bytes of the current request still to come
        self.pending: tuple[bytes, bytes] | None = None  # (path, webhook-id) waiting for its body

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            if self.pending is not None:
                if len(buffer) < self.skip:
                    self.skip -= len(buffer)
                    buffer = b""
                    break
                buffer = buffer[self.skip :]
                self.skip = 0
                path, webhook_id = self.pending
                self.pending = None
                self.answer(path, webhook_id)
            end = buffer.find(HEAD_END)
            if end < 0:
                break
            head = buffer[:end]
            buffer = buffer[end + 4 :]
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ")
            if len(parts) != 3:
                assert self.transport is not None
                self.transport.close()
                return
            length = CONTENT_LENGTH.search(head)
            found = WEBHOOK_ID.search(head)
            self.pending = (parts[1], found.group(1) if found else b"")
            self.skip = int(length.group(1)) if length else 0
        self.buffer = buffer

    def answer(self, url: bytes, webhook_id: bytes) -> None:
        global COUNT, FIRST, LAST
        assert self.transport is not None
        if url.startswith(b"/ok"):
            now = time.time()
            COUNT += 1
            LAST = now
            if COUNT == 1:
                FIRST = now
            RECEIVED.setdefault(webhook_id, now)
            _arrived(url, now)
            self.transport.write(OK)
        elif url.startswith(b"/warm"):  # a sender's warm-up: answered, not counted
            self.transport.write(OK)
        elif url.startswith(b"/fail"):
            OTHER["fail"] += 1
            _arrived(url, time.time())
            self.transport.write(FAIL)
        elif url.startswith(b"/hang"):
            OTHER["hang"] += 1
            _arrived(url, time.time())
        elif url.startswith(b"/_stats"):
            stats = {"count": COUNT, "unique": len(RECEIVED), "first": FIRST, "last": LAST, **OTHER}
            self.transport.write(_json(stats))
        elif url.startswith(b"/_times"):
            self.transport.write(_json({k.decode(): v for k, v in RECEIVED.items()}))
        elif url.startswith(b"/_paths"):
            self.transport.write(_json({k.decode(): len(v) for k, v in ARRIVALS.items()}))
        elif url.startswith(b"/_counts"):
            self.transport.write(_json(_counts(_query(url))))
        elif url.startswith(b"/_arrivals"):
            times = ARRIVALS.get(_query(url).get("path", "").encode(), array("d"))
            self.transport.write(_json(times.tolist()))
        elif url.startswith(b"/_reset"):
            COUNT = 0
            FIRST = LAST = 0.0
            OTHER.update(fail=0, hang=0)
            RECEIVED.clear()
            ARRIVALS.clear()
            self.transport.write(_json({"reset": True}))
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port, backlog=4096)
    print(f"sink listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
