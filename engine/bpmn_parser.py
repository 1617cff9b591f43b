"""Reading diagrams in either modelling dialect into SpiffWorkflow specs.

Process owners draw in SpiffArena (spiffworkflow: extensions), Camunda Modeler 7
(camunda: attributes) or Camunda Modeler 8 / bpmn-js (zeebe: extensions). The `read_*`
functions here are the one place that knows where each dialect keeps a form, a team, a
service handler, a decision or a called process; both the validator in `engine.bpmn`
and `CarepathParser` use them, so what is validated is what runs.

`CarepathParser` is a `SpiffBpmnParser` whose task parsers (registered through
`OVERRIDE_PARSER_CLASSES`) read both dialects and produce the spiff spec classes, and
whose timer events are carepath's clock-following timers (`engine.bpmn_timers`).
User tasks carry `extensions['form']` and `extensions['candidate_groups']`.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    ExclusiveGateway,
    InclusiveGateway,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.spiff.parser.event_parsers import (
    SpiffBoundaryEventParser,
    SpiffEndEventParser,
    SpiffIntermediateCatchEventParser,
    SpiffIntermediateThrowEventParser,
    SpiffReceiveTaskParser,
    SpiffSendTaskParser,
    SpiffStartEventParser,
)
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import (
    BusinessRuleTaskParser,
    ScriptTaskParser,
    SpiffTaskParser,
    SubWorkflowParser,
    UserTaskParser,
)
from SpiffWorkflow.spiff.specs.defaults import (
    BusinessRuleTask,
    CallActivity,
    ManualTask,
    NoneTask,
    ReceiveTask,
    ScriptTask,
    SendTask,
    ServiceTask,
    SubWorkflowTask,
    TransactionSubprocess,
    UserTask,
)
from SpiffWorkflow.util.task import TaskState

from engine.bpmn_timers import TIMER_CLASSES, literal_problem, looks_like_iso, parse_date
from engine.bpmn_xml import BPMN_NS as BPMN_NS
from engine.bpmn_xml import CAMUNDA_NS, NSMAP, SPIFF_NS, ZEEBE_NS, _attr, _split, _text, _xp
from engine.clock import as_utc
from engine.dmn import DecisionParsers
from engine.foreign_expressions import FEEL, JUEL, bare_variable, python_suggestion

TIMER_TAGS = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}
# Camunda form keys name where the form lives; carepath only wants the form's name.
_FORM_PREFIXES = ("camunda-forms:", "embedded:", "deployment:", "app:")
_JAVA_IMPLEMENTATIONS = ("class", "expression", "delegateExpression")
PYTHON_SCRIPT_FORMATS = frozenset({"python", "python3", "py", "text/x-python", "text/python"})


def task_properties(node: Any) -> dict[str, str]:
    """A task's `<spiffworkflow:property name= value=>` pairs, and its Camunda/Zeebe properties
    (a spiff property wins over a Camunda or Zeebe one of the same name)."""
    props: dict[str, str] = {}
    for prefix in ("zeebe", "camunda", "spiffworkflow"):
        for prop in _xp(node, f"./bpmn:extensionElements/{prefix}:properties/{prefix}:property"):
            if prop.get("name"):
                props[prop.get("name")] = prop.get("value", "")
    return props


def spiff_extension_text(node: Any, name: str) -> str | None:
    found = _xp(node, f"./bpmn:extensionElements/spiffworkflow:{name}")
    return _text(found[0]) if found else None


# --- what each dialect says about a task ------------------------------------------------


def read_form(node: Any) -> str | None:
    """The form a user task shows, by name, or None."""
    props = task_properties(node)
    for key in ("formJsonSchemaFilename", "form"):
        if props.get(key, "").strip():
            return props[key].strip()
    key = _attr(node, CAMUNDA_NS, "formKey") or _attr(node, CAMUNDA_NS, "formRef")
    if key is None:
        for definition in _xp(node, "./bpmn:extensionElements/zeebe:formDefinition"):
            key = next((definition.get(a).strip() for a in ("formKey", "formId", "externalReference")
                        if (definition.get(a) or "").strip()), None)
    while key is not None and key.startswith(_FORM_PREFIXES):
        key = key.split(":", 1)[1]
    return key or None


def _is_expression(value: str | None) -> bool:
    """A Camunda (`${…}`, `#{…}`) or Zeebe (`=…`) expression rather than literal text."""
    text = (value or "").strip()
    return text.startswith(("${", "#{", "="))


def read_candidate_groups(node: Any) -> tuple[str, ...]:
    """The teams named on a user task itself (not its lane), as literal text; an expression
    (`${approverGroups}`) is no team name: it is read by `read_assignment` and evaluated when the task is ready."""
    groups: tuple[str, ...] = ()
    camunda = _attr(node, CAMUNDA_NS, "candidateGroups")
    if not _is_expression(camunda):
        groups += _split(camunda)
    for assignment in _xp(node, "./bpmn:extensionElements/zeebe:assignmentDefinition"):
        if not _is_expression(assignment.get("candidateGroups")):
            groups += _split(assignment.get("candidateGroups"))
    groups += _split(task_properties(node).get("candidateGroups"))
    return tuple(dict.fromkeys(groups))  # each team once, in the order written


# --- who does a user task, and by when (Camunda 7 attributes, Zeebe extensions) -------------

#: the parts of an assignment, as carepath names them -> (the Camunda 7 attribute, the Zeebe element.attribute)
ASSIGNMENT_SOURCES: dict[str, tuple[str, str]] = {
    "assignee": ("assignee", "assignmentDefinition.assignee"),
    "candidate_users": ("candidateUsers", "assignmentDefinition.candidateUsers"),
    "candidate_groups": ("candidateGroups", "assignmentDefinition.candidateGroups"),
    "due": ("dueDate", "taskSchedule.dueDate"),
    "follow_up": ("followUpDate", "taskSchedule.followUpDate"),
}
#: where a computed assignment is kept on the live task (`Task.internal_data`)
ASSIGNMENT_KEY = "carepath_assignment"


@dataclass(frozen=True)
class AssignmentValue:
    """One part of a user task's assignment as written: `attribute` names it as the diagram does
    (`camunda:dueDate`); either `expression` (Python, from a bare `${name}` / `=name`) or `literal`."""

    attribute: str
    expression: str | None = None
    literal: str | None = None


@dataclass(frozen=True)
class Assignment:
    """A user task's assignee, candidate users and groups and due date, evaluated when the task is ready."""

    parts: dict[str, AssignmentValue] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.parts)


def _assignment_value(attribute: str, text: str) -> tuple[AssignmentValue | None, str | None]:
    text = text.strip()
    if not _is_expression(text):
        if "${" in text or "#{" in text:
            return None, (f"{attribute}=\"{text}\" mixes text and a JUEL expression: write either names "
                          "separated by commas or one `${variable}`")
        return AssignmentValue(attribute, literal=text), None
    name = bare_variable(text)
    if name is not None:
        return AssignmentValue(attribute, expression=name), None
    language = FEEL if text.startswith("=") else JUEL
    return None, (f"{attribute}=\"{text}\" is a {language} expression; carepath evaluates Python expressions "
                  f"and takes only a variable name here: compute the value in a script task (e.g. "
                  f"{python_suggestion(language, text).removeprefix('write ')}) into a variable and write "
                  + ("`=variable`" if language == FEEL else "`${variable}`"))


def read_assignment(node: Any) -> tuple[Assignment, list[str]]:
    """A user task's Camunda 7 / Zeebe assignment (first dialect that gives a part wins), and what is wrong."""
    parts: dict[str, AssignmentValue] = {}
    problems: list[str] = []
    zeebe: dict[str, tuple[str, str]] = {}
    for element in ("assignmentDefinition", "taskSchedule"):
        for found in _xp(node, f"./bpmn:extensionElements/zeebe:{element}"):
            for name, value in found.attrib.items():
                if value.strip():
                    zeebe[f"{element}.{name}"] = (f"zeebe:{element} {name}", value)
    for part, (camunda_name, zeebe_name) in ASSIGNMENT_SOURCES.items():
        text = _attr(node, CAMUNDA_NS, camunda_name)
        attribute = f"camunda:{camunda_name}"
        if text is None and zeebe_name in zeebe:
            attribute, text = zeebe[zeebe_name]
        if text is None:
            continue
        value, problem = _assignment_value(attribute, text)
        if problem:
            problems.append(problem)
        elif value is not None:
            parts[part] = value
    return Assignment(parts), problems


def user_task_groups(node: Any, lane: str | None) -> tuple[str, ...]:
    """The teams that may do a user task: those named on it, else its lane."""
    return read_candidate_groups(node) or ((lane,) if lane else ())


@dataclass(frozen=True)
class ServiceCall:
    """A service task as carepath runs it: a handler name, parameter expressions, a result variable."""

    handler: str | None
    params: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (expression, type)
    result_variable: str = ""
    problems: tuple[str, ...] = ()


def default_result_variable(element_id: str) -> str:
    return re.sub(r"\W", "_", f"{element_id}_result")


def has_service_implementation(node: Any) -> bool:
    """Whether a task (a send task, say) names how it is carried out: a Camunda 7 implementation
    (`camunda:type`, a Java class, expression or connector), a Zeebe job type or a spiff operator."""
    return bool(any(_attr(node, CAMUNDA_NS, a) for a in ("type", "topic", *_JAVA_IMPLEMENTATIONS))
                or _xp(node, "./bpmn:extensionElements/camunda:connector")
                or _xp(node, "./bpmn:extensionElements/zeebe:taskDefinition")
                or _xp(node, "./bpmn:extensionElements/spiffworkflow:serviceTaskOperator"))


def read_service(node: Any) -> ServiceCall:
    element_id = node.get("id", "")
    operators = _xp(node, "./bpmn:extensionElements/spiffworkflow:serviceTaskOperator")
    if operators:
        return _spiff_service(operators[0], element_id)
    if _xp(node, "./bpmn:extensionElements/zeebe:taskDefinition"):
        return _zeebe_service(node, element_id)
    return _camunda_service(node, element_id)


def _spiff_service(operator: Any, element_id: str) -> ServiceCall:
    params: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for param in _xp(operator, "./spiffworkflow:parameters/spiffworkflow:parameter"):
        if not param.get("id"):
            problems.append("a service task parameter has no id")
        elif param.get("value") is not None:
            params[param.get("id")] = (param.get("value"), param.get("type") or "any")
    result = (operator.get("resultVariable") or "").strip() or default_result_variable(element_id)
    return ServiceCall((operator.get("id") or "").strip() or None, params, result, tuple(problems))


def _camunda_service(node: Any, element_id: str) -> ServiceCall:
    problems: list[str] = []
    java = [a for a in _JAVA_IMPLEMENTATIONS if _attr(node, CAMUNDA_NS, a)]
    if java or _xp(node, "./bpmn:extensionElements/camunda:connector"):
        problems.append(f"camunda:{(java or ['connector'])[0]} (Java) is not supported: set the implementation "
                        "to External and name the handler as its topic")
    handler = _attr(node, CAMUNDA_NS, "topic") if _attr(node, CAMUNDA_NS, "type") == "external" else None
    params: dict[str, tuple[str, str]] = {}
    for param in _xp(node, "./bpmn:extensionElements/camunda:inputOutput/camunda:inputParameter"):
        name = param.get("name")
        if not name:
            problems.append("a camunda:inputParameter has no name")
        elif len(param):
            problems.append(f"input parameter '{name}' must be a plain expression (no script, list or map)")
        else:
            text = (param.text or "").strip()
            params[name] = (bare_variable(text) or text or "None", "any")  # `${person}`: the variable person
    result = _attr(node, CAMUNDA_NS, "resultVariable") or default_result_variable(element_id)
    return ServiceCall(handler, params, result, tuple(problems))


def _zeebe_service(node: Any, element_id: str) -> ServiceCall:
    definition = _xp(node, "./bpmn:extensionElements/zeebe:taskDefinition")[0]
    params: dict[str, tuple[str, str]] = {}
    for mapping in _xp(node, "./bpmn:extensionElements/zeebe:ioMapping/zeebe:input"):
        if mapping.get("target"):
            # Zeebe marks expressions with a leading "="; carepath's are Python either way.
            params[mapping.get("target")] = ((mapping.get("source") or "None").lstrip("=").strip(), "any")
    headers = {h.get("key"): h.get("value") for h in _xp(node, "./bpmn:extensionElements/zeebe:taskHeaders/*")}
    result = (headers.get("resultVariable") or "").strip() or default_result_variable(element_id)
    return ServiceCall((definition.get("type") or "").strip() or None, params, result)


def read_decision_ref(node: Any) -> str | None:
    """The decision a business rule task evaluates."""
    ref = spiff_extension_text(node, "calledDecisionId") or _attr(node, CAMUNDA_NS, "decisionRef")
    if ref is None:
        for called in _xp(node, "./bpmn:extensionElements/zeebe:calledDecision"):
            ref = (called.get("decisionId") or "").strip() or None
    return ref


#: Camunda 7's `camunda:mapDecisionResult` values (the default is resultList)
DECISION_RESULT_MAPPINGS = ("singleEntry", "singleResult", "collectEntries", "resultList")


@dataclass(frozen=True)
class DecisionResult:
    """Where a business rule task keeps its decision's result: `variable`, shaped by `mapping`
    (a Camunda 7 mapping, or "zeebe": one output's value, or a dict of the outputs; a list of them under COLLECT)."""

    variable: str
    mapping: str
    attribute: str


def read_decision_result(node: Any) -> tuple[DecisionResult | None, list[str]]:
    """`camunda:resultVariable` + `camunda:mapDecisionResult`, or `zeebe:calledDecision resultVariable`."""
    problems: list[str] = []
    variable = _attr(node, CAMUNDA_NS, "resultVariable")
    mapping = _attr(node, CAMUNDA_NS, "mapDecisionResult")
    attribute = "camunda:resultVariable"
    if variable is None:
        for called in _xp(node, "./bpmn:extensionElements/zeebe:calledDecision"):
            if (called.get("resultVariable") or "").strip():
                variable, attribute = called.get("resultVariable").strip(), "zeebe:calledDecision resultVariable"
                if mapping is None:
                    mapping = "zeebe"
    if mapping is not None and mapping != "zeebe" and mapping not in DECISION_RESULT_MAPPINGS:
        problems.append(f"camunda:mapDecisionResult=\"{mapping}\" is not one of {', '.join(DECISION_RESULT_MAPPINGS)}")
    if variable is None:
        if mapping is not None and mapping != "zeebe":
            problems.append("camunda:mapDecisionResult is given without camunda:resultVariable: name the variable "
                            "that keeps the result")
        return None, problems
    if not _IDENTIFIER.match(variable):
        problems.append(f"{attribute}=\"{variable}\" is not a variable name (letters, digits and _, starting "
                        "with a letter)")
        return None, problems
    return DecisionResult(variable, mapping or "resultList", attribute), problems


def map_decision_result(result: DecisionResult, outputs: list[dict[str, Any]], collect: bool) -> Any:
    """The matched rules' outputs (one dict a rule) shaped as `result.mapping` says; ValueError when they
    do not fit it (as Camunda refuses, e.g. singleEntry with two matched rules)."""
    where = f"{result.attribute}=\"{result.variable}\" with mapDecisionResult {result.mapping}"
    if result.mapping == "zeebe":
        values = [next(iter(o.values())) if len(o) == 1 else o for o in outputs]
        return values if collect else (values[0] if values else None)
    if result.mapping == "resultList":
        return outputs
    if result.mapping == "collectEntries":
        if any(len(o) != 1 for o in outputs):
            raise ValueError(f"{where}: a rule gives {max(len(o) for o in outputs)} outputs; collectEntries "
                             "takes one output a rule")
        return [next(iter(o.values())) for o in outputs]
    if len(outputs) > 1:
        raise ValueError(f"{where}: {len(outputs)} rules matched; {result.mapping} takes one")
    if not outputs:
        return None
    if result.mapping == "singleResult":
        return outputs[0]
    if len(outputs[0]) != 1:
        raise ValueError(f"{where}: the rule gives {len(outputs[0])} outputs; singleEntry takes one")
    return next(iter(outputs[0].values()))


def read_called_element(node: Any) -> str | None:
    """The process a call activity starts."""
    called = (node.get("calledElement") or "").strip() or None
    if called is None:
        for element in _xp(node, "./bpmn:extensionElements/zeebe:calledElement"):
            called = (element.get("processId") or "").strip() or None
    return called


def read_timer(definition: Any) -> tuple[str | None, str | None]:
    """(kind, text) of a timerEventDefinition: kind is 'date'|'duration'|'cycle', None if absent."""
    for child in definition:
        if isinstance(child.tag, str) and etree.QName(child).localname in TIMER_TAGS:
            return TIMER_TAGS[etree.QName(child).localname], _text(child)
    return None, None


def read_extensions(node: Any) -> dict[str, Any]:
    """SpiffWorkflow's `extensions` dict, read without its KeyErrors on incomplete elements."""
    ext: dict[str, Any] = {}
    for child in _xp(node, "./bpmn:extensionElements/spiffworkflow:*"):
        name = etree.QName(child).localname
        if name == "serviceTaskOperator":
            call = _spiff_service(child, node.get("id", ""))
            ext[name] = {"name": call.handler, "resultVariable": call.result_variable,
                         "parameters": {k: {"value": v, "type": t} for k, (v, t) in call.params.items()}}
        elif name == "taskMetadataValues":
            ext[name] = {m.get("name"): m.get("value") for m in _xp(child, "./spiffworkflow:taskMetadataValue")}
        elif name == "unitTests":
            continue  # SpiffArena's script unit tests: carepath does not run them
        elif name != "properties":
            ext[name] = child.text
    props = task_properties(node)
    if props:
        ext["properties"] = props
    return ext


# --- `KIND:NAME` = value properties: what a process reads when it starts, what an element keeps -----------


@dataclass(frozen=True)
class PropertyKind:
    """One kind of `KIND:NAME` = value property carepath reads (any dialect's `properties`): what it is called,
    whether it belongs on the process or on an element, what its value is, and how its problems are worded."""

    noun: str  # "start input"
    on_process: bool  # True: on the process element; False: on a task, event or subprocess
    value: str  # "handler" (a registered handler's name) | "expression" (checked by the sandbox)
    name_rule: str  # what NAME must be, as the message says it
    empty: str  # what to write when the value is empty
    again: str  # how a repeated NAME is worded ("" or " on this element")
    misplaced: str  # why it cannot be where it was found, and where to put it


#: every `KIND:NAME` property kind, in one table: the reader and the deploy check are driven by it
PROPERTY_KINDS: dict[str, PropertyKind] = {
    "load": PropertyKind("start input", True, "handler", "is not a variable name", "name the handler to call", "",
                         "a start input is given when the process starts; put it on the process"),
    "default": PropertyKind("start input", True, "expression", "is not a variable name", "write the expression",
                            "", "a start input is given when the process starts; put it on the process"),
    "case": PropertyKind("case output", False, "expression", "is not a name for a case detail",
                         "write the expression whose value is kept", " on this element",
                         "a case output is kept when an element completes; put it on the element whose "
                         "completion gives the value"),
}
#: process-level properties (any dialect) that give a variable its value when an instance starts
START_INPUT_KINDS = tuple(k for k, v in PROPERTY_KINDS.items() if v.on_process)
#: the element property prefix of a case output: `case:KEY` = an expression
CASE_OUTPUT_PREFIX = "case"
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class KindProperty:
    """A `KIND:NAME` = value property as written (`name`), read: its kind, NAME and value."""

    name: str
    kind: str
    key: str
    value: str


def _all_properties(node: Any) -> list[tuple[str, str]]:
    """Every dialect's properties on an element, in the order written (repeats kept)."""
    found = []
    for prop in _xp(node, "./bpmn:extensionElements/*/*[local-name()='property']"):
        parent = prop.getparent()
        if etree.QName(parent).localname == "properties" and etree.QName(parent).namespace in (
                SPIFF_NS, CAMUNDA_NS, ZEEBE_NS) and prop.get("name"):
            found.append((prop.get("name"), prop.get("value", "")))
    return found


def read_kind_properties(node: Any) -> tuple[list[KindProperty], list[tuple[str, str]]]:
    """Every `KIND:NAME` property of a kind in PROPERTY_KINDS on `node`, in the order written, and the
    problems with them as (kind, message): NAME must be a name, the value given, NAME not repeated
    (among the properties of the same noun: `load:x` and `default:x` are one start input)."""
    found: list[KindProperty] = []
    problems: list[tuple[str, str]] = []
    for name, value in _all_properties(node):
        kind, sep, key = name.partition(":")
        spec = PROPERTY_KINDS.get(kind.strip()) if sep else None
        if spec is None:
            continue  # another property: not carepath's
        kind, key, value = kind.strip(), key.strip(), (value or "").strip()
        where = f"{spec.noun} '{name}'"
        if not _IDENTIFIER.match(key):
            problems.append((kind, f"{where}: '{key}' {spec.name_rule} (letters, digits and _, starting with a "
                                   "letter)"))
        elif not value:
            problems.append((kind, f"{where} has no value: {spec.empty}"))
        elif any(PROPERTY_KINDS[f.kind].noun == spec.noun and f.key == key for f in found):
            problems.append((kind, f"{where}: '{key}' is given more than once{spec.again}"))
        else:
            found.append(KindProperty(name, kind, key, value))
    return found, problems


@dataclass(frozen=True)
class StartInput:
    """`load:VARIABLE` = a handler's name (called with no parameters), or `default:VARIABLE` = an
    expression used when the start data does not give VARIABLE (absent, null or "")."""

    kind: str
    variable: str
    source: str


def read_start_inputs(process: Any) -> tuple[tuple[StartInput, ...], list[str]]:
    """A process element's start inputs, in the order written, and what is wrong with them."""
    found, problems = read_kind_properties(process)
    return (tuple(StartInput(p.kind, p.key, p.value) for p in found if p.kind in START_INPUT_KINDS),
            [message for kind, message in problems if kind in START_INPUT_KINDS])


class CarepathStartEvent(StartEvent):
    """A start event that, on the process's top level, first gives the process's start inputs
    their values: defaults (evaluated in the sandbox) where the start data lacks them, then each
    `load:` handler's result (a recorded `handler.called` at this start event, as any service
    task's call is; a failure is an incident here, and a retry calls it again)."""

    start_inputs: tuple[StartInput, ...] = ()

    def _run_hook(self, my_task: Any) -> Any:
        engine = my_task.workflow.script_engine
        for item in self.start_inputs:
            if item.kind == "default" and my_task.data.get(item.variable) in (None, ""):
                my_task.data[item.variable] = engine.evaluate(my_task, item.source)
        for item in self.start_inputs:
            if item.kind == "load":
                result = engine.call_service(my_task, operation_name=item.source, operation_params={})
                my_task.data[item.variable] = json.loads(result)
        return super()._run_hook(my_task)


# --- what an element keeps on the case when it completes -------------------------------

@dataclass(frozen=True)
class CaseOutput:
    """`case:KEY` = an expression evaluated with the element's task data when it completes; its value is
    merged into the case record under KEY (docs/engine.md "Case outputs")."""

    key: str
    expression: str


def read_case_outputs(node: Any) -> tuple[tuple[CaseOutput, ...], list[str]]:
    """An element's case outputs, in the order written, and what is wrong with them."""
    found, problems = read_kind_properties(node)
    return (tuple(CaseOutput(p.key, p.value) for p in found if p.kind == CASE_OUTPUT_PREFIX),
            [message for kind, message in problems if kind == CASE_OUTPUT_PREFIX])


class CaseOutputs:
    """Mixed into carepath's spec classes: as the element completes (after its form data, result,
    script and postScript are in the task data) its case outputs are evaluated and merged into the
    case record by the script engine (`CarepathScriptEngine.keep_case_outputs`), as one
    `case.updated` event at this element. A failure leaves the task in error (an incident); a
    retry runs it again."""

    case_outputs: tuple[CaseOutput, ...] = ()

    def _on_complete_hook(self, my_task: Any) -> None:
        super()._on_complete_hook(my_task)  # type: ignore[misc]
        if self.case_outputs:
            try:
                my_task.workflow.script_engine.keep_case_outputs(my_task, self.case_outputs)
            except Exception:
                my_task._set_state(TaskState.ERROR)
                raise


def _with_case_outputs(base: type) -> type:
    return type(f"Carepath{base.__name__}", (CaseOutputs, base), {"__module__": __name__, "__doc__": base.__doc__})


class Assigned:
    """Mixed into carepath's user task: when the task becomes ready its assignment (assignee, candidate users and
    groups, due date: Camunda 7 attributes or Zeebe extensions) is evaluated with its task data and kept in the
    task's internal data (`ASSIGNMENT_KEY`), where the runtime reads it for the task row
    (engine/workflow_state.py, `_snapshot`). A failure leaves the task in error (an incident); a retry
    evaluates it again."""

    assignment: Assignment = Assignment()

    def _on_ready_hook(self, my_task: Any) -> None:
        super()._on_ready_hook(my_task)  # type: ignore[misc]
        self.assign(my_task)

    def assign(self, my_task: Any) -> None:
        if not self.assignment:
            return
        try:
            my_task._set_internal_data(**{ASSIGNMENT_KEY: evaluate_assignment(my_task, self.assignment)})
        except Exception:
            my_task._set_state(TaskState.ERROR)
            raise


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return list(_split(value))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValueError(f"{what} gave {type(value).__name__} {value!r}: give a name, names separated by commas, "
                     "or a list of names")


def _due(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, datetime):
            return as_utc(value).isoformat()
        if isinstance(value, date):
            return as_utc(datetime(value.year, value.month, value.day)).isoformat()
        if isinstance(value, str):
            return parse_date(value).isoformat()
    except ValueError:
        pass
    raise ValueError(f"{what} gave {value!r}: give an ISO 8601 date or date-time (e.g. 2027-01-04T09:00:00Z), "
                     "a date or a datetime")


def not_teams(groups: Iterable[str], teams: Collection[str] | None) -> list[str]:
    """The candidate groups in `groups` that are not teams (none when the teams are not known): the one team check
    of a user task, at deploy for the groups written in the diagram (engine/bpmn_checks.py) and when the task is
    ready for the groups an expression gives (`evaluate_assignment`)."""
    return [] if teams is None else [g for g in groups if g not in teams]


def evaluate_assignment(my_task: Any, assignment: Assignment) -> dict[str, Any]:
    """The assignment's values for this task: {"assignee", "candidate_groups", "candidate_users", "due_at",
    "follow_up_at"} (each only when given). Expressions are evaluated in the sandbox; evaluated teams are checked
    against the registry's teams, evaluated candidate users against its users (each when known). Candidate users
    are offered the task (any one of them may claim it); one candidate user alone, with no assignee given, is its
    assignee at once (as before several were supported, so histories recorded then replay the same)."""
    engine = my_task.workflow.script_engine
    spec = my_task.task_spec
    label = f"'{spec.bpmn_name or spec.bpmn_id}'"
    values: dict[str, Any] = {}
    for part, value in assignment.parts.items():
        what = f"{value.attribute} of {label}"
        raw = engine.evaluate(my_task, value.expression) if value.expression else value.literal
        if part == "due":
            values["due_at"] = _due(raw, what)
        elif part == "follow_up":
            values["follow_up_at"] = _due(raw, what)
        elif part == "candidate_groups":
            values["candidate_groups"] = _names(raw, what)
        elif part == "candidate_users":
            values["candidate_users"] = list(dict.fromkeys(_names(raw, what)))
            if len(values["candidate_users"]) == 1 and "assignee" not in assignment.parts:
                values["assignee"] = values["candidate_users"][0]  # offered to one person only: theirs at once
        elif part == "assignee":
            names = _names(raw, what)
            if len(names) > 1:
                raise ValueError(f"{what} gave {len(names)} people ({', '.join(names)}): a task has one "
                                 "assignee; offer it to several people with candidate users")
            if names:
                values["assignee"] = names[0]
    registry = getattr(engine, "registry", None)
    teams = getattr(registry, "teams", None)
    groups = assignment.parts.get("candidate_groups")
    computed = groups is not None and bool(groups.expression)  # literal teams were checked at deploy
    unknown = not_teams(values.get("candidate_groups", []), teams) if computed else []
    if unknown:
        attribute = assignment.parts["candidate_groups"].attribute
        raise ValueError(f"{attribute} of {label} gave {', '.join(map(repr, unknown))}, which is not a team: "
                         f"the teams are {', '.join(teams)}")
    users = assignment.parts.get("candidate_users")
    known = getattr(registry, "users", None)  # the people who exist (when known): a callable name -> bool
    if users is not None and users.expression and known is not None:
        strangers = [u for u in values.get("candidate_users", []) if not known(u)]
        if strangers:
            raise ValueError(f"{users.attribute} of {label} gave {', '.join(map(repr, strangers))}, who "
                             f"{'is' if len(strangers) == 1 else 'are'} not a carepath user")
    return values


class DecidesInto:
    """Mixed into carepath's business rule task: with a result variable (`camunda:resultVariable` +
    `camunda:mapDecisionResult`, or `zeebe:calledDecision resultVariable`) the decision's result is kept in that
    one variable, shaped by the mapping, instead of merging its outputs into the task data."""

    decision_result: DecisionResult | None = None

    def _run_hook(self, my_task: Any) -> Any:
        if self.decision_result is None:
            return super()._run_hook(my_task)  # type: ignore[misc]
        engine = self.dmnEngine  # type: ignore[attr-defined]
        if hasattr(engine, "rule_outputs"):  # carepath's DecisionEngine (engine/dmn.py): hit policies and requirements
            outputs = engine.rule_outputs(my_task)
        else:
            outputs = [rule.output_as_dict(my_task) for rule in engine.decide(my_task)]
        collect = str(getattr(engine.decision_table, "hit_policy", "")).upper() == "COLLECT"
        my_task.data[self.decision_result.variable] = map_decision_result(self.decision_result, outputs, collect)
        return super(BusinessRuleTaskMixin, self)._run_hook(my_task)  # type: ignore[misc]


#: spiff spec class -> carepath's subclass of it that keeps case outputs (same serializer converter)
CASE_OUTPUT_CLASSES: dict[type, type] = {base: _with_case_outputs(base) for base in (
    NoneTask, ManualTask, ScriptTask, ServiceTask, CallActivity, SubWorkflowTask,
    TransactionSubprocess, SendTask, ReceiveTask, EndEvent, IntermediateCatchEvent, IntermediateThrowEvent)}
CASE_OUTPUT_CLASSES[UserTask] = type("CarepathUserTask", (Assigned, CaseOutputs, UserTask),
                                     {"__module__": __name__, "__doc__": UserTask.__doc__})
CASE_OUTPUT_CLASSES[BusinessRuleTask] = type("CarepathBusinessRuleTask", (DecidesInto, CaseOutputs, BusinessRuleTask),
                                             {"__module__": __name__, "__doc__": BusinessRuleTask.__doc__})


@dataclass(frozen=True)
class Listeners:
    """Camunda 7 execution listeners with an inline Python script: `start` runs as the element's
    preScript, `end` as its postScript (several of one event run in the order written)."""

    prescript: str | None
    postscript: str | None
    problems: tuple[str, ...]
    count: int


def read_execution_listeners(node: Any) -> Listeners:
    """An element's `camunda:executionListener`s as a preScript and a postScript, and what is wrong."""
    scripts: dict[str, list[str]] = {"start": [], "end": []}
    problems: list[str] = []
    listeners = _xp(node, "./bpmn:extensionElements/camunda:executionListener")
    supported_kinds = ('carepath runs only an inline Python script '
                       '(<camunda:script scriptFormat="python">) on event "start" or "end"')
    for listener in listeners:
        event = (listener.get("event") or "").strip()
        java = [a for a in _JAVA_IMPLEMENTATIONS if listener.get(a)]
        script = _xp(listener, "./camunda:script")
        if java:
            problems.append(f"an execution listener with a Java {java[0]} ('{listener.get(java[0]).strip()}') "
                            f"cannot run: {supported_kinds}")
            continue
        if not script:
            problems.append(f"an execution listener has no script: {supported_kinds}")
            continue
        if script[0].get("resource"):
            problems.append(f"an execution listener's script is in an external resource "
                            f"('{script[0].get('resource')}'): write the script inline; {supported_kinds}")
            continue
        script_format = (script[0].get("scriptFormat") or "python").strip().lower()
        text = textwrap.dedent(script[0].text or "").strip()
        if script_format not in PYTHON_SCRIPT_FORMATS:
            problems.append(f"an execution listener's script is written in {script_format}: {supported_kinds}")
        elif event not in scripts:
            problems.append(f"an execution listener on event '{event or '(none)'}' cannot run: {supported_kinds}")
        elif not text:
            problems.append(f"an execution listener on event '{event}' has an empty script")
        else:
            scripts[event].append(text)
    return Listeners("\n".join(scripts["start"]) or None, "\n".join(scripts["end"]) or None, tuple(problems),
                     len(listeners))


# --- the SpiffWorkflow parser -----------------------------------------------------------


class _Extensions:
    """Both dialects' extensions, plus carepath's `form` and `candidate_groups` on user tasks."""

    node: Any
    lane: str | None

    def parse_extensions(self, node: Any = None) -> dict[str, Any]:
        node = self.node if node is None else node
        ext = read_extensions(node)
        if node is self.node and node.tag == full_tag("userTask"):
            ext["form"] = read_form(node)
            ext["candidate_groups"] = list(user_task_groups(node, self.lane))
        if node is self.node:  # Camunda execution listeners run as the spiff pre- and postScript
            listeners = read_execution_listeners(node)
            for key, script in (("preScript", listeners.prescript), ("postScript", listeners.postscript)):
                if script and not ext.get(key):
                    ext[key] = script
        return ext

    def create_task(self) -> Any:
        task = super().create_task()  # type: ignore[misc]
        if isinstance(task, CaseOutputs):
            task.case_outputs = read_case_outputs(self.node)[0]
        return task


class _Timers:
    """Timer events become carepath's clock-following timers, with bare ISO 8601 allowed."""

    node: Any
    filename: str | None

    def parse_timer_event(self, event: Any) -> Any:
        kind, text = read_timer(event)
        if kind is None or text is None:
            raise ValidationException("timer has no timeDate, timeDuration or timeCycle",
                                      node=self.node, file_name=self.filename)
        text = bare_variable(text) or text  # `${due}` / `=due`: the variable due (engine/foreign_expressions.py)
        problem = literal_problem(kind, text) if looks_like_iso(text) else None
        if problem:
            raise ValidationException(problem, node=self.node, file_name=self.filename)
        name = self.node.get("name", self.node.get("id"))
        description = self.get_event_description(event)  # type: ignore[attr-defined]
        return TIMER_CLASSES[kind](name, text, description=description)


class _TaskParser(_Extensions, SpiffTaskParser):
    pass


class _UserTaskParser(_Extensions, UserTaskParser):
    def create_task(self) -> Any:
        # the library names its UserTask class here; carepath's spec class keeps case outputs
        ext = self.parse_extensions()
        task = self.spec_class(self.spec, self.bpmn_id, variable=ext.get("variableName"),
                               prescript=ext.get("preScript"), postscript=ext.get("postScript"),
                               **self.bpmn_attributes)
        task.case_outputs = read_case_outputs(self.node)[0]
        task.assignment = read_assignment(self.node)[0]
        return task


class _ScriptTaskParser(_Extensions, ScriptTaskParser):
    pass


class _SubWorkflowParser(_Extensions, SubWorkflowParser):
    pass


class _ServiceTaskParser(_Extensions, SpiffTaskParser):
    """Either dialect's service task as SpiffWorkflow's spiff ServiceTask (one shape at run time)."""

    def create_task(self) -> Any:
        task = self._service_task()
        task.case_outputs = read_case_outputs(self.node)[0]
        return task

    def _service_task(self, spec_class: type | None = None) -> Any:
        call = read_service(self.node)
        if call.handler is None:
            raise ValidationException(call.problems[0] if call.problems else "service task names no handler",
                                      node=self.node, file_name=self.filename)
        ext = self.parse_extensions()
        params = {name: {"value": expr, "type": kind} for name, (expr, kind) in call.params.items()}
        return (spec_class or self.spec_class)(
            self.spec, self.bpmn_id, operation_name=call.handler, operation_params=params,
            result_variable=call.result_variable, prescript=ext.get("preScript"),
            postscript=ext.get("postScript"), **self.bpmn_attributes)


class _BusinessRuleTaskParser(_Extensions, BusinessRuleTaskParser):
    def create_task(self) -> Any:
        # the library names its BusinessRuleTask class here; carepath's spec class keeps case outputs
        ext = self.parse_extensions()
        task = self.spec_class(self.spec, self.bpmn_id,
                               dmnEngine=self.process_parser.parser.get_engine(self.get_decision_ref(self.node),
                                                                              self.node),
                               prescript=ext.get("preScript"), postscript=ext.get("postScript"),
                               **self.bpmn_attributes)
        task.case_outputs = read_case_outputs(self.node)[0]
        task.decision_result = read_decision_result(self.node)[0]
        return task

    @staticmethod
    def get_decision_ref(node: Any) -> str | None:
        return read_decision_ref(node)


class _CallActivityParser(_Extensions, SpiffTaskParser):
    def create_task(self) -> Any:
        task = self._call_activity()
        task.case_outputs = read_case_outputs(self.node)[0]
        return task

    def _call_activity(self) -> Any:
        called = read_called_element(self.node)
        if called is None:
            raise ValidationException("call activity names no process to call (calledElement)",
                                      node=self.node, file_name=self.filename)
        ext = self.parse_extensions()
        return self.spec_class(self.spec, self.bpmn_id, subworkflow_spec=called, prescript=ext.get("preScript"),
                               postscript=ext.get("postScript"), **self.bpmn_attributes)


class _StartEventParser(_Timers, _Extensions, SpiffStartEventParser):
    def create_task(self) -> Any:
        task = super().create_task()
        parent = self.node.getparent()
        if parent is not None and parent.tag == full_tag("process"):
            task.start_inputs = read_start_inputs(parent)[0]
        return task


class _EndEventParser(_Timers, _Extensions, SpiffEndEventParser):
    pass


class _IntermediateCatchEventParser(_Timers, _Extensions, SpiffIntermediateCatchEventParser):
    pass


class _IntermediateThrowEventParser(_Timers, _Extensions, SpiffIntermediateThrowEventParser):
    pass


class _BoundaryEventParser(_Timers, _Extensions, SpiffBoundaryEventParser):
    pass


class _SendTaskParser(_Extensions, SpiffSendTaskParser):
    """A send task implemented as a Camunda external topic or a Zeebe job type runs its handler, as a service
    task does (its spec is a service task's); one without sends its message."""

    def create_task(self) -> Any:
        if not has_service_implementation(self.node):
            return super().create_task()
        task = _ServiceTaskParser._service_task(self, CASE_OUTPUT_CLASSES[ServiceTask])  # type: ignore[arg-type]
        task.case_outputs = read_case_outputs(self.node)[0]
        return task


class _ReceiveTaskParser(_Extensions, SpiffReceiveTaskParser):
    pass


class _ConditionalGatewayParser(ConditionalGatewayParser):
    """A condition that is a bare variable in JUEL or FEEL (`${approved}`, `=approved`) is that variable
    (engine/foreign_expressions.py); any other condition is read as written, and must be Python."""

    def parse_condition(self, sequence_flow: Any) -> Any:
        text = super().parse_condition(sequence_flow)
        return (bare_variable(text) or text) if text else text


class CarepathParser(DecisionParsers, SpiffBpmnParser):
    """SpiffBpmnParser reading spiff, Camunda 7 and Zeebe diagrams, with carepath's timers and every decision of
    a DMN file with the decisions it requires (engine/dmn.py)."""

    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type, type]]] = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("task"): (_TaskParser, CASE_OUTPUT_CLASSES[NoneTask]),
        full_tag("manualTask"): (_TaskParser, CASE_OUTPUT_CLASSES[ManualTask]),
        full_tag("userTask"): (_UserTaskParser, CASE_OUTPUT_CLASSES[UserTask]),
        full_tag("scriptTask"): (_ScriptTaskParser, CASE_OUTPUT_CLASSES[ScriptTask]),
        full_tag("serviceTask"): (_ServiceTaskParser, CASE_OUTPUT_CLASSES[ServiceTask]),
        full_tag("businessRuleTask"): (_BusinessRuleTaskParser, CASE_OUTPUT_CLASSES[BusinessRuleTask]),
        full_tag("callActivity"): (_CallActivityParser, CASE_OUTPUT_CLASSES[CallActivity]),
        full_tag("subProcess"): (_SubWorkflowParser, CASE_OUTPUT_CLASSES[SubWorkflowTask]),
        full_tag("transaction"): (_SubWorkflowParser, CASE_OUTPUT_CLASSES[TransactionSubprocess]),
        full_tag("startEvent"): (_StartEventParser, CarepathStartEvent),
        full_tag("endEvent"): (_EndEventParser, CASE_OUTPUT_CLASSES[EndEvent]),
        full_tag("intermediateCatchEvent"): (_IntermediateCatchEventParser,
                                             CASE_OUTPUT_CLASSES[IntermediateCatchEvent]),
        full_tag("intermediateThrowEvent"): (_IntermediateThrowEventParser,
                                             CASE_OUTPUT_CLASSES[IntermediateThrowEvent]),
        full_tag("boundaryEvent"): (_BoundaryEventParser, BoundaryEvent),
        full_tag("sendTask"): (_SendTaskParser, CASE_OUTPUT_CLASSES[SendTask]),
        full_tag("receiveTask"): (_ReceiveTaskParser, CASE_OUTPUT_CLASSES[ReceiveTask]),
        full_tag("exclusiveGateway"): (_ConditionalGatewayParser, ExclusiveGateway),
        full_tag("inclusiveGateway"): (_ConditionalGatewayParser, InclusiveGateway),
    }

    def __init__(self) -> None:
        # No XSD validation: it stops at the first error; carepath's own checks report them all.
        super().__init__(namespaces=NSMAP)

    def _add_processes(self, bpmn: Any, filename: str | None = None) -> None:
        # The library raises on a duplicate process id and drops the rest of the file;
        # carepath reports duplicates itself and keeps the first.
        for process in bpmn.xpath(".//bpmn:process", namespaces=self.namespaces):
            if process.get("id") not in self.process_parsers:
                self._find_dependencies(process)
                self.create_parser(process, filename)


def supported(tag: str) -> bool:
    """Whether CarepathParser can build a spec for elements with this (qualified) tag."""
    return tag in CarepathParser.OVERRIDE_PARSER_CLASSES or tag in CarepathParser.PARSER_CLASSES
