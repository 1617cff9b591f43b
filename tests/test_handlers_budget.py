"""Resource Allocation System handlers: the amounts and letter lines a caseworker would check."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.registry import HandlerContext, HandlerRegistry
from handlers import budget
from handlers.budget import check_budget_change, personal_budget

CTX = HandlerContext(
    case_id=1, instance_id=1, process_id="t", element_id="t", now=datetime(2031, 1, 1, tzinfo=timezone.utc)
)


def write_config(folder: Path, name: str = "ras.json", **changes: Any) -> str:
    """A copy of the shipped configuration with some keys replaced, in a private config folder."""
    shipped = json.loads((budget.REPO_ROOT / "processes" / "config" / "ras.json").read_text())
    shipped.update(changes)
    (folder / name).write_text(json.dumps(shipped))
    return name


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(budget, "CONFIG_DIR", tmp_path)
    return tmp_path


def test_reproduces_km_v_cambridgeshire() -> None:
    """R (KM) v Cambridgeshire [2012]: 55 points -> £61,000 indicative; three uplifts -> £84,678."""
    result = personal_budget(
        CTX,
        needs={
            "personal_care": {"level": "high", "met_by_carer": False},  # 20
            "safety_and_supervision": {"level": "very_high", "met_by_carer": False},  # 30
            "nutrition": {"level": "low", "met_by_carer": False},  # 3
            "community_access": {"level": "low", "met_by_carer": False},  # 2
        },
        uplifts=[
            {"reason": "2:1 handover care", "amount": 2566},
            {"reason": "14 hours a day of specialist 1:1 support", "amount": 20384},
            {"reason": "extra cost of a specialist provider", "amount": 728},
        ],
    )
    assert result["total_points"] == 55
    assert result["conversion"]["method"] == "price_per_point"
    assert result["indicative_amount"] == "61000.00"
    assert result["uplifts_total"] == "23678.00"
    assert result["final_amount"] == "84678.00"
    assert result["weekly_equivalent"] == "1628.42"  # 84,678 / 52
    assert result["needs_approval"] is True
    lines = "\n".join(result["explanation"])
    assert "Total: 55 points." in lines
    assert "= £61,000.00 a year. This is your indicative budget." in lines
    assert "2:1 handover care, £2,566.00 a year" in lines
    assert "Your personal budget is £84,678.00 a year" in lines
    assert "No reduction was made for help from a family member" in lines
    assert result["config"]["file"] == "ras.json" and len(result["config"]["sha256"]) == 64


def test_price_per_point(config_dir: Path) -> None:
    name = write_config(config_dir, "flat.json", conversion={"method": "price_per_point", "price_per_point": 400})
    result = personal_budget(CTX, needs={"personal_care": {"level": "moderate", "met_by_carer": False}}, config=name)
    assert (result["total_points"], result["indicative_amount"], result["final_amount"]) == (
        10,
        "4000.00",
        "4000.00",
    )
    assert result["weekly_equivalent"] == "76.92"
    assert any("10 points × £400.00 a point = £4,000.00 a year" in line for line in result["explanation"])
    assert result["needs_approval"] is False


BANDS = {
    "method": "bands",
    "bands": [
        {"min_points": 0, "max_points": 9, "amount": 2000},
        {"min_points": 10, "max_points": 29, "amount": 8000},
        {"min_points": 30, "max_points": None, "amount": 25000},
    ],
}


def test_bands(config_dir: Path) -> None:
    name = write_config(config_dir, conversion=BANDS)
    result = personal_budget(
        CTX,
        needs={
            "personal_care": {"level": "high", "met_by_carer": False},  # 20
            "mobility_at_home": {"level": "moderate", "met_by_carer": False},
        },  # 6
        config=name,
    )
    assert result["total_points"] == 26
    assert result["conversion"] == {
        "method": "bands",
        "band": {"min_points": 10, "max_points": 29, "amount": "8000.00"},
    }
    assert result["indicative_amount"] == "8000.00"
    assert any(
        "26 points falls in the band 10 to 29 points, which gives £8,000.00 a year" in line
        for line in result["explanation"]
    )
    top = personal_budget(
        CTX, needs={"personal_care": {"level": "very_high"}, "nutrition": {"level": "very_high"}}, config=name
    )
    assert (top["total_points"], top["indicative_amount"]) == (45, "25000.00")


def test_bands_with_a_gap_are_refused(config_dir: Path) -> None:
    gap = {
        "method": "bands",
        "bands": [
            {"min_points": 0, "max_points": 9, "amount": 1},
            {"min_points": 12, "max_points": None, "amount": 2},
        ],
    }
    name = write_config(config_dir, conversion=gap)
    with pytest.raises(ValueError, match=r"config\.conversion\.bands\[1\]\.min_points"):
        personal_budget(CTX, needs={}, config=name)


def test_carer_deduction_reduces_points_and_the_letter_says_how() -> None:
    without = personal_budget(CTX, needs={"personal_care": {"level": "high", "met_by_carer": False}})
    with_carer = personal_budget(
        CTX,
        needs={
            "personal_care": {
                "level": "high",
                "met_by_carer": True,
                "carer_note": "her husband helps her wash and dress each morning",
            }
        },
    )
    item = with_carer["domains"][0]
    assert (item["points_before"], item["points_after"]) == (20, 10)
    assert with_carer["total_points"] == 10 and with_carer["points_before_carer_deduction"] == 20
    assert with_carer["indicative_amount"] == "11090.91"  # 10 x 1109.09091
    assert without["indicative_amount"] == "22181.82"
    lines = "\n".join(with_carer["explanation"])
    assert "reduced by 50% to 10 points because a carer who is willing and able to help" in lines
    assert "her husband helps her wash and dress" in lines
    assert "Help from your carer reduced your points by 10 (from 20 to 10)" in lines


def test_carer_deduction_rounds_in_the_persons_favour() -> None:
    # 5 points less 50% is 2.5: the person keeps 3
    result = personal_budget(CTX, needs={"personal_care": {"level": "low", "met_by_carer": True}})
    assert result["total_points"] == 3


def test_carer_support_allocation_is_added_and_explained() -> None:
    result = personal_budget(CTX, needs={"personal_care": {"level": "moderate"}}, carer_support={"level": "moderate"})
    assert result["carer_support"] == {"level": "moderate", "amount": "600.00", "added_to_budget": True,
                                       "source": "carers_assessment"}
    assert result["final_amount"] == "11690.91"  # 11,090.91 + 600
    assert "£600.00 a year is added to support your carer (carer’s assessment level: moderate)." in \
        result["explanation"]


def test_carer_support_recorded_by_the_worker_says_so_and_a_wrong_source_is_refused() -> None:
    result = personal_budget(CTX, needs={"personal_care": {"level": "moderate"}},
                             carer_support={"level": "high", "source": "worker"})
    assert (result["carer_support"]["source"], result["final_amount"]) == ("worker", "12290.91")  # + 1,200
    assert "£1,200.00 a year is added to support your carer (carer support needs recorded by your worker: " \
           "high)." in result["explanation"]
    with pytest.raises(ValueError, match=r"carer_support\.source must be one of"):
        personal_budget(CTX, needs={}, carer_support={"level": "low", "source": "neighbour"})


def test_the_approval_threshold_applies_to_the_total_after_uplifts_and_carer_support() -> None:
    needs = {"personal_care": {"level": "high"}, "nutrition": {"level": "low"}}  # 23 points = 25,509.09
    plain = personal_budget(CTX, needs=needs)
    uplifted = personal_budget(CTX, needs=needs, carer_support={"level": "high"},
                               uplifts=[{"reason": "Two carers for hoisting", "amount": 3500}])
    assert (plain["final_amount"], plain["needs_approval"]) == ("25509.09", False)
    assert (uplifted["indicative_amount"], uplifted["uplifts_total"]) == ("25509.09", "3500.00")
    assert (uplifted["final_amount"], uplifted["needs_approval"]) == ("30209.09", True)  # + 1,200 + 3,500


def test_above_threshold_needs_approval_but_is_not_capped(config_dir: Path) -> None:
    name = write_config(config_dir, approval_threshold=10000)
    below = personal_budget(CTX, needs={"nutrition": {"level": "moderate"}}, config=name)  # 6 points
    above = personal_budget(CTX, needs={"personal_care": {"level": "moderate"}}, config=name)  # 10 points
    assert (below["final_amount"], below["needs_approval"]) == ("6654.55", False)
    assert (above["final_amount"], above["needs_approval"]) == ("11090.91", True)
    assert any("a manager must approve it. This is a check, not a limit" in line for line in above["explanation"])


def test_invalid_input_and_config_name_the_key(config_dir: Path) -> None:
    write_config(config_dir)
    with pytest.raises(ValueError, match=r"needs\.personal_care\.level"):
        personal_budget(CTX, needs={"personal_care": {"level": "extreme"}})
    with pytest.raises(ValueError, match=r"uplifts\[0\]\.reason"):
        personal_budget(CTX, needs={}, uplifts=[{"reason": "", "amount": 10}])
    with pytest.raises(ValueError, match="config"):
        personal_budget(CTX, needs={}, config="../../etc/passwd")
    name = write_config(config_dir, "typo.json", aproval_threshold=1)
    with pytest.raises(ValueError, match="aproval_threshold"):
        personal_budget(CTX, needs={}, config=name)
    name = write_config(config_dir, "pct.json", carer_deduction={"percent": 150})
    with pytest.raises(ValueError, match=r"config\.carer_deduction\.percent"):
        personal_budget(CTX, needs={}, config=name)


def test_reduction_refused_without_recorded_change() -> None:
    result = check_budget_change(CTX, previous_amount="84678.00", new_amount="80000.00", change_in_needs_recorded=False)
    assert result["allowed"] is False
    assert result["direction"] == "reduction" and result["difference"] == "-4678.00"
    assert "cannot be reduced from £84,678.00 to £80,000.00" in result["explanation"]
    assert "without a recorded change in needs or circumstances" in result["explanation"]
    described = check_budget_change(CTX, 84678, 80000, change_in_needs_recorded=True, reason="")
    assert described["allowed"] is False


def test_reduction_allowed_with_recorded_change() -> None:
    result = check_budget_change(CTX, 84678, 80000, True, reason="Now attends college three days a week")
    assert result["allowed"] is True
    assert "because of a recorded change in needs or circumstances: Now attends college" in result["explanation"]


def test_increase_always_allowed() -> None:
    result = check_budget_change(CTX, previous_amount=61000, new_amount="84678.00", change_in_needs_recorded=False)
    assert result["allowed"] is True and result["direction"] == "increase"
    assert "an increase is always allowed" in result["explanation"]
    same = check_budget_change(CTX, 100, "100.00", False)
    assert same["allowed"] is True and same["direction"] == "no_change"


def test_register_uses_the_diagram_names() -> None:
    registry = HandlerRegistry()
    budget.register(registry)
    assert registry.get("personal_budget") is personal_budget
    assert registry.get("check_budget_change") is check_budget_change
