"""The code lists written into the forms and diagrams are the ones the handlers accept.

The forms and diagrams are files that process owners edit; the handlers hold the code lists
(Care Act outcomes, wellbeing areas, Client Level Data codes, RAS levels). When a list
changes in one place and not the other, a caseworker could choose a code the handler refuses
or that the CLD return cannot carry: these tests name the file and the field that differs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from handlers.cld import (
    DELIVERY_BY_DP_ARRANGEMENT,
    DELIVERY_BY_MONEY_MANAGEMENT,
    PERSON_CODE_LISTS,
    UNPLANNED_REVIEW_REASONS,
)
from handlers.eligibility import ADULT_OUTCOMES, ADULT_WAYS, CARER_OUTCOMES, CARER_WAYS, WELLBEING_AREAS

ROOT = Path(__file__).resolve().parent.parent
FORMS = ROOT / "forms"
PROCESSES = ROOT / "processes"
RAS_LEVELS = list(json.loads((PROCESSES / "config" / "ras.json").read_text(encoding="utf-8"))
                  ["carer_support_allocation"]["levels"])


def field(form: str, path: str) -> dict[str, Any]:
    schema = json.loads((FORMS / f"{form}.schema.json").read_text(encoding="utf-8"))
    node = schema
    for part in path.split("/"):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


@pytest.mark.parametrize(("form", "outcomes", "ways"), [
    ("needs_assessment", ADULT_OUTCOMES, ADULT_WAYS), ("carers_assessment", CARER_OUTCOMES, CARER_WAYS)])
def test_the_assessment_forms_ask_every_outcome_the_eligibility_handler_reads(form, outcomes, ways):
    asked = field(form, "outcomes")["properties"]
    assert list(asked) == list(outcomes), f"forms/{form}.schema.json: outcomes"
    for code, question in asked.items():
        assert question["properties"]["ways"]["items"]["enum"] == list(ways), f"forms/{form}: outcomes/{code}/ways"
    assert field(form, "wellbeing_impact/areas/[]")["enum"] == list(WELLBEING_AREAS), f"forms/{form}: wellbeing"


def test_the_carer_support_levels_are_the_ras_levels():
    assert field("carers_assessment", "support_level")["enum"] == RAS_LEVELS
    assert field("ras_scoring", "carer_support_level")["enum"] == RAS_LEVELS


@pytest.mark.parametrize("name", ["gender", "ethnicity", "accommodation_status", "employment_status"])
def test_the_person_and_the_carer_are_asked_the_cld_codes(name):
    assert field("contact", f"person/{name}")["enum"] == list(PERSON_CODE_LISTS[name])
    assert field("needs_assessment", f"carer/{name}")["enum"] == list(PERSON_CODE_LISTS[name])


def test_the_carer_is_asked_for_an_nhs_number_and_a_date_of_birth_as_the_person_is():
    for name in ("nhs_number", "date_of_birth"):
        carer, person = field("needs_assessment", f"carer/{name}"), field("contact", f"person/{name}")
        same = {k: v for k, v in person.items() if k not in ("title", "description")}
        assert {k: carer.get(k) for k in same} == same, f"forms/needs_assessment.schema.json: carer/{name}"


def test_the_money_management_and_direct_payment_choices_have_cld_delivery_mechanisms():
    assert field("support_plan", "money_management")["enum"] == list(DELIVERY_BY_MONEY_MANAGEMENT)
    assert field("direct_payment_review", "outcome")["enum"] == [
        "continue", "continue_with_conditions", *DELIVERY_BY_DP_ARRANGEMENT]
    diagram = (PROCESSES / "direct_payment_review.bpmn").read_text(encoding="utf-8")
    assert f"outcome in {list(DELIVERY_BY_DP_ARRANGEMENT)!r}" in diagram


def test_the_review_accepts_exactly_the_cld_unplanned_review_reasons():
    diagram = (PROCESSES / "review.bpmn").read_text(encoding="utf-8")
    [listed] = re.findall(r"^UNPLANNED = (\[.*\])$", diagram, flags=re.MULTILINE)
    assert listed.replace("&apos;", "'") == repr(list(UNPLANNED_REVIEW_REASONS))
