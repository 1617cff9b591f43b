"""engine.bpmn: reading both diagram dialects, validating bundles, running with the injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.bpmn import Bundle, build_specs, make_serializer, parse_bundle, timer_due
from engine.bpmn_timers import is_literal, literal_problem, looks_like_iso, parse_cycle, parse_date
from engine.clock import FixedClock
from engine.errors import DefinitionError, Problem
from engine.expressions import SafeEnvironment

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = ("camunda_review.bpmn", "spiff_intake.bpmn", "care_band.dmn")
# Years away from the wall clock: a timer that fires here can only have read the injected clock.
FAR_FUTURE = datetime(2035, 3, 1, 9, 0, tzinfo=UTC)


def load(*names: str) -> dict[str, bytes]:
    return {name: (FIXTURES / name).read_bytes() for name in names}


class FakeEngine(PythonScriptEngine):
    """The runtime's shape: sandboxed environment, a `.clock`, JSON-returning call_service."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(environment=SafeEnvironment())
        self.clock = clock
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call_service(self, task: Any, operation_name: str = "", operation_params: Any = None, **_: Any) -> str:
        self.calls.append((operation_name, operation_params))
        return json.dumps({"handled_by": operation_name})


def start(process_id: str, at: datetime = FAR_FUTURE) -> tuple[BpmnWorkflow, FakeEngine]:
    spec, subprocess_specs = build_specs(load(*GOOD), process_id)
    engine = FakeEngine(FixedClock(at))
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=engine)
    workflow.do_engine_steps()
    return workflow, engine


def ready(workflow: BpmnWorkflow) -> dict[str, Any]:
    return {t.task_spec.bpmn_id: t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}


def waiting(workflow: BpmnWorkflow) -> dict[str, Any]:
    return {t.task_spec.bpmn_id: t for t in workflow.get_tasks(state=TaskState.WAITING)}


def complete(workflow: BpmnWorkflow, element_id: str, **data: Any) -> None:
    task = ready(workflow)[element_id]
    task.data.update(data)
    task.run()
    workflow.do_engine_steps()


def advance(workflow: BpmnWorkflow, engine: FakeEngine, to: datetime) -> None:
    engine.clock.set(to)
    workflow.refresh_timers()
    workflow.do_engine_steps()


def problems_of(files: dict[str, bytes], **kwargs: Any) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse_bundle(files, **kwargs)
    return caught.value.problems


BPMN_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs">\n'
)


def one_element(element: str, process_id: str = "p", executable: str = "true") -> bytes:
    """start -> `element` (whose id is "x") -> end."""
    return (BPMN_OPEN + f'<bpmn:process id="{process_id}" isExecutable="{executable}">\n'
            '<bpmn:startEvent id="s"/>\n' + element + '\n<bpmn:endEvent id="e"/>\n'
            '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x"/>\n'
            '<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e"/>\n'
            "</bpmn:process>\n</bpmn:definitions>\n").encode()


# --- what a bundle describes -------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return parse_bundle(load(*GOOD), handlers={"send_letter", "send_reminder", "lookup_person"},
                        forms={"triage.form", "review_form", "forms/escalate.html", "collect.json", "approve.json"})


def test_bundle_yields_executable_processes_and_decisions(bundle: Bundle) -> None:
    assert set(bundle.processes) == {"care_review", "intake", "notify_family"}
    assert bundle.decisions == {"care_band": "care_band.dmn"}
    assert set(bundle.files) == set(GOOD)


def test_camunda_diagram_gives_forms_teams_handlers_and_timers(bundle: Bundle) -> None:
    info = bundle.processes["care_review"]
    assert info.file == "camunda_review.bpmn"
    assert info.lanes == ("Duty team", "Reviewing team", "System")
    triage, review, escalate = (info.user_tasks[i] for i in ("triage", "review", "escalate"))
    assert (triage.form, triage.candidate_groups, triage.lane, triage.line) == (
        "triage.form", ("duty", "intake"), "Duty team", 32)
    assert (review.form, review.candidate_groups) == ("review_form", ("Reviewing team",))  # team from lane
    assert escalate.form == "forms/escalate.html"  # "embedded:app:" stripped
    letter = info.service_tasks["send_urgent_letter"]
    assert (letter.handler, letter.params, letter.result_variable) == (
        "send_letter", {"template": '"urgent"', "person": "person_id"}, "letter")
    assert info.service_tasks["send_reminder"].result_variable == "send_reminder_result"  # the default
    overdue, annual, new_year = (info.timers[i] for i in ("review_overdue", "annual_check", "wait_new_year"))
    assert (overdue.kind, overdue.expression, overdue.attached_to, overdue.interrupting) == (
        "duration", "P42D", "review", True)
    assert (annual.kind, annual.expression, annual.interrupting) == ("cycle", "R/P1Y", False)
    assert (new_year.kind, new_year.expression, new_year.attached_to) == ("date", "2027-01-04T09:00:00Z", None)


def test_spiff_diagram_gives_forms_teams_handlers_calls_and_decisions(bundle: Bundle) -> None:
    info = bundle.processes["intake"]
    assert info.user_tasks["collect"].form == "collect.json"
    assert info.user_tasks["collect"].candidate_groups == ("front_door", "duty")
    assert info.user_tasks["approve"].form == "approve.json"  # property name "form"
    assert info.user_tasks["approve"].candidate_groups == ("Front door",)
    assert info.service_tasks["lookup"].handler == "lookup_person"
    assert info.service_tasks["lookup"].params == {"nhs_number": "nhs_number"}
    assert info.timers["wait_days"].expression == '"P%dD" % days'
    assert info.called_processes == frozenset({"notify_family"})
    assert info.decisions_used == frozenset({"care_band"})
    assert bundle.processes["notify_family"].service_tasks["send_family_letter"].result_variable == (
        "send_family_letter_result")


# --- running -----------------------------------------------------------------------------


def test_live_user_task_carries_lane_form_and_candidate_groups() -> None:
    workflow, _ = start("care_review")
    spec = ready(workflow)["triage"].task_spec
    assert spec.lane == "Duty team"
    assert spec.extensions["form"] == "triage.form"
    assert spec.extensions["candidate_groups"] == ["duty", "intake"]


def test_boundary_timer_follows_the_injected_clock_not_the_wall_clock() -> None:
    workflow, engine = start("care_review")
    complete(workflow, "triage", urgency="low", person_id=17)
    assert set(ready(workflow)) == {"review"}
    assert timer_due(waiting(workflow)["review_overdue"]) == FAR_FUTURE + timedelta(days=42)

    advance(workflow, engine, FAR_FUTURE + timedelta(days=41))
    assert set(ready(workflow)) == {"review"}

    advance(workflow, engine, FAR_FUTURE + timedelta(days=42, minutes=1))
    assert set(ready(workflow)) == {"escalate"}
    assert not workflow.get_tasks(spec_name="review", state=TaskState.READY)


def test_gateway_condition_routes_to_service_task_with_evaluated_params() -> None:
    workflow, engine = start("care_review")
    complete(workflow, "triage", urgency="high", person_id=17)
    assert workflow.is_completed()
    assert engine.calls == [("send_letter", {"template": {"value": "urgent", "type": "any"},
                                             "person": {"value": 17, "type": "any"}})]
    assert workflow.last_task.data["letter"] == {"handled_by": "send_letter"}


def test_spiff_workflow_runs_script_service_timer_decision_and_call_activity() -> None:
    workflow, engine = start("intake")
    assert ready(workflow)["collect"].task_spec.extensions["candidate_groups"] == ["front_door", "duty"]
    complete(workflow, "collect", score=7, nhs_number="943 476 5919")
    timer = waiting(workflow)["wait_days"]
    assert timer_due(timer) == FAR_FUTURE + timedelta(days=2)  # "P%dD" % days, days = 2

    advance(workflow, engine, FAR_FUTURE + timedelta(days=2))  # falls due when the clock reaches it
    approve = ready(workflow)["approve"]
    assert approve.task_spec.lane == "Front door"
    assert approve.data["band"] == "high"
    assert approve.data["person"] == {"handled_by": "lookup_person"}
    assert [name for name, _ in engine.calls] == ["lookup_person", "send_letter"]
    assert engine.calls[1][1]["band"] == {"value": "high", "type": "str"}


def test_timer_due_for_duration_cycle_and_date_timers() -> None:
    at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    workflow, engine = start("care_review", at)
    assert timer_due(ready(workflow)["triage"]) is None  # not a waiting timer
    complete(workflow, "triage", urgency="low", person_id=1)
    assert timer_due(waiting(workflow)["review_overdue"]) == datetime(2026, 12, 13, 9, 0, tzinfo=UTC)
    assert timer_due(waiting(workflow)["annual_check"]) == datetime(2027, 11, 1, 9, 0, tzinfo=UTC)

    advance(workflow, engine, datetime(2026, 12, 14, tzinfo=UTC))
    complete(workflow, "escalate")
    new_year = waiting(workflow)["wait_new_year"]
    assert timer_due(new_year) == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)

    advance(workflow, engine, datetime(2027, 1, 4, 8, 59, tzinfo=UTC))
    assert not workflow.is_completed()
    advance(workflow, engine, datetime(2027, 1, 4, 9, 0, tzinfo=UTC))
    assert workflow.is_completed()


def test_cycle_timer_fires_at_each_occurrence() -> None:
    diagram = (BPMN_OPEN + '<bpmn:process id="hourly" isExecutable="true">\n<bpmn:startEvent id="s"/>\n'
               '<bpmn:userTask id="watch" camunda:formKey="watch"/>\n<bpmn:endEvent id="e"/>\n'
               '<bpmn:boundaryEvent id="tick" cancelActivity="false" attachedToRef="watch">'
               "<bpmn:timerEventDefinition><bpmn:timeCycle>R2/PT1H</bpmn:timeCycle></bpmn:timerEventDefinition>"
               '</bpmn:boundaryEvent>\n<bpmn:serviceTask id="ping" camunda:type="external" camunda:topic="ping"/>\n'
               '<bpmn:endEvent id="e2"/>\n<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="watch"/>'
               '<bpmn:sequenceFlow id="f2" sourceRef="watch" targetRef="e"/>'
               '<bpmn:sequenceFlow id="f3" sourceRef="tick" targetRef="ping"/>'
               '<bpmn:sequenceFlow id="f4" sourceRef="ping" targetRef="e2"/>\n</bpmn:process>\n</bpmn:definitions>\n')
    files = {"hourly.bpmn": diagram.encode()}
    parse_bundle(files)
    engine = FakeEngine(FixedClock(FAR_FUTURE))
    workflow = BpmnWorkflow(*build_specs(files, "hourly"), script_engine=engine)
    workflow.do_engine_steps()
    assert timer_due(waiting(workflow)["tick"]) == FAR_FUTURE + timedelta(hours=1)

    advance(workflow, engine, FAR_FUTURE + timedelta(hours=1))
    assert [name for name, _ in engine.calls] == ["ping"]
    assert "watch" in ready(workflow)  # non-interrupting: the task stays open
    assert timer_due(waiting(workflow)["tick"]) == FAR_FUTURE + timedelta(hours=2)

    advance(workflow, engine, FAR_FUTURE + timedelta(hours=5))
    assert [name for name, _ in engine.calls] == ["ping", "ping"]
    assert "tick" not in waiting(workflow)  # both repetitions used up: the timer is done
    assert "watch" in ready(workflow)


def test_serializer_round_trip_keeps_due_time_and_workflow_runs_on() -> None:
    workflow, engine = start("care_review")
    complete(workflow, "triage", urgency="low", person_id=17)
    due = timer_due(waiting(workflow)["review_overdue"])
    serializer = make_serializer()

    restored = serializer.from_dict(json.loads(json.dumps(serializer.to_dict(workflow))))
    restored.script_engine = engine  # the script engine is never serialized
    assert timer_due(waiting(restored)["review_overdue"]) == due
    assert ready(restored)["review"].task_spec.extensions["form"] == "review_form"

    advance(restored, engine, due)
    complete(restored, "escalate")
    assert restored.is_completed()  # the 2027 timeDate is long past in 2035


def test_serializer_round_trip_of_spiff_workflow_with_subprocess() -> None:
    workflow, engine = start("intake")
    complete(workflow, "collect", score=2, nhs_number="1")
    serializer = make_serializer()
    restored = serializer.deserialize_json(serializer.serialize_json(workflow))
    restored.script_engine = engine
    advance(restored, engine, FAR_FUTURE + timedelta(days=3))
    assert ready(restored)["approve"].data["band"] == "low"


def test_embedded_subprocess_tasks_belong_to_their_process_and_take_its_lane() -> None:
    diagram = (BPMN_OPEN + '<bpmn:process id="p" isExecutable="true">\n'
               '<bpmn:laneSet><bpmn:lane id="lane" name="Team A"><bpmn:flowNodeRef>s</bpmn:flowNodeRef>'
               "<bpmn:flowNodeRef>sub</bpmn:flowNodeRef><bpmn:flowNodeRef>e</bpmn:flowNodeRef></bpmn:lane>"
               "</bpmn:laneSet>\n"
               '<bpmn:startEvent id="s"/>\n<bpmn:subProcess id="sub" name="Inner">\n<bpmn:startEvent id="ss"/>\n'
               '<bpmn:userTask id="inner" camunda:formKey="inner_form"/>\n'
               '<bpmn:intermediateCatchEvent id="pause"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1H'
               "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>\n"
               '<bpmn:endEvent id="se"/>\n<bpmn:sequenceFlow id="sf1" sourceRef="ss" targetRef="inner"/>\n'
               '<bpmn:sequenceFlow id="sf2" sourceRef="inner" targetRef="pause"/>\n'
               '<bpmn:sequenceFlow id="sf3" sourceRef="pause" targetRef="se"/>\n</bpmn:subProcess>\n'
               '<bpmn:endEvent id="e"/>\n<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="sub"/>\n'
               '<bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="e"/>\n</bpmn:process>\n</bpmn:definitions>\n')
    files = {"sub.bpmn": diagram.encode()}
    info = parse_bundle(files).processes["p"]
    assert set(info.user_tasks) == {"inner"} and set(info.timers) == {"pause"}
    assert info.user_tasks["inner"].candidate_groups == ("Team A",)

    engine = FakeEngine(FixedClock(FAR_FUTURE))
    workflow = BpmnWorkflow(*build_specs(files, "p"), script_engine=engine)
    workflow.do_engine_steps()
    assert ready(workflow)["inner"].task_spec.lane == "Team A"
    complete(workflow, "inner")
    assert timer_due(waiting(workflow)["pause"]) == FAR_FUTURE + timedelta(hours=1)
    advance(workflow, engine, FAR_FUTURE + timedelta(hours=1))
    assert workflow.is_completed()

    broken = diagram.replace('camunda:formKey="inner_form"/>', "/>")
    [problem] = problems_of({"sub.bpmn": broken.encode()})
    assert (problem.element_id, problem.line) == ("inner", 8)


def test_timer_expression_with_a_bad_value_fails_when_the_timer_starts() -> None:
    element = ('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDuration>'
               "wait_for</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>")
    files = {"t.bpmn": one_element(element)}
    parse_bundle(files)
    workflow = BpmnWorkflow(*build_specs(files, "p"), script_engine=FakeEngine(FixedClock(FAR_FUTURE)))
    workflow.get_tasks(state=TaskState.READY)[0].data["wait_for"] = "six weeks"
    with pytest.raises(WorkflowTaskException, match="not an ISO 8601 duration"):
        workflow.do_engine_steps()


# --- problems ----------------------------------------------------------------------------


def test_broken_bundle_reports_every_problem_with_file_element_and_line() -> None:
    problems = problems_of(load("broken_a.bpmn", "broken_b.bpmn"), handlers={"send_letter"}, forms={"form_a"})
    found = {(p.file, p.element_id, p.line) for p in problems}
    assert found == {
        ("broken_a.bpmn", "no_handler", 5),
        ("broken_a.bpmn", "no_form", 6),
        ("broken_a.bpmn", "mail", 7),
        ("broken_a.bpmn", "task_b", 10),
        ("broken_a.bpmn", "to_a", 16),
        ("broken_a.bpmn", "to_b", 19),
        ("broken_a.bpmn", "dangling", 22),
        ("broken_b.bpmn", "call_missing", 5),
        ("broken_b.bpmn", "bad_timer", 6),
        ("broken_b.bpmn", "rule", 11),
        ("broken_b.bpmn", "bad_script", 16),
        ("broken_b.bpmn", "orphan", 19),
    }
    messages = {p.element_id: p.message for p in problems}
    assert messages["no_form"] == "user task 'Fill in' names no form"
    assert "no_such_decision" in messages["rule"]
    assert "import" in messages["bad_script"]


@pytest.mark.parametrize(("element", "kwargs", "expected"), [
    ('<bpmn:serviceTask id="x" camunda:type="external" camunda:topic="mystery"/>',
     {"handlers": {"send_letter"}}, "names handler 'mystery', which is not registered"),
    ('<bpmn:serviceTask id="x"/>', {}, "names no handler"),
    ('<bpmn:serviceTask id="x" camunda:class="org.example.Delegate"/>', {}, "(Java) is not supported"),
    ('<bpmn:userTask id="x" camunda:formKey="mystery.form"/>', {"forms": {"triage.form"}},
     "names form 'mystery.form', which is not in the form library"),
    ('<bpmn:callActivity id="x" calledElement="nowhere"/>', {}, "calls process 'nowhere', which is neither"),
    (('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDuration>P4XD'
      "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"), {},
     "'P4XD' is not a valid ISO 8601 duration"),
    (('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDate>P42D'
      "</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"), {},
     "'P42D' is not a valid ISO 8601 date"),
    (('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDate>2027-13-01'
      "</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"), {},
     "'2027-13-01' is not a valid ISO 8601 date"),
    ('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition/></bpmn:intermediateCatchEvent>', {},
     "has no timeDate, timeDuration or timeCycle"),
    (('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDuration>p14d'
      "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"), {},
     "'p14d' is not a valid ISO 8601 duration (for example P42D): write P14D"),
    (('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDuration>14 days'
      "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"), {},
     "'14 days' is not a valid ISO 8601 duration (for example P42D): write P14D"),
    (('<bpmn:intermediateCatchEvent id="x"><bpmn:timerEventDefinition><bpmn:timeDuration>'
      "__import__('os')</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"), {},
     "the timer expression of 'x' is refused"),
    ('<bpmn:businessRuleTask id="x" camunda:decisionRef="nowhere"/>', {}, "uses decision 'nowhere'"),
    ('<bpmn:scriptTask id="x" scriptFormat="groovy"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>', {},
     "is written in groovy"),
    ('<bpmn:complexGateway id="x"/>', {}, "carepath does not support"),
])
def test_each_problem_names_the_element(element: str, kwargs: dict[str, Any], expected: str) -> None:
    problems = problems_of({"one.bpmn": one_element(element)}, **kwargs)
    assert [(p.file, p.element_id, p.line) for p in problems] == [("one.bpmn", "x", 5)]
    assert expected in problems[0].message


def test_condition_importing_os_is_refused_at_deploy_time() -> None:
    diagram = (BPMN_OPEN + '<bpmn:process id="p" isExecutable="true">\n'
               '<bpmn:startEvent id="s"/>\n<bpmn:exclusiveGateway id="g" default="plain"/>\n'
               '<bpmn:endEvent id="e1"/>\n<bpmn:endEvent id="e2"/>\n'
               '<bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="g"/>\n'
               '<bpmn:sequenceFlow id="evil" sourceRef="g" targetRef="e1">\n'
               "<bpmn:conditionExpression>__import__('os').system('rm -rf /')</bpmn:conditionExpression>\n"
               '</bpmn:sequenceFlow>\n<bpmn:sequenceFlow id="plain" sourceRef="g" targetRef="e2"/>\n'
               "</bpmn:process>\n</bpmn:definitions>\n").encode()
    [problem] = problems_of({"evil.bpmn": diagram})
    assert (problem.element_id, problem.line) == ("evil", 9)
    assert "__import__" in problem.message


def test_not_well_formed_file_does_not_hide_other_files_problems() -> None:
    files = {"bad.bpmn": b"<bpmn:definitions xmlns:bpmn='http://www.omg.org/spec/BPMN/20100524/MODEL'>\n<oops>",
             **load("broken_b.bpmn")}
    problems = problems_of(files)
    assert any(p.file == "bad.bpmn" for p in problems)
    assert {"call_missing", "bad_timer", "rule", "bad_script", "orphan"} <= {p.element_id for p in problems}


def test_file_level_problems() -> None:
    dmn = (FIXTURES / "care_band.dmn").read_bytes()
    files = {
        "empty.bpmn": (BPMN_OPEN + "</bpmn:definitions>\n").encode(),
        "notes.xml": b"<?xml version='1.0'?>\n<notes/>\n",
        "twice.bpmn": one_element('<bpmn:task id="x"/>\n<bpmn:task id="x"/>'),
        "band.dmn": dmn,
        "band_copy.dmn": dmn,
    }
    problems = {(p.file, p.element_id, p.line): p.message for p in problems_of(files)}
    assert len(problems) == 4
    assert problems[("empty.bpmn", "defs", 2)] == "no process in this file"  # placed on the definitions element
    assert "not a BPMN or DMN document" in problems[("notes.xml", None, 2)]
    assert "id 'x' is used twice in this file (first on line 5)" in problems[("twice.bpmn", "x", 6)]
    assert "already defined in band.dmn" in problems[("band_copy.dmn", "care_band", 3)]


def test_duplicate_process_id_across_files_is_a_problem() -> None:
    files = {"one.bpmn": one_element('<bpmn:task id="x"/>'), "two.bpmn": one_element('<bpmn:task id="x"/>')}
    [problem] = problems_of(files)
    assert (problem.file, problem.element_id, problem.line) == ("two.bpmn", "p", 3)
    assert "already defined in one.bpmn" in problem.message


def test_non_executable_process_is_skipped_but_not_callable() -> None:
    files = {"main.bpmn": one_element('<bpmn:task id="x"/>', "main"),
             "draft.bpmn": one_element('<bpmn:task id="x"/>', "draft", executable="false")}
    [problem] = problems_of(files)
    assert problem.file == "draft.bpmn" and "no executable process" in problem.message

    files["main.bpmn"] = one_element('<bpmn:callActivity id="x" calledElement="draft"/>', "main")
    [problem] = problems_of(files)
    assert (problem.file, problem.element_id) == ("main.bpmn", "x")
    assert "not executable" in problem.message

    files["main.bpmn"] = (BPMN_OPEN + '<bpmn:process id="main" isExecutable="true"><bpmn:startEvent id="s"/>'
                          '<bpmn:endEvent id="e"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="e"/>'
                          '</bpmn:process><bpmn:process id="pool" isExecutable="false"/></bpmn:definitions>'
                          ).encode()
    del files["draft.bpmn"]
    assert set(parse_bundle(files).processes) == {"main"}


def test_known_processes_and_decisions_satisfy_references() -> None:
    files = {"main.bpmn": one_element('<bpmn:callActivity id="x" calledElement="deployed_earlier"/>')}
    assert parse_bundle(files, known_processes={"deployed_earlier"}).processes["p"].called_processes == {
        "deployed_earlier"}
    files = {"main.bpmn": one_element('<bpmn:businessRuleTask id="x" camunda:decisionRef="old_rule"/>')}
    assert parse_bundle(files, known_decisions={"old_rule"}).processes["p"].decisions_used == {"old_rule"}


def test_unreachable_and_dead_end_elements_are_problems() -> None:
    diagram = (BPMN_OPEN + '<bpmn:process id="p" isExecutable="true">\n<bpmn:startEvent id="s"/>\n'
               '<bpmn:task id="loop_a"/>\n<bpmn:task id="loop_b"/>\n<bpmn:task id="dead_end"/>\n'
               '<bpmn:endEvent id="e"/>\n'
               '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="dead_end"/>\n'
               '<bpmn:sequenceFlow id="f2" sourceRef="loop_a" targetRef="loop_b"/>\n'
               '<bpmn:sequenceFlow id="f3" sourceRef="loop_b" targetRef="loop_a"/>\n'
               "</bpmn:process>\n</bpmn:definitions>\n").encode()
    problems = {(p.element_id, p.line): p.message for p in problems_of({"d.bpmn": diagram})}
    assert "cannot be reached" in problems[("loop_a", 5)]
    assert "cannot be reached" in problems[("loop_b", 6)]
    assert "no outgoing sequence flow" in problems[("dead_end", 7)]
    assert "no incoming sequence flow" in problems[("e", 8)]
    assert len(problems) == 4


def test_spiffworkflow_validation_exception_becomes_a_problem() -> None:
    element = '<bpmn:task id="x"><bpmn:multiInstanceLoopCharacteristics/></bpmn:task>'
    [problem] = problems_of({"mi.bpmn": one_element(element)})
    assert (problem.file, problem.element_id, problem.line) == ("mi.bpmn", "x", 5)
    assert problem.message.startswith("'x' is a multi-instance activity that says neither how many")
    assert "SpiffWorkflow" not in problem.message  # before: "SpiffWorkflow: A multiinstance task must specify ..."


def test_very_long_chain_is_reported_not_crashed() -> None:
    ids = ["s"] + [f"t{i}" for i in range(1200)] + ["e"]
    body = ['<bpmn:startEvent id="s"/>', *(f'<bpmn:task id="{i}"/>' for i in ids[1:-1]), '<bpmn:endEvent id="e"/>']
    body += [f'<bpmn:sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}"/>' for n, (a, b) in
             enumerate(pairwise(ids))]
    diagram = (BPMN_OPEN + '<bpmn:process id="long" isExecutable="true">\n' + "\n".join(body)
               + "\n</bpmn:process>\n</bpmn:definitions>\n").encode()
    [problem] = problems_of({"long.bpmn": diagram})
    assert (problem.element_id, problem.line) == ("long", 3)
    assert "recursion limit" in problem.message


def test_zeebe_dialect_is_read() -> None:
    diagram = (BPMN_OPEN + '<bpmn:process id="z" isExecutable="true">\n<bpmn:startEvent id="s"/>\n'
               '<bpmn:userTask id="u"><bpmn:extensionElements><zeebe:formDefinition formId="z_form"/>'
               '<zeebe:assignmentDefinition candidateGroups="duty,night"/></bpmn:extensionElements></bpmn:userTask>\n'
               '<bpmn:serviceTask id="t"><bpmn:extensionElements><zeebe:taskDefinition type="send_letter"/>'
               '<zeebe:ioMapping><zeebe:input source="=person.name" target="name"/></zeebe:ioMapping>'
               "</bpmn:extensionElements></bpmn:serviceTask>\n"
               '<bpmn:callActivity id="c"><bpmn:extensionElements><zeebe:calledElement processId="other"/>'
               "</bpmn:extensionElements></bpmn:callActivity>\n<bpmn:endEvent id=\"e\"/>\n"
               '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="u"/><bpmn:sequenceFlow id="f2" sourceRef="u" '
               'targetRef="t"/><bpmn:sequenceFlow id="f3" sourceRef="t" targetRef="c"/>'
               '<bpmn:sequenceFlow id="f4" sourceRef="c" targetRef="e"/>\n</bpmn:process>\n</bpmn:definitions>\n')
    info = parse_bundle({"z.bpmn": diagram.encode()}, known_processes={"other"}).processes["z"]
    assert (info.user_tasks["u"].form, info.user_tasks["u"].candidate_groups) == ("z_form", ("duty", "night"))
    assert (info.service_tasks["t"].handler, info.service_tasks["t"].params) == ("send_letter", {"name": "person.name"})
    assert info.called_processes == {"other"}


def test_dmn_problems_are_reported() -> None:
    dmn = (FIXTURES / "care_band.dmn").read_text()
    dmn = dmn.replace('hitPolicy="UNIQUE"', 'hitPolicy="BOGUS"').replace("<text>\"high\"</text>",
                                                                       "<text>__import__('os')</text>")
    problems = problems_of({"band.dmn": dmn.encode()})
    assert {(p.element_id, p.line) for p in problems} == {("DecisionTable_band", 4), ("LiteralExpression_high", 23)}


# --- timer texts -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "text"), [
    ("duration", "P42D"), ("duration", "PT24H"), ("duration", "P6W"), ("duration", "P1Y2M3DT4H5M6S"),
    ("date", "2027-01-04T09:00:00Z"), ("date", "2027-01-04T09:00:00+01:00"), ("date", "2027-01-04"),
    ("cycle", "R/P1Y"), ("cycle", "R3/PT1H"), ("cycle", "R/2027-01-01T00:00:00Z/P1Y"),
])
def test_bare_iso_8601_is_a_literal(kind: str, text: str) -> None:
    assert is_literal(kind, text) and literal_problem(kind, text) is None


@pytest.mark.parametrize("text", ["review_interval", '"P%dD" % days', "add_working_days(start, 10)", "'P42D'"])
def test_anything_else_is_an_expression(text: str) -> None:
    assert not is_literal("duration", text) and not looks_like_iso(text)


def test_iso_lookalike_typos_are_caught() -> None:
    assert looks_like_iso("P4XD") and literal_problem("duration", "P4XD")
    assert literal_problem("duration", "P1W2D")  # weeks cannot mix with other units


def test_cycle_forms() -> None:
    now = datetime(2030, 6, 1, tzinfo=UTC)
    assert parse_cycle("R3/PT1H", now) == (3, now + timedelta(hours=1), timedelta(hours=1))
    assert parse_cycle("R/2027-01-01T00:00:00Z/P1Y", now) == (-1, datetime(2027, 1, 1, tzinfo=UTC),
                                                              timedelta(days=365))
    assert parse_cycle("R2/P1D/2031-01-01T00:00:00Z", now) == (2, datetime(2030, 12, 31, tzinfo=UTC),
                                                               timedelta(days=1))


def test_dates_without_offset_are_utc() -> None:
    assert parse_date("2027-01-04T09:00:00") == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    assert parse_date("2027-01-04T09:00:00+01:00") == datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
