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


# --- the server's own CPU -----------------------------------------------------------------------------------


def _own_cpu(pid: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of one process, in seconds; zeros when it is gone."""
    from bench.procs import cpu_times

    return cpu_times(f"/proc/{pid}/stat")


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() in ("postgres", "postmaster")
    except OSError:
        return False


def _parent(pid: int) -> int | None:
    from bench.procs import stat_fields

    fields = stat_fields(f"/proc/{pid}/stat")
    return int(fields[1]) if fields is not None else None


class ServerCpu:
    """CPU time of the local PostgreSQL server, read from ``/proc`` (the server must run on this machine):
    every process of it, split by who it worked for. A connection counts for the role its
    ``application_name`` names ("hookline api", "hookline worker", ...); background processes (WAL writer,
    checkpointer, autovacuum) and connections that ended in the window (their time lands in the
    postmaster's children's time) count as "server". ``snapshot()`` before, ``since(before)`` after."""

    def __init__(self, url: str = SERVER_URL) -> None:
        self.url = url
        rows = query(url, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
        self.postmaster: int | None = None
        if rows and _is_postgres(pid := int(rows[0]["pid"])):  # else: the server is not on this machine
            self.postmaster = _parent(pid)

    @property
    def local(self) -> bool:
        """Whether the server runs on this machine, so that its processes can be read."""
        return self.postmaster is not None

    def snapshot(self) -> dict[int, tuple[str, float]]:
        """pid -> (role, CPU seconds so far); the postmaster (with its ended children) as pid 0."""
        rows = query(self.url, "SELECT pid, application_name, backend_type FROM pg_stat_activity")
        found: dict[int, tuple[str, float]] = {}
        for row in rows:
            name = str(row["application_name"] or "")
            role = name.removeprefix("hookline ") if name.startswith("hookline ") else "server"
            found[int(row["pid"])] = (role, _own_cpu(int(row["pid"]))[0])
        if self.postmaster is not None:
            own, children = _own_cpu(self.postmaster)
            found[0] = ("server", own + children)
        return found

    def since(self, before: dict[int, tuple[str, float]]) -> dict[str, float]:
        """CPU seconds per role since ``before``. A process gone since then had its whole life's time
        added to the postmaster's; what it had used before the window is taken off again."""
        after = self.snapshot()
        spent: dict[str, float] = {}
        for pid, (role, seconds) in after.items():
            spent[role] = spent.get(role, 0.0) + seconds - before.get(pid, (role, 0.0))[1]
        gone = sum(seconds for pid, (_role, seconds) in before.items() if pid not in after)
        spent["server"] = spent.get("server", 0.0) - gone
        return spent
