"""The script engine every workflow runs with: sandboxed expressions, the injected clock and
service-task handlers.

One `CarepathScriptEngine` serves many workflows; what belongs to the step being run (its
clock reading, its case, where handler calls are recorded) is held in a context variable,
so concurrent requests in threads never see each other's step.
"""

from __future__ import annotations

import ast
import functools
import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from .errors import CarepathError, ExpressionError, HandlerFailed, StateError
from .expressions import SafeEnvironment
from .history import Event
from .registry import START_PROCESS, UPDATE_CASE, HandlerContext, HandlerRegistry, declared_bounded
from .step_limits import current_counter


@functools.lru_cache(maxsize=4096)
def _parse_error(text: str) -> tuple[Any, ...] | None:
    """None when `text` parses as Python, else the SyntaxError's arguments (kept, so that a text that does not
    parse is not parsed again either: SpiffWorkflow's DMN engine tries every operator entry, `>= 18`, that way
    before it adds the input in front of it)."""
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return exc.args
    return None


def _parses(text: str) -> bool:
    """True when `text` parses as Python; a SyntaxError (a new one each time, as the parser's) when not."""
    error = _parse_error(text)
    if error is not None:
        raise SyntaxError(*error)
    return True


@dataclass
class ChildStart:
    process_id: str
    data: dict[str, Any]
    element_id: str


@dataclass
class StepScope:
    """What one engine step knows and collects while SpiffWorkflow runs."""

    now: datetime
    case_id: int
    instance_id: int
    process_id: str
    case_data: dict[str, Any]
    case_reference: str = ""
    events: list[Event] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    #: messages the diagram threw in this step that nothing in its own instance caught (engine/messages.py
    #: `thrown_in_step`): delivered to the rest of the case once the step is written
    thrown: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    case_updates: dict[str, Any] = field(default_factory=dict)
    #: replay: recorded handler results to serve instead of calling handlers
    recorded: list[dict[str, Any]] | None = None
    failure: dict[str, Any] | None = None
    #: reads the case's other open instances' process ids (set by the engine for the step's transaction);
    #: called at most once a step, only when a script or condition asks (`open_processes()`)
    open_reader: Callable[[], list[str]] | None = None
    _open: list[str] | None = None
    #: how many `start_process` calls deep this instance was started within the step (0: not by one)
    nesting: int = 0

    def open_processes(self) -> list[str]:
        """The process ids of the case's other open instances (running, waiting, error or suspended),
        sorted, each once; read from the step's own transaction, so a replay of the case reads the same."""
        if self._open is None:
            self._open = sorted(set(self.open_reader())) if self.open_reader is not None else []
        return list(self._open)


_scope: ContextVar[StepScope] = ContextVar("carepath_step")


def current_scope() -> StepScope:
    try:
        return _scope.get()
    except LookupError:
        raise StateError("no engine step is running: workflows only run inside Engine steps") from None


class _ScopeClock:
    """`script_engine.clock` for the timer event definitions: the running step's reading."""

    simulated = True

    def now(self) -> datetime:
        return current_scope().now


class ReplayMismatch(CarepathError):
    code = "replay_divergence"


class CarepathScriptEngine(PythonScriptEngine):
    def __init__(self, registry: HandlerRegistry, functions: dict[str, Callable[..., Any]] | None = None) -> None:
        builtin_functions: dict[str, Callable[..., Any]] = {
            "now": lambda: current_scope().now,
            "case": lambda: dict(current_scope().case_data),
            "open_processes": lambda: current_scope().open_processes(),
        }
        builtin_functions.update(functions or {})
        # the very functions declared bounded (HandlerRegistry.expression_function); another under the same name,
        # e.g. an entry of `functions` replacing one, is not
        bounded = [name for name, fn in builtin_functions.items() if declared_bounded(fn)]
        super().__init__(environment=SafeEnvironment(functions=builtin_functions, bounded=bounded))
        self.environment.prepare = _read_open_processes
        self.registry = registry
        self.clock = _ScopeClock()

    def validate(self, expression):  # type: ignore[no-untyped-def]
        # SpiffWorkflow's DMN engine parses each rule's entries again at every decision (a tenth of a simulation's
        # decisions): each text is parsed once, and one that does not parse raises its SyntaxError every time
        _parses(expression)

    def evaluate(self, task, expression, external_context=None):  # type: ignore[no-untyped-def]
        # SpiffWorkflow wraps every error in a WorkflowTaskException whose message hides ours
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except CarepathError as exc:
            exc.context.setdefault("element", task.task_spec.bpmn_id)
            raise

    def execute(self, task, script, external_context=None):  # type: ignore[no-untyped-def]
        try:
            return self.environment.execute(script, task.data, external_context or {})
        except CarepathError as exc:
            exc.context.setdefault("element", task.task_spec.bpmn_id)
            raise

    def enter(self, scope: StepScope):  # type: ignore[no-untyped-def]
        return _scope.set(scope)

    def leave(self, token) -> None:  # type: ignore[no-untyped-def]
        _scope.reset(token)

    def call_service(self, task, operation_name: str = "", operation_params=None, **_kw):  # type: ignore[override]
        scope = current_scope()
        params = {name: p["value"] if isinstance(p, dict) and "value" in p else p
                  for name, p in (operation_params or {}).items()}
        element_id = task.task_spec.bpmn_id
        if operation_name == START_PROCESS:
            return self._start_process(scope, task, element_id, params)
        if operation_name == UPDATE_CASE:
            return self._update_case(scope, element_id, params)
        inputs = _jsonable(params)
        text = None  # the output as JSON text, for SpiffWorkflow (which parses it into the task's data)
        if scope.recorded is not None:
            output = self._recorded_output(scope, task, element_id, operation_name, inputs)
        else:
            ctx = HandlerContext(case_id=scope.case_id, instance_id=scope.instance_id, process_id=scope.process_id,
                                 element_id=element_id, now=scope.now, case_data=dict(scope.case_data),
                                 case_reference=scope.case_reference)
            try:
                handler = self.registry.get(operation_name)
                output = handler(ctx, **params)
                text = json.dumps(output, default=_default)  # as _jsonable, keeping the text it made
                output = json.loads(text)
            except Exception as exc:  # any handler failure becomes an incident, never half-applied
                scope.failure = {
                    "handler": operation_name,
                    "element_id": element_id,
                    "task_id": str(task.id),
                    "inputs": inputs,
                    "message": f"{type(exc).__name__}: {exc}",
                }
                raise HandlerFailed(f"handler '{operation_name}' failed: {type(exc).__name__}: {exc}",
                                    handler=operation_name, element=element_id) from exc
        scope.events.append(Event("handler.called", {"element_id": element_id, "handler": operation_name,
                                                     "inputs": inputs, "output": output},
                                  instance_id=scope.instance_id))
        if operation_name in self.registry.document_handlers:
            scope.documents.append(_document(operation_name, element_id, output))
        return text if text is not None else json.dumps(output)

    def keep_case_outputs(self, task: Any, outputs: Any) -> None:
        """An element's case outputs (`case:KEY` = expression, docs/engine.md "Case outputs"), evaluated in
        the order written with its task data and merged into the case record as one `case.updated` at the
        element, the path `update_case` takes. A failing expression or a value JSON cannot hold is an
        ExpressionError naming the element and the key; nothing of the element's outputs is kept then."""
        spec = task.task_spec
        where = f"'{spec.bpmn_name or spec.bpmn_id}' ({spec.bpmn_id})" if spec.bpmn_name else f"'{spec.bpmn_id}'"
        data: dict[str, Any] = {}
        for out in outputs:
            try:
                value = self.environment.evaluate(out.expression, task.data)
            except CarepathError as exc:
                raise ExpressionError(f"case output 'case:{out.key}' of {where} failed: {exc.message}",
                                      element=spec.bpmn_id, key=out.key) from exc
            except Exception as exc:  # noqa: BLE001 - the expression's own error, named for the incident
                raise ExpressionError(f"case output 'case:{out.key}' of {where} failed: {type(exc).__name__}: "
                                      f"{exc}", element=spec.bpmn_id, key=out.key) from exc
            try:
                data[out.key] = _jsonable(value)
            except (TypeError, ValueError) as exc:
                raise ExpressionError(f"case output 'case:{out.key}' of {where} gives a value the case record "
                                      f"cannot hold: {exc}", element=spec.bpmn_id, key=out.key) from exc
        _record_case_update(current_scope(), spec.bpmn_id, data)

    def _start_process(self, scope: StepScope, task: Any, element_id: str, params: dict[str, Any]) -> str:
        process_id = params.get("process_id")
        if not isinstance(process_id, str) or not process_id:
            scope.failure = {"handler": START_PROCESS, "element_id": element_id, "task_id": None,
                             "inputs": _jsonable(params), "message": "start_process needs a process_id parameter"}
            raise HandlerFailed("start_process needs a process_id parameter", element=element_id)
        counter = current_counter()
        if counter is not None:
            counter.started(task, scope.nesting)
        data = params.get("data") or {}
        scope.children.append(ChildStart(process_id, _jsonable(data), element_id))
        return json.dumps({"process_id": process_id, "started": True})

    def _update_case(self, scope: StepScope, element_id: str, params: dict[str, Any]) -> str:
        data = params.get("data")
        if not isinstance(data, dict) or not data:
            scope.failure = {"handler": UPDATE_CASE, "element_id": element_id, "task_id": None,
                             "inputs": _jsonable(params), "message": "update_case needs a non-empty data object"}
            raise HandlerFailed("update_case needs a non-empty data object", element=element_id)
        data = _jsonable(data)
        _record_case_update(scope, element_id, data)
        return json.dumps({"updated": sorted(data)})

    def _recorded_output(self, scope: StepScope, task: Any, element_id: str, handler: str, inputs: Any) -> Any:
        assert scope.recorded is not None
        if not scope.recorded:
            raise ReplayMismatch(f"the replay called handler '{handler}' at {element_id}, "
                                 "but the history records no further handler call here", element=element_id)
        rec = scope.recorded.pop(0)
        if rec.get("handler") != handler or rec.get("element_id") != element_id or rec.get("inputs") != inputs:
            raise ReplayMismatch(
                f"the replay called handler '{handler}' at {element_id} with {inputs!r}; the history records "
                f"'{rec.get('handler')}' at {rec.get('element_id')} with {rec.get('inputs')!r}",
                element=element_id)
        if rec.get("failed"):  # the handler failed then: fail the same way now
            scope.failure = {"handler": handler, "element_id": element_id, "task_id": str(task.id),
                             "inputs": inputs, "message": rec.get("message")}
            raise HandlerFailed(f"handler '{handler}' failed: {rec.get('message')}", handler=handler,
                                element=element_id)
        return rec.get("output")


def _read_open_processes(source: str) -> None:
    """Before code runs in the budgeted child (engine/budget.py): read `open_processes()` here, in the
    step's own transaction, so the child only sees the kept list and never touches the connection."""
    if "open_processes" in source:
        try:
            scope = _scope.get()
        except LookupError:
            return
        scope.open_processes()


def _record_case_update(scope: StepScope, element_id: str, data: dict[str, Any]) -> None:
    """Details a process merges into the case record: seen at once by what runs later in the step
    (case(), handlers), saved with the step (the registry's case checks run then), recorded as history."""
    scope.case_data.update(data)
    scope.case_updates.update(data)
    scope.events.append(Event("case.updated", {"element_id": element_id, "data": data},
                              instance_id=scope.instance_id))


def _document(handler: str, element_id: str, output: Any) -> dict[str, Any]:
    if not isinstance(output, dict) or not isinstance(output.get("title"), str) or \
            not isinstance(output.get("body"), str):
        raise HandlerFailed(f"handler '{handler}' files documents but returned no title and body",
                            handler=handler, element=element_id)
    return {"handler": handler, "element_id": element_id, "kind": str(output.get("kind") or handler),
            "title": output["title"], "body": output["body"]}


def _jsonable(value: Any) -> Any:
    """A deep copy of `value` as plain JSON; refuse what JSON cannot hold."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"a {type(value).__name__} cannot be stored in task data (JSON only)")
