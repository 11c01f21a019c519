"""The operator's list of endpoints in trouble across tenants (``hookline.store.overview``), on both
backends: disabled ones and ones failing since their last success, the longest failing first; healthy
ones never."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from hookline.api.services import Services
from hookline.store import overview
from hookline.store.schema import endpoint_state
from tests.conftest import Api, assert_ok

HOOK = {"url": "https://example.com/hook", "events": ["message.received"]}


async def test_disabled_and_failing_endpoints_are_listed_longest_failing_first(
    api: Api, services: Services
) -> None:
    _, a = await api.tenant("A")
    _, b = await api.tenant("B")
    healthy = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=a), 201)
    failing_long = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=a), 201)
    failing_short = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=b), 201)
    disabled = assert_ok(await api.http.post("/v1/webhooks", json=HOOK, headers=b), 201)
    assert_ok(await api.http.patch(f"/v1/webhooks/{disabled['id']}", json={"active": False}, headers=b))
    now = datetime.now(UTC)
    async with services.store.write() as conn:
        for hook, since in (
            (failing_long, now - timedelta(hours=5)),
            (failing_short, now - timedelta(minutes=5)),
        ):
            await conn.execute(
                endpoint_state.update()
                .where(endpoint_state.c.endpoint_id == hook["id"])
                .values(failing_since=since, breaker_state="open")
            )
    async with services.store.read() as conn:
        found = await overview.failing_endpoints(conn)
    assert [f.id for f in found] == [failing_long["id"], failing_short["id"], disabled["id"]]
    assert healthy["id"] not in [f.id for f in found]
    assert (found[0].breaker_state, found[2].active, found[2].tenant_id) == (
        "open",
        False,
        disabled["tenant_id"],
    )
    async with services.store.read() as conn:
        assert len(await overview.failing_endpoints(conn, limit=1)) == 1
        states = (await conn.execute(sa.select(sa.func.count()).select_from(endpoint_state))).scalar()
    assert states == 4
