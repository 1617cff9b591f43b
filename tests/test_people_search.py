"""Finding the person once (api/people.py, handlers/people.py): the people table, kept in step with every
case; candidates by a name typed with slips, sound-alikes or the other way round, by date of birth,
postcode and NHS number, ranked with why each matched; names hiding control, zero-width or bidi
characters refused wherever a person's name is saved, with nothing stored."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from api.access import access_log, restrict_case
from api.people import Query, compare_words, search
from engine.schema import events, people, person_name_keys
from tests.front_door_world import as_role, build
from tests.test_process_front_door_reablement import contact

CATHERINE = {"name": "Catherine Whyte", "date_of_birth": "1944-07-12", "postcode": "NB7 1AB", "age": 82,
             "area": "north", "address": "12 Church Street"}


@pytest.fixture
def world(db_url):
    eng, app, ppl = build(db_url)
    ppl["catherine"] = eng.create_case("Catherine Whyte", {"person": dict(CATHERINE)})
    # look-alikes that must rank below her, or not show at all
    ppl["katherine_w"] = eng.create_case("Katherine Whitehouse", {"person": {
        "name": "Katherine Whitehouse", "date_of_birth": "1980-02-02", "postcode": "SB1 2CD"}})
    ppl["kathryn_wright"] = eng.create_case("Kathryn Wright", {"person": {
        "name": "Kathryn Wright", "date_of_birth": "1944-07-12", "postcode": "EB9 9ZZ"}})
    ppl["catalina"] = eng.create_case("Catalina Wong", {"person": {"name": "Catalina Wong",
                                                                    "date_of_birth": "1990-05-05"}})
    yield eng, app, ppl
    eng.db.dispose()


def _people_row(eng, case_id):
    with eng.db.engine.connect() as conn:
        row = conn.execute(select(people).where(people.c.case_id == case_id)).first()
        keys = conn.execute(select(person_name_keys.c.word, person_name_keys.c.part, person_name_keys.c.metaphone)
                            .where(person_name_keys.c.case_id == case_id)
                            .order_by(person_name_keys.c.position)).all()
    return (None if row is None else dict(row._mapping)), [tuple(k) for k in keys]


def _event_count(eng, case_id):
    with eng.db.engine.connect() as conn:
        return len(conn.execute(select(events.c.id).where(events.c.case_id == case_id)).all())


# ---------------------------------------------------------------------- the people table
def test_people_table_holds_each_case_person_normalised_for_search(world):
    eng, _app, p = world
    row, keys = _people_row(eng, p["catherine"])
    assert row == {"case_id": p["catherine"], "name": "Catherine Whyte", "given_names": "catherine",
                   "family_name": "whyte", "date_of_birth": "1944-07-12", "postcode": "NB71AB", "nhs_number": None,
                   # sound keys (m, n), first one to five letters (p), one letter of the first five deleted (s)
                   "search_keys": "mK0RN mWT nCATARAN nWYT pc pca pcat pcath pcathe pw pwh pwhy pwhyt pwhyte "
                                  "sathe scahe scate scath scthe shyte swhte swhye swhyt swyte"}
    assert keys == [("catherine", "given", "K0RN"), ("whyte", "family", "WT")]
    row, keys = _people_row(eng, p["zoe"])  # "Zoë O'Brien-Smith": accents and apostrophe folded, hyphen split
    assert (row["given_names"], row["family_name"]) == ("zoe", "obrien smith")
    assert [k[:2] for k in keys] == [("zoe", "given"), ("obrien", "family"), ("smith", "family")]


def test_people_table_kept_in_step_after_a_correction(world):
    eng, app, p = world
    s = as_role(app, "team_manager")
    r = s.post(f"/api/cases/{p['catherine']}/details", {
        "changes": {"name": "Cathy Whyte-Lewis", "postcode": "nb8 2xy"},
        "expected": {"name": "Catherine Whyte", "postcode": "NB7 1AB"}, "reason": "Married; moved"})
    assert r.status_code == 200, r.text
    row, keys = _people_row(eng, p["catherine"])
    assert (row["name"], row["family_name"], row["postcode"]) == ("Cathy Whyte-Lewis", "whyte lewis", "NB82XY")
    assert [k[0] for k in keys] == ["cathy", "whyte", "lewis"]
    found = s.get("/api/people", params={"q": "cathy lewis"}).json()["results"]
    assert [x["case_id"] for x in found] == [p["catherine"]]
    assert s.get("/api/people", params={"q": "catherine whyte NB7 1AB"}).json()["results"] == []


def test_people_table_kept_in_step_when_a_process_records_the_person(world):
    """The front door's update_case (a process, not the web app) writes the person: the same transaction."""
    eng, app, _p = world
    res = eng.start("front_door", title="Unknown caller")
    task = res.ready_tasks[0]["id"]
    eng.complete_task(task, contact(person_name="Maud  Lowe", person_date_of_birth="1939-04-02",
                                    person_postcode="NB3 4EF"))
    row, _keys = _people_row(eng, res.case_id)
    assert (row["name"], row["date_of_birth"], row["postcode"]) == ("Maud Lowe", "1939-04-02", "NB34EF")
    assert eng.get_case(res.case_id)["data"]["person"]["name"] == "Maud Lowe"  # single spaces, NFC


# ---------------------------------------------------------------------- candidates
def test_kathryn_white_finds_catherine_whyte_first_with_why(world):
    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    r = s.post("/api/contacts/search", {"name": "Kathryn White", "date_of_birth": "1944-07-12",
                                        "postcode": "nb7 1ab"})
    assert r.status_code == 200, r.text
    body = r.json()
    first = body["results"][0]
    assert first["case_id"] == p["catherine"] and first["possible_duplicate"] is True
    assert first["why"] == ["same date of birth and postcode", "family name “Whyte” sounds like “White”",
                            "given name “Catherine” sounds like “Kathryn”"]
    assert body["possible_duplicates"][0] == p["catherine"]
    ranked = [x["case_id"] for x in body["results"]]
    # Kathryn Wright shares the date of birth and the given name: shown, below her
    assert ranked.index(p["kathryn_wright"]) > 0
    assert p["catalina"] not in ranked
    # the same from Find a person, one search box
    found = s.get("/api/people", params={"q": "Kathryn White 12 7 1944"}).json()["results"]
    assert [x["case_id"] for x in found] == [p["catherine"]]
    assert found[0]["why"][0] == "same date of birth"


def test_a_typo_still_finds_the_person(world):
    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    # a swapped pair of letters changes the sound key of "Clarke": found by spelling
    found = s.get("/api/people", params={"q": "Edith Clakre"}).json()["results"]
    assert {x["case_id"] for x in found} == {p["edith"], p["edith2"]}
    assert "family name “Clarke” is spelt like “Clakre”" in found[0]["why"]
    found = s.get("/api/people", params={"q": "Cathrine Wyhte"}).json()["results"]
    assert found[0]["case_id"] == p["catherine"]
    # too far from anyone: nobody
    assert s.get("/api/people", params={"q": "Nobody Known"}).json()["results"] == []
    assert s.get("/api/people", params={"q": "Catalina Whyte"}).json()["results"] == []


def test_given_and_family_names_typed_the_other_way_round(world):
    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    r = s.post("/api/contacts/search", {"name": "Whyte Catherine", "date_of_birth": "1944-07-12"}).json()
    assert r["results"][0]["case_id"] == p["catherine"] and r["results"][0]["possible_duplicate"] is True
    assert "given and family names typed the other way round" in r["results"][0]["why"]


def test_nhs_number_alone_and_the_date_of_birth_with_postcode_find_the_person(world):
    eng, app, p = world
    s = as_role(app, "front_door_advisor")
    # a different name altogether, but born the same day at the same postcode with a family name alike
    r = s.post("/api/contacts/search", {"name": "Kate White", "date_of_birth": "1944-07-12",
                                        "postcode": "NB7 1AB"}).json()
    assert r["results"][0]["case_id"] == p["catherine"] and r["possible_duplicates"][0] == p["catherine"]
    r = s.post("/api/contacts/search", {"name": "Someone Else", "nhs_number": "943 476 5919"}).json()
    assert r["possible_duplicates"] == [p["edith"]] and r["results"][0]["why"] == ["same NHS number"]


def test_restricted_cases_stay_invisible_and_each_case_shown_is_logged(world):
    eng, app, p = world
    restrict_case(eng, p["catherine"], ["social-worker"])
    s = as_role(app, "front_door_advisor")
    r = s.post("/api/contacts/search", {"name": "Kathryn White", "date_of_birth": "1944-07-12",
                                        "postcode": "NB7 1AB"}).json()
    assert p["catherine"] not in [x["case_id"] for x in r["results"]]
    assert p["kathryn_wright"] in [x["case_id"] for x in r["results"]]
    assert access_log(eng, p["catherine"]) == []
    assert [(a["user"], a["action"]) for a in access_log(eng, p["kathryn_wright"])] == [
        ("front-door-advisor", "search")]
    found = as_role(app, "social_worker").get("/api/people", params={"q": "Kathryn White"}).json()["results"]
    assert found[0]["case_id"] == p["catherine"]


def test_word_comparison_boundaries():
    assert compare_words("white", "white") == ("same", 1.0)
    assert compare_words("white", "whyte")[0] == "sounds"
    assert compare_words("clark", "clarkson")[0] == "starts"
    assert compare_words("e", "edith")[0] == "initial"
    assert compare_words("edward", "edith") is None
    assert compare_words("clarkson", "clarke") is None  # three slips in eight letters: another name
    assert compare_words("ann", "anna")[0] in ("starts", "sounds")
    assert compare_words("tom", "ted") is None
    assert compare_words("amy", "ami")[0] == "sounds" and compare_words("amy", "emy") is None  # short: no slips
    q = Query.of("Kathryn White")
    assert [(w.folded, w.role, w.metaphone) for w in q.words] == [("kathryn", "given", "K0RN"),
                                                                   ("white", "family", "WT")]


# ---------------------------------------------------------------------- names that hide characters
HIDDEN = [("Kath\u200bryn White", "zero-width"), ("Kathryn\u202eetihW", "bidirectional"),
          ("Kathryn\x07White", "control"), ("Kathryn\u2066White", "bidirectional")]


@pytest.mark.parametrize("name,kind", HIDDEN)
def test_front_door_search_refuses_hidden_characters(world, name, kind):
    _eng, app, _p = world
    s = as_role(app, "front_door_advisor")
    r = s.post("/api/contacts/search", {"name": name})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "name", "message": r.json()["errors"][0]["message"]}]
    msg = r.json()["errors"][0]["message"]
    if kind == "control":  # refused before the route, for every text field (api/inputs.py)
        assert msg.startswith("Name must not contain control characters")
    else:
        assert msg.startswith("Full name must only contain characters you can see") and kind in msg
    r = s.get("/api/people", params={"q": name})
    assert r.status_code == 422 and kind in r.json()["errors"][0]["message"]


@pytest.mark.parametrize("name,kind", HIDDEN[:2])
def test_a_correction_with_hidden_characters_is_refused_and_nothing_stored(world, name, kind):
    eng, app, p = world
    before = eng.get_case(p["catherine"])["data"]
    row_before = _people_row(eng, p["catherine"])
    events_before = _event_count(eng, p["catherine"])
    r = as_role(app, "team_manager").post(f"/api/cases/{p['catherine']}/details", {
        "changes": {"name": name}, "expected": {"name": "Catherine Whyte"}, "reason": "Spelling"})
    assert r.status_code == 422, r.text
    err = r.json()["errors"]
    assert err[0]["field"] == "changes/name" and "Full name must only contain characters you can see" in \
        err[0]["message"] and kind in err[0]["message"]
    assert eng.get_case(p["catherine"])["data"] == before
    assert _people_row(eng, p["catherine"]) == row_before
    assert _event_count(eng, p["catherine"]) == events_before


def test_a_contact_form_with_hidden_characters_in_the_name_is_refused_and_nothing_stored(world):
    """The contact task saves the person through the process (update_case): refused, the task stays open."""
    from engine.errors import ValidationError

    eng, app, _p = world
    res = eng.start("front_door", title="Unknown caller")
    task = res.ready_tasks[0]["id"]
    events_before = _event_count(eng, res.case_id)
    with pytest.raises(ValidationError) as exc:
        eng.complete_task(task, contact(person_name="Joan\u200dBarker"))
    assert exc.value.errors[0]["field"] == "person/name" and "zero-width" in exc.value.errors[0]["message"]
    assert eng.get_case(res.case_id)["data"] == {}
    assert _people_row(eng, res.case_id)[0]["name"] == "Unknown caller"
    assert _event_count(eng, res.case_id) == events_before
    assert [t["id"] for t in eng.list_tasks(case_id=res.case_id)] == [task]
    # through the JSON API: a 422 naming the field
    s = as_role(app, "front_door_advisor")
    assert s.post(f"/api/tasks/{task}/claim").status_code == 200
    r = s.post(f"/api/tasks/{task}/complete", {"data": contact(person_name="Joan\u202eBarker")})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "person/name"


def test_names_are_stored_in_nfc(world):
    eng, app, p = world
    decomposed = "Zoe\u0308  Smith"  # e + combining diaeresis, two spaces
    r = as_role(app, "team_manager").post(f"/api/cases/{p['zoe']}/details", {
        "changes": {"name": decomposed}, "expected": {"name": "Zoë O'Brien-Smith"}, "reason": "Divorced"})
    assert r.status_code == 200, r.text
    assert eng.get_case(p["zoe"])["data"]["person"]["name"] == "Zo\u00eb Smith"
    assert _people_row(eng, p["zoe"])[0]["name"] == "Zo\u00eb Smith"
    # a process saving the person: NFC too
    res = eng.start("front_door", title="Unknown caller")
    eng.complete_task(res.ready_tasks[0]["id"], contact(person_name="Rene\u0301e Dupont"))
    assert eng.get_case(res.case_id)["data"]["person"]["name"] == "Ren\u00e9e Dupont"


# ---------------------------------------------------------------------- the migration
def test_migration_fills_the_people_table_from_existing_cases(db_url):
    from alembic import command

    from engine.db import Database
    from engine.migrate import alembic_config, upgrade

    db = Database(db_url)
    try:
        upgrade(db, "0006")
        with db.engine.begin() as conn:
            for i, (title, data) in enumerate([
                    ("Catherine Whyte", '{"person": {"name": "Catherine Whyte", "date_of_birth": "1944-07-12", '
                                        '"postcode": "nb7 1ab", "nhs_number": "943 476 5919"}}'),
                    ("Bob Jones", "{}"),  # no person recorded yet: the title names them
                    ("", "{}")], start=1):  # nobody named
                conn.execute(text("INSERT INTO cases (id, reference, title, data, created_at, updated_at) "
                                  "VALUES (:i, :r, :t, :d, :at, :at)"),
                             {"i": i, "r": f"CASE-{i:06d}", "t": title, "d": data, "at": "2031-01-01 00:00:00+00"})
        upgrade(db)
        with db.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(select(people.c.case_id, people.c.name, people.c.postcode,
                                                          people.c.nhs_number).order_by(people.c.case_id))]
            assert rows == [(1, "Catherine Whyte", "NB71AB", "9434765919"), (2, "Bob Jones", None, None)]
            found = search(conn, Query.of("Kathryn White", "1944-07-12"), [], mode="intake")
            assert [f["case_id"] for f in found] == [1] and found[0]["possible_duplicate"]
        command.downgrade(alembic_config(db), "0006")
        with db.engine.connect() as conn:
            assert "people" not in conn.dialect.get_table_names(conn)
    finally:
        db.dispose()
