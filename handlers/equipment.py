"""Equipment, telecare and minor adaptations (processes/equipment.bpmn): what is free, and the letter.

The Care and Support (Charging and Assessment of Resources) Regulations 2014, reg 3(2)(a) and
3(3): a council must not charge for community equipment (aids) or for a minor adaptation — an
adaptation costing the local authority £1,000 or less. `equipment_charges` sorts the items an
occupational therapist recommends: every aid (equipment, telecare equipment) is free whatever
it costs; an adaptation is free up to the free limit (processes/config/council.json
`minor_adaptation_free_limit`, £1,000 by law; a council may set it higher, never lower); an
adaptation costing more is not a minor adaptation, so a team manager decides on it and a
financial assessment works out what the person pays. The limit used is in the handler's
recorded output.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

from . import letters

KINDS = ("equipment", "telecare", "minor_adaptation")
KIND_TEXT = {"equipment": "Equipment", "telecare": "Telecare", "minor_adaptation": "Adaptation"}
LEGAL_FREE_LIMIT = Decimal("1000.00")  # reg 3(3): "minor" means costing £1,000 or less


def _money(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"{where} must be an amount in pounds, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{where} must be an amount in pounds, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{where} must be an amount in pounds, 0 or more, got {value!r}")
    return amount.quantize(Decimal("0.01"))


def free_limit() -> Decimal:
    """The council's free limit for an adaptation (council.json), never below the legal £1,000."""
    raw = letters.load_council().get("minor_adaptation_free_limit", str(LEGAL_FREE_LIMIT))
    limit = _money(raw, "council.json minor_adaptation_free_limit")
    if limit < LEGAL_FREE_LIMIT:
        raise ValueError(f"council.json minor_adaptation_free_limit must be at least £1,000 (reg 3(3)), got {raw!r}")
    return limit


def equipment_charges(ctx: HandlerContext, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Which recommended items are free and which adaptations need a decision.

    `items`: [{kind: equipment|telecare|minor_adaptation, description, cost}] (cost in pounds).
    Returns {adaptations_over_the_free_limit, free_items (each "description (£cost)", for the pages),
    free_limit, total_cost, needs_approval, telecare (any telecare), items: [... with cost as "0.00",
    free (bool) and why], over_limit (descriptions of adaptations over it)}.
    """
    if not isinstance(items, list) or not items:
        raise ValueError("items must be a list of at least one recommended item")
    limit = free_limit()
    out, over, total = [], [], Decimal("0.00")
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object with kind, description and cost")
        kind = item.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        description = item.get("description")
        if not isinstance(description, str) or not description.strip():
            raise ValueError(f"{where}.description must say what the item is")
        cost = _money(item.get("cost"), f"{where}.cost")
        total += cost
        if kind != "minor_adaptation":
            free, why = True, "community equipment is free (reg 3(2)(a))"
        elif cost <= limit:
            free, why = True, f"an adaptation costing {letters.money(limit)} or less is free (reg 3(3))"
        else:
            free, why = False, f"costs more than {letters.money(limit)}: a team manager decides and a financial " \
                               "assessment works out what the person pays"
            over.append(description.strip())
        out.append({"kind": kind, "description": description.strip(), "cost": str(cost), "free": free, "why": why})
    def listed(free: bool) -> str:
        return "; ".join(f"{i['description']} ({letters.money(i['cost'])})" for i in out if i["free"] is free)

    # the plain-text lines first: the team manager's and finance's pages show them above their questions
    return {"adaptations_over_the_free_limit": listed(False) or "None", "free_items": listed(True) or "None",
            "free_limit": str(limit), "total_cost": str(total), "needs_approval": bool(over),
            "telecare": any(i["kind"] == "telecare" for i in out), "items": out, "over_limit": over}


def equipment_letter(ctx: HandlerContext, person: dict[str, Any], charges: dict[str, Any],
                     delivered_on: str | None = None, decision: dict[str, Any] | None = None,
                     dfg_referral: bool = False) -> dict[str, Any]:
    """What was provided and what it costs the person.

    `charges`: `equipment_charges`'s result; `decision` (only when an adaptation was over the free
    limit): {approved, reason, contribution (pounds, when approved)}; `dfg_referral`: the person
    was told to apply for a Disabled Facilities Grant for a major adaptation; `delivered_on`: the
    day the items were fitted (None only when nothing is provided: the only item was refused).
    """
    charges = letters._require(charges, "charges")
    items = charges.get("items")
    if not isinstance(items, list) or not items:
        raise ValueError("charges.items must list the items recommended")
    if charges.get("needs_approval"):
        decision = letters._require(decision, "decision")
        if not isinstance(decision.get("approved"), bool):
            raise ValueError(f"decision.approved must be true or false, got {decision.get('approved')!r}")
        if not isinstance(decision.get("reason"), str) or not decision["reason"].strip():
            raise ValueError("decision.reason must give the team manager's reasons")
        if decision["approved"]:
            contribution = _money(decision.get("contribution"), "decision.contribution")
            decision = {**decision, "contribution": str(contribution)}
    else:
        decision = None
    provided = [i for i in items if i.get("free") or (decision and decision["approved"])]
    refused = [i for i in items if not i.get("free") and not (decision and decision["approved"])]
    if provided:
        if delivered_on is None:
            raise ValueError("delivered_on must give the day the items were delivered and fitted")
        letters.long_date(delivered_on)  # a clear error for a date that is not one
    return letters._render(
        ctx, "equipment", "equipment.txt.j2", "Your equipment and adaptations", person,
        provided=provided, refused=refused, decision=decision, delivered_on=delivered_on,
        free_limit=charges.get("free_limit", str(LEGAL_FREE_LIMIT)), telecare=bool(charges.get("telecare")),
        dfg_referral=bool(dfg_referral), kind_text=KIND_TEXT,
    )


def register(registry: HandlerRegistry) -> None:
    registry.register("equipment_charges", equipment_charges)
    registry.register("equipment_letter", equipment_letter, document=True)
