"""Finding the person once: candidates from the people table, ranked, each with why it matched.

The front door (api/intake.py) asks two questions of the people on existing cases:

* *Find a person* (`mode="find"`): every word typed of a name must match a name part of the
  person (the same, its start, the same sound, or a spelling one or two keystrokes away), and every
  other term typed (date of birth, NHS number, postcode or its first part) must be the person's.
* *Is this person already known?* (`mode="intake"`): anyone whose name matches, or whose NHS number
  is the one typed, or who was born on the date typed and either lives at the postcode typed or has
  a name part that matches. A *possible duplicate* is the same NHS number, the name and date of
  birth, or the date of birth, postcode and a family name that sounds alike.

Candidates come from indexes (handlers/people.py keeps `people`, `person_name_keys` and the slip
keys in step with every case): a name part may be a typed word when it has the same Metaphone or
NYSIIS key, the same first five letters (or starts with the word when it is shorter), or a slip key
in common (the strings made by deleting one of the first five letters: one letter changed, dropped,
added or two swapped there, "Lohnson" for "Johnson"); only when nobody matched every word typed, the
same first three letters (two slips in the first five). On PostgreSQL, one read of a GIN index on
each person's keys (`people.search_keys`, migration 0008) finds the people with a key of every word;
on SQLite, the indexes of `person_name_keys` and `person_name_slips`, intersected. Then the date of
birth, the postcode and the NHS number. At most `CANDIDATES` by name are scored; the scoring compares
words with rapidfuzz (Damerau-Levenshtein, so a swapped pair of letters is one slip) and the keys with
jellyfish's encoders. Given and family names may be typed either way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    func,
    intersect,
    literal_column,
    or_,
    select,
    union,
    union_all,
)

from engine.schema import cases, instances, people, person_name_keys, person_name_slips
from handlers.people import SLIP_PREFIX, fold, name_parts, nfc_name, slip_keys, sound_keys

CANDIDATES = 400  # people by name scored at most (the newest cases first)
SPELT_LIKE = 0.75  # Damerau-Levenshtein similarity from which a word is a slip of another
OPEN_STATUSES = ("running", "waiting", "error")

# what each kind of word match is worth (0..1) and how it reads
SAME, STARTS, SOUNDS, SPELT, INITIAL = "same", "starts", "sounds", "spelt", "initial"
_WORTH = {SAME: 1.0, SOUNDS: 0.85, STARTS: 0.8, SPELT: 0.75, INITIAL: 0.5}


@dataclass
class Word:
    """One word of a name: folded, as written, its role (given | family) and its sound keys."""

    folded: str
    shown: str
    role: str
    metaphone: str
    nysiis: str


@dataclass
class Query:
    """What was typed, ready to compare: the words of the name (the last is the family name) and exact terms."""

    name: str = ""
    date_of_birth: str = ""
    nhs_number: str = ""
    postcode: str = ""  # upper case without spaces; a first part ("NB4") when short
    words: list[Word] = field(default_factory=list)

    @classmethod
    def of(cls, name: str, date_of_birth: str = "", nhs_number: str = "", postcode: str = "") -> Query:
        q = cls(nfc_name(name or ""), date_of_birth or "", nhs_number or "", (postcode or "").replace(" ", "").upper())
        q.words = words_of(q.name)
        return q

    @property
    def full_postcode(self) -> bool:
        return len(self.postcode) >= 5


@dataclass
class WordMatch:
    kind: str
    worth: float
    typed: int  # index in the query's words
    found: int  # index in the person's words


def _display_parts(name: str) -> list[str]:
    """The words of a name as written, split where `name_parts` splits them (hyphens too)."""
    out = []
    for w in nfc_name(name).split():
        out.extend(x for x in re.split(r"[-\u2010\u2011]", w) if fold(x))
    return out


def words_of(name: str) -> list[Word]:
    given, family = name_parts(name)
    shown = _display_parts(name)
    out = []
    for i, (w, role) in enumerate([(g, "given") for g in given] + [(f, "family") for f in family]):
        meta, nys = sound_keys(w)
        out.append(Word(w, shown[i] if i < len(shown) else w, role, meta, nys))
    return out


def compare_words(typed: str, found: str, typed_keys: tuple[str, str] | None = None,
                  found_keys: tuple[str, str] | None = None) -> tuple[str, float] | None:
    """How a typed (folded) word matches one of the person's (folded) words, or None."""
    if not typed or not found:
        return None
    if typed == found:
        return SAME, _WORTH[SAME]
    if len(typed) == 1:
        return (INITIAL, _WORTH[INITIAL]) if found.startswith(typed) else None
    t_keys = typed_keys or sound_keys(typed)
    f_keys = found_keys or sound_keys(found)
    if (t_keys[0] and t_keys[0] == f_keys[0]) or (t_keys[1] and t_keys[1] == f_keys[1]):
        return SOUNDS, _WORTH[SOUNDS]
    best: tuple[str, float] | None = (STARTS, _WORTH[STARTS]) if found.startswith(typed) else None
    if len(typed) >= 4 and len(found) >= 4:
        sim = DamerauLevenshtein.normalized_similarity(typed, found, score_cutoff=SPELT_LIKE)
        if sim and _WORTH[SPELT] * sim > (best[1] if best else 0):
            best = (SPELT, _WORTH[SPELT] * sim)
    return best


def match_name(q: Query, parts: list[Word]) -> list[WordMatch | None]:
    """Each typed word's best match among the person's words, each of the person's words used once;
    None where a typed word matches nothing."""
    pairs = []
    for i, t in enumerate(q.words):
        for j, f in enumerate(parts):
            m = compare_words(t.folded, f.folded, (t.metaphone, t.nysiis), (f.metaphone, f.nysiis))
            if m is not None:
                # prefer a word in the same role (a typed family name to the family name)
                pairs.append((m[1] + (0.01 if t.role == f.role else 0.0), i, j, m[0], m[1]))
    pairs.sort(key=lambda p: -p[0])
    out: list[WordMatch | None] = [None] * len(q.words)
    used: set[int] = set()
    for _rank, i, j, kind, worth in pairs:
        if out[i] is not None or j in used:
            continue
        used.add(j)
        out[i] = WordMatch(kind, worth, i, j)
    return out


def _why_names(q: Query, parts: list[Word], matches: list[WordMatch | None]) -> list[str]:
    found = [m for m in matches if m is not None]
    if not found:
        return []
    if all(m.kind == SAME for m in found) and len(found) == len(matches):
        out = ["same name"]
    else:
        out = []
        for role in ("family", "given"):
            for m in (x for x in found if parts[x.found].role == role):
                label = "family name" if role == "family" else "given name"
                mine, typed = parts[m.found].shown, q.words[m.typed].shown
                if m.kind == SAME:
                    out.append(f"same {label} “{mine}”")
                elif m.kind == SOUNDS:
                    out.append(f"{label} “{mine}” sounds like “{typed}”")
                elif m.kind == STARTS:
                    out.append(f"{label} “{mine}” starts with “{typed}”")
                elif m.kind == SPELT:
                    out.append(f"{label} “{mine}” is spelt like “{typed}”")
                else:
                    out.append(f"{label} “{mine}” starts with the initial {typed.upper()}")
    if any(parts[m.found].role != q.words[m.typed].role for m in found) and \
            any(q.words[m.typed].role == "family" for m in found):
        out.append("given and family names typed the other way round")
    return out


# ---------------------------------------------------------------------- candidates from the indexes
def _prefix(column: Any, text: str, dialect: str) -> Any:
    # GLOB reads SQLite's (binary) index; LIKE with varchar_pattern_ops reads PostgreSQL's. Folded words
    # and postcodes hold no wildcard characters.
    if dialect == "sqlite":
        return column.op("GLOB")(text + "*")
    return column.like(text + "%")


def word_keys(w: Word, *, wide: bool = False) -> list[str]:
    """The keys (handlers/people.py `part_keys`) of which a person's name part has one when it may be this
    typed word: the same sound (Metaphone or NYSIIS), the same first five letters (or the whole word when
    shorter: its start, or one letter: an initial), or a slip key in common (one slip in the first five
    letters). `wide`: also the same first three letters (two slips in the first five)."""
    f = w.folded
    if len(f) < 2:
        return [f"p{f}"]
    keys = [f"m{w.metaphone}"] if w.metaphone else []
    keys += [f"n{w.nysiis}"] if w.nysiis else []
    keys += [f"p{f[:SLIP_PREFIX]}"] + [f"s{k}" for k in slip_keys(f)]
    if wide and len(f) > 3:
        keys.append(f"p{f[:3]}")
    return keys


def _word_select(w: Word, dialect: str, wide: bool) -> Any:
    """SQLite: the cases with a name part that may be this typed word (`word_keys`, from the indexes of
    person_name_keys and person_name_slips)."""
    k = person_name_keys.c
    f = w.folded
    if len(f) < 2:
        return select(k.case_id).where(_prefix(k.word, f, dialect))
    conds = [_prefix(k.word, f[:SLIP_PREFIX], dialect)]
    conds += [k.metaphone == w.metaphone] if w.metaphone else []
    conds += [k.nysiis == w.nysiis] if w.nysiis else []
    if wide and len(f) > 3:
        conds.append(_prefix(k.word, f[:3], dialect))
    found = select(k.case_id).where(or_(*conds))
    slips = slip_keys(f)
    if slips:  # SQLite: no brackets around a compound select inside another, so a subquery
        either = union(found, select(person_name_slips.c.case_id).where(person_name_slips.c.slip.in_(slips))).subquery()
        found = select(either.c.case_id)
    return found


# what the scoring reads of each person (the parts of the name and their sound keys come from the folded
# given and family names: `_parts`)
PERSON = (people.c.case_id, people.c.name, people.c.given_names, people.c.family_name, people.c.date_of_birth,
          people.c.postcode, people.c.nhs_number)


def _by_name_pg(q: Query, hidden: list[int], *, wide: bool = False) -> Any:
    """PostgreSQL: the statement for `_by_name`."""
    typed = list(dict((w.folded, w) for w in q.words).values())
    # one read of the GIN index on string_to_array(search_keys, ' ') (migration 0008): the people
    # with a key of every word typed
    keys = func.string_to_array(people.c.search_keys, literal_column("' '"))
    stmt = select(*PERSON).where(
        *[keys.op("&&")(bindparam(f"w{i}", word_keys(w, wide=wide), type_=ARRAY(Text)))
          for i, w in enumerate(typed)])
    if hidden:
        stmt = stmt.where(people.c.case_id.not_in(hidden))
    # MATERIALIZED: every match from the GIN index, then the newest; otherwise the planner may read
    # the primary key backwards, testing each of 200,000 people, to stop at the 400th newest
    found = stmt.cte("found").prefix_with("MATERIALIZED")
    return select(found).order_by(found.c.case_id.desc()).limit(CANDIDATES)


def _by_name(conn: Any, q: Query, hidden: list[int], dialect: str, *, wide: bool = False) -> list[Any]:
    """People with a name part that may be each word typed (every word), newest cases first."""
    if dialect == "postgresql":
        return conn.execute(_by_name_pg(q, hidden, wide=wide)).all()
    typed = list(dict((w.folded, w) for w in q.words).values())
    per_word = [_word_select(w, dialect, wide) for w in typed]
    both = per_word[0] if len(per_word) == 1 else intersect(*per_word)
    sub = both.subquery()
    newest = select(sub.c.case_id).distinct().order_by(sub.c.case_id.desc()).limit(CANDIDATES)
    if hidden:
        newest = newest.where(sub.c.case_id.not_in(hidden))
    # the people's rows in the same statement (no second read with a list of 400 case ids)
    return conn.execute(select(*PERSON).where(people.c.case_id.in_(newest)).order_by(people.c.case_id.desc())).all()


def _among(column: Any, ids: list[int], dialect: str) -> Any:
    """column IN ids: one array parameter on PostgreSQL (the same statement whatever the number)."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
    return column.in_(ids)


def _terms_select(q: Query, hidden: list[int], dialect: str, *, mode: str) -> Any:
    """People with the NHS number, or (intake) born on the date typed, or (find) the terms typed; None when
    no term was typed."""
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
            return None
        where = and_(*conds)
    else:
        conds = []
        if q.nhs_number:
            conds.append(people.c.nhs_number == q.nhs_number)
        if q.date_of_birth:
            conds.append(people.c.date_of_birth == q.date_of_birth)
        if not conds:
            return None
        where = or_(*conds)
    stmt = select(*PERSON).where(where).order_by(people.c.case_id.desc()).limit(CANDIDATES)
    if hidden:
        stmt = stmt.where(people.c.case_id.not_in(hidden))
    return stmt


def _candidates(conn: Any, q: Query, hidden: list[int], dialect: str, mode: str) -> dict[int, Any]:
    """The people by name and (intake, or no name typed) by the other terms, by case id. PostgreSQL: in
    one statement (one round trip fewer on a busy server)."""
    by_name = bool(q.words)
    by_terms = mode == "intake" or not q.words
    terms = _terms_select(q, hidden, dialect, mode=mode) if by_terms else None
    if dialect == "postgresql" and by_name and terms is not None:
        both = [_by_name_pg(q, hidden).subquery("by_name"), terms.subquery("by_terms")]
        return {r.case_id: r for r in conn.execute(union_all(*[select(b) for b in both]))}
    rows: dict[int, Any] = {}
    if by_name:
        rows.update((r.case_id, r) for r in _by_name(conn, q, hidden, dialect))
    if terms is not None:
        rows.update((r.case_id, r) for r in conn.execute(terms) if r.case_id not in rows)
    return rows


# ---------------------------------------------------------------------- scoring
@dataclass
class _Scored:
    case_id: int
    row: Any
    parts: list[Word]
    matches: list[WordMatch | None]
    score: float
    duplicate: bool
    nhs_same: bool
    dob_same: bool
    pc_same: bool
    name_all: bool  # every word typed of the name matched a part of the person's


def _score(q: Query, row: Any, parts: list[Word], mode: str) -> _Scored | None:
    matches = match_name(q, parts) if q.words else []
    name_all = bool(q.words) and all(m is not None for m in matches)
    name_any = any(m is not None for m in matches)
    nhs_same = bool(q.nhs_number) and row.nhs_number == q.nhs_number
    dob_same = bool(q.date_of_birth) and row.date_of_birth == q.date_of_birth
    pc = row.postcode or ""
    pc_same = bool(q.postcode) and (pc == q.postcode if q.full_postcode else pc.startswith(q.postcode))
    if mode == "find":
        if (q.words and not name_all) or (q.date_of_birth and not dob_same) or (q.nhs_number and not nhs_same) \
                or (q.postcode and not pc_same):
            return None
        duplicate = False
    else:
        if not (name_all or nhs_same or (dob_same and (pc_same or name_any))):
            return None
        family_alike = any(m is not None and parts[m.found].role == "family" and m.kind in (SAME, SOUNDS, SPELT)
                           for m in matches)
        duplicate = nhs_same or (name_all and dob_same) or (dob_same and pc_same and family_alike)
    name_score = (sum(m.worth for m in matches if m is not None) / len(matches)) if matches else 0.0
    score = (100 * nhs_same + 40 * dob_same + (20 if pc_same and q.full_postcode else 8 if pc_same else 0)
             + 50 * name_score)
    return _Scored(row.case_id, row, parts, matches, score, duplicate, nhs_same, dob_same, pc_same, name_all)


def _why(q: Query, s: _Scored) -> list[str]:
    why = []
    if s.nhs_same:
        why.append("same NHS number")
    same = [w for w, ok in (("date of birth", s.dob_same), ("postcode", s.pc_same and q.full_postcode)) if ok]
    if same:
        why.append("same " + " and ".join(same))
    if s.pc_same and not q.full_postcode:
        why.append(f"postcode starts {q.postcode}")
    shown = _display_parts(s.row.name)
    parts = s.parts
    if len(shown) == len(parts):  # the person's words as recorded
        parts = [Word(p.folded, shown[i], p.role, p.metaphone, p.nysiis) for i, p in enumerate(parts)]
    return why + _why_names(q, parts, s.matches)


@lru_cache(maxsize=20_000)
def _part_keys(word: str) -> tuple[str, str]:
    return sound_keys(word)


def _parts(row: Any) -> list[Word]:
    """The parts of a person's name, as `person_name_keys` holds them (the same folding and keys)."""
    return [Word(w, w, role, *_part_keys(w))
            for role, words in (("given", row.given_names), ("family", row.family_name)) for w in words.split()]


def _scored(q: Query, rows: list[Any], mode: str) -> list[_Scored]:
    """The people who match what was typed, scored."""
    return [s for s in (_score(q, row, _parts(row), mode) for row in rows) if s is not None]


def search(conn: Any, q: Query, hidden: list[int], *, mode: str = "find", limit: int = 50) -> list[dict[str, Any]]:
    """Ranked candidates (best first): case id, the person's details, whether the case is open, the score,
    why it matched (a list of phrases) and whether it is a possible duplicate (intake only).

    By name, the keys of `word_keys` first; only when nobody's every name part typed matched does the
    search widen to the same first three letters (two slips in a name's first five letters)."""
    dialect = conn.dialect.name
    rows = _candidates(conn, q, hidden, dialect, mode)
    scored = _scored(q, list(rows.values()), mode)
    if q.words and any(len(w.folded) > 3 for w in q.words) and not any(s.name_all for s in scored):
        scored += _scored(q, [r for r in _by_name(conn, q, hidden, dialect, wide=True) if r.case_id not in rows],
                          mode)
    scored.sort(key=lambda s: (not s.duplicate, -s.score, -s.case_id))
    scored = scored[:limit]
    if not scored:
        return []
    # the cases shown: their reference and whether a process is running on them, in one read
    running = exists().where(instances.c.case_id == cases.c.id, instances.c.status.in_(OPEN_STATUSES))
    case = {r.id: r for r in conn.execute(select(cases.c.id, cases.c.reference, running.label("open"))
                                          .where(_among(cases.c.id, [s.case_id for s in scored], dialect)))}
    return [{"case_id": s.case_id, "reference": case[s.case_id].reference, "name": s.row.name,
             "date_of_birth": s.row.date_of_birth, "postcode": show_postcode(s.row.postcode),
             "score": round(s.score, 2), "why": _why(q, s), "possible_duplicate": s.duplicate,
             "open": bool(case[s.case_id].open)} for s in scored]


def show_postcode(value: str | None) -> str | None:
    """NB42QS -> NB4 2QS (the inward code is always the last three characters)."""
    if not value:
        return None
    return f"{value[:-3]} {value[-3:]}" if len(value) >= 5 else value


def why_text(why: list[str]) -> str:
    """The reasons as one sentence: "Same date of birth and postcode; family name “Whyte” sounds like “White”"."""
    text = "; ".join(why)
    return text[:1].upper() + text[1:]
