"""A name with a Latin letter that has no decomposition (Ł, Ø, Đ, Æ, ß) is found by the spelling a
person types on an English keyboard ("Lukasz" for "Łukasz"), and by its own spelling still
(handlers/people.py `fold`, migration 0030), on SQLite and PostgreSQL. Accents that do decompose
("Wójcik") were already dropped; these letters were kept, so "Łukasz" was keyed from "ukasz": the people
search found him for "Lukasz" only as a name "spelt like" it (by a slip key), ranked below names that sound
like it, and the auditors' search (every piece typed must be part of the name) not at all. A name in another
script keeps its own letters."""

from __future__ import annotations

import pytest

from api.people import Query, search
from engine.registry import load_registry
from engine.runtime import Engine
from handlers.people import fold
from tests.conftest import START

PEOPLE = {
    "lukasz": {"name": "Łukasz Wójcik", "date_of_birth": "1946-04-02", "postcode": "NB2 7LT"},
    "oyvind": {"name": "Øyvind Ørsted", "date_of_birth": "1951-10-20"},
    "dorde": {"name": "Đorđe Đukić", "date_of_birth": "1939-01-15"},
    "aethel": {"name": "Æthel Strauß", "date_of_birth": "1944-06-30"},
    "wang": {"name": "王 芳", "date_of_birth": "1960-03-08"},
    "lucas": {"name": "Luke Walsh", "date_of_birth": "1950-05-05"},
}


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"))
    engine.init(simulated_start=START)
    engine.ids = {k: engine.create_case(p["name"], {"person": dict(p)}) for k, p in PEOPLE.items()}
    yield engine
    engine.db.dispose()


def names(eng, typed):
    with eng.db.engine.connect() as conn:
        return [f["name"] for f in search(conn, Query.of(typed), [])]


def test_letters_without_a_decomposition_fold_to_what_is_typed_for_them():
    assert [fold(w) for w in ["Łukasz", "Øyvind", "Đorđe", "Æthel", "Strauß", "Wójcik"]] == \
        ["lukasz", "oyvind", "dorde", "aethel", "strauss", "wojcik"]
    assert fold("王") == "王"  # another script keeps its letters


@pytest.mark.parametrize("typed, who", [
    ("Lukasz Wojcik", "Łukasz Wójcik"),
    ("lukasz wojcik", "Łukasz Wójcik"),
    ("Łukasz Wójcik", "Łukasz Wójcik"),  # the name as written
    ("Oyvind Orsted", "Øyvind Ørsted"),
    ("Dorde Dukic", "Đorđe Đukić"),
    ("Aethel Strauss", "Æthel Strauß"),
    ("王 芳", "王 芳"),
])
def test_the_typed_spelling_finds_the_person_first_as_the_same_name(eng, typed, who):
    with eng.db.engine.connect() as conn:
        first = search(conn, Query.of(typed), [])[0]
    assert (first["name"], first["why"]) == (who, ["same name"])


def test_a_name_that_is_not_theirs_is_still_not_found(eng):
    assert "Łukasz Wójcik" not in names(eng, "Lucy Walsh")


def test_the_migration_rekeys_people_recorded_before_it(db_url, monkeypatch):
    """A person recorded with the old keys (the letter kept) is found by "Lukasz" only after 0030."""
    from sqlalchemy import text

    import handlers.people as hp
    from engine.db import Database
    from engine.migrate import upgrade

    db = Database(db_url)
    try:
        upgrade(db, "0029")
        with monkeypatch.context() as m:
            m.setattr(hp, "_latin_ascii", lambda ch: ch)  # the fold before 0030
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO cases (id, reference, title, data, created_at, updated_at) "
                                  "VALUES (1, 'CASE-000001', 'Łukasz Wójcik', :d, :at, :at), "
                                  "(2, 'CASE-000002', 'Peter Johnson', :e, :at, :at)"),
                             {"d": '{"person": {"name": "Łukasz Wójcik", "date_of_birth": "1946-04-02"}}',
                              "e": '{"person": {"name": "Peter Johnson", "date_of_birth": "1941-05-06"}}',
                              "at": "2031-01-01 00:00:00+00"})
                hp.keep_in_step(conn, 1)
                hp.keep_in_step(conn, 2)
        with db.engine.connect() as conn:  # as before: found only as spelt like him, by a slip key
            assert search(conn, Query.of("Lukasz Wojcik"), [])[0]["why"] == [
                "same family name “Wójcik”", "given name “Łukasz” is spelt like “Lukasz”"]
        upgrade(db)
        with db.engine.connect() as conn:
            found = search(conn, Query.of("Lukasz Wojcik"), [])
            assert [(f["case_id"], f["why"]) for f in found] == [(1, ["same name"])]
            assert [f["case_id"] for f in search(conn, Query.of("Peter Johnson"), [])][:1] == [2]
    finally:
        db.dispose()
