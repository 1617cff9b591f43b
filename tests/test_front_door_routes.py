"""The front door's routes added by issue 10 item 4, end to end on the simulated clock (SQLite and PostgreSQL):

- a crisis goes to a same-day urgent response (processes/urgent_response.bpmn), not to safeguarding; a
  safeguarding concern on the same contact starts the safeguarding process as well;
- tier 2: equipment, telecare or a minor adaptation for someone not likely eligible starts the equipment
  process (with signposting too when the person also has community needs);
- a carer asking for support for themselves gets a carer's assessment, whatever the cared-for person's route
  or eligibility, and a carer contacting on their own may leave the cared-for person out;
- new needs on a case whose support plan is signed off and in effect start an unplanned review of the plan,
  not a second reablement.

Each test runs the real diagrams in processes/ and asserts the route, the tasks per team, the timers set and
withdrawn, letters where the route writes one, and the case's Client Level Data rows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import ValidationError
from tests.case_helpers import cld_full, cld_rows, events, fired, instances, started_data, the_task
from tests.casework_helpers import casework_engine, contact, diagrams
from tests.test_process_assessment_to_review import SMALL, assessment, complete, plan, ras

DAY0 = "2031-03-03"  # START, Monday 3 March 2031 09:00 UTC
ADVISOR, SW, TM = "advisor1", "worker1", "manager1"

# CLD (operating model, section 4)
TO_ASSESSMENT = "Progress to Assessment"
TO_REABLEMENT = "Progress to Reablement/ST-Max"
TO_REVIEW = "Progress to Re-assessment / Unplanned Review"
TO_SERVICES = "Progress to Support Planning / Services"
INFORMATION_ADVICE = "NFA – Information & Advice / Signposting only"
NFA_OTHER = "NFA – Other"


# the front door, every process it starts, and what a signed-off plan needs
PROCESSES = ("front_door.bpmn", "screening.dmn", "urgent_response.bpmn", "equipment.bpmn", "safeguarding.bpmn",
             "carers_assessment.bpmn", "carers_support_plan.bpmn", "reablement.bpmn", "hospital_follow_up.bpmn",
             "needs_assessment.bpmn", "personal_budget.bpmn", "financial_assessment.bpmn", "support_plan.bpmn",
             "review.bpmn",
             "direct_payment_review.bpmn")


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams(*PROCESSES))


# ---------------------------------------------------------------- helpers

CRISIS = "Her husband, her only carer, was taken into hospital this morning; she cannot get out of bed alone"
LIKELY_ELIGIBLE = ["personal_hygiene", "being_appropriately_clothed", "using_the_home_safely"]


def front_door(eng, form, case_id=None):
    """Record the contact (a new case, or the given one); returns (start result, step of the contact)."""
    res = eng.start("front_door", case_id=case_id, actor=ADVISOR)
    [task] = [t for t in res.ready_tasks if t["element_id"] == "record_contact"]
    assert task["team"] == "front_door"
    return res, eng.complete_task(task["id"], form, actor=ADVISOR)


def tasks(eng, case_id):
    return sorted((t["element_id"], t["team"]) for t in eng.list_tasks(case_id=case_id))


def children(eng, case_id, parent):
    return {i["process_id"]: i["id"] for i in eng.get_case(case_id)["instances"]
            if i.get("parent_instance_id") == parent}


def timers(eng, instance_id):
    return sorted(t[0] for t in eng.instance_snapshot(instance_id)["timers"])


def front_data(eng, res):
    return eng.instance_snapshot(res.instance_id)["data"]


def nothing_recorded(eng, res):
    """The contact task is still open and nothing was started or completed."""
    assert tasks(eng, res.case_id) == [("record_contact", "front_door")]
    assert events(eng, res.case_id, "task.completed") == []
    assert instances(eng, res.case_id) == [("front_door", "waiting")]


def planned_case(eng) -> int:
    """Peter: assessed, budget worked out and a council-managed support plan signed off (review cycle running)."""
    person = {"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "salutation": "Mr Clarke",
              "date_of_birth": "1948-05-01"}
    cid = eng.start("needs_assessment", actor=SW, data={"name": person["name"], "person": person,
                                                        "contact_date": DAY0}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"),
             actor=SW)
    complete(eng, cid, "score_needs", ras(**SMALL), actor=SW)
    complete(eng, cid, "write_plan", plan("council_managed"), actor=SW)
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor=TM)
    assert eng.get_case(cid)["data"]["current_plan"]
    return cid


PETER = dict(person_name="Peter Clarke", person_age=82, person_address="12 Mill Lane, Northtown",
             person_area="south", person_date_of_birth="1948-05-01")


# ---------------------------------------------------------------- crisis: urgent response, separate from safeguarding

def test_a_crisis_starts_a_same_day_urgent_response_and_not_safeguarding(eng):
    res, step = front_door(eng, contact(crisis=True, crisis_detail=CRISIS, outcomes_unable=LIKELY_ELIGIBLE))
    assert step.status == "completed"  # the front door's part ends: the urgent response team owns it now
    data = front_data(eng, res)
    assert data["screening_route"] == "urgent_response"
    assert data["screening_reason"].startswith("At immediate risk without help today: a same-day urgent response")
    kids = children(eng, res.case_id, res.instance_id)
    assert list(kids) == ["urgent_response"]  # no safeguarding, and no reablement although likely eligible
    start = started_data(eng, res.case_id, kids["urgent_response"])
    assert start == {"person": contact()["person"], "contact_date": DAY0, "crisis_detail": CRISIS}
    # the social work team decides today between a rapid response visit and an urgent assessment
    assert tasks(eng, res.case_id) == [("decide_response", "social_work")]
    decide = the_task(eng, res.case_id, "decide_response")
    assert decide["due_at"].isoformat().startswith("2031-03-03T13:00")  # 4 hours (timescales.json)
    assert timers(eng, kids["urgent_response"]) == ["decide_late"]
    assert timers(eng, res.instance_id) == []
    # the same-day deadline passes: the team manager is told, the decision stays open
    eng.advance_clock(timedelta(hours=4))
    assert fired(eng, res.case_id) == ["decide_late"]
    assert tasks(eng, res.case_id) == [("decide_response", "social_work"), ("response_overdue", "team_manager")]
    # a rapid response visit by the reablement team, still due by the same deadline; reablement follows
    cid = res.case_id
    complete(eng, cid, "decide_response", {"urgent_kind": "rapid_response", "decision_reason": "Cannot stand"},
             actor=SW)
    # the visit is already past the deadline: escalated at once (a second notice for the team manager)
    assert tasks(eng, cid) == [("rapid_response", "reablement"), ("response_overdue", "team_manager"),
                               ("response_overdue", "team_manager")]
    assert the_task(eng, cid, "rapid_response")["due_at"].isoformat().startswith("2031-03-03T13:00")
    complete(eng, cid, "rapid_response", {"what_was_done": "Helped Joan up; carers twice a day this week",
                                          "safe_at_home": True, "onward": "reablement"}, actor="rosa")
    assert timers(eng, kids["urgent_response"]) == []
    assert ("plan_reablement", "reablement") in tasks(eng, cid)
    [letter] = [e["data"]["output"]["body"] for e in events(eng, cid, "handler.called")
                if e["data"]["handler"] == "urgent_response_letter"]
    assert "our rapid response team visited you" in " ".join(letter.split())
    assert CRISIS not in letter
    # CLD: the request progressed to a same-day assessment; the rapid response is a short-term service that
    # progressed to reablement (ST-Max)
    assert [(r["event_type"], r["process_id"], r["outcome"]) for r in cld_full(eng, cid)] == [
        ("Request", "front_door", TO_ASSESSMENT), ("Service", "urgent_response", TO_REABLEMENT),
        ("Service", "reablement", None)]
    assert [(r["event_start"], r["event_end"]) for r in cld_full(eng, cid)][0] == (DAY0, DAY0)


def test_a_crisis_with_a_safeguarding_concern_starts_both_the_urgent_response_and_safeguarding(eng):
    form = contact(crisis=True, crisis_detail=CRISIS, safeguarding_concern=True,
                   reason="Neighbour reports bruising; the lodger has left her without food or heating")
    res, step = front_door(eng, form)
    assert step.status == "completed"
    data = front_data(eng, res)
    assert data["screening_route"] == "urgent_response"
    assert "and a safeguarding concern" in data["screening_reason"]
    kids = children(eng, res.case_id, res.instance_id)
    assert sorted(kids) == ["safeguarding", "urgent_response"]
    concern = started_data(eng, res.case_id, kids["safeguarding"])
    assert concern["urgent"] is True and concern["concern"] == form["reason"]
    assert concern["raised_by"] == "Dr Amy Shah (gp_or_social_prescriber)"
    assert started_data(eng, res.case_id, kids["urgent_response"])["crisis_detail"] == CRISIS
    # each team has its own first task, each with its own deadline
    assert tasks(eng, res.case_id) == [("decide_response", "social_work"), ("record_concern", "safeguarding")]
    assert the_task(eng, res.case_id, "decide_response")["due_at"].isoformat().startswith("2031-03-03T13:00")
    assert the_task(eng, res.case_id, "record_concern")["due_at"].isoformat().startswith("2031-03-04T17:00")
    assert timers(eng, kids["urgent_response"]) == ["decide_late"]
    # CLD: the person's request progressed to a (same-day) assessment; the concern goes to the SAC, not CLD
    assert [r for r in cld_rows(eng, res.case_id) if r[0] == "Request"] == [("Request", DAY0, DAY0, TO_ASSESSMENT)]


def test_a_safeguarding_concern_without_a_crisis_starts_safeguarding_only(eng):
    res, step = front_door(eng, contact(safeguarding_concern=True, outcomes_unable=LIKELY_ELIGIBLE))
    assert front_data(eng, res)["screening_route"] == "safeguarding"
    assert list(children(eng, res.case_id, res.instance_id)) == ["safeguarding"]
    assert tasks(eng, res.case_id) == [("record_concern", "safeguarding")]
    assert cld_rows(eng, res.case_id) == [("Request", DAY0, DAY0, NFA_OTHER)]


def test_a_crisis_must_say_what_the_crisis_is_and_nothing_is_stored_until_it_does(eng):
    res = eng.start("front_door", actor=ADVISOR)
    with pytest.raises(ValidationError) as err:
        eng.complete_task(res.ready_tasks[0]["id"], contact(crisis=True), actor=ADVISOR)
    assert [e["field"] for e in err.value.errors] == ["crisis_detail"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(res.ready_tasks[0]["id"], contact(crisis=True, crisis_detail="no"), actor=ADVISOR)
    assert [e["field"] for e in err.value.errors] == ["crisis_detail"]  # too short to tell the team anything
    nothing_recorded(eng, res)


# ---------------------------------------------------------------- tier 2: equipment, telecare, minor adaptations

def test_equipment_for_someone_not_likely_eligible_starts_the_equipment_process(eng):
    form = contact(outcomes_unable=["personal_hygiene"], equipment_asked=["minor_adaptation", "telecare"],
                   equipment_needs="Cannot get in and out of the bath; falls at night on the way to the toilet")
    res, step = front_door(eng, form)
    assert step.status == "completed"
    data = front_data(eng, res)
    assert data["screening_route"] == "equipment"
    kids = children(eng, res.case_id, res.instance_id)
    assert list(kids) == ["equipment"]
    assert started_data(eng, res.case_id, kids["equipment"]) == {
        "person": form["person"], "contact_date": DAY0, "equipment_needs": form["equipment_needs"]}
    assert tasks(eng, res.case_id) == [("assess_equipment", "social_work")]  # an occupational therapist
    assert timers(eng, kids["equipment"]) == ["assessment_late"]
    assert timers(eng, res.instance_id) == []  # no community needs: no signposting call back
    assert [r for r in cld_rows(eng, res.case_id) if r[0] == "Request"] == [("Request", DAY0, DAY0, TO_SERVICES)]


def test_equipment_with_community_needs_also_signposts_and_calls_back(eng):
    form = contact(equipment_asked=["equipment"], equipment_needs="A perching stool and a trolley for the kitchen",
                   needs=["social_isolation"])
    res, step = front_door(eng, form)
    assert step.status == "waiting"  # the call back is still to come
    data = front_data(eng, res)
    assert data["screening_route"] == "equipment"
    assert list(children(eng, res.case_id, res.instance_id)) == ["equipment"]
    assert [r["service_id"] for r in data["signposting"]["referrals"]] == [
        m["id"] for m in data["directory_search"]["matches"]] != []
    assert timers(eng, res.instance_id) == ["wait_for_call_back"]
    eng.advance_clock(timedelta(days=14))
    assert "wait_for_call_back" in fired(eng, res.case_id)
    assert ("signposting_call_back", "front_door") in tasks(eng, res.case_id)
    # CLD: equipment is a service; the request is open until the call back
    assert [r for r in cld_rows(eng, res.case_id) if r[0] == "Request"] == [("Request", DAY0, None, TO_SERVICES)]


@pytest.mark.parametrize("unable, route", [(1, "equipment"), (2, "reablement")])
def test_two_outcomes_unable_is_the_boundary_between_equipment_and_reablement(eng, unable, route):
    form = contact(outcomes_unable=LIKELY_ELIGIBLE[:unable], equipment_asked=["equipment"],
                   equipment_needs="A raised toilet seat")
    res, step = front_door(eng, form)
    assert front_data(eng, res)["screening_route"] == route
    assert list(children(eng, res.case_id, res.instance_id)) == [route]  # reablement tries equipment itself


def test_equipment_asked_needs_what_is_needed_and_nothing_is_stored_until_it_is_said(eng):
    res = eng.start("front_door", actor=ADVISOR)
    with pytest.raises(ValidationError) as err:
        eng.complete_task(res.ready_tasks[0]["id"], contact(equipment_asked=["telecare"]), actor=ADVISOR)
    assert [e["field"] for e in err.value.errors] == ["equipment_needs"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(res.ready_tasks[0]["id"], contact(equipment_asked=["a stairlift"],
                                                             equipment_needs="A stairlift"), actor=ADVISOR)
    assert [e["field"] for e in err.value.errors] == ["equipment_asked/0"]
    nothing_recorded(eng, res)


# ---------------------------------------------------------------- a carer asking for support for themselves

MARY = dict(caller_name="Mary Barker", caller_relationship="carer", caller_phone="07700 900123",
            carer_support_asked="caller", carer_relationship="daughter")


def test_a_carer_calling_for_herself_gets_a_carers_assessment_whatever_her_mothers_route(eng):
    # Joan is not likely eligible (information and advice); Mary, who cares for her, asks for support herself
    res, step = front_door(eng, contact(**MARY, reason="Mary is exhausted caring for her mother at night"))
    assert step.status == "completed"
    data = front_data(eng, res)
    assert data["screening_route"] == "information_and_advice"
    kids = children(eng, res.case_id, res.instance_id)
    assert list(kids) == ["carers_assessment"]
    assert started_data(eng, res.case_id, kids["carers_assessment"]) == {
        "person": {"name": "Mary Barker", "relationship": "daughter", "address": "4 Mill Lane, Northby",
                   "phone": "07700 900123"},
        "cared_for": "Joan Barker", "contact_date": DAY0, "carer_self_contact": True}
    assert tasks(eng, res.case_id) == [("assess_carer", "social_work")]
    # CLD: the request progressed to an assessment - the carer's, a row of client type Carer about Mary
    rows = cld_full(eng, res.case_id)
    assert [(r["event_type"], r["outcome"], r["client_type"]) for r in rows] == [
        ("Request", TO_ASSESSMENT, "Service User"), ("Assessment", None, "Carer")]


def test_a_carer_calling_for_herself_and_her_mother_starts_both_routes(eng):
    res, step = front_door(eng, contact(**MARY, outcomes_unable=LIKELY_ELIGIBLE, carer_address="9 Elm Road, Northby"))
    kids = children(eng, res.case_id, res.instance_id)
    assert sorted(kids) == ["carers_assessment", "reablement"]
    assert started_data(eng, res.case_id, kids["carers_assessment"])["person"]["address"] == "9 Elm Road, Northby"
    assert tasks(eng, res.case_id) == [("assess_carer", "social_work"), ("plan_reablement", "reablement")]
    # the person's route decides the request's outcome
    assert [r for r in cld_rows(eng, res.case_id) if r[0] == "Request"] == [("Request", DAY0, DAY0, TO_REABLEMENT)]


def test_a_carer_contacting_on_her_own_may_leave_out_the_person_she_cares_for(eng):
    form = contact(caller_name="Sue Patel", caller_relationship="self", caller_organisation="",
                   person_name="Sue Patel", person_age=58, person_address="2 Canal Row, Eastham",
                   person_area="east", reason="Cares for her brother, who does not want the council involved",
                   carer_support_asked="person", carer_relationship="sister")
    res, step = front_door(eng, form)
    kids = children(eng, res.case_id, res.instance_id)
    assert list(kids) == ["carers_assessment"]
    start = started_data(eng, res.case_id, kids["carers_assessment"])
    assert start["person"]["name"] == "Sue Patel" and start["person"]["relationship"] == "sister"
    assert start["cared_for"] == "" and start["carer_self_contact"] is True
    assert tasks(eng, res.case_id) == [("assess_carer", "social_work")]
    assert [r for r in cld_rows(eng, res.case_id) if r[0] == "Request"] == [("Request", DAY0, DAY0, TO_ASSESSMENT)]


def test_a_person_calling_about_themselves_as_a_carer_is_the_carer_not_the_caller(eng):
    # "the caller cares for this person" chosen by the person themselves: the person is the carer
    form = contact(caller_name="Sue Patel", caller_relationship="self", person_name="Sue Patel",
                   carer_support_asked="caller", carer_relationship="sister", cared_for_name="Raj Patel")
    res, step = front_door(eng, form)
    start = started_data(eng, res.case_id, children(eng, res.case_id, res.instance_id)["carers_assessment"])
    assert start["person"]["name"] == "Sue Patel" and start["cared_for"] == "Raj Patel"


def test_the_caller_as_carer_needs_the_relationship_and_nothing_is_stored_until_it_is_given(eng):
    res = eng.start("front_door", actor=ADVISOR)
    bad = contact(**MARY)
    del bad["carer_relationship"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(res.ready_tasks[0]["id"], bad, actor=ADVISOR)
    assert [e["field"] for e in err.value.errors] == ["carer_relationship"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(res.ready_tasks[0]["id"], contact(**dict(MARY, carer_support_asked="yes")), actor=ADVISOR)
    assert [e["field"] for e in err.value.errors] == ["carer_support_asked"]
    nothing_recorded(eng, res)


# ---------------------------------------------------------------- new needs on an open case: a review, not reablement

def test_new_needs_on_a_case_with_a_signed_off_plan_start_an_unplanned_review_not_reablement(eng):
    cid = planned_case(eng)
    before = {i["id"] for i in eng.get_case(cid)["instances"]}
    form = contact(**PETER, caller_name="Peter Clarke", caller_relationship="self", caller_organisation="",
                   reason="Since a fall last week I cannot get upstairs to the bathroom",
                   outcomes_unable=LIKELY_ELIGIBLE)
    res, step = front_door(eng, form, case_id=cid)
    assert step.status == "completed"
    data = front_data(eng, res)
    assert data["screening_route"] == "review" and data["plan_in_effect"] is True
    assert "not a second reablement" in data["screening_reason"]
    kids = children(eng, cid, res.instance_id)
    assert list(kids) == ["review"]
    assert started_data(eng, cid, kids["review"]) == {
        "review_reason": "Other Reason", "review_requested_by": "person",
        "review_request_note": "New needs reported at the front door: " + form["reason"]}
    assert "reablement" not in [i["process_id"] for i in eng.get_case(cid)["instances"]]
    review = the_task(eng, cid, "review_plan")
    assert review["instance_id"] == kids["review"] and review["team"] == "social_work"
    assert review["due_at"].isoformat().startswith("2031-03-17")  # unplanned_review_within: 14 days
    assert timers(eng, kids["review"]) == ["review_overdue_timer"]  # escalated to the team manager if missed
    new = [i for i in eng.get_case(cid)["instances"] if i["id"] not in before]
    assert sorted(i["process_id"] for i in new) == ["front_door", "review"]
    # CLD: the request progressed to an unplanned review, reported with its reason
    rows = cld_full(eng, cid)
    [request] = [r for r in rows if r["event_type"] == "Request"]
    assert (request["event_start"], request["event_end"], request["outcome"]) == (DAY0, DAY0, TO_REVIEW)
    # the review finds the needs have changed: a reassessment, reported as the review's outcome
    complete(eng, cid, "review_plan", {"needs_changed": True, "plan_working": False,
                                       "what_changed": "Cannot manage the stairs since the fall"}, actor=SW)
    assert ("assess_needs", "social_work") in tasks(eng, cid)
    reviews = [r for r in cld_full(eng, cid) if r["event_type"] == "Review" and r["review_type"] == "Unplanned"]
    assert [(r["review_reason"], r["outcome"]) for r in reviews] == [("Other Reason", TO_REVIEW)]


def test_a_hospital_discharge_on_a_case_with_a_plan_is_a_hospital_review_asked_by_the_carer(eng):
    cid = planned_case(eng)
    form = contact(**PETER, caller_name="Ann Clarke", caller_relationship="carer", from_hospital=True,
                   discharge_date="2031-03-05", outcomes_unable=["toilet_needs"])
    res, step = front_door(eng, form, case_id=cid)
    kids = children(eng, cid, res.instance_id)
    assert list(kids) == ["review"]  # not reablement, not the 91-day follow-up
    start = started_data(eng, cid, kids["review"])
    assert (start["review_reason"], start["review_requested_by"]) == ("Hospital", "carer")


def test_a_case_with_a_plan_and_only_community_needs_is_signposted_not_reviewed(eng):
    cid = planned_case(eng)
    res, step = front_door(eng, contact(**PETER, needs=["social_isolation"]), case_id=cid)
    data = front_data(eng, res)
    assert data["plan_in_effect"] is True and data["screening_route"] == "signposting"  # no outcome unable
    assert children(eng, cid, res.instance_id) == {}


def test_a_crisis_on_a_case_with_a_plan_is_an_urgent_response_first(eng):
    cid = planned_case(eng)
    res, step = front_door(eng, contact(**PETER, crisis=True, crisis_detail=CRISIS, outcomes_unable=LIKELY_ELIGIBLE),
                           case_id=cid)
    assert list(children(eng, cid, res.instance_id)) == ["urgent_response"]


def test_a_plan_that_ended_when_the_case_was_closed_does_not_make_a_new_contact_a_review(eng):
    cid = planned_case(eng)
    eng.close_case(cid, reason="moved_away", actor=TM, details={"council": "Westshire"})
    eng.advance_clock(timedelta(days=200))
    eng.reopen_case(cid, reason="new contact at the front door", actor=ADVISOR)
    res, step = front_door(eng, contact(**PETER, outcomes_unable=LIKELY_ELIGIBLE), case_id=cid)
    data = front_data(eng, res)
    assert data["plan_in_effect"] is False and data["screening_route"] == "reablement"
    assert list(children(eng, cid, res.instance_id)) == ["reablement"]


def test_the_advisor_sees_every_route_started_and_the_chronology_says_so(eng):
    from api.case_record import screening_also, screening_outcome

    form = contact(**MARY, crisis=True, crisis_detail=CRISIS, safeguarding_concern=True)
    res, step = front_door(eng, form)
    data = front_data(eng, res)
    assert screening_also(data) == ["safeguarding concern: the safeguarding team triages it",
                                    "carer's assessment for Mary Barker, who asks for support as a carer"]
    text = screening_outcome(data)
    assert text.startswith("urgent response today (At immediate risk without help today, and a safeguarding")
    assert text.endswith("; also: safeguarding concern: the safeguarding team triages it; carer's assessment for "
                         "Mary Barker, who asks for support as a carer")
    assert sorted(children(eng, res.case_id, res.instance_id)) == ["carers_assessment", "safeguarding",
                                                                   "urgent_response"]
