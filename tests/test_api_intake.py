"""Find a person and record a new contact through the JSON API (api/intake.py): who may search, what a
search finds (and hides), the possible duplicates, the one-time intake token and the access log."""

from __future__ import annotations

import pytest

from api.access import access_log, restrict_case
from api.auth import ROLES, WORKER_ROLES
from tests.front_door_world import EDITH_NHS, OTHER_NHS, as_role, build


@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    yield eng, app, people
    eng.db.dispose()


def _refs(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["name"] + "/" + r["reference"] for r in resp.json()["results"]]


def _ids(resp) -> set[int]:
    assert resp.status_code == 200, resp.text
    return {r["case_id"] for r in resp.json()["results"]}


def test_people_search_by_name_date_nhs_number_and_postcode(world):
    eng, app, p = world
    s = as_role(app, "social_worker")
    # partial, any case, either order of the names
    assert _ids(s.get("/api/people", params={"q": "clarke edith"})) == {p["edith"], p["edith2"]}
    assert _ids(s.get("/api/people", params={"q": "CLARK"})) == {p["edith"], p["edith2"], p["edward"]}
    assert _ids(s.get("/api/people", params={"q": "zoë o'brien"})) == {p["zoe"]}
    # a name and a date of birth narrow it down; so does a postcode (spaces and case ignored, a first part)
    assert _ids(s.get("/api/people", params={"q": "Edith Clarke 27 3 1944"})) == {p["edith"]}
    assert _ids(s.get("/api/people", params={"q": "1944-03-27"})) == {p["edith"]}
    assert _ids(s.get("/api/people", params={"q": "nb42qs"})) == {p["edith"]}
    assert _ids(s.get("/api/people", params={"q": "NB4"})) == {p["edith"]}
    assert _ids(s.get("/api/people", params={"postcode": "nb1 7aa"})) == {p["edward"]}
    # NHS number with or without spaces
    assert _ids(s.get("/api/people", params={"q": "943 476 5919"})) == {p["edith"]}
    assert _ids(s.get("/api/people", params={"nhs_number": OTHER_NHS})) == {p["zoe"]}
    assert _ids(s.get("/api/people", params={"q": "Nobody Known"})) == set()


def test_people_results_show_details_and_whether_the_case_is_open(world):
    eng, app, p = world
    r = as_role(app, "front_door_advisor").get("/api/people", params={"q": "clark"})
    rows = {x["case_id"]: x for x in r.json()["results"]}
    assert rows[p["edith"]] == {"case_id": p["edith"], "reference": eng.get_case(p["edith"])["reference"],
                                "name": "Edith Clarke", "date_of_birth": "1944-03-27", "postcode": "NB4 2QS",
                                "open": True, "why": ["family name “Clarke” sounds like “clark”"]}
    assert rows[p["edward"]]["open"] is False
    assert "nhs_number" not in rows[p["edith"]]


def test_people_search_needs_a_casework_role(world):
    _eng, app, _p = world
    for role in ROLES:
        r = as_role(app, role).get("/api/people", params={"q": "clarke"})
        assert r.status_code == (200 if role in WORKER_ROLES else 403), role
    from fastapi.testclient import TestClient

    assert TestClient(app).get("/api/people", params={"q": "clarke"}).status_code == 401


@pytest.mark.parametrize("params,field", [
    ({"q": ""}, "q"), ({"q": "x"}, "q"), ({"q": "31 2 1950"}, "q"), ({"q": "Clarke 42"}, "q"),
    ({"date_of_birth": "27/03/1944"}, "date_of_birth"), ({"nhs_number": "12345"}, "nhs_number"),
    ({"postcode": "not a postcode"}, "postcode"), ({"q": "1 1 2099"}, "q")])
def test_people_search_refuses_what_it_cannot_understand(world, params, field):
    _eng, app, _p = world
    r = as_role(app, "social_worker").get("/api/people", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid"
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_restricted_case_is_found_only_by_its_named_people(world):
    eng, app, p = world
    restrict_case(eng, p["edith"], ["social-worker"])
    assert _ids(as_role(app, "social_worker").get("/api/people", params={"q": EDITH_NHS})) == {p["edith"]}
    for role in ("front_door_advisor", "team_manager"):
        r = as_role(app, role).get("/api/people", params={"q": "edith clarke"})
        assert _ids(r) == {p["edith2"]}, role
        assert "NB4 2QS" not in r.text
        search = as_role(app, role).post("/api/contacts/search", {"name": "Edith Clarke", "nhs_number": EDITH_NHS})
        assert p["edith"] not in _ids(search), role


def test_every_case_shown_by_a_search_is_in_its_access_log(world):
    eng, app, p = world
    as_role(app, "social_worker").get("/api/people", params={"q": "edith"})
    for case in ("edith", "edith2"):
        assert [(a["user"], a["action"]) for a in access_log(eng, p[case])] == [("social-worker", "search")]
    assert access_log(eng, p["zoe"]) == []
    as_role(app, "front_door_advisor").post("/api/contacts/search", {"name": "Zoe O'Brien"})  # "Zoe" finds "Zoë"
    assert [(a["user"], a["action"]) for a in access_log(eng, p["zoe"])] == [("front-door-advisor", "search")]
    as_role(app, "front_door_advisor").post("/api/contacts/search", {"name": "Ann Jones"})
    assert len(access_log(eng, p["zoe"])) == 1  # nobody shown, nothing logged


# ---------------------------------------------------------------------- new contact
def test_search_shows_possible_duplicates_by_name_and_birth_date_or_nhs_number(world):
    _eng, app, p = world
    s = as_role(app, "front_door_advisor")
    r = s.post("/api/contacts/search", {"name": "clarke edith", "date_of_birth": "1944-03-27"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["possible_duplicates"] == [p["edith"]]
    assert [x["case_id"] for x in body["results"]][0] == p["edith"]  # duplicates first
    assert {x["case_id"] for x in body["results"]} == {p["edith"], p["edith2"]}
    assert body["intake_token"]
    # a different name but a known NHS number is still a possible duplicate
    r = s.post("/api/contacts/search", {"name": "Zoe Smith", "nhs_number": "401 023 2137"})
    assert r.json()["possible_duplicates"] == [p["zoe"]]
    # the same name without a date of birth: shown, not flagged
    r = s.post("/api/contacts/search", {"name": "Edward Clarkson"})
    assert r.json()["possible_duplicates"] == [] and _ids(r) == {p["edward"]}


@pytest.mark.parametrize("body,fields", [
    ({}, ["name"]),
    ({"name": "Ann Smith", "date_of_birth": "1950-02-30"}, ["date_of_birth"]),
    ({"name": "Ann Smith", "nhs_number": "9434765918"}, ["nhs_number"]),  # wrong check digit
    ({"name": "A", "postcode": "??"}, ["name", "postcode"]),
])
def test_contact_search_validation(world, body, fields):
    _eng, app, _p = world
    r = as_role(app, "front_door_advisor").post("/api/contacts/search", body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == fields


def test_only_front_door_advisors_and_team_managers_record_contacts(world):
    _eng, app, p = world
    for role in ROLES:
        s = as_role(app, role)
        r = s.post("/api/contacts/search", {"name": "Edith Clarke"})
        allowed = role in ("front_door_advisor", "team_manager")
        assert r.status_code == (200 if allowed else 403), role
        if not allowed:
            assert s.post("/api/contacts", {"intake_token": "0000000000.abcdefghijklmnopqrstuvwx",
                                            "new_person": True}).status_code == 403


def test_record_a_contact_for_an_existing_person(world):
    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    token = s.post("/api/contacts/search", {"name": "Edith Clarke", "date_of_birth": "1944-03-27"}).json()
    r = s.post("/api/contacts", {"intake_token": token["intake_token"], "case_id": p["edith"]})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["case_id"] == p["edith"] and out["new_person"] is False
    task = eng.get_task(out["task_id"])
    assert (task["element_id"], task["case_id"], task["assignee"]) == ("record_contact", p["edith"],
                                                                      "front-door-advisor")
    # the case's recorded details are kept; nothing typed replaces them
    assert task["draft"]["person"]["name"] == "Edith Clarke"
    assert task["draft"]["person"]["address"] == "4 Mill Lane"
    started = [e for e in eng.history(p["edith"]) if e["type"] == "instance.started"]
    assert len(started) == 2 and started[-1]["actor"] == "front-door-advisor"


def test_record_a_new_person_prefills_what_was_typed(world):
    eng, app, _p = world
    s = as_role(app, "team_manager")
    token = s.post("/api/contacts/search", {"name": "Ann  Smith", "date_of_birth": "1950-02-28",
                                            "nhs_number": "401 023 2137"}).json()["intake_token"]
    r = s.post("/api/contacts", {"intake_token": token, "new_person": True})
    assert r.status_code == 201, r.text
    out = r.json()
    case = eng.get_case(out["case_id"])
    assert case["title"] == "Ann Smith" and out["reference"] == case["reference"]
    task = eng.get_task(out["task_id"])
    assert task["assignee"] == "team-manager"
    assert task["draft"] == {"person": {"name": "Ann Smith", "date_of_birth": "1950-02-28",
                                        "nhs_number": "4010232137"}}


def test_a_token_starts_one_process_however_often_it_is_sent(world):
    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    token = s.post("/api/contacts/search", {"name": "Edith Clarke"}).json()["intake_token"]
    first = s.post("/api/contacts", {"intake_token": token, "new_person": True})
    again = s.post("/api/contacts", {"intake_token": token, "new_person": True})
    other = s.post("/api/contacts", {"intake_token": token, "case_id": p["edith"]})
    assert first.status_code == 201 and again.status_code == 200 and other.status_code == 200
    assert again.json()["task_id"] == first.json()["task_id"] == other.json()["task_id"]
    assert again.json()["repeated"] is True
    assert [c for c in _all_cases(eng) if eng.get_case(c)["title"] == "Edith Clarke"] == [
        p["edith"], p["edith2"], first.json()["case_id"]]
    assert len(eng.get_case(first.json()["case_id"])["instances"]) == 1


def _all_cases(eng) -> list[int]:
    from sqlalchemy import select

    from engine.schema import cases

    with eng.db.engine.connect() as conn:
        return list(conn.execute(select(cases.c.id).order_by(cases.c.id)).scalars())


def test_a_token_is_only_for_its_user_its_results_and_its_hour(world):
    from datetime import timedelta

    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    token = s.post("/api/contacts/search", {"name": "Edith Clarke"}).json()["intake_token"]
    # someone else's token
    r = as_role(app, "team_manager").post("/api/contacts", {"intake_token": token, "new_person": True})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "intake_token"
    # a case the search did not show
    r = s.post("/api/contacts", {"intake_token": token, "case_id": p["zoe"]})
    assert r.status_code == 404
    r = s.post("/api/contacts", {"intake_token": token, "case_id": 999999})
    assert r.status_code == 404
    # neither or both of a case and a new person
    assert s.post("/api/contacts", {"intake_token": token}).status_code == 422
    assert s.post("/api/contacts", {"intake_token": token, "case_id": p["edith"],
                                    "new_person": True}).status_code == 422
    # made up
    assert s.post("/api/contacts", {"intake_token": "1" * 10 + "." + "a" * 32,
                                    "new_person": True}).status_code == 422
    # still unused after all that, until it expires
    eng.advance_clock(by=timedelta(minutes=61))
    s = as_role(app, "front_door_advisor")  # the old session may have ended too
    r = s.post("/api/contacts", {"intake_token": token, "new_person": True})
    assert r.status_code == 422 and "search for the person again" in r.json()["message"]
    assert len(_all_cases(eng)) == 4


def test_a_case_restricted_after_the_search_cannot_be_chosen(world):
    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    token = s.post("/api/contacts/search", {"name": "Edith Clarke"}).json()["intake_token"]
    restrict_case(eng, p["edith"], ["social-worker"])
    r = s.post("/api/contacts", {"intake_token": token, "case_id": p["edith"]})
    assert r.status_code == 404
    assert len(eng.get_case(p["edith"])["instances"]) == 1


def test_contact_posts_need_the_csrf_header(world):
    _eng, app, _p = world
    s = as_role(app, "front_door_advisor")
    r = s.client.post("/api/contacts/search", json={"name": "Edith Clarke"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
