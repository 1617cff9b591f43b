"""Reading a workflow: what a step sees in SpiffWorkflow's task tree, without the database.

Pure functions over a `BpmnWorkflow` (and the snapshots they make): the ready user tasks and waiting
timers as history events and as task/timer rows (`_snapshot`), the timers due or fired in a step,
the events a step derives by comparing two snapshots, an instance's final data and the incident a
failure opens. The step machinery (engine/step.py) calls them around every step; suspension,
instance migration and messages use them too. Moved out of engine/runtime.py, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from . import history
from .bpmn import timer_due
from .bpmn_parser import ASSIGNMENT_KEY
from .bpmn_timers import parse_date, waiting_timer
from .history import Event


def _task_name(task: Any) -> str:
    spec = task.task_spec
    return getattr(spec, "bpmn_name", None) or getattr(spec, "description", None) or spec.bpmn_id or spec.name


def _extensions(task: Any) -> dict[str, Any]:
    return getattr(task.task_spec, "extensions", None) or {}


def _all_tasks(wf: BpmnWorkflow) -> Iterator[Any]:
    """Every task of the workflow and its subprocesses, in creation order (the same on restore and replay).

    Straight from the task dictionaries: SpiffWorkflow's tree iterator costs more than the step's SQL.
    """
    yield from wf.tasks.values()
    for sub in wf.subprocesses.values():
        yield from sub.tasks.values()


def _snapshot(wf: BpmnWorkflow) -> dict[str, Any]:
    """One pass over the task tree: ready user tasks and waiting timers, as events and as rows."""
    ready: list[Any] = []
    waiting: list[tuple[Any, datetime]] = []
    fired: list[tuple[Any, datetime]] = []
    timer_specs: dict[Any, Any] = {}
    for t in _all_tasks(wf):
        if t.state == TaskState.READY:
            if t.task_spec.manual:
                ready.append(t)
        elif t.state == TaskState.COMPLETED:
            due = _fired_boundary_due(t)
            if due is not None:
                fired.append((t, due))
        else:
            found = waiting_timer(t)  # a timer event, or the first due of an event-based gateway's timers
            if found is not None:
                waiting.append((t, found[1]))
                timer_specs[t.id] = found[0]
    # a user task's due date: the earliest timer on its boundary (deadline or escalation); once
    # every one has fired (a non-interrupting escalation), the last that fired: it stays overdue
    due_by_parent: dict[Any, datetime] = {}
    for t, due in waiting:
        if t.parent is not None:
            key = t.parent.id
            due_by_parent[key] = min(due, due_by_parent.get(key, due))
    passed: dict[Any, datetime] = {}
    for t, due in fired:
        passed[t.parent.id] = max(due, passed.get(t.parent.id, due))
    for key, due in passed.items():
        due_by_parent.setdefault(key, due)
    rows, tasks_ = [], {}
    for task in ready:
        ext = _extensions(task)
        lane = getattr(task.task_spec, "lane", None)
        assigned = task._get_internal_data(ASSIGNMENT_KEY) or {}  # the diagram's assignee, groups, due date
        groups = list(assigned.get("candidate_groups") or ext.get("candidate_groups") or ([lane] if lane else []))
        tid, element, name = str(task.id), task.task_spec.bpmn_id, _task_name(task)
        tasks_[tid] = {"task_id": tid, "element_id": element, "name": name}
        if assigned.get("assignee"):  # the diagram gave it to someone: the history says so
            tasks_[tid]["assignee"] = assigned["assignee"]
        rows.append({"id": tid, "element_id": element, "name": name, "form": ext.get("form"),
                     "team": groups[0] if groups else None, "candidate_groups": groups, "lane": lane,
                     "assignee": assigned.get("assignee"), "candidate_users": assigned.get("candidate_users"),
                     "follow_up_at": parse_date(assigned["follow_up_at"]) if assigned.get("follow_up_at") else None,
                     "due_at": parse_date(assigned["due_at"]) if assigned.get("due_at") else
                     due_by_parent.get(task.parent.id) if task.parent is not None else None})
    timers_, timer_rows = {}, []
    for t, due in waiting:
        tid, spec = str(t.id), timer_specs[t.id]
        name = getattr(spec, "bpmn_name", None) or spec.bpmn_id if spec is not t.task_spec else _task_name(t)
        timers_[tid] = {"task_id": tid, "element_id": spec.bpmn_id, "due_at": history.iso(due)}
        timer_rows.append({"task_id": tid, "element_id": spec.bpmn_id, "name": name,
                           "attached_to": _attached_to(t), "due_at": due})
    return {"tasks": tasks_, "timers": timers_, "rows": rows, "timer_rows": timer_rows}


def _fired_boundary_due(task: Any) -> datetime | None:
    """When a boundary timer that has fired (and left its task running) fell due; else None."""
    parent = task.parent
    if parent is None or "BoundaryEventSplit" not in type(parent.task_spec).__name__:
        return None
    if not isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
        return None
    value = task._get_internal_data("event_value")
    if value is None or isinstance(value, dict):  # not started, or a cycle: no single due date
        return None
    return parse_date(str(value))


def _attached_to(task: Any) -> str | None:
    parent = task.parent
    if parent is None or "BoundaryEventSplit" not in type(parent.task_spec).__name__:
        return None
    main = [c for c in parent.children if c is not task and timer_due(c) is None
            and "Boundary" not in type(c.task_spec).__name__]
    return main[0].task_spec.bpmn_id if main else None



def _due_timers(before: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The timers of a snapshot that are due by `now`, in due order."""
    cutoff = history.iso(now)
    return sorted((t for t in before["timers"].values() if t["due_at"] <= cutoff),
                  key=lambda t: (t["due_at"], t["element_id"]))


def _fired_timers(before: dict[str, Any], wf: BpmnWorkflow, now: datetime) -> list[dict[str, Any]]:
    """The timers that were due at the start of the step and fired in it (in due order).

    Any step fires what is due — not only the timer job's — so a completion that comes after
    an unfired deadline records the deadline first. A timer whose task was finished first
    (its boundary cancelled) did not fire.
    """
    due = _due_timers(before, now)
    if not due:
        return []
    live = {str(t.id): t for t in _all_tasks(wf)}
    fired = []
    for t in due:
        task = live.get(t["task_id"])
        if task is None or task.state == TaskState.CANCELLED:
            continue
        if task.state == TaskState.WAITING and history.iso(timer_due(task) or now) == t["due_at"]:
            continue  # still waiting for the same moment: it did not fire
        fired.append({"task_id": t["task_id"], "element_id": t["element_id"], "due_at": t["due_at"]})
    return fired


def _derived_events(before: dict[str, Any], after: dict[str, Any], instance_id: int) -> list[Event]:
    evs: list[Event] = []
    for tid, t in before["tasks"].items():
        if tid not in after["tasks"]:
            evs.append(Event("task.left", t, instance_id=instance_id))
    for tid, t in after["tasks"].items():
        if tid not in before["tasks"]:
            evs.append(Event("task.ready", t, instance_id=instance_id))
    for tid, t in before["timers"].items():
        if tid not in after["timers"]:
            evs.append(Event("timer.cleared", t, instance_id=instance_id))
    for tid, t in after["timers"].items():
        if before["timers"].get(tid, {}).get("due_at") != t["due_at"]:
            evs.append(Event("timer.set", t, instance_id=instance_id))
    return evs


def _final_data(wf: BpmnWorkflow) -> dict[str, Any]:
    data: dict[str, Any] = {}
    last = wf.last_task
    if last is not None:
        data.update(last.data)
    data.update(wf.data)
    return data


def _failure_from(wf: BpmnWorkflow, exc: Exception) -> dict[str, Any]:
    """The incident of a step that failed with `exc`: placed on the task that failed, and its element.

    The failed task is looked for among every task of the workflow (`_all_tasks`), not with the tree's walk for
    ERROR tasks: a walk for finished states does not look under a task that is not finished itself, so it missed
    a task that failed under a cycle timer's start event (still waiting for its next cycle) or inside a
    multi-instance activity (STARTED), and the incident had no element ("at None", findings 13 item 9). Without
    a failed task, the element (and task) the error names are used."""
    context = getattr(exc, "context", None)  # a CarepathError's: where it happened
    named = context.get("element") if isinstance(context, dict) else None
    library_task = getattr(exc, "task", None)  # SpiffWorkflow's WorkflowTaskException knows its task
    if named is None and library_task is not None:
        named = library_task.task_spec.bpmn_id
    failed = [t for t in _all_tasks(wf) if t.state == TaskState.ERROR]
    task = next((t for t in failed if t.task_spec.bpmn_id == named), failed[0] if failed else library_task)
    element = task.task_spec.bpmn_id if task is not None else None
    return {"handler": None, "element_id": element or named,
            "task_id": str(task.id) if task is not None else None, "inputs": {},
            "message": f"{type(exc).__name__}: {exc}"}


def _missing_output_item(task: Any, data: dict[str, Any]) -> str | None:
    """The output item a multi-instance task's instance must give and that neither its data nor `data` has.

    A multi-instance activity with an output collection and an output item collects each instance's output
    item when the instance completes (SpiffWorkflow's `merge_child`); an instance completed without it fails
    there, inside the step. Asked before the step, so the completion is refused and nothing is saved."""
    parent = task.parent
    spec = parent.task_spec if parent is not None else None
    if not isinstance(spec, MultiInstanceTask) or spec.data_output is None or spec.output_item is None:
        return None
    name = spec.output_item.bpmn_id
    return None if name in data or spec.output_item.exists(task) else name
