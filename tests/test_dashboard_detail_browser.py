"""The endpoint detail page in a real browser (the harness of ``tests/test_dashboard_browser.py``: Debian's
chromium, a real ``hookline serve`` with its worker, axe-core), against loopback receivers.

What users rely on: an endpoint's page shows its charts and the same figures as a table; a test event
reaches the receiver and its answer (status, body) is shown, and bad JSON is an error on the form; a
failed delivery can be retried and its attempts read; a tripped circuit breaker is shown and can be
reset; a read-only link sees none of the forms and its POSTs are refused; no serious or critical
accessibility violation, in English and Arabic (screenshots of both under ``docs/screenshots/``).
"""

# ruff: noqa: F811  (the harness's fixtures are imported, and used by name)
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.chaos.procs import ADMIN_KEY
from tests.receivers import Reply
from tests.test_cli_client import ThreadedReceiver
from tests.test_dashboard_browser import (  # noqa: F401
    CHROMIUM,
    Service,
    _axe,
    browser,
    csrf_of,
    page,
    screenshot,
    service,
)
from tests.test_seed_receivers import JS, npm_ci

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
)

ANSWER = "hello from the receiver"
ALL = ["manage_endpoints", "send_tests", "retry_replay"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadedReceiver]:
    rx = ThreadedReceiver()
    rx.receiver.always("/ok", Reply(200, ANSWER.encode()))
    rx.receiver.always("/fail", Reply(500, b"receiver broke"))
    rx.receiver.always("/trip", Reply(503, b"down"))
    try:
        yield rx
    finally:
        rx.close()


@pytest.fixture(scope="module")
def hooks(service: Service, receiver: ThreadedReceiver) -> dict[str, Any]:
    """A tenant with three webhooks on the loopback receiver: one answering 200, one answering 500
    with a single short retry (it fails for good at once), one whose breaker opens at the first failure."""
    assert service.admin.post("/v1/tenants", json={"id": "initech", "name": "Initech"}).status_code == 201
    key = service.admin.post("/v1/tenants/initech/keys").json()["data"]["key"]
    tenant = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def hook(path: str, events: list[str], **options: Any) -> dict[str, Any]:
        made = tenant.post(
            "/v1/webhooks",
            json={
                "url": receiver.url(path),
                "events": events,
                "description": f"{path[1:]} receiver",
                **options,
            },
        )
        assert made.status_code == 201, made.text
        data: dict[str, Any] = made.json()["data"]
        return data

    return {
        "client": tenant,
        "ok": hook("/ok", ["message.*"]),
        "fail": hook("/fail", ["order.*"], retry_schedule=[0.2]),
        "trip": hook("/trip", ["contact.*"], circuit_breaker={"consecutive_failures": 1, "cooldown": 3600}),
    }


def _until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def _send(hooks: dict[str, Any], event: str) -> None:
    """An event of type ``event`` with its catalog example as data."""
    example = hooks["client"].get(f"/v1/event-types/{event}").json()["data"]["example"]
    sent = hooks["client"].post("/v1/events", json={"event": event, "data": example})
    assert sent.status_code == 202, sent.text


def _deliveries(hooks: dict[str, Any], name: str, **params: Any) -> list[dict[str, Any]]:
    found = hooks["client"].get(f"/v1/webhooks/{hooks[name]['id']}/deliveries", params=params)
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["data"]["items"]
    return items


def _open(service: Service, page: Any, hook_id: int, capabilities: list[str], **link: Any) -> None:
    page.goto(service.link("initech", capabilities=capabilities, **link)["url"])
    page.locator(f"tr[data-endpoint='{hook_id}'] td.url a").click()
    page.wait_for_url(f"**/ui/endpoints/{hook_id}")


def test_the_page_shows_the_endpoint_with_charts_and_figures(
    service: Service, hooks: dict[str, Any], page: Any
) -> None:
    ok = hooks["ok"]
    _send(hooks, "message.sent")
    _until(lambda: _deliveries(hooks, "ok", status="succeeded"))
    _open(service, page, ok["id"], ALL)
    assert ok["url"] in page.get_by_role("heading", level=1).inner_text()
    assert "ok receiver" in page.content() and "message.*" in page.content()
    assert page.locator(".chart canvas").count() >= 3  # uPlot drew the three charts
    figures = page.locator("table.figures")
    assert figures.is_visible() and "100" in figures.inner_text()
    page.get_by_role("link", name="Last 7 days").click()
    page.wait_for_url("**window=7d")
    assert page.locator(".chart canvas").count() >= 3
    assert page.locator("tr[data-delivery]").count() == 1
    screenshot(page, "endpoint-detail-en")


def test_a_test_event_reaches_the_receiver_and_its_answer_is_shown(
    service: Service, hooks: dict[str, Any], receiver: ThreadedReceiver, page: Any
) -> None:
    ok = hooks["ok"]
    _open(service, page, ok["id"], ALL)
    form = page.locator("form.test-form")
    form.get_by_label("Data (JSON)").fill("{not json")
    form.get_by_role("button", name="Send a test event").click()
    assert "The data is not valid JSON" in page.locator("#test-data-error").inner_text()
    assert page.get_by_label("Data (JSON)").input_value() == "{not json"  # kept for fixing

    page.get_by_label("Event type").select_option("webhook.test")
    page.get_by_label("Data (JSON)").fill('{"message": "from the dashboard"}')
    before = len(receiver.receiver.to("/ok"))
    page.locator("form.test-form").get_by_role("button", name="Send a test event").click()
    outcome = page.locator("article.test-outcome")
    assert outcome.get_attribute("data-succeeded") == "true"
    assert outcome.locator(".status-code").inner_text() == "200"
    assert ANSWER in outcome.locator(".response-body").inner_text()
    assert len(receiver.receiver.to("/ok")) == before + 1
    assert b"from the dashboard" in receiver.receiver.to("/ok")[-1].body


def _a_delivery(hooks: dict[str, Any], name: str, event: str) -> dict[str, Any]:
    """A delivery of hook ``name``: the newest, or one made now (a test run with -k, or in another
    order, does not depend on the tests before it)."""
    found = _deliveries(hooks, name, limit=1)
    if not found:
        _send(hooks, event)
        found = _until(lambda: _deliveries(hooks, name, limit=1))
    return found[0]


def test_a_failed_delivery_is_retried_and_its_attempts_shown(
    service: Service, hooks: dict[str, Any], page: Any
) -> None:
    fail = hooks["fail"]
    _send(hooks, "order.created")
    [failed] = _until(lambda: _deliveries(hooks, "fail", status="failed"))
    _open(service, page, fail["id"], ALL)
    page.get_by_label("Status").first.select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=failed**")
    row = page.locator(f"tr[data-delivery='{failed['id']}']")
    assert row.get_attribute("data-status") == "failed"

    row.get_by_role("link", name=f"#{failed['id']}").click()
    page.wait_for_url(f"**/ui/deliveries/{failed['id']}")
    attempts = page.locator("article.attempt")
    assert attempts.count() == 2
    body = page.locator("pre.request-body").inner_text()  # the event as delivered
    assert '"event": "order.created"' in body and f'"id": "{failed["event_id"]}"' in body
    assert attempts.first.locator(".status-code").inner_text() == "500"
    assert "receiver broke" in attempts.first.locator(".response-body").inner_text()
    attempts.first.get_by_text("Request headers").click()
    assert "webhook-signature" in attempts.first.locator("details pre").inner_text().lower()

    page.get_by_role("button", name="Retry").click()
    page.wait_for_url("**retried=1")
    assert "Delivery queued for another attempt" in page.content()
    entries = service.admin.get(
        "/v1/audit-log", params={"tenant_id": "initech", "action": "delivery.retried"}
    )
    assert len(entries.json()["data"]["items"]) == 1  # in the audit log, as the link's doing
    _until(lambda: [d for d in _deliveries(hooks, "fail") if d["id"] == failed["id"] and d["attempts"] >= 3])

    # Replay: every delivery of the endpoint since an hour ago goes again.
    page.goto(f"{service.url}/ui/endpoints/{fail['id']}")
    page.get_by_text("Replay deliveries").click()
    since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 3600))
    page.locator("details.replay input[name=since]").fill(since)
    page.locator("details.replay").get_by_role("button", name="Replay").click()
    page.wait_for_url("**queued=1**")
    assert "1 delivery queued again." in page.content()


def test_an_open_breaker_is_shown_and_reset(service: Service, hooks: dict[str, Any], page: Any) -> None:
    trip = hooks["trip"]
    _send(hooks, "contact.created")

    def state() -> str:
        found = hooks["client"].get(f"/v1/webhooks/{trip['id']}/circuit-breaker").json()["data"]
        return str(found["state"])

    _until(lambda: state() == "open")
    _open(service, page, trip["id"], ALL)
    assert page.locator("[data-breaker]").get_attribute("data-breaker") == "open"
    page.get_by_role("button", name="Reset").click()
    page.wait_for_url("**reset=1**")
    assert "The circuit breaker was reset" in page.content()
    assert page.locator("[data-breaker]").get_attribute("data-breaker") == "closed"


def test_a_read_only_link_sees_no_forms_and_its_posts_are_refused(
    service: Service, hooks: dict[str, Any], page: Any
) -> None:
    ok, fail = hooks["ok"], hooks["fail"]
    _open(service, page, ok["id"], ["read_only"])
    assert "Read-only access" in page.content()
    for name in ("Reset", "Retry", "Replay", "Send a test event"):
        assert page.get_by_role("button", name=name).count() == 0, name
    assert page.locator("main form[method=post]").count() == 0
    token = csrf_of(page)
    delivery = _a_delivery(hooks, "fail", "order.created")
    for path, form in (
        (f"/ui/endpoints/{ok['id']}/breaker/reset", {}),
        (f"/ui/endpoints/{ok['id']}/test", {"event": "webhook.test", "data": ""}),
        (f"/ui/endpoints/{fail['id']}/replay", {"since": "2020-01-01T00:00"}),
        (f"/ui/deliveries/{delivery['id']}/retry", {}),
    ):
        refused = page.request.post(f"{service.url}{path}", form={"csrf_token": token, **form})
        assert refused.status == 403 and "read-only" in refused.text(), path
    # Without the CSRF token even a link that may change things is refused.
    _open(service, page, ok["id"], ALL)
    refused = page.request.post(f"{service.url}/ui/endpoints/{ok['id']}/breaker/reset", form={})
    assert refused.status == 403 and "CSRF" in refused.text()


def test_another_tenants_endpoint_and_delivery_are_not_found(
    service: Service, hooks: dict[str, Any], page: Any
) -> None:
    assert service.admin.post("/v1/tenants", json={"id": "umbrella", "name": "Umbrella"}).status_code == 201
    page.goto(service.link("umbrella", capabilities=ALL)["url"])
    delivery = _a_delivery(hooks, "ok", "message.received")
    for path in (f"/ui/endpoints/{hooks['ok']['id']}", f"/ui/deliveries/{delivery['id']}"):
        assert page.goto(f"{service.url}{path}").status == 404, path
    refused = page.request.post(
        f"{service.url}/ui/deliveries/{delivery['id']}/retry", form={"csrf_token": csrf_of(page)}
    )
    assert refused.status == 404


def test_the_detail_pages_have_no_serious_accessibility_violations(
    service: Service, hooks: dict[str, Any], browser: Any
) -> None:
    npm_ci(JS, "axe-core")
    _send(hooks, "order.created")  # a delivery with failed attempts to look at
    _until(lambda: [d for d in _deliveries(hooks, "fail") if d["attempts"]])
    context = browser.new_context(bypass_csp=True)  # axe is injected into the page
    page = context.new_page()
    try:
        found = {}
        _open(service, page, hooks["fail"]["id"], ALL)
        found["endpoint"] = _axe(page)
        page.locator("tr[data-delivery] a").first.click()
        page.wait_for_url("**/ui/deliveries/*")
        found["delivery"] = _axe(page)
        page.goto(f"{service.url}/ui/endpoints/{hooks['ok']['id']}")
        page.get_by_role("button", name="العربية").click()
        page.wait_for_url(f"**/ui/endpoints/{hooks['ok']['id']}")
        assert page.locator("html").get_attribute("dir") == "rtl"
        assert page.locator(".chart canvas").count() >= 3
        assert page.locator(".chart").first.get_attribute("dir") == "ltr"
        found["endpoint (ar)"] = _axe(page)
        screenshot(page, "endpoint-detail-ar")
        page.goto(f"{service.url}/ui/deliveries/{_deliveries(hooks, 'fail', limit=1)[0]['id']}")
        assert page.locator("article.attempt").count() >= 1
        found["delivery (ar)"] = _axe(page)
    finally:
        context.close()
    summary = {
        name: [(v["id"], v["impact"], v["help"]) for v in violations] for name, violations in found.items()
    }
    assert all(not violations for violations in summary.values()), summary


def test_a_phone_sees_the_page_without_sideways_scrolling(
    service: Service, hooks: dict[str, Any], browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        _open(service, page, hooks["ok"]["id"], ALL)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        page.keyboard.press("Tab")  # the skip link first: the page is keyboard-navigable
        assert page.evaluate("document.activeElement.className") == "skip-link"
    finally:
        context.close()


def test_the_operator_sees_a_tenants_endpoint_and_its_links_keep_the_tenant(
    service: Service, hooks: dict[str, Any], page: Any
) -> None:
    ok = hooks["ok"]
    _send(hooks, "message.sent")
    [delivery] = _until(lambda: _deliveries(hooks, "ok", limit=1))
    page.goto(f"{service.url}/ui/sign-in")
    page.get_by_label("API key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/operator")
    page.goto(f"{service.url}/ui/endpoints?tenant=initech")
    page.locator(f"tr[data-endpoint='{ok['id']}'] td.url a").click()
    page.wait_for_url(f"**/ui/endpoints/{ok['id']}?tenant=initech")
    page.get_by_role("link", name="Last hour").click()
    page.wait_for_url("**window=1h**")
    assert "tenant=initech" in page.url and page.locator(".chart canvas").count() >= 3
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=**")
    assert "tenant=initech" in page.url
    page.locator(f"tr[data-delivery='{delivery['id']}'] a").click()
    page.wait_for_url(f"**/ui/deliveries/{delivery['id']}?tenant=initech")
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url("**retried=1**")
    assert "tenant=initech" in page.url and "Delivery queued for another attempt" in page.content()
    page.get_by_role("link", name="Back to the endpoint").click()
    page.wait_for_url(f"**/ui/endpoints/{ok['id']}?tenant=initech")


def test_the_delivery_log_pages_with_its_cursor(service: Service, hooks: dict[str, Any], page: Any) -> None:
    example = hooks["client"].get("/v1/event-types/message.sent").json()["data"]["example"]
    batch = [{"event": "message.sent", "data": example} for _ in range(30)]
    assert hooks["client"].post("/v1/events/batch", json={"events": batch}).status_code == 202
    total = len(_until(lambda: (found := _deliveries(hooks, "ok", limit=100)) and len(found) >= 30 and found))
    _open(service, page, hooks["ok"]["id"], ["read_only"])
    rows = page.locator("tr[data-delivery]")
    assert rows.count() == 25
    first_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.delivery)"))
    page.get_by_role("link", name="Older deliveries").click()
    page.wait_for_url("**cursor=**")
    second_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.delivery)"))
    assert not first_page & second_page and len(first_page | second_page) == min(total, 50)


def test_the_endpoints_list_shows_each_endpoints_success_over_the_day(
    service: Service, hooks: dict[str, Any], page: Any
) -> None:
    _send(hooks, "message.received")
    _until(lambda: [d for d in _deliveries(hooks, "ok", limit=5) if d["status"] == "succeeded"])
    _send(hooks, "order.created")
    _until(lambda: [d for d in _deliveries(hooks, "fail", limit=5) if d["status"] == "failed"])
    page.goto(service.link("initech")["url"])
    ok_row = page.locator(f"tr[data-endpoint='{hooks['ok']['id']}'] td.trend")
    assert ok_row.locator("svg.sparkline polyline").get_attribute("points")
    assert ok_row.inner_text().strip() == "100%"
    failing = page.locator(f"tr[data-endpoint='{hooks['fail']['id']}'] td.trend").inner_text().strip()
    assert failing == "0%"
