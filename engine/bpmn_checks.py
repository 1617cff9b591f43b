"""Carepath's own checks of a BPMN process, all problems at once (a DMN file's are in engine/dmn.py).

SpiffWorkflow's parser stops at its first error and only visits what is reachable from a
start event, so `ProcessCheck` walks a process's XML itself: sequence flows and
reachability, gateway conditions, forms, teams, handlers, decisions, called processes,
timers and every expression (through `check_expression`, the sandbox's deploy-time
check). While walking it collects the `ProcessInfo` the runtime needs.
"""

from __future__ import annotations

import keyword
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from engine.bpmn_parser import (
    BPMN_NS,
    CAMUNDA_NS,
    CASE_OUTPUT_PREFIX,
    PROPERTY_KINDS,
    PYTHON_SCRIPT_FORMATS,
    START_INPUT_KINDS,
    ZEEBE_NS,
    KindProperty,
    StartInput,
    _all_properties,
    has_service_implementation,
    not_teams,
    read_assignment,
    read_called_element,
    read_candidate_groups,
    read_decision_ref,
    read_decision_result,
    read_execution_listeners,
    read_form,
    read_kind_properties,
    read_service,
    read_timer,
    spiff_extension_text,
    supported,
    user_task_groups,
)
from engine.bpmn_timers import LITERAL_PATTERNS, is_literal, literal_problem, looks_like_iso
from engine.dmn import DecisionBinding, binding_problem, read_pinned
from engine.errors import Problem
from engine.expressions import check_expression
from engine.foreign_expressions import bare_variable, declared_language, foreign_language, foreign_message
from engine.library_problems import NO_DATA_STORES


@dataclass(frozen=True)
class UserTaskInfo:
    element_id: str
    name: str
    lane: str | None
    candidate_groups: tuple[str, ...]  # named on the task, else (lane,)
    form: str | None
    line: int | None


@dataclass(frozen=True)
class ServiceTaskInfo:
    element_id: str
    name: str
    handler: str
    params: dict[str, str]  # parameter name -> expression text
    result_variable: str


@dataclass(frozen=True)
class TimerInfo:
    element_id: str
    name: str
    kind: str  # 'date' | 'duration' | 'cycle'
    expression: str  # as written in the diagram
    attached_to: str | None  # the task a boundary timer sits on
    interrupting: bool


@dataclass(frozen=True)
class CaseOutputInfo:
    """`case:KEY` = expression on an element: kept on the case record when the element completes."""

    element_id: str
    name: str
    key: str
    expression: str


@dataclass(frozen=True)
class ProcessInfo:
    process_id: str
    name: str
    file: str
    user_tasks: dict[str, UserTaskInfo]
    service_tasks: dict[str, ServiceTaskInfo]
    timers: dict[str, TimerInfo]
    called_processes: frozenset[str]
    decisions_used: frozenset[str]
    lanes: tuple[str, ...]
    # what the process gives itself when it starts (`load:`/`default:` process properties)
    start_inputs: tuple[StartInput, ...] = ()
    # what its elements keep on the case record as they complete (`case:KEY` element properties)
    case_outputs: tuple[CaseOutputInfo, ...] = ()
    # the variable that holds who started an instance (camunda:initiator on its start event), or None
    initiator: str | None = None
    # business rule tasks bound to a decision version by number or tag (engine/dmn.py, `read_pinned`)
    decision_bindings: tuple[DecisionBinding, ...] = ()


def _q(local: str) -> str:
    return f"{{{BPMN_NS}}}{local}"


def _local(node: Any) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _label(node: Any) -> str:
    """An element's name as a modeller sees it, on one line (a name drawn on two lines holds a newline)."""
    return " ".join((node.get("name") or "").split()) or node.get("id") or _local(node)


def _first_occurrence(cycle: str) -> str:
    """What to write instead of a timeCycle on an event passed once: its first occurrence."""
    match = LITERAL_PATTERNS["cycle"].fullmatch(cycle.strip())
    if match is not None:
        _reps, start, _start_dur, end_dur, _end, only_dur = match.groups()
        if only_dur:
            return f"its first occurrence as a timeDuration: {only_dur}"
        if start:
            return f"its first occurrence as a timeDate: {start}"
        return f"its first occurrence as a timeDate (the end date less {end_dur})"
    return "the first occurrence as a timeDuration (e.g. P7D) or a timeDate (e.g. 2027-01-04T09:00:00Z)"


def _condition(flow: Any) -> str | None:
    text = (flow.findtext(_q("conditionExpression")) or "").strip()
    return text or None


FLOW_NODES = frozenset({
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask",
    "receiveTask", "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
})
SUBPROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
GATEWAYS = frozenset({"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway"})
CONDITIONAL_GATEWAYS = frozenset({"exclusiveGateway", "inclusiveGateway"})
#: elements whose completion can keep case outputs, and those that run pre/postScripts (execution listeners)
CASE_OUTPUT_KINDS = frozenset({
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask", "receiveTask",
    "callActivity", "subProcess", "transaction", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent",
})
SCRIPTED_KINDS = CASE_OUTPUT_KINDS - {"endEvent", "intermediateCatchEvent", "intermediateThrowEvent"}
LOOP_EXPRESSIONS = ("loopCardinality", "completionCondition", "loopCondition")
#: event definition -> (the attribute naming what it refers to, the kind of root element that must define it)
EVENT_REFERENCES = {"messageEventDefinition": ("messageRef", "message"),
                    "signalEventDefinition": ("signalRef", "signal"),
                    "errorEventDefinition": ("errorRef", "error"),
                    "escalationEventDefinition": ("escalationRef", "escalation"),
                    "messageRef": ("messageRef", "message")}
NO_COMPENSATION = ("carepath does not support compensation (undoing completed work): draw the undoing steps as "
                   "ordinary tasks on a path of their own, e.g. after an error boundary event or a gateway")

#: the Camunda 7 attributes carepath reads, by element kind ("*": any element); docs/diagram-attributes.md.
#: A few only say how Camunda itself runs (history, versions, job executor) and mean nothing here: they are
#: accepted and listed in the docs as ignored.
_CAMUNDA_IGNORED = frozenset({"historyTimeToLive", "versionTag", "isStartableInTasklist", "asyncBefore",
                              "asyncAfter", "exclusive", "jobPriority", "taskPriority", "candidateStarterGroups",
                              "candidateStarterUsers", "modelerTemplate", "modelerTemplateVersion"})
CAMUNDA_ANY = _CAMUNDA_IGNORED
_SERVICE = _CAMUNDA_IGNORED | {"type", "topic", "resultVariable", "class", "expression", "delegateExpression"}
CAMUNDA_ATTRIBUTES: dict[str, frozenset[str]] = {
    "userTask": _CAMUNDA_IGNORED | {"formKey", "formRef", "formRefBinding", "formRefVersion", "candidateGroups",
                                    "candidateUsers", "assignee", "dueDate", "followUpDate"},
    "serviceTask": _SERVICE,
    "sendTask": _SERVICE,
    "businessRuleTask": _CAMUNDA_IGNORED | {"decisionRef", "resultVariable", "mapDecisionResult",
                                            "decisionRefBinding", "decisionRefVersion",
                                            "decisionRefVersionTag"},
    "callActivity": _CAMUNDA_IGNORED | {"calledElementBinding", "calledElementVersion"},
    "startEvent": _CAMUNDA_IGNORED | {"formKey", "formRef", "initiator"},
}
_ELEMENTS_ANY = frozenset({"properties", "executionListener", "inputOutput"})
#: the Camunda 7 / Zeebe extension elements carepath reads, by element kind ("*": any element)
CAMUNDA_ELEMENTS: dict[str, frozenset[str]] = {"*": frozenset({"properties", "executionListener"}),
                                               "serviceTask": _ELEMENTS_ANY | {"connector"},
                                               "sendTask": _ELEMENTS_ANY | {"connector"}}
ZEEBE_ELEMENTS: dict[str, frozenset[str]] = {
    "*": frozenset({"properties"}),
    "serviceTask": frozenset({"properties", "taskDefinition", "ioMapping", "taskHeaders"}),
    "sendTask": frozenset({"properties", "taskDefinition", "ioMapping", "taskHeaders"}),
    "userTask": frozenset({"properties", "assignmentDefinition", "taskSchedule", "formDefinition", "userTask"}),
    "businessRuleTask": frozenset({"properties", "calledDecision"}),
    "callActivity": frozenset({"properties", "calledElement"}),
    # a start form is not shown, and not refused: the lint rule no-start-form warns of it (engine/lint)
    "startEvent": frozenset({"properties", "formDefinition"}),
}
_HINTS = {
    "taskListener": "carepath runs no task listeners; use an execution listener (a Python script) or a "
                    "service task",
    "formData": "carepath's forms come from its form library: name one with camunda:formKey",
    "formField": "carepath's forms come from its form library: name one with camunda:formKey",
    "inputOutput": "input/output mappings are read on service and send tasks only: set variables in a script "
                   "task",
    "in": "call activities pass the whole task data: remove the variable mappings",
    "out": "call activities pass the whole task data: remove the variable mappings",
    "priority": "carepath orders task lists by due date: give a due date instead",
    "failedJobRetryTimeCycle": "a failed step is an incident that a person retries",
    "errorEventDefinition": "use a BPMN error boundary event",
}


def _split_names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _unsupported_hint(name: str) -> str:
    return _HINTS.get(name, "remove it, or see docs/diagram-attributes.md for what carepath reads")


def _as_variable(text: str) -> str | None:
    """A collection or item as a variable name: `stuff`, `${stuff}`, `=stuff` -> stuff; anything else None."""
    name = bare_variable(text.strip()) or text.strip()
    return name if name.isidentifier() and not keyword.iskeyword(name) else None


def _loop_bpmn(collection: str | None, item: str | None) -> str:
    """The BPMN elements that say over which collection, and as which item, a multi-instance runs."""
    parts = []
    if collection is not None:
        name = _as_variable(collection)
        parts.append(f"<bpmn:loopDataInputRef>{name}</bpmn:loopDataInputRef>" if name else
                     f"<bpmn:loopDataInputRef> naming a variable that holds the collection ({collection.strip()!r} "
                     "is an expression: compute it in a script task before the activity)")
    if item is not None:
        name = _as_variable(item) or "item"
        parts.append(f'<bpmn:inputDataItem id="{name}" name="{name}"/>')
    return " and ".join(parts)


_SEE_MULTI_INSTANCE = ' in its multiInstanceLoopCharacteristics (see docs/diagram-attributes.md, "Multi-instance")'


def _loop_hint(attribute: str, loop: Any) -> str:
    """What to write instead of a Camunda 7 attribute of a multi-instance (its collection and element variable)."""
    collection = loop.get(f"{{{CAMUNDA_NS}}}collection")
    element = loop.get(f"{{{CAMUNDA_NS}}}elementVariable")
    if attribute == "collection":
        return ("write " + _loop_bpmn(collection or "", element or "item") + ", with <bpmn:loopDataOutputRef> "
                "and <bpmn:outputDataItem> for what each instance gives" + _SEE_MULTI_INSTANCE)
    if attribute == "elementVariable":
        return "write " + _loop_bpmn(None, element or "item") + _SEE_MULTI_INSTANCE
    return _unsupported_hint(attribute)


def _zeebe_loop_hint(characteristics: Any) -> str:
    """What to write instead of zeebe:loopCharacteristics: its attributes as BPMN's own elements."""
    collection, item = characteristics.get("inputCollection"), characteristics.get("inputElement")
    output, output_item = characteristics.get("outputCollection"), characteristics.get("outputElement")
    written = [_loop_bpmn(collection or "", item or "item")]
    if not output and not output_item:
        written.append("with <bpmn:loopDataOutputRef> and <bpmn:outputDataItem> for what each instance gives")
    if output:
        written.append(f"<bpmn:loopDataOutputRef>{_as_variable(output) or 'results'}</bpmn:loopDataOutputRef>")
    if output_item:
        name = _as_variable(output_item) or "result"
        written.append(f'<bpmn:outputDataItem id="{name}" name="{name}"/>'
                       + ("" if _as_variable(output_item) else f" (each instance sets it: {output_item.strip()!r} "
                                                                "is an expression)"))
    return "write " + ", ".join(written) + _SEE_MULTI_INSTANCE


def _compensation(node: Any) -> bool:
    return node.find(_q("compensateEventDefinition")) is not None


@dataclass
class Refs:
    """What the bundle (and earlier deployments) offers to call activities and rule tasks."""

    executable: set[str]
    not_executable: set[str]
    decisions: set[str]
    # the registered handler names; a Mapping of name -> required parameter names also
    # checks that every service task gives its handler's required parameters
    handlers: Collection[str] | None
    forms: Collection[str] | None
    # the teams that exist: when given, every user task must go to one of them
    teams: Collection[str] | None = None
    # the people who exist: when given, every literal candidate user must be one of them
    users: Collection[str] | None = None


# --- one process ----------------------------------------------------------------------


class ProcessCheck:
    """Walks one process's XML: every problem found, and the ProcessInfo it describes."""

    def __init__(self, file: str, process: Any, refs: Refs, lanes: dict[str, str | None],
                 problems: list[Problem]) -> None:
        self.file, self.process, self.refs, self.lanes, self.problems = file, process, refs, lanes, problems
        self.user_tasks: dict[str, UserTaskInfo] = {}
        self.service_tasks: dict[str, ServiceTaskInfo] = {}
        self.timers: dict[str, TimerInfo] = {}
        self.called: set[str] = set()
        self.decisions: set[str] = set()
        self.case_outputs: list[CaseOutputInfo] = []
        self.decision_bindings: list[DecisionBinding] = []
        root = process.getroottree().getroot()
        #: every id in the file -> the kind of element it is on (what references may name)
        self.ids = {n.get("id"): _local(n) for n in root.iter() if isinstance(n.tag, str) and n.get("id")}

    def problem(self, node: Any, message: str) -> None:
        self.problems.append(Problem(self.file, message, node.get("id"), node.sourceline))

    def expression(self, node: Any, what: str, source: str, mode: str = "eval", *, declared: str | None = None,
                   timer: bool = False) -> None:
        """Check an expression; one written for another engine (JUEL, FEEL, XPath, cron, or a declared
        `language`) is named, with the Python to write instead."""
        if declared_language(declared):
            self.problem(node, f"{what} is refused: {foreign_message(declared_language(declared), source)}")
            return
        message = check_expression(source, mode)
        if message:
            language = foreign_language(source, timer=timer)
            if language:
                message = foreign_message(language, source)
            self.problem(node, f"{what} is refused: {message}")

    def run(self) -> ProcessInfo:
        if not self.process.findall(_q("startEvent")):
            self.problem(self.process, f"process '{_label(self.process)}' has no start event")
        self.scope(self.process, inherited_lane=None)
        self.process_level_only()
        lanes = tuple(dict.fromkeys(lane.get("name") for lane in self.process.iter(_q("lane")) if lane.get("name")))
        return ProcessInfo(self.process.get("id"), _label(self.process), self.file, self.user_tasks,
                           self.service_tasks, self.timers, frozenset(self.called), frozenset(self.decisions), lanes,
                           self.start_inputs(), tuple(self.case_outputs), self.initiator(),
                           tuple(self.decision_bindings))

    def initiator(self) -> str | None:
        """camunda:initiator on the process's start events: the variable that holds who started it."""
        names: list[str] = []
        for start in self.process.findall(_q("startEvent")):
            name = (start.get(f"{{{CAMUNDA_NS}}}initiator") or "").strip()
            if not name:
                continue
            if not name.isidentifier() or keyword.iskeyword(name):
                self.problem(start, f"camunda:initiator=\"{name[:60]}\" on start event '{_label(start)}' is not a "
                                    "variable name: write a name such as starter")
            else:
                names.append(name)
        for sub in self.process.iter():
            if sub is not self.process and _local(sub) in ("subProcess", "transaction", "adHocSubProcess"):
                for start in sub.findall(_q("startEvent")):
                    if start.get(f"{{{CAMUNDA_NS}}}initiator"):
                        self.problem(start, f"camunda:initiator on start event '{_label(start)}' of a subprocess "
                                            "is not read: put it on the process's start event")
        if len(set(names)) > 1:
            self.problem(self.process, f"the start events of process '{_label(self.process)}' name different "
                                       f"initiator variables ({', '.join(names)}): name one")
        return names[0] if names else None

    def process_level_only(self) -> None:
        """What belongs on an element, never on the process or a sequence flow: case outputs and listeners."""
        if read_execution_listeners(self.process).count:
            self.problem(self.process, f"process '{_label(self.process)}' has an execution listener: carepath runs "
                                       "execution listeners on tasks, call activities and subprocesses only")
        for flow in self.process.iter(_q("sequenceFlow")):
            if read_execution_listeners(flow).count:
                self.problem(flow, f"sequence flow '{_label(flow)}' has an execution listener: carepath runs "
                                   "execution listeners on tasks, call activities and subprocesses only")

    def start_inputs(self) -> tuple[StartInput, ...]:
        """The process's start inputs (`load:`/`default:` properties), checked by `properties`."""
        return tuple(StartInput(p.kind, p.key, p.value) for p in self.properties(self.process)
                     if p.kind in START_INPUT_KINDS)

    def properties(self, node: Any, skip: Collection[str] = ()) -> list[KindProperty]:
        """Every `KIND:NAME` property on the process or an element, checked as the one table PROPERTY_KINDS
        says: where it belongs, its NAME and value, and its value (an expression the sandbox accepts, or a
        registered handler that needs no parameters). The properties in their right place are returned."""
        on_process = node is self.process
        label = f"'{_label(node)}'"
        for name, _value in _all_properties(node):
            kind = name.partition(":")[0].strip() if ":" in name else ""
            spec = PROPERTY_KINDS.get(kind)
            if spec is not None and kind not in skip and spec.on_process != on_process:
                where = f"the process {label}" if on_process else label
                self.problem(node, f"{spec.noun} '{name}' is on {where}: {spec.misplaced}")
        found, problems = read_kind_properties(node)
        placed = [p for p in found if PROPERTY_KINDS[p.kind].on_process == on_process and p.kind not in skip]
        for kind, message in problems:
            if PROPERTY_KINDS[kind].on_process == on_process and kind not in skip:
                self.problem(node, message if on_process else f"{label}: {message}")
        for prop in placed:
            spec = PROPERTY_KINDS[prop.kind]
            where = f"{spec.noun} '{prop.kind}:{prop.key}'" + ("" if on_process else f" of {label}")
            if spec.value == "expression":
                self.expression(node, where, prop.value)
            elif self.refs.handlers is not None and prop.value not in self.refs.handlers:
                self.problem(node, f"{where} names handler '{prop.value}', which is not registered")
            elif isinstance(self.refs.handlers, Mapping) and self.refs.handlers[prop.value]:
                self.problem(node, f"{where}: handler '{prop.value}' needs parameters "
                                   f"({', '.join(self.refs.handlers[prop.value])}); a {spec.noun} "
                                   "calls its handler with none: use a service task")
        return placed

    # A scope is the process or one subprocess: sequence flows never cross scopes.
    def scope(self, scope: Any, inherited_lane: str | None) -> None:
        nodes: dict[str, Any] = {}
        for node in scope:
            if _local(node) in FLOW_NODES and node.get("id"):
                nodes.setdefault(node.get("id"), node)  # a reused id is reported for the file
        incoming: dict[str, list[Any]] = {i: [] for i in nodes}
        outgoing: dict[str, list[Any]] = {i: [] for i in nodes}
        for flow in scope.findall(_q("sequenceFlow")):
            if self.flow_ends(flow, nodes):
                outgoing[flow.get("sourceRef")].append(flow)
                incoming[flow.get("targetRef")].append(flow)
        ad_hoc = _local(scope) == "adHocSubProcess"
        links = self.links(nodes, incoming, outgoing)
        reached = set() if ad_hoc else self.reachable(nodes, outgoing, links)
        self.data_stores(scope, nodes)
        for node_id, node in nodes.items():
            lane = inherited_lane if inherited_lane is not None else self.lanes.get(node_id)
            if node.get("isForCompensation") == "true":
                self.problem(node, f"'{_label(node)}' is a compensation handler (isForCompensation): "
                                   f"{NO_COMPENSATION}")
                continue  # it is joined by an association, not sequence flows: no flow problems to add
            if node_id in links:  # its missing flows are the link's: reported once, as the link
                self.element(node, lane)
                continue
            if not ad_hoc and not _compensation(node):
                self.flows(node, incoming[node_id], outgoing[node_id], node_id in reached, nodes)
            self.element(node, lane)
            if _local(node) in SUBPROCESSES:
                if _local(node) != "adHocSubProcess" and node.get("triggeredByEvent") != "true":
                    self.subprocess_shape(node)
                self.scope(node, lane)

    def data_stores(self, scope: Any, nodes: dict[str, Any]) -> None:
        """Data stores (a database outside the case) are not supported: the reference, and each task using it."""
        stores = {n.get("id"): n for n in scope if _local(n) == "dataStoreReference"}
        for store in stores.values():
            self.problem(store, f"'{_label(store)}' is a data store reference: {NO_DATA_STORES}")
        for node in nodes.values():
            for association in node:
                kind = _local(association)
                if kind not in ("dataInputAssociation", "dataOutputAssociation"):
                    continue
                refs = [(r.text or "").strip() for r in association if _local(r) in ("sourceRef", "targetRef")]
                used = [stores[r] for r in refs if r in stores]
                if used:
                    verb = "reads from" if kind == "dataInputAssociation" else "writes to"
                    self.problem(node, f"'{_label(node)}' {verb} data store '{_label(used[0])}' ({kind}): "
                                       f"{NO_DATA_STORES}")

    def flow_ends(self, flow: Any, nodes: dict[str, Any]) -> bool:
        """Check a flow's ends (and its condition); True when both ends are in this scope."""
        ok = True
        for end in ("sourceRef", "targetRef"):
            ref = flow.get(end)
            if not ref:
                self.problem(flow, f"sequence flow '{_label(flow)}' has no {end}")
                ok = False
            elif ref not in nodes:
                self.problem(flow, f"sequence flow '{_label(flow)}' {end} '{ref}' names no element "
                                   "of this process or subprocess")
                ok = False
        condition = _condition(flow)
        if condition:
            self.expression(flow, f"the condition of sequence flow '{_label(flow)}'",
                            bare_variable(condition) or condition,
                            declared=flow.find(_q("conditionExpression")).get("language"))
        return ok

    def links(self, nodes: dict[str, Any], incoming: dict[str, list[Any]],
              outgoing: dict[str, list[Any]]) -> dict[str, list[str]]:
        """Link events (neither carepath nor SpiffWorkflow runs them): one problem each, naming the sequence flow
        to draw instead. Returns each link event's id -> the ids of the events it links to (a throw event's catch
        events), so that reachability follows the link and the graph problems it causes are not reported."""
        throws: dict[str, list[str]] = {}
        catches: dict[str, list[str]] = {}
        for node_id, node in nodes.items():
            definition = node.find(_q("linkEventDefinition"))
            if definition is None or _local(node) not in ("intermediateThrowEvent", "intermediateCatchEvent"):
                continue
            name = (definition.get("name") or "").strip() or (node.get("name") or "").strip()
            (throws if _local(node) == "intermediateThrowEvent" else catches).setdefault(name, []).append(node_id)
        links: dict[str, list[str]] = {}

        def names(ids: list[str]) -> str:
            return " or ".join(f"'{_label(nodes[i])}'" for i in dict.fromkeys(ids)) if ids else ""

        for name in sorted(set(throws) | set(catches)):
            sources = [f.get("sourceRef") for t in throws.get(name, []) for f in incoming[t]]
            targets = [f.get("targetRef") for c in catches.get(name, []) for f in outgoing[c]]
            if sources and targets:
                advice = f"draw the sequence flow from {names(sources)} to {names(targets)} directly"
            elif targets:
                advice = f"draw a sequence flow to {names(targets)} directly from the element before the link"
            elif sources:
                advice = f"draw a sequence flow from {names(sources)} directly to the element after the link"
            else:
                advice = "draw the sequence flow it stands for directly"
            for node_id in throws.get(name, []):
                links[node_id] = catches.get(name, [])
                self.problem(nodes[node_id], f"'{_label(nodes[node_id])}' is a link throw event: link events are "
                                             f"not supported: {advice}")
            for node_id in catches.get(name, []):
                links[node_id] = []
                self.problem(nodes[node_id], f"'{_label(nodes[node_id])}' is a link catch event: link events are "
                                             f"not supported: {advice}")
        return links

    @staticmethod
    def reachable(nodes: dict[str, Any], outgoing: dict[str, list[Any]],
                  links: Mapping[str, list[str]] | None = None) -> set[str]:
        boundary: dict[str, list[str]] = {}
        for node_id, node in nodes.items():
            if node.get("attachedToRef"):
                boundary.setdefault(node.get("attachedToRef"), []).append(node_id)
        todo = [i for i, n in nodes.items() if _local(n) == "startEvent"
                or (_local(n) == "subProcess" and n.get("triggeredByEvent") == "true")]
        seen: set[str] = set()
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(f.get("targetRef") for f in outgoing.get(current, []))
                todo.extend(boundary.get(current, []))
                todo.extend((links or {}).get(current, []))  # a link throw event goes on at its catch events
        return seen

    def flows(self, node: Any, ins: list[Any], outs: list[Any], reached: bool, nodes: dict[str, Any]) -> None:
        kind, label = _local(node), f"'{_label(node)}'"
        if kind == "subProcess" and node.get("triggeredByEvent") == "true":
            return  # an event subprocess starts on its event, not along a flow
        if kind == "boundaryEvent" and not node.get("attachedToRef"):
            self.problem(node, f"boundary event {label} is attached to nothing (it has no attachedToRef): draw it "
                               "on the border of the task it watches")
        elif kind == "boundaryEvent" and node.get("attachedToRef") not in nodes:
            self.problem(node, f"boundary event {label} is attached to '{node.get('attachedToRef')}', "
                               "which is not an element of this process or subprocess")
        if kind not in ("startEvent", "boundaryEvent"):
            if not ins:
                self.problem(node, f"{label} has no incoming sequence flow, so it can never run")
            elif not reached:
                self.problem(node, f"{label} cannot be reached from a start event")
        if kind == "endEvent":
            if outs:
                self.problem(node, f"end event {label} has an outgoing sequence flow")
        elif not outs:
            self.problem(node, f"{label} has no outgoing sequence flow: end each path with an end event")
        elif len(outs) > 1 and kind not in GATEWAYS and kind != "startEvent":
            self.problem(node, f"{label} has {len(outs)} outgoing sequence flows: split paths with a gateway")
        self.gateway(node, outs)

    def gateway(self, node: Any, outs: list[Any]) -> None:
        default = node.get("default")
        for flow in outs:
            has_condition = _condition(flow) is not None
            if _local(node) not in CONDITIONAL_GATEWAYS:
                if has_condition:
                    self.problem(flow, f"sequence flow '{_label(flow)}' has a condition, which is ignored: "
                                       "only flows leaving an exclusive or inclusive gateway are conditional")
            elif len(outs) > 1 and not has_condition and flow.get("id") != default:
                self.problem(flow, f"sequence flow '{_label(flow)}' leaves gateway '{_label(node)}' "
                                   "with no condition and is not its default flow")
        if default and default not in {f.get("id") for f in outs}:
            self.problem(node, f"default flow '{default}' of '{_label(node)}' does not leave it")

    def subprocess_shape(self, node: Any) -> None:
        starts = node.findall(_q("startEvent"))
        if len(starts) != 1:
            self.problem(node, f"subprocess '{_label(node)}' needs exactly one start event, not {len(starts)}")
        if not node.findall(_q("endEvent")):
            self.problem(node, f"subprocess '{_label(node)}' has no end event")

    # --- what each kind of element needs ---
    def element(self, node: Any, lane: str | None) -> None:
        kind = _local(node)
        if not supported(node.tag):
            self.problem(node, f"'{_label(node)}' is a {kind}, which carepath does not support")
            return
        checks = {"userTask": self.user_task, "serviceTask": self.service_task, "scriptTask": self.script_task,
                  "businessRuleTask": self.business_rule_task, "callActivity": self.call_activity}
        if kind == "sendTask" and has_service_implementation(node):
            checks[kind] = self.service_task  # an external topic / job type runs its handler
        if kind in checks:
            checks[kind](node, lane)
        if _compensation(node):
            what = "compensation boundary event" if kind == "boundaryEvent" else "compensation throw event"
            self.problem(node, f"'{_label(node)}' is a {what}: {NO_COMPENSATION}")
        self.vendor_attributes(node)
        self.references(node)
        for definition in node.findall(_q("timerEventDefinition")):
            self.timer(node, definition)
        for condition in node.iterfind(f"{_q('conditionalEventDefinition')}/{_q('condition')}"):
            self.expression(node, f"the condition of '{_label(node)}'", (condition.text or "").strip(),
                            declared=condition.get("language"))
        for script in ("preScript", "postScript"):
            text = spiff_extension_text(node, script)
            if text:
                self.expression(node, f"the {script} of '{_label(node)}'", text, "exec")
        self.listeners(node, kind)
        self.outputs(node, kind)
        for loop in node.findall(_q("multiInstanceLoopCharacteristics")) + node.findall(
                _q("standardLoopCharacteristics")):
            for part in LOOP_EXPRESSIONS:
                text = (loop.findtext(_q(part)) or "").strip()
                if text:
                    self.expression(loop, f"the {part} of '{_label(node)}'", text,
                                    declared=loop.find(_q(part)).get("language"))
            self.loop(node, loop)

    def loop(self, node: Any, loop: Any) -> None:
        """A loop's or multi-instance's Camunda 7 attributes and Camunda/Zeebe extension elements (a collection
        named the Camunda way is named, with the BPMN to write instead), and a multi-instance that says neither
        how many nor over which collection: checked here for every element, nested ones included (the
        library stops at the first)."""
        label, kind = f"'{_label(node)}'", _local(loop)
        vendor = False
        for name in loop.attrib:
            qname = etree.QName(name)
            if qname.namespace != CAMUNDA_NS or qname.localname in CAMUNDA_ANY:
                continue
            vendor = True
            self.problems.append(Problem(self.file, f"camunda:{qname.localname} on {label} (its {kind}) is not "
                                                    f"supported: {_loop_hint(qname.localname, loop)}",
                                         node.get("id"), loop.sourceline))
        for child in loop.iterfind(f"{_q('extensionElements')}/*"):
            qname = etree.QName(child)
            if qname.namespace not in (CAMUNDA_NS, ZEEBE_NS):
                continue
            vendor = True
            prefix = "camunda" if qname.namespace == CAMUNDA_NS else "zeebe"
            hint = (_zeebe_loop_hint(child) if (prefix, qname.localname) == ("zeebe", "loopCharacteristics")
                    else _unsupported_hint(qname.localname))
            self.problems.append(Problem(self.file, f"{prefix}:{qname.localname} on {label} (its {kind}) is not "
                                                    f"supported: {hint}", node.get("id"), child.sourceline))
        if kind != "multiInstanceLoopCharacteristics" or vendor:
            return
        cardinality = loop.find(_q("loopCardinality")) is not None
        collection = loop.find(_q("loopDataInputRef")) is not None
        if not cardinality and not collection:
            self.problem(node, f"{label} is a multi-instance activity that says neither how many (loopCardinality) "
                               "nor over which collection (loopDataInputRef) to run: give one of them")
        elif cardinality and collection:
            self.problem(node, f"{label} is a multi-instance activity with both a loopCardinality and a "
                               "loopDataInputRef: keep one")

    def listeners(self, node: Any, kind: str) -> None:
        """Camunda execution listeners: inline Python scripts on event start/end, run as pre/postScript."""
        found = read_execution_listeners(node)
        if not found.count:
            return
        label = f"'{_label(node)}'"
        if kind not in SCRIPTED_KINDS or node.get("triggeredByEvent") == "true":
            self.problem(node, f"{label} is a {kind} with an execution listener: carepath runs execution listeners "
                               "on tasks, call activities and subprocesses only")
            return
        for message in found.problems:
            self.problem(node, f"{label}: {message}")
        for event, script, spiff in (("start", found.prescript, "preScript"), ("end", found.postscript, "postScript")):
            if not script:
                continue
            if spiff_extension_text(node, spiff):
                self.problem(node, f"{label} has both a {spiff} and an execution listener on event '{event}': "
                                   "keep one")
            self.expression(node, f"the execution listener script on event '{event}' of {label}", script, "exec")

    def outputs(self, node: Any, kind: str) -> None:
        """An element's `KIND:NAME` properties (`properties`); its case outputs only where they can be kept."""
        label = f"'{_label(node)}'"
        has_outputs = any(name.partition(":")[0].strip() == CASE_OUTPUT_PREFIX and ":" in name
                          for name, _value in _all_properties(node))
        refused = False
        if has_outputs and (kind not in CASE_OUTPUT_KINDS or node.get("triggeredByEvent") == "true"):
            self.problem(node, f"{label} is a {kind}, which cannot keep case outputs: they are kept when a task, "
                               "call activity, subprocess, intermediate event or end event completes")
            refused = True
        elif has_outputs and (node.findall(_q("multiInstanceLoopCharacteristics"))
                              or node.findall(_q("standardLoopCharacteristics"))):
            self.problem(node, f"{label} repeats (a loop or multi-instance), so its case outputs would be kept "
                               "once a repetition: put them on the element after it")
            refused = True
        for prop in self.properties(node, skip={CASE_OUTPUT_PREFIX} if refused else ()):
            if prop.kind == CASE_OUTPUT_PREFIX:
                self.case_outputs.append(CaseOutputInfo(node.get("id"), _label(node), prop.key, prop.value))

    def references(self, node: Any) -> None:
        """An event definition's message, signal, error or escalation, and a data association's ends, must be
        defined in the file (SpiffWorkflow's parser fails on them with its own internal errors)."""
        label = f"'{_label(node)}'"
        for definition in [node, *node]:  # a receive or send task names its message itself
            wanted = EVENT_REFERENCES.get(_local(definition) if definition is not node else "messageRef")
            if wanted is None:
                continue
            attribute, kind = wanted
            ref = (definition.get(attribute) or "").strip()
            if ref and self.ids.get(ref) != kind:
                self.problem(node, f"{label} names {kind} '{ref}' ({attribute}), which is not defined in this file: "
                                   f"add <bpmn:{kind} id=\"{ref}\" name=\"…\"/> to the definitions")
        for association in node:
            if _local(association) not in ("dataInputAssociation", "dataOutputAssociation"):
                continue
            for end in association:
                ref = (end.text or "").strip() if _local(end) in ("sourceRef", "targetRef") else ""
                if ref and ref not in self.ids:
                    self.problem(node, f"{label}: its {_local(association)} {_local(end)} '{ref}' names nothing "
                                       "in this file (a data object reference or the task's data input/output)")
                outer = {"dataInputAssociation": "sourceRef", "dataOutputAssociation": "targetRef"}
                if ref and outer[_local(association)] == _local(end) and self.ids.get(ref) in ("dataInput",
                                                                                              "dataOutput"):
                    what = "data input" if self.ids[ref] == "dataInput" else "data output"
                    self.problem(node, f"{label}: its {_local(association)} {_local(end)} '{ref}' is a {what} of "
                                       "the process (its ioSpecification), which a task's data association cannot "
                                       "read or write in carepath: the process's data is the task's data by name, "
                                       "so remove the association, or draw a data object between them")

    def vendor_attributes(self, node: Any) -> None:
        """Every Camunda 7 attribute and Camunda/Zeebe extension element carepath does not read is a problem:
        nothing in a diagram is silently dropped."""
        label, kind = f"'{_label(node)}'", _local(node)
        for name in node.attrib:
            qname = etree.QName(name)
            if qname.namespace == CAMUNDA_NS and qname.localname not in CAMUNDA_ATTRIBUTES.get(kind, CAMUNDA_ANY):
                self.problem(node, f"camunda:{qname.localname} on {label} (a {kind}) is not supported: "
                                   f"{_unsupported_hint(qname.localname)}")
        for definition in node:  # an event definition's Camunda attributes (camunda:expression: its payload)
            if not isinstance(definition.tag, str) or not _local(definition).endswith("EventDefinition"):
                continue
            for name in definition.attrib:
                qname = etree.QName(name)
                if qname.namespace == CAMUNDA_NS and qname.localname not in CAMUNDA_ANY:
                    hint = ("the message's data is a spiffworkflow:messagePayload Python expression in the event "
                            "definition's extensionElements" if qname.localname == "expression"
                            else _unsupported_hint(qname.localname))
                    self.problems.append(Problem(self.file, f"camunda:{qname.localname} on the "
                                                            f"{_local(definition)} of {label} (a {kind}) is not "
                                                            f"supported: {hint}", node.get("id"),
                                                 definition.sourceline))
        for child in node.iterfind(f"{_q('extensionElements')}/*"):
            qname = etree.QName(child)
            known = {CAMUNDA_NS: CAMUNDA_ELEMENTS, ZEEBE_NS: ZEEBE_ELEMENTS}.get(qname.namespace)
            if known is not None and qname.localname not in known.get(kind, known["*"]):
                prefix = "camunda" if qname.namespace == CAMUNDA_NS else "zeebe"
                self.problems.append(Problem(self.file, f"{prefix}:{qname.localname} on {label} (a {kind}) is not "
                                                        f"supported: {_unsupported_hint(qname.localname)}",
                                             node.get("id"), child.sourceline))

    def user_task(self, node: Any, lane: str | None) -> None:
        form = read_form(node)
        if form is None:
            self.problem(node, f"user task '{_label(node)}' names no form")
        elif self.refs.forms is not None and form not in self.refs.forms:
            self.problem(node, f"user task '{_label(node)}' names form '{form}', which is not in the form library")
        groups = user_task_groups(node, lane)
        assignment, problems = read_assignment(node)
        for message in problems:
            self.problem(node, f"user task '{_label(node)}': {message}")
        self.assignment(node, assignment)
        computed = "candidate_groups" in assignment.parts and assignment.parts["candidate_groups"].expression
        if self.refs.teams is not None and not computed:
            unknown = not_teams(groups, self.refs.teams)
            if not groups:
                self.problem(node, f"user task '{_label(node)}' has no team: choose its team (candidate groups)")
            elif unknown:
                what = "its lane's name" if not read_candidate_groups(node) else "its candidate groups"
                self.problem(node, f"user task '{_label(node)}' goes to {', '.join(map(repr, unknown))} ({what}), "
                                   f"which is not a team: choose one of {', '.join(self.refs.teams)}")
        self.user_tasks[node.get("id")] = UserTaskInfo(
            node.get("id"), _label(node), lane, groups, form, node.sourceline)

    def assignment(self, node: Any, assignment: Any) -> None:
        label = f"user task '{_label(node)}'"
        for part in ("due", "follow_up"):
            date = assignment.parts.get(part)
            if date is not None and date.literal is not None:
                message = literal_problem("date", date.literal) if looks_like_iso(date.literal) else (
                    "not an ISO 8601 date or date-time")
                if message:
                    self.problem(node, f"{date.attribute}=\"{date.literal}\" on {label}: {message} "
                                       "(e.g. 2027-01-04T09:00:00Z, or ${variable} naming one)")
        assignee = assignment.parts.get("assignee")
        if assignee is not None and assignee.literal is not None and len(_split_names(assignee.literal)) > 1:
            self.problem(node, f"{assignee.attribute}=\"{assignee.literal}\" on {label} names several people: a "
                               "task has one assignee; offer it to several people with candidate users "
                               "(camunda:candidateUsers, zeebe:assignmentDefinition candidateUsers)")
        users = assignment.parts.get("candidate_users")
        if users is not None and users.literal is not None and self.refs.users is not None:
            strangers = [u for u in _split_names(users.literal) if u not in self.refs.users]
            if strangers:
                self.problem(node, f"{users.attribute}=\"{users.literal}\" on {label} names "
                                   f"{', '.join(map(repr, strangers))}, who {'is' if len(strangers) == 1 else 'are'}"
                                   " not a carepath user: add them (Administration) or correct the name")

    def service_task(self, node: Any, _lane: str | None) -> None:
        call = read_service(node)
        for message in call.problems:
            self.problem(node, f"service task '{_label(node)}': {message}")
        if call.handler is None:
            if not call.problems:  # a Java implementation already says why there is no handler
                self.problem(node, f"service task '{_label(node)}' names no handler")
            return
        if self.refs.handlers is not None and call.handler not in self.refs.handlers:
            self.problem(node, f"service task '{_label(node)}' names handler '{call.handler}', "
                               "which is not registered")
        elif isinstance(self.refs.handlers, Mapping):
            missing = [p for p in self.refs.handlers[call.handler] if p not in call.params]
            if missing:
                self.problem(node, f"service task '{_label(node)}' does not give handler '{call.handler}' its "
                                   f"required parameter(s): {', '.join(missing)}")
        for name, (expr, _type) in call.params.items():
            self.expression(node, f"parameter '{name}' of service task '{_label(node)}'", expr)
        self.service_tasks[node.get("id")] = ServiceTaskInfo(
            node.get("id"), _label(node), call.handler, {k: v[0] for k, v in call.params.items()},
            call.result_variable)

    def script_task(self, node: Any, _lane: str | None) -> None:
        script_format = (node.get("scriptFormat") or "python").strip().lower()
        if script_format not in PYTHON_SCRIPT_FORMATS:
            self.problem(node, f"script task '{_label(node)}' is written in {script_format}; scripts must be Python")
        script = (node.findtext(_q("script")) or "").strip()
        if not script:
            self.problem(node, f"script task '{_label(node)}' has no script")
        else:
            self.expression(node, f"the script of '{_label(node)}'", script, "exec")

    def business_rule_task(self, node: Any, _lane: str | None) -> None:
        ref = read_decision_ref(node)
        if ref is None:
            self.problem(node, f"business rule task '{_label(node)}' names no decision")
            return
        self.decisions.add(ref)
        for message in read_decision_result(node)[1]:
            self.problem(node, f"business rule task '{_label(node)}': {message}")
        binding = binding_problem(node)
        if binding:
            self.problem(node, f"business rule task '{_label(node)}' {binding}")
        pinned = read_pinned(node)
        if pinned is not None:
            self.decision_bindings.append(DecisionBinding(node.get("id"), _label(node), node.sourceline, ref, *pinned))
        if ref not in self.refs.decisions:
            self.problem(node, f"business rule task '{_label(node)}' uses decision '{ref}', which is in no "
                               ".dmn file of this bundle and not deployed")

    def call_activity(self, node: Any, _lane: str | None) -> None:
        called = read_called_element(node)
        if called is None:
            self.problem(node, f"call activity '{_label(node)}' names no process to call (calledElement)")
            return
        self.called.add(called)
        if called in self.refs.not_executable and called not in self.refs.executable:
            self.problem(node, f"call activity '{_label(node)}' calls process '{called}', which is not "
                               'executable (isExecutable="false")')
        elif called not in self.refs.executable:
            self.problem(node, f"call activity '{_label(node)}' calls process '{called}', which is neither in "
                               "this bundle nor deployed")

    def timer(self, node: Any, definition: Any) -> None:
        kind, text = read_timer(definition)
        if kind is None or text is None:
            self.problem(node, f"timer '{_label(node)}' has no timeDate, timeDuration or timeCycle")
            return
        if is_literal(kind, text) or looks_like_iso(text):
            message = literal_problem(kind, text)
            if message:
                self.problem(node, f"timer '{_label(node)}': {message}")
        else:
            self.expression(node, f"the timer expression of '{_label(node)}'", bare_variable(text) or text,
                            timer=True)
        boundary = _local(node) == "boundaryEvent"
        interrupting = (node.get("cancelActivity", "true") if boundary else node.get("isInterrupting", "true"))
        once = {"intermediateCatchEvent": "an intermediate catch event, which waits once",
                "boundaryEvent": "an interrupting boundary event, which fires once"}.get(_local(node))
        if kind == "cycle" and once and (not boundary or interrupting.strip().lower() != "false"):
            self.problem(node, f"timer '{_label(node)}' is {once}: a timeCycle (a repeating timer) is refused "
                               f"here, as in Camunda 8; write {_first_occurrence(text)}"
                               + (' (or make it non-interrupting, cancelActivity="false", to repeat)'
                                  if boundary else ""))
        self.timers[node.get("id")] = TimerInfo(node.get("id"), _label(node), kind, text,
                                                node.get("attachedToRef") if boundary else None,
                                                interrupting.strip().lower() != "false")


