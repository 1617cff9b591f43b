"""The needs assessment's route after the eligibility decision (processes/needs_assessment.bpmn), on the
simulated clock with the real handlers and forms, on SQLite and PostgreSQL: a carer who is present gets a
carer's assessment (Care Act s.10) whatever the cared-for person's eligibility, started before the decision
with the start data the carers_assessment process expects."""

from __future__ import annotations

import pytest

from tests.casework_helpers import casework_engine
from tests.test_capacity_advocacy import PETER, PROCESSES, start, teams
from tests.test_process_assessment_to_review import SUSAN, assessment, children_started, complete, events, letters


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES)


def carer_start_data(eng, cid) -> list[dict]:
    ids = {i["id"] for i in eng.get_case(cid)["instances"] if i["process_id"] == "carers_assessment"}
    return [e["data"]["data"] for e in events(eng, cid, "instance.started") if e["instance_id"] in ids]


def test_a_carer_of_someone_found_not_eligible_still_gets_a_carers_assessment(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", carer=True))  # one outcome: not eligible
    assert children_started(eng, cid) == [("start_carers_assessment", "carers_assessment")]
    assert carer_start_data(eng, cid) == [{"person": SUSAN, "cared_for": PETER["name"], "contact_date": "2031-03-03",
                                           "carer_self_contact": False}]
    [letter] = letters(eng, cid, "eligibility_letter")
    assert "not eligible" in letter
    # the carer's assessment is with social work; Peter's own route ended with the letter
    assert [t for t in teams(eng, cid) if t[0] != "assess_carer"] == []
    assert [i["status"] for i in eng.get_case(cid)["instances"] if i["process_id"] == "needs_assessment"] == [
        "completed"]


def test_an_eligible_person_with_a_carer_gets_both_the_carers_assessment_and_the_budget(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", carer=True))
    assert children_started(eng, cid) == [("start_carers_assessment", "carers_assessment"),
                                          ("start_personal_budget", "personal_budget"),
                                          ("start_financial_assessment", "financial_assessment")]


def test_no_carer_no_carers_assessment(eng):
    cid = start(eng)
    complete(eng, cid, "assess_needs", assessment("personal_hygiene"))
    assert children_started(eng, cid) == []
