"""Care Act eligibility handlers: the decisions and the letters a caseworker would send."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from engine.registry import HandlerContext, HandlerRegistry
from handlers.eligibility import (
    ADULT_OUTCOMES,
    CARER_OUTCOMES,
    adult_eligibility,
    carer_eligibility,
    register,
)

CTX = HandlerContext(
    case_id=1, instance_id=1, process_id="t", element_id="t", now=datetime(2031, 1, 1, tzinfo=timezone.utc)
)
SIGNIFICANT = {
    "significant": True,
    "reason": "She is at risk of falls and has stopped seeing friends",
    "areas": ["health_and_emotional_wellbeing", "domestic_family_personal_relationships"],
}


def outcomes(codes: dict[str, str], **unable: list[str]) -> dict[str, Any]:
    """Every outcome recorded as achievable, except those given with the ways she is unable."""
    rec: dict[str, Any] = {c: {"unable": False, "ways": [], "reason": ""} for c in codes}
    for code, ways in unable.items():
        rec[code] = {"unable": True, "ways": ways, "reason": f"assessor's note on {code}"}
    return rec


def test_two_outcomes_unable_is_eligible_and_the_letter_says_why() -> None:
    result = adult_eligibility(
        CTX,
        needs_from_impairment=True,
        outcomes=outcomes(
            ADULT_OUTCOMES,
            personal_hygiene=["needs_assistance_incl_prompting"],
            using_home_safely=["endangers_health_safety", "takes_significantly_longer"],
        ),
        wellbeing_impact=SIGNIFICANT,
    )
    assert result["eligible"] is True
    b = result["conditions"]["b"]
    assert (b["met"], b["count"], b["outcomes_unable"]) == (
        True,
        2,
        ["personal_hygiene", "using_home_safely"],
    )
    letter = result["explanation"]
    assert letter.startswith("You are eligible for care and support")
    assert "unable to achieve 2 of the 10 outcomes" in letter
    assert "maintaining personal hygiene" in letter and "being able to make use of the home safely" in letter
    assert "including prompting" in letter
    assert "physical and mental health and emotional wellbeing" in letter
    assert "stopped seeing friends" in letter
    # eligibility ignores a carer's help; the letter must say so
    assert "does not take into account any care that a family member" in letter
    assert [o["code"] for o in result["outcomes"]] == list(ADULT_OUTCOMES)
    assert result["decided_at"] == "2031-01-01T00:00:00+00:00"


def test_one_outcome_unable_is_not_eligible_and_the_letter_gives_the_reason() -> None:
    result = adult_eligibility(
        CTX,
        needs_from_impairment=True,
        outcomes=outcomes(ADULT_OUTCOMES, toilet_needs=["significant_pain_distress_anxiety"]),
        wellbeing_impact=SIGNIFICANT,
    )
    assert result["eligible"] is False
    assert result["conditions"]["a"]["met"] and result["conditions"]["c"]["met"]
    assert result["conditions"]["b"]["met"] is False
    assert result["conditions"]["b"]["count"] == 1
    letter = result["explanation"]
    assert letter.startswith("You are not eligible")
    assert "unable to achieve only 1 of the outcomes in the regulations, and at least 2 are needed" in letter
    assert "unable to achieve 1 of the 10 outcomes" in letter and "managing toilet needs" in letter
    assert "At least 2 are needed" in letter


def test_needs_not_from_impairment_fail_condition_a() -> None:
    result = adult_eligibility(
        CTX,
        needs_from_impairment=False,
        outcomes=outcomes(
            ADULT_OUTCOMES,
            managing_nutrition=["needs_assistance_incl_prompting"],
            habitable_home=["needs_assistance_incl_prompting"],
        ),
        wellbeing_impact=SIGNIFICANT,
    )
    assert result["eligible"] is False
    assert result["conditions"]["a"]["met"] is False
    assert result["conditions"]["b"]["met"] is True  # still computed and recorded
    assert ("do not arise from and are not related to a physical or mental impairment or illness"
            in result["explanation"])


def test_no_significant_wellbeing_impact_is_not_eligible() -> None:
    result = adult_eligibility(
        CTX,
        needs_from_impairment=True,
        outcomes=outcomes(
            ADULT_OUTCOMES,
            managing_nutrition=["needs_assistance_incl_prompting"],
            being_clothed=["takes_significantly_longer"],
        ),
        wellbeing_impact={"significant": False, "reason": "Managing well with adapted clothing", "areas": []},
    )
    assert result["eligible"] is False
    assert "not a significant impact on your wellbeing" in result["explanation"]
    assert "adapted clothing" in result["explanation"]


def test_wellbeing_judgement_without_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="wellbeing_impact.reason"):
        adult_eligibility(
            CTX,
            needs_from_impairment=True,
            outcomes=outcomes(ADULT_OUTCOMES),
            wellbeing_impact={"significant": True, "reason": "  ", "areas": ["personal_dignity"]},
        )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dancing": {"unable": True, "ways": ["takes_significantly_longer"], "reason": "x"}}, "dancing"),
        ({"toilet_needs": {"unable": True, "ways": [], "reason": "x"}}, "outcomes.toilet_needs"),
        (
            {"toilet_needs": {"unable": False, "ways": ["endangers_health_safety"], "reason": "x"}},
            "outcomes.toilet_needs",
        ),
        (
            {"toilet_needs": {"unable": True, "ways": ["endangers_health_safety"], "reason": ""}},
            "outcomes.toilet_needs.reason",
        ),
        ({"toilet_needs": {"unable": "yes", "ways": [], "reason": ""}}, "outcomes.toilet_needs.unable"),
        (
            {"toilet_needs": {"unable": True, "ways": ["too_hard"], "reason": "x"}},
            "outcomes.toilet_needs.ways",
        ),
    ],
)
def test_invalid_outcome_records_name_the_field(change: dict[str, Any], field: str) -> None:
    recs = outcomes(ADULT_OUTCOMES)
    recs.update(change)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        adult_eligibility(CTX, needs_from_impairment=True, outcomes=recs, wellbeing_impact=SIGNIFICANT)


def test_every_outcome_must_be_considered() -> None:
    recs = outcomes(ADULT_OUTCOMES)
    del recs["caring_for_child"]
    with pytest.raises(ValueError, match="caring_for_child"):
        adult_eligibility(CTX, needs_from_impairment=True, outcomes=recs, wellbeing_impact=SIGNIFICANT)


def test_wrong_types_name_the_field() -> None:
    with pytest.raises(ValueError, match="needs_from_impairment"):
        adult_eligibility(
            CTX,
            needs_from_impairment="true",
            outcomes=outcomes(ADULT_OUTCOMES),  # type: ignore[arg-type]
            wellbeing_impact=SIGNIFICANT,
        )
    with pytest.raises(ValueError, match="wellbeing_impact.areas"):
        adult_eligibility(
            CTX,
            needs_from_impairment=True,
            outcomes=outcomes(ADULT_OUTCOMES),
            wellbeing_impact={"significant": True, "reason": "r", "areas": ["happiness"]},
        )


CARER_SIGNIFICANT = {
    "significant": True,
    "reason": "He is exhausted and has had to give up work",
    "areas": ["health_and_emotional_wellbeing", "participation_in_work_education_training_recreation"],
}


def test_carer_eligible_on_health_alone() -> None:
    result = carer_eligibility(
        CTX,
        needs_from_caring=True,
        health_deteriorating_or_at_risk=True,
        outcomes=outcomes(CARER_OUTCOMES),
        wellbeing_impact=CARER_SIGNIFICANT,
    )
    assert result["eligible"] is True
    assert result["conditions"]["b"]["met"] is True
    assert result["conditions"]["b"]["count"] == 0
    assert "enough on its own" in result["explanation"]
    assert result["explanation"].startswith("You are eligible for support as a carer")


def test_carer_eligible_on_one_outcome() -> None:
    result = carer_eligibility(
        CTX,
        needs_from_caring=True,
        health_deteriorating_or_at_risk=False,
        outcomes=outcomes(CARER_OUTCOMES, work_training_education_volunteering=["needs_assistance_incl_prompting"]),
        wellbeing_impact=CARER_SIGNIFICANT,
    )
    assert result["eligible"] is True
    assert "engaging in work, training, education or volunteering" in result["explanation"]


def test_carer_not_eligible_when_health_fine_and_all_outcomes_achieved() -> None:
    result = carer_eligibility(
        CTX,
        needs_from_caring=True,
        health_deteriorating_or_at_risk=False,
        outcomes=outcomes(CARER_OUTCOMES),
        wellbeing_impact=CARER_SIGNIFICANT,
    )
    assert result["eligible"] is False
    assert result["conditions"]["b"]["met"] is False
    assert "your health is not at risk and you are able to achieve all of the outcomes" in result["explanation"]


def test_carer_ways_follow_reg_3_not_reg_2() -> None:
    # reg 3(3) has no "takes significantly longer" limb
    with pytest.raises(ValueError, match=r"outcomes\.nutrition\.ways"):
        carer_eligibility(
            CTX,
            needs_from_caring=True,
            health_deteriorating_or_at_risk=False,
            outcomes=outcomes(CARER_OUTCOMES, nutrition=["takes_significantly_longer"]),
            wellbeing_impact=CARER_SIGNIFICANT,
        )


def test_register_uses_the_diagram_names() -> None:
    registry = HandlerRegistry()
    register(registry)
    assert registry.get("adult_eligibility") is adult_eligibility
    assert registry.get("carer_eligibility") is carer_eligibility


# ---------------------------------------------------------------- reg 2(1)(a) wording and reg 2(4)

TWO_UNABLE = dict(personal_hygiene=["needs_assistance_incl_prompting"], toilet_needs=["takes_significantly_longer"])


def test_condition_a_reads_arise_from_or_are_related_to_an_impairment_or_illness() -> None:
    met = adult_eligibility(CTX, needs_from_impairment=True, outcomes=outcomes(ADULT_OUTCOMES, **TWO_UNABLE),
                            wellbeing_impact=SIGNIFICANT)
    assert met["conditions"]["a"]["explanation"] == (
        "Your needs arise from or are related to a physical or mental impairment or illness.")
    not_met = adult_eligibility(CTX, needs_from_impairment=False, outcomes=outcomes(ADULT_OUTCOMES, **TWO_UNABLE),
                                wellbeing_impact=SIGNIFICANT)
    assert not_met["explanation"].startswith(
        "You are not eligible for care and support under the Care Act 2014 because your needs do not arise from "
        "and are not related to a physical or mental impairment or illness.")


def test_fluctuating_needs_say_the_period_considered_in_the_decision() -> None:
    result = adult_eligibility(
        CTX, needs_from_impairment=True, outcomes=outcomes(ADULT_OUTCOMES, **TWO_UNABLE),
        wellbeing_impact=SIGNIFICANT,
        fluctuation={"fluctuate": True, "period": "the last three months",
                     "pattern": "her multiple sclerosis flares up every few weeks"})
    assert result["fluctuation"] == {"fluctuate": True, "period": "the last three months",
                                     "pattern": "her multiple sclerosis flares up every few weeks"}
    assert ("Your needs vary over time (her multiple sclerosis flares up every few weeks). To judge your level of "
            "need accurately we considered your circumstances over the last three months, not just on the day of "
            "the assessment.") in result["explanation"]


def test_needs_that_do_not_fluctuate_or_an_unanswered_question_add_nothing_to_the_letter() -> None:
    steady = adult_eligibility(CTX, needs_from_impairment=True, outcomes=outcomes(ADULT_OUTCOMES, **TWO_UNABLE),
                               wellbeing_impact=SIGNIFICANT, fluctuation={"fluctuate": False})
    unanswered = adult_eligibility(CTX, needs_from_impairment=True, outcomes=outcomes(ADULT_OUTCOMES, **TWO_UNABLE),
                                   wellbeing_impact=SIGNIFICANT)
    assert steady["fluctuation"] == {"fluctuate": False, "period": None, "pattern": None}
    assert unanswered["fluctuation"] is None
    assert "vary over time" not in steady["explanation"] and steady["explanation"] == unanswered["explanation"]


@pytest.mark.parametrize("fluctuation, message", [
    ({"fluctuate": True}, "fluctuation.period: the needs fluctuate, so give the period"),
    ({"fluctuate": True, "period": "   "}, "fluctuation.period"),
    ({"fluctuate": "yes", "period": "a month"}, "fluctuation.fluctuate must be true or false"),
    ("sometimes", "fluctuation must be a mapping"),
])
def test_fluctuating_needs_without_a_period_are_refused_naming_the_field(fluctuation, message) -> None:
    with pytest.raises(ValueError, match=message):
        adult_eligibility(CTX, needs_from_impairment=True, outcomes=outcomes(ADULT_OUTCOMES, **TWO_UNABLE),
                          wellbeing_impact=SIGNIFICANT, fluctuation=fluctuation)
