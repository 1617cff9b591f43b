"""The personal budget states the whole picture (issue 11 item 3, Care Act s.26): the total, what the person pays
and what the council pays, indicative before planning and final in the support plan; at a reassessment the new
budget beside the old with the recorded change behind a reduction, and earlier uplifts kept or ended in words,
never dropped silently. Every letter here keeps docs/letters.md's rules (tests/test_letters_style.py problems)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.forms import FormLibrary
from engine.registry import HandlerContext, load_registry
from engine.runtime import Engine
from handlers.budget import personal_budget
from handlers.letters import budget_letter, support_plan_letter
from tests.test_letters_style import problems
from tests.test_process_assessment_to_review import (
    assessment,
    calls,
    complete,
    letters,
    plan,
    ras,
    start,
)

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)
CTX = HandlerContext(case_id=7, instance_id=1, process_id="t", element_id="t", now=START, case_reference="CASE-000007")
CTX_2026 = HandlerContext(case_id=7, instance_id=1, process_id="t", element_id="t",
                          now=datetime(2026, 12, 8, 10, 0, tzinfo=timezone.utc))  # the 2026-27 figures
PETER = {"name": "Peter Clarke", "salutation": "Mr Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"]}
NEEDS = {"personal_care": {"level": "moderate"}, "nutrition": {"level": "low"},
         "safety_and_supervision": {"level": "low", "met_by_carer": True}}  # 16 points: £17,745.45, £341.26 a week


def flat(letter: dict) -> str:
    return " ".join(letter["body"].split())


def test_without_a_financial_assessment_the_letter_says_it_is_under_way_and_promises_no_outcome() -> None:
    letter = budget_letter(CTX, PETER, personal_budget(CTX, NEEDS))
    body = flat(letter)
    assert "Your personal budget is £17,745.45 a year. That is £341.26 a week." in body
    assert "This is an estimate of what it costs to meet your eligible needs." in body  # indicative
    assert ("Our finance team is doing your financial assessment. It works out how much you pay towards your "
            "support, if anything. You will get a letter from them with the result.") in body
    assert "will decide whether you pay" not in body and "you pay £" not in body
    assert problems(letter["body"], "budget", "Mr Clarke") == []


@pytest.mark.parametrize(("assessed", "pays", "council"), [
    ("80.00", "£80.00", "£261.26"),
    ("341.26", "£341.26", "£0.00"),   # exactly the budget a week
    ("341.27", "£341.26", "£0.00"),   # one penny more: never more than the cost
])
def test_the_letter_gives_what_the_person_pays_and_what_the_council_pays(assessed, pays, council) -> None:
    fa = {"assessed_weekly_charge": assessed, "full_cost": False, "decided_at": START.isoformat()}
    letter = budget_letter(CTX, PETER, personal_budget(CTX, NEEDS), financial_assessment=fa)
    body = flat(letter)
    assert f"you can pay £{assessed} a week towards your support" in body
    assert f"If all of your budget is spent, you pay {pays} a week and we pay {council} a week." in body
    assert "You never pay more than your support costs." in body
    assert "Our finance team is doing" not in body
    assert problems(letter["body"], "budget", "Mr Clarke") == []


def test_a_full_cost_payer_is_told_so() -> None:
    fa = {"assessed_weekly_charge": "0.00", "full_cost": True, "reason": "capital above the upper limit"}
    body = flat(budget_letter(CTX, PETER, personal_budget(CTX, NEEDS), financial_assessment=fa))
    assert "you pay the full cost of your support. If all of your budget is spent, that is £341.26 a week." in body


def test_a_bad_financial_assessment_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="financial_assessment.assessed_weekly_charge"):
        budget_letter(CTX, PETER, personal_budget(CTX, NEEDS), financial_assessment={"assessed_weekly_charge": "-1"})
    with pytest.raises(ValueError, match="stage must be indicative or final"):
        budget_letter(CTX, PETER, personal_budget(CTX, NEEDS), stage="draft")


def test_no_rate_with_fractions_of_a_penny_and_no_step_by_step_repeat() -> None:
    body = flat(budget_letter(CTX, PETER, personal_budget(CTX, NEEDS)))
    assert "Your 16 points give this amount (about £1,109.09 a point)." in body
    assert "1,109.09091" not in body
    assert body.count("£17,745.45") == 1  # said once
    assert body.count("£341.26") == 1


def test_a_reassessment_compares_the_budgets_gives_the_recorded_change_and_names_an_ended_uplift() -> None:
    previous = {"final_amount": "30000.00", "change_in_needs": "Peter now sleeps through the night",
                "uplifts": [{"reason": "Night sitting", "amount": "5000.00"},
                            {"reason": "Two carers for hoisting", "amount": "3500.00"}]}
    budget = personal_budget(CTX, NEEDS, uplifts=[{"reason": "Two carers for hoisting", "amount": 3500}],
                             previous=previous)
    assert budget["comparison"]["direction"] == "reduction"
    assert budget["comparison"]["uplifts_kept"] == [{"reason": "Two carers for hoisting", "amount": "3500.00"}]
    assert budget["comparison"]["uplifts_ended"] == [{"reason": "Night sitting", "amount": "5000.00"}]
    letter = budget_letter(CTX, PETER, budget)
    body = flat(letter)
    assert ("Your budget goes down from £30,000.00 to £21,245.45 a year, £8,754.55 less. This is because of a "
            "change in your needs that we recorded: Peter now sleeps through the night.") in body
    assert "This is no longer included: - Night sitting: £5,000.00 a year" in body
    assert "Two carers for hoisting: £3,500.00 a year" in body
    assert problems(letter["body"], "budget", "Mr Clarke") == []


def test_an_increase_and_an_unchanged_budget_are_said_plainly() -> None:
    up = personal_budget(CTX, NEEDS, previous={"final_amount": "10000"})
    same = personal_budget(CTX, NEEDS, previous={"final_amount": "17745.45"})
    assert up["comparison"]["line"] == "Your budget goes up from £10,000.00 to £17,745.45 a year, £7,745.45 more."
    assert same["comparison"]["line"] == "Your budget stays at £17,745.45 a year."


def test_the_support_plan_letter_gives_the_final_budget_the_plans_cost_and_the_contribution() -> None:
    cost = {"services": [{"weekly_cost": "175.00", "unit": "hour", "units_per_week": "7", "unit_cost": "25.00"}],
            "weekly_cost": "175.00", "surplus_amount": "166.26",
            "contribution": {"weekly_contribution": "80.00", "council_weekly": "95.00", "capped_at_cost": False,
                             "full_cost": False}}
    signed = {**plan(), "outcomes": plan()["outcomes"][:1], "cost": cost,
              "personal_budget": {"final_amount": "17745.45", "weekly_amount": "341.26"},
              "review": {"first_review": "2031-04-15", "frequency_months": 12}}
    letter = support_plan_letter(CTX, PETER, signed)
    body = flat(letter)
    assert "Your personal budget is final: £17,745.45 a year, or £341.26 a week." in body
    assert "Cost: £175.00 a week (7 hours at £25.00)" in body
    assert "The support in this plan costs £175.00 a week. That leaves £166.26 a week of your budget unused." in body
    assert "You pay £80.00 a week towards it and we pay £95.00 a week." in body
    assert problems(letter["body"], "support_plan", "Mr Clarke") == []


def test_a_charge_capped_at_an_earlier_lower_cost_is_not_the_full_cost_of_a_higher_budget() -> None:
    """Rose's financial assessment was done when her budget was £100.00 a week: her income over what is protected
    (£150.00, worked out by hand: a pension-age single person, State Pension £241.45 and a workplace pension
    £150.00, less the minimum income guarantee £241.45) was more, so it said she pays the cost, £100.00. Her
    budget is then raised to £341.26 a week at a review. She pays her assessed £150.00, not the new full cost."""
    from handlers.budget import cost_support_plan
    from handlers.charging import financial_assessment

    answers = {"route": "full", "age_band": "pension_age", "couple": False, "dependent_children": 0,
               "premiums": [], "capital": {}, "housing_weekly": {}, "dre_weekly": [],
               "income_weekly": {"state_pension": "241.45", "private_pension": "150.00"}}
    fa = financial_assessment(CTX_2026, answers, "100.00")
    assert (fa["full_cost"], fa["weekly_contribution"], fa["assessed_weekly_charge"]) == (True, "100.00", "150.00")

    body = flat(budget_letter(CTX, PETER, personal_budget(CTX, NEEDS), financial_assessment=fa))
    assert "Your financial assessment found that you can pay £150.00 a week towards your support." in body
    assert "If all of your budget is spent, you pay £150.00 a week and we pay £191.26 a week." in body
    assert "full cost" not in body

    cost = cost_support_plan(CTX, [{"label": "Home care", "unit": "hour", "unit_cost": "34.12",
                                    "units_per_week": "10", "provider": "Northtown Care"}],
                             {"weekly_equivalent": "341.26"}, "council_managed", fa)
    assert cost["contribution"]["weekly_contribution"] == "150.00"
    assert cost["contribution"]["council_weekly"] == "191.20"
    assert "The person pays £150.00 a week and the council pays £191.20." in cost["message"]
    signed = {**plan(), "outcomes": plan()["outcomes"][:1], "cost": cost,
              "personal_budget": {"final_amount": "17745.45", "weekly_amount": "341.26"},
              "review": {"first_review": "2031-04-15", "frequency_months": 12}}
    letter = flat(support_plan_letter(CTX, PETER, signed))
    assert "You pay £150.00 a week towards it and we pay £191.20 a week." in letter
    assert "You pay the full cost" not in letter

    # a plan costing less than her assessed charge: she pays its cost and no more
    cheaper = cost_support_plan(CTX, [{"label": "Home care", "unit": "hour", "unit_cost": "12.00",
                                       "units_per_week": "10"}], {"weekly_equivalent": "341.26"}, None, fa)
    assert (cheaper["contribution"]["weekly_contribution"], cheaper["contribution"]["capped_at_cost"]) == (
        "120.00", True)


def test_capital_above_the_limit_light_touch_and_declined_pay_the_full_cost_of_a_higher_budget() -> None:
    from handlers.charging import financial_assessment

    rich = {"route": "full", "age_band": "pension_age", "couple": False, "dependent_children": 0, "premiums": [],
            "capital": {"savings": "23250.01"}, "income_weekly": {"state_pension": "241.45"}, "housing_weekly": {},
            "dre_weekly": []}
    for answers in (rich, {"route": "light_touch"}, {"route": "declined"}):
        fa = financial_assessment(CTX_2026, answers, "100.00")
        body = flat(budget_letter(CTX, PETER, personal_budget(CTX, NEEDS), financial_assessment=fa))
        assert "you pay the full cost of your support. If all of your budget is spent, that is £341.26 a week." \
            in body, answers["route"]


# ---------------------------------------------------------------- on the simulated clock


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy([ROOT / "processes" / f"{p}.bpmn" for p in (
        "needs_assessment", "carers_assessment", "carers_support_plan", "personal_budget", "support_plan", "review",
        "direct_payment_review", "financial_assessment", "advocacy") if (ROOT / "processes" / f"{p}.bpmn").exists()])
    yield engine
    engine.db.dispose()


def test_a_reassessment_after_review_compares_the_budget_and_keeps_the_uplift_unless_re_decided(eng):
    cid = start(eng).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras({"impact_assessment_needed": True}, personal_care="high", nutrition="low"))
    complete(eng, cid, "impact_assessment", {"uplifts": [{"reason": "Night sitting", "amount": 2000}]})
    [first] = letters(eng, cid, "budget_letter")
    assert "Your personal budget is £27,509.09 a year." in first  # 23 points £25,509.09 + £2,000.00
    assert "Our finance team is doing your financial assessment." in first
    assert eng.get_case(cid)["data"]["personal_budget"]["uplifts"] == [{"reason": "Night sitting",
                                                                        "amount": "2000.00",
                                                                        "decided_at": START.isoformat()}]
    complete(eng, cid, "write_plan", plan())
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    eng.advance_clock(timedelta(days=60))
    complete(eng, cid, "review_plan", {"needs_changed": True, "what_changed": "Peter now washes without help",
                                       "outcomes_met": True, "summary": "Much more independent"})
    # the finance officer's result is on the case by now
    eng.update_case_record(cid, {"financial_assessment": {"assessed_weekly_charge": "40.00", "full_cost": False,
                                                          "decided_at": START.isoformat()}},
                           actor="finance", reason="test: the financial assessment's result")
    complete(eng, cid, "assess_needs", assessment("managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(personal_care="low", nutrition="low"))  # 8 points: £8,872.73
    # the earlier budget had an uplift: the impact assessment follows, and the worker carries it explicitly
    assert letters(eng, cid, "budget_letter")[1:] == []
    complete(eng, cid, "impact_assessment", {"earlier_uplift_decisions": [{"reason": "Night sitting",
                                                                           "decision": "carry"}]})
    [_, second] = letters(eng, cid, "budget_letter")
    budget = calls(eng, cid, "personal_budget")[-1]
    # the uplift is carried forward, as decided on 3 March 2031
    assert budget["output"]["uplifts"] == [{"reason": "Night sitting", "amount": "2000.00",
                                            "decided_at": START.isoformat()}]
    assert ("Your budget goes down from £27,509.09 to £10,872.73 a year, £16,636.36 less. This is because of a "
            "change in your needs that we recorded: Peter now washes without help.") in second
    assert "Night sitting: £2,000.00 a year" in second and "no longer included" not in second
    assert "If all of your budget is spent, you pay £40.00 a week and we pay £169.09 a week." in second


def test_a_reassessment_compares_with_the_budget_a_review_raised_not_the_one_first_decided(eng):
    from tests.test_process_assessment_to_review import request_review, to_first_review

    cid = to_first_review(eng)  # 16 points: £17,745.45
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 19000})
    assert eng.get_case(cid)["data"]["current_budget_amount"] == "19000.00"
    request_review(eng, cid, "Other Reason", "other", "His daughter says he now manages his own meals")
    complete(eng, cid, "review_plan", {"needs_changed": True, "what_changed": "Peter now makes his own meals"})
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(personal_care="moderate"))  # 10 points: £11,090.91
    second = letters(eng, cid, "budget_letter")[-1]
    assert ("Your budget goes down from £19,000.00 to £11,090.91 a year, £7,909.09 less. This is because of a "
            "change in your needs that we recorded: Peter now makes his own meals.") in second
