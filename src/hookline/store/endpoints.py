"""Webhook endpoints: where a tenant wants its events delivered.

The credentials an endpoint holds are sealed in its row (``hookline.sealing``) and plaintext everywhere
else: the functions here seal what they write and open what they read, with the store's keyring
(``Store.keyring``), so an ``Endpoint`` always holds them in clear. They are the signing secret
(``secret``), the secrets of a rotation's grace period (each ``secret`` of ``previous_secrets``) and
the values of ``secret_headers``. Each is sealed for a purpose naming its column and its tenant
(``purpose``): moved to another column or another tenant's row, it does not open. The worker's claim
reads the same columns and opens them alike (``hookline.store.queue``); ``hookline.store.credentials``
seals what an older version left in clear and re-seals everything when the key is rotated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hookline.sealing import Keyring
from hookline.store import endpoint_state
from hookline.store.endpoint_state import HOLD_UNVERIFIED, EndpointState
from hookline.store.schema import attempt_rollups, endpoints

# The URL scheme of a ``hookline listen`` session's endpoint (``hookline.store.relay``).
RELAY_SCHEME = "relay://"


@dataclass(frozen=True)
class Endpoint:
    id: int
    tenant_id: str
    url: str
    description: str
    secret: str = field(repr=False)
    events: list[str]
    channels: list[str] | None
    headers: dict[str, str]
    metadata: dict[str, Any]
    active: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    timeout_ms: int | None = None
    retry_schedule: list[float] | None = None
    max_in_flight: int | None = None
    previous_secrets: list[dict[str, str]] = field(default_factory=list, repr=False)
    rate_limit: float | None = None
    circuit_breaker: dict[str, float] | None = None
    secret_headers: dict[str, str] = field(default_factory=dict, repr=False)
    # The ed25519 ``whsk_...`` key of an endpoint that signs v1a too; None: HMAC only.
    signing_key: str | None = field(default=None, repr=False)

    @property
    def delivered_headers(self) -> dict[str, str]:
        """The custom headers every request carries: ``headers`` and ``secret_headers`` (their names
        never overlap)."""
        return {**self.headers, **self.secret_headers} if self.secret_headers else self.headers


# Text columns holding a credential, sealed whole. A new one is one more name here:
# ``seal_credentials`` and ``open_credentials`` (and so every function below) then cover it, and
# ``hookline.store.credentials`` re-seals it.
SEALED_COLUMNS: tuple[str, ...] = ("secret", "signing_key")
# JSON columns whose values hold credentials: a list of {"secret": ..., "signing_key"?: ...,
# "expires_at": ...} (the credentials in PREVIOUS_FIELDS); {name: value}.
PREVIOUS_SECRETS = "previous_secrets"
PREVIOUS_FIELDS = ("secret", "signing_key")
SECRET_HEADERS = "secret_headers"  # noqa: S105 (a column's name)


def purpose(column: str, tenant_id: str) -> str:
    """What a credential in ``column`` of one of ``tenant_id``'s endpoints is sealed for."""
    return f"endpoints.{column}\x00{tenant_id}"


def seal_credentials(keyring: Keyring, tenant_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` (columns and values, as an insert or update writes them) with every credential
    sealed."""
    sealed = dict(fields)
    for column in SEALED_COLUMNS:
        if sealed.get(column) is not None:
            sealed[column] = keyring.seal(sealed[column], purpose(column, tenant_id))
    if sealed.get(PREVIOUS_SECRETS):
        why = purpose(PREVIOUS_SECRETS, tenant_id)
        sealed[PREVIOUS_SECRETS] = [
            {k: keyring.seal(v, why) if k in PREVIOUS_FIELDS and v is not None else v for k, v in old.items()}
            for old in sealed[PREVIOUS_SECRETS]
        ]
    if sealed.get(SECRET_HEADERS):
        why = purpose(SECRET_HEADERS, tenant_id)
        sealed[SECRET_HEADERS] = {name: keyring.seal(v, why) for name, v in sealed[SECRET_HEADERS].items()}
    return sealed


def open_credentials(keyring: Keyring, tenant_id: str, row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored row's columns with every credential opened (plaintext an older version wrote is taken
    as it is). Raises ``hookline.sealing.SealError`` for one that does not open. A value of the wrong
    shape (written by hand) is left for the worker's checks (``hookline.dispatch.options``)."""
    opened = dict(row)
    for column in SEALED_COLUMNS:
        if isinstance(opened.get(column), str):
            opened[column] = keyring.read(opened[column], purpose(column, tenant_id))
    if isinstance(previous := opened.get(PREVIOUS_SECRETS), list) and previous:
        why = purpose(PREVIOUS_SECRETS, tenant_id)
        opened[PREVIOUS_SECRETS] = [
            {
                k: keyring.read(v, why) if k in PREVIOUS_FIELDS and isinstance(v, str) else v
                for k, v in old.items()
            }
            if isinstance(old, dict)
            else old
            for old in previous
        ]
    if isinstance(headers := opened.get(SECRET_HEADERS), dict) and headers:
        why = purpose(SECRET_HEADERS, tenant_id)
        opened[SECRET_HEADERS] = {
            name: keyring.read(v, why) if isinstance(v, str) else v for name, v in headers.items()
        }
    return opened


async def insert_endpoint(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    now: datetime,
    keyring: Keyring,
    verify: bool = False,
    **fields: Any,
) -> Endpoint:
    """A new endpoint and its scheduler state; ``verify``: held until its verification handshake passes."""
    values = {"tenant_id": tenant_id, "created_at": now, "updated_at": now, **fields}
    stored = seal_credentials(keyring, tenant_id, values)
    new_id = (await conn.execute(endpoints.insert().values(**stored).returning(endpoints.c.id))).scalar_one()
    state = EndpointState(
        new_id,
        tenant_id,
        hold=HOLD_UNVERIFIED if verify else None,
        verification="pending" if verify else "not_required",
    )
    await endpoint_state.create(conn, state, now)
    return Endpoint(id=new_id, disabled_reason=None, **values)


async def get_endpoint(
    conn: AsyncConnection, tenant_id: str, endpoint_id: int, *, keyring: Keyring
) -> Endpoint | None:
    query = endpoints.select().where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
    row = (await conn.execute(query)).mappings().first()
    return Endpoint(**open_credentials(keyring, tenant_id, row)) if row else None


async def list_endpoints(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    after: int | None,
    limit: int,
    keyring: Keyring,
    relays: bool = True,
) -> list[Endpoint]:
    """``relays=False``: without the temporary endpoints of ``hookline listen`` sessions."""
    query = endpoints.select().where(endpoints.c.tenant_id == tenant_id).order_by(endpoints.c.id).limit(limit)
    if not relays:
        query = query.where(~endpoints.c.url.startswith(RELAY_SCHEME, autoescape=True))
    if after is not None:
        query = query.where(endpoints.c.id > after)
    rows = (await conn.execute(query)).mappings()
    return [Endpoint(**open_credentials(keyring, tenant_id, row)) for row in rows]


async def update_endpoint(
    conn: AsyncConnection,
    tenant_id: str,
    endpoint_id: int,
    changes: dict[str, Any],
    now: datetime,
    *,
    keyring: Keyring,
) -> bool:
    query = (
        endpoints.update()
        .where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
        .values(**seal_credentials(keyring, tenant_id, changes), updated_at=now)
    )
    return (await conn.execute(query)).rowcount > 0


async def delete_endpoint(conn: AsyncConnection, tenant_id: str, endpoint_id: int) -> bool:
    # The scheduler's row first, as a claim or a recording takes it (before any delivery row): the
    # cascade below then never waits on one of them while holding what it needs.
    await endpoint_state.lock(conn, [endpoint_id])
    query = endpoints.delete().where(endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id)
    if (await conn.execute(query)).rowcount == 0:
        return False
    # Its statistics (no foreign key: see ``attempt_rollups``).
    await conn.execute(
        attempt_rollups.delete().where(
            attempt_rollups.c.tenant_id == tenant_id, attempt_rollups.c.endpoint_id == endpoint_id
        )
    )
    return True


@dataclass(frozen=True)
class Subscription:
    endpoint_id: int
    events: list[str]
    channels: list[str] | None
