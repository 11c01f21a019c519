"""The SDK's retries and timeouts against a real tiny HTTP server on loopback (a thread answering as
scripted): safe calls are retried on 429/502/503/504, broken connections and timeouts, with backoff
or Retry-After; calls that are not safe are sent once; an event post is safe once it has an id (the
SDK's own, by default) or an Idempotency-Key, and its retries repeat the same request."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import hookline

OK = {"status": True, "code": 200, "message": "ok", "data": {"version": "0.1.0", "database": "ok"}}
UNAVAILABLE = {"status": False, "code": 503, "message": "Service unavailable", "error": "database down"}


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: OK)  # JSON, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def unavailable(**headers: str) -> Answer:
    return Answer(503, UNAVAILABLE, headers)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class Script:
    """A loopback server answering each request with the next scripted answer (then 200 OK)."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.seen: list[Seen] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                script.seen.append(
                    Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                answer = script.answers.pop(0) if script.answers else Answer()
                time.sleep(answer.delay)
                payload = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (a timeout)
                    pass

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def then(self, *answers: Answer) -> Script:
        self.answers.extend(answers)
        return self


@pytest.fixture
def script() -> Iterator[Script]:
    server = Script()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def client(url: str, **options: Any) -> hookline.Client:
    return hookline.Client(url, "hk_test", **{"backoff_factor": 0.01, **options})


def aclient(url: str, **options: Any) -> hookline.AsyncClient:
    return hookline.AsyncClient(url, "hk_test", **{"backoff_factor": 0.01, **options})


WEBHOOK = {
    "status": True,
    "code": 200,
    "message": "ok",
    "data": {"id": 1, "url": "https://example.com/h", "events": ["*"], "future_field": {"x": 1}},
}


# --- safe calls are retried ------------------------------------------------------------------------------


def test_a_get_is_retried_after_503_and_502_then_succeeds(script: Script) -> None:
    script.then(unavailable(), Answer(502, b"<html>bad gateway</html>"), Answer(200, WEBHOOK))
    with client(script.url) as c:
        hook = c.webhooks.get(1, tenant_id="acme")
    assert len(script.seen) == 3 and {s.path for s in script.seen} == {"/v1/webhooks/1?tenant_id=acme"}
    assert all(s.headers["authorization"] == "Bearer hk_test" for s in script.seen)
    assert (hook.id, hook.url, hook.events) == (1, "https://example.com/h", ["*"])
    assert hook.raw["future_field"] == {"x": 1} and hook.health is None  # unknown kept, missing None


async def test_the_async_client_retries_the_same_way(script: Script) -> None:
    script.then(unavailable(), Answer(429, {"status": False, "code": 429, "message": "m", "error": "slow"}))
    async with aclient(script.url) as c:
        health = await c.health()
    assert health.database == "ok" and len(script.seen) == 3


def test_retries_stop_after_max_retries_with_the_last_error(script: Script) -> None:
    script.then(*[unavailable(**{"Retry-After": "0"})] * 5)
    with client(script.url, max_retries=2) as c, pytest.raises(hookline.ServiceUnavailable) as caught:
        c.health()
    assert len(script.seen) == 3
    assert (caught.value.status_code, caught.value.error, caught.value.retry_after) == (
        503,
        "database down",
        0,
    )
    with client(script.url, max_retries=0) as c, pytest.raises(hookline.ServiceUnavailable):
        c.health()
    assert len(script.seen) == 4


def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for(script: Script) -> None:
    script.then(unavailable(**{"Retry-After": "1"}))
    started = time.monotonic()
    with client(script.url) as c:
        c.health()
    assert time.monotonic() - started >= 0.9 and len(script.seen) == 2
    limited = {"status": False, "code": 429, "message": "Too many requests", "error": "slow down"}
    script.then(Answer(429, limited, {"Retry-After": "120"}))
    with client(script.url) as c, pytest.raises(hookline.RateLimited) as caught:
        c.health()
    assert len(script.seen) == 3 and caught.value.retry_after == 120 and caught.value.error == "slow down"


def test_500_is_not_retried(script: Script) -> None:
    script.then(
        Answer(500, {"status": False, "code": 500, "message": "Internal server error", "error": "boom"})
    )
    with client(script.url) as c, pytest.raises(hookline.ServerError) as caught:
        c.health()
    assert len(script.seen) == 1 and caught.value.status_code == 500


# --- unsafe calls are not ------------------------------------------------------------------------------


def test_a_non_idempotent_post_is_sent_once(script: Script) -> None:
    script.then(unavailable(), unavailable())
    with client(script.url) as c, pytest.raises(hookline.ServiceUnavailable):
        c.webhooks.create("https://example.com/h", tenant_id="acme")
    assert [(s.method, s.path) for s in script.seen] == [("POST", "/v1/webhooks")]
    assert script.seen[0].body == {"url": "https://example.com/h", "tenant_id": "acme"}
    with client(script.url) as c, pytest.raises(hookline.ServiceUnavailable):
        c.webhooks.test_all()  # GET /v1/webhooks/test sends test events: never repeated
    assert len(script.seen) == 2


def test_an_event_without_id_or_key_is_sent_once_when_ids_are_not_generated(script: Script) -> None:
    script.then(unavailable())
    with client(script.url, generate_event_ids=False) as c, pytest.raises(hookline.ServiceUnavailable):
        c.events.post("message.received", {"a": 1})
    assert len(script.seen) == 1 and "id" not in script.seen[0].body


ACCEPTED = {"status": True, "code": 202, "message": "ok", "data": {"id": "x", "event": "e", "deliveries": 1}}


@pytest.mark.parametrize(
    ("kwargs", "generate"),
    [({}, True), ({"id": "order-1"}, False), ({"idempotency_key": "k-1"}, False)],
    ids=["sdk-id", "own-id", "idempotency-key"],
)
def test_an_event_with_an_id_or_a_key_is_retried_as_the_same_request(
    script: Script, kwargs: dict[str, Any], generate: bool
) -> None:
    script.then(unavailable(), Answer(502, b"proxy"), Answer(202, ACCEPTED))
    with client(script.url, generate_event_ids=generate) as c:
        accepted = c.events.post("message.received", {"a": 1}, **kwargs)
    assert accepted.deliveries == 1 and len(script.seen) == 3
    bodies = [s.body for s in script.seen]
    assert bodies[0] == bodies[1] == bodies[2]
    keys = {s.headers.get("idempotency-key") for s in script.seen}
    if "idempotency_key" in kwargs:
        assert keys == {"k-1"} and "id" not in bodies[0]
    else:
        assert keys == {None}
        assert bodies[0]["id"] == kwargs.get("id", bodies[0]["id"])
        assert re.fullmatch(r"order-1|evt_[0-9A-HJKMNP-TV-Z]{26}", bodies[0]["id"])


async def test_a_batch_gets_ids_and_is_retried_as_the_same_request(script: Script) -> None:
    accepted = {"status": True, "code": 202, "message": "ok", "data": {"accepted": 2, "items": []}}
    script.then(unavailable(), Answer(202, accepted))
    events = [{"event": "a.b", "data": {}}, {"event": "a.b", "data": {}, "id": "mine"}]
    async with aclient(script.url) as c:
        assert (await c.events.post_batch(events)).accepted == 2
    first, second = (s.body["events"] for s in script.seen)
    assert first == second and first[1]["id"] == "mine" and first[0]["id"].startswith("evt_")
    assert "id" not in events[0]  # the caller's dicts are left alone
    script.then(unavailable())
    async with aclient(script.url, generate_event_ids=False) as c:
        with pytest.raises(hookline.ServiceUnavailable):
            await c.events.post_batch([{"event": "a.b", "data": {}}])
    assert len(script.seen) == 3


# --- no answer -----------------------------------------------------------------------------------------


def test_a_timeout_is_retried_for_safe_calls_then_raised(script: Script) -> None:
    script.then(*[Answer(delay=1.0)] * 3)
    with client(script.url, timeout=0.2, max_retries=1) as c, pytest.raises(hookline.HooklineTimeout):
        c.health()
    assert len(script.seen) == 2
    script.answers.clear()
    script.then(Answer(delay=1.0))
    with client(script.url, timeout=0.2) as c, pytest.raises(hookline.HooklineTimeout) as caught:
        c.tenants.create("Acme")
    assert len(script.seen) == 3 and caught.value.status_code is None


def test_a_refused_connection_is_retried_then_raised() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    waits: list[float] = []
    with client(url, max_retries=3) as c:
        c._transport.sleep = waits.append
        with pytest.raises(hookline.HooklineConnectionError) as caught:
            c.tenants.create("Acme")  # never sent: safe to retry whatever the call
    assert len(waits) == 3 and all(0 < w <= 0.01 * 2**n for n, w in enumerate(waits))
    assert caught.value.status_code is None and "ConnectError" in caught.value.error


def test_an_answer_that_is_not_the_envelope_is_an_error(script: Script) -> None:
    script.then(Answer(200, b"<html>hello</html>"), Answer(404, b"not here"))
    with client(script.url) as c:
        with pytest.raises(hookline.InvalidResponse):
            c.health()
        with pytest.raises(hookline.NotFound) as caught:
            c.health()
    assert caught.value.error == "unexpected answer (HTTP 404): not here"
