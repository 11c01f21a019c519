"""Connecting to the database: SQLite (embedded default) or PostgreSQL, behind one small Store object."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hookline.sealing import Keyring

log = structlog.get_logger("hookline.store")

WAKE_CHANNEL = "hookline_work"  # PostgreSQL NOTIFY channel the workers LISTEN on

# What a failing database raises: through SQLAlchemy, or from asyncpg on ``driver_connection``.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.SQLAlchemyError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def async_url(url: str) -> sa.URL:
    """Map the user-facing URL (``sqlite:///x.db``, ``postgresql://...``) to its async driver."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def _prepare_sqlite(url: sa.URL) -> None:
    """The database file may be new, its directory not: ``sqlite:////typo/dir/x.db`` is an error naming
    the directory, not a tree of folders created on the way (``runtime.open_store`` creates the default
    data directory)."""
    if url.database and url.database != ":memory:":
        directory = Path(url.database).expanduser().parent
        if not directory.is_dir():
            raise FileNotFoundError(
                f"the directory of the SQLite database does not exist: {directory} (create it, or fix "
                "HOOKLINE_DATABASE_URL)"
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; FULL makes each commit durable before the API answers.
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class Store:
    """The engine plus the few rules that differ between SQLite and PostgreSQL.

    ``write()`` opens a transaction. On SQLite, writes in this process take turns on an asyncio lock:
    SQLite allows one writer at a time anyway, and waiting here is cheaper than retrying a busy database.

    ``keyring`` seals and opens the credentials the store keeps (``hookline.sealing``); a store opened
    for a job that never touches them (``migrate``'s schema step, ``prune``) holds an empty one, which
    refuses to seal or open anything.
    """

    def __init__(self, engine: AsyncEngine, keyring: Keyring | None = None) -> None:
        self.engine = engine
        self.keyring = keyring if keyring is not None else Keyring()
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._work_listeners: list[Callable[[], None]] = []
        self._notifier: asyncio.Task[None] | None = None
        self._notify_again = False

    def on_new_work(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` in this process whenever new deliveries become due (an in-process wake-up;
        other processes hear about it through PostgreSQL NOTIFY)."""
        self._work_listeners.append(callback)

    def announce_new_work(self) -> None:
        """Call after committing new due deliveries. Wakes this process's workers at once and, on
        PostgreSQL, the others through NOTIFY. The NOTIFY is sent after the commit, not inside it:
        PostgreSQL serialises the commits of notifying transactions, which would cap ingest. Bursts
        coalesce: while one NOTIFY is on its way, later announcements ask for just one more."""
        for callback in self._work_listeners:
            callback()
        if self.is_sqlite:
            return
        if self._notifier is not None and not self._notifier.done():
            self._notify_again = True
            return
        self._notifier = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        while True:
            self._notify_again = False
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})
                    await conn.commit()
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                # The workers' safety-net poll still finds the work; nothing is lost.
                log.warning("could not notify workers", error=type(exc).__name__)
                return
            if not self._notify_again:
                return

    @classmethod
    def from_url(
        cls, url: str, keyring: Keyring | None = None, *, role: str = "", **engine_options: Any
    ) -> Store:
        """``role`` names the process to PostgreSQL (``application_name`` "hookline api", "hookline
        worker", ...), so ``pg_stat_activity`` and the server's logs tell which process a connection
        serves."""
        target = async_url(url)
        if target.get_backend_name() == "sqlite":
            _prepare_sqlite(target)
            engine = create_async_engine(target, **engine_options)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # No pre-ping (a round trip per checkout): a connection broken by a restart fails once, is
            # discarded with the rest of the pool, and that request answers 503.
            # No JIT: every statement here is short, and with a large queue the planner's estimates
            # pass jit_above_cost, when compiling takes ~20 ms for a claim that runs in ~3 ms (measured
            # with a backlog of 1,000,000).
            options = {
                "pool_size": 10,
                "max_overflow": 10,
                "connect_args": {
                    "server_settings": {"jit": "off", "application_name": f"hookline {role}".strip()}
                },
                **engine_options,
            }
            engine = create_async_engine(target, **options)
        return cls(engine, keyring)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        if self._notifier is not None:
            await asyncio.gather(self._notifier, return_exceptions=True)
        await self.engine.dispose()


@asynccontextmanager
async def driver_connection(store: Store) -> AsyncIterator[asyncpg.Connection]:
    """A pooled PostgreSQL connection as asyncpg itself, for the few statements that are too hot for
    SQLAlchemy's per-execution overhead. It is in autocommit mode (use ``conn.transaction()`` for more
    than one statement). A connection that failed is discarded, not returned to the pool."""
    async with store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        try:
            yield driver
        except BaseException as exc:
            if not isinstance(exc, asyncpg.PostgresError) or driver.is_closed():
                await conn.invalidate()  # broken, or interrupted mid-statement
            raise
