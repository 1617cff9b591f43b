"""The retention page (api/retention.py): an administrator lists the cases due for erasure, checks one and erases
it by keyboard, holds another; the erased case's page says so; refusals — in a real browser with axe-core WCAG 2.1
AA checks, and the refusals through the pages' own client."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.browser import AXE, launch, run_axe, sign_in
from tests.front_door_world import EDITH_NHS, PASSWORD, START, build
from tests.test_pages_intake import signin


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    eng, app, people = build(f"sqlite:///{tmp_path_factory.mktemp('retention') / 'carepath.db'}")
    for who in ("edward", "zoe"):
        eng.close_case(people[who], reason="moved_away", actor="social-worker")
    eng.advance_clock(to=START + timedelta(days=8 * 366))
    yield eng, app, people
    eng.db.dispose()


def _tab_until(page, text: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if text in page.evaluate("document.activeElement.innerText || document.activeElement.value || ''"):
            return
    raise AssertionError(f"Tab never reached {text!r}")


def test_refusals_change_nothing(world):
    eng, app, people = world
    worker, csrf_w = signin(app, "team-manager")
    assert worker.get("/admin/retention").status_code == 403
    admin, csrf = signin(app, "administrator")
    assert admin.get("/admin/retention/999999").status_code == 404
    assert admin.get(f"/admin/retention/{people['edith']}").status_code == 404  # open: never listed
    assert admin.post("/admin/retention/list", data={}).status_code == 403  # no CSRF token
    assert admin.post("/admin/retention/list", data={"csrf_token": csrf}).status_code == 303
    zoe = people["zoe"]
    r = admin.post(f"/admin/retention/{zoe}", data={"csrf_token": csrf, "action": "erase"})
    assert r.status_code == 400 and "Confirm you have checked" in r.text
    r = admin.post(f"/admin/retention/{zoe}", data={"csrf_token": csrf, "action": "hold", "reason": " "})
    assert r.status_code == 400 and "Say why the record must be kept" in r.text
    assert worker.post(f"/admin/retention/{zoe}", data={"csrf_token": csrf_w, "action": "erase",
                                                        "confirm": "yes"}).status_code == 403
    assert "Zoë" in eng.get_case(zoe)["title"]  # nothing was erased
    r = admin.post(f"/admin/retention/{zoe}", data={"csrf_token": csrf, "action": "hold",
                                                    "reason": "Legal hold: ombudsman complaint"})
    assert r.status_code == 303
    r = admin.post(f"/admin/retention/{zoe}", data={"csrf_token": csrf, "action": "erase", "confirm": "yes"})
    assert r.status_code == 409 and "held" in r.text
    assert "Zoë" in eng.get_case(zoe)["title"]


def test_administrator_erases_a_due_case_by_keyboard_and_its_page_says_so(world):
    eng, _app, people = world
    edward = eng.get_case(people["edward"])["reference"]
    from api.app import create_app
    from tests.browser import live_server

    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "administrator", PASSWORD, then="/home")
        page.goto(f"{base}/admin/retention")
        run_axe(page, "retention list")
        _tab_until(page, "List what is due now")
        with page.expect_navigation():  # the same address before and after: wait for the new page itself
            page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/admin/retention")
        due = page.locator("table", has_text="Due since")
        assert edward in due.inner_text()
        run_axe(page, "retention list with cases due")
        _tab_until(page, edward)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/admin/retention/{people['edward']}")
        assert page.locator("h1").inner_text() == f"Check before erasing {edward}"
        run_axe(page, "check before erasing")
        _tab_until(page, f"Erase {edward}")
        page.keyboard.press("Enter")  # not confirmed: refused, the summary links to the box
        summary = page.locator(".govuk-error-summary")
        summary.wait_for()
        assert "Confirm you have checked" in summary.inner_text()
        run_axe(page, "check before erasing, not confirmed")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "confirm"
        page.keyboard.press("Space")
        _tab_until(page, f"Erase {edward}")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/admin/retention")
        assert f"{edward} erased" in page.locator(".govuk-notification-banner").inner_text()
        assert edward in page.locator("table", has_text="Approved by").inner_text()
        run_axe(page, "retention list after erasing")
        context.close()

        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "team-manager", PASSWORD, then=None)
        page.goto(f"{base}/cases/{people['edward']}")
        assert page.locator("h1").inner_text() == "This case was erased"
        body = page.locator("main").inner_text()
        assert "adult_social_care" in body and "Edward" not in body and "NB1 7AA" not in body
        run_axe(page, "erased case")
        context.close()
    assert eng.verify()[1] == []
    manager, _ = signin(_app, "team-manager")
    for path in (f"/cases/{people['edward']}", f"/cases/{people['edward']}/replay"):
        r = manager.get(path)
        assert r.status_code == 200 and "This case was erased" in r.text and "Clarkson" not in r.text, path
    assert EDITH_NHS in str(eng.get_case(people["edith"])["data"])  # the open case is untouched
