"""One simulation of the live processes from the processes page (api/simulation_pages.py, the single run): who
may start and see it, bad input refused with a message, the background run with its waiting page, one run at a
time, and the report showing the figures of the same `simulate()` call made directly — and in a real browser, by
keyboard and axe-clean on each page.

The scenario is tests/fixtures/simulation_single.yaml (safeguarding concerns through the front door, one member of
staff, so the triage deadline is missed within days); runs of 3 days take about a second.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from api import simulation_pages
from api.auth import ROLES
from carepath import simulate
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import type_and_submit
from tests.front_door_world import PASSWORD, build, username
from tests.test_auditor_read_only import snapshot
from tests.test_simulate_compare import make_drafts
from tests.test_simulation_pages import KEPT, _forget, changed, client, text, wait_until_done

SCENARIO = Path(__file__).parent / "fixtures" / "simulation_single.yaml"
OWNER = "process-owner"
READERS = {"process_owner", "team_manager", "auditor"}  # who may read the processes page at all
FORM = 'action="/processes/simulations"'


@pytest.fixture(scope="module")
def world(module_db_url):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(simulation_pages.SCENARIO_ENV, str(SCENARIO))
        eng, app, _people = build(module_db_url)
        draft_id = make_drafts(eng)["same"]  # a draft comparison waits its turn behind a single run
        yield eng, app, draft_id
        _forget(eng)
        eng.db.dispose()


def singles(eng) -> list:
    return simulation_pages.for_draft(eng, None)


def test_only_process_owners_may_start_and_see_a_simulation_of_the_live_processes(world):
    eng, app, draft_id = world
    before = snapshot(eng)
    for role in [*ROLES, None]:
        c, csrf = client(app, username(role) if role else None)
        listing = c.get("/processes")
        if role is None:
            assert (listing.status_code, listing.headers["location"]) == (303, "/sign-in")
        else:
            assert listing.status_code == (200 if role in READERS else 403), role
            assert (FORM in listing.text) == (role == "process_owner"), role
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "1"})
        page = c.get("/processes/simulations/123456789")
        status = c.get("/processes/simulations/123456789/status")
        if role is None:
            for answer in (r, page, status):
                assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")
        elif role != "process_owner":
            for answer in (r, page, status):
                assert answer.status_code == 403, (role, answer.request.url)
            assert "Only process owners simulate the live processes" in r.text
        else:
            assert r.status_code == 303 and re.fullmatch(r"/processes/simulations/\d{9}", r.headers["location"])
            wait_until_done(c, r.headers["location"])
            assert page.status_code == 404 and "There is no simulation 123456789 of the live processes" in page.text
            assert (status.status_code, status.json()) == (404, {"status": "unknown"})
    assert len(singles(eng)) == 1  # only the owner's
    after = snapshot(eng)
    assert changed(before, after) == KEPT and len(after["simulation_runs"]) == 1  # nothing else changed
    _forget(eng)


@pytest.mark.parametrize("days,seed,message,href", [
    ("", "1", "Enter the number of days", "#sim-days"),
    ("0", "1", "The number of days must be between 1 and 365", "#sim-days"),
    ("366", "1", "The number of days must be between 1 and 365", "#sim-days"),
    ("two", "1", "The number of days must be a whole number, like 14", "#sim-days"),
    ("7", "", "Enter the seed", "#sim-seed"),
    ("7", "0", "The seed must be between 1 and 999,999", "#sim-seed"),
    ("7", "-3", "The seed must be between 1 and 999,999", "#sim-seed"),
    ("7", "1000000", "The seed must be between 1 and 999,999", "#sim-seed"),
    ("7", "\u00b2", "The seed must be a whole number, like 1", "#sim-seed"),
    ("\u2460", "1", "The number of days must be a whole number, like 14", "#sim-days"),
], ids=["no_days", "zero_days", "too_many_days", "words", "no_seed", "zero_seed", "negative_seed", "huge_seed",
        "superscript_seed", "circled_days"])
def test_bad_input_is_refused_with_a_message_and_starts_nothing(world, days, seed, message, href):
    eng, app, draft_id = world
    c, csrf = client(app, OWNER)
    r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": days, "seed": seed})
    assert r.status_code == 400
    assert 'class="govuk-error-summary"' in r.text
    assert f'<a href="{href}">{message}</a>' in r.text  # the error summary links to the field
    assert f'value="{days}"' in r.text and f'value="{seed}"' in r.text  # what was typed stays
    assert r.text.count('class="govuk-error-message"') == 1  # on the field, not on the upload form's
    assert singles(eng) == []


def test_a_missing_token_or_an_unknown_simulation_is_refused(world):
    eng, app, draft_id = world
    c, _csrf = client(app, OWNER)
    r = c.post("/processes/simulations", data={"days": "1", "seed": "1"})
    assert r.status_code == 403
    assert c.get("/processes/simulations/987654321").status_code == 404
    assert singles(eng) == []


def test_a_run_that_breaks_says_so_and_logs_what_and_where_but_not_its_words(world, monkeypatch, caplog):
    """An error nobody foresaw: the page says the run failed, and the log says what and where — the error's type and
    carepath's lines it passed through — but not its words, which may carry what it was working on."""
    eng, app, _draft_id = world

    def broken(*args, **kw):
        raise RuntimeError("Joan Barker, 12 Acacia Avenue")

    monkeypatch.setattr(simulate, "simulate", broken)
    c, csrf = client(app, OWNER)
    with caplog.at_level("ERROR", logger="carepath.simulation"):
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "7"})
        state = wait_until_done(c, r.headers["location"])
    assert state["status"] == "failed"
    assert "Something went wrong while the simulation ran; the error was logged" in state["error"]
    [logged] = [rec.getMessage() for rec in caplog.records if "a simulation failed" in rec.getMessage()]
    assert "builtins.RuntimeError" in logged and "in _single" in logged and "api/simulation_pages.py:" in logged
    assert "Joan" not in caplog.text and "Acacia" not in caplog.text
    _forget(eng)


def test_a_run_in_the_background_reports_the_figures_of_the_same_simulation(world, monkeypatch):
    eng, app, draft_id = world
    gate = threading.Event()
    real = simulate.simulate

    def gated(*args, **kw):  # held until the waiting page has been read
        gate.wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(simulate, "simulate", gated)
    before = snapshot(eng)
    c, csrf = client(app, OWNER)
    try:
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "3", "seed": "2"})
        assert r.status_code == 303
        link = r.headers["location"]
        waiting = c.get(link)
        assert waiting.status_code == 200
        assert '<h1 class="govuk-heading-l">The simulation is running</h1>' in waiting.text
        assert "run over 3 days of synthetic contacts with seed 2." in text(waiting.text)
        assert "0 of 1 run finished." in waiting.text and f'href="{link}"' in waiting.text
        assert c.get(f"{link}/status").json() == {"status": "running", "done": 0, "total": 1}
        # the same run asked for again opens the one running; another waits its turn
        again = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "3", "seed": "2"})
        assert again.headers["location"] == link
        other = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "3", "seed": "5"})
        assert other.status_code == 409 and "Another simulation is running (the live processes" in other.text
        assert 'class="govuk-error-summary"' in other.text
        compare = c.post(f"/processes/drafts/{draft_id}/simulations",
                         data={"csrf_token": csrf, "days": "1", "seeds": "2"})
        assert compare.status_code == 409 and "Another simulation is running (the live processes" in compare.text
    finally:
        gate.set()
    assert wait_until_done(c, link) == {"status": "ready", "done": 1, "total": 1}
    report = c.get(link)
    assert report.status_code == 200
    direct = real(simulate.load_scenario(SCENARIO), source=eng, days=3, seed=2)
    missed = direct["deadline_breaches"]["safeguarding/triage_overdue"]["times"]
    assert missed > 0  # the scenario is busy enough to miss the deadline: the row below says how often
    row = re.search(r'<tr class="govuk-table__row" data-key="safeguarding/triage_overdue">(.*?)</tr>',
                    report.text, re.S).group(1)
    assert text(row).split()[-1] == str(missed) and "Safeguarding triage deadline missed" in row
    assert f'<dd class="govuk-summary-list__value" id="contacts">{direct["contacts"]}</dd>' in report.text
    team = direct["teams"]["safeguarding"]
    teams_row = re.search(r'<th scope="row" class="govuk-table__header">Safeguarding</th>(.*?)</tr>',
                          report.text.split('id="teams-table"')[1], re.S).group(1)
    p95 = simulation_pages._num(team["wait_hours_p95"])
    assert text(teams_row).split() == [str(team["staff"]), str(team["arrived"]), str(team["done"]),
                                      str(team["waiting_at_end"]), simulation_pages._num(team["wait_hours_p50"]), p95]
    for section in ("routes-table", "breaches-table", "teams-table", "queue-safeguarding", "budgets-table",
                    "measures-table"):
        assert f'id="{section}"' in report.text, section
    assert report.text.count('<svg role="img" aria-label="Bar chart:') >= 4
    assert 'aria-label="Bar chart: deadlines missed, by timer.' in report.text
    listing = c.get("/processes").text
    assert f'href="{link}"' in listing and "3 days, seed 2" in text(listing)
    after = snapshot(eng)
    assert changed(before, after) == KEPT and len(after["simulation_runs"]) == 1  # nothing live changed
    _forget(eng)


def test_a_run_made_once_is_reused_by_the_next_run_and_the_next_comparison_and_they_say_so(world, monkeypatch):
    """A run of the live processes is kept (carepath/simulate_reuse.py): the same run asked again after its page
    was deleted, and a draft's comparison whose live run of seed 1 it is, take it instead of making it, show the
    figures a new run would, and say so on the page."""
    eng, app, draft_id = world
    made: list[int] = []
    real = simulate.simulate

    def counted(*args, **kw):
        made.append(kw["seed"])
        return real(*args, **kw)

    monkeypatch.setattr(simulate, "simulate", counted)
    monkeypatch.setattr(simulation_pages.simulate_compare, "workers_default", lambda: 1)  # runs made here: counted
    monkeypatch.setattr(simulation_pages.simulate_compare, "simulate", counted)
    c, csrf = client(app, OWNER)
    r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "2", "seed": "1"})
    wait_until_done(c, r.headers["location"])
    first = c.get(r.headers["location"]).text
    assert 'id="simulation-reused"' not in first and made == [1]
    with eng.db.transaction() as conn:  # the first run's page deleted (its kept output stays)
        conn.execute(simulation_pages.simulation_runs.delete())
    r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "2", "seed": "1"})
    wait_until_done(c, r.headers["location"])
    again = c.get(r.headers["location"]).text
    assert made == [1] and "Run reused Made by an earlier simulation of the same diagrams" in text(again)
    figures = re.search(r'<h2 class="govuk-heading-m" id="routes">(.*)', first, re.S).group(1)
    assert re.search(r'<h2 class="govuk-heading-m" id="routes">(.*)', again, re.S).group(1) == figures

    r = c.post(f"/processes/drafts/{draft_id}/simulations", data={"csrf_token": csrf, "days": "2", "seeds": "2"})
    assert wait_until_done(c, r.headers["location"]) == {"status": "ready", "done": 4, "total": 4,
                                                           "first_results": False}
    report = text(c.get(r.headers["location"]).text)
    assert made == [1, 1, 2, 2]  # the draft's seed 1, both of seed 2: the live run of seed 1 was kept
    assert ("Runs reused The live version's run with seed 1: made by an earlier simulation of the same diagrams, "
            "scenario, period and seed, or in the background ahead of being asked, and taken as they were") in report
    _forget(eng)


# ---------------------------------------------------------------------- in a real browser (one database)
@pytest.fixture
def browser_world(tmp_path, monkeypatch):
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SCENARIO))
    eng, app, _people = build(f"sqlite:///{tmp_path / 'carepath.db'}")
    yield eng, app
    _forget(eng)
    eng.db.dispose()


def test_a_process_owner_simulates_the_live_processes_by_keyboard_and_reads_the_report(browser_world, monkeypatch):
    eng, app = browser_world
    gate = threading.Event()
    real = simulate.simulate
    monkeypatch.setattr(simulate, "simulate", lambda *a, **kw: (gate.wait(60), real(*a, **kw))[1])
    with live_server(app) as base, launch() as browser:
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            sign_in(page, base, OWNER, PASSWORD, then="/home")
            page.goto(f"{base}/processes")
            run_axe(page, "processes with the simulation form")
            # keyboard only: a seed that is not a number first, then one that will do
            page.locator("#sim-days").focus()
            type_and_submit(page, {"sim-days": "3", "sim-seed": "two"}, "Simulate the live processes")
            page.locator(".govuk-error-summary").wait_for()
            assert "The seed must be a whole number, like 1" in page.locator(".govuk-error-summary").inner_text()
            run_axe(page, "processes with a simulation error")
            page.locator("#sim-seed").focus()
            type_and_submit(page, {"sim-seed": "2"}, "Simulate the live processes")
            page.wait_for_url(re.compile(r".*/processes/simulations/\d+$"))
            assert page.locator("h1").inner_text() == "The simulation is running"
            run_axe(page, "simulation running")
        finally:
            gate.set()
        # the page's script checks back and opens the report when it is ready
        page.get_by_role("heading", name="Simulation of the live processes").wait_for(timeout=300_000)
        run_axe(page, "simulation report")
        direct = real(simulate.load_scenario(SCENARIO), source=eng, days=3, seed=2)
        missed = direct["deadline_breaches"]["safeguarding/triage_overdue"]["times"]
        row = page.locator('#breaches-table tr[data-key="safeguarding/triage_overdue"]')
        assert row.locator("td").last.inner_text() == str(missed)
        chart = page.get_by_role("img", name=re.compile("Bar chart: deadlines missed, by timer"))
        assert chart.count() == 1
        # its page deleted, the same run asked again: taken as kept, and the report says so
        with eng.db.transaction() as conn:
            conn.execute(simulation_pages.simulation_runs.delete())
        page.goto(f"{base}/processes")
        page.locator("#sim-days").focus()
        type_and_submit(page, {"sim-days": "3", "sim-seed": "2"}, "Simulate the live processes")
        page.get_by_role("heading", name="Simulation of the live processes").wait_for(timeout=300_000)
        assert page.locator("#simulation-reused").inner_text().startswith("Made by an earlier simulation")
        assert row.locator("td").last.inner_text() == str(missed)
        run_axe(page, "simulation report with the run reused")


def test_the_waiting_page_says_so_when_its_reader_is_signed_out_or_someone_else_signs_in(browser_world, monkeypatch):
    """The waiting page's script asks for the status every few seconds: signed out meanwhile (the status answers
    with the sign-in page) or signed in as someone who may not see it (403), its status line says why it stopped
    asking and offers the page again, instead of "undefined of undefined runs" or a count that never moves."""
    from playwright.sync_api import expect

    eng, app = browser_world
    gate = threading.Event()
    real = simulate.simulate
    monkeypatch.setattr(simulate, "simulate", lambda *a, **kw: (gate.wait(60), real(*a, **kw))[1])
    with live_server(app) as base, launch() as browser:
        try:
            context = browser.new_context(bypass_csp=True)  # for axe's script; the page's own is a file
            page = context.new_page()
            sign_in(page, base, OWNER, PASSWORD, then="/home")
            page.goto(f"{base}/processes")
            page.locator("#sim-days").focus()
            type_and_submit(page, {"sim-days": "1", "sim-seed": "5"}, "Simulate the live processes")
            page.wait_for_url(re.compile(r".*/processes/simulations/\d+$"))
            path = page.url.split(base, 1)[1]
            status = page.locator("#simulation-status")
            expect(status).to_contain_text("0 of 1 run finished", timeout=30_000)
            context.clear_cookies()  # signed out (the session's cookie gone, as after signing out in another tab)
            expect(status).to_have_text("Your session has ended, so this page cannot check the simulation: sign in "
                                        "again to see it. Reload this page", timeout=30_000)
            assert page.locator("#reload-page").get_attribute("href") == path
            # signed in again, the page read; then someone who may not see it signs in in another tab
            sign_in(page, base, OWNER, PASSWORD, then="/home")
            page.goto(f"{base}{path}")
            expect(status).to_contain_text("0 of 1 run finished", timeout=30_000)
            elsewhere = browser.new_context()  # the auditor signs in; their cookie replaces the owner's in this browser
            sign_in(elsewhere.new_page(), base, username("auditor"), PASSWORD, then="/home")
            context.add_cookies(elsewhere.cookies())  # the same cookie's name: replaced at once, never absent
            expect(status).to_contain_text("You cannot see this simulation any more", timeout=30_000)
            assert "undefined" not in status.inner_text()
            run_axe(page, "simulation running, its reader no longer allowed")
        finally:
            gate.set()
