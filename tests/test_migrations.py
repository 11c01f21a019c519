"""The Alembic migrations produce exactly the schema of hookline.store.schema, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from hookline.store import migrate
from hookline.store.engine import Store
from hookline.store.schema import metadata


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store.from_url(database_url)
    try:
        yield store
    finally:
        await store.close()


def _schema_diff(connection: Connection) -> list[Any]:
    # compare_type is on (alembic's default): column types must match, not only names and nullability.
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diff: list[Any] = compare_metadata(context, metadata)
    return diff


def _schema_snapshot(connection: Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    return {
        table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(table)
            ),
            "unique": sorted(u["name"] or "" for u in inspector.get_unique_constraints(table)),
        }
        for table in sorted(inspector.get_table_names())
    }


async def test_current_revision_is_head(store: Store) -> None:
    assert await migrate.current_revision(store) == migrate.head_revision()
    assert await migrate.is_up_to_date(store)


async def test_migrated_schema_matches_the_metadata(store: Store) -> None:
    async with store.read() as conn:
        diff = await conn.run_sync(_schema_diff)
    assert diff == []


async def test_upgrade_again_is_a_no_op(store: Store) -> None:
    async with store.read() as conn:
        before = await conn.run_sync(_schema_snapshot)
        catalog = (await conn.execute(sa.text("SELECT count(*) FROM event_types"))).scalar_one()
    assert catalog > 0
    await migrate.upgrade(store)
    await migrate.upgrade(store)
    assert await migrate.current_revision(store) == migrate.head_revision()
    async with store.read() as conn:
        assert await conn.run_sync(_schema_snapshot) == before
        assert (await conn.execute(sa.text("SELECT count(*) FROM event_types"))).scalar_one() == catalog


async def test_an_empty_database_is_not_up_to_date(tmp_path: Any) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert await migrate.current_revision(store) is None
        assert not await migrate.is_up_to_date(store)
        await migrate.upgrade(store)
        assert await migrate.is_up_to_date(store)
        async with store.read() as conn:
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await store.close()
