"""One case from first contact to its first review, carried in the browser by the people who do the work.

Headless Chromium (tests/browser.py) against a real uvicorn server on the operating model's own
diagrams, handlers and forms, on a simulated clock that the test moves on (the clock is the only
thing the test does outside the browser). Five of `make run`'s demo users (api/demo_users.py), each
in their own browser session:

1. a front door advisor searches for the person, finds nobody, records the contact;
2. a reablement co-ordinator claims and plans reablement; twenty days later delivers it
   (needs remain), which starts a needs assessment;
3. a social worker assesses needs and scores them; the budget is above the threshold;
4. a team manager approves the budget; the social worker writes the plan; the manager signs it off;
5. the clock moves six weeks: the first review is in the social work team's queue, due;
6. an auditor opens the case record by its reference and reads the chronology.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from api.app import create_app
from api.demo_users import create_demo_users, demo_password
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers.eligibility import ADULT_OUTCOMES
from tests.browser import launch, live_server, run_axe, sign_in
from tests.conftest import START

ROOT = Path(__file__).resolve().parent.parent
UNABLE = ("personal_hygiene", "being_clothed", "using_home_safely")
DOMAINS = ("personal_care", "nutrition", "safety_and_supervision", "mobility_at_home", "home_environment",
           "relationships", "work_learning_volunteering", "community_access", "parenting")
LEVELS = ("none", "low", "moderate", "high", "very_high")


@pytest.fixture
def server(db_url):
    eng = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init(simulated_start=START)
    eng.deploy([ROOT / "processes"])
    create_demo_users(eng)  # the people `make run` gives a newcomer, with their teams
    app = create_app(eng, run_timers=False)
    with live_server(app) as base:
        yield base, eng
    eng.db.dispose()


WHO: dict[int, str] = {}  # page -> username, to sign in again when the session has expired


def _sign_in(browser, base: str, username: str, *, bypass_csp: bool = False):
    context = browser.new_context(bypass_csp=bypass_csp)  # axe-core is injected as an inline script
    page = context.new_page()
    WHO[id(page)] = username
    _enter(page, base, username)
    return page


def _enter(page, base: str, username: str) -> None:
    sign_in(page, base, username, demo_password(username.replace("-", "_")), then=None)
    assert not page.url.endswith("/sign-in"), page.locator("main").inner_text()


def _claim_from_team_queue(page, base: str, task_name: str, person: str) -> str:
    """Find the task in the team's queue by its name and the person, claim it; returns the inbox row's due text."""
    page.goto(f"{base}/tasks?view=team")
    if page.url.endswith("/sign-in"):  # days have passed on the clock: the session has expired
        _enter(page, base, WHO[id(page)])
        page.goto(f"{base}/tasks?view=team")
    row = page.locator("tbody tr").filter(has_text=task_name).filter(has_text=person)
    assert row.count() == 1, page.locator("main").inner_text()
    due = row.locator("td").nth(2).inner_text()
    row.get_by_role("button", name=re.compile("^Claim")).click()
    page.wait_for_url(re.compile(rf"{base}/tasks/[0-9a-f-]+$"))
    assert page.locator("h1").inner_text() == task_name
    return due


def _yes(page, field_id: str) -> None:
    page.check(f"#{field_id}-0")


def _no(page, field_id: str) -> None:
    page.check(f"#{field_id}-1")


def _complete(page, base: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Complete task").click()
    assert page.url == f"{base}/tasks?view=mine", page.locator("main").inner_text()[:2000]
    assert "Task completed" in page.locator("main").inner_text()


def test_a_case_goes_from_first_contact_to_its_first_review_in_the_browser(server):
    base, eng = server
    with launch() as browser:
        # 1. the advisor: search first, nobody known, a new person; the contact task is theirs
        advisor = _sign_in(browser, base, "front-door-advisor")
        advisor.get_by_role("link", name="New contact").click()
        advisor.fill("#name", "Joan Barker")
        advisor.get_by_role("button", name="Search").click()
        advisor.get_by_role("button", name="This is a new person").click()
        advisor.wait_for_url(re.compile(rf"{base}/tasks/[0-9a-f-]+$"))
        assert advisor.locator("h1").inner_text() == "Record the contact"
        assert advisor.input_value("#f-person-name") == "Joan Barker"  # what they typed in the search
        advisor.fill("#f-caller-name", "Dr Amy Shah")
        advisor.check("#f-caller-relationship-3")  # GP or social prescriber
        advisor.fill("#f-reason", "Falls at home and struggling since her husband died")
        advisor.fill("#f-person-age", "78")
        advisor.fill("#f-person-address", "4 Mill Lane, Northby")
        advisor.check("#f-person-area-0")
        for outcome in ("personal_hygiene", "being_appropriately_clothed", "using_the_home_safely"):
            advisor.check(f"input[name='outcomes_unable'][value='{outcome}']")
        _no(advisor, "f-safeguarding_concern")
        _no(advisor, "f-crisis")
        _yes(advisor, "f-consents_to_referral")
        _no(advisor, "f-from_hospital")
        with advisor.expect_navigation():
            advisor.get_by_role("button", name="Complete task").click()
        # the advisor is told where the contact went, and why
        assert advisor.locator("h1").inner_text() == "Contact recorded"
        outcome = advisor.locator("#screening-outcome").inner_text()
        assert "Reablement first" in outcome and "likely eligible, reablement first" in outcome
        [case] = [c for c in (eng.get_case(t["case_id"]) for t in eng.list_tasks()) if c["title"] == "Joan Barker"]
        reference = case["reference"]

        # 2. the reablement co-ordinator plans reablement from the team's queue
        coordinator = _sign_in(browser, base, "reablement-coordinator")
        _claim_from_team_queue(coordinator, base, "Plan reablement", reference)
        coordinator.fill("#f-goals", "Wash and dress without help\nMake a hot meal")
        coordinator.check("#f-setting-0")
        _complete(coordinator, base)

        # 20 days on, the reablement is delivered; needs remain, so a needs assessment starts
        eng.advance_clock(timedelta(days=20))
        _claim_from_team_queue(coordinator, base, "Deliver reablement", reference)
        coordinator.check("#f-outcome-1")  # needs remain
        coordinator.fill("#f-summary", "Washing with help; still cannot dress or move about the home safely")
        _complete(coordinator, base)

        # 3. the social worker assesses needs (three outcomes she cannot achieve) and scores them
        worker = _sign_in(browser, base, "social-worker")
        _claim_from_team_queue(worker, base, "Assess needs", reference)
        # a task list: each section its own page, then Check your answers
        for section in ("Eligibility: daily living", "Eligibility: home, relationships and community",
                        "Impact on wellbeing", "Carer and other notes"):
            with worker.expect_navigation():
                worker.get_by_role("link", name=section).click()
            if worker.locator("#f-needs_from_impairment-0").count():
                _yes(worker, "f-needs_from_impairment")
            for code in ADULT_OUTCOMES:
                if not worker.locator(f"#f-outcomes-{code}-unable-0").count():
                    continue  # in the other section
                if code in UNABLE:
                    _yes(worker, f"f-outcomes-{code}-unable")
                    worker.check(f"#f-outcomes-{code}-ways-0")  # needs assistance, including prompting
                    worker.fill(f"#f-outcomes-{code}-reason", "Joan needs help and prompting every morning")
                else:
                    _no(worker, f"f-outcomes-{code}-unable")
            if worker.locator("#f-wellbeing_impact-significant-0").count():
                _yes(worker, "f-wellbeing_impact-significant")
                worker.check("#f-wellbeing_impact-areas-1")
                worker.fill("#f-wellbeing_impact-reason", "Falls have left Joan anxious and housebound")
            if worker.locator("#f-carer_present-0").count():
                _no(worker, "f-carer_present")
            with worker.expect_navigation():
                worker.get_by_role("button", name="Save and continue").click()
            assert re.search(r"/tasks/[0-9a-f-]+$", worker.url), worker.locator("main").inner_text()[:2000]
            assert worker.locator(".govuk-task-list").count() == 1  # saved: back on the task list
        with worker.expect_navigation():
            worker.get_by_role("button", name="Check your answers").click()
        assert worker.locator("h1").inner_text() == "Check your answers"
        _complete(worker, base)

        _claim_from_team_queue(worker, base, "Score needs (RAS)", reference)
        levels = {"personal_care": "very_high", "safety_and_supervision": "high"}
        for domain in DOMAINS:
            worker.check(f"#f-needs-{domain}-level-{LEVELS.index(levels.get(domain, 'none'))}")
            _no(worker, f"f-needs-{domain}-met_by_carer")
        _complete(worker, base)

        # 4. above the threshold: the team manager approves the budget
        manager = _sign_in(browser, base, "team-manager")
        _claim_from_team_queue(manager, base, "Approve budget", reference)
        _yes(manager, "f-approved")
        _complete(manager, base)

        _claim_from_team_queue(worker, base, "Write support plan", reference)
        worker.fill("#f-outcomes-0-label", "Get washed and dressed every morning")
        worker.fill("#f-outcomes-0-how_met", "A home care visit of 45 minutes each morning")
        with worker.expect_navigation():
            worker.get_by_role("button", name="Add another outcome").click()
        worker.fill("#f-outcomes-1-label", "Get out to the shops each week")
        worker.fill("#f-outcomes-1-how_met", "A personal assistant on Thursday afternoons")
        worker.fill("#f-outcomes-1-weekly_cost", "48")
        worker.check("#f-outcomes-0-service_component-0")  # type of service: home support
        worker.check("#f-outcomes-1-service_component-7")  # a personal assistant: other or none of these
        worker.check("#f-money_management-2")  # council managed
        worker.fill("#f-may_change_without_contacting", "The time of the morning visit")
        worker.fill("#f-coordinating_worker-name", "Sam Social")
        worker.fill("#f-coordinating_worker-role", "Social worker")
        worker.fill("#f-review_frequency_months", "12")
        _complete(worker, base)

        _claim_from_team_queue(manager, base, "Sign off plan", reference)
        _yes(manager, "f-signed_off")
        _complete(manager, base)

        # 5. six weeks later the first review is in the social work team's queue, and due
        worker.goto(f"{base}/tasks?view=team")
        assert "Review support plan" not in worker.locator("main").inner_text()
        assert "Welcome" not in worker.locator("main").inner_text()
        # 42 days after sign-off is Sunday 4 May 2031 and Monday 5 May the early May bank holiday: reviews
        # fall on working days, so the first review opens on Tuesday 6 May (day 44), not before
        eng.advance_clock(timedelta(days=43))
        worker.goto(f"{base}/tasks?view=team")
        assert "Review support plan" not in worker.locator("main").inner_text()
        eng.advance_clock(timedelta(days=1))
        due = _claim_from_team_queue(worker, base, "Review support plan", reference)
        assert due == "19 May 2031", due  # signed off 23 March: 8 weeks is Sunday 18 May, so Monday 19 May

        # the coordinator's reablement team does not see the review
        coordinator.goto(f"{base}/tasks?view=team")
        assert reference not in coordinator.locator("main").inner_text()

        # 6. the auditor opens the record by reference and reads what happened
        auditor = _sign_in(browser, base, "auditor", bypass_csp=True)
        assert auditor.url == f"{base}/home"
        run_axe(auditor, "home")
        auditor.fill("#reference", "CASE-999999")
        with auditor.expect_navigation():
            auditor.keyboard.press("Enter")
        assert "There is no case CASE-999999" in auditor.locator(".govuk-error-summary").inner_text()
        run_axe(auditor, "home with an unknown reference")
        auditor.fill("#reference", reference)
        auditor.get_by_role("button", name="Open the case record").click()
        auditor.wait_for_url(re.compile(rf"{base}/cases/\d+$"))
        text = auditor.locator("main").inner_text()
        assert "Joan Barker" in text and "Review support plan" in text
        seen = text
        while auditor.get_by_role("link", name=re.compile("Older")).count():  # the chronology, page by page
            auditor.get_by_role("link", name=re.compile("Older")).first.click()
            auditor.wait_for_load_state()
            seen += auditor.locator("main").inner_text()
        for done in ("Record the contact", "Plan reablement", "Deliver reablement", "Assess needs",
                     "Score needs (RAS)", "Approve budget", "Write support plan", "Sign off plan"):
            assert f"{done} completed" in seen, done
    # and the history the people made is intact and replays exactly
    from engine.replay import replay_case

    assert eng.verify(case["id"])[1] == []
    assert replay_case(eng, case["id"]).ok
