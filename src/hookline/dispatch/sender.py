"""Sending one delivery attempt: what goes in (``Request``), what comes out (``AttemptResult``), the headers
hookline sets, and the choice of HTTP client.

Two clients implement ``Sender``, with the same guarantees (egress policy on every connection, no
redirects, no proxy, a deadline over the whole attempt, a capped response read):

* ``pyreqwest`` (the default, ``hookline.dispatch.sender_reqwest``): Rust's reqwest/hyper, about half the
  CPU per request of aiohttp here;
* ``aiohttp`` (``hookline.dispatch.sender_aiohttp``): the pure-asyncio fallback.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from hookline import __version__
from hookline.egress import UrlPolicy
from hookline.signing import SignatureStyle, signature_headers

USER_AGENT = f"hookline/{__version__}"
REDACTED = "[redacted]"

SenderKind = Literal["pyreqwest", "aiohttp"]


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    event_id: str
    event_type: str
    body: bytes
    secrets: Sequence[str]
    custom_headers: Mapping[str, str]
    timeout: float


@dataclass(frozen=True, slots=True)
class AttemptResult:
    started_at: float  # unix time
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    retry_after: str | None
    request_headers: dict[str, str]  # as sent, custom header values redacted


class Sender(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: Request) -> AttemptResult: ...


class Headers:
    """The headers of an attempt: custom headers first, then ours (content type, user agent, signatures),
    which replace any custom header of the same name in any letter case."""

    def __init__(self, style: SignatureStyle = SignatureStyle()) -> None:
        self._style = style

    def own(self, request: Request, timestamp: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **signature_headers(
                event_id=request.event_id,
                event_type=request.event_type,
                timestamp=timestamp,
                body=request.body,
                secrets=request.secrets,
                style=self._style,
            ),
        }

    def build(self, request: Request, timestamp: int) -> tuple[dict[str, str], dict[str, str]]:
        """(the headers to send, the same with custom values redacted for the attempt log)."""
        own = self.own(request, timestamp)
        if not request.custom_headers:
            return own, own
        taken = {name.lower() for name in own}
        custom = {k: v for k, v in request.custom_headers.items() if k.lower() not in taken}
        return {**custom, **own}, {**dict.fromkeys(custom, REDACTED), **own}


@dataclass(slots=True)
class Reply:
    """What has come back so far. A client fills it in as the response arrives, so a deadline that ends
    the body read still leaves the status it answered with."""

    status: int | None = None
    retry_after: str | None = None
    text: str | None = None


class HttpSender:
    """One attempt, whichever client makes it: sign, exchange, and turn what happened into an
    ``AttemptResult`` by the same rules (a deadline is "timed out", a 3xx is a redirect not followed).
    A client supplies ``_exchange`` (the request, filling ``reply`` in), ``_describe`` (its errors in
    words) and ``errors`` (the exceptions it raises for a failed attempt)."""

    errors: ClassVar[tuple[type[BaseException], ...]]

    def __init__(self, policy: UrlPolicy, style: SignatureStyle, body_limit: int) -> None:
        self._policy = policy
        self._headers = Headers(style)
        self._body_limit = body_limit

    async def send(self, request: Request) -> AttemptResult:
        started = time.time()
        clock = time.perf_counter()
        headers, recorded = self._headers.build(request, int(started))
        reply = Reply()
        problem: str | None = None
        try:
            await self._exchange(request, headers, reply, clock)
        except TimeoutError:
            problem = f"timed out after {request.timeout:g} s"
        except self.errors as exc:
            problem = self._describe(exc)
        problem = redirect_error(reply.status) or problem
        duration_ms = int((time.perf_counter() - clock) * 1000)
        return AttemptResult(
            started, duration_ms, reply.status, reply.text, problem, reply.retry_after, recorded
        )

    async def _exchange(self, request: Request, headers: dict[str, str], reply: Reply, clock: float) -> None:
        """Send ``request`` with ``headers``; ``clock`` is ``time.perf_counter()`` at the attempt's start."""
        raise NotImplementedError

    def _describe(self, exc: BaseException) -> str:
        raise NotImplementedError


def clean_body(raw: bytes) -> str:
    """A response body as text for the attempt log. NUL cannot be stored in PostgreSQL text: an attempt
    that cannot be recorded would block every other result of its batch."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def redirect_error(status: int | None) -> str | None:
    if status is not None and 300 <= status < 400:
        return f"redirect ({status}) not followed"
    return None


def make_sender(
    kind: SenderKind,
    policy: UrlPolicy,
    *,
    style: SignatureStyle = SignatureStyle(),
    body_limit: int = 64 * 1024,
) -> Sender:
    if kind == "aiohttp":
        from hookline.dispatch.sender_aiohttp import AiohttpSender

        return AiohttpSender(policy, style=style, body_limit=body_limit)
    from hookline.dispatch.sender_reqwest import ReqwestSender

    return ReqwestSender(policy, style=style, body_limit=body_limit)
