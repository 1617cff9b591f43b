"""End to end: hospital discharge (Discharge to Assess) and adult safeguarding (Care Act s.42).

Runs the real diagrams in processes/ (deployed together, as `make run` does) with the real
handlers and forms on the simulated clock (START is Monday 3 March 2031, 09:00 UTC). Each test
checks the route (task element ids), the team of each task, the timers that fired and when, and
the handler calls. Deadlines are escalating SLAs: a passed deadline raises a team manager task
and the stage task stays open.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from tests.case_helpers import (
    completed_route,
    events,
    fired,
    fired_at,
    handlers_called,
    instances,
    started_data,
    the_task,
)
from tests.conftest import START

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy([ROOT / "processes"])
    yield engine
    engine.db.dispose()


# ---------------------------------------------------------------- helpers

def handler_output(eng, case_id, element_id):
    [out] = [e["data"]["output"] for e in events(eng, case_id, "handler.called")
             if e["data"]["element_id"] == element_id]
    return out


def open_tasks(eng, case_id):
    return sorted((t["element_id"], t["team"]) for t in eng.list_tasks(case_id=case_id))


def complete(eng, case_id, element_id, data, actor="worker1"):
    return eng.complete_task(the_task(eng, case_id, element_id)["id"], data, actor=actor)


def at(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


HARRIET = {"name": "Harriet Cole", "age": 84, "address": "12 Orchard Close, Northby", "area": "north"}
MOHAMMAD = {"name": "Mohammad Rahman", "age": 28, "address": "Flat 5, 3 Canal Street, Southby", "area": "south"}


def response(**changes):
    data = {"ward_contacted": True, "person_views": "Wants to go home; husband will help between calls",
            "can_go_home": True, "needs_new_support": True, "needs_bed_based_recovery": False,
            "needs_care_home": False}
    data.update(changes)
    return data


def refer(eng, person=HARRIET, reason="Advanced dementia; admitted with a chest infection", case_id=None):
    res = eng.start("hospital_discharge", case_id=case_id, actor="ward7",
                    data={"person": person, "reason": reason, "ward": "Ward 7"})
    assert [(t["element_id"], t["team"], t["form"]) for t in res.ready_tasks] == [
        ("respond_to_referral", "hospital_team", "discharge_response")]
    return res


# ---------------------------------------------------------------- hospital discharge

def test_harriet_pathway_1_home_with_reablement_and_the_91_day_follow_up(eng):
    res = refer(eng)
    cid = res.case_id
    assert handlers_called(eng, cid) == [("load_settings", "local_settings"), ("set_response_deadline", "deadline")]
    task = the_task(eng, cid, "respond_to_referral")
    assert task["due_at"] == datetime(2031, 3, 4, 17, 0, tzinfo=UTC)  # next working day, 17:00 GMT
    eng.advance_clock(timedelta(hours=5))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "respond_to_referral", {"ward_contacted": True, "can_go_home": "maybe"})
    assert {e["field"] for e in err.value.errors} == {"person_views", "can_go_home", "needs_new_support",
                                                       "needs_bed_based_recovery", "needs_care_home"}
    complete(eng, cid, "respond_to_referral", response(), actor="hospital_sw1")
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["pathway"] == 1 and "reablement" in data["pathway_reason"]
    assert open_tasks(eng, cid) == [("record_discharge", "hospital_team")]

    eng.advance_clock(timedelta(days=1))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "record_discharge", {"discharge_ready_date": "4 March", "discharge_date": "2031-03-04"})
    assert {e["field"] for e in err.value.errors} == {"discharge_ready_date", "delay_reason"}
    done = complete(eng, cid, "record_discharge", {"discharge_ready_date": "2031-03-03", "discharge_date": "2031-03-04",
                                                   "delay_reason": "waiting_for_care_at_home"})
    [reablement] = done.started_instances
    assert done.status == "completed"
    assert eng.instance_snapshot(res.instance_id)["data"]["days_ready_to_discharge"] == 1
    assert instances(eng, cid) == [("hospital_discharge", "completed"), ("reablement", "waiting")]
    start = started_data(eng, cid, reablement)
    assert start["from_hospital"] is True and start["age"] == 84 and start["discharge_date"] == "2031-03-04"
    assert start["person"]["name"] == "Harriet Cole" and start["contact_date"] == "2031-03-03"
    assert fired(eng, cid) == []  # responded on time: no escalation
    assert [e["data"]["element_id"] for e in events(eng, cid, "instance.child_started")] == ["start_reablement"]

    # four calls a day, reduced to two after a short time: reablement ends at her best independence
    complete(eng, cid, "plan_reablement", {"goals": ["Manage at home with her husband"], "setting": "home",
                                           "start_type": "hospital_discharge", "visits_per_day": 4})
    eng.advance_clock(timedelta(days=20))
    done = complete(eng, cid, "deliver_reablement", {"outcome": "best_independence_reached",
                                                     "summary": "Two calls a day; husband manages between calls"})
    [follow_up] = done.started_instances
    assert started_data(eng, cid, follow_up)["discharge_date"] == "2031-03-04"
    assert instances(eng, cid)[-1] == ("hospital_follow_up", "waiting")
    eng.advance_clock(to=datetime(2031, 6, 2, 23, 0, tzinfo=UTC))  # 90 days after discharge
    assert eng.list_tasks(case_id=cid) == []
    eng.advance_clock(to=datetime(2031, 6, 3, 1, 0, tzinfo=UTC))  # 91 days
    assert fired(eng, cid) == ["wait_after_discharge"]
    assert fired_at(eng, cid, "wait_after_discharge")[0].startswith("2031-06-03")
    assert open_tasks(eng, cid) == [("check_still_at_home", "reablement")]
    assert completed_route(eng, cid) == ["respond_to_referral", "record_discharge", "plan_reablement",
                                         "deliver_reablement"]


def test_mohammad_pathway_2_recovery_window_then_needs_assessment_after_28_days(eng):
    res = refer(eng, MOHAMMAD, "Long hospital stay; complex emotional needs")
    cid = res.case_id
    complete(eng, cid, "respond_to_referral", response(
        can_go_home=False, needs_bed_based_recovery=True,
        person_views="Wants his own flat; multi-agency planning needed first"))
    assert eng.instance_snapshot(res.instance_id)["data"]["pathway"] == 2
    eng.advance_clock(timedelta(days=1))  # Tuesday 4 March, 09:00
    done = complete(eng, cid, "record_discharge", {"discharge_ready_date": "2031-02-10",
                                                   "discharge_date": "2031-03-04", "delay_reason": "waiting_for_bed"})
    assert done.status == "waiting" and done.started_instances == []
    snap = eng.instance_snapshot(res.instance_id)
    assert snap["data"]["days_ready_to_discharge"] == 22
    assert [(el, at(due)) for el, due in snap["timers"]] == [
        ("recovery_window", datetime(2031, 4, 1, 9, 0, tzinfo=UTC))]  # 28 days of recovery
    assert eng.list_tasks(case_id=cid) == []  # not assessed on the ward

    eng.advance_clock(timedelta(days=27))
    assert fired(eng, cid) == [] and instances(eng, cid) == [("hospital_discharge", "waiting")]
    eng.advance_clock(timedelta(days=1))
    assert fired(eng, cid) == ["recovery_window"]
    assert fired_at(eng, cid, "recovery_window")[0].startswith("2031-04-01T09:00")
    assert instances(eng, cid) == [("hospital_discharge", "completed"), ("needs_assessment", "waiting")]
    [assessment] = [i["id"] for i in eng.get_case(cid)["instances"] if i["process_id"] == "needs_assessment"]
    start = started_data(eng, cid, assessment)
    assert start["contact_date"] == "2031-04-01" and start["discharge_pathway"] == 2
    task = the_task(eng, cid, "assess_needs")
    assert task["team"] == "social_work" and task["instance_id"] == assessment
    assert task["due_at"] == datetime(2031, 4, 29, 17, 0, tzinfo=UTC)  # 28 days from the assessment request


def test_pathway_0_ends_at_home_and_pathway_3_starts_needs_assessment(eng):
    res = refer(eng, HARRIET)
    complete(eng, res.case_id, "respond_to_referral", response(needs_new_support=False))
    done = complete(eng, res.case_id, "record_discharge", {"discharge_ready_date": "2031-03-03",
                                                           "discharge_date": "2031-03-03", "delay_reason": "none"})
    assert done.status == "completed" and done.started_instances == []
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["pathway"] == 0 and data["days_ready_to_discharge"] == 0

    res = refer(eng, HARRIET)
    complete(eng, res.case_id, "respond_to_referral", response(can_go_home=False, needs_care_home=True))
    done = complete(eng, res.case_id, "record_discharge", {"discharge_ready_date": "2031-03-01",
                                                           "discharge_date": "2031-03-03",
                                                           "delay_reason": "waiting_for_care_home"})
    [assessment] = done.started_instances
    assert eng.instance_snapshot(res.instance_id)["data"]["pathway"] == 3
    assert instances(eng, res.case_id) == [("hospital_discharge", "completed"), ("needs_assessment", "waiting")]
    assert the_task(eng, res.case_id, "assess_needs")["instance_id"] == assessment


def test_a_friday_referral_not_answered_by_monday_escalates_to_the_team_manager(eng):
    eng.advance_clock(to=datetime(2031, 3, 7, 10, 0, tzinfo=UTC))  # Friday
    res = refer(eng)
    cid = res.case_id
    assert handler_output(eng, cid, "set_response_deadline")["due_date"] == "2031-03-10"  # Monday
    assert the_task(eng, cid, "respond_to_referral")["due_at"] == datetime(2031, 3, 10, 17, 0, tzinfo=UTC)
    eng.advance_clock(to=datetime(2031, 3, 10, 16, 59, tzinfo=UTC))
    assert fired(eng, cid) == [] and open_tasks(eng, cid) == [("respond_to_referral", "hospital_team")]
    eng.advance_clock(to=datetime(2031, 3, 10, 17, 0, tzinfo=UTC))
    assert fired(eng, cid) == ["response_overdue"]
    assert fired_at(eng, cid, "response_overdue")[0].startswith("2031-03-10T17:00")
    assert open_tasks(eng, cid) == [("escalate_response", "team_manager"), ("respond_to_referral", "hospital_team")]
    escalation = the_task(eng, cid, "escalate_response")
    assert escalation["form"] == "sla_escalation"
    assert [t["element_id"] for t in eng.list_tasks(team="team_manager")] == ["escalate_response"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(escalation["id"], {})
    assert [e["field"] for e in err.value.errors] == ["action_taken"]
    eng.complete_task(escalation["id"], {"action_taken": "Reallocated to the duty worker"}, actor="tm1")
    assert open_tasks(eng, cid) == [("respond_to_referral", "hospital_team")]  # the stage task stayed open
    complete(eng, cid, "respond_to_referral", response())
    assert open_tasks(eng, cid) == [("record_discharge", "hospital_team")]
    assert completed_route(eng, cid) == ["escalate_response", "respond_to_referral"]


def test_a_referral_before_easter_is_due_on_the_tuesday_after_the_bank_holidays(eng):
    eng.advance_clock(to=datetime(2031, 4, 10, 10, 0, tzinfo=UTC))  # Thursday before Good Friday 2031
    res = refer(eng)
    cid = res.case_id
    out = handler_output(eng, cid, "set_response_deadline")
    assert out["due_date"] == "2031-04-15" and out["due"] == "2031-04-15T16:00:00Z"  # 17:00 BST
    eng.advance_clock(to=datetime(2031, 4, 15, 15, 59, tzinfo=UTC))  # through Good Friday and Easter Monday
    assert fired(eng, cid) == []
    eng.advance_clock(to=datetime(2031, 4, 15, 16, 0, tzinfo=UTC))
    assert fired(eng, cid) == ["response_overdue"]
    assert open_tasks(eng, cid) == [("escalate_response", "team_manager"), ("respond_to_referral", "hospital_team")]


# ---------------------------------------------------------------- safeguarding

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


def test_safeguarding_s42_enquiry_with_escalated_strategy_discussion_review_at_6_weeks_and_closure(eng):
    res = eng.start("safeguarding", data={"person": {"name": "Joan Barker"}, "raised_by": "neighbour"})
    cid = res.case_id
    assert open_tasks(eng, cid) == [("record_concern", "safeguarding")]
    assert the_task(eng, cid, "record_concern")["due_at"] == datetime(2031, 3, 4, 17, 0, tzinfo=UTC)
    with pytest.raises(ValidationError) as err:  # the adult's desired outcomes are asked (MSP)
        complete(eng, cid, "record_concern", {**CONCERN, "desired_outcomes": None})
    assert [e["field"] for e in err.value.errors] == ["desired_outcomes"]
    complete(eng, cid, "record_concern", CONCERN, actor="sg_worker")
    assert open_tasks(eng, cid) == [("triage_decision", "safeguarding")]
    assert the_task(eng, cid, "triage_decision")["due_at"] == datetime(2031, 3, 4, 17, 0, tzinfo=UTC)
    complete(eng, cid, "triage_decision", S42, actor="sg_lead")
    task = the_task(eng, cid, "strategy_discussion")
    assert task["team"] == "safeguarding"
    assert task["due_at"] == datetime(2031, 3, 10, 17, 0, tzinfo=UTC)  # 5 working days after Monday 3 March

    eng.advance_clock(to=datetime(2031, 3, 10, 16, 59, tzinfo=UTC))
    assert fired(eng, cid) == []
    eng.advance_clock(timedelta(days=1))
    assert fired(eng, cid) == ["strategy_overdue"]
    assert fired_at(eng, cid, "strategy_overdue")[0].startswith("2031-03-10T17:00")
    assert open_tasks(eng, cid) == [("escalate_strategy", "team_manager"), ("strategy_discussion", "safeguarding")]
    complete(eng, cid, "escalate_strategy", {"action_taken": "Police availability chased; meeting booked"},
             actor="tm1")
    complete(eng, cid, "strategy_discussion", STRATEGY)  # Tuesday 11 March 16:59
    task = the_task(eng, cid, "enquiry")
    assert task["due_at"] == datetime(2031, 4, 8, 16, 59, tzinfo=UTC)  # about 4 weeks

    eng.advance_clock(timedelta(days=20))
    complete(eng, cid, "enquiry", {"findings": "Lodger withdrew £2,400; police investigating",
                                   "concern_substantiated": "yes", "source_of_risk": "known_to_adult"})
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "record_outcome", {"outcomes_asked": True, "outcomes_achieved": "mostly",
                                              "risk_outcome": "reduced", "plan_review_needed": True})
    assert {e["field"] for e in err.value.errors} == {"outcomes_achieved", "safeguarding_plan"}
    outcome_at = eng.now()
    complete(eng, cid, "record_outcome", {"outcomes_asked": True, "outcomes_achieved": "partially",
                                          "risk_outcome": "reduced", "plan_review_needed": True,
                                          "safeguarding_plan": "Lodger evicted; appointee manages money"})
    assert eng.list_tasks(case_id=cid) == []
    eng.advance_clock(timedelta(days=41))
    assert "wait_plan_review" not in fired(eng, cid)
    eng.advance_clock(timedelta(days=1))
    assert fired_at(eng, cid, "wait_plan_review") == [fired_at(eng, cid, "wait_plan_review")[0]]
    assert at(fired_at(eng, cid, "wait_plan_review")[0]) == outcome_at + timedelta(days=42)
    assert open_tasks(eng, cid) == [("review_plan", "safeguarding")]
    done = complete(eng, cid, "review_plan", {"plan_working": "yes", "risk_now": "removed", "next_step": "close",
                                              "adult_views": "Feels safe at home again"})
    assert done.status == "completed"
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["outcomes_achieved"] == "partially" and data["risk_outcome"] == "reduced"
    assert data["desired_outcomes"] == CONCERN["desired_outcomes"] and data["closed_at"].startswith("2031-")
    assert completed_route(eng, cid) == ["record_concern", "triage_decision", "escalate_strategy",
                                         "strategy_discussion", "enquiry", "record_outcome", "review_plan"]
    assert fired(eng, cid) == ["strategy_overdue", "wait_plan_review"]  # triage, decision, enquiry on time
    assert handlers_called(eng, cid) == [("load_settings", "local_settings"), ("set_triage_deadline", "deadline"),
                                         ("set_decision_deadline", "deadline"), ("set_strategy_deadline", "deadline")]
    assert handler_output(eng, cid, "set_strategy_deadline")["working_days"] == 5


def test_urgent_concern_strategy_discussion_due_next_working_day_and_late_triage_escalates(eng):
    res = eng.start("safeguarding", data={})
    cid = res.case_id
    eng.advance_clock(to=datetime(2031, 3, 4, 17, 0, tzinfo=UTC))
    assert fired(eng, cid) == ["triage_overdue"]
    assert open_tasks(eng, cid) == [("escalate_triage", "team_manager"), ("record_concern", "safeguarding")]
    complete(eng, cid, "record_concern", CONCERN)
    complete(eng, cid, "triage_decision", {**S42, "urgent": True})
    assert handler_output(eng, cid, "set_strategy_deadline")["working_days"] == 1
    assert the_task(eng, cid, "strategy_discussion")["due_at"] == datetime(2031, 3, 5, 17, 0, tzinfo=UTC)
    assert open_tasks(eng, cid) == [("escalate_triage", "team_manager"), ("strategy_discussion", "safeguarding")]


def test_no_further_action_with_advice_ends_after_the_decision(eng):
    res = eng.start("safeguarding", data={"person": {"name": "Kyle Morgan"}})
    cid = res.case_id
    concern = {k: v for k, v in CONCERN.items() if k != "desired_outcomes"}
    complete(eng, cid, "record_concern", {**concern, "abuse_types": ["self_neglect"], "immediate_risk": "none",
                                          "adult_views_sought": False,
                                          "why_views_not_sought": "Could not be reached; GP to follow up"})
    with pytest.raises(ValidationError) as err:  # advice must be recorded
        complete(eng, cid, "triage_decision", {"s42_criteria_met": "no", "decision": "no_further_action_with_advice",
                                               "urgent": False, "reason": "No care and support needs"})
    assert [e["field"] for e in err.value.errors] == ["advice_given"]
    done = complete(eng, cid, "triage_decision", {"s42_criteria_met": "no",
                                                  "decision": "no_further_action_with_advice", "urgent": False,
                                                  "reason": "No care and support needs",
                                                  "advice_given": "Signposted to the hoarding support group"})
    assert done.status == "completed"
    assert instances(eng, cid) == [("safeguarding", "completed")]
    assert completed_route(eng, cid) == ["record_concern", "triage_decision"]
    assert eng.advance_clock(timedelta(days=60)) == 0 and fired(eng, cid) == []
    assert ("set_strategy_deadline", "deadline") not in handlers_called(eng, cid)


def test_a_concern_raised_during_reablement_runs_beside_it_in_the_same_case(eng):
    res = eng.start("reablement", data={"person": {"name": "Joan Barker", "address": "4 Mill Lane, Northby"},
                                        "age": 78, "reason": "Falls at home", "from_hospital": False,
                                        "discharge_date": None, "contact_date": "2031-02-24"})
    cid, reablement = res.case_id, res.instance_id
    complete(eng, cid, "plan_reablement", {"goals": ["Wash and dress without help"], "setting": "home"})
    deliver = the_task(eng, cid, "deliver_reablement")
    timers_before = eng.instance_snapshot(reablement)["timers"]
    eng.advance_clock(timedelta(days=3))

    sg = eng.start("safeguarding", case_id=cid, data={"raised_by": "reablement carer"})
    assert sg.case_id == cid and sg.instance_id != reablement
    assert instances(eng, cid) == [("reablement", "waiting"), ("safeguarding", "waiting")]
    assert open_tasks(eng, cid) == [("deliver_reablement", "reablement"), ("record_concern", "safeguarding")]
    complete(eng, cid, "record_concern", CONCERN)
    complete(eng, cid, "triage_decision", S42)
    assert open_tasks(eng, cid) == [("deliver_reablement", "reablement"), ("strategy_discussion", "safeguarding")]
    after = the_task(eng, cid, "deliver_reablement")
    assert (after["id"], after["due_at"], after["team"]) == (deliver["id"], deliver["due_at"], deliver["team"])
    assert eng.instance_snapshot(reablement)["timers"] == timers_before

    done = complete(eng, cid, "deliver_reablement", {"outcome": "needs_remain", "summary": "Needs help with meals"})
    [assessment] = done.started_instances
    assert started_data(eng, cid, assessment)["contact_date"] == "2031-02-24"  # the 28 days count from contact
    assert the_task(eng, cid, "assess_needs")["due_at"] == datetime(2031, 3, 24, 17, 0, tzinfo=UTC)
    assert instances(eng, cid) == [("reablement", "completed"), ("safeguarding", "waiting"),
                                   ("needs_assessment", "waiting")]
    assert open_tasks(eng, cid) == [("assess_needs", "social_work"), ("strategy_discussion", "safeguarding")]


def test_reablement_without_a_contact_date_counts_the_assessment_from_its_start(eng):
    res = eng.start("reablement", data={"person": {"name": "Joan Barker", "address": "4 Mill Lane, Northby"},
                                        "age": 78, "reason": "Falls at home", "from_hospital": False,
                                        "discharge_date": None})
    complete(eng, res.case_id, "plan_reablement", {"goals": ["Wash and dress without help"], "setting": "home"})
    eng.advance_clock(timedelta(days=10))
    done = complete(eng, res.case_id, "deliver_reablement", {"outcome": "needs_remain", "summary": "Meals"})
    [assessment] = done.started_instances
    assert started_data(eng, res.case_id, assessment)["contact_date"] == START.date().isoformat()
