"""Comparing a draft with the live version on the same synthetic caseload (carepath/simulate_compare.py,
`carepath simulate --compare-draft`, docs/simulation.md "Comparing a draft").

One live database a module (the real front door, screening and safeguarding), a draft identical to the live
safeguarding process and one whose triage deadline is an hour after the concern's task appears instead of the
end of the next working day; a small scenario of safeguarding concerns (tests/fixtures/simulation_compare.yaml)
over 2-3 days, so each run takes about a second.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pytest

from carepath import cli, simulate, simulate_compare
from engine import definitions, drafts
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "tests" / "fixtures" / "simulation_compare.yaml"
TRIAGE = "breaches/safeguarding/triage_overdue"
DEADLINE_OF_DAY = b'<bpmn:timeDate xsi:type="bpmn:tFormalExpression">triage_due["due"]</bpmn:timeDate>'
AN_HOUR = b'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT1H"</bpmn:timeDuration>'


def live_files(eng, process_id: str) -> dict[str, bytes]:
    with eng.db.engine.connect() as conn:
        return drafts.version_files(conn, definitions.latest_version(conn, process_id))


def make_drafts(eng) -> dict[str, int]:
    """A draft the same as the live safeguarding process, and one whose triage deadline is an hour."""
    files = live_files(eng, "safeguarding")
    assert DEADLINE_OF_DAY in files["safeguarding.bpmn"]
    text = {k: v.decode() for k, v in files.items()}
    hour = {**text, "safeguarding.bpmn": files["safeguarding.bpmn"].replace(DEADLINE_OF_DAY, AN_HOUR).decode()}
    same = drafts.create_draft(eng, process_id="safeguarding", files=text, base_version=None, actor="process-owner")
    changed = drafts.create_draft(eng, process_id="safeguarding", files=hour, base_version=None,
                                  actor="process-owner", note="triage within the hour")
    return {"same": same["id"], "changed": changed["id"]}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    path = tmp_path_factory.mktemp("simcompare") / "live.db"
    eng = Engine(f"sqlite:///{path}", registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    eng.deploy([ROOT / "processes" / n for n in ("front_door.bpmn", "screening.dmn", "safeguarding.bpmn")])
    ids = make_drafts(eng)
    yield eng, path, ids
    eng.db.dispose()


def test_the_rule_marks_a_difference_only_when_it_is_bigger_than_its_margin():
    same = simulate_compare.judge([3.0, 5.0, 4.0], [3.0, 5.0, 4.0])
    assert same["difference"] == 0 and same["spread"] == 0 and same["margin"] == 0 and same["marked"] is False
    steady = simulate_compare.judge([3.0, 5.0, 4.0], [8.0, 11.0, 8.0])  # +5, +6, +4: mean 5, SD 1, 2 SD = 2
    assert steady["difference"] == 5 and steady["spread"] == 2 and steady["marked"] is True
    assert steady["margin"] == pytest.approx(4.3027 / math.sqrt(3), abs=1e-4)  # t(0.975, 2) SD / sqrt(3)
    noisy = simulate_compare.judge([3.0, 5.0, 4.0], [9.0, 2.0, 4.0])  # +6, -3, 0: mean 1
    assert noisy["marked"] is False and noisy["margin"] > abs(noisy["difference"])
    one = simulate_compare.judge([3.0, None], [9.0, 4.0])  # one pair: no spread, nothing marked
    assert one["spread"] is None and one["margin"] is None and one["marked"] is False
    assert one["live_mean"] == 3 and one["draft_mean"] == 6.5
    # two seeds that roughly agree (+5, +7) are not enough: 2 SD (2.83) is passed, the margin (12.7) is not
    two = simulate_compare.judge([0.0, 0.0], [5.0, 7.0])
    assert two["difference"] == 6 and two["spread"] < 6 < two["margin"] and two["marked"] is False
    # five seeds find a change that 2 SD (3.16) would hide: +2, 0, +3, +1, +4, margin 1.96
    five = simulate_compare.judge([0.0] * 5, [2.0, 0.0, 3.0, 1.0, 4.0])
    assert five["margin"] < five["difference"] == 2 < five["spread"] and five["marked"] is True
    # the last seed counts: the same differences and one more against them are not marked
    assert simulate_compare.judge([0.0] * 6, [2.0, 0.0, 3.0, 1.0, 4.0, -3.0])["marked"] is False


@pytest.mark.parametrize("seeds", [2, 3, 5, 10, simulate_compare.MAX_SEEDS])
def test_a_figure_the_draft_does_not_change_is_marked_about_one_time_in_twenty(seeds):
    """Runs that differ only by chance (paired differences drawn around 0): about 5% of figures are marked, whatever
    the number of seeds (the rule of 2 SD marked 22% with 2 seeds and 1% with 5)."""
    rng = random.Random(seeds)
    trials = 4000
    marked = sum(simulate_compare.judge([0.0] * seeds, [rng.gauss(0, 3) for _ in range(seeds)])["marked"]
                 for _ in range(trials))
    assert 0.035 < marked / trials < 0.065, marked / trials


def test_the_margins_t_points_are_the_t_distributions():
    """Each T_975[df - 1] is where Student's t distribution with df degrees of freedom reaches 0.975 (Simpson's rule
    over its density from 0; the density's integral from 0 to infinity is 0.5)."""
    def cdf(t: float, df: int, steps: int = 20000) -> float:
        c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

        def f(x: float) -> float:
            return c * (1 + x * x / df) ** (-(df + 1) / 2)

        h = t / steps
        total = f(0) + f(t) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, steps))
        return 0.5 + total * h / 3

    assert len(simulate_compare.T_975) == simulate_compare.MAX_SEEDS - 1
    for df, t in enumerate(simulate_compare.T_975, start=1):
        assert cdf(t, df) == pytest.approx(0.975, abs=2e-5), df

def test_a_version_compared_with_itself_marks_no_difference(live):
    eng, _path, ids = live
    out = simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, drafts.get_draft(eng, ids["same"]),
                                   seeds=[1, 2], days=2)
    assert out["marked"] == 0 and out["contacts"]["live"] == out["contacts"]["draft"]
    assert out["contacts"]["live"][0] > 5 and out["contacts"]["live"][0] != out["contacts"]["live"][1]
    assert [r["difference"] for r in out["figures"] if r["difference"]] == []
    triage = next(r for r in out["figures"] if r["key"] == TRIAGE)
    assert triage["live"] == triage["draft"] and triage["spread"] == 0
    assert out["notes"] == []  # the safeguarding process was reached


def test_a_shorter_deadline_fires_more_often_and_the_difference_is_marked_by_the_command(live, capsys):
    eng, path, ids = live
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    code = cli.main(["--db", f"sqlite:///{path}", "--json", "simulate", "--compare-draft", str(ids["changed"]),
                     "--scenario", str(SCENARIO), "--days", "2", "--seeds", "3"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["seeds"] == [1, 2, 3] and out["days"] == 2
    assert out["draft"] == {"id": ids["changed"], "process_id": "safeguarding", "revision": 1}
    triage = next(r for r in out["figures"] if r["key"] == TRIAGE)
    # an hour instead of the next working day: the deadline is missed in every seed's run, and more than before
    assert all(d > 0 for d in triage["differences"]) and len(triage["differences"]) == 3
    assert triage["draft_mean"] > triage["live_mean"] + 5
    assert triage["marked"] is True and abs(triage["difference"]) > triage["spread"]
    assert out["marked"] >= 1
    # the escalations the draft's deadline raises are the team manager's work: that shows too
    assert next(r for r in out["figures"] if r["key"] == "teams/team_manager/done")["marked"] is True
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the live database was only read

    text = simulate_compare.compare_text(out)  # what the command prints without --json
    assert f"Draft {ids['changed']} of safeguarding against the live version: 2 days" in text
    line = next(x for x in text.splitlines() if "Safeguarding triage deadline missed" in x)
    assert line.endswith("bigger than chance") and "paired t-test at 5%" in text


def test_runs_in_worker_processes_give_the_same_comparison_as_one_after_the_other(live):
    """The runs of a comparison are shared among processes (both cores): the result must not depend on it."""
    eng, _path, ids = live
    draft = drafts.get_draft(eng, ids["changed"])
    seen: dict[int, list[tuple[int, int]]] = {1: [], 2: []}
    out = {n: simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, draft, seeds=[1, 2], days=2,
                                       workers=n, progress=lambda d, t, n=n: seen[n].append((d, t)))
           for n in (1, 2)}
    assert json.dumps(out[1], sort_keys=True, default=str) == json.dumps(out[2], sort_keys=True, default=str)
    assert out[2]["marked"] >= 1 and out[2]["contacts"]["live"][0] > 5
    assert seen[1] == seen[2] == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_the_number_of_worker_processes_is_checked(monkeypatch):
    monkeypatch.setenv(simulate_compare.WORKERS_ENV, "3")
    assert simulate_compare.workers_default() == 3
    for bad in ("0", "two", "65"):
        monkeypatch.setenv(simulate_compare.WORKERS_ENV, bad)
        with pytest.raises(simulate.ScenarioError, match="CAREPATH_SIMULATION_WORKERS must be a whole number"):
            simulate_compare.workers_default()


# A comparison whose first seed is refused, in worker processes: each run marks in a folder when it starts and
# ends (the folder named by MARKS_ENV, which the spawned workers inherit); the scenario's contact policy raises in
# seed 1's runs once a run of seed 2 has started, and every other run waits at its first contact until the folder
# holds a file "gate".
MARKS_ENV = "CAREPATH_TEST_RUN_MARKS"
_REAL_ONE_RUN = simulate_compare._one_run
_THIS_RUN: dict[str, int] = {}


def marked_run(scenario, rows, days, seed, start=False, inspect=None, **more):
    """simulate_compare._one_run, marking the run's start and end."""
    marks, name = Path(os.environ[MARKS_ENV]), f"{seed}-{uuid.uuid4().hex}"
    (marks / f"started-{name}").touch()
    _THIS_RUN.clear()
    _THIS_RUN["seed"] = seed
    try:
        return _REAL_ONE_RUN(scenario, rows, days, seed, start, inspect, **more)
    finally:
        (marks / f"ended-{name}").touch()


def _wait_for(found) -> None:
    for _ in range(300):  # at most 30 s: a comparison that waits for a gated run then ends (and fails the test)
        if found():
            return
        time.sleep(0.1)


def gated_policy(task, answers, rng):
    marks = Path(os.environ[MARKS_ENV])
    if _THIS_RUN["seed"] == 1:
        _wait_for(lambda: any(marks.glob("started-2-*")))
        raise RuntimeError("the process owner's policy broke")
    if not _THIS_RUN.get("gated"):  # once a run
        _THIS_RUN["gated"] = 1
        _wait_for((marks / "gate").exists)
    return {}


def test_a_refused_run_ends_the_comparison_at_once_without_starting_or_waiting_for_the_other_runs(
        live, tmp_path, monkeypatch):
    """Three workers, six seeds (twelve runs): seed 1's two runs are refused while seed 2's live run is still going
    (waiting at its first contact). The refusal comes back before that run ends, and no other run is started."""
    eng, _path, ids = live
    path = tmp_path / "refused.yaml"
    path.write_text(SCENARIO.read_text() + "forms:\n  contact:\n    policy: tests.test_simulate_compare:gated_policy\n")
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv(MARKS_ENV, str(marks))
    monkeypatch.setattr(simulate_compare, "_one_run", marked_run)
    handed: list[Future] = []

    class Pool(ProcessPoolExecutor):  # the runs handed out, kept to wait here for those the comparison left going
        def submit(self, *args, **kwargs):
            handed.append(super().submit(*args, **kwargs))
            return handed[-1]

    monkeypatch.setattr(simulate_compare, "ProcessPoolExecutor", Pool)

    def seeds(kind: str) -> list[str]:
        return sorted(p.name.split("-")[1] for p in marks.glob(f"{kind}-*"))

    try:
        with pytest.raises(simulate.ScenarioError, match="the policy raised RuntimeError: the process owner's policy"):
            simulate_compare.compare(simulate.load_scenario(path), eng, drafts.get_draft(eng, ids["changed"]),
                                     seeds=[1, 2, 3, 4, 5, 6], days=2, workers=3)
        assert "2" in seeds("started") and "2" not in seeds("ended")  # reported while seed 2's run still went on
    finally:
        (marks / "gate").touch()
        _wait_for(lambda: all(f.done() for f in handed))  # not wait(): a future cancelled by shutdown never wakes it
    # every run started has ended: only the three handed out at first (seed 1's two and seed 2's live run)
    assert seeds("started") == seeds("ended") == ["1", "1", "2"]


@pytest.mark.parametrize("args,message", [
    (["--seeds", "1"], "--seeds must be from 2 to 20"),
    (["--days", "0"], "days must be a whole number from 1 to 3660, not 0"),
    (["--compare-draft", "987654"], "987654"),
], ids=["one_seed", "no_days", "unknown_draft"])
def test_the_command_refuses_bad_input_with_a_message(live, capsys, args, message):
    _eng, path, ids = live
    argv = ["--db", f"sqlite:///{path}", "simulate", "--scenario", str(SCENARIO), "--compare-draft",
            str(ids["changed"]), *args]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_a_draft_that_drops_a_watched_deadline_is_refused_naming_it(live):
    eng, _path, _ids = live
    files = {k: v.decode() for k, v in live_files(eng, "safeguarding").items()}
    gone = files["safeguarding.bpmn"].replace("triage_overdue", "triage_late")  # the timer renamed
    draft = {"id": 0, "process_id": "safeguarding", "files": {**files, "safeguarding.bpmn": gone}}
    with pytest.raises(simulate.ScenarioError) as err:
        simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, draft, seeds=[1, 2], days=1)
    assert "with the draft's diagrams" in str(err.value)
    assert "no deployed diagram has a timer 'safeguarding/triage_overdue'" in str(err.value)


def test_a_draft_that_drops_a_task_the_scenario_times_is_refused_naming_it(live):
    # the scenario gives record_concern three hours' work; a draft without it would run it at the default half
    # hour and show a difference the draft did not make
    eng, _path, _ids = live
    files = {k: v.decode() for k, v in live_files(eng, "safeguarding").items()}
    gone = files["safeguarding.bpmn"].replace('"record_concern"', '"note_concern"').replace(  # the task renamed
        ">record_concern<", ">note_concern<")
    draft = {"id": 0, "process_id": "safeguarding", "files": {**files, "safeguarding.bpmn": gone}}
    with pytest.raises(simulate.ScenarioError) as err:
        simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, draft, seeds=[1, 2], days=1)
    assert str(err.value).startswith("with the draft's diagrams: simulation_compare.yaml line 15 "
                                     "(durations/tasks/record_concern): no deployed diagram has a user task "
                                     "'record_concern'")


# two user tasks made by one step (a parallel split), for two teams
PAIR = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="pair_defs" targetNamespace="http://carepath.test">
  <bpmn:process id="pair" name="Two at once" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:parallelGateway id="split"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:userTask id="a" name="A" camunda:formKey="sla_escalation" camunda:candidateGroups="front_door">
      <bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="b" name="B" camunda:formKey="sla_escalation" camunda:candidateGroups="finance">
      <bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>f5</bpmn:outgoing></bpmn:userTask>
    <bpmn:parallelGateway id="join"><bpmn:incoming>f4</bpmn:incoming><bpmn:incoming>f5</bpmn:incoming>
      <bpmn:outgoing>f6</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f6</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="split"/>
    <bpmn:sequenceFlow id="f2" sourceRef="split" targetRef="a"/>
    <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="b"/>
    <bpmn:sequenceFlow id="f4" sourceRef="a" targetRef="join"/>
    <bpmn:sequenceFlow id="f5" sourceRef="b" targetRef="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_two_tasks_one_step_makes_are_queued_in_the_same_order_every_run(tmp_path):
    """The tasks table's ids are random uuids: tasks made at the same instant were queued in a random order, so
    the same seed could give another run (and a draft identical to the live version showed differences)."""
    db = tmp_path / "pair.db"
    eng = Engine(f"sqlite:///{db}", registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    eng.deploy(files={"pair.bpmn": PAIR.encode()})
    try:
        path = tmp_path / "pair.yaml"
        path.write_text("start: 2026-04-01\narrivals:\n  self: {per_year: 9000, process: pair}\n"
                        "teams:\n  front_door: {staff: 1}\n  finance: {staff: 1}\n")
        sc = simulate.load_scenario(path)
        first, again = (simulate.simulate(sc, source=eng, days=1, seed=5) for _ in range(2))
    finally:
        eng.db.dispose()
    assert first["processes"]["pair"]["completed"] >= 5  # both tasks of several contacts were done
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(again, sort_keys=True, default=str)


# ---------------------------------------------------------------------- from today's open cases (--from-live)
def _copy(eng) -> dict:
    """The carried-over rows of a scratch database right after the copy, each instance with its version's content
    rather than its number (a draft run numbers its versions differently)."""
    from sqlalchemy import text

    def rows(sql: str) -> list:
        with eng.db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql))]

    return json.loads(json.dumps({
        "cases": rows("select id, reference, title, data, created_at from cases order by id"),
        "instances": rows("select i.id, i.case_id, i.process_id, i.status, i.state, v.process_id as version_of, "
                          "v.version, v.content_sha256 from instances i join process_versions v "
                          "on v.id = i.process_version_id order by i.id"),
        "tasks": rows("select id, instance_id, element_id, team, created_at from tasks order by id"),
        "timers": rows("select task_id, instance_id, element_id, due_at from timers order by task_id"),
        "messages": rows("select id, key, name, case_id, status, correlation, data, expires_at from messages")},
        default=str))


def _main_file(eng, instance_id: int) -> bytes:
    """The diagram an instance of the scratch database runs (its version's main file)."""
    from sqlalchemy import select

    from engine.schema import definition_files, instances, process_versions

    with eng.db.engine.connect() as conn:
        pv = conn.execute(select(process_versions).join(instances, instances.c.process_version_id ==
                                                        process_versions.c.id)
                          .where(instances.c.id == instance_id)).one()
        return bytes(conn.execute(select(definition_files.c.content).where(
            definition_files.c.id.in_(json.loads(pv.file_ids)), definition_files.c.name == pv.main_file)).scalar_one())


@pytest.fixture(scope="module")
def held_live(tmp_path_factory):
    """tests/simulation_held_world.py's live database (open safeguarding concerns, one suspended, an instance in
    error, a message waiting) with the drafts of the safeguarding process."""
    from tests import simulation_held_world as hw

    path = tmp_path_factory.mktemp("simcompare_live") / "live.db"
    hw.build(f"sqlite:///{path}")
    eng = Engine(f"sqlite:///{path}", registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    ids = make_drafts(eng)
    yield eng, path, ids, hw
    eng.db.dispose()


def test_from_live_both_versions_of_every_seed_start_from_one_copy_of_todays_open_cases(held_live, monkeypatch):
    from carepath import simulate_today

    eng, path, ids, hw = held_live
    before = hw.state(path)
    reads, copies, runs = [], [], {}
    read_live, copy_into = simulate_today.read_live, simulate_today.LiveStart.copy_into

    def counted_read(*args, **kwargs):
        reads.append(1)
        return read_live(*args, **kwargs)

    def recorded_copy(self, scratch):
        copy_into(self, scratch)
        copies.append(_copy(scratch))

    def inspect(side, seed, scratch):
        from sqlalchemy import text

        with scratch.db.engine.connect() as conn:
            tables = [r[0] for r in conn.execute(text("select name from sqlite_master where type='table'"))]
            dump = json.dumps({t: [list(r) for r in conn.execute(text(f'select * from "{t}"'))] for t in tables},
                              default=str)
            guarding = [r[0] for r in conn.execute(text(
                "select id from instances where process_id = 'safeguarding' order by id"))]
        runs[side, seed] = {"dump": dump, "carried": [(i, _main_file(scratch, i)) for i in guarding if i <= 6],
                            "new": [(i, _main_file(scratch, i)) for i in guarding if i > 6]}

    monkeypatch.setattr(simulate_today, "read_live", counted_read)
    monkeypatch.setattr(simulate_today.LiveStart, "copy_into", recorded_copy)
    out = simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, drafts.get_draft(eng, ids["changed"]),
                                   seeds=[1, 2], days=2, from_live=True, inspect=inspect)
    # the live database read once, and the same copy (cases, instances at their versions, tasks, timers,
    # messages) in each of the four runs' scratch databases
    assert len(reads) == 1 and len(copies) == 4 and all(c == copies[0] for c in copies[1:])
    statuses = sorted(i["status"] for i in copies[0]["instances"])
    assert statuses == ["error", "suspended", "waiting", "waiting", "waiting", "waiting"]
    assert len(copies[0]["cases"]) == 6 and len(copies[0]["messages"]) == 1
    # in the draft's runs the three carried-over concerns stay on the live version (its triage deadline the end
    # of the next working day); the concerns the run starts take the draft (an hour)
    assert sorted(runs) == [("draft", 1), ("draft", 2), ("live", 1), ("live", 2)]
    for (side, _seed), run in runs.items():
        assert len(run["carried"]) == 3 and all(DEADLINE_OF_DAY in f and AN_HOUR not in f for _i, f in run["carried"])
        assert run["new"], "the scenario's concerns reached the safeguarding process"
        assert all((AN_HOUR if side == "draft" else DEADLINE_OF_DAY) in f for _i, f in run["new"])
    c = out["carried_over"]
    assert (c["cases"], c["instances"], c["tasks"], c["timers"], c["on_live_version"]) == (6, 6, 4, 2, 3)
    assert c["suspended"]["instances"] == 1 and c["in_error"]["instances"] == 1 and c["messages"]["waiting"] == 1
    assert len(c["live"]["tasks_completed"]) == 2 and len(c["draft"]["messages_delivered"]) == 2
    assert any("3 instances of 'safeguarding' already running live" in n for n in out["notes"])
    # the shorter deadline still shows, on the concerns the run starts
    triage = next(r for r in out["figures"] if r["key"] == TRIAGE)
    assert triage["draft_mean"] > triage["live_mean"]
    # nothing personal in any run's database; the live database untouched, byte for byte and row for row
    found = {p for run in runs.values() for p in hw.PERSONAL if p.lower() in run["dump"].lower()}
    assert found == set()
    assert hw.state(path) == before


def test_the_command_compares_a_draft_from_today_and_says_so(held_live, capsys):
    _eng, path, ids, hw = held_live
    before = hw.state(path)
    code = cli.main(["--db", f"sqlite:///{path}", "--json", "simulate", "--compare-draft", str(ids["changed"]),
                     "--from-live", "--scenario", str(SCENARIO), "--days", "1", "--seeds", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["carried_over"]["cases"] == 6 and out["carried_over"]["from"].startswith("2026-03-12T09:00")
    assert out["start"] == "2026-03-12" and out["seeds"] == [1, 2]
    text = simulate_compare.compare_text(out)
    assert "Both versions start from the same anonymised copy of the live database's open work at 2026-03-12" in text
    assert "6 cases, 6 process instances (1 suspended, 1 in error, held as they are), 4 open tasks, 2 timers, " \
           "1 message waiting for a receiver" in text
    assert hw.state(path) == before


def test_from_live_a_version_compared_with_itself_still_marks_no_difference(held_live):
    """The copy starts both runs alike: with a draft the same as the live version, every figure is the same."""
    eng, _path, ids, _hw = held_live
    out = simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, drafts.get_draft(eng, ids["same"]),
                                   seeds=[1, 2], days=1, from_live=True)
    assert out["marked"] == 0 and [r["key"] for r in out["figures"] if r["difference"]] == []
    assert out["carried_over"]["live"] == out["carried_over"]["draft"]
    assert out["contacts"]["live"] == out["contacts"]["draft"]


def test_from_live_the_first_results_say_what_they_started_from(held_live):
    """The first results of a comparison from today's open cases carry what the whole one says of its start: the
    copy's counts, the first seed's own figures of what each version did with it, and the note on the instances that
    stay on the live version."""
    eng, _path, ids, _hw = held_live
    firsts: list[dict] = []
    out = simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, drafts.get_draft(eng, ids["changed"]),
                                   seeds=[1, 2], days=1, workers=1, from_live=True, first=firsts.append)
    assert len(firsts) == 1 and firsts[0]["first_results"] == {"seeds_done": [1], "seeds": [1, 2]}
    carried, whole = firsts[0]["carried_over"], out["carried_over"]
    assert carried["from"] == whole["from"] and carried["cases"] == whole["cases"] > 0
    assert carried["on_live_version"] == whole["on_live_version"] > 0
    for side in ("live", "draft"):
        assert carried[side] == {k: v[:1] for k, v in whole[side].items()}
    assert firsts[0]["notes"] == out["notes"] and "already running live were carried over" in out["notes"][0]


def test_a_comparison_says_how_far_its_runs_have_come_here_and_from_its_worker_processes(live):
    """`on_days`: the runs being made and the whole days each has simulated, at each simulated week's end, a run
    left out once it has ended; from runs made here (one worker) in order, and read from the worker processes'
    shared slots every second (two)."""
    eng, _path, ids = live
    draft = drafts.get_draft(eng, ids["changed"])
    seen: dict[int, list[dict]] = {1: [], 2: []}
    for n in (1, 2):
        simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, draft, seeds=[1], days=36, workers=n,
                                 on_days=lambda reached, n=n: seen[n].append(reached))
    weeks = [7, 14, 21, 28, 35]
    assert seen[1] == ([{("live", 1): d} for d in weeks] + [{}]
                       + [{("draft", 1): d} for d in weeks] + [{}])
    told = [(run, d) for reached in seen[2] for run, d in reached.items()]
    assert {run for run, _d in told} == {("live", 1), ("draft", 1)}, seen[2]  # both runs were seen under way
    assert all(d in weeks for _run, d in told) and seen[2][-1] == {}
    for run in (("live", 1), ("draft", 1)):  # each run's days only go forward
        days = [d for r, d in told if r == run]
        assert days == sorted(days)
