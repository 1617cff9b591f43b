"""The replay page (/cases/{id}/replay, api/replay_pages.py) with TestClient and in a real browser.

The case is Joan Barker's front door -> reablement -> needs assessment -> plan journey, driven
through the operating model's own diagrams (tests/test_timeline.py `drive_journey`), read by the
`make run` demo users. TestClient tests assert on the template context and on what the HTML
carries for the diagram script; the browser test steps through the case with the keyboard as
the auditor and counts the elements marked on each diagram.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from api.access import access_log, restrict_case
from api.app import create_app
from api.demo_users import create_demo_users, demo_password
from engine import instance_migration as im
from engine import timeline
from engine.history import ERASED_DATA
from engine.schema import case_access_log, events
from tests.browser import launch, live_server, run_axe, sign_in
from tests.test_timeline import VARIANTS, drive_journey, journey_engine

ROLE_OF = {"auditor": "auditor", "social-worker": "social_worker", "team-manager": "team_manager",
           "front-door-advisor": "front_door_advisor", "occupational-therapist": "occupational_therapist"}


@pytest.fixture
def world(db_url):
    eng = journey_engine(db_url)
    create_demo_users(eng)
    case_id = drive_journey(eng)
    app = create_app(eng, run_timers=False)
    yield eng, app, case_id
    timeline.clear_cache()
    eng.db.dispose()


def _client(app, username: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username,
                                      "password": demo_password(ROLE_OF[username])})
    assert r.status_code == 303, r.text
    return client


def _event_count(eng) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar()


def _last_access(eng, case_id: int) -> tuple:
    with eng.db.engine.connect() as conn:
        row = conn.execute(select(case_access_log).where(case_access_log.c.case_id == case_id)
                           .order_by(case_access_log.c.id.desc()).limit(1)).one()
    return row.user, row.action, row.outcome, row.page


def _diagrams(html: str) -> dict[str, dict[str, list[str]]]:
    """What each diagram container tells case_replay.js to mark, by container id."""
    out = {}
    for m in re.finditer(r'<div class="app-diagram app-replay-diagram" id="([^"]+)"(.*?)></div>', html, re.S):
        attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', m.group(2)))
        out[m.group(1)] = {k: attrs.get(k, "").split() for k in ("completed", "flows", "branches", "active")}
        out[m.group(1)]["url"] = attrs["diagram-url"]
    return out


# ---------------------------------------------------------------------- the journey, step by step
def test_the_path_grows_on_each_diagram_step_by_step_with_branches_and_automatic_steps(world):
    eng, app, case_id = world
    client = _client(app, "auditor")
    first = client.get(f"/cases/{case_id}/replay")
    assert first.status_code == 200
    total = first.context["total"]
    assert first.context["step"] == 1 and "Step 1 of" in first.text
    assert 'id="replay-prev"' not in first.text and f'href="/cases/{case_id}/replay?step=2"' in first.text
    grown: dict[str, list[int]] = {}
    for n in range(1, total + 1):
        r = client.get(f"/cases/{case_id}/replay?step={n}")
        assert r.status_code == 200, n
        marks = _diagrams(r.text)
        assert len(marks) == len(r.context["instances"])
        for i in r.context["instances"]:
            key = f"diagram-{i['instance_id']}-v{i['process_version_id']}"
            assert marks[key]["completed"] == i["completed"]  # what the script marks is what the list says
            assert len(i["completed_text"]) == len(i["completed"])
            grown.setdefault(i["process_id"], []).append(len(marks[key]["completed"]) + len(marks[key]["flows"]))
    for pid, sizes in grown.items():
        assert sizes == sorted(sizes), pid
    assert list(grown) == ["front_door", "reablement", "needs_assessment", "personal_budget", "financial_assessment",
                           "support_plan", "review"]
    last = client.get(f"/cases/{case_id}/replay?step={total}")
    fd = next(i for i in last.context["instances"] if i["process_id"] == "front_door")
    # an automatic step and a gateway, named as the diagram names them, with the branch it chose
    assert any(t.endswith("(automatic step)") for t in fd["completed_text"])
    assert any(t.endswith("(decision point)") for t in fd["completed_text"])
    # no carer asking for support, no safeguarding concern, reablement
    assert sorted(fd["branch_flows"]) == ["f_no_carer", "f_no_concern", "f_reablement"]
    assert len(fd["branches_text"]) == 3 and all(b.startswith("At ") for b in fd["branches_text"])
    assert 'id="replay-next"' not in last.text and 'id="replay-prev"' in last.text


def test_a_step_shows_who_did_what_the_form_answers_handler_calls_and_the_record_as_it_was(world):
    eng, app, case_id = world
    client = _client(app, "auditor")
    total = client.get(f"/cases/{case_id}/replay").context["total"]
    pages = [client.get(f"/cases/{case_id}/replay?step={n}") for n in range(1, total + 1)]
    contact = next(r for r in pages if any(e["type"] == "task.completed" and "Record the contact" in e["sentence"]
                                           for e in r.context["events"]))
    [done] = [e for e in contact.context["events"] if e["type"] == "task.completed"]
    assert done["who"] == "Demo front door advisor"
    assert ("Form answers submitted", ) == done["details"][0][:1] and "Joan Barker" in done["details"][0][1]
    assert ("Name", "Joan Barker") in contact.context["record_rows"]  # the record as this step left it
    before = pages[contact.context["step"] - 2]
    assert ("Name", "Joan Barker") not in before.context["record_rows"]
    calls = [e for r in pages for e in r.context["events"] if e["type"] == "handler.called"]
    assert calls and all([d[0] for d in e["details"]] == ["Handler", "Inputs", "Output"] for e in calls)
    letters = [e for r in pages for e in r.context["events"] if e.get("letter")]
    assert len(letters) == len(eng.documents(case_id)) > 0
    assert letters[0]["letter"]["body"] and f"/cases/{case_id}/letters/" in letters[0]["letter"]["href"]
    timers = [e for r in pages for e in r.context["events"] if e["type"] == "timer.set"]
    assert timers and all(e["details"][0][0] == "Due" for e in timers)


def test_a_child_process_opens_in_its_own_diagram_from_the_step_that_started_it(world):
    eng, app, case_id = world
    client = _client(app, "auditor")
    total = client.get(f"/cases/{case_id}/replay").context["total"]
    started = next(r for n in range(1, total + 1) if (r := client.get(f"/cases/{case_id}/replay?step={n}"))
                   and any(e.get("child") for e in r.context["events"]))
    [link] = [e["child"] for e in started.context["events"] if e.get("child")]
    assert link["process"] == "Reablement"
    assert f'href="{link["href"]}"' in started.text and link["href"].endswith(f"#instance-{link['instance_id']}")
    child = next(i for i in started.context["instances"] if i["instance_id"] == link["instance_id"])
    assert f'id="instance-{link["instance_id"]}"' in started.text
    assert child["process_id"] == "reablement" and child["parent_name"] == "Adult front door"
    xml = client.get(child["diagram_url"])
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
    assert b'id="plan_reablement"' in xml.content and b'id="record_contact"' not in xml.content


def test_the_timeline_lists_every_event_200_a_page_with_links_to_each_step(world):
    eng, app, case_id = world
    for n in range(210):  # a long case: the record corrected again and again
        eng.update_case_record(case_id, {"note_count": n}, actor="team-manager", reason=f"correction {n}")
    client = _client(app, "auditor")
    r = client.get(f"/cases/{case_id}/replay?step=1")
    total_events = len(eng.history(case_id))
    assert r.context["pages"] == -(-total_events // 200) == 2 and len(r.context["timeline"]) == 200
    assert r.context["page"] == 1 and r.context["page_next"]
    last = r.context["total"]
    end = client.get(f"/cases/{case_id}/replay?step={last}")
    assert end.context["page"] == 2  # the page holding the step's events
    assert len(end.context["timeline"]) == total_events - 200
    assert [row["step"] for row in end.context["timeline"] if row["current"]] == [last]
    assert ("Note count", "209") in end.context["record_rows"]
    row = end.context["timeline"][0]
    assert f'href="/cases/{case_id}/replay?step={row["step"]}"' in end.text
    assert client.get(f"/cases/{case_id}/replay?step=1&page=3").status_code == 404


def test_a_moved_case_shows_the_move_as_a_step_and_the_new_version_after_it(make_engine):
    eng = make_engine("three_tasks.bpmn")
    create_demo_users(eng)
    case_id = eng.start("three_tasks").case_id
    eng.deploy([VARIANTS / "three_tasks_triage_added.bpmn"])
    plan = im.dry_run(eng, "three_tasks", 1, 2)
    im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="triage before screening",
               expected_versions=plan.expected_versions())
    [task] = eng.list_tasks(case_id=case_id)
    eng.complete_task(task["id"], {"contact": "phone"}, actor="advisor")
    client = _client(create_app(eng, run_timers=False), "auditor")
    try:
        total = client.get(f"/cases/{case_id}/replay").context["total"]
        pages = [client.get(f"/cases/{case_id}/replay?step={n}") for n in range(1, total + 1)]
        moved = next(r for r in pages if any(e["type"] == "instance.migrated" for e in r.context["events"]))
        [mig] = [e for e in moved.context["events"] if e["type"] == "instance.migrated"]
        assert mig["migration"]["from"] == 1 and mig["migration"]["to"] == 2
        assert "Moved from version 1 to version 2" in mig["sentence"]
        assert "From this step on its diagram is version 2" in moved.text
        before = pages[moved.context["step"] - 2]
        [b], [m] = before.context["instances"], moved.context["instances"]
        assert (b["version"], m["version"]) == (1, 2) and b["diagram_url"] != m["diagram_url"]
        assert b"triage" not in client.get(b["diagram_url"]).content
        assert b'id="triage"' in client.get(m["diagram_url"]).content
        [after] = pages[-1].context["instances"]
        assert after["version"] == 2 and after["ready"] == ["triage"]
    finally:
        timeline.clear_cache()


# ---------------------------------------------------------------------- who may, and bad addresses
def test_opening_the_replay_is_logged_and_a_caseworker_without_access_is_refused(world):
    eng, app, case_id = world
    r = _client(app, "auditor").get(f"/cases/{case_id}/replay?step=2")
    assert r.status_code == 200
    assert _last_access(eng, case_id) == ("auditor", "replay", "allowed", f"/cases/{case_id}/replay?step=2")
    assert access_log(eng, case_id)[-1]["action"] == "replay"
    # a caseworker who never worked on the case
    ot = _client(app, "occupational-therapist").get(f"/cases/{case_id}/replay")
    assert ot.status_code == 403 and "You do not have permission" in ot.text
    # the social worker did work on it, until it was restricted to the team manager
    assert _client(app, "social-worker").get(f"/cases/{case_id}/replay").status_code == 200
    restrict_case(eng, case_id, ["team-manager"])
    sw = _client(app, "social-worker")
    for path in (f"/cases/{case_id}/replay", f"/cases/{case_id}/replay/diagrams/1"):
        refused = sw.get(path)  # as an unknown case (404): its existence is not disclosed
        assert refused.status_code == 404 and "restricted" not in refused.text, path
    assert _last_access(eng, case_id) == ("social-worker", "replay", "refused",
                                          f"/cases/{case_id}/replay/diagrams/1")
    assert access_log(eng, case_id)[-1]["action"] == "refused:replay"
    assert _client(app, "auditor").get(f"/cases/{case_id}/replay").status_code == 404  # not named on it
    assert _client(app, "team-manager").get(f"/cases/{case_id}/replay").status_code == 200
    signed_out = TestClient(app, follow_redirects=False).get(f"/cases/{case_id}/replay")
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/sign-in"


def test_bad_addresses_get_a_clear_page_and_change_nothing(world):
    eng, app, case_id = world
    client = _client(app, "auditor")
    heads, count = eng.chain_heads(), _event_count(eng)
    total = client.get(f"/cases/{case_id}/replay").context["total"]
    cases = {
        f"/cases/{case_id}/replay?step={total + 1}": (404, f"This case has no step {total + 1}: its steps are "
                                                           f"numbered 1 to {total}."),
        f"/cases/{case_id}/replay?step=0": (404, "This case has no step 0"),
        f"/cases/{case_id}/replay?step=two": (400, "The step number in the address must be a whole number, not "
                                                   "&#39;two&#39;."),
        f"/cases/{case_id}/replay?step=-3": (400, "The step number in the address must be a whole number"),
        "/cases/9999/replay": (404, "There is no case record at this address."),
        "/cases/99999999999/replay": (404, "There is no case record at this address."),  # ids are up to 2^63 - 1
        f"/cases/{2**63}/replay": (404, "There is no case record at this address."),  # out of range: no case there
        f"/cases/{case_id}/replay/diagrams/{2**63}": (404, "This case never ran on that diagram."),
        "/cases/CASE-1/replay": (400, "The case number in the address must be a whole number, not &#39;CASE-1&#39;. "
                                      "That looks like a case reference: find the case by it (auditors and team "
                                      "managers: Find cases) and choose Replay on its record."),
        f"/cases/{case_id}/replay?page=x": (400, "The page number in the address must be a whole number"),
        f"/cases/{case_id}/replay/diagrams/abc": (400, "The diagram version in the address must be a whole number"),
        f"/cases/{case_id}/replay/diagrams/99999": (404, "This case never ran on that diagram."),
    }
    for path, (status, message) in cases.items():
        r = client.get(path, headers={"Accept": "text/html"})
        assert r.status_code == status, path
        assert r.headers["content-type"].startswith("text/html"), path
        assert message in r.text, path
    assert eng.chain_heads() == heads and _event_count(eng) == count


def test_the_record_shows_lists_and_nested_values_in_words_and_the_help_says_where_the_list_is(world):
    eng, app, case_id = world
    eng.update_case_record(case_id, {"previous_address": ["22 Elm Road", "Northby"],
                                     "gp": {"name": "Dr Rao", "phones": ["01632 960111", "01632 960112"],
                                            "practice": {"town": "Northby"}},
                                     "carers": [{"name": "Ann", "lives_with": True}, {"name": "Bob"}]},
                           actor="team-manager", reason="correction")
    client = _client(app, "auditor")
    last = client.get(f"/cases/{case_id}/replay").context["total"]
    r = client.get(f"/cases/{case_id}/replay?step={last}")
    rows = dict(r.context["record_rows"])
    assert rows["Previous address"] == "22 Elm Road, Northby"
    assert rows["Gp"] == "Name: Dr Rao\nPhones: 01632 960111, 01632 960112\nPractice:\n  Town: Northby"
    assert rows["Carers"] == "Lives with: Yes\nName: Ann\n\nName: Bob"  # keys as stored (sorted)
    assert not any(v.lstrip().startswith(("[", "{")) for v in rows.values())
    assert "22 Elm Road, Northby" in r.text and "[" not in r.text.split('id="record"')[1].split("</dl>")[0]
    # the words are under each diagram, and the page says so
    assert "The list below each diagram says the same in words." in r.text and "list above" not in r.text
    assert r.text.index('class="app-diagram app-replay-diagram"') < r.text.index('class="govuk-summary-list '
                                                                                 'govuk-summary-list--no-border '
                                                                                 'app-replay-text"')


# ---------------------------------------------------------------------- in the browser, by keyboard
def test_the_replay_diagram_opens_readable_at_the_step_and_can_show_the_whole_diagram_by_keyboard(world):
    eng, app, case_id = world
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        sign_in(page, base, "auditor", demo_password("auditor"), then=None)
        page.goto(f"{base}/cases/{case_id}/replay?step=1")
        page.wait_for_selector(".app-replay-diagram[data-rendered=true]")
        diagram = page.locator(".app-replay-diagram").first
        # the step's element (the contact waiting to be recorded) at a readable size, in view
        current = diagram.locator(".djs-element.app-marker-active[data-element-id='record_contact']")
        box, frame = current.bounding_box(), diagram.bounding_box()
        assert box["height"] >= 40 and float(diagram.get_attribute("data-zoom")) >= 1
        assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
        assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"]
        run_axe(page, "replay, diagram zoomed to the step")
        # by keyboard: the whole diagram, then back to the step
        whole = diagram.get_by_role("button", name="Show the whole diagram")
        whole.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("d => d.dataset.view === 'whole'", arg=diagram.element_handle())
        assert current.bounding_box()["height"] < box["height"]
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.textContent") == "Zoom to where it stood"
        page.keyboard.press("Enter")
        page.wait_for_function("d => d.dataset.view === 'step'", arg=diagram.element_handle())
        assert current.bounding_box()["height"] >= 40
        # the next step keeps the drawn diagram and its buttons, zoomed to the new step
        page.locator("#replay-next").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#replay-main').dataset.step === '2'")
        page.wait_for_selector(".app-replay-diagram[data-rendered=true]")
        first = page.locator(".app-replay-diagram").first
        assert first.get_by_role("button", name="Show the whole diagram").count() == 1
        assert float(first.get_attribute("data-zoom")) >= 1 or first.get_attribute("data-view") == "whole"
        run_axe(page, "replay, step 2")
        context.close()
def test_the_auditor_steps_through_the_journey_by_keyboard_and_sees_the_path_grow(world):
    eng, app, case_id = world
    total = timeline.case_timeline(eng, case_id)["total_steps"]
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, base, "auditor", demo_password("auditor"), then=None)
        page.goto(f"{base}/cases/{case_id}")
        page.click("#replay-link")
        page.wait_for_url(f"{base}/cases/{case_id}/replay")
        page.wait_for_selector(".app-replay-diagram[data-rendered=true]")
        run_axe(page, "replay (step 1)")

        def marked() -> dict[str, int]:
            page.wait_for_function("() => [...document.querySelectorAll('.app-replay-diagram')]"
                                   ".every(e => e.getAttribute('data-rendered') === 'true')")
            return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.app-replay-diagram')]
                .map(d => [d.id.replace(/-v\\d+$/, ''), d.querySelectorAll(
                    '.djs-element.app-marker-done, .djs-element.app-marker-flow').length]))""")

        counts = [marked()]
        assert sum(counts[0].values()) > 0
        # where the case stood: the contact waiting to be recorded, outlined and badged "Now"
        assert page.locator(".djs-element.app-marker-active[data-element-id='record_contact']").count() == 1
        assert page.locator(".app-marker-active-badge").count() >= 1
        for n in range(2, total + 1):
            page.keyboard.press("j" if n % 2 else "ArrowRight")
            page.wait_for_function("n => document.querySelector('#replay-main').dataset.step === String(n)", arg=n)
            counts.append(marked())
            assert page.text_content("#replay-announce").startswith(f"Step {n} of {total}")
            assert page.url == f"{base}/cases/{case_id}/replay?step={n}"
        # on every diagram the marked path only grows, and every process of the journey appeared
        for key in counts[-1]:
            series = [c[key] for c in counts if key in c]
            assert series == sorted(series) and series[-1] > 0, key
        assert len(counts[-1]) == 7 and len(counts[0]) == 1  # the six of the journey and the financial assessment
        # and back again: the previous step's marks come back
        page.keyboard.press("k")
        page.wait_for_function("n => document.querySelector('#replay-main').dataset.step === String(n)",
                               arg=total - 1)
        assert marked() == counts[-2]
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("n => document.querySelector('#replay-main').dataset.step === String(n)",
                               arg=total - 2)
        # what the marks mean is said without colour: ticks on finished steps, and in words
        assert page.locator(".app-marker-done-badge").count() > 0
        assert page.locator("ol.app-replay-done li").count() > 0
        run_axe(page, "replay (stepped)")
        # a step picked from the timeline of every event, by keyboard
        page.focus("#replay-timeline a[data-step-link='2']")
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#replay-main').dataset.step === '2'")
        assert page.eval_on_selector_all("#replay-timeline tr.app-replay-current", "rs => rs.map(r => r.dataset.step)")\
            and set(page.eval_on_selector_all("#replay-timeline tr.app-replay-current",
                                              "rs => rs.map(r => r.dataset.step)")) == {"2"}
        assert page.get_attribute("#replay-timeline tr.app-replay-current a", "aria-current") == "step"
        assert errors == []
        context.close()
        # without the script the links still step
        plain = browser.new_context(java_script_enabled=False)
        page = plain.new_page()
        sign_in(page, base, "auditor", demo_password("auditor"), then=None)
        page.goto(f"{base}/cases/{case_id}/replay?step=3")
        page.click("#replay-next")
        page.wait_for_url(f"{base}/cases/{case_id}/replay?step=4")
        assert page.text_content("#replay-title") == f"Step 4 of {total}"
        plain.close()


def test_a_replay_diagram_that_cannot_be_loaded_says_so_in_the_past_tense(world):
    """api/static/diagram_view.js on the replay page: the status line's sentence ends with where things stood."""
    eng, app, case_id = world
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()  # bypassed for axe's injected script
        sign_in(page, base, "auditor", demo_password("auditor"), then=None)
        page.route("**/replay/diagrams/**", lambda route: route.fulfill(status=503, body="down"))
        page.goto(f"{base}/cases/{case_id}/replay")
        page.wait_for_selector(".app-replay-diagram[data-rendered]", timeout=20_000)
        first = page.locator(".app-replay-diagram").first
        assert first.get_attribute("data-rendered") == "failed"
        status = page.locator(f"#{first.get_attribute('id')}-status").inner_text()
        assert status == ("The diagram could not be drawn: the diagram could not be loaded (503). "
                          "The list below says where things stood.")  # the list is under the diagram
        run_axe(page, "replay, a diagram not drawn")


def test_a_step_whose_event_data_was_removed_says_so_plainly(world):
    eng, app, case_id = world
    done = next(e for e in eng.history(case_id) if e["type"] == "task.completed")
    with eng.db.transaction() as conn:  # allowed by the trigger: the erasure marker, without a case.erased event
        conn.execute(text("UPDATE events SET data = :m WHERE chain = :c AND seq = :s"),
                     {"m": ERASED_DATA, "c": f"case:{case_id}", "s": done["seq"]})
    timeline.clear_cache()
    client = _client(app, "auditor")
    total = client.get(f"/cases/{case_id}/replay").context["total"]
    page = client.get(f"/cases/{case_id}/replay?step={total}")
    assert page.status_code == 200
    assert (f"event #{done['seq']} (task.completed): event #{done['seq']}&#39;s data was removed, so the case "
            "cannot be re-run from there") in page.text
    assert "KeyError" not in page.text


def test_after_a_failed_check_the_replay_says_so_at_the_top_and_marks_the_altered_event_at_its_step(world):
    # the failed check was shown only in the panel under the 200-row timeline, and the step holding the edited
    # event looked like any other: an auditor stepping through read the edited answers with no warning
    from engine.integrity import check_case
    from tests.test_history import _bypass_triggers

    eng, app, case_id = world
    check_case(eng, case_id, actor="auditor")
    client = _client(app, "auditor")
    assert 'id="replay-altered"' not in client.get(f"/cases/{case_id}/replay").text  # passed: nothing to say
    done = [e for e in eng.history(case_id) if e["type"] == "task.completed"][2]
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, 'Needs help with meals', 'No help needed') "
                          "WHERE chain = :c AND seq = :s", c=f"case:{case_id}", s=done["seq"])
    timeline.clear_cache()
    assert check_case(eng, case_id, actor="auditor")["first_bad_event"] == done["seq"]
    first = client.get(f"/cases/{case_id}/replay")
    step = first.context["altered"]["step"]
    assert step == next(r["step"] for r in first.context["timeline"] if r["seq"] == done["seq"])
    top = re.search(r'<div class="govuk-warning-text[^"]*" id="replay-altered">(.*?)</div>', first.text, re.S)
    assert top and first.text.index('id="replay-altered"') < first.text.index('id="replay-title"')
    words = " ".join(re.sub(r"<[^>]+>", " ", top.group(1)).split())
    assert f"failed: this case's history has been altered at event #{done['seq']}, in step {step}." in words
    href = f"/cases/{case_id}/replay?step={step}#event-{done['seq']}"
    assert f'href="{href}" id="replay-altered-step">Go to step {step} (event #{done["seq"]})</a>' in first.text
    at = client.get(href.split("#")[0])
    altered = [e["seq"] for e in at.context["events"] if e["altered"]]
    assert altered == [done["seq"]]
    item = re.search(rf'<li class="[^"]*" id="event-{done["seq"]}">(.*?)</li>', at.text, re.S).group(1)
    assert ">Altered</strong>" in item
    rows = [r for r in at.context["timeline"] if r["altered"]]
    assert [r["seq"] for r in rows] == [done["seq"]]
    # the step fetched alone (stepping by keyboard) marks it too
    assert ">Altered</strong>" in client.get(href.split("#")[0] + "&part=step").text


def test_the_record_as_it_was_gives_a_closure_in_words(world):
    # it showed "At: 2027-01-08T00:14:00.000000+00:00 / By: team-manager / Details: — / Reason: moved_away"
    from api import case_record as cr

    eng, app, case_id = world
    eng.close_case(case_id, reason="moved_away", actor="team-manager")
    closed_at = cr.day_and_time(eng.history(case_id)[-1]["at"])
    eng.reopen_case(case_id, reason="Came back to the county", actor="team-manager")
    timeline.clear_cache()
    client = _client(app, "auditor")
    total = client.get(f"/cases/{case_id}/replay").context["total"]
    closed = dict(client.get(f"/cases/{case_id}/replay?step={total - 1}").context["record_rows"])
    assert closed["Closed"] == f"{closed_at} by Demo team manager: Moved to another council"
    reopened = client.get(f"/cases/{case_id}/replay?step={total}")
    rows = dict(reopened.context["record_rows"])
    assert "Closed" not in rows
    assert rows["Last closure"] == f"{closed_at} by Demo team manager: Moved to another council"
    shown = re.search(r'>Last closure</dt><dd class="govuk-summary-list__value"><span class="app-replay-value">'
                      r'([^<]*)</span>', reopened.text).group(1)
    assert shown == f"{closed_at} by Demo team manager: Moved to another council"


def test_an_address_answered_with_an_error_page_is_not_logged_as_a_view(world):
    eng, app, case_id = world
    client = _client(app, "auditor")
    total = client.get(f"/cases/{case_id}/replay").context["total"]
    before = len(access_log(eng, case_id))
    for path in (f"/cases/{case_id}/replay?step={total + 1}", f"/cases/{case_id}/replay?step=0",
                 f"/cases/{case_id}/replay?page=9", f"/cases/{case_id}/replay/diagrams/99999"):
        assert client.get(path).status_code == 404, path
    added = access_log(eng, case_id)[before:]
    # nothing was shown: no "replay · Allowed" entry, each is a refused request
    assert len(added) == 4 and {e["action"] for e in added} == {"refused:request"}
    assert client.get(f"/cases/{case_id}/replay?step={total}").status_code == 200
    assert _last_access(eng, case_id) == ("auditor", "replay", "allowed", f"/cases/{case_id}/replay?step={total}")


def test_a_refusal_offers_a_signed_in_user_their_home_page_in_sentence_case(world):
    _eng, app, _case_id = world
    client = _client(app, "auditor")
    for path in ("/admin/users", "/admin/restrictions", "/processes/drafts/1/edit", "/tasks"):
        r = client.get(path, headers={"Accept": "text/html"})
        assert r.status_code == 403, path
        assert 'href="/home">Go to your home page' in r.text and 'href="/sign-in">Sign in' not in r.text, path
    tasks = client.get("/tasks", headers={"Accept": "text/html"}).text
    assert "Your role does not work on tasks." in tasks
