"""Driving hookline's HTTP API for set-up (tenant, endpoints, catalog) and the sink's control paths.

Plain blocking ``urllib``: set-up is a handful of calls; the load itself comes from ``bench.loadgen``.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import orjson

from bench.procs import Proc

ADMIN_KEY = "hk_admin_bench_0123456789abcdef"
EVENT_TYPE = "message.sent"


class ApiError(RuntimeError):
    pass


def call(method: str, url: str, body: Any = None, key: str | None = None, timeout: float = 30.0) -> Any:
    """One JSON request; returns the decoded answer (hookline's envelope ``data`` is left to the caller)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise ApiError(f"{method} {url} -> {exc.code}: {exc.read()[:500]!r}") from None
    return orjson.loads(raw) if raw else None


@dataclass(frozen=True)
class Endpoint:
    id: int
    url: str
    secret: str
    channel: str | None


class HooklineApi:
    def __init__(self, port: int, key: str = ADMIN_KEY) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.key = key

    def healthy(self) -> bool:
        try:
            answer = call("GET", f"{self.base}/health", timeout=2)
        except (OSError, ApiError):
            return False
        return bool(answer and answer.get("status"))

    def create_tenant(self, tenant_id: str) -> None:
        call("POST", f"{self.base}/v1/tenants", {"name": tenant_id, "id": tenant_id}, self.key)

    def breaker(self, tenant_id: str, endpoint_id: int) -> dict[str, Any]:
        """The endpoint's circuit breaker as the API shows it (state, opened_at, next_probe_at, ...)."""
        url = f"{self.base}/v1/webhooks/{endpoint_id}/circuit-breaker?tenant_id={tenant_id}"
        view: dict[str, Any] = call("GET", url, key=self.key, timeout=10)["data"]
        return view

    def create_endpoint(
        self, tenant_id: str, url: str, channel: str | None = None, **options: Any
    ) -> Endpoint:
        body: dict[str, Any] = {"url": url, "tenant_id": tenant_id, "events": [EVENT_TYPE], **options}
        if channel is not None:
            body["channels"] = [channel]
        data = call("POST", f"{self.base}/v1/webhooks", body, self.key)["data"]
        return Endpoint(int(data["id"]), data["url"], data["secret"], channel)

    def example(self, event_type: str = EVENT_TYPE) -> dict[str, Any]:
        data = call("GET", f"{self.base}/v1/event-types/{event_type}", key=self.key)["data"]
        example: dict[str, Any] = data["example"]
        return example

    def post_event(self, tenant_id: str, data: dict[str, Any], channel: str | None = None) -> str:
        body: dict[str, Any] = {"event": EVENT_TYPE, "data": data, "tenant_id": tenant_id}
        if channel is not None:
            body["channels"] = [channel]
        event_id: str = call("POST", f"{self.base}/v1/events", body, self.key)["data"]["id"]
        return event_id


class Sink:
    """The control paths of ``bench.sink``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def url(self, kind: str, name: str) -> str:
        return f"{self.base}{self.path(kind, name)}"

    @staticmethod
    def path(kind: str, name: str) -> str:
        return f"/{kind}/{name}"

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = call("GET", f"{self.base}/_stats")
        return stats

    def times(self) -> dict[str, float]:
        times: dict[str, float] = call("GET", f"{self.base}/_times", timeout=120)
        return times

    def paths(self) -> dict[str, int]:
        """Requests per path (/ok, /fail, /hang) since the last reset."""
        paths: dict[str, int] = call("GET", f"{self.base}/_paths")
        return paths

    def counts(self, start: float, end: float) -> dict[str, int]:
        """Requests per path that arrived in [start, end) (unix times)."""
        counts: dict[str, int] = call("GET", f"{self.base}/_counts?from={start!r}&to={end!r}")
        return counts

    def arrivals(self, path: str) -> list[float]:
        """Arrival times (unix) of every request to ``path``, in order."""
        query = urllib.parse.urlencode({"path": path})
        arrivals: list[float] = call("GET", f"{self.base}/_arrivals?{query}", timeout=120)
        return arrivals

    def reset(self) -> None:
        call("POST", f"{self.base}/_reset")


def wait_delivered(
    sink: Sink, expected: int, procs: list[Proc], stall: float = 60.0, limit: float = 900.0
) -> dict[str, Any]:
    """Poll the sink until ``expected`` /ok requests arrived; give up when nothing arrives for ``stall``
    seconds or after ``limit`` seconds in all (then the caller reports what did arrive)."""
    started = last_change = time.monotonic()
    last_count = -1
    while True:
        stats = sink.stats()
        if stats["count"] >= expected:
            return stats
        if time.monotonic() - started > limit:
            stats["stalled"] = True
            return stats
        if stats["count"] != last_count:
            last_count, last_change = stats["count"], time.monotonic()
        elif time.monotonic() - last_change > stall:
            stats["stalled"] = True
            return stats
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        time.sleep(0.05)
