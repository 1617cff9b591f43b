"""The letter after a financial assessment: what the person pays each week, and how it was worked out.

`financial_assessment_letter(ctx, person, assessment)` takes the result of the `financial_assessment`
handler (handlers/charging.py, contract C1 in the issue 11 notes) and renders
`templates/financial_assessment.txt.j2` with `handlers.letters._render`: the weekly amount the person pays,
what the council pays when the cost of their support is known, each step of the calculation with its
explanation (income not counted is a step, with why; each minimum income guarantee amount says whether it is the
national one for the year or the council's own, and any top-up), the year of the national figures and whether the
council's own minimum income guarantee was used, and how to ask for
the assessment to be looked at again. The figures' full source stays on the case record, not in the letter.
It is a document handler: the engine files the letter on the case. Nothing here reads the clock (the
letter is dated `ctx.now`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

from . import letters
from .charging import year_in_words

ROUTES = ("full", "light_touch", "declined")


def _amount(value: Any, where: str) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"financial assessment letter: {where} must be an amount of money, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"financial assessment letter: {where} must be an amount of money, got {value!r}")
    return amount


def financial_assessment_letter(ctx: HandlerContext, person: dict[str, Any], assessment: dict[str, Any]
                                ) -> dict[str, Any]:
    """The outcome of the financial assessment, item by item."""
    if not isinstance(assessment, dict):
        raise ValueError("financial assessment letter: assessment must be the financial assessment's result, got "
                         f"{type(assessment).__name__}")
    route = assessment.get("route")
    if route not in ROUTES:
        raise ValueError(f"financial assessment letter: assessment.route must be one of {', '.join(ROUTES)}, "
                         f"got {route!r}")
    full_cost = bool(assessment.get("full_cost"))
    contribution = assessment.get("weekly_contribution")
    if contribution is None and not full_cost:
        raise ValueError("financial assessment letter: assessment.weekly_contribution is missing, and the person "
                         "does not pay the full cost")
    # the full cost before the support is costed has no amount yet
    pays = None if contribution is None else _amount(contribution, "assessment.weekly_contribution")
    cost = assessment.get("weekly_cost")
    council_pays = None
    if cost not in (None, "") and pays is not None:
        council_pays = str(max(_amount(cost, "assessment.weekly_cost") - pays, Decimal("0")))
    steps = [s for s in assessment.get("steps") or [] if isinstance(s, dict)]
    # the council's own minimum income guarantee (its own amount or a top-up) is named beside the national figures
    parts = [p for p in assessment.get("mig_parts") or [] if isinstance(p, dict)]
    council_mig = any(p.get("source") == "council" or _amount(p.get("top_up") or "0", "assessment.mig_parts.top_up")
                      for p in parts)
    return letters._render(
        ctx, "financial_assessment", "financial_assessment.txt.j2", "Your financial assessment", person,
        route=route, full_cost=full_cost, pays_nothing=pays == 0,
        weekly_contribution=None if pays is None else str(pays), weekly_cost=None if council_pays is None else cost,
        council_pays=council_pays, steps=steps, council_mig=council_mig,
        reason=str(assessment.get("reason") or ""), year=year_in_words(str(assessment.get("year") or "")))


def reablement_charge_letter(ctx: HandlerContext, person: dict[str, Any], reablement_charging: dict[str, Any],
                             financial_assessment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The letter telling the person, when their reablement is extended past its free weeks, that from today they
    may pay towards it (processes/reablement.bpmn "Tell the person about the charge"): what the financial
    assessment already on the case says they pay, or that the finance team will work it out first. Sent once."""
    charging = letters._require(reablement_charging, "reablement_charging")
    if charging.get("charged") is not True:
        raise ValueError("reablement_charging.charged must be true: a free extension needs no charging letter")
    free = charging.get("free_weeks")
    if isinstance(free, bool) or not isinstance(free, int) or free < 6:
        raise ValueError(f"reablement_charging.free_weeks must be a whole number of weeks from 6, got {free!r}")
    assessed = financial_assessment if isinstance(financial_assessment, dict) else {}
    weekly, outcome = None, "to_assess"  # no financial assessment's result yet: the finance team starts one
    if assessed.get("full_cost") is True:
        outcome = "full_cost"
    elif assessed.get("assessed_weekly_charge") not in (None, ""):
        charge = _amount(assessed["assessed_weekly_charge"], "financial_assessment.assessed_weekly_charge")
        outcome, weekly = ("nothing", None) if charge == 0 else ("weekly", str(charge))
    return letters._render(
        ctx, "reablement_charge", "reablement_charge.txt.j2", "Paying towards your reablement", person,
        free_weeks=free, outcome=outcome, weekly=weekly)


def register(registry: HandlerRegistry) -> None:
    registry.register("financial_assessment_letter", financial_assessment_letter, document=True)
    registry.register("reablement_charge_letter", reablement_charge_letter, document=True)
