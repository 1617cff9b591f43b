"""A long-term support plan's services in the CLD return: one Service row per costed service, each with the
Service_Component the plan's "Type of service" gives (handlers/cld.py SPEC_SERVICE_COMPONENT, docs/cld.md).

Hand-computed: each expected spelling below is copied by hand from DHSC's ASCOF code (code_lists.json sources), not
read from the code's tables, so a swap of two codes fails here. The real diagrams and forms run on the simulated clock
(3 March 2031 on), as in tests/test_cld.py.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers import budget, cld, cld_quality
from tests.conftest import START
from tests.test_cld import FILES, FIRST_REVIEW, Q1, ROOT, complete, task
from tests.test_process_assessment_to_review import PETER, SMALL, assessment, plan, ras

LA = "999"

#: the form's answer -> the published spelling (copied by hand from DHSC's Create_ASCOF_2A/2D/3D SQL and
#: create_GetDQValues_procedure.sql as code_lists.json records them)
BY_HAND = [
    ("home_support", "Home support or domiciliary care"),
    ("supported_living", "Community supported living"),
    ("extra_care_housing", "Extra care housing"),
    ("shared_lives", "Shared Lives"),
    ("equipment", "Equipment"),
    ("short_term_residential", "Short term residential care"),
    ("short_term_nursing", "Short term nursing care"),
]


def _engine(db_url, forms: FormLibrary) -> Engine:
    engine = Engine(db_url, registry=load_registry("handlers"), forms=forms)
    engine.init(simulated_start=START)
    engine.deploy(FILES)
    return engine


@pytest.fixture
def eng(db_url):
    engine = _engine(db_url, FormLibrary.from_folder(ROOT / "forms"))
    yield engine
    engine.db.dispose()


def old_forms() -> FormLibrary:
    """The forms as they were before "Type of service" was asked (the support plan without the question)."""
    folder = ROOT / "forms"
    schemas = {p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in folder.glob("*.schema.json")}
    old = copy.deepcopy(schemas["support_plan"])
    item = old["properties"]["outcomes"]["items"]
    del item["properties"]["service_component"]
    item["required"] = [r for r in item["required"] if r != "service_component"]
    schemas["support_plan"] = old
    return FormLibrary(schemas)


def service(component: str | None, unit_cost: float = 20, units: float = 5, delivery: str = "council_commissioned",
            label: str = "Get washed and dressed") -> dict:
    line = {"label": label, "how_met": "As agreed with Peter", "provider": "Northtown Care", "unit": "hour",
            "unit_cost": unit_cost, "units_per_week": units, "delivery": delivery}
    if component is not None:
        line["service_component"] = component
    return line


def signed_off(eng, outcomes: list[dict], money_management: str = "council_managed", **answers) -> int:
    res = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "contact_date": "2031-03-03"})
    cid = res.case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", {**plan(money_management), "outcomes": outcomes, **answers})
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    return cid


def services(result) -> list[dict]:
    return [r for r in result if r["Event_Type"] == "Service"]


# ---------------------------------------------------------------- the form's list

def test_the_forms_type_of_service_offers_the_coded_components_and_other_only():
    schema = json.loads((ROOT / "forms" / "support_plan.schema.json").read_text())
    item = schema["properties"]["outcomes"]["items"]
    question = item["properties"]["service_component"]
    assert question["title"] == "Type of service"
    assert "service_component" in item["required"]  # required for every new plan
    assert question["enum"] == [code for code, _ in BY_HAND] + ["other"] == list(budget.SERVICE_COMPONENTS)
    # the options read as the published values (respite stays say so), then the way out
    names = question["x-enumNames"]
    assert [n.split(" (")[0] for n in names[:-1]] == [spelling for _, spelling in BY_HAND]
    assert names[-1] == "Other or none of these"
    # not offered: Reablement (its own process) and Direct payment (DHSC reads it as a delivery mechanism; the
    # plan's "How it is paid for" gives that)
    assert not {"Reablement", "Direct payment"} & {n.split(" (")[0] for n in names}
    assert set(cld.SPEC_SERVICE_COMPONENT) == set(question["enum"]) - {"other"}


def test_a_type_of_service_outside_the_list_is_refused_with_a_clear_error(eng):
    forms = FormLibrary.from_folder(ROOT / "forms")
    with pytest.raises(ValidationError) as err:
        forms.validate("support_plan", {**plan(), "outcomes": [service("day_centre")]})
    assert [e["field"] for e in err.value.errors] == ["outcomes/0/service_component"]
    assert err.value.errors[0]["message"] == "Type of service must be one of the types listed"
    with pytest.raises(ValidationError) as err:  # and a new plan must answer it
        forms.validate("support_plan", {**plan(), "outcomes": [service(None)]})
    assert err.value.errors == [{"field": "outcomes/0/service_component", "message": "'service_component' is required"}]
    # the handler that costs the plan refuses it too, naming the service (an answer that did not come from the form)
    with pytest.raises(ValueError, match=r"outcomes\[0\]\.service_component .*'day_centre'"):
        budget._plan_services([service("day_centre")], "council_managed")
    # nothing was recorded for a refused plan: a case at write_plan keeps its task open
    res = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER, "contact_date": "2031-03-03"})
    complete(eng, res.case_id, "assess_needs",
             assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, res.case_id, "score_needs", ras(**SMALL))
    with pytest.raises(ValidationError):
        complete(eng, res.case_id, "write_plan", {**plan(), "outcomes": [service("Home support")]})
    assert task(eng, res.case_id, "write_plan")["element_id"] == "write_plan"


# ---------------------------------------------------------------- every component, exactly its spelling

@pytest.mark.parametrize("answer, spelling", BY_HAND)
def test_each_type_of_service_gives_exactly_its_published_component(eng, answer, spelling):
    signed_off(eng, [service(answer)])
    result = cld.cld_return(eng, *Q1, la_code=LA)
    [row] = services(result)
    assert row["Service_Component"] == spelling
    assert (row["Service_Type"], row["Unit_Cost"], row["Planned_units_per_week"]) == (
        "Long term support: Community", "20.00", "5")
    assert [p for p in result.problems if p["field"] == "Service_Component"] == []


def test_other_or_none_of_these_is_kept_but_not_coded_and_the_report_lists_it(eng):
    cid = signed_off(eng, [service("other")])
    reference = eng.get_case(cid)["reference"]
    result = cld.cld_return(eng, *Q1, la_code=LA)
    [row] = services(result)
    assert row["Service_Component"] is None  # never guessed
    [problem] = [p for p in result.problems if p["field"] == "Service_Component"]
    assert (problem["case_reference"], problem["value"]) == (reference, "other")
    assert "service line 1" in problem["why"] and "Other or none of these" in problem["why"]
    [finding] = [f for f in cld_quality.quality_report(result, result.problems) if f["field"] == "Service_Component"]
    assert (finding["check"], finding["severity"], finding["case_reference"]) == ("not_coded", "error", reference)


# ---------------------------------------------------------------- two lines, costs, totals

def test_a_plan_with_two_services_of_different_types_gives_two_rows_whose_costs_add_up_to_the_plan(eng):
    # home care 7 hours at £22.50 = £157.50 a week (council-commissioned); Shared Lives 3 days at £45.00 = £135.00
    # (a direct payment); a pendant from family costs the budget nothing (not a row). The plan: £292.50 a week.
    cid = signed_off(eng, [service("home_support", 22.5, 7),
                           {**service("shared_lives", 45, 3, "direct_payment", "See friends"), "unit": "day"},
                           {"label": "Feel safe at night", "how_met": "A pendant from family",
                            "service_component": "equipment"}])
    reference = eng.get_case(cid)["reference"]
    result = cld.cld_return(eng, *Q1, la_code=LA)
    rows = services(result)
    assert [(r["Event_Reference"].rsplit("/", 1)[1], r["Service_Component"], r["Unit_Cost"],
             r["Planned_units_per_week"], r["Delivery_Mechanism"], r["Event_Start_Date"], r["Event_End_Date"],
             r["Event_Outcome"]) for r in rows] == [
        ("1", "Home support or domiciliary care", "22.50", "7", "CASSR managed personal budget", "2031-03-03", None,
         "Continuation of support or services"),
        ("2", "Shared Lives", "45.00", "3", "Direct payment", "2031-03-03", None,
         "Continuation of support or services")]
    assert all(r["Event_Reference"].startswith(f"{reference}-") for r in rows)
    # the rows' cost a week (unit cost x units, as DHSC works it out) adds up to the plan's cost a week
    [plan_row] = [r for r in cld.derive_cld_events(eng.get_case(cid), eng.history(cid)) if r["event_type"] == "Service"]
    assert plan_row["unit_cost"] == "292.50"
    assert sum(float(r["Unit_Cost"]) * float(r["Planned_units_per_week"]) for r in rows) == 292.50
    assert [p for p in result.problems if p["field"] == "Service_Component"] == []
    # one plan: its two lines are not two overlapping services
    assert not [f for f in cld_quality.quality_report(result, result.problems) if f["check"] == "overlapping_events"]


def test_a_care_home_plan_keeps_its_service_type_and_leaves_the_component_empty_without_a_problem(eng):
    signed_off(eng, [{**service("other", 300, 1), "unit": "week"}], care_home_move=True, care_home_nursing=False)
    result = cld.cld_return(eng, *Q1, la_code=LA)
    [row] = services(result)
    assert (row["Service_Type"], row["Service_Component"]) == ("Long term support: Residential care", None)
    assert [p for p in result.problems if p["field"] == "Service_Component"] == []


# ---------------------------------------------------------------- a plan from before the question; a new plan

def test_an_old_plan_renders_and_is_a_problem_naming_the_case_then_a_superseding_plan_is_coded(db_url):
    old = _engine(db_url, old_forms())
    try:
        cid = signed_off(old, [service(None, 20, 5), service(None, 10, 2, label="Shopping")])
    finally:
        old.db.dispose()
    eng = _engine_again(db_url)
    try:
        reference = eng.get_case(cid)["reference"]
        result = cld.cld_return(eng, *Q1, la_code=LA)
        assert [r["Service_Component"] for r in services(result)] == [None, None]
        missing = [p for p in result.problems if p["field"] == "Service_Component"]
        assert [(p["case_reference"], p["value"]) for p in missing] == [(reference, None), (reference, None)]
        assert all("not answered" in p["why"] and "Type of service" in p["why"] for p in missing)
        assert ["service line 1" in missing[0]["why"], "service line 2" in missing[1]["why"]] == [True, True]
        # the review leads to a new plan, which must answer the question; it supersedes the old one
        eng.advance_clock(timedelta(days=FIRST_REVIEW))
        complete(eng, cid, "review_plan", {"needs_changed": True, "what_changed": "Peter had a fall"})
        eng.advance_clock(timedelta(days=7))
        complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
        complete(eng, cid, "score_needs", ras(**SMALL))
        with pytest.raises(ValidationError):  # the old plan's answers as they were: the new question is asked
            complete(eng, cid, "write_plan", {**plan(), "outcomes": [service(None, 20, 5)]})
        complete(eng, cid, "write_plan", {**plan(), "outcomes": [service("extra_care_housing", 20, 5)]})
        complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
        year = cld.cld_return(eng, Q1[0], Q1[1] + timedelta(days=91), la_code=LA)
        assert [(r["Event_Start_Date"], r["Event_End_Date"], r["Service_Component"]) for r in services(year)] == [
            ("2031-03-03", "2031-04-22", None), ("2031-03-03", "2031-04-22", None),
            ("2031-04-22", None, "Extra care housing")]
        # the old plan is still a problem for the periods it was in; the new one is not
        assert [p["case_reference"] for p in year.problems if p["field"] == "Service_Component"] == [reference] * 2
    finally:
        eng.db.dispose()


def _engine_again(db_url) -> Engine:
    """The same database with today's forms (the new question), as after an upgrade."""
    return Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))


def _free(component: str, label: str) -> dict:
    return {"label": label, "how_met": "As agreed with Peter", "service_component": component}


def test_a_plan_not_costed_service_by_service_is_one_row_with_its_type_only_when_there_is_one(eng):
    same = signed_off(eng, [_free("shared_lives", "Stay with Ann"), _free("shared_lives", "Days out with Ann")])
    mixed = signed_off(eng, [_free("shared_lives", "Stay with Ann"), _free("equipment", "A pendant")])
    result = cld.cld_return(eng, *Q1, la_code=LA)
    by_case = {r["LA_Person_Unique_Identifier"]: r for r in services(result)}
    refs = {cid: eng.get_case(cid)["reference"] for cid in (same, mixed)}
    assert (by_case[refs[same]]["Service_Component"], by_case[refs[same]]["Unit_Cost"]) == ("Shared Lives", None)
    assert by_case[refs[mixed]]["Service_Component"] is None
    [problem] = [p for p in result.problems if p["field"] == "Service_Component"]
    assert problem["case_reference"] == refs[mixed] and "different types" in problem["why"]
