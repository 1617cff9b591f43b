"""A financial assessment that needs a figure charging.json does not have (issue 11 bad input: "a missing year's
figures — a clear message"), as the finance officer meets it in the browser.

In the demo (December 2026, charging year 2026-27) a person aged 25 to State Pension age was assessed in full; the
2026-27 amount for regulation 7(2)(b) is not sourced (docs/charging.md), so "Work out what the person pays"
stopped as an incident. The officer saw "Success. Task completed: Financial assessment" and nothing else; only an
administrator's incident list named the figure. Now the officer is told, on the page after "Complete task", that
the answers are saved, which figure is missing, that nothing was sent to the person and that an administrator must
put it right. The incident is unchanged (the administrator's retry after adding the figure carries on). SQLite and
PostgreSQL, axe-clean.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from api.app import create_app
from api.demo_users import create_demo_users, demo_password
from tests.browser import launch, live_server, run_axe, sign_in
from tests.case_helpers import the_task
from tests.casework_helpers import SW, casework_engine, diagrams
from tests.test_financial_assessment_process import FIN, full

WINTER_2026 = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)  # charging year 2026-27
TOM = {"name": "Tom Reed", "address": ["6 Birch Row", "Northtown", "NS3 4GH"]}


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams("financial_assessment"), start=WINTER_2026, users=False)


def test_the_officer_is_told_which_figure_is_missing_not_just_task_completed(eng):
    create_demo_users(eng)
    cid = eng.start("financial_assessment", actor=SW, data={
        "name": TOM["name"], "person": TOM, "eligibility_decided_at": WINTER_2026.isoformat()}).case_id
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    eng.save_draft(task["id"], full(age_band="25_to_pension_age", income={"universal_credit": 150}), actor=FIN)
    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        page.goto(f"{base}/tasks/{task['id']}/check-answers")
        with page.expect_navigation():
            page.get_by_role("button", name="Complete task").click()
        text = " ".join(page.inner_text("main").split())
        assert page.get_by_role("heading", level=1).inner_text() == (
            "Your answers are saved, but the next step stopped")
        assert ("The step after it could not be done: Charging figures: the 2026-27 minimum income guarantee amount "
                "for a single person aged 25 or over, under Pension Credit age (regulation 7(2)(b) of the "
                "Regulations) is not in charging.json") in text, text
        assert "Nothing has been sent to the person." in text
        assert "Task completed" not in text and "ValueError" not in text
        run_axe(page, "a financial assessment whose next step stopped")
    [incident] = [i for i in eng.incidents() if i["case_id"] == cid]
    assert incident["handler"] == "financial_assessment"


def test_a_task_whose_next_step_runs_still_says_task_completed(eng):
    create_demo_users(eng)
    cid = eng.start("financial_assessment", actor=SW, data={
        "name": TOM["name"], "person": TOM, "eligibility_decided_at": WINTER_2026.isoformat()}).case_id
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    eng.save_draft(task["id"], {"route": "declined"}, actor=FIN)
    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        page.goto(f"{base}/tasks/{task['id']}/check-answers")
        with page.expect_navigation():
            page.get_by_role("button", name="Complete task").click()
        assert "Task completed: Financial assessment" in page.inner_text("main")
    assert [i for i in eng.incidents() if i["case_id"] == cid] == []
