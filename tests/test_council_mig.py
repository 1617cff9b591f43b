"""The council's own minimum income guarantee (issue 11; handlers/charging.py; docs/charging.md "The council's own
minimum income guarantee"): a weekly top-up on every regulation 7 amount and the council's own amount for a
category, never below the national one; what the person is told about where each figure came from.

Each test writes its own charging.json (the shipped national figures, the council part replaced); the shipped
file's council values are neutral. Expected amounts are worked out by hand in the comments."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.registry import HandlerContext
from handlers import charging
from handlers.charging import financial_assessment
from handlers.charging_letters import financial_assessment_letter
from tests.test_letters_style import problems

SHIPPED = charging.CONFIG_DIR / charging.CONFIG_FILE


def ctx(when: datetime) -> HandlerContext:
    return HandlerContext(case_id=7, instance_id=1, process_id="financial_assessment", element_id="assess",
                          now=when, case_reference="CASE-000007")


Y2023 = ctx(datetime(2023, 9, 1, 10, 0, tzinfo=timezone.utc))  # 2023-24
Y2025 = ctx(datetime(2025, 6, 2, 10, 0, tzinfo=timezone.utc))  # 2025-26
Y2026 = ctx(datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc))  # 2026-27
COUNCIL_SAID = "The council sets some of its own amounts for the minimum income guarantee. The steps above say which."
PERSON = {"name": "Aisha Rahman", "preferred_name": "Aisha", "address": ["2 Low Street", "Northtown", "NS1 1AA"]}


def working_age(**changes: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "route": "full", "age_band": "25_to_pension_age", "couple": False, "dependent_children": 0,
        "premiums": [], "capital": {}, "income_weekly": {"esa": "150.00"}, "housing_weekly": {}, "dre_weekly": [],
    }
    answers.update(changes)
    return answers


@pytest.fixture
def council(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a private charging.json: the shipped national figures with the council's choices changed."""
    monkeypatch.setattr(charging, "CONFIG_DIR", tmp_path)

    def write(**choices: Any) -> None:
        data = json.loads(SHIPPED.read_text())
        data["council"].update(choices)
        (tmp_path / charging.CONFIG_FILE).write_text(json.dumps(data))

    write()
    return write


def mig_steps(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["label"]: s for s in result["steps"] if s["label"].startswith("Minimum income guarantee")}


# ---------------------------------------------------------------- the shipped file changes nothing


def test_the_shipped_council_values_are_neutral() -> None:
    cfg, _ = charging.load_config()
    assert cfg["council"]["mig_weekly_top_up"] == 0
    assert set(cfg["council"]["mig"].values()) == {None}
    result = financial_assessment(Y2025, working_age())
    assert result["mig"] == "112.50"
    [step] = mig_steps(result).values()
    assert step["explanation"] == ("Protected so you have enough to live on: the national amount for 2025 to 2026 "
                                   "(regulation 7(2)(b) of the Regulations).")
    assert result["mig_parts"] == [{
        "figure": "single_25_to_pension_age", "for": "single person aged 25 or over, under Pension Credit age",
        "source": "national", "times": 1, "national": "112.50", "council": None, "top_up": "0.00",
        "weekly": "112.50", "amount": "112.50"}]


# ---------------------------------------------------------------- boundaries


def test_a_council_amount_equal_to_the_national_one_is_accepted_and_said_so(council) -> None:
    council(mig={"single_25_to_pension_age": "112.50"})  # the 2025-26 amount; above 2023-24's £103.65
    result = financial_assessment(Y2025, working_age())
    assert (result["mig"], result["assessed_weekly_charge"]) == ("112.50", "37.50")  # 150.00 - 112.50
    [step] = mig_steps(result).values()
    assert step["explanation"] == ("Protected so you have enough to live on: the council's own amount, £112.50 a "
                                   "week, the same as the national amount for 2025 to 2026 (regulation 7(2)(b) of the "
                                   "Regulations).")


def test_a_council_amount_a_penny_below_the_national_one_is_refused_naming_both(council) -> None:
    council(mig={"single_25_to_pension_age": "112.49"})
    with pytest.raises(ValueError, match=r"council.mig.single_25_to_pension_age £112.49 is below the national "
                                         r"minimum income guarantee amount of £112.50 for 2025-26 .*regulation 7 is "
                                         r"a floor"):
        financial_assessment(Y2025, working_age())
    # refused when the file is read, whatever year is assessed: the same amount is used in every year
    with pytest.raises(ValueError, match=r"council.mig.single_25_to_pension_age £112.49 is below"):
        financial_assessment(Y2023, working_age())


def test_a_council_amount_below_any_years_national_amount_is_refused(council) -> None:
    council(mig={"single_pension_age": "241.44"})  # above 2023-24 and 2025-26, a penny below 2026-27's £241.45
    with pytest.raises(ValueError, match=r"council.mig.single_pension_age £241.44 is below the national minimum "
                                         r"income guarantee amount of £241.45 for 2026-27 \(single person of "
                                         r"Pension Credit age, regulation 7\(2\)\(c\) of the Regulations\)"):
        financial_assessment(Y2025, working_age(age_band="pension_age"))


@pytest.mark.parametrize(("top_up", "mig", "charge"), [("0.00", "112.50", "37.50"), ("0.01", "112.51", "37.49")])
def test_the_smallest_top_ups(council, top_up: str, mig: str, charge: str) -> None:
    council(mig_weekly_top_up=top_up)
    result = financial_assessment(Y2025, working_age())
    assert (result["mig"], result["assessed_weekly_charge"]) == (mig, charge)
    [step] = mig_steps(result).values()
    said = "The council adds"
    assert (said in step["explanation"]) is (top_up != "0.00")
    if top_up == "0.01":
        assert step["explanation"].endswith("The council adds £0.01 a week to each amount: £112.50 + £0.01 = "
                                            "£112.51.")


def test_the_largest_top_up_allowed_is_accepted(council) -> None:
    council(mig_weekly_top_up="1000.00")
    assert financial_assessment(Y2025, working_age())["mig"] == "1112.50"


# ---------------------------------------------------------------- worked examples


def test_a_worked_example_with_a_five_pound_top_up(council) -> None:
    """A single person of 30 with a disability premium, 2025-26, the council adding £5.00 a week to every amount.

    By hand:
      capital: savings £15,000.00, £750.00 above £14,250.00 = 3 bands of £250  -> tariff income £3.00
      income counted: ESA £150.00 + PIP daily living £72.65                    = £222.65
        (PIP mobility £28.70 not counted)
      MIG: personal amount £112.50 + £5.00                                     = £117.50
           disability premium £49.65 + £5.00                                   = £54.65
                                                                               = £172.15
      housing: Council Tax                                                       £4.20
      disability-related expenditure: laundry                                    £6.00
      assessed = 222.65 + 3.00 - 172.15 - 4.20 - 6.00                          = £43.30 a week
      (without the top-up it would be £53.30: £10.00 more, £5.00 for each of the two amounts)
      support costs £120.00 a week                                              -> contribution £43.30
    """
    council(mig_weekly_top_up="5.00")
    answers = working_age(premiums=["disability"], capital={"savings": "15000.00"},
                          income_weekly={"esa": "150.00", "pip_daily_living": "72.65", "pip_mobility": "28.70"},
                          housing_weekly={"council_tax": "4.20"}, dre_weekly=[{"item": "Laundry", "amount": "6.00"}])
    result = financial_assessment(Y2025, answers, "120.00")
    assert result["tariff_income"] == "3.00"
    assert result["income_counted"] == "222.65"
    assert result["mig"] == "172.15"
    assert result["assessed_weekly_charge"] == result["weekly_contribution"] == "43.30"
    steps = mig_steps(result)
    assert steps["Minimum income guarantee: single person aged 25 or over, under Pension Credit age"] == {
        "label": "Minimum income guarantee: single person aged 25 or over, under Pension Credit age",
        "amount": "117.50",
        "explanation": "Protected so you have enough to live on: the national amount for 2025 to 2026, £112.50 a week "
                       "(regulation 7(2)(b) of the Regulations). The council adds £5.00 a week to each amount: "
                       "£112.50 + £5.00 = £117.50."}
    assert steps["Minimum income guarantee: disability premium, single person"]["amount"] == "54.65"
    assert [(p["figure"], p["source"], p["top_up"], p["weekly"]) for p in result["mig_parts"]] == [
        ("single_25_to_pension_age", "national", "5.00", "117.50"),
        ("disability_premium_single", "national", "5.00", "54.65")]


def test_the_top_up_is_added_to_each_childs_amount(council) -> None:
    """A pensioner with 2 dependent children, 2023-24, top-up £5.00: 214.35 + 5.00 = £219.35, and for each
    child 94.90 + 5.00 = £99.90, 2 x 99.90 = £199.80; MIG £419.15."""
    council(mig_weekly_top_up="5.00")
    result = financial_assessment(Y2023, {"route": "full", "age_band": "pension_age", "dependent_children": 2,
                                          "income_weekly": {"state_pension": "450.00"}})
    assert result["mig"] == "419.15"
    assert result["assessed_weekly_charge"] == "30.85"  # 450.00 - 419.15
    child = mig_steps(result)["Minimum income guarantee: each child in the household"]
    assert child["amount"] == "199.80"
    assert child["explanation"].endswith("£94.90 + £5.00 = £99.90. For 2 children: 2 × £99.90 = £199.80.")


def test_a_council_amount_above_the_national_one_is_used_and_said_so(council) -> None:
    council(mig={"single_25_to_pension_age": "120.00"}, mig_weekly_top_up="2.50")
    result = financial_assessment(Y2025, working_age())
    assert (result["mig"], result["assessed_weekly_charge"]) == ("122.50", "27.50")  # 150 - (120.00 + 2.50)
    [step] = mig_steps(result).values()
    assert step["explanation"] == (
        "Protected so you have enough to live on: the council's own amount, £120.00 a week, more than the national "
        "amount for 2025 to 2026 of £112.50 (regulation 7(2)(b) of the Regulations). The council adds £2.50 a week to "
        "each amount: £120.00 + £2.50 = £122.50.")


# ---------------------------------------------------------------- 2026-27: a national amount not recorded


def test_2026_27_working_age_fails_naming_the_figure_without_the_councils_amount(council) -> None:
    council(mig_weekly_top_up="5.00")  # a top-up alone does not stand in for a missing national amount
    with pytest.raises(ValueError, match=r"the 2026-27 minimum income guarantee amount for a single person aged 25 "
                                         r"or over, under Pension Credit age \(regulation 7\(2\)\(b\) of the "
                                         r"Regulations\) is not in charging.json .* or the council's own amount as "
                                         r"council.mig.single_25_to_pension_age"):
        financial_assessment(Y2026, working_age())


def test_2026_27_working_age_works_once_the_council_sets_its_own_amount(council) -> None:
    council(mig={"single_25_to_pension_age": "125.00"})
    result = financial_assessment(Y2026, working_age(), "60.00")
    assert result["year"] == "2026-27"
    assert (result["mig"], result["assessed_weekly_charge"], result["weekly_contribution"]) == (
        "125.00", "25.00", "25.00")  # 150.00 - 125.00
    [step] = mig_steps(result).values()
    assert step["explanation"] == ("Protected so you have enough to live on: the council's own amount, £125.00 a "
                                   "week (regulation 7(2)(b) of the Regulations).")
    assert result["mig_parts"][0]["source"] == "council" and result["mig_parts"][0]["national"] is None
    # a category the council left alone still stops with the named error
    with pytest.raises(ValueError, match=r"2026-27 minimum income guarantee amount for a disability premium, "
                                         r"single person \(regulation 7\(5\)\(a\)"):
        financial_assessment(Y2026, working_age(premiums=["disability"]))


# ---------------------------------------------------------------- the letter


def test_the_letter_says_where_each_figure_came_from(council) -> None:
    council(mig={"single_25_to_pension_age": "125.00"}, mig_weekly_top_up="5.00")
    result = financial_assessment(Y2026, working_age(income_weekly={"esa": "170.00"}), "60.00")
    assert result["weekly_contribution"] == "40.00"  # 170.00 - (125.00 + 5.00)
    letter = financial_assessment_letter(Y2026, PERSON, result)["body"]
    flat = " ".join(letter.split())
    assert ("Minimum income guarantee: single person aged 25 or over, under Pension Credit age: £130.00. Protected "
            "so you have enough to live on: the council's own amount, £125.00 a week (regulation 7(2)(b) of the "
            "Regulations). The council adds £5.00 a week to "
            "each amount: £125.00 + £5.00 = £130.00.") in flat
    assert COUNCIL_SAID in flat
    assert problems(letter, "financial_assessment", "Aisha") == []


@pytest.mark.parametrize("choices", [{"mig_weekly_top_up": "0.01"}, {"mig": {"single_25_to_pension_age": "112.50"}}])
def test_a_top_up_alone_or_an_own_amount_alone_is_named_in_the_letter(council, choices: dict[str, Any]) -> None:
    council(**choices)
    letter = financial_assessment_letter(Y2025, PERSON, financial_assessment(Y2025, working_age()))["body"]
    assert COUNCIL_SAID in " ".join(letter.split())


def test_a_letter_with_national_amounts_only_does_not_mention_the_councils(council) -> None:
    letter = financial_assessment_letter(Y2025, PERSON, financial_assessment(Y2025, working_age()))["body"]
    flat = " ".join(letter.split())
    assert "the national amount for 2025 to 2026 (regulation 7(2)(b) of the Regulations)." in flat
    assert "council's own" not in flat and "The council sets some of its own amounts" not in flat
    assert problems(letter, "financial_assessment", "Aisha") == []


# ---------------------------------------------------------------- bad values in the file


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({"mig_weekly_top_up": "-1.00"}, r"council.mig_weekly_top_up must not be negative, got '-1.00'"),
        ({"mig_weekly_top_up": "five"}, r"council.mig_weekly_top_up must be an amount of money in pounds"),
        ({"mig_weekly_top_up": "5.005"}, r"council.mig_weekly_top_up must be in pounds and pence \(at most 2"),
        ({"mig_weekly_top_up": "1000.01"}, r"council.mig_weekly_top_up is £1,000.01, more than £1,000.00"),
        ({"mig_weekly_top_up": True}, r"council.mig_weekly_top_up must be an amount of money in pounds, got bool"),
        ({"mig": {"child": "-100.00"}}, r"council.mig.child must not be negative"),
        ({"mig": {"child": "plenty"}}, r"council.mig.child must be an amount of money in pounds"),
        ({"mig": {"child": "100.001"}}, r"council.mig.child must be in pounds and pence"),
        ({"mig": {"carer_premium": "1000.01"}}, r"council.mig.carer_premium is £1,000.01, more than £1,000.00"),
        ({"mig": {"lone_parent": "0.00"}}, r"council.mig.lone_parent must be more than £0.00 a week, or null"),
        ({"mig": {"lone_parent": ""}}, r"council.mig.lone_parent must be more than £0.00 a week, or null .* ''"),
        ({"mig": {"pensioner": "250.00"}}, r"council.mig has unknown key\(s\) \['pensioner'\]"),
        ({"mig": ["single_18_24", "100.00"]}, r"council.mig must be an object with some of"),
    ],
)
def test_a_bad_council_value_is_refused_when_read_naming_the_key(council, choices: dict[str, Any],
                                                                  message: str) -> None:
    council(**choices)
    with pytest.raises(ValueError, match=r"charging figures: charging.json " + message):
        financial_assessment(Y2025, working_age())
