"""The community services directory: its data file, search ranking and signposting records."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.registry import HandlerContext, HandlerRegistry
from handlers import directory
from handlers.directory import DirectoryError, load_directory, record_signposting, search_directory

CTX = HandlerContext(
    case_id=1, instance_id=1, process_id="t", element_id="t", now=datetime(2027, 1, 4, 9, tzinfo=timezone.utc)
)


def _service(sid: str, name: str, needs: list[str], areas: list[str]) -> dict[str, Any]:
    return {
        "id": sid,
        "name": name,
        "organisation": "Test Org",
        "needs": needs,
        "areas": areas,
        "contact": {"phone": "01632 960999", "email": f"{sid}@example.org", "website": "https://example.org"},
        "opening_hours": "Mon-Fri",
        "cost": {"type": "free"},
        "eligibility": "Anyone",
    }


def _directory_file(tmp_path: Path, services: list[dict[str, Any]]) -> Path:
    path = tmp_path / "directory.json"
    path.write_text(
        json.dumps(
            {
                "need_domains": {
                    "transport": "getting out and about",
                    "social_isolation": "loneliness",
                    "housing": "housing",
                },
                "areas": {"north": "the north", "south": "the south", "countywide": "the whole county"},
                "services": services,
            }
        )
    )
    return path


@pytest.fixture
def small_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = _directory_file(
        tmp_path,
        [
            _service("both_county", "Zebra Both", ["transport", "social_isolation"], ["countywide"]),
            _service("lonely_county", "Alpha Lonely", ["social_isolation"], ["countywide"]),
            _service("lonely_north", "Yak Lonely North", ["social_isolation"], ["north"]),
            _service("both_south", "Beta Both South", ["transport", "social_isolation"], ["south"]),
            _service("housing_county", "Housing Help", ["housing"], ["countywide"]),
        ],
    )
    monkeypatch.setenv(directory.PATH_ENV, str(path))
    return path


def test_bundled_directory_is_valid_and_uses_fictional_contacts() -> None:
    loaded = load_directory(directory.DEFAULT_PATH)
    assert len(loaded.services) >= 20
    for service in loaded.services.values():
        assert re.fullmatch(r"01632 960\d{3}", service["contact"]["phone"]), service["id"]
        assert service["contact"]["email"].endswith("@example.org"), service["id"]
        assert "example.org" in service["contact"]["website"], service["id"]
    covered = {need for s in loaded.services.values() for need in s["needs"]}
    assert covered == set(loaded.need_domains)  # every need domain has at least one service


def test_most_needs_covered_ranks_first(small_directory: Path) -> None:
    result = search_directory(CTX, ["transport", "social_isolation"])
    ids = [m["id"] for m in result["matches"]]
    # two needs before one; within each, by name
    assert ids == ["both_south", "both_county", "lonely_county", "lonely_north"]
    assert result["matches"][0]["needs_matched"] == ["transport", "social_isolation"]
    assert "2 of 2 needs" in result["matches"][0]["why"]


def test_own_area_ranks_before_countywide_and_other_areas_drop_out(small_directory: Path) -> None:
    result = search_directory(CTX, ["social_isolation"], area="north")
    ids = [m["id"] for m in result["matches"]]
    assert ids == ["lonely_north", "lonely_county", "both_county"]  # both_south works only in the south
    assert result["matches"][0]["area_match"] == "north"
    assert "works in the north" in result["matches"][0]["why"]
    assert result["matches"][1]["area_match"] == "countywide"


def test_limit_and_needs_not_covered(small_directory: Path) -> None:
    result = search_directory(CTX, ["transport", "housing"], area="north", limit=1)
    # one need each and both countywide: by name, so "Housing Help" before "Zebra Both"
    assert [m["id"] for m in result["matches"]] == ["housing_county"]
    assert result["not_covered"] == ["transport"]  # the one match shown does not help with transport


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"needs": ["gardening"]}, "unknown need domain"),
        ({"needs": ["transport"], "area": "mars"}, "unknown area 'mars'"),
        ({"needs": []}, "non-empty list"),
        ({"needs": ["transport"], "limit": 0}, "limit"),
    ],
)
def test_bad_search_requests_are_refused(small_directory: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        search_directory(CTX, **kwargs)


def test_referrals_are_dated_from_ctx_now(small_directory: Path) -> None:
    result = record_signposting(CTX, ["lonely_north", "both_county"], person_consents=True)
    assert [r["service_id"] for r in result["referrals"]] == ["lonely_north", "both_county"]
    assert {r["referred_at"] for r in result["referrals"]} == {"2027-01-04T09:00:00+00:00"}
    assert result["referrals"][0]["name"] == "Yak Lonely North"
    assert result["referrals"][0]["contact"]["email"] == "lonely_north@example.org"
    assert result["referrals"][0]["method"] == "referral"
    assert result["call_back_due"] == "2027-01-18"  # 14 calendar days after Monday 4 January 2027
    json.dumps(result)


def test_call_back_on_a_weekend_moves_to_the_next_working_day(small_directory: Path) -> None:
    result = record_signposting(CTX, ["lonely_north"], person_consents=False, call_back_in_days=5)
    assert result["call_back_due"] == "2027-01-11"  # Saturday 9th -> Monday 11th
    assert result["referrals"][0]["method"] == "signposted"
    assert result["details_shared"] is False


def test_unknown_service_id_is_named(small_directory: Path) -> None:
    with pytest.raises(ValueError, match="no_such_service"):
        record_signposting(CTX, ["lonely_north", "no_such_service"], person_consents=True)


def test_validation_names_the_broken_entry(tmp_path: Path) -> None:
    broken = _service("broken_one", "Broken", ["transport"], ["north"])
    del broken["contact"]["phone"]
    path = _directory_file(tmp_path, [_service("fine", "Fine", ["transport"], ["north"]), broken])
    with pytest.raises(DirectoryError, match=r"service #1 'broken_one': missing or empty 'contact\.phone'"):
        load_directory(path)


def test_validation_reports_every_problem(tmp_path: Path) -> None:
    unnamed = _service("x", "X", ["transport"], ["north"])
    del unnamed["id"]
    path = _directory_file(
        tmp_path,
        [
            _service("dup", "A", ["gardening"], ["north"]),
            _service("dup", "B", ["transport"], ["north"]),
            unnamed,
        ],
    )
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    message = str(caught.value)
    assert "service #0 'dup': unknown needs ['gardening']" in message
    assert "service #1 'dup': duplicate id" in message
    assert "service #2: missing or empty 'id'" in message


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(DirectoryError) as exc:
        load_directory(path)
    assert str(exc.value).startswith(f"the community directory {path} is not JSON: Expecting property name")
    gone = tmp_path / "gone.json"
    with pytest.raises(DirectoryError) as exc:
        load_directory(gone)
    assert str(exc.value) == f"the community directory {gone} cannot be read: No such file or directory"


def test_register_refuses_a_broken_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(directory.PATH_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(DirectoryError, match="missing.json cannot be read"):
        directory.register(HandlerRegistry())


def test_register_adds_both_handlers() -> None:
    registry = HandlerRegistry()
    directory.register(registry)
    assert registry.get("search_directory") is search_directory
    assert registry.get("record_signposting") is record_signposting
