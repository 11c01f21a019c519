"""retention: pruned payloads and attempts, and a tenant's own retention period

``tenants.retention_seconds``: how long the tenant's payloads and attempts are kept (NULL: the service's
``HOOKLINE_RETENTION``). ``deliveries.pruned_at``: the delivery's attempts were deleted, its row stays as
a summary. ``events.pruned_at``: the payload was removed (emptied). Two partial indexes let retention walk
a tenant's events oldest first, those with a payload and those without, apart.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Nullable columns without a default: both backends add them without rewriting the table.
    op.add_column("tenants", sa.Column("retention_seconds", sa.Integer(), nullable=True))
    op.add_column("deliveries", sa.Column("pruned_at", TS, nullable=True))
    op.add_column("events", sa.Column("pruned_at", TS, nullable=True))
    for name, where in (
        ("ix_events_unpruned", "pruned_at IS NULL"),
        ("ix_events_pruned", "pruned_at IS NOT NULL"),
    ):
        op.create_index(
            name,
            "events",
            ["tenant_id", "created_at", "seq"],
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    op.drop_index("ix_events_pruned", table_name="events")
    op.drop_index("ix_events_unpruned", table_name="events")
    for table in ("events", "deliveries", "tenants"):
        column = "retention_seconds" if table == "tenants" else "pruned_at"
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column)
