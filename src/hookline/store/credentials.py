"""Keeping the store's credentials sealed with the right key (``hookline.sealing``).

* ``check_key``: every process that reads or writes credentials starts by opening a small sealed value
  kept in ``service_meta`` (written by the first process with a key, re-sealed by each rotation). A
  process given the wrong key, or only the new key before a rotation re-sealed everything, stops there
  with a message naming the key it lacks, instead of failing deliveries one by one.
* ``reseal``: walks the endpoints by id, in batches of short transactions, and re-seals what needs it
  with the keyring's first key: only plaintext left by a version from before sealing (``hookline
  migrate``, and ``serve``'s automatic migration), or everything not sealed with the first key
  (``hookline secrets rotate-key``). API and workers keep running meanwhile: each row is written only
  if it still holds what was read (compare-and-set), so a secret rotated at the same moment is never
  overwritten; a row that changed is looked at again in a later pass. ``updated_at`` is left alone:
  nothing the tenant set has changed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hookline.sealing import Keyring, SealError, is_sealed, key_id_of
from hookline.store import audit_log
from hookline.store.endpoints import (
    PREVIOUS_FIELDS,
    PREVIOUS_SECRETS,
    SEALED_COLUMNS,
    SECRET_HEADERS,
    purpose,
)
from hookline.store.engine import Store
from hookline.store.meta import get_value, set_value
from hookline.store.schema import endpoints

KEY_CHECK = "secret_key_check"  # the service_meta row holding the sealed check value
_KEY_CHECK_TEXT = "hookline"
_KEY_CHECK_PURPOSE = "service_meta." + KEY_CHECK
BATCH = 200  # endpoint rows read and written per transaction
PASSES = 5  # walks over the endpoints at most, for rows that changed while being re-sealed
_JSON_COLUMNS = (PREVIOUS_SECRETS, SECRET_HEADERS)


class WrongSecretKey(RuntimeError):
    """The configured keys cannot open what the store holds; the message names key ids, never keys."""


async def check_key(store: Store, now: datetime) -> None:
    """Raise ``WrongSecretKey`` unless the store's keyring opens the store's check value (written now,
    sealed with the first key, if there is none yet)."""
    keyring = store.keyring
    async with store.read() as conn:
        stored = await get_value(conn, KEY_CHECK)
    if stored is None:
        try:
            async with store.write() as conn:
                if await get_value(conn, KEY_CHECK) is None:
                    await set_value(conn, KEY_CHECK, keyring.seal(_KEY_CHECK_TEXT, _KEY_CHECK_PURPOSE), now)
                    return
        except IntegrityError:  # another process wrote it at the same moment: check theirs
            pass
        async with store.read() as conn:
            stored = await get_value(conn, KEY_CHECK)
        if stored is None:
            raise WrongSecretKey("the database's secret key check could not be written")
    try:
        keyring.open(stored, _KEY_CHECK_PURPOSE)
    except SealError as exc:
        held = ", ".join(keyring.ids) or "none"
        if exc.key_id is not None and exc.key_id not in keyring.ids:
            raise WrongSecretKey(
                f"HOOKLINE_SECRET_KEY does not hold the key that sealed this database's secrets (key id "
                f"{exc.key_id}; the keys given have ids {held}). Give it the key this database was "
                "sealed with; during a rotation, the new key first and the old one after it."
            ) from None
        raise WrongSecretKey(f"the database's secret key check does not open: {exc}") from None


async def reseal_key_check(store: Store, now: datetime, done: Resealed) -> None:
    """The check value sealed again with the first key (the end of a rotation), and the rotation
    recorded in the audit log (``secret_key.rotated``, by ``cli``)."""
    async with store.write() as conn:
        await set_value(conn, KEY_CHECK, store.keyring.seal(_KEY_CHECK_TEXT, _KEY_CHECK_PURPOSE), now)
        rotated = {"key_id": store.keyring.primary, "values_resealed": done.values}
        entry = audit_log.Entry("secret_key.rotated", None, audit_log.CLI, None, "secret_key", None, rotated)
        await audit_log.record(conn, entry, now)


@dataclass
class Resealed:
    """What a ``reseal`` did."""

    rows: int = 0  # endpoint rows written
    values: int = 0  # credentials sealed anew
    left: int = 0  # values that still need it (changed during every pass)
    unreadable: Counter[str] = field(default_factory=Counter)  # key id -> values that did not open

    @property
    def complete(self) -> bool:
        return not self.left and not self.unreadable


async def reseal(store: Store, *, plaintext_only: bool, batch: int = BATCH) -> Resealed:
    """Seal with the first key every credential that is plaintext (``plaintext_only``) or, else, not
    sealed with the first key. See the module docstring."""
    keyring = store.keyring
    if keyring.primary is None:
        raise SealError("no secret key is configured (HOOKLINE_SECRET_KEY)")

    def wanted(value: str) -> bool:
        return not is_sealed(value) if plaintext_only else not keyring.is_current(value)

    done = Resealed()
    for _ in range(PASSES):
        done.left = 0
        done.unreadable.clear()
        after = 0
        while True:
            async with store.read() as conn:
                rows = (await conn.execute(_read(after, batch))).mappings().all()
            if not rows:
                break
            after = rows[-1]["id"]
            plans = []
            for row in rows:
                changes, values = _plan(keyring, row, wanted, done.unreadable)
                if changes:
                    plans.append((row, changes, values))
            if not plans:
                continue
            async with store.write() as conn:
                for row, changes, values in plans:
                    new = {f"new_{name}": value for name, value in changes.items()}
                    written = await conn.execute(_compare_and_set(changes), {**_seen(row), **new})
                    if written.rowcount:
                        done.rows += 1
                        done.values += values
                    else:
                        done.left += values
        if not done.left:
            break
    return done


def _read(after: int, batch: int) -> sa.Select[Any]:
    """The next ``batch`` endpoints after id ``after``: their credentials, the JSON ones as stored text."""
    return (
        sa.select(
            endpoints.c.id,
            endpoints.c.tenant_id,
            *(endpoints.c[name] for name in SEALED_COLUMNS),
            *(sa.cast(endpoints.c[name], sa.Text).label(name) for name in _JSON_COLUMNS),
        )
        .where(endpoints.c.id > after)
        .order_by(endpoints.c.id)
        .limit(batch)
    )


def _seen(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"seen_id": row["id"], **{f"seen_{name}": row[name] for name in (*SEALED_COLUMNS, *_JSON_COLUMNS)}}


def _compare_and_set(changes: Mapping[str, Any]) -> sa.Update:
    """An update of the columns in ``changes`` of the row read, only if it still holds what was read."""
    conditions = [endpoints.c.id == sa.bindparam("seen_id")]
    for name in SEALED_COLUMNS:
        conditions.append(endpoints.c[name].is_not_distinct_from(sa.bindparam(f"seen_{name}")))
    for name in _JSON_COLUMNS:
        conditions.append(sa.cast(endpoints.c[name], sa.Text) == sa.bindparam(f"seen_{name}"))
    values = {name: sa.bindparam(f"new_{name}", type_=endpoints.c[name].type) for name in changes}
    return endpoints.update().where(*conditions).values(**values)


def _plan(
    keyring: Keyring, row: Mapping[str, Any], wanted: Callable[[str], bool], unreadable: Counter[str]
) -> tuple[dict[str, Any], int]:
    """(the row's columns that change, how many credentials in them are sealed anew)."""
    tenant_id = row["tenant_id"]
    changes: dict[str, Any] = {}
    count = 0

    def again(value: str, why: str) -> str | None:
        try:
            text = keyring.read(value, why)
        except SealError as exc:
            unreadable[exc.key_id or key_id_of(value) or "?"] += 1
            return None
        return keyring.seal(text, why)

    for name in SEALED_COLUMNS:
        value = row[name]
        if isinstance(value, str) and wanted(value) and (new := again(value, purpose(name, tenant_id))):
            changes[name] = new
            count += 1
    previous = _loads(row[PREVIOUS_SECRETS])
    if isinstance(previous, list):
        why = purpose(PREVIOUS_SECRETS, tenant_id)
        changed = False
        for old in previous:
            for field in PREVIOUS_FIELDS:
                secret = old.get(field) if isinstance(old, dict) else None
                if isinstance(secret, str) and wanted(secret) and (new := again(secret, why)):
                    old[field] = new
                    changed = True
                    count += 1
        if changed:
            changes[PREVIOUS_SECRETS] = previous
    headers = _loads(row[SECRET_HEADERS])
    if isinstance(headers, dict):
        why = purpose(SECRET_HEADERS, tenant_id)
        changed = False
        for name, value in headers.items():
            if isinstance(value, str) and wanted(value) and (new := again(value, why)):
                headers[name] = new
                changed = True
                count += 1
        if changed:
            changes[SECRET_HEADERS] = headers
    return changes, count


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None  # unreadable JSON is left as it is (the worker's checks refuse it)


async def stored_key_ids(store: Store) -> Counter[str]:
    """How many stored credentials each key id sealed ("plaintext": not sealed): for a rotation's report
    and its tests."""
    found: Counter[str] = Counter()
    after = 0
    while True:
        async with store.read() as conn:
            rows = (await conn.execute(_read(after, 1000))).mappings().all()
        if not rows:
            return found
        after = rows[-1]["id"]
        for row in rows:
            values = [row[name] for name in SEALED_COLUMNS]
            previous = _loads(row[PREVIOUS_SECRETS])
            if isinstance(previous, list):
                values += [old.get(f) for old in previous if isinstance(old, dict) for f in PREVIOUS_FIELDS]
            headers = _loads(row[SECRET_HEADERS])
            if isinstance(headers, dict):
                values += list(headers.values())
            for value in values:
                if isinstance(value, str):
                    found[key_id_of(value) or ("plaintext" if not is_sealed(value) else "unknown")] += 1
