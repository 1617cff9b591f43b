"""Problems the workflow library (SpiffWorkflow) would find, said in carepath's words with file, element and line.

SpiffWorkflow's parser raises `ValidationException` with its own wording ("A multiinstance task must specify a
cardinality or a loop input data reference", "Data Store with name X has no implementation"), sometimes with no
element at all, sometimes with the repr of a Python exception ("KeyError('x')"). Nothing of that reaches a user:

* `check_definitions` reads, in every BPMN file — executable or not — what the library reads before any process
  (data stores, messages, signals, errors, escalations) and what it silently skips (an element that is not BPMN),
  so those come out as carepath problems naming the element and its line;
* `library_problem` turns the library's exception into a `Problem`: the element it names (or, when it names
  none, the file's `definitions` element), the line, and a sentence from `_WORDING` — or, for a sentence carepath
  does not know, the library's own sentence after "the workflow library refused ...", never a class name or repr.

docs/diagram-attributes.md, "Deploy problems", lists what is checked here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SpiffWorkflow
from lxml import etree

from engine.bpmn_parser import BPMN_NS
from engine.errors import Problem

NO_DATA_STORES = ("carepath does not support data stores: keep values in the task data, and read or write "
                  "outside systems with a service task's handler")

#: root elements SpiffWorkflow indexes by id before it reads any process: one without an id stops its parser
_INDEXED_BY_ID = {"message": "message", "signal": "signal", "error": "error", "escalation": "escalation",
                  "correlationProperty": "correlation property", "dataStore": "data store"}


def _bpmn_element_names() -> frozenset[str]:
    """Every element name of the BPMN 2.0 schema (the XSDs SpiffWorkflow ships): anything else in the BPMN
    namespace is a misspelling or another tool's extension written without its own namespace."""
    folder = Path(SpiffWorkflow.__file__).parent / "bpmn" / "parser" / "schema"
    names: set[str] = set()
    for xsd in ("BPMN20.xsd", "Semantic.xsd"):
        names |= set(re.findall(r'<xsd:element name="(\w+)"', (folder / xsd).read_text(encoding="utf-8")))
    return frozenset(names)


BPMN_ELEMENTS = _bpmn_element_names()


def _q(local: str) -> str:
    return f"{{{BPMN_NS}}}{local}"


def _local(node: Any) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def label(node: Any) -> str:
    """An element's name on one line, else its id, else its kind."""
    return " ".join((node.get("name") or "").split()) or node.get("id") or _local(node)


def _words(kind: str) -> str:
    """dataObjectReference -> data object reference"""
    return re.sub(r"(?<!^)([A-Z])", lambda m: " " + m[1].lower(), kind)


def _nearest_id(node: Any) -> Any:
    for candidate in (node, *node.iterancestors()):
        if candidate.get("id"):
            return candidate
    return node


def check_definitions(name: str, tree: Any, problems: list[Problem]) -> None:
    """What a BPMN file declares outside its processes, and elements the library would skip without a word."""
    root = tree.getroot()
    for node in root:
        kind = _local(node) if isinstance(node.tag, str) and node.tag.startswith(f"{{{BPMN_NS}}}") else ""
        holder = _nearest_id(node)  # an element with no id is placed on the definitions element, by its line
        if kind == "dataStore":
            problems.append(Problem(name, f"'{label(node)}' is a data store (dataStore): {NO_DATA_STORES}",
                                    holder.get("id") or None, node.sourceline))
        elif kind in _INDEXED_BY_ID and not node.get("id"):
            problems.append(Problem(name, f"{_INDEXED_BY_ID[kind]} '{label(node)}' has no id: give it one "
                                          "(events and tasks refer to it by id)", holder.get("id") or None,
                                    node.sourceline))
    _dangling_references(name, root, problems)
    for node in root.iter(_q("*")):
        if _local(node) in BPMN_ELEMENTS or any(_local(a) == "extensionElements" for a in node.iterancestors()):
            continue
        holder = _nearest_id(node)
        where = "" if holder is node else f" inside '{label(holder)}'"
        problems.append(Problem(name, f"<{_local(node)}>{where} is not a BPMN 2.0 element, so nothing would run "
                                      "it: correct its name, or move another tool's data into extensionElements",
                                holder.get("id") or None, node.sourceline))


#: references the process checks (engine/bpmn_checks.py) do not follow, checked for the whole file:
#: attribute -> what it names; child elements whose text is an id -> what they name
_REFERENCE_ATTRIBUTES = {"dataObjectRef": "data object", "dataStoreRef": "data store", "processRef": "process"}
_REFERENCE_CHILDREN = {"flowNodeRef": "flow element", "dataInputRefs": "data input", "dataOutputRefs": "data output"}
#: elements whose sourceRef/targetRef attributes name two elements of the file (sequence flows: bpmn_checks)
_CONNECTORS = ("association", "messageFlow")


def _dangling_references(name: str, root: Any, problems: list[Problem]) -> None:
    """A reference to an id the file does not hold: the library would skip it, or fail on it at run time."""
    ids = {n.get("id") for n in root.iter() if isinstance(n.tag, str) and n.get("id")}

    def missing(ref: str) -> bool:  # an id, or a QName "prefix:id" some tools write
        ref = ref.strip()
        return bool(ref) and ref not in ids and ref.rpartition(":")[2] not in ids

    for node in root.iter(_q("*")):
        kind = _local(node)
        attributes = dict(_REFERENCE_ATTRIBUTES)
        if kind in _CONNECTORS:
            attributes.update(sourceRef="source", targetRef="target")
        for attribute, what in attributes.items():
            ref = node.get(attribute)
            if ref is not None and missing(ref):
                problems.append(Problem(name, f"{_words(kind)} '{label(node)}' names {what} '{ref.strip()}' "
                                              f"({attribute}), which is not in this file", node.get("id") or None,
                                        node.sourceline))
        if kind in _REFERENCE_CHILDREN and missing(node.text or ""):
            holder = _nearest_id(node.getparent())
            problems.append(Problem(name, f"'{label(holder)}' lists {_REFERENCE_CHILDREN[kind]} "
                                          f"'{(node.text or '').strip()}' ({kind}), which is not in this file",
                                    holder.get("id") or None, node.sourceline))


@dataclass(frozen=True)
class Where:
    """An element as problems name it."""

    line: int | None
    label: str
    kind: str
    element_id: str | None = None


def index(trees: Mapping[str, Any]) -> dict[str, dict[str, Where]]:
    """file -> element id -> where it is (the first element with that id)."""
    found: dict[str, dict[str, Where]] = {}
    for name, tree in trees.items():
        ids = found.setdefault(name, {})
        root = tree.getroot()
        ids.setdefault("", Where(root.sourceline, label(root), _local(root), root.get("id")))  # the file itself
        for node in root.iter():
            if isinstance(node.tag, str) and node.get("id") is not None:
                ids.setdefault(node.get("id"), Where(node.sourceline, label(node), _local(node), node.get("id")))
    return found


#: the library's sentence (a regular expression) -> carepath's, given the element's label and the match
_WORDING: list[tuple[str, Callable[[str, re.Match[str]], str]]] = [
    (r"A loopMaximum or loopCondition must be specified",
     lambda e, m: f"'{e}' is a loop with neither a loopCondition nor a loopMaximum, so it would never stop: give "
                  "it a condition (a Python expression) or a maximum"),
    (r"A multiinstance task must specify a cardinality or a (?:loop input data reference|collection)",
     lambda e, m: f"'{e}' is a multi-instance activity that says neither how many (loopCardinality) nor over "
                  "which collection (loopDataInputRef) to run: give one of them"),
    (r"A multiinstance task must specify exactly one of cardinality or loop input",
     lambda e, m: f"'{e}' is a multi-instance activity with both a loopCardinality and a loopDataInputRef: keep "
                  "one"),
    (r"The loop (input|output) data reference is missing from the IO specification",
     lambda e, m: f"'{e}' is a multi-instance activity whose loop {m[1]} is not declared in its ioSpecification"),
    (r"Exactly one start event is required in a SubWorkflow Task; found (\d+)",
     lambda e, m: f"'{e}' must have exactly one start event; it has {m[1]}"),
    (r"A SubWorkflow Must contain an End event", lambda e, m: f"'{e}' has no end event"),
    (r"Conditional event definition with missing condition",
     lambda e, m: f"'{e}' is a conditional event with no condition: give it a Python condition"),
    (r"Non-default exclusive outgoing sequence flow without condition",
     lambda e, m: f"a sequence flow leaving gateway '{e}' has no condition and is not the gateway's default: give "
                  "it a condition, or make it the default"),
    (r"Invalid Script Task\.\s+No Script Provided", lambda e, m: f"script task '{e}' has no script"),
    (r"No start event found", lambda e, m: f"'{e}' has no start event"),
    (r"Process (.+) is not executable", lambda e, m: f"process '{m[1]}' is marked isExecutable=\"false\", so "
                                                     "it cannot be called or started"),
    (r"Cannot resolve (data(?:Input|Output)Association) <Element \{[^}]*\}(sourceRef|targetRef) at 0x[0-9a-f]+>",
     lambda e, m: f"'{e}' has a {m[1]} whose {m[2]} names no data object reference or data store reference of "
                  "this process"),
    (r"Cannot resolve (data(?:Input|Output)Association) (.*)",
     lambda e, m: f"'{e}' has a {m[1]} naming '{m[2]}', which is no data object, input or output of this "
                  "process"),
    (r"Duplicate process ID: (.*)", lambda e, m: f"process id '{m[1]}' is defined twice"),
    (r"The process '([^']*)' was not found",
     lambda e, m: f"process '{m[1]}' is called but is in none of the files deployed, now or before"),
    (r"Unknown Time Specification",
     lambda e, m: f"timer '{e}' has no timeDate, timeDuration or timeCycle"),
    (r"Time Specification Error\. ?(.*)",
     lambda e, m: f"the time of timer '{e}' cannot be read ({m[1].strip() or 'not a valid time'})"),
    (r"Sequential ordering for ad hoc subprocesses not supported",
     lambda e, m: f"'{e}' is an ad hoc subprocess with ordering=\"Sequential\", which carepath does not support: "
                  "use Parallel"),
    (r"Ad hoc subprocesses may not contain start or end events",
     lambda e, m: f"ad hoc subprocess '{e}' holds a start or end event: remove it (its tasks are started by hand)"),
    (r"There is no support implemented for this task type",
     lambda e, m: f"'{e}' is a kind of element carepath cannot run"),
    (r"Cancel Events may only be used with transactions",
     lambda e, m: f"'{e}' is a cancel event outside a transaction subprocess"),
    (r"Multiple outgoing flows are not supported for tasks of type",
     lambda e, m: f"'{e}' has more than one outgoing sequence flow, which this kind of task cannot have: add a "
                  "gateway after it"),
    (r"When looking for a task spec, we found two items.*\((.*)\)",
     lambda e, m: f"a sequence flow from '{e}' leads to '{m[1]}', which is not an element this process can run"),
    (r"Expected an? (Message|Signal|Error|Escalation) node",
     lambda e, m: f"'{e}' refers to something that is not a {m[1].lower()}"),
    (r"Data Store with name (.*) has no implementation",
     lambda e, m: f"'{m[1]}' is a data store: {NO_DATA_STORES}"),
    (r"(Message|Signal|Error|Escalation|Correlation|Data Store) identifier is missing",
     lambda e, m: f"a {m[1].lower()} in this file has no id: give it one"),
    (r"Data Store name is missing", lambda e, m: "a data store in this file has no name"),
    (r"No decisions found", lambda e, m: "this .dmn file holds no decision"),
    (r"Multiple decision tables", lambda e, m: f"decision '{e}' holds more than one decision table: keep one"),
    (r"Unknown type in decision table: (.*)",
     lambda e, m: f"decision '{e}' holds {m[1]}, which is not part of a decision table"),
    (r"Malformed Output Expression '(.*?)'",
     lambda e, m: f"the output entry `{m[1]}` of decision '{e}' is not a Python expression"),
]

#: "KeyError('x')", "AttributeError(\"'NoneType' object ...\")": the repr the library's task parser wraps
_REPR = re.compile(r"^\s*([A-Za-z_][\w.]*?(?:Error|Exception|Warning))\((.*)\)\s*$", re.S)


def plain(text: str) -> str:
    """A library sentence without Python's dress: the repr of an exception becomes its message."""
    match = _REPR.match(text)
    if match:
        inner = match[2].strip()
        if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
            inner = inner[1:-1]
        if match[1].endswith("KeyError") and inner:
            return f"it looked for '{inner}' and found nothing of that name"
        return inner or "it could not read this element"
    return text


def library_problem(exc: Any, fallback_file: str, where: Mapping[str, Mapping[str, Where]]) -> Problem:
    """A ValidationException of SpiffWorkflow as a carepath problem: file, element, line, carepath's words."""
    file = getattr(exc, "file_name", "") or fallback_file
    element = getattr(exc, "id", "") or ""
    ids = where.get(file, {})
    found = ids.get(element) if element else None
    if found is None:  # the library named no element (or one we cannot place): the file's definitions element
        element = ""
        found = ids.get("")
    line = getattr(exc, "line_number", None)
    if not isinstance(line, int):
        line = found.line if found else None
    element_label = found.label if found and element else (getattr(exc, "name", "") or element or "this file")
    text = " ".join(str(exc.args[0] if exc.args else exc).split())
    message = None
    for pattern, words in _WORDING:
        match = re.search(pattern, text)
        if match:
            message = words(element_label, match)
            break
    if message is None:
        what = f"'{element_label}'" if element else "this file"
        message = f"the workflow library refused {what}: {plain(text)}"
    notes = [" ".join(plain(n).split()) for n in getattr(exc, "notes", None) or []]
    if notes:
        message += " (" + "; ".join(notes) + ")"
    root_id = _root_id(where, file)
    return Problem(file, message, element or root_id, line)


def unexpected_problem(exc: BaseException, file: str, element: str | None,
                       where: Mapping[str, Mapping[str, Where]], doing: str) -> Problem:
    """Any other failure of the library on an element, in words: what carepath was doing and the library's reason."""
    ids = where.get(file, {})
    found = ids.get(element or "") or ids.get("")
    reason = " ".join(plain(str(exc) or type(exc).__name__).split())
    return Problem(file, f"the workflow library could not {doing}: {reason}", element or _root_id(where, file),
                   found.line if found else None)



def _root_id(where: Mapping[str, Mapping[str, Where]], file: str) -> str | None:
    """The id of the file's root element (None when it has none)."""
    root = where.get(file, {}).get("")
    return root.element_id if root else None


#: the library's file-level sentences that `check_definitions` always reports first, in its own words
_COVERED = re.compile(r"Data Store with name .* has no implementation|Data Store name is missing|"
                      r"(Message|Signal|Error|Escalation|Correlation|Data Store) identifier is missing")


def covered_by_checks(exc: Any) -> bool:
    """True for a library problem `check_definitions` has already reported on the element itself."""
    return bool(_COVERED.search(str(exc.args[0] if exc.args else exc)))
