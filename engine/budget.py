"""Every expression and script a diagram carries runs under a CPU-time and memory budget.

A modeller's `while True: pass` or `x = 10**10**8` must not hang the step, the timer job or the
machine. Python cannot stop its own thread in the middle of one C-level operation (`10**10**8` is a
single bytecode; `sum(range(10**12))` loops in C), so tracing or instruction counting in-process
is not enough. The budget is kept by the operating system instead:

* **Bounded at sight → in-process.** Code whose cost a size count bounds by a small power of the size of
  the data it reads and of the code itself (`bounded_at_sight`, `straight_line`; the count is described
  below, before `_Judge`): no loops, no `**`, `<<`, no `*` but by a small constant, calls only to functions
  whose cost the data bounds (`now()`, `case()`, `len`, `min`, `timedelta`, `.get`, ..., the registry's
  functions declared bounded, the script's own `def` helpers), straight-line `if`/`try`/`raise`, item
  assignment into containers the script made. A later line may read what an earlier one wrote, but the
  count stops what would compound (`s = s + s`, forty times).
* **Everything else → a forked child.** The step's thread forks; the child lowers its own limits
  (`setitimer(ITIMER_PROF)`, whose default action ends the process, for CPU time, plus `RLIMIT_CPU` as a
  backstop; `RLIMIT_AS` at its current size plus the memory budget), runs the code and sends the
  result (or the error) back through a pipe. The parent waits at most `wall_seconds` for it and kills
  it after that (a child that blocks instead of computing). The child inherits the step's memory —
  task data, the step's scope, the handler registry's pure functions — and ends with `os._exit`, so it
  never touches the step's database connection (`open_processes()` is read in the parent first).

Exceeding the budget raises `BudgetExceeded` (an `ExpressionError`), which the engine turns into an
incident naming the element like any other failing expression; the step's transaction writes only
the incident, and `retry` runs the element again once the diagram is fixed or the budget raised.

Settings: `CAREPATH_SCRIPT_CPU_SECONDS` (default 2), `CAREPATH_SCRIPT_MEMORY_MB` (default 256),
`CAREPATH_SCRIPT_WALL_SECONDS` (default 15 × the CPU budget, at least 30). docs/engine.md "Script budget".

`unbounded_construct` is the deploy-time half: constructs that can only exhaust the budget (a huge
constant power or repeat, `while True` with no way out) are refused with the line they are on.
"""

from __future__ import annotations

import ast
import math
import os
import pickle
import re
import resource
import select
import signal
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.errors import CarepathError, ExpressionError, SettingError

__all__ = ["BOUNDED_CALLS", "BudgetExceeded", "ScriptBudget", "bounded_at_sight", "run_budgeted", "straight_line",
           "unbounded_construct"]

T = TypeVar("T")


class BudgetExceeded(ExpressionError):
    code = "budget_exceeded"


@dataclass(frozen=True)
class ScriptBudget:
    cpu_seconds: float = 2.0
    memory_mb: int = 256
    wall_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.cpu_seconds > 0 or not self.memory_mb > 0 or not self.wall_seconds > 0:
            raise SettingError("script budget values (CAREPATH_SCRIPT_*) must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScriptBudget:
        env = os.environ if env is None else env
        try:
            cpu = float(env.get("CAREPATH_SCRIPT_CPU_SECONDS", "2"))
            memory = int(env.get("CAREPATH_SCRIPT_MEMORY_MB", "256"))
            wall = float(env.get("CAREPATH_SCRIPT_WALL_SECONDS", "0")) or max(30.0, 15 * cpu)
        except ValueError as exc:
            raise SettingError(f"CAREPATH_SCRIPT_* settings must be numbers: {exc}") from None
        return cls(cpu, memory, wall)


# ---------------------------------------------------------------- in-process when bounded at sight
#
# The judgement is a size count. Every value the code reads that it did not make (task data, the case
# record, what a function returns for data) is at most M units big, M being the size of the data, of the code
# itself and at least 1,000 (units: characters, digits, elements). Each expression gets a coefficient k: its
# value is at most k * M units. A name the code wrote carries the coefficient of what was written to it (the
# largest over all its writes so far: there are no loops, so a read only sees earlier writes); `a + b` is
# k(a) + k(b); `3 * x` is 3 * k(x); `str(x)` 4 * k(x) + 1 (escapes); a comparison is 1. No coefficient may
# pass SIGHT_GROWTH or the code's own size in AST nodes, whichever is larger (a line adding a value to itself
# n times is n times its size however it is counted): then every value the code makes is at most that many
# times M units and each operation on such values costs a small power of that, so the whole run is polynomial
# in the size of the data and the code. Reading an earlier line's write is what could break that bound
# (`s = s + s` forty times is 2**40 * M): the count doubles the coefficient on every such line, and the script
# leaves the in-process path after eight or nine of them. Growth only compounds through operators that copy
# (`+` of text or lists, `*`, formatting, str(), displays holding a value twice); a comparison, len() or a
# date's field reads a written value at no cost.
#
# What keeps the count honest:
# * no loops (`for`, `while`), no `lambda`, no `**`, `<<`, `@`; `*` only by a constant of at most 1,000 (or
#   between two numbers: the digits add); `%` only as formatting with a constant format whose widths are at
#   most 999 and never `*`, or between two numbers;
# * calls only to functions whose cost the data bounds (BOUNDED_CALLS, a short list of methods, the registry's
#   functions declared bounded, and the script's own `def` helpers);
# * a helper (`def` at the top level of a script) is judged at each call with the coefficients of its arguments; it
#   may call no helper (so no recursion, and no chain of helpers each calling the next twice: 2**n calls);
# * comprehensions only as a filter or a projection (`[p for p in items if ...]`, `[s["id"] for s in items]`:
#   its value is made of parts of `items`), one level;
# * item assignment (`answers["x"] = value`) only, outside helpers, into a container the script made (a display,
#   dict(...), list(...)) and surely holds there, of keys and values that read nothing the script wrote (names
#   only ever bound to a constant aside): no cycles (a dict holding itself twice is 2**100 units to walk), and
#   the container's coefficient counts every item it will ever be given, whoever else holds it;
# * a name the code calls is never assigned, deleted or used as a parameter (`len = add_working_days`).


class _NotAtSight(Exception):
    """Internal: the code is not bounded at sight (it runs in the budgeted child)."""


#: how many times the size of what it reads code judged at sight may build (see above; M is at least 1,000
#: units, so a constant or a width of 999 counts as 1)
SIGHT_GROWTH = 256
_MAX_REPEAT = 1000  # `c * x` with a constant c of at most this

# results of a fixed size whatever the arguments (or an error)
_FIXED_CALLS = frozenset({"now", "len", "bool", "isinstance", "any", "all", "chr", "ord", "timedelta", "datetime",
                          "date"})
# fresh copies of the step's data: input
_INPUT_CALLS = frozenset({"case", "open_processes"})
# no bigger than their arguments: a number, one of them, or their items added up
_PART_CALLS = frozenset({"abs", "min", "max", "sum", "int", "float"})
# at most twice their arguments (a string made a list of its characters)
_CARRY_CALLS = frozenset({"list", "dict", "set", "tuple", "sorted"})
# text of their arguments: at most four characters a unit (`\x00`)
_TEXT_CALLS = frozenset({"str", "repr"})
_EXCEPTIONS = frozenset({"Exception", "ArithmeticError", "LookupError", "AttributeError", "IndexError", "KeyError",
                         "NameError", "TypeError", "ValueError", "ZeroDivisionError"})
#: functions whose cost is bounded by the size of their arguments (which come from task data or from other
#: bounded-at-sight expressions). range, round, pow, sorted-with-key and every unknown name go to the child;
#: so do the registry's functions unless declared bounded (`HandlerRegistry.expression_function(bounded=True)`).
BOUNDED_CALLS = _FIXED_CALLS | _INPUT_CALLS | _PART_CALLS | _CARRY_CALLS | _TEXT_CALLS | _EXCEPTIONS

_FIXED_METHODS = frozenset({"isoformat", "date", "weekday", "isoweekday", "count", "index", "startswith", "endswith",
                            "isdigit", "isalpha", "isalnum", "isspace", "fromisoformat", "total_seconds"})
_CARRY_METHODS = frozenset({"get", "keys", "values", "items", "strip", "lstrip", "rstrip", "copy"})
_CASE_METHODS = frozenset({"lower", "upper", "title", "casefold"})  # 'ß'.upper() == 'SS', 'ﬃ'.casefold() == 'ffi'
_BOUNDED_METHODS = _FIXED_METHODS | _CARRY_METHODS | _CASE_METHODS | {"split", "join", "replace"}
_DATE_FIELDS = frozenset({"year", "month", "day", "hour", "minute", "second", "microsecond", "tzinfo", "fold"})
_NUMBER_ATTRS = frozenset({"year", "month", "day", "hour", "minute", "second", "microsecond", "days", "seconds",
                           "microseconds"})
_NUMBER_CALLS = frozenset({"int", "float", "len", "ord"})
_NUMBER_METHODS = frozenset({"weekday", "isoweekday", "count", "index", "total_seconds"})
_FORMAT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.)", re.S)
_ADDING = (ast.Add, ast.Sub, ast.Div, ast.FloorDiv, ast.BitAnd, ast.BitOr, ast.BitXor, ast.RShift)
_NUMBER_CONVERSIONS = frozenset("diouxXeEfFgGc%")
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


@dataclass
class _State:
    """What the judge knows at a point of the code: the coefficient of every name written so far (the largest
    over its writes: it never goes down) and the names surely holding a number (int, float, timedelta)."""

    k: dict[str, float]
    numbers: set[str]
    fresh: set[str] = field(default_factory=set)  # surely bound to a container the script made
    outer: _State | None = None  # a helper's module state (its globals)
    local: frozenset[str] = frozenset()  # a helper's parameters and locals
    returns: list[float] | None = None

    def copy(self) -> _State:
        return _State(dict(self.k), set(self.numbers), set(self.fresh), self.outer, self.local, self.returns)

    def size(self, name: str) -> float:
        if name in self.k:
            return self.k[name]
        if self.outer is not None and name not in self.local:
            return self.outer.size(name)
        return 1.0  # read, not written: input

    def is_number(self, name: str) -> bool:
        if name in self.local or self.outer is None:
            return name in self.numbers
        return self.outer.is_number(name)

    def is_fresh(self, name: str) -> bool:
        if name in self.local or self.outer is None:
            return name in self.fresh
        return self.outer.is_fresh(name)

    def write(self, name: str, k: float, number: bool, fresh: bool = False) -> None:
        self.k[name] = max(self.k.get(name, 0.0), k)
        for known, yes in ((self.numbers, number), (self.fresh, fresh)):
            if yes:
                known.add(name)
            else:
                known.discard(name)

    def forget(self, names: Any) -> None:
        self.numbers.difference_update(names)
        self.fresh.difference_update(names)

    def join(self, *others: _State) -> None:
        for other in others:
            for name, k in other.k.items():
                self.k[name] = max(self.k.get(name, 0.0), k)
            self.numbers &= other.numbers
            self.fresh &= other.fresh


class _Judge:
    def __init__(self, tree: ast.AST, functions: frozenset[str], others: frozenset[str] = frozenset()) -> None:
        self.functions = functions  # the registry's functions declared bounded
        self.others = others  # the injected functions not declared bounded: never called, never passed
        # the limit on any coefficient: SIGHT_GROWTH, or the code's own size when larger (a line that adds a
        # value to itself n times is n times its size however it is counted)
        self.limit = max(SIGHT_GROWTH, sum(1 for _ in ast.walk(tree)))
        self.helpers: dict[str, ast.FunctionDef] = {}
        self.in_helper = False
        self.expression = isinstance(tree, ast.Expression)  # judged as one expression: nothing reads it back
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        stored: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                stored.add(node.id)
            elif isinstance(node, ast.arg):
                stored.add(node.arg)
        if called & stored:  # `len = add_working_days` and the like
            raise _NotAtSight
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        self.containers = self._containers(tree, stored | defined)

    # ------------------------------------------------------------ containers the script fills

    def _containers(self, tree: ast.AST, bound: set[str]) -> dict[str, float]:
        """name -> what item assignment will add to its coefficient (every key and value it will ever be given),
        for names only ever bound to a new container (a display, dict(...), list(...)) or a constant. What is
        stored reads nothing the script wrote but names only ever bound to a constant: no cycles, no sharing."""
        filled: dict[str, float] = {}
        # names only ever bound to a constant: an input or that constant, never something the script built
        constant = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                constant -= {n.id for t in node.targets if not (isinstance(t, ast.Name) and
                                                                isinstance(node.value, ast.Constant))
                             for n in ast.walk(t) if isinstance(n, ast.Name)}
            elif isinstance(node, ast.AugAssign | ast.AnnAssign | ast.comprehension | ast.For | ast.With):
                constant -= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        constant -= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for t in targets:
                if isinstance(t, ast.Subscript):
                    if not isinstance(t.value, ast.Name) or not isinstance(node, ast.Assign):
                        raise _NotAtSight  # a[b][c] = ..., a[b] += ...
                    for part in (t.slice, node.value):  # nothing the script wrote: no cycles, no sharing
                        if any(isinstance(n, ast.Name) and n.id in bound - constant for n in ast.walk(part)):
                            raise _NotAtSight
                    empty = _State({}, set())
                    filled[t.value.id] = filled.get(t.value.id, 0.0) + self._size(t.slice, empty) + \
                        self._size(node.value, empty)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id in filled and not _fresh(node.value):
                        raise _NotAtSight
            elif isinstance(node, ast.arg | ast.comprehension | ast.AugAssign | ast.AnnAssign):
                names = {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)} \
                    if not isinstance(node, ast.arg) else {node.arg}
                if names & set(filled):
                    raise _NotAtSight
        return filled

    # ------------------------------------------------------------ statements

    def block(self, body: list[ast.stmt], state: _State, *, top: bool = False) -> _State:
        for stmt in body:
            state = self.stmt(stmt, state, top=top)
        return state

    def stmt(self, node: ast.stmt, state: _State, *, top: bool = False) -> _State:
        if isinstance(node, ast.Pass):
            return state
        if isinstance(node, ast.Expr):
            self.size(node.value, state)
            return state
        if isinstance(node, ast.Assign):
            k = self.size(node.value, state)
            number = self.is_number(node.value, state)
            for target in node.targets:
                if isinstance(target, ast.Name):  # a container: with all it will be given
                    state.write(target.id, k + self.containers.get(target.id, 0.0), number,
                                target.id in self.containers and not isinstance(node.value, ast.Constant))
                elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and state.outer is None \
                        and target.value.id in self.containers and state.is_fresh(target.value.id):
                    # (not in a helper: called n times, it would fill the container n times over)
                    self.size(target.slice, state)  # counted in the container's coefficient already
                else:
                    raise _NotAtSight
            return state
        if isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    state.forget({target.id})
                elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                    self.size(target, state)
                else:
                    raise _NotAtSight
            return state
        if isinstance(node, ast.If):
            self.size(node.test, state)
            then = self.block(node.body, state.copy())
            other = self.block(node.orelse, state.copy())
            then.join(other)
            return then
        if isinstance(node, ast.Try):
            before = state.copy()
            done = self.block(node.body, state.copy())
            done = self.block(node.orelse, done)
            # a handler starts wherever the body stopped: every coefficient so far, numbers only if surely kept
            start = done.copy()
            start.numbers = before.numbers & done.numbers - _stored(node.body)
            start.fresh = before.fresh & done.fresh - _stored(node.body)
            ends = [done]
            for handler in node.handlers:
                if handler.name is not None or not _exception_type(handler.type):
                    raise _NotAtSight
                ends.append(self.block(handler.body, start.copy()))
            end = ends[0]
            end.join(*ends[1:], start)
            return self.block(node.finalbody, end)
        if isinstance(node, ast.Raise):
            if node.cause is not None:
                raise _NotAtSight
            if node.exc is not None:
                self.size(node.exc, state)
            return state
        if isinstance(node, ast.Return) and state.returns is not None:
            state.returns.append(self.size(node.value, state) if node.value is not None else 1.0)
            return state
        if isinstance(node, ast.FunctionDef) and top:  # (in a branch, a later call might reach a registry function)
            args = node.args
            if node.decorator_list or node.returns or args.vararg or args.kwarg or args.kwonlyargs or \
                    args.posonlyargs or args.defaults or any(a.annotation for a in args.args) or \
                    node.name in BOUNDED_CALLS | self.functions | set(self.helpers) or \
                    node.name in state.k or node.name in self.containers:
                raise _NotAtSight
            self.helpers[node.name] = node
            return state
        raise _NotAtSight  # loops, with, global, class, import, augmented assignment, ...

    def call_helper(self, fn: ast.FunctionDef, node: ast.Call, state: _State) -> float:
        if self.in_helper or node.keywords or any(isinstance(a, ast.Starred) for a in node.args) or \
                len(node.args) != len(fn.args.args):
            raise _NotAtSight
        params = [a.arg for a in fn.args.args]
        sizes = [self.size(a, state) for a in node.args]
        numbers = {p for p, a in zip(params, node.args, strict=True) if self.is_number(a, state)}
        module = state if state.outer is None else state.outer
        inner = _State(dict(zip(params, sizes, strict=True)), numbers, outer=module,
                       local=frozenset(params) | _stored(fn.body), returns=[])
        self.in_helper = True
        try:
            self.block(fn.body, inner)
        finally:
            self.in_helper = False
        return max(inner.returns or [1.0])

    # ------------------------------------------------------------ expressions

    def size(self, node: ast.AST, state: _State) -> float:
        k = self._size(node, state)
        if k > self.limit:
            raise _NotAtSight
        return k

    def _sum(self, nodes: Any, state: _State) -> float:
        return sum((self.size(n, state) for n in nodes if n is not None), 0.0)

    def _size(self, node: ast.AST, state: _State) -> float:  # noqa: C901 - one case per kind of node
        if isinstance(node, ast.Constant):
            return 1.0
        if isinstance(node, ast.Name):
            if node.id in self.helpers or node.id in self.others:
                raise _NotAtSight  # a helper is only ever called; sorted(items, key=add_days_unbounded)
            return state.size(node.id)
        if isinstance(node, ast.Starred):
            return self.size(node.value, state)
        if isinstance(node, ast.JoinedStr):
            return 1.0 + sum(self.size(v, state) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            if node.format_spec is not None:
                raise _NotAtSight  # f'{x:>{n}}'
            return 4 * self.size(node.value, state)
        if isinstance(node, ast.BoolOp):
            return max(self.size(v, state) for v in node.values)
        if isinstance(node, ast.Compare):
            self._sum([node.left, *node.comparators], state)
            return 1.0
        if isinstance(node, ast.UnaryOp):
            k = self.size(node.operand, state)
            return 1.0 if isinstance(node.op, ast.Not) else k
        if isinstance(node, ast.IfExp):
            self.size(node.test, state)
            return max(self.size(node.body, state), self.size(node.orelse, state))
        if isinstance(node, ast.Subscript):
            self.size(node.slice, state)
            return self.size(node.value, state)
        if isinstance(node, ast.Slice):
            self._sum([node.lower, node.upper, node.step], state)
            return 1.0
        if isinstance(node, ast.Attribute):
            k = self.size(node.value, state)
            return 1.0 if node.attr in _NUMBER_ATTRS else k  # a date's month, a timedelta's days
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) and _literal(node):
            return 1.0  # written out in the code: no bigger than the code
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return 1.0 + self._sum(node.elts, state)
        if isinstance(node, ast.Dict):
            return 1.0 + self._sum(node.keys, state) + self._sum(node.values, state)
        if isinstance(node, ast.BinOp):
            return self._binop(node, state)
        if isinstance(node, ast.Call):
            return self._call(node, state)
        if isinstance(node, _COMPREHENSIONS):
            return self._filter(node, state)
        raise _NotAtSight  # lambda, walrus, await, yield, ...

    def _binop(self, node: ast.BinOp, state: _State) -> float:
        op = node.op
        if self.is_number(node, state) and not isinstance(op, ast.Mult):
            # numbers (or an error): a sum has at most one digit more than its larger side, the rest no more
            k = max(self.size(node.left, state), self.size(node.right, state))
            return k + 1 if isinstance(op, ast.Add | ast.Sub) else k
        if isinstance(op, _ADDING):
            k = self.size(node.left, state) + self.size(node.right, state)
            if isinstance(op, ast.Add | ast.Sub) and (_timedelta(node.left) or _timedelta(node.right)):
                return 1.0  # a date, datetime or timedelta moved by a timedelta (anything else is a TypeError)
            return k
        if isinstance(op, ast.Mult):
            for count, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(count, ast.Constant) and isinstance(count.value, int) and abs(count.value) <= _MAX_REPEAT:
                    k = self.size(other, state)
                    return k + 1 if self.is_number(other, state) else abs(count.value) * k + 1
            if self.is_number(node.left, state) and self.is_number(node.right, state):
                return self.size(node.left, state) + self.size(node.right, state)  # the digits add
            raise _NotAtSight
        if isinstance(op, ast.Mod):
            left = node.left
            if isinstance(left, ast.Constant) and isinstance(left.value, str):
                conversions = _FORMAT.findall(left.value)
                if any(w == "*" or p == "*" or len(w) > 3 or len(p) > 3 for w, p, _ in conversions):
                    raise _NotAtSight  # '%0*d' % (n, 1), '%09999999d' % 1
                k = self.size(node.right, state)
                if all(c in _NUMBER_CONVERSIONS for _, _, c in conversions):
                    return 1.0 + len(conversions) + k  # digits of numbers (text is a TypeError)
                return 1.0 + len(conversions) + 4 * k
            if self.is_number(left, state) and self.is_number(node.right, state):
                return self.size(left, state) + self.size(node.right, state)
        raise _NotAtSight  # **, <<, @, and * or % of what may be text

    def _call(self, node: ast.Call, state: _State) -> float:
        args = [*node.args, *(kw.value for kw in node.keywords)]
        func = node.func
        if isinstance(func, ast.Name):
            name = func.id
            if name in self.helpers:
                return self.call_helper(self.helpers[name], node, state)
            total = self._sum(args, state)
            if name in _FIXED_CALLS or name in _INPUT_CALLS:
                return 1.0
            if name in _PART_CALLS:
                return total
            if name in _CARRY_CALLS or name in _EXCEPTIONS:
                return 2 * total + 1
            if name in _TEXT_CALLS:  # the digits of a number; text with escapes of anything else
                return total if all(self.is_number(a, state) for a in args) else 4 * total + 1
            if name in self.functions:  # the registry's word: at most 4 times its arguments (engine/registry.py)
                return 4 * total + 1
            raise _NotAtSight
        if not isinstance(func, ast.Attribute):
            raise _NotAtSight
        method = func.attr
        if method not in _BOUNDED_METHODS:
            raise _NotAtSight
        receiver = self.size(func.value, state)
        total = self._sum(args, state)
        if method in _FIXED_METHODS:
            return 1.0
        if method in _CARRY_METHODS:
            return max(receiver, total)
        if method in _CASE_METHODS:
            return 3 * receiver
        if method == "split":
            return 2 * receiver
        if method == "join" and isinstance(func.value, ast.Constant) and isinstance(func.value.value, str) \
                and len(node.args) == 1 and not node.keywords:
            return (len(func.value.value) + 1) * 2 * total + 1
        if method == "replace" and not node.args and all(kw.arg in _DATE_FIELDS for kw in node.keywords):
            return 1.0  # a date's or datetime's replace(year=...) (str.replace takes no keywords)
        raise _NotAtSight

    def _filter(self, node: ast.AST, state: _State) -> float:
        """`[x for x in items if ...]` or `[x["id"] for x in items]`: one generator whose element is its own
        variable or a part of it (items, attributes), no comprehension inside: the result is no bigger than
        `items` and its parts, one list."""
        if not isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp) or len(node.generators) != 1 or \
                not isinstance(node.generators[0].target, ast.Name):
            return self._comprehension(node, state)
        gen = node.generators[0]
        if gen.is_async or gen.target.id in self.helpers:
            raise _NotAtSight
        part = node.elt
        while isinstance(part, ast.Subscript | ast.Attribute):
            part = part.value
        if not isinstance(part, ast.Name) or part.id != gen.target.id:
            return self._comprehension(node, state)
        if any(isinstance(n, _COMPREHENSIONS) for p in (gen.iter, *gen.ifs, node.elt) for n in ast.walk(p)):
            raise _NotAtSight
        k = self.size(gen.iter, state)
        inner = state.copy()
        inner.k[gen.target.id] = k
        inner.forget({gen.target.id})
        if inner.outer is not None:
            inner.local = inner.local | {gen.target.id}
        self._sum(gen.ifs, inner)
        self.size(node.elt, inner)
        return 2 * k + 1

    def _comprehension(self, node: Any, state: _State) -> float:
        """Any other comprehension, in an expression only (`{k: str(v) for k, v in capital.items()}`): one
        generator over what holds no comprehension, none inside. n items of at most k * M units each: at most
        k(items) * k * M**2 units, and as nothing in an expression reads it back to copy it again, the whole
        expression stays within the limit times M**2. A script could feed it to the next line: not at sight."""
        if not self.expression or len(node.generators) != 1 or node.generators[0].is_async:
            raise _NotAtSight
        gen = node.generators[0]
        parts = [gen.iter, *gen.ifs, *((node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,))]
        if any(isinstance(n, _COMPREHENSIONS) for p in parts for n in ast.walk(p)):
            raise _NotAtSight
        names = [n for n in ast.walk(gen.target) if isinstance(n, ast.Name)]
        if not all(isinstance(n, ast.Name | ast.Tuple | ast.Store) for n in ast.walk(gen.target)) or \
                any(n.id in self.helpers for n in names):
            raise _NotAtSight
        k = self.size(gen.iter, state)
        inner = state.copy()
        for n in names:
            inner.k[n.id] = k
        inner.forget({n.id for n in names})
        self._sum(gen.ifs, inner)
        return self.size(ast.Tuple(elts=parts[len(gen.ifs) + 1:], ctx=ast.Load()), inner) * k

    def is_number(self, node: ast.AST, state: _State) -> bool:
        """Whether `node` surely gives a number (or a timedelta), or fails: never text or a sequence."""
        if isinstance(node, ast.Constant):
            return type(node.value) in (int, float, bool)
        if isinstance(node, ast.Name):
            return state.is_number(node.id)
        if isinstance(node, ast.Attribute):
            return node.attr in _NUMBER_ATTRS
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                return node.func.id in _NUMBER_CALLS and node.func.id not in self.helpers
            return isinstance(node.func, ast.Attribute) and node.func.attr in _NUMBER_METHODS
        if isinstance(node, ast.UnaryOp):
            return isinstance(node.op, ast.USub | ast.UAdd) and self.is_number(node.operand, state)
        if isinstance(node, ast.IfExp):
            return self.is_number(node.body, state) and self.is_number(node.orelse, state)
        if isinstance(node, ast.BinOp):
            left, right = self.is_number(node.left, state), self.is_number(node.right, state)
            if isinstance(node.op, ast.Add | ast.Sub | ast.FloorDiv | ast.Div):
                return left or right  # a number with text or a list is a TypeError
            if isinstance(node.op, ast.Mod):
                return left  # text % a number is formatting
            if isinstance(node.op, ast.Mult):
                return left and right
        return False


def _literal(node: ast.AST | None) -> bool:
    if node is None or isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return None not in node.keys and all(_literal(e) for e in (*node.keys, *node.values))
    return False


def _timedelta(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "timedelta"


def _fresh(node: ast.AST) -> bool:
    """A new container nothing else holds (a display, a shallow copy by dict() or list()), or a constant."""
    return isinstance(node, ast.Dict | ast.List | ast.Constant) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("dict", "list"))


def _exception_type(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _EXCEPTIONS
    return isinstance(node, ast.Tuple) and all(isinstance(e, ast.Name) and e.id in _EXCEPTIONS for e in node.elts)


def _stored(body: list[ast.stmt]) -> frozenset[str]:
    """Every name a block binds or deletes (nested blocks included)."""
    return frozenset(n.id for stmt in body for n in ast.walk(stmt)
                     if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load))


def bounded_at_sight(tree: ast.AST, functions: frozenset[str] = frozenset(),
                     others: frozenset[str] = frozenset()) -> bool:
    """True when running the expression `tree` costs at most polynomially in its own size and the data it reads
    (the size count above). `functions`: the registry's functions declared bounded; `others`: the other
    functions injected (the code may not even name them: `sorted(items, key=f)` would call them)."""
    body = tree.body if isinstance(tree, ast.Expression) else tree
    try:
        judge = _Judge(tree, functions, others)
        judge.expression = True
        judge.size(body, _State({}, set()))
    except (_NotAtSight, RecursionError):
        return False
    except Exception:  # noqa: BLE001 - a judge that cannot tell sends the code to the child, as before
        return False
    return True


def straight_line(tree: ast.Module, functions: frozenset[str] = frozenset(),
                  others: frozenset[str] = frozenset()) -> bool:
    """A script bounded at sight: no loops; assignments, item assignments into containers it made, `del`,
    `if`, `try`, `raise` and `def` helpers, every value within SIGHT_GROWTH times the size of the data it
    reads (the size count above)."""
    try:
        judge = _Judge(tree, functions, others)
        judge.block(tree.body, _State({}, set()), top=True)
    except (_NotAtSight, RecursionError):
        return False
    except Exception:  # noqa: BLE001 - a judge that cannot tell sends the code to the child, as before
        return False
    return True


# ---------------------------------------------------------------- the child


def run_budgeted(fn: Callable[[], T], budget: ScriptBudget, what: str) -> T:
    """`fn()` in a forked child under `budget`; its result, or the CarepathError it raised, in the parent.

    `what` names the code in messages ("script 'x = 1'"). `fn` must return something pickle can carry
    and must raise only CarepathErrors (other exceptions come back as ExpressionError)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process: see the module
        pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(fn, budget, read_end, write_end)
    os.close(write_end)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], budget.wall_seconds)
            if not ready:
                used = _cpu_seconds(pid)
                _kill(pid)
                raise BudgetExceeded(f"{what} gave no answer within {budget.wall_seconds:g} s of waiting and was "
                                     f"stopped, having used {used:.1f} s of its {budget.cpu_seconds:g} s CPU budget "
                                     "(a machine too busy to run it, or code that waits); raise "
                                     "CAREPATH_SCRIPT_WALL_SECONDS if the machine is busy")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and not chunks:
        sig = os.WTERMSIG(status)
        if sig in (signal.SIGPROF, signal.SIGXCPU, signal.SIGKILL):
            raise BudgetExceeded(f"{what} used more than its CPU-time budget of {budget.cpu_seconds:g} s "
                                 "and was stopped; make it do less, or raise CAREPATH_SCRIPT_CPU_SECONDS")
        raise BudgetExceeded(f"{what} ended abnormally ({signal.Signals(sig).name}) — likely out of its memory "
                             f"budget of {budget.memory_mb} MB")
    if not chunks:
        raise BudgetExceeded(f"{what} ended without an answer — likely out of its memory budget of "
                             f"{budget.memory_mb} MB")
    payload = pickle.loads(b"".join(chunks))
    kind = payload[0]
    if kind == "ok":
        return payload[1]  # type: ignore[no-any-return]
    if kind == "memory":
        raise BudgetExceeded(f"{what} needed more than its memory budget of {budget.memory_mb} MB and was "
                             "stopped; make it build less, or raise CAREPATH_SCRIPT_MEMORY_MB")
    if kind == "carepath":
        raise _rebuild(payload[1], payload[2], payload[3])
    raise ExpressionError(f"{payload[1]} in {what}")


def _child(fn: Callable[[], Any], budget: ScriptBudget, read_end: int, write_end: int) -> None:
    code = 0
    try:
        os.close(read_end)
        _limit(budget)
        try:
            payload: tuple[Any, ...] = ("ok", fn())
        except MemoryError:
            payload = ("memory",)
        except CarepathError as exc:
            payload = ("carepath", type(exc), exc.message, exc.context)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised here
            payload = ("error", f"{type(exc).__name__}: {exc}")
        try:
            data = pickle.dumps(payload)
        except MemoryError:
            data = pickle.dumps(("memory",))
        except Exception as exc:  # noqa: BLE001 - a value pickle cannot carry
            data = pickle.dumps(("error", f"the result cannot be passed back ({type(exc).__name__}: {exc})"))
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view):]
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not go on as the parent
        code = 3
    finally:
        os._exit(code)


def _limit(budget: ScriptBudget) -> None:
    signal.signal(signal.SIGPROF, signal.SIG_DFL)  # default action: end the process, even inside C code
    signal.setitimer(signal.ITIMER_PROF, budget.cpu_seconds)
    whole = math.ceil(budget.cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (whole, whole + 1))
    with open("/proc/self/statm", "rb") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    limit = size + budget.memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live child has used, from /proc; 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _rebuild(cls: type[CarepathError], message: str, context: dict[str, Any]) -> CarepathError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.message, exc.context = message, dict(context)
    return exc


# ---------------------------------------------------------------- deploy time

# A constant result bigger than this is refused at deploy (10**10**8 is 41 MB of digits; 'x'*10**10 is 10 GB).
MAX_CONSTANT_BITS = 1 << 20  # 128 KiB of integer
MAX_CONSTANT_REPEAT = 10_000_000


def _const_int(node: ast.AST) -> int | None:
    """The value of a constant integer expression whose size we can bound without computing it."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _const_int(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp):
        left, right = _const_int(node.left), _const_int(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow):
            if right < 0 or _pow_bits(left, right) > MAX_CONSTANT_BITS:
                return None
            return int(left ** right)
        if isinstance(node.op, ast.LShift):
            return left << right if 0 <= right and left.bit_length() + right <= MAX_CONSTANT_BITS else None
        if isinstance(node.op, ast.Mult) and left.bit_length() + right.bit_length() > MAX_CONSTANT_BITS:
            return None  # never computed here: the deploy check itself must stay cheap
        ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}
        op = ops.get(type(node.op))
        return op(left, right) if op else None
    return None


def _pow_bits(base: int, exp: int) -> float:
    return abs(base).bit_length() * exp if abs(base) > 1 else 1


def _huge(node: ast.AST) -> str | None:
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            base, exp = _const_int(node.left), _const_int(node.right)
            if exp is None and _is_power_tower(node.right):
                return "a constant power too large to compute"
            if base is not None and exp is not None and exp > 0 and _pow_bits(base, exp) > MAX_CONSTANT_BITS:
                return f"a constant power with about {int(_pow_bits(base, exp) * 0.30103):,} digits"
        if isinstance(node.op, ast.LShift):
            shift = _const_int(node.right)
            if shift is not None and shift > MAX_CONSTANT_BITS:
                return f"a constant shift by {shift:,} bits"
        if isinstance(node.op, ast.Mult):
            for seq, count in ((node.left, node.right), (node.right, node.left)):
                n = _const_int(count)
                if n is not None and n > MAX_CONSTANT_REPEAT and isinstance(seq, ast.Constant | ast.List |
                                                                            ast.Tuple | ast.JoinedStr):
                    return f"a sequence repeated {n:,} times"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        for arg in node.args:
            n = _const_int(arg)
            if n is not None and abs(n) > 10 ** 9:
                return f"a range of {abs(n):,} steps"
    return None


def _is_power_tower(node: ast.AST) -> bool:
    """`a ** b` whose own value is too big to compute (the exponent of 10**10**8 is 10**8: fine)."""
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and _const_int(node) is None and \
        _const_int(node.left) is not None and _const_int(node.right) is not None


def _always_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value)


def _leaves_loop(loop: ast.While) -> bool:
    """Whether anything in the loop's body can end it: a break of this loop, a return or a raise."""
    stack: list[ast.AST] = list(loop.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Break | ast.Return | ast.Raise):
            return True
        if isinstance(node, ast.While | ast.For | ast.FunctionDef | ast.Lambda):
            # a break inside a nested loop ends that loop, not ours; a raise or return still would
            stack.extend(n for n in ast.walk(node) if isinstance(n, ast.Return | ast.Raise) and n is not node)
            if isinstance(node, ast.While | ast.For):
                stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


def unbounded_construct(tree: ast.AST) -> tuple[str, int | None] | None:
    """The first construct in `tree` that can only exhaust the budget: (what, line in the source)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.While) and _always_true(node.test) and not _leaves_loop(node):
            return "'while' loop whose condition is always true and that has no break, return or raise " \
                   "— it can never end", node.lineno
        what = _huge(node)
        if what:
            return f"{what} — it would exhaust the script budget", getattr(node, "lineno", None)
    return None
