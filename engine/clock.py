"""The one clock of carepath. Nothing else in engine/ or handlers/ reads the wall clock.

A `Clock` gives the current instant as an aware UTC datetime. `SystemClock` reads the
wall clock; `FixedClock` holds a settable instant and is what a simulated database,
replay and tests use.
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Protocol

UTC = _dt.timezone.utc


class Clock(Protocol):
    def now(self) -> _dt.datetime: ...

    def wait(self, wake: threading.Event, seconds: float) -> bool: ...


def _wait(wake: threading.Event, seconds: float) -> bool:
    return wake.wait(max(0.0, seconds))


class SystemClock:
    """The wall clock, in UTC."""

    simulated = False

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(UTC)

    def wait(self, wake: threading.Event, seconds: float) -> bool:
        """Sleep `seconds` of this clock's time, or until `wake` is set (True then): the timer job's wait."""
        return _wait(wake, seconds)


class FixedClock:
    """A clock that stands still until it is set: for simulation, replay and tests."""

    simulated = True

    def __init__(self, at: _dt.datetime) -> None:
        self._at = as_utc(at)

    def now(self) -> _dt.datetime:
        return self._at

    def set(self, at: _dt.datetime) -> None:
        self._at = as_utc(at)

    def wait(self, wake: threading.Event, seconds: float) -> bool:
        """A clock that stands still never reaches a later instant by itself: the wait is real time, so a
        server on a fixed clock still looks at the database every `seconds`, or when `wake` is set."""
        return _wait(wake, seconds)


def as_utc(value: _dt.datetime) -> _dt.datetime:
    """Give an aware UTC datetime; a naive one is taken to be UTC already (never local time)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_instant(text: str) -> _dt.datetime:
    """Parse an ISO 8601 instant; without an offset it is UTC."""
    return as_utc(_dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
