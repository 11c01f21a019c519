"""Sending a :class:`~hookline.sdk.routes.Call`: authentication, timeouts, retries, the envelope.

Retries: a request is sent again after a 429, 502, 503 or 504 answer or a connection that broke, when
the call is safe to repeat (``Call.retry``: GET, PUT and DELETE, and ``POST /v1/events[/batch]`` when
every event carries an id or an Idempotency-Key). A request that never left (the connection could not
be made, or no pooled connection was free) is retried whatever the call, since the server never saw
it. Waits grow exponentially (``backoff_factor`` x 2^n, with jitter between half and all of it) or are
the server's ``Retry-After``; a wait longer than ``max_retry_wait`` is not waited for: the error is
raised at once, with ``retry_after`` set.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from hookline import __version__
from hookline.sdk.errors import (
    HooklineConnectionError,
    HooklineError,
    HooklineTimeout,
    InvalidResponse,
    error_for,
)
from hookline.sdk.routes import Call

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures before the request was sent: retrying cannot repeat anything the server did.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
USER_AGENT = f"hookline-python/{__version__}"


@dataclass(frozen=True)
class Options:
    """A client's settings (``Client.with_options`` makes a copy with some changed)."""

    base_url: str
    api_key: str | None
    tenant_id: str | None
    timeout: float | None
    max_retries: int
    backoff_factor: float
    max_retry_wait: float
    generate_event_ids: bool

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {self.base_url!r}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (a number of seconds or an HTTP date), None if absent or unreadable."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class _Base:
    def __init__(self, options: Options) -> None:
        self.options = options

    def _request(self, call: Call[Any]) -> dict[str, Any]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **call.headers}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        request: dict[str, Any] = {
            "method": call.route.method,
            "url": self.options.base_url.rstrip("/") + call.path,
            "params": call.params,
            "headers": headers,
            "timeout": self.options.timeout,
        }
        if call.json is not None:
            headers["Content-Type"] = "application/json"
            request["content"] = json.dumps(call.json, default=_json_default, allow_nan=False).encode()
        return request

    def _wait(self, call: Call[Any], attempt: int, outcome: httpx.Response | Exception) -> float | None:
        """Seconds to wait before sending ``call`` again, or None: do not retry."""
        if attempt >= self.options.max_retries:
            return None
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in RETRY_STATUSES or not call.retry:
                return None
            asked = retry_after(outcome.headers)
        else:
            if not (isinstance(outcome, NOT_SENT) or call.retry):
                return None
            asked = None
        if asked is None:
            full = self.options.backoff_factor * 2**attempt
            asked = random.uniform(full / 2, full)
        return asked if asked <= self.options.max_retry_wait else None

    @staticmethod
    def _result(call: Call[T], response: httpx.Response) -> T:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if response.is_success:
            if isinstance(body, dict) and body.get("status") is True and "data" in body:
                return call.parse(body["data"])
            raise InvalidResponse(
                f"the answer to {call.route.method} {call.path} is not hookline's envelope",
                status_code=response.status_code,
                body=body,
                headers=response.headers,
            )
        raise error_for(response.status_code, body, response.headers, retry_after(response.headers))

    def _no_answer(self, call: Call[Any], exc: httpx.TransportError) -> HooklineError:
        where = f"{call.route.method} {self.options.base_url.rstrip('/')}{call.path}"
        if isinstance(exc, httpx.TimeoutException):
            return HooklineTimeout(f"{where}: no answer within the timeout ({type(exc).__name__})")
        return HooklineConnectionError(f"{where}: {type(exc).__name__}: {exc}")


class SyncTransport(_Base):
    def __init__(self, options: Options, http: httpx.Client) -> None:
        super().__init__(options)
        self.http = http
        self.sleep: Callable[[float], None] = time.sleep

    def run(self, call: Call[T]) -> T:
        request = self._request(call)
        attempt = 0
        while True:
            try:
                response = self.http.request(**request)
            except httpx.TransportError as exc:
                wait = self._wait(call, attempt, exc)
                if wait is None:
                    raise self._no_answer(call, exc) from exc
            else:
                wait = self._wait(call, attempt, response)
                if wait is None:
                    return self._result(call, response)
                response.close()
            self.sleep(wait)
            attempt += 1


class AsyncTransport(_Base):
    def __init__(self, options: Options, http: httpx.AsyncClient) -> None:
        super().__init__(options)
        self.http = http

    async def run(self, call: Call[T]) -> T:
        request = self._request(call)
        attempt = 0
        while True:
            try:
                response = await self.http.request(**request)
            except httpx.TransportError as exc:
                wait = self._wait(call, attempt, exc)
                if wait is None:
                    raise self._no_answer(call, exc) from exc
            else:
                wait = self._wait(call, attempt, response)
                if wait is None:
                    return self._result(call, response)
                await response.aclose()
            await asyncio.sleep(wait)
            attempt += 1
