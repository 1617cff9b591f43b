"""The financial assessment letter read as the person receiving it (issue 11, "every letter the person receives
is one a council's complaints team would be happy to send").

Found by reading the letter a pensioner with only a State Pension got in the demo (December 2026):

- the minimum income guarantee said its amount twice in one line: "Minimum income guarantee: single person of
  Pension Credit age: £241.45. Protected so you have enough to live on: the national amount for 2026-27,
  £241.45 a week (...)". The amount is now said once, unless the line adds something to it (a council top-up,
  several children), when the national amount is the start of the sum;
- the charging year was written "2026-27": GOV.UK style (docs/letters.md) writes a range with "to":
  "2026 to 2027";
- "Income we count: £260.00. The total of the income we count, each week." said the label again.

Worked by hand from the Regulations for 2026-27 (processes/config/charging.json): a single person of Pension
Credit age, savings £10,000.00 (under the lower limit £14,250.00: no tariff income), State Pension £260.00 a
week and nothing else, no housing costs or disability-related expenditure: £260.00 − £241.45 (regulation
7(2)(c)) = £18.55 a week.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from handlers import charging
from handlers.charging import financial_assessment, year_in_words
from handlers.charging_letters import financial_assessment_letter
from tests.test_council_mig import PERSON, Y2025, Y2026, council, working_age  # noqa: F401 - fixture
from tests.test_letters_style import problems

PENSIONER = {
    "route": "full", "age_band": "pension_age", "couple": False, "dependent_children": 0, "premiums": [],
    "capital": {"savings": "10000.00", "investments": "0", "property_other_than_home": "0", "other": "0"},
    "income_weekly": {"state_pension": "260.00"}, "housing_weekly": {}, "dre_weekly": [],
}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _bullets(letter: str) -> list[str]:
    return [_flat(b) for b in re.split(r"\n(?=- )", letter) if b.startswith("- ")]


def test_the_pensioner_with_only_a_state_pension_pays_what_the_regulations_give():
    result = financial_assessment(Y2026, PENSIONER)
    assert (result["year"], result["tariff_income"], result["mig"], result["weekly_contribution"]) == (
        "2026-27", "0.00", "241.45", "18.55")
    letter = financial_assessment_letter(Y2026, PERSON, result)["body"]
    flat = _flat(letter)
    assert "You will pay £18.55 a week." in flat
    assert ("Minimum income guarantee: single person of Pension Credit age: £241.45. Protected so you have enough "
            "to live on: the national amount for 2026 to 2027 (regulation 7(2)(c) of the Regulations).") in flat
    assert "We used the national figures for 2026 to 2027 set by the Department of Health and Social Care." in flat
    assert problems(letter, "financial_assessment", "Aisha") == []


def test_no_line_of_the_letter_says_an_amount_twice_or_its_own_label_again():
    letter = financial_assessment_letter(Y2026, PERSON, financial_assessment(Y2026, PENSIONER))["body"]
    for line in _bullets(letter):
        amounts = re.findall(r"£[\d,]+\.\d\d", line)
        label = line[2:].split(":")[0]
        sums = "=" in line or " less " in line or " plus " in line
        assert sums or len(amounts) == len(set(amounts)), line
        assert label.lower() not in line[2 + len(label):].lower(), line


def test_no_charging_year_is_written_with_a_dash(council):  # noqa: F811
    for when, answers in ((Y2026, PENSIONER), (Y2025, working_age())):
        letter = financial_assessment_letter(when, PERSON, financial_assessment(when, answers))["body"]
        assert not re.search(r"\b20\d\d-\d\d\b", letter), letter


def test_an_amount_that_is_part_of_a_sum_is_still_given(council):  # noqa: F811
    council(mig_weekly_top_up="5.00")
    [step] = [s for s in financial_assessment(Y2025, working_age())["steps"]
              if s["label"].startswith("Minimum income guarantee")]
    assert step["amount"] == "117.50"
    assert step["explanation"] == (
        "Protected so you have enough to live on: the national amount for 2025 to 2026, £112.50 a week "
        "(regulation 7(2)(b) of the Regulations). The council adds £5.00 a week to each amount: "
        "£112.50 + £5.00 = £117.50.")


@pytest.mark.parametrize("year, words", [("2026-27", "2026 to 2027"), ("2023-24", "2023 to 2024"),
                                         ("1999-00", "1999 to 2000"), ("", ""), ("2026", "2026"),
                                         ("next year", "next year")])
def test_a_charging_year_in_words(year, words):
    assert year_in_words(year) == words


def test_the_charging_year_itself_is_unchanged_for_the_record():
    assert charging.charging_year(datetime(2026, 4, 6, 12, tzinfo=timezone.utc).date()) == "2026-27"


def test_one_kind_of_capital_is_named_and_several_are_listed():
    def said(capital: dict) -> str:
        [step] = [s for s in financial_assessment(Y2026, {**PENSIONER, "capital": capital})["steps"]
                  if s["label"] == "Your capital"]
        return f'{step["amount"]} {step["explanation"]}'
    assert said({"savings": "10000.00"}) == "10000.00 Savings. We do not count the home you live in."
    assert said({"property_other_than_home": "9000"}) == (
        "9000.00 Property other than the home. We do not count the home you live in.")
    assert said({"savings": "1000", "investments": "250.50"}) == (
        "1250.50 Your savings and other capital, not counting the home you live in: savings £1,000.00, "
        "investments £250.50.")
    assert said({}) == "0.00 You told us you have no savings or other capital, apart from your home."


def _letter(answers: dict, cost: str | None = None) -> str:
    result = financial_assessment(Y2026, answers, cost) if cost else financial_assessment(Y2026, answers)
    return _flat(financial_assessment_letter(Y2026, PERSON, result)["body"])


def test_capital_above_the_upper_limit_is_said_once_and_the_cost_comes_with_the_plan():
    """The demo's letter for £50,000.00 of savings said the capital was above the upper limit twice (the reason,
    then the step) and sent the person to "Your personal budget letter", which gives a budget, not what the
    support costs: the support plan says that."""
    text = _letter({**PENSIONER, "capital": {"savings": "50000.00"}})
    assert text.count("£23,250.00") == 2  # the step's amount and its explanation, nowhere else
    assert "above the upper limit" not in text
    assert "You pay the whole cost of your support each week. Your support plan will say what it costs." in text
    assert "personal budget letter" not in text


def test_a_person_who_pays_nothing_is_told_we_pay_the_whole_cost_not_the_rest():
    text = _letter({**PENSIONER, "income_weekly": {"state_pension": "230.00"}})
    assert "You do not need to pay anything." in text
    assert "We pay the whole cost of your support." in text
    assert "We pay the rest" not in text and "Why you pay this" not in text
    assert "Why you pay nothing" in text
    assert text.count("not more than what is protected") == 1
    assert problems(financial_assessment_letter(Y2026, PERSON, financial_assessment(
        Y2026, {**PENSIONER, "income_weekly": {"state_pension": "230.00"}}))["body"], "financial_assessment",
        "Aisha") == []


def test_a_charge_capped_at_the_cost_says_so_once():
    text = _letter({**PENSIONER, "income_weekly": {"state_pension": "400.00"}}, "50.00")
    assert "You will pay the full cost: £50.00 a week." in text
    assert text.count("not less than the cost") + text.count("never pay more than your support costs") == 1


def test_housing_costs_keep_the_capitals_of_council_tax():
    """GOV.UK writes Council Tax with capitals; the letter wrote "council tax £20.00" (the label lower-cased)."""
    [step] = [s for s in financial_assessment(Y2026, {**PENSIONER, "housing_weekly": {
        "rent": "95.00", "council_tax": "20.00"}})["steps"] if s["label"] == "Housing costs"]
    assert step["explanation"] == ("What you pay for your home after any help with it: rent £95.00, "
                                   "Council Tax £20.00.")


def test_no_disability_costs_is_said_as_none_not_as_nothing_allowed():
    """A person who said they have no extra costs of disability read "Disability-related expenditure: £0.00. The
    extra costs of your disability we allow." — as if they had costs and none were allowed."""
    def said(answers: dict) -> str:
        [step] = [s for s in financial_assessment(Y2026, answers)["steps"]
                  if s["label"] == "Disability-related expenditure"]
        return step["explanation"]
    assert said(PENSIONER) == "You told us you have no extra costs because of a disability."
    assert said({**PENSIONER, "dre_weekly": [{"item": "Extra laundry", "amount": "5.50"}]}) == (
        "The extra costs of your disability we allow.")
