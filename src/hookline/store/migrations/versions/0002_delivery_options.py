"""per-endpoint delivery options and secret rotation

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timeout_ms", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("retry_schedule", JSON, nullable=True))
        batch_op.add_column(sa.Column("max_in_flight", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("previous_secrets", JSON, nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secrets")
        batch_op.drop_column("max_in_flight")
        batch_op.drop_column("retry_schedule")
        batch_op.drop_column("timeout_ms")
