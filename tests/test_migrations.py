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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """A database with no schema at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    from tests.conftest import throwaway_pg_database

    with throwaway_pg_database("hookline_upgrade") as url:
        yield url


def _upgrade_to(connection: Connection, revision: str) -> None:
    from alembic import command

    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


_OLD_ENDPOINT = sa.text(
    "INSERT INTO endpoints (tenant_id, url, description, secret, events, headers, metadata, active,"
    " created_at, updated_at) VALUES ('t', 'https://example.com/', '', 's', '[\"*\"]', '{}', '{}', :active,"
    " :now, :now)"
).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))


async def test_upgrading_to_0004_gives_every_endpoint_its_scheduler_row(empty_url: str) -> None:
    """A database with endpoints from before the scheduler: each gets its state row, with work to look
    for (its pending deliveries are found by the first claim), and a disabled one holds its deliveries."""
    from datetime import UTC, datetime

    store = Store.from_url(empty_url)
    now = datetime.now(UTC)
    stamp = now.replace(tzinfo=None) if store.is_sqlite else now
    try:
        async with store.write() as conn:
            await conn.run_sync(_upgrade_to, "0003")
            await conn.execute(
                sa.text("INSERT INTO tenants VALUES ('t', 't', '{}', :now, :now)").bindparams(
                    sa.bindparam("now", type_=sa.DateTime(timezone=True))
                ),
                {"now": stamp},
            )
            for active in (True, False):
                await conn.execute(_OLD_ENDPOINT, {"active": active, "now": stamp})
            await conn.run_sync(_upgrade_to, "head")
        async with store.read() as conn:
            query = sa.text(
                "SELECT endpoint_id, tenant_id, hold, work_at IS NOT NULL, due_at IS NOT NULL"
                " FROM endpoint_state ORDER BY endpoint_id"
            )
            rows = [tuple(r) for r in await conn.execute(query)]
    finally:
        await store.close()
    assert rows == [(1, "t", None, True, True), (2, "t", "disabled", True, False)]


async def test_upgrading_to_0007_makes_the_old_rollups_batches_that_compaction_adds_to_the_levels(
    empty_url: str,
) -> None:
    """Rollups written before the levels (every attempt in one row: a minute, an hour or a day) are
    batches' rows after the upgrade, and the first compaction adds each to its own level and the coarser
    ones: each level then answers for the periods it keeps."""
    from datetime import UTC, datetime, timedelta

    from hookline.rollups import DAY, HOUR, MINUTE, Rollup, span_start
    from hookline.store import rollups as rollup_rows

    store = Store.from_url(empty_url)
    now = datetime.now(UTC)
    stamp = now.replace(tzinfo=None) if store.is_sqlite else now
    old = []
    for span, age in ((DAY, timedelta(days=10)), (HOUR, timedelta(days=2)), (MINUTE, timedelta(minutes=30))):
        row = Rollup(1, "t", span, span_start(now - age, span))
        row.add_attempt(
            started_at=row.start, duration_ms=span // 60, status_code=200, failure=None, final=None
        )
        old.append(row)
    try:
        async with store.write() as conn:
            await conn.run_sync(_upgrade_to, "0003")
            await conn.execute(
                sa.text("INSERT INTO tenants VALUES ('t', 't', '{}', :now, :now)").bindparams(
                    sa.bindparam("now", type_=sa.DateTime(timezone=True))
                ),
                {"now": stamp},
            )
            await conn.execute(_OLD_ENDPOINT, {"active": True, "now": stamp})
            await conn.run_sync(_upgrade_to, "0006")
            await rollup_rows.append(conn, old)
            await conn.run_sync(_upgrade_to, "head")
        await rollup_rows.compact(store, now, retention=timedelta(days=90))
        found = {}
        async with store.read() as conn:
            for bucket, window in (
                (DAY, timedelta(days=30)),
                (HOUR, timedelta(days=3)),
                (MINUTE, timedelta(hours=3)),
            ):
                since = span_start(now - window, bucket)
                rows = await rollup_rows.read(
                    conn, since=since, until=now + timedelta(days=1), bucket=bucket, tenant_id=None
                )
                found[bucket] = sorted((r.span, r.attempts, r.duration_ms) for r in rows)
    finally:
        await store.close()
    assert found == {
        DAY: [(DAY, 1, 1), (DAY, 1, 60), (DAY, 1, 1440)],
        HOUR: [(HOUR, 1, 1), (HOUR, 1, 60)],
        MINUTE: [(MINUTE, 1, 1)],
    }


async def test_keys_made_before_scopes_keep_what_they_could_do(empty_url: str) -> None:
    """A key from before 0011 gets the tenant:manage scope and no limits: it works as it did."""
    from datetime import UTC, datetime

    from hookline.store.tenants import hash_key, key_for_hash

    store = Store.from_url(empty_url)
    now = datetime.now(UTC)
    stamp = now.replace(tzinfo=None) if store.is_sqlite else now
    when = sa.bindparam("now", type_=sa.DateTime(timezone=True))
    try:
        async with store.write() as conn:
            await conn.run_sync(_upgrade_to, "0010")
            await conn.execute(
                sa.text("INSERT INTO tenants VALUES ('t', 't', '{}', :now, :now, NULL)").bindparams(when),
                {"now": stamp},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at)"
                    " VALUES ('key_old', 't', 'old', 'hk_old', :hash, :now)"
                ).bindparams(when),
                {"hash": hash_key("hk_old_key"), "now": stamp},
            )
            await conn.run_sync(_upgrade_to, "head")
        async with store.read() as conn:
            key = await key_for_hash(conn, hash_key("hk_old_key"))
    finally:
        await store.close()
    assert key is not None and key.id == "key_old"
    assert (key.scopes, key.expires_at, key.allowed_ips, key.rate_limit, key.last_used_at) == (
        ("tenant:manage",),
        None,
        None,
        None,
        None,
    )


async def test_a_schema_ahead_of_the_code_is_usable_and_one_behind_is_not(store: Store) -> None:
    """A rolling upgrade: the next release has migrated (a revision this code does not know), and this
    release keeps starting and stays ready; a database an older revision left is refused."""
    assert await migrate.schema_state(store) == "current"

    async def stamp(revision: str) -> None:
        async with store.write() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})

    try:
        await stamp("from_a_newer_release")
        assert await migrate.schema_state(store) == "ahead"
        assert await migrate.is_up_to_date(store)
        await stamp(sorted(migrate.known_revisions() - {migrate.head_revision()})[0])
        assert await migrate.schema_state(store) == "behind"
        assert not await migrate.is_up_to_date(store)
    finally:  # the database is shared with the tests after this one
        await stamp(migrate.head_revision())
