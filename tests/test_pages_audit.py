"""The auditors' pages (api/audit.py) and what every role sees of the site: the navigation fits the role
and never leads to a 403, unknown and forbidden pages answer a browser in HTML (the JSON API keeps
JSON), the favicon; and in a real browser, keyboard only and axe-clean, an auditor finds a case by the
person's name, opens it and reads the access log."""

from __future__ import annotations

import re
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.access import restrict_case
from api.auth import ROLES, case_access_log
from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.front_door_world import PASSWORD, build, username

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
NO_INBOX = ("auditor", "process_owner", "administrator", "performance", "data_protection")


@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    yield eng, app, people
    eng.db.dispose()


def browser_client(app, user: str | None) -> TestClient:
    """A client signed in on the sign-in page, as a browser is."""
    client = TestClient(app, follow_redirects=False, headers=HTML)
    if user is not None:
        token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
        r = client.post("/sign-in", data={"form_token": token, "username": user, "password": PASSWORD})
        assert r.status_code == 303, r.text
    return client


def nav_links(html: str) -> list[tuple[str, str]]:
    nav = re.search(r'<nav aria-label="Main".*?</nav>', html, re.S)
    if nav is None:
        return []
    return [(href, re.sub(r"<[^>]+>", "", text).strip())
            for href, text in re.findall(r'<a class="govuk-service-navigation__link" href="([^"]+)"[^>]*>(.*?)</a>',
                                         nav.group(0), re.S)]


def header_link(html: str) -> str:
    return re.search(r'<a href="([^"]+)" class="app-header__name">', html).group(1)


def title(html: str) -> str:
    return unescape(re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1).strip())


# ---------------------------------------------------------------------- navigation per role
def test_every_role_gets_a_navigation_whose_links_all_open(world):
    _eng, app, _p = world
    for role in ROLES:
        client = browser_client(app, username(role))
        landing = client.get("/")
        assert landing.status_code == 303
        start = client.get(landing.headers["location"])
        assert start.status_code == 200, (role, start.text[:300])
        links = nav_links(start.text)
        hrefs = [h for h, _ in links]
        if role in NO_INBOX:
            assert "/tasks" not in hrefs and header_link(start.text) == "/", role
            assert "/tasks" not in start.text, role  # no link to an inbox anywhere on the page
        else:
            assert hrefs[0] == "/tasks" and header_link(start.text) == "/tasks", role
        if role == "auditor":
            assert links == [("/audit/cases", "Find cases"), ("/audit/access-log", "Access log"),
                             ("/processes", "Processes")]
        if role == "auditor":  # a newcomer who does not know a reference is shown the way
            assert '<a class="govuk-link" href="/audit/cases">Find cases</a> by the person' in start.text
        if role == "team_manager":
            assert "/audit/cases" in hrefs and "/audit/access-log" not in hrefs
        # nothing in the header leads to a refusal: the account's own pages neither (change password, two-step)
        account = re.findall(r'<a class="govuk-link app-header__link" href="([^"]+)"', start.text)
        assert account == ["/account/password", "/account/mfa"], (role, account)
        for href in hrefs + [header_link(start.text)] + account:
            r = client.get(href)
            if r.status_code == 303:
                r = client.get(r.headers["location"])
            assert r.status_code == 200, (role, href, r.status_code)


def test_someone_named_on_a_restricted_case_gets_the_access_log_link(world):
    eng, app, p = world
    client = browser_client(app, "social-worker")
    assert "/audit/access-log" not in [h for h, _ in nav_links(client.get("/tasks").text)]
    assert client.get("/audit/access-log").status_code == 403
    restrict_case(eng, p["edith"], ["social-worker"])
    assert "/audit/access-log" in [h for h, _ in nav_links(client.get("/tasks").text)]
    assert client.get("/audit/access-log").status_code == 200


# ---------------------------------------------------------------------- error pages and favicon
@pytest.mark.parametrize("who", [None, "auditor", "social-worker"])
def test_an_unknown_page_is_an_html_404_for_a_browser(world, who):
    _eng, app, _p = world
    client = browser_client(app, who)
    for path in ("/no-such-page", "/cases/1/nothing-here", "/audit", "/static/../README.md"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html"), path
        assert title(r.text) == "Page not found"
        assert "Content-Security-Policy" in r.headers
        # its one way on is a page this user may open
        back = re.search(r'<main.*?<a class="govuk-link" href="([^"]+)"', r.text, re.S).group(1)
        assert back == {None: "/sign-in", "auditor": "/home", "social-worker": "/tasks"}[who]
        assert client.get(back).status_code == 200


def test_the_json_api_keeps_json_errors_even_when_html_is_accepted(world):
    _eng, app, _p = world
    client = browser_client(app, "auditor")
    r = client.get("/api/no-such-thing")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = client.get("/api/people", params={"q": "clarke"})  # a casework search: not for auditors
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    # a client that does not ask for HTML gets JSON for a page address too
    r = TestClient(app).get("/no-such-page")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


def test_a_forbidden_page_is_an_html_403_and_a_wrong_method_an_html_405(world):
    _eng, app, _p = world
    client = browser_client(app, "finance-officer")
    for path in ("/audit/cases", "/audit/access-log", "/audit/cases?name=clarke"):
        r = client.get(path)
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html"), path
        assert title(r.text) == "You do not have permission to see this page"
    r = client.get("/sign-out")
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")
    # signed out: a page that needs a session sends the browser to sign in
    r = browser_client(app, None).get("/audit/cases")
    assert (r.status_code, r.headers["location"]) == (303, "/sign-in")


def test_the_favicon_is_our_own_and_every_page_links_it(world):
    _eng, app, _p = world
    client = browser_client(app, None)
    ico = client.get("/favicon.ico")
    assert ico.status_code == 200 and ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00" and len(ico.content) > 1000
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "<script" not in svg.text
    page = client.get("/sign-in").text
    assert '<link rel="icon" href="/favicon.ico"' in page and 'href="/static/favicon.svg"' in page


# ---------------------------------------------------------------------- the auditors' pages
def test_the_search_page_finds_pages_and_logs(world):
    eng, app, p = world
    client = browser_client(app, "auditor")
    empty = client.get("/audit/cases")
    assert empty.status_code == 200 and "<table" not in empty.text
    r = client.get("/audit/cases", params={"name": "Edith Clarke", "dob-day": "27", "dob-month": "3",
                                           "dob-year": "1944"})
    assert r.status_code == 200
    ref = eng.get_case(p["edith"])["reference"]
    assert f'<a class="govuk-link" href="/cases/{p["edith"]}">{ref}</a>' in r.text
    assert "27 March 1944" in r.text and "1 case found" in r.text
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(case_access_log.c.case_id, case_access_log.c.action, case_access_log.c.page)
                            .where(case_access_log.c.user == "auditor")).all()
    assert [tuple(x) for x in rows] == [(p["edith"], "search", "/audit/cases")]


def test_the_search_page_pages_with_links_that_keep_the_search(world):
    eng, app, p = world
    client = browser_client(app, "auditor")
    r = client.get("/audit/cases", params={"name": "clark", "per_page": "3"})
    assert "3 cases found" in r.text and "Page 1 of" not in r.text  # one page: no pagination
    r = client.get("/audit/cases", params={"from-day": "1", "from-month": "1", "from-year": "2031", "per_page": "3"})
    assert "4 cases found" in r.text and "Page 1 of 2" in r.text
    nxt = unescape(re.search(r'href="([^"]+)" rel="next"', r.text).group(1))
    assert nxt.startswith("/audit/cases?") and "from-year=2031" in nxt and "per_page=3" in nxt and "page=2" in nxt
    second = client.get(nxt)
    assert "Page 2 of 2" in second.text and 'rel="prev"' in second.text
    assert second.text.count('<a class="govuk-link" href="/cases/') == 1


def test_the_search_page_says_what_is_wrong_and_where(world):
    eng, app, _p = world
    client = browser_client(app, "auditor")
    r = client.get("/audit/cases", params={"dob-day": "31", "dob-month": "2", "dob-year": "1944",
                                           "nhs_number": "123"})
    assert r.status_code == 400
    assert '<a href="#dob-day">Date of birth must be a real date' in r.text
    assert '<a href="#nhs_number">NHS number must be 10 digits' in r.text
    assert 'value="31"' in r.text  # what was typed is kept
    r = client.get("/audit/cases", params={"name": "", "reference": "", "dates": "created"})  # an empty form
    assert r.status_code == 400 and "Enter at least one thing to search by" in r.text


def test_the_access_log_page_filters_and_shows_refusals(world):
    eng, app, p = world
    browser_client(app, "finance-officer").get(f"/cases/{p['edith']}")  # refused
    auditor = browser_client(app, "auditor")
    assert auditor.get(f"/cases/{p['edith']}").status_code == 200
    r = auditor.get("/audit/access-log", params={"outcome": "refused"})
    assert r.status_code == 200
    rows = re.findall(r"<tr class=\"govuk-table__row\">(.*?)</tr>", r.text, re.S)[1:]
    assert len(rows) == 1
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.S)]
    assert cells[1:6] == ["finance-officer", eng.get_case(p["edith"])["reference"], "open", "Refused",
                          f"/cases/{p['edith']}"]
    r = auditor.get("/audit/access-log", params={"user": "auditor", "action": "open"})
    assert "1 entry" in r.text
    r = auditor.get("/audit/access-log", params={"outcome": "perhaps"})
    assert r.status_code == 400 and '<a href="#outcome">Outcome must be allowed or refused' in r.text


def test_search_results_name_processes_and_event_types_and_the_access_log_gives_times_as_every_page_does(world):
    from api.audit import process_names

    eng, app, p = world
    client = browser_client(app, "auditor")
    r = client.get("/audit/cases", params={"from-day": "1", "from-month": "1", "from-year": "2031"})
    rows = re.findall(r"<tr class=\"govuk-table__row\">(.*?)</tr>", r.text, re.S)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[4] for row in rows]
    names = process_names(eng)
    shown = [" ".join(unescape(re.sub(r"<[^>]+>", " ", li)).split())
             for cell in cells for li in re.findall(r"<li>(.*?)</li>", cell, re.S)]
    assert shown
    for line in shown:  # the name first, its id after it as secondary text
        pid = line.split()[-1]
        assert pid in names and line == f"{names[pid]} {pid}" and names[pid] != pid
    # the filters' options: processes by name and event types in words, each with its id
    assert re.search(r'<option value="task.completed"[^>]*>Task completed \(task.completed\)</option>', r.text)
    pid = next(iter(names))
    assert f'<option value="{pid}">{names[pid]} ({pid})</option>' in r.text
    # the access log: UK time in words, as everywhere else ("3 March 2031, 9:00am")
    client.get(f"/cases/{p['edith']}")
    log = client.get("/audit/access-log", params={"user": "auditor"})
    times = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', log.text)
    assert times and all(re.fullmatch(r"\d{1,2} [A-Z][a-z]+ \d{4}, \d{1,2}:\d\d[ap]m", text) for _, text in times)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT.*", at) for at, _ in times)


# ---------------------------------------------------------------------- in the browser
def _tab_to(page, selector_js: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {selector_js}"):
            return
    raise AssertionError(f"Tab never reached {selector_js}")


def test_an_auditor_finds_a_case_by_name_opens_it_and_reads_the_access_log_keyboard_only(world):
    eng, app, p = world
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    ref = eng.get_case(p["edith"])["reference"]
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)  # axe is injected as an inline script
        page = context.new_page()
        sign_in(page, base, "auditor", PASSWORD, then="/home")
        nav = page.get_by_role("navigation", name="Main")
        assert nav.get_by_role("link").all_inner_texts() == ["Find cases", "Access log", "Processes"]
        run_axe(page, "auditor's home")
        _tab_to(page, "document.activeElement.textContent.trim() === 'Find cases'")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/audit/cases")
        run_axe(page, "find cases")
        _tab_to(page, "document.activeElement.id === 'name'")
        page.keyboard.type("clarke edith")
        _tab_to(page, "document.activeElement.id === 'dob-day'")
        page.keyboard.type("27")
        page.keyboard.press("Tab")
        page.keyboard.type("3")
        page.keyboard.press("Tab")
        page.keyboard.type("1944")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        table = page.locator("table")
        assert "1 case found" in table.inner_text() and "Edith Clarke" in table.inner_text()
        run_axe(page, "find cases with results")
        _tab_to(page, f"document.activeElement.textContent.trim() === '{ref}'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{base}/cases/{p['edith']}"
        assert "Edith Clarke" in page.locator("main").inner_text()
        _tab_to(page, "document.activeElement.textContent.trim() === 'Access log'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        run_axe(page, "access log")
        _tab_to(page, "document.activeElement.id === 'reference'")
        page.keyboard.type(ref)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        text = page.locator("table").inner_text()
        assert re.search(r"\d+ entries", text) and "search" in text and "/audit/cases" in text
        assert {line.split("\t")[2] for line in text.splitlines()[2:]} == {ref}  # that case only
        assert f"/cases/{p['edith']}" in text
        run_axe(page, "access log filtered")
        # an error state is accessible too
        page.goto(f"{base}/audit/cases?nhs_number=123")
        page.locator(".govuk-error-summary").wait_for()
        run_axe(page, "find cases with an error")
        page.goto(f"{base}/no-such-page")
        assert page.locator("h1").inner_text() == "Page not found"
        run_axe(page, "page not found")
        context.close()


def test_on_a_phone_the_auditors_pages_do_not_scroll_sideways_their_wide_tables_do(world):
    """WCAG 1.4.10 (reflow) at 320 CSS pixels wide: the results of Find cases, the access log, the case record's
    chronology, the replay's timeline and the Processes pages made the whole page scroll sideways (the access
    log to 1,165 px on the demo). Each wide table now scrolls in its own labelled, focusable box."""
    eng, app, p = world
    case = p["edith"]
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True, viewport={"width": 320, "height": 700})
        page = context.new_page()
        sign_in(page, base, "auditor", PASSWORD, then="/home")
        for path in ("/audit/cases?name=clark", f"/cases/{case}", f"/cases/{case}/replay", "/audit/access-log",
                     "/processes", "/processes/front_door"):
            page.goto(base + path)
            assert page.locator("table").count() >= 1, path
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 320, (path, width)
            boxes = page.locator(".app-table-scroll")
            assert boxes.count() >= 1 and boxes.first.get_attribute("tabindex") == "0", path
            run_axe(page, f"{path} at 320 px")
