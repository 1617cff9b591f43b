"""A step leaves no reference cycles behind, and a completed instance's workflow is let go (engine/step.py).

A cycle is freed only by Python's cycle collector, whose walks were 7–9% of a simulation's time
(docs/performance.md, session 15). These tests run steps with the collector off, then ask it what it would
have had to free.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable

from engine.task_tree import CarepathTask


def _cycles_left_by(work: Callable[[], object]) -> Counter[str]:
    gc.collect()
    gc.disable()
    try:
        result = work()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    del result
    return found


def test_steps_leave_no_cycles_and_a_completed_workflow_s_tasks_are_freed_at_once(make_engine):
    eng = make_engine("three_tasks.bpmn")
    eng.start("three_tasks", data={"n": 0})  # the first start builds what is kept (specs, statements)

    def case() -> object:
        res = eng.start("three_tasks", data={"n": 1})
        for step in range(3):
            res = eng.complete_task(res.ready_tasks[0]["id"], {"step": step}, actor="tester")
        assert res.status == "completed"
        return res

    found = _cycles_left_by(case)
    # the steps' own objects: scope, pending work, events, the transaction's connection
    for kind in ("engine.scripting.StepScope", "engine.step._Pending", "engine.history.Event",
                 "sqlalchemy.engine.base.Connection"):
        assert found[kind] == 0, (kind, found.most_common(12))
    # the completed workflow: only the two tasks it still names (its root, the last task run) are left in a cycle
    # with it; the rest were freed as its task dictionary was emptied
    assert found["engine.task_tree.CarepathTask"] <= 2, found.most_common(12)
    assert found["engine.task_tree.CarepathWorkflow"] <= 1


def test_a_workflow_still_waiting_keeps_its_tasks(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks", data={"n": 1})
    res = eng.complete_task(res.ready_tasks[0]["id"], {"step": 0}, actor="tester")
    version, wf = eng._live[res.instance_id]
    assert len(wf.tasks) > 3 and all(type(t) is CarepathTask for t in wf.tasks.values())
    res = eng.complete_task(res.ready_tasks[0]["id"], {"step": 1}, actor="tester")
    res = eng.complete_task(res.ready_tasks[0]["id"], {"step": 2}, actor="tester")
    assert res.status == "completed"
    assert wf.tasks == {} and res.instance_id not in eng._live
    assert eng.instance_snapshot(res.instance_id)["data"]["step"] == 2  # what it came to was written with it
