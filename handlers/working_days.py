"""Working days and deadlines in England and Wales (Monday to Friday, less bank holidays).

Statutory and local deadlines ("strategy discussion within 5 working days", "respond the
next working day") count England and Wales working days and fall due at a local time of
day; BPMN timers want an absolute UTC instant. Everything here is a pure function of its
arguments: the handler takes "now" from `ctx.now`, never from the wall clock, so a replay
computes the same deadline.

Bank holidays come from the `holidays` package (GB, subdivision ENG; Wales has the same
bank holidays). Bank holidays announced late (a royal funeral, a coronation) reach us
through package upgrades.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from engine.registry import HandlerContext, HandlerRegistry

LONDON = ZoneInfo("Europe/London")
_AT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
# A step-by-step walk is simple and fast enough for any real deadline; the bound turns a
# modelling slip (working_days=10_000_000) into a clear error instead of a hung worker.
MAX_WORKING_DAYS = 3660

DateLike = date | datetime | str


@lru_cache(maxsize=64)
def _bank_holiday_names(year: int) -> MappingProxyType[date, str]:
    # One read-only copy per year: a HolidayBase fills itself lazily on lookup, which is not
    # safe to share between worker threads.
    return MappingProxyType(dict(holidays.country_holidays("GB", subdiv="ENG", years=year)))



def bank_holiday(d: date) -> str | None:
    """The name of the England and Wales bank holiday on `d`, or None."""
    return _bank_holiday_names(d.year).get(d)


def is_working_day(d: date) -> bool:
    """Monday to Friday and not an England and Wales bank holiday (substitute days included)."""
    if isinstance(d, datetime):  # a datetime is a date subclass: judge its UK local day
        d = as_local_date(d)
    return d.weekday() < 5 and d not in _bank_holiday_names(d.year)


def as_local_date(value: DateLike) -> date:
    """The UK calendar day of `value`.

    An aware datetime is converted to Europe/London first (23:30 UTC in summer is already
    tomorrow in the UK); a naive datetime or a bare date is taken as UK local already.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or date-time: {value!r}") from None
    if isinstance(value, datetime):
        return value.astimezone(LONDON).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"expected a date, datetime or ISO 8601 string, got {type(value).__name__}")


def _check_days(days: Any, name: str = "days") -> int:
    # bool is an int subclass; True working days is a modelling mistake, not 1.
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValueError(f"{name} must be a whole number of working days, got {days!r}")
    if abs(days) > MAX_WORKING_DAYS:
        raise ValueError(f"{name}={days} is beyond the supported {MAX_WORKING_DAYS} working days")
    return days


def add_working_days(start: DateLike, days: int) -> date:
    """The date `days` working days after `start` (before it when negative).

    Day 0 is `start` itself, whatever day it is; day 1 is the next working day after
    `start` (Friday + 1 = Monday; a Saturday + 1 = Monday too).
    """
    current = as_local_date(start)
    remaining = _check_days(days)
    step = timedelta(days=1 if remaining >= 0 else -1)
    while remaining:
        current += step
        if is_working_day(current):
            remaining -= 1 if remaining > 0 else -1
    return current


def next_working_day_on_or_after(value: DateLike) -> date:
    """`value` if it is a working day, else the first working day after it."""
    current = as_local_date(value)
    while not is_working_day(current):
        current += timedelta(days=1)
    return current


def working_day_on_or_before(value: DateLike) -> date:
    """`value` if it is a working day, else the last working day before it (a limit never moves later)."""
    current = as_local_date(value)
    while not is_working_day(current):
        current -= timedelta(days=1)
    return current


def working_days_between(a: DateLike, b: DateLike) -> int:
    """Working days from `a` to `b`: those after `a` up to and including `b`.

    Negative when `b` is before `a`, so that `add_working_days(a, working_days_between(a, b))
    == b` whenever `b` is a working day.
    """
    start, end = as_local_date(a), as_local_date(b)
    if end < start:
        # Mirror image: working days from `end` up to but excluding `start`.
        return -sum(1 for i in range((start - end).days) if is_working_day(end + timedelta(days=i)))
    return sum(1 for i in range(1, (end - start).days + 1) if is_working_day(start + timedelta(days=i)))


def _parse_at(at: str) -> time:
    match = _AT.fullmatch(at.strip()) if isinstance(at, str) else None
    if match is None:
        raise ValueError(f"at must be a 24-hour local time 'HH:MM', got {at!r}")
    return time(int(match.group(1)), int(match.group(2)))


def local_to_utc(day: date, at: str = "17:00") -> datetime:
    """`at` o'clock UK local time on `day`, as an aware UTC datetime (BST or GMT as it applies)."""
    # fold=0: in the repeated October hour the earlier (BST) reading is meant; a time in the
    # skipped March hour (01:xx) is read with the GMT offset. Office hours avoid both.
    return datetime.combine(day, _parse_at(at), tzinfo=LONDON).astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """`moment` as ISO 8601 UTC with a 'Z' suffix: a literal BPMN timeDate accepts as written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def working_day_deadline(start_iso: DateLike, days: int, at: str = "17:00") -> str:
    """The instant `days` working days after `start_iso`, at `at` UK local time, as ISO UTC.

    `working_day_deadline("2027-07-02T09:00:00Z", 1)` is Monday 5 July 2027 17:00 BST,
    i.e. "2027-07-05T16:00:00Z".
    """
    return iso_utc(local_to_utc(add_working_days(start_iso, days), at))


# ---------------------------------------------------------------- handler and expressions


def deadline(ctx: HandlerContext, working_days: int, at: str = "17:00") -> dict[str, Any]:
    """Service task: a deadline `working_days` working days after now, at `at` UK time."""
    days = _check_days(working_days, "working_days")
    due_day = add_working_days(ctx.now, days)
    return {
        "due": iso_utc(local_to_utc(due_day, at)),
        "due_date": due_day.isoformat(),
        "working_days": days,
        "from": ctx.now.astimezone(UTC).isoformat(),
        "at": at.strip(),
    }


def _add_working_days_iso(start: DateLike, days: int) -> str:
    # Task data may not hold a bare date (the sandbox asks for d.isoformat()), and ISO date
    # strings compare correctly as text in gateway conditions.
    return add_working_days(start, days).isoformat()


def _uk_date_iso(value: DateLike) -> str:
    """The UK calendar day of `value` as "YYYY-MM-DD": `uk_date(now())` is today in the UK (after 23:00 UTC in
    British Summer Time it is already tomorrow, which `now().date()` would not say)."""
    return as_local_date(value).isoformat()


def _next_working_day_iso(value: DateLike) -> str:
    return next_working_day_on_or_after(value).isoformat()


def _working_day_on_or_before_iso(value: DateLike) -> str:
    return working_day_on_or_before(value).isoformat()


#: Safe for diagram expressions (pure, no I/O); the date functions there give "YYYY-MM-DD":
#: `next_working_day(d)` is d or the first working day after it (a review date on a weekend or
#: bank holiday), `working_day_on_or_before(d)` d or the last working day before it (a limit), `uk_date(t)` the UK
#: calendar day of an instant (`uk_date(now())`: today in the UK, where `now().date()` is today in UTC).
EXPRESSION_FUNCTIONS: dict[str, Any] = {
    "add_working_days": _add_working_days_iso,
    "working_day_deadline": working_day_deadline,
    "next_working_day": _next_working_day_iso,
    "working_day_on_or_before": _working_day_on_or_before_iso,
    "uk_date": _uk_date_iso,
}


def register(registry: HandlerRegistry) -> None:
    registry.register("deadline", deadline)
