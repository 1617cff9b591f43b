"""The carer's budget above "Plan the carer's support" (forms/carers_support_plan.schema.json, `x-showData`), as the
worker reads it. In the demo it showed the handler's raw values: "Support level moderate", "Amount 600.00",
"Weekly amount 11.54" and "Worked out at 2026-12-03T07:38:00+00:00". Now money is money and the day is a day."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from api.task_sections import shown_data

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "forms" / "carers_support_plan.schema.json").read_text(encoding="utf-8"))
BUDGET = {"support_level": "moderate", "amount": "600.00", "weekly_amount": "11.54",
          "added_to_cared_for_budget": True, "explanation": "The carer's assessment found moderate support needs.",
          "config": {"file": "ras.json"}, "worked_out_at": "2026-12-03T23:30:00+00:00"}


def _engine(data: dict) -> SimpleNamespace:
    return SimpleNamespace(instance_snapshot=lambda _iid: {"data": data}, forms=None)


def test_the_carers_budget_is_shown_in_words_money_and_a_day():
    [shown] = shown_data(_engine({"carer_budget": BUDGET}), {"instance_id": 1, "case_id": 1}, SCHEMA)
    assert shown["title"] == "The carer's budget"
    assert shown["rows"] == [("Support needs found", "Moderate"), ("A year", "£600.00"), ("A week", "£11.54"),
                             ("Added to the cared-for person's budget", "Yes"),
                             ("Worked out on", "3 December 2026")]  # 23:30 UTC is 3 December in London in winter
    assert shown["explanation"] == ["The carer's assessment found moderate support needs."]
    assert not any("T" in v and ":" in v for _k, v in shown["rows"])


def test_a_carers_own_budget_says_it_is_not_added():
    [shown] = shown_data(_engine({"carer_budget": {**BUDGET, "added_to_cared_for_budget": False,
                                                   "worked_out_at": "2026-07-01T23:30:00+00:00"}}),
                         {"instance_id": 1, "case_id": 1}, SCHEMA)
    rows = dict(shown["rows"])
    assert rows["Added to the cared-for person's budget"] == "No"
    assert rows["Worked out on"] == "2 July 2026"  # British Summer Time


PLAN = {"outcomes": [{"label": "Keep my job", "how_met": "A sitting service one evening a week",
                      "provided_by": "Northtown Carers Centre"}, {"label": "Rest", "how_met": "A break"}],
        "support_type": "involving_cared_for", "money_management": "council_managed", "budget_held_by": "carer",
        "contingency_plan": "Her brother stays with Peter.", "coordinating_worker": {"name": "Sam Social",
                                                                                    "role": "social worker"},
        "review_frequency_months": 12, "carer_agreed": True, "carer_budget": BUDGET}


def test_the_manager_signing_off_a_carers_plan_reads_the_plan_itself():
    """In the demo the team manager's "Sign off carer's support plan" page showed only the carer's budget: the
    plan being signed off (outcomes, who the support is for, where the budget is held, the emergency plan) was
    not on it. Now it is, question by question, above the budget."""
    from engine.forms import FormLibrary

    forms = FormLibrary.from_folder(ROOT / "forms")
    engine = SimpleNamespace(instance_snapshot=lambda _iid: {"data": PLAN}, forms=forms)
    cards = shown_data(engine, {"instance_id": 1, "case_id": 1}, forms.schema("carers_plan_sign_off"))
    assert [c["title"] for c in cards] == ["The carer's support plan", "The carer's budget"]
    assert cards[0]["rows"] == [
        ("What the carer wants to achieve and how it will be met",
         "Keep my job: A sitting service one evening a week; Northtown Carers Centre / Rest: A break"),
        ("Who the support is given to",
         "The person cared for, so the carer has a break (for example replacement care or a sitting service)"),
        ("How the carer's budget is managed", "The council arranges the support"),
        ("Where the carer's budget is held", "The carer's own personal budget"),
        ("What happens in an emergency if the carer cannot care", "Her brother stays with Peter."),
        ("Co-ordinating worker", "Sam Social, social worker"),
        ("How often the plan is reviewed (months, at most 12)", "12"),
        ("Has the carer agreed this plan", "Yes")]


def test_nothing_answered_says_so_and_a_bad_entry_is_refused(tmp_path):
    import pytest

    from engine.forms import FormLibrary

    forms = FormLibrary.from_folder(ROOT / "forms")
    engine = SimpleNamespace(instance_snapshot=lambda _iid: {"data": {}}, forms=forms)
    [plan, _budget] = shown_data(engine, {"instance_id": 1, "case_id": 1}, forms.schema("carers_plan_sign_off"))
    assert plan["rows"] == [] and plan["missing"] == "Not available: the form has not been answered."
    bad = {"type": "object", "properties": {}, "x-showData": [{"answersOf": "", "title": "x"}]}
    (tmp_path / "bad.schema.json").write_text(json.dumps(bad), encoding="utf-8")
    from engine.errors import DefinitionError

    with pytest.raises(DefinitionError, match="answersOf"):
        FormLibrary.from_folder(tmp_path)


def test_the_worker_told_a_reduction_was_refused_reads_the_amounts_and_why():
    """"Reduction refused: reassess or keep the budget" showed only two options, "Keep budget" and "Record
    change": not the amounts, nor why the reduction was refused. Now the budget check is shown above them."""
    from engine.forms import FormLibrary

    forms = FormLibrary.from_folder(ROOT / "forms")
    check = {"allowed": False, "direction": "reduction", "previous_amount": "29136.36", "new_amount": "20000.00",
             "difference": "-9136.36", "change_in_needs_recorded": False, "reason": "",
             "explanation": "The budget cannot be reduced from £29,136.36 to £20,000.00 a year without a recorded "
                            "change in needs or circumstances."}
    engine = SimpleNamespace(instance_snapshot=lambda _iid: {"data": {"budget_check": check}}, forms=forms)
    [card] = shown_data(engine, {"instance_id": 1, "case_id": 1}, forms.schema("reduction_refused"))
    assert card["title"] == "The reduction that was refused"
    assert card["rows"][:3] == [("Budget now", "£29,136.36"), ("Proposed budget", "£20,000.00"),
                                ("Change", "-£9,136.36")]
    assert card["explanation"] == [check["explanation"]]
    from api.page_forms import fields_for
    [decision] = [f for f in fields_for(forms.schema("reduction_refused")) if f.key == "decision"]
    assert [label for _v, label in decision.options] == [
        "Keep the budget as it is", "Record the change in needs or circumstances and reassess the needs"]
