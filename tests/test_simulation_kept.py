"""The simulations the pages start are kept in the database (api/simulation_pages.py, `simulation_runs`, migration
0023): a result survives a restart (a new app on the same database), a second server process on the database sees
a running simulation and is refused another (409), a run left running by a stopped server (its heartbeat stale) is
reported failed and blocks nothing, the heartbeat keeps a long run alive, the database itself allows one running
simulation, and the roles are refused as before (403).

"A second server process" is a second Engine and app on the same database URL (what `carepath serve` makes), with
its own clients and sessions. Runs of 1 or 3 days keep each simulation to a few seconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from api import simulation_pages
from api.app import create_app
from api.auth import ROLES, User
from carepath import simulate
from engine.errors import ConflictError
from engine.runtime import Engine
from engine.schema import simulation_runs
from tests.browser import launch, live_server, run_axe, sign_in
from tests.front_door_world import PASSWORD, build, username
from tests.test_simulate_compare import SCENARIO as COMPARE_SCENARIO
from tests.test_simulate_compare import make_drafts
from tests.test_simulation_pages import _forget, client, text, wait_until_done

SINGLE_SCENARIO = Path(__file__).parent / "fixtures" / "simulation_single.yaml"
OWNER = "process-owner"
T = simulation_runs.c


@pytest.fixture(scope="module")
def world(module_db_url):
    eng, app, _people = build(module_db_url)
    ids = make_drafts(eng)
    servers = []

    def second_server():
        """Another server process on the same database: its own Engine and app, nothing shared in memory."""
        other = Engine(eng.db.url, registry=eng.registry, forms=eng.forms)
        servers.append(other)
        return other, create_app(other, run_timers=False)

    yield eng, app, ids, second_server
    _forget(eng)
    for other in servers:
        other.db.dispose()
    eng.db.dispose()


@pytest.fixture(autouse=True)
def _nothing_kept(world):
    yield
    _forget(world[0])


def held(monkeypatch, module, name: str) -> threading.Event:
    """`module.name` held until the returned event is set (the run stays "running" meanwhile)."""
    gate = threading.Event()
    real = getattr(module, name)

    def gated(*args, **kw):
        gate.wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(module, name, gated)
    return gate


def rows(eng) -> list:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(T.id, T.status, T.error, T.heartbeat_at).order_by(T.started_at)).all()


def left_running(eng, *, heartbeat_age: timedelta, simulation_id: int = 123_456_780) -> str:
    """A row as a server process leaves it when it stops mid-run (no thread writes to it any more), its last
    heartbeat `heartbeat_age` ago: a single run of the live processes over 1 day with seed 1 (the key the pages
    give that question). Its page's address."""
    now = datetime.now(timezone.utc)
    live = simulation_pages.live_versions(eng)
    digest = simulation_pages.scenario_digest(simulate.load_scenario(SINGLE_SCENARIO))
    asked = simulation_pages.Job(id=simulation_id, draft_id=None, revision=None, process_id="", days=1, seeds=[1],
                                 scenario=str(SINGLE_SCENARIO), started_by=OWNER, started_at=now, live=live,
                                 scenario_digest=digest)
    with eng.db.transaction() as conn:
        conn.execute(insert(simulation_runs).values(
            id=simulation_id, run_key=asked.key, draft_id=None, revision=None, process_id="", days=1, seeds="[1]",
            scenario=str(SINGLE_SCENARIO), live=json.dumps([list(v) for v in live]), started_by=OWNER,
            started_at=now - heartbeat_age - timedelta(minutes=1), status="running", done=0, total=1,
            heartbeat_at=now - heartbeat_age))
    return f"/processes/simulations/{simulation_id}"


def test_a_result_survives_a_restart_and_is_opened_again_when_asked_for_again(world, monkeypatch):
    eng, app, ids, second_server = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(COMPARE_SCENARIO))
    did = ids["changed"]
    c, csrf = client(app, OWNER)
    r = c.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf, "days": "1", "seeds": "2"})
    assert r.status_code == 303
    link = r.headers["location"]
    assert wait_until_done(c, link) == {"status": "ready", "done": 4, "total": 4, "first_results": False}
    before = c.get(link)
    assert before.status_code == 200
    # the server restarts: a new engine and app on the same database, nothing of the old one's memory
    _other, restarted = second_server()
    c2, csrf2 = client(restarted, OWNER)
    assert c2.get(f"{link}/status").json() == {"status": "ready", "done": 4, "total": 4, "first_results": False}
    after = c2.get(link)
    assert after.status_code == 200
    assert "Simulation: the draft against the live version" in after.text
    report = lambda html: text(html.split('<main', 1)[1].split("</main>", 1)[0])  # noqa: E731
    assert report(after.text) == report(before.text)  # the same figures, charts and tables as before the restart
    assert "Bigger than chance" in after.text
    review = c2.get(f"/processes/drafts/{did}/review").text
    assert f'href="{link}"' in review and "finished" in text(review)
    # asked again for the same draft, revision, days and seeds: the kept one opens, nothing runs
    again = c2.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf2, "days": "1", "seeds": "2"})
    assert (again.status_code, again.headers["location"]) == (303, link)
    assert [r.status for r in rows(eng)] == ["ready"]
    # after an upgrade whose simulator reports differently, the kept result is not the answer: a new run
    monkeypatch.setattr(simulate, "RESULTS_REVISION", simulate.RESULTS_REVISION + 1)
    upgraded = c2.post(f"/processes/drafts/{did}/simulations", data={"csrf_token": csrf2, "days": "1", "seeds": "2"})
    assert upgraded.status_code == 303 and upgraded.headers["location"] != link
    assert wait_until_done(c2, upgraded.headers["location"])["status"] == "ready"


def test_a_second_server_process_sees_the_running_simulation_and_is_refused_another(world, monkeypatch):
    eng, app, ids, second_server = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    gate = held(monkeypatch, simulate, "simulate")
    _other, app2 = second_server()
    c, csrf = client(app, OWNER)
    c2, csrf2 = client(app2, OWNER)
    try:
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "4"})
        assert r.status_code == 303
        link = r.headers["location"]
        # the other process shows it running and says so in its list
        waiting = c2.get(link)
        assert waiting.status_code == 200 and "The simulation is running" in waiting.text
        assert c2.get(f"{link}/status").json() == {"status": "running", "done": 0, "total": 1}
        assert f'href="{link}"' in c2.get("/processes").text
        # the same run asked for there opens this one; any other is refused while it runs, on either process
        same = c2.post("/processes/simulations", data={"csrf_token": csrf2, "days": "1", "seed": "4"})
        assert (same.status_code, same.headers["location"]) == (303, link)
        other = c2.post("/processes/simulations", data={"csrf_token": csrf2, "days": "1", "seed": "5"})
        assert other.status_code == 409
        assert "Another simulation is running (the live processes, started by process-owner" in other.text
        assert 'class="govuk-error-summary"' in other.text
        draft = c2.post(f"/processes/drafts/{ids['same']}/simulations",
                        data={"csrf_token": csrf2, "days": "1", "seeds": "2"})
        assert draft.status_code == 409 and "Another simulation is running" in draft.text
        # the roles are refused on the other process too, for a simulation that exists
        for role in ROLES:
            if role != "process_owner":
                cr, _ = client(app2, username(role))
                assert cr.get(link).status_code == 403, role
                assert cr.get(f"{link}/status").status_code == 403, role
    finally:
        gate.set()
    # the other process follows it to the end: the result written by the first is read from the database
    assert wait_until_done(c2, link) == {"status": "ready", "done": 1, "total": 1}
    report = c2.get(link)
    assert report.status_code == 200 and "Simulation of the live processes" in report.text
    assert [r.status for r in rows(eng)] == ["ready"]
    after = c2.post("/processes/simulations", data={"csrf_token": csrf2, "days": "1", "seed": "5"})
    assert after.status_code == 303 and after.headers["location"] != link  # the turn has come
    wait_until_done(c2, after.headers["location"])


def test_a_run_whose_server_stopped_is_reported_failed_and_blocks_nothing(world, monkeypatch):
    eng, app, _ids, _second = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    stopped = left_running(eng, heartbeat_age=simulation_pages.STALE + timedelta(seconds=1))
    c, csrf = client(app, OWNER)
    assert c.get(f"{stopped}/status").json() == {"status": "failed", "done": 0, "total": 1}
    page = c.get(stopped)
    assert page.status_code == 200 and "The simulation could not be run" in page.text
    assert "The server stopped while it ran; start it again." in text(page.text)
    assert "could not be run" in text(c.get("/processes").text.split('id="simulations"', 1)[1])
    # the same question asked again runs it again (a stopped one is not reused), and the stopped one is marked
    # failed in the database
    r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "1"})
    assert r.status_code == 303 and r.headers["location"] != stopped
    assert wait_until_done(c, r.headers["location"])["status"] == "ready"
    kept = {row.id: (row.status, row.error) for row in rows(eng)}
    assert kept[123_456_780] == ("failed", simulation_pages.STOPPED) and len(kept) == 2


def test_a_run_whose_heartbeat_is_recent_still_blocks_another(world, monkeypatch):
    """The threshold is the heartbeat's age, not the row's: a running row beaten a minute before STALE blocks."""
    eng, app, _ids, _second = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    link = left_running(eng, heartbeat_age=simulation_pages.STALE - timedelta(minutes=1))
    c, csrf = client(app, OWNER)
    assert c.get(f"{link}/status").json() == {"status": "running", "done": 0, "total": 1}
    same = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "1"})
    assert (same.status_code, same.headers["location"]) == (303, link)  # the same question: the running one
    r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "2"})
    assert r.status_code == 409 and "Another simulation is running" in r.text
    assert [r.status for r in rows(eng)] == ["running"]


def test_the_heartbeat_keeps_a_long_run_alive(world, monkeypatch):
    eng, app, _ids, _second = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    monkeypatch.setattr(simulation_pages, "HEARTBEAT_S", 0.05)
    gate = held(monkeypatch, simulate, "simulate")
    c, csrf = client(app, OWNER)
    try:
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "3"})
        link = r.headers["location"]
        sid = int(link.rsplit("/", 1)[1])
        old = datetime.now(timezone.utc) - simulation_pages.STALE - timedelta(minutes=1)
        with eng.db.transaction() as conn:  # as if the run had been going for longer than STALE
            conn.execute(update(simulation_runs).where(T.id == sid).values(heartbeat_at=old))
        deadline = time.monotonic() + 60
        while simulation_pages.find(eng, None, sid, figures=False).status != "running":
            assert time.monotonic() < deadline, "the heartbeat was not written"
            time.sleep(0.05)
        assert c.get(f"{link}/status").json()["status"] == "running"
    finally:
        gate.set()
    assert wait_until_done(c, link)["status"] == "ready", rows(eng)


def test_the_database_allows_one_running_simulation_whoever_asks_at_the_same_moment(world, monkeypatch):
    eng, _app, _ids, second_server = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    # the partial unique index itself: a second running row is refused, a finished one is not
    left_running(eng, heartbeat_age=timedelta(0))
    with pytest.raises(IntegrityError), eng.db.transaction() as conn:
        conn.execute(insert(simulation_runs).values(
            id=123_456_781, run_key="1" * 64, process_id="", days=1, seeds="[2]", scenario="x", live="[]",
            started_by=OWNER, started_at=datetime.now(timezone.utc), status="running", done=0, total=1,
            heartbeat_at=datetime.now(timezone.utc)))
    with eng.db.transaction() as conn:
        conn.execute(update(simulation_runs).values(status="failed"))
    _forget(eng)
    # four server processes start different runs at the same moment: one starts, the others are refused
    gate = held(monkeypatch, simulate, "simulate")
    owner = User(id=1, username=OWNER, display_name="Owner", roles=frozenset({"process_owner"}), teams=frozenset())
    engines = [second_server()[0] for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    outcomes: list = [None] * len(engines)

    def ask(i: int) -> None:
        barrier.wait(30)
        try:
            outcomes[i] = simulation_pages.start_single(engines[i], owner, 1, 10 + i).id
        except ConflictError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(engines))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        gate.set()
    started = [o for o in outcomes if isinstance(o, int)]
    assert len(started) == 1, outcomes
    assert all(isinstance(o, ConflictError) for o in outcomes if not isinstance(o, int))
    deadline = time.monotonic() + 300
    while rows(eng)[0].status == "running":
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.1)
    assert [(r.id, r.status) for r in rows(eng)] == [(started[0], "ready")]


def test_the_newest_simulations_of_a_draft_are_kept(world, monkeypatch):
    eng, app, _ids, _second = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    monkeypatch.setattr(simulation_pages, "KEEP", 2)
    monkeypatch.setattr(simulate, "simulate", lambda *a, **kw: {"days": kw["days"], "seed": kw["seed"]})
    c, csrf = client(app, OWNER)
    links = []
    for seed in (1, 2, 3):
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": str(seed)})
        links.append(r.headers["location"])
        assert wait_until_done(c, links[-1])["status"] == "ready"
    assert [re.sub(r"\D", "", link) for link in links[1:]][::-1] == [
        str(j.id) for j in simulation_pages.for_draft(eng, None)]
    gone = c.get(links[0])
    assert gone.status_code == 404 and "The newest 2 are kept" in gone.text


def _status_line_after_a_check(browser, base: str, link: str, name: str):
    """The waiting page in Chromium, signed in as the process owner, once its script has asked for the status and
    written what it says: (the tab, the status line's text); the page axe-clean."""
    tab = browser.new_context(bypass_csp=True).new_page()
    sign_in(tab, base, OWNER, PASSWORD, then="/home")
    tab.goto(f"{base}{link}")
    with tab.expect_response(lambda resp: resp.url.endswith(f"{link}/status")):
        pass
    tab.wait_for_timeout(200)
    shown = tab.get_by_role("status").inner_text()
    run_axe(tab, name)
    return tab, shown


def test_a_simulation_waiting_for_the_run_made_ahead_says_so_on_its_waiting_page(world, monkeypatch):
    """The run a server is making ahead is the one asked for: the simulation waits for it instead of making it
    again, and its waiting page says so (its count of finished runs stays at 0 meanwhile, as if stuck); once the
    run is kept the report opens and the note is gone."""
    from carepath.simulate_reuse import KeptRuns, run_key
    from engine.schema import simulation_ahead
    from engine.trial import deployed_rows

    eng, app, _ids, _second = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    scenario = simulate.load_scenario(SINGLE_SCENARIO)
    rows_now = deployed_rows(eng)
    key = run_key(rows_now, scenario, 1, 6)
    made = simulate.simulate(scenario, source=rows_now, days=1, seed=6)  # what the server making it ahead keeps
    monkeypatch.setattr(simulate, "simulate", lambda *a, **kw: pytest.fail("made again"))
    beat = threading.Event()

    def heartbeat() -> None:  # the server making it ahead: its lease beaten every half second until it keeps it
        while not beat.wait(0.5):
            with eng.db.transaction() as conn:
                conn.execute(update(simulation_ahead).values(heartbeat_at=datetime.now(timezone.utc)))

    with eng.db.transaction() as conn:
        conn.execute(simulation_ahead.delete())
        conn.execute(insert(simulation_ahead).values(name="ahead", holder="another server", making="1:6",
                                                     run_key=key, heartbeat_at=datetime.now(timezone.utc)))
    threading.Thread(target=heartbeat, daemon=True).start()
    c, csrf = client(app, OWNER)
    try:
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "1", "seed": "6"})
        assert r.status_code == 303
        link = r.headers["location"]
        deadline = time.monotonic() + 30
        while "waiting" not in (state := c.get(f"{link}/status").json()):
            assert state["status"] == "running" and time.monotonic() < deadline, state
            time.sleep(0.1)
        note = ("This run was already being made in the background when it was needed, so the simulation waits for "
                "it instead of starting it again (waiting since ")
        assert state["done"] == 0 and state["waiting"].startswith(note), state
        page = text(c.get(link).text.split('id="simulation-status"', 1)[1].split("</div>", 1)[0])
        assert "0 of 1 run finished. " + note in page
        with live_server(app) as base, launch() as browser:  # the page's script keeps the note as it checks
            tab, shown = _status_line_after_a_check(browser, base, link, "simulation waiting for a run made ahead")
            assert shown.startswith("0 of 1 run finished. " + note), shown
            KeptRuns(eng).put(key, made)  # the server kept it: the script opens the report
            tab.get_by_role("heading", name="Simulation of the live processes").wait_for(timeout=30_000)
        assert wait_until_done(c, link) == {"status": "ready", "done": 1, "total": 1}  # no note once finished
    finally:
        beat.set()
        with eng.db.transaction() as conn:
            conn.execute(simulation_ahead.delete())
    with eng.db.engine.connect() as conn:
        (row,) = conn.execute(select(T.waiting_for, T.result)).all()
    assert row.waiting_for is None and json.loads(row.result)["reused"] is True
    report = text(c.get(link).text)
    assert "already being made" not in report and "Simulation of the live processes" in report


@pytest.mark.parametrize("draft_id,waiting,said", [
    (7, {"side": "draft", "seed": 2}, "The draft's run with seed 2 was already being made in the background when "
                                      "it was needed, so the simulation waits for it instead of starting it again"),
    (7, {"side": "live", "seed": 1}, "The live version's run with seed 1 was already being made in the background"),
    (None, {"side": "live", "seed": 3}, "This run was already being made in the background"),
], ids=["draft", "live", "single"])
def test_the_run_waited_for_is_named_by_its_side_and_seed(draft_id, waiting, said):
    since = datetime(2026, 7, 1, 8, 5, tzinfo=timezone.utc)
    job = simulation_pages.Job(id=1, draft_id=draft_id, revision=1, process_id="p", days=1, seeds=[1, 2, 3],
                               scenario="s", started_by=OWNER, started_at=since,
                               waiting={**waiting, "since": since.isoformat()})
    words = simulation_pages.waiting_text(job)
    assert words.startswith(said) and words.endswith("(waiting since 1 July 2026 at 9:05am).")  # UK summer time
    job.waiting["day"] = 91  # the run made ahead has said how far it has come
    assert simulation_pages.waiting_text(job).endswith(
        "(waiting since 1 July 2026 at 9:05am; it has simulated 1 of 1 day).")  # a 1-day job: never past its end
    job.days = 365
    assert simulation_pages.waiting_text(job).endswith("(waiting since 1 July 2026 at 9:05am; it has simulated "
                                                       "91 of 365 days).")
    job.status = "ready"
    assert simulation_pages.waiting_text(job) is None
    job.status, job.waiting = "running", {"side": "draft", "seed": 1, "since": "not a time"}
    assert simulation_pages.waiting_text(job) is None


def test_the_waiting_page_says_how_far_the_run_has_come(world, monkeypatch):
    """A run of 8 days that has simulated its first week (and is held there): its status and waiting page say so;
    once it has finished, nothing is said of it and the row keeps no progress."""
    eng, app, _ids, _second = world
    monkeypatch.setenv(simulation_pages.SCENARIO_ENV, str(SINGLE_SCENARIO))
    gate, at_week = threading.Event(), threading.Event()
    real = simulate.simulate

    def held_after_a_week(*args, on_day=None, **kw):
        def told(day):
            on_day(day)
            at_week.set()
            gate.wait(60)
        return real(*args, on_day=told, **kw)

    monkeypatch.setattr(simulate, "simulate", held_after_a_week)
    c, csrf = client(app, OWNER)
    try:
        r = c.post("/processes/simulations", data={"csrf_token": csrf, "days": "8", "seed": "3"})
        link = r.headers["location"]
        assert at_week.wait(60)
        deadline = time.monotonic() + 10
        while "progress" not in (state := c.get(f"{link}/status").json()):
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state == {"status": "running", "done": 0, "total": 1, "progress": "The run has simulated 7 of 8 days."}
        page = text(c.get(link).text.split('id="simulation-status"', 1)[1].split("</div>", 1)[0])
        assert "0 of 1 run finished. The run has simulated 7 of 8 days." in page
        with live_server(app) as base, launch() as browser:  # the page's script says it too as it checks
            _tab, shown = _status_line_after_a_check(browser, base, link, "simulation with how far its run has come")
            assert shown == "0 of 1 run finished. The run has simulated 7 of 8 days."
    finally:
        gate.set()
    assert wait_until_done(c, link) == {"status": "ready", "done": 1, "total": 1}
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(T.progress, T.waiting_for)).all() == [(None, None)]


def test_a_comparison_s_runs_being_made_are_named_with_the_days_each_has_simulated():
    now = datetime(2026, 12, 6, 21, 0, tzinfo=timezone.utc)
    job = simulation_pages.Job(id=1, draft_id=7, revision=1, process_id="p", days=365, seeds=[1, 2], scenario="s",
                               started_by=OWNER, started_at=now, progress={"live:1": 140, "draft:1": 133})
    assert simulation_pages.progress_text(job) == (
        "Of the runs being made, the live version's run with seed 1 has simulated 140 of 365 days and the draft's "
        "run with seed 1 has simulated 133 of 365 days.")
    job.progress = {"draft:2": 7}
    assert simulation_pages.progress_text(job) == (
        "Of the runs being made, the draft's run with seed 2 has simulated 7 of 365 days.")
    job.progress = {"draft:2": "seven"}  # not a number of days: nothing said
    assert simulation_pages.progress_text(job) is None
    job.progress, job.status = {"draft:2": 7}, "ready"
    assert simulation_pages.progress_text(job) is None
