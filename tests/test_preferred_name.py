"""The person's preferred name (issue 11): asked at the front door ("What would they like to be called?"), kept
on the person, shown on the case record, correctable there, checked like a name (NFC; hidden characters
refused), and the name the letters greet them by. Real diagrams, handlers and forms on the simulated clock;
the contact page and the case record in a real browser, keyboard and axe-core checked."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from api.demo_users import demo_username
from engine.errors import ValidationError
from tests.browser import launch, live_server, run_axe
from tests.casework_helpers import casework_engine, complete, contact, diagrams, signed_in_page
from tests.test_process_assessment_to_review import assessment, letters

PROCESSES = ("front_door", "screening.dmn", "urgent_response", "equipment", "safeguarding", "carers_assessment",
             "carers_support_plan", "reablement", "hospital_follow_up", "needs_assessment", "personal_budget",
             "financial_assessment", "support_plan", "review", "direct_payment_review")
SW = demo_username("social_worker")
ADVISOR = demo_username("front_door_advisor")
# likely eligible, but reablement is not appropriate: straight to a needs assessment
TO_ASSESSMENT = dict(outcomes_unable=["personal_hygiene", "nutrition"], reablement_appropriate=False,
                     reablement_not_appropriate_because="long_term_condition",
                     reason="Motor neurone disease: needs are increasing")
ELIGIBLE = ("personal_hygiene", "managing_nutrition", "using_home_safely")


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams(*PROCESSES), users=True)


def record_contact(eng, form):
    res = eng.start("front_door", actor=ADVISOR)
    [task] = [t for t in res.ready_tasks if t["element_id"] == "record_contact"]
    return res.case_id, task["id"], form


def assess(eng, cid):
    complete(eng, cid, "assess_needs", assessment(*ELIGIBLE), actor=SW)
    [letter] = letters(eng, cid, "eligibility_letter")
    return letter


def test_a_contact_with_a_preferred_name_gets_an_eligibility_letter_that_greets_them_by_it(eng):
    cid, task_id, form = record_contact(eng, contact(person_name="Joanna Barker", person_preferred_name="  Jo ",
                                                     **TO_ASSESSMENT))
    eng.complete_task(task_id, form, actor=ADVISOR)
    person = eng.get_case(cid)["data"]["person"]
    assert (person["name"], person["preferred_name"]) == ("Joanna Barker", "Jo")  # kept tidy, like a name
    letter = assess(eng, cid)
    assert "Dear Jo," in letter and "Dear Joanna" not in letter
    assert "Joanna Barker" in letter  # the address block still names her in full


def test_without_a_preferred_name_the_letter_greets_them_by_their_full_name(eng):
    cid, task_id, form = record_contact(eng, contact(person_name="Joanna Barker", **TO_ASSESSMENT))
    eng.complete_task(task_id, form, actor=ADVISOR)
    assert "preferred_name" not in eng.get_case(cid)["data"]["person"]
    assert "Dear Joanna Barker," in assess(eng, cid)


def test_a_preferred_name_is_stored_in_nfc(eng):
    decomposed = "Zoe\u0308"  # "Zoë" typed as Z o e + combining diaeresis
    cid, task_id, form = record_contact(eng, contact(person_preferred_name=decomposed, **TO_ASSESSMENT))
    eng.complete_task(task_id, form, actor=ADVISOR)
    assert eng.get_case(cid)["data"]["person"]["preferred_name"] == "Zo\u00eb"
    assert "Dear Zo\u00eb," in assess(eng, cid)


@pytest.mark.parametrize(("typed", "what"), [("Jo\u200b", "zero-width character U+200B"),
                                              ("\u202eoJ", "bidirectional control character U+202E"),
                                              ("Jo\x07", "control character U+0007")])
def test_a_preferred_name_hiding_characters_is_refused_naming_the_field_and_nothing_is_recorded(eng, typed, what):
    cid, task_id, form = record_contact(eng, contact(person_preferred_name=typed, **TO_ASSESSMENT))
    before = eng.get_case(cid)["data"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task_id, form, actor=ADVISOR)
    [problem] = err.value.errors
    assert problem["field"] == "person/preferred_name"
    assert problem["message"].startswith("Preferred name must only contain characters you can see") and what in \
        problem["message"]
    assert eng.get_case(cid)["data"] == before  # nothing stored
    assert [t["element_id"] for t in eng.list_tasks(case_id=cid)] == ["record_contact"]  # still to do


def test_a_preferred_name_longer_than_100_characters_is_refused(eng):
    cid, task_id, form = record_contact(eng, contact(person_preferred_name="J" * 101, **TO_ASSESSMENT))
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task_id, form, actor=ADVISOR)
    assert [e["field"] for e in err.value.errors] == ["person/preferred_name"]
    cid, task_id, form = record_contact(eng, contact(person_preferred_name="J" * 100, **TO_ASSESSMENT))
    eng.complete_task(task_id, form, actor=ADVISOR)  # at the limit: kept
    assert eng.get_case(cid)["data"]["person"]["preferred_name"] == "J" * 100


# ---------------------------------------------------------------------- in the browser
def test_the_advisor_records_a_preferred_name_and_the_worker_sees_and_corrects_it(eng):
    app = create_app(eng, run_timers=False)
    with live_server(app) as base, launch() as browser:
        ctx, advisor = signed_in_page(browser, base, ADVISOR, "front_door_advisor")
        advisor.get_by_role("link", name="New contact").click()
        advisor.fill("#name", "Joanna Barker")
        advisor.get_by_role("button", name="Search").click()
        advisor.get_by_role("button", name="This is a new person").click()
        advisor.wait_for_url(re.compile(rf"{base}/tasks/[0-9a-f-]+$"))
        assert advisor.locator("h1").inner_text() == "Record the contact"
        label = advisor.locator("label[for='f-person-preferred_name']").inner_text()
        assert label.strip() == "What would they like to be called? (optional)"
        hint = advisor.locator("#f-person-preferred_name-hint")
        assert "Letters to them start with it" in hint.inner_text()
        # keyboard: from the full name, Tab reaches the preferred name next
        advisor.focus("#f-person-name")
        advisor.keyboard.press("Tab")
        assert advisor.evaluate("() => document.activeElement.id") == "f-person-preferred_name"
        advisor.keyboard.type("Jo\u200b")  # pasted with a zero-width space
        advisor.fill("#f-caller-name", "Dr Amy Shah")
        advisor.check("#f-caller-relationship-3")
        advisor.fill("#f-reason", "Motor neurone disease: needs are increasing")
        advisor.fill("#f-person-age", "78")
        advisor.fill("#f-person-address", "4 Mill Lane, Northby")
        advisor.check("#f-person-area-0")
        for outcome in ("personal_hygiene", "nutrition"):
            advisor.check(f"input[name='outcomes_unable'][value='{outcome}']")
        advisor.check("#f-safeguarding_concern-1")
        advisor.check("#f-crisis-1")
        advisor.check("#f-consents_to_referral-0")
        advisor.check("#f-from_hospital-1")
        advisor.check("#f-reablement_appropriate-1")
        advisor.check("input[name='reablement_not_appropriate_because'][value='long_term_condition']")
        run_axe(advisor, "record the contact, preferred name asked")
        with advisor.expect_navigation():
            advisor.get_by_role("button", name="Complete task").click()
        summary = advisor.locator(".govuk-error-summary")
        assert "Preferred name must only contain characters you can see" in summary.inner_text()
        assert "zero-width character U+200B" in summary.inner_text()
        run_axe(advisor, "record the contact, preferred name refused")
        advisor.fill("#f-person-preferred_name", "Jo")
        with advisor.expect_navigation():
            advisor.get_by_role("button", name="Complete task").click()
        assert advisor.locator("h1").inner_text() == "Contact recorded", advisor.locator("main").inner_text()[:1500]
        ctx.close()

        [cid] = [t["case_id"] for t in eng.list_tasks() if t["element_id"] == "assess_needs"]
        assert eng.get_case(cid)["data"]["person"]["preferred_name"] == "Jo"
        ctx, worker = signed_in_page(browser, base, SW, "social_worker")
        worker.goto(f"{base}/cases/{cid}")
        row = worker.locator("#detail-preferred_name")
        assert row.locator("dt").inner_text().strip() == "Preferred name"
        assert row.locator("dd").first.inner_text().strip() == "Jo"
        keys = worker.locator("dl.govuk-summary-list").first.locator("dt").all_inner_texts()
        assert keys[1:3] == ["Full name", "Preferred name"]  # shown beside the full name
        run_axe(worker, "case record with a preferred name")
        change = row.get_by_role("link", name="Change preferred name")
        change.focus()
        with worker.expect_navigation():
            worker.keyboard.press("Enter")
        assert worker.locator("h1").inner_text() == "Change preferred name"
        worker.fill("#value", "Joe\u0301")  # "Joé" typed with a combining accent
        worker.fill("#reason", "She spells it with an accent")
        run_axe(worker, "change preferred name")
        with worker.expect_navigation():
            worker.get_by_role("button", name="Save change").click()
        ctx.close()
    assert eng.get_case(cid)["data"]["person"]["preferred_name"] == "Jo\u00e9"
    complete(eng, cid, "assess_needs", assessment(*ELIGIBLE), actor=SW)
    [letter] = letters(eng, cid, "eligibility_letter")
    assert "Dear Jo\u00e9," in letter


# ---------------------------------------------------------------------- the letter's greeting
def _greeting(person, recorded=None) -> str:
    from dataclasses import replace

    from handlers.letters import eligibility_letter
    from tests.test_handlers_letters import CTX, ELIGIBLE

    ctx = replace(CTX, case_data={"person": recorded}) if recorded is not None else CTX
    body = eligibility_letter(ctx, person, ELIGIBLE)["body"]
    return re.search(r"^Dear (.*),$", body, re.M).group(1)


def test_the_letter_greets_by_the_preferred_name_the_case_record_holds_now():
    started_with = {"name": "Joanna Barker", "preferred_name": "Jo", "address": "4 Mill Lane, Northby"}
    assert _greeting(started_with) == "Jo"
    # corrected on the case record since the process started: the letter follows the record
    assert _greeting(started_with, {"name": "Joanna Barker", "preferred_name": "Joanie"}) == "Joanie"
    assert _greeting(started_with, {"name": "Joanna  Barker"}) == "Joanna Barker"  # removed: the full name
    # a letter to someone else on the case (a carer) keeps their own name
    carer = {"name": "Susan Clarke", "address": "4 Mill Lane, Northby"}
    assert _greeting(carer, {"name": "Joanna Barker", "preferred_name": "Jo"}) == "Susan Clarke"
    # a salutation recorded for the letter still comes first
    assert _greeting({**started_with, "salutation": "Mrs Barker"}, {"name": "Joanna Barker",
                                                                     "preferred_name": "Jo"}) == "Mrs Barker"
