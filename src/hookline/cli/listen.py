"""``hookline listen``: receive a server's deliveries on this machine with no tunnel, through a relay
session (``hookline.sdk.listener``), and forward them to a local app.

Each delivery is verified with the session's secret (shown as OK or FAIL: it is forwarded either way,
so the local app's own check runs too), forwarded to ``--forward-to`` with the same headers and the
exact body, printed on one line, and the local app's answer (status and body, or why there is none) is
reported back as the attempt's outcome: it is in the delivery log and drives retries as any
receiver's answer would. The verification handshake is answered here. Without ``--forward-to`` every
delivery is printed and answered 200.

Ctrl-C ends the session and deletes its webhook (``--keep`` leaves it: deliveries wait for
``hookline listen --session rl_...`` to resume it, until the server's ``HOOKLINE_RELAY_KEEP`` passes).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.markup import escape

from hookline.cli.connection import (
    REFUSED,
    USAGE,
    Connection,
    KeyOption,
    ProfileOption,
    TenantOption,
    UrlOption,
    resolve_connection,
    run_command,
)
from hookline.cli.output import fail
from hookline.sdk.listener import Listener, RelayedDelivery, Session, SessionTakenOver
from hookline_receiver import Verifier, WebhookVerificationError

# Headers not passed on to the local app: its own connection's (httpx sets them).
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding"}
MAX_ANSWER_BODY = 64 * 1024


@dataclass(frozen=True)
class Forwarded:
    status: int | None
    body: str | None
    error: str | None
    duration_ms: int


class Relay:
    """One ``hookline listen`` run: the session, the local app, the printing."""

    def __init__(
        self,
        listener: Listener,
        *,
        forward_to: str | None,
        console: Console,
        json_lines: bool,
        timeout: float,
    ) -> None:
        self.listener = listener
        self.forward_to = forward_to
        self.console = console
        self.json_lines = json_lines
        self.timeout = timeout
        self.verifier: Verifier | None = None

    def on_session(self, session: Session) -> None:
        self.verifier = Verifier(session.secret)
        if self.json_lines:
            self._emit(
                {
                    "type": "session",
                    "session": session.token,
                    "webhook_id": session.webhook_id,
                    "events": session.events,
                    "resumed": session.resumed,
                }
            )
            return
        if session.resumed:
            self.console.print(
                f"[green]Reconnected[/]: session {session.token} (webhook {session.webhook_id})"
            )
            return
        target = self.forward_to or "(printing only, answering 200)"
        self.console.print(
            f"[bold green]Ready![/] Forwarding {', '.join(session.events)} to {escape(target)}\n"
            f"  webhook {session.webhook_id}, session [bold]{session.token}[/] (resume with --session)\n"
            f"  signing secret [bold]{session.secret}[/]\n"
            "  Ctrl-C to stop."
        )

    def on_disconnect(self, why: str) -> None:
        if self.json_lines:
            self._emit({"type": "disconnected", "reason": why})
        else:
            self.console.print(f"[yellow]{escape(why)}[/]")

    def on_notice(self, text: str) -> None:
        if self.json_lines:
            self._emit({"type": "notice", "error": text})
        else:
            self.console.print(f"[red]server: {escape(text)}[/]")

    async def run(self, client: httpx.AsyncClient) -> None:
        tasks: set[asyncio.Task[None]] = set()
        async for delivery in self.listener:
            task = asyncio.create_task(self.handle(client, delivery))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def handle(self, client: httpx.AsyncClient, delivery: RelayedDelivery) -> None:
        signature, challenge = self._check(delivery)
        if challenge is not None:
            outcome = Forwarded(200, orjson.dumps({"challenge": challenge}).decode(), None, 0)
        elif self.forward_to is None:
            outcome = Forwarded(200, "", None, 0)
        else:
            outcome = await self._forward(client, delivery)
        await self.listener.answer(
            delivery,
            status=outcome.status,
            body=outcome.body,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
        self._print(delivery, signature, outcome, challenge is not None)

    def _check(self, delivery: RelayedDelivery) -> tuple[str, str | None]:
        """("OK" or "FAIL: why", the handshake's challenge if this is one)."""
        assert self.verifier is not None
        try:
            verified = self.verifier.verify(delivery.body, delivery.headers)
        except WebhookVerificationError as exc:
            return f"FAIL: {exc}", None
        return "OK", verified.challenge

    async def _forward(self, client: httpx.AsyncClient, delivery: RelayedDelivery) -> Forwarded:
        assert self.forward_to is not None
        headers = {k: v for k, v in delivery.headers.items() if k.lower() not in HOP_HEADERS}
        clock = time.perf_counter()
        try:
            response = await client.post(self.forward_to, content=delivery.body, headers=headers)
        except httpx.TimeoutException:
            took = int((time.perf_counter() - clock) * 1000)
            return Forwarded(None, None, f"the local app did not answer within {self.timeout:g} s", took)
        except httpx.HTTPError as exc:
            took = int((time.perf_counter() - clock) * 1000)
            return Forwarded(
                None, None, f"the local app could not be reached: {type(exc).__name__}: {exc}", took
            )
        took = int((time.perf_counter() - clock) * 1000)
        return Forwarded(response.status_code, response.text[:MAX_ANSWER_BODY], None, took)

    def _print(self, delivery: RelayedDelivery, signature: str, outcome: Forwarded, handshake: bool) -> None:
        if self.json_lines:
            self._emit(
                {
                    "type": "delivery",
                    "event_id": delivery.event_id,
                    "event_type": delivery.event_type,
                    "signature": "ok" if signature == "OK" else "fail",
                    "signature_error": None if signature == "OK" else signature[6:],
                    "status": outcome.status,
                    "error": outcome.error,
                    "duration_ms": outcome.duration_ms,
                    "handshake": handshake,
                }
            )
            return
        when = datetime.now().strftime("%H:%M:%S")
        sig = "[green]signature OK[/]" if signature == "OK" else f"[red]signature {escape(signature)}[/]"
        if handshake:
            result = "[cyan]answered the verification challenge[/]"
        elif outcome.status is not None:
            colour = "green" if 200 <= outcome.status < 300 else "red"
            result = f"[{colour}]-> {outcome.status}[/] {outcome.duration_ms} ms"
        else:
            result = f"[red]-> {escape(outcome.error or 'no answer')}[/]"
        self.console.print(
            f"{when}  [bold]{escape(delivery.event_type)}[/]  {delivery.event_id}  {sig}  {result}"
        )

    def _emit(self, value: dict[str, Any]) -> None:
        sys.stdout.write(orjson.dumps(value).decode() + "\n")
        sys.stdout.flush()


async def listen(
    connection: Connection,
    *,
    events: list[str] | None,
    session: str | None,
    forward_to: str | None,
    keep: bool,
    json_lines: bool,
    timeout: float,  # noqa: ASYNC109 (the local app's deadline, given to httpx)
) -> None:
    relay: Relay
    listener = Listener(
        connection.url,
        connection.key,
        events=events,
        session=session,
        tenant_id=connection.tenant,
        on_session=lambda s: relay.on_session(s),
        on_disconnect=lambda why: relay.on_disconnect(why),
        on_notice=lambda text: relay.on_notice(text),
    )
    console = Console(highlight=False)
    relay = Relay(listener, forward_to=forward_to, console=console, json_lines=json_lines, timeout=timeout)
    try:
        async with listener, httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            await relay.run(client)
    finally:
        if listener.session is not None and not keep:
            await _delete_webhook(connection, listener.session.webhook_id)
            if not json_lines:
                console.print(f"Session ended; webhook {listener.session.webhook_id} deleted.")


async def _delete_webhook(connection: Connection, webhook_id: int) -> None:
    from hookline.sdk import AsyncClient, HooklineError

    with contextlib.suppress(HooklineError):
        async with AsyncClient(
            connection.url, connection.key, tenant_id=connection.tenant, max_retries=1, timeout=10
        ) as client:
            await client.webhooks.delete(webhook_id)


def listen_command(
    forward_to: Annotated[
        str | None,
        typer.Option(
            "--forward-to", metavar="URL", help="your local app, e.g. http://localhost:3000/webhooks"
        ),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events", metavar="TYPES", help="event types to receive, comma-separated [default: all]"
        ),
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", metavar="TOKEN", help="resume a session (rl_...)")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="keep the session's webhook when you stop, to resume it later")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="how long the local app may take")
    ] = 10.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="one JSON object per line, for scripts")
    ] = False,
    url: UrlOption = None,
    key: KeyOption = None,
    profile: ProfileOption = None,
    tenant: TenantOption = None,
) -> None:
    """Receive the server's deliveries here, with no tunnel, and forward them to a local app."""
    if forward_to is not None and not forward_to.startswith(("http://", "https://")):
        fail("--forward-to must be an http:// or https:// URL", USAGE)
    patterns = [p.strip() for group in events or [] for p in group.split(",") if p.strip()] or None

    def run() -> None:
        connection = resolve_connection(url, key, profile, tenant)
        with contextlib.suppress(KeyboardInterrupt), taken_over_is_refused():
            asyncio.run(
                listen(
                    connection,
                    events=patterns,
                    session=session,
                    forward_to=forward_to,
                    keep=keep,
                    json_lines=json_output,
                    timeout=timeout,
                )
            )

    run_command(run)


@contextlib.contextmanager
def taken_over_is_refused() -> Iterator[None]:
    """Another ``hookline listen --session`` took this session: not a server failure (exit 1)."""
    try:
        yield
    except SessionTakenOver as exc:
        fail(exc.error, REFUSED)


def register(app: typer.Typer) -> None:
    app.command("listen")(listen_command)
