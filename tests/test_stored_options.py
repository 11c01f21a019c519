"""The worker checks what it reads from an endpoint row (issue 9), on both backends.

Rows with bad values exist (older versions, hand edits, validation gaps), so these tests write them
straight into the database, bypassing the API. A bad tuning option (retry_schedule, timeout_ms,
max_in_flight) falls back to the service default and says so in ``last_error``; a bad option that
changes what is sent (custom headers, rotation secrets) fails the delivery unsent with a clear error.
Either way the other deliveries carry on. A custom header value never appears in an error or a log
line, and every failed attempt is one warning line on the console.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hookline.api.services import Services
from hookline.dispatch import worker as worker_module
from tests.conftest import Api
from tests.receivers import Receiver, Reply
from tests.test_delivery import (
    delivery,
    delivery_id,
    hook,
    post,
    running,
    rx,
    settings_overrides,
    settled,
    until,
)

__all__ = ["rx", "settings_overrides"]  # fixtures shared with test_delivery

TOKEN = "Bearer s3cr3t-t0ken-\x01-do-not-show"


class LogRecorder:
    """Stands in for the worker's structlog logger: every line, as (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))

    def text(self) -> str:
        return json.dumps(self.lines, default=str)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(worker_module, "log", recorder)
    return recorder


async def store_raw(services: Services, endpoint_id: int, column: str, value: Any) -> None:
    """Write ``value`` into the endpoint's row as is: JSON text for JSON columns, else the value."""
    json_column = column in ("retry_schedule", "headers", "previous_secrets")
    target = "CAST(:value AS jsonb)" if json_column and not services.store.is_sqlite else ":value"
    async with services.store.write() as conn:
        await conn.execute(
            sa.text(f"UPDATE endpoints SET {column} = {target} WHERE id = :id"),
            {"value": value, "id": endpoint_id},
        )


async def healthy_meanwhile(api: Api, auth: dict[str, str], endpoint: dict[str, Any], event_id: str) -> None:
    found = await settled(api, auth, await delivery_id(api, auth, event_id, endpoint["id"]))
    assert found["status"] == "succeeded"


BAD_SCHEDULES = ['["5s"]', "[[1, 2]]", '"1m,5m"', '{"a": 1}', "[-1]", "[0]", "[1e400]", "[true]", "[1, null]"]


@pytest.mark.parametrize("stored", BAD_SCHEDULES)
async def test_an_invalid_retry_schedule_falls_back_to_the_service_default(
    api: Api, services: Services, rx: Receiver, stored: str
) -> None:
    _, auth = await api.tenant()
    broken = await hook(api, auth, rx.url("/broken"))
    healthy = await hook(api, auth, rx.url("/healthy"))
    await store_raw(services, broken["id"], "retry_schedule", stored)
    rx.always("/broken", Reply(500))
    async with running(services):
        event_id = await post(api, auth)
        await healthy_meanwhile(api, auth, healthy, event_id)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, broken["id"]))
    default = len(services.settings.retry_schedule)
    assert found["status"] == "failed" and found["attempts"] == default + 1
    assert found["last_error"].startswith("the endpoint's retry_schedule is invalid (")
    assert found["last_error"].endswith("; the service default is used")


async def test_nan_in_a_stored_retry_schedule_fails_nothing_but_that_schedule(
    api: Api, services: Services, rx: Receiver
) -> None:
    if not services.store.is_sqlite:
        pytest.skip("PostgreSQL's jsonb cannot hold NaN")
    await test_an_invalid_retry_schedule_falls_back_to_the_service_default(api, services, rx, "[NaN]")


@pytest.mark.parametrize(("stored", "at_least", "at_most"), [("[1e-300]", 0.09, 0.2), ("[1e300]", 6.9, 7.1)])
async def test_stored_retry_waits_are_clamped(
    api: Api, services: Services, rx: Receiver, stored: str, at_least: float, at_most: float
) -> None:
    """Waits between 100 ms and 7 days (the API's rule), whatever the row says (days, in the second case)."""
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/clamped"))
    await store_raw(services, endpoint["id"], "retry_schedule", stored)
    # The retry answers late: while it is in flight (up to the 1 s timeout) the delivery still shows the
    # first attempt's wait, however slow the machine is to look (100 ms is a narrow window to poll).
    rx.plan("/clamped", Reply(500), Reply(500, delay=3))
    async with running(services):
        ident = await delivery_id(api, auth, await post(api, auth), endpoint["id"])
        if at_least > 5:  # days: no retry comes
            found = await until(lambda: delivery(api, auth, ident), lambda d: d["attempts"] == 1)
        else:
            await rx.wait_for(2, "/clamped")
            found = await delivery(api, auth, ident)
    assert found["attempts"] == 1
    # From the end of the first attempt, not from ``updated_at``: that is when the answer was written, a
    # moment later (13 ms later on a busy CI host, which made the wait look like 87 ms).
    first = found["attempt_log"][0]
    ended = datetime.fromisoformat(first["started_at"]) + timedelta(milliseconds=first["duration_ms"])
    wait = datetime.fromisoformat(found["next_attempt_at"]) - ended
    unit = timedelta(days=1) if at_least > 5 else timedelta(seconds=1)  # 0.09-0.2 s: clamped to 100 ms
    assert at_least <= wait / unit <= at_most, wait
    assert found["status"] == "pending" and found["last_error"] is None


@pytest.mark.parametrize(
    ("column", "stored", "sqlite_only"),
    [
        ("timeout_ms", -5, False),
        ("timeout_ms", "soon", True),
        ("max_in_flight", 0, False),
        ("max_in_flight", "x", True),
    ],
)
async def test_an_invalid_timeout_or_cap_falls_back_to_the_service_default(
    api: Api, services: Services, rx: Receiver, column: str, stored: Any, sqlite_only: bool
) -> None:
    if sqlite_only and not services.store.is_sqlite:
        pytest.skip("PostgreSQL's integer column cannot hold text")
    _, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/tuned"))
    await store_raw(services, endpoint["id"], column, stored)
    async with running(services):
        found = await settled(api, auth, await delivery_id(api, auth, await post(api, auth), endpoint["id"]))
    assert found["status"] == "succeeded" and len(rx.to("/tuned")) == 1
    assert found["last_error"].startswith(f"the endpoint's {column} is invalid (")


BAD_HEADERS = [
    ({"Authorization": TOKEN}, "custom header 'Authorization' has an invalid value (not shown); not sent"),
    (
        {"X-Ok": "fine", "X-Bad": "line\nbreak " + TOKEN},
        "custom header 'X-Bad' has an invalid value (not shown); not sent",
    ),
    ({"Bad Name": TOKEN}, "a custom header has an invalid name (not shown); not sent"),
    ({"X-Number": 5}, "custom header 'X-Number' has an invalid value (not shown); not sent"),
    (
        ["Authorization", TOKEN],
        "the endpoint's custom headers are invalid (not an object of names and values); not sent",
    ),
]


@pytest.mark.parametrize(("stored", "error"), BAD_HEADERS)
async def test_invalid_custom_headers_fail_the_delivery_without_showing_their_values(
    api: Api, services: Services, rx: Receiver, logs: LogRecorder, stored: Any, error: str
) -> None:
    _, auth = await api.tenant()
    broken = await hook(api, auth, rx.url("/broken"))
    healthy = await hook(api, auth, rx.url("/healthy"))
    await store_raw(services, broken["id"], "headers", json.dumps(stored))
    async with running(services):
        event_id = await post(api, auth)
        await healthy_meanwhile(api, auth, healthy, event_id)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, broken["id"]))
    assert found["status"] == "failed" and found["last_error"] == error
    assert rx.to("/broken") == []
    assert "s3cr3t" not in json.dumps(found)
    assert "s3cr3t" not in logs.text()
    assert any(event == "delivery not sent" and level == "warning" for level, event, _ in logs.lines)


BAD_PREVIOUS = [
    (
        '[{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "expires_at": "next tuesday"}]',
        "invalid expires_at",
    ),
    ('[{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "expires_at": 5}]', "invalid expires_at"),
    ('[{"expires_at": "2999-01-01T00:00:00+00:00"}]', "is invalid (no secret)"),
    ('"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"', "are invalid (not a list)"),
]


@pytest.mark.parametrize(("stored", "error"), BAD_PREVIOUS)
async def test_invalid_rotation_secrets_fail_the_delivery_unsent(
    api: Api, services: Services, rx: Receiver, stored: str, error: str
) -> None:
    _, auth = await api.tenant()
    broken = await hook(api, auth, rx.url("/broken"))
    healthy = await hook(api, auth, rx.url("/healthy"))
    await store_raw(services, broken["id"], "previous_secrets", stored)
    async with running(services):
        event_id = await post(api, auth)
        await healthy_meanwhile(api, auth, healthy, event_id)
        found = await settled(api, auth, await delivery_id(api, auth, event_id, broken["id"]))
    assert found["status"] == "failed" and error in found["last_error"]
    assert found["last_error"].endswith("rotate the secret again; not sent")
    assert rx.to("/broken") == []


async def test_every_failed_attempt_is_one_warning_line(
    api: Api, services: Services, rx: Receiver, logs: LogRecorder
) -> None:
    tenant, auth = await api.tenant()
    endpoint = await hook(api, auth, rx.url("/flaky"), headers={"X-Api-Key": "do-not-log-me"})
    rx.always("/flaky", Reply(503, body=b"response body, not for the log"))
    async with running(services):
        ident = await delivery_id(api, auth, await post(api, auth), endpoint["id"])
        await settled(api, auth, ident)
    lines = [fields for level, event, fields in logs.lines if event == "delivery attempt failed"]
    assert all(level == "warning" for level, event, _ in logs.lines if event == "delivery attempt failed")
    attempts = len(services.settings.retry_schedule) + 1
    assert [line["attempt"] for line in lines] == list(range(1, attempts + 1))
    for line in lines:
        assert line["delivery_id"] == ident and line["endpoint_id"] == endpoint["id"]
        assert line["tenant_id"] == tenant and line["status_code"] == 503
    assert all(line["next_try"] != "gave up" for line in lines[:-1])
    assert lines[-1]["next_try"] == "gave up"
    assert "do-not-log-me" not in logs.text() and "not for the log" not in logs.text()
