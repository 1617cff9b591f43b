"""Loops and multi-instance activities go on when their workflow is restored from storage in a new process.

SpiffWorkflow merges an instance of a multi-instance (or standard loop) activity into its parent when the instance
completes, through a signal of the instance's spec (`completed_event`, connected to the loop's `merge_child`); the
library connects it when it creates the first instance, or when it reads a spec from its serializer. carepath
builds its specs with the parser and keeps them out of the stored state (engine/state.py), so a process that
restored the workflow — the command line, another worker, a server restarted — had the signal unconnected: the
last instance completed, nothing was merged, and the parallel multi-instance parent stayed STARTED for ever (the
instance "waiting" with no task, timer or incident), a sequential one never created its next instance.

Every step here runs as a new process would: a new engine with the diagrams' specs built again
(`engine.bpmn._BUILT_SPECS` emptied). Each shape: a parallel multi-instance task over a collection and with a
cardinality, a parallel multi-instance embedded subprocess and call activity, sequential multi-instance, a
standard loop, and messages delivered into a parallel multi-instance subprocess (findings 13, items 1 and 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import bpmn
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.replay import replay_case
from engine.runtime import Engine
from engine.workflow_state import _all_tasks
from tests.conftest import START

FILES = Path(__file__).parent / "conformance" / "files"

_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
         'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://carepath.test">')

#: a parallel multi-instance embedded subprocess over a collection: one "Visit" a person, each gives a note
SUBPROCESS = (_HEAD + """
  <bpmn:process id="visits" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:subProcess id="each" name="Each person">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:multiInstanceLoopCharacteristics>
        <bpmn:loopDataInputRef>people</bpmn:loopDataInputRef>
        <bpmn:loopDataOutputRef>notes</bpmn:loopDataOutputRef>
        <bpmn:inputDataItem id="person" name="person"/>
        <bpmn:outputDataItem id="note" name="note"/>
      </bpmn:multiInstanceLoopCharacteristics>
      <bpmn:startEvent id="s_start"><bpmn:outgoing>s1</bpmn:outgoing></bpmn:startEvent>
      <bpmn:task id="visit" name="Visit"><bpmn:incoming>s1</bpmn:incoming><bpmn:outgoing>s2</bpmn:outgoing></bpmn:task>
      <bpmn:endEvent id="s_end"><bpmn:incoming>s2</bpmn:incoming></bpmn:endEvent>
      <bpmn:sequenceFlow id="s1" sourceRef="s_start" targetRef="visit"/>
      <bpmn:sequenceFlow id="s2" sourceRef="visit" targetRef="s_end"/>
    </bpmn:subProcess>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="each"/>
    <bpmn:sequenceFlow id="f2" sourceRef="each" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
""").encode()

#: a parallel multi-instance call activity with a cardinality, calling a process of one task
CALL = (_HEAD + """
  <bpmn:process id="reviews" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:callActivity id="review" name="Review" calledElement="one_review">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:multiInstanceLoopCharacteristics>
        <bpmn:loopCardinality>2</bpmn:loopCardinality>
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:callActivity>
    <bpmn:task id="after" name="After"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:task>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="after"/>
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end"/>
  </bpmn:process>
  <bpmn:process id="one_review" isExecutable="true">
    <bpmn:startEvent id="r_start"><bpmn:outgoing>r1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:task id="check" name="Check"><bpmn:incoming>r1</bpmn:incoming><bpmn:outgoing>r2</bpmn:outgoing></bpmn:task>
    <bpmn:endEvent id="r_end"><bpmn:incoming>r2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="r1" sourceRef="r_start" targetRef="check"/>
    <bpmn:sequenceFlow id="r2" sourceRef="check" targetRef="r_end"/>
  </bpmn:process>
</bpmn:definitions>
""").encode()


def _public(name: str) -> dict[str, bytes]:
    return {name: (FILES / name).read_bytes()}


# each instance's output computed from its own input item, whichever instance the task list gives first
TEN_TIMES = lambda item: item("input_item") * 10  # noqa: E731
TWICE = lambda item: item("input_item") * 2  # noqa: E731
SEEN = lambda item: item("person") + " seen"  # noqa: E731

#: (id, files, process, start data, [(element to complete, its data)], expected final data)
SHAPES = [
    pytest.param(_public("spiff-parallel_multiinstance_loop_input.bpmn"), "main", {"input_data": [1, 2, 3]},
                 [("any_task", {"output_item": TEN_TIMES})] * 3,
                 {"input_data": [1, 2, 3], "output_data": [10, 20, 30]}, id="parallel-task-collection"),
    pytest.param(_public("spiff-parallel_multiinstance_cardinality.bpmn"), "main", {},
                 [("any_task", {"output_item": TWICE})] * 3,
                 {"output_data": [0, 2, 4]}, id="parallel-task-cardinality"),
    pytest.param({"visits.bpmn": SUBPROCESS}, "visits", {"people": ["Ann", "Bob"]},
                 [("visit", {"note": SEEN})] * 2,
                 {"people": ["Ann", "Bob"], "notes": ["Ann seen", "Bob seen"]}, id="parallel-subprocess-collection"),
    pytest.param({"reviews.bpmn": CALL}, "reviews", {}, [("check", {}), ("check", {}), ("after", {"done": 1})],
                 {"done": 1}, id="parallel-call-activity-cardinality"),
    pytest.param(_public("spiff-sequential_multiinstance_cardinality.bpmn"), "main", {},
                 [("any_task", {"output_item": TWICE})] * 3,
                 {"output_data": [0, 2, 4]}, id="sequential-task-cardinality"),
    pytest.param(_public("spiff-standard_loop.bpmn"), "main", {"done": False},
                 [("any_task", {}), ("any_task", {"done": True})], {"done": True}, id="standard-loop"),
]


@pytest.fixture
def new_process(db_url):
    """An engine as a new process would open the database: no spec built, no workflow kept in memory."""
    made: list[Engine] = []

    def open_() -> Engine:
        bpmn._BUILT_SPECS.clear()
        eng = Engine(db_url, registry=HandlerRegistry(), forms=FormLibrary())
        eng.init(simulated_start=START)
        made.append(eng)
        return eng

    yield open_
    for eng in made:
        eng.db.dispose()


def _parallel(files: dict[str, bytes]) -> bool:
    """Whether the diagram's multi-instance activity runs its instances side by side (not isSequential)."""
    return any(b'isSequential="true"' not in data and b"multiInstanceLoopCharacteristics" in data
               for data in files.values())


def _item(eng: Engine, task: dict[str, Any], name: str) -> Any:
    """The value `name` has in a ready task's data (its multi-instance input item), read from the stored workflow."""
    with eng.db.engine.connect() as conn:
        _row, wf = eng._load(conn, task["instance_id"])
    [found] = [t for t in _all_tasks(wf) if str(t.id) == task["id"]]
    return found.data[name]


def _complete(eng: Engine, case_id: int, element: str, data: dict[str, Any]) -> None:
    """Complete a ready `element`; a callable value is computed from the task's own data (`_item`)."""
    ready = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element]
    assert ready, f"no ready task {element!r}: {[t['element_id'] for t in eng.list_tasks(case_id=case_id)]}"
    answers = {k: v(lambda name: _item(eng, ready[0], name)) if callable(v) else v for k, v in data.items()}
    eng.complete_task(ready[0]["id"], answers, actor="worker")


@pytest.mark.parametrize(("files", "process", "data", "steps", "expected"), SHAPES)
def test_a_loop_goes_on_when_each_step_runs_in_a_new_process(new_process, files, process, data, steps, expected):
    new_process().deploy(files=files)
    case_id = new_process().start(process, data=data).case_id
    for element, answers in steps:
        _complete(new_process(), case_id, element, answers)
    eng = new_process()
    [instance] = eng.get_case(case_id)["instances"]
    assert instance["status"] == "completed", eng.list_tasks(case_id=case_id)
    assert eng.incidents() == []
    final = {k: eng.instance_snapshot(instance["id"])["data"].get(k) for k in expected}
    if _parallel(files):
        # a parallel activity's output collection holds each instance's output item in the order the instances
        # completed (SpiffWorkflow appends it, as plain SpiffWorkflow does; the task list's order is not fixed)
        final = {k: sorted(v) if k in ("output_data", "notes") else v for k, v in final.items()}
    assert final == expected
    # an auditor's replay, in a process of its own, runs the case again to the same end
    assert replay_case(new_process(), case_id).ok


def test_messages_delivered_into_a_parallel_multi_instance_subprocess_complete_it(new_process):
    """SpiffWorkflow's correlation.bpmn (proc_1): a multi-instance embedded subprocess of two, each item waiting for
    its 'proc_2_response' correlated by task_num; both delivered, each from a process of its own, proc_1 ends."""
    new_process().deploy(files=_public("spiff-correlation.bpmn"))
    case_id = new_process().start("proc_1").case_id
    for n in (1, 2):
        _complete(new_process(), case_id, "configure", {"task_num": n})
    for n in (1, 2):
        new_process().deliver_message("proc_2_response", case_id=case_id, correlation={"task_num": n},
                                      data={"init_id": n})
    eng = new_process()
    proc_1 = [i for i in eng.get_case(case_id)["instances"] if i["process_id"] == "proc_1"]
    assert [i["status"] for i in proc_1] == ["completed"]
    assert eng.incidents() == []
    assert replay_case(new_process(), case_id).ok
