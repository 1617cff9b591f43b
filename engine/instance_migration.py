"""Moving running process instances onto another version of their process (instance migration).

Not to be confused with engine/migrate.py, which upgrades the database schema.

A *plan* compares two versions once, with SpiffWorkflow's own `SpecDiff` (elements aligned by id,
then by their place in the flow) plus the owner's explicit mapping for renamed or replaced
elements. Each instance is then checked from its saved state without restoring the workflow — a
dry run of 10,000 cases reads text, it does not rebuild 10,000 task trees — and says *can move*
or *cannot move* with the reasons in words:

* an element the case is at (waiting for a person, a timer or a message) is missing from the
  target or is a different kind of element there;
* a waiting timer whose definition changed, unless the owner chose to keep its due date or to
  recompute it (a statutory deadline never moves silently);
* a called process, subprocess or multi-instance activity in progress;
* an element the case already passed that the target lacks (carepath keeps each case's path, so
  it must be mapped to the element that replaced it);
* an open incident.

`migrate` moves each movable instance in a transaction of its own (one failing or stale case
never stops or undoes another): the workflow is rewritten with SpiffWorkflow's
`migrate_workflow`, its task and timer rows are projected again and an `instance.migrated`
event joins the case's history chain, so `carepath replay` re-applies the move at the same point
and `carepath audit verify` holds. Waiting timers keep their due dates unless the owner asked to
recompute them from the new definition (counted from when each timer started).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection, bindparam, func, select, update

from . import definitions, history
from .bpmn import build_specs, make_serializer
from .bpmn_timers import parse_date
from .clock import as_utc
from .errors import CarepathError, ConflictError, NotFoundError, StateError, ValidationError
from .history import Event, case_chain
from .schema import cases, events, instances, process_versions, tasks

__all__ = ["CaseCheck", "CaseResult", "DryRun", "MigrationResult", "Plan", "Target", "dry_run", "impact",
           "migrate", "migrate_instance", "plan_for", "replay_migration", "target_from_files",
           "target_from_version"]

OPEN_STATUSES = ("running", "waiting", "error")
_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
_FINISHED = TaskState.COMPLETED | TaskState.CANCELLED
_INTERNAL_SUFFIXES = (".BoundaryEventSplit", ".BoundaryEventJoin")
_TIMER_POLICIES = ("refuse", "keep", "recompute")

_ROWS = (select(instances.c.id, instances.c.case_id, instances.c.version, instances.c.status, instances.c.state,
                cases.c.reference)
         .join(cases, cases.c.id == instances.c.case_id))
_MOVE_INSTANCE = (update(instances)
                  .where(instances.c.id == bindparam("iid"), instances.c.version == bindparam("expected"),
                         instances.c.process_version_id == bindparam("from_vid"))
                  .values(version=instances.c.version + 1, process_version_id=bindparam("to_vid"),
                          state=bindparam("state"), updated_at=bindparam("now")))
_RETARGET_TASK = (update(tasks).where(tasks.c.id == bindparam("tid"))
                  .values(element_id=bindparam("element"), name=bindparam("tname"), form=bindparam("tform"),
                          team=bindparam("tteam"), candidate_groups=bindparam("groups"), lane=bindparam("tlane"),
                          due_at=bindparam("due"), follow_up_at=bindparam("follow_up"),
                          candidate_users=bindparam("cusers"), revision=tasks.c.revision + 1))


# ---------------------------------------------------------------------- what a version is
@dataclass
class Target:
    """A version to compare with: a deployed one, or files not yet deployed (a draft under review)."""

    process_id: str
    spec: Any
    subprocess_specs: dict[str, Any]
    version: int | None = None  # None: not deployed
    version_id: int | None = None

    @property
    def label(self) -> str:
        return f"version {self.version}" if self.version is not None else "the draft"


def target_from_version(conn: Connection, process_id: str, version: int, specs: Any = None) -> Target:
    """A deployed version of a process (NotFoundError naming it when there is none)."""
    row = _version_row(conn, process_id, version)
    loaded = (specs or definitions.SpecCache(4)).get(conn, row.id)
    return Target(process_id, loaded.spec, loaded.subprocess_specs, loaded.version, loaded.id)


def target_from_files(files: Mapping[str, bytes], process_id: str) -> Target:
    """The process as the given files (and the files they need) define it, before it is deployed."""
    spec, subprocess_specs = build_specs(dict(files), process_id)
    return Target(process_id, spec, subprocess_specs)


def _version_row(conn: Connection, process_id: str, version: Any):  # type: ignore[no-untyped-def]
    if conn.execute(select(process_versions.c.id).where(process_versions.c.process_id == process_id)
                    .limit(1)).first() is None:
        raise NotFoundError(f"there is no process '{process_id}' (it was never deployed)", process=process_id)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationError(f"a version is a whole number from 1 (got {version!r})", process=process_id)
    row = conn.execute(select(process_versions).where(process_versions.c.process_id == process_id,
                                                      process_versions.c.version == version)).first()
    if row is None:
        latest = conn.execute(select(func.max(process_versions.c.version))
                              .where(process_versions.c.process_id == process_id)).scalar()
        raise NotFoundError(f"process '{process_id}' has no version {version} (its versions are 1 to {latest})",
                            process=process_id)
    return row


# ---------------------------------------------------------------------- comparing two versions
def _kind(spec: Any) -> str:
    """An element's kind in words ("user task", "boundary event")."""
    name = type(spec).__name__.removeprefix("Carepath")  # carepath's spec classes are kinds of the library's
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower() if name else "element"


def _a(words: str) -> str:
    """'a user task', 'an end event', 'an exclusive gateway'."""
    return f"{'an' if words[:1] in 'aeio' else 'a'} {words}"  # 'a user task'


def _label(spec: Any) -> str:
    name = getattr(spec, "bpmn_name", None) or getattr(spec, "description", None)
    bpmn_id = getattr(spec, "bpmn_id", None)
    if bpmn_id is None:  # an element SpiffWorkflow adds (a boundary event split, the end join)
        owner = spec.name.rsplit(".", 1)[0]
        return f"the events attached to '{owner}'" if spec.name.endswith(_INTERNAL_SUFFIXES) else spec.name
    return f"'{name}' ({bpmn_id})" if name and name != bpmn_id else f"'{bpmn_id}'"


def _timer(spec: Any) -> tuple[str, str] | None:
    """(kind of timer, its text) when the element waits for a timer."""
    ed = getattr(spec, "event_definition", None)
    expression = getattr(ed, "expression", None)
    if ed is None or expression is None or "Timer" not in type(ed).__name__ and "TimeDate" not in type(ed).__name__:
        return None
    return type(ed).__name__, str(expression)


def _host(spec: Any) -> str | None:
    """The task a boundary event is attached to, or for a task with boundary events the task itself (read from
    the split SpiffWorkflow puts before them); None for anything else."""
    for parent in getattr(spec, "inputs", None) or ():
        if parent.name.endswith(".BoundaryEventSplit"):
            return parent.name.removesuffix(".BoundaryEventSplit")
    return None


def _new_boundary_notes(plan: Plan, task: Any) -> list[str]:
    """For a case waiting at `task` (in the target): the events attached to it that no element of the source
    becomes — a timer added to the task, say. They are set when a case reaches the task, so a moved case does not
    get them; the dry run says so rather than let the owner believe it does."""
    split = plan.target.spec.task_specs.get(task.name + ".BoundaryEventSplit")
    matched = {m.to for m in plan.moves.values()}
    return [f"{_label(event)}, attached to {_label(task)} in {plan.target.label}, will not start for this case: "
            "it starts only when a case reaches the task"
            for event in getattr(split, "outputs", ())
            if event.name != task.name and getattr(event, "bpmn_id", None) and event.name not in matched]


def _waits_for(spec: Any) -> Any:
    """What a catching element waits for, comparable between versions (None when it catches nothing)."""
    ed = getattr(spec, "event_definition", None)
    if ed is None:
        return None
    return (type(ed).__name__, getattr(ed, "expression", None), getattr(ed, "name", None)
            if _timer(spec) is None else None)


@dataclass
class Move:
    """Where one element of the source version goes in the target."""

    element_id: str
    to: str | None
    how: str  # "same id" | "matched by its place in the flow" | "your mapping" | "not in the target"

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.element_id, "to": self.to, "how": self.how}


class Plan:
    """Two versions compared once: the alignment of their elements and what changed."""

    def __init__(self, source: Target, target: Target, mapping: Mapping[str, str] | None = None) -> None:
        self.source, self.target = source, target
        self.mapping = _check_mapping(source, target, mapping or {})
        self._registry = make_serializer().registry
        diff = SpecDiff(self._registry, source.spec, target.spec)
        new_specs = target.spec.task_specs
        for old_id, new_id in self.mapping.items():
            diff.alignment[source.spec.task_specs[old_id]] = new_specs[new_id]
            for suffix in _INTERNAL_SUFFIXES:  # a task's boundary events follow it
                if old_id + suffix in source.spec.task_specs and new_id + suffix in new_specs:
                    diff.alignment[source.spec.task_specs[old_id + suffix]] = new_specs[new_id + suffix]
        self.spec_diff = diff
        self.moves: dict[str, Move] = {}
        for name, spec in source.spec.task_specs.items():
            new = diff.alignment[spec] if spec in diff.alignment else new_specs.get(name)
            how = ("your mapping" if name in self.mapping else "not in the target" if new is None
                   else "same id" if new.name == name else "matched by its place in the flow")
            self.moves[name] = Move(name, new.name if new is not None else None, how)
        self.multi_instance_children = {ts.task_spec for ts in source.spec.task_specs.values()
                                        if isinstance(ts, LoopTask)}

    def new_spec(self, old_name: str) -> Any:
        move = self.moves.get(old_name)
        return self.target.spec.task_specs.get(move.to) if move is not None and move.to is not None else None

    def element_moves(self) -> list[dict[str, Any]]:
        """The task mapping by element id, for people: BPMN elements only, renamed ones first."""
        rows = [m for m in self.moves.values() if getattr(self.source.spec.task_specs[m.element_id], "bpmn_id", None)]
        rows.sort(key=lambda m: (m.how == "same id", m.element_id))
        return [m.to_dict() for m in rows]

    def target_elements(self) -> list[dict[str, str]]:
        """The target's BPMN elements (for the mapping choices on the migration page)."""
        out = [{"id": s.bpmn_id, "name": getattr(s, "bpmn_name", None) or s.bpmn_id, "kind": _kind(s)}
               for s in self.target.spec.task_specs.values() if getattr(s, "bpmn_id", None)]
        return sorted(out, key=lambda e: e["id"])

    def source_elements(self) -> list[dict[str, str]]:
        out = [{"id": s.bpmn_id, "name": getattr(s, "bpmn_name", None) or s.bpmn_id, "kind": _kind(s)}
               for s in self.source.spec.task_specs.values() if getattr(s, "bpmn_id", None)]
        return sorted(out, key=lambda e: e["id"])


def _check_mapping(source: Target, target: Target, mapping: Mapping[str, str]) -> dict[str, str]:
    """The owner's mapping, every element checked to exist on its side (all problems at once)."""
    if not isinstance(mapping, Mapping):
        raise ValidationError("the mapping must pair element ids: {old element id: new element id}")
    problems = []
    clean: dict[str, str] = {}
    for old, new in mapping.items():
        if not isinstance(old, str) or not isinstance(new, str) or not old.strip() or not new.strip():
            problems.append({"field": "mapping", "message": f"the mapping {old!r} → {new!r} must pair two "
                                                            "element ids"})
            continue
        old, new = old.strip(), new.strip()
        if getattr(source.spec.task_specs.get(old), "bpmn_id", None) is None:
            problems.append({"field": "mapping", "message": f"there is no element '{old}' in {source.label} "
                                                            f"of '{source.process_id}' to map from"})
        if getattr(target.spec.task_specs.get(new), "bpmn_id", None) is None:
            problems.append({"field": "mapping", "message": f"there is no element '{new}' in {target.label} "
                                                            f"of '{target.process_id}' to map '{old}' to"})
        clean[old] = new
    if problems:
        raise ValidationError("; ".join(p["message"] for p in problems), errors=problems)
    return clean


# ---------------------------------------------------------------------- checking one instance
@dataclass
class CaseCheck:
    """The dry run's answer for one running instance."""

    case_id: int
    case_reference: str
    instance_id: int | None
    instance_version: int | None
    can_move: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    current: list[dict[str, Any]] = field(default_factory=list)  # where the case is: element, name, to
    timers: list[dict[str, Any]] = field(default_factory=list)
    only_timers: bool = False  # refused only because a waiting timer changed

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "case_reference": self.case_reference, "instance_id": self.instance_id,
                "instance_version": self.instance_version, "can_move": self.can_move, "reasons": self.reasons,
                "notes": self.notes, "current": self.current, "timers": self.timers}


def _iter_saved_tasks(state: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every task of a saved workflow: (task, inside a subprocess)."""
    for t in state.get("tasks", {}).values():
        yield t, False
    for sub in (state.get("subprocesses") or {}).values():
        for t in (sub.get("tasks") or {}).values():
            yield t, True


def _due_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("next")
    if not value:
        return None
    try:
        return history.iso(as_utc(parse_date(str(value))))
    except Exception:  # noqa: BLE001 - an unreadable value is shown as stored
        return str(value)


def _readable(iso: str | None) -> str:
    """An instant for people, in UTC (the engine knows no local time zone)."""
    try:
        at = datetime.fromisoformat(iso or "")
    except ValueError:
        return iso or "not known"
    return f"{at.day} {at:%B %Y} at {at:%H:%M} UTC"


def check_state(plan: Plan, state_text: str | None, *, status: str, case_id: int, reference: str,
                instance_id: int, version: int, timers: str = "refuse") -> CaseCheck:
    """Can this saved instance move along `plan`? Reads the saved state only (no workflow is rebuilt)."""
    check = CaseCheck(case_id, reference, instance_id, version, True)
    src, tgt = plan.source, plan.target
    reasons, timer_reasons = check.reasons, []
    if status == "error":
        reasons.append("it has an open incident (something failed and waits for a retry); "
                       "retry or resolve it first")
    if not state_text:
        reasons.append(f"it is {status} and has no saved state to move")
        check.can_move = False
        return check
    state = json.loads(state_text)
    passed_missing: set[str] = set()
    sub_active = False
    for task, in_subprocess in _iter_saved_tasks(state):
        st = task["state"]
        name = task["task_spec"]
        if in_subprocess:
            sub_active = sub_active or bool(st & _ACTIVE)
            continue
        old = src.spec.task_specs.get(name)
        if old is None:
            reasons.append(f"its saved state names '{name}', which {src.label} does not have")
            continue
        new = plan.new_spec(name)
        if st & _FINISHED:
            if new is None:
                passed_missing.add(name)
            continue
        if not st & _ACTIVE:
            continue  # predicted: worked out again from the target
        label = _label(src.spec.task_specs.get(old.task_spec, old) if isinstance(old, LoopTask) else old)
        move = plan.moves[name]
        at_rest = st & TaskState.READY and old.manual or st & TaskState.WAITING
        if getattr(old, "bpmn_id", None) is not None and at_rest:
            check.current.append({"element_id": old.bpmn_id, "name": getattr(old, "bpmn_name", None) or old.bpmn_id,
                                  "kind": _kind(old), "to": move.to, "how": move.how})
        if isinstance(old, SubWorkflowTask):
            reasons.append(f"{label} runs another process that is still in progress; a case can move only when "
                           "no called process or subprocess is running")
            continue
        if isinstance(old, LoopTask) or name in plan.multi_instance_children:
            reasons.append(f"{label} runs once per item and is part-way through; a case can move only before or "
                           "after a multi-instance activity")
            continue
        if new is None:
            reasons.append(f"it is at {label}, which {tgt.label} does not have: map {old.bpmn_id or name} to an "
                           f"element of {tgt.label} to move it" if getattr(old, "bpmn_id", None) else
                           f"it is at {label}, which {tgt.label} does not have in the same form")
            continue
        if type(old).__name__ != type(new).__name__:
            reasons.append(f"it is at {label}, {_a(_kind(old))} in {src.label} but {_a(_kind(new))} "
                           f"({new.bpmn_id or new.name}) in {tgt.label}")
            continue
        old_host, new_host = _host(old), _host(new)
        if old_host is not None and old_host != name:  # a waiting boundary event: it must stay on its task's match
            host_to = plan.moves[old_host].to if old_host in plan.moves else None
            if host_to != new_host:
                host_label = _label(src.spec.task_specs[old_host])
                goes = (f"which moves to {_label(tgt.spec.task_specs[host_to])}" if host_to else
                        f"which {tgt.label} does not have")
                there = (f"is attached to {_label(tgt.spec.task_specs[new_host])}" if new_host else
                         "is attached to no task")
                reasons.append(f"{label} waits on {host_label}, {goes}, but in {tgt.label} it {there}: it would "
                               "fire on the wrong step. Map the task to the one it is attached to, or move the "
                               "case once it has left the task")
                continue
        old_timer, new_timer = _timer(old), _timer(new)
        if st & TaskState.WAITING and old_timer is not None:
            due = _due_text((task.get("internal_data") or {}).get("event_value"))
            changed = old_timer != new_timer
            check.timers.append({"element_id": old.bpmn_id, "name": getattr(old, "bpmn_name", None) or old.bpmn_id,
                                 "due_at": due, "changed": changed, "from": old_timer[1],
                                 "to": new_timer[1] if new_timer else None})
            if changed and timers == "refuse":
                timer_reasons.append(f"the timer {label} is waiting (due {_readable(due)}) and its definition "
                                     "changed from "
                                     f"{old_timer[1]} to {new_timer[1] if new_timer else 'no timer'}: choose to keep "
                                     "its due date or to recompute it")
            elif changed and timers == "keep":
                check.notes.append(f"the timer {label} keeps its due date, {_readable(due)}")
            elif changed:
                check.notes.append(f"the timer {label} is recomputed from {new_timer[1] if new_timer else '?'}, "
                                   "counted from when it started")
        elif st & TaskState.WAITING and _waits_for(old) != _waits_for(new):
            reasons.append(f"it is waiting at {label} for something that {tgt.label} defines differently "
                           "(a waiting message or signal could be lost)")
        if st & TaskState.READY and old.manual:
            old_ext, new_ext = getattr(old, "extensions", {}) or {}, getattr(new, "extensions", {}) or {}
            if old_ext.get("form") != new_ext.get("form"):
                check.notes.append(f"the task {label} will use the form '{new_ext.get('form')}' "
                                   f"instead of '{old_ext.get('form')}'")
            if (old_ext.get("candidate_groups") or [old.lane]) != (new_ext.get("candidate_groups") or [new.lane]):
                check.notes.append(f"the task {label} moves to the team "
                                   f"'{(new_ext.get('candidate_groups') or [new.lane])[0]}'")
        if at_rest and _host(new) == new.name:
            check.notes.extend(_new_boundary_notes(plan, new))
    for name in sorted(passed_missing):
        old = src.spec.task_specs[name]
        if getattr(old, "bpmn_id", None) is None:  # SpiffWorkflow's own part of an element
            reasons.append(f"it already passed {_label(old)}, which {tgt.label} does not have")
        else:
            reasons.append(f"it already passed {_label(old)}, which {tgt.label} does not have; carepath keeps "
                           f"each case's path, so map {old.bpmn_id} to the element of {tgt.label} that "
                           "replaced it")
    if sub_active and not any("runs another process" in r for r in reasons):
        reasons.append("a subprocess or called process is in progress inside it; a case can move only when none is")
    reasons[:] = list(dict.fromkeys(reasons))  # a multi-instance activity is several tasks: say it once
    check.only_timers = bool(timer_reasons) and not reasons
    reasons.extend(timer_reasons)
    check.can_move = not reasons
    return check


# ---------------------------------------------------------------------- dry run and impact
@dataclass
class DryRun:
    process_id: str
    from_version: int
    to_version: int | None
    mapping: dict[str, str]
    timers: str
    moves: list[dict[str, Any]]
    cases: list[CaseCheck]

    @property
    def movable(self) -> list[CaseCheck]:
        return [c for c in self.cases if c.can_move]

    def expected_versions(self) -> dict[int, int]:
        """instance id -> version, for `migrate(expected_versions=...)` (the stale check)."""
        return {c.instance_id: c.instance_version for c in self.cases
                if c.instance_id is not None and c.instance_version is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"process_id": self.process_id, "from_version": self.from_version, "to_version": self.to_version,
                "mapping": self.mapping, "timers": self.timers, "element_mapping": self.moves,
                "running": len(self.cases), "can_move": len(self.movable),
                "cannot_move": len(self.cases) - len(self.movable), "cases": [c.to_dict() for c in self.cases]}


def _timer_policy(keep_timers: bool, recompute_timers: bool) -> str:
    if keep_timers and recompute_timers:
        raise ValidationError("choose either to keep the waiting timers' due dates or to recompute them, not both")
    return "keep" if keep_timers else "recompute" if recompute_timers else "refuse"


def _versions(engine: Any, conn: Connection, process_id: str, from_version: Any,
              to_version: Any) -> tuple[Target, Target]:
    source = target_from_version(conn, process_id, from_version, engine.specs)
    target = target_from_version(conn, process_id, to_version, engine.specs)
    if source.version == target.version:
        raise ValidationError(f"the source and target are both version {source.version}: choose two different "
                              "versions", process=process_id)
    return source, target


def _case_ids(conn: Connection, wanted: Iterable[Any] | None) -> dict[int, str] | None:
    """Case ids or references → {case id: reference}; unknown ones are an error naming them."""
    if wanted is None:
        return None
    ids: set[int] = set()
    refs: set[str] = set()
    for w in wanted:
        text = str(w).strip()
        if text.isdigit():
            ids.add(int(text))
        elif text:
            refs.add(text.upper())
    rows = conn.execute(select(cases.c.id, cases.c.reference).where(
        cases.c.id.in_(ids) | cases.c.reference.in_(refs))).all() if ids or refs else []
    found = {r.id: r.reference for r in rows}
    missing = sorted({str(i) for i in ids if i not in found}
                     | {r for r in refs if r not in set(found.values())})
    if missing:
        raise NotFoundError(f"no case {', '.join(missing)}", case=", ".join(missing))
    return found


def _candidates(conn: Connection, version_id: int, case_filter: dict[int, str] | None,
                batch: int = 500) -> Iterator[Any]:
    """The open instances on a version (of the chosen cases), a page at a time, in id order."""
    last = 0
    while True:
        q = _ROWS.where(instances.c.process_version_id == version_id, instances.c.status.in_(OPEN_STATUSES),
                        instances.c.id > last)
        if case_filter is not None:
            q = q.where(instances.c.case_id.in_(list(case_filter)))
        rows = conn.execute(q.order_by(instances.c.id).limit(batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].id


def _absent(conn: Connection, process_id: str, source: Target, case_filter: dict[int, str] | None,
            seen: set[int]) -> list[CaseCheck]:
    """Chosen cases with no open instance on the source version: said so, not silently dropped."""
    out = []
    for cid, ref in sorted((case_filter or {}).items()):
        if cid in seen:
            continue
        where = conn.execute(select(process_versions.c.version, instances.c.status)
                             .join(process_versions, process_versions.c.id == instances.c.process_version_id)
                             .where(instances.c.case_id == cid, instances.c.process_id == process_id)
                             .order_by(instances.c.id.desc()).limit(1)).first()
        why = (f"it has no '{process_id}' process" if where is None else
               f"its '{process_id}' process is {where.status} on version {where.version}, not open on "
               f"{source.label}")
        out.append(CaseCheck(cid, ref, None, None, False, [why]))
    return out


def dry_run(engine: Any, process_id: str, from_version: int, to_version: int, *,
            mapping: Mapping[str, str] | None = None, case_ids: Iterable[Any] | None = None,
            keep_timers: bool = False, recompute_timers: bool = False) -> DryRun:
    """For every open instance of `process_id` on `from_version` (or of the chosen cases): can it move?"""
    policy = _timer_policy(keep_timers, recompute_timers)
    with engine.db.engine.connect() as conn:
        engine.db.require_initialised(conn)
        source, target = _versions(engine, conn, process_id, from_version, to_version)
        plan = Plan(source, target, mapping)
        chosen = _case_ids(conn, case_ids)
        checks = [check_state(plan, r.state, status=r.status, case_id=r.case_id, reference=r.reference,
                              instance_id=r.id, version=r.version, timers=policy)
                  for r in _candidates(conn, source.version_id, chosen)]
        checks += _absent(conn, process_id, source, chosen, {c.case_id for c in checks})
    return DryRun(process_id, source.version or 0, target.version, plan.mapping, policy, plan.element_moves(),
                  checks)


def plan_for(engine: Any, process_id: str, from_version: int, to_version: int,
             mapping: Mapping[str, str] | None = None) -> Plan:
    """The comparison of two deployed versions (element lists for the mapping choices)."""
    with engine.db.engine.connect() as conn:
        source, target = _versions(engine, conn, process_id, from_version, to_version)
        return Plan(source, target, mapping)


def impact(engine_or_conn: Any, process_id: str, to: int | Target | Mapping[str, bytes]) -> dict[str, Any]:
    """Open cases per version of a process and how many could move to `to` without a mapping.

    `to` is a deployed version number, a `Target`, or the files of a draft (not yet deployed).
    Cases refused only because a waiting timer changed are counted apart: the owner can still
    move them by choosing to keep or recompute their timers.
    """
    if isinstance(engine_or_conn, Connection):
        return _impact(engine_or_conn, definitions.SpecCache(16), process_id, to)
    with engine_or_conn.db.engine.connect() as conn:
        return _impact(conn, engine_or_conn.specs, process_id, to)


def _impact(conn: Connection, specs: Any, process_id: str, to: Any) -> dict[str, Any]:
    if isinstance(to, Target):
        target = to
    elif isinstance(to, Mapping):
        target = target_from_files(to, process_id)
    else:
        target = target_from_version(conn, process_id, to, specs)
    counts = conn.execute(select(process_versions.c.version, process_versions.c.id, func.count(instances.c.id))
                          .join(process_versions, process_versions.c.id == instances.c.process_version_id)
                          .where(instances.c.process_id == process_id, instances.c.status.in_(OPEN_STATUSES))
                          .group_by(process_versions.c.version, process_versions.c.id)
                          .order_by(process_versions.c.version)).all()
    out = []
    for version, vid, running in counts:
        row: dict[str, Any] = {"version": version, "running": running}
        if version == target.version:
            row.update(movable=None, timers_only=None, note="already on this version")
        else:
            loaded = specs.get(conn, vid)
            plan = Plan(Target(process_id, loaded.spec, loaded.subprocess_specs, version, vid), target)
            movable = timers_only = 0
            for r in _candidates(conn, vid, None):
                c = check_state(plan, r.state, status=r.status, case_id=r.case_id, reference=r.reference,
                                instance_id=r.id, version=r.version)
                movable += c.can_move
                timers_only += c.only_timers
            row.update(movable=movable, timers_only=timers_only)
        out.append(row)
    return {"process_id": process_id, "target": target.label, "versions": out,
            "running": sum(r["running"] for r in out),
            "movable": sum(r["movable"] or 0 for r in out)}


# ---------------------------------------------------------------------- moving
@dataclass
class CaseResult:
    case_id: int
    case_reference: str
    instance_id: int | None
    moved: bool
    reasons: list[str] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "case_reference": self.case_reference, "instance_id": self.instance_id,
                "moved": self.moved, "reasons": self.reasons, "timers": self.timers}


@dataclass
class MigrationResult:
    process_id: str
    from_version: int
    to_version: int
    cases: list[CaseResult]

    @property
    def moved(self) -> list[CaseResult]:
        return [c for c in self.cases if c.moved]

    @property
    def refused(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.moved]

    def to_dict(self) -> dict[str, Any]:
        return {"process_id": self.process_id, "from_version": self.from_version, "to_version": self.to_version,
                "moved": len(self.moved), "refused": len(self.refused), "cases": [c.to_dict() for c in self.cases]}


def migrate(engine: Any, process_id: str, from_version: int, to_version: int, *, actor: str, reason: str,
            mapping: Mapping[str, str] | None = None, case_ids: Iterable[Any] | None = None,
            expected_versions: Mapping[Any, Any] | None = None, recompute_timers: bool = False,
            keep_timers: bool = False, batch: int = 100) -> MigrationResult:
    """Move the movable open instances (of the chosen cases), each in its own transaction.

    With `expected_versions` (instance id -> version, from the dry run) an instance that changed
    since, or was not in the dry run, is refused and left as it is. Bad input (unknown process,
    version or case, same versions, a mapping to a missing element, no reason) raises before
    anything changes.
    """
    if not isinstance(actor, str) or not actor.strip():
        raise ValidationError("say who is moving the cases (actor)")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("give a reason for moving the cases; it is kept in each case's history",
                              errors=[{"field": "reason", "message": "Enter why the cases are being moved"}])
    policy = _timer_policy(keep_timers, recompute_timers)
    expected = _expected(expected_versions)
    with engine.db.engine.connect() as conn:
        engine.db.require_initialised(conn)
        source, target = _versions(engine, conn, process_id, from_version, to_version)
        plan = Plan(source, target, mapping)
        chosen = _case_ids(conn, case_ids)
    results: list[CaseResult] = []
    seen: set[int] = set()
    last = 0
    while True:  # a page of candidates at a time; each case is its own transaction
        with engine.db.engine.connect() as conn:
            q = (select(instances.c.id, instances.c.case_id, cases.c.reference)
                 .join(cases, cases.c.id == instances.c.case_id)
                 .where(instances.c.process_version_id == source.version_id,
                        instances.c.status.in_(OPEN_STATUSES), instances.c.id > last))
            if chosen is not None:
                q = q.where(instances.c.case_id.in_(list(chosen)))
            page = conn.execute(q.order_by(instances.c.id).limit(max(1, batch))).all()
        for r in page:
            seen.add(r.case_id)
            results.append(_move_one(engine, plan, r.id, r.case_id, r.reference, actor=actor, reason=reason,
                                     timers=policy, expected=expected))
        if len(page) < max(1, batch):
            break
        last = page[-1].id
    if chosen is not None:
        with engine.db.engine.connect() as conn:
            for c in _absent(conn, process_id, source, chosen, seen):
                results.append(CaseResult(c.case_id, c.case_reference, None, False, c.reasons))
    result = MigrationResult(process_id, source.version or 0, target.version or 0, results)
    _audit(engine, result, plan, actor=actor, reason=reason, timers=policy)
    return result


def _expected(expected_versions: Mapping[Any, Any] | None) -> dict[int, int] | None:
    if expected_versions is None:
        return None
    try:
        return {int(k): int(v) for k, v in expected_versions.items()}
    except (TypeError, ValueError):
        raise ValidationError("the dry run's versions must pair instance ids with version numbers") from None


def _move_one(engine: Any, plan: Plan, instance_id: int, case_id: int, reference: str, *, actor: str,
              reason: str, timers: str, expected: dict[int, int] | None) -> CaseResult:
    try:
        return migrate_instance(engine, plan, instance_id, actor=actor, reason=reason, timers=timers,
                                expected_version=expected.get(instance_id, -1) if expected is not None else None)
    except CarepathError as exc:
        return CaseResult(case_id, reference, instance_id, False, [exc.message])
    except Exception as exc:  # noqa: BLE001 - one case failing must not stop the others; it is reported
        # the library's own words (a Python repr, "KeyError: <…BpmnStartTask object at 0x7f…>") mean nothing to
        # the owner and may quote case data: the log gets the kind of error and where, the owner a sentence
        logging.getLogger("carepath.migration").error("moving instance %s failed: %s", instance_id,
                                                      type(exc).__name__)
        return CaseResult(case_id, reference, instance_id, False,
                          [f"it could not be moved because of an unexpected error in the engine ({type(exc).__name__}"
                           f", logged for process instance {instance_id}); nothing was changed. Report it to the "
                           "administrators with the case reference"])


def migrate_instance(engine: Any, plan: Plan, instance_id: int, *, actor: str, reason: str,
                     timers: str = "refuse", expected_version: int | None = None) -> CaseResult:
    """Move one instance in one transaction (the API for replay, and the unit `migrate` repeats).

    A refusal is returned (moved=False, with reasons) and nothing is written; a stale
    `expected_version` (-1: the instance was not in the dry run) is refused the same way.
    """
    from .runtime import _derived_events, _snapshot, _Writes

    if timers not in _TIMER_POLICIES:
        raise ValidationError(f"timers must be one of {', '.join(_TIMER_POLICIES)}")
    with engine._tx() as conn:
        row = conn.execute(select(instances.c.version, instances.c.process_version_id, instances.c.status,
                                  instances.c.state, instances.c.case_id, cases.c.reference)
                           .join(cases, cases.c.id == instances.c.case_id)
                           .where(instances.c.id == instance_id)).first()
        if row is None:
            raise NotFoundError(f"no process instance {instance_id}", instance=instance_id)
        ref = row.reference
        refused = CaseResult(row.case_id, ref, instance_id, False)
        if expected_version is not None and row.version != expected_version:
            refused.reasons.append(
                f"case {ref} was not in the dry run (it reached this version after it); run the dry run again"
                if expected_version == -1 else
                f"case {ref} changed since the dry run: it was at change {expected_version} and is now at change "
                f"{row.version} (a task was completed, a timer fired or it was moved); run the dry run again. "
                "It was left as it is")
            return refused
        if row.process_version_id != plan.source.version_id:
            refused.reasons.append(f"case {ref} is no longer on {plan.source.label}")
            return refused
        check = check_state(plan, row.state, status=row.status, case_id=row.case_id, reference=ref,
                            instance_id=instance_id, version=row.version, timers=timers)
        if not check.can_move:
            refused.reasons.extend(check.reasons)
            return refused
        full, wf = engine._load(conn, instance_id)
        if wf.spec is not plan.source.spec:  # built again since the plan was made (a decision deployed meanwhile,
            # or the spec cache let it go): the alignment is by spec object, so compare with this build
            plan = Plan(_loaded_target(conn, engine.specs, row.process_version_id), plan.target, plan.mapping)
            if wf.spec is not plan.source.spec:
                raise StateError(f"case {ref} could not be moved: its version could not be loaded consistently; "
                                 "nothing was changed, try again", case=row.case_id)
        now = engine.now(conn)
        p = engine._pending(now, full, wf)
        starts = _timer_starts(conn, row.case_id)
        _rewrite(engine, plan, p, timers, starts)
        p.after = _snapshot(wf)
        stray = sorted({t.task_spec.name for t in wf.tasks.values()
                        if plan.target.spec.task_specs.get(t.task_spec.name) is not t.task_spec})
        if stray:
            raise StateError(f"case {ref} could not be moved: elements {', '.join(stray)} have no place in "
                             f"{plan.target.label}; nothing was changed", case=row.case_id)
        before_due = {t["task_id"]: t for t in p.before["timers"].values()}
        after_due = p.after["timers"]
        timer_changes = [{"task_id": tid, "element_id": t["element_id"],
                          "to_element_id": after_due.get(tid, {}).get("element_id"),
                          "due_before": t["due_at"], "due_after": after_due.get(tid, {}).get("due_at")}
                         for tid, t in sorted(before_due.items(), key=lambda kv: (kv[1]["element_id"], kv[0]))]
        current = sorted({(c["element_id"], c["to"]) for c in check.current})
        migrated = Event("instance.migrated", {
            "process_id": plan.source.process_id, "from_version": plan.source.version,
            "to_version": plan.target.version, "from_process_version_id": plan.source.version_id,
            "to_process_version_id": plan.target.version_id, "mapping": dict(sorted(plan.mapping.items())),
            "elements": [{"from": a, "to": b} for a, b in current], "timers": timers,
            "timer_due_dates": timer_changes, "reason": reason.strip()}, instance_id=instance_id, actor=actor)
        evs = [migrated] + _derived_events(p.before, p.after, instance_id)
        res = conn.execute(_MOVE_INSTANCE, {"iid": instance_id, "expected": row.version,
                                            "from_vid": plan.source.version_id, "to_vid": plan.target.version_id,
                                            "state": engine.codec.dump(wf), "now": now})
        if res.rowcount != 1:
            raise ConflictError(f"case {ref} changed while it was being moved; it was left as it is",
                                case=row.case_id)
        w = _Writes(getattr(engine.registry, "document_listeners", ()))
        _retarget_tasks(conn, now, p, w, engine)
        engine._project_timers(p, p.after["timer_rows"], full=True, w=w)
        w.events.append((case_chain(row.case_id), row.case_id, evs))
        w.flush(conn, now, lock=engine.db.is_postgres)
        return CaseResult(row.case_id, ref, instance_id, True, [],
                          [{k: t[k] for k in ("element_id", "to_element_id", "due_before", "due_after")}
                           for t in timer_changes])


def replay_migration(engine: Any, instance_id: int, data: Mapping[str, Any], *, actor: str) -> None:
    """Apply a recorded `instance.migrated` event again (engine/replay.py): same versions, mapping and
    timer choice; a move the recorded state no longer allows is an error naming why."""
    with engine.db.engine.connect() as conn:
        source, target = (_loaded_target(conn, engine.specs, data[k])
                          for k in ("from_process_version_id", "to_process_version_id"))
    plan = Plan(source, target, data.get("mapping") or {})
    result = migrate_instance(engine, plan, instance_id, actor=actor, reason=data.get("reason", ""),
                              timers=data.get("timers", "refuse"))
    if not result.moved:
        raise StateError("the recorded move to another version cannot be made again: " + "; ".join(result.reasons),
                         instance=instance_id)


def _loaded_target(conn: Connection, specs: Any, version_id: int) -> Target:
    loaded = specs.get(conn, version_id)
    return Target(loaded.process_id, loaded.spec, loaded.subprocess_specs, loaded.version, loaded.id)


def _timer_starts(conn: Connection, case_id: int) -> dict[str, datetime]:
    """When each timer of the case last started (its `timer.set` event): the base for recomputing it."""
    out: dict[str, datetime] = {}
    for at, data in conn.execute(select(events.c.at, events.c.data).where(
            events.c.chain == case_chain(case_id), events.c.type == "timer.set").order_by(events.c.seq)):
        tid = json.loads(data).get("task_id")
        if tid:
            out[tid] = datetime.fromisoformat(at)
    return out


def _rewrite(engine: Any, plan: Plan, p: Any, timers: str, starts: dict[str, datetime]) -> None:
    """Point the workflow at the target version with SpiffWorkflow's diff and migrate functions.

    READY tasks are reset (their predicted paths worked out again from the target); WAITING ones
    keep their state and internal data — a timer keeps its due date — and only their predicted
    children are worked out again. Timers are recomputed only when the owner asked.
    """
    wf = p.workflow
    diff = WorkflowDiff(wf, plan.spec_diff)
    waiting = [t for t in wf.get_tasks(state=TaskState.WAITING, skip_subprocesses=True)]
    old_timers = {t.id: _timer(t.task_spec) for t in waiting}
    migrate_workflow(diff, wf, plan.target.spec, reset_mask=TaskState.READY)
    wf.subprocess_specs = plan.target.subprocess_specs
    for task in waiting:
        if task.id not in wf.tasks:
            continue
        task._drop_children(force=True)  # what reset_branch does, without resetting the task itself
        task.task_spec._predict_hook(task)
        task.task_spec._predict(task, mask=TaskState.PREDICTED_MASK | TaskState.FUTURE)
        if timers == "recompute" and old_timers.get(task.id) is not None \
                and old_timers[task.id] != _timer(task.task_spec):
            _recompute(engine, p, task, starts.get(str(task.id)))


def _recompute(engine: Any, p: Any, task: Any, started: datetime | None) -> None:
    """Work a waiting timer's due date out again from its new definition, as if it started when it did."""
    scope = engine._scope(started or p.scope.now, p.case_id, p.instance_id, p.process_id, p.scope.case_data,
                          p.scope.case_reference)
    token = engine.script_engine.enter(scope)
    try:
        task.internal_data.pop("event_value", None)
        task.internal_data.pop("event_fired", None)
        task.task_spec.event_definition.has_fired(task)
    finally:
        engine.script_engine.leave(token)
    task._set_state(TaskState.WAITING)


def _retarget_tasks(conn: Connection, now: datetime, p: Any, w: Any, engine: Any) -> None:
    """Open task rows follow the target: same row (assignee, draft kept), new element, form, team, due date."""
    before = {t["id"] for t in p.before["rows"]}
    keep = [t for t in p.after["rows"] if t["id"] in before]
    if keep:
        conn.execute(_RETARGET_TASK, [{"tid": t["id"], "element": t["element_id"], "tname": t["name"],
                                       "tform": t["form"], "tteam": t["team"],
                                       "groups": json.dumps(t["candidate_groups"]), "tlane": t["lane"],
                                       "due": t["due_at"], "follow_up": t.get("follow_up_at"),
                                       "cusers": json.dumps(t["candidate_users"]) if t.get("candidate_users")
                                       else None} for t in keep])
    engine._project_tasks(now, p, p.after["rows"], w)
    w.task_due.clear()  # already written above


def _audit(engine: Any, result: MigrationResult, plan: Plan, *, actor: str, reason: str, timers: str) -> None:
    """One event in the system chain for the whole run: who moved which cases, and why."""
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        history.append(conn, history.SYSTEM_CHAIN, None, now, [Event("instances.migrated", {
            "process_id": result.process_id, "from_version": result.from_version, "to_version": result.to_version,
            "mapping": dict(sorted(plan.mapping.items())), "timers": timers, "reason": reason.strip(),
            "moved": [c.case_reference for c in result.moved],
            "refused": [c.case_reference for c in result.refused]}, actor=actor)], lock=engine.db.is_postgres)
