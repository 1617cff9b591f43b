"""engine/task_tree.py: the engine's cheaper walks of the task tree return the library's tasks in the library's order.

Every walk the engine makes is checked in lock step against SpiffWorkflow's own iterator, built with the same
arguments on the same tree: one task from each, compared, before the caller acts on it (so a task run part-way
through a walk changes both alike). Through the whole conformance corpus of public diagrams (call activities,
embedded and event subprocesses, boundary timers, joins, multi-instance) and days of the operating model's
simulated county.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.util.task import BpmnTaskFilter, BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskFilter, TaskIterator, TaskState
from sqlalchemy import select

from engine import task_tree
from engine.runtime import Engine
from engine.schema import instances
from engine.task_tree import CarepathSubWorkflow, CarepathTask, CarepathWorkflow, new_task_id, walk
from tests import test_conformance as conformance


class LockStep:
    """Replaces `task_tree.walk` with itself and the library's iterator side by side; counts what it compared."""

    def __init__(self, fast: Any = walk) -> None:
        self.fast = fast
        self.walks = 0
        self.tasks = 0
        self.mismatches: list[str] = []  # kept as well as raised: the engine may turn an exception into an incident

    def __call__(self, start: Any, flt: Any, *, skip_subprocesses: bool = False, end_at_spec: str | None = None,
                 max_depth: int = 1000, into_subprocesses: bool = True) -> Any:
        if into_subprocesses:
            library = BpmnTaskIterator(start, end_at_spec=end_at_spec, max_depth=max_depth,
                                       skip_subprocesses=skip_subprocesses, task_filter=flt)
        else:
            library = TaskIterator(start, end_at_spec=end_at_spec, max_depth=max_depth, task_filter=flt)
        ours = self.fast(start, flt, skip_subprocesses=skip_subprocesses, end_at_spec=end_at_spec,
                    max_depth=max_depth, into_subprocesses=into_subprocesses)
        self.walks += 1
        return self._pairs(ours, library)

    def _pairs(self, ours: Any, library: Any) -> Any:
        for mine in ours:
            theirs = next(library, None)
            if mine is not theirs:
                self._fail(f"the walk gave {mine.task_spec.name} ({mine.state}) where the library gives "
                           f"{None if theirs is None else theirs.task_spec.name}")
            self.tasks += 1
            yield mine
        extra = next(library, None)
        if extra is not None:
            self._fail(f"the library also gives {extra.task_spec.name} ({extra.state})")

    def _fail(self, message: str) -> None:
        self.mismatches.append(message)
        raise AssertionError(message)


@pytest.fixture
def lockstep(monkeypatch):
    checker = LockStep()
    monkeypatch.setattr(task_tree, "walk", checker)
    return checker


@pytest.mark.parametrize("entry", [e for e in conformance.MANIFEST if e["expect"] in ("runs", "incident")
                                   and not e.get("xfail")], ids=lambda e: e["file"])
def test_every_public_diagram_runs_with_the_library_s_tasks_in_the_library_s_order(tmp_path, lockstep, entry):
    eng = Engine(f"sqlite:///{tmp_path / 'walks.db'}", registry=conformance._registry([]),
                 forms=conformance.FormLibrary())
    eng.init(simulated_start=conformance.START)
    try:
        conformance.check(eng, entry)  # the expected outcome as well
    finally:
        eng.db.dispose()
    assert lockstep.mismatches == []
    assert lockstep.walks > 0 and lockstep.tasks > 0


def test_simulated_days_of_the_operating_model_walk_as_the_library(lockstep):
    from carepath import simulate

    out = simulate.simulate(simulate.load_scenario(), days=3, seed=4)
    assert out["contacts"] > 100
    assert lockstep.mismatches == []
    assert lockstep.walks > 5_000 and lockstep.tasks > 5_000


def test_the_check_itself_fails_on_a_walk_in_another_order(monkeypatch, tmp_path):
    """Children pushed unreversed (breadth of a parallel split visited backwards) is caught by the lock step."""

    def backwards(start, flt, **kwargs):  # type: ignore[no-untyped-def]
        found = list(walk(start, flt, **kwargs))
        return iter(found[::-1])

    checker = LockStep(fast=backwards)
    monkeypatch.setattr(task_tree, "walk", checker)
    entry = next(e for e in conformance.MANIFEST if e["file"] == "spiff-ParallelOrder.bpmn")
    eng = Engine(f"sqlite:///{tmp_path / 'walks.db'}", registry=conformance._registry([]),
                 forms=conformance.FormLibrary())
    eng.init(simulated_start=conformance.START)
    try:
        with pytest.raises(AssertionError):
            conformance.check(eng, entry)
    finally:
        eng.db.dispose()
    assert checker.mismatches and checker.mismatches[0].startswith("the walk gave")


NESTED = Path(__file__).parent / "fixtures" / "messages" / "nested_receivers.bpmn"


def test_subprocesses_and_call_activities_walk_as_the_library_and_restore_as_the_engine_s_classes(make_engine,
                                                                                                 lockstep):
    """An embedded subprocess, a called process and a multi-instance call activity, every step restored from its
    stored text; the stored text keeps the library's type names."""
    eng = make_engine()
    eng.LIVE_CACHE_SIZE = 0
    eng.deploy([NESTED])
    restored: list[Any] = []
    original = eng.codec.load

    def load(*args: Any) -> Any:
        restored.append(original(*args))
        return restored[-1]

    eng.codec.load = load  # type: ignore[method-assign]
    nested = eng.start("nested_wait", data={"person": 1})
    homes = eng.start("many_homes", data={"homes": ["Elm Court", "Oak House"]})
    with eng.db.engine.connect() as conn:
        state = json.loads(conn.execute(select(instances.c.state)
                                        .where(instances.c.id == nested.instance_id)).scalar_one())
    assert state["typename"] == "BpmnWorkflow" and state["subprocesses"]
    assert {sp["typename"] for sp in state["subprocesses"].values()} == {"BpmnSubWorkflow"}
    eng.deliver_message("gp_letter", case_id=nested.case_id, data={"gp": "seen"})
    eng.deliver_message("ot_report", case_id=nested.case_id, data={"ot": "stairs"})
    eng.deliver_message("housing_reply", case_id=nested.case_id, data={"housing": "suitable"})
    eng.deliver_message("housing_reply", case_id=homes.case_id, correlation={"home": "Oak House"},
                        data={"housing": "suitable"})
    eng.deliver_message("housing_reply", case_id=homes.case_id, data={"housing": "unsuitable"})
    for started in (nested, homes):
        assert [i["status"] for i in eng.get_case(started.case_id)["instances"]] == ["completed"]
    assert eng.instance_snapshot(nested.instance_id)["data"] == {
        "person": 1, "gp": "seen", "ot": "stairs", "housing": "suitable"}
    assert restored and all(type(wf) is CarepathWorkflow for wf in restored)
    subs = [sp for wf in restored for sp in wf.subprocesses.values()]
    assert subs and all(type(sp) is CarepathSubWorkflow for sp in subs)
    assert {type(t) for w in restored + subs for t in w.tasks.values()} == {CarepathTask}
    assert {t["typename"] for t in state["tasks"].values()} == {"Task"}  # stored as the library's Task
    assert lockstep.mismatches == [] and lockstep.tasks > 50


def test_a_state_the_library_saved_restores_as_the_engine_s_class_and_back():
    from engine.bpmn import build_specs
    from engine.state import StateCodec

    entry = next(e for e in conformance.MANIFEST if e["file"] == "spiff-call_activity_end_event.bpmn")
    spec, subs = build_specs(conformance._files(entry), entry["process"])
    codec = StateCodec()
    plain = BpmnWorkflow(spec, subs)  # the library's own class
    plain.do_engine_steps()
    text = codec.dump(plain)
    restored = codec.load(text, spec, subs)
    assert type(restored) is CarepathWorkflow
    assert codec.dump(restored) == text
    assert {type(t) for w in [restored, *restored.subprocesses.values()] for t in w.tasks.values()} == {CarepathTask}
    created = CarepathWorkflow(spec, subs)
    created.do_engine_steps()
    assert all(type(sp) is CarepathSubWorkflow for sp in created.subprocesses.values())
    assert all(isinstance(sp, BpmnSubWorkflow) for sp in created.subprocesses.values())
    assert {type(t) for w in [created, *created.subprocesses.values()] for t in w.tasks.values()} == {CarepathTask}
    # what the engine's classes write names the library's own classes, as the library writes them
    written = json.loads(codec.dump(created))
    assert written["typename"] == "BpmnWorkflow"
    assert {t["typename"] for t in written["tasks"].values()} == {"Task"}


@pytest.mark.parametrize("entry", [e for e in conformance.MANIFEST if e["expect"] in ("runs", "incident")
                                   and not e.get("xfail")], ids=lambda e: e["file"])
def test_the_engine_s_tasks_build_the_library_s_tree(entry):
    """CarepathTask changes how a task is logged and numbered, nothing else: a workflow of them, run as far as
    it goes by itself, has the library's tree, task for task (element, state, children), in every public
    diagram the engine runs."""
    from engine.bpmn import build_specs

    spec, subs = build_specs(conformance._files(entry), entry["process"])

    def shape(wf: Any) -> list[tuple[str, str, int, bool, str]]:
        out = []
        for w in [wf, *wf.subprocesses.values()]:
            for t in BpmnTaskIterator(w.task_tree, depth_first=True):
                out.append((t.task_spec.name, TaskState.get_name(t.state), len(t._children), t.triggered,
                            json.dumps(t.data, sort_keys=True, default=str)))
        return out

    shapes = []
    for cls in (BpmnWorkflow, CarepathWorkflow):
        wf = cls(spec, subs)
        try:
            wf.do_engine_steps()
        except Exception as exc:  # a script or service the engine supplies: both stop at the same task
            shapes.append(("stopped", type(exc).__name__, shape(wf)))
            continue
        shapes.append(("ran", "", shape(wf)))
    assert shapes[0] == shapes[1]
    assert len(shapes[1][2]) > 1


def test_task_ids_are_random_version_4_uuids_never_repeated_within_or_across_threads():
    import threading
    import uuid

    ids = [new_task_id() for _ in range(100_000)]  # more than one 64 KiB read of random bytes
    assert len(set(ids)) == len(ids)
    assert {(i.version, i.variant) for i in ids} == {(4, uuid.RFC_4122)}
    assert len({i.int >> 64 for i in ids}) == len(ids)  # not a counter: the high halves differ too
    import pickle

    for i in ids[:2000]:  # each the very UUID the uuid module would make of its text, its bytes or a pickle
        assert uuid.UUID(str(i)) == i and uuid.UUID(bytes=i.bytes) == i and pickle.loads(pickle.dumps(i)) == i
        assert hash(uuid.UUID(str(i))) == hash(i) and i.is_safe is uuid.SafeUUID.unknown
    per_thread: list[list[uuid.UUID]] = [[], []]

    def make(out: list[uuid.UUID]) -> None:
        out.extend(new_task_id() for _ in range(20_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(per_thread[0]) | set(per_thread[1]) | set(ids)) == 140_000


def test_the_library_s_log_of_state_changes_is_still_written_when_its_logger_is_on(caplog):
    import logging

    from engine.bpmn import build_specs

    entry = next(e for e in conformance.MANIFEST if e["file"] == "spiff-call_activity_end_event.bpmn")
    spec, subs = build_specs(conformance._files(entry), entry["process"])
    with caplog.at_level(logging.WARNING, logger="spiff"):
        CarepathWorkflow(spec, subs).do_engine_steps()
    assert not [r for r in caplog.records if r.name.startswith("spiff")]
    with caplog.at_level(logging.DEBUG, logger="spiff"):
        wf = CarepathWorkflow(spec, subs)
        wf.do_engine_steps()
    changed = [r for r in caplog.records if r.name == "spiff.task" and r.getMessage().startswith("State changed to")]
    assert {r.getMessage() for r in changed} >= {"State changed to READY", "State changed to COMPLETED"}
    assert all(r.task_id in wf.tasks or any(r.task_id in s.tasks for s in wf.subprocesses.values())
               for r in changed)
    assert [r for r in caplog.records if r.name == "spiff.workflow" and r.getMessage() == "Initialized workflow"]


@pytest.mark.parametrize("flt", [
    TaskFilter(state=TaskState.READY), TaskFilter(state=TaskState.WAITING),
    BpmnTaskFilter(state=TaskState.NOT_FINISHED_MASK, manual=True), TaskFilter(),
    TaskFilter(state=TaskState.PREDICTED_MASK), TaskFilter(state=TaskState.FINISHED_MASK),
    TaskFilter(spec_name="Start"),
])
def test_every_filter_and_depth_limit_gives_the_library_s_list(flt):
    from engine.bpmn import build_specs

    entry = next(e for e in conformance.MANIFEST if e["file"] == "spiff-call_activity_end_event.bpmn")
    wf = CarepathWorkflow(*build_specs(conformance._files(entry), entry["process"]))
    wf.do_engine_steps()
    for depth in (0, 1, 2, 1000):
        for skip in (False, True):
            ours = list(walk(wf.task_tree, flt, max_depth=depth, skip_subprocesses=skip))
            library = list(BpmnTaskIterator(wf.task_tree, max_depth=depth, skip_subprocesses=skip, task_filter=flt))
            assert ours == library
    assert wf.get_tasks(depth_first=False) == list(BpmnTaskIterator(wf.task_tree, depth_first=False))


@pytest.mark.parametrize("own", [{}, {"kept": 1, "outcome": {"b": 3}}], ids=["no_data_yet", "data_of_its_own"])
def test_a_task_inherits_its_parent_s_data_as_the_library_s_merge_does(own):
    """CarepathTask's short cut for a task with no data of its own yet gives what DeepMerge gives: the same values,
    each dict, list or set a copy (a change to the child's is not the parent's), in the parent's order."""
    from SpiffWorkflow.util.deep_merge import DeepMerge

    parent_data = {"name": "Ann", "age": 81, "needs": ["meals", "washing"], "outcome": {"a": 1, "b": 2},
                   "areas": {"north"}, "none": None, "when": (2026, 12, 6)}
    wf = CarepathWorkflow(*_tiny_spec())
    parent = wf.task_tree
    parent.data = json.loads(json.dumps({k: v for k, v in parent_data.items() if k != "areas"}))
    parent.data["areas"] = {"north"}
    child = parent._children and wf.tasks[parent._children[0]]
    child.data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in own.items()}
    expected = DeepMerge.merge({k: (dict(v) if isinstance(v, dict) else v) for k, v in own.items()},
                               parent.data)
    held = child.data
    child._inherit_data()
    assert child.data == expected and list(child.data) == list(expected) and child.data is held
    for key in ("needs", "outcome", "areas"):
        assert child.data[key] is not parent.data[key]  # copies, as the library's
    child.data["needs"].append("shopping")
    assert parent.data["needs"] == ["meals", "washing"]


def _tiny_spec():
    from engine.bpmn import build_specs

    entry = next(e for e in conformance.MANIFEST if e["expect"] == "runs" and not e.get("xfail"))
    return build_specs(conformance._files(entry), entry["process"])
