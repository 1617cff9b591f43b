"""Acting on a case from its record and closing it through the JSON API (issue 10, items 1 and 2):
each action starts the right process with the right first task for the right team; roles; bad input;
a closed case refuses actions; a new contact reopens it. Real diagrams on the simulated clock, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.app import create_app
from api.demo_users import demo_username
from engine.replay import replay_case
from tests.case_helpers import cld_full
from tests.casework_helpers import ROOT, SW, TM, api_client, casework_engine, known_case
from tests.test_process_assessment_to_review import PETER, SMALL, assessment, complete, events, open_tasks, plan, ras

PERSON = {**PETER, "date_of_birth": "1948-05-01"}


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, [ROOT / "processes"], users=True)


@pytest.fixture
def app(eng):
    return create_app(eng, run_timers=False)


def planned_case(eng, money_management="direct_payment") -> int:
    """Peter, assessed, budget and plan signed off, the social worker having worked on the case."""
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"),
             actor=SW)
    complete(eng, cid, "score_needs", ras(**SMALL), actor=SW)
    complete(eng, cid, "write_plan", plan(money_management), actor=SW)
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor=TM)
    return cid


def first_tasks(body) -> list[tuple[str, str]]:
    return [(t["element_id"], t["team"]) for t in body["tasks"]]


def test_each_action_starts_its_process_with_the_first_task_for_the_right_team(eng, app):
    cid = planned_case(eng)
    sw = api_client(app, "social_worker")
    cases = {
        "review": ({"review_reason": "Carer related", "requested_by": "carer", "note": "Daughter unwell"},
                   "review", [("review_plan", "social_work")]),
        "safeguarding": ({"concern": "Bruising seen by carer", "raised_by": "Home care worker", "urgent": "no"},
                         "safeguarding", [("record_concern", "safeguarding")]),
        "carers_assessment": ({"carer_name": "Susan Clarke", "relationship": "daughter"},
                              "carers_assessment", [("assess_carer", "social_work")]),
        "dp_review": ({"dp_review_trigger": "breach", "note": "Money not spent on care"},
                      "direct_payment_review", [("review_direct_payment", "social_work")]),
        "hospital_discharge": ({"reason": "Fractured hip", "ward": "Northtown General, ward 7"},
                               "hospital_discharge", [("respond_to_referral", "hospital_team")]),
    }
    for action, (data, process_id, tasks) in cases.items():
        r = sw.post(f"/api/cases/{cid}/actions/{action}", json={"data": data})
        assert r.status_code == 201, (action, r.text)
        body = r.json()
        assert body["process_id"] == process_id and first_tasks(body) == tasks, action
    started = {e["data"]["process_id"]: e for e in events(eng, cid, "instance.started") if e["actor"] == SW
               and e["data"]["process_id"] != "needs_assessment"}
    assert started["review"]["data"]["data"]["review_reason"] == "Carer related"
    assert started["carers_assessment"]["data"]["data"]["person"] == {"name": "Susan Clarke",
                                                                       "relationship": "daughter"}
    assert started["carers_assessment"]["data"]["data"]["cared_for"] == "Peter Clarke"
    assert started["hospital_discharge"]["data"]["data"]["person"]["age"] == 82
    assert started["direct_payment_review"]["data"]["data"] == {"dp_review_trigger": "breach",
                                                                "dp_review_note": "Money not spent on care"}
    reasons = [r["review_reason"] for r in cld_full(eng, cid) if r["event_type"] == "Review"]
    assert reasons == [] or set(reasons) <= {"Carer related", "Other Reason"}
    assert replay_case(eng, cid).ok


def test_one_requested_review_at_a_time_a_second_is_refused_pointing_at_the_one_under_way(eng, app):
    """Findings 10, 4: a second "Request a review" or "Record a change in circumstances" while a review is under
    way is refused naming it (the hospital referral, urgent response and equipment rule); the review cycle only
    waiting for its date is no review under way."""
    cid = planned_case(eng)
    sw = api_client(app, "social_worker")
    assert [i["process_id"] for i in eng.get_case(cid)["instances"]
            if i["status"] == "waiting"].count("review") == 1  # the plan's own cycle, waiting for its date
    r = sw.post(f"/api/cases/{cid}/actions/change_in_circumstances",
                json={"data": {"what_changed": "A fall at home last week", "requested_by": "person"}})
    assert r.status_code == 201, r.text
    started = events(eng, cid, "instance.started")[-1]
    assert started["data"]["data"]["review_reason"] == "Other Reason"
    assert started["data"]["data"]["review_request_note"] == "Change in circumstances: A fall at home last week"
    n = len(eng.history(cid))
    for action, data in (("review", {"review_reason": "Carer related", "requested_by": "carer", "note": "Again"}),
                         ("change_in_circumstances", {"what_changed": "Another fall", "requested_by": "person"})):
        r = sw.post(f"/api/cases/{cid}/actions/{action}", json={"data": data})
        assert r.status_code == 422, (action, r.text)
        [err] = [e for e in r.json()["errors"] if e["field"] == "case"]
        assert err["message"].startswith("A review of the support plan is already under way on this case "
                                         "(Review support plan with the Social Work team since 3 March 2031)")
    assert len(eng.history(cid)) == n
    assert [t["element_id"] for t in open_tasks(eng, cid)].count("review_plan") == 1
    # once that review is done, another may be asked for
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True}, actor=SW)
    assert "review_plan" not in [t["element_id"] for t in open_tasks(eng, cid)]
    r = sw.post(f"/api/cases/{cid}/actions/review",
                json={"data": {"review_reason": "Carer related", "requested_by": "carer", "note": "Daughter ill"}})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("action,data,field", [
    ("review", {"review_reason": "Bored", "requested_by": "carer", "note": "x"}, "review_reason"),
    ("review", {"review_reason": "Hospital", "requested_by": "carer", "note": ""}, "note"),
    ("carers_assessment", {"relationship": "daughter"}, "carer_name"),
    ("carers_assessment", {"carer_name": "Peter Clarke", "relationship": "self"}, "carer_name"),
    ("dp_review", {"dp_review_trigger": "whim", "note": "x"}, "dp_review_trigger"),
    ("safeguarding", {"concern": "x", "raised_by": "y"}, "urgent"),
    ("safeguarding", {"concern": "bad\x00byte", "raised_by": "y", "urgent": "no"}, "concern"),
])
def test_bad_input_names_the_field_and_starts_nothing(eng, app, action, data, field):
    cid = planned_case(eng)
    n = len(eng.history(cid))
    r = api_client(app, "social_worker").post(f"/api/cases/{cid}/actions/{action}", json={"data": data})
    assert r.status_code == 422, r.text
    assert field in [e["field"].rsplit("/", 1)[-1] for e in r.json()["errors"]]  # "data/concern": a NUL (api/inputs)
    assert len(eng.history(cid)) == n


def test_actions_that_need_a_plan_or_a_direct_payment_say_so(eng, app):
    cid = planned_case(eng, money_management="council_managed")
    sw = api_client(app, "social_worker")
    r = sw.post(f"/api/cases/{cid}/actions/dp_review", json={"data": {"dp_review_trigger": "breach", "note": "x"}})
    assert r.status_code == 422 and "no direct payment" in r.json()["message"]
    fresh = eng.start("needs_assessment", actor=SW, data={"name": "Ann Lee", "person": {"name": "Ann Lee"}}).case_id
    r = sw.post(f"/api/cases/{fresh}/actions/review",
                json={"data": {"review_reason": "Hospital", "requested_by": "worker", "note": "Admitted"}})
    assert r.status_code == 422 and "no signed-off support plan" in r.json()["message"]
    assert sw.post("/api/cases/99999/actions/review", json={"data": {}}).status_code == 404
    assert sw.post(f"/api/cases/{cid}/actions/teleport", json={"data": {}}).status_code == 404


def test_roles_the_auditor_reads_only_and_only_a_team_manager_closes(eng, app):
    cid = planned_case(eng)
    n = len(eng.history(cid))
    auditor = api_client(app, "auditor")
    assert auditor.get(f"/api/cases/{cid}/actions").json()["actions"] == []
    r = auditor.post(f"/api/cases/{cid}/actions/safeguarding",
                     json={"data": {"concern": "x", "raised_by": "y", "urgent": "no"}})
    assert r.status_code == 403
    assert auditor.post(f"/api/cases/{cid}/close", json={"reason": "declined"}).status_code == 403
    sw = api_client(app, "social_worker")
    assert sw.post(f"/api/cases/{cid}/close", json={"reason": "declined"}).status_code == 403
    assert "close" not in [a["action"] for a in sw.get(f"/api/cases/{cid}/actions").json()["actions"]]
    # never worked on the case, no task on it: may not open it (the finance team has the financial assessment)
    reablement = api_client(app, "reablement_coordinator")
    assert reablement.post(f"/api/cases/{cid}/actions/dp_review",
                        json={"data": {"dp_review_trigger": "breach", "note": "x"}}).status_code == 403
    assert len(eng.history(cid)) == n


def test_a_manager_closes_a_case_after_a_death_and_everything_stops(eng, app):
    cid = planned_case(eng)
    sw, tm = api_client(app, "social_worker"), api_client(app, "team_manager")
    assert sw.post(f"/api/cases/{cid}/actions/dp_review",
                   json={"data": {"dp_review_trigger": "capacity", "note": "Dementia diagnosis"}}).status_code == 201
    assert open_tasks(eng, cid)
    for bad, field in (({"reason": "died", "details": {}}, "date_of_death"),
                       ({"reason": "died", "details": {"date_of_death": "2031-03-04"}}, "date_of_death"),
                       ({"reason": "died", "details": {"date_of_death": "03/02/2031"}}, "date_of_death"),
                       ({"reason": "bored"}, "reason"),
                       ({"reason": "moved_away", "details": {}}, "council")):
        r = tm.post(f"/api/cases/{cid}/close", json=bad)
        assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], (bad, r.text)
    assert "case_closed" not in eng.get_case(cid)["data"]
    r = tm.post(f"/api/cases/{cid}/close", json={"reason": "died", "details": {"date_of_death": "2031-03-02"}})
    assert r.status_code == 200, r.text
    assert open_tasks(eng, cid) == []
    eng.advance_clock(timedelta(days=800))
    assert open_tasks(eng, cid) == []
    rows = cld_full(eng, cid)
    assert all(r["event_end"] for r in rows)
    assert [r["outcome"] for r in rows if r["event_type"] == "Service"][-1] == "NFA – Deceased"

    # closed: actions refused with a clear message, nothing changes (signed in again: 800 days have passed)
    sw, tm = api_client(app, "social_worker"), api_client(app, "team_manager")
    n = len(eng.history(cid))
    r = sw.post(f"/api/cases/{cid}/actions/safeguarding",
                json={"data": {"concern": "x", "raised_by": "y", "urgent": "no"}})
    assert r.status_code == 409 and "is closed" in r.json()["message"]
    assert tm.post(f"/api/cases/{cid}/close", json={"reason": "declined"}).status_code == 409
    assert sw.get(f"/api/cases/{cid}/actions").json()["actions"] == []
    assert len(eng.history(cid)) == n
    assert replay_case(eng, cid).ok and eng.verify(cid)[1] == []


def test_closing_with_an_open_safeguarding_concern_needs_a_deliberate_confirmation(eng, app):
    """Findings 10, 5: an open s.42 concern is not withdrawn without a word: closing (or ending it) is refused until
    the manager confirms it was passed on or can be closed; the confirmation is kept in the history, and the
    chronology names each process cancelled and the tasks it withdrew."""
    cid = planned_case(eng)
    sw, tm = api_client(app, "social_worker"), api_client(app, "team_manager")
    sg = sw.post(f"/api/cases/{cid}/actions/safeguarding",
                 json={"data": {"concern": "Bruising seen by carer", "raised_by": "Home care worker", "urgent": "no"}})
    assert sg.status_code == 201, sg.text
    n = len(eng.history(cid))
    for body in ({"reason": "moved_away", "details": {"council": "Southshire"}},
                 {"reason": "declined", "instance_id": sg.json()["instance_id"]}):
        r = tm.post(f"/api/cases/{cid}/close", json=body)
        assert r.status_code == 422, r.text
        [err] = [e for e in r.json()["errors"] if e["field"] == "safeguarding_passed_on"]
        assert err["message"].startswith("Confirm that you have passed the safeguarding concern on")
    assert len(eng.history(cid)) == n and "case_closed" not in eng.get_case(cid)["data"]

    r = tm.post(f"/api/cases/{cid}/close", json={"reason": "moved_away", "details": {
        "council": "Southshire", "safeguarding_passed_on": True, "note": "Passed to Southshire's safeguarding team"}})
    assert r.status_code == 200, r.text
    [closed] = events(eng, cid, "case.closed")
    assert closed["data"]["details"]["safeguarding_passed_on"] is True
    texts = [e["text"] for e in api_client(app, "team_manager").get(f"/api/cases/{cid}/chronology").json()["entries"]]
    [closed_text] = [t for t in texts if t.startswith("Case closed by ")]
    assert ": Moved to another council. " in closed_text and closed_text.endswith(
        "confirmed the open safeguarding concern was passed on or can be closed (Passed to Southshire's safeguarding "
        "team)"), closed_text
    [cancelled] = [t for t in texts if "safeguarding" in t.lower() and "cancelled: case closed" in t]
    assert cancelled.startswith("Adult safeguarding") and "tasks withdrawn: Record the concern and immediate " \
        "safety (Safeguarding team)" in cancelled, cancelled
    assert "Instance cancelled" not in texts
    assert replay_case(eng, cid).ok


def test_a_manager_ends_one_process_with_a_reason(eng, app):
    cid = planned_case(eng)
    sw, tm = api_client(app, "social_worker"), api_client(app, "team_manager")
    iid = sw.post(f"/api/cases/{cid}/actions/carers_assessment",
                  json={"data": {"carer_name": "Susan Clarke", "relationship": "daughter"}}).json()["instance_id"]
    r = tm.post(f"/api/cases/{cid}/close", json={"reason": "declined", "instance_id": iid})
    assert r.status_code == 200 and r.json()["cancelled_instances"] == [iid]
    assert "assess_carer" not in [t["element_id"] for t in open_tasks(eng, cid)]
    assert "case_closed" not in eng.get_case(cid)["data"]
    [row] = [r for r in cld_full(eng, cid) if r["process_id"] == "carers_assessment"]
    assert row["outcome"] == "NFA – Support declined" and row["event_end"] == "2031-03-03"
    assert tm.post(f"/api/cases/{cid}/close", json={"reason": "declined", "instance_id": 424242}).status_code == 404


def test_a_new_contact_at_the_front_door_reopens_a_closed_case(eng, app):
    cid = planned_case(eng)
    tm = api_client(app, "team_manager")
    assert tm.post(f"/api/cases/{cid}/close", json={"reason": "declined"}).status_code == 200
    fd = api_client(app, "front_door_advisor")
    found = fd.post("/api/contacts/search", json={"name": "Peter Clarke", "date_of_birth": "1948-05-01"})
    assert found.status_code == 200, found.text
    body = found.json()
    assert cid in [p["case_id"] for p in body["results"]]
    r = fd.post("/api/contacts", json={"intake_token": body["intake_token"], "case_id": cid})
    assert r.status_code in (200, 201), r.text
    assert "case_closed" not in eng.get_case(cid)["data"]
    [reopened] = events(eng, cid, "case.reopened")
    assert reopened["actor"] == demo_username("front_door_advisor")
    assert "record_contact" in [t["element_id"] for t in open_tasks(eng, cid)]
    assert replay_case(eng, cid).ok
    # the chronology (and so the replay view and the evidence pack) says who reopened it and why, as it does
    # for the closure: it said only "Case reopened"
    texts = [e["text"] for e in api_client(app, "team_manager").get(f"/api/cases/{cid}/chronology").json()["entries"]]
    assert "Case reopened by Demo front door advisor: new contact at the front door" in texts, texts


def test_the_command_line_acts_and_closes_with_the_same_checks(eng, db_url, capsys):
    from carepath.cli import main

    cid = planned_case(eng)
    assert main(["act", "--db", db_url, str(cid), "review", "--as", SW, "--data",
                 '{"review_reason": "Hospital", "requested_by": "worker", "note": "Admitted after a fall"}']) == 0
    assert "Review support plan [social_work]" in capsys.readouterr().out
    assert main(["close", "--db", db_url, str(cid), "--reason", "nhs_funded", "--as", SW]) != 0
    assert "refused" in capsys.readouterr().err
    assert main(["close", "--db", db_url, str(cid), "--reason", "died", "--details", '{"date_of_death": "2099-01-01"}',
                 "--as", TM]) != 0
    assert "date_of_death" in capsys.readouterr().err
    assert "case_closed" not in eng.get_case(cid)["data"]
    assert main(["close", "--db", db_url, str(cid), "--reason", "nhs_funded", "--as", TM]) == 0
    assert eng.get_case(cid)["data"]["case_closed"]["reason"] == "nhs_funded" and open_tasks(eng, cid) == []
