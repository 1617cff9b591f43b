"""A county's casework, driven through the real diagrams, handlers and forms: the cases the measures bench copies.

Each *template* is one case taken through the processes on the simulated clock (started on Monday 3 March
2031), as a council's workers would: the forms are filled in with valid answers and the team manager signs off
what needs signing off. ``drive`` returns the case id of each template. The bench (bench/measures_bench.py)
then copies their histories into new cases across a year; the templates are chosen so that, copied with
``WEIGHTS``, a year of about 1,000,000 history events holds about 26,444 requests for support (the county's
volume in issue 12).

The templates, and what the measures read from them:

* ``advice``: a contact at the front door answered with information and advice (a request, STS001);
* ``signposted``: the same for someone aged 40 with a date of birth;
* ``reablement``: a contact into reablement that reaches best independence (ASCOF 2A, reablement length);
* ``long_term``: reablement after which needs remain, an assessment and a managed personal budget (2A, 3D);
* ``direct_payment``: an assessment into a direct payment, its first review done (3D, first reviews);
* ``commissioned``: an assessment into council-commissioned support (3D);
* ``carer``: a needs assessment with the carer present, the carer's own assessment and a carer's plan paid by
  a direct payment (3D part b);
* ``safeguarding``: a concern taken through a section 42 enquiry to its outcome (the safeguarding measures);
* ``discharge``: a hospital discharge into reablement with its 91-day follow-up (ASCOF 2D, discharges).

Nothing here imports the tests: the bench must run without them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from handlers.eligibility import ADULT_OUTCOMES, CARER_OUTCOMES

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)  # a Monday
FILES = [ROOT / "processes" / name for name in (
    "front_door.bpmn", "screening.dmn", "reablement.bpmn", "hospital_follow_up.bpmn", "needs_assessment.bpmn",
    "carers_assessment.bpmn", "carers_support_plan.bpmn", "personal_budget.bpmn", "financial_assessment.bpmn",
    "support_plan.bpmn", "review.bpmn", "direct_payment_review.bpmn", "safeguarding.bpmn",
    "hospital_discharge.bpmn", "discharge_pathway.dmn")]

# copies of each template per round of the bench's filling: mostly requests that end at the front door, as in
# a county's year (about two in three contacts end with information and advice)
WEIGHTS = {"advice": 7, "signposted": 7, "reablement": 2, "long_term": 1, "direct_payment": 1, "commissioned": 1,
           "carer": 1, "safeguarding": 1, "discharge": 1}

PERSON = {"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "salutation": "Mr Clarke",
          "date_of_birth": "1950-05-12"}
CARER = {"name": "Susan Clarke", "relationship": "daughter", "address": "12 Mill Lane, Northtown, NS2 4BB",
         "date_of_birth": "1976-09-30"}
HARRIET = {"name": "Harriet Cole", "age": 84, "address": "12 Orchard Close, Northby", "area": "north"}
DOMAINS = ("personal_care", "nutrition", "safety_and_supervision", "mobility_at_home", "home_environment",
           "relationships", "work_learning_volunteering", "community_access", "parenting")


def contact(outcomes_unable: list[str] | None = None, **person: Any) -> dict:
    """A front door contact from the person's GP."""
    return {"caller": {"name": "Dr Amy Shah", "relationship": "gp_or_social_prescriber",
                       "organisation": "Riverside GP"},
            "reason": "Falls at home and struggling since her husband died",
            "person": {"name": "Joan Barker", "age": 78, "address": "4 Mill Lane, Northby", "area": "north",
                       "lives_alone": True, **person},
            "needs": [], "outcomes_unable": outcomes_unable or [], "safeguarding_concern": False, "crisis": False,
            "consents_to_referral": True, "from_hospital": False}


LIKELY_ELIGIBLE = contact(["personal_hygiene", "being_appropriately_clothed", "using_the_home_safely"])


def assessment(*unable: str, carer: bool = False) -> dict:
    data = {"needs_from_impairment": True,
            "outcomes": {code: ({"unable": True, "ways": ["needs_assistance_incl_prompting"],
                                 "reason": f"Needs help and prompting with {label}"}
                                if code in unable else {"unable": False, "ways": [], "reason": ""})
                         for code, label in ADULT_OUTCOMES.items()},
            "wellbeing_impact": {"significant": True, "reason": "Falls at home have left him anxious and housebound",
                                 "areas": ["health_and_emotional_wellbeing", "control_over_day_to_day_life"]},
            "carer_present": carer}
    if carer:
        data["carer"] = CARER
    return data


def ras(**levels: str) -> dict:
    return {"needs": {d: {"level": levels.get(d, "none"), "met_by_carer": False} for d in DOMAINS}}


SMALL = {"personal_care": "moderate", "nutrition": "low", "safety_and_supervision": "low"}


def plan(money_management: str) -> dict:
    return {"outcomes": [{"label": "Get washed and dressed every morning",
                          "how_met": "A home care visit of 45 minutes each morning", "provided_by": "Northtown Care",
                          "service_component": "home_support"},
                         {"label": "Feel safe at home at night", "how_met": "A falls pendant and door sensor",
                          "service_component": "equipment"}],
            "money_management": money_management,
            "may_change_without_contacting": ["The time of the morning visit"],
            "coordinating_worker": {"name": "Jane Smith", "role": "social worker", "phone": "01632 960123"},
            "review_frequency_months": 12}


def carer_assessment() -> dict:
    outcomes = {code: {"unable": False, "ways": [], "reason": ""} for code in CARER_OUTCOMES}
    outcomes["work_training_education_volunteering"] = {
        "unable": True, "ways": ["significant_pain_distress_anxiety"],
        "reason": "Has cut her hours at work to care for her father and is exhausted"}
    return {"needs_from_caring": True, "health_deteriorating_or_at_risk": True, "outcomes": outcomes,
            "wellbeing_impact": {"significant": True, "reason": "Not sleeping and feels isolated",
                                 "areas": ["health_and_emotional_wellbeing"]},
            "support_level": "moderate", "carer_views": "I have not slept properly in months",
            "outcomes_wanted": "A night's sleep twice a week", "willing_to_continue": "yes_with_support",
            "able_to_continue": "not_sure", "caring_concerns": "If I fall ill there is nobody else",
            "cares_for_how_long": "50_hours_or_more"}


CARER_PLAN = {"outcomes": [{"label": "Two good nights' sleep a week", "how_met": "A night sitter twice a week",
                            "provided_by": "Northtown Sitters"}],
              "support_type": "direct_to_carer", "money_management": "direct_payment", "budget_held_by": "carer",
              "contingency_plan": "Her son is called first, else the emergency duty team",
              "coordinating_worker": {"name": "Jane Smith", "role": "social worker", "phone": "01632 960123"},
              "review_frequency_months": 6, "carer_agreed": True}
CONCERN = {"what_happened": "Neighbour reports the lodger takes her bank card and she has no food",
           "abuse_types": ["financial", "neglect"], "immediate_risk": "medium",
           "immediate_safety_actions": "Visited today; food delivered; bank asked to flag the account",
           "adult_views_sought": True, "desired_outcomes": "I want my money back and him to leave",
           "police_informed": True}
S42 = {"s42_criteria_met": "yes", "decision": "s42_enquiry", "urgent": False,
       "reason": "Care and support needs; financial abuse; cannot protect herself"}
STRATEGY = {"participants": ["Safeguarding lead", "PC Jones", "Bank fraud team"], "agencies": ["police"],
            "enquiry_lead": "Sam Patel (social worker)", "interim_protection": "Daily welfare calls; card cancelled",
            "adult_involvement": "in_person"}


def complete(eng: Any, case_id: int, element_id: str, data: dict, actor: str = "worker") -> None:
    [task] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element_id]
    eng.complete_task(task["id"], data, actor=actor)


def front_door(eng: Any, form: dict) -> int:
    res = eng.start("front_door", actor="advisor1")
    complete(eng, res.case_id, "record_contact", form, actor="advisor1")
    return res.case_id


def to_plan(eng: Any, money_management: str, carer: bool = False) -> int:
    cid = eng.start("needs_assessment", data={"name": PERSON["name"], "person": PERSON,
                                              "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely",
                                                  carer=carer))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan(money_management))
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    return cid


def in_reablement(eng: Any, goal: str, visits_per_day: int) -> int:
    """A contact likely eligible for reablement (`LIKELY_ELIGIBLE`), its reablement at home planned; the case id."""
    cid = front_door(eng, LIKELY_ELIGIBLE)
    complete(eng, cid, "plan_reablement", {"goals": [goal], "setting": "home", "start_type": "planned",
                                           "visits_per_day": visits_per_day})
    return cid


def safeguarding_to_outcome(eng: Any, concern: dict) -> int:
    """Joan Barker's safeguarding `concern` (from a neighbour) taken through a section 42 enquiry (`S42`,
    `STRATEGY`) to its outcome, the risk reduced; the case id."""
    cid = eng.start("safeguarding", data={"person": {"name": "Joan Barker"}, "raised_by": "neighbour"}).case_id
    complete(eng, cid, "record_concern", concern)
    complete(eng, cid, "triage_decision", S42)
    complete(eng, cid, "strategy_discussion", STRATEGY)
    complete(eng, cid, "enquiry", {"findings": "The lodger used her card", "concern_substantiated": "yes"})
    complete(eng, cid, "record_outcome", {"outcomes_asked": True, "outcomes_achieved": "partially",
                                          "risk_outcome": "reduced", "plan_review_needed": False})
    return cid


def needs_remain_to_managed_budget(eng: Any, case_id: int, assessed: dict, scores: dict) -> None:
    """Reablement ended with needs remaining, then assessed (`assessed`), scored (`scores`) and a plan with a
    managed account signed off by the manager."""
    complete(eng, case_id, "deliver_reablement", {"outcome": "needs_remain", "summary": "Needs help"})
    complete(eng, case_id, "assess_needs", assessed)
    complete(eng, case_id, "score_needs", scores)
    complete(eng, case_id, "write_plan", plan("managed_account"))
    complete(eng, case_id, "sign_off_plan", {"signed_off": True}, actor="manager")


def drive(eng: Any) -> dict[str, int]:
    """Every template, driven from 3 March 2031 to 4 June 2031 on the engine's simulated clock; their case ids."""
    c: dict[str, int] = {}
    c["advice"] = front_door(eng, {**contact(), "advice_given": "Leaflet on falls prevention"})
    c["signposted"] = front_door(eng, {**contact(name="Ann Lee", age=40, date_of_birth="1991-02-14"),
                                       "advice_given": "Details of the local carers' centre"})
    c["reablement"] = in_reablement(eng, "Wash and dress", 2)
    c["long_term"] = in_reablement(eng, "Make a meal", 1)
    c["direct_payment"] = to_plan(eng, "direct_payment")
    c["commissioned"] = to_plan(eng, "council_managed")
    c["carer"] = to_plan(eng, "council_managed", carer=True)
    complete(eng, c["carer"], "assess_carer", carer_assessment())
    complete(eng, c["carer"], "plan_carer_support", CARER_PLAN)
    complete(eng, c["carer"], "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    c["safeguarding"] = safeguarding_to_outcome(eng, CONCERN)
    c["discharge"] = eng.start("hospital_discharge", actor="ward7", data={
        "person": HARRIET, "reason": "Fall at home", "ward": "Ward 7"}).case_id
    eng.advance_clock(timedelta(hours=3))
    complete(eng, c["discharge"], "respond_to_referral", {
        "ward_contacted": True, "person_views": "Wants to go home", "can_go_home": True, "needs_new_support": True,
        "needs_bed_based_recovery": False, "needs_care_home": False})
    eng.advance_clock(timedelta(days=2))
    complete(eng, c["discharge"], "record_discharge", {"discharge_ready_date": "2031-03-04",
                                                       "discharge_date": "2031-03-05", "delay_reason": "none"})
    complete(eng, c["discharge"], "plan_reablement", {"goals": ["Walk to the shop"], "setting": "home",
                                                      "start_type": "hospital_discharge", "visits_per_day": 2})
    eng.advance_clock(timedelta(days=18))
    complete(eng, c["reablement"], "deliver_reablement", {"outcome": "best_independence_reached", "summary": "Done"})
    needs_remain_to_managed_budget(eng, c["long_term"], assessment("personal_hygiene", "managing_nutrition",
                                                                   "using_home_safely"), ras(**SMALL))
    eng.advance_clock(timedelta(days=23))  # 15 April: the first reviews are ready
    complete(eng, c["direct_payment"], "review_plan", {"needs_changed": False, "plan_working": True})
    complete(eng, c["discharge"], "prepare_for_end", {"progress": "on_track_to_end"})
    complete(eng, c["discharge"], "deliver_reablement", {"outcome": "best_independence_reached",
                                                         "summary": "Walking"})
    eng.advance_clock(timedelta(days=50))  # 4 June: the 91st day after the discharge
    complete(eng, c["discharge"], "check_still_at_home", {"at_home": "yes"})
    return c
