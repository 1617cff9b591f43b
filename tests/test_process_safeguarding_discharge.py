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
    cld_rows,
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


def flat(text):
    return " ".join(text.split())


def letters(eng, case_id):
    return [(d["kind"], flat(d["body"])) for d in eng.documents(case_id)]


# CLD code lists (operating model, section 4)
TO_REABLEMENT = "Progress to Reablement/ST-Max"
TO_ASSESSMENT = "Progress to Assessment"
ENDED_AS_PLANNED = "Service ended as planned"
INFORMATION_ADVICE = "NFA – Information & Advice / Signposting only"


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
    # the local timescales are read as the referral arrives (the start event), then the deadline is set
    assert handlers_called(eng, cid) == [("referral_received", "local_settings"), ("set_response_deadline", "deadline")]
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
    [(kind, letter)] = letters(eng, cid)  # the discharge letter, filed on the case
    assert kind == "discharge" and letter.startswith("Northshire Council Adult Social Care County Hall")
    assert "Dear Harriet Cole" in letter and "12 Orchard Close Northby" in letter
    assert "left hospital on 4 March 2031" in letter and "went home with new support from our reablement" in letter
    assert "for up to 6 weeks" in letter
    assert "We will contact you around 3 June 2031 to check how you are managing at home" in letter
    assert "01632 960000" in letter  # the council's details from council.json
    # CLD: the referral is a Request (3 March, ended when the discharge was recorded on 4 March) that went on
    # to reablement; the reablement service is open until it ends
    assert cld_rows(eng, cid) == [("Request", "2031-03-03", "2031-03-04", TO_REABLEMENT),
                                  ("Service", "2031-03-04", None, None)]

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
    # the 91-day follow-up is an ASCOF measure, not a CLD event: no new row
    assert cld_rows(eng, cid) == [("Request", "2031-03-03", "2031-03-04", TO_REABLEMENT),
                                  ("Service", "2031-03-04", "2031-03-24", ENDED_AS_PLANNED)]


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
        ("recovery_window", datetime(2031, 4, 1, 0, 0, tzinfo=UTC))]  # 28 days of recovery after 4 March
    assert eng.list_tasks(case_id=cid) == []  # not assessed on the ward
    [(kind, letter)] = letters(eng, cid)
    assert kind == "discharge" and "Dear Mohammad Rahman" in letter
    assert "you moved to a community bed for a period of recovery" in letter
    assert "A social worker will look at it with you after the recovery, from 1 April 2031" in letter
    assert "We will contact you around" not in letter  # the 91-day check is for people aged 65+

    eng.advance_clock(to=datetime(2031, 3, 31, 23, 59, tzinfo=UTC))
    assert fired(eng, cid) == [] and instances(eng, cid) == [("hospital_discharge", "waiting")]
    eng.advance_clock(timedelta(minutes=1))
    assert fired(eng, cid) == ["recovery_window"]
    assert fired_at(eng, cid, "recovery_window")[0].startswith("2031-04-01T00:00")
    assert instances(eng, cid) == [("hospital_discharge", "completed"), ("needs_assessment", "waiting")]
    [assessment] = [i["id"] for i in eng.get_case(cid)["instances"] if i["process_id"] == "needs_assessment"]
    start = started_data(eng, cid, assessment)
    assert start["contact_date"] == "2031-04-01" and start["discharge_pathway"] == 2
    task = the_task(eng, cid, "assess_needs")
    assert task["team"] == "social_work" and task["instance_id"] == assessment
    assert task["due_at"] == datetime(2031, 4, 29, 16, 0, tzinfo=UTC)  # 28 days from the assessment request
    # CLD: the Request (3-4 March) went to bed-based recovery (short-term support); the assessment after
    # recovery is a new, open Assessment event
    assert cld_rows(eng, cid) == [("Request", "2031-03-03", "2031-03-04", TO_REABLEMENT),
                                  ("Assessment", "2031-04-01", None, None)]


def test_a_discharge_recorded_3_days_late_counts_from_the_day_the_person_left(eng):
    res = refer(eng, MOHAMMAD, "Long hospital stay; complex emotional needs")
    cid = res.case_id
    complete(eng, cid, "respond_to_referral", response(can_go_home=False, needs_bed_based_recovery=True))
    eng.advance_clock(to=datetime(2031, 3, 7, 11, 0, tzinfo=UTC))  # Friday: he left on Tuesday 4 March
    complete(eng, cid, "record_discharge", {"discharge_ready_date": "2031-03-04", "discharge_date": "2031-03-04",
                                            "delay_reason": "none", "support_arranged": "A room at Elm Lodge "
                                            "recovery unit, with a key worker"})
    snap = eng.instance_snapshot(res.instance_id)
    assert snap["data"]["days_ready_to_discharge"] == 0 and snap["data"]["recovery_ends"] == "2031-04-01"
    # 28 days after the day he left (1 April), not after the day it was recorded (4 April)
    assert [(el, at(due)) for el, due in snap["timers"]] == [
        ("recovery_window", datetime(2031, 4, 1, 0, 0, tzinfo=UTC))]
    [(_, letter)] = letters(eng, cid)
    assert "left hospital on 4 March 2031" in letter and "from 1 April 2031" in letter
    assert "A room at Elm Lodge recovery unit, with a key worker" in letter
    eng.advance_clock(to=datetime(2031, 4, 1, 0, 0, tzinfo=UTC))
    assert fired(eng, cid) == ["recovery_window"]
    assert instances(eng, cid) == [("hospital_discharge", "completed"), ("needs_assessment", "waiting")]
    [assessment] = [i["id"] for i in eng.get_case(cid)["instances"] if i["process_id"] == "needs_assessment"]
    assert started_data(eng, cid, assessment)["discharge_date"] == "2031-03-04"
    # the Request ends the day the discharge was recorded (7 March): when the council dealt with it
    assert cld_rows(eng, cid) == [("Request", "2031-03-03", "2031-03-07", TO_REABLEMENT),
                                  ("Assessment", "2031-04-01", None, None)]


def test_a_discharge_dated_before_the_person_was_ready_is_refused_on_the_discharge_date(eng):
    res = refer(eng, MOHAMMAD, "Long hospital stay; complex emotional needs")
    cid = res.case_id
    complete(eng, cid, "respond_to_referral", response(can_go_home=False, needs_bed_based_recovery=True))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "record_discharge", {"discharge_ready_date": "2031-03-06", "discharge_date": "2031-03-04",
                                                "delay_reason": "none"})
    assert [(e["field"], e["message"]) for e in err.value.errors] == [
        ("discharge_date", "must not be before 'Day the person was ready to leave (YYYY-MM-DD)' (2031-03-06)")]
    assert [t["element_id"] for t in eng.list_tasks(case_id=cid)] == ["record_discharge"]  # nothing moved
    complete(eng, cid, "record_discharge", {"discharge_ready_date": "2031-03-04", "discharge_date": "2031-03-06",
                                            "delay_reason": "waiting_for_bed"})
    assert eng.instance_snapshot(res.instance_id)["data"]["days_ready_to_discharge"] == 2


def test_a_late_recorded_discharge_aged_70_is_followed_up_91_days_after_the_day_they_left(eng):
    res = refer(eng, dict(HARRIET, age=70))
    cid = res.case_id
    complete(eng, cid, "respond_to_referral", response())
    eng.advance_clock(to=datetime(2031, 3, 7, 10, 0, tzinfo=UTC))  # recorded on Friday; she left on Tuesday
    done = complete(eng, cid, "record_discharge", {
        "discharge_ready_date": "2031-03-04", "discharge_date": "2031-03-04", "delay_reason": "none",
        "letter_to": {"name": "George Cole", "address": "12 Orchard Close, Northby", "relationship": "husband"}})
    [reablement] = done.started_instances
    [(_, letter)] = letters(eng, cid)
    assert "Dear George Cole" in letter and "as Harriet Cole's husband" in letter
    assert "We will contact Harriet Cole around 3 June 2031" in letter
    complete(eng, cid, "plan_reablement", {"goals": ["Manage at home"], "setting": "home"})
    done = complete(eng, cid, "deliver_reablement", {"outcome": "best_independence_reached", "summary": "Fine"})
    [follow_up] = done.started_instances
    eng.advance_clock(to=datetime(2031, 6, 2, 23, 59, tzinfo=UTC))
    assert fired(eng, cid) == []
    eng.advance_clock(to=datetime(2031, 6, 3, 0, 0, tzinfo=UTC))  # 91 days after 4 March, not after 7 March
    assert fired(eng, cid) == ["wait_after_discharge"]
    assert open_tasks(eng, cid) == [("check_still_at_home", "reablement")]
    assert cld_rows(eng, cid) == [("Request", "2031-03-03", "2031-03-07", TO_REABLEMENT),
                                  ("Service", "2031-03-07", "2031-03-07", ENDED_AS_PLANNED)]


def test_pathway_0_ends_at_home_and_pathway_3_starts_needs_assessment(eng):
    res = refer(eng, HARRIET)
    complete(eng, res.case_id, "respond_to_referral", response(needs_new_support=False))
    done = complete(eng, res.case_id, "record_discharge", {"discharge_ready_date": "2031-03-03",
                                                           "discharge_date": "2031-03-03", "delay_reason": "none"})
    assert done.status == "completed" and done.started_instances == []
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["pathway"] == 0 and data["days_ready_to_discharge"] == 0
    [(_, letter)] = letters(eng, res.case_id)
    assert "you went home without needing any new care and support from us" in letter
    assert "call us and we will talk about what could help" in letter and "We will contact you around" not in letter
    assert cld_rows(eng, res.case_id) == [("Request", "2031-03-03", "2031-03-03", INFORMATION_ADVICE)]

    res = refer(eng, HARRIET)
    complete(eng, res.case_id, "respond_to_referral", response(can_go_home=False, needs_care_home=True))
    done = complete(eng, res.case_id, "record_discharge", {"discharge_ready_date": "2031-03-01",
                                                           "discharge_date": "2031-03-03",
                                                           "delay_reason": "waiting_for_care_home"})
    [assessment] = done.started_instances
    assert eng.instance_snapshot(res.instance_id)["data"]["pathway"] == 3
    assert instances(eng, res.case_id) == [("hospital_discharge", "completed"), ("needs_assessment", "waiting")]
    assert the_task(eng, res.case_id, "assess_needs")["instance_id"] == assessment
    [(_, letter)] = letters(eng, res.case_id)
    assert "you moved to a care home" in letter and "from 3 March 2031" in letter
    assert cld_rows(eng, res.case_id) == [("Request", "2031-03-03", "2031-03-03", TO_ASSESSMENT),
                                          ("Assessment", "2031-03-03", None, None)]


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
    # CLD: an open Request (referral on Friday 7 March) with no outcome until the discharge is recorded
    assert cld_rows(eng, cid) == [("Request", "2031-03-07", None, None)]


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
    assert cld_rows(eng, cid) == [("Request", "2031-04-10", None, None)]


# ---------------------------------------------------------------- safeguarding

CONCERN = {"what_happened": "Neighbour reports the lodger takes her bank card and she has no food",
           "abuse_types": ["financial", "neglect"], "immediate_risk": "medium",
           "immediate_safety_actions": "Visited today; food delivered; bank asked to flag the account",
           "adult_views_sought": True, "desired_outcomes": "I want my money back and him to leave",
           "police_informed": True,
           "alleged_source_of_harm": {"name": "Dean Fletcher", "relationship": "lodger", "lives_with_adult": True}}
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
    # the review is due 5 working days after it falls due (Monday 12 May -> Monday 19 May, 17:00 BST)
    assert the_task(eng, cid, "review_plan")["due_at"] == datetime(2031, 5, 19, 16, 0, tzinfo=UTC)
    complete(eng, cid, "review_plan", {"plan_working": "yes", "risk_now": "removed", "next_step": "close",
                                       "adult_views": "Feels safe at home again"})
    # closure: is it safe to write to her, and where?
    letter_task = the_task(eng, cid, "decide_letter")
    assert (letter_task["team"], letter_task["form"]) == ("safeguarding", "safeguarding_letter")
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "decide_letter", {"send_letter": True})
    assert {e["field"] for e in err.value.errors} == {"letter_to", "recipient_address", "not_sent_to_source_of_harm"}
    done = complete(eng, cid, "decide_letter", {"send_letter": True, "letter_to": "adult",
                                                "recipient_address": "4 Mill Lane, Northby",
                                                "not_sent_to_source_of_harm": True})
    assert done.status == "completed"
    [doc] = eng.documents(cid)
    letter = flat(doc["body"])
    assert doc["kind"] == "safeguarding" and doc["title"] == "The safeguarding concern we looked into"
    assert "Dear Joan Barker" in letter and "4 Mill Lane Northby" in letter
    assert "On 3 March 2031 someone told us they were worried that you might be at risk" in letter
    assert "We made safeguarding enquiries" in letter and "Our enquiries have now finished" in letter
    assert "has been partly achieved" in letter and "The risk to you has been reduced" in letter
    assert "Lodger evicted; appointee manages money" in letter and "In an emergency, call 999" in letter
    assert "Northshire Council" in letter and "01632 960000" in letter
    assert "Dean Fletcher" not in letter  # the letter never names the alleged source of harm
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["outcomes_achieved"] == "partially" and data["risk_outcome"] == "reduced"
    assert data["desired_outcomes"] == CONCERN["desired_outcomes"] and data["closed_at"].startswith("2031-")
    assert completed_route(eng, cid) == ["record_concern", "triage_decision", "escalate_strategy",
                                         "strategy_discussion", "enquiry", "record_outcome", "review_plan",
                                         "decide_letter"]
    assert fired(eng, cid) == ["strategy_overdue", "wait_plan_review"]  # triage, decision, enquiry on time
    assert handlers_called(eng, cid) == [("concern_received", "local_settings"), ("set_triage_deadline", "deadline"),
                                         ("set_decision_deadline", "deadline"), ("set_strategy_deadline", "deadline"),
                                         ("write_letter", "safeguarding_letter")]
    assert handler_output(eng, cid, "set_strategy_deadline")["working_days"] == 5
    assert cld_rows(eng, cid) == []  # safeguarding is reported in the Safeguarding Adults Collection, not CLD


def to_plan_review(eng, cid):
    complete(eng, cid, "record_concern", CONCERN)
    complete(eng, cid, "triage_decision", S42)
    complete(eng, cid, "strategy_discussion", STRATEGY)
    complete(eng, cid, "enquiry", {"findings": "Lodger withdrew money", "concern_substantiated": "yes"})
    complete(eng, cid, "record_outcome", {"outcomes_asked": True, "outcomes_achieved": "fully",
                                          "risk_outcome": "removed", "plan_review_needed": True,
                                          "safeguarding_plan": "Appointee manages money"})
    eng.advance_clock(timedelta(days=42))  # Monday 14 April 2031, 09:00: the review falls due
    return the_task(eng, cid, "review_plan")


def test_a_missed_plan_review_escalates_to_the_team_manager_and_the_review_stays_open(eng):
    res = eng.start("safeguarding", data={"person": {"name": "Joan Barker"}})
    cid = res.case_id
    review = to_plan_review(eng, cid)
    # due on Easter Monday (a bank holiday): 5 working days later is Monday 21 April, 17:00 BST
    assert review["due_at"] == datetime(2031, 4, 21, 16, 0, tzinfo=UTC)
    eng.advance_clock(to=datetime(2031, 4, 21, 15, 59, tzinfo=UTC))
    assert fired(eng, cid) == ["wait_plan_review"]
    eng.advance_clock(timedelta(minutes=1))
    assert fired(eng, cid) == ["wait_plan_review", "plan_review_overdue"]
    assert open_tasks(eng, cid) == [("escalate_plan_review", "team_manager"), ("review_plan", "safeguarding")]
    escalation = the_task(eng, cid, "escalate_plan_review")
    assert escalation["form"] == "sla_escalation"
    complete(eng, cid, "escalate_plan_review", {"action_taken": "Review booked with the worker"}, actor="tm1")
    # a plan that continues is reviewed again 6 weeks later, with its own deadline
    complete(eng, cid, "review_plan", {"plan_working": "partly", "risk_now": "reduced",
                                       "next_step": "continue_plan"})
    assert eng.list_tasks(case_id=cid) == []
    eng.advance_clock(timedelta(days=42))
    assert open_tasks(eng, cid) == [("review_plan", "safeguarding")]
    assert the_task(eng, cid, "review_plan")["due_at"] > datetime(2031, 6, 6, 0, 0, tzinfo=UTC)
    assert completed_route(eng, cid)[-2:] == ["escalate_plan_review", "review_plan"]
    assert cld_rows(eng, cid) == []


def test_the_plan_review_deadline_is_read_from_the_local_settings(eng, monkeypatch):
    from handlers import settings as local

    shipped = local.load
    monkeypatch.setattr(local, "load", lambda *a: {**shipped(*a), "safeguarding_plan_review_working_days": 2})
    res = eng.start("safeguarding", data={"person": {"name": "Joan Barker"}})
    review = to_plan_review(eng, res.case_id)
    assert review["due_at"] == datetime(2031, 4, 16, 16, 0, tzinfo=UTC)  # 2 working days after Easter Monday
    assert cld_rows(eng, res.case_id) == []


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
    assert cld_rows(eng, cid) == []


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
    complete(eng, cid, "triage_decision", {"s42_criteria_met": "no",
                                           "decision": "no_further_action_with_advice", "urgent": False,
                                           "reason": "No care and support needs",
                                           "advice_given": "Signposted to the hoarding support group"})
    assert open_tasks(eng, cid) == [("decide_letter", "safeguarding")]  # no strategy discussion or enquiry
    with pytest.raises(ValidationError) as err:  # no letter: the reason is recorded
        complete(eng, cid, "decide_letter", {"send_letter": False})
    assert [e["field"] for e in err.value.errors] == ["why_no_letter"]
    done = complete(eng, cid, "decide_letter", {"send_letter": False,
                                                "why_no_letter": "His brother, who the concern is about, opens "
                                                                 "his post"})
    assert done.status == "completed"
    assert eng.documents(cid) == []
    assert instances(eng, cid) == [("safeguarding", "completed")]
    assert completed_route(eng, cid) == ["record_concern", "triage_decision", "decide_letter"]
    assert eng.advance_clock(timedelta(days=60)) == 0 and fired(eng, cid) == []
    assert ("set_strategy_deadline", "deadline") not in handlers_called(eng, cid)
    assert cld_rows(eng, cid) == []


def test_no_further_action_letter_goes_to_a_representative_with_the_advice(eng):
    res = eng.start("safeguarding", case_id=None, data={"person": {"name": "Kyle Morgan",
                                                                    "address": "Flat 2, 9 Station Road, Northby"}})
    cid = res.case_id
    complete(eng, cid, "record_concern", {**CONCERN, "abuse_types": ["self_neglect"]})
    complete(eng, cid, "triage_decision", {"s42_criteria_met": "no", "decision": "no_further_action_with_advice",
                                           "urgent": False, "reason": "No care and support needs",
                                           "advice_given": "Signposted to the hoarding support group"})
    with pytest.raises(ValidationError) as err:  # a representative needs a name and a relationship
        complete(eng, cid, "decide_letter", {"send_letter": True, "letter_to": "representative",
                                             "recipient_address": "1 High Street, Northby",
                                             "not_sent_to_source_of_harm": True})
    assert {e["field"] for e in err.value.errors} == {"recipient_name", "recipient_relationship"}
    complete(eng, cid, "decide_letter", {"send_letter": True, "letter_to": "representative",
                                         "recipient_name": "Ann Morgan", "recipient_relationship": "mother",
                                         "recipient_address": "1 High Street, Northby",
                                         "not_sent_to_source_of_harm": True})
    [doc] = eng.documents(cid)
    letter = flat(doc["body"])
    assert "Dear Ann Morgan" in letter and "1 High Street Northby" in letter
    assert "We are writing to you as Kyle Morgan's mother" in letter
    assert "we are not taking any further action" in letter
    assert "Advice we gave: Signposted to the hoarding support group" in letter
    assert "Station Road" not in letter  # sent only to the address the worker confirmed as safe
    assert cld_rows(eng, cid) == []


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
    assert started_data(eng, cid, assessment)["contact_date"] == "2031-02-24"
    # the 28 days count from the request for assessment: the day reablement referred on (6 March), not the
    # contact (assessment_target_from in timescales.json; tests/test_rules_casework.py has the boundaries)
    assert the_task(eng, cid, "assess_needs")["due_at"] == datetime(2031, 4, 3, 16, 0, tzinfo=UTC)
    assert instances(eng, cid) == [("reablement", "completed"), ("safeguarding", "waiting"),
                                   ("needs_assessment", "waiting")]
    assert open_tasks(eng, cid) == [("assess_needs", "social_work"), ("strategy_discussion", "safeguarding")]
    # CLD: the reablement service (needs remain) and the open assessment; the concern adds no row
    assert cld_rows(eng, cid) == [("Service", "2031-03-03", "2031-03-06", TO_ASSESSMENT),
                                  ("Assessment", "2031-03-06", None, None)]


def test_reablement_without_a_contact_date_counts_the_assessment_from_its_start(eng):
    res = eng.start("reablement", data={"person": {"name": "Joan Barker", "address": "4 Mill Lane, Northby"},
                                        "age": 78, "reason": "Falls at home", "from_hospital": False,
                                        "discharge_date": None})
    complete(eng, res.case_id, "plan_reablement", {"goals": ["Wash and dress without help"], "setting": "home"})
    eng.advance_clock(timedelta(days=10))
    done = complete(eng, res.case_id, "deliver_reablement", {"outcome": "needs_remain", "summary": "Meals"})
    [assessment] = done.started_instances
    assert started_data(eng, res.case_id, assessment)["contact_date"] == START.date().isoformat()
    assert cld_rows(eng, res.case_id) == [("Service", "2031-03-03", "2031-03-13", TO_ASSESSMENT),
                                          ("Assessment", "2031-03-13", None, None)]
