"""Portal links over the API (admin key), on both backends: what a link is made with and what is
refused, the list without URLs, revocation, the audit log; and the signed tokens behind links and
dashboard sessions (``hookline.signed_tokens``). The browser's side is tests/test_dashboard_browser.py."""

from __future__ import annotations

import string
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.sealing import Keyring, generate_key
from hookline.signed_tokens import PORTAL_LINK, SESSION, BadToken, ExpiredToken, Signer
from tests.conftest import Api, assert_error, assert_ok


async def _link(api: Api, tenant: str, code: int = 201, **body: Any) -> Any:
    response = await api.http.post(f"/v1/tenants/{tenant}/portal-links", json=body, headers=api.admin)
    if code != 201:
        return assert_error(response, code)
    return assert_ok(response, 201)


async def test_a_link_is_made_listed_and_revoked(api: Api) -> None:
    tenant, auth = await api.tenant()
    made = await _link(
        api,
        tenant,
        capabilities=["send_tests", "manage_endpoints", "send_tests"],
        expires_in=600,
        theme={"accent": "#0a7d55", "logo_url": "https://cdn.example/logo.svg", "mode": "dark"},
        locale="ar",
        note="Acme's app",
    )
    assert made["capabilities"] == ["manage_endpoints", "send_tests"]  # deduplicated, in a fixed order
    assert made["theme"] == {"accent": "#0a7d55", "logo_url": "https://cdn.example/logo.svg", "mode": "dark"}
    expires = datetime.fromisoformat(made["expires_at"]) - datetime.fromisoformat(made["created_at"])
    assert expires == timedelta(seconds=600)
    url = urlsplit(made["url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "hookline.test", "/ui/portal")
    assert list(parse_qs(url.query)) == ["token"]
    default = await _link(api, tenant)
    assert default["capabilities"] == [] and default["locale"] is None  # read-only, for an hour
    hour = datetime.fromisoformat(default["expires_at"]) - datetime.fromisoformat(default["created_at"])
    assert hour == timedelta(hours=1)

    listed = assert_ok(await api.http.get(f"/v1/tenants/{tenant}/portal-links", headers=api.admin))
    assert [link["id"] for link in listed["items"]] == [default["id"], made["id"]]
    assert all("url" not in link for link in listed["items"])  # shown once
    revoked = await api.http.delete(f"/v1/tenants/{tenant}/portal-links/{made['id']}", headers=api.admin)
    assert assert_ok(revoked) == {"id": made["id"], "deleted": True}
    listed = assert_ok(await api.http.get(f"/v1/tenants/{tenant}/portal-links", headers=api.admin))
    assert [link["revoked_at"] is not None for link in listed["items"]] == [False, True]

    entries = assert_ok(await api.http.get("/v1/audit-log?resource_type=portal_link", headers=auth))["items"]
    assert [(e["action"], e["resource"]["id"]) for e in entries] == [
        ("portal_link.revoked", made["id"]),
        ("portal_link.created", default["id"]),
        ("portal_link.created", made["id"]),
    ]
    assert entries[-1]["changes"]["capabilities"] == ["manage_endpoints", "send_tests"]
    assert "token" not in str(entries)


async def test_what_a_link_cannot_be_made_with(api: Api) -> None:
    tenant, auth = await api.tenant()
    body = await _link(api, tenant, 400, capabilities=["read_only", "send_tests"])
    assert body["error"] == "capabilities: 'read_only' cannot be combined with other capabilities"
    await _link(api, tenant, 400, capabilities=["everything"])
    await _link(api, tenant, 400, capabilities=[])
    await _link(api, tenant, 400, expires_in=7 * 86400 + 1)
    await _link(api, tenant, 400, expires_in=59)
    await _link(api, tenant, 400, theme={"accent": "red"})
    await _link(api, tenant, 400, theme={"logo_url": "http://cdn.example/logo.png"})
    await _link(api, tenant, 400, theme={"logo_url": 'https://x.example/"onerror="alert(1)'})
    await _link(api, tenant, 400, locale="fr")
    assert_error(
        await api.http.post("/v1/tenants/nobody/portal-links", json={}, headers=api.admin),
        404,
        "tenant 'nobody' not found",
    )
    # Only the admin key makes, lists or revokes links: a tenant's own key cannot widen its access.
    assert_error(await api.http.post(f"/v1/tenants/{tenant}/portal-links", json={}, headers=auth), 403)
    assert_error(
        await api.http.delete(f"/v1/tenants/{tenant}/portal-links/pl_nope", headers=api.admin),
        404,
        "portal link 'pl_nope' not found",
    )


async def test_a_link_of_one_tenant_is_not_revoked_through_another(api: Api) -> None:
    a, _ = await api.tenant("A")
    b, _ = await api.tenant("B")
    link = await _link(api, a)
    response = await api.http.delete(f"/v1/tenants/{b}/portal-links/{link['id']}", headers=api.admin)
    assert_error(response, 404)
    listed = assert_ok(await api.http.get(f"/v1/tenants/{a}/portal-links", headers=api.admin))
    assert listed["items"][0]["revoked_at"] is None


# --- signed tokens ---------------------------------------------------------------------------------------


BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def flipped(token: str, position: int) -> str:
    """``token`` with the top bit of one base64url digit flipped (the low bits of a segment's last digit
    may be padding that decodes the same either way; the top bit never is); separators become digits."""
    char = token[position]
    other = BASE64URL[BASE64URL.index(char) ^ 32] if char in BASE64URL else "A"
    return token[:position] + other + token[position + 1 :]


def test_a_token_reads_back_and_any_change_to_it_is_refused() -> None:
    signer = Signer(Keyring.parse(generate_key()), b"", PORTAL_LINK)
    token = signer.sign({"link": "pl_1"})
    assert signer.read(token, max_age=60) == {"link": "pl_1"}
    for position in range(len(token)):
        changed = flipped(token, position)
        with pytest.raises(BadToken):
            signer.read(changed, max_age=60)
    with pytest.raises(BadToken):
        signer.read("", max_age=60)


@given(st.text(max_size=300))
def test_no_made_up_token_is_accepted(text: str) -> None:
    signer = Signer(Keyring.parse("wMjS6aTZbBT0o0cfsDWRxGOVhGdc_LO5Jtv5sC6iwBE"), b"", SESSION)
    with pytest.raises(BadToken):
        signer.read(text, max_age=60)


def test_tokens_are_bound_to_their_purpose_key_and_age() -> None:
    old, new = generate_key(), generate_key()
    before = Signer(Keyring.parse(old), b"", PORTAL_LINK)
    token = before.sign({"link": "pl_1"})
    # Another purpose, or another key, does not read it...
    with pytest.raises(BadToken):
        Signer(Keyring.parse(old), b"", SESSION).read(token, max_age=60)
    with pytest.raises(BadToken):
        Signer(Keyring.parse(new), b"", PORTAL_LINK).read(token, max_age=60)
    # ... but during a key rotation ("new,old") the old key's tokens still read, and new ones are signed
    # with the new key.
    rotating = Signer(Keyring.parse(f"{new},{old}"), b"", PORTAL_LINK)
    assert rotating.read(token, max_age=60) == {"link": "pl_1"}
    assert Signer(Keyring.parse(new), b"", PORTAL_LINK).read(rotating.sign({"x": 1}), max_age=60) == {"x": 1}
    # Too old.
    time.sleep(1.1)
    with pytest.raises(ExpiredToken):
        before.read(token, max_age=0)


async def test_only_the_dashboards_forms_may_be_form_encoded(api: Api) -> None:
    """The API stays JSON-only; the exception for the dashboard's HTML forms is its own prefix."""
    form = {"Content-Type": "application/x-www-form-urlencoded", **api.admin}
    assert_error(await api.http.post("/v1/tenants", content=b"name=Acme", headers=form), 415)
    assert_error(await api.http.post("/uix", content=b"a=1", headers=form), 415)
    # Under /ui/ it reaches the dashboard, which wants its CSRF token first.
    refused = await api.http.post("/ui/sign-in", content=b"api_key=x", headers=form)
    assert refused.status_code == 403 and "The form expired" in refused.text


async def test_a_tenant_has_a_theme_of_its_own(api: Api) -> None:
    theme = {"accent": "#aa3300", "logo_url": "https://cdn.example/acme.svg", "mode": "dark"}
    made = assert_ok(
        await api.http.post(
            "/v1/tenants", json={"name": "Acme", "id": "acme", "theme": theme}, headers=api.admin
        ),
        201,
    )
    assert made["theme"] == theme
    assert assert_ok(await api.http.get("/v1/tenants/acme", headers=api.admin))["theme"] == theme
    light = {"accent": "#0a7d55"}
    updated = assert_ok(await api.http.patch("/v1/tenants/acme", json={"theme": light}, headers=api.admin))
    assert updated["theme"] == light  # replaced as a whole
    assert (
        assert_ok(await api.http.patch("/v1/tenants/acme", json={"name": "Acme Ltd"}, headers=api.admin))[
            "theme"
        ]
        == light
    )  # left alone when not named
    for bad in ({"accent": "#abc"}, {"logo_url": "javascript:alert(1)"}, {"mode": "neon"}, {"font": "x"}):
        assert_error(await api.http.patch("/v1/tenants/acme", json={"theme": bad}, headers=api.admin), 400)
    plain = assert_ok(await api.http.post("/v1/tenants", json={"name": "Plain"}, headers=api.admin), 201)
    assert plain["theme"] == {}
