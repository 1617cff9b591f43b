"""Simulation mode (engine/simulation.py): opt-in, only on an in-memory database, and the live engine unchanged.

The live engine (no `simulation=`) still writes every event hash-chained, a `clock.advanced` event per move and
its chain heads, on both databases; simulation mode is refused on a database file or PostgreSQL before anything
is read or written; on an in-memory database it fires the same timers at the same instants as the live engine
while writing only the kept event types, unchained, and tells its listeners which tasks came and went.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import StateError, ValidationError
from engine.forms import FormLibrary
from engine.runtime import Engine
from engine.schema import chains, events, instances
from engine.simulation import SimulationMode
from tests.conftest import DIAGRAMS, START

DAY = timedelta(days=1)


def _drive(eng: Engine) -> list[tuple]:
    """The same story on any engine: a reablement with a 5-week reminder and a 6-week deadline started at once,
    a timer at a given instant started a day later (due before the reminder), the clock moved a day at a time for
    seven weeks. Returns (when, instance, element) for every timer that fired."""
    eng.start("deadline", actor="tester")
    eng.advance_clock(by=DAY, actor="tester")
    eng.start("timer_at", data={"due": (START + 2 * DAY + timedelta(hours=3)).isoformat()}, actor="tester")
    for _ in range(48):
        eng.advance_clock(by=DAY, actor="tester")
    with eng.db.engine.connect() as conn:
        fired = conn.execute(select(events.c.at, events.c.instance_id, events.c.data)
                             .where(events.c.type == "timer.fired").order_by(events.c.id)).all()
    return [(at, iid, re.search(r'"element_id":"([^"]+)"', data)[1]) for at, iid, data in fired]


def test_the_live_engine_keeps_the_full_hash_chained_history(make_engine, calls):
    eng = make_engine("deadline.bpmn", "timer_at.bpmn")
    assert eng.simulation is None
    fired = _drive(eng)
    assert [f[2] for f in fired] == ["wait", "reminder", "six_weeks"]
    checked, findings = eng.verify()
    assert findings == [] and checked > 0
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.hash, events.c.prev_hash)).all()
        heads = conn.execute(select(chains.c.chain)).scalars().all()
    assert all(re.fullmatch(r"[0-9a-f]{64}", r.hash) and len(r.prev_hash) == 64 for r in rows)
    types = {r.type for r in rows}
    # the audit trail in full: also the events no measure reads
    assert {"case.created", "task.left", "clock.advanced", "definitions.deployed"} <= types
    assert sum(r.type == "clock.advanced" for r in rows) == 49
    assert "system" in heads and len(heads) == 3  # the system chain and both cases'
    assert [c[0] for c in calls.log] == ["notify"]


def test_simulation_mode_is_refused_on_a_database_file_and_on_postgresql(tmp_path, calls):
    path = tmp_path / "live.db"
    live = Engine(f"sqlite:///{path}", registry=calls.registry(), forms=FormLibrary())
    live.init(simulated_start=START)
    live.deploy([DIAGRAMS / "deadline.bpmn"])
    live.start("deadline", actor="tester")
    live.db.dispose()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for url in (f"sqlite:///{path}", "postgresql://postgres@127.0.0.1:5432/live"):
        with pytest.raises(StateError) as err:
            Engine(url, registry=calls.registry(), forms=FormLibrary(), simulation=SimulationMode())
        assert "only on an in-memory SQLite database" in str(err.value)
        assert "full, hash-chained history" in str(err.value)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_simulation_mode_fires_the_same_timers_and_writes_only_the_kept_events_unchained(tmp_path, calls):
    live = Engine(f"sqlite:///{tmp_path / 'live.db'}", registry=calls.registry(), forms=FormLibrary())
    live.init(simulated_start=START)
    live.deploy([DIAGRAMS / "deadline.bpmn", DIAGRAMS / "timer_at.bpmn"])
    expected = _drive(live)
    live.db.dispose()

    mode = SimulationMode({"timer.fired", "task.ready"})
    sim = Engine("sqlite://", registry=calls.registry(), forms=FormLibrary(), simulation=mode)
    sim.init(simulated_start=START)
    sim.deploy([DIAGRAMS / "deadline.bpmn", DIAGRAMS / "timer_at.bpmn"])
    told: list[tuple[list[str], list[str]]] = []
    sim.on_tasks_changed(lambda added, removed: told.append(([r["element_id"] for r in added], removed)))
    got = _drive(sim)
    try:
        # the same timers at the same instants (the one started later, due first, fired on its day)
        assert got == expected and [g[2] for g in got] == ["wait", "reminder", "six_weeks"]
        assert sim.now() == START + 49 * DAY
        with sim.db.engine.connect() as conn:
            rows = conn.execute(select(events.c.type, events.c.hash, events.c.prev_hash, events.c.chain,
                                       events.c.seq).order_by(events.c.id)).all()
            assert conn.execute(select(chains)).all() == []  # no chain heads
        assert {r.type for r in rows} == {"timer.fired", "task.ready"}
        assert all(r.hash == "" and r.prev_hash == "" for r in rows)
        for chain in {r.chain for r in rows}:  # still numbered in order within each case
            seqs = [r.seq for r in rows if r.chain == chain]
            assert seqs == list(range(1, len(seqs) + 1))
        assert mode.written == len(rows) and mode.dropped > len(rows)
        # the listener: the reablement and the follow-up arrive, the deadline withdraws the reablement and
        # brings the overrun review
        added = [e for a, _ in told for e in a]
        assert added == ["reablement", "follow_up", "review_overrun"]
        assert sum(len(r) for _, r in told) == 1
    finally:
        sim.db.dispose()


def test_workflows_kept_in_memory_survive_leaving_the_cache_and_a_refused_step(calls):
    sim = Engine("sqlite://", registry=calls.registry(), forms=FormLibrary(), simulation=SimulationMode())
    sim.LIVE_CACHE_SIZE = 1  # every other workflow leaves memory at once: its state is written then
    sim.init(simulated_start=START)
    sim.deploy([DIAGRAMS / "deadline.bpmn", DIAGRAMS / "timer_at.bpmn"])
    try:
        fired = _drive(sim)
        assert [f[2] for f in fired] == ["wait", "reminder", "six_weeks"]
        first = sim.start("deadline", actor="tester")
        task_id = first.ready_tasks[0]["id"]
        refused = {"n": 0}

        def refuse_once(form, data, task_data, **context):
            if not refused["n"]:
                refused["n"] += 1
                raise ValidationError("refused", errors=[{"field": "x", "message": "refused"}])

        sim.forms.check_decisions = refuse_once  # refused after the workflow was taken from memory
        with pytest.raises(ValidationError):
            sim.complete_task(task_id, {"outcome": "done"}, actor="tester")
        done = sim.complete_task(task_id, {"outcome": "done"}, actor="tester")
        assert done.status == "completed"
    finally:
        sim.db.dispose()


def _sim(calls, *, every: int | None) -> Engine:
    sim = Engine("sqlite://", registry=calls.registry(), forms=FormLibrary(), simulation=SimulationMode())
    sim.init(simulated_start=START)
    sim.deploy([DIAGRAMS / "deadline.bpmn", DIAGRAMS / "timer_at.bpmn"])
    if every is not None:
        sim.simulation.batch_steps(sim.db, every=every)
    return sim


def _rows(eng: Engine) -> list[tuple]:
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.at, events.c.instance_id, events.c.data)
                            .order_by(events.c.id)).all()
    # task ids and the like are random: the same history in every other respect
    return [(r.type, r.at, r.instance_id, re.sub(r"[0-9a-f-]{32,}", "<id>", r.data)) for r in rows]


def test_steps_committed_in_batches_give_the_same_history_and_a_failed_one_is_undone_alone(calls):
    from engine.schema import settings

    plain, batched = _sim(calls, every=None), _sim(calls, every=3)
    try:
        assert _drive(batched) == _drive(plain)
        assert _rows(batched) == _rows(plain)
        batch = batched.db.steps_batched
        assert batch.released > 3 * 2 and batch.commits == batch.released // 3  # a real COMMIT every 3 steps
        with batched.db.transaction() as one:
            pass
        with batched.db.transaction() as two:
            pass
        assert one is two is batched.db.held[1]  # one connection for every step, kept open between them
        with batched.db.transaction() as conn:
            conn.execute(settings.insert().values(key="kept", value="1"))
        with pytest.raises(RuntimeError), batched.db.transaction() as conn:
            conn.execute(settings.insert().values(key="undone", value="1"))
            raise RuntimeError("the step failed after writing")
        with batched.db.engine.connect() as conn:
            keys = set(conn.execute(select(settings.c.key)).scalars())
        assert "kept" in keys and "undone" not in keys
        with pytest.raises(Exception, match="within a transaction"), plain.db.transaction(), \
                plain.db.transaction():
            pass  # one in-memory connection: a transaction inside another is refused, batched or not
        with pytest.raises(StateError, match="inside another"), batched.db.transaction(), \
                batched.db.transaction():
            pass
        # and the engine's own steps still run after it, in the same batch
        first = batched.start("deadline", actor="tester")
        assert batched.complete_task(first.ready_tasks[0]["id"], {"outcome": "done"}, actor="tester").status \
            == "completed"
    finally:
        plain.db.dispose()
        batched.db.dispose()


def test_a_simulations_database_does_without_the_pages_indexes_and_closes_its_connection():
    from sqlalchemy import inspect

    from carepath.simulate import scratch_engine

    def indexes(eng: Engine) -> set[str]:
        with eng.db.engine.connect() as conn:
            return {i["name"] for t in ("events", "tasks") for i in inspect(conn).get_indexes(t)}

    lean, full = scratch_engine(None, START.date()), scratch_engine(None, START.date(), full_history=True)
    try:
        assert set(SimulationMode.PAGES_ONLY_INDEXES) <= indexes(full)  # the live schema has them
        assert not set(SimulationMode.PAGES_ONLY_INDEXES) & indexes(lean)
        assert {"ix_events_case_id_id", "ix_tasks_instance_id", "ix_tasks_case_id"} <= indexes(lean)
        held = lean.db.held[1]
    finally:
        lean.db.dispose()
        full.db.dispose()
    assert held.closed and lean.db.held is None
    with pytest.raises(StateError, match="in-memory"):
        SimulationMode().lean_indexes(Engine("sqlite:///" + str(DIAGRAMS.parent / "never.db")).db)


def test_a_finished_instances_data_is_kept_live_and_not_in_a_simulation(tmp_path, calls):
    """The case record and replay read a finished instance's data; a simulation has neither, and leaves it out."""
    def finish(eng: Engine) -> tuple:
        eng.init(simulated_start=START)
        eng.deploy([DIAGRAMS / "timer_at.bpmn"])
        eng.start("timer_at", data={"due": (START + DAY).isoformat()}, actor="tester")
        eng.advance_clock(by=2 * DAY, actor="tester")
        (task,) = eng.list_tasks()
        eng.complete_task(task["id"], {"outcome": "called back"}, actor="tester")
        with eng.db.engine.connect() as conn:
            return conn.execute(select(instances.c.status, instances.c.data)).one()

    live = Engine(f"sqlite:///{tmp_path / 'live.db'}", registry=calls.registry(), forms=FormLibrary())
    sim = Engine("sqlite://", registry=calls.registry(), forms=FormLibrary(), simulation=SimulationMode())
    try:
        status, data = finish(live)
        assert status == "completed" and json.loads(data)["outcome"] == "called back"
        assert finish(sim) == ("completed", None)
    finally:
        live.db.dispose()
        sim.db.dispose()
