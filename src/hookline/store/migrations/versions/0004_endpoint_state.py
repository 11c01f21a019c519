"""endpoint state for the scheduler, wakes, leases in their own column, per-endpoint limits

* ``endpoint_state``: one row per endpoint (breaker, rate limit, holds, health, verification), with
  ``due_at`` computed from it and indexed: the claim reads endpoints in that order.
* ``endpoint_wakes``: new work announced in the transaction that creates it.
* ``deliveries.lease_until``: a claim no longer rewrites the indexed ``next_attempt_at``; the due index
  becomes per endpoint, (endpoint_id, next_attempt_at, id) over pending rows.
* ``endpoints.rate_limit`` and ``endpoints.circuit_breaker``: per-endpoint settings.

Every existing endpoint gets its row with work to look for now (its pending deliveries are found by the
first claim); a disabled one's deliveries are held.

Revision ID: 0004
Revises: 0003
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
DUE_AT = (
    "CASE WHEN hold IS NULL AND work_at IS NOT NULL THEN"
    " CASE WHEN blocked_until > work_at THEN blocked_until ELSE work_at END END"
)


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("circuit_breaker", JSON, nullable=True))
    op.add_column("deliveries", sa.Column("lease_until", TS, nullable=True))
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index(
        "ix_deliveries_endpoint_due",
        "deliveries",
        ["endpoint_id", "next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "endpoint_state",
        sa.Column("endpoint_id", BIG, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("work_at", TS, nullable=True),
        sa.Column("blocked_until", TS, nullable=True),
        sa.Column("hold", sa.String(16), nullable=True),
        sa.Column("due_at", TS, sa.Computed(DUE_AT, persisted=True), nullable=True),
        sa.Column("breaker_state", sa.String(16), nullable=False, server_default="closed"),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("window_started_at", TS, nullable=True),
        sa.Column("window_requests", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("window_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("next_probe_at", TS, nullable=True),
        sa.Column("open_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("limiter_tat", TS, nullable=True),
        sa.Column("paused_until", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("failing_since", TS, nullable=True),
        sa.Column("verification", sa.String(16), nullable=False, server_default="not_required"),
        sa.Column("verification_error", sa.Text(), nullable=True),
        sa.Column("verified_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_endpoint_state_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint_id", name="pk_endpoint_state"),
    )
    op.create_index(
        "ix_endpoint_state_due",
        "endpoint_state",
        ["due_at"],
        postgresql_where=sa.text("due_at IS NOT NULL"),
        sqlite_where=sa.text("due_at IS NOT NULL"),
    )
    op.create_index("ix_endpoint_state_tenant_id_endpoint_id", "endpoint_state", ["tenant_id", "endpoint_id"])
    op.create_table(
        "endpoint_wakes",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", BIG, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_endpoint_wakes"),
        sqlite_autoincrement=True,
    )
    bind = op.get_bind()
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as hookline's UtcDateTime stores it on SQLite
    bind.execute(
        sa.text(
            "INSERT INTO endpoint_state (endpoint_id, tenant_id, work_at, hold, updated_at)"
            " SELECT id, tenant_id, :now, CASE WHEN active THEN NULL ELSE 'disabled' END, :now FROM endpoints"
        ).bindparams(sa.bindparam("now", type_=TS)),
        {"now": now},
    )


def downgrade() -> None:
    op.drop_table("endpoint_wakes")
    op.drop_index("ix_endpoint_state_tenant_id_endpoint_id", table_name="endpoint_state")
    op.drop_index("ix_endpoint_state_due", table_name="endpoint_state")
    op.drop_table("endpoint_state")
    op.drop_index("ix_deliveries_endpoint_due", table_name="deliveries")
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("circuit_breaker")
        batch_op.drop_column("rate_limit")
