"""Subject access exports and the rectification trail (api/subject_access.py, docs/security.md "Subject access
and rectification").

Joan Barker's case (tests/test_api_cases.py `build_world`: a front door contact routed to reablement) gets,
through the JSON API, an opening by Mary (team manager), a phone-call note and its correction by Rosa, and a
correction of her phone number with a reason. A second case of Joan's (the same NHS number, a needs assessment) is
restricted to Mary. Peter Clarke is someone else and must never appear in Joan's export.
Expectations are written out by hand from those steps. The PDF's text is read back with pypdf.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from api.access import restrict_case
from api.app import create_app
from api.auth import case_access_log, create_user
from carepath.cli import main as cli_main
from engine.integrity import check_case
from engine.schema import people
from tests.test_api_cases import JOAN_CONTACT, PASSWORD, _complete, build_world, client_for

REASON = "SAR 2031/0007, received 1 March 2031 by letter"
NOTE = "Phoned Joan's daughter Sarah Barker about the visits"
NOTE_FIXED = "Phoned Joan's niece Sarah Barker about the visits"
FIX_REASON = "Joan gave her new number on the phone"


def _world(url: str):
    eng, cases = build_world(url)
    create_user(eng, "dora", PASSWORD, display_name="Dora Vale", roles=["data_protection"], teams=[])
    create_user(eng, "ada", PASSWORD, display_name="Ada Admin", roles=["administrator"], teams=[])
    create_user(eng, "ivy", PASSWORD, display_name="Ivy Grant", roles=["auditor", "data_protection"], teams=[])
    app = create_app(eng, run_timers=False)
    joan = cases["joan"]
    mary, rosa = client_for(app, "mary"), client_for(app, "rosa")
    assert mary.get(f"/api/cases/{joan}").status_code == 200
    first = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "phone_call", "text": NOTE})
    assert first.status_code == 201, first.text
    fixed = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "correction", "text": NOTE_FIXED,
                                                       "corrects": first.json()["id"]})
    assert fixed.status_code == 201, fixed.text
    r = rosa.post(f"/api/cases/{joan}/details", json={"changes": {"phone": "01632 960777"},
                                                      "expected": {"phone": "01632 960555"}, "reason": FIX_REASON})
    assert r.status_code == 200, r.text
    later = eng.create_case("Joan Barker", {"person": {"name": "Joan Barker", "nhs_number": "9434765919",
                                                       "date_of_birth": "1952-06-14"}}, actor="sam")
    eng.start("needs_assessment", case_id=later, actor="sam", data={"name": "Joan Barker"})
    restrict_case(eng, later, ["mary"])
    cases["joan_later"] = later
    return eng, app, cases


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    eng, app, cases = _world(f"sqlite:///{tmp_path_factory.mktemp('sar') / 'carepath.db'}")
    yield eng, app, cases
    eng.db.dispose()


def _rows(eng, case_id: int, action: str = "subject_access") -> list[tuple]:
    with eng.db.engine.connect() as conn:
        return [(r.user, r.outcome, r.reason) for r in conn.execute(
            select(case_access_log).where(case_access_log.c.case_id == case_id, case_access_log.c.action == action)
            .order_by(case_access_log.c.id))]


def _pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())


# ---------------------------------------------------------------------- what the JSON holds (both databases)
def test_the_json_export_holds_joans_cases_notes_history_corrections_and_access_log(db_url):
    eng, app, cases = _world(db_url)
    try:
        joan, later, peter = cases["joan"], cases["joan_later"], cases["peter"]
        with eng.db.engine.connect() as conn:  # the second case is found through the people table's NHS number
            assert conn.execute(select(people.c.nhs_number).where(people.c.case_id == later)).scalar() == "9434765919"
        dora = client_for(app, "dora")
        r = dora.post(f"/api/cases/{joan}/subject-access", json={"reason": REASON})
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        doc = r.json()
        refs = {cid: eng.get_case(cid)["reference"] for cid in (joan, later, peter)}
        assert (doc["format"], doc["version"], doc["request"]) == ("carepath.subject-access", 1, REASON)
        assert doc["exported_by"] == {"username": "dora", "name": "Dora Vale"}
        assert doc["exported_at"] == "2031-03-03T09:00:00+00:00"  # the engine's clock
        assert doc["person"]["name"] == "Joan Barker"
        # both of Joan's cases, the restricted one included; never Peter's
        assert [(c["reference"], c["restricted"]) for c in doc["cases"]] == [(refs[joan], False), (refs[later], True)]
        assert "Peter Clarke" not in r.text and refs[peter] not in r.text
        first = doc["cases"][0]
        details = {p["detail"]: p["value"] for p in first["person"]}
        assert details["phone"] == "01632 960777" and details["address"] == "4 Mill Lane, Northby"
        assert [(n["id"], n["kind"], n["text"], n["corrects"], n["by"]) for n in first["notes"]] == [
            (1, "phone_call", NOTE, None, "rosa"), (2, "correction", NOTE_FIXED, 1, "rosa")]
        # the history: every event of the case chain, in order, in words
        stored = eng.history(joan)[:-1]  # (the last: this export, recorded once the export was made)
        assert [(h["seq"], h["type"]) for h in first["history"]] == [(e["seq"], e["type"]) for e in stored]
        words = [h["what"] for h in first["history"]]
        assert "Record the contact completed by Frank Door" in words
        assert ("Record changed by Rosa Patel: Phone number changed from 01632 960555 to 01632 960777. "
                f"Reason: {FIX_REASON}") in words
        assert [d["what"] for d in first["decisions"]] == [
            "Screening outcome: reablement first (Unable to achieve two or more eligibility outcomes: likely "
            "eligible, reablement first)"]
        # who looked at the record: Mary's opening, Rosa's two notes and her correction — before this export
        assert [(a["user"], a["action"], a["outcome"]) for a in first["access_log"]] == [
            ("mary", "open", "allowed"), ("rosa", "note", "allowed"), ("rosa", "note", "allowed"),
            ("rosa", "correct", "allowed")]
        assert first["access_log"][0]["name"] == "Mary Khan"
        # the rectification trail: the detail and the note
        assert [(c["kind"], c["title"], c["recorded"], c["corrected_to"], c["by"], c["reason"])
                for c in first["corrections"]] == [
            ("detail", "Phone number", "01632 960555", "01632 960777", "rosa", FIX_REASON),
            ("note", "Case note 1", NOTE, NOTE_FIXED, "rosa", "correction recorded as note 2")]
        assert doc["cases"][1]["corrections"] == [] and doc["cases"][1]["notes"] == []
        assert doc["cases"][1]["access_log"] == []
        assert "other people" in doc["third_party_information"]

        # the export itself: an event in each case's own chain, a row in each case's access log, chains intact
        for cid in (joan, later):
            last = eng.history(cid)[-1]
            assert (last["type"], last["actor"], last["data"]) == (
                "person.subject_access_exported", "dora", {"format": "json", "cases": [refs[joan], refs[later]]})
            assert _rows(eng, cid) == [("dora", "allowed", REASON)]
            result = check_case(eng, cid, actor="dora")
            assert result["verified"] and result["replay_ok"], result
        assert _rows(eng, peter) == [] and eng.history(peter)[-1]["type"] != "person.subject_access_exported"
        # a second export shows the first one: in the history and among who looked at the record
        again = dora.post(f"/api/cases/{later}/subject-access", json={"reason": "SAR 2031/0008"}).json()
        assert [c["reference"] for c in again["cases"]] == [refs[joan], refs[later]]
        first_again = again["cases"][0]
        assert first_again["access_log"][-1] == {**first_again["access_log"][-1], "user": "dora",
                                                 "action": "subject_access", "reason": REASON}
        assert first_again["history"][-1]["what"] == (f"Subject access export (JSON) made by Dora Vale, covering "
                                                      f"{refs[joan]}, {refs[later]}")
    finally:
        eng.db.dispose()


# ---------------------------------------------------------------------- who may
def test_only_the_data_protection_role_may_export_and_every_refusal_is_logged(world):
    eng, app, cases = world
    joan, later = cases["joan"], cases["joan_later"]
    before = _rows(eng, joan)
    for who in ("mary", "audrey", "rosa", "sam", "percy", "frank"):
        r = client_for(app, who).post(f"/api/cases/{joan}/subject-access", json={"reason": REASON})
        assert r.status_code == 403, (who, r.text)
        assert "only a data protection officer" in r.json()["message"], who
        assert "Joan" not in r.text
    assert _rows(eng, joan)[len(before):] == [(w, "refused", None) for w in
                                              ("mary", "audrey", "rosa", "sam", "percy", "frank")]
    # a restricted case: 404 to whoever is not named on it (its existence is not told), even a manager's 403
    # would say it exists; Mary is named on it but still may not export
    r = client_for(app, "rosa").post(f"/api/cases/{later}/subject-access", json={"reason": REASON})
    assert r.status_code == 404 and r.json()["message"] == f"no case {later}"
    assert client_for(app, "mary").post(f"/api/cases/{later}/subject-access",
                                        json={"reason": REASON}).status_code == 403
    dora = client_for(app, "dora")
    assert dora.post("/api/cases/987654/subject-access", json={"reason": REASON}).status_code == 404
    r = dora.post(f"/api/cases/{joan}/subject-access", json={"reason": "   "})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = dora.post(f"/api/cases/{joan}/subject-access", json={"reason": "x" * 501})
    assert r.status_code == 422 and "500 characters" in r.json()["errors"][0]["message"]
    assert TestClient(app).post(f"/api/cases/{joan}/subject-access", json={"reason": REASON}).status_code == 401
    # nothing recorded for the refused or invalid requests
    assert [row for row in _rows(eng, joan) if row[1] == "allowed"] == [r for r in before if r[1] == "allowed"]


def test_an_administrator_cannot_give_themselves_the_data_protection_role_alone(world):
    eng, app, cases = world
    ada = client_for(app, "ada")
    r = ada.patch("/api/admin/users/ada", json={"roles": ["administrator", "data_protection"]})
    assert r.status_code == 202, r.text
    assert r.json()["pending_request"]["adds"] == ["data_protection"] and r.json()["roles"] == ["administrator"]
    r = ada.post(f"/api/cases/{cases['joan']}/subject-access", json={"reason": REASON})
    assert r.status_code == 403


# ---------------------------------------------------------------------- the PDF and the pages
def _page_client(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/home").text)
    return client, csrf.group(1) if csrf else ""


def test_the_pdf_has_the_corrections_notes_access_log_and_both_cases(world):
    eng, app, cases = world
    joan, later = cases["joan"], cases["joan_later"]
    client, _ = _page_client(app, "dora")
    page = client.get(f"/cases/{joan}/subject-access")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    refs = [eng.get_case(c)["reference"] for c in (joan, later)]
    assert all(ref in page.text for ref in refs) and "one calendar month" in page.text
    assert "Review the export before you release it" in page.text
    r = client.post(f"/cases/{joan}/subject-access", data={"csrf_token": csrf, "reason": REASON, "format": "pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert re.fullmatch(rf'attachment; filename="subject-access-{refs[0]}-20310303\.pdf"',
                        r.headers["content-disposition"])
    text = _pdf_text(r.content)
    assert "Information held about Joan Barker" in text
    assert f"Case {refs[0]}" in text and f"Case {refs[1]}" in text and f"{refs[1]} (restricted)" in text
    assert "Corrections to your record" in text
    assert (f"Rosa Patel: Phone number — recorded as “01632 960555”, corrected to “01632 960777”. "
            f"Why: {FIX_REASON}") in text
    assert f"Case note 1 — recorded as “{NOTE}”, corrected to “{NOTE_FIXED}”" in text
    assert NOTE in text and NOTE_FIXED in text
    assert "Mary Khan (mary) · open" in text and "Who has looked at your records" in text
    assert "Record the contact completed by Frank Door" in text
    assert "review this export" in text.lower() or "reviews this export" in text
    assert "Peter Clarke" not in text
    assert _rows(eng, joan)[-1] == ("dora", "allowed", REASON)
    assert eng.history(later)[-1]["data"]["format"] == "pdf"

    # no reason: the form again with the error, nothing exported or recorded
    n = len(_rows(eng, joan))
    r = client.post(f"/cases/{joan}/subject-access", data={"csrf_token": csrf, "reason": "", "format": "json"})
    assert r.status_code == 400 and "Enter the request" in r.text and 'href="#reason"' in r.text
    # a reference that cannot be read (zero-width spaces; a right-to-left override): refused the same way
    for unreadable in ("\u200b\u200b\u200b", "SAR \u202e7000/1302"):
        r = client.post(f"/cases/{joan}/subject-access", data={"csrf_token": csrf, "reason": unreadable,
                                                               "format": "json"})
        assert r.status_code == 400 and 'href="#reason"' in r.text, r.text
    assert client_for(app, "dora").post(f"/api/cases/{joan}/subject-access", json={"reason": "\u200b\u200b"}
                                        ).status_code == 422
    r = client.post(f"/cases/{joan}/subject-access", data={"reason": REASON, "format": "json"})  # no CSRF token
    assert r.status_code == 403
    r = client.post(f"/cases/{joan}/subject-access", data={"csrf_token": csrf, "reason": REASON, "format": "xml"})
    assert r.status_code == 400 and "Choose PDF or JSON" in r.text
    assert len(_rows(eng, joan)) == n


def test_the_find_page_takes_a_data_protection_officer_to_the_persons_request_page(world):
    eng, app, cases = world
    joan = cases["joan"]
    ref = eng.get_case(joan)["reference"]
    client, _ = _page_client(app, "dora")
    home = client.get("/home").text
    assert 'href="/subject-access"' in home
    r = client.get("/subject-access", params={"reference": ref.lower()})
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{joan}/subject-access"
    r = client.get("/subject-access", params={"reference": "CASE-999999"})
    assert r.status_code == 404 and "There is no case CASE-999999" in r.text
    assert client.get("/subject-access", params={"reference": ""}).status_code == 400
    assert client.get("/cases/987654/subject-access").status_code == 404
    # from the person's record, for someone who may open it and run subject access requests
    ivy, _ = _page_client(app, "ivy")
    record = ivy.get(f"/cases/{joan}")
    assert record.status_code == 200 and f'href="/cases/{joan}/subject-access"' in record.text
    mary, _ = _page_client(app, "mary")
    assert mary.get("/subject-access").status_code == 403
    assert "/subject-access" not in mary.get(f"/cases/{joan}").text
    r = mary.get(f"/cases/{joan}/subject-access")
    assert r.status_code == 403 and "only a data protection officer" in r.text
    assert mary.get(f"/cases/{cases['joan_later']}/subject-access").status_code == 403
    rosa, _ = _page_client(app, "rosa")
    assert rosa.get(f"/cases/{cases['joan_later']}/subject-access").status_code == 404


def test_opening_a_persons_request_page_is_in_their_access_log(tmp_path):
    """The request page shows the person's name (a restricted case's too): a data protection officer going
    through /cases/1, 2, 3.../subject-access read every person's name, restricted cases included, and nothing
    was recorded. Each opening is now a row in the case's access log, which the person's own export lists."""
    eng, app, cases = _world(f"sqlite:///{tmp_path / 'carepath.db'}")
    try:
        later = cases["joan_later"]  # restricted to Mary
        client, _ = _page_client(app, "dora")
        r = client.get(f"/cases/{later}/subject-access")
        assert r.status_code == 200 and "Joan Barker" in r.text
        assert _rows(eng, later, "subject_access_page") == [("dora", "allowed", None)]
        doc = client_for(app, "dora").post(f"/api/cases/{later}/subject-access", json={"reason": REASON}).json()
        [mine] = [c for c in doc["cases"] if c["id"] == later]
        assert [(a["user"], a["action"], a["page"]) for a in mine["access_log"]] == [
            ("dora", "subject_access_page", f"/cases/{later}/subject-access")]
    finally:
        eng.db.dispose()


# ---------------------------------------------------------------------- rectification
def test_a_correction_needs_a_reason_and_every_correction_path_is_in_the_trail(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa = client_for(app, "rosa")
    before = len(eng.history(joan))
    r = rosa.post(f"/api/cases/{joan}/details", json={"changes": {"address": "9 New Road, Northby"},
                                                      "expected": {"address": "4 Mill Lane, Northby"}, "reason": ""})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    assert len(eng.history(joan)) == before
    assert eng.get_case(joan)["data"]["person"]["address"] == "4 Mill Lane, Northby"
    # Joan calls the front door again: the contact form records her details again, with a new address
    eng.start("front_door", case_id=joan, actor="frank")
    _complete(eng, joan, "record_contact", {**JOAN_CONTACT, "person": {
        **JOAN_CONTACT["person"], "phone": "01632 960777", "address": "9 New Road, Northby"}}, "frank")
    dora = client_for(app, "dora")
    doc = dora.post(f"/api/cases/{joan}/subject-access", json={"reason": REASON}).json()
    trail = [(c["title"], c["recorded"], c["corrected_to"], c["by"], c["reason"])
             for c in doc["cases"][0]["corrections"] if c["kind"] == "detail"]
    assert trail == [("Phone number", "01632 960555", "01632 960777", "rosa", FIX_REASON),
                     ("Address", "4 Mill Lane, Northby", "9 New Road, Northby", "frank",
                      "recorded again at the task “Record the contact”")]
    client, _ = _page_client(app, "dora")
    page = client.get(f"/cases/{joan}/subject-access").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    pdf = client.post(f"/cases/{joan}/subject-access", data={"csrf_token": csrf, "reason": REASON, "format": "pdf"})
    text = _pdf_text(pdf.content)
    assert ("Frank Door: Address — recorded as “4 Mill Lane, Northby”, corrected to “9 New Road, Northby”. "
            "Why: recorded again at the task “Record the contact”") in text


# ---------------------------------------------------------------------- the command line
def test_the_command_writes_both_files_and_refuses_other_roles(world, tmp_path, capsys):
    eng, app, cases = world
    url = str(eng.db.engine.url.render_as_string(hide_password=False))
    ref = eng.get_case(cases["joan"])["reference"]
    out = tmp_path / "sar"
    assert cli_main(["subject-access", "--person", ref, "--out", str(out), "--as", "dora", "--reason", REASON,
                     "--db", url]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"subject-access-{ref}-20310303.json", f"subject-access-{ref}-20310303.pdf"]
    doc = json.loads((out / files[0]).read_text())
    assert doc["cases"][0]["reference"] == ref and doc["request"] == REASON
    assert _pdf_text((out / files[1]).read_bytes()).count("Information held about Joan Barker") == 1
    capsys.readouterr()
    assert cli_main(["subject-access", "--person", ref, "--out", str(tmp_path / "no"), "--as", "mary",
                     "--reason", REASON, "--db", url]) != 0
    assert "only a data protection officer" in capsys.readouterr().err
    assert not (tmp_path / "no").exists() or not any((tmp_path / "no").iterdir())
    # an unknown user: the message names who may run it (it said "name a team manager or auditor", the evidence
    # pack's roles, who are refused here)
    assert cli_main(["subject-access", "--person", ref, "--out", str(tmp_path / "no"), "--as", "ghost",
                     "--reason", REASON, "--db", url]) != 0
    err = capsys.readouterr().err
    assert "no active user 'ghost': name a data protection officer with --as" in err and "auditor" not in err


# ---------------------------------------------------------------------- the forms' answers (findings 15, item 3)
def _export(app, case_id: int) -> tuple[dict, str]:
    """The JSON export and the PDF's text of one case, as Dora."""
    doc = client_for(app, "dora").post(f"/api/cases/{case_id}/subject-access", json={"reason": REASON})
    assert doc.status_code == 200, doc.text
    client, _ = _page_client(app, "dora")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/cases/{case_id}/subject-access").text)
    pdf = client.post(f"/cases/{case_id}/subject-access",
                      data={"csrf_token": csrf.group(1), "reason": REASON, "format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    return doc.json(), _pdf_text(pdf.content)


def _under(rows: list[dict], heading: str) -> list[tuple[str, str]]:
    """The (title, text) rows one level under the first row titled `heading`, up to the next row at its level."""
    start = next(i for i, r in enumerate(rows) if r["title"] == heading)
    depth, out = rows[start]["depth"], []
    for r in rows[start + 1:]:
        if r["depth"] <= depth:
            break
        if r["depth"] == depth + 1:
            out.append((r["title"], r["text"]))
    return out


def test_the_export_holds_each_completed_forms_answers_with_the_forms_titles(db_url):
    """Peter's needs assessment, RAS scoring and support plan (tests/test_api_cases.py `plan_signed_off`): each
    completed form's answers are in the JSON as recorded and as rows titled by the form, and readable in the PDF.
    Before, the export gave these steps only as "Assess needs completed by Sam Okoro"."""
    eng, app, cases = _world(db_url)
    try:
        peter = cases["peter"]
        completed = {e["data"]["element_id"]: e for e in eng.history(peter) if e["type"] == "task.completed"}
        doc, text = _export(app, peter)
        forms = doc["cases"][0]["forms"]
        assert [(f["task"], f["form"], f["form_title"], f["by"], f["by_name"]) for f in forms] == [
            ("Assess needs", "needs_assessment", "Needs assessment", "sam", "Sam Okoro"),
            ("Score needs (RAS)", "ras_scoring", "Score needs (Resource Allocation System)", "sam", "Sam Okoro"),
            ("Write support plan", "support_plan", "Support plan", "sam", "Sam Okoro"),
            ("Sign off plan", "plan_sign_off", "Sign off support plan", "mary", "Mary Khan")]
        # as recorded: exactly the answers the history holds, linked to their event
        for f, element in zip(forms, ("assess_needs", "score_needs", "write_plan", "sign_off_plan"), strict=True):
            assert f["answers"] == completed[element]["data"]["data"]
            assert f["event_seq"] == completed[element]["seq"] and not f["about_someone_else"]
        assessment, scoring, plan = (f["rows"] for f in forms[:3])
        assert ("Do the needs arise from, or are they related to, a physical or mental impairment or illness?",
                "Yes") in [(r["title"], r["text"]) for r in assessment]
        assert _under(assessment, "Managing and maintaining nutrition") == [
            ("Is the person unable to achieve this?", "Yes"),
            ("In what way unable", "Cannot do this without help, including prompting"),
            ("Reasons (these go into the decision letter)", "Peter needs help and prompting with managing and "
                                                            "maintaining nutrition")]
        assert _under(scoring, "Personal care (washing, dressing, using the toilet)") == [
            ("Level of need", "Moderate"),
            ("Is part of this need met by a carer who is willing and able to help?", "No")]
        assert _under(scoring, "Keeping safe at home, including at night")[0] == ("Level of need", "Low")
        assert ("How the money is managed", "Council managed") in [(r["title"], r["text"]) for r in plan]
        # readable in the PDF: the form's questions with the answers in words, never codes or JSON
        assert "Your assessments and other forms, as recorded" in text
        assert "Score needs (RAS) (Score needs (Resource Allocation System))" in text
        assert ("Personal care (washing, dressing, using the toilet) Level of need: Moderate Is part of this need "
                "met by a carer who is willing and able to help?: No") in text
        assert ("Managing and maintaining nutrition Is the person unable to achieve this?: Yes In what way unable: "
                "Cannot do this without help, including prompting") in text
        assert "met_by_carer" not in text and "needs_assistance_incl_prompting" not in text
        assert "Peter Clarke" not in json.dumps(doc["cases"][0]["forms"][1])  # (the scoring names nobody)
        # someone else's export never holds Peter's forms
        joan_doc, _ = _export(app, cases["joan"])
        assert "met_by_carer" not in json.dumps(joan_doc)
        assert [f["task"] for f in joan_doc["cases"][0]["forms"]] == ["Record the contact", "Plan reablement"]
    finally:
        eng.db.dispose()


def test_an_erased_cases_forms_stay_erased_in_the_export(world):
    """A case erased under retention (engine/erasure.py) keeps no answers: the export gives none."""
    from engine.erasure import erase_case

    eng, app, cases = world
    case_id = eng.create_case("Rita Stone", {"person": {"name": "Rita Stone"}}, actor="sam")
    eng.start("needs_assessment", case_id=case_id, actor="sam", data={"person": {"name": "Rita Stone"}})
    from handlers.eligibility import ADULT_OUTCOMES

    _complete(eng, case_id, "assess_needs", {
        "needs_from_impairment": True, "carer_present": False, "who_took_part": "Rita Stone and her son Tom Stone",
        "outcomes": {code: ({"unable": True, "ways": ["needs_assistance_incl_prompting"], "reason": "Rita needs help"}
                            if code in ("personal_hygiene", "managing_nutrition") else
                            {"unable": False, "ways": [], "reason": ""}) for code in ADULT_OUTCOMES},
        "wellbeing_impact": {"significant": True, "reason": "Rita is anxious",
                             "areas": ["health_and_emotional_wellbeing"]}}, "sam")
    doc, text = _export(app, case_id)
    assert ("Who took part in the assessment", "Rita Stone and her son Tom Stone") in [
        (r["title"], r["text"]) for r in doc["cases"][0]["forms"][0]["rows"]]
    assert "Tom Stone" in text
    eng.close_case(case_id, reason="no_longer_needed", actor="mary")
    erase_case(eng, case_id, actor="ada", rule="test: retention period ended")
    doc, text = _export(app, case_id)
    assert doc["cases"][0]["forms"] == [] and "Tom Stone" not in json.dumps(doc) and "Tom Stone" not in text
    assert "No forms have been completed." in text


# ---------------------------------------------------------------------- details at the top level (item 4)
LEGACY = {"address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "area": "north", "name": "Peter Clarke",
          "date_of_birth": "1950-03-03"}


def test_details_held_at_the_top_level_of_the_case_data_are_in_the_export_record_and_search(db_url):
    """Demo cases made before the demo was mended hold the person's details at the top level of the case data,
    not under `person`. Before: the export's `person` was {"name": null, "details": []}, the PDF's "Your details
    as recorded" empty, and the record page said "No details about the person have been kept" and "Not
    recorded" beside the name and address."""
    eng, app, cases = _world(db_url)
    try:
        legacy = eng.create_case("Peter Clarke", dict(LEGACY), actor="sam")
        eng.start("needs_assessment", case_id=legacy, actor="sam", data={"person": dict(LEGACY)})
        doc, text = _export(app, legacy)
        assert doc["person"]["name"] == "Peter Clarke"
        details = {p["detail"]: p["text"] for p in doc["person"]["details"]}
        assert details["name"] == "Peter Clarke" and details["address"] == "12 Mill Lane, Northtown, NS2 4BB"
        assert details["date_of_birth"] == "3 March 1950"
        assert "Information held about Peter Clarke" in text
        # (pypdf reads the floated titles of the details list before the values)
        assert "Full name Date of birth Address" in text
        assert "Your details as recorded Peter Clarke 3 March 1950 12 Mill Lane, Northtown, NS2 4BB" in text
        # the record page, to a team manager
        mary, _ = _page_client(app, "mary")
        page = mary.get(f"/cases/{legacy}").text
        assert "No details about the person have been kept" not in page
        for row, value in (("name", "Peter Clarke"), ("address", "12 Mill Lane, Northtown, NS2 4BB"),
                           ("date_of_birth", "3 March 1950")):
            found = re.search(rf'id="detail-{row}">.*?<dd class="govuk-summary-list__value">(.*?)</dd>', page, re.S)
            assert found and found.group(1).strip() == value, (row, found and found.group(1))
        api = client_for(app, "mary").get(f"/api/cases/{legacy}/record").json()
        assert api["person"]["address"] == LEGACY["address"]
        # the search table holds the date of birth too
        with eng.db.engine.connect() as conn:
            assert conn.execute(select(people.c.date_of_birth).where(people.c.case_id == legacy)).scalar() == \
                "1950-03-03"
        # a correction starts from the details held: they move under `person`, and the trail says what they were
        r = client_for(app, "mary").post(f"/api/cases/{legacy}/details", json={
            "changes": {"phone": "01632 960999"}, "expected": {"phone": None}, "reason": "Peter phoned"})
        assert r.status_code == 200, r.text
        assert eng.get_case(legacy)["data"]["person"] == {**LEGACY, "phone": "01632 960999"}
        doc, _ = _export(app, legacy)
        assert [(c["title"], c["recorded"], c["corrected_to"]) for c in doc["cases"][0]["corrections"]] == [
            ("Phone number", None, "01632 960999")]
    finally:
        eng.db.dispose()
