"""Deploy-time reading of BPMN/DMN bundles: validate everything, describe every process, build specs.

`parse_bundle` checks a set of .bpmn/.dmn files and either returns a `Bundle` describing
each executable process (its user tasks, service tasks, timers, calls and decisions) or
raises `DefinitionError` listing *every* problem, each with file, element id and line.
SpiffWorkflow's parser stops at its first error, so carepath walks the XML itself first
(`engine.bpmn_checks`) and then asks SpiffWorkflow to build the spec of every process it could
check — those with problems too — turning the library's `ValidationException` into one more
problem in the same list (one on an element carepath already reported is not repeated).

`build_specs` builds the executable spec of one process and its subprocess specs;
`make_serializer` gives a serializer for every class those specs contain; `timer_due`
tells when a waiting timer task falls due.

Rules (see docs/diagram-attributes.md): a process without isExecutable is executable (as
in SpiffWorkflow); one with isExecutable="false" is skipped, unless something calls it
or its file holds nothing else (both problems). `Bundle.processes` holds the executable
top-level processes; the tasks of embedded subprocesses belong to the process holding them.
"""

from __future__ import annotations

import pickle
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task

from engine.bpmn_checks import (
    ProcessCheck,
    ProcessInfo,
    Refs,
    ServiceTaskInfo,
    TimerInfo,
    UserTaskInfo,
)
from engine.bpmn_parser import BPMN_NS, CASE_OUTPUT_CLASSES, CarepathParser, CarepathStartEvent
from engine.bpmn_timers import TIMER_SERIALIZER_CONFIG, timer_due
from engine.content_cache import ContentCache, files_key, frozen
from engine.dmn import DecisionInfo, check_dmn, check_requirements, evaluation_order
from engine.errors import CarepathError, DefinitionError, Problem
from engine.library_problems import (
    Where,
    check_definitions,
    covered_by_checks,
    index,
    library_problem,
    plain,
    unexpected_problem,
)
from engine.task_tree import CarepathSubWorkflow, CarepathTask, CarepathWorkflow
from engine.xmlsafe import parse_xml

__all__ = [
    "Bundle", "ProcessInfo", "ServiceTaskInfo", "TimerInfo", "UserTaskInfo",
    "build_specs", "make_serializer", "parse_bundle", "timer_due",
]


@dataclass
class Bundle:
    files: dict[str, bytes]
    processes: dict[str, ProcessInfo]
    decisions: dict[str, str]  # decision id -> file name
    decision_infos: dict[str, DecisionInfo] = field(default_factory=dict)  # decision id -> name, requirements


def parse_bundle(
    files: Mapping[str, bytes],
    handlers: Collection[str] | None = None,
    forms: Collection[str] | None = None,
    known_processes: Collection[str] = (),
    known_decisions: Collection[str] = (),
    teams: Collection[str] | None = None,
    users: Collection[str] | None = None,
) -> Bundle:
    """Validate a bundle of .bpmn/.dmn files; raise DefinitionError listing every problem.

    handlers/forms/teams/users: when given, naming anything else is a problem (handlers as a mapping
    of name -> required parameters also checks every service task gives them). known_processes /
    known_decisions: ids deployed earlier, which call activities and business rule tasks
    may use.

    A bundle that passed is remembered by its files' content and the checks' arguments (engine/content_cache.py):
    the same bundle checked again gets a copy of the same description; one with problems is checked every time.
    """
    key = (files_key(files), frozen(handlers), frozen(forms), frozen(known_processes), frozen(known_decisions),
           frozen(teams), frozen(users))
    kept = _CHECKED_BUNDLES.get(key, lambda: pickle.dumps(
        _check_bundle(files, handlers, forms, known_processes, known_decisions, teams, users),
        pickle.HIGHEST_PROTOCOL))
    infos, decisions, decision_infos = pickle.loads(kept)  # each caller its own copy (faster than deepcopy)
    return Bundle(dict(files), infos, decisions, decision_infos)


#: bundles that passed parse_bundle's checks -> (process infos, decisions) pickled, by content and checks
_CHECKED_BUNDLES: ContentCache[bytes] = ContentCache(64)
#: (files, process id) -> the specs build_specs made of them; SpiffWorkflow's specs are not changed by running
#: workflows (an engine already shares one spec between all its instances of a version)
_BUILT_SPECS: ContentCache[tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]] = ContentCache(128)


def _check_bundle(files: Mapping[str, bytes], handlers: Collection[str] | None, forms: Collection[str] | None,
                  known_processes: Collection[str], known_decisions: Collection[str],
                  teams: Collection[str] | None, users: Collection[str] | None = None,
                  ) -> tuple[dict[str, ProcessInfo], dict[str, str], dict[str, DecisionInfo]]:
    problems: list[Problem] = []
    if not files:
        raise DefinitionError([Problem("(bundle)", "no .bpmn or .dmn files were given")])
    bpmn, dmn = _read(files, problems)
    decision_infos, broken_decisions = _decisions(dmn, known_decisions, problems)
    decisions = {d: info.file for d, info in decision_infos.items()}
    required = {d: list(info.required) for d, info in decision_infos.items()}
    declared = _declared_processes(bpmn, problems)
    refs = Refs(
        executable={p for p, (_f, node) in declared.items() if _executable(node)} | set(known_processes),
        not_executable={p for p, (_f, node) in declared.items() if not _executable(node)},
        decisions=set(decisions) | set(known_decisions),
        handlers=handlers,
        forms=forms,
        teams=teams,
        users=users,
    )
    usable = {d for d in decisions if _closure_usable(d, required, set(decisions) - broken_decisions)}
    infos, buildable = _check_processes(bpmn, declared, refs, usable, problems)
    _check_deploys_something(bpmn, infos, problems)
    _library_check(bpmn, dmn, decisions, broken_decisions, infos, buildable, problems)
    if problems:
        order = {name: i for i, name in enumerate(files)}
        raise DefinitionError(sorted(problems, key=lambda p: (order.get(p.file, -1), p.line or 0)))
    return infos, decisions, decision_infos


def build_specs(files: Mapping[str, bytes], process_id: str, latest_decisions: Mapping[str, bytes] | None = None,
                pinned_decisions: Mapping[str, bytes] | None = None,
                ) -> tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]:
    """The executable spec of `process_id` and the specs of its subprocesses and called processes.

    `files` must hold every diagram the process calls (recursively) and the .dmn files of
    its decisions: a call activity is resolved from these files only. `latest_decisions` (file name -> DMN):
    the latest deployed version of each decision, which business rule tasks use unless bound to the decision
    deployed with the process (engine/dmn.py, `read_binding`); without it they use the decisions of `files`.

    Specs built once are kept by the files' content and the process id (engine/content_cache.py) and given
    again; a bundle that fails is built, and fails, every time.
    """
    latest = latest_decisions or {}
    pinned = pinned_decisions or {}
    spec, subprocess_specs = _BUILT_SPECS.get((files_key(files), files_key(latest), files_key(pinned), process_id),
                                              lambda: _build_specs(files, process_id, latest, pinned))
    return spec, dict(subprocess_specs)


def _build_specs(files: Mapping[str, bytes], process_id: str, latest: Mapping[str, bytes],
                 pinned: Mapping[str, bytes] | None = None) -> tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]:
    parser, trees = _library_parser(files)
    if latest:
        latest_trees = {name: parse_xml(data, name) for name, data in latest.items()}
        trees.update({f"(latest) {name}": tree for name, tree in latest_trees.items()})
        parser.use_latest_decisions({name: tree.getroot() for name, tree in latest_trees.items()})
    if pinned:  # business rule tasks bound to one version of their decision (engine/dmn.py, `read_pinned`)
        parser.use_pinned_decisions({key: parse_xml(data, key).getroot() for key, data in pinned.items()})
    try:
        spec, subprocess_specs = parser.get_spec(process_id), parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        if "RecursionError" in str(exc):
            raise DefinitionError([_too_long(process_id, exc.file_name or "(bundle)", None)]) from exc
        raise DefinitionError([library_problem(exc, exc.file_name or "(bundle)", index(trees))]) from exc
    except RecursionError as exc:
        raise DefinitionError([_too_long(process_id, "(bundle)", None)]) from exc
    for built in (spec, *subprocess_specs.values()):
        connect_loops(built)
    return spec, subprocess_specs


def connect_loops(spec: BpmnProcessSpec) -> None:
    """Connect each loop or multi-instance activity of `spec` to the completion of its instances, as
    SpiffWorkflow's serializer does when it reads a spec (`BpmnProcessSpecConverter.from_dict`).

    An instance of a multi-instance (or standard loop) activity is merged into the activity when it completes
    through its spec's `completed_event`, connected to the loop's `merge_child`. The parser does not connect it:
    the library does when the activity creates its first instance, or when it reads a saved spec. carepath builds
    its specs with the parser and never stores them (engine/state.py), so a process that restored a workflow part-way
    through such an activity (the command line, another worker, a restarted server) had it unconnected: the last
    instance completed, nothing was merged, and the activity waited for ever. Connecting once here, where every
    spec is built, serves every later start and restore; the library's own check (`is_connected`) keeps it from
    connecting twice."""
    for task_spec in spec.task_specs.values():
        if isinstance(task_spec, LoopTask):
            instance_spec = spec.task_specs[task_spec.task_spec]
            if not instance_spec.completed_event.is_connected(task_spec.merge_child):
                instance_spec.completed_event.connect(task_spec.merge_child)


def connect_triggered(workflow: BpmnWorkflow) -> BpmnWorkflow:
    """Connect each event subprocess the restored `workflow` holds a task of, as SpiffWorkflow connects it when a
    signal or message starts it (`BpmnStartTask.trigger_wf`: the workflow's start to the subprocess, the
    subprocess to the end), and as its serializer would find it connected when it reads a saved spec.

    Like `connect_loops`, a wiring the library makes in memory: carepath restores only the task tree onto specs
    built afresh by the parser (engine/state.py), where a triggered event subprocess is connected to nothing. So a
    case whose event subprocess had started went on only in the process that started it; restored anywhere else
    (the command line, another worker, a restarted server) its next step failed with "No input task connected"
    and the instance went into error. Only a process whose start lists trigger specs is looked at (one test per
    restore otherwise); the library's own check (`inputs`) keeps it from connecting twice."""
    start = workflow.spec.start
    names = set(getattr(start, "trigger_specs", ()))
    if names:
        for task in workflow.tasks.values():
            spec = task.task_spec
            if spec.name in names and start not in spec.inputs:
                start.connect(spec)
                spec.connect(workflow.spec.end)
    return workflow


def make_serializer() -> BpmnWorkflowSerializer:
    """A serializer for every spec build_specs produces: the spiff dialect plus carepath's timers, start event
    and the spec classes that keep case outputs."""
    config = {**SPIFF_CONFIG, **TIMER_SERIALIZER_CONFIG}
    # start inputs and case outputs are read from the diagram, not stored: each class is its base's converter
    config[CarepathStartEvent] = config[StartEvent]
    for base, carepath_class in CASE_OUTPUT_CLASSES.items():
        config[carepath_class] = config[base]
    registry = BpmnWorkflowSerializer.configure(config)
    # the engine's workflow classes (engine/task_tree.py), stored under the library's own type names: a saved
    # state reads and writes the same whichever class made it
    config[BpmnWorkflow](CarepathWorkflow, registry, typename="BpmnWorkflow")
    config[BpmnSubWorkflow](CarepathSubWorkflow, registry, typename="BpmnSubWorkflow")
    config[Task](CarepathTask, registry, typename="Task")
    return BpmnWorkflowSerializer(registry)


# --- files -----------------------------------------------------------------------------


def _q(local: str) -> str:
    return f"{{{BPMN_NS}}}{local}"


def _executable(process: Any) -> bool:
    # As SpiffWorkflow decides: only an explicit "false" makes a process non-executable.
    return process.get("isExecutable", "true").strip().lower() != "false"


def _kind(tree: Any) -> str | None:
    root = tree.getroot()
    if root.tag == _q("definitions"):
        return "bpmn"
    qname = etree.QName(root)
    if qname.localname == "definitions" and "DMN" in (qname.namespace or "").upper():
        return "dmn"
    return None


def _read(files: Mapping[str, bytes], problems: list[Problem]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse every file safely; BPMN and DMN trees by file name (others are problems)."""
    bpmn: dict[str, Any] = {}
    dmn: dict[str, Any] = {}
    for name, data in files.items():
        try:
            tree = parse_xml(data, name)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        except CarepathError as exc:  # UnsafeXmlError: refused before parsing
            problems.append(Problem(name, exc.message.removeprefix(f"{name}: ")))
            continue
        kind = _kind(tree)
        if kind == "bpmn":
            bpmn[name] = tree
        elif kind == "dmn":
            dmn[name] = tree
        else:
            root = tree.getroot()
            problems.append(Problem(name, f"not a BPMN or DMN document (its root element is {root.tag})",
                                    root.get("id") or None, root.sourceline))
    return bpmn, dmn


def _decisions(dmn: dict[str, Any], known: Collection[str],
               problems: list[Problem]) -> tuple[dict[str, DecisionInfo], set[str]]:
    """Every decision by id, and the ids of decisions with problems."""
    found: dict[str, DecisionInfo] = {}
    broken: set[str] = set()
    for name, tree in dmn.items():
        before = len(problems)
        for decision_id, info in check_dmn(name, tree.getroot(), problems).items():
            if decision_id in found:
                problems.append(Problem(name, f"decision id '{decision_id}' is already defined in "
                                              f"{found[decision_id].file}", decision_id, info.line))
                continue
            found[decision_id] = info
            if len(problems) > before:
                broken.add(decision_id)  # a file's problems keep every decision of it from being built
    broken |= check_requirements(found, known, problems)
    return found, broken


def _closure_usable(decision_id: str, required: dict[str, list[str]], usable: set[str]) -> bool:
    """True if the decision and every decision it requires are in the bundle and sound."""
    try:
        return all(d in usable for d in evaluation_order(decision_id, required))
    except ValueError:  # a cycle, already a problem
        return False


def _declared_processes(bpmn: dict[str, Any], problems: list[Problem]) -> dict[str, tuple[str, Any]]:
    """process id -> (file, element); the first wins and each later duplicate is a problem."""
    declared: dict[str, tuple[str, Any]] = {}
    for name, tree in bpmn.items():
        for process in tree.getroot().findall(_q("process")):
            pid = process.get("id")
            if not pid:
                problems.append(Problem(name, "a process has no id", None, process.sourceline))
            elif pid in declared:
                first_file, first = declared[pid]
                problems.append(Problem(name, f"process id '{pid}' is already defined in {first_file} "
                                              f"(line {first.sourceline})", pid, process.sourceline))
            else:
                declared[pid] = (name, process)
    return declared


def _check_file(name: str, tree: Any, problems: list[Problem]) -> bool:
    """File-wide problems (no process, an id used twice); True if there were none."""
    before = len(problems)
    root = tree.getroot()
    if not root.findall(_q("process")):
        problems.append(Problem(name, "no process in this file", root.get("id"), root.sourceline))
    check_definitions(name, tree, problems)
    first_line: dict[str, int | None] = {}
    for node in root.iter(f"{{{BPMN_NS}}}*"):
        node_id = node.get("id")
        if node_id is None:
            continue
        if node_id in first_line:
            problems.append(Problem(name, f"id '{node_id}' is used twice in this file "
                                          f"(first on line {first_line[node_id]})", node_id, node.sourceline))
        else:
            first_line[node_id] = node.sourceline
    return len(problems) == before


def _check_processes(bpmn: dict[str, Any], declared: dict[str, tuple[str, Any]], refs: Refs,
                     usable_decisions: set[str], problems: list[Problem]) -> tuple[dict[str, ProcessInfo], list[str]]:
    """Check every executable process; their ProcessInfos, and the ids of those SpiffWorkflow can be asked to
    build: every one carepath could check whose decisions are all in this bundle (with or without problems of
    its own, so that the library's problems are reported with carepath's, every problem at once)."""
    infos: dict[str, ProcessInfo] = {}
    clean: list[str] = []
    for name, tree in bpmn.items():
        _check_file(name, tree, problems)
        lanes = _lane_index(tree)
        for process in tree.getroot().findall(_q("process")):
            pid = process.get("id")
            if declared.get(pid, (None, None))[1] is not process or not _executable(process):
                continue
            try:
                infos[pid] = ProcessCheck(name, process, refs, lanes, problems).run()
            except Exception as exc:  # noqa: BLE001 - a bug in one check must not hide the others' problems
                problems.append(Problem(name, f"carepath could not check process '{pid}' (a fault in carepath, "
                                              f"not in the diagram: please report it): {plain(str(exc))}", pid,
                                        process.sourceline))
                continue
            # SpiffWorkflow needs the DMN of every decision used to build a spec: a process
            # using a decision deployed earlier is built by build_specs, with its files.
            if infos[pid].decisions_used <= usable_decisions:
                clean.append(pid)
    return infos, clean


def _check_deploys_something(bpmn: dict[str, Any], infos: dict[str, ProcessInfo], problems: list[Problem]) -> None:
    """A file whose processes are all non-executable and uncalled would silently deploy nothing."""
    called = set().union(*(info.called_processes for info in infos.values()))
    for name, tree in bpmn.items():
        processes = tree.getroot().findall(_q("process"))
        if processes and not any(_executable(p) or p.get("id") in called for p in processes):
            problems.append(Problem(name, 'no executable process in this file (isExecutable="false" on every '
                                          "process, and none is called)", processes[0].get("id"),
                                    processes[0].sourceline))


def _lane_index(tree: Any) -> dict[str, str | None]:
    """flow node id -> name of the lane holding it (the innermost lane, as SpiffWorkflow reads it)."""
    return {(ref.text or "").strip(): ref.getparent().get("name")
            for ref in tree.getroot().iter(_q("flowNodeRef"))}


# --- SpiffWorkflow's own checks --------------------------------------------------------


def _library_parser(files: Mapping[str, bytes]) -> tuple[CarepathParser, dict[str, Any]]:
    """A parser holding every file, and the trees by file name. Keep the trees alive while
    parsing: SpiffWorkflow indexes lanes by id() of a document's root, which a freed tree's
    successor could reuse."""
    parser = CarepathParser()
    trees: dict[str, Any] = {}
    for name, data in files.items():
        tree = trees[name] = parse_xml(data, name)
        try:
            if _kind(tree) == "bpmn":
                parser.add_bpmn_xml(tree, filename=name)
            elif _kind(tree) == "dmn":
                parser.add_dmn_xml(tree.getroot(), filename=name)
        except ValidationException as exc:
            raise DefinitionError([library_problem(exc, name, index({name: tree}))]) from exc
    return parser, trees


def _library_check(bpmn: dict[str, Any], dmn: dict[str, Any], decisions: dict[str, str],
                   broken_decisions: set[str], infos: dict[str, ProcessInfo], clean: list[str],
                   problems: list[Problem]) -> None:
    """Have SpiffWorkflow build the specs of the processes carepath checked. Its parser stops at its first
    problem: one on an element carepath already reported (in its own words) is not repeated, and a process
    carepath found problems in is not reported as failing to build for some other reason."""
    ours = list(problems)
    reported = {(p.file, p.element_id) for p in ours if p.element_id}
    troubled = {p.file for p in ours}
    library: list[Problem] = []
    _library_build(bpmn, dmn, decisions, broken_decisions, infos, clean, where=index({**bpmn, **dmn}),
                   problems=library)
    for found in library:
        known = (found.file, found.element_id) in reported
        generic = found.message.startswith(("the workflow library could not", "process '")) and found.file in troubled
        if not known and not generic and found not in problems:
            problems.append(found)


def _library_build(bpmn: dict[str, Any], dmn: dict[str, Any], decisions: dict[str, str],
                   broken_decisions: set[str], infos: dict[str, ProcessInfo], clean: list[str],
                   where: dict[str, dict[str, Where]], problems: list[Problem]) -> None:
    parser = CarepathParser()

    def line(file: str, element: str) -> int | None:
        found = where.get(file, {}).get(element)
        return found.line if found else None

    for name, tree in bpmn.items():
        try:
            parser.add_bpmn_xml(tree, filename=name)
        except ValidationException as exc:
            if not covered_by_checks(exc):  # a data store or an element with no id: reported on the element
                problems.append(library_problem(exc, name, where))
            clean = [pid for pid in clean if infos[pid].file != name]
    for name in dict.fromkeys(decisions.values()):
        parser.add_dmn_xml(dmn[name].getroot(), filename=name)
    for decision_id, name in decisions.items():
        if decision_id in broken_decisions:
            continue
        try:
            parser.dmn_parsers[decision_id].parse()
        except ValidationException as exc:
            problems.append(library_problem(exc, name, where))
        except Exception as exc:  # noqa: BLE001 - the library's DMN parser indexes without checking
            problems.append(unexpected_problem(exc, name, decision_id, where, f"read decision '{decision_id}'"))
    for pid in clean:
        file = infos[pid].file
        try:
            parser.get_spec(pid)
            _parse_embedded(parser, pid)
        except RecursionError:
            problems.append(_too_long(pid, file, line(file, pid)))
        except ValidationException as exc:
            too_long = "RecursionError" in str(exc)  # the task parser wraps whatever it catches
            problems.append(_too_long(pid, file, line(file, pid)) if too_long
                            else library_problem(exc, file, where))
        except Exception as exc:  # noqa: BLE001 - any library failure is one more problem, not a crash
            problems.append(unexpected_problem(exc, file, pid, where, f"build process '{pid}'"))


def _parse_embedded(parser: CarepathParser, top: str) -> None:
    """Build the specs of `top`'s embedded subprocesses: SpiffWorkflow parses them lazily."""

    def root_of(process_parser: Any) -> str:
        while process_parser.parent is not None:
            process_parser = process_parser.parent
        return process_parser.bpmn_id

    while True:
        pending = [pp for pp in parser.process_parsers.values()
                   if pp.parent is not None and pp.spec is None and root_of(pp) == top]
        if not pending:
            return
        for process_parser in pending:
            process_parser.get_spec()


def _too_long(pid: str, file: str, line: int | None) -> Problem:
    return Problem(file, f"process '{pid}' is too long a chain for SpiffWorkflow's parser (it recurses along "
                         "sequence flows and hit Python's recursion limit): split it into call activities or "
                         "subprocesses", pid, line)
