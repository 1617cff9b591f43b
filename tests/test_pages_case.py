"""The case record pages (api/case_pages.py) in a real browser and with TestClient.

Headless Chromium (tests/browser.py) opens Joan Barker's case — a front door contact routed to
reablement — as the reablement co-ordinator: her details, the chronology, the reablement diagram
drawn by bpmn-js with the open task highlighted, then adds a case note with the keyboard. Peter
Clarke's letters open as pages. axe-core checks the case page, the letter page and the note form
with errors against WCAG 2.1 A/AA. The cases are the ones tests/test_api_cases.py builds.
"""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from api.access import access_log
from api.case_pages import case_panel
from engine.schema import documents
from tests import test_api_cases
from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.test_api_cases import PASSWORD

world = test_api_cases.world  # (eng, app, cases): Joan's and Peter's case records (a fixture)


@pytest.fixture
def server(world):
    eng, app, cases = world
    with live_server(app) as base:
        yield base, eng, cases


def _sign_in(page, base: str, username: str, *, then: str | None = "/tasks") -> None:
    sign_in(page, base, username, PASSWORD, then=then)


def _client(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)
    page = client.get("/sign-in")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/tasks").text).group(1)
    return client, csrf


# ---------------------------------------------------------------------- the browser journey
def test_a_reablement_coordinator_reads_joans_record_and_adds_a_note_by_keyboard(server):
    base, eng, cases = server
    joan, peter = cases["joan"], cases["peter"]
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"
    with launch() as browser:
        # CSP stays on (bpmn-js must work under it); axe goes in through a CSP-exempt context below
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []
        # (the browser's own favicon request 404s: missing files are caught by the response listener)
        page.on("console", lambda m: problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        _sign_in(page, base, "rosa")

        page.goto(f"{base}/cases/{joan}")
        assert page.locator("h1").inner_text() == "Joan Barker"
        details = page.locator("#details + p + dl, #details ~ dl").first.inner_text()
        assert "9434765919" in details and "14 June 1952" in details and "4 Mill Lane, Northby" in details
        chronology = page.locator(".app-chronology").inner_text()
        assert "Plan reablement completed by Rosa Patel" in chronology
        assert "Record the contact completed by Frank Door" in chronology
        assert "No plan yet" in page.locator("#no-plan").inner_text()

        reablement = next(i["id"] for i in eng.get_case(joan)["instances"] if i["process_id"] == "reablement")
        assert page.locator(f"#position-{reablement}").inner_text().startswith(
            "Waiting for: Deliver reablement (Reablement team) since 3 March 2031")
        diagram = page.locator(f"#diagram-{reablement}")
        page.wait_for_selector(f"#diagram-{reablement}[data-rendered]", timeout=20_000)
        assert diagram.get_attribute("data-rendered") == "true", page.locator(
            f"#diagram-{reablement}-status").inner_text()
        active = diagram.locator('g.djs-element[data-element-id="deliver_reablement"]')
        assert "app-marker-active" in active.get_attribute("class")
        done = diagram.locator('g.djs-element[data-element-id="plan_reablement"]')
        assert "app-marker-done" in done.get_attribute("class")
        assert "app-marker-active" not in done.get_attribute("class")
        assert diagram.locator("svg").count() >= 1
        assert problems == [], problems  # no CSP refusals, no missing files, no script errors
        _axe_with_csp(browser, base, context, f"/cases/{joan}", "case")

        # add a note with the keyboard only: the button, a blank form (errors), then a phone call
        page.locator("#add-note").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{joan}/notes/new")
        page.locator("button", has_text="Add note").focus()
        page.keyboard.press("Enter")
        page.locator(".govuk-error-summary").wait_for()
        assert "Enter the note" in page.locator(".govuk-error-summary").inner_text()
        assert page.title().startswith("Error: ")
        _axe_with_csp(browser, base, context, None, "note form with errors", html=page.content())

        page.locator("#kind-1").focus()  # "Phone call"
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        for _ in range(6):
            if page.evaluate("() => document.activeElement.id") == "note-text":
                break
            page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "note-text"
        page.keyboard.type("Joan's daughter rang: the morning visits are going well.")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf".*/cases/{joan}\?saved=note.*"))
        assert "Case note added" in page.locator(".govuk-notification-banner--success").inner_text()
        assert "Joan's daughter rang" in page.locator(".app-notes").inner_text()
        first_row = page.locator(".app-chronology tbody tr").first.inner_text()
        assert "Phone call: Joan's daughter rang: the morning visits are going well." in first_row
        assert "Rosa Patel" in first_row

        # Peter's letters, opened as pages by the social worker who assessed him
        page.goto(f"{base}/sign-in")
        context.clear_cookies()
        _sign_in(page, base, "sam")
        page.goto(f"{base}/cases/{peter}")
        assert "Your support plan" in page.locator("#letters ~ .app-table-scroll table").first.inner_text()
        plan = page.get_by_role("table", name="What the plan will achieve")
        assert "Type of service" in plan.locator("thead").inner_text()
        assert "Home support or domiciliary care" in plan.locator("tbody").inner_text()
        _axe_with_csp(browser, base, context, f"/cases/{peter}", "case with a signed-off plan")
        page.get_by_role("link", name="Your personal budget").first.click()
        page.wait_for_url(re.compile(rf".*/cases/{peter}/letters/\d+$"))
        assert page.locator("h1").inner_text() == "Your personal budget"
        assert "Dear Mr Clarke" in page.locator("#letter-body").inner_text()
        _axe_with_csp(browser, base, context, page.url.removeprefix(base), "letter")
        context.close()

    assert eng.list_tasks(case_id=joan)  # nothing was completed by reading
    actions = [a["action"] for a in access_log(eng, joan) if a["user"] == "rosa"]
    assert actions.count("open") >= 2 and "note" in actions


def _axe_with_csp(browser, base: str, context, path: str | None, name: str, html: str | None = None) -> None:
    """axe is an injected inline script, so it runs in a second context with the page's CSP bypassed,
    signed in with the same session cookie."""
    ctx = browser.new_context(bypass_csp=True)
    try:
        ctx.add_cookies(context.cookies())
        page = ctx.new_page()
        if path is not None:
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
        else:
            page.goto(base + "/static/case.css")  # same origin, then the HTML as it was shown
            page.set_content(html or "")
            page.wait_for_load_state("networkidle")
        run_axe(page, name)
    finally:
        ctx.close()


def test_a_letter_cannot_inject_script(server):
    base, eng, cases = server
    joan = cases["joan"]
    instance = eng.get_case(joan)["instances"][0]["id"]
    with eng.db.transaction() as conn:
        doc_id = conn.execute(insert(documents).values(
            case_id=joan, instance_id=instance, element_id="x", handler="eligibility_letter", kind="eligibility",
            title="<img src=x onerror=alert(1)>", body="Dear Joan,\n<script>window.pwned = 1</script>\nBye",
            created_at=eng.now()).returning(documents.c.id)).scalar_one()
    with launch() as browser:
        context = browser.new_context()
        page = context.new_page()
        _sign_in(page, base, "rosa")
        page.goto(f"{base}/cases/{joan}/letters/{doc_id}")
        assert page.locator("h1").inner_text() == "<img src=x onerror=alert(1)>"
        assert "<script>window.pwned = 1</script>" in page.locator("#letter-body").inner_text()
        assert page.locator("#letter-body script").count() == 0 and page.locator("h1 img").count() == 0
        assert page.evaluate("() => window.pwned === undefined")
        context.close()


# ---------------------------------------------------------------------- TestClient checks
def test_what_each_role_sees_and_may_do_on_the_page(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa, _ = _client(app, "rosa")
    page = rosa.get(f"/cases/{joan}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert f'href="/cases/{joan}/details/nhs_number"' in page.text and 'id="add-note"' in page.text
    assert f"/cases/{joan}/coordinating-worker" not in page.text
    assert rosa.get(f"/cases/{joan}/coordinating-worker").status_code == 403

    audrey, _ = _client(app, "audrey")
    page = audrey.get(f"/cases/{joan}")
    assert page.status_code == 200 and "Joan Barker" in page.text
    assert "/details/" not in page.text and 'id="add-note"' not in page.text
    assert audrey.get(f"/cases/{joan}/notes/new").status_code == 403
    assert audrey.get(f"/cases/{joan}/details/phone").status_code == 403

    mary, csrf = _client(app, "mary")
    assert f'href="/cases/{joan}/coordinating-worker"' in mary.get(f"/cases/{joan}").text
    form = mary.get(f"/cases/{joan}/coordinating-worker")
    assert form.status_code == 200 and "Rosa Patel" in form.text
    r = mary.post(f"/cases/{joan}/coordinating-worker", data={"csrf_token": csrf, "username": "rosa",
                                                              "expected": "null", "reason": ""})
    assert r.status_code == 303
    assert re.search(r'id="coordinator">Rosa Patel<', mary.get(f"/cases/{joan}").text)

    sam, _ = _client(app, "sam")
    refused = sam.get(f"/cases/{joan}")
    assert refused.status_code == 403 and "Joan" not in refused.text
    assert sam.get("/cases/9999").status_code == 404
    assert TestClient(app, follow_redirects=False).get(f"/cases/{joan}").headers["location"] == "/sign-in"
    assert ("sam", "refused:open") in {(a["user"], a["action"]) for a in access_log(eng, joan)}


def _plan_table(page_html: str) -> list[list[str]]:
    """The rows of the case page's "What the plan will achieve" table, header first, as the cells read."""
    table = re.search(r'<table class="govuk-table">\s*<caption[^>]*>What the plan will achieve</caption>(.*?)</table>',
                      page_html, re.S)
    assert table, "no plan table on the page"
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r'<tr class="govuk-table__row">(.*?)</tr>', table.group(1), re.S)]


def test_the_plan_table_shows_each_services_type_and_not_recorded_for_a_plan_written_before_the_question(world):
    from tests.test_cld_service_component import old_forms

    eng, app, cases = world
    sam, _ = _client(app, "sam")
    rows = _plan_table(sam.get(f"/cases/{cases['peter']}").text)
    assert rows == [["Outcome", "Type of service", "How it is met", "Provided by"],
                    ["Get washed and dressed every morning", "Home support or domiciliary care",
                     "A home care visit of 45 minutes each morning", "Northtown Care"]]

    # a plan signed off before "Type of service" was asked: the type is not recorded, and the page says so
    forms = eng.forms
    eng.forms = old_forms()
    try:
        older = test_api_cases.plan_signed_off(eng, [
            {"label": "Get washed and dressed every morning", "how_met": "A home care visit each morning",
             "provided_by": "Northtown Care"},
            {"label": "Eat a hot meal every day", "how_met": "Meals delivered at lunchtime",
             "provided_by": "Northtown Meals"}])
    finally:
        eng.forms = forms
    rows = _plan_table(sam.get(f"/cases/{older}").text)
    assert [(r[0], r[1]) for r in rows[1:]] == [("Get washed and dressed every morning", "Not recorded"),
                                                ("Eat a hot meal every day", "Not recorded")]
    body = test_api_cases.client_for(app, "sam").get(f"/api/cases/{older}/record").json()
    assert [o["service_type"] for o in body["plan"]["outcomes"]] == ["Not recorded", "Not recorded"]


def test_the_plan_table_shows_the_provider_the_current_form_asks_for(world):
    # before: the column read only `provided_by` (the older forms' field), so every plan written with today's form
    # ("Provider") showed an empty "Provided by"
    eng, app, cases = world
    sam, _ = _client(app, "sam")
    newer = test_api_cases.plan_signed_off(eng, [
        {"label": "Get washed and dressed every morning", "how_met": "A home care visit each morning",
         "service_component": "home_support", "provider": "Millbrook Home Care"}])
    rows = _plan_table(sam.get(f"/cases/{newer}").text)
    assert rows[1] == ["Get washed and dressed every morning", "Home support or domiciliary care",
                       "A home care visit each morning", "Millbrook Home Care"]


def test_posts_need_the_csrf_token(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa, _ = _client(app, "rosa")
    r = rosa.post(f"/cases/{joan}/notes", data={"kind": "note", "text": "hello"})
    assert r.status_code == 403
    r = rosa.post(f"/cases/{joan}/details/phone", data={"csrf_token": "wrong", "value": "1", "expected": '"x"',
                                                          "reason": "x"})
    assert r.status_code == 403
    assert eng.get_case(joan)["data"]["person"]["phone"] == "01632 960555"
    from api.case_record import load

    assert load(eng, joan).notes == []


def test_correcting_a_detail_on_the_page_and_a_conflict_keeps_what_was_typed(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa, csrf = _client(app, "rosa")
    form = rosa.get(f"/cases/{joan}/details/date_of_birth")
    assert form.status_code == 200 and 'value="14"' in form.text and "14 June 1952" in form.text
    r = rosa.post(f"/cases/{joan}/details/date_of_birth", data={
        "csrf_token": csrf, "expected": '"1952-06-14"', "day": "31", "month": "2", "year": "1952", "reason": ""})
    assert r.status_code == 400
    assert "Date of birth must be a real date" in r.text and "Enter why you are changing this" in r.text
    assert 'value="31"' in r.text
    r = rosa.post(f"/cases/{joan}/details/date_of_birth", data={
        "csrf_token": csrf, "expected": '"1952-06-14"', "day": "4", "month": "6", "year": "1952",
        "reason": "Birth certificate seen"})
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{joan}?saved=details#details"
    assert eng.get_case(joan)["data"]["person"]["date_of_birth"] == "1952-06-04"
    # a second worker's form was opened before that change
    frank, fcsrf = _client(app, "frank")
    r = frank.post(f"/cases/{joan}/details/date_of_birth", data={
        "csrf_token": fcsrf, "expected": '"1952-06-14"', "day": "15", "month": "6", "year": "1952",
        "reason": "GP letter"})
    assert r.status_code == 409
    assert "someone else changed date of birth" in r.text.lower() and "4 June 1952" in r.text
    assert 'value="15"' in r.text and "GP letter" in r.text
    assert eng.get_case(joan)["data"]["person"]["date_of_birth"] == "1952-06-04"
    assert "Date of birth changed from 1952-06-14 to 1952-06-04" in rosa.get(f"/cases/{joan}").text


def test_the_panel_beside_a_task_form(world):
    eng, app, cases = world
    joan = cases["joan"]
    from api.auth import AuthStore

    user, _token = AuthStore(eng).sign_in("rosa", PASSWORD)
    panel = case_panel(eng, user, joan)
    assert panel["name"] == "Joan Barker" and panel["url"] == f"/cases/{joan}"
    assert {r["title"]: r["text"] for r in panel["rows"]}["NHS number"] == "9434765919"
    assert len(panel["recent"]) == 5 and panel["recent"][0]["text"].startswith("Deadline set")
    sam, _ = AuthStore(eng).sign_in("sam", PASSWORD)
    assert case_panel(eng, sam, joan) is None
    assert [a["action"] for a in access_log(eng, joan) if a["user"] in ("rosa", "sam")] == ["panel",
                                                                                           "refused:panel"]
    from api.page_kit import templates

    html = templates.get_template("_case_panel.html").render(case_panel=panel)
    assert "About Joan Barker" in html and f'href="/cases/{joan}"' in html


def test_the_correction_and_coordinator_forms_and_the_error_pages_pass_axe_and_work_by_keyboard(server):
    """The pages not covered above: correcting a detail (and its error), naming the co-ordinating
    worker, and the 403 and 404 pages."""
    base, eng, cases = server
    joan = cases["joan"]
    with launch() as browser:
        context = browser.new_context(bypass_csp=True)  # axe is injected as an inline script
        page = context.new_page()
        _sign_in(page, base, "rosa", then=None)
        page.goto(f"{base}/cases/{joan}/details/phone")
        run_axe(page, "correct a detail")
        page.focus("input[name=value], textarea[name=value]")
        page.keyboard.press("Control+A")
        page.keyboard.type("01632 960777")
        with page.expect_navigation():
            page.keyboard.press("Enter")  # no reason given: an error the form explains
        assert page.locator(".govuk-error-summary").count() == 1
        assert page.title().startswith("Error: ")
        run_axe(page, "correct a detail with an error")

        page.goto(f"{base}/cases/{joan}/coordinating-worker")
        assert page.locator("h1").inner_text() == "You do not have permission to see this page"
        run_axe(page, "403 page")
        page.goto(f"{base}/cases/999999")
        assert page.locator("h1").inner_text() == "Page not found"
        run_axe(page, "404 page")
        context.close()

        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        _sign_in(page, base, "mary", then=None)
        page.goto(f"{base}/cases/{joan}/coordinating-worker")
        run_axe(page, "name the co-ordinating worker")
        context.close()


def test_a_diagram_that_cannot_be_loaded_or_drawn_says_so_and_the_list_still_stands(server):
    """api/static/diagram_view.js, shared with the replay page: a diagram whose file fails to load, and a browser
    without the viewer, each leave a sentence in the diagram's status line and the container marked failed."""
    base, eng, cases = server
    joan = cases["joan"]
    reablement = next(i["id"] for i in eng.get_case(joan)["instances"] if i["process_id"] == "reablement")
    with launch() as browser:
        context = browser.new_context()
        page = context.new_page()
        _sign_in(page, base, "rosa")
        page.route("**/api/cases/*/instances/*/diagram", lambda route: route.fulfill(status=500, body="broken"))
        page.goto(f"{base}/cases/{joan}")
        page.wait_for_selector(f"#diagram-{reablement}[data-rendered]", timeout=20_000)
        assert page.get_attribute(f"#diagram-{reablement}", "data-rendered") == "failed"
        assert page.locator(f"#diagram-{reablement}-status").inner_text() == (
            "The diagram could not be drawn: the diagram could not be loaded (500). "
            "The list above says where things stand.")
        assert page.locator(f"#position-{reablement}").inner_text().startswith("Waiting for: Deliver reablement")
        _axe_with_csp(browser, base, context, None, "case, a diagram not drawn", html=page.content())
        page.unroute("**/api/cases/*/instances/*/diagram")
        page.route("**/static/bpmn-navigated-viewer.js", lambda route: route.abort())
        page.goto(f"{base}/cases/{joan}")
        page.wait_for_selector(f"#diagram-{reablement}[data-rendered]", timeout=20_000)
        assert page.get_attribute(f"#diagram-{reablement}", "data-rendered") == "failed"
        assert page.locator(f"#diagram-{reablement}-status").inner_text() == (
            "The diagram cannot be drawn in this browser; the list above says where things stand.")


def test_details_held_at_the_top_level_of_the_case_data_are_shown_not_said_to_be_missing(server):
    """Findings 15 item 4: a case whose data holds the person's details at its top level (the demo's Peter
    Clarke before the demo was mended) showed "No details about the person have been kept on this case yet" and
    "Not recorded" beside the name and address. The record page shows what is held, axe-clean."""
    base, eng, cases = server
    legacy = eng.create_case("Peter Clarke", {"address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "area": "north",
                                              "name": "Peter Clarke"}, actor="sam")
    with launch() as browser:
        context = browser.new_context(bypass_csp=True)  # axe is injected as an inline script
        page = context.new_page()
        _sign_in(page, base, "mary", then=None)
        page.goto(f"{base}/cases/{legacy}")
        body = page.locator("main").inner_text()
        assert "No details about the person have been kept" not in body
        assert page.locator("#detail-name .govuk-summary-list__value").inner_text() == "Peter Clarke"
        assert page.locator("#detail-address .govuk-summary-list__value").inner_text() == \
            "12 Mill Lane, Northtown, NS2 4BB"
        assert page.locator("#detail-area .govuk-summary-list__value").inner_text() != "Not recorded"
        run_axe(page, "case record with details at the top level of its data")
        context.close()
