"""Task forms: one JSON Schema per form name, read from a folder (forms/ by default).

Completing a user task validates the submitted data against its form's schema and reports
every field error at once, each with the field's path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as SchemaError

from .errors import DefinitionError, NotFoundError, Problem, ValidationError

SUFFIX = ".schema.json"
DATE_ORDER = "x-dateOrder"
SECTIONS = "x-sections"
SHOW_DATA = "x-showData"
SHOW_TASK = "x-showTask"
MONEY = "x-money"
DECIDE_EACH = "x-decideEach"
MESSAGES = "x-messages"  # {"pattern": "GP practice code must be…", "maximum": "…"}: a field's own error wording
_SECTION_ID = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_order_problems(pairs: Any, instance: dict[str, Any], props: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, message) for each pair of `"x-dateOrder"` whose later date is before the earlier one."""
    for earlier, later in pairs:
        a, b = instance.get(earlier), instance.get(later)
        if not (_ISO_DAY.match(str(a)) and _ISO_DAY.match(str(b))):
            continue  # missing or not a date: the field's own rules report that
        if b[:10] < a[:10]:
            a_title = props.get(earlier, {}).get("title", earlier)
            yield later, f"must not be before '{a_title}' ({a[:10]})"


def _date_order(validator: Any, pairs: Any, instance: Any, schema: dict[str, Any]) -> Any:
    """`"x-dateOrder": [["earlier", "later"], ...]` on an object: where both dates are given, the later
    one may not be before the earlier (a discharge before the day the person was ready, say).

    Dates are ISO 8601 (YYYY-MM-DD or a full instant); the error is on the later field."""
    if not validator.is_type(instance, "object"):
        return
    for later, message in _date_order_problems(pairs, instance, schema.get("properties", {})):
        yield SchemaError(message, path=[later])


def money_name(title: str) -> str:
    """A money question's name in its messages: its title without a trailing "(pounds)" or ", in pounds"."""
    return re.sub(r"(\s*\(pounds\)|,? in pounds)$", "", title.strip())


def _pounds(value: Any) -> str:
    return f"£{Decimal(str(value)):,.2f}"


def _not_money(value: Any) -> bool:
    """Whether a number is not an amount in pounds and pence (infinite, or more than two decimal places)."""
    return not math.isfinite(value) or Decimal(str(value)).as_tuple().exponent < -2  # type: ignore[operator]


def _money(validator: Any, on: Any, instance: Any, schema: dict[str, Any]) -> Any:
    """`"x-money": true` on a number: an amount in pounds and pence, at most two decimal places (0.07 is,
    12.345 is not; JSON Schema's `multipleOf: 0.01` wrongly refuses 0.07, a float)."""
    if on is not True or not validator.is_type(instance, "number"):
        return
    if _not_money(instance):
        yield SchemaError(money_message(schema, "money"))


def money_message(schema: dict[str, Any], keyword: str) -> str:
    """GOV.UK wording for a money answer out of bounds or not in pounds and pence, naming the question."""
    name = money_name(str(schema.get("title") or "The amount"))
    if keyword == "minimum":
        return f"{name} must be {_pounds(schema['minimum'])} or more"
    if keyword == "maximum":
        return f"{name} must be {_pounds(schema['maximum'])} or less"
    if keyword == "exclusiveMinimum":
        return f"{name} must be more than {_pounds(schema['exclusiveMinimum'])}"
    if keyword == "exclusiveMaximum":
        return f"{name} must be less than {_pounds(schema['exclusiveMaximum'])}"
    if keyword == "type":
        return f"{name} must be an amount of money, like 12.50"
    lower = name[:1].lower() + name[1:] if not any(c.isupper() for c in name[1:]) else name
    return f"Enter {lower} in pounds and pence, like 12.50"


_MONEY_KEYWORDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "type", MONEY}
_Validator = validators.extend(Draft202012Validator, {DATE_ORDER: _date_order, MONEY: _money})
_META = {"type": "array", "items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}],
                                    "minItems": 2, "maxItems": 2}}


def _check_schema(schema: dict[str, Any]) -> None:
    """A valid JSON Schema whose x-dateOrder pairs name two properties of their object."""
    Draft202012Validator.check_schema(schema)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if MONEY in node and (node[MONEY] is not True or not {"number", "integer"} & (
                    set(node["type"]) if isinstance(node.get("type"), list) else {node.get("type")})):
                raise ValueError(f"{where}/{MONEY} must be true, on a property of type number")
            if DATE_ORDER in node:
                pairs = node[DATE_ORDER]
                problems = list(Draft202012Validator(_META).iter_errors(pairs))
                if problems:
                    raise ValueError(f"{where}/{DATE_ORDER} must be a list of [earlier, later] property names")
                unknown = [n for pair in pairs for n in pair if n not in node.get("properties", {})]
                if unknown:
                    raise ValueError(f"{where}/{DATE_ORDER} names properties the object does not have: "
                                     f"{', '.join(unknown)}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema, "#")
    _check_messages(schema)
    _check_sections(schema)
    _check_decide_each(schema)
    shown = schema.get(SHOW_DATA, [])
    if not isinstance(shown, list) or not all(
            isinstance(w, dict) and (
                (isinstance(w.get("variable"), str) and set(w) <= {"variable", "title", "labelsFrom"}
                 and isinstance(w.get("labelsFrom", ""), str))
                or (isinstance(w.get("answersOf"), str) and w["answersOf"] and set(w) <= {"answersOf", "title"}))
            for w in shown):
        raise ValueError(f"#/{SHOW_DATA} must be a list of {{variable, title, labelsFrom}} or {{answersOf, title}}: "
                         "process data shown with the form (labelsFrom: the form whose question titles and option "
                         "names label its values; answersOf: a form whose answers, as the process data holds them, "
                         "are shown question by question)")
    tasks_shown = schema.get(SHOW_TASK, [])
    if not isinstance(tasks_shown, list) or not all(
            isinstance(w, dict) and set(w) == {"element", "title"} and all(isinstance(v, str) and v
                                                                          for v in w.values()) for w in tasks_shown):
        raise ValueError(f"#/{SHOW_TASK} must be a list of {{element, title}}: another task of the same process "
                         "shown with the form (who has it, when it was due, how late it is)")


def _check_decide_each(schema: dict[str, Any]) -> None:
    """`"x-decideEach": {"variable", "key", "noun", "newItems"?}` on a top-level array property of objects that
    have the `key` and a `decision` property (see `FormLibrary.check_decisions`)."""
    for name, prop in (schema.get("properties") or {}).items():
        spec = prop.get(DECIDE_EACH) if isinstance(prop, dict) else None
        if spec is None:
            continue
        where = f"#/properties/{name}/{DECIDE_EACH}"
        if (not isinstance(spec, dict) or set(spec) - {"variable", "key", "noun", "newItems"}
                or not all(isinstance(spec.get(k), str) and spec.get(k) for k in ("variable", "key", "noun"))):
            raise ValueError(f"{where} must be {{variable, key, noun, newItems?}}: the process variable (a dotted "
                             "path) listing what must be decided, the property naming each, and what it is called")
        item = (prop.get("items") or {}).get("properties") or {}
        if prop.get("type") != "array" or not {spec["key"], "decision"} <= set(item):
            raise ValueError(f"{where}: '{name}' must be an array of objects with '{spec['key']}' and 'decision'")
        if "newItems" in spec and not isinstance((schema.get("properties") or {}).get(spec["newItems"]), dict):
            raise ValueError(f"{where}/newItems names '{spec['newItems']}', which is not a property of the form")


def _variable(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.strip().casefold() == b.strip().casefold()


def _check_messages(schema: dict[str, Any]) -> None:
    """`"x-messages": {keyword: message}` on a property: the message shown, instead of the validator's own
    words, when that keyword refuses the answer (a pattern, a minimum…). Keywords and messages are texts."""
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if MESSAGES in node:
                m = node[MESSAGES]
                if not isinstance(m, dict) or not m or not all(
                        isinstance(k, str) and k and isinstance(v, str) and v.strip() for k, v in m.items()):
                    raise ValueError(f"{where}/{MESSAGES} must be an object of JSON Schema keyword to message text")
            for key, value in node.items():
                if key != MESSAGES:
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema, "#")


def _property_at(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: Any = schema
    for part in path.split("."):
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict) or not isinstance(props.get(part), dict):
            return None
        node = props[part]
    return node


def _check_sections(schema: dict[str, Any]) -> None:
    """`"x-sections": [{"id", "title", "fields": ["name", "outcomes.personal_hygiene", ...]}, ...]` at the top:
    a long form answered a section at a time. Every top-level property is in exactly one section, either
    whole or as the dotted paths of its own properties (an object split over several sections)."""
    if SECTIONS not in schema:
        return
    sections = schema[SECTIONS]
    if not isinstance(sections, list) or not sections:
        raise ValueError(f"#/{SECTIONS} must be a non-empty list of sections")
    ids: set[str] = set()
    seen: dict[str, str] = {}
    for i, sec in enumerate(sections):
        where = f"#/{SECTIONS}/{i}"
        if not isinstance(sec, dict) or set(sec) - {"id", "title", "description", "fields"}:
            raise ValueError(f"{where} must be an object of id, title, description and fields")
        sid, title, names = sec.get("id"), sec.get("title"), sec.get("fields")
        if not isinstance(sid, str) or not _SECTION_ID.fullmatch(sid) or sid in ids:
            raise ValueError(f"{where}/id must be a unique lower-case name (letters, digits, _ or -)")
        ids.add(sid)
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"{where}/title must be a non-empty text")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{where}/fields must be a non-empty list of property names")
        for n in names:
            if n.count(".") > 1 or _property_at(schema, n) is None:
                raise ValueError(f"{where}/fields names '{n}', which is not a property of the form "
                                 "(or of one of its top-level objects)")
            if n in seen:
                raise ValueError(f"{where}/fields names '{n}', already in section '{seen[n]}'")
            seen[n] = sid
    props = schema.get("properties") or {}
    for name, prop in props.items():
        whole = name in seen
        parts = [k for k in seen if k.startswith(name + ".")]
        if whole and parts:
            raise ValueError(f"#/{SECTIONS}: '{name}' is in a section both whole and in parts")
        if not whole and not parts:
            raise ValueError(f"#/{SECTIONS}: the property '{name}' is in no section")
        if parts:
            missing = [k for k in (prop.get("properties") or {}) if f"{name}.{k}" not in seen]
            if missing:
                raise ValueError(f"#/{SECTIONS}: '{name}' is split over sections but these of its properties "
                                 f"are in none: {', '.join(missing)}")


#: form files' texts that passed `_check_schema` in this process (a text, not a path: an edited file is checked again)
_CHECKED: set[str] = set()


# --- the fast check ---------------------------------------------------------------------------------------
# A submission is checked first by jsonschema-rs (compiled, about thirty times as fast as jsonschema on the
# operating model's forms); only when it finds a problem — or cannot read the data — does jsonschema run, and
# its errors, worded as always, are what the person sees. So the fast check only ever says "valid", and it says
# so only for schemas whose every keyword the two libraries read alike: "pattern" is checked with Python's own
# `re.search`, as jsonschema checks it (the two libraries' regular expressions differ at the edges: `$` before
# a final newline, what `\s` matches), "x-money" and "x-dateOrder" with the functions above, and a schema using
# any other JSON Schema keyword than those below has no fast check. tests/test_forms_fast_check.py compares
# the two on every form with the simulation's answers, broken ones and the odd values.
_PY_PATTERN = "x-carepath-python-pattern"
_ONE_SCHEMA = frozenset({"items", "additionalProperties", "not", "if", "then", "else"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_FAST_KEYWORDS = _ONE_SCHEMA | _SCHEMA_LISTS | {
    "properties", "type", "required", "enum", "const", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "uniqueItems", "dependentRequired", "pattern",
    "format", "$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated",
    "readOnly", "writeOnly"}
_JSON_SCHEMA_KEYWORDS = _FAST_KEYWORDS | {  # 2020-12's and the older drafts' that jsonschema may still read
    "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$defs", "$recursiveRef",
    "$recursiveAnchor", "definitions", "dependencies", "dependentSchemas", "contains", "minContains",
    "maxContains", "patternProperties", "propertyNames", "unevaluatedItems", "unevaluatedProperties",
    "multipleOf", "maxProperties", "minProperties", "contentEncoding", "contentMediaType", "contentSchema",
    "additionalItems"}


class _NoFastCheck(Exception):
    pass


def _fast_schema(node: Any) -> Any:
    """`node` as jsonschema-rs is given it ("pattern" renamed to the Python check), or _NoFastCheck."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise _NoFastCheck
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _JSON_SCHEMA_KEYWORDS and key not in _FAST_KEYWORDS:
            raise _NoFastCheck
        if key == "pattern":
            if not isinstance(value, str):
                raise _NoFastCheck
            out[_PY_PATTERN] = value
        elif key in _ONE_SCHEMA:
            out[key] = _fast_schema(value)
        elif key in _SCHEMA_LISTS:
            if not isinstance(value, list):
                raise _NoFastCheck
            out[key] = [_fast_schema(v) for v in value]
        elif key == "properties":
            if not isinstance(value, dict):
                raise _NoFastCheck
            out[key] = {name: _fast_schema(v) for name, v in value.items()}
        else:
            out[key] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _RsPattern:
    def __init__(self, parent_schema: Any, value: str, schema_path: Any) -> None:
        self.pattern = value

    def validate(self, instance: Any) -> None:
        if isinstance(instance, str) and not re.search(self.pattern, instance):  # as jsonschema's "pattern"
            raise ValueError("does not match")


class _RsMoney:
    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        self.on = value is True

    def validate(self, instance: Any) -> None:
        if self.on and _is_number(instance) and _not_money(instance):
            raise ValueError("not pounds and pence")


class _RsDateOrder:
    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        self.pairs = value
        self.props = parent_schema.get("properties", {}) if isinstance(parent_schema, dict) else {}

    def validate(self, instance: Any) -> None:
        if isinstance(instance, dict) and next(_date_order_problems(self.pairs, instance, self.props), None):
            raise ValueError("dates out of order")


_RS_KEYWORDS = {_PY_PATTERN: _RsPattern, MONEY: _RsMoney, DATE_ORDER: _RsDateOrder}


def _fast_check(schema: dict[str, Any]) -> Any:
    """A jsonschema-rs validator that agrees with `_Validator(schema)` on what is valid, or None."""
    try:
        return jsonschema_rs.Draft202012Validator(_fast_schema(schema), keywords=_RS_KEYWORDS,
                                                  validate_formats=False)
    except Exception:  # a keyword it does not read alike, or cannot compile: jsonschema alone checks this form
        return None


class FormLibrary:
    def __init__(self, schemas: dict[str, dict[str, Any]] | None = None) -> None:
        self._schemas = dict(schemas or {})
        self._validators = {name: _Validator(s) for name, s in self._schemas.items()}
        self._fast: dict[str, Any] = {}  # name -> jsonschema-rs validator or None, made at its first use

    @classmethod
    def from_folder(cls, folder: str | Path) -> FormLibrary:
        folder = Path(folder)
        schemas: dict[str, dict[str, Any]] = {}
        problems: list[Problem] = []
        for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
            name = path.name[: -len(SUFFIX)]
            try:
                text = path.read_text(encoding="utf-8")
                schema = json.loads(text)
                if text not in _CHECKED:  # checking against the meta-schema is slow; the same text passes again
                    _check_schema(schema)
                    _CHECKED.add(text)
            except Exception as exc:  # a broken form is named, not crashed on
                problems.append(Problem(str(path), f"not a valid JSON Schema: {exc}"))
                continue
            schemas[name] = schema
        if problems:
            raise DefinitionError(problems)
        return cls(schemas)

    def names(self) -> set[str]:
        return set(self._schemas)

    def schema(self, name: str) -> dict[str, Any]:
        try:
            return self._schemas[name]
        except KeyError:
            raise NotFoundError(f"no form named '{name}'", form=name) from None

    def sections(self, name: str | None) -> list[dict[str, Any]]:
        """The form's sections (`x-sections`), or [] for a form answered on one page."""
        if name is None or name not in self._schemas:
            return []
        return [dict(sec) for sec in self._schemas[name].get(SECTIONS) or []]

    def validate(self, name: str | None, data: dict[str, Any], **context: Any) -> None:
        if not isinstance(data, dict):
            raise ValidationError("the submitted data must be an object of field values", **context)
        if name is None or name not in self._validators:
            return
        if self.quick_valid(name, data):
            return
        errors = []
        for err in sorted(self._validators[name].iter_errors(data), key=lambda e: list(e.absolute_path)):
            path = "/".join(str(p) for p in err.absolute_path)
            if err.validator == "required" and isinstance(err.instance, dict):
                missing = [p for p in err.validator_value if p not in err.instance]
                for field in missing:
                    errors.append({"field": "/".join(filter(None, [path, field])), "message": f"'{field}' is required"})
                continue
            if err.validator == "dependentRequired" and isinstance(err.instance, dict):
                # one answer needs another ("units a week" needs "cost of one unit"): the one left out is
                # missing, named at its own question, not "'unit_cost' is a dependency of 'units_per_week'"
                missing = sorted({d for given, needs in err.validator_value.items() if given in err.instance
                                  for d in needs if d not in err.instance})
                for field in missing:
                    errors.append({"field": "/".join(filter(None, [path, field])), "message": f"'{field}' is required"})
                continue
            own = err.schema.get(MESSAGES) if isinstance(err.schema, dict) else None
            if isinstance(own, dict) and isinstance(own.get(err.validator), str):
                errors.append({"field": path or None, "message": own[err.validator]})
                continue
            if err.schema.get(MONEY) is True and err.validator in _MONEY_KEYWORDS:
                errors.append({"field": path or None, "message": money_message(err.schema, err.validator)})
                continue
            errors.append({"field": path or None, "message": err.message})
        if errors:
            raise ValidationError(f"the form '{name}' has {len(errors)} error(s)", errors=errors, form=name, **context)

    def quick_valid(self, name: str, data: Any) -> bool:
        """True when the fast check finds `data` valid for the form `name`; False means "ask jsonschema"."""
        try:
            fast = self._fast[name]
        except KeyError:
            fast = self._fast[name] = _fast_check(self._schemas[name])
        if fast is None:
            return False
        try:
            return bool(fast.is_valid(data))
        except Exception:  # a value JSON cannot hold (a date object, a huge number...): jsonschema decides
            return False

    def check_decisions(self, name: str | None, data: dict[str, Any], process_data: Any, **context: Any) -> None:
        """A property with `"x-decideEach": {"variable", "key", "noun", "newItems"?}`: the process variable at
        `variable` (a dotted path in the process data: a list of objects, or nothing) lists things decided before
        (an earlier budget's uplifts); the answer must give each one, matched by its `key` (case and spaces aside),
        a `decision`, and name nothing that is not in the list. With `newItems` (the property listing new ones),
        a new one may not repeat an earlier one's `key`, and when nothing was decided before at least one new one
        is needed (the property is then required). Checked with the process data, so after `validate`."""
        if name is None or name not in self._schemas:
            return
        schema = self._schemas[name]
        errors: list[dict[str, str]] = []
        for prop, node in (schema.get("properties") or {}).items():
            spec = node.get(DECIDE_EACH) if isinstance(node, dict) else None
            if not isinstance(spec, dict):
                continue
            key, noun = spec["key"], spec["noun"]
            listed = _variable(process_data, spec["variable"])
            earlier = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
            answers = data.get(prop) or []
            answers = answers if isinstance(answers, list) else []
            for i, before in enumerate(earlier):
                found = next((a for a in answers if isinstance(a, dict) and _same(a.get(key), before.get(key))), None)
                if found is None or not found.get("decision"):
                    errors.append({"field": f"{prop}/{i}/decision",
                                   "message": f"Decide what happens to the {noun} “{before.get(key)}”: "
                                              "carry it, change it or end it"})
            for j, answer in enumerate(answers):
                if isinstance(answer, dict) and not any(_same(answer.get(key), b.get(key)) for b in earlier):
                    errors.append({"field": f"{prop}/{j}/{key}",
                                   "message": f"“{answer.get(key)}” is not one of the {noun}s decided before"})
            new_name = spec.get("newItems")
            if new_name:
                new = data.get(new_name) or []
                new = new if isinstance(new, list) else []
                if not earlier and not new:
                    errors.append({"field": new_name, "message": f"'{new_name}' is required"})
                for k, item in enumerate(new):
                    if isinstance(item, dict) and any(_same(item.get(key), b.get(key)) for b in earlier):
                        errors.append({"field": f"{new_name}/{k}/{key}",
                                       "message": f"“{item.get(key)}” was decided before: decide it above "
                                                  "instead of adding it again"})
        if errors:
            raise ValidationError(f"the form '{name}' has {len(errors)} error(s)", errors=errors, form=name, **context)
