"""engine/forms.py's fast check: jsonschema-rs says "valid" exactly when jsonschema does, on every form.

A submission is first checked by jsonschema-rs; only when it finds a problem does jsonschema run and word the
errors. So a wrong "valid" from the fast check would let a bad answer in: these tests compare the two on every
form of forms/, with answers made from each schema (as the simulation makes them), repaired ones, and each
property broken in turn with odd values; and they break the rules the two libraries would read differently.
"""

from __future__ import annotations

import json
import math
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from carepath.simulate import _fill, _repair
from engine.errors import ValidationError
from engine.forms import FormLibrary

FORMS = FormLibrary.from_folder(Path(__file__).resolve().parent.parent / "forms")
TODAY = date(2026, 3, 2)
ODD = [None, True, False, 0, -1, 1, 1.0, 1.5, 0.07, 12.345, 10**30, "", " ", "x", "a" * 5000, "2024-02-30",
       "2024-01-01T00:00:00Z", "2026-03-02", "A81001\n", "\x1cA81001", " A81001 ", "NB7 1AB", "nb71ab",
       "١٢٣٤٥٦٧٨٩٠", "0123456789", "e\u0301", "<script>alert(1)</script>", [], [1], ["a", "a"], [{}], {},
       {"x": 1}]


def _agree(lib: FormLibrary, name: str, data: Any) -> bool:
    """The two libraries' verdicts on `data` (asserted equal); the verdict."""
    python = not list(lib._validators[name].iter_errors(data))
    fast = lib.quick_valid(name, data)
    assert fast == python, f"{name}: jsonschema says {'valid' if python else 'invalid'}, the fast check " \
                           f"{'valid' if fast else 'not'}: {json.dumps(data)[:400]}"
    return python


def _errors(lib: FormLibrary, name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        lib.validate(name, data)
    except ValidationError as exc:
        return exc.errors
    return []


def _broken(data: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """`data` with each property (and each property of an object answer) removed, and set to each odd value."""
    out = []
    props = schema.get("properties") or {}
    for key in sorted(set(data) | set(props)):
        gone = dict(data)
        gone.pop(key, None)
        out.append(gone)
        for odd in ODD:
            out.append({**data, key: odd})
        inner = data.get(key)
        if isinstance(inner, dict):
            for sub in sorted(set(inner) | set((props.get(key) or {}).get("properties") or {})):
                for odd in ODD[::3]:
                    out.append({**data, key: {**inner, sub: odd}})
    return out


@pytest.mark.parametrize("name", sorted(FORMS.names()))
def test_the_fast_check_agrees_with_jsonschema_on_every_form(name):
    schema = FORMS.schema(name)
    assert FORMS.quick_valid(name, {}) in (True, False)
    assert FORMS._fast[name] is not None, f"{name} has no fast check"
    rng = random.Random(name)
    verdicts = []
    for n in range(4):
        rules = {k: {v: 1.0 for v in p["enum"]} for k, p in (schema.get("properties") or {}).items()
                 if isinstance(p, dict) and "enum" in p and n % 2}
        data = _fill(schema, rules, rng, TODAY)
        for _ in range(6):  # as the simulation repairs answers a form refuses
            errors = _errors(FORMS, name, data)
            ok = _agree(FORMS, name, data)
            assert ok == (not errors)
            verdicts.append(ok)
            if ok or not _repair(schema, data, errors, rng, TODAY):
                break
        verdicts += [_agree(FORMS, name, broken) for broken in _broken(data, schema)]
    assert set(verdicts) == {True, False}  # both verdicts were compared


def test_values_json_cannot_hold_go_to_jsonschema_and_are_never_waved_through():
    lib = FormLibrary({"f": {"type": "object", "properties": {"n": {"type": "number", "maximum": 10}},
                             "required": ["n"]}})
    for value in (math.inf, -math.inf, math.nan, date(2026, 1, 1), {1, 2}, b"bytes", 10**400):
        python = not list(lib._validators["f"].iter_errors({"n": value}))
        assert lib.quick_valid("f", {"n": value}) in (python, False)  # never "valid" where jsonschema is not
    with pytest.raises(ValidationError):
        lib.validate("f", {"n": math.inf})
    with pytest.raises(ValidationError):
        lib.validate("f", {"n": date(2026, 1, 1)})
    lib.validate("f", {"n": 3})
    assert lib.quick_valid("f", {"n": 3})


def test_a_pattern_is_read_as_python_reads_it_not_as_the_rust_library_would():
    """`\\w` in Rust matches a combining accent and `[[:alpha:]]` is a class of letters; in Python (and so in
    jsonschema) neither: the fast check must refuse what jsonschema refuses."""
    lib = FormLibrary({"f": {"type": "object", "properties": {
        "word": {"type": "string", "pattern": "^\\w+$"}, "code": {"type": "string", "pattern": "^[A-Z][0-9]{5}$"}}}})
    assert not lib.quick_valid("f", {"word": "e\u0301"})
    with pytest.raises(ValidationError) as exc:
        lib.validate("f", {"word": "e\u0301"})
    assert exc.value.errors[0]["field"] == "word"
    assert lib.quick_valid("f", {"word": "cafe"})
    assert lib.quick_valid("f", {"code": "A81001\n"})  # Python's `$` allows a final newline: so does jsonschema
    lib.validate("f", {"code": "A81001\n"})
    assert not lib.quick_valid("f", {"code": "A8100"})


def test_money_and_date_order_are_checked_by_the_fast_check_too():
    lib = FormLibrary({"f": {"type": "object", "x-dateOrder": [["ready", "discharged"]], "properties": {
        "amount": {"type": "number", "title": "Weekly cost", "x-money": True, "minimum": 0},
        "ready": {"type": "string", "title": "Ready to leave"}, "discharged": {"type": "string"}}}})
    for good in ({"amount": 12.34}, {"amount": 0.07}, {"amount": 0}, {"amount": 1e6},
                 {"ready": "2026-03-02", "discharged": "2026-03-02"},  # the same day is in order
                 {"ready": "2026-03-02", "discharged": "2026-03-03T09:00:00Z"}, {"ready": "2026-03-02"},
                 {"ready": "soon", "discharged": "2026-01-01"}):
        assert lib.quick_valid("f", good), good
        lib.validate("f", good)
    for bad, field, message in (
            ({"amount": 12.345}, "amount", "Enter weekly cost in pounds and pence, like 12.50"),
            ({"amount": -1}, "amount", None),
            ({"ready": "2026-03-02", "discharged": "2026-03-01"}, "discharged",
             "must not be before 'Ready to leave' (2026-03-02)")):
        assert not lib.quick_valid("f", bad), bad
        with pytest.raises(ValidationError) as exc:
            lib.validate("f", bad)
        got = exc.value.errors
        assert [e["field"] for e in got] == [field]
        assert message is None or got[0]["message"] == message


def test_a_form_using_a_keyword_not_compared_has_no_fast_check_and_is_still_checked():
    lib = FormLibrary({"f": {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 0.1}},
                             "patternProperties": {"^x": {"type": "string"}}}})
    assert not lib.quick_valid("f", {"n": 0.3})
    assert lib._fast["f"] is None
    lib.validate("f", {"n": 0.5})
    with pytest.raises(ValidationError):
        lib.validate("f", {"x1": 3})
