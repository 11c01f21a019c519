"""Sending one delivery attempt: what goes in (``Request``), what comes out (``AttemptResult``), the headers
hookline sets, and the choice of HTTP client.

Two clients implement ``Sender``, with the same guarantees (egress policy on every connection, no
redirects, no proxy, a deadline over the whole attempt, a capped response read):

* ``pyreqwest`` (the default, ``hookline.dispatch.sender_reqwest``): Rust's reqwest/hyper, about half the
  CPU per request of aiohttp here;
* ``aiohttp`` (``hookline.dispatch.sender_aiohttp``): the pure-asyncio fallback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

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
