"""Refer for independent advocacy from a case record (api/case_actions.py, action "advocacy"): a worker who
sees at first contact or at any time that the person would have substantial difficulty being involved and
has nobody to help refers them, without waiting for a decision's form. The API and the page, roles, bad
input, one referral at a time; real diagrams on the simulated clock, SQLite and PostgreSQL."""

from __future__ import annotations

from api.case_actions import ADVOCACY_DECISIONS
from handlers.capacity import DECISIONS
from tests.browser import launch, live_server, run_axe
from tests.casework_helpers import api_client, follow_by_keyboard, signed_in_page
from tests.test_capacity_advocacy import APPOINTED, DUE
from tests.test_case_actions import SW, app, eng, planned_case  # noqa: F401  (fixtures)
from tests.test_process_assessment_to_review import complete, events, letters, open_tasks

REFERRAL = {"decision": "review", "reason": "Aphasia since his stroke: cannot say what he wants; no family nearby"}


def first_tasks(eng, cid, process_id):  # noqa: F811
    ids = {i["id"] for i in eng.get_case(cid)["instances"] if i["process_id"] == process_id}
    return sorted((t["element_id"], t["team"]) for t in open_tasks(eng, cid) if t["instance_id"] in ids)


def test_a_social_worker_refers_for_advocacy_from_the_record_and_the_advocate_is_arranged(eng, app):  # noqa: F811
    cid = planned_case(eng)
    r = api_client(app, "social_worker").post(f"/api/cases/{cid}/actions/advocacy", json={"data": REFERRAL})
    assert r.status_code == 201, r.text
    assert r.json()["process_id"] == "advocacy"
    assert first_tasks(eng, cid, "advocacy") == [("arrange_advocate", "social_work")]
    [started] = [e for e in events(eng, cid, "instance.started") if e["data"]["process_id"] == "advocacy"]
    assert started["actor"] == SW
    assert started["data"]["data"] == {"person": {**started["data"]["data"]["person"]}, "decision": "review",
                                       "reason": REFERRAL["reason"], "contact_date": "2031-03-03"}
    assert started["data"]["data"]["person"]["name"] == "Peter Clarke"
    [task] = [t for t in open_tasks(eng, cid) if t["element_id"] == "arrange_advocate"]
    assert task["due_at"] == DUE
    complete(eng, cid, "arrange_advocate", APPOINTED, actor=SW)
    assert "the review of your care and support plan" in letters(eng, cid, "advocacy_letter")[0]
    # appointed: a second referral is refused, saying why, and starts nothing
    n = len(eng.history(cid))
    r = api_client(app, "social_worker").post(f"/api/cases/{cid}/actions/advocacy", json={"data": REFERRAL})
    assert r.status_code == 422 and "already appointed" in r.json()["message"], r.text
    assert len(eng.history(cid)) == n


def test_a_safeguarding_referral_goes_to_the_safeguarding_team_and_one_is_open_at_a_time(eng, app):  # noqa: F811
    cid = planned_case(eng)
    sw = api_client(app, "social_worker")
    r = sw.post(f"/api/cases/{cid}/actions/advocacy", json={"data": {**REFERRAL, "decision": "safeguarding"}})
    assert r.status_code == 201, r.text
    assert first_tasks(eng, cid, "advocacy") == [("arrange_safeguarding_advocate", "safeguarding")]
    r = sw.post(f"/api/cases/{cid}/actions/advocacy", json={"data": REFERRAL})
    assert r.status_code == 422 and "already being arranged" in r.json()["message"], r.text


def test_bad_input_names_the_field_and_starts_nothing(eng, app):  # noqa: F811
    cid = planned_case(eng)
    sw = api_client(app, "social_worker")
    n = len(eng.history(cid))
    for data, field in (({"reason": "x"}, "decision"), ({"decision": "shopping", "reason": "x"}, "decision"),
                        ({"decision": "review", "reason": ""}, "reason"),
                        ({"decision": "review", "reason": "bad\x00byte"}, "reason")):
        r = sw.post(f"/api/cases/{cid}/actions/advocacy", json={"data": data})
        assert r.status_code == 422, r.text
        named = [(e["field"] or "").rsplit("/", 1)[-1] for e in r.json()["errors"]]  # data/reason: api/inputs.py
        assert field in named, (data, r.json())
    assert len(eng.history(cid)) == n


def test_who_may_refer(eng, app):  # noqa: F811
    cid = planned_case(eng)
    for role in ("finance_officer", "reablement_coordinator", "auditor"):
        r = api_client(app, role).post(f"/api/cases/{cid}/actions/advocacy", json={"data": REFERRAL})
        assert r.status_code == 403, (role, r.text)
    assert [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "advocacy"] == []
    r = api_client(app, "team_manager").post(f"/api/cases/{cid}/actions/advocacy", json={"data": REFERRAL})
    assert r.status_code == 201, r.text


def test_the_decisions_offered_are_the_ones_the_advocacy_process_accepts():
    assert set(ADVOCACY_DECISIONS) == set(DECISIONS)


def test_the_referral_page_by_keyboard_with_its_errors_axe_clean(eng, app):  # noqa: F811
    cid = planned_case(eng)
    with live_server(app) as base, launch() as browser:
        _ctx, page = signed_in_page(browser, base, SW, "social_worker")
        page.goto(f"{base}/cases/{cid}")
        follow_by_keyboard(page, "Refer for independent advocacy", f"{base}/cases/{cid}/actions/advocacy")
        run_axe(page, "refer for independent advocacy")
        page.get_by_role("button", name="Refer for independent advocacy").click()
        page.wait_for_selector(".govuk-error-summary")
        summary = page.inner_text(".govuk-error-summary")
        assert "Select what the advocate is needed for" in summary, summary
        assert "Enter why the person needs an advocate" in summary, summary
        run_axe(page, "refer for independent advocacy with errors")
        page.get_by_label("A review of their support plan").check()
        page.get_by_label("Why does the person need an advocate?").fill(REFERRAL["reason"])
        page.get_by_label("Why does the person need an advocate?").press("Tab")
        page.keyboard.press("Enter")  # the button, by keyboard
        page.wait_for_url(lambda url: "saved=action_advocacy" in url)
        assert "Refer for independent advocacy: done" in page.inner_text(".govuk-notification-banner")
    assert first_tasks(eng, cid, "advocacy") == [("arrange_advocate", "social_work")]
