"""How a person's details are recognised in typed text: UK postcodes, NHS numbers, dates, phone numbers and
e-mail addresses.

One place, so that what the front door's search box picks out of a query (api/intake.py `parse_query`), how a
postcode on a case record is normalised (handlers/people.py) and what the simulation's anonymiser looks for in
the strings it would keep (carepath/simulate_today.py, docs/simulation.md "The sweep") are the same things.
Formats only: a postcode that does not exist, or an NHS number whose check digit is wrong, still matches.
Nothing here reads the clock or the database.
"""

from __future__ import annotations

import re
from datetime import date

# A UK postcode: the outward code (one or two area letters, the district's digit, an optional letter or digit),
# then the inward code (a digit and two letters); spaces and case as typed.
POSTCODE_OUTWARD = r"[A-Za-z]{1,2}\d[A-Za-z\d]?"
POSTCODE_INWARD = r"\d[A-Za-z]{2}"
#: a whole postcode inside text (groups: outward, inward)
POSTCODE = re.compile(rf"\b({POSTCODE_OUTWARD})\s*({POSTCODE_INWARD})\b")
#: a field that holds one postcode, with spaces around (fullmatch; groups: outward, inward)
POSTCODE_FIELD = re.compile(rf"\s*({POSTCODE_OUTWARD})\s*({POSTCODE_INWARD})\s*")
#: a postcode or its leading part, upper case without spaces ("NB4", "NB71", "NB71AB")
POSTCODE_PART = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]?(\d[A-Z]{0,2})?$")
#: an NHS number inside text: ten digits, in threes, three and four, with a space or hyphen between or not
#: (groups: the three parts)
NHS_NUMBER = re.compile(r"(?<!\d)(\d{3})[\s-]?(\d{3})[\s-]?(\d{4})(?!\d)")
#: a date written year first, 1944-03-27 (groups: year, month, day)
DATE_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
#: a date written day first, 27 3 1944, 27/03/1944, 27.3.1944, 27-03-1944 (groups: day, month, year)
DATE_DMY = re.compile(r"\b(\d{1,2})[ /.-](\d{1,2})[ /.-](\d{4})\b")
#: a run of digits with spaces, hyphens or brackets between: a phone number (or an NHS number) as typed
DIGIT_RUN = re.compile(r"\+?\d[\d \-()]{3,}\d")
#: an e-mail address inside text
EMAIL = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+")


def compact(text: str) -> str:
    """Letters and digits only, upper case: how two spellings of one code are compared ("nb7 1ab" = "NB71AB")."""
    return re.sub(r"[^0-9A-Za-z]", "", text).upper()


def nhs_numbers(text: str) -> list[str]:
    """Every NHS number in `text`, as its ten digits."""
    return ["".join(m.groups()) for m in NHS_NUMBER.finditer(text)]


def postcodes(text: str) -> list[str]:
    """Every whole postcode in `text`, upper case without spaces."""
    return [(m.group(1) + m.group(2)).upper() for m in POSTCODE.finditer(text)]


def iso_date(year: str, month: str, day: str) -> str | None:
    """The date as YYYY-MM-DD, or None when it is not a real date."""
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def dates(text: str) -> list[str]:
    """Every real date in `text`, written either way (year first or day first), as YYYY-MM-DD."""
    found = [iso_date(*m.groups()) for m in DATE_ISO.finditer(text)]
    found += [iso_date(m.group(3), m.group(2), m.group(1)) for m in DATE_DMY.finditer(text)]
    return [d for d in found if d]
