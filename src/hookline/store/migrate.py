"""Schema migrations (Alembic), runnable from inside a running event loop."""

from __future__ import annotations

import functools
from typing import Literal

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


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this code's migration scripts know (read once)."""
    return frozenset(s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions())


async def schema_state(store: Store) -> Literal["current", "ahead", "behind"]:
    """Where the database's schema stands for this code: at its head; *ahead*, migrated by a newer
    release (a revision this code does not know); or *behind*, not yet migrated (or empty)."""
    revision = await current_revision(store)
    if revision == head_revision():
        return "current"
    if revision is None or revision in known_revisions():
        return "behind"
    return "ahead"


async def is_up_to_date(store: Store) -> bool:
    """Whether this code can run on the schema: current, or ahead (migrations only ever add: a release
    keeps working while the next one's migration is applied, as a rolling upgrade needs)."""
    return await schema_state(store) != "behind"
