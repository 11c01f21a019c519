"""ed25519 signing: an endpoint's Standard Webhooks v1a key

``endpoints.signing_key``: the ``whsk_...`` ed25519 signing key of an endpoint that signs its deliveries
with ``v1a`` too (NULL: HMAC only). A rotation keeps the replaced key in ``previous_secrets`` beside the
replaced secret, so that column needs no change.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: both backends add it without rewriting the table.
    op.add_column("endpoints", sa.Column("signing_key", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("signing_key")
