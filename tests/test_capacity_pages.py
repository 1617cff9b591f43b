"""The mental capacity, advocacy and fluctuating needs questions as pages (api/page_forms.py, the task list of
api/task_sections.py): each follow-on question is revealed under the answer that needs it, errors name the
question and never a hidden one, and the pages are axe-clean and usable by keyboard.

The real forms (needs_assessment, advocacy_referral, safeguarding_strategy) are used on the test diagram's
task, as tests/test_forms_sections.py does.
"""

from __future__ import annotations

from pathlib import Path

from api.app import create_app
from api.auth import create_user
from api.page_forms import fields_for, walk
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import DIAGRAMS, START, Calls
from tests.test_forms_sections import _enter, _page_errors, _tab_to
from tests.test_pages_inbox import PASSWORD

FORMS = Path(__file__).resolve().parent.parent / "forms"
LIB = FormLibrary.from_folder(FORMS)
NEEDS = LIB.schema("needs_assessment")
ADVOCACY = LIB.schema("advocacy_referral")
STRATEGY = LIB.schema("safeguarding_strategy")
PLAN = LIB.schema("support_plan")


def _revealed(schema: dict) -> dict[str, dict[str, list[str]]]:
    return {f.name: {v: [g.name for g in shown] for v, shown in f.reveal.items()}
            for f in walk(fields_for(schema)) if f.reveal}


# ---------------------------------------------------------------------- what is revealed, and the errors
def test_each_follow_on_question_is_revealed_under_the_answer_that_needs_it():
    for schema in (NEEDS, PLAN, STRATEGY):
        revealed = _revealed(schema)
        assert revealed["capacity_in_doubt"] == {"true": ["capacity_assessment", "best_interests"]}
        assert revealed["substantial_difficulty"] == {"true": ["appropriate_person_available", "appropriate_person"]}
    assert _revealed(NEEDS)["needs_fluctuate"] == {"true": ["fluctuation_period", "fluctuation_pattern"]}
    assert _revealed(ADVOCACY)["outcome"] == {
        "appointed": ["advocate_name", "advocate_contact", "appointed_on"],
        "appropriate_person_found": ["appropriate_person"], "person_declined": ["declined_reason"]}


def test_unanswered_capacity_and_advocacy_questions_add_no_errors_and_hidden_ones_are_never_named():
    empty = _page_errors(NEEDS, {})
    assert not [t for t in empty if any(w in t.lower() for w in ("capacity", "advocate", "appropriate person",
                                                                  "best interests", "fluctuat", "period"))], empty
    texts = _page_errors(NEEDS, {"capacity_in_doubt": ["true"]})
    capacity = [t for t in texts if t.startswith("Capacity assessment: ")]
    assert capacity == [  # the decision, its date, the two stages, the help given, the reasons
        "Capacity assessment: enter the specific decision the assessment is about",
        "Capacity assessment: enter the date of the assessment",
        "Capacity assessment: select whether the person has an impairment of, or a disturbance in the functioning "
        "of, the mind or brain",
        "Capacity assessment: select whether the person is unable to understand the information relevant to the "
        "decision",
        "Capacity assessment: select whether the person is unable to retain the information long enough to decide",
        "Capacity assessment: select whether the person is unable to use or weigh the information",
        "Capacity assessment: select whether the person is unable to communicate their decision",
        "Capacity assessment: enter what was done to help the person make the decision themselves",
        "Capacity assessment: enter the reasons for the conclusion"], capacity
    assert not [t for t in texts if t.startswith("Best interests")], texts  # capacity not yet found lacking
    texts = _page_errors(NEEDS, {"substantial_difficulty": ["true"]})
    assert [t for t in texts if "appropriate person" in t.lower()] == [
        "Select whether there is an appropriate person to support and represent them"], texts
    texts = _page_errors(NEEDS, {"substantial_difficulty": ["true"], "appropriate_person_available": ["true"]})
    assert [t for t in texts if "appropriate person" in t.lower()] == [
        "Enter the appropriate person's name and relationship"], texts
    texts = _page_errors(NEEDS, {"needs_fluctuate": ["true"]})
    assert [t for t in texts if "period" in t.lower()] == [
        "Enter the period over which you considered the person's circumstances"], texts


def test_a_person_found_to_lack_capacity_needs_the_best_interests_decision_on_the_same_page():
    lacks = {"capacity_in_doubt": ["true"], "capacity_assessment.decision": ["Whether to move to Oak Lodge"],
             "capacity_assessment.assessed_on-day": ["3"], "capacity_assessment.assessed_on-month": ["3"],
             "capacity_assessment.assessed_on-year": ["2031"], "capacity_assessment.impairment": ["true"],
             "capacity_assessment.unable_to_understand": ["false"], "capacity_assessment.unable_to_retain": ["true"],
             "capacity_assessment.unable_to_use_or_weigh": ["true"],
             "capacity_assessment.unable_to_communicate": ["false"],
             "capacity_assessment.support_given": ["Pictures, at home, his daughter there"],
             "capacity_assessment.reasons": ["Could not keep the information in mind"]}
    texts = _page_errors(NEEDS, lacks)
    assert not [t for t in texts if t.startswith("Capacity assessment")], texts
    assert [t for t in texts if t.startswith("Best interests: ")] == [
        "Best interests: enter what was decided in the person's best interests",
        "Best interests: enter who made the decision (name and role)",
        "Best interests: enter the person's past and present wishes and feelings, beliefs and values (s.4(6))",
        "Best interests: enter at least one person consulted",
        "Best interests: enter why this is the least restrictive option (s.1(6))"], texts


# ---------------------------------------------------------------------- in the browser
def _world(db_url, schema):
    eng = Engine(db_url, registry=Calls().registry(),
                 forms=FormLibrary({"reablement_outcome": schema, "overrun": {"type": "object"}}))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    create_user(eng, "rosa", PASSWORD, display_name="Rosa Patel", roles=["reablement_coordinator"],
                teams=["reablement"])
    case = eng.start("deadline", title="Mr Peter Clarke").case_id
    task = next(t for t in eng.list_tasks(case_id=case) if t["element_id"] == "reablement")
    return eng, create_app(eng, run_timers=False), task


def _signed_in_on(browser, base, task):
    from tests.browser import sign_in

    page = browser.new_context(bypass_csp=True).new_page()
    sign_in(page, base, "rosa", PASSWORD)
    page.goto(f"{base}/tasks/{task['id']}")
    _tab_to(page, "Claim this task")
    _enter(page)
    page.goto(f"{base}/tasks/{task['id']}")
    return page


def test_the_capacity_and_advocacy_questions_by_keyboard_in_the_needs_assessment_task_list(db_url):
    from tests.browser import launch, live_server, run_axe

    eng, app, task = _world(db_url, NEEDS)
    try:
        with live_server(app) as base, launch() as browser:
            page = _signed_in_on(browser, base, task)
            _tab_to(page, "About the assessment, capacity and advocacy")
            _enter(page)
            assert not page.locator("#f-capacity_assessment-decision").is_visible()
            _tab_to(page, "f-capacity_in_doubt-0")
            page.keyboard.press("Space")  # Yes: the two-stage test and the best-interests decision appear
            assert page.locator("#f-capacity_assessment-decision").is_visible()
            assert page.locator("#f-capacity_assessment-impairment-0").is_visible()
            assert page.locator("#f-best_interests-decision").is_visible()
            _tab_to(page, "f-capacity_assessment-decision")
            page.keyboard.type("Whether to take part in the assessment")
            _tab_to(page, "f-substantial_difficulty-0")
            page.keyboard.press("Space")
            assert page.locator("#f-appropriate_person_available-0").is_visible()
            run_axe(page, "about section, capacity and advocacy questions revealed")
            _tab_to(page, "Save and continue")
            _enter(page)
            summary = page.locator(".govuk-error-summary").inner_text()
            assert "Capacity assessment: " in summary and "appropriate person" in summary.lower()
            assert "The specific decision" not in summary  # answered
            run_axe(page, "about section with errors")
            assert eng.get_task(task["id"])["draft"]["capacity_assessment"]["decision"] == (
                "Whether to take part in the assessment")
    finally:
        eng.db.dispose()


def test_arranging_an_advocate_is_one_axe_clean_page_completed_by_keyboard(db_url):
    from tests.browser import launch, live_server, run_axe

    eng, app, task = _world(db_url, ADVOCACY)
    try:
        with live_server(app) as base, launch() as browser:
            page = _signed_in_on(browser, base, task)
            run_axe(page, "arrange an advocate")
            _tab_to(page, "f-referred_to")
            page.keyboard.type("Northshire Advocacy Hub")
            _tab_to(page, "f-referred_on-day")
            page.keyboard.type("3")
            page.keyboard.press("Tab")
            page.keyboard.type("3")
            page.keyboard.press("Tab")
            page.keyboard.type("2031")
            _tab_to(page, "f-outcome-0")
            page.keyboard.press("Space")  # appointed: the advocate's name, contact and date appear
            assert page.locator("#f-advocate_name").is_visible()
            assert not page.locator("#f-declined_reason").is_visible()
            _tab_to(page, "f-advocate_name")
            page.keyboard.type("Grace Okafor")
            _tab_to(page, "f-advocate_contact")
            page.keyboard.type("01632 960555")
            _tab_to(page, "f-appointed_on-day")
            page.keyboard.type("2")  # before the referral: refused, named
            page.keyboard.press("Tab")
            page.keyboard.type("3")
            page.keyboard.press("Tab")
            page.keyboard.type("2031")
            _tab_to(page, "Complete task")
            _enter(page)
            summary = page.locator(".govuk-error-summary").inner_text()
            assert "must not be before" in summary, summary
            run_axe(page, "arrange an advocate, with an error")
            page.fill("#f-appointed_on-day", "5")
            _tab_to(page, "Complete task")
            _enter(page)
            assert page.url.endswith("/tasks?view=mine")
        [done] = [e["data"]["data"] for e in eng.history(task["case_id"]) if e["type"] == "task.completed"]
        assert done == {"referred_to": "Northshire Advocacy Hub", "referred_on": "2031-03-03", "outcome": "appointed",
                        "advocate_name": "Grace Okafor", "advocate_contact": "01632 960555",
                        "appointed_on": "2031-03-05"}
    finally:
        eng.db.dispose()


def test_the_strategy_discussion_is_a_task_list_with_a_capacity_and_advocacy_section(db_url):
    from tests.browser import launch, live_server, run_axe

    eng, app, task = _world(db_url, STRATEGY)
    try:
        with live_server(app) as base, launch() as browser:
            page = _signed_in_on(browser, base, task)
            assert page.locator(".govuk-task-list__item").count() == 2
            run_axe(page, "strategy discussion task list")
            _tab_to(page, "Mental capacity and advocacy")
            _enter(page)
            _tab_to(page, "f-substantial_difficulty-0")
            page.keyboard.press("Space")
            _tab_to(page, "f-appropriate_person_available-0")
            page.keyboard.press("ArrowDown")  # No: an advocate will be referred
            run_axe(page, "strategy discussion, capacity and advocacy section")
            _tab_to(page, "Save and continue")
            _enter(page)
            assert page.locator("#status-capacity-and-advocacy").inner_text().strip() == "Completed"
    finally:
        eng.db.dispose()
