"""The client end of a relay session (``hookline listen``): deliveries of a hookline server received over
an outbound WebSocket (``/v1/listen``), so a machine behind NAT or a firewall gets them with no tunnel.

    async with Listener("http://127.0.0.1:8000", "hk_...", events=["message.*"]) as listener:
        async for delivery in listener:
            ...  # verify delivery.body with listener.session.secret, act on it
            await listener.answer(delivery, status=200, body="ok")

The server keeps the session while the connection is down: deliveries wait for the listener, and the
listener resumes the same session when it reconnects (``reconnect=True``, with a growing pause between
tries), so none is lost. An answer that cannot be sent (the connection dropped meanwhile) is dropped:
the server retries the delivery. A refusal by the server (a bad key, an unknown event type, a session
that is gone) raises the SDK's exception for its status; a connection taken over by another listener
of the same session raises :class:`SessionTakenOver`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from hookline.sdk.errors import HooklineConnectionError, HooklineError, error_for

TAKEN_OVER = 4409
SESSION_GONE = 4404
MAX_MESSAGE = 16 * 1024 * 1024
# How long closing waits for the server's answer to the close before it drops the connection: Ctrl-C on
# ``hookline listen`` waited the library's 10 s when the server was busy or gone.
CLOSE_TIMEOUT = 2.0


class SessionTakenOver(HooklineError):
    """Another listener resumed this session; this one stops."""


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # resume with it: Listener(..., session=token)
    webhook_id: int
    secret: str  # the webhook's signing secret, to verify what comes
    events: list[str]
    resumed: bool


@dataclass(frozen=True, slots=True)
class RelayedDelivery:
    id: int  # the exchange to answer
    event_id: str
    event_type: str
    headers: dict[str, str]
    body: bytes  # exactly the bytes that were signed


class Listener:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        events: Sequence[str] | None = None,
        session: str | None = None,
        tenant_id: str | None = None,
        reconnect: bool = True,
        max_pause: float = 5.0,
        on_session: Callable[[Session], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._events = list(events) if events else None
        self._token = session
        self._tenant_id = tenant_id
        self._reconnect = reconnect
        self._max_pause = max_pause
        self._on_session = on_session
        self._on_disconnect = on_disconnect
        self._on_notice = on_notice
        self._ws: ClientConnection | None = None
        self.session: Session | None = None

    async def __aenter__(self) -> Listener:
        await self._connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None

    def url(self) -> str:
        """The WebSocket URL of the session (resuming it once it has a token)."""
        parts = urlsplit(self._base_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        query: dict[str, str] = {}
        if self._token:
            query["session"] = self._token
        elif self._events:
            query["events"] = ",".join(self._events)
        if self._tenant_id:
            query["tenant_id"] = self._tenant_id
        path = parts.path.rstrip("/") + "/v1/listen"
        return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))

    async def __aiter__(self) -> AsyncIterator[RelayedDelivery]:
        pause = 0.25
        while True:
            if self._ws is None:
                try:
                    await self._connect()
                    pause = 0.25
                except HooklineConnectionError as exc:
                    if not self._reconnect:
                        raise
                    if self._on_disconnect is not None:
                        self._on_disconnect(f"cannot reach the server ({exc.error}); retrying")
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, self._max_pause)
                    continue
            ws = self._ws
            assert ws is not None
            try:
                async for raw in ws:
                    delivery = self._read(raw)
                    if delivery is not None:
                        yield delivery
            except ConnectionClosed:
                pass
            self._ws = None
            self._closed(ws)
            if not self._reconnect:
                return

    async def answer(
        self,
        delivery: RelayedDelivery,
        *,
        status: int | None = None,
        body: str | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
    ) -> bool:
        """Report what became of ``delivery``: the status (and body) its receiver answered, or why there
        is none (``error``). False if the connection is down (the server will send it again)."""
        message: dict[str, Any] = {"type": "answer", "id": delivery.id, "status": status, "body": body}
        if error is not None:
            message["error"] = error
        if duration_ms is not None:
            message["duration_ms"] = duration_ms
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(orjson.dumps(message).decode())
        except ConnectionClosed:
            return False
        return True

    # --- inside ----------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            ws = await connect(
                self.url(),
                additional_headers=headers,
                max_size=MAX_MESSAGE,
                open_timeout=10,
                close_timeout=CLOSE_TIMEOUT,
            )
        except InvalidStatus as exc:
            raise self._refusal(exc) from None
        except (OSError, TimeoutError, InvalidURI, WebSocketException) as exc:
            raise HooklineConnectionError(f"{type(exc).__name__}: {exc}") from None
        try:
            first = orjson.loads(await ws.recv())
        except (ConnectionClosed, orjson.JSONDecodeError) as exc:
            await ws.close()
            reason = getattr(getattr(exc, "rcvd", None), "reason", "") or "no session message"
            if getattr(getattr(exc, "rcvd", None), "code", None) == SESSION_GONE:
                raise error_for(404, {"status": False, "error": reason}, {}, None) from None
            raise HooklineConnectionError(f"the server closed the session: {reason}") from None
        if not isinstance(first, dict) or first.get("type") != "session":
            error = str((first.get("error") if isinstance(first, dict) else None) or "no session was opened")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), 5)
            await ws.close()
            if ws.close_code == SESSION_GONE:
                raise error_for(404, {"status": False, "error": error}, {}, None)
            raise HooklineConnectionError(error)  # the server could not open it now: try again
        self.session = Session(
            token=first["session"],
            webhook_id=int(first["webhook_id"]),
            secret=first["secret"],
            events=list(first.get("events") or []),
            resumed=bool(first.get("resumed")),
        )
        self._token = self.session.token
        self._ws = ws
        if self._on_session is not None:
            self._on_session(self.session)

    def _refusal(self, exc: InvalidStatus) -> HooklineError:
        response = exc.response
        try:
            body: Any = orjson.loads(response.body or b"")
        except orjson.JSONDecodeError:
            body = (response.body or b"").decode("utf-8", "replace")
        status = response.status_code
        if status >= 500:  # the server is failing or starting: try again
            return HooklineConnectionError(f"the server answered {status}")
        return error_for(status, body, dict(response.headers.raw_items()), None)

    def _read(self, raw: str | bytes) -> RelayedDelivery | None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(message, dict):
            return None
        if message.get("type") == "delivery":
            return RelayedDelivery(
                id=int(message["id"]),
                event_id=str(message["event_id"]),
                event_type=str(message["event_type"]),
                headers={str(k): str(v) for k, v in (message.get("headers") or {}).items()},
                body=str(message.get("body", "")).encode(),
            )
        if message.get("type") == "error" and self._on_notice is not None:
            self._on_notice(str(message.get("error")))
        return None

    def _closed(self, ws: ClientConnection) -> None:
        code = ws.close_code
        reason = ws.close_reason or ""
        if code == TAKEN_OVER:
            raise SessionTakenOver(reason or "another listener took over this session")
        if code == SESSION_GONE:
            raise error_for(404, {"status": False, "error": reason or "session not found"}, {}, None)
        if self._on_disconnect is not None:
            self._on_disconnect(f"connection lost ({code or 'no close frame'}); resuming")
