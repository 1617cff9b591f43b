"""Helena's transition from children's services (Care Act 2014 s.58-66), on the simulated clock.

The council's local account tells Helena's story at 23: after residential college she needed day
opportunities, volunteering and then a supported-living placement with a gradual move-in. This scenario
is the transition that comes first: children's services refer Helena at 17 from her residential
college. Social work decides the assessment is not of significant benefit until her college year
settles, but the date to think again is brought forward to six months before her 18th birthday (the
local latest). The needs assessment is then carried out before 18 and is her adult needs assessment:
eligible, personal budget, the support plan signed off. Children's services go on until adult support is
in place: on her 18th birthday the check finds the plan, social work agrees the handover with her
children's social worker, Helena gets a letter and the case records that children's services ended.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from engine.replay import replay_case
from engine.schema import people
from handlers.transition import check_referral
from tests.case_helpers import cld_full, cld_rows, events, fired_at, instances, started_data, the_task
from tests.casework_helpers import casework_engine, diagrams, waiting_timers
from tests.conftest import START
from tests.test_story_helena import PLAN, helena_assessment, helena_ras

UTC = timezone.utc
# what the transition and the adult route after it need (deployed together, as `carepath deploy` would)
PROCESSES = ("transition", "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment",
             "support_plan", "review",
             "direct_payment_review", "safeguarding")

REFERRAL = {
    "name": "Helena Brooks", "date_of_birth": "2013-09-14",
    "address": "Linden House College, 2 College Road, Southby", "postcode": "sb4 7lh", "ehc_plan": "yes",
    "likely_needs": "Learning disability and autism: Helena needs prompting to cook and stay safe at home and "
                    "support to travel and take part in her community; she leaves residential college next year",
    "childrens_social_worker": "Amira Khan", "childrens_team": "Southby Children with Disabilities Team",
    "childrens_phone": "01632 960777",
}


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams(*PROCESSES))


def open_tasks(eng, case_id):
    return sorted((t["element_id"], t["team"]) for t in eng.list_tasks(case_id=case_id))


def complete(eng, case_id, element_id, data, actor="sw_kelly"):
    return eng.complete_task(the_task(eng, case_id, element_id)["id"], data, actor=actor)


def output(eng, case_id, handler):
    return [e["data"]["output"] for e in events(eng, case_id, "handler.called") if e["data"]["handler"] == handler]


def flat(text):
    return " ".join(text.split())


def test_helena_is_referred_at_17_assessed_before_18_and_children_services_hand_over_on_her_birthday(eng):
    # 3 March 2031: her children's social worker refers Helena, 17, from her residential college
    start, errors = check_referral(REFERRAL, START.date())
    assert errors == {}
    assert start["person"] == {"name": "Helena Brooks", "date_of_birth": "2013-09-14", "age": 17,
                               "address": "Linden House College, 2 College Road, Southby", "postcode": "SB4 7LH"}
    res = eng.start("transition", data=start, actor="sw_kelly", title="Helena Brooks")
    cid, tid = res.case_id, res.instance_id
    assert [(t["element_id"], t["team"], t["form"]) for t in res.ready_tasks] == [
        ("decide_assessment", "social_work", "transition_decision")]
    [dates] = output(eng, cid, "transition_dates")
    assert dates["eighteenth_birthday"] == "2031-09-14" and dates["age_at_referral"] == 17
    assert dates["latest_assessment_start"] == "2031-03-14"  # six months before 18 (local setting)
    assert dates["settings"] == {"transition_decision_days": 14, "transition_latest_assessment_before_18": "P6M",
                                 "transition_recheck_after": "P14D"}
    decide = the_task(eng, cid, "decide_assessment")
    assert decide["due_at"] == datetime(2031, 3, 17, 17, 0, tzinfo=UTC)  # 14 days from the referral
    assert waiting_timers(eng, tid) == [("decision_overdue_timer", datetime(2031, 3, 17, 17, 0, tzinfo=UTC))]
    record = eng.get_case(cid)["data"]
    assert record["person"]["name"] == "Helena Brooks"  # the case is hers, found by the people search:
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(people.c.name, people.c.date_of_birth, people.c.postcode).where(
            people.c.case_id == cid)).one() == ("Helena Brooks", "2013-09-14", "SB47LH")
    assert record["childrens_services"] == {
        "status": "continuing", "since": "2031-03-03", "until": "adult support is in place", "ehc_plan": True,
        "eighteenth_birthday": "2031-09-14",
        "social_worker": {"name": "Amira Khan", "team": "Southby Children with Disabilities Team",
                          "phone": "01632 960777"}}

    # 5 March: not yet of significant benefit (her college year) -- think again in 3 months; but that would
    # leave too little time before 18, so the date is brought forward to 14 March
    eng.advance_clock(timedelta(days=2))
    complete(eng, cid, "decide_assessment", {
        "likely_needs_after_18": True, "likely_needs_note": "Day opportunities, volunteering, somewhere to live",
        "significant_benefit": False, "reconsider_after_months": 3, "consent": "given"})
    [outcome] = output(eng, cid, "transition_decision")
    assert outcome["assess"] == "later" and outcome["reconsider_on"] == "2031-03-14"
    assert "the latest date that leaves time to plan adult support before 18" in outcome["reasons"][0]
    assert [e["data"]["element_id"] for e in events(eng, cid, "timer.cleared")] == ["decision_overdue_timer"]
    assert waiting_timers(eng, tid) == [("reconsider_timer", datetime(2031, 3, 14, 9, 0, tzinfo=UTC))]
    assert open_tasks(eng, cid) == []

    # 14 March: the decision comes back, due 14 days later; this time an assessment now is of benefit
    eng.advance_clock(to=datetime(2031, 3, 14, 9, 0, tzinfo=UTC))
    assert fired_at(eng, cid, "reconsider_timer") == ["2031-03-14T09:00:00.000000+00:00"]
    decide = the_task(eng, cid, "decide_assessment")
    assert decide["due_at"] == datetime(2031, 3, 28, 17, 0, tzinfo=UTC)
    step = complete(eng, cid, "decide_assessment", {
        "likely_needs_after_18": True, "likely_needs_note": "Day opportunities, volunteering, somewhere to live",
        "significant_benefit": True, "reconsider_after_months": 3, "consent": "given"})
    assert output(eng, cid, "transition_decision")[1]["assess"] == "now"
    [assessment_id] = step.started_instances
    assert started_data(eng, cid, assessment_id) == {"person": start["person"], "contact_date": "2031-03-14"}
    assert waiting_timers(eng, tid) == [("eighteenth_birthday", datetime(2031, 9, 14, 8, 0, tzinfo=UTC))]
    assess = the_task(eng, cid, "assess_needs")
    assert (assess["team"], assess["form"]) == ("social_work", "needs_assessment")
    assert assess["due_at"] == datetime(2031, 4, 11, 16, 0, tzinfo=UTC)  # 28 days from the request (14 March)

    # the needs assessment, before 18, is her adult needs assessment: eligible; budget; plan signed off
    eng.advance_clock(timedelta(days=7))
    complete(eng, cid, "assess_needs", helena_assessment())
    assert output(eng, cid, "adult_eligibility")[0]["eligible"] is True
    complete(eng, cid, "score_needs", helena_ras())
    complete(eng, cid, "write_plan", PLAN)
    eng.advance_clock(timedelta(days=2))
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager1")
    assert eng.get_case(cid)["data"]["current_plan"]["signed_off_at"].startswith("2031-03-23")
    assert eng.get_case(cid)["data"]["childrens_services"]["status"] == "continuing"  # she is still 17
    assert [d["kind"] for d in eng.documents(cid)] == ["eligibility", "budget", "support_plan"]
    assert instances(eng, cid)[0] == ("transition", "waiting")

    # her 18th birthday: the plan is in place, so social work agrees the handover (nothing for the manager)
    eng.advance_clock(to=datetime(2031, 9, 14, 8, 0, tzinfo=UTC))
    assert fired_at(eng, cid, "eighteenth_birthday") == ["2031-09-14T08:00:00.000000+00:00"]
    hand = the_task(eng, cid, "hand_over")
    assert (hand["team"], hand["form"], hand["instance_id"]) == ("social_work", "transition_handover", tid)
    assert "support_not_in_place" not in [t["element_id"] for t in eng.list_tasks(case_id=cid)]
    complete(eng, cid, "hand_over", {"adult_worker": "Kelly Morgan", "handover_meeting_held": True,
                                     "handover_note": "Amira and Kelly met Helena and her mum at college"})
    assert [(i["element_id"], i["message"]) for i in eng.incidents()] == []
    assert instances(eng, cid)[0] == ("transition", "completed")
    assert eng.get_case(cid)["data"]["childrens_services"] == {
        "status": "ended", "since": "2031-03-03", "ended_on": "2031-09-14", "reason": "adult support in place",
        "adult_worker": "Kelly Morgan", "social_worker": record["childrens_services"]["social_worker"]}
    docs = eng.documents(cid)
    assert [d["kind"] for d in docs] == ["eligibility", "budget", "support_plan", "transition_handover"]
    letter = flat(docs[-1]["body"])
    assert "Moving from children's services to adult social care Your care" in letter and "MOVING" not in letter
    assert "your support from children's services comes to an end on 14 September 2031" in letter
    assert "There is no gap" in letter and "Your adult social care worker is Kelly Morgan" in letter
    assert "Dear Helena Brooks" in letter

    # Client Level Data: a planned-entry (transition) request that progressed to assessment once the decision
    # was made; the assessment; the long-term service from the sign-off
    rows = cld_rows(eng, cid)
    assert rows[:3] == [
        ("Request", "2031-03-03", "2031-03-14", "Progress to Assessment"),
        ("Assessment", "2031-03-14", "2031-03-21", "Progress to Support Planning / Services"),
        ("Service", "2031-03-23", None, "Provision of service"),
    ]
    assert cld_full(eng, cid)[0]["route_of_access"] == "Planned entry (transition)"
    assert date.fromisoformat(rows[0][1]) < date(2031, 9, 14)
    assert replay_case(eng, cid).ok  # the whole transition re-executes from its history
