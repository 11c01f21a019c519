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

T = TypeVar("T")

MESSAGE = {
    "message_id": "wamid.1",
    "conversation_id": 7,
    "from": "96650000000",
    "to": "96650000001",
    "type": "text",
    "body": "\u0645\u0631\u062d\u0628\u0627 1250.00",
    "timestamp": "2024-01-20T10:30:00Z",
}


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


async def test_the_verification_handshake_passes_through_the_session(server: Server, tenant_key: str) -> None:
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
