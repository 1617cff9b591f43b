"""The pages (api/pages.py): sign-in, the inbox and a task form, in a real browser and with TestClient.

A real uvicorn server runs in a background thread on 127.0.0.1 (a free port, stopped at the end);
headless Chromium (tests/browser.py) signs in as a reablement co-ordinator, claims the reablement
task from the team's queue, submits an invalid and then a valid form. axe-core (node_modules,
locked in package-lock.json) checks the sign-in, inbox and task pages against WCAG 2.1 A/AA.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import create_user
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.browser import AXE, launch, live_server, run_axe
from tests.conftest import DIAGRAMS, START, Calls

REABLEMENT_OUTCOME = {
    "type": "object",
    "title": "Reablement outcome",
    "required": ["outcome", "ended_on"],
    "properties": {
        "outcome": {"title": "Outcome of reablement", "description": "What the person needs now reablement has ended.",
                    "enum": ["independent", "reduced_package", "long_term_support", "admitted_to_hospital"]},
        "ended_on": {"title": "Date reablement ended", "description": "For example, 27 3 2031",
                     "type": "string", "format": "date"},
        "notes": {"title": "Notes", "description": "Anything the social work team should know.",
                  "type": "string", "maxLength": 2000},
        "goals_met": {"title": "Goals met", "type": "array",
                      "items": {"enum": ["washing", "dressing", "meals", "mobility"]}},
        "visits": {"title": "Number of visits", "type": "integer", "minimum": 0},
        "equipment_fitted": {"title": "Was equipment fitted?", "type": "boolean"},
    },
}
PASSWORD = "correct horse battery"


@pytest.fixture
def world(db_url):
    eng = Engine(db_url, registry=Calls().registry(),
                 forms=FormLibrary({"reablement_outcome": REABLEMENT_OUTCOME, "overrun": {"type": "object"}}))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_user(eng, "rosa", PASSWORD, display_name="Rosa Patel", roles=["reablement_coordinator"],
                teams=["reablement"])
    create_user(eng, "frank", PASSWORD, display_name="Frank Door", roles=["front_door_advisor"],
                teams=["front_door"])
    case = eng.start("deadline", title="Mrs Edith Clarke")
    task = next(t for t in eng.list_tasks(case_id=case.case_id) if t["element_id"] == "reablement")
    yield eng, app, case, task
    eng.db.dispose()


@pytest.fixture
def server(world):
    eng, app, case, task = world
    with live_server(app) as base:
        yield base, eng, case, task


def _signin_client(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)
    page = client.get("/sign-in")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/tasks", r.text
    inbox = client.get("/tasks")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', inbox.text).group(1)
    return client, csrf


# ---------------------------------------------------------------------- the browser journey
def test_reablement_coordinator_works_a_task_in_the_browser(server):
    base, eng, case, task = server
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with launch() as browser:
        context = browser.new_context(bypass_csp=True)  # axe is injected as an inline script
        page = context.new_page()
        refused = []
        page.on("requestfailed", lambda r: refused.append(r.url))
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status == 404 else None)

        page.goto(f"{base}/tasks")
        assert page.url == f"{base}/sign-in"
        run_axe(page, "sign-in")

        # sign in with the keyboard only
        page.goto(f"{base}/sign-in")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == "username":
                break
        assert page.evaluate("() => document.activeElement.id") == "username"
        page.keyboard.type("rosa")
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "password"
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks")

        # the team's queue shows the reablement task with its due date
        assert page.locator("h1").inner_text() == "My team's queue"
        row = page.locator("tr", has_text="Deliver reablement")
        assert row.count() == 1
        due = task["due_at"]
        assert f"{due.day} {due:%B %Y}" in row.inner_text()
        assert task["reference"] in row.inner_text() and "Mrs Edith Clarke" in row.inner_text()
        run_axe(page, "inbox")

        row.get_by_role("button", name=re.compile("Claim")).click()
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        assert re.search(r"Claimed by\s+you", page.locator(".govuk-summary-list").first.inner_text())
        assert eng.get_task(task["id"])["assignee"] == "rosa"
        run_axe(page, "task")

        # invalid: no outcome, a date that does not exist, notes typed
        page.fill("#f-ended_on-day", "31")
        page.fill("#f-ended_on-month", "2")
        page.fill("#f-ended_on-year", "2031")
        page.fill("#f-notes", "Edith now makes her own breakfast.")
        page.fill("#f-visits", "twelve")
        page.get_by_role("button", name="Complete task").click()
        summary = page.locator(".govuk-error-summary")
        summary.wait_for()
        text = summary.inner_text()
        assert "Select outcome of reablement" in text
        assert "Date reablement ended must be a real date" in text
        assert "Number of visits must be a number" in text
        assert page.input_value("#f-notes") == "Edith now makes her own breakfast."
        assert page.input_value("#f-ended_on-day") == "31"
        assert page.input_value("#f-visits") == "twelve"
        assert page.locator("#f-outcome-error").is_visible()
        assert page.title().startswith("Error: ")
        run_axe(page, "task with errors")
        assert eng.get_task(task["id"])["id"] == task["id"]  # still open

        # valid
        page.check("#f-outcome-1")
        page.fill("#f-ended_on-day", "28")
        page.fill("#f-visits", "12")
        page.check("#f-goals_met-0")
        page.check("#f-equipment_fitted-0")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_url(re.compile(r".*/tasks\?view=mine$"))
        banner = page.locator(".govuk-notification-banner--success")
        assert "Task completed: Deliver reablement" in banner.inner_text()
        run_axe(page, "inbox after completing")
        assert not [u for u in refused if "/static/" in u], refused
        context.close()

    done = [e for e in eng.history(case.case_id) if e["type"] == "task.completed"]
    assert done and done[-1]["actor"] == "rosa"
    assert done[-1]["data"]["data"] == {"outcome": "reduced_package", "ended_on": "2031-02-28",
                                        "notes": "Edith now makes her own breakfast.", "visits": 12,
                                        "goals_met": ["washing"], "equipment_fitted": True}


# ---------------------------------------------------------------------- without a browser
def test_signed_out_pages_redirect_to_sign_in(world):
    _eng, app, _case, task = world
    client = TestClient(app, follow_redirects=False)
    for url in ("/tasks", f"/tasks/{task['id']}", "/"):
        r = client.get(url)
        assert r.status_code == 303 and r.headers["location"] == "/sign-in", url


def test_front_door_advisor_gets_403_on_a_reablement_task(world):
    _eng, app, _case, task = world
    client, _csrf = _signin_client(app, "frank")
    r = client.get(f"/tasks/{task['id']}")
    assert r.status_code == 403
    assert "reablement" in r.text and "Deliver reablement" not in r.text
    assert "Deliver reablement" not in client.get("/tasks").text


def test_post_without_csrf_is_refused_and_changes_nothing(world):
    eng, app, _case, task = world
    client, csrf = _signin_client(app, "rosa")
    for form in ({}, {"csrf_token": "wrong"}):
        assert client.post(f"/tasks/{task['id']}/claim", data=form).status_code == 403
        assert client.post(f"/tasks/{task['id']}", data={**form, "outcome": "independent"}).status_code == 403
        assert client.post("/sign-out", data=form).status_code == 403
    assert eng.get_task(task["id"])["assignee"] is None
    r = client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert eng.get_task(task["id"])["assignee"] == "rosa"


def test_sign_in_form_needs_its_token_and_reports_failures(world):
    _eng, app, _case, _task = world
    client = TestClient(app, follow_redirects=False)
    assert client.post("/sign-in", data={"username": "rosa", "password": PASSWORD}).status_code == 403
    page = client.get("/sign-in")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": "rosa", "password": "wrong password"})
    assert r.status_code == 401 and "govuk-error-summary" in r.text and 'value="rosa"' in r.text


def test_conflict_keeps_what_was_typed(world):
    eng, app, _case, task = world
    client, csrf = _signin_client(app, "rosa")
    eng.claim(task["id"], "someone-else")
    eng.release(task["id"], "someone-else")  # the revision moved on
    r = client.post(f"/tasks/{task['id']}", data={"csrf_token": csrf, "revision": str(task["revision"]),
                                                    "outcome": "independent", "ended_on-day": "3",
                                                    "ended_on-month": "3", "ended_on-year": "2031",
                                                    "notes": "typed before the clash"})
    assert r.status_code == 409
    assert "Someone else completed or changed this task" in r.text
    assert "typed before the clash" in r.text


def test_static_files_are_an_allow_list(world):
    _eng, app, _case, _task = world
    client = TestClient(app)
    css = client.get("/static/govuk-frontend.min.css")
    assert css.status_code == 200 and "GDS Transport" not in css.text and "@font-face" not in css.text
    assert client.get("/static/app.js").status_code == 200
    for bad in ("/static/package.json", "/static/..%2F..%2Fpackage.json", "/static/../api/auth.py",
                "/static/govuk-crest.svg"):
        assert client.get(bad).status_code == 404, bad


def test_due_soon_and_overdue_tags_follow_the_engine_clock(world):
    from datetime import timedelta

    eng, app, _case, task = world
    client, _csrf = _signin_client(app, "rosa")
    tags = re.compile(r'class="govuk-tag govuk-tag--(?:yellow|red)">([^<]+)<')
    assert tags.findall(client.get("/tasks").text) == []
    eng.advance_clock(to=task["due_at"] - timedelta(days=1))  # no timer falls due before the due date
    assert client.get("/tasks").status_code == 303  # the 8-hour session ended on the engine's clock
    client, _csrf = _signin_client(app, "rosa")
    assert tags.findall(client.get("/tasks").text) == ["Due soon"]
    assert tags.findall(client.get(f"/tasks/{task['id']}").text) == ["Due soon"]
    # past the due date a timer fires, so check the rule itself for "Overdue"
    from api.page_kit import due_tag as _due_tag

    due = task["due_at"]
    assert _due_tag(due, due + timedelta(minutes=1))[0] == "Overdue"
    assert _due_tag(due, due - timedelta(days=2))[0] == "Due soon"
    assert _due_tag(due, due - timedelta(days=2, minutes=1)) is None
