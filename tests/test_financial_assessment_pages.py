"""The finance officer does a financial assessment in the browser (processes/financial_assessment.bpmn, the
task list of api/task_sections.py): the task in the finance team's inbox, claimed, each section of the task
list answered (the route by keyboard only, focus shown), a negative amount refused naming the question,
check your answers with a working Change link, submitted, and the outcome read on the case record: the letter
with what the person pays. Every page axe-clean (WCAG 2.1 AA). SQLite and PostgreSQL.

The clock is in the 2023-24 charging year (as tests/test_financial_assessment_process.py): State Pension
£203.85 and a workplace pension £50.00, less the minimum income guarantee £214.35, is £39.50 a week.
"""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from api.demo_users import create_demo_users, demo_password
from tests.browser import launch, live_server, run_axe, sign_in
from tests.case_helpers import the_task
from tests.casework_helpers import SW, casework_engine, diagrams
from tests.test_financial_assessment_process import FIN, ROSE, START
from tests.test_forms_sections import _enter, _focused, _tab_to
from tests.test_new_information_page import YELLOW, _focus_ring

SECTIONS = ["How the charge is worked out", "The person's circumstances", "Capital", "Weekly income",
            "Housing costs", "Disability-related expenditure"]


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams("financial_assessment"), start=START, users=False)


@pytest.fixture
def app(eng):
    create_demo_users(eng)
    return create_app(eng, run_timers=False)


def started(eng) -> int:
    """Rose's case (her details on the case record, as the front door keeps them), her financial assessment
    started as her needs were found eligible."""
    cid = eng.start("financial_assessment", actor=SW, data={
        "name": ROSE["name"], "person": ROSE, "eligibility_decided_at": START.isoformat()}).case_id
    eng.update_case_record(cid, {"person": ROSE}, actor=SW, reason="recorded at the contact")
    return cid


def _status(page, section: str) -> str:
    item = page.locator(".govuk-task-list__item", has=page.get_by_role("link", name=section, exact=True))
    return item.locator(".govuk-task-list__status").inner_text().strip()


def _summary_links(page) -> list[str]:
    assert page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')"), \
        "the error summary does not have the focus"
    return [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]


def _open_section(page, base: str, task_id: int, title: str) -> None:
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_url(re.compile(rf"{re.escape(base)}/tasks/{task_id}/sections/.*"))
    assert page.get_by_role("heading", level=1).inner_text() == title


def _save(page, base: str, task_id: int) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Save and continue").click()
    errors = page.locator(".govuk-error-summary")
    assert page.url == f"{base}/tasks/{task_id}", errors.inner_text() if errors.count() else page.url


def test_the_finance_officer_does_a_full_financial_assessment_in_the_browser(eng, app):
    cid = started(eng)
    task = the_task(eng, cid, "assess_finances")
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        # the finance team's inbox has it, with its due date
        page.goto(f"{base}/tasks")
        row = page.locator("tr", has=page.get_by_role("link", name="Financial assessment")).filter(
            has_text=ROSE["name"])
        assert row.count() == 1, page.inner_text("main")
        assert "3 July 2023" in row.inner_text()  # 28 days after 5 June 2023
        run_axe(page, "finance inbox")
        row.get_by_role("link", name="Financial assessment").click()
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        page.get_by_role("button", name="Claim this task").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        listed = page.locator(".govuk-task-list").inner_text()
        assert [s for s in SECTIONS if s not in listed] == []
        assert all(_status(page, s) == "Not started" for s in SECTIONS)
        run_axe(page, "financial assessment task list")

        # the route, by keyboard only, the focus shown
        _tab_to(page, SECTIONS[0])
        assert YELLOW in _focus_ring(page), "the focused section link shows no focus"
        _enter(page)
        assert page.get_by_role("heading", level=1).inner_text() == SECTIONS[0]
        run_axe(page, "the route")
        _tab_to(page, "Save and continue")
        _enter(page)  # nothing chosen: the question is named
        assert _summary_links(page) == ["Select how the person's charge is worked out"]
        assert page.title().startswith("Error: ")
        run_axe(page, "the route with an error")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        assert _focused(page) == "f-route-0"
        assert YELLOW in _focus_ring(page, radio=True), "the focused radio shows no focus"
        page.keyboard.press("Space")  # Full financial assessment
        _tab_to(page, "Save and continue")
        _enter(page)
        assert page.url == f"{base}/tasks/{task['id']}"
        assert _status(page, SECTIONS[0]) == "Completed"

        # the person's circumstances
        _open_section(page, base, task["id"], SECTIONS[1])
        page.get_by_label("State Pension age or over").check()
        page.get_by_role("group", name="Is the person part of a couple?").get_by_label("No").check()
        page.get_by_label("How many dependent children live with the person?").fill("0")
        run_axe(page, "circumstances")
        _save(page, base, task["id"])
        assert _status(page, SECTIONS[1]) == "Completed"

        # capital: a negative amount is refused, naming the question
        _open_section(page, base, task["id"], SECTIONS[2])
        for name, value in (("savings", "-5"), ("investments", "0"), ("property_other_than_home", "0"),
                            ("other", "0")):
            page.fill(f"#f-capital-{name}", value)
        page.get_by_role("button", name="Save and continue").click()
        page.wait_for_load_state()
        [error] = _summary_links(page)
        assert error == "Savings must be £0.00 or more", error
        run_axe(page, "capital with an error")
        page.fill("#f-capital-savings", "14250")  # the lower limit: no tariff income
        _save(page, base, task["id"])
        assert _status(page, SECTIONS[2]) == "Completed"

        # weekly income: every benefit asked, 0 for none
        _open_section(page, base, task["id"], SECTIONS[3])
        for name in ("state_pension", "private_pension", "pension_credit", "attendance_allowance", "pip_daily_living",
                     "pip_mobility", "dla_care", "dla_mobility", "universal_credit", "esa", "earnings", "other"):
            page.fill(f"#f-income_weekly-{name}", {"state_pension": "203.85", "private_pension": "50"}.get(name, "0"))
        run_axe(page, "weekly income")
        _save(page, base, task["id"])
        assert _status(page, SECTIONS[3]) == "Completed"

        _open_section(page, base, task["id"], SECTIONS[4])
        for name in ("rent", "mortgage", "council_tax"):
            page.fill(f"#f-housing_weekly-{name}", "0")
        run_axe(page, "housing costs")
        _save(page, base, task["id"])

        _open_section(page, base, task["id"], SECTIONS[5])
        page.get_by_role("group", name="Does the person have extra costs because of their disability?").get_by_label(
            "Yes").check()  # the costs are asked under Yes
        page.fill("#f-dre_weekly-0-item", "Extra heating")
        run_axe(page, "disability-related expenditure")
        page.get_by_role("button", name="Save and continue").click()
        page.wait_for_load_state()
        assert _summary_links(page) == ["Cost 1: enter how much it costs a week"]
        page.get_by_role("group", name="Does the person have extra costs because of their disability?").get_by_label(
            "No").check()  # on second thoughts: none (what was typed under Yes is not sent)
        _save(page, base, task["id"])
        assert all(_status(page, s) == "Completed" for s in SECTIONS), page.inner_text("main")

        # check your answers, and a Change link back to a question
        page.get_by_role("button", name="Check your answers").click()
        page.wait_for_url(f"{base}/tasks/{task['id']}/check-answers")
        answers = page.locator("main").inner_text()
        for text in ("How is the person's charge worked out?\tFull financial assessment",
                     "The person's age\tState Pension age or over", "State Pension\t£203.85",
                     "Private or workplace pensions\t£50.00",
                     "Does the person have extra costs because of their disability?\tNo"):
            assert text in answers, answers
        run_axe(page, "check your answers")
        page.get_by_role("link", name=re.compile("^Change Private or workplace pensions")).click()
        page.wait_for_url(re.compile(r".*/sections/income.*"))
        assert page.input_value("#f-income_weekly-private_pension") == "50.00"  # to the penny
        page.goto(f"{base}/tasks/{task['id']}/check-answers")
        _tab_to(page, "Complete task")
        _enter(page)
        assert page.url == f"{base}/tasks?view=mine"
        assert "Task completed: Financial assessment" in page.inner_text("main")

        # the outcome on the case record: the letter says what the person pays
        page.goto(f"{base}/cases/{cid}")
        run_axe(page, "case record after the financial assessment")
        # the chronology does not say "sent" of a letter only filed for printing (no GOV.UK Notify here)
        assert "Filed for printing" in page.inner_text("main")
        assert "Letter sent" not in page.inner_text("main")
        page.get_by_role("link", name="Letter written: Your financial assessment").click()
        letter = " ".join(page.inner_text("main").split())
        assert "You will pay £39.50 a week." in letter
        assert "Minimum income guarantee: single person of Pension Credit age: £214.35." in letter
        run_axe(page, "the financial assessment letter")
    kept = eng.get_case(cid)["data"]["financial_assessment"]
    assert (kept["route"], kept["weekly_contribution"]) == ("full", "39.50")


def test_the_light_touch_route_needs_only_its_first_section(eng, app):
    cid = started(eng)
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        page.goto(f"{base}/tasks/{task['id']}")
        _open_section(page, base, task["id"], SECTIONS[0])
        page.get_by_label("The person chooses to pay the full cost (light touch)").check()
        page.get_by_label("Notes on the route").fill("Her son says she will pay the full cost")
        _save(page, base, task["id"])
        page.get_by_role("button", name="Check your answers").click()
        page.wait_for_url(f"{base}/tasks/{task['id']}/check-answers")
        run_axe(page, "check your answers, light touch")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_url(f"{base}/tasks?view=mine")
    kept = eng.get_case(cid)["data"]["financial_assessment"]
    assert (kept["route"], kept["full_cost"]) == ("light_touch", True)
