"""Finding the person once: candidates from the people table, ranked, each with why it matched.

The front door (api/intake.py) asks two questions of the people on existing cases:

* *Find a person* (`mode="find"`): every word typed of a name must match a name part of the
  person (the same, its start, the same sound, or a spelling one or two keystrokes away), and every
  other term typed (date of birth, NHS number, postcode or its first part) must be the person's.
* *Is this person already known?* (`mode="intake"`): anyone whose name matches, or whose NHS number
  is the one typed, or who was born on the date typed and either lives at the postcode typed or has
  a name part that matches. A *possible duplicate* is the same NHS number, the name and date of
  birth, or the date of birth, postcode and a family name that sounds alike.

Candidates come from indexes (handlers/people.py keeps `people` and `person_name_keys` in step with
every case): the Metaphone and NYSIIS keys of each name part, the part itself and its first letters,
the date of birth, the postcode and the NHS number. At most `CANDIDATES` by name are scored; the
scoring compares words with rapidfuzz (Damerau-Levenshtein, so a swapped pair of letters is one
slip) and the keys with jellyfish's encoders. Given and family names may be typed either way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein
from sqlalchemy import and_, func, or_, select

from engine.schema import cases, instances, people, person_name_keys
from handlers.people import fold, name_parts, nfc_name, sound_keys

CANDIDATES = 400  # people by name scored at most (the most name parts matched first)
SPELT_LIKE = 0.75  # Damerau-Levenshtein similarity from which a word is a slip of another
OPEN_STATUSES = ("running", "waiting", "error")

# what each kind of word match is worth (0..1) and how it reads
SAME, STARTS, SOUNDS, SPELT, INITIAL = "same", "starts", "sounds", "spelt", "initial"
_WORTH = {SAME: 1.0, SOUNDS: 0.85, STARTS: 0.8, SPELT: 0.75, INITIAL: 0.5}


@dataclass
class Query:
    """What was typed, ready to compare: folded name words (the last is the family name) and exact terms."""

    name: str = ""
    date_of_birth: str = ""
    nhs_number: str = ""
    postcode: str = ""  # upper case without spaces; a first part ("NB4") when short
    words: list[tuple[str, str, str]] = field(default_factory=list)  # (folded, as typed, given|family)

    @classmethod
    def of(cls, name: str, date_of_birth: str = "", nhs_number: str = "", postcode: str = "") -> Query:
        q = cls(nfc_name(name or ""), date_of_birth or "", nhs_number or "", (postcode or "").replace(" ", "").upper())
        given, family = name_parts(q.name)
        shown = _display_parts(q.name)
        roles = ["given"] * len(given) + ["family"] * len(family)
        q.words = [(w, shown[i] if i < len(shown) else w, roles[i]) for i, w in enumerate(given + family)]
        return q

    @property
    def full_postcode(self) -> bool:
        return len(self.postcode) >= 5


@dataclass
class WordMatch:
    kind: str
    typed: str
    found: str  # the person's word, as recorded
    part: str  # the person's given | family
    typed_part: str
    worth: float


def _display_parts(name: str) -> list[str]:
    """The words of a name as written, split where `name_parts` splits them (hyphens too)."""
    import re

    out = []
    for w in nfc_name(name).split():
        out.extend(x for x in re.split(r"[-\u2010\u2011]", w) if fold(x))
    return out


def compare_words(typed: str, found: str) -> tuple[str, float] | None:
    """How a typed (folded) word matches one of the person's (folded) words, or None."""
    if not typed or not found:
        return None
    if typed == found:
        return SAME, _WORTH[SAME]
    if len(typed) == 1:
        return (INITIAL, _WORTH[INITIAL]) if found.startswith(typed) else None
    best: tuple[str, float] | None = None
    if found.startswith(typed):
        best = (STARTS, _WORTH[STARTS])
    t_keys, f_keys = sound_keys(typed), sound_keys(found)
    if (t_keys[0] and t_keys[0] == f_keys[0]) or (t_keys[1] and t_keys[1] == f_keys[1]):
        if best is None or _WORTH[SOUNDS] > best[1]:
            best = (SOUNDS, _WORTH[SOUNDS])
    if len(typed) >= 4 and len(found) >= 4:
        sim = DamerauLevenshtein.normalized_similarity(typed, found)
        if sim >= SPELT_LIKE:
            worth = _WORTH[SPELT] * sim
            if best is None or worth > best[1]:
                best = (SPELT, worth)
    return best


def match_name(q: Query, parts: list[tuple[str, str, str]]) -> list[WordMatch | None]:
    """Each typed word's best match among the person's words (folded, as recorded, given|family),
    each of the person's words used once; None where a typed word matches nothing."""
    pairs = []
    for i, (typed, _shown, _role) in enumerate(q.words):
        for j, (found, _rec, _part) in enumerate(parts):
            m = compare_words(typed, found)
            if m is not None:
                # prefer a word in the same role (a typed family name to the family name)
                same_role = q.words[i][2] == parts[j][2]
                pairs.append((m[1] + (0.01 if same_role else 0.0), i, j, m[0], m[1]))
    pairs.sort(key=lambda p: -p[0])
    out: list[WordMatch | None] = [None] * len(q.words)
    used: set[int] = set()
    for _rank, i, j, kind, worth in pairs:
        if out[i] is not None or j in used:
            continue
        used.add(j)
        out[i] = WordMatch(kind, q.words[i][1], parts[j][1], parts[j][2], q.words[i][2], worth)
    return out


def _why_names(matches: list[WordMatch | None]) -> list[str]:
    found = [m for m in matches if m is not None]
    if not found:
        return []
    if all(m.kind == SAME for m in found) and len(found) == len(matches):
        out = ["same name"]
    else:
        out = []
        for part in ("family", "given"):
            for m in (x for x in found if x.part == part):
                label = "family name" if part == "family" else "given name"
                if m.kind == SAME:
                    out.append(f"same {label} “{m.found}”")
                elif m.kind == SOUNDS:
                    out.append(f"{label} “{m.found}” sounds like “{m.typed}”")
                elif m.kind == STARTS:
                    out.append(f"{label} “{m.found}” starts with “{m.typed}”")
                elif m.kind == SPELT:
                    out.append(f"{label} “{m.found}” is spelt like “{m.typed}”")
                else:
                    out.append(f"{label} “{m.found}” starts with the initial {m.typed.upper()}")
    if any(m.part != m.typed_part for m in found) and any(m.typed_part == "family" for m in found):
        out.append("given and family names typed the other way round")
    return out


# ---------------------------------------------------------------------- candidates from the indexes
def _prefix(column: Any, text: str, dialect: str) -> Any:
    # GLOB reads SQLite's (binary) index; LIKE with varchar_pattern_ops reads PostgreSQL's. Folded words
    # and postcodes hold no wildcard characters.
    if dialect == "sqlite":
        return column.op("GLOB")(text + "*")
    return column.like(text + "%")


def _by_name(conn: Any, q: Query, hidden: list[int], dialect: str) -> list[int]:
    conds = []
    metas, nysiis, words = set(), set(), set()
    for typed, _shown, _role in q.words:
        words.add(typed)
        if len(typed) >= 2:
            m, n = sound_keys(typed)
            metas.add(m)
            nysiis.add(n)
            conds.append(_prefix(person_name_keys.c.word, typed, dialect))
            if len(typed) >= 4:  # a slip after the first three letters is still found
                conds.append(_prefix(person_name_keys.c.word, typed[:3], dialect))
        else:
            conds.append(_prefix(person_name_keys.c.word, typed, dialect))
    conds += [person_name_keys.c.word.in_(sorted(words))]
    if metas:
        conds.append(person_name_keys.c.metaphone.in_(sorted(metas)))
    if nysiis:
        conds.append(person_name_keys.c.nysiis.in_(sorted(nysiis)))
    hits = func.count(func.distinct(person_name_keys.c.position)).label("hits")
    stmt = (select(person_name_keys.c.case_id, hits).where(or_(*conds))
            .group_by(person_name_keys.c.case_id).order_by(hits.desc(), person_name_keys.c.case_id.desc())
            .limit(CANDIDATES))
    if hidden:
        stmt = stmt.where(person_name_keys.c.case_id.not_in(hidden))
    return [r.case_id for r in conn.execute(stmt)]


def _by_terms(conn: Any, q: Query, hidden: list[int], dialect: str, *, mode: str) -> list[int]:
    """People with the NHS number, or (intake) born on the date typed, or (find) the terms typed."""
    if mode == "find":
        conds = []
        if q.date_of_birth:
            conds.append(people.c.date_of_birth == q.date_of_birth)
        if q.nhs_number:
            conds.append(people.c.nhs_number == q.nhs_number)
        if q.postcode:
            conds.append(people.c.postcode == q.postcode if q.full_postcode
                         else _prefix(people.c.postcode, q.postcode, dialect))
        if not conds:
            return []
        where = and_(*conds)
    else:
        conds = []
        if q.nhs_number:
            conds.append(people.c.nhs_number == q.nhs_number)
        if q.date_of_birth:
            conds.append(people.c.date_of_birth == q.date_of_birth)
        if not conds:
            return []
        where = or_(*conds)
    stmt = select(people.c.case_id).where(where).order_by(people.c.case_id.desc()).limit(CANDIDATES)
    if hidden:
        stmt = stmt.where(people.c.case_id.not_in(hidden))
    return [r.case_id for r in conn.execute(stmt)]


# ---------------------------------------------------------------------- scoring
def _score(q: Query, row: Any, parts: list[tuple[str, str, str]], mode: str) -> dict[str, Any] | None:
    matches = match_name(q, parts) if q.words else []
    name_all = bool(q.words) and all(m is not None for m in matches)
    name_any = any(m is not None for m in matches)
    nhs_same = bool(q.nhs_number) and row.nhs_number == q.nhs_number
    dob_same = bool(q.date_of_birth) and row.date_of_birth == q.date_of_birth
    pc = row.postcode or ""
    pc_same = bool(q.postcode) and (pc == q.postcode if q.full_postcode else pc.startswith(q.postcode))
    family_alike = any(m is not None and m.part == "family" and m.kind in (SAME, SOUNDS, SPELT) for m in matches)
    if mode == "find":
        if (q.words and not name_all) or (q.date_of_birth and not dob_same) or (q.nhs_number and not nhs_same) \
                or (q.postcode and not pc_same):
            return None
        duplicate = False
    else:
        if not (name_all or nhs_same or (dob_same and (pc_same or name_any))):
            return None
        duplicate = nhs_same or (name_all and dob_same) or (dob_same and pc_same and family_alike)
    name_score = (sum(m.worth for m in matches if m is not None) / len(matches)) if matches else 0.0
    score = (100 * nhs_same + 40 * dob_same + (20 if pc_same and q.full_postcode else 8 if pc_same else 0)
             + 50 * name_score)
    why = []
    if nhs_same:
        why.append("same NHS number")
    same = [w for w, ok in (("date of birth", dob_same), ("postcode", pc_same and q.full_postcode)) if ok]
    if same:
        why.append("same " + " and ".join(same))
    if pc_same and not q.full_postcode:
        why.append(f"postcode starts {q.postcode}")
    why += _why_names(matches)
    return {"score": round(score, 2), "why": why, "possible_duplicate": duplicate}


def search(conn: Any, q: Query, hidden: list[int], *, mode: str = "find", limit: int = 50) -> list[dict[str, Any]]:
    """Ranked candidates (best first): case id, the person's details, whether the case is open, the score,
    why it matched (a list of phrases) and whether it is a possible duplicate (intake only)."""
    dialect = conn.dialect.name
    ids: list[int] = []
    if q.words:
        ids += _by_name(conn, q, hidden, dialect)
    if mode == "intake" or not q.words:
        ids += _by_terms(conn, q, hidden, dialect, mode=mode)
    ids = list(dict.fromkeys(ids))
    if not ids:
        return []
    found = (select(people, cases.c.reference).join(cases, cases.c.id == people.c.case_id)
             .where(people.c.case_id.in_(ids)))
    rows = {r.case_id: r for r in conn.execute(found)}
    parts: dict[int, list[tuple[str, str, str]]] = {i: [] for i in rows}
    for k in conn.execute(select(person_name_keys.c.case_id, person_name_keys.c.position, person_name_keys.c.part,
                                 person_name_keys.c.word).where(person_name_keys.c.case_id.in_(ids))
                          .order_by(person_name_keys.c.case_id, person_name_keys.c.position)):
        parts.setdefault(k.case_id, []).append((k.word, k.word, k.part))
    out = []
    for cid, row in rows.items():
        shown = _display_parts(row.name)
        own = parts.get(cid, [])
        if len(shown) == len(own):  # the person's words as recorded, for the reasons
            own = [(w, shown[i], p) for i, (w, _r, p) in enumerate(own)]
        scored = _score(q, row, own, mode)
        if scored is None:
            continue
        out.append({"case_id": cid, "reference": row.reference, "name": row.name,
                    "date_of_birth": row.date_of_birth, "postcode": show_postcode(row.postcode), **scored})
    out.sort(key=lambda r: (not r["possible_duplicate"], -r["score"], -r["case_id"]))
    out = out[:limit]
    if out:
        open_ids = set(conn.execute(select(instances.c.case_id).where(
            instances.c.case_id.in_([r["case_id"] for r in out]), instances.c.status.in_(OPEN_STATUSES))
            .distinct()).scalars())
        for r in out:
            r["open"] = r["case_id"] in open_ids
    return out


def show_postcode(value: str | None) -> str | None:
    """NB42QS -> NB4 2QS (the inward code is always the last three characters)."""
    if not value:
        return None
    return f"{value[:-3]} {value[-3:]}" if len(value) >= 5 else value


def why_text(why: list[str]) -> str:
    """The reasons as one sentence: "Same date of birth and postcode; family name “Whyte” sounds like “White”"."""
    text = "; ".join(why)
    return text[:1].upper() + text[1:]
