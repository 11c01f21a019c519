"""delivery statistics: attempt rollups per endpoint and minute, hour or day

``attempt_rollups``: what a stats query reads instead of the attempt log (``hookline.rollups``). Starts
empty: statistics count the attempts recorded from this version on.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "attempt_rollups",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", BIG, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("start", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcomes", JSON, nullable=False),
        sa.Column("codes", JSON, nullable=False),
        sa.Column("latency", JSON, nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_failure_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_attempt_rollups"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_attempt_rollups_endpoint_id_start", "attempt_rollups", ["endpoint_id", "start"])
    op.create_index("ix_attempt_rollups_tenant_id_start", "attempt_rollups", ["tenant_id", "start"])
    op.create_index("ix_attempt_rollups_span_start", "attempt_rollups", ["span", "start"])


def downgrade() -> None:
    op.drop_table("attempt_rollups")
