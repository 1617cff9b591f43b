"""The transition rules (Care Act 2014 s.58-66), one at a time: the handlers, then the process on the
simulated clock on SQLite and PostgreSQL (helena's whole story: tests/test_transition_story.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from handlers import transition as tr
from tests.case_helpers import cld_rows, events, fired_at, instances, the_task
from tests.casework_helpers import casework_engine, diagrams, waiting_timers
from tests.conftest import START
from tests.test_story_helena import PLAN, helena_assessment, helena_ras

UTC = timezone.utc
PROCESSES = ("transition", "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment",
             "support_plan", "review",
             "direct_payment_review", "safeguarding")
TODAY = START.date()  # 3 March 2031


def ctx(day: date = TODAY):
    return SimpleNamespace(now=datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC), case_id=1, instance_id=1,
                           case_reference="CASE-000001", case_data={})


def referral(**changes):
    data = {"name": "Sam Patel", "date_of_birth": "2013-04-10", "address": "4 Mill Lane, Southby", "ehc_plan": "no",
            "likely_needs": "Cerebral palsy: needs help with personal care and getting about",
            "childrens_social_worker": "Amira Khan"}
    data.update(changes)
    return data


# ---------------------------------------------------------------- dates
def test_an_18th_birthday_on_29_february_is_1_march_in_a_common_year():
    assert tr.birthday(date(2012, 2, 29), 18) == date(2030, 3, 1)
    assert tr.birthday(date(2012, 2, 29), 16) == date(2028, 2, 29)  # a leap year keeps the day
    assert tr.age_on(date(2012, 2, 29), date(2030, 2, 28)) == 17
    assert tr.age_on(date(2012, 2, 29), date(2030, 3, 1)) == 18


def test_age_changes_on_the_birthday_itself():
    born = date(2013, 3, 3)
    assert tr.age_on(born, date(2031, 3, 2)) == 17
    assert tr.age_on(born, date(2031, 3, 3)) == 18


def test_months_are_added_to_the_last_day_of_a_short_month():
    assert tr.add_months(date(2031, 8, 31), -6) == date(2031, 2, 28)
    assert tr.add_months(date(2031, 1, 31), 1) == date(2031, 2, 28)
    assert tr.add_months(date(2031, 11, 15), 3) == date(2032, 2, 15)


def test_the_dates_of_a_transition_use_the_local_settings():
    out = tr.transition_dates(ctx(), {"date_of_birth": "2013-09-14"}, "2031-03-03")
    # the check at 18 is at 09:00 UK time: 08:00 UTC in British Summer Time
    assert out["eighteenth_birthday"] == "2031-09-14" and out["adult_support_check_at"] == "2031-09-14T08:00:00Z"
    assert out["decision_due"] == "2031-03-17T17:00:00Z" and out["latest_assessment_start"] == "2031-03-14"
    later = tr.transition_dates(ctx(), {"date_of_birth": "2013-09-14"}, "2031-03-03", decide_from="2031-03-14")
    assert later["decision_due"] == "2031-03-28T17:00:00Z"
    # 17:00 UK time: after the clocks go forward (30 March 2031) that is 16:00 UTC
    summer = tr.transition_dates(ctx(), {"date_of_birth": "2013-09-14"}, "2031-03-03", decide_from="2031-03-20")
    assert summer["decision_due"] == "2031-04-03T16:00:00Z"
    with pytest.raises(ValueError, match="person.date_of_birth must be a date"):
        tr.transition_dates(ctx(), {"date_of_birth": "14/09/2013"}, "2031-03-03")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("transition_decision_days", "14", "transition_decision_days must be a whole number of days"),
    ("transition_decision_days", 0, "transition_decision_days must be a whole number of days"),
    ("transition_latest_assessment_before_18", "6 months", "must be a number of months such as P6M"),
])
def test_a_bad_local_setting_is_refused_naming_it(monkeypatch, key, value, message):
    good = tr.settings.load()
    monkeypatch.setattr(tr.settings, "load", lambda: {**good, key: value})
    with pytest.raises(ValueError, match=message):
        tr.transition_dates(ctx(), {"date_of_birth": "2013-09-14"}, "2031-03-03")
    monkeypatch.setattr(tr.settings, "load", lambda: {k: v for k, v in good.items() if k != key})
    with pytest.raises(ValueError, match=f"unknown local setting\\(s\\): {key}"):
        tr.transition_dates(ctx(), {"date_of_birth": "2013-09-14"}, "2031-03-03")


# ---------------------------------------------------------------- who can be referred (14 to 17)
@pytest.mark.parametrize(("born", "accepted"), [
    ("2017-03-03", True),   # 14 today: the youngest taken
    ("2017-03-04", False),  # 14 tomorrow
    ("2013-03-04", True),   # 18 tomorrow: still a child today
    ("2013-03-03", False),  # 18 today: an adult, through the front door
])
def test_a_referral_is_taken_from_the_14th_birthday_until_the_day_before_the_18th(born, accepted):
    start, errors = tr.check_referral(referral(date_of_birth=born), TODAY)
    assert ("date_of_birth" not in errors) is accepted
    if not accepted:
        assert errors["date_of_birth"].startswith("The young person is 1")


def test_an_adult_is_told_to_use_the_front_door_and_a_child_under_14_when_to_ask_again():
    _start, errors = tr.check_referral(referral(date_of_birth="2013-03-03"), TODAY)
    assert errors == {"date_of_birth": "The young person is 18: adults are referred through the front door "
                                       "(a new contact), not as a transition"}
    _start, errors = tr.check_referral(referral(date_of_birth="2017-03-04"), TODAY)
    assert errors == {"date_of_birth": "The young person is 13: a referral from children's services is taken "
                                       "from age 14 (ask again from 4 March 2031)"}


def test_a_referral_names_every_field_that_is_missing_or_wrong():
    _start, errors = tr.check_referral({"name": "Sam\u200b Patel", "date_of_birth": "2031-02-30",
                                        "likely_needs": "x" * 2001, "childrens_social_worker": "Amira\x07"}, TODAY)
    assert set(errors) == {"name", "date_of_birth", "address", "ehc_plan", "likely_needs",
                           "childrens_social_worker"}
    assert "zero-width" in errors["name"] and errors["date_of_birth"] == "The date of birth must be a real date"
    assert errors["address"] == "Enter the young person's address"
    assert errors["likely_needs"].endswith("must be 2000 characters or fewer")
    assert errors["childrens_social_worker"].endswith("must not contain control characters")
    _start, errors = tr.check_referral(referral(date_of_birth="2031-03-04"), TODAY)
    assert errors == {"date_of_birth": "The date of birth must be in the past"}


def test_a_good_referral_gives_the_start_data():
    start, errors = tr.check_referral(referral(name="  Sam   Patel ", postcode="sb1 2cd", childrens_team="CWD",
                                               childrens_phone="01632 960000", ehc_plan="yes"), TODAY)
    assert errors == {}
    assert start == {"person": {"name": "Sam Patel", "date_of_birth": "2013-04-10", "address": "4 Mill Lane, Southby",
                                "postcode": "SB1 2CD", "age": 17},
                     "referral_date": "2031-03-03", "ehc_plan": True,
                     "likely_needs": "Cerebral palsy: needs help with personal care and getting about",
                     "childrens_social_worker": {"name": "Amira Khan", "team": "CWD", "phone": "01632 960000"}}


# ---------------------------------------------------------------- the decision to assess (s.58)
DATES = {"latest_assessment_start": "2031-06-01"}


def decide(**answers):
    base = {"likely_needs_after_18": True, "significant_benefit": True, "consent": "given"}
    return tr.transition_decision(ctx(), {**base, **answers}, DATES)


def test_the_decision_follows_section_58():
    assert decide()["assess"] == "now"
    assert decide(likely_needs_after_18=False)["basis"] == "not_likely_to_have_needs"
    assert decide(consent="refused", at_risk_of_abuse_or_neglect=False)["assess"] == "no"
    refused_at_risk = decide(consent="refused", at_risk_of_abuse_or_neglect=True)
    assert refused_at_risk["assess"] == "now" and "s.58(4)" in refused_at_risk["reasons"][0]
    assert decide(consent="lacks_capacity", best_interests=True)["basis"] == "best_interests"
    assert decide(consent="lacks_capacity", best_interests=False)["assess"] == "no"
    with pytest.raises(ValueError, match="decision.consent must be one of given, refused, lacks_capacity"):
        decide(consent="maybe")


def test_a_later_decision_is_brought_forward_to_the_latest_date_and_on_that_date_it_is_now():
    later = decide(significant_benefit=False, reconsider_after_months=2)
    assert later["assess"] == "later" and later["reconsider_on"] == "2031-05-03"  # 2 months: before the latest
    capped = decide(significant_benefit=False, reconsider_after_months=3)
    # 09:00 UK time: British Summer Time in June, so 08:00 UTC
    assert capped["reconsider_on"] == "2031-06-01" and capped["reconsider_at"] == "2031-06-01T08:00:00Z"
    on_the_day = tr.transition_decision(ctx(date(2031, 6, 1)), {"likely_needs_after_18": True,
                                                                "significant_benefit": False, "consent": "given",
                                                                "reconsider_after_months": 1}, DATES)
    assert on_the_day["assess"] == "now"
    assert "it must start by 1 June 2031" in on_the_day["reasons"][0]


def test_the_reasons_letter_gives_reasons_and_advice():
    letter = tr.transition_letter(ctx(), {"name": "Sam Patel", "address": "4 Mill Lane, Southby"}, "not_assessed",
                                  reasons=["The young person is not likely to have needs"],
                                  eighteenth_birthday="2031-04-10", childrens_social_worker={"name": "Amira Khan"})
    body = " ".join(letter["body"].split())
    assert letter["kind"] == "transition_not_assessed"
    assert "after your 18th birthday (10 April 2031)" in body and "- The young person is not likely to have needs" \
        in body
    assert "When you are 18 you can contact us for a needs assessment as an adult" in body
    assert "Your children's social worker, Amira Khan, has a copy of this letter" in body
    with pytest.raises(ValueError, match="needs the reasons"):
        tr.transition_letter(ctx(), {"name": "Sam Patel"}, "not_assessed", reasons=[])
    with pytest.raises(ValueError, match="kind must be"):
        tr.transition_letter(ctx(), {"name": "Sam Patel"}, "other")


# ---------------------------------------------------------------- the process
@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams(*PROCESSES))


def start(eng, case_id=None, **changes):
    data, errors = tr.check_referral(referral(**changes), eng.now().date())
    assert errors == {}
    return eng.start("transition", case_id=case_id, data=data, actor="sw1", title=data["person"]["name"])


def complete(eng, case_id, element_id, data, actor="sw1"):
    return eng.complete_task(the_task(eng, case_id, element_id)["id"], data, actor=actor)


ASSESS_NOW = {"likely_needs_after_18": True, "likely_needs_note": "Personal care and mobility",
              "significant_benefit": True, "consent": "given"}


def eligible_plan_signed_off(eng, cid):
    complete(eng, cid, "assess_needs", helena_assessment())
    complete(eng, cid, "score_needs", helena_ras())
    complete(eng, cid, "write_plan", PLAN)
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager1")


def test_not_likely_to_have_needs_gets_a_reasons_letter_and_nothing_else(eng):
    res = start(eng)
    cid = res.case_id
    complete(eng, cid, "decide_assessment", {"likely_needs_after_18": False,
                                             "likely_needs_note": "Sam's needs are met by his family and school"})
    assert instances(eng, cid) == [("transition", "completed")]
    assert eng.list_tasks(case_id=cid) == [] and waiting_timers(eng, res.instance_id) == []
    [letter] = eng.documents(cid)
    assert letter["kind"] == "transition_not_assessed"
    assert "not likely to have needs for care and support after becoming 18" in " ".join(letter["body"].split())
    assert cld_rows(eng, cid) == [("Request", "2031-03-03", "2031-03-03",
                                   "NFA – Information & Advice / Signposting only")]


def test_a_refusal_is_overridden_when_the_young_person_is_at_risk_of_abuse_or_neglect(eng):
    res = start(eng)
    cid = res.case_id
    step = complete(eng, cid, "decide_assessment", {**ASSESS_NOW, "consent": "refused",
                                                    "at_risk_of_abuse_or_neglect": True})
    assert len(step.started_instances) == 1
    assert [p for p, _ in instances(eng, cid)] == ["transition", "needs_assessment"]
    assert eng.documents(cid) == []


def test_a_decision_not_made_in_time_goes_to_the_team_manager_and_keeps_its_due_date(eng):
    res = start(eng)
    cid = res.case_id
    eng.advance_clock(to=datetime(2031, 3, 17, 16, 59, tzinfo=UTC))
    assert [t["element_id"] for t in eng.list_tasks(case_id=cid)] == ["decide_assessment"]
    eng.advance_clock(to=datetime(2031, 3, 17, 17, 0, tzinfo=UTC))  # on the due time exactly
    assert sorted((t["element_id"], t["team"]) for t in eng.list_tasks(case_id=cid)) == [
        ("decide_assessment", "social_work"), ("decision_overdue", "team_manager")]
    assert the_task(eng, cid, "decide_assessment")["due_at"] == datetime(2031, 3, 17, 17, 0, tzinfo=UTC)
    complete(eng, cid, "decision_overdue", {"action_taken": "Reallocated to the transitions worker"},
             actor="manager1")
    complete(eng, cid, "decide_assessment", ASSESS_NOW)
    assert [p for p, _ in instances(eng, cid)] == ["transition", "needs_assessment"]


def test_no_plan_at_18_goes_to_the_team_manager_and_is_checked_again_until_the_plan_is_in_place(eng):
    res = start(eng, date_of_birth="2013-04-10")  # 18 on 10 April 2031
    cid, tid = res.case_id, res.instance_id
    complete(eng, cid, "decide_assessment", ASSESS_NOW)
    assert waiting_timers(eng, tid) == [("eighteenth_birthday", datetime(2031, 4, 10, 8, 0, tzinfo=UTC))]  # 09:00 BST
    eng.advance_clock(to=datetime(2031, 4, 10, 8, 0, tzinfo=UTC))
    gap = the_task(eng, cid, "support_not_in_place")
    assert (gap["team"], gap["form"]) == ("team_manager", "transition_gap")
    assert "hand_over" not in [t["element_id"] for t in eng.list_tasks(case_id=cid)]
    complete(eng, cid, "support_not_in_place", {"situation": "still_being_arranged",
                                                "childrens_services_continue": True,
                                                "action_taken": "Assessment booked"}, actor="manager1")
    assert waiting_timers(eng, tid) == [("check_again", datetime(2031, 4, 24, 8, 0, tzinfo=UTC))]  # 14 days
    eng.advance_clock(to=datetime(2031, 4, 24, 8, 0, tzinfo=UTC))
    assert fired_at(eng, cid, "check_again") == ["2031-04-24T08:00:00.000000+00:00"]
    the_task(eng, cid, "support_not_in_place")  # still nothing in place: asked again
    assert eng.get_case(cid)["data"]["childrens_services"]["status"] == "continuing"
    eligible_plan_signed_off(eng, cid)
    complete(eng, cid, "support_not_in_place", {"situation": "still_being_arranged",
                                                "childrens_services_continue": True,
                                                "action_taken": "Plan signed off today"}, actor="manager1")
    eng.advance_clock(timedelta(days=14))
    complete(eng, cid, "hand_over", {"adult_worker": "Tom Adeyemi", "handover_meeting_held": True})
    record = eng.get_case(cid)["data"]["childrens_services"]
    assert (record["status"], record["ended_on"]) == ("ended", "2031-05-08")
    assert instances(eng, cid)[0] == ("transition", "completed")
    assert [e["data"]["element_id"] for e in events(eng, cid, "timer.fired")
            if e["instance_id"] == tid] == ["eighteenth_birthday", "check_again", "check_again"]


def test_found_not_eligible_at_18_ends_the_wait_and_records_it(eng):
    res = start(eng, date_of_birth="2013-04-10")
    cid = res.case_id
    complete(eng, cid, "decide_assessment", ASSESS_NOW)
    eng.advance_clock(to=datetime(2031, 4, 10, 9, 0, tzinfo=UTC))
    complete(eng, cid, "support_not_in_place", {"situation": "not_eligible",
                                                "action_taken": "Information and advice given"}, actor="manager1")
    record = eng.get_case(cid)["data"]["childrens_services"]
    assert (record["status"], record["reason"], record["ended_on"]) == (
        "ended_without_adult_support", "not_eligible", "2031-04-10")
    assert instances(eng, cid)[0] == ("transition", "completed")
    assert waiting_timers(eng, res.instance_id) == []


@pytest.mark.parametrize(("signed_off_at", "in_place"), [
    ("2031-03-03T10:00:00+00:00", True),   # signed off on the referral day: counts
    ("2031-03-02T10:00:00+00:00", False),  # an older plan, before the referral: does not
])
def test_only_a_plan_signed_off_since_the_referral_counts_as_adult_support_in_place(eng, signed_off_at, in_place):
    case_id = eng.create_case("Sam Patel", {"current_plan": {"signed_off_at": signed_off_at}}, actor="sw1")
    res = start(eng, case_id=case_id, date_of_birth="2013-04-10")
    complete(eng, case_id, "decide_assessment", ASSESS_NOW)
    eng.advance_clock(to=datetime(2031, 4, 10, 9, 0, tzinfo=UTC))
    waiting = [t["element_id"] for t in eng.list_tasks(case_id=case_id) if t["instance_id"] == res.instance_id]
    assert waiting == (["hand_over"] if in_place else ["support_not_in_place"])
