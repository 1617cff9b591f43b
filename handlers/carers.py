"""Carers in their own right (Care Act 2014 s.10, s.20, s.24-25): who the carer is, and their budget.

* ``check_carer_start`` / ``checked_carer`` (an expression function) — the start data of a carer's
  assessment, checked (the case action checks it before anything is stored; the diagram's first step
  again): ``person`` is the carer with a name (and the relationship to the person cared for when there is
  one); ``cared_for`` the cared-for person's name, which may be absent or empty only for a carer who
  contacts the council on their own (``carer_self_contact`` true) and whose cared-for person is not known
  to us. Errors name the field.
* ``carer_personal_budget`` (handler) — the annual amount for an eligible carer's support, from the level
  recorded in the carer's assessment and the council's ``carer_support_allocation`` levels in
  ``processes/config/ras.json``, and whether the council adds that allocation to the cared-for person's
  personal budget (``add_to_personal_budget``). The carer's support plan then says where the money is held
  (carers_support_plan.bpmn, "Put the carer's plan together"): part of the cared-for person's personal
  budget (``cared_for_personal_budget``: not paid twice) only when the worker says so, the council adds it
  there and the carer is on the cared-for person's case; otherwise the carer's own personal budget
  (``carers_personal_budget``) — always for a carer who came forward on their own.

Pure: no clock but ``ctx.now``, no I/O but the RAS configuration file.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

from . import budget, working_days
from .fields import CONTROL

NAME_MAX = 200


def check_carer_start(data: Any) -> dict[str, str]:
    """Errors by field (empty when fine) in the start data of a carer's assessment."""
    errors: dict[str, str] = {}
    if not isinstance(data, dict):
        return {"data": "The start data must be an object with person, cared_for, contact_date, carer_self_contact"}
    person = data.get("person")
    self_contact = data.get("carer_self_contact", False)
    if not isinstance(self_contact, bool):
        errors["carer_self_contact"] = "carer_self_contact must be true or false"
    if not isinstance(person, dict):
        errors["person"] = "person must be the carer: an object with at least their name"
        return errors
    name = person.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["person.name"] = "Enter the carer's name"
    elif len(name) > NAME_MAX or CONTROL.search(name):
        errors["person.name"] = f"The carer's name must be {NAME_MAX} characters or fewer, without control characters"
    cared_for = data.get("cared_for")
    if cared_for not in (None, "") and not isinstance(cared_for, str):
        errors["cared_for"] = "cared_for must be the cared-for person's name (text)"
    elif not (cared_for or "").strip() and self_contact is not True:
        errors["cared_for"] = ("Enter the name of the person the carer cares for (only a carer who contacts us on "
                               "their own may leave it out)")
    elif isinstance(cared_for, str) and isinstance(name, str) and cared_for.strip() and \
            " ".join(cared_for.split()).casefold() == " ".join(name.split()).casefold():
        errors["cared_for"] = "The carer must be someone other than the person they care for"
    relationship = person.get("relationship")
    if relationship is not None and not isinstance(relationship, str):
        errors["person.relationship"] = "The carer's relationship must be text"
    contact = data.get("contact_date")
    if contact is not None and (not isinstance(contact, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", contact)):
        errors["contact_date"] = "contact_date must be a date, YYYY-MM-DD"
    return errors


def checked_carer(person: Any, cared_for: Any = None, carer_self_contact: Any = False) -> dict[str, Any]:
    """The carer and the person cared for, checked and put the same way for every later step.

    An expression function: the carer's assessment's first step (a script, which can default what a starter
    left out) calls it; bad start data stops the process there with the fields named."""
    errors = check_carer_start({"person": person, "cared_for": cared_for, "carer_self_contact": carer_self_contact})
    if errors:
        raise ValueError("carer's assessment start data: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return {"carer": person["name"].strip(), "relationship": person.get("relationship") or None,
            "cared_for": (cared_for or "").strip() or None, "self_contact": bool(carer_self_contact)}


def add_months(start: Any, months: Any, working_day: Any = False) -> str:
    """`start` (an ISO 8601 datetime, or a datetime) plus whole months, the same time of day, as ISO 8601.

    The day is kept, or the last day of a shorter month (31 March + 1 month = 30 April); with `working_day`
    a weekend or bank holiday moves on to the next working day (England) — for 12 months or more, to the
    working day before, so that a year's review never falls more than 12 months after the last (Care Act
    s.27, statutory guidance 13.32). The review date the carer's letter
    gives and the moment its timer is due are this one function's answer (an expression function; an ISO 8601
    "P1M" duration would roll 31 March over to 1 May)."""
    when = datetime.fromisoformat(start) if isinstance(start, str) else start
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"add_months needs a date and time with its zone, got {start!r}")
    if isinstance(months, bool) or not isinstance(months, int) or not 0 < months <= 120:
        raise ValueError(f"add_months needs a whole number of months from 1 to 120, got {months!r}")
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    moved = when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))
    if working_day is True:
        day = working_days.next_working_day_on_or_after(moved.date())
        if months >= 12 and day != moved.date():  # not past the 12 months: the working day before
            day = working_days.working_day_on_or_before(moved.date())
        moved = moved.replace(year=day.year, month=day.month, day=day.day)
    return moved.isoformat()


def carer_personal_budget(ctx: HandlerContext, support_level: str) -> dict[str, Any]:
    """The annual amount for an eligible carer's support, from the level their assessment found."""
    cfg, source = budget.load_config(shared=True)  # read only: the whole table is not copied each time
    levels: dict[str, Decimal] = cfg["carer_support_levels"]
    if support_level not in levels:
        raise ValueError(f"support_level must be one of {', '.join(levels)} (ras.json carer_support_allocation), "
                         f"got {support_level!r}")
    amount = levels[support_level]
    weekly = (amount / cfg["weeks_per_year"]).quantize(Decimal("0.01"))
    added = bool(cfg["carer_support_added"])
    explanation = (
        f"The carer's assessment found {support_level} support needs: {budget._gbp(amount)} a year "
        "(carer_support_allocation in ras.json). " + (
            "The council adds this to the personal budget of the person cared for when they have one: the plan "
            "says whether it is held there (it is not paid twice) or is the carer's own personal budget."
            if added else "It is the carer's own personal budget."))
    return {"support_level": support_level, "amount": budget._out(amount), "weekly_amount": budget._out(weekly),
            "added_to_cared_for_budget": added, "explanation": explanation, "config": source,
            "worked_out_at": ctx.now.isoformat()}


def _same_name(a: Any, b: Any) -> bool:
    return bool(a) and bool(b) and " ".join(str(a).split()).casefold() == " ".join(str(b).split()).casefold()


def carer_support_paid_once(held_by: Any, carer_budget: dict[str, Any], cared_for_budget: dict[str, Any] | None,
                            carer: str, cared_for: str | None, case_person: str | None) -> dict[str, Any]:
    """Whether the carer's support is paid from one budget (an expression function; docs/charging.md, "Carers'
    support is paid once").

    Support for a carer's needs is met either by care to the adult, held in the cared-for person's personal
    budget as support for their carer (Care Act s.20(7)), or in the carer's own personal budget (s.20, s.24) —
    not both. `cared_for_budget` is the cared-for person's decided personal budget on this case (case data
    personal_budget, with its `carer_support`), or None. A conflict:

    * the plan holds the carer's budget as their own while the cared-for person's budget already includes
      support for their carer (the same needs paid twice), or
    * the plan holds it in the cared-for person's budget, but that budget (decided) includes a different
      amount for the carer (or none), so the plan would promise money that is not there.

    A carer on their own case (they came forward on their own) always has their own budget: no conflict.
    Returns {"conflict", "message", "carer_amount", "cared_for_amount", "held_by"}: amounts as strings of pounds."""
    own = Decimal(str(carer_budget["amount"]))
    support = (cared_for_budget or {}).get("carer_support") if isinstance(cared_for_budget, dict) else None
    support = support if isinstance(support, dict) else {}
    included = Decimal(str(support.get("amount") or "0")) if support.get("added_to_budget") else Decimal(0)
    on_own_case = _same_name(case_person, carer) or not cared_for
    out = {"conflict": False, "message": "", "carer_amount": budget._out(own),
           "cared_for_amount": budget._out(included), "held_by": held_by}
    if on_own_case or not isinstance(cared_for_budget, dict):
        return out
    if held_by == "carer" and included > 0:
        out.update(conflict=True, message=(
            f"{cared_for}'s personal budget already includes {budget._gbp(included)} a year to support their carer, "
            f"and this plan gives {carer} their own budget of {budget._gbp(own)} a year as a carer. Support for the "
            f"same needs is paid from one budget, not both: hold {carer}'s support in {cared_for}'s budget, or "
            f"have {cared_for}'s budget decided again without it."))
    elif held_by == "cared_for" and included != own:
        out.update(conflict=True, message=(
            f"This plan holds {carer}'s budget of {budget._gbp(own)} a year in {cared_for}'s personal budget, but "
            f"that budget includes {budget._gbp(included)} a year to support their carer. Hold {carer}'s support "
            f"in their own budget, or have {cared_for}'s budget decided again so that it includes it."))
    return out


def register(registry: HandlerRegistry) -> None:
    registry.expression_function("carer_support_paid_once", carer_support_paid_once, bounded=True)
    registry.expression_function("checked_carer", checked_carer, bounded=True)
    registry.expression_function("add_months", add_months, bounded=True)  # 1 to 120 months
    registry.register("carer_personal_budget", carer_personal_budget)
