"""Changing one's own password in Chromium, by keyboard, with axe-core (WCAG 2.1 AA): from the header's link on
/account/password (a wrong current password and a weak new one in the error summary, then the change), and the
forced change after an administrator set the password (every page leads to it until it is done)."""

from __future__ import annotations

import pytest

from api.admin import set_password
from api.app import create_app
from api.auth import AuthSettings, create_user
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.conftest import START
from tests.test_api_admin import tm_user

PW = "correct horse battery"
NEW = "lantern orbit kettle meadow"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    eng = Engine(f"sqlite:///{tmp_path_factory.mktemp('own-password-pages') / 'carepath.db'}", forms=FormLibrary())
    eng.init(simulated_start=START)
    create_user(eng, "rita", PW, display_name="Rita Worker", roles=["social_worker"], teams=["social_work"])
    create_user(eng, "paul", PW, display_name="Paul Owner", roles=["process_owner"])
    create_user(eng, "ada", PW, display_name="Ada Admin", roles=["administrator"])
    app = create_app(eng, run_timers=False, auth=AuthSettings())
    with live_server(app) as base:
        yield base, eng
    eng.db.dispose()


def _focused(page) -> str:
    return page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")


def _tab_to(page, text: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused(page) == text:
            return
    raise AssertionError(f"Tab never reached {text!r}")


def _fill_by_keyboard(page, current: str, new: str, confirm: str) -> None:
    for field, value in (("current_password", current), ("new_password", new), ("confirm_password", confirm)):
        _tab_to(page, field)
        page.keyboard.type(value)
    _tab_to(page, "Change password")
    page.keyboard.press("Enter")


def test_changing_ones_own_password_by_keyboard(server):
    base, _eng = server
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, "rita", PW)
        _tab_to(page, "Change password")  # the header's link, reached by keyboard
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/account/password")
        assert page.title().startswith("Change your password")
        run_axe(page, "change your password")

        _fill_by_keyboard(page, "not my password", "aaaaaaaaaaaa", "aaaaaaaaaaaa")  # weak: said first
        page.locator(".govuk-error-summary").wait_for()
        assert page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')")
        assert "too easy to guess" in page.inner_text(".govuk-error-summary")
        assert page.title().startswith("Error: ")
        run_axe(page, "change your password, a weak password")

        _fill_by_keyboard(page, "not my password", NEW, NEW)
        page.locator(".govuk-error-summary").wait_for()
        assert "Your current password is wrong" in page.inner_text(".govuk-error-summary")
        _tab_to(page, "Your current password is wrong")
        page.keyboard.press("Enter")  # the summary's link takes focus to the field
        assert _focused(page) == "current_password"
        run_axe(page, "change your password, a wrong current password")

        page.goto(f"{base}/account/password")
        _fill_by_keyboard(page, PW, NEW, NEW)
        page.locator(".govuk-panel--confirmation").wait_for()
        assert "Your password has been changed" in page.inner_text("main")
        run_axe(page, "change your password, done")
        _tab_to(page, "Continue")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks")  # still signed in

        _tab_to(page, "Sign out")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/sign-in")
        sign_in(page, base, "rita", NEW)


def test_a_password_an_administrator_set_is_changed_at_the_next_sign_in_by_keyboard(server):
    base, eng = server
    set_password(eng, tm_user(eng, "ada"), "paul", "quiet harbour violin")
    with launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, "paul", "quiet harbour violin", then="/account/password")
        assert "An administrator chose your password" in page.inner_text("main")
        run_axe(page, "change your password, chosen by an administrator")
        for path in ("/home", "/processes", "/account/mfa"):  # every other page leads back here
            page.goto(f"{base}{path}")
            page.wait_for_url(f"{base}/account/password")
        _fill_by_keyboard(page, "quiet harbour violin", NEW, NEW)
        page.locator(".govuk-panel--confirmation").wait_for()
        _tab_to(page, "Continue")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/home")
        page.goto(f"{base}/processes")
        assert page.url == f"{base}/processes"
