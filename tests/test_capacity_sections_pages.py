"""The "Capacity and advocacy" section of the review of the support plan and of the carer's assessment, in a real
browser, by keyboard only, as the social worker answers it (issue 10 item 5; the engine's side is
tests/test_capacity_review_carers.py): the section is in the task list; its follow-on questions appear and
disappear with the answer that needs them; an empty answer is named in the error summary, which takes the focus
and whose link moves it to the question, and a hidden question is never named; the answers are on "Check your
answers" with Change links that lead back to them; completing the task where the person (the carer) would have
substantial difficulty and has no appropriate person refers them for independent advocacy: the social work team
gets "Arrange an independent advocate" and the case record shows the referral. Every page is axe-clean.

One database (SQLite), one live server and one browser for the module.
"""

from __future__ import annotations

import re

import pytest

from tests.casework_helpers import served_to_sam
from tests.test_capacity_advocacy import PROCESSES, ROOT, START
from tests.test_capacity_review_carers import UNCHANGED, to_review
from tests.test_forms_sections import _enter, _focused, _tab_to
from tests.test_new_information_page import YELLOW, _focus_ring
from tests.test_pages_inbox import PASSWORD
from tests.test_process_assessment_to_review import SUSAN, carer_assessment

SECTION = "Capacity and advocacy"
ADVOCATE = "Arrange an independent advocate"
NO_ONE_ERROR = "Select whether there is an appropriate person to support and represent them"
NAME_ERROR = "Enter the appropriate person's name and relationship"
# the follow-on questions: under "reason to doubt capacity", and under "substantial difficulty"
CAPACITY_QUESTIONS = ("#f-capacity_assessment-decision", "#f-capacity_assessment-impairment-0",
                      "#f-best_interests-decision")
CASES = {  # the form, its task, the other sections' answers (saved before), and who the questions are about
    "review": ("review_plan", UNCHANGED, "person", "Peter Clarke"),
    "carers_assessment": ("assess_carer", carer_assessment(), "carer", "Susan Clarke"),
}
FILES = [*PROCESSES, ROOT / "processes" / "carers_support_plan.bpmn"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Peter's first review and Susan's carer's assessment, both with the social worker Sam."""
    yield from served_to_sam(tmp_path_factory.mktemp("capacity"), FILES, PASSWORD, _cases, start=START)


def _cases(eng) -> dict[str, int]:
    susan = eng.create_case("Susan Clarke", {"person": SUSAN})  # Susan asked for support for herself
    eng.start("carers_assessment", case_id=susan, data={"person": SUSAN, "cared_for": "Peter Clarke",
                                                         "carer_self_contact": True})
    return {"review": to_review(eng), "carers_assessment": susan}


def _visible(page, selector: str) -> bool:
    return page.locator(selector).is_visible()


def _summary_links(page) -> list[str]:
    assert page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')"), \
        "the error summary does not have the focus"
    return [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]


def _status(page) -> str:
    item = page.locator(".govuk-task-list__item", has=page.get_by_role("link", name=SECTION))
    return item.locator(".govuk-task-list__status").inner_text().strip()


@pytest.mark.parametrize("form", list(CASES))
def test_the_capacity_and_advocacy_section_by_keyboard_to_an_advocacy_referral(world, form):
    from tests.browser import run_axe, sign_in

    eng, base, browser, cases = world
    element, others, who, name = CASES[form]
    cid = cases[form]
    [task] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == element]
    assert task["form"] == form and task["team"] == "social_work"
    eng.claim(task["id"], "sam")
    eng.save_draft(task["id"], others, actor="sam")  # the other sections answered already
    page = browser.new_context(bypass_csp=True).new_page()
    sign_in(page, base, "sam", PASSWORD)
    page.goto(f"{base}/tasks/{task['id']}")

    # the task list has the section, not yet answered
    assert SECTION in page.locator(".govuk-task-list").inner_text()
    assert _status(page) == "Not started"  # the task list page is axe-checked in tests/test_capacity_pages.py
    _tab_to(page, SECTION)
    assert YELLOW in _focus_ring(page), "the focused section link shows no focus"
    _enter(page)
    assert page.get_by_role("heading", level=1).inner_text() == SECTION
    assert f"Is there reason to doubt that the {who} can make this decision themselves?" in page.inner_text("main")

    # nothing follows on until its answer is given, and goes again when the answer changes
    hidden = (*CAPACITY_QUESTIONS, "#f-appropriate_person_available-0", "#f-appropriate_person")
    assert [s for s in hidden if _visible(page, s)] == []
    _tab_to(page, "f-capacity_in_doubt-0")
    assert YELLOW in _focus_ring(page, radio=True), "the focused radio shows no focus"
    page.keyboard.press("Space")  # Yes: the two-stage test and the best-interests decision appear
    assert [s for s in CAPACITY_QUESTIONS if not _visible(page, s)] == []
    run_axe(page, f"{form} capacity questions revealed")
    page.keyboard.press("ArrowDown")  # No: capacity is assumed; they go again
    assert page.is_checked("#f-capacity_in_doubt-1")
    assert [s for s in CAPACITY_QUESTIONS if _visible(page, s)] == []
    _tab_to(page, "f-substantial_difficulty-0")
    page.keyboard.press("Space")
    # both under it (GOV.UK reveals one level deep): whether there is an appropriate person, and who
    assert _visible(page, "#f-appropriate_person_available-0") and _visible(page, "#f-appropriate_person")

    # unanswered: the one question is named, not the name of a person nobody said is there, nor the hidden
    # capacity questions
    _tab_to(page, "Save and continue")
    _enter(page)
    assert _summary_links(page) == [NO_ONE_ERROR]
    assert page.title().startswith("Error: ")
    run_axe(page, f"{form} capacity and advocacy section with an error")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert _focused(page) == "f-appropriate_person_available-0"
    page.keyboard.press("Space")  # Yes: now their name is needed
    _tab_to(page, "Save and continue")
    _enter(page)
    assert _summary_links(page) == [NAME_ERROR]
    _tab_to(page, "f-appropriate_person_available-0")
    page.keyboard.press("ArrowDown")  # No: nobody; an advocate will be needed, and no name
    _tab_to(page, "Save and continue")
    _enter(page)
    assert page.url == f"{base}/tasks/{task['id']}"
    assert _status(page) == "Completed"
    assert eng.get_task(task["id"])["draft"]["appropriate_person_available"] is False

    # check your answers: the answers given, nothing hidden; a Change link leads back to the question
    _tab_to(page, "Check your answers")
    _enter(page)
    answers = page.locator("main").inner_text()
    assert f"Would the {who} have substantial difficulty being involved in this decision?\tYes" in answers
    assert "Is there an appropriate person to support and represent them?\tNo" in answers
    assert f"Is there reason to doubt that the {who} can make this decision themselves?\tNo" in answers
    assert "The specific decision" not in answers and "Best interests" not in answers  # hidden under No
    run_axe(page, f"{form} check your answers")
    change = "Change Is there an appropriate person to support and represent them?"
    _tab_to(page, change)
    _enter(page)
    assert page.get_by_role("heading", level=1).inner_text() == SECTION
    assert page.is_checked("#f-appropriate_person_available-1")
    page.go_back()
    page.reload()

    # complete: the advocacy referral, for the social work team, on the case record
    _tab_to(page, "Complete task")
    _enter(page)
    assert page.url == f"{base}/tasks?view=mine"
    page.goto(f"{base}/tasks")
    row = page.locator("tr", has=page.get_by_role("link", name=ADVOCATE)).filter(has_text=name)
    assert row.count() == 1 and "Social work" in row.inner_text(), page.inner_text("main")
    advocacy = eng.get_case(cid)["data"]["advocacy"]
    assert (advocacy["status"], advocacy["decision"]) == ("referred", form)
    page.goto(f"{base}/cases/{cid}")
    record = page.inner_text("main")
    assert "Independent advocacy (Care Act s.67 and s.68)\tIn progress" in record or \
        "Independent advocacy (Care Act s.67 and s.68) In progress" in record, record
    assert re.search(r"Waiting for: Arrange an independent advocate \(Social Work team\) since \d+ \w+ 2031, due "
                     r"\d+ \w+ 2031", record), record
    page.context.close()
