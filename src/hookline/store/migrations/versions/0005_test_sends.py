"""test sends: a delivery made by ``POST /v1/webhooks/{id}/test`` is marked as one

``deliveries.test``: false for every delivery of an ingested event. A test send's delivery is written
already finished, with its one attempt; replays leave it out and it is never retried.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL and SQLite add the column without rewriting the table.
    op.add_column("deliveries", sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("test")
