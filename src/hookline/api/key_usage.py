"""When each tenant key was last used (``last_used_at`` in the key listing), recorded cheaply.

A request only notes the time in this process's memory (one dict assignment); every ``FLUSH_EVERY``
seconds the API process writes what it noted, one statement for all the keys used meanwhile, and once
more when it stops. So a key costs at most one write a minute per API process, never one per request,
and ``last_used_at`` is at most a minute (plus the key cache's few seconds) behind. The write never
moves a key's time back, whichever process writes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import structlog

from hookline.store.engine import Store
from hookline.store.tenants import record_key_use

FLUSH_EVERY = 60.0  # seconds

log = structlog.get_logger("hookline.api")


class KeyUsage:
    def __init__(self) -> None:
        self._noted: dict[str, float] = {}  # key id -> the latest use, in seconds since the epoch

    def note(self, key_id: str) -> None:
        self._noted[key_id] = time.time()

    async def flush(self, store: Store) -> None:
        """Write what was noted since the last flush (kept for the next one if the write fails)."""
        noted, self._noted = self._noted, {}
        if not noted:
            return
        used = {key_id: datetime.fromtimestamp(at, UTC) for key_id, at in noted.items()}
        try:
            async with store.write() as conn:
                await record_key_use(conn, used)
        except BaseException:
            for key_id, at in noted.items():  # a newer use noted meanwhile wins
                self._noted[key_id] = max(at, self._noted.get(key_id, at))
            raise

    async def flush_forever(self, store: Store, every: float = FLUSH_EVERY) -> None:
        """Flush every ``every`` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.flush(store)
                except Exception as exc:  # the database is away: the next round tries again
                    log.warning("could not record API key use", error=type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await self.flush(store)
