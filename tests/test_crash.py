"""Kill the process at any moment: on restart every case is at its last committed state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import history, pg_batch
from engine.errors import ConflictError
from engine.schema import events, tasks

ROOT = Path(__file__).resolve().parent.parent


def test_a_failure_while_writing_leaves_the_last_committed_state(make_engine, monkeypatch):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    task_id = res.ready_tasks[0]["id"]
    before = eng.history(res.case_id)

    def broken_append(*a, **kw):
        raise RuntimeError("disk full")  # fails after the instance row and task rows were written

    def broken_commit(conn):  # type: ignore[no-untyped-def]
        pg_batch._send(conn, commit=False)  # PostgreSQL: every write of the step reaches the server
        raise RuntimeError("disk full")  # and the step fails before its COMMIT

    if eng.db.is_postgres:  # the writes go with the COMMIT (engine/pg_batch.py)
        monkeypatch.setattr(pg_batch, "commit", broken_commit)
    else:
        monkeypatch.setattr(history, "append_many", broken_append)
    with pytest.raises(RuntimeError):
        eng.complete_task(task_id, {"reason": "x"})
    monkeypatch.undo()
    assert eng.history(res.case_id) == before
    assert [t["id"] for t in eng.list_tasks(case_id=res.case_id)] == [task_id]
    eng.complete_task(task_id, {"reason": "x"})  # and it carries on
    assert eng.list_tasks(case_id=res.case_id)[0]["element_id"] == "screen"


KILLER = """
import os, sys
from engine.registry import HandlerRegistry
from engine.forms import FormLibrary
from engine.runtime import Engine
reg = HandlerRegistry()
@reg.register("calculate_budget")
def calc(ctx, points):
    os._exit(9)  # the process dies in the middle of a step
eng = Engine(sys.argv[1], registry=reg, forms=FormLibrary())
eng.start("budget", data={"points": 5})
"""


def test_killing_the_process_mid_step_keeps_the_last_committed_state(make_engine, db_url, calls, tmp_path):
    eng = make_engine("three_tasks.bpmn", "budget.bpmn", "annual_review.bpmn")
    res = eng.start("three_tasks")
    task_id = res.ready_tasks[0]["id"]
    with eng.db.engine.connect() as conn:
        n_events = conn.execute(select(func.count()).select_from(events)).scalar()
    script = tmp_path / "killer.py"
    script.write_text(KILLER)  # starts a case whose handler kills the process mid-step
    proc = subprocess.run([sys.executable, str(script), db_url], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == n_events
        assert [r.id for r in conn.execute(select(tasks))] == [task_id]
    # the survivor carries on as if nothing happened
    eng.complete_task(task_id, {"reason": "falls"})
    assert eng.start("budget", data={"points": 5}).ready_tasks[0]["element_id"] == "agree_plan"
    assert eng.verify()[1] == []
    with pytest.raises(ConflictError):
        eng.complete_task(task_id, {})


BATCH_KILLER = """
import os, sys
from engine import history, pg_batch
from engine.registry import HandlerRegistry
from engine.forms import FormLibrary
from engine.runtime import Engine
reg = HandlerRegistry()
@reg.register("notify")
def notify(ctx, message):
    return {"sent_at": ctx.now.isoformat(), "message": message}
real = history.append_many
def append_then_die(*a, **kw):
    real(*a, **kw)  # every row of the batch is written: instances, tasks, timers, events, chain heads
    os._exit(9)  # and the process dies before the batch commits
def send_then_die(conn):
    pg_batch._send(conn, commit=False)  # PostgreSQL: the batch's writes are sent, and the server ran them
    os._exit(9)  # and the process dies before COMMIT is sent
if "postgresql" in sys.argv[1]:  # the writes go with the COMMIT there (engine/pg_batch.py)
    pg_batch.commit = send_then_die
else:
    history.append_many = append_then_die
Engine(sys.argv[1], registry=reg, forms=FormLibrary()).fire_due_timers(batch=int(sys.argv[2]))
"""


def test_killing_the_process_mid_batch_keeps_the_last_committed_state(make_engine, db_url, calls, tmp_path):
    """A timer batch writes many instances with a few batched statements; killed after writing them all and
    before the commit, none of it is kept, and the timers then fire once each."""
    from datetime import timedelta

    from engine.schema import instances, timers

    eng = make_engine("deadline.bpmn")
    cases = [eng.start("deadline").case_id for _ in range(6)]
    with eng.db.transaction() as conn:
        eng._set_clock(conn, eng.now(conn) + timedelta(days=36))  # every case's reminder is due

    def state() -> tuple:
        with eng.db.engine.connect() as conn:
            return (conn.execute(select(func.count()).select_from(events)).scalar(),
                    sorted(conn.execute(select(instances.c.id, instances.c.version, instances.c.status)).all()),
                    sorted(conn.execute(select(timers.c.task_id, timers.c.due_at)).all()),
                    sorted(conn.execute(select(tasks.c.id)).scalars()),
                    eng.chain_heads())

    before = state()
    script = tmp_path / "batch_killer.py"
    script.write_text(BATCH_KILLER)
    proc = subprocess.run([sys.executable, str(script), db_url, "6"], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert state() == before  # nothing of the batch was kept
    assert eng.fire_due_timers(batch=6) == 6  # the survivor fires every reminder, once
    for case_id in cases:
        assert [e["data"]["element_id"] for e in eng.history(case_id) if e["type"] == "timer.fired"] == ["reminder"]
    assert eng.verify() == (eng.verify()[0], [])
    assert eng.fire_due_timers(batch=6) == 0
