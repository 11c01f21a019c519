"""Typed views of what the API answers: frozen dataclasses built from the envelope's ``data``.

Forward compatible: a field the SDK does not know is ignored (and kept in ``raw``, the answer's JSON
object as received); a field the answer lacks is None. Times are timezone-aware ``datetime`` objects.
``raw`` is also what to print when a caller wants the JSON (the CLI's ``--json``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args, get_origin

M = TypeVar("M", bound="Model")

BreakerState = Literal["closed", "open", "half_open"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
Bucket = Literal["1m", "5m", "1h", "1d"]


@dataclass(frozen=True, kw_only=True)
class Model:
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[M], data: Mapping[str, Any]) -> M:
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        values = {f.name: _convert(hint, data.get(f.metadata.get("key", f.name))) for f, hint in _fields(cls)}
        return cls(raw=data, **values)


_FIELDS: dict[type[Model], tuple[tuple[dataclasses.Field[Any], Any], ...]] = {}


def _fields(cls: type[Model]) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    """Each field of a model with its resolved type (computed once per class)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "raw")
    return found


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value)
        return value  # int | str and the like: as sent
    if origin is list and isinstance(value, list):
        (item,) = get_args(hint)
        return [_convert(item, v) for v in value]
    if hint is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, Model) and isinstance(value, Mapping):
        return hint.from_dict(value)
    return value


def parse_list(cls: type[M]) -> typing.Callable[[Any], list[M]]:
    return lambda data: [cls.from_dict(item) for item in data]


# --- tenants and keys -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Tenant(Model):
    id: str
    name: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    retention_seconds: int | None = None  # None: the service's retention
    theme: dict[str, Any] | None = None  # the dashboard's look: accent, logo_url, mode


@dataclass(frozen=True, kw_only=True)
class ApiKey(Model):
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime
    scopes: list[str] | None = None  # tenant:manage, events:write, read
    expires_at: datetime | None = None
    allowed_ips: list[str] | None = None  # CIDRs it may be used from; None: anywhere
    rate_limit: float | None = None  # its own requests per second (per API process)
    last_used_at: datetime | None = None  # to within a minute
    key: str | None = None  # the key itself: only in the answer that created it


@dataclass(frozen=True, kw_only=True)
class PortalLink(Model):
    id: str
    tenant_id: str
    capabilities: list[str]  # empty: read-only
    theme: dict[str, Any]
    locale: str | None
    note: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    url: str | None = None  # the signed URL: only in the answer that created it


@dataclass(frozen=True, kw_only=True)
class Deleted(Model):
    id: int | str
    deleted: bool


# --- webhooks ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Verification(Model):
    status: str  # not_required | pending | verified | failed
    verified_at: datetime | None
    error: str | None


@dataclass(frozen=True, kw_only=True)
class WebhookHealth(Model):
    circuit_breaker: BreakerState
    rate_limit: float | None
    held: int
    held_reason: str | None
    disabled_reason: str | None
    paused_until: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None


@dataclass(frozen=True, kw_only=True)
class Webhook(Model):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime
    tenant_id: str
    description: str
    channels: list[str] | None
    headers: dict[str, str]
    metadata: dict[str, Any]
    disabled_reason: str | None
    timeout_seconds: float | None
    retry_schedule: list[float] | None
    max_in_flight: int | None
    rate_limit: float | None
    circuit_breaker: dict[str, float] | None
    verification: Verification
    health: WebhookHealth
    kind: str = "http"  # "relay": a `hookline listen` session's temporary webhook
    signing: str = "hmac"  # "ed25519": deliveries also carry v1a signatures (``get_public_key``)
    secret: str | None = None  # only when the webhook was just created
    # The names of the secret headers (sent like ``headers``); their values are never shown.
    secret_headers: dict[str, str] = field(default_factory=dict)
    public_key: str | None = None  # only when the webhook was just created with signing="ed25519"


@dataclass(frozen=True, kw_only=True)
class WebhookSecret(Model):
    id: int
    secret: str
    previous_secrets_expire_at: list[datetime] | None = None  # after a rotation
    public_key: str | None = None  # after a rotation of an ed25519 webhook: its new public key


@dataclass(frozen=True, kw_only=True)
class PreviousPublicKey(Model):
    public_key: str
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class WebhookPublicKey(Model):
    """What receivers verify v1a (ed25519) signatures with: ``whpk_...`` keys, no secret."""

    id: int
    public_key: str
    previous_public_keys: list[PreviousPublicKey]  # a rotation's replaced keys, still signing

    @property
    def verifying_keys(self) -> list[str]:
        """Every key a receiver should accept now (pass them to ``hookline_receiver.verify``)."""
        return [self.public_key, *(old.public_key for old in self.previous_public_keys)]


@dataclass(frozen=True, kw_only=True)
class VerifyOutcome(Model):
    webhook_id: int
    verified: bool
    status: str
    error: str | None
    status_code: int | None
    duration_ms: int


@dataclass(frozen=True, kw_only=True)
class SignatureSent(Model):
    scheme: str
    header: str
    signatures: int


@dataclass(frozen=True, kw_only=True)
class TestSendOutcome(Model):
    __test__ = False  # not a pytest class

    webhook_id: int
    url: str
    sent: bool
    succeeded: bool
    event: str
    event_id: str | None
    delivery_id: int | None
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error: str | None
    signatures: list[SignatureSent]


@dataclass(frozen=True, kw_only=True)
class TestSendReport(Model):
    __test__ = False

    tested: int
    succeeded: int
    results: list[TestSendOutcome]


@dataclass(frozen=True, kw_only=True)
class CircuitBreaker(Model):
    webhook_id: int
    state: BreakerState
    consecutive_failures: int
    failure_rate: float
    window: dict[str, Any]
    opened_at: datetime | None
    next_probe_at: datetime | None
    held: int


# --- statistics -------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AttemptCounts(Model):
    total: int
    ok: int = field(metadata={"key": "2xx"})
    client_error: int = field(metadata={"key": "4xx"})
    server_error: int = field(metadata={"key": "5xx"})
    timeout: int
    connection_error: int
    blocked: int
    other: int


@dataclass(frozen=True, kw_only=True)
class Latency(Model):
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None = None  # the window's summary only
    relative_accuracy: float | None = None


@dataclass(frozen=True, kw_only=True)
class DeliveryCounts(Model):
    succeeded: int
    failed: int
    pending: int | None = None  # the window's summary only (now)
    held: int | None = None


@dataclass(frozen=True, kw_only=True)
class StatsBucket(Model):
    start: datetime
    attempts: AttemptCounts
    success_rate: float | None
    deliveries: DeliveryCounts
    latency_ms: Latency


@dataclass(frozen=True, kw_only=True)
class Stats(Model):
    webhook_id: int | None
    tenant_id: str | None
    since: datetime
    until: datetime
    bucket: Bucket
    attempts: AttemptCounts
    success_rate: float | None
    deliveries: DeliveryCounts
    latency_ms: Latency
    status_codes: dict[str, int]
    last_success_at: datetime | None
    last_failure_at: datetime | None
    circuit_breakers: dict[str, int]
    series: list[StatsBucket]


# --- deliveries -------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Attempt(Model):
    attempt: int
    test: bool
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    request_headers: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class Delivery(Model):
    id: int
    webhook_id: int
    event_id: str
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    test: bool
    pruned: bool | None = None  # retention removed its attempts (and payload): a summary
    attempt_log: list[Attempt] | None = None  # GET /v1/deliveries/{id} only


@dataclass(frozen=True, kw_only=True)
class DeliveryQueued(Model):
    id: int
    status: str


@dataclass(frozen=True, kw_only=True)
class Replayed(Model):
    webhook_id: int
    requeued: int


# --- events and event types -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Event(Model):
    id: str
    event: str
    timestamp: str  # as the receivers get it, e.g. 2026-01-01T00:00:00.000Z
    data: dict[str, Any] | None  # None once retention pruned the payload
    channels: list[str] | None
    deliveries: int
    created_at: datetime
    pruned: bool | None = None  # retention removed the payload
    delivery_status: list[Delivery] | None = None  # GET /v1/events/{id} only


@dataclass(frozen=True, kw_only=True)
class EventAccepted(Model):
    id: str
    event: str
    deliveries: int
    created: bool | None = None  # batch items: False for an id seen before


@dataclass(frozen=True, kw_only=True)
class BatchAccepted(Model):
    accepted: int
    items: list[EventAccepted]


@dataclass(frozen=True, kw_only=True)
class EventType(Model):
    name: str
    description: str
    group: str
    source: str
    schema: dict[str, Any]
    example: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Health(Model):
    version: str
    database: str


@dataclass(frozen=True, kw_only=True)
class EgressIps(Model):
    addresses: list[str]  # "203.0.113.7", "198.51.100.0/28"


@dataclass(frozen=True, kw_only=True)
class AuditActor(Model):
    key_id: str  # an API key's id; "admin", "cli" or "system"
    address: str | None  # None: not made over HTTP


@dataclass(frozen=True, kw_only=True)
class AuditResource(Model):
    type: str  # "tenant", "api_key", "webhook", "delivery", "event_type", "secret_key"
    id: str | None


@dataclass(frozen=True, kw_only=True)
class AuditEntry(Model):
    id: int
    at: datetime
    tenant_id: str | None  # None: a service-wide change
    action: str  # e.g. "webhook.updated"
    actor: AuditActor
    resource: AuditResource
    changes: dict[str, Any]  # {field: {"from", "to"}} for an update; secrets as "[redacted]"
