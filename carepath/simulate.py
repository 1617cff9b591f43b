"""What-if simulation (issue 16): a period of synthetic contacts run through the real diagrams, handlers,
decision tables and forms on a throwaway simulated-clock database, with teams that queue work.

The engine is the product's own (engine/runtime.py) on a fresh in-memory SQLite database copied from the
migrated schema (engine/trial.py `_scratch_database`), in simulation mode (engine/simulation.py: only the events
the measures read, unchained; the clock and waiting workflows in memory); the processes are the ones deployed
on `--db` (read only) or, when it has none, the files in processes/. Nothing is written to the live database.

A run is a discrete-event loop: contacts arrive (by route, weekday and season), each starts its process;
every user task that appears joins its team's queue a hand-off later (`handoff_minutes`); a team's free staff
take tasks in the order they were queued, within working hours, and complete them after a drawn duration with
answers drawn from the scenario's policy for the form (any field not named gets a valid value from the form's
schema); the tasks each step made ready or withdrew are told by the engine (`Engine.on_tasks_changed`). The
engine's clock is advanced to each event with `advance_clock`, which fires the diagrams' own timers.
Everything is drawn from one `random.Random(seed)`, in one order: the same scenario and seed give the same
output, in one process or with the cases shared between two (`parts=2`, `_Peer`; docs/simulation.md "One run on
both cores"). The scenario format is in docs/simulation.md.
"""

from __future__ import annotations

import heapq
import importlib
import json
import logging
import math
import multiprocessing
import os
import random
import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select

from engine.collector import fewer_collections
from engine.errors import CarepathError, NotFoundError, StateError, ValidationError

from . import forked

log = logging.getLogger("carepath.simulation")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = ROOT / "processes" / "config" / "simulation.yaml"
UK = ZoneInfo("Europe/London")
#: What a run reports, as this code computes it: part of every kept simulation's key (api/simulation_pages.py), so a
#: result kept by older code is not opened again as today's answer. Raise it with any change that alters a run's
#: figures or report (2: the last whole week's queue, the staff by team and the chart labels of session 30).
RESULTS_REVISION = 2
MAX_STAFF = 10_000  # members of staff in one team: far beyond any council's, and a typo's hundred billion refused
ACTOR = "simulation"
TOP_KEYS = {"start", "days", "seed", "arrivals", "weekday", "season", "people", "forms", "durations", "teams",
            "deadlines", "handoff_minutes"}
PEOPLE_KEYS = {"age", "outcomes_unable", "needs", "lives_alone", "crisis", "safeguarding_concern",
               "reablement_appropriate", "carer_support_asked"}
ROUTE_KEYS = {"per_year", "process", "caller", "safeguarding_concern", "crisis", "start_data"}
TEAM_KEYS = {"staff", "hours", "weekends"}
MAX_AGE = 130  # the oldest a person drawn may be
# the timers whose firing means a deadline was missed (docs/simulation.md): element id -> what it stands for
DEADLINE_WORDS = ("overdue", "late", "deadline", "passed")
#: the history events a run keeps (engine/simulation.py): those the measures and the CLD rows they count read
#: (handlers/measures.py, handlers/cld.py: every event type either names) and the report's `timer.fired`; the
#: rest (task.left, timer.cleared, case.created, clock.advanced, message and incident events...) are not written.
#: tests/test_simulate.py checks a run keeping them all gives the same output.
KEPT_EVENTS = frozenset({
    "case.closed", "case.updated", "handler.called", "instance.cancelled", "instance.child_started",
    "instance.completed", "instance.ended", "instance.started", "task.completed", "task.ready", "timer.fired",
    "timer.set"})


#: the cycle collector's threshold while a run goes on (engine/collector.py): its youngest generation is walked
#: once a million more objects are alive than at the last walk. The engine's steps leave almost no cycles behind
#: (engine/step.py `_let_go`), so what the walks found was mostly objects still in use: with the usual 200,000 they
#: were 7-9% of a run; with a million they hardly run, for 120 MB more at the largest (docs/performance.md).
COLLECTOR_GEN0 = 1_000_000


class ScenarioError(CarepathError):
    """A scenario file that cannot be run: the message names the line and key."""


# ---------------------------------------------------------------------- the scenario file
def _lines(node: Any, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Key path -> line number (1-based) of every key and list item in a composed YAML document (a key reached
    through an alias, `*name`, by the line it is written on under its anchor; load_scenario has refused a document
    whose aliases expand it beyond MAX_VALUES)."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = _key(k)
            out[(*path, key)] = k.start_mark.line + 1
            _lines(v, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[(*path, i)] = v.start_mark.line + 1
            _lines(v, (*path, i), out)
    return out


def _duplicate(node: Any) -> tuple[tuple, int, int] | None:
    """The first key written twice in one mapping of a composed YAML document: (its path, the line of the second,
    the line of the first), or None. YAML readers keep the last quietly; a scenario that says `hospital:` twice
    or `seed:` twice has a mistake in it. (A key over one merged in from `<<: *name` is not a repeat.)"""
    stack: list[tuple[Any, tuple]] = [(node, ())]
    seen_nodes: set[int] = set()
    while stack:
        n, path = stack.pop()
        if id(n) in seen_nodes:
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge":
                    continue
                key = _key(k)
                mark = repr(key)
                if mark in first:
                    return (*path, key), k.start_mark.line + 1, first[mark]
                first[mark] = k.start_mark.line + 1
                stack.append((v, (*path, key)))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(n.value))
    return None


class _ScenarioLoader(yaml.SafeLoader):
    """YAML as PyYAML reads it, and a number written with an exponent but no point (`5e3`, `2E-1`) read as the
    number it is: PyYAML follows YAML 1.1, where such a text is a string, so a scenario giving `per_year: 5e3`
    was refused as "not a number" (YAML 1.2, JSON and Python all read it as 5000.0)."""


_ScenarioLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                      re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _key(node: Any) -> Any:
    """A mapping key as safe_load reads it (a number, a date...), or its text: a merge key (`<<: *name`) reads as
    nothing on its own."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:merge":
        return node.value
    return yaml.load(yaml.serialize(node), Loader=_ScenarioLoader)  # noqa: S506 (a SafeLoader)


#: the largest numbers a scenario may give: far beyond any council's (the default county has 26,444 contacts a
#: year), but small enough that no draw overflows a date and no run goes on for days
MAX_PER_YEAR = 1_000_000
MAX_MEDIAN_HOURS = 8_760  # a year of hours
MAX_HOLD_DAYS = 3_660  # ten years, the longest period
START_YEARS = (2000, 2099)  # a run's first day: its bank holidays known, its dates far from the calendar's end
MAX_SPREAD = 5.0  # of a duration's logarithm: a draw's 95th percentile is then 3,700 times its median

#: the values a scenario may hold once its aliases are written out: far more than any council's scenario (the
#: default has about 300), far fewer than a file of nested aliases expands to (a few lines can make billions)
MAX_VALUES = 100_000


def _expanded(node: Any, sizes: dict[int, int]) -> int:
    """How many values `node` holds with every alias written out (each node counted once: linear in the file)."""
    got = sizes.get(id(node))
    if got is None:
        got = 1
        if isinstance(node, yaml.MappingNode):
            got += sum(_expanded(k, sizes) + _expanded(v, sizes) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            got += sum(_expanded(v, sizes) for v in node.value)
        sizes[id(node)] = got
    return got


@dataclass
class Scenario:
    data: dict[str, Any]
    lines: dict[tuple, int]
    source: str

    def where(self, *path: Any) -> str:
        """`file line N (a/b/c)` for a key path (the nearest enclosing key that has a line)."""
        p = tuple(path)
        while p and p not in self.lines:
            p = p[:-1]
        line = f" line {self.lines[p]}" if p in self.lines else ""
        return f"{self.source}{line} ({'/'.join(str(x) for x in path)})"


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read a scenario file (YAML, of which JSON is a part), with each key's line for messages. A file that is not
    UTF-8 text, nests too deeply or expands (through YAML aliases) to more than MAX_VALUES values is refused."""
    path = Path(path) if path else DEFAULT_SCENARIO
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ScenarioError(f"{path.name} line {line}: not UTF-8 text (byte {exc.start + 1} of the file cannot be "
                            "read); a scenario is a YAML or JSON text file") from None
    try:
        node = yaml.compose(text, Loader=_ScenarioLoader)
        if node is not None and _expanded(node, {}) > MAX_VALUES:
            raise ScenarioError(f"{path.name}: the scenario holds more than {MAX_VALUES:,} values once its YAML "
                                "aliases (*name) are written out; a scenario needs a few hundred")
        data = yaml.load(text, Loader=_ScenarioLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise ScenarioError(f"{path.name}{at}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise ScenarioError(f"{path.name}: nested too deeply to be read (lists or mappings within each other "
                            "hundreds of levels down)") from None
    except ValueError as exc:  # a value YAML reads as a date or time that is not one (2026-02-30)
        raise ScenarioError(f"{path.name}{_bad_timestamp(node)}: not a real date or time ({exc})") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path.name}: a scenario is a mapping of keys (arrivals, people, forms, teams...)")
    twice = _duplicate(node)
    if twice is not None:
        keys, line, first = twice
        raise ScenarioError(f"{path.name} line {line} ({'/'.join(map(str, keys))}): {keys[-1]!r} is given twice in "
                            f"the same place (first on line {first}); a YAML reader would keep only the last")
    return Scenario(data, _lines(node), path.name)


def _bad_timestamp(node: Any) -> str:
    """" line N (VALUE)" of the first value in the composed YAML that reads as a date or time but is not one, or ""."""
    loader = yaml.SafeLoader("")
    stack = [node] if node is not None else []
    seen: set[int] = set()  # an alias is the same node again
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.ScalarNode):
            if n.tag == "tag:yaml.org,2002:timestamp":
                try:
                    loader.construct_yaml_timestamp(n)
                except ValueError:
                    return f" line {n.start_mark.line + 1} ({n.value})"
        elif isinstance(n, yaml.MappingNode):
            stack.extend(v for pair in reversed(n.value) for v in reversed(pair))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(reversed(n.value))
    return ""


def _number(x: Any) -> bool:
    """A number a scenario may give: an int or a float that is finite (YAML reads .nan and .inf as floats)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _distribution(sc: Scenario, value: Any, *path: Any) -> dict[Any, float]:
    """{value: probability} checked: no negative weight, summing to 1 (within 0.001)."""
    if not isinstance(value, dict) or not value:
        raise ScenarioError(f"{sc.where(*path)}: a distribution is a mapping of value: probability")
    for k, p in value.items():
        if not _number(p) or p < 0:
            raise ScenarioError(f"{sc.where(*path, k)}: the probability of {k!r} must be a number from 0 to 1, "
                                f"not {p!r}")
    total = sum(value.values())
    if abs(total - 1) > 1e-3:
        raise ScenarioError(f"{sc.where(*path)}: the probabilities sum to {total:g}, not 1")
    return value


def _probability(sc: Scenario, value: Any, *path: Any) -> float:
    if not _number(value) or not 0 <= value <= 1:
        raise ScenarioError(f"{sc.where(*path)}: must be a probability from 0 to 1, not {value!r}")
    return float(value)


def _hours(sc: Scenario, text: Any, *path: Any) -> tuple[time, time]:
    m = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", str(text))
    if not m:
        raise ScenarioError(f"{sc.where(*path)}: working hours are written HH:MM-HH:MM, not {text!r}")
    if int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
        raise ScenarioError(f"{sc.where(*path)}: working hours are times of day from 00:00 to 23:59, not {text!r}")
    a, b = time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))
    if b <= a:
        raise ScenarioError(f"{sc.where(*path)}: the working day must end after it starts ({text})")
    return a, b


#: how long one call of a policy (or the import of its module) may run before it is stopped and the run ends
#: naming the scenario's line: a policy answers in microseconds, and one that never returned held the run — and, on
#: the pages, the one simulation a database may run at a time — until the server was stopped.
#: CAREPATH_SIMULATION_POLICY_SECONDS changes it (a simulation's other processes read the caller's setting).
POLICY_SECONDS = 10.0


def policy_seconds() -> float:
    text = os.environ.get("CAREPATH_SIMULATION_POLICY_SECONDS", "")
    try:
        value = float(text) if text.strip() else POLICY_SECONDS
    except ValueError:
        value = POLICY_SECONDS
    return value if math.isfinite(value) and value > 0 else POLICY_SECONDS


class _PolicyOverran(BaseException):
    """Raised in a policy's thread once it has run its time: not an Exception, so that a policy's own
    `except Exception:` does not swallow it (it is raised again every second until the call ends)."""


class _PolicyWatch:
    """One thread a process that stops a policy call (or import) running longer than its limit, by raising
    `_PolicyOverran` in the calling thread (CPython's PyThreadState_SetAsyncExc: any thread, the server's background
    threads too, where a signal could not reach). A call blocked in C (time.sleep, a socket) is stopped only when
    that returns: the limit is for Python that keeps running (a loop that never ends)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.calls: dict[int, float] = {}  # thread id -> monotonic instant its call is due to stop
        self.raised: set[int] = set()
        self.thread: threading.Thread | None = None

    @staticmethod
    def _raise_in(tid: int, exc: type[BaseException] | None) -> None:
        import ctypes

        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(exc) if exc else None)

    def _watch(self) -> None:
        import time as clock

        with self.cond:
            while True:
                if not self.calls:
                    self.cond.wait()
                    continue
                now = clock.monotonic()
                due = min(self.calls.values())
                if due > now:
                    self.cond.wait(due - now)
                    continue
                for tid, at in list(self.calls.items()):
                    if at <= now:
                        self._raise_in(tid, _PolicyOverran)
                        self.raised.add(tid)
                        self.calls[tid] = now + 1.0  # again, should the policy catch it

    def __call__(self, seconds: float) -> _PolicyWatch:
        self.seconds = seconds
        return self

    def __enter__(self) -> None:
        import time as clock

        tid = threading.get_ident()
        with self.cond:
            if self.thread is None or not self.thread.is_alive():  # a forked process has none running
                self.thread = threading.Thread(target=self._watch, name="carepath-policy-watch", daemon=True)
                self.thread.start()
            self.calls[tid] = clock.monotonic() + self.seconds
            self.cond.notify()

    def __exit__(self, *exc: Any) -> None:
        tid = threading.get_ident()
        with self.cond:
            self.calls.pop(tid, None)
            if tid in self.raised:  # raised as the call ended: take back what has not been raised yet
                self.raised.discard(tid)
                self._raise_in(tid, None)


_policy_watch = _PolicyWatch()


def _overran(where: str, what: str, seconds: float) -> ScenarioError:
    return ScenarioError(f"{where}: the policy {what} did not end within {seconds:g} seconds, so it was stopped "
                         "(a loop that never ends?); a policy answers in a moment")


class PolicyTask(dict):
    """The task a policy answers: `task.element_id`, `task.process_id` and `task.team`, or `task["team"]`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _policy(sc: Scenario, dotted: Any, *path: Any) -> Callable[..., Any]:
    text = str(dotted)
    mod, _, name = text.partition(":") if ":" in text else text.rpartition(".")
    seconds = policy_seconds()
    try:
        try:
            with _policy_watch(seconds):
                module = importlib.import_module(mod)
        except _PolicyOverran:
            raise _overran(sc.where(*path), f"module {mod!r} was being imported and", seconds) from None
        fn = getattr(module, name)
    except ScenarioError:
        raise
    except (ImportError, AttributeError, ValueError) as exc:
        raise ScenarioError(f"{sc.where(*path)}: cannot load the policy {text!r} ({exc})") from None
    except SyntaxError as exc:  # the module's own text: where in it
        raise ScenarioError(f"{sc.where(*path)}: cannot load the policy {text!r}: its module is not valid Python "
                            f"({exc.msg}, {exc.filename} line {exc.lineno})") from None
    except Exception as exc:  # noqa: BLE001 - the module raised as it was imported: say so, name the line
        raise ScenarioError(f"{sc.where(*path)}: cannot load the policy {text!r}: importing its module raised "
                            f"{type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise ScenarioError(f"{sc.where(*path)}: the policy {text!r} is not a function")
    return fn


@dataclass
class Checked:
    """A validated scenario, in the shapes the run uses."""

    start: date
    days: int
    seed: int
    routes: dict[str, dict[str, Any]]
    weekday: list[float]
    season: list[float]
    people: dict[str, Any]
    forms: dict[str, dict[str, Any]]
    policies: dict[str, tuple[Callable[..., Any], str]]
    durations: dict[str, Any]
    teams: dict[str, dict[str, Any]]
    scenario: Scenario
    deadlines: dict[str, str] = field(default_factory=dict)  # "process/timer" -> what its firing means
    outcomes: list[str] = field(default_factory=list)  # the contact form's outcome and need codes
    needs: list[str] = field(default_factory=list)
    handoff: timedelta = timedelta(minutes=60)  # a new task reaches its team's queue after this (and < 1.25 times it)


def check_scenario(sc: Scenario, *, processes: set[str], forms: set[str], teams: set[str],
                   days: int | None = None, seed: int | None = None, timers: dict[str, str] | None = None,
                   fields: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
                   tasks: set[str] | None = None) -> Checked:
    """Every rule of the format, each refusal naming the file, line and key (docs/simulation.md). `fields`: each
    form's fields (`form_fields`), when the scenario's answers for a form are to be checked against them; `tasks`:
    the deployed user tasks' ids, when the durations given for tasks are to be checked against them."""
    d = sc.data
    for k in d:
        if k not in TOP_KEYS:
            raise ScenarioError(f"{sc.where(k)}: {k!r} is not a scenario key (one of {', '.join(sorted(TOP_KEYS))})")
    start = d.get("start", date(2026, 4, 1))
    if isinstance(start, str):
        try:
            start = date.fromisoformat(start)
        except ValueError:
            raise ScenarioError(f"{sc.where('start')}: start is a date YYYY-MM-DD, not {start!r}") from None
    if not isinstance(start, date) or isinstance(start, datetime):
        raise ScenarioError(f"{sc.where('start')}: start is a date YYYY-MM-DD")
    if not START_YEARS[0] <= start.year <= START_YEARS[1]:
        raise ScenarioError(f"{sc.where('start')}: start must be a date from {START_YEARS[0]} to {START_YEARS[1]}, "
                            f"not {start.isoformat()}")
    # the period and seed asked for (the command line's --days and --seed, the page's form) are named as such
    days_where = "the period asked" if days is not None else sc.where("days")
    n_days = days if days is not None else d.get("days", 365)
    if not isinstance(n_days, int) or isinstance(n_days, bool) or not 1 <= n_days <= 3660:
        raise ScenarioError(f"{days_where}: days must be a whole number from 1 to 3660, not {n_days!r}")
    the_seed = seed if seed is not None else d.get("seed", 1)
    if not isinstance(the_seed, int) or isinstance(the_seed, bool) or the_seed < 0:
        # 0 or more: Python's generator takes a negative seed's absolute value, so -5 would run as 5 did
        raise ScenarioError(f"{'the seed asked' if seed is not None else sc.where('seed')}: seed must be a whole "
                            f"number, 0 or more, not {the_seed!r}")
    routes: dict[str, dict[str, Any]] = {}
    arrivals = d.get("arrivals")
    if arrivals is None or arrivals == {}:
        raise ScenarioError(f"{sc.where('arrivals')}: the scenario has no arrivals: give at least one route, e.g. "
                            "arrivals: {self: {per_year: 5800, process: front_door}}")
    if not isinstance(arrivals, dict):
        raise ScenarioError(f"{sc.where('arrivals')}: arrivals is a mapping of route: {{per_year, process}}")
    for name, r in arrivals.items():
        if not isinstance(r, dict):
            raise ScenarioError(f"{sc.where('arrivals', name)}: a route is a mapping with per_year and process")
        for k in r:
            if k not in ROUTE_KEYS:
                raise ScenarioError(f"{sc.where('arrivals', name, k)}: {k!r} is not a route key "
                                    f"(one of {', '.join(sorted(ROUTE_KEYS))})")
        rate = r.get("per_year")
        if not _number(rate) or not 0 <= rate <= MAX_PER_YEAR:
            raise ScenarioError(f"{sc.where('arrivals', name, 'per_year')}: contacts a year must be a number from "
                                f"0 to {MAX_PER_YEAR:,}, not {rate!r}")
        proc = r.get("process", "front_door")
        if proc not in processes:
            raise ScenarioError(f"{sc.where('arrivals', name, 'process')}: there is no process {proc!r} "
                                f"(deployed: {', '.join(sorted(processes))})")
        if not isinstance(r.get("start_data") or {}, dict):
            raise ScenarioError(f"{sc.where('arrivals', name, 'start_data')}: start_data is a mapping of the data the "
                                "process starts with")
        route = {"per_year": float(rate), "process": proc, "caller": r.get("caller", "self"),
                 "start_data": r.get("start_data") or {}}
        for k in ("safeguarding_concern", "crisis"):
            if k in r:
                route[k] = _probability(sc, r[k], "arrivals", name, k)
        routes[str(name)] = route
    shape = {}
    for key, n in (("weekday", 7), ("season", 12)):
        v = d.get(key, [1.0] * n)
        if not isinstance(v, list) or len(v) != n or any(
                not _number(x) or x < 0 for x in v) or sum(v) <= 0:
            raise ScenarioError(f"{sc.where(key)}: {key} is a list of {n} numbers of 0 or more (not all 0)")
        mean = sum(v) / n
        shape[key] = [x / mean for x in v]
    people = dict(d.get("people") or {})
    for k, v in people.items():
        if k not in PEOPLE_KEYS:
            raise ScenarioError(f"{sc.where('people', k)}: {k!r} is not a people key "
                                f"(one of {', '.join(sorted(PEOPLE_KEYS))})")
        if k in ("age", "outcomes_unable", "needs"):
            _distribution(sc, v, "people", k)
        else:
            _probability(sc, v, "people", k)
        if k in ("outcomes_unable", "needs"):  # how many outcomes (needs) a person is drawn with
            for count in v:
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise ScenarioError(f"{sc.where('people', k, count)}: {k} gives the probability of each whole "
                                        f"number of them, 0 or more, not {count!r}")
    for band in (people.get("age") or {}):
        m = re.fullmatch(r"(\d{1,3})-(\d{1,3})", str(band))
        if not m:
            raise ScenarioError(f"{sc.where('people', 'age', band)}: an age band is written FROM-TO, e.g. 65-84")
        if not int(m[1]) <= int(m[2]) <= MAX_AGE:
            raise ScenarioError(f"{sc.where('people', 'age', band)}: an age band goes from a younger age to an older "
                                f"one, {MAX_AGE} at most, not {band}")
    form_rules: dict[str, dict[str, Any]] = {}
    policies: dict[str, tuple[Callable[..., Any], str]] = {}
    for form, rules in (d.get("forms") or {}).items():
        if form not in forms:
            raise ScenarioError(f"{sc.where('forms', form)}: there is no form {form!r} in forms/")
        if not isinstance(rules, dict):
            raise ScenarioError(f"{sc.where('forms', form)}: a form's policy is a mapping of field: answers")
        rules = dict(rules)
        if "policy" in rules:
            policies[form] = (_policy(sc, rules.pop("policy"), "forms", form, "policy"),
                              sc.where("forms", form, "policy"))
        for fld, v in rules.items():
            if isinstance(v, dict):
                _distribution(sc, v, "forms", form, fld)
            if fields is not None:
                rules[fld] = v = _json_keys(fields.get(form, {}).get(fld), v)
                _check_answers(sc, fields.get(form, {}), form, fld, v)
        form_rules[form] = rules
    durations = d.get("durations") or {}
    _duration(sc, durations.get("default", {"median_hours": 1.0, "spread": 0.5}), "durations", "default")
    for t, v in (durations.get("teams") or {}).items():
        if t not in teams:
            raise ScenarioError(f"{sc.where('durations', 'teams', t)}: no diagram has a team {t!r}")
        _duration(sc, v, "durations", "teams", t)
    for t, v in (durations.get("tasks") or {}).items():
        if tasks and t not in tasks:
            near = ", ".join(sorted(x for x in tasks if str(t).split("_")[0] in x)[:12]) or "none alike"
            raise ScenarioError(f"{sc.where('durations', 'tasks', t)}: no deployed diagram has a user task {t!r} "
                                f"(user tasks with a like id: {near})")
        _duration(sc, v, "durations", "tasks", t)
    team_rules: dict[str, dict[str, Any]] = {}
    for t, v in (d.get("teams") or {"default": {}}).items():
        if t != "default" and t not in teams:
            raise ScenarioError(f"{sc.where('teams', t)}: no diagram has a team {t!r} "
                                f"(their teams: {', '.join(sorted(teams))})")
        if not isinstance(v, dict):
            raise ScenarioError(f"{sc.where('teams', t)}: a team is a mapping of staff, hours and weekends")
        for k in v:
            if k not in TEAM_KEYS:
                raise ScenarioError(f"{sc.where('teams', t, k)}: {k!r} is not a team key (one of "
                                    f"{', '.join(sorted(TEAM_KEYS))})")
        if not isinstance(v.get("weekends", False), bool):
            raise ScenarioError(f"{sc.where('teams', t, 'weekends')}: weekends is true or false, not "
                                f"{v['weekends']!r}")
        staff = v.get("staff", 1)
        if not isinstance(staff, int) or isinstance(staff, bool) or not 1 <= staff <= MAX_STAFF:
            raise ScenarioError(f"{sc.where('teams', t, 'staff')}: staff must be a whole number from 1 to "
                                f"{MAX_STAFF:,}, not {staff!r}")
        team_rules[t] = {"staff": staff, "hours": _hours(sc, v.get("hours", "09:00-17:00"), "teams", t, "hours"),
                         "weekends": bool(v.get("weekends", False))}
    team_rules.setdefault("default", {"staff": 4, "hours": (time(9), time(17)), "weekends": False})
    deadlines: dict[str, str] = {}
    timers = timers or {}
    given = d.get("deadlines")
    if given is not None and not isinstance(given, dict):
        raise ScenarioError(f"{sc.where('deadlines')}: deadlines is a mapping of process/timer id: what it means")
    for key, label in (given or {}).items():
        if timers and key not in timers:
            near = ", ".join(k for k in sorted(timers) if k.split("/")[0] == str(key).split("/")[0]) or "none"
            raise ScenarioError(f"{sc.where('deadlines', key)}: no deployed diagram has a timer {key!r} "
                                f"(that process's timers: {near})")
        if not isinstance(label, str) or not label.strip():
            raise ScenarioError(f"{sc.where('deadlines', key)}: a deadline is described in words (what the timer "
                                f"firing means, e.g. \"Reablement reached its 6 weeks\"), not {label!r}")
        deadlines[str(key)] = label
    if given is None:  # the diagrams' own words: a timer named or called overdue, late, a deadline...
        deadlines = {k: v for k, v in timers.items() if any(w in f"{k} {v}".lower() for w in DEADLINE_WORDS)}
    handoff = d.get("handoff_minutes", 60)
    if not isinstance(handoff, int) or isinstance(handoff, bool) or not 1 <= handoff <= 1440:
        raise ScenarioError(f"{sc.where('handoff_minutes')}: handoff_minutes must be a whole number of minutes from 1 "
                            f"to 1440, not {handoff!r}")
    return Checked(start, n_days, the_seed, routes, shape["weekday"], shape["season"], people, form_rules, policies,
                   durations, team_rules, sc, deadlines=deadlines, handoff=timedelta(minutes=handoff))


def form_fields(library: Any) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each form's fields a scenario may give answers for, with the schemas an answer may fit: the property's own
    and each one its conditions (`_clauses`) give it."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in library.names():
        schema = library.schema(name)
        props = schema.get("properties") or {}
        got: dict[str, list[dict[str, Any]]] = {k: [v] for k, v in props.items()}
        for clause in _clauses(schema):
            for part in ("then", "else"):
                for k, v in (((clause.get(part) or {}).get("properties")) or {}).items():
                    # what the branch adds to the property's own schema (alone, `minLength: 1` would take a number)
                    got.setdefault(k, []).append({**props.get(k, {}), **v})
        out[name] = got
    return out


def _clauses(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """A form's conditions: its own `if`/`then`/`else` and those in its `allOf`."""
    return ([schema] if "if" in schema else []) + [c for c in schema.get("allOf") or []
                                                   if isinstance(c, dict) and "if" in c]


def _json_keys(schemas: list[dict[str, Any]] | None, v: Any) -> Any:
    """A distribution whose keys JSON could only write as text ("true", "false", "null", "3") for a field that takes
    the value itself: the keys as that value, so a JSON scenario can give a yes/no field's odds as YAML does. A key
    the field takes as text stays text."""
    if not isinstance(v, dict) or not schemas:
        return v
    from jsonschema import Draft202012Validator

    validators = [Draft202012Validator(x) for x in schemas if isinstance(x, dict)]
    out: dict[Any, Any] = {}
    for key, p in v.items():
        if isinstance(key, str) and not any(x.is_valid(key) for x in validators):
            try:
                value = json.loads(key)
            except ValueError:
                value = key
            if not isinstance(value, str) and not (isinstance(value, float) and not math.isfinite(value)) \
                    and any(x.is_valid(value) for x in validators):
                key = value
        out[key] = p
    return out


def _check_answers(sc: Scenario, fields: dict[str, list[dict[str, Any]]], form: str, fld: Any, v: Any) -> None:
    """A field the form has, and answers its schemas take (each value of a distribution, or the one given)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    if fld not in fields:
        raise ScenarioError(f"{sc.where('forms', form, fld)}: the form {form!r} has no field {fld!r} (its "
                            f"fields: {', '.join(sorted(map(str, fields))) or 'none'})")
    validators = [Draft202012Validator(s) for s in fields[fld] if isinstance(s, dict)]
    for value in (list(v) if isinstance(v, dict) else [v]):
        if validators and not any(x.is_valid(value) for x in validators):
            why = best_match(validators[0].iter_errors(value))
            path = ("forms", form, fld, value) if isinstance(v, dict) else ("forms", form, fld)
            raise ScenarioError(f"{sc.where(*path)}: {value!r} is not an answer the form {form!r} takes at "
                                f"{fld!r}" + (f" ({why.message[:200]})" if why is not None else ""))


def _duration(sc: Scenario, v: Any, *path: Any) -> None:
    if not isinstance(v, dict) or set(v) - {"median_hours", "spread", "hold_days"}:
        raise ScenarioError(f"{sc.where(*path)}: a duration is {{median_hours: H, spread: S, hold_days?}}")
    hold = v.get("hold_days")
    if hold is not None:
        if not isinstance(hold, dict) or set(hold) - {"median", "spread"} or any(
                not _number(x) or not 0 <= x <= (MAX_HOLD_DAYS if k == "median" else MAX_SPREAD)
                for k, x in hold.items()):
            raise ScenarioError(f"{sc.where(*path, 'hold_days')}: hold_days is {{median: DAYS, spread: S}}, a "
                                f"median from 0 to {MAX_HOLD_DAYS:,} days and a spread from 0 to {MAX_SPREAD}")
    for k in ("median_hours", "spread"):
        x = v.get(k, 1.0 if k == "median_hours" else 0.5)
        top = MAX_MEDIAN_HOURS if k == "median_hours" else MAX_SPREAD
        if not _number(x) or not 0 <= x <= top or (k == "median_hours" and x == 0):
            raise ScenarioError(f"{sc.where(*path, k)}: {k} must be a number "
                                f"{'above 0' if k == 'median_hours' else 'from 0'} to {top:,}, not {x!r}")


# ---------------------------------------------------------------------- answers from a form's schema
def _draw(rng: random.Random, dist: dict[Any, float]) -> Any:
    keys = list(dist)
    return rng.choices(keys, weights=[dist[k] for k in keys])[0]


def _value(schema: dict[str, Any], rng: random.Random, today: date, nonempty: bool = False) -> Any:
    """A valid value for one property of a form (the simplest that fits; `nonempty`: an array gets one item)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "oneOf" in schema and schema["oneOf"] and "const" in schema["oneOf"][0]:
        return rng.choice([o["const"] for o in schema["oneOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in schema else 1)
        hi = schema.get("maximum", max(lo, 1) * 10)
        return int(lo) if kind == "integer" else float(lo + (hi - lo) * 0.1)
    if kind == "array":
        items = schema.get("items") or {}
        n = max(schema.get("minItems", 0), 1 if nonempty else 0)
        if "enum" in items:
            return rng.sample(items["enum"], min(n, len(items["enum"])))
        return [_value(items, rng, today) for _ in range(n)]
    if kind == "object":
        return _fill(schema, {}, rng, today)
    fmt = schema.get("format")
    if fmt == "date":
        return today.isoformat()
    if fmt == "date-time":
        return datetime.combine(today, time(12)).isoformat() + "Z"
    if "pattern" in schema and _matches(schema["pattern"], today.isoformat()):  # a date asked as YYYY-MM-DD text
        return today.isoformat()
    return "Simulated answer"


def _matches(pattern: Any, text: str) -> bool:
    try:
        return isinstance(pattern, str) and re.search(pattern, text) is not None
    except re.error:  # a pattern Python cannot read: the form's own check says what it makes of the answer
        return False


_CONDITIONS: dict[int, tuple[dict[str, Any], Any]] = {}  # id of a form's `if` -> (it, its validator)


def _condition(cond: dict[str, Any]) -> Any:
    """The validator of a form's `if` clause, made once (the forms' schemas live as long as the process): a plain
    test of the fixed values it names where that is all it asks (82 of the forms' 88 today), jsonschema else."""
    got = _CONDITIONS.get(id(cond))
    if got is None or got[0] is not cond:
        if len(_CONDITIONS) > 2000:  # each run reads its forms afresh: the earlier runs' are not asked again
            _CONDITIONS.clear()
        got = _CONDITIONS[id(cond)] = (cond, _Fixed.of(cond) or _jsonschema_validator(cond))
    return got[1]


def _jsonschema_validator(cond: dict[str, Any]) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(cond)


_SCALARS = (str, int, float, bool, type(None))


class _Fixed:
    """An `if` of the shape `{"properties": {name: {"const": v} or {"enum": [v, ...]}}, "required": [...]}` with
    plain values: true when every required name is there and every named property that is there has one of
    its values, as JSON Schema has it (true and 1 are different values; 1 and 1.0 the same)."""

    def __init__(self, required: list[str], allowed: dict[str, list[Any]]) -> None:
        self.required, self.allowed = required, allowed

    @classmethod
    def of(cls, cond: Any) -> _Fixed | None:
        if not isinstance(cond, dict) or set(cond) - {"properties", "required"}:
            return None
        required, props = cond.get("required", []), cond.get("properties", {})
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required) \
                or not isinstance(props, dict):
            return None
        allowed: dict[str, list[Any]] = {}
        for name, sub in props.items():
            if isinstance(sub, dict) and set(sub) == {"const"}:
                values = [sub["const"]]
            elif isinstance(sub, dict) and set(sub) == {"enum"} and isinstance(sub["enum"], list):
                values = sub["enum"]
            else:
                return None
            if not all(isinstance(v, _SCALARS) for v in values):
                return None
            allowed[name] = values
        return cls(required, allowed)

    def is_valid(self, answers: Any) -> bool:
        if not isinstance(answers, dict):
            return True  # `properties` and `required` ask nothing of what is not an object
        if any(k not in answers for k in self.required):
            return False
        return all(k not in answers or any(_same_json(answers[k], v) for v in values)
                   for k, values in self.allowed.items())


def _same_json(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return isinstance(a, _SCALARS) and a == b


def _given(rules: dict[str, Any], rng: random.Random, out: dict[str, Any]) -> dict[str, Any]:
    """`out` with the scenario's answers for a form put in: each field's drawn from its distribution, or as given."""
    for k, v in rules.items():
        out[k] = _draw(rng, v) if isinstance(v, dict) else v
    return out


def _fill(schema: dict[str, Any], rules: dict[str, Any], rng: random.Random, today: date) -> dict[str, Any]:
    """Answers for a form: the scenario's rules first, then every required property, each with a value that fits;
    then what the form's conditions ask (its own `if` and those in `allOf`): the properties the branch taken
    requires, and a new value for one whose value breaks what the branch adds to its schema (a list of ways an
    outcome cannot be achieved needs an item once `unable` is true). So the answers drawn pass the form's check
    the first time, as a worker's would, without a refusal to repair."""
    props = schema.get("properties") or {}
    out = _given(rules, rng, {})
    for k in schema.get("required") or []:
        if k not in out:
            out[k] = _value(props.get(k, {}), rng, today)
    clauses = _clauses(schema)
    for _ in range(3):  # conditional requirements can chain
        added = False
        for clause in clauses:
            branch = clause.get("then" if _condition(clause["if"]).is_valid(out) else "else") or {}
            more = branch.get("properties") or {}
            for k in branch.get("required") or []:
                if k not in out:
                    out[k] = _value({**props.get(k, {}), **more.get(k, {})}, rng, today)
                    added = True
            for k, extra in more.items():
                if k in out and not _fits(out[k], extra):
                    out[k] = _value({**props.get(k, {}), **extra}, rng, today)
                    added = True
        if not added:
            break
    return out


def _fits(value: Any, extra: dict[str, Any]) -> bool:
    """Whether `value` keeps the few bounds a form's condition adds to a property (its size, a fixed value)."""
    if "const" in extra and not _same_json(value, extra["const"]):
        return False
    if isinstance(value, (list, str)):
        return extra.get("minItems" if isinstance(value, list) else "minLength", 0) <= len(value) <= extra.get(
            "maxItems" if isinstance(value, list) else "maxLength", len(value))
    return True


def _schema_at(schema: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """The schema of the property at a form error's field path (conditional `then` properties included)."""
    node = schema
    for part in parts:
        if node.get("type") == "array" or (part.isdigit() and "items" in node):
            node = node.get("items") or {}
            continue
        merged = dict((node.get("properties") or {}).get(part) or {})
        for clause in node.get("allOf") or []:
            merged.update(((clause.get("then") or {}).get("properties") or {}).get(part) or {})
        node = merged
    return node


def _repair(schema: dict[str, Any], out: dict[str, Any], errors: list[dict[str, Any]], rng: random.Random,
            today: date) -> bool:
    """Give each field a form refused a new value that fits its schema; False when there is nothing to change."""
    changed = False
    for err in errors:
        parts = [p for p in str(err.get("field") or "").split("/") if p]
        if not parts:
            continue
        holder: Any = out
        for part in parts[:-1]:
            if isinstance(holder, list) and part.isdigit() and int(part) < len(holder):
                holder = holder[int(part)]
            elif isinstance(holder, dict):
                holder = holder.setdefault(part, {})
            else:
                holder = None
                break
        if holder is None:
            continue
        value = _value(_schema_at(schema, parts), rng, today, nonempty=True)
        last = parts[-1]
        if isinstance(holder, list) and last.isdigit() and int(last) < len(holder):
            holder[int(last)] = value
            changed = True
        elif isinstance(holder, dict):
            holder[last] = value
            changed = True
    return changed


# ---------------------------------------------------------------------- people and contacts
def _person_contact(ck: Checked, route: dict[str, Any], rng: random.Random, today: date, n: int) -> dict[str, Any]:
    """The contact form's answers for a person drawn from `people`: the screening table routes them."""
    p = ck.people
    band = str(_draw(rng, p.get("age") or {"65-84": 1.0}))
    lo, hi = (int(x) for x in band.split("-"))
    age = rng.randint(lo, hi)
    k_out = int(_draw(rng, p.get("outcomes_unable") or {0: 1.0}))
    k_needs = int(_draw(rng, p.get("needs") or {0: 1.0}))
    concern = rng.random() < route.get("safeguarding_concern", p.get("safeguarding_concern", 0.0))
    crisis = rng.random() < route.get("crisis", p.get("crisis", 0.0))
    form: dict[str, Any] = {
        "caller": {"name": "Simulated caller", "relationship": route["caller"]},
        "reason": "Simulated contact",
        "person": {"name": f"Person {n}", "age": age, "address": f"{n} Simulated Road", "area": "north",
                   "lives_alone": rng.random() < p.get("lives_alone", 0.4)},
        "needs": rng.sample(ck.needs, min(k_needs, len(ck.needs))),
        "outcomes_unable": rng.sample(ck.outcomes, min(k_out, len(ck.outcomes))),
        "safeguarding_concern": concern, "crisis": crisis, "consents_to_referral": True, "from_hospital": False,
    }
    if crisis:
        form["crisis_detail"] = "Simulated crisis"
    if rng.random() >= p.get("reablement_appropriate", 1.0):
        form["reablement_appropriate"] = False
        form["reablement_not_appropriate_because"] = "long_term_condition"
    if rng.random() < p.get("carer_support_asked", 0.0):
        form["carer_support_asked"] = "person"
    if route["caller"] != "self":
        form["caller"]["organisation"] = "Simulated"
    return form


# ---------------------------------------------------------------------- team calendars
def _local(t: datetime) -> datetime:
    return t.astimezone(UK)


def _works(team: dict[str, Any], d: date) -> bool:
    from handlers.working_days import bank_holiday

    return team["weekends"] or (d.weekday() < 5 and bank_holiday(d) is None)


def _next_open(team: dict[str, Any], t: datetime) -> datetime:
    """The first instant at or after `t` when the team works."""
    loc = _local(t)
    a, b = team["hours"]
    d = loc.date()
    for _ in range(30):
        if _works(team, d):
            opens = datetime.combine(d, a, UK)
            closes = datetime.combine(d, b, UK)
            if loc < opens:
                return opens.astimezone(t.tzinfo)
            if loc < closes:
                return t
        d += timedelta(days=1)
        loc = datetime.combine(d, time(0), UK)
    return t  # a team that never works in a month: let it work (checked teams always do)


def _add_work(team: dict[str, Any], t: datetime, hours: float) -> datetime:
    """`t` plus `hours` of the team's working time."""
    left = timedelta(hours=hours)
    while True:
        t = _next_open(team, t)
        closes = datetime.combine(_local(t).date(), team["hours"][1], UK).astimezone(t.tzinfo)
        if t + left <= closes:
            return t + left
        left -= closes - t
        t = closes


# ---------------------------------------------------------------------- the run
@dataclass
class _Task:
    id: str
    team: str
    element: str
    process: str
    form: str | None
    ready: datetime
    taken: datetime | None = None
    key: int = 0  # the contact whose case it is (1, 2, ...; 0: a case copied from the live database)


@dataclass
class Result:
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.summary


def _diagram_facts(eng: Any) -> tuple[set[str], set[str], dict[str, str], set[str]]:
    """The deployed processes, the teams their user tasks name, their timers ("process/timer id" -> name) and
    their user tasks' ids, read from the deployed files in the scratch database."""
    from engine.schema import definition_files, process_versions

    with eng.db.engine.connect() as conn:
        procs = {r[0] for r in conn.execute(select(process_versions.c.process_id).distinct())}
        files = [r[0] for r in conn.execute(select(definition_files.c.content))]
    teams: set[str] = set()
    timers: dict[str, str] = {}
    tasks: set[str] = set()
    for raw in files:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        tasks.update(m[1] for m in re.finditer(r'<(?:\w+:)?userTask\b[^>]*?\sid="([^"]+)"', text))
        for m in re.finditer(r'candidateGroups="([^"$]*)"', text):
            teams.update(x.strip() for x in m[1].split(",") if x.strip())
        for proc in re.finditer(r'<(?:\w+:)?process id="([^"]+)"(.*?)</(?:\w+:)?process>', text, re.S):
            for ev in re.finditer(r'<(?:\w+:)?(?:boundaryEvent|intermediateCatchEvent) id="([^"]+)"(?: name="([^"]*)")?'
                                  r'[^>]*>(?:(?!</(?:\w+:)?(?:boundaryEvent|intermediateCatchEvent)>).)*?'
                                  r'timerEventDefinition', proc[2], re.S):
                timers[f"{proc[1]}/{ev[1]}"] = ev[2] or ev[1]
    return procs, teams, timers, tasks


def _trimmed(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """What a simulation writes of a kept event's data (engine/simulation.py `trim`): all of it, except a service-task
    call whose output neither a CLD row nor a measure reads (the letters, the directory searches...), which keeps
    its element and handler, and the local timescales, which keep the two a measure reads. The measures read no
    more of them from a live history either (handlers/measures.py `_event_data`): the figures are the same."""
    if kind != "handler.called":
        return data
    from handlers import cld, measures

    name = data.get("handler")
    if cld._HANDLERS_READ is None or name in cld._HANDLERS_READ:
        return data
    out = data.get("output")
    kept = {k: out[k] for k in measures.SETTINGS_READ if k in out} if name == "local_settings" and isinstance(
        out, dict) else {}
    return {"element_id": data.get("element_id"), "handler": name, "output": kept}


def scratch_engine(source: Any | None, start: date, *, full_history: bool = False) -> Any:
    """The product's engine, handlers and forms on a fresh in-memory database whose simulated clock starts at
    midnight UK time on `start`, with the processes deployed on `source` (read only) or else processes/.

    The engine runs in simulation mode (engine/simulation.py: no hash chain, only `KEPT_EVENTS`, the clock in
    memory) and the people search index (a page's search, which no handler reads) is not kept; `full_history`
    runs it as live instead, every event hash-chained and the index kept (to check the two agree)."""
    from engine.forms import FormLibrary
    from engine.registry import load_registry
    from engine.runtime import Engine
    from engine.simulation import SimulationMode
    from engine.trial import _copy_deployed, _scratch_database

    registry = load_registry(os.environ.get("CAREPATH_HANDLERS", "handlers"))  # as the server loads them
    registry.users = lambda name: True  # the simulated staff are no one's accounts
    if not full_history:
        registry.case_listeners = []  # handlers/people.py keep_in_step: the search pages' index only
    forms = FormLibrary.from_folder(os.environ.get("CAREPATH_FORMS", ROOT / "forms"))
    eng = Engine(_scratch_database(), registry=registry, forms=forms,
                 simulation=None if full_history else SimulationMode(KEPT_EVENTS, trim=_trimmed))
    eng.init(simulated_start=datetime.combine(start, time(0), UK))
    copied = False
    if source is not None:
        _copy_deployed(source, eng, replaced="", draft_names=())
        with eng.db.engine.connect() as conn:
            from engine.schema import process_versions

            copied = conn.execute(select(process_versions.c.id).limit(1)).first() is not None
    if not copied:
        eng.deploy([ROOT / "processes"], note="simulation")
    #: where the diagrams came from, for the output: the database's deployed versions, or processes/
    eng.simulated_diagrams = "database" if copied else "processes/"
    if eng.simulation is not None:  # each step's transaction a savepoint, committed in batches (engine/simulation.py)
        eng.simulation.lean_indexes(eng.db)
        eng.simulation.batch_steps(eng.db)
    return eng


def simulate(scenario: Scenario, *, source: Any | None = None, days: int | None = None,
             seed: int | None = None, full_history: bool = False, from_live: Any = False,
             inspect: Callable[[Any], None] | None = None, parts: int = 1,
             on_day: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run a scenario and return its results (a JSON-able dict, the same for the same scenario and seed).

    `full_history`: keep the whole hash-chained history as live (slower; the same output). `from_live`: start from
    an anonymised copy of `source`'s open cases, at its clock's now (carepath/simulate_today.py); or from a copy
    already read (a `simulate_today.LiveStart`: a comparison's runs all start from one reading).
    `inspect(engine)`: called with the scratch engine after the run, before it is thrown away.
    `parts=2`: the cases are shared between this process and a second one, each stepping its own on a core of
    its own (docs/simulation.md, "One run on both cores"); the output is the same as with one. A run from today's cases,
    with the whole history, inspected, or of diagrams that send messages stays in one process.
    `on_day(days)`: told how many whole days have been simulated at the end of each simulated week (for a page
    that says how far a run has come); it changes nothing in the run.
    A second process that cannot be started (no process or file descriptor left to give) does not end the run: it
    is made again in this process alone, from the start (it had come no further than its first hand-offs), with the
    same output, and the reason is logged."""
    run = dict(source=source, days=days, seed=seed, full_history=full_history, from_live=from_live, inspect=inspect,
               on_day=on_day)
    try:
        return _simulate(scenario, parts=parts, **run)
    except SecondNotStarted as exc:
        log.warning("a simulation's second process could not be started (%s): the run is made again in one process",
                    exc.why)
        return _simulate(scenario, parts=1, **run)


def _simulate(scenario: Scenario, *, source: Any | None, days: int | None, seed: int | None, full_history: bool,
              from_live: Any, inspect: Callable[[Any], None] | None, parts: int,
              on_day: Callable[[int], None] | None) -> dict[str, Any]:
    """`simulate`, with the second process's failure to start raised as SecondNotStarted."""
    start = _start_day(scenario)
    live = None
    if from_live:
        from . import simulate_today

        live = from_live if isinstance(from_live, simulate_today.LiveStart) else simulate_today.read_live(source)
        start = live.today
    peer = None
    if parts > 1 and live is None and not full_history and inspect is None:
        peer = _spawn_second(scenario, source, days, seed)  # it makes its engine while this process makes its own
    try:
        # a run makes millions of objects (SpiffWorkflow's tasks, their data): the cycle collector's default
        # threshold runs it every 700 allocations, a fifth of the run's time (see COLLECTOR_GEN0)
        with fewer_collections(gen0=COLLECTOR_GEN0):
            eng, ck = _prepared(scenario, source, days, seed, full_history=full_history, start=start, live=live)
            try:
                if live is not None:
                    ck.start = live.today
                    runner = live.run(eng, ck)
                    runner.on_day = on_day
                    out = live.report(runner.run(), eng)
                else:
                    if peer is not None and _uses_messages(eng):  # it would see the same and stop: stop it now
                        peer.close(at_once=True)
                        peer = None
                    runner = _Run(eng, ck, parts=2 if peer else 1, peer=peer)
                    runner.on_day = on_day
                    out = runner.run()
                if inspect is not None:
                    inspect(eng)
                return out
            finally:
                eng.db.dispose()
    finally:
        if peer is not None:
            peer.close()


def _start_day(scenario: Scenario) -> date:
    """The scenario's first day (2026-04-01 when it gives none, or one check_scenario refuses: it then says why)."""
    given = scenario.data.get("start")
    try:
        start = date.fromisoformat(given) if isinstance(given, str) else given
    except ValueError:
        start = None
    if not isinstance(start, date) or isinstance(start, datetime) or not START_YEARS[0] <= start.year <= START_YEARS[1]:
        return date(2026, 4, 1)
    return start


def _prepared(scenario: Scenario, source: Any | None, days: int | None, seed: int | None, *, full_history: bool,
              start: date, live: Any = None) -> tuple[Any, Checked]:
    """The scratch engine and the scenario checked against its diagrams, forms and teams."""
    eng = scratch_engine(source, start, full_history=full_history)
    try:
        if live is not None:
            live.copy_into(eng)
        procs, teams, timers, tasks = _diagram_facts(eng)
        ck = check_scenario(scenario, processes=procs, forms=set(eng.forms.names()), teams=teams, days=days,
                            seed=seed, timers=timers, fields=form_fields(eng.forms), tasks=tasks)
        contact = eng.forms.schema("contact")["properties"]
        ck.outcomes, ck.needs = contact["outcomes_unable"]["items"]["enum"], contact["needs"]["items"]["enum"]
        callers = ((contact.get("caller") or {}).get("properties") or {}).get("relationship", {}).get("enum")
        for name, route in ck.routes.items():
            if callers and route["caller"] not in callers:
                where = scenario.where("arrivals", name, "caller")
                raise ScenarioError(f"{where}: {route['caller']!r} is not a caller the contact form knows (one of "
                                    f"{', '.join(callers)})")
        for k, codes in (("outcomes_unable", ck.outcomes), ("needs", ck.needs)):
            most = max(ck.people.get(k) or {0: 1.0})
            if most > len(codes):
                raise ScenarioError(f"{scenario.where('people', k, most)}: a person cannot have {most} {k}: the "
                                    f"contact form has {len(codes)} to choose from")
    except BaseException:
        eng.db.dispose()
        raise
    return eng, ck


def _spawn_second(scenario: Scenario, source: Any | None, days: int | None, seed: int | None) -> _Peer:
    """Start the run's second process (from the warm forkserver, not forked from here: a server that runs a
    simulation has threads and open connections a fork would copy), given the deployed versions as rows it can copy
    from."""
    rows = source
    if source is not None and hasattr(source, "db"):  # an engine: its deployed versions, read once here
        from engine.trial import deployed_rows

        rows = deployed_rows(source)
    ours, theirs = multiprocessing.Pipe()
    proc = forked.process(_second_part, theirs, scenario, rows, days, seed, daemon=True, name="carepath-simulate-2")

    not_started: list[str] = []  # why the process could not be started, for the run's message

    def start() -> None:
        # in a thread: the first start in a process waits for the forkserver to warm up (about two seconds), while
        # this process makes its own engine; a start that fails closes the pipe, which the run reports with why
        try:
            proc.start()
        except Exception as exc:  # noqa: BLE001 - said by the peer's reader, with the error's type and words
            not_started.append(f"{type(exc).__name__}: {exc}")
            ours.close()
        finally:
            theirs.close()

    starting = threading.Thread(target=start, daemon=True, name="simulation-second-start")
    starting.start()
    return _Peer(ours, proc, starting, not_started)


class _Run:
    """One run's discrete-event loop. `parts` > 1: the run is split between that many processes (docs/simulation.md,
    "Both cores"); each runs this same loop over every event, with the same draws, and steps only the cases of its
    own `part` (contact number modulo `parts`), sending what its steps did to the others (`peer`)."""

    def __init__(self, eng: Any, ck: Checked, *, part: int = 0, parts: int = 1, peer: _Peer | None = None) -> None:
        self.eng, self.ck = eng, ck
        self.part, self.parts, self.peer = part, parts, peer
        self.rng = random.Random(ck.seed)
        #: the policy's line and the fields it answered at the task being completed (`_policy_refused`)
        self.policy_gave: tuple[str, set[str]] | None = None
        self.t0 = eng.now()
        self.end = self.t0 + timedelta(days=ck.days)
        self.events: list[tuple] = []
        self.seq = 0
        self.queues: dict[str, deque[_Task]] = defaultdict(deque)
        self.free: dict[str, int] = {}
        # what this process's steps did, not yet collected: (tag, key, n, added rows, removed ids); `tag` is the
        # time of the event during which the step ran, `key` its case's contact, `n` the case's step count
        self.made: list[tuple] = []
        self.unsent: list[tuple] = []  # the same, not yet sent to the peer
        self.gone: set[str] = set()  # tasks the diagrams withdrew (a boundary timer, the case closed)
        self.tag = self.t0
        self.key = 0  # the contact whose step is running (a new case takes it)
        self.case_key: dict[int, int] = {}  # case id -> contact
        self.task_key: dict[str, int] = {}  # task id -> contact (a step that only withdraws names no case)
        self.steps_of: dict[int, int] = defaultdict(int)
        self.done_of: dict[int, int] = defaultdict(int)
        self.route_of: dict[int, str] = {}
        eng.on_tasks_changed(self.tasks_changed)
        self.waits: dict[str, list[float]] = defaultdict(list)
        self.weekly: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(
            lambda: {"arrived": 0, "done": 0, "waiting_at_end": 0}))
        self.wait_by_week: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.routes: dict[str, int] = defaultdict(int)
        self.stuck: dict[str, int] = defaultdict(int)
        self.stuck_why: dict[str, tuple[datetime, int, str]] = {}  # the first refusal: when, whose, what
        self.withdrawn = 0
        self.refused = 0  # tasks the engine said were no longer open when this process completed them
        self.contacts = 0
        self.pending: dict[str, dict[str, Any]] = {}  # task id -> answers already drawn for it (contact form)
        self.scheduled: set[str] = set()
        self.placeholders = part > 0  # engine ids start above PART_IDS * part until the first case is made
        self.on_day: Callable[[int], None] | None = None  # told the days simulated at each week's end

    # event queue: (time, seq, kind, payload); seq keeps ties in the order they were made
    def push(self, t: datetime, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def team(self, name: str | None) -> tuple[str, dict[str, Any]]:
        name = name or "default"
        rules = self.ck.teams.get(name) or self.ck.teams["default"]
        self.free.setdefault(name, rules["staff"])
        return name, rules

    def week(self, t: datetime) -> int:
        return (t - self.t0).days // 7 + 1

    def mine(self, key: int) -> bool:
        return key % self.parts == self.part

    def arrivals(self) -> None:
        """The hand-offs (every quarter of `handoff` from the start; each queues the tasks made more than `handoff`
        before it), then every contact's arrival, drawn day by day and route by route (Poisson), within
        08:00-18:00."""
        every = self.ck.handoff / HANDOFF_STEPS
        for k in range(1, int(timedelta(days=self.ck.days) / every) + 2):
            self.push(self.t0 + k * every, "handoff", k)
        for day in range(self.ck.days):
            d = self.ck.start + timedelta(days=day)
            shape = self.ck.weekday[d.weekday()] * self.ck.season[d.month - 1]
            for name, route in self.ck.routes.items():
                lam = route["per_year"] / 365.0 * shape
                for _ in range(_poisson(self.rng, lam)):
                    at = datetime.combine(d, time(8), UK) + timedelta(seconds=self.rng.randrange(10 * 3600))
                    self.push(at.astimezone(self.t0.tzinfo), "arrive", name)
        for w in range(1, self.ck.days // 7 + 2):
            self.push(self.t0 + timedelta(days=7 * w), "week_end", w)

    def tasks_changed(self, added: list[dict[str, Any]], removed: list[str]) -> None:
        """Engine.on_tasks_changed: each committed step's new task rows and withdrawn task ids, kept (in order)
        until a hand-off collects them."""
        if not added and not removed:
            return
        rows = []
        for r in added:  # each task is its own case's (one step's tasks are one case's, but say so per task)
            owner = self.task_key[r["id"]] = self.case_key.setdefault(r["case_id"], self.key)
            created = r["created_at"]
            rows.append((r["id"], r["team"], r["element_id"], r["process_id"], r["form"],
                         created if created.tzinfo else created.replace(tzinfo=self.t0.tzinfo), owner))
        key = rows[0][6] if rows else self.task_key.get(removed[0], self.key)
        self.steps_of[key] += 1
        made = (self.tag, key, self.steps_of[key], rows, list(removed))
        self.made.append(made)
        if self.peer is not None:
            self.unsent.append(made)

    def handoff(self, k: int, now: datetime) -> None:
        """Queue the tasks that steps made more than `handoff` ago, in every process: in the order of their events'
        times, then by contact and the case's own step count (the same whichever process ran them). The other
        process's steps are needed only up to its hand-off HANDOFF_STEPS back: it may run that far behind."""
        if self.peer is not None:
            self.peer.send(("handoff", k, self.unsent))
            self.unsent = []
            self.made += self.peer.wait_for(k - HANDOFF_STEPS)
        upto = now - self.ck.handoff
        ready = sorted((m for m in self.made if m[0] < upto), key=lambda m: m[:3])
        if not ready:
            return
        self.made = [m for m in self.made if not m[0] < upto]
        for m in ready:
            self.gone.update(m[4])
        for _tag, _key, _, rows, _ in ready:
            for tid, team, element, process, form, created, key in rows:
                if tid in self.gone:  # came and went (a later timer) before it was handed off: never seen
                    continue
                name, rules = self.team(team)
                self.queues[name].append(_Task(tid, name, element, process, form, created, key=key))
                self.weekly[name][self.week(created)]["arrived"] += 1
                if form == "contact" and tid not in self.pending:  # the person's answers, drawn as it is queued
                    route = self.ck.routes.get(self.route_of.get(key, ""), {"caller": "self"})
                    self.pending[tid] = _person_contact(self.ck, route, self.rng, _local(created).date(), key)
                self.wake(name, now)

    def wake(self, name: str, now: datetime) -> None:
        if name not in self.scheduled:
            self.scheduled.add(name)
            self.push(_next_open(self.team(name)[1], now), "dispatch", name)

    def clock_to(self, t: datetime) -> None:
        if t > self.eng.now():
            self.key = 0  # a timer's step: its case is known (0: a case copied from the live database)
            self.eng.advance_clock(to=t, actor=ACTOR)

    def run(self) -> dict[str, Any]:
        self.arrivals()
        while self.events:
            t, _, kind, payload = heapq.heappop(self.events)
            if t >= self.end:
                break
            self.tag = t
            self.clock_to(t)
            if kind == "handoff":
                self.handoff(payload, t)
            elif kind == "arrive":
                self.arrive(payload, t)
            elif kind == "dispatch":
                self.dispatch(payload, t)
            elif kind == "done":
                self.done(payload, t)
            elif kind == "free":
                self.free[payload] += 1
                self.wake(payload, t)
            elif kind == "week_end":
                for name, q in self.queues.items():
                    self.weekly[name][payload]["waiting_at_end"] = len(q)
                if self.on_day is not None:
                    self.on_day((t - self.t0).days)
        self.tag = self.end
        if self.end > self.eng.now():
            self.eng.advance_clock(to=self.end, actor=ACTOR)
        # the last week's queues as the run ends: a part week has no week_end event, and a whole week's falls on the
        # run's end, which the loop never reaches (a period of whole weeks once ended its weekly queues on 0)
        last = self.week(self.end - timedelta(seconds=1))
        for name, q in self.queues.items():
            self.weekly[name][last]["waiting_at_end"] = len(q)
        if self.part > 0:
            return self.partial()
        return self.report()

    def arrive(self, name: str, t: datetime) -> None:
        route = self.ck.routes[name]
        self.contacts += 1
        self.routes[name] += 1
        key = self.contacts
        self.route_of[key] = name
        data = dict(route["start_data"])
        if route["process"] == "hospital_discharge" and not data:
            band = str(_draw(self.rng, self.ck.people.get("age") or {"65-84": 1.0}))
            lo, hi = (int(x) for x in band.split("-"))
            data = {"person": {"name": f"Person {key}", "age": self.rng.randint(lo, hi),
                               "address": f"{key} Simulated Road"}, "reason": "Simulated admission"}
        if not self.mine(key):
            return
        self.key = key
        res = self.eng.start(route["process"], data=data, actor=ACTOR, title=f"Simulated {key}")
        self.case_key[res.case_id] = key  # its later steps (a timer's) are this contact's, tasks or none
        if self.placeholders:
            _drop_placeholders(self.eng, self.part)
            self.placeholders = False

    def dispatch(self, name: str, t: datetime) -> None:
        self.scheduled.discard(name)
        _, rules = self.team(name)
        opens = _next_open(rules, t)
        if opens > t:
            self.wake(name, opens)
            return
        q = self.queues[name]
        while self.free[name] > 0 and q:
            task = q.popleft()
            task.taken = t
            self.free[name] -= 1
            hours = (t - task.ready).total_seconds() / 3600
            self.waits[name].append(hours)
            self.wait_by_week[name][self.week(t)].append(hours)
            work = self.duration(task)
            worked = self.end if self.beyond(t, work * 3600) else _add_work(rules, t, work)
            hold = self.hold(task)
            if hold:  # the staff's part ends; the task stays open while the service runs
                self.push(worked, "free", task.team)
                self.push(self.end if self.beyond(worked, hold * 86400) else worked + timedelta(days=hold), "done",
                          task)
            else:
                self.push(worked, "done", task)

    def beyond(self, t: datetime, seconds: float) -> bool:
        """Whether work or a service of `seconds` that begins at `t` cannot end before the run does: it is then put
        at the run's end, which the run never reaches (the output is the same), so that a long draw neither
        overflows a date nor is laid over the working days of years."""
        return t >= self.end or seconds >= (self.end - t).total_seconds()

    def duration(self, task: _Task) -> float:
        dur = self.ck.durations
        spec = ((dur.get("tasks") or {}).get(task.element) or (dur.get("teams") or {}).get(task.team)
                or dur.get("default") or {})
        median, spread = spec.get("median_hours", 1.0), spec.get("spread", 0.5)
        return median * math.exp(self.rng.gauss(0, spread))

    def held(self, task: _Task) -> dict[str, Any] | None:
        return ((self.ck.durations.get("tasks") or {}).get(task.element) or {}).get("hold_days")

    def hold(self, task: _Task) -> float:
        """Calendar days a task stays open after the staff's work (durations.tasks.X.hold_days), or 0."""
        spec = self.held(task)
        if not spec:
            return 0.0
        return spec.get("median", 1.0) * math.exp(self.rng.gauss(0, spec.get("spread", 0.0)))

    def done(self, task: _Task, t: datetime) -> None:
        if not self.held(task):  # a held task's staff were freed when their part ended
            self.free[task.team] += 1
            self.wake(task.team, t)
        self.weekly[task.team][self.week(t)]["done"] += 1
        self.policy_gave = None
        answers = self.answers(task, t, self.pending.pop(task.id, None))
        self.done_of[task.key] += 1
        if task.id in self.gone:  # the diagram withdrew it (a boundary timer, the case closed) before it was done
            self.withdrawn += 1
            return
        if not self.mine(task.key):
            return
        self.key = task.key
        # the form's finer rules: what a refusal names is filled from draws of the case's own, so that every
        # process draws the same whichever ran the case
        rng = None
        try:
            for attempt in range(7):
                try:
                    self.eng.complete_task(task.id, answers, actor=ACTOR)  # checks the answers before it writes
                    break
                except ValidationError as exc:  # the schema's finer rules: fill what the form names, try again
                    self._policy_refused(task, exc)
                    rng = rng or random.Random(f"{self.ck.seed}/{task.key}/{self.done_of[task.key]}")
                    if attempt == 6 or task.form is None or not _repair(
                            self.eng.forms.schema(task.form), answers, exc.errors, rng, _local(t).date()):
                        raise
        except (NotFoundError, StateError):
            self.refused += 1  # the diagram withdrew it (a boundary timer, the case closed) since the hand-off
        except ValidationError as exc:
            key = f"{task.process}/{task.element} ({task.form})"
            self.stuck[key] += 1
            self.stuck_why.setdefault(key, (t, task.key, "; ".join(f"{e.get('field')}: {e.get('message')}"
                                                                   for e in exc.errors)[:300]))
        except CarepathError as exc:
            if "not open" in str(exc) or "no task" in str(exc) or "no open task" in str(exc):
                self.refused += 1
            else:
                raise

    def _policy_refused(self, task: _Task, exc: ValidationError) -> None:
        """A policy's own answer the form refuses stops the run naming the policy's line: redrawn at random, the
        run would no longer be the one the process owner wrote."""
        if not self.policy_gave:
            return
        where, gave = self.policy_gave
        bad = [e for e in exc.errors if re.split(r"[/.\[]", str(e.get("field") or ""), maxsplit=1)[0] in gave]
        if bad:
            why = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in bad)[:300]
            raise ScenarioError(f"{where}: the policy's answer was refused by the form {task.form!r} at "
                                f"{task.process}/{task.element}: {why}")

    def answers(self, task: _Task, t: datetime, drawn: dict[str, Any] | None = None) -> dict[str, Any]:
        """The answers at a task: those drawn for the person (the contact form) or from the scenario's rules for
        the form and its schema, then the form's policy function if it has one."""
        if task.form is None:
            return {}
        schema = self.eng.forms.schema(task.form)
        rules = self.ck.forms.get(task.form, {})
        # the person's answers (the contact form), with the scenario's for the form over them; or the form filled
        out = _given(rules, self.rng, drawn) if drawn is not None else _fill(schema, rules, self.rng, _local(t).date())
        pol = self.ck.policies.get(task.form)
        if pol:
            fn, where = pol
            seconds = policy_seconds()
            try:
                try:
                    with _policy_watch(seconds):
                        extra = fn(PolicyTask(element_id=task.element, process_id=task.process, team=task.team),
                                   dict(out), self.rng)
                except _PolicyOverran:
                    raise _overran(where, f"at {task.process}/{task.element}", seconds) from None
            except ScenarioError:
                raise
            except Exception as exc:  # a process owner's own code: its failure names the scenario line
                raise ScenarioError(f"{where}: the policy raised {type(exc).__name__}: {exc}") from None
            except SystemExit as exc:  # sys.exit() in a policy ended the command with no word (and no output)
                raise ScenarioError(f"{where}: the policy called exit ({exc.code!r}); a policy returns answers "
                                    "(a mapping of field: value) or None") from None
            if extra is not None and not isinstance(extra, dict):
                raise ScenarioError(f"{where}: the policy returned {type(extra).__name__}, not a mapping of answers "
                                    f"(field: value) or None, at {task.process}/{task.element}")
            out.update(extra or {})
            self.policy_gave = (where, set(extra or {}))
        return out

    # ------------------------------------------------------------------ results
    def partial(self) -> dict[str, Any]:
        """What this process's own cases came to: the instances, the timers fired, personal budgets, incidents,
        tasks refused as no longer open or not completed, and the measures' view of each case."""
        from engine.schema import cases, events, instances
        from handlers import measures

        if self.placeholders:  # it never made a case: nothing of its own to count
            _drop_placeholders(self.eng, self.part)
            self.placeholders = False
        with self.eng.db.engine.connect() as conn:
            started: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for p, s in conn.execute(select(instances.c.process_id, instances.c.status)):
                started[p][s] += 1
            fired: dict[str, int] = defaultdict(int)
            proc_of = dict(conn.execute(select(instances.c.id, instances.c.process_id)).all())
            for iid, data in conn.execute(select(events.c.instance_id, events.c.data)
                                          .where(events.c.type == "timer.fired")):
                el = json.loads(data).get("element_id", "?")
                fired[f"{proc_of.get(iid, '?')}/{el}"] += 1
            budgets = []
            for (data,) in conn.execute(select(cases.c.data)):
                pb = json.loads(data).get("personal_budget")
                amount = _money(pb.get("final_amount")) if isinstance(pb, dict) else None
                if amount is not None:
                    budgets.append(amount)
        incidents: dict[str, int] = defaultdict(int)
        for inc in self.eng.incidents():
            incidents[f"{proc_of.get(inc['instance_id'], '?')}/{inc['element_id']}: {inc['message']}"[:300]] += 1
        try:
            views: Any = measures.load_population(self.eng).views
        except CarepathError as exc:
            views = f"the measures could not be worked out on the simulated database: {exc}"
        return {"started": {p: dict(s) for p, s in started.items()}, "fired": dict(fired), "budgets": budgets,
                "incidents": dict(incidents), "refused": self.refused,
                "stuck": {k: (v, self.stuck_why[k]) for k, v in self.stuck.items()}, "views": views}

    def report(self) -> dict[str, Any]:
        parts = [self.partial()]
        if self.peer is not None:
            parts.append(self.peer.wait_for_end())
        started: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        fired: dict[str, int] = defaultdict(int)
        incidents: dict[str, int] = defaultdict(int)
        stuck: dict[str, list[Any]] = {}
        budgets: list[float] = []
        views: dict[int, Any] = {}
        failed = None
        for p in parts:
            for proc, by in p["started"].items():
                for status, n in by.items():
                    started[proc][status] += n
            for k, n in p["fired"].items():
                fired[k] += n
            for k, n in p["incidents"].items():
                incidents[k] += n
            for k, (n, why) in p["stuck"].items():  # the first refusal of all, whichever process met it
                got = stuck.setdefault(k, [0, why])
                got[0] += n
                got[1] = min(got[1], why)
            budgets += p["budgets"]
            if isinstance(p["views"], str):
                failed = p["views"]
            else:
                views.update(p["views"])
        breaches = {k: {"deadline": label, "times": fired.get(k, 0)} for k, label in sorted(self.ck.deadlines.items())}
        teams = {}
        for name in sorted(set(self.weekly) | set(self.queues)):
            w = self.weekly[name]
            weeks = []
            for n in sorted(w):
                if n > self.ck.days // 7 + 1:
                    continue
                waits = self.wait_by_week[name].get(n, [])
                weeks.append({"week": n, **{k: int(v) for k, v in w[n].items()},
                              "wait_hours_p50": _pct(waits, 50), "wait_hours_p95": _pct(waits, 95)})
            teams[name] = {"staff": self.team(name)[1]["staff"], "arrived": sum(x["arrived"] for x in weeks),
                           "done": sum(x["done"] for x in weeks), "waiting_at_end": len(self.queues[name]),
                           "wait_hours_p50": _pct(self.waits[name], 50), "wait_hours_p95": _pct(self.waits[name], 95),
                           "weeks": weeks}
        end_day = (self.ck.start + timedelta(days=self.ck.days - 1))
        total = math.fsum(budgets)  # exactly rounded: the same total whichever process held which budget
        return {"scenario": self.ck.scenario.source, "seed": self.ck.seed, "start": self.ck.start.isoformat(),
                "days": self.ck.days, "diagrams": diagrams_run(self.eng),
                "contacts": self.contacts, "routes": dict(sorted(self.routes.items())),
                "processes": {p: dict(sorted(s.items())) for p, s in sorted(started.items())},
                "teams": teams, "timers_fired": dict(sorted(fired.items())), "deadline_breaches": breaches,
                "tasks_withdrawn": self.withdrawn + sum(p["refused"] for p in parts),
                "incidents": dict(sorted(incidents.items())),
                "tasks_not_completed": {k: {"times": v[0], "first_refusal": v[1][2]} for k, v in sorted(stuck.items())},
                "personal_budgets": {"count": len(budgets), "total": round(total, 2),
                                     "mean": round(total / len(budgets), 2) if budgets else None},
                "measures": {"error": failed} if failed else _measures(views, self.ck.start, end_day)}


def _money(value: Any) -> float | None:
    """A personal budget's amount as a number: handlers/budget.py keeps money as text ("49909.09"), a process may
    write a number; anything else (missing, not a finite amount, negative, true/false) is no budget."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            return None
    if not isinstance(value, (int, float, Decimal)):
        return None
    amount = float(value)
    return amount if math.isfinite(amount) and amount >= 0 else None


# ---------------------------------------------------------------------- a run on two processes
#: hand-offs a `handoff` apart: at each, the tasks made before `handoff` ago are queued (so a task waits from one
#: `handoff` to a quarter more before it is seen), and the other process may be up to this many hand-offs behind
HANDOFF_STEPS = 4
#: the second process's scratch database numbers its cases and instances from here (so that the measures read
#: both processes' cases together, each case and instance under an id of its own)
PART_IDS = 1_000_000_000


class SecondNotStarted(CarepathError):
    """The run's second process could not be started (`why`: the start's error type and words)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the simulation's other process could not be started ({why})")
        self.why = why


class _Peer:
    """The other process of a run split in two: what is sent to it, and what came from it (read by a thread, so
    that neither process waits on a full pipe while the other sends)."""

    def __init__(self, conn: Any, process: Any = None, starting: Any = None, not_started: list[str] | None = None) \
            -> None:
        import queue

        self.conn, self.process = conn, process
        self.starting = starting  # the thread starting the process (`_spawn_second`): joined before it is waited for
        self.not_started = not_started if not_started is not None else []  # why it could not be started, if so
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.mark = 0  # the last hand-off whose steps came
        self.closed = False  # set by `close`: the reader then ends quietly
        self.reader = threading.Thread(target=self._read, daemon=True, name="simulation-peer")
        self.reader.start()

    def _read(self) -> None:
        try:
            while not self.closed:
                msg = self.conn.recv()
                self.inbox.put(msg)
                if msg[0] != "handoff":
                    return
        except (EOFError, OSError, TypeError) as exc:
            if self.closed:  # closed by this process (a run that ended or failed): nothing more to read
                return  # (multiprocessing raises TypeError when the pipe was closed between two reads)
            if self.not_started:  # its start failed: the run is made again in one process (`simulate`)
                self.inbox.put(("not_started", self.not_started[0]))
            else:
                self.inbox.put(("failed", f"the simulation's other process ended without a word ({exc or 'closed'})"))

    def send(self, msg: tuple) -> None:
        try:
            self.conn.send(msg)
        except OSError:  # the other process is gone: say why, as it said or as its reader found
            while self._next()[0] == "handoff":
                pass
            raise CarepathError("the simulation's other process ended its run early") from None

    def _next(self) -> tuple:
        msg = self.inbox.get()
        if msg[0] == "failed":
            raise CarepathError(msg[1])
        if msg[0] == "refused":
            raise ScenarioError(msg[1])
        if msg[0] == "not_started":
            raise SecondNotStarted(msg[1])
        return msg

    def wait_for(self, k: int) -> list[tuple]:
        """The steps the other process made up to its hand-off `k` (those since the last one asked for)."""
        got: list[tuple] = []
        while self.mark < k:
            msg = self._next()
            if msg[0] != "handoff":
                raise CarepathError(f"the simulation's other process sent {msg[0]!r} at hand-off {k}")
            self.mark = msg[1]
            got += msg[2]
        return got

    def wait_for_end(self) -> dict[str, Any]:
        while True:
            msg = self._next()
            if msg[0] == "end":
                return msg[1]

    def close(self, at_once: bool = False) -> None:
        """Close the pipe and wait for the process to end (5 s, then it is killed); `at_once`: end it now."""
        self.closed = True
        self.conn.close()
        if self.starting is not None:
            self.starting.join()
        if self.process is not None and self.process.pid is not None:
            if at_once:
                self.process.kill()
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()


def _make_placeholders(eng: Any, part: int) -> None:
    """A case and an instance numbered `PART_IDS * part`, so that SQLite numbers the next ones after them (the
    largest id + 1); removed once the first case is made (`_drop_placeholders`)."""
    from sqlalchemy import insert

    from engine.schema import cases, instances, process_versions
    from engine.state import STATE_FORMAT

    n, now = PART_IDS * part, eng.now()
    with eng.db.engine.begin() as conn:
        version = conn.execute(select(process_versions.c.id).limit(1)).scalar_one()
        conn.execute(insert(cases).values(id=n, reference=f"~part-{part}", title="", data="{}", created_at=now,
                                          updated_at=now))
        conn.execute(insert(instances).values(id=n, case_id=n, process_version_id=version, process_id="~part",
                                              status="cancelled", version=0, state_format=STATE_FORMAT,
                                              started_at=now, updated_at=now))


def _drop_placeholders(eng: Any, part: int) -> None:
    from sqlalchemy import delete

    from engine.schema import cases, instances

    n = PART_IDS * part
    with eng.db.engine.begin() as conn:
        conn.execute(delete(instances).where(instances.c.id == n))
        conn.execute(delete(cases).where(cases.c.id == n))


def _uses_messages(eng: Any) -> bool:
    """Whether a deployed diagram sends or waits for a message (a message may go to another case, which the
    other process may hold: such a run stays in one process)."""
    from engine.schema import definition_files

    with eng.db.engine.connect() as conn:
        for (raw,) in conn.execute(select(definition_files.c.content)):
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if "messageEventDefinition" in text or "receiveTask" in text or "sendTask" in text:
                return True
    return False


def _second_part(conn: Any, scenario: Scenario, rows: Any, days: int | None, seed: int | None) -> None:
    """The second process of a run split in two (started by `simulate`): the same loop, its own cases."""
    try:
        try:
            with fewer_collections(gen0=COLLECTOR_GEN0):
                eng, ck = _prepared(scenario, rows, days, seed, full_history=False, start=_start_day(scenario))
                try:
                    if _uses_messages(eng):  # the first process runs it alone (simulate)
                        return
                    _make_placeholders(eng, 1)
                    partial = _Run(eng, ck, part=1, parts=2, peer=_Peer(conn)).run()
                finally:
                    eng.db.dispose()
            conn.send(("end", partial))
        except ScenarioError as exc:
            conn.send(("refused", str(exc)))
        except Exception as exc:  # noqa: BLE001 - the message crosses to the first process, which raises it
            conn.send(("failed", f"the simulation's other process failed: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(math.ceil(q / 100 * len(s))) - 1)], 2)


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method (in steps of 30 for large means, so exp() does not underflow)."""
    n = 0
    while lam > 30:
        n += _poisson(rng, 30.0)
        lam -= 30.0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return n + k
        k += 1


def _measures(views: dict[int, Any], start: date, end: date) -> list[dict[str, Any]] | dict[str, str]:
    """The published measures (handlers/measures.py) for the simulated period, from every case's view (each
    process's scratch database read by `_Run.partial`)."""
    from handlers import measures

    try:
        population = measures.population_of(dict(sorted(views.items())))
        return [{"key": r.key, "title": r.title, "unit": r.unit, "figure": r.figure, "numerator": r.numerator,
                 "denominator": r.denominator, "message": r.message}
                for r in measures.kept_results(population, start, end, None)]
    except CarepathError as exc:
        return {"error": f"the measures could not be worked out on the simulated database: {exc}"}


def diagrams_run(eng: Any) -> dict[str, Any]:
    """Which diagrams a run ran: {"from": "database" (the versions deployed on --db) or "processes/" (the files,
    when no database was named or it had none deployed), "versions": {process id: version}}."""
    from engine.definitions import newest_versions
    with eng.db.engine.connect() as conn:
        versions = newest_versions(conn)
    return {"from": getattr(eng, "simulated_diagrams", "database"), "versions": versions}


def summary_text(out: dict[str, Any]) -> str:
    """The readable summary `carepath simulate` prints without --json."""
    lines = [f"Simulated {out['days']} days from {out['start']} (scenario {out['scenario']}, seed {out['seed']}): "
             f"{out['contacts']} contacts"]
    d = out.get("diagrams")
    if d:
        which = ("the versions deployed on the database" if d["from"] == "database" else
                 "the files in processes/ (no database file, or none deployed on it)")
        lines.append(f"Diagrams: {which}: " + ", ".join(f"{p} v{v}" for p, v in d["versions"].items()))
    lines += ["By route: " + ", ".join(f"{k} {v}" for k, v in out["routes"].items()),
              "Processes started: " + ", ".join(f"{p} {sum(s.values())}" for p, s in out["processes"].items()),
              "", "Team               staff  arrived   done  waiting at end  wait p50 h  wait p95 h"]
    for name, t in out["teams"].items():
        lines.append(f"{name:<18} {t['staff']:>5} {t['arrived']:>8} {t['done']:>6} {t['waiting_at_end']:>15} "
                     f"{_h(t['wait_hours_p50']):>11} {_h(t['wait_hours_p95']):>11}")
    lines += ["", "Deadlines missed (the diagrams' timers that fired):"]
    lines += [f"  {v['deadline']} ({k}): {v['times']}" for k, v in out["deadline_breaches"].items()] or ["  none"]
    pb = out["personal_budgets"]
    lines += ["", f"Personal budgets: {pb['count']}, total £{pb['total']:,.2f}"
              + (f", mean £{pb['mean']:,.2f}" if pb["mean"] is not None else "")]
    if out["tasks_not_completed"]:
        lines += ["", "Tasks whose drawn answers did not fit the form (add a policy for them):"]
        lines += [f"  {k}: {v['times']} ({v['first_refusal']})" for k, v in out["tasks_not_completed"].items()]
    if out["incidents"]:
        lines += ["", "Incidents (a step failed; the case stopped there):"]
        lines += [f"  {k}: {v}" for k, v in out["incidents"].items()]
    if isinstance(out["measures"], list):
        lines += ["", "Measures for the simulated period:"]
        for m in out["measures"]:
            figure = "-" if m["figure"] is None else f"{m['figure']}{'%' if m['unit'] == '%' else ''}"
            lines.append(f"  {m['title']}: {figure}")
    return "\n".join(lines)


def _h(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"
