"""The case record's Actions and Close pages (issue 10, items 1 and 2): GOV.UK question pages with an error
summary, CSRF and a one-time token (a second click starts nothing more); the browser journey of a social
worker requesting a review and a team manager closing a case after a death, axe-clean and by keyboard."""

from __future__ import annotations

import re

from tests.browser import launch, live_server, run_axe
from tests.casework_helpers import action_token, focused, follow_by_keyboard, page_client, signed_in_page, tab_to
from tests.test_case_actions import SW, TM, app, eng, planned_case  # noqa: F401  (fixtures)
from tests.test_process_assessment_to_review import events, open_tasks


def test_the_record_lists_the_actions_each_user_may_take(eng, app):  # noqa: F811
    cid = planned_case(eng)
    sw, _ = page_client(app, "social_worker")
    page = sw.get(f"/cases/{cid}").text
    actions = re.search(r'<ul class="govuk-list" id="case-actions">(.*?)</ul>', page, re.S).group(1)
    assert "Request a review" in actions and "Raise a safeguarding concern" in actions
    assert "Close the case" not in actions
    tm, _ = page_client(app, "team_manager")
    assert "Close the case" in tm.get(f"/cases/{cid}").text
    auditor, _ = page_client(app, "auditor")
    assert 'id="case-actions"' not in auditor.get(f"/cases/{cid}").text
    assert auditor.get(f"/cases/{cid}/actions/review").status_code == 403


def test_an_empty_form_gets_an_error_summary_and_a_second_click_starts_nothing(eng, app):  # noqa: F811
    cid = planned_case(eng)
    sw, csrf = page_client(app, "social_worker")
    form = sw.get(f"/cases/{cid}/actions/review").text
    r = sw.post(f"/cases/{cid}/actions/review", data={"csrf_token": csrf, "action_token": action_token(form)})
    assert r.status_code == 422
    assert "govuk-error-summary" in r.text and 'href="#review_reason"' in r.text
    assert "Select the reason for the review" in r.text and "Enter why the review is needed" in r.text
    assert r.text.count("Error:", 0, r.text.index("</title>")) == 1
    assert not [e for e in events(eng, cid, "instance.started") if e["data"]["process_id"] == "review"
                and e["actor"] == SW]
    good = {"csrf_token": csrf, "action_token": action_token(r.text), "review_reason": "Carer related",
            "requested_by": "carer", "note": "Daughter in hospital"}
    first = sw.post(f"/cases/{cid}/actions/review", data=good)
    assert first.status_code == 303 and first.headers["location"] == f"/cases/{cid}?saved=action_review"
    again = sw.post(f"/cases/{cid}/actions/review", data=good)  # the same form sent twice
    assert again.status_code == 303 and again.headers["location"].endswith("saved=already")
    assert [t["element_id"] for t in open_tasks(eng, cid)].count("review_plan") == 1
    bad_csrf = sw.post(f"/cases/{cid}/actions/review", data={**good, "csrf_token": "x"})
    assert bad_csrf.status_code == 403


def test_the_back_button_and_a_second_send_do_not_start_a_second_review(eng, app):  # noqa: F811
    """Findings 10, 4: Back reloads the form with a new one-time token; sending it again is refused with the
    review under way named, and nothing more starts (the same for a change in circumstances)."""
    cid = planned_case(eng)
    sw, csrf = page_client(app, "social_worker")
    good = {"csrf_token": csrf, "review_reason": "Carer related", "requested_by": "carer", "note": "Daughter ill"}
    first = sw.post(f"/cases/{cid}/actions/review",
                    data={**good, "action_token": action_token(sw.get(f"/cases/{cid}/actions/review").text)})
    assert first.status_code == 303
    for action, data in (("review", good), ("change_in_circumstances", {"csrf_token": csrf, "what_changed": "A fall",
                                                                        "requested_by": "person"})):
        back = sw.get(f"/cases/{cid}/actions/{action}").text  # the page again, with a new token
        r = sw.post(f"/cases/{cid}/actions/{action}", data={**data, "action_token": action_token(back)})
        assert r.status_code == 422, action
        assert "A review of the support plan is already under way on this case (Review support plan with the " \
               "Social Work team since 3 March 2031)" in r.text
        assert "Carer related" in r.text or "A fall" in r.text  # what was typed is kept
    assert [t["element_id"] for t in open_tasks(eng, cid)].count("review_plan") == 1


def test_closing_with_a_date_of_death_in_the_future_is_refused_on_the_page(eng, app):  # noqa: F811
    cid = planned_case(eng)
    tm, csrf = page_client(app, "team_manager")
    form = tm.get(f"/cases/{cid}/close").text
    r = tm.post(f"/cases/{cid}/close", data={"csrf_token": csrf, "action_token": action_token(form), "reason": "died",
                                             "date_of_death-day": "1", "date_of_death-month": "1",
                                             "date_of_death-year": "2099"})
    assert r.status_code == 422 and "The date of death must be today or in the past" in r.text
    assert 'href="#date_of_death-day"' in r.text
    assert "case_closed" not in eng.get_case(cid)["data"]
    # a character that reverses what follows it (U+202E) is refused as it is in a name, naming the field, and
    # the page is shown again with the error linked to the box; a note keeps its line breaks
    for council, note, field, message in (
            ("\u202eLeeds", "", "council", "The council the person moved to must only contain characters you can "
                                           "see: remove the bidirectional control character U+202E"),
            ("Leeds", "Moved in with\nher son \u200b", "note", "A note must only contain characters you can see: "
                                                              "remove the zero-width character U+200B")):
        r = tm.post(f"/cases/{cid}/close", data={"csrf_token": csrf, "action_token": action_token(r.text),
                                                 "reason": "moved_away", "council": council, "note": note})
        assert r.status_code == 422 and message in r.text, field
        assert f'href="#{field}"' in r.text
        assert "case_closed" not in eng.get_case(cid)["data"]
    r = tm.post(f"/cases/{cid}/close", data={"csrf_token": csrf, "action_token": action_token(r.text),
                                             "reason": "moved_away", "council": "Southshire",
                                             "note": "Moved in with\nher son"})
    assert r.status_code == 303
    page = tm.get(f"/cases/{cid}").text
    assert 'id="case-closed"' in page and "Moved to another council (to Southshire)" in page
    assert 'id="case-actions"' not in page
    refused = tm.get(f"/cases/{cid}/actions/safeguarding")
    assert refused.status_code == 409 and "is closed" in refused.text


def test_a_social_worker_requests_a_review_and_a_manager_closes_the_case_in_the_browser(eng, app):  # noqa: F811
    cid = planned_case(eng)
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, SW, "social_worker")
        page.goto(f"{base}/cases/{cid}")
        run_axe(page, "case record with actions")
        follow_by_keyboard(page, "Request a review", f"{base}/cases/{cid}/actions/review")
        page.get_by_role("button", name="Request a review").click()
        page.wait_for_selector(".govuk-error-summary")
        run_axe(page, "request a review with errors")
        page.get_by_label("Carer related").check()
        page.get_by_label("A carer").check()
        page.get_by_label("What has happened?").fill("Daughter can no longer help at weekends")
        page.get_by_label("What has happened?").press("Tab")
        page.keyboard.press("Enter")  # the button, by keyboard
        page.wait_for_url(re.compile(r".*saved=action_review"))
        assert "Request a review: done" in page.inner_text(".govuk-notification-banner")
        ctx.close()

        ctx, page = signed_in_page(browser, base, TM, "team_manager")
        page.goto(f"{base}/cases/{cid}/close")
        run_axe(page, "close the case")
        page.get_by_label("The person has died").check()
        page.get_by_label("Day").fill("2")
        page.get_by_label("Month").fill("3")
        page.get_by_label("Year").fill("2031")
        page.get_by_role("button", name="Close the case").click()
        page.wait_for_url(re.compile(r".*saved=closed"))
        assert "date of death 2 March 2031" in page.inner_text("#closure")
        run_axe(page, "closed case record")
        ctx.close()
    assert open_tasks(eng, cid) == []
    assert eng.get_case(cid)["data"]["case_closed"]["details"] == {"date_of_death": "2031-03-02"}


def test_the_close_page_lists_what_it_withdraws_and_asks_to_confirm_an_open_safeguarding_concern(eng, app):  # noqa: F811
    """Findings 10, 5: in the browser (axe, keyboard only): the close page lists each open process with its open
    tasks and teams; with a safeguarding concern open, closing needs the checkbox, and the error links to it."""
    cid = planned_case(eng)
    sw, csrf = page_client(app, "social_worker")
    form = sw.get(f"/cases/{cid}/actions/safeguarding").text
    assert sw.post(f"/cases/{cid}/actions/safeguarding", data={
        "csrf_token": csrf, "action_token": action_token(form), "concern": "Bruising seen by carer",
        "raised_by": "Home care worker", "urgent": "no"}).status_code == 303
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, TM, "team_manager")
        page.goto(f"{base}/cases/{cid}/close")
        listed = page.inner_text("#withdrawn")
        assert "Adult safeguarding" in listed and "Record the concern and immediate safety (Safeguarding team)" \
            in listed, listed
        assert "Review of the support plan" in listed  # the review cycle: its planned dates stop
        run_axe(page, "close the case with a safeguarding concern open")
        page.get_by_label("Declined support").focus()
        page.keyboard.press("Space")
        page.get_by_role("button", name="Close the case").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector(".govuk-error-summary")
        summary = page.locator(".govuk-error-summary")
        assert "Confirm that you have passed the safeguarding concern on" in summary.inner_text()
        run_axe(page, "close the case: the safeguarding confirmation missing")
        summary.get_by_role("link", name=re.compile("Confirm that you have passed")).focus()
        page.keyboard.press("Enter")
        assert focused(page) == "safeguarding_passed_on"
        page.keyboard.press("Space")
        tab_to(page, "Close the case")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*saved=closed"))
        ctx.close()
    assert open_tasks(eng, cid) == []
    assert eng.get_case(cid)["data"]["case_closed"]["details"] == {"safeguarding_passed_on": True}


def test_a_manager_ends_one_process_from_its_place_on_the_record(eng, app):  # noqa: F811
    cid = planned_case(eng)
    sw, sw_csrf = page_client(app, "social_worker")
    form = sw.get(f"/cases/{cid}/actions/carers_assessment").text
    assert sw.post(f"/cases/{cid}/actions/carers_assessment", data={
        "csrf_token": sw_csrf, "action_token": action_token(form), "carer_name": "Susan Clarke",
        "relationship": "daughter"}).status_code == 303
    [iid] = [i["id"] for i in eng.get_case(cid)["instances"] if i["process_id"] == "carers_assessment"]
    assert f"/cases/{cid}/instances/{iid}/end" not in sw.get(f"/cases/{cid}").text
    assert sw.get(f"/cases/{cid}/instances/{iid}/end").status_code == 403
    tm, csrf = page_client(app, "team_manager")
    assert f"/cases/{cid}/instances/{iid}/end" in tm.get(f"/cases/{cid}").text
    page = tm.get(f"/cases/{cid}/instances/{iid}/end").text
    assert "Why is this process being ended?" in page
    r = tm.post(f"/cases/{cid}/instances/{iid}/end", data={"csrf_token": csrf, "action_token": action_token(page)})
    assert r.status_code == 422 and "Select the reason" in r.text
    r = tm.post(f"/cases/{cid}/instances/{iid}/end", data={"csrf_token": csrf, "action_token": action_token(r.text),
                                                           "reason": "declined"})
    assert r.status_code == 303 and r.headers["location"].endswith("saved=ended")
    assert "assess_carer" not in [t["element_id"] for t in open_tasks(eng, cid)]
    assert "case_closed" not in eng.get_case(cid)["data"]
    assert tm.get(f"/cases/{cid}/instances/{iid}/end").status_code == 404  # nothing left to end


def test_a_refusal_of_the_case_as_a_whole_is_said_once(eng, app):  # noqa: F811
    # findings 10, 9: "This case has no signed-off support plan to review" was shown in the summary and again below
    cid = eng.create_case("Nora Plain", {"person": {"name": "Nora Plain", "date_of_birth": "1940-02-03"}})
    sw, csrf = page_client(app, "team_manager")  # may open any case
    form = sw.get(f"/cases/{cid}/actions/review").text
    r = sw.post(f"/cases/{cid}/actions/review", data={"csrf_token": csrf, "action_token": action_token(form),
                                                       "review_reason": "Carer related", "requested_by": "carer",
                                                       "note": "Daughter ill"})
    assert r.status_code == 422 and "govuk-error-summary" in r.text
    assert r.text.count("This case has no signed-off support plan to review") == 1
    assert 'href="#main-content"' in r.text
    # findings 10, 12: the date of death's example was a date the page itself refuses (in the future)
    close = sw.get(f"/cases/{cid}/close").text
    assert "For example, 27 3 2024" in close and "27 3 2031" not in close


def test_the_close_page_asks_each_reasons_own_question_under_it(eng, app):  # noqa: F811
    """Trial d: the date of death and the council are GOV.UK conditional reveals under their reasons (not two
    questions every manager must read past); an error reveals its question and its summary link reaches it; by
    keyboard, axe-clean."""
    cid = planned_case(eng)
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, TM, "team_manager")
        page.goto(f"{base}/cases/{cid}/close")
        assert not page.locator("#date_of_death-day").is_visible() and not page.locator("#council").is_visible()
        page.get_by_label("The person has died").focus()
        page.keyboard.press("Space")
        assert page.locator("#date_of_death-day").is_visible() and not page.locator("#council").is_visible()
        page.keyboard.press("ArrowDown")  # Moved to another council
        assert page.is_checked("#reason-2")
        assert page.locator("#council").is_visible() and not page.locator("#date_of_death-day").is_visible()
        run_axe(page, "close the case: the council revealed")
        tab_to(page, "Close the case")
        page.keyboard.press("Enter")
        page.wait_for_selector(".govuk-error-summary")
        summary = page.locator(".govuk-error-summary")
        assert summary.inner_text().endswith("Enter the council the person moved to")
        assert page.locator("#council").is_visible() and page.is_checked("#reason-2")  # shown with its error
        run_axe(page, "close the case: the council missing")
        summary.get_by_role("link").focus()
        page.keyboard.press("Enter")
        assert focused(page) == "council"
        page.keyboard.type("Leeds City Council")
        tab_to(page, "Close the case")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*saved=closed"))
        ctx.close()
    assert eng.get_case(cid)["data"]["case_closed"]["details"] == {"council": "Leeds City Council"}


def test_the_record_does_not_say_nobody_co_ordinates_when_the_signed_off_plan_names_someone(eng, app):  # noqa: F811
    """Trial d: after sign-off the record said "Co-ordinating worker: Not named yet" at the top while the plan, lower
    down, said "Name: Jane Smith, Role: social worker, Phone: …"; a worker read that nobody co-ordinates."""
    cid = planned_case(eng)
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, TM, "team_manager")
        page.goto(f"{base}/cases/{cid}")
        assert page.inner_text("#coordinator") == (
            "Not named on the case record yet; the support plan names Jane Smith, social worker, 01632 960123")
        text = page.inner_text("main")
        assert "Co-ordinating worker in the plan\tJane Smith, social worker, 01632 960123" in text
        assert "Name: Jane Smith" not in text
        run_axe(page, "case record with the plan's co-ordinating worker")
        ctx.close()
    # the panel beside a task on the case says the same
    sw, csrf = page_client(app, "social_worker")
    form = sw.get(f"/cases/{cid}/actions/review").text
    assert sw.post(f"/cases/{cid}/actions/review", data={
        "csrf_token": csrf, "action_token": action_token(form), "review_reason": "Other Reason",
        "requested_by": "person", "note": "Peter asked for a review"}).status_code == 303
    [review] = [t for t in open_tasks(eng, cid) if t["element_id"] == "review_plan"]
    task_page = sw.get(f"/tasks/{review['id']}").text
    assert "the support plan names Jane Smith, social worker, 01632 960123" in task_page


def test_the_record_shows_a_choice_in_the_words_the_contact_form_used(eng, app):  # noqa: F811
    """Trial d: "Area of the county — north" (the stored code) on a record whose contact form said "North"."""
    cid = eng.create_case("Nora Plain", {"person": {"name": "Nora Plain", "area": "countywide"}})
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, TM, "team_manager")
        page.goto(f"{base}/cases/{cid}")
        assert "Area of the county\tCountywide" in page.inner_text("main")
        run_axe(page, "case record with a choice detail")
        ctx.close()


def test_the_budget_scoring_errors_read_as_sentences(eng, app):  # noqa: F811
    """Trial d: "Work, training, education or volunteering: select is part of this need met by a carer who is
    willing and able to help?" — the generic "Select " + the question. Now each says what to select."""
    from tests.casework_helpers import complete, known_case
    from tests.test_case_actions import PERSON
    from tests.test_process_assessment_to_review import assessment

    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"),
             actor=SW)
    [score] = [t for t in open_tasks(eng, cid) if t["element_id"] == "score_needs"]
    eng.claim(score["id"], SW)
    sw, csrf = page_client(app, "social_worker")
    revision = re.search(r'name="revision" value="(\d+)"', sw.get(f"/tasks/{score['id']}").text).group(1)
    r = sw.post(f"/tasks/{score['id']}", data={"csrf_token": csrf, "revision": revision, "action": "complete"})
    assert r.status_code == 400
    summary = r.text.split('class="govuk-error-summary"')[1].split("</ul>")[0]
    assert "Work, training, education or volunteering: select whether part of this need is met by a carer" in summary
    assert "Personal care (washing, dressing, using the toilet): select the level of need" in summary
    assert "select is part of" not in summary and "select level of need" not in summary


def test_the_record_says_when_the_plan_was_last_reviewed_and_by_whom(eng, app):  # noqa: F811
    """Session 29's trial: the record gave the first and next review but not when the plan was last reviewed."""
    from datetime import timedelta

    from api.case_record import long_day

    cid = planned_case(eng)
    sw, csrf = page_client(app, "social_worker")
    assert "last-review" not in sw.get(f"/cases/{cid}").text  # none done yet: nothing said
    assert sw.get(f"/api/cases/{cid}/record").json()["last_review"] is None
    form = sw.get(f"/cases/{cid}/actions/review").text
    assert sw.post(f"/cases/{cid}/actions/review", data={
        "csrf_token": csrf, "action_token": action_token(form), "review_reason": "Other Reason",
        "requested_by": "person", "note": "Peter asked for a review"}).status_code == 303
    eng.advance_clock(timedelta(days=9))
    [review] = [t for t in open_tasks(eng, cid) if t["element_id"] == "review_plan"]
    eng.complete_task(review["id"], {"needs_changed": False, "plan_working": True}, actor=SW)
    done_on = long_day(eng.now())
    sw, _csrf = page_client(app, "social_worker")  # signed in again: the clock moved on
    page = sw.get(f"/cases/{cid}").text
    assert re.search(rf'<span id="last-review">Last review {done_on}, by [^<]+</span>', page), done_on
    assert sw.get(f"/api/cases/{cid}/record").json()["last_review"]["text"] == done_on
