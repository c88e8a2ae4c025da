"""Signing in, scopes and forged requests: the dashboard applies the server's auth."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("ui")


def test_a_browser_is_sent_to_sign_in_and_back(visitor, stoa) -> None:
    guest = visitor(None)
    guest.page.goto(f"{stoa.url}/ui?since=today")
    assert "/ui/login?next=/ui%3Fsince%3Dtoday" in guest.page.url
    guest.visit("/ui/login?next=/ui%3Fsince%3Dtoday", "login")
    guest.page.fill("#token", stoa.tokens["read"])
    guest.page.click("button[type=submit]")
    guest.page.wait_for_url(f"{stoa.url}/ui?since=today")
    assert stoa.tokens["read"] not in guest.page.url
    cookie = next(c for c in guest.context.cookies() if c["name"] == "stoa_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert stoa.tokens["read"] not in cookie["value"]


def test_a_wrong_token_is_refused_on_the_form(visitor, stoa) -> None:
    guest = visitor(None)
    guest.page.goto(f"{stoa.url}/ui/login")
    guest.page.fill("#token", "stoa_nope_nope")
    guest.page.click("button[type=submit]")
    alert = guest.page.locator("[role=alert]")
    assert "unknown token" in alert.inner_text()
    assert not [c for c in guest.context.cookies() if c["name"] == "stoa_session"]


def test_after_sign_in_elsewhere_is_never_a_redirect_target(visitor, stoa) -> None:
    guest = visitor(None)
    guest.page.goto(f"{stoa.url}/ui/login?next=https://evil.example/")
    guest.page.fill("#token", stoa.tokens["read"])
    guest.page.click("button[type=submit]")
    guest.page.wait_for_url(f"{stoa.url}/ui")


def test_signing_out_ends_the_session_on_the_server(visitor, stoa) -> None:
    reader = visitor("read")
    secret = next(c for c in reader.context.cookies() if c["name"] == "stoa_session")["value"]
    reader.page.click("text=Sign out")
    reader.page.wait_for_url(f"{stoa.url}/ui/login")
    # The old cookie, replayed, no longer opens a page.
    replay = httpx.get(f"{stoa.url}/ui", cookies={"stoa_session": secret})
    assert replay.status_code == 303 and "/ui/login" in replay.headers["location"]


def test_pages_need_a_session_and_api_routes_ignore_the_cookie(visitor, stoa) -> None:
    reader = visitor("read")
    secret = next(c for c in reader.context.cookies() if c["name"] == "stoa_session")["value"]
    assert httpx.get(f"{stoa.url}/ui").status_code == 303
    answer = httpx.get(f"{stoa.url}/api/v1/models", cookies={"stoa_session": secret})
    assert answer.status_code == 401, "the REST API takes bearer tokens only"


def test_a_cross_site_post_is_refused(visitor, stoa) -> None:
    admin = visitor("admin")
    secret = next(c for c in admin.context.cookies() if c["name"] == "stoa_session")["value"]
    forged = httpx.post(
        f"{stoa.url}/ui/logout",
        cookies={"stoa_session": secret},
        headers={"origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    assert "own pages" in forged.text
    assert httpx.get(f"{stoa.url}/ui", cookies={"stoa_session": secret}).status_code == 200
