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
