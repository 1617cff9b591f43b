"""In the browser: a social worker records a referral from children's services by keyboard (inbox link, the
question page, its error summary, the case record), then decides on the assessment in the task form and a
team manager answers the 18th-birthday escalation, and the social worker agrees the handover once the plan is in
place -- axe-clean (WCAG 2.1 AA) on every page."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from tests.browser import launch, live_server, run_axe
from tests.casework_helpers import casework_engine, signed_in_page, tab_to
from tests.test_transition_api import DIAGRAMS, SW, TM, app  # noqa: F401  (fixture)


@pytest.fixture
def eng(tmp_path):
    """SQLite only: the pages are the same on both databases (the API tests run on both)."""
    yield from casework_engine(f"sqlite:///{tmp_path / 'carepath.db'}", DIAGRAMS, users=True)


def test_a_social_worker_refers_a_young_person_by_keyboard_and_every_page_is_axe_clean(eng, app):  # noqa: F811
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, SW, "social_worker")
        tab_to(page, "Record a referral from children's services")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/transitions/new")
        run_axe(page, "referral from children's services")

        # sent empty: the error summary takes the focus and links to each question
        page.get_by_role("button", name="Record the referral").click()
        page.wait_for_selector(".govuk-error-summary")
        run_axe(page, "referral with errors")
        summary = page.inner_text(".govuk-error-summary")
        assert "Enter the young person's full name" in summary and "Enter the young person's date of birth" in summary
        page.locator(".govuk-error-summary a", has_text="date of birth").click()
        assert page.evaluate("() => document.activeElement.id") == "date_of_birth-day"

        # filled in by keyboard
        page.get_by_label("Full name").fill("Helena Brooks")
        page.get_by_label("Day").fill("14")
        page.get_by_label("Month").fill("9")
        page.get_by_label("Year").fill("2013")
        page.get_by_label("Address").fill("Linden House College, Southby")
        page.get_by_label("Yes").check()
        page.get_by_label("Why is the young person likely to need care and support after 18?").fill(
            "Learning disability and autism: support to cook, travel and take part in her community")
        page.get_by_label("Children's social worker").fill("Amira Khan")
        page.get_by_label("Phone number (optional)").press("Tab")
        page.keyboard.press("Enter")  # the button, by keyboard
        page.wait_for_url(re.compile(r".*/cases/\d+\?saved=transition"))
        assert "Referral from children's services recorded" in page.inner_text(".govuk-notification-banner")
        run_axe(page, "case record after the referral")
        case_id = int(re.search(r"/cases/(\d+)", page.url).group(1))

        # the decision task: the conditional questions appear as they are answered
        [task] = eng.list_tasks(case_id=case_id)
        assert (task["element_id"], task["team"]) == ("decide_assessment", "social_work")
        eng.claim(task["id"], SW)
        page.goto(f"{base}/tasks/{task['id']}")
        run_axe(page, "decide whether to assess")
        page.locator("#f-likely_needs_after_18-0").check()  # "Yes": its follow-up questions are revealed
        assert page.locator("#f-significant_benefit-0").is_visible()
        page.get_by_label("What needs, or why not").fill("Day opportunities, volunteering, somewhere to live")
        page.locator("#f-significant_benefit-0").check()
        page.get_by_label("Yes, they agree").check()
        run_axe(page, "decide whether to assess, answered")
        page.get_by_role("button", name=re.compile("Submit|Complete|Save and submit|Continue")).first.click()
        page.wait_for_load_state()
        assert [i["process_id"] for i in eng.get_case(case_id)["instances"]] == ["transition", "needs_assessment"]
        ctx.close()

        # her 18th birthday with no plan: the team manager's task page
        eng.advance_clock(to=datetime(2031, 9, 14, 9, 0, tzinfo=timezone.utc))
        [gap] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == "support_not_in_place"]
        eng.claim(gap["id"], TM)
        ctx, page = signed_in_page(browser, base, TM, "team_manager")
        page.goto(f"{base}/tasks/{gap['id']}")
        assert "Adult support not in place at 18" in page.inner_text("h1")
        page.get_by_label("Adult support is still being arranged").check()
        assert page.get_by_text("Have children's services agreed to go on supporting").is_visible()  # revealed
        run_axe(page, "adult support not in place at 18")
        page.locator("#f-childrens_services_continue-0").check()
        page.get_by_label("What has been done").fill("Plan going to sign-off this week")
        page.get_by_role("button", name=re.compile("Submit|Complete|Save and submit|Continue")).first.click()
        page.wait_for_load_state()
        assert "support_not_in_place" not in [t["element_id"] for t in eng.list_tasks(case_id=case_id)]
        ctx.close()

        # the plan is signed off (the adult route's own tests go through it); at the next check, the handover
        eng.update_case_record(case_id, {"current_plan": {"signed_off_at": "2031-09-20T10:00:00+00:00"}},
                               actor=TM, reason="test: the plan signed off")
        eng.advance_clock(to=datetime(2031, 9, 28, 9, 0, tzinfo=timezone.utc))
        [hand] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == "hand_over"]
        eng.claim(hand["id"], SW)
        ctx, page = signed_in_page(browser, base, SW, "social_worker")
        page.goto(f"{base}/tasks/{hand['id']}")
        assert "Hand over from children's services" in page.inner_text("h1")
        run_axe(page, "hand over from children's services")
        page.get_by_label("Adult social care worker from now on").fill("Kelly Morgan")
        page.locator("#f-handover_meeting_held-0").check()
        page.get_by_role("button", name=re.compile("Submit|Complete|Save and submit|Continue")).first.click()
        page.wait_for_load_state()
        page.goto(f"{base}/cases/{case_id}")
        assert page.inner_text("#childrens-services").startswith(
            "Children's services ended on 28 September 2031: adult support is in place, with Kelly Morgan")
        run_axe(page, "case record after the handover")
        ctx.close()
