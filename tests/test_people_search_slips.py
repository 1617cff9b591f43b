"""A slip of the keys in the first letters of a name still finds the person (api/people.py `word_keys`,
handlers/people.py `slip_keys`, migration 0008), on SQLite and PostgreSQL.

Before migration 0008 the candidates by name came only from the same Metaphone or NYSIIS key or the
same first three letters, so "Peter Lohnson" found nobody: the slip changes both sound keys and the
first three letters. Each typed name below is first checked to be such a slip (both sound keys and
the first three letters differ from the name's, and the two words are still spelt alike), so only the
slip keys can find the person: a test per kind of slip (a letter changed, dropped, added, two
swapped), with the boundaries (a name of four letters, the shortest with slip keys, where one slip is
exactly the spelling threshold; three letters: none; the fifth letter, the last the keys are made
from; a slip after it; two slips in the first five letters)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.people import SPELT, SPELT_LIKE, Query, compare_words, search
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import people, person_name_slips
from handlers.people import fold, slip_keys, sound_keys
from tests.conftest import START

PEOPLE = {
    "johnson": {"name": "Peter Johnson", "date_of_birth": "1941-05-06", "postcode": "NB4 2QS"},
    "lawson": {"name": "Peter Lawson", "date_of_birth": "1950-01-01"},  # close, but not one slip away
    "catherine": {"name": "Catherine Whyte", "date_of_birth": "1944-07-12"},
    "ward": {"name": "Alan Ward", "date_of_birth": "1938-11-30"},
    "kerr": {"name": "Mary Kerr", "date_of_birth": "1947-02-14"},
    "smith": {"name": "Joan Smith", "date_of_birth": "1933-08-08"},
    "wilkinson": {"name": "Ivy Wilkinson", "date_of_birth": "1929-03-03"},
    "cox": {"name": "Dennis Cox", "date_of_birth": "1952-09-19"},
}


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"))
    engine.init(simulated_start=START)
    engine.ids = {k: engine.create_case(p["name"], {"person": dict(p)}) for k, p in PEOPLE.items()}
    yield engine
    engine.db.dispose()


def found(eng, name, mode="find", **terms):
    with eng.db.engine.connect() as conn:
        return search(conn, Query.of(name, **terms), [], mode=mode)


def names(eng, name, mode="find", **terms):
    return [f["name"] for f in found(eng, name, mode, **terms)]


def only_slip_keys_can_find(typed: str, name: str) -> None:
    """The typed word changes both sound keys and the first three letters of the name, and is still spelt
    like it (a slip the scoring accepts)."""
    t, n = fold(typed), fold(name)
    (tm, tn), (nm, nn) = sound_keys(t), sound_keys(n)
    assert tm != nm and tn != nn, f"{typed} shares a sound key with {name}"
    assert t[:3] != n[:3], f"{typed} starts like {name}"
    assert compare_words(t, n)[0] == SPELT, f"{typed} is not spelt like {name}"


def test_a_changed_letter_in_the_first_three_finds_the_person(eng):
    for typed, who in [("Lohnson", "Johnson"), ("Xatherine", "Catherine"), ("Gerr", "Kerr"), ("Vard", "Ward")]:
        only_slip_keys_can_find(typed, who)
    assert names(eng, "Peter Lohnson") == ["Peter Johnson"]  # the first letter
    assert names(eng, "Xatherine Whyte") == ["Catherine Whyte"]  # of a given name
    assert names(eng, "Mary Gerr") == ["Mary Kerr"]
    # four letters, the shortest with slip keys: one slip in four is exactly the spelling threshold
    assert 1 - 1 / 4 == SPELT_LIKE
    assert names(eng, "Alan Vard") == ["Alan Ward"]
    first = found(eng, "Peter Lohnson")[0]
    assert first["why"] == ["family name “Johnson” is spelt like “Lohnson”", "same given name “Peter”"]


def test_a_dropped_first_letter_finds_the_person(eng):
    only_slip_keys_can_find("Ohnson", "Johnson")
    only_slip_keys_can_find("Atherine", "Catherine")
    assert names(eng, "Peter Ohnson") == ["Peter Johnson"]
    assert names(eng, "Atherine Whyte") == ["Catherine Whyte"]
    # three letters left of a four-letter name: too short to be a slip of anything
    assert compare_words("ard", "ward") is None and slip_keys("ard") == []
    assert names(eng, "Alan Ard") == []


def test_an_added_letter_in_the_first_letters_finds_the_person(eng):
    for typed, who in [("Jyohnson", "Johnson"), ("Swhyte", "Whyte"), ("Kwerr", "Kerr"), ("Wyard", "Ward")]:
        only_slip_keys_can_find(typed, who)
    assert names(eng, "Peter Jyohnson") == ["Peter Johnson"]
    assert names(eng, "Catherine Swhyte") == ["Catherine Whyte"]
    assert names(eng, "Mary Kwerr") == ["Mary Kerr"]  # a four-letter name typed with five
    assert names(eng, "Alan Wyard") == ["Alan Ward"]


def test_two_swapped_letters_in_the_first_letters_find_the_person(eng):
    for typed, who in [("Ojhnson", "Johnson"), ("Msith", "Smith"), ("Smtih", "Smith"), ("Hwyte", "Whyte"),
                       ("Wrad", "Ward")]:
        only_slip_keys_can_find(typed, who)
    assert names(eng, "Peter Ojhnson") == ["Peter Johnson"]  # the first and second letters
    assert names(eng, "Joan Msith") == ["Joan Smith"]
    assert names(eng, "Joan Smtih") == ["Joan Smith"]  # the third and fourth
    assert names(eng, "Catherine Hwyte") == ["Catherine Whyte"]
    assert names(eng, "Alan Wrad") == ["Alan Ward"]  # four letters: exactly the threshold
    # given name and family name both slipped, typed the other way round
    assert names(eng, "Hwyte Xatherine") == ["Catherine Whyte"]


def test_a_slip_at_the_fifth_letter_and_after_it(eng):
    """The fifth letter is the last the slip keys are made from; a slip after it leaves the first five
    letters the same, which the search reads as a start. Both change the sound keys here."""
    for typed, who in [("johsnon", "johnson"), ("wilkinxon", "wilkinson")]:
        (tm, tn), (nm, nn) = sound_keys(typed), sound_keys(who)
        assert tm != nm and tn != nn and compare_words(typed, who)[0] == SPELT
    assert set(slip_keys("johsnon")) & set(slip_keys("johnson"))  # the fourth and fifth swapped
    assert "wilki" == "wilkinxon"[:5] == "wilkinson"[:5]
    assert names(eng, "Peter Johsnon") == ["Peter Johnson"]
    assert names(eng, "Ivy Wilkinxon") == ["Ivy Wilkinson"]


def test_two_slips_in_the_first_five_letters(eng):
    """Two slips in the first five letters share no slip key. With the first three letters the same, the
    search widens to them when nobody else matched; with those changed too, nobody is found by name."""
    assert not set(slip_keys("catxyrine")) & set(slip_keys("catherine"))
    assert compare_words("catxyrine", "catherine")[0] == SPELT
    assert names(eng, "Catxyrine Whyte") == ["Catherine Whyte"]
    only_slip_keys_can_find("Cahtreine", "Catherine")
    assert not set(slip_keys("cahtreine")) & set(slip_keys("catherine"))
    assert names(eng, "Cahtreine Whyte") == []
    # the front door's intake search finds her by the date of birth, and the scoring sees the name
    # spelt alike: a possible duplicate
    r = found(eng, "Cahtreine Whyte", mode="intake", date_of_birth="1944-07-12")
    assert [x["name"] for x in r] == ["Catherine Whyte"] and r[0]["possible_duplicate"] is True
    assert "given name “Catherine” is spelt like “Cahtreine”" in r[0]["why"]


def test_a_slip_that_is_not_one_does_not_find_a_neighbour(eng):
    """Lohnson is one slip from Johnson, three from Lawson: only Johnson is shown."""
    assert compare_words("lohnson", "lawson") is None
    assert names(eng, "Peter Lohnson") == ["Peter Johnson"]
    assert names(eng, "Dennis Vox") == []  # three letters: a slip is another name
    assert names(eng, "Dennis Cox") == ["Dennis Cox"]


def test_intake_search_marks_a_first_letter_slip_with_the_date_of_birth_a_possible_duplicate(eng):
    r = found(eng, "Peter Lohnson", mode="intake", date_of_birth="1941-05-06")
    assert r[0]["name"] == "Peter Johnson" and r[0]["possible_duplicate"] is True
    assert r[0]["why"][0] == "same date of birth"


def test_slip_keys_kept_in_step_after_a_correction(eng):
    cid = eng.ids["johnson"]
    eng.update_case_record(cid, {"person": {**PEOPLE["johnson"], "name": "Peter Hobson"}}, actor="t.manager",
                           reason="Spelling")
    assert names(eng, "Peter Lohnson") == []
    assert names(eng, "Peter Obson") == ["Peter Hobson"]
    with eng.db.engine.connect() as conn:
        keys = conn.execute(select(people.c.search_keys).where(people.c.case_id == cid)).scalar().split()
        slips = sorted(conn.execute(select(person_name_slips.c.slip).where(person_name_slips.c.case_id == cid))
                       .scalars())
    assert "sohns" not in keys and "pjohns" not in keys and {"phobso", "sobso"} <= set(keys)
    expected = sorted({f"s{k}" for w in ("peter", "hobson") for k in slip_keys(w)})
    assert sorted(k for k in keys if k.startswith("s")) == expected
    if eng.db.is_postgres:
        assert slips == []  # PostgreSQL reads people.search_keys
    else:
        assert slips == sorted(k[1:] for k in expected)


def test_the_migration_fills_the_search_keys_of_people_recorded_before_it(db_url):
    from alembic import command
    from sqlalchemy import text

    from engine.db import Database
    from engine.migrate import alembic_config, upgrade

    db = Database(db_url)
    try:
        upgrade(db, "0006")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO cases (id, reference, title, data, created_at, updated_at) "
                              "VALUES (1, 'CASE-000001', 'Peter Johnson', :d, :at, :at)"),
                         {"d": '{"person": {"name": "Peter Johnson", "date_of_birth": "1941-05-06"}}',
                          "at": "2031-01-01 00:00:00+00"})
        upgrade(db, "0007")
        upgrade(db)  # 0008
        with db.engine.connect() as conn:
            assert [f["case_id"] for f in search(conn, Query.of("Peter Lohnson"), [])] == [1]
            assert "sohns" in conn.execute(select(people.c.search_keys)).scalar().split()
        command.downgrade(alembic_config(db), "0007")
        with db.engine.connect() as conn:
            assert "person_name_slips" not in conn.dialect.get_table_names(conn)
            assert "search_keys" not in [c["name"] for c in conn.dialect.get_columns(conn, "people")]
    finally:
        db.dispose()


def test_the_front_door_finds_a_first_letter_slip_and_logs_what_it_shows(db_url):
    """Through the web API, as the advisor uses it: Find a person and the intake search."""
    from api.access import access_log
    from tests.front_door_world import as_role, build

    eng, app, ppl = build(db_url)
    try:
        only_slip_keys_can_find("Vlarke", "Clarke")
        s = as_role(app, "front_door_advisor")
        # both Edith Clarkes (one slip from each); Edward Clarkson is not an Edith
        found = s.get("/api/people", params={"q": "Edith Vlarke"}).json()["results"]
        assert {x["case_id"] for x in found} == {ppl["edith"], ppl["edith2"]}
        assert "family name “Clarke” is spelt like “Vlarke”" in found[0]["why"]
        r = s.post("/api/contacts/search", {"name": "Edith Vlarke", "date_of_birth": "1944-03-27"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["results"][0]["case_id"] == ppl["edith"] and body["possible_duplicates"] == [ppl["edith"]]
        assert [a["action"] for a in access_log(eng, ppl["edith"])] == ["search", "search"]
        assert access_log(eng, ppl["edward"]) == []
    finally:
        eng.db.dispose()


def test_postgresql_reads_the_candidates_from_the_gin_index(pg_url):
    """The statement matches the index expression (string_to_array(search_keys, ' ') with a literal
    space), and the newest 400 are taken after the index read, not by walking the primary key
    backwards and testing every person (what the planner chose, 3.8 s over 200,000 people, before
    the MATERIALIZED)."""
    from api.people import _by_name_pg

    engine = Engine(pg_url, registry=load_registry("handlers"))
    engine.init(simulated_start=START)
    try:
        for p in PEOPLE.values():
            engine.create_case(p["name"], {"person": dict(p)})
        stmt = _by_name_pg(Query.of("Peter Lohnson"), [])
        compiled = stmt.compile(engine.db.engine)
        with engine.db.engine.connect() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a few rows: force the planner's choice
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
            assert [r.name for r in conn.execute(stmt)] == ["Peter Johnson"]
        assert "Bitmap Index Scan on ix_people_search_keys" in plan, plan
        assert "pk_people" not in plan, plan
    finally:
        engine.db.dispose()
