"""The dashboard in a real browser: Debian's chromium (``/usr/bin/chromium``, installed by ``.ci/run``;
never a browser download) driven by Playwright against a real ``hookline serve`` process on SQLite.

What users rely on: a portal link opens its tenant's dashboard and nothing else; a read-only link can
change nothing (no forms, and the POSTs are refused); an expired, revoked or tampered link is refused; a
form without its CSRF token is refused; a tenant key signs in through the form, a wrong key does not;
Arabic pages are right-to-left with the navigation mirrored; no page has an accessibility violation of
serious or critical impact by axe-core (``tests/js``, from the npm registry). Screenshots of the main
pages, English and Arabic, are saved under ``docs/screenshots/`` (the README shows them).
"""

from __future__ import annotations

import contextlib
import html
import http.server
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.procs import ADMIN_KEY, Processes, base_env, start_api
from tests.samples import MESSAGE
from tests.test_portal_links import flipped
from tests.test_seed_receivers import JS, npm_ci

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
AXE = JS / "node_modules" / "axe-core" / "axe.min.js"
# The flags this machine's chromium needs headless (its network is closed: no background connections).
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
)


@dataclass
class Service:
    url: str
    database: Path
    admin: httpx.Client

    def tenant(self, tenant_id: str, hook_url: str) -> tuple[str, dict[str, Any]]:
        """A tenant with a key (returned) and one webhook (returned)."""
        assert (
            self.admin.post("/v1/tenants", json={"id": tenant_id, "name": tenant_id.title()}).status_code
            == 201
        )
        key = self.admin.post(f"/v1/tenants/{tenant_id}/keys").json()["data"]["key"]
        hook = httpx.post(
            f"{self.url}/v1/webhooks",
            json={"url": hook_url, "events": ["message.*"], "description": f"{tenant_id}'s receiver"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert hook.status_code == 201, hook.text
        return key, hook.json()["data"]

    def link(self, tenant_id: str, **body: Any) -> dict[str, Any]:
        made = self.admin.post(f"/v1/tenants/{tenant_id}/portal-links", json=body)
        assert made.status_code == 201, made.text
        data: dict[str, Any] = made.json()["data"]
        return data

    def webhook(self, tenant_id: str, webhook_id: int) -> dict[str, Any]:
        found = self.admin.get(f"/v1/webhooks/{webhook_id}", params={"tenant_id": tenant_id})
        assert found.status_code == 200, found.text
        data: dict[str, Any] = found.json()["data"]
        return data


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("dashboard")
    database = directory / "hookline.db"
    procs = Processes(directory)
    try:
        env = base_env(HOOKLINE_DATABASE_URL=f"sqlite:///{database}")
        _, url = start_api(procs, "serve", env, command="serve")
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as admin:
            yield Service(url, database, admin)
    finally:
        procs.kill_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def tenants(service: Service) -> dict[str, Any]:
    """Two tenants with a webhook each."""
    _, a = service.tenant("acme", "https://acme.example/hooks/one")
    b_key, b = service.tenant("globex", "https://globex.example/secret-receiver")
    return {"a": a, "b": b, "b_key": b_key}


def csrf_of(page: Any) -> str:
    token: str = page.locator("input[name=csrf_token]").first.get_attribute("value")
    return token


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


# --- portal links ---------------------------------------------------------------------------------------


def test_a_portal_link_opens_its_tenant_and_changes_go_through_the_api(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    a = tenants["a"]
    link = service.link("acme", capabilities=["manage_endpoints"], note="in Acme's app")
    page.goto(link["url"])
    assert page.url.endswith("/ui/endpoints")  # the token does not stay in the address bar
    row = page.locator(f"tr[data-endpoint='{a['id']}']")
    assert "https://acme.example/hooks/one" in row.inner_text()
    assert "globex" not in page.content()  # never the other tenant's
    screenshot(page, "endpoints-en")

    row.get_by_role("button", name="Disable").click()
    page.wait_for_url("**/ui/endpoints")
    assert "Disabled" in page.locator(f"tr[data-endpoint='{a['id']}']").inner_text()
    assert service.webhook("acme", a["id"])["active"] is False
    # Recorded in the audit log as the link's doing, from the browser's address.
    entries = service.admin.get("/v1/audit-log", params={"tenant_id": "acme", "action": "webhook.updated"})
    [entry] = entries.json()["data"]["items"]
    assert entry["actor"] == {"key_id": f"portal_link:{link['id']}", "address": "127.0.0.1"}
    assert entry["changes"]["active"] == {"from": True, "to": False}

    page.locator(f"tr[data-endpoint='{a['id']}']").get_by_role("button", name="Enable").click()
    page.wait_for_url("**/ui/endpoints")
    assert service.webhook("acme", a["id"])["active"] is True


def test_another_tenants_endpoint_is_not_found_through_a_link(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    b = tenants["b"]
    page.goto(service.link("acme", capabilities=["manage_endpoints"])["url"])
    refused = page.request.post(
        f"{service.url}/ui/endpoints/{b['id']}/active", form={"csrf_token": csrf_of(page), "active": "false"}
    )
    assert refused.status == 404 and f"webhook '{b['id']}' not found" in html.unescape(refused.text())
    assert service.webhook("globex", b["id"])["active"] is True


def test_a_read_only_link_shows_no_forms_and_its_posts_are_refused(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    a = tenants["a"]
    page.goto(service.link("acme")["url"])  # capabilities default to read_only
    assert "Read-only access" in page.content()
    assert page.get_by_role("button", name="Disable").count() == 0
    assert page.locator("form[action*='/active']").count() == 0
    refused = page.request.post(
        f"{service.url}/ui/endpoints/{a['id']}/active", form={"csrf_token": csrf_of(page), "active": "false"}
    )
    assert refused.status == 403 and "read-only" in refused.text()
    assert service.webhook("acme", a["id"])["active"] is True


def test_a_form_without_its_csrf_token_is_refused(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    a = tenants["a"]
    page.goto(service.link("acme", capabilities=["manage_endpoints"])["url"])
    for form in ({"active": "false"}, {"active": "false", "csrf_token": "not-the-token"}):
        refused = page.request.post(f"{service.url}/ui/endpoints/{a['id']}/active", form=form)
        assert refused.status == 403 and "CSRF" in refused.text()
    assert service.webhook("acme", a["id"])["active"] is True


def test_expired_revoked_and_tampered_links_are_refused(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    expired = service.link("acme", capabilities=["manage_endpoints"])
    with contextlib.closing(sqlite3.connect(service.database)) as db, db:
        db.execute(
            "UPDATE portal_links SET expires_at = '2020-01-01 00:00:00.000000' WHERE id = ?", (expired["id"],)
        )
    response = page.goto(expired["url"])
    assert response.status == 403 and "This portal link has expired" in page.content()

    revoked = service.link("acme")
    page.goto(revoked["url"])
    assert page.url.endswith("/ui/endpoints")  # it worked...
    assert service.admin.delete(f"/v1/tenants/acme/portal-links/{revoked['id']}").status_code == 200
    # ... and the session it opened ends with it (the dashboard looks at the link every few seconds).
    page.wait_for_timeout(5_500)
    response = page.goto(f"{service.url}/ui/endpoints")
    assert response.status == 403 and "This portal link was revoked" in page.content()
    response = page.goto(revoked["url"])
    assert response.status == 403 and "This portal link was revoked" in page.content()

    token = service.link("acme", capabilities=["manage_endpoints"])["url"]
    tampered = flipped(token, len(token) - 5)
    response = page.goto(tampered)
    assert response.status == 403 and "This portal link is not valid" in page.content()
    assert page.locator("input[name=csrf_token]").count() == 0  # no session came of it


# --- sign-in with a key ----------------------------------------------------------------------------------


def test_a_tenant_key_signs_in_and_out_and_a_wrong_key_does_not(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    page.goto(f"{service.url}/ui")
    assert page.url.endswith("/ui/sign-in")
    screenshot(page, "sign-in-en")
    page.get_by_label("API key").fill("hk_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    assert "This API key is not valid." in page.content()

    page.get_by_label("API key").fill(tenants["b_key"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/endpoints")
    assert "https://globex.example/secret-receiver" in page.content()
    assert "acme.example" not in page.content()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/sign-in")
    assert page.goto(f"{service.url}/ui/endpoints").url.endswith("/ui/sign-in")


# --- languages and accessibility ------------------------------------------------------------------------


def test_arabic_is_right_to_left_with_the_navigation_mirrored(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    page.goto(service.link("acme", locale="ar", capabilities=["manage_endpoints"])["url"])
    html = page.locator("html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == ("ar", "rtl")
    assert page.get_by_role("heading", level=1).inner_text() == "نقاط الاستقبال"
    brand = page.locator("nav .brand").bounding_box()
    links = page.get_by_role("link", name="أنواع الأحداث").bounding_box()
    assert brand["x"] > links["x"]  # the brand on the right, the links to its left
    url_cell = page.locator(f"tr[data-endpoint='{tenants['a']['id']}'] td.url").bounding_box()
    events_cell = page.locator(f"tr[data-endpoint='{tenants['a']['id']}'] td").nth(1).bounding_box()
    assert url_cell["x"] > events_cell["x"]  # the table's first column on the right
    screenshot(page, "endpoints-ar")


def test_the_language_switch_is_kept(service: Service, tenants: dict[str, Any], page: Any) -> None:
    page.goto(service.link("acme")["url"])
    assert page.locator("html").get_attribute("dir") == "ltr"
    page.get_by_role("button", name="العربية").click()
    page.wait_for_url("**/ui/endpoints")
    assert page.locator("html").get_attribute("dir") == "rtl"
    page.goto(f"{service.url}/ui/event-types")
    assert page.locator("html").get_attribute("lang") == "ar"
    screenshot(page, "event-types-ar", full_page=False)


def _axe(page: Any) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text())
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_no_page_has_serious_accessibility_violations(
    service: Service, tenants: dict[str, Any], browser: Any
) -> None:
    npm_ci(JS, "axe-core")
    context = browser.new_context(bypass_csp=True)  # axe is injected into the page
    page = context.new_page()
    try:
        pages = []
        page.goto(f"{service.url}/ui/sign-in")
        pages.append(("sign-in", _axe(page)))
        page.goto(service.link("acme", capabilities=["manage_endpoints", "view_secrets"])["url"])
        pages.append(("endpoints", _axe(page)))
        page.goto(f"{service.url}/ui/endpoints/new")
        pages.append(("new endpoint", _axe(page)))
        screenshot(page, "endpoint-form-en")
        page.goto(f"{service.url}/ui/endpoints/{tenants['a']['id']}/edit")
        pages.append(("edit endpoint", _axe(page)))
        page.get_by_role("button", name="Show the secret").click()
        pages.append(("secret", _axe(page)))
        page.goto(f"{service.url}/ui/endpoints/{tenants['a']['id']}/delete")
        pages.append(("delete confirmation", _axe(page)))
        page.goto(f"{service.url}/ui/event-types")
        pages.append(("event types", _axe(page)))
        page.get_by_role("button", name="العربية").click()
        page.wait_for_url("**/ui/event-types")
        pages.append(("event types (ar)", _axe(page)))
        page.goto(f"{service.url}/ui/endpoints")
        pages.append(("endpoints (ar)", _axe(page)))
        page.goto(f"{service.url}/ui/endpoints/{tenants['a']['id']}/edit")
        pages.append(("edit endpoint (ar)", _axe(page)))
        page.get_by_role("button", name="تسجيل الخروج").click()
        context.clear_cookies()  # the language too: the operator signs in in English
        page.goto(f"{service.url}/ui/sign-in")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/operator")
        pages.append(("operator", _axe(page)))
        screenshot(page, "operator-en")
        page.get_by_text("New portal link").click()
        page.get_by_role("button", name="Make the link").click()
        pages.append(("portal link made", _axe(page)))
        page.goto(f"{service.url}/ui/portal?token=not-a-token")
        pages.append(("refused link", _axe(page)))
    finally:
        context.close()
    found = {name: [(v["id"], v["impact"], v["help"]) for v in violations] for name, violations in pages}
    assert all(not violations for violations in found.values()), found


def test_nothing_is_framed_unless_the_operator_allows_it(service: Service) -> None:
    response = httpx.get(f"{service.url}/ui/sign-in")
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"


# --- creating, editing, secrets, deleting -----------------------------------------------------------------


def test_an_endpoint_is_created_edited_shown_its_secret_and_deleted(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    page.goto(service.link("acme", capabilities=["manage_endpoints", "view_secrets"])["url"])
    page.get_by_role("button", name="New endpoint").click()
    page.wait_for_url("**/ui/endpoints/new")
    # A URL the API refuses: the form says so in the API's own words, and keeps what was typed.
    page.get_by_label("URL", exact=True).fill("https://10.1.2.3/hook")
    page.get_by_label("Description", exact=True).fill("orders")
    page.get_by_role("button", name="Create endpoint").click()
    api = service.admin.post("/v1/webhooks", json={"url": "https://10.1.2.3/hook", "tenant_id": "acme"})
    assert api.status_code == 400
    assert page.get_by_role("alert").inner_text() == api.json()["error"]
    assert page.get_by_label("Description", exact=True).input_value() == "orders"

    page.get_by_label("URL", exact=True).fill("https://acme.example/orders")
    page.get_by_role("checkbox", name="message.received").check()
    page.get_by_label("Other events (wildcards)").fill("order.*")
    page.get_by_role("button", name="Create endpoint").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Endpoint created"
    secret = page.locator("code.secret").inner_text()
    assert secret.startswith("whsec_")
    hooks = service.admin.get("/v1/webhooks", params={"tenant_id": "acme"}).json()["data"]["items"]
    [made] = [h for h in hooks if h["url"] == "https://acme.example/orders"]
    assert made["events"] == ["message.received", "order.*"] and made["description"] == "orders"

    page.goto(f"{service.url}/ui/endpoints/{made['id']}/edit")
    page.get_by_label("Description", exact=True).fill("orders, moved")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/ui/endpoints")
    assert "orders, moved" in page.locator(f"tr[data-endpoint='{made['id']}']").inner_text()

    page.goto(f"{service.url}/ui/endpoints/{made['id']}/edit")
    page.get_by_role("button", name="Show the secret").click()
    assert page.locator("code.secret").inner_text() == secret
    page.goto(f"{service.url}/ui/endpoints/{made['id']}/edit")
    page.get_by_role("button", name="Rotate the secret").click()
    rotated = page.locator("code.secret").inner_text()
    assert rotated != secret and rotated.startswith("whsec_")
    stored = service.admin.get(f"/v1/webhooks/{made['id']}/secret", params={"tenant_id": "acme"})
    assert stored.json()["data"]["secret"] == rotated
    actions = service.admin.get("/v1/audit-log", params={"tenant_id": "acme", "resource_id": str(made["id"])})
    assert [e["action"] for e in actions.json()["data"]["items"]][:3] == [
        "webhook.secret_revealed",  # the admin's own read just now
        "webhook.secret_rotated",
        "webhook.secret_revealed",
    ]

    page.goto(f"{service.url}/ui/endpoints/{made['id']}/edit")
    page.get_by_role("link", name="Delete this endpoint").click()
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/ui/endpoints")
    gone = service.admin.get(f"/v1/webhooks/{made['id']}", params={"tenant_id": "acme"})
    assert gone.status_code == 404


def test_secrets_stay_hidden_without_the_capability(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    a = tenants["a"]
    page.goto(service.link("acme", capabilities=["manage_endpoints"])["url"])
    page.goto(f"{service.url}/ui/endpoints/{a['id']}/edit")
    assert page.get_by_role("button", name="Show the secret").count() == 0
    assert "This session cannot show or rotate secrets." in page.content()
    refused = page.request.post(
        f"{service.url}/ui/endpoints/{a['id']}/secret", form={"csrf_token": csrf_of(page)}
    )
    assert refused.status == 403 and "whsec_" not in refused.text()


def test_the_operator_sees_queues_and_failing_endpoints_across_tenants(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    b = tenants["b"]
    key = {"Authorization": f"Bearer {tenants['b_key']}"}
    event = {"event": "message.received", "data": MESSAGE}
    posted = httpx.post(f"{service.url}/v1/events", json=event, headers=key)
    assert posted.status_code == 202, posted.text
    disabled = httpx.patch(f"{service.url}/v1/webhooks/{b['id']}", json={"active": False}, headers=key)
    assert disabled.status_code == 200, disabled.text
    try:
        page.goto(f"{service.url}/ui/sign-in")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/operator")
        failing = page.locator(f"tr[data-failing='{b['id']}']")
        assert "globex" in failing.inner_text() and "Disabled" in failing.inner_text()
        queues = page.get_by_role("heading", name="Queues").locator("xpath=..").inner_text()
        assert "globex" in queues  # its delivery waits (held: the endpoint is disabled)
        page.get_by_role("link", name="globex").first.click()
        page.wait_for_url("**/ui/endpoints?tenant=globex")
        assert "https://globex.example/secret-receiver" in page.content()
    finally:
        httpx.patch(f"{service.url}/v1/webhooks/{b['id']}", json={"active": True}, headers=key)


def test_phone_width_keyboard_and_the_viewers_time_zone(
    service: Service, tenants: dict[str, Any], browser: Any
) -> None:
    """At 375 px nothing runs off the page (wide tables scroll in their own box); the first Tab lands
    on a visible "Skip to content" link; times are shown in the viewer's own time zone."""
    link = service.link("globex", capabilities=["manage_endpoints"])
    context = browser.new_context(
        viewport={"width": 375, "height": 740}, timezone_id="Asia/Riyadh", locale="en-GB", is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto(link["url"])
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than the phone"
        screenshot(page, "endpoints-phone-en")

        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.textContent.trim()")
        assert focused == "Skip to content"
        box = page.evaluate(
            "(() => { const r = document.activeElement.getBoundingClientRect(); return r.left; })()"
        )
        assert 0 <= box < 375  # on screen once focused

        page.goto(f"{service.url}/ui/sign-in")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/operator")
        cell = page.locator("time").first
        shown, stamp = cell.inner_text(), cell.get_attribute("datetime")
        assert stamp is not None
        riyadh = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone(timedelta(hours=3)))
        assert f"{riyadh.hour % 12 or 12}:{riyadh:%M}" in shown, (shown, stamp)  # 1:47 PM in Riyadh
    finally:
        context.close()


def test_a_tenants_theme_and_a_links_own_over_it(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    themed = service.admin.patch(
        "/v1/tenants/acme", json={"theme": {"accent": "#aa3300", "logo_url": "https://cdn.example/acme.svg"}}
    )
    assert themed.status_code == 200, themed.text
    try:
        page.goto(service.link("acme", capabilities=["manage_endpoints"])["url"])
        button = page.get_by_role("button", name="New endpoint")
        for _ in range(30):  # each process reads a tenant's theme at most every 5 seconds
            if button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(170, 51, 0)":
                break
            page.wait_for_timeout(250)
            page.reload()
        assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(170, 51, 0)"
        assert page.locator("nav img.logo").get_attribute("src") == "https://cdn.example/acme.svg"
        assert page.locator("html").get_attribute("data-theme") is None  # the viewer's own light or dark

        page.goto(
            service.link(
                "acme", capabilities=["manage_endpoints"], theme={"accent": "#0a7d55", "mode": "dark"}
            )["url"]
        )
        button = page.get_by_role("button", name="New endpoint")
        assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(10, 125, 85)"
        assert page.locator("html").get_attribute("data-theme") == "dark"
        assert (
            page.locator("nav img.logo").get_attribute("src") == "https://cdn.example/acme.svg"
        )  # the tenant's
        screenshot(page, "endpoints-themed-dark")
    finally:
        service.admin.patch("/v1/tenants/acme", json={"theme": {}})


def test_a_link_for_secrets_alone_shows_them_on_the_endpoints_page(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    a = tenants["a"]
    page.goto(service.link("acme", capabilities=["view_secrets"])["url"])
    assert page.get_by_role("link", name="Edit").count() == 0  # no manage_endpoints
    page.locator(f"tr[data-endpoint='{a['id']}'] td.url a").click()
    page.wait_for_url(f"**/ui/endpoints/{a['id']}")
    page.get_by_role("button", name="Show the secret").click()
    stored = service.admin.get(f"/v1/webhooks/{a['id']}/secret", params={"tenant_id": "acme"})
    assert page.locator("code.secret").inner_text() == stored.json()["data"]["secret"]
    page.get_by_role("link", name="Back to the endpoint").click()
    page.wait_for_url(f"**/ui/endpoints/{a['id']}")


def test_secret_headers_are_set_kept_and_never_shown(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    a = tenants["a"]
    page.goto(service.link("acme", capabilities=["manage_endpoints"])["url"])
    page.goto(f"{service.url}/ui/endpoints/{a['id']}/edit")
    page.get_by_text("More options").click()
    page.get_by_label("Secret headers").fill("Authorization: Bearer s3cr3t-token")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/ui/endpoints")
    assert service.webhook("acme", a["id"])["secret_headers"] == {"Authorization": "[redacted]"}

    page.goto(f"{service.url}/ui/endpoints/{a['id']}/edit")
    assert "s3cr3t-token" not in page.content()
    assert "Authorization" in (page.locator("#secret_headers_help").text_content() or "")
    page.get_by_text("More options").click()
    page.get_by_label("Description", exact=True).fill("acme's receiver, with a token")
    page.get_by_role("button", name="Save").click()  # the secret header left empty: kept
    page.wait_for_url("**/ui/endpoints")
    assert service.webhook("acme", a["id"])["secret_headers"] == {"Authorization": "[redacted]"}

    page.goto(f"{service.url}/ui/endpoints/{a['id']}/edit")
    page.get_by_text("More options").click()
    page.get_by_label("Remove the secret headers").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/ui/endpoints")
    assert service.webhook("acme", a["id"])["secret_headers"] == {}
    service.admin.patch(
        f"/v1/webhooks/{a['id']}", params={"tenant_id": "acme"}, json={"description": "acme's receiver"}
    )


def test_the_operator_makes_a_tenant_and_a_portal_link_and_revokes_it(service: Service, browser: Any) -> None:
    """A new operator needs no API docs: tenant and portal link from the operator's view."""
    operator = browser.new_context()
    customer = browser.new_context()
    try:
        page = operator.new_page()
        page.goto(f"{service.url}/ui/sign-in")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/operator")
        page.get_by_text("New tenant").click()
        page.get_by_label("Name").fill("Hooli")
        page.get_by_label("ID (optional)").fill("hooli")
        page.get_by_role("button", name="Create tenant").click()
        page.wait_for_url("**/ui/operator")
        assert service.admin.get("/v1/tenants/hooli").json()["data"]["name"] == "Hooli"

        page.get_by_text("New portal link").click()
        page.get_by_label("Tenant", exact=True).select_option("hooli")
        page.get_by_label("Manage endpoints").check()
        page.get_by_label("Language").select_option("ar")
        page.get_by_label("Note").fill("in Hooli's settings page")
        page.get_by_role("button", name="Make the link").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Portal link made"
        url = page.get_by_label("Link").input_value()
        assert "/ui/portal?token=" in url

        seen = customer.new_page()
        seen.goto(url)
        assert seen.locator("html").get_attribute("dir") == "rtl"
        assert seen.get_by_role("button", name="نقطة استقبال جديدة").count() == 1  # may manage endpoints

        page.goto(f"{service.url}/ui/operator")
        [link] = service.admin.get("/v1/tenants/hooli/portal-links").json()["data"]["items"]
        assert link["capabilities"] == ["manage_endpoints"] and link["locale"] == "ar"
        page.get_by_role("button", name=f"Revoke {link['id']}").click()
        page.wait_for_url("**/ui/operator")
        [link] = service.admin.get("/v1/tenants/hooli/portal-links").json()["data"]["items"]
        assert link["revoked_at"] is not None
        assert customer.new_page().goto(url).status == 403
    finally:
        operator.close()
        customer.close()


# --- embedding ------------------------------------------------------------------------------------------


class PlatformPage:
    """A platform's own page on another site (``localhost``, not ``127.0.0.1``): it frames ``portal``."""

    def __init__(self) -> None:
        self.portal = "about:blank"
        owner = self

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (
                    "<!doctype html><title>Platform</title><h1>Our app</h1>"
                    f'<iframe src="{owner.portal}" width="1000" height="700" title="Webhooks"></iframe>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://localhost:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_platform_embeds_the_portal_from_an_allowed_origin_only(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The link in a cross-site iframe: the session cookie (SameSite=None; Partitioned) works inside the
    frame, forms too; a site not in HOOKLINE_PORTAL_FRAME_ANCESTORS gets nothing framed."""
    directory = tmp_path_factory.mktemp("embedded")
    procs = Processes(directory)
    allowed, other = PlatformPage(), PlatformPage()
    context = browser.new_context()
    try:
        env = base_env(
            HOOKLINE_DATABASE_URL=f"sqlite:///{directory / 'hookline.db'}",
            HOOKLINE_PORTAL_FRAME_ANCESTORS=allowed.origin,
        )
        _, url = start_api(procs, "serve", env, command="serve")
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as admin:
            service = Service(url, directory / "hookline.db", admin)
            _, hook = service.tenant("embedco", "https://embedco.example/hooks")
            allowed.portal = service.link("embedco", capabilities=["manage_endpoints"])["url"]
            other.portal = service.link("embedco", capabilities=["manage_endpoints"])["url"]

            page = context.new_page()
            page.goto(allowed.origin)
            frame = page.frame_locator("iframe")
            row = frame.locator(f"tr[data-endpoint='{hook['id']}']")
            assert "https://embedco.example/hooks" in row.inner_text()
            row.get_by_role("button", name="Disable").click()
            frame.locator(f"tr[data-endpoint='{hook['id']}'] .badge.bad").wait_for()
            assert service.webhook("embedco", hook["id"])["active"] is False

            blocked = context.new_page()
            blocked.goto(other.origin, wait_until="load")
            [framed] = [f for f in blocked.frames if f != blocked.main_frame]
            # Chromium refuses the framed page (frame-ancestors) and shows its own error page instead.
            for _ in range(100):
                if framed.url.startswith("chrome-error://"):
                    break
                blocked.wait_for_timeout(100)
            assert framed.url.startswith("chrome-error://"), framed.url
            assert blocked.frame_locator("iframe").locator("tr[data-endpoint]").count() == 0
    finally:
        context.close()
        allowed.close()
        other.close()
        procs.kill_all()


def test_an_unknown_page_is_a_page_for_a_browser_and_json_for_the_api(service: Service, page: Any) -> None:
    response = page.goto(f"{service.url}/ui/no-such-page")
    assert response.status == 404 and response.headers["content-type"].startswith("text/html")
    assert page.get_by_role("heading", level=1).inner_text() == "no such route: GET /ui/no-such-page"
    as_api = httpx.get(f"{service.url}/ui/no-such-page", headers={"Accept": "application/json"})
    assert as_api.status_code == 404 and as_api.json()["error"] == "no such route: GET /ui/no-such-page"
    assert httpx.get(f"{service.url}/v1/nope", headers={"Accept": "text/html"}).json()["code"] == 404


def test_signing_out_of_a_portal_links_session_ends_it(
    service: Service, tenants: dict[str, Any], page: Any
) -> None:
    page.goto(service.link("acme", capabilities=["manage_endpoints"])["url"])
    assert [c["name"] for c in page.context.cookies()] == ["hookline_session"]
    page.get_by_role("button", name="Sign out").click()
    assert page.get_by_role("heading", level=1).inner_text() == "You have signed out."
    assert page.context.cookies() == []  # the partitioned cookie deleted in its own partition
    assert page.goto(f"{service.url}/ui/endpoints").url.endswith("/ui/sign-in")
