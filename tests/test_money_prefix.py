"""Money answers show "£" before the box (issue 11): every question marked `"x-money": true` renders with the
GOV.UK Design System's input prefix (`govuk-input__wrapper` and a `govuk-input__prefix` "£" hidden from screen
readers, the "Prefixes and suffixes" pattern), and a "£1,234.50" typed in with its own pound sign and comma is
still read as 1234.50. A number that is not money (units a week) has no prefix. In the browser, axe-clean.
"""

from __future__ import annotations

import json
from pathlib import Path

import lxml.html

from api.demo_users import demo_password
from api.page_forms import fields_for, walk
from tests.browser import launch, live_server, run_axe, sign_in
from tests.case_helpers import the_task
from tests.test_financial_assessment_pages import app, eng, started  # noqa: F401 - fixtures
from tests.test_financial_assessment_process import FIN

ROOT = Path(__file__).resolve().parent.parent


def _schema(name: str) -> dict:
    return json.loads((ROOT / "forms" / f"{name}.schema.json").read_text(encoding="utf-8"))


def _render(name: str) -> str:
    """The form's fields as the task page renders them (api/templates/fields.html)."""
    from api.page_kit import templates

    macro = templates.env.get_template("fields.html").module.field
    return "".join(str(macro(f)) for f in fields_for(_schema(name)))


def _wrapper(tree, input_id: str):
    """The input's parent when it is a GOV.UK input wrapper, else None."""
    [box] = tree.xpath(f'//input[@id="{input_id}"]')
    parent = box.getparent()
    return parent if "govuk-input__wrapper" in (parent.get("class") or "").split() else None


def test_every_money_question_has_the_pound_prefix_and_nothing_else_does():
    for form in sorted(p.name.removesuffix(".schema.json") for p in (ROOT / "forms").glob("*.schema.json")
                       if '"x-money"' in p.read_text(encoding="utf-8")):
        tree = lxml.html.fromstring(f"<div>{_render(form)}</div>")
        money = {f.id for f in walk(fields_for(_schema(form))) if f.money}
        assert money, form
        prefixed = set()
        for wrapper in tree.xpath('//div[contains(concat(" ", @class, " "), " govuk-input__wrapper ")]'):
            children = list(wrapper)
            # the prefix comes before the box, inside the same wrapper
            assert [c.tag for c in children] == ["div", "input"], lxml.html.tostring(wrapper)
            prefix, box = children
            assert prefix.get("class") == "govuk-input__prefix" and prefix.text_content().strip() == "£"
            assert prefix.get("aria-hidden") == "true"
            prefixed.add(box.get("id"))
        assert prefixed == money, form
        assert all(_wrapper(tree, i) is not None for i in money)
    # units a week is a number but not money: no "£"
    tree = lxml.html.fromstring(f"<div>{_render('support_plan')}</div>")
    assert _wrapper(tree, "f-outcomes-0-units_per_week") is None


def test_the_pound_prefix_in_the_browser_and_a_typed_pound_sign_and_comma_are_accepted(eng, app):  # noqa: F811
    cid = started(eng)
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        page.goto(f"{base}/tasks/{task['id']}/sections/capital")
        for name in ("savings", "investments", "property_other_than_home", "other"):
            box = page.locator(f"#f-capital-{name}")
            prefix = page.locator(f".govuk-input__wrapper:has(#f-capital-{name}) .govuk-input__prefix")
            assert prefix.inner_text() == "£"
            assert prefix.get_attribute("aria-hidden") == "true"
            # the "£" is shown on the left of the box, on the same line
            p, b = prefix.bounding_box(), box.bounding_box()
            assert p["x"] + p["width"] <= b["x"] + 1 and abs(p["y"] - b["y"]) < 5, (p, b)
            # its accessible name is the question's label, not "£"
            assert box.evaluate("e => e.labels[0].innerText.trim()") != "£"
        run_axe(page, "capital with the £ prefix")
        page.fill("#f-capital-savings", "£1,234.50")
        page.fill("#f-capital-investments", "£0.07")
        page.fill("#f-capital-property_other_than_home", "0")
        page.fill("#f-capital-other", "12")
        with page.expect_navigation():
            page.get_by_role("button", name="Save and continue").click()
        assert page.url == f"{base}/tasks/{task['id']}", page.inner_text("main")
        page.goto(f"{base}/tasks/{task['id']}/sections/capital")
        assert page.input_value("#f-capital-savings") == "1234.50"  # to the penny
        assert eng.get_task(task["id"])["draft"]["capital"] == {
            "savings": 1234.5, "investments": 0.07, "property_other_than_home": 0, "other": 12}
        # an error still shows with the prefix, axe-clean
        page.fill("#f-capital-savings", "£-5")
        with page.expect_navigation():
            page.get_by_role("button", name="Save and continue").click()
        assert [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()] == [
            "Savings must be £0.00 or more"]
        assert page.locator(".govuk-input__wrapper:has(#f-capital-savings) .govuk-input__prefix").count() == 1
        run_axe(page, "capital with an error and the £ prefix")
