"""The database schema, in SQLAlchemy Core, shared by SQLite and PostgreSQL.

The queue is the ``deliveries`` table itself: one row per (event, endpoint), due when
``status = 'pending' AND next_attempt_at <= now``. A worker claims a row by pushing ``next_attempt_at``
forward by its lease, so a crashed worker's rows simply become due again when the lease runs out.

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
    # Secrets still valid during a rotation's grace period: [{"secret": ..., "expires_at": iso}].
    sa.Column("previous_secrets", Json, nullable=False, server_default=sa.text("'[]'")),
    sa.Index(None, "tenant_id", "id"),
    sqlite_autoincrement=True,
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
    sa.UniqueConstraint("tenant_id", "id"),
    sa.UniqueConstraint("tenant_id", "idempotency_key"),
    sa.Index(None, "tenant_id", "seq"),
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
    # pending -> succeeded | failed; a claimed row stays pending with next_attempt_at = lease expiry.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("leased_by", sa.String(64), nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Index(
        "ix_deliveries_due",
        "next_attempt_at",
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
