"""Starting a carer's assessment from a case record for a carer known to us in their own right, and the carer's
task pages (issue 10: "a carer's assessment for an unknown carer" is bad input — a clear error, nothing stored).
JSON API and pages on SQLite and PostgreSQL; a browser journey with axe on each page, keyboard only."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from api.demo_users import demo_username
from tests.browser import launch, live_server, run_axe
from tests.case_helpers import cld_full
from tests.casework_helpers import (
    SW,
    action_token,
    api_client,
    casework_engine,
    known_case,
    page_client,
    signed_in_page,
)
from tests.test_carers import ANN, PROCESSES, carer_plan
from tests.test_process_assessment_to_review import PETER, carer_assessment, complete, open_tasks


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES, users=True)


@pytest.fixture
def app(eng):
    return create_app(eng, run_timers=False)


def two_cases(eng) -> tuple[int, int]:
    """Peter's case (assessed: Susan cares for him) and Susan's own case (she contacted us about herself)."""
    peter = known_case(eng, PETER, contact_date="2031-03-03")
    susan = {"name": "Susan Clarke", "address": "12 Mill Lane, Northtown, NS2 4BB", "nhs_number": "4857773456"}
    own = eng.start("carers_assessment", actor=SW, data={"name": susan["name"], "person": susan,
                                                        "carer_self_contact": True}).case_id
    eng.update_case_record(own, {"person": susan}, actor=SW, reason="recorded at the contact")
    return peter, own


def stored(eng, cid) -> tuple[int, int]:
    return len(eng.history(cid)), len(eng.get_case(cid)["instances"])


@pytest.mark.parametrize("reference, message", [
    ("CASE-999999", "There is no case CASE-999999: check the carer's own case reference, or leave it blank"),
    ("CASE-000001", "The carer's own case reference must not be this case's"),
    ("CASE-000003", "Case CASE-000003 is not about Susan Clarke: check the carer's name and their case reference"),
    ("CASE-0000\x0702", "Carer case reference must not contain control characters"),  # refused before the route
])
def test_a_carers_assessment_for_an_unknown_carer_is_refused_naming_the_field_and_nothing_is_stored(
        eng, app, reference, message):
    peter, _own = two_cases(eng)
    eng.start("carers_assessment", actor=SW, data={"name": ANN["name"], "person": ANN, "carer_self_contact": True})
    before = stored(eng, peter)
    r = api_client(app, "social_worker").post(f"/api/cases/{peter}/actions/carers_assessment", json={"data": {
        "carer_name": "Susan Clarke", "relationship": "daughter", "carer_case_reference": reference}})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"].rsplit("/", 1)[-1] == "carer_case_reference" and error["message"].startswith(message), error
    assert stored(eng, peter) == before


def test_a_carer_known_in_their_own_right_keeps_their_own_id_on_the_cared_for_persons_case(eng, app):
    peter, own = two_cases(eng)
    r = api_client(app, "social_worker").post(f"/api/cases/{peter}/actions/carers_assessment", json={"data": {
        "carer_name": "Susan  Clarke", "relationship": "daughter", "carer_case_reference": "case-000002"}})
    assert r.status_code == 201, r.text
    assert [(t["element_id"], t["team"]) for t in r.json()["tasks"]] == [("assess_carer", "social_work")]
    [started] = [e["data"]["data"] for e in eng.history(peter) if e["type"] == "instance.started"
                 and e["data"]["process_id"] == "carers_assessment"]
    assert started == {"person": {"name": "Susan  Clarke", "relationship": "daughter", "case_reference": "CASE-000002"},
                       "cared_for": "Peter Clarke", "contact_date": "2031-03-03", "carer_self_contact": False}
    complete(eng, peter, "assess_carer", carer_assessment(), actor=SW)
    [row] = [r for r in cld_full(eng, peter) if r["process_id"] == "carers_assessment"]
    assert (row["local_person_id"], row["cared_for_person_id"], row["client_type"]) == (
        "CASE-000002", "CASE-000001", "Carer")
    assert own != peter


def test_the_carer_action_page_asks_for_the_carers_own_reference_and_names_an_unknown_one(eng, app):
    peter, _own = two_cases(eng)
    sw, csrf = page_client(app, "social_worker")
    form = sw.get(f"/cases/{peter}/actions/carers_assessment").text
    assert 'for="carer_case_reference"' in form and "Carer&#39;s own case reference (optional)" in form
    token = action_token(form)
    before = stored(eng, peter)
    r = sw.post(f"/cases/{peter}/actions/carers_assessment", data={
        "csrf_token": csrf, "action_token": token, "carer_name": "Susan Clarke", "relationship": "daughter",
        "carer_case_reference": "CASE-424242"})
    assert r.status_code == 422
    assert 'href="#carer_case_reference"' in r.text and "There is no case CASE-424242" in r.text
    assert 'value="CASE-424242"' in r.text  # what was typed is kept
    assert stored(eng, peter) == before


def test_a_social_worker_starts_susans_assessment_from_peters_record_and_plans_her_support_in_the_browser(eng, app):
    peter, _own = two_cases(eng)
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, SW, "social_worker")
        page.goto(f"{base}/cases/{peter}/actions/carers_assessment")
        run_axe(page, "start a carer's assessment")
        page.get_by_label("Carer's full name").fill("Susan Clarke")
        page.get_by_label("Relationship to Peter Clarke").fill("daughter")
        page.get_by_label("Carer's own case reference (optional)").fill("CASE-999999")
        page.get_by_label("Carer's own case reference (optional)").press("Tab")
        page.keyboard.press("Enter")  # the button, by keyboard
        page.wait_for_selector(".govuk-error-summary")
        assert "There is no case CASE-999999" in page.inner_text(".govuk-error-summary")
        run_axe(page, "start a carer's assessment with an unknown carer")
        page.get_by_label("Carer's own case reference (optional)").fill("CASE-000002")
        page.get_by_label("Carer's own case reference (optional)").press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*saved=action_carers_assessment"))
        assert "Start a carer's assessment: done" in page.inner_text(".govuk-notification-banner")

        complete(eng, peter, "assess_carer", carer_assessment(), actor=SW)
        [plan_task] = [t for t in open_tasks(eng, peter) if t["element_id"] == "plan_carer_support"]
        page.goto(f"{base}/tasks/{plan_task['id']}")
        assert "The carer&#39;s budget" in page.content() or "The carer's budget" in page.inner_text("main")
        assert "£600.00" in page.inner_text("main")  # the budget the plan is for, shown above the questions
        run_axe(page, "plan the carer's support")

        complete(eng, peter, "plan_carer_support", carer_plan(months=6), actor=SW)
        complete(eng, peter, "sign_off_carer_plan", {"signed_off": True}, actor=demo_username("team_manager"))
        page.goto(f"{base}/cases/{peter}")
        carers = page.get_by_label("Carer Susan Clarke").inner_text()
        assert "Eligible for support as a carer, decided on 3 March 2031 (support needed: moderate)" in carers
        assert "£600.00 a year, the carer's own personal budget" in carers and "next review 3 September 2031" in carers
        run_axe(page, "case record with the carer's plan")
        ctx.close()
