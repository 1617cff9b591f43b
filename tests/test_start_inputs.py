"""Start inputs: a process gives itself values when it starts, declared on the process
(`load:VARIABLE` = a handler, `default:VARIABLE` = an expression) instead of drawn as steps —
on SQLite and PostgreSQL, on the simulated clock. The engine knows nothing of what the values mean."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import DefinitionError
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.replay import replay_case
from engine.runtime import Engine
from engine.schema import process_versions
from tests.conftest import START

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="defs_{pid}" targetNamespace="http://carepath.test">
  <bpmn:process id="{pid}" name="Wait then act" isExecutable="true">
    <bpmn:extensionElements><camunda:properties>{props}</camunda:properties></bpmn:extensionElements>
"""
BODY = """
    <bpmn:startEvent id="begin" name="Asked"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="act" name="Act" camunda:candidateGroups="team_a" camunda:formKey="note">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="late" name="Deadline" attachedToRef="act" cancelActivity="false">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition>
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">limits["act_within"]</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="chase" name="Chase" camunda:candidateGroups="team_b" camunda:formKey="note">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="chased"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="act"/>
    <bpmn:sequenceFlow id="f2" sourceRef="act" targetRef="done"/>
    <bpmn:sequenceFlow id="f3" sourceRef="late" targetRef="chase"/>
    <bpmn:sequenceFlow id="f4" sourceRef="chase" targetRef="chased"/>
  </bpmn:process>
</bpmn:definitions>
"""
GOOD = ('<camunda:property name="load:limits" value="limits" />'
        '<camunda:property name="default:asked_on" value="now().date().isoformat()" />'
        '<camunda:property name="default:note" value="None" />'
        '<camunda:property name="colour" value="blue" />')  # not carepath's: ignored

# the same process as an older version drew it: a service task loads the limits
OLD = HEAD.format(pid="waits", props="") + BODY.replace(
    '<bpmn:startEvent id="begin" name="Asked"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>',
    '<bpmn:startEvent id="begin" name="Asked"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>'
    '<bpmn:serviceTask id="load" name="Load limits" camunda:type="external" camunda:topic="limits" '
    'camunda:resultVariable="limits"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>'
    '</bpmn:serviceTask><bpmn:sequenceFlow id="f0" sourceRef="begin" targetRef="load"/>').replace(
    '<bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="act"/>',
    '<bpmn:sequenceFlow id="f1" sourceRef="load" targetRef="act"/>').replace(
    "<bpmn:extensionElements><camunda:properties></camunda:properties></bpmn:extensionElements>", "")


def diagram(props: str = GOOD, pid: str = "waits") -> bytes:
    return (HEAD.format(pid=pid, props=props) + BODY).encode()


class Limits:
    def __init__(self) -> None:
        self.value = {"act_within": "P3D"}
        self.fail = False
        self.calls = 0

    def registry(self) -> HandlerRegistry:
        reg = HandlerRegistry()

        @reg.register("limits")
        def limits(ctx):
            self.calls += 1
            if self.fail:
                raise RuntimeError("limits file unreadable")
            return dict(self.value)

        @reg.register("needs_a_key")
        def needs_a_key(ctx, key):
            return {}

        return reg


@pytest.fixture
def limits():
    return Limits()


@pytest.fixture
def eng(db_url, limits):
    e = Engine(db_url, registry=limits.registry(), forms=FormLibrary({"note": {"type": "object"}}))
    e.init(simulated_start=START)
    yield e
    e.db.dispose()


def handler_events(e, case_id):
    return [(ev["data"]["element_id"], ev["data"]["handler"], ev["data"]["output"])
            for ev in e.history(case_id) if ev["type"] == "handler.called"]


def test_the_start_event_loads_the_values_and_fills_the_defaults_before_the_first_task(eng, limits):
    eng.deploy(files={"waits.bpmn": diagram()})
    res = eng.start("waits", data={"name": "A"}, actor="tester")
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["limits"] == {"act_within": "P3D"}
    assert data["asked_on"] == START.date().isoformat()  # the simulated day, not today's
    assert data["note"] is None and "colour" not in data
    # recorded as a handler call at the start event, before the first task is ready
    assert handler_events(eng, res.case_id) == [("begin", "limits", {"act_within": "P3D"})]
    types = [ev["type"] for ev in eng.history(res.case_id)]
    assert types.index("handler.called") < types.index("task.ready")
    [task] = eng.list_tasks(case_id=res.case_id)
    assert (task["element_id"], task["team"]) == ("act", "team_a")
    assert task["due_at"] == START + timedelta(days=3)  # the timer reads the loaded value
    # a changed value reaches new cases only: the running one keeps what it started with
    limits.value = {"act_within": "P10D"}
    again = eng.start("waits", data={"asked_on": "2031-02-27"})
    assert eng.instance_snapshot(again.instance_id)["data"]["asked_on"] == "2031-02-27"  # given: kept
    assert eng.list_tasks(case_id=again.case_id)[0]["due_at"] == START + timedelta(days=10)
    eng.advance_clock(timedelta(days=3))
    assert [t["element_id"] for t in eng.list_tasks(case_id=res.case_id)] == ["act", "chase"]
    assert [t["element_id"] for t in eng.list_tasks(case_id=again.case_id)] == ["act"]


def test_a_load_replaces_a_start_data_value_of_its_name(eng):
    eng.deploy(files={"waits.bpmn": diagram()})
    res = eng.start("waits", data={"limits": {"act_within": "P1D"}})
    assert eng.instance_snapshot(res.instance_id)["data"]["limits"] == {"act_within": "P3D"}
    assert eng.list_tasks(case_id=res.case_id)[0]["due_at"] == START + timedelta(days=3)


def test_an_empty_value_in_the_start_data_gets_the_default(eng):
    eng.deploy(files={"waits.bpmn": diagram()})
    res = eng.start("waits", data={"asked_on": ""})
    assert eng.instance_snapshot(res.instance_id)["data"]["asked_on"] == START.date().isoformat()


def test_a_failing_load_is_an_incident_at_the_start_event_and_a_retry_loads_again(eng, limits):
    eng.deploy(files={"waits.bpmn": diagram()})
    limits.fail = True
    res = eng.start("waits")
    assert res.status == "error"
    assert (res.incident["element_id"], res.incident["handler"]) == ("begin", "limits")
    assert "limits file unreadable" in res.incident["message"]
    assert eng.list_tasks(case_id=res.case_id) == []
    assert "limits" not in eng.instance_snapshot(res.instance_id)["data"]
    limits.fail = False
    again = eng.retry(res.instance_id, actor="admin")
    assert again.status == "waiting"
    assert [t["element_id"] for t in again.ready_tasks] == ["act"]
    assert limits.calls == 2
    assert [e[:2] for e in handler_events(eng, res.case_id)] == [("begin", "limits")]


def test_replay_serves_the_recorded_values(eng, limits):
    eng.deploy(files={"waits.bpmn": diagram()})
    res = eng.start("waits")
    eng.advance_clock(timedelta(days=3))
    limits.value = {"act_within": "P99D"}  # the file changed since: replay must not read it
    report = replay_case(eng, res.case_id)
    assert report.ok, str(report)
    assert limits.calls == 1


@pytest.mark.parametrize(("props", "message"), [
    ('<camunda:property name="load:limits" value="no_such_handler" />',
     "start input 'load:limits' names handler 'no_such_handler', which is not registered"),
    ('<camunda:property name="load:x" value="needs_a_key" />',
     "handler 'needs_a_key' needs parameters (key)"),
    ('<camunda:property name="load:2nd" value="limits" />', "'2nd' is not a variable name"),
    ('<camunda:property name="load:_hidden" value="limits" />', "'_hidden' is not a variable name"),
    ('<camunda:property name="default:when" value="__import__(\'os\')" />', "start input 'default:when' is refused"),
    ('<camunda:property name="default:when" value="" />', "start input 'default:when' has no value"),
    ('<camunda:property name="load:limits" value="limits" /><camunda:property name="default:limits" value="1" />',
     "'limits' is given more than once"),
])
def test_a_wrong_start_input_is_refused_at_deploy_naming_it_and_nothing_is_stored(eng, props, message):
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"waits.bpmn": diagram(props)})
    problems = err.value.problems
    assert any(message in p.message and p.element_id == "waits" and p.file == "waits.bpmn" for p in problems), \
        [p.message for p in problems]
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(process_versions)).first() is None


def test_the_version_says_what_it_reads_at_start(eng):
    eng.deploy(files={"waits.bpmn": diagram()})
    with eng.db.engine.connect() as conn:
        info = json.loads(conn.execute(select(process_versions.c.info)).scalar_one())
    assert info["start_inputs"] == [
        {"kind": "load", "variable": "limits", "source": "limits"},
        {"kind": "default", "variable": "asked_on", "source": "now().date().isoformat()"},
        {"kind": "default", "variable": "note", "source": "None"}]


def test_the_spiffworkflow_dialect_declares_them_the_same_way(eng):
    spiff = diagram("").replace(
        b"<bpmn:extensionElements><camunda:properties></camunda:properties></bpmn:extensionElements>",
        b'<bpmn:extensionElements><spiffworkflow:properties>'
        b'<spiffworkflow:property name="load:limits" value="limits" /></spiffworkflow:properties>'
        b'</bpmn:extensionElements>').replace(
        b'xmlns:xsi=', b'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" xmlns:xsi=')
    eng.deploy(files={"waits.bpmn": spiff})
    res = eng.start("waits")
    assert handler_events(eng, res.case_id) == [("begin", "limits", {"act_within": "P3D"})]


def test_cases_on_the_older_version_with_a_loading_step_keep_running(eng, limits):
    eng.deploy(files={"waits.bpmn": OLD.encode()})
    old = eng.start("waits")
    assert handler_events(eng, old.case_id) == [("load", "limits", {"act_within": "P3D"})]
    eng.deploy(files={"waits.bpmn": diagram()})  # version 2: the step is gone
    new = eng.start("waits")
    assert handler_events(eng, new.case_id) == [("begin", "limits", {"act_within": "P3D"})]
    versions = {i["process_id"]: i for i in eng.get_case(old.case_id)["instances"]}
    assert versions["waits"]["status"] == "waiting"
    eng.advance_clock(timedelta(days=3))  # the old case's timer still fires, its tasks still complete
    tasks = eng.list_tasks(case_id=old.case_id)
    assert [t["element_id"] for t in tasks] == ["act", "chase"]
    for t in tasks:
        eng.complete_task(t["id"], {})
    assert eng.get_case(old.case_id)["instances"][0]["status"] == "completed"
    assert replay_case(eng, old.case_id).ok
