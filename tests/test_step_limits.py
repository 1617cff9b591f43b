"""A diagram made only of cheap elements cannot keep a step running for ever either (engine/step_limits.py).

Each script is under the script budget (tests/test_script_budget.py); these are the shapes public diagrams have
that kept a step going with no script over budget: a loop of script tasks that never waits (it stopped silently
at the library's depth, the case "waiting" on nothing), a multi-instance activity over a huge collection (minutes
of one step holding the write lock), a call activity that calls its own process (the step never returned) and a
process that starts itself with `start_process` (hundreds of instances, then a RecursionError)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.step_limits import StepLimits
from tests.budget_diagrams import timer_then_script

_NS = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
       'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" targetNamespace="http://carepath.test"')


def _process(process_id: str, body: str, *, wait: bool = False, condition: str = "") -> bytes:
    """start -> (a one-day timer, with `wait`) -> `body` (from `first`, ending at `last`) -> end."""
    head = ('<bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>fw</bpmn:outgoing>'
            '<bpmn:timerEventDefinition><bpmn:timeDuration>P1D</bpmn:timeDuration></bpmn:timerEventDefinition>'
            '</bpmn:intermediateCatchEvent><bpmn:sequenceFlow id="fw" sourceRef="wait" targetRef="first"/>'
            '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>' if wait else
            '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="first"/>')
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {_NS} id="{process_id}_defs">
  <bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    {head}
    {body}
    <bpmn:endEvent id="end"><bpmn:incoming>fz</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="fz" sourceRef="last" targetRef="end">{condition}</bpmn:sequenceFlow>
  </bpmn:process>
</bpmn:definitions>""".encode()


#: a script task and a gateway that goes back to it while `n` is not negative: never ends, never waits
LOOP = """
<bpmn:scriptTask id="first" name="Add one" scriptFormat="python"><bpmn:incoming>f0</bpmn:incoming>
  <bpmn:incoming>fw</bpmn:incoming><bpmn:incoming>back</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
  <bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
<bpmn:exclusiveGateway id="last" default="back"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>back</bpmn:outgoing>
  <bpmn:outgoing>fz</bpmn:outgoing></bpmn:exclusiveGateway>
<bpmn:sequenceFlow id="f1" sourceRef="first" targetRef="last"/>
<bpmn:sequenceFlow id="back" sourceRef="last" targetRef="first"/>
"""

NEVER = "<bpmn:conditionExpression>n &lt; 0</bpmn:conditionExpression>"

#: a parallel multi-instance script task over `count` items
MANY = """
<bpmn:scriptTask id="first" name="Each item" scriptFormat="python"><bpmn:incoming>f0</bpmn:incoming>
  <bpmn:incoming>fw</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
  <bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>count</bpmn:loopCardinality>
  </bpmn:multiInstanceLoopCharacteristics><bpmn:script>seen = 1</bpmn:script></bpmn:scriptTask>
<bpmn:manualTask id="last" name="Look"><bpmn:incoming>f1</bpmn:incoming>
  <bpmn:outgoing>fz</bpmn:outgoing></bpmn:manualTask>
<bpmn:sequenceFlow id="f1" sourceRef="first" targetRef="last"/>
"""


def _calls_itself(process_id: str) -> str:
    return f"""
<bpmn:callActivity id="first" name="Do it again" calledElement="{process_id}"><bpmn:incoming>f0</bpmn:incoming>
  <bpmn:incoming>fw</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:callActivity>
<bpmn:manualTask id="last" name="Look"><bpmn:incoming>f1</bpmn:incoming>
  <bpmn:outgoing>fz</bpmn:outgoing></bpmn:manualTask>
<bpmn:sequenceFlow id="f1" sourceRef="first" targetRef="last"/>
"""


def _starts_itself(process_id: str) -> str:
    return f"""
<bpmn:serviceTask id="first" name="Start it again" camunda:type="external" camunda:topic="start_process">
  <bpmn:extensionElements><camunda:inputOutput>
    <camunda:inputParameter name="process_id">"{process_id}"</camunda:inputParameter>
  </camunda:inputOutput></bpmn:extensionElements>
  <bpmn:incoming>f0</bpmn:incoming><bpmn:incoming>fw</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:serviceTask>
<bpmn:manualTask id="last" name="Look"><bpmn:incoming>f1</bpmn:incoming>
  <bpmn:outgoing>fz</bpmn:outgoing></bpmn:manualTask>
<bpmn:sequenceFlow id="f1" sourceRef="first" targetRef="last"/>
"""


def _only_incident(eng, instance_id: int) -> dict:
    [incident] = [i for i in eng.incidents() if i["instance_id"] == instance_id]
    return incident


@pytest.mark.timeout(120)
def test_a_loop_of_script_tasks_that_never_waits_is_an_incident_not_a_case_waiting_on_nothing(make_engine):
    eng = make_engine()
    eng.deploy(files={"spin.bpmn": _process("spin", LOOP, condition=NEVER)})
    result = eng.start("spin", data={"n": 0}, title="Loop")
    # before: status "waiting", no task, no timer, no incident — the loop had gone past the depth the library
    # looks at, and nothing would ever move the case again
    assert result.status == "error"
    incident = _only_incident(eng, result.instance_id)
    assert incident["element_id"] == "first"
    assert "more than 1,000 tasks long at 'Add one'" in incident["message"]
    assert "a loop" in incident["message"]
    assert eng.instance_snapshot(result.instance_id)["status"] == "error"
    assert eng.verify(result.case_id)[1] == []


@pytest.mark.timeout(120)
def test_a_loop_behind_a_timer_is_one_incident_and_the_other_cases_timers_fire(make_engine):
    eng = make_engine()
    eng.deploy(files={"spin.bpmn": _process("spin", LOOP, wait=True, condition=NEVER),
                      "fine.bpmn": timer_then_script("fine", "done = 1\n")})
    spin = eng.start("spin", data={"n": 0}, title="Loop").instance_id
    fine = [eng.start("fine", title=f"Fine {i}").instance_id for i in range(5)]
    eng.advance_clock(timedelta(days=2))
    assert [eng.instance_snapshot(i)["status"] for i in fine] == ["completed"] * 5
    assert eng.instance_snapshot(spin)["status"] == "error"
    assert _only_incident(eng, spin)["element_id"] in ("first", "last")  # where the path reached the depth


@pytest.mark.timeout(120)
def test_a_multi_instance_over_too_many_items_is_an_incident_and_retry_runs_it_under_a_higher_limit(
        make_engine, monkeypatch):
    monkeypatch.setenv("CAREPATH_STEP_MAX_TASKS", "300")
    eng = make_engine()
    eng.deploy(files={"many.bpmn": _process("many", MANY)})
    assert eng.start("many", data={"count": 50}, title="Fifty").status == "waiting"  # under the limit: runs
    result = eng.start("many", data={"count": 1_000_000}, title="A million")
    assert result.status == "error"  # before: a million tasks made in one step, for hours
    incident = _only_incident(eng, result.instance_id)
    assert incident["element_id"] == "first"
    assert "made more than 300 tasks (at 'Each item')" in incident["message"]
    assert "CAREPATH_STEP_MAX_TASKS" in incident["message"]

    big = eng.start("many", data={"count": 400}, title="Four hundred")
    assert big.status == "error"
    eng.step_limits = StepLimits(max_tasks=5000)  # the operator raises the limit, then retries
    assert eng.retry(big.instance_id).status == "waiting"
    assert [t["element_id"] for t in eng.list_tasks(case_id=big.case_id)] == ["last"]


@pytest.mark.timeout(120)
def test_a_call_activity_that_calls_its_own_process_is_an_incident_not_a_step_that_never_returns(make_engine):
    eng = make_engine()
    eng.deploy(files={"again.bpmn": _process("again", _calls_itself("again"))})
    result = eng.start("again", title="Again")
    assert result.status == "error"
    incident = _only_incident(eng, result.instance_id)
    assert incident["element_id"] == "first"
    assert "'Do it again' would start a subprocess nested 51 deep, more than the 50 allowed" in incident["message"]


@pytest.mark.timeout(120)
def test_a_process_that_starts_itself_stops_at_the_nesting_limit_with_an_incident(make_engine, monkeypatch):
    monkeypatch.setenv("CAREPATH_STEP_MAX_NESTING", "5")
    eng = make_engine()
    eng.deploy(files={"again.bpmn": _process("again", _starts_itself("again"))})
    result = eng.start("again", title="Again")
    assert len(result.started_instances) == 5  # before: hundreds, until Python's recursion limit
    [incident] = eng.incidents()
    assert incident["element_id"] == "first" and incident["instance_id"] == result.started_instances[-1]
    assert "'Start it again' would start a process 6 deep in one step" in incident["message"]


def test_the_limits_come_from_the_environment_and_bad_values_are_named():
    assert StepLimits.from_env({}) == StepLimits(5000, 50)
    assert StepLimits.from_env({"CAREPATH_STEP_MAX_TASKS": "20000", "CAREPATH_STEP_MAX_NESTING": " 8 "}) == \
        StepLimits(20000, 8)
    with pytest.raises(ValueError, match="CAREPATH_STEP_MAX_TASKS must be a whole number, not 'lots'"):
        StepLimits.from_env({"CAREPATH_STEP_MAX_TASKS": "lots"})
    with pytest.raises(ValueError, match="CAREPATH_STEP_MAX_NESTING must be 1 or more, not 0"):
        StepLimits.from_env({"CAREPATH_STEP_MAX_NESTING": "0"})

