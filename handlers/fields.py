"""Checking a text field a worker typed, before anything is started or stored, with a message that names it.

One check for the web layer (api/case_actions.py, the actions on a case record) and the handlers' own checks
(handlers/transition.py ``check_referral``, a referral from children's services), so a field gets the same
GOV.UK error message wherever it is typed: "Enter the carer's address", "The postcode must be 10 characters
or fewer", "The hospital and ward must not contain control characters".
"""

from __future__ import annotations

import re
from typing import Any

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # control characters other than tab, newline, return


def check_text(data: dict[str, Any], name: str, label: str, errors: dict[str, str], *, required: bool = True,
               limit: int = 200) -> str:
    """``data[name]`` stripped ("" when it is missing or not text); a problem goes into ``errors[name]``.

    ``label`` names the field as a sentence starts ("The carer's full name"); "Enter ..." lower-cases only its
    first letter, so a name in it (NHS, CHC) keeps its capitals.
    """
    value = data.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[name] = f"{label} must be text"
        return ""
    value = value.strip()
    if required and not value:
        errors[name] = f"Enter {label[:1].lower()}{label[1:]}"
    elif len(value) > limit:
        errors[name] = f"{label} must be {limit} characters or fewer"
    elif CONTROL.search(value):
        errors[name] = f"{label} must not contain control characters"
    return value
