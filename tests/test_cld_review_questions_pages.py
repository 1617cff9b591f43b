"""The review questions the CLD return needs (Method_of_Review, tests/test_cld_code_lists.py), in a real browser, by
keyboard, as the social worker answers them: "Was the review with the person, their unpaid carer, or both?" in the
review's "How the review was done" section, and "Did the person cared for take part in the review?" on the carer's
review. The answers reach "Check your answers" and the return's Method_of_Review. Every page is axe-clean.

One database (SQLite), one live server and one browser for the module.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from handlers import cld
from tests.casework_helpers import served_to_sam
from tests.test_capacity_advocacy import PROCESSES, ROOT, START
from tests.test_capacity_review_carers import UNCHANGED, to_review
from tests.test_carers import carer_plan, complete
from tests.test_forms_sections import _enter, _tab_to
from tests.test_new_information_page import YELLOW, _focus_ring
from tests.test_pages_inbox import PASSWORD
from tests.test_process_assessment_to_review import SUSAN, carer_assessment

QUESTION = "Was the review with the person, their unpaid carer, or both?"
CARER_QUESTION = "Did the person cared for take part in the review?"
FILES = [*PROCESSES, ROOT / "processes" / "carers_support_plan.bpmn"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Peter's first review, and Susan's carer's review, both with the social worker Sam."""
    yield from served_to_sam(tmp_path_factory.mktemp("cldreview"), FILES, PASSWORD, _cases, start=START)


def _cases(eng) -> dict[str, int]:
    susan = eng.start("carers_assessment", data={"person": SUSAN, "cared_for": "Peter Clarke",
                                                 "carer_self_contact": False}).case_id
    complete(eng, susan, "assess_carer", carer_assessment("low"))
    complete(eng, susan, "plan_carer_support", carer_plan(months=1))
    complete(eng, susan, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    peter = to_review(eng)  # 15 April 2031
    eng.advance_clock(to=datetime(2031, 4, 15, 9, 0, tzinfo=timezone.utc))
    return {"review": peter, "carer": susan}


def _open(world, case_key: str, element: str):
    from tests.browser import sign_in

    eng, base, browser, cases = world
    [task] = [t for t in eng.list_tasks(case_id=cases[case_key]) if t["element_id"] == element]
    eng.claim(task["id"], "sam")
    page = browser.new_context(bypass_csp=True).new_page()
    sign_in(page, base, "sam", PASSWORD)
    return eng, base, page, task


def _row(eng, case_id, event_type):
    rows = cld.cld_return(eng, date(2031, 1, 1), date(2031, 6, 30), la_code="999")
    reference = eng.get_case(case_id)["reference"]
    return [r for r in rows if r["Event_Reference"].startswith(reference) and r["Event_Type"] == event_type]


def test_who_took_part_in_the_review_by_keyboard_to_the_return(world):
    from tests.browser import run_axe

    eng, base, page, task = _open(world, "review", "review_plan")
    eng.save_draft(task["id"], {**UNCHANGED, "outcomes_achieved": "fully"}, actor="sam")
    page.goto(f"{base}/tasks/{task['id']}")
    _tab_to(page, "How the review was done")
    _enter(page)
    assert page.get_by_role("heading", level=1).inner_text() == "How the review was done"
    main = page.inner_text("main")
    assert QUESTION in main
    for option in ("The person only, without an unpaid carer", "The person and their unpaid carer",
                   "Their unpaid carer only, without the person"):
        assert option in main
    run_axe(page, "review: how the review was done, with who took part")
    _tab_to(page, "f-review_participants-0")
    assert YELLOW in _focus_ring(page, radio=True), "the focused radio shows no focus"
    page.keyboard.press("ArrowDown")  # the person and their unpaid carer
    assert page.is_checked("#f-review_participants-1")
    _tab_to(page, "Save and continue")
    _enter(page)
    assert page.url == f"{base}/tasks/{task['id']}"
    assert eng.get_task(task["id"])["draft"]["review_participants"] == "person_and_carer"

    _tab_to(page, "Check your answers")
    _enter(page)
    assert f"{QUESTION}\tThe person and their unpaid carer" in page.locator("main").inner_text()
    run_axe(page, "review: check your answers with who took part")
    _tab_to(page, "Complete task")
    _enter(page)
    assert task["id"] not in {t["id"] for t in eng.list_tasks(case_id=world[3]["review"])}  # done
    [review] = _row(eng, world[3]["review"], "Review")
    assert (review["Method_of_Review"], review["Review_Outcomes_Achieved"]) == ("Service user and carer", "Fully Met")


def test_whether_the_person_cared_for_took_part_in_the_carers_review_by_keyboard_to_the_return(world):
    from tests.browser import run_axe

    eng, base, page, task = _open(world, "carer", "review_carer_plan")
    eng.save_draft(task["id"], {"carer_views": "Fine", "outcomes_achieved": "partly", "willing_and_able": "yes",
                                "next_step": "continue", "reason": "Working"}, actor="sam")
    page.goto(f"{base}/tasks/{task['id']}")
    assert CARER_QUESTION in page.inner_text("main")
    run_axe(page, "carer's review with whether the person cared for took part")
    _tab_to(page, "f-cared_for_took_part-0")
    assert YELLOW in _focus_ring(page, radio=True), "the focused radio shows no focus"
    page.keyboard.press("ArrowDown")  # No: the carer only
    assert page.is_checked("#f-cared_for_took_part-1")
    _tab_to(page, "Complete task")
    _enter(page)
    assert task["id"] not in {t["id"] for t in eng.list_tasks(case_id=world[3]["carer"])}  # done
    reviews = _row(eng, world[3]["carer"], "Review")
    assert [(r["Method_of_Review"], r["Review_Outcomes_Achieved"], r["Primary_Support_Reason"]) for r in reviews] == [
        ("Carer only", "Partially Met", "Social Support: Support to Carer")]
