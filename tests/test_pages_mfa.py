"""The two-step verification pages in Chromium, by keyboard, with axe-core (WCAG 2.1 AA): setting it up on
/account/mfa (the key as text, a wrong code, then the recovery codes shown once) and signing in with the code
on /sign-in/code after the password (a wrong code, then the right one). The codes are made from the engine's
simulated clock, as the server checks them."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest

from api.app import create_app
from api.auth import AuthSettings, create_user
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.conftest import START

PW = "correct horse battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    eng = Engine(f"sqlite:///{tmp_path_factory.mktemp('mfa-pages') / 'carepath.db'}", forms=FormLibrary())
    eng.init(simulated_start=START)
    create_user(eng, "rita", PW, display_name="Rita Worker", roles=["social_worker"], teams=["social_work"])
    app = create_app(eng, run_timers=False, auth=AuthSettings(mfa_key="browser test key"))
    with live_server(app) as base:
        yield base, eng
    eng.db.dispose()


def _focused(page) -> str:
    return page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")


def _tab_to(page, text: str, limit: int = 30) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused(page) == text:
            return
    raise AssertionError(f"Tab never reached {text!r}")


def test_setting_up_and_signing_in_with_two_step_verification_by_keyboard(server):
    base, eng = server
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, "rita", PW)
        _tab_to(page, "Two-step verification")  # the header's link, reached by keyboard
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/account/mfa")
        run_axe(page, "two-step verification, off")
        _tab_to(page, "Set up two-step verification")
        page.keyboard.press("Enter")
        page.locator("#setup-key").wait_for()
        secret = page.inner_text("#setup-key").replace(" ", "")
        _tab_to(page, "The setup address, for apps that take one")  # the details open by keyboard
        page.keyboard.press("Enter")
        assert page.inner_text("#setup-uri").startswith(f"otpauth://totp/carepath:rita?secret={secret}")
        run_axe(page, "two-step verification, the key")

        page.focus("#code")
        page.keyboard.type("000000")
        page.keyboard.press("Enter")
        page.locator(".govuk-error-summary").wait_for()
        assert page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')")
        assert "Enter the 6-digit code your authenticator app shows now" in page.inner_text(".govuk-error-summary")
        assert page.title().startswith("Error: ")
        assert page.inner_text("#setup-key").replace(" ", "") == secret  # the same key, shown again
        run_axe(page, "two-step verification, a wrong code")
        _tab_to(page, "Enter the 6-digit code your authenticator app shows now for carepath")
        page.keyboard.press("Enter")  # the summary's link takes focus to the field
        assert _focused(page) == "code"
        page.keyboard.type(pyotp.TOTP(secret).at(eng.now()))
        page.keyboard.press("Enter")
        page.locator("#recovery-codes").wait_for()
        codes = page.locator("#recovery-codes li").all_inner_texts()
        assert len(codes) == 10
        assert "they will not be shown again" in page.inner_text("main")
        run_axe(page, "two-step verification, the recovery codes")
        page.goto(f"{base}/account/mfa")
        assert "You have 10 unused recovery codes" in page.inner_text("main")  # never shown again

        # signing in: the password, then the code on a second page
        _tab_to(page, "Sign out")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/sign-in")
        sign_in(page, base, "rita", PW, then="/sign-in/code")
        assert page.title().startswith("Enter the code from your authenticator app")
        assert page.context.cookies() and not any(c["name"] == "carepath_session" for c in page.context.cookies())
        run_axe(page, "sign in: the code")
        page.focus("#code")
        page.keyboard.type(pyotp.TOTP(secret).at(eng.now()))  # the code set-up used: a replay, refused
        page.keyboard.press("Enter")
        page.locator(".govuk-error-summary").wait_for()
        assert page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')")
        assert "has been used already" in page.inner_text(".govuk-error-summary")
        run_axe(page, "sign in: a wrong code")
        eng.advance_clock(timedelta(seconds=30))
        page.focus("#code")
        page.keyboard.type(pyotp.TOTP(secret).at(eng.now()))
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks")
        assert "Signed in as Rita Worker" in page.inner_text("header")
