"""What one step may do before it must wait: a diagram cannot keep a step running for ever.

The script budget (engine/budget.py) bounds each script and expression; these limits bound the step around
them, which a diagram can also keep busy with nothing but cheap elements:

* **tasks run** in one step (`CAREPATH_STEP_MAX_TASKS`, default 5,000): a multi-instance activity over a huge
  collection, or a fan-out of parallel paths, each cheap. SpiffWorkflow's cost grows faster than the count
  (each instance that completes looks at its siblings), so 10,000 script instances took minutes, holding the
  database's write lock the while;
* **tasks made** in one step (the same setting): a multi-instance activity with a cardinality of a million
  makes its million tasks before running any;
* **nesting** (`CAREPATH_STEP_MAX_NESTING`, default 50): a call activity that calls its own process (or a
  chain that comes back to it) without a way out made subprocesses for ever — the step never returned; and a
  `start_process` service task that starts its own process started hundreds of instances in one step until
  Python's recursion limit stopped it somewhere;
* **depth**: SpiffWorkflow does not look deeper than 1,000 tasks down a workflow's tree (its walks' `max_depth`),
  and every pass round a loop makes the tree deeper. A loop of script tasks that never waits therefore stopped
  silently after about 500 passes, leaving the case "waiting" with no task, no timer and no incident; a loop that
  waits on a person did the same after some hundreds of rounds. The walk (engine/task_tree.py) notes where it
  stops, and a step whose unfinished work lies past that depth is an incident, not a silent stall.

Exceeding any of them raises `StepLimitExceeded`, which the step turns into an incident at the element
(`carepath incidents`); nothing the step did is kept but the incident. The counts are deterministic (no clock), so
a replay of the case gives the same incident under the same settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from .errors import CarepathError, SettingError

__all__ = ["StepLimitExceeded", "StepLimits", "StepCounter", "counting", "current_counter", "LIBRARY_MAX_DEPTH"]

LIBRARY_MAX_DEPTH = 1000  # SpiffWorkflow's TaskIterator default, kept by engine/task_tree.py's walk


class StepLimitExceeded(CarepathError):
    code = "step_limit"


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SettingError(f"{name} must be 1 or more, not {value}")
    return value


@dataclass(frozen=True)
class StepLimits:
    max_tasks: int = 5000
    max_nesting: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StepLimits:
        env = os.environ if env is None else env
        return cls(max_tasks=_positive(env, "CAREPATH_STEP_MAX_TASKS", cls.max_tasks),
                   max_nesting=_positive(env, "CAREPATH_STEP_MAX_NESTING", cls.max_nesting))


def _name(task: Any) -> str:
    spec = task.task_spec
    label = getattr(spec, "bpmn_name", None) or getattr(spec, "bpmn_id", None) or spec.name
    return " ".join(str(label).split())


def _element(task: Any) -> str | None:
    return getattr(task.task_spec, "bpmn_id", None)


@dataclass
class StepCounter:
    """One step's counts, kept while SpiffWorkflow runs the step (`counting`)."""

    limits: StepLimits
    run: int = 0
    made: int = 0
    #: tasks at which a walk of the tree stopped at the library's depth, with unfinished work perhaps below
    cut: dict[Any, Any] = field(default_factory=dict)

    def ran(self, task: Any) -> None:
        self.run += 1
        if self.run > self.limits.max_tasks:
            raise StepLimitExceeded(
                f"this step ran more than {self.limits.max_tasks:,} tasks without waiting (the last was "
                f"'{_name(task)}'): a loop that never waits, or a multi-instance activity over too many items? "
                f"The limit is CAREPATH_STEP_MAX_TASKS", element=_element(task))

    def made_one(self, parent: Any, spec: Any) -> None:
        self.made += 1
        if self.made > self.limits.max_tasks:
            label = " ".join(str(getattr(spec, "bpmn_name", None) or getattr(spec, "bpmn_id", None)
                                 or spec.name).split())
            element = getattr(spec, "bpmn_id", None) or _element(parent)
            raise StepLimitExceeded(
                f"this step made more than {self.limits.max_tasks:,} tasks (at '{label}'): a multi-instance "
                f"activity over too many items, or a loop that never waits? The limit is CAREPATH_STEP_MAX_TASKS",
                element=element)

    def nested(self, task: Any, depth: int) -> None:
        if depth > self.limits.max_nesting:
            raise StepLimitExceeded(
                f"'{_name(task)}' would start a subprocess nested {depth} deep, more than the "
                f"{self.limits.max_nesting} allowed: a call activity that calls its own process again without a "
                f"way out, or subprocesses drawn inside one another that deep? The limit is "
                f"CAREPATH_STEP_MAX_NESTING", element=_element(task))

    def started(self, task: Any, nesting: int) -> None:
        """`start_process` at `task` in an instance started `nesting` deep by start_process in this step."""
        if nesting + 1 > self.limits.max_nesting:
            raise StepLimitExceeded(
                f"'{_name(task)}' would start a process {nesting + 1} deep in one step (each started by the one "
                f"before), more than the {self.limits.max_nesting} allowed: a process that starts itself? The "
                f"limit is CAREPATH_STEP_MAX_NESTING", element=_element(task))

    def check_depth(self) -> None:
        """After the step ran: an unfinished task below a place the tree's walk stopped is work the library can
        no longer see (it would wait for ever): an incident at the element the walk stopped at."""
        from SpiffWorkflow.util.task import TaskState  # noqa: PLC0415 — only when a walk was cut (rare)

        for top in self.cut.values():
            stack = list(top.children)
            while stack:
                t = stack.pop()
                if not t.state & TaskState.FINISHED_MASK:
                    raise StepLimitExceeded(
                        f"the path through this case is more than {LIBRARY_MAX_DEPTH:,} tasks long at "
                        f"'{_name(top)}': a loop that has gone round hundreds of times (without waiting, or "
                        f"waiting each time), and the workflow library looks no further down a path. End the "
                        f"loop, or start a new process for each round (start_process)", element=_element(top))
                stack.extend(t.children)


_counter: ContextVar[StepCounter | None] = ContextVar("carepath_step_counter", default=None)


def current_counter() -> StepCounter | None:
    return _counter.get()


def counting(counter: StepCounter | None) -> Token[StepCounter | None]:
    """Count what runs from now on in `counter` (None: count nothing); give the token to `_counter.reset`."""
    return _counter.set(counter)


def stop_counting(token: Token[StepCounter | None]) -> None:
    _counter.reset(token)
