"""A costed support plan (issue 11 item 5): each service with its provider, unit cost, planned units a week and
how it is paid for; the plan's weekly cost against the personal budget, a shortfall blocking sign-off with the
amounts named, a surplus shown; the person's contribution never more than the cost of their support."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import HandlerContext, load_registry
from engine.runtime import Engine
from handlers.budget import cost_support_plan
from tests.case_helpers import cld_full
from tests.test_process_assessment_to_review import (
    SMALL,
    assessment,
    calls,
    complete,
    letters,
    open_tasks,
    plan,
    ras,
    start,
    task,
)

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ["needs_assessment", "carers_assessment", "carers_support_plan", "personal_budget", "support_plan",
             "review", "direct_payment_review", "financial_assessment", "advocacy"]
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)
CTX = HandlerContext(case_id=1, instance_id=1, process_id="t", element_id="t", now=START)
# SMALL scores 16 points: £17,745.45 a year, £341.26 a week
BUDGET = {"final_amount": "17745.45", "weekly_equivalent": "341.26"}
FILES = [ROOT / "processes" / f"{p}.bpmn" for p in PROCESSES if (ROOT / "processes" / f"{p}.bpmn").exists()]

HOME_CARE = {"label": "Get washed and dressed every morning", "how_met": "Home care, 1 hour each morning",
             "provider": "Northtown Care", "unit": "hour", "unit_cost": 25, "units_per_week": 7,
             "delivery": "council_commissioned", "service_component": "home_support"}  # £175.00 a week
DAY_CENTRE = {"label": "See friends", "how_met": "Day centre twice a week", "provider": "Millbrook Day Centre",
              "unit": "day", "unit_cost": 60, "units_per_week": 2, "delivery": "direct_payment",
              "service_component": "other"}  # £120.00
PENDANT = {"label": "Feel safe at home at night", "how_met": "A falls pendant", "provider": "Northtown Telecare",
           "service_component": "equipment"}


def costed(*outcomes: dict, money_management: str = "council_managed") -> dict:
    return {**plan(money_management), "outcomes": list(outcomes)}


# ---------------------------------------------------------------- the calculation


def test_each_service_is_costed_and_the_surplus_is_shown() -> None:
    result = cost_support_plan(CTX, [HOME_CARE, DAY_CENTRE, PENDANT], BUDGET)
    assert [s["weekly_cost"] for s in result["services"]] == ["175.00", "120.00", "0.00"]
    assert result["services"][0]["line"] == ("Get washed and dressed every morning: 7 hours a week at £25.00 = "
                                             "£175.00 a week (Northtown Care, council-commissioned).")
    assert result["services"][1]["delivery"] == "direct_payment"
    assert (result["weekly_cost"], result["budget_weekly"], result["shortfall"], result["surplus_amount"]) == (
        "295.00", "341.26", False, "46.26")
    assert "£46.26 a week of the budget is not used by this plan" in result["message"]
    assert "the financial assessment is under way" in result["message"]


def test_a_plan_costing_exactly_the_budget_is_within_it_one_penny_more_is_a_shortfall() -> None:
    exact = {**HOME_CARE, "unit_cost": "48.75", "units_per_week": 7}  # £341.25
    at = cost_support_plan(CTX, [exact], {"weekly_equivalent": "341.25"})
    over = cost_support_plan(CTX, [exact], {"weekly_equivalent": "341.24"})
    assert (at["shortfall"], at["difference"]) == (False, "0.00")
    assert "exactly the personal budget of £341.25 a week" in at["message"]
    assert (over["shortfall"], over["shortfall_amount"]) == (True, "0.01")
    assert over["message"].startswith("The plan costs £341.25 a week but the personal budget is £341.24 a week: "
                                      "£0.01 a week more than the budget.")


def test_old_plans_with_a_weekly_cost_and_no_unit_costs_are_still_read() -> None:
    old = {"label": "Meals", "how_met": "Meals on wheels", "provided_by": "Apetito", "weekly_cost": 31.5}
    result = cost_support_plan(CTX, [old], BUDGET, money_management="direct_payment")
    assert result["services"][0] | {} == {**result["services"][0], "provider": "Apetito", "weekly_cost": "31.50",
                                          "delivery": "direct_payment", "cost_frequency": "Weekly"}


@pytest.mark.parametrize(("assessed", "pays", "council", "capped"), [
    ("80.00", "80.00", "215.00", False),     # below the cost: the assessed charge
    ("295.00", "295.00", "0.00", False),     # exactly the cost
    ("295.01", "295.00", "0.00", True),      # one penny more than the cost: never more than the cost
])
def test_the_contribution_is_never_more_than_the_cost_of_the_support(assessed, pays, council, capped) -> None:
    fa = {"assessed_weekly_charge": assessed, "full_cost": False}
    result = cost_support_plan(CTX, [HOME_CARE, DAY_CENTRE], BUDGET, financial_assessment=fa)
    c = result["contribution"]
    assert (c["weekly_contribution"], c["council_weekly"], c["capped_at_cost"]) == (pays, council, capped)
    assert f"pays {'£' + pays}" in result["message"] or f"the contribution is £{pays}" in result["message"]


def test_a_full_cost_payer_pays_the_plans_cost() -> None:
    result = cost_support_plan(CTX, [HOME_CARE], BUDGET, financial_assessment={"full_cost": True,
                                                                             "assessed_weekly_charge": "0.00"})
    assert (result["contribution"]["weekly_contribution"], result["contribution"]["council_weekly"]) == (
        "175.00", "0.00")
    assert "The person pays the full cost, £175.00 a week." in result["message"]


@pytest.mark.parametrize(("change", "where"), [
    ({"unit_cost": -1}, "outcomes[0].unit_cost"),
    ({"unit_cost": 25000}, "outcomes[0].unit_cost"),
    ({"units_per_week": 169}, "outcomes[0].units_per_week"),
    ({"units_per_week": None}, "give both the unit cost and the planned units a week"),
    ({"delivery": "cash"}, "outcomes[0].delivery"),
    ({"unit": "fortnight"}, "outcomes[0].unit"),
])
def test_absurd_or_half_given_costs_are_refused_naming_the_service(change, where) -> None:
    with pytest.raises(ValueError, match=where.replace("[", r"\[").replace("]", r"\]")):
        cost_support_plan(CTX, [{**HOME_CARE, **change}], BUDGET)


def test_the_most_units_a_week_is_allowed() -> None:
    result = cost_support_plan(CTX, [{**HOME_CARE, "units_per_week": 168, "unit_cost": 1}], {"weekly_equivalent": 200})
    assert result["weekly_cost"] == "168.00"


# ---------------------------------------------------------------- the process


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy(FILES)
    yield engine
    engine.db.dispose()


def to_write_plan(eng) -> int:
    cid = start(eng).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    return cid


def test_a_plan_that_costs_more_than_the_budget_cannot_be_signed_off(eng):
    cid = to_write_plan(eng)
    over = {**HOME_CARE, "units_per_week": 14}  # £350.00 a week against £341.26
    complete(eng, cid, "write_plan", costed(over, PENDANT))
    ids = [t["element_id"] for t in open_tasks(eng, cid)]
    assert "sign_off_plan" not in ids and "plan_over_budget" in ids
    [cost] = calls(eng, cid, "cost_support_plan")
    assert cost["output"]["message"].startswith(
        "The plan costs £350.00 a week but the personal budget is £341.26 a week: £8.74 a week more than the budget.")
    with pytest.raises(ValidationError):
        complete(eng, cid, "plan_over_budget", {})
    # the worker changes the plan: 13 hours is £325.00, within the budget, and it goes to the team manager
    complete(eng, cid, "plan_over_budget", {"next_step": "change_plan"})
    complete(eng, cid, "write_plan", costed({**HOME_CARE, "units_per_week": 13}, PENDANT))
    sign = task(eng, cid, "sign_off_plan")
    assert sign["team"] == "team_manager"
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    current = eng.get_case(cid)["data"]["current_plan"]["plan"]
    assert (current["cost"]["weekly_cost"], current["cost"]["surplus_amount"]) == ("325.00", "16.26")
    [letter] = letters(eng, cid, "support_plan_letter")
    assert "Your co-ordinating worker is Jane Smith" in letter
    # the CLD Service row carries the plan's weekly cost
    [service] = [r for r in cld_full(eng, cid) if r["event_type"] == "Service"]
    assert (service["unit_cost"], service["cost_frequency"], service["planned_units_per_week"]) == (
        "325.00", "Weekly", "1")


def test_a_shortfall_can_send_the_budget_to_be_decided_again(eng):
    cid = to_write_plan(eng)
    complete(eng, cid, "write_plan", costed({**HOME_CARE, "units_per_week": 21}))  # £525.00
    complete(eng, cid, "plan_over_budget", {"next_step": "redecide_budget"})
    budgets = [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "personal_budget"]
    assert [b["status"] for b in budgets] == ["completed", "waiting"]  # at the scoring task
    assert [t["element_id"] for t in open_tasks(eng, cid) if t["element_id"] != "assess_finances"] == ["score_needs"]


def test_the_contribution_from_the_financial_assessment_on_the_case_is_capped_at_the_plans_cost(eng):
    cid = to_write_plan(eng)
    eng.update_case_record(cid, {"financial_assessment": {"assessed_weekly_charge": "400.00", "full_cost": False,
                                                          "decided_at": START.isoformat()}},
                           actor="finance", reason="test: the finance officer's result")
    complete(eng, cid, "write_plan", costed(HOME_CARE, DAY_CENTRE))
    [cost] = calls(eng, cid, "cost_support_plan")
    assert cost["output"]["contribution"] == {"assessed_weekly_charge": "400.00", "weekly_contribution": "295.00",
                                              "council_weekly": "0.00", "capped_at_cost": True, "full_cost": False}


# ---------------------------------------------------------------- the sign-off page, in a real browser


def test_the_sign_off_page_shows_the_plans_cost_against_the_budget(tmp_path):
    from api.app import create_app
    from tests.browser import launch, live_server, run_axe
    from tests.casework_helpers import SW, TM, claimed_task_page, engine_on_file, tab_to

    with engine_on_file(tmp_path, FILES, start=START, users=True) as eng:
        cid = to_write_plan(eng)
        complete(eng, cid, "write_plan", costed(HOME_CARE, DAY_CENTRE, PENDANT))
        sign = task(eng, cid, "sign_off_plan")
        over_case = to_write_plan(eng)
        complete(eng, over_case, "write_plan", costed({**HOME_CARE, "units_per_week": 14}))  # £350.00 a week
        over = task(eng, over_case, "plan_over_budget")
        with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
            ctx, page = claimed_task_page(browser, base, TM, "team_manager", sign["id"])
            text = " ".join(page.inner_text("main").split())
            # the plan as written, for the manager to check it meets the needs: not only its cost (session 29)
            assert "The support plan Outcomes and how they will be met Get washed and dressed every morning" in text
            assert "How the money is managed Council managed" in text
            assert "Co-ordinating worker Jane Smith, social worker, 01632 960123" in text
            assert "How often the plan is reviewed (months, at most 12) 12" in text
            assert "The plan's cost against the budget" in text
            assert ("Get washed and dressed every morning 7 hours a week at £25.00 = £175.00 a week "
                    "(Northtown Care, council-commissioned)") in text
            assert "See friends 2 days a week at £60.00 = £120.00 a week (Millbrook Day Centre, direct payment)" in text
            assert "The plan costs £295.00 a week" in text
            assert "The personal budget £341.26 a week" in text
            assert "Left in the budget £46.26 a week" in text
            assert "The person pays Not known yet: the financial assessment is under way" in text
            assert "295.00" not in text.replace("£295.00", "")  # money always as money
            run_axe(page, "plan sign-off with the plan's cost against the budget")
            tab_to(page, "f-signed_off-0")  # the question is reached by keyboard after the figures
            page.keyboard.press("Space")
            assert page.is_checked("#f-signed_off-0")
            ctx.close()

            # the worker whose plan costs more than the budget reads the amounts and what to do
            ctx, page = claimed_task_page(browser, base, SW, "social_worker", over["id"])
            text = " ".join(page.inner_text("main").split())
            assert "The plan costs £350.00 a week" in text and "More than the budget by £8.74 a week" in text
            assert ("The plan costs £350.00 a week but the personal budget is £341.26 a week: £8.74 a week more than "
                    "the budget. Change the plan, or decide the budget again, before it is signed off.") in text
            assert "Change the plan" in text and "Decide the budget again" in text
            run_axe(page, "plan costs more than the budget")
            ctx.close()
