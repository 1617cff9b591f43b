"""Simulations started from today's open cases on the pages (api/simulation_pages.py, issue 16): the "Where should
the simulation start?" question of the processes page's and the draft review page's simulation forms reaches the run,
is part of what is asked (an empty start and a start from today are two simulations), is kept and said on the
waiting page and the report, and the report's "Carried over from today" gives the figures of the same direct call.
Bad answers are refused with the form's error summary; a live service with no open cases says so; a live database
that cannot be read is a simulation that could not be run — and in a real browser, by keyboard and axe-clean.

The live database is tests/simulation_held_world.py's (6 open cases: running safeguarding concerns, a suspended
one, an instance in error, a message waiting for a receiver; its clock stands at Thursday 12 March 2026 09:00), with
one user per role and the safeguarding drafts of tests/test_simulate_compare.py. Runs of 1 day keep each short.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from api import simulation_pages
from api.app import create_app
from api.auth import ROLES, create_user
from carepath import simulate, simulate_compare, simulate_today
from engine import drafts
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import simulation_runs
from tests import simulation_held_world as hw
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import type_and_submit
from tests.front_door_world import PASSWORD, TEAMS, username
from tests.test_auditor_read_only import snapshot
from tests.test_simulate_compare import make_drafts
from tests.test_simulation_pages import KEPT, KEPT_FROM_TODAY, _forget, changed, client, text, wait_until_done

ROOT = Path(__file__).resolve().parent.parent
SINGLE = ROOT / "tests" / "fixtures" / "simulation_single.yaml"
COMPARE = hw.SCENARIO  # tests/fixtures/simulation_compare.yaml
OWNER = "process-owner"
FROM_TODAY = "From today's open cases (copied and anonymised; the live cases are only read)"
START_ERROR = "Select where the simulation starts: from an empty caseload or from today&#39;s open cases"  # in HTML
COPIED_AT = "12 March 2026 at 9:00am"  # the held world's live clock


def _app(url: str, *, held: bool = True):
    """The held world's live database (or, `held` False, the same processes with no case at all), one user per
    role, the safeguarding drafts, and the app on it."""
    if held:
        hw.build(url)
    eng = Engine(url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    if not held:
        eng.init(simulated_start=hw.NOW)
        eng.deploy(hw.FILES)
    for role in ROLES:
        create_user(eng, username(role), PASSWORD, display_name=f"Test {role.replace('_', ' ')}", roles=[role],
                    teams=TEAMS.get(role, []))
    ids = make_drafts(eng)
    return eng, create_app(eng, run_timers=False), ids


@pytest.fixture(scope="module")
def world(module_db_url):
    eng, app, ids = _app(module_db_url)
    yield eng, app, ids
    _forget(eng)
    eng.db.dispose()


def carried_rows(html: str) -> dict[str, str]:
    """The report's "Carried over from today" summary list: row key -> the value's words."""
    section = html.split('id="carried-over"', 1)[1].split("</dl>", 1)[0]
    return {k: text(v).strip() for k, v in re.findall(
        r'<div class="govuk-summary-list__row" data-key="([a-z_]+)">.*?<dd class="govuk-summary-list__value">'
        r'(.*?)</dd>', section, re.S)}


def started_from(html: str) -> str:
    return text(re.search(r'<dd class="govuk-summary-list__value" id="simulation-start">(.*?)</dd>', html,
                          re.S).group(1)).strip()


def kept_rows(eng) -> list:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(simulation_runs.c.id, simulation_runs.c.starts_from)).all()


def test_a_single_run_from_today_reports_what_the_same_direct_call_carried_over(world, monkeypatch):
    eng, app, _ids = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE))
    before = snapshot(eng)
    for role in ROLES:  # the question changes nobody's rights: others are refused and start nothing
        if role != "process_owner":
            c, csrf = client(app, username(role))
            r = c.post("/processes/simulations",
                       data={"csrf_token": csrf, "start": "today", "days": "1", "seed": "1"})
            assert r.status_code == 403, role
    c, csrf = client(app, OWNER)
    form = c.get("/processes").text
    assert re.search(r'<input class="govuk-radios__input" id="sim-start" name="start" type="radio" value="empty"'
                     r' checked>', form)  # an empty caseload is the default
    assert 'id="sim-start-today" name="start" type="radio" value="today">' in form and FROM_TODAY in text(form)
    gate = threading.Event()
    real, calls = simulate.simulate, []

    def gated(*args, **kw):  # held until the waiting page has been read; records what reached the run
        calls.append(kw)
        gate.wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(simulate, "simulate", gated)
    try:
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "start": "today", "days": "1", "seed": "1"})
        assert r.status_code == 303
        link = r.headers["location"]
        waiting = text(c.get(link).text)
        assert "Where it starts: today's open cases, an anonymised copy of the cases open in the live service" \
               in waiting
        # the same question again opens the one running; from an empty caseload it is another simulation
        again = c.post("/processes/simulations", data={"csrf_token": csrf, "start": "today", "days": "1", "seed": "1"})
        assert again.headers["location"] == link
        other = c.post("/processes/simulations", data={"csrf_token": csrf, "start": "empty", "days": "1", "seed": "1"})
        assert other.status_code == 409 and "Another simulation is running" in other.text
    finally:
        gate.set()
    assert wait_until_done(c, link)["status"] == "ready"
    assert len(calls) == 1 and calls[0]["source"] is eng
    assert isinstance(calls[0]["from_live"], simulate_today.LiveStart)  # the option reached the run
    report = c.get(link).text
    assert started_from(report) == f"Today's open cases, copied and anonymised at {COPIED_AT} (the live cases " \
                                   "were only read)"
    direct = real(simulate.load_scenario(SINGLE), source=eng, days=1, seed=1, from_live=True)
    d = direct["carried_over"]
    rows = carried_rows(report)
    assert rows == {r["key"]: r["value"] for r in simulation_pages.carried(d)["rows"]}
    assert (d["cases"], d["instances"], d["tasks"], d["timers"]) == (6, 6, 4, 2)  # the held world's open work
    assert rows["cases"] == "6 cases"
    assert rows["instances"] == "6 instances, of which 1 suspended and 1 in error"
    assert rows["tasks"].startswith("4 tasks (") and rows["timers"] == "2 timers"
    assert rows["suspended"].startswith("1 instance kept paused") and rows["in_error"].startswith("1 instance kept")
    assert rows["messages"] == "1 message"
    assert rows["tasks_completed"] == f"{d['tasks_completed']} task{'s' if d['tasks_completed'] != 1 else ''}"
    assert rows["left_out"] == "1 message that had expired, 1 message for a case not copied"
    assert "Carried over from today" in text(report) and 'id="carried-none"' not in report
    assert f'<dd class="govuk-summary-list__value" id="contacts">{direct["contacts"]}</dd>' in report
    listing = text(c.get("/processes").text)
    assert "1 day, seed 1, from today's open cases" in listing
    after = snapshot(eng)
    assert changed(before, after) == KEPT_FROM_TODAY and [r.starts_from for r in kept_rows(eng)] == ["today"]

    # from an empty caseload: another simulation, kept beside it, that says so and carries nothing over
    r = c.post("/processes/simulations", data={"csrf_token": csrf, "start": "empty", "days": "1", "seed": "1"})
    empty = r.headers["location"]
    assert empty != link and wait_until_done(c, empty)["status"] == "ready"
    report = c.get(empty).text
    assert started_from(report) == "An empty caseload" and 'id="carried-over"' not in report
    assert sorted(r.starts_from for r in kept_rows(eng)) == ["empty", "today"]
    # a form without the question (sent by something other than the page) starts from an empty caseload
    r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "1"})
    assert r.headers["location"] == empty
    _forget(eng)


def test_a_comparison_from_today_reports_what_the_same_direct_call_carried_over(world, monkeypatch):
    eng, app, ids = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(COMPARE))
    did = ids["changed"]
    before = snapshot(eng)
    real, calls = simulate_compare.compare, []

    def spy(*args, **kw):
        calls.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(simulate_compare, "compare", spy)
    c, csrf = client(app, OWNER)
    review = c.get(f"/processes/drafts/{did}/review").text
    assert 'id="sim-start-today" name="start" type="radio" value="today">' in review
    r = c.post(f"/processes/drafts/{did}/simulations",
               data={"csrf_token": csrf, "start": "today", "days": "1", "seeds": "2"})
    assert r.status_code == 303
    link = r.headers["location"]
    assert wait_until_done(c, link) == {"status": "ready", "done": 4, "total": 4, "first_results": False}
    assert len(calls) == 1 and isinstance(calls[0]["from_live"], simulate_today.LiveStart)
    report = c.get(link).text
    assert started_from(report).startswith(f"Today's open cases, copied and anonymised at {COPIED_AT}")
    direct = real(simulate.load_scenario(COMPARE), eng, drafts.get_draft(eng, did), seeds=[1, 2], days=1,
                  from_live=True, workers=1)
    d = direct["carried_over"]
    rows = carried_rows(report)
    assert rows == {r["key"]: r["value"] for r in simulation_pages.carried(d, "safeguarding")["rows"]}
    assert (rows["cases"], rows["timers"], rows["messages"]) == ("6 cases", "2 timers", "1 message")
    assert rows["on_live_version"].startswith("3 instances (in the draft's runs too")  # the three concerns
    runs = re.search(r'<table class="govuk-table" id="carried-runs">(.*?)</table>', report, re.S).group(1)
    body = runs.split("<tbody", 1)[1]
    for i, seed in enumerate([1, 2]):
        row = text(re.findall(r"<tr.*?</tr>", body, re.S)[i]).split()
        assert row == [str(seed)] + [str(d[side][k][i]) for k in ("tasks_completed", "timers_fired",
                                                                  "messages_delivered") for side in ("live", "draft")]
    # the note on the instances staying on the live version, as the command prints it
    assert "3 instances of &#39;safeguarding&#39; already running live were carried over" in report
    assert "1 day, 2 seeds, revision 1, from today's open cases" in text(c.get(f"/processes/drafts/{did}/review").text)
    # the same draft from an empty caseload is another simulation
    r = c.post(f"/processes/drafts/{did}/simulations",
               data={"csrf_token": csrf, "start": "empty", "days": "1", "seeds": "2"})
    assert r.headers["location"] != link
    assert wait_until_done(c, r.headers["location"])["status"] == "ready"
    assert 'id="carried-over"' not in c.get(r.headers["location"]).text
    after = snapshot(eng)
    assert changed(before, after) == KEPT and sorted(r.starts_from for r in kept_rows(eng)) == ["empty", "today"]
    _forget(eng)


@pytest.mark.parametrize("form", ["single", "draft"])
@pytest.mark.parametrize("start", ["", "yesterday", "TODAY", "today ", "1"])
def test_a_bad_answer_to_where_it_starts_is_refused_with_the_error_summary(world, form, start):
    eng, app, ids = world
    c, csrf = client(app, OWNER)
    if form == "single":
        url, data = "/processes/simulations", {"csrf_token": csrf, "start": start, "days": "7", "seed": "4"}
    else:
        url = f"/processes/drafts/{ids['changed']}/simulations"
        data = {"csrf_token": csrf, "start": start, "days": "7", "seeds": "4"}
    r = c.post(url, data=data)
    assert r.status_code == 400
    assert 'class="govuk-error-summary"' in r.text
    assert f'<a href="#sim-start">{START_ERROR}</a>' in r.text  # the summary links to the first radio
    assert f'<p id="sim-start-error" class="govuk-error-message"><span class="govuk-visually-hidden">Error:</span> ' \
           f'{START_ERROR}</p>' in r.text
    assert r.text.count('class="govuk-error-message"') == 1
    assert 'value="7"' in r.text and 'value="4"' in r.text  # what was typed stays
    assert 'name="start" type="radio" value="empty" checked' not in r.text  # nothing chosen for them
    assert kept_rows(eng) == []


def test_a_live_database_that_cannot_be_read_is_a_simulation_that_could_not_be_run(world, monkeypatch, caplog):
    eng, app, ids = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE))
    secret = "Ignatius Wobblethorpe"

    def unreadable(*_a, **_kw):
        raise OperationalError(f"SELECT * FROM cases WHERE title = '{secret}'", {}, Exception("server closed"))

    monkeypatch.setattr(simulate_today, "read_live", unreadable)
    c, csrf = client(app, OWNER)
    with caplog.at_level(logging.INFO):
        for url, data in (("/processes/simulations", {"days": "1", "seed": "3"}),
                          (f"/processes/drafts/{ids['changed']}/simulations", {"days": "1", "seeds": "2"})):
            r = c.post(url, data={"csrf_token": csrf, "start": "today", **data})
            assert r.status_code == 303
            link = r.headers["location"]
            assert wait_until_done(c, link)["status"] == "failed"
            page = c.get(link)
            assert page.status_code == 200 and "The simulation could not be run" in page.text
            assert "Today&#39;s open cases could not be read from the live database, so the simulation did not " \
                   "start" in page.text
            assert "Where it starts: today's open cases" in text(page.text)
    assert "OperationalError" in caplog.text and secret not in caplog.text
    _forget(eng)


def test_a_live_service_with_no_open_cases_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE))
    eng, app, _ids = _app(f"sqlite:///{tmp_path / 'carepath.db'}", held=False)
    try:
        c, csrf = client(app, OWNER)
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "start": "today", "days": "1", "seed": "1"})
        link = r.headers["location"]
        assert wait_until_done(c, link)["status"] == "ready"
        report = c.get(link).text
        assert "The live service had no open cases then, so the simulation started from an empty caseload." \
               in text(report).replace("&#39;", "'")
        rows = carried_rows(report)
        assert (rows["cases"], rows["instances"], rows["tasks"], rows["left_out"]) == (
            "0 cases", "0 instances", "0 tasks", "Nothing")
    finally:
        _forget(eng)
        eng.db.dispose()


# ---------------------------------------------------------------------- in a real browser (one database)
@pytest.fixture
def browser_world(tmp_path, monkeypatch):
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE))
    eng, app, ids = _app(f"sqlite:///{tmp_path / 'carepath.db'}")
    yield eng, app
    _forget(eng)
    eng.db.dispose()


def test_a_process_owner_starts_from_todays_open_cases_by_keyboard_and_reads_what_was_carried_over(
        browser_world, monkeypatch):
    eng, app = browser_world
    gate = threading.Event()
    real = simulate.simulate
    monkeypatch.setattr(simulate, "simulate", lambda *a, **kw: (gate.wait(60), real(*a, **kw))[1])
    with live_server(app) as base, launch() as browser:
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            sign_in(page, base, OWNER, PASSWORD, then="/home")
            page.goto(f"{base}/processes")
            run_axe(page, "processes with the question where the simulation starts")
            # keyboard only: into the radios (the default chosen), the arrow key to today's open cases, then on
            page.locator("#sim-start").focus()
            assert page.evaluate("() => document.activeElement.checked") is True
            page.keyboard.press("ArrowDown")
            assert page.evaluate("() => document.activeElement.id") == "sim-start-today"
            assert page.locator("#sim-start-today").is_checked() and not page.locator("#sim-start").is_checked()
            page.keyboard.press("Tab")
            type_and_submit(page, {"sim-days": "1", "sim-seed": "1"}, "Simulate the live processes")
            page.wait_for_url(re.compile(r".*/processes/simulations/\d+$"))
            assert page.locator("h1").inner_text() == "The simulation is running"
            assert "today's open cases" in page.locator("#simulation-start").inner_text()
            run_axe(page, "simulation from today running")
        finally:
            gate.set()
        page.get_by_role("heading", name="Simulation of the live processes").wait_for(timeout=300_000)
        run_axe(page, "simulation from today report")
        assert page.locator("#simulation-start").inner_text().startswith("Today's open cases, copied and anonymised")
        assert page.get_by_role("heading", name="Carried over from today").count() == 1
        row = page.locator('#carried-over .govuk-summary-list__row[data-key="cases"]')
        assert row.locator("dt").inner_text() == "Open cases" and row.locator("dd").inner_text() == "6 cases"
        instances = page.locator('#carried-over [data-key="instances"] dd').inner_text()
        assert instances == "6 instances, of which 1 suspended and 1 in error"
        assert page.locator('#carried-over [data-key="messages"] dd').inner_text() == "1 message"
