"""The form library read from a folder: a broken form is named, even after good forms were checked."""

from __future__ import annotations

import json

import pytest

from engine.errors import DefinitionError
from engine.forms import FormLibrary

GOOD = {"type": "object", "properties": {"note": {"type": "string", "title": "Note"}}}


def test_a_form_that_is_not_a_valid_json_schema_is_named_even_after_the_good_one_was_checked(tmp_path):
    (tmp_path / "note.schema.json").write_text(json.dumps(GOOD), encoding="utf-8")
    assert FormLibrary.from_folder(tmp_path).names() == {"note"}
    assert FormLibrary.from_folder(tmp_path).names() == {"note"}  # read again: the same answer
    broken = {**GOOD, "properties": {"note": {"type": "not-a-type"}}}
    (tmp_path / "note.schema.json").write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        FormLibrary.from_folder(tmp_path)
    assert "note.schema.json" in str(err.value) and "not a valid JSON Schema" in str(err.value)
    # put right again, it is read again
    (tmp_path / "note.schema.json").write_text(json.dumps(GOOD), encoding="utf-8")
    assert FormLibrary.from_folder(tmp_path).names() == {"note"}
