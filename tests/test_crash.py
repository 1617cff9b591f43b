"""Kill the process at any moment: on restart every case is at its last committed state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import history
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
