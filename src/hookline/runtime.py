"""Starting a hookline process: open the store, check or apply the schema, prepare shared services."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import IntegrityError

from hookline.api.services import Services
from hookline.config import Settings
from hookline.secret_key import load_keyring
from hookline.store import credentials, migrate
from hookline.store.engine import Store
from hookline.store.event_types import EventTypeRegistry, sync_default_catalog
from hookline.store.meta import ADMIN_KEY_HASH, ensure_admin_key_hash, get_value
from hookline.store.tenants import hash_key


class SchemaOutOfDate(RuntimeError):
    pass


log = structlog.get_logger("hookline")


def open_store(settings: Settings, *, sealing: bool = False, role: str = "") -> Store:
    """The store the settings name. Only the default data directory is created on the way; the
    directory of an explicit ``sqlite:///`` URL must exist (a typo must not create a tree of folders).
    ``sealing``: with the keys that seal credentials (``hookline.secret_key``; raises
    ``MissingSecretKey`` without them), for the commands that read or write endpoints. ``role``: the
    process's role, which PostgreSQL shows as its connections' ``application_name``."""
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.from_url(settings.effective_database_url, role=role)
    if sealing:
        store.keyring = load_keyring(settings)  # nothing is connected yet: no engine to dispose of
    return store


async def seal_plaintext(store: Store) -> None:
    """Seal the credentials an older version stored in clear (after a schema upgrade)."""
    done = await credentials.reseal(store, plaintext_only=True)
    if done.values:
        log.info("sealed the secrets stored in clear", values=done.values, endpoints=done.rows)
    if not done.complete:
        log.warning(
            "some stored secrets are still in clear; `hookline migrate` seals them",
            changing=done.left,
            unreadable=sum(done.unreadable.values()),
        )


async def _prepare(store: Store, settings: Settings, *, create_admin_key: bool) -> tuple[str, str | None]:
    """Sync the shipped catalog and find (or, with ``create_admin_key``, create) the admin key. Several
    processes may start at once against one PostgreSQL: the one that loses the insert race simply reads
    what the winner wrote. Only a role that can print the new key creates it (the API, ``migrate``): a
    worker started first must not make a key that nobody ever sees."""
    for attempt in range(3):
        try:
            now = datetime.now(UTC)
            async with store.write() as conn:
                await sync_default_catalog(conn, now)
                if settings.admin_key:
                    return hash_key(settings.admin_key), None
                if not create_admin_key:
                    return await get_value(conn, ADMIN_KEY_HASH) or "", None
                return await ensure_admin_key_hash(conn, now)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def open_services(
    settings: Settings, *, auto_migrate: bool, create_admin_key: bool = True, role: str = ""
) -> tuple[Services, str | None]:
    """Returns the services and, on the very first start without HOOKLINE_ADMIN_KEY, the new admin key
    (to be printed once; only with ``create_admin_key``, else the services hold whatever is stored, or
    no admin key at all: "" matches no key's hash). Raises ``hookline.secret_key.MissingSecretKey``
    without a secret key and ``hookline.store.credentials.WrongSecretKey`` with one that cannot open
    the stored secrets."""
    store = open_store(settings, sealing=True, role=role)
    try:
        if auto_migrate:
            await migrate.upgrade(store)
        elif not await migrate.is_up_to_date(store):
            raise SchemaOutOfDate("the database schema is not up to date: run `hookline migrate` first")
        await credentials.check_key(store, datetime.now(UTC))
        if auto_migrate:
            await seal_plaintext(store)
        admin_hash, new_key = await _prepare(store, settings, create_admin_key=create_admin_key)
        registry = EventTypeRegistry(store)
        await registry.reload()
    except BaseException:
        await store.close()
        raise
    return Services(settings=settings, store=store, registry=registry, admin_key_hash=admin_hash), new_key
