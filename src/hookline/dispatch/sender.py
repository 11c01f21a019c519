"""Sending one delivery attempt: what goes in (``Request``), what comes out (``AttemptResult``), the headers
hookline sets, and the choice of HTTP client.

Two clients implement ``Sender``, with the same guarantees (egress policy on every connection, no
redirects, no proxy but the operator's egress proxy, a deadline over the whole attempt, a capped
response read):

* ``pyreqwest`` (the default, ``hookline.dispatch.sender_reqwest``): Rust's reqwest/hyper, about half the
  CPU per request of aiohttp here;
* ``aiohttp`` (``hookline.dispatch.sender_aiohttp``): the pure-asyncio fallback.

The implementations import this module; the choice between them (``make_sender``) lives in
``hookline.dispatch.senders``, so no import goes in a circle.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from hookline import __version__
from hookline.egress import BlockedAddressError, UrlPolicy
from hookline.signing import SignatureStyle, signature_headers

USER_AGENT = f"hookline/{__version__}"
REDACTED = "[redacted]"
NOT_SHOWN = "(not shown)"

# RFC 9110: a field name is a token; a value is visible characters, spaces and tabs (no other control
# characters). Values can be credentials, so no message about them ever quotes them.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MAX_HEADER_VALUE = 8192


def custom_header_problem(name: object, value: object) -> str | None:
    """Why a custom header cannot be sent, without its value (nor a name that is not a token), or None."""
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        return f"a custom header has an invalid name {NOT_SHOWN}"
    if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE or _CONTROL.search(value):
        return f"custom header '{name}' has an invalid value {NOT_SHOWN}"
    return None


class RequestError(ValueError):
    """The request cannot be made as configured (nothing was sent); the message is safe to record."""


SenderKind = Literal["pyreqwest", "aiohttp"]


@dataclass(slots=True)  # one per attempt, never changed: not frozen for the cost (see ``queue.Job``)
class Request:
    url: str
    event_id: str
    event_type: str
    body: bytes
    secrets: Sequence[str]
    custom_headers: Mapping[str, str]
    timeout: float
    signing_keys: Sequence[str] = ()  # ed25519 ``whsk_`` keys (v1a), for endpoints that opted in


@dataclass(slots=True)  # one per attempt, never changed: not frozen for the cost (see ``queue.Job``)
class AttemptResult:
    started_at: float  # unix time
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    retry_after: str | None
    request_headers: dict[str, str]  # as sent, custom header values redacted
    # Why no answer came: "timeout", "connection" (refused, reset, TLS, DNS), "blocked" (the egress
    # policy refused the address), "invalid_request" (it could not be built); None when one came.
    failure: str | None = None


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
                signing_keys=request.signing_keys,
            ),
        }

    def build(self, request: Request, timestamp: int) -> tuple[dict[str, str], dict[str, str]]:
        """(the headers to send, the same with custom values redacted for the attempt log)."""
        own = self.own(request, timestamp)
        if not request.custom_headers:
            return own, own
        for name, value in request.custom_headers.items():
            if (problem := custom_header_problem(name, value)) is not None:
                raise RequestError(problem)
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
        try:
            headers, recorded = self._headers.build(request, int(started))
        except ValueError as exc:  # a custom header or a secret that cannot be used; the messages of
            # both name the field, never its value
            unbuilt = f"the request could not be built: {exc}"
            return AttemptResult(started, 0, None, None, unbuilt, None, {}, "invalid_request")
        reply = Reply()
        problem: str | None = None
        failure: str | None = None
        try:
            await self._exchange(request, headers, reply, clock)
        except TimeoutError:
            problem = f"timed out after {request.timeout:g} s"
            failure = "timeout"
        except self.errors as exc:
            problem = hide_values(self._describe(exc), request.custom_headers)
            failure = "blocked" if _blocked(exc) else "connection"
        problem = redirect_error(reply.status) or problem
        duration_ms = int((time.perf_counter() - clock) * 1000)
        return AttemptResult(
            started,
            duration_ms,
            reply.status,
            reply.text,
            problem,
            reply.retry_after,
            recorded,
            None if reply.status is not None else failure,
        )

    async def _exchange(self, request: Request, headers: dict[str, str], reply: Reply, clock: float) -> None:
        """Send ``request`` with ``headers``; ``clock`` is ``time.perf_counter()`` at the attempt's start."""
        raise NotImplementedError

    def _describe(self, exc: BaseException) -> str:
        raise NotImplementedError


def _blocked(exc: BaseException) -> bool:
    """Whether the egress policy refused the address (directly, or wrapped by the HTTP client)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, BlockedAddressError):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return False


def hide_values(text: str, custom_headers: Mapping[str, str]) -> str:
    """``text`` (a client's error message) with every custom header value in it, as given or escaped,
    replaced: a client that quotes the header it rejected must not put a credential in the logs."""
    for value in custom_headers.values():
        if not isinstance(value, str) or len(value) < 3:
            continue
        escaped = value.encode("unicode_escape").decode("ascii")
        printable = "".join(ch for ch in value if ch.isprintable())
        for form in (value, escaped, printable):
            if len(form) >= 3:
                text = text.replace(form, NOT_SHOWN)
    return text


def clean_body(raw: bytes) -> str:
    """A response body as text for the attempt log. NUL cannot be stored in PostgreSQL text: an attempt
    that cannot be recorded would block every other result of its batch."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def redirect_error(status: int | None) -> str | None:
    if status is not None and 300 <= status < 400:
        return f"redirect ({status}) not followed"
    return None
