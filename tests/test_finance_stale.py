"""A stale or duplicate submission on the finance officer's pages (issue 11, bad input), as a new user meets it:
the same financial assessment open in two tabs. In the demo the second tab's save said "Task
83ac9c1a-b047-483a-aabc-eb65a7549bf9 changed since you opened it: finance-officer draft saved it at
2026-12-03T07:38:00.000000+00:00; nothing was saved", and opening a section after the task was completed showed
"task 83ac… was already completed by finance-officer at 2026-…; nothing was changed (task=83ac…)" under a
"Sign in" link, to someone signed in. Now: who did what, in words and UK time ("you saved answers to it on 5 June
2023 at 10:00am"), no id and no ISO time, the page knows who is signed in, and nothing stored changes.
SQLite and PostgreSQL, in a real browser, axe-clean.
"""

from __future__ import annotations

import re

from api.demo_users import demo_password
from tests.browser import launch, live_server, run_axe, sign_in
from tests.case_helpers import the_task
from tests.test_financial_assessment_pages import app, eng, started  # noqa: F401 - fixtures
from tests.test_financial_assessment_process import FIN

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _save(page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Save and continue").click()


def test_two_tabs_on_one_assessment_are_told_what_happened_in_words(eng, app):  # noqa: F811
    cid = started(eng)
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    tid = task["id"]
    with live_server(app) as base, launch() as browser:
        ctx = browser.new_context(bypass_csp=True)
        first, second = ctx.new_page(), ctx.new_page()
        sign_in(first, base, FIN, demo_password("finance_officer"))
        first.goto(f"{base}/tasks/{tid}/sections/route")
        second.goto(f"{base}/tasks/{tid}/sections/route")
        first.get_by_label("The person chooses to pay the full cost (light touch)").check()
        _save(first)
        assert first.url == f"{base}/tasks/{tid}"

        second.get_by_label("The person declines to tell us about their money").check()
        _save(second)
        text = " ".join(second.inner_text("main").split())
        assert ("This task changed after you opened this page: you saved answers to it on 5 June 2023 at "
                "10:00am. Nothing you typed was saved.") in text, text
        assert tid not in text and not ISO.search(text)
        assert second.is_checked("#f-route-2")  # what was typed is still there to copy
        run_axe(second, "a stale save of a financial assessment section")
        assert eng.get_task(tid)["draft"]["route"] == "light_touch"  # the first tab's answer stands

        first.goto(f"{base}/tasks/{tid}/check-answers")
        with first.expect_navigation():
            first.get_by_role("button", name="Complete task").click()
        second.goto(f"{base}/tasks/{tid}/sections/route")
        text = " ".join(second.inner_text("main").split())
        assert "This task was completed by you on 5 June 2023 at 10:00am. Nothing you typed was saved." in text, text
        assert tid not in text and not ISO.search(text) and "task=" not in text
        assert second.get_by_role("link", name="Sign in").count() == 0
        run_axe(second, "a section of a completed financial assessment")
        ctx.close()
