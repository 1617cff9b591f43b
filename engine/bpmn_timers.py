"""BPMN timers that follow carepath's injected clock and accept modellers' bare ISO 8601.

SpiffWorkflow 3.2.0 reads the wall clock inside its timer event definitions, evaluates
every timer text as a Python expression (so a modeller's bare `P42D` fails) and reads
dates without an offset in the server's local time zone. The three event-definition
subclasses here fix all three:

* "now" is `task.workflow.script_engine.clock.now()` everywhere the library used
  the wall clock (`now(timezone.utc)` on the `datetime` class);
* a timer text that is a strict ISO 8601 literal (`P42D`, `2027-01-04T09:00:00Z`,
  `R/P1Y`) is used as written; anything else is a Python expression evaluated by the
  script engine, which must give an ISO 8601 string (or a datetime / timedelta);
* dates without an offset are UTC, and a timer falls due when the clock *reaches* its
  due time (the library waited until the clock had passed it).

What is stored in the task's internal data (`event_value`) keeps the library's shape,
so `wf.waiting_events()` and the serializer work unchanged.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.event_definition import TimerConditionalEventDefinitionConverter
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from engine.clock import UTC, SystemClock, as_utc

# --- strict ISO 8601 shapes ------------------------------------------------------------

_NUM = r"\d+(?:[.,]\d+)?"
_DURATION = (
    rf"P(?=\d|T\d)(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}W)?(?:{_NUM}D)?"
    rf"(?:T(?=\d)(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?"
)
_DATE = r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
_CYCLE = rf"R(\d*)/(?:({_DATE})/({_DURATION})|({_DURATION})/({_DATE})|({_DURATION}))"

LITERAL_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(_DATE),
    "duration": re.compile(_DURATION),
    "cycle": re.compile(_CYCLE),
}
# Text that starts like ISO 8601 is meant as a literal: if it is not a valid one it is a
# typo (`P4XD`) to report at deploy time, not a Python name to look up at run time.
_LOOKS_ISO = re.compile(r"(?:P\d|PT\d|R\d*/|\d{4}-|PT?[-+ ]+\d)")
# A length of time in words ("14 days", "6 weeks") or ISO 8601 in lower case ("p14d"): meant as a literal too.
# Read as Python, the first is a syntax error and the second a case variable that no case has, so the timer
# would fail when a case reached it.
_IN_WORDS = re.compile(r"(\d+)\s*(working\s+)?(minute|hour|day|week|month|year)s?", re.IGNORECASE)
_WORD_UNITS = {"minute": "PT{}M", "hour": "PT{}H", "day": "P{}D", "week": "P{}W", "month": "P{}M", "year": "P{}Y"}

KINDS = ("date", "duration", "cycle")
EXAMPLES = {"date": "2027-01-04T09:00:00Z", "duration": "P42D", "cycle": "R/P1Y"}


def is_literal(kind: str, text: str) -> bool:
    """True when `text` is, by shape, a bare ISO 8601 value of this timer kind."""
    return LITERAL_PATTERNS[kind].fullmatch(text.strip()) is not None


def looks_like_iso(text: str) -> bool:
    text = text.strip()
    return (_LOOKS_ISO.match(text) is not None or _IN_WORDS.fullmatch(text) is not None
            or (text != text.upper() and any(is_literal(kind, text.upper()) for kind in KINDS)))


def _suggestion(kind: str, text: str) -> str:
    """What the owner probably meant, said after the problem ("write P14D"), or ""."""
    if is_literal(kind, text.upper()):
        return f": write {text.upper()}"
    words = _IN_WORDS.fullmatch(text)
    if kind == "duration" and words is not None:
        if words.group(2):
            return ("; working days are counted with a local setting (a whole number of working days) or "
                    "working_day_deadline(…) in a date timer")
        return f": write {_WORD_UNITS[words.group(3).lower()].format(int(words.group(1)))}"
    return ""


def literal_problem(kind: str, text: str) -> str | None:
    """Why `text` is not a usable ISO 8601 value of this kind, or None if it is."""
    text = text.strip()
    if not is_literal(kind, text):
        return f"'{text}' is not a valid ISO 8601 {kind} (for example {EXAMPLES[kind]}){_suggestion(kind, text)}"
    try:
        _due_from_literal(kind, text, datetime(2000, 1, 1, tzinfo=UTC))
    except (ValueError, TypeError, OverflowError) as exc:
        return f"'{text}' is not a valid ISO 8601 {kind}: {exc}"
    return None


# --- parsing ---------------------------------------------------------------------------


def parse_date(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC, never local time."""
    return as_utc(datetime.fromisoformat(text.strip().replace(",", ".")))


def parse_duration(text: str) -> dict[str, float]:
    """The parts of an ISO 8601 duration, e.g. {'days': 42}; months/years stay calendar units."""
    text = text.strip()
    if not is_literal("duration", text):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    try:
        return TimerEventDefinition.parse_iso_duration(text)
    except Exception as exc:  # the library raises a bare Exception
        raise ValueError(f"not an ISO 8601 duration: {text!r}") from exc


def add_duration(start: datetime, text: str) -> datetime:
    """`start` + an ISO 8601 duration, counting months and years on the calendar from `start`."""
    return start + TimerEventDefinition.get_timedelta_from_start(parse_duration(text), start)


def parse_cycle(text: str, now: datetime) -> tuple[int, datetime, timedelta]:
    """(repetitions or -1 for unbounded, first occurrence, interval) of an ISO 8601 cycle."""
    match = LITERAL_PATTERNS["cycle"].fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 repeating interval: {text!r}")
    reps, start_s, start_dur, end_dur, end_s, only_dur = match.groups()
    cycles = int(reps) if reps else -1
    if start_s is not None:
        start = parse_date(start_s)
        return cycles, start, add_duration(start, start_dur) - start
    if end_s is not None:
        end = parse_date(end_s)
        interval = TimerEventDefinition.get_timedelta_from_end(parse_duration(end_dur), end)
        return cycles, end - interval, interval
    # Only an interval: the first occurrence is one interval after the timer starts waiting.
    first = add_duration(now, only_dur)
    return cycles, first, first - now


def _due_from_literal(kind: str, text: str, now: datetime) -> datetime:
    if kind == "date":
        return parse_date(text)
    if kind == "duration":
        return add_duration(now, text)
    return parse_cycle(text, now)[1]


# --- the event definitions -------------------------------------------------------------


def clock_now(my_task: Any) -> datetime:
    """Now, from the script engine's clock; the wall clock only if the engine has none."""
    clock = getattr(my_task.workflow.script_engine, "clock", None) or SystemClock()
    return as_utc(clock.now())


def timer_value(my_task: Any, kind: str, expression: str) -> str:
    """The ISO 8601 text of a timer: the literal as written, or the expression's result."""
    text = expression.strip()
    if is_literal(kind, text):
        return text
    value = my_task.workflow.script_engine.evaluate(my_task, text)
    candidate = value
    if kind == "date" and isinstance(value, (datetime, date)):
        candidate = value.isoformat()
    elif kind == "duration" and isinstance(value, timedelta):
        candidate = _seconds_duration(value)
    if isinstance(candidate, str) and literal_problem(kind, candidate) is None:
        return candidate.strip()
    raise WorkflowTaskException(
        f"timer expression {text!r} gave {value!r}, not an ISO 8601 {kind} (e.g. {EXAMPLES[kind]})",
        task=my_task,
    )


def _seconds_duration(value: timedelta) -> str:
    seconds = f"{value.total_seconds():.6f}".rstrip("0").rstrip(".")
    return f"PT{seconds}S"


class CarepathTimeDateEventDefinition(TimeDateEventDefinition):
    """timeDate: due at the given instant (UTC when no offset is written)."""

    def has_fired(self, my_task: Any) -> bool:
        return _has_fired(self, my_task, lambda: parse_date(timer_value(my_task, "date", self.expression)))


class CarepathDurationTimerEventDefinition(DurationTimerEventDefinition):
    """timeDuration: due that long after the task starts waiting (fixed then, stored as UTC)."""

    def has_fired(self, my_task: Any) -> bool:
        return _has_fired(self, my_task, lambda: add_duration(clock_now(my_task),
                                                              timer_value(my_task, "duration", self.expression)))


def _keys(definition: Any, my_task: Any) -> tuple[str, str]:
    """Where a timer keeps its due time and fired flag in the task's internal data.

    A timer event's own task: the library's `event_value` / `event_fired`. A timer among several
    definitions on one task (behind an event-based gateway, which holds its events' definitions,
    or a multiple event): `event_value:N` / `event_fired:N`, N its place among them, so that two
    timers of one gateway do not share one due time."""
    own = my_task.task_spec.event_definition
    if own is definition or not isinstance(own, MultipleEventDefinition):
        return "event_value", "event_fired"
    index = next(i for i, d in enumerate(own.event_definitions) if d is definition)
    return f"event_value:{index}", f"event_fired:{index}"


def _has_fired(definition: Any, my_task: Any, first_due: Any) -> bool:
    value_key, fired_key = _keys(definition, my_task)
    event_value = my_task.internal_data.get(value_key)
    if event_value is None:
        event_value = first_due().isoformat()
        my_task.internal_data[value_key] = event_value
    if value_key == "event_value":
        if parse_date(event_value) <= clock_now(my_task):
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)
    # One of several events on one task: it wins only if nothing else was caught first and no other
    # timer of the task falls due before it (ties: the first drawn), so exactly one path is taken.
    if my_task.internal_data.get(fired_key):
        return True
    if my_task.internal_data.get("seen_events") or parse_date(event_value) > clock_now(my_task):
        return False
    mine = parse_date(event_value)
    own = my_task.task_spec.event_definition
    for index, other in enumerate(own.event_definitions):
        if other is definition:
            break
        other_value = my_task.internal_data.get(f"event_value:{index}")
        if isinstance(other, TimerEventDefinition) and isinstance(other_value, str) and parse_date(other_value) <= mine:
            return False
    for index, other in enumerate(own.event_definitions):
        other_value = my_task.internal_data.get(f"event_value:{index}")
        if other is not definition and isinstance(other_value, str) and parse_date(other_value) < mine:
            return False
    my_task.internal_data[fired_key] = True
    return True


class CarepathCycleTimerEventDefinition(CycleTimerEventDefinition):
    """timeCycle: fires at each occurrence; the library's bookkeeping with our clock."""

    def cycle_complete(self, my_task: Any) -> bool:
        now = clock_now(my_task)
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            cycles, start, interval = parse_cycle(timer_value(my_task, "cycle", self.expression), now)
            event_value = {"cycles": cycles, "next": start.isoformat(), "duration": interval.total_seconds()}

        # As in the library: True lets the task spawn another child; when the cycles run
        # out, event_fired marks the timer itself complete.
        ready = False
        if event_value["cycles"] != 0:
            next_event = parse_date(event_value["next"])
            if next_event <= now:
                event_value["next"] = (next_event + timedelta(seconds=event_value["duration"])).isoformat()
                event_value["cycles"] -= 1
                ready = True
        else:
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
            return False
        my_task._set_internal_data(event_value=event_value)
        return ready


# The class names are written into every saved workflow (the serializer's typename):
# renaming one needs a migration of stored state.
TIMER_CLASSES: dict[str, type[TimerEventDefinition]] = {
    "date": CarepathTimeDateEventDefinition,
    "duration": CarepathDurationTimerEventDefinition,
    "cycle": CarepathCycleTimerEventDefinition,
}

# Serializer converters: the library's timer converter (name, description, expression)
# fits ours too, registered under our class names.
TIMER_SERIALIZER_CONFIG = {cls: TimerConditionalEventDefinitionConverter for cls in TIMER_CLASSES.values()}


def timer_due(task: Any) -> datetime | None:
    """When a WAITING timer task falls due (aware UTC), from the value SpiffWorkflow stored.

    date: the date; duration: start + duration; cycle: the next occurrence. An event-based
    gateway (or a multiple event) waiting with timers among its events: the earliest of them.
    None for a task that is not waiting, waits for no timer, has not started its timer yet, or
    is a cycle that has run out.
    """
    found = waiting_timer(task)
    return found[1] if found is not None else None


def waiting_timer(task: Any) -> tuple[Any, datetime] | None:
    """(task spec of the timer event, due time) of the timer a WAITING task waits for; for an
    event-based gateway, the timer event drawn after it that falls due first."""
    if task.state != TaskState.WAITING:
        return None
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        outputs = list(getattr(task.task_spec, "outputs", []))
        best: tuple[Any, datetime] | None = None
        for index, sub in enumerate(definition.event_definitions):
            value = task.internal_data.get(f"event_value:{index}")
            if not isinstance(sub, TimerEventDefinition) or isinstance(sub, CycleTimerEventDefinition) \
                    or not isinstance(value, str):
                continue
            due = parse_date(value)
            spec = outputs[index] if index < len(outputs) and outputs[index].bpmn_id else task.task_spec
            if best is None or due < best[1]:
                best = (spec, due)
        return best
    if not isinstance(definition, TimerEventDefinition):
        return None
    value = task._get_internal_data("event_value")
    if value is None:
        return None
    if isinstance(definition, CycleTimerEventDefinition):
        if not isinstance(value, dict) or value.get("cycles") == 0:
            return None
        return task.task_spec, parse_date(value["next"])
    # Duration timers store the due instant; date timers store the date itself.
    return task.task_spec, parse_date(str(value))
