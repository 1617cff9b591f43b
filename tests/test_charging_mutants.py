"""Boundaries the mutation check of December 2026 (docs/charging.md, "Mutation check") found no test for.

`Decimal(0) < assessed < minimum` (the council's minimum weekly charge): made `<=`, a person whose income is
exactly what is protected (assessed charge £0.00) was told "The council does not charge amounts under £5.00 a
week, so you pay nothing" as well, and the reason became the minimum charge instead of "not more than what is
protected". Worked by hand, 2026-27: State Pension £241.45 a week − minimum income guarantee £241.45
(regulation 7(2)(c)) = £0.00; a council minimum of £5.00 does not apply to nothing.
"""

from __future__ import annotations

from handlers.charging import financial_assessment
from tests.test_charging_letter_wording import PENSIONER
from tests.test_council_mig import Y2026, council  # noqa: F401 - fixture


def test_a_charge_of_nothing_is_not_also_under_the_councils_minimum(council):  # noqa: F811
    council(minimum_weekly_charge="5.00")
    result = financial_assessment(Y2026, {**PENSIONER, "income_weekly": {"state_pension": "241.45"}})
    assert (result["assessed_weekly_charge"], result["weekly_contribution"]) == ("0.00", "0.00")
    assert "Minimum weekly charge" not in [s["label"] for s in result["steps"]]
    assert result["reason"].startswith("your income is not more than what is protected")
    # a penny more is under the minimum, and said so
    result = financial_assessment(Y2026, {**PENSIONER, "income_weekly": {"state_pension": "241.46"}})
    assert result["weekly_contribution"] == "0.00"
    assert "Minimum weekly charge" in [s["label"] for s in result["steps"]]


# ---------------------------------------------------------------- handlers/budget.py and the children's limit

import pytest  # noqa: E402

from handlers import budget  # noqa: E402
from handlers.budget import cost_support_plan, personal_budget  # noqa: E402
from tests.test_boundaries_money import config_dir, write_config  # noqa: E402,F401 - fixture
from tests.test_costed_plan import BUDGET, CTX, HOME_CARE  # noqa: E402
from tests.test_council_mig import Y2023  # noqa: E402


def test_twenty_dependent_children_is_the_most_allowed_and_twenty_one_is_refused():
    """`0 <= children <= MAX_CHILDREN` made `<`: 20 was refused. 2023-24 has the child amount (£94.90)."""
    answers = {**PENSIONER, "dependent_children": 20, "income_weekly": {"state_pension": "5000.00"}}
    result = financial_assessment(Y2023, answers)
    [child] = [p for p in result["mig_parts"] if p["figure"] == "child"]
    assert (child["times"], child["amount"]) == (20, "1898.00")  # 20 × £94.90
    with pytest.raises(ValueError, match="children"):
        financial_assessment(Y2023, {**answers, "dependent_children": 21})


def test_an_assessed_charge_equal_to_the_cost_is_not_called_capped():
    """`elif assessed > cost` made `>=`: a charge exactly the cost was described as cut down to the cost."""
    plan = cost_support_plan(CTX, [HOME_CARE], BUDGET,
                             financial_assessment={"assessed_weekly_charge": "175.00", "full_cost": False})
    assert plan["contribution"]["capped_at_cost"] is False
    assert plan["message"].endswith("The person pays £175.00 a week and the council pays £0.00.")
    assert "never pays more than their support costs" not in plan["message"]


def test_a_unit_cost_of_exactly_the_limit_is_allowed_and_a_penny_more_is_not():
    """`cost > MAX_UNIT_COST` made `>=`: £10,000.00 for one unit was refused."""
    plan = cost_support_plan(CTX, [{**HOME_CARE, "unit_cost": "10000.00", "units_per_week": 1}],
                             {"weekly_equivalent": "10000.00"})
    assert plan["weekly_cost"] == "10000.00"
    with pytest.raises(ValueError, match="unit_cost"):
        cost_support_plan(CTX, [{**HOME_CARE, "unit_cost": "10000.01", "units_per_week": 1}],
                          {"weekly_equivalent": "20000.00"})


NEED_MET_BY_CARER = {"personal_care": {"level": "moderate", "met_by_carer": True}}


def test_a_carer_deduction_of_100_percent_is_allowed_and_more_is_not(config_dir):  # noqa: F811
    """`percent > 100` made `>=`: a council deducting all of the points for care a carer gives was refused."""
    name = write_config(config_dir, "all.json", carer_deduction={"percent": 100})
    result = personal_budget(CTX, needs=NEED_MET_BY_CARER, config=name)
    assert result["total_points"] == 0
    write_config(config_dir, "more.json", carer_deduction={"percent": "100.01"})
    with pytest.raises(ValueError, match="percent"):
        budget.load_config("more.json")


def test_no_deduction_for_a_carer_is_said_as_no_reduction(config_dir):  # noqa: F811
    """`points_after < points_before` made `<=`: with a 0% carer deduction the explanation said "Help from your
    carer reduced your points by 0" instead of "No reduction was made for help from ... carer"."""
    name = write_config(config_dir, "none.json", carer_deduction={"percent": 0})
    result = personal_budget(CTX, needs=NEED_MET_BY_CARER, config=name)
    text = " ".join(result["explanation"])
    assert "No reduction was made for help from a family member, friend or other carer." in text
    assert "reduced your points by 0" not in text


def test_an_uplift_of_nothing_is_refused():
    """`amount <= 0` made `<`: an uplift of £0.00 was accepted."""
    with pytest.raises(ValueError, match="more than zero"):
        personal_budget(CTX, needs={}, uplifts=[{"reason": "Night sitting", "amount": "0.00"}])
    assert personal_budget(CTX, needs={}, uplifts=[{"reason": "Night sitting", "amount": "0.01"}])[
        "final_amount"].endswith(".01")
