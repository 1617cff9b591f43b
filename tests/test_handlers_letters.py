"""Letters: eligibility decision, personal budget and support plan, rendered from handler data."""

from __future__ import annotations

import json
import re
from copy import deepcopy
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.registry import HandlerContext, HandlerRegistry
from handlers import letters
from handlers.letters import budget_letter, eligibility_letter, long_date, money, support_plan_letter

CTX = HandlerContext(
    case_id=1, instance_id=1, process_id="t", element_id="t", now=datetime(2027, 1, 4, 9, tzinfo=timezone.utc)
)
PERSON = {"name": "Peter Example", "address": ["1 Mill Lane", "Northtown", "NS2 2BB"]}

ELIGIBLE = {
    "eligible": True,
    "explanation": "Peter is unable to achieve two of the outcomes because of Alzheimer's disease.",
    "outcomes": [
        {
            "label": "Managing and maintaining nutrition",
            "unable": True,
            "ways": ["without_assistance"],
            "reason": "Peter forgets to eat and has left the cooker on twice.",
        },
        {
            "label": "Maintaining personal hygiene",
            "unable": True,
            "ways": ["significant_pain_distress_anxiety"],
            "reason": "Washing causes him great distress without prompting.",
        },
        {
            "label": "Being appropriately clothed",
            "unable": False,
            "ways": [],
            "reason": "He dresses himself without help.",
        },
    ],
    "conditions": {
        "impairment": {"met": True, "reason": "Diagnosed with Alzheimer's disease."},
        "outcomes": {"met": True},
        "wellbeing": {"met": True, "reason": "His health and safety at home are at risk."},
    },
}

NOT_ELIGIBLE = {
    "eligible": False,
    "explanation": ["Kyle is unable to achieve only one outcome; the regulations require two or more."],
    "outcomes": [
        {
            "label": "Developing and maintaining family or other personal relationships",
            "unable": True,
            "ways": ["anxiety"],
            "reason": "Anxiety keeps Kyle from seeing friends.",
        },
        {
            "label": "Managing and maintaining nutrition",
            "unable": False,
            "ways": [],
            "reason": "Kyle cooks for himself.",
        },
    ],
    "conditions": {"impairment": True, "outcomes": False, "wellbeing": False},
}

BUDGET = {
    "domains": [
        {
            "domain": "nutrition",
            "label": "Eating and drinking",
            "level": "substantial",
            "points": 20,
            "points_after_carer": 12,
            "met_by_carer": True,
            "reason": "Needs all meals prepared.",
        },
        {
            "domain": "hygiene",
            "label": "Personal care",
            "level": "critical",
            "points": 35,
            "points_after_carer": 35,
            "met_by_carer": False,
            "reason": "Needs two carers to wash.",
        },
    ],
    "total_points": 47,
    "conversion": {"price_per_point": 1109.09},
    "indicative_amount": 52127.23,
    "carer_support": 1200,
    "uplifts": [{"reason": "2:1 handover care", "amount": 2566}],
    "final_amount": 54693.23,
    "weekly_amount": 1048.91,
    "needs_approval": True,
    "explanation": ["55 points assessed; 8 met by his daughter, so 47 count.", "47 points x £1,109.09."],
}

PLAN = {
    "outcomes": [
        {
            "label": "Eat a hot meal every day",
            "how_met": "A lunch visit from a home care agency",
            "provided_by": "Northshire Home Care",
            "weekly_cost": 210.5,
        }
    ],
    "money_management": "direct_payment",
    "may_change_without_contacting": ["Change the time of the lunch visit with the agency"],
    "coordinating_worker": {"name": "Sam Worker", "role": "social worker", "phone": "01632 960010"},
    "review": {"first_review": "2027-02-22", "frequency_months": 12},
}


def test_money_and_dates_are_formatted_for_letters() -> None:
    assert money(1234.56) == "£1,234.56"
    assert money(61000) == "£61,000.00"
    assert money(2.675) == "£2.68"  # half up, not binary-float rounding
    assert money(-5) == "-£5.00"
    assert long_date(date(2027, 1, 4)) == "4 January 2027"
    assert long_date("2027-07-01T23:30:00Z") == "2 July 2027"  # already 2 July in the UK (BST)
    with pytest.raises(ValueError):
        money("lots")


def test_eligibility_letter_gives_the_decision_and_each_outcomes_reason() -> None:
    letter = eligibility_letter(CTX, PERSON, ELIGIBLE)
    body = letter["body"]
    assert letter["kind"] == "eligibility"
    assert letter["template"] == "eligibility.txt.j2"
    assert letter["dated"] == "2027-01-04"
    assert "4 January 2027" in body
    assert "Dear Peter Example" in body
    assert "You are eligible for care and support." in body
    flat = " ".join(body.split())  # reasons may be wrapped across lines
    for outcome in ELIGIBLE["outcomes"]:  # the reasons for what the person cannot do; the rest is in the assessment
        assert (outcome["reason"] in flat) is outcome["unable"]
    assert "You cannot do this without help, including prompting." in flat
    assert "You can only do this with a lot of pain, distress or anxiety." in flat
    assert "This has a significant effect on your wellbeing." in flat
    assert "His health and safety at home are at risk." in flat
    assert "Northshire Council" in body and "01632 960000" in body
    assert "Ombudsman" in flat  # how to complain
    json.dumps(letter)


def test_not_eligible_letter_says_why() -> None:
    body = " ".join(eligibility_letter(CTX, PERSON, NOT_ELIGIBLE)["body"].split())
    assert "your needs are not eligible" in body
    assert "You cannot do 1 of the things the law lists:" in body
    assert "Anxiety keeps Kyle from seeing friends." in body
    assert "stop you doing 2 or more of these things" in body
    assert "We do not think this has a significant effect on your wellbeing at the moment." in body
    assert "For advice about support near you that could help now" in body  # no advice recorded, no service found
    assert "look at the decision again" in body  # how to ask for a review


def test_budget_letter_explains_indicative_uplifts_final_and_informal_care() -> None:
    letter = budget_letter(CTX, PERSON, BUDGET)
    body = " ".join(letter["body"].split())
    assert letter["kind"] == "budget"
    assert "Your personal budget is £54,693.23 a year. That is £1,048.91 a week." in body
    assert "This is an estimate of what it costs to meet your eligible needs." in body  # indicative
    assert "Your 47 points give £52,127.23 a year (£1,109.09 a point)." in body
    assert "We added money for needs the scores do not cover: - 2:1 handover care: £2,566.00 a year" in body
    assert "Eating and drinking: substantial need, 20 points, reduced to 12 because your carer helps" in body
    assert "Help from your carer reduced your points from 55 to 47." in body
    assert "separate allowance of £1,200.00 a year" in body
    assert "A manager must approve this budget before it is final." in body
    assert "If you think it is not, tell us." in body  # right to challenge sufficiency


def test_budget_letter_without_informal_care_says_it_made_no_difference() -> None:
    budget = deepcopy(BUDGET)
    for d in budget["domains"]:
        d["met_by_carer"], d["points_after_carer"] = False, d["points"]
    budget.update(uplifts=[], needs_approval=False, carer_support=None)
    body = " ".join(budget_letter(CTX, PERSON, budget)["body"].split())
    assert "We made no reduction for help from family, friends or other carers." in body
    assert "We added money" not in body
    assert "must approve" not in body


@pytest.mark.parametrize(
    "handler, data, drop, field",
    [
        (eligibility_letter, ELIGIBLE, ("outcomes", 1, "reason"), "decision.outcomes[1].reason"),
        (eligibility_letter, ELIGIBLE, ("eligible",), "decision.eligible"),
        (budget_letter, BUDGET, ("final_amount",), "budget.final_amount"),
        (budget_letter, BUDGET, ("uplifts", 0, "amount"), "budget.uplifts[0].amount"),
        (support_plan_letter, PLAN, ("review", "first_review"), "plan.review.first_review"),
        (support_plan_letter, PLAN, ("coordinating_worker",), "plan.coordinating_worker"),
    ],
)
def test_a_missing_field_is_named(handler: Any, data: dict[str, Any], drop: tuple[Any, ...], field: str) -> None:
    broken = deepcopy(data)
    target: Any = broken
    for key in drop[:-1]:
        target = target[key]
    del target[drop[-1]]
    with pytest.raises(ValueError, match=re.escape(f"missing field '{field}'")):
        handler(CTX, PERSON, broken)


def test_a_person_without_a_name_is_refused() -> None:
    with pytest.raises(ValueError, match="missing field 'person.name'"):
        budget_letter(CTX, {"address": "1 Mill Lane"}, BUDGET)


def test_support_plan_letter_covers_money_changes_worker_and_reviews() -> None:
    letter = support_plan_letter(CTX, PERSON, PLAN)
    body = " ".join(letter["body"].split())
    assert letter["kind"] == "support_plan"
    assert "Eat a hot meal every day" in body and "How: A lunch visit from a home care agency" in body
    assert "Cost: £210.50 a week" in body
    assert "as a direct payment" in body and "within 6 months" in body
    assert "Change the time of the lunch visit with the agency" in body
    assert "Your co-ordinating worker is Sam Worker, social worker" in body
    assert "first review your plan on 22 February 2027" in body
    assert "at least every 12 months" in body


def test_support_plan_money_management_must_be_a_known_option() -> None:
    plan = {**PLAN, "money_management": "cash_in_hand"}
    with pytest.raises(ValueError, match="money_management must be one of"):
        support_plan_letter(CTX, PERSON, plan)


def test_council_details_come_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    council = json.loads(letters.DEFAULT_COUNCIL.read_text())
    council["name"] = "Southshire Council"
    path = tmp_path / "council.json"
    path.write_text(json.dumps(council))
    monkeypatch.setenv(letters.COUNCIL_ENV, str(path))
    assert "Southshire Council" in budget_letter(CTX, PERSON, BUDGET)["body"]

    del council["complaints"]
    path.write_text(json.dumps(council))
    with pytest.raises(ValueError, match="missing council field\\(s\\): complaints"):
        budget_letter(CTX, PERSON, BUDGET)


def test_register_adds_the_three_letters() -> None:
    registry = HandlerRegistry()
    letters.register(registry)
    assert {"eligibility_letter", "budget_letter", "support_plan_letter"} <= registry.names()


# ---------------------------------------------------------------- with the real handlers' output


def _adult_decision(eligible: bool) -> dict[str, Any]:
    from handlers.eligibility import ADULT_OUTCOMES, adult_eligibility

    outcomes: dict[str, Any] = {code: {"unable": False, "ways": [], "reason": ""} for code in ADULT_OUTCOMES}
    outcomes["managing_nutrition"] = {
        "unable": True,
        "ways": ["needs_assistance_incl_prompting"],
        "reason": "Peter forgets to eat unless prompted",
    }
    if eligible:
        outcomes["using_home_safely"] = {
            "unable": True,
            "ways": ["endangers_health_safety"],
            "reason": "He has left the gas on twice this month",
        }
    wellbeing = {
        "significant": eligible,
        "reason": "Weight loss and risk of fire" if eligible else "He copes with the support he has",
        "areas": ["health_and_emotional_wellbeing"] if eligible else [],
    }
    return adult_eligibility(CTX, needs_from_impairment=True, outcomes=outcomes, wellbeing_impact=wellbeing)


def test_letter_from_adult_eligibility_output() -> None:
    body = " ".join(eligibility_letter(CTX, PERSON, _adult_decision(True))["body"].split())
    assert "You are eligible for care and support." in body
    assert "Your needs come from an illness or disability." in body
    assert "- Managing and maintaining nutrition. You cannot do this without help" in body
    assert "Peter forgets to eat unless prompted" in body
    assert "He has left the gas on twice this month" in body
    assert "You cannot do 2 of the things the law lists:" in body
    assert "You can manage the other 8 things on the list" in body
    assert "physical and mental health and emotional wellbeing" in body  # area label, not its code
    assert "Weight loss and risk of fire" in body

    refused = " ".join(eligibility_letter(CTX, PERSON, _adult_decision(False))["body"].split())
    assert "your needs are not eligible for care and support" in refused
    assert "stop you doing 2 or more of these things" in refused
    assert "We do not think this has a significant effect on your wellbeing" in refused


def test_letter_from_carer_eligibility_output() -> None:
    from handlers.eligibility import CARER_OUTCOMES, carer_eligibility

    outcomes: dict[str, Any] = {code: {"unable": False, "ways": [], "reason": ""} for code in CARER_OUTCOMES}
    outcomes["recreational_activities"] = {
        "unable": True,
        "ways": ["significant_pain_distress_anxiety"],
        "reason": "No time off in two years",
    }
    decision = carer_eligibility(
        CTX,
        needs_from_caring=True,
        health_deteriorating_or_at_risk=False,
        outcomes=outcomes,
        wellbeing_impact={"significant": True, "reason": "Exhausted", "areas": ["health_and_emotional_wellbeing"]},
    )
    letter = eligibility_letter(CTX, PERSON, decision)
    body = " ".join(letter["body"].split())
    assert letter["title"] == "Your needs as a carer: our decision"
    assert "We have assessed your needs as a carer. You are eligible for support as a carer." in body
    assert "No time off in two years" in body
    assert "We will agree a support plan with you." in body


def test_letter_from_personal_budget_output() -> None:
    from handlers.budget import personal_budget

    budget = personal_budget(
        CTX,
        needs={
            "personal_care": {"level": "high", "met_by_carer": True, "carer_note": "his daughter helps each morning"},
            "nutrition": {"level": "moderate", "met_by_carer": False},
        },
        carer_support={"level": "low"},
        uplifts=[{"reason": "2:1 handover care", "amount": 2566}],
    )
    body = " ".join(budget_letter(CTX, PERSON, budget)["body"].split())
    assert f"Your personal budget is {money(budget['final_amount'])} a year." in body
    assert f"That is {money(budget['weekly_equivalent'])} a week." in body
    assert "2:1 handover care: £2,566.00 a year" in body
    assert "high need, 20 points, reduced to 10 because your carer helps" in body
    assert "Your budget includes £300.00 a year to support your carer" in body
    # the calibrated price is never printed with fractions of a penny: the total, and the rate to the penny
    assert f"Your 16 points give {money(budget['indicative_amount'])} a year (about £1,109.09 a point)." in body
    assert "1,109.09091" not in body


# ---------------------------------------------------------------- safeguarding and hospital discharge

from handlers.letters import discharge_letter, safeguarding_letter  # noqa: E402

JOAN = {"name": "Joan Barker", "address": "4 Mill Lane, Northby"}
ENQUIRY_OUTCOME = {"outcomes_achieved": "fully", "risk_outcome": "removed", "safeguarding_plan": None}


def test_safeguarding_letter_is_never_sent_to_the_alleged_source_of_harm():
    recipient = {"role": "representative", "name": "dean  FLETCHER", "address": "4 Mill Lane, Northby",
                 "relationship": "lodger"}
    with pytest.raises(ValueError, match="recipient.name: this is the person alleged to have caused harm"):
        safeguarding_letter(CTX, JOAN, recipient, "2027-01-04", "s42_enquiry", outcome=ENQUIRY_OUTCOME,
                            alleged_source={"name": "Dean Fletcher", "relationship": "lodger"})


def test_safeguarding_letter_to_the_adult_uses_the_safe_address_and_says_what_happened():
    out = safeguarding_letter(CTX, JOAN, {"role": "adult", "address": "c/o Northby Library, Northby"},
                              "2027-01-04", "other_enquiry", outcome=ENQUIRY_OUTCOME,
                              alleged_source={"name": "Dean Fletcher"})
    body = " ".join(out["body"].split())
    assert out["kind"] == "safeguarding" and "Dear Joan Barker" in body
    assert "c/o Northby Library Northby" in body and "Mill Lane" not in body
    assert "On 4 January 2027 someone told us" in body and "has been fully achieved" in body
    assert "The risk to you has been removed." in body and "What has been agreed" not in body
    assert "Dean Fletcher" not in body


def test_safeguarding_letter_input_errors_name_the_field():
    with pytest.raises(ValueError, match=r"recipient.role must be one of \['adult', 'representative'\]"):
        safeguarding_letter(CTX, JOAN, {"role": "neighbour"}, "2027-01-04", "s42_enquiry", outcome=ENQUIRY_OUTCOME)
    with pytest.raises(ValueError, match="recipient.relationship"):
        safeguarding_letter(CTX, JOAN, {"role": "representative", "name": "Ann", "address": "1 High St"},
                            "2027-01-04", "s42_enquiry", outcome=ENQUIRY_OUTCOME)
    with pytest.raises(ValueError, match="outcome.risk_outcome must be one of"):
        safeguarding_letter(CTX, JOAN, {"role": "adult"}, "2027-01-04", "s42_enquiry",
                            outcome={"outcomes_achieved": "fully", "risk_outcome": "gone"})
    with pytest.raises(ValueError, match="advice_given"):
        safeguarding_letter(CTX, JOAN, {"role": "adult"}, "2027-01-04", "no_further_action_with_advice")
    with pytest.raises(ValueError, match="recipient.address: the letter needs the adult's address"):
        safeguarding_letter(CTX, {"name": "Joan Barker"}, {"role": "adult"}, "2027-01-04",
                            "no_further_action_with_advice", advice_given="Leaflet")


def test_discharge_letter_gives_the_pathway_support_and_follow_up_date():
    out = discharge_letter(CTX, {"name": "Harriet Cole", "address": "12 Orchard Close, Northby"}, 1, "2026-12-30",
                           support_arranged="Four care calls a day", follow_up_date="2027-03-31")
    body = " ".join(out["body"].split())
    assert out["kind"] == "discharge" and out["title"] == "Leaving hospital: the support arranged"
    assert "You left hospital on 30 December 2026." in body and "Four care calls a day" in body
    assert "for up to 6 weeks" in body and "We will contact you around 31 March 2027" in body
    assert "Northshire Council" in body


def test_discharge_letter_input_errors_name_the_field():
    with pytest.raises(ValueError, match="pathway must be 0, 1, 2 or 3, got 4"):
        discharge_letter(CTX, PERSON, 4, "2026-12-30")
    with pytest.raises(ValueError, match="recipient.relationship"):
        discharge_letter(CTX, PERSON, 0, "2026-12-30", recipient={"name": "Ann", "address": "1 High St"})
