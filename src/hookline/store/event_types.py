"""The event-type catalog in the database: the shipped defaults plus operators' custom types.

``EventTypeRegistry`` keeps the catalog in memory for the hot paths (subscription checks, schema
validation at ingest). A name it does not know makes it reload once, at most every second, so a type
added through another process is seen without a restart.
"""

from __future__ import annotations

import time
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.catalog import EventType, load_default_catalog
from hookline.store.engine import Store
from hookline.store.schema import event_types


def _record(row: sa.RowMapping) -> EventType:
    return EventType(
        name=row["name"],
        description=row["description"],
        schema=row["schema"],
        example=row["example"],
        group=row["group_name"],
        source=row["source"],
    )


async def sync_default_catalog(conn: AsyncConnection, now: datetime) -> int:
    """Insert the shipped event types the database does not have yet; returns how many were added."""
    existing = set((await conn.execute(sa.select(event_types.c.name))).scalars())
    missing = [t for t in load_default_catalog() if t.name not in existing]
    if missing:
        await conn.execute(
            event_types.insert(),
            [
                {
                    "name": t.name,
                    "description": t.description,
                    "group_name": t.group,
                    "source": t.source,
                    "schema": t.schema,
                    "example": t.example,
                    "created_at": now,
                }
                for t in missing
            ],
        )
    return len(missing)


async def insert_event_type(conn: AsyncConnection, event_type: EventType, now: datetime) -> None:
    await conn.execute(
        event_types.insert().values(
            name=event_type.name,
            description=event_type.description,
            group_name=event_type.group,
            source=event_type.source,
            schema=event_type.schema,
            example=event_type.example,
            created_at=now,
        )
    )


async def all_event_types(conn: AsyncConnection) -> list[EventType]:
    rows = (await conn.execute(event_types.select().order_by(event_types.c.name))).mappings()
    return [_record(row) for row in rows]


class EventTypeRegistry:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._types: dict[str, EventType] = {}
        self._loaded_at = 0.0

    async def reload(self) -> None:
        async with self._store.read() as conn:
            self._types = {t.name: t for t in await all_event_types(conn)}
        self._loaded_at = time.monotonic()

    async def _ensure_fresh(self, name: str | None = None) -> None:
        stale = time.monotonic() - self._loaded_at > 1.0
        if not self._loaded_at or (stale and (name is None or name not in self._types)):
            await self.reload()

    async def get(self, name: str) -> EventType | None:
        if name not in self._types:
            await self._ensure_fresh(name)
        return self._types.get(name)

    async def names(self) -> list[str]:
        await self._ensure_fresh()
        return sorted(self._types)

    async def all(self) -> list[EventType]:
        await self._ensure_fresh()
        return [self._types[n] for n in sorted(self._types)]

    def add(self, event_type: EventType) -> None:
        self._types[event_type.name] = event_type
