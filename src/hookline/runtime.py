"""Starting a hookline process: open the store, check or apply the schema, prepare shared services."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from hookline.api.services import Services
from hookline.config import Settings
from hookline.store import migrate
from hookline.store.engine import Store
from hookline.store.event_types import EventTypeRegistry, sync_default_catalog
from hookline.store.meta import ensure_admin_key_hash
from hookline.store.tenants import hash_key


class SchemaOutOfDate(RuntimeError):
    pass


async def _prepare(store: Store, settings: Settings) -> tuple[str, str | None]:
    """Sync the shipped catalog and find (or create) the admin key. Several processes may start at
    once against one PostgreSQL: the one that loses the insert race simply reads what the winner wrote."""
    for attempt in range(3):
        try:
            now = datetime.now(UTC)
            async with store.write() as conn:
                await sync_default_catalog(conn, now)
                if settings.admin_key:
                    return hash_key(settings.admin_key), None
                return await ensure_admin_key_hash(conn, now)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def open_services(settings: Settings, *, auto_migrate: bool) -> tuple[Services, str | None]:
    """Returns the services and, on the very first start without HOOKLINE_ADMIN_KEY, the new admin key
    (to be printed once)."""
    store = Store.from_url(settings.effective_database_url)
    try:
        if auto_migrate:
            await migrate.upgrade(store)
        elif not await migrate.is_up_to_date(store):
            raise SchemaOutOfDate("the database schema is not up to date: run `hookline migrate` first")
        admin_hash, new_key = await _prepare(store, settings)
        registry = EventTypeRegistry(store)
        await registry.reload()
    except BaseException:
        await store.close()
        raise
    return Services(settings=settings, store=store, registry=registry, admin_key_hash=admin_hash), new_key
