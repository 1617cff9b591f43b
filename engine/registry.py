"""Service-task handlers: Python callables registered by name.

A handler is called as `fn(ctx, **params)` with the parameters the diagram declares, and
returns a JSON-serialisable result that the engine stores in the task's result variable.
Handlers must not write to the database or read the wall clock: `ctx.now` is the injected
clock's reading, and everything a handler wants kept goes in its result, so that a failed
handler changes nothing and a replay can use the recorded result.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import NotFoundError

Handler = Callable[..., Any]

#: handled by the engine itself: start another process for the same case
START_PROCESS = "start_process"
#: handled by the engine itself: merge details into the case record (told once, reused by every process)
UPDATE_CASE = "update_case"
BUILT_IN = frozenset({START_PROCESS, UPDATE_CASE})
#: the parameters the engine's own handlers take (docs/diagram-attributes.md)
BUILT_IN_PARAMS: dict[str, tuple[dict[str, Any], ...]] = {
    START_PROCESS: ({"name": "process_id", "type": "str", "required": True},
                    {"name": "data", "type": "dict", "required": False}),
    UPDATE_CASE: ({"name": "data", "type": "dict", "required": True},),
}


#: the functions declared bounded (`HandlerRegistry.expression_function(..., bounded=True)`): a property of the
#: function itself, so the scratch engines of replay and of the timeline, which are given the registry's
#: functions without its registry, trust the same ones
_DECLARED_BOUNDED: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
_DECLARED_KEPT: list[Callable[..., Any]] = []  # the few that cannot be weakly referenced


def declared_bounded(fn: Any) -> bool:
    """Whether `fn` was declared bounded by some registry (see `HandlerRegistry.expression_function`)."""
    try:
        return fn in _DECLARED_BOUNDED
    except TypeError:
        return any(fn is kept for kept in _DECLARED_KEPT)


@dataclass(frozen=True)
class HandlerContext:
    """What a handler may know about where it runs."""

    case_id: int
    instance_id: int
    process_id: str
    element_id: str
    now: datetime
    case_data: dict[str, Any] = field(default_factory=dict)
    case_reference: str = ""  # e.g. CASE-000123: what letters quote


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        #: pure functions diagrams may call in expressions (e.g. add_working_days); no I/O, no clock
        self.functions: dict[str, Callable[..., Any]] = {}
        #: those of `functions` declared bounded (see `expression_function`)
        self.bounded_functions: dict[str, Callable[..., Any]] = {}
        self.document_handlers: set[str] = set()
        #: the teams user tasks may go to (candidate groups, lane names); None: not known, not checked
        self.teams: tuple[str, ...] | None = None
        #: whether a name is a person's who may be offered a task (computed candidate users); None: not checked
        self.users: Callable[[str], bool] | None = None
        #: hooks on every change to a case's details (see `on_case_saved`)
        self.case_checks: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        self.case_listeners: list[Callable[[Any, int], None]] = []
        #: told of every document filed, in the transaction that files it (see `on_document_filed`)
        self.document_listeners: list[Callable[[Any, list[dict[str, Any]]], None]] = []
        #: work the worker runs on a schedule besides timers (see `every`): (name, job, seconds)
        self.background_jobs: list[tuple[str, Callable[[Any], Any], float]] = []

    def on_case_saved(self, *, check: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                      saved: Callable[[Any, int], None] | None = None) -> None:
        """Hooks the engine runs in the transaction of every change to a case's details (a new case,
        `update_case` in a process, `update_case_record`).

        `check(changes)` gets the details about to be merged and returns what is kept (e.g. names in
        a normal form), or raises ValidationError: the whole change is refused and nothing is stored.
        `saved(conn, case_id)` runs after the case row is written, on the same connection (e.g. to keep
        a search table in step)."""
        if check is not None:
            self.case_checks.append(check)
        if saved is not None:
            self.case_listeners.append(saved)

    def on_document_filed(self, listener: Callable[[Any, list[dict[str, Any]]], None]) -> None:
        """`listener(conn, docs)` runs in the transaction that files documents on cases, after they are
        inserted, with each document's row (id, case_id, instance_id, handler, kind, title, body,
        created_at): what it writes commits or rolls back with the documents themselves (e.g. a queue of
        letters to send, so that a letter is queued exactly when it is filed)."""
        self.document_listeners.append(listener)

    def every(self, name: str, job: Callable[[Any], Any], seconds: float) -> None:
        """`job(engine)` run by the worker (`carepath worker`, `carepath serve`) every `seconds`, one run at a
        time, beside the timers; a failing run is logged and the next one tries again."""
        if not seconds > 0:
            raise ValueError(f"background job '{name}' must run every so many seconds above 0, not {seconds!r}")
        self.background_jobs.append((name, job, float(seconds)))

    def expression_function(self, name: str, fn: Callable[..., Any], *, bounded: bool = False) -> None:
        """`fn` callable by `name` in diagrams' expressions and scripts.

        `bounded=True` is the function's owner's word (code-reviewed, unlike a diagram) that a call costs at most
        polynomially in the size of its arguments (a count taken from an argument is capped, as
        add_working_days caps at 3,660 days) and gives a result at most 4 times their size plus a fixed amount.
        The declaration belongs to the function (its cost does not depend on the registry): wherever it is
        injected (replay's and the timeline's scratch engines too), code calling it may be judged bounded at
        sight and run in the step's own process. Without it, every expression or script calling it runs in the
        budgeted child (engine/budget.py, docs/engine.md "Script budget"). tests/test_script_budget.py checks each
        declared function against its caps."""
        self.functions[name] = fn
        if bounded:
            self.bounded_functions[name] = fn
            try:
                _DECLARED_BOUNDED.add(fn)
            except TypeError:
                _DECLARED_KEPT.append(fn)
        else:
            self.bounded_functions.pop(name, None)

    def register(self, name: str, fn: Handler | None = None, *, document: bool = False):  # type: ignore[no-untyped-def]
        """Register `fn` under `name`; usable as a decorator: `@registry.register("eligibility")`.

        `document=True`: the handler produces a document for the case file (a letter): its result
        has a `title` and a `body` (and may have a `kind`), and the engine files it on the case in
        the same step.
        """
        if fn is None:
            return lambda f: self.register(name, f, document=document)
        if name in BUILT_IN:
            raise ValueError(f"'{name}' is reserved for the engine")
        self._handlers[name] = fn
        if document:
            self.document_handlers.add(name)
        return fn

    def get(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise NotFoundError(f"no handler named '{name}' is registered", handler=name) from None

    def names(self) -> set[str]:
        return set(self._handlers) | BUILT_IN

    def __contains__(self, name: object) -> bool:
        return name in self._handlers or name in BUILT_IN

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names()))

    def parameters(self, name: str) -> list[dict[str, Any]]:
        """The parameters a handler declares, read from its function's signature (after `ctx`):
        name, type (the annotation as written, "any" without one) and whether it is required."""
        if name in BUILT_IN:
            return [dict(p) for p in BUILT_IN_PARAMS[name]]
        out = []
        for p in list(inspect.signature(self.get(name)).parameters.values())[1:]:  # the first is the context
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                continue
            annotation = p.annotation
            if annotation is inspect.Parameter.empty:
                type_ = "any"
            elif isinstance(annotation, str):
                type_ = annotation
            else:
                type_ = getattr(annotation, "__name__", None) or str(annotation)
            out.append({"name": p.name, "type": type_, "required": p.default is inspect.Parameter.empty})
        return out

    def required_parameters(self) -> dict[str, tuple[str, ...]]:
        """handler name -> its required parameters: what deploy checks every service task gives."""
        return {name: tuple(p["name"] for p in self.parameters(name) if p["required"]) for name in self}


def load_registry(modules: str = "handlers") -> HandlerRegistry:
    """Import the handler package(s) (comma separated) and return the registry they filled.

    A handler package exposes `register(registry)`; this keeps registries explicit, so tests
    can build their own without global state.
    """
    registry = HandlerRegistry()
    if os.getcwd() not in sys.path:  # handler packages live in the project folder, as with `python -m`
        sys.path.insert(0, os.getcwd())
    for name in filter(None, (m.strip() for m in modules.split(","))):
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if register is not None:
            register(registry)
    return registry
