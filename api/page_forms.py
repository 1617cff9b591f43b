"""Task forms as HTML: a JSON Schema's properties become GOV.UK form fields (docs/security.md, "Pages").

* string → text input; string with format date → day/month/year date input;
  long text (maxLength over 200, or `"x-widget": "textarea"`, or a notes-like name) → textarea
* enum (or oneOf of consts) → radios; boolean → Yes/No radios; array of enums → checkboxes
* integer / number → text input with inputmode numeric
* object with properties → a fieldset of its own fields (recursively, any depth); HTML names are
  dotted paths (`carer.name`), ids hyphenated (`f-carer-name`)
* array of strings → a textarea, one item a line
* array of objects with properties → a repeating group (GOV.UK "add another" pattern, no JavaScript
  needed): each item a fieldset "Outcome 1", "Outcome 2"… of its own fields (names `outcomes.0.label`),
  a hidden `outcomes-count`, an "Add another outcome" button (`action=add:outcomes`) and a "Remove"
  button per item (`action=remove:outcomes:1`, 0-based) that re-render the page keeping what was typed.
  At least `minItems` (or 1) items show, never more than `maxItems` (or MAX_ITEMS)
* anything else (arrays of arrays, of numbers, of objects without properties, tuple `items`,
  objects without properties) → a JSON textarea
* `if: {properties: {X: {const: V}}}, then: {required: [...]}` (top level, or in `allOf`), with an
  optional `else` when X is Yes/No or has two options → the `then` fields are shown under option
  V of X with GOV.UK conditional reveal (and the `else` fields under the other option). Without
  JavaScript they are always shown. The JSON Schema still decides what is valid; answers to
  fields under an option that is not chosen are not sent.

Labels come from "title" (or the property name), hints from "description". A question the schema
does not always require is labelled "(optional)", unless it has `"x-optional": false`: required
in some cases that another question decides (the financial assessment's amounts, required for a
full assessment, chosen in another section), where "(optional)" would be untrue. The posted form
is turned back into data for the engine, which validates it against the same schema; only what
the browser cannot send as JSON (a real date, a number, JSON text) is checked here first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from engine.forms import money_name

from .inputs import is_whole

# An amount of money as a person types it (after any "£"): digits, commas only between groups of
# three, and a point with pence; a minus sign is let through so that the question's own minimum
# names what is wrong ("must be £0.00 or more"). ASCII digits only.
_MONEY_TYPED = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|-?\.[0-9]+")

MAX_ITEMS = 50  # the most items a repeating group shows or reads, whatever maxItems says
LONG_TEXT = re.compile(r"(notes|details|description|summary|comments|reason|narrative|what_happened)$")
CHOICE_KINDS = ("radios", "boolean", "checkboxes")


@dataclass
class Field:
    name: str  # dotted path: "carer.name"
    label: str
    hint: str | None
    kind: str  # text, textarea, date, radios, boolean, checkboxes, number, json, lines, object, group
    required: bool
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    integer: bool = False
    money: bool = False  # "x-money": pounds and pence; a leading "£" is allowed
    value: Any = None  # what to show: str, list[str], or {"day","month","year"}
    error: str | None = None
    children: list[Field] = field(default_factory=list)  # kind == "object"; a group's items (objects)
    reveal: dict[str, list[Field]] = field(default_factory=dict)  # option value → fields shown under it
    condition: tuple[str, str] | None = None  # (controlling field's name, option value) when revealed
    # repeating groups (kind == "group")
    item_schema: dict[str, Any] = field(default_factory=dict)
    noun: str = ""  # "Outcome": items are "Outcome 1", "Outcome 2"…
    min_items: int = 1  # how many items always show
    max_items: int = MAX_ITEMS
    positions: list[int] | None = None  # data index → item shown, after read_form dropped empty items
    typed: list[dict[str, Any]] = field(default_factory=list)  # every item as read, empty ones too
    context: str | None = None  # inside a group: the item ("Outcome 2"), named in error messages
    autofocus: bool = False
    required_message: str | None = None  # "x-requiredMessage": what to say when it is not answered
    prefill: str | None = None  # "x-prefill": the name of what suggests an answer (api/prefill.py)
    optional_label: bool = True  # "(optional)" after the label when not required; "x-optional": false: never
    decide_each: dict[str, Any] | None = None  # "x-decideEach": one item per thing decided before (api/prefill.py)
    fixed: bool = False  # a group whose items are given (no "Add another", no "Remove")
    summary: list[tuple[str, str]] = field(default_factory=list)  # an item's read-only facts, shown above it
    types: set[str] = field(default_factory=set)  # the JSON types the schema allows ("string", "array"…)

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
        if self.kind in ("object", "group"):
            first = next((f for f in walk(self.children) if f.kind not in ("object", "group")), None)
            return first.anchor if first else self.id
        return self.id

    @property
    def noun_lower(self) -> str:
        return _lower_first(self.noun)

    @property
    def can_add(self) -> bool:
        return len(self.children) < self.max_items

    @property
    def can_remove(self) -> bool:
        return len(self.children) > self.min_items


def walk(fields: list[Field]) -> Iterator[Field]:
    """Every field, depth first, including nested and revealed ones."""
    for f in fields:
        yield f
        yield from walk(f.children)
        for shown in f.reveal.values():
            yield from walk(shown)


def _lower_first(text: str) -> str:
    """'Enter how…' → 'enter how…', but 'NHS number' stays."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _singular(key: str) -> str:
    word = _humanise(key)
    for plural, single in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh")):
        if word.endswith(plural):
            return word[: -len(plural)] + single
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


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
    if isinstance(prop.get("x-requiredMessage"), str):
        f.required_message = prop["x-requiredMessage"]
    if isinstance(prop.get("x-prefill"), str):
        f.prefill = prop["x-prefill"]
    if prop.get("x-optional") is False:
        f.optional_label = False
    if isinstance(prop.get("x-decideEach"), dict):
        f.decide_each = prop["x-decideEach"]
    types = _types(prop)
    f.types = types
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
    elif (types == {"array"} and _types(items) <= {"object"} and isinstance(items.get("properties"), dict)
          and items["properties"]):
        f.kind, f.item_schema = "group", items
        f.noun = str(items.get("title") or _singular(key))
        f.max_items = min(_count(prop.get("maxItems"), MAX_ITEMS), MAX_ITEMS)
        f.min_items = max(1, min(_count(prop.get("minItems"), 1), f.max_items))
        set_items(f, [{}] * f.min_items)
    elif types == {"array"} and _types(items) == {"string"} and not items.get("format"):
        f.kind = "lines"
        f.hint = f"{f.hint} One a line." if f.hint else "One a line."
    elif types & {"integer", "number"} and not types & {"object", "array", "string"}:
        f.kind, f.integer = "number", "number" not in types
        f.money = prop.get("x-money") is True
    elif (types == {"object"} or not types) and isinstance(prop.get("properties"), dict) and prop["properties"]:
        f.kind = "object"
        f.children = _fields(prop, prefix=name + ".")
        short = prop.get("x-shortTitle")
        if isinstance(short, str) or "." in name:
            # an object inside an object (one of several alike, each outcome of an assessment): its
            # questions' errors say which one ("Personal hygiene: select whether …")
            _contextualise(f.children, short if isinstance(short, str) else label)
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


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def set_items(group: Field, values: list[dict[str, Any]]) -> None:
    """Give a repeating group one item per value (at least min_items, at most max_items), each filled in."""
    values = list(values[: group.max_items])
    values += [{}] * (group.min_items - len(values))
    group.children = []
    for i, v in enumerate(values):
        item = Field(f"{group.name}.{i}", f"{group.noun} {i + 1}", None, "object", False,
                     context=group.context)
        item.children = _fields(group.item_schema, prefix=item.name + ".")
        _contextualise(item.children, f"{group.context}: {item.label}" if group.context else item.label)
        fill(item.children, v)
        group.children.append(item)
    group.positions = None
    group.typed = list(values)


def _contextualise(fields: list[Field], context: str) -> None:
    for f in fields:
        f.context = context
        if f.kind == "group":
            set_items(f, f.typed)  # its items name both: "Outcome 2: Step 1"
            continue
        _contextualise(f.children, context)
        for shown in f.reveal.values():
            _contextualise(shown, context)


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
        if f.kind == "group":
            count = len(f.children) if f.fixed else _posted_count(f, form)
            if count != len(f.children):
                set_items(f, [{}] * count)
            typed, kept, positions = [], [], []
            for i, item in enumerate(f.children):
                sub = read(item.children, True)
                typed.append(sub)
                if not _blank(sub):  # an item left completely empty is dropped
                    kept.append(_complete(item.children, sub))
                    positions.append(i)
            f.typed, f.positions = typed, positions
            if kept or f.required:  # none, but required: [] for the schema to judge (minItems)
                data[key] = kept
        elif f.kind == "object":
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
                    typed = f.value.removeprefix("£").strip() if f.money else f.value
                    if not _MONEY_TYPED.fullmatch(typed):
                        # float() also takes "1_000", "１２", "£1,2,3" (read as 123), "nan" and "inf", and
                        # removing commas read "1,5" hours as 15: a number, like an amount of money, is
                        # digits, commas only between thousands, and a point
                        raise ValueError(typed)
                    num = float(typed.replace(",", ""))
                    data[key] = int(num) if f.integer and num.is_integer() else num
                    if f.integer and not num.is_integer():
                        errors[f.name] = f"{f.label} must be a whole number"
                except ValueError:
                    if keep_invalid:
                        data[key] = f.value
                    else:
                        errors[f.name] = (f"{money_name(f.label)} must be an amount of money, like 12.50"
                                          if f.money else f"{f.label} must be a number")
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


_EMPTY = {"text": str, "textarea": str, "checkboxes": list, "lines": list, "group": list}


def _blank(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_blank(v) for v in value.values())
    if isinstance(value, list):
        return all(_blank(v) for v in value)
    return value is None or (isinstance(value, str) and not value.strip())


def _posted_count(group: Field, form: dict[str, list[str]]) -> int:
    """How many items the page showed: its hidden count, else the highest item index posted."""
    raw = (form.get(group.name + "-count") or [""])[-1].strip()
    if is_whole(raw) and len(raw) < 6:
        count = int(raw)
    else:
        prefix = group.name + "."
        indices = [int(k[len(prefix):].split(".", 1)[0].split("-", 1)[0]) for k in form if k.startswith(prefix)
                   and is_whole(k[len(prefix):].split(".", 1)[0].split("-", 1)[0])]
        count = max(indices, default=-1) + 1
    return max(group.min_items, min(count, group.max_items))


def change_items(fields: list[Field], action: str) -> str | None:
    """An "Add another" (`add:NAME`) or "Remove" (`remove:NAME:INDEX`) button, after read_form read what was
    typed: the group gets one item more or less, and the field to carry on from gets `autofocus`.
    Returns what is wrong with the action, or None."""
    verb, _, rest = action.partition(":")
    name, index = (rest.rpartition(":")[0], rest.rpartition(":")[2]) if verb == "remove" else (rest, "")
    group = next((f for f in walk(fields) if f.name == name and f.kind == "group"), None)
    if group is None or group.fixed:
        return f"This form has no list called “{name[:80]}” to add to or remove from"
    values = list(group.typed) or [{} for _ in group.children]
    if verb == "add":
        if len(values) >= group.max_items:
            return f"{group.label}: you can add at most {group.max_items}"
        set_items(group, values + [{}])
        focus = group.children[-1]
    else:
        if not is_whole(index) or int(index) >= len(values):
            return f"{group.label}: there is no {group.noun_lower} {index[:10]} to remove"
        del values[int(index)]
        set_items(group, values)
        focus = group.children[min(int(index), len(group.children) - 1)]
    first = next((f for f in walk(focus.children) if f.kind not in ("object", "group")), None)
    if first is not None:
        first.autofocus = True
    return None


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
    if f.required_message:
        return f.required_message
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
        parts = _shown_path(by_name, [p for p in path.split("/") if p])
        shown = ".".join(parts)
        f = None
        while parts and f is None:
            f = by_name.get(".".join(parts))
            if f is None:
                parts.pop()
        msg = str(e.get("message") or "is not valid")
        if f is None:
            general.append(f"{path + ': ' if path else ''}{msg}")
            continue
        if f.name in out or hidden(by_name, f):
            continue  # a question not shown (under an option not chosen) is not the user's to answer
        if f.kind == "group" and (msg == f"'{f.key}' is required" or "is too short" in msg
                                  or "should be non-empty" in msg):
            out[f.name] = (f"Enter at least one {f.noun_lower}" if f.min_items <= 1
                           else f"Enter at least {f.min_items}: {_lower_first(f.label)}")
        elif msg == f"'{f.key}' is required" and shown == f.name:
            out[f.name] = _required_message(f)
        elif f.kind in ("text", "textarea") and msg.startswith("''") and ("too short" in msg or "non-empty" in msg):
            out[f.name] = _required_message(f)
        elif f.kind == "checkboxes" and ("is too short" in msg or "should be non-empty" in msg):
            out[f.name] = f.required_message or f"Select at least one: {f.label[:1].lower() + f.label[1:]}"
        elif _names_question(f, msg):
            out[f.name] = msg  # the message already names the question ("Full name must only contain…")
        else:
            out[f.name] = f"{f.label}: {msg}"
    return out, general


def _names_question(f: Field, msg: str) -> bool:
    """Whether an engine message already names the question: "Full name must…", "Enter savings in pounds…"
    (a money question is named without its "(pounds)")."""
    said = msg.casefold()
    names = {f.label.casefold(), money_name(f.label).casefold(), f.label.casefold().rstrip("?")}  # a question
    return any(said.startswith(n) or said.startswith("enter " + n) for n in names if n)


def hidden(by_name: dict[str, Field], f: Field) -> bool:
    """Whether a field is inside a conditional reveal whose option is not chosen (checked up its parents)."""
    parts = f.name.split(".")
    for i in range(len(parts), 0, -1):
        g = by_name.get(".".join(parts[:i]))
        if g is not None and g.condition is not None:
            control = by_name.get(g.condition[0])
            if control is not None and (control.value or "") != g.condition[1]:
                return True
    return False


def _shown_path(by_name: dict[str, Field], parts: list[str]) -> list[str]:
    """`outcomes/1/how_met` is the data's second item: the item shown may be a later one (empty ones dropped)."""
    out: list[str] = []
    for p in parts:
        group = by_name.get(".".join(out))
        if group is not None and group.kind == "group" and is_whole(p) and group.positions is not None:
            i = int(p)
            p = str(group.positions[i]) if i < len(group.positions) else p
        out.append(p)
    return out


def set_errors(fields: list[Field], messages: dict[str, str]) -> list[dict[str, str]]:
    """Put each message on its field; the error summary's entries, in the order the fields show.
    A field inside a repeating group's item says which item: "Outcome 2: enter how it will be met"."""
    summary = []
    said: set[str] = set()
    for f in walk(fields):
        f.error = messages.get(f.name)
        if f.error and f.context and not f.error.startswith(f.context + ":"):
            f.error = f"{f.context}: {_lower_first(f.error)}"
        if f.error and f.error not in said:  # the same sentence twice helps nobody
            said.add(f.error)
            summary.append({"text": f.error, "href": "#" + f.anchor})
    return summary


# ---------------------------------------------------------------------- saved values → form
def fill(fields: list[Field], data: dict[str, Any] | None) -> None:
    """Show saved values (a draft) on a fresh form."""
    data = data if isinstance(data, dict) else {}
    for f in fields:
        v = data.get(f.key)
        if f.kind == "group":
            if isinstance(v, str):  # a draft saved when this was a JSON text box
                try:
                    v = json.loads(v)
                except ValueError:
                    v = None
            set_items(f, [x if isinstance(x, dict) else {} for x in v] if isinstance(v, list) else [])
        if f.kind == "object":
            fill(f.children, v if isinstance(v, dict) else {})
        for shown in f.reveal.values():
            fill(shown, data)
        if f.kind in ("object", "group"):
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
        elif f.kind == "number" and f.money and isinstance(v, (int, float)) and not isinstance(v, bool):
            f.value = f"{v:.2f}"  # pounds and pence: 1234.50, not 1234.5
        elif f.kind == "number" and isinstance(v, float) and v.is_integer():
            f.value = str(int(v))  # 12, as typed, not 12.0
        elif f.kind in ("text", "textarea"):
            f.value = as_text(v, lines=f.kind == "textarea")
        else:
            f.value = _value_text(v) if f.kind == "radios" else str(v)


def as_text(v: Any, *, lines: bool = False) -> str:
    """A saved value shown in a text box as the case record shows it, never Python's spelling of it: a list
    (an address kept as lines) "22 Elm Road, Northby" (one a line in a text area), an object its values,
    Yes/No, a whole number without ".0". A string as it is."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "Yes" if v else "No"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return ("\n" if lines else ", ").join(t for t in (as_text(x) for x in v) if t.strip())
    if isinstance(v, dict):
        return ", ".join(t for t in (as_text(x) for x in v.values() if x is not None) if t.strip())
    return "" if v is None else str(v)


_JSON_TYPES = ((bool, "boolean"), (str, "string"), (int, "integer"), (float, "number"), (list, "array"),
               (dict, "object"))


def _json_type(v: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(v, kind)), "null")


def keep_unedited(fields: list[Field], data: dict[str, Any], draft: Any) -> None:
    """A text box filled in from a saved value that is not text (an address kept as a list of lines, shown as
    "22 Elm Road, Northby") and sent back unchanged keeps the saved value, where the question allows its type:
    a form filled in from the case record does not change the record's details the worker did not touch."""
    if not isinstance(draft, dict):
        return
    for f in walk(fields):
        if f.kind not in ("text", "textarea"):
            continue
        saved = get_path(draft, f.name)
        if saved is None or isinstance(saved, str) or _json_type(saved) not in f.types:
            continue
        parent = data
        *path, key = f.name.split(".")
        for part in path:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(key), str) and \
                " ".join(parent[key].split()) == " ".join(as_text(saved, lines=f.kind == "textarea").split()):
            parent[key] = saved


# ---------------------------------------------------------------------- long forms: sections ("x-sections")
@dataclass
class Section:
    id: str
    title: str
    description: str | None
    paths: list[str]  # top-level properties, or "object.property" for an object split over sections
    fields: list[Field]  # what its page shows (a question revealed by another in the section is under it)
    status: str = "Not started"  # Not started, In progress, Completed
    messages: dict[str, str] = field(default_factory=dict)


def sections_for(fields: list[Field], declared: list[dict[str, Any]]) -> list[Section]:
    """The form's fields grouped by its `x-sections` (engine/forms.py checks the declaration)."""
    by_name = {f.name: f for f in walk(fields)}
    out = []
    for sec in declared:
        paths = [str(p) for p in sec.get("fields") or []]
        shown = []
        for p in paths:
            f = by_name.get(p)
            if f is None:
                continue
            if f.condition is not None and f.condition[0] in paths:
                continue  # shown under the question that reveals it
            shown.append(f)
        out.append(Section(str(sec["id"]), str(sec["title"]), sec.get("description"), paths, shown))
    return out


def get_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def read_section(section: Section, form: dict[str, list[str]], draft: dict[str, Any] | None, *,
                 keep_invalid: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The saved answers with this section's page posted over them: (answers, local errors by field name).
    What the section's questions no longer hold (a reveal whose option was unchosen) is removed."""
    out = json.loads(json.dumps(draft if isinstance(draft, dict) else {}))
    errors: dict[str, str] = {}
    for f in section.fields:
        sub, errs = read_form([f], form, keep_invalid=keep_invalid)
        errors.update(errs)
        parent_path = f.name.rpartition(".")[0]
        parent = out
        for part in [p for p in parent_path.split(".") if p]:
            nxt = parent.get(part)
            if not isinstance(nxt, dict):
                nxt = parent[part] = {}
            parent = nxt
        for g in [f, *[x for shown in f.reveal.values() for x in shown]]:
            parent.pop(g.key, None)
        parent.update(sub)
    return out, errors


def for_checking(sections: list[Section], answers: dict[str, Any]) -> dict[str, Any]:
    """The answers as submitted: an object split over sections is there (maybe empty), so a section not
    started is reported by its own questions, not as one error on the whole object."""
    out = json.loads(json.dumps(answers if isinstance(answers, dict) else {}))
    for sec in sections:
        for p in sec.paths:
            if "." in p:
                top = p.split(".", 1)[0]
                if not isinstance(out.get(top), dict):
                    out[top] = {}
        for f in sec.fields:  # an object's questions are named one by one ("Nutrition: select whether …")
            if f.kind == "object" and f.condition is None:
                parent = get_path(out, f.name.rpartition(".")[0]) if "." in f.name else out
                if isinstance(parent, dict) and not isinstance(parent.get(f.key), dict):
                    parent[f.key] = {}
    return out


def in_section(section: Section, name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in section.paths)


def section_statuses(sections: list[Section], answers: dict[str, Any], messages: dict[str, str]) -> None:
    """Not started (nothing answered), In progress (answered, something missing or wrong) or Completed."""
    for sec in sections:
        sec.messages = {n: m for n, m in messages.items() if in_section(sec, n)}
        answered = any(not _blank(get_path(answers, p)) for p in sec.paths)
        sec.status = "Not started" if not answered else "In progress" if sec.messages else "Completed"


def _shown_value(f: Field) -> str:
    v = f.value
    if f.kind == "date":
        try:
            d = date(int(v["year"]), int(v["month"]), int(v["day"]))
            return f"{d.day} {d.strftime('%B %Y')}"
        except (TypeError, ValueError, KeyError):
            return " ".join(str(x) for x in (v or {}).values() if x)
    labels = dict(f.options)
    if f.kind == "checkboxes":
        return ", ".join(labels.get(x, x) for x in v or []) or "None"
    if f.kind in ("radios", "boolean"):
        return labels.get(v or "", "") if v != "false" or f.kind != "boolean" else "No"
    if f.money and v not in (None, ""):
        try:  # to the penny with its pound sign, as the letters show it: £1,000.50
            return f"£{Decimal(str(v)):,.2f}"
        except ArithmeticError:
            return str(v)
    return str(v or "")


def answer_rows(fields: list[Field], href: str) -> list[dict[str, str]]:
    """A check-answers summary: each question shown (not those under an option not chosen) and its answer,
    with where to change it (`href` + the question's anchor)."""
    by_name = {f.name: f for f in walk(fields)}
    rows = []
    for f in walk(fields):
        if f.kind in ("object", "group") or hidden(by_name, f):
            continue
        label = f"{f.context}: {_lower_first(f.label)}" if f.context else f.label
        rows.append({"key": label, "value": _shown_value(f) or "Not answered", "href": f"{href}#{f.anchor}",
                     "id": f.id})
    return rows
