"""The processes pages and their JSON API (api/processes.py): who may see and do what, drafts through
review to a live version, uploads, and the pages in a real browser with axe-core and the keyboard."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.auth import ROLES, create_user
from engine import drafts
from engine.definitions import latest_version
from engine.schema import events, process_drafts, process_versions
from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.front_door_world import PASSWORD, ROOT, build, username

OWNER2 = "process-owner-2"
READERS = {"process_owner", "team_manager", "auditor"}


@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    create_user(eng, OWNER2, PASSWORD, display_name="Second owner", roles=["process_owner"])
    yield eng, app, people
    eng.db.dispose()


def client(app, user: str | None) -> tuple[TestClient, str]:
    c = TestClient(app, follow_redirects=False)
    if user is None:
        return c, ""
    r = c.post("/api/session", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def live_files(c: TestClient, version: int = 1) -> dict[str, str]:
    names = c.get(f"/api/processes/front_door/versions/{version}/files").json()["files"]
    return {n: c.get(f"/api/processes/front_door/versions/{version}/files/{n}").text for n in names}


def renamed(files: dict[str, str], old: str, new: str) -> dict[str, str]:
    assert f'name="{old}"' in files["front_door.bpmn"]
    return {**files, "front_door.bpmn": files["front_door.bpmn"].replace(f'name="{old}"', f'name="{new}"', 1)}


def counts(eng) -> tuple[int, int, int]:
    with eng.db.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (process_drafts, process_versions, events))


def text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_role_and_route_matrix(world):
    eng, app, _people = world
    owner, owner_csrf = client(app, "process-owner")
    files = live_files(owner)
    draft = owner.post("/api/processes/drafts", json={"process_id": "front_door", "base_version": 1, "files": files},
                       headers={"X-CSRF-Token": owner_csrf}).json()
    did = draft["id"]
    deployed = drafts.create_draft(eng, process_id="front_door", base_version=1, actor="process-owner",
                                   files=renamed(files, "Record the contact", "Record the first contact"))
    drafts.submit_draft(eng, deployed["id"], actor="process-owner", note="clearer")
    drafts.approve_draft(eng, deployed["id"], actor=OWNER2, note="clearer")
    reads = ["/api/processes", "/api/processes/drafts", f"/api/processes/drafts/{did}",
             f"/api/processes/drafts/{did}/files/front_door.bpmn", f"/api/processes/drafts/{did}/problems",
             f"/api/processes/drafts/{did}/changes", "/api/processes/front_door",
             "/api/processes/front_door/versions/1/files", "/api/processes/front_door/versions/1/files/screening.dmn"]
    pages = ["/processes", "/processes/front_door", f"/processes/drafts/{did}", f"/processes/drafts/{did}/review",
             f"/processes/drafts/{deployed['id']}/approved"]
    writes = [("POST", "/api/processes/drafts", {"process_id": "front_door", "base_version": 1, "files": files}),
              ("PUT", f"/api/processes/drafts/{did}", {"files": files, "revision": 1}),
              ("POST", f"/api/processes/drafts/{did}/submit", {}),
              ("POST", f"/api/processes/drafts/{did}/approve", {"note": "x"}),
              ("POST", f"/api/processes/drafts/{did}/refuse", {"reason": "x"}),
              ("POST", f"/api/processes/drafts/{did}/withdraw", {}),
              ("POST", f"/api/processes/drafts/{did}/rebase", {})]
    page_posts = ["/processes/front_door/drafts", f"/processes/drafts/{did}/submit",
                  f"/processes/drafts/{did}/withdraw", f"/processes/drafts/{did}/rebase",
                  f"/processes/drafts/{did}/approve", f"/processes/drafts/{did}/refuse"]
    before = counts(eng)
    for role in [*ROLES, None]:
        c, csrf = client(app, username(role) if role else None)
        for url in reads:
            expected = 200 if role in READERS else 403 if role else 401
            assert c.get(url).status_code == expected, (role, url)
        for url in pages:
            r = c.get(url)
            if role is None:
                assert (r.status_code, r.headers["location"]) == (303, "/sign-in"), url
            else:
                assert r.status_code == (200 if role in READERS else 403), (role, url)
        if role == "process_owner":
            continue  # what owners change is tested below
        for method, url, body in writes:
            r = c.request(method, url, json=body, headers={"X-CSRF-Token": csrf})
            assert r.status_code == (403 if role else 401), (role, method, url)
        for url in page_posts:
            r = c.post(url, data={"csrf_token": csrf, "note": "x", "reason": "x"})
            assert r.status_code == (403 if role else 303), (role, url)
        r = c.post("/processes/front_door/upload", data={"csrf_token": csrf},
                   files={"file": ("front_door.bpmn", files["front_door.bpmn"].encode(), "application/xml")})
        assert r.status_code == (403 if role else 303), (role, "upload")
    assert counts(eng) == before  # no refused request changed anything
    # an owner without the CSRF token changes nothing either
    assert owner.post(f"/api/processes/drafts/{did}/submit", json={}).status_code == 403
    assert owner.post(f"/processes/drafts/{did}/submit", data={"note": "x"}).status_code == 403
    assert counts(eng) == before


def test_team_managers_and_auditors_see_the_pages_without_any_action(world):
    eng, app, _people = world
    d = drafts.create_draft(eng, process_id="front_door", base_version=1, actor="process-owner",
                            files=renamed(stored_files(eng), "Record the contact", "Log it"))
    drafts.submit_draft(eng, d["id"], actor="process-owner", note="shorter")
    for role in ("team_manager", "auditor"):
        c, _csrf = client(app, username(role))
        for url in ("/processes", "/processes/front_door", f"/processes/drafts/{d['id']}",
                    f"/processes/drafts/{d['id']}/review"):
            html = c.get(url).text
            assert "<form method=\"post\" action=\"/processes" not in html, (role, url)
            assert 'type="file"' not in html
        assert 'href="/processes"' in c.get("/home").text  # the navigation
    owner, _ = client(app, "process-owner")
    assert '<form method="post" action="/processes/front_door/drafts"' in owner.get("/processes/front_door").text


def stored_files(eng) -> dict[str, str]:
    """The live front_door version's own files, read from the database."""
    with eng.db.engine.connect() as conn:
        row = latest_version(conn, "front_door")
        return {k: v.decode() for k, v in drafts.version_files(conn, row).items()}


def test_a_draft_through_review_to_a_live_version_on_the_pages(world):
    eng, app, people = world
    alice, a_csrf = client(app, "process-owner")
    bob, b_csrf = client(app, OWNER2)
    home = text(alice.get("/home").text)
    assert "Go to processes" in home

    r = alice.post("/processes/front_door/drafts", data={"csrf_token": a_csrf})
    assert r.status_code == 303 and re.fullmatch(r"/processes/drafts/\d+/edit", r.headers["location"])
    did = int(r.headers["location"].split("/")[3])
    files = renamed(alice.get(f"/api/processes/drafts/{did}").json()["files"], "Record the contact",
                    "Record the first contact")
    saved = alice.put(f"/api/processes/drafts/{did}", json={"files": files, "revision": 1},
                      headers={"X-CSRF-Token": a_csrf})
    assert saved.status_code == 200 and saved.json()["revision"] == 2
    stale = bob.put(f"/api/processes/drafts/{did}", json={"files": files, "revision": 1},
                    headers={"X-CSRF-Token": b_csrf})
    assert stale.status_code == 409 and "saved by process-owner" in stale.json()["message"]

    page = text(alice.get(f"/processes/drafts/{did}").text)
    assert "Changed user task “Record the first contact”" in page
    assert "name changed from 'Record the contact' to 'Record the first contact'" in page
    r = alice.post(f"/processes/drafts/{did}/submit", data={"csrf_token": a_csrf, "revision": "2",
                                                            "note": "Say it is the first contact"})
    assert (r.status_code, r.headers["location"]) == (303, f"/processes/drafts/{did}?done=submitted")
    assert f'href="/processes/drafts/{did}/review"' in bob.get("/home").text  # waiting for another owner
    assert "Waiting for your review" not in alice.get("/home").text  # not for its author

    review = alice.get(f"/processes/drafts/{did}/review").text
    assert ('data-base-url="/api/processes/front_door/versions/1/files/front_door.bpmn"' in review
            and f'data-draft-url="/api/processes/drafts/{did}/files/front_door.bpmn"' in review)
    assert 'id="diagram-diff-list"' in review
    assert "you cannot approve it" in text(review) and 'action="/processes/drafts/%d/approve"' % did not in review
    own = alice.post(f"/processes/drafts/{did}/approve", data={"csrf_token": a_csrf, "revision": "2", "note": "x"})
    assert own.status_code == 403 and "you wrote it; another process owner must review" in text(own.text)

    review = text(bob.get(f"/processes/drafts/{did}/review").text)
    assert "Version 1 1 1" in review  # one running case on version 1, and it could be moved
    r = bob.post(f"/processes/drafts/{did}/approve", data={"csrf_token": b_csrf, "revision": "2",
                                                           "note": "Say it is the first contact"})
    assert (r.status_code, r.headers["location"]) == (303, f"/processes/drafts/{did}/approved")
    done = text(bob.get(r.headers["location"]).text)
    assert "Version 2 of Adult front door is live" in done
    assert "Written by process-owner, approved by process-owner-2" in done
    assert 'href="/processes/front_door/migrate?to=2"' in bob.get(r.headers["location"]).text
    deployed = text(bob.get(f"/processes/drafts/{did}").text)  # still says what it changed from version 1
    assert "Deployed as version 2" in deployed
    assert "name changed from 'Record the contact' to 'Record the first contact'" in deployed
    versions = text(bob.get("/processes/front_door").text)
    assert "2 Live" in versions and "process-owner process-owner-2 Say it is the first contact 0" in versions

    new_case = eng.start("front_door", data={"person": {"name": "Nia"}})
    assert new_case.ready_tasks[0]["name"] == "Record the first contact"
    old = eng.list_tasks(case_id=people["edith"])
    assert [t["name"] for t in old] == ["Record the contact"]
    assert eng.verify()[1] == []


def test_refuse_on_the_review_page_needs_a_reason(world):
    eng, app, _people = world
    files = stored_files(eng)
    d = drafts.create_draft(eng, process_id="front_door", base_version=1, actor="process-owner",
                            files=renamed(files, "Record the contact", "Take the call"))
    drafts.submit_draft(eng, d["id"], actor="process-owner", note="x")
    bob, b_csrf = client(app, OWNER2)
    r = bob.post(f"/processes/drafts/{d['id']}/refuse", data={"csrf_token": b_csrf, "reason": " "})
    assert r.status_code == 422 and 'href="#reason"' in r.text and "Say why the draft is refused" in r.text
    assert drafts.get_draft(eng, d["id"])["status"] == "submitted"
    r = bob.post(f"/processes/drafts/{d['id']}/refuse", data={"csrf_token": b_csrf, "reason": "Not our words"})
    assert r.headers["location"] == f"/processes/drafts/{d['id']}?done=refused"
    page = text(bob.get(r.headers["location"]).text)
    assert "Refused by process-owner-2: “Not our words”" in page and "Draft refused" in page


def test_uploads_become_drafts_and_hostile_files_are_refused_with_nothing_stored(world):
    eng, app, _people = world
    alice, csrf = client(app, "process-owner")
    files = live_files(alice)
    before = counts(eng)
    hostile = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</bpmn:definitions>')
    for name, data, status, words in (
            ("front_door.bpmn", hostile, 422, "external entity declaration"),
            ("front_door.bpmn", b"<bpmn:definitions", 422, "not well-formed XML"),
            ("front_door.bpmn", (files["screening.dmn"]).encode(), 422, "does not hold the process 'front_door'"),
            ("picture.png", b"\x89PNG", 422, "must end in .bpmn or .dmn")):
        r = alice.post("/processes/front_door/upload", data={"csrf_token": csrf, "note": "try"},
                       files={"file": (name, data, "application/octet-stream")})
        assert r.status_code == status, (name, r.text[:300])
        assert 'class="govuk-error-summary"' in r.text and words in html.unescape(r.text), name
        assert 'href="#file"' in r.text
    # the file's name is said as it is spelt (the summary said "Xxe.bpmn: refused …" for xxe.bpmn)
    r = alice.post("/processes/front_door/upload", data={"csrf_token": csrf},
                   files={"file": ("xxe.bpmn", hostile, "application/xml")})
    assert r.status_code == 422 and "xxe.bpmn: refused" in r.text and "Xxe.bpmn" not in r.text
    r = alice.post("/processes/front_door/upload", data={"csrf_token": csrf})
    assert r.status_code == 400 and "Select a .bpmn or .dmn file" in r.text
    r = alice.post("/processes/front_door/upload", data={"csrf_token": csrf},
                   files={"file": ("big.bpmn", b" " * (7 * 1024 * 1024), "application/xml")})
    assert r.status_code == 413
    assert counts(eng) == before

    changed = renamed(files, "Record the contact", "Record the call")["front_door.bpmn"].encode()
    r = alice.post("/processes/front_door/upload", data={"csrf_token": csrf, "note": "from Camunda Modeler"},
                   files={"file": ("front_door.bpmn", changed, "application/xml")})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=uploaded")
    did = int(r.headers["location"].split("/")[3].split("?")[0])
    d = alice.get(f"/api/processes/drafts/{did}").json()
    assert d["files"]["front_door.bpmn"] == changed.decode() and d["files"]["screening.dmn"] == files["screening.dmn"]
    assert d["change_note"] == "from Camunda Modeler" and d["author"] == "process-owner"
    assert "File uploaded as a new draft" in alice.get(r.headers["location"]).text


def test_json_api_refusals_are_clear(world):
    eng, app, _people = world
    alice, a_csrf = client(app, "process-owner")
    bob, b_csrf = client(app, OWNER2)
    files = live_files(alice)
    r = alice.post("/api/processes/drafts", json={"process_id": "front_door", "base_version": 9, "files": files},
                   headers={"X-CSRF-Token": a_csrf})
    assert r.status_code == 404 and "version 9 of process 'front_door' is not deployed" in r.json()["message"]
    r = alice.post("/api/processes/drafts", json={"process_id": "front_door", "base_version": 1,
                                                  "files": {"front_door.bpmn": "<a><b></a>"}},
                   headers={"X-CSRF-Token": a_csrf})
    assert r.status_code == 422 and r.json()["problems"][0]["file"] == "front_door.bpmn"
    d = alice.post("/api/processes/drafts", json={"process_id": "front_door", "base_version": 1,
                                                  "files": renamed(files, "Record the contact", "Call")},
                   headers={"X-CSRF-Token": a_csrf}).json()
    assert alice.get(f"/api/processes/drafts/{d['id']}/files/nothing.bpmn").status_code == 404
    r = alice.get(f"/api/processes/drafts/{d['id']}/files/front_door.bpmn")
    assert r.headers["content-type"].startswith("application/xml") and 'name="Call"' in r.text
    assert alice.post(f"/api/processes/drafts/{d['id']}/submit", json={"note": "Call"},
                      headers={"X-CSRF-Token": a_csrf}).status_code == 200
    r = alice.post(f"/api/processes/drafts/{d['id']}/approve", json={"note": ""}, headers={"X-CSRF-Token": a_csrf})
    assert r.status_code == 403 and r.json()["error"] == "four_eyes"
    r = bob.post(f"/api/processes/drafts/{d['id']}/approve", json={"note": "", "revision": 0},
                 headers={"X-CSRF-Token": b_csrf})
    assert r.status_code == 409 and "revision 1" in r.json()["message"]
    r = bob.post(f"/api/processes/drafts/{d['id']}/approve", json={"note": ""}, headers={"X-CSRF-Token": b_csrf})
    assert r.status_code == 200 and (r.json()["version"], r.json()["draft"]["change_note"]) == (2, "Call")
    listed = alice.get("/api/processes").json()["processes"]
    front = next(p for p in listed if p["process_id"] == "front_door")
    assert (front["live_version"], front["versions"], front["running"], front["open_drafts"]) == (2, 2, 1, 0)
    assert alice.get("/api/processes/nothing").status_code == 404


def test_processes_pages_in_the_browser_are_accessible_and_keyboard_usable(world):
    eng, app, _people = world
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    files = stored_files(eng)
    other = drafts.create_draft(eng, process_id="front_door", base_version=1, actor=OWNER2,
                                files=renamed(files, "Record the contact", "Answer the call"))
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "process-owner", PASSWORD, then="/home")
        run_axe(page, "home for a process owner")
        nav = page.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Processes").click()
        page.wait_for_url(f"{base}/processes")
        run_axe(page, "processes")
        page.get_by_role("link", name="Adult front door").click()
        page.wait_for_url(f"{base}/processes/front_door")
        run_axe(page, "a process")
        assert page.locator("#versions + .app-table-scroll table").inner_text().count("Live") == 1

        # an upload that is not XML: the error summary names it, the page stays axe-clean
        page.set_input_files("#file", files=[{"name": "front_door.bpmn", "mimeType": "application/xml",
                                              "buffer": b"<not xml"}])
        page.get_by_role("button", name="Upload as a new draft").click()
        page.locator(".govuk-error-summary").wait_for()
        assert "not well-formed XML" in page.locator(".govuk-error-summary").inner_text()
        run_axe(page, "a process with an upload error")
        changed = renamed(files, "Record the contact", "Record the first contact")["front_door.bpmn"].encode()
        page.set_input_files("#file", files=[{"name": "front_door.bpmn", "mimeType": "application/xml",
                                              "buffer": changed}])
        page.get_by_role("button", name="Upload as a new draft").click()
        page.wait_for_url(re.compile(r".*/processes/drafts/\d+\?done=uploaded"))
        did = int(re.search(r"/drafts/(\d+)", page.url).group(1))
        assert "Someone else is changing this process too" in page.locator("#others").inner_text()
        assert f"draft {other['id']} by {OWNER2}" in page.locator("#others").inner_text()
        run_axe(page, "a draft")

        # keyboard only: the change note, then submit
        page.locator("#note").focus()
        page.keyboard.type("Say it is the first contact")
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Submit for review"
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/processes/drafts/{did}?done=submitted")
        run_axe(page, "a submitted draft")
        context.close()

        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, OWNER2, PASSWORD, then="/home")
        page.get_by_role("link", name=f"Draft {did} of front_door").click()
        page.wait_for_url(f"{base}/processes/drafts/{did}/review")
        assert "Record the first contact" in page.locator("#changes").inner_text()
        assert page.locator("#diagram-diff").get_attribute("data-draft-url") == (
            f"/api/processes/drafts/{did}/files/front_door.bpmn")
        run_axe(page, "review")
        page.locator("#note").focus()
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Approve and deploy"
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/processes/drafts/{did}/approved")
        assert page.locator("h1").inner_text() == "Version 2 of Adult front door is live"
        run_axe(page, "approval confirmation")

        # the second owner's own draft now starts from a version that is no longer live
        page.goto(f"{base}/processes/drafts/{other['id']}")
        assert "version 2 is live now" in page.locator("#not-live").inner_text()
        assert "Record the first contact" in page.locator("#meanwhile").inner_text()
        assert page.get_by_role("button", name="Submit for review").count() == 0
        run_axe(page, "a draft to rebase")
        page.get_by_role("button", name="Rebase onto version 2").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/processes/drafts/{other['id']}?done=rebased")
        assert page.locator("#not-live").count() == 0
        assert "Record the first contact" in page.locator("#rebase-changes").inner_text()
        run_axe(page, "a rebased draft")
        context.close()


def test_a_new_process_uploaded_on_the_list_page_is_reached_through_its_draft(world):
    _eng, app, _people = world
    alice, csrf = client(app, "process-owner")
    data = (ROOT / "tests" / "diagrams" / "deadline.bpmn").read_bytes()
    r = alice.post("/processes/upload", data={"csrf_token": csrf},
                   files={"file": ("deadline.bpmn", data, "application/xml")})
    assert r.status_code == 303
    did = int(r.headers["location"].split("/")[3].split("?")[0])
    draft = alice.get(f"/api/processes/drafts/{did}").json()
    assert (draft["process_id"], draft["base_version"], draft["live_version"]) == ("deadline", None, None)
    listing = alice.get("/processes").text
    assert f'<a class="govuk-link" href="/processes/drafts/{did}">Draft {did}</a>' in listing
    assert "Not deployed" in text(listing)
    page = text(alice.get(f"/processes/drafts/{did}").text)
    assert "Nothing: a new process" in page and "compared with nothing (a new process)" in page.lower()
    two = (ROOT / "tests" / "diagrams" / "budget.bpmn").read_text().replace(
        "</bpmn:definitions>", '<bpmn:process id="second" isExecutable="true"/></bpmn:definitions>')
    r = alice.post("/processes/upload", data={"csrf_token": csrf},
                   files={"file": ("two.bpmn", two.encode(), "application/xml")})
    assert r.status_code == 422 and "holds 2 processes (budget, second)" in html.unescape(r.text)


def test_an_upload_that_is_not_a_readable_form_gets_an_error_page(world):
    eng, app, _people = world
    alice, csrf = client(app, "process-owner")
    before = counts(eng)
    body = b"--xyz\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + csrf.encode() + b"\r\n--xyz\r\n"
    r = alice.post("/processes/front_door/upload", content=body,
                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html"), r.text[:200]
    many = {f"file{i}": (f"f{i}.bpmn", b"<a/>", "application/xml") for i in range(3)}
    r = alice.post("/processes/front_door/upload", data={"csrf_token": csrf}, files=many)
    assert r.status_code == 400 and "The upload could not be read" in html.unescape(r.text)
    assert counts(eng) == before


def test_approving_a_draft_its_author_changed_after_the_review_opened_says_it_went_back(world):
    eng, app, _people = world
    files = stored_files(eng)
    d = drafts.create_draft(eng, process_id="front_door", base_version=1, actor="process-owner",
                            files=renamed(files, "Record the contact", "Take the call"))
    d = drafts.submit_draft(eng, d["id"], actor="process-owner", note="x")
    bob, b_csrf = client(app, OWNER2)
    opened = d["revision"]
    drafts.save_draft(eng, d["id"], files=renamed(files, "Record the contact", "Take the call now"),
                      expected_revision=opened, actor="process-owner")
    r = bob.post(f"/processes/drafts/{d['id']}/approve", data={"csrf_token": b_csrf, "revision": str(opened),
                                                               "note": "x"})
    assert r.status_code == 409
    page = text(r.text)
    assert f"Draft {d['id']} was changed by process-owner at " in page and "after you opened it, so it is back with " \
        "its author: it must be submitted again before it can be approved" in page
    assert ("This draft is not waiting for review (it is back with its author, who is changing it: it must be "
            "submitted again): there is nothing to approve or refuse.") in page
    assert "(it is draft)" not in page and drafts.get_draft(eng, d["id"])["status"] == "draft"


def test_the_modeller_says_a_diagram_without_a_drawing_cannot_be_shown_and_what_to_do(world):
    """A .bpmn with no drawing (generated, say) became a draft, and the modeller said only "The modeller could not
    open this draft: no diagram to display". And its note about other drafts said "Someone else is also editing"
    about the owner's own drafts."""
    eng, app, _people = world
    alice, csrf = client(app, "process-owner")
    undrawn = (b'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/'
               b'20100524/MODEL" id="d" targetNamespace="x"><bpmn:process id="front_door" isExecutable="true">'
               b'<bpmn:startEvent id="s"/></bpmn:process></bpmn:definitions>')
    r = alice.post("/processes/front_door/upload", data={"csrf_token": csrf},
                   files={"file": ("front_door.bpmn", undrawn, "application/xml")})
    assert r.status_code == 303, r.text
    first = int(r.headers["location"].split("/")[3].split("?")[0])
    page = text(alice.get(f"/processes/drafts/{first}/edit").text)
    assert ("front_door.bpmn has no drawing (BPMN DI), so the modeller cannot show it: it shows only what is drawn. "
            "Upload the file again saved from a modeller such as Camunda Modeler") in page
    other = drafts.create_draft(eng, process_id="front_door", base_version=1, actor="process-owner",
                                files=live_files(alice))
    page = text(alice.get(f"/processes/drafts/{other['id']}/edit").text)
    assert "no drawing" not in page  # the live version's diagram is drawn
    assert f"You have other drafts of this process open too: you (draft {first})." in page
    assert "Someone else" not in page
