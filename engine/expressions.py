"""The restricted evaluator for every piece of Python a diagram carries.

Gateway conditions, timer expressions, script tasks, service-task parameters and DMN
cells are written by process modellers, not by us, so they run under RestrictedPython
rather than plain `eval`/`exec` (an empty `__builtins__` is no sandbox:
`().__class__.__mro__[1].__subclasses__()` reaches importers).

`SafeEnvironment` is a SpiffWorkflow `TaskDataEnvironment`: hand it to
`PythonScriptEngine(environment=SafeEnvironment(functions))`.

Errors:
  * `UnsafeExpressionError` - the source uses something the sandbox refuses. Most refusals
    happen at compile time (so `check_expression` finds them at deploy time): imports,
    names/attributes starting with "_", class definitions, calls to open/exec/eval/
    compile/globals/locals/vars/type/..., `.format()`/`.format_map()`, frame and
    generator internals, `.now()`/`.today()`/`.utcnow()`. The runtime guards refuse the
    same things when reached dynamically (e.g. `getattr(x, name)`).
  * `ExpressionError` - the source is not valid Python (syntax error), or it failed while
    running (unknown name, division by zero, wrong type...), or a script left something
    that is not plain data in the task data.
Messages say what went wrong and quote the expression; for scripts the line is in
the error's context (`line=`).
Errors raised by injected functions that are already `CarepathError`s pass through unchanged.
"""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import operator
import textwrap
import traceback
from collections.abc import Callable, Iterable, Mapping
from types import CodeType
from typing import Any
from uuid import UUID

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

from engine.budget import (
    BOUNDED_CALLS,
    ScriptBudget,
    bounded_at_sight,
    run_budgeted,
    straight_line,
    unbounded_construct,
)
from engine.errors import CarepathError, ExpressionError, UnsafeExpressionError
from engine.plain_copy import plain_copy

__all__ = ["SAFE_BUILTINS", "SafeEnvironment", "check_expression"]

_CLOCK_ATTRS = frozenset({"now", "today", "utcnow"})
_CLOCK_MESSAGE = "reading the clock is refused: use now() — time is injected"
# str.format/format_map walk attributes ("{0.__class__}"); mro() lists base classes.
_REFUSED_ATTRS = INSPECT_ATTRIBUTES | _CLOCK_ATTRS | {"format", "format_map", "mro"}
# Refused when called by name. Most are absent from SAFE_BUILTINS anyway; naming them here
# gives a clear deploy-time message instead of a NameError at run time. Only *calls* are
# refused because "open", "type" or "input" are plausible task-data field names.
# (exec and eval are refused by RestrictedPython itself.)
_REFUSED_CALLS = frozenset({
    "open", "compile", "globals", "locals", "vars", "type", "dir",
    "setattr", "delattr", "breakpoint", "input", "help", "memoryview", "object", "super",
    "classmethod", "staticmethod", "property", "exit", "quit", "id", "bytes", "bytearray",
})
_QUOTE_LIMIT = 300
#: `from datetime import …` of these is a line that changes nothing: the sandbox has them (SAFE_BUILTINS)
_FROM_DATETIME = frozenset({"date", "datetime", "timedelta", "timezone"})


class _Refused(UnsafeExpressionError):
    """Raised by the runtime guards; re-raised as UnsafeExpressionError quoting the source."""


def _attr_refusal(name: str) -> str | None:
    if name in _CLOCK_ATTRS:
        return f'".{name}()" — {_CLOCK_MESSAGE}'
    if name.startswith("_"):
        return f'attribute "{name}" is refused: names starting with "_" are not allowed'
    if name in ("format", "format_map"):
        return f'"{name}()" is refused because it can walk attributes; use an f-string'
    if name in _REFUSED_ATTRS:
        return f'attribute "{name}" is refused: it exposes interpreter internals'
    return None


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus what carepath never needs and must not allow."""

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        self.error(node, "import statements are not allowed; date, datetime, timedelta and timezone (the classes "
                         "of Python's datetime module) are there without one, and now() gives the time")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        # `from datetime import date, timedelta`, as SpiffArena's and other engines' scripts begin: the names are
        # there already (SAFE_BUILTINS), the very classes, so the line changes nothing and the script runs as
        # written; anything else (another module, an alias, `*`) is refused as before
        if node.module == "datetime" and node.level == 0 and all(
                a.name in _FROM_DATETIME and a.asname in (None, a.name) for a in node.names):
            return ast.copy_location(ast.Pass(), node)
        return self.visit_Import(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        # Classes would need a __metaclass__ hook and bring dunder methods with them.
        self.error(node, "class definitions are not allowed")
        return node

    def visit_Call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in _REFUSED_CALLS:
                self.error(node, f'calling "{func.id}()" is not allowed')
            elif func.id in ("getattr", "hasattr") and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    reason = _attr_refusal(name.value)
                    if reason:
                        self.error(node, reason)
        return super().visit_Call(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        # RestrictedPython refuses `d[k] += v` outright; scripts that keep totals need it.
        # Rewritten as `_inplaceitem_(d, k, "+=", v)`, which goes through the write guard.
        target = node.target
        if not isinstance(target, ast.Subscript) or isinstance(target.slice, ast.Slice):
            return super().visit_AugAssign(node)
        call = ast.Call(
            func=ast.Name("_inplaceitem_", ast.Load()),
            args=[self.visit(target.value), self.visit(target.slice),
                  ast.Constant(IOPERATOR_TO_STR[type(node.op)]), self.visit(node.value)],
            keywords=[],
        )
        statement = ast.Expr(call)
        copy_locations(statement, node)
        copy_locations(call, node)
        copy_locations(call.func, node)
        copy_locations(call.args[2], node)
        return statement

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        reason = _attr_refusal(node.attr)
        if reason and not node.attr.startswith("_") and node.attr not in INSPECT_ATTRIBUTES:
            # RestrictedPython reports "_x" and inspect attributes itself; don't say it twice.
            self.error(node, reason)
        return super().visit_Attribute(node)


# ---------------------------------------------------------------- clock-free date types


class _ClockFree:
    """A date/datetime class that constructs real instances but cannot read the clock.

    Instances stay genuine `datetime.date`/`datetime.datetime` objects rather than
    subclasses, because SpiffWorkflow's serializer matches exact types; `isinstance(x, date)`
    works through `__instancecheck__`.
    """

    __slots__ = ("_cls",)

    def __init__(self, cls: type) -> None:
        object.__setattr__(self, "_cls", cls)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._cls(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _CLOCK_ATTRS:
            raise _Refused(f'"{self._cls.__name__}.{name}()" — {_CLOCK_MESSAGE}')
        return getattr(self._cls, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Refused(f"{self._cls.__name__} cannot be changed")

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self._cls)

    def __repr__(self) -> str:
        return f"<clock-free {self._cls.__name__}>"


def _needs_tz(method: Callable[..., Any], what: str, tz_position: int) -> Callable[..., Any]:
    # Without an explicit zone these use the server's local time zone: not reproducible.
    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= tz_position and kwargs.get("tz") is None:
            raise _Refused(f"{what} without a time zone uses the server's local zone; pass timezone.utc")
        return method(*args, **kwargs)

    return call


def _local_zone_guard(obj: Any, name: str, value: Any) -> Any:
    real = obj._cls if isinstance(obj, _ClockFree) else obj
    is_class = isinstance(real, type)
    cls = real if is_class else type(real)
    if not issubclass(cls, _dt.date):
        return value
    if name == "fromtimestamp":
        if not issubclass(cls, _dt.datetime):
            raise _Refused(
                "date.fromtimestamp() uses the server's local zone; "
                "use datetime.fromtimestamp(t, timezone.utc)"
            )
        return _needs_tz(value, "fromtimestamp()", 1)
    if is_class:
        raise _Refused(f"{cls.__name__}.{name} is refused; call {name}() on a datetime value")
    if name == "astimezone":
        return _needs_tz(value, "astimezone()", 0)
    if name == "timestamp" and real.tzinfo is None:
        raise _Refused("timestamp() of a datetime without a time zone uses the server's local zone")
    return value


_LOCAL_ZONE_ATTRS = frozenset({"astimezone", "fromtimestamp", "timestamp"})


# ---------------------------------------------------------------- guards


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in _REFUSED_ATTRS:
        raise _Refused(_attr_refusal(name) or f'attribute "{name}" is refused')
    value = getattr(obj, name, *default)
    if name in _LOCAL_ZONE_ATTRS:
        return _local_zone_guard(obj, name, value)
    return value


def _guarded_hasattr(obj: Any, name: str) -> bool:
    try:
        _guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


class _ReadOnly:
    """What `_write_` hands back for anything but a dict or list: every write is refused."""

    __slots__ = ("_type",)

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_type", type(obj).__name__)

    def _refuse(self, *args: Any) -> None:
        raise _Refused(
            f"changing a value of type {self._type} is refused: only dicts and lists can be changed"
        )

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _refuse


def _write_guard(obj: Any) -> Any:
    # Exact types: a dict subclass could carry its own __setitem__.
    return obj if type(obj) in (dict, list) else _ReadOnly(obj)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _inplaceitem(obj: Any, key: Any, op: str, value: Any) -> None:
    _write_guard(obj)[key] = _INPLACE[op](obj[key], value)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


SAFE_BUILTINS: dict[str, Any] = {
    "None": None, "True": True, "False": False,
    **{f.__name__: f for f in (
        abs, all, any, bool, chr, dict, divmod, enumerate, filter, float, frozenset, int,
        isinstance, len, list, map, max, min, ord, range, repr, reversed, round, set,
        sorted, str, sum, tuple, zip,
    )},
    "getattr": _guarded_getattr,
    "hasattr": _guarded_hasattr,
    "date": _ClockFree(_dt.date),
    "datetime": _ClockFree(_dt.datetime),
    "timedelta": _dt.timedelta,
    "timezone": _dt.timezone,
    **{e.__name__: e for e in (
        Exception, ArithmeticError, LookupError, AttributeError, IndexError, KeyError,
        NameError, TypeError, ValueError, ZeroDivisionError,
    )},
}

_GUARDS: dict[str, Any] = {
    "_getattr_": _guarded_getattr,
    "_getitem_": operator.getitem,
    "_getiter_": iter,
    "_write_": _write_guard,
    "_inplacevar_": _inplacevar,
    "_inplaceitem_": _inplaceitem,
    "_apply_": _apply,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_print_": PrintCollector,
}


# ---------------------------------------------------------------- compilation

_FILENAMES = {"eval": "<expression>", "exec": "<script>"}


def _quote(source: str) -> str:
    text = source if len(source) <= _QUOTE_LIMIT else source[:_QUOTE_LIMIT] + "…"
    return repr(text)


def _what(mode: str) -> str:
    return "expression" if mode == "eval" else "script"


# (code, None) or (None, (error class, message, line)); errors are rebuilt on every raise
# so a cached exception's traceback cannot grow.
_Compiled = tuple[CodeType | None, tuple[type[CarepathError], str, int | None] | None]


@functools.lru_cache(maxsize=4096)
def _in_process(mode: str, source: str, functions: frozenset[str] = frozenset(),
                others: frozenset[str] = frozenset()) -> bool:
    """Whether compiled code is bounded at sight and so runs in-process, not in the budgeted child
    (engine/budget.py); `functions`: the injected functions declared bounded, `others` the rest."""
    if mode == "eval":
        return bounded_at_sight(ast.parse(source.strip(), _FILENAMES[mode], mode), functions, others)
    return straight_line(ast.parse(textwrap.dedent(source), _FILENAMES[mode], mode), functions, others)


@functools.lru_cache(maxsize=4096)
def _compile(mode: str, source: str) -> _Compiled:
    where = f"{_what(mode)} {_quote(source)}"
    # Modellers' XML often indents code or wraps it in newlines.
    text = source.strip() if mode == "eval" else textwrap.dedent(source)
    try:
        tree = ast.parse(text, _FILENAMES[mode], mode)
    except SyntaxError as err:
        message = f"syntax error: {err.msg} (line {err.lineno}, column {err.offset}) in {where}"
        return None, (ExpressionError, message, err.lineno)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(tree, _FILENAMES[mode], policy=_Policy)
    if result.errors:
        reasons, line = [], None
        for error in result.errors:
            head, _, reason = error.partition(": ")
            if head.startswith("Line ") and reason:
                if line is None and head[5:].isdigit():
                    line = int(head[5:])
                reasons.append(reason.rstrip("."))
            else:
                reasons.append(error)
        return None, (UnsafeExpressionError, f"{'; '.join(reasons)} — refused in {where}", line)
    return result.code, None


def _code(mode: str, source: str) -> CodeType:
    if not isinstance(source, str):
        raise ExpressionError(f"{_what(mode)} must be text, not {type(source).__name__}")
    code, error = _compile(mode, source)
    if error is not None:
        cls, message, line = error
        if mode == "eval":
            raise cls(message)
        raise cls(message, line=line)
    assert code is not None
    return code


def check_expression(source: str, mode: str = "eval") -> str | None:
    """Deploy-time check: a message if `source` cannot be compiled under the restrictions, else None."""
    if mode not in _FILENAMES:
        raise ValueError(f"mode must be 'eval' or 'exec', not {mode!r}")
    try:
        _code(mode, source)
    except CarepathError as err:
        return str(err)
    # Constructs that can only exhaust the script budget (engine/budget.py) are refused here too.
    text = source.strip() if mode == "eval" else textwrap.dedent(source)
    found = unbounded_construct(ast.parse(text, _FILENAMES[mode], mode))
    if found:
        what, line = found
        at = f" (line {line} of the {_what(mode)})" if mode == "exec" and line else ""
        return f"{what}{at} — refused in {_what(mode)} {_quote(source)}"
    return None


def _script_line(err: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename == _FILENAMES["exec"]:
            line = frame.lineno
    return line


def _failure(err: Exception, mode: str, source: str) -> CarepathError:
    where = f"{_what(mode)} {_quote(source)}"
    line = _script_line(err) if mode == "exec" else None
    if isinstance(err, _Refused):
        return UnsafeExpressionError(f"{err.message} — refused in {where}", line=line)
    detail = str(err) if isinstance(err, NameError) else f"{type(err).__name__}: {err}"
    return ExpressionError(f"{detail} in {where}", line=line)


# ---------------------------------------------------------------- plain-data check

# What the workflow serializer can store: JSON, plus the datetime/timedelta/UUID that
# SpiffWorkflow's serializer converts. A bare date is not among them (use .isoformat()).
_PLAIN_LEAVES = (str, int, float, type(None), _dt.datetime, _dt.timedelta, UUID)
_JSON_KEYS = (str, int, float, bool, type(None))
_MAX_DEPTH = 100


def _not_plain(value: Any, depth: int = 0) -> str | None:
    """What in `value` is not plain data (a type name), or None."""
    if isinstance(value, _PLAIN_LEAVES):
        return None
    if depth > _MAX_DEPTH:
        return "structure nested too deeply"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, _JSON_KEYS):
                return f"dict key of type {type(key).__name__}"
        items: Any = value.values()
    elif isinstance(value, (list, tuple, set)):
        items = value
    elif type(value) is _dt.date:
        return "date (store d.isoformat() or a datetime)"
    else:
        return type(value).__name__
    for item in items:
        found = _not_plain(item, depth + 1)
        if found:
            return found
    return None


def _is_hidden(key: Any) -> bool:
    return type(key) is str and key.startswith("_")


# ---------------------------------------------------------------- the environment


class SafeEnvironment(TaskDataEnvironment):
    """Evaluates expressions and runs scripts against task data under RestrictedPython."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None,
                 budget: ScriptBudget | None = None, bounded: Iterable[str] = ()) -> None:
        #: the CPU-time and memory budget every expression and script runs under (engine/budget.py)
        self.budget = budget or ScriptBudget.from_env()
        functions = dict(functions or {})
        for name in functions:
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"injected function name {name!r} is not usable from expressions")
        super().__init__(functions)
        # An injected function named like one of the calls "bounded at sight" trusts (a registry's `max`):
        # nothing of this environment's is judged bounded then; everything runs in the budgeted child.
        self._trust_sight = not (set(functions) - {"now", "case", "open_processes"}) & BOUNDED_CALLS
        #: the injected functions whose owner declared them bounded (HandlerRegistry.expression_function):
        #: code calling them may still be judged bounded at sight (engine/budget.py)
        self.bounded = frozenset(name for name in bounded if name in functions)
        self._others = frozenset(functions) - self.bounded - {"now", "case", "open_processes"}
        #: called with the source before it runs in the budgeted child, to read in the parent what the
        #: child must not (the script engine reads `open_processes()` from the step's transaction here)
        self.prepare: Callable[[str], None] = lambda source: None
        # A copy per environment: nothing done through one environment reaches another.
        self._guards = {**_GUARDS, "__builtins__": dict(SAFE_BUILTINS)}

    def _namespace(
        self, context: Mapping[str, Any], external_context: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        # TaskDataEnvironment's order (functions, then external context, then task data);
        # guards go last so task data can never replace them.
        if external_context:
            return {**self.globals, **external_context, **context, **self._guards}
        return {**self.globals, **context, **self._guards}

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        code = _code("eval", expression)
        if self._trust_sight and _in_process("eval", expression, self.bounded, self._others):
            return self._evaluate(code, expression, context, external_context)
        self.prepare(expression)
        return run_budgeted(lambda: self._evaluate(code, expression, context, external_context), self.budget,
                            f"expression {_quote(expression)}")

    def _evaluate(self, code: CodeType, expression: str, context: dict, external_context: dict | None) -> Any:
        namespace = self._namespace(context, external_context)
        try:
            return eval(code, namespace)
        except _Refused as err:
            raise _failure(err, "eval", expression) from None
        except (CarepathError, MemoryError):
            raise
        except Exception as err:
            raise _failure(err, "eval", expression) from err

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        """Run `script` with task data as its variables; all-or-nothing on `context`.

        The script works on a deep copy, so a failure leaves task data as it was. On
        success, task data gets the script's plain-data variables; functions, injected
        names, external context and "_" names are dropped, deleted variables are removed.
        """
        code = _code("exec", script)
        external = external_context or {}
        clashes = sorted(set(self.globals).intersection(context) | set(external).intersection(context))
        if clashes:
            raise ExpressionError(
                f"task data field(s) {', '.join(clashes)} would hide predefined function(s) "
                f"of the same name; rename the field(s) — in script {_quote(script)}"
            )
        if self._trust_sight and _in_process("exec", script, self.bounded, self._others):
            results = self._execute(code, script, context, external)
        else:
            self.prepare(script)
            results = run_budgeted(lambda: self._execute(code, script, context, external), self.budget,
                                   f"script {_quote(script)}")
        for key in [k for k in context if k not in results and not _is_hidden(k)]:
            del context[key]
        context.update(results)
        return True

    def _execute(self, code: CodeType, script: str, context: dict, external: Mapping[str, Any]) -> dict[str, Any]:
        """The script's plain-data variables (run in the budgeted child)."""
        namespace = self._namespace(plain_copy(context), external)  # copy.deepcopy's result, faster
        try:
            exec(code, namespace)
        except _Refused as err:
            raise _failure(err, "exec", script) from None
        except (CarepathError, MemoryError):
            raise
        except Exception as err:
            raise _failure(err, "exec", script) from err

        results: dict[str, Any] = {}
        for key, value in namespace.items():
            if _is_hidden(key) or key in self.globals or key in external or callable(value):
                continue
            problem = _not_plain(value)
            if problem:
                raise ExpressionError(
                    f"script left a {problem} in variable {key!r}; task data must be plain data "
                    f"(text, numbers, booleans, None, lists, dicts, datetimes, timedeltas) "
                    f"— in script {_quote(script)}"
                )
            results[key] = value
        return results
