"""The urgent response to a crisis (issue 10 item 4; processes/urgent_response.bpmn), a scenario on the
simulated clock with the real diagrams, handlers and forms, on SQLite and PostgreSQL:

* a same-day response: a rapid response visit by the reablement team or an urgent assessment by a
  social worker, chosen at the contact or by the social work team in the first task; every step carries
  the one deadline set at the start (urgent_response_within_hours after the crisis was passed on),
  escalated to the team manager when it passes, and the task stays overdue;
* the worker records what was done and what next: reablement, a needs assessment, or close; the person
  gets a letter saying so; a rapid response visit is a CLD Service row (Short Term Support: Other Short
  Term) with the onward route as its outcome;
* started from a case record (api/case_actions.py "urgent_response"), with roles and named errors.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.app import create_app
from api.demo_users import create_demo_users
from engine.errors import ValidationError
from engine.replay import replay_case
from handlers import cld
from handlers import settings as local_settings
from tests.case_helpers import cld_full, cld_rows, events, fired, instances, started_data, the_task
from tests.casework_helpers import SW, TM, api_client, casework_engine, complete, diagrams, known_case, tasks
from tests.conftest import START  # Monday 3 March 2031, 09:00 (UK time = UTC in March)

DUE = START + timedelta(hours=4)  # urgent_response_within_hours: 4 (processes/config/timescales.json)
PROCESSES = ("urgent_response", "reablement", "hospital_follow_up", "needs_assessment", "carers_assessment",
             "personal_budget", "financial_assessment", "support_plan", "review", "direct_payment_review")
ADA = {"name": "Ada Clarke", "address": ["4 Mill Lane", "Northtown", "NS2 4QT"], "age": 84,
       "date_of_birth": "1946-11-02"}
CRISIS = "Her husband, her only carer, was taken into hospital this morning; she cannot get out of bed alone."


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams(*PROCESSES))


def letters(eng, cid) -> list[str]:
    return [" ".join(e["data"]["output"]["body"].split()) for e in events(eng, cid, "handler.called")
            if e["data"]["handler"] == "urgent_response_letter"]


def timers(eng, cid, kind) -> list[tuple[str, str]]:
    return [(e["data"]["element_id"], e["data"]["due_at"][:16]) for e in events(eng, cid, kind)]


def crisis(eng, **extra):
    return eng.start("urgent_response", data={"person": ADA, "contact_date": "2031-03-03", "crisis_detail": CRISIS,
                                              **extra})


VISIT = {"what_was_done": "Visited at 11:30: helped Ada up, arranged carers twice a day for this week.",
         "safe_at_home": True}


# ---------------------------------------------------------------- the route


def test_a_rapid_response_chosen_at_the_contact_goes_to_the_reablement_team_due_the_same_day(eng):
    res = crisis(eng, urgent_kind="rapid_response")
    cid = res.case_id
    assert res.incident is None
    assert tasks(eng, cid) == [("rapid_response", "reablement")]
    assert the_task(eng, cid, "rapid_response")["due_at"] == DUE
    assert timers(eng, cid, "timer.set") == [("visit_late", "2031-03-03T13:00")]
    eng.advance_clock(timedelta(hours=2))
    complete(eng, cid, "rapid_response", {**VISIT, "onward": "reablement"}, actor="rosa")
    # the deadline is withdrawn with the visit; reablement starts with what the crisis was
    assert timers(eng, cid, "timer.cleared") == [("visit_late", "2031-03-03T13:00")]
    [urgent] = [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "urgent_response"]
    assert urgent["status"] == "completed"
    [child] = [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "reablement"]
    start = started_data(eng, cid, child["id"])
    assert (start["reason"], start["age"], start["from_hospital"], start["contact_date"]) == (
        CRISIS, 84, False, "2031-03-03")
    assert tasks(eng, cid) == [("plan_reablement", "reablement")]
    [letter] = letters(eng, cid)
    assert "On 3 March 2031 we were told that you needed help urgently" in letter
    assert "our rapid response team visited you" in letter and "arranged carers twice a day" in letter
    assert "Our reablement team will contact you to agree goals" in letter
    assert CRISIS not in letter  # the crisis as told at the contact stays with the team
    [row] = [r for r in cld_full(eng, cid) if r["process_id"] == "urgent_response"]
    assert (row["event_type"], row["event_start"], row["event_end"], row["outcome"]) == (
        "Service", "2031-03-03", "2031-03-03", cld.PROGRESS_TO_REABLEMENT)
    assert (row["service_type"], row["delivery_mechanism"]) == (cld.ST_OTHER, cld.CASSR_COMMISSIONED_SUPPORT)
    assert replay_case(eng, cid).ok
    assert eng.verify(cid)[1] == []


def test_the_deadline_is_due_at_exactly_the_hours_set_and_escalates_to_the_team_manager(eng):
    cid = crisis(eng, urgent_kind="rapid_response").case_id
    assert eng.advance_clock(to=DUE - timedelta(minutes=1)) == 0
    assert fired(eng, cid) == [] and tasks(eng, cid) == [("rapid_response", "reablement")]
    eng.advance_clock(timedelta(minutes=1))  # equal to the deadline: due
    assert fired(eng, cid) == ["visit_late"]
    assert tasks(eng, cid) == [("rapid_response", "reablement"), ("response_overdue", "team_manager")]
    assert the_task(eng, cid, "rapid_response")["due_at"] == DUE  # still overdue in the inbox
    complete(eng, cid, "response_overdue", {"action_taken": "Rang the team: Jo visits by 15:00"}, actor=TM)
    complete(eng, cid, "rapid_response", {**VISIT, "onward": "close"}, actor="rosa")
    assert tasks(eng, cid) == []
    assert [i["status"] for i in eng.get_case(cid)["instances"]] == ["completed"]
    [letter] = letters(eng, cid)
    assert "We have not arranged any further support" in letter
    assert cld_rows(eng, cid) == [("Service", "2031-03-03", "2031-03-03", cld.SERVICE_ENDED_AS_PLANNED)]


def test_a_council_sets_its_own_hours_and_a_bad_setting_is_an_incident_naming_it(eng, monkeypatch):
    real = local_settings.load()
    monkeypatch.setattr(local_settings, "load", lambda *a, **k: {**real, "urgent_response_within_hours": 2})
    cid = crisis(eng, urgent_kind="urgent_assessment").case_id
    assert the_task(eng, cid, "urgent_assessment")["due_at"] == START + timedelta(hours=2)
    monkeypatch.setattr(local_settings, "load", lambda *a, **k: {**real, "urgent_response_within_hours": 0})
    res = crisis(eng)
    assert "urgent_response_within_hours must be a whole number of hours, 1 or more, got 0" in res.incident["message"]
    assert tasks(eng, res.case_id) == []


def test_when_the_contact_did_not_choose_the_social_work_team_decides_within_the_same_deadline(eng):
    cid = crisis(eng).case_id  # no urgent_kind: the team decides
    assert tasks(eng, cid) == [("decide_response", "social_work")]
    assert the_task(eng, cid, "decide_response")["due_at"] == DUE
    eng.advance_clock(timedelta(hours=1))
    complete(eng, cid, "decide_response", {"urgent_kind": "urgent_assessment",
                                           "decision_reason": "Needs a social worker's view of risks today"}, actor=SW)
    # the assessment keeps the deadline set at the start: the clock is not started again
    assert tasks(eng, cid) == [("urgent_assessment", "social_work")]
    assert the_task(eng, cid, "urgent_assessment")["due_at"] == DUE
    complete(eng, cid, "urgent_assessment", {"needs_now": "Help to get up, wash and eat; husband back in a week",
                                             **VISIT, "onward": "needs_assessment"}, actor=SW)
    [child] = [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "needs_assessment"]
    assert started_data(eng, cid, child["id"])["contact_date"] == "2031-03-03"
    assert tasks(eng, cid) == [("assess_needs", "social_work")]
    [letter] = letters(eng, cid)
    assert "a social worker saw you to look urgently at what you need" in letter
    assert "A social worker will contact you soon to assess your needs" in letter
    # an urgent assessment is no CLD service: only the needs assessment it started has a row
    assert [r["process_id"] for r in cld_full(eng, cid)] == ["needs_assessment"]
    assert timers(eng, cid, "timer.set")[:2] == [("decide_late", "2031-03-03T13:00"),
                                                 ("assessment_late", "2031-03-03T13:00")]


def test_a_decision_left_past_the_deadline_is_escalated_too(eng):
    cid = crisis(eng).case_id
    eng.advance_clock(to=DUE)
    assert fired(eng, cid) == ["decide_late"]
    assert tasks(eng, cid) == [("decide_response", "social_work"), ("response_overdue", "team_manager")]
    complete(eng, cid, "decide_response", {"urgent_kind": "rapid_response", "decision_reason": "Carer gone"})
    # the visit's deadline has passed already: it is escalated at once, in the same step
    assert tasks(eng, cid) == [("rapid_response", "reablement"), ("response_overdue", "team_manager"),
                               ("response_overdue", "team_manager")]
    assert replay_case(eng, cid).ok


# ---------------------------------------------------------------- bad input


def test_an_unknown_kind_of_response_is_an_incident_naming_it_and_nothing_is_asked(eng):
    res = crisis(eng, urgent_kind="ambulance")
    assert "urgent_kind must be 'rapid_response' or 'urgent_assessment' (or absent), got 'ambulance'" in (
        res.incident["message"])
    assert tasks(eng, res.case_id) == []


@pytest.mark.parametrize("data,message", [
    ({"person": ADA}, "crisis_detail must say what the crisis is (text), got None"),
    ({"person": ADA, "crisis_detail": "  "}, "crisis_detail must say what the crisis is (text), got ''"),
    ({"person": {"address": ["4 Mill Lane"]}, "crisis_detail": CRISIS}, "person must be the person's details"),
])
def test_start_data_without_the_crisis_or_the_person_is_an_incident_naming_what_is_missing(eng, data, message):
    res = eng.start("urgent_response", data=data)
    assert message in res.incident["message"]
    assert tasks(eng, res.case_id) == []


def test_a_visit_recorded_without_what_next_is_refused_naming_the_field_and_nothing_changes(eng):
    cid = crisis(eng, urgent_kind="rapid_response").case_id
    n = len(eng.history(cid))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "rapid_response", {"what_was_done": "Visited", "safe_at_home": True})
    assert [e["field"] for e in err.value.errors] == ["onward"]
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "rapid_response", {**VISIT, "onward": "hospital"})
    assert [e["field"] for e in err.value.errors] == ["onward"]
    # not safe at home tonight: what was arranged to keep them safe must be said
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "rapid_response", {**VISIT, "safe_at_home": False, "onward": "reablement"})
    assert [e["field"] for e in err.value.errors] == ["safety_arrangements"]
    assert len(eng.history(cid)) == n and tasks(eng, cid) == [("rapid_response", "reablement")]
    complete(eng, cid, "rapid_response", {**VISIT, "safe_at_home": False, "onward": "reablement",
                                          "safety_arrangements": "Her son stays tonight; night sitter from tomorrow"})
    assert tasks(eng, cid) == [("plan_reablement", "reablement")]


# ---------------------------------------------------------------- from a case record


@pytest.fixture
def app(eng):
    create_demo_users(eng)
    return create_app(eng, run_timers=False)


def test_a_social_worker_starts_an_urgent_response_from_the_case_record(eng, app):
    cid = known_case(eng, ADA)
    sw = api_client(app, "social_worker")
    assert "urgent_response" in [a["action"] for a in sw.get(f"/api/cases/{cid}/actions").json()["actions"]]
    r = sw.post(f"/api/cases/{cid}/actions/urgent_response",
                json={"data": {"crisis_detail": CRISIS, "urgent_kind": "rapid_response"}})
    assert r.status_code == 201, r.text
    assert [(t["element_id"], t["team"]) for t in r.json()["tasks"]] == [("rapid_response", "reablement")]
    [started] = [e for e in events(eng, cid, "instance.started") if e["data"]["process_id"] == "urgent_response"]
    assert started["actor"] == SW
    data = started["data"]["data"]
    assert (data["crisis_detail"], data["urgent_kind"], data["contact_date"]) == (CRISIS, "rapid_response",
                                                                                  "2031-03-03")
    assert data["person"]["name"] == "Ada Clarke" and data["person"]["age"] == 84
    # one urgent response at a time
    r = sw.post(f"/api/cases/{cid}/actions/urgent_response",
                json={"data": {"crisis_detail": "Again", "urgent_kind": "team_decides"}})
    assert r.status_code == 422 and "already under way" in r.json()["message"]
    complete(eng, cid, "rapid_response", {**VISIT, "onward": "close"})
    r = sw.post(f"/api/cases/{cid}/actions/urgent_response",
                json={"data": {"crisis_detail": "A fall tonight", "urgent_kind": "team_decides"}})
    assert r.status_code == 201, r.text
    assert ("decide_response", "social_work") in [(t["element_id"], t["team"]) for t in r.json()["tasks"]]
    [second] = [e for e in events(eng, cid, "instance.started") if e["data"]["process_id"] == "urgent_response"][1:]
    assert "urgent_kind" not in second["data"]["data"]  # the team decides


@pytest.mark.parametrize("data,field", [
    ({"urgent_kind": "rapid_response"}, "crisis_detail"),
    ({"crisis_detail": "   ", "urgent_kind": "rapid_response"}, "crisis_detail"),
    ({"crisis_detail": "bad\x07bell", "urgent_kind": "rapid_response"}, "crisis_detail"),
    ({"crisis_detail": "Fell"}, "urgent_kind"),
    ({"crisis_detail": "Fell", "urgent_kind": "ambulance"}, "urgent_kind"),
])
def test_bad_input_on_the_case_action_names_the_field_and_starts_nothing(eng, app, data, field):
    cid = known_case(eng, ADA)
    n = len(eng.history(cid))
    r = api_client(app, "social_worker").post(f"/api/cases/{cid}/actions/urgent_response", json={"data": data})
    assert r.status_code == 422, r.text
    assert field in [(e["field"] or "").rsplit("/", 1)[-1] for e in r.json()["errors"]]  # data/...: api/inputs.py
    assert len(eng.history(cid)) == n


def test_who_may_start_an_urgent_response(eng, app):
    cid = known_case(eng, ADA)
    n = len(eng.history(cid))
    body = {"data": {"crisis_detail": CRISIS, "urgent_kind": "rapid_response"}}
    auditor = api_client(app, "auditor")
    assert auditor.post(f"/api/cases/{cid}/actions/urgent_response", json=body).status_code == 403
    finance = api_client(app, "finance_officer")
    assert finance.post(f"/api/cases/{cid}/actions/urgent_response", json=body).status_code == 403
    assert len(eng.history(cid)) == n
    assert ("urgent_response", "completed") not in instances(eng, cid)
