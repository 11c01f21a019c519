"""relay sessions for ``hookline listen``

``relay_listeners``: a session's temporary endpoint and the connection holding it.
``relay_exchanges``: a signed request passed through a session, and the listener's answer.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "relay_listeners",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("endpoint_id", BIG, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connection", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_relay_listeners_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token", name="pk_relay_listeners"),
        sa.UniqueConstraint("endpoint_id", name="uq_relay_listeners_endpoint_id"),
    )
    op.create_table(
        "relay_exchanges",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("taken_by", sa.String(64), nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_relay_exchanges"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_relay_exchanges_token_id", "relay_exchanges", ["token", "id"])


def downgrade() -> None:
    op.drop_index("ix_relay_exchanges_token_id", table_name="relay_exchanges")
    op.drop_table("relay_exchanges")
    op.drop_table("relay_listeners")
