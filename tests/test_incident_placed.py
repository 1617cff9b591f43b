"""An incident is placed on the task that failed, wherever it is in the task tree, and retry runs that task again.

The engine found the failed task by the tree's walk for ERROR tasks, which does not look under a task that is not
finished itself: a script that failed after a cycle timer's start event (which stays waiting for its next cycle)
or inside a parallel multi-instance activity (STARTED) gave an incident with no element and no task ("at None",
findings 13 item 9), and retry did not run the failed task again.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.cli import main
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from tests.conftest import START

_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
         'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://carepath.test">')

#: as SpiffWorkflow's timer-cycle-start.bpmn: a cycle timer starts a script calling a function nobody defined
CYCLE = (_HEAD + """
  <bpmn:process id="refills" isExecutable="true">
    <bpmn:startEvent id="cycle_start">
      <bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeCycle>"R2/PT1M"</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:startEvent>
    <bpmn:scriptTask id="refill" name="Refill"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>count = custom_function()</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="cycle_start" targetRef="refill"/>
    <bpmn:sequenceFlow id="f2" sourceRef="refill" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
""").encode()

#: a parallel multi-instance script task whose instances call that function
EACH = (_HEAD + """
  <bpmn:process id="each" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="score" name="Score"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>2</bpmn:loopCardinality>
      </bpmn:multiInstanceLoopCharacteristics>
      <bpmn:script>count = custom_function()</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="score"/>
    <bpmn:sequenceFlow id="f2" sourceRef="score" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
""").encode()


def _engine(db_url: str, **functions) -> Engine:  # type: ignore[no-untyped-def]
    eng = Engine(db_url, registry=HandlerRegistry(), forms=FormLibrary(), functions=functions)
    eng.init(simulated_start=START)
    return eng


@pytest.mark.parametrize(("files", "process", "element", "advance"), [
    pytest.param({"refills.bpmn": CYCLE}, "refills", "refill", True, id="after-a-cycle-timer-start"),
    pytest.param({"each.bpmn": EACH}, "each", "score", False, id="inside-a-parallel-multi-instance"),
])
def test_an_incident_names_the_failed_task_and_retry_runs_it_again(db_url, capsys, files, process, element,
                                                                    advance):
    eng = _engine(db_url)
    try:
        eng.deploy(files=files)
        started = eng.start(process)
        if advance:
            eng.advance_clock(timedelta(minutes=1))
        [incident] = eng.incidents()
        assert "custom_function" in incident["message"]
        assert incident["element_id"] == element and incident["task_id"]  # was None and None
        assert main(["incidents", "--db", db_url]) == 0
        listed = capsys.readouterr().out
        assert f"at {element} " in listed and "None" not in listed
    finally:
        eng.db.dispose()
    # the function now defined, retry runs the failed task again and the instance goes on
    eng = _engine(db_url, custom_function=lambda: 3)
    try:
        result = eng.retry(started.instance_id, actor="owner")
        assert result.incident is None and eng.incidents() == []
        assert eng.instance_snapshot(started.instance_id)["data"]["count"] == 3
    finally:
        eng.db.dispose()
