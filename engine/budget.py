"""Every expression and script a diagram carries runs under a CPU-time and memory budget.

A modeller's `while True: pass` or `x = 10**10**8` must not hang the step, the timer job or the
machine. Python cannot stop its own thread in the middle of one C-level operation (`10**10**8` is a
single bytecode; `sum(range(10**12))` loops in C), so tracing or instruction counting in-process
is not enough. The budget is kept by the operating system instead:

* **Bounded at sight → in-process.** Most expressions (not scripts) are made only of
  comparisons, arithmetic other than `*`, `**`, `<<` and `%`, subscripts, and calls to a short list of
  functions whose cost is bounded by the data they are given (`now()`, `case()`, `len`, `min`,
  `timedelta`, `.get`, ...), with no loops, comprehensions, lambdas or function definitions. Their cost
  is bounded by the size of the expression and the task data, so they run directly (`bounded_at_sight`).
  A script runs in-process only when it is straight-line assignments of such expressions and no line
  reads what an earlier line wrote (`closed_at = now().isoformat()`): otherwise even a script without
  loops could double a string on every line (`s = s + s`, forty times).
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
import resource
import select
import signal
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.errors import CarepathError, ExpressionError

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
            raise ValueError("script budget values must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScriptBudget:
        env = os.environ if env is None else env
        try:
            cpu = float(env.get("CAREPATH_SCRIPT_CPU_SECONDS", "2"))
            memory = int(env.get("CAREPATH_SCRIPT_MEMORY_MB", "256"))
            wall = float(env.get("CAREPATH_SCRIPT_WALL_SECONDS", "0")) or max(30.0, 15 * cpu)
        except ValueError as exc:
            raise ValueError(f"CAREPATH_SCRIPT_* settings must be numbers: {exc}") from None
        return cls(cpu, memory, wall)


# ---------------------------------------------------------------- in-process when bounded at sight

# Functions whose cost is bounded by the size of their arguments (which come from task data or from
# other bounded-at-sight expressions). range, round, pow, sorted-with-key, the registry's functions
# (add_working_days(d, 10**9) loops) and every unknown name go to the child.
BOUNDED_CALLS = frozenset({
    "now", "case", "open_processes", "len", "abs", "min", "max", "sum", "any", "all", "bool", "int",
    "float", "str", "list", "dict", "set", "tuple", "sorted", "isinstance", "timedelta", "datetime",
    "date", "repr", "chr", "ord",
})
_BOUNDED_METHODS = frozenset({
    "get", "keys", "values", "items", "lower", "upper", "strip", "lstrip", "rstrip", "startswith",
    "endswith", "isoformat", "date", "weekday", "isoweekday", "split", "count", "index", "copy",
    "title", "casefold",
})
_BOUNDED_OPS = (ast.Add, ast.Sub, ast.Div, ast.FloorDiv, ast.BitAnd, ast.BitOr, ast.BitXor, ast.RShift)
_LEAVES = (ast.Constant, ast.Name, ast.Load, ast.Store, ast.Del, ast.cmpop, ast.boolop, ast.unaryop,
           ast.expr_context, ast.keyword, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.IfExp, ast.Subscript,
           ast.Slice, ast.Attribute, ast.Tuple, ast.List, ast.Dict, ast.Set, ast.Expression, ast.Module,
           ast.Expr, ast.Assign, ast.AugAssign, ast.If, ast.Pass, ast.Delete, ast.operator, ast.Starred)


def bounded_at_sight(tree: ast.AST) -> bool:
    """True when running `tree` costs at most polynomially in its own size and the data it reads:
    no loops, comprehensions, lambdas or definitions; no `*`, `**`, `<<`, `%` or format specs (each
    can build something huge from small numbers); calls only to `BOUNDED_CALLS`/`_BOUNDED_METHODS`."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign)):
            if not isinstance(node.op, _BOUNDED_OPS):
                return False
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if func.id not in BOUNDED_CALLS:
                    return False
            elif isinstance(func, ast.Attribute):
                if func.attr not in _BOUNDED_METHODS:
                    return False
            else:
                return False
        elif isinstance(node, ast.JoinedStr | ast.FormattedValue):
            if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
                return False
        elif not isinstance(node, _LEAVES):
            return False
    return True


def straight_line(tree: ast.Module) -> bool:
    """A script bounded at sight: assignments to plain names of expressions bounded at sight, where no
    line reads a name an earlier line wrote, so each line costs what it would as an expression."""
    written: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Pass):
            continue
        if not isinstance(stmt, ast.Assign) or not all(isinstance(t, ast.Name) for t in stmt.targets):
            return False
        if not bounded_at_sight(stmt.value):
            return False
        if any(isinstance(n, ast.Name) and n.id in written for n in ast.walk(stmt.value)):
            return False
        written.update(t.id for t in stmt.targets)  # type: ignore[attr-defined]
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
