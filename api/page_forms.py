"""Task forms as HTML: a JSON Schema's top-level properties become GOV.UK form fields.

* string → text input; string with format date → day/month/year date input;
  long text (maxLength over 200, or `"x-widget": "textarea"`, or a notes-like name) → textarea
* enum (or oneOf of consts) → radios; boolean → Yes/No radios; array of enums → checkboxes
* integer / number → text input with inputmode numeric
* anything else (objects, arrays of objects) → a JSON textarea (a gap: docs/security.md, "Pages")

Labels come from "title" (or the property name), hints from "description". The posted form
is turned back into data for the engine, which validates it against the same schema; only what
the browser cannot send as JSON (a real date, a number, JSON text) is checked here first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

LONG_TEXT = re.compile(r"(notes|details|description|summary|comments|reason|narrative|what_happened)$")


@dataclass
class Field:
    name: str
    label: str
    hint: str | None
    kind: str  # text, textarea, date, radios, boolean, checkboxes, number, json
    required: bool
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    integer: bool = False
    value: Any = None  # what to show: str, list[str], or {"day","month","year"}
    error: str | None = None

    @property
    def id(self) -> str:
        return "f-" + self.name


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


def fields_for(schema: dict[str, Any] | None) -> list[Field]:
    schema = schema or {}
    required = set(schema.get("required") or [])
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        label = str(prop.get("title") or _humanise(name))
        f = Field(name, label, prop.get("description"), "text", name in required)
        types = _types(prop)
        opts = _options(prop)
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        if opts is not None:
            f.kind, f.options = "radios", opts
        elif types == {"boolean"} or types == {"boolean", "null"}:
            f.kind, f.options = "boolean", [("true", "Yes"), ("false", "No")]
        elif "array" in types and _options(items) is not None:
            f.kind, f.options = "checkboxes", _options(items) or []
        elif types & {"integer", "number"} and not types & {"object", "array", "string"}:
            f.kind, f.integer = "number", "number" not in types
        elif "string" in types or (not types and not prop.get("properties")):
            if prop.get("format") == "date":
                f.kind = "date"
            elif (prop.get("x-widget") == "textarea" or (prop.get("maxLength") or 0) > 200
                  or LONG_TEXT.search(name)):
                f.kind = "textarea"
        else:
            f.kind = "json"
            if not f.hint:
                f.hint = "Enter this as JSON."
            else:
                f.hint = f"{f.hint} Enter this as JSON."
        out.append(f)
    return out


def read_form(fields: list[Field], form: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The posted form → (data for the engine, local errors by field). Sets each field's shown value."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def one(key: str) -> str:
        vals = form.get(key) or [""]
        return vals[-1]

    for f in fields:
        if f.kind == "date":
            parts = {p: one(f"{f.name}-{p}").strip() for p in ("day", "month", "year")}
            f.value = parts
            if not any(parts.values()):
                continue
            try:
                d = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
                if len(parts["year"]) != 4:
                    raise ValueError
                data[f.name] = d.isoformat()
            except ValueError:
                errors[f.name] = f"{f.label} must be a real date, for example 27 3 2031"
        elif f.kind == "checkboxes":
            f.value = [v for v in form.get(f.name, []) if v]
            if f.value:
                data[f.name] = f.value
        elif f.kind == "boolean":
            f.value = one(f.name)
            if f.value in ("true", "false"):
                data[f.name] = f.value == "true"
        elif f.kind == "number":
            f.value = one(f.name).strip()
            if f.value:
                try:
                    num = float(f.value.replace(",", ""))
                    data[f.name] = int(num) if f.integer and num.is_integer() else num
                    if f.integer and not num.is_integer():
                        errors[f.name] = f"{f.label} must be a whole number"
                except ValueError:
                    errors[f.name] = f"{f.label} must be a number"
        elif f.kind == "json":
            f.value = one(f.name)
            if f.value.strip():
                try:
                    data[f.name] = json.loads(f.value)
                except ValueError:
                    errors[f.name] = f"{f.label} must be valid JSON"
        else:  # text, textarea, radios
            f.value = one(f.name)
            if f.value.strip():
                data[f.name] = f.value if f.kind == "textarea" else f.value.strip()
    return data, errors


def engine_errors(fields: list[Field], errors: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """The engine's ValidationError list → (message by field name, messages for the whole form)."""
    by_name = {f.name: f for f in fields}
    out: dict[str, str] = {}
    general: list[str] = []
    for e in errors:
        path = str(e.get("field") or "")
        top = path.split("/")[0]
        f = by_name.get(top)
        msg = str(e.get("message") or "is not valid")
        if f is None:
            general.append(f"{path + ': ' if path else ''}{msg}")
            continue
        if top in out:
            continue
        if msg == f"'{top}' is required":
            verb = "Select" if f.kind in ("radios", "boolean", "checkboxes") else "Enter"
            what = f.label[:1].lower() + f.label[1:]
            out[top] = f"{verb} {what}"
        else:
            out[top] = f"{f.label}: {msg}"
    return out, general


def fill(fields: list[Field], data: dict[str, Any] | None) -> None:
    """Show saved values (a draft) on a fresh form."""
    for f in fields:
        v = (data or {}).get(f.name)
        if v is None:
            empty: Any = [] if f.kind == "checkboxes" else ""
            f.value = {"day": "", "month": "", "year": ""} if f.kind == "date" else empty
            continue
        if f.kind == "date":
            try:
                d = date.fromisoformat(str(v))
                f.value = {"day": str(d.day), "month": str(d.month), "year": str(d.year)}
            except ValueError:
                f.value = {"day": "", "month": "", "year": ""}
        elif f.kind == "checkboxes":
            f.value = [str(x) for x in v] if isinstance(v, list) else []
        elif f.kind == "boolean":
            f.value = "true" if v is True else "false" if v is False else ""
        elif f.kind == "json":
            f.value = json.dumps(v, indent=2)
        else:
            f.value = str(v)
