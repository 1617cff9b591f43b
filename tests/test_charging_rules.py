"""Financial assessment rules (handlers/charging.py, contract C1): what a person is told they pay.

Figures are the shipped ones (processes/config/charging.json); the examples are worked out by hand
from the published amounts, in the comments, not by calling the code."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.registry import HandlerContext, load_registry
from handlers import charging
from handlers.charging import charging_year, financial_assessment, reablement_charging

SHIPPED = charging.CONFIG_DIR / charging.CONFIG_FILE


def ctx(when: datetime) -> HandlerContext:
    return HandlerContext(case_id=1, instance_id=1, process_id="financial_assessment", element_id="assess",
                          now=when)


Y2025 = ctx(datetime(2025, 6, 2, 10, 0, tzinfo=timezone.utc))  # 2025-26
Y2023 = ctx(datetime(2023, 9, 1, 10, 0, tzinfo=timezone.utc))  # 2023-24
Y2026 = ctx(datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc))  # 2026-27


def working_age(**changes: Any) -> dict[str, Any]:
    """A single person of 25 with enough counted income that every pound of tariff income shows."""
    answers: dict[str, Any] = {
        "route": "full", "age_band": "25_to_pension_age", "couple": False, "dependent_children": 0,
        "premiums": [], "capital": {}, "income_weekly": {"esa": "400.00"}, "housing_weekly": {}, "dre_weekly": [],
    }
    answers.update(changes)
    return answers


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of charging.json whose council part a test changes."""
    monkeypatch.setattr(charging, "CONFIG_DIR", tmp_path)

    def write(**council: Any) -> None:
        data = json.loads(SHIPPED.read_text())
        data["council"].update(council)
        (tmp_path / charging.CONFIG_FILE).write_text(json.dumps(data))

    write()
    return write


# ---------------------------------------------------------------- the worked examples


def test_state_pension_only_below_the_lower_limit_pays_what_regulation_7_leaves() -> None:
    """A single pensioner, £5,000 savings, State Pension of £250.00 a week (new State Pension plus a
    protected payment), nothing else, no rent or disability costs, in 2023-24.

    By hand, from SI 2023/277 (regulation 7(2)(c) for 2023-24: £214.35):
      capital £5,000.00 is not more than £14,250.00        -> tariff income £0.00
      income counted: State Pension                         = £250.00
      minimum income guarantee, single, Pension Credit age  = £214.35
      assessed charge = 250.00 + 0.00 - 214.35 - 0 - 0      = £35.65 a week
      the support costs £120.00 a week, more than £35.65    -> contribution £35.65
    """
    answers = {"route": "full", "age_band": "pension_age", "capital": {"savings": "5000"},
               "income_weekly": {"state_pension": "250.00"}}
    result = financial_assessment(Y2023, answers, "120.00")
    assert result["year"] == "2023-24"
    assert result["tariff_income"] == "0.00"
    assert result["income_counted"] == "250.00"
    assert result["mig"] == "214.35"
    assert result["assessed_weekly_charge"] == "35.65"
    assert result["weekly_contribution"] == "35.65"
    assert result["full_cost"] is False
    assert "SI 2023/277" in result["figures_source"]
    labels = [s["label"] for s in result["steps"]]
    assert "Minimum income guarantee: single person of Pension Credit age" in labels
    assert result["steps"][-1] == {"label": "Your weekly contribution", "amount": "35.65",
                                   "explanation": "What you pay each week towards your care and support. "
                                                  "The council pays the rest of the £120.00 a week."}


def test_the_full_new_state_pension_alone_pays_nothing_in_2026_27() -> None:
    """A single pensioner in December 2026 whose only income is the full new State Pension, £241.30 a
    week from April 2026, savings £14,250.00, no housing costs.

    By hand (regulation 7(2)(c) for 2026-27: £241.45, DHSC February 2026):
      tariff: £14,250.00 is not more than the lower limit  -> £0.00
      241.30 + 0.00 - 241.45 = -0.15, never below zero      -> £0.00 a week
    """
    answers = {"route": "full", "age_band": "pension_age", "capital": {"savings": "14250.00"},
               "income_weekly": {"state_pension": "241.30"}}
    result = financial_assessment(Y2026, answers, "180.00")
    assert (result["year"], result["mig"], result["income_counted"]) == ("2026-27", "241.45", "241.30")
    assert result["weekly_contribution"] == "0.00"
    assert result["reason"].startswith("your income is not more than what is protected")


def test_state_pension_with_tariff_income_in_2025_26_by_hand() -> None:
    """A single pensioner in 2025-26: State Pension £275.00 a week (with additional State Pension),
    savings £16,000.00.

      tariff: 16,000 - 14,250 = 1,750 = 7 bands of £250     -> £7.00
      MIG, single of Pension Credit age (7(2)(c), 2025-26)  = £232.60
      275.00 + 7.00 - 232.60                                 = £49.40 a week
    """
    answers = {"route": "full", "age_band": "pension_age", "capital": {"savings": "16000"},
               "income_weekly": {"state_pension": "275.00"}}
    result = financial_assessment(Y2025, answers, "200")
    assert (result["tariff_income"], result["mig"], result["weekly_contribution"]) == ("7.00", "232.60", "49.40")


def test_a_working_age_example_with_disregards_tariff_and_premium_by_hand() -> None:
    """Single, 30, 2025-26 (LAC(DHSC)(2025)1: 25 or over £112.50, disability premium £49.65).
    Savings £15,000.00; ESA £200.00, PIP daily living £73.90, PIP mobility £29.20, earnings £50.00;
    rent after Housing Benefit £10.00; extra heating £5.50.

      tariff: 15,000 - 14,250 = 750 = 3 bands of £250      -> £3.00
      counted: 200.00 + 73.90 (mobility and earnings not)   = £273.90
      MIG: 112.50 + 49.65                                    = £162.15
      charge: 273.90 + 3.00 - 162.15 - 10.00 - 5.50          = £99.25
    """
    answers = working_age(
        premiums=["disability"], capital={"savings": "15,000"},
        income_weekly={"esa": "200", "pip_daily_living": "73.90", "pip_mobility": "29.20", "earnings": "£50"},
        housing_weekly={"rent": "10.00"}, dre_weekly=[{"item": "Extra heating", "amount": "5.50"}])
    result = financial_assessment(Y2025, answers, 250)
    assert (result["tariff_income"], result["income_counted"], result["mig"]) == ("3.00", "273.90", "162.15")
    assert (result["housing"], result["dre"]) == ("10.00", "5.50")
    assert result["assessed_weekly_charge"] == result["weekly_contribution"] == "99.25"
    assert result["weekly_cost"] == "250.00"
    assert {d["item"]: d["amount"] for d in result["disregarded"]} == {"PIP mobility part": "29.20",
                                                                       "Earnings": "50.00"}
    assert all("Schedule 1, paragraph 8" in d["why"] or "regulation 14" in d["why"] for d in result["disregarded"])


def test_dla_mobility_is_not_counted_and_dla_care_is() -> None:
    result = financial_assessment(Y2025, working_age(income_weekly={"dla_mobility": "77.05", "dla_care": "200"}))
    assert result["income_counted"] == "200.00"
    assert result["disregarded"][0]["item"] == "DLA mobility part"
    assert result["assessed_weekly_charge"] == "87.50"  # 200.00 - 112.50


# ---------------------------------------------------------------- capital


def test_above_the_upper_capital_limit_pays_the_full_cost() -> None:
    result = financial_assessment(Y2025, working_age(capital={"savings": "20000", "investments": "3251"}), "412.30")
    assert result["capital_total"] == "23251.00"
    assert result["full_cost"] is True
    assert result["weekly_contribution"] == result["assessed_weekly_charge"] == "412.30"
    assert result["reason"] == "your capital of £23,251.00 is above the upper limit of £23,250.00"
    assert result["income_counted"] is None  # not needed, not pretended


@pytest.mark.parametrize(
    ("capital", "tariff"),
    [
        ("14249.00", "0.00"),   # £1 below the lower limit
        ("14250.00", "0.00"),   # exactly at the lower limit: nothing counted
        ("14250.01", "1.00"),   # a penny into the first band is a part of £250
        ("14251.00", "1.00"),   # £1 above the lower limit
        ("14500.00", "1.00"),   # the last pound of the first £250 band
        ("14501.00", "2.00"),   # the first pound of the next band
        ("14750.00", "2.00"),
        ("23249.00", "36.00"),  # £1 below the upper limit: 8,999 / 250 = 35.996 -> 36 bands
        ("23250.00", "36.00"),  # exactly at the upper limit: still assessed, 9,000 / 250 = 36
    ],
)
def test_tariff_income_is_a_pound_for_every_250_or_part(capital: str, tariff: str) -> None:
    result = financial_assessment(Y2025, working_age(capital={"savings": capital}), "1000")
    assert result["full_cost"] is False
    assert result["tariff_income"] == tariff
    # 400.00 counted + tariff - 112.50 MIG
    assert result["assessed_weekly_charge"] == f"{400 + float(tariff) - 112.50:.2f}"


def test_at_the_lower_limit_the_letter_says_none_of_the_capital_counts() -> None:
    steps = {s["label"]: s for s in financial_assessment(Y2025, working_age(capital={"savings": "14250"}))["steps"]}
    assert steps["Tariff income from capital"] == {
        "label": "Tariff income from capital", "amount": "0.00",
        "explanation": "Your capital is not more than £14,250.00, so none of it is counted as income."}
    steps = {s["label"]: s for s in financial_assessment(Y2025, working_age(capital={"savings": "14251"}))["steps"]}
    assert steps["Tariff income from capital"]["explanation"].startswith(
        "Your capital is £1.00 more than £14,250.00. We count £1.00 a week for every £250.00, or part of £250.00: "
        "1 × £1.00")


def test_one_pound_above_the_upper_limit_is_the_full_cost_and_at_it_is_not() -> None:
    at = financial_assessment(Y2025, working_age(capital={"savings": "23250"}), "500")
    above = financial_assessment(Y2025, working_age(capital={"savings": "23250.01"}), "500")
    assert (at["full_cost"], at["weekly_contribution"]) == (False, "323.50")  # 400 + 36 - 112.50
    assert (above["full_cost"], above["weekly_contribution"]) == (True, "500.00")


def test_a_council_may_raise_the_capital_limits(config_dir) -> None:
    config_dir(upper_capital_limit="30000.00")
    result = financial_assessment(Y2025, working_age(capital={"savings": "25000"}), "1000")
    assert result["full_cost"] is False
    assert result["tariff_income"] == "43.00"  # 10,750 / 250 = 43 bands


@pytest.mark.parametrize(("key", "value", "national"), [("upper_capital_limit", "23249.99", "£23,250.00"),
                                                        ("lower_capital_limit", "14000", "£14,250.00")])
def test_a_council_may_not_lower_the_capital_limits(config_dir, key: str, value: str, national: str) -> None:
    config_dir(**{key: value})
    with pytest.raises(ValueError, match=rf"council.{key} .* is below the national .* of {national}"):
        financial_assessment(Y2025, working_age())


def test_a_council_lower_limit_at_or_above_the_upper_limit_is_refused(config_dir) -> None:
    config_dir(lower_capital_limit="23250.00")
    with pytest.raises(ValueError, match=r"the lower capital limit £23,250.00 must be below the upper capital "
                                         r"limit £23,250.00 \(2023-24\)"):
        financial_assessment(Y2025, working_age())
    config_dir(lower_capital_limit="23249.99")
    assert financial_assessment(Y2025, working_age(capital={"savings": "23250"}))["tariff_income"] == "1.00"


def test_a_council_limit_equal_to_the_national_one_is_allowed(config_dir) -> None:
    config_dir(upper_capital_limit="23250.00")
    assert financial_assessment(Y2025, working_age(capital={"savings": "23250"}))["full_cost"] is False


# ---------------------------------------------------------------- minimum income guarantee


@pytest.mark.parametrize(
    ("changes", "mig"),
    [
        ({"age_band": "18_24"}, "89.15"),
        ({"age_band": "25_to_pension_age"}, "112.50"),
        ({"premiums": ["disability"]}, "162.15"),                          # 112.50 + 49.65
        ({"premiums": ["disability", "enhanced_disability"]}, "186.40"),   # + 24.25
        ({"age_band": "18_24", "premiums": ["enhanced_disability"]}, "113.40"),  # 89.15 + 24.25
    ],
)
def test_minimum_income_guarantee_by_band_and_premium(changes: dict[str, Any], mig: str) -> None:
    assert financial_assessment(Y2025, working_age(**changes))["mig"] == mig


def test_minimum_income_guarantee_for_a_pensioner_in_2023_24_and_a_child() -> None:
    result = financial_assessment(Y2023, {"route": "full", "age_band": "pension_age", "dependent_children": 2})
    assert result["mig"] == "404.15"  # 214.35 + 2 x 94.90


@pytest.mark.parametrize(
    ("changes", "figure"),
    [
        ({"couple": True}, r"member of a couple \(regulation 7\(4\)\(a\)"),
        ({"dependent_children": 1}, r"lone parent \(regulation 7\(3\)"),
        ({"premiums": ["carer"]}, r"carer premium \(regulation 7\(7\)"),
    ],
)
def test_an_amount_nobody_sourced_is_an_error_naming_it(changes: dict[str, Any], figure: str) -> None:
    with pytest.raises(ValueError, match=rf"the 2025-26 minimum income guarantee amount for a {figure}.*"
                                         r"is not in charging.json .*charging.json\): it could not be sourced"):
        financial_assessment(Y2025, working_age(**changes))


def test_an_amount_nobody_sourced_for_2026_27_is_an_error_naming_year_and_file() -> None:
    with pytest.raises(ValueError, match=r"the 2026-27 minimum income guarantee amount for a single person aged 25 "
                                         r"or over, under Pension Credit age \(regulation 7\(2\)\(b\) of the "
                                         r"Regulations\) is not in charging.json \(.*processes/config/charging.json\)"):
        financial_assessment(Y2026, working_age())


def test_housing_and_disability_costs_are_protected_and_the_charge_is_never_negative() -> None:
    result = financial_assessment(Y2025, working_age(
        income_weekly={"universal_credit": "120.00"}, housing_weekly={"rent": "20", "council_tax": "5"}))
    assert result["assessed_weekly_charge"] == result["weekly_contribution"] == "0.00"  # 120 - 112.50 - 25 < 0
    assert result["reason"].startswith("your income is not more than what is protected")


def test_income_exactly_what_is_protected_pays_nothing_and_says_why() -> None:
    result = financial_assessment(Y2025, working_age(income_weekly={"esa": "112.50"}))
    assert result["assessed_weekly_charge"] == "0.00"
    assert result["reason"].startswith("your income is not more than what is protected")
    penny = financial_assessment(Y2025, working_age(income_weekly={"esa": "112.51"}))
    assert (penny["assessed_weekly_charge"], penny["reason"]) == ("0.01", "worked out from your income and capital")


def test_the_councils_standard_disability_allowance_applies_with_a_disability_benefit(config_dir) -> None:
    config_dir(dre_standard_allowance="20.00")
    with_benefit = financial_assessment(Y2025, working_age(
        income_weekly={"esa": "200", "attendance_allowance": "73.90"},
        dre_weekly=[{"item": "Laundry", "amount": "4.00"}]))
    assert with_benefit["dre"] == "20.00"
    assert with_benefit["assessed_weekly_charge"] == "141.40"  # 273.90 - 112.50 - 20.00
    without = financial_assessment(Y2025, working_age(income_weekly={"esa": "200"},
                                                      dre_weekly=[{"item": "Laundry", "amount": "4.00"}]))
    assert without["dre"] == "4.00"
    # itemised costs equal to the standard allowance: the person's own items are what the letter lists
    equal = financial_assessment(Y2025, working_age(
        income_weekly={"esa": "200", "attendance_allowance": "73.90"},
        dre_weekly=[{"item": "Laundry", "amount": "20.00"}]))
    labels = [s["label"] for s in equal["steps"]]
    assert equal["dre"] == "20.00"
    assert "Extra cost of disability: Laundry" in labels
    assert "Disability-related expenditure allowance" not in labels


# ---------------------------------------------------------------- the cost and the council's minimum


def test_the_contribution_is_never_more_than_the_cost() -> None:
    result = financial_assessment(Y2025, working_age(), "150.00")  # assessed 400 - 112.50 = 287.50
    assert result["assessed_weekly_charge"] == "287.50"
    assert result["weekly_contribution"] == "150.00"
    assert result["full_cost"] is True
    assert "no more" in result["reason"]


def test_an_assessed_charge_equal_to_the_cost_is_the_full_cost_and_a_penny_less_is_not() -> None:
    equal = financial_assessment(Y2025, working_age(), "287.50")
    below = financial_assessment(Y2025, working_age(), "287.51")
    assert (equal["full_cost"], equal["weekly_contribution"]) == (True, "287.50")
    assert (below["full_cost"], below["weekly_contribution"]) == (False, "287.50")


def test_without_a_known_cost_the_assessed_charge_is_the_contribution() -> None:
    result = financial_assessment(Y2025, working_age())
    assert result["weekly_cost"] is None
    assert result["weekly_contribution"] == "287.50"


def test_a_charge_under_the_councils_minimum_is_not_charged(config_dir) -> None:
    config_dir(minimum_weekly_charge="2.00")
    under = financial_assessment(Y2025, working_age(income_weekly={"esa": "114.49"}))  # 1.99
    at = financial_assessment(Y2025, working_age(income_weekly={"esa": "114.50"}))     # 2.00
    assert under["weekly_contribution"] == "0.00"
    assert under["reason"] == "your assessed charge is under the council's minimum weekly charge of £2.00"
    assert at["weekly_contribution"] == "2.00"


# ---------------------------------------------------------------- routes


def test_light_touch_pays_the_full_cost_with_its_reason() -> None:
    result = financial_assessment(Y2025, {"route": "light_touch"}, "312.75")
    assert result["full_cost"] is True
    assert result["weekly_contribution"] == "312.75"
    assert "chose to pay the full cost" in result["reason"]
    assert result["capital_total"] is None and result["mig"] is None


def test_declining_to_disclose_pays_the_full_cost_with_its_reason() -> None:
    result = financial_assessment(Y2025, {"route": "declined", "age_band": "pension_age"})
    assert result["full_cost"] is True
    assert result["weekly_contribution"] is None  # the cost is not known yet: no invented figure
    assert result["reason"].startswith("you chose not to tell us about your income and savings")
    assert "set when your support is planned" in result["steps"][-1]["explanation"]


# ---------------------------------------------------------------- the year


@pytest.mark.parametrize(
    ("when", "year"),
    [
        (datetime(2026, 4, 5, 22, 59, tzinfo=timezone.utc), "2025-26"),  # 23:59 on 5 April in London (BST)
        (datetime(2026, 4, 5, 23, 0, tzinfo=timezone.utc), "2026-27"),   # 00:00 on 6 April in London
        (datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc), "2025-26"),
        (datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc), "2026-27"),
        (datetime(2099, 4, 6, 12, 0, tzinfo=timezone.utc), "2099-00"),
    ],
)
def test_the_charging_year_starts_on_6_april(when: datetime, year: str) -> None:
    assert charging_year(when) == year


def test_the_figures_change_on_6_april() -> None:
    before = financial_assessment(ctx(datetime(2026, 4, 5, 12, tzinfo=timezone.utc)), working_age(age_band="18_24"))
    after = financial_assessment(ctx(datetime(2026, 4, 6, 12, tzinfo=timezone.utc)), working_age(age_band="18_24"))
    assert (before["year"], before["mig"]) == ("2025-26", "89.15")
    assert (after["year"], after["mig"]) == ("2026-27", "95.40")


@pytest.mark.parametrize("when", [datetime(2024, 6, 1, tzinfo=timezone.utc), datetime(2023, 4, 5, tzinfo=timezone.utc)])
def test_a_missing_year_is_an_error_naming_the_year_and_the_file(when: datetime) -> None:
    year = charging_year(when)
    with pytest.raises(ValueError, match=rf"no figures for the charging year {year} in charging.json "
                                         rf"\(.*processes/config/charging.json\)"):
        financial_assessment(ctx(when), working_age())


def test_a_year_without_a_source_is_refused(config_dir, tmp_path: Path) -> None:
    data = json.loads(SHIPPED.read_text())
    del data["2025-26"]["source"]
    (tmp_path / charging.CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"charging.json 2025-26.source must say where the figures come from"):
        financial_assessment(Y2025, working_age())


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"capital": {"savings": "-1"}}, r"answers.capital.savings must not be negative, got '-1'"),
        ({"capital": {"savings": "lots"}}, r"answers.capital.savings must be an amount of money in pounds"),
        ({"capital": {"savings": "100000000.01"}}, r"answers.capital.savings is £100,000,000.01, more than"),
        ({"capital": {"gold": "5"}}, r"answers.capital: unknown item\(s\) \['gold'\]"),
        ({"income_weekly": {"esa": "10000.01"}}, r"answers.income_weekly.esa is £10,000.01, more than £10,000.00"),
        ({"income_weekly": {"esa": "12.345"}}, r"answers.income_weekly.esa must be in pounds and pence"),
        ({"income_weekly": {"esa": True}}, r"answers.income_weekly.esa must be an amount of money in pounds, "
                                           r"got bool"),
        ({"income_weekly": {"winnings": "5"}}, r"answers.income_weekly: unknown item\(s\) \['winnings'\]"),
        ({"housing_weekly": {"rent": "NaN"}}, r"answers.housing_weekly.rent must be an amount of money"),
        ({"dre_weekly": [{"item": "", "amount": "3"}]}, r"answers.dre_weekly\[0\].item must say what"),
        ({"dre_weekly": [{"item": "Taxi", "amount": "-3"}]}, r"answers.dre_weekly\[0\].amount must not be negative"),
        ({"route": "partial"}, r"answers.route must be one of \['full', 'light_touch', 'declined'\]"),
        ({"age_band": "65_plus"}, r"answers.age_band must be one of"),
        ({"age_band": None}, r"answers.age_band is needed for a full financial assessment"),
        ({"couple": "yes"}, r"answers.couple must be true or false"),
        ({"dependent_children": -1}, r"answers.dependent_children must be a whole number from 0 to 20"),
        ({"dependent_children": 2.5}, r"answers.dependent_children must be a whole number"),
        ({"premiums": ["severe"]}, r"answers.premiums must be a list of"),
        ({"premiums": ["carer", "carer"]}, r"answers.premiums names a premium twice"),
        ({"pets": 2}, r"answers: unknown question\(s\) \['pets'\]"),
    ],
)
def test_bad_answers_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    answers = working_age(**changes)
    kept = copy.deepcopy(answers)
    with pytest.raises(ValueError, match=message):
        financial_assessment(Y2025, answers, "100")
    assert answers == kept  # nothing the caller gave is changed


@pytest.mark.parametrize(("cost", "message"), [("-5", "weekly_cost must not be negative"),
                                               ("a lot", "weekly_cost must be an amount of money"),
                                               ("50000.01", "weekly_cost is £50,000.01, more than £50,000.00")])
def test_a_bad_weekly_cost_is_refused(cost: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        financial_assessment(Y2025, working_age(), cost)


def test_answers_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(ValueError, match="answers must be the financial assessment form's answers"):
        financial_assessment(Y2025, "full")  # type: ignore[arg-type]


def test_the_largest_amounts_allowed_are_accepted() -> None:
    result = financial_assessment(Y2025, working_age(income_weekly={"esa": "10000.00"}), "50000.00")
    assert result["income_counted"] == "10000.00"


# ---------------------------------------------------------------- reablement and the registry


@pytest.mark.parametrize(("after", "weeks", "charged"), [("charge", 5, False), ("charge", 6, True),
                                                         ("free", 6, False), ("free", 30, False)])
def test_reablement_is_free_for_six_weeks_then_per_the_council(config_dir, after: str, weeks: int,
                                                               charged: bool) -> None:
    config_dir(reablement_after=after)
    assert reablement_charging(Y2025, weeks)["charged"] is charged


def test_reablement_free_for_fewer_than_six_weeks_is_refused(config_dir) -> None:
    config_dir(reablement_free_weeks=4)
    with pytest.raises(ValueError, match="reablement_free_weeks must be .* at least the 6 free by law"):
        reablement_charging(Y2025, 1)


def test_the_handlers_are_registered_for_diagrams() -> None:
    registry = load_registry()
    assert registry.get("financial_assessment") is financial_assessment
    assert [p["name"] for p in registry.parameters("financial_assessment")] == ["answers", "weekly_cost"]
    # one reablement rule, under the name processes/reablement.bpmn uses (handlers.budget has none of its own)
    assert registry.get("reablement_charging") is reablement_charging
    assert "reablement_charge" not in registry.names()
