"""Carers in their own right (issue 10, item 4's carer rule and item 8's carer questions), end to end on the
simulated clock with the real diagrams, handlers and forms, on SQLite and PostgreSQL.

- A carer's assessment whenever a carer may have needs, whatever the cared-for person's eligibility (s.10).
- A carer who contacts the council on their own (start data carer_self_contact): assessed on their own case.
- Eligible: the carer's support plan (budget from the assessment's level, agreed with the carer, signed off by a
  team manager, a letter with the first review date, reviews at the plan's interval). Not eligible: information
  and advice, and a letter with the reasons and the advice.
- The carer's questions: their own words, willing and able to go on caring, work, education, training and
  leisure (s.10(5)-(6)).
- Client Level Data: the carer's own rows (Assessment, and Carer Support services).
- Bad input: a carer's assessment for an unknown carer is refused with a clear error and nothing stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.replay import replay_case
from engine.runtime import Engine
from handlers import cld
from handlers.carers import check_carer_start
from tests.case_helpers import cld_full, cld_rows
from tests.casework_helpers import casework_engine
from tests.test_process_assessment_to_review import (
    PETER,
    SMALL,
    SUSAN,
    assessment,
    calls,
    carer_assessment,
    children_started,
    complete,
    events,
    fired,
    instances,
    letters,
    open_tasks,
    ras,
    with_settings,
)

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = [ROOT / "processes" / f"{p}.bpmn" for p in (
    "needs_assessment", "carers_assessment", "carers_support_plan", "personal_budget", "financial_assessment",
    "support_plan", "review",
    "direct_payment_review")]
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)  # a Monday
ASSESSMENT, SERVICE = "Assessment", "Service"
TO_SUPPORT_PLANNING = "Progress to Support Planning / Services"
NFA_NO_SERVICES = "NFA – No services offered: other reason"
PROVISION = "Provision of service"
ENDED_AS_PLANNED = "Service ended as planned"
TO_REASSESSMENT = "Progress to Re-assessment / Unplanned Review"

# Ann Lee cares for her husband Bill; she rings the council about herself
ANN = {"name": "Ann Lee", "address": ["4 Rope Walk", "Northtown", "NS3 1CC"], "relationship": "wife",
       "date_of_birth": "1958-11-02", "gender": "Female"}
CARER_QUESTIONS = {
    "carer_views": "I love him but I have not slept properly in months",
    "outcomes_wanted": "A night's sleep twice a week and to keep my Saturday job",
    "willing_to_continue": "yes_with_support",
    "able_to_continue": "not_sure",
    "caring_concerns": "If I fall ill there is nobody else",
    "cares_for_how_long": "50_hours_or_more",
    "work_wishes": "Keep my Saturday job at the library",
    "education_training_wishes": "Finish the bookkeeping course I stopped",
    "leisure_wishes": "Swim once a week",
}


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES)


def carer_plan(support_type="direct_to_carer", money="direct_payment", held_by="carer", months=6) -> dict:
    return {"outcomes": [{"label": "Two good nights' sleep a week", "how_met": "A night sitter on Tuesdays and Fridays",
                          "provided_by": "Northtown Sitters"},
                         {"label": "Keep my Saturday job", "how_met": "A direct payment for a Saturday carer"}],
            "support_type": support_type, "money_management": money, "budget_held_by": held_by,
            "contingency_plan": "Her son Tom is called first; if he cannot come, the emergency duty team arranges care",
            "coordinating_worker": {"name": "Jane Smith", "role": "social worker", "phone": "01632 960123"},
            "review_frequency_months": months, "carer_agreed": True}


def tasks_by_team(eng, cid) -> list[tuple[str, str]]:
    return sorted((t["element_id"], t["team"]) for t in open_tasks(eng, cid))


def started(eng, cid, process_id) -> list[dict]:
    return [e["data"]["data"] for e in events(eng, cid, "instance.started") if e["data"]["process_id"] == process_id]


def timers_set(eng, cid) -> list[tuple[str, str]]:
    return [(e["data"]["element_id"], e["data"]["due_at"]) for e in events(eng, cid, "timer.set")]


# ---------------------------------------------------------------- the rule: whatever the cared-for person's eligibility


def test_a_carer_is_assessed_and_supported_even_when_the_person_cared_for_is_not_eligible(eng):
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", carer=True))  # Peter: 1 outcome, not eligible
    assert "your needs are not eligible for care and support" in letters(eng, cid, "eligibility_letter")[0]
    assert started(eng, cid, "carers_assessment") == [{"person": SUSAN, "cared_for": "Peter Clarke",
                                                       "contact_date": "2031-03-03", "carer_self_contact": False}]
    assert instances(eng, cid, "personal_budget") == []
    assert tasks_by_team(eng, cid) == [("assess_carer", "social_work")]

    # Susan's own assessment with her own words and wishes; eligible on her health alone
    complete(eng, cid, "assess_carer", {**carer_assessment("moderate"), **CARER_QUESTIONS})
    [done] = [e for e in events(eng, cid, "task.completed") if e["data"]["element_id"] == "assess_carer"]
    assert {k: done["data"]["data"][k] for k in CARER_QUESTIONS} == CARER_QUESTIONS
    carer_letter = letters(eng, cid, "eligibility_letter")[1]
    assert "Dear Susan Clarke" in carer_letter and "You are eligible for support as a carer." in carer_letter
    assert "We will agree a support plan with you. It will say how your needs as a carer will be met" in carer_letter
    kept = eng.get_case(cid)["data"]["carer_assessment"]
    assert kept == {"carer": "Susan Clarke", "cared_for": "Peter Clarke", "self_contact": False, "eligible": True,
                    "support_level": "moderate", "decided_at": START.isoformat()}
    assert children_started(eng, cid)[-1] == ("start_carer_plan", "carers_support_plan")
    assert instances(eng, cid, "carers_assessment")[0]["status"] == "completed"

    # the budget from her level (ras.json: moderate = £600 a year), shown on the plan and on the sign-off
    [budget] = calls(eng, cid, "carer_personal_budget")
    assert (budget["output"]["amount"], budget["output"]["weekly_amount"]) == ("600.00", "11.54")
    assert tasks_by_team(eng, cid) == [("plan_carer_support", "social_work")]
    with pytest.raises(ValidationError) as err:  # the plan is agreed with the carer first (s.25(3))
        complete(eng, cid, "plan_carer_support", {**carer_plan(), "carer_agreed": False})
    assert [e["field"] for e in err.value.errors] == ["carer_agreed"]
    complete(eng, cid, "plan_carer_support", carer_plan())
    assert tasks_by_team(eng, cid) == [("sign_off_carer_plan", "team_manager")]
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": False, "comments": "Say who covers Saturdays"},
             actor="manager")
    assert tasks_by_team(eng, cid) == [("plan_carer_support", "social_work")]  # back to the worker
    complete(eng, cid, "plan_carer_support", carer_plan())
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")

    plan = eng.get_case(cid)["data"]["carer_support_plan"]
    assert (plan["first_review"], plan["budget"]["funded_by"], plan["cared_for"]) == (
        "2031-09-03", "carers_personal_budget", "Peter Clarke")
    [letter] = letters(eng, cid, "carer_support_plan_letter")
    assert "Dear Susan Clarke" in letter and "your support plan as a carer for Peter Clarke" in letter
    assert "Your personal budget as a carer is £600.00 a year (£11.54 a week)" in letter
    assert "We will pay it to you as a direct payment" in letter
    assert "Her son Tom is called first" in letter
    assert "We will review your plan with you by 3 September 2031, then at least every 6 months" in letter
    assert [d["kind"] for d in eng.documents(cid)] == ["eligibility", "eligibility", "carers_support_plan"]
    assert timers_set(eng, cid) == [("assessment_overdue_timer", "2031-03-31T16:00:00.000000+00:00"),  # Peter's
                                    ("wait_carer_review", "2031-09-03T09:00:00.000000+00:00")]

    # the review falls due exactly on the date in the letter, not a minute before
    eng.advance_clock(to=datetime(2031, 9, 3, 8, 59, tzinfo=timezone.utc))
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(minutes=1))
    assert tasks_by_team(eng, cid) == [("review_carer_plan", "social_work")]
    assert fired(eng, cid) == ["wait_carer_review"]
    complete(eng, cid, "review_carer_plan", {"carer_views": "The sitter has made all the difference",
                                             "outcomes_achieved": "fully", "willing_and_able": "yes",
                                             "next_step": "continue", "reason": "Working well"})
    assert timers_set(eng, cid)[-1] == ("wait_carer_review", "2032-03-03T09:00:00.000000+00:00")
    eng.advance_clock(to=datetime(2032, 3, 3, 9, 0, tzinfo=timezone.utc))
    complete(eng, cid, "review_carer_plan", {"carer_views": "Peter has moved into a care home",
                                             "outcomes_achieved": "fully", "willing_and_able": "no",
                                             "next_step": "end", "reason": "Susan no longer cares for Peter at home"})
    assert open_tasks(eng, cid) == [] and instances(eng, cid, "carers_support_plan")[0]["status"] == "completed"

    rows = cld_full(eng, cid)
    assert [(r["event_type"], r["event_start"], r["event_end"], r["outcome"], r["client_type"]) for r in rows] == [
        (ASSESSMENT, "2031-03-03", "2031-03-03", NFA_NO_SERVICES, "Service User"),
        (ASSESSMENT, "2031-03-03", "2031-03-03", TO_SUPPORT_PLANNING, "Carer"),
        (SERVICE, "2031-03-03", "2032-03-03", ENDED_AS_PLANNED, "Carer"),
        ("Review", "2031-09-03", "2031-09-03", "No change in package", "Carer"),
        ("Review", "2032-03-03", "2032-03-03", "NFA – Support ended: other reason", "Carer")]
    service = rows[2]
    assert (service["service_type"], service["delivery_mechanism"]) == (cld.CARER_DIRECT, cld.DIRECT_PAYMENT)
    assert {(r["review_reason"], r["review_type"]) for r in rows[3:]} == {("Planned", "Planned")}
    # Susan keeps one id in Peter's case for her assessment and her service
    assert {(r["local_person_id"], r["cared_for_person_id"]) for r in rows[1:]} == {("CASE-000001-C1", "CASE-000001")}
    # an auditor's replay computes the same (the start check and the review dates are expression functions)
    assert replay_case(eng, cid).ok and eng.verify(cid)[1] == []


def test_an_eligible_carers_support_held_in_the_cared_for_persons_budget_is_not_paid_twice(eng):
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs",
             assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True))
    assert tasks_by_team(eng, cid) == [("assess_carer", "social_work"), ("score_needs", "social_work")]
    complete(eng, cid, "assess_carer", carer_assessment("high"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    [peter_budget] = calls(eng, cid, "personal_budget")
    assert peter_budget["output"]["carer_support"]["amount"] == "1200.00"  # added to Peter's budget ...
    complete(eng, cid, "plan_carer_support",
             carer_plan("involving_cared_for", "council_managed", held_by="cared_for", months=12))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    plan = eng.get_case(cid)["data"]["carer_support_plan"]
    assert plan["budget"] == {"amount": "1200.00", "weekly_amount": "23.08", "support_level": "high",
                              "funded_by": "cared_for_personal_budget"}
    [letter] = letters(eng, cid, "carer_support_plan_letter")  # ... so Susan's plan says it is held there
    assert "It is paid from Peter Clarke's personal budget, as support for their carer." in letter
    assert "Some of this support is given to the person you care for, so that you can have a break" in letter
    assert "We will review your plan with you by 3 March 2032" in letter
    [service] = [r for r in cld_full(eng, cid) if r["process_id"] == "carers_support_plan"]
    assert (service["service_type"], service["delivery_mechanism"], service["outcome"], service["event_end"]) == (
        cld.CARER_VIA_CARED_FOR, cld.CASSR_MANAGED_PERSONAL_BUDGET, PROVISION, None)  # council-managed budget


def test_a_review_that_finds_the_carers_needs_changed_starts_a_new_carers_assessment(eng):
    cid = eng.start("carers_assessment", data={"person": SUSAN, "cared_for": "Peter Clarke",
                                               "carer_self_contact": False}).case_id
    complete(eng, cid, "assess_carer", carer_assessment("low"))
    complete(eng, cid, "plan_carer_support", carer_plan(months=1))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    assert eng.get_case(cid)["data"]["carer_support_plan"]["first_review"] == "2031-04-03"
    eng.advance_clock(to=datetime(2031, 4, 3, 9, 0, tzinfo=timezone.utc))
    complete(eng, cid, "review_carer_plan", {"carer_views": "Peter now wanders at night", "outcomes_achieved": "partly",
                                             "willing_and_able": "yes_with_support", "next_step": "reassess",
                                             "reason": "Caring has changed: nights are now needed"})
    assert tasks_by_team(eng, cid) == [("assess_carer", "social_work")]
    assert started(eng, cid, "carers_assessment")[1] == {"person": SUSAN, "cared_for": "Peter Clarke",
                                                         "carer_self_contact": False}
    assert [(r["process_id"], r["event_end"], r["outcome"]) for r in cld_full(eng, cid)] == [
        ("carers_assessment", "2031-03-03", TO_SUPPORT_PLANNING),
        ("carers_support_plan", "2031-04-03", TO_REASSESSMENT), ("carers_support_plan", "2031-04-03", TO_REASSESSMENT),
        ("carers_assessment", None, None)]  # the assessment, the service and the carer's review, then the new one


@pytest.mark.parametrize("months, working_days, review_day, in_words", [
    (1, True, "2031-04-30", "30 April 2031"),  # 31 March + 1 month: the last day of April, a Wednesday
    (2, True, "2031-06-02", "2 June 2031"),  # 31 May 2031 is a Saturday: the next working day
    (2, False, "2031-05-31", "31 May 2031"),  # a council that switched review_dates_on_working_days off
])
def test_a_plan_signed_off_on_the_31st_is_reviewed_at_the_months_end_on_a_working_day(
        eng, monkeypatch, months, working_days, review_day, in_words):
    with_settings(monkeypatch, review_dates_on_working_days=working_days)
    cid = eng.start("carers_assessment", data={"person": SUSAN, "cared_for": "Peter Clarke"}).case_id
    complete(eng, cid, "assess_carer", carer_assessment("none"))  # eligible, needs met without money
    complete(eng, cid, "plan_carer_support", carer_plan(months=months))
    eng.advance_clock(to=datetime(2031, 3, 31, 9, 0, tzinfo=timezone.utc))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    assert eng.get_case(cid)["data"]["carer_support_plan"]["first_review"] == review_day
    assert timers_set(eng, cid) == [("wait_carer_review", f"{review_day}T09:00:00.000000+00:00")]
    [letter] = letters(eng, cid, "carer_support_plan_letter")
    assert f"We will review your plan with you by {in_words}" in letter
    assert "There is no money in this plan." in letter and "We will pay it" not in letter


@pytest.mark.parametrize("start, months, working_day, expected", [
    ("2031-01-31T09:00:00+00:00", 1, False, "2031-02-28T09:00:00+00:00"),
    ("2032-01-31T09:00:00+00:00", 1, False, "2032-02-29T09:00:00+00:00"),  # a leap year
    ("2031-03-03T09:00:00+00:00", 12, False, "2032-03-03T09:00:00+00:00"),
    ("2031-03-03T09:00:00+00:00", 120, False, "2041-03-03T09:00:00+00:00"),  # the limit itself
    ("2031-11-25T09:00:00+00:00", 1, True, "2031-12-29T09:00:00+00:00"),  # Christmas Thursday: after Boxing Day
])
def test_add_months_keeps_the_day_or_the_months_last_and_can_move_to_a_working_day(start, months, working_day,
                                                                                    expected):
    from handlers.carers import add_months

    assert add_months(start, months, working_day) == expected


@pytest.mark.parametrize("start, months, expected", [
    ("2031-04-25T09:00:00+00:00", 12, "2032-04-23T09:00:00+00:00"),  # Sunday 25 April 2032: Friday, not Monday
    ("2032-12-24T09:00:00+00:00", 12, "2033-12-23T09:00:00+00:00"),  # Saturday, then Christmas: Friday 23rd
    ("2031-04-15T09:00:00+00:00", 12, "2032-04-15T09:00:00+00:00"),  # a working day: as it is
    ("2031-04-25T09:00:00+00:00", 6, "2031-10-27T09:00:00+00:00"),  # 6 months: Saturday, so the Monday
])
def test_a_carers_yearly_review_on_a_weekend_or_holiday_never_moves_past_the_12_months(start, months, expected):
    from handlers.carers import add_months

    assert add_months(start, months, True) == expected


def test_a_carers_plan_reviewed_yearly_signed_off_on_a_friday_is_reviewed_within_the_12_months(eng):
    """The plan, its letter and its review timer say the same date: Friday 23 April 2032, not Monday 26 April."""
    cid = eng.start("carers_assessment", data={"person": SUSAN, "cared_for": "Peter Clarke"}).case_id
    complete(eng, cid, "assess_carer", carer_assessment("none"))
    complete(eng, cid, "plan_carer_support", carer_plan(months=12))
    eng.advance_clock(to=datetime(2031, 4, 25, 9, 0, tzinfo=timezone.utc))  # a Friday
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    assert eng.get_case(cid)["data"]["carer_support_plan"]["first_review"] == "2032-04-23"
    assert timers_set(eng, cid) == [("wait_carer_review", "2032-04-23T09:00:00.000000+00:00")]
    [letter] = letters(eng, cid, "carer_support_plan_letter")
    assert "We will review your plan with you by 23 April 2032" in letter


@pytest.mark.parametrize("start, months", [("2031-03-03T09:00:00+00:00", 0), ("2031-03-03T09:00:00+00:00", 121),
                                           ("2031-03-03T09:00:00+00:00", True), ("2031-03-03T09:00:00", 1),
                                           ("2031-03-03T09:00:00+00:00", "6")])
def test_add_months_refuses_what_is_not_a_zoned_time_and_a_whole_number_of_months(start, months):
    from handlers.carers import add_months

    with pytest.raises(ValueError, match="add_months needs"):
        add_months(start, months)


@pytest.mark.parametrize("willing, able, plan_signed_off, review", [
    ("no", "yes", True, True),  # Susan will not go on caring: Peter's plan counts on her
    ("yes", "no", True, True),  # she cannot
    ("yes_with_support", "not_sure", True, False),  # she will, with support: no review
    (None, None, True, False),  # not asked
    ("no", "no", False, False),  # no signed-off plan to review yet
])
def test_a_carer_who_will_not_or_cannot_go_on_caring_starts_a_carer_related_review_of_the_plan(
        eng, willing, able, plan_signed_off, review):
    from tests.test_process_assessment_to_review import to_plan

    if plan_signed_off:
        cid = to_plan(eng)  # Peter, eligible, plan signed off
    else:
        cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER}).case_id
    eng.update_case_record(cid, {"person": PETER}, actor="sw", reason="recorded at the contact")
    eng.start("carers_assessment", case_id=cid, actor="sw",
              data={"person": SUSAN, "cared_for": "Peter Clarke", "carer_self_contact": False})
    answers = {k: v for k, v in (("willing_to_continue", willing), ("able_to_continue", able)) if v}
    complete(eng, cid, "assess_carer", {**carer_assessment(), **answers})
    reviews = started(eng, cid, "review")
    requested = [r for r in reviews if r.get("review_reason") == "Carer related"]
    if review:
        assert requested == [{"review_reason": "Carer related", "review_requested_by": "carer",
                              "review_request_note": "Carer's assessment: Susan Clarke is not willing or not able "
                                                     "to go on caring as before"}]
        assert ("review_plan", "social_work") in tasks_by_team(eng, cid)
    else:
        assert requested == []
    # the carer's own route goes on either way: eligible, so her support plan
    assert ("plan_carer_support", "social_work") in tasks_by_team(eng, cid)


def test_a_carers_review_not_done_in_time_goes_to_the_team_manager_and_keeps_its_due_date(eng):
    cid = eng.start("carers_assessment", data={"person": SUSAN, "cared_for": "Peter Clarke"}).case_id
    complete(eng, cid, "assess_carer", carer_assessment("low"))
    complete(eng, cid, "plan_carer_support", carer_plan(months=1))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    eng.advance_clock(to=datetime(2031, 4, 3, 9, 0, tzinfo=timezone.utc))
    [review] = open_tasks(eng, cid)
    assert review["element_id"] == "review_carer_plan"
    # due after the grace period (timescales.json review_overdue_grace, P14D): the inbox shows it
    assert review["due_at"] == datetime(2031, 4, 17, 9, 0, tzinfo=timezone.utc)
    eng.advance_clock(to=datetime(2031, 4, 17, 8, 59, tzinfo=timezone.utc))
    assert tasks_by_team(eng, cid) == [("review_carer_plan", "social_work")]
    eng.advance_clock(timedelta(minutes=1))
    assert tasks_by_team(eng, cid) == [("carer_review_overdue", "team_manager"), ("review_carer_plan", "social_work")]
    assert fired(eng, cid)[-1] == "carer_review_overdue_timer"
    [still] = [t for t in open_tasks(eng, cid) if t["element_id"] == "review_carer_plan"]
    assert still["due_at"] == review["due_at"]  # an escalated task keeps its due date
    complete(eng, cid, "carer_review_overdue", {"action_taken": "Reallocated to a senior practitioner"},
             actor="manager")
    complete(eng, cid, "review_carer_plan", {"carer_views": "Fine", "outcomes_achieved": "fully",
                                             "willing_and_able": "yes", "next_step": "continue", "reason": "Working"})
    assert open_tasks(eng, cid) == []
    assert timers_set(eng, cid)[-1] == ("wait_carer_review", "2031-05-19T09:00:00.000000+00:00")  # 17 May: a Saturday


# ---------------------------------------------------------------- not eligible: information and advice


def test_a_carer_not_eligible_gets_information_and_advice_and_a_letter_with_the_reasons_and_the_advice(eng):
    cid = eng.start("carers_assessment", data={"person": SUSAN, "cared_for": "Peter Clarke",
                                               "carer_self_contact": False}).case_id
    not_eligible = {**carer_assessment("none"), "health_deteriorating_or_at_risk": False}
    for outcome in not_eligible["outcomes"].values():
        outcome.update(unable=False, ways=[], reason="")
    complete(eng, cid, "assess_carer", not_eligible)
    assert eng.get_case(cid)["data"]["carer_assessment"]["eligible"] is False
    assert tasks_by_team(eng, cid) == [("give_carer_advice", "social_work")]
    assert letters(eng, cid, "eligibility_letter") == []  # the letter waits for the advice
    eng.advance_clock(timedelta(days=2))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "give_carer_advice", {"advice_given": {"information_given": ""}})
    assert [e["field"] for e in err.value.errors] == ["advice_given/information_given"]
    complete(eng, cid, "give_carer_advice", {"advice_given": {
        "information_given": "Carer's Allowance, and a carer's emergency card",
        "referred_to": ["Northtown Carers' Centre", "Susan's GP for a health check"],
        "prevention": "A monthly carers' group so things do not build up"}})
    [letter] = letters(eng, cid, "eligibility_letter")
    assert "your needs are not eligible for support as a carer" in letter
    assert "We found that caring is not putting your health at risk." in letter
    assert "You can do all of the things the law lists." in letter
    assert "Carer's Allowance, and a carer's emergency card" in letter
    assert "- Northtown Carers' Centre" in letter and "- Susan's GP for a health check" in letter
    assert "A monthly carers' group so things do not build up" in letter
    assert "Your worker will give you information and advice" not in letter
    assert instances(eng, cid, "carers_support_plan") == [] and open_tasks(eng, cid) == []
    assert calls(eng, cid, "carer_personal_budget") == []
    # the assessment event ends on the day of the decision, not when the advice was recorded
    assert cld_rows(eng, cid) == [(ASSESSMENT, "2031-03-03", "2031-03-03", NFA_NO_SERVICES)]


# ---------------------------------------------------------------- a carer who contacts the council on their own


def test_a_carer_who_contacts_on_their_own_is_assessed_and_planned_on_their_own_case(eng):
    # as the front door starts it for a caller who is a carer asking about their own needs: no cared_for at all
    res = eng.start("carers_assessment", data={"name": ANN["name"], "person": ANN, "contact_date": "2031-03-03",
                                               "carer_self_contact": True})
    cid = res.case_id
    eng.update_case_record(cid, {"person": {**ANN, "nhs_number": "4857773456"}}, actor="advisor",
                           reason="recorded at the contact")
    assert tasks_by_team(eng, cid) == [("assess_carer", "social_work")]
    complete(eng, cid, "assess_carer", {**carer_assessment("low"), **CARER_QUESTIONS})
    assert eng.get_case(cid)["data"]["carer_assessment"]["self_contact"] is True
    assert eng.get_case(cid)["data"]["carer_assessment"]["cared_for"] is None
    assert started(eng, cid, "carers_support_plan")[0]["cared_for"] is None
    # the worker's "held in the cared-for person's budget" cannot apply: there is none on Ann's case
    complete(eng, cid, "plan_carer_support", carer_plan(held_by="cared_for"))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    plan = eng.get_case(cid)["data"]["carer_support_plan"]
    assert plan["budget"]["funded_by"] == "carers_personal_budget" and plan["budget"]["amount"] == "300.00"
    [letter] = letters(eng, cid, "carer_support_plan_letter")
    assert "This is your support plan as a carer. It says how we will meet your needs as a carer." in letter
    assert "Your personal budget as a carer is £300.00 a year" in letter
    rows = cld_full(eng, cid)
    assert [(r["event_type"], r["client_type"], r["local_person_id"], r["cared_for_person_id"]) for r in rows] == [
        (ASSESSMENT, "Carer", "CASE-000001", None), (SERVICE, "Carer", "CASE-000001", None)]
    assert (rows[0]["nhs_number"], rows[0]["birth_year"], rows[0]["gender"]) == ("4857773456", 1958, "Female")
    assert replay_case(eng, cid).ok


def test_when_the_person_cared_for_dies_the_carers_rows_end_without_saying_the_carer_died(eng):
    """Peter dies; his case is closed. His carer Susan's support plan (on his case) ends with him, but the return
    must not report Susan as deceased: her service ends 'Support ended: other reason', a carer's assessment not
    finished 'NFA – Other'. Ann, a carer on her own case, who dies, is reported deceased."""
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", carer=True))
    complete(eng, cid, "assess_carer", {**carer_assessment("moderate"), **CARER_QUESTIONS})
    complete(eng, cid, "plan_carer_support", carer_plan())
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    eng.advance_clock(timedelta(days=20))  # a second carer, his son, asks to be assessed too
    eng.start("carers_assessment", case_id=cid, data={
        "person": {"name": "Tom Clarke", "relationship": "son"}, "cared_for": "Peter Clarke",
        "contact_date": "2031-03-23", "carer_self_contact": False})
    eng.advance_clock(timedelta(days=10))
    eng.close_case(cid, reason="died", actor="manager", details={"date_of_death": "2031-04-01"})
    assert [(r["event_type"], r["client_type"], r.get("local_person_id"), r["event_end"], r["outcome"])
            for r in cld_full(eng, cid)] == [
        (ASSESSMENT, "Service User", None, "2031-03-03", NFA_NO_SERVICES),  # the id is added in the return
        (ASSESSMENT, "Carer", "CASE-000001-C1", "2031-03-03", TO_SUPPORT_PLANNING),
        # the carer's support and assessment end the day the person cared for died, recorded the next day (cld.py
        # `_closure_day`), without saying the carer died (`_carers_at_closure`)
        (SERVICE, "Carer", "CASE-000001-C1", "2031-04-01", "NFA – Support ended: other reason"),
        (ASSESSMENT, "Carer", "CASE-000001-C2", "2031-04-01", "NFA – Other")]

    ann = eng.start("carers_assessment", data={"name": ANN["name"], "person": ANN, "contact_date": "2031-04-02",
                                               "carer_self_contact": True}).case_id
    eng.update_case_record(ann, {"person": ANN}, actor="advisor", reason="recorded at the contact")
    complete(eng, ann, "assess_carer", {**carer_assessment("low"), **CARER_QUESTIONS})
    complete(eng, ann, "plan_carer_support", carer_plan())
    complete(eng, ann, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    eng.close_case(ann, reason="died", actor="manager", details={"date_of_death": "2031-04-02"})
    assert [(r["event_type"], r["client_type"], r["local_person_id"], r["outcome"]) for r in cld_full(eng, ann)] == [
        (ASSESSMENT, "Carer", "CASE-000002", TO_SUPPORT_PLANNING), (SERVICE, "Carer", "CASE-000002", "NFA – Deceased")]
    assert replay_case(eng, cid).ok


@pytest.mark.parametrize("who", ["the person is the carer", "the caller cares for the person"])
def test_from_the_front_door_a_carer_asking_for_themselves_is_assessed_planned_and_reported_as_the_carer(
        db_url, who):
    """The front door's hand-over (H1's start data) carried through to the carer's plan and the CLD rows."""
    from tests.test_front_door_routes import MARY, contact, front_door
    from tests.test_front_door_routes import PROCESSES as FRONT_DOOR

    eng = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init(simulated_start=START)
    eng.deploy([ROOT / "processes" / name for name in FRONT_DOOR])
    try:
        if who == "the person is the carer":  # Sue rings about herself; the brother she cares for is not named
            form = contact(caller_name="Sue Patel", caller_relationship="self", caller_organisation="",
                           person_name="Sue Patel", person_age=58, person_address="2 Canal Row, Eastham",
                           person_area="east", reason="Cares for her brother, who does not want us involved",
                           carer_support_asked="person", carer_relationship="sister")
            carer, own_id, cared_for_id, request_client = "Sue Patel", "CASE-000001", None, "Carer"
        else:  # Mary rings about her mother Joan, and asks for support for herself
            form = contact(**MARY, reason="Mary is exhausted caring for her mother at night")
            carer, own_id, cared_for_id, request_client = "Mary Barker", "CASE-000001-C1", "CASE-000001", "Service User"
        res, _step = front_door(eng, form)
        cid = res.case_id
        assert ("assess_carer", "social_work") in tasks_by_team(eng, cid)
        complete(eng, cid, "assess_carer", {**carer_assessment("low"), **CARER_QUESTIONS})
        assert letters(eng, cid, "eligibility_letter")[-1].count(f"Dear {carer}") == 1
        complete(eng, cid, "plan_carer_support", carer_plan(held_by="cared_for"))
        complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
        plan = eng.get_case(cid)["data"]["carer_support_plan"]
        # Sue is the case's own person: always her own budget. On Joan's case the worker's choice is kept (the
        # council adds carer support to a cared-for person's budget; the team manager checks it at sign-off)
        assert plan["budget"]["funded_by"] == ("carers_personal_budget" if cared_for_id is None
                                               else "cared_for_personal_budget")
        rows = cld_full(eng, cid)
        request = [r for r in rows if r["event_type"] == "Request"]
        assert [r["client_type"] for r in request] == [request_client]
        carer_rows = [r for r in rows if r["process_id"] in ("carers_assessment", "carers_support_plan")]
        assert [(r["event_type"], r["client_type"], r["local_person_id"], r["cared_for_person_id"])
                for r in carer_rows] == [(ASSESSMENT, "Carer", own_id, cared_for_id),
                                         (SERVICE, "Carer", own_id, cared_for_id)]
        assert replay_case(eng, cid).ok
    finally:
        eng.db.dispose()


def test_a_front_door_request_that_starts_a_carers_own_assessment_is_the_carers_request():
    def ev(seq, iid, type_, data):
        return {"seq": seq, "instance_id": iid, "type": type_, "at": "2031-03-03T09:00:00+00:00", "data": data}

    history = [
        ev(1, 1, "instance.started", {"process_id": "front_door", "data": {"person": ANN}, "parent_instance_id": None}),
        ev(2, 2, "instance.started", {"process_id": "carers_assessment", "parent_instance_id": 1,
                                      "data": {"person": ANN, "carer_self_contact": True}}),
        ev(3, 1, "instance.child_started", {"process_id": "carers_assessment", "child_instance_id": 2}),
        ev(4, 1, "instance.completed", {}),
        ev(5, 3, "instance.started", {"process_id": "front_door", "data": {"person": ANN}, "parent_instance_id": None}),
        ev(6, 4, "instance.started", {"process_id": "needs_assessment", "parent_instance_id": 3, "data": {}}),
        ev(7, 3, "instance.child_started", {"process_id": "needs_assessment", "child_instance_id": 4}),
    ]
    rows = cld.derive_cld_events({"reference": "CASE-000007", "data": {"person": ANN}}, history)
    assert [(r["process_id"], r["client_type"], r["outcome"]) for r in rows] == [
        ("front_door", "Carer", "Progress to Assessment"), ("carers_assessment", "Carer", None),
        ("front_door", "Service User", "Progress to Assessment"), ("needs_assessment", "Service User", None)]
    assert (rows[1]["local_person_id"], rows[1]["cared_for_person_id"]) == ("CASE-000007", None)

    # Susan rings about herself on her father's case (the front door's "the caller cares for this person"):
    # Peter's request, Susan's assessment with her own carer id
    history = [
        ev(1, 1, "instance.started", {"process_id": "front_door", "data": {"person": PETER},
                                      "parent_instance_id": None}),
        ev(2, 2, "instance.started", {"process_id": "carers_assessment", "parent_instance_id": 1, "data": {
            "person": SUSAN, "cared_for": "Peter Clarke", "carer_self_contact": True}}),
        ev(3, 1, "instance.child_started", {"process_id": "carers_assessment", "child_instance_id": 2}),
        ev(4, 1, "instance.completed", {}),
    ]
    rows = cld.derive_cld_events({"reference": "CASE-000009", "data": {"person": PETER}}, history)
    assert [(r["process_id"], r["client_type"], r.get("local_person_id"), r["cared_for_person_id"]) for r in rows] == [
        ("front_door", "Service User", None, None), ("carers_assessment", "Carer", "CASE-000009-C1", "CASE-000009")]


# ---------------------------------------------------------------- the start data, checked


@pytest.mark.parametrize("data, errors", [
    ({"person": {"name": "Ann Lee"}, "carer_self_contact": True}, set()),  # on her own: cared_for may be absent
    ({"person": {"name": "Ann Lee"}, "cared_for": "", "carer_self_contact": True}, set()),
    ({"person": {"name": "Susan Clarke"}, "cared_for": "Peter Clarke"}, set()),
    ({"person": {"name": "Susan Clarke"}}, {"cared_for"}),  # started for a cared-for person: they must be named
    ({"person": {"name": "Susan Clarke"}, "cared_for": " ", "carer_self_contact": False}, {"cared_for"}),
    ({"person": {"name": ""}, "cared_for": "Peter Clarke"}, {"person.name"}),
    ({"person": {"name": "Su\x07san"}, "cared_for": "Peter Clarke"}, {"person.name"}),
    ({"person": {"name": "x" * 200}, "cared_for": "Peter Clarke"}, set()),  # the limit itself
    ({"person": {"name": "x" * 201}, "cared_for": "Peter Clarke"}, {"person.name"}),
    ({"person": {"name": "Peter  clarke"}, "cared_for": "Peter Clarke"}, {"cared_for"}),  # herself
    ({"person": "Susan", "cared_for": "Peter Clarke"}, {"person"}),
    ({"person": {"name": "Susan"}, "cared_for": "Peter", "carer_self_contact": "yes"}, {"carer_self_contact"}),
    ({"person": {"name": "Susan"}, "cared_for": "Peter", "contact_date": "3/3/2031"}, {"contact_date"}),
])
def test_the_start_data_of_a_carers_assessment_is_checked_field_by_field(data, errors):
    assert set(check_carer_start(data)) == errors


def test_a_carers_assessment_started_without_the_carers_name_stops_at_its_first_step_naming_the_field(eng):
    res = eng.start("carers_assessment", data={"person": {"relationship": "son"}, "cared_for": "Peter Clarke"})
    [incident] = events(eng, res.case_id, "incident.opened")
    assert open_tasks(eng, res.case_id) == []
    text = str(incident["data"])
    assert "person.name" in text and "Enter the carer's name" in text, text


# ---------------------------------------------------------------- the carer's questions on the form


def test_the_carer_is_asked_their_own_words_willingness_ability_and_wishes_for_work_learning_and_leisure():
    form = FormLibrary.from_folder(ROOT / "forms")
    schema = form.schema("carers_assessment")
    caring = [s for s in form.sections("carers_assessment") if s["id"] == "caring"][0]
    assert caring["fields"] == ["willing_to_continue", "able_to_continue", "caring_concerns", "cares_for_how_long",
                                "hours_caring_per_week", "work_wishes", "education_training_wishes", "leisure_wishes"]
    assert "s.10(6)(c)" in schema["properties"]["work_wishes"]["description"]
    assert "recreation" in schema["properties"]["leisure_wishes"]["description"]
    assert "own words" in schema["properties"]["carer_views"]["title"]
    assert schema["properties"]["willing_to_continue"]["enum"] == ["yes", "yes_with_support", "no", "not_sure"]
    with pytest.raises(ValidationError) as err:
        form.validate("carers_assessment", {**carer_assessment(), "willing_to_continue": "maybe"})
    assert [e["field"] for e in err.value.errors] == ["willing_to_continue"]


# ---------------------------------------------------------------- the carer's handlers refuse bad input, naming it


def _ctx():
    from engine.registry import HandlerContext

    return HandlerContext(case_id=1, instance_id=1, process_id="carers_support_plan", element_id="x", now=START,
                          case_reference="CASE-000001")


def _plan(**changes) -> dict:
    plan = {**carer_plan(), "carer": "Susan Clarke", "cared_for": "Peter Clarke", "first_review": "2031-09-03",
            "signed_off_at": START.isoformat(),
            "budget": {"amount": "600.00", "weekly_amount": "11.54", "support_level": "moderate",
                       "funded_by": "carers_personal_budget"}}
    plan.update(changes)
    return plan


@pytest.mark.parametrize("changes, message", [
    ({"money_management": "cash"}, "plan.money_management must be one of"),
    ({"support_type": "holiday"}, "plan.support_type must be one of"),
    ({"budget": {"amount": "600.00", "weekly_amount": "11.54", "funded_by": "the council"}},
     "plan.budget.funded_by must be one of"),
    ({"budget": None}, "plan.budget must be an object"),
])
def test_the_carers_plan_letter_refuses_a_plan_it_cannot_explain_naming_the_field(changes, message):
    from handlers.letters import carer_support_plan_letter

    assert "Your personal budget as a carer is £600.00" in carer_support_plan_letter(_ctx(), SUSAN, _plan())["body"]
    with pytest.raises(ValueError, match=message):
        carer_support_plan_letter(_ctx(), SUSAN, _plan(**changes))
    without = _plan()
    del without["contingency_plan"]  # a letter never goes out with a blank where the emergency plan should be
    with pytest.raises(ValueError, match="missing field 'plan.contingency_plan'"):
        carer_support_plan_letter(_ctx(), SUSAN, without)


def test_the_advice_letter_needs_the_advice_and_the_budget_needs_a_known_level():
    from handlers.carers import carer_personal_budget
    from handlers.letters import eligibility_letter

    decision = {"eligible": False, "regulation": "Care and Support (Eligibility Criteria) Regulations 2015, "
                "regulation 3", "outcomes": [], "explanation": "Not eligible."}
    with pytest.raises(ValueError, match="advice.information_given"):
        eligibility_letter(_ctx(), SUSAN, decision, advice={"information_given": "  "})
    with pytest.raises(ValueError, match="support_level must be one of none, low, moderate, high"):
        carer_personal_budget(_ctx(), "very_high")
    assert carer_personal_budget(_ctx(), "high")["amount"] == "1200.00"


def test_a_carers_review_with_a_next_step_outside_the_list_is_a_cld_error_naming_it():
    def ev(seq, type_, data):
        return {"seq": seq, "instance_id": 5, "type": type_, "at": "2031-09-03T09:00:00+00:00", "data": data}

    history = [ev(1, "instance.started", {"process_id": "carers_support_plan", "data": {"person": SUSAN}}),
               ev(2, "task.ready", {"element_id": "review_carer_plan"}),
               ev(3, "task.completed", {"element_id": "review_carer_plan", "data": {"next_step": "pause"}})]
    with pytest.raises(cld.CldDataError, match=r"case CASE-000001: carers_support_plan instance 5: next_step 'pause' "
                                               r"\(history event 3\) is not one of continue, reassess, end"):
        cld.derive_cld_events({"reference": "CASE-000001", "data": {"person": PETER}}, history)
    assert set(cld.CARER_REVIEW_OUTCOMES.values()) <= set(cld.EVENT_OUTCOMES)
    form = FormLibrary.from_folder(ROOT / "forms").schema("carers_review")
    assert sorted(cld.CARER_REVIEW_OUTCOMES) == sorted(form["properties"]["next_step"]["enum"])
