"""Task forms as HTML: a JSON Schema's properties become GOV.UK form fields (docs/security.md, "Pages").

* string → text input; string with format date → day/month/year date input;
  long text (maxLength over 200, or `"x-widget": "textarea"`, or a notes-like name) → textarea
* enum (or oneOf of consts) → radios; boolean → Yes/No radios; array of enums → checkboxes
* integer / number → text input with inputmode numeric
* object with properties → a fieldset of its own fields (recursively, any depth); HTML names are
  dotted paths (`carer.name`), ids hyphenated (`f-carer-name`)
* array of strings → a textarea, one item a line
* anything else (arrays of objects, objects without properties) → a JSON textarea
* `if: {properties: {X: {const: V}}}, then: {required: [...]}` (top level, or in `allOf`), with an
  optional `else` when X is Yes/No or has two options → the `then` fields are shown under option
  V of X with GOV.UK conditional reveal (and the `else` fields under the other option). Without
  JavaScript they are always shown. The JSON Schema still decides what is valid; answers to
  fields under an option that is not chosen are not sent.

Labels come from "title" (or the property name), hints from "description". The posted form
is turned back into data for the engine, which validates it against the same schema; only what
the browser cannot send as JSON (a real date, a number, JSON text) is checked here first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

LONG_TEXT = re.compile(r"(notes|details|description|summary|comments|reason|narrative|what_happened)$")
CHOICE_KINDS = ("radios", "boolean", "checkboxes")


@dataclass
class Field:
    name: str  # dotted path: "carer.name"
    label: str
    hint: str | None
    kind: str  # text, textarea, date, radios, boolean, checkboxes, number, json, lines, object
    required: bool
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    integer: bool = False
    value: Any = None  # what to show: str, list[str], or {"day","month","year"}
    error: str | None = None
    children: list[Field] = field(default_factory=list)  # kind == "object"
    reveal: dict[str, list[Field]] = field(default_factory=dict)  # option value → fields shown under it
    condition: tuple[str, str] | None = None  # (controlling field's name, option value) when revealed

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-")

    @property
    def key(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def anchor(self) -> str:
        """Where the error summary links to."""
        if self.kind == "date":
            return self.id + "-day"
        if self.kind in CHOICE_KINDS:
            return self.id + "-0"
        if self.kind == "object":
            first = next(iter(walk(self.children)), None)
            return first.anchor if first else self.id
        return self.id


def walk(fields: list[Field]) -> Iterator[Field]:
    """Every field, depth first, including nested and revealed ones."""
    for f in fields:
        yield f
        yield from walk(f.children)
        for shown in f.reveal.values():
            yield from walk(shown)


def _humanise(text: str) -> str:
    text = str(text).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _options(prop: dict[str, Any]) -> list[tuple[str, str]] | None:
    if isinstance(prop.get("enum"), list):
        names = prop.get("enumNames") or prop.get("x-enumNames") or []
        return [(str(v), str(names[i]) if i < len(names) else _humanise(v))
                for i, v in enumerate(prop["enum"]) if v is not None]
    one = prop.get("oneOf") or prop.get("anyOf")
    if isinstance(one, list) and one and all(isinstance(o, dict) and "const" in o for o in one):
        return [(str(o["const"]), str(o.get("title") or _humanise(o["const"]))) for o in one]
    return None


def _types(prop: dict[str, Any]) -> set[str]:
    t = prop.get("type")
    return set(t) if isinstance(t, list) else ({t} if t else set())


def _field(name: str, prop: dict[str, Any], required: bool) -> Field:
    key = name.rsplit(".", 1)[-1]
    label = str(prop.get("title") or _humanise(key))
    f = Field(name, label, prop.get("description"), "text", required)
    types = _types(prop)
    opts = _options(prop)
    items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
    if opts is not None:
        f.kind, f.options = "radios", opts
    elif prop.get("const") is True:  # "I have checked that …": a single Yes
        f.kind, f.options = "boolean", [("true", "Yes")]
    elif types == {"boolean"} or types == {"boolean", "null"}:
        f.kind, f.options = "boolean", [("true", "Yes"), ("false", "No")]
    elif "array" in types and _options(items) is not None:
        f.kind, f.options = "checkboxes", _options(items) or []
    elif types == {"array"} and _types(items) == {"string"} and not items.get("format"):
        f.kind = "lines"
        f.hint = f"{f.hint} One a line." if f.hint else "One a line."
    elif types & {"integer", "number"} and not types & {"object", "array", "string"}:
        f.kind, f.integer = "number", "number" not in types
    elif (types == {"object"} or not types) and isinstance(prop.get("properties"), dict) and prop["properties"]:
        f.kind = "object"
        f.children = _fields(prop, prefix=name + ".")
    elif "string" in types or (not types and not prop.get("properties")):
        if prop.get("format") == "date":
            f.kind = "date"
        elif (prop.get("x-widget") == "textarea" or (prop.get("maxLength") or 0) > 200
              or LONG_TEXT.search(key)):
            f.kind = "textarea"
    else:
        f.kind = "json"
        f.hint = f"{f.hint} Enter this as JSON." if f.hint else "Enter this as JSON."
    return f


def _conditions(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's own if/then/else and those in its allOf."""
    out = [schema] if "if" in schema else []
    out += [s for s in schema.get("allOf") or [] if isinstance(s, dict) and "if" in s]
    return out


def _controller(cond: dict[str, Any]) -> tuple[str, Any] | None:
    props = (cond.get("if") or {}).get("properties") or {}
    if len(props) != 1:
        return None
    [(name, test)] = props.items()
    if not isinstance(test, dict) or "const" not in test:
        return None
    return name, test["const"]


def _shown(branch: Any) -> list[str]:
    if not isinstance(branch, dict):
        return []
    names = list(branch.get("required") or [])
    names += [n for n in (branch.get("properties") or {}) if n not in names]
    return names


def _value_text(v: Any) -> str:
    return "true" if v is True else "false" if v is False else str(v)


def _fields(schema: dict[str, Any], prefix: str = "") -> list[Field]:
    required = set(schema.get("required") or [])
    out = [_field(prefix + name, prop if isinstance(prop, dict) else {}, name in required)
           for name, prop in (schema.get("properties") or {}).items()]
    by_key = {f.key: f for f in out}
    placed: set[str] = set()
    for cond in _conditions(schema):
        ctl = _controller(cond)
        if ctl is None or ctl[0] not in by_key:
            continue
        control = by_key[ctl[0]]
        if control.kind not in ("radios", "boolean") or control.condition is not None:
            continue  # not nested inside another reveal (GOV.UK: keep conditional questions simple)
        values = [v for v, _ in control.options]
        then_value = _value_text(ctl[1])
        if then_value not in values:
            continue
        branches = [(then_value, _shown(cond.get("then")))]
        others = [v for v in values if v != then_value]
        if "else" in cond and len(others) == 1:
            branches.append((others[0], _shown(cond.get("else"))))
        for value, names in branches:
            for n in names:
                f = by_key.get(n)
                if f is None or n in placed or f is control or f.reveal:
                    continue
                placed.add(n)
                f.condition = (control.name, value)
                control.reveal.setdefault(value, []).append(f)
    return [f for f in out if f.key not in placed]


def fields_for(schema: dict[str, Any] | None) -> list[Field]:
    return _fields(schema or {})


# ---------------------------------------------------------------------- posted form → data
def read_form(fields: list[Field], form: dict[str, list[str]], *, keep_invalid: bool = False
              ) -> tuple[dict[str, Any], dict[str, str]]:
    """The posted form → (data for the engine, local errors by field name). Sets each field's shown value.

    With `keep_invalid` (a draft), what could not be converted is kept as typed instead of an error."""
    errors: dict[str, str] = {}

    def one(key: str) -> str:
        vals = form.get(key) or [""]
        return vals[-1]

    def chosen(f: Field) -> str:
        return one(f.name)

    def read(group: list[Field], nested: bool) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in group:
            read_one(f, data, nested)
            for value, shown in f.reveal.items():
                sub = read(shown, nested)
                if chosen(f) == value:  # answers under an option that is not chosen are not sent
                    data.update(sub)
                else:  # ...but a question the schema always requires goes as empty, for the schema to judge
                    for h in shown:
                        if h.required and h.key not in data and h.kind in _EMPTY:
                            data[h.key] = _EMPTY[h.kind]()
        return data

    def read_one(f: Field, data: dict[str, Any], nested: bool) -> None:
        key = f.key
        if f.kind == "object":
            sub = read(f.children, True)
            if sub or f.required or (f.condition is not None and chosen_of(f.condition[0]) == f.condition[1]):
                data[key] = _complete(f.children, sub) if sub else sub
        elif f.kind == "date":
            parts = {p: one(f"{f.name}-{p}").strip() for p in ("day", "month", "year")}
            f.value = parts
            if not any(parts.values()):
                return
            try:
                d = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
                if len(parts["year"]) != 4:
                    raise ValueError
                data[key] = d.isoformat()
            except ValueError:
                if keep_invalid:
                    data[key] = parts
                else:
                    errors[f.name] = f"{f.label} must be a real date, for example 27 3 2031"
        elif f.kind == "checkboxes":
            f.value = [v for v in form.get(f.name, []) if v]
            if f.value or f.required:
                # a browser sends nothing for no box ticked: a required list goes as [] and the schema
                # decides whether none is an answer ("leave empty when none") or an error (minItems)
                data[key] = f.value
        elif f.kind == "boolean":
            f.value = one(f.name)
            if f.value in ("true", "false"):
                data[key] = f.value == "true"
        elif f.kind == "number":
            f.value = one(f.name).strip()
            if f.value:
                try:
                    num = float(f.value.replace(",", ""))
                    data[key] = int(num) if f.integer and num.is_integer() else num
                    if f.integer and not num.is_integer():
                        errors[f.name] = f"{f.label} must be a whole number"
                except ValueError:
                    if keep_invalid:
                        data[key] = f.value
                    else:
                        errors[f.name] = f"{f.label} must be a number"
        elif f.kind == "lines":
            f.value = one(f.name)
            items = [line.strip() for line in f.value.splitlines() if line.strip()]
            if items:
                data[key] = items
        elif f.kind == "json":
            f.value = one(f.name)
            if f.value.strip():
                try:
                    data[key] = json.loads(f.value)
                except ValueError:
                    if keep_invalid:
                        data[key] = f.value
                    else:
                        errors[f.name] = f"{f.label} must be valid JSON"
        else:  # text, textarea, radios
            f.value = one(f.name)
            if f.value.strip():
                data[key] = f.value if f.kind == "textarea" else f.value.strip()

    def chosen_of(name: str) -> str:
        return one(name)

    data = read(fields, False)
    return data, errors


_EMPTY = {"text": str, "textarea": str, "checkboxes": list, "lines": list}


def _complete(children: list[Field], sub: dict[str, Any]) -> dict[str, Any]:
    """A nested object someone started: its required free-text and checkbox answers left empty are sent
    as "" / [] (the schema decides whether empty is allowed), so the errors name the right sub-field."""
    out = dict(sub)
    for c in children:
        if c.required and c.key not in out and c.condition is None:
            if c.kind in ("text", "textarea"):
                out[c.key] = ""
            elif c.kind == "checkboxes":
                out[c.key] = []
    return out


# ---------------------------------------------------------------------- engine errors → fields
def _required_message(f: Field) -> str:
    verb = "Select" if f.kind in CHOICE_KINDS else "Enter"
    if f.kind == "object":
        verb = "Answer the questions about"
    what = f.label[:1].lower() + f.label[1:]
    return f"{verb} {what}"


def engine_errors(fields: list[Field], errors: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """The engine's ValidationError list → (message by field name, messages for the whole form).

    An error's path (`carer/name`) goes to that sub-field, or to the nearest field above it."""
    by_name = {f.name: f for f in walk(fields)}
    out: dict[str, str] = {}
    general: list[str] = []
    for e in errors:
        path = str(e.get("field") or "")
        parts = [p for p in path.split("/") if p]
        f = None
        while parts and f is None:
            f = by_name.get(".".join(parts))
            if f is None:
                parts.pop()
        msg = str(e.get("message") or "is not valid")
        if f is None:
            general.append(f"{path + ': ' if path else ''}{msg}")
            continue
        if f.name in out:
            continue
        if msg == f"'{f.key}' is required" and path.replace("/", ".") == f.name:
            out[f.name] = _required_message(f)
        elif f.kind in ("text", "textarea") and msg.startswith("''") and ("too short" in msg or "non-empty" in msg):
            out[f.name] = _required_message(f)
        elif f.kind == "checkboxes" and ("is too short" in msg or "should be non-empty" in msg):
            out[f.name] = f"Select at least one: {f.label[:1].lower() + f.label[1:]}"
        else:
            out[f.name] = f"{f.label}: {msg}"
    return out, general


def set_errors(fields: list[Field], messages: dict[str, str]) -> list[dict[str, str]]:
    """Put each message on its field; the error summary's entries, in the order the fields show."""
    summary = []
    for f in walk(fields):
        f.error = messages.get(f.name)
        if f.error:
            summary.append({"text": f.error, "href": "#" + f.anchor})
    return summary


# ---------------------------------------------------------------------- saved values → form
def fill(fields: list[Field], data: dict[str, Any] | None) -> None:
    """Show saved values (a draft) on a fresh form."""
    data = data if isinstance(data, dict) else {}
    for f in fields:
        v = data.get(f.key)
        if f.kind == "object":
            fill(f.children, v if isinstance(v, dict) else {})
        for shown in f.reveal.values():
            fill(shown, data)
        if f.kind == "object":
            continue
        if v is None:
            empty: Any = [] if f.kind == "checkboxes" else ""
            f.value = {"day": "", "month": "", "year": ""} if f.kind == "date" else empty
            continue
        if f.kind == "date":
            if isinstance(v, dict):
                f.value = {p: str(v.get(p) or "") for p in ("day", "month", "year")}
                continue
            try:
                d = date.fromisoformat(str(v))
                f.value = {"day": str(d.day), "month": str(d.month), "year": str(d.year)}
            except ValueError:
                f.value = {"day": "", "month": "", "year": ""}
        elif f.kind == "checkboxes":
            f.value = [str(x) for x in v] if isinstance(v, list) else []
        elif f.kind == "boolean":
            f.value = "true" if v is True else "false" if v is False else ""
        elif f.kind == "lines":
            f.value = "\n".join(str(x) for x in v) if isinstance(v, list) else str(v)
        elif f.kind == "json":
            f.value = v if isinstance(v, str) else json.dumps(v, indent=2)
        else:
            f.value = _value_text(v) if f.kind == "radios" else str(v)
