"""The inbox filters and the task page's actions and forms (api/pages.py, api/page_forms.py).

Browser (headless Chromium, tests/browser.py): filter the inbox with the keyboard; delegate a task,
save a draft and return it between two users; a nested-object form with a conditional reveal;
axe-core (WCAG 2.1 A/AA) on the filtered inbox and on the task page with nested and conditional
fields, before and after errors. TestClient: the filter form's errors, nested data and errors
mapped to sub-fields, answers under a hidden option not sent, CSRF on the new buttons.
"""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from api.auth import create_user
from api.page_forms import engine_errors, fields_for, read_form, walk
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.browser import launch
from tests.conftest import DIAGRAMS, START, Calls
from tests.test_pages_inbox import PASSWORD, _axe, _free_port, _signin_client

# a nested object, an object revealed by a Yes, and a field revealed by a No (like needs_assessment / review)
OUTCOME = {
    "type": "object",
    "required": ["outcome", "carer_present", "wellbeing"],
    "properties": {
        "outcome": {"title": "Outcome of reablement", "enum": ["independent", "reduced_package"]},
        "wellbeing": {"type": "object", "title": "Impact on wellbeing", "required": ["significant", "reason"],
                      "properties": {
                          "significant": {"type": "boolean", "title": "Is there a significant impact?"},
                          "reason": {"type": "string", "minLength": 1, "title": "Reasons for this judgement"},
                          "areas": {"type": "array", "title": "Areas affected", "uniqueItems": True,
                                    "items": {"enum": ["personal_dignity", "control_over_day_to_day_life"]}}}},
        "carer_present": {"type": "boolean", "title": "Does someone care for the person?"},
        "carer": {"type": "object", "title": "The carer", "required": ["name", "relationship"],
                  "properties": {"name": {"type": "string", "minLength": 1, "title": "Carer's name"},
                                 "relationship": {"type": "string", "minLength": 1,
                                                  "title": "Relationship to the person"}}},
        "why_no_carer": {"type": "string", "title": "Why there is no carer"},
        "notes": {"title": "Notes", "type": "string", "maxLength": 2000},
    },
    "if": {"properties": {"carer_present": {"const": True}}, "required": ["carer_present"]},
    "then": {"required": ["carer"]},
    "else": {"required": ["why_no_carer"]},
}


@pytest.fixture
def world(db_url):
    eng = Engine(db_url, registry=Calls().registry(),
                 forms=FormLibrary({"reablement_outcome": OUTCOME, "overrun": {"type": "object"}}))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_user(eng, "rosa", PASSWORD, display_name="Rosa Patel", roles=["reablement_coordinator"],
                teams=["reablement"])
    create_user(eng, "omar", PASSWORD, display_name="Omar Shah", roles=["occupational_therapist"],
                teams=["reablement"])
    tasks = {}
    for title in ("Mrs Edith Clarke", "Mr Arthur Patel"):
        case = eng.start("deadline", title=title).case_id
        tasks[title] = next(t for t in eng.list_tasks(case_id=case) if t["element_id"] == "reablement")
    yield eng, app, tasks
    eng.db.dispose()


@pytest.fixture
def server(world):
    import threading
    import time

    import uvicorn

    eng, app, tasks = world
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", eng, tasks
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/tasks")


# ---------------------------------------------------------------------- browser
def test_filter_delegate_draft_return_and_a_nested_conditional_form_in_the_browser(server):
    base, eng, tasks = server
    edith, arthur = tasks["Mrs Edith Clarke"], tasks["Mr Arthur Patel"]
    with launch() as browser:
        rosa_ctx = browser.new_context(bypass_csp=True)
        page = rosa_ctx.new_page()
        _sign_in(page, base, "rosa")
        assert page.locator("#tab-team").inner_text() == "My team's queue (2)"

        # filter by person with the keyboard only: Tab to the Person box, type, Enter submits the GET form
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == "f-person":
                break
        assert page.evaluate("() => document.activeElement.id") == "f-person"
        page.keyboard.type("arthur")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/tasks\?.*person=arthur"))
        rows = page.locator("tbody tr")
        assert rows.count() == 1 and "Mr Arthur Patel" in rows.inner_text()
        assert page.input_value("#f-person") == "arthur"  # the filter keeps its value
        assert "1 task match the filters" in page.locator("#task-counts").inner_text()
        _axe(page, "filtered inbox")

        # an invalid value: an error summary, and the list unfiltered
        page.goto(f"{base}/tasks?within=forever")
        assert "Days must be a whole number" in page.locator(".govuk-error-summary").inner_text()
        _axe(page, "inbox with a filter error")

        # claim Edith's task, save a draft with a nested answer, delegate it to Omar
        page.goto(f"{base}/tasks/{edith['id']}")
        page.get_by_role("button", name="Claim this task").click()
        page.wait_for_url(f"{base}/tasks/{edith['id']}")
        # the carer's fieldset is revealed only by "Yes" (GOV.UK conditional reveal)
        assert not page.locator("#f-carer-name").is_visible()
        page.check("#f-carer_present-0")
        assert page.locator("#f-carer-name").is_visible()
        page.check("#f-carer_present-1")
        assert page.locator("#f-why_no_carer").is_visible() and not page.locator("#f-carer-name").is_visible()
        page.check("#f-carer_present-0")
        _axe(page, "task with nested and conditional fields")
        page.fill("#f-carer-name", "Jean Clarke")
        page.fill("#f-wellbeing-reason", "Lonely since her fall")
        page.get_by_role("button", name="Save and come back later").click()
        page.wait_for_url(re.compile(r".*/tasks\?view=mine$"))
        assert "Draft saved" in page.locator(".govuk-notification-banner--success").inner_text()
        page.goto(f"{base}/tasks/{edith['id']}")
        assert page.input_value("#f-carer-name") == "Jean Clarke"  # pre-filled from the draft
        assert page.locator("#f-carer-name").is_visible()  # "Yes" is still chosen
        page.select_option("#f-to", "omar")
        page.get_by_role("button", name="Delegate", exact=True).click()
        page.wait_for_url(re.compile(r".*/tasks\?view=delegated$"))
        assert "Delegated to omar" in page.locator("tbody").inner_text()
        assert page.locator("#tab-delegated").inner_text() == "Delegated by me (1)"

        # Omar sees it in "My tasks", marked, fills in more, saves and returns it
        omar_ctx = browser.new_context(bypass_csp=True)
        opage = omar_ctx.new_page()
        _sign_in(opage, base, "omar")
        opage.goto(f"{base}/tasks?view=mine")
        assert "Delegated by rosa" in opage.locator("tbody").inner_text()
        opage.goto(f"{base}/tasks/{edith['id']}")
        assert "rosa delegated this task to you" in opage.locator("#delegated-note").inner_text()
        assert opage.get_by_role("button", name="Complete task").count() == 0
        assert opage.input_value("#f-carer-name") == "Jean Clarke"
        opage.fill("#f-carer-relationship", "Daughter")
        opage.get_by_role("button", name="Save and come back later").click()
        opage.wait_for_url(re.compile(r".*/tasks\?view=mine$"))
        opage.goto(f"{base}/tasks/{edith['id']}")
        opage.get_by_role("button", name="Return to rosa").click()
        opage.wait_for_url(re.compile(r".*/tasks\?view=mine$"))
        assert "Returned" in opage.locator(".govuk-notification-banner--success").inner_text()
        omar_ctx.close()

        # Rosa gets it back with Omar's draft; errors map to the nested sub-fields; then she completes it
        page.goto(f"{base}/tasks/{edith['id']}")
        assert page.input_value("#f-carer-relationship") == "Daughter"
        page.fill("#f-carer-name", "")
        page.get_by_role("button", name="Complete task").click()
        summary = page.locator(".govuk-error-summary")
        summary.wait_for()
        text = summary.inner_text()
        assert "Select outcome of reablement" in text
        assert "Enter carer's name" in text
        assert "Select is there a significant impact?" in text
        assert page.locator("#f-carer-name-error").is_visible()
        _axe(page, "task with nested errors")
        page.check("#f-outcome-0")
        page.check("#f-wellbeing-significant-1")
        page.fill("#f-carer-name", "Jean Clarke")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_url(re.compile(r".*/tasks\?view=mine$"))
        rosa_ctx.close()

    done = [e for e in eng.history(edith["case_id"]) if e["type"] == "task.completed"][-1]
    assert done["actor"] == "rosa"
    assert done["data"]["data"] == {"outcome": "independent", "carer_present": True,
                                    "carer": {"name": "Jean Clarke", "relationship": "Daughter"},
                                    "wellbeing": {"significant": False, "reason": "Lonely since her fall"}}
    assert arthur["id"] in [t["id"] for t in eng.list_tasks()]


# ---------------------------------------------------------------------- without a browser
def test_the_inbox_filter_form_reports_bad_values_and_keeps_good_ones(world):
    _eng, app, tasks = world
    client, _csrf = _signin_client(app, "rosa")
    r = client.get("/tasks?team=front_door&due=later&person=edith")
    assert r.status_code == 422
    assert "Team must be one of your teams" in r.text and "Due must be one of" in r.text
    assert 'href="#f-team"' in r.text and 'href="#f-due"' in r.text
    assert 'value="edith"' in r.text
    r = client.get("/tasks?person=edith&sort=person&order=desc")
    assert r.status_code == 200
    assert tasks["Mrs Edith Clarke"]["reference"] in r.text and tasks["Mr Arthur Patel"]["reference"] not in r.text
    assert '<option value="person" selected>' in r.text and '<option value="desc" selected>' in r.text


def test_new_buttons_need_the_csrf_token_and_the_right_person(world):
    eng, app, tasks = world
    tid = tasks["Mrs Edith Clarke"]["id"]
    client, csrf = _signin_client(app, "rosa")
    for action in ("release", "delegate", "return", "assign"):
        assert client.post(f"/tasks/{tid}/{action}", data={"to": "omar"}).status_code == 403, action
    assert client.post(f"/tasks/{tid}", data={"csrf_token": csrf, "action": "draft",
                                              "notes": "x"}).status_code == 403  # not claimed: no draft
    assert client.post(f"/tasks/{tid}/assign", data={"csrf_token": csrf, "to": "omar"}).status_code == 403
    client.post(f"/tasks/{tid}/claim", data={"csrf_token": csrf})
    r = client.post(f"/tasks/{tid}/delegate", data={"csrf_token": csrf, "to": "nobody"})
    assert r.status_code == 422 and "no user" in r.text and "govuk-error-summary" in r.text
    stale = str(eng.get_task(tid)["revision"] - 1)
    r = client.post(f"/tasks/{tid}/delegate", data={"csrf_token": csrf, "to": "omar", "revision": stale})
    assert r.status_code == 409 and "rosa claimed it" in r.text
    assert eng.get_task(tid)["assignee"] == "rosa"


def test_nested_answers_become_nested_data_and_errors_find_their_sub_field():
    fields = fields_for(OUTCOME)
    names = [f.name for f in walk(fields)]
    assert "carer.name" in names and "wellbeing.significant" in names and "wellbeing.areas" in names
    kinds = {f.name: f.kind for f in walk(fields)}
    assert kinds["wellbeing"] == "object" and kinds["wellbeing.areas"] == "checkboxes"
    assert [f.name for f in fields] == ["outcome", "wellbeing", "carer_present", "notes"]  # carer is revealed
    form = {"carer_present": ["false"], "carer.name": ["Typed then hidden"], "why_no_carer": ["Lives alone"],
            "wellbeing.significant": ["true"], "wellbeing.areas": ["personal_dignity"]}
    data, local = read_form(fields, form)
    assert local == {}
    # answers under the option not chosen are not sent; a started object gets its empty free text
    assert data == {"carer_present": False, "why_no_carer": "Lives alone",
                    "wellbeing": {"significant": True, "areas": ["personal_dignity"], "reason": ""}}
    messages, general = engine_errors(fields, [
        {"field": "wellbeing/reason", "message": "'' is too short"},
        {"field": "carer/relationship", "message": "'relationship' is required"},
        {"field": "outcome", "message": "'outcome' is required"}, {"field": None, "message": "odd"}])
    assert messages == {"wellbeing.reason": "Enter reasons for this judgement",
                        "carer.relationship": "Enter relationship to the person",
                        "outcome": "Select outcome of reablement"}
    assert general == ["odd"]


def test_the_real_forms_conditions_become_reveals():
    """The real forms' if/then conditions become reveals under a Yes/No or choice question."""
    from pathlib import Path

    from forms import __file__ as forms_init

    lib = FormLibrary.from_folder(Path(forms_init).parent)
    contact = fields_for(lib.schema("contact"))
    from_hospital = next(f for f in walk(contact) if f.name == "from_hospital")
    assert [f.name for f in from_hospital.reveal.get("true", [])] == ["discharge_date"]
    needs = fields_for(lib.schema("needs_assessment"))
    carer_present = next(f for f in needs if f.name == "carer_present")
    assert [f.name for f in carer_present.reveal["true"]] == ["carer"]
    assert next(f for f in walk(needs) if f.name == "outcomes.managing_nutrition.ways").kind == "checkboxes"
