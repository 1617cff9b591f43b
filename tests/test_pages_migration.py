"""Moving running cases from the browser and the JSON API (api/migrations.py): process owners dry-run
and move; team managers and auditors may only look at a dry run; everyone else is refused. Bad
input is a clear 4xx and changes nothing; a case that changed since the dry run is not moved."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.auth import create_user
from engine import instance_migration as im
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.replay import replay_case
from engine.runtime import Engine
from engine.schema import events, instances
from tests.browser import launch, live_server, run_axe, sign_in
from tests.conftest import DIAGRAMS, START

VARIANTS = Path(__file__).parent / "fixtures" / "migration"
PASSWORD = "a long test password"
USERS = {"owner": ["process_owner"], "manager": ["team_manager"], "auditor": ["auditor"],
         "worker": ["social_worker"]}


@pytest.fixture
def world(db_url):
    """three_tasks v1 with a case at `screen` and one at `record_contact`; v2 drops `screen`."""
    eng = Engine(db_url, registry=HandlerRegistry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
    at_screen = eng.start("three_tasks").case_id
    [t] = eng.list_tasks(case_id=at_screen)
    eng.complete_task(t["id"], {}, actor="advisor")
    at_contact = eng.start("three_tasks").case_id
    eng.deploy([VARIANTS / "three_tasks_screen_removed.bpmn"])
    for name, roles in USERS.items():
        create_user(eng, name, PASSWORD, display_name=f"Test {name}", roles=roles,
                    teams=["front_door"] if name == "worker" else [])
    yield eng, create_app(eng, run_timers=False), {"screen": at_screen, "contact": at_contact}
    eng.db.dispose()


def _client(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    page = client.get("/home").text
    return client, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _stored(eng) -> tuple:
    with eng.db.engine.connect() as conn:
        return (tuple(conn.execute(select(instances.c.id, instances.c.version, instances.c.process_version_id)
                                   .order_by(instances.c.id))),
                conn.execute(select(func.count()).select_from(events)).scalar())


# ---------------------------------------------------------------------- JSON API
def test_owner_dry_runs_and_moves_through_the_api(world):
    eng, app, cases = world
    client, csrf = _client(app, "owner")
    h = {"X-CSRF-Token": csrf}
    r = client.post("/api/processes/three_tasks/migrations/dry-run", json={"from_version": 1, "to_version": 2},
                    headers=h)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert (plan["running"], plan["can_move"]) == (2, 1)
    refused = next(c for c in plan["cases"] if c["case_id"] == cases["screen"])
    assert refused["reasons"] == ["it is at 'Screen' (screen), which version 2 does not have: map screen to an "
                                  "element of version 2 to move it"]
    expected = {str(c["instance_id"]): c["instance_version"] for c in plan["cases"]}
    r = client.post("/api/processes/three_tasks/migrations", headers=h, json={
        "from_version": 1, "to_version": 2, "reason": "screening dropped", "mapping": {"screen": "decide"},
        "expected_versions": expected})
    assert r.status_code == 200, r.text
    assert (r.json()["moved"], r.json()["refused"]) == (2, 0)
    moved = [e for e in eng.history(cases["screen"]) if e["type"] == "instance.migrated"]
    assert moved[0]["actor"] == "owner" and moved[0]["data"]["reason"] == "screening dropped"


@pytest.mark.parametrize("who, dry_run, move", [("manager", 200, 403), ("auditor", 200, 403),
                                                ("worker", 403, 403)])
def test_only_process_owners_move_and_only_oversight_may_look(world, who, dry_run, move):
    eng, app, _cases = world
    client, csrf = _client(app, who)
    h = {"X-CSRF-Token": csrf}
    body = {"from_version": 1, "to_version": 2}
    assert client.post("/api/processes/three_tasks/migrations/dry-run", json=body, headers=h).status_code == dry_run
    before = _stored(eng)
    r = client.post("/api/processes/three_tasks/migrations", json={**body, "reason": "x"}, headers=h)
    assert r.status_code == move and r.json()["error"] == "forbidden"
    assert _stored(eng) == before


@pytest.mark.parametrize("path, body, status, message", [
    ("no_such", {}, 404, "there is no process 'no_such'"),
    ("three_tasks", {"from_version": 3}, 404, "has no version 3"),
    ("three_tasks", {"to_version": 1}, 422, "both version 1"),
    ("three_tasks", {"mapping": {"screen": "nowhere"}}, 422, "there is no element 'nowhere' in version 2"),
    ("three_tasks", {"reason": ""}, 422, "the request is not valid"),
    ("three_tasks", {"timers": "sometimes"}, 422, "the request is not valid"),
])
def test_bad_input_is_a_clear_4xx_and_nothing_changes(world, path, body, status, message):
    eng, app, _cases = world
    client, csrf = _client(app, "owner")
    before = _stored(eng)
    r = client.post(f"/api/processes/{path}/migrations", headers={"X-CSRF-Token": csrf},
                    json={"from_version": 1, "to_version": 2, "reason": "why", **body})
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    assert _stored(eng) == before


def test_a_move_without_the_csrf_header_is_refused(world):
    eng, app, _cases = world
    client, _csrf = _client(app, "owner")
    before = _stored(eng)
    r = client.post("/api/processes/three_tasks/migrations", json={"from_version": 1, "to_version": 2,
                                                                  "reason": "x"})
    assert r.status_code == 403 and _stored(eng) == before


# ---------------------------------------------------------------------- pages
def _form(csrf: str, **extra) -> dict:
    return {"csrf_token": csrf, "from": "1", "to": "2", "timers": "refuse", **extra}


def test_pages_refuse_caseworkers_and_keep_auditors_read_only(world):
    eng, app, _cases = world
    worker, _ = _client(app, "worker")
    assert worker.get("/processes/three_tasks/migrate").status_code == 403
    auditor, csrf = _client(app, "auditor")
    page = auditor.get("/processes/three_tasks/migrate")
    assert page.status_code == 200 and "Check which cases can move" in page.text
    results = auditor.post("/processes/three_tasks/migrate/check", data=_form(csrf))
    assert results.status_code == 200
    assert "1 of 2 open cases can move" in results.text
    assert "Only process owners can move cases." in results.text and "Move selected cases" not in results.text
    before = _stored(eng)
    r = auditor.post("/processes/three_tasks/migrate/move", data=_form(csrf, reason="x", action="all",
                                                                         expected="1.1.2"))
    assert r.status_code == 403 and "Only process owners can move cases" in r.text
    assert _stored(eng) == before


def test_page_errors_name_the_problem_and_change_nothing(world):
    eng, app, _cases = world
    owner, csrf = _client(app, "owner")
    before = _stored(eng)
    assert owner.get("/processes/no_such/migrate").status_code == 404
    same = owner.get("/processes/three_tasks/migrate?from=2&to=2")
    assert same.status_code == 400 and "Choose a different version from version 2" in same.text
    half = owner.post("/processes/three_tasks/migrate/check",
                      data=_form(csrf, map_from=["screen", ""], map_to=["", ""]))
    assert half.status_code == 422
    assert "Choose the element in version 2 that &#39;screen&#39; becomes" in half.text
    missing = owner.post("/processes/three_tasks/migrate/check", data=_form(csrf, map_from="screen",
                                                                             map_to="nowhere"))
    assert missing.status_code == 422 and "there is no element &#39;nowhere&#39; in version 2" in missing.text
    no_csrf = owner.post("/processes/three_tasks/migrate/move", data={"from": "1", "to": "2", "reason": "x"})
    assert no_csrf.status_code == 403
    results = owner.post("/processes/three_tasks/migrate/check", data=_form(csrf))
    expected = re.search(r'name="expected" value="([^"]*)"', results.text).group(1)
    no_reason = owner.post("/processes/three_tasks/migrate/move", data=_form(csrf, expected=expected,
                                                                              action="all", reason=" "))
    assert no_reason.status_code == 422 and "Enter why the cases are being moved" in no_reason.text
    none_picked = owner.post("/processes/three_tasks/migrate/move", data=_form(csrf, expected=expected,
                                                                                action="selected", reason="x"))
    assert none_picked.status_code == 422 and "Select the cases to move" in none_picked.text
    assert _stored(eng) == before


def test_owner_moves_selected_cases_and_a_case_changed_since_the_dry_run_is_refused(world):
    eng, app, cases = world
    owner, csrf = _client(app, "owner")
    results = owner.post("/processes/three_tasks/migrate/check",
                         data=_form(csrf, map_from="screen", map_to="decide"))
    assert "2 of 2 open cases can move" in results.text
    expected = re.search(r'name="expected" value="([^"]*)"', results.text).group(1)
    [t] = eng.list_tasks(case_id=cases["contact"])
    eng.complete_task(t["id"], {}, actor="advisor")  # the case moves on after the dry run
    ids = [str(i["id"]) for c in (cases["screen"], cases["contact"]) for i in eng.get_case(c)["instances"]]
    done = owner.post("/processes/three_tasks/migrate/move", data=_form(
        csrf, expected=expected, action="selected", case=ids, reason="screening dropped",
        map_from="screen", map_to="decide"))
    assert done.status_code == 200, done.text
    assert "1 case moved" in done.text
    ref = eng.get_case(cases["contact"])["reference"]
    assert f"case {ref} changed since the dry run" in done.text
    assert [t["element_id"] for t in eng.list_tasks(case_id=cases["screen"])] == ["decide"]
    assert not [e for e in eng.history(cases["contact"]) if e["type"] == "instance.migrated"]


# ---------------------------------------------------------------------- in the browser
def test_owner_moves_cases_in_the_browser_with_the_keyboard_and_every_page_is_axe_clean(world):
    eng, app, cases = world
    with launch() as browser, live_server(app) as base:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, "owner", PASSWORD, then="/home")
        page.goto(f"{base}/processes/three_tasks/migrate")
        run_axe(page, "move cases: choices")
        page.select_option("#map_from-0", "screen")
        page.select_option("#map_to-0", "decide")
        page.get_by_label("Move them and keep each timer's original due date").check()
        page.get_by_role("button", name="Check which cases can move").click()
        page.wait_for_url(f"{base}/processes/three_tasks/migrate/check")
        assert page.locator("h1").inner_text() == "2 of 2 open cases can move"
        run_axe(page, "move cases: dry run")

        page.get_by_role("button", name="Move selected cases").click()  # nothing chosen, no reason
        page.locator(".govuk-error-summary").wait_for()
        assert "Enter why the cases are being moved" in page.locator(".govuk-error-summary").inner_text()
        run_axe(page, "move cases: dry run with errors")

        screen_ref = eng.get_case(cases["screen"])["reference"]
        page.get_by_label(f"Move {screen_ref}").focus()
        page.keyboard.press("Space")
        page.locator("#reason").focus()
        page.keyboard.type("The manager screens referrals now")
        page.get_by_role("button", name="Move selected cases").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("h1").inner_text() == "1 case moved"
        run_axe(page, "move cases: confirmation")
        context.close()
    assert [t["element_id"] for t in eng.list_tasks(case_id=cases["screen"])] == ["decide"]
    assert [t["element_id"] for t in eng.list_tasks(case_id=cases["contact"])] == ["record_contact"]
    assert replay_case(eng, cases["screen"]).ok  # the moved case still replays and its history verifies
    assert eng.verify(cases["screen"])[1] == []


def test_the_link_from_an_approval_names_only_the_target_and_the_source_defaults_to_a_version_with_cases(world):
    _eng, app, _cases = world
    owner, _csrf = _client(app, "owner")
    page = owner.get("/processes/three_tasks/migrate?to=2")
    assert page.status_code == 200
    assert re.search(r'<select[^>]*id="from".*?<option value="1" selected>', page.text, re.S)
    assert re.search(r'<select[^>]*id="to".*?<option value="2" selected>', page.text, re.S)


def test_the_case_chronology_says_in_words_which_version_a_process_moved_to_who_moved_it_and_why(db_url, calls):
    """The case record said "Instance migrated": nothing about which process, which versions, who, why, or the
    deadline the move changed."""
    eng = Engine(db_url, registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    case = eng.start("deadline").case_id
    eng.deploy([VARIANTS / "deadline_four_weeks.bpmn"])
    create_user(eng, "manager", PASSWORD, display_name="Test manager", roles=["team_manager"])
    create_user(eng, "owner", PASSWORD, display_name="Pat Owner", roles=["process_owner"])
    result = im.migrate(eng, "deadline", 1, 2, actor="owner", reason="Overruns are reviewed at 4 weeks now",
                        recompute_timers=True)
    assert [c.moved for c in result.cases] == [True]
    client, _ = _client(create_app(eng, run_timers=False), "manager")
    texts = [e["text"] for e in client.get(f"/api/cases/{case}/chronology").json()["entries"]]
    four_weeks, six_weeks = START + timedelta(weeks=4), START + timedelta(weeks=6)
    assert (f"Reablement with deadline moved from version 1 to version 2 by Pat Owner: overruns are reviewed at "
            f"4 weeks now; 6 weeks now due {four_weeks.day} {four_weeks:%B %Y} "
            f"(was {six_weeks.day} {six_weeks:%B %Y})") in texts, texts
    assert not [t for t in texts if t.startswith("Instance ")]
    eng.db.dispose()


def test_the_moved_page_names_each_timer_and_says_its_due_date_in_words(db_url, calls):
    """The confirmation said "six_weeks: 2031-04-14 → 2031-03-31" and "reminder: due date kept" (element ids,
    ISO dates; "kept" even when the owner chose to work the dates out again)."""
    eng = Engine(db_url, registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    eng.start("deadline")
    eng.deploy([VARIANTS / "deadline_four_weeks.bpmn"])
    create_user(eng, "owner", PASSWORD, display_name="Pat Owner", roles=["process_owner"])
    owner, csrf = _client(create_app(eng, run_timers=False), "owner")
    results = owner.post("/processes/deadline/migrate/check", data=_form(csrf, timers="recompute"))
    expected = re.search(r'name="expected" value="([^"]*)"', results.text).group(1)
    done = owner.post("/processes/deadline/migrate/move", data=_form(
        csrf, timers="recompute", expected=expected, action="all", reason="overruns reviewed at 4 weeks"))
    assert done.status_code == 200, done.text
    page = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", done.text)))
    four, five, six = (START + timedelta(weeks=w) for w in (4, 5, 6))
    assert f"6 weeks: now due {four.day} {four:%B %Y} (was {six.day} {six:%B %Y})" in page, page
    assert f"Reminder at 5 weeks: still due {five.day} {five:%B %Y}" in page
    assert "due date kept" not in page and "six_weeks" not in page
    eng.db.dispose()
