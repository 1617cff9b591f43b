"""Camunda 7 attributes and Zeebe extensions that carepath reads and honours (docs/diagram-attributes.md):
assignee, candidate users and groups as expressions, due dates, decision result variables and mappings, send
tasks with an external topic or job type; and everything it does not support refused at deploy by name."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.bpmn import parse_bundle
from engine.bpmn_parser import DecisionResult, map_decision_result
from engine.errors import DefinitionError, Problem

FIXTURES = Path(__file__).parent / "fixtures" / "camunda"
DMN = FIXTURES / "support_level.dmn"
DUE = "2031-03-10T17:00:00+00:00"
START_DATA = {"approverGroups": "managers", "initiator": "alice", "due": "2031-03-10T17:00:00Z",
              "reviewer": "bob", "score": 7}

BPMN_OPEN = ('<?xml version="1.0" encoding="UTF-8"?>\n'
             '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
             'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
             'id="defs">\n')


def one_element(element: str) -> dict[str, bytes]:
    """start -> `element` (id "x") -> end, in a file named attrs.bpmn."""
    return {"attrs.bpmn": (BPMN_OPEN + '<bpmn:process id="p" isExecutable="true">\n<bpmn:startEvent id="s"/>\n'
                           + element + '\n<bpmn:endEvent id="e"/>\n'
                           '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x"/>\n'
                           '<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e"/>\n'
                           "</bpmn:process>\n</bpmn:definitions>\n").encode()}


def problems_of(files: dict[str, bytes], **kwargs) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse_bundle(files, **kwargs)
    return caught.value.problems


def bundle_files(name: str) -> dict[str, bytes]:
    return {name: (FIXTURES / name).read_bytes(), DMN.name: DMN.read_bytes()}


# --- deploy: what is read --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["camunda_attributes.bpmn", "zeebe_attributes.bpmn"])
def test_an_expression_in_candidate_groups_is_not_taken_as_a_team_name(name: str) -> None:
    # before: the team was the literal text "${approverGroups}", and a deploy that knows its teams refused it
    info = parse_bundle(bundle_files(name), handlers={"notify": ("message",)}, teams={"duty", "managers"})
    [process] = info.processes.values()
    assert not any("approverGroups" in g for g in process.user_tasks["approve"].candidate_groups)
    assert "tell_family" in process.service_tasks  # the send task runs a handler
    assert process.service_tasks["tell_family"].handler == "notify"


def test_a_send_task_with_an_unregistered_topic_is_refused_at_deploy() -> None:
    # before: a send task with an external topic deployed and ran as a no-op
    [problem] = problems_of(one_element('<bpmn:sendTask id="x" camunda:type="external" camunda:topic="post_it"/>'),
                            handlers={"notify"})
    assert (problem.element_id, problem.line) == ("x", 5)
    assert "handler 'post_it', which is not registered" in problem.message


# --- run: what is honoured, in the engine and the task lists ------------------------------------


@pytest.mark.parametrize("name", ["camunda_attributes.bpmn", "zeebe_attributes.bpmn"])
def test_assignee_groups_and_due_date_are_evaluated_and_shown_in_the_task_list(make_engine, calls, name) -> None:
    eng = make_engine()
    eng.deploy([FIXTURES / name, DMN])
    res = eng.start(name.removesuffix(".bpmn"), data=START_DATA)
    [task] = eng.list_tasks(case_id=res.case_id)
    assert task["element_id"] == "approve"
    assert task["team"] == "managers" and task["candidate_groups"] == ["managers"]
    assert task["assignee"] == "alice"
    assert task["due_at"] == datetime(2031, 3, 10, 17, 0, tzinfo=timezone.utc)
    # the inbox's own queries read these columns: alice's tasks, the managers' queue
    assert [t["id"] for t in eng.list_tasks(assignee="alice")] == [task["id"]]
    assert [t["id"] for t in eng.list_tasks(team="managers")] == [task["id"]]

    ready = [e["data"] for e in eng.history(res.case_id) if e["type"] == "task.ready"]
    assert ready[-1]["assignee"] == "alice"  # the history says who the diagram gave it to

    eng.complete_task(task["id"], {}, actor="alice")
    # the decision's result is kept in the result variable (singleResult: the one rule's outputs) and the
    # send task ran its handler with it
    assert calls.log[-1][0] == "notify"
    assert calls.log[-1][1]["message"] == ("level high, 10 hours" if "camunda" in name else "high")
    if "camunda" in name:
        [review] = eng.list_tasks(case_id=res.case_id)
        assert review["element_id"] == "review"
        # offered to one person only (no assignee given): theirs at once
        assert (review["candidate_users"], review["assignee"]) == (["bob"], "bob")
        assert review["team"] == "duty"
        assert review["due_at"] == datetime(2031, 4, 1, 12, 0, tzinfo=timezone.utc)


def test_a_computed_team_that_does_not_exist_is_an_incident_naming_the_attribute(make_engine, calls) -> None:
    eng = make_engine()
    eng.registry.teams = ("duty", "managers")
    eng.deploy([FIXTURES / "camunda_attributes.bpmn", DMN])
    res = eng.start("camunda_attributes", data={**START_DATA, "approverGroups": "nobody"})
    assert res.status == "error"
    [incident] = eng.incidents()
    assert incident["element_id"] == "approve"
    assert "camunda:candidateGroups" in incident["message"] and "'nobody'" in incident["message"]
    assert eng.list_tasks(case_id=res.case_id) == []
    # once the team exists, a retry evaluates the assignment again: the task goes to it
    eng.registry.teams = ("duty", "managers", "nobody")
    assert eng.retry(res.instance_id).status == "waiting"
    [task] = eng.list_tasks(case_id=res.case_id)
    assert (task["team"], task["assignee"]) == ("nobody", "alice")


def test_a_due_date_that_is_not_a_date_is_an_incident(make_engine) -> None:
    eng = make_engine()
    eng.deploy([FIXTURES / "camunda_attributes.bpmn", DMN])
    res = eng.start("camunda_attributes", data={**START_DATA, "due": "next Tuesday"})
    assert res.status == "error"
    [incident] = eng.incidents()
    assert "camunda:dueDate" in incident["message"] and "next Tuesday" in incident["message"]


# --- decision result mapping --------------------------------------------------------------------


def _mapped(mapping: str, outputs: list[dict], collect: bool = False):
    return map_decision_result(DecisionResult("r", mapping, "camunda:resultVariable"), outputs, collect)


def test_map_decision_result_as_camunda_does() -> None:
    assert _mapped("singleEntry", [{"band": "low"}]) == "low"
    assert _mapped("singleEntry", []) is None
    assert _mapped("singleResult", [{"band": "low", "hours": 2}]) == {"band": "low", "hours": 2}
    assert _mapped("collectEntries", [{"band": "low"}, {"band": "high"}]) == ["low", "high"]
    assert _mapped("resultList", [{"a": 1}, {"a": 2}]) == [{"a": 1}, {"a": 2}]
    assert _mapped("zeebe", [{"band": "low"}]) == "low"
    assert _mapped("zeebe", [{"band": "low", "hours": 2}]) == {"band": "low", "hours": 2}
    assert _mapped("zeebe", [{"band": "low"}, {"band": "high"}], collect=True) == ["low", "high"]


@pytest.mark.parametrize(("mapping", "outputs", "words"), [
    ("singleEntry", [{"a": 1}, {"a": 2}], "2 rules matched; singleEntry takes one"),
    ("singleEntry", [{"a": 1, "b": 2}], "the rule gives 2 outputs; singleEntry takes one"),
    ("singleResult", [{"a": 1}, {"a": 2}], "2 rules matched; singleResult takes one"),
    ("collectEntries", [{"a": 1, "b": 2}], "collectEntries takes one output a rule"),
])
def test_a_decision_result_that_does_not_fit_its_mapping_says_why(mapping, outputs, words) -> None:
    with pytest.raises(ValueError, match=words):
        _mapped(mapping, outputs)


# --- deploy: what is refused, by name -------------------------------------------------------------


@pytest.mark.parametrize(("element", "words"), [
    ('<bpmn:userTask id="x" camunda:formKey="f" camunda:assignee="${user.name}"/>',
     'camunda:assignee="${user.name}" is a JUEL expression; carepath evaluates Python expressions'),
    ('<bpmn:userTask id="x" camunda:formKey="f" camunda:candidateGroups="${a ? b : c}"/>',
     "camunda:candidateGroups"),
    ('<bpmn:userTask id="x" camunda:formKey="f"><bpmn:extensionElements><zeebe:assignmentDefinition '
     'assignee="=if a then b else c"/></bpmn:extensionElements></bpmn:userTask>',
     'zeebe:assignmentDefinition assignee="=if a then b else c" is a FEEL expression'),
    ('<bpmn:userTask id="x" camunda:formKey="f" camunda:followUpDate="soon"/>',
     'camunda:followUpDate="soon" on user task \'x\': not an ISO 8601 date'),
    ('<bpmn:userTask id="x" camunda:formKey="f"><bpmn:extensionElements><zeebe:taskSchedule '
     'followUpDate="=later + 1"/></bpmn:extensionElements></bpmn:userTask>',
     'zeebe:taskSchedule followUpDate="=later + 1" is a FEEL expression'),
    ('<bpmn:userTask id="x" camunda:formKey="f" camunda:dueDate="tomorrow"/>',
     'camunda:dueDate="tomorrow" on user task \'x\': not an ISO 8601 date'),
    ('<bpmn:userTask id="x" camunda:formKey="f" camunda:candidateUsers="${a or b}"/>',
     'camunda:candidateUsers="${a or b}" is a JUEL expression'),
    ('<bpmn:userTask id="x" camunda:formKey="f" camunda:assignee="ann, bob"/>',
     'camunda:assignee="ann, bob" on user task \'x\' names several people'),
    ('<bpmn:userTask id="x" camunda:formKey="f" camunda:priority="50"/>',
     "camunda:priority on 'x' (a userTask) is not supported"),
    ('<bpmn:userTask id="x" camunda:formKey="f"><bpmn:extensionElements><camunda:taskListener event="create" '
     'class="a.B"/></bpmn:extensionElements></bpmn:userTask>',
     "camunda:taskListener on 'x' (a userTask) is not supported: carepath runs no task listeners"),
    ('<bpmn:businessRuleTask id="x" camunda:decisionRef="d" camunda:resultVariable="r" '
     'camunda:mapDecisionResult="firstOne"/>',
     'camunda:mapDecisionResult="firstOne" is not one of singleEntry, singleResult, collectEntries, resultList'),
    ('<bpmn:businessRuleTask id="x" camunda:decisionRef="d" camunda:mapDecisionResult="singleEntry"/>',
     "camunda:mapDecisionResult is given without camunda:resultVariable"),
    ('<bpmn:serviceTask id="x" camunda:type="external" camunda:topic="notify"><bpmn:extensionElements>'
     '<zeebe:taskDefinition type="notify"/><zeebe:linkedResource/></bpmn:extensionElements></bpmn:serviceTask>',
     "zeebe:linkedResource on 'x' (a serviceTask) is not supported"),
])
def test_an_unsupported_attribute_is_a_deploy_problem_naming_it_the_element_and_the_line(element, words) -> None:
    problems = problems_of(one_element(element), handlers={"notify"})
    mine = [p for p in problems if words in p.message]
    assert mine, [str(p) for p in problems]
    assert all((p.file, p.element_id, p.line) == ("attrs.bpmn", "x", 5)
               for p in mine)
    assert mine[0].file == "attrs.bpmn" and mine[0].line == 5


def test_the_attributes_camunda_uses_for_itself_alone_are_accepted() -> None:
    element = ('<bpmn:userTask id="x" camunda:formKey="f" camunda:asyncBefore="true" camunda:candidateGroups="duty"'
               ' camunda:assignee="alice" camunda:dueDate="2031-04-01"/>')
    info = parse_bundle(one_element(element))
    assert info.processes["p"].user_tasks["x"].candidate_groups == ("duty",)


def test_a_decision_result_that_does_not_fit_its_mapping_is_an_incident(make_engine) -> None:
    text = (FIXTURES / "camunda_attributes.bpmn").read_text().replace('"singleResult"', '"singleEntry"')
    eng = make_engine()
    eng.deploy(files={"camunda_attributes.bpmn": text.encode(), DMN.name: DMN.read_bytes()})
    res = eng.start("camunda_attributes", data=START_DATA)
    [task] = eng.list_tasks(case_id=res.case_id)
    assert eng.complete_task(task["id"], {}, actor="alice").status == "error"
    [incident] = eng.incidents()
    assert incident["element_id"] == "decide_level"
    assert "the rule gives 2 outputs; singleEntry takes one" in incident["message"]


def test_a_juel_variable_as_a_service_parameter_is_that_variable() -> None:
    element = ('<bpmn:serviceTask id="x" camunda:type="external" camunda:topic="notify"><bpmn:extensionElements>'
               '<camunda:inputOutput><camunda:inputParameter name="message">${note}</camunda:inputParameter>'
               '</camunda:inputOutput></bpmn:extensionElements></bpmn:serviceTask>')
    info = parse_bundle(one_element(element), handlers={"notify"})
    assert info.processes["p"].service_tasks["x"].params == {"message": "note"}


def test_the_assignee_and_due_date_show_in_the_assignees_task_list_through_the_api(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.demo_users import create_demo_users, demo_password, demo_username
    from engine.forms import FormLibrary
    from engine.runtime import Engine
    from tests.conftest import START, Calls

    eng = Engine(f"sqlite:///{tmp_path / 'api.db'}", registry=Calls().registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([FIXTURES / "camunda_attributes.bpmn", DMN])
    app = create_app(eng, run_timers=False)
    create_demo_users(eng)
    worker = demo_username("social_worker")  # in team social_work, not in the task's team (finance)
    eng.start("camunda_attributes", data={**START_DATA, "initiator": worker, "approverGroups": "finance"})
    client = TestClient(app)
    r = client.post("/api/session", json={"username": worker, "password": demo_password("social_worker")})
    assert r.status_code == 200, r.text
    [task] = client.get("/api/tasks").json()["tasks"]
    assert (task["element_id"], task["assignee"], task["team"]) == ("approve", worker, "finance")
    assert task["due_at"].startswith("2031-03-10T17:00:00")
    eng.db.dispose()


@pytest.mark.parametrize("text", ["${reviewDate}", "=reviewDate"])
def test_a_timer_naming_a_variable_in_juel_or_feel_waits_for_that_date(make_engine, text) -> None:
    element = (f'<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDate>{text}'
               '</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>\n'
               '<bpmn:userTask id="x" camunda:formKey="decision"/>\n'
               '<bpmn:sequenceFlow id="f0" sourceRef="wait" targetRef="x"/>')
    files = one_element(element)
    files["attrs.bpmn"] = files["attrs.bpmn"].replace(b'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x"/>',
                                                      b'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="wait"/>')
    eng = make_engine()
    eng.deploy(files=files)
    res = eng.start("p", data={"reviewDate": "2031-03-05T09:00:00Z"})
    assert eng.list_tasks(case_id=res.case_id) == []
    eng.advance_clock(to=datetime(2031, 3, 5, 8, 59, tzinfo=timezone.utc))
    assert eng.list_tasks(case_id=res.case_id) == []
    eng.advance_clock(to=datetime(2031, 3, 5, 9, 0, tzinfo=timezone.utc))
    assert [t["element_id"] for t in eng.list_tasks(case_id=res.case_id)] == ["x"]


@pytest.mark.parametrize("condition", ["${urgent}", "#{urgent}", "=urgent"])
def test_a_condition_naming_a_variable_in_juel_or_feel_routes_on_that_variable(make_engine, condition) -> None:
    process = (BPMN_OPEN + '<bpmn:process id="route" isExecutable="true">\n<bpmn:startEvent id="s"/>\n'
               '<bpmn:exclusiveGateway id="gw" default="f_no"/>\n<bpmn:userTask id="x" camunda:formKey="decision"/>\n'
               '<bpmn:endEvent id="e"/>\n<bpmn:endEvent id="e2"/>\n'
               '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="gw"/>\n'
               f'<bpmn:sequenceFlow id="f_yes" sourceRef="gw" targetRef="x"><bpmn:conditionExpression>{condition}'
               '</bpmn:conditionExpression></bpmn:sequenceFlow>\n'
               '<bpmn:sequenceFlow id="f_no" sourceRef="gw" targetRef="e2"/>\n'
               '<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e"/>\n</bpmn:process>\n</bpmn:definitions>\n')
    eng = make_engine()
    eng.deploy(files={"route.bpmn": process.encode()})
    urgent = eng.start("route", data={"urgent": True})
    assert [t["element_id"] for t in eng.list_tasks(case_id=urgent.case_id)] == ["x"]
    assert eng.start("route", data={"urgent": False}).status == "completed"


def test_a_condition_in_juel_beyond_a_variable_name_is_refused_naming_juel() -> None:
    files = one_element('<bpmn:exclusiveGateway id="x" default="f2"/><bpmn:endEvent id="e2"/>')
    files["attrs.bpmn"] = files["attrs.bpmn"].replace(
        b"</bpmn:process>", b'<bpmn:sequenceFlow id="f3" sourceRef="x" targetRef="e2"><bpmn:conditionExpression>'
                            b"${urgent == true}</bpmn:conditionExpression></bpmn:sequenceFlow></bpmn:process>")
    [problem] = problems_of(files)
    assert problem.element_id == "f3"
    assert "this is a JUEL expression; carepath evaluates Python expressions: write `urgent == True`" in \
        problem.message


# --- follow-up dates, several candidate users, the initiator (issue 13, item 4) ------------------------------


FOLLOW_UP = datetime(2027, 3, 12, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("element", [
    '<bpmn:userTask id="x" camunda:formKey="decision" camunda:followUpDate="2027-03-12T09:00:00Z"/>',
    '<bpmn:userTask id="x" camunda:formKey="decision" camunda:followUpDate="${followUp}"/>',
    '<bpmn:userTask id="x"><bpmn:extensionElements><zeebe:formDefinition formId="decision"/>'
    '<zeebe:taskSchedule followUpDate="=followUp"/></bpmn:extensionElements></bpmn:userTask>',
])
def test_a_follow_up_date_is_kept_on_the_task(make_engine, element) -> None:
    # before: camunda:followUpDate and zeebe followUpDate were refused at deploy
    eng = make_engine()
    eng.deploy(files=one_element(element))
    res = eng.start("p", data={"followUp": "2027-03-12T09:00:00Z"})
    [task] = eng.list_tasks(case_id=res.case_id)
    assert task["follow_up_at"] == FOLLOW_UP
    assert task["due_at"] is None  # a follow-up date is no due date


def test_a_computed_follow_up_date_that_is_not_a_date_is_an_incident(make_engine) -> None:
    eng = make_engine()
    eng.deploy(files=one_element('<bpmn:userTask id="x" camunda:formKey="decision" camunda:followUpDate="${f}"/>'))
    [task] = eng.list_tasks(case_id=eng.start("p", data={"f": "2027-03-12"}).case_id)
    assert task["follow_up_at"] == datetime(2027, 3, 12, tzinfo=timezone.utc)  # a date: its start, in UTC
    res = eng.start("p", data={"f": "in a fortnight"})
    assert res.status == "error"
    [incident] = eng.incidents()
    assert "camunda:followUpDate" in incident["message"] and "in a fortnight" in incident["message"]


@pytest.mark.parametrize(("element", "data"), [
    ('<bpmn:userTask id="x" camunda:formKey="decision" camunda:candidateUsers="ann, bob"/>', {}),
    ('<bpmn:userTask id="x" camunda:formKey="decision" camunda:candidateUsers="${reviewers}"/>',
     {"reviewers": ["ann", "bob"]}),
    ('<bpmn:userTask id="x" camunda:formKey="decision" camunda:candidateUsers="${reviewers}"/>',
     {"reviewers": "ann,bob"}),
    ('<bpmn:userTask id="x"><bpmn:extensionElements><zeebe:formDefinition formId="decision"/>'
     '<zeebe:assignmentDefinition candidateUsers="=reviewers"/></bpmn:extensionElements></bpmn:userTask>',
     {"reviewers": ["ann", "bob"]}),
])
def test_several_candidate_users_are_each_offered_the_task(make_engine, element, data) -> None:
    # before: more than one candidate user was refused (at deploy when written, an incident when computed)
    eng = make_engine()
    eng.deploy(files=one_element(element))
    res = eng.start("p", data=data)
    assert res.status == "waiting"
    [task] = eng.list_tasks(case_id=res.case_id)
    assert (task["candidate_users"], task["assignee"]) == (["ann", "bob"], None)
    ready = [e["data"] for e in eng.history(res.case_id) if e["type"] == "task.ready"]
    assert "assignee" not in ready[-1]  # offered, not given
    eng.claim(task["id"], "bob")
    assert eng.get_task(task["id"])["assignee"] == "bob"
    from engine.replay import replay_case

    assert replay_case(eng, res.case_id).ok


def test_a_computed_candidate_who_is_not_a_user_is_an_incident_naming_the_attribute(make_engine) -> None:
    eng = make_engine()
    eng.registry.users = lambda name: name in {"ann", "bob"}
    eng.deploy(files=one_element(
        '<bpmn:userTask id="x" camunda:formKey="decision" camunda:candidateUsers="${reviewers}"/>'))
    res = eng.start("p", data={"reviewers": ["ann", "zed"]})
    assert res.status == "error"
    [incident] = eng.incidents()
    assert incident["element_id"] == "x"
    assert "camunda:candidateUsers" in incident["message"] and "'zed'" in incident["message"]
    assert eng.list_tasks(case_id=res.case_id) == []


def test_a_written_candidate_who_is_not_a_user_is_a_deploy_problem() -> None:
    files = one_element('<bpmn:userTask id="x" camunda:formKey="decision" camunda:candidateUsers="ann, zed"/>')
    [problem] = problems_of(files, users={"ann", "bob"})
    assert (problem.element_id, problem.line) == ("x", 5)
    assert "camunda:candidateUsers=\"ann, zed\" on user task 'x' names 'zed', who is not a carepath user" in \
        problem.message
    parse_bundle(files, users={"ann", "zed"})  # both exist: deploys


def _with_initiator(attribute: str) -> dict[str, bytes]:
    files = one_element('<bpmn:userTask id="x" camunda:formKey="decision" camunda:assignee="${starter}"/>')
    files["attrs.bpmn"] = files["attrs.bpmn"].replace(b'<bpmn:startEvent id="s"/>',
                                                      f'<bpmn:startEvent id="s" {attribute}/>'.encode())
    return files


def test_the_initiator_variable_holds_who_started_the_instance(make_engine) -> None:
    # before: camunda:initiator was refused at deploy ("the process data does not hold it")
    eng = make_engine()
    eng.deploy(files=_with_initiator('camunda:initiator="starter"'))
    res = eng.start("p", actor="carol")
    [task] = eng.list_tasks(case_id=res.case_id)
    assert task["assignee"] == "carol"  # camunda:assignee="${starter}"
    assert eng.instance_snapshot(res.instance_id)["data"]["starter"] == "carol"
    [started] = [e for e in eng.history(res.case_id) if e["type"] == "instance.started"]
    assert started["data"]["data"]["starter"] == "carol"  # the history says who, so a replay gives the same
    from engine.replay import replay_case

    report = replay_case(eng, res.case_id)
    assert report.ok, str(report)


@pytest.mark.parametrize(("attribute", "words"), [
    ('camunda:initiator="who started"', 'camunda:initiator="who started" on start event \'s\' is not a variable '
                                        'name'),
    ('camunda:initiator="class"', 'camunda:initiator="class" on start event \'s\' is not a variable name'),
])
def test_an_initiator_that_is_no_variable_name_is_a_deploy_problem(attribute, words) -> None:
    [problem] = problems_of(_with_initiator(attribute))
    assert words in problem.message
    assert (problem.element_id, problem.line) == ("s", 4)


# --- through the web app: the inbox, the task page, who may see and claim -----------------------------------

OFFERED = ('<bpmn:userTask id="x" name="Check the payment" camunda:formKey="decision" '
           'camunda:candidateGroups="finance" camunda:candidateUsers="${reviewers}" '
           'camunda:followUpDate="${followUp}"/>')


@pytest.fixture()
def web(tmp_path, db_url):
    from api.app import create_app
    from api.demo_users import create_demo_users
    from engine.forms import FormLibrary
    from engine.runtime import Engine
    from tests.conftest import START, Calls

    url = db_url if db_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'web.db'}"
    eng = Engine(url, registry=Calls().registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    app = create_app(eng, run_timers=False)
    create_demo_users(eng)
    eng.deploy(files=one_element(OFFERED))
    yield eng, app
    eng.db.dispose()


def _signed_in(app, role: str):
    from fastapi.testclient import TestClient

    from api.demo_users import demo_password, demo_username

    client = TestClient(app)
    r = client.post("/api/session", json={"username": demo_username(role), "password": demo_password(role)})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def test_each_candidate_user_finds_the_task_in_their_inbox_and_any_one_may_claim_it(web) -> None:
    from api.demo_users import demo_username

    eng, app = web
    sw, ot = demo_username("social_worker"), demo_username("occupational_therapist")  # neither is in finance
    res = eng.start("p", data={"reviewers": [sw, ot], "followUp": "2031-03-12T09:00:00Z"})
    [task] = eng.list_tasks(case_id=res.case_id)
    worker, therapist = _signed_in(app, "social_worker"), _signed_in(app, "occupational_therapist")
    for client, name in ((worker, sw), (therapist, ot)):
        mine = client.get("/api/tasks?scope=mine").json()
        assert [t["id"] for t in mine["tasks"]] == [task["id"]], name
        assert mine["tasks"][0]["candidate_users"] == [sw, ot]
        assert mine["counts"]["mine"] == 1
        queue = client.get("/api/tasks").json()  # their queue (the team tab) lists it too
        assert task["id"] in [t["id"] for t in queue["tasks"]] and queue["counts"]["team"] >= 1
        assert client.get(f"/api/tasks/{task['id']}").status_code == 200
        page = client.get("/tasks?view=mine")
        assert "Check the payment" in page.text and "Offered to you" in page.text
    # the team still sees it; someone neither offered it nor in its team does not
    assert [t["id"] for t in _signed_in(app, "finance_officer").get("/api/tasks").json()["tasks"]] == [task["id"]]
    advisor = _signed_in(app, "front_door_advisor")
    assert advisor.get("/api/tasks").json()["tasks"] == []
    assert advisor.get(f"/api/tasks/{task['id']}").status_code == 403
    # any one candidate claims it; then it is theirs
    assert therapist.post(f"/api/tasks/{task['id']}/claim").json()["assignee"] == ot
    assert worker.post(f"/api/tasks/{task['id']}/claim").status_code == 409
    assert worker.get("/api/tasks?scope=mine").json()["tasks"] == []  # no longer offered: claimed by another
    assert [t["id"] for t in therapist.get("/api/tasks?scope=mine").json()["tasks"]] == [task["id"]]


def test_a_candidate_not_named_on_a_restricted_case_is_not_offered_its_task(web) -> None:
    from api.access import restrict_case
    from api.demo_users import demo_username

    eng, app = web
    sw, ot = demo_username("social_worker"), demo_username("occupational_therapist")
    res = eng.start("p", data={"reviewers": [sw, ot], "followUp": "2031-03-12T09:00:00Z"})
    [task] = eng.list_tasks(case_id=res.case_id)
    restrict_case(eng, res.case_id, [ot])
    worker, therapist = _signed_in(app, "social_worker"), _signed_in(app, "occupational_therapist")
    assert worker.get("/api/tasks?scope=mine").json()["tasks"] == []
    assert worker.get("/api/tasks").json()["counts"]["mine"] == 0
    assert worker.get(f"/api/tasks/{task['id']}").status_code == 404  # as an unknown task (issue 15 item 7)
    assert worker.post(f"/api/tasks/{task['id']}/claim").status_code == 404
    assert [t["id"] for t in therapist.get("/api/tasks?scope=mine").json()["tasks"]] == [task["id"]]


def test_the_follow_up_date_shows_in_the_inbox_and_on_the_task_page_and_filters_the_inbox(web) -> None:
    eng, app = web
    later = eng.start("p", data={"reviewers": [], "followUp": "2031-03-20T09:00:00Z"})
    soon = eng.start("p", data={"reviewers": [], "followUp": "2031-03-12T09:00:00Z"})
    none = eng.start("p", data={"reviewers": [], "followUp": None})
    [t_later], [t_soon], [t_none] = (eng.list_tasks(case_id=r.case_id) for r in (later, soon, none))
    finance = _signed_in(app, "finance_officer")
    assert finance.get("/api/tasks?due=follow_up").json()["tasks"] == []  # none has come yet (3 March)
    ordered = finance.get("/api/tasks?sort=follow_up").json()["tasks"]
    assert [t["id"] for t in ordered] == [t_soon["id"], t_later["id"], t_none["id"]]  # soonest first, none last
    assert ordered[0]["follow_up_at"].startswith("2031-03-12T09:00:00")
    inbox = finance.get("/tasks").text
    assert "Follow up by 12 March 2031" in inbox and "Follow up by 20 March 2031" in inbox
    page = finance.get(f"/tasks/{t_soon['id']}").text
    assert "Follow up by 12 March 2031" in page

    eng.advance_clock(to=datetime(2031, 3, 12, 9, 0, tzinfo=timezone.utc))
    finance = _signed_in(app, "finance_officer")  # sessions last eight hours of the clock
    due = finance.get("/api/tasks?due=follow_up").json()
    assert [t["id"] for t in due["tasks"]] == [t_soon["id"]]
    assert due["counts"]["follow_up"] == 1
    assert "1</strong> to follow up" in finance.get("/tasks").text
    assert finance.get("/tasks?due=follow_up").status_code == 200
    assert finance.get("/api/tasks?due=follow-up").status_code == 422  # a value not offered is refused


def test_candidate_users_are_checked_against_the_users_at_deploy_and_when_computed(web) -> None:
    from api.demo_users import demo_username

    eng, _app = web
    files = one_element(OFFERED.replace("${reviewers}", f"{demo_username('social_worker')}, nobody"))
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files=files)
    assert "names 'nobody', who is not a carepath user" in str(err.value)
    res = eng.start("p", data={"reviewers": ["nobody"], "followUp": None})
    assert res.status == "error"
    [incident] = eng.incidents()
    assert "camunda:candidateUsers" in incident["message"] and "'nobody'" in incident["message"]


def test_the_offered_task_and_its_follow_up_date_in_the_browser(web) -> None:
    from api.demo_users import demo_password, demo_username
    from tests.browser import launch, live_server, run_axe, sign_in

    eng, app = web
    sw, ot = demo_username("social_worker"), demo_username("occupational_therapist")
    res = eng.start("p", data={"reviewers": [sw, ot], "followUp": "2031-03-03T09:00:00Z"})  # today: due now
    [task] = eng.list_tasks(case_id=res.case_id)
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, ot, demo_password("occupational_therapist"))
        page.goto(f"{base}/tasks?view=mine")
        row = page.locator("tr", has_text="Check the payment")
        assert row.count() == 1
        assert "Offered to you" in row.inner_text() and "Follow up by 3 March 2031" in row.inner_text()
        run_axe(page, "inbox with an offered task")
        page.select_option("#f-due", "follow_up")
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url(re.compile(r".*due=follow_up.*"))
        assert page.locator("tr", has_text="Check the payment").count() == 1
        assert "1</strong> to follow up" in page.content()
        page.locator("tr", has_text="Check the payment").get_by_role("link", name="Check the payment").click()
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        assert "Follow up by 3 March 2031" in page.locator("#follow-up").inner_text()
        assert page.locator("#offered-to").inner_text() == f"{sw}, {ot}"
        run_axe(page, "task offered by name")


def test_an_engine_made_as_the_worker_and_command_line_make_it_checks_computed_candidates_against_its_users(
        db_url, tmp_path, monkeypatch) -> None:
    # before: only the web app wired the users check, so a timer fired by `carepath worker` (or a step run by the
    # command line) offered a task to a name nobody signs in as: no incident, and no one could ever claim it
    from sqlalchemy import insert

    from engine.forms import FormLibrary
    from engine.runtime import Engine
    from engine.schema import users
    from tests.conftest import START

    monkeypatch.chdir(tmp_path)  # the default handler package is not importable here: an empty registry
    monkeypatch.setenv("CAREPATH_HANDLERS", "")
    eng = Engine(db_url, forms=FormLibrary())  # no registry given: the engine loads its own, as `Engine(url)` does
    eng.init(simulated_start=START)
    with eng.db.engine.begin() as conn:
        conn.execute(insert(users), [{"username": n, "display_name": n, "password_hash": "x",
                                      "roles": ["social_worker"], "teams": [], "created_at": START}
                                     for n in ("ann", "bob")])
    eng.deploy(files=one_element(
        '<bpmn:userTask id="x" camunda:formKey="decision" camunda:candidateUsers="${reviewers}"/>'))
    ok = eng.start("p", data={"reviewers": ["ann", "bob"]})
    assert ok.status != "error" and eng.get_task(eng.list_tasks(case_id=ok.case_id)[0]["id"])
    res = eng.start("p", data={"reviewers": ["ann", "zed"]})
    assert res.status == "error"
    [incident] = eng.incidents()
    assert incident["element_id"] == "x" and "'zed'" in incident["message"]
    eng.db.dispose()
