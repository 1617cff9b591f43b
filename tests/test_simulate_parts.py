"""One simulation's cases shared between two processes (issue 16 item 5, carepath/simulate.py "a run on two
processes", docs/simulation.md "Both cores"), and the hand-off that makes it possible.

The two processes run the same event loop with the same draws; each steps only its own contacts' cases and sends
what its steps did to the other; a new task reaches its team's queue a hand-off (`handoff_minutes`) after the step
that made it, so neither process needs the other's latest step. The output must be the same as one process's,
byte for byte; a process that fails or vanishes must end the run with a message, not a hang.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from carepath import cli, simulate
from engine.errors import CarepathError
from engine.schema import events

ROOT = Path(__file__).resolve().parent.parent


def _text(out: dict) -> str:
    return json.dumps(out, sort_keys=True, default=str)


def test_two_processes_give_byte_for_byte_the_output_of_one():
    # the default scenario (every route) for four days: starts, completions, timers, withdrawn tasks, budgets
    # and measures, with the cases of odd contacts stepped in the second process
    sc = simulate.load_scenario()
    one = simulate.simulate(sc, days=4, seed=3)
    two = simulate.simulate(sc, days=4, seed=3, parts=2)
    assert one["contacts"] > 200 and sum(t["done"] for t in one["teams"].values()) > 300
    assert [m for m in one["measures"] if m["denominator"]], one["measures"]  # cases of both processes counted
    assert one["processes"]["front_door"].get("completed", 0) > 50
    assert _text(two) == _text(one)


def test_two_processes_give_the_output_of_one_with_the_scenarios_own_answers_to_the_contact_form(tmp_path):
    # the scenario's contact answers are drawn in both processes, for every case, as the person's are
    text = (ROOT / "processes" / "config" / "simulation.yaml").read_text().replace("forms:\n", (
        "forms:\n  contact:\n    reablement_appropriate: {true: 0.5, false: 0.5}\n"
        "    reablement_not_appropriate_because: {long_term_condition: 0.5, other: 0.5}\n"), 1)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    sc = simulate.load_scenario(path)
    one, two = simulate.simulate(sc, days=3, seed=3), simulate.simulate(sc, days=3, seed=3, parts=2)
    assert sum(one["processes"].get("reablement", {}).values()) > 10 and one["tasks_not_completed"] == {}
    assert _text(two) == _text(one)


@pytest.mark.parametrize("per_year", [0, 365])
def test_two_processes_of_which_one_holds_no_case_still_give_the_output_of_one(tmp_path, per_year):
    # no contact at all, or one (seed 9 draws one): the second process holds contact 1 and the first none
    path = tmp_path / "s.yaml"
    path.write_text(f"start: 2026-04-01\narrivals:\n  self: {{per_year: {per_year}, process: front_door}}\n")
    sc = simulate.load_scenario(path)
    one, two = simulate.simulate(sc, days=1, seed=9), simulate.simulate(sc, days=1, seed=9, parts=2)
    assert one["contacts"] == (0 if per_year == 0 else 1)
    assert "~part" not in two["processes"] and _text(two) == _text(one)


def test_a_task_reaches_its_teams_queue_only_a_hand_off_after_the_step_that_made_it(tmp_path):
    sc = simulate.load_scenario()
    sc.data["handoff_minutes"] = 90
    seen: list[tuple[str, datetime, datetime]] = []

    def look(eng):  # every task completed: when it became ready and when it was completed
        with eng.db.engine.connect() as conn:
            ready, done = {}, {}
            for typ, data, at in conn.execute(select(events.c.type, events.c.data, events.c.at)
                                              .where(events.c.type.in_(("task.ready", "task.completed")))):
                tid = json.loads(data).get("task_id")
                (ready if typ == "task.ready" else done)[tid] = datetime.fromisoformat(at.replace("Z", "+00:00"))
        seen.extend((tid, ready[tid], at) for tid, at in done.items() if tid in ready)

    out = simulate.simulate(sc, days=2, seed=4, inspect=look)
    assert len(seen) > 100 and sum(t["done"] for t in out["teams"].values()) > 100
    # the team took it no sooner than 90 minutes after it was made, and then worked on it
    assert min(done - ready for _, ready, done in seen) >= timedelta(minutes=90)
    quick = dict(sc.data, handoff_minutes=1)
    faster = simulate.simulate(simulate.Scenario(quick, sc.lines, sc.source), days=2, seed=4)
    # a shorter hand-off: the front door's contacts are taken sooner
    assert faster["teams"]["front_door"]["wait_hours_p50"] < out["teams"]["front_door"]["wait_hours_p50"]


@pytest.mark.parametrize("value", [0, 1441, "an hour", True, 2.5])
def test_a_hand_off_outside_1_to_1440_whole_minutes_is_refused_naming_its_line(tmp_path, value):
    path = tmp_path / "s.yaml"
    path.write_text(f"arrivals:\n  self: {{per_year: 10}}\nhandoff_minutes: {json.dumps(value)}\n")
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.check_scenario(simulate.load_scenario(path), processes={"front_door"}, forms=set(), teams=set())
    assert "s.yaml line 3 (handoff_minutes): handoff_minutes must be a whole number of minutes from 1 to 1440" \
        in str(err.value)


def vanish_in_the_second_process(task, answers, rng):
    """A policy that ends the second process outright (as a crash or a kill would) at its first screening."""
    import multiprocessing

    if multiprocessing.current_process().name == "carepath-simulate-2":
        os._exit(3)
    return {}


def fail_in_the_second_process(task, answers, rng):
    import multiprocessing

    if multiprocessing.current_process().name == "carepath-simulate-2":
        raise RuntimeError("only over there")
    return {}


@pytest.mark.parametrize("policy,message", [
    ("vanish_in_the_second_process", "the simulation's other process ended without a word"),
    ("fail_in_the_second_process", "the policy raised RuntimeError: only over there"),
])
def test_when_the_second_process_fails_the_run_ends_with_its_message(tmp_path, capsys, policy, message):
    sc = simulate.load_scenario()
    sc.data["forms"] = {**sc.data["forms"], "contact": {"policy": f"tests.test_simulate_parts:{policy}"}}
    with pytest.raises(CarepathError) as err:
        simulate.simulate(sc, days=2, seed=1, parts=2)
    assert message in str(err.value)


def test_a_second_process_that_cannot_be_started_leaves_the_run_to_one_process_saying_why(monkeypatch, caplog):
    """The run is made again in one process, with the output two would have given, and the operator is told why."""
    from carepath import forked

    real = forked.process
    tried = []

    def unstartable(*args, **kw):  # as when the system has no process or file descriptor left to give
        proc = real(*args, **kw)

        def refuse():
            tried.append(1)
            raise OSError("Resource temporarily unavailable")

        proc.start = refuse
        return proc

    scenario = simulate.load_scenario()
    one = simulate.simulate(scenario, days=2, seed=1, parts=1)
    monkeypatch.setattr(forked, "process", unstartable)
    with caplog.at_level(logging.WARNING, logger="carepath.simulation"):
        alone = simulate.simulate(scenario, days=2, seed=1, parts=2)
    assert tried == [1]  # the second process was asked for once, and the run went on without it
    assert alone["contacts"] > 0 and _text(alone) == _text(one)
    assert "second process could not be started (OSError: Resource temporarily unavailable): the run is made " \
        "again in one process" in caplog.text
    monkeypatch.setattr(forked, "process", real)  # and the next run starts it as usual
    assert _text(simulate.simulate(scenario, days=2, seed=1, parts=2)) == _text(one)


def test_a_second_process_whose_start_failed_is_told_apart_from_one_that_died():
    """What the reader of the other process's pipe says: a start that failed (the run is made again alone) or a
    process that went away mid-run (the run fails, saying so)."""
    import multiprocessing

    ours, theirs = multiprocessing.Pipe()
    theirs.close()
    peer = simulate._Peer(ours, not_started=["OSError: Resource temporarily unavailable"])
    with pytest.raises(simulate.SecondNotStarted) as err:
        peer.wait_for(1)
    assert err.value.why == "OSError: Resource temporarily unavailable"
    ours, theirs = multiprocessing.Pipe()
    theirs.close()
    peer = simulate._Peer(ours)
    with pytest.raises(CarepathError) as err:
        peer.wait_for(1)
    assert not isinstance(err.value, simulate.SecondNotStarted)
    assert "the simulation's other process ended without a word" in str(err.value)


def test_the_command_shares_a_run_between_two_processes_and_refuses_three(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("start: 2026-04-01\ndays: 2\nseed: 2\narrivals:\n  self: {per_year: 3000, process: front_door}\n"
                    "weekday: [1, 1, 1, 1, 1, 1, 1]\n")
    db = f"sqlite:///{tmp_path / 'absent.db'}"
    assert cli.main(["--db", db, "--json", "simulate", "--scenario", str(path), "--processes", "2"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert cli.main(["--db", db, "--json", "simulate", "--scenario", str(path), "--processes", "1"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["contacts"] > 5 and _text(one) == _text(two)
    assert cli.main(["--db", db, "simulate", "--scenario", str(path), "--processes", "3"]) == 1
    assert "--processes must be 1 or 2, not 3" in capsys.readouterr().err


class _Clockwork:
    """Just enough of an engine for the event loop's hand-off: a clock and the tasks listener."""

    def __init__(self, now: datetime) -> None:
        self._now, self.listeners = now, []

    def now(self) -> datetime:
        return self._now

    def on_tasks_changed(self, fn) -> None:
        self.listeners.append(fn)


def _checked(tmp_path: Path, handoff: int = 60):
    path = tmp_path / "s.yaml"
    path.write_text(f"arrivals:\n  self: {{per_year: 10}}\nhandoff_minutes: {handoff}\n")
    return simulate.check_scenario(simulate.load_scenario(path), processes={"front_door"}, forms=set(), teams=set())


def test_tasks_handed_off_together_are_queued_by_time_then_contact_then_the_cases_own_order(tmp_path):
    t0 = datetime(2026, 4, 1, 9, tzinfo=simulate.UK)
    run = simulate._Run(_Clockwork(t0), _checked(tmp_path))
    at = t0 + timedelta(minutes=5)

    def row(tid, key):
        return (tid, "front_door", "screen", "front_door", None, at, key)

    # as the other process's steps arrive after this one's: contact 4's, then 3's (second step before its first),
    # then an earlier event's, then one too recent to hand off
    run.made = [(at, 4, 1, [row("d", 4)], []), (at, 3, 2, [row("c2", 3)], []), (at, 3, 1, [row("c1", 3)], []),
                (at - timedelta(minutes=1), 9, 1, [row("z", 9)], []),
                (t0 + timedelta(minutes=6), 2, 1, [row("edge", 2)], []),  # exactly a hand-off before: not yet
                (t0 + timedelta(minutes=30), 1, 1, [row("late", 1)], [])]
    run.handoff(4, t0 + timedelta(minutes=66))  # hands off what was made before 09:06
    assert [t.id for t in run.queues["front_door"]] == ["z", "c1", "c2", "d"]
    assert [t.key for t in run.queues["front_door"]] == [9, 3, 3, 4]
    assert [m[3][0][0] for m in run.made] == ["edge", "late"]  # kept for a later hand-off
    # one made and withdrawn before its hand-off is never queued; one withdrawn later is counted when done
    run.made = [(at, 5, 1, [row("gone", 5)], []), (at, 6, 1, [], ["gone"])]
    run.handoff(8, t0 + timedelta(minutes=90))
    assert "gone" not in [t.id for t in run.queues["front_door"]] and "gone" in run.gone


def test_diagrams_that_send_or_wait_for_messages_keep_a_run_in_one_process(tmp_path, monkeypatch):
    from engine.forms import FormLibrary
    from engine.runtime import Engine

    live = Engine(f"sqlite:///{tmp_path / 'live.db'}", forms=FormLibrary.from_folder(ROOT / "forms"))
    live.init()
    live.deploy([ROOT / "processes" / "front_door.bpmn", ROOT / "processes" / "screening.dmn"])
    plain = simulate.scratch_engine(live, simulate.date(2026, 4, 1))
    try:
        assert not simulate._uses_messages(plain)
    finally:
        plain.db.dispose()
    live.deploy([ROOT / "tests" / "fixtures" / "simulation_held.bpmn"])  # waits for a provider's message
    held = simulate.scratch_engine(live, simulate.date(2026, 4, 1))
    try:
        assert simulate._uses_messages(held)
    finally:
        held.db.dispose()
    path = tmp_path / "s.yaml"
    path.write_text("start: 2026-04-01\narrivals:\n  self: {per_year: 3000, process: front_door}\n")
    sc = simulate.load_scenario(path)
    spawned = []
    real = simulate._spawn_second

    def watched(*a, **kw):
        peer = real(*a, **kw)
        spawned.append(peer.process)
        return peer

    monkeypatch.setattr(simulate, "_spawn_second", watched)
    two = simulate.simulate(sc, source=live, days=1, seed=3, parts=2)
    one = simulate.simulate(sc, source=live, days=1, seed=3)
    assert one["contacts"] > 3 and _text(two) == _text(one)
    # the second process did not run its part: it was ended as soon as this process saw the diagrams (killed), or
    # it saw them first itself and returned (0; since its processes come warm from the forkserver it can be the
    # quicker). Had it begun its part, the pipe closed under it would have ended it with an error (1).
    assert len(spawned) == 1 and not spawned[0].is_alive() and spawned[0].exitcode in (0, -signal.SIGKILL)
    live.db.dispose()


def test_closing_the_pipe_while_the_other_process_still_sends_ends_the_reader_quietly(monkeypatch):
    """A run that ends (or fails) closes its pipe while the other process may still be sending hand-offs: the
    reader thread stops without an exception of its own (multiprocessing raised TypeError reading a closed pipe;
    the suite's warnings showed it once)."""
    import multiprocessing
    import threading
    import time as clock

    from carepath.simulate import _Peer

    errors: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(repr(args.exc_value)))
    for _ in range(40):
        ours, theirs = multiprocessing.Pipe()
        peer = _Peer(ours)

        def send(theirs: Any = theirs) -> None:
            try:
                for k in range(2000):
                    theirs.send(("handoff", k, []))
            except OSError:
                pass  # our end closed: a real second process would be ended by close() too

        sender = threading.Thread(target=send)
        sender.start()
        clock.sleep(0.002)
        peer.close()
        sender.join()
        theirs.close()
        peer.reader.join(timeout=5)
        assert not peer.reader.is_alive()
    assert errors == []


@pytest.mark.parametrize("days,told", [(15, [7, 14]), (14, [7])], ids=["a_day_past_two_weeks", "two_weeks_exactly"])
def test_a_run_says_how_far_it_has_come_at_each_simulated_week_s_end_and_gives_the_same_output(days, told):
    """`on_day` (the pages' "has simulated 7 of 15 days"): the whole days simulated at each week's end, not the
    end itself (a run of exactly two weeks has ended when its second week does); with one process or two alike,
    and the output is the run's without it."""
    sc = simulate.load_scenario(ROOT / "tests" / "fixtures" / "simulation_compare.yaml")
    seen: dict[int, list[int]] = {1: [], 2: []}
    outs = {n: simulate.simulate(sc, days=days, seed=2, parts=n, on_day=seen[n].append) for n in (1, 2)}
    assert seen[1] == seen[2] == told
    assert _text(outs[1]) == _text(outs[2]) == _text(simulate.simulate(sc, days=days, seed=2))


def test_the_personal_budgets_decided_in_the_run_are_counted_and_summed():
    """The budgets the run's cases hold (handlers/budget.py writes money as text, "49909.09") are the report's count,
    total and mean, on one process and on two alike."""
    sc = simulate.load_scenario()
    held: list[float] = []

    def inspect(eng) -> None:
        from engine.schema import cases
        with eng.db.engine.connect() as conn:
            for (data,) in conn.execute(cases.select().with_only_columns(cases.c.data)):
                pb = json.loads(data).get("personal_budget")
                if isinstance(pb, dict) and "final_amount" in pb:
                    held.append(float(pb["final_amount"]))

    one = simulate.simulate(sc, days=30, seed=1, inspect=inspect)
    pb = one["personal_budgets"]
    assert len(held) >= 5 and pb["count"] == len(held)
    assert pb["total"] == round(math.fsum(held), 2) > 0 and pb["mean"] == round(math.fsum(held) / len(held), 2)
    assert simulate.simulate(sc, days=30, seed=1, parts=2)["personal_budgets"] == pb


@pytest.mark.parametrize("value,amount", [("49909.09", 49909.09), (" 120.5 ", 120.5), (300, 300.0), (12.25, 12.25),
                                          ("0", 0.0), ("", None), ("NaN", None), ("Infinity", None), ("-5", None),
                                          (True, None), (None, None), ("£12", None), ([1], None)])
def test_a_budgets_amount_is_read_as_money(value, amount):
    assert simulate._money(value) == amount
