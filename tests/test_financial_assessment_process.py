"""The finance officer's financial assessment (issue 11 item 1; processes/financial_assessment.bpmn), a scenario
on the simulated clock with the real diagrams, handlers (handlers/charging.py, handlers/charging_letters.py) and
forms, on SQLite and PostgreSQL:

* every person whose needs are eligible gets a "Financial assessment" task for the finance team, due
  financial_assessment_days (timescales.json, 28) after eligibility; a person not eligible gets none;
* the full route: capital above the upper limit (£23,250.00) pays the full cost, at the limit does not;
  below the lower limit with State Pension only, the charge the regulations give (worked out by hand below);
* light touch (the person chooses to pay the full cost) and declined (will not say what they have): full cost;
* the letter "Your financial assessment" says what the person pays, each figure and why, and how to ask for a
  review; the case record keeps the result as financial_assessment with the day it was decided;
* the target passed: the team manager gets "Financial assessment overdue", the finance task stays open with
  its due date;
* bad input (a negative or absurd amount, a missing answer) is refused naming the field; nothing stored changes.

The clock starts on Monday 5 June 2023, in the 2023-24 charging year: processes/config/charging.json has that
year's regulation 7 amounts for a single person of Pension Credit age (£214.35), from SI 2023/277.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api.demo_users import demo_username
from engine.errors import ValidationError
from engine.replay import replay_case
from tests.case_helpers import events, the_task
from tests.casework_helpers import SW, TM, casework_engine, complete, diagrams, tasks
from tests.test_process_assessment_to_review import assessment

START = datetime(2023, 6, 5, 9, 0, tzinfo=timezone.utc)  # Monday 5 June 2023: charging year 2023-24
FIN = demo_username("finance_officer")
ROSE = {"name": "Rose Adeyemi-Clarke", "address": ["7 Quarry Close", "Northtown", "NS4 2QQ"]}
NOTHING_CAPITAL = {"savings": 0, "investments": 0, "property_other_than_home": 0, "other": 0}
NO_INCOME = {k: 0 for k in ("state_pension", "private_pension", "pension_credit", "attendance_allowance",
                            "pip_daily_living", "pip_mobility", "dla_care", "dla_mobility", "universal_credit",
                            "esa", "earnings", "other")}
NO_HOUSING = {"rent": 0, "mortgage": 0, "council_tax": 0}


def full(capital=None, income=None, housing=None, dre=None, **changes) -> dict:
    """The finance officer's form for a full assessment: a single person of State Pension age."""
    data = {"route": "full", "age_band": "pension_age", "couple": False, "dependent_children": 0, "premiums": [],
            "capital": {**NOTHING_CAPITAL, **(capital or {})}, "income_weekly": {**NO_INCOME, **(income or {})},
            "housing_weekly": {**NO_HOUSING, **(housing or {})}, "has_disability_costs": bool(dre)}
    if dre:
        data["dre_weekly"] = dre
    data.update(changes)
    return data


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams("needs_assessment", "carers_assessment", "advocacy",
                                                "personal_budget", "support_plan", "financial_assessment",
                                                "review", "direct_payment_review"),
                               start=START)


def started(eng) -> int:
    return eng.start("financial_assessment", data={"person": ROSE, "eligibility_decided_at": START.isoformat()},
                     actor=SW).case_id


def assessed(eng, answers: dict) -> int:
    cid = started(eng)
    complete(eng, cid, "assess_finances", answers, actor=FIN)
    return cid


def result(eng, cid) -> dict:
    [out] = [e["data"]["output"] for e in events(eng, cid, "handler.called")
             if e["data"]["handler"] == "financial_assessment"]
    return out


def letter(eng, cid) -> str:
    [body] = [" ".join(e["data"]["output"]["body"].split()) for e in events(eng, cid, "handler.called")
              if e["data"]["handler"] == "financial_assessment_letter"]
    return body


def record(eng, cid) -> dict:
    return eng.get_case(cid)["data"]


# ---------------------------------------------------------------- started for every eligible person


def test_an_eligible_person_gets_a_financial_assessment_for_the_finance_team_due_by_the_local_target(eng):
    cid = eng.start("needs_assessment", actor=SW, data={"person": ROSE, "contact_date": "2023-06-05"}).case_id
    eng.advance_clock(timedelta(days=3))
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "being_clothed"), actor=SW)
    open_tasks = tasks(eng, cid)
    assert ("assess_finances", "finance") in open_tasks and ("score_needs", "social_work") in open_tasks
    task = the_task(eng, cid, "assess_finances")
    assert task["name"] == "Financial assessment"
    assert task["due_at"] == START + timedelta(days=3 + 28)  # financial_assessment_days after eligibility
    # the finance officer sees it among the finance team's tasks; a social worker's inbox does not have it
    assert [t["element_id"] for t in eng.list_tasks(case_id=cid, team="finance")] == ["assess_finances"]


def test_a_person_whose_needs_are_not_eligible_gets_no_financial_assessment(eng):
    cid = eng.start("needs_assessment", actor=SW, data={"person": ROSE, "contact_date": "2023-06-05"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene"), actor=SW)  # one outcome: not eligible
    assert tasks(eng, cid) == []
    assert "financial_assessment" not in record(eng, cid)


# ---------------------------------------------------------------- the full route


@pytest.mark.parametrize("savings, pays_full_cost", [("23250.01", True), ("23250.00", False)])
def test_capital_above_the_upper_limit_pays_the_full_cost_and_at_the_limit_does_not(eng, savings, pays_full_cost):
    cid = assessed(eng, full(capital={"savings": float(savings)}, income={"state_pension": 203.85}))
    out = result(eng, cid)
    assert out["capital_total"] == savings
    assert out["full_cost"] is pays_full_cost
    body = letter(eng, cid)
    if pays_full_cost:
        assert "above the upper limit of £23,250.00" in out["reason"]
        assert "You will pay the full cost." in body
        assert ("Your capital: £23,250.01. Savings. We do not count the home you live in. - Upper capital limit: "
                "£23,250.00. Your capital is more than £23,250.00, so you pay the full cost (regulation 12).") in body
    else:
        # £23,250.00 is £9,000.00 over the lower limit: 36 bands of £250 at £1 a week = £36.00 tariff income;
        # State Pension £203.85 + £36.00 - minimum income guarantee £214.35 = £25.50 a week
        assert out["tariff_income"] == "36.00"
        assert out["weekly_contribution"] == "25.50"
        assert "You will pay £25.50 a week." in body
        assert "Tariff income from capital: £36.00." in body


@pytest.mark.parametrize("income, pays", [
    # State Pension only (the full new State Pension for 2023-24, £203.85 a week) is less than the minimum income
    # guarantee for a single person of Pension Credit age (£214.35, regulation 7(2)(c) as amended by SI 2023/277):
    # 203.85 - 214.35 < 0, so the person pays nothing
    ({"state_pension": 203.85}, "0.00"),
    # with a workplace pension of £50.00 as well: 203.85 + 50.00 - 214.35 = £39.50 a week
    ({"state_pension": 203.85, "private_pension": 50}, "39.50"),
])
def test_below_the_lower_capital_limit_a_pensioner_pays_what_the_regulations_give(eng, income, pays):
    cid = assessed(eng, full(capital={"savings": 14250}, income=income))  # at the lower limit: no tariff
    out = result(eng, cid)
    assert (out["year"], out["route"], out["full_cost"]) == ("2023-24", "full", False)
    assert (out["capital_total"], out["tariff_income"], out["mig"]) == ("14250.00", "0.00", "214.35")
    assert out["weekly_contribution"] == pays
    body = letter(eng, cid)
    if pays == "0.00":
        assert "You do not need to pay anything." in body
    else:
        assert "You will pay £39.50 a week." in body
        assert "State Pension: £203.85. Counted in full." in body
        assert "Private or workplace pension: £50.00. Counted in full." in body
    assert "Minimum income guarantee: single person of Pension Credit age: £214.35." in body
    assert "We used the national figures for 2023 to 2024" in body


def test_the_letter_explains_every_figure_and_what_is_not_counted_and_how_to_ask_for_a_review(eng):
    cid = assessed(eng, full(capital={"savings": 15000.01},
                             income={"state_pension": 203.85, "attendance_allowance": 101.75, "pip_mobility": 26.90},
                             housing={"council_tax": 12.40},
                             dre=[{"item": "Extra heating", "amount": 7.50}, {"item": "Laundry", "amount": 4.25}]))
    out = result(eng, cid)
    # capital £15,000.01: £750.01 over £14,250.00 is 4 bands (a part band counts) = £4.00 a week;
    # counted 203.85 + 101.75 = 305.60 (PIP mobility never counted); + 4.00 - 214.35 - 12.40 - 11.75 = £71.10
    assert (out["tariff_income"], out["income_counted"], out["housing"], out["dre"]) == (
        "4.00", "305.60", "12.40", "11.75")
    assert out["weekly_contribution"] == "71.10"
    body = letter(eng, cid)
    assert body.count("You will pay £71.10 a week.") == 1
    for text in ("Your capital: £15,000.01.", "Tariff income from capital: £4.00.", "State Pension: £203.85.",
                 "Attendance Allowance: £101.75.",
                 "Housing costs: £12.40. What you pay for your home after any help with it: Council Tax £12.40.",
                 "Extra cost of disability: Extra heating: £7.50.",
                 "Extra cost of disability: Laundry: £4.25.",
                 "PIP mobility part (not counted): £26.90. The mobility part of PIP is not counted",
                 "Assessed weekly charge: £71.10.",
                 "If you think this is wrong", "You can ask us to look at your financial assessment again.",
                 "within 28 days of this letter", "Local Government and Social Care Ombudsman"):
        assert text in body, text
    assert body.count("PIP mobility part") == 1  # said once
    assert "Your financial assessment" in body and "FINANCIAL" not in body
    assert "case " + str(cid) not in body
    [doc] = [d for d in eng.documents(cid) if d["kind"] == "financial_assessment"]
    assert doc["title"] == "Your financial assessment"


def test_the_case_record_keeps_the_result_with_the_day_it_was_decided(eng):
    cid = started(eng)
    assert "financial_assessment" not in record(eng, cid)
    eng.advance_clock(timedelta(days=2, hours=3))
    complete(eng, cid, "assess_finances", full(income={"state_pension": 203.85, "private_pension": 50}), actor=FIN)
    kept = record(eng, cid)["financial_assessment"]
    assert kept == {**result(eng, cid), "decided_at": kept["decided_at"]}
    assert kept["decided_at"].startswith("2023-06-07T12:00")
    assert (kept["weekly_contribution"], kept["full_cost"], kept["route"]) == ("39.50", False, "full")
    assert eng.get_case(cid)["instances"][0]["status"] == "completed"
    assert replay_case(eng, cid).ok  # the step that kept it re-runs to the same record


def test_when_the_budget_is_decided_the_letter_gives_the_cost_what_the_person_pays_and_what_we_pay(eng):
    cid = started(eng)
    # the personal budget, decided first (personal_budget.bpmn keeps it on the case): £300.00 a week
    eng.update_case_record(cid, {"personal_budget": {"final_amount": "15600.00", "weekly_equivalent": "300.00"}},
                           actor=SW, reason="budget decided")
    complete(eng, cid, "assess_finances", full(income={"state_pension": 203.85, "private_pension": 50}), actor=FIN)
    out = result(eng, cid)
    assert (out["weekly_cost"], out["weekly_contribution"], out["full_cost"]) == ("300.00", "39.50", False)
    body = letter(eng, cid)
    assert "Your support costs £300.00 a week. - You pay £39.50 a week. - We pay £260.50 a week." in body


def test_when_the_plan_is_signed_off_first_the_letter_gives_the_plans_cost_not_the_budget(eng):
    """Rose's plan (£175.00 a week: 7 hours at £25.00) is signed off before the finance officer finishes. She
    chose to pay the full cost. The letter said "You will pay the full cost: £341.26 a week", her whole budget,
    though her support costs £175.00; it now gives the signed-off plan's cost."""
    from tests.test_costed_plan import HOME_CARE, costed
    from tests.test_process_assessment_to_review import SMALL, ras

    cid = eng.start("needs_assessment", actor=SW, data={"person": ROSE, "contact_date": "2023-06-05"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"),
             actor=SW)
    complete(eng, cid, "score_needs", ras(**SMALL), actor=SW)  # £17,745.45 a year, £341.26 a week
    complete(eng, cid, "write_plan", costed(HOME_CARE), actor=SW)  # £175.00 a week
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor=TM)
    complete(eng, cid, "assess_finances", {"route": "light_touch"}, actor=FIN)
    out = result(eng, cid)
    assert (out["weekly_cost"], out["weekly_contribution"], out["full_cost"]) == ("175.00", "175.00", True)
    body = letter(eng, cid)
    assert "You will pay the full cost: £175.00 a week." in body
    assert "£341.26" not in body


def test_a_person_whose_means_allow_more_than_the_cost_pays_the_cost_and_no_more(eng):
    cid = started(eng)
    eng.update_case_record(cid, {"personal_budget": {"final_amount": "1560.00", "weekly_equivalent": "30.00"}},
                           actor=SW, reason="budget decided")
    complete(eng, cid, "assess_finances", full(income={"state_pension": 203.85, "private_pension": 50}), actor=FIN)
    out = result(eng, cid)  # the means allow £39.50, the support costs £30.00
    assert (out["assessed_weekly_charge"], out["weekly_contribution"], out["full_cost"]) == ("39.50", "30.00", True)
    body = letter(eng, cid)
    assert "You will pay the full cost: £30.00 a week." in body
    assert "We pay £0.00 a week." in body


# ---------------------------------------------------------------- the full cost without a full assessment


def test_light_touch_the_person_chooses_to_pay_the_full_cost(eng):
    cid = assessed(eng, {"route": "light_touch", "route_notes": "Her son says she will pay the full cost"})
    out = result(eng, cid)
    assert (out["route"], out["full_cost"], out["capital_total"]) == ("light_touch", True, None)
    assert record(eng, cid)["financial_assessment"]["full_cost"] is True
    body = letter(eng, cid)
    assert "You will pay the full cost." in body
    assert "You told us you want to pay the full cost of your support." in body
    assert "This is how we worked it out" not in body  # nothing was asked about money


def test_a_person_who_declines_to_say_what_they_have_pays_the_full_cost(eng):
    # answers typed on the full route and then the route changed: only the route is used
    cid = assessed(eng, full(route="declined", capital={"savings": 100}))
    out = result(eng, cid)
    assert (out["route"], out["full_cost"], out["capital_total"]) == ("declined", True, None)
    body = letter(eng, cid)
    assert "You will pay the full cost." in body
    assert "You chose not to tell us about your money and savings." in body
    assert "£100.00" not in body


# ---------------------------------------------------------------- the local target


def test_an_overdue_assessment_goes_to_the_team_manager_and_keeps_its_due_date(eng):
    cid = started(eng)
    due = START + timedelta(days=28)
    assert the_task(eng, cid, "assess_finances")["due_at"] == due
    assert eng.advance_clock(to=due - timedelta(minutes=1)) == 0
    assert tasks(eng, cid) == [("assess_finances", "finance")]
    eng.advance_clock(to=due)
    assert tasks(eng, cid) == [("assess_finances", "finance"), ("assessment_overdue", "team_manager")]
    assert the_task(eng, cid, "assessment_overdue")["name"] == "Financial assessment overdue"
    assert the_task(eng, cid, "assess_finances")["due_at"] == due  # still due when it was
    complete(eng, cid, "assessment_overdue", {"action_taken": "Asked Sam to visit on Monday"}, actor=TM)
    assert tasks(eng, cid) == [("assess_finances", "finance")]
    complete(eng, cid, "assess_finances", {"route": "light_touch"}, actor=FIN)
    assert tasks(eng, cid) == []
    assert record(eng, cid)["financial_assessment"]["full_cost"] is True


# ---------------------------------------------------------------- bad input


def test_the_largest_amounts_the_form_allows_are_worked_out(eng):
    # £10,000.00 a week and £100,000,000.00 of capital are the limits (a penny more is refused, below)
    cid = assessed(eng, full(income={"state_pension": 10000}, capital={"other": 100000000}))
    assert (result(eng, cid)["full_cost"], result(eng, cid)["capital_total"]) == (True, "100000000.00")
    cid = assessed(eng, full(income={"state_pension": 10000}))
    assert result(eng, cid)["weekly_contribution"] == "9785.65"  # 10,000.00 - 214.35


@pytest.mark.parametrize("answers, field, message", [
    (full(capital={"savings": -5}), "capital/savings", "Savings must be £0.00 or more"),
    (full(income={"state_pension": 1e9}), "income_weekly/state_pension", "State Pension must be £10,000.00 or less"),
    (full(income={"state_pension": 10000.01}), "income_weekly/state_pension",
     "State Pension must be £10,000.00 or less"),
    (full(income={"state_pension": 12.345}), "income_weekly/state_pension",
     "Enter State Pension in pounds and pence, like 12.50"),
    (full(capital={"other": 100000000.01}), "capital/other", "Other capital must be £100,000,000.00 or less"),
    (full(dre=[{"item": "Extra heating", "amount": -1}]), "dre_weekly/0/amount", "Amount a week must be £0.00 or more"),
    ({k: v for k, v in full().items() if k != "capital"}, "capital", "'capital' is required"),
    ({"route": "sometimes"}, "route", "is not one of"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_stored_changes(eng, answers, field, message):
    cid = started(eng)
    task = the_task(eng, cid, "assess_finances")
    before = (eng.get_case(cid), len(eng.history(cid)))
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task["id"], answers, actor=FIN)
    assert any(e["field"] == field and message in e["message"] for e in err.value.errors), err.value.errors
    assert (eng.get_case(cid), len(eng.history(cid))) == before
    assert the_task(eng, cid, "assess_finances")["id"] == task["id"]
    assert [e for e in events(eng, cid, "handler.called") if e["data"]["handler"] == "financial_assessment"] == []
