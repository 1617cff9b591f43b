"""The two task pages of issue 11 that had no browser test, reached through the real processes on the simulated
clock: "Plan costs more than the budget" (processes/support_plan.bpmn, a social worker) and "Financial assessment
overdue" (processes/financial_assessment.bpmn, a team manager's escalation after `financial_assessment_days`).
Each page shows what it is about to the penny or the day, is worked by keyboard alone, shows the GOV.UK error
summary when its answer is missing, goes where the diagram says, and is axe-clean. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from api.app import create_app
from api.demo_users import demo_password
from tests.browser import launch, live_server, run_axe, sign_in
from tests.case_helpers import the_task
from tests.casework_helpers import SW, TM, casework_engine, diagrams, tab_to, tasks
from tests.test_costed_plan import HOME_CARE, PENDANT, PROCESSES, ROOT, START, costed, to_write_plan
from tests.test_financial_assessment_process import FIN, ROSE
from tests.test_process_assessment_to_review import instances, open_tasks


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams(*PROCESSES), start=START, users=True)


@pytest.fixture
def app(eng):
    return create_app(eng, run_timers=False)


def _text(page) -> str:
    return " ".join(page.inner_text("main").split())


def _summary(page) -> list[str]:
    assert page.title().startswith("Error: ")
    assert page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')"), \
        "the error summary does not have the focus"
    return [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]


def _press(page, key: str = "Enter") -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def _claim_by_keyboard(page, base: str, task_id: str) -> None:
    page.goto(f"{base}/tasks/{task_id}")
    page.get_by_role("button", name="Claim this task").focus()
    _press(page)
    assert page.url == f"{base}/tasks/{task_id}"


# ---------------------------------------------------------------- Plan costs more than the budget


def test_plan_costs_more_than_the_budget_shows_the_shortfall_to_the_penny_and_both_answers_go_where_the_diagram_says(
        eng, app):
    # 14 hours at £25.01 is £350.14 a week against the budget's £341.26: £8.88 more
    change = to_write_plan(eng)
    eng.complete_task(the_task(eng, change, "write_plan")["id"],
                      costed({**HOME_CARE, "unit_cost": 25.01, "units_per_week": 14}, PENDANT), actor=SW)
    again = to_write_plan(eng)
    eng.complete_task(the_task(eng, again, "write_plan")["id"], costed({**HOME_CARE, "units_per_week": 21}),
                      actor=SW)  # £525.00 a week: £183.74 more
    first, second = the_task(eng, change, "plan_over_budget"), the_task(eng, again, "plan_over_budget")
    assert first["team"] == "social_work"
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, SW, demo_password("social_worker"))
        page.goto(f"{base}/tasks?view=team")
        row = page.locator("tr", has=page.get_by_role("link", name="Plan costs more than the budget"))
        assert row.count() == 2, _text(page)
        _claim_by_keyboard(page, base, first["id"])
        text = _text(page)
        for said in ("The plan costs £350.14 a week", "The personal budget £341.26 a week",
                     "More than the budget by £8.88 a week",
                     "The plan costs £350.14 a week but the personal budget is £341.26 a week: £8.88 a week more "
                     "than the budget."):
            assert said in text, text
        assert "Left in the budget" not in text
        run_axe(page, "plan costs more than the budget")

        # no answer: the GOV.UK error summary, focused, linking to the question
        tab_to(page, "Complete task")
        _press(page)
        assert _summary(page) == ["Select whether you will change the plan or have the budget decided again"]
        assert "£8.88" in _text(page)  # the figures are still there
        run_axe(page, "plan costs more than the budget, with an error")
        page.keyboard.press("Tab")  # the summary's link
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "f-next_step-0"
        page.keyboard.press("Space")  # Change the plan
        assert page.is_checked("#f-next_step-0")
        tab_to(page, "Complete task")
        _press(page)
        assert page.url == f"{base}/tasks?view=mine"
        assert "Task completed: Plan costs more than the budget" in _text(page)

        # the diagram's "change the plan": back to Write support plan, not to sign-off
        assert sorted(e for e, _ in tasks(eng, change) if e != "assess_finances") == ["write_plan"]
        page.goto(f"{base}/tasks?view=team")
        assert page.locator("tr", has=page.get_by_role("link", name="Write support plan")).count() == 1

        # the other case: "Decide the budget again", chosen with the arrow key
        _claim_by_keyboard(page, base, second["id"])
        assert "More than the budget by £183.74 a week" in _text(page)
        tab_to(page, "f-next_step-0")
        page.keyboard.press("ArrowDown")  # radios: the arrow moves to the next option and chooses it
        assert page.is_checked("#f-next_step-1") and not page.is_checked("#f-next_step-0")
        tab_to(page, "Complete task")
        _press(page)
        assert page.url == f"{base}/tasks?view=mine"
    # the diagram's "decide again": a new personal budget, waiting at the scoring task; no plan task left
    assert [i["status"] for i in instances(eng, again, "personal_budget")] == ["completed", "waiting"]
    assert [t["element_id"] for t in open_tasks(eng, again) if t["element_id"] != "assess_finances"] == ["score_needs"]


# ---------------------------------------------------------------- Financial assessment overdue


def _financial_assessment(eng, person) -> int:
    cid = eng.start("financial_assessment", actor=SW, data={
        "name": person["name"], "person": person, "eligibility_decided_at": START.isoformat()}).case_id
    eng.update_case_record(cid, {"person": person}, actor=SW, reason="recorded at the contact")
    return cid


def test_the_team_manager_sees_how_late_the_financial_assessment_is_and_whose_it_is_and_completes_the_escalation(
        eng, app):
    timescales = json.loads((ROOT / "processes" / "config" / "timescales.json").read_text(encoding="utf-8"))
    days = int(timescales["financial_assessment_days"])  # 28: due 31 March 2031
    claimed = _financial_assessment(eng, ROSE)
    queued = _financial_assessment(eng, {**ROSE, "name": "Amir Haddad"})
    finance = the_task(eng, claimed, "assess_finances")
    eng.claim(finance["id"], FIN)
    due = START + timedelta(days=days)
    assert finance["due_at"] == due
    eng.advance_clock(to=due - timedelta(minutes=1))
    assert [e for e, _ in tasks(eng, claimed)] == ["assess_finances"]  # not yet
    eng.advance_clock(to=due + timedelta(days=5))
    assert sorted(tasks(eng, claimed)) == [("assess_finances", "finance"), ("assessment_overdue", "team_manager")]
    overdue = the_task(eng, claimed, "assessment_overdue")
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, TM, demo_password("team_manager"))
        page.goto(f"{base}/tasks?view=team")
        rows = page.locator("tr", has=page.get_by_role("link", name="Financial assessment overdue"))
        assert rows.count() == 2, _text(page)
        run_axe(page, "team manager's queue with the escalations")

        # the one still in the finance team's queue: nobody has it
        page.goto(f"{base}/tasks/{the_task(eng, queued, 'assessment_overdue')['id']}")
        assert "Whose task it is Nobody yet: it is in the Finance team's queue" in _text(page)

        _claim_by_keyboard(page, base, overdue["id"])
        text = _text(page)
        for said in ("The financial assessment", "Task Financial assessment", "Team Finance",
                     f"Whose task it is {FIN}", "Due 31 March 2031", "Late by 5 days"):
            assert said in text, text
        run_axe(page, "financial assessment overdue")

        tab_to(page, "Complete task")
        _press(page)
        assert _summary(page) == ["Enter what has been done"]
        assert "Late by 5 days" in _text(page)
        run_axe(page, "financial assessment overdue, with an error")
        tab_to(page, "f-action_taken")
        page.keyboard.type("Asked Sam to visit Rose on Monday")
        tab_to(page, "Complete task")
        _press(page)
        assert page.url == f"{base}/tasks?view=mine"
        assert re.search(r"Task completed: Financial assessment overdue", _text(page))
    # the escalation is done; the financial assessment stays with the finance officer, due when it was
    assert tasks(eng, claimed) == [("assess_finances", "finance")]
    left = the_task(eng, claimed, "assess_finances")
    assert (left["assignee"], left["due_at"]) == (FIN, due)
    [done] = [e for e in eng.history(claimed) if e["type"] == "task.completed"]
    assert done["data"]["data"] == {"action_taken": "Asked Sam to visit Rose on Monday"} and done["actor"] == TM
