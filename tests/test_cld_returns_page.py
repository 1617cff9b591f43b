"""The Client Level Data return's download page (issue 12; api/cld_returns.py, docs/cld-returns-page.md): who may
see it, choosing the period (the last eight quarters or another period, bad periods named in an error summary,
never a 500), the summary by event type, the CSV (its header as handlers.cld declares it, attachment named with
the council and period), every download in the case access log without personal data; a browser journey (axe,
keyboard). The clock stands at 3 March 2031: the quarter January to March 2031 is in progress."""

from __future__ import annotations

import html as html_text
import re
import time
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import cld_returns
from api.auth import ROLES
from api.demo_users import demo_password, demo_username
from engine.schema import case_access_log, prepared_returns
from handlers import cld
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import SW, TM, known_case, page_client
from tests.test_case_actions import PERSON, app, eng, planned_case  # noqa: F401  (fixtures)
from tests.test_process_assessment_to_review import SMALL, assessment, complete, plan, ras

QUARTER = "2030-Q4"  # January to March 2031
EXPECTED_HEADER = getattr(cld, "CLD_FIELDS", None) or [cld.CSV_HEADERS[c] for c in cld.CSV_HEADERS]


def other(start: tuple[str, str, str], end: tuple[str, str, str]) -> dict[str, str]:
    return {"period": "other", "from-day": start[0], "from-month": start[1], "from-year": start[2],
            "to-day": end[0], "to-month": end[1], "to-year": end[2]}


def summary_cells(html: str) -> dict[str, str]:
    table = re.search(r'<table class="govuk-table" id="rows-by-event-type">(.*?)</table>', html, re.S).group(1)
    return dict(re.findall(r'<th scope="row" class="govuk-table__header">([^<]+)</th><td[^>]*>([^<]+)</td>', table))


def ready(client, url, **kw):
    """The report page at `url` once its return is prepared: the page prepares it in the background and, until it
    is ready, says so with a link to check again, which this follows (as a user without scripts would)."""
    r = client.get(url, **kw)
    for _ in range(1200):
        found = re.search(r'id="check-again" href="([^"]+)"', r.text)
        if found is None:
            return r
        assert "Your return is being prepared" in r.text
        time.sleep(0.05)
        r = client.get(html_text.unescape(found.group(1)))
    raise AssertionError("the return was not prepared in a minute")


# ---------------------------------------------------------------------- who may
MAY_SEND = {"performance", "team_manager"}  # docs/security.md, "Statutory returns"
URLS = ("/returns/cld", f"/returns/cld?period={QUARTER}", "/returns/cld.csv?from=2031-01-01&to=2031-03-31",
        "/returns/cld/status?from=2031-01-01&to=2031-03-31&version=0000000000000000")


@pytest.mark.parametrize("role", ROLES)
def test_role_endpoint_matrix_of_the_return(eng, app, role):  # noqa: F811
    """Every role (a role added later too) against both pages: only the senders and team managers get them."""
    planned_case(eng)
    client, _ = page_client(app, role)
    for url in URLS:
        r = client.get(url)
        if role in MAY_SEND:
            assert r.status_code == 200, (url, r.text[:300])
        else:
            assert r.status_code == 403 and "statutory returns" in r.text, url
    if role in MAY_SEND:
        assert client.get(URLS[2]).headers["content-type"].startswith("text/csv")
    else:
        assert logged(eng) == []


def test_signed_out_goes_to_the_sign_in_page(app):  # noqa: F811
    client = TestClient(app, follow_redirects=False)
    for url in ("/returns/cld", "/returns/cld.csv?from=2031-01-01&to=2031-03-31",
                "/returns/cld/status?from=2031-01-01&to=2031-03-31&version=0000000000000000"):
        r = client.get(url)
        assert r.status_code == 303 and r.headers["location"] == "/sign-in", url


# ---------------------------------------------------------------------- choosing the period
def test_the_last_eight_quarters_are_offered_newest_first_then_another_period(app):  # noqa: F811
    client, _ = page_client(app, "performance")
    html = client.get("/returns/cld").text
    values = re.findall(r'name="period" type="radio" value="([^"]+)"', html)
    assert values == ["2030-Q4", "2030-Q3", "2030-Q2", "2030-Q1", "2029-Q4", "2029-Q3", "2029-Q2", "2029-Q1",
                      "other"]
    assert "January to March 2031 (quarter 4 of 2030 to 2031) – in progress" in html
    assert "April to June 2029 (quarter 1 of 2029 to 2030)</label>" in html
    assert "October to December 2030 (quarter 3 of 2030 to 2031)</label>" in html


def test_quarters_follow_the_financial_year_at_every_boundary():
    assert [(q.key, q.start, q.end) for q in cld_returns.last_quarters(date(2031, 4, 1), 3)] == [
        ("2031-Q1", date(2031, 4, 1), date(2031, 6, 30)), ("2030-Q4", date(2031, 1, 1), date(2031, 3, 31)),
        ("2030-Q3", date(2030, 10, 1), date(2030, 12, 31))]
    assert cld_returns.quarter_of(date(2031, 12, 31)).key == "2031-Q3"
    assert cld_returns.quarter_of(date(2032, 3, 31)).key == "2031-Q4"


@pytest.mark.parametrize("params, field, message", [
    ({}, "period", None),  # no choice yet: the question, no error
    ({"period": "2020-Q1"}, "period", "Select the quarter, or another period"),
    (other(("", "", ""), ("31", "3", "2031")), "from-day", "Enter the start date"),
    (other(("1", "", "2031"), ("31", "3", "2031")), "from-day", "The start date must include a month"),
    (other(("31", "2", "2031"), ("31", "3", "2031")), "from-day",
     "The start date must be a real date, for example 1 4 2031"),
    (other(("1", "1", "31"), ("31", "3", "2031")), "from-day",
     "The start date must be a real date, for example 1 4 2031"),
    (other(("1", "3", "2031"), ("28", "2", "2031")), "to-day",
     "The end date must be the same as or after the start date"),
    (other(("1", "3", "2030"), ("1", "3", "2031")), "to-day",
     "The period must be a year or shorter: choose an end date before 1 March 2031"),
    (other(("4", "3", "2031"), ("5", "3", "2031")), "from-day", "The start date must be today or in the past"),
    # a mistyped year: the last year a date can have (there is no year after it to measure a year's length by)
    (other(("31", "12", "9999"), ("31", "12", "9999")), "from-day", "The start date must be today or in the past"),
    (other(("1", "1", "9999"), ("31", "12", "9999")), "from-day", "The start date must be today or in the past"),
])
def test_a_bad_period_is_named_in_an_error_summary_never_a_500(eng, app, params, field, message):  # noqa: F811
    client, _ = page_client(app, "performance")
    query = "&".join(f"{k}={v}" for k, v in params.items())
    r = client.get(f"/returns/cld?{query}" if query else "/returns/cld?")
    if message is None:
        assert r.status_code == 200 and "govuk-error-summary" not in r.text
        return
    assert r.status_code == 422
    summary = re.search(r'class="govuk-error-summary".*?</ul>', r.text, re.S).group(0)
    assert f'<a href="#{field}">{message}</a>' in summary
    assert r.text.count(message) == 2  # in the summary and beside the question
    assert "<title>Error: " in r.text
    assert logged(eng) == []


def test_a_period_of_exactly_a_year_less_a_day_and_of_one_day_are_accepted(eng, app):  # noqa: F811
    planned_case(eng)
    client, _ = page_client(app, "performance")
    r = ready(client, "/returns/cld", params=other(("1", "3", "2030"), ("28", "2", "2031")))
    assert r.status_code == 200 and "1 March 2030 to 28 February 2031" in r.text
    r = ready(client, "/returns/cld", params=other(("3", "3", "2031"), ("3", "3", "2031")))
    assert r.status_code == 200 and summary_cells(r.text) == {"Assessment": "1", "Service": "1", "All rows": "2"}


# ---------------------------------------------------------------------- the summary and the file
def test_the_summary_counts_the_rows_by_event_type_and_the_file_holds_the_same(eng, app):  # noqa: F811
    planned_case(eng)
    client, _ = page_client(app, "performance")
    html = ready(client, f"/returns/cld?period={QUARTER}").text
    assert "1 January 2031 to 31 March 2031" in html
    assert summary_cells(html) == {"Assessment": "1", "Service": "1", "All rows": "2"}
    assert "1 person (service users and carers)" in html
    # the file is sent as downloaded: a spreadsheet that saves it rewrites its dates and numbers
    warning = re.search(r'<div class="govuk-inset-text" id="spreadsheet-warning">(.*?)</div>', html, re.S).group(1)
    assert "close it without saving" in warning and "2031-04-01 becomes 01/04/2031" in warning
    link = re.search(r'id="download" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert re.fullmatch(r"/returns/cld\.csv\?from=2031-01-01&to=2031-03-31&version=[0-9a-f]{16}", link)
    r = client.get(link)
    assert r.headers["content-disposition"] == 'attachment; filename="CLD-Northshire-2031-01-01-to-2031-03-31.csv"'
    rows = cld_returns.read_csv(r.content)
    assert rows[0] == list(EXPECTED_HEADER)
    assert len(rows) == 1 + 2


def test_a_period_with_no_events_says_so_and_the_file_has_only_its_header(eng, app):  # noqa: F811
    planned_case(eng)
    client, _ = page_client(app, "performance")
    r = ready(client, "/returns/cld", params=other(("1", "4", "2030"), ("30", "6", "2030")))
    assert r.status_code == 200 and 'id="no-events"' in r.text and "rows-by-event-type" not in r.text
    rows = cld_returns.read_csv(client.get("/returns/cld.csv?from=2030-04-01&to=2030-06-30").content)
    assert rows == [list(EXPECTED_HEADER)]


def test_every_download_is_in_the_access_log_of_each_case_in_it_without_personal_data(eng, app):  # noqa: F811
    cid = planned_case(eng)
    client, _ = page_client(app, "performance")
    ready(client, f"/returns/cld?period={QUARTER}")
    assert logged(eng) == []  # looking at the summary is not a download
    assert client.get("/returns/cld.csv?from=2031-01-01&to=2031-03-31").status_code == 200
    [entry] = logged(eng)
    assert (entry.case_id, entry.user, entry.action, entry.page, entry.outcome) == (
        cid, demo_username("performance"), "cld_return", "/returns/cld.csv", "allowed")
    assert entry.reason == "Client Level Data return 2031-01-01 to 2031-03-31"
    for secret in (PERSON["name"], "Clarke", "1948"):
        assert secret not in f"{entry.reason} {entry.page}"
    client.get("/returns/cld.csv?from=2031-01-01&to=2031-03-31")
    assert len(logged(eng)) == 2


def test_an_auditor_finds_every_download_in_the_access_log(eng, app):  # noqa: F811
    cid = planned_case(eng)
    sender, _ = page_client(app, "performance")
    assert sender.get("/returns/cld.csv?from=2031-01-01&to=2031-03-31").status_code == 200
    auditor, _ = page_client(app, "auditor")
    html = auditor.get("/audit/access-log").text
    assert '<option value="cld_return"' in html  # a filter of its own
    found = auditor.get("/api/audit/access-log?action=cld_return").json()
    assert [(e["case_id"], e["user"], e["action"]) for e in found["entries"]] == [
        (cid, demo_username("performance"), "cld_return")]


@pytest.mark.parametrize("query, message", [
    ("", "The period must be given as from=YYYY-MM-DD and to=YYYY-MM-DD"),
    ("from=2031-13-01&to=2031-03-31", "The period must be given as from=YYYY-MM-DD and to=YYYY-MM-DD"),
    ("from=01/01/2031&to=2031-03-31", "The period must be given as from=YYYY-MM-DD and to=YYYY-MM-DD"),
    ("from=2031-03-31&to=2031-01-01", "The end date must be the same as or after the start date."),
    ("from=2030-01-01&to=2031-01-01", "The period must be a year or shorter: choose an end date before 1 January "
                                      "2031."),
    ("from=2031-04-01&to=2031-06-30", "The start date must be today or in the past."),
    ("from=9999-12-31&to=9999-12-31", "The start date must be today or in the past."),  # a mistyped year
])
def test_a_download_for_a_bad_period_is_refused_with_a_clear_message(eng, app, query, message):  # noqa: F811
    planned_case(eng)
    client, _ = page_client(app, "performance")
    r = client.get(f"/returns/cld.csv?{query}")
    assert r.status_code == 422 and message in r.text and "content-disposition" not in r.headers
    assert logged(eng) == []


def test_a_history_the_return_cannot_code_is_named_never_a_500(eng, app):  # noqa: F811
    cid = planned_case(eng)
    person = eng.get_case(cid)["data"]["person"]
    eng.update_case_record(cid, {"person": {**person, "gender": "Femail"}}, actor=SW, reason="a slip")
    client, _ = page_client(app, "performance")
    html = ready(client, f"/returns/cld?period={QUARTER}")
    assert html.status_code == 200
    assert "CASE-000001" in html.text and "Femail" in html.text  # the case and the value to correct
    r = client.get("/returns/cld.csv?from=2031-01-01&to=2031-03-31")
    if r.status_code == 422:  # the return stops at the value (today's handlers.cld)
        assert "CASE-000001" in r.text and "gender" in r.text and logged(eng) == []
    else:  # the return lists the row as a problem and leaves it out of the file, or codes it as not known
        assert r.status_code == 200 and "Femail" not in r.text


def logged(engine) -> list:
    with engine.db.engine.connect() as conn:
        return conn.execute(select(case_access_log).where(case_access_log.c.action == "cld_return")
                            .order_by(case_access_log.c.id)).all()


# ---------------------------------------------------------------------- in the browser
def test_a_performance_officer_chooses_a_period_by_keyboard_and_downloads_the_file(eng, app):  # noqa: F811
    planned_case(eng)
    with live_server(app) as base, launch() as browser:
        ctx = browser.new_context(bypass_csp=True, accept_downloads=True)
        page = ctx.new_page()
        sign_in(page, base, demo_username("performance"), demo_password("performance"), then=None)
        page.goto(f"{base}/returns/cld")
        run_axe(page, "choose the return's period")
        page.get_by_label("Another period").focus()
        page.keyboard.press("Space")
        page.get_by_role("group", name="Start date").get_by_label("Day").fill("1")
        page.get_by_role("group", name="Start date").get_by_label("Month").fill("3")
        page.get_by_role("group", name="Start date").get_by_label("Year").fill("2031")
        page.get_by_role("group", name="End date").get_by_label("Day").fill("28")
        page.get_by_role("group", name="End date").get_by_label("Month").fill("2")
        page.get_by_role("group", name="End date").get_by_label("Year").fill("2031")
        page.get_by_role("button", name="Continue").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector(".govuk-error-summary")
        assert "The end date must be the same as or after the start date" in page.inner_text(".govuk-error-summary")
        run_axe(page, "the return's period with an error")
        page.get_by_role("link", name="The end date must be the same as or after the start date").focus()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "to-day"
        page.get_by_label("January to March 2031 (quarter 4 of 2030 to 2031) – in progress").focus()
        page.keyboard.press("Space")
        page.get_by_role("button", name="Continue").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#rows-by-event-type")
        assert "Assessment" in page.inner_text("#rows-by-event-type")
        run_axe(page, "the return's summary")
        page.get_by_role("link", name=re.compile("Download the CSV")).focus()
        with page.expect_download() as got:
            page.keyboard.press("Enter")
        download = got.value
        assert download.suggested_filename == "CLD-Northshire-2031-01-01-to-2031-03-31.csv"
        with open(download.path(), "rb") as fh:
            assert cld_returns.read_csv(fh.read())[0] == list(EXPECTED_HEADER)
        ctx.close()
    assert len(logged(eng)) == 1


# ---------------------------------------------------------------------- the data-quality report
ANNA = {"name": "Anna Webb", "address": ["3 Quay Road", "Southport Bay", "NS4 1CC"], "salutation": "Ms Webb",
        "date_of_birth": "1950-07-09", "nhs_number": "9434765919"}
BOB = {"name": "Bob Hale", "address": ["9 Station Road", "Northby", "NS3 2DD"], "salutation": "Mr Hale",
       "date_of_birth": "1944-02-11"}


def assessed_case(engine, person) -> int:
    """`person` assessed, their budget and plan signed off on 3 March 2031 (as planned_case, for anyone)."""
    cid = known_case(engine, person, contact_date="2031-03-03")
    complete(engine, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"),
             actor=SW)
    complete(engine, cid, "score_needs", ras(**SMALL), actor=SW)
    # a plan as written now: the home care costed (£18.50 a visit, 7 a week, one Service row coded "Home support or
    # domiciliary care"); the pendant costs the budget nothing (not a row). An uncosted plan of two types of service
    # would be a finding of its own (tests/test_cld_service_component.py)
    written = plan("direct_payment")
    home_care, pendant = written["outcomes"]
    written["outcomes"] = [{**home_care, "unit": "visit", "unit_cost": 18.5, "units_per_week": 7,
                            "delivery": "direct_payment"}, pendant]
    complete(engine, cid, "write_plan", written, actor=SW)
    complete(engine, cid, "sign_off_plan", {"signed_off": True}, actor=TM)
    return cid


def report_tables(html: str) -> dict[str, list[list[str]]]:
    """Each check's table on the page: {check: [[case to fix, field, what is wrong], ...]} in page order."""
    out = {}
    for check, body in re.findall(r'<table class="govuk-table" id="check-([a-z_]+)">(.*?)</table>', html, re.S):
        rows = re.findall(r'<tr class="govuk-table__row">\s*<td(.*?)</tr>', body, re.S)
        cells = [re.findall(r'<td class="govuk-table__cell">(.*?)</td>', "<td" + r, re.S) for r in rows]
        out[check] = [[html_text.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in row] for row in cells]
    return out


def test_the_report_lists_each_finding_with_the_case_to_fix_errors_first(eng, app):  # noqa: F811
    """Real findings: the council's LA code is not set (the return's, two errors), Bob has no NHS number (a
    warning on his case); Anna, who has one, has none."""
    anna, bob = assessed_case(eng, ANNA), assessed_case(eng, BOB)
    client, _ = page_client(app, "performance")
    html = ready(client, f"/returns/cld?period={QUARTER}").text
    assert summary_cells(html) == {"Assessment": "2", "Service": "2", "All rows": "4"}
    assert "2 errors, 1 warning: correct the errors before you send the return" in html
    tables = report_tables(html)
    assert list(tables) == ["not_coded", "missing_mandatory", "no_nhs_number"]  # errors first
    assert html.index('id="errors-heading"') < html.index('id="warnings-heading"')
    assert tables["not_coded"] == [["The whole return", "LA_Code", "the return: LA_Code: the council's LA code is "
                                    "not set: add \"la_code\" to processes/config/council.json (or pass --la-code)"]]
    assert tables["missing_mandatory"] == [["The whole return", "LA_Code",
                                            "LA_Code is mandatory and empty in every row: set it for the return"]]
    bob_ref = eng.get_case(bob)["reference"]
    assert tables["no_nhs_number"] == [[bob_ref, "NHS_Number", f"person {bob_ref} has no NHS number: record it on "
                                        "the case so their events can be linked"]]
    assert eng.get_case(anna)["reference"] not in html.split('id="report-heading"')[1]
    # the performance officer does not open case records: the reference is named, not linked
    assert f'href="/cases/{bob}"' not in html
    manager, _ = page_client(app, "team_manager")
    html = ready(manager, f"/returns/cld?period={QUARTER}").text
    assert f'<a class="govuk-link" href="/cases/{bob}">{bob_ref}</a>' in html


def test_a_return_without_findings_is_ready_to_send(eng, app, monkeypatch):  # noqa: F811
    assessed_case(eng, ANNA)
    monkeypatch.setattr(cld, "la_code_setting", lambda *a: "E10000099")
    client, _ = page_client(app, "performance")
    html = ready(client, f"/returns/cld?period={QUARTER}").text
    assert '<div class="govuk-inset-text" id="report-headline">No problems found: the return is ready to send</div>' \
        in html
    assert report_tables(html) == {} and "govuk-warning-text" not in html
    assert 'filename="CLD-E10000099-2031-01-01-to-2031-03-31.csv"' in client.get(
        "/returns/cld.csv?from=2031-01-01&to=2031-03-31").headers["content-disposition"]


def test_a_restricted_case_is_counted_not_listed_to_those_not_named_on_it(eng, app):  # noqa: F811
    from api.access import restrict_case

    bob = assessed_case(eng, BOB)
    bob_ref = eng.get_case(bob)["reference"]
    restrict_case(eng, bob, [demo_username("social_worker")])
    for role in ("performance", "team_manager"):
        client, _ = page_client(app, role)
        html = ready(client, f"/returns/cld?period={QUARTER}").text
        assert bob_ref not in html, role
        assert "2 errors, 1 warning" in html  # still counted
        assert "1 finding is on a restricted case not listed here" in html
        assert "no_nhs_number" not in report_tables(html)
    restrict_case(eng, bob, [demo_username("social_worker"), demo_username("team_manager")])
    client, _ = page_client(app, "team_manager")
    html = ready(client, f"/returns/cld?period={QUARTER}").text
    assert f'<a class="govuk-link" href="/cases/{bob}">{bob_ref}</a>' in html and "report-restricted" not in html
    # the file is complete whoever may see the case: the restricted person's rows are in it
    assert len(cld_returns.read_csv(client.get("/returns/cld.csv?from=2031-01-01&to=2031-03-31").content)) == 1 + 2


def test_a_service_without_delivery_mechanism_and_a_long_check_are_shown_capped(eng, app, monkeypatch):  # noqa: F811
    """Findings the forms cannot produce today (a service line with no delivery mechanism; thousands of one
    warning) still show: the return is replaced by one built by hand."""
    cid = planned_case(eng)
    ref = eng.get_case(cid)["reference"]
    real = cld.cld_return(eng, date(2031, 1, 1), date(2031, 3, 31))
    service = next(r for r in real if r["Event_Type"] == "Service")
    rows = [dict(service, Delivery_Mechanism=None)] + [
        dict(service, LA_Person_Unique_Identifier=f"P{n}", Event_Reference=f"{ref}-9-{n}")
        for n in range(cld_returns.SHOWN_PER_CHECK + 5)]
    fake = cld.CldReturn(rows, period_start=date(2031, 1, 1), period_end=date(2031, 3, 31), la_code="E1",
                         problems=[], withheld=[])
    monkeypatch.setattr(cld, "cld_return", lambda *a, **k: fake)
    client, _ = page_client(app, "team_manager")
    html = ready(client, f"/returns/cld?period={QUARTER}").text
    tables = report_tables(html)
    assert tables["service_without_delivery_mechanism"][0][:2] == [ref, "Delivery_Mechanism"]
    assert "a service with no delivery mechanism" in tables["service_without_delivery_mechanism"][0][2]
    assert list(tables).index("service_without_delivery_mechanism") < list(tables).index("no_nhs_number")
    assert len(tables["no_nhs_number"]) == cld_returns.SHOWN_PER_CHECK
    n = cld_returns.SHOWN_PER_CHECK + 6
    assert f"Person without an NHS number: {n:,} (the first {cld_returns.SHOWN_PER_CHECK} listed)" in html


def test_the_page_makes_the_return_once_and_the_file_is_the_rows_it_reported(eng, app, monkeypatch):  # noqa: F811
    cid = planned_case(eng)
    calls = []
    real = cld.cld_return
    monkeypatch.setattr(cld, "cld_return", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    client, _ = page_client(app, "performance")
    html = ready(client, f"/returns/cld?period={QUARTER}").text
    assert calls == [(date(2031, 1, 1), date(2031, 3, 31))]
    link = re.search(r'id="download" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    first = client.get(link)
    assert first.status_code == 200 and len(calls) == 1  # the rows the page reported, not made again
    # something recorded since: the page's link still gives the rows its report showed (kept in the database)
    eng.update_case_record(cid, {"person": {**PERSON, "nhs_number": "9434765919"}}, actor=SW, reason="NHS number")
    again_file = client.get(link)
    assert again_file.status_code == 200 and again_file.content == first.content and len(calls) == 1
    # once that return is no longer kept, the link says why (nothing downloaded, logged)
    with eng.db.transaction() as conn:
        conn.execute(prepared_returns.delete())
    r = client.get(link)
    assert r.status_code == 409 and "content-disposition" not in r.headers
    assert "The cases have changed since the report was made" in r.text
    again = re.search(r'id="report-again" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    html = ready(client, again).text
    assert "1 January 2031 to 31 March 2031" in html and len(calls) == 2
    assert client.get(re.search(r'id="download" href="([^"]+)"', html).group(1).replace("&amp;", "&")) \
        .status_code == 200 and len(calls) == 2
    assert len(logged(eng)) == 3


def test_the_report_in_the_browser_axe_clean_keyboard_and_bad_periods(eng, app):  # noqa: F811
    from api.access import restrict_case

    assessed_case(eng, ANNA)
    bob = assessed_case(eng, BOB)
    carol = assessed_case(eng, {**BOB, "name": "Carol Hale", "salutation": "Ms Hale"})
    carol_ref = eng.get_case(carol)["reference"]
    restrict_case(eng, carol, [demo_username("social_worker")])
    with live_server(app) as base, launch() as browser:
        ctx = browser.new_context(bypass_csp=True)
        page = ctx.new_page()
        sign_in(page, base, demo_username("team_manager"), demo_password("team_manager"), then=None)
        # a bad period by address: the start after the end, then an empty period: each named, never a 500
        page.goto(f"{base}/returns/cld?period=other&from-day=31&from-month=3&from-year=2031"
                  "&to-day=1&to-month=1&to-year=2031")
        assert "The end date must be the same as or after the start date" in page.inner_text(".govuk-error-summary")
        page.goto(f"{base}/returns/cld?period=other")
        summary = page.inner_text(".govuk-error-summary")
        assert "Enter the start date" in summary and "Enter the end date" in summary
        run_axe(page, "the return's period left empty")
        r = page.goto(f"{base}/returns/cld.csv?from=2031-03-31&to=2031-01-01")
        assert r.status == 422 and "The end date must be the same as or after the start date" in page.inner_text("main")
        # a period with no events says so
        page.goto(f"{base}/returns/cld?period=other&from-day=1&from-month=4&from-year=2030"
                  "&to-day=30&to-month=6&to-year=2030")
        assert "the return would have no rows" in page.inner_text("#no-events")
        # the quarter, chosen by keyboard
        page.goto(f"{base}/returns/cld")
        page.get_by_label("January to March 2031 (quarter 4 of 2030 to 2031) – in progress").focus()
        page.keyboard.press("Space")
        page.get_by_role("button", name="Continue").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#report-heading")
        assert "2 errors, 2 warnings" in page.inner_text("#report-headline")
        nhs = page.inner_text("#check-no_nhs_number")
        assert eng.get_case(bob)["reference"] in nhs and carol_ref not in page.inner_text("main")
        assert "1 finding is on a restricted case not listed here" in page.inner_text("#report-restricted")
        run_axe(page, "the return's data-quality report")
        # a download link from a report made before something was recorded: said, axe-clean, back by keyboard
        r = page.goto(f"{base}/returns/cld.csv?from=2031-01-01&to=2031-03-31&version=0000000000000000")
        assert r.status == 409 and "The cases have changed since the report was made" in page.inner_text("h1")
        run_axe(page, "the return changed since its report")
        page.get_by_role("link", name="Look at the report for 1 January 2031 to 31 March 2031 again").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#report-heading")
        link = page.get_by_role("link", name=eng.get_case(bob)["reference"])
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{bob}")
        ctx.close()
