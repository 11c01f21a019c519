"""Relay sessions end to end (the server side of ``hookline listen``): real hookline processes (SQLite:
``serve``; PostgreSQL: an ``api`` and a separate ``worker`` process, so requests really pass between
processes through the store), and the SDK's ``Listener`` over a real WebSocket.

Each delivery arrives signed as an HTTP receiver would get it, the listener's answer is the attempt's
outcome, deliveries wait while no listener is connected and go out when the session is resumed, an
API restart under a connected listener loses nothing, and the verification handshake passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

import hookline
from hookline.sdk.listener import Listener, RelayedDelivery, SessionTakenOver
from hookline_receiver import verify
from tests.chaos.procs import ADMIN_KEY, Processes, base_env, free_port, wait_healthy
from tests.receivers import Receiver, Reply
from tests.samples import MESSAGE

T = TypeVar("T")


@dataclass
class Server:
    procs: Processes
    env: dict[str, str]
    port: int
    command: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        proc = self.procs.hookline(self.command, self.command, env=self.env, cwd=self.procs.directory)
        wait_healthy(self.url, proc, self.procs)

    def restart(self) -> None:
        """The process holding the WebSocket killed without warning, then started again."""
        [proc] = [p for p in self.procs.started if p.name == self.command and p.alive()]
        proc.kill()
        proc.popen.wait(10)
        self.start()


@pytest.fixture
def server(database_url: str, procs: Processes) -> Server:
    # database_url first: its teardown (TRUNCATE) runs after the processes are gone
    port = free_port()
    env = base_env(
        HOOKLINE_DATABASE_URL=database_url,
        HOOKLINE_PORT=str(port),
        HOOKLINE_DELIVERY_TIMEOUT="3s",
        # A process killed mid-attempt (the restarts below; on SQLite the worker goes with the API)
        # leaves its lease: the delivery goes out again when the lease ends.
        HOOKLINE_LEASE="8s",
        # Ten quick retries: a request made while the listener reconnects times out and is retried.
        HOOKLINE_RETRY_SCHEDULE=",".join(["1s"] * 10),
    )
    sqlite = database_url.startswith("sqlite")
    srv = Server(procs, env, port, "serve" if sqlite else "api")
    srv.start()
    if not sqlite:
        procs.hookline("worker", "worker", env=env, cwd=procs.directory)
    return srv


@pytest.fixture
async def tenant_key(server: Server) -> AsyncIterator[str]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=server.url, headers=admin) as http:
        tenant = (await http.post("/v1/tenants", json={"name": "Relay"})).json()["data"]["id"]
        yield (await http.post(f"/v1/tenants/{tenant}/keys")).json()["data"]["key"]


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def take(listener: Listener, n: int, timeout: float = 20) -> list[RelayedDelivery]:
    got: list[RelayedDelivery] = []

    async def read() -> None:
        async for delivery in listener:
            got.append(delivery)
            if len(got) == n:
                return

    await asyncio.wait_for(read(), timeout)
    return got


async def test_deliveries_reach_the_listener_signed_and_its_answers_are_the_attempts(
    server: Server, tenant_key: str
) -> None:
    async with (
        hookline.AsyncClient(server.url, tenant_key) as client,
        Listener(server.url, tenant_key, events=["message.received"]) as listener,
    ):
        session = listener.session
        assert session is not None and not session.resumed
        [opened] = await client.audit_log.list(action="webhook.listen_opened").to_list()
        assert opened.resource.id == str(session.webhook_id) and opened.actor.address == "127.0.0.1"
        assert opened.changes == {"events": ["message.received"]}
        hook = await client.webhooks.get(session.webhook_id)
        assert (hook.kind, hook.events, hook.url) == (
            "relay",
            ["message.received"],
            f"relay://{session.token}",
        )
        sent = [
            await client.events.post("message.received", {**MESSAGE, "message_id": f"m{i}"}) for i in range(3)
        ]
        await client.events.post("order.created", {"order_id": 1})  # not subscribed: never relayed

        received = await take(listener, 3)
        assert sorted(d.event_id for d in received) == sorted(e.id for e in sent)
        for delivery in received:
            event = verify(delivery.body, delivery.headers, session.secret)  # signed as over HTTP
            assert event.id == delivery.event_id and event.type == "message.received"
            assert delivery.headers["X-Webhook-Event"] == "message.received"
        first, second, third = received
        await listener.answer(first, status=201, body="created here", duration_ms=5)
        await listener.answer(second, status=None, error="the local app could not be reached: refused")
        await listener.answer(third, status=500, body="boom")

        async def settled() -> dict[str, Any] | None:
            rows = {d.event_id: d for d in await client.deliveries.list(session.webhook_id).to_list()}
            done = rows[first.event_id].status == "succeeded" and rows[second.event_id].attempts >= 1
            return rows if done and rows[third.event_id].attempts >= 1 else None

        rows = await eventually(settled, "the answers to be recorded")
        assert rows[first.event_id].last_status_code == 201
        log = (await client.deliveries.get(rows[first.event_id].id)).attempt_log
        assert log[0].response_body == "created here"
        assert rows[second.event_id].status == "pending"  # retried, as any receiver's failure
        assert "could not be reached" in (rows[second.event_id].last_error or "")
        assert rows[third.event_id].last_status_code == 500
        # The retries come back through the session.
        again = await take(listener, 2)
        assert {d.event_id for d in again} == {second.event_id, third.event_id}


async def test_deliveries_wait_for_a_listener_and_go_out_when_the_session_resumes(
    server: Server, tenant_key: str
) -> None:
    async with hookline.AsyncClient(server.url, tenant_key) as client:
        first = Listener(server.url, tenant_key, events=["message.*"], reconnect=False)
        async with first:
            assert first.session is not None
            token, webhook_id = first.session.token, first.session.webhook_id

        async def offline() -> bool:
            return (await client.webhooks.get(webhook_id)).health.held_reason == "offline"

        await eventually(offline, "the session to be held")
        sent = [
            await client.events.post("message.received", {**MESSAGE, "message_id": f"w{i}"}) for i in range(4)
        ]
        await asyncio.sleep(1.5)  # a worker had every chance to spend attempts: none may be spent
        held = await client.deliveries.list(webhook_id).to_list()
        assert len(held) == 4 and all(d.attempts == 0 and d.status == "pending" for d in held)
        assert (await client.webhooks.get(webhook_id)).health.held == 4

        async with Listener(server.url, tenant_key, session=token) as resumed:
            assert resumed.session is not None and resumed.session.resumed
            assert resumed.session.webhook_id == webhook_id
            received = await take(resumed, 4)
            assert sorted(d.event_id for d in received) == sorted(e.id for e in sent)
            for delivery in received:
                await resumed.answer(delivery, status=200)

            async def delivered() -> bool:
                items = await client.deliveries.list(webhook_id).to_list()
                return all(d.status == "succeeded" and d.attempts == 1 for d in items)

            await eventually(delivered, "the held deliveries to be delivered once each")

            # A second listener of the same session replaces this one.
            async with Listener(server.url, tenant_key, session=token) as other:
                assert other.session is not None and other.session.resumed
                with pytest.raises(SessionTakenOver):
                    await take(resumed, 1, timeout=30)


async def test_a_restart_of_the_api_under_a_listener_loses_nothing(server: Server, tenant_key: str) -> None:
    dropped: list[str] = []
    async with (
        hookline.AsyncClient(server.url, tenant_key, max_retries=5) as client,
        Listener(
            server.url, tenant_key, events=["message.received"], on_disconnect=dropped.append
        ) as listener,
    ):
        assert listener.session is not None
        webhook_id = listener.session.webhook_id
        got: list[RelayedDelivery] = []

        async def receive() -> None:
            async for delivery in listener:
                got.append(delivery)
                await listener.answer(delivery, status=200)

        reader = asyncio.create_task(receive())
        before = await client.events.post("message.received", MESSAGE)
        await eventually(lambda: asyncio.sleep(0, result=len(got) == 1), "the first delivery")
        await asyncio.to_thread(server.restart)
        after = [
            await client.events.post("message.received", {**MESSAGE, "message_id": f"r{i}"}) for i in range(3)
        ]

        async def all_delivered() -> bool:
            items = await client.deliveries.list(webhook_id).to_list()
            return len(items) == 4 and all(d.status == "succeeded" for d in items)

        await eventually(all_delivered, "every delivery after the restart", timeout=40)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    assert dropped, "the listener saw its connection drop"
    assert {d.event_id for d in got} == {before.id, *(e.id for e in after)}


async def test_the_verification_handshake_and_test_sends_pass_through_the_session(
    server: Server, tenant_key: str
) -> None:
    async with (
        hookline.AsyncClient(server.url, tenant_key) as client,
        Listener(server.url, tenant_key, events=["message.received"]) as listener,
    ):
        assert listener.session is not None
        secret = listener.session.secret

        async def answer_challenge() -> None:
            [delivery] = await take(listener, 1)
            challenge = verify(delivery.body, delivery.headers, secret).challenge
            assert challenge is not None
            await listener.answer(delivery, status=200, body=f'{{"challenge": "{challenge}"}}')

        answering = asyncio.create_task(answer_challenge())
        outcome = await client.webhooks.verify(listener.session.webhook_id)
        await answering
        assert outcome.verified, outcome

        # A test send reaches the session too, and reports the listener's answer.
        async def answer_test() -> str:
            [delivery] = await take(listener, 1)
            await listener.answer(delivery, status=204, body="tested")
            return delivery.event_type

        answering_test = asyncio.create_task(answer_test())
        tested = await client.webhooks.test(listener.session.webhook_id)
        assert await answering_test == tested.event
        assert (tested.sent, tested.succeeded, tested.status_code, tested.response_body) == (
            True,
            True,
            204,
            "tested",
        )


async def test_refusals_are_the_api_errors(server: Server, tenant_key: str) -> None:
    with pytest.raises(hookline.Unauthorized):
        await Listener(server.url, "hk_wrong", reconnect=False).__aenter__()
    with pytest.raises(hookline.BadRequest, match=r"mesage\.received"):
        await Listener(server.url, tenant_key, events=["mesage.received"]).__aenter__()
    with pytest.raises(hookline.NotFound):
        await Listener(server.url, tenant_key, session="rl_nosuchsession").__aenter__()
    async with httpx.AsyncClient(base_url=server.url) as http:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        other = (await http.post("/v1/tenants", json={"name": "Other"}, headers=admin)).json()["data"]["id"]
        other_key = (await http.post(f"/v1/tenants/{other}/keys", headers=admin)).json()["data"]["key"]
    async with Listener(server.url, other_key) as theirs:
        assert theirs.session is not None
        with pytest.raises(hookline.NotFound):  # another tenant's session does not exist for us
            await Listener(server.url, tenant_key, session=theirs.session.token).__aenter__()
        async with hookline.AsyncClient(server.url, other_key) as client:
            with pytest.raises(hookline.BadRequest, match="relay://"):
                await client.webhooks.update(theirs.session.webhook_id, url="https://example.com/hook")
            # The single-webhook form (seed 000) never takes over a session's webhook.
            default = await client.webhooks.set_default("http://127.0.0.1:9/hook")
            assert default.id != theirs.session.webhook_id
            assert (await client.webhooks.get(theirs.session.webhook_id)).kind == "relay"


# --- hookline listen (the CLI) ---------------------------------------------------------------------------


# The CLI on PostgreSQL only (api and worker processes apart): the relay itself runs on both above.
ONE_BACKEND = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _sigint_as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ListenProcess:
    """``hookline listen ... --json`` as a real process, its JSON lines read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, server: Server, key: str, *args: str) -> ListenProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hookline",
            "listen",
            "--url",
            server.url,
            "--key",
            key,
            "--json",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")},
            # A suite started in the background (``&``, ``nohup``) ignores SIGINT, and a child inherits
            # that: its Ctrl-C below would do nothing. The CLI gets SIGINT as from a terminal.
            preexec_fn=_sigint_as_from_a_terminal
            if signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            else None,
        )
        return cls(proc)

    async def next(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        """The next line of this ``type`` (earlier lines of other types are kept in ``lines``)."""
        assert self.proc.stdout is not None

        async def read() -> dict[str, Any]:
            while True:
                raw = await self.proc.stdout.readline()  # type: ignore[union-attr]
                if not raw:
                    stderr = await self.proc.stderr.read()  # type: ignore[union-attr]
                    raise AssertionError(f"listen exited ({self.proc.returncode}): {stderr.decode()}")
                line = json.loads(raw)
                self.lines.append(line)
                if line["type"] == kind:
                    return line

        return await asyncio.wait_for(read(), timeout)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        return await asyncio.wait_for(self.proc.wait(), 20)


@ONE_BACKEND
async def test_listen_forwards_verified_deliveries_to_a_local_app_and_survives_a_restart(
    server: Server, tenant_key: str
) -> None:
    async with Receiver() as app, hookline.AsyncClient(server.url, tenant_key, max_retries=5) as client:
        app.plan("/hook", Reply(500, b"not yet"))  # the first request fails: retried through the session
        app.always("/hook", Reply(201, b"made"))
        listen = await ListenProcess.start(
            server, tenant_key, "--forward-to", app.url("/hook"), "--events", "message.received,order.*"
        )
        try:
            session = await listen.next("session")
            assert session["events"] == ["message.received", "order.*"] and not session["resumed"]
            webhook_id = session["webhook_id"]
            secret = (await client.webhooks.get_secret(webhook_id)).secret
            sent = await client.events.post("message.received", MESSAGE)
            [failed] = await app.wait_for(1, "/hook", timeout=20)
            line = await listen.next("delivery")
            assert (line["event_id"], line["signature"], line["status"]) == (sent.id, "ok", 500)
            [_, retried] = await app.wait_for(2, "/hook", timeout=20)
            for request in (failed, retried):  # the exact bytes, with the headers an HTTP receiver gets
                event = verify(request.body, request.headers, secret)
                assert event.id == sent.id and event.data == MESSAGE
            assert (await listen.next("delivery"))["status"] == 201

            async def recorded() -> bool:
                [d] = await client.deliveries.list(webhook_id).to_list()
                return d.status == "succeeded" and d.attempts == 2 and d.last_status_code == 201

            await eventually(recorded, "the local app's answers to be the attempts")

            # The server goes away under the listener and comes back: the session resumes.
            await asyncio.to_thread(server.restart)
            await listen.next("disconnected")
            assert (await listen.next("session", timeout=30))["resumed"]
            order = {**(await client.event_types.get("order.created")).example, "total": 1250.00}
            later = await client.events.post("order.created", order)
            line = await listen.next("delivery", timeout=30)
            assert (line["event_id"], line["signature"], line["status"]) == (later.id, "ok", 201)
            assert json.loads(app.to("/hook")[-1].body)["data"]["total"] == 1250.00

            # The handshake is answered by the CLI, not forwarded.
            forwarded = len(app.to("/hook"))
            assert (await client.webhooks.verify(webhook_id)).verified
            assert (await listen.next("delivery"))["handshake"]
            assert len(app.to("/hook")) == forwarded
        finally:
            code = await listen.stop()
        assert code == 0
        with pytest.raises(hookline.NotFound):  # Ctrl-C deleted the session's webhook
            await client.webhooks.get(webhook_id)


@ONE_BACKEND
async def test_listen_without_a_local_app_prints_and_answers_200(server: Server, tenant_key: str) -> None:
    async with hookline.AsyncClient(server.url, tenant_key) as client:
        listen = await ListenProcess.start(server, tenant_key, "--keep")
        try:
            webhook_id = (await listen.next("session"))["webhook_id"]
            sent = await client.events.post("message.received", MESSAGE)
            line = await listen.next("delivery")
            assert (line["event_id"], line["status"], line["signature"]) == (sent.id, 200, "ok")
        finally:
            assert await listen.stop() == 0
        hook = await client.webhooks.get(webhook_id)  # --keep: the session waits to be resumed
        assert hook.kind == "relay"


@ONE_BACKEND
async def test_ctrl_c_leaves_soon_when_the_server_does_not_answer(server: Server, tenant_key: str) -> None:
    """The API process stopped (SIGSTOP: its socket open, nothing answered), Ctrl-C still ends ``listen``
    within a few seconds: the close waits ``CLOSE_TIMEOUT`` (2 s) for the server, not the library's 10."""
    async with hookline.AsyncClient(server.url, tenant_key) as client:
        listen = await ListenProcess.start(server, tenant_key, "--keep")
        await listen.next("session")
        await client.events.post("message.received", MESSAGE)
        await listen.next("delivery")
    [api] = [p for p in server.procs.started if p.name == "api" and p.alive()]
    os.kill(api.popen.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert await listen.stop() == 0
        assert time.monotonic() - started < 8
    finally:
        os.kill(api.popen.pid, signal.SIGCONT)


@ONE_BACKEND
async def test_listen_refusals_exit_with_one_line(server: Server, tenant_key: str) -> None:
    for key, args, code, text in (
        ("hk_wrong", (), 1, "invalid or revoked API key"),
        (tenant_key, ("--events", "mesage.received"), 1, "mesage.received"),
        (tenant_key, ("--session", "rl_gone"), 4, "session 'rl_gone' not found"),
    ):
        listen = await ListenProcess.start(server, key, *args)
        assert await asyncio.wait_for(listen.proc.wait(), 20) == code
        stderr = (await listen.proc.stderr.read()).decode()  # type: ignore[union-attr]
        assert text in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
