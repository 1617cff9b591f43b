"""Transition from children's services (Care Act 2014 s.58-66): dates, the decision to assess, letters.

A referral from children's services for a young person aged 14 to 17 starts the `transition` process
(processes/transition.bpmn). These handlers keep the rules out of the diagram:

* ``transition_dates``: the 18th birthday (29 February birthdays count from 1 March in other years),
  the age at referral, when the decision to assess is due (``transition_decision_days`` after the
  referral) and when the 18th-birthday check runs. The local settings used are in the result, so the
  case history records them.
* ``transition_decision``: whether to carry out the child's needs assessment now (s.58(1): likely to
  have needs for care and support after 18, of significant benefit now, the consent condition of
  s.58(3), or a refusal overridden by a risk of abuse or neglect, s.58(4)); later, on a date worked out
  from the worker's "reconsider in N months" but never later than ``transition_latest_assessment_before_18``
  before the 18th birthday; or not at all (written reasons and advice, s.58(5)).
* ``transition_letter``: the letter with the reasons and the information and advice of s.58(5), or the
  letter confirming that adult support takes over from children's services (s.66, no gap).

`check_referral` checks a referral before anything is started (api/transition.py uses it), with
messages that name the field.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from functools import partial
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

from . import settings
from .fields import check_text
from .letters import _render, long_date
from .people import check_name, nfc_name
from .working_days import iso_utc, local_to_utc

YOUNGEST, OLDEST = 14, 17  # the ages at referral this route takes; 18 and over come through the front door
CONSENT = {
    "given": "The young person agrees to the assessment",
    "refused": "The young person refuses the assessment",
    "lacks_capacity": "The young person lacks capacity (or is not competent) to agree",
}
SETTING_KEYS = ("transition_decision_days", "transition_latest_assessment_before_18", "transition_recheck_after")


# ---------------------------------------------------------------- dates
def _day(value: Any, what: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{what} must be a date (YYYY-MM-DD), got {value!r}") from None


def birthday(born: date, years: int) -> date:
    """The day a person born on `born` reaches `years` (29 February: 1 March in a common year)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:  # 29 February in a common year
        return date(born.year + years, 3, 1)


def age_on(born: date, day: date) -> int:
    years = day.year - born.year
    return years if birthday(born, years) <= day else years - 1


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _months(duration: Any, what: str) -> int:
    found = re.fullmatch(r"P(\d+)M", str(duration or ""))
    if not found:
        raise ValueError(f"local setting {what} must be a number of months such as P6M, got {duration!r}")
    return int(found.group(1))


def _settings() -> dict[str, Any]:
    values = settings.load()
    missing = [k for k in SETTING_KEYS if k not in values]
    if missing:
        raise ValueError(f"unknown local setting(s): {', '.join(missing)} (see {settings.CONFIG.name})")
    return {k: values[k] for k in SETTING_KEYS}


def transition_dates(ctx: HandlerContext, person: dict[str, Any], referral_date: str,
                     decide_from: str | None = None) -> dict[str, Any]:
    """The dates of a transition; `decide_from`: the day a postponed decision comes back (its new due date)."""
    if not isinstance(person, dict):
        raise ValueError("person must be an object with the young person's details")
    born = _day(person.get("date_of_birth"), "person.date_of_birth")
    referred = _day(referral_date, "referral_date")
    local = _settings()
    days = local["transition_decision_days"]
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"local setting transition_decision_days must be a whole number of days, got {days!r}")
    eighteen = birthday(born, 18)
    latest = add_months(eighteen, -_months(local["transition_latest_assessment_before_18"],
                                           "transition_latest_assessment_before_18"))
    return {
        "eighteenth_birthday": eighteen.isoformat(),
        "age_at_referral": age_on(born, referred),
        "decision_due": iso_utc(local_to_utc((_day(decide_from, "decide_from") if decide_from else referred)
                                             + timedelta(days=days), "17:00")),
        "latest_assessment_start": latest.isoformat(),
        "adult_support_check_at": iso_utc(local_to_utc(eighteen, "09:00")),
        "recheck_after": local["transition_recheck_after"],
        "settings": local,
    }


# ---------------------------------------------------------------- the decision to assess (s.58)
def transition_decision(ctx: HandlerContext, decision: dict[str, Any], dates: dict[str, Any]) -> dict[str, Any]:
    """{"assess": "now" | "later" | "no", "reasons": [...], "reconsider_on": date or None}."""
    if not isinstance(decision, dict):
        raise ValueError("decision must be the answers of the transition decision form")
    today = ctx.now.date()
    latest = _day(dates.get("latest_assessment_start"), "dates.latest_assessment_start")
    reasons: list[str] = []
    if decision.get("likely_needs_after_18") is not True:
        reasons.append("The young person is not likely to have needs for care and support after becoming 18")
        return {"assess": "no", "reasons": reasons, "reconsider_on": None, "basis": "not_likely_to_have_needs"}
    consent = decision.get("consent")
    if consent not in CONSENT:
        raise ValueError(f"decision.consent must be one of {', '.join(CONSENT)}, got {consent!r}")
    if consent == "refused":
        if decision.get("at_risk_of_abuse_or_neglect") is True:
            reasons.append("The young person refused, but is experiencing or at risk of abuse or neglect, so the "
                           "assessment must still be carried out (Care Act 2014 s.58(4))")
            return {"assess": "now", "reasons": reasons, "reconsider_on": None, "basis": "risk_of_abuse_or_neglect"}
        reasons.append("The young person does not agree to the assessment (Care Act 2014 s.58(3))")
        return {"assess": "no", "reasons": reasons, "reconsider_on": None, "basis": "consent_refused"}
    if consent == "lacks_capacity" and decision.get("best_interests") is not True:
        reasons.append("The young person cannot agree and an assessment now is not in their best interests "
                       "(Care Act 2014 s.58(3)(b))")
        return {"assess": "no", "reasons": reasons, "reconsider_on": None, "basis": "not_in_best_interests"}
    basis = "best_interests" if consent == "lacks_capacity" else "consent"
    if decision.get("significant_benefit") is True:
        reasons.append("An assessment now is of significant benefit to the young person (Care Act 2014 s.58(1))")
        return {"assess": "now", "reasons": reasons, "reconsider_on": None, "basis": basis}
    months = decision.get("reconsider_after_months")
    if isinstance(months, bool) or not isinstance(months, int) or months < 1:
        raise ValueError(f"decision.reconsider_after_months must be a whole number of months, got {months!r}")
    wanted = add_months(today, months)
    reconsider = min(wanted, latest)
    if reconsider <= today:
        reasons.append("An assessment later would not leave time to plan adult support before the young person's "
                       f"18th birthday (it must start by {long_date(latest)}), so it starts now")
        return {"assess": "now", "reasons": reasons, "reconsider_on": None, "basis": basis}
    reasons.append("An assessment is not of significant benefit yet; it will be considered again on "
                   + long_date(reconsider) + ("" if reconsider == wanted else
                                              ", the latest date that leaves time to plan adult support before 18"))
    return {"assess": "later", "reasons": reasons, "reconsider_on": reconsider.isoformat(),
            "reconsider_at": iso_utc(local_to_utc(reconsider, "09:00")), "basis": basis}


# ---------------------------------------------------------------- letters
def transition_letter(ctx: HandlerContext, person: dict[str, Any], kind: str,
                      reasons: list[str] | None = None, eighteenth_birthday: str | None = None,
                      childrens_social_worker: dict[str, Any] | None = None,
                      handover: dict[str, Any] | None = None) -> dict[str, Any]:
    """`kind` "not_assessed" (s.58(5): written reasons, information and advice) or "handover" (s.66)."""
    if kind == "not_assessed":
        if not reasons:
            raise ValueError("a not_assessed letter needs the reasons for the decision")
        return _render(ctx, "transition_not_assessed", "transition.txt.j2",
                       "Your request for an assessment before you turn 18", person, letter=kind, reasons=reasons,
                       eighteenth_birthday=eighteenth_birthday, csw=childrens_social_worker or {}, handover={})
    if kind == "handover":
        if not isinstance(handover, dict):
            raise ValueError("a handover letter needs the handover details")
        return _render(ctx, "transition_handover", "transition.txt.j2",
                       "Moving from children's services to adult social care", person, letter=kind, reasons=[],
                       eighteenth_birthday=eighteenth_birthday, csw=childrens_social_worker or {}, handover=handover)
    raise ValueError(f"kind must be 'not_assessed' or 'handover', got {kind!r}")


# ---------------------------------------------------------------- checking a referral (before anything starts)
def check_referral(data: dict[str, Any], today: date) -> tuple[dict[str, Any], dict[str, str]]:
    """(start data, errors by field) for a referral from children's services."""
    errors: dict[str, str] = {}

    text = partial(check_text, data, errors=errors)  # 200 characters unless a field says otherwise

    name = text("name", "The young person's full name")
    hidden = check_name(name, "The young person's full name") if name else None
    if hidden and "name" not in errors:
        errors["name"] = hidden
    name = nfc_name(name)
    raw = data.get("date_of_birth")
    born = None
    if raw in (None, ""):
        errors["date_of_birth"] = "Enter the young person's date of birth"
    else:
        try:
            born = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
        except ValueError:
            born = None
        if born is None:
            errors["date_of_birth"] = "The date of birth must be a real date"
        elif born > today:
            errors["date_of_birth"] = "The date of birth must be in the past"
        else:
            age = age_on(born, today)
            if age >= 18:
                errors["date_of_birth"] = (f"The young person is {age}: adults are referred through the front door "
                                           "(a new contact), not as a transition")
            elif age < YOUNGEST:
                errors["date_of_birth"] = (f"The young person is {age}: a referral from children's services is "
                                           f"taken from age {YOUNGEST} (ask again from "
                                           f"{long_date(birthday(born, YOUNGEST))})")
    address = text("address", "The young person's address")
    postcode = text("postcode", "The postcode", required=False, limit=10)
    ehc = data.get("ehc_plan")
    if ehc in ("yes", "true", True):
        ehc_plan = True
    elif ehc in ("no", "false", False):
        ehc_plan = False
    else:
        ehc_plan = False
        errors["ehc_plan"] = "Select yes if the young person has an education, health and care (EHC) plan"
    likely = text("likely_needs", "Why the young person is likely to have needs after 18", limit=2000)
    worker = text("childrens_social_worker", "The children's social worker's name")
    team = text("childrens_team", "The children's services team", required=False)
    phone = text("childrens_phone", "The children's social worker's phone number", required=False, limit=30)
    person = {"name": name, "date_of_birth": born.isoformat() if born else raw, "address": address}
    if postcode:
        person["postcode"] = postcode.upper()
    if born and "date_of_birth" not in errors:
        person["age"] = age_on(born, today)
    csw = {"name": worker}
    if team:
        csw["team"] = team
    if phone:
        csw["phone"] = phone
    start = {"person": person, "referral_date": today.isoformat(), "ehc_plan": ehc_plan, "likely_needs": likely,
             "childrens_social_worker": csw}
    return start, errors


def register(registry: HandlerRegistry) -> None:
    registry.register("transition_dates", transition_dates)
    registry.register("transition_decision", transition_decision)
    registry.register("transition_letter", transition_letter, document=True)
