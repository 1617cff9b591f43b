"""The "New information on an open case" task page in a real browser, as the reablement team's worker sees it
(issue 10 item 4): a second contact for Edith while reablement is open on her case starts nothing new; the
reablement team finds the task in its inbox, reads what was new (who called, why, the needs, the work open on
the case), and answers by keyboard only. An empty submit puts focus on the error summary, whose link moves focus
to the question; every state of the page is axe-clean (WCAG 2.1 AA). Where a needs assessment is open the task
is social work's: each team sees only its own, and cannot open the other's (403, not a 500).

One database (SQLite), one live server and one browser for the module: the engine's behaviour on both
databases is tests/test_front_door_open_work.py's.
"""

from __future__ import annotations

import pytest

from tests.front_door_world import PASSWORD, build, username
from tests.test_forms_sections import _enter, _focused, _tab_to
from tests.test_front_door_routes import LIKELY_ELIGIBLE, contact, front_door

AGAIN = "She has had two more falls since reablement started and now cannot get to the toilet at night"
TASK = "New information on an open case"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Edith: reablement open on her case, then her daughter Mary's contact about new needs."""
    from tests.browser import launch, live_server

    eng, app, people = build(f"sqlite:///{tmp_path_factory.mktemp('newinfo') / 'carepath.db'}")
    cid = people["edith"]
    eng.start("reablement", case_id=cid, actor="coordinator1", data={
        "person": {"name": "Edith Clarke", "age": 87}, "age": 87, "reason": "Falls", "from_hospital": False,
        "discharge_date": None, "screening_reason": "Likely eligible"})
    record = next(t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "record_contact")
    eng.complete_task(record["id"], contact(
        person_name="Edith Clarke", person_age=87, person_address="4 Mill Lane", person_area="north",
        caller_name="Mary Barker", caller_relationship="carer", caller_organisation="", reason=AGAIN,
        outcomes_unable=LIKELY_ELIGIBLE), actor="advisor1")
    [task] = [t for t in eng.list_tasks(case_id=cid) if t["name"] == TASK]
    assert (task["element_id"], task["team"]) == ("inform_reablement", "reablement")
    # Joan: a needs assessment open (reablement not appropriate), then a second contact: social work's task
    long_term = contact(outcomes_unable=LIKELY_ELIGIBLE, reablement_appropriate=False,
                        reablement_not_appropriate_because="long_term_condition")
    joan = front_door(eng, long_term)[0].case_id
    front_door(eng, dict(long_term, reason=AGAIN), case_id=joan)
    [social] = [t for t in eng.list_tasks(case_id=joan) if t["name"] == TASK]
    assert (social["element_id"], social["team"]) == ("inform_social_work", "social_work")
    try:
        with live_server(app) as base, launch() as browser:
            yield eng, base, browser, task, social
    finally:
        eng.db.dispose()


def _page_as(browser, base, role):
    from tests.browser import sign_in

    page = browser.new_context(bypass_csp=True).new_page()
    sign_in(page, base, username(role), PASSWORD)
    return page


YELLOW = "rgb(255, 221, 0)"  # GOV.UK's focus colour


def _focus_ring(page, radio: bool = False) -> str:
    """What shows the keyboard focus: the focused element's background and box shadow, or for a GOV.UK radio
    (the input itself is invisible) the box shadow of its label's circle."""
    return page.evaluate("""(radio) => {
        const el = document.activeElement;
        if (radio) return getComputedStyle(document.querySelector(`label[for="${el.id}"]`), '::before').boxShadow;
        const s = getComputedStyle(el);
        return s.backgroundColor + ' ' + s.boxShadow;
    }""", radio)


def test_each_team_sees_only_its_own_and_cannot_open_the_others(world):
    from tests.browser import run_axe

    eng, base, browser, task, social = world
    mine = _page_as(browser, base, "reablement_coordinator")
    assert mine.locator(f"a[href='/tasks/{social['id']}']").count() == 0
    assert mine.goto(f"{base}/tasks/{social['id']}").status in (403, 404)
    mine.context.close()
    page = _page_as(browser, base, "social_worker")
    # social work's own (a needs assessment is open on Joan's case) is in its inbox; the reablement one is not
    assert page.locator(f"a[href='/tasks/{social['id']}']").inner_text() == TASK
    assert page.locator(f"a[href='/tasks/{task['id']}']").count() == 0
    response = page.goto(f"{base}/tasks/{task['id']}")
    assert response.status in (403, 404), response.status
    assert TASK not in page.locator("main").inner_text() and "Mary Barker" not in page.content()
    assert page.get_by_role("heading", level=1).inner_text() == "You do not have permission to see this page"
    run_axe(page, "task of another team")
    page.context.close()


def test_the_reablement_worker_reads_the_new_contact_and_answers_it_by_keyboard(world):
    from tests.browser import run_axe

    eng, base, browser, task, _social = world
    page = _page_as(browser, base, "reablement_coordinator")
    # the inbox of the team working the case lists it, with the person
    row = page.locator("tr", has=page.get_by_role("link", name=TASK))
    assert "Edith Clarke" in row.inner_text()
    run_axe(page, "reablement inbox with the new information task")
    _tab_to(page, TASK)
    assert YELLOW in _focus_ring(page), "the focused link shows no focus"
    _enter(page)
    assert page.url == f"{base}/tasks/{task['id']}"
    assert page.get_by_role("heading", level=1).inner_text() == TASK

    # what was new, above the question, in the words the worker reads
    shown = page.locator("dl[aria-labelledby=shown-1]")
    assert page.locator("#shown-1").inner_text() == "The new contact"
    rows = dict(zip([t.strip() for t in shown.locator("dt").all_inner_texts()],
                    [t.strip() for t in shown.locator("dd").all_inner_texts()], strict=True))
    assert rows["Who called"] == "Mary Barker"
    assert rows["Caller's relationship to the person"] == "Carer"
    assert rows["Why they called"] == AGAIN
    assert rows["Contact date"] == "3 March 2031"
    assert rows["Open on the case"] == "Reablement"
    # the contact's answers in the contact form's words, never its codes
    assert rows["Outcomes the person cannot achieve"] == (
        "Personal hygiene, Being appropriately clothed, Using the home safely")
    assert not [v for v in rows.values() if "_" in v], rows
    run_axe(page, "new information on an open case, not yet claimed")

    _tab_to(page, "Claim this task")
    assert YELLOW in _focus_ring(page), "the focused button shows no focus"
    _enter(page)
    page.goto(f"{base}/tasks/{task['id']}")
    assert not page.locator("#f-response-0").is_checked()

    # nothing chosen: the error summary takes the focus and names the question; its link moves focus to it
    _tab_to(page, "Complete task")
    _enter(page)
    summary = page.locator(".govuk-error-summary")
    assert page.evaluate(
        "() => document.activeElement.classList.contains('govuk-error-summary')"), "focus is not on the summary"
    assert summary.locator("a").all_inner_texts() == ["Select what you are doing with the new information"]
    assert "Select what you are doing" in page.locator(".govuk-error-message").inner_text()
    assert page.title().startswith("Error: ")
    run_axe(page, "new information on an open case, nothing chosen")
    assert [t["id"] for t in eng.list_tasks(case_id=task["case_id"]) if t["name"] == TASK] == [task["id"]]
    page.keyboard.press("Tab")  # the summary's only link
    assert _focused(page) == "Select what you are doing with the new information"
    page.keyboard.press("Enter")
    assert _focused(page) == "f-response-0"

    page.keyboard.press("ArrowDown")  # "We are contacting the person about it"
    assert page.is_checked("#f-response-1") and not page.is_checked("#f-response-0")
    assert YELLOW in _focus_ring(page, radio=True), "the focused radio shows no focus"
    page.keyboard.press("Tab")
    assert _focused(page) == "f-notes"
    page.keyboard.type("Rang Mary: night-time visit to be added")
    page.keyboard.press("Tab")
    assert _focused(page) == "Complete task"
    _enter(page)
    assert page.url == f"{base}/tasks?view=mine"
    assert f"Task completed: {TASK}" in page.locator(".govuk-notification-banner").inner_text()
    assert page.get_by_role("link", name=TASK).count() == 0
    done = [e["data"] for e in eng.history(task["case_id"]) if e["type"] == "task.completed"][-1]
    assert done["element_id"] == "inform_reablement"
    assert done["data"] == {"response": "contacted_the_person", "notes": "Rang Mary: night-time visit to be added"}
    page.context.close()


def test_no_form_has_a_question_named_like_the_task_pages_own_fields():
    """The task page posts its buttons as `action` (complete, draft, continue) with `csrf_token` and `revision`:
    a question of that name would be read as the button ("'complete' is not one of ...") and the task could not
    be completed on its page, as happened to this form's question."""
    import json
    from pathlib import Path

    forms = sorted((Path(__file__).resolve().parent.parent / "forms").glob("*.schema.json"))
    assert len(forms) > 40
    clashes = [(f.name, k) for f in forms for k in json.loads(f.read_text()).get("properties", {})
               if k in ("action", "csrf_token", "revision")]
    assert clashes == []
