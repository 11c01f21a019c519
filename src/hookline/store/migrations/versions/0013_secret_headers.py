"""secret headers: custom header values that are credentials, kept sealed

``endpoints.secret_headers``: ``{name: sealed value}``, sent with every delivery like ``headers`` but
never shown. Sealing the signing secrets already stored (plaintext before this release) is not a schema
change: ``hookline migrate`` (and ``serve``'s automatic migration) does it after the schema's upgrade,
with the key it is given (``hookline.store.credentials``).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # A constant default: both backends add the column without rewriting the table.
    op.add_column(
        "endpoints", sa.Column("secret_headers", JSON, nullable=False, server_default=sa.text("'{}'"))
    )


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("secret_headers")
