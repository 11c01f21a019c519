"""Talking to a PostgreSQL server from the tests themselves (not through hookline): create and drop
databases, read rows to check what hookline wrote."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg


async def pg_exec_async(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def pg_exec(url: str, statement: str) -> None:
    asyncio.run(pg_exec_async(url, statement))


def pg_fetch(url: str, query: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())
