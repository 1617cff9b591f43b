"""The CLD code lists found in NHS England's guidance (Method_of_Review, Review_Outcomes_Achieved) and how the review
forms' answers are written to them (handlers/cld.py SPEC_METHOD_OF_REVIEW, SPEC_OUTCOMES_ACHIEVED).

Every expected value is copied by hand from the source (NHS England, CLD Guidance release 1, February 2023, as the
ASC glossary reproduces it; handlers/cld_spec/code_lists.json gives the URLs), never read from the code's tables:
swapping two translations fails a test here (docs/cld.md, "Swapped codes fail a test").
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from engine.forms import FormLibrary
from handlers import cld
from tests.test_cld import FIRST_REVIEW, complete, eng, to_plan  # noqa: F401  (fixture)
from tests.test_process_assessment_to_review import PETER, assessment

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "handlers" / "cld_spec"
LA = "999"
REVIEW_PERIOD = (date(2031, 3, 1), date(2031, 4, 30))

# copied by hand from https://marketingteam125.wixsite.com/ascglossary/asc-glossary-terms/method-of-review
METHOD_OF_REVIEW_LIST = ["Carer only", "Service user only", "Service user and carer"]
# copied by hand from https://marketingteam125.wixsite.com/ascglossary/asc-glossary-terms/review-outcomes-achieved
OUTCOMES_ACHIEVED_LIST = ["Fully Met", "Partially Met", "Not Met"]

# copied by hand from NHSDigital/ASC-Client-Level-Data-SALT-ASCOF-transformations, SALT LTS001a replication code
# (#REF_PSR), whose 'Unknown' and 'Social Support: Support to Carer' the CLD guidance release 1 gives (ASC glossary,
# asc-glossary-terms-condensed/primary-support-reason)
PSR_LIST = ["Physical Support: Access & mobility only", "Physical Support: Personal care support",
            "Sensory Support: Support for visual impairment", "Sensory Support: Support for hearing impairment",
            "Sensory Support: Support for dual impairment", "Support with Memory & Cognition",
            "Learning Disability Support", "Mental Health Support", "Social Support: Substance misuse support",
            "Social Support: Asylum seeker support", "Social Support: Support for Social Isolation/Other",
            "Social Support: Support to Carer", "Unknown"]
# the contact form's answers -> the list's value, by hand (all but "Not known" are the list's own words)
PSR_ANSWERS = {**{v: v for v in PSR_LIST[:11]}, "Not known": "Unknown"}

# the review form's answers -> the list's value, by hand
REVIEW_PARTICIPANTS = {"person": "Service user only", "person_and_carer": "Service user and carer",
                       "carer": "Carer only"}
REVIEW_OUTCOMES = {"fully": "Fully Met", "partly": "Partially Met", "not": "Not Met"}
# the carer's review form's answers -> the list's value, by hand (the carer is the client; the service user is the
# person cared for)
CARER_TOOK_PART = {True: "Service user and carer", False: "Carer only"}
CARER_OUTCOMES = {"fully": "Fully Met", "partly": "Partially Met", "not_achieved": "Not Met"}


def form(name: str) -> dict:
    return FormLibrary.from_folder(ROOT / "forms").schema(name)


def test_the_recorded_lists_are_the_guidances_lists_with_their_sources():
    lists = json.loads((SPEC / "code_lists.json").read_text(encoding="utf-8"))["lists"]
    for field, expected, page in (("Method_of_Review", METHOD_OF_REVIEW_LIST, "method-of-review"),
                                  ("Review_Outcomes_Achieved", OUTCOMES_ACHIEVED_LIST, "review-outcomes-achieved")):
        entry = lists[field]
        assert entry["values"] == expected, field
        assert (entry["release"], entry["complete"]) == ("1", True), field
        assert any(f"ascglossary/asc-glossary-terms/{page}" in s and "release 1, February 2023" in s
                   for s in entry["sources"]), field
        assert list(cld.CODE_LISTS[field]) == expected, field
    # the two fields are columns of the return, in DHSC's order, and still empty lists stay recorded as not found
    header = cld.cld_csv_text([]).splitlines()[0].split(",")
    assert header.index("Review_Reason") < header.index("Review_Outcomes_Achieved") < header.index("Method_of_Review")
    for field in ("Method_of_Assessment", "Eligible_Needs_Identified", "Total_Hrs_Caring_per_week",
                  "Cost_Frequency_Unit_Type", "Autism_Spectrum_Disorder_ASD", "Visual_Impairment",
                  "Hearing_Impairment", "Dementia"):
        note = lists[field]["note"].lower()
        assert lists[field]["values"] == [] and "left empty" in note, field


def test_every_answer_the_review_forms_allow_has_a_hand_copied_value():
    """A new answer added to a form fails here until its code is worked out (and tested below)."""
    review = form("review")["properties"]
    carers = form("carers_review")["properties"]
    assert review["review_participants"]["enum"] == list(REVIEW_PARTICIPANTS)
    assert review["outcomes_achieved"]["enum"] == list(REVIEW_OUTCOMES)
    assert carers["cared_for_took_part"]["type"] == "boolean"
    assert carers["outcomes_achieved"]["enum"] == list(CARER_OUTCOMES)
    produced = {*REVIEW_PARTICIPANTS.values(), *CARER_TOOK_PART.values()}
    assert produced == set(METHOD_OF_REVIEW_LIST)
    assert {*REVIEW_OUTCOMES.values(), *CARER_OUTCOMES.values()} == set(OUTCOMES_ACHIEVED_LIST)
    # the new questions are optional: older reviews and the existing tests still complete without them
    assert "review_participants" not in form("review").get("required", [])
    assert "cared_for_took_part" not in form("carers_review").get("required", [])
    [how] = [s for s in FormLibrary.from_folder(ROOT / "forms").sections("review") if s["id"] == "how"]
    assert "review_participants" in how["fields"]


def _review_row(eng, answers):  # noqa: F811
    cid = to_plan(eng, "council_managed")
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True, "review_method": "phone",
                                       **answers})
    result = cld.cld_return(eng, *REVIEW_PERIOD, la_code=LA)
    [review] = [r for r in result if r["Event_Type"] == "Review"]
    # the review's problems: the plan's own (its two services of different types are not costed, so the plan's one
    # row has no Service_Component: tests/test_cld_service_component.py) is not these tests' subject
    return review, [p for p in result.problems if p["event"] is None or not p["event"].startswith("Service")]


@pytest.mark.parametrize("participants, outcomes", [
    ("person", "fully"), ("person_and_carer", "partly"), ("carer", "not")])
def test_each_review_answer_gives_exactly_its_value(eng, participants, outcomes):  # noqa: F811
    review, problems = _review_row(eng, {"review_participants": participants, "outcomes_achieved": outcomes})
    assert (review["Method_of_Review"], review["Review_Outcomes_Achieved"]) == (
        REVIEW_PARTICIPANTS[participants], REVIEW_OUTCOMES[outcomes])
    assert problems == []


def test_a_review_without_the_answers_has_empty_cells_and_a_problem_for_each(eng):  # noqa: F811
    # a review completed before the question existed, or left unanswered: never guessed from how it was done
    review, problems = _review_row(eng, {})
    assert (review["Method_of_Review"], review["Review_Outcomes_Achieved"]) == (None, None)
    assert sorted((p["field"], p["value"]) for p in problems) == [("Method_of_Review", None),
                                                                   ("Review_Outcomes_Achieved", None)]
    why = {p["field"]: p["why"] for p in problems}
    assert "Was the review with the person, their unpaid carer, or both?" in why["Method_of_Review"]
    assert "Have the outcomes in the plan been achieved?" in why["Review_Outcomes_Achieved"]
    assert all(p["case_reference"] and p["event"].startswith("Review from 2031-04-") for p in problems)


def test_an_answer_outside_the_forms_list_is_a_problem_not_a_guess():
    history = _carer_review_history({"outcomes_achieved": "mostly", "cared_for_took_part": True})
    problems: list[dict] = []
    [row] = cld.spec_rows({"reference": "CASE-000001", "data": {"person": PETER}}, history,
                          date(2031, 7, 1), date(2031, 9, 30), LA, [], problems)
    assert row["Review_Outcomes_Achieved"] is None and row["Method_of_Review"] == "Service user and carer"
    assert [(p["field"], p["value"]) for p in problems] == [("Review_Outcomes_Achieved", "mostly")]


def _carer_review_history(answers: dict) -> list[dict]:
    def ev(seq, type_, data):
        return {"seq": seq, "instance_id": 5, "type": type_, "at": "2031-09-03T09:00:00+00:00", "data": data}

    return [ev(1, "instance.started", {"process_id": "carers_support_plan", "data": {"person": PETER}}),
            ev(2, "task.ready", {"element_id": "review_carer_plan"}),
            ev(3, "task.completed", {"element_id": "review_carer_plan",
                                     "data": {"next_step": "continue", **answers}})]


@pytest.mark.parametrize("took_part, outcomes", [(True, "fully"), (False, "partly"), (True, "not_achieved"),
                                                 (None, None)])
def test_each_carers_review_answer_gives_exactly_its_value(took_part, outcomes):
    answers = {k: v for k, v in (("cared_for_took_part", took_part), ("outcomes_achieved", outcomes)) if v is not None}
    problems: list[dict] = []
    [row] = cld.spec_rows({"reference": "CASE-000001", "data": {"person": PETER}}, _carer_review_history(answers),
                          date(2031, 7, 1), date(2031, 9, 30), LA, [], problems)
    assert (row["Event_Type"], row["Client_Type"], row["Review_Reason"]) == ("Review", "Unpaid carer", "Planned")
    assert row["Method_of_Review"] == CARER_TOOK_PART.get(took_part)
    assert row["Review_Outcomes_Achieved"] == CARER_OUTCOMES.get(outcomes)
    if took_part is None:  # an older carer's review: both empty, both listed
        assert sorted(p["field"] for p in problems) == ["Method_of_Review", "Review_Outcomes_Achieved"]
    else:
        assert problems == []


def test_the_primary_support_reasons_are_the_release_1_list_and_not_known_is_unknown(eng):  # noqa: F811
    lists = json.loads((SPEC / "code_lists.json").read_text(encoding="utf-8"))["lists"]
    assert lists["Primary_Support_Reason"]["values"] == PSR_LIST
    assert any("NHSDigital/ASC-Client-Level-Data-SALT-ASCOF-transformations" in src
               for src in lists["Primary_Support_Reason"]["sources"])
    assert form("contact")["properties"]["person"]["properties"]["primary_support_reason"]["enum"] == list(PSR_ANSWERS)
    people = {}
    for answer in PSR_ANSWERS:
        case = eng.create_case("Joan Barker", {"person": {"primary_support_reason": answer}})
        res = eng.start("needs_assessment", case_id=case, data={"person": PETER})
        complete(eng, res.case_id, "assess_needs", assessment("personal_hygiene"))
        people[eng.get_case(case)["reference"]] = answer
    result = cld.cld_return(eng, date(2031, 1, 1), date(2031, 3, 31), la_code=LA)
    assert {people[r["LA_Person_Unique_Identifier"]]: r["Primary_Support_Reason"] for r in result} == PSR_ANSWERS
    assert [p for p in result.problems if p["field"] == "Primary_Support_Reason"] == []


def test_a_carers_rows_carry_support_to_carer_whatever_the_carers_own_reason():
    problems: list[dict] = []
    case = {"reference": "CASE-000001", "data": {"person": {**PETER, "primary_support_reason": "Not known"}}}
    history = _carer_review_history({"cared_for_took_part": False, "outcomes_achieved": "fully"})
    history[0]["data"]["data"]["person"] = {**PETER, "primary_support_reason": "Mental Health Support"}
    [row] = cld.spec_rows(case, history, date(2031, 7, 1), date(2031, 9, 30), LA, [], problems)
    assert (row["Client_Type"], row["Primary_Support_Reason"]) == ("Unpaid carer", "Social Support: Support to Carer")
    assert problems == []
