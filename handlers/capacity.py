"""Mental capacity (Mental Capacity Act 2005) and independent advocacy (Care Act 2014 s.67 and s.68).

Where a decision is made about a person (the needs assessment, the support plan and a move into a care
home, a safeguarding enquiry), the form asks the same questions (forms/*: `capacity_in_doubt`,
`capacity_assessment`, `best_interests`, `substantial_difficulty`, `appropriate_person_available`,
`appropriate_person`). The form's schema makes the two-stage test complete when capacity is in doubt and
a best-interests decision required when the test finds the person lacks capacity; this module reads the
answers once for the diagram:

* `involvement(decision, answers, advocacy_on_case)` (an expression function): whether the person lacks
  capacity for the decision, and whether an independent advocate must be referred — the person would have
  substantial difficulty being involved (a person who lacks capacity for the decision has it) and there is
  no appropriate person, and no advocate is already referred or appointed on the case.
* `advocacy_letter` (a document handler): tells the person who their independent advocate is.

Pure: no clock but `ctx.now`, no I/O. Bad input raises ValueError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

#: what an advocate may be needed for (the `advocacy` process's start data `decision`)
DECISIONS: dict[str, str] = {
    "needs_assessment": "the assessment of your care and support needs",
    "support_plan": "planning your care and support",
    "care_home_move": "the decision about moving into a care home",
    "safeguarding": "the safeguarding enquiry",
    "review": "the review of your care and support plan",
    "carers_assessment": "the assessment of your needs as a carer",
}
STAGE_2 = ("unable_to_understand", "unable_to_retain", "unable_to_use_or_weigh", "unable_to_communicate")
#: an advocacy referral that is still open, or an advocate who is appointed: no second referral
ADVOCACY_ACTIVE = ("referred", "appointed")


def _flag(answers: Mapping[str, Any], name: str) -> bool:
    value = answers.get(name)
    if value is None:  # not answered: the presumption (capacity; no difficulty) holds
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {type(value).__name__}")
    return value


def lacks_capacity(assessment: Any) -> bool:
    """The two-stage test: an impairment or disturbance of the mind or brain (stage 1) because of which
    the person is unable to understand, retain, use or weigh the information, or communicate (stage 2)."""
    if not isinstance(assessment, Mapping):
        raise ValueError("capacity_assessment: capacity is in doubt, so record the two-stage capacity assessment")
    for name in ("impairment", *STAGE_2):
        if not isinstance(assessment.get(name), bool):
            raise ValueError(f"capacity_assessment.{name} must be true or false")
    return assessment["impairment"] and any(assessment[name] for name in STAGE_2)


def involvement(decision: str, answers: Mapping[str, Any], advocacy_on_case: Any = None) -> dict[str, Any]:
    """Read a decision form's capacity and advocacy answers (absent ones are None)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {sorted(DECISIONS)}, got {decision!r}")
    in_doubt = _flag(answers, "capacity_in_doubt")
    assessment = answers.get("capacity_assessment") if in_doubt else None
    lacks = lacks_capacity(assessment) if in_doubt else False
    best_interests = answers.get("best_interests") if lacks else None
    if lacks and not isinstance(best_interests, Mapping):
        raise ValueError("best_interests: the person lacks capacity for this decision, so record the "
                         "best-interests decision")
    difficulty = _flag(answers, "substantial_difficulty") or lacks
    appropriate = _flag(answers, "appropriate_person_available")
    active = isinstance(advocacy_on_case, Mapping) and advocacy_on_case.get("status") in ADVOCACY_ACTIVE
    reasons = []
    if difficulty:
        reasons.append("lacks capacity for this decision" if lacks else
                       "would have substantial difficulty being involved")
        reasons.append("has an appropriate person to support them" if appropriate else
                       "has no appropriate person to support them")
    return {
        "decision": decision,
        "capacity": {
            "in_doubt": in_doubt,
            "lacks_capacity": lacks,
            "specific_decision": assessment.get("decision") if isinstance(assessment, Mapping) else None,
            "assessed_on": assessment.get("assessed_on") if isinstance(assessment, Mapping) else None,
            "best_interests": dict(best_interests) if isinstance(best_interests, Mapping) else None,
        },
        "substantial_difficulty": difficulty,
        "appropriate_person": (answers.get("appropriate_person") or None) if appropriate else None,
        "advocate_needed": difficulty and not appropriate,
        "already_arranged": active,
        "refer": difficulty and not appropriate and not active,
        "reason": ("The person " + " and ".join(reasons) + " (Care Act 2014 s.67).") if reasons else None,
    }


def advocacy_letter(ctx: HandlerContext, person: dict[str, Any], advocacy: dict[str, Any]) -> dict[str, Any]:
    """The letter telling the person who their independent advocate is and what the advocate does."""
    from .letters import _render  # the shared letterhead and addressee

    if not isinstance(advocacy, Mapping):
        raise ValueError("advocacy must be the record of the advocate appointed")
    decision = advocacy.get("decision")
    if decision not in DECISIONS:
        raise ValueError(f"advocacy.decision must be one of {sorted(DECISIONS)}, got {decision!r}")
    advocate = advocacy.get("advocate")
    if not isinstance(advocate, Mapping) or not str(advocate.get("name") or "").strip():
        raise ValueError("advocacy.advocate.name: the letter names the advocate appointed")
    return _render(ctx, "advocacy", "advocacy.txt.j2", "Your independent advocate", person,
                   advocate=dict(advocate), about=DECISIONS[decision])


def register(registry: HandlerRegistry) -> None:
    registry.register("advocacy_letter", advocacy_letter, document=True)
    registry.expression_function("involvement", involvement, bounded=True)
