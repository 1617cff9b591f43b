"""Runs of a simulation kept for reuse (carepath/simulate_reuse.py, `simulation_outputs`, migration 0026;
docs/simulation.md "Runs kept for reuse").

A comparison takes the runs already made with the same deployed versions, scenario, period, seed and code from the
database instead of making them again, and gives the very figures it would have made; anything a run depends on
changes its key; what cannot be kept is not; a row that does not read back is run again; the ones used longest ago
go first. On both databases (the outputs table), with the small safeguarding scenario of the comparison tests.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import OperationalError

from carepath import simulate, simulate_compare, simulate_reuse
from carepath.simulate_reuse import KeptRuns, code_fingerprint, run_key
from engine import drafts
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import simulation_outputs
from engine.trial import deployed_rows
from tests.test_simulate_compare import ROOT, SCENARIO, TRIAGE, live_files, make_drafts

OUT = simulation_outputs.c


@pytest.fixture(scope="module")
def live(module_db_url):
    eng = Engine(module_db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    eng.deploy([ROOT / "processes" / n for n in ("front_door.bpmn", "screening.dmn", "safeguarding.bpmn")])
    ids = make_drafts(eng)
    yield eng, ids
    eng.db.dispose()


@pytest.fixture
def kept(live):
    eng = live[0]
    with eng.db.transaction() as conn:
        conn.execute(simulation_outputs.delete())
    yield KeptRuns(eng)
    with eng.db.transaction() as conn:
        conn.execute(simulation_outputs.delete())


def _without_reused(out: dict) -> str:
    return json.dumps({k: v for k, v in out.items() if k != "reused"}, sort_keys=True, default=str)


def _stored(eng) -> list:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(OUT.key, OUT.uses, OUT.used_at).order_by(OUT.key)).all()


def test_a_comparison_asked_again_takes_its_kept_runs_and_gives_the_same_figures(live, kept, made):
    eng, ids = live
    scenario = simulate.load_scenario(SCENARIO)
    changed = drafts.get_draft(eng, ids["changed"])
    fresh = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1)  # nothing kept
    assert "reused" not in fresh and len(made) == 4 and _stored(eng) == []

    first = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1, kept=kept)
    assert first["reused"] == {"live": [], "draft": []} and len(made) == 8
    assert len(_stored(eng)) == 4  # each run made is kept
    assert _without_reused(first) == _without_reused(fresh)

    again = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1, kept=kept)
    assert again["reused"] == {"live": [1, 2], "draft": [1, 2]} and len(made) == 8  # no run made
    assert _without_reused(again) == _without_reused(fresh)
    triage = next(r for r in again["figures"] if r["key"] == TRIAGE)
    assert triage["marked"] is True  # the figures a process owner reads, not an empty shell
    assert [r.uses for r in _stored(eng)] == [1, 1, 1, 1]


def test_another_draft_of_the_process_runs_only_its_own_runs(live, kept, made):
    eng, ids = live
    scenario = simulate.load_scenario(SCENARIO)
    simulate_compare.compare(scenario, eng, drafts.get_draft(eng, ids["changed"]), seeds=[1, 2], days=2,
                             workers=1, kept=kept)
    del made[:]
    same = drafts.get_draft(eng, ids["same"])
    out = simulate_compare.compare(scenario, eng, same, seeds=[1, 2], days=2, workers=1, kept=kept)
    assert out["reused"] == {"live": [1, 2], "draft": []} and made == [(2, 1), (2, 2)]  # only the draft's
    assert out["marked"] == 0  # the same diagrams: the kept live runs equal the draft's new ones
    assert _without_reused(out) == _without_reused(
        simulate_compare.compare(scenario, eng, same, seeds=[1, 2], days=2, workers=1))
    # one seed more: seeds 1 and 2 of both are kept, seed 3's two runs are made
    del made[:]
    three = simulate_compare.compare(scenario, eng, same, seeds=[1, 2, 3], days=2, workers=1, kept=kept)
    assert three["reused"] == {"live": [1, 2], "draft": [1, 2]} and made == [(2, 3), (2, 3)]
    # another period is another run
    del made[:]
    simulate_compare.compare(scenario, eng, same, seeds=[1, 2], days=1, workers=1, kept=kept)
    assert made == [(1, 1), (1, 1), (1, 2), (1, 2)]


def test_with_two_workers_a_lone_run_shares_both_cores_and_gives_the_same_figures(live, kept, monkeypatch):
    """Seed 1's live run kept: three runs are left; two go to the workers, the last is made here on both cores
    (its cases shared between two processes). The comparison is the one made without anything kept."""
    eng, ids = live
    here: list[tuple[int, int]] = []
    real = simulate_compare.simulate

    def recorded(*args, **kw):
        here.append((kw["seed"], kw["parts"]))
        return real(*args, **kw)

    monkeypatch.setattr(simulate_compare, "simulate", recorded)  # this process only: not the spawned workers
    scenario = simulate.load_scenario(SCENARIO)
    changed = drafts.get_draft(eng, ids["changed"])
    rows = deployed_rows(eng)
    key = run_key(rows, scenario, 2, 1)
    kept.put(key, simulate.simulate(scenario, source=rows, days=2, seed=1))
    out = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=2, kept=kept)
    assert out["reused"] == {"live": [1], "draft": []}
    assert here == [(2, 2)]  # the lone run (seed 2's draft run), made here in two parts; the others in the workers
    assert len(_stored(eng)) == 4
    assert _without_reused(out) == _without_reused(
        simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1))



def _first_free(out: dict) -> str:
    return _without_reused({k: v for k, v in out.items() if k != "first_results"})


def test_the_first_results_come_when_the_first_seed_is_done_and_are_that_seeds_comparison(live, kept, monkeypatch):
    """The live runs kept, two draft runs left on two workers: seed 1's draft run is made first, on both cores, and
    its comparison is given as the first results before seed 2's run starts; the full comparison follows, the same
    as one made with nothing kept and no first results."""
    eng, ids = live
    scenario = simulate.load_scenario(SCENARIO)
    changed = drafts.get_draft(eng, ids["changed"])
    simulate_compare.compare(scenario, eng, drafts.get_draft(eng, ids["same"]), seeds=[1, 2], days=2, workers=1,
                             kept=kept)  # the live runs of seeds 1 and 2 kept
    events: list[tuple] = []
    real = simulate_compare.simulate

    def recorded(*args, **kw):
        events.append(("run", kw["seed"], kw["parts"]))
        return real(*args, **kw)

    monkeypatch.setattr(simulate_compare, "simulate", recorded)  # this process only: not the spawned workers
    firsts: list[dict] = []

    def first(out: dict) -> None:
        firsts.append(out)
        events.append(("first", out["first_results"]["seeds_done"]))

    out = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=2, kept=kept, first=first)
    assert out["reused"] == {"live": [1, 2], "draft": []}
    assert events == [("run", 1, 2), ("first", [1]), ("run", 2, 2)]
    assert "first_results" not in out
    monkeypatch.setattr(simulate_compare, "simulate", real)
    assert firsts[0]["first_results"] == {"seeds_done": [1], "seeds": [1, 2]}
    seed_one = simulate_compare.compare(scenario, eng, changed, seeds=[1], days=2, workers=1)
    assert _first_free(firsts[0]) == _first_free(seed_one)  # the first results are seed 1's own comparison
    triage = next(r for r in firsts[0]["figures"] if r["key"] == TRIAGE)
    assert triage["spread"] is None and triage["marked"] is False and triage["difference"] > 0
    assert _first_free(out) == _first_free(
        simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=2, workers=1))


def test_first_results_grow_seed_by_seed_and_never_repeat_the_full_result(live, kept, made):
    """Nothing kept, one worker: the first results after seed 1's pair and after seed 2's, none after the last;
    without a reader of first results the runs are made in the order they always were."""
    eng, ids = live
    scenario = simulate.load_scenario(SCENARIO)
    changed = drafts.get_draft(eng, ids["changed"])
    seen: list[tuple[int, list[int]]] = []
    out = simulate_compare.compare(scenario, eng, changed, seeds=[1, 2, 3], days=1, workers=1,
                                   first=lambda o: seen.append((len(made), o["first_results"]["seeds_done"])))
    assert seen == [(2, [1]), (4, [1, 2])]  # after the second run made, then the fourth
    assert len(out["seeds"]) == 3 and "first_results" not in out
    # seeds 1 and 2 both kept: the first results are given before any run is made
    simulate_compare.compare(scenario, eng, changed, seeds=[1, 2], days=1, workers=1, kept=kept)
    del made[:], seen[:]
    simulate_compare.compare(scenario, eng, changed, seeds=[1, 2, 3], days=1, workers=1, kept=kept,
                             first=lambda o: seen.append((len(made), o["first_results"]["seeds_done"])))
    assert seen == [(0, [1]), (0, [1, 2])] and len(made) == 2


def test_the_key_changes_with_everything_a_run_depends_on(live, tmp_path, monkeypatch):
    eng, _ids = live
    scenario = simulate.load_scenario(SCENARIO)
    rows = deployed_rows(eng)
    key = run_key(rows, scenario, 2, 1)
    assert key == run_key(deployed_rows(eng), simulate.load_scenario(SCENARIO), 2, 1)  # read again: the same
    assert len(key) == 64
    others = {run_key(rows, scenario, 3, 1), run_key(rows, scenario, 2, 2), run_key(rows, scenario, None, 1)}
    busier = tmp_path / "busier.yaml"
    busier.write_text(SCENARIO.read_text().replace("per_year: 3000", "per_year: 3001"))
    others.add(run_key(rows, simulate.load_scenario(busier), 2, 1))
    # a new version of one process deployed
    files = {n: t.decode() for n, t in live_files(eng, "safeguarding").items()}
    moved = Engine(f"sqlite:///{tmp_path / 'moved.db'}", registry=eng.registry, forms=eng.forms)
    moved.init()
    moved.deploy([ROOT / "processes" / n for n in ("front_door.bpmn", "screening.dmn", "safeguarding.bpmn")])
    same_content = run_key(deployed_rows(moved), scenario, 2, 1)
    moved.deploy(files={"safeguarding.bpmn": files["safeguarding.bpmn"].replace("triage", "triage ", 1).encode()},
                 actor="t")
    others.add(run_key(deployed_rows(moved), scenario, 2, 1))
    moved.db.dispose()
    others.add(same_content)  # another database's rows (its own ids and times): kept apart, never confused
    monkeypatch.setattr(simulate_reuse, "code_fingerprint", lambda: "0" * 64)  # other code or libraries
    others.add(run_key(rows, scenario, 2, 1))
    assert key not in others and len(others) == 7


def test_the_code_that_runs_it_is_part_of_the_key(tmp_path):
    (tmp_path / "engine" / "__pycache__").mkdir(parents=True)
    (tmp_path / "engine" / "step.py").write_text("x = 1\n")
    first = code_fingerprint(tmp_path, ("engine",))
    code_fingerprint.cache_clear()
    (tmp_path / "engine" / "__pycache__" / "step.cpython-311.pyc").write_bytes(b"compiled")
    assert code_fingerprint(tmp_path, ("engine",)) == first  # compiled caches are not the code
    code_fingerprint.cache_clear()
    (tmp_path / "engine" / "step.py").write_text("x = 2\n")
    assert code_fingerprint(tmp_path, ("engine",)) != first
    code_fingerprint.cache_clear()
    assert code_fingerprint() == code_fingerprint(simulate_reuse.ROOT, simulate_reuse.CODE_FOLDERS)


def test_what_cannot_be_kept_is_not(live, kept, made, tmp_path):
    eng, ids = live
    with_policy = tmp_path / "policy.yaml"
    with_policy.write_text(SCENARIO.read_text() + "forms:\n  contact:\n    policy: tests.test_simulate:no_answers\n")
    scenario = simulate.load_scenario(with_policy)
    assert run_key(deployed_rows(eng), scenario, 2, 1) is None  # a policy is code the key does not read
    # outputs that would not come back from JSON as they went in
    for odd in ({"a": (1, 2)}, {1: "x"}, {"x": float("nan")}, {"x": {1, 2}}):
        assert kept.put("k" * 64, odd) is False
    assert _stored(eng) == []
    # a run from today's open cases is never kept: today's cases change
    out = simulate_compare.compare(simulate.load_scenario(SCENARIO), eng, drafts.get_draft(eng, ids["same"]),
                                   seeds=[1, 2], days=1, workers=1, from_live=True, kept=kept)
    assert out["reused"] == {"live": [], "draft": []} and len(made) == 4 and _stored(eng) == []


def test_a_kept_row_that_does_not_read_back_is_deleted_and_run_again(live, kept, made):
    eng, ids = live
    scenario = simulate.load_scenario(SCENARIO)
    rows = deployed_rows(eng)
    key = run_key(rows, scenario, 1, 1)
    now = datetime.now(timezone.utc)
    with eng.db.transaction() as conn:
        conn.execute(insert(simulation_outputs).values(key=key, output='{"cut short', made_at=now, used_at=now,
                                                       uses=0, bytes=11))
    assert kept.get(key) is None and _stored(eng) == []
    out = simulate_compare.compare(scenario, eng, drafts.get_draft(eng, ids["same"]), seeds=[1, 2], days=1,
                                   workers=1, kept=kept)
    assert out["reused"] == {"live": [], "draft": []} and len(made) == 4
    assert kept.get(key)["contacts"] == out["contacts"]["live"][0]  # made again and kept


def test_the_runs_used_longest_ago_are_deleted_first(live):
    eng, _ids = live
    small = KeptRuns(eng, keep=3)
    with eng.db.transaction() as conn:
        conn.execute(simulation_outputs.delete())
    for i in range(3):
        assert small.put(f"{i:064d}", {"n": i})
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with eng.db.transaction() as conn:  # made a minute apart, oldest first
        for i in range(3):
            conn.execute(update(simulation_outputs).where(OUT.key == f"{i:064d}")
                         .values(used_at=base + timedelta(minutes=i)))
    assert small.get(f"{0:064d}") == {"n": 0}  # the oldest, used now
    assert small.put(f"{3:064d}", {"n": 3})
    assert [r.key[-1] for r in _stored(eng)] == ["0", "2", "3"]  # 1, used longest ago, went
    assert small.put(f"{3:064d}", {"n": 3}) is False  # kept already (another process, the same run): no error
    with eng.db.transaction() as conn:
        conn.execute(simulation_outputs.delete())


def test_a_database_that_cannot_keep_or_read_runs_does_not_stop_the_comparison(live, kept, made, monkeypatch, caplog):
    eng, ids = live
    scenario = simulate.load_scenario(SCENARIO)
    same = drafts.get_draft(eng, ids["same"])
    simulate_compare.compare(scenario, eng, same, seeds=[1, 2], days=1, workers=1, kept=kept)  # four kept
    real = eng.db.transaction

    def broken():
        raise OperationalError("UPDATE simulation_outputs", {}, Exception("database is locked"))

    monkeypatch.setattr(eng.db, "transaction", broken)
    del made[:]
    out = simulate_compare.compare(scenario, eng, same, seeds=[1, 2, 3], days=1, workers=1, kept=kept)
    assert out["reused"] == {"live": [], "draft": []} and len(made) == 6  # nothing read: every run made
    assert out["marked"] == 0 and len(out["contacts"]["live"]) == 3
    assert "could not be read: OperationalError" in caplog.text and "could not be kept: OperationalError" in caplog.text
    assert "database is locked" not in caplog.text  # the error's type only
    monkeypatch.setattr(eng.db, "transaction", real)
    assert len(_stored(eng)) == 4  # the four kept before, untouched
