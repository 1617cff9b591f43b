"""The subject access pages (api/subject_access.py) in a real browser: a data protection officer goes from the
service navigation to the find page, types the case reference, reaches Joan Barker's request page, sends it
without a reference (error summary), then downloads the JSON and the PDF — all by keyboard, axe-core checking
each page against WCAG 2.1 A/AA. The world is tests/test_subject_access.py's (Joan's two cases)."""

from __future__ import annotations

import io
import json

import pytest
from pypdf import PdfReader

from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.test_api_cases import PASSWORD
from tests.test_subject_access import REASON, _world


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    eng, app, cases = _world(f"sqlite:///{tmp_path_factory.mktemp('sar-pages') / 'carepath.db'}")
    with live_server(app) as base:
        yield base, eng, cases
    eng.db.dispose()


def test_a_data_protection_officer_exports_joans_information_by_keyboard(server, tmp_path):
    base, eng, cases = server
    joan, later = cases["joan"], cases["joan_later"]
    ref, later_ref = eng.get_case(joan)["reference"], eng.get_case(later)["reference"]
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with launch() as browser:
        context = browser.new_context(accept_downloads=True, bypass_csp=True)  # axe is an injected script
        page = context.new_page()
        sign_in(page, base, "dora", PASSWORD, then="/home")
        run_axe(page, "home of a data protection officer")
        link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Subject access")
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/subject-access")
        run_axe(page, "subject access: find")
        page.locator("#reference").focus()
        page.keyboard.type(ref)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}/subject-access")
        assert page.locator("h1").inner_text() == "Subject access request"
        listed = page.locator("#cases").inner_text()
        assert listed.count("CASE-") == 2 and ref in listed and later_ref in listed
        assert "Review the export before you release it" in page.locator(".govuk-warning-text").inner_text()
        run_axe(page, "subject access request")

        page.locator("#download-pdf").focus()
        page.keyboard.press("Enter")  # no reference yet
        page.locator(".govuk-error-summary").wait_for()
        assert page.title().startswith("Error: ")
        run_axe(page, "subject access request with an error")
        page.locator(".govuk-error-summary a").focus()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "reason"
        page.keyboard.type(REASON)
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "download-pdf"
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "download-json"
        with page.expect_download() as info:
            page.keyboard.press("Enter")
        download = info.value
        assert download.suggested_filename == f"subject-access-{ref}-20310303.json"
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        page.locator("#download-pdf").focus()
        with page.expect_download() as info:
            page.keyboard.press("Enter")
        pdf = tmp_path / info.value.suggested_filename
        info.value.save_as(pdf)
        context.close()
    doc = json.loads(target.read_text())
    assert [c["reference"] for c in doc["cases"]] == [ref, later_ref] and doc["request"] == REASON
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert "Information held about Joan Barker" in " ".join(text.split())
    assert [e["data"]["format"] for e in eng.history(joan) if e["type"] == "person.subject_access_exported"] == [
        "json", "pdf"]
