"""The inbox filters and the task page's actions and forms (api/pages.py, api/page_forms.py).

Browser (headless Chromium, tests/browser.py): filter the inbox with the keyboard; delegate a task,
save a draft and return it between two users; a nested-object form with a conditional reveal;
axe-core (WCAG 2.1 A/AA) on the filtered inbox and on the task page with nested and conditional
fields, before and after errors. TestClient: the filter form's errors, nested data and errors
mapped to sub-fields, answers under a hidden option not sent, CSRF on the new buttons.

Repeating groups (arrays of objects, the real `support_plan` form's outcomes): add and remove items
without JavaScript, what was typed kept, empty items dropped, errors naming the item, drafts; in the
browser by keyboard, with axe on several items and with errors. Due dates in UK time across the
change to British Summer Time.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select, update

from api.app import create_app
from api.auth import create_user
from api.page_forms import engine_errors, fields_for, read_form, set_errors, walk
from api.page_kit import long_date
from engine.forms import FormLibrary
from engine.runtime import Engine
from engine.schema import tasks as task_rows
from tests.browser import launch, live_server, run_axe, sign_in
from tests.conftest import DIAGRAMS, START, Calls
from tests.test_pages_inbox import PASSWORD, _signin_client

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
    eng, app, tasks = world
    with live_server(app) as base:
        yield base, eng, tasks


FORMS = Path(__file__).resolve().parent.parent / "forms"
SUPPORT_PLAN = json.loads((FORMS / "support_plan.schema.json").read_text())


@pytest.fixture
def plan_world(db_url):
    """The deadline diagram's task, with the real support plan form: one task, claimed by rosa."""
    eng = Engine(db_url, registry=Calls().registry(),
                 forms=FormLibrary({"reablement_outcome": SUPPORT_PLAN, "overrun": {"type": "object"}}))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_user(eng, "rosa", PASSWORD, display_name="Rosa Patel", roles=["reablement_coordinator"],
                teams=["reablement"])
    case = eng.start("deadline", title="Mrs Joan Barker").case_id
    task = next(t for t in eng.list_tasks(case_id=case) if t["element_id"] == "reablement")
    yield eng, app, task
    eng.db.dispose()


def _sign_in(page, base: str, username: str) -> None:
    sign_in(page, base, username, PASSWORD, click=True)


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
        run_axe(page, "filtered inbox")

        # an invalid value: an error summary, and the list unfiltered
        page.goto(f"{base}/tasks?within=forever")
        assert "Days must be a whole number" in page.locator(".govuk-error-summary").inner_text()
        run_axe(page, "inbox with a filter error")

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
        run_axe(page, "task with nested and conditional fields")
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
        assert "Delegated to Omar Shah" in page.locator("tbody").inner_text()  # by name, not username
        assert page.locator("#tab-delegated").inner_text() == "Delegated by me (1)"

        # Omar sees it in "My tasks", marked, fills in more, saves and returns it
        omar_ctx = browser.new_context(bypass_csp=True)
        opage = omar_ctx.new_page()
        _sign_in(opage, base, "omar")
        opage.goto(f"{base}/tasks?view=mine")
        assert "Delegated by Rosa Patel" in opage.locator("tbody").inner_text()
        opage.goto(f"{base}/tasks/{edith['id']}")
        assert "Rosa Patel delegated this task to you" in opage.locator("#delegated-note").inner_text()
        assert opage.get_by_role("button", name="Complete task").count() == 0
        assert opage.input_value("#f-carer-name") == "Jean Clarke"
        opage.fill("#f-carer-relationship", "Daughter")
        opage.get_by_role("button", name="Save and come back later").click()
        opage.wait_for_url(re.compile(r".*/tasks\?view=mine$"))
        opage.goto(f"{base}/tasks/{edith['id']}")
        opage.get_by_role("button", name="Return to Rosa Patel").click()
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
        run_axe(page, "task with nested errors")
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
    assert r.status_code == 409 and "you claimed it on " in r.text and "Nothing was changed." in r.text
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
    # the carer is shown only under "Yes" and "No" was chosen: its questions are not the user's to answer
    assert messages == {"wellbeing.reason": "Enter reasons for this judgement",
                        "outcome": "Select outcome of reablement"}
    assert general == ["odd"]
    read_form(fields, {**form, "carer_present": ["true"]})
    messages, _ = engine_errors(fields, [{"field": "carer/relationship", "message": "'relationship' is required"}])
    assert messages == {"carer.relationship": "Enter relationship to the person"}
    # a message that already names the question is shown once, not "Name: Name must only …"
    named = "Carer's name must only contain characters you can see: remove the zero-width character U+200B"
    messages, _ = engine_errors(fields, [{"field": "carer/name", "message": named},
                                         {"field": "carer/relationship", "message": "is not valid"}])
    assert messages["carer.name"] == named
    assert messages["carer.relationship"] == "Relationship to the person: is not valid"


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


# ---------------------------------------------------------------------- repeating groups (arrays of objects)
class _Page(HTMLParser):
    """What a user sees of a task form: legends, the values in its boxes, its buttons, what has focus."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.legends: list[str] = []
        self.values: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []  # (value, visible and hidden text)
        self.autofocus: list[str] = []
        self._in: tuple[str, dict[str, str]] | None = None
        self._text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: v or "" for k, v in attrs}
        if "autofocus" in a:
            self.autofocus.append(a.get("id", ""))
        if tag == "input" and a.get("type") == "text":
            self.values[a["name"]] = a.get("value", "")
        if tag in ("legend", "textarea", "button"):
            self._in, self._text = (tag, a), ""

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[0] == tag:
            kind, a = self._in
            if tag == "legend":
                self.legends.append(self._text.strip())
            elif tag == "textarea":
                self.values[a["name"]] = self._text.removeprefix("\n")
            elif "value" in a:
                self.buttons.append((a["value"], " ".join(self._text.split())))
            self._in = None

    def items(self) -> list[str]:
        return [t for t in self.legends if re.fullmatch(r"Outcome \d+", t)]


REST = {"money_management": "council_managed", "may_change_without_contacting": "The time of the morning visit",
        "coordinating_worker.name": "Sam Social", "coordinating_worker.role": "Social worker",
        "review_frequency_months": "12"}


def _claimed(plan_world):
    eng, app, task = plan_world
    client, csrf = _signin_client(app, "rosa")
    assert client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf}).status_code == 303
    return client, csrf, f"/tasks/{task['id']}"


def _completed(eng, task) -> list[dict]:
    return [e["data"]["data"] for e in eng.history(task["case_id"]) if e["type"] == "task.completed"]


def test_outcomes_are_fieldsets_with_add_and_remove_buttons_not_a_json_box(plan_world):
    eng, _app, task = plan_world
    client, csrf, url = _claimed(plan_world)
    page = _Page(client.get(url).text)
    assert page.items() == ["Outcome 1"]  # minItems 1
    assert "outcomes" not in page.values  # no JSON text box
    assert {"outcomes.0.label", "outcomes.0.how_met", "outcomes.0.provided_by",
            "outcomes.0.weekly_cost"} <= set(page.values)
    assert ("add:outcomes", "Add another outcome") in page.buttons
    assert not [b for b in page.buttons if b[0].startswith("remove:")]  # one item is the least there can be

    # "Add another outcome": one more empty item; everything typed is kept; nothing checked or completed
    typed = {**REST, "outcomes-count": "1", "outcomes.0.label": "Get washed and dressed",
             "outcomes.0.how_met": "Home care each morning", "outcomes.0.weekly_cost": "not yet known",
             "coordinating_worker.name": "  "}
    r = client.post(url, data={"csrf_token": csrf, "action": "add:outcomes", **typed})
    assert r.status_code == 200 and "govuk-error-summary" not in r.text
    page = _Page(r.text)
    assert page.items() == ["Outcome 1", "Outcome 2"]
    assert page.values["outcomes.0.label"] == "Get washed and dressed"
    assert page.values["outcomes.0.weekly_cost"] == "not yet known"  # kept as typed, not an error yet
    assert page.values["outcomes.1.label"] == "" and page.values["may_change_without_contacting"].strip() == \
        "The time of the morning visit"
    assert page.autofocus == ["f-outcomes-1-label"]  # carry on in the new item
    assert [b for b in page.buttons if b[0].startswith("remove:")] == [
        ("remove:outcomes:0", "Remove outcome 1"), ("remove:outcomes:1", "Remove outcome 2")]
    assert _completed(eng, task) == [] and eng.list_tasks(case_id=task["case_id"])[0].get("draft") is None

    # "Remove" the first: the second becomes Outcome 1, with what was typed in it
    r = client.post(url, data={"csrf_token": csrf, "action": "remove:outcomes:0", **typed, "outcomes-count": "2",
                               "outcomes.1.label": "Cook a hot meal", "outcomes.1.how_met": "Meals on wheels"})
    page = _Page(r.text)
    assert r.status_code == 200 and page.items() == ["Outcome 1"]
    assert page.values["outcomes.0.label"] == "Cook a hot meal"
    assert page.values["outcomes.0.how_met"] == "Meals on wheels"
    assert "outcomes.1.label" not in page.values
    # removing the only item leaves one empty item (minItems)
    page = _Page(client.post(url, data={"csrf_token": csrf, "action": "remove:outcomes:0", **typed}).text)
    assert page.items() == ["Outcome 1"] and page.values["outcomes.0.label"] == ""


def test_outcome_errors_name_the_item_and_empty_items_are_dropped(plan_world):
    eng, _app, task = plan_world
    client, csrf, url = _claimed(plan_world)
    outcomes = {"outcomes-count": "4",
                "outcomes.0.label": "Get washed and dressed", "outcomes.0.how_met": "Home care each morning",
                "outcomes.0.service_component": "home_support",
                "outcomes.1.label": "", "outcomes.1.how_met": "", "outcomes.1.weekly_cost": "",  # left empty
                "outcomes.2.label": "Cook a hot meal", "outcomes.2.weekly_cost": "-5",
                "outcomes.2.service_component": "other",
                "outcomes.3.label": "Go to the lunch club", "outcomes.3.how_met": "Day centre",
                "outcomes.3.weekly_cost": "twelve", "outcomes.3.service_component": "other"}
    r = client.post(url, data={"csrf_token": csrf, "action": "complete", **REST, **outcomes})
    assert r.status_code == 400
    summary = re.findall(r'<li><a href="(#[^"]+)">([^<]+)</a></li>', r.text)
    assert ("#f-outcomes-2-how_met", "Outcome 3: enter how it will be met") in summary
    assert ("#f-outcomes-3-weekly_cost", "Outcome 4: weekly cost must be an amount of money, like 12.50") in summary
    assert ("#f-outcomes-2-weekly_cost", "Outcome 3: weekly cost must be £0.00 or more") in summary
    assert not any("Outcome 2" in text for _h, text in summary)  # the empty item is not an error
    assert 'id="f-outcomes-2-how_met-error"' in r.text
    assert _Page(r.text).items() == ["Outcome 1", "Outcome 2", "Outcome 3", "Outcome 4"]  # as typed
    assert _completed(eng, task) == []

    fixed = {**outcomes, "outcomes.2.how_met": "Meals on wheels", "outcomes.2.weekly_cost": "35.50",
             "outcomes.3.weekly_cost": "12"}
    r = client.post(url, data={"csrf_token": csrf, "action": "complete", **REST, **fixed})
    assert r.status_code == 303, r.text
    [data] = _completed(eng, task)
    assert data["outcomes"] == [
        {"label": "Get washed and dressed", "how_met": "Home care each morning", "service_component": "home_support"},
        {"label": "Cook a hot meal", "how_met": "Meals on wheels", "weekly_cost": 35.5, "service_component": "other"},
        {"label": "Go to the lunch club", "how_met": "Day centre", "weekly_cost": 12, "service_component": "other"}]


def test_no_outcome_at_all_is_one_clear_error(plan_world):
    client, csrf, url = _claimed(plan_world)
    r = client.post(url, data={"csrf_token": csrf, "action": "complete", **REST, "outcomes-count": "2"})
    assert r.status_code == 400
    assert '<a href="#f-outcomes-0-label">Enter at least one outcome</a>' in r.text


def test_a_draft_keeps_the_outcomes_and_reopens_with_them(plan_world):
    eng, _app, task = plan_world
    client, csrf, url = _claimed(plan_world)
    r = client.post(url, data={"csrf_token": csrf, "action": "draft", "outcomes-count": "3",
                               "outcomes.0.label": "Get washed and dressed", "outcomes.1.label": "",
                               "outcomes.2.label": "Cook a hot meal", "outcomes.2.weekly_cost": "about 30"})
    assert r.status_code == 303
    page = _Page(client.get(url).text)
    assert page.items() == ["Outcome 1", "Outcome 2"]  # the empty one was dropped
    assert page.values["outcomes.0.label"] == "Get washed and dressed"
    assert page.values["outcomes.1.label"] == "Cook a hot meal"
    assert page.values["outcomes.1.weekly_cost"] == "about 30"  # kept as typed in a draft
    assert _completed(eng, task) == []


def test_a_button_for_a_list_the_form_does_not_have_is_a_clear_error(plan_world):
    client, csrf, url = _claimed(plan_world)
    r = client.post(url, data={"csrf_token": csrf, "action": "remove:outcomes:5", "outcomes-count": "2",
                               "outcomes.0.label": "Kept"})
    assert r.status_code == 400
    assert "Outcomes and how they will be met: there is no outcome 5 to remove" in r.text
    assert _Page(r.text).values["outcomes.0.label"] == "Kept"
    r = client.post(url, data={"csrf_token": csrf, "action": "add:carers"})
    assert r.status_code == 400 and "This form has no list called “carers”" in r.text
    assert client.post(url, data={"action": "add:outcomes"}).status_code == 403  # CSRF, as every button


def test_which_shapes_become_groups_and_which_stay_json():
    from forms import __file__ as forms_init

    lib = FormLibrary.from_folder(Path(forms_init).parent)
    [uplifts] = [f for f in fields_for(lib.schema("impact_assessment")) if f.name == "uplifts"]
    assert uplifts.kind == "group" and [c.label for c in uplifts.children] == ["Uplift 1"]
    assert [c.name for c in uplifts.children[0].children] == ["uplifts.0.reason", "uplifts.0.amount", "uplifts.0.why"]
    odd = fields_for({"type": "object", "properties": {
        "grid": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "loose": {"type": "array", "items": {"type": "object"}},
        "visits": {"type": "array", "maxItems": 2, "items": {
            "type": "object", "required": ["on"], "properties": {
                "on": {"type": "string", "format": "date", "title": "Date of visit"},
                "kind": {"enum": ["home", "phone"]},
                "steps": {"type": "array", "items": {"type": "object", "properties": {"what": {"type": "string"}}}}}}},
    }})
    kinds = {f.name: f.kind for f in walk(odd)}
    assert kinds["grid"] == "json" and kinds["loose"] == "json"
    assert kinds["visits"] == "group" and kinds["visits.0.on"] == "date" and kinds["visits.0.kind"] == "radios"
    assert kinds["visits.0.steps"] == "group" and kinds["visits.0.steps.0.what"] == "text"
    # a nested list inside an item, and a date inside an item; maxItems caps what is read
    form = {"visits-count": "5", "visits.0.on-day": "31", "visits.0.on-month": "2", "visits.0.on-year": "2031",
            "visits.0.steps-count": "2", "visits.0.steps.1.what": "Ring first",
            "visits.1.kind": "phone", "visits.2.kind": "home"}
    data, local = read_form(odd, {k: [v] for k, v in form.items()})
    assert data == {"visits": [{"steps": [{"what": "Ring first"}]}, {"kind": "phone"}]}
    summary = set_errors(odd, {**local, **engine_errors(odd, [
        {"field": "visits/0/steps/0/what", "message": "'x' is not valid"}])[0]})
    assert summary == [
        {"text": "Visit 1: date of visit must be a real date, for example 27 3 2031", "href": "#f-visits-0-on-day"},
        {"text": "Visit 1: Step 2: what: 'x' is not valid", "href": "#f-visits-0-steps-1-what"}]


# ---------------------------------------------------------------------- dates in UK time
def test_due_dates_show_in_uk_time_across_the_change_to_summer_time(plan_world):
    assert long_date(datetime(2031, 3, 29, 23, 30, tzinfo=timezone.utc)) == "29 March 2031"  # GMT still
    assert long_date(datetime(2031, 3, 31, 23, 30, tzinfo=timezone.utc)) == "1 April 2031"  # BST: 00:30
    assert long_date(datetime(2031, 10, 26, 0, 30)) == "26 October 2031"  # naive = UTC; BST ends 01:00 UTC
    assert long_date(datetime(2031, 10, 25, 23, 30, tzinfo=timezone.utc)) == "26 October 2031"

    eng, _app, task = plan_world
    client, _csrf = _signin_client(plan_world[1], "rosa")
    for due, shown in ((datetime(2031, 3, 31, 23, 30, tzinfo=timezone.utc), "1 April 2031"),
                       (datetime(2031, 3, 29, 23, 30, tzinfo=timezone.utc), "29 March 2031")):
        with eng.db.engine.begin() as conn:
            conn.execute(update(task_rows).where(task_rows.c.id == task["id"]).values(due_at=due))
            assert conn.execute(select(task_rows.c.due_at).where(task_rows.c.id == task["id"])).scalar()
        row = re.search(r"<tr class=\"govuk-table__row\">\s*<td.*?</tr>", client.get("/tasks?view=team").text, re.S)
        assert f'<td class="govuk-table__cell">{shown}' in row.group(0)
        page = client.get(f"/tasks/{task['id']}").text
        assert re.search(rf'<dt class="govuk-summary-list__key">Due</dt>\s*<dd[^>]*>{shown}', page)


def _focused(page) -> str:
    return page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")


def test_outcomes_by_keyboard_add_remove_an_error_in_outcome_2_and_complete_in_the_browser(plan_world):
    eng, app, task = plan_world
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        _sign_in(page, base, "rosa")
        page.goto(f"{base}/tasks/{task['id']}")
        page.get_by_role("button", name="Claim this task").click()
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        items = page.locator("legend", has_text=re.compile(r"^Outcome \d+$"))
        assert items.all_inner_texts() == ["Outcome 1"]

        # keyboard only: Tab to Outcome 1, type, Tab on to "Add another outcome", Enter
        for _ in range(80):
            page.keyboard.press("Tab")
            if _focused(page) == "f-outcomes-0-label":
                break
        assert _focused(page) == "f-outcomes-0-label"
        page.keyboard.type("Get washed and dressed")
        page.keyboard.press("Tab")
        page.keyboard.type("Home care each morning")
        for _ in range(9):  # type of service, provider, unit, unit cost, units a week, how it is paid for (a radio
            page.keyboard.press("Tab")  # group is one stop), who provides it and weekly cost (older plans), the button
        assert _focused(page) == "Add another outcome"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert items.all_inner_texts() == ["Outcome 1", "Outcome 2"]
        assert _focused(page) == "f-outcomes-1-label"  # straight into the new outcome
        assert page.input_value("#f-outcomes-0-how_met") == "Home care each morning"
        page.keyboard.type("Cook a hot meal")
        page.keyboard.press("Tab")
        page.keyboard.type("Meals on wheels")
        # Enter in a text box submits the form (Complete task), never the first item's Remove button
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator(".govuk-error-summary").is_visible()
        assert items.all_inner_texts() == ["Outcome 1", "Outcome 2"]
        assert page.input_value("#f-outcomes-1-how_met") == "Meals on wheels"
        assert _completed(eng, task) == []

        # a third with the button, then remove the second: the third becomes Outcome 2
        with page.expect_navigation():
            page.get_by_role("button", name="Add another outcome").click()
        assert items.all_inner_texts() == ["Outcome 1", "Outcome 2", "Outcome 3"]
        page.fill("#f-outcomes-2-label", "Go to the lunch club")
        page.fill("#f-outcomes-2-weekly_cost", "12")
        run_axe(page, "task with three outcomes")
        with page.expect_navigation():
            page.get_by_role("button", name="Remove outcome 2").click()
        assert items.all_inner_texts() == ["Outcome 1", "Outcome 2"]
        assert page.input_value("#f-outcomes-1-label") == "Go to the lunch club"
        assert page.input_value("#f-outcomes-1-weekly_cost") == "12.00"  # money to the penny
        assert page.input_value("#f-outcomes-0-label") == "Get washed and dressed"

        # the rest of the plan; Outcome 2 has no "how it will be met"
        page.check("#f-outcomes-0-service_component-0")  # home support
        page.check("#f-outcomes-1-service_component-7")  # other or none of these (a lunch club)
        page.check("#f-money_management-2")
        page.fill("#f-may_change_without_contacting", "The time of the morning visit")
        page.fill("#f-coordinating_worker-name", "Sam Social")
        page.fill("#f-coordinating_worker-role", "Social worker")
        page.fill("#f-review_frequency_months", "12")
        page.get_by_role("button", name="Complete task").click()
        summary = page.locator(".govuk-error-summary")
        summary.wait_for()
        assert summary.locator("li").all_inner_texts() == ["Outcome 2: enter how it will be met"]
        assert "Outcome 2: enter how it will be met" in page.locator("#f-outcomes-1-how_met-error").inner_text()
        run_axe(page, "task with an error in outcome 2")
        summary.get_by_role("link", name="Outcome 2: enter how it will be met").click()
        assert _focused(page) == "f-outcomes-1-how_met"
        page.keyboard.type("Day centre on Tuesdays")
        page.get_by_role("button", name="Complete task").click()
        page.wait_for_url(re.compile(r".*/tasks\?view=mine$"))

    [data] = _completed(eng, task)
    assert data["outcomes"] == [
        {"label": "Get washed and dressed", "how_met": "Home care each morning", "service_component": "home_support"},
        {"label": "Go to the lunch club", "how_met": "Day centre on Tuesdays", "weekly_cost": 12,
         "service_component": "other"}]
