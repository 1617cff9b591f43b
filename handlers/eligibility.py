"""Care Act eligibility decisions, computed and explained.

Two handlers, one per regulation of the Care and Support (Eligibility Criteria)
Regulations 2015:

* `adult_eligibility` (reg 2): (a) needs arise from or are related to a physical or
  mental impairment or illness; (b) as a result the adult is unable to achieve two or
  more of ten outcomes; (c) as a consequence there is, or is likely to be, a significant
  impact on wellbeing. Where the needs fluctuate, the decision says over what period the
  adult's circumstances were considered (reg 2(4)), and the worker must give that period.
* `carer_eligibility` (reg 3): (a) needs arise from providing necessary care; (b) the
  carer's health is, or is at risk of, deteriorating, or the carer is unable to
  achieve any one of eight outcomes; (c) significant impact on wellbeing.

The rule-based parts (counting outcomes, combining the conditions) are computed here.
"Significant impact on wellbeing" is a professional judgement: the worker records it
with a reason and the handler only checks that it was recorded, never infers it.

Handlers are pure: they read no clock but `ctx.now` and return everything they decide,
including a plain-English paragraph that can go straight into the decision letter.
Invalid input raises `ValueError` naming the field, so the engine raises an incident
the worker can fix instead of recording a decision built on a bad form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

# --- reg 2(2): the ten adult outcomes (wording from the operating model, section 2) ---
ADULT_OUTCOMES: dict[str, str] = {
    "managing_nutrition": "managing and maintaining nutrition",
    "personal_hygiene": "maintaining personal hygiene",
    "toilet_needs": "managing toilet needs",
    "being_clothed": "being appropriately clothed",
    "using_home_safely": "being able to make use of the home safely",
    "habitable_home": "maintaining a habitable home environment",
    "relationships": "developing and maintaining family or other personal relationships",
    "work_training_education_volunteering": "accessing and engaging in work, training, education or volunteering",
    "community_facilities": (
        "making use of necessary facilities or services in the local community "
        "including public transport and recreational facilities"
    ),
    "caring_for_child": "carrying out any caring responsibilities for a child",
}

# --- reg 3(2): the eight carer outcomes ---
CARER_OUTCOMES: dict[str, str] = {
    "caring_for_child": "carrying out any caring responsibilities for a child",
    "caring_for_others": "providing care to other people you care for",
    "habitable_home": "maintaining a habitable home environment",
    "nutrition": "managing and maintaining nutrition",
    "relationships": "developing and maintaining family or other personal relationships",
    "work_training_education_volunteering": "engaging in work, training, education or volunteering",
    "community_facilities": "making use of necessary facilities or services in the local community",
    "recreational_activities": "engaging in recreational activities",
}

# --- what "unable to achieve" means: reg 2(3) for adults (phrased to follow "you ...") ---
ADULT_WAYS: dict[str, str] = {
    "needs_assistance_incl_prompting": "cannot do this without help, including prompting",
    "significant_pain_distress_anxiety": "can only do this with significant pain, distress or anxiety",
    "endangers_health_safety": "can do this, but it puts your or others' health or safety at risk",
    "takes_significantly_longer": "can do this, but it takes significantly longer than would normally be expected",
}

# reg 3(3) for carers has no "takes significantly longer" limb, so it is not accepted here:
# recording it would make a carer look eligible on a ground the law does not give.
CARER_WAYS: dict[str, str] = {
    "needs_assistance_incl_prompting": "cannot do this without help",
    "significant_pain_distress_anxiety": "can only do this with significant pain, distress or anxiety",
    "endangers_health_safety": "can do this, but it puts your or others' health or safety at risk",
}

# --- Care Act 2014 s.1(2): the areas of wellbeing an impact is recorded against ---
WELLBEING_AREAS: dict[str, str] = {
    "personal_dignity": "personal dignity (including being treated with respect)",
    "health_and_emotional_wellbeing": "physical and mental health and emotional wellbeing",
    "protection_from_abuse_and_neglect": "protection from abuse and neglect",
    "control_over_day_to_day_life": "control over day-to-day life",
    "participation_in_work_education_training_recreation": "participation in work, education, training or recreation",
    "social_and_economic_wellbeing": "social and economic wellbeing",
    "domestic_family_personal_relationships": "domestic, family and personal relationships",
    "suitability_of_living_accommodation": "suitability of living accommodation",
    "contribution_to_society": "contribution to society",
}

ADULT_MIN_OUTCOMES = 2  # reg 2(1)(b): "two or more"
CARER_MIN_OUTCOMES = 1  # reg 3(1)(b)(ii): "any one"


# ---------------------------------------------------------------- validation


def _require_bool(value: Any, field: str) -> bool:
    # bool only: a form that sends "no" must not count as True
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false, got {type(value).__name__}")
    return value


def _require_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty text explaining the decision")
    return value.strip()


def _validate_outcomes(
    outcomes: Any, known: Mapping[str, str], ways_allowed: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Check the outcome records and return them in regulation order with their labels.

    Every outcome must be recorded, so the decision shows that each one was considered.
    """
    if not isinstance(outcomes, Mapping):
        raise ValueError(f"outcomes must be a mapping of outcome code to record, got {type(outcomes).__name__}")
    unknown = sorted(set(outcomes) - set(known))
    if unknown:
        raise ValueError(f"outcomes: unknown outcome code(s) {unknown}; expected {sorted(known)}")
    missing = [code for code in known if code not in outcomes]
    if missing:
        raise ValueError(f"outcomes: no record for {missing}; every outcome must be considered")

    checked: list[dict[str, Any]] = []
    for code, label in known.items():
        rec = outcomes[code]
        where = f"outcomes.{code}"
        if not isinstance(rec, Mapping):
            raise ValueError(f"{where} must be a mapping with unable, ways and reason")
        unable = _require_bool(rec.get("unable"), f"{where}.unable")
        ways = rec.get("ways", [])
        if not isinstance(ways, list) or not all(isinstance(w, str) for w in ways):
            raise ValueError(f"{where}.ways must be a list of codes")
        bad = [w for w in ways if w not in ways_allowed]
        if bad:
            raise ValueError(f"{where}.ways: unknown way(s) {bad}; expected some of {sorted(ways_allowed)}")
        # "unable" is defined by the ways; the two must agree or the record is contradictory
        if unable and not ways:
            raise ValueError(f"{where}: recorded as unable but no way of being unable is given in ways")
        if ways and not unable:
            raise ValueError(f"{where}: ways {ways} are given but unable is false; each way means unable")
        reason = rec.get("reason", "")
        if not isinstance(reason, str):
            raise ValueError(f"{where}.reason must be text")
        if unable:
            # the letter must say why; a bare tick box is not a reasoned decision
            reason = _require_text(reason, f"{where}.reason")
        checked.append(
            {
                "code": code,
                "label": label,
                "unable": unable,
                "ways": list(dict.fromkeys(ways)),
                "reason": reason.strip(),
            }
        )
    return checked


def _validate_wellbeing(wellbeing_impact: Any) -> dict[str, Any]:
    if not isinstance(wellbeing_impact, Mapping):
        raise ValueError("wellbeing_impact must be a mapping with significant, reason and areas")
    significant = _require_bool(wellbeing_impact.get("significant"), "wellbeing_impact.significant")
    reason = _require_text(wellbeing_impact.get("reason"), "wellbeing_impact.reason")
    areas = wellbeing_impact.get("areas", [])
    if not isinstance(areas, list) or not all(isinstance(a, str) for a in areas):
        raise ValueError("wellbeing_impact.areas must be a list of wellbeing area codes")
    bad = [a for a in areas if a not in WELLBEING_AREAS]
    if bad:
        raise ValueError(f"wellbeing_impact.areas: unknown area(s) {bad}; expected some of {sorted(WELLBEING_AREAS)}")
    if significant and not areas:
        # a significant impact is an impact on something: s.1(2) names what
        raise ValueError("wellbeing_impact.areas: a significant impact must name at least one wellbeing area")
    return {"significant": significant, "reason": reason, "areas": list(dict.fromkeys(areas))}


# ---------------------------------------------------------------- explanation helpers


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _describe_unable(outcome: dict[str, Any], ways_text: Mapping[str, str]) -> str:
    how = "; ".join(ways_text[w] for w in outcome["ways"])
    return f"{outcome['label']} (you {how}: {outcome['reason'].rstrip('.')})"


def _wellbeing_condition(wellbeing: dict[str, Any]) -> dict[str, Any]:
    areas = [WELLBEING_AREAS[a] for a in wellbeing["areas"]]
    if wellbeing["significant"]:
        text = (
            f"Your assessor judged that there is, or is likely to be, a significant impact on your "
            f"wellbeing, in particular on {_join(areas)}: {_sentence(wellbeing['reason'])}"
        )
    else:
        text = (
            "Your assessor judged that there is not a significant impact on your wellbeing: "
            f"{_sentence(wellbeing['reason'])}"
        )
    return {
        "met": wellbeing["significant"],
        "reason": wellbeing["reason"],
        "areas": wellbeing["areas"],
        "explanation": text,
    }


def _outcome_list(checked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(o) for o in checked]


def _validate_fluctuation(fluctuation: Any) -> dict[str, Any] | None:
    """reg 2(4): where the level of needs fluctuates, the circumstances over a period long enough to
    establish the level of need are taken into account. None: the question was not answered."""
    if fluctuation is None:
        return None
    if not isinstance(fluctuation, Mapping):
        raise ValueError("fluctuation must be a mapping with fluctuate, period and pattern")
    fluctuates = _require_bool(fluctuation.get("fluctuate"), "fluctuation.fluctuate")
    if not fluctuates:
        return {"fluctuate": False, "period": None, "pattern": None}
    period = fluctuation.get("period")
    if not isinstance(period, str) or not period.strip():
        raise ValueError("fluctuation.period: the needs fluctuate, so give the period over which the person's "
                         "circumstances were considered (reg 2(4))")
    pattern = fluctuation.get("pattern") or ""
    if not isinstance(pattern, str):
        raise ValueError("fluctuation.pattern must be text")
    return {"fluctuate": True, "period": period.strip(), "pattern": pattern.strip() or None}


def _fluctuation_text(fluctuation: dict[str, Any] | None) -> str | None:
    if not fluctuation or not fluctuation["fluctuate"]:
        return None
    how = f" ({fluctuation['pattern'].rstrip('.')})" if fluctuation["pattern"] else ""
    return (f"Your needs vary over time{how}. To judge your level of need accurately we considered your "
            f"circumstances over {fluctuation['period'].rstrip('.')}, not just on the day of the assessment.")


# ---------------------------------------------------------------- handlers


def adult_eligibility(
    ctx: HandlerContext,
    needs_from_impairment: bool,
    outcomes: dict[str, Any],
    wellbeing_impact: dict[str, Any],
    fluctuation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide reg 2 eligibility for an adult and explain the decision.

    `needs_from_impairment`: whether the needs arise from or are related to a physical or mental
    impairment or illness (reg 2(1)(a)). `fluctuation` (optional): {fluctuate, period, pattern} —
    where needs fluctuate, the period over which the circumstances were considered (reg 2(4))."""
    a_met = _require_bool(needs_from_impairment, "needs_from_impairment")
    checked = _validate_outcomes(outcomes, ADULT_OUTCOMES, ADULT_WAYS)
    wellbeing = _validate_wellbeing(wellbeing_impact)
    fluctuating = _validate_fluctuation(fluctuation)

    unable = [o for o in checked if o["unable"]]
    b_met = len(unable) >= ADULT_MIN_OUTCOMES
    eligible = a_met and b_met and wellbeing["significant"]

    a_text = (
        "Your needs arise from or are related to a physical or mental impairment or illness."
        if a_met
        else "Your needs do not arise from and are not related to a physical or mental impairment or illness, "
        "which the regulations require."
    )
    total = len(ADULT_OUTCOMES)
    if unable:
        listed = _join([_describe_unable(o, ADULT_WAYS) for o in unable])
        b_text = f"You are unable to achieve {len(unable)} of the {total} outcomes in the regulations: {listed}."
    else:
        b_text = f"You are able to achieve all {total} outcomes in the regulations."
    if not b_met:
        b_text += f" At least {ADULT_MIN_OUTCOMES} are needed to be eligible."
    conditions = {
        "a": {"met": a_met, "explanation": a_text},
        "b": {
            "met": b_met,
            "outcomes_unable": [o["code"] for o in unable],
            "count": len(unable),
            "required": ADULT_MIN_OUTCOMES,
            "explanation": b_text,
        },
        "c": _wellbeing_condition(wellbeing),
    }

    failed = [k for k in ("a", "b", "c") if not conditions[k]["met"]]
    opening = (
        "You are eligible for care and support under the Care Act 2014."
        if eligible
        else "You are not eligible for care and support under the Care Act 2014 because "
        + _join([_adult_failure(k, len(unable)) for k in failed])
        + "."
    )
    explanation = " ".join(
        [
            opening,
            a_text,
            *filter(None, [_fluctuation_text(fluctuating)]),
            b_text,
            conditions["c"]["explanation"],
            # the law requires this order: eligibility first, carers' help only in the budget
            "This decision does not take into account any care that a family member, friend or other "
            "carer already gives you; help from a carer who is willing and able to continue is "
            "considered later, when your personal budget is worked out.",
        ]
    )
    return {
        "eligible": eligible,
        "regulation": "Care and Support (Eligibility Criteria) Regulations 2015, regulation 2",
        "decided_at": ctx.now.isoformat(),
        "conditions": conditions,
        "outcomes": _outcome_list(checked),
        "fluctuation": fluctuating,
        "explanation": explanation,
    }


def _adult_failure(condition: str, count: int) -> str:
    if condition == "a":
        return "your needs do not arise from and are not related to a physical or mental impairment or illness"
    if condition == "b":
        if count == 0:
            return "you are able to achieve all of the outcomes in the regulations"
        return (
            f"you are unable to achieve only {count} of the outcomes in the regulations, "
            f"and at least {ADULT_MIN_OUTCOMES} are needed"
        )
    return "there is not a significant impact on your wellbeing"


def carer_eligibility(
    ctx: HandlerContext,
    needs_from_caring: bool,
    health_deteriorating_or_at_risk: bool,
    outcomes: dict[str, Any],
    wellbeing_impact: dict[str, Any],
) -> dict[str, Any]:
    """Decide reg 3 eligibility for a carer and explain the decision."""
    a_met = _require_bool(needs_from_caring, "needs_from_caring")
    health = _require_bool(health_deteriorating_or_at_risk, "health_deteriorating_or_at_risk")
    checked = _validate_outcomes(outcomes, CARER_OUTCOMES, CARER_WAYS)
    wellbeing = _validate_wellbeing(wellbeing_impact)

    unable = [o for o in checked if o["unable"]]
    b_met = health or len(unable) >= CARER_MIN_OUTCOMES
    eligible = a_met and b_met and wellbeing["significant"]

    a_text = (
        "Your needs arise from providing necessary care for another adult."
        if a_met
        else "Your needs do not arise from providing necessary care for another adult, which the regulations require."
    )
    parts = []
    if health:
        parts.append("Your physical or mental health is deteriorating, or is at risk of deteriorating.")
    else:
        parts.append("Your physical and mental health are not recorded as deteriorating or at risk.")
    if unable:
        listed = _join([_describe_unable(o, CARER_WAYS) for o in unable])
        parts.append(
            f"You are unable to achieve {len(unable)} of the {len(CARER_OUTCOMES)} outcomes in the "
            f"regulations: {listed}."
        )
    else:
        parts.append(f"You are able to achieve all {len(CARER_OUTCOMES)} outcomes in the regulations.")
    if not b_met:
        parts.append(
            "To be eligible, your health must be at risk or you must be unable to achieve at least one outcome."
        )
    elif health and not unable:
        parts.append("The risk to your health is enough on its own for this condition.")
    b_text = " ".join(parts)

    conditions = {
        "a": {"met": a_met, "explanation": a_text},
        "b": {
            "met": b_met,
            "health_deteriorating_or_at_risk": health,
            "outcomes_unable": [o["code"] for o in unable],
            "count": len(unable),
            "explanation": b_text,
        },
        "c": _wellbeing_condition(wellbeing),
    }
    failed = [k for k in ("a", "b", "c") if not conditions[k]["met"]]
    opening = (
        "You are eligible for support as a carer under the Care Act 2014."
        if eligible
        else "You are not eligible for support as a carer under the Care Act 2014 because "
        + _join([_FAILED_CARER[k] for k in failed])
        + "."
    )
    return {
        "eligible": eligible,
        "regulation": "Care and Support (Eligibility Criteria) Regulations 2015, regulation 3",
        "decided_at": ctx.now.isoformat(),
        "conditions": conditions,
        "outcomes": _outcome_list(checked),
        "explanation": " ".join([opening, a_text, b_text, conditions["c"]["explanation"]]),
    }


_FAILED_CARER = {
    "a": "your needs do not arise from providing necessary care",
    "b": "your health is not at risk and you are able to achieve all of the outcomes in the regulations",
    "c": "there is not a significant impact on your wellbeing",
}


def register(registry: HandlerRegistry) -> None:
    """Register the eligibility handlers under their diagram names."""
    registry.register("adult_eligibility", adult_eligibility)
    registry.register("carer_eligibility", carer_eligibility)
