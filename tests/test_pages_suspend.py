"""Recording a hospital admission and the discharge from the case record, in a browser (keyboard
only) and without one: axe-clean pages, errors that name the field, who may act.
"""

from __future__ import annotations

from datetime import timedelta

from tests import test_api_cases
from tests.browser import AXE, launch, live_server
from tests.case_helpers import events
from tests.conftest import START
from tests.test_pages_case import _axe_with_csp, _client, _sign_in

world = test_api_cases.world  # (eng, app, cases): Joan's and Peter's case records (a fixture)


def _day(prefix, typed):
    """The GOV.UK date input's three boxes, from "d m yyyy"."""
    return dict(zip((f"{prefix}-day", f"{prefix}-month", f"{prefix}-year"), typed.split(), strict=True))


def _reablement(eng, case_id):
    return next(i for i in eng.get_case(case_id)["instances"] if i["process_id"] == "reablement")


def test_rosa_records_joans_admission_and_discharge_from_the_record_by_keyboard(world):
    eng, app, cases = world
    joan = cases["joan"]
    iid = _reablement(eng, joan)["id"]
    eng.advance_clock(timedelta(days=21))
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with live_server(app) as base, launch() as browser:
        context = browser.new_context()
        page = context.new_page()
        _sign_in(page, base, "rosa")
        page.goto(f"{base}/cases/{joan}")
        link = page.get_by_role("link", name="Record a hospital admission (Reablement")
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}/instances/{iid}/hospital-admission")
        _axe_with_csp(browser, base, context, f"/cases/{joan}/instances/{iid}/hospital-admission", "admission form")

        # blank hospital: the error names the field and links to it
        page.locator("button", has_text="Record the admission").focus()
        page.keyboard.press("Enter")
        page.locator(".govuk-error-summary").wait_for()
        assert "Enter the hospital the person was admitted to" in page.locator(".govuk-error-summary").inner_text()
        assert page.title().startswith("Error: ")
        _axe_with_csp(browser, base, context, None, "admission form with errors", html=page.content())
        page.locator("#hospital").focus()
        page.keyboard.type("Northby General")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}?saved=admission*")
        assert "Paused: in hospital" in page.locator(f"#process-{iid}").inner_text()
        assert _reablement(eng, joan)["status"] == "suspended"
        _axe_with_csp(browser, base, context, f"/cases/{joan}", "case with a paused process")

        eng.advance_clock(timedelta(days=10))
        _sign_in(page, base, "rosa")  # the session ran out with the simulated clock
        page.goto(f"{base}/cases/{joan}")
        page.get_by_role("link", name="Record the discharge (Reablement").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}/instances/{iid}/hospital-discharge")
        assert "Admitted to Northby General on 24 March 2031." in page.locator("main").inner_text()
        assert "go on with the time it had left" in page.locator("#discharge-outcome").inner_text()
        _axe_with_csp(browser, base, context, f"/cases/{joan}/instances/{iid}/hospital-discharge", "discharge form")
        # the GOV.UK date input (day, month, year), as on the close page: a fieldset with its legend, an example
        # the field accepts (today), today filled in
        group = page.get_by_role("group", name="Date of discharge")
        assert "For example, 3 4 2031" in group.inner_text()
        assert [page.locator(f"#discharged_on-{p}").input_value() for p in ("day", "month", "year")] == \
            ["3", "4", "2031"]
        # a day before the admission: refused naming the admission in words, the error linked to the day box
        page.locator("#discharged_on-day").focus()
        page.keyboard.press("Control+A")
        page.keyboard.type("20")
        page.keyboard.press("Tab")
        page.keyboard.type("3")
        page.keyboard.press("Enter")
        page.locator(".govuk-error-summary").wait_for()
        assert ("The date of the discharge must be on or after the admission (24 March 2031)"
                in page.locator(".govuk-error-summary").inner_text())
        assert page.locator(".govuk-error-summary a").get_attribute("href") == "#discharged_on-day"
        assert page.locator("#discharged_on-day").input_value() == "20"  # what was typed is kept
        _axe_with_csp(browser, base, context, None, "discharge form with errors", html=page.content())
        page.locator(".govuk-error-summary a").focus()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "discharged_on-day"
        page.keyboard.press("Control+A")
        page.keyboard.type("3")
        page.keyboard.press("Tab")
        page.keyboard.press("Control+A")
        page.keyboard.type("4")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}?saved=discharge*")
        assert "Record a hospital admission" in page.locator(f"#process-{iid}").inner_text()
    assert _reablement(eng, joan)["status"] == "waiting"
    [resumed] = events(eng, joan, "instance.resumed")
    assert resumed["actor"] == "rosa" and resumed["data"]["details"]["discharged_on"] == "2031-04-03"
    assert dict(eng.instance_snapshot(iid)["timers"])["period_ended"].startswith(
        (START + timedelta(days=31 + 21)).date().isoformat())


def test_the_forms_refuse_bad_dates_and_read_only_roles(world):
    eng, app, cases = world
    joan, peter = cases["joan"], cases["peter"]
    iid = _reablement(eng, joan)["id"]
    rosa, csrf = _client(app, "rosa")
    url = f"/cases/{joan}/instances/{iid}/hospital-admission"
    r = rosa.post(url, data={"csrf_token": csrf, "hospital": "Northby General", **_day("admitted_on", "1 13 2031")})
    assert r.status_code == 400 and "must be a real date" in r.text and 'href="#admitted_on-day"' in r.text
    assert 'value="13"' in r.text  # what was typed is shown again
    # the ISO box is gone: a date typed there is no date
    r = rosa.post(url, data={"csrf_token": csrf, "hospital": "Northby General", "admitted_on": "2031-03-03"})
    assert r.status_code == 400 and "Enter the date of the admission" in r.text
    # before the process started (3 March 2031), or in the future: refused, naming the bound in words
    for typed, message in (("1 1 1890", "must be on or after the day reablement started (3 March 2031)"),
                           ("2 3 2031", "must be on or after the day reablement started (3 March 2031)"),
                           ("4 3 2031", "must be today or in the past"),
                           ("3 3 31", "must be a real date")):
        r = rosa.post(url, data={"csrf_token": csrf, "hospital": "Northby General", **_day("admitted_on", typed)})
        assert r.status_code == 400 and message in r.text, typed
    r = rosa.post(f"/cases/{joan}/instances/{iid}/hospital-discharge",
                  data={"csrf_token": csrf, **_day("discharged_on", "3 3 2031")})
    assert r.status_code == 409 and "is not suspended" in r.text
    r = rosa.post(url, data={"csrf_token": "wrong", "hospital": "Northby General", "admitted_on": "2031-03-03"})
    assert r.status_code in (400, 403)
    assert _reablement(eng, joan)["status"] == "waiting"

    audrey, csrf_a = _client(app, "audrey")
    assert audrey.get(url).status_code == 403
    assert "Record a hospital admission" not in audrey.get(f"/cases/{joan}").text
    r = audrey.post(url, data={"csrf_token": csrf_a, "hospital": "Northby General", "admitted_on": "2031-03-03"})
    assert r.status_code == 403 and _reablement(eng, joan)["status"] == "waiting"
    # no link for a process a hospital admission does not pause (Peter's finished needs assessment)
    sam, _ = _client(app, "sam")
    page = sam.get(f"/cases/{peter}").text
    assert page.count("Record a hospital admission") == 1  # the review cycle only
