"""The shapes of what the API answers, as pydantic models: the OpenAPI document's response schemas.

Routes build their answers with the ``*_view`` functions and ``envelope.ok`` (fast, no validation on
the way out); these models only describe them. They are kept honest by tests, not by the runtime:
``tests/test_openapi.py`` validates real answers against the published schemas, and schemathesis
checks every answer it provokes. Models are strict (``extra="forbid"``, every field required, the
way the views always write every key), so a view that gains or loses a key fails those tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from hookline.api.key_policy import TenantScope

T = TypeVar("T")


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Envelope(_Shape, Generic[T]):
    """``{"status": true, "code": 200, "message": "...", "data": ...}``"""

    status: Literal[True]
    code: int
    message: str
    data: T


class ErrorEnvelope(_Shape):
    """``{"status": false, "code": 400, "message": "Bad request", "error": "URL must be HTTPS"}``"""

    status: Literal[False]
    code: int
    message: str
    error: str = Field(description="what went wrong, specific enough to fix the request")


class Page(_Shape, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class Deleted(_Shape):
    id: int | str
    deleted: Literal[True]


# --- tenants and keys ---------------------------------------------------------------------------------


class TenantOut(_Shape):
    id: str
    name: str
    metadata: dict[str, Any]
    retention_seconds: int | None = Field(
        description="how long the tenant's payloads and attempts are kept; null: the service's "
        "HOOKLINE_RETENTION"
    )
    theme: ThemeOut = Field(description="the dashboard's look for this tenant")
    created_at: datetime
    updated_at: datetime


class ApiKeyOut(_Shape):
    id: str
    tenant_id: str
    name: str
    prefix: str = Field(description="the first characters of the key, to recognise it")
    created_at: datetime
    scopes: list[TenantScope] = Field(
        description="what the key may do (tenant:manage implies events:write and read)"
    )
    expires_at: datetime | None = Field(description="when the key stops working; null: never")
    allowed_ips: list[str] | None = Field(description="the networks it may be used from; null: anywhere")
    rate_limit: float | None = Field(description="its own requests per second, per API process; null: none")
    last_used_at: datetime | None = Field(
        description="when it was last used, to within a minute; null: not since this was recorded"
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself; shown only in this answer")


# --- webhooks -----------------------------------------------------------------------------------------


class CircuitBreakerOut(_Shape):
    webhook_id: int
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    failure_rate: float = Field(description="failed share of the attempts in the current window, 0 to 1")
    window: dict[str, Any] = Field(description="the current window: started_at, seconds, requests, failures")
    opened_at: datetime | None
    next_probe_at: datetime | None = Field(description="when the next probe may go (while not closed)")
    held: int = Field(description="pending deliveries held while the breaker is not closed")


class VerificationOut(_Shape):
    status: Literal["not_required", "pending", "verified", "failed"]
    verified_at: datetime | None
    error: str | None = Field(description="why the last handshake failed")


class HealthOut(_Shape):
    circuit_breaker: Literal["closed", "open", "half_open"]
    rate_limit: float | None = Field(
        description="requests per second in force (the endpoint's or the default)"
    )
    held: int = Field(description="pending deliveries held (disabled, unverified, breaker open or paused)")
    held_reason: str | None = Field(description="disabled | unverified | circuit_open | paused | offline")
    disabled_reason: str | None
    paused_until: datetime | None = Field(description="a receiver's Retry-After pauses the whole endpoint")
    last_success_at: datetime | None
    failing_since: datetime | None


class WebhookOut(_Shape):
    id: int
    url: str
    kind: Literal["http", "relay"] = Field(
        description='"relay": a `hookline listen` session\'s temporary webhook (its URL is relay://...)'
    )
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
    circuit_breaker: dict[str, float] | None = Field(description="the endpoint's breaker thresholds")
    secret_headers: dict[str, str] = Field(
        description='the secret headers\' names; their values are never shown ("[redacted]")'
    )
    signing: Literal["hmac", "ed25519"] = Field(
        description='"ed25519": deliveries also carry v1a signatures (GET /v1/webhooks/{id}/public-key)'
    )
    verification: VerificationOut
    health: HealthOut


class VerifyOutcome(_Shape):
    webhook_id: int
    verified: bool
    status: Literal["verified", "failed"]
    error: str | None
    status_code: int | None = Field(description="what the endpoint answered, if it answered")
    duration_ms: int


class SignatureSent(_Shape):
    scheme: Literal["standard-webhooks", "standard-webhooks-ed25519", "hmac-sha256-hex"]
    header: str
    signatures: int = Field(
        description="how many signatures of this scheme the header lists (one per secret or key in use)"
    )


class SendTestOutcome(_Shape):
    webhook_id: int
    url: str
    sent: bool = Field(description="false: not attempted (the endpoint is unverified, or `error` says why)")
    succeeded: bool = Field(description="the endpoint answered 2xx")
    event: str
    event_id: str | None = Field(description="the webhook-id the request carried")
    delivery_id: int | None = Field(description="the test delivery in the log (GET /v1/deliveries/{id})")
    status_code: int | None = Field(description="what the endpoint answered, if it answered")
    duration_ms: int
    response_body: str | None = Field(description="the start of the answer's body (at most 4 KiB)")
    error: str | None = Field(
        description="what went wrong: a timeout, a refused connection, a blocked address"
    )
    signatures: list[SignatureSent] = Field(description="the signature schemes the request carried")


class SendTestReport(_Shape):
    tested: int
    succeeded: int
    results: list[SendTestOutcome]


class AttemptCounts(_Shape):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    total: int
    ok: int = Field(alias="2xx")
    client_error: int = Field(alias="4xx")
    server_error: int = Field(alias="5xx")
    timeout: int
    connection_error: int
    blocked: int = Field(description="refused by the egress policy (SSRF protection)")
    other: int = Field(description="3xx (redirects are not followed), or a request that could not be built")


class LatencyPercentiles(_Shape):
    p50: float | None
    p95: float | None
    p99: float | None


class LatencySummary(LatencyPercentiles):
    mean: float | None
    relative_accuracy: float = Field(description="the percentiles are within this share of the true ones")


class FinishedDeliveries(_Shape):
    succeeded: int
    failed: int = Field(description="failed for good (no retry left)")


class DeliveryCounts(FinishedDeliveries):
    pending: int = Field(description="now: waiting to be delivered, held ones included")
    held: int = Field(description="now: waiting for a breaker, a pause, verification or re-enabling")


class StatsBucket(_Shape):
    start: datetime
    attempts: AttemptCounts
    success_rate: float | None
    deliveries: FinishedDeliveries
    latency_ms: LatencyPercentiles


class StatsOut(_Shape):
    webhook_id: int | None
    tenant_id: str | None = Field(description="null: the whole service (admin key)")
    since: datetime = Field(description="start of the window, on a bucket boundary")
    until: datetime = Field(description="end of the window (exclusive), on a bucket boundary")
    bucket: Literal["1m", "5m", "1h", "1d"]
    attempts: AttemptCounts
    success_rate: float | None = Field(description="share of attempts answered 2xx (null: none)")
    deliveries: DeliveryCounts
    latency_ms: LatencySummary
    status_codes: dict[str, int]
    last_success_at: datetime | None
    last_failure_at: datetime | None
    circuit_breakers: dict[str, int] = Field(description="now: endpoints by breaker state")
    series: list[StatsBucket]


class BreakerReset(_Shape):
    reset: list[int] = Field(description="the webhooks whose breaker was reset")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="the signing secret (also at GET /v1/webhooks/{id}/secret)")
    public_key: str | None = Field(
        description='the ed25519 public key (whpk_...) when "signing" is "ed25519" (also at '
        "GET /v1/webhooks/{id}/public-key); null otherwise"
    )


class WebhookSecret(_Shape):
    id: int
    secret: str


class SecretRotated(WebhookSecret):
    previous_secrets_expire_at: list[str] = Field(
        description="when each still-valid old secret stops signing"
    )
    public_key: str | None = Field(
        description="the new ed25519 public key of an ed25519 webhook (its key pair rotates with the "
        "secret, the old one signing too for the same grace period); null otherwise"
    )


class PreviousPublicKey(_Shape):
    public_key: str
    expires_at: str = Field(description="when this key stops signing (the end of a rotation's grace period)")


class WebhookPublicKey(_Shape):
    id: int
    public_key: str = Field(description="whpk_ + base64 of the 32-byte ed25519 public key; verifies v1a")
    previous_public_keys: list[PreviousPublicKey] = Field(
        description="keys of a recent rotation that still sign during their grace period"
    )


# --- deliveries ---------------------------------------------------------------------------------------


class DeliveryOut(_Shape):
    id: int
    webhook_id: int
    event_id: str
    event: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    test: bool = Field(
        description="made by a test send (POST /v1/webhooks/{id}/test): never retried nor replayed"
    )
    pruned: bool = Field(
        description="retention removed this finished delivery's attempts (attempt_log is empty) and, with "
        "its event's last delivery, the payload; this summary stays until HOOKLINE_SUMMARY_RETENTION. "
        "A pruned delivery is not retried nor replayed"
    )


class AttemptOut(_Shape):
    attempt: int
    test: bool = Field(description="an attempt of a test send")
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    request_headers: dict[str, str]


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]


class DeliveryQueued(_Shape):
    id: int
    status: Literal["pending"]


class Replayed(_Shape):
    webhook_id: int
    requeued: int


# --- events and event types ---------------------------------------------------------------------------


class EventOut(_Shape):
    id: str
    event: str
    timestamp: str
    data: dict[str, Any] | None = Field(description="the event's data; null once retention pruned it")
    channels: list[str] | None
    deliveries: int = Field(description="how many deliveries the event created")
    created_at: datetime
    pruned: bool = Field(
        description="retention removed the payload (every delivery was finished and pruned); data is null"
    )


class EventDetail(EventOut):
    delivery_status: list[DeliveryOut]


class EventAccepted(_Shape):
    id: str
    event: str
    deliveries: int


class BatchItemAccepted(EventAccepted):
    created: bool = Field(description="false for an id seen before (nothing new was created)")


class BatchAccepted(_Shape):
    accepted: int
    items: list[BatchItemAccepted]


class EventTypeOut(_Shape):
    name: str
    description: str
    group: str
    source: str
    schema_: dict[str, Any] = Field(alias="schema")
    example: dict[str, Any]


class Health(_Shape):
    version: str
    database: Literal["ok"]


class EgressIpsOut(_Shape):
    addresses: list[str] = Field(
        description="IP addresses (`203.0.113.7`) and networks (`198.51.100.0/28`) that deliveries come from"
    )


# --- the audit log ------------------------------------------------------------------------------------


class AuditActorOut(_Shape):
    key_id: str = Field(description='the API key\'s id; "admin" (the admin key), "cli" or "system"')
    address: str | None = Field(description="the client's address (null: not made over HTTP)")


class AuditResourceOut(_Shape):
    type: str
    id: str | None


class AuditEntryOut(_Shape):
    id: int
    at: datetime
    tenant_id: str | None = Field(description="null: a service-wide change (event types, the secret key)")
    action: str
    actor: AuditActorOut
    resource: AuditResourceOut
    changes: dict[str, Any] = Field(
        description='what changed ({field: {"from", "to"}} for an update); secrets as "[redacted]"'
    )


# --- portal links -------------------------------------------------------------------------------------


class ThemeOut(_Shape):
    accent: str | None = None
    logo_url: str | None = None
    mode: Literal["light", "dark", "auto"] | None = None


class PortalLinkOut(_Shape):
    id: str
    tenant_id: str
    capabilities: list[str] = Field(description="what it allows beyond reading; empty: read-only")
    theme: ThemeOut
    locale: str | None
    note: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class PortalLinkCreated(PortalLinkOut):
    url: str = Field(description="the signed URL to open or embed (shown once)")
