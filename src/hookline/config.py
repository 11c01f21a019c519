"""Settings: one typed object, read from ``HOOKLINE_*`` environment variables.

Every value is checked when the process starts; a bad value stops it with a message that names the
variable, never later in the middle of a request.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hookline.dispatch.alerting import AlertPolicy
from hookline.dispatch.breaker import BreakerPolicy
from hookline.egress import UrlPolicy, UrlRejected, check_webhook_url, parse_networks
from hookline.fixed_egress import PYREQWEST_CANNOT_PROXY, EgressProxy, parse_egress_ips, parse_egress_proxy
from hookline.sealing import KeyFormatError, Keyring
from hookline.signing import SignatureStyle, validate_secret

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_RETRY_SCHEDULE = "1m,5m,15m,1h,6h"
DEV_NETWORKS = "127.0.0.0/8,::1/128"  # what --dev lets webhooks reach
_BOOL: TypeAdapter[bool] = TypeAdapter(bool)
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")  # ASCII digits only
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# The settings written as durations ("30s", "5m", "1h", "7d"; a bare number is seconds), held as seconds.
DURATION_FIELDS = (
    "delivery_timeout",
    "lease",
    "poll_interval",
    "drain_timeout",
    "retry_after_max",
    "breaker_window",
    "breaker_cooldown",
    "breaker_max_cooldown",
    "auto_disable_after",
    "stats_retention",
    "retention",
    "summary_retention",
    "alert_window",
    "relay_keep",
    "audit_retention",
)
LOG_LEVELS = ("debug", "info", "warning", "error")
SIGNATURE_HEX_FORMS = ("sha256=", "hex")
# The shortest retention period (HOOKLINE_RETENTION, a tenant's own, `hookline prune --older-than`): a
# bare number is seconds, so "30" must not quietly mean half a minute of history.
MIN_RETENTION = 3600.0


class ConfigError(ValueError):
    """A setting has a value hookline cannot use; the message names the variable."""


def parse_duration(text: str) -> float:
    """``"1m"`` -> 60.0. Units: ms, s, m, h, d; a bare number is seconds. Always finite."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"invalid duration {text.strip()!r} (use e.g. 30s, 5m, 1h)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text.strip()!r} (too large)")
    return seconds


# A retry wait is at least 100 ms: below that a "wait" is a hot loop (1e-300 s, 0.0000001ms) that no
# clock or timestamp column can tell from zero. Not 1 s: local receivers in development and tests
# rightly retry within a second. At most 7 days: later than that, nobody is waiting for the event.
MIN_RETRY_WAIT = 0.1
MAX_RETRY_WAIT = 7 * 86400.0
MAX_RETRIES = 50


def parse_retry_schedule(value: str | Sequence[float]) -> tuple[float, ...]:
    """``"1m,5m,15m"`` (or ``[60, 300, 900]``) -> (60.0, 300.0, 900.0): the waits before retries
    1, 2, 3... The one rule for HOOKLINE_RETRY_SCHEDULE and an endpoint's ``retry_schedule``."""
    if isinstance(value, str):
        parts = [p for p in (s.strip() for s in value.split(",")) if p]
        waits = tuple(parse_duration(p) for p in parts)
    else:
        waits = tuple(float(w) for w in value)
    if not waits:
        raise ValueError("retry schedule is empty (use e.g. 1m,5m,15m,1h,6h)")
    if len(waits) > MAX_RETRIES:
        raise ValueError(f"retry schedule has more than {MAX_RETRIES} retries")
    for wait in waits:
        if not (math.isfinite(wait) and MIN_RETRY_WAIT <= wait <= MAX_RETRY_WAIT):
            raise ValueError(f"retry waits must be between 100ms and 7d (got {wait:g}s)")
    return waits


def default_data_dir() -> Path:
    return Path.cwd() / "hookline-data"


class Settings(BaseSettings):
    """Every field is one ``HOOKLINE_<NAME>`` variable; the docstring under it is its description in
    docs/configuration.md (``python -m hookline.settings_reference`` writes that file from them)."""

    model_config = SettingsConfigDict(
        env_prefix="HOOKLINE_",
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
        hide_input_in_errors=True,  # values can be secrets (keys, the proxy's password)
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    """Directory of the default SQLite database (`hookline.db`), relative to the working directory at
    start; created if missing. Not used when `HOOKLINE_DATABASE_URL` is set."""
    dev: bool = False
    """Local development: allows `http://` URLs and loopback receivers (`127.0.0.0/8`, `::1`,
    `localhost`) by making `HOOKLINE_ALLOW_HTTP` default to `true` and `HOOKLINE_ALLOWED_NETWORKS` to
    `127.0.0.0/8,::1/128`; either one, set explicitly, wins. Logged as a warning at start. Never use it in
    production."""
    database_url: str = ""
    """The database: `sqlite:///path/to/hookline.db` (its directory must exist) or
    `postgresql://user:password@host:5432/dbname`. Unset: `hookline.db` in `HOOKLINE_DATA_DIR`. SQLite
    serves one process (`hookline serve`); several `api` and `worker` processes share a PostgreSQL
    database."""
    admin_key: str | None = None
    """The operator's bearer token, for the admin API (tenants and their keys). Takes precedence over a
    stored key. Unset: the first `serve`, `api` or `migrate` on a new database generates one, stores
    its hash and prints it once (a `worker` never does)."""
    secret_key: SecretStr | None = None
    """The key that encrypts webhook signing secrets and secret header values in the database
    (AES-256-GCM): 32 random bytes in base64url, as `hookline secrets generate-key` prints. Several,
    comma-separated, during a key rotation: the first encrypts, every one decrypts (see `hookline
    secrets rotate-key`). Required with PostgreSQL (`api`, `worker`, `migrate` refuse to start
    without it). Unset on SQLite: the key file `secret.key` beside the database (in
    `HOOKLINE_DATA_DIR` by default) is used, generated with mode 0600 on first start; back it up apart
    from the database."""
    allow_http: bool = False
    """Accept `http://` webhook URLs (the operator webhook's too); otherwise they must be `https://`. For
    local development."""
    allowed_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    """Networks exempt from the block on non-public addresses, e.g. `10.0.0.0/8,fd00::/8`: webhook URLs
    may name them and deliveries may connect to them (`localhost` too, when they cover loopback). Unset:
    public addresses only."""
    egress_proxy: Annotated[EgressProxy | None, NoDecode] = None
    """An HTTP proxy that every outbound request goes through (deliveries, test sends, verification
    handshakes, the operator webhook), so that receivers see them come from its fixed address:
    `http://host:port`, or `http://user:password@host:port` (the credentials are never logged or shown).
    hookline still resolves and checks every destination itself and asks the proxy to `CONNECT` to the
    checked address, never to the host name (TLS runs through the tunnel, verified for the host name);
    `http://` URLs go to the proxy as `http://<address>/...`. The proxy's own address is exempt from the
    checks. Needs the `aiohttp` sender. Unset: direct connections."""
    egress_ips: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    """The source addresses receivers see deliveries come from (the proxy's, or your NAT gateway's), e.g.
    `203.0.113.7,198.51.100.0/28`: published at `GET /v1/egress-ips` for receivers' allow-lists, as
    written. hookline does not check them. Unset: an empty list."""
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = parse_retry_schedule(DEFAULT_RETRY_SCHEDULE)
    """The waits before retries 1, 2, 3... of a failed delivery (at most 50, each from `100ms` to `7d`);
    after the last one the delivery is `failed`. An endpoint may set its own (`retry_schedule`)."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Largest API request body, in bytes (1 MiB by default); a larger one gets 413."""
    delivery_timeout: Annotated[float, NoDecode] = 15.0
    """Deadline of a whole delivery attempt (connecting, sending, reading the answer). An endpoint may set
    its own (`timeout_seconds`). Test sends use it too, and the verification handshake up to `10s`."""
    response_body_limit: int = Field(default=64 * 1024, ge=0, le=16 * 1024 * 1024)
    """How much of a receiver's response body is read and stored with each attempt, in bytes (64 KiB by
    default)."""
    sender: Literal["pyreqwest", "aiohttp"] = "pyreqwest"
    """The worker's HTTP client: `pyreqwest` (Rust's reqwest; about half of aiohttp's CPU per request) or
    `aiohttp` (pure asyncio). Both apply the same egress rules. With `HOOKLINE_EGRESS_PROXY` only `aiohttp`
    can (it is then the default; `pyreqwest` with a proxy stops the process at start)."""
    max_in_flight_per_endpoint: int = Field(default=20, ge=1, le=10_000)
    """Requests to one endpoint in flight at once, across all workers together. An endpoint may set its
    own (`max_in_flight`)."""
    rate_limit: float | None = Field(default=None, gt=0, le=100_000)
    """Requests per second to one endpoint, across all workers together; deliveries beyond it wait. An
    endpoint may set its own (`rate_limit`). Unset: no limit."""
    breaker_consecutive_failures: int = Field(default=10, ge=1, le=10_000)
    """Failed attempts in a row that open an endpoint's circuit breaker (timeouts, connection and TLS
    errors, 5xx, 408 and 429 are failures). An endpoint may override it (`circuit_breaker`)."""
    breaker_failure_rate: float = Field(default=0.5, ge=0.01, le=1.0)
    """The breaker also opens when this share of the attempts in `HOOKLINE_BREAKER_WINDOW` failed (`0.5`:
    half), once there are at least `HOOKLINE_BREAKER_MIN_REQUESTS` of them."""
    breaker_min_requests: int = Field(default=20, ge=1, le=100_000)
    """Attempts needed in the breaker's window before its failure rate counts."""
    breaker_window: Annotated[float, NoDecode] = 60.0
    """Length of the window in which the breaker counts attempts and failures."""
    breaker_cooldown: Annotated[float, NoDecode] = 30.0
    """How long an open breaker holds the endpoint's deliveries before one probe goes out; doubles each
    time the breaker re-opens, and resets on a success."""
    breaker_max_cooldown: Annotated[float, NoDecode] = 600.0
    """The longest cool-down, however often the breaker re-opens (never shorter than
    `HOOKLINE_BREAKER_COOLDOWN`)."""
    auto_disable_after: Annotated[float | None, NoDecode] = 5 * 86400.0
    """Disable an endpoint that has failed for this long without a single success (`0`: never). Its
    later deliveries are held, not failed, until it is enabled again."""
    stats_retention: Annotated[float, NoDecode] = 90 * 86400.0
    """How long delivery statistics are kept, at least `7d`; a statistics query reaches back at most this
    far."""
    # Retention (hookline.store.retention): what is removed, and when, by the workers' housekeeping and
    # `hookline prune`.
    retention: Annotated[float, NoDecode] = 30 * 86400.0
    """How long event payloads and delivery attempts (request headers, response bodies) are kept once
    every delivery of the event is finished, at least `1h`. Older ones are removed; each delivery's
    summary (status, attempts, last status code, times) stays, marked `pruned`. Pending deliveries are
    never pruned. A tenant may have its own (`retention_seconds`)."""
    summary_retention: Annotated[float, NoDecode] = 90 * 86400.0
    """How long a pruned delivery's summary (and its event's id and type) is kept before it is deleted
    too; never shorter than `HOOKLINE_RETENTION` or a tenant's own retention."""
    retention_share: float = Field(default=0.2, gt=0.0, le=1.0)
    """The share of its time a worker's retention may spend removing rows: after each batch it waits
    so long that removing takes at most this share, leaving the database to the deliveries (`1`: no
    waiting). At `0.2`, pruning a 10,000,000-attempt backlog cost deliveries 3.4 % of their throughput,
    against 20-24 % unpaced (docs/benchmarks.md). `hookline prune` never waits."""
    audit_retention: Annotated[float, NoDecode] = 365 * 86400.0
    """How long audit log entries (who changed tenants, keys and webhooks, who was shown a secret) are
    kept, at least `1d`; older ones are removed by the workers' housekeeping."""
    relay_keep: Annotated[float, NoDecode] = 3600.0
    """A `hookline listen` session that no listener has held for this long is deleted with its
    webhook."""
    operator_webhook_url: str | None = None
    """Where every operational event of every tenant (`endpoint.disabled`, `endpoint.failing`...) is
    delivered, signed and retried like any webhook. Checked at start like a tenant's webhook URL; needs
    `HOOKLINE_OPERATOR_WEBHOOK_SECRET`. Set or unset, the events are kept in the `hookline:operator`
    tenant's event log."""
    operator_webhook_secret: str | None = None
    """The operator webhook's signing secret, e.g. `whsec_` followed by the base64 of 32 random bytes.
    Required with `HOOKLINE_OPERATOR_WEBHOOK_URL`."""
    alert_failure_rate: float = Field(default=0.25, gt=0.0, le=1.0)
    """`endpoint.failing` is raised when this share of an endpoint's attempts in `HOOKLINE_ALERT_WINDOW`
    failed (any answer but a 2xx, or none), once there are at least `HOOKLINE_ALERT_MIN_ATTEMPTS`."""
    alert_window: Annotated[float, NoDecode] = 300.0
    """Length of the window in which `endpoint.failing` counts attempts and failures."""
    alert_min_attempts: int = Field(default=10, ge=1, le=1_000_000)
    """Attempts needed in the alert's window before its failure rate counts."""
    json_safe_integers: bool = True
    """Refuse event data holding integers beyond ±(2^53 - 1), which a JavaScript receiver cannot read
    back exactly (so could not verify its signature over `JSON.stringify(req.body)`). `false`: accept
    them."""
    verification_required: bool = False
    """New endpoints must pass the verification handshake before anything is delivered to them. An
    endpoint may decide for itself when created (`verify`)."""
    worker_concurrency: int = Field(default=256, ge=1, le=100_000)
    """Requests one worker process sends at once, to all endpoints together."""
    worker_batch_size: int = Field(default=200, ge=1, le=10_000)
    """Most deliveries a worker claims from the database at a time."""
    lease: Annotated[float, NoDecode] = 300.0
    """How long a worker's claim on a delivery lasts before another worker may take it over (after a
    crash, say). At least twice `HOOKLINE_DELIVERY_TIMEOUT`."""
    poll_interval: Annotated[float, NoDecode] = 1.0
    """How often an idle worker looks for due deliveries; a safety net, since new events wake the
    workers at once."""
    drain_timeout: Annotated[float, NoDecode] = 20.0
    """How long a stopping worker (SIGTERM, Ctrl-C) lets requests in flight finish; what it claimed but
    did not send is handed back at once."""
    retry_jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    """Randomizes each scheduled retry wait by up to this fraction either way (`0.1`: ±10 %; `0`:
    exact waits)."""
    retry_after_max: Annotated[float, NoDecode] = 6 * 3600.0
    """Longest honoured `Retry-After` of a 429 or 503 answer: it replaces the scheduled wait and pauses
    the whole endpoint until then, for at most this long."""
    no_retry_statuses: Annotated[frozenset[int], NoDecode] = frozenset({400, 401})
    """The 4xx answers that fail a delivery at once, without retries. Replaces the default list: write
    `400,401,403` to add 403. (410 Gone is never retried, and disables the endpoint.)"""
    signature_header_prefix: str = "X-Webhook"
    """Prefix of the seed-style signature headers: `<prefix>-Signature`, `-Timestamp`, `-Id` and
    `-Event`. Webhooks may not set custom headers that start with it."""
    signature_hex_form: str = "sha256="
    """Form of the `<prefix>-Signature` value: `sha256=` (`sha256=<hex>`) or `hex` (the bare hex
    digest)."""
    host: str = "127.0.0.1"
    """Address the API listens on (`0.0.0.0`: every IPv4 interface)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Port the API listens on."""
    api_workers: int = Field(default=1, ge=1, le=64)
    """`hookline api` processes sharing the API's port; above 1 needs PostgreSQL."""
    # API keys: who the client is, and how often a tenant may call (hookline.api.auth).
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    """Your reverse proxies and load balancers, e.g. `10.0.0.0/8`: for a request from one of them, the
    client address that API keys' `allowed_ips` are checked against is the right-most address of
    `X-Forwarded-For` that is not a trusted proxy. Unset: the client is the connection's peer, and
    `X-Forwarded-For` is ignored (anyone can send it)."""
    public_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """The URL users reach hookline at, e.g. `https://hooks.example.com` (behind a proxy, a path prefix
    too): the start of portal links' URLs. Unset: the address the request for the link came to."""
    portal_frame_ancestors: Annotated[tuple[str, ...], NoDecode] = ()
    """The origins that may embed the dashboard in a frame (a portal link inside a platform's app), e.g.
    `https://app.example.com,https://admin.example.com`; sent as the `frame-ancestors` of the pages'
    Content-Security-Policy. Unset: no site may frame it."""
    tenant_rate_limit: float | None = Field(default=None, gt=0, le=1_000_000)
    """Requests per second one tenant's keys may make together, per API process (N processes let
    through up to N times as much); beyond it the API answers 429 with `Retry-After`. Bursts of a
    second's worth pass. A key may have a limit of its own too (`rate_limit`). Unset: no tenant limit.
    The admin key is never limited."""
    log_level: str = "info"
    """Least severe log level written: `debug`, `info`, `warning` or `error`. Logs go to stderr, as JSON
    lines (readable lines on a terminal)."""
    worker_port: int | None = Field(default=None, ge=1, le=65535)
    """Port on which `hookline worker` serves `/healthz`, `/readyz` and `/metrics` (on `HOOKLINE_HOST`),
    for probes and Prometheus. Unset: the worker serves nothing. The API serves them on its own port."""
    metrics_token: str | None = Field(default=None, min_length=16, max_length=200)
    """A bearer token that `/metrics` accepts besides the admin key, so Prometheus can scrape without the
    admin key (`Authorization: Bearer <token>`). At least 16 characters."""
    metrics_endpoint_labels: bool = False
    """Also count attempts per endpoint (`hookline_endpoint_attempts_total` with tenant and endpoint ids):
    one series per endpoint and outcome, so only for a modest number of endpoints."""

    @model_validator(mode="before")
    @classmethod
    def _dev_mode(cls, data: Any) -> Any:
        """``dev`` fills in allow_http and allowed_networks (loopback) only where they were not given:
        an explicit HOOKLINE_ALLOW_HTTP or HOOKLINE_ALLOWED_NETWORKS always wins. ``dev`` is read as
        the field itself reads it; a value that is not a boolean is left for the field to refuse."""
        if not isinstance(data, dict) or "dev" not in data:
            return data
        try:
            dev = _BOOL.validate_python(data["dev"])
        except ValidationError:
            return data
        if dev:
            data = dict(data)
            data.setdefault("allow_http", True)
            data.setdefault("allowed_networks", DEV_NETWORKS)
        return data

    @model_validator(mode="before")
    @classmethod
    def _proxy_sender(cls, data: Any) -> Any:
        """A proxy makes ``aiohttp`` the default sender (the one that can use it); an explicit
        HOOKLINE_SENDER always wins, and ``pyreqwest`` is then refused by ``_sender_can_proxy``."""
        if not isinstance(data, dict) or "sender" in data:
            return data
        proxy = data.get("egress_proxy")
        if proxy is None or (isinstance(proxy, str) and not proxy.strip()):
            return data
        return {**data, "sender": "aiohttp"}

    @field_validator("portal_frame_ancestors", mode="before")
    @classmethod
    def _frame_ancestors(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        origins = tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        for origin in origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
                raise ValueError(
                    f"'{origin}' is not an origin (scheme://host[:port], e.g. https://app.example.com)"
                )
        return origins

    @field_validator("egress_proxy", mode="before")
    @classmethod
    def _egress_proxy(cls, value: Any) -> Any:
        return parse_egress_proxy(value) if isinstance(value, str) else value

    @field_validator("egress_ips", mode="before")
    @classmethod
    def _egress_ips(cls, value: Any) -> Any:
        return parse_egress_ips(value) if isinstance(value, str) else value

    @field_validator("allowed_networks", "trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        return parse_networks(value) if isinstance(value, str) else value

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        return parse_retry_schedule(value) if isinstance(value, str) else value

    @field_validator(*DURATION_FIELDS, mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator(
        "delivery_timeout",
        "lease",
        "poll_interval",
        "drain_timeout",
        "breaker_window",
        "breaker_cooldown",
        "breaker_max_cooldown",
        "stats_retention",
        "alert_window",
        "relay_keep",
    )
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive duration")
        return value

    @field_validator("audit_retention")
    @classmethod
    def _audit_retention(cls, value: float) -> float:
        if value < 86400:
            raise ValueError("must be at least 1d")
        return value

    @field_validator("stats_retention")
    @classmethod
    def _stats_retention(cls, value: float) -> float:
        if value < 7 * 86400:
            raise ValueError("must be at least 7d (statistics keep hourly rows for 3 days, then days)")
        return value

    @field_validator("retention", "summary_retention")
    @classmethod
    def _retention(cls, value: float) -> float:
        if value < MIN_RETENTION:
            raise ValueError("must be at least 1h")
        return value

    @field_validator("auto_disable_after", mode="before")
    @classmethod
    def _auto_disable(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_duration(value)
        if value is not None and value <= 0:
            return None  # 0 (or "0s"): never
        return value

    @field_validator("no_retry_statuses", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        codes = set()
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if not part.isdigit() or not 400 <= int(part) <= 499:
                raise ValueError(f"{part!r} is not a 4xx status code")
            codes.add(int(part))
        return frozenset(codes)

    @field_validator("signature_hex_form")
    @classmethod
    def _hex_form(cls, value: str) -> str:
        if value not in SIGNATURE_HEX_FORMS:
            raise ValueError("must be 'sha256=' or 'hex'")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("sqlite://", "postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Keyring.parse(value.get_secret_value())
            except KeyFormatError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.lower()
        if value not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value

    @model_validator(mode="after")
    def _operator_webhook(self) -> Settings:
        """The operator webhook is checked like a tenant's (its URL as the egress policy allows, a
        secret hookline can sign with); a URL without a secret is refused, never given a random one."""
        url, secret = self.operator_webhook_url, self.operator_webhook_secret
        if not url:
            return self
        try:
            check_webhook_url(url, self.url_policy)
        except UrlRejected as exc:
            raise ValueError(f"HOOKLINE_OPERATOR_WEBHOOK_URL: {exc}") from None
        if not secret:
            raise ValueError(
                "HOOKLINE_OPERATOR_WEBHOOK_SECRET is required with HOOKLINE_OPERATOR_WEBHOOK_URL "
                "(for example whsec_ followed by the base64 of 32 random bytes)"
            )
        if problem := validate_secret(secret):
            raise ValueError(f"HOOKLINE_OPERATOR_WEBHOOK_SECRET: {problem}")
        return self

    @model_validator(mode="after")
    def _sender_can_proxy(self) -> Settings:
        if self.egress_proxy is not None and self.sender != "aiohttp":
            raise ValueError(PYREQWEST_CANNOT_PROXY)
        return self

    @model_validator(mode="after")
    def _summaries_outlive_payloads(self) -> Settings:
        if self.summary_retention < self.retention:
            raise ValueError("HOOKLINE_SUMMARY_RETENTION must be at least HOOKLINE_RETENTION")
        return self

    @model_validator(mode="after")
    def _lease_covers_timeout(self) -> Settings:
        if self.lease < self.delivery_timeout * 2:
            raise ValueError("HOOKLINE_LEASE must be at least twice HOOKLINE_DELIVERY_TIMEOUT")
        return self

    @property
    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            consecutive_failures=self.breaker_consecutive_failures,
            failure_rate=self.breaker_failure_rate,
            min_requests=self.breaker_min_requests,
            window=self.breaker_window,
            cooldown=self.breaker_cooldown,
            max_cooldown=max(self.breaker_max_cooldown, self.breaker_cooldown),
        )

    @property
    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(
            failure_rate=self.alert_failure_rate,
            window=self.alert_window,
            min_attempts=self.alert_min_attempts,
        )

    @property
    def signature_style(self) -> SignatureStyle:
        return SignatureStyle(
            header_prefix=self.signature_header_prefix,
            hex_form="hex" if self.signature_hex_form == "hex" else "sha256=",
        )

    @property
    def url_policy(self) -> UrlPolicy:
        return UrlPolicy(allow_http=self.allow_http, allowed_networks=self.allowed_networks)

    @property
    def keyring(self) -> Keyring | None:
        """The keys of ``HOOKLINE_SECRET_KEY`` (None: unset; see ``hookline.secret_key``)."""
        return Keyring.parse(self.secret_key.get_secret_value()) if self.secret_key is not None else None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hookline.db'}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and explicit overrides), or raise ConfigError."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "HOOKLINE_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise ConfigError("; ".join(problems)) from None
