"""Recording a hospital admission and the discharge from the case record, in a browser (keyboard
only) and without one: axe-clean pages, errors that name the field, who may act.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests import test_api_cases
from tests.browser import AXE, launch, live_server
from tests.case_helpers import events
from tests.casework_helpers import ROOT, casework_engine, page_client
from tests.conftest import START
from tests.test_case_actions import planned_case
from tests.test_pages_case import _axe_with_csp, _client, _sign_in

world = test_api_cases.world  # (eng, app, cases): Joan's and Peter's case records (a fixture)


def _day(prefix, typed):
    """The GOV.UK date input's three boxes, from "d m yyyy"."""
    return dict(zip((f"{prefix}-day", f"{prefix}-month", f"{prefix}-year"), typed.split(), strict=True))


def _reablement(eng, case_id):
    return next(i for i in eng.get_case(case_id)["instances"] if i["process_id"] == "reablement")


def test_rosa_records_joans_admission_and_discharge_from_the_record_by_keyboard(world):
    eng, app, cases = world
    joan = cases["joan"]
    iid = _reablement(eng, joan)["id"]
    eng.advance_clock(timedelta(days=21))
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with live_server(app) as base, launch() as browser:
        context = browser.new_context()
        page = context.new_page()
        _sign_in(page, base, "rosa")
        page.goto(f"{base}/cases/{joan}")
        link = page.get_by_role("link", name="Record a hospital admission (Reablement")
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}/instances/{iid}/hospital-admission")
        _axe_with_csp(browser, base, context, f"/cases/{joan}/instances/{iid}/hospital-admission", "admission form")

        # blank hospital: the error names the field and links to it
        page.locator("button", has_text="Record the admission").focus()
        page.keyboard.press("Enter")
        page.locator(".govuk-error-summary").wait_for()
        assert "Enter the hospital the person was admitted to" in page.locator(".govuk-error-summary").inner_text()
        assert page.title().startswith("Error: ")
        _axe_with_csp(browser, base, context, None, "admission form with errors", html=page.content())
        page.locator("#hospital").focus()
        page.keyboard.type("Northby General")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}?saved=admission*")
        assert "Paused: in hospital" in page.locator(f"#process-{iid}").inner_text()
        assert _reablement(eng, joan)["status"] == "suspended"
        _axe_with_csp(browser, base, context, f"/cases/{joan}", "case with a paused process")

        eng.advance_clock(timedelta(days=10))
        _sign_in(page, base, "rosa")  # the session ran out with the simulated clock
        page.goto(f"{base}/cases/{joan}")
        page.get_by_role("link", name="Record the discharge (Reablement").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}/instances/{iid}/hospital-discharge")
        assert "Admitted to Northby General on 24 March 2031." in page.locator("main").inner_text()
        assert "go on with the time it had left" in page.locator("#discharge-outcome").inner_text()
        _axe_with_csp(browser, base, context, f"/cases/{joan}/instances/{iid}/hospital-discharge", "discharge form")
        # the GOV.UK date input (day, month, year), as on the close page: a fieldset with its legend, an example
        # the field accepts (today), today filled in
        group = page.get_by_role("group", name="Date of discharge")
        assert "For example, 3 4 2031" in group.inner_text()
        assert [page.locator(f"#discharged_on-{p}").input_value() for p in ("day", "month", "year")] == \
            ["3", "4", "2031"]
        # a day before the admission: refused naming the admission in words, the error linked to the day box
        page.locator("#discharged_on-day").focus()
        page.keyboard.press("Control+A")
        page.keyboard.type("20")
        page.keyboard.press("Tab")
        page.keyboard.type("3")
        page.keyboard.press("Enter")
        page.locator(".govuk-error-summary").wait_for()
        assert ("The date of the discharge must be on or after the admission (24 March 2031)"
                in page.locator(".govuk-error-summary").inner_text())
        assert page.locator(".govuk-error-summary a").get_attribute("href") == "#discharged_on-day"
        assert page.locator("#discharged_on-day").input_value() == "20"  # what was typed is kept
        _axe_with_csp(browser, base, context, None, "discharge form with errors", html=page.content())
        page.locator(".govuk-error-summary a").focus()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "discharged_on-day"
        page.keyboard.press("Control+A")
        page.keyboard.type("3")
        page.keyboard.press("Tab")
        page.keyboard.press("Control+A")
        page.keyboard.type("4")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}?saved=discharge*")
        assert "Record a hospital admission" in page.locator(f"#process-{iid}").inner_text()
    assert _reablement(eng, joan)["status"] == "waiting"
    [resumed] = events(eng, joan, "instance.resumed")
    assert resumed["actor"] == "rosa" and resumed["data"]["details"]["discharged_on"] == "2031-04-03"
    assert dict(eng.instance_snapshot(iid)["timers"])["period_ended"].startswith(
        (START + timedelta(days=31 + 21)).date().isoformat())


def test_the_forms_refuse_bad_dates_and_read_only_roles(world):
    eng, app, cases = world
    joan, peter = cases["joan"], cases["peter"]
    iid = _reablement(eng, joan)["id"]
    rosa, csrf = _client(app, "rosa")
    url = f"/cases/{joan}/instances/{iid}/hospital-admission"
    r = rosa.post(url, data={"csrf_token": csrf, "hospital": "Northby General", **_day("admitted_on", "1 13 2031")})
    assert r.status_code == 400 and "must be a real date" in r.text and 'href="#admitted_on-day"' in r.text
    assert 'value="13"' in r.text  # what was typed is shown again
    # the ISO box is gone: a date typed there is no date
    r = rosa.post(url, data={"csrf_token": csrf, "hospital": "Northby General", "admitted_on": "2031-03-03"})
    assert r.status_code == 400 and "Enter the date of the admission" in r.text
    # before the process started (3 March 2031), or in the future: refused, naming the bound in words
    for typed, message in (("1 1 1890", "must be on or after the day reablement started (3 March 2031)"),
                           ("2 3 2031", "must be on or after the day reablement started (3 March 2031)"),
                           ("4 3 2031", "must be today or in the past"),
                           ("3 3 31", "must be a real date")):
        r = rosa.post(url, data={"csrf_token": csrf, "hospital": "Northby General", **_day("admitted_on", typed)})
        assert r.status_code == 400 and message in r.text, typed
    r = rosa.post(f"/cases/{joan}/instances/{iid}/hospital-discharge",
                  data={"csrf_token": csrf, **_day("discharged_on", "3 3 2031")})
    assert r.status_code == 409 and "is not suspended" in r.text
    r = rosa.post(url, data={"csrf_token": "wrong", "hospital": "Northby General", "admitted_on": "2031-03-03"})
    assert r.status_code in (400, 403)
    assert _reablement(eng, joan)["status"] == "waiting"

    audrey, csrf_a = _client(app, "audrey")
    assert audrey.get(url).status_code == 403
    assert "Record a hospital admission" not in audrey.get(f"/cases/{joan}").text
    r = audrey.post(url, data={"csrf_token": csrf_a, "hospital": "Northby General", "admitted_on": "2031-03-03"})
    assert r.status_code == 403 and _reablement(eng, joan)["status"] == "waiting"
    # no link for a process a hospital admission does not pause (Peter's finished needs assessment)
    sam, _ = _client(app, "sam")
    page = sam.get(f"/cases/{peter}").text
    assert page.count("Record a hospital admission") == 1  # the review cycle only


def _admit(eng, instance_id, admitted_on):
    """A hospital admission as api/suspend.py records it (the engine's pause, with the hospital's details)."""
    eng.suspend_instance(instance_id, reason="Admitted to hospital", actor="rosa",
                         details={"kind": "hospital_admission", "hospital": "Northby General",
                                  "admitted_on": admitted_on})


def _row(page: str, name: str) -> str:
    import re

    rows = [r for r in re.findall(r'<tr class="govuk-table__row">(.*?)</tr>', page, re.S) if name in r]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_paused_task_is_not_overdue_in_the_inbox_and_says_so(world):
    """Findings 10, 2: Deliver reablement's due date (7 April 2031) passes while Joan is in hospital: the inbox
    tags it "Paused: in hospital", shows no frozen date and does not count it overdue; after the discharge it is
    overdue again."""
    eng, app, cases = world
    joan = cases["joan"]
    iid = _reablement(eng, joan)["id"]
    _admit(eng, iid, START.date().isoformat())
    eng.advance_clock(timedelta(days=50))  # past the task's due date: nothing fires while paused
    rosa, _ = _client(app, "rosa")
    page = rosa.get("/tasks?view=team").text
    row = _row(page, "Deliver reablement")
    assert "Paused: in hospital" in row and "Overdue" not in row and "7 April 2031" not in row
    assert "<strong>0</strong> overdue" in page
    body = rosa.get("/api/tasks?scope=team").json()
    assert body["counts"]["overdue"] == 0
    [task] = [t for t in body["tasks"] if t["element_id"] == "deliver_reablement"]
    assert task["paused"]["tag"] == "Paused: in hospital" and task["paused"]["hospital"] == "Northby General"
    assert not [t for t in rosa.get("/api/tasks?scope=team&due=overdue").json()["tasks"]
                if t["element_id"] == "deliver_reablement"]

    eng.resume_instance(iid, actor="rosa")  # the discharge: the date moves on by the time the stay took
    row = _row(rosa.get("/tasks?view=team").text, "Deliver reablement")
    assert "27 May 2031" in row and "Paused" not in row


def test_a_paused_task_page_says_why_and_completing_it_is_refused_keeping_what_was_typed(world):
    """Findings 10, 3: the task page names the pause and links to the case record, offers no Complete task, and
    a completion sent anyway is refused with that reason (not "Someone else completed or changed this task")."""
    eng, app, cases = world
    joan = cases["joan"]
    iid = _reablement(eng, joan)["id"]
    [task] = [t for t in eng.list_tasks(case_id=joan) if t["element_id"] == "deliver_reablement"]
    _admit(eng, iid, START.date().isoformat())
    rosa, csrf = _client(app, "rosa")
    assert rosa.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf, "revision": task["revision"]}
                     ).status_code == 303
    page = rosa.get(f"/tasks/{task['id']}").text
    said = ("Reablement is paused while Joan Barker is in hospital (Northby General, since 3 March 2031): record "
            "the discharge on the case record first")
    assert said in page and f'href="/cases/{joan}#process-{iid}"' in page
    assert ">Complete task</button>" not in page and "Overdue" not in page
    revision = eng.get_task(task["id"])["revision"]
    r = rosa.post(f"/tasks/{task['id']}", data={"csrf_token": csrf, "revision": revision, "action": "complete",
                                                "outcome": "needs_remain", "summary": "Still needs help to wash"})
    assert r.status_code == 409
    assert said in r.text and "Someone else" not in r.text
    assert "Still needs help to wash" in r.text  # what was typed is kept
    assert _reablement(eng, joan)["status"] == "suspended"
    assert "deliver_reablement" in [t["element_id"] for t in eng.list_tasks(case_id=joan)]


def test_the_paused_task_and_the_inbox_in_a_browser_are_axe_clean_and_keyboard_usable(world):
    eng, app, cases = world
    joan = cases["joan"]
    iid = _reablement(eng, joan)["id"]
    [task] = [t for t in eng.list_tasks(case_id=joan) if t["element_id"] == "deliver_reablement"]
    _admit(eng, iid, START.date().isoformat())
    eng.advance_clock(timedelta(days=50))
    with live_server(app) as base, launch() as browser:
        context = browser.new_context()
        page = context.new_page()
        _sign_in(page, base, "rosa", then=None)
        page.goto(f"{base}/tasks?view=team")
        assert "Paused: in hospital" in page.locator("tbody").inner_text()
        _axe_with_csp(browser, base, context, "/tasks?view=team", "inbox with a paused task")
        link = page.get_by_role("link", name="Deliver reablement", exact=True)
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        banner = page.locator("#paused")
        assert "Reablement is paused while Joan Barker is in hospital" in banner.inner_text()
        assert page.get_by_role("button", name="Complete task").count() == 0
        _axe_with_csp(browser, base, context, f"/tasks/{task['id']}", "task of a paused process")
        for _ in range(40):  # the banner's link is reached with the keyboard
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Go to the case record":
                break
        else:
            raise AssertionError("the link to the case record is not reached with Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}#process-{iid}")
        assert "Record the discharge" in page.locator(f"#process-{iid}").inner_text()


def _review_cycle(eng, case_id):
    return next(i for i in eng.get_case(case_id)["instances"] if i["process_id"] == "review"
                and i["status"] in ("waiting", "suspended"))


def test_the_record_shows_frozen_timers_as_paused(world):
    """Findings 10, 2: while a process is paused the record gives no past dates for its timers and tasks (it says
    how long each timer had left)."""
    eng, app, cases = world
    joan = cases["joan"]
    iid = _reablement(eng, joan)["id"]
    before = dict(eng.instance_snapshot(iid)["timers"])
    _admit(eng, iid, START.date().isoformat())
    eng.advance_clock(timedelta(days=50))
    rosa, _ = _client(app, "rosa")
    [reablement] = [p for p in rosa.get(f"/api/cases/{joan}/record").json()["processes"]
                    if p["instance_id"] == iid]
    lines = "\n".join(reablement["lines"])
    assert "Timer on Deliver reablement: Reablement period reached, paused while in hospital; 42 days were left" \
        in lines, (lines, before)
    assert "due 7 April 2031" not in lines and ", paused while in hospital" in reablement["lines"][0]
    assert "on 14 April 2031" not in rosa.get(f"/cases/{joan}").text



def test_the_chronology_says_what_was_paused_and_resumed_in_words(world):
    """Findings 10, 10: the chronology said "Instance suspended" and "Instance resumed"."""
    eng, app, cases = world
    joan = cases["joan"]
    iid = _reablement(eng, joan)["id"]
    _admit(eng, iid, START.date().isoformat())
    eng.resume_instance(iid, actor="rosa", reason="Discharged from Northby General")
    rosa, _ = _client(app, "rosa")
    texts = [e["text"] for e in rosa.get(f"/api/cases/{joan}/chronology").json()["entries"]]
    day = f"{START.day} {START:%B %Y}"
    proc = "Reablement (short-term support)"
    assert f"{proc} paused by Rosa Patel: admitted to Northby General on {day}" in texts, texts
    assert f"{proc} resumed by Rosa Patel: discharged from Northby General" in texts, texts
    assert not [t for t in texts if t.startswith("Instance ")]


@pytest.fixture
def casework(db_url):
    yield from casework_engine(db_url, [ROOT / "processes"], users=True)


def test_the_plan_summary_gives_the_first_review_as_a_hospital_stay_moved_it(casework):
    """Findings 10, 13: the first review falls during a hospital stay on the review cycle: while it goes on the
    summary says it is paused (no past date); after the discharge it gives the moved date and says why."""
    from api.app import create_app
    from api.case_record import long_day

    eng = casework
    app = create_app(eng, run_timers=False)
    cid = planned_case(eng)
    cycle = _review_cycle(eng, cid)["id"]
    sw, _ = page_client(app, "social_worker")
    plan = sw.get(f"/api/cases/{cid}/record").json()["plan"]
    planned = plan["first_review"]
    assert planned and plan["first_review_now"] == {"text": planned, "note": ""}
    _admit(eng, cycle, "2031-03-03")
    eng.advance_clock(timedelta(days=70))  # past the first review: it does not fall while paused
    sw, _ = page_client(app, "social_worker")
    summary = sw.get(f"/cases/{cid}").text
    assert "First review paused while in hospital; 43 days were left" in summary  # 3 March to 15 April
    assert f"(planned for {planned})" in summary
    eng.resume_instance(cycle, actor="rosa")
    [due] = [d for e, d in eng.instance_snapshot(cycle)["timers"] if e == "wait_for_review"]
    assert long_day(due) != planned
    plan = sw.get(f"/api/cases/{cid}/record").json()["plan"]
    assert plan["first_review_now"] == {"text": long_day(due),
                                        "note": f"moved from {planned} because of a hospital stay"}
    assert (f"First review {long_day(due)} (moved from {planned} because of a hospital stay)"
            in sw.get(f"/cases/{cid}").text)
