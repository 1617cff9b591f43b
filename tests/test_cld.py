"""Client Level Data rows derived from real case histories (handlers/cld.py).

Runs the real diagrams with the real handlers and forms on the simulated clock (as the two
end-to-end process tests do), then derives the CLD events from each case's history.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import pytest

from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers import cld
from tests.conftest import START
from tests.test_process_assessment_to_review import PETER, SMALL, assessment, plan, ras
from tests.test_process_front_door_reablement import KYLE, LIKELY_ELIGIBLE, contact

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "processes" / name for name in (
    "front_door.bpmn", "screening.dmn", "reablement.bpmn", "hospital_follow_up.bpmn", "needs_assessment.bpmn",
    "carers_assessment.bpmn", "personal_budget.bpmn", "support_plan.bpmn", "review.bpmn",
    "direct_payment_review.bpmn", "safeguarding.bpmn")]
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
        assert mapping.get("service_type") in (None, *cld.SERVICE_TYPES)
        assert mapping.get("review_reason") in (None, *cld.REVIEW_REASONS)
    assert set(cld.DELIVERY_BY_MONEY_MANAGEMENT.values()) == set(cld.DELIVERY_MECHANISMS)
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
                                              ("council_managed", "CASSR Commissioned support")])
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
    eng.advance_clock(timedelta(days=42))
    assert [r["event_type"] for r in rows_for(eng, cid)] == ["Assessment", "Service"]  # review task not done
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True})
    review = rows_for(eng, cid)[-1]
    assert summary([review]) == [("Review", "2031-04-14", "2031-04-14", cld.NO_CHANGE_IN_PACKAGE)]
    assert review["review_reason"] == "Planned"


def test_a_review_finding_changed_needs_progresses_to_reassessment_and_the_new_plan_supersedes(eng):
    cid = to_plan(eng, "council_managed")
    eng.advance_clock(timedelta(days=42))
    complete(eng, cid, "review_plan", {"needs_changed": True, "what_changed": "Peter had a stroke"})
    rows = rows_for(eng, cid)
    assert summary(rows)[-2:] == [("Review", "2031-04-14", "2031-04-14", cld.PROGRESS_TO_REASSESSMENT),
                                  ("Assessment", "2031-04-14", None, None)]
    eng.advance_clock(timedelta(days=7))
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan("direct_payment"))
    complete(eng, cid, "sign_off_plan", {"signed_off": True})
    services = [r for r in rows_for(eng, cid) if r["event_type"] == "Service"]
    assert [(r["event_start"], r["event_end"], r["delivery_mechanism"]) for r in services] == [
        ("2031-03-03", "2031-04-21", "CASSR Commissioned support"), ("2031-04-21", None, "Direct Payment")]


# ---------------------------------------------------------------- the quarterly return


def test_the_quarter_keeps_only_events_that_overlap_it(eng):
    signposted = front_door(eng, contact(advice_given="Leaflet"))  # Request on 3 March only
    peter = to_plan(eng)
    eng.advance_clock(timedelta(days=42))
    complete(eng, peter, "review_plan", {"needs_changed": False})

    q1 = cld.cld_return(eng, *Q1)
    assert [(r["local_person_id"], r["event_type"]) for r in q1] == [
        ("CASE-000001", "Request"), ("CASE-000002", "Assessment"), ("CASE-000002", "Service")]
    q2 = cld.cld_return(eng, *Q2)  # the open service continues; the March events are out; the review is in
    assert [(r["local_person_id"], r["event_type"]) for r in q2] == [("CASE-000002", "Service"),
                                                                      ("CASE-000002", "Review")]
    assert cld.cld_return(eng, date(2030, 1, 1), date(2030, 12, 31)) == []
    assert signposted != peter


def test_person_fields_come_from_the_case_and_the_recorded_contact(eng):
    form = contact(person_date_of_birth="1952-11-20", person_nhs_number="9434765919",
                   person_has_unpaid_carer=True)
    cid = front_door(eng, form)
    [row] = cld.cld_return(eng, *WIDE)
    assert row["local_person_id"] == eng.get_case(cid)["reference"]
    assert (row["nhs_number"], row["birth_month"], row["birth_year"], row["has_unpaid_carer"]) == (
        "9434765919", 11, 1952, True)
    assert row["gender"] is None and row["ethnicity"] is None  # not asked on any form yet
    assert row["client_type"] == "Service User"

    case = eng.create_case("Joan Barker", {"gender": "Female", "date_of_birth": "1950-05-02"})
    eng.start("needs_assessment", case_id=case, data={"person": PETER})
    [row] = [r for r in cld.cld_return(eng, *WIDE) if r["local_person_id"] != "CASE-000001"]
    assert (row["gender"], row["birth_month"], row["birth_year"]) == ("Female", 5, 1950)


def test_the_csv_has_the_return_headers_and_code_list_values(eng, tmp_path):
    cid = front_door(eng, LIKELY_ELIGIBLE)
    complete(eng, cid, "plan_reablement", {"goals": ["Make a hot meal"], "setting": "home",
                                           "start_type": "planned", "visits_per_day": 1})
    rows = cld.cld_return(eng, *Q1)
    path = cld.write_cld_csv(rows, tmp_path / "cld.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    header = table[0]
    assert header == list(cld.CSV_HEADERS.values())
    assert {"Event type", "Event start date", "Event end date", "Event outcome", "Service type",
            "Delivery mechanism", "Review reason", "Local person ID"} <= set(header)
    records = [dict(zip(header, line, strict=True)) for line in table[1:]]
    assert [(r["Event type"], r["Event outcome"], r["Service type"], r["Event end date"]) for r in records] == [
        ("Request", "Progress to Reablement/ST-Max", "", "2031-03-03"),
        ("Service", "", "Short Term Support: ST-Max", "")]
    assert records[0]["Local person ID"] == "CASE-000001"
