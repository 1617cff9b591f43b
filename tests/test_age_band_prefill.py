"""The financial assessment's age band, suggested from the case record's date of birth (issue 11).

handlers/pension_age.py: State Pension age (= the Pension Credit qualifying age) from the Pensions Act 1995 Sch 4 as
amended in 2007, 2011 and 2014, checked at each boundary of the schedule, at the three days the 2014 Act names
itself (paragraph 7A), and the age band the day before and the day a person reaches 25 and State Pension age.

On the page (api/prefill.py): the finance officer's "The person's circumstances" section has the band chosen, says
it was "worked out from the date of birth ...", on the engine's simulated clock, and can be changed; with no date
of birth nothing is chosen. In the browser, axe-clean, by keyboard. SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from api.demo_users import demo_password
from handlers.pension_age import age_band_on, anniversary, state_pension_age_day
from tests.browser import launch, live_server, run_axe, sign_in
from tests.case_helpers import the_task
from tests.casework_helpers import SW
from tests.test_financial_assessment_pages import app, eng  # noqa: F401 - fixtures
from tests.test_financial_assessment_process import FIN, ROSE, START
from tests.test_forms_sections import _enter, _tab_to


# ---------------------------------------------------------------- the schedule
@pytest.mark.parametrize("born, reached", [
    # Pensions Act 2011 table 2: a fixed day
    (date(1953, 12, 6), date(2019, 3, 6)),
    (date(1954, 1, 5), date(2019, 3, 6)),
    (date(1954, 10, 5), date(2020, 9, 6)),  # last day of the table
    # 66
    (date(1954, 10, 6), date(2020, 10, 6)),
    (date(1960, 3, 12), date(2026, 3, 12)),
    (date(1960, 4, 5), date(2026, 4, 5)),  # the last day before the phase-in
    # Pensions Act 2014 table 3: 66 and 1 to 11 months
    (date(1960, 4, 6), date(2026, 5, 6)),  # 66 and 1 month
    (date(1960, 5, 5), date(2026, 6, 5)),  # still 66 and 1 month
    (date(1960, 5, 6), date(2026, 7, 6)),  # 66 and 2 months
    (date(1960, 7, 31), date(2026, 11, 30)),  # paragraph 7A(a)
    (date(1960, 12, 31), date(2027, 9, 30)),  # paragraph 7A(b)
    (date(1961, 1, 31), date(2027, 11, 30)),  # paragraph 7A(c)
    (date(1961, 3, 5), date(2028, 2, 5)),  # 66 and 11 months, the last day of the table
    # 67
    (date(1961, 3, 6), date(2028, 3, 6)),
    (date(1977, 4, 5), date(2044, 4, 5)),
    # Pensions Act 2007 table 4: a fixed day every two months
    (date(1977, 4, 6), date(2044, 5, 6)),
    (date(1977, 5, 6), date(2044, 7, 6)),
    (date(1978, 4, 5), date(2046, 3, 6)),
    # 68
    (date(1978, 4, 6), date(2046, 4, 6)),
    (date(1990, 2, 28), date(2058, 2, 28)),
])
def test_state_pension_age_follows_the_statutory_schedule(born, reached):
    assert state_pension_age_day(born) == reached


def test_before_6_december_1953_it_depends_on_sex_so_it_is_not_given():
    assert state_pension_age_day(date(1953, 12, 5)) is None
    # ...but everyone born then was over State Pension age at 65
    assert age_band_on(date(1953, 12, 5), date(2018, 12, 5)) == "pension_age"
    assert age_band_on(date(1953, 12, 5), date(2018, 12, 4)) is None


def test_29_february_reaches_an_age_on_1_march_in_a_common_year():
    assert anniversary(date(1960, 2, 29), 66) == date(2026, 3, 1)
    assert anniversary(date(1960, 2, 29), 64) == date(2024, 2, 29)
    assert state_pension_age_day(date(1960, 2, 29)) == date(2026, 3, 1)


@pytest.mark.parametrize("born, reached", [
    (date(1960, 3, 12), date(2026, 3, 12)),  # 66
    (date(1960, 5, 12), date(2026, 7, 12)),  # the monthly phase-in: 66 and 2 months
    (date(1960, 7, 31), date(2026, 11, 30)),
    (date(1965, 9, 1), date(2032, 9, 1)),  # 67
])
def test_the_band_changes_on_the_day_state_pension_age_is_reached(born, reached):
    assert age_band_on(born, reached - timedelta(days=1)) == "25_to_pension_age"
    assert age_band_on(born, reached) == "pension_age"


def test_18_to_24_ends_the_day_before_the_25th_birthday():
    born = date(2000, 6, 5)
    assert age_band_on(born, date(2025, 6, 4)) == "18_24"
    assert age_band_on(born, date(2025, 6, 5)) == "25_to_pension_age"
    assert age_band_on(born, date(2018, 6, 5)) == "18_24"
    assert age_band_on(born, date(2018, 6, 4)) is None  # 17: not an adult's assessment
    assert age_band_on(born, date(1999, 1, 1)) is None  # not yet born


# ---------------------------------------------------------------- on the page
def _started(eng, person) -> int:  # noqa: F811
    cid = eng.start("financial_assessment", actor=SW, data={
        "name": person["name"], "person": person, "eligibility_decided_at": START.isoformat()}).case_id
    eng.update_case_record(cid, {"person": person}, actor=SW, reason="recorded at the contact")
    return cid


def _hint(page) -> str:
    return " ".join(page.locator("#f-age_band-hint").inner_text().split())


def _chosen(page) -> str | None:
    checked = page.locator("input[name=age_band]:checked")
    return checked.get_attribute("value") if checked.count() else None


def test_the_age_band_is_suggested_from_the_date_of_birth_on_the_simulated_clock(eng, app):  # noqa: F811
    # born 12 May 1960, in the monthly phase-in: State Pension age (66 and 2 months) on 12 July 2026
    rose = {**ROSE, "date_of_birth": "1960-05-12"}
    cid = _started(eng, rose)
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    eng.advance_clock(to=datetime(2026, 7, 11, 12, 0, tzinfo=timezone.utc))  # the day before
    url = f"/tasks/{task['id']}/sections/circumstances"
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        page.goto(base + url)
        assert _chosen(page) == "25_to_pension_age"
        assert _hint(page) == ("Worked out from the date of birth 12 May 1960 on the case record: 66 on 11 July 2026, "
                               "25 to State Pension age. State Pension age is reached on 12 July 2026. Change the "
                               "answer if it is wrong.")
        # the hint is the radios' description for a screen reader
        assert "f-age_band-hint" in page.locator("#f-age_band-hint").evaluate(
            "h => h.closest('fieldset').getAttribute('aria-describedby')")
        run_axe(page, "circumstances with the age band suggested")

        eng.advance_clock(to=datetime(2026, 7, 12, 0, 30, tzinfo=timezone.utc))  # the day itself (UK time)
        sign_in(page, base, FIN, demo_password("finance_officer"))  # sessions last eight hours of the clock
        page.goto(base + url)
        assert _chosen(page) == "pension_age"
        assert "66 on 12 July 2026, State Pension age or over. State Pension age was reached on 12 July 2026" \
            in _hint(page)

        # the officer can change it, by keyboard; what they chose is what is saved
        page.locator("#f-age_band-1").focus()  # 25 to State Pension age
        page.keyboard.press("Space")
        page.get_by_role("group", name="Is the person part of a couple?").get_by_label("No").check()
        page.fill("#f-dependent_children", "0")
        _tab_to(page, "Save and continue")
        _enter(page)
        assert page.url == f"{base}/tasks/{task['id']}", page.inner_text("main")
        assert eng.get_task(task["id"])["draft"]["age_band"] == "25_to_pension_age"
        page.goto(base + url)
        assert _chosen(page) == "25_to_pension_age"  # the saved answer, not the suggestion
        assert "Worked out from the date of birth 12 May 1960" in _hint(page)


def test_with_no_date_of_birth_nothing_is_chosen_and_the_answer_is_still_required(eng, app):  # noqa: F811
    cid = _started(eng, ROSE)  # no date of birth
    task = the_task(eng, cid, "assess_finances")
    eng.claim(task["id"], FIN)
    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, FIN, demo_password("finance_officer"))
        page.goto(f"{base}/tasks/{task['id']}/sections/route")
        page.get_by_label("Full financial assessment").check()
        page.get_by_role("button", name="Save and continue").click()
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        page.goto(f"{base}/tasks/{task['id']}/sections/circumstances")
        assert _chosen(page) is None
        assert _hint(page) == "There is no date of birth on the case record, so this is not worked out for you."
        page.get_by_role("group", name="Is the person part of a couple?").get_by_label("No").check()
        page.fill("#f-dependent_children", "0")
        with page.expect_navigation():
            page.get_by_role("button", name="Save and continue").click()
        assert [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()] == [
            "Select the person's age"]
        run_axe(page, "circumstances with no date of birth and an error")
