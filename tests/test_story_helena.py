"""Helena's story, end to end on the simulated clock, with every diagram in processes/ deployed.

Helena Brooks is 23 and leaving a residential specialist college (transition from children's to
adult services). Reablement is not appropriate for her, so the front door's screening sends her
straight to a needs assessment. She is found eligible (the real adult_eligibility handler, through
the needs_assessment form), gets a personal budget, and a support plan with day opportunities,
volunteering and a supported-living placement she moves into gradually. The plan is signed off and
her first review appears 6 weeks later for social work. Later a concern about her money comes in to
the front door: it starts the safeguarding process in the same case.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from handlers.eligibility import ADULT_OUTCOMES
from tests.case_helpers import cld_rows, events, instances, started_data, the_task
from tests.casework_helpers import casework_engine

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc

HELENA = {"name": "Helena Brooks", "age": 23, "date_of_birth": "2007-11-02",
          "address": "Linden House College, 2 College Road, Southby", "postcode": "SB4 7LH", "area": "south",
          "lives_alone": False, "has_unpaid_carer": True}


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, [ROOT / "processes"])


# ---------------------------------------------------------------- helpers

def open_tasks(eng, case_id):
    """Open tasks as (step, team), leaving out the finance team's financial assessment, started with the
    personal budget (tests/test_financial_assessment_process.py follows it)."""
    return sorted((t["element_id"], t["team"]) for t in eng.list_tasks(case_id=case_id)
                  if t["process_id"] != "financial_assessment")


def complete(eng, case_id, element_id, data, actor="worker1"):
    return eng.complete_task(the_task(eng, case_id, element_id)["id"], data, actor=actor)


def handler_outputs(eng, case_id, handler):
    return [e["data"]["output"] for e in events(eng, case_id, "handler.called") if e["data"]["handler"] == handler]


def children_started(eng, case_id):
    return [(e["data"]["element_id"], e["data"]["process_id"]) for e in events(eng, case_id, "instance.child_started")]


def flat(text):
    return " ".join(text.split())


# ---------------------------------------------------------------- Helena's forms

CONTACT = {
    "caller": {"name": "Priya Nair", "relationship": "other_professional",
               "organisation": "Linden House College (transition co-ordinator)", "phone": "01632 960555"},
    "reason": "Helena leaves residential college in July and needs adult social care to plan where she "
              "will live and what she will do",
    "person": HELENA,
    "needs": ["day_opportunities", "employment_volunteering", "housing"],
    "outcomes_unable": ["nutrition", "using_the_home_safely", "using_community_facilities",
                        "work_training_education_volunteering"],
    "safeguarding_concern": False,
    "crisis": False,
    "consents_to_referral": True,
    "from_hospital": False,
    "reablement_appropriate": False,
    "reablement_not_appropriate_because": "transition_to_adult_services",
    "reablement_not_appropriate_note": "Learning disability and autism: lifelong needs, no recent loss of "
                                       "independence to regain",
}

UNABLE = {
    "managing_nutrition": "Helena cannot plan or cook a meal safely without step-by-step prompting",
    "using_home_safely": "Helena does not recognise hazards such as the cooker left on",
    "community_facilities": "Helena cannot use public transport alone and becomes very anxious in new places",
    "work_training_education_volunteering": "Helena needs support to take part in volunteering or work",
}


def helena_assessment():
    outcomes = {code: ({"unable": True, "ways": ["needs_assistance_incl_prompting"], "reason": UNABLE[code]}
                       if code in UNABLE else {"unable": False, "ways": [], "reason": ""})
                for code in ADULT_OUTCOMES}
    return {"needs_from_impairment": True, "outcomes": outcomes,
            "wellbeing_impact": {"significant": True,
                                 "reason": "Without support Helena would be isolated at home after college and "
                                           "lose the independence skills she has learned",
                                 "areas": ["control_over_day_to_day_life",
                                           "participation_in_work_education_training_recreation",
                                           "social_and_economic_wellbeing"]},
            "carer_present": False}


def helena_ras():
    levels = {"nutrition": "moderate", "safety_and_supervision": "moderate", "community_access": "moderate",
              "work_learning_volunteering": "low"}
    domains = ("personal_care", "nutrition", "safety_and_supervision", "mobility_at_home", "home_environment",
               "relationships", "work_learning_volunteering", "community_access", "parenting")
    return {"needs": {d: {"level": levels.get(d, "none"), "met_by_carer": False} for d in domains}}


PLAN = {
    "outcomes": [
        {"label": "Have things to do in the day that I enjoy, with friends",
         "how_met": "Day opportunities three days a week at the Riverside arts and horticulture centre",
         "provided_by": "Riverside Day Opportunities", "weekly_cost": 210, "service_component": "other"},
        {"label": "Do something useful and learn skills for work",
         "how_met": "Volunteering two mornings a week at the community cafe, with a job coach at first",
         "provided_by": "Southby Community Cafe and Pathways job coaching", "weekly_cost": 60,
         "service_component": "other"},
        {"label": "Live in my own flat with the support I need",
         "how_met": "Supported-living placement at Willow Court, moving in gradually: tea visits in July, "
                    "two overnight stays a week in August, then moving in fully in September, with her "
                    "family and college keyworker involved at each step",
         "provided_by": "Willow Court Supported Living", "weekly_cost": 95,
         "service_component": "supported_living"},
    ],
    "money_management": "council_managed",
    "may_change_without_contacting": ["Which days she goes to the day centre"],
    "coordinating_worker": {"name": "Tom Adeyemi", "role": "transitions social worker", "phone": "01632 960321"},
    "review_frequency_months": 6,
}


# ---------------------------------------------------------------- the story

def test_helena_in_transition_is_assessed_without_reablement_and_gets_a_supported_living_plan(eng):
    # The college's transition co-ordinator calls the front door
    res = eng.start("front_door", actor="advisor1")
    cid = res.case_id
    assert [(t["element_id"], t["team"], t["form"]) for t in res.ready_tasks] == [
        ("record_contact", "front_door", "contact")]
    step = eng.complete_task(res.ready_tasks[0]["id"], CONTACT, actor="advisor1")

    # screening: likely eligible, reablement not appropriate -> needs assessment at once
    assert step.status == "completed"
    [assessment_id] = step.started_instances
    front = eng.instance_snapshot(res.instance_id)["data"]
    assert front["screening_route"] == "needs_assessment"
    assert front["screening_reason"].endswith("needs assessment without reablement")
    assert front["contact_date"] == "2031-03-03" and front["reablement_appropriate"] is False
    assert children_started(eng, cid) == [("start_needs_assessment", "needs_assessment")]
    assert instances(eng, cid) == [("front_door", "completed"), ("needs_assessment", "waiting")]
    assert eng.get_case(cid)["data"]["person"] == CONTACT["person"]  # told once, kept on the case
    start = started_data(eng, cid, assessment_id)
    assert start["person"]["name"] == "Helena Brooks" and start["contact_date"] == "2031-03-03"
    assess = the_task(eng, cid, "assess_needs")
    assert (assess["team"], assess["form"], assess["instance_id"]) == ("social_work", "needs_assessment",
                                                                       assessment_id)
    assert assess["due_at"] == datetime(2031, 3, 31, 16, 0, tzinfo=UTC)  # 28 days from the contact, 17:00 BST

    # the needs assessment, a week later: eligible (4 outcomes, significant wellbeing impact)
    eng.advance_clock(timedelta(days=7))
    complete(eng, cid, "assess_needs", helena_assessment(), actor="sw_tom")
    [decision] = handler_outputs(eng, cid, "adult_eligibility")
    assert decision["eligible"] is True
    assert children_started(eng, cid)[1:] == [("start_personal_budget", "personal_budget"),  # no carer's assessment
                                              ("start_financial_assessment", "financial_assessment")]
    assert open_tasks(eng, cid) == [("score_needs", "social_work")]

    # personal budget
    complete(eng, cid, "score_needs", helena_ras(), actor="sw_tom")
    [budget] = handler_outputs(eng, cid, "personal_budget")
    assert budget["needs_approval"] is False
    assert open_tasks(eng, cid) == [("write_plan", "social_work")]

    # support plan: day opportunities, volunteering, supported living with a gradual move-in
    complete(eng, cid, "write_plan", PLAN, actor="sw_tom")
    sign = the_task(eng, cid, "sign_off_plan")
    assert (sign["team"], sign["form"]) == ("team_manager", "plan_sign_off")
    eng.advance_clock(timedelta(days=2))
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager1")

    # letters filed on the case: eligibility, budget, support plan
    docs = eng.documents(cid)
    assert [d["kind"] for d in docs] == ["eligibility", "budget", "support_plan"]
    eligibility, budget_letter, plan_letter = (flat(d["body"]) for d in docs)
    assert all(d["title"] for d in docs)
    assert "Helena Brooks" in eligibility and "You are eligible for care and support." in eligibility
    assert UNABLE["community_facilities"] in eligibility
    amount = "£{:,.2f}".format(float(budget["final_amount"]))
    assert f"Your personal budget is {amount} a year" in budget_letter
    assert "Day opportunities three days a week" in plan_letter
    assert "Volunteering two mornings a week" in plan_letter
    assert "Supported-living placement at Willow Court, moving in gradually" in plan_letter
    assert "Your co-ordinating worker is Tom Adeyemi, transitions social worker" in plan_letter
    assert "We will first review your plan on 23 April 2031" in plan_letter  # sign-off 12 March + 42 days
    assert "managed by the council" in plan_letter

    # the first review, 6 weeks after sign-off, for social work
    eng.advance_clock(timedelta(days=41))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(days=1))
    review = the_task(eng, cid, "review_plan")
    assert (review["team"], review["form"]) == ("social_work", "review")
    [fired] = [e["at"] for e in events(eng, cid, "timer.fired") if e["data"]["element_id"] == "wait_for_review"]
    assert fired.startswith("2031-04-23")
    assert [e["data"]["element_id"] for e in events(eng, cid, "task.completed")] == [
        "record_contact", "assess_needs", "score_needs", "write_plan", "sign_off_plan"]
    assert "start_reablement" not in [e["data"]["element_id"] for e in events(eng, cid, "handler.called")]
    assert [p for p, _ in instances(eng, cid)] == ["front_door", "needs_assessment", "personal_budget",
                                                   "financial_assessment", "support_plan", "review"]

    # a concern about Helena's money reaches the front door: safeguarding starts in the same case
    concern = dict(CONTACT, caller={"name": "Mary Brooks", "relationship": "family_or_friend"},
                   reason="Helena's mother says another tenant keeps taking Helena's money",
                   person=dict(HELENA, address="Flat 3, Willow Court, Southby"),
                   safeguarding_concern=True, reablement_appropriate=True)
    del concern["reablement_not_appropriate_because"], concern["reablement_not_appropriate_note"]
    res2 = eng.start("front_door", case_id=cid, actor="advisor2")
    step2 = eng.complete_task(res2.ready_tasks[0]["id"], concern, actor="advisor2")
    assert step2.status == "completed"
    [sg_id] = step2.started_instances
    assert eng.instance_snapshot(res2.instance_id)["data"]["screening_route"] == "safeguarding"
    assert [p for p, _ in instances(eng, cid)][-2:] == ["front_door", "safeguarding"]
    sg_start = started_data(eng, cid, sg_id)
    assert sg_start["person"]["name"] == "Helena Brooks" and sg_start["urgent"] is False
    assert sg_start["concern"] == "Helena's mother says another tenant keeps taking Helena's money"
    assert sg_start["contact_date"] == "2031-04-23"
    first = the_task(eng, cid, "record_concern")
    assert (first["team"], first["form"], first["instance_id"]) == ("safeguarding", "safeguarding_concern", sg_id)
    assert open_tasks(eng, cid) == [("record_concern", "safeguarding"), ("review_plan", "social_work")]

    # Client Level Data for the case: the first contact's Request went straight to assessment; the
    # assessment progressed to support planning; the signed-off plan is an open long-term community service;
    # the review is not reported until it is done; the second contact's Request ended with the
    # safeguarding referral (NFA – Other: safeguarding is reported in the Safeguarding Adults Collection)
    assert cld_rows(eng, cid) == [
        ("Request", "2031-03-03", "2031-03-03", "Progress to Assessment"),
        ("Assessment", "2031-03-03", "2031-03-10", "Progress to Support Planning / Services"),
        ("Service", "2031-03-12", None, "Provision of service"),
        ("Request", "2031-04-23", "2031-04-23", "NFA – Other"),
    ]
