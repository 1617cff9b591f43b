"""The measures page, its drill-down and GET /api/measures (api/measures.py): who may see them, the figures
and the cases behind them, restricted cases counted but not listed, bad filters, and the pages in a real
browser with axe-core and the keyboard. The population is tests/test_measures.py's driven one."""

from __future__ import annotations

import html
import re

import pytest

from api.access import restrict_case
from api.app import create_app
from api.auth import ROLES
from api.demo_users import create_demo_users, demo_password, demo_username
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import api_client, page_client
from tests.test_measures import county, drive_county, engine_2031, make_engine_2031  # noqa: F401 - fixtures

READERS = {"performance", "team_manager"}
YEAR = "from=2031-01-01&to=2031-12-31"


def _site(eng, c: dict) -> tuple:
    create_demo_users(eng)
    restrict_case(eng, c["reablement"], ["social-worker"])  # a short-term support case nobody here may see
    restrict_case(eng, c["advice"], ["performance"])  # one the performance officer is named on
    return eng, c, create_app(eng, run_timers=False)


@pytest.fixture
def site(county):  # noqa: F811 - the imported fixture
    """The site for a test that changes a case: its own population."""
    return _site(*county)


@pytest.fixture(scope="module")
def shared_site(module_db_url):
    """The same site built once a module and database, for the tests that only read it (their refusals and
    page views add access-log lines, which none of them counts)."""
    eng = make_engine_2031(module_db_url)
    try:
        yield _site(eng, drive_county(eng))
    finally:
        eng.db.dispose()


def text(page: str) -> str:
    """What a sighted reader sees (visually hidden text left out)."""
    page = re.sub(r'<span class="govuk-visually-hidden">[^<]*</span>', "", page)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def ref(eng, case_id: int) -> str:
    return eng.get_case(case_id)["reference"]


def test_who_may_see_the_measures_pages(shared_site):
    from fastapi.testclient import TestClient

    _eng, _c, app = shared_site
    urls = ["/measures", "/measures?quarter=2031-Q2", f"/measures/new_requests/cases?{YEAR}",
            f"/measures/ascof_2d/cases?{YEAR}&part=at_home"]
    for role in ROLES:
        client, _csrf = page_client(app, role) if role != "performance" else (None, None)
        if client is None:  # no inbox to read the CSRF token from: sign in through the API session
            client = api_client(app, role)
        for url in urls:
            r = client.get(url, follow_redirects=False)
            assert r.status_code == (200 if role in READERS else 403), (role, url)
            if role not in READERS:
                assert "You do not have permission to see this page" in r.text
    anonymous = TestClient(app, follow_redirects=False)
    for url in urls:
        r = anonymous.get(url)
        assert (r.status_code, r.headers["location"]) == (303, "/sign-in"), url


def test_the_page_shows_each_figure_its_parts_a_chart_and_the_table_behind_it(shared_site):
    eng, c, app = shared_site
    client = api_client(app, "performance")
    page = client.get("/measures?quarter=2031-Q2").text
    shown = text(page)
    assert "1 April 2031 to 30 June 2031" in shown
    card = text(page.split('id="measure-ascof_2d"')[1].split('<div class="govuk-summary-card"')[0])
    assert "100% — 1 of 1" in card and "Still at home 1 100%" in card
    assert ("ASCOF 2D: people 65+ still at home 91 days after discharge into reablement: "
            "the table behind the chart") in card
    assert "2031-06-01 to 2031-06-30 100% 1 1" in card and "2031-04-01 to 2031-04-30 – 0 0" in card
    svg = page.split('id="measure-ascof_2d"')[1].split("</svg>")[0]
    assert 'role="img"' in svg and 'aria-labelledby="chart-ascof_2d-title chart-ascof_2d-desc"' in svg
    assert "Jun 2031: 100%" in svg and "The same figures are in the table below the chart." in svg
    dols = text(page.split('id="measure-dols_timeliness"')[1].split('<div class="govuk-summary-card"')[0])
    assert "Not recorded" in dols and "no process for Deprivation of Liberty Safeguards" in dols
    risk = text(page.split('id="measure-safeguarding_risk"')[1].split('<div class="govuk-summary-card"')[0])
    assert "Not recorded: whether a risk was identified." in risk
    # the part links carry the period and the part
    assert 'href="/measures/ascof_2d/cases?from=2031-04-01&amp;to=2031-06-30&amp;part=at_home"' in page
    # a quarter with nothing in it says so
    empty = client.get("/measures?quarter=2020-Q1").text
    assert "Nothing happened in this period: every count is zero and no rate can be given." in text(empty)
    assert '<option value="2020-Q1" selected>' in empty  # the quarter asked for is the one shown as chosen
    # with no period asked for: today's quarter on the simulated clock (4 June 2031), chosen in the list
    today = client.get("/measures").text
    assert '<option value="2031-Q2" selected>' in today and "1 April 2031 to 30 June 2031" in text(today)
    # each quarter says its months and its quarter of the financial year, as the return page does ("2031 quarter 1"
    # was January to March, which the return calls quarter 4 of 2030 to 2031)
    options = dict(re.findall(r'<option value="(\d{4}-Q\d)"[^>]*>([^<]*)</option>', today))
    assert options["2031-Q2"] == "April to June 2031 (quarter 1 of 2031 to 2032)"
    assert options["2031-Q1"] == "January to March 2031 (quarter 4 of 2030 to 2031)"
    assert options["2030-Q4"] == "October to December 2030 (quarter 3 of 2030 to 2031)"
    assert options["2030-Q3"] == "July to September 2030 (quarter 2 of 2030 to 2031)"


def test_a_snapshot_measures_cases_say_they_are_counted_on_the_last_day_and_since_when(shared_site):
    eng, c, app = shared_site
    client = api_client(app, "team_manager")
    # ASCOF 3D is the people in support on 31 March: the day beside each case is when their support began
    snapshot = text(client.get("/measures/ascof_3d1/cases?from=2031-01-01&to=2031-03-31").text)
    assert "Counted on the period's last day, 31 March 2031: the people the figure holds on that day." in snapshot
    assert "Case Since Counted as" in snapshot and "Day counted" not in snapshot
    assert f"{ref(eng, c['commissioned'])} 2031-03-03 Council-managed personal budget" in snapshot
    # a measure of events in the period keeps "Day counted" (the day that put the event in the period)
    events = text(client.get(f"/measures/new_requests/cases?{YEAR}").text)
    assert "Case Day counted Counted as" in events and "period's last day" not in events


def test_the_drill_down_counts_restricted_cases_but_lists_them_only_to_the_people_named(shared_site):
    eng, c, app = shared_site
    url = f"/measures/new_requests/cases?{YEAR}&part=short_term"
    manager = text(api_client(app, "team_manager").get(url).text)
    assert "3 events in 3 cases counted as \"Short-term support to maximise independence (reablement)\"" in manager
    assert "1 restricted case not listed" in manager
    assert ref(eng, c["harriet"]) in manager and ref(eng, c["long_term"]) in manager
    assert ref(eng, c["reablement"]) not in manager
    assert f'href="/cases/{c["harriet"]}"' in api_client(app, "team_manager").get(url).text  # managers open cases
    officer_page = api_client(app, "performance").get(url).text
    assert "1 restricted case not listed" in text(officer_page) and ref(eng, c["harriet"]) in text(officer_page)
    assert f'href="/cases/{c["harriet"]}"' not in officer_page  # the performance role opens no case records
    # the performance officer is named on the signposted case: it is listed to them, and only to them
    advice = f"/measures/new_requests/cases?{YEAR}&part=information_advice"
    assert ref(eng, c["advice"]) in text(api_client(app, "performance").get(advice).text)
    hidden = text(api_client(app, "team_manager").get(advice).text)
    assert ref(eng, c["advice"]) not in hidden and "1 restricted case not listed" in hidden
    # the figure itself still counts both restricted cases
    assert "New requests for support by what they led to (STS001 sequels) 4" in text(
        api_client(app, "team_manager").get(f"/measures?{YEAR}").text)


@pytest.mark.parametrize("query, field, message", [
    ("from=2031-04-01&to=2031-03-31", "to-day", "The last day must be the same as or after the first day"),
    ("from-day=31&from-month=2&from-year=2031&to-day=1&to-month=3&to-year=2031", "from-day",
     "The first day must be a real date"),
    ("from=2031-13-01&to=2031-12-31", "from-day", "The first day must be a date like 2031-04-01"),
    ("from=2031-01-01", "to-day", "Enter both the first and the last day, or choose a quarter"),
    ("quarter=2031-Q5", "quarter", "Choose a quarter from the list"),
    ("quarter=2031-Q1&team=nobody", "team", "Choose a team from the list"),
    # a mistyped year: the chart's months ran past 9999 and the year before 1 January of year 1 (a 500 before)
    ("from-day=1&from-month=1&from-year=2031&to-day=31&to-month=12&to-year=9999", "to-day",
     "The last day must be in a year from 1901 to 2999, for example 1 4 2031"),
    ("from-day=1&from-month=1&from-year=1&to-day=31&to-month=12&to-year=2031", "from-day",
     "The first day must be in a year from 1901 to 2999"),
    ("from=1900-12-31&to=2031-03-31", "from-day", "The first day must be in a year from 1901 to 2999"),
])
def test_bad_filters_are_a_400_with_the_field_named_never_a_500(shared_site, query, field, message):
    _eng, _c, app = shared_site
    client = api_client(app, "performance")
    r = client.get(f"/measures?{query}")
    assert r.status_code == 400
    assert f'<a href="#{field}">{message}' in r.text and "There is a problem" in r.text
    api = client.get(f"/api/measures?{query}")
    assert api.status_code == 422 and message in api.json()["message"]


@pytest.mark.parametrize("url, status, message", [
    (f"/measures/ascof_9z/cases?{YEAR}", 404, "There is no measure"),
    (f"/measures/ascof_2a/cases?{YEAR}&part=nope", 400, "has no part &#39;nope&#39;"),
    ("/measures/ascof_2a/cases?from=2031-04-01&to=2031-03-31", 400, "The last day must be the same as or after"),
    (f"/measures/ascof_2a/cases?{YEAR}&page=two", 400, "The page number must be a whole number"),
    (f"/measures/ascof_2a/cases?{YEAR}&team=nobody", 400, "Choose a team from the list"),
    ("/measures/ascof_2a/cases?from=2031-04-01&to=3000-01-01", 400, "The last day must be in a year from 1901"),
])
def test_bad_drill_down_addresses_say_what_is_wrong(shared_site, url, status, message):
    _eng, _c, app = shared_site
    r = api_client(app, "team_manager").get(url)
    assert r.status_code == status and message in r.text


def test_the_json_api_lists_no_restricted_case_to_someone_not_named(shared_site):
    eng, c, app = shared_site
    body = api_client(app, "team_manager").get(f"/api/measures?{YEAR}").json()
    new = next(x for x in body["measures"] if x["key"] == "new_requests")
    assert new["figure"] == 4 and new["restricted_not_listed"] == 2
    assert new["case_ids"] == sorted([c["harriet"], c["long_term"]])
    officer = api_client(app, "performance").get(f"/api/measures?{YEAR}").json()
    new = next(x for x in officer["measures"] if x["key"] == "new_requests")
    assert sorted(new["case_ids"]) == sorted([c["harriet"], c["long_term"], c["advice"]])
    assert new["restricted_not_listed"] == 1


def test_the_performance_officer_starts_on_home_with_the_measures_and_the_returns(shared_site):
    _eng, _c, app = shared_site
    client = api_client(app, "performance")
    home = client.get("/home").text
    nav = home.split('id="main-navigation"')[1].split("</ul>")[0]
    assert 'href="/measures"' in home and ">Measures<" in nav
    # the statutory returns page is linked where it is served (never a link to a 404)
    served = client.get("/returns/cld").status_code == 200
    assert ('href="/returns/cld"' in home) is served and (">Statutory returns<" in nav) is served
    manager_nav = api_client(app, "team_manager").get("/tasks").text.split('id="main-navigation"')[1].split("</ul>")[0]
    assert ">Measures<" in manager_nav and "Statutory returns" not in manager_nav


def test_the_measures_pages_in_the_browser_are_accessible_and_keyboard_usable(shared_site):
    eng, c, app = shared_site
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, demo_username("performance"), demo_password("performance"), then="/home")
        page.get_by_role("link", name="Measures").first.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/measures")
        run_axe(page, "measures")
        # choose the second quarter with the keyboard and show it
        page.focus("#quarter")
        page.select_option("#quarter", "2031-Q2")
        page.focus("button:has-text('Show the measures')")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/measures\?quarter=2031-Q2.*"))
        assert page.locator("#period").inner_text() == "1 April 2031 to 30 June 2031"
        # the chart is an image with a text alternative, and its table is on the page
        chart = page.get_by_role("img", name=re.compile("ASCOF 2D: people 65\\+ still at home"))
        assert chart.count() == 1
        assert page.get_by_role("table", name=re.compile("ASCOF 2D.*the table behind the chart")).count() == 1
        run_axe(page, "measures (second quarter)")
        # the invalid period: the error summary links to the field
        page.goto(f"{base}/measures?from=2031-04-01&to=2031-03-31")
        page.get_by_role("link", name="The last day must be the same as or after the first day").click()
        assert page.evaluate("() => document.activeElement.id") == "to-day"
        run_axe(page, "measures with an error")
        # the drill-down from a part, by keyboard
        page.goto(f"{base}/measures?{YEAR}")
        link = page.get_by_role("link", name=re.compile(
            r"^Short-term support to maximise independence \(reablement\)\s*: the cases \(New requests"))
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/measures/new_requests/cases\?.*part=short_term"))
        assert "1 restricted case not listed" in page.locator("#restricted").inner_text()
        listed = page.locator("tbody tr th").all_inner_texts()
        assert sorted(listed) == sorted([ref(eng, c["harriet"]), ref(eng, c["long_term"])])
        run_axe(page, "measure cases")
        page.get_by_role("link", name="Back to the measures").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/measures\?from=2031-01-01.*#measure-new_requests"))


def test_after_a_new_event_in_a_restricted_case_the_pages_equal_a_full_recompute_and_still_hide_it(site):
    from engine.runtime import Engine
    from handlers import measures as m

    eng, c, app = site
    manager = api_client(app, "team_manager")
    url = f"/measures/new_requests/cases?{YEAR}&part=short_term"
    assert manager.get(f"/measures?{YEAR}").status_code == 200 and manager.get(url).status_code == 200
    held = m.load_population(eng)
    # a new event in the restricted case and in another (the page reads them again, and only them)
    eng.update_case_record(c["reablement"], {"note": "called again"}, actor="tm", reason="a note")
    eng.close_case(c["dp"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
    after = text(manager.get(url).text)
    assert "3 events in 3 cases counted" in after and "1 restricted case not listed" in after
    assert ref(eng, c["reablement"]) not in after
    now = m.load_population(eng)
    assert now is not held and now.views[c["harriet"]] is held.views[c["harriet"]]
    # the same figures and lists as another server process that builds everything from the kept facts
    other = Engine(eng.db.url)
    try:
        mine = manager.get(f"/api/measures?{YEAR}").json()
        theirs = api_client(create_app(other, run_timers=False), "team_manager").get(f"/api/measures?{YEAR}").json()
        assert mine == theirs
        new = next(x for x in mine["measures"] if x["key"] == "new_requests")
        assert c["reablement"] not in new["case_ids"] and new["restricted_not_listed"] == 2
    finally:
        other.db.dispose()
