"""The live version's runs made ahead of being asked (carepath/simulate_ahead.py, `simulation_ahead`, migration 0027;
docs/simulation.md "The live runs made ahead").

A server process makes the runs of the deployed versions that a comparison will need, in the background at the lowest
priority, so that a comparison then makes only the draft's runs and gives the very figures it would have made. It
makes nothing while a process owner's simulation runs or another process holds the lease, stops its run when the
versions change or the server stops, and leaves no process behind even when its server is killed. On both databases,
with the small safeguarding scenario of the comparison tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, update

from carepath import simulate, simulate_ahead, simulate_compare
from carepath.simulate_ahead import Ahead, Awaiting, plan_from_env, wanted
from carepath.simulate_reuse import KeptRuns, run_key
from engine import drafts
from engine.errors import CarepathError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import process_drafts, simulation_ahead, simulation_outputs, simulation_runs
from engine.trial import deployed_rows
from tests.test_simulate_compare import AN_HOUR, DEADLINE_OF_DAY, ROOT, SCENARIO, live_files, make_drafts

FILES = ("front_door.bpmn", "screening.dmn", "safeguarding.bpmn")


def _engine(url: str) -> Engine:
    eng = Engine(url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    eng.deploy([ROOT / "processes" / n for n in FILES])
    return eng


@pytest.fixture(autouse=True)
def one_process_a_run(monkeypatch):
    """The runs made ahead here are of a few days: made in one process each rather than two (the same output,
    tests/test_simulate_parts.py), as starting a process is most of such a run's cost. The tests of the two
    processes' group (paused, killed, the comparison waiting) ask for two."""
    monkeypatch.setattr(simulate_ahead, "PARTS", 1)


@pytest.fixture
def live(db_url):
    eng = _engine(db_url)
    yield eng
    eng.db.dispose()


def _kept_keys(eng) -> set[str]:
    with eng.db.engine.connect() as conn:
        return set(conn.execute(select(simulation_outputs.c.key)).scalars())


def _lease(eng):
    with eng.db.engine.connect() as conn:
        return conn.execute(select(simulation_ahead)).all()


def _keys(eng, days: int, seeds: list[int]) -> set[str]:
    rows, scenario = deployed_rows(eng), simulate.load_scenario(SCENARIO)
    return {run_key(rows, scenario, days, s) for s in seeds}


def _redeploy_safeguarding(eng) -> None:
    """A new live version of safeguarding (its triage deadline an hour): every live run's key changes."""
    files = live_files(eng, "safeguarding")
    eng.deploy(files={name: (body.replace(DEADLINE_OF_DAY, AN_HOUR) if name == "safeguarding.bpmn" else body)
                      for name, body in files.items()})


def test_the_plan_is_read_from_the_setting_and_a_bad_one_names_it():
    assert plan_from_env({}) == [(365, 3)]
    assert plan_from_env({"CAREPATH_SIMULATION_AHEAD": "365x2, 14x3"}) == [(365, 2), (14, 3)]
    for off in ("off", "0", "OFF"):
        assert plan_from_env({"CAREPATH_SIMULATION_AHEAD": off}) is None
    for bad in ("366x3", "365x0", "365x11", "365", "x3", "a year", "365x3;14x3", "-1x2"):
        with pytest.raises(CarepathError, match="CAREPATH_SIMULATION_AHEAD"):
            plan_from_env({"CAREPATH_SIMULATION_AHEAD": bad})
    # first seeds first: a comparison's first results need seed 1's run of its period
    assert wanted([(365, 3), (14, 2)], 1) == [(365, 1), (14, 1), (365, 2), (14, 2), (365, 3)]
    assert wanted([(365, 2)], 7) == [(365, 7), (365, 8)]


def test_a_pass_makes_the_live_runs_at_the_lowest_priority_and_a_comparison_then_makes_only_the_drafts(
        live, made):
    eng = live
    ids = make_drafts(eng)
    scenario = simulate.load_scenario(SCENARIO)
    ahead = Ahead(eng, SCENARIO, [(2, 2)], drafts=False)
    assert ahead.pass_once() == 2
    assert [(m["days"], m["seed"]) for m in ahead.made] == [(2, 1), (2, 2)]
    assert all(m["nice"] == 19 for m in ahead.made), ahead.made  # made at the lowest priority
    assert _kept_keys(eng) == _keys(eng, 2, [1, 2])
    assert _lease(eng) == []  # given up after the pass
    assert ahead.pass_once() == 0  # nothing missing: nothing made

    changed = drafts.get_draft(eng, ids["changed"])
    taken = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1, kept=KeptRuns(eng))
    assert taken["reused"] == {"live": [1, 2], "draft": []} and made == [(2, 1), (2, 2)]  # only the draft's runs
    with eng.db.transaction() as conn:
        conn.execute(simulation_outputs.delete())
    fresh = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1)
    assert json.dumps({k: v for k, v in taken.items() if k != "reused"}, sort_keys=True) == json.dumps(
        fresh, sort_keys=True)  # the very figures of a comparison that made every run


def _draft_keys(eng, draft_id: int, days: int, seeds: list[int]) -> set[str]:
    source = simulate_compare.draft_source(eng, drafts.get_draft(eng, draft_id))
    try:
        rows = deployed_rows(source)
    finally:
        source.db.dispose()
    return {run_key(rows, simulate.load_scenario(SCENARIO), days, s) for s in seeds}


def test_the_open_drafts_runs_are_made_after_the_live_ones_and_a_comparison_then_makes_none(live, made):
    eng = live
    ids = make_drafts(eng)  # two open drafts of safeguarding: "changed" saved last
    drafts.submit_draft(eng, ids["same"], actor="process-owner")  # waiting for review: its runs before the other's
    ahead = Ahead(eng, SCENARIO, [(2, 1)])
    assert ahead.pass_once() == 3
    assert [(m["seed"], m["draft"]) for m in ahead.made] == [(1, None), (1, ids["same"]), (1, ids["changed"])]
    assert all(m["nice"] == 19 for m in ahead.made)
    assert _kept_keys(eng) == (_keys(eng, 2, [1]) | _draft_keys(eng, ids["same"], 2, [1])
                               | _draft_keys(eng, ids["changed"], 2, [1]))
    assert ahead.pass_once() == 0

    scenario = simulate.load_scenario(SCENARIO)
    changed = drafts.get_draft(eng, ids["changed"])
    taken = simulate_compare.compare(scenario, eng, changed, seeds=[1], days=2, workers=1, kept=KeptRuns(eng))
    assert taken["reused"] == {"live": [1], "draft": [1]} and made == []  # both runs made ahead

    if eng.db.is_postgres:  # what follows reads the same queries again: on SQLite only, the suite's time kept
        return
    # "changed" saved again (triage within two hours), "same" withdrawn: the next pass makes the new revision's
    # runs and none of the withdrawn draft's
    two_hours = changed["files"]["safeguarding.bpmn"].replace('"PT1H"', '"PT2H"')
    assert two_hours != changed["files"]["safeguarding.bpmn"]
    drafts.save_draft(eng, ids["changed"], files={**changed["files"], "safeguarding.bpmn": two_hours},
                      expected_revision=changed["revision"], actor="process-owner-2")
    drafts.withdraw_draft(eng, ids["same"], actor="process-owner")
    again = Ahead(eng, SCENARIO, [(2, 2)])
    third: list[int] = []
    make = again._make

    def then_a_third_draft(*args):  # saved while the pass makes its first run: its seed 1 comes before seed 2's,
        # and being the draft saved last, its seed 2 before the other's
        got = make(*args)
        if not third:
            hours = changed["files"]["safeguarding.bpmn"].replace('"PT1H"', '"PT3H"')
            third.append(drafts.create_draft(eng, process_id="safeguarding", actor="process-owner", base_version=None,
                                             files={**changed["files"], "safeguarding.bpmn": hours})["id"])
        return got

    again._make = then_a_third_draft
    assert again.pass_once() == 5
    assert [(m["seed"], m["draft"]) for m in again.made] == [
        (1, ids["changed"]), (1, third[0]), (2, None), (2, third[0]), (2, ids["changed"])]


def test_a_draft_the_scenario_does_not_fit_or_that_does_not_deploy_is_skipped_and_the_others_made(live):
    from api.simulation_pages import ahead_text

    eng = live
    ids = make_drafts(eng)
    files = {k: v.decode() for k, v in live_files(eng, "safeguarding").items()}
    renamed = files["safeguarding.bpmn"].replace("triage_overdue", "triage_late")  # a watched timer renamed
    unfit = drafts.create_draft(eng, process_id="safeguarding", files={**files, "safeguarding.bpmn": renamed},
                                base_version=None, actor="process-owner")["id"]
    broken = files["safeguarding.bpmn"].replace('targetRef="', 'targetRef="nowhere_', 1)  # a flow to no element
    undeployable = drafts.create_draft(eng, process_id="safeguarding", files={**files, "safeguarding.bpmn": broken},
                                       base_version=None, actor="process-owner")["id"]
    ahead = Ahead(eng, SCENARIO, [(2, 1)])
    assert ahead.pass_once() == 3  # the live run and the two drafts that fit
    assert [m["draft"] for m in ahead.made] == [None, ids["changed"], ids["same"]]
    tried: list[str] = []
    make = ahead._make
    ahead._make = lambda scenario, job, *rest: tried.append(job.label) or make(scenario, job, *rest)
    assert ahead.pass_once() == 0 and tried == [] and len(ahead.made) == 3  # the unfit draft is not tried again
    # its review page says nothing of its own runs (none will be made), only of the live version's
    for draft_id in (unfit, undeployable):
        assert ahead_text(ahead, draft_id).endswith("only makes this draft's runs and its first results come in "
                                                    "about half the time: 2 days with seed 1 (all ready).")
    assert ahead_text(ahead, ids["changed"]).endswith(
        "The live version's: 2 days with seed 1 (all ready). This draft's: 2 days with seed 1 (all ready).")


def test_a_draft_that_cannot_be_read_stops_neither_the_live_runs_nor_the_other_drafts(live, monkeypatch):
    eng = live
    ids = make_drafts(eng)
    real = simulate_compare.draft_source

    def source(engine, draft):
        if draft["id"] == ids["same"]:
            raise RuntimeError("something unexpected")
        return real(engine, draft)

    monkeypatch.setattr(simulate_compare, "draft_source", source)
    ahead = Ahead(eng, SCENARIO, [(1, 1)])
    assert ahead.pass_once() == 2 and [m["draft"] for m in ahead.made] == [None, ids["changed"]]


def test_a_draft_saved_again_or_withdrawn_while_its_run_is_made_stops_that_run(live):
    eng = live
    ids = make_drafts(eng)
    with eng.db.transaction() as conn:  # only the changed draft open
        conn.execute(update(process_drafts).where(process_drafts.c.id == ids["same"]).values(status="withdrawn"))
    (live_key,) = _keys(eng, 365, [1])
    KeptRuns(eng).put(live_key, {"made": "earlier"})  # the live run kept: the pass goes to the draft's at once
    for change in ("saved again", "withdrawn"):
        _a_draft_run_stopped_by(eng, ids["changed"], change, live_key)


def _a_draft_run_stopped_by(eng, draft_id: int, change: str, live_key: str) -> None:
    # a heartbeat a minute apart: the run is stopped at once because the change wakes it (engine/drafts.on_change)
    ahead = Ahead(eng, SCENARIO, [(365, 1)], beat_s=60)
    thread, result, pgid = _pass_in_thread(ahead)
    assert _lease(eng)[0].making == f"365:1:{draft_id}"
    draft = drafts.get_draft(eng, draft_id)
    if change == "saved again":
        drafts.save_draft(eng, draft_id, files=draft["files"], expected_revision=draft["revision"],
                          actor="process-owner-2")
    else:
        drafts.withdraw_draft(eng, draft_id, actor="process-owner")
    thread.join(30)
    assert result == [0] and ahead.made == [] and _kept_keys(eng) == {live_key}, change
    assert _wait(lambda: _group_gone(pgid), 10)


def test_the_review_page_says_which_of_the_drafts_runs_are_ready_and_which_is_being_made(live):
    from api.simulation_pages import ahead_text

    eng = live
    ids = make_drafts(eng)
    ahead = Ahead(eng, SCENARIO, [(2, 2)])
    text = ahead_text(ahead, ids["changed"])
    assert text.startswith("The live version's runs are made in the background after each deployment, and this "
                           "draft's after each save, so that a simulation of these periods and seeds finds them "
                           "made, or waits for the one being made instead of starting again.")
    assert text.endswith("The live version's: 2 days with seeds 1 and 2 (none ready yet). This draft's: 2 days with "
                         "seeds 1 and 2 (none ready yet).")
    assert ahead._take(f"2:1:{ids['changed']}", "k" * 64)
    assert ahead_text(ahead, ids["changed"]).endswith(
        "This draft's: 2 days with seeds 1 and 2 (none ready yet, seed 1 being made).")
    assert ahead_text(ahead, ids["same"]).endswith(  # another draft's run being made: not this one's
        "This draft's: 2 days with seeds 1 and 2 (none ready yet).")
    ahead._release()
    (key,) = _draft_keys(eng, ids["changed"], 2, [1])
    KeptRuns(eng).put(key, {"made": "ahead"})
    assert ahead_text(ahead, ids["changed"]).endswith("This draft's: 2 days with seeds 1 and 2 (seed 1 ready).")


def _lease_row(eng, key: str, beat: datetime, paused_at: datetime | None = None) -> None:
    with eng.db.transaction() as conn:
        conn.execute(simulation_ahead.delete())
        conn.execute(insert(simulation_ahead).values(name="ahead", holder="a server", making="60:1:1", run_key=key,
                                                     heartbeat_at=beat, paused_at=paused_at))


def test_a_simulation_waits_for_the_run_being_made_ahead_and_makes_it_itself_if_that_run_stops(live):
    eng = live
    kept = KeptRuns(eng)
    now = datetime.now(timezone.utc)
    runs = {("live", 1): "a" * 64, ("draft", 1): "b" * 64, ("draft", 2): None}
    told: list = []  # what the simulation's page is told it waits for
    awaiting = Awaiting(eng, kept, poll_s=0.05, paused_s=0.5, on_wait=lambda run, day: told.append((run, day)))
    assert awaiting.wait_for(runs) is None  # nothing is being made
    _lease_row(eng, "c" * 64, now)
    assert awaiting.wait_for(runs) is None and _lease(eng)[0].awaited is None  # another run: not waited for
    _lease_row(eng, "b" * 64, now - timedelta(minutes=1))
    assert awaiting.wait_for(runs) is None  # its server has not beaten for a minute: not waited for
    assert told == []  # nor said to be

    # the draft's seed 1 being made (paused for this simulation, as it has not yet seen the mark): marked awaited,
    # waited for until it is kept, then taken
    _lease_row(eng, "b" * 64, now, paused_at=now)
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(awaiting.wait_for(runs)))
    waiter.start()
    _wait(lambda: _lease(eng)[0].awaited == "b" * 64, 10)
    with eng.db.transaction() as conn:  # the server saw the mark: the run goes on
        conn.execute(update(simulation_ahead).values(paused_at=None))
    time.sleep(0.8)
    assert waiter.is_alive() and told == [(("draft", 1), None)]  # the page says which run it waits for
    with eng.db.transaction() as conn:  # the run says how far it has come: the page is told
        conn.execute(update(simulation_ahead).values(day=42))
    _wait(lambda: told[-1] == (("draft", 1), 42), 10)
    kept.put("b" * 64, {"made": "ahead"})
    waiter.join(10)
    assert got == [(("draft", 1), {"made": "ahead"})]
    assert told == [(("draft", 1), None), (("draft", 1), 42), (None, None)]  # and no longer once kept

    # the run made ahead stops without keeping it (a deployment, its server stopped): the caller makes it itself
    _lease_row(eng, "a" * 64, now)
    got.clear()
    waiter = threading.Thread(target=lambda: got.append(awaiting.wait_for(runs)))
    waiter.start()
    _wait(lambda: _lease(eng)[0].awaited == "a" * 64, 10)
    with eng.db.transaction() as conn:  # it failed, and the server went on to the next run
        conn.execute(update(simulation_ahead).values(run_key="c" * 64, making="60:2:1", awaited=None))
    waiter.join(10)
    assert got == [None]
    _lease_row(eng, "a" * 64, now)
    got.clear()
    waiter = threading.Thread(target=lambda: got.append(awaiting.wait_for(runs)))
    waiter.start()
    _wait(lambda: _lease(eng)[0].awaited == "a" * 64, 10)
    with eng.db.transaction() as conn:  # its server stopped and gave up the lease
        conn.execute(simulation_ahead.delete())
    waiter.join(10)
    assert got == [None] and told[-2:] == [(("live", 1), None), (None, None)]  # given up: no longer said to wait

    # awaited but left paused (a server that does not see the mark): given up after `paused_s`, not waited for ever
    _lease_row(eng, "a" * 64, now, paused_at=now)
    began = time.monotonic()
    assert awaiting.wait_for(runs) is None
    assert 0.5 <= time.monotonic() - began < 5


def test_one_run_of_the_live_processes_from_the_pages_waits_for_the_same_run_being_made_ahead(live, monkeypatch):
    from types import SimpleNamespace

    from api import simulation_pages

    eng = live
    kept = KeptRuns(eng)
    (key,) = _keys(eng, 2, [1])
    _lease_row(eng, key, datetime.now(timezone.utc))
    monkeypatch.setattr(simulate, "simulate", lambda *a, **kw: pytest.fail("made again"))
    threading.Timer(0.5, lambda: kept.put(key, {"made": "ahead"})).start()
    job = SimpleNamespace(days=2, seeds=[1])
    out = simulation_pages._single(eng, job, simulate.load_scenario(SCENARIO), False, kept,
                                   Awaiting(eng, kept, poll_s=0.05))
    assert out == {"made": "ahead", "reused": True} and _lease(eng)[0].awaited == key


def test_a_comparison_takes_the_drafts_run_being_made_ahead_which_is_not_paused_for_it(live, made):
    """The draft's seed 1 is being made ahead when a process owner compares: the comparison waits for it (the run
    goes on, not paused, though a process owner's simulation runs) and takes it instead of making it again."""
    eng = live
    ids = make_drafts(eng)
    assert Ahead(eng, SCENARIO, [(60, 1)], drafts=False).pass_once() == 1  # the live run: kept
    with eng.db.transaction() as conn:  # only the changed draft open
        conn.execute(update(process_drafts).where(process_drafts.c.id == ids["same"]).values(status="withdrawn"))
    ahead = Ahead(eng, SCENARIO, [(60, 1)])
    ahead.user_check_s, ahead.parts = 0.2, 2  # made as the server makes it: in two processes
    thread, passed, pgid = _pass_in_thread(ahead)
    _wait(lambda: len(_members(pgid)) == 2, 30)
    assert _lease(eng)[0].making == f"60:1:{ids['changed']}"
    _running(eng)  # the process owner's simulation, as the pages start it
    states: list[str] = []
    watching = threading.Event()

    def watch() -> None:  # the run's states while the comparison runs
        while not watching.is_set():
            states.extend(_members(pgid).values())
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    kept = KeptRuns(eng)
    changed = drafts.get_draft(eng, ids["changed"])
    told: list = []  # what the page would be told: the run waited for, and how far it has come
    out = simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, changed, seeds=[1], days=60, workers=1,
                                   kept=kept, awaiting=Awaiting(eng, kept, poll_s=0.1, on_wait=lambda run, day:
                                                                told.append((run, day))))
    watching.set()
    days = [day for run, day in told if run == ("draft", 1) and day is not None]
    assert told[0] == (("draft", 1), None) and told[-1] == (None, None), told
    assert days and days == sorted(days) and set(days) <= {7 * w for w in range(1, 9)}, told  # from its process
    thread.join(30)
    assert passed == [1] and [(m["seed"], m["draft"]) for m in ahead.made] == [(1, ids["changed"])]
    assert ahead.made[0]["awaited"] and ahead.made[0]["nice"] == 19  # the comparison waited for it while it was made
    assert out["reused"] == {"live": [1], "draft": [1]} and made == []  # and made no run itself
    assert states and "T" not in states  # never paused: the comparison said it waited for it before it was


def test_after_a_deployment_the_next_pass_makes_the_new_versions_runs(live):
    eng = live
    ahead = Ahead(eng, SCENARIO, [(2, 1)])
    assert ahead.pass_once() == 1
    before = _kept_keys(eng)
    _redeploy_safeguarding(eng)
    assert ahead.pass_once() == 1
    assert _kept_keys(eng) == before | _keys(eng, 2, [1]) and len(_kept_keys(eng)) == 2


def test_nothing_is_made_while_a_process_owners_simulation_runs_or_another_server_holds_the_lease(live):
    eng = live
    now = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    with eng.db.transaction() as conn:
        conn.execute(insert(simulation_runs).values(
            id=123456789, run_key="k" * 64, draft_id=None, revision=None, process_id="", days=14, seeds="[1]",
            scenario="s", live="[]", started_by="process-owner", started_at=now, status="running", done=0, total=1,
            heartbeat_at=now))
    assert Ahead(eng, SCENARIO, [(2, 1)], clock=lambda: now + timedelta(minutes=4)).pass_once() == 0
    assert _kept_keys(eng) == set()
    # its server stopped (no heartbeat for more than five minutes): it holds nothing back
    with eng.db.transaction() as conn:
        conn.execute(insert(simulation_ahead).values(name="ahead", holder="another server", making="2:1",
                                                     heartbeat_at=now + timedelta(minutes=5)))
    later = now + timedelta(minutes=6)
    assert Ahead(eng, SCENARIO, [(2, 1)], clock=lambda: later).pass_once() == 0  # the other's lease is fresh
    assert _kept_keys(eng) == set() and _lease(eng)[0].holder == "another server"
    stale = Ahead(eng, SCENARIO, [(2, 1)], clock=lambda: now + timedelta(minutes=8))  # 3 minutes without a beat
    assert stale.pass_once() == 1 and _kept_keys(eng) == _keys(eng, 2, [1])
    assert _lease(eng) == []


def _wait(what, seconds: float = 60.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("waited too long")


def _pass_in_thread(ahead):
    """A pass started in a thread, once its run's process group is there: the thread, its result, the group."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(ahead.pass_once()))
    thread.start()
    child = _wait(lambda: ahead._child)
    pgid = _wait(lambda: child.pid and os.getpgid(child.pid) == child.pid and child.pid)
    return thread, result, pgid


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_stopping_the_server_kills_the_run_being_made_and_keeps_nothing(live):
    eng = live
    ahead = Ahead(eng, SCENARIO, [(365, 1)])
    thread, result, pgid = _pass_in_thread(ahead)
    assert _lease(eng)[0].making == "365:1"
    ahead.stop()
    thread.join(10)
    assert result == [0] and _kept_keys(eng) == set() and _lease(eng) == []
    assert _wait(lambda: _group_gone(pgid), 10)  # the run and its second part


def test_a_deployment_while_a_run_is_made_stops_it(live):
    eng = live
    ahead = Ahead(eng, SCENARIO, [(365, 1)], beat_s=0.2)
    thread, result, pgid = _pass_in_thread(ahead)
    _redeploy_safeguarding(eng)
    thread.join(30)
    assert result == [0] and _kept_keys(eng) == set()
    assert _wait(lambda: _group_gone(pgid), 10)


def _members(pgid: int) -> dict[int, str]:
    """The processes of a process group and their states ('T': stopped), from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                out[int(entry)] = fields[0]
    return out


def _running(eng, status: str = "running") -> None:
    now = datetime.now(timezone.utc)
    with eng.db.transaction() as conn:
        conn.execute(simulation_runs.delete())
        conn.execute(insert(simulation_runs).values(
            id=123456789, run_key="k" * 64, draft_id=None, revision=None, process_id="", days=14, seeds="[1]",
            scenario="s", live="[]", started_by="process-owner", started_at=now, status=status, done=0, total=1,
            heartbeat_at=now))


def test_a_run_made_ahead_is_paused_while_a_process_owners_simulation_runs_and_dropped_if_it_made_the_same(live):
    eng = live
    ahead = Ahead(eng, SCENARIO, [(365, 1)])
    ahead.user_check_s, ahead.parts = 0.2, 2  # made as the server makes it: in two processes
    thread, result, pgid = _pass_in_thread(ahead)
    _wait(lambda: len(_members(pgid)) == 2, 30)  # the run and its second part
    _running(eng)  # a process owner starts a simulation: the run gives way
    _wait(lambda: set(_members(pgid).values()) == {"T"}, 10)
    time.sleep(0.5)
    assert set(_members(pgid).values()) == {"T"} and ahead.paused
    _running(eng, "ready")  # it ended: the run goes on
    _wait(lambda: "T" not in _members(pgid).values(), 10)
    assert not ahead.paused and thread.is_alive()
    _running(eng)  # another, which makes and keeps the very run: the one paused is dropped, not made twice
    _wait(lambda: set(_members(pgid).values()) == {"T"}, 10)
    (key,) = _keys(eng, 365, [1])
    KeptRuns(eng).put(key, {"made": "by the process owner's simulation"})
    _running(eng, "ready")
    thread.join(30)
    assert result == [0] and ahead.made == [] and _lease(eng) == []
    assert KeptRuns(eng).get(key) == {"made": "by the process owner's simulation"}
    assert _wait(lambda: _group_gone(pgid), 10)


KILLED = """
import sys, threading, time
from carepath.simulate_ahead import Ahead
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
eng = Engine(sys.argv[1], registry=load_registry("handlers"), forms=FormLibrary.from_folder(sys.argv[2] + "/forms"))
ahead = Ahead(eng, sys.argv[3], [(365, 1)])
ahead.user_check_s = 0.2
threading.Thread(target=ahead.pass_once, daemon=True).start()
while ahead._child is None or not ahead._child.pid:
    time.sleep(0.05)
print(ahead._child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_a_run_whose_server_was_killed_ends_itself(tmp_path, paused):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    eng = _engine(url)
    server = subprocess.Popen([sys.executable, "-c", KILLED, url, str(ROOT), str(SCENARIO)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        pid = int(server.stdout.readline())
        _wait(lambda: os.getpgid(pid) == pid and len(_members(pid)) == 2, 30)
        if paused:  # stopped, it cannot watch its parent: the kernel hangs up the orphaned, stopped group
            _running(eng)
            _wait(lambda: set(_members(pid).values()) == {"T"}, 10)
        eng.db.dispose()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    assert _wait(lambda: _group_gone(pid), 15)


def test_a_run_made_ahead_sees_its_server_gone_even_if_it_died_before_the_run_first_looked():
    """The run watches for its parent changing from the one it started under; a server that died between the fork and
    that first look left it a parent that never changes, so it also looks for the server itself."""
    from carepath.simulate_ahead import _orphaned

    here, parent = os.getpid(), os.getppid()
    assert not _orphaned(parent, here) and not _orphaned(parent, None)  # the server there: the run goes on
    assert _orphaned(parent + 1, here)  # handed to another parent: the forkserver, or the server, ended
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)  # ended and reaped: its id names no process now
    assert _orphaned(parent, gone.pid)  # the parent it started under, but that server gone: it ends itself


def test_the_app_makes_the_runs_after_it_starts_and_stops_with_it(live, monkeypatch):
    from fastapi.testclient import TestClient

    from api.app import create_app

    monkeypatch.setenv("CAREPATH_SIMULATION_SCENARIO", str(SCENARIO))
    monkeypatch.setenv("CAREPATH_SIMULATION_AHEAD", "2x2")
    monkeypatch.setattr(simulate_ahead, "POLL_S", 0.5)
    app = create_app(live, run_timers=False, simulations_ahead=True)
    with TestClient(app):
        _wait(lambda: _kept_keys(live) == _keys(live, 2, [1, 2]), 120)
        ahead = app.state.simulations_ahead
    assert ahead._stop.is_set() and not ahead._thread.is_alive()
    # off: nothing is made
    with live.db.transaction() as conn:
        conn.execute(simulation_outputs.delete())
    monkeypatch.setenv("CAREPATH_SIMULATION_AHEAD", "off")
    app = create_app(live, run_timers=False, simulations_ahead=True)
    with TestClient(app):
        time.sleep(3)
        assert app.state.simulations_ahead is None
    assert _kept_keys(live) == set()
    monkeypatch.setenv("CAREPATH_SIMULATION_AHEAD", "a year")
    with pytest.raises(CarepathError, match="CAREPATH_SIMULATION_AHEAD"):
        create_app(live, run_timers=False, simulations_ahead=True)


def test_a_draft_saved_on_a_running_server_has_its_runs_made_at_once_not_at_the_next_poll(live, monkeypatch):
    from fastapi.testclient import TestClient

    from api.app import create_app

    eng = live
    monkeypatch.setenv("CAREPATH_SIMULATION_SCENARIO", str(SCENARIO))
    monkeypatch.setenv("CAREPATH_SIMULATION_AHEAD", "1x1")
    monkeypatch.setattr(simulate_ahead, "POLL_S", 600.0)  # the next poll would be in ten minutes
    app = create_app(eng, run_timers=False, simulations_ahead=True)
    with TestClient(app):
        _wait(lambda: _kept_keys(eng) == _keys(eng, 1, [1]), 120)  # the live run, when the server starts
        ids = make_drafts(eng)  # two drafts saved: their runs are made now
        wanted = _keys(eng, 1, [1]) | _draft_keys(eng, ids["same"], 1, [1]) | _draft_keys(eng, ids["changed"], 1, [1])
        _wait(lambda: _kept_keys(eng) == wanted, 120)


def test_the_review_page_says_which_live_runs_are_ready_and_which_is_being_made(live):
    from api.simulation_pages import ahead_text

    eng = live
    ahead = Ahead(eng, SCENARIO, [(2, 2), (1, 1)])
    assert ahead_text(None) is None  # this server does not make them: nothing said
    start = "The live version's runs are made in the background after each deployment"
    text = ahead_text(ahead)
    assert text.startswith(start) and text.endswith(
        ": 2 days with seeds 1 and 2 (none ready yet); 1 day with seed 1 (none ready yet).")
    assert ahead._take("2:2")
    assert ahead_text(ahead).endswith(
        ": 2 days with seeds 1 and 2 (none ready yet, seed 2 being made); 1 day with seed 1 (none ready yet).")
    ahead._release()
    Ahead(eng, SCENARIO, [(2, 1)]).pass_once()
    assert ahead_text(ahead).endswith(
        ": 2 days with seeds 1 and 2 (seed 1 ready); 1 day with seed 1 (none ready yet).")
    ahead.pass_once()
    assert ahead_text(ahead).endswith(": 2 days with seeds 1 and 2 (all ready); 1 day with seed 1 (all ready).")
    _redeploy_safeguarding(eng)  # a deployment: the runs of the versions before are not the live ones any more
    assert ahead_text(ahead).endswith(
        ": 2 days with seeds 1 and 2 (none ready yet); 1 day with seed 1 (none ready yet).")
