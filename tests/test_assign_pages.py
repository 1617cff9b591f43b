"""A team manager gives work out, as caseworkers meet it in the browser (api/pages.py, api/tasks.py): reassigning a
task while its worker is typing, two managers assigning the same task at once, a refused person, a leaver's and a
delegate's tasks; and going back from Check your answers to change an answer (api/task_sections.py).

What a person notices: what they typed is still on the page when the task was given to someone else meanwhile,
and they are told who has it now; a stale or duplicate assignment says who did what, and when, in words (no task
id, no ISO time); a refused person's error is beside the form it came from, on the task page as it opens (a long
form's task list, not every question). The needs assessment's real form is used on the test diagram's task, as
tests/test_capacity_pages.py does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import create_user
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.browser import launch, live_server, run_axe, sign_in
from tests.conftest import DIAGRAMS, START, Calls
from tests.test_forms_sections import _enter, _focused, _tab_to
from tests.test_pages_inbox import PASSWORD

NEEDS = FormLibrary.from_folder(Path(__file__).resolve().parent.parent / "forms").schema("needs_assessment")
SUMMARY = {"type": "object", "required": ["summary"],
           "properties": {"summary": {"title": "Summary", "type": "string", "maxLength": 2000}}}
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")


def _world(db_url, schema):
    """The reablement task of the test diagram with `schema` as its form; two co-ordinators and two managers of the
    reablement team (a council's team manager is a member of the team they manage)."""
    eng = Engine(db_url, registry=Calls().registry(),
                 forms=FormLibrary({"reablement_outcome": schema, "overrun": {"type": "object"}}))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    for username, name, role, teams in (
            ("rosa", "Rosa Patel", "reablement_coordinator", ["reablement"]),
            ("ann", "Ann Ortiz", "reablement_coordinator", ["reablement"]),
            ("max", "Max Lead", "team_manager", ["reablement", "team_manager"]),
            ("mia", "Mia Shaw", "team_manager", ["reablement", "team_manager"])):
        create_user(eng, username, PASSWORD, display_name=name, roles=[role], teams=teams)
    case = eng.start("deadline", title="Mr Peter Clarke").case_id
    task = next(t for t in eng.list_tasks(case_id=case) if t["element_id"] == "reablement")
    return eng, create_app(eng, run_timers=False), task


def _page_as(browser, base, username):
    page = browser.new_context(bypass_csp=True).new_page()
    sign_in(page, base, username, PASSWORD)
    return page


def test_what_a_worker_typed_in_a_section_stays_when_a_manager_gives_the_task_to_someone_else(db_url):
    eng, app, task = _world(db_url, NEEDS)
    eng.claim(task["id"], "rosa")
    try:
        with live_server(app) as base, launch() as browser:
            rosa = _page_as(browser, base, "rosa")
            rosa.goto(f"{base}/tasks/{task['id']}/sections/about")
            rosa.fill("#f-who_took_part", "Peter and his daughter Anne")
            rosa.check("#f-consent_to_share-0")

            # meanwhile the manager gives the task to Ann, by keyboard
            manager = _page_as(browser, base, "max")
            manager.goto(f"{base}/tasks/{task['id']}")
            manager.select_option("#f-to", "ann")
            _tab_to(manager, "Assign")
            _enter(manager)
            assert "Assigned Deliver reablement for CASE-000001 to Ann Ortiz" in manager.locator("main").inner_text()
            assert eng.get_task(task["id"])["assignee"] == "ann"

            rosa.get_by_role("button", name="Save and continue").last.click()
            rosa.wait_for_load_state()
            notice = rosa.locator("[role=alert]").first.inner_text()
            assert "Max Lead assigned it to Ann Ortiz" in notice, notice
            assert "What you typed is still below" in notice, notice
            assert not ISO_TIME.search(notice) and not UUID_TEXT.search(notice), notice
            assert "permission" not in rosa.locator("main").inner_text()
            assert rosa.input_value("#f-who_took_part") == "Peter and his daughter Anne"  # nothing typed is lost
            assert rosa.is_checked("#f-consent_to_share-0")
            run_axe(rosa, "section sent after the task was given to someone else")
            # and nothing was saved on Ann's task in Rosa's name
            assert eng.get_task(task["id"])["assignee"] == "ann"
            assert eng.get_task(task["id"]).get("draft") is None
    finally:
        eng.db.dispose()


def _client(app, username):
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return client, re.search(r'name="csrf_token" value="([^"]+)"', client.get("/tasks").text).group(1)


def test_save_and_come_back_later_after_the_task_was_reassigned_keeps_what_was_typed(db_url):
    eng, app, task = _world(db_url, SUMMARY)
    try:
        eng.claim(task["id"], "rosa")
        opened = eng.get_task(task["id"])["revision"]  # Rosa's page was opened now
        eng.assign(task["id"], "ann", actor="max", owner="ann")
        client, csrf = _client(app, "rosa")
        r = client.post(f"/tasks/{task['id']}", data={"csrf_token": csrf, "revision": str(opened),
                                                      "action": "draft", "summary": "Walks to the shop with a frame"})
        assert r.status_code == 409, r.text
        assert "Max Lead assigned it to Ann Ortiz" in r.text
        assert "Walks to the shop with a frame" in r.text  # still in the box
        assert not ISO_TIME.search(r.text.split("<main")[1]) and "permission" not in r.text
        assert eng.get_task(task["id"]).get("draft") is None
        # the API says the same: a 409 naming who changed it, not a 403
        r = client.put(f"/api/tasks/{task['id']}/draft", json={"data": {"summary": "x"}, "revision": opened},
                       headers={"X-CSRF-Token": csrf})
        assert r.status_code == 409 and r.json()["changed_by"] == "max" and r.json()["to"] == "ann", r.text
    finally:
        eng.db.dispose()


@pytest.mark.browser
def test_two_managers_assigning_the_same_task_at_once_are_told_in_words_who_got_there_first(db_url):
    eng, app, task = _world(db_url, NEEDS)
    try:
        with live_server(app) as base, launch() as browser:
            first, second = _page_as(browser, base, "max"), _page_as(browser, base, "mia")
            for page in (first, second):
                page.goto(f"{base}/tasks/{task['id']}")
            first.select_option("#f-to", "rosa")
            first.get_by_role("button", name="Assign").click()
            first.wait_for_load_state()
            second.select_option("#f-to", "ann")
            second.get_by_role("button", name="Assign").click()
            second.wait_for_load_state()
            assert second.locator("h1").inner_text() == "This task has changed"
            text = second.locator("main").inner_text()
            assert "Max Lead assigned it to Rosa Patel on " in text and "Nothing was changed." in text, text
            assert not ISO_TIME.search(text) and not UUID_TEXT.search(text), text
            run_axe(second, "assignment conflict")
            assert eng.get_task(task["id"])["assignee"] == "rosa"  # the second assignment changed nothing
    finally:
        eng.db.dispose()


@pytest.mark.browser
def test_a_refused_assignment_shows_the_task_list_with_the_error_beside_the_assign_form(db_url):
    eng, app, task = _world(db_url, NEEDS)
    eng.claim(task["id"], "max")  # the manager holds it: they may delegate it and assign it
    try:
        with live_server(app) as base, launch() as browser:
            page = _page_as(browser, base, "max")
            page.goto(f"{base}/tasks/{task['id']}")
            _tab_to(page, "Assign")
            _enter(page)  # nobody chosen
            summary = page.locator(".govuk-error-summary")
            assert summary.inner_text().endswith("Select the person to give the task to")
            assert page.evaluate("document.activeElement.className").startswith("govuk-error-summary")
            # the page as it opens: the task list, not every question of the long form
            assert page.locator(".govuk-task-list").count() == 1
            assert page.locator("#f-who_took_part").count() == 0
            assert page.locator("#f-to-assign-error").inner_text().endswith("Select the person to give the task to")
            assert page.locator("#f-to-error").count() == 0  # not beside the Delegate form
            run_axe(page, "assignment refused")
            page.keyboard.press("Tab")  # the summary's link goes to the Assign form's select
            page.keyboard.press("Enter")
            assert _focused(page) == "f-to-assign"

            # someone deactivated after the page was opened: said beside the Assign form, nothing changed
            from sqlalchemy import update

            from api.auth import users
            page.goto(f"{base}/tasks/{task['id']}")
            page.select_option("#f-to-assign", "ann")
            with eng.db.transaction() as conn:
                conn.execute(update(users).where(users.c.username == "ann").values(active=False))
            page.locator("form[action$='/assign'] button").click()
            page.wait_for_load_state()
            assert "Ann Ortiz (ann) is not an active user" in page.locator("#f-to-assign-error").inner_text()
            assert page.locator(".govuk-task-list").count() == 1
            assert eng.get_task(task["id"])["assignee"] == "max"
    finally:
        eng.db.dispose()


def test_a_manager_with_nobody_to_give_the_task_to_sees_no_empty_who_works_on_this_task_heading(db_url):
    from sqlalchemy import update

    from api.auth import users

    eng, app, task = _world(db_url, SUMMARY)
    try:
        client, _csrf = _client(app, "mia")
        assert "Who works on this task" in client.get(f"/tasks/{task['id']}").text  # Assign, with people to choose
        with eng.db.transaction() as conn:  # everyone else in the team has left
            conn.execute(update(users).where(users.c.username.in_(["rosa", "ann", "max"])).values(active=False))
        page = client.get(f"/tasks/{task['id']}").text
        assert "Who works on this task" not in page and 'action="/tasks/' in page  # the task is still there
        assert "Assign to" not in page
    finally:
        eng.db.dispose()


# ---------------------------------------------------------------------- going back to change an answer
@pytest.mark.browser
def test_changing_an_answer_from_check_your_answers_comes_back_to_check_your_answers(db_url):
    """The GOV.UK check-answers pattern: Change opens the question on its section's page; Save and continue
    goes back to Check your answers (not the task list), showing the new answer; by keyboard."""
    eng, app, task = _world(db_url, NEEDS)
    eng.claim(task["id"], "rosa")
    eng.save_draft(task["id"], {"interpreter_needed": True, "interpreter_language": "Polish",
                                "consent_to_share": "given"}, actor="rosa")
    try:
        with live_server(app) as base, launch() as browser:
            page = _page_as(browser, base, "rosa")
            page.goto(f"{base}/tasks/{task['id']}/check-answers")
            _tab_to(page, "Change Does the person need an interpreter?")
            _enter(page)
            assert page.locator("h1").inner_text() == "About the assessment, capacity and advocacy"
            assert page.locator(".govuk-back-link").inner_text() == "Back to check your answers"
            run_axe(page, "section opened from check your answers")
            assert _focused(page) == "f-interpreter_needed-0"  # the question the link named (Yes chosen)
            page.keyboard.press("ArrowDown")  # No
            assert page.is_checked("#f-interpreter_needed-1")
            _tab_to(page, "Save and continue")
            _enter(page)
            assert page.url == f"{base}/tasks/{task['id']}/check-answers", page.url
            answers = page.locator("main").inner_text()
            assert "Does the person need an interpreter?\tNo" in answers, answers
            assert "Polish" not in answers  # the language asked only under Yes is gone
            assert eng.get_task(task["id"])["draft"]["interpreter_needed"] is False
    finally:
        eng.db.dispose()


def test_a_task_left_with_a_deactivated_worker_says_so_and_a_manager_gives_it_to_someone_else(db_url):
    """A leaver's account is deactivated with a task still claimed: the team's queue and the task page say whose
    it is and that the account is deactivated, so the manager knows to give it on (their draft goes with it)."""
    from sqlalchemy import update

    from api.auth import users

    eng, app, task = _world(db_url, SUMMARY)
    try:
        eng.claim(task["id"], "rosa")
        eng.save_draft(task["id"], {"summary": "Walks to the shop with a frame"}, actor="rosa")
        with eng.db.transaction() as conn:
            conn.execute(update(users).where(users.c.username == "rosa").values(active=False))
        manager, csrf = _client(app, "max")
        queue = manager.get("/tasks?view=team").text
        assert "With Rosa Patel (account deactivated)" in queue
        page = manager.get(f"/tasks/{task['id']}").text
        assert "This task is with Rosa Patel (account deactivated)." in page
        revision = re.search(r'name="revision" value="(\d+)"', page).group(1)
        r = manager.post(f"/tasks/{task['id']}/assign", data={"csrf_token": csrf, "revision": revision, "to": "ann"})
        assert r.status_code == 303, r.text
        assert eng.get_task(task["id"])["assignee"] == "ann"
        ann, _ = _client(app, "ann")
        assert "Walks to the shop with a frame" in ann.get(f"/tasks/{task['id']}").text  # nothing typed is lost
    finally:
        eng.db.dispose()


def test_a_delegate_whose_colleague_is_on_leave_is_told_how_to_finish_and_can_once_assigned(db_url):
    """Rosa delegates her task to Ann before her leave; only the owner completes a delegated task, so Ann is told a
    team manager can assign it to her; once the manager does, Ann completes it herself, with her saved answers."""
    eng, app, task = _world(db_url, SUMMARY)
    try:
        eng.claim(task["id"], "rosa")
        eng.delegate(task["id"], "ann", actor="rosa")
        eng.save_draft(task["id"], {"summary": "Walks to the shop with a frame"}, actor="ann")
        ann, ann_csrf = _client(app, "ann")
        page = ann.get(f"/tasks/{task['id']}").text
        assert "If they are away, a team manager can assign the task to you" in page
        assert ">Complete task<" not in page  # the delegate cannot complete it
        manager, csrf = _client(app, "max")
        revision = re.search(r'name="revision" value="(\d+)"', manager.get(f"/tasks/{task['id']}").text).group(1)
        assert manager.post(f"/tasks/{task['id']}/assign", data={"csrf_token": csrf, "revision": revision,
                                                                   "to": "ann"}).status_code == 303
        page = ann.get(f"/tasks/{task['id']}").text
        assert ">Complete task<" in page and "Walks to the shop with a frame" in page
        revision = re.search(r'name="revision" value="(\d+)"', page).group(1)
        r = ann.post(f"/tasks/{task['id']}", data={"csrf_token": ann_csrf, "revision": revision, "action": "complete",
                                                   "summary": "Walks to the shop with a frame"})
        assert r.status_code == 303, r.text
        assert [e["actor"] for e in eng.history(task["case_id"]) if e["type"] == "task.completed"] == ["ann"]
    finally:
        eng.db.dispose()
