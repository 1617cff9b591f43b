"""End to end: the Adult Front Door, reablement and the 91-day hospital follow-up.

Runs the real diagrams in processes/ with the real handlers (handlers/) and forms (forms/) on
the simulated clock. Each test checks the route taken (task element ids), which team saw each
task, which timers fired and when, and that forms are validated. The needs assessment that
reablement (or the front door) may start is a one-task stub
(tests/diagrams_stage1/needs_assessment_stub.bpmn); the safeguarding process the front door
starts is the real one (processes/safeguarding.bpmn).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine.errors import ValidationError
from engine.forms import FormLibrary
from tests.case_helpers import (
    cld_rows,
    completed_route,
    events,
    fired,
    fired_at,
    handlers_called,
    instances,
    the_task,
)
from tests.casework_helpers import ROOT, casework_engine, contact, diagrams
from tests.conftest import START

# financial_assessment: a reablement extension after the free weeks starts the person's financial assessment
FILES = diagrams("front_door", "screening.dmn", "reablement", "hospital_follow_up", "safeguarding",
                 "financial_assessment") + [
    ROOT / "tests" / "diagrams_stage1" / "needs_assessment_stub.bpmn"]
STUB_FORM = {"type": "object", "properties": {"eligible": {"type": "boolean"}}}

# CLD code lists (operating model, section 4)
TO_REABLEMENT = "Progress to Reablement/ST-Max"
TO_ASSESSMENT = "Progress to Assessment"
ENDED_AS_PLANNED = "Service ended as planned"
INFORMATION_ADVICE = "NFA – Information & Advice / Signposting only"
NFA_OTHER = "NFA – Other"
DAY0 = "2031-03-03"  # START, Monday 3 March 2031


@pytest.fixture
def eng(db_url):
    library = FormLibrary.from_folder(ROOT / "forms")
    forms = FormLibrary({**{n: library.schema(n) for n in library.names()}, "needs_assessment_stub": STUB_FORM})
    yield from casework_engine(db_url, FILES, forms=forms)


# ---------------------------------------------------------------- helpers

KYLE = contact(
    caller={"name": "Sam Okafor", "relationship": "gp_or_social_prescriber", "organisation": "GP social prescribing"},
    reason="Anxiety and insomnia, lives alone, finding it hard to get out",
    person={"name": "Kyle Morgan", "age": 34, "address": "Flat 2, 9 Station Road, Northby", "area": "north",
            "lives_alone": True},
    needs=["mental_wellbeing", "transport", "physical_activity", "finances_benefits"])

LIKELY_ELIGIBLE = contact(outcomes_unable=["personal_hygiene", "being_appropriately_clothed", "using_the_home_safely"])


def open_tasks(eng, case_id):
    return [(t["element_id"], t["team"]) for t in eng.list_tasks(case_id=case_id)]


def withdrawn(eng, case_id, instance_id):
    """The tasks of an instance that left without being completed (withdrawn as the process moved on)."""
    done = {e["data"]["task_id"] for e in events(eng, case_id, "task.completed")}
    return [e["data"]["element_id"] for e in events(eng, case_id, "task.left")
            if e["instance_id"] == instance_id and e["data"]["task_id"] not in done]


def start_front_door(eng, form):
    res = eng.start("front_door", actor="advisor1")
    assert [(t["element_id"], t["team"], t["form"]) for t in res.ready_tasks] == [
        ("record_contact", "front_door", "contact")]
    step = eng.complete_task(res.ready_tasks[0]["id"], form, actor="advisor1")
    return res, step


def start_reablement_from_front_door(eng, form=LIKELY_ELIGIBLE):
    res, step = start_front_door(eng, form)
    assert step.status == "completed"
    [child] = step.started_instances
    task = the_task(eng, res.case_id, "plan_reablement")
    assert task["team"] == "reablement" and task["instance_id"] == child
    eng.complete_task(task["id"], {"goals": ["Wash and dress without help", "Make a hot meal"], "setting": "home",
                                   "start_type": "planned", "visits_per_day": 2}, actor="coordinator1")
    return res, child


# ---------------------------------------------------------------- front door

def test_kyle_is_signposted_and_called_back_after_14_days(eng):
    res, step = start_front_door(eng, KYLE)
    assert step.status == "waiting"
    assert handlers_called(eng, res.case_id) == [("contact_received", "local_settings"),  # a start input
                                                  ("search_directory", "search_directory"),
                                                  ("record_signposting", "record_signposting")]
    snap = eng.instance_snapshot(res.instance_id)
    assert snap["data"]["screening_route"] == "signposting"
    recorded = snap["data"]["signposting"]
    assert recorded["person_consents"] is True and recorded["call_back_due"] == "2031-03-17"
    matches = [m["id"] for m in snap["data"]["directory_search"]["matches"]]
    assert matches and [r["service_id"] for r in recorded["referrals"]] == matches
    assert {r["method"] for r in recorded["referrals"]} == {"referral"}  # Kyle consented
    assert [t[0] for t in snap["timers"]] == ["wait_for_call_back"]
    assert eng.list_tasks(case_id=res.case_id) == []

    eng.advance_clock(timedelta(days=13))
    assert eng.list_tasks(case_id=res.case_id) == [] and fired(eng, res.case_id) == []
    eng.advance_clock(timedelta(days=1))
    assert fired(eng, res.case_id) == ["wait_for_call_back"]
    assert fired_at(eng, res.case_id, "wait_for_call_back")[0].startswith("2031-03-17")
    assert open_tasks(eng, res.case_id) == [("signposting_call_back", "front_door")]
    assert eng.list_tasks(team="front_door")[0]["element_id"] == "signposting_call_back"

    task = the_task(eng, res.case_id, "signposting_call_back")
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task["id"], {"reached": "yes"})
    assert {e["field"] for e in err.value.errors} == {"reached", "services_right"}
    done = eng.complete_task(task["id"], {"reached": True, "services_right": "yes", "further_help": "none"})
    assert done.status == "completed"
    assert completed_route(eng, res.case_id) == ["record_contact", "signposting_call_back"]
    assert instances(eng, res.case_id) == [("front_door", "completed")]
    # CLD: one Request, open until the call back, ended with information and advice / signposting only
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, "2031-03-17", INFORMATION_ADVICE)]


def test_contact_form_errors_are_listed_by_field_and_the_task_stays_open(eng):
    res = eng.start("front_door")
    task_id = res.ready_tasks[0]["id"]
    bad = contact(reason="", person_age="seventy", needs=["gardening"])
    del bad["crisis"], bad["person"]["address"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task_id, bad)
    assert {e["field"] for e in err.value.errors} == {"reason", "person/age", "person/address", "needs/0", "crisis"}
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task_id, contact(from_hospital=True))  # a discharge needs its date
    assert [e["field"] for e in err.value.errors] == ["discharge_date"]
    assert open_tasks(eng, res.case_id) == [("record_contact", "front_door")]
    assert events(eng, res.case_id, "task.completed") == []
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, None, None)]  # still open: nothing decided


def test_no_needs_and_not_likely_eligible_ends_with_information_and_advice(eng):
    res, step = start_front_door(eng, contact(advice_given="Leaflet on falls prevention"))
    assert step.status == "completed" and step.started_instances == []
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["screening_route"] == "information_and_advice"
    assert handlers_called(eng, res.case_id) == [("contact_received", "local_settings")]
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, INFORMATION_ADVICE)]


def test_a_safeguarding_concern_starts_the_safeguarding_process_for_the_same_case(eng):
    form = contact(safeguarding_concern=True, outcomes_unable=["nutrition", "toilet_needs"],
                   reason="Neighbour reports bruising and a lodger taking her pension")
    res, step = start_front_door(eng, form)
    assert step.status == "completed"  # the front door's part ends: safeguarding owns triage
    [child] = step.started_instances  # the concern comes first, even when likely eligible
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("safeguarding", "waiting")]
    assert eng.get_case(res.case_id)["instances"][1]["parent_instance_id"] == res.instance_id
    assert eng.instance_snapshot(res.instance_id)["data"]["screening_route"] == "safeguarding"
    started = [e for e in events(eng, res.case_id, "instance.started") if e["instance_id"] == child][0]
    data = started["data"]["data"]
    assert data["person"]["name"] == "Joan Barker"
    assert data["concern"] == "Neighbour reports bruising and a lodger taking her pension"
    assert data["urgent"] is False and data["contact_date"] == "2031-03-03"  # no crisis: no urgent response
    assert data["raised_by"] == "Dr Amy Shah (gp_or_social_prescriber)"
    assert open_tasks(eng, res.case_id) == [("record_concern", "safeguarding")]
    task = the_task(eng, res.case_id, "record_concern")
    assert task["instance_id"] == child
    # 1 working day (timescales.json) after Monday 3 March 2031, 17:00 UK time (GMT in March)
    assert task["due_at"].isoformat().startswith("2031-03-04T17:00")
    eng.advance_clock(timedelta(days=2))  # the safeguarding process escalates a late triage
    assert fired(eng, res.case_id) == ["triage_overdue"]
    assert sorted(open_tasks(eng, res.case_id)) == [("escalate_triage", "team_manager"),
                                                    ("record_concern", "safeguarding")]
    assert completed_route(eng, res.case_id) == ["record_contact"]
    # CLD: the Request ends with NFA – Other (the concern goes to the Safeguarding Adults Collection)
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, NFA_OTHER)]


# a crisis goes to the urgent response, not safeguarding (both when there is also a concern):
# tests/test_front_door_routes.py


def test_likely_eligible_but_reablement_not_appropriate_starts_a_needs_assessment(eng):
    form = contact(outcomes_unable=["personal_hygiene", "nutrition"], reablement_appropriate=False,
                   reablement_not_appropriate_because="long_term_condition",
                   reason="Motor neurone disease: needs are increasing")
    res, step = start_front_door(eng, form)
    assert step.status == "completed"
    [child] = step.started_instances
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("needs_assessment", "waiting")]
    snap = eng.instance_snapshot(res.instance_id)["data"]
    assert snap["screening_route"] == "needs_assessment" and "reablement is not appropriate" in snap[
        "screening_reason"]
    started = [e for e in events(eng, res.case_id, "instance.started") if e["instance_id"] == child][0]
    assert started["data"]["data"]["person"]["name"] == "Joan Barker"
    assert started["data"]["data"]["contact_date"] == "2031-03-03"
    task = the_task(eng, res.case_id, "assess_needs")
    assert task["instance_id"] == child and task["team"] == "social_work"
    assert "start_reablement" not in [e["data"]["element_id"] for e in events(eng, res.case_id, "handler.called")]
    # CLD: the Request progressed straight to assessment; the assessment (a stub here) is still open
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_ASSESSMENT), ("Assessment", DAY0, None, None)]


def test_reablement_not_appropriate_needs_its_reason(eng):
    res = eng.start("front_door")
    with pytest.raises(ValidationError) as err:
        eng.complete_task(res.ready_tasks[0]["id"], contact(reablement_appropriate=False))
    assert [e["field"] for e in err.value.errors] == ["reablement_not_appropriate_because"]
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, None, None)]


def test_not_likely_eligible_and_reablement_not_appropriate_is_still_signposted(eng):
    res, step = start_front_door(eng, dict(KYLE, reablement_appropriate=False,
                                           reablement_not_appropriate_because="other"))
    assert step.status == "waiting" and step.started_instances == []
    assert eng.instance_snapshot(res.instance_id)["data"]["screening_route"] == "signposting"
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, None, INFORMATION_ADVICE)]  # signposted, call back due


def test_a_likely_eligible_contact_starts_reablement_for_the_same_case(eng):
    res, step = start_front_door(eng, LIKELY_ELIGIBLE)
    assert step.status == "completed"
    [child] = step.started_instances
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "waiting")]
    assert eng.get_case(res.case_id)["instances"][1]["parent_instance_id"] == res.instance_id
    started = [e for e in events(eng, res.case_id, "instance.started") if e["instance_id"] == child][0]
    assert started["data"]["data"]["person"]["name"] == "Joan Barker"
    assert started["data"]["data"]["from_hospital"] is False and started["data"]["data"]["age"] == 78
    assert open_tasks(eng, res.case_id) == [("plan_reablement", "reablement")]
    assert eng.instance_snapshot(res.instance_id)["data"]["screening_route"] == "reablement"
    # CLD: the Request progressed to reablement; the ST-Max service row opens with the referral
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT), ("Service", DAY0, None, None)]


# ---------------------------------------------------------------- reablement

def test_reablement_ended_early_at_best_independence_completes_with_no_further_needs(eng):
    res, child = start_reablement_from_front_door(eng)
    task = the_task(eng, res.case_id, "deliver_reablement")
    assert task["team"] == "reablement"
    assert task["due_at"] == START + timedelta(days=35)  # the reminder, a week before 6 weeks
    snap = eng.instance_snapshot(child)
    assert sorted(t[0] for t in snap["timers"]) == ["end_reminder", "period_ended"]
    eng.advance_clock(timedelta(days=20))
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task["id"], {"outcome": "fine now"})
    assert {e["field"] for e in err.value.errors} == {"outcome", "summary"}
    done = eng.complete_task(task["id"], {"outcome": "best_independence_reached",
                                          "summary": "Washing and dressing independently"})
    assert done.status == "completed" and done.started_instances == []
    assert completed_route(eng, res.case_id) == ["record_contact", "plan_reablement", "deliver_reablement"]
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "completed")]
    assert eng.advance_clock(timedelta(days=60)) == 0  # its timers were cleared
    assert fired(eng, res.case_id) == [] and eng.list_tasks(case_id=res.case_id) == []
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT),
                                          ("Service", DAY0, "2031-03-23", ENDED_AS_PLANNED)]


def test_six_weeks_reached_team_manager_extends_with_a_reason_then_needs_remain(eng):
    res, child = start_reablement_from_front_door(eng)
    eng.advance_clock(timedelta(days=34))
    assert fired(eng, res.case_id) == []
    eng.advance_clock(timedelta(days=1))  # 5 weeks: the reminder, delivery goes on
    assert fired(eng, res.case_id) == ["end_reminder"]
    assert fired_at(eng, res.case_id, "end_reminder")[0].startswith((START + timedelta(days=35)).date().isoformat())
    assert sorted(open_tasks(eng, res.case_id)) == [("deliver_reablement", "reablement"),
                                                     ("prepare_for_end", "reablement")]
    eng.complete_task(the_task(eng, res.case_id, "prepare_for_end")["id"], {"progress": "extension_likely"})

    eng.advance_clock(timedelta(days=7))  # 6 weeks: delivery is interrupted, the team manager decides
    assert fired(eng, res.case_id) == ["end_reminder", "period_ended"]
    assert fired_at(eng, res.case_id, "period_ended")[0].startswith((START + timedelta(days=42)).date().isoformat())
    assert open_tasks(eng, res.case_id) == [("decide_extend_or_end", "team_manager")]
    assert eng.list_tasks(team="team_manager")[0]["element_id"] == "decide_extend_or_end"
    decide = the_task(eng, res.case_id, "decide_extend_or_end")
    with pytest.raises(ValidationError) as err:  # an extension needs its length, and a reason
        eng.complete_task(decide["id"], {"decision": "extend", "reason": ""})
    assert {e["field"] for e in err.value.errors} == {"extension_days", "reason"}
    eng.complete_task(decide["id"], {"decision": "extend", "extension_days": 14,
                                     "reason": "Still improving: walking outdoors with a frame"}, actor="tm1")

    task = the_task(eng, res.case_id, "deliver_reablement")
    assert task["team"] == "reablement"
    assert task["due_at"] == START + timedelta(days=42 + 7)  # the extension's reminder: a week before its end
    snap = eng.instance_snapshot(child)
    assert snap["data"]["extensions"] == 1 and snap["data"]["delivery_period"] == "P14D"
    assert sorted((el, datetime.fromisoformat(due)) for el, due in snap["timers"]) == [
        ("end_reminder", START + timedelta(days=49)), ("period_ended", START + timedelta(days=56))]
    eng.advance_clock(timedelta(days=3))
    done = eng.complete_task(task["id"], {"outcome": "needs_remain", "summary": "Needs help with meals"})
    [assessment] = done.started_instances
    assert done.status == "completed"
    # the extension after 6 free weeks is charged (charging.json as shipped): the finance team assesses the person
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "completed"),
                                           ("financial_assessment", "waiting"), ("needs_assessment", "waiting")]
    task = the_task(eng, res.case_id, "assess_needs")
    assert task["instance_id"] == assessment and task["team"] == "social_work"
    started = [e for e in events(eng, res.case_id, "instance.started") if e["instance_id"] == assessment][0]
    assert started["data"]["data"]["reablement_outcome"] == "needs_remain"
    assert started["data"]["data"]["reablement_extensions"] == 1
    assert completed_route(eng, res.case_id) == ["record_contact", "plan_reablement", "prepare_for_end",
                                                 "decide_extend_or_end", "deliver_reablement"]
    assert fired(eng, res.case_id) == ["end_reminder", "period_ended"]
    # CLD: the extended ST-Max service (45 days) progressed to assessment, which is still open
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT),
                                          ("Service", DAY0, "2031-04-17", TO_ASSESSMENT),
                                          ("Assessment", "2031-04-17", None, None)]


def test_team_manager_ends_reablement_at_six_weeks_with_its_outcome(eng):
    res, child = start_reablement_from_front_door(eng)
    eng.advance_clock(timedelta(days=42))
    eng.complete_task(the_task(eng, res.case_id, "prepare_for_end")["id"], {"progress": "on_track_to_end"})
    decide = the_task(eng, res.case_id, "decide_extend_or_end")
    with pytest.raises(ValidationError) as err:
        eng.complete_task(decide["id"], {"decision": "end", "reason": "Goals met"})
    assert [e["field"] for e in err.value.errors] == ["outcome"]
    done = eng.complete_task(decide["id"], {"decision": "end", "reason": "Goals met",
                                            "outcome": "best_independence_reached"})
    assert done.status == "completed" and done.started_instances == []
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "completed")]
    assert fired(eng, res.case_id) == ["end_reminder", "period_ended"]
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT),
                                          ("Service", DAY0, "2031-04-14", ENDED_AS_PLANNED)]


def test_reablement_ended_after_the_reminder_withdraws_the_prepare_task_and_ends_the_service(eng):
    """The reminder (day 35) opens *Prepare for the end of reablement*; reablement then ends early on day 38.
    The reablement ends there: no stale task in the reablement queue, the process complete, the ST-Max
    service ended that day in the return (it was left open while the reminder task waited)."""
    res, child = start_reablement_from_front_door(eng)
    eng.advance_clock(timedelta(days=35))
    assert sorted(open_tasks(eng, res.case_id)) == [("deliver_reablement", "reablement"),
                                                     ("prepare_for_end", "reablement")]
    eng.advance_clock(timedelta(days=3))
    done = eng.complete_task(the_task(eng, res.case_id, "deliver_reablement")["id"],
                             {"outcome": "best_independence_reached", "summary": "Washing and dressing alone"})
    assert done.status == "completed"
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "completed")]
    assert open_tasks(eng, res.case_id) == [] and eng.list_tasks(team="reablement") == []
    assert withdrawn(eng, res.case_id, child) == ["prepare_for_end"]  # left without being done
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT),
                                          ("Service", DAY0, "2031-04-10", ENDED_AS_PLANNED)]
    assert eng.advance_clock(timedelta(days=60)) == 0 and open_tasks(eng, res.case_id) == []


def test_reablement_ended_by_the_team_manager_with_the_prepare_task_not_done_is_over(eng):
    """At 6 weeks the team manager ends reablement while *Prepare for the end of reablement* (day 35) is still
    in the reablement queue: it is withdrawn and reablement is over (it waited for that task before)."""
    res, child = start_reablement_from_front_door(eng)
    eng.advance_clock(timedelta(days=42))
    assert sorted(open_tasks(eng, res.case_id)) == [("decide_extend_or_end", "team_manager"),
                                                     ("prepare_for_end", "reablement")]
    done = eng.complete_task(the_task(eng, res.case_id, "decide_extend_or_end")["id"],
                             {"decision": "end", "reason": "Goals met", "outcome": "needs_remain"})
    [assessment] = done.started_instances
    assert open_tasks(eng, res.case_id) == [("assess_needs", "social_work")]
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "completed"),
                                           ("needs_assessment", "waiting")]
    assert withdrawn(eng, res.case_id, child) == ["deliver_reablement", "prepare_for_end"]
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT),
                                          ("Service", DAY0, "2031-04-14", TO_ASSESSMENT),
                                          ("Assessment", "2031-04-14", None, None)]


# ---------------------------------------------------------------- hospital discharge

def test_hospital_discharge_aged_70_is_followed_up_91_days_after_discharge(eng):
    form = contact(person_age=70, from_hospital=True, discharge_date=START.date().isoformat(),
                   caller={"name": "Ward 7 discharge team", "relationship": "hospital"},
                   outcomes_unable=["nutrition", "personal_hygiene"])
    res, child = start_reablement_from_front_door(eng, form)
    eng.advance_clock(timedelta(days=21))
    done = eng.complete_task(the_task(eng, res.case_id, "deliver_reablement")["id"],
                             {"outcome": "best_independence_reached", "summary": "Managing at home"})
    [follow_up] = done.started_instances
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "completed"),
                                           ("hospital_follow_up", "waiting")]
    snap = eng.instance_snapshot(follow_up)
    assert snap["data"]["follow_up_due"] == (START + timedelta(days=91)).date().isoformat()
    assert [t[0] for t in snap["timers"]] == ["wait_after_discharge"]

    eng.advance_clock(to=START + timedelta(days=90))
    assert eng.list_tasks(case_id=res.case_id) == [] and fired(eng, res.case_id) == []
    eng.advance_clock(to=START + timedelta(days=91))
    assert fired(eng, res.case_id) == ["wait_after_discharge"]
    assert fired_at(eng, res.case_id, "wait_after_discharge")[0].startswith(
        (START + timedelta(days=91)).date().isoformat())
    assert open_tasks(eng, res.case_id) == [("check_still_at_home", "reablement")]
    task = the_task(eng, res.case_id, "check_still_at_home")
    assert task["instance_id"] == follow_up
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task["id"], {"at_home": "no"})  # where are they now?
    assert [e["field"] for e in err.value.errors] == ["where_now"]
    done = eng.complete_task(task["id"], {"at_home": "yes"}, actor="coordinator1")
    assert done.status == "completed"
    assert eng.instance_snapshot(follow_up)["data"]["at_home"] == "yes"
    assert completed_route(eng, res.case_id) == ["record_contact", "plan_reablement", "deliver_reablement",
                                                 "check_still_at_home"]
    # CLD: the 91-day check is an ASCOF 2D measure, not a CLD event
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT),
                                          ("Service", DAY0, "2031-03-24", ENDED_AS_PLANNED)]


def test_hospital_discharge_under_65_has_no_91_day_follow_up(eng):
    form = contact(person_age=52, from_hospital=True, discharge_date=START.date().isoformat(),
                   outcomes_unable=["nutrition", "personal_hygiene"])
    res, child = start_reablement_from_front_door(eng, form)
    done = eng.complete_task(the_task(eng, res.case_id, "deliver_reablement")["id"],
                             {"outcome": "best_independence_reached", "summary": "Managing at home"})
    assert done.status == "completed" and done.started_instances == []
    assert instances(eng, res.case_id) == [("front_door", "completed"), ("reablement", "completed")]
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, TO_REABLEMENT),
                                          ("Service", DAY0, DAY0, ENDED_AS_PLANNED)]
