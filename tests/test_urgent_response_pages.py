"""The urgent response's pages in a browser (axe WCAG 2.1 AA, keyboard): a social worker starts an urgent
response from Ada's case record — an empty form gets an error summary — then the reablement coordinator
records the rapid response visit on its task page, which shows the crisis above the questions. SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

from api.demo_users import demo_username
from tests.browser import launch, live_server, run_axe
from tests.case_helpers import the_task
from tests.casework_helpers import claimed_task_page, follow_by_keyboard, known_case, signed_in_page, tab_to
from tests.test_urgent_response import ADA, CRISIS, SW, app, eng  # noqa: F401  (fixtures)

RC = demo_username("reablement_coordinator")


def test_a_crisis_from_the_case_record_to_the_rapid_response_visit_in_the_browser(eng, app):  # noqa: F811
    cid = known_case(eng, ADA)
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, SW, "social_worker")
        page.goto(f"{base}/cases/{cid}")
        follow_by_keyboard(page, "Start an urgent response", f"{base}/cases/{cid}/actions/urgent_response")
        run_axe(page, "start an urgent response")
        page.get_by_role("button", name="Start an urgent response").click()
        page.wait_for_selector(".govuk-error-summary")
        summary = page.inner_text(".govuk-error-summary")
        assert "Enter what the crisis is" in summary and "Select who responds today" in summary
        run_axe(page, "start an urgent response with errors")
        # by keyboard: the crisis, a choice with the arrow keys, then the button
        tab_to(page, "crisis_detail")
        page.keyboard.type(CRISIS)
        page.keyboard.press("Tab")  # into the radios: the first option
        page.keyboard.press("Space")
        assert page.get_by_label("A rapid response visit by the reablement team").is_checked()
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*saved=action_urgent_response"))
        assert "Start an urgent response: done" in page.inner_text(".govuk-notification-banner")
        ctx.close()

        ctx, page = claimed_task_page(browser, base, RC, "reablement_coordinator",
                                      the_task(eng, cid, "rapid_response")["id"])
        assert CRISIS in page.inner_text("main")  # the crisis, read-only above the questions
        run_axe(page, "rapid response visit")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_selector(".govuk-error-summary")
        assert "Enter what was done" in page.inner_text(".govuk-error-summary")
        run_axe(page, "rapid response visit with errors")
        page.get_by_label("What was done").fill("Visited at 11:30 and arranged carers twice a day this week.")
        safe = page.get_by_role("group", name="Is the person safe at home tonight?")
        safe.get_by_label("No").check()  # reveals what was arranged to keep them safe
        assert page.get_by_label("What has been arranged to keep the person safe tonight").is_visible()
        run_axe(page, "rapid response visit, not safe at home")
        safe.get_by_label("Yes").check()
        page.get_by_label("Close: no further support needed now").check()
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_url(re.compile(r".*/tasks\?view=mine"))
        assert "Task completed: Visit and respond" in page.inner_text("main")
        run_axe(page, "inbox after the visit")
        ctx.close()
    assert [i["status"] for i in eng.get_case(cid)["instances"] if i["process_id"] == "urgent_response"] == [
        "completed"]


def test_every_urgent_response_task_page_is_axe_clean(eng, app):  # noqa: F811
    """The pages not on the journey above: the social worker's decision and urgent assessment, the team
    manager's escalation (each claimed, so its form shows)."""
    first = eng.start("urgent_response", data={"person": {"name": "Ada Clarke"}, "crisis_detail": CRISIS}).case_id
    second = eng.start("urgent_response", data={"person": {"name": "Ada Clarke"}, "crisis_detail": CRISIS,
                                                "urgent_kind": "urgent_assessment"}).case_id
    eng.advance_clock(to=eng.now() + timedelta(hours=5))  # past the deadline: escalated
    pages = [(SW, "social_worker", first, "decide_response", "Who responds today"),
             (SW, "social_worker", second, "urgent_assessment", "What the person needs now"),
             (demo_username("team_manager"), "team_manager", second, "response_overdue", "What has been done")]
    with live_server(app) as base, launch() as browser:
        for user, role, cid, element_id, question in pages:
            ctx, page = claimed_task_page(browser, base, user, role, the_task(eng, cid, element_id)["id"])
            assert question in page.inner_text("main") and CRISIS in page.inner_text("main")
            run_axe(page, element_id)
            ctx.close()
