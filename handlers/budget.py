"""Personal budgets: a Resource Allocation System (RAS), itemised and explained.

`personal_budget` turns assessed needs into an indicative annual budget: points per
needs domain, a deduction where a willing and able carer meets a need, points converted
to money (a price per point or bands), an optional carer support allocation
(`carer_support` = {level, source}: source "carers_assessment" — the level an eligible
carer's assessment recorded, the default — or "worker" — carer support needs the worker
recorded on the scoring form), and costed uplifts from the impact-assessment route. Every
step is returned, with plain-English lines for the budget letter, because statutory
guidance (11.24) requires the amount and how it was worked out to be transparent.

`check_budget_change` enforces that a review cannot cut a budget without a recorded
change in needs or circumstances.

Configuration (owned by process owners, not code): `processes/config/ras.json`, or another
`*.json` file in that folder named by the `config` parameter. ALL MONEY IS ANNUAL AND IN
POUNDS, in the configuration and in results. Results give money as decimal strings with
two places ("61000.00") so that no float rounding creeps into a stored record; amounts
are computed with `Decimal` and rounded to the penny (half up). Shape::

    {
      "name": "...", "version": "...", "description": "...",   # optional, recorded in results
      "currency": "GBP",
      "weeks_per_year": 52,                                     # optional, for the weekly figure
      "domains": {"personal_care": {"label": "...", "points": {"none": 0, "low": 5, ...}}, ...},
      "conversion": {"method": "price_per_point", "price_per_point": 1109.09091}
                 or {"method": "bands", "bands": [{"min_points": 0, "max_points": 9, "amount": 2000},
                                                  ..., {"min_points": 50, "max_points": null, "amount": 61000}]},
      "carer_deduction": {"percent": 50},
      "carer_support_allocation": {"add_to_personal_budget": true, "levels": {"none": 0, "low": 300, ...}},
      "approval_threshold": 30000                               # above this a manager approves; not a cap
    }

Handlers are pure: the only file read is the configuration, the clock is `ctx.now`, and the
result names the configuration file, version and SHA-256 so an auditor can tell later which
rules produced a budget even after the file has changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

from .config_files import cached

REPO_ROOT = Path(__file__).resolve().parent.parent
#: where RAS configuration files live; tests may point this elsewhere
CONFIG_DIR = REPO_ROOT / "processes" / "config"
DEFAULT_CONFIG = "ras.json"

PENNY = Decimal("0.01")
_TOP_KEYS = {
    "name",
    "version",
    "description",
    "currency",
    "weeks_per_year",
    "domains",
    "conversion",
    "carer_deduction",
    "carer_support_allocation",
    "approval_threshold",
}


# ---------------------------------------------------------------- numbers


def _decimal(value: Any, field: str) -> Decimal:
    # bool is an int in Python; a checkbox must never become 1 pound
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"{field} must be a number, got {type(value).__name__}")
    try:
        # str() first so a float arriving from JSON keeps its written digits, not its binary error
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{field} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{field} must be a finite number, got {value!r}")
    return number


def _amount(value: Any, field: str) -> Decimal:
    number = _decimal(value, field)
    if number < 0:
        raise ValueError(f"{field} must not be negative, got {value!r}")
    return number


def _pence(value: Decimal) -> Decimal:
    return value.quantize(PENNY, rounding=ROUND_HALF_UP)


def _out(value: Decimal) -> str:
    """Money as stored in a result: pounds, two places, as text."""
    return f"{_pence(value):.2f}"


def _gbp(value: Decimal) -> str:
    """Money as written in a letter."""
    return f"£{_pence(value):,.2f}"


def _points_text(value: int) -> str:
    return f"{value} point" if value == 1 else f"{value} points"


# ---------------------------------------------------------------- configuration


def _config_path(config: str | None) -> Path:
    name = DEFAULT_CONFIG if config is None else config
    # a bare file name only: the parameter comes from a diagram and must not reach other folders
    if not isinstance(name, str) or not name or Path(name).name != name or not name.endswith(".json"):
        raise ValueError(f"config must be the name of a .json file in processes/config, got {config!r}")
    return CONFIG_DIR / name


def load_config(config: str | None = None, *, shared: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and validate a RAS configuration; return it and a record of which file it was.

    Read again only when the file changes. Each call gets its own copy, except with `shared=True`, for a caller
    that only reads the configuration (the record of the file, which goes into a result, is still a copy)."""
    if shared:
        cfg, source = cached(_config_path(config), _read_config, share=True)
        return cfg, dict(source)
    return cached(_config_path(config), _read_config)


def _read_config(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"config: no RAS configuration file {path.name} in {CONFIG_DIR}") from None
    try:
        # Decimal from the start: a price per point like 1109.09091 must not pass through a float
        data = json.loads(raw, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ValueError(f"config: {path.name} is not valid JSON ({exc})") from None
    cfg = _validate_config(data)
    source = {
        "file": path.name,
        "name": cfg["name"],
        "version": cfg["version"],
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    return cfg, source


def _validate_config(data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError("config must be a JSON object")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        # a misspelt key (e.g. "aproval_threshold") would otherwise silently fall back to nothing
        raise ValueError(f"config: unknown key(s) {unknown}")
    for key in ("domains", "conversion", "carer_deduction", "approval_threshold"):
        if key not in data:
            raise ValueError(f"config.{key} is required")
    if data.get("currency", "GBP") != "GBP":
        raise ValueError("config.currency must be GBP")

    domains: dict[str, dict[str, Any]] = {}
    if not isinstance(data["domains"], Mapping) or not data["domains"]:
        raise ValueError("config.domains must be a non-empty object of domain -> {label, points}")
    for code, spec in data["domains"].items():
        where = f"config.domains.{code}"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("points"), Mapping) or not spec["points"]:
            raise ValueError(f"{where}.points must be a non-empty object of level -> points")
        points: dict[str, int] = {}
        for level, value in spec["points"].items():
            number = _amount(value, f"{where}.points.{level}")
            if number != number.to_integral_value():
                raise ValueError(f"{where}.points.{level} must be a whole number of points")
            points[level] = int(number)
        label = spec.get("label", code.replace("_", " ").capitalize())
        if not isinstance(label, str):
            raise ValueError(f"{where}.label must be text")
        domains[code] = {"label": label, "points": points}

    conversion = _validate_conversion(data["conversion"])

    deduction = data["carer_deduction"]
    if not isinstance(deduction, Mapping) or "percent" not in deduction:
        raise ValueError("config.carer_deduction must be an object with percent")
    percent = _amount(deduction["percent"], "config.carer_deduction.percent")
    if percent > 100:
        raise ValueError("config.carer_deduction.percent must be between 0 and 100")

    support = data.get("carer_support_allocation", {"levels": {}})
    if not isinstance(support, Mapping) or not isinstance(support.get("levels"), Mapping):
        raise ValueError("config.carer_support_allocation must be an object with levels")
    add_support = support.get("add_to_personal_budget", True)
    if not isinstance(add_support, bool):
        raise ValueError("config.carer_support_allocation.add_to_personal_budget must be true or false")
    support_levels = {
        level: _amount(v, f"config.carer_support_allocation.levels.{level}") for level, v in support["levels"].items()
    }

    weeks = _decimal(data.get("weeks_per_year", 52), "config.weeks_per_year")
    if weeks <= 0:
        raise ValueError("config.weeks_per_year must be positive")
    for key in ("name", "version"):
        if not isinstance(data.get(key, ""), str):
            raise ValueError(f"config.{key} must be text")

    return {
        "name": data.get("name", ""),
        "version": data.get("version", ""),
        "weeks_per_year": weeks,
        "domains": domains,
        "conversion": conversion,
        "carer_deduction_percent": percent,
        "carer_support_levels": support_levels,
        "carer_support_added": add_support,
        "approval_threshold": _amount(data["approval_threshold"], "config.approval_threshold"),
    }


def _validate_conversion(conv: Any) -> dict[str, Any]:
    if not isinstance(conv, Mapping):
        raise ValueError("config.conversion must be an object with method")
    method = conv.get("method")
    if method == "price_per_point":
        if "price_per_point" not in conv:
            raise ValueError("config.conversion.price_per_point is required for method price_per_point")
        return {
            "method": method,
            "price_per_point": _amount(conv["price_per_point"], "config.conversion.price_per_point"),
        }
    if method != "bands":
        raise ValueError(f"config.conversion.method must be price_per_point or bands, got {method!r}")
    bands = conv.get("bands")
    if not isinstance(bands, list) or not bands:
        raise ValueError("config.conversion.bands must be a non-empty list")
    checked: list[dict[str, Any]] = []
    expected_min = 0
    for i, band in enumerate(bands):
        where = f"config.conversion.bands[{i}]"
        if not isinstance(band, Mapping):
            raise ValueError(f"{where} must be an object with min_points, max_points and amount")
        lo = _amount(band.get("min_points"), f"{where}.min_points")
        # bands must tile the points line from 0 with no gap or overlap, or some score has no money
        if lo != expected_min:
            raise ValueError(
                f"{where}.min_points must be {expected_min} (bands start at 0 and must not gap or overlap)"
            )
        hi_raw = band.get("max_points")
        last = i == len(bands) - 1
        if hi_raw is None:
            if not last:
                raise ValueError(f"{where}.max_points may be null only in the last band")
            hi = None
        else:
            hi = _amount(hi_raw, f"{where}.max_points")
            if hi < lo or hi != hi.to_integral_value():
                raise ValueError(f"{where}.max_points must be a whole number not below min_points")
            expected_min = int(hi) + 1
        checked.append(
            {
                "min_points": int(lo),
                "max_points": None if hi is None else int(hi),
                "amount": _amount(band.get("amount"), f"{where}.amount"),
            }
        )
    return {"method": "bands", "bands": checked}


# ---------------------------------------------------------------- the calculation


def _score_domains(cfg: dict[str, Any], needs: Any) -> list[dict[str, Any]]:
    if not isinstance(needs, Mapping):
        raise ValueError(f"needs must be a mapping of domain -> {{level, met_by_carer}}, got {type(needs).__name__}")
    unknown = sorted(set(needs) - set(cfg["domains"]))
    if unknown:
        raise ValueError(f"needs: unknown domain(s) {unknown}; expected some of {sorted(cfg['domains'])}")
    percent: Decimal = cfg["carer_deduction_percent"]
    items = []
    for code, domain in cfg["domains"].items():
        where = f"needs.{code}"
        need = needs.get(code)
        if need is None:
            # an unscored domain scores nothing; it is listed so the letter shows it was not counted
            items.append(
                {
                    "domain": code,
                    "label": domain["label"],
                    "level": None,
                    "points_before": 0,
                    "met_by_carer": False,
                    "points_after": 0,
                    "reason": "no need recorded",
                }
            )
            continue
        if not isinstance(need, Mapping):
            raise ValueError(f"{where} must be an object with level and met_by_carer")
        level = need.get("level")
        if not isinstance(level, str) or level not in domain["points"]:
            raise ValueError(f"{where}.level must be one of {list(domain['points'])}, got {level!r}")
        met_by_carer = need.get("met_by_carer", False)
        if not isinstance(met_by_carer, bool):
            raise ValueError(f"{where}.met_by_carer must be true or false")
        note = need.get("carer_note", "")
        if not isinstance(note, str):
            raise ValueError(f"{where}.carer_note must be text")

        before = domain["points"][level]
        level_text = level.replace("_", " ")
        if met_by_carer and before and percent:
            # halves round in the person's favour: the deduction is rounded down, never up
            after = int((Decimal(before) * (100 - percent) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            reason = (
                f"{level_text} need, {_points_text(before)}; reduced by {percent.normalize():f}% to "
                f"{_points_text(after)} because a carer who is willing and able to help meets part of this need"
            )
            if note.strip():
                reason += f" ({note.strip()})"
        else:
            after = before
            reason = f"{level_text} need, {_points_text(before)}"
            if met_by_carer and before:
                reason += "; a carer helps with this need, but the carer deduction is 0%"
        items.append(
            {
                "domain": code,
                "label": domain["label"],
                "level": level,
                "points_before": before,
                "met_by_carer": met_by_carer,
                "points_after": after,
                "reason": reason,
            }
        )
    return items


def _convert(cfg: dict[str, Any], total: int) -> tuple[Decimal, dict[str, Any], str]:
    conv = cfg["conversion"]
    if conv["method"] == "price_per_point":
        price: Decimal = conv["price_per_point"]
        amount = _pence(total * price)
        line = (
            f"{_points_text(total)} × {_gbp(price) if price == _pence(price) else f'£{price:,f}'} a point "
            f"= {_gbp(amount)} a year. This is your indicative budget."
        )
        return amount, {"method": "price_per_point", "price_per_point": f"{price:f}"}, line
    for band in conv["bands"]:
        if total >= band["min_points"] and (band["max_points"] is None or total <= band["max_points"]):
            amount = _pence(band["amount"])
            span = (
                f"{band['min_points']} or more points"
                if band["max_points"] is None
                else f"{band['min_points']} to {band['max_points']} points"
            )
            line = (
                f"{_points_text(total)} falls in the band {span}, which gives {_gbp(amount)} a year. "
                "This is your indicative budget."
            )
            used = {
                "min_points": band["min_points"],
                "max_points": band["max_points"],
                "amount": _out(amount),
            }
            return amount, {"method": "bands", "band": used}, line
    raise ValueError(f"config.conversion.bands: no band covers {total} points")


def _uplifts(uplifts: Any, where_list: str = "uplifts") -> list[dict[str, Any]]:
    """Each uplift checked: {reason, amount (Decimal, more than zero), why (text, maybe ""), decided_at (or "")}."""
    if uplifts is None:
        return []
    if not isinstance(uplifts, list):
        raise ValueError(f"{where_list} must be a list of {{reason, amount}}")
    checked = []
    for i, up in enumerate(uplifts):
        where = f"{where_list}[{i}]"
        if not isinstance(up, Mapping):
            raise ValueError(f"{where} must be an object with reason and amount")
        reason = up.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{where}.reason must say what the extra money is for")
        amount = _pence(_decimal(up.get("amount"), f"{where}.amount"))
        # the impact-assessment route only adds: a cut has to go through check_budget_change
        if amount <= 0:
            raise ValueError(f"{where}.amount must be more than zero")
        why, decided_at = up.get("why") or "", up.get("decided_at") or ""
        if not isinstance(why, str) or not isinstance(decided_at, str):
            raise ValueError(f"{where}.why and {where}.decided_at must be text")
        checked.append({"reason": reason.strip(), "amount": amount, "why": why.strip(), "decided_at": decided_at})
    return checked


def _uplift_out(up: dict[str, Any]) -> dict[str, Any]:
    out = {"reason": up["reason"], "amount": _out(up["amount"])}
    if up.get("why"):
        out["why"] = up["why"]
    if up.get("decided_at"):
        out["decided_at"] = up["decided_at"]
    return out


#: what the worker decided about an uplift of the earlier budget (forms/impact_assessment.schema.json)
DECISIONS = ("carry", "change", "end")


def _decide_earlier(ctx: HandlerContext, previous: Any, decisions: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The earlier budget's uplifts as the worker decided them at the impact assessment: (the uplifts carried or
    changed, for this budget; {"kept", "changed", "ended"} for the comparison). Every earlier uplift must have a
    decision (the form refuses to go on without: engine/forms.py "x-decideEach"); none is dropped silently."""
    if not isinstance(decisions, list):
        raise ValueError("decisions must be a list of {reason, decision}")
    earlier = _uplifts(previous.get("uplifts") if isinstance(previous, Mapping) else None, "previous.uplifts")
    when = previous.get("decided_at") or "" if isinstance(previous, Mapping) else ""
    by_reason: dict[str, Mapping[str, Any]] = {}
    for i, d in enumerate(decisions):
        if not isinstance(d, Mapping) or not isinstance(d.get("reason"), str):
            raise ValueError(f"decisions[{i}] must be an object with reason and decision")
        if d.get("decision") not in DECISIONS:
            raise ValueError(f"decisions[{i}].decision must be one of {list(DECISIONS)}, got {d.get('decision')!r}")
        key = d["reason"].strip().casefold()
        if not any(up["reason"].casefold() == key for up in earlier):
            raise ValueError(f"decisions[{i}].reason “{d['reason']}” is not an uplift of the earlier budget")
        by_reason[key] = d
    carried: list[dict[str, Any]] = []
    result: dict[str, list[dict[str, Any]]] = {"kept": [], "changed": [], "ended": []}
    for up in earlier:
        d = by_reason.get(up["reason"].casefold())
        if d is None:
            raise ValueError(f"the earlier uplift “{up['reason']}” has no decision: carry it, change it or end it")
        up = {**up, "decided_at": up["decided_at"] or when}
        if d["decision"] == "carry":
            carried.append(up)
            result["kept"].append(_uplift_out(up))
        elif d["decision"] == "change":
            amount = _pence(_decimal(d.get("amount"), f"decisions “{up['reason']}”.amount"))
            if amount <= 0:
                raise ValueError(f"decisions “{up['reason']}”.amount must be more than zero: end the uplift instead")
            why = str(d.get("why_changed") or "").strip()
            changed = {"reason": up["reason"], "amount": amount, "why": why, "decided_at": ctx.now.isoformat()}
            carried.append(changed)
            result["changed"].append({**_uplift_out(changed), "previous_amount": _out(up["amount"])})
        else:
            result["ended"].append({**_uplift_out(up), "why_ended": str(d.get("why_ended") or "").strip()})
    return carried, result


#: where a carer support level came from -> how the letter names it
_CARER_SUPPORT_SOURCES = {
    "carers_assessment": "carer’s assessment level",
    "worker": "carer support needs recorded by your worker",
}


def personal_budget(
    ctx: HandlerContext,
    needs: dict[str, Any],
    carer_support: dict[str, Any] | None = None,
    uplifts: list[dict[str, Any]] | None = None,
    config: str | None = None,
    previous: dict[str, Any] | None = None,
    decisions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Calculate an itemised, explained annual personal budget from assessed needs.

    `previous` (at a reassessment): the budget decided before, {final_amount, uplifts?} and the recorded
    change in needs behind the reassessment (`change_in_needs`). The result's `comparison` sets the new
    budget beside the old, gives the recorded change behind a reduction, and says what became of each
    earlier uplift: kept (the same reason is among this budget's uplifts) or ended, so none is dropped
    without saying so.

    `decisions` (after the impact assessment at a reassessment): what the worker decided for each earlier uplift
    ({reason, decision: carry | change | end, amount and why_changed when changed, why_ended when ended}); then
    `uplifts` are only the new ones, the carried and changed earlier ones are added to them, and the comparison
    names those changed and ended with the worker's reasons. Every earlier uplift needs a decision."""
    cfg, source = load_config(config)
    items = _score_domains(cfg, needs)
    before = sum(i["points_before"] for i in items)
    total = sum(i["points_after"] for i in items)
    indicative, conversion, conversion_line = _convert(cfg, total)

    lines = [
        "Your needs were scored with the council’s Resource Allocation System"
        + (f" “{source['name']}”" if source["name"] else "")
        + (f" (version {source['version']})." if source["version"] else ".")
    ]
    lines += [f"{i['label']}: {i['reason']}." for i in items if i["level"] is not None]
    lines.append(f"Total: {_points_text(total)}.")
    # the letter must say how informal care affected the budget, even when it did not
    carer_items = [i for i in items if i["met_by_carer"] and i["points_after"] < i["points_before"]]
    if carer_items:
        names = ", ".join(i["label"].lower() for i in carer_items)
        lines.append(
            f"Help from your carer reduced your points by {before - total} (from {before} to {total}), "
            f"for {names}. Your eligibility was decided without counting this help."
        )
    else:
        lines.append("No reduction was made for help from a family member, friend or other carer.")
    lines.append(conversion_line)

    support_out: dict[str, Any] | None = None
    support_added = Decimal(0)
    if carer_support is not None:
        if not isinstance(carer_support, Mapping):
            raise ValueError("carer_support must be an object with level")
        level = carer_support.get("level")
        if not isinstance(level, str) or level not in cfg["carer_support_levels"]:
            raise ValueError(f"carer_support.level must be one of {list(cfg['carer_support_levels'])}, got {level!r}")
        source = carer_support.get("source", "carers_assessment")
        if source not in _CARER_SUPPORT_SOURCES:
            raise ValueError(f"carer_support.source must be one of {list(_CARER_SUPPORT_SOURCES)}, got {source!r}")
        amount = _pence(cfg["carer_support_levels"][level])
        added = cfg["carer_support_added"]
        support_out = {"level": level, "amount": _out(amount), "added_to_budget": added, "source": source}
        if added:
            support_added = amount
            if amount:
                lines.append(
                    f"{_gbp(amount)} a year is added to support your carer "
                    f"({_CARER_SUPPORT_SOURCES[source]}: {level.replace('_', ' ')})."
                )
        elif amount:
            lines.append(f"Your carer has a separate allocation of {_gbp(amount)} a year, not included below.")

    ups = [{**up, "decided_at": up["decided_at"] or ctx.now.isoformat()} for up in _uplifts(uplifts)]
    decided = None
    if decisions is not None:
        earlier_kept, decided = _decide_earlier(ctx, previous, decisions)
        new_reasons = {up["reason"].casefold() for up in ups}
        again = [up["reason"] for up in earlier_kept if up["reason"].casefold() in new_reasons]
        if again:
            raise ValueError(f"uplifts: “{again[0]}” is an uplift of the earlier budget: decide it there, not again")
        ups = earlier_kept + ups
    for up in ups:
        lines.append(f"Added because the indicative budget could not meet this need: {up['reason']}, "
                     f"{_gbp(up['amount'])} a year.")
    uplift_total = sum((up["amount"] for up in ups), Decimal(0))

    final = _pence(indicative + support_added + uplift_total)
    weekly = _pence(final / cfg["weeks_per_year"])
    threshold: Decimal = cfg["approval_threshold"]
    needs_approval = final > threshold
    lines.append(
        f"Your personal budget is {_gbp(final)} a year, about {_gbp(weekly)} a week "
        f"({_gbp(final)} ÷ {cfg['weeks_per_year'].normalize():f} weeks)."
    )
    if needs_approval:
        lines.append(
            f"Because it is more than {_gbp(threshold)} a year, a manager must approve it. "
            "This is a check, not a limit on your budget."
        )
    lines.append("If you think this amount is not enough to meet your needs, you can ask us to look at it again.")

    comparison = _compare(previous, final, [(up["reason"], up["amount"]) for up in ups], decided)
    if comparison:
        lines.append(comparison["line"])

    return {
        "config": source,
        "currency": "GBP",
        "period": "annual",
        "comparison": comparison,
        "calculated_at": ctx.now.isoformat(),
        "domains": items,
        "points_before_carer_deduction": before,
        "total_points": total,
        "carer_deduction_percent": f"{cfg['carer_deduction_percent'].normalize():f}",
        "conversion": conversion,
        "indicative_amount": _out(indicative),
        "carer_support": support_out,
        "uplifts": [_uplift_out(up) for up in ups],
        "uplifts_total": _out(uplift_total),
        "final_amount": _out(final),
        "weekly_equivalent": _out(weekly),
        "weeks_per_year": f"{cfg['weeks_per_year'].normalize():f}",
        "approval_threshold": _out(threshold),
        "needs_approval": needs_approval,
        "explanation": lines,
    }


def _compare(previous: Any, final: Decimal, ups: list[tuple[str, Decimal]],
             decided: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The new budget beside the one it replaces, for a reassessment's letter."""
    if previous is None:
        return None
    if not isinstance(previous, Mapping):
        raise ValueError("previous must be the budget decided before: {final_amount, uplifts, change_in_needs}")
    before = _pence(_amount(previous.get("final_amount"), "previous.final_amount"))
    change = previous.get("change_in_needs") or ""
    if not isinstance(change, str):
        raise ValueError("previous.change_in_needs must be text")
    change = change.strip()
    difference = final - before
    now_reasons = {reason.casefold() for reason, _ in ups}
    kept, changed, ended = [], [], []
    if decided is not None:  # the worker decided each earlier uplift at the impact assessment
        kept, changed, ended = decided["kept"], decided["changed"], decided["ended"]
    else:
        for up in _uplifts(previous.get("uplifts"), "previous.uplifts"):
            (kept if up["reason"].casefold() in now_reasons else ended).append(
                {"reason": up["reason"], "amount": _out(up["amount"])})
    if difference < 0:
        direction = "reduction"
        line = f"Your budget goes down from {_gbp(before)} to {_gbp(final)} a year, {_gbp(-difference)} less."
        line += (f" This is because of a change in your needs that we recorded: {change.rstrip('.')}."
                 if change else " Your needs were assessed again and now score less.")
    elif difference > 0:
        direction = "increase"
        line = f"Your budget goes up from {_gbp(before)} to {_gbp(final)} a year, {_gbp(difference)} more."
    else:
        direction = "no_change"
        line = f"Your budget stays at {_gbp(final)} a year."
    return {
        "previous_amount": _out(before),
        "difference": _out(difference),
        "direction": direction,
        "change_in_needs": change,
        "uplifts_kept": kept,
        "uplifts_changed": changed,
        "uplifts_ended": ended,
        "line": line,
    }


def check_budget_change(
    ctx: HandlerContext,
    previous_amount: Any,
    new_amount: Any,
    change_in_needs_recorded: bool,
    reason: str = "",
    config: str | None = None,
) -> dict[str, Any]:
    """Allow a reviewed budget only if a reduction rests on a recorded change in needs or circumstances.

    An increase to more than the approval threshold of the RAS configuration (`config`, default
    ras.json) is allowed but `needs_approval`: it takes effect only once a team manager approves
    it, as a new budget above the threshold would. Exactly at the threshold needs no approval."""
    previous = _pence(_amount(previous_amount, "previous_amount"))
    new = _pence(_amount(new_amount, "new_amount"))
    if not isinstance(change_in_needs_recorded, bool):
        raise ValueError("change_in_needs_recorded must be true or false")
    if not isinstance(reason, str):
        raise ValueError("reason must be text")
    reason = reason.strip()
    difference = new - previous
    cfg, source = load_config(config)
    threshold: Decimal = cfg["approval_threshold"]
    needs_approval = difference > 0 and new > threshold

    if difference > 0:
        allowed, direction = True, "increase"
        text = f"The budget goes up from {_gbp(previous)} to {_gbp(new)} a year; an increase is always allowed."
        if needs_approval:
            text += (f" Because it is more than {_gbp(threshold)} a year, a team manager must approve it "
                     "before it takes effect.")
    elif difference == 0:
        allowed, direction = True, "no_change"
        text = f"The budget stays at {_gbp(new)} a year."
    else:
        direction = "reduction"
        # statutory guidance ch.13: a review must not be used to cut a budget arbitrarily
        allowed = change_in_needs_recorded and bool(reason)
        if allowed:
            text = (
                f"The budget goes down from {_gbp(previous)} to {_gbp(new)} a year because of a recorded "
                f"change in needs or circumstances: {reason.rstrip('.')}."
            )
        elif change_in_needs_recorded:
            text = (
                f"The budget cannot be reduced from {_gbp(previous)} to {_gbp(new)} a year: a change in needs "
                "is marked as recorded but not described. Record what changed before reducing it."
            )
        else:
            text = (
                f"The budget cannot be reduced from {_gbp(previous)} to {_gbp(new)} a year without a recorded "
                "change in needs or circumstances. A review must not be used to cut a budget; if needs have "
                "changed, reassess them and record the change first."
            )
    return {
        "allowed": allowed,
        "direction": direction,
        "previous_amount": _out(previous),
        "new_amount": _out(new),
        "difference": _out(difference),
        "change_in_needs_recorded": change_in_needs_recorded,
        "reason": reason,
        "approval_threshold": _out(threshold),
        "needs_approval": needs_approval,
        "config": source,
        "checked_at": ctx.now.isoformat(),
        "explanation": text,
    }


def register(registry: HandlerRegistry) -> None:
    """Register the budget handlers under their diagram names."""
    registry.register("personal_budget", personal_budget)
    registry.register("check_budget_change", check_budget_change)
    registry.register("cost_support_plan", cost_support_plan)


# ---------------------------------------------------------------- the costed support plan

#: how a service in a plan is paid for (CLD delivery mechanism) -> how a page or letter names it
DELIVERY = {
    "direct_payment": "direct payment",
    "managed_account": "managed account",
    "council_commissioned": "council-commissioned",
}
#: the plan's money_management -> the delivery of a service that names none (plans written before services
#: named their own)
_DELIVERY_BY_MONEY_MANAGEMENT = {
    "direct_payment": "direct_payment",
    "managed_account": "managed_account",
    "council_managed": "council_commissioned",
}
#: the support plan's "Type of service" for each service (forms/support_plan.schema.json service_component): the
#: Service_Component values of the CLD return (handlers/cld.py SPEC_SERVICE_COMPONENT) that a long-term plan's service
#: can be, and "other" (none of these: kept, never coded). A plan written before the question has none.
SERVICE_COMPONENTS = ("home_support", "supported_living", "extra_care_housing", "shared_lives", "equipment",
                      "short_term_residential", "short_term_nursing", "other")
#: a service's unit -> (how it is named, the CLD cost frequency)
UNITS = {
    "hour": ("hour", "Hourly"),
    "visit": ("visit", "Per visit"),
    "day": ("day", "Daily"),
    "night": ("night", "Daily"),
    "week": ("week", "Weekly"),
    "session": ("session", "Per session"),
}
#: nobody buys more than this many units of one service a week (168 hours); more is a typing mistake
MAX_UNITS_PER_WEEK = Decimal(168)
#: no single unit of care costs this much; more is a typing mistake (pence typed as pounds)
MAX_UNIT_COST = Decimal(10000)


def _plan_services(outcomes: Any, money_management: Any) -> list[dict[str, Any]]:
    if not isinstance(outcomes, list):
        raise ValueError(f"outcomes must be a list of the plan's outcomes, got {type(outcomes).__name__}")
    default_delivery = _DELIVERY_BY_MONEY_MANAGEMENT.get(money_management or "", "council_commissioned")
    services = []
    for i, outcome in enumerate(outcomes):
        where = f"outcomes[{i}]"
        if not isinstance(outcome, Mapping):
            raise ValueError(f"{where} must be an object")
        label = str(outcome.get("label") or f"Outcome {i + 1}")
        provider = outcome.get("provider") or outcome.get("provided_by") or ""
        delivery = outcome.get("delivery") or default_delivery
        if delivery not in DELIVERY:
            raise ValueError(f"{where}.delivery must be one of {list(DELIVERY)}, got {delivery!r}")
        component = outcome.get("service_component")
        if component is not None and component not in SERVICE_COMPONENTS:
            raise ValueError(f"{where}.service_component ({label}) must be one of {list(SERVICE_COMPONENTS)}, "
                             f"got {component!r}")
        unit_cost, units = outcome.get("unit_cost"), outcome.get("units_per_week")
        if unit_cost is not None or units is not None:
            if unit_cost is None or units is None:
                raise ValueError(f"{where} ({label}): give both the unit cost and the planned units a week")
            cost = _amount(unit_cost, f"{where}.unit_cost")
            count = _amount(units, f"{where}.units_per_week")
            if cost > MAX_UNIT_COST:
                raise ValueError(f"{where}.unit_cost ({label}): {_gbp(cost)} is more than {_gbp(MAX_UNIT_COST)} "
                                 "for one unit; check the amount is in pounds")
            if count > MAX_UNITS_PER_WEEK:
                raise ValueError(f"{where}.units_per_week ({label}): {count:f} is more than the "
                                 f"{MAX_UNITS_PER_WEEK:f} hours in a week")
            unit = outcome.get("unit") or "hour"
            if unit not in UNITS:
                raise ValueError(f"{where}.unit must be one of {list(UNITS)}, got {unit!r}")
            weekly = _pence(cost * count)
            line = (f"{label}: {count.normalize():f} {UNITS[unit][0]}{'' if count == 1 else 's'} a week "
                    f"at {_gbp(cost)} = {_gbp(weekly)} a week")
            costed = {"unit": unit, "unit_cost": _out(cost), "units_per_week": f"{count.normalize():f}",
                      "cost_frequency": UNITS[unit][1]}
        elif outcome.get("weekly_cost") is not None:  # plans written before services had unit costs
            weekly = _pence(_amount(outcome["weekly_cost"], f"{where}.weekly_cost"))
            line = f"{label}: {_gbp(weekly)} a week"
            costed = {"unit": "week", "unit_cost": _out(weekly), "units_per_week": "1", "cost_frequency": "Weekly"}
        else:
            weekly = Decimal(0)
            line = f"{label}: no cost to the budget"
            costed = {"unit": None, "unit_cost": None, "units_per_week": None, "cost_frequency": None}
        if provider:
            line += f" ({provider}, {DELIVERY[delivery]})" if weekly else f" ({provider})"
        elif weekly:
            line += f" ({DELIVERY[delivery]})"
        services.append({"label": label, "provider": provider, "delivery": delivery, **costed,
                         "weekly_cost": _out(weekly), "line": line + "."})
        if component is not None:  # the plan's "Type of service" (plans written before it was asked have none)
            services[-1]["service_component"] = component
    return services


def cost_support_plan(
    ctx: HandlerContext,
    outcomes: list[dict[str, Any]],
    budget: dict[str, Any],
    money_management: str | None = None,
    financial_assessment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The support plan's weekly cost, service by service, against the personal budget's weekly amount.

    A plan costing more than the budget (`shortfall`) cannot be signed off: the worker changes the plan
    or the budget is decided again. A surplus is shown. The person's weekly contribution is the
    financial assessment's assessed charge, never more than the plan's cost (Care Act s.14(7)); without
    a financial assessment on the case it is not known yet and the result says so."""
    if not isinstance(budget, Mapping):
        raise ValueError("budget must be the personal budget (final_amount, weekly_equivalent)")
    budget_weekly = _pence(_amount(budget.get("weekly_equivalent", budget.get("weekly_amount")),
                                   "budget.weekly_equivalent"))
    services = _plan_services(outcomes, money_management)
    cost = sum((Decimal(s["weekly_cost"]) for s in services), Decimal(0))
    difference = budget_weekly - cost
    shortfall = difference < 0
    if shortfall:
        message = (f"The plan costs {_gbp(cost)} a week but the personal budget is {_gbp(budget_weekly)} a week: "
                   f"{_gbp(-difference)} a week more than the budget. Change the plan, or decide the budget again, "
                   "before it is signed off.")
    elif difference:
        message = (f"The plan costs {_gbp(cost)} a week, within the personal budget of {_gbp(budget_weekly)} a week. "
                   f"{_gbp(difference)} a week of the budget is not used by this plan.")
    else:
        message = f"The plan costs {_gbp(cost)} a week, exactly the personal budget of {_gbp(budget_weekly)} a week."

    contribution: dict[str, Any] | None = None
    if financial_assessment:
        if not isinstance(financial_assessment, Mapping):
            raise ValueError("financial_assessment must be the financial assessment's result")
        from .charging import pays_full_cost_whatever_it_costs  # charging imports this module's money helpers

        full_cost = pays_full_cost_whatever_it_costs(financial_assessment)
        assessed = (cost if full_cost else
                    _pence(_amount(financial_assessment.get("assessed_weekly_charge"),
                                   "financial_assessment.assessed_weekly_charge")))
        pays = min(assessed, cost)  # never more than the cost of the support
        contribution = {
            "assessed_weekly_charge": _out(assessed),
            "weekly_contribution": _out(pays),
            "council_weekly": _out(cost - pays),
            "capped_at_cost": assessed > cost,
            "full_cost": full_cost,
        }
        if full_cost:
            message += f" The person pays the full cost, {_gbp(pays)} a week."
        elif assessed > cost:
            message += (f" The financial assessment allows a charge of {_gbp(assessed)} a week, but a person "
                        f"never pays more than their support costs: the contribution is {_gbp(pays)} a week and "
                        f"the council pays {_gbp(cost - pays)}.")
        else:
            message += f" The person pays {_gbp(pays)} a week and the council pays {_gbp(cost - pays)}."
    else:
        message += " The person's contribution is not known yet: the financial assessment is under way."
    return {
        "services": services,
        "weekly_cost": _out(cost),
        "budget_weekly": _out(budget_weekly),
        "difference": _out(difference),
        "shortfall": shortfall,
        "shortfall_amount": _out(-difference) if shortfall else "0.00",
        "surplus_amount": _out(difference) if difference > 0 else "0.00",
        "contribution": contribution,
        "costed_at": ctx.now.isoformat(),
        "message": message,
    }
