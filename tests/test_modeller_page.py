"""The browser modeller (/processes/drafts/{id}/edit, api/modeller.py, modeller/src/) as a process owner
uses it, in headless Chromium (tests/browser.py), against the real drafts API.

* the journey: start a draft of front_door from its page, add a user task, pick its team and form in the
  panel, add a service task, see the missing-handler problem in the list and on the canvas, pick a
  handler (and give its required parameter), save; the saved XML says what was picked;
* keyboard only: the problems list and the panel's fields are reached with Tab, a problem is activated
  with Enter and selects its element; axe finds no WCAG 2.1 A/AA violation;
* round trip: the diagram the modeller exports (bpmn-js saveXML) deploys and runs as the file did;
* who may open it, and the page without the bundle.

The bundle is built by `make setup` (modeller/build.mjs); without it these tests fail (not skip):
the modeller is part of the product.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from api import static_assets
from engine.bpmn import parse_bundle
from tests.browser import launch, live_server, run_axe, sign_in
from tests.front_door_world import PASSWORD, Api, build
from tests.modeller_browser import READY
from tests.modeller_browser import append as _append
from tests.modeller_browser import checks as _checks
from tests.modeller_browser import focused as _focused
from tests.modeller_browser import open_carepath_group as _open_carepath_group
from tests.modeller_browser import open_new_draft as _open_new_draft
from tests.modeller_browser import problem_texts as _problem_texts
from tests.modeller_browser import select as _select
from tests.modeller_browser import wait_checked as _wait_checked
from tests.modeller_browser import wait_problem as _wait_problem

ROOT = Path(__file__).resolve().parent.parent
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


@pytest.fixture
def world(tmp_path):
    assert static_assets.bundle_built(), "the modeller bundle is missing: run `make setup` (node modeller/build.mjs)"
    eng, app, people = build(f"sqlite:///{tmp_path / 'carepath.db'}")
    yield eng, app
    eng.db.dispose()


def test_an_owner_adds_tasks_picks_team_form_and_handler_sees_and_fixes_a_problem_and_saves(world):
    eng, app = world
    with launch() as browser, live_server(app) as base:
        # a browser in another time zone: the modeller still gives UK times
        page = browser.new_context(viewport={"width": 1500, "height": 1000}, timezone_id="America/New_York").new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, base, "process-owner", PASSWORD, then=None)
        draft_id = _open_new_draft(page, base)
        assert "No problems found" in page.inner_text("#modeller-problems-summary")

        # a user task after "record_contact", with its team and form picked in the panel
        user_task = _append(page, "record_contact", "user-task")
        _open_carepath_group(page)
        page.select_option("#bio-properties-panel-carepath-team", "reablement")
        page.select_option("#bio-properties-panel-carepath-form", "signposting_call_back")
        preview = page.locator("[data-entry-id='carepath-form'] a")
        assert preview.get_attribute("href") == "/processes/forms/signposting_call_back/preview"

        # a service task after it: carepath says it names no handler, in the list and on the canvas
        before = _checks(page)
        service_task = _append(page, user_task, "service-task")
        _wait_checked(page, before)
        _wait_problem(page, service_task, "names no handler")
        overlay = page.locator(f".djs-overlays[data-container-id='{service_task}'] .bjsl-overlay")
        assert overlay.count() == 1, "the problem is not shown on the canvas at the service task"

        # pick a handler: its required parameter is now missing; give it, and the task's problems go
        _open_carepath_group(page)
        before = _checks(page)
        page.select_option("#bio-properties-panel-carepath-handler", "deadline")
        _wait_checked(page, before)
        assert "working_days (int, required)" in page.inner_text("[data-entry-id='carepath-handler']")
        _wait_problem(page, service_task, "required parameter.*working_days")
        before = _checks(page)
        page.fill("#bio-properties-panel-carepath-param-working_days", "2")
        page.keyboard.press("Tab")
        _wait_checked(page, before)
        _wait_problem(page, service_task, "handler|required parameter", shown=False)
        assert "names no handler" not in " ".join(_problem_texts(page))

        page.get_by_role("button", name="Save draft").click()
        page.wait_for_function("() => /Saved at/.test(document.querySelector('#modeller-status').textContent)")
        # the time of the save on the server's clock (simulated: 3 March 2031, 09:00 GMT), in UK time,
        # whatever the browser's clock and zone say
        assert re.search(r"Saved at 09:\d\d on 3 March 2031 \(revision \d+\)\.",
                         page.locator("#modeller-status").inner_text()), page.locator("#modeller-status").inner_text()
        assert errors == []

    draft = Api(app, "process-owner").get(f"/api/processes/drafts/{draft_id}").json()
    assert draft["revision"] == 2
    root = etree.fromstring(draft["files"]["front_door.bpmn"].encode())
    task = root.find(f".//{{{BPMN}}}userTask[@id='{user_task}']")
    assert task.get(f"{{{CAMUNDA}}}candidateGroups") == "reablement"
    assert task.get(f"{{{CAMUNDA}}}formKey") == "signposting_call_back"
    svc = root.find(f".//{{{BPMN}}}serviceTask[@id='{service_task}']")
    assert (svc.get(f"{{{CAMUNDA}}}type"), svc.get(f"{{{CAMUNDA}}}topic")) == ("external", "deadline")
    params = svc.findall(f".//{{{CAMUNDA}}}inputParameter")
    assert [(p.get("name"), p.text) for p in params] == [("working_days", "2")]


def _draft_with_a_problem(app) -> int:
    """A draft of front_door (through the drafts API) whose 'search_directory' service task names no handler."""
    owner = Api(app, "process-owner")
    files = {name: owner.get(f"/api/processes/front_door/versions/1/files/{name}").text
             for name in owner.get("/api/processes/front_door/versions/1/files").json()["files"]}
    main = next(n for n, x in files.items() if 'id="front_door"' in x)
    files[main] = files[main].replace('camunda:topic="search_directory"', "")
    r = owner.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1, "files": files})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_keyboard_reaches_the_problems_and_the_panel_fields_and_axe_finds_nothing(world):
    eng, app = world
    draft_id = _draft_with_a_problem(app)
    with launch() as browser, live_server(app) as base:
        page = browser.new_context(bypass_csp=True, viewport={"width": 1500, "height": 1000}).new_page()
        sign_in(page, base, "process-owner", PASSWORD, then=None)
        page.goto(f"{base}/processes/drafts/{draft_id}/edit")
        page.wait_for_selector(READY, timeout=20_000)
        page.wait_for_selector("#modeller-problems li[data-element-id='search_directory'] button")
        run_axe(page, "modeller")

        # Tab from the top of the page to the problem's button, Enter: the element is selected
        page.locator("body").focus()
        for _ in range(400):
            page.keyboard.press("Tab")
            if "app-problem__button" in (_focused(page)["cls"] or "") and "search_directory" in _focused(page)["text"]:
                break
        else:
            pytest.fail("Tab never reached the problem in the problems list")
        page.keyboard.press("Enter")
        page.wait_for_function("() => window.carepathModeller.bpmn.get('selection').get().map(e => e.id)"
                               ".join() === 'search_directory'")
        page.wait_for_function("() => document.querySelector('#modeller-status').textContent"
                               ".includes(\"Selected 'Search the community directory'\")")

        # back (Shift+Tab) into the properties panel: the handler choice of the selected task
        for _ in range(200):
            page.keyboard.press("Shift+Tab")
            if _focused(page)["id"] == "bio-properties-panel-carepath-handler":
                break
        else:
            pytest.fail("Shift+Tab never reached the handler choice in the properties panel")
        before = _checks(page)
        page.keyboard.press("ArrowDown")  # the first handler in the list
        _wait_checked(page, before)
        topic = page.evaluate("() => window.carepathModeller.bpmn.get('elementRegistry').get('search_directory')"
                              ".businessObject.get('camunda:topic')")
        assert topic, "choosing a handler with the keyboard did not set it"
        # the field is updated in place, not drawn anew: keyboard focus stays on it (a second choice works)
        assert _focused(page)["id"] == "bio-properties-panel-carepath-handler", _focused(page)
        before = _checks(page)
        page.keyboard.press("ArrowDown")
        _wait_checked(page, before)
        assert page.evaluate("() => window.carepathModeller.bpmn.get('elementRegistry').get('search_directory')"
                             ".businessObject.get('camunda:topic')") != topic, "a second choice did not change it"
        page.wait_for_function("""() => !Array.from(document.querySelectorAll('#modeller-problems li'))
            .some(li => /names no handler/.test(li.textContent))""")
        run_axe(page, "modeller with an element selected")
        page.goto(f"{base}/processes/forms/contact/preview")
        assert page.locator("h1").inner_text() and page.locator("#form-preview .govuk-form-group").count() > 3
        run_axe(page, "form preview")


def _run_kyle(eng, version: int) -> tuple[str, list, list]:
    """Kyle's front door contact (signposting, a call back in 14 days) on one version of front_door."""
    from tests.case_helpers import completed_route, handlers_called
    from tests.test_process_front_door_reablement import KYLE

    res = eng.start("front_door", actor="advisor1", version=version)
    [task] = res.ready_tasks
    assert (task["element_id"], task["team"], task["form"]) == ("record_contact", "front_door", "contact")
    step = eng.complete_task(task["id"], KYLE, actor="advisor1")
    eng.advance_clock(by=timedelta(days=15))
    return step.status, completed_route(eng, res.case_id), handlers_called(eng, res.case_id)


def test_a_diagram_exported_by_the_modeller_deploys_and_runs_as_the_file_did(world):
    eng, app = world
    owner = Api(app, "process-owner")
    files = {n: owner.get(f"/api/processes/front_door/versions/1/files/{n}").text
             for n in owner.get("/api/processes/front_door/versions/1/files").json()["files"]}
    draft_id = owner.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1,
                                                    "files": files}).json()["id"]
    with launch() as browser, live_server(app) as base:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        sign_in(page, base, "process-owner", PASSWORD, then=None)
        page.goto(f"{base}/processes/drafts/{draft_id}/edit")
        page.wait_for_selector(READY, timeout=20_000)
        exported = page.evaluate("() => window.carepathModeller.allFiles()")
    main = next(n for n, x in files.items() if 'id="front_door"' in x)
    assert exported[main] != files[main], "bpmn-js wrote the file anew (so this is a real round trip)"
    assert "camunda:candidateGroups" in exported[main] and "camunda:topic" in exported[main]

    def infos(fs):
        return parse_bundle({n: x.encode() for n, x in fs.items()}, handlers=eng.registry.names(),
                            forms=eng.forms.names(), known_processes={"needs_assessment", "reablement",
                                                                      "safeguarding"}).processes["front_door"]
    before, after = infos(files), infos(exported)
    def no_lines(tasks):
        return {k: replace(v, line=None) for k, v in tasks.items()}
    assert no_lines(after.user_tasks) == no_lines(before.user_tasks)
    assert after.service_tasks == before.service_tasks
    assert after.timers == before.timers

    [ref] = [r for r in eng.deploy(files={n: x.encode() for n, x in exported.items()}) if r.process_id == "front_door"]
    assert ref.created and ref.version == 2
    assert _run_kyle(eng, 2) == _run_kyle(eng, 1)


def test_the_review_page_marks_added_and_changed_elements_and_lists_them_in_words(world):
    eng, app = world
    owner = Api(app, "process-owner")
    files = {n: owner.get(f"/api/processes/front_door/versions/1/files/{n}").text
             for n in owner.get("/api/processes/front_door/versions/1/files").json()["files"]}
    main = next(n for n, x in files.items() if 'id="front_door"' in x)
    changed = files[main].replace(
        'camunda:formKey="signposting_call_back" camunda:candidateGroups="front_door"',
        'camunda:formKey="signposting_call_back" camunda:candidateGroups="reablement"')
    changed = changed.replace('signposting["call_back_due"]</bpmn:timeDate>', "call_back_at</bpmn:timeDate>")
    assert changed.count("reablement") > files[main].count("reablement") and "call_back_at" in changed
    head, sep, tail = changed.partition("</bpmn:process>")
    changed = head + '<bpmn:userTask id="new_check" name="New check" />' + sep + tail
    head, sep, tail = changed.partition("</bpmndi:BPMNPlane>")
    changed = (head + '<bpmndi:BPMNShape id="new_check_di" bpmnElement="new_check"><dc:Bounds x="200" y="600" '
               'width="100" height="80" /></bpmndi:BPMNShape>' + sep + tail)
    r = owner.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1,
                                             "files": {**files, main: changed}})
    assert r.status_code == 201, r.text
    with launch() as browser, live_server(app) as base:
        page = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 900}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, base, "process-owner", PASSWORD, then=None)
        page.goto(f"{base}/processes/drafts/{r.json()['id']}/review")
        page.wait_for_selector("#diagram-diff[data-rendered]", timeout=20_000)
        assert page.get_attribute("#diagram-diff", "data-rendered") == "true", page.inner_text("#diagram-diff")
        words = page.locator("#diagram-diff-list li").all_inner_texts()
        assert "Changed 'Call back: was the signposting right?': candidate groups front_door → reablement" in words
        assert "Added user task 'New check' (new_check)" in words
        assert "Changed 'Call-back day': timer date signposting[\"call_back_due\"] → date call_back_at" in words
        # on the canvas: the added task on the draft, the changed one on both, each with a text badge
        draft_pane, base_pane = "#diagram-diff-draft", "#diagram-diff-base"
        assert page.locator(f"{draft_pane} .djs-element.app-diff-added[data-element-id='new_check']").count() == 1
        for pane in (draft_pane, base_pane):
            assert page.locator(f"{pane} .djs-element.app-diff-changed"
                                f"[data-element-id='signposting_call_back']").count() == 1
            badge = page.locator(f"{pane} .djs-overlays[data-container-id='signposting_call_back'] .app-diff-badge")
            assert badge.inner_text() == "Changed"
        assert page.locator(f"{draft_pane} .djs-overlays[data-container-id='new_check'] .app-diff-badge"
                            ).inner_text() == "Added"
        assert page.locator(".app-diff__legend li").all_inner_texts() == [
            "Added marked on the draft", "Removed marked on the live version", "Changed marked on both"]
        run_axe(page, "review (diagram diff)")
        status = page.locator("#diagram-diff [role=status]").inner_text()
        assert status == f"{len(words)} changes in the drawing between the live version and the draft."
        # a draft only of a name's wording inside the same drawing: the changes in words list it, and the drawing's
        # status line does not say "0 changes" above it
        same = owner.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1, "files": files})
        assert same.status_code == 201, same.text
        page.goto(f"{base}/processes/drafts/{same.json()['id']}/review")
        page.wait_for_selector("#diagram-diff[data-rendered]", timeout=20_000)
        assert page.locator("#diagram-diff [role=status]").inner_text() == (
            "No change between the live version and the draft.")
        # only a task's documentation reworded: the drawing's list says it, one change
        worded = {**files, main: files[main].replace("<bpmn:documentation>Who called, why,",
                                                     "<bpmn:documentation>Who rang, why,", 1)}
        assert worded[main] != files[main]
        doc = owner.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1, "files": worded})
        assert doc.status_code == 201, doc.text
        page.goto(f"{base}/processes/drafts/{doc.json()['id']}/review")
        page.wait_for_selector("#diagram-diff[data-rendered]", timeout=20_000)
        assert page.locator("#diagram-diff [role=status]").inner_text() == (
            "1 change in the drawing between the live version and the draft.")
        assert errors == []


def test_timer_condition_lane_and_decision_table_are_checked_as_they_are_edited(world):
    eng, app = world
    with launch() as browser, live_server(app) as base:
        page = browser.new_context(bypass_csp=True, viewport={"width": 1500, "height": 1000}).new_page()
        sign_in(page, base, "process-owner", PASSWORD, then=None)
        draft_id = _open_new_draft(page, base)

        # a timer's reading, from the server, in the panel
        page.locator(".djs-element[data-element-id='wait_for_call_back']").first.click()
        page.wait_for_function("() => /signposting\\['call_back_due'\\], worked out earlier/.test("
                               "document.querySelector(\"[data-entry-id='carepath-timer-reading']\").textContent)")

        # a condition checked by the server's sandbox as it is typed
        _select(page, "f_signpost")  # (a flow's label covers it at this zoom: select it as the search would)
        page.fill("#bio-properties-panel-carepath-condition", 'open("/etc/passwd")')
        page.wait_for_function("() => /Problem: .*open.*refused/.test("
                               "document.querySelector(\"[data-entry-id='carepath-condition']\").textContent)")
        page.fill("#bio-properties-panel-carepath-condition", 'route == "signpost"')
        page.wait_for_function("() => /Checked: The sandbox accepts this/.test("
                               "document.querySelector(\"[data-entry-id='carepath-condition']\").textContent)")
        # a lane's team is chosen from the teams
        _select(page, "lane_safeguarding")
        assert page.input_value("#bio-properties-panel-carepath-lane-team") == "Safeguarding"
        page.select_option("#bio-properties-panel-carepath-lane-team", "safeguarding")

        page.get_by_role("button", name="Decision table screening.dmn").click()
        page.wait_for_selector("#modeller-dmn .tjs-table")
        assert page.locator("#modeller-properties").is_hidden()
        run_axe(page, "modeller (decision table)")
        cell = page.locator("#modeller-dmn td.output-cell").first
        cell.click()
        page.keyboard.press("Control+A")
        before = _checks(page)
        page.keyboard.type('"safeguarding" +')
        page.locator("#modeller-dmn .tjs-table th").first.click()  # leave the cell
        _wait_checked(page, before)
        page.wait_for_function("""() => Array.from(document.querySelectorAll('#modeller-problems li'))
            .some(li => li.dataset.file === 'screening.dmn' && /syntax error/.test(li.textContent))""")

        page.get_by_role("button", name="Save draft").click()
        page.wait_for_function("() => /Saved at/.test(document.querySelector('#modeller-status').textContent)")
    saved = Api(app, "process-owner").get(f"/api/processes/drafts/{draft_id}").json()["files"]
    assert '"safeguarding" +' in saved["screening.dmn"]
    assert '<bpmn:lane id="lane_safeguarding" name="safeguarding">' in saved["front_door.bpmn"]


def test_a_stale_save_says_who_saved_and_keeps_the_changes(world):
    eng, app = world
    with launch() as browser, live_server(app) as base:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        sign_in(page, base, "process-owner", PASSWORD, then=None)
        draft_id = _open_new_draft(page, base)
        # meanwhile the draft is saved elsewhere (another tab, another owner)
        other = Api(app, "process-owner")
        draft = other.get(f"/api/processes/drafts/{draft_id}").json()
        assert other.send("PUT", f"/api/processes/drafts/{draft_id}",
                          {"files": draft["files"], "revision": draft["revision"]}).status_code == 200
        _select(page, "record_contact")
        page.select_option("#bio-properties-panel-carepath-team", "reablement")
        page.get_by_role("button", name="Save draft").click()
        page.wait_for_function("() => /^Not saved: /.test(document.querySelector('#modeller-status').textContent)")
        status = page.inner_text("#modeller-status")
        assert "process-owner" in status and "Your changes are still here" in status
        assert page.evaluate("() => window.carepathModeller.bpmn.get('elementRegistry').get('record_contact')"
                             ".businessObject.get('camunda:candidateGroups')") == "reablement"
    assert Api(app, "process-owner").get(f"/api/processes/drafts/{draft_id}").json()["revision"] == 2


def test_the_lint_button_is_readable_when_there_are_only_warnings(world):
    """With warnings and no error bpmnlint's button ("0 Errors, 1 Warning") was white on yellow (1.59:1): axe
    failed the modeller whenever an owner had only style advice left (a task without a name, say)."""
    eng, app = world
    with launch() as browser, live_server(app) as base:
        page = browser.new_context(bypass_csp=True, viewport={"width": 1500, "height": 1000}).new_page()
        sign_in(page, base, "process-owner", PASSWORD, then=None)
        _open_new_draft(page, base)
        before = _checks(page)
        page.evaluate("() => { const m = window.carepathModeller.bpmn;"
                      " m.get('modeling').updateLabel(m.get('elementRegistry').get('end_signposted'), ''); }")
        _wait_checked(page, before)
        page.wait_for_selector(".bjsl-button.bjsl-button-warning")
        assert "0 Errors" in page.inner_text(".bjsl-button")
        run_axe(page, "modeller with warnings only")
