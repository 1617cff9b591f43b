"""In a real browser (axe-clean, by keyboard): the worker whose carer's plan would pay the carer twice reads both
amounts and what to do, and answers by keyboard; the case record warns at the top that a letter has not been sent
because the carer has no postal address, and the warning's link reaches the letter by keyboard."""

from __future__ import annotations

import pytest

from api.app import create_app
from tests.browser import launch, live_server, run_axe
from tests.casework_helpers import SW, casework_engine, claimed_task_page, signed_in_page, tab_to
from tests.test_carers import PROCESSES, carer_plan
from tests.test_letters_unpostable import PETER, assessment, carer_assessment, complete
from tests.test_process_assessment_to_review import SMALL, ras


@pytest.fixture
def eng(db_url, monkeypatch):
    monkeypatch.delenv("CAREPATH_NOTIFY_API_KEY", raising=False)
    yield from casework_engine(db_url, PROCESSES, users=True)


def test_the_worker_reads_both_amounts_and_the_record_warns_of_the_letter_with_no_address(eng):
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    eng.update_case_record(cid, {"person": PETER}, actor=SW, reason="recorded at the contact")
    answers = assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True)
    answers["carer"] = {k: v for k, v in answers["carer"].items() if k != "address"}  # Susan: no address
    complete(eng, cid, "assess_needs", answers)
    complete(eng, cid, "assess_carer", carer_assessment("moderate"))  # her letter as a carer: nowhere to post it
    complete(eng, cid, "score_needs", ras({"carer_support_level": "low"}, **SMALL))
    complete(eng, cid, "plan_carer_support", carer_plan(held_by="carer"))
    [twice] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "carer_paid_twice"]

    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, SW, "social_worker", twice["id"])
        text = " ".join(page.inner_text("main").split())
        assert "Check which budget pays for the carer" in text
        assert "The carer's budget in this plan £600.00 a year" in text
        assert "Carer support in the cared-for person's budget £300.00 a year" in text
        assert ("Peter Clarke's personal budget already includes £300.00 a year to support their carer, and this "
                "plan gives Susan Clarke their own budget of £600.00 a year as a carer.") in text
        run_axe(page, "check which budget pays for the carer")
        tab_to(page, "f-what_will_change")
        page.keyboard.type("Hold Susan's support in Peter's budget")
        tab_to(page, "Complete task")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "Task completed: Check which budget pays for the carer" in " ".join(page.inner_text("main").split())
        ctx.close()
        # back to the plan (never to the manager's sign-off), with what the worker will change recorded
        open_now = sorted(t["element_id"] for t in eng.list_tasks(case_id=cid))
        assert "plan_carer_support" in open_now and "sign_off_carer_plan" not in open_now

        ctx, page = signed_in_page(browser, base, SW, "social_worker")
        page.goto(f"{base}/cases/{cid}")
        warning = " ".join(page.inner_text("#letters-need-address").split())
        assert "1 letter has not been sent because there is no postal address" in warning
        run_axe(page, "case record with a letter that needs an address")
        [doc] = [d for d in eng.documents(cid) if d["body"].count("Susan Clarke") and "Dear Susan" in d["body"]]
        page.locator("#letters-need-address a").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{cid}#delivery-{doc['id']}")
        assert page.inner_text(f"#delivery-{doc['id']}") == "Needs an address"
        ctx.close()


def test_the_carers_plan_sent_back_reopens_with_what_was_written(eng):
    """Sent back from "Check which budget pays for the carer", the carer's plan opened empty: the worker typed every
    outcome, the emergency plan and the co-ordinator again to change one answer. It now opens with the answers
    given before (as the adult's support plan does), and the one change goes on to sign-off."""
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    eng.update_case_record(cid, {"person": PETER}, actor=SW, reason="recorded at the contact")
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely",
                                                  carer=True))
    complete(eng, cid, "score_needs", ras(**SMALL))  # scored before Susan's assessment: nothing for his carer
    complete(eng, cid, "assess_carer", carer_assessment("moderate"))
    complete(eng, cid, "plan_carer_support", carer_plan(held_by="cared_for"))
    complete(eng, cid, "carer_paid_twice", {"what_will_change": "Hold Susan's support in her own budget"})
    [again] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "plan_carer_support"]

    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, SW, "social_worker", again["id"])
        assert page.input_value("#f-outcomes-0-label") == "Two good nights' sleep a week"
        assert page.input_value("#f-outcomes-1-how_met") == "A direct payment for a Saturday carer"
        assert page.input_value("#f-contingency_plan").startswith("Her son Tom is called first")
        assert page.input_value("#f-coordinating_worker-name") == "Jane Smith"
        assert page.is_checked("#f-budget_held_by-1")  # in Peter's budget, as before
        run_axe(page, "carer's plan sent back, with its answers")
        page.check("#f-budget_held_by-0")  # the one change: her own budget
        with page.expect_navigation():
            page.get_by_role("button", name="Complete task").click()
        assert "Task completed: Plan the carer's support" in " ".join(page.inner_text("main").split())
        ctx.close()
    assert "sign_off_carer_plan" in [t["element_id"] for t in eng.list_tasks(case_id=cid)]
