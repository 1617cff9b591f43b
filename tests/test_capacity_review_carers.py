"""Mental capacity (MCA 2005) and independent advocacy (Care Act s.67) in the review of the support plan and
in the carer's assessment, end to end on the simulated clock with the real handlers and forms, on SQLite and
PostgreSQL.

The review and the carer's assessment ask the same questions as the needs assessment and the support plan
(the same fields in forms/review.schema.json and forms/carers_assessment.schema.json) and the same
"Check capacity and advocacy" step reads them: a person — for the carer's assessment, the carer — who would
have substantial difficulty being involved and has no appropriate person is referred for independent
advocacy (the `advocacy` process, decision "review" or "carers_assessment") with its own deadline, beside
the decision's own route.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from tests.test_capacity_advocacy import (
    APPOINTED,
    BEST_INTERESTS,
    CAPACITY,
    NO_ONE,
    PROCESSES,
    ROOT,
    START,
    advocacy_instances,
    advocacy_start_data,
    teams,
    timers,
)
from tests.test_forms_sections import LIB, _page_errors
from tests.test_process_assessment_to_review import (
    FIRST_REVIEW,
    PETER,
    SUSAN,
    carer_assessment,
    complete,
    events,
    fired,
    letters,
    task,
    to_plan,
)

UTC = timezone.utc
REASON = ("The person would have substantial difficulty being involved and has no appropriate person to support "
          "them (Care Act 2014 s.67).")
NAMES = ["capacity_in_doubt", "capacity_assessment", "best_interests", "substantial_difficulty",
         "appropriate_person_available", "appropriate_person"]
HELPED = {"substantial_difficulty": True, "appropriate_person_available": True,
          "appropriate_person": "Susan Clarke, daughter"}
UNCHANGED = {"needs_changed": False, "plan_working": True}


@pytest.fixture
def eng(db_url):
    """The decision diagrams, the carer's support plan and the advocacy process, on the simulated clock."""
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy([*PROCESSES, ROOT / "processes" / "carers_support_plan.bpmn"])
    yield engine
    engine.db.dispose()


def to_review(eng) -> int:
    """Peter's plan signed off on Monday 3 March 2031; the first review opens on Tuesday 15 April."""
    cid = to_plan(eng)
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    task(eng, cid, "review_plan")
    return cid


def start_carer(eng) -> int:
    return eng.start("carers_assessment", data={"person": SUSAN, "cared_for": "Peter Clarke",
                                                "carer_self_contact": False}).case_id


# ---------------------------------------------------------------- the review


def test_a_review_where_the_person_has_substantial_difficulty_and_nobody_refers_for_advocacy_with_its_deadline(eng):
    cid = to_review(eng)
    opened = eng.now()
    assert opened == datetime(2031, 4, 15, 9, 0, tzinfo=UTC)  # Tuesday, day 43
    complete(eng, cid, "review_plan", {**UNCHANGED, **NO_ONE})
    [data] = advocacy_start_data(eng, cid)
    assert data == {"person": PETER, "decision": "review", "reason": REASON, "contact_date": "2031-04-15"}
    # 5 working days after Tuesday 15 April 2031 (the day after Easter Monday): Tuesday 22 April, 17:00 BST
    due = datetime(2031, 4, 22, 16, 0, tzinfo=UTC)
    assert task(eng, cid, "arrange_advocate")["due_at"] == due
    assert "advocate_overdue" in timers(eng, cid, "timer.set")
    assert eng.get_case(cid)["data"]["advocacy"] == {
        "status": "referred", "decision": "review", "reason": REASON, "referred_on": "2031-04-15",
        "due": "2031-04-22T16:00:00Z"}
    # the review goes on beside the referral: recorded, the next review waits on its timer
    assert ("arrange_advocate", "social_work") in teams(eng, cid)
    assert "review_plan" not in [t for t, _ in teams(eng, cid)]
    # one minute before the deadline nothing fires; at it the team manager is told
    eng.advance_clock(to=due - timedelta(minutes=1))
    assert "advocate_overdue" not in fired(eng, cid)
    eng.advance_clock(to=due)
    assert "advocate_overdue" in fired(eng, cid)
    assert ("escalate_advocacy", "team_manager") in teams(eng, cid)
    complete(eng, cid, "arrange_advocate", {**APPOINTED, "referred_on": "2031-04-15", "appointed_on": "2031-04-23"})
    assert eng.get_case(cid)["data"]["advocacy"]["status"] == "appointed"
    [letter] = letters(eng, cid, "advocacy_letter")
    assert "support you with the review of your care and support plan" in letter


def test_a_review_with_an_appropriate_person_or_without_difficulty_refers_nobody(eng):
    helped = to_review(eng)
    complete(eng, helped, "review_plan", {**UNCHANGED, **HELPED})
    unanswered = to_review(eng)
    complete(eng, unanswered, "review_plan", UNCHANGED)
    for cid in (helped, unanswered):
        assert advocacy_instances(eng, cid) == [] and "advocacy" not in eng.get_case(cid)["data"]
        assert "advocate_overdue" not in timers(eng, cid, "timer.set")
        assert not {"review_plan", "arrange_advocate"} & {t for t, _ in teams(eng, cid)}  # recorded


def test_a_review_where_the_person_lacks_capacity_needs_the_best_interests_decision_and_refers(eng):
    cid = to_review(eng)
    review = {**UNCHANGED, "capacity_in_doubt": True, "capacity_assessment": CAPACITY}
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "review_plan", review)
    assert [e["field"] for e in err.value.errors] == ["best_interests"]
    assert events(eng, cid, "task.completed")[-1]["data"]["element_id"] != "review_plan"  # nothing stored
    complete(eng, cid, "review_plan", {**review, "best_interests": BEST_INTERESTS})
    [data] = advocacy_start_data(eng, cid)  # lacking capacity is substantial difficulty; nobody named
    assert data["decision"] == "review"
    assert data["reason"] == ("The person lacks capacity for this decision and has no appropriate person to "
                              "support them (Care Act 2014 s.67).")


def test_a_review_while_an_advocate_is_appointed_does_not_refer_again(eng):
    cid = to_plan(eng)
    eng.start("advocacy", case_id=cid, data={"person": PETER, "decision": "support_plan", "reason": REASON})
    complete(eng, cid, "arrange_advocate", APPOINTED)
    eng.advance_clock(timedelta(days=FIRST_REVIEW))
    complete(eng, cid, "review_plan", {**UNCHANGED, **NO_ONE})
    assert len(advocacy_instances(eng, cid)) == 1


# ---------------------------------------------------------------- the carer's assessment: the carer is the person


def test_a_carer_with_substantial_difficulty_and_nobody_is_referred_for_advocacy_as_the_carer(eng):
    cid = start_carer(eng)
    complete(eng, cid, "assess_carer", {**carer_assessment("moderate"), **NO_ONE})
    [data] = advocacy_start_data(eng, cid)
    assert data == {"person": SUSAN, "decision": "carers_assessment", "reason": REASON,
                    "contact_date": "2031-03-03"}
    assert task(eng, cid, "arrange_advocate")["due_at"] == datetime(2031, 3, 10, 17, 0, tzinfo=UTC)
    assert "advocate_overdue" in timers(eng, cid, "timer.set")
    # the assessment goes on: eligible, the carer's support plan is next
    assert sorted(t for t, _ in teams(eng, cid)) == ["arrange_advocate", "plan_carer_support"]
    complete(eng, cid, "arrange_advocate", APPOINTED)
    [letter] = letters(eng, cid, "advocacy_letter")
    assert "Dear Susan Clarke" in letter
    assert "support you with the assessment of your needs as a carer" in letter
    assert "advocate_overdue" in timers(eng, cid, "timer.cleared")


def test_a_carer_with_an_appropriate_person_or_without_difficulty_is_not_referred(eng):
    helped = start_carer(eng)
    complete(eng, helped, "assess_carer", {**carer_assessment("moderate"), **HELPED,
                                           "appropriate_person": "Tom Clarke, son"})
    unanswered = start_carer(eng)
    complete(eng, unanswered, "assess_carer", carer_assessment("moderate"))
    for cid in (helped, unanswered):
        assert advocacy_instances(eng, cid) == [] and "advocacy" not in eng.get_case(cid)["data"]
        assert [t for t, _ in teams(eng, cid)] == ["plan_carer_support"]


def test_the_cared_for_persons_advocate_does_not_stop_the_carers_own_referral(eng):
    # Peter has an advocate on his case; Susan, assessed on his case as his carer, needs her own
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                              "contact_date": "2031-03-03"}).case_id
    from tests.test_process_assessment_to_review import assessment

    complete(eng, cid, "assess_needs", {**assessment("personal_hygiene", carer=True), **NO_ONE})
    complete(eng, cid, "arrange_advocate", APPOINTED)
    assert eng.get_case(cid)["data"]["advocacy"]["status"] == "appointed"
    complete(eng, cid, "assess_carer", {**carer_assessment("moderate"), **NO_ONE})
    assert [d["person"]["name"] for d in advocacy_start_data(eng, cid)] == ["Peter Clarke", "Susan Clarke"]
    assert [d["decision"] for d in advocacy_start_data(eng, cid)] == ["needs_assessment", "carers_assessment"]


# ---------------------------------------------------------------- the forms: same questions, hidden ones silent


def test_the_review_and_the_carers_assessment_ask_the_same_questions_in_their_own_section():
    plan = json.loads((ROOT / "forms" / "support_plan.schema.json").read_text(encoding="utf-8"))
    rules = [c for c in plan["allOf"] if any(n in json.dumps(c["if"]) for n in NAMES)]
    for name in ("review", "carers_assessment"):
        form = LIB.schema(name)
        assert [c for c in form["allOf"] if any(n in json.dumps(c["if"]) for n in NAMES)] == rules
        assert set(NAMES) <= set(form["properties"]) and not set(NAMES) & set(form.get("required", []))
        [section] = [s for s in LIB.sections(name) if s["id"] == "capacity"]
        assert (section["title"], section["fields"]) == ("Capacity and advocacy", NAMES)
    review = LIB.schema("review")["properties"]
    assert {n: review[n] for n in NAMES} == {n: plan["properties"][n] for n in NAMES}
    carer = LIB.schema("carers_assessment")["properties"]
    assert carer["substantial_difficulty"]["title"] == (
        "Would the carer have substantial difficulty being involved in this decision?")


@pytest.mark.parametrize("name", ["review", "carers_assessment"])
def test_a_hidden_question_never_produces_an_error(name):
    schema = LIB.schema(name)
    words = ("capacity", "advocate", "appropriate person", "best interests")
    # not answered, or answered no: what they would reveal is hidden and never named
    for form in ({}, {"capacity_in_doubt": ["false"], "substantial_difficulty": ["false"]}):
        texts = _page_errors(schema, form)
        assert not [t for t in texts if any(w in t.lower() for w in words)], texts
    # yes reveals the next question, and only that one is named
    texts = _page_errors(schema, {"substantial_difficulty": ["true"]})
    assert [t for t in texts if "appropriate person" in t.lower()] == [
        "Select whether there is an appropriate person to support and represent them"], texts
    texts = _page_errors(schema, {"capacity_in_doubt": ["true"]})
    assert any(t.startswith("Capacity assessment: ") for t in texts)
    assert not [t for t in texts if t.startswith("Best interests")], texts


def test_answered_no_with_leftover_follow_on_answers_completes_without_a_referral(eng):
    # a worker said yes, filled in a name, then changed the answer to no: the revealed answer is not an error
    cid = to_review(eng)
    complete(eng, cid, "review_plan", {**UNCHANGED, "substantial_difficulty": False, "capacity_in_doubt": False})
    assert advocacy_instances(eng, cid) == []
    carer = start_carer(eng)
    complete(eng, carer, "assess_carer", {**carer_assessment("moderate"), "substantial_difficulty": False,
                                          "appropriate_person_available": True,
                                          "appropriate_person": "Tom Clarke, son"})
    assert advocacy_instances(eng, carer) == []
