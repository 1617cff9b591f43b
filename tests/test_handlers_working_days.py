"""England and Wales working days, BST/GMT deadlines and the `deadline` handler."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from engine.bpmn_timers import literal_problem
from engine.expressions import SafeEnvironment
from engine.registry import HandlerContext, HandlerRegistry
from handlers import working_days
from handlers.working_days import (
    EXPRESSION_FUNCTIONS,
    add_working_days,
    bank_holiday,
    deadline,
    is_working_day,
    working_day_deadline,
    working_days_between,
)

CTX = HandlerContext(
    case_id=1, instance_id=1, process_id="t", element_id="t", now=datetime(2027, 1, 4, 9, tzinfo=timezone.utc)
)


def test_friday_plus_one_working_day_is_monday() -> None:
    assert add_working_days(date(2027, 1, 8), 1) == date(2027, 1, 11)
    assert add_working_days("2027-01-09", 1) == date(2027, 1, 11)  # from a Saturday too


def test_day_zero_is_the_start_itself() -> None:
    assert add_working_days(date(2027, 1, 9), 0) == date(2027, 1, 9)


def test_2026_england_and_wales_bank_holidays_are_known() -> None:
    expected = {
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 8, 31),
        date(2026, 12, 25),
        date(2026, 12, 28),
    }
    year = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    weekday_holidays = {d for d in year if d.weekday() < 5 and not is_working_day(d)}
    assert weekday_holidays == expected
    assert bank_holiday(date(2026, 12, 28)) == "Boxing Day (observed)"


def test_christmas_2026_skips_christmas_day_weekend_and_substitute_boxing_day() -> None:
    assert is_working_day(date(2026, 12, 24))
    assert not is_working_day(date(2026, 12, 25))  # Friday
    assert not is_working_day(date(2026, 12, 28))  # Monday, substitute for Boxing Day (Saturday)
    assert add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    # ...and New Year's Day 2027 (Friday) too
    assert add_working_days(date(2026, 12, 24), 4) == date(2027, 1, 4)


def test_easter_2027_skips_good_friday_and_easter_monday() -> None:
    assert not is_working_day(date(2027, 3, 26))
    assert not is_working_day(date(2027, 3, 29))
    assert add_working_days(date(2027, 3, 25), 1) == date(2027, 3, 30)


def test_counting_backwards_and_between_are_consistent() -> None:
    assert add_working_days(date(2026, 12, 29), -1) == date(2026, 12, 24)
    assert working_days_between(date(2026, 12, 24), date(2026, 12, 29)) == 1
    assert working_days_between(date(2026, 12, 29), date(2026, 12, 24)) == -1
    start = date(2027, 3, 20)
    for n in (-12, -1, 0, 1, 5, 30):
        assert working_days_between(start, add_working_days(start, n)) == n


def test_deadline_in_summer_converts_bst_to_utc() -> None:
    # Friday 2 July 2027 + 1 working day = Monday 5 July, 17:00 BST = 16:00 UTC
    assert working_day_deadline("2027-07-02T09:00:00Z", 1) == "2027-07-05T16:00:00Z"


def test_deadline_in_winter_is_gmt() -> None:
    assert working_day_deadline("2027-01-08T09:00:00Z", 1) == "2027-01-11T17:00:00Z"
    assert working_day_deadline("2027-01-08", 1, at="09:30") == "2027-01-11T09:30:00Z"


def test_deadline_across_the_clocks_going_back() -> None:
    # BST ends on Sunday 31 October 2027: Friday 29th is BST, Monday 1 November is GMT.
    assert working_day_deadline("2027-10-29T12:00:00Z", 0) == "2027-10-29T16:00:00Z"
    assert working_day_deadline("2027-10-29T12:00:00Z", 1) == "2027-11-01T17:00:00Z"


def test_start_is_read_as_the_uk_calendar_day() -> None:
    # 23:30 UTC on Thursday 1 July is already Friday 2 July in the UK
    assert add_working_days("2027-07-01T23:30:00Z", 1) == date(2027, 7, 5)


def test_deadline_is_a_literal_bpmn_timedate() -> None:
    assert literal_problem("date", working_day_deadline("2027-07-02T09:00:00Z", 5)) is None


@pytest.mark.parametrize("bad", ["5pm", "25:00", "17.00", ""])
def test_bad_time_of_day_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        working_day_deadline("2027-01-08", 1, at=bad)


@pytest.mark.parametrize("bad", [True, 1.5, "3", 10**7])
def test_bad_day_counts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        add_working_days(date(2027, 1, 8), bad)  # type: ignore[arg-type]


def test_handler_counts_from_ctx_now() -> None:
    # ctx.now is Monday 4 January 2027 09:00 UTC; 5 working days on is Monday 11 January
    result = deadline(CTX, 5)
    assert result["due"] == "2027-01-11T17:00:00Z"
    assert result["working_days"] == 5
    assert result["due_date"] == "2027-01-11"


def test_expression_functions_work_in_the_sandbox_and_keep_task_data_plain() -> None:
    env = SafeEnvironment(EXPRESSION_FUNCTIONS)
    assert env.evaluate("add_working_days(received, 1)", {"received": "2026-12-24"}) == "2026-12-29"
    assert env.evaluate("working_day_deadline(received, 1)", {"received": "2027-07-02T09:00:00Z"}) == (
        "2027-07-05T16:00:00Z"
    )


def test_register_adds_deadline() -> None:
    registry = HandlerRegistry()
    working_days.register(registry)
    assert registry.get("deadline") is deadline


def test_uk_date_is_the_uk_calendar_day_of_an_instant():
    from handlers.working_days import EXPRESSION_FUNCTIONS

    uk_date = EXPRESSION_FUNCTIONS["uk_date"]
    assert uk_date("2031-06-01T22:59:59+00:00") == "2031-06-01"  # 23:59:59 BST
    assert uk_date("2031-06-01T23:00:00+00:00") == "2031-06-02"  # midnight BST: the next day already
    assert uk_date("2031-01-01T23:30:00+00:00") == "2031-01-01"  # GMT: the same day
    assert uk_date("2031-01-01") == "2031-01-01"
