"""A hospital admission during reablement or ongoing support, through the JSON API (api/suspend.py).

Joan Barker (tests/test_api_cases.py build_world) has reablement under way since 3 March 2031:
the reminder falls on day 35, the 6-week limit on day 42. Peter Clarke has a signed-off support
plan and a review cycle waiting for its first review. All on the simulated clock, with the real
diagrams, handlers and forms, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

from api import suspend
from engine.clock import parse_instant
from engine.replay import replay_case
from handlers import settings
from tests import test_api_cases
from tests.case_helpers import cld_full, events, fired, fired_at, the_task
from tests.conftest import START
from tests.test_api_cases import client_for

ADMITTED_TO_HOSPITAL = "Admitted to hospital"


world = test_api_cases.world  # (eng, app, cases): Joan's and Peter's case records (a fixture)


def instance_of(eng, case_id, process_id):
    return next(i for i in eng.get_case(case_id)["instances"] if i["process_id"] == process_id)


def as_(app, username):
    """A fresh sign-in: sessions expire on the simulated clock, which these tests move by weeks."""
    return client_for(app, username)


def day(n):
    return (START + timedelta(days=n)).date().isoformat()


def test_joan_in_hospital_for_10_days_with_3_weeks_left_gets_her_3_weeks_after_discharge(world):
    eng, app, cases = world
    joan = cases["joan"]
    iid = instance_of(eng, joan, "reablement")["id"]
    eng.advance_clock(timedelta(days=21))  # 3 weeks of the 6 left
    r = as_(app, "rosa").post(f"/api/cases/{joan}/instances/{iid}/suspend",
                  json={"hospital": "Northby General", "admitted_on": day(21)})
    assert r.status_code == 200, r.text
    assert instance_of(eng, joan, "reablement")["status"] == "suspended"
    eng.advance_clock(timedelta(days=10))
    assert fired(eng, joan) == []
    r = as_(app, "rosa").post(f"/api/cases/{joan}/instances/{iid}/resume", json={"discharged_on": day(31)})
    assert r.status_code == 200, r.text
    assert r.json() == {"outcome": "resumed", "instance_id": iid, "started": []}
    # the reminder had 2 weeks left, the limit 3 weeks
    eng.advance_clock(to=START + timedelta(days=31 + 21) - timedelta(minutes=1))
    assert fired(eng, joan) == ["end_reminder"]
    assert fired_at(eng, joan, "end_reminder")[0].startswith(day(31 + 14))
    eng.advance_clock(timedelta(minutes=1))
    assert fired(eng, joan)[-1] == "period_ended"
    assert fired_at(eng, joan, "period_ended")[0].startswith(day(52) + "T09:00")
    assert the_task(eng, joan, "decide_extend_or_end")["team"] == "team_manager"
    [sus] = events(eng, joan, "instance.suspended")
    assert sus["actor"] == "rosa" and sus["data"]["details"] == {
        "kind": "hospital_admission", "hospital": "Northby General", "admitted_on": day(21)}
    report = replay_case(eng, joan)
    assert report.ok, str(report)
    assert eng.verify(joan)[1] == []


def test_a_council_that_ends_reablement_on_admission_refers_joan_to_the_hospital_team(world, monkeypatch):
    real = settings.load()
    monkeypatch.setattr(settings, "load", lambda path=settings.CONFIG: {
        **real, "reablement_on_hospital_discharge": "end_and_refer"})
    eng, app, cases = world
    joan = cases["joan"]
    iid = instance_of(eng, joan, "reablement")["id"]
    eng.advance_clock(timedelta(days=21))
    assert as_(app, "rosa").post(f"/api/cases/{joan}/instances/{iid}/suspend",
                     json={"hospital": "Northby General", "admitted_on": day(20)}).status_code == 200
    eng.advance_clock(timedelta(days=10))
    r = as_(app, "rosa").post(f"/api/cases/{joan}/instances/{iid}/resume", json={"discharged_on": day(30)})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "ended_and_referred"
    assert instance_of(eng, joan, "reablement")["status"] == "cancelled"
    referral = instance_of(eng, joan, "hospital_discharge")
    assert r.json()["started"] == [referral["id"]]
    assert [(t["element_id"], t["team"]) for t in eng.list_tasks(case_id=joan)] == [
        ("respond_to_referral", "hospital_team")]
    [started] = [e for e in events(eng, joan, "instance.started") if e["instance_id"] == referral["id"]]
    assert started["data"]["data"]["ward"] == "Northby General"
    assert started["data"]["data"]["person"]["name"] == "Joan Barker"
    eng.advance_clock(timedelta(days=30))
    assert "period_ended" not in fired(eng, joan) and "end_reminder" not in fired(eng, joan)
    [row] = [r for r in cld_full(eng, joan) if r["process_id"] == "reablement"]
    assert (row["event_end"], row["outcome"]) == (day(31), ADMITTED_TO_HOSPITAL)
    report = replay_case(eng, joan)
    assert report.ok, str(report)
    assert eng.verify(joan)[1] == []


def test_peter_home_from_hospital_gets_an_unplanned_review_with_the_reason_hospital(world):
    eng, app, cases = world
    peter = cases["peter"]
    cycle = instance_of(eng, peter, "review")
    due_before = dict(eng.instance_snapshot(cycle["id"])["timers"])
    eng.advance_clock(timedelta(days=7))
    assert as_(app, "sam").post(f"/api/cases/{peter}/instances/{cycle['id']}/suspend",
                    json={"hospital": "Southby Royal", "admitted_on": day(6)}).status_code == 200
    eng.advance_clock(timedelta(days=5))
    r = as_(app, "sam").post(f"/api/cases/{peter}/instances/{cycle['id']}/resume", json={"discharged_on": day(12)})
    assert r.status_code == 200, r.text
    [review] = r.json()["started"]
    # the planned cycle keeps its remaining time: moved on by the 5 days of the stay
    due_after = dict(eng.instance_snapshot(cycle["id"])["timers"])
    assert due_before and set(due_after) == set(due_before)
    for element, due in due_before.items():
        assert parse_instant(due_after[element]) == parse_instant(due) + timedelta(days=5)
    [started] = [e for e in events(eng, peter, "instance.started") if e["instance_id"] == review]
    assert started["data"]["data"]["review_reason"] == "Hospital"
    assert started["actor"] == "sam"
    assert eng.incidents() == []
    task = the_task(eng, peter, "review_plan")
    assert task["instance_id"] == review and task["team"] == "social_work"
    eng.complete_task(task["id"], {"needs_changed": False, "plan_working": True}, actor="sam")
    [row] = [r for r in cld_full(eng, peter) if r["event_type"] == "Review"]
    assert (row["review_reason"], row["review_type"], row["event_start"]) == ("Hospital", "Unplanned", day(12))
    report = replay_case(eng, peter)
    assert report.ok, str(report)


def test_a_hospital_stay_moves_the_first_review_on_but_never_past_the_end_of_the_six_to_eight_week_window(world):
    """Peter's plan was signed off on 3 March 2031: first review 15 April (6 weeks, after Easter Monday), the
    window ending 28 April (8 weeks). In hospital for 20 days from 2 April (13 days before the review), the review
    moves on by the stay — but not to 5 May, past the 8 weeks: it falls due on 28 April. (A year on, the same
    holds for the 12 months between reviews: review.bpmn review_limit_at.)"""
    eng, app, cases = world
    peter = cases["peter"]
    cycle = instance_of(eng, peter, "review")
    assert dict(eng.instance_snapshot(cycle["id"])["timers"])["wait_for_review"].startswith("2031-04-15T09:00")
    eng.advance_clock(timedelta(days=30))
    assert as_(app, "sam").post(f"/api/cases/{peter}/instances/{cycle['id']}/suspend",
                                json={"hospital": "Southby Royal", "admitted_on": day(30)}).status_code == 200
    eng.advance_clock(timedelta(days=20))
    r = as_(app, "sam").post(f"/api/cases/{peter}/instances/{cycle['id']}/resume", json={"discharged_on": day(50)})
    assert r.status_code == 200, r.text
    [resumed] = events(eng, peter, "instance.resumed")
    assert [(t["element_id"], t["due_before"][:16], t["due_after"][:16]) for t in resumed["data"]["timers"]] == [
        ("wait_for_review", "2031-04-15T09:00", "2031-04-28T09:00")]
    eng.advance_clock(to=parse_instant("2031-04-28T08:59:00+00:00"))
    assert "wait_for_review" not in fired(eng, peter)
    eng.advance_clock(timedelta(minutes=1))
    assert fired_at(eng, peter, "wait_for_review")[0].startswith("2031-04-28T09:00")
    planned = [t for t in eng.list_tasks(case_id=peter)
               if t["element_id"] == "review_plan" and t["instance_id"] == cycle["id"]]
    assert len(planned) == 1 and planned[0]["team"] == "social_work"
    report = replay_case(eng, peter)
    assert report.ok, str(report)


def test_a_short_stay_moves_the_first_review_by_its_length_within_the_window(world):
    eng, app, cases = world
    peter = cases["peter"]
    cycle = instance_of(eng, peter, "review")
    eng.advance_clock(timedelta(days=30))
    as_(app, "sam").post(f"/api/cases/{peter}/instances/{cycle['id']}/suspend",
                         json={"hospital": "Southby Royal", "admitted_on": day(30)})
    eng.advance_clock(timedelta(days=13))  # 13 days: 15 April + 13 = 28 April, the window's last day, exactly
    as_(app, "sam").post(f"/api/cases/{peter}/instances/{cycle['id']}/resume", json={"discharged_on": day(43)})
    [resumed] = events(eng, peter, "instance.resumed")
    assert resumed["data"]["timers"][0]["due_after"][:16] == "2031-04-28T09:00"
    assert resumed["data"]["not_after"] == {"wait_for_review": "2031-04-28T09:00:00+00:00"}
    report = replay_case(eng, peter)
    assert report.ok, str(report)


def test_a_hospital_stay_never_moves_the_first_direct_payment_review_past_six_months(world):
    """A direct payment signed off on 3 March 2031: first review due 4 August (5 months, the Monday after), the
    limit 3 September (reg 7: within 6 months). Seven weeks in hospital from 1 July would move the review to 22
    September; it falls due on 3 September."""
    from tests.test_rules_casework import to_plan

    eng, app, _cases = world
    cid = to_plan(eng, "direct_payment")
    cycle = instance_of(eng, cid, "direct_payment_review")
    assert dict(eng.instance_snapshot(cycle["id"])["timers"])["wait_for_dp_review"].startswith("2031-08-04T09:00")
    eng.advance_clock(to=parse_instant("2031-07-01T09:00:00+00:00"))
    assert as_(app, "sam").post(f"/api/cases/{cid}/instances/{cycle['id']}/suspend",
                                json={"hospital": "Southby Royal", "admitted_on": "2031-07-01"}).status_code == 200
    eng.advance_clock(timedelta(days=49))
    r = as_(app, "sam").post(f"/api/cases/{cid}/instances/{cycle['id']}/resume",
                             json={"discharged_on": "2031-08-19"})
    assert r.status_code == 200, r.text
    [resumed] = [e for e in events(eng, cid, "instance.resumed") if e["instance_id"] == cycle["id"]]
    assert [(t["element_id"], t["due_after"][:16]) for t in resumed["data"]["timers"]] == [
        ("wait_for_dp_review", "2031-09-03T09:00")]
    report = replay_case(eng, cid)
    assert report.ok, str(report)


def test_a_review_of_a_case_without_a_signed_off_plan_is_refused_before_anything_starts(world):
    eng, _app, cases = world
    joan = eng.get_case(cases["joan"])
    assert "no signed-off support plan to review" in suspend.review_refusal(joan["data"])
    assert suspend.review_refusal(eng.get_case(cases["peter"])["data"]) is None


def test_bad_requests_are_refused_and_change_nothing(world):
    eng, app, cases = world
    joan, peter = cases["joan"], cases["peter"]
    iid = instance_of(eng, joan, "reablement")["id"]
    before = len(eng.history(joan))
    url = f"/api/cases/{joan}/instances/{iid}"

    r = as_(app, "rosa").post(f"{url}/resume", json={"discharged_on": day(0)})
    assert r.status_code == 409 and "is not suspended" in r.json()["message"]
    r = as_(app, "rosa").post(f"{url}/suspend", json={"hospital": " ", "admitted_on": day(1)})
    assert r.status_code == 422
    assert "Enter the hospital the person was admitted to" in r.json()["message"]
    assert "must be today or in the past" in r.json()["message"]
    r = as_(app, "rosa").post(f"{url}/suspend", json={"hospital": "Northby General", "admitted_on": "31/02/2031"})
    assert r.status_code == 422 and "must be a real date" in r.json()["message"]
    r = as_(app, "audrey").post(f"{url}/suspend", json={"hospital": "Northby General", "admitted_on": day(0)})
    assert r.status_code == 403
    assessment = instance_of(eng, peter, "needs_assessment")["id"]
    r = client_for(app, "sam").post(f"/api/cases/{peter}/instances/{assessment}/suspend",
                                    json={"hospital": "Northby General", "admitted_on": day(0)})
    assert r.status_code == 422 and "pauses reablement or ongoing support" in r.json()["message"]
    r = as_(app, "rosa").post(f"/api/cases/{joan}/instances/99999/suspend",
                              json={"hospital": "X", "admitted_on": day(0)})
    assert r.status_code == 404
    assert len(eng.history(joan)) == before
    assert instance_of(eng, joan, "reablement")["status"] == "waiting"

    eng.advance_clock(timedelta(days=3))
    r = as_(app, "rosa").post(f"{url}/suspend", json={"hospital": "Northby General", "admitted_on": day(3)})
    assert r.status_code == 200
    task = the_task(eng, joan, "deliver_reablement")
    r = as_(app, "rosa").post(f"/api/tasks/{task['id']}/complete",
                  json={"data": {"outcome": "best_independence_reached", "summary": "Independent again"}})
    assert r.status_code == 409 and "is suspended" in r.json()["message"]
    r = as_(app, "rosa").post(f"{url}/resume", json={"discharged_on": day(2)})
    assert r.status_code == 422 and "on or after the admission" in r.json()["message"]
    assert instance_of(eng, joan, "reablement")["status"] == "suspended"


def test_an_admission_before_the_process_started_or_the_person_was_born_is_refused_naming_the_bound(world):
    eng, app, cases = world
    joan = cases["joan"]
    iid = instance_of(eng, joan, "reablement")["id"]
    url = f"/api/cases/{joan}/instances/{iid}/suspend"
    before = len(eng.history(joan))
    for typed in ("1890-01-01", day(-1)):
        r = as_(app, "rosa").post(url, json={"hospital": "Northby General", "admitted_on": typed})
        assert r.status_code == 422, typed
        assert ("The date of the admission must be on or after the day reablement started (3 March 2031)"
                in r.json()["message"])
        assert r.json()["errors"][0]["field"] == "admitted_on"
    assert len(eng.history(joan)) == before
    # a date of birth later than the start (a record corrected since) is the bound then
    inst = {"process_id": "review", "started_at": START, "case": {"data": {"person": {"date_of_birth": "2031-03-05"}}}}
    assert suspend.earliest_admission(inst) == (parse_instant("2031-03-05T00:00:00+00:00").date(), "the date of birth")
    inst["case"] = {"data": {"person": {"date_of_birth": "1948-02-29"}}}
    assert suspend.earliest_admission(inst) == (START.date(), "the day ongoing support (reviews) started")
    r = as_(app, "rosa").post(url, json={"hospital": "Northby General", "admitted_on": day(0)})
    assert r.status_code == 200, r.text
