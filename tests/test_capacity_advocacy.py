"""Mental capacity (MCA 2005) and independent advocacy (Care Act s.67 and s.68) where decisions are made,
and fluctuating needs (Eligibility Regulations reg 2(4)), end to end on the simulated clock with the real
handlers and forms, on SQLite and PostgreSQL.

Where a decision is made — the needs assessment, the support plan (and a move into a care home), a
safeguarding enquiry — the form asks whether capacity is in doubt (the two-stage test for that specific
decision, and a best-interests decision when the person lacks capacity) and whether the person would have
substantial difficulty being involved with no appropriate person to help; then the `advocacy` process
refers them to the independent advocacy provider with its own deadline (timescales.json
`advocacy_arranged_working_days`), escalated to the team manager, and the advocate appointed is kept on
the case and told to the person in a letter.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.errors import ValidationError
from handlers.capacity import DECISIONS, involvement
from tests.case_helpers import cld_rows
from tests.casework_helpers import casework_engine
from tests.test_process_assessment_to_review import (
    PETER,
    SMALL,
    assessment,
    calls,
    children_started,
    complete,
    events,
    fired,
    letters,
    open_tasks,
    plan,
    ras,
    task,
)

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc
START = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)  # a Monday
PROCESSES = [ROOT / "processes" / f"{p}.bpmn" for p in (
    "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment", "support_plan", "review",
    "direct_payment_review",
    "safeguarding", "advocacy")]
DUE = datetime(2031, 3, 10, 17, 0, tzinfo=UTC)  # 5 working days after Monday 3 March, 17:00 (GMT)

NO_ONE = {"substantial_difficulty": True, "appropriate_person_available": False}
APPOINTED = {"referred_to": "Northshire Advocacy Hub", "referred_on": "2031-03-03", "outcome": "appointed",
             "advocate_name": "Grace Okafor", "advocate_contact": "01632 960555", "appointed_on": "2031-03-05"}
CAPACITY = {"decision": "Whether to take part in the assessment of his needs", "assessed_on": "2031-03-03",
            "impairment": True, "unable_to_understand": False, "unable_to_retain": True,
            "unable_to_use_or_weigh": True, "unable_to_communicate": False,
            "support_given": "Met at home in the morning, with pictures and his daughter present",
            "reasons": "Peter has advanced dementia and could not keep the information in mind for a minute"}
BEST_INTERESTS = {"decision": "Assess his needs with an independent advocate, at home",
                  "decision_maker": "Jane Smith, social worker",
                  "person_wishes": "Has always said he wants to stay in his own home",
                  "consulted": [{"name": "Dr Amy Shah", "relationship": "GP",
                                 "views": "Supports an assessment at home"}],
                  "less_restrictive": "An assessment at home is less restrictive than a hospital assessment"}


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES)


def start(eng):
    return eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                               "contact_date": "2031-03-03"}).case_id


def teams(eng, cid) -> list[tuple[str, str]]:
    return sorted((t["element_id"], t["team"]) for t in open_tasks(eng, cid))


def advocacy_instances(eng, cid) -> list[dict]:
    return [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "advocacy"]


def advocacy_start_data(eng, cid) -> list[dict]:
    ids = {i["id"] for i in advocacy_instances(eng, cid)}
    return [e["data"]["data"] for e in events(eng, cid, "instance.started") if e["instance_id"] in ids]


def timers(eng, cid, kind: str) -> list[str]:
    return [e["data"]["element_id"] for e in events(eng, cid, kind)]


# ---------------------------------------------------------------- advocacy from the needs assessment


def test_substantial_difficulty_and_nobody_to_help_refers_for_advocacy_and_the_advocate_is_told_in_a_letter(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", {**assessment("personal_hygiene", "managing_nutrition"), **NO_ONE})
    # the referral starts beside the assessment's own route, which goes on (eligible: the budget)
    assert children_started(eng, cid)[:1] == [("start_advocacy", "advocacy")]
    [data] = advocacy_start_data(eng, cid)
    assert data["decision"] == "needs_assessment" and data["person"] == PETER and data["contact_date"] == "2031-03-03"
    assert data["reason"] == ("The person would have substantial difficulty being involved and has no appropriate "
                              "person to support them (Care Act 2014 s.67).")
    assert teams(eng, cid) == [("arrange_advocate", "social_work"), ("score_needs", "social_work")]
    arrange = task(eng, cid, "arrange_advocate")
    assert arrange["due_at"] == DUE
    assert "advocate_overdue" in timers(eng, cid, "timer.set")
    assert eng.get_case(cid)["data"]["advocacy"] == {
        "status": "referred", "decision": "needs_assessment", "reason": data["reason"],
        "referred_on": "2031-03-03", "due": "2031-03-10T17:00:00Z"}

    eng.advance_clock(to=datetime(2031, 3, 5, 11, 0, tzinfo=UTC))
    complete(eng, cid, "arrange_advocate", APPOINTED)
    advocacy = eng.get_case(cid)["data"]["advocacy"]
    assert advocacy["status"] == "appointed" and advocacy["appointed_on"] == "2031-03-05"
    assert advocacy["advocate"] == {"name": "Grace Okafor", "organisation": "Northshire Advocacy Hub",
                                    "contact": "01632 960555"}
    [letter] = letters(eng, cid, "advocacy_letter")
    assert "Your independent advocate We have arranged" in letter and "YOUR INDEPENDENT" not in letter
    assert "Dear Mr Clarke" in letter
    assert "support you with the assessment of your care and support needs" in letter
    assert "Your advocate is Grace Okafor, from Northshire Advocacy Hub." in letter and "01632 960555" in letter
    assert "advocate_overdue" in timers(eng, cid, "timer.cleared")
    [instance] = advocacy_instances(eng, cid)
    assert instance["status"] == "completed"
    # past the deadline nothing is escalated: the timer went with the task
    eng.advance_clock(to=datetime(2031, 3, 20, 9, 0, tzinfo=UTC))
    assert "advocate_overdue" not in fired(eng, cid)
    assert teams(eng, cid) == [("score_needs", "social_work")]
    # advocacy is not a Client Level Data event: the assessment's row alone
    assert [r[0] for r in cld_rows(eng, cid)] == ["Assessment"]


def test_an_advocate_not_arranged_by_the_deadline_goes_to_the_team_manager_and_stays_with_social_work(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", {**assessment("personal_hygiene", "managing_nutrition"), **NO_ONE})
    eng.advance_clock(to=datetime(2031, 3, 10, 16, 59, tzinfo=UTC))
    assert "advocate_overdue" not in fired(eng, cid)
    eng.advance_clock(to=DUE)
    assert fired(eng, cid) == ["advocate_overdue"]
    assert teams(eng, cid) == [("arrange_advocate", "social_work"), ("escalate_advocacy", "team_manager"),
                               ("score_needs", "social_work")]
    assert task(eng, cid, "arrange_advocate")["due_at"] == DUE  # it keeps its due date, now overdue
    complete(eng, cid, "escalate_advocacy", {"action_taken": "Called the provider: an advocate visits on Friday"},
             actor="manager")
    complete(eng, cid, "arrange_advocate", {**APPOINTED, "appointed_on": "2031-03-14"})
    assert eng.get_case(cid)["data"]["advocacy"]["status"] == "appointed"


def test_an_appropriate_person_or_no_difficulty_means_no_referral(eng):
    helped = start(eng)
    complete(eng, helped, "assess_needs", {**assessment("personal_hygiene", "managing_nutrition"),
                                           "substantial_difficulty": True, "appropriate_person_available": True,
                                           "appropriate_person": "Susan Clarke, daughter"})
    unanswered = start(eng)
    complete(eng, unanswered, "assess_needs", assessment("personal_hygiene", "managing_nutrition"))
    for cid in (helped, unanswered):
        assert advocacy_instances(eng, cid) == [] and "advocacy" not in eng.get_case(cid)["data"]
        assert teams(eng, cid) == [("score_needs", "social_work")]


def test_an_appropriate_person_must_be_named(eng):
    cid = start(eng)
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "assess_needs", {**assessment("personal_hygiene"), "substantial_difficulty": True,
                                            "appropriate_person_available": True})
    assert [e["field"] for e in err.value.errors] == ["appropriate_person"]
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "assess_needs", {**assessment("personal_hygiene"), "substantial_difficulty": True})
    assert [e["field"] for e in err.value.errors] == ["appropriate_person_available"]
    assert teams(eng, cid) == [("assess_needs", "social_work")]
    assert events(eng, cid, "task.completed") == []


# ---------------------------------------------------------------- mental capacity


def test_capacity_in_doubt_needs_the_two_stage_test_and_lacking_capacity_a_best_interests_decision(eng):
    cid = start(eng)
    base = assessment("personal_hygiene", "managing_nutrition")
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "assess_needs", {**base, "capacity_in_doubt": True})
    assert [e["field"] for e in err.value.errors] == ["capacity_assessment"]
    with pytest.raises(ValidationError) as err:  # stage 1 and a stage 2 inability: lacks capacity
        complete(eng, cid, "assess_needs", {**base, "capacity_in_doubt": True, "capacity_assessment": CAPACITY})
    assert [e["field"] for e in err.value.errors] == ["best_interests"]
    with pytest.raises(ValidationError) as err:  # who was consulted is part of it
        complete(eng, cid, "assess_needs", {**base, "capacity_in_doubt": True, "capacity_assessment": CAPACITY,
                                            "best_interests": {**BEST_INTERESTS, "consulted": []}})
    assert [e["field"] for e in err.value.errors] == ["best_interests/consulted"]
    assert events(eng, cid, "task.completed") == [] and teams(eng, cid) == [("assess_needs", "social_work")]

    complete(eng, cid, "assess_needs", {**base, "capacity_in_doubt": True, "capacity_assessment": CAPACITY,
                                        "best_interests": BEST_INTERESTS})
    # lacking capacity for the decision is substantial difficulty; nobody appropriate was named: an advocate
    [data] = advocacy_start_data(eng, cid)
    assert data["reason"] == ("The person lacks capacity for this decision and has no appropriate person to "
                              "support them (Care Act 2014 s.67).")
    [done] = events(eng, cid, "task.completed")
    assert done["data"]["data"]["best_interests"]["consulted"][0]["name"] == "Dr Amy Shah"


def test_an_impairment_without_an_inability_to_decide_is_capacity_and_needs_no_best_interests_decision(eng):
    cid = start(eng)
    has_capacity = {**CAPACITY, "unable_to_retain": False, "unable_to_use_or_weigh": False,
                    "reasons": "Peter has dementia but understood, kept and weighed the information and told us"}
    complete(eng, cid, "assess_needs", {**assessment("personal_hygiene", "managing_nutrition"),
                                        "capacity_in_doubt": True, "capacity_assessment": has_capacity})
    assert advocacy_instances(eng, cid) == []
    assert teams(eng, cid) == [("score_needs", "social_work")]


def test_involvement_reads_the_two_stage_test_and_an_advocate_already_on_the_case():
    lacks = involvement("care_home_move", {"capacity_in_doubt": True, "capacity_assessment": CAPACITY,
                                           "best_interests": BEST_INTERESTS})
    assert lacks["capacity"]["lacks_capacity"] is True and lacks["refer"] is True
    assert lacks["capacity"]["specific_decision"] == CAPACITY["decision"]
    no_impairment = involvement("support_plan", {"capacity_in_doubt": True,
                                                 "capacity_assessment": {**CAPACITY, "impairment": False}})
    assert no_impairment["capacity"]["lacks_capacity"] is False and no_impairment["refer"] is False
    assert no_impairment["capacity"]["best_interests"] is None
    for status, refer in (("referred", False), ("appointed", False), ("person_declined", True),
                          ("appropriate_person_found", True)):
        assert involvement("review", NO_ONE, {"status": status})["refer"] is refer, status
    assert involvement("review", {})["refer"] is False  # nothing answered: capacity assumed, no difficulty
    with pytest.raises(ValueError, match="decision must be one of"):
        involvement("shopping", {})
    with pytest.raises(ValueError, match="substantial_difficulty must be true or false"):
        involvement("review", {"substantial_difficulty": "yes"})
    with pytest.raises(ValueError, match="best_interests: the person lacks capacity"):
        involvement("review", {"capacity_in_doubt": True, "capacity_assessment": CAPACITY})


def test_the_capacity_and_advocacy_questions_are_the_same_in_every_decision_form():
    names = ["capacity_in_doubt", "capacity_assessment", "best_interests", "substantial_difficulty",
             "appropriate_person_available", "appropriate_person"]
    forms = {n: json.loads((ROOT / "forms" / f"{n}.schema.json").read_text(encoding="utf-8"))
             for n in ("needs_assessment", "support_plan", "safeguarding_strategy")}

    def block(form):
        props = {k: v for k, v in form["properties"].items() if k in names}
        props["capacity_assessment"] = {**props["capacity_assessment"],
                                        "properties": {**props["capacity_assessment"]["properties"],
                                                       "decision": {"title": "the decision"}}}
        rules = [c for c in form["allOf"] if any(n in json.dumps(c["if"]) for n in names)]
        return props, rules

    [first, *others] = [block(f) for f in forms.values()]
    assert set(first[0]) == set(names) and len(first[1]) == 4
    assert all(b == first for b in others)


# ---------------------------------------------------------------- fluctuating needs (reg 2(4))


def test_fluctuating_needs_are_asked_with_the_period_considered_and_the_letter_says_it(eng):
    cid = start(eng)
    base = assessment("personal_hygiene", "managing_nutrition")
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "assess_needs", {**base, "needs_fluctuate": True})
    assert [e["field"] for e in err.value.errors] == ["fluctuation_period"]
    assert events(eng, cid, "task.completed") == []
    complete(eng, cid, "assess_needs", {**base, "needs_fluctuate": True, "fluctuation_period": "the last three months",
                                        "fluctuation_pattern": "Parkinson's: mornings are much worse"})
    [decision] = calls(eng, cid, "adult_eligibility")
    assert decision["inputs"]["fluctuation"] == {"fluctuate": True, "period": "the last three months",
                                                 "pattern": "Parkinson's: mornings are much worse"}
    [letter] = letters(eng, cid, "eligibility_letter")
    assert ("Your needs vary "
            "over time (Parkinson's: mornings are much worse). To judge your level of need accurately we considered "
            "your circumstances over the last three months, not just on the day of the assessment.") in letter


def test_needs_that_do_not_fluctuate_are_decided_without_a_period(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", {**assessment("personal_hygiene", "managing_nutrition"),
                                        "needs_fluctuate": False})
    [decision] = calls(eng, cid, "adult_eligibility")
    assert decision["inputs"]["fluctuation"] == {"fluctuate": False, "period": None, "pattern": None}
    assert decision["output"]["eligible"] is True and "vary over time" not in letters(eng, cid, "eligibility_letter")[0]


# ---------------------------------------------------------------- the support plan and a move into a care home


def to_write_plan(eng) -> int:
    cid = start(eng)
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    return cid


def test_a_move_into_a_care_home_without_capacity_or_anyone_to_consult_refers_an_advocate_and_is_signed_off(eng):
    cid = to_write_plan(eng)
    move = {**CAPACITY, "decision": "Whether to move into Oak Lodge care home"}
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "write_plan", {**plan(), "care_home_move": True, "capacity_in_doubt": True,
                                          "capacity_assessment": move})
    assert [e["field"] for e in err.value.errors] == ["best_interests"]
    complete(eng, cid, "write_plan", {**plan(), "care_home_move": True, "capacity_in_doubt": True,
                                      "capacity_assessment": move, "best_interests": BEST_INTERESTS})
    [data] = advocacy_start_data(eng, cid)
    assert data["decision"] == "care_home_move"
    assert teams(eng, cid) == [("arrange_advocate", "social_work"), ("sign_off_plan", "team_manager")]
    complete(eng, cid, "arrange_advocate", APPOINTED)
    assert "support you with the decision about moving into a care home" in letters(eng, cid, "advocacy_letter")[0]
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    assert teams(eng, cid) == []  # the review cycle waits on its timer


def test_an_advocate_already_referred_is_not_referred_again_for_the_next_decision(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", {**assessment("personal_hygiene", "managing_nutrition", "using_home_safely"),
                                        **NO_ONE})
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", {**plan(), **NO_ONE})  # the referral is still open
    assert len(advocacy_instances(eng, cid)) == 1
    complete(eng, cid, "arrange_advocate", APPOINTED)
    complete(eng, cid, "sign_off_plan", {"signed_off": False, "comments": "Add the advocate's views"},
             actor="manager")
    complete(eng, cid, "write_plan", {**plan(), **NO_ONE})  # appointed: the same advocate goes on
    assert len(advocacy_instances(eng, cid)) == 1


def test_an_advocate_the_person_declines_is_recorded_without_a_letter_and_a_later_decision_refers_again(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", {**assessment("personal_hygiene", "managing_nutrition", "using_home_safely"),
                                        **NO_ONE})
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "arrange_advocate", {**APPOINTED, "outcome": "person_declined"})
    assert [e["field"] for e in err.value.errors] == ["declined_reason"]
    complete(eng, cid, "arrange_advocate", {"referred_to": "Northshire Advocacy Hub", "referred_on": "2031-03-03",
                                            "outcome": "person_declined",
                                            "declined_reason": "Peter told us twice he does not want one; he "
                                                               "understood what an advocate does"})
    assert eng.get_case(cid)["data"]["advocacy"]["status"] == "person_declined"
    assert letters(eng, cid, "advocacy_letter") == []
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", {**plan(), **NO_ONE})
    assert len(advocacy_instances(eng, cid)) == 2


# ---------------------------------------------------------------- safeguarding (s.68)

CONCERN = {"what_happened": "Neighbour reports the lodger takes her bank card and she has no food",
           "abuse_types": ["financial", "neglect"], "immediate_risk": "medium",
           "immediate_safety_actions": "Visited today; food delivered; bank asked to flag the account",
           "adult_views_sought": True, "desired_outcomes": "I want my money back and him to leave",
           "police_informed": True,
           "alleged_source_of_harm": {"name": "Dean Fletcher", "relationship": "lodger", "lives_with_adult": True}}
S42 = {"s42_criteria_met": "yes", "decision": "s42_enquiry", "urgent": False,
       "reason": "Care and support needs; financial abuse; cannot protect herself"}
STRATEGY = {"participants": ["Safeguarding lead", "PC Jones"], "enquiry_lead": "Sam Patel (social worker)",
            "interim_protection": "Daily welfare calls; card cancelled",
            "adult_involvement": "through_independent_advocate"}


def test_a_safeguarding_enquiry_for_an_adult_with_substantial_difficulty_and_nobody_gets_an_advocate_s68(eng):
    cid = eng.start("safeguarding", data={"person": {"name": "Joan Barker", "address": "4 Mill Lane, Northby"}}).case_id
    complete(eng, cid, "record_concern", CONCERN)
    complete(eng, cid, "triage_decision", S42)
    complete(eng, cid, "strategy_discussion", {**STRATEGY, **NO_ONE})
    [data] = advocacy_start_data(eng, cid)
    assert data["decision"] == "safeguarding" and data["person"]["name"] == "Joan Barker"
    # the safeguarding team arranges it; the enquiry goes on beside it
    assert teams(eng, cid) == [("arrange_safeguarding_advocate", "safeguarding"), ("enquiry", "safeguarding")]
    assert task(eng, cid, "arrange_safeguarding_advocate")["due_at"] == DUE
    eng.advance_clock(to=DUE)
    assert "safeguarding_advocate_overdue" in fired(eng, cid)
    assert ("escalate_advocacy", "team_manager") in teams(eng, cid)
    complete(eng, cid, "arrange_safeguarding_advocate", APPOINTED)
    assert "support you with the safeguarding enquiry" in letters(eng, cid, "advocacy_letter")[0]


def test_a_strategy_discussion_without_difficulty_goes_straight_to_the_enquiry(eng):
    cid = eng.start("safeguarding", data={"person": {"name": "Joan Barker"}}).case_id
    complete(eng, cid, "record_concern", CONCERN)
    complete(eng, cid, "triage_decision", S42)
    complete(eng, cid, "strategy_discussion", {**STRATEGY, "adult_involvement": "in_person"})
    assert advocacy_instances(eng, cid) == [] and teams(eng, cid) == [("enquiry", "safeguarding")]


# ---------------------------------------------------------------- the advocacy process's own start data


def test_advocacy_started_directly_checks_its_decision_and_reason(eng):
    cid = eng.start("advocacy", data={"person": PETER, "decision": "review",
                                      "reason": "Cannot follow a conversation since his stroke; no family nearby",
                                      "contact_date": "2031-03-03"}).case_id
    assert teams(eng, cid) == [("arrange_advocate", "social_work")]
    assert set(DECISIONS) == {"needs_assessment", "support_plan", "care_home_move", "safeguarding", "review",
                              "carers_assessment"}
    for data, message in (({"person": PETER, "decision": "shopping", "reason": "x"}, "decision must be one of"),
                          ({"person": PETER, "decision": "review"}, "reason: say why an advocate is needed")):
        res = eng.start("advocacy", data=data)
        [incident] = [e for e in events(eng, res.case_id, "incident.opened")]
        assert message in json.dumps(incident["data"]), incident
        assert open_tasks(eng, res.case_id) == []
