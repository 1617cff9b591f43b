"""handlers/fields.py `check_text`: the one check behind the text fields of a case record's actions
(api/case_actions.py) and of a referral from children's services (handlers/transition.py), so the same mistake
gets the same message on both. Boundaries: the limit itself is accepted, one more character is not."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.fields import check_text
from handlers.transition import check_referral


def checked(value, **options) -> tuple[str, dict[str, str]]:
    errors: dict[str, str] = {}
    return check_text({"ward": value}, "ward", "The hospital and ward", errors, **options), errors


@pytest.mark.parametrize("value, message", [
    (None, "Enter the hospital and ward"),
    ("", "Enter the hospital and ward"),
    ("   \n", "Enter the hospital and ward"),
    (42, "The hospital and ward must be text"),
    (["Ward 3"], "The hospital and ward must be text"),
    ("x" * 201, "The hospital and ward must be 200 characters or fewer"),
    ("Ward\x003", "The hospital and ward must not contain control characters"),
    ("Ward\x1b[2J", "The hospital and ward must not contain control characters"),
])
def test_a_bad_value_is_named_by_its_label(value, message):
    assert checked(value)[1] == {"ward": message}


def test_a_good_value_comes_back_stripped_and_the_limit_itself_is_allowed():
    assert checked("  Ward 3, Northtown General \n") == ("Ward 3, Northtown General", {})
    assert checked("x" * 200) == ("x" * 200, {})
    assert checked("Line one\n\tLine two") == ("Line one\n\tLine two", {})  # tab and newline are text
    assert checked("x" * 11, limit=10)[1] == {"ward": "The hospital and ward must be 10 characters or fewer"}
    assert checked(None, required=False) == ("", {})
    assert checked("x\x07", required=False)[1] == {"ward": "The hospital and ward must not contain control characters"}


def test_enter_lowers_only_the_first_letter_so_a_name_keeps_its_capitals():
    errors: dict[str, str] = {}
    check_text({}, "nhs_number", "The NHS number", errors)
    assert errors == {"nhs_number": "Enter the NHS number"}


def test_a_referral_and_a_case_action_give_the_same_message_for_the_same_mistake():
    from api.case_actions import _text

    _start, referral_errors = check_referral({"address": "1 Mill Lane\x00"}, date(2031, 3, 3))
    action_errors: dict[str, str] = {}
    _text({"address": "1 Mill Lane\x00"}, "address", "The young person's address", action_errors)
    assert referral_errors["address"] == action_errors["address"] == (
        "The young person's address must not contain control characters")
