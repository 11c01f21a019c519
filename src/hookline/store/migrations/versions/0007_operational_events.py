"""operational events: the notices outbox and the failure-rate alert's state

``notices``: operational events raised with the state change they report, published by a worker.
``endpoint_state``: the failure-rate alert's window (``alert_window_*``) and when it was raised.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("webhook_id", BIG, nullable=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("exclude_subject", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
        sqlite_autoincrement=True,
    )
    # Constant defaults: both databases add these columns without rewriting the table.
    op.add_column("endpoint_state", sa.Column("alert_window_started_at", TS, nullable=True))
    op.add_column(
        "endpoint_state",
        sa.Column("alert_window_requests", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "endpoint_state",
        sa.Column("alert_window_failures", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("endpoint_state", sa.Column("failing_alerted_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoint_state", schema=None) as batch_op:
        for name in (
            "failing_alerted_at",
            "alert_window_failures",
            "alert_window_requests",
            "alert_window_started_at",
        ):
            batch_op.drop_column(name)
    op.drop_table("notices")
