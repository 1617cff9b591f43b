"""Casework rules a council would otherwise reject (issue 10, item 4), each a scenario on the
simulated clock with the real diagrams, handlers and forms, on SQLite and PostgreSQL:

* the 28-day assessment target counts from the request for assessment (reablement's referral on,
  or the contact when the front door referred straight to assessment), and an escalated
  assessment keeps its due date and is counted overdue in the inbox;
* a review that raises the budget above the approval threshold waits for a team manager;
* a direct payment for a person without capacity goes to an authorised person (s.32); the
  first direct payment review falls before the 6-month limit and review dates are working days.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.demo_users import create_demo_users, demo_password, demo_username
from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers import settings as local_settings
from tests.case_helpers import cld_rows
from tests.test_process_assessment_to_review import (
    ASSESSMENT,
    PETER,
    SMALL,
    TO_SUPPORT_PLANNING,
    assessment,
    calls,
    complete,
    events,
    fired,
    open_tasks,
    plan,
    ras,
    task,
    with_settings,
)

ROOT = Path(__file__).resolve().parent.parent
PROCESS_FILES = [ROOT / "processes" / f"{p}.bpmn" for p in (
    "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment", "support_plan", "review",
    "direct_payment_review")]
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)  # a Monday


@pytest.fixture
def eng(db_url):
    # review dates on working days, as shipped (timescales.json review_dates_on_working_days: true)
    assert local_settings.load()["review_dates_on_working_days"] is True
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy(PROCESS_FILES)
    yield engine
    engine.db.dispose()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def timers_set(eng, cid) -> list[tuple[str, str]]:
    return [(e["data"]["element_id"], e["data"]["due_at"]) for e in events(eng, cid, "timer.set")]


def after_reablement(eng, contact_date="2031-02-10"):
    """A needs assessment started as reablement starts it: on the day reablement refers on,
    carrying the first contact's date."""
    return eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "age": 82,
                                               "reason": "Falls at home", "reablement_outcome": "needs_remain",
                                               "reablement_extensions": [], "contact_date": contact_date})


# ---------------------------------------------------------------- (a) the assessment target


def test_after_reablement_the_28_day_target_counts_from_the_referral_not_the_first_contact(eng):
    # first contact 10 Feb, 3 weeks of reablement, referred on today (3 March): due 31 March, not overdue
    cid = after_reablement(eng).case_id
    [t] = open_tasks(eng, cid)
    assert (t["element_id"], t["team"]) == ("assess_needs", "social_work")
    assert t["due_at"] == at("2031-03-31T16:00:00")  # 17:00 BST (the clocks went forward on 30 March)
    assert eng.advance_clock(to=at("2031-03-31T15:59:00")) == 0
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["assess_needs"]  # day 28: due, not yet late
    eng.advance_clock(timedelta(minutes=1))
    assert fired(eng, cid) == ["assessment_overdue_timer"]
    assert task(eng, cid, "assessment_overdue")["team"] == "team_manager"


def test_straight_to_assessment_the_target_counts_from_the_contact(eng):
    res = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "contact_date": "2031-02-24"})
    assert task(eng, res.case_id, "assess_needs")["due_at"] == at("2031-03-24T17:00:00")


def test_in_summer_the_target_is_five_o_clock_uk_time_not_utc(eng):
    # 28 days from 2 June 2031 is Monday 30 June; 17:00 British Summer Time is 16:00 UTC
    res = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "contact_date": "2031-06-02"})
    assert task(eng, res.case_id, "assess_needs")["due_at"] == at("2031-06-30T16:00:00")
    assert eng.advance_clock(to=at("2031-06-30T15:59:00")) == 0
    eng.advance_clock(timedelta(minutes=1))
    assert fired(eng, res.case_id) == ["assessment_overdue_timer"]


def test_a_request_made_after_midnight_uk_time_counts_from_that_uk_day(eng):
    # 23:30 UTC on 1 June 2031 is 00:30 on 2 June in the UK: the request is of 2 June, due 30 June at 17:00 BST
    eng.advance_clock(to=at("2031-06-01T23:30:00"))
    res = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER})
    assert task(eng, res.case_id, "assess_needs")["due_at"] == at("2031-06-30T16:00:00")


def test_a_council_that_counts_from_first_contact_or_in_working_days_says_so_in_timescales(eng, monkeypatch):
    with_settings(monkeypatch, assessment_target_from="first_contact")
    cid = after_reablement(eng).case_id
    assert task(eng, cid, "assess_needs")["due_at"] == at("2031-03-10T17:00:00")  # 10 Feb + 28
    with_settings(monkeypatch, assessment_target_from="request_for_assessment", assessment_target_working_days=True,
                  assessment_target_days=20)
    # 20 working days from Mon 3 March 2031: 31 March (no bank holiday; Good Friday is 11 April)
    cid = after_reablement(eng).case_id
    assert task(eng, cid, "assess_needs")["due_at"] == at("2031-03-31T16:00:00")
    with_settings(monkeypatch, assessment_target_from="the_moon")
    res = after_reablement(eng)
    assert "assessment_target_from must be" in res.incident["message"]
    assert open_tasks(eng, res.case_id) == []


def test_an_escalated_assessment_keeps_its_due_date_and_the_inbox_counts_it_overdue(eng):
    cid = after_reablement(eng).case_id
    due = at("2031-03-31T16:00:00")
    assert timers_set(eng, cid) == [("assessment_overdue_timer", "2031-03-31T16:00:00.000000+00:00")]
    eng.advance_clock(to=due + timedelta(days=2))
    assessment_task = task(eng, cid, "assess_needs")
    assert assessment_task["due_at"] == due  # the escalation does not take the due date away
    assert task(eng, cid, "assessment_overdue")["due_at"] is None
    app = create_app(eng, run_timers=False)
    create_demo_users(eng)
    client = TestClient(app)
    r = client.post("/api/session", json={"username": demo_username("social_worker"),
                                          "password": demo_password("social_worker")})
    assert r.status_code == 200, r.text
    body = client.get("/api/tasks?scope=team&team=social_work").json()
    assert body["counts"]["overdue"] == 1
    [row] = body["tasks"]
    assert row["element_id"] == "assess_needs" and row["due_at"].startswith("2031-03-31T16:00")
    overdue_only = client.get("/api/tasks?scope=team&team=social_work&due=overdue").json()
    assert [t["id"] for t in overdue_only["tasks"]] == [assessment_task["id"]]
    # the manager acts, the assessment is done late and ends its CLD event that day
    complete(eng, cid, "assessment_overdue", {"action_taken": "Reallocated"}, actor="manager")
    assert task(eng, cid, "assess_needs")["due_at"] == due
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition"))
    assert task(eng, cid, "score_needs")["due_at"] is None
    assert cld_rows(eng, cid) == [(ASSESSMENT, "2031-03-03", "2031-04-02", TO_SUPPORT_PLANNING)]


# ---------------------------------------------------------------- (b) a budget increase at review


def to_first_review(eng):
    """Peter, eligible, small budget (£17,745.45), plan signed off; the first review is open (15 April 2031)."""
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                              "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan())
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    eng.advance_clock(timedelta(days=43))  # day 42 is Easter Monday: the review is on Tuesday 15 April
    task(eng, cid, "review_plan")
    return cid


def review_instances(eng, cid):
    return [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "review"]


def next_review_budget(eng, cid) -> str:
    nxt = review_instances(eng, cid)[1]
    started = [e for e in events(eng, cid, "instance.started") if e["instance_id"] == nxt["id"]][0]
    return started["data"]["data"]["budget_amount"]


def test_a_review_that_raises_the_budget_exactly_to_the_threshold_needs_no_approval(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 30000})
    [check] = calls(eng, cid, "check_budget_change")
    assert check["output"]["needs_approval"] is False and check["output"]["approval_threshold"] == "30000.00"
    assert [t["element_id"] for t in open_tasks(eng, cid)] == []  # nothing for a manager
    assert eng.get_case(cid)["data"]["current_budget_amount"] == "30000.00"
    assert next_review_budget(eng, cid) == "30000.00"


def test_a_review_that_raises_the_budget_above_the_threshold_waits_for_a_team_manager(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 30000.01})
    approval = task(eng, cid, "approve_budget_change")
    assert (approval["team"], approval["form"]) == ("team_manager", "budget_change_approval")
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["approve_budget_change"]
    # the task carries the old and new amounts; nothing takes effect yet
    data = eng.instance_snapshot(approval["instance_id"])["data"]["budget_check"]
    assert (data["previous_amount"], data["new_amount"], data["difference"]) == ("17745.45", "30000.01", "12254.56")
    assert "a team manager must approve it before it takes effect" in data["explanation"]
    assert eng.get_case(cid)["data"].get("current_budget_amount") in (None, "17745.45")
    assert len(review_instances(eng, cid)) == 1  # the next review waits for the decision
    with pytest.raises(ValidationError):  # a refusal needs its reasons
        complete(eng, cid, "approve_budget_change", {"approved": False}, actor="manager")
    complete(eng, cid, "approve_budget_change", {"approved": True, "comments": "Night support agreed"},
             actor="manager")
    assert eng.get_case(cid)["data"]["current_budget_amount"] == "30000.01"
    assert next_review_budget(eng, cid) == "30000.01"
    assert [e["data"]["element_id"] for e in events(eng, cid, "task.completed")][-2:] == [
        "review_plan", "approve_budget_change"]
    assert cld_rows(eng, cid)[-1] == ("Review", "2031-04-15", "2031-04-15", TO_SUPPORT_PLANNING)


def test_an_increase_the_manager_does_not_approve_leaves_the_budget_as_it_was(eng):
    cid = to_first_review(eng)
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 45000})
    complete(eng, cid, "approve_budget_change", {"approved": False,
                                                 "comments": "Try the day centre first; review in 3 months"},
             actor="manager")
    assert open_tasks(eng, cid) == []
    assert eng.get_case(cid)["data"]["current_budget_amount"] == "17745.45"
    assert next_review_budget(eng, cid) == "17745.45"
    assert cld_rows(eng, cid)[-1] == ("Review", "2031-04-15", "2031-04-15", "No change in package")


# ---------------------------------------------------------------- (c) direct payments and review dates


def to_plan(eng, money_management="council_managed", recipient=None, months=12):
    """Peter eligible, small budget, plan signed off on Monday 3 March 2031 at 09:00, reviewed every `months`."""
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                              "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    written = plan(money_management, months)
    if recipient is not None:
        written["direct_payment_recipient"] = recipient
    complete(eng, cid, "write_plan", written)
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    return cid


def plan_letter(eng, cid) -> str:
    [body] = [" ".join(c["output"]["body"].split()) for c in calls(eng, cid, "support_plan_letter")]
    return body


def test_a_plan_paid_to_an_authorised_person_says_so_and_a_nominated_person_needs_capacity(eng):
    wrong = to_plan_step(eng)
    with pytest.raises(ValidationError):  # a nominated person is for a person WITH capacity
        complete(eng, wrong, "write_plan", {**plan("direct_payment"), "direct_payment_recipient": {
            "role": "nominated_person", "has_capacity": False, "name": "Susan Clarke", "relationship": "daughter"}})
    with pytest.raises(ValidationError):  # an authorised person is for a person who lacks it
        complete(eng, wrong, "write_plan", {**plan("direct_payment"), "direct_payment_recipient": {
            "role": "authorised_person", "has_capacity": True, "name": "Susan Clarke", "relationship": "daughter"}})
    with pytest.raises(ValidationError):  # and is named
        complete(eng, wrong, "write_plan", {**plan("direct_payment"), "direct_payment_recipient": {
            "role": "authorised_person", "has_capacity": False}})
    assert [t["element_id"] for t in open_tasks(eng, wrong)] == ["write_plan"]  # nothing moved

    cid = to_plan(eng, "direct_payment", {"role": "authorised_person", "has_capacity": False,
                                          "name": "Susan Clarke", "relationship": "daughter"})
    letter = plan_letter(eng, cid)
    assert ("as a direct payment paid to Susan Clarke (daughter), your authorised person "
            "(Care Act 2014, section 32)") in letter
    assert "nominated person" not in letter
    assert eng.get_case(cid)["data"]["current_plan"]["plan"]["direct_payment_recipient"]["role"] == "authorised_person"

    nominated = to_plan(eng, "direct_payment", {"role": "nominated_person", "has_capacity": True,
                                                "name": "Susan Clarke", "relationship": "daughter"})
    letter = plan_letter(eng, nominated)
    assert "paid to Susan Clarke (daughter), your nominated person. You asked for them" in letter
    assert "authorised person" not in letter
    own = to_plan(eng, "direct_payment")
    assert "We pay your personal budget to you, or someone you have chosen," in plan_letter(eng, own)


def to_plan_step(eng):
    """A case at write_plan."""
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                              "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    return cid


def test_a_person_who_loses_capacity_gets_an_authorised_person_not_a_nominated_one(eng):
    cid = to_plan(eng, "direct_payment")
    eng.advance_clock(timedelta(days=30))
    eng.start("direct_payment_review", case_id=cid, data={
        "dp_review_trigger": "capacity", "dp_review_note": "Peter has dementia and can no longer decide"})
    review = task(eng, cid, "review_direct_payment")
    base = {"used_to_meet_needs": True, "records_kept": True, "able_to_manage": False,
            "recipient": {"name": "Susan Clarke", "relationship": "daughter"},
            "outcome_reason": "Susan will manage the payment"}
    with pytest.raises(ValidationError):
        eng.complete_task(review["id"], {**base, "has_capacity": False, "outcome": "nominated_person"})
    with pytest.raises(ValidationError):
        eng.complete_task(review["id"], {**base, "outcome": "authorised_person"})  # capacity not recorded
    with pytest.raises(ValidationError):
        eng.complete_task(review["id"], {**{k: v for k, v in base.items() if k != "recipient"},
                                         "has_capacity": False, "outcome": "authorised_person"})
    eng.complete_task(review["id"], {**base, "has_capacity": False, "outcome": "authorised_person"})
    change = task(eng, cid, "arrange_change")
    assert change["team"] == "social_work"
    complete(eng, cid, "arrange_change", {"effective_from": "2031-04-07",
                                          "what_was_arranged": "Paid to Susan as authorised person"})
    case = eng.get_case(cid)["data"]
    assert case["direct_payment_recipient"] == {"role": "authorised_person", "name": "Susan Clarke",
                                                "relationship": "daughter", "has_capacity": False,
                                                "from": "2031-04-07"}
    assert case.get("direct_payment_ended_at") is None  # still a direct payment
    assert [r for r in cld_rows(eng, cid) if r[0] == "Service"] == [("Service", "2031-03-03", None,
                                                                       "Provision of service")]


def test_the_first_direct_payment_review_falls_before_the_six_month_limit_on_a_working_day(eng):
    cid = to_plan(eng, "direct_payment")
    # due 5 months after sign-off: Sunday 3 August 2031 -> Monday 4 August; escalated 14 days later,
    # well before the limit (3 September 2031)
    assert ("wait_for_dp_review", "2031-08-04T09:00:00.000000+00:00") in timers_set(eng, cid)
    eng.advance_clock(to=at("2031-08-04T08:59:00"))
    assert "review_direct_payment" not in [t["element_id"] for t in open_tasks(eng, cid)]
    eng.advance_clock(timedelta(minutes=1))
    dp = task(eng, cid, "review_direct_payment")
    assert dp["team"] == "social_work"
    assert dp["due_at"] == at("2031-08-18T09:00:00") < at("2031-09-03T09:00:00")
    eng.advance_clock(to=at("2031-08-18T09:00:00"))
    assert task(eng, cid, "dp_review_overdue")["team"] == "team_manager"
    assert task(eng, cid, "review_direct_payment")["due_at"] == at("2031-08-18T09:00:00")  # kept when escalated


def test_a_long_grace_is_cut_to_the_limit_and_a_first_review_due_at_the_limit_is_refused(eng, monkeypatch):
    with_settings(monkeypatch, direct_payment_review_overdue_grace="P60D")
    cid = to_plan(eng, "direct_payment")
    eng.advance_clock(to=at("2031-08-04T09:00:00"))
    assert task(eng, cid, "review_direct_payment")["due_at"] == at("2031-09-03T09:00:00")  # the limit itself
    with_settings(monkeypatch, direct_payment_first_review_due="P6M")
    bad = to_plan(eng, "direct_payment")
    [incident] = [i for i in eng.get_case(bad)["instances"] if i["process_id"] == "direct_payment_review"]
    assert incident["status"] == "error"
    assert any("direct_payment_first_review_due (P6M) must be earlier than direct_payment_first_review (P6M)"
               in e["data"]["message"] for e in events(eng, bad, "incident.opened"))


def test_a_review_due_on_a_bank_holiday_moves_to_the_next_working_day(eng):
    cid = to_plan(eng)
    # 42 days after Monday 3 March 2031 is Easter Monday, 14 April: the review is on Tuesday 15 April
    assert "We will first review your plan on 15 April 2031" in plan_letter(eng, cid)
    assert ("wait_for_review", "2031-04-15T09:00:00.000000+00:00") in timers_set(eng, cid)
    eng.advance_clock(to=at("2031-04-15T08:59:00"))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(minutes=1))
    review = task(eng, cid, "review_plan")
    assert (review["team"], review["due_at"]) == ("social_work", at("2031-04-28T09:00:00"))  # sign-off + P56D, a Monday
    complete(eng, cid, "review_plan", {"needs_changed": False})
    # the next: 12 months on, Thursday 15 April 2032 (a working day)
    assert timers_set(eng, cid)[-1] == ("wait_for_review", "2032-04-15T09:00:00.000000+00:00")
    assert cld_rows(eng, cid)[-1] == ("Review", "2031-04-15", "2031-04-15", "No change in package")


def test_an_annual_review_never_moves_past_twelve_months_but_a_shorter_one_moves_to_the_next_working_day(eng):
    """Reviews no more than 12 months apart (Care Act guidance 13.32). A review done on Friday 25 April 2031: 12
    months on is Sunday 25 April 2032, and the next working day (Monday 26 April) would be more than 12 months
    after it; the review is due on the working day before, Friday 23 April 2032 (it was on the Monday)."""
    cid = to_plan(eng)
    eng.advance_clock(to=at("2031-04-25T10:00:00"))  # the first review (due 15 April) done on a Friday
    complete(eng, cid, "review_plan", {"needs_changed": False})
    assert timers_set(eng, cid)[-1] == ("wait_for_review", "2032-04-23T10:00:00.000000+00:00")
    eng.advance_clock(to=at("2032-04-23T09:59:00"))
    assert [t["element_id"] for t in open_tasks(eng, cid)] == []
    eng.advance_clock(timedelta(minutes=1))
    review = task(eng, cid, "review_plan")
    assert review["due_at"] == at("2032-05-07T10:00:00")  # + review_overdue_grace (14 days), a Friday

    # a full requested review moves the next planned one to 12 months after it: the same rule
    eng.advance_clock(to=at("2032-04-23T11:00:00"))
    complete(eng, cid, "review_plan", {"needs_changed": False})  # the planned review, on the Friday
    assert timers_set(eng, cid)[-1] == ("wait_for_review", "2033-04-22T11:00:00.000000+00:00")  # 23rd: Saturday
    eng.advance_clock(to=at("2032-12-24T10:00:00"))  # Friday: 12 months on is Sunday, then Christmas
    eng.start("review", case_id=cid, actor="sw_jane", data={
        "review_reason": "Other Reason", "review_requested_by": "person", "review_request_note": "Moved flat"})
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True, "full_review": True})
    eng.advance_clock(to=at("2033-04-22T11:00:00"))  # the planned date comes: counted again from the full review
    assert timers_set(eng, cid)[-1] == ("wait_for_review", "2033-12-23T10:00:00.000000+00:00")


def test_a_review_every_six_months_on_a_saturday_moves_to_the_monday_within_the_twelve_months(eng):
    cid = to_plan(eng, months=6)
    eng.advance_clock(to=at("2031-04-25T10:00:00"))  # Friday; 6 months on is Saturday 25 October 2031
    complete(eng, cid, "review_plan", {"needs_changed": False})
    assert timers_set(eng, cid)[-1] == ("wait_for_review", "2031-10-27T10:00:00.000000+00:00")


def test_a_requested_review_target_on_a_weekend_and_bank_holiday_moves_to_the_next_working_day(eng):
    cid = to_plan(eng)
    eng.advance_clock(to=at("2031-04-19T10:00:00"))  # Saturday: 14 days on is Saturday 3 May; Monday 5 May is
    eng.start("review", case_id=cid, actor="sw_jane", data={  # the early May bank holiday
        "review_reason": "Carer related", "review_requested_by": "carer", "review_request_note": "Carer unwell"})
    reviews = [t for t in open_tasks(eng, cid) if t["element_id"] == "review_plan"]
    # the planned review (open since 15 April) keeps its date; the requested one is due Tuesday 6 May
    assert sorted(t["due_at"] for t in reviews) == [at("2031-04-28T09:00:00"), at("2031-05-06T10:00:00")]
