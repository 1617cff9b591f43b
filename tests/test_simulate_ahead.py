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
from sqlalchemy import insert, select

from carepath import simulate, simulate_ahead, simulate_compare
from carepath.simulate_ahead import Ahead, plan_from_env, wanted
from carepath.simulate_reuse import KeptRuns, run_key
from engine import drafts
from engine.errors import CarepathError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import simulation_ahead, simulation_outputs, simulation_runs
from engine.trial import deployed_rows
from tests.test_simulate_compare import AN_HOUR, DEADLINE_OF_DAY, ROOT, SCENARIO, live_files, make_drafts

FILES = ("front_door.bpmn", "screening.dmn", "safeguarding.bpmn")


def _engine(url: str) -> Engine:
    eng = Engine(url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    eng.deploy([ROOT / "processes" / n for n in FILES])
    return eng


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
        live, monkeypatch):
    eng = live
    ids = make_drafts(eng)
    scenario = simulate.load_scenario(SCENARIO)
    ahead = Ahead(eng, SCENARIO, [(2, 2)])
    assert ahead.pass_once() == 2
    assert [(m["days"], m["seed"]) for m in ahead.made] == [(2, 1), (2, 2)]
    assert all(m["nice"] == 19 for m in ahead.made), ahead.made  # made at the lowest priority
    assert _kept_keys(eng) == _keys(eng, 2, [1, 2])
    assert _lease(eng) == []  # given up after the pass
    assert ahead.pass_once() == 0  # nothing missing: nothing made

    made: list[tuple[str, int]] = []
    real = simulate_compare._one_run

    def counted(scenario, rows, days, seed, start=False, inspect=None, parts=1):
        made.append(seed)
        return real(scenario, rows, days, seed, start, inspect, parts)

    monkeypatch.setattr(simulate_compare, "_one_run", counted)
    changed = drafts.get_draft(eng, ids["changed"])
    taken = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1, kept=KeptRuns(eng))
    assert taken["reused"] == {"live": [1, 2], "draft": []} and made == [1, 2]  # only the draft's two runs made
    with eng.db.transaction() as conn:
        conn.execute(simulation_outputs.delete())
    fresh = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1)
    assert json.dumps({k: v for k, v in taken.items() if k != "reused"}, sort_keys=True) == json.dumps(
        fresh, sort_keys=True)  # the very figures of a comparison that made every run


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


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_stopping_the_server_kills_the_run_being_made_and_keeps_nothing(live):
    eng = live
    ahead = Ahead(eng, SCENARIO, [(365, 1)])
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(ahead.pass_once()))
    thread.start()
    child = _wait(lambda: ahead._child)
    pgid = _wait(lambda: child.pid and os.getpgid(child.pid) == child.pid and child.pid)
    assert _lease(eng)[0].making == "365:1"
    ahead.stop()
    thread.join(10)
    assert result == [0] and _kept_keys(eng) == set() and _lease(eng) == []
    assert _wait(lambda: _group_gone(pgid), 10)  # the run and its second part


def test_a_deployment_while_a_run_is_made_stops_it(live):
    eng = live
    ahead = Ahead(eng, SCENARIO, [(365, 1)], beat_s=0.2)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(ahead.pass_once()))
    thread.start()
    child = _wait(lambda: ahead._child)
    pgid = _wait(lambda: child.pid and os.getpgid(child.pid) == child.pid and child.pid)
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
    ahead.user_check_s = 0.2
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(ahead.pass_once()))
    thread.start()
    child = _wait(lambda: ahead._child)
    pgid = _wait(lambda: child.pid and os.getpgid(child.pid) == child.pid and child.pid)
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
