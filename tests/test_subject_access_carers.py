"""Subject access for a carer (UK GDPR Art. 15; docs/security.md "Subject access and rectification"): a carer's
assessment and support plan are the carer's own personal data, but they are held on the record of the person
cared for. When the worker gave the carer's own case reference, the carer's export must hold them — from every
person they care for — and nothing else of those people's records. On SQLite and PostgreSQL."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from api.app import create_app
from api.demo_users import demo_password, demo_username
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import (
    SW,
    api_client,
    casework_engine,
    complete,
    engine_on_file,
    known_case,
    page_client,
)
from tests.test_carers import PROCESSES, carer_plan
from tests.test_carers_pages import two_cases
from tests.test_process_assessment_to_review import carer_assessment

REASON = "SAR 2031/0012 from Susan Clarke, received by e-mail"
EDNA = {"name": "Edna Marsh", "address": ["3 Quay Row", "Northtown", "NS1 1AA"], "salutation": "Mrs Marsh"}


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES, users=True)


def _assess_susan(eng, app, case_id: int, relationship: str, own_ref: str) -> None:
    r = api_client(app, "social_worker").post(f"/api/cases/{case_id}/actions/carers_assessment", json={"data": {
        "carer_name": "Susan Clarke", "relationship": relationship, "carer_case_reference": own_ref}})
    assert r.status_code == 201, r.text
    complete(eng, case_id, "assess_carer", carer_assessment(), actor=SW)


def test_a_carers_export_holds_her_assessments_on_the_records_of_both_people_she_cares_for(eng):
    app = create_app(eng, run_timers=False)
    peter, own = two_cases(eng)  # Susan cares for Peter, and has her own case (she contacted us herself)
    edna = known_case(eng, EDNA, contact_date="2031-03-03")  # ... and for her neighbour Edna
    own_ref = eng.get_case(own)["reference"]
    _assess_susan(eng, app, peter, "daughter", own_ref)
    complete(eng, peter, "plan_carer_support", carer_plan(), actor=SW)
    _assess_susan(eng, app, edna, "neighbour", own_ref.lower())
    refs = {cid: eng.get_case(cid)["reference"] for cid in (peter, edna)}
    dpo = api_client(app, "data_protection")
    r = dpo.post(f"/api/cases/{own}/subject-access", json={"reason": REASON})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [c["reference"] for c in doc["cases"]] == [own_ref]  # her own case; Peter's and Edna's are not hers
    carer = doc["as_a_carer"]
    assert [(c["case_reference"], c["cared_for"], c["recorded_as"]["relationship"]) for c in carer] == [
        (refs[peter], "Peter Clarke", "daughter"), (refs[edna], "Edna Marsh", "neighbour")]
    assert [[f["form"] for f in c["forms"]] for c in carer] == [
        ["carers_assessment", "carers_support_plan"], ["carers_assessment"]]
    first = carer[0]["forms"][0]
    assert first["answers"]["wellbeing_impact"]["reason"] == "Susan is not sleeping and feels isolated"
    assert not any(f["about_someone_else"] for c in carer for f in c["forms"])
    # nothing of Peter's or Edna's own records: their needs assessments, their addresses, their notes
    assert "12 Mill Lane, Northtown" not in str(carer) and "3 Quay Row" not in r.text
    assert not any(f["form"] == "needs_assessment" for c in carer for f in c["forms"])
    # the officer read those records: the export is in their access logs and histories too
    for cid in (peter, edna):
        [event] = [e for e in eng.history(cid) if e["type"] == "person.subject_access_exported"]
        assert event["actor"] == "data-protection" and own_ref in event["data"]["cases"]
    page, csrf = page_client(app, "data_protection")
    request_page = page.get(f"/cases/{own}/subject-access").text  # the officer sees what the export will cover
    assert f"{refs[peter]}, caring for Peter Clarke" in request_page
    assert f"{refs[edna]}, caring for Edna Marsh" in request_page
    pdf = page.post(f"/cases/{own}/subject-access", data={"csrf_token": csrf, "reason": REASON, "format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf", pdf.text
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages).split())
    assert "As a carer" in text and "Peter Clarke" in text and "Edna Marsh" in text
    assert "Susan is not sleeping and feels isolated" in text and "3 Quay Row" not in text


def test_the_request_page_lists_the_records_she_is_a_carer_on_in_the_browser(tmp_path):
    """The officer sees, before exporting, which records the carer's forms come from: keyboard only, axe."""
    with engine_on_file(tmp_path, PROCESSES, users=True) as eng:
        app = create_app(eng, run_timers=False)
        peter, own = two_cases(eng)
        _assess_susan(eng, app, peter, "daughter", eng.get_case(own)["reference"])
        with live_server(app) as base, launch() as browser:
            ctx = browser.new_context(bypass_csp=True)
            page = ctx.new_page()
            sign_in(page, base, demo_username("data_protection"), demo_password("data_protection"), then="/home")
            page.goto(f"{base}/subject-access")
            page.get_by_label("Case reference").fill(eng.get_case(own)["reference"])
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/cases/{own}/subject-access")
            assert page.get_by_role("heading", name="As a carer").is_visible()
            assert page.inner_text("#as-a-carer") == f"{eng.get_case(peter)['reference']}, caring for Peter Clarke"
            run_axe(page, "subject access request page of a carer")
            ctx.close()
