"""Signing in through the council's identity provider in a real browser (api/oidc.py): keyboard only, from the
sign-in page's "Sign in with …" button through the fake provider (tests/fake_oidc.py) to the inbox, with
axe-core WCAG 2.1 AA checks on carepath's pages, and a refusal shown as the GOV.UK error page.

The provider is reached as `localhost`, carepath as `127.0.0.1`: two sites, as a council's identity provider and
carepath are, so the way back from the provider is a cross-site navigation — the one in which a browser does not
send carepath's SameSite=Strict session cookie through a redirect (api/oidc.py `callback` answers with a page)."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.oidc import Grant, OidcSettings
from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.fake_oidc import CLIENT_ID, CLIENT_SECRET, running
from tests.front_door_world import PASSWORD, build


@pytest.fixture
def server(db_url):
    eng, _app, _people = build(db_url)
    with running(host="localhost") as fake:
        settings = OidcSettings(issuer=fake.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                name="Northshire Council account",
                                groups={"grp-front-door": Grant(frozenset({"front_door_advisor"}),
                                                                frozenset({"front_door"}))})
        app = create_app(eng, run_timers=False, identity_provider=settings)
        fake.now = lambda: eng.now()
        fake.interactive = True
        with live_server(app) as base:
            fake.redirect_uris.add(f"{base}/sign-in/oidc/callback")
            yield base, eng, fake
    eng.db.dispose()


def _tab_to(page, text: str, limit: int = 30) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.textContent.trim()") == text:
            return
    raise AssertionError(f"Tab never reached {text!r}")


def test_signing_in_with_the_council_account_by_keyboard_reaches_the_inbox(server):
    base, _eng, fake = server
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    fake.user = {"sub": "entra-oid-1", "name": "Jo Bloggs", "preferred_username": "jo.bloggs@northshire.test",
                 "groups": ["grp-front-door"]}
    with launch() as browser:
        context = browser.new_context(bypass_csp=True)  # axe is injected as an inline script
        page = context.new_page()
        page.goto(f"{base}/sign-in")
        run_axe(page, "sign-in with the council's identity provider")
        _tab_to(page, "Sign in with Northshire Council account")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{fake.issuer}/authorize?*")  # at the provider: another site
        _tab_to(page, "Continue as Jo Bloggs")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks")
        assert page.locator("h1").inner_text() == "My team's queue"
        assert "Signed in as Jo Bloggs" in page.locator("header").inner_text()
        run_axe(page, "inbox after signing in with the council's identity provider")

        # the short "You are signed in" page the callback answers with (it moves on at once): held there by
        # answering its next navigation with 204 No Content, which leaves the page in place, and checked
        _tab_to(page, "Sign out")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/sign-in")
        page.route(f"{base}/tasks", lambda route: route.fulfill(status=204))
        page.get_by_role("button", name="Sign in with Northshire Council account").focus()
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Continue as Jo Bloggs").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/sign-in/oidc/callback?*")
        page.locator("h1", has_text="You are signed in").wait_for()
        run_axe(page, "signed in")
        page.unroute(f"{base}/tasks")
        _tab_to(page, "Continue")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks")

        # signing out and in again: the same account
        _tab_to(page, "Sign out")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/sign-in")
        page.get_by_role("button", name="Sign in with Northshire Council account").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{fake.issuer}/authorize?*")
        page.get_by_role("link", name="Continue as Jo Bloggs").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks")

        # an administrator sees on the account's page that its roles come from the provider (no roles form, no
        # password), axe-clean
        admin_page = browser.new_context(bypass_csp=True).new_page()
        sign_in(admin_page, base, "administrator", PASSWORD, then="/home")
        admin_page.goto(f"{base}/admin/users/jo.bloggs")
        assert "signs in through the council's identity provider" in admin_page.locator("main").inner_text()
        assert admin_page.locator("#password").count() == 0 and admin_page.locator("input[name=roles]").count() == 0
        assert "front door advisor" in admin_page.locator(".govuk-summary-list").last.inner_text()
        run_axe(admin_page, "an identity provider's account on the users page")

        # a person none of whose groups gives access: the GOV.UK error page, axe-clean, its link back to sign in
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        fake.user = {"sub": "entra-oid-2", "name": "Sam Other", "preferred_username": "sam@northshire.test",
                     "groups": ["grp-payroll"]}
        page.goto(f"{base}/sign-in")
        page.get_by_role("button", name="Sign in with Northshire Council account").focus()
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Continue as Sam Other").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/sign-in/oidc/callback?*")
        assert page.locator("h1").inner_text() == "You do not have access to carepath"
        assert "none of your groups gives access to carepath" in page.locator("main").inner_text()
        run_axe(page, "refused sign-in")
        _tab_to(page, "Sign in")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/sign-in")
