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
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
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

from engine.bpmn_timers import TIMER_CLASSES, literal_problem, looks_like_iso
from engine.dmn import DecisionParsers

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
NSMAP = {
    "bpmn": BPMN_NS,
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "spiffworkflow": SPIFF_NS,
    "camunda": CAMUNDA_NS,
    "zeebe": ZEEBE_NS,
}
TIMER_TAGS = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}
# Camunda form keys name where the form lives; carepath only wants the form's name.
_FORM_PREFIXES = ("camunda-forms:", "embedded:", "deployment:", "app:")
_JAVA_IMPLEMENTATIONS = ("class", "expression", "delegateExpression")
PYTHON_SCRIPT_FORMATS = frozenset({"python", "python3", "py", "text/x-python", "text/python"})


def _xp(node: Any, path: str) -> list[Any]:
    return node.xpath(path, namespaces=NSMAP)


def _attr(node: Any, ns: str, name: str) -> str | None:
    value = node.get(f"{{{ns}}}{name}")
    return value.strip() if value is not None and value.strip() else None


def _text(node: Any) -> str | None:
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(g.strip() for g in (value or "").split(",") if g.strip())


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


def read_candidate_groups(node: Any) -> tuple[str, ...]:
    """The teams named on a user task itself (not its lane)."""
    groups = _split(_attr(node, CAMUNDA_NS, "candidateGroups"))
    for assignment in _xp(node, "./bpmn:extensionElements/zeebe:assignmentDefinition"):
        groups += _split(assignment.get("candidateGroups"))
    groups += _split(task_properties(node).get("candidateGroups"))
    return tuple(dict.fromkeys(groups))  # each team once, in the order written


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
            params[name] = ((param.text or "").strip() or "None", "any")
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


# --- what a process reads when it starts ------------------------------------------------

#: process-level properties (any dialect) that give a variable its value when an instance starts
START_INPUT_KINDS = ("load", "default")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class StartInput:
    """`load:VARIABLE` = a handler's name (called with no parameters), or `default:VARIABLE` = an
    expression used when the start data does not give VARIABLE (absent, null or "")."""

    kind: str
    variable: str
    source: str


def read_start_inputs(process: Any) -> tuple[tuple[StartInput, ...], list[str]]:
    """A process element's start inputs, in the order written, and what is wrong with them."""
    found: list[StartInput] = []
    problems: list[str] = []
    for name, value in task_properties(process).items():
        kind, sep, variable = name.partition(":")
        if not sep or kind.strip() not in START_INPUT_KINDS:
            continue  # another property: not carepath's
        kind, variable, value = kind.strip(), variable.strip(), (value or "").strip()
        if not _IDENTIFIER.match(variable):
            problems.append(f"start input '{name}': '{variable}' is not a variable name "
                            "(letters, digits and _, starting with a letter)")
            continue
        if not value:
            problems.append(f"start input '{name}' has no value: "
                            + ("name the handler to call" if kind == "load" else "write the expression"))
            continue
        if any(s.variable == variable for s in found):
            problems.append(f"start input '{name}': '{variable}' is given more than once")
            continue
        found.append(StartInput(kind, variable, value))
    return tuple(found), problems


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

#: the element property prefix of a case output: `case:KEY` = an expression
CASE_OUTPUT_PREFIX = "case"


@dataclass(frozen=True)
class CaseOutput:
    """`case:KEY` = an expression evaluated with the element's task data when it completes; its value is
    merged into the case record under KEY (docs/engine.md "Case outputs")."""

    key: str
    expression: str


def _all_properties(node: Any) -> list[tuple[str, str]]:
    """Every dialect's properties on an element, in the order written (repeats kept)."""
    found = []
    for prop in _xp(node, "./bpmn:extensionElements/*/*[local-name()='property']"):
        parent = prop.getparent()
        if etree.QName(parent).localname == "properties" and etree.QName(parent).namespace in (
                SPIFF_NS, CAMUNDA_NS, ZEEBE_NS) and prop.get("name"):
            found.append((prop.get("name"), prop.get("value", "")))
    return found


def read_case_outputs(node: Any) -> tuple[tuple[CaseOutput, ...], list[str]]:
    """An element's case outputs, in the order written, and what is wrong with them."""
    found: list[CaseOutput] = []
    problems: list[str] = []
    for name, value in _all_properties(node):
        prefix, sep, key = name.partition(":")
        if not sep or prefix.strip() != CASE_OUTPUT_PREFIX:
            continue  # another property: not a case output
        key, value = key.strip(), (value or "").strip()
        if not _IDENTIFIER.match(key):
            problems.append(f"case output '{name}': '{key}' is not a name for a case detail "
                            "(letters, digits and _, starting with a letter)")
        elif not value:
            problems.append(f"case output '{name}' has no value: write the expression whose value is kept")
        elif any(o.key == key for o in found):
            problems.append(f"case output '{name}': '{key}' is given more than once on this element")
        else:
            found.append(CaseOutput(key, value))
    return tuple(found), problems


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


#: spiff spec class -> carepath's subclass of it that keeps case outputs (same serializer converter)
CASE_OUTPUT_CLASSES: dict[type, type] = {base: _with_case_outputs(base) for base in (
    NoneTask, ManualTask, UserTask, ScriptTask, ServiceTask, BusinessRuleTask, CallActivity, SubWorkflowTask,
    TransactionSubprocess, SendTask, ReceiveTask, EndEvent, IntermediateCatchEvent, IntermediateThrowEvent)}


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

    def _service_task(self) -> Any:
        call = read_service(self.node)
        if call.handler is None:
            raise ValidationException(call.problems[0] if call.problems else "service task names no handler",
                                      node=self.node, file_name=self.filename)
        ext = self.parse_extensions()
        params = {name: {"value": expr, "type": kind} for name, (expr, kind) in call.params.items()}
        return self.spec_class(self.spec, self.bpmn_id, operation_name=call.handler, operation_params=params,
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
    pass


class _ReceiveTaskParser(_Extensions, SpiffReceiveTaskParser):
    pass


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
