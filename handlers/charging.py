"""Financial assessment for care and support other than in a care home (contract C1).

`financial_assessment(ctx, answers, weekly_cost=None)` works out what a person pays a week
towards the care and support the council arranges (Care Act 2014 s.14 and s.17; the Care and
Support (Charging and Assessment of Resources) Regulations 2014, "the Regulations"):

- capital above the upper limit: the full cost (regulation 12);
- capital between the limits: tariff income of £1 a week for every £250, or part of £250,
  above the lower limit (regulation 25);
- income counted with its disregards (earnings: regulation 14; the mobility part of DLA and
  PIP: Schedule 1 paragraph 8);
- the minimum income guarantee of regulation 7, housing costs and disability-related
  expenditure are protected; a council may leave people more than regulation 7's amounts (its own
  amount for a category, never below the national one, and a weekly top-up on every amount);
- assessed charge = counted income + tariff income - MIG - housing - DRE, never below zero;
  the weekly contribution is never more than the weekly cost of support;
- light-touch route (the person chooses to pay the full cost, regulation 10) and a person
  who declines to disclose their means: the full cost, each with its reason.

National figures are yearly configuration in processes/config/charging.json, each year with
its source; a figure nobody could source is null and an assessment that needs it stops with
an error naming it. The council's choices are under "council" in the same file.

Money is Decimal to the penny, returned as "12.34" strings. Nothing reads the wall clock: the
charging year comes from `ctx.now`. docs/charging.md has the rules, sources and gaps.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.registry import HandlerContext, HandlerRegistry

from .budget import _gbp, _out  # money to the penny, as the budget writes it
from .config_files import cached

REPO_ROOT = Path(__file__).resolve().parent.parent
#: where charging.json lives; tests may point this elsewhere
CONFIG_DIR = REPO_ROOT / "processes" / "config"
CONFIG_FILE = "charging.json"
LONDON = ZoneInfo("Europe/London")

#: the charging year starts on 6 April: the yearly amending regulations have come into force that
#: day (SI 2023/277 on 6 April 2023; the 2025 amending regulations on 6 April 2025), so a date from
#: 1 to 5 April still has the previous year's amounts in law (docs/charging.md, "Which year")
YEAR_STARTS = (4, 6)

PENNY = Decimal("0.01")
#: an amount a week above this is a typing mistake, not an income or a cost (£10,000 a week)
MAX_WEEKLY_ITEM = Decimal("10000")
#: the weekly cost of support: a very complex package is a few thousand pounds a week
MAX_WEEKLY_COST = Decimal("50000")
#: capital of one kind above £100 million is a typing mistake
MAX_CAPITAL_ITEM = Decimal("100000000")
#: the council's own minimum income guarantee amounts and top-up: more than £1,000 a week is a typing mistake
MAX_COUNCIL_MIG = Decimal("1000")
MAX_CHILDREN = 20
MAX_DRE_ITEMS = 50

ROUTES = ("full", "light_touch", "declined")
AGE_BANDS = ("18_24", "25_to_pension_age", "pension_age")
PREMIUMS = ("disability", "enhanced_disability", "carer")
CAPITAL_KEYS = ("savings", "investments", "property_other_than_home", "other")
CAPITAL_LABELS = {
    "savings": "Savings",
    "investments": "Investments",
    "property_other_than_home": "Property other than the home",
    "other": "Other capital",
}
HOUSING_KEYS = ("rent", "mortgage", "council_tax")
HOUSING_LABELS = {"rent": "Rent", "mortgage": "Mortgage", "council_tax": "Council Tax"}
ANSWER_KEYS = {
    "route", "age_band", "couple", "dependent_children", "premiums", "capital", "income_weekly",
    "housing_weekly", "dre_weekly",
}
#: each income: its label, and why it is disregarded (None: counted in full)
INCOME = {
    "state_pension": ("State Pension", None),
    "private_pension": ("Private or workplace pension", None),
    "pension_credit": ("Pension Credit", None),
    "attendance_allowance": ("Attendance Allowance", None),
    "pip_daily_living": ("PIP daily living part", None),
    "pip_mobility": ("PIP mobility part",
                     "The mobility part of PIP is not counted (Schedule 1, paragraph 8 of the Regulations)."),
    "dla_care": ("DLA care part", None),
    "dla_mobility": ("DLA mobility part",
                     "The mobility part of DLA is not counted (Schedule 1, paragraph 8 of the Regulations)."),
    "universal_credit": ("Universal Credit", None),
    "esa": ("Employment and Support Allowance", None),
    "earnings": ("Earnings", "Earnings from work are not counted (regulation 14 of the Regulations)."),
    "other": ("Other income", None),
}
#: disability benefits: when one is counted, the council's standard disability-related allowance applies
DISABILITY_BENEFITS = ("attendance_allowance", "pip_daily_living", "dla_care")
MIG_KEYS = (
    "single_18_24", "single_25_to_pension_age", "single_pension_age", "lone_parent", "couple_each_18_plus",
    "couple_each_pension_age", "child", "disability_premium_single", "enhanced_disability_premium_single",
    "disability_premium_couple", "enhanced_disability_premium_couple", "carer_premium",
)
#: what each regulation 7 amount is, for explanations and errors
MIG_TEXT = {
    "single_18_24": ("single person aged 18 to 24", "regulation 7(2)(a)"),
    "single_25_to_pension_age": ("single person aged 25 or over, under Pension Credit age", "regulation 7(2)(b)"),
    "single_pension_age": ("single person of Pension Credit age", "regulation 7(2)(c)"),
    "lone_parent": ("lone parent", "regulation 7(3)"),
    "couple_each_18_plus": ("member of a couple", "regulation 7(4)(a)"),
    "couple_each_pension_age": ("member of a couple of Pension Credit age", "regulation 7(4)(b)"),
    "child": ("each child in the household", "regulation 7(1)(b)"),
    "disability_premium_single": ("disability premium, single person", "regulation 7(5)(a)"),
    "enhanced_disability_premium_single": ("enhanced disability premium, single person", "regulation 7(5)(b)"),
    "disability_premium_couple": ("disability premium, member of a couple", "regulation 7(6)(a)"),
    "enhanced_disability_premium_couple": ("enhanced disability premium, member of a couple", "regulation 7(6)(b)"),
    "carer_premium": ("carer premium", "regulation 7(7)"),
}
COUNCIL_KEYS = {
    "lower_capital_limit", "upper_capital_limit", "minimum_weekly_charge", "dre_standard_allowance",
    "reablement_free_weeks", "reablement_after", "mig_weekly_top_up", "mig",
}
YEAR_KEYS = {"in_force_from", "source", "capital", "mig", "not_sourced"}
CAPITAL_FIGURES = ("lower_limit", "upper_limit", "tariff_band", "tariff_per_band")
_YEAR = re.compile(r"^(\d{4})-(\d{2})$")
_MONEY_TEXT = re.compile(r"^-?\d+(\.\d+)?$")


# ---------------------------------------------------------------- money


def _money(value: Any, field: str, *, limit: Decimal) -> Decimal:
    """An amount of money typed by a person: a number or text like "1,234.56" or "£12";
    blank or missing is nothing. Never negative, never more than `limit`, at most pennies."""
    if value is None:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"{field} must be an amount of money in pounds, got {type(value).__name__}")
    text = str(value).strip().replace(",", "")
    if text.startswith("£"):
        text = text[1:].strip()
    if text == "":
        return Decimal(0)
    if not _MONEY_TEXT.match(text):
        raise ValueError(f"{field} must be an amount of money in pounds, like 12.50, got {value!r}")
    try:
        number = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern above lets only numbers through
        raise ValueError(f"{field} must be an amount of money in pounds, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{field} must not be negative, got {value!r}")
    if number != number.quantize(PENNY):
        raise ValueError(f"{field} must be in pounds and pence (at most 2 decimal places), got {value!r}")
    if number > limit:
        raise ValueError(f"{field} is {_gbp(number)}, more than {_gbp(limit)}: check the amount")
    return number


# ---------------------------------------------------------------- configuration


def load_config() -> tuple[dict[str, Any], dict[str, Any]]:
    """charging.json, read again only when it changes; and a record of which file it was."""
    return cached(CONFIG_DIR / CONFIG_FILE, _read_config)


def _read_config(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"charging figures: no file {path.name} in {path.parent}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"charging figures: {path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"charging figures: {path.name} must be a JSON object")
    years: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in ("description", "council"):
            continue
        match = _YEAR.match(key)
        if not match or (int(match.group(1)) + 1) % 100 != int(match.group(2)):
            raise ValueError(f"charging figures: {path.name} has key {key!r}; expected a year like \"2025-26\", "
                             "\"council\" or \"description\"")
        years[key] = _check_year(value, f"{path.name} {key}")
    council = _check_council(data.get("council", {}), years, f"{path.name} council")
    source = {"file": path.name, "sha256": hashlib.sha256(raw).hexdigest()}
    return {"years": years, "council": council}, source


def _check_year(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"charging figures: {where} must be an object")
    unknown = sorted(set(spec) - YEAR_KEYS)
    if unknown:
        raise ValueError(f"charging figures: {where} has unknown key(s) {unknown}")
    source = spec.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"charging figures: {where}.source must say where the figures come from")
    capital = spec.get("capital")
    if not isinstance(capital, Mapping) or sorted(capital) != sorted(CAPITAL_FIGURES):
        raise ValueError(f"charging figures: {where}.capital must have exactly {list(CAPITAL_FIGURES)}")
    cap = {k: _money(capital[k], f"charging figures: {where}.capital.{k}", limit=MAX_CAPITAL_ITEM)
           for k in CAPITAL_FIGURES}
    if not cap["lower_limit"] < cap["upper_limit"]:
        raise ValueError(f"charging figures: {where}.capital.lower_limit must be below upper_limit")
    if cap["tariff_band"] <= 0:
        raise ValueError(f"charging figures: {where}.capital.tariff_band must be more than 0")
    mig = spec.get("mig")
    if not isinstance(mig, Mapping) or sorted(mig) != sorted(MIG_KEYS):
        raise ValueError(f"charging figures: {where}.mig must have exactly {list(MIG_KEYS)} (null when not sourced)")
    amounts = {k: None if mig[k] is None else _money(mig[k], f"charging figures: {where}.mig.{k}",
                                                       limit=MAX_WEEKLY_ITEM) for k in MIG_KEYS}
    return {"source": source.strip(), "in_force_from": spec.get("in_force_from"), "capital": cap, "mig": amounts}


def _check_council(spec: Any, years: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"charging figures: {where} must be an object")
    unknown = sorted(set(spec) - COUNCIL_KEYS)
    if unknown:
        raise ValueError(f"charging figures: {where} has unknown key(s) {unknown}")
    out: dict[str, Any] = {}
    for key in ("lower_capital_limit", "upper_capital_limit"):
        value = spec.get(key)
        out[key] = None if value is None else _money(value, f"charging figures: {where}.{key}",
                                                     limit=MAX_CAPITAL_ITEM)
    # a council may set higher capital limits for care other than in a care home, never lower
    for year, figures in years.items():
        for key, national in (("lower_capital_limit", "lower_limit"), ("upper_capital_limit", "upper_limit")):
            if out[key] is not None and out[key] < figures["capital"][national]:
                raise ValueError(
                    f"charging figures: {where}.{key} {_gbp(out[key])} is below the national "
                    f"{national.replace('_', ' ')} of {_gbp(figures['capital'][national])} for {year}; "
                    "a council may set a higher limit, never a lower one")
    for year, figures in years.items():
        lower = out["lower_capital_limit"] or figures["capital"]["lower_limit"]
        upper = out["upper_capital_limit"] or figures["capital"]["upper_limit"]
        if not lower < upper:
            raise ValueError(f"charging figures: {where}: the lower capital limit {_gbp(lower)} must be below the "
                             f"upper capital limit {_gbp(upper)} ({year})")
    for key in ("minimum_weekly_charge", "dre_standard_allowance"):
        out[key] = _money(spec.get(key), f"charging figures: {where}.{key}", limit=MAX_WEEKLY_ITEM)
    weeks = spec.get("reablement_free_weeks", 6)
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 6 <= weeks <= 520:
        raise ValueError(f"charging figures: {where}.reablement_free_weeks must be a whole number of weeks, "
                         f"at least the 6 free by law (regulation 3(2)(b)), got {weeks!r}")
    out["reablement_free_weeks"] = weeks
    after = spec.get("reablement_after", "charge")
    if after not in ("charge", "free"):
        raise ValueError(f"charging figures: {where}.reablement_after must be \"charge\" or \"free\", got {after!r}")
    out["reablement_after"] = after
    out.update(_check_council_mig(spec, years, where))
    return out


def _check_council_mig(spec: Mapping[str, Any], years: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    """The council's own minimum income guarantee: `mig_weekly_top_up` (pounds a week added to every amount)
    and `mig` (its own amount for some categories). Regulation 7 is a floor: an own amount below the national
    one of any year in the file is refused, naming the key, both amounts and the year."""
    top_up = _money(spec.get("mig_weekly_top_up", "0.00"), f"charging figures: {where}.mig_weekly_top_up",
                    limit=MAX_COUNCIL_MIG)
    own = spec.get("mig")
    if own is None:
        own = {}
    if not isinstance(own, Mapping):
        raise ValueError(f"charging figures: {where}.mig must be an object with some of {list(MIG_KEYS)}, "
                         f"each null or an amount of money a week, got {type(own).__name__}")
    unknown = sorted(set(own) - set(MIG_KEYS))
    if unknown:
        raise ValueError(f"charging figures: {where}.mig has unknown key(s) {unknown}; expected some of "
                         f"{list(MIG_KEYS)}")
    amounts = {k: None if own.get(k) is None else _money(own[k], f"charging figures: {where}.mig.{k}",
                                                           limit=MAX_COUNCIL_MIG) for k in MIG_KEYS}
    for key, amount in amounts.items():
        # blank or nothing would leave the person no minimum income guarantee at all for that amount
        if amount is not None and amount <= 0:
            raise ValueError(f"charging figures: {where}.mig.{key} must be more than £0.00 a week, or null to use "
                             f"the national amount, got {own[key]!r}")
    for year, figures in sorted(years.items()):
        for key, amount in amounts.items():
            national = figures["mig"][key]
            if amount is not None and national is not None and amount < national:
                what, reg = MIG_TEXT[key]
                raise ValueError(
                    f"charging figures: {where}.mig.{key} {_gbp(amount)} is below the national minimum income "
                    f"guarantee amount of {_gbp(national)} for {year} ({what}, {reg} of the Regulations); "
                    "regulation 7 is a floor: a council may leave people more, never less")
    return {"mig_weekly_top_up": top_up, "mig": amounts}


def charging_year(when: datetime | date) -> str:
    """The charging year of a moment, as "2026-27": it starts on 6 April (UK date)."""
    if isinstance(when, datetime):
        day = when.astimezone(LONDON).date() if when.tzinfo else when.date()
    else:
        day = when
    start = day.year if (day.month, day.day) >= YEAR_STARTS else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def figures_for(when: datetime | date) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(year, that year's national figures, the council's choices, file record) for a moment."""
    cfg, source = load_config()
    year = charging_year(when)
    if year not in cfg["years"]:
        have = ", ".join(sorted(cfg["years"])) or "none"
        raise ValueError(f"charging figures: no figures for the charging year {year} in {source['file']} "
                         f"({CONFIG_DIR / source['file']}); it has {have}. Add {year}'s figures with their source.")
    return year, cfg["years"][year], cfg["council"], source


# ---------------------------------------------------------------- the answers


def _check_answers(answers: Any) -> dict[str, Any]:
    if not isinstance(answers, Mapping):
        raise ValueError(f"answers must be the financial assessment form's answers (an object), "
                         f"got {type(answers).__name__}")
    unknown = sorted(set(answers) - ANSWER_KEYS)
    if unknown:
        raise ValueError(f"answers: unknown question(s) {unknown}")
    route = answers.get("route")
    if route not in ROUTES:
        raise ValueError(f"answers.route must be one of {list(ROUTES)}, got {route!r}")
    age_band = answers.get("age_band")
    if age_band is not None and age_band not in AGE_BANDS:
        raise ValueError(f"answers.age_band must be one of {list(AGE_BANDS)}, got {age_band!r}")
    if route == "full" and age_band is None:
        raise ValueError("answers.age_band is needed for a full financial assessment: "
                         f"one of {list(AGE_BANDS)}")
    couple = answers.get("couple", False)
    if not isinstance(couple, bool):
        raise ValueError(f"answers.couple must be true or false, got {couple!r}")
    children = answers.get("dependent_children", 0)
    if isinstance(children, str) and children.strip().isdigit():
        children = int(children.strip())
    if isinstance(children, bool) or not isinstance(children, int) or not 0 <= children <= MAX_CHILDREN:
        raise ValueError(f"answers.dependent_children must be a whole number from 0 to {MAX_CHILDREN}, "
                         f"got {children!r}")
    premiums = answers.get("premiums", [])
    if not isinstance(premiums, list) or any(p not in PREMIUMS for p in premiums):
        raise ValueError(f"answers.premiums must be a list of {list(PREMIUMS)}, got {premiums!r}")
    if len(set(premiums)) != len(premiums):
        raise ValueError(f"answers.premiums names a premium twice: {premiums!r}")

    capital = _money_block(answers.get("capital"), "answers.capital", CAPITAL_KEYS, MAX_CAPITAL_ITEM)
    income = _money_block(answers.get("income_weekly"), "answers.income_weekly", tuple(INCOME), MAX_WEEKLY_ITEM)
    housing = _money_block(answers.get("housing_weekly"), "answers.housing_weekly", HOUSING_KEYS, MAX_WEEKLY_ITEM)

    dre_raw = answers.get("dre_weekly", [])
    if dre_raw is None:
        dre_raw = []
    if not isinstance(dre_raw, list) or len(dre_raw) > MAX_DRE_ITEMS:
        raise ValueError(f"answers.dre_weekly must be a list of up to {MAX_DRE_ITEMS} items, each "
                         "{\"item\": what it is, \"amount\": pounds a week}")
    dre: list[tuple[str, Decimal]] = []
    for i, entry in enumerate(dre_raw):
        where = f"answers.dre_weekly[{i}]"
        if not isinstance(entry, Mapping) or set(entry) - {"item", "amount"}:
            raise ValueError(f"{where} must be {{\"item\": what it is, \"amount\": pounds a week}}")
        item = entry.get("item")
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            raise ValueError(f"{where}.item must say what the expense is (up to 200 characters)")
        dre.append((item.strip(), _money(entry.get("amount"), f"{where}.amount", limit=MAX_WEEKLY_ITEM)))
    return {"route": route, "age_band": age_band, "couple": couple, "children": children,
            "premiums": list(premiums), "capital": capital, "income": income, "housing": housing, "dre": dre}


def _money_block(block: Any, where: str, keys: tuple[str, ...], limit: Decimal) -> dict[str, Decimal]:
    if block is None:
        block = {}
    if not isinstance(block, Mapping):
        raise ValueError(f"{where} must be an object of {list(keys)}, got {type(block).__name__}")
    unknown = sorted(set(block) - set(keys))
    if unknown:
        raise ValueError(f"{where}: unknown item(s) {unknown}; expected some of {list(keys)}")
    return {k: _money(block.get(k), f"{where}.{k}", limit=limit) for k in keys}


# ---------------------------------------------------------------- the calculation


def _in_a_sentence(label: str) -> str:
    """A label inside a sentence: "Rent" → "rent", but a name keeps its capitals ("Council Tax", as GOV.UK writes
    it)."""
    return label if any(c.isupper() for c in label[1:]) else label[:1].lower() + label[1:]


def _step(label: str, amount: Decimal | None, explanation: str) -> dict[str, Any]:
    return {"label": label, "amount": None if amount is None else _out(amount), "explanation": explanation}


def _mig_figure(year: str, figures: dict[str, Any], council: dict[str, Any], key: str) -> dict[str, Any]:
    """One regulation 7 amount as used: the council's own amount when it set one, else the national one for
    the year, plus the council's top-up. Neither recorded: an error naming the figure."""
    national, own, top_up = figures["mig"][key], council["mig"][key], council["mig_weekly_top_up"]
    if national is None and own is None:
        what, where = MIG_TEXT[key]
        raise ValueError(
            f"charging figures: the {year} minimum income guarantee amount for a {what} ({where} of the "
            f"Regulations) is not in {CONFIG_FILE} ({CONFIG_DIR / CONFIG_FILE}): it could not be sourced. "
            f"Add mig.{key} for {year} from the Department of Health and Social Care's circular, or the "
            f"council's own amount as council.mig.{key}.")
    base = own if own is not None else national
    return {"key": key, "national": national, "council": own, "top_up": top_up, "base": base,
            "weekly": base + top_up, "source": "council" if own is not None else "national"}


def year_in_words(year: str) -> str:
    """A charging year as a letter says it: "2026-27" → "2026 to 2027" (GOV.UK style: "to" in a range, not a
    dash). Anything else is returned as it is."""
    start, dash, end = year.partition("-")
    if dash and len(start) == 4 and start.isdigit() and len(end) == 2 and end.isdigit():
        return f"{start} to {int(start) + 1}"
    return year


def _mig_explanation(year: str, part: dict[str, Any], times: int) -> str:
    """Where a minimum income guarantee figure came from, in plain English, money to the penny. The step
    already shows the amount used: a national amount used as it is is not said again."""
    what, where = MIG_TEXT[part["key"]]
    reg = f"{where} of the Regulations"
    national, own, top_up = part["national"], part["council"], part["top_up"]
    year = year_in_words(year)
    said = "Protected so you have enough to live on: "
    if own is None and not top_up and times == 1:
        said += f"the national amount for {year} ({reg})."
    elif own is None:
        said += f"the national amount for {year}, {_gbp(national)} a week ({reg})."
    elif national is None:
        # no national amount recorded for the year (not sourced): the council's is the only one there is
        said += f"the council's own amount, {_gbp(own)} a week ({reg})."
    elif own == national:
        said += f"the council's own amount, {_gbp(own)} a week, the same as the national amount for {year} ({reg})."
    else:
        said += (f"the council's own amount, {_gbp(own)} a week, more than the national amount for {year} of "
                 f"{_gbp(national)} ({reg}).")
    if top_up:
        said += (f" The council adds {_gbp(top_up)} a week to each amount: {_gbp(part['base'])} + {_gbp(top_up)} "
                 f"= {_gbp(part['weekly'])}.")
    if times != 1:
        said += f" For {times} children: {times} × {_gbp(part['weekly'])} = {_gbp(part['weekly'] * times)}."
    return said


def _mig(year: str, figures: dict[str, Any], council: dict[str, Any], a: dict[str, Any]
         ) -> tuple[Decimal, list[dict[str, Any]], list[dict[str, Any]]]:
    """Regulation 7: the personal amount by age band and couple, each child, and premiums; each the national
    amount for the year or the council's own, plus the council's top-up. Returns the total, the steps and
    a record of each figure (where it came from)."""
    steps: list[dict[str, Any]] = []
    record: list[dict[str, Any]] = []
    total = Decimal(0)

    def add(key: str, times: int = 1) -> None:
        nonlocal total
        part = _mig_figure(year, figures, council, key)
        amount = part["weekly"] * times
        total += amount
        steps.append(_step(f"Minimum income guarantee: {MIG_TEXT[key][0]}", amount,
                           _mig_explanation(year, part, times)))
        record.append({"figure": key, "for": MIG_TEXT[key][0], "source": part["source"], "times": times,
                       "national": None if part["national"] is None else _out(part["national"]),
                       "council": None if part["council"] is None else _out(part["council"]),
                       "top_up": _out(part["top_up"]), "weekly": _out(part["weekly"]), "amount": _out(amount)})

    pension_age = a["age_band"] == "pension_age"
    if a["couple"]:
        add("couple_each_pension_age" if pension_age else "couple_each_18_plus")
    elif pension_age:
        add("single_pension_age")
    elif a["children"]:
        add("lone_parent")
    else:
        add("single_18_24" if a["age_band"] == "18_24" else "single_25_to_pension_age")
    if a["children"]:
        add("child", a["children"])
    suffix = "couple" if a["couple"] else "single"
    for premium in a["premiums"]:
        add("carer_premium" if premium == "carer" else f"{premium}_premium_{suffix}")
    return total, steps, record


def financial_assessment(ctx: HandlerContext, answers: dict, weekly_cost: str | int | float | None = None) -> dict:
    """What the person pays a week towards their care and support, item by item (contract C1)."""
    a = _check_answers(answers)
    cost = None if weekly_cost is None or (isinstance(weekly_cost, str) and not weekly_cost.strip()) \
        else _money(weekly_cost, "weekly_cost", limit=MAX_WEEKLY_COST)
    year, figures, council, source = figures_for(ctx.now)
    figures_source = f"{year}: {figures['source']} Council choices: {source['file']} (sha256 {source['sha256'][:12]})."

    result: dict[str, Any] = {
        "year": year, "route": a["route"], "capital_total": None, "tariff_income": None, "income_counted": None,
        "disregarded": [], "mig": None, "mig_parts": [], "housing": None, "dre": None, "assessed_weekly_charge": None,
        "weekly_cost": None if cost is None else _out(cost), "weekly_contribution": None, "full_cost": False,
        "reason": "", "steps": [], "figures_source": figures_source,
    }

    def full_cost(reason: str, steps: list[dict[str, Any]]) -> dict:
        result["full_cost"] = True
        result["reason"] = reason
        if cost is not None:
            result["assessed_weekly_charge"] = _out(cost)
            result["weekly_contribution"] = _out(cost)
            steps.append(_step("Your weekly contribution", cost,
                               f"You pay the full cost of your care and support, {_gbp(cost)} a week."))
        else:
            steps.append(_step("Your weekly contribution", None,
                               "You pay the full cost of your care and support. The amount is set when your "
                               "support is planned and costed."))
        result["steps"] = steps
        return result

    if a["route"] == "light_touch":
        return full_cost(
            "you chose to pay the full cost without a full financial assessment (light-touch assessment, "
            "regulation 10)",
            [_step("Light-touch assessment", None,
                   "You told us you choose to pay the full cost, so we did not ask about your income and savings. "
                   "You can ask for a full financial assessment at any time.")])
    if a["route"] == "declined":
        return full_cost(
            "you chose not to tell us about your income and savings, so we cannot work out a lower charge",
            [_step("Financial assessment not completed", None,
                   "You chose not to tell us about your income and savings. Without them we cannot work out "
                   "whether you should pay less, so you pay the full cost. You can ask for a financial "
                   "assessment at any time.")])

    steps: list[dict[str, Any]] = []
    # capital: the national limits, or the council's higher ones
    lower = council["lower_capital_limit"] or figures["capital"]["lower_limit"]
    upper = council["upper_capital_limit"] or figures["capital"]["upper_limit"]
    band, per_band = figures["capital"]["tariff_band"], figures["capital"]["tariff_per_band"]
    capital_total = sum(a["capital"].values(), Decimal(0))
    result["capital_total"] = _out(capital_total)
    listed = [f"{CAPITAL_LABELS[k].lower()} {_gbp(v)}" for k, v in a["capital"].items() if v]
    kinds = [k for k, v in a["capital"].items() if v]
    if len(kinds) == 1:  # one kind: named, its amount is the step's (not said twice)
        said = f"{CAPITAL_LABELS[kinds[0]]}. We do not count the home you live in."
    elif listed:
        said = "Your savings and other capital, not counting the home you live in: " + ", ".join(listed) + "."
    else:
        said = "You told us you have no savings or other capital, apart from your home."
    steps.append(_step("Your capital", capital_total, said))
    if capital_total > upper:
        return full_cost(f"your capital of {_gbp(capital_total)} is above the upper limit of {_gbp(upper)}",
                         steps + [_step("Upper capital limit", upper,
                                        f"Your capital is more than {_gbp(upper)}, so you pay the full cost "
                                        "(regulation 12).")])
    if capital_total > lower:
        bands = ((capital_total - lower) / band).to_integral_value(rounding=ROUND_CEILING)
        tariff = bands * per_band
        steps.append(_step("Tariff income from capital", tariff,
                           f"Your capital is {_gbp(capital_total - lower)} more than {_gbp(lower)}. We count "
                           f"{_gbp(per_band)} a week for every {_gbp(band)}, or part of {_gbp(band)}: "
                           f"{bands} × {_gbp(per_band)} (regulation 25)."))
    else:
        tariff = Decimal(0)
        steps.append(_step("Tariff income from capital", tariff,
                           f"Your capital is not more than {_gbp(lower)}, so none of it is counted as income."))
    result["tariff_income"] = _out(tariff)

    # income
    counted = Decimal(0)
    for key, amount in a["income"].items():
        if not amount:
            continue
        label, why = INCOME[key]
        if why:
            result["disregarded"].append({"item": label, "amount": _out(amount), "why": why})
            steps.append(_step(f"{label} (not counted)", amount, why))
        else:
            counted += amount
            steps.append(_step(label, amount, "Counted in full."))
    result["income_counted"] = _out(counted)
    steps.append(_step("Income we count", counted, "The amounts above that count, added up."))

    mig, mig_steps, result["mig_parts"] = _mig(year, figures, council, a)
    steps.extend(mig_steps)
    result["mig"] = _out(mig)

    housing = sum(a["housing"].values(), Decimal(0))
    paid = [f"{_in_a_sentence(HOUSING_LABELS[k])} {_gbp(v)}" for k, v in a["housing"].items() if v]
    steps.append(_step("Housing costs", housing,
                       ("What you pay for your home after any help with it: " + ", ".join(paid) + ".")
                       if paid else "You told us you pay nothing for your home after any help with it."))
    result["housing"] = _out(housing)

    itemised = sum((amount for _, amount in a["dre"]), Decimal(0))
    for item, amount in a["dre"]:
        steps.append(_step(f"Extra cost of disability: {item}", amount, "Allowed as disability-related expenditure."))
    standard = council["dre_standard_allowance"]
    gets_disability_benefit = any(a["income"][k] for k in DISABILITY_BENEFITS)
    dre = itemised
    if gets_disability_benefit and standard > itemised:
        dre = standard
        steps.append(_step("Disability-related expenditure allowance", standard,
                           f"You get a disability benefit, so we allow at least {_gbp(standard)} a week for the "
                           "extra costs of disability, the council's standard allowance."))
    steps.append(_step("Disability-related expenditure", dre,
                       "The extra costs of your disability we allow." if dre else
                       "You told us you have no extra costs because of a disability."))
    result["dre"] = _out(dre)

    assessed = counted + tariff - mig - housing - dre
    if assessed <= 0:
        assessed = Decimal(0)
        steps.append(_step("Assessed weekly charge", assessed,
                           "The income we count is not more than what is protected, so you pay nothing."))
        reason = ("your income is not more than what is protected (minimum income guarantee, housing and "
                  "disability costs)")
    else:
        steps.append(_step("Assessed weekly charge", assessed,
                           f"Income we count {_gbp(counted)} plus tariff income {_gbp(tariff)}, less the minimum "
                           f"income guarantee {_gbp(mig)}, housing costs {_gbp(housing)} and disability-related "
                           f"expenditure {_gbp(dre)}."))
        reason = "worked out from your income and capital"
    minimum = council["minimum_weekly_charge"]
    if Decimal(0) < assessed < minimum:
        steps.append(_step("Minimum weekly charge", minimum,
                           f"The council does not charge amounts under {_gbp(minimum)} a week, so you pay nothing."))
        assessed = Decimal(0)
        reason = f"your assessed charge is under the council's minimum weekly charge of {_gbp(minimum)}"
    result["assessed_weekly_charge"] = _out(assessed)

    if cost is not None and assessed >= cost:
        result["full_cost"] = True
        contribution = cost
        reason = (f"your assessed charge of {_gbp(assessed)} is not less than the cost of your support, "
                  f"{_gbp(cost)} a week, so you pay the cost and no more")
        steps.append(_step("Your weekly contribution", contribution,
                           f"You never pay more than your support costs: {_gbp(cost)} a week."))
    else:
        contribution = assessed
        steps.append(_step("Your weekly contribution", contribution,
                           "What you pay each week towards your care and support."
                           + (f" The council pays the rest of the {_gbp(cost)} a week." if cost is not None else "")))
    result["weekly_contribution"] = _out(contribution)
    result["reason"] = reason
    result["steps"] = steps
    return result


def pays_full_cost_whatever_it_costs(assessment: Mapping[str, Any]) -> bool:
    """Whether a financial assessment's result charges the full cost of the support, however much it costs: a
    light-touch assessment, a person who declined to tell us about their money, or capital above the upper
    limit. A full assessment whose charge was as much as the cost it was compared with then (`full_cost` with
    the minimum income guarantee worked out) is not: its assessed charge stands against a later, higher cost
    (a budget raised at a review), and the person never pays more than that charge."""
    if assessment.get("full_cost") is not True:
        return False
    return not (assessment.get("route") == "full" and assessment.get("mig") is not None)


def reablement_charging(ctx: HandlerContext, weeks_received: Any) -> dict[str, Any]:
    """Whether a reablement extension is charged (processes/reablement.bpmn "Is the extension charged?"): free
    while fewer than the council's free weeks have been received (charging.json council.reablement_free_weeks, at
    least 6: regulation 3(2)(b)); after them charged or free per council.reablement_after. Only the council's
    choices are read, so no charging year's national figures are needed to say it."""
    if isinstance(weeks_received, bool) or not isinstance(weeks_received, int) or not 0 <= weeks_received <= 5200:
        raise ValueError(f"weeks_received must be a whole number of weeks from 0, got {weeks_received!r}")
    cfg, source = load_config()
    council = cfg["council"]
    free = council["reablement_free_weeks"]
    if weeks_received < free:
        charged, reason = False, f"Reablement is free for the first {free} weeks."
    elif council["reablement_after"] == "charge":
        charged, reason = True, f"Reablement after the first {free} weeks is charged for, after a financial assessment."
    else:
        charged, reason = False, f"The council does not charge for reablement, even after {free} weeks."
    return {"charged": charged, "free_weeks": free, "weeks_received": weeks_received, "reason": reason,
            "config": source, "decided_at": ctx.now.isoformat()}


def register(registry: HandlerRegistry) -> None:
    """Register the charging handlers under their diagram names."""
    registry.register("financial_assessment", financial_assessment)
    registry.register("reablement_charging", reablement_charging)
