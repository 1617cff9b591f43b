"""Money answers on forms (issue 11, bad input): an amount of money is pounds and pence.

A number property marked `"x-money": true` (engine/forms.py) takes at most two decimal places, checked as the
decimal the user typed (0.07 is pounds and pence; JSON Schema's `multipleOf: 0.01` wrongly refuses it as a float),
and its errors are in GOV.UK wording naming the question: "Savings must be £0.00 or more", "... £10,000.00 or less"
(the property's own minimum and maximum), "Enter savings in pounds and pence, like 12.50". Every money question on
the project's forms is marked. The financial assessment completed with 12.345 is refused by the form, before the
charging handler runs: no incident, nothing stored changes. In the browser, the capital section shows both
messages in the error summary and at the fields, axe-clean. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.demo_users import demo_password
from engine.errors import ValidationError
from engine.forms import FormLibrary
from tests.browser import launch, live_server, run_axe, sign_in
from tests.case_helpers import events, the_task
from tests.test_financial_assessment_pages import app, eng, started  # noqa: F401 - fixtures
from tests.test_financial_assessment_process import FIN, full

ROOT = Path(__file__).resolve().parent.parent
FORMS = FormLibrary.from_folder(ROOT / "forms")


def errors_for(form: str, data: dict) -> list[dict]:
    try:
        FORMS.validate(form, data)
    except ValidationError as err:
        return err.errors
    return []


def weekly(amount) -> dict:
    return full(income={"state_pension": amount})


# ---------------------------------------------------------------- the engine


@pytest.mark.parametrize("amount", [0, 0.07, 0.1, 12, 12.5, 12.50, 203.85, 9999.99, 10000, 10000.00])
def test_pounds_and_pence_up_to_the_maximum_are_accepted(amount):
    assert errors_for("financial_assessment", weekly(amount)) == []


@pytest.mark.parametrize("amount, message", [
    (12.345, "Enter State Pension in pounds and pence, like 12.50"),
    (0.001, "Enter State Pension in pounds and pence, like 12.50"),
    (float("nan"), "Enter State Pension in pounds and pence, like 12.50"),
    (10000.01, "State Pension must be £10,000.00 or less"),
    (1e9, "State Pension must be £10,000.00 or less"),
    (-0.01, "State Pension must be £0.00 or more"),
    ("12.50", "State Pension must be an amount of money, like 12.50"),
])
def test_an_amount_that_is_not_pounds_and_pence_or_out_of_bounds_is_refused_naming_the_question(amount, message):
    found = errors_for("financial_assessment", weekly(amount))
    assert {"field": "income_weekly/state_pension", "message": message} in found, found
    assert all(e["field"] == "income_weekly/state_pension" for e in found), found


def test_the_messages_use_each_questions_own_title_and_bounds():
    found = errors_for("financial_assessment", full(capital={"savings": -5, "other": 100000000.01}))
    assert sorted(e["message"] for e in found) == ["Other capital must be £100,000,000.00 or less",
                                                   "Savings must be £0.00 or more"]
    found = errors_for("financial_assessment", full(capital={"savings": 12.345}))
    assert [e["message"] for e in found] == ["Enter savings in pounds and pence, like 12.50"]
    # a title "... (pounds)" is named without it
    found = errors_for("direct_payment_review", {"balance": 1.005})
    assert {"field": "balance", "message": "Enter balance in the account in pounds and pence, like 12.50"} in found


def number_questions(node, path=""):
    """Every question of type number (not whole numbers: those are counts) anywhere in a schema."""
    if isinstance(node, dict):
        types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
        if "number" in types:
            yield path, node
        for key, value in node.items():
            yield from number_questions(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from number_questions(value, f"{path}/{i}")


#: the number questions that are not money
NOT_MONEY = {"support_plan.schema.json#/properties/outcomes/items/properties/units_per_week"}


def test_every_money_question_on_the_forms_takes_pounds_and_pence():
    found = {f"{p.name}#{where}": q.get("x-money") for p in sorted((ROOT / "forms").glob("*.schema.json"))
             for where, q in number_questions(json.loads(p.read_text(encoding="utf-8")))}
    money = {where for where in found if where not in NOT_MONEY}
    assert NOT_MONEY <= set(found) and found[next(iter(NOT_MONEY))] is None
    assert len(money) == 29, sorted(money)  # the financial assessment asks 20; an earlier uplift's new amount 1
    assert sorted(where for where in money if found[where] is not True) == []
    assert "support_plan.schema.json#/properties/outcomes/items/properties/unit_cost" in money
    assert "financial_assessment.schema.json#/properties/dre_weekly/items/properties/amount" in money
    assert "impact_assessment.schema.json#/properties/earlier_uplift_decisions/items/properties/amount" in money


def test_a_form_that_marks_something_other_than_a_number_as_money_is_refused(tmp_path):
    (tmp_path / "bad.schema.json").write_text(json.dumps(
        {"type": "object", "properties": {"name": {"type": "string", "x-money": True}}}))
    with pytest.raises(Exception, match=r"bad.schema.json.*#/properties/name/x-money must be true, on a property "
                                        r"of type number"):
        FormLibrary.from_folder(tmp_path)


# ---------------------------------------------------------------- the financial assessment


def test_an_assessment_with_an_amount_in_fractions_of_a_penny_is_refused_before_the_handler_runs(eng):  # noqa: F811
    cid = started(eng)
    task = the_task(eng, cid, "assess_finances")
    before = (eng.get_case(cid), len(eng.history(cid)))
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task["id"], full(capital={"savings": 12.345}), actor=FIN)
    assert err.value.errors == [{"field": "capital/savings",
                                 "message": "Enter savings in pounds and pence, like 12.50"}]
    assert (eng.get_case(cid), len(eng.history(cid))) == before
    assert the_task(eng, cid, "assess_finances")["id"] == task["id"]
    assert [e for e in events(eng, cid, "handler.called") if e["data"]["handler"] == "financial_assessment"] == []
    assert eng.incidents() == []
    # pence are fine, and the assessment is worked out
    eng.complete_task(task["id"], full(capital={"savings": 12.35}, income={"state_pension": 0.07}), actor=FIN)
    assert eng.incidents() == []
    [out] = [e["data"]["output"] for e in events(eng, cid, "handler.called")
             if e["data"]["handler"] == "financial_assessment"]
    assert out["capital_total"] == "12.35"


# ---------------------------------------------------------------- in the browser


def test_the_capital_section_refuses_a_negative_amount_and_fractions_of_a_penny_in_govuk_words(eng, app):  # noqa: F811
    cid = started(eng)
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        page.goto(f"{base}/tasks/{task['id']}/sections/capital")
        assert page.get_by_role("heading", level=1).inner_text() == "Capital"
        for name, value in (("savings", "-5"), ("investments", "12.345"), ("property_other_than_home", "0"),
                            ("other", "£1,000.07")):
            page.fill(f"#f-capital-{name}", value)
        with page.expect_navigation():
            page.get_by_role("button", name="Save and continue").click()
        assert page.title().startswith("Error: ")
        summary = [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]
        assert summary == ["Savings must be £0.00 or more", "Enter investments in pounds and pence, like 12.50"]
        at_fields = {i: page.locator(f"#f-capital-{i}-error").inner_text().replace("Error:", "").strip()
                     for i in ("savings", "investments")}
        assert at_fields == {"savings": "Savings must be £0.00 or more",
                             "investments": "Enter investments in pounds and pence, like 12.50"}
        assert page.locator("#f-capital-other-error").count() == 0  # "£1,000.07" is pounds and pence
        assert page.input_value("#f-capital-investments") == "12.345"  # as typed, to correct
        run_axe(page, "capital with money errors")
        page.locator(".govuk-error-summary a", has_text="Enter investments").click()
        assert page.evaluate("() => document.activeElement.id") == "f-capital-investments"
        page.fill("#f-capital-savings", "14250")
        page.fill("#f-capital-investments", "12.35")
        with page.expect_navigation():
            page.get_by_role("button", name="Save and continue").click()
        assert page.url == f"{base}/tasks/{task['id']}", page.inner_text("main")
    assert eng.incidents() == []
