"""End to end, on the simulated clock, with the real handlers and forms: needs assessment ->
carer's assessment / personal budget -> support plan -> reviews and direct payment reviews.

Every scenario starts at `needs_assessment` and follows the route a worker would take, checking
which tasks appear (element ids), for which team, which timers fire and when, what the letters
say and the amounts the Resource Allocation System gives.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta

from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers.eligibility import ADULT_OUTCOMES, CARER_OUTCOMES

ROOT = Path(__file__).resolve().parent.parent
PROCESS_FILES = [ROOT / "processes" / f"{p}.bpmn" for p in (
    "needs_assessment", "carers_assessment", "personal_budget", "support_plan", "review", "direct_payment_review")]
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)  # a Monday
PETER = {"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "salutation": "Mr Clarke"}
SUSAN = {"name": "Susan Clarke", "relationship": "daughter", "address": "12 Mill Lane, Northtown, NS2 4BB"}


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy(PROCESS_FILES)
    yield engine
    engine.db.dispose()


# ---------------------------------------------------------------- form data


def adult_outcomes(*unable: str) -> dict:
    return {code: ({"unable": True, "ways": ["needs_assistance_incl_prompting"],
                    "reason": f"Peter needs help and prompting with {label}"}
                   if code in unable else {"unable": False, "ways": [], "reason": ""})
            for code, label in ADULT_OUTCOMES.items()}


def assessment(*unable: str, carer: bool = False, significant: bool = True) -> dict:
    data = {
        "needs_from_impairment": True,
        "outcomes": adult_outcomes(*unable),
        "wellbeing_impact": {"significant": significant,
                             "reason": "Falls at home have left Peter anxious and housebound",
                             "areas": ["health_and_emotional_wellbeing", "control_over_day_to_day_life"]},
        "carer_present": carer,
    }
    if carer:
        data["carer"] = SUSAN
    return data


def carer_assessment() -> dict:
    outcomes = {code: {"unable": False, "ways": [], "reason": ""} for code in CARER_OUTCOMES}
    outcomes["work_training_education_volunteering"] = {
        "unable": True, "ways": ["significant_pain_distress_anxiety"],
        "reason": "Susan has cut her hours at work to care for her father and is exhausted"}
    return {"needs_from_caring": True, "health_deteriorating_or_at_risk": True, "outcomes": outcomes,
            "wellbeing_impact": {"significant": True, "reason": "Susan is not sleeping and feels isolated",
                                 "areas": ["health_and_emotional_wellbeing"]}}


DOMAINS = ("personal_care", "nutrition", "safety_and_supervision", "mobility_at_home", "home_environment",
           "relationships", "work_learning_volunteering", "community_access", "parenting")


def ras(**levels) -> dict:
    """{"needs": ...} with every domain scored; a level 'x+carer' means met in part by the carer."""
    needs = {}
    for domain in DOMAINS:
        level = levels.get(domain, "none")
        carer = level.endswith("+carer")
        needs[domain] = {"level": level.removesuffix("+carer"), "met_by_carer": carer}
        if carer:
            needs[domain]["carer_note"] = "Susan checks on him every evening"
    return {"needs": needs}


# 10 + 3 + 5 halved to 3 (a carer helps) = 16 points x £1,109.09091 = £17,745.45: below the £30,000 threshold
SMALL = dict(personal_care="moderate", nutrition="low", safety_and_supervision="low+carer")
# 30 + 20 = 50 points x £1,109.09091 = £55,454.55: above the threshold
LARGE = dict(personal_care="very_high", safety_and_supervision="high")


def plan(money_management: str = "council_managed", months: int = 12) -> dict:
    return {
        "outcomes": [{"label": "Get washed and dressed every morning",
                      "how_met": "A home care visit of 45 minutes each morning", "provided_by": "Northtown Care"},
                     {"label": "Feel safe at home at night", "how_met": "A falls pendant and door sensor"}],
        "money_management": money_management,
        "may_change_without_contacting": ["The time of the morning visit"],
        "coordinating_worker": {"name": "Jane Smith", "role": "social worker", "phone": "01632 960123"},
        "review_frequency_months": months,
    }


# ---------------------------------------------------------------- reading the case


def open_tasks(eng, case_id) -> list[dict]:
    return eng.list_tasks(case_id=case_id)


def task(eng, case_id, element_id) -> dict:
    found = [t for t in open_tasks(eng, case_id) if t["element_id"] == element_id]
    assert len(found) == 1, (element_id, [t["element_id"] for t in open_tasks(eng, case_id)])
    return found[0]


def complete(eng, case_id, element_id, data, actor="worker"):
    return eng.complete_task(task(eng, case_id, element_id)["id"], data, actor=actor)


def events(eng, case_id, type_) -> list[dict]:
    return [e for e in eng.history(case_id) if e["type"] == type_]


def fired(eng, case_id) -> list[str]:
    return [e["data"]["element_id"] for e in events(eng, case_id, "timer.fired")]


def fired_at(eng, case_id, element_id) -> list[str]:
    return [e["at"] for e in events(eng, case_id, "timer.fired") if e["data"]["element_id"] == element_id]


def calls(eng, case_id, handler) -> list[dict]:
    return [e["data"] for e in events(eng, case_id, "handler.called") if e["data"]["handler"] == handler]


def letters(eng, case_id, handler) -> list[str]:
    """Letter bodies with line wrapping undone, so phrases can be searched for."""
    return [" ".join(c["output"]["body"].split()) for c in calls(eng, case_id, handler)]


def completed_route(eng, case_id) -> list[str]:
    return [e["data"]["element_id"] for e in events(eng, case_id, "task.completed")]


def instances(eng, case_id, process_id=None) -> list[dict]:
    return [i for i in eng.get_case(case_id)["instances"] if process_id in (None, i["process_id"])]


def children_started(eng, case_id) -> list[tuple[str, str]]:
    return [(e["data"]["element_id"], e["data"]["process_id"]) for e in events(eng, case_id, "instance.child_started")]


def start(eng, contact_date="2031-03-03"):
    return eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "contact_date": contact_date})


def to_plan(eng, money_management="council_managed", months=12):
    """Peter, eligible without a carer, small budget, plan written and signed off now."""
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan(money_management, months))
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    return cid


def to_first_review(eng, **kw):
    cid = to_plan(eng, **kw)
    eng.advance_clock(timedelta(days=42))
    task(eng, cid, "review_plan")
    return cid


# ---------------------------------------------------------------- the diagrams and forms


def test_every_diagram_deploys_with_its_forms_and_draws_every_element(eng):
    from lxml import etree

    assert {v["process_id"] for v in eng_versions(eng)} >= {
        "needs_assessment", "carers_assessment", "personal_budget", "support_plan", "review",
        "direct_payment_review"}
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
          "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI"}
    for path in PROCESS_FILES:
        root = etree.parse(str(path)).getroot()
        process = root.find("bpmn:process", ns)
        ids = {el.get("id") for el in process.iter() if el.get("id") and el.tag.split("}")[1] not in (
            "timerEventDefinition", "laneSet", "process")}
        shapes = {s.get("bpmnElement") for s in root.iterfind(".//bpmndi:BPMNShape", ns)}
        edges = {s.get("bpmnElement") for s in root.iterfind(".//bpmndi:BPMNEdge", ns)}
        flows = {f.get("id") for f in process.iterfind("bpmn:sequenceFlow", ns)}
        assert flows <= edges, path.name
        assert ids - flows <= shapes, (path.name, sorted(ids - flows - shapes))
        for edge in root.iterfind(".//bpmndi:BPMNEdge", ns):
            assert len(edge) >= 2, (path.name, edge.get("bpmnElement"))


def eng_versions(eng):
    from sqlalchemy import text

    with eng.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT process_id FROM process_versions"))]


def test_the_assessment_form_is_checked_when_the_task_is_completed(eng):
    res = start(eng)
    bad = assessment("personal_hygiene", "managing_nutrition", carer=True)
    del bad["carer"]
    bad["outcomes"]["toilet_needs"] = {"unable": True, "ways": [], "reason": ""}
    with pytest.raises(ValidationError) as err:
        complete(eng, res.case_id, "assess_needs", bad)
    fields = {e["field"] for e in err.value.errors}
    assert "carer" in fields and any(f and f.startswith("outcomes/toilet_needs") for f in fields)
    assert task(eng, res.case_id, "assess_needs")["team"] == "social_work"


# ---------------------------------------------------------------- scenarios


def test_an_adult_found_not_eligible_gets_a_letter_with_reasons_and_the_process_ends(eng):
    res = start(eng)
    cid = res.case_id
    [t] = open_tasks(eng, cid)
    assert (t["element_id"], t["team"], t["form"]) == ("assess_needs", "social_work", "needs_assessment")
    assert t["due_at"] == datetime(2031, 3, 31, 17, 0, tzinfo=timezone.utc)  # 28 days after contact

    step = complete(eng, cid, "assess_needs", assessment("personal_hygiene"))
    assert step.status == "completed"
    [decision] = calls(eng, cid, "adult_eligibility")
    assert decision["output"]["eligible"] is False
    [letter] = letters(eng, cid, "eligibility_letter")
    assert "your needs are not eligible for care and support" in letter
    assert "unable to achieve only 1 of the outcomes" in letter
    assert "Peter needs help and prompting with maintaining personal hygiene" in letter
    assert "Our reference: CASE-000001" in letter
    [filed] = eng.documents(cid)  # the letter is filed on the case, as the person received it
    assert (filed["kind"], filed["handler"]) == ("eligibility", "eligibility_letter")
    assert " ".join(filed["body"].split()) == letter
    assert open_tasks(eng, cid) == []
    assert children_started(eng, cid) == []
    assert [e["data"]["element_id"] for e in events(eng, cid, "timer.cleared")] == ["assessment_overdue_timer"]
    assert eng.advance_clock(timedelta(days=60)) == 0  # the escalation was cleared with the task


def test_an_assessment_past_the_28_day_target_is_escalated_to_the_team_manager(eng):
    res = start(eng, contact_date="2031-02-17")  # contact two weeks before today: due 17 March
    cid = res.case_id
    eng.advance_clock(to=datetime(2031, 3, 17, 16, 59, tzinfo=timezone.utc))
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["assess_needs"]
    eng.advance_clock(timedelta(minutes=1))
    overdue = task(eng, cid, "assessment_overdue")
    assert (overdue["team"], overdue["form"]) == ("team_manager", "assessment_overdue")
    assert fired(eng, cid) == ["assessment_overdue_timer"]
    task(eng, cid, "assess_needs")  # non-interrupting: the assessment is still to be done
    complete(eng, cid, "assessment_overdue", {"action_taken": "Reallocated to a senior practitioner"},
             actor="manager")
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition"))
    task(eng, cid, "score_needs")


def test_an_assessment_started_without_a_contact_date_counts_the_target_from_today(eng):
    res = eng.start("needs_assessment", data={"person": PETER})  # as reablement starts it
    [t] = open_tasks(eng, res.case_id)
    assert t["element_id"] == "assess_needs"
    assert t["due_at"] == datetime(2031, 3, 31, 17, 0, tzinfo=timezone.utc)


def test_peter_eligible_with_a_carer_small_budget_plan_and_first_review_after_six_weeks(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs",
             assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True))

    # eligible: letter, carer's assessment for Susan, and the personal budget
    [letter] = letters(eng, cid, "eligibility_letter")
    assert "you have eligible needs for care and support" in letter
    assert "Dear Mr Clarke" in letter
    assert children_started(eng, cid) == [("start_carers_assessment", "carers_assessment"),
                                          ("start_personal_budget", "personal_budget")]
    carer_inst = instances(eng, cid, "carers_assessment")[0]
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == carer_inst["id"]]
    assert started[0]["data"]["data"]["person"]["name"] == "Susan Clarke"
    assert {(t["element_id"], t["team"]) for t in open_tasks(eng, cid)} == {
        ("assess_carer", "social_work"), ("score_needs", "social_work")}

    # Susan's own assessment and letter
    complete(eng, cid, "assess_carer", carer_assessment())
    carer_letter = letters(eng, cid, "eligibility_letter")[1]
    assert "Dear Susan Clarke" in carer_letter and "you have eligible needs for support as a carer" in carer_letter
    assert instances(eng, cid, "carers_assessment")[0]["status"] == "completed"

    # the RAS: 16 points, below the threshold, so no manager approval
    complete(eng, cid, "score_needs", ras(**SMALL))
    [budget] = calls(eng, cid, "personal_budget")
    out = budget["output"]
    assert (out["points_before_carer_deduction"], out["total_points"]) == (18, 16)
    assert (out["final_amount"], out["needs_approval"]) == ("17745.45", False)
    [budget_letter] = letters(eng, cid, "budget_letter")
    assert "Your personal budget is £17,745.45 a year" in budget_letter
    assert "points met by your carer" in budget_letter
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["write_plan"]
    assert "approve_budget" not in completed_route(eng, cid)

    complete(eng, cid, "write_plan", plan())
    sign = task(eng, cid, "sign_off_plan")
    assert (sign["team"], sign["form"]) == ("team_manager", "plan_sign_off")
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    [plan_letter] = letters(eng, cid, "support_plan_letter")
    assert "Your co-ordinating worker is Jane Smith, social worker" in plan_letter
    assert "We will first review your plan on 14 April 2031" in plan_letter  # sign-off + 42 days
    assert "managed by the council" in plan_letter
    assert instances(eng, cid, "direct_payment_review") == []

    # the first review: nothing at 41 days, the review task at 42 days, for social work
    eng.advance_clock(timedelta(days=41))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(days=1))
    review = task(eng, cid, "review_plan")
    assert (review["team"], review["form"]) == ("social_work", "review")
    assert fired(eng, cid) == ["wait_for_review"]
    assert fired_at(eng, cid, "wait_for_review")[0].startswith("2031-04-14T09:00")
    # the escalation is due after the grace period: 56 days after sign-off, the 6-8 week limit
    assert review["due_at"] == START + timedelta(days=56)
    assert completed_route(eng, cid) == ["assess_needs", "assess_carer", "score_needs", "write_plan",
                                         "sign_off_plan"]


def test_a_budget_above_the_threshold_needs_team_manager_approval_and_a_rejection_goes_back(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "toilet_needs"))
    complete(eng, cid, "score_needs", ras(**LARGE))
    assert calls(eng, cid, "personal_budget")[0]["output"]["final_amount"] == "55454.55"
    approve = task(eng, cid, "approve_budget")
    assert (approve["team"], approve["form"]) == ("team_manager", "budget_approval")
    assert letters(eng, cid, "budget_letter") == []  # nothing goes out before approval

    with pytest.raises(ValidationError):  # a refusal must say why
        complete(eng, cid, "approve_budget", {"approved": False}, actor="manager")
    complete(eng, cid, "approve_budget", {"approved": False, "comments": "Night needs look over-scored"},
             actor="manager")
    assert task(eng, cid, "score_needs")["team"] == "social_work"

    complete(eng, cid, "score_needs", ras(personal_care="very_high", safety_and_supervision="moderate"))
    assert calls(eng, cid, "personal_budget")[1]["output"]["final_amount"] == "44363.64"  # 40 points
    complete(eng, cid, "approve_budget", {"approved": True, "comments": "Agreed"}, actor="manager")
    [letter] = letters(eng, cid, "budget_letter")
    assert "Your personal budget is £44,363.64 a year" in letter
    assert "a manager has checked and approved it" in letter
    assert "We will write to you when it has been approved" not in letter
    assert completed_route(eng, cid) == ["assess_needs", "score_needs", "approve_budget", "score_needs",
                                         "approve_budget"]
    task(eng, cid, "write_plan")


def test_a_plan_not_signed_off_goes_back_to_the_worker(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan())
    complete(eng, cid, "sign_off_plan", {"signed_off": False, "comments": "Add the night-time outcome"},
             actor="manager")
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["write_plan"]
    assert letters(eng, cid, "support_plan_letter") == [] and instances(eng, cid, "review") == []


def test_a_review_that_finds_changed_needs_starts_a_reassessment(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": True, "plan_working": False,
                                       "what_changed": "Peter had a stroke and now needs help at night"})
    assessments = instances(eng, cid, "needs_assessment")
    assert [a["status"] for a in assessments] == ["completed", "waiting"]
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == assessments[1]["id"]][0]
    assert started["data"]["data"]["reassessment"] is True
    assert started["data"]["data"]["previous_budget_amount"] == "17745.45"
    assert started["data"]["started_by_element"] == "start_reassessment"
    reassess = task(eng, cid, "assess_needs")
    assert reassess["team"] == "social_work"
    # the review cycle continues from the new plan, not from this review
    assert len(instances(eng, cid, "review")) == 1
    assert calls(eng, cid, "check_budget_change") == []

    # the reassessment leads to a recalculated budget
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "toilet_needs",
                                                  "using_home_safely"))
    complete(eng, cid, "score_needs", ras(personal_care="high", safety_and_supervision="moderate",
                                          nutrition="low"))
    assert calls(eng, cid, "personal_budget")[1]["output"]["final_amount"] == "36600.00"  # 33 points
    task(eng, cid, "approve_budget")


def test_a_review_cannot_cut_the_budget_without_a_recorded_change(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True,
                                       "proposed_new_amount": 12000})
    [check] = calls(eng, cid, "check_budget_change")
    assert check["inputs"] == {"previous_amount": "17745.45", "new_amount": 12000,
                               "change_in_needs_recorded": False, "reason": ""}
    assert check["output"]["allowed"] is False and check["output"]["direction"] == "reduction"
    assert "without a recorded change in needs or circumstances" in check["output"]["explanation"]
    refused = task(eng, cid, "reduction_refused")
    assert (refused["team"], refused["form"]) == ("social_work", "reduction_refused")
    assert len(instances(eng, cid, "review")) == 1  # nothing moves on until the worker decides

    complete(eng, cid, "reduction_refused", {"decision": "keep_budget"})
    reviews = instances(eng, cid, "review")
    assert len(reviews) == 2
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == reviews[1]["id"]][0]
    assert started["data"]["data"]["first"] is False
    assert started["data"]["data"]["budget_amount"] == "17745.45"  # unchanged
    assert completed_route(eng, cid)[-2:] == ["review_plan", "reduction_refused"]


def test_a_refused_reduction_with_a_recorded_change_goes_to_reassessment(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 9000})
    complete(eng, cid, "reduction_refused", {"decision": "record_change",
                                             "what_changed": "Susan now lives with Peter and helps every day"})
    assert len(instances(eng, cid, "needs_assessment")) == 2
    task(eng, cid, "assess_needs")
    assert len(instances(eng, cid, "review")) == 1


def test_an_increase_at_review_is_allowed_and_carried_to_the_next_review(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 19000})
    [check] = calls(eng, cid, "check_budget_change")
    assert check["output"]["allowed"] is True and check["output"]["direction"] == "increase"
    nxt = instances(eng, cid, "review")[1]
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == nxt["id"]][0]
    assert started["data"]["data"]["budget_amount"] == "19000.00"


def test_an_annual_review_that_goes_overdue_is_escalated_to_the_team_manager(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True})
    assert calls(eng, cid, "check_budget_change") == []
    reviews = instances(eng, cid, "review")
    assert [r["status"] for r in reviews] == ["completed", "waiting"]
    first_done = START + timedelta(days=42)

    # the annual review: 12 months after the last one
    eng.advance_clock(to=first_done + relativedelta(months=12) - timedelta(minutes=1))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(minutes=1))
    review = task(eng, cid, "review_plan")
    assert review["team"] == "social_work"
    assert fired_at(eng, cid, "wait_for_review")[1].startswith("2032-04-14T09:00")

    # not done within the 14-day grace: escalated, and the review itself stays open
    eng.advance_clock(timedelta(days=14))
    overdue = task(eng, cid, "review_overdue")
    assert (overdue["team"], overdue["form"]) == ("team_manager", "review_overdue")
    assert fired(eng, cid) == ["wait_for_review", "wait_for_review", "review_overdue_timer"]
    assert fired_at(eng, cid, "review_overdue_timer")[0].startswith("2032-04-28T09:00")
    task(eng, cid, "review_plan")
    complete(eng, cid, "review_overdue", {"action_taken": "Review booked for next week"}, actor="manager")
    complete(eng, cid, "review_plan", {"needs_changed": False})
    assert len(instances(eng, cid, "review")) == 3


def test_a_shorter_review_frequency_is_used_for_later_reviews(eng):
    cid = to_first_review(eng, months=6)
    complete(eng, cid, "review_plan", {"needs_changed": False})
    eng.advance_clock(to=START + timedelta(days=42) + relativedelta(months=6))
    task(eng, cid, "review_plan")
    assert fired_at(eng, cid, "wait_for_review")[1].startswith("2031-10-14T09:00")


def test_a_direct_payment_is_reviewed_after_six_months_then_within_twelve(eng):
    cid = to_plan(eng, money_management="direct_payment")
    [plan_letter] = letters(eng, cid, "support_plan_letter")
    assert "as a direct payment" in plan_letter
    assert ("start_dp_review", "direct_payment_review") in children_started(eng, cid)
    assert len(instances(eng, cid, "review")) == 1  # the ordinary review cycle runs as well

    def dp_tasks():
        return [t for t in open_tasks(eng, cid) if t["element_id"] == "review_direct_payment"]

    eng.advance_clock(to=START + relativedelta(months=6) - timedelta(minutes=1))
    assert dp_tasks() == []
    eng.advance_clock(timedelta(minutes=1))
    [dp] = dp_tasks()
    assert (dp["team"], dp["form"]) == ("finance", "direct_payment_review")
    assert len(fired_at(eng, cid, "wait_for_dp_review")) == 1
    assert fired_at(eng, cid, "wait_for_dp_review")[0].startswith("2031-09-03T09:00")
    eng.complete_task(dp["id"], {"used_to_meet_needs": True, "records_kept": True, "balance": 820.5,
                                 "continue_direct_payment": True}, actor="finance_officer")
    done = eng.now()

    eng.advance_clock(to=done + relativedelta(months=12) - timedelta(minutes=1))
    assert dp_tasks() == []
    eng.advance_clock(timedelta(minutes=1))
    [dp2] = dp_tasks()
    assert dp2["team"] == "finance"
    second = datetime.fromisoformat(fired_at(eng, cid, "wait_for_dp_review")[1].replace("Z", "+00:00"))
    assert second <= done + relativedelta(months=12)
    assert second.isoformat().startswith("2032-09-03T09:00")
    assert len(instances(eng, cid, "direct_payment_review")) == 2

    # stopping the direct payment ends the cycle
    eng.complete_task(dp2["id"], {"used_to_meet_needs": False, "records_kept": False,
                                  "concerns": "Money not spent on care", "continue_direct_payment": False})
    assert len(instances(eng, cid, "direct_payment_review")) == 2
    assert instances(eng, cid, "direct_payment_review")[1]["status"] == "completed"
