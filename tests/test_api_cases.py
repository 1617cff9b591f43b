"""The case record API (api/cases.py): who may read it, add notes, correct details and name the
co-ordinating worker; letters, diagrams and positions; conflicts and bad input; append-only notes.

Two real cases from the operating model, driven through every diagram in processes/ with the real
handlers and forms on the simulated clock: Joan Barker (a front door contact routed to reablement,
reablement planned and under way) and Peter Clarke (needs assessment -> personal budget -> support
plan signed off -> first review waiting), each worked by the people named below.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.access import access_log, restrict_case
from api.app import create_app
from api.auth import create_user
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from tests.conftest import START

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
USERS = {  # username: (display name, roles, teams)
    "frank": ("Frank Door", ["front_door_advisor"], ["front_door"]),
    "rosa": ("Rosa Patel", ["reablement_coordinator"], ["reablement"]),
    "sam": ("Sam Okoro", ["social_worker"], ["social_work"]),
    "mary": ("Mary Khan", ["team_manager"], ["team_manager"]),
    "audrey": ("Audrey Lamb", ["auditor"], []),
    "percy": ("Percy Owner", ["process_owner"], []),
}
JOAN_CONTACT = {
    "caller": {"name": "Dr Amy Shah", "relationship": "gp_or_social_prescriber", "organisation": "Riverside GP"},
    "reason": "Falls at home and struggling since her husband died",
    "person": {"name": "Joan Barker", "age": 78, "date_of_birth": "1952-06-14", "nhs_number": "9434765919",
               "address": "4 Mill Lane, Northby", "area": "north", "lives_alone": True, "phone": "01632 960555"},
    "needs": [], "outcomes_unable": ["personal_hygiene", "being_appropriately_clothed", "using_the_home_safely"],
    "safeguarding_concern": False, "crisis": False, "consents_to_referral": True, "from_hospital": False,
}
PETER = {"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "salutation": "Mr Clarke"}


def _only(eng, case_id, element_id):
    [task] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element_id]
    return task


def _complete(eng, case_id, element_id, data, actor):
    task = _only(eng, case_id, element_id)
    eng.claim(task["id"], actor)
    return eng.complete_task(task["id"], data, actor=actor)


def build_world(url: str) -> tuple[Engine, dict[str, int]]:
    """The engine with every diagram deployed, the users, and the two cases."""
    eng = Engine(url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init(simulated_start=START)
    eng.deploy([ROOT / "processes"])
    for username, (name, roles, teams) in USERS.items():
        create_user(eng, username, PASSWORD, display_name=name, roles=roles, teams=teams)

    res = eng.start("front_door", actor="frank", title="Joan Barker")
    joan = res.case_id
    _complete(eng, joan, "record_contact", JOAN_CONTACT, "frank")
    _complete(eng, joan, "plan_reablement", {"goals": ["Wash and dress without help", "Make a hot meal"],
                                             "setting": "home", "start_type": "planned", "visits_per_day": 2},
              "rosa")

    peter = plan_signed_off(eng, [{"label": "Get washed and dressed every morning",
                                   "how_met": "A home care visit of 45 minutes each morning",
                                   "provided_by": "Northtown Care", "service_component": "home_support"}])
    return eng, {"joan": joan, "peter": peter}


def plan_signed_off(eng, plan_outcomes: list[dict]) -> int:
    """A case of Peter Clarke's: assessed, scored, a support plan with these services written by Sam and
    signed off by Mary (the first review waits). Its case id."""
    from handlers.eligibility import ADULT_OUTCOMES

    peter = eng.start("needs_assessment", actor="sam", title="Peter Clarke",
                      data={"name": "Peter Clarke", "person": PETER, "contact_date": "2031-03-03"}).case_id
    unable = ("personal_hygiene", "managing_nutrition", "using_home_safely")
    outcomes = {code: ({"unable": True, "ways": ["needs_assistance_incl_prompting"],
                        "reason": f"Peter needs help and prompting with {label}"}
                       if code in unable else {"unable": False, "ways": [], "reason": ""})
                for code, label in ADULT_OUTCOMES.items()}
    _complete(eng, peter, "assess_needs", {
        "needs_from_impairment": True, "outcomes": outcomes, "carer_present": False,
        "wellbeing_impact": {"significant": True, "reason": "Falls at home have left Peter anxious and housebound",
                             "areas": ["health_and_emotional_wellbeing"]}}, "sam")
    domains = ("personal_care", "nutrition", "safety_and_supervision", "mobility_at_home", "home_environment",
               "relationships", "work_learning_volunteering", "community_access", "parenting")
    levels = {"personal_care": "moderate", "nutrition": "low", "safety_and_supervision": "low"}
    _complete(eng, peter, "score_needs", {"needs": {d: {"level": levels.get(d, "none"), "met_by_carer": False}
                                                    for d in domains}}, "sam")
    _complete(eng, peter, "write_plan", {
        "outcomes": plan_outcomes,
        "money_management": "council_managed", "may_change_without_contacting": ["The time of the morning visit"],
        "coordinating_worker": {"name": "Sam Okoro", "role": "social worker", "phone": "01632 960123"},
        "review_frequency_months": 12}, "sam")
    _complete(eng, peter, "sign_off_plan", {"signed_off": True}, "mary")
    return peter


@pytest.fixture
def world(db_url):
    eng, cases = build_world(db_url)
    app = create_app(eng, run_timers=False)
    yield eng, app, cases
    eng.db.dispose()


def client_for(app, username: str) -> TestClient:
    client = TestClient(app)
    r = client.post("/api/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def _person(eng, case_id):
    return eng.get_case(case_id)["data"]["person"]


# ---------------------------------------------------------------------- reading
def test_the_record_shows_details_position_and_no_plan_for_a_reablement_case(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa = client_for(app, "rosa")
    r = rosa.get(f"/api/cases/{joan}/record")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["person"]["name"] == "Joan Barker" and body["person"]["nhs_number"] == "9434765919"
    assert body["plan"] is None and body["budget"] is None and body["coordinating_worker"] is None
    reablement = next(p for p in body["processes"] if p["process_id"] == "reablement")
    assert reablement["active"][0] == "deliver_reablement"
    assert set(reablement["active"]) == {"deliver_reablement", "end_reminder", "period_ended"}
    assert "plan_reablement" in reablement["completed"]
    assert reablement["lines"][0] == ("Waiting for: Deliver reablement (Reablement team) since 3 March 2031, "
                                      "due 7 April 2031")
    assert body["may"] == {"add_notes": True, "correct_details": True, "set_coordinating_worker": False}
    assert [a["action"] for a in access_log(eng, joan) if a["user"] == "rosa"] == ["record"]


def test_the_chronology_is_plain_english_newest_first_and_paged(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa = client_for(app, "rosa")
    entries = rosa.get(f"/api/cases/{joan}/chronology").json()["entries"]
    texts = [e["text"] for e in entries]
    assert "Plan reablement completed by Rosa Patel" in texts
    assert "Record the contact completed by Frank Door" in texts
    assert "Deadline set on Deliver reablement: Reablement period reached, 14 April 2031" in texts
    assert texts.index("Plan reablement completed by Rosa Patel") < texts.index(
        "Record the contact completed by Frank Door")  # newest first
    assert texts[-1] == f"Case {eng.get_case(joan)['reference']} opened"
    assert not any("{" in t for t in texts)  # never raw JSON

    for n in range(30):
        assert rosa.post(f"/api/cases/{joan}/notes", json={"kind": "note", "text": f"Visit {n}"}).status_code == 201
    page1 = rosa.get(f"/api/cases/{joan}/chronology").json()
    page2 = rosa.get(f"/api/cases/{joan}/chronology?page=2").json()
    assert page1["total"] == len(entries) + 30 and page1["pages"] == page2["pages"] >= 2
    assert len(page1["entries"]) == 25 and page1["entries"][0]["text"] == "Note: Visit 29"
    assert page2["entries"][0]["text"] == "Note: Visit 4"


def test_decisions_letters_plan_and_budget_of_a_signed_off_case(world):
    eng, app, cases = world
    peter = cases["peter"]
    sam = client_for(app, "sam")
    body = sam.get(f"/api/cases/{peter}/record").json()
    assert body["plan"]["amount"] == "£19,963.64" and body["plan"]["weekly"] == "£383.92"
    assert body["plan"]["first_review"] == "15 April 2031" and body["plan"]["money_management"]
    assert [(o["label"], o["service_type"]) for o in body["plan"]["outcomes"]] == [
        ("Get washed and dressed every morning", "Home support or domiciliary care")]  # the form's words
    assert body["budget"]["points"] == 18 and body["budget"]["amount"] == "£19,963.64"
    assert [d["label"] for d in body["budget"]["breakdown"]][0].startswith("Personal care")
    assert body["next_review"]["text"] == "15 April 2031"  # 14 April 2031 is Easter Monday: the next working day
    first = sam.get(f"/api/cases/{peter}/chronology").json()
    texts = [e["text"] for n in range(1, first["pages"] + 1)  # every page: the chronology is 25 entries a page
             for e in sam.get(f"/api/cases/{peter}/chronology?page={n}").json()["entries"]]
    assert any(t.startswith("Decision: the person is eligible") for t in texts), texts
    assert any(t.startswith("Personal budget worked out: £19,963.64 a year") for t in texts)
    assert "Letter written: Your support plan" in texts and not [t for t in texts if t.startswith("Letter sent")]
    docs = eng.documents(peter)
    letter = sam.get(f"/api/cases/{peter}/letters/{docs[0]['id']}")
    assert letter.status_code == 200 and "Dear Mr Clarke" in letter.json()["body"]
    # a letter of another case is not found through this case
    assert sam.get(f"/api/cases/{cases['joan']}/letters/{docs[0]['id']}").status_code in (403, 404)
    mary = client_for(app, "mary")
    assert mary.get(f"/api/cases/{cases['joan']}/letters/{docs[0]['id']}").status_code == 404


def test_the_diagram_and_position_of_an_instance(world):
    eng, app, cases = world
    peter = cases["peter"]
    sam = client_for(app, "sam")
    review = next(i for i in eng.get_case(peter)["instances"] if i["process_id"] == "review")
    r = sam.get(f"/api/cases/{peter}/instances/{review['id']}/diagram")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert b'id="wait_for_review"' in r.content and b"bpmndi:BPMNDiagram" in r.content
    assert "sandbox" in r.headers["content-security-policy"]
    pos = sam.get(f"/api/cases/{peter}/instances/{review['id']}/position").json()
    assert pos["active"] == ["wait_for_review"]
    assert pos["lines"] == ["Timer: Review due on 15 April 2031"]
    joan_instance = eng.get_case(cases["joan"])["instances"][0]["id"]
    assert sam.get(f"/api/cases/{peter}/instances/{joan_instance}/diagram").status_code == 404
    assert sam.get(f"/api/cases/{peter}/instances/{joan_instance}/position").status_code == 404


# ---------------------------------------------------------------------- who may read
def test_who_may_open_the_record_and_refusals_are_logged(world):
    eng, app, cases = world
    joan = cases["joan"]
    assert client_for(app, "frank").get(f"/api/cases/{joan}/record").status_code == 200  # worked on it
    assert client_for(app, "mary").get(f"/api/cases/{joan}/chronology").status_code == 200
    assert client_for(app, "audrey").get(f"/api/cases/{joan}/notes").status_code == 200
    sam = client_for(app, "sam")
    r = sam.get(f"/api/cases/{joan}/record")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert sam.get(f"/api/cases/{joan}/instances/1/diagram").status_code == 403
    assert client_for(app, "percy").get(f"/api/cases/{joan}/chronology").status_code == 403
    assert {(a["user"], a["action"]) for a in access_log(eng, joan)} >= {
        ("sam", "refused:record"), ("sam", "refused:diagram"), ("percy", "refused:chronology"),
        ("audrey", "notes"), ("mary", "chronology")}
    assert sam.get("/api/cases/9999/record").status_code == 404
    assert TestClient(app).get(f"/api/cases/{joan}/record").status_code == 401


def test_a_restricted_case_is_open_only_to_the_people_named(world):
    eng, app, cases = world
    joan = cases["joan"]
    restrict_case(eng, joan, ["mary"])
    assert client_for(app, "mary").get(f"/api/cases/{joan}/record").status_code == 200
    for who in ("rosa", "frank", "audrey"):  # 404 as for an unknown case: its existence is not disclosed
        c = client_for(app, who)
        assert c.get(f"/api/cases/{joan}/record").status_code == 404, who
        assert c.get(f"/api/cases/{joan}/chronology").status_code == 404, who
    r = client_for(app, "rosa").post(f"/api/cases/{joan}/notes", json={"kind": "note", "text": "hello"})
    assert r.status_code == 404
    assert client_for(app, "mary").get(f"/api/cases/{joan}/notes").json()["notes"] == []


# ---------------------------------------------------------------------- notes
def test_notes_are_added_by_caseworkers_and_are_append_only(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa = client_for(app, "rosa")
    r = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "phone_call", "text": "Joan's daughter rang: all well"})
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    r = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "correction", "text": "It was her son who rang",
                                                    "corrects": first})
    assert r.status_code == 201 and r.json()["corrects"] == first
    notes = rosa.get(f"/api/cases/{joan}/notes").json()["notes"]
    assert [(n["kind"], n["author"], n["corrects"]) for n in notes] == [("phone_call", "rosa", None),
                                                                        ("correction", "rosa", first)]
    texts = [e["text"] for e in rosa.get(f"/api/cases/{joan}/chronology").json()["entries"]]
    assert texts[0] == f"Correction of an earlier note (corrects note {first}): It was her son who rang"
    assert texts[1] == "Phone call: Joan's daughter rang: all well"

    with eng.db.engine.connect() as conn:
        for stmt in ("UPDATE case_notes SET text = 'changed'", "DELETE FROM case_notes"):
            with pytest.raises(Exception, match="append-only"):
                with conn.begin():
                    conn.execute(text(stmt))
    assert [n["text"] for n in rosa.get(f"/api/cases/{joan}/notes").json()["notes"]][0] == \
        "Joan's daughter rang: all well"


def test_bad_notes_are_refused_with_what_and_where(world):
    eng, app, cases = world
    joan, peter = cases["joan"], cases["peter"]
    rosa = client_for(app, "rosa")
    r = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "gossip", "text": ""})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"kind", "text"}
    r = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "correction", "text": "fix"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "corrects"
    other = client_for(app, "sam").post(f"/api/cases/{peter}/notes", json={"kind": "visit", "text": "Saw Peter"})
    r = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "correction", "text": "fix",
                                                    "corrects": other.json()["id"]})
    assert r.status_code == 422 and "no note" in r.json()["errors"][0]["message"]
    r = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "note", "text": "x" * 5001})
    assert r.status_code == 422 and "5,000 characters" in r.json()["errors"][0]["message"]
    r = rosa.post(f"/api/cases/{joan}/notes", json={"kind": "note", "text": "hi"}, headers={"X-CSRF-Token": "no"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = client_for(app, "audrey").post(f"/api/cases/{joan}/notes", json={"kind": "note", "text": "I read it"})
    assert r.status_code == 403 and "read" in r.json()["message"]
    assert client_for(app, "sam").post(f"/api/cases/{joan}/notes", json={"kind": "note", "text": "x"}
                                       ).status_code == 403
    assert rosa.get(f"/api/cases/{joan}/notes").json()["notes"] == []
    assert ("audrey", "refused:note") in {(a["user"], a["action"]) for a in access_log(eng, joan)}


# ---------------------------------------------------------------------- correcting details
def test_a_caseworker_corrects_a_detail_with_a_reason(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa = client_for(app, "rosa")
    r = rosa.post(f"/api/cases/{joan}/details", json={
        "changes": {"nhs_number": "943 476 5870", "phone": ""},
        "expected": {"nhs_number": "9434765919", "phone": "01632 960555"},
        "reason": "Checked against the NHS spine"})
    assert r.status_code == 200, r.text
    person = _person(eng, joan)
    assert person["nhs_number"] == "9434765870" and "phone" not in person and person["name"] == "Joan Barker"
    [ev] = [e for e in eng.history(joan) if e["type"] == "case.record_updated"]
    assert ev["actor"] == "rosa" and ev["data"]["reason"] == "Checked against the NHS spine"
    texts = [e["text"] for e in rosa.get(f"/api/cases/{joan}/chronology").json()["entries"]]
    assert texts[0] == ("Record changed by Rosa Patel: NHS number changed from 9434765919 to 9434765870; Phone number "
                        "removed (was 01632 960555). Reason: Checked against the NHS spine")


def test_a_stale_correction_is_a_conflict_and_bad_values_are_refused(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa, frank = client_for(app, "rosa"), client_for(app, "frank")
    ok = frank.post(f"/api/cases/{joan}/details", json={"changes": {"address": "5 Mill Lane, Northby"},
                                                          "expected": {"address": "4 Mill Lane, Northby"},
                                                          "reason": "Moved next door"})
    assert ok.status_code == 200
    r = rosa.post(f"/api/cases/{joan}/details", json={"changes": {"address": "6 Mill Lane, Northby"},
                                                        "expected": {"address": "4 Mill Lane, Northby"},
                                                        "reason": "Typo"})
    assert r.status_code == 409 and "5 Mill Lane" in r.json()["message"]
    assert _person(eng, joan)["address"] == "5 Mill Lane, Northby"

    def bad(changes, expected=None, reason="because"):
        r = rosa.post(f"/api/cases/{joan}/details", json={"changes": changes, "expected": expected or {
            k: _person(eng, joan).get(k) for k in changes}, "reason": reason})
        assert r.status_code == 422, r.text
        return {e["field"]: e["message"] for e in r.json()["errors"]}

    assert "10 digits" in bad({"nhs_number": "12345"})["changes/nhs_number"]
    assert "check digit" in bad({"nhs_number": "9434765918"})["changes/nhs_number"]
    assert "real date" in bad({"date_of_birth": "1952-02-30"})["changes/date_of_birth"]
    assert "in the past" in bad({"date_of_birth": "2040-01-01"})["changes/date_of_birth"]
    assert "Enter full name" == bad({"name": " "})["changes/name"]
    assert "from the list" in bad({"area": "moon"})["changes/area"]
    assert "not a detail" in bad({"favourite_colour": "blue"}, expected={"favourite_colour": None})[
        "changes/favourite_colour"]
    assert bad({"phone": "01632 960000"}, reason=" ") == {"reason": "Enter why you are changing this"}
    assert "expected/phone" in bad({"phone": "01632 960000"}, expected={"name": "Joan Barker"})
    r = client_for(app, "audrey").post(f"/api/cases/{joan}/details", json={
        "changes": {"phone": "1"}, "expected": {"phone": "01632 960555"}, "reason": "x"})
    assert r.status_code == 403
    assert _person(eng, joan)["phone"] == "01632 960555"


# ---------------------------------------------------------------------- co-ordinating worker
def test_only_a_team_manager_names_the_coordinating_worker(world):
    eng, app, cases = world
    joan = cases["joan"]
    mary, rosa = client_for(app, "mary"), client_for(app, "rosa")
    r = rosa.put(f"/api/cases/{joan}/coordinating-worker", json={"username": "rosa", "expected": None})
    assert r.status_code == 403 and "team manager" in r.json()["message"]
    assert client_for(app, "audrey").put(f"/api/cases/{joan}/coordinating-worker",
                                         json={"username": "rosa"}).status_code == 403
    r = mary.put(f"/api/cases/{joan}/coordinating-worker", json={"username": "rosa", "expected": None,
                                                                 "reason": "Leads the reablement"})
    assert r.status_code == 200 and r.json()["coordinating_worker"] == "rosa"
    assert rosa.get(f"/api/cases/{joan}/record").json()["coordinating_worker"] == {"username": "rosa",
                                                                                   "name": "Rosa Patel"}
    r = mary.put(f"/api/cases/{joan}/coordinating-worker", json={"username": "sam", "expected": None})
    assert r.status_code == 409 and "Rosa Patel" in r.json()["message"]
    r = mary.put(f"/api/cases/{joan}/coordinating-worker", json={"username": "audrey", "expected": "rosa"})
    assert r.status_code == 422  # an auditor does no casework
    r = mary.put(f"/api/cases/{joan}/coordinating-worker", json={"username": "nobody", "expected": "rosa"})
    assert r.status_code == 422
    assert eng.get_case(joan)["data"]["coordinating_worker"] == "rosa"
    texts = [e["text"] for e in mary.get(f"/api/cases/{joan}/chronology").json()["entries"]]
    assert texts[0] == "Record changed by Mary Khan: co-ordinating worker set to Rosa Patel. Reason: Leads the " \
                       "reablement"
    assert mary.put("/api/cases/9999/coordinating-worker", json={"username": "rosa"}).status_code == 404


def test_a_corrected_date_of_birth_works_the_age_out_again_on_the_engines_clock(world):
    """findings-10, 7: correcting the date of birth left the age as it was (screening, the hospital follow-up for
    people 65 or over and charging read it); now the age follows it, and the age alone cannot be corrected away
    from a date of birth on the record."""
    from datetime import timedelta

    eng, app, cases = world
    joan = cases["joan"]
    eng.advance_clock(timedelta(days=300))  # 28 December 2031 on the engine's clock (the wall clock is years off)
    rosa = client_for(app, "rosa")  # signed in after the clock moved (sessions run on it)
    seen = _person(eng, joan)
    r = rosa.post(f"/api/cases/{joan}/details", json={"changes": {"date_of_birth": "1948-02-29"},
                                                       "expected": {"date_of_birth": seen.get("date_of_birth")},
                                                       "reason": "Birth certificate"})
    assert r.status_code == 200, r.text
    assert _person(eng, joan)["date_of_birth"] == "1948-02-29" and _person(eng, joan)["age"] == 83
    r = rosa.post(f"/api/cases/{joan}/details", json={"changes": {"age": 20}, "expected": {"age": 83},
                                                       "reason": "Typo"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "changes/age", "message": "The age is worked out from the date of "
                                   "birth (29 February 1948): correct the date of birth instead"}]
    assert _person(eng, joan)["age"] == 83
