"""Boundaries of the money rules, tested at the boundary itself and one step past it.

Each test here fails if the rule's comparison is changed by one step: the approval threshold
read as `>=` instead of `>`, a RAS band's upper bound made exclusive, a review reduction allowed
on a typed reason without a recorded change in needs."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.registry import HandlerContext
from handlers import budget
from handlers.budget import check_budget_change, personal_budget
from tests import test_handlers_budget
from tests.test_handlers_budget import BANDS, write_config

CTX = HandlerContext(
    case_id=1, instance_id=1, process_id="t", element_id="t", now=datetime(2031, 1, 1, tzinfo=timezone.utc)
)


config_dir = test_handlers_budget.config_dir  # a private config folder for the budget handler (a fixture)


# 10 points at £400.00 a point is £4,000.00 a year
TEN_POINTS = {"personal_care": {"level": "moderate", "met_by_carer": False}}
FLAT = {"method": "price_per_point", "price_per_point": 400}


def test_a_budget_exactly_at_the_approval_threshold_needs_no_manager(config_dir: Path) -> None:
    name = write_config(config_dir, "at.json", conversion=FLAT, approval_threshold="4000.00")
    result = personal_budget(CTX, needs=TEN_POINTS, config=name)
    assert (result["final_amount"], result["needs_approval"]) == ("4000.00", False)
    assert not any("a manager must approve" in line for line in result["explanation"])


def test_a_budget_one_penny_above_the_approval_threshold_needs_a_manager(config_dir: Path) -> None:
    name = write_config(config_dir, "below.json", conversion=FLAT, approval_threshold="3999.99")
    result = personal_budget(CTX, needs=TEN_POINTS, config=name)
    assert (result["final_amount"], result["needs_approval"]) == ("4000.00", True)
    assert any("more than £3,999.99 a year, a manager must approve it" in line for line in result["explanation"])


def test_a_reviewed_increase_to_exactly_the_threshold_needs_no_manager_one_penny_more_does() -> None:
    # the shipped threshold is £30,000.00 a year
    at = check_budget_change(CTX, "20000.00", "30000.00", change_in_needs_recorded=False)
    above = check_budget_change(CTX, "20000.00", "30000.01", change_in_needs_recorded=False)
    assert (at["allowed"], at["needs_approval"]) == (True, False)
    assert "team manager must approve" not in at["explanation"]
    assert (above["allowed"], above["needs_approval"]) == (True, True)
    assert "more than £30,000.00 a year, a team manager must approve it" in above["explanation"]


NINE = {"personal_care": {"level": "low"}, "home_environment": {"level": "moderate"}}  # 5 + 4
TEN = {"personal_care": {"level": "moderate"}}  # 10
TWENTY_NINE = {
    "personal_care": {"level": "high"},
    "mobility_at_home": {"level": "moderate"},
    "nutrition": {"level": "low"},
}  # 20 + 6 + 3
THIRTY = {"personal_care": {"level": "very_high"}}  # 30


@pytest.mark.parametrize(
    ("needs", "points", "amount", "band"),
    [
        (NINE, 9, "2000.00", "0 to 9 points"),  # the first band's last point
        (TEN, 10, "8000.00", "10 to 29 points"),  # the next band's first point
        (TWENTY_NINE, 29, "8000.00", "10 to 29 points"),  # its last point
        (THIRTY, 30, "25000.00", "30 or more points"),  # the open top band's first point
    ],
)
def test_a_bands_last_point_and_the_next_bands_first(
    config_dir: Path, needs: dict[str, Any], points: int, amount: str, band: str
) -> None:
    name = write_config(config_dir, "bands.json", conversion=BANDS)
    result = personal_budget(CTX, needs=needs, config=name)
    assert (result["total_points"], result["indicative_amount"]) == (points, amount)
    assert any(f"falls in the band {band}" in line for line in result["explanation"])


def test_a_reduction_with_a_reason_typed_but_no_change_in_needs_recorded_is_refused() -> None:
    result = check_budget_change(
        CTX, "12000.00", "11999.99", change_in_needs_recorded=False, reason="Budget savings this year"
    )
    assert (result["allowed"], result["direction"], result["difference"]) == (False, "reduction", "-0.01")
    assert "cannot be reduced from £12,000.00 to £11,999.99" in result["explanation"]
    assert "without a recorded change in needs or circumstances" in result["explanation"]


def test_a_reduction_with_the_change_in_needs_recorded_and_described_is_allowed() -> None:
    result = check_budget_change(
        CTX, "12000.00", "11999.99", change_in_needs_recorded=True, reason="Now washes and dresses without help"
    )
    assert (result["allowed"], result["direction"]) == (True, "reduction")
    assert "recorded change in needs or circumstances: Now washes and dresses without help." in result["explanation"]


def test_no_change_to_the_penny_is_not_a_reduction() -> None:
    result = check_budget_change(CTX, "12000.00", "12000.00", change_in_needs_recorded=False, reason="")
    assert (result["allowed"], result["direction"]) == (True, "no_change")


# ---------------------------------------------------------------- reablement: free at first, then per the council


@pytest.fixture
def reablement_eng(db_url):
    from engine.forms import FormLibrary
    from tests.casework_helpers import casework_engine
    from tests.test_process_front_door_reablement import FILES, STUB_FORM

    library = FormLibrary.from_folder(budget.REPO_ROOT / "forms")
    forms = FormLibrary({**{n: library.schema(n) for n in library.names()}, "needs_assessment_stub": STUB_FORM})
    yield from casework_engine(db_url, FILES, forms=forms)


def charging_council(folder: Path, monkeypatch: pytest.MonkeyPatch, **council: Any) -> None:
    """The shipped charging.json with some of the council's choices replaced, in a private config folder."""
    from handlers import charging

    shipped = json.loads((budget.REPO_ROOT / "processes" / "config" / "charging.json").read_text())
    shipped["council"].update(council)
    (folder / "charging.json").write_text(json.dumps(shipped))
    monkeypatch.setattr(charging, "CONFIG_DIR", folder)


def extend_after_six_weeks(eng) -> int:
    from datetime import timedelta

    from tests.case_helpers import the_task
    from tests.test_process_front_door_reablement import start_reablement_from_front_door

    res, _ = start_reablement_from_front_door(eng)
    eng.advance_clock(timedelta(days=42))  # the shipped 6 weeks (timescales.json reablement_length P42D)
    decide = the_task(eng, res.case_id, "decide_extend_or_end")
    eng.complete_task(decide["id"], {"decision": "extend", "extension_days": 14,
                                     "reason": "Still improving: walking outdoors with a frame"}, actor="tm1")
    return res.case_id


def _finance_tasks(eng, cid) -> list[dict]:
    return [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "assess_finances"]


@pytest.mark.parametrize(("council", "charged"), [({}, True), ({"reablement_after": "free"}, False)])
def test_a_charged_extension_starts_the_persons_financial_assessment_once(
        reablement_eng, tmp_path, monkeypatch, council, charged):
    """Reablement charged after six weeks was recorded on the case and nothing else: no financial assessment was
    started, though a charge needs one, so what the person pays was never worked out or written to them. A charged
    extension now starts one for the finance team; a second extension does not start another; a free one none."""
    from datetime import timedelta

    from tests.case_helpers import the_task

    charging_council(tmp_path, monkeypatch, **council)
    cid = extend_after_six_weeks(reablement_eng)
    assert len(_finance_tasks(reablement_eng, cid)) == (1 if charged else 0)
    told = [d for d in reablement_eng.documents(cid) if d["kind"] == "reablement_charge"]
    assert len(told) == (1 if charged else 0)  # the person is told the day the charge begins, not only later
    if charged:
        assert _finance_tasks(reablement_eng, cid)[0]["team"] == "finance"
        assert "From 14 April 2031 you may have to pay towards your reablement." in " ".join(told[0]["body"].split())
        assert "our finance team will look at your income and savings" in " ".join(told[0]["body"].split())
    reablement_eng.advance_clock(timedelta(days=14))  # the extension runs out: extended again
    decide = the_task(reablement_eng, cid, "decide_extend_or_end")
    reablement_eng.complete_task(decide["id"], {"decision": "extend", "extension_days": 7,
                                                "reason": "Nearly walking to the shop alone"}, actor="tm1")
    assert len(_finance_tasks(reablement_eng, cid)) == (1 if charged else 0)
    started = [i for i in reablement_eng.get_case(cid)["instances"] if i["process_id"] == "financial_assessment"]
    assert len(started) == (1 if charged else 0)
    # told once: a second extension sends no second letter
    assert len([d for d in reablement_eng.documents(cid) if d["kind"] == "reablement_charge"]) == (1 if charged else 0)


@pytest.mark.parametrize(("council", "charged", "reason"), [
    ({}, True, "Reablement after the first 6 weeks is charged for, after a financial assessment."),  # as shipped
    ({"reablement_after": "free"}, False, "The council does not charge for reablement, even after 6 weeks."),
    ({"reablement_free_weeks": 7}, False, "Reablement is free for the first 7 weeks."),  # 6 weeks in: still free
])
def test_an_extension_after_six_weeks_of_reablement_is_charged_per_the_council(
        reablement_eng, tmp_path, monkeypatch, council, charged, reason):
    charging_council(tmp_path, monkeypatch, **council)
    cid = extend_after_six_weeks(reablement_eng)
    kept = reablement_eng.get_case(cid)["data"]["reablement_charging"]
    assert (kept["charged"], kept["weeks_received"], kept["from"], kept["reason"]) == (
        charged, 6, "2031-04-14", reason)


@pytest.mark.parametrize(("weeks", "charged"), [(0, False), (5, False), (6, True), (52, True)])
def test_reablement_is_free_for_the_first_six_weeks_and_charged_from_the_sixth(weeks, charged) -> None:
    from handlers.charging import reablement_charging

    result = reablement_charging(CTX, weeks)  # as shipped: 6 free weeks, then "charge"
    assert (result["charged"], result["free_weeks"]) == (charged, 6)


@pytest.mark.parametrize("weeks", [-1, True, 2.5, "6", 5201])
def test_a_number_of_weeks_that_is_not_whole_and_from_0_is_refused(weeks) -> None:
    from handlers.charging import reablement_charging

    with pytest.raises(ValueError, match="weeks_received must be a whole number of weeks from 0"):
        reablement_charging(CTX, weeks)


@pytest.mark.parametrize(("assessment", "said"), [
    (None, "You do not have to pay anything yet. First our finance team will look at your income and savings."),
    ({"assessed_weekly_charge": "42.5", "full_cost": False},
     "found that you can pay £42.50 a week towards your care and support. You will not pay more than that"),
    ({"assessed_weekly_charge": "0.00", "full_cost": False}, "found that you do not have to pay towards your care"),
    ({"assessed_weekly_charge": None, "full_cost": True}, "So you will pay the full cost of your reablement"),
    ({"route": "full"}, "You do not have to pay anything yet."),  # no charge worked out yet: assessed first
])
def test_the_reablement_charge_letter_says_what_the_financial_assessment_found(assessment, said) -> None:
    from handlers.charging_letters import reablement_charge_letter

    person = {"name": "Peter Clarke", "address": ["1 High Street", "Northtown"]}
    letter = reablement_charge_letter(CTX, person, {"charged": True, "free_weeks": 6}, assessment)
    assert said in " ".join(letter["body"].split())
    assert "£0.00" not in letter["body"]


def test_a_free_extension_or_a_bad_free_weeks_gets_no_charging_letter() -> None:
    from handlers.charging_letters import reablement_charge_letter

    person = {"name": "Peter Clarke"}
    with pytest.raises(ValueError, match="a free extension needs no charging letter"):
        reablement_charge_letter(CTX, person, {"charged": False, "free_weeks": 6})
    with pytest.raises(ValueError, match="free_weeks must be a whole number of weeks from 6"):
        reablement_charge_letter(CTX, person, {"charged": True, "free_weeks": 5})
