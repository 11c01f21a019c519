"""Schema migrations (Alembic), runnable from inside a running event loop."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from hookline.store.engine import Store

_PG_MIGRATION_LOCK = 7_301_001  # advisory lock id: one migrator at a time across processes


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "hookline.store:migrations")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(store: Store) -> None:
    async with store.write() as conn:
        if not store.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


async def current_revision(store: Store) -> str | None:
    async with store.read() as conn:
        return await conn.run_sync(_current)


async def is_up_to_date(store: Store) -> bool:
    return await current_revision(store) == head_revision()
