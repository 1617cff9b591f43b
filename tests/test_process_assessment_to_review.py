"""End to end, on the simulated clock, with the real handlers and forms: needs assessment ->
carer's assessment / personal budget -> support plan -> reviews and direct payment reviews.

Every scenario starts at `needs_assessment` and follows the route a worker would take, checking
which tasks appear (element ids), for which team, which timers fire and when, what the letters
say, the amounts the Resource Allocation System gives and the Client Level Data rows the case
gives (code lists from the domain brief, section 4). Requested (unplanned) reviews and triggered
direct payment reviews are started the way the web app and the command line start them:
`Engine.start(process_id, case_id=..., data=...)`.
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
from handlers import settings as local_settings
from handlers.eligibility import ADULT_OUTCOMES, CARER_OUTCOMES
from tests.case_helpers import cld_full, cld_rows

ROOT = Path(__file__).resolve().parent.parent
PROCESS_FILES = [ROOT / "processes" / f"{p}.bpmn" for p in (
    "needs_assessment", "carers_assessment", "carers_support_plan", "personal_budget", "financial_assessment",
    "support_plan", "review",
    "direct_payment_review")]
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)  # a Monday
PETER = {"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "salutation": "Mr Clarke"}
SUSAN = {"name": "Susan Clarke", "relationship": "daughter", "address": "12 Mill Lane, Northtown, NS2 4BB"}

# CLD code lists (domain brief, section 4)
ASSESSMENT, SERVICE, REVIEW = "Assessment", "Service", "Review"
TO_SUPPORT_PLANNING = "Progress to Support Planning / Services"
TO_REASSESSMENT = "Progress to Re-assessment / Unplanned Review"
NO_CHANGE = "No change in package"
PROVISION = "Provision of service"
NFA_NO_SERVICES = "NFA – No services offered: other reason"
LT_COMMUNITY = "Long Term Support: Community"


@pytest.fixture
def eng(db_url):
    # review dates land on working days (timescales.json review_dates_on_working_days, on as shipped)
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


def carer_assessment(support_level: str = "moderate") -> dict:
    outcomes = {code: {"unable": False, "ways": [], "reason": ""} for code in CARER_OUTCOMES}
    outcomes["work_training_education_volunteering"] = {
        "unable": True, "ways": ["significant_pain_distress_anxiety"],
        "reason": "Susan has cut her hours at work to care for her father and is exhausted"}
    return {"needs_from_caring": True, "health_deteriorating_or_at_risk": True, "outcomes": outcomes,
            "wellbeing_impact": {"significant": True, "reason": "Susan is not sleeping and feels isolated",
                                 "areas": ["health_and_emotional_wellbeing"]},
            "support_level": support_level}


DOMAINS = ("personal_care", "nutrition", "safety_and_supervision", "mobility_at_home", "home_environment",
           "relationships", "work_learning_volunteering", "community_access", "parenting")


def ras(extra: dict | None = None, **levels) -> dict:
    """{"needs": ...} with every domain scored; a level 'x+carer' means met in part by the carer.
    `extra`: other fields of the scoring form (carer support level, impact assessment)."""
    needs = {}
    for domain in DOMAINS:
        level = levels.get(domain, "none")
        carer = level.endswith("+carer")
        needs[domain] = {"level": level.removesuffix("+carer"), "met_by_carer": carer}
        if carer:
            needs[domain]["carer_note"] = "Susan checks on him every evening"
    return {"needs": needs, **(extra or {})}


# 10 + 3 + 5 halved to 3 (a carer helps) = 16 points x £1,109.09091 = £17,745.45: below the £30,000 threshold
SMALL = dict(personal_care="moderate", nutrition="low", safety_and_supervision="low+carer")
# 30 + 20 = 50 points x £1,109.09091 = £55,454.55: above the threshold
LARGE = dict(personal_care="very_high", safety_and_supervision="high")


def plan(money_management: str = "council_managed", months: int = 12) -> dict:
    return {
        "outcomes": [{"label": "Get washed and dressed every morning",
                      "how_met": "A home care visit of 45 minutes each morning", "provided_by": "Northtown Care",
                      "service_component": "home_support"},
                     {"label": "Feel safe at home at night", "how_met": "A falls pendant and door sensor",
                      "service_component": "equipment"}],
        "money_management": money_management,
        "may_change_without_contacting": ["The time of the morning visit"],
        "coordinating_worker": {"name": "Jane Smith", "role": "social worker", "phone": "01632 960123"},
        "review_frequency_months": months,
    }


# ---------------------------------------------------------------- reading the case


def open_tasks(eng, case_id) -> list[dict]:
    """The case's open tasks, leaving out the finance team's financial assessment: it is started with the
    personal budget for every eligible person and runs alongside (tests/test_financial_assessment_process.py)."""
    return [t for t in eng.list_tasks(case_id=case_id) if t["process_id"] != "financial_assessment"]


def task(eng, case_id, element_id) -> dict:
    found = [t for t in open_tasks(eng, case_id) if t["element_id"] == element_id]
    assert len(found) == 1, (element_id, [t["element_id"] for t in open_tasks(eng, case_id)])
    return found[0]


def complete(eng, case_id, element_id, data, actor="worker"):
    return eng.complete_task(task(eng, case_id, element_id)["id"], data, actor=actor)


def events(eng, case_id, type_) -> list[dict]:
    return [e for e in eng.history(case_id) if e["type"] == type_]


def fired(eng, case_id) -> list[str]:
    """The timers that fired, leaving out the financial assessment's (its target passes while these cases wait
    for their reviews; tests/test_financial_assessment_process.py tests it)."""
    finance = {i["id"] for i in eng.get_case(case_id)["instances"] if i["process_id"] == "financial_assessment"}
    return [e["data"]["element_id"] for e in events(eng, case_id, "timer.fired") if e["instance_id"] not in finance]


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


def services(eng, case_id) -> list[tuple[str, str]]:
    """(service type, delivery mechanism) of the case's CLD Service rows, in order."""
    return [(r["service_type"], r["delivery_mechanism"]) for r in cld_full(eng, case_id) if r["event_type"] == SERVICE]


def day(n: int) -> str:
    """The date n days after START, as CLD rows give dates."""
    return (START + timedelta(days=n)).date().isoformat()


def request_review(eng, case_id, reason, by, note):
    """Start a requested (unplanned) review on the case, as the web app and the command line do."""
    return eng.start("review", case_id=case_id, actor="sw_jane",
                     data={"review_reason": reason, "review_requested_by": by, "review_request_note": note})


def with_settings(monkeypatch, **changes):
    """Run with the council's timescales.json changed as given."""
    real = local_settings.load()
    monkeypatch.setattr(local_settings, "load", lambda *a, **k: {**real, **changes})


# 42 days after sign-off (3 March 2031) is Easter Monday, 14 April: review dates are on working days
# (timescales.json review_dates_on_working_days), so the first review is on Tuesday 15 April, day 43
FIRST_REVIEW = 43


def to_first_review(eng, **kw):
    cid = to_plan(eng, **kw)
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    task(eng, cid, "review_plan")
    return cid


# ---------------------------------------------------------------- the diagrams and forms


def test_every_diagram_deploys_with_its_forms_and_draws_every_element(eng):
    from lxml import etree

    assert {v["process_id"] for v in eng_versions(eng)} >= {
        "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment", "support_plan", "review",
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
    assert t["due_at"] == datetime(2031, 3, 31, 16, 0, tzinfo=timezone.utc)  # 28 days after contact, 17:00 BST

    step = complete(eng, cid, "assess_needs", assessment("personal_hygiene"))
    assert step.status == "completed"
    [decision] = calls(eng, cid, "adult_eligibility")
    assert decision["output"]["eligible"] is False
    [letter] = letters(eng, cid, "eligibility_letter")
    assert "your needs are not eligible for care and support" in letter
    assert "You cannot do 1 of the things the law lists:" in letter
    assert "Peter needs help and prompting with maintaining personal hygiene" in letter
    assert "Our reference: CASE-000001" in letter
    [filed] = eng.documents(cid)  # the letter is filed on the case, as the person received it
    assert (filed["kind"], filed["handler"]) == ("eligibility", "eligibility_letter")
    assert " ".join(filed["body"].split()) == letter
    assert open_tasks(eng, cid) == []
    assert children_started(eng, cid) == []
    assert [e["data"]["element_id"] for e in events(eng, cid, "timer.cleared")] == ["assessment_overdue_timer"]
    assert eng.advance_clock(timedelta(days=60)) == 0  # the escalation was cleared with the task
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), NFA_NO_SERVICES)]


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
    # the assessment event runs from the day it was started to the day it was decided
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), "2031-03-17", TO_SUPPORT_PLANNING)]


def test_an_assessment_started_without_a_contact_date_counts_the_target_from_today(eng):
    res = eng.start("needs_assessment", data={"person": PETER})  # as reablement starts it
    [t] = open_tasks(eng, res.case_id)
    assert t["element_id"] == "assess_needs"
    assert t["due_at"] == datetime(2031, 3, 31, 16, 0, tzinfo=timezone.utc)
    assert cld_rows(eng, res.case_id) == [(ASSESSMENT, day(0), None, None)]  # open: no outcome yet


def test_peter_eligible_with_a_carer_small_budget_plan_and_first_review_after_six_weeks(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs",
             assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True))

    # eligible: letter, carer's assessment for Susan, and the personal budget
    [letter] = letters(eng, cid, "eligibility_letter")
    assert "You are eligible for care and support." in letter
    assert "Dear Mr Clarke" in letter
    assert children_started(eng, cid) == [("start_carers_assessment", "carers_assessment"),
                                          ("start_personal_budget", "personal_budget"),
                                          ("start_financial_assessment", "financial_assessment")]
    carer_inst = instances(eng, cid, "carers_assessment")[0]
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == carer_inst["id"]]
    assert started[0]["data"]["data"]["person"]["name"] == "Susan Clarke"
    assert {(t["element_id"], t["team"]) for t in open_tasks(eng, cid)} == {
        ("assess_carer", "social_work"), ("score_needs", "social_work")}

    # Susan's own assessment and letter
    complete(eng, cid, "assess_carer", carer_assessment())
    carer_letter = letters(eng, cid, "eligibility_letter")[1]
    assert "Dear Susan Clarke" in carer_letter and "You are eligible for support as a carer." in carer_letter
    assert instances(eng, cid, "carers_assessment")[0]["status"] == "completed"

    assert eng.get_case(cid)["data"]["carer_assessment"] == {
        "carer": "Susan Clarke", "cared_for": "Peter Clarke", "self_contact": False, "eligible": True,
        "support_level": "moderate", "decided_at": START.isoformat()}

    # the RAS: 16 points, below the threshold, so no manager approval; Susan's eligible carer's
    # assessment (moderate) adds the carer support allocation from ras.json (£600)
    complete(eng, cid, "score_needs", ras(**SMALL))
    [budget] = calls(eng, cid, "personal_budget")
    assert budget["inputs"]["carer_support"] == {"level": "moderate", "source": "carers_assessment"}
    out = budget["output"]
    assert (out["points_before_carer_deduction"], out["total_points"]) == (18, 16)
    assert (out["indicative_amount"], out["final_amount"], out["needs_approval"]) == ("17745.45", "18345.45", False)
    assert out["carer_support"] == {"level": "moderate", "amount": "600.00", "added_to_budget": True,
                                    "source": "carers_assessment"}
    [budget_letter] = letters(eng, cid, "budget_letter")
    assert "Your personal budget is £18,345.45 a year" in budget_letter
    assert "Your budget includes £600.00 a year to support your carer." in budget_letter
    assert "£600.00 a year is added to support your carer (carer’s assessment level: moderate)." in out["explanation"]
    assert "low need, 5 points, reduced to 3 because your carer helps" in budget_letter
    # Susan's own support plan (carers_support_plan, tests/test_carers.py) goes on beside Peter's
    assert sorted(t["element_id"] for t in open_tasks(eng, cid)) == ["plan_carer_support", "write_plan"]
    assert "approve_budget" not in completed_route(eng, cid)

    complete(eng, cid, "write_plan", plan())
    sign = task(eng, cid, "sign_off_plan")
    assert (sign["team"], sign["form"]) == ("team_manager", "plan_sign_off")
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    [plan_letter] = letters(eng, cid, "support_plan_letter")
    assert "Your co-ordinating worker is Jane Smith, social worker" in plan_letter
    assert "We will first review your plan on 15 April 2031" in plan_letter  # sign-off + 42 days: Easter Monday
    assert "managed by the council" in plan_letter
    assert instances(eng, cid, "direct_payment_review") == []

    # the first review: nothing at 42 days (a bank holiday), the review task the next day, for social work
    eng.advance_clock(timedelta(days=42))
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["plan_carer_support"]  # Susan's plan waits
    eng.advance_clock(timedelta(days=1))
    review = task(eng, cid, "review_plan")
    assert (review["team"], review["form"]) == ("social_work", "review")
    assert fired(eng, cid) == ["wait_for_review"]
    assert fired_at(eng, cid, "wait_for_review")[0].startswith("2031-04-15T09:00")
    # the escalation is due after the grace period: 56 days after sign-off, the 6-8 week limit
    assert review["due_at"] == START + timedelta(days=56)
    assert completed_route(eng, cid) == ["assess_needs", "assess_carer", "score_needs", "write_plan",
                                         "sign_off_plan"]
    # Peter's and Susan's assessments, then the long-term service; the review is an event once it is done
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION)]
    assert [r["client_type"] for r in cld_full(eng, cid)] == ["Service User", "Carer", "Service User"]


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
    assert "A manager has checked and approved this budget." in letter
    assert "We will write to you when it has been approved" not in letter
    assert completed_route(eng, cid) == ["assess_needs", "score_needs", "approve_budget", "score_needs",
                                         "approve_budget"]
    task(eng, cid, "write_plan")
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING)]  # no service until sign-off


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
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING)]


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
    [letter] = letters(eng, cid, "review_outcome_letter")  # the person is told what the review found and why
    assert "Your needs have changed, so we will assess them again." in letter
    assert "What has changed: Peter had a stroke and now needs help at night" in letter
    assert "Your personal budget stays at £17,745.45 a year." in letter
    assert "A social worker will contact you to assess your needs again." in letter

    # the reassessment leads to a recalculated budget
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "toilet_needs",
                                                  "using_home_safely"))
    complete(eng, cid, "score_needs", ras(personal_care="high", safety_and_supervision="moderate",
                                          nutrition="low"))
    assert calls(eng, cid, "personal_budget")[1]["output"]["final_amount"] == "36600.00"  # 33 points
    task(eng, cid, "approve_budget")
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(FIRST_REVIEW), day(FIRST_REVIEW), TO_REASSESSMENT),
                                  (ASSESSMENT, day(FIRST_REVIEW), day(FIRST_REVIEW), TO_SUPPORT_PLANNING)]
    assert cld_full(eng, cid)[2]["review_reason"] == "Planned"


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
    [letter] = letters(eng, cid, "review_outcome_letter")  # the person is told the cut did not happen
    # a refused cut is not described to the person as a proposal (issue 11, tried as a social worker)
    assert "Your personal budget stays the same: £17,745.45 a year. " \
           "We only reduce a budget when your needs or circumstances change." in letter
    assert "12,000" not in letter and "changing your personal budget" not in letter
    assert "We will review your plan with you again within 12 months." in letter
    reviews = instances(eng, cid, "review")
    assert len(reviews) == 2
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == reviews[1]["id"]][0]
    assert started["data"]["data"]["first"] is False
    assert started["data"]["data"]["budget_amount"] == "17745.45"  # unchanged
    assert completed_route(eng, cid)[-2:] == ["review_plan", "reduction_refused"]
    # the refused cut changed nothing
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(FIRST_REVIEW), day(FIRST_REVIEW), NO_CHANGE)]


def test_a_refused_reduction_with_a_recorded_change_goes_to_reassessment(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 9000})
    complete(eng, cid, "reduction_refused", {"decision": "record_change",
                                             "what_changed": "Susan now lives with Peter and helps every day"})
    assert len(instances(eng, cid, "needs_assessment")) == 2
    task(eng, cid, "assess_needs")
    assert len(instances(eng, cid, "review")) == 1
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(FIRST_REVIEW), day(FIRST_REVIEW), TO_REASSESSMENT),
                                  (ASSESSMENT, day(FIRST_REVIEW), None, None)]


def test_an_increase_at_review_is_allowed_and_carried_to_the_next_review(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 19000})
    [check] = calls(eng, cid, "check_budget_change")
    assert check["output"]["allowed"] is True and check["output"]["direction"] == "increase"
    nxt = instances(eng, cid, "review")[1]
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == nxt["id"]][0]
    assert started["data"]["data"]["budget_amount"] == "19000.00"
    assert eng.get_case(cid)["data"]["current_budget_amount"] == "19000.00"  # what a requested review starts from
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(FIRST_REVIEW), day(FIRST_REVIEW), TO_SUPPORT_PLANNING)]


def test_an_annual_review_that_goes_overdue_is_escalated_to_the_team_manager(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True})
    assert calls(eng, cid, "check_budget_change") == []
    reviews = instances(eng, cid, "review")
    assert [r["status"] for r in reviews] == ["completed", "waiting"]
    first_done = START + timedelta(days=FIRST_REVIEW)

    # the annual review: 12 months after the last one
    eng.advance_clock(to=first_done + relativedelta(months=12) - timedelta(minutes=1))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(minutes=1))
    review = task(eng, cid, "review_plan")
    assert review["team"] == "social_work"
    assert fired_at(eng, cid, "wait_for_review")[1].startswith("2032-04-15T09:00")

    # not done within the 14-day grace: escalated, and the review itself stays open
    eng.advance_clock(timedelta(days=14))
    overdue = task(eng, cid, "review_overdue")
    assert (overdue["team"], overdue["form"]) == ("team_manager", "review_overdue")
    assert fired(eng, cid) == ["wait_for_review", "wait_for_review", "review_overdue_timer"]
    assert fired_at(eng, cid, "review_overdue_timer")[0].startswith("2032-04-29T09:00")
    task(eng, cid, "review_plan")
    complete(eng, cid, "review_overdue", {"action_taken": "Review booked for next week"}, actor="manager")
    complete(eng, cid, "review_plan", {"needs_changed": False})
    assert len(instances(eng, cid, "review")) == 3
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(FIRST_REVIEW), day(FIRST_REVIEW), NO_CHANGE),
                                  (REVIEW, "2032-04-15", "2032-04-29", NO_CHANGE)]


def test_a_shorter_review_frequency_is_used_for_later_reviews(eng):
    cid = to_first_review(eng, months=6)
    complete(eng, cid, "review_plan", {"needs_changed": False})
    eng.advance_clock(to=START + timedelta(days=FIRST_REVIEW) + relativedelta(months=6))
    task(eng, cid, "review_plan")
    assert fired_at(eng, cid, "wait_for_review")[1].startswith("2031-10-15T09:00")
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(FIRST_REVIEW), day(FIRST_REVIEW), NO_CHANGE)]


def test_a_direct_payment_is_reviewed_before_six_months_then_within_twelve(eng):
    cid = to_plan(eng, money_management="direct_payment")
    [plan_letter] = letters(eng, cid, "support_plan_letter")
    assert "as a direct payment" in plan_letter
    assert ("start_dp_review", "direct_payment_review") in children_started(eng, cid)
    assert len(instances(eng, cid, "review")) == 1  # the ordinary review cycle runs as well

    def dp_tasks():
        return [t for t in open_tasks(eng, cid) if t["element_id"] == "review_direct_payment"]

    # due at direct_payment_first_review_due (P5M), before the 6-month limit of reg 7: Sunday 3 August 2031,
    # so the next working day
    eng.advance_clock(to=START + relativedelta(months=5) + timedelta(days=1) - timedelta(minutes=1))
    assert dp_tasks() == []
    eng.advance_clock(timedelta(minutes=1))
    [dp] = dp_tasks()
    assert (dp["team"], dp["form"]) == ("social_work", "direct_payment_review")  # the team that decides it
    assert len(fired_at(eng, cid, "wait_for_dp_review")) == 1
    assert fired_at(eng, cid, "wait_for_dp_review")[0].startswith("2031-08-04T09:00")
    eng.complete_task(dp["id"], {"used_to_meet_needs": True, "records_kept": True, "balance": 820.5,
                                 "outcome": "continue"}, actor="social_worker1")
    done = eng.now()

    eng.advance_clock(to=done + relativedelta(months=12) - timedelta(minutes=1))
    assert dp_tasks() == []
    eng.advance_clock(timedelta(minutes=1))
    [dp2] = dp_tasks()
    assert dp2["team"] == "social_work"
    second = datetime.fromisoformat(fired_at(eng, cid, "wait_for_dp_review")[1].replace("Z", "+00:00"))
    assert second <= done + relativedelta(months=12)
    assert second.isoformat().startswith("2032-08-04T09:00")  # 12 months after the first, a working day
    assert len(instances(eng, cid, "direct_payment_review")) == 2

    # ending the direct payment: social work arranges the support instead, and the cycle ends
    with pytest.raises(ValidationError):  # an outcome other than "continue" needs its reasons
        eng.complete_task(dp2["id"], {"used_to_meet_needs": False, "records_kept": False,
                                      "outcome": "end_direct_payment"})
    eng.complete_task(dp2["id"], {"used_to_meet_needs": False, "records_kept": False,
                                  "concerns": "Money not spent on care", "outcome": "end_direct_payment",
                                  "outcome_reason": "Peter asks the council to arrange his care instead"})
    change = task(eng, cid, "arrange_change")
    assert (change["team"], change["form"]) == ("social_work", "direct_payment_change")
    complete(eng, cid, "arrange_change", {"effective_from": "2032-09-13",
                                          "what_was_arranged": "Council-arranged home care from Northtown Care"})
    [letter] = letters(eng, cid, "direct_payment_letter")  # the person is told, with the reasons and the date
    assert "Your direct payment is ending" in letter
    assert "We have decided to stop it from 13 September 2032." in letter
    # the worker's note is quoted as theirs and what replaces it is given with its date (read as Peter)
    assert "The reason your worker recorded: \u201cPeter asks the council to arrange his care instead.\u201d" in letter
    assert "What we have arranged from 13 September 2032: Council-arranged home care from Northtown Care." in letter
    assert len(instances(eng, cid, "direct_payment_review")) == 2
    assert instances(eng, cid, "direct_payment_review")[1]["status"] == "completed"
    assert eng.get_case(cid)["data"]["direct_payment_ended_at"] == eng.now().isoformat()
    # only the care review (never done, so escalated long ago) is left: the direct payment has no task
    assert sorted(t["element_id"] for t in open_tasks(eng, cid)) == ["review_overdue", "review_plan"]
    # the direct payment reviews are financial monitoring, not CLD events (the care review is still open);
    # ending the direct payment ends the Direct Payment service and starts support the council arranges within
    # Peter's personal budget (a council-managed personal budget) from the date the change takes effect
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), "2032-09-13", PROVISION),
                                  (SERVICE, "2032-09-13", None, PROVISION)]
    assert services(eng, cid) == [(LT_COMMUNITY, "Direct Payment"), (LT_COMMUNITY, "CASSR Managed Personal Budget")]


# ---------------------------------------------------------------- impact assessment and carer support


def test_costs_the_ras_does_not_capture_are_added_as_uplifts_shown_in_the_letter_and_count_towards_approval(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras({"impact_assessment_needed": True}, **SMALL))
    impact = task(eng, cid, "impact_assessment")
    assert (impact["team"], impact["form"]) == ("social_work", "impact_assessment")
    [indicative] = calls(eng, cid, "personal_budget")
    assert (indicative["output"]["final_amount"], indicative["output"]["needs_approval"]) == ("17745.45", False)
    assert letters(eng, cid, "budget_letter") == []  # nothing goes out before the uplifts are costed

    with pytest.raises(ValidationError) as err:  # each uplift needs a reason and an amount above zero
        complete(eng, cid, "impact_assessment", {"uplifts": [{"reason": "", "amount": 0}]})
    assert {e["field"] for e in err.value.errors} == {"uplifts/0/reason", "uplifts/0/amount"}
    complete(eng, cid, "impact_assessment", {"uplifts": [
        {"reason": "Two carers for hoisting twice a day", "amount": 9000},
        {"reason": "Specialist dementia provider extra cost", "amount": 3500.5}]})

    recalculated = calls(eng, cid, "personal_budget")[1]
    assert recalculated["element_id"] == "recalculate_budget"
    out = recalculated["output"]
    assert (out["indicative_amount"], out["uplifts_total"], out["final_amount"]) == (
        "17745.45", "12500.50", "30245.95")
    # the uplifted total is above the £30,000 threshold: a manager approves it
    assert out["needs_approval"] is True
    task(eng, cid, "approve_budget")
    complete(eng, cid, "approve_budget", {"approved": True}, actor="manager")
    [letter] = letters(eng, cid, "budget_letter")
    assert "Your 16 points give £17,745.45 a year" in letter
    assert "Two carers for hoisting twice a day: £9,000.00" in letter
    assert "Specialist dementia provider extra cost: £3,500.50" in letter
    assert "Your personal budget is £30,245.95 a year." in letter
    assert "A manager has checked and approved this budget." in letter
    assert completed_route(eng, cid) == ["assess_needs", "score_needs", "impact_assessment", "approve_budget"]
    started = [e for e in events(eng, cid, "instance.started")
               if e["instance_id"] == instances(eng, cid, "support_plan")[0]["id"]][0]
    assert started["data"]["data"]["budget"]["final_amount"] == "30245.95"
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING)]


def test_carer_support_needs_the_worker_records_are_added_without_a_carers_assessment(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    assert instances(eng, cid, "carers_assessment") == []
    complete(eng, cid, "score_needs", ras({"carer_support_level": "high"}, **SMALL))
    [budget] = calls(eng, cid, "personal_budget")
    assert budget["output"]["carer_support"] == {"level": "high", "amount": "1200.00", "added_to_budget": True,
                                                 "source": "worker"}
    assert budget["output"]["final_amount"] == "18945.45"  # 17,745.45 + 1,200
    [letter] = letters(eng, cid, "budget_letter")
    assert "Your budget includes £1,200.00 a year to support your carer." in letter
    assert ("£1,200.00 a year is added to support your carer (carer support needs recorded by your worker: high)."
            in budget["output"]["explanation"])
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING)]


def test_a_carer_found_not_eligible_adds_no_carer_support_allocation(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "assess_needs",
             assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True))
    not_eligible = dict(carer_assessment("low"), needs_from_caring=False)
    complete(eng, cid, "assess_carer", not_eligible)
    assert eng.get_case(cid)["data"]["carer_assessment"]["eligible"] is False
    complete(eng, cid, "score_needs", ras(**SMALL))
    [budget] = calls(eng, cid, "personal_budget")
    assert budget["inputs"]["carer_support"] is None
    assert (budget["output"]["carer_support"], budget["output"]["final_amount"]) == (None, "17745.45")
    assert "to support your carer" not in letters(eng, cid, "budget_letter")[0]
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (ASSESSMENT, day(0), day(0), NFA_NO_SERVICES)]


# ---------------------------------------------------------------- the first review's 6-8 week window


@pytest.mark.parametrize("after, latest, grace, due_day, overdue_day", [
    ("P42D", "P56D", "P14D", 43, 56),  # as shipped: day 42 is Easter Monday, the review is the day after
    ("P35D", "P45D", "P14D", 35, 45),  # the limit, not 35 + 14 days' grace
    ("P6W", "P70D", "P7D", 43, 70),  # a later limit; the later reviews' grace plays no part
], ids=["shipped", "earlier", "later"])
def test_the_first_review_is_escalated_at_first_review_latest(eng, monkeypatch, after, latest, grace, due_day,
                                                              overdue_day):
    with_settings(monkeypatch, first_review_after_sign_off=after, first_review_latest=latest,
                  review_overdue_grace=grace)
    cid = to_plan(eng)
    due = START + timedelta(days=due_day)
    assert f"We will first review your plan on {due.day} {due:%B %Y}" in letters(eng, cid, "support_plan_letter")[0]
    eng.advance_clock(to=due - timedelta(minutes=1))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(minutes=1))
    review = task(eng, cid, "review_plan")
    assert review["due_at"] == START + timedelta(days=overdue_day)
    eng.advance_clock(to=START + timedelta(days=overdue_day) - timedelta(minutes=1))
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["review_plan"]
    eng.advance_clock(timedelta(minutes=1))
    assert task(eng, cid, "review_overdue")["team"] == "team_manager"
    assert [at[:16] for at in fired_at(eng, cid, "review_overdue_timer")] == [
        (START + timedelta(days=overdue_day)).isoformat()[:16]]
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION)]


def test_a_first_review_limit_before_the_first_review_is_an_error_naming_both_settings(eng, monkeypatch):
    with_settings(monkeypatch, first_review_after_sign_off="P42D", first_review_latest="P40D")
    cid = to_plan(eng)
    [review] = instances(eng, cid, "review")
    assert review["status"] == "error"
    [incident] = [i for i in eng.incidents() if i["instance_id"] == review["id"]]
    assert "first_review_latest (P40D) must be later than first_review_after_sign_off (P42D)" in incident["message"]
    assert incident["element_id"] == "review_when"
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION)]


# ---------------------------------------------------------------- requested (unplanned) reviews


def test_a_review_the_carer_asks_for_is_done_at_once_and_as_a_full_review_moves_the_next_planned_one(eng):
    cid = to_plan(eng)
    eng.advance_clock(timedelta(days=20))
    res = request_review(eng, cid, "Carer related", "carer", "Susan has been ill and cannot help in the evenings")
    assert res.status == "waiting"
    review = task(eng, cid, "review_plan")
    assert (review["instance_id"], review["team"], review["form"]) == (res.instance_id, "social_work", "review")
    # unplanned_review_within: 14 days, Sunday 6 April, so the next working day
    assert review["due_at"] == START + timedelta(days=20 + 14 + 1)
    assert fired(eng, cid) == []  # straight to the task: no wait, no check of the cycle
    assert [c["element_id"] for c in calls(eng, cid, "local_settings")][-1] == "review_start"  # read as it starts
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True, "full_review": True})
    # a requested review starts no other review: the planned cycle is still waiting
    assert [(r["id"] == res.instance_id, r["status"]) for r in instances(eng, cid, "review")] == [
        (False, "waiting"), (True, "completed")]
    assert eng.get_case(cid)["data"]["last_full_review_at"] == (START + timedelta(days=20)).isoformat()

    # the planned review was due at 6 weeks; a full review since moves it to 12 months after that review
    eng.advance_clock(to=START + timedelta(days=FIRST_REVIEW))
    assert open_tasks(eng, cid) == []
    assert fired(eng, cid) == ["wait_for_review"]
    eng.advance_clock(to=START + timedelta(days=20) + relativedelta(months=12) - timedelta(minutes=1))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(minutes=1))
    planned = task(eng, cid, "review_plan")
    assert planned["instance_id"] != res.instance_id
    assert fired_at(eng, cid, "wait_for_review")[1].startswith("2032-03-23T09:00")
    assert planned["due_at"] == datetime(2032, 4, 6, 9, 0, tzinfo=timezone.utc)  # + review_overdue_grace

    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(20), day(20), NO_CHANGE)]
    assert (cld_full(eng, cid)[2]["review_reason"], cld_full(eng, cid)[2]["review_type"]) == (
        "Carer related", "Unplanned")
    complete(eng, cid, "review_plan", {"needs_changed": False})
    assert [r["review_reason"] for r in cld_full(eng, cid) if r["event_type"] == REVIEW] == [
        "Carer related", "Planned"]


def test_a_requested_review_that_is_not_a_full_review_leaves_the_planned_date(eng):
    cid = to_plan(eng)
    eng.advance_clock(timedelta(days=10))
    request_review(eng, cid, "Hospital", "worker", "Home after a fall: check the morning visit still fits")
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True})
    eng.advance_clock(to=START + timedelta(days=FIRST_REVIEW))
    planned = task(eng, cid, "review_plan")
    assert [at[:16] for at in fired_at(eng, cid, "wait_for_review")] == ["2031-04-15T09:00"]
    assert planned["due_at"] == START + timedelta(days=56)
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION),
                                  (REVIEW, day(10), day(10), NO_CHANGE)]
    assert cld_full(eng, cid)[2]["review_reason"] == "Hospital"


def test_a_review_for_a_safeguarding_concern_that_finds_changed_needs_leads_to_a_new_plan_and_one_cycle(eng):
    cid = to_plan(eng)
    eng.advance_clock(timedelta(days=7))
    request_review(eng, cid, "Safeguarding concern", "provider", "Bruising found; Peter now struggles to stand")
    complete(eng, cid, "review_plan", {"needs_changed": True,
                                       "what_changed": "Peter now needs two carers to stand and transfer"})
    assert children_started(eng, cid)[-1] == ("start_reassessment", "needs_assessment")
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan())
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    assert [r["status"] for r in instances(eng, cid, "review")] == ["waiting", "completed", "waiting"]

    # the old cycle falls due at 6 weeks after the first plan, finds a newer plan and ends quietly
    eng.advance_clock(to=START + timedelta(days=FIRST_REVIEW))
    assert open_tasks(eng, cid) == []
    assert [r["status"] for r in instances(eng, cid, "review")] == ["completed", "completed", "waiting"]
    # the new plan's first review, 6 weeks after its sign-off
    eng.advance_clock(to=START + timedelta(days=49))
    task(eng, cid, "review_plan")
    assert [a[:16] for a in fired_at(eng, cid, "wait_for_review")] == ["2031-04-15T09:00", "2031-04-21T09:00"]
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), day(7), PROVISION),
                                  (REVIEW, day(7), day(7), TO_REASSESSMENT),
                                  (ASSESSMENT, day(7), day(7), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(7), None, PROVISION)]
    assert cld_full(eng, cid)[2]["review_reason"] == "Safeguarding concern"


def test_a_review_request_without_who_asked_or_with_a_reason_outside_the_code_list_is_refused(eng):
    cid = to_plan(eng)
    missing = eng.start("review", case_id=cid, data={"review_reason": "Hospital", "review_request_note": "Fall"})
    assert missing.status == "error"
    assert "review_requested_by must be one of person, carer, provider, worker, other" in \
        missing.incident["message"]
    wrong = request_review(eng, cid, "Because", "person", "Peter rang")
    assert "review_reason must be 'Planned' or one of Hospital, Carer related, Safeguarding concern, " \
           "Provider Failure, Change in Commissioning arrangements, Other Reason, got 'Because'" in \
        wrong.incident["message"]
    no_plan = eng.start("needs_assessment", data={"person": PETER}).case_id
    assert "this case has no signed-off support plan to review" in \
        request_review(eng, no_plan, "Other Reason", "other", "GP letter").incident["message"]
    assert [t["element_id"] for t in open_tasks(eng, cid)] == []
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), None, PROVISION)]


# ---------------------------------------------------------------- direct payment reviews


def test_a_direct_payment_review_not_done_in_time_is_escalated_to_the_team_manager(eng):
    cid = to_plan(eng, money_management="direct_payment")
    # direct_payment_first_review_due, before the 6-month limit: Sunday 3 August 2031, so Monday 4 August
    due = START + relativedelta(months=5) + timedelta(days=1)
    eng.advance_clock(to=due)
    dp = task(eng, cid, "review_direct_payment")
    assert dp["due_at"] == due + timedelta(days=14)  # direct_payment_review_overdue_grace
    eng.advance_clock(to=due + timedelta(days=14) - timedelta(minutes=1))
    assert "dp_review_overdue" not in [t["element_id"] for t in open_tasks(eng, cid)]
    eng.advance_clock(timedelta(minutes=1))
    overdue = task(eng, cid, "dp_review_overdue")
    assert (overdue["team"], overdue["form"]) == ("team_manager", "direct_payment_review_overdue")
    task(eng, cid, "review_direct_payment")  # the review itself stays open
    complete(eng, cid, "dp_review_overdue", {"action_taken": "Visit booked with Peter's daughter"}, actor="manager")
    complete(eng, cid, "review_direct_payment", {"used_to_meet_needs": True, "records_kept": True,
                                                 "outcome": "continue_with_conditions",
                                                 "outcome_reason": "Monthly statements to finance for 3 months"})
    assert [i["status"] for i in instances(eng, cid, "direct_payment_review")] == ["completed", "waiting"]
    assert cld_rows(eng, cid)[:2] == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                      (SERVICE, day(0), None, PROVISION)]


def test_a_suspected_breach_is_reviewed_at_once_and_a_managed_account_ends_the_direct_payment(eng):
    cid = to_plan(eng, money_management="direct_payment")
    eng.advance_clock(timedelta(days=30))
    res = eng.start("direct_payment_review", case_id=cid, actor="finance_officer", data={
        "dp_review_trigger": "breach", "dp_review_note": "Statements show £2,400 paid to a relative, no invoices"})
    dp = task(eng, cid, "review_direct_payment")
    assert (dp["instance_id"], dp["team"]) == (res.instance_id, "social_work")
    assert dp["due_at"] == START + timedelta(days=30 + 14)  # direct_payment_unplanned_review_within
    complete(eng, cid, "review_direct_payment", {
        "used_to_meet_needs": False, "records_kept": False, "breach": ["misuse", "unexplained_surplus"],
        "surplus_to_recover": 2400, "outcome": "managed_account",
        "outcome_reason": "Money used for other things; Peter agrees to a managed account"}, actor="social_worker1")
    change = task(eng, cid, "arrange_change")
    assert change["team"] == "social_work"
    complete(eng, cid, "arrange_change", {"effective_from": "2031-04-07", "provider": "Northtown Care",
                                          "what_was_arranged": "Managed account with Northtown Care"})
    case = eng.get_case(cid)["data"]
    assert case["direct_payment_arrangement"]["outcome"] == "managed_account"
    assert case["direct_payment_ended_at"] == (START + timedelta(days=30)).isoformat()
    # the scheduled review at 6 months finds no direct payment and ends without a task
    eng.advance_clock(to=START + relativedelta(months=6))
    assert "review_direct_payment" not in [t["element_id"] for t in open_tasks(eng, cid)]
    assert [i["status"] for i in instances(eng, cid, "direct_payment_review")] == ["completed", "completed"]
    assert fired(eng, cid).count("wait_for_dp_review") == 1
    # direct payment reviews are not CLD events (the first care review, never done, is not one yet either);
    # the managed account is a new Service row, the same long-term support, from the date it took effect
    assert cld_rows(eng, cid) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                  (SERVICE, day(0), "2031-04-07", PROVISION),
                                  (SERVICE, "2031-04-07", None, PROVISION)]
    assert services(eng, cid) == [(LT_COMMUNITY, "Direct Payment"), (LT_COMMUNITY, "CASSR Managed Personal Budget")]


def test_a_loss_of_capacity_moves_the_payment_to_an_authorised_person_and_the_scheduled_reviews_go_on(eng):
    cid = to_plan(eng, money_management="direct_payment")
    eng.advance_clock(timedelta(days=60))
    res = eng.start("direct_payment_review", case_id=cid, data={
        "dp_review_trigger": "capacity", "dp_review_note": "Peter can no longer manage the account"})
    complete(eng, cid, "review_direct_payment", {
        "used_to_meet_needs": True, "records_kept": True, "able_to_manage": False, "has_capacity": False,
        "outcome": "authorised_person", "recipient": {"name": "Susan Clarke", "relationship": "daughter"},
        "outcome_reason": "Susan agrees to receive and manage it in his best interests (s.32)"})
    complete(eng, cid, "arrange_change", {
        "effective_from": "2031-05-05", "nominated_person": {"name": "Susan Clarke", "relationship": "daughter"},
        "what_was_arranged": "Direct payment paid to Susan as authorised person"})
    case = eng.get_case(cid)["data"]
    assert case["direct_payment_arrangement"]["outcome"] == "authorised_person"
    assert case.get("direct_payment_ended_at") is None
    # the triggered review starts no further review; the scheduled one is still due at 6 months
    assert [(i["id"] == res.instance_id, i["status"]) for i in instances(eng, cid, "direct_payment_review")] == [
        (False, "waiting"), (True, "completed")]
    eng.advance_clock(to=START + relativedelta(months=6))
    assert task(eng, cid, "review_direct_payment")["team"] == "social_work"
    # paid to an authorised person it is still a direct payment: the service row goes on unchanged
    assert cld_rows(eng, cid)[:2] == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                      (SERVICE, day(0), None, PROVISION)]
    assert services(eng, cid) == [(LT_COMMUNITY, "Direct Payment")]


def test_a_direct_payment_review_trigger_outside_the_list_or_without_a_direct_payment_is_refused(eng):
    cid = to_plan(eng, money_management="direct_payment")
    wrong = eng.start("direct_payment_review", case_id=cid, data={"dp_review_trigger": "audit",
                                                                 "dp_review_note": "Annual audit"})
    assert "dp_review_trigger must be one of scheduled, breach, capacity, concern, got 'audit'" in \
        wrong.incident["message"]
    council = to_plan(eng)  # a council-managed plan: nothing to review
    none = eng.start("direct_payment_review", case_id=council, data={"dp_review_trigger": "breach",
                                                                    "dp_review_note": "Provider report"})
    assert "this case has no direct payment in place to review" in none.incident["message"]
    assert "review_direct_payment" not in [t["element_id"] for t in open_tasks(eng, council)]
    assert cld_rows(eng, council) == [(ASSESSMENT, day(0), day(0), TO_SUPPORT_PLANNING),
                                      (SERVICE, day(0), None, PROVISION)]
