"""The CLD return against the specification (handlers/cld.py, handlers/cld_spec/, handlers/cld_quality.py).

The expected values here are copied by hand from the specification's lists (DHSC's published Release 2 values,
handlers/cld_spec/code_lists.json gives the sources), never read from the code's own tables: swapping two codes in
carepath (e.g. a reablement ended because support was declined coded as an admission to hospital) fails a test.
The scenarios run the real diagrams on the simulated clock (tests/test_cld.py's fixture and helpers).
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from handlers import cld, cld_quality
from tests.test_cld import FIRST_REVIEW, Q1, Q2, complete, eng, front_door, to_plan  # noqa: F401  (fixture)
from tests.test_process_assessment_to_review import PETER, SMALL, assessment, plan, ras
from tests.test_process_front_door_reablement import LIKELY_ELIGIBLE, contact

SPEC = Path(__file__).resolve().parent.parent / "handlers" / "cld_spec"
LA = "999"

# ---------------------------------------------------------------- the specification kept as data


def test_the_csv_header_is_the_specifications_field_list_in_order():
    fields = json.loads((SPEC / "fields.json").read_text(encoding="utf-8"))
    names = [f["name"] for f in fields["fields"]]
    assert cld.CLD_FIELDS == names
    assert cld.cld_csv_text([]).splitlines()[0] == ",".join(names)
    assert [f["order"] for f in fields["fields"]] == list(range(1, len(names) + 1))
    # copied by hand from DHSC's list (GetDQValues) so the check is not the data file against itself
    for name in ("LA_Code", "Reporting_Period_Start_Date", "Reporting_Period_End_Date", "NHS_Number",
                 "LA_Person_Unique_Identifier", "GP_Practice_Code", "Date_of_Death", "Postcode",
                 "Client_Funding_Status", "Event_Type", "Event_Reference", "Event_Outcome", "Request_Route_of_Access",
                 "Assessment_Type", "Eligible_Needs_Identified", "Method_of_Assessment", "Total_Hrs_Caring_per_week",
                 "Adult_1_Linked_Person_ID", "Service_Type", "Service_Component", "Delivery_Mechanism",
                 "Review_Reason", "Review_Outcomes_Achieved", "Method_of_Review", "Unit_Cost",
                 "Cost_Frequency_Unit_Type", "Planned_units_per_week"):
        assert name in names, name
    order = [names.index(n) for n in ("LA_Code", "NHS_Number", "Client_Funding_Status", "Event_Type",
                                      "Request_Route_of_Access", "Assessment_Type", "Service_Type", "Review_Reason",
                                      "Unit_Cost", "Planned_units_per_week")]
    assert order == sorted(order) and names[-1] == "Planned_units_per_week" and names[0] == "LA_Code"
    assert len(names) == 46 and len(set(names)) == 46
    assert "DataS-DHSC/ASC-CLD-LA-Dashboard" in fields["source"]["url"] and fields["source"]["licence"]


def test_every_code_list_has_its_source_and_no_en_dash():
    lists = json.loads((SPEC / "code_lists.json").read_text(encoding="utf-8"))["lists"]
    for name, entry in lists.items():
        assert name in cld.CLD_FIELDS, name
        assert "\u2013" not in json.dumps(entry["values"], ensure_ascii=False), name
        assert entry["values"] == [] or entry["sources"], name  # a list without a source is recorded as not found
        assert entry["values"] or entry["note"], name
    # hand-copied Release 2 values (DHSC Main_tables/docs/methodology/5-data-cleaning.md)
    assert {"NFA: Support declined", "Admitted to hospital", "Progress to reablement/ST-Max",
            "NFA: Information and advice or signposting", "Continuation of support or services"} <= set(
        lists["Event_Outcome"]["values"])
    assert "Unpaid carer support: Direct to unpaid carer" in lists["Service_Type"]["values"]
    assert "Long term support: Residential care" in lists["Service_Type"]["values"]
    assert "Reablement" in lists["Service_Component"]["values"]


# carepath's value -> the specification's, copied by hand from the lists (not from the code's tables)
EVENT_OUTCOME = {
    cld.PROGRESS_TO_REABLEMENT: "Progress to reablement/ST-Max",
    cld.PROGRESS_TO_ASSESSMENT: "Progress to assessment, review or reassessment",
    cld.PROGRESS_TO_REASSESSMENT: "Progress to assessment, review or reassessment",
    cld.ADMITTED_TO_HOSPITAL: "Admitted to hospital",
    cld.PROGRESS_TO_SUPPORT_PLANNING: "Progress to support planning or services",
    cld.NO_CHANGE_IN_PACKAGE: "Continuation of support or services",
    cld.PROVISION_OF_SERVICE: "Continuation of support or services",
    cld.SERVICE_ENDED_AS_PLANNED: "NFA: Support ended as planned",
    cld.NFA_MOVED: "NFA: Responsibility moved to another local authority",
    cld.NFA_NHS_FUNDED: "NFA: Referral to NHS services or NHS funded social care",
    cld.NFA_SELF_FUNDED: "NFA: Self-funded client or under 12wk disregard",
    cld.NFA_SUPPORT_DECLINED: "NFA: Support declined",
    cld.NFA_INFORMATION_ADVICE: "NFA: Information and advice or signposting",
    cld.NFA_DECEASED: "NFA: Deceased",
    cld.NFA_NO_SERVICES: "NFA: No services offered for other reason",
    cld.NFA_SUPPORT_ENDED: "NFA: Support ended for other reason",
    cld.NFA_OTHER: "NFA: Other",
}
SERVICE_TYPE = {
    cld.ST_MAX: "Short term support: ST-Max",
    cld.ST_ONGOING_LOW_LEVEL: "Short term support: Ongoing low level",
    cld.ST_OTHER: "Short term support: Other short term",
    cld.LT_NURSING: "Long term support: Nursing care",
    cld.LT_RESIDENTIAL: "Long term support: Residential care",
    cld.LT_COMMUNITY: "Long term support: Community",
    cld.LT_PRISON: "Long term support: Prison",
    cld.CARER_DIRECT: "Unpaid carer support: Direct to unpaid carer",
    cld.CARER_VIA_CARED_FOR: "Unpaid carer support: Support involving the person cared-for",
}
DELIVERY = {cld.DIRECT_PAYMENT: "Direct payment", cld.CASSR_MANAGED_PERSONAL_BUDGET: "CASSR managed personal budget",
            cld.CASSR_COMMISSIONED_SUPPORT: "CASSR commissioned support"}


# the person fields' answers on the forms -> the Release 2 values, by hand (None: no Release 2 value is known)
ETHNICITY = {
    "White: British": "White: English, Welsh, Scottish, Northern Irish or British",
    "White: Irish": "White: Irish",
    "White: Any other White background": "White: Any other White background",
    "Mixed: White and Black Caribbean": "Mixed or multiple ethnic groups: White and Black Caribbean",
    "Mixed: White and Black African": "Mixed or multiple ethnic groups: White and Black African",
    "Mixed: White and Asian": "Mixed or multiple ethnic groups: White and Asian",
    "Mixed: Any other mixed background":
        "Mixed or multiple ethnic groups: Any other Mixed or multiple ethnic background",
    "Asian or Asian British: Indian": "Asian or Asian British: Indian",
    "Asian or Asian British: Pakistani": "Asian or Asian British: Pakistani",
    "Asian or Asian British: Bangladeshi": "Asian or Asian British: Bangladeshi",
    "Asian or Asian British: Any other Asian background": "Asian or Asian British: Any other Asian background",
    "Black or Black British: Caribbean": "Black, Black British, Caribbean or African: Caribbean",
    "Black or Black British: African": "Black, Black British, Caribbean or African: African",
    "Black or Black British: Any other Black background":
        "Black, Black British, Caribbean or African: Any other Black, Black British or Caribbean background",
    "Other ethnic groups: Chinese": "Asian or Asian British: Chinese",
    "Other ethnic groups: Any other ethnic group": "Other ethnic group: Any other ethnic group",
    "Not stated": "No data: Refused",
    "Not known": "No data: Undeclared or not known",
}
ACCOMMODATION = {
    "Owner occupier or shared ownership scheme": "Owner occupier or shared ownership scheme",
    "Tenant (including local authority, arm's length management organisations, registered social landlord, "
    "housing association)": "Tenant: Local authority or other social housing provider",
    "Tenant - private landlord": "Tenant: Private landlord",
    "Settled mainstream housing with family / friends (including flat-sharing)":
        "Settled mainstream housing with family or friends",
    "Supported accommodation / supported lodgings / supported group home":
        "Supported accommodation, supported lodgings or supported group home",
    "Shared Lives scheme": "Shared Lives scheme",
    "Approved premises for offenders released from prison or under probation supervision":
        "Approved premises for offenders released from prison or under probation supervision",
    "Sheltered housing / extra care housing / other sheltered housing":
        "Sheltered housing, extra care housing or other sheltered housing",
    "Mobile accommodation for Gypsy / Roma and Traveller communities":
        "Mobile accommodation for Gypsy, Roma and Traveller communities",
    "Rough sleeper / squatting": "Rough sleeper or squatting",
    "Night shelter / emergency hostel / direct access hostel":
        "Night shelter, emergency hostel or direct access hostel",
    "Refuge": "Refuge",
    "Placed in temporary accommodation by the council (including homelessness resettlement)":
        "Placed in temporary accommodation by the council (inc. homelessness resettlement)",
    "Staying with family / friends as a short-term guest": "Staying with family or friends as a short term guest",
    "Acute / long-term healthcare residential facility or hospital":
        "Acute hospital or long term healthcare residential facility",
    "Registered care home": "Registered care home",
    "Registered nursing home": "Registered nursing home",
    "Prison / Young offenders institution / detention centre":
        "Prison, young offenders institution or detention centre",
    "Other temporary accommodation": "Other temporary accommodation",
}
EMPLOYMENT = {
    "Paid: Less than 16 hours a week": "Paid: Less than 16 hours a week",
    "Paid: 16 or more hours a week": "Paid: 16 or more hours a week",
    "Paid: Hours per week unknown": "Paid: Hours per week unknown",
    "Not in paid employment (seeking work)": "Not in paid employment: Seeking work",
    "Not in paid employment (not actively seeking work / retired)":
        "Not in paid employment: Not actively seeking work or retired",
    "Not in paid employment (voluntary work only)": "Not in paid employment: Voluntary work only",
}


def test_each_person_answer_has_exactly_its_release_2_value():
    assert cld.SPEC_ETHNICITY == ETHNICITY
    assert cld.SPEC_ACCOMMODATION == ACCOMMODATION
    assert cld.SPEC_EMPLOYMENT == EMPLOYMENT
    assert cld.SPEC_GENDER == {"Female": "Female", "Male": "Male", "Not known": "Unknown"}
    assert cld.SPEC_CLIENT_TYPE == {"Service User": "Service user", "Carer": "Unpaid carer"}
    assert cld.SPEC_YES_NO == {True: "Yes", False: "No"}
    assert cld.SPEC_LINE_DELIVERY == {"direct_payment": "Direct payment",
                                      "managed_account": "CASSR managed personal budget",
                                      "council_commissioned": "CASSR managed personal budget"}


def producible_outcomes() -> set[str]:
    """Every event outcome a process can produce (the mappings, their defaults, closures, reviews, changes)."""
    out = set(cld.REABLEMENT_OUTCOMES.values()) | set(cld.CLOSURE_OUTCOMES.values())
    out |= set(cld.CARER_REVIEW_OUTCOMES.values())
    for mapping in cld.PROCESS_MAPPINGS.values():
        out |= {o for _, o in mapping.get("outcome_rules", [])}
        out |= {mapping.get("default_outcome"), mapping.get("open_outcome")}
        if mapping.get("delivery_changes"):
            out.add(mapping["delivery_changes"]["outcome"])
    return out - {None}


def test_every_value_a_process_can_produce_has_its_specification_code():
    produced = producible_outcomes()
    assert produced <= set(EVENT_OUTCOME), produced - set(EVENT_OUTCOME)
    assert {k: cld.SPEC_EVENT_OUTCOME[k] for k in produced} == {k: EVENT_OUTCOME[k] for k in produced}
    assert cld.SPEC_SERVICE_TYPE == SERVICE_TYPE and cld.SPEC_DELIVERY == DELIVERY
    for table, field in ((cld.SPEC_EVENT_OUTCOME, "Event_Outcome"), (cld.SPEC_SERVICE_TYPE, "Service_Type"),
                         (cld.SPEC_DELIVERY, "Delivery_Mechanism"), (cld.SPEC_ETHNICITY, "Ethnicity"),
                         (cld.SPEC_ACCOMMODATION, "Accommodation_Status"), (cld.SPEC_GENDER, "Gender"),
                         (cld.SPEC_EMPLOYMENT, "Employment_Status"), (cld.SPEC_CLIENT_TYPE, "Client_Type"),
                         (cld.SPEC_YES_NO, "Has_Unpaid_Carer")):
        assert set(table.values()) <= set(cld.CODE_LISTS[field]), field
    # the Release 1 lists written as they are: every value a process writes is in the recorded list
    routes = set()
    for mapping in cld.PROCESS_MAPPINGS.values():
        route = mapping.get("route_of_access")
        routes |= ({route} if isinstance(route, str) else
                   {route["default"], *(v for _, v in route["rules"])} if route else set())
    assert routes <= set(cld.CODE_LISTS["Request_Route_of_Access"])
    assert set(cld.REVIEW_REASONS) <= set(cld.CODE_LISTS["Review_Reason"])
    assert set(cld.SPEC_PRIMARY_SUPPORT_REASON.values()) <= set(cld.CODE_LISTS["Primary_Support_Reason"])
    assert set(cld.PRIMARY_SUPPORT_REASONS) <= set(cld.SPEC_PRIMARY_SUPPORT_REASON)
    components = {m.get("service_component") for m in cld.PROCESS_MAPPINGS.values()} - {None}
    assert components == {"Reablement", "Equipment"} <= set(cld.CODE_LISTS["Service_Component"])
    types = {m.get("assessment_type") for m in cld.PROCESS_MAPPINGS.values()} - {None}
    assert types == {"Long term assessment"} <= set(cld.CODE_LISTS["Assessment_Type"])
    # every answer the forms give has a code (ethnicity, accommodation: each option except "Not known")
    assert set(cld.SPEC_ETHNICITY) == set(cld.ETHNICITIES)
    assert set(cld.SPEC_ACCOMMODATION) == set(cld.ACCOMMODATION_STATUSES) - {"Not known"}


# ---------------------------------------------------------------- scenarios: each code a process produces


def reablement_ended(eng, outcome):  # noqa: F811
    cid = front_door(eng, LIKELY_ELIGIBLE)
    complete(eng, cid, "plan_reablement", {"goals": ["Make a hot meal"], "setting": "home",
                                           "start_type": "planned", "visits_per_day": 1})
    eng.advance_clock(timedelta(days=10))
    complete(eng, cid, "deliver_reablement", {"outcome": outcome, "summary": "Reablement ended"})
    return cid


@pytest.mark.parametrize("outcome, expected", [
    ("best_independence_reached", "NFA: Support ended as planned"),
    ("needs_remain", "Progress to assessment, review or reassessment"),
    ("support_declined", "NFA: Support declined"),
    ("admitted_to_hospital", "Admitted to hospital"),
])
def test_each_reablement_outcome_gives_exactly_its_code(eng, outcome, expected):  # noqa: F811
    reablement_ended(eng, outcome)
    request, service = cld.cld_return(eng, *Q1, la_code=LA)
    assert (request["Event_Type"], request["Event_Outcome"], request["Request_Route_of_Access"]) == (
        "Request", "Progress to reablement/ST-Max", "Community / Other route")
    assert (service["Event_Type"], service["Event_Start_Date"], service["Event_End_Date"],
            service["Event_Outcome"]) == ("Service", "2031-03-03", "2031-03-13", expected)
    # ASCOF 2D counts a reablement service by its component
    assert (service["Service_Type"], service["Service_Component"], service["Delivery_Mechanism"]) == (
        "Short term support: ST-Max", "Reablement", "CASSR commissioned support")


@pytest.mark.parametrize("reason, details, end, expected", [
    # a death recorded three days after it happened: the service ended on the day the person died, not the day the
    # closure was recorded (the row carries that Date_of_Death: it must not run past it)
    ("died", {"date_of_death": "2031-03-20"}, "2031-03-20", "NFA: Deceased"),
    ("died", {"date_of_death": "2031-03-23"}, "2031-03-23", "NFA: Deceased"),  # recorded the same day
    ("moved_away", {"council": "Southshire"}, "2031-03-23", "NFA: Responsibility moved to another local authority"),
    ("declined", None, "2031-03-23", "NFA: Support declined"),
    ("nhs_funded", None, "2031-03-23", "NFA: Referral to NHS services or NHS funded social care"),
    ("no_longer_needed", None, "2031-03-23", "NFA: Support ended for other reason"),
])
def test_each_way_a_case_closes_ends_its_service_with_exactly_its_code(eng, reason, details, end,  # noqa: F811
                                                                      expected):
    cid = to_plan(eng, "direct_payment")
    eng.advance_clock(timedelta(days=20))
    eng.close_case(cid, reason=reason, details=details, actor="tm_tom")
    [service] = [r for r in cld.cld_return(eng, *Q1, la_code=LA) if r["Event_Type"] == "Service"]
    assert (service["Event_Start_Date"], service["Event_End_Date"], service["Event_Outcome"]) == (
        "2031-03-03", end, expected)
    assert service["Date_of_Death"] in ("", None) or service["Event_End_Date"] <= service["Date_of_Death"]


def test_a_death_recorded_late_ends_open_processes_on_the_day_of_death_but_never_before_they_started(eng):  # noqa: F811
    def in_reablement() -> int:
        cid = front_door(eng, LIKELY_ELIGIBLE)  # reablement from 3 March, still open
        complete(eng, cid, "plan_reablement", {"goals": ["Make a hot meal"], "setting": "home",
                                               "start_type": "planned", "visits_per_day": 1})
        return cid

    first, second = in_reablement(), in_reablement()
    eng.advance_clock(timedelta(days=14))  # 17 March: the deaths are recorded
    eng.close_case(first, reason="died", details={"date_of_death": "2031-03-10"}, actor="tm_tom")
    # a date of death before the reablement started (a mistake the data-quality report is for): it ends the day it
    # started, never before (an end before the start would be a second error)
    eng.close_case(second, reason="died", details={"date_of_death": "2031-03-01"}, actor="tm_tom")
    rows = cld.cld_return(eng, *Q1, la_code=LA)
    services = {r["LA_Person_Unique_Identifier"]: (r["Event_Start_Date"], r["Event_End_Date"], r["Event_Outcome"])
                for r in rows if r["Event_Type"] == "Service"}
    assert services == {eng.get_case(first)["reference"]: ("2031-03-03", "2031-03-10", "NFA: Deceased"),
                        eng.get_case(second)["reference"]: ("2031-03-03", "2031-03-03", "NFA: Deceased")}


@pytest.mark.parametrize("form, outcome, route", [
    (contact(advice_given="Leaflet on falls prevention"), "NFA: Information and advice or signposting",
     "Community / Other route"),
    (contact(safeguarding_concern=True), "NFA: Other", "Community / Other route"),
    (LIKELY_ELIGIBLE, "Progress to reablement/ST-Max", "Community / Other route"),
])
def test_each_request_route_gives_exactly_its_outcome(eng, form, outcome, route):  # noqa: F811
    front_door(eng, form)
    requests = [r for r in cld.cld_return(eng, *Q1, la_code=LA) if r["Event_Type"] == "Request"]
    assert [(r["Event_Outcome"], r["Request_Route_of_Access"]) for r in requests] == [(outcome, route)]


def test_assessment_plan_and_reviews_give_exactly_their_codes(eng):  # noqa: F811
    cid = to_plan(eng, "council_managed")
    changed = to_plan(eng, "direct_payment")
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True, "review_method": "phone",
                                       "outcomes_achieved": "partly"})
    complete(eng, changed, "review_plan", {"needs_changed": True, "what_changed": "Peter had a fall"})
    rows = cld.cld_return(eng, date(2031, 3, 1), date(2031, 4, 30), la_code=LA)
    mine = [r for r in rows if r["LA_Person_Unique_Identifier"] == eng.get_case(cid)["reference"]]
    assert [(r["Event_Type"], r["Event_Outcome"], r["Assessment_Type"], r["Service_Type"],
             r["Delivery_Mechanism"], r["Review_Reason"]) for r in mine] == [
        ("Assessment", "Progress to support planning or services", "Long term assessment", None, None, None),
        ("Service", "Continuation of support or services", None, "Long term support: Community",
         "CASSR managed personal budget", None),
        ("Review", "Continuation of support or services", None, None, None, "Planned")]
    # the plan's services are not costed (no unit costs): no cost rather than a cost of nothing
    assert (mine[1]["Unit_Cost"], mine[1]["Planned_units_per_week"]) == (None, None)
    # the outcomes achieved are written (Release 1 list, tests/test_cld_code_lists.py); who took part was not
    # answered: empty, and a problem (how it was done, by phone, says nothing about who took part)
    assert mine[2]["Method_of_Review"] is None and mine[2]["Review_Outcomes_Achieved"] == "Partially Met"
    # the plans' two services (home support, equipment) are not costed: one row a plan, and no one Service_Component
    assert mine[1]["Service_Component"] is None
    assert sorted((p["case_reference"], p["field"]) for p in rows.problems) == sorted([
        (eng.get_case(cid)["reference"], "Method_of_Review"), (eng.get_case(changed)["reference"], "Method_of_Review"),
        (eng.get_case(changed)["reference"], "Review_Outcomes_Achieved"),
        (eng.get_case(cid)["reference"], "Service_Component"),
        (eng.get_case(changed)["reference"], "Service_Component")])
    [review] = [r for r in rows if r["LA_Person_Unique_Identifier"] == eng.get_case(changed)["reference"]
                and r["Event_Type"] == "Review"]
    assert review["Event_Outcome"] == "Progress to assessment, review or reassessment"
    # the re-assessment it started is still open at the end of April: withheld, not reported open
    assert [(w["case_reference"], w["event_type"]) for w in rows.withheld] == [
        (eng.get_case(changed)["reference"], "Assessment")]


def test_an_adult_not_eligible_has_no_services_offered(eng):  # noqa: F811
    res = eng.start("needs_assessment", data={"person": PETER})
    complete(eng, res.case_id, "assess_needs", assessment("personal_hygiene"))
    [row] = cld.cld_return(eng, *Q1, la_code=LA)
    assert (row["Event_Outcome"], row["Assessment_Type"], row["Client_Type"]) == (
        "NFA: No services offered for other reason", "Long term assessment", "Service user")


def plan_with(eng, **answers):  # noqa: F811
    res = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "contact_date": "2031-03-03"})
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", {**plan("council_managed"), **answers})
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    return cid


@pytest.mark.parametrize("nursing, expected", [(True, "Long term support: Nursing care"),
                                               (False, "Long term support: Residential care")])
def test_a_plan_moving_the_person_into_a_care_home_is_residential_or_nursing_care(eng, nursing, expected):  # noqa: F811
    plan_with(eng, care_home_move=True, care_home_nursing=nursing)
    [service] = [r for r in cld.cld_return(eng, *Q1, la_code=LA) if r["Event_Type"] == "Service"]
    assert service["Service_Type"] == expected


def test_a_care_home_plan_that_does_not_say_whether_nursing_is_a_problem_not_a_guess(eng):  # noqa: F811
    cid = plan_with(eng, care_home_move=True)
    result = cld.cld_return(eng, *Q1, la_code=LA)
    [service] = [r for r in result if r["Event_Type"] == "Service"]
    assert service["Service_Type"] is None
    [problem] = result.problems
    assert (problem["case_reference"], problem["field"]) == (eng.get_case(cid)["reference"], "Service_Type")
    assert "nursing care" in problem["why"] and problem["event"].startswith("Service from 2031-03-03")


COSTED = [
    {"label": "Get washed and dressed", "how_met": "Home care each morning", "provider": "Northtown Care",
     "unit": "hour", "unit_cost": 22.5, "units_per_week": 7, "delivery": "council_commissioned",
     "service_component": "home_support"},
    {"label": "See friends", "how_met": "Day centre", "provider": "Mill Lane Centre",
     "unit": "session", "unit_cost": 35, "units_per_week": 2, "delivery": "direct_payment",
     "service_component": "shared_lives"},
    # no cost: not a service line
    {"label": "Feel safe at night", "how_met": "A falls pendant from family", "service_component": "other"},
]


def test_a_costed_plan_gives_one_service_row_per_costed_service_with_its_cost_and_units(eng):  # noqa: F811
    cid = plan_with(eng, outcomes=COSTED)
    reference = eng.get_case(cid)["reference"]
    services = [r for r in cld.cld_return(eng, *Q1, la_code=LA) if r["Event_Type"] == "Service"]
    assert [(r["Unit_Cost"], r["Planned_units_per_week"], r["Delivery_Mechanism"], r["Cost_Frequency_Unit_Type"])
            for r in services] == [("22.50", "7", "CASSR managed personal budget", None),
                                   ("35.00", "2", "Direct payment", None)]
    assert [r["Service_Component"] for r in services] == ["Home support or domiciliary care", "Shared Lives"]
    assert {r["Service_Type"] for r in services} == {"Long term support: Community"}
    refs = [r["Event_Reference"] for r in services]
    assert refs[0].startswith(f"{reference}-") and refs[0].endswith("/1") and refs[1] == refs[0][:-1] + "2"


# ---------------------------------------------------------------- a small population, by hand


def test_a_small_population_gives_the_hand_computed_quarter(eng):  # noqa: F811
    """Five people on the simulated clock (3 March 2031 on): the first quarter's rows, worked out by hand."""
    advised = front_door(eng, contact(advice_given="Leaflet"))                  # CASE-000001: I&A, closed 3 March
    reabled = reablement_ended(eng, "support_declined")                         # CASE-000002: 3 to 13 March
    peter = to_plan(eng, "direct_payment")                                      # CASE-000003: 13 March
    waiting = eng.start("front_door", actor="advisor1").case_id                 # CASE-000004: contact not recorded
    eng.advance_clock(timedelta(days=10))
    closed = to_plan(eng, "managed_account")                                    # CASE-000005: 23 March
    eng.advance_clock(timedelta(days=3))
    eng.close_case(closed, reason="moved_away", details={"council": "Southshire"}, actor="tm_tom")  # 26 March
    refs = {cid: eng.get_case(cid)["reference"] for cid in (advised, reabled, peter, waiting, closed)}
    assert list(refs.values()) == [f"CASE-00000{n}" for n in range(1, 6)]
    result = cld.cld_return(eng, *Q1, la_code=LA)
    got = [(r["LA_Person_Unique_Identifier"], r["Event_Type"], r["Event_Start_Date"], r["Event_End_Date"],
            r["Event_Outcome"], r["Service_Type"], r["Delivery_Mechanism"]) for r in result]
    assert got == [
        ("CASE-000001", "Request", "2031-03-03", "2031-03-03", "NFA: Information and advice or signposting",
         None, None),
        ("CASE-000002", "Request", "2031-03-03", "2031-03-03", "Progress to reablement/ST-Max", None, None),
        ("CASE-000002", "Service", "2031-03-03", "2031-03-13", "NFA: Support declined",
         "Short term support: ST-Max", "CASSR commissioned support"),
        ("CASE-000003", "Assessment", "2031-03-13", "2031-03-13", "Progress to support planning or services",
         None, None),
        ("CASE-000003", "Service", "2031-03-13", None, "Continuation of support or services",
         "Long term support: Community", "Direct payment"),
        ("CASE-000005", "Assessment", "2031-03-23", "2031-03-23", "Progress to support planning or services",
         None, None),
        ("CASE-000005", "Service", "2031-03-23", "2031-03-26", "NFA: Responsibility moved to another local authority",
         "Long term support: Community", "CASSR managed personal budget"),
    ]
    assert {(r["LA_Code"], r["Reporting_Period_Start_Date"], r["Reporting_Period_End_Date"]) for r in result} == {
        (LA, "2031-01-01", "2031-03-31")}
    assert {r["Client_Type"] for r in result} == {"Service user"}
    refs = [r["Event_Reference"] for r in result]
    assert len(set(refs)) == len(refs) and all(ref.startswith(row["LA_Person_Unique_Identifier"] + "-")
                                               for ref, row in zip(refs, result, strict=True))
    assert [(w["case_reference"], w["event_type"], w["event_start"]) for w in result.withheld] == [
        ("CASE-000004", "Request", "2031-03-13")]
    # the next quarter: only the direct payment still open; nothing withheld is lost (the open request is still
    # open, so it is withheld again)
    q2 = cld.cld_return(eng, *Q2, la_code=LA)
    assert [(r["LA_Person_Unique_Identifier"], r["Event_Type"]) for r in q2] == [("CASE-000003", "Service")]
    assert [w["case_reference"] for w in q2.withheld] == ["CASE-000004"]


def test_person_fields_reach_the_return_in_release_2_wording(eng):  # noqa: F811
    person = {"nhs_number": "9434765919", "date_of_birth": "1952-11-20", "postcode": "NS2 4BB",
              "gp_practice_code": "Y01234", "gender": "Not known", "ethnicity": "Other ethnic groups: Chinese",
              "accommodation_status": "Tenant - private landlord",
              "employment_status": "Not in paid employment (seeking work)", "has_unpaid_carer": False,
              "primary_support_reason": "Support with Memory & Cognition"}
    case = eng.create_case("Joan Barker", {"person": person})
    res = eng.start("needs_assessment", case_id=case, data={"person": PETER})
    complete(eng, res.case_id, "assess_needs", assessment("personal_hygiene"))
    [row] = cld.cld_return(eng, *Q1, la_code=LA)
    assert {k: row[k] for k in ("NHS_Number", "Date_of_Birth", "Postcode", "GP_Practice_Code", "Gender",
                                "Ethnicity", "Accommodation_Status", "Employment_Status", "Has_Unpaid_Carer",
                                "Primary_Support_Reason", "Date_of_Death")} == {
        "NHS_Number": "9434765919", "Date_of_Birth": "1952-11-20", "Postcode": "NS2 4BB",
        "GP_Practice_Code": "Y01234", "Gender": "Unknown", "Ethnicity": "Asian or Asian British: Chinese",
        "Accommodation_Status": "Tenant: Private landlord", "Employment_Status": "Not in paid employment: Seeking work",
        "Has_Unpaid_Carer": "No", "Primary_Support_Reason": "Support with Memory & Cognition", "Date_of_Death": None}


def test_a_person_value_without_a_release_2_code_is_a_problem_and_an_empty_cell(eng):  # noqa: F811
    case = eng.create_case("Joan Barker", {"person": {"gender": "Other", "accommodation_status": "Not known"}})
    res = eng.start("needs_assessment", case_id=case, data={"person": PETER})
    complete(eng, res.case_id, "assess_needs", assessment("personal_hygiene"))
    result = cld.cld_return(eng, *Q1, la_code=LA)
    [row] = result
    assert row["Gender"] is None and row["Accommodation_Status"] is None
    assert sorted((p["field"], p["value"]) for p in result.problems) == [("Accommodation_Status", "Not known"),
                                                                         ("Gender", "Other")]
    assert {p["case_reference"] for p in result.problems} == {eng.get_case(case)["reference"]}


# ---------------------------------------------------------------- the data-quality report


def spec_row(**values):
    row = dict.fromkeys(cld.CLD_FIELDS)
    row.update({"LA_Code": LA, "Reporting_Period_Start_Date": "2031-01-01", "Reporting_Period_End_Date": "2031-03-31",
                "NHS_Number": "9434765919", "LA_Person_Unique_Identifier": "CASE-000007",
                "Event_Reference": "CASE-000007-3-12", "Event_Type": "Service", "Event_Start_Date": "2031-01-10",
                "Service_Type": "Long term support: Community", "Delivery_Mechanism": "Direct payment"})
    row.update(values)
    return row


def checks(report):
    return sorted((f["check"], f["severity"], f["field"], f["case_reference"]) for f in report)


def test_a_clean_row_has_no_findings():
    assert cld_quality.quality_report([spec_row()], []) == []


def test_the_quality_report_finds_each_kind_of_fault_and_names_the_case():
    rows = [
        spec_row(Event_End_Date="2031-01-05"),                                       # ends before it starts
        spec_row(Event_Reference="CASE-000008-4-20", LA_Person_Unique_Identifier="CASE-000008",
                 Delivery_Mechanism=None, NHS_Number=None),                           # no mechanism, no NHS number
        spec_row(Event_Reference="CASE-000009-5-30", LA_Person_Unique_Identifier="CASE-000009",
                 Event_Type="Assessment", Service_Type=None, Delivery_Mechanism=None,
                 Event_End_Date="2031-04-02", Assessment_Type=None),                  # ends after the period
        spec_row(Event_Reference="CASE-000010-6-40", LA_Person_Unique_Identifier="CASE-000010",
                 Event_Outcome="NFA \u2013 Other", Event_End_Date="2031-02-01", Date_of_Death="2031-01-01"),
        # a service running on after the person died (ends after the date of death, or still open)
        spec_row(Event_Reference="CASE-000012-7-50", LA_Person_Unique_Identifier="CASE-000012",
                 Event_End_Date="2031-02-15", Date_of_Death="2031-02-01"),
        spec_row(Event_Reference="CASE-000013-8-60", LA_Person_Unique_Identifier="CASE-000013",
                 Date_of_Death="2031-02-01"),
        # ending on the day of death is right (a closure recorded later ends it then): no finding
        spec_row(Event_Reference="CASE-000014-9-70", LA_Person_Unique_Identifier="CASE-000014",
                 Event_End_Date="2031-02-01", Event_Outcome="NFA: Deceased", Date_of_Death="2031-02-01"),
    ]
    problems = [{"case_reference": "CASE-000011", "event": "Service from 2031-02-01 (support_plan instance 2)",
                 "field": "Service_Type", "value": None, "why": "does not say whether nursing care"}]
    assert checks(cld_quality.quality_report(rows, problems)) == sorted([
        ("end_before_start", "error", "Event_End_Date", "CASE-000007"),
        ("service_without_delivery_mechanism", "error", "Delivery_Mechanism", "CASE-000008"),
        ("no_nhs_number", "warning", "NHS_Number", "CASE-000008"),
        ("out_of_order", "error", "Event_End_Date", "CASE-000009"),
        ("missing_mandatory", "error", "Assessment_Type", "CASE-000009"),
        ("invalid_value", "error", "Event_Outcome", "CASE-000010"),
        ("out_of_order", "error", "Date_of_Death", "CASE-000010"),
        ("not_coded", "error", "Service_Type", "CASE-000011"),
        ("out_of_order", "error", "Date_of_Death", "CASE-000012"),
        ("out_of_order", "error", "Date_of_Death", "CASE-000013"),
    ])
    details = {f["case_reference"]: f["detail"] for f in cld_quality.quality_report(rows, problems)
               if f["field"] == "Date_of_Death"}
    assert details["CASE-000012"].endswith("ends on 2031-02-15, after the person's date of death (2031-02-01)")
    assert details["CASE-000013"].endswith("is still open after the person's date of death (2031-02-01): close the "
                                           "case or end the service")


def test_overlapping_services_of_one_kind_are_found_but_a_plan_superseded_that_day_and_service_lines_are_not():
    first = spec_row(Event_End_Date="2031-02-01")
    follows = spec_row(Event_Reference="CASE-000007-9-50", Event_Start_Date="2031-02-01")  # superseded that day
    assert cld_quality.quality_report([first, follows], []) == []
    lines = [spec_row(Event_Reference="CASE-000007-3-12/1"), spec_row(Event_Reference="CASE-000007-3-12/2")]
    assert cld_quality.quality_report(lines, []) == []
    overlapping = spec_row(Event_Reference="CASE-000007-9-50", Event_Start_Date="2031-01-31")
    [finding] = cld_quality.quality_report([first, overlapping], [])
    assert (finding["check"], finding["case_reference"]) == ("overlapping_events", "CASE-000007")
    assert "(to 2031-02-01)" in finding["detail"]
    other_kind = spec_row(Event_Reference="CASE-000007-9-50", Service_Type="Short term support: ST-Max")
    assert cld_quality.quality_report([first, other_kind], []) == []


def test_carepath_cld_check_prints_the_report(eng, tmp_path, capsys):  # noqa: F811
    from carepath.cli import main

    front_door(eng, contact(advice_given="Leaflet"))
    assert main(["cld", "--db", eng.db.url, "--from", "2031-01-01", "--to", "2031-03-31", "--la-code", LA,
                 "--check"]) == 0
    out = capsys.readouterr().out
    assert "Data-quality report: 0 error(s), 1 warning(s)" in out
    assert "no_nhs_number" in out and "CASE-000001" in out


def test_the_csv_file_has_no_en_dash_and_one_line_per_row(eng, tmp_path):  # noqa: F811
    reablement_ended(eng, "support_declined")
    rows = cld.cld_return(eng, *Q1, la_code=LA)
    path = cld.write_cld_csv(rows, tmp_path / "q1.csv")
    text = path.read_bytes().decode("utf-8")
    assert "\u2013" not in text
    with path.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) == 2
    assert [r["Event_Outcome"] for r in table] == ["Progress to reablement/ST-Max", "NFA: Support declined"]


def test_a_carers_rows_are_unpaid_carer_rows_linked_to_the_person_cared_for(eng):  # noqa: F811
    from tests.test_carers import carer_plan
    from tests.test_process_assessment_to_review import carer_assessment

    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", carer=True))  # Peter: not eligible
    complete(eng, cid, "assess_carer", carer_assessment("moderate"))
    complete(eng, cid, "plan_carer_support", carer_plan("involving_cared_for", "direct_payment"))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    reference = eng.get_case(cid)["reference"]
    rows = cld.cld_return(eng, *Q1, la_code=LA)
    assert [(r["LA_Person_Unique_Identifier"], r["Client_Type"], r["Event_Type"], r["Event_Outcome"],
             r["Service_Type"], r["Delivery_Mechanism"], r["Adult_1_Linked_Person_ID"]) for r in rows] == [
        (reference, "Service user", "Assessment", "NFA: No services offered for other reason", None, None, None),
        (f"{reference}-C1", "Unpaid carer", "Assessment", "Progress to support planning or services", None, None,
         reference),
        (f"{reference}-C1", "Unpaid carer", "Service", "Continuation of support or services",
         "Unpaid carer support: Support involving the person cared-for", "Direct payment", reference)]
    # the carer's budget a week (moderate: £600 a year) as one unit a week
    assert (rows[2]["Unit_Cost"], rows[2]["Planned_units_per_week"]) == ("11.54", "1")
    assert rows[1]["Assessment_Type"] == "Long term assessment"


@pytest.mark.parametrize("contribution, expected", [
    ({"full_cost": True, "weekly_contribution": "250.00"}, "Fully client funded"),
    ({"full_cost": False, "weekly_contribution": "0.00"}, "Fully social care funded"),
    ({"full_cost": False, "weekly_contribution": "0.01"}, "Joint client and social care funded"),
    # an assessed charge at or above the plan's cost (capped at it): the person pays it all, the council nothing
    ({"full_cost": False, "weekly_contribution": "175.00", "council_weekly": "0.00", "capped_at_cost": True},
     "Fully client funded"),
    ({"full_cost": False, "weekly_contribution": "174.99", "council_weekly": "0.01"},
     "Joint client and social care funded"),
    (None, None),
])
def test_the_client_funding_status_follows_the_latest_costed_plans_contribution(contribution, expected):
    older = {"contribution": {"full_cost": True, "weekly_contribution": "90.00"}}
    assert cld._funding_status([older, {"contribution": contribution}]) == (expected or "Fully client funded")
    assert cld._funding_status([{"contribution": contribution}]) == expected


def test_a_missing_la_code_is_one_finding_for_the_return_not_one_per_row():
    rows = [spec_row(LA_Code=None), spec_row(LA_Code=None, Event_Reference="CASE-000008-4-20",
                                             LA_Person_Unique_Identifier="CASE-000008")]
    assert [(f["check"], f["field"], f["case_reference"]) for f in cld_quality.quality_report(rows, [])] == [
        ("missing_mandatory", "LA_Code", None)]


def test_the_return_reads_cases_in_batches_exactly_as_the_engine_gives_them(eng):  # noqa: F811
    reablement_ended(eng, "admitted_to_hospital")
    to_plan(eng, "direct_payment")
    eng.create_case("Joan Barker", {"person": {"gender": "Female"}})  # a case with no process yet
    read = list(cld.read_cases(eng, batch=2))  # two batches
    assert [case["id"] for case, _ in read] == [1, 2, 3]
    for case, history in read:
        assert case == eng.get_case(case["id"]) and history == eng.history(case["id"])
