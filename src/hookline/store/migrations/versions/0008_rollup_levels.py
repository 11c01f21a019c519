"""delivery statistics: rollups kept per level (minute, hour, day) beside the batches' rows

``attempt_rollups.summary``: false for a row a batch appended, true for a level's summary that
compaction writes. The rows already there become batches' rows (their spans as they are), so the first
compaction after the upgrade adds each into the summaries of its level and the coarser ones.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL and SQLite add the column without rewriting the table.
    op.add_column(
        "attempt_rollups", sa.Column("summary", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.drop_index("ix_attempt_rollups_span_start", table_name="attempt_rollups")
    op.create_index("ix_attempt_rollups_summary_span_start", "attempt_rollups", ["summary", "span", "start"])
    op.create_index(
        "ix_attempt_rollups_summaries",
        "attempt_rollups",
        ["endpoint_id", "span", "start"],
        unique=True,
        postgresql_where=sa.text("summary"),
        sqlite_where=sa.text("summary = 1"),
    )


def downgrade() -> None:
    # Back to "every attempt in exactly one row": the day summaries and the batches' rows not added to
    # them yet. Exact totals; the last days' finer buckets are lost (a day is one row again).
    op.execute("DELETE FROM attempt_rollups WHERE summary AND span <> 86400")
    op.drop_index("ix_attempt_rollups_summaries", table_name="attempt_rollups")
    op.drop_index("ix_attempt_rollups_summary_span_start", table_name="attempt_rollups")
    op.create_index("ix_attempt_rollups_span_start", "attempt_rollups", ["span", "start"])
    with op.batch_alter_table("attempt_rollups", schema=None) as batch_op:
        batch_op.drop_column("summary")
