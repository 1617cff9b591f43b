"""The contact form's new questions on the web page (issue 10 item 4): a crisis says what the crisis is, a
carer asking for support for themselves says who they are to the person; the advisor is told every route
started (urgent response, safeguarding, carer's assessment) and the chronology says so. A real browser for
the questions revealed under their answers (keyboard, axe-core WCAG 2.1 AA on each page); the form posted
without JavaScript for the errors and the outcome, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.front_door_world import PASSWORD, build, username
from tests.test_forms_sections import _as_form
from tests.test_front_door_routes import CRISIS, MARY, contact
from tests.test_pages_intake import signin

ROOT = Path(__file__).resolve().parent.parent
EXTRA = ("urgent_response.bpmn", "equipment.bpmn", "carers_assessment.bpmn", "carers_support_plan.bpmn")


@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    eng.deploy([ROOT / "processes" / name for name in EXTRA])
    yield eng, app, people
    eng.db.dispose()


def _contact_task(eng, case_id):
    return next(t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == "record_contact")


def _post(client, csrf, task_id, answers):
    rev = re.search(r'name="revision" value="(\d+)"', client.get(f"/tasks/{task_id}").text).group(1)
    return client.post(f"/tasks/{task_id}", data={"csrf_token": csrf, "revision": rev, "action": "complete",
                                                  **_as_form(answers)})


def _summary(html: str) -> list[str]:
    found = re.search(r'govuk-error-summary__list">(.*?)</ul>', html, re.S)
    return re.findall(r"<a [^>]*>(.*?)</a>", found.group(1)) if found else []


def test_the_new_questions_are_checked_and_the_advisor_sees_every_route_started(world):
    eng, app, people = world
    cid = people["edith"]
    task = _contact_task(eng, cid)
    client, csrf = signin(app, username("front_door_advisor"))
    assert client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf}).status_code == 303
    edith = dict(person_name="Edith Clarke", person_age=87, person_address="4 Mill Lane", person_area="north")

    # a crisis without what it is, a carer without who they are to Edith: named errors, nothing stored
    r = _post(client, csrf, task["id"], contact(**edith, **dict(MARY, carer_relationship=""), crisis=True))
    assert r.status_code == 400 and "Contact recorded" not in r.text
    errors = _summary(r.text)
    assert errors == ["Enter the carer&#39;s relationship to the person they care for",
                                  "Enter what the crisis is"]
    assert [t["element_id"] for t in eng.list_tasks(case_id=cid)] == ["record_contact"]
    assert [i["process_id"] for i in eng.get_case(cid)["instances"]] == ["front_door"]

    # complete: a crisis, a safeguarding concern and Edith's daughter asking for support for herself
    r = _post(client, csrf, task["id"], contact(**edith, **MARY, crisis=True, crisis_detail=CRISIS,
                                                safeguarding_concern=True))
    assert r.status_code == 200, _summary(r.text)
    assert "Contact recorded" in r.text and "Urgent response today" in r.text
    assert "At immediate risk without help today, and a safeguarding concern" in r.text
    also = re.search(r"Also started</dt>(.*?)</dd>", r.text, re.S).group(1)
    assert re.findall(r"<li>(.*?)</li>", also) == [
        "Safeguarding concern: the safeguarding team triages it",
        "Carer&#39;s assessment for Mary Barker, who asks for support as a carer"]
    assert sorted(i["process_id"] for i in eng.get_case(cid)["instances"]) == [
        "carers_assessment", "front_door", "safeguarding", "urgent_response"]
    case = client.get(f"/cases/{cid}").text
    assert "Screening outcome: urgent response today (At immediate risk" in case
    assert "also: safeguarding concern: the safeguarding team triages it; carer&#39;s assessment for Mary" in case


def test_the_questions_revealed_under_crisis_and_carer_in_the_browser_keyboard_and_axe(world):
    eng, app, people = world
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    cid = people["edith"]
    task = _contact_task(eng, cid)
    client, csrf = signin(app, username("front_door_advisor"))
    assert client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf}).status_code == 303
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "front-door-advisor", PASSWORD)
        page.goto(f"{base}/tasks/{task['id']}")
        assert page.locator("h1").inner_text() == "Record the contact"
        # hidden until their answer is chosen (GOV.UK conditional reveal)
        assert not page.locator("#f-crisis_detail").is_visible()
        assert not page.locator("#f-carer_relationship").is_visible()
        run_axe(page, "record the contact")

        page.fill("#f-caller-name", "Mary Barker")
        page.check("#f-caller-relationship-2")  # carer
        page.fill("#f-reason", "Her mother fell this morning and cannot stand; Mary cannot go on alone")
        page.fill("#f-person-name", "Edith Clarke")
        page.fill("#f-person-age", "87")
        page.fill("#f-person-address", "4 Mill Lane")
        page.check("#f-person-area-0")  # north
        page.check("#f-safeguarding_concern-1")
        page.check("#f-consents_to_referral-0")
        page.check("#f-from_hospital-1")

        # keyboard only for the new questions: the radio, then the question it reveals
        page.focus("#f-carer_support_asked-0")
        page.keyboard.press("ArrowDown")  # "the caller cares for this person and asks for support for themselves"
        assert page.is_checked("#f-carer_support_asked-1")
        assert page.locator("#f-carer_relationship").is_visible()
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "f-carer_relationship"
        page.keyboard.type("daughter")
        page.focus("#f-crisis-0")
        page.keyboard.press("Space")
        assert page.is_checked("#f-crisis-0") and page.locator("#f-crisis_detail").is_visible()
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "f-crisis_detail"
        page.keyboard.type(CRISIS)
        run_axe(page, "record the contact, crisis and carer questions revealed")

        page.focus("button[value=complete]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.get_by_role("heading", level=1).inner_text() == "Contact recorded"
        outcome = page.locator("#screening-outcome").inner_text()
        assert "Urgent response today" in outcome
        assert "Carer's assessment for Mary Barker, who asks for support as a carer" in outcome
        assert "Safeguarding" not in outcome  # no concern on this contact
        run_axe(page, "contact recorded with an urgent response and a carer's assessment")
        context.close()
    kids = sorted(i["process_id"] for i in eng.get_case(cid)["instances"])
    assert kids == ["carers_assessment", "front_door", "urgent_response"]
