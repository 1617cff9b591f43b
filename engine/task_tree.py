"""The workflow and task classes the engine runs: SpiffWorkflow's, with a cheaper walk of the task tree and
cheaper tasks (`CarepathTask`, below: no log record built when nothing would write it, ids without a system call).

SpiffWorkflow walks a workflow's whole task tree to find its ready tasks (`BpmnWorkflow._do_engine_steps`, in a
loop until nothing more runs) and again after every task it completes, to update the waiting ones
(`Workflow.update_waiting_tasks`). Its `TaskIterator` visits each task through several method calls (a filter
object, depth bookkeeping by walking parents, `list.pop(0)`); in a simulation of the operating model that was about
an eighth of the processor time (a sampling profile, docs/performance.md). `CarepathWorkflow` and
`CarepathSubWorkflow` do the same walks with a plain stack, skip a walk when no task of the workflow is in the
state it looks for (most walks for waiting tasks), and return the same tasks in the same order (depth first,
pre-order; a task's children read when the walk reaches it, so a task run while the walk is under way changes what
comes next exactly as in the library); any other use of the iterator (breadth first) goes to the library's. Nothing
is patched: the library's classes are unchanged, the engine builds and restores these subclasses, and they are
stored under the library's own type names, so saved states read the same either way (`engine/state.py`,
`engine/bpmn.py` `make_serializer`).

The one deliberate difference: the walk stops descending at a depth of 1000 counted from where it starts, as
the library intends; the library's own count can drift where a walk enters a subprocess, which only shows in
trees that deep. Where a walk stops with children below, a running step is told (engine/step_limits.py): work
past that depth would never be found again, so the step ends in an incident instead of a silent stall.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from copy import copy as _copy
from typing import Any
from uuid import UUID, SafeUUID

from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.util.task import BpmnTaskFilter, BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskFilter, TaskState

from .clock import SystemClock
from .errors import StateError
from .step_limits import LIBRARY_MAX_DEPTH, current_counter

_FINISHED = TaskState.FINISHED_MASK
_MAX_DEPTH = LIBRARY_MAX_DEPTH  # TaskIterator's default


def _min_state(wanted: int) -> int:
    """As TaskIterator: predicted tasks only follow predicted ones, definite ones follow finished or definite."""
    if wanted & TaskState.PREDICTED_MASK:
        return TaskState.MAYBE
    if wanted & TaskState.DEFINITE_MASK:
        return TaskState.FUTURE
    return TaskState.COMPLETED


def _plain_filter(flt: Any) -> bool:
    """Whether `flt` tests only the state and `manual`, which the walk checks inline."""
    return (type(flt) in (TaskFilter, BpmnTaskFilter) and not flt.updated_ts and flt.spec_name is None
            and flt.spec_class is None and getattr(flt, "catches_event", None) is None
            and getattr(flt, "lane", None) is None)


def _any_in_state(workflow: Any, wanted: int, subprocesses: dict[Any, Any] | None) -> bool:
    """Whether any task of `workflow` (and of every subprocess, when the walk enters them) is in `wanted`:
    a pass over the task dictionaries, far cheaper than the walk (most walks for waiting tasks find none)."""
    if any(t._state & wanted for t in workflow.tasks.values()):
        return True
    return bool(subprocesses) and any(t._state & wanted for sub in subprocesses.values()  # type: ignore[union-attr]
                                      for t in sub.tasks.values())


def walk(start: Any, flt: Any, *, skip_subprocesses: bool = False, end_at_spec: str | None = None,
         max_depth: int = _MAX_DEPTH, into_subprocesses: bool = True) -> Iterator[Any]:
    """The tasks under `start` (itself first) that `flt` matches, in BpmnTaskIterator's depth-first order.

    `into_subprocesses=False` is the plain TaskIterator: a subprocess's tasks are not visited."""
    wanted, manual = flt.state, flt.manual
    inline = _plain_filter(flt)
    subprocesses = start.workflow.top_workflow.subprocesses if into_subprocesses else None
    if inline and not _any_in_state(start.workflow, wanted, subprocesses):
        return  # no task anywhere the walk could reach is in the state: it would visit them all to find none
    matches = flt.matches
    min_state = _min_state(wanted)
    stack: list[tuple[Any, int]] = [(start, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        task, depth = pop()
        state = task._state
        sub = subprocesses.get(task.id) if subprocesses else None
        if ((task._children or sub is not None) and (state >= min_state or sub is not None)
                and task.task_spec.name != end_at_spec):
            if depth < max_depth:
                depth += 1
                child_of = task.workflow.tasks.get  # the library's `task.children`, read straight onto the stack
                for child_id in reversed(task._children):
                    push((child_of(child_id), depth))
                # as the library: a finished subprocess is not searched for unfinished tasks (its tree comes first)
                if not (sub is None or skip_subprocesses or (state >= _FINISHED and wanted <= _FINISHED)):
                    push((sub.task_tree, depth))
            elif task._children:  # the library looks no deeper: a running step is told (engine/step_limits.py)
                counter = current_counter()
                if counter is not None:
                    counter.cut[task.id] = task
        if inline:
            if state & wanted and (manual is None or task.task_spec.manual == manual):
                yield task
        elif matches(task):
            yield task


_spiff_log = logging.getLogger("spiff.task")  # the library's own loggers (SpiffWorkflow/task.py, workflow.py)
_workflow_log = logging.getLogger("spiff.workflow")
_INFO, _DEBUG = logging.INFO, logging.DEBUG
_ID_BLOCK = 16 * 4096
_WALL = SystemClock()


class _RandomIds:
    """Version 4 UUIDs (122 random bits, as `uuid.uuid4`) from the same source, the operating system's random
    bytes, read 64 KiB at a time rather than 16 bytes a call: `uuid4`'s read is a system call per task, and
    SpiffWorkflow makes a task for every element it predicts. The lock-free cursor is safe under the GIL only
    for one thread at a time, so each thread has its own buffer (a threading.local)."""

    def __init__(self) -> None:
        self._local = threading.local()
        # a forked process must not go on with its parent's buffer (the same ids in both): it reads its own
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._local = threading.local()

    def __call__(self) -> UUID:
        local = self._local
        at = getattr(local, "at", _ID_BLOCK)
        if at >= _ID_BLOCK:
            local.buf, at = os.urandom(_ID_BLOCK), 0
        local.at = at + 16
        # what UUID(bytes=..., version=4) makes, without its checks of arguments (half its cost): the version and
        # variant bits set on the 128 random bits, the object made as the uuid module makes it
        made = _new(UUID)
        _set(made, "int", (int.from_bytes(local.buf[at:at + 16], "big") & _V4_CLEAR) | _V4_SET)
        _set(made, "is_safe", SafeUUID.unknown)
        return made


_new, _set = object.__new__, object.__setattr__
_MUTABLE = (dict, list, set)
_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))  # the variant's and the version's bits
_V4_SET = (0x8000 << 48) | (4 << 76)  # RFC 4122 variant, version 4


new_task_id = _RandomIds()


def _moment(task: Any) -> float:
    """When a task changed state (the library's `last_state_change`, which engine/timeline.py orders a path's
    finished steps by), from the engine's clock: the running step's instant, or the clock module's wall clock
    when no step is running (a workflow built outside the engine). The library read the wall clock itself."""
    clock = getattr(task.workflow.script_engine, "clock", None)
    if clock is not None:
        try:
            return clock.now().timestamp()
        except StateError:  # no step is running
            pass
    return _WALL.now().timestamp()


class CarepathTask(Task):
    """SpiffWorkflow's task, with three costs taken out of the steps (each a few per cent of a simulation's
    processor time, docs/performance.md) and nothing else changed:

    * a change of state builds the library's log record (a state name looked up through a dictionary built
      each time, and a dictionary of extras) only when the `spiff.task` logger would write it;
    * a new task's id is a version 4 UUID from `new_task_id`, not a system call each;
    * a task with no data of its own yet takes its parent's as the library's deep merge would, without the merge
      (a shallow copy of each dict, list or set value, the others as they are).

    Its children are CarepathTasks; stored states read and write as the library's `Task` (engine/bpmn.py)."""

    def _set_state(self, value: int) -> None:
        if value != self._state:
            now = _moment(self)
            if _spiff_log.isEnabledFor(_INFO):
                elapsed = now - self.last_state_change
                _spiff_log.info(f"State changed to {TaskState.get_name(value)}",
                                extra=self.collect_log_extras({"elapsed": elapsed}))
            self.last_state_change = now
            self._state = value
        elif _spiff_log.isEnabledFor(_DEBUG):
            _spiff_log.debug(f"State set to {TaskState.get_name(value)}", extra=self.collect_log_extras())

    def _inherit_data(self) -> None:
        # the library's DeepMerge.merge(self.data, parent's data); a task that holds no data of its own yet (most)
        # takes each of its parent's values as the merge would (a shallow copy of a dict, list or set), without
        # comparing each
        if self.data:
            super()._inherit_data()
            return
        self.data.update({k: _copy(v) if isinstance(v, _MUTABLE) else v for k, v in self.parent.data.items()})

    def run(self) -> bool | None:
        counter = current_counter()
        if counter is not None:
            try:
                counter.ran(self)
            except Exception:
                self.error()  # failed here, as a failing script: `retry` runs it again
                raise
        return super().run()

    def _add_child(self, task_spec: Any, state: int = TaskState.MAYBE) -> Task:
        counter = current_counter()
        if counter is not None:
            counter.made_one(self, task_spec)
        if self._state & TaskState.PREDICTED_MASK and state & TaskState.PREDICTED_MASK == 0:
            raise WorkflowException("Attempt to add non-predicted child to predicted task", task_spec=self.task_spec)
        task = CarepathTask(self.workflow, task_spec, self, state=state, id=new_task_id())
        task.thread_id = self.thread_id
        if state == TaskState.READY:
            task._ready()
        return task


class _FastWalks:
    """The two walks, shared by the top workflow and its subprocesses, and a task tree of CarepathTasks."""

    def __init__(self, *args: Any, deserializing: bool = False, **kwargs: Any) -> None:
        # Workflow.__init__ makes its root with the library's Task, whose children would all be Tasks: it is
        # told it is deserializing, and the root is made here as it would have made it
        super().__init__(*args, deserializing=True, **kwargs)  # type: ignore[call-arg]
        if not deserializing:
            root = CarepathTask(self, self.spec.start, state=TaskState.FUTURE,  # type: ignore[attr-defined]
                                id=new_task_id())
            self.task_tree = root
            root.task_spec._predict(root, mask=TaskState.NOT_FINISHED_MASK)
            if _workflow_log.isEnabledFor(_INFO):
                _workflow_log.info("Initialized workflow", extra=self.collect_log_extras())  # type: ignore[attr-defined]
            root._ready()

    def get_tasks_iterator(self, first_task: Any = None, **kwargs: Any) -> Any:
        if not kwargs.get("depth_first", True):
            return BpmnTaskIterator(first_task or self.task_tree, **kwargs)  # type: ignore[attr-defined]
        kwargs.pop("depth_first", None)
        skip = kwargs.pop("skip_subprocesses", False)
        end_at = kwargs.pop("end_at_spec", None)
        max_depth = kwargs.pop("max_depth", _MAX_DEPTH)
        flt = kwargs.pop("task_filter", None) or BpmnTaskFilter(**kwargs)
        return walk(first_task or self.task_tree, flt, skip_subprocesses=skip,  # type: ignore[attr-defined]
                    end_at_spec=end_at, max_depth=max_depth)

    def update_waiting_tasks(self) -> None:
        # Workflow.update_waiting_tasks: a plain TaskIterator over this workflow's own tree
        for task in walk(self.task_tree, TaskFilter(state=TaskState.WAITING),  # type: ignore[attr-defined]
                         into_subprocesses=False):
            task.task_spec._update(task)


class CarepathSubWorkflow(_FastWalks, BpmnSubWorkflow):
    """A subprocess (call activity, embedded subprocess) of a CarepathWorkflow."""


class CarepathWorkflow(_FastWalks, BpmnWorkflow):
    """The workflow the engine starts and restores."""

    def create_subprocess(self, my_task: Any, spec_name: str) -> CarepathSubWorkflow:
        counter = current_counter()
        if counter is not None:
            counter.nested(my_task, getattr(my_task.workflow, "depth", 0) + 1)
        subprocess = CarepathSubWorkflow(self.subprocess_specs[spec_name], parent_task_id=my_task.id,
                                         top_workflow=self)
        self.subprocesses[my_task.id] = subprocess
        return subprocess
