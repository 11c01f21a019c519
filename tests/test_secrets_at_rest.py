"""Secrets at rest, on SQLite and PostgreSQL: the store holds no credential in clear, deliveries are still
signed with the secrets read back through it, the key can be rotated while a worker delivers, and a
process with the wrong key (or none) says so instead of failing deliveries.

The raw tables are read with the databases' own drivers (sqlite3, asyncpg), never through hookline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook as StandardWebhook

from hookline.api.app import create_app
from hookline.api.services import Services
from hookline.dispatch.worker import Worker
from hookline.receiver import verify
from hookline.runtime import seal_plaintext
from hookline.sealing import Keyring, generate_key, key_id_of
from hookline.store import credentials, relay
from hookline.store import notices as notice_rows
from hookline.store.endpoints import get_endpoint, purpose
from hookline.store.engine import Store
from hookline.store.event_types import EventTypeRegistry
from hookline.store.schema import endpoints
from tests.chaos.procs import SECRET_KEY
from tests.conftest import Api, assert_error, assert_ok
from tests.receivers import Receiver
from tests.samples import MESSAGE

REDACTED = "[redacted]"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "allow_http": True,
        "allowed_networks": "127.0.0.0/8",
        "retry_schedule": "200ms,200ms,200ms",
        "retry_jitter": 0,
        "poll_interval": "100ms",
        "delivery_timeout": "1s",
        "lease": "2s",
        "drain_timeout": "2s",
    }


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


@contextlib.asynccontextmanager
async def running(store: Store, services: Services) -> AsyncIterator[Worker]:
    """A real Worker on ``store`` (the test's, or one with other keys, as another process would be)."""
    worker = Worker(store, services.settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


@contextlib.asynccontextmanager
async def other_process(database_url: str, services: Services, keys: str) -> AsyncIterator[Api]:
    """The API of another process holding ``keys`` (its own store and pool) on the same database."""
    store = Store.from_url(database_url, Keyring.parse(keys))
    other = Services(
        settings=services.settings,
        store=store,
        registry=EventTypeRegistry(store),
        admin_key_hash=services.admin_key_hash,
    )
    transport = httpx.ASGITransport(app=create_app(other), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://other.test") as http:
            yield Api(http)
    finally:
        await store.close()


def whsec() -> str:
    return "whsec_" + base64.b64encode(generate_key().encode()[:32]).decode()


def forms(secret: str) -> list[str]:
    """A secret as it could lie in a table: whole, its bytes in hex and base64, and a whsec_ secret's
    key alone (base64) and that key's bytes in hex and base64url."""
    raw = secret.encode()
    found = [
        secret,
        raw.hex(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
    ]
    if secret.startswith("whsec_"):
        key = secret.removeprefix("whsec_")
        decoded = base64.b64decode(key)
        found += [key, decoded.hex(), base64.urlsafe_b64encode(decoded).decode().rstrip("=")]
    return [form.rstrip("=") for form in found]


async def raw_dump(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read with the database's own driver."""
    if database_url.startswith("sqlite"):
        path = sa.make_url(database_url).database
        assert path is not None
        with contextlib.closing(sqlite3.connect(path)) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {name: conn.execute(f'SELECT * FROM "{name}"').fetchall() for name in names}
    conn = await asyncpg.connect(database_url)
    try:
        names = [
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        return {name: [tuple(r) for r in await conn.fetch(f'SELECT * FROM "{name}"')] for name in names}
    finally:
        await conn.close()


def as_text(dump: dict[str, list[tuple[Any, ...]]]) -> str:
    cells = []
    for rows in dump.values():
        for row in rows:
            for cell in row:
                if isinstance(cell, bytes | memoryview):
                    cells += [bytes(cell).decode("latin-1"), bytes(cell).hex()]
                else:
                    cells.append(str(cell))
    return "\n".join(cells)


async def stored(database_url: str, column: str) -> list[Any]:
    """``column`` of every endpoint, as text, read raw."""
    if database_url.startswith("sqlite"):
        path = sa.make_url(database_url).database
        assert path is not None
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return [r[0] for r in conn.execute(f"SELECT {column} FROM endpoints ORDER BY id")]
    conn = await asyncpg.connect(database_url)
    try:
        return [r[0] for r in await conn.fetch(f"SELECT {column}::text FROM endpoints ORDER BY id")]
    finally:
        await conn.close()


async def webhook(api: Api, auth: dict[str, str], url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "events": ["message.received"], **fields}
    created: dict[str, Any] = assert_ok(await api.http.post("/v1/webhooks", json=body, headers=auth), 201)
    return created


async def post(api: Api, auth: dict[str, str], n: int = 0) -> str:
    body = {"event": "message.received", "data": {**MESSAGE, "message_id": f"m{n}"}}
    accepted = assert_ok(await api.http.post("/v1/events", json=body, headers=auth), 202)
    event_id: str = accepted["id"]
    return event_id


async def statuses(api: Api, auth: dict[str, str], hook_ids: list[int]) -> dict[str, int]:
    """How many of the hooks' deliveries are in each status."""
    found: dict[str, int] = {}
    for hook_id in hook_ids:
        page = assert_ok(await api.http.get(f"/v1/webhooks/{hook_id}/deliveries?limit=250", headers=auth))
        for item in page["items"]:
            found[item["status"]] = found.get(item["status"], 0) + 1
    return found


# --- (a) nothing in clear --------------------------------------------------------------------------------


async def test_the_store_holds_no_secret_in_clear(
    api: Api, services: Services, rx: Receiver, database_url: str
) -> None:
    """Endpoints with given and generated secrets, two rotations (so previous secrets are kept), secret
    headers (one replaced), the operator webhook, a listen session, deliveries and a test send: then
    every column of every table, read raw, holds none of the secrets in any form."""
    tenant, auth = await api.tenant()
    first, second, third = whsec(), whsec(), whsec()
    bearer, api_key, api_key_replaced = (f"Bearer tok-{generate_key()}", generate_key(), generate_key())
    secrets = [first, second, third, bearer, api_key, api_key_replaced]
    a = await webhook(
        api,
        auth,
        rx.url("/a"),
        secret=first,
        headers={"X-Plain": "plainly-visible-value"},
        secret_headers={"Authorization": bearer},
        signing="ed25519",
    )
    for new in (second, third):
        body = {"secret": new, "grace_period_seconds": 3600}
        assert_ok(await api.http.post(f"/v1/webhooks/{a['id']}/secret/rotate", json=body, headers=auth))
    b = await webhook(api, auth, rx.url("/b"), secret_headers={"X-Api-Key": api_key})
    secrets.append(b["secret"])
    patched = await api.http.patch(
        f"/v1/webhooks/{b['id']}", json={"secret_headers": {"X-Api-Key": api_key_replaced}}, headers=auth
    )
    assert assert_ok(patched)["secret_headers"] == {"X-Api-Key": REDACTED}
    async with services.store.write() as conn:
        _, session_endpoint = await relay.open_session(
            conn,
            tenant_id=tenant,
            connection="c0",
            now=datetime.now(UTC),
            keyring=services.store.keyring,
            secret=whsec(),
            events=["*"],
            description="listen",
            channels=None,
            headers={},
            metadata={},
        )
    secrets.append(session_endpoint.secret)
    async with running(services.store, services):
        await post(api, auth)
        [delivered] = await rx.wait_for(1, "/a")
        await rx.wait_for(1, "/b")
    assert delivered.headers["authorization"] == bearer
    assert_ok(await api.http.post(f"/v1/webhooks/{a['id']}/test", json={}, headers=auth))
    # The operator webhook (after the worker's start, which makes it match the settings: none).
    operator_secret = whsec()
    secrets.append(operator_secret)
    now = datetime.now(UTC)
    await notice_rows.ensure_operator_webhook(
        services.store, "https://ops.example.com/hook", operator_secret, now
    )
    await notice_rows.ensure_operator_webhook(
        services.store, "https://ops.example.com/hook", operator_secret, now
    )

    # The ed25519 signing keys (the current one and the two a rotation kept), as the store opens them.
    async with services.store.read() as conn:
        signer = await get_endpoint(conn, tenant, a["id"], keyring=services.store.keyring)
    assert signer is not None and signer.signing_key is not None
    signing_keys = [signer.signing_key, *(old["signing_key"] for old in signer.previous_secrets)]
    assert len(signing_keys) == 3 and all(key.startswith("whsk_") for key in signing_keys)
    for key in signing_keys:
        seed = base64.b64decode(key.removeprefix("whsk_"))[:32]  # the private half
        secrets += [key.removeprefix("whsk_"), seed.hex(), base64.b64encode(seed).decode().rstrip("=")]

    dump = await raw_dump(database_url)
    text = as_text(dump)
    assert "plainly-visible-value" in text  # the dump reads the JSON columns...
    # ... the audit log's too, which recorded the changes, the rotations and the headers' names
    audited = as_text({"audit_log": dump["audit_log"]})
    assert "webhook.secret_rotated" in audited and "X-Api-Key" in audited
    primary = services.store.keyring.primary
    assert primary is not None
    sealed = await stored(database_url, "secret")
    assert len(sealed) == 4 and all(key_id_of(value) == primary for value in sealed)  # ... and the secrets
    [signing] = [value for value in await stored(database_url, "signing_key") if value is not None]
    assert key_id_of(signing) == primary
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"a secret ({form[:10]}...) is in the database in clear"
            assert form.lower() not in text.lower() or len(form) < 12
    # Read back through the store, each is what was given.
    assert assert_ok(await api.http.get(f"/v1/webhooks/{a['id']}/secret", headers=auth))["secret"] == third
    view = assert_ok(await api.http.get(f"/v1/webhooks/{a['id']}", headers=auth))
    assert view["headers"] == {"X-Plain": "plainly-visible-value"}
    assert view["secret_headers"] == {"Authorization": REDACTED}


# --- (b) deliveries signed with what the store gives back ------------------------------------------------


async def test_deliveries_are_signed_with_the_secrets_read_back_through_the_store(
    api: Api, services: Services, rx: Receiver
) -> None:
    _, auth = await api.tenant()
    old, new = whsec(), whsec()
    token = "Bearer " + generate_key()
    created = await webhook(api, auth, rx.url("/signed"), secret=old, secret_headers={"Authorization": token})
    assert created["secret_headers"] == {"Authorization": REDACTED} and created["secret"] == old
    body = {"secret": new, "grace_period_seconds": 3600}
    assert_ok(await api.http.post(f"/v1/webhooks/{created['id']}/secret/rotate", json=body, headers=auth))
    async with running(services.store, services):
        await post(api, auth)
        [request] = await rx.wait_for(1, "/signed")
        tested = assert_ok(await api.http.post(f"/v1/webhooks/{created['id']}/test", json={}, headers=auth))
        [_, test_request] = await rx.wait_for(2, "/signed")
    for received in (request, test_request):
        assert received.headers["authorization"] == token  # sent in clear, as given
        StandardWebhook(new).verify(received.body, received.headers)
        StandardWebhook(old).verify(received.body, received.headers)  # the grace period's secret too
        assert verify(received.body, received.headers, [old]).type == (
            "message.received" if received is request else "webhook.test"
        )
    assert tested["succeeded"] is True
    deliveries = assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/deliveries", headers=auth))
    for item in deliveries["items"]:
        found = assert_ok(await api.http.get(f"/v1/deliveries/{item['id']}", headers=auth))
        for attempt in found["attempt_log"]:
            assert attempt["request_headers"]["Authorization"] == REDACTED
            assert token not in str(attempt)


async def test_secret_headers_are_write_only_and_checked_like_headers(api: Api, services: Services) -> None:
    tenant, auth = await api.tenant()
    url = "https://receiver.example.com/hook"
    created = await webhook(
        api, auth, url, headers={"X-A": "a"}, secret_headers={"Authorization": "Bearer s3"}
    )
    hook_id = created["id"]
    listed = assert_ok(await api.http.get("/v1/webhooks", headers=auth))["items"]
    assert [w["secret_headers"] for w in listed] == [{"Authorization": REDACTED}]
    assert "Bearer s3" not in (await api.http.get(f"/v1/webhooks/{hook_id}", headers=auth)).text

    def refused(response: httpx.Response, error: str) -> None:
        assert_error(response, 400, error)
        assert "s3cr3t" not in response.text

    body = {"url": url, "headers": {"authorization": "x"}, "secret_headers": {"Authorization": "s3cr3t"}}
    refused(
        await api.http.post("/v1/webhooks", json=body, headers=auth),
        "header 'Authorization' is in both 'headers' and 'secret_headers'",
    )
    refused(
        await api.http.post(
            "/v1/webhooks", json={"url": url, "secret_headers": {"Webhook-Id": "s3cr3t"}}, headers=auth
        ),
        "header 'Webhook-Id' is set by hookline and cannot be overridden",
    )
    refused(
        await api.http.post(
            "/v1/webhooks", json={"url": url, "secret_headers": {"X-Webhook-X": "s3cr3t"}}, headers=auth
        ),
        "header 'X-Webhook-X' is set by hookline and cannot be overridden",
    )
    bad_value = await api.http.post(
        "/v1/webhooks", json={"url": url, "secret_headers": {"X-Key": "s3cr3t\nInjected: 1"}}, headers=auth
    )
    refused(bad_value, assert_error(bad_value, 400)["error"])
    many = {f"X-S{n}": "s3cr3t" for n in range(15)}
    refused(
        await api.http.patch(
            f"/v1/webhooks/{hook_id}",
            json={"headers": {f"X-P{n}": "v" for n in range(6)}, "secret_headers": many},
            headers=auth,
        ),
        "'headers' and 'secret_headers' may hold at most 20 headers together",
    )
    refused(
        await api.http.patch(
            f"/v1/webhooks/{hook_id}", json={"headers": {"AUTHORIZATION": "v"}}, headers=auth
        ),
        "header 'Authorization' is in both 'headers' and 'secret_headers'",
    )
    refused(
        await api.http.patch(f"/v1/webhooks/{hook_id}", json={"secret_headers": None}, headers=auth),
        "'secret_headers' cannot be null",
    )
    # Replaced as a whole, like headers; {} removes them.
    replaced = assert_ok(
        await api.http.patch(
            f"/v1/webhooks/{hook_id}", json={"secret_headers": {"X-Key": "k2"}}, headers=auth
        )
    )
    assert replaced["secret_headers"] == {"X-Key": REDACTED} and replaced["headers"] == {"X-A": "a"}
    cleared = assert_ok(
        await api.http.patch(f"/v1/webhooks/{hook_id}", json={"secret_headers": {}}, headers=auth)
    )
    assert cleared["secret_headers"] == {}
    # A listen session's requests pass through the store to the listener: no credential rides along.
    async with services.store.write() as conn:
        _, session = await relay.open_session(
            conn,
            tenant_id=tenant,
            connection="c0",
            now=datetime.now(UTC),
            keyring=services.store.keyring,
            secret=whsec(),
            events=["*"],
            description="listen",
            channels=None,
            headers={},
            metadata={},
        )
    refused(
        await api.http.patch(
            f"/v1/webhooks/{session.id}", json={"secret_headers": {"X-Key": "s3cr3t"}}, headers=auth
        ),
        "a `hookline listen` session's webhook takes no 'secret_headers'",
    )


# --- sealed values stay where they were sealed -----------------------------------------------------------


async def test_a_sealed_secret_moved_to_another_tenants_row_does_not_open(
    api: Api, services: Services, database_url: str
) -> None:
    """Someone who can write the database but holds only their own tenant's key copies a victim's sealed
    secret into their own endpoint: reading it answers 503, never the victim's secret."""
    _, victim = await api.tenant("Victim")
    _, attacker = await api.tenant("Attacker")
    secret = whsec()
    theirs = await webhook(api, victim, "https://victim.example.com/hook", secret=secret)
    mine = await webhook(api, attacker, "https://attacker.example.com/hook")
    async with services.store.write() as conn:
        sealed = (
            await conn.execute(sa.select(endpoints.c.secret).where(endpoints.c.id == theirs["id"]))
        ).scalar()
        await conn.execute(endpoints.update().where(endpoints.c.id == mine["id"]).values(secret=sealed))
    response = await api.http.get(f"/v1/webhooks/{mine['id']}/secret", headers=attacker)
    body = assert_error(response, 503)
    assert body["error"].startswith("a stored secret cannot be read with this server's HOOKLINE_SECRET_KEY")
    assert secret not in response.text and "Traceback" not in response.text
    # The same value in its own row still opens.
    assert (
        assert_ok(await api.http.get(f"/v1/webhooks/{theirs['id']}/secret", headers=victim))["secret"]
        == secret
    )


# --- (c) rotating the key while a worker delivers --------------------------------------------------------


async def test_rotating_the_key_while_a_worker_delivers(
    api: Api, services: Services, rx: Receiver, database_url: str
) -> None:
    """Every process restarted with "new,old"; the re-sealing runs in small batches while events flow
    and a tenant rotates a signing secret: every event arrives once, signed with the secrets in force,
    none fails; afterwards every stored value names the new key, and a worker and an API holding only
    the new key deliver and read them."""
    _, auth = await api.tenant()
    hooks = []
    for n in range(3):
        created = await webhook(
            api, auth, rx.url(f"/r{n}"), secret=whsec(), secret_headers={"Authorization": f"Bearer {n}"}
        )
        body = {"grace_period_seconds": 3600}
        rotated = assert_ok(
            await api.http.post(f"/v1/webhooks/{created['id']}/secret/rotate", json=body, headers=auth)
        )
        hooks.append({**created, "secrets": [rotated["secret"], created["secret"]]})
    new = generate_key()
    services.store.keyring = Keyring.parse(f"{new},{SECRET_KEY}")  # this API process, restarted
    both = Store.from_url(database_url, Keyring.parse(f"{new},{SECRET_KEY}"))  # the worker's, restarted
    new_id = both.keyring.primary
    posted = 0
    try:
        async with running(both, services):

            async def produce() -> None:
                nonlocal posted
                for n in range(40):
                    await post(api, auth, n)
                    posted += 1
                    await asyncio.sleep(0.01)

            producer = asyncio.create_task(produce())
            await asyncio.sleep(0.05)
            # A tenant rotates a secret meanwhile (written with the new key by this process).
            body = {"grace_period_seconds": 3600}
            rotated = assert_ok(
                await api.http.post(f"/v1/webhooks/{hooks[0]['id']}/secret/rotate", json=body, headers=auth)
            )
            hooks[0]["secrets"].insert(0, rotated["secret"])
            done = await credentials.reseal(both, plaintext_only=False, batch=1)
            await producer
            for n in range(3):
                await rx.wait_for(posted, f"/r{n}", timeout=30)
        assert done.complete, done
        await credentials.reseal_key_check(both, datetime.now(UTC), done)
        [rotation] = assert_ok(
            await api.http.get("/v1/audit-log?action=secret_key.rotated", headers=api.admin)
        )["items"]
        assert rotation["actor"] == {"key_id": "cli", "address": None} and rotation["tenant_id"] is None
        assert rotation["changes"] == {"key_id": new_id, "values_resealed": done.values}
        counts = await credentials.stored_key_ids(both)
        # 3 secrets, 3 headers, 4 previous secrets (one rotation each, and one more meanwhile)
        assert set(counts) == {new_id} and counts[new_id] == 3 + 3 + 4
        for row in await stored(database_url, "secret"):
            assert key_id_of(row) == new_id
        for n, hook_ in enumerate(hooks):
            received = rx.to(f"/r{n}")
            assert len({r.headers["webhook-id"] for r in received}) == posted == len(received)
            for request in received:
                assert request.headers["authorization"] == f"Bearer {n}"
                verify(request.body, request.headers, hook_["secrets"])
        assert await statuses(api, auth, [h["id"] for h in hooks]) == {"succeeded": 3 * posted}

        # Only the new key from here on: the old one can go.
        only_new = Store.from_url(database_url, Keyring.parse(new))
        try:
            await credentials.check_key(only_new, datetime.now(UTC))
            async with running(only_new, services):
                await post(api, auth, 99)
                for n, hook_ in enumerate(hooks):
                    [latest] = (await rx.wait_for(posted + 1, f"/r{n}", timeout=15))[posted:]
                    StandardWebhook(hook_["secrets"][0]).verify(latest.body, latest.headers)
        finally:
            await only_new.close()
        async with other_process(database_url, services, new) as reader:
            secret = assert_ok(await reader.http.get(f"/v1/webhooks/{hooks[1]['id']}/secret", headers=auth))
            assert secret["secret"] == hooks[1]["secrets"][0]
        only_old = Store.from_url(database_url, Keyring.parse(SECRET_KEY))
        try:
            with pytest.raises(credentials.WrongSecretKey, match=f"key id {new_id}"):
                await credentials.check_key(only_old, datetime.now(UTC))
        finally:
            await only_old.close()
    finally:
        await both.close()


async def test_resealing_never_overwrites_a_secret_changed_meanwhile(
    api: Api, services: Services, database_url: str
) -> None:
    """A row re-sealed from what was read is written only if it still holds that: a rotation of the
    signing secret between the read and the write is kept, and the next pass re-seals it."""
    _, auth = await api.tenant()
    created = await webhook(api, auth, "https://receiver.example.com/hook")
    ring = Keyring.parse(f"{generate_key()},{SECRET_KEY}")
    store = Store.from_url(database_url, ring)
    try:
        async with store.read() as conn:
            [row] = (await conn.execute(credentials._read(0, 10))).mappings().all()
        changes, count = credentials._plan(ring, row, lambda v: not ring.is_current(v), credentials.Counter())
        assert count == 1 and set(changes) == {"secret"}
        rotated = assert_ok(await api.http.post(f"/v1/webhooks/{created['id']}/secret/rotate", headers=auth))
        async with store.write() as conn:
            new = {f"new_{name}": value for name, value in changes.items()}
            written = await conn.execute(
                credentials._compare_and_set(changes), {**credentials._seen(row), **new}
            )
        assert written.rowcount == 0
        services.store.keyring = ring
        again = assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/secret", headers=auth))
        assert again["secret"] == rotated["secret"]
        done = await credentials.reseal(store, plaintext_only=False)
        assert done.complete and done.values == 2  # the secret and the previous one
        assert assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/secret", headers=auth)) == again
    finally:
        await store.close()


# --- plaintext from before sealing -------------------------------------------------------------------------


async def test_plaintext_from_an_older_version_is_read_then_sealed(
    api: Api, services: Services, rx: Receiver, database_url: str
) -> None:
    """Rows an older version wrote hold the secrets in clear: they are read as they are (deliveries stay
    signed) until the migration's sealing step seals them, in place."""
    tenant, auth = await api.tenant()
    created = await webhook(api, auth, rx.url("/legacy"))
    legacy, previous = whsec(), whsec()
    expires = datetime(2099, 1, 1, tzinfo=UTC).isoformat()
    async with services.store.write() as conn:  # as the older version wrote them
        await conn.execute(
            endpoints.update()
            .where(endpoints.c.id == created["id"])
            .values(secret=legacy, previous_secrets=[{"secret": previous, "expires_at": expires}])
        )
    assert (
        assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/secret", headers=auth))["secret"]
        == legacy
    )
    async with running(services.store, services):
        await post(api, auth)
        [request] = await rx.wait_for(1, "/legacy")
    StandardWebhook(legacy).verify(request.body, request.headers)
    StandardWebhook(previous).verify(request.body, request.headers)
    assert legacy in as_text(await raw_dump(database_url))

    await seal_plaintext(services.store)
    text = as_text(await raw_dump(database_url))
    for secret in (legacy, previous):
        assert all(form not in text for form in forms(secret))
    [sealed] = await stored(database_url, "secret")
    assert key_id_of(sealed) == services.store.keyring.primary
    assert services.store.keyring.open(sealed, purpose("secret", tenant)) == legacy
    assert (
        assert_ok(await api.http.get(f"/v1/webhooks/{created['id']}/secret", headers=auth))["secret"]
        == legacy
    )
    async with running(services.store, services):
        await post(api, auth, 1)
        [_, again] = await rx.wait_for(2, "/legacy")
    StandardWebhook(legacy).verify(again.body, again.headers)
    StandardWebhook(previous).verify(again.body, again.headers)


# --- (d) the wrong key -------------------------------------------------------------------------------------


async def test_a_process_with_the_wrong_key_says_so_and_sends_nothing(
    api: Api, services: Services, rx: Receiver, database_url: str
) -> None:
    """Its API answers 503 naming the key it lacks (never a 500, never a key); its worker sends nothing
    and spends no attempt: the delivery waits for its lease to end and a worker holding the key."""
    _, auth = await api.tenant()
    secret = whsec()
    created = await webhook(api, auth, rx.url("/wrong"), secret=secret)
    wrong = generate_key()
    wanted = services.store.keyring.primary
    async with other_process(database_url, services, wrong) as other:
        for path in (f"/v1/webhooks/{created['id']}/secret", f"/v1/webhooks/{created['id']}", "/v1/webhooks"):
            response = await other.http.get(path, headers=auth)
            body = assert_error(response, 503)
            assert f"sealed with key '{wanted}', which HOOKLINE_SECRET_KEY does not hold" in body["error"]
            for leak in (secret, wrong, SECRET_KEY, "Traceback"):
                assert leak not in response.text
    store = Store.from_url(database_url, Keyring.parse(wrong))
    try:
        with pytest.raises(credentials.WrongSecretKey) as refused:
            await credentials.check_key(store, datetime.now(UTC))
        assert f"key id {wanted}" in str(refused.value) and wrong not in str(refused.value)
        async with running(store, services):
            event_id = await post(api, auth)
            await asyncio.sleep(1.0)
        assert rx.to("/wrong") == []
        event = assert_ok(await api.http.get(f"/v1/events/{event_id}", headers=auth))
        [status] = event["delivery_status"]
        assert status["status"] == "pending" and status["attempts"] == 0
    finally:
        await store.close()
    async with running(services.store, services):  # the right key: sent once the lease (2 s) ends
        [request] = await rx.wait_for(1, "/wrong", timeout=15)
    StandardWebhook(secret).verify(request.body, request.headers)
