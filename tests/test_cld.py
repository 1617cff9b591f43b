"""Client Level Data rows derived from real case histories (handlers/cld.py).

Runs the real diagrams with the real handlers and forms on the simulated clock (as the two
end-to-end process tests do), then derives the CLD events from each case's history.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import pytest

from api.demo_users import create_demo_users
from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers import cld
from tests.conftest import START
from tests.test_process_assessment_to_review import PETER, SMALL, SUSAN, assessment, carer_assessment, plan, ras
from tests.test_process_front_door_reablement import KYLE, LIKELY_ELIGIBLE, contact

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "processes" / name for name in (
    "front_door.bpmn", "screening.dmn", "reablement.bpmn", "hospital_follow_up.bpmn", "needs_assessment.bpmn",
    "carers_assessment.bpmn", "carers_support_plan.bpmn", "personal_budget.bpmn", "financial_assessment.bpmn",
    "support_plan.bpmn", "review.bpmn",
    "direct_payment_review.bpmn", "safeguarding.bpmn", "hospital_discharge.bpmn", "discharge_pathway.dmn")]
Q1 = (date(2031, 1, 1), date(2031, 3, 31))
Q2 = (date(2031, 4, 1), date(2031, 6, 30))
WIDE = (date(2030, 1, 1), date(2035, 12, 31))


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy(FILES)
    yield engine
    engine.db.dispose()


# 42 days after the sign-off on 3 March 2031 is Easter Monday: review dates are on working days
# (timescales.json review_dates_on_working_days), so the first review is on Tuesday 15 April
FIRST_REVIEW = 43


def task(eng, case_id, element_id):
    [found] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element_id]
    return found


def complete(eng, case_id, element_id, data, actor="worker"):
    return eng.complete_task(task(eng, case_id, element_id)["id"], data, actor=actor)


def rows_for(eng, case_id):
    return cld.derive_cld_events(eng.get_case(case_id), eng.history(case_id))


def summary(rows):
    return [(r["event_type"], r["event_start"], r["event_end"], r["outcome"]) for r in rows]


def front_door(eng, form):
    res = eng.start("front_door", actor="advisor1")
    complete(eng, res.case_id, "record_contact", form, actor="advisor1")
    return res.case_id


def to_plan(eng, money_management="direct_payment"):
    res = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "contact_date": "2031-03-03"})
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan(money_management))
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    return cid


# ---------------------------------------------------------------- the code lists and the mapping


def test_every_mapped_value_is_in_the_code_lists():
    for process_id, mapping in cld.PROCESS_MAPPINGS.items():
        assert mapping["event_type"] in cld.EVENT_TYPES, process_id
        outcomes = [o for _, o in mapping.get("outcome_rules", [])]
        outcomes += [mapping.get("default_outcome"), mapping.get("open_outcome")]
        assert {o for o in outcomes if o} <= set(cld.EVENT_OUTCOMES), process_id
        service = mapping.get("service_type")  # a value, or read from a form through a code map
        assert set(service["map"].values() if isinstance(service, dict) else [service]) <= {None, *cld.SERVICE_TYPES}
        reason = mapping.get("review_reason")
        assert reason is None or reason["default"] in cld.REVIEW_REASONS, process_id
        route = mapping.get("route_of_access")
        routes = [route] if not isinstance(route, dict) else [route["default"], *(v for _, v in route["rules"])]
        assert {r for r in routes if r} <= set(cld.ROUTES_OF_ACCESS), process_id
    # every way of managing a personal budget is self-directed support: a direct payment, or a personal budget the
    # council (or a provider holding it as an individual service fund) manages; never "commissioned support"
    assert cld.DELIVERY_BY_MONEY_MANAGEMENT == {"direct_payment": cld.DIRECT_PAYMENT,
                                                "managed_account": cld.CASSR_MANAGED_PERSONAL_BUDGET,
                                                "council_managed": cld.CASSR_MANAGED_PERSONAL_BUDGET}
    # a carer's support plan: each answer to "who the support is given to" is a Carer Support service type
    carer_form = FormLibrary.from_folder(ROOT / "forms").schema("carers_support_plan")
    assert sorted(cld.CARER_SERVICE_BY_SUPPORT_TYPE) == sorted(carer_form["properties"]["support_type"]["enum"])
    assert sorted(carer_form["properties"]["money_management"]["enum"]) == sorted(cld.DELIVERY_BY_MONEY_MANAGEMENT)
    change = cld.PROCESS_MAPPINGS["support_plan"]["delivery_changes"]
    assert set(change["map"].values()) <= set(cld.DELIVERY_MECHANISMS) and change["outcome"] in cld.EVENT_OUTCOMES
    # every outcome of the direct payment review that changes the arrangement has a delivery mechanism
    dp_form = FormLibrary.from_folder(ROOT / "forms").schema("direct_payment_review")
    changes = [o for o in dp_form["properties"]["outcome"]["enum"] if not o.startswith("continue")]
    assert sorted(change["map"]) == sorted(changes)
    assert len(cld.EVENT_OUTCOMES) == 19 and len(cld.SERVICE_TYPES) == 9
    assert cld.NFA_INFORMATION_ADVICE == "NFA – Information & Advice / Signposting only"


# ---------------------------------------------------------------- scenarios


def test_signposting_gives_one_request_with_the_information_and_advice_outcome(eng):
    cid = front_door(eng, KYLE)
    [row] = rows_for(eng, cid)
    # the outcome is known at the contact; the request stays open until the call-back is done
    assert summary([row]) == [("Request", "2031-03-03", None, cld.NFA_INFORMATION_ADVICE)]
    eng.advance_clock(timedelta(days=14))
    complete(eng, cid, "signposting_call_back", {"reached": True, "services_right": "yes", "further_help": "none"})
    [row] = rows_for(eng, cid)
    assert summary([row]) == [("Request", "2031-03-03", "2031-03-17", cld.NFA_INFORMATION_ADVICE)]
    assert row["process_id"] == "front_door" and row["service_type"] is None
    types = {e["seq"]: e["type"] for e in eng.history(cid)}
    assert {types[s] for s in row["source_event_seq"]} == {"instance.started", "handler.called",
                                                           "instance.completed"}


def test_information_and_advice_only_is_a_closed_request(eng):
    cid = front_door(eng, contact(advice_given="Leaflet on falls prevention"))
    assert summary(rows_for(eng, cid)) == [("Request", "2031-03-03", "2031-03-03", cld.NFA_INFORMATION_ADVICE)]


def test_a_safeguarding_concern_is_a_request_with_no_further_action_in_cld(eng):
    cid = front_door(eng, contact(safeguarding_concern=True))
    [row] = rows_for(eng, cid)
    assert (row["event_type"], row["outcome"]) == ("Request", cld.NFA_OTHER)


def test_reablement_ended_early_gives_a_request_and_an_st_max_service_ended_as_planned(eng):
    cid = front_door(eng, LIKELY_ELIGIBLE)
    eng.advance_clock(timedelta(days=1))
    complete(eng, cid, "plan_reablement", {"goals": ["Wash and dress without help"], "setting": "home",
                                           "start_type": "planned", "visits_per_day": 2}, actor="coordinator1")
    open_rows = rows_for(eng, cid)
    assert summary(open_rows) == [("Request", "2031-03-03", "2031-03-03", cld.PROGRESS_TO_REABLEMENT),
                                  ("Service", "2031-03-04", None, None)]
    eng.advance_clock(timedelta(days=20))
    complete(eng, cid, "deliver_reablement", {"outcome": "best_independence_reached",
                                              "summary": "Washing and dressing independently"})
    request, service = rows_for(eng, cid)
    assert summary([request]) == [("Request", "2031-03-03", "2031-03-03", cld.PROGRESS_TO_REABLEMENT)]
    assert summary([service]) == [("Service", "2031-03-04", "2031-03-24", cld.SERVICE_ENDED_AS_PLANNED)]
    assert service["service_type"] == "Short Term Support: ST-Max"
    assert service["process_id"] == "reablement" and service["instance_id"] != request["instance_id"]


def test_reablement_with_needs_remaining_progresses_to_assessment(eng):
    cid = front_door(eng, LIKELY_ELIGIBLE)
    complete(eng, cid, "plan_reablement", {"goals": ["Make a hot meal"], "setting": "home",
                                           "start_type": "planned", "visits_per_day": 1})
    eng.advance_clock(timedelta(days=10))
    complete(eng, cid, "deliver_reablement", {"outcome": "needs_remain", "summary": "Needs help with meals"})
    assert summary(rows_for(eng, cid)) == [
        ("Request", "2031-03-03", "2031-03-03", cld.PROGRESS_TO_REABLEMENT),
        ("Service", "2031-03-03", "2031-03-13", cld.PROGRESS_TO_ASSESSMENT),
        ("Assessment", "2031-03-13", None, None)]


def test_peter_assessed_eligible_then_a_direct_payment_long_term_service(eng):
    cid = to_plan(eng, "direct_payment")
    assessment_row, service = rows_for(eng, cid)
    assert summary([assessment_row]) == [("Assessment", "2031-03-03", "2031-03-03",
                                          cld.PROGRESS_TO_SUPPORT_PLANNING)]
    assert (service["event_type"], service["service_type"], service["delivery_mechanism"]) == (
        "Service", "Long Term Support: Community", "Direct Payment")
    assert (service["event_start"], service["event_end"], service["outcome"]) == (
        "2031-03-03", None, cld.PROVISION_OF_SERVICE)


@pytest.mark.parametrize("money, mechanism", [("managed_account", "CASSR Managed Personal Budget"),
                                              ("council_managed", "CASSR Managed Personal Budget")])
def test_the_delivery_mechanism_follows_how_the_money_is_managed(eng, money, mechanism):
    cid = to_plan(eng, money)
    assert [r["delivery_mechanism"] for r in rows_for(eng, cid)] == [None, mechanism]


def test_an_adult_not_eligible_gets_an_assessment_row_with_no_services_offered(eng):
    res = eng.start("needs_assessment", data={"person": PETER})
    complete(eng, res.case_id, "assess_needs", assessment("personal_hygiene"))
    assert summary(rows_for(eng, res.case_id)) == [("Assessment", "2031-03-03", "2031-03-03", cld.NFA_NO_SERVICES)]


def test_a_plan_not_yet_signed_off_is_not_a_service(eng):
    res = eng.start("needs_assessment", data={"person": PETER})
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan())
    complete(eng, cid, "sign_off_plan", {"signed_off": False, "comments": "Add the night-time outcome"})
    assert [r["event_type"] for r in rows_for(eng, cid)] == ["Assessment"]


def test_a_review_is_planned_with_no_change_in_package(eng):
    cid = to_plan(eng, "council_managed")
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    assert [r["event_type"] for r in rows_for(eng, cid)] == ["Assessment", "Service"]  # review task not done
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True})
    review = rows_for(eng, cid)[-1]
    assert summary([review]) == [("Review", "2031-04-15", "2031-04-15", cld.NO_CHANGE_IN_PACKAGE)]
    assert (review["review_reason"], review["review_type"]) == ("Planned", "Planned")


def test_a_review_finding_changed_needs_progresses_to_reassessment_and_the_new_plan_supersedes(eng):
    cid = to_plan(eng, "council_managed")
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    complete(eng, cid, "review_plan", {"needs_changed": True, "what_changed": "Peter had a stroke"})
    rows = rows_for(eng, cid)
    assert summary(rows)[-2:] == [("Review", "2031-04-15", "2031-04-15", cld.PROGRESS_TO_REASSESSMENT),
                                  ("Assessment", "2031-04-15", None, None)]
    eng.advance_clock(timedelta(days=7))
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan("direct_payment"))
    complete(eng, cid, "sign_off_plan", {"signed_off": True})
    services = [r for r in rows_for(eng, cid) if r["event_type"] == "Service"]
    assert [(r["event_start"], r["event_end"], r["delivery_mechanism"]) for r in services] == [
        ("2031-03-03", "2031-04-22", "CASSR Managed Personal Budget"), ("2031-04-22", None, "Direct Payment")]


def change_direct_payment(eng, case_id, outcome, effective_from):
    """A triggered direct payment review that changes the arrangement, arranged by social work."""
    eng.start("direct_payment_review", case_id=case_id, actor="finance_officer", data={
        "dp_review_trigger": "breach", "dp_review_note": "Statements show money paid to a relative"})
    complete(eng, case_id, "review_direct_payment", {
        "used_to_meet_needs": False, "records_kept": False, "outcome": outcome,
        "outcome_reason": "Peter agrees the money should be managed differently"}, actor="social_worker1")
    complete(eng, case_id, "arrange_change", {"effective_from": effective_from,
                                              "what_was_arranged": "Home care from Northtown Care"})


def service_rows(rows):
    return [(r["event_start"], r["event_end"], r["outcome"], r["service_type"], r["delivery_mechanism"])
            for r in rows if r["event_type"] == "Service"]


def test_a_managed_account_then_a_new_plan_give_one_service_row_per_delivery_mechanism(eng):
    cid = to_plan(eng, "direct_payment")
    eng.advance_clock(timedelta(days=30))
    change_direct_payment(eng, cid, "managed_account", "2031-04-07")
    eng.advance_clock(timedelta(days=FIRST_REVIEW - 30))  # the first care review: needs have changed
    complete(eng, cid, "review_plan", {"needs_changed": True, "what_changed": "Peter had a stroke"})
    eng.advance_clock(timedelta(days=7))
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan("council_managed"))
    complete(eng, cid, "sign_off_plan", {"signed_off": True})
    provision, community = cld.PROVISION_OF_SERVICE, cld.LT_COMMUNITY
    assert service_rows(rows_for(eng, cid)) == [
        ("2031-03-03", "2031-04-07", provision, community, "Direct Payment"),
        ("2031-04-07", "2031-04-22", provision, community, "CASSR Managed Personal Budget"),
        ("2031-04-22", None, provision, community, "CASSR Managed Personal Budget")]
    # the quarter from April: the direct payment ended in it, the managed account started and ended in it
    in_q2 = [(r["Event_Start_Date"], r["Delivery_Mechanism"]) for r in cld.cld_return(eng, *Q2)
             if r["Event_Type"] == "Service"]
    assert in_q2 == [("2031-03-03", "Direct payment"), ("2031-04-07", "CASSR managed personal budget"),
                     ("2031-04-22", "CASSR managed personal budget")]


@pytest.mark.parametrize("effective_from, problem", [
    ("2031-03-01", "effective_from 2031-03-01 (history event {seq}) is before the service it changes started "
                   "(2031-03-03)"),
    ("2031-02-30", "effective_from '2031-02-30' (history event {seq}) is not a date (YYYY-MM-DD)"),
])
def test_a_change_of_arrangement_dated_before_the_service_or_not_a_date_is_a_clear_error(eng, effective_from,
                                                                                          problem):
    cid = to_plan(eng, "direct_payment")
    eng.advance_clock(timedelta(days=30))
    change_direct_payment(eng, cid, "end_direct_payment", effective_from)
    [arranged] = [e for e in eng.history(cid) if e["type"] == "task.completed"
                  and e["data"]["element_id"] == "arrange_change"]
    dp_instance = arranged["instance_id"]
    expected = (f"case {eng.get_case(cid)['reference']}: direct_payment_review instance {dp_instance}: "
                + problem.format(seq=arranged["seq"]))
    with pytest.raises(cld.CldDataError) as err:
        cld.case_event_rows(eng)
    assert str(err.value) == expected
    # the return leaves the case out and says why, naming it: nothing is guessed
    result = cld.cld_return(eng, *WIDE, la_code="999")
    assert list(result) == [] and [(p["case_reference"], p["why"]) for p in result.problems] == [
        (eng.get_case(cid)["reference"], expected + ": none of this case's events can be reported until it is "
                                                    "corrected")]


# ---------------------------------------------------------------- review reasons (hand-built histories)


def review_history(start_data, *, needs_changed=False):
    """A review instance as the engine records it: started, review task ready, review done, completed."""
    events = [
        ("instance.started", "2031-05-01T09:00:00+00:00", {"process_id": "review", "data": start_data}),
        ("task.ready", "2031-05-01T09:00:00+00:00", {"element_id": "review_plan"}),
        ("task.completed", "2031-05-06T14:00:00+00:00", {"element_id": "review_plan",
                                                         "data": {"needs_changed": needs_changed}}),
    ]
    if needs_changed:
        events.append(("instance.child_started", "2031-05-06T14:00:00+00:00",
                       {"process_id": "needs_assessment", "element_id": "start_reassessment"}))
    events.append(("instance.completed", "2031-05-06T14:00:00+00:00", {"process_id": "review"}))
    return [{"seq": seq, "type": kind, "instance_id": 7, "at": at, "data": data}
            for seq, (kind, at, data) in enumerate(events, start=1)]


CASE = {"id": 1, "reference": "CASE-000009", "data": {}, "instances": []}


@pytest.mark.parametrize("reason", cld.UNPLANNED_REVIEW_REASONS)
def test_an_unplanned_review_reports_its_reason(reason):
    [row] = cld.derive_cld_events(CASE, review_history({"review_reason": reason, "review_requested_by": "GP"},
                                                       needs_changed=True))
    assert summary([row]) == [("Review", "2031-05-01", "2031-05-06", cld.PROGRESS_TO_REASSESSMENT)]
    assert (row["review_reason"], row["review_type"]) == (reason, "Unplanned")


def test_a_scheduled_review_and_a_history_without_a_reason_are_planned():
    for start_data in ({"review_reason": "Planned", "first": False}, {"first": True}):
        [row] = cld.derive_cld_events(CASE, review_history(start_data))
        assert (row["review_reason"], row["review_type"], row["outcome"]) == (
            "Planned", "Planned", cld.NO_CHANGE_IN_PACKAGE)


def test_a_review_reason_outside_the_code_list_is_a_clear_error():
    with pytest.raises(cld.CldDataError) as err:
        cld.derive_cld_events(CASE, review_history({"review_reason": "Hospital admission"}))
    message = str(err.value)
    assert "CASE-000009" in message and "review instance 7" in message and "'Hospital admission'" in message
    assert "history event 1" in message and "Carer related" in message


# ---------------------------------------------------------------- hospital discharge (Discharge to Assess)

HARRIET = {"name": "Harriet Cole", "age": 84, "address": "12 Orchard Close, Northby", "area": "north"}


def discharge_response(**changes):
    data = {"ward_contacted": True, "person_views": "Wants to go home", "can_go_home": True,
            "needs_new_support": True, "needs_bed_based_recovery": False, "needs_care_home": False}
    return {**data, **changes}


def discharge(eng, response, discharge_date="2031-03-05"):
    res = eng.start("hospital_discharge", actor="ward7", data={"person": HARRIET, "reason": "Fall at home",
                                                               "ward": "Ward 7"})
    cid = res.case_id
    eng.advance_clock(timedelta(hours=3))
    complete(eng, cid, "respond_to_referral", response)
    assert rows_for(eng, cid)[0]["outcome"] is None  # no outcome before the person leaves hospital
    eng.advance_clock(timedelta(days=2))
    complete(eng, cid, "record_discharge", {"discharge_ready_date": "2031-03-04", "discharge_date": discharge_date,
                                            "delay_reason": "none"})
    return cid


@pytest.mark.parametrize("response, outcome, next_rows", [
    (discharge_response(), cld.PROGRESS_TO_REABLEMENT, [("Service", None)]),  # pathway 1: home with reablement
    (discharge_response(needs_new_support=False), cld.NFA_INFORMATION_ADVICE, []),  # pathway 0: home, no support
    (discharge_response(needs_bed_based_recovery=True), cld.PROGRESS_TO_REABLEMENT, []),  # pathway 2: recovery bed
    (discharge_response(can_go_home=False), cld.PROGRESS_TO_REABLEMENT, []),  # pathway 2: cannot go home yet
    (discharge_response(needs_care_home=True), cld.PROGRESS_TO_ASSESSMENT,  # pathway 3: care home, assessed there
     [("Assessment", None)]),
], ids=["pathway_1", "pathway_0", "pathway_2", "pathway_2_not_home", "pathway_3"])
def test_a_discharge_referral_is_a_request_from_hospital_with_the_pathway_as_its_outcome(
        eng, response, outcome, next_rows):
    cid = discharge(eng, response)
    request, *rest = rows_for(eng, cid)
    # the request starts with the referral and ends when the discharge is recorded (two days later)
    assert summary([request]) == [("Request", "2031-03-03", "2031-03-05", outcome)]
    assert (request["route_of_access"], request["process_id"], request["client_type"]) == (
        "Discharge from hospital", "hospital_discharge", "Service User")
    assert [(r["event_type"], r["event_end"]) for r in rest] == next_rows


def test_after_bed_based_recovery_the_needs_assessment_is_a_new_event_four_weeks_later(eng):
    cid = discharge(eng, discharge_response(needs_bed_based_recovery=True))
    eng.advance_clock(timedelta(days=29))
    request, assessment_row = rows_for(eng, cid)
    assert summary([request]) == [("Request", "2031-03-03", "2031-03-05", cld.PROGRESS_TO_REABLEMENT)]
    assert (assessment_row["event_type"], assessment_row["event_end"]) == ("Assessment", None)
    assert assessment_row["event_start"] > "2031-03-30"


def test_a_front_door_contact_about_leaving_hospital_has_the_discharge_route_of_access(eng):
    from_hospital = front_door(eng, contact(from_hospital=True, discharge_date="2031-03-01"))
    community = front_door(eng, contact(advice_given="Leaflet on falls prevention"))
    assert [r["route_of_access"] for r in rows_for(eng, from_hospital)] == ["Discharge from hospital"]
    assert [r["route_of_access"] for r in rows_for(eng, community)] == ["Community / Other route"]


def test_safeguarding_is_not_a_cld_event(eng):
    res = eng.start("safeguarding", actor="police", data={"person": HARRIET, "raised_by": "police"})
    assert "safeguarding" not in cld.PROCESS_MAPPINGS
    assert rows_for(eng, res.case_id) == []


# ---------------------------------------------------------------- the quarterly return


def test_the_quarter_keeps_only_events_that_overlap_it(eng):
    signposted = front_door(eng, contact(advice_given="Leaflet"))  # Request on 3 March only
    peter = to_plan(eng)
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    complete(eng, peter, "review_plan", {"needs_changed": False})

    q1 = cld.cld_return(eng, *Q1)
    assert [(r["LA_Person_Unique_Identifier"], r["Event_Type"]) for r in q1] == [
        ("CASE-000001", "Request"), ("CASE-000002", "Assessment"), ("CASE-000002", "Service")]
    q2 = cld.cld_return(eng, *Q2)  # the open service continues; the March events are out; the review is in
    assert [(r["LA_Person_Unique_Identifier"], r["Event_Type"]) for r in q2] == [("CASE-000002", "Service"),
                                                                                  ("CASE-000002", "Review")]
    assert cld.cld_return(eng, date(2030, 1, 1), date(2030, 12, 31)) == []
    assert signposted != peter


def test_person_fields_come_from_the_case_and_the_recorded_contact(eng):
    form = contact(person_date_of_birth="1952-11-20", person_nhs_number="9434765919",
                   person_has_unpaid_carer=True)
    cid = front_door(eng, form)
    [row] = cld.case_event_rows(eng)
    assert row["local_person_id"] == eng.get_case(cid)["reference"]
    assert (row["nhs_number"], row["birth_month"], row["birth_year"], row["has_unpaid_carer"]) == (
        "9434765919", 11, 1952, True)
    assert row["gender"] is None and row["ethnicity"] is None  # optional on the contact form, not given here
    assert row["client_type"] == "Service User"

    case = eng.create_case("Joan Barker", {"gender": "Female", "date_of_birth": "1950-05-02"})
    eng.start("needs_assessment", case_id=case, data={"person": PETER})
    [row] = [r for r in cld.case_event_rows(eng) if r["local_person_id"] != "CASE-000001"]
    assert (row["gender"], row["birth_month"], row["birth_year"]) == ("Female", 5, 1950)


MARIA = {"gender": "Female", "ethnicity": "White: Any other White background",
         "primary_support_reason": "Support with Memory & Cognition",
         "accommodation_status": "Sheltered housing / extra care housing / other sheltered housing",
         "employment_status": "Not in paid employment (not actively seeking work / retired)"}


def test_the_person_fields_asked_on_the_contact_form_are_in_every_row_of_the_case(eng):
    cid = front_door(eng, contact(outcomes_unable=["personal_hygiene", "being_appropriately_clothed"],
                                  **{f"person_{k}": v for k, v in MARIA.items()}))
    complete(eng, cid, "plan_reablement", {"goals": ["Make a hot meal"], "setting": "home",
                                           "start_type": "planned", "visits_per_day": 1})
    rows = cld.case_event_rows(eng)
    assert [r["event_type"] for r in rows] == ["Request", "Service"]
    for row in rows:
        assert {k: row[k] for k in MARIA} == MARIA
    assert eng.get_case(cid)["data"]["person"]["ethnicity"] == MARIA["ethnicity"]  # kept on the case record


def test_the_contact_form_offers_the_cld_code_lists_as_optional_person_fields():
    schema = FormLibrary.from_folder(ROOT / "forms").schema("contact")
    person = schema["properties"]["person"]
    for field, code_list in cld.PERSON_CODE_LISTS.items():
        prop = person["properties"][field]
        assert tuple(prop["enum"]) == code_list, field
        assert len(prop["x-enumNames"]) == len(code_list) and prop["title"] and prop["description"], field
        assert field not in person["required"], field
    assert "Not stated" in person["properties"]["gender"]["enum"]
    assert "Not stated" in person["properties"]["ethnicity"]["enum"]


def test_a_person_field_outside_its_code_list_is_refused_on_the_form_and_in_the_return(eng):
    res = eng.start("front_door", actor="advisor1")
    with pytest.raises(ValidationError) as err:
        complete(eng, res.case_id, "record_contact", contact(person_gender="F"), actor="advisor1")
    assert [e["field"] for e in err.value.errors] == ["person/gender"]
    case = eng.create_case("Joan Barker", {"person": {"ethnicity": "British"}})
    eng.start("needs_assessment", case_id=case, data={"person": PETER})
    with pytest.raises(cld.CldDataError, match=r"case CASE-\d+: ethnicity 'British' is not in the CLD code list"):
        cld.case_event_rows(eng)
    [problem] = cld.cld_return(eng, *WIDE, la_code="999").problems
    assert problem["case_reference"] == eng.get_case(case)["reference"] and "'British'" in problem["why"]


def test_a_carers_assessment_row_is_about_the_carer_not_the_cared_for_person(eng):
    res = eng.start("needs_assessment", data={"person": {**PETER, **MARIA, "nhs_number": "9434765919"}})
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely",
                                                  carer=True))
    complete(eng, cid, "assess_carer", carer_assessment())
    reference = eng.get_case(cid)["reference"]
    rows = cld.case_event_rows(eng)
    [peter] = [r for r in rows if r["process_id"] == "needs_assessment"]
    [susan] = [r for r in rows if r["process_id"] == "carers_assessment"]
    assert (peter["local_person_id"], peter["client_type"], peter["nhs_number"], peter["gender"]) == (
        reference, "Service User", "9434765919", "Female")
    assert (susan["local_person_id"], susan["client_type"], susan["cared_for_person_id"]) == (
        f"{reference}-C1", "Carer", reference)
    # none of Peter's details are reported as Susan's
    assert all(susan[k] is None for k in ("nhs_number", "birth_year", *MARIA)), susan
    assert (susan["event_type"], susan["outcome"]) == ("Assessment", cld.PROGRESS_TO_SUPPORT_PLANNING)
    assert peter["cared_for_person_id"] is None


SUSAN_CLD = {"nhs_number": "4857773456", "date_of_birth": "1979-06-14", "gender": "Female",
             "ethnicity": "White: British", "accommodation_status": "Owner occupier or shared ownership scheme",
             "employment_status": "Paid: Less than 16 hours a week"}
CARER_CODED = ("gender", "ethnicity", "accommodation_status", "employment_status")


def test_the_carers_details_asked_at_the_needs_assessment_reach_the_carers_row(eng):
    res = eng.start("needs_assessment", data={"person": PETER})
    cid = res.case_id
    form = assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True)
    complete(eng, cid, "assess_needs", {**form, "carer": {**SUSAN, **SUSAN_CLD}})
    complete(eng, cid, "assess_carer", carer_assessment())
    rows = cld.case_event_rows(eng)
    [peter] = [r for r in rows if r["process_id"] == "needs_assessment"]
    [susan] = [r for r in rows if r["process_id"] == "carers_assessment"]
    assert (susan["client_type"], susan["nhs_number"], susan["birth_month"], susan["birth_year"]) == (
        "Carer", "4857773456", 6, 1979)
    assert {k: susan[k] for k in CARER_CODED} == {k: SUSAN_CLD[k] for k in CARER_CODED}
    # Susan's details are not reported as Peter's
    assert all(peter[k] is None for k in ("nhs_number", "birth_year", *CARER_CODED)), peter


def test_the_carer_is_asked_the_contact_forms_cld_fields_optionally_with_the_same_codes_and_wording(eng):
    library = FormLibrary.from_folder(ROOT / "forms")
    carer = library.schema("needs_assessment")["properties"]["carer"]
    person = library.schema("contact")["properties"]["person"]["properties"]
    assert carer["required"] == ["name", "relationship"]
    for field in CARER_CODED:
        assert tuple(carer["properties"][field]["enum"]) == cld.PERSON_CODE_LISTS[field], field
        assert carer["properties"][field]["x-enumNames"] == person[field]["x-enumNames"], field
    assert carer["properties"]["nhs_number"]["pattern"] == person["nhs_number"]["pattern"] == "^[0-9]{10}$"
    assert carer["properties"]["date_of_birth"]["format"] == "date"

    res = eng.start("needs_assessment", data={"person": PETER})
    form = assessment("personal_hygiene", carer=True)
    bad = {**SUSAN, "nhs_number": "485 777 3456", "date_of_birth": "14/06/1979", "gender": "F"}
    with pytest.raises(ValidationError) as err:
        complete(eng, res.case_id, "assess_needs", {**form, "carer": bad})
    assert sorted(e["field"] for e in err.value.errors) == ["carer/date_of_birth", "carer/gender",
                                                           "carer/nhs_number"]


def test_the_same_carer_keeps_one_id_and_a_carer_with_their_own_record_keeps_theirs():
    def carers_assessment(iid, person):
        return [{"seq": iid * 10, "type": "instance.started", "instance_id": iid, "at": f"2031-0{iid}-01T09:00:00Z",
                 "data": {"process_id": "carers_assessment", "data": {"person": person, "cared_for": "Peter"}}}]
    events = (carers_assessment(1, {"name": "Susan Clarke"}) + carers_assessment(2, {"name": "Tom Clarke"})
              + carers_assessment(3, {"name": " susan  clarke", "gender": "Female"})
              + carers_assessment(4, {"name": "Ann Lee", "local_person_id": "CASE-000042",
                                      "date_of_birth": "1960-02-01"}))
    rows = cld.derive_cld_events(CASE, events)
    assert [(r["local_person_id"], r["cared_for_person_id"], r["client_type"]) for r in rows] == [
        ("CASE-000009-C1", "CASE-000009", "Carer"), ("CASE-000009-C2", "CASE-000009", "Carer"),
        ("CASE-000009-C1", "CASE-000009", "Carer"), ("CASE-000042", "CASE-000009", "Carer")]
    assert (rows[2]["gender"], rows[3]["birth_year"], rows[3]["birth_month"]) == ("Female", 1960, 2)


def test_the_csv_has_the_specification_header_and_values_and_leaves_open_requests_out(eng, tmp_path):
    cid = front_door(eng, LIKELY_ELIGIBLE)
    complete(eng, cid, "plan_reablement", {"goals": ["Make a hot meal"], "setting": "home",
                                           "start_type": "planned", "visits_per_day": 1})
    open_request = eng.start("front_door", actor="advisor1").case_id  # the contact is not recorded yet: open
    rows = cld.cld_return(eng, *Q1, la_code="999")
    path = cld.write_cld_csv(rows, tmp_path / "cld.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == cld.CLD_FIELDS
    records = [dict(zip(table[0], line, strict=True)) for line in table[1:]]
    assert [(r["Event_Type"], r["Event_Outcome"], r["Service_Type"], r["Service_Component"], r["Event_End_Date"])
            for r in records] == [
        ("Request", "Progress to reablement/ST-Max", "", "", "2031-03-03"),
        ("Service", "", "Short term support: ST-Max", "Reablement", "")]
    assert {r["LA_Person_Unique_Identifier"] for r in records} == {"CASE-000001"}
    assert {(r["LA_Code"], r["Reporting_Period_Start_Date"], r["Reporting_Period_End_Date"]) for r in records} == {
        ("999", "2031-01-01", "2031-03-31")}
    assert [(w["case_reference"], w["event_type"]) for w in rows.withheld] == [
        (eng.get_case(open_request)["reference"], "Request")]
    assert "still open at the end of the period" in rows.withheld[0]["why"]
    assert path.read_bytes().decode("utf-8") == cld.cld_csv_text(rows)


def test_carepath_cld_writes_the_quarters_return_and_refuses_bad_input(eng, tmp_path, capsys):
    from carepath.cli import main

    kyle = front_door(eng, KYLE)  # signposted with a call back to come: the request is still open, withheld
    advised = front_door(eng, contact(advice_given="Leaflet"))  # information and advice: a closed request
    peter = to_plan(eng, "direct_payment")
    out = tmp_path / "q1.csv"
    db = ["--db", eng.db.url]
    create_demo_users(eng)
    quarter = ["--from", "2031-01-01", "--to", "2031-03-31", "--out", str(out), "--la-code", "999"]
    # the file is every person's NHS number and date of birth: only the people the download page lets take it
    for who, why in [([], "'cli' is not an active user"), (["--as", "auditor"], "'auditor' is not one"),
                     (["--as", "social-worker"], "'social-worker' is not one")]:
        assert main(["cld", *db, *quarter, *who]) == 2
        err = capsys.readouterr().err
        assert "--out writes every person's NHS number and date of birth" in err and why in err, err
        assert not out.exists() and access_log(eng) == []
    assert main(["cld", *db, *quarter, "--as", "performance"]) == 0
    said = capsys.readouterr().out
    assert "3 rows (1 Assessment, 1 Request, 1 Service)" in said and str(out) in said
    assert f"Withheld (1): events of the period not in the return\n  {eng.get_case(kyle)['reference']}  Request" in said
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["Event_Type"], r["Event_Outcome"], r["Delivery_Mechanism"]) for r in rows) == sorted([
        ("Request", "NFA: Information and advice or signposting", ""),
        ("Assessment", "Progress to support planning or services", ""),
        ("Service", "Continuation of support or services", "Direct payment")])
    refs = {eng.get_case(advised)["reference"], eng.get_case(peter)["reference"]}
    assert {r["LA_Person_Unique_Identifier"] for r in rows} == refs
    # written, like a download from the page, into the access log of each case in the file (not the withheld one)
    assert access_log(eng) == sorted([
        (advised, "performance", "cld_return", "carepath cld", "Client Level Data return 2031-01-01 to 2031-03-31"),
        (peter, "performance", "cld_return", "carepath cld", "Client Level Data return 2031-01-01 to 2031-03-31")])
    assert main(["cld", *db, *quarter, "--as", "team-manager"]) == 0  # team managers may take it too
    assert len(access_log(eng)) == 4
    for argv, message in [
        (["--from", "2031-04-01", "--to", "2031-03-31"], "--to (2031-03-31) is before --from (2031-04-01)"),
        (["--from", "2031-02-30", "--to", "2031-03-31"], "--from '2031-02-30' is not a date: give it as YYYY-MM-DD"),
        (["--from", "2031-01-01", "--to", "31/03/2031"], "--to '31/03/2031' is not a date"),
        (["--from", "2030-01-01", "--to", "2030-03-31"], "no events in the period 2030-01-01 to 2030-03-31"),
    ]:
        assert main(["cld", *db, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    # the LA code is a council setting: without it the return still runs, and says what to set
    assert main(["cld", *db, "--from", "2031-01-01", "--to", "2031-03-31"]) == 0
    assert 'LA_Code: the council\'s LA code is not set: add "la_code" to processes/config/council.json' in \
        capsys.readouterr().out


def access_log(eng):
    from sqlalchemy import select

    from engine.schema import case_access_log

    log = case_access_log
    with eng.db.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(log.c.case_id, log.c.user, log.c.action, log.c.page,
                                                            log.c.reason)))


def test_event_dates_are_the_uk_day_so_a_late_summer_evening_falls_in_the_right_quarter():
    """23:30 UTC on 30 June is 00:30 on 1 July in England (BST): the review starts in Q2 of the year."""
    history = review_history({"review_reason": "Planned"})
    for ev in history:
        ev["at"] = "2031-06-30T23:30:00+00:00" if ev["type"] in ("instance.started", "task.ready") else ev["at"]
    history[2]["at"] = history[3]["at"] = "2031-07-02T10:00:00+00:00"
    [row] = cld.derive_cld_events(CASE, history)
    assert (row["event_start"], row["event_end"]) == ("2031-07-01", "2031-07-02")
    winter = review_history({"review_reason": "Planned"})
    winter[0]["at"] = winter[1]["at"] = "2031-12-31T23:30:00+00:00"  # GMT: still 31 December
    winter[2]["at"] = winter[3]["at"] = "2032-01-05T10:00:00+00:00"
    assert cld.derive_cld_events(CASE, winter)[0]["event_start"] == "2031-12-31"
