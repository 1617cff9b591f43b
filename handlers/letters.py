"""Letters to the person: eligibility decision, personal budget, support plan, a carer's support plan,
safeguarding, discharge.

The handlers render plain-text letters and return them; the engine stores the result in
task data and the case history, and the case's process files them. Nothing is sent or
written from here.

Templates are Jinja2 (`handlers/templates/*.txt.j2`) with StrictUndefined, so a letter can
never go out with a silent blank: every dict the handler is given is wrapped so that a
missing field raises ValueError naming its path ("budget.domains[1].reason"). Council
details come from `processes/config/council.json` (local, not code).
"""

from __future__ import annotations

import functools
import os
import re
import textwrap
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, Undefined, UndefinedError

from engine.registry import HandlerContext, HandlerRegistry

from . import working_days
from .charging import pays_full_cost_whatever_it_costs
from .config_files import cached, read_json
from .eligibility import WELLBEING_AREAS, _fluctuation_text
from .people import nfc_name, person_of

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_COUNCIL = Path(__file__).resolve().parent.parent / "processes" / "config" / "council.json"
#: lets a deployment use its own council details without editing code
COUNCIL_ENV = "CAREPATH_COUNCIL_CONFIG"
_COUNCIL_FIELDS = ("name", "department", "address", "phone", "email", "signatory", "decision_review", "complaints")


# ---------------------------------------------------------------- formatting


def money(value: Any) -> str:
    """£1,234.56 (rounded half up, as people expect pence to round); -£5.00 for negatives.

    Accepts numbers and decimal strings ("61000.00", as handlers.budget stores money).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise ValueError(f"expected an amount of money, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"expected an amount of money, got {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"expected an amount of money, got {value!r}")
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{'-' if amount < 0 else ''}£{abs(amount):,.2f}"


def long_date(value: Any) -> str:
    """'4 January 2027', from a date, a datetime (its UK day) or an ISO 8601 string."""
    if isinstance(value, (date, datetime, str)):
        day = working_days.as_local_date(value)
        return f"{day.day} {day:%B %Y}"
    raise ValueError(f"expected a date, got {value!r}")


def _para(text: Any, indent: str = "") -> str:
    # Plain-text letters are read on screens and printed: wrap prose at a printable width.
    return _filled(str(text), indent, indent)


def _bullet(text: Any, marker: str = "-", indent: str = "") -> str:
    lead = f"{indent}{marker} "
    return _filled(str(text), lead, " " * len(lead))


@functools.lru_cache(maxsize=4096)
def _filled(text: str, first: str, rest: str) -> str:
    """A paragraph wrapped at 78 columns (most of a letter's paragraphs are the same words in every letter: each is
    wrapped once)."""
    return textwrap.fill(text, width=78, initial_indent=first, subsequent_indent=rest)


# ---------------------------------------------------------------- missing fields name their path


class _Fields(dict):  # type: ignore[type-arg]
    """A dict that knows where it sits in the handler's input, for error messages."""

    def __init__(self, data: dict[str, Any], path: str) -> None:
        super().__init__(data)
        self.path = path


def _wrap(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return _Fields({k: _wrap(v, f"{path}.{k}") for k, v in value.items()}, path)
    if isinstance(value, list):
        return [_wrap(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


class _LetterEnvironment(Environment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, _Fields) and attribute not in obj and not hasattr(dict, attribute):
            return self.undefined(hint=f"missing field '{obj.path}.{attribute}'", obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, _Fields) and isinstance(argument, str) and argument not in obj:
            return self.undefined(hint=f"missing field '{obj.path}.{argument}'", obj=obj, name=argument)
        return super().getitem(obj, argument)


_env = _LetterEnvironment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=False,  # plain text: HTML escaping would print "&amp;" in a letter
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _strict(fn: Any) -> Any:
    # Filters receive an Undefined instead of raising on it; make a missing field fail with
    # its own "missing field 'x.y'" message rather than "expected a date, got Undefined".
    def apply(value: Any, *args: Any) -> Any:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return fn(value, *args)

    return apply


#: the council's job titles for the roles carepath knows (api/auth.py ROLES and the usual ones a plan names),
#: as they read inside a sentence: "Sam Okoro, social worker"
ROLE_TITLES = {
    "social_worker": "social worker", "occupational_therapist": "occupational therapist",
    "reablement_coordinator": "reablement co-ordinator", "team_manager": "team manager",
    "finance_officer": "finance officer", "front_door_advisor": "adviser at our front door",
    "senior_social_worker": "senior social worker", "social_work_assistant": "social work assistant",
    "carers_worker": "carers' worker", "care_coordinator": "care co-ordinator",
    "reablement_co_ordinator": "reablement co-ordinator", "care_co_ordinator": "care co-ordinator",
    "ot": "occupational therapist", "front_door_adviser": "adviser at our front door",
}


def role_title(role: Any) -> str:
    """A worker's role as it reads after their name in a letter ("Sam Social, social worker"), whatever case it
    was typed or stored in: a role carepath knows (its code or its words, "Social Worker", "SOCIAL WORKER",
    "social_worker") is the council's title in lower case; any other role typed in sentence or capital case has
    its ordinary words in lower case, keeping abbreviations ("NHS", "OT") and words capitalised inside it
    ("Northshire Carers Centre") as typed."""
    text = " ".join(str(role or "").split())
    key = re.sub(r"[^a-z]+", "_", text.lower().replace("’", "'").replace("'", "")).strip("_")
    if key in ROLE_TITLES:
        return ROLE_TITLES[key]
    words = text.split(" ")
    if text.isupper() and len(words) > 1:  # typed in capitals: every word but an abbreviation of up to 3 letters
        return " ".join(w if len(w) <= 3 else w.lower() for w in words)
    first = words[0]
    sentence_case = all(not w[:1].isupper() for w in words[1:] if len(w) > 3 or not w.isupper())
    if first[:1].isupper() and first[1:].islower() and sentence_case:  # "Community support worker"
        words[0] = first.lower()
    return " ".join(words)


_env.filters.update(money=_strict(money), long_date=_strict(long_date), para=_strict(_para), bullet=_strict(_bullet),
                    role=_strict(role_title))


# ---------------------------------------------------------------- council details


def load_council(path: str | Path | None = None) -> dict[str, Any]:
    """The council's details (read again only when the file changes)."""
    return cached(Path(path or os.environ.get(COUNCIL_ENV) or DEFAULT_COUNCIL), _read_council)


def _read_council(resolved: Path) -> dict[str, Any]:
    council = read_json(resolved, "the council details file")
    missing = [f for f in _COUNCIL_FIELDS if not council.get(f)] if isinstance(council, dict) else ["(object)"]
    if missing:
        raise ValueError(f"{resolved}: missing council field(s): {', '.join(missing)}")
    return council


# ---------------------------------------------------------------- rendering


def _require(obj: Any, name: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{name} must be an object with the letter's fields, got {type(obj).__name__}")
    return obj


def _address_lines(person: dict[str, Any]) -> list[str]:
    address = person.get("address") or []
    if isinstance(address, str):
        return [part.strip() for part in address.split(",") if part.strip()]
    return [str(line) for line in address]


def reference(ctx: HandlerContext, person: dict[str, Any] | None = None) -> str:
    """The case's readable reference, CASE-000007 (the engine's own format; never "case 7").

    The engine gives ctx.case_reference; a letter rendered outside a case step (a preview, a
    test) makes the same format from the case id. It holds no personal data (docs/letters.md).
    """
    given = (person or {}).get("reference") or ctx.case_reference
    if given:
        return str(given)
    if isinstance(ctx.case_id, int) and not isinstance(ctx.case_id, bool):
        return f"CASE-{ctx.case_id:06d}"
    raise ValueError("the letter needs the case's reference: the case has none")


def greeting(person: dict[str, Any]) -> str:
    """Who "Dear ..." names: the salutation recorded ("Mr Clarke"), else the preferred name (the front door's
    "What would they like to be called?"), else the name; in Unicode NFC with single spaces, as the case
    record keeps names (a process's own copy of the person keeps what was typed)."""
    for key in ("salutation", "preferred_name", "name"):
        value = person.get(key)
        if isinstance(value, str) and value.strip():
            return nfc_name(value)
    raise ValueError("missing field 'person.name': the letter needs the name of the person it is written to")


def _as_recorded(ctx: HandlerContext, person: dict[str, Any]) -> dict[str, Any]:
    """`person` with the preferred name the case record holds now, when the letter is to the case's own person
    (the same name): a process keeps its own copy of the person from when it started, so a preferred name
    added or corrected on the case record since then reaches the letter this way. A letter to someone else
    (a carer) is left as given."""
    recorded = person_of(ctx.case_data) or None
    if not isinstance(recorded, dict) or not isinstance(person, dict):
        return person
    mine, theirs = person.get("name"), recorded.get("name")
    if not (isinstance(mine, str) and isinstance(theirs, str)
            and nfc_name(mine).casefold() == nfc_name(theirs).casefold()):
        return person
    out = dict(person)
    if isinstance(recorded.get("preferred_name"), str):
        out["preferred_name"] = recorded["preferred_name"]
    else:
        out.pop("preferred_name", None)
    return out


def _render(
    ctx: HandlerContext, kind: str, template: str, title: str, person: dict[str, Any], **data: Any
) -> dict[str, Any]:
    person = _require(person, "person")
    dated = working_days.as_local_date(ctx.now)  # the UK date the letter was produced
    context = {
        "council": _wrap(load_council(), "council"),
        "person": _wrap(person, "person"),
        "address_lines": _address_lines(person),
        "reference": reference(ctx, person),
        "greeting": greeting(_as_recorded(ctx, person)),
        "title": title,
        "dated": dated,
        **{key: _wrap(value, key) if isinstance(value, dict) else value for key, value in data.items()},
    }
    try:
        body = _env.get_template(template).render(context)
    except UndefinedError as exc:
        raise ValueError(f"{kind} letter: {_missing(exc)}") from None
    except TemplateError as exc:  # a template bug, not bad input: say which template
        raise ValueError(f"{kind} letter: template {template} failed: {exc}") from exc
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"  # optional sections leave gaps
    return {"kind": kind, "title": title, "body": body, "dated": dated.isoformat(), "template": template}


def _missing(exc: UndefinedError) -> str:
    text = str(exc)
    if text.startswith("missing field"):
        return text
    # Plain StrictUndefined wording ("'dict object' has no attribute 'x'", "'x' is undefined").
    found = re.search(r"attribute '([^']+)'|'([^']+)' is undefined", text)
    return f"missing field '{next(g for g in found.groups() if g)}'" if found else text


# ---------------------------------------------------------------- eligibility

# The three conditions of reg 2 (adults) and reg 3 (carers), as (a), (b), (c).
_ADULT_CONDITIONS = {
    "a": "Your needs arise from or are related to a physical or mental impairment or illness",
    "b": "Because of those needs you are unable to achieve two or more of the outcomes",
    "c": "As a result there is, or is likely to be, a significant impact on your wellbeing",
}
_CARER_CONDITIONS = {
    "a": "Your needs arise from providing necessary care for another adult",
    "b": "Because of this your health is, or is at risk of, getting worse, or you are unable "
    "to achieve at least one of the outcomes",
    "c": "As a result there is, or is likely to be, a significant impact on your wellbeing",
}


def _condition_key(key: str) -> str:
    """'a'/'b'/'c', from the eligibility handler's keys or descriptive ones ('impairment'...)."""
    key = key.lower()
    if key in ("a", "b", "c"):
        return key
    if any(k in key for k in ("impair", "illness", "caring")):
        return "a"
    if any(k in key for k in ("outcome", "two", "health")):
        return "b"
    if "wellbeing" in key or "impact" in key:
        return "c"
    return key


def _conditions(raw: Any, carer: bool) -> list[dict[str, Any]]:
    """The decision's conditions as [{key, label, met, reason}], whatever their layout.

    Accepted: {"a": {"met": true, "explanation": "..."}, ...} (handlers.eligibility),
    {"impairment": true, ...}, {"impairment": {"met": true, "reason": "..."}}, or a list
    of {"name"/"label", "met", "reason"}. Only a worker's "reason" is shown per condition:
    a generated "explanation" is already part of the decision's own explanation.
    """
    if not raw:
        return []
    if isinstance(raw, dict):
        items: Any = raw.items()
    elif isinstance(raw, list) and all(isinstance(c, dict) for c in raw):
        items = ((c.get("name") or c.get("label"), c) for c in raw)
    else:
        raise ValueError("decision.conditions must be an object of condition -> met, or a list of objects")
    labels = _CARER_CONDITIONS if carer else _ADULT_CONDITIONS
    result = []
    for key, value in items:
        detail = value if isinstance(value, dict) else {"met": value}
        canonical = _condition_key(str(key))
        label = labels.get(canonical) or detail.get("label") or str(key).replace("_", " ").capitalize()
        result.append({"key": canonical, "label": label, "met": detail.get("met"), "reason": detail.get("reason")})
    return sorted(result, key=lambda c: c["key"])


_WAYS = (
    (("assist", "prompt", "help"), "You cannot do this without help, including prompting"),
    (("pain", "distress", "anxiety"), "You can only do this with a lot of pain, distress or anxiety"),
    (("endanger", "safety", "risk"), "Doing this puts your health or safety, or someone else's, at risk"),
    (("longer", "time"), "Doing this takes you much longer than it would take most people"),
)


def _way(code: Any) -> str:
    """One of the statutory ways of being 'unable to achieve' an outcome, in plain words."""
    text = str(code)
    for keys, words in _WAYS:
        if any(k in text.lower() for k in keys):
            return words
    return text.replace("_", " ")


def _sentence_case(text: Any) -> str:
    text = str(text).strip()
    return text[:1].upper() + text[1:]


#: directory need domains that can help with an outcome a person finds hard (s.13(5) advice)
_OUTCOME_NEEDS = {
    "relationships": ["social_isolation"],
    "community_facilities": ["transport", "social_isolation"],
    "work_training_education_volunteering": ["employment_volunteering"],
    "using_home_safely": ["telecare", "equipment"],
    "personal_hygiene": ["equipment"],
    "toilet_needs": ["equipment"],
    "habitable_home": ["housing"],
    "recreational_activities": ["physical_activity", "day_opportunities"],
    "caring_for_others": ["carers_support"],
}


def _community_services(ctx: HandlerContext, outcomes: list[dict[str, Any]], carer: bool, area: Any,
                        limit: int = 3) -> list[dict[str, str]]:
    """Local services from the community directory for the outcomes the person finds hard."""
    from .directory import current_directory, search_directory  # the directory is optional data

    needs = ["carers_support"] if carer else []
    for o in outcomes:
        if o.get("unable"):
            needs += _OUTCOME_NEEDS.get(str(o.get("code") or ""), [])
    needs = list(dict.fromkeys(needs))
    try:
        directory = current_directory()
    except (ValueError, OSError):
        return []
    needs = [n for n in needs if n in directory.need_domains]
    if not needs:
        return []
    found = search_directory(ctx, needs, area if area in directory.areas else None, limit)
    return [{"name": m["name"], "description": str(directory.services[m["id"]].get("description") or "").strip(),
             "phone": (m.get("contact") or {}).get("phone") or ""} for m in found["matches"]
            if (m.get("contact") or {}).get("phone")]


def _wellbeing(decision: dict[str, Any]) -> dict[str, Any] | None:
    """The worker's wellbeing judgement: decision["wellbeing"] or the (c) condition."""
    raw = decision.get("wellbeing")
    if not isinstance(raw, dict):
        conditions = decision.get("conditions")
        found = [
            v if isinstance(v, dict) else {"met": v}
            for k, v in (conditions.items() if isinstance(conditions, dict) else [])
            if _condition_key(str(k)) == "c"
        ]
        raw = found[0] if found else None
    if raw is None:
        return None
    areas = [WELLBEING_AREAS.get(a, str(a).replace("_", " ")) for a in raw.get("areas") or []]
    return {"met": raw.get("significant", raw.get("met")), "reason": raw.get("reason"), "areas": areas}


def _carer_health(decision: dict[str, Any]) -> bool | None:
    """reg 3(1)(b)(i): whether caring puts the carer's health at risk, when the decision records it."""
    conditions = decision.get("conditions")
    b = conditions.get("b") if isinstance(conditions, dict) else None
    found = b.get("health_deteriorating_or_at_risk") if isinstance(b, dict) else None
    return found if isinstance(found, bool) else None


def eligibility_letter(ctx: HandlerContext, person: dict[str, Any], decision: dict[str, Any],
                       advice: dict[str, Any] | None = None) -> dict[str, Any]:
    """The written eligibility decision with reasons (Care Act s.13(2)), for adults and carers.

    `advice` (not eligible: the information and advice given, s.13(5)): {information_given, referred_to
    (list), prevention}; the letter gives it instead of saying that the worker will."""
    decision = _require(decision, "decision")
    if advice is not None:
        advice = _require(advice, "advice")
        if not str(advice.get("information_given") or "").strip():
            raise ValueError("advice.information_given: say what information and advice was given")
        advice = {"information_given": advice["information_given"],
                  "referred_to": list(advice.get("referred_to") or []), "prevention": advice.get("prevention") or ""}
    # handlers.eligibility names the regulation; reg 3 is the carers' one
    carer = "regulation 3" in str(decision.get("regulation", "")) or decision.get("kind") == "carer"
    outcomes = [o for o in decision.get("outcomes") or [] if isinstance(o, dict)]
    if not outcomes:
        raise ValueError("decision.outcomes: the letter lists the outcomes looked at")
    for i, o in enumerate(outcomes):
        for key in ("label", "reason") if o.get("unable") else ("label",):
            if key not in o:  # an unable outcome's reason is the decision's reason (s.13(2))
                raise ValueError(f"eligibility letter: missing field 'decision.outcomes[{i}].{key}'")
    unable = [{"label": _sentence_case(o["label"]), "ways": [_way(w) for w in (o.get("ways") or [])],
               "reason": str(o.get("reason") or "").strip()} for o in outcomes if o.get("unable")]
    able = [str(o["label"]).strip().lower() for o in outcomes if not o.get("unable")]
    area = _require(person, "person").get("area")
    services = [] if decision.get("eligible") else _community_services(ctx, outcomes, carer, area)
    fluctuation = decision.get("fluctuation") if isinstance(decision.get("fluctuation"), dict) else None
    title = "Your needs as a carer: our decision" if carer else "Your care and support needs: our decision"
    return _render(
        ctx,
        "eligibility",
        "eligibility.txt.j2",
        title,
        person,
        decision=decision,
        carer=carer,
        conditions=_conditions(decision.get("conditions"), carer),
        wellbeing=_wellbeing(decision),
        unable=unable,
        able=able,
        carer_health=_carer_health(decision) if carer else None,
        services=services,
        fluctuation=_fluctuation_text(fluctuation),
        advice=advice,
    )


# ---------------------------------------------------------------- personal budget


def _number(value: Any) -> Decimal | None:
    # handlers.budget gives money as decimal strings ("61000.00"); other callers give numbers
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _conversion_text(conversion: Any, total_points: Any) -> str | None:
    """How the points became money, in the letter's words: the total they give, never a rate with fractions of a
    penny (docs/letters.md): a calibrated price like £1,109.09091 a point is shown as "about £1,109.09"."""
    if not isinstance(conversion, dict) or not conversion:
        return None
    text = conversion.get("description")
    if text:
        return str(text)
    price = _number(conversion.get("price_per_point"))
    if price is not None:
        points = _number(conversion.get("points", total_points))
        exact = price == price.quantize(Decimal("0.01"))
        rate = f"{'' if exact else 'about '}{money(price)} a point"
        if points is None:
            return f"Your points are worth {rate}"
        return f"Your {total_points} points give {money(points * price)} a year ({rate})"
    band = conversion.get("band")
    if isinstance(band, dict):
        low, high = band.get("min_points"), band.get("max_points")
        span = band.get("label") or (f"{low} or more points" if high is None else f"{low} to {high} points")
        amount = _number(band.get("amount"))
        return (f"Your {total_points} points are in the band {span}"
                + (f", which gives {money(amount)} a year" if amount else ""))
    if band is not None:
        return f"Your {total_points} points are in band {band}"
    return None


def _budget_view(budget: dict[str, Any]) -> dict[str, Any]:
    """The budget with handlers.budget's names mapped to the letter's, leaving gaps as gaps.

    points_before/points_after -> points/points_after_carer, weekly_equivalent ->
    weekly_amount. A field absent under both names stays absent, so the template reports it.
    """
    view = dict(budget)
    if "weekly_amount" not in view and "weekly_equivalent" in view:
        view["weekly_amount"] = view["weekly_equivalent"]
    domains = []
    for d in budget.get("domains") or []:
        if isinstance(d, dict):
            d = dict(d)
            if "points" not in d and "points_before" in d:
                d["points"] = d["points_before"]
            if "points_after_carer" not in d and "points_after" in d:
                d["points_after_carer"] = d["points_after"]
        domains.append(d)
    if "domains" in budget:
        view["domains"] = domains
    return view


def _carer_reduced(domain: Any) -> bool:
    if not isinstance(domain, dict) or not domain.get("met_by_carer"):
        return False
    before, after = _number(domain.get("points")), _number(domain.get("points_after_carer"))
    # a carer who helps without reducing the points (a 0% deduction) did not affect the budget
    return before is None or after is None or after < before


def _contribution(financial_assessment: Any, weekly: Any) -> dict[str, Any] | None:
    """What the person pays and what the council pays a week, if all of the budget is spent: the financial
    assessment's charge, never more than the cost (Care Act s.14(7)). None while there is no assessment."""
    if not financial_assessment:
        return None
    if not isinstance(financial_assessment, dict):
        raise ValueError("financial_assessment must be the financial assessment's result")
    cost = _number(weekly)
    if cost is None:
        raise ValueError("budget.weekly_equivalent is needed to say what the person pays")
    full_cost = pays_full_cost_whatever_it_costs(financial_assessment)
    assessed = cost if full_cost else _number(financial_assessment.get("assessed_weekly_charge"))
    if assessed is None or assessed < 0:
        raise ValueError("financial_assessment.assessed_weekly_charge must be an amount of money, got "
                         f"{financial_assessment.get('assessed_weekly_charge')!r}")
    pays = min(assessed, cost)
    return {"full_cost": full_cost, "assessed": str(assessed), "pays": str(pays), "council": str(cost - pays)}


def _once(conversion_text: str | None, view: dict[str, Any]) -> str | None:
    final, indicative = _number(view.get("final_amount")), _number(view.get("indicative_amount"))
    if conversion_text and final is not None and final == indicative:
        return conversion_text.replace(f"{money(final)} a year", "this amount")
    return conversion_text


def budget_letter(ctx: HandlerContext, person: dict[str, Any], budget: dict[str, Any],
                  approved: bool | None = None, financial_assessment: dict[str, Any] | None = None,
                  stage: str = "indicative") -> dict[str, Any]:
    """The personal budget: the amount, what the person pays and what the council pays (Care Act s.26), how it
    was worked out including informal care (guidance 11.24) and, at a reassessment, the old budget beside it.

    `approved`: True once a manager has approved a budget above the threshold (the letter then
    says so); None or False while approval is still to come. `financial_assessment`: the case's
    (contract C2); without it the letter says the assessment is under way. `stage`: "indicative"
    before the support plan, "final" once the plan is agreed.
    """
    if stage not in ("indicative", "final"):
        raise ValueError(f"stage must be indicative or final, got {stage!r}")
    view = _budget_view(_require(budget, "budget"))
    carer_support = view.get("carer_support")
    if _number(carer_support) is not None and not isinstance(carer_support, dict):
        carer_support = {"amount": carer_support}
    if isinstance(carer_support, dict) and not _number(carer_support.get("amount")):
        carer_support = None  # a nil allocation is not worth a paragraph
    period = {"annual": "year", "weekly": "week", "monthly": "month"}.get(view.get("period") or "", "year")
    return _render(
        ctx,
        "budget",
        "budget.txt.j2",
        "Your personal budget",
        person,
        budget=view,
        carer_domains=[d for d in view.get("domains") or [] if _carer_reduced(d)],
        carer_support=carer_support,
        period=period,
        approved=bool(approved),
        stage=stage,
        # the points give the whole budget when nothing was added: say the amount once
        conversion_text=_once(_conversion_text(view.get("conversion"), view.get("total_points")), view),
        points_before=view.get("points_before_carer_deduction",
                                sum(_number(d.get("points")) or 0 for d in view.get("domains") or []
                                    if isinstance(d, dict))),
        comparison=view.get("comparison"),
        contribution=_contribution(financial_assessment, view.get("weekly_amount")),
    )


# ---------------------------------------------------------------- support plan

_MONEY_TEXT = {  # its keys are the plan's money_management choices
    "direct_payment": (
        "as a direct payment. We pay your personal budget to you, or someone you have chosen, so that you can "
        "arrange and pay for your own support. Keep the money in a separate account and keep receipts. We will "
        "check how the direct payment is working within 6 months, then at least every 12 months."
    ),
    "managed_account": (
        "as a managed account, also called an individual service fund. A provider you chose holds the money and "
        "arranges the support with you. They tell us how it is spent."
    ),
    "council_managed": (
        "by the council. We arrange and pay for the services in this plan for you. Tell us at any time if they are "
        "not working for you."
    ),
}
MONEY_MANAGEMENT = tuple(_MONEY_TEXT)
_DP_RECIPIENT_TEXT = {  # who receives a direct payment other than the person (plan.direct_payment_recipient.role)
    "nominated_person": (
        "as a direct payment paid to {name} ({relationship}), your nominated person. You asked for them to "
        "receive and manage it for you (Care Act 2014, section 31). The decisions about your support stay yours."
    ),
    "authorised_person": (
        "as a direct payment paid to {name} ({relationship}), your authorised person (Care Act 2014, section 32). "
        "We found that you are not able to decide about a direct payment yourself. They have agreed to manage it "
        "in your best interests."
    ),
}
_DP_TAIL = (" Keep the money in a separate account and keep receipts. We will check how the direct payment is "
            "working within 6 months, then at least every 12 months.")


def support_plan_letter(ctx: HandlerContext, person: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The agreed support plan: outcomes, money, permitted changes, co-ordinator, reviews."""
    plan = _require(plan, "plan")
    mode = plan.get("money_management")
    if mode is not None and mode not in MONEY_MANAGEMENT:
        raise ValueError(f"plan.money_management must be one of {list(MONEY_MANAGEMENT)}, got {mode!r}")
    return _render(
        ctx,
        "support_plan",
        "support_plan.txt.j2",
        "Your support plan",
        person,
        plan=plan,
        money_text=_money_text(plan),
    )


def _money_text(plan: dict[str, Any]) -> dict[str, str]:
    """The money paragraphs, the direct payment's naming who receives it when that is not the person."""
    recipient = plan.get("direct_payment_recipient") or {}
    role = recipient.get("role", "person")
    if role == "person":
        return _MONEY_TEXT
    if role not in _DP_RECIPIENT_TEXT:
        raise ValueError(f"plan.direct_payment_recipient.role must be one of person, {', '.join(_DP_RECIPIENT_TEXT)}, "
                         f"got {role!r}")
    if not recipient.get("name") or not recipient.get("relationship"):
        raise ValueError("plan.direct_payment_recipient needs the name and relationship of the "
                         f"{role.replace('_', ' ')}")
    text = _DP_RECIPIENT_TEXT[role].format(name=recipient["name"], relationship=recipient["relationship"])
    return {**_MONEY_TEXT, "direct_payment": text + _DP_TAIL}


# ---------------------------------------------------------------- carer's support plan

_CARER_MONEY_TEXT = {  # the carer's plan's money_management choices, each a whole sentence or two
    "direct_payment": "We will pay it to you as a direct payment, so that you can arrange and pay for the support "
                      "yourself. Please keep the money in a separate account and keep receipts.",
    "managed_account": "We will pay it to a provider you chose, as a managed account. They hold the money and "
                       "arrange the support with you.",
    "council_managed": "We will use it to arrange and pay for the support in this plan for you.",
}
_CARER_SUPPORT_TEXT = {  # the carer's plan's support_type (CLD Carer Support service types)
    "direct_to_carer": "This support is for you, as a carer.",
    "involving_cared_for": "Some of this support is given to the person you care for, so that you can have a "
                           "break.",
}
CARER_FUNDED_BY = ("cared_for_personal_budget", "carers_personal_budget")


def carer_support_plan_letter(ctx: HandlerContext, person: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """A carer's support plan (Care Act s.24-25): outcomes, budget and who holds it, emergency plan, reviews."""
    plan = _require(plan, "plan")
    mode, kind = plan.get("money_management"), plan.get("support_type")
    if mode not in _CARER_MONEY_TEXT:
        raise ValueError(f"plan.money_management must be one of {list(_CARER_MONEY_TEXT)}, got {mode!r}")
    if kind not in _CARER_SUPPORT_TEXT:
        raise ValueError(f"plan.support_type must be one of {list(_CARER_SUPPORT_TEXT)}, got {kind!r}")
    funded_by = _require(plan.get("budget"), "plan.budget").get("funded_by")
    if funded_by not in CARER_FUNDED_BY:
        raise ValueError(f"plan.budget.funded_by must be one of {list(CARER_FUNDED_BY)}, got {funded_by!r}")
    return _render(ctx, "carers_support_plan", "carers_support_plan.txt.j2", "Your support plan as a carer",
                   person, plan=plan, money_text=_CARER_MONEY_TEXT[mode], support_text=_CARER_SUPPORT_TEXT[kind])


# ---------------------------------------------------------------- safeguarding

SAFEGUARDING_RECIPIENTS = ("adult", "representative")
_OUTCOMES_ACHIEVED = {
    "fully": "We think what you wanted to happen has been fully achieved",
    "partially": "We think what you wanted to happen has been partly achieved",
    "not_achieved": "We are sorry that what you wanted to happen has not been achieved",
    "not_expressed": "You did not tell us what you wanted to happen, so we worked to keep you safe",
}
_RISK_OUTCOMES = {
    "removed": "The risk to you has been removed.",
    "reduced": "The risk to you has been reduced.",
    "remains": "Some risk to you remains.",
}


def _norm_name(name: Any) -> str:
    return " ".join(str(name or "").lower().replace(".", " ").split())


def _recipient(recipient: Any, adult: dict[str, Any], where: str) -> dict[str, Any]:
    """The addressee: the adult, or a representative with a name, address and relationship."""
    recipient = _require(recipient, where)
    role = recipient.get("role")
    if role not in SAFEGUARDING_RECIPIENTS:
        raise ValueError(f"{where}.role must be one of {list(SAFEGUARDING_RECIPIENTS)}, got {role!r}")
    if role == "adult":
        merged = {**adult, **{k: v for k, v in recipient.items() if k in ("name", "address") and v}}
    else:
        merged = dict(recipient)
        if not merged.get("relationship"):
            raise ValueError(f"{where}.relationship: say how the representative is connected to the adult")
    for key in ("name", "address"):
        if not merged.get(key):
            raise ValueError(f"{where}.{key}: the letter needs the {role}'s {key}")
    return {**merged, "role": role}


def safeguarding_letter(ctx: HandlerContext, adult: dict[str, Any] | None, recipient: dict[str, Any],
                        concern_date: str, decision: str, advice_given: str | None = None,
                        outcome: dict[str, Any] | None = None,
                        alleged_source: dict[str, Any] | None = None) -> dict[str, Any]:
    """To the adult (or their representative): the safeguarding concern was looked into, and what happened.

    Never to the person alleged to have caused harm: a recipient whose name is the alleged
    source's is refused. The letter names nobody as a source of harm and gives no account of
    what was alleged; it says what the council did, the outcome and who to call.
    `decision` is the triage decision; `outcome` (for an enquiry) holds outcomes_achieved,
    risk_outcome and optionally safeguarding_plan.
    """
    adult = dict(adult or person_of(ctx.case_data))
    to = _recipient(recipient, adult, "recipient")
    source = alleged_source or {}
    if isinstance(source, dict) and source.get("name") and _norm_name(source["name"]) == _norm_name(to["name"]):
        raise ValueError("recipient.name: this is the person alleged to have caused harm; a safeguarding letter "
                         "is never sent to them")
    if decision not in ("s42_enquiry", "other_enquiry", "no_further_action_with_advice"):
        raise ValueError(f"decision must be s42_enquiry, other_enquiry or no_further_action_with_advice, "
                         f"got {decision!r}")
    enquiry = decision != "no_further_action_with_advice"
    if enquiry:
        outcome = _require(outcome, "outcome")
        for key, allowed in (("outcomes_achieved", _OUTCOMES_ACHIEVED), ("risk_outcome", _RISK_OUTCOMES)):
            if outcome.get(key) not in allowed:
                raise ValueError(f"outcome.{key} must be one of {list(allowed)}, got {outcome.get(key)!r}")
    elif not advice_given:
        raise ValueError("advice_given: say what advice was given when no further action is taken")
    if not adult.get("name"):
        raise ValueError("adult.name: the letter must say who the concern was about")
    return _render(
        ctx, "safeguarding", "safeguarding.txt.j2", "The safeguarding concern we looked into", to,
        adult=adult, to_adult=to["role"] == "adult", concern_date=concern_date, enquiry=enquiry,
        advice_given=advice_given, outcome=outcome or {}, achieved_text=_OUTCOMES_ACHIEVED,
        risk_text=_RISK_OUTCOMES,
    )


# ---------------------------------------------------------------- hospital discharge

_PATHWAY_TEXT = {
    0: "you went home without needing any new care and support from us",
    1: "you went home with new support from our reablement team",
    2: "you moved to a community bed for a period of recovery before going home",
    3: "you moved to a care home",
}


def discharge_letter(ctx: HandlerContext, person: dict[str, Any], pathway: int, discharge_date: str,
                     support_arranged: str | None = None, follow_up_date: str | None = None,
                     assessment_from: str | None = None, recipient: dict[str, Any] | None = None,
                     reablement_weeks: int = 6) -> dict[str, Any]:
    """After a hospital discharge: the pathway, the support arranged and when we will be in touch.

    `follow_up_date`: the 91-day check (people aged 65+ who went home with reablement);
    `assessment_from`: when the longer-term needs assessment starts (pathways 2 and 3).
    `recipient`: a representative {name, address, relationship}; by default the person.
    """
    person = _require(person, "person")
    if isinstance(pathway, bool) or pathway not in _PATHWAY_TEXT:
        raise ValueError(f"pathway must be 0, 1, 2 or 3, got {pathway!r}")
    long_date(discharge_date)  # a clear error for a date that is not one
    to = person
    if recipient:
        to = _recipient({**recipient, "role": "representative"}, person, "recipient")
    return _render(
        ctx, "discharge", "discharge.txt.j2", "Leaving hospital: the support arranged", to,
        person_about=person, to_person=to is person, pathway=pathway, pathway_text=_PATHWAY_TEXT[pathway],
        discharge_date=discharge_date, support_arranged=support_arranged, follow_up_date=follow_up_date,
        assessment_from=assessment_from, reablement_weeks=reablement_weeks,
    )


# ---------------------------------------------------------------- review outcome (review.bpmn)

_REVIEW_ACHIEVED = {
    "fully": "You told us your plan is doing what you wanted it to.",
    "partly": "You told us your plan is doing some of what you wanted it to.",
    "not": "You told us your plan is not doing what you wanted it to.",
}


def review_outcome_letter(ctx: HandlerContext, person: dict[str, Any], needs_changed: bool,
                          budget_amount: Any, outcomes_achieved: str | None = None,
                          plan_working: bool | None = None, what_changed: str | None = None,
                          budget_check: dict[str, Any] | None = None, planned: bool = True,
                          review_frequency_months: int = 12, reassessment: bool = False) -> dict[str, Any]:
    """The outcome of a review of the support plan (Care Act s.27): what we found, the budget, what next.

    `budget_amount`: the budget after the review; `budget_check`: check_budget_change's result when
    a new amount was proposed (the letter compares it with `budget_amount` to say whether the change
    took effect); `planned`: a planned review starts the next one (review.bpmn "Start next review");
    `reassessment`: the review started a reassessment (its needs changed, or a refused cut is reassessed).
    """
    if not isinstance(needs_changed, bool):
        raise ValueError(f"needs_changed must be true or false, got {needs_changed!r}")
    outcomes_achieved = outcomes_achieved or None  # an unanswered question arrives as ""
    if outcomes_achieved is not None and outcomes_achieved not in _REVIEW_ACHIEVED:
        raise ValueError(f"outcomes_achieved must be one of {list(_REVIEW_ACHIEVED)}, got {outcomes_achieved!r}")
    amount = _number(budget_amount)
    if amount is None or amount < 0:
        raise ValueError(f"budget_amount must be an amount of money, got {budget_amount!r}")
    change = None
    if budget_check is not None:
        check = _require(budget_check, "budget_check")
        proposed, previous = _number(check.get("new_amount")), _number(check.get("previous_amount"))
        if proposed is None or previous is None:
            raise ValueError("budget_check needs previous_amount and new_amount")
        if proposed != previous:
            change = {"previous": str(previous), "proposed": str(proposed), "took_effect": proposed == amount,
                      "up": proposed > previous}
    if isinstance(review_frequency_months, bool) or not isinstance(review_frequency_months, int) \
            or review_frequency_months < 1:
        raise ValueError(f"review_frequency_months must be a whole number of months, got {review_frequency_months!r}")
    return _render(ctx, "review_outcome", "review_outcome.txt.j2", "The review of your support plan", person,
                   needs_changed=needs_changed, achieved_text=_REVIEW_ACHIEVED.get(outcomes_achieved or ""),
                   plan_working=plan_working, what_changed=(what_changed or "").strip(), budget_amount=str(amount),
                   change=change, planned=bool(planned), months=review_frequency_months,
                   reassess=needs_changed or reassessment is True)


# ---------------------------------------------------------------- a carer's review

CARER_REVIEW_STEPS = ("continue", "reassess", "end")
_CARER_ACHIEVED = {"fully": _REVIEW_ACHIEVED["fully"], "partly": _REVIEW_ACHIEVED["partly"],
                   "not_achieved": _REVIEW_ACHIEVED["not"]}
_CARER_CARING = {
    "yes": "You told us you are willing and able to go on caring for {who}.",
    "yes_with_support": "You told us you can go on caring for {who} with support.",
    "no": "You told us you cannot go on caring for {who} as before.",
}


def carer_review_letter(ctx: HandlerContext, person: dict[str, Any], plan: dict[str, Any], outcomes_achieved: str,
                        willing_and_able: str, next_step: str, reason: str,
                        next_review: str | None = None) -> dict[str, Any]:
    """The outcome of a carer's review (Care Act s.27(1)(b)): what we found, the carer's budget, what next.

    `plan`: the signed-off carer's plan (case data carer_support_plan); `next_review`: the date the next review
    falls due (the same add_months the process's timer uses), needed when the plan continues."""
    plan = _require(plan, "plan")
    if outcomes_achieved not in _CARER_ACHIEVED:
        raise ValueError(f"outcomes_achieved must be one of {list(_CARER_ACHIEVED)}, got {outcomes_achieved!r}")
    if willing_and_able not in _CARER_CARING:
        raise ValueError(f"willing_and_able must be one of {list(_CARER_CARING)}, got {willing_and_able!r}")
    if next_step not in CARER_REVIEW_STEPS:
        raise ValueError(f"next_step must be one of {list(CARER_REVIEW_STEPS)}, got {next_step!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("reason: the letter gives the reasons the worker recorded")
    if next_step == "continue":
        long_date(next_review)  # a clear error for a missing date
    budget = _require(plan.get("budget"), "plan.budget")
    if budget.get("funded_by") not in CARER_FUNDED_BY:
        raise ValueError(f"plan.budget.funded_by must be one of {list(CARER_FUNDED_BY)}, "
                         f"got {budget.get('funded_by')!r}")
    who = plan.get("cared_for") or "the person you care for"
    return _render(ctx, "carers_review_outcome", "carers_review_outcome.txt.j2",
                   "The review of your support plan as a carer", person, plan=plan, next_step=next_step,
                   achieved_text=_CARER_ACHIEVED[outcomes_achieved],
                   caring_text=_CARER_CARING[willing_and_able].format(who=who), cared_for=who,
                   reason=_full_stop(reason), next_review=next_review)


# ---------------------------------------------------------------- direct payment change or end

DIRECT_PAYMENT_OUTCOMES = ("nominated_person", "authorised_person", "managed_account", "end_direct_payment")


def direct_payment_letter(ctx: HandlerContext, person: dict[str, Any], outcome: str, outcome_reason: str,
                          effective_from: str, what_was_arranged: str,
                          recipient: dict[str, Any] | None = None) -> dict[str, Any]:
    """After a direct payment review changes who manages the money, or ends the direct payment
    (Care and Support (Direct Payments) Regulations 2014, reg 7 and 8): the change, why, from when."""
    if outcome not in DIRECT_PAYMENT_OUTCOMES:
        raise ValueError(f"outcome must be one of {list(DIRECT_PAYMENT_OUTCOMES)}, got {outcome!r}")
    if not isinstance(outcome_reason, str) or not outcome_reason.strip():
        raise ValueError("outcome_reason: the letter gives the reasons for the change")
    if not isinstance(what_was_arranged, str) or not what_was_arranged.strip():
        raise ValueError("what_was_arranged: the letter says what replaces the direct payment arrangement")
    long_date(effective_from)  # a clear error for a date that is not one
    if outcome in ("nominated_person", "authorised_person"):
        recipient = _require(recipient, "recipient")
        for key in ("name", "relationship"):
            if not str(recipient.get(key) or "").strip():
                raise ValueError(f"recipient.{key}: the letter names who receives the payment")
    title = ("Your direct payment is ending" if outcome == "end_direct_payment"
             else "A change to your direct payment")
    return _render(ctx, "direct_payment", "direct_payment.txt.j2", title, person, outcome=outcome,
                   reason=_full_stop(outcome_reason), effective_from=effective_from,
                   arranged=_full_stop(what_was_arranged), recipient=recipient or {})


def _full_stop(text: str) -> str:
    """A worker's typed words as a sentence in a letter: trimmed, with a full stop if they end without one."""
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?", ".\u201d", ")")) else text + "."


def register(registry: HandlerRegistry) -> None:
    load_council()  # missing council details should stop start-up, not a letter
    registry.register("eligibility_letter", eligibility_letter, document=True)
    registry.register("budget_letter", budget_letter, document=True)
    registry.register("support_plan_letter", support_plan_letter, document=True)
    registry.register("carer_support_plan_letter", carer_support_plan_letter, document=True)
    registry.register("carer_review_letter", carer_review_letter, document=True)
    registry.register("safeguarding_letter", safeguarding_letter, document=True)
    registry.register("discharge_letter", discharge_letter, document=True)
    registry.register("review_outcome_letter", review_outcome_letter, document=True)
    registry.register("direct_payment_letter", direct_payment_letter, document=True)
