"""API keys with scopes and limits

``api_keys.scopes``: what the key may do, scope names separated by spaces; every existing key gets
``tenant:manage``, which is what it could do before. ``expires_at``, ``allowed_ips`` (CIDR strings),
``rate_limit`` (requests per second): optional limits. ``last_used_at``: when it was last used, to
within a minute.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
COLUMNS = ("last_used_at", "rate_limit", "allowed_ips", "expires_at", "scopes")


def upgrade() -> None:
    # A constant default and nullable columns: both backends add them without rewriting the table.
    op.add_column(
        "api_keys", sa.Column("scopes", sa.String(200), nullable=False, server_default="tenant:manage")
    )
    op.add_column("api_keys", sa.Column("expires_at", TS, nullable=True))
    op.add_column("api_keys", sa.Column("allowed_ips", JSON, nullable=True))
    op.add_column("api_keys", sa.Column("rate_limit", sa.Float(), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.drop_column(column)
