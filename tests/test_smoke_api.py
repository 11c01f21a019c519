from tests.conftest import Api, assert_ok


async def test_health(api: Api) -> None:
    data = assert_ok(await api.http.get("/health"))
    assert data["database"] == "ok"


async def test_done_when_flow(api: Api) -> None:
    """The issue's 'done when': tenant, key, HTTPS webhook for message.received, event, pending delivery."""
    _, auth = await api.tenant()
    hook = assert_ok(
        await api.http.post(
            "/v1/webhooks",
            json={"url": "https://example.com/hook", "events": ["message.received"]},
            headers=auth,
        ),
        201,
    )
    example = (await api.http.get("/v1/event-types/message.received", headers=auth)).json()["data"]["example"]
    accepted = assert_ok(
        await api.http.post("/v1/events", json={"event": "message.received", "data": example}, headers=auth),
        202,
    )
    assert accepted["deliveries"] == 1
    event = assert_ok(await api.http.get(f"/v1/events/{accepted['id']}", headers=auth))
    [delivery] = event["delivery_status"]
    assert delivery["webhook_id"] == hook["id"]
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0
