"""Hostile scripts, malformed form schemas and the migrations: refused clearly, nothing altered."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.errors import DefinitionError
from engine.forms import FormLibrary
from engine.schema import metadata
from tests.conftest import START


def test_a_script_that_builds_a_dunder_name_at_run_time_is_stopped_as_an_incident(make_engine):
    eng = make_engine("script_escape.bpmn")
    res = eng.start("script_escape", data={"points": 3})
    assert res.status == "error"
    assert res.incident["element_id"] == "sneaky"
    assert "__class__" in res.incident["message"]
    assert eng.list_tasks(case_id=res.case_id) == []  # the process went no further
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert "found" not in data


def test_a_malformed_form_schema_is_named_and_refused(tmp_path):
    (tmp_path / "good.schema.json").write_text('{"type": "object"}')
    (tmp_path / "broken.schema.json").write_text('{"type": "objekt"}')
    (tmp_path / "not_json.schema.json").write_text("{oops")
    with pytest.raises(DefinitionError) as err:
        FormLibrary.from_folder(tmp_path)
    files = sorted(p.file.rsplit("/", 1)[-1] for p in err.value.problems)
    assert files == ["broken.schema.json", "not_json.schema.json"]


def test_the_migrations_create_exactly_the_schema_the_code_uses(make_engine):
    eng = make_engine()
    with eng.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_database_whose_users_the_earlier_web_app_created_keeps_them_through_the_migration(db_url):
    """Before migration 0003 the web app created its own tables; upgrading keeps every user."""
    from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, MetaData, String, Table, insert, text

    from engine.db import Database
    from engine.migrate import upgrade

    old = MetaData()  # the table exactly as the earlier api/auth.py declared it
    old_users = Table(
        "users", old,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("username", String(64), nullable=False, unique=True),
        Column("display_name", String(255), nullable=False),
        Column("password_hash", String(255), nullable=False),
        Column("roles", JSON, nullable=False),
        Column("teams", JSON, nullable=False),
        Column("failed_attempts", Integer, nullable=False, default=0),
        Column("locked_until", DateTime(timezone=True), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    db = Database(db_url)
    try:
        upgrade(db, "0002")
        old.create_all(db.engine)
        with db.transaction() as conn:
            conn.execute(insert(old_users).values(username="sam", display_name="Sam", password_hash="x",
                                                  roles=["social_worker"], teams=["social_work"], failed_attempts=0,
                                                  created_at=START))
        upgrade(db)
        with db.engine.connect() as conn:
            row = conn.execute(text("SELECT username, roles, active FROM users")).one()
            assert row.username == "sam" and bool(row.active) is True
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        # the same tables and columns (the earlier app named its indexes and constraints differently)
        flat = [d for group in diff for d in (group if isinstance(group, list) else [group])]
        naming = ("add_index", "remove_index", "add_constraint", "remove_constraint")
        assert [d for d in flat if d[0] not in naming] == []
    finally:
        db.dispose()


def test_a_date_order_rule_names_the_later_field_and_a_broken_rule_is_refused_at_load(tmp_path):
    from engine.errors import ValidationError

    (tmp_path / "stay.schema.json").write_text(json.dumps({
        "type": "object", "x-dateOrder": [["admitted", "left"]],
        "properties": {"admitted": {"type": "string", "title": "Admitted on"}, "left": {"type": "string"},
                       "visit": {"type": "object", "x-dateOrder": [["from", "to"]],
                                 "properties": {"from": {"type": "string"}, "to": {"type": "string"}}}}}))
    forms = FormLibrary.from_folder(tmp_path)
    forms.validate("stay", {"admitted": "2031-03-01", "left": "2031-03-01"})  # the same day is fine
    forms.validate("stay", {"left": "2031-02-01"})  # only one of the two: nothing to compare
    forms.validate("stay", {"admitted": "1 March", "left": "2031-02-01"})  # not a date: its own rules say so
    with pytest.raises(ValidationError) as err:
        forms.validate("stay", {"admitted": "2031-03-01", "left": "2031-02-28",
                                "visit": {"from": "2031-03-02T10:00:00Z", "to": "2031-03-01"}})
    assert [e["field"] for e in err.value.errors] == ["left", "visit/to"]
    assert "Admitted on" in err.value.errors[0]["message"]

    (tmp_path / "broken.schema.json").write_text(json.dumps({
        "type": "object", "x-dateOrder": [["admitted", "nowhere"]], "properties": {"admitted": {}}}))
    with pytest.raises(DefinitionError) as bad:
        FormLibrary.from_folder(tmp_path)
    assert "nowhere" in str(bad.value) and "broken.schema.json" in str(bad.value)
