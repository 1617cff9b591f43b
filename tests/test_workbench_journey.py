"""The process owners' whole journey in the browser, as `make run`'s demo users (api/demo_users.py), on the
operating model's own diagrams, forms and handlers (as the demo deploys them), in headless Chromium
(tests/browser.py) against a real uvicorn server:

0. before: a contact was taken on front_door version 1 and waits at "Record the contact" (the old case);
1. `process-owner` goes Processes → Adult front door → starts a draft; in the modeller drops a user task on
   the "Information and advice only" flow (so the old case's path passes through it), names it, picks its
   team and form in the panel; drops a service task before it, sees "names no handler" in the problems list
   and on the canvas, reaches the problem with the keyboard, picks a handler and gives its required
   parameter, sees no error left, saves; submits the draft for review with a change note;
2. `process-owner` cannot approve their own draft: the review page says so, and a forced approval is refused;
3. `process-owner-2` opens the review from the home page, sees the added tasks marked on the draft diagram
   and listed in words, and the impact (one running case on version 1, and it could move); approves;
4. `front-door-advisor` takes a new contact: it runs on version 2; the old case is still on version 1;
5. `process-owner-2` follows "Move running cases to version 2": the dry run says the old case can move;
   moves it with a reason; when its contact is recorded (information and advice only), the new user task
   is in the front door team's queue; the case's history verifies and replays.

axe-core (WCAG 2.1 A/AA) runs on every page visited. The keyboard does what it can in a modeller: naming
a task, the problems list, the panel's choices and fields, save, the change note and submit, approve,
choosing the case to move and the reason; only drawing shapes needs the pointer, as in any bpmn-js modeller.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from api import static_assets
from api.app import create_app
from api.demo_users import create_demo_users, demo_password
from engine import drafts
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.replay import replay_case
from engine.runtime import Engine
from engine.schema import instances, process_versions
from tests.browser import launch, live_server, run_axe, sign_in
from tests.conftest import START
from tests.modeller_browser import (
    checks,
    focused,
    open_carepath_group,
    problem_texts,
    replace_selected,
    wait_checked,
    wait_problem,
    wait_ready,
)
from tests.test_process_front_door_reablement import contact

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a browser journey: 60 s a test, more on a busy machine

ROOT = Path(__file__).resolve().parent.parent
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
CALL_BACK = "Call back about the advice"
WORK_OUT = "Work out the call-back day"


@pytest.fixture
def demo(db_url):
    """The demo of `make run`: the operating model deployed, its demo users; one contact waiting on version 1."""
    assert static_assets.bundle_built(), "the modeller bundle is missing: run `make setup` (node modeller/build.mjs)"
    eng = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init(simulated_start=START)
    eng.deploy([ROOT / "processes"])
    create_demo_users(eng)
    old = eng.start("front_door", actor="front-door-advisor", title="Olive Oldcase")
    app = create_app(eng, run_timers=False)
    with live_server(app) as base:
        yield base, eng, old.case_id
    eng.db.dispose()


def _versions(eng, case_id: int) -> list[int]:
    """The version of front_door each of the case's instances runs."""
    with eng.db.engine.connect() as conn:
        return list(conn.execute(
            select(process_versions.c.version)
            .join(instances, instances.c.process_version_id == process_versions.c.id)
            .where(instances.c.case_id == case_id, instances.c.process_id == "front_door")
            .order_by(instances.c.id)).scalars())


def _session(browser, base: str, username: str, *, then: str | None = "/home"):
    """A new browser session signed in as a demo user (axe-core is injected inline: bypass_csp)."""
    page = browser.new_context(bypass_csp=True, viewport={"width": 1500, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, base, username, demo_password(username.removesuffix("-2").replace("-", "_")), then=then)
    return page, errors


def _drop_task_on_flow(page, flow_id: str, fraction: float, name: str) -> str:
    """Take a task from the palette and drop it on the flow at `fraction` of its length (bpmn-js splits the
    flow: the flow keeps its source, a new one leads on), then type its name; the new task's id."""
    point = page.evaluate("""([id, f]) => {
        const m = window.carepathModeller.bpmn, canvas = m.get('canvas');
        const w = m.get('elementRegistry').get(id).waypoints, a = w[0], b = w[w.length - 1];
        const vb = canvas.viewbox(), box = canvas.getContainer().getBoundingClientRect();
        const x = a.x + (b.x - a.x) * f, y = a.y + (b.y - a.y) * f;
        return {x: box.left + (x - vb.x) * vb.scale, y: box.top + (y - vb.y) * vb.scale}; }""", [flow_id, fraction])
    page.locator(".djs-palette [data-action='create.task']").click()
    page.mouse.move(point["x"] - 20, point["y"] - 20)
    page.mouse.move(point["x"], point["y"], steps=4)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector(".djs-direct-editing-parent", state="visible")  # bpmn-js asks for the new task's name
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    return page.evaluate("() => window.carepathModeller.bpmn.get('selection').get()[0].id")


def _choose_with_keys(page, selector: str, value: str) -> None:
    """A choice in the panel made with the keyboard: focus it, open its list (Alt+ArrowDown), move to `value`
    with the arrow keys, Enter."""
    options = page.evaluate("s => Array.from(document.querySelector(s).options).map(o => o.value)", selector)
    page.locator(selector).focus()
    page.keyboard.press("Alt+ArrowDown")
    current = options.index(page.input_value(selector))
    target = options.index(value)
    for _ in range(abs(target - current)):
        page.keyboard.press("ArrowDown" if target > current else "ArrowUp")
    page.keyboard.press("Enter")
    assert page.input_value(selector) == value, f"the keyboard did not choose {value!r} in {selector}"


def _tab_to(page, element_id: str, key: str = "Tab", limit: int = 200) -> None:
    for _ in range(limit):
        if focused(page)["id"] == element_id:
            return
        page.keyboard.press(key)
    pytest.fail(f"{key} never reached #{element_id}")


def _text(page, selector: str = "main") -> str:
    return page.locator(selector).inner_text()


def test_owners_change_front_door_have_it_reviewed_and_move_a_running_case_onto_it(demo):
    base, eng, old_case = demo
    started = time.monotonic()
    [waiting] = eng.list_tasks(case_id=old_case)
    assert waiting["element_id"] == "record_contact" and _versions(eng, old_case) == [1]
    old_ref = eng.get_case(old_case)["reference"]

    with launch() as browser:
        # 1. the first owner: Processes → Adult front door → a draft from the live version
        owner, owner_errors = _session(browser, base, "process-owner")
        owner.get_by_role("navigation", name="Main").get_by_role("link", name="Processes").click()
        owner.wait_for_url(f"{base}/processes")
        run_axe(owner, "processes")
        owner.get_by_role("link", name="Adult front door").click()
        owner.wait_for_url(f"{base}/processes/front_door")
        run_axe(owner, "process front_door")
        owner.get_by_role("button", name="Start a draft from the live version").click()
        owner.wait_for_url(re.compile(rf"{base}/processes/drafts/\d+/edit$"))
        draft_id = int(owner.url.split("/")[-2])
        wait_ready(owner)
        assert "No problems found" in _text(owner, "#modeller-problems-summary")
        run_axe(owner, "modeller")

        # a user task on the "Information and advice only" flow, named as it is dropped; team and form
        # chosen in the panel with the arrow keys
        user_task = _drop_task_on_flow(owner, "f_information", 0.7, CALL_BACK)
        user_task = replace_selected(owner, "user-task")
        open_carepath_group(owner)
        _choose_with_keys(owner, "#bio-properties-panel-carepath-team", "front_door")
        _choose_with_keys(owner, "#bio-properties-panel-carepath-form", "signposting_call_back")
        preview = owner.locator("[data-entry-id='carepath-form'] a")
        assert preview.get_attribute("href") == "/processes/forms/signposting_call_back/preview"

        # a service task before it: carepath says it names no handler, in the list and on the canvas
        before = checks(owner)
        service_task = _drop_task_on_flow(owner, "f_information", 0.4, WORK_OUT)
        service_task = replace_selected(owner, "service-task")
        wait_checked(owner, before)
        wait_problem(owner, service_task, "names no handler")
        overlay = owner.locator(f".djs-overlays[data-container-id='{service_task}'] .bjsl-overlay")
        assert overlay.count() == 1, "the problem is not shown on the canvas at the service task"
        assert f"at '{WORK_OUT}' ({service_task})" in " ".join(problem_texts(owner))

        # the keyboard: the problem is a button; Enter selects its task; back into the panel to the handler
        owner.locator("#modeller-problems-heading").focus()
        for _ in range(100):
            f = focused(owner)
            if "app-problem__button" in (f["cls"] or "") and "names no handler" in f["text"]:
                break
            owner.keyboard.press("Tab")
        else:
            pytest.fail("Tab never reached the missing-handler problem")
        owner.keyboard.press("Enter")
        owner.wait_for_function("id => window.carepathModeller.bpmn.get('selection').get().map(e => e.id).join()"
                                " === id", arg=service_task)
        # (Shift+Tab from the problem loses the focus inside the panel: it re-renders the carepath group as the
        # focus leaves a field; so from the group's heading, Tab)
        owner.locator("[data-group-id='group-carepath'] .bio-properties-panel-group-header-button").focus()
        _tab_to(owner, "bio-properties-panel-carepath-handler")
        _choose_with_keys(owner, "#bio-properties-panel-carepath-handler", "deadline")
        wait_problem(owner, service_task, "required parameter.*working_days")
        assert "working_days (int, required)" in _text(owner, "[data-entry-id='carepath-handler']")
        _tab_to(owner, "bio-properties-panel-carepath-param-working_days")
        before = checks(owner)
        owner.keyboard.type("5")
        owner.keyboard.press("Tab")
        wait_checked(owner, before)
        wait_problem(owner, service_task, "handler|required parameter", shown=False)
        assert owner.locator("#modeller-problems li.app-problem--error").count() == 0, problem_texts(owner)
        assert re.match(r"(No problems found|0 errors)", _text(owner, "#modeller-problems-summary"))
        run_axe(owner, "modeller with the new tasks")

        owner.locator("#modeller-save").focus()
        owner.keyboard.press("Enter")
        owner.wait_for_function("() => /Saved at/.test(document.querySelector('#modeller-status').textContent)")
        with owner.expect_navigation():
            owner.locator("#modeller").get_by_role("link", name="Back to the draft").click()
        assert owner.url == f"{base}/processes/drafts/{draft_id}"
        run_axe(owner, "draft")
        owner.locator("#note").focus()
        owner.keyboard.type("Call back everyone given information and advice within 5 working days")
        owner.keyboard.press("Tab")
        assert owner.evaluate("() => document.activeElement.textContent.trim()") == "Submit for review"
        owner.keyboard.press("Enter")
        owner.wait_for_url(f"{base}/processes/drafts/{draft_id}?done=submitted")
        run_axe(owner, "submitted draft")

        # 2. the author cannot approve: the review page says so, and a forced approval is refused
        owner.goto(f"{base}/processes/drafts/{draft_id}/review")
        assert "so you cannot approve it" in _text(owner, "#own-draft")
        assert owner.get_by_role("button", name="Approve and deploy").count() == 0
        run_axe(owner, "review by its author")
        with owner.expect_navigation():
            owner.evaluate("""id => { const f = document.createElement('form');
                f.method = 'post'; f.action = `/processes/drafts/${id}/approve`;
                for (const [k, v] of [['csrf_token', document.querySelector("input[name='csrf_token']").value],
                                      ['note', 'my own']]) {
                  const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;
                  f.appendChild(i); }
                document.body.appendChild(f); f.submit(); }""", draft_id)
        assert "another process owner must review and approve it" in _text(owner)
        run_axe(owner, "approval refused")
        assert drafts.get_draft(eng, draft_id)["status"] == "submitted"
        assert owner_errors == []

        # 3. the second owner reviews: the diff on the diagram and in words, the impact; approves
        second, second_errors = _session(browser, base, "process-owner-2")
        second.get_by_role("link", name=f"Draft {draft_id} of front_door").click()
        second.wait_for_url(f"{base}/processes/drafts/{draft_id}/review")
        second.wait_for_selector("#diagram-diff[data-rendered]", timeout=20_000)
        assert second.get_attribute("#diagram-diff", "data-rendered") == "true", _text(second, "#diagram-diff")
        for task in (user_task, service_task):
            assert second.locator(f"#diagram-diff-draft .djs-element.app-diff-added"
                                  f"[data-element-id='{task}']").count() == 1, task
        words = second.locator("#diagram-diff-list li").all_inner_texts()
        assert f"Added user task '{CALL_BACK}' ({user_task})" in words, words
        assert f"Added service task '{WORK_OUT}' ({service_task})" in words, words
        assert CALL_BACK in _text(second, "#changes") and WORK_OUT in _text(second, "#changes")
        rows = [r.locator("td").all_inner_texts() for r in second.locator("#impact tbody tr").all()]
        assert rows == [["Version 1", "1", "1"]], rows  # the old case, and it could move
        run_axe(second, "review")
        second.locator("#note").focus()
        second.keyboard.press("Tab")
        assert second.evaluate("() => document.activeElement.textContent.trim()") == "Approve and deploy"
        second.keyboard.press("Enter")
        second.wait_for_url(f"{base}/processes/drafts/{draft_id}/approved")
        assert _text(second, "h1") == "Version 2 of Adult front door is live"
        assert "Written by process-owner, approved by process-owner-2" in _text(second)
        run_axe(second, "approval confirmation")

        # 4. a new contact runs on version 2; the old case stays on version 1
        advisor, advisor_errors = _session(browser, base, "front-door-advisor", then=None)
        advisor.get_by_role("link", name="New contact").click()
        advisor.wait_for_url(f"{base}/contacts/new")
        run_axe(advisor, "new contact")
        advisor.fill("#name", "Nia Newcase")
        advisor.get_by_role("button", name="Search").click()
        advisor.get_by_role("button", name="This is a new person").wait_for()
        run_axe(advisor, "new contact search results")
        advisor.get_by_role("button", name="This is a new person").click()
        advisor.wait_for_url(re.compile(rf"{base}/tasks/[0-9a-f-]+$"))
        assert _text(advisor, "h1") == "Record the contact"
        run_axe(advisor, "record the contact")
        [new_case] = [t["case_id"] for t in eng.list_tasks() if eng.get_case(t["case_id"])["title"] == "Nia Newcase"]
        assert _versions(eng, new_case) == [2]
        assert _versions(eng, old_case) == [1]

        # 5. the second owner moves the old case: dry run, then move it with a reason
        second.get_by_role("link", name="Move running cases to version 2").click()
        second.wait_for_url(f"{base}/processes/front_door/migrate?to=2")
        assert second.input_value("#from") == "1" and second.input_value("#to") == "2"
        run_axe(second, "move cases: choices")
        second.get_by_role("button", name="Check which cases can move").click()
        second.wait_for_url(f"{base}/processes/front_door/migrate/check")
        assert _text(second, "h1") == "1 of 1 open case can move"
        row = second.locator("tbody tr").filter(has_text=old_ref)
        assert "Record the contact" in row.inner_text() and "Can move" in row.inner_text()
        run_axe(second, "move cases: dry run")
        second.get_by_label(f"Move {old_ref}").focus()
        second.keyboard.press("Space")
        second.locator("#reason").focus()
        second.keyboard.type("Information and advice contacts now get a call back")
        second.get_by_role("button", name="Move selected cases").focus()
        with second.expect_navigation():
            second.keyboard.press("Enter")
        assert _text(second, "h1") == "1 case moved"
        run_axe(second, "move cases: confirmation")
        assert _versions(eng, old_case) == [2] and _versions(eng, new_case) == [2]
        [moved] = [e for e in eng.history(old_case) if e["type"] == "instance.migrated"]
        assert moved["actor"] == "process-owner-2"

        # the old case's contact is recorded (information and advice only): its next task is the new one,
        # for the team chosen in the panel
        [task] = eng.list_tasks(case_id=old_case)
        assert task["element_id"] == "record_contact"
        eng.complete_task(task["id"], contact(person={"name": "Olive Oldcase", "age": 70, "address": "1 Quay Street",
                                                      "area": "north"}), actor="front-door-advisor")
        [task] = eng.list_tasks(case_id=old_case)
        assert (task["element_id"], task["name"], task["team"], task["form"]) == (
            user_task, CALL_BACK, "front_door", "signposting_call_back")
        advisor.goto(f"{base}/tasks?view=team")
        assert advisor.locator("tbody tr").filter(has_text=CALL_BACK).filter(has_text=old_ref).count() == 1
        run_axe(advisor, "team tasks")
        assert second_errors == [] and advisor_errors == []

    # what the owners drew is what went live, and the moved case's history verifies and replays
    root = etree.fromstring(drafts.get_draft(eng, draft_id)["files"]["front_door.bpmn"].encode())
    task = root.find(f".//{{{BPMN}}}userTask[@id='{user_task}']")
    assert (task.get("name"), task.get(f"{{{CAMUNDA}}}candidateGroups"), task.get(f"{{{CAMUNDA}}}formKey")) == (
        CALL_BACK, "front_door", "signposting_call_back")
    svc = root.find(f".//{{{BPMN}}}serviceTask[@id='{service_task}']")
    assert (svc.get(f"{{{CAMUNDA}}}topic"), [(p.get("name"), p.text) for p in svc.iter(
        f"{{{CAMUNDA}}}inputParameter")]) == ("deadline", [("working_days", "5")])
    assert eng.verify(old_case)[1] == []
    assert eng.verify(new_case)[1] == []
    assert replay_case(eng, old_case).ok
    print(f"workbench journey: {time.monotonic() - started:.1f} s")
