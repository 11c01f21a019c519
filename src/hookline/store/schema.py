"""The database schema, in SQLAlchemy Core, shared by SQLite and PostgreSQL.

The queue is the ``deliveries`` table itself: one row per (event, endpoint), due when
``status = 'pending' AND next_attempt_at <= now`` and not leased. A worker claims a row by setting its
``lease_until``, so a crashed worker's rows simply become due again when the lease runs out. Which
endpoints are claimed, and how many of their deliveries, is decided per endpoint from ``endpoint_state``.

Every integer key that other rows, the worker or a client refers to (endpoints, events, deliveries,
attempts) is AUTOINCREMENT on SQLite: without it SQLite hands the id of a deleted row to the next insert,
and a late result or a client's stale id would land on someone else's row. PostgreSQL sequences never
reuse a value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite keeps them as sortable text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

service_meta = sa.Table(
    "service_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # How long this tenant's payloads and attempts are kept (NULL: HOOKLINE_RETENTION). See
    # hookline.store.retention.
    sa.Column("retention_seconds", sa.Integer, nullable=True),
    # The dashboard's look for this tenant ({"accent"?, "logo_url"?, "mode"?}); a portal link's own wins.
    sa.Column("theme", Json, nullable=False, server_default=sa.text("'{}'")),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # What the key may do (hookline.api.key_policy): scope names separated by spaces, as in OAuth.
    sa.Column("scopes", sa.String(200), nullable=False, server_default="tenant:manage"),
    sa.Column("expires_at", UtcDateTime, nullable=True),  # NULL: never
    sa.Column("allowed_ips", Json, nullable=True),  # CIDR strings; NULL: any address
    sa.Column("rate_limit", sa.Float, nullable=True),  # requests per second; NULL: no limit of its own
    # Written at most once a minute per API process (hookline.api.key_usage), never per request.
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Index(None, "tenant_id"),
)

event_types = sa.Table(
    "event_types",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("group_name", sa.String(100), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("schema", Json, nullable=False),
    sa.Column("example", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    # Sealed (hookline.sealing; see hookline.store.endpoints), like the values of previous_secrets and
    # secret_headers.
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("events", Json, nullable=False),
    sa.Column("channels", Json, nullable=True),
    sa.Column("headers", Json, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Delivery options; NULL means "the service default".
    sa.Column("timeout_ms", sa.Integer, nullable=True),
    sa.Column("retry_schedule", Json, nullable=True),
    sa.Column("max_in_flight", sa.Integer, nullable=True),
    # Secrets still valid during a rotation's grace period: [{"secret": ..., "expires_at": iso}], with
    # the ed25519 signing key replaced at the same time (``"signing_key"``) for an endpoint that has one.
    sa.Column("previous_secrets", Json, nullable=False, server_default=sa.text("'[]'")),
    # Requests per second across all workers (NULL: the service default, which may be none).
    sa.Column("rate_limit", sa.Float, nullable=True),
    # Circuit-breaker thresholds replacing the service's: {"consecutive_failures": 10, ...}.
    sa.Column("circuit_breaker", Json, nullable=True),
    # The ed25519 signing key (``whsk_...``) of an endpoint that also signs with Standard Webhooks' v1a;
    # NULL: HMAC signatures only. A secret like ``secret``: never shown, never logged.
    sa.Column("signing_key", sa.Text, nullable=True),
    # Custom headers whose values are credentials: {name: sealed value}; sent like ``headers``.
    sa.Column("secret_headers", Json, nullable=False, server_default=sa.text("'{}'")),
    sa.Index(None, "tenant_id", "id"),
    sqlite_autoincrement=True,
)

# What the dispatcher knows about an endpoint and every worker must agree on: whether it has work, until
# when it may not send (breaker, rate limit, a receiver's Retry-After), why its deliveries are held, and
# its health. One small row per endpoint, changed only under its row lock (see hookline.store.queue).
#
# ``due_at`` is when the scheduler should next look at the endpoint: NULL while its deliveries are held
# or it has no work, else the later of ``work_at`` and ``blocked_until``. Claims take endpoints in
# ``due_at`` order and move a served endpoint's ``due_at`` to now, behind the others: round robin.
DUE_AT = (
    "CASE WHEN hold IS NULL AND work_at IS NOT NULL THEN"
    " CASE WHEN blocked_until > work_at THEN blocked_until ELSE work_at END END"
)
endpoint_state = sa.Table(
    "endpoint_state",
    metadata,
    sa.Column("endpoint_id", BigId, sa.ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("work_at", UtcDateTime, nullable=True),  # it may have due work from then (NULL: none)
    sa.Column("blocked_until", UtcDateTime, nullable=True),
    sa.Column("hold", sa.String(16), nullable=True),  # disabled | unverified | offline
    sa.Column("due_at", UtcDateTime, sa.Computed(DUE_AT, persisted=True), nullable=True),
    sa.Column("breaker_state", sa.String(16), nullable=False, server_default="closed"),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("window_started_at", UtcDateTime, nullable=True),
    sa.Column("window_requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("window_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("opened_at", UtcDateTime, nullable=True),
    sa.Column("next_probe_at", UtcDateTime, nullable=True),
    sa.Column("open_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("limiter_tat", UtcDateTime, nullable=True),
    sa.Column("paused_until", UtcDateTime, nullable=True),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("failing_since", UtcDateTime, nullable=True),
    # not_required | pending | verified | failed
    sa.Column("verification", sa.String(16), nullable=False, server_default="not_required"),
    sa.Column("verification_error", sa.Text, nullable=True),
    sa.Column("verified_at", UtcDateTime, nullable=True),
    # The failure-rate alert (``endpoint.failing``): the current window and when it was raised.
    sa.Column("alert_window_started_at", UtcDateTime, nullable=True),
    sa.Column("alert_window_requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("alert_window_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failing_alerted_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index(
        "ix_endpoint_state_due",
        "due_at",
        postgresql_where=sa.text("due_at IS NOT NULL"),
        sqlite_where=sa.text("due_at IS NOT NULL"),
    ),
    sa.Index(None, "tenant_id", "endpoint_id"),
)

# New work for an endpoint, announced by whoever creates it (ingest, replays) in the same transaction,
# and consumed by the next claim. A claim that sees the announcement also sees the deliveries it
# announces (one commit), so an endpoint is never marked idle while work it has not seen is committing.
# No foreign key: an insert on the ingest path costs no lookup, and a wake for a deleted endpoint is
# simply consumed.
endpoint_wakes = sa.Table(
    "endpoint_wakes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", BigId, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("channels", Json, nullable=True),
    # The exact bytes delivered ({"id", "event", "timestamp", "data"}), serialized once at ingest.
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("delivery_count", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Set when retention removed the payload (``payload`` is then empty): every delivery of the event was
    # finished and pruned. The row stays, with its id, type and de-duplication keys, as long as the
    # deliveries' summaries (hookline.store.retention).
    sa.Column("pruned_at", UtcDateTime, nullable=True),
    sa.UniqueConstraint("tenant_id", "id"),
    sa.UniqueConstraint("tenant_id", "idempotency_key"),
    sa.Index(None, "tenant_id", "seq"),
    # Retention walks a tenant's events oldest first: those still holding a payload, then (for the
    # summaries' expiry) those pruned. Two partial indexes, so neither walk passes over the other's rows.
    sa.Index(
        "ix_events_unpruned",
        "tenant_id",
        "created_at",
        "seq",
        postgresql_where=sa.text("pruned_at IS NULL"),
        sqlite_where=sa.text("pruned_at IS NULL"),
    ),
    sa.Index(
        "ix_events_pruned",
        "tenant_id",
        "created_at",
        "seq",
        postgresql_where=sa.text("pruned_at IS NOT NULL"),
        sqlite_where=sa.text("pruned_at IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_seq", BigId, sa.ForeignKey("events.seq", ondelete="CASCADE"), nullable=False),
    sa.Column("endpoint_id", BigId, sa.ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    # pending -> succeeded | failed; a claimed row stays pending, leased until ``lease_until``.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    # A claim leases the row until ``lease_until``; neither column is indexed, so a claim is a HOT update.
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("leased_by", sa.String(64), nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    # Made by a test send (POST /v1/webhooks/{id}/test): written finished, never retried nor replayed.
    sa.Column("test", sa.Boolean, nullable=False, server_default=sa.false()),
    # Set when retention deleted the delivery's attempts (a finished delivery older than its tenant's
    # retention): the row stays as the delivery's summary, and it is never sent again.
    sa.Column("pruned_at", UtcDateTime, nullable=True),
    # Per endpoint, its pending deliveries in the order they are due: the claim reads the head of one
    # endpoint at a time, however long the queue behind it.
    sa.Index(
        "ix_deliveries_endpoint_due",
        "endpoint_id",
        "next_attempt_at",
        "id",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    ),
    sa.Index(None, "endpoint_id", "id"),
    sa.Index(None, "event_seq"),
    sqlite_autoincrement=True,
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", BigId, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    sa.Column("endpoint_id", BigId, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("request_headers", Json, nullable=False),
    sa.Index(None, "delivery_id"),
    sqlite_autoincrement=True,
)


# Delivery statistics (``hookline.rollups``): per endpoint, the attempts of one span (a minute, an hour, a
# day) summed. The recorder appends a batch's row per endpoint and minute with each batch of answers, in
# the batch's transaction; compaction adds those rows into the summaries of each level (minutes, hours,
# days) and deletes them. A stats query reads one level's summaries and the batches' rows not added yet,
# never the attempt log (``hookline.store.rollups``). No foreign key: a batch that
# writes them would then lock the endpoint's row against a tenant's deletion, which waits for the
# batch's deliveries (a deadlock); deleting a webhook or a tenant deletes its rows, and compaction
# sweeps any a concurrent batch left behind.
attempt_rollups = sa.Table(
    "attempt_rollups",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", BigId, nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("span", sa.Integer, nullable=False),  # seconds: 60, 3600 or 86400
    sa.Column("start", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("outcomes", Json, nullable=False),  # {"2xx": n, "5xx": n, "timeout": n, ...}
    sa.Column("codes", Json, nullable=False),  # {"200": n, ...}
    sa.Column("latency", Json, nullable=False),  # the sketch's bins: {"bin": n, ...}
    sa.Column("duration_ms", sa.BigInteger, nullable=False),
    sa.Column("succeeded", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("last_failure_at", UtcDateTime, nullable=True),
    # False: a batch's row, as the recorder appended it; true: a level's summary, written by compaction.
    sa.Column("summary", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index(None, "endpoint_id", "start"),
    sa.Index(None, "tenant_id", "start"),
    # Compaction finds the batches' rows and a level's expired summaries by it.
    sa.Index(None, "summary", "span", "start"),
    # One summary per endpoint, level and period. Partial: the recorder's inserts do not maintain it.
    sa.Index(
        "ix_attempt_rollups_summaries",
        "endpoint_id",
        "span",
        "start",
        unique=True,
        postgresql_where=sa.text("summary"),
        sqlite_where=sa.text("summary = 1"),
    ),
    sqlite_autoincrement=True,
)

# Operational events waiting to be published (``hookline.store.notices``): written in the transaction
# that changes what they report (a breaker opening, an endpoint disabled, a delivery failed for good),
# turned into events by a worker and deleted in one transaction. No foreign keys: a notice outlives the
# endpoint it is about, and its tenant's deletion only drops the tenant's copy.
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("webhook_id", BigId, nullable=True),  # the endpoint it is about
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("exclude_subject", sa.Boolean, nullable=False),  # never delivered to that endpoint
    sa.Column("created_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)

# ``hookline listen`` (``hookline.store.relay``): one row per relay session, the temporary endpoint it
# delivers to and the connection that holds it now (NULL: none; its deliveries are held meanwhile).
relay_listeners = sa.Table(
    "relay_listeners",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column(
        "endpoint_id", BigId, sa.ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("connection", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("seen_at", UtcDateTime, nullable=False),  # the holder's last sign of life, or when it left
)

# One signed request on its way through a relay session, and the listener's answer: the worker writes
# the request and waits for the answer; the API process holding the session passes it along. Rows live
# for one attempt (the worker deletes its own; housekeeping removes any a dead worker left).
relay_exchanges = sa.Table(
    "relay_exchanges",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("headers", Json, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("deadline", UtcDateTime, nullable=False),
    sa.Column("taken_by", sa.String(64), nullable=True),
    sa.Column("answered_at", UtcDateTime, nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=True),
    sa.Index(None, "token", "id"),
    sqlite_autoincrement=True,
)

# The audit log (``hookline.store.audit_log``): one row per change made through the API or the CLI
# (tenants, keys, webhooks, event types, the secret key) and per secret shown, replay or manual retry;
# written in the transaction that makes the change. Never a secret: ``changes`` holds what changed,
# secret values replaced by a marker. No foreign keys: the log outlives what it is about.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=True),  # NULL: service-wide (event types, secret key)
    sa.Column("actor", sa.String(64), nullable=False),  # an API key's id, "admin", "cli" or "system"
    sa.Column("client_address", sa.String(64), nullable=True),  # NULL: not over HTTP
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource_type", sa.String(32), nullable=False),
    sa.Column("resource_id", sa.String(200), nullable=True),
    sa.Column("changes", Json, nullable=False),
    sa.Index(None, "tenant_id", "id"),
    sa.Index(None, "at"),
    sqlite_autoincrement=True,
)

# Portal links (``hookline.store.portal_links``): a signed URL that opens the dashboard for one tenant
# with some capabilities, for a platform to embed. The URL's token names the row; the row says whether
# it still works (revoked, expired), so the operator can list and revoke links.
portal_links = sa.Table(
    "portal_links",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    sa.Column("capabilities", Json, nullable=False),  # list of names (hookline.store.portal_links)
    sa.Column("theme", Json, nullable=False),  # {"accent"?, "logo_url"?, "mode"?}
    sa.Column("locale", sa.String(16), nullable=True),
    sa.Column("note", sa.String(200), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Index(None, "tenant_id", "created_at"),
)
