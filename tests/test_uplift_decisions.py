"""Uplifts are carried or decided again explicitly, never dropped silently (issue 11 item 3).

When a budget is decided again and the earlier budget had uplifts, the impact assessment always follows, and its
page shows each earlier uplift (what, how much a year and a week, why, when decided). The worker carries it,
changes its amount or ends it, with the reason; the form refuses to go on while one has no decision
(forms/impact_assessment.schema.json "x-decideEach", engine/forms.py). The new budget and its letter follow the
choice: a carried uplift keeps the day it was decided, a changed one is decided now, an ended one is named in the
letter with why. Process tests on the simulated clock, SQLite and PostgreSQL; the page in the browser, axe-clean,
by keyboard.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.app import create_app
from api.demo_users import create_demo_users, demo_password
from engine.errors import ValidationError
from engine.forms import FormLibrary
from handlers.budget import personal_budget
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import SW
from tests.test_budget_picture import CTX, NEEDS, START, eng  # noqa: F401 - the engine fixture
from tests.test_letters_style import problems
from tests.test_process_assessment_to_review import (
    assessment,
    calls,
    complete,
    completed_route,
    letters,
    plan,
    ras,
    start,
    task,
)

NIGHT = {"reason": "Night sitting", "amount": 2000, "why": "Peter gets up and wanders at night"}
HOIST = {"reason": "Two carers for hoisting", "amount": 1000}
LATER = START + timedelta(days=60)


def to_reassessment(eng) -> int:  # noqa: F811
    """Peter's first budget with two uplifts (23 points £25,509.09 + £3,000.00), his plan signed off; 60 days
    later a review finds his needs changed and his needs are scored again (8 points, £8,872.73)."""
    cid = start(eng).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras({"impact_assessment_needed": True}, personal_care="high", nutrition="low"))
    complete(eng, cid, "impact_assessment", {"uplifts": [NIGHT, HOIST]})
    assert "Your personal budget is £28,509.09 a year." in letters(eng, cid, "budget_letter")[0]
    complete(eng, cid, "write_plan", plan())
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    eng.advance_clock(timedelta(days=60))
    complete(eng, cid, "review_plan", {"needs_changed": True, "what_changed": "Peter now washes without help",
                                       "outcomes_met": True, "summary": "Much more independent"})
    complete(eng, cid, "assess_needs", assessment("managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(personal_care="low", nutrition="low"))  # no impact assessment asked
    return cid


def _errors(exc) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.value.errors}


# ---------------------------------------------------------------- the process


def test_the_impact_assessment_follows_and_refuses_to_go_on_while_an_earlier_uplift_has_no_decision(eng):  # noqa: F811
    cid = to_reassessment(eng)
    impact = task(eng, cid, "impact_assessment")  # though the worker did not ask for one
    before = len(eng.history(cid))
    with pytest.raises(ValidationError) as err:
        eng.complete_task(impact["id"], {}, actor="worker")
    assert _errors(err) == {
        "earlier_uplift_decisions/0/decision": "Decide what happens to the uplift “Night sitting”: carry it, "
                                               "change it or end it",
        "earlier_uplift_decisions/1/decision": "Decide what happens to the uplift “Two carers for hoisting”: "
                                               "carry it, change it or end it"}
    with pytest.raises(ValidationError) as err:  # one decided, the other not; a new uplift repeating an earlier one
        eng.complete_task(impact["id"], {
            "earlier_uplift_decisions": [{"reason": "night sitting", "decision": "carry"}],
            "uplifts": [{"reason": "Two carers for hoisting", "amount": 1200}]}, actor="worker")
    assert _errors(err) == {
        "earlier_uplift_decisions/1/decision": "Decide what happens to the uplift “Two carers for hoisting”: "
                                               "carry it, change it or end it",
        "uplifts/0/reason": "“Two carers for hoisting” was decided before: decide it above instead of adding "
                            "it again"}
    with pytest.raises(ValidationError) as err:  # ending or changing needs the reason; a change needs the amount
        eng.complete_task(impact["id"], {"earlier_uplift_decisions": [
            {"reason": "Night sitting", "decision": "change"}, {"reason": "Two carers for hoisting",
                                                               "decision": "end"}]}, actor="worker")
    assert set(_errors(err)) == {"earlier_uplift_decisions/0/amount", "earlier_uplift_decisions/0/why_changed",
                                 "earlier_uplift_decisions/1/why_ended"}
    with pytest.raises(ValidationError) as err:  # something that was not in the earlier budget
        eng.complete_task(impact["id"], {"earlier_uplift_decisions": [
            {"reason": "Night sitting", "decision": "carry"},
            {"reason": "Two carers for hoisting", "decision": "carry"},
            {"reason": "Day centre", "decision": "carry"}]}, actor="worker")
    assert _errors(err) == {
        "earlier_uplift_decisions/2/reason": "“Day centre” is not one of the uplifts decided before"}
    # nothing moved: the same task open, no second budget worked out, no letter
    assert len(eng.history(cid)) == before and task(eng, cid, "impact_assessment")["id"] == impact["id"]
    assert len(letters(eng, cid, "budget_letter")) == 1
    assert eng.incidents() == []


def test_carry_one_and_end_the_other_the_budget_and_the_letter_follow(eng):  # noqa: F811
    cid = to_reassessment(eng)
    complete(eng, cid, "impact_assessment", {"earlier_uplift_decisions": [
        {"reason": "Night sitting", "decision": "carry"},
        {"reason": "Two carers for hoisting", "decision": "end", "why_ended": "Peter now moves with one carer."}]})
    out = calls(eng, cid, "personal_budget")[-1]["output"]
    assert out["final_amount"] == "10872.73"  # £8,872.73 + the carried £2,000.00
    assert out["uplifts"] == [{**NIGHT, "amount": "2000.00", "decided_at": START.isoformat()}]  # decided then
    assert out["comparison"]["uplifts_ended"] == [{"reason": "Two carers for hoisting", "amount": "1000.00",
                                                   "decided_at": START.isoformat(),
                                                   "why_ended": "Peter now moves with one carer."}]
    [_, letter] = letters(eng, cid, "budget_letter")
    assert "We added money for needs the scores do not cover: - Night sitting: £2,000.00 a year" in letter
    assert ("This is no longer included: - Two carers for hoisting: £1,000.00 a year. Peter now moves with one "
            "carer.") in letter
    assert "Your budget goes down from £28,509.09 to £10,872.73 a year" in letter
    assert eng.get_case(cid)["data"]["personal_budget"]["uplifts"] == out["uplifts"]
    assert completed_route(eng, cid)[-3:] == ["assess_needs", "score_needs", "impact_assessment"]


def test_change_one_carry_the_other_and_add_a_new_one(eng):  # noqa: F811
    cid = to_reassessment(eng)
    complete(eng, cid, "impact_assessment", {
        "earlier_uplift_decisions": [
            {"reason": "Night sitting", "decision": "change", "amount": 2500.5,
             "why_changed": "He now needs sitting on two more nights"},
            {"reason": "Two carers for hoisting", "decision": "carry"}],
        "uplifts": [{"reason": "Sensory equipment", "amount": 300}]})
    out = calls(eng, cid, "personal_budget")[-1]["output"]
    assert out["final_amount"] == "12673.23"  # 8,872.73 + 2,500.50 + 1,000.00 + 300.00
    assert out["uplifts"] == [
        {"reason": "Night sitting", "amount": "2500.50", "why": "He now needs sitting on two more nights",
         "decided_at": LATER.isoformat()},
        {"reason": "Two carers for hoisting", "amount": "1000.00", "decided_at": START.isoformat()},
        {"reason": "Sensory equipment", "amount": "300.00", "decided_at": LATER.isoformat()}]
    assert out["comparison"]["uplifts_ended"] == []
    [_, letter] = letters(eng, cid, "budget_letter")
    assert ("We changed this amount: - Night sitting: £2,500.50 a year, was £2,000.00. He now needs sitting on two "
            "more nights.") in letter
    assert "no longer included" not in letter
    assert "Sensory equipment: £300.00 a year" in letter and "Two carers for hoisting: £1,000.00 a year" in letter
    assert problems(calls(eng, cid, "budget_letter")[-1]["output"]["body"], "budget", "Mr Clarke") == []


def test_a_first_budget_still_needs_at_least_one_uplift(eng):  # noqa: F811
    cid = start(eng).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras({"impact_assessment_needed": True}, personal_care="high", nutrition="low"))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "impact_assessment", {"notes": "nothing"})
    assert _errors(err) == {"uplifts": "'uplifts' is required"}
    with pytest.raises(ValidationError) as err:  # and there is nothing earlier to decide
        complete(eng, cid, "impact_assessment", {"uplifts": [HOIST], "earlier_uplift_decisions": [
            {"reason": "Night sitting", "decision": "carry"}]})
    assert _errors(err) == {
        "earlier_uplift_decisions/0/reason": "“Night sitting” is not one of the uplifts decided before"}


# ---------------------------------------------------------------- the handler and the form keyword


def test_the_handler_refuses_decisions_that_leave_an_earlier_uplift_out() -> None:
    previous = {"final_amount": "30000", "decided_at": "2030-01-01T09:00:00+00:00",
                "uplifts": [{"reason": "Night sitting", "amount": "5000.00"}]}
    with pytest.raises(ValueError, match="the earlier uplift “Night sitting” has no decision"):
        personal_budget(CTX, NEEDS, previous=previous, decisions=[])
    with pytest.raises(ValueError, match=r"decisions\[0\]\.decision must be one of"):
        personal_budget(CTX, NEEDS, previous=previous, decisions=[{"reason": "Night sitting", "decision": "drop"}])
    carried = personal_budget(CTX, NEEDS, previous=previous,
                              decisions=[{"reason": "Night sitting", "decision": "carry"}])
    # no decided_at of its own: the earlier budget's day
    assert carried["uplifts"] == [{"reason": "Night sitting", "amount": "5000.00",
                                   "decided_at": "2030-01-01T09:00:00+00:00"}]
    assert carried["final_amount"] == "22745.45"  # 17,745.45 + 5,000.00


def test_a_form_with_a_malformed_decide_each_is_refused(tmp_path):
    import json

    (tmp_path / "bad.schema.json").write_text(json.dumps({"type": "object", "properties": {
        "earlier": {"type": "array", "x-decideEach": {"variable": "x.y", "key": "reason", "noun": "uplift"},
                    "items": {"type": "object", "properties": {"reason": {"type": "string"}}}}}}))
    with pytest.raises(Exception, match=r"'earlier' must be an array of objects with 'reason' and 'decision'"):
        FormLibrary.from_folder(tmp_path)


# ---------------------------------------------------------------- in the browser


@pytest.fixture
def app(eng):  # noqa: F811
    create_demo_users(eng)
    return create_app(eng, run_timers=False)


def test_the_page_shows_each_earlier_uplift_and_refuses_to_go_on_until_each_is_decided(eng, app):  # noqa: F811
    cid = to_reassessment(eng)
    impact = task(eng, cid, "impact_assessment")
    eng.claim(impact["id"], SW)
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, SW, demo_password("social_worker"))
        page.goto(f"{base}/tasks/{impact['id']}")
        earlier = page.locator("#f-earlier_uplift_decisions")
        # each earlier uplift must be decided: not labelled optional; new ones are optional at a reassessment
        assert earlier.locator("legend").first.inner_text().strip() == "Uplifts in the earlier budget"
        assert page.locator("#f-uplifts legend").first.inner_text().strip() == "Uplifts (optional)"
        first = " ".join(page.locator("#f-earlier_uplift_decisions-0").inner_text().split())
        assert first.startswith("Night sitting")
        for text in ("Uplift Night sitting", "Amount £2,000.00 a year (£38.46 a week)",
                     "Why Peter gets up and wanders at night", "Decided 3 March 2031"):
            assert text in first, first
        second = " ".join(page.locator("#f-earlier_uplift_decisions-1").inner_text().split())
        assert "Amount £1,000.00 a year (£19.23 a week)" in second and "Why Not recorded" in second
        # given, not added or removed
        assert earlier.get_by_role("button").count() == 0
        run_axe(page, "impact assessment with earlier uplifts")

        # nothing decided: the error summary names each uplift, focus on it
        page.get_by_role("button", name="Complete task").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.title().startswith("Error: ")
        assert page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')")
        summary = [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]
        assert summary == ["Night sitting: select what happens to this uplift in the new budget",
                           "Two carers for hoisting: select what happens to this uplift in the new budget"]
        run_axe(page, "impact assessment with errors")

        # by keyboard: follow the first error, carry it; end the second with why
        page.locator(".govuk-error-summary a").first.focus()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "f-earlier_uplift_decisions-0-decision-0"
        page.keyboard.press("Space")  # carry
        page.locator("#f-earlier_uplift_decisions-1-decision-2").focus()
        page.keyboard.press("Space")  # end it: the reason is asked under it
        assert page.locator("#f-earlier_uplift_decisions-1-why_ended").is_visible()
        page.locator("#f-earlier_uplift_decisions-1-why_ended").focus()
        page.keyboard.type("Peter now moves with one carer")
        page.get_by_role("button", name="Complete task").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{base}/tasks?view=mine", page.inner_text("main")
    out = calls(eng, cid, "personal_budget")[-1]["output"]
    assert (out["final_amount"], [u["reason"] for u in out["uplifts"]]) == ("10872.73", ["Night sitting"])
    assert "Two carers for hoisting: £1,000.00 a year. Peter now moves with one carer." in letters(
        eng, cid, "budget_letter")[-1]


def test_a_first_impact_assessment_page_has_no_earlier_uplifts_section(eng, app):  # noqa: F811
    cid = start(eng).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras({"impact_assessment_needed": True}, personal_care="high", nutrition="low"))
    impact = task(eng, cid, "impact_assessment")
    eng.claim(impact["id"], SW)
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, SW, demo_password("social_worker"))
        page.goto(f"{base}/tasks/{impact['id']}")
        assert page.locator("#f-earlier_uplift_decisions").count() == 0
        # the new uplifts are required here: not labelled optional
        assert page.locator("#f-uplifts legend").first.inner_text().strip() == "Uplifts"
        assert page.get_by_role("button", name="Add another uplift").count() == 1
        with page.expect_navigation():
            page.get_by_role("button", name="Complete task").click()
        assert [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()] == [
            "Enter at least one uplift"]
        run_axe(page, "first impact assessment with an error")
