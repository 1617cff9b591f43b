"""What a browser user sees when InputGuard (api/inputs.py) refuses a page request before its route (issue 15
item 5): a control character in a people search, an over-long form. A GOV.UK error page that names the field by
its label on the page, says nothing was saved and what to do, axe-clean and usable by keyboard."""

from __future__ import annotations

from tests.browser import AXE, launch, run_axe, sign_in
from tests.front_door_world import PASSWORD
from tests.test_pages_intake import server, world  # noqa: F401 (fixtures)


def _tab_to_link(page, name: str, limit: int = 30) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"no link named {name!r} reached with Tab")


def test_a_people_search_with_a_control_character_names_the_search_box(server):  # noqa: F811
    base, _eng, _people = server
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, "front-door-advisor", PASSWORD)
        page.goto(f"{base}/people")
        page.focus("#q")
        page.keyboard.type("Edith")
        page.evaluate("() => { const q = document.querySelector('#q'); q.value = q.value + '\\u0000Clarke'; }")
        with page.expect_navigation() as nav:
            page.keyboard.press("Enter")
        assert nav.value.status == 422
        assert page.locator("h1").inner_text() == "Sorry, there is a problem with what you sent"
        summary = page.locator(".govuk-error-summary")
        assert summary.get_by_role("heading").inner_text() == "There is a problem"
        text = summary.inner_text()
        assert "Name, date of birth, NHS number or postcode contains a character that cannot be kept" in text
        assert "Q " not in text and "q must" not in text.lower()
        assert "Nothing was saved" in page.locator("main").inner_text()
        run_axe(page, "input refused (people search)")
        _tab_to_link(page, "Go to your tasks")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{base}/tasks"


def test_an_over_long_note_gets_the_too_large_page_not_a_broken_connection(server):  # noqa: F811
    base, _eng, people = server
    with launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, "team-manager", PASSWORD)
        page.goto(f"{base}/cases/{people['edith']}/notes/new")
        assert page.locator("#note-text").is_visible(), page.content()[:500]
        page.fill("#note-text", "Visited today. " * 20_000)  # 300,000 characters: over the form's 256 KB
        page.focus("#note-text")
        page.keyboard.press("Tab")  # to "Add note"
        with page.expect_navigation() as nav:
            page.keyboard.press("Enter")
        assert nav.value.status == 413
        assert page.locator("h1").inner_text() == "What you sent is too large"
        body = page.locator("main").inner_text()
        assert "larger than this page accepts (256 KB), so nothing was saved" in body
        assert "shorten it or add it in parts" in body
        run_axe(page, "input refused (too large)")
