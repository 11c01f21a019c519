"""What every request handler needs, built once per process and kept on ``app.state``."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from starlette.requests import HTTPConnection

from hookline.api.key_usage import KeyUsage
from hookline.api.principal import Principal
from hookline.api.rate_limits import RequestRateLimiter
from hookline.config import Settings
from hookline.dispatch.sender import Sender
from hookline.dispatch.senders import make_sender
from hookline.egress import UrlPolicy
from hookline.sealing import Keyring
from hookline.signed_tokens import Signer
from hookline.store.engine import Store
from hookline.store.event_types import EventTypeRegistry
from hookline.store.events import EventWriter

V = TypeVar("V")


class KeyCache(Generic[V]):
    """Recently verified tenant keys (by hash: the principal each one makes), so a busy client does not
    cost a query per request; also the tenants the admin key recently acted on.

    Revoking a key or deleting a tenant clears this process's cache at once; other processes notice
    within ``ttl`` seconds."""

    def __init__(
        self, ttl: float = 5.0, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._entries: dict[str, tuple[V, float]] = {}

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] < self._clock():
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: str, value: V) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (value, self._clock() + self.ttl)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class Services:
    settings: Settings
    store: Store
    registry: EventTypeRegistry
    admin_key_hash: str
    key_cache: KeyCache[Principal] = field(default_factory=KeyCache)
    # Tenants the admin key recently acted on (tenant id -> itself): ingest skips a query per event.
    known_tenants: KeyCache[str] = field(default_factory=KeyCache)
    key_usage: KeyUsage = field(default_factory=KeyUsage)
    event_writer: EventWriter = field(init=False)
    rate_limiter: RequestRateLimiter = field(init=False)
    _signers: dict[str, tuple[Keyring, Signer]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.event_writer = EventWriter(self.store)
        self.rate_limiter = RequestRateLimiter(self.settings.tenant_rate_limit)

    @property
    def url_policy(self) -> UrlPolicy:
        return self.settings.url_policy

    @contextlib.asynccontextmanager
    async def sending(self, body_limit: int) -> AsyncIterator[Sender]:
        """A started sender for the requests the API makes itself (the verification handshake, test
        sends), with the worker's egress policy and signature style; closed on the way out."""
        settings = self.settings
        sender = make_sender(
            settings.sender,
            settings.url_policy,
            style=settings.signature_style,
            body_limit=body_limit,
            store=self.store,
            proxy=settings.egress_proxy,
        )
        await sender.start()
        try:
            yield sender
        finally:
            await sender.close()

    def signer(self, purpose: str) -> Signer:
        """The signer of ``purpose``'s tokens (``hookline.signed_tokens``), for the store's keyring now
        (a test may swap it)."""
        keyring = self.store.keyring
        cached = self._signers.get(purpose)
        if cached is None or cached[0] is not keyring:
            cached = self._signers[purpose] = (
                keyring,
                Signer(keyring, self.admin_key_hash.encode(), purpose),
            )
        return cached[1]

    def is_admin(self, key_hash: str) -> bool:
        return hmac.compare_digest(key_hash, self.admin_key_hash)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


async def get_services(connection: HTTPConnection) -> Services:
    # async on purpose: FastAPI runs plain-def dependencies in a thread pool, a costly hop per request.
    # An HTTPConnection, not a Request: WebSocket routes (/v1/listen) take their services this way too.
    services: Services = connection.app.state.services
    return services
