"""The chaos receiver: a standalone aiohttp server on loopback, run as its own process by the chaos tests
(so that thousands of requests a second do not compete with the test for one interpreter lock).

    python tests/chaos/receiver.py --rules '[{"prefix": "/flap/", "fail": 0.5, "hang": 0.1}]' --seed 7

It prints ``PORT <n>`` on its first line, then answers every request to any path:

* a rule (the first whose ``prefix`` starts the path) decides how: ``delay`` (seconds before answering),
  ``fail`` / ``hang`` (probabilities of a 500 / of holding the request ``hang_seconds`` before a 500),
  ``endless`` (a 200 whose body never ends) or ``trickle`` (a 200 whose body is one byte every
  ``trickle`` seconds); paths that match no rule answer 200 at once;
* every request is logged when it arrives: ``[webhook-id, path, unix time, outcome, latency, busy]`` where
  outcome is ``ok`` / ``fail`` / ``hang`` / ``endless`` / ``trickle``, latency is ``now - data.sent_at``
  when the event carries one, and busy is how many requests of *other* path groups (the first path
  segment) were in flight at that moment;
* the highest number of requests in flight at once is kept per path and per group.

Control: ``GET /_control/log?since=N`` returns the log entries from N on, the in-flight counts per group
and the per-path maxima; ``POST /_control/rules`` replaces the rules.

It stops by itself when its parent process goes away, and after ``--max-seconds`` in any case; endless and
trickling bodies end when the client goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from typing import Any

import orjson
from aiohttp import web


class State:
    def __init__(self, rules: list[dict[str, Any]], seed: int) -> None:
        self.rules = rules
        self.rng = random.Random(seed)
        self.log: list[list[Any]] = []
        self.inflight: Counter[str] = Counter()
        self.max_inflight: dict[str, int] = {}
        self.groups: Counter[str] = Counter()
        self.max_groups: dict[str, int] = {}
        self.total_inflight = 0

    def rule(self, path: str) -> dict[str, Any]:
        for rule in self.rules:
            if path.startswith(rule.get("prefix", "/")):
                return rule
        return {}


def group_of(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def latency_of(body: bytes, now: float) -> float | None:
    if b'"sent_at"' not in body:
        return None
    try:
        sent_at = orjson.loads(body)["data"]["sent_at"]
    except (ValueError, KeyError, TypeError):
        return None
    return round(now - float(sent_at), 4)


async def handle(request: web.Request) -> web.StreamResponse:
    state: State = request.app["state"]
    path = request.path
    group = group_of(path)
    state.inflight[path] += 1
    state.groups[group] += 1
    state.max_groups[group] = max(state.max_groups.get(group, 0), state.groups[group])
    state.total_inflight += 1
    if state.inflight[path] > state.max_inflight.get(path, 0):
        state.max_inflight[path] = state.inflight[path]
    try:
        body = await request.read()
        now = time.time()
        rule = state.rule(path)
        roll = state.rng.random()
        if rule.get("endless"):
            outcome = "endless"
        elif rule.get("trickle"):
            outcome = "trickle"
        elif roll < rule.get("hang", 0.0):
            outcome = "hang"
        elif roll < rule.get("hang", 0.0) + rule.get("fail", 0.0):
            outcome = "fail"
        else:
            outcome = "ok"
        busy = state.total_inflight - state.groups[group]
        state.log.append(
            [request.headers.get("webhook-id", ""), path, now, outcome, latency_of(body, now), busy]
        )
        if outcome == "hang":
            await asyncio.sleep(float(rule.get("hang_seconds", 5.0)))
            return web.Response(status=500, text="hung")
        if outcome in ("endless", "trickle"):
            return await stream(request, rule, outcome)
        if rule.get("delay"):
            await asyncio.sleep(float(rule["delay"]))
        if outcome == "fail":
            return web.Response(status=500, text="flapping")
        return web.Response(text="ok")
    finally:
        state.inflight[path] -= 1
        state.groups[group] -= 1
        state.total_inflight -= 1


async def stream(request: web.Request, rule: dict[str, Any], outcome: str) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.content_type = "text/plain"
    await response.prepare(request)
    limit = time.monotonic() + float(rule.get("max_seconds", 300.0))
    chunk = b"x" * 65536
    with contextlib.suppress(ConnectionError, RuntimeError, asyncio.CancelledError):
        while time.monotonic() < limit:
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            if outcome == "trickle":
                await response.write(b".")
                await asyncio.sleep(float(rule["trickle"]))
            else:
                await response.write(chunk)
    return response


async def control_log(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    since = int(request.query.get("since", "0"))
    entries = state.log[since:]
    body = {
        "next": since + len(entries),
        "entries": entries,
        "inflight": {g: n for g, n in state.groups.items() if n},
        "max_inflight": state.max_inflight,
        "max_group_inflight": state.max_groups,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def control_rules(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    state.rules = list(await request.json())
    return web.json_response({"rules": state.rules})


async def watchdog(parent: int, max_seconds: float) -> None:
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and os.getppid() == parent:
        await asyncio.sleep(1.0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rules", default="[]")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=3 * 3600.0)
    args = parser.parse_args()
    parent = os.getppid()

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app["state"] = State(json.loads(args.rules), args.seed)
    app.router.add_get("/_control/log", control_log)
    app.router.add_post("/_control/rules", control_rules)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    try:
        await watchdog(parent, args.max_seconds)
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
    sys.exit(0)
