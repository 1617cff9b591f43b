"""Simulating a draft against the live version from its review page (api/simulation_pages.py): who may start
and see a simulation, bad input refused with a message, the background run with its waiting page and the
report with the difference tagged, a draft the scenario does not fit — and in a real browser, by keyboard and
axe-clean on each page.

The scenario is tests/fixtures/simulation_compare.yaml (safeguarding concerns through the front door); the
draft makes the safeguarding triage deadline an hour after the concern's task appears instead of the end of
the next working day (tests/test_simulate_compare.py). Runs of 1 day and 2 seeds keep each simulation short.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from api import simulation_pages
from api.auth import ROLES
from carepath import simulate_compare
from carepath.simulate_ahead import Ahead
from engine import drafts
from engine.schema import simulation_outputs, simulation_runs
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import type_and_submit
from tests.front_door_world import PASSWORD, build, username
from tests.test_auditor_read_only import snapshot
from tests.test_simulate_compare import AN_HOUR, DEADLINE_OF_DAY, SCENARIO, live_files, make_drafts

OWNER = "process-owner"
READERS = {"process_owner", "team_manager", "auditor"}  # who may read the review page at all
NOT_COMPARED = {"sessions", "case_access_log"}
# the tables a simulation writes: its own row (what was asked, the result) and, from an empty caseload, the outputs
# of the runs it made, kept for reuse (carepath/simulate_reuse.py)
KEPT = ["simulation_outputs", "simulation_runs"]
KEPT_FROM_TODAY = ["simulation_runs"]  # a run from today's cases is never kept for reuse


def _forget(eng) -> None:
    """Delete every simulation and run kept in the database (the next test starts with none)."""
    with eng.db.transaction() as conn:
        conn.execute(delete(simulation_runs))
        conn.execute(delete(simulation_outputs))


def changed(before: dict, after: dict) -> list[str]:
    """The tables whose rows differ between two snapshots (but the access log and sessions), by name."""
    return sorted(t for t in before if t not in NOT_COMPARED and before[t] != after[t])


def _world(url: str):
    eng, app, _people = build(url)
    ids = make_drafts(eng)
    files = {k: v.decode() for k, v in live_files(eng, "safeguarding").items()}
    renamed = {**files, "safeguarding.bpmn": files["safeguarding.bpmn"].replace("triage_overdue", "triage_late")}
    ids["unfit"] = drafts.create_draft(eng, process_id="safeguarding", files=renamed, base_version=None,
                                       actor=OWNER)["id"]
    return eng, app, ids


@pytest.fixture(scope="module")
def world(module_db_url):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(simulation_pages.SCENARIO_ENV, str(SCENARIO))
        eng, app, ids = _world(module_db_url)
        yield eng, app, ids
        _forget(eng)
        eng.db.dispose()


def client(app, user: str | None) -> tuple[TestClient, str]:
    c = TestClient(app, follow_redirects=False)
    if user is None:
        return c, ""
    r = c.post("/api/session", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def wait_until_done(c: TestClient, link: str) -> dict:
    """The status once the background run has finished (it takes a few seconds; 300 s before giving up); a failed
    one's with "error", what its page says of why."""
    deadline = time.monotonic() + 300
    while True:
        state = c.get(f"{link}/status").json()
        if state["status"] == "failed":  # why, as its page says it, for a test's message when it expected another
            page = text(c.get(link).text)
            state["error"] = page[page.rfind("could not be run"):][:400]
        if state["status"] != "running":
            return state
        assert time.monotonic() < deadline, f"the simulation did not finish: {state}"
        time.sleep(0.25)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


def test_only_process_owners_may_start_and_see_a_simulation(world):
    eng, app, ids = world
    did = ids["changed"]
    before = snapshot(eng)
    for role in [*ROLES, None]:
        c, csrf = client(app, username(role) if role else None)
        review = c.get(f"/processes/drafts/{did}/review")
        if role is None:
            assert (review.status_code, review.headers["location"]) == (303, "/sign-in")
        else:
            assert review.status_code == (200 if role in READERS else 403), role
            shown = f'action="/processes/drafts/{did}/simulations"' in review.text
            assert shown == (role == "process_owner"), role
        r = c.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "2"})
        page = c.get(f"/processes/drafts/{did}/simulations/123456789")
        status = c.get(f"/processes/drafts/{did}/simulations/123456789/status")
        if role is None:
            for answer in (r, page, status):
                assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")
        elif role != "process_owner":
            for answer in (r, page, status):
                assert answer.status_code == 403, (role, answer.request.url)
            assert "Only process owners simulate drafts" in r.text
        else:
            assert r.status_code == 303  # started: the next test follows one through
            wait_until_done(c, r.headers["location"])
            assert page.status_code == 404 and "There is no simulation 123456789 of draft" in page.text
            assert (status.status_code, status.json()) == (404, {"status": "unknown"})
    assert len(simulation_pages.for_draft(eng, did)) == 1  # only the owner's
    after = snapshot(eng)
    assert changed(before, after) == KEPT and len(after["simulation_runs"]) == 1  # nothing else changed
    _forget(eng)


@pytest.mark.parametrize("week,days,label", [(1, 1, "Week 1 (to day 1)"), (1, 7, "Week 1"), (2, 8, "Week 2 (to day 8)"),
                                             (2, 14, "Week 2"), (3, None, "Week 3")])
def test_a_week_the_period_ends_in_says_so(week, days, label):
    assert simulation_pages.week_label(week, days) == label


def test_a_charts_labels_cut_to_fit_still_tell_the_rows_apart():
    """A chart's labels are cut to LABEL_CHARS; cut at the end, the measures chart once showed two bars "ASCOF
    3D(1a): self-directed support, …" (18 to 64, 65 and over) and the deadlines chart two "Advocate not arranged in
    time (advoca…" — which was which only the table said. The words where the labels differ are kept."""
    rows = [("ASCOF 3D(1a): self-directed support, aged 18 to 64", 40.0, 45.0),
            ("ASCOF 3D(1a): self-directed support, aged 65 and over", 60.0, 61.0),
            ("Advocate not arranged in time (advocacy/advocate_overdue)", 3, 1),
            ("Advocate not arranged in time (advocacy/safeguarding_advocate_overdue)", 2, 2),
            ("Safeguarding triage SLA missed (safeguarding/triage_overdue)", 9, 0),
            ("Short", 1, 1)]
    shown = [r["label"] for r in simulation_pages.chart("figures", rows)["rows"]]
    assert len(set(shown)) == len(rows) and all(len(label) <= simulation_pages.LABEL_CHARS for label in shown)
    assert shown[0].endswith("18 to 64") and shown[1].endswith("65 and over")
    assert shown[2].endswith(" advocate_overdue)") and shown[3].endswith("safeguarding_advocate_overdue)")
    assert shown[4] == "Safeguarding triage SLA missed (safeg…" and shown[5] == "Short"  # no other: cut at the end


def test_a_single_runs_deadline_chart_names_each_timer_when_their_words_are_the_same():
    """Without `deadlines:` three of urgent_response's timers are all "Overdue": the chart once had three bars
    labelled "Overdue"."""
    out = {"deadline_breaches": {f"urgent_response/{t}": {"deadline": "Overdue", "times": n}
                                 for t, n in (("assessment_late", 2), ("decide_late", 5), ("visit_late", 1))}}
    shown = [r["label"] for r in simulation_pages.single_report(out)["breach_chart"]["rows"]]
    assert len(set(shown)) == 3 and shown[1] == "Overdue (urgent_response/decide_late)"


@pytest.mark.parametrize("days,seeds,status,message,href", [
    ("", "3", 400, "Enter the number of days", "#sim-days"),
    ("0", "3", 400, "The number of days must be between 1 and 365", "#sim-days"),
    ("366", "3", 400, "The number of days must be between 1 and 365", "#sim-days"),
    ("two", "3", 400, "The number of days must be a whole number, like 14", "#sim-days"),
    ("7", "1", 400, "The number of seeds must be between 2 and 10", "#sim-seeds"),
    ("7", "-3", 400, "The number of seeds must be between 2 and 10", "#sim-seeds"),
    ("-1", "3", 400, "The number of days must be between 1 and 365", "#sim-days"),
    ("10000000000000000000000", "3", 400, "The number of days must be between 1 and 365", "#sim-days"),
    ("\u00b2", "3", 400, "The number of days must be a whole number, like 14", "#sim-days"),
    ("1\u00b2", "3", 400, "The number of days must be a whole number, like 14", "#sim-days"),
    ("\u2460", "3", 400, "The number of days must be a whole number, like 14", "#sim-days"),
    ("\u0663", "3", 400, "The number of days must be a whole number, like 14", "#sim-days"),
    ("7", "\u00b3", 400, "The number of seeds must be a whole number, like 3", "#sim-seeds"),
    ("1.5", "3", 400, "The number of days must be a whole number, like 14", "#sim-days"),
], ids=["no_days", "zero_days", "too_many_days", "words", "one_seed", "negative_seeds", "negative_days",
        "huge_days", "superscript_two", "one_superscript_two", "circled_one", "arabic_indic_three",
        "superscript_seeds", "fraction"])
def test_bad_input_is_refused_with_a_message_and_starts_nothing(world, days, seeds, status, message, href):
    eng, app, ids = world
    c, csrf = client(app, OWNER)
    r = c.post(f"/processes/drafts/{ids['changed']}/simulations",
               data={"csrf_token": csrf, "days": days, "seeds": seeds})
    assert r.status_code == status
    assert f'<a href="{href}">{message}</a>' in r.text  # the error summary links to the field
    assert f'value="{days}"' in r.text and f'value="{seeds}"' in r.text  # what was typed stays
    assert r.text.count('class="govuk-error-message"') == 1
    assert simulation_pages.for_draft(eng, ids["changed"]) == []


def test_a_withdrawn_draft_offers_no_simulation_and_refuses_one_posted(world):
    eng, app, _ids = world
    files = {k: v.decode() for k, v in live_files(eng, "safeguarding").items()}
    did = drafts.create_draft(eng, process_id="safeguarding", files=files, base_version=None, actor=OWNER)["id"]
    c, csrf = client(app, OWNER)
    assert f'action="/processes/drafts/{did}/simulations"' in c.get(f"/processes/drafts/{did}/review").text
    drafts.withdraw_draft(eng, did, actor=OWNER, reason="not needed")
    review = c.get(f"/processes/drafts/{did}/review").text
    assert f'action="/processes/drafts/{did}/simulations"' not in review
    assert "This draft is withdrawn: it can no longer be simulated." in text(review)
    r = c.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "2"})
    assert r.status_code == 409 and "This draft is withdrawn: it can no longer be simulated" in r.text
    assert simulation_pages.for_draft(eng, did) == []

def test_an_unknown_draft_or_a_missing_token_is_refused(world):
    eng, app, ids = world
    c, csrf = client(app, OWNER)
    r = c.post("/processes/drafts/987654/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "2"})
    assert r.status_code == 404 and "There is no draft 987654." in r.text
    r = c.post(f"/processes/drafts/{ids['changed']}/simulations", data={"days": "1", "seeds": "2"})
    assert r.status_code == 403 and "The form was missing its security token" in r.text
    # the address a refused form was shown at, reloaded: the form again, not "cannot be used that way"
    again_get = c.get(f"/processes/drafts/{ids['changed']}/simulations")
    assert (again_get.status_code, again_get.headers["location"]) == (
        303, f"/processes/drafts/{ids['changed']}/review#simulate")
    assert c.get("/processes/simulations").headers["location"] == "/processes#simulate"
    # a form loaded in an earlier session (signed in again since): said as an expired form, not as no permission
    again, _csrf_now = client(app, OWNER)
    r = again.post(f"/processes/drafts/{ids['changed']}/simulations", data={"csrf_token": csrf, "days": "1",
                                                                             "seeds": "2"})
    assert r.status_code == 403 and "This form has expired" in r.text and "permission" not in r.text
    assert "Go back, reload the page and send the form again." in r.text
    assert c.get("/processes/drafts/987654/simulations/123456789").status_code == 404
    assert simulation_pages.for_draft(eng, ids["changed"]) == []


def test_a_simulation_runs_in_the_background_and_its_report_tags_the_difference(world, monkeypatch):
    eng, app, ids = world
    did = ids["changed"]
    gate = threading.Event()
    real = simulate_compare.compare

    def gated(*args, **kw):  # held until the waiting page has been read
        gate.wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(simulate_compare, "compare", gated)
    before = snapshot(eng)
    c, csrf = client(app, OWNER)
    try:
        r = c.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "3"})
        assert r.status_code == 303
        link = r.headers["location"]
        assert re.fullmatch(rf"/processes/drafts/{did}/simulations/\d{{9}}", link)
        waiting = c.get(link)
        assert waiting.status_code == 200
        assert '<h1 class="govuk-heading-l">The simulation is running</h1>' in waiting.text
        assert "0 of 6 runs finished." in waiting.text and f'href="{link}"' in waiting.text
        assert c.get(f"{link}/status").json() == {"status": "running", "done": 0, "total": 6, "first_results": False}
        # the same simulation asked for again opens the one running; another one waits its turn
        again = c.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "3"})
        assert again.headers["location"] == link
        other = c.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf, "days": "2", "seeds": "2"})
        assert other.status_code == 409 and "Another simulation is running" in other.text
        assert f'<a href="{link}">Another simulation is running' in other.text  # the summary links to it
    finally:
        gate.set()
    assert wait_until_done(c, link) == {"status": "ready", "done": 6, "total": 6, "first_results": False}
    report = c.get(link)
    assert report.status_code == 200
    words = text(report.text)
    marked = words.split("Differences bigger than chance", 1)[1].split("How a difference is marked")[0]
    assert "Safeguarding triage deadline missed (safeguarding/triage_overdue):" in marked
    row = re.search(r'<tr class="govuk-table__row" data-key="breaches/safeguarding/triage_overdue">(.*?)</tr>',
                    report.text, re.S).group(1)
    assert "Bigger than chance" in row
    for section in ("breaches-table", "teams-table", "budgets-table", "measures-table", "queue-safeguarding"):
        assert f'id="{section}"' in report.text, section
    assert "Period 1 day from 1 April 2026" in words  # the scenario's start, written as the pages write a date
    assert "Week 1 (to day 1)" in words  # a week the period ends in is not a week that ended
    # teams by the names the inbox gives them, not their ids
    assert "Safeguarding: tasks done" in words and "safeguarding: tasks done" not in words
    # the staff the queues are read against (the scenario's `default` of 3): once nowhere on the page
    queues = words.split("Teams' queues and waits", 1)[1].split("Personal budgets")[0]
    assert "Safeguarding 3 members of staff in the scenario, the same in both versions." in queues
    assert 'role="img" aria-label="Bar chart: deadlines missed, live version and draft side by side.' in report.text
    review = c.get(f"/processes/drafts/{did}/review").text
    assert f'href="{link}"' in review and "finished" in text(review)
    after = snapshot(eng)
    assert changed(before, after) == KEPT and len(after["simulation_runs"]) == 1  # nothing live changed
    _forget(eng)



def test_a_comparison_asked_again_after_a_deployment_or_a_scenario_edit_is_run_again(db_url, tmp_path, monkeypatch):
    """What a comparison ran against is part of what was asked: after a new live version of the draft's process (or
    of any process) is deployed, or the scenario file is edited where it is, the same form runs it again instead of
    opening the kept result; the kept report names the live version it compared with and says a newer one is live."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(scenario))
    eng, app, ids = _world(db_url)
    try:
        did = ids["changed"]
        c, csrf = client(app, OWNER)
        form = {"csrf_token": csrf, "days": "1", "seeds": "2"}

        def ask() -> str:
            r = c.post(f"/processes/drafts/{did}/simulations", data=form)
            assert r.status_code == 303, r.text[:300]
            assert wait_until_done(c, r.headers["location"])["status"] == "ready"
            return r.headers["location"]

        first = ask()
        assert ask() == first  # the same question: the kept result
        version = dict(simulation_pages.live_versions(eng))["safeguarding"]
        report = text(c.get(first).text)
        assert f"Live version compared Version {version} Draft revision" in report
        assert "has been deployed since" not in report
        # the draft's change goes live by another route: a new live version of the draft's process
        files = live_files(eng, "safeguarding")
        for name, body in files.items():
            (tmp_path / name).write_bytes(body.replace(DEADLINE_OF_DAY, AN_HOUR) if name.endswith(".bpmn") else body)
        eng.deploy([tmp_path / name for name in files], actor="process-owner-2")
        assert dict(simulation_pages.live_versions(eng))["safeguarding"] == version + 1
        assert (f"Live version compared Version {version} (version {version + 1} has been deployed since: simulate it "
                "again") in text(c.get(first).text)
        second = ask()
        assert second != first
        assert f"Live version compared Version {version + 1} Draft revision" in text(c.get(second).text)
        assert ask() == second
        # the scenario edited where it is (its path unchanged): another question
        scenario.write_text(scenario.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
        assert ask() == second  # a comment changes no value: the same scenario
        data = scenario.read_text(encoding="utf-8")
        assert "staff: 3," in data
        scenario.write_text(data.replace("staff: 3,", "staff: 2,", 1), encoding="utf-8")  # a team a member short
        third = ask()
        assert third not in (first, second)
    finally:
        _forget(eng)
        eng.db.dispose()


def held_at_first_results(monkeypatch) -> threading.Event:
    """The comparison held just after its first results are written, until the returned event is set."""
    gate = threading.Event()
    real = simulate_compare.compare

    def held(*args, **kw):
        given = kw["first"]

        def first(out):
            given(out)
            gate.wait(60)

        return real(*args, **{**kw, "first": first})

    monkeypatch.setattr(simulate_compare, "compare", held)
    return gate


def test_the_first_results_can_be_read_while_the_other_runs_go_on(world, monkeypatch):
    eng, app, ids = world
    did = ids["changed"]
    gate = held_at_first_results(monkeypatch)
    c, csrf = client(app, OWNER)
    r = c.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "2"})
    link = r.headers["location"]
    try:
        deadline = time.monotonic() + 300
        while not (state := c.get(f"{link}/status").json())["first_results"]:
            assert state["status"] == "running" and time.monotonic() < deadline, state
            time.sleep(0.25)
        # one seed's two runs are done (on two workers, whichever seed's pair finished first), and perhaps one of
        # the other seed's, never both
        done = state["done"]
        assert state == {"status": "running", "done": done, "total": 4, "first_results": True} and done in (2, 3)
        page = c.get(link)
        assert page.status_code == 200
        words = text(page.text)
        assert '<h1 class="govuk-heading-l">First results: the draft against the live version</h1>' in page.text
        seed = int(re.search(r"First results: the runs of seed (\d) have finished", words).group(1))
        assert f"The runs of seed {3 - seed} are still going. No difference is marked yet" in words
        assert f"{done} of 4 runs finished." in words and 'data-first="1"' in page.text
        assert f"Seeds {seed} (each version run once with each); 1, 2 asked for" in words
        marked = words.split("Differences bigger than chance", 1)[1].split("How a difference")[0]
        assert "Not known yet: telling a difference from chance needs at least two seeds." in marked
        # that seed's own figures: the draft's tighter deadline already shows, without a spread
        row = re.search(r'<tr class="govuk-table__row" data-key="breaches/safeguarding/triage_overdue">(.*?)</tr>',
                        page.text, re.S).group(1)
        assert "Not known" in row and "Bigger than chance" not in row
        live, draft = (float(v.replace(",", "")) for v in re.findall(r'numeric">([\d,.]+)<', row)[:2])
        assert draft > live
        review = text(c.get(f"/processes/drafts/{did}/review").text)
        assert "running" in review
        # the runs still going say how far they have come (a 1-day run has no week's end: written here as a
        # year's run would): the first results' status line says it too
        with eng.db.transaction() as conn:
            conn.execute(simulation_runs.update().values(progress='{"live:%d": 7}' % (3 - seed)))
        status = text(c.get(link).text.split('id="simulation-status"', 1)[1].split("</p>", 1)[0])
        assert (f"{done} of 4 runs finished. Of the runs being made, the live version's run with seed {3 - seed} "
                "has simulated 7 of 1 day.") not in status  # never past the period's end
        assert (f"{done} of 4 runs finished. Of the runs being made, the live version's run with seed {3 - seed} "
                "has simulated 1 of 1 day.") in status
    finally:
        gate.set()
        state = wait_until_done(c, link)  # nothing left running for the next test, whatever failed above
    assert state == {"status": "ready", "done": 4, "total": 4, "first_results": False}
    final = c.get(link).text
    assert "Simulation: the draft against the live version</h1>" in final and 'id="first-results"' not in final
    row = re.search(r'<tr class="govuk-table__row" data-key="breaches/safeguarding/triage_overdue">(.*?)</tr>',
                    final, re.S).group(1)
    assert "Not known" not in row  # both seeds in: the margin and spread are known
    _forget(eng)


def test_a_draft_the_scenario_does_not_fit_says_why_it_could_not_be_run(world):
    eng, app, ids = world
    c, csrf = client(app, OWNER)
    r = c.post(f"/processes/drafts/{ids['unfit']}/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "2"})
    link = r.headers["location"]
    assert wait_until_done(c, link)["status"] == "failed"
    page = c.get(link)
    assert page.status_code == 200 and "The simulation could not be run" in page.text
    assert "no deployed diagram has a timer &#39;safeguarding/triage_overdue&#39;" in page.text
    _forget(eng)


# ---------------------------------------------------------------------- in a real browser (one database)
@pytest.fixture
def browser_world(tmp_path, monkeypatch):
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SCENARIO))
    eng, app, ids = _world(f"sqlite:///{tmp_path / 'carepath.db'}")
    yield eng, app, ids
    _forget(eng)
    eng.db.dispose()


def open_full_report(page) -> None:
    """Wait for the report the running page's script opens: the full one, or the first results, whose status line
    gains a link to the full report when the last run has finished (followed by keyboard)."""
    final = page.get_by_role("heading", name="Simulation: the draft against the live version")
    link = page.locator("#full-report")
    final.or_(link).wait_for(timeout=300_000)
    if not final.is_visible():
        link.focus()
        page.keyboard.press("Enter")
        final.wait_for()


def test_a_process_owner_simulates_a_draft_by_keyboard_and_reads_the_tagged_difference(browser_world, monkeypatch):
    eng, app, ids = browser_world
    did = ids["changed"]
    gate = threading.Event()
    real = simulate_compare.compare
    monkeypatch.setattr(simulate_compare, "compare", lambda *a, **kw: (gate.wait(60), real(*a, **kw))[1])
    with live_server(app) as base, launch() as browser:
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            sign_in(page, base, OWNER, PASSWORD, then="/home")
            # the server makes the live runs and the open drafts' of 1 day with seeds 1 and 2 ahead
            # (carepath/simulate_ahead.py; its thread is not started here: the simulation below makes them)
            app.state.simulations_ahead = Ahead(eng, SCENARIO, [(1, 2)])
            page.goto(f"{base}/processes/drafts/{did}/review")
            run_axe(page, "review with the simulation form")
            assert "took about" in page.locator("#sim-time").inner_text()
            assert page.locator("#sim-ahead").inner_text().endswith(
                "The live version's: 1 day with seeds 1 and 2 (none ready yet). This draft's: 1 day with seeds 1 and "
                "2 (none ready yet).")

            # keyboard only: a period out of range first, then one that will do
            page.locator("#sim-days").focus()
            type_and_submit(page, {"sim-days": "0", "sim-seeds": None}, "Simulate this change")
            page.locator(".govuk-error-summary").wait_for()
            assert "The number of days must be between 1 and 365" in page.locator(".govuk-error-summary").inner_text()
            run_axe(page, "review with a simulation error")
            page.locator("#sim-days").focus()
            type_and_submit(page, {"sim-days": "1", "sim-seeds": "3"}, "Simulate this change")
            page.wait_for_url(re.compile(rf".*/processes/drafts/{did}/simulations/\d+$"))
            assert page.locator("h1").inner_text() == "The simulation is running"
            run_axe(page, "simulation running")
        finally:
            gate.set()
        # the page's script checks back and opens the report when it is ready
        open_full_report(page)
        run_axe(page, "simulation report")
        marked = page.locator("#marked-list").inner_text()
        assert "Safeguarding triage deadline missed (safeguarding/triage_overdue)" in marked
        row = page.locator('tr[data-key="breaches/safeguarding/triage_overdue"]')
        assert "Bigger than chance" in row.inner_text()
        chart = page.get_by_role("img", name=re.compile("Bar chart: deadlines missed"))
        assert chart.count() == 1
        # another draft of the process, the same period and seeds: the live version's runs are taken as kept
        page.goto(f"{base}/processes/drafts/{ids['same']}/review")
        assert page.locator("#sim-ahead").inner_text().endswith(
            "The live version's: 1 day with seeds 1 and 2 (all ready). This draft's: 1 day with seeds 1 and 2 (none "
            "ready yet).")
        page.locator("#sim-days").focus()
        type_and_submit(page, {"sim-days": "1", "sim-seeds": "3"}, "Simulate this change")
        open_full_report(page)
        assert page.locator("#simulation-reused").inner_text().startswith(
            "The live version's runs with seeds 1, 2 and 3: made by an earlier simulation")
        run_axe(page, "simulation report with runs reused")


def test_a_process_owner_reads_the_first_results_and_opens_the_full_report_by_keyboard(browser_world, monkeypatch):
    eng, app, ids = browser_world
    did = ids["changed"]
    gate = held_at_first_results(monkeypatch)
    with live_server(app) as base, launch() as browser:
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            sign_in(page, base, OWNER, PASSWORD, then="/home")
            page.goto(f"{base}/processes/drafts/{did}/review")
            page.locator("#sim-days").focus()
            type_and_submit(page, {"sim-days": "1", "sim-seeds": "2"}, "Simulate this change")
            # the running page's script opens the first results once a seed's two runs have finished
            page.get_by_role("heading", name="First results: the draft against the live version").wait_for(
                timeout=300_000)
            banner = page.get_by_role("region", name="Important")
            assert re.search(r"First results: the runs of seed [12] have finished", banner.inner_text())
            assert page.locator("#marked-list").inner_text() == (
                "Not known yet: telling a difference from chance needs at least two seeds.")
            run_axe(page, "simulation first results")
        finally:
            gate.set()
        # the page is not replaced under its reader: its status line offers the full report when it is ready
        link = page.locator("#full-report")
        link.wait_for(timeout=300_000)
        assert page.locator("#simulation-status").inner_text() == "The simulation has finished. Open the full report"
        run_axe(page, "simulation first results, finished")
        link.focus()
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Simulation: the draft against the live version").wait_for()
        assert "Not known" not in page.locator(  # both seeds in: the margin and spread are known
            'tr[data-key="breaches/safeguarding/triage_overdue"]').inner_text()


def test_a_draft_page_says_the_other_open_drafts_are_the_readers_own_when_they_are(world):
    """Every open draft of the process in this world is the process owner's: the warning says so ("by you"), not
    "someone else is changing this process" about their own drafts (another owner's drafts still read as someone
    else's: tests/test_pages_processes.py)."""
    eng, app, ids = world
    c, _csrf = client(app, OWNER)
    words = text(c.get(f"/processes/drafts/{ids['same']}").text)
    assert "You have another draft of this process open too:" in words and "Someone else" not in words
    assert f"draft {ids['changed']} by you" in words
    # nobody to agree with: "Agree who goes first" was said to the owner of every draft
    assert "Agree who goes first" not in words
    assert "Only one of them can go live from the version it starts from: choose which, then rebase the others " \
        "onto it or withdraw them." in words
