"""The evidence pack pages (api/evidence.py): the reason form, the download, who may, what is logged.

With TestClient on SQLite and PostgreSQL, and in headless Chromium (tests/browser.py): the auditor
finds the link on the case record, is told to give a reason, gives one using the keyboard only,
downloads the pack and its manifest matches its files; axe-core checks the form and its error state.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile

import pytest
from sqlalchemy import select

from api.auth import case_access_log
from tests import test_api_cases
from tests.browser import launch, live_server, run_axe, sign_in
from tests.test_api_cases import PASSWORD
from tests.test_pages_case import _client

REASON = "Safeguarding adults review SAR-2031-07: the board's reviewer asked for the case history"


world = test_api_cases.world  # (eng, app, cases): Joan's and Peter's case records (a fixture)


def _exports(eng, case_id: int) -> list[dict]:
    """The case's access log lines for exports, as stored (user, reason, page, outcome)."""
    with eng.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(case_access_log).where(case_access_log.c.case_id == case_id,
                                          case_access_log.c.action == "export").order_by(case_access_log.c.id))]


def _check_zip(content: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(files["manifest.json"])
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"], entry["name"]
    assert {e["name"] for e in manifest["files"]} == {"evidence.pdf", "history.json", "chain-heads.json", "README.txt",
                                                      "verify.py"}
    assert files["evidence.pdf"].startswith(b"%PDF-")
    return manifest


def test_the_form_the_missing_reason_and_the_download(world):
    eng, app, cases = world
    peter = cases["peter"]
    ref = eng.get_case(peter)["reference"]
    client, csrf = _client(app, "audrey")
    assert 'id="export-evidence"' in client.get(f"/cases/{peter}").text
    form = client.get(f"/cases/{peter}/evidence")
    assert form.status_code == 200
    assert "Why are you exporting this case?" in form.text and ref in form.text

    for blank in ("", "   "):
        r = client.post(f"/cases/{peter}/evidence", data={"csrf_token": csrf, "reason": blank})
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("text/html")
        assert "<title>Error: " in r.text
        assert '<a href="#reason">Enter why you are exporting this case</a>' in r.text
        assert 'id="reason-error"' in r.text
    assert _exports(eng, peter) == []

    r = client.post(f"/cases/{peter}/evidence", data={"reason": REASON})  # no CSRF token
    assert r.status_code == 403 and _exports(eng, peter) == []

    r = client.post(f"/cases/{peter}/evidence", data={"csrf_token": csrf, "reason": REASON})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == f'attachment; filename="evidence-{ref}-20310303.zip"'
    assert r.headers["cache-control"] == "no-store"
    manifest = _check_zip(r.content)
    assert manifest["reason"] == REASON
    [entry] = _exports(eng, peter)
    assert (entry["user"], entry["reason"], entry["outcome"], entry["page"]) == (
        "audrey", REASON, "allowed", f"/cases/{peter}/evidence")


def test_a_team_manager_may_export_and_casework_roles_may_not(world):
    eng, app, cases = world
    joan = cases["joan"]
    mary, mary_csrf = _client(app, "mary")
    assert 'id="export-evidence"' in mary.get(f"/cases/{joan}").text
    r = mary.post(f"/cases/{joan}/evidence", data={"csrf_token": mary_csrf, "reason": REASON})
    assert r.status_code == 200 and r.content.startswith(b"PK")

    rosa, rosa_csrf = _client(app, "rosa")  # works on Joan's case: may read it, not export it
    page = rosa.get(f"/cases/{joan}")
    assert page.status_code == 200 and "export-evidence" not in page.text
    assert rosa.get(f"/cases/{joan}/evidence").status_code == 403
    r = rosa.post(f"/cases/{joan}/evidence", data={"csrf_token": rosa_csrf, "reason": REASON})
    assert r.status_code == 403 and "team managers and auditors" in r.text
    assert not r.content.startswith(b"PK")

    sam, sam_csrf = _client(app, "sam")  # no task on Joan's case and never worked on it
    r = sam.post(f"/cases/{joan}/evidence", data={"csrf_token": sam_csrf, "reason": REASON})
    assert r.status_code == 403 and "<h1" in r.text
    assert [(a["user"], a["outcome"]) for a in _exports(eng, joan)] == [
        ("mary", "allowed"), ("rosa", "refused"), ("rosa", "refused"), ("sam", "refused")]


def test_unknown_cases_and_signed_out_visitors(world):
    eng, app, cases = world
    client, csrf = _client(app, "audrey")
    assert client.get("/cases/999999/evidence").status_code == 404
    assert client.post("/cases/999999/evidence", data={"csrf_token": csrf, "reason": REASON}).status_code == 404
    assert client.get("/cases/abc/evidence").status_code in (404, 422)
    from fastapi.testclient import TestClient

    anon = TestClient(app, follow_redirects=False)
    r = anon.post(f"/cases/{cases['peter']}/evidence", data={"reason": REASON})
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"
    assert _exports(eng, cases["peter"]) == []


# ---------------------------------------------------------------------- in the browser
@pytest.fixture
def server(world):
    eng, app, cases = world
    with live_server(app) as base:
        yield base, eng, cases


def test_the_auditor_downloads_the_pack_by_keyboard_and_checks_its_manifest(server, tmp_path):
    base, eng, cases = server
    peter = cases["peter"]
    with launch() as browser:
        context = browser.new_context(accept_downloads=True, bypass_csp=True)  # axe is an injected script
        page = context.new_page()
        sign_in(page, base, "audrey", PASSWORD, then=None)
        page.goto(f"{base}/cases/{peter}")
        page.locator("#export-evidence").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{peter}/evidence")
        run_axe(page, "evidence form")

        page.locator("#export").focus()
        page.keyboard.press("Enter")  # no reason yet
        page.locator(".govuk-error-summary").wait_for()
        assert "Enter why you are exporting this case" in page.locator(".govuk-error-summary").inner_text()
        assert page.title().startswith("Error: ")
        run_axe(page, "evidence form with an error")
        page.locator(".govuk-error-summary a").focus()
        page.keyboard.press("Enter")  # the summary's link takes the keyboard to the textarea
        assert page.evaluate("() => document.activeElement.id") == "reason"
        page.keyboard.type(REASON)
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "export"
        with page.expect_download() as info:
            page.keyboard.press("Enter")
        download = info.value
        assert re.fullmatch(r"evidence-CASE-\d{6}-20310303\.zip", download.suggested_filename)
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        context.close()
    manifest = _check_zip(target.read_bytes())
    assert manifest["exported_by"]["username"] == "audrey" and manifest["reason"] == REASON
    assert [e["reason"] for e in _exports(eng, peter)] == [REASON]
