"""The equipment pages in a browser (axe WCAG 2.1 AA, keyboard): a social worker asks for equipment from
Ben's case record by keyboard, records the OT assessment with two items (the second added with "Add
another item"; a cost that is not a number is named), and the team manager decides on the adaptation
over the free limit with the items and what is free shown above the question. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

from api.demo_users import demo_username
from tests.browser import launch, live_server, run_axe
from tests.case_helpers import the_task
from tests.casework_helpers import claimed_task_page, follow_by_keyboard, known_case, signed_in_page, tab_to
from tests.test_equipment import (  # noqa: F401  (app, eng: fixtures)
    BATH_BOARD,
    BEN,
    DELIVERED,
    PENDANT,
    RAMP,
    SW,
    TM,
    app,
    assessed,
    complete,
    eng,
    request,
)


def test_equipment_from_the_case_record_to_the_managers_decision_in_the_browser(eng, app):  # noqa: F811
    cid = known_case(eng, BEN)
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, SW, "social_worker")
        page.goto(f"{base}/cases/{cid}")
        follow_by_keyboard(page, "Ask for equipment or an adaptation", f"{base}/cases/{cid}/actions/equipment")
        run_axe(page, "ask for equipment")
        tab_to(page, "equipment_needs")
        page.keyboard.type("Cannot get in the bath or up the back step")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*saved=action_equipment"))
        assert "Ask for equipment or an adaptation: done" in page.inner_text(".govuk-notification-banner")

        task = the_task(eng, cid, "assess_equipment")
        page.goto(f"{base}/tasks/{task['id']}")
        page.get_by_role("button", name="Claim this task").click()
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        assert "Cannot get in the bath or up the back step" in page.inner_text("main")
        page.get_by_label("What the person needs help with").fill("Bathing, and the step to the garden")
        page.get_by_label("Equipment (for example a bath seat or a walking frame)").check()
        page.fill("#f-items-0-description", "Bath board and seat")
        page.fill("#f-items-0-cost", "65")
        with page.expect_navigation():
            page.get_by_role("button", name="Add another item").click()
        assert page.input_value("#f-items-0-description") == "Bath board and seat"
        page.locator("#f-items-1-kind-2").check()  # the third choice: an adaptation
        page.fill("#f-items-1-description", "Ramp to the back door")
        page.fill("#f-items-1-cost", "eighteen hundred")
        page.get_by_role("group", name=re.compile("also need a major adaptation")).get_by_label("No").check()
        run_axe(page, "equipment assessment with two items")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_selector(".govuk-error-summary")
        assert "Item 2" in page.inner_text(".govuk-error-summary")  # the item at fault is named
        run_axe(page, "equipment assessment with an error")
        page.fill("#f-items-1-cost", "1800")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_url(re.compile(r".*/tasks\?view=mine"))
        ctx.close()

        decide = the_task(eng, cid, "approve_adaptation")
        ctx, page = claimed_task_page(browser, base, TM, "team_manager", decide["id"])
        main = page.inner_text("main")
        assert "Ramp to the back door (£1,800.00)" in main and "Bath board and seat (£65.00)" in main
        run_axe(page, "decide on the adaptation")
        page.get_by_role("group", name="Does the council provide the adaptation?").get_by_label("Yes").check()
        page.get_by_label("Reasons (the person's letter quotes them)").fill("The only safe way out of the house.")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_url(re.compile(r".*/tasks\?view=mine"))
        ctx.close()
    assert [(t["element_id"], t["team"]) for t in eng.list_tasks(case_id=cid)
            if t["element_id"] != "assess_needs"] == [("financial_assessment", "finance")]


def test_every_other_equipment_task_page_is_axe_clean(eng, app):  # noqa: F811
    """The pages not on the journey above, each claimed so its form shows: the escalations, Finance's
    assessment of what the person pays, the delivery record and the telecare review."""
    late = request(eng)
    pays = assessed(eng, BATH_BOARD, RAMP)
    complete(eng, pays, "approve_adaptation", {"adaptation_approved": True, "approval_reason": "Only way out."})
    deliver = assessed(eng, BATH_BOARD, PENDANT)
    review = assessed(eng, PENDANT)
    complete(eng, review, "record_delivery", DELIVERED)
    eng.advance_clock(timedelta(days=43))  # the targets have passed; the telecare review is due
    pages = [(TM, "team_manager", late, "assessment_overdue", "What has been done"),
             (demo_username("finance_officer"), "finance_officer", pays, "financial_assessment",
              "Ramp to the back door (£1,000.01)"),
             (SW, "social_worker", deliver, "record_delivery", "Date delivered and fitted"),
             (TM, "team_manager", deliver, "delivery_overdue", "What has been done"),
             (SW, "social_worker", review, "review_telecare", "Is the telecare working well for the person?")]
    with live_server(app) as base, launch() as browser:
        for user, role, cid, element_id, shown in pages:
            ctx, page = claimed_task_page(browser, base, user, role, the_task(eng, cid, element_id)["id"])
            assert shown in page.inner_text("main"), element_id
            run_axe(page, element_id)
            ctx.close()
