"""Answers suggested on a task's form from what the case record already holds (a form property's `"x-prefill"`).

A suggestion is only that: the question shows it chosen when it has no saved answer, with a hint saying where it
came from, and the worker can change it; nothing is saved until they save the page. A property naming a prefill
that is not here is shown as it is, with nothing suggested.

Also here: a property with `"x-decideEach"` (engine/forms.py) lists what was decided before, from the process data
(the earlier budget's uplifts on the impact assessment): `decide_each` gives its group one item per earlier thing,
with what it was, how much, why and when as a summary, its name posted hidden, and no "Add another" or "Remove";
with nothing decided before the question is not shown.

* `age_band_from_date_of_birth` (forms/financial_assessment.schema.json, `age_band`): the person's age band on
  the engine's clock's day (the simulated clock on a demo or test database), from the case record's date of
  birth, by handlers/pension_age.py (docs/charging.md, "The person's age").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from handlers.pension_age import age_band_on, age_on, state_pension_age_day
from handlers.people import person_of

from .page_forms import Field, _contextualise, get_path, set_items, walk

UK = ZoneInfo("Europe/London")
BANDS = {"18_24": "18 to 24", "25_to_pension_age": "25 to State Pension age",
         "pension_age": "State Pension age or over"}


def _long(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _date_of_birth(engine: Any, task: dict[str, Any]) -> date | None:
    try:
        person = person_of(engine.get_case(task["case_id"])["data"])
        return date.fromisoformat(str(person.get("date_of_birth") or "")[:10])
    except Exception:  # noqa: BLE001 - no case, no person, or no real date: nothing to work out
        return None


def age_band_from_date_of_birth(engine: Any, task: dict[str, Any]) -> tuple[str | None, str]:
    """(the age band or None, the hint saying where it came from)."""
    born = _date_of_birth(engine, task)
    if born is None:
        return None, "There is no date of birth on the case record, so this is not worked out for you."
    today = engine.now().astimezone(UK).date()
    band = age_band_on(born, today)
    spa = state_pension_age_day(born)
    said = f"Worked out from the date of birth {_long(born)} on the case record"
    if band is None:
        return None, f"{said} is not possible: check the date of birth and choose the person's age."
    reach = (f"State Pension age {'was' if spa <= today else 'is'} reached on {_long(spa)}" if spa is not None
             else "State Pension age was reached at 65 or earlier")
    return band, (f"{said}: {age_on(born, today)} on {_long(today)}, {BANDS[band]}. {reach}. "
                  f"Change the answer if it is wrong.")


PREFILLS: dict[str, Callable[[Any, dict[str, Any]], tuple[Any, str]]] = {
    "age_band_from_date_of_birth": age_band_from_date_of_birth,
}


def apply(engine: Any, task: dict[str, Any], fields: list[Field], draft: dict[str, Any] | None) -> None:
    """Each field with a known `x-prefill`: the hint says where the suggestion came from, and the suggestion is
    chosen when the field shows nothing and the draft has no answer for it."""
    for f in walk(fields):
        work = PREFILLS.get(f.prefill or "")
        if work is None:
            continue
        value, hint = work(engine, task)
        f.hint = f"{f.hint} {hint}" if f.hint else hint
        if value is not None and not f.value and get_path(draft or {}, f.name) is None:
            f.value = value


def _when(value: Any) -> str:
    from datetime import datetime

    try:
        day = datetime.fromisoformat(str(value))
    except ValueError:
        return "Not recorded"
    day = day.astimezone(UK) if day.tzinfo else day
    return _long(day.date())


def _uplift_summary(up: dict[str, Any], decided_at: Any) -> list[tuple[str, str]]:
    """What an earlier uplift was: what for, how much a year and a week (to the penny), why and when decided."""
    from decimal import Decimal, InvalidOperation

    from handlers.budget import _gbp, _pence, load_config

    try:
        amount = _pence(Decimal(str(up.get("amount"))))
        weeks = load_config(None)[0]["weeks_per_year"]
        money = f"{_gbp(amount)} a year ({_gbp(_pence(amount / weeks))} a week)"
    except (InvalidOperation, ValueError, KeyError, TypeError):
        money = str(up.get("amount") or "Not recorded")
    return [("Uplift", str(up.get("reason") or "")), ("Amount", money),
            ("Why", str(up.get("why") or "Not recorded")), ("Decided", _when(up.get("decided_at") or decided_at))]


def decide_each(engine: Any, task: dict[str, Any], fields: list[Field]) -> list[Field]:
    """The fields with each `x-decideEach` group given one item per thing decided before (kept answers filled in,
    matched by the key); a group with nothing decided before is left out."""
    out = []
    for f in fields:
        spec = f.decide_each
        if not spec or f.kind != "group":
            out.append(f)
            continue
        try:
            data = engine.instance_snapshot(task["instance_id"])["data"]
        except Exception:  # noqa: BLE001 - no process data: nothing decided before to show
            data = {}
        listed = get_path(data, spec["variable"])
        earlier = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
        if not earlier:
            # nothing decided before: the new ones are what the form is for (at least one, engine/forms.py)
            for g in fields:
                if spec.get("newItems") and g.name == spec["newItems"]:
                    g.required = True
            continue
        owner = get_path(data, spec["variable"].rpartition(".")[0]) if "." in spec["variable"] else {}
        decided_at = owner.get("decided_at") if isinstance(owner, dict) else None
        key = spec["key"]
        typed = {str(t.get(key) or "").strip().casefold(): t for t in f.typed if isinstance(t, dict)}
        values = [{**typed.get(str(e.get(key) or "").strip().casefold(), {}), key: str(e.get(key) or "")}
                  for e in earlier]
        f.min_items = f.max_items = len(values)
        set_items(f, values)
        f.fixed = True
        f.required = True  # each must be decided (engine/forms.py checks it on completion)
        for item, e in zip(f.children, earlier, strict=True):
            item.label = str(e.get(key) or item.label)
            item.summary = _uplift_summary(e, decided_at)
            _contextualise(item.children, item.label)
            for c in item.children:
                if c.key == key:
                    c.kind = "hidden"
        out.append(f)
    return out


def answers_given_before(engine: Any, task: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    """A form marked `"x-startFromEarlierAnswers": true` done again in the same process (a support plan sent
    back because it costs more than the budget, or not signed off): the answers given last time, from the
    process data, so the worker changes what is wrong instead of typing the whole plan again. None when the
    form is not marked or nothing was answered before (the first time)."""
    if schema.get("x-startFromEarlierAnswers") is not True:
        return None
    try:
        data = engine.instance_snapshot(task["instance_id"])["data"]
    except Exception:  # noqa: BLE001 - no process data: nothing answered before
        return None
    earlier = {k: data[k] for k in (schema.get("properties") or {}) if k in data and data[k] is not None}
    return earlier or None

