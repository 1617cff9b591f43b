"""Hostile scripts, malformed form schemas and the migrations: refused clearly, nothing altered."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.errors import DefinitionError
from engine.forms import FormLibrary
from engine.schema import metadata


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
