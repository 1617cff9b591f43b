"""Break-glass access (issue 15 item 1, docs/security.md "Break-glass access", api/break_glass.py): a casework user
not named on a restricted case reads it in an emergency, for a limited time of the engine's clock, having said why;
the use is in the case's hash-chained history and its access log, shown on the case to everyone who opens it, and
reported to administrators, who review it. One world per database for the module (each test makes its own cases);
the browser test is at the end."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.access import restrict_case
from api.app import create_app
from api.auth import AuthSettings, create_user
from api.break_glass import duration
from engine.replay import replay_case
from engine.schema import break_glass, break_glass_reviews, case_access_log
from tests.front_door_world import PASSWORD, Api, as_role, build

REASON = "Police called at 2am: person missing, need next of kin and known risks"
FOUR_HOURS = timedelta(hours=4)


@pytest.fixture(scope="module")
def world(module_db_url):
    """The front door world (one user per role) on SQLite or PostgreSQL, shared by the module's tests
    (tests/conftest.py `module_db_url`: one database or schema per module, a missing server fails in CI)."""
    url = module_db_url
    eng, app, people = build(url)
    create_user(eng, "admin2", PASSWORD, display_name="Second Admin", roles=["administrator"])
    # an administrator who also does casework: may break the glass, never review their own use
    create_user(eng, "dual", PASSWORD, display_name="Dual Role", roles=["administrator", "social_worker"],
                teams=["social_work"])
    yield eng, app, people
    eng.db.dispose()


def restricted(eng, name: str = "Mary Sample") -> int:
    """A new case restricted to the front door advisor (the social worker and the team manager are not named)."""
    case_id = eng.create_case(name, {"person": {"name": name, "date_of_birth": "1950-01-01", "postcode": "NB1 1AA"}})
    restrict_case(eng, case_id, ["front-door-advisor"])
    return case_id


def signin(app, username: str) -> tuple[TestClient, str]:
    """A browser-like client signed in on the sign-in page, and its CSRF token (from the home page's sign-out form)."""
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    assert client.post("/sign-in", data={"form_token": token, "username": username,
                                         "password": PASSWORD}).status_code == 303
    return client, re.search(r'name="csrf_token" value="([^"]+)"', client.get("/home").text).group(1)


def ref(case_id: int) -> str:
    return f"CASE-{case_id:06d}"


def counts(eng, case_id: int) -> tuple[int, int, int]:
    """(break-glass rows, case.break_glass events, allowed break-glass access-log rows) of a case."""
    with eng.db.engine.connect() as conn:
        uses = conn.execute(select(func.count()).select_from(break_glass)
                            .where(break_glass.c.case_id == case_id)).scalar_one()
        logged = conn.execute(select(func.count()).select_from(case_access_log).where(
            case_access_log.c.case_id == case_id, case_access_log.c.action == "break_glass",
            case_access_log.c.outcome == "allowed")).scalar_one()
    events = [e for e in eng.history(case_id) if e["type"] == "case.break_glass"]
    return uses, len(events), logged


def log_rows(eng, case_id: int, user: str) -> list[tuple[str, str, str | None]]:
    with eng.db.engine.connect() as conn:
        return [(r.action, r.outcome, r.reason) for r in conn.execute(
            select(case_access_log).where(case_access_log.c.case_id == case_id, case_access_log.c.user == user)
            .order_by(case_access_log.c.id))]


def chain_and_replay_ok(eng, case_id: int) -> None:
    checked, findings = eng.verify(case_id)
    assert findings == [] and checked > 0
    assert replay_case(eng, case_id).ok


# ---------------------------------------------------------------------- the use
def test_a_social_worker_breaks_the_glass_reads_the_record_and_it_is_recorded(world):
    eng, app, _p = world
    case_id = restricted(eng)
    sw = as_role(app, "social_worker")
    unknown = sw.get("/api/cases/987654")
    before = sw.get(f"/api/cases/{case_id}")
    assert before.status_code == 404 and before.json()["message"] == f"no case {case_id}"
    assert unknown.status_code == 404
    now = eng.now()
    r = sw.post("/api/break-glass", {"case": ref(case_id), "reason": "  " + REASON + "\n"})
    assert r.status_code == 201, r.text
    use = r.json()
    assert (use["reference"], use["username"], use["reason"]) == (ref(case_id), "social-worker", REASON)
    assert use["expires_at"] == (now + FOUR_HOURS).isoformat().replace("+00:00", "Z")
    # the record reads, and shows who broke the glass, why and until when
    record = sw.get(f"/api/cases/{case_id}")
    assert record.status_code == 200
    assert record.json()["break_glass"] == [{"username": "social-worker", "display_name": "Test social worker",
                                             "reason": REASON, "at": use["at"], "expires_at": use["expires_at"],
                                             "active": True}]
    for part in ("record", "chronology", "notes"):
        assert sw.get(f"/api/cases/{case_id}/{part}").status_code == 200, part
    assert sw.get(f"/api/cases/{case_id}/record").json()["may"] == {
        "add_notes": False, "correct_details": False, "set_coordinating_worker": False}
    # in the case's own hash chain, which still verifies and replays
    [event] = [e for e in eng.history(case_id) if e["type"] == "case.break_glass"]
    assert event["actor"] == "social-worker"
    assert event["data"]["reason"] == REASON and event["data"]["grant"] == use["id"]
    assert event["data"]["until"].startswith((now + FOUR_HOURS).isoformat()[:19])
    chain_and_replay_ok(eng, case_id)
    # in the access log: the use (with its reason), then each read under it (with the use's id)
    rows = log_rows(eng, case_id, "social-worker")
    assert rows[0] == ("open", "refused", None)
    assert rows[1] == ("break_glass", "allowed", REASON)
    assert ("open", "allowed", f"break glass {use['id']}") in rows
    assert ("chronology", "allowed", f"break glass {use['id']}") in rows
    # the chronology says it in words
    texts = [e["text"] for e in sw.get(f"/api/cases/{case_id}/chronology").json()["entries"]]
    assert any(t.startswith("Break-glass access by Test social worker until") and REASON in t for t in texts)


def test_break_glass_reads_the_record_and_does_nothing_else(world):
    eng, app, p = world
    case_id = p["edith"]  # a case with an open front door task
    restrict_case(eng, case_id, ["front-door-advisor"])
    try:
        sw = as_role(app, "social_worker")
        assert sw.post("/api/break-glass", {"case": case_id, "reason": REASON}).status_code == 201
        [task] = as_role(app, "front_door_advisor").get(f"/api/cases/{case_id}").json()["tasks"]
        assert sw.get(f"/api/cases/{case_id}").json()["tasks"] == []
        for method, path, body in [
                ("POST", f"/api/cases/{case_id}/notes", {"kind": "note", "text": "A note"}),
                ("POST", f"/api/cases/{case_id}/details", {"changes": {"postcode": "NB1 1AB"}}),
                ("GET", f"/api/cases/{case_id}/history", None),
                ("GET", f"/api/tasks/{task['id']}", None),
                ("POST", f"/api/tasks/{task['id']}/claim", None),
                ("POST", f"/api/cases/{case_id}/close", {"reason": "died"})]:
            r = sw.send(method, path, body)
            assert r.status_code in (403, 404), (method, path, r.status_code, r.text)
            assert "restricted" not in r.text
        assert task["id"] not in [t["id"] for t in sw.get("/api/tasks").json()["tasks"]]
        page = sw.get(f"/cases/{case_id}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "You are reading this restricted case through break-glass access until" in page.text
        for link in ("Add a case note", "Replay this case", "Export an evidence pack", 'id="integrity-check"'):
            assert link not in page.text, link
        for path in (f"/cases/{case_id}/replay", f"/cases/{case_id}/notes/new", f"/cases/{case_id}/evidence"):
            assert sw.get(path, headers={"Accept": "text/html"}).status_code == 404, path
    finally:
        eng_unrestrict(eng, case_id)


def eng_unrestrict(eng, case_id: int) -> None:
    from sqlalchemy import delete

    from engine.schema import restricted_cases

    with eng.db.transaction() as conn:
        conn.execute(delete(restricted_cases).where(restricted_cases.c.case_id == case_id))


def test_access_ends_when_the_engines_clock_passes_the_expiry_and_may_be_used_again(world):
    eng, app, _p = world
    case_id = restricted(eng)
    tm = as_role(app, "team_manager")  # team managers do casework too; not named, so 404 today
    assert tm.get(f"/api/cases/{case_id}").status_code == 404
    first = tm.post("/api/break-glass", {"case": ref(case_id), "reason": REASON})
    assert first.status_code == 201, first.text
    eng.advance_clock(FOUR_HOURS - timedelta(minutes=1))
    tm = as_role(app, "team_manager")  # signed in again: a session unused for 4 hours has ended (idle limit)
    assert tm.get(f"/api/cases/{case_id}/record").status_code == 200
    again = tm.post("/api/break-glass", {"case": ref(case_id), "reason": REASON})  # still running: not extended
    assert again.status_code == 409 and "lasts until" in again.json()["message"]
    eng.advance_clock(timedelta(minutes=1))  # exactly at the expiry: over
    r = tm.get(f"/api/cases/{case_id}")
    assert r.status_code == 404 and r.json() == {"error": "not_found", "message": f"no case {case_id}",
                                                 "case": case_id}
    assert tm.get(f"/cases/{case_id}", headers={"Accept": "text/html"}).status_code == 404
    assert log_rows(eng, case_id, "team-manager")[-1][:2] == ("open", "refused")
    # the banner still shows the use, as ended, to the people named
    fd = as_role(app, "front_door_advisor")
    shown = fd.get(f"/api/cases/{case_id}").json()["break_glass"]
    assert [(u["username"], u["active"]) for u in shown] == [("team-manager", False)]
    # a new emergency is a new use, with its own reason, reported as a repeat
    second = tm.post("/api/break-glass", {"case": ref(case_id), "reason": "Second call from the police tonight"})
    assert second.status_code == 201, second.text
    assert counts(eng, case_id) == (2, 2, 2)
    report = as_role(app, "administrator").get("/api/admin/break-glass").json()["uses"]
    mine = [u for u in report if u["case_id"] == case_id]
    assert [(u["id"], u["uses_of_case"], u["active"]) for u in mine] == [
        (second.json()["id"], 2, True), (first.json()["id"], 2, False)]


@pytest.mark.parametrize("reason,message", [
    ("", "Enter why you need to open this case in an emergency"),
    ("   \n  ", "Enter why you need to open this case in an emergency"),
    ("urgent", "at least 10 characters"),
    ("x" * 501, "500 characters or fewer"),
    ("Police call\x00 at night", "control characters"),
    ("Police call\x1b[31m at night", "control characters"),
    ("\u200b" * 12, "Enter why you need to open this case in an emergency"),  # zero-width spaces show nothing
    ("\u200b\u00a0\u2060\ufeff" * 5, "Enter why you need to open this case in an emergency"),
    ("urgent\u200b\u200b\u200b\u200b", "at least 10 characters"),
    ("!!!!!!!!!!!!", "Reason must say what the emergency is"),
])
def test_a_reason_is_required_bounded_and_plain_text_and_nothing_is_stored_without_one(world, reason, message):
    eng, app, _p = world
    case_id = restricted(eng)
    sw = as_role(app, "social_worker")
    r = sw.post("/api/break-glass", {"case": ref(case_id), "reason": reason})
    assert r.status_code == 422, r.text
    assert message in r.text
    assert counts(eng, case_id) == (0, 0, 0)
    assert sw.get(f"/api/cases/{case_id}").status_code == 404
    assert "Enter the case reference" in sw.post("/api/break-glass", {"case": "CASE-12X", "reason": REASON}).text


@pytest.mark.parametrize("role", ["administrator", "auditor", "process_owner", "performance"])
def test_roles_that_do_no_casework_are_refused_whatever_the_case(world, role):
    eng, app, _p = world
    case_id = restricted(eng)
    client = as_role(app, role)
    answers = [client.post("/api/break-glass", {"case": case, "reason": REASON}) for case in (ref(case_id), 987654)]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].json() == answers[1].json()  # the same answer: it says nothing of the case
    assert "casework roles" in answers[0].json()["message"]
    assert client.post("/api/break-glass", {}).status_code == 403  # refused before the body is read
    assert counts(eng, case_id) == (0, 0, 0)
    assert client.get(f"/api/cases/{case_id}").status_code in (403, 404)
    assert TestClient(app).post("/api/break-glass", json={"case": case_id, "reason": REASON}).status_code == 401


def test_not_for_a_case_one_may_already_open_nor_an_unrestricted_one_nor_an_unknown_one(world):
    eng, app, p = world
    case_id = restricted(eng)
    fd, tm, sw = (as_role(app, r) for r in ("front_door_advisor", "team_manager", "social_worker"))
    named = fd.post("/api/break-glass", {"case": ref(case_id), "reason": REASON})
    assert named.status_code == 409 and "named on" in named.json()["message"], named.text
    open_case = eng.create_case("Unrestricted Person", {"person": {"name": "Unrestricted Person"}})
    already = tm.post("/api/break-glass", {"case": open_case, "reason": REASON})  # oversight opens any unrestricted
    assert already.status_code == 409 and "can already open" in already.json()["message"], already.text
    unrestricted = sw.post("/api/break-glass", {"case": open_case, "reason": REASON})  # not their team's
    assert unrestricted.status_code == 422 and "is not restricted" in unrestricted.json()["message"]
    unknown = sw.post("/api/break-glass", {"case": "CASE-987654", "reason": REASON})
    assert unknown.status_code == 404 and unknown.json()["message"] == "no case CASE-987654"
    for bad in ("C" * 65, 2**63, 0):  # too long, out of range: refused before anything is looked up
        assert sw.post("/api/break-glass", {"case": bad, "reason": REASON}).status_code == 422, bad
    assert counts(eng, case_id)[:2] == (0, 0) and counts(eng, open_case)[:2] == (0, 0)
    assert log_rows(eng, case_id, "front-door-advisor") == [("break_glass", "refused", REASON)]
    assert ("break_glass", "refused", REASON) in log_rows(eng, open_case, "social-worker")


def test_the_duration_is_configurable_and_a_bad_setting_stops_the_app(world, monkeypatch):
    eng, _app, _p = world
    short = create_app(eng, run_timers=False, auth=AuthSettings(break_glass_for=timedelta(minutes=30)))
    case_id = restricted(eng)
    now = eng.now()
    r = Api(short, "social-worker").post("/api/break-glass", {"case": case_id, "reason": REASON})
    assert r.json()["expires_at"] == (now + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert duration(env={"CAREPATH_BREAK_GLASS_MINUTES": "90"}) == timedelta(minutes=90)
    assert duration(env={}) == FOUR_HOURS
    for bad in ("0", "2000", "4h"):
        with pytest.raises(ValueError, match="CAREPATH_BREAK_GLASS_MINUTES"):
            duration(env={"CAREPATH_BREAK_GLASS_MINUTES": bad})
    monkeypatch.setenv("CAREPATH_BREAK_GLASS_MINUTES", "4h")
    with pytest.raises(ValueError, match="CAREPATH_BREAK_GLASS_MINUTES"):  # the app is not built with it
        create_app(eng, run_timers=False)


# ---------------------------------------------------------------------- shown and reported
def test_the_banner_shows_everyone_who_opens_the_case_who_broke_the_glass_when_why_and_until(world):
    eng, app, _p = world
    case_id = restricted(eng)
    sw = as_role(app, "social_worker")
    assert sw.post("/api/break-glass", {"case": case_id, "reason": REASON}).status_code == 201
    client, _csrf = signin(app, "front-door-advisor")  # named on the case: ordinary access
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    banner = re.search(r'<div class="govuk-notification-banner"[^>]*id="break-glass">(.*?)</div>\s*</div>',
                       page.text, re.S)
    assert banner, "no break-glass banner on the case record"
    text = re.sub(r"<[^>]+>|\s+", " ", banner.group(1))
    assert "This restricted case has been opened in an emergency by someone not named on it" in text
    assert "Test social worker broke the glass on 3 March 2031" in text and "(still open)" in text
    assert REASON in text and "until" in text
    assert "You are reading" not in text


def test_administrators_get_the_report_and_a_review_is_recorded_once_and_never_by_the_user(world):
    eng, app, _p = world
    case_id = restricted(eng)
    dual = Api(app, "dual")
    use = dual.post("/api/break-glass", {"case": ref(case_id), "reason": REASON}).json()
    admin, admin2 = as_role(app, "administrator"), Api(app, "admin2")
    home, _csrf = signin(app, "administrator")
    waiting = re.search(r'id="break-glass-waiting">.*?(\d+) break-glass uses? waits? for your review',
                        home.get("/home").text, re.S)
    assert waiting and int(waiting.group(1)) == len([u for u in _report(eng) if u["review"] is None]) >= 1
    [row] = [u for u in admin.get("/api/admin/break-glass").json()["uses"] if u["id"] == use["id"]]
    assert (row["reference"], row["username"], row["reason"], row["active"], row["review"]) == (
        ref(case_id), "dual", REASON, True, None)
    for who in ("social_worker", "team_manager", "auditor"):
        assert as_role(app, who).get("/api/admin/break-glass").status_code == 403, who
        assert as_role(app, who).post(f"/api/admin/break-glass/{use['id']}/review",
                                      {"note": "Looks fine"}).status_code == 403, who
    own = dual.post(f"/api/admin/break-glass/{use['id']}/review", {"note": "My own emergency, fine"})
    assert own.status_code == 403 and "your own" in own.json()["message"]
    empty = admin.post(f"/api/admin/break-glass/{use['id']}/review", {"note": "  "})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "note"
    assert admin.post("/api/admin/break-glass/987654/review", {"note": "Nothing"}).status_code == 404
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(break_glass_reviews)
                            .where(break_glass_reviews.c.grant_id == use["id"])).scalar_one() == 0
    done = admin2.post(f"/api/admin/break-glass/{use['id']}/review", {"note": "Checked with the police: real"})
    assert done.status_code == 200, done.text
    assert done.json()["review"]["reviewer"] == "admin2" and done.json()["review"]["note"] == \
        "Checked with the police: real"
    assert admin.post(f"/api/admin/break-glass/{use['id']}/review", {"note": "Again"}).status_code == 409
    [event] = [e for e in eng.history(case_id) if e["type"] == "case.break_glass_reviewed"]
    assert (event["actor"], event["data"]) == ("admin2", {"grant": use["id"], "note": "Checked with the police: real",
                                                          "user": "dual"})
    chain_and_replay_ok(eng, case_id)
    [row] = [u for u in admin.get("/api/admin/break-glass").json()["uses"] if u["id"] == use["id"]]
    assert row["review"]["reviewer"] == "admin2"


# ---------------------------------------------------------------------- the pages, without a browser
def test_the_confirmation_page_is_the_same_whether_or_not_the_case_exists_or_is_restricted(world):
    """Until the glass is broken (recorded and reported), the pages say nothing about which cases exist."""
    eng, app, _p = world
    case_id = restricted(eng)
    client, csrf = signin(app, "social-worker")
    pages = []
    for reference in (ref(case_id), "CASE-987654", ref(eng.create_case("Open Case", {}))):
        r = client.post("/break-glass", data={"csrf_token": csrf, "case": reference, "reason": REASON})
        assert r.status_code == 200
        pages.append(r.text.replace(reference, "REF"))
    assert pages[0] == pages[1] == pages[2]
    assert "This will be reported" in pages[0]
    assert counts(eng, case_id) == (0, 0, 0)
    r = client.post("/break-glass", data={"csrf_token": csrf, "case": "CASE-987654", "reason": REASON,
                                          "confirm": "yes"})
    assert r.status_code == 404 and "There is no case CASE-987654" in r.text and "govuk-error-summary" in r.text
    r = client.post("/break-glass", data={"csrf_token": csrf, "case": ref(case_id), "reason": REASON,
                                          "confirm": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{case_id}"
    r = client.post("/break-glass", data={"case": ref(case_id), "reason": REASON, "confirm": "yes"})
    assert r.status_code == 403  # no CSRF token: nothing done
    assert counts(eng, case_id) == (1, 1, 1)
    auditor, token = signin(app, "auditor")
    assert auditor.get("/break-glass").status_code == 403
    assert auditor.post("/break-glass", data={"csrf_token": token, "case": ref(case_id), "reason": REASON,
                                              "confirm": "yes"}).status_code == 403
    assert client.get("/admin/break-glass").status_code == 403


# ---------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def server(world):
    from tests.browser import live_server

    eng, app, people = world
    with live_server(app) as base:
        yield base, eng


def test_break_glass_by_keyboard_the_banner_and_the_review_in_a_browser(server):
    base, eng = server
    from tests.browser import launch, run_axe, sign_in

    case_id = restricted(eng, "Browser Person")
    with launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, "social-worker", PASSWORD)
        page.goto(f"{base}/cases/{case_id}")
        assert "Page not found" in page.content()
        page.get_by_role("link", name="open it in an emergency").click()
        page.wait_for_url(f"{base}/break-glass")
        run_axe(page, "break glass question")
        page.get_by_role("button", name="Continue").click()  # nothing typed: the error summary
        summary = page.locator(".govuk-error-summary")
        assert "Enter the case reference" in summary.inner_text()
        assert "Enter why you need to open this case" in summary.inner_text()
        run_axe(page, "break glass question with errors")
        page.focus("#case")
        page.keyboard.type(ref(case_id))
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "reason"
        page.keyboard.type(REASON)
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # Continue
        page.wait_for_selector("#break-glass-warning")
        assert "This will be reported" in page.locator("#break-glass-warning").inner_text()
        assert page.locator("#confirm-reason").inner_text() == REASON
        run_axe(page, "break glass confirmation")
        page.focus("#break-glass-confirm")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{case_id}")
        banner = page.locator("#break-glass").inner_text()
        assert "You are reading this restricted case through break-glass access until" in banner
        assert "Test social worker broke the glass on" in banner and REASON in banner
        assert page.locator("#add-note").count() == 0
        run_axe(page, "case record under break-glass access")

        admin = browser.new_context(bypass_csp=True).new_page()
        sign_in(admin, base, "admin2", PASSWORD, then="/home")
        assert "wait for your review" in admin.locator("#break-glass-waiting").inner_text() or \
            "waits for your review" in admin.locator("#break-glass-waiting").inner_text()
        run_axe(admin, "home with break-glass uses to review")
        admin.get_by_role("link", name="Review break-glass uses").click()
        admin.wait_for_url(f"{base}/admin/break-glass")
        run_axe(admin, "break-glass report")
        [grant] = [u["id"] for u in _report(eng) if u["case_id"] == case_id]
        card = admin.locator(f"#use-{grant}")
        assert REASON in card.inner_text() and ref(case_id) in card.inner_text()
        admin.focus(f"#note-{grant}")
        admin.keyboard.press("Tab")
        admin.keyboard.press("Enter")  # no note: the error summary, linked to the field
        admin.wait_for_selector(".govuk-error-summary")
        run_axe(admin, "break-glass report with an error")
        admin.locator(".govuk-error-summary a").first.click()
        assert admin.evaluate("document.activeElement.id") == f"note-{grant}"
        admin.keyboard.type("Rang the worker: real emergency, police involved")
        admin.keyboard.press("Tab")
        admin.keyboard.press("Enter")
        admin.wait_for_url(f"{base}/admin/break-glass?reviewed={grant}")
        assert "marked as reviewed" in admin.locator(".govuk-notification-banner").first.inner_text()
        row = admin.locator(f"#row-{grant}").inner_text()
        assert "Reviewed by Second Admin" in row and "Rang the worker" in row
        run_axe(admin, "break-glass report after a review")


def _report(eng):
    from api.break_glass import report

    return report(eng)


def test_a_restricted_cases_reference_is_answered_as_an_unknown_one_unless_named_or_breaking_the_glass(world):
    # the home page's "open a case by its reference" redirected anyone to a restricted case's record (which then
    # answered 404), while an unknown reference got "There is no case": the difference showed the case existed
    eng, app, _p = world
    case_id = restricted(eng, "Ria Open")
    unknown = f"CASE-{987654:06d}"
    manager, _t = signin(app, "team-manager")
    answers = []
    for reference in (ref(case_id), unknown):
        before = log_rows(eng, case_id, "team-manager")
        r = manager.get("/cases/open", params={"reference": reference.lower()})
        answers.append((r.status_code, r.text.replace(reference, "REF").replace(reference.lower(), "REF")))
        assert ("Location" in r.headers) is False
        if reference == unknown:
            assert log_rows(eng, case_id, "team-manager") == before
        else:  # logged as a refused opening, as the record page logs one
            assert log_rows(eng, case_id, "team-manager") == [*before, ("open", "refused", None)]
    assert answers[0] == answers[1] and answers[0][0] == 404
    assert "There is no case REF: check the reference" in answers[0][1]
    named, _t = signin(app, "front-door-advisor")
    r = named.get("/cases/open", params={"reference": ref(case_id)})
    assert (r.status_code, r.headers["location"]) == (303, f"/cases/{case_id}")
    sw = as_role(app, "social_worker")
    sw_page, _t = signin(app, "social-worker")
    assert sw_page.get("/cases/open", params={"reference": ref(case_id)}).status_code == 404
    assert sw.post("/api/break-glass", {"case": ref(case_id), "reason": REASON}).status_code == 201
    r = sw_page.get("/cases/open", params={"reference": ref(case_id)})
    assert (r.status_code, r.headers["location"]) == (303, f"/cases/{case_id}")
