"""What a finance officer types into a money box (issue 11, bad input on the finance pages).

A money question (`"x-money": true`) is read from the page as pounds and pence: digits, commas only between
thousands, a point before the pence, and an optional "£" before it. Before this, the page read the box with
Python's float() after dropping every comma, so "£1,2,3" was stored as £123.00, "1_000" as £1,000.00,
full-width "１２" as £12.00, and "Infinity" was refused as "must be £10,000.00 or less". Each is now refused
naming the question ("State Pension must be an amount of money, like 12.50"), with nothing stored. An amount
saved is shown to the penny: £1,000.50 on check your answers and 1000.50 back in its box, not "1000.5".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.page_forms import answer_rows, fields_for, fill, read_form, walk

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "forms" / "financial_assessment.schema.json").read_text(encoding="utf-8"))
BOX = "income_weekly.state_pension"


def typed(value: str) -> tuple[dict, dict]:
    fields = fields_for(SCHEMA)
    return read_form(fields, {"route": ["full"], BOX: [value]})


@pytest.mark.parametrize("value, pounds", [
    ("12", 12), ("12.50", 12.5), ("0.07", 0.07), ("£1,234.50", 1234.5), ("1,000,000", 1000000),
    (" 203.85 ", 203.85), ("£ 5", 5), (".5", 0.5), ("12.", 12),
])
def test_pounds_and_pence_as_people_type_them_are_read(value, pounds):
    data, errors = typed(value)
    assert errors == {}
    assert data["income_weekly"]["state_pension"] == pounds


@pytest.mark.parametrize("value", ["£1,2,3", "12,34", "1,0000", "1_000", "１２", "٣", "Infinity", "inf", "NaN",
                                   "1e3", "0x10", "--1", "1 000", "(5)", "5p", "12.50.1", ",", "£"])
def test_anything_else_is_refused_naming_the_question_and_nothing_is_read(value):
    data, errors = typed(value)
    assert errors == {BOX: "State Pension must be an amount of money, like 12.50"}, value
    assert "state_pension" not in (data.get("income_weekly") or {})


def test_a_minus_sign_is_left_for_the_questions_own_minimum_to_name():
    data, errors = typed("-5")
    assert errors == {}
    assert data["income_weekly"]["state_pension"] == -5  # the schema's minimum refuses it: "must be £0.00 or more"


@pytest.mark.parametrize("value", ["1,5", "7,5", "1_0", "１２", "nan", "inf", "1e3", "12.50.1"])
def test_a_number_that_is_not_money_is_refused_rather_than_misread(value):
    """Planned units a week typed "1,5" (one and a half hours, as many people write it) was read as 15 hours, ten
    times the cost, and "nan" reached the engine; a number follows the same rule as money now."""
    schema = {"type": "object", "properties": {"units": {"type": "number", "title": "Units a week"}}}
    data, errors = read_form(fields_for(schema), {"units": [value]})
    assert errors == {"units": "Units a week must be a number"} and data == {}, value


@pytest.mark.parametrize("value, number", [("1,000", 1000), ("7.5", 7.5), ("12", 12), ("-2", -2), (" 3 ", 3)])
def test_a_number_as_people_type_it_is_read(value, number):
    schema = {"type": "object", "properties": {"units": {"type": "number", "title": "Units a week"}}}
    data, errors = read_form(fields_for(schema), {"units": [value]})
    assert errors == {} and data == {"units": number}, value


@pytest.mark.parametrize("stored, box, shown", [
    (1000.5, "1000.50", "£1,000.50"), (12, "12.00", "£12.00"), (0.07, "0.07", "£0.07"), (0, "0.00", "£0.00"),
    (23250, "23250.00", "£23,250.00"),
])
def test_a_saved_amount_is_shown_to_the_penny(stored, box, shown):
    fields = fields_for(SCHEMA)
    fill(fields, {"route": "full", "income_weekly": {"state_pension": stored}})
    [f] = [f for f in walk(fields) if f.name == BOX]
    assert f.value == box
    rows = {r["key"]: r["value"] for r in answer_rows(fields, "/x")}
    assert rows["State Pension"] == shown


def _as_in_a_sentence(title: str) -> str:
    """A question's title inside a sentence: its first letter lowered unless it is a name (State Pension,
    Council Tax: a capital after the first letter), as engine.forms.money_message does."""
    return title if any(c.isupper() for c in title[1:]) else title[:1].lower() + title[1:]


def test_each_amount_left_out_is_named_as_the_form_names_it():
    """'Enter Pension Credit, or 0 if there is none', not 'Enter pension Credit': a benefit's name keeps its
    capitals in the message, as in the question."""
    seen = 0
    for group in ("capital", "income_weekly", "housing_weekly"):
        for prop in SCHEMA["properties"][group]["properties"].values():
            assert prop["x-requiredMessage"] == f"Enter {_as_in_a_sentence(prop['title'])}, or 0 if there is none"
            seen += 1
    assert seen == 19


def _rendered(schema: dict) -> str:
    from api.page_kit import templates

    macro = templates.env.get_template("fields.html").module.field
    return "".join(str(macro(f)) for f in fields_for(schema))


def test_what_a_full_assessment_requires_is_not_labelled_optional():
    """Every amount, the age, couple, children and the disability costs question are required for a full
    assessment ('Enter Savings, or 0 if there is none' when left out): labelled "(optional)" they told the
    officer the opposite. What is optional for every route still says so."""
    html = _rendered(SCHEMA)
    labelled = {f.label for f in walk(fields_for(SCHEMA))}
    for title in ("Savings", "State Pension", "Council Tax", "Weekly income", "Capital", "The person's age",
                  "Is the person part of a couple?", "How many dependent children live with the person?",
                  "Does the person have extra costs because of their disability?"):
        assert title in labelled
        assert f"{title} (optional)".replace("'", "&#39;") not in html, title
    for title in ("Notes on the route", "Premiums the person qualifies for", "Other notes"):
        assert f"{title} (optional)" in html, title
    # a property without the mark is labelled as before
    plain = {"type": "object", "properties": {"n": {"type": "number", "title": "Units"}}}
    assert "Units (optional)" in _rendered(plain)


def test_other_income_says_what_to_leave_out():
    """The handler counts 'Other income' in full (docs/charging.md: the form asks for income after Schedule 1's
    disregards), so the finance officer is told on the page what not to enter there."""
    html = _rendered(SCHEMA)
    hint = html[html.index("Other income"):][:600]
    assert ("Leave out income that is never counted, such as Housing Benefit, Council Tax Reduction, Child Benefit "
            "and the Winter Fuel Payment.") in hint
