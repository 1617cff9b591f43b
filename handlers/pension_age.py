"""State Pension age, and so the Pension Credit qualifying age, from a date of birth; and the financial assessment's
age band on a given day (docs/charging.md, "The person's age").

Pure functions: the day is always passed in (the page passes the engine's clock), never read from the wall clock.

The schedule is the Pensions Act 1995 Schedule 4 Part 1 paragraph 1 as amended by the Pensions Act 2007 (Sch 3),
the Pensions Act 2011 (s.1) and the Pensions Act 2014 (s.26). The State Pension Credit Act 2002 s.1(6) makes the
qualifying age for Pension Credit the pensionable age of a woman born on the same day; since 6 December 2018 the
pensionable age is the same for men and women, so it is the State Pension age below:

* born 6 December 1953 to 5 October 1954: a fixed day, table 2 (Pensions Act 2011 s.1(5));
* born 6 October 1954 to 5 April 1960: 66;
* born 6 April 1960 to 5 March 1961: 66 and 1 to 11 months, table 3 (Pensions Act 2014 s.26), a 31st with no such
  day in the month reached taken as the last day of that month (the Act's paragraph (7A) names the three: 31 July
  1960 → 30 November 2026, 31 December 1960 → 30 September 2027, 31 January 1961 → 30 November 2027);
* born 6 March 1961 to 5 April 1977: 67;
* born 6 April 1977 to 5 April 1978: a fixed day, 6 May 2044 to 6 March 2046 (Pensions Act 2007, table 4);
* born after 5 April 1978: 68.

People born before 6 December 1953 reached it at 65 (men) or earlier (women, table 1): the day depends on sex,
which carepath does not need, so `state_pension_age_day` gives None for them and `age_band_on` says "pension_age"
only when the person was 65 or over on the day (every one of them was by 6 December 2018), else nothing.

A person reaches an age at the start of the anniversary of their birth; someone born on 29 February reaches it
on 1 March in a year that has no 29 February (the usual reading of the Family Law Reform Act 1969 s.9).
"""

from __future__ import annotations

import calendar
from datetime import date

#: table 2 (Pensions Act 2011 s.1(5)): born in the month starting on the 6th of (year, month) → the day reached
TABLE_2011 = {(1953, 12): date(2019, 3, 6), (1954, 1): date(2019, 5, 6), (1954, 2): date(2019, 7, 6),
              (1954, 3): date(2019, 9, 6), (1954, 4): date(2019, 11, 6), (1954, 5): date(2020, 1, 6),
              (1954, 6): date(2020, 3, 6), (1954, 7): date(2020, 5, 6), (1954, 8): date(2020, 7, 6),
              (1954, 9): date(2020, 9, 6)}
#: table 4 as inserted by the Pensions Act 2007: born 6 April 1977 to 5 April 1978, a day every two months
TABLE_2007 = {(1977, 4): date(2044, 5, 6), (1977, 5): date(2044, 7, 6), (1977, 6): date(2044, 9, 6),
              (1977, 7): date(2044, 11, 6), (1977, 8): date(2045, 1, 6), (1977, 9): date(2045, 3, 6),
              (1977, 10): date(2045, 5, 6), (1977, 11): date(2045, 7, 6), (1977, 12): date(2045, 9, 6),
              (1978, 1): date(2045, 11, 6), (1978, 2): date(2046, 1, 6), (1978, 3): date(2046, 3, 6)}

AGE_BANDS = ("18_24", "25_to_pension_age", "pension_age")


def _period(born: date) -> tuple[int, int]:
    """The schedule's periods run from the 6th of a month to the 5th of the next: the (year, month) it starts in."""
    if born.day >= 6:
        return born.year, born.month
    return (born.year - 1, 12) if born.month == 1 else (born.year, born.month - 1)


def anniversary(born: date, years: int, months: int = 0) -> date:
    """The day a person born on `born` reaches `years` and `months`: 29 February → 1 March in a common year; a day
    past the end of the month reached (31 July + 4 months) → that month's last day (Pensions Act 2014 s.26 (7A))."""
    total = born.month - 1 + months
    year, month = born.year + years + total // 12, total % 12 + 1
    last = calendar.monthrange(year, month)[1]
    if born.day <= last:
        return date(year, month, born.day)
    if months == 0 and born.month == 2:  # 29 February, a whole number of years later
        return date(year, 3, 1)
    return date(year, month, last)


def state_pension_age_day(born: date) -> date | None:
    """The day the person reaches State Pension age (and the Pension Credit qualifying age); None when born before
    6 December 1953 (65 for a man, earlier for a woman: it depends on sex)."""
    period = _period(born)
    if born < date(1953, 12, 6):
        return None
    if period in TABLE_2011:
        return TABLE_2011[period]
    if born < date(1960, 4, 6):
        return anniversary(born, 66)
    if born < date(1961, 3, 6):
        months = (period[0] - 1960) * 12 + period[1] - 4 + 1  # 6 April 1960 → 1 month ... 6 February 1961 → 11
        return anniversary(born, 66, months)
    if born < date(1977, 4, 6):
        return anniversary(born, 67)
    if period in TABLE_2007:
        return TABLE_2007[period]
    return anniversary(born, 68)


def age_on(born: date, on: date) -> int:
    """Whole years of age on the day `on`."""
    years = on.year - born.year
    return years if on >= anniversary(born, years) else years - 1


def age_band_on(born: date, on: date) -> str | None:
    """The financial assessment's age band on the day `on` (the minimum income guarantee's bands): "18_24",
    "25_to_pension_age" or "pension_age"; None when it cannot be worked out (under 18, born after `on`, or born
    before 6 December 1953 and under 65 on the day)."""
    if born > on:
        return None
    spa = state_pension_age_day(born)
    if spa is None:
        return "pension_age" if age_on(born, on) >= 65 else None
    if on >= spa:
        return "pension_age"
    age = age_on(born, on)
    if age < 18:
        return None
    return "18_24" if age < 25 else "25_to_pension_age"
