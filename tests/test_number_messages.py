"""A number out of its range is refused in GOV.UK words naming the question, not JSON Schema's ("-1 is less than
the minimum of 0", "169.0 is greater than the maximum of 168"): the financial assessment's dependent children and
the support plan's planned units a week, as the finance officer and the social worker read them on the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.page_forms import engine_errors, fields_for, set_errors, set_items
from engine.errors import ValidationError
from engine.forms import FormLibrary

ROOT = Path(__file__).resolve().parent.parent
FORMS = FormLibrary.from_folder(ROOT / "forms")


def _page_messages(form: str, data: dict) -> list[str]:
    """The error summary the page shows for `data` (the engine's refusal, put on the form's questions)."""
    schema = json.loads((ROOT / "forms" / f"{form}.schema.json").read_text(encoding="utf-8"))
    with pytest.raises(ValidationError) as caught:
        FORMS.validate(form, data)
    fields = fields_for(schema)
    for f in fields:
        if f.kind == "group" and isinstance(data.get(f.key), list):
            set_items(f, data[f.key])
    return [e["text"] for e in set_errors(fields, engine_errors(fields, caught.value.errors)[0])]


@pytest.mark.parametrize("children", [-1, 21])
def test_dependent_children_out_of_range_are_named_in_words(children):
    data = {"route": "full", "age_band": "pension_age", "couple": False, "dependent_children": children}
    messages = _page_messages("financial_assessment", data)
    assert "Enter how many dependent children live with the person, from 0 to 20" in messages, messages


@pytest.mark.parametrize("units, said", [
    (169, "Outcome 1: planned units a week must be 168 or fewer (a week has 168 hours)"),
    (-2, "Outcome 1: planned units a week must be 0 or more"),
])
def test_planned_units_out_of_range_are_named_in_words(units, said):
    outcome = {"label": "Get washed and dressed", "how_met": "Home care each morning",
               "service_component": "home_support", "unit": "hour", "unit_cost": 34.12, "units_per_week": units}
    messages = _page_messages("support_plan", {"outcomes": [outcome]})
    assert said in messages, messages
