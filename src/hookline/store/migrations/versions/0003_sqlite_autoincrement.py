"""ids are never reused: AUTOINCREMENT on SQLite for endpoints, events, deliveries and attempts

Without AUTOINCREMENT SQLite gives a new row the id of the newest deleted one, so a late result (or a
client's stale id) could land on another tenant's row. PostgreSQL sequences never reuse a value: nothing
changes there.

SQLite cannot add AUTOINCREMENT in place; the four tables are rebuilt. Alembic's batch mode would drop
each table while the others still refer to it, and with ``foreign_keys=ON`` (which cannot be switched off
inside the migration's transaction) that drop cascades into the children's rows. So every row is copied
aside first, the tables are dropped children first, created again parents first and filled back, all in
one transaction.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PARENTS_FIRST = ("endpoints", "events", "deliveries", "attempts")
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _tables(autoincrement: bool) -> sa.MetaData:
    """The four tables as they are at this revision (not imported from hookline.store.schema, which
    moves on with later revisions)."""
    md = sa.MetaData(naming_convention=NAMING)
    sa.Table("tenants", md, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table(
        "endpoints",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("channels", sa.JSON, nullable=True),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timeout_ms", sa.Integer, nullable=True),
        sa.Column("retry_schedule", sa.JSON, nullable=True),
        sa.Column("max_in_flight", sa.Integer, nullable=True),
        sa.Column("previous_secrets", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Index(None, "tenant_id", "id"),
        sqlite_autoincrement=autoincrement,
    )
    sa.Table(
        "events",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column(
            "tenant_id", sa.String(64), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("channels", sa.JSON, nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("delivery_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "id"),
        sa.UniqueConstraint("tenant_id", "idempotency_key"),
        sa.Index(None, "tenant_id", "seq"),
        sqlite_autoincrement=autoincrement,
    )
    sa.Table(
        "deliveries",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_seq", sa.Integer, sa.ForeignKey("events.seq", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "endpoint_id", sa.Integer, sa.ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Index("ix_deliveries_due", "next_attempt_at", sqlite_where=sa.text("status = 'pending'")),
        sa.Index(None, "endpoint_id", "id"),
        sa.Index(None, "event_seq"),
        sqlite_autoincrement=autoincrement,
    )
    sa.Table(
        "attempts",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id", sa.Integer, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("endpoint_id", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("request_headers", sa.JSON, nullable=False),
        sa.Index(None, "delivery_id"),
        sqlite_autoincrement=autoincrement,
    )
    return md


def _rebuild(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # Python's sqlite3 opens a transaction only before DML, and runs DDL outside one otherwise: this
    # no-op UPDATE opens it, so the copy, drops and creates below commit or roll back together.
    op.execute("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0")
    md = _tables(autoincrement)
    for name in PARENTS_FIRST:
        op.execute(f"CREATE TABLE _0003_{name} AS SELECT * FROM {name}")  # noqa: S608 (constant names)
    for name in reversed(PARENTS_FIRST):
        op.drop_table(name)
    for name in PARENTS_FIRST:
        md.tables[name].create(bind)
    for name in PARENTS_FIRST:
        columns = ", ".join(column.name for column in md.tables[name].columns)
        op.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM _0003_{name}")  # noqa: S608
        op.execute(f"DROP TABLE _0003_{name}")


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
