"""Throwaway PostgreSQL databases on the local server: created per deployment, dropped at exit.

The server is ``BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``). Database names
start with ``hookline_bench_`` so a leftover from a killed run is easy to recognise.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa

SERVER_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


async def _run(url: str, sql: str, args: Sequence[Any] = ()) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on ``url`` and return its rows (a fresh connection: simple, not fast)."""
    return asyncio.run(_run(url, sql, args))


def available(url: str = SERVER_URL) -> str | None:
    """None when the server answers, else why not."""
    try:
        query(url, "SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def server_version(url: str = SERVER_URL) -> str:
    return str(query(url, "SHOW server_version")[0][0])


class Databases:
    """The throwaway databases of one run."""

    def __init__(self, server_url: str = SERVER_URL) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    def create(self, label: str) -> str:
        name = f"hookline_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
        query(self.server_url, f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return _with_database(self.server_url, name)

    def drop(self, url: str) -> None:
        name = sa.make_url(url).database
        assert name is not None
        query(self.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            try:
                self.drop(_with_database(self.server_url, name))
            except Exception as exc:
                print(f"bench: could not drop database {name}: {exc}", flush=True)
