"""The people table: one row per case for the person it is about, kept for the front door's search.

A case's `person` (name, date of birth, postcode, NHS number) lives in the case's JSON; searching
that JSON means reading every case. This module keeps a copy, normalised for search, in `people`
(and one row per name part with its sound-alike keys in `person_name_keys`), in the same
transaction as every change of the case's details (the engine calls `keep_in_step` through the
handlers registry: `registry.on_case_saved`). The search itself is api/people.py.

Normalising a name for search: Unicode NFKD with accents dropped, case folded, apostrophes and
full stops dropped, hyphens split ("Smith-Jones" is two parts). The last word is the family name,
the words before it the given names (the contact form has one "Full name" box). Each part gets a
Metaphone key and a NYSIIS key (jellyfish), so "Kathryn" and "Catherine" share K0RN and "White"
and "Whyte" share WT.

Names that hide something are refused rather than cleaned: control characters, zero-width and
bidirectional-override characters (Unicode categories Cc, Cf, Cs, Co, Zl, Zp) would make two
names look alike on screen while comparing different, or reorder what a worker reads.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import jellyfish
from anyascii import anyascii
from sqlalchemy import bindparam, delete, insert, select, update

from engine.errors import ValidationError
from engine.schema import cases, people, person_name_keys, person_name_slips

from . import person_patterns

HIDDEN_CATEGORIES = {"Cc": "control character", "Cf": "invisible formatting character", "Cs": "surrogate",
                     "Co": "private-use character", "Zl": "line separator", "Zp": "paragraph separator"}
_BIDI = {"\u200e", "\u200f", "\u061c", *(chr(c) for c in range(0x202A, 0x202F)),
         *(chr(c) for c in range(0x2066, 0x206A))}
_ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"}
# the person's details that are names (checked and normalised on every save), with their titles
NAME_FIELDS = ("name", "preferred_name")
NAME_TITLES = {"name": "Full name", "preferred_name": "Preferred name"}
WORD_MAX = 60
# the person's details as the contact form asks them (forms/contact.schema.json `person`), and the date of death
# recorded when a case is closed: the keys `person_of` reads at the top level of a case's data
PERSON_DETAILS = ("name", "preferred_name", "date_of_birth", "date_of_death", "age", "nhs_number", "address",
                  "postcode", "gp_practice_code", "area", "phone", "lives_alone", "has_unpaid_carer", "gender",
                  "ethnicity", "primary_support_reason", "accommodation_status", "employment_status")


def person_of(data: Any) -> dict[str, Any]:
    """The person's details a case's data holds, whatever its shape: the product keeps them under `person`
    (the front door's and the transition's case output `case:person`, a correction on the record), so that
    object when there is one. Case data made by hand, or by the demo before it was mended, may hold them at
    its top level instead ({"name": ..., "address": [...], "area": ...}): then the details found there
    (`PERSON_DETAILS`). Every reader of the person's details (the case record, the subject access export,
    the search table, letters, the case actions) reads them through here, so details held are never said to
    be "not recorded". Empty ({}) when the case names nobody."""
    if not isinstance(data, dict):
        return {}
    person = data.get("person")
    if isinstance(person, dict):
        return person
    return {k: data[k] for k in PERSON_DETAILS if k in data and data[k] not in (None, "", [])}


# ---------------------------------------------------------------------- refusing and normalising
def hidden_character(text: str) -> tuple[int, str] | None:
    """The first character that must not be in a name, with its position (1-based) and what it is."""
    for i, ch in enumerate(text, 1):
        cat = unicodedata.category(ch)
        if cat in HIDDEN_CATEGORIES or ch in _BIDI or ch in _ZERO_WIDTH:
            if ch in _BIDI:
                kind = "bidirectional control character"
            elif ch in _ZERO_WIDTH:
                kind = "zero-width character"
            else:
                kind = HIDDEN_CATEGORIES[cat]
            label = unicodedata.name(ch, "") or kind
            return i, f"{kind} U+{ord(ch):04X}" + (f" ({label.lower()})" if label != kind else "")
    return None


def check_name(value: Any, title: str, *, noun: str = "name", lines: bool = False) -> str | None:
    """A message naming the field when `value` hides characters, else None. The same rule for any free text a
    worker types that is shown back (the close page's council and note: `noun` says what to type again);
    `lines`: a text of several lines, whose line breaks and tabs are allowed."""
    if not isinstance(value, str):
        return None
    found = hidden_character(re.sub(r"[\r\n\t]", " ", value) if lines else value)
    if found is None:
        return None
    pos, what = found
    return (f"{title} must only contain characters you can see: remove the {what} at character {pos} "
            f"(it can hide or reorder letters); type the {noun} again rather than pasting it")


def nfc_name(value: str) -> str:
    """How a name is stored: Unicode NFC, single spaces, no spaces at either end."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def clean_person(person: Any, titles: dict[str, str] | None = None) -> dict[str, Any]:
    """The person's details with names in NFC; ValidationError naming each field that hides characters."""
    if not isinstance(person, dict):
        return person
    titles = titles or {}
    errors = []
    out = dict(person)
    for name in NAME_FIELDS:
        value = out.get(name)
        if not isinstance(value, str):
            continue
        message = check_name(value, titles.get(name, NAME_TITLES[name]))
        if message:
            errors.append({"field": f"person/{name}", "message": message})
        else:
            out[name] = nfc_name(value)
    if errors:
        raise ValidationError("nothing was saved: " + "; ".join(e["message"] for e in errors), errors=errors)
    return out


# A UK postcode: outward code (area letters, district digit, optional letter or digit), then inward code
# (a digit and two letters); spaces and case as typed. Format only: a postcode that does not exist passes.
POSTCODE = person_patterns.POSTCODE_FIELD
# A GP practice's ODS organisation code: one letter and five digits ("A81001").
GP_PRACTICE_CODE = re.compile(r"\s*([A-Za-z][0-9]{5})\s*")


def normal_postcode(value: Any) -> Any:
    """"nb71ab" -> "NB7 1AB" (upper case, one space before the inward code); anything else unchanged."""
    m = POSTCODE.fullmatch(value) if isinstance(value, str) else None
    return f"{m.group(1).upper()} {m.group(2).upper()}" if m else value


def normal_gp_practice_code(value: Any) -> Any:
    """" a81001 " -> "A81001"; anything else unchanged."""
    m = GP_PRACTICE_CODE.fullmatch(value) if isinstance(value, str) else None
    return m.group(1).upper() if m else value


def death_before_birth(person: dict[str, Any]) -> str | None:
    """A message when the person's date of death is before their date of birth (both YYYY-MM-DD), else None."""
    born, died = dob_key(person.get("date_of_birth")), dob_key(person.get("date_of_death"))
    if born and died and died < born:
        return f"The date of death must be on or after the date of birth ({born})"
    return None


def check_case_data(data: dict[str, Any]) -> dict[str, Any]:
    """Registry hook: every save of a case's details passes through here first (see engine registry).
    Names are checked (refused when they hide characters) and kept in NFC; a postcode and a GP practice
    code in a recognisable format are kept in one spelling ("NB7 1AB", "A81001")."""
    if isinstance(data, dict) and isinstance(data.get("person"), dict):
        person = clean_person(data["person"])
        for key, normal in (("postcode", normal_postcode), ("gp_practice_code", normal_gp_practice_code)):
            if key in person:
                person[key] = normal(person[key])
        return {**data, "person": person}
    return data


def _latin_ascii(ch: str) -> str:
    """A Latin letter that has no decomposition (Ł, Ø, Đ, ß, Æ, Œ, Þ, ı) as the ASCII letters a person
    types for it without the key ("Lukasz" for "Łukasz"); any other character as it is (a name in
    another script keeps its own letters)."""
    if ch.isascii() or not unicodedata.name(ch, "").startswith("LATIN"):
        return ch
    return anyascii(ch)


def fold(word: str) -> str:
    """A word as the search compares it: accents dropped, Latin letters without a decomposition read as
    ASCII, case folded, letters only."""
    text = unicodedata.normalize("NFKD", word)
    text = "".join(_latin_ascii(c) for c in text if not unicodedata.combining(c)).casefold()
    return re.sub(r"[^\w]|[\d_]", "", text)[:WORD_MAX]


def name_parts(name: str) -> tuple[list[str], list[str]]:
    """(given name parts, family name parts), folded. The last word is the family name."""
    words = [w for w in re.split(r"\s+", nfc_name(name or "")) if w]
    if not words:
        return [], []
    split = [[p for p in (fold(x) for x in re.split(r"[-\u2010\u2011]", w)) if p] for w in words]
    family = split[-1]
    given = [p for parts in split[:-1] for p in parts]
    return given, family


def sound_keys(part: str) -> tuple[str, str]:
    """Metaphone and NYSIIS keys of one folded name part (ASCII letters only go into the encoders)."""
    ascii_part = re.sub(r"[^a-z]", "", part)
    if not ascii_part:
        return part[:16], part[:16]  # a name in another script: the part itself is its key
    return jellyfish.metaphone(ascii_part)[:16], jellyfish.nysiis(ascii_part)[:16]


SLIP_PREFIX = 5  # the letters of a name part that its slip keys are made from
SLIP_MIN = 4  # parts shorter than this have no slip keys (api/people.py compares them by sound and start only)


def slip_keys(part: str) -> list[str]:
    """The slip keys of one folded name part: each string made by deleting one of its first five letters
    (and, for a part of four letters, the part itself). Two parts one slip apart in those letters (a
    letter changed, dropped, added or two swapped) share a key: "johnson" and "lohnson" share "ohns",
    "catherine" and "cahterine" share "cate", "smith" and "smth" share "smth". A slip after the fifth
    letter leaves the first five the same (the search reads those as a start). Parts under four
    letters: none."""
    if len(part) < SLIP_MIN:
        return []
    head = part[:SLIP_PREFIX]
    keys = {head[:i] + head[i + 1:] for i in range(len(head))}
    if len(head) == SLIP_MIN:
        keys.add(head)
    return sorted(keys)


def part_keys(word: str, metaphone: str, nysiis: str) -> list[str]:
    """One name part's search keys, each tagged by kind: m (Metaphone), n (NYSIIS), p (its first one to
    five letters), s (its slip keys)."""
    keys = [f"m{metaphone}"] if metaphone else []
    keys += [f"n{nysiis}"] if nysiis else []
    keys += [f"p{word[:i]}" for i in range(1, min(len(word), SLIP_PREFIX) + 1)]
    return keys + [f"s{k}" for k in slip_keys(word)]


def search_keys(keys: list[dict[str, Any]]) -> str:
    """`people.search_keys` for a case's `person_name_keys` rows: every part's keys, once each."""
    return " ".join(sorted({x for k in keys for x in part_keys(k["word"], k["metaphone"], k["nysiis"])}))


def slip_rows(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `person_name_slips` rows for a case's `person_name_keys` rows."""
    return [{"case_id": k["case_id"], "position": k["position"], "slip": slip}
            for k in keys for slip in slip_keys(k["word"])]


def slips_kept(conn: Any) -> bool:
    """Whether `person_name_slips` is filled: on SQLite (PostgreSQL reads `people.search_keys`)."""
    return conn.dialect.name == "sqlite"


def postcode_key(value: Any) -> str | None:
    text = re.sub(r"\s", "", str(value or "")).upper()
    return text[:8] or None


def nhs_key(value: Any) -> str | None:
    digits = re.sub(r"[\s-]", "", str(value or ""))
    return digits if re.fullmatch(r"\d{10}", digits) else None


def dob_key(value: Any) -> str | None:
    text = str(value or "")
    return text if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None


def rows_for(case_id: int, title: str, data: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The `people` row and `person_name_keys` rows for one case (None when it names nobody)."""
    person = person_of(data)
    name = person.get("name") if isinstance(person.get("name"), str) and person.get("name").strip() else title
    name = nfc_name(str(name or ""))
    given, family = name_parts(name)
    if not (given or family):
        return None, []
    row = {"case_id": case_id, "name": name[:255], "given_names": " ".join(given)[:255],
           "family_name": " ".join(family)[:255], "date_of_birth": dob_key(person.get("date_of_birth")),
           "postcode": postcode_key(person.get("postcode")), "nhs_number": nhs_key(person.get("nhs_number"))}
    keys = []
    for pos, (part, word) in enumerate([("given", w) for w in given] + [("family", w) for w in family]):
        meta, nys = sound_keys(word)
        keys.append({"case_id": case_id, "position": pos, "part": part, "word": word, "metaphone": meta,
                     "nysiis": nys})
    row["search_keys"] = search_keys(keys)
    return row, keys


def keep_in_step(conn: Any, case_id: int) -> None:
    """Registry hook: rewrite the case's people rows from what the case now holds (same transaction)."""
    case = conn.execute(select(cases.c.title, cases.c.data).where(cases.c.id == case_id)).first()
    conn.execute(delete(person_name_slips).where(person_name_slips.c.case_id == case_id))
    conn.execute(delete(person_name_keys).where(person_name_keys.c.case_id == case_id))
    conn.execute(delete(people).where(people.c.case_id == case_id))
    if case is None:
        return
    import json

    row, keys = rows_for(case_id, case.title, json.loads(case.data))
    if row is None:
        return
    conn.execute(insert(people).values(**row))
    if keys:
        conn.execute(insert(person_name_keys), keys)
    slips = slip_rows(keys) if slips_kept(conn) else []
    if slips:
        conn.execute(insert(person_name_slips), slips)


def fill(conn: Any, batch: int = 2000) -> int:
    """Write the people rows of every case (migration 0007, which adds the tables); returns how many.
    Without `search_keys` and the slip keys: migration 0008 adds them after (`fill_search_keys`)."""
    import json

    done, last = 0, 0
    while True:
        chunk = conn.execute(select(cases.c.id, cases.c.title, cases.c.data).where(cases.c.id > last)
                             .order_by(cases.c.id).limit(batch)).all()
        if not chunk:
            return done
        rows, keys = [], []
        for c in chunk:
            row, ks = rows_for(c.id, c.title, json.loads(c.data))
            if row is not None:
                row.pop("search_keys")  # not a column yet at migration 0007
                rows.append(row)
                keys.extend(ks)
        if rows:
            conn.execute(insert(people), rows)
        if keys:
            conn.execute(insert(person_name_keys), keys)
        done += len(rows)
        last = chunk[-1].id


def fill_search_keys(conn: Any, batch: int = 5000) -> int:
    """Write `people.search_keys` and (SQLite) the slip keys of every person from the name parts already
    in `person_name_keys` (migration 0008); returns how many people."""
    k = person_name_keys.c
    done, last, kept = 0, -1, slips_kept(conn)
    while True:
        ids = conn.execute(select(people.c.case_id).where(people.c.case_id > last)
                           .order_by(people.c.case_id).limit(batch)).scalars().all()
        if not ids:
            return done
        parts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for r in conn.execute(select(k.case_id, k.position, k.word, k.metaphone, k.nysiis)
                              .where(k.case_id >= ids[0], k.case_id <= ids[-1]).order_by(k.case_id, k.position)):
            parts[r.case_id].append(dict(r._mapping))
        conn.execute(update(people).where(people.c.case_id == bindparam("cid"))
                     .values(search_keys=bindparam("keys")),
                     [{"cid": i, "keys": search_keys(ps)} for i, ps in parts.items()])
        slips = [s for ps in parts.values() for s in slip_rows(ps)] if kept else []
        if slips:
            conn.execute(insert(person_name_slips), slips)
        done += len(ids)
        last = ids[-1]
