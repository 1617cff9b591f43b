"""The front door: find a person, and record a new contact (JSON API and pages).

* Find a person (`GET /api/people`, `/people`): searches the people on existing cases (the `people`
  table, api/people.py) by name (case and accents ignored, partial, words in any order, sound-alikes
  and slips of the keys: "Kathryn White" finds "Catherine Whyte"), date of birth, NHS number (spaces
  ignored) or postcode (spaces and case ignored, a leading part such as "NB4" matches); each result
  says why it matched. Casework roles only. Names with control, zero-width or bidirectional
  characters are refused with a message naming the field.
  A restricted case is found only by the people named on it; every case shown is written to the
  case access log as action `search` (a search reveals that a record exists).
* New contact (`POST /api/contacts/search` + `POST /api/contacts`, `/contacts/new`): front door
  advisors and team managers search first; the search answers with the possible duplicates (same
  name and date of birth, or same NHS number) and a one-time intake token. The token starts the
  `front_door` process once — on a case the search showed, or on a new case titled with the
  person's name — claims its `record_contact` task for the advisor and keeps what was typed in
  the search (name, date of birth, NHS number, full postcode) as the task's draft where the case
  does not already record it. The search form comes back filled in: "Search again" names the
  search's token (`/contacts/new?again=...`, the terms stay server-side), and "Record a new contact
  with what you searched for" on Find a person passes its `q` on. Sending the same token again
  (a double click, a retried request) does not start a second process: it answers with the first
  one's task.

How the search scales, and why the tokens live in `settings`: docs/security.md, "Front door intake".
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, delete, false, func, insert, select, update
from starlette.concurrency import run_in_threadpool

from engine.errors import NotFoundError
from engine.schema import cases, person_name_keys, settings
from handlers import person_patterns
from handlers.people import check_name, name_parts, person_of

from . import page_kit
from . import people as people_search
from .access import current_page, escape_like, hidden_cases, restriction
from .auth import WORKER_ROLES, User, case_access_log, require_roles
from .cases import nhs_number_ok
from .errors import ApiError
from .inputs import Id, to_id

router = APIRouter()

INTAKE_ROLES = ("front_door_advisor", "team_manager")
SEARCH_ROLES = tuple(sorted(WORKER_ROLES))
PROCESS = "front_door"
CONTACT_TASK = "record_contact"
MAX_RESULTS = 50
OPEN_STATUSES = people_search.OPEN_STATUSES
TOKEN_PREFIX = "intake:"
TOKEN_LIFETIME = timedelta(hours=1)

_NAME_WORD = re.compile(r"^[^\W\d_]+(?:['’.-][^\W\d_]*)*\.?$")
# what the search box picks out of a query: the same patterns the simulation's anonymiser looks for
_DATE_DMY = person_patterns.DATE_DMY
_DATE_ISO = person_patterns.DATE_ISO
_NHS = person_patterns.NHS_NUMBER
_POSTCODE = person_patterns.POSTCODE
_POSTCODE_PART = person_patterns.POSTCODE_PART


# ---------------------------------------------------------------------- search terms
@dataclass
class Terms:
    name: str = ""
    date_of_birth: str = ""  # ISO
    nhs_number: str = ""  # 10 digits
    postcode: str = ""  # upper case, no spaces

    @property
    def words(self) -> list[str]:
        return [w.lower() for w in self.name.split()]

    def empty(self) -> bool:
        return not (self.name or self.date_of_birth or self.nhs_number or self.postcode)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "date_of_birth": self.date_of_birth, "nhs_number": self.nhs_number,
                "postcode": self.postcode}


@dataclass
class Problems:
    """Field errors: field name -> message (the API turns them into `errors`, the pages into a summary)."""

    by_field: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ApiError(422, "invalid", "the search is not valid: " + "; ".join(self.by_field.values()),
                           errors=[{"field": k, "message": v} for k, v in self.by_field.items()])


def clean_name(value: str, problems: Problems, field_name: str = "name", title: str = "Name") -> str:
    hidden = check_name(str(value or ""), title)
    if hidden:
        problems.add(field_name, hidden)
        return ""
    text = people_search.nfc_name(str(value or ""))
    if not text:
        return ""
    if len(text) > 100:
        problems.add(field_name, "Name must be 100 characters or fewer")
        return ""
    if not all(_NAME_WORD.match(w) for w in text.split()):
        problems.add(field_name, "Name must only include letters, spaces, hyphens and apostrophes")
        return ""
    if max(len(w.rstrip(".")) for w in text.split()) < 2:
        problems.add(field_name, "Enter at least 2 letters of a name")
        return ""
    return text


def clean_date(day: str, month: str, year: str, problems: Problems, today: date,
               field_name: str = "date_of_birth") -> str:
    parts = [str(p or "").strip() for p in (day, month, year)]
    if not any(parts):
        return ""
    try:
        if len(parts[2]) != 4:
            raise ValueError
        d = date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        problems.add(field_name, "Date of birth must be a real date, for example 27 3 1944")
        return ""
    if d > today:
        problems.add(field_name, "Date of birth must be in the past")
        return ""
    return d.isoformat()


def clean_iso_date(value: str, problems: Problems, today: date, field_name: str = "date_of_birth") -> str:
    text = str(value or "").strip()
    if not text:
        return ""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if not m:
        problems.add(field_name, "Date of birth must be a date written as YYYY-MM-DD, for example 1944-03-27")
        return ""
    return clean_date(m.group(3), m.group(2), m.group(1), problems, today, field_name)


def clean_nhs(value: str, problems: Problems, field_name: str = "nhs_number", *, check_digit: bool = False) -> str:
    digits = re.sub(r"[\s-]", "", str(value or ""))
    if not digits:
        return ""
    if not re.fullmatch(r"\d{10}", digits):
        problems.add(field_name, "NHS number must be 10 digits, for example 943 476 5919")
        return ""
    if check_digit and not nhs_number_ok(digits):
        problems.add(field_name, "NHS number is not valid: check each of the 10 digits")
        return ""
    return digits


def clean_postcode(value: str, problems: Problems, field_name: str = "postcode") -> str:
    text = re.sub(r"\s", "", str(value or "")).upper()
    if not text:
        return ""
    if not _POSTCODE_PART.match(text):
        problems.add(field_name, "Postcode must be a UK postcode or its first part, for example NB7 1AB or NB7")
        return ""
    return text


def parse_query(q: str, today: date) -> Terms:
    """One search box: dates, NHS numbers and full postcodes are picked out; the other words are a name."""
    text = " ".join(str(q or "").split())
    problems = Problems()
    if len(text) > 200:
        problems.add("q", "Search must be 200 characters or fewer")
        problems.raise_if_any()
    terms = Terms()
    m = _DATE_ISO.search(text)
    if m:
        terms.date_of_birth = clean_date(m.group(3), m.group(2), m.group(1), problems, today, "q")
    else:
        m = _DATE_DMY.search(text)
        if m:
            terms.date_of_birth = clean_date(m.group(1), m.group(2), m.group(3), problems, today, "q")
    if m:
        text = (text[:m.start()] + " " + text[m.end():]).strip()
    m = _NHS.search(text)
    if m:
        terms.nhs_number = "".join(m.groups())
        text = (text[:m.start()] + " " + text[m.end():]).strip()
    m = _POSTCODE.search(text)
    if m:
        terms.postcode = (m.group(1) + m.group(2)).upper()
        text = (text[:m.start()] + " " + text[m.end():]).strip()
    if text and not terms.postcode and _POSTCODE_PART.match(text.upper()) and any(c.isdigit() for c in text):
        terms.postcode, text = text.upper(), ""  # the first part of a postcode, e.g. "NB4"
    if text:
        terms.name = clean_name(text, Problems())
        hidden = check_name(text, "The search")
        if hidden:
            problems.add("q", hidden)
        elif not terms.name:
            problems.add("q", f"Could not understand \u201c{text[:60]}\u201d: search by name, date of birth "
                              "(for example 27 3 1944), NHS number or postcode")
    if terms.empty() and not problems.by_field:
        problems.add("q", "Enter a name, date of birth, NHS number or postcode")
    problems.raise_if_any()
    return terms


# ---------------------------------------------------------------------- the auditors' search (api/audit.py)
# By name, the auditors search the parts of the person's name as the people search keeps them
# (`person_name_keys`, handlers/people.py: accents dropped, case folded in any alphabet, apostrophes dropped,
# hyphens split; a case whose person has no name is kept under its title): every piece typed must be part of
# one of them ("brien" finds O'Brien, "łukasz", "ŁUKASZ" and "lukasz" find Łukasz, "zoe" finds Zoë).
def name_pieces(name: str) -> list[str]:
    """The folded pieces of a typed name, as `person_name_keys` holds a name's parts."""
    given, family = name_parts(name)
    return given + family


def _name_cond(name: str) -> Any:
    pieces = name_pieces(name)
    if not pieces:
        return false()
    k = person_name_keys.c
    return and_(*[cases.c.id.in_(select(k.case_id).where(k.word.like(f"%{escape_like(piece)}%", escape="\\")))
                  for piece in pieces])


def _dob_cond(dob: str) -> Any:
    return cases.c.data.like(f'%"date_of_birth": "{escape_like(dob)}"%', escape="\\")


def _nhs_cond(nhs: str) -> Any:
    return func.replace(cases.c.data, " ", "").like(f'%"nhs_number":"{escape_like(nhs)}"%', escape="\\")


def _postcode_cond(postcode: str) -> Any:
    return func.replace(func.upper(cases.c.data), " ", "").like(f'%"POSTCODE":"{escape_like(postcode)}%', escape="\\")


def _person(data: Any, title: str) -> dict[str, Any]:
    person = data.get("person") if isinstance(data, dict) else None
    person = person if isinstance(person, dict) else {}
    return {"name": str(person.get("name") or title), "date_of_birth": str(person.get("date_of_birth") or ""),
            "nhs_number": re.sub(r"\s", "", str(person.get("nhs_number") or "")),
            "postcode": str(person.get("postcode") or "")}


def _name_ok(terms: Terms, name: str) -> bool:
    """Every piece of the typed name is part of one of the name's parts (folded alike: `name_pieces`)."""
    typed, parts = name_pieces(terms.name), name_pieces(name)
    return bool(typed) and all(any(piece in part for part in parts) for piece in typed)


# ---------------------------------------------------------------------- the search itself
def find_people(engine: Any, user: User, terms: Terms, *, intake: bool = False, action: str = "search"
                ) -> list[dict[str, Any]]:
    """People on cases this user may find, ranked, each with why it matched (api/people.py). Plain
    search: every word of the name matches (the same, its start, sounds alike or a slip of the keys)
    and every other term is the person's. Intake search: also anyone with the NHS number typed, or born
    on the date typed with the postcode or a name part; `possible_duplicate` marks the same NHS number,
    the name and date of birth, or date of birth, postcode and a family name alike. Each case shown is
    written to the access log (`action`)."""
    query = people_search.Query.of(terms.name, terms.date_of_birth, terms.nhs_number, terms.postcode)
    with engine.db.engine.connect() as conn:
        hidden = hidden_cases(conn, user)
        found = people_search.search(conn, query, hidden, mode="intake" if intake else "find", limit=MAX_RESULTS)
    for f in found:
        f.pop("score", None)
    _closures(engine, found)
    if found:
        with engine.db.transaction() as conn:
            now = engine.now(conn)
            page = current_page.get()  # the page or route the search was made from
            conn.execute(insert(case_access_log), [{"case_id": f["case_id"], "user": user.username, "at": now,
                                                    "action": action, "page": page, "outcome": "allowed"}
                                                   for f in found])
    return found


def _closures(engine: Any, found: list[dict[str, Any]]) -> None:
    """Each found case closed by a manager gets `closed` (others have no such key): the day, the reason in words
    and its detail ("date of death 1 January 2027"), as the case record says it — so the advisor sees that the
    person died or moved away before recording a contact that reopens the case. Read only for the cases with
    nothing running (a closed case runs nothing), in one query."""
    from .case_actions import closure_view

    quiet = [f["case_id"] for f in found if not f.get("open")]
    closed: dict[int, Any] = {}
    if quiet:
        with engine.db.engine.connect() as conn:
            for r in conn.execute(select(cases.c.id, cases.c.data).where(cases.c.id.in_(quiet))):
                view = closure_view({"data": json.loads(r.data)})
                if view:
                    closed[r.id] = view
    for f in found:
        if f["case_id"] in closed:
            f["closed"] = closed[f["case_id"]]


# ---------------------------------------------------------------------- one-time intake tokens
def _token_key(token: str) -> str | None:
    m = re.fullmatch(r"(\d{10})\.([A-Za-z0-9_-]{20,64})", token or "")
    if not m:
        return None
    return f"{TOKEN_PREFIX}{m.group(1)}:{hashlib.sha256(m.group(2).encode()).hexdigest()[:40]}"


def issue_token(engine: Any, user: User, terms: Terms, shown: list[int]) -> str:
    """A token for one new contact, bound to this user, what they searched for and the cases shown."""
    raw = secrets.token_urlsafe(24)
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        expires = int((now + TOKEN_LIFETIME).timestamp())
        token = f"{expires:010d}.{raw}"
        # tidy: the expiry leads the key, so expired tokens sort before "intake:<now>"
        conn.execute(delete(settings).where(settings.c.key.like(f"{TOKEN_PREFIX}%"),
                                            settings.c.key < f"{TOKEN_PREFIX}{int(now.timestamp()):010d}"))
        conn.execute(insert(settings).values(key=_token_key(token), value=json.dumps(
            {"user": user.username, "terms": terms.to_dict(), "shown": shown, "state": "new"}, sort_keys=True)))
    return token


def _read_token(engine: Any, user: User, token: str) -> tuple[str, dict[str, Any], str]:
    key = _token_key(token)
    gone = ApiError(422, "invalid", "this search has expired or was not made by you: search for the person again",
                    errors=[{"field": "intake_token", "message": "Search for the person again"}])
    if key is None:
        raise gone
    with engine.db.engine.connect() as conn:
        now = engine.now(conn)
        row = conn.execute(select(settings.c.value).where(settings.c.key == key)).first()
    if row is None or int(token[:10]) <= int(now.timestamp()):
        raise gone
    payload = json.loads(row.value)
    if payload.get("user") != user.username:
        raise gone
    return key, payload, row.value


def _swap(engine: Any, key: str, old: str, new: dict[str, Any]) -> bool:
    with engine.db.transaction() as conn:
        res = conn.execute(update(settings).where(settings.c.key == key, settings.c.value == old)
                           .values(value=json.dumps(new, sort_keys=True)))
        return res.rowcount == 1


def _prefill(terms: dict[str, str], existing: dict[str, Any] | None) -> dict[str, Any]:
    """The contact form's `person`: the case's recorded details, and what was typed where nothing is recorded."""
    person = dict(existing or {})
    postcode = terms.get("postcode") or ""
    typed = {"name": terms.get("name"), "date_of_birth": terms.get("date_of_birth"),
             "nhs_number": terms.get("nhs_number"),
             "postcode": people_search.show_postcode(postcode) if len(postcode) >= 5 else None}
    for k, v in typed.items():
        if v and not person.get(k):
            person[k] = v
    return person


def closed_case_to_confirm(engine: Any, user: User, token: str, case_id: int) -> dict[str, Any] | None:
    """The closed case the advisor chose from this search, to confirm before a contact reopens it: its name,
    reference and closure as the search row showed them; None when it is open, the contact is already recorded
    (the repeat is answered as before) or the choice is not one the search showed (record_contact refuses it)."""
    from .case_actions import closure_view

    _, payload, _ = _read_token(engine, user, token)
    if payload["state"] != "new" or case_id not in payload.get("shown", []):
        return None
    with engine.db.engine.connect() as conn:
        allowed = restriction(conn, case_id)
    if allowed is not None and user.username not in allowed:
        return None
    case = engine.get_case(case_id)
    view = closure_view(case)
    if view is None:
        return None
    person = person_of(case["data"]) or {}
    return {"case_id": case_id, "reference": case["reference"],
            "name": person.get("name") or case.get("title") or case["reference"], "closed": view}


def record_contact(engine: Any, user: User, token: str, *, case_id: int | None, new_person: bool
                   ) -> dict[str, Any]:
    """Start the front door for a case the search showed (or a new person) once per token."""
    if (case_id is None) == (not new_person):
        raise ApiError(422, "invalid", "choose either a case from the search (case_id) or new_person, not both",
                       errors=[{"field": "case_id", "message": "Choose the person, or say this is a new person"}])
    key, payload, raw = _read_token(engine, user, token)
    if payload["state"] == "done":
        return {**payload["result"], "repeated": True}
    if payload["state"] == "starting":
        raise ApiError(409, "conflict", "this contact is already being recorded (the form was sent twice); "
                                        "look for it in your tasks")
    terms = payload["terms"]
    existing_person = None
    if case_id is not None:
        if case_id not in payload.get("shown", []):
            raise NotFoundError(f"case {case_id} was not among the people your search found", case=case_id)
        with engine.db.engine.connect() as conn:
            allowed = restriction(conn, case_id)
        if allowed is not None and user.username not in allowed:
            raise NotFoundError(f"case {case_id} was not among the people your search found", case=case_id)
        existing_person = person_of(engine.get_case(case_id)["data"]) or None
    elif not terms.get("name"):
        raise ApiError(422, "invalid", "a new person needs a name: search again with their full name",
                       errors=[{"field": "name", "message": "Enter the person's full name"}])
    if not _swap(engine, key, raw, {**payload, "state": "starting"}):
        return record_contact(engine, user, token, case_id=case_id, new_person=new_person)  # lost the race
    starting = json.dumps({**payload, "state": "starting"}, sort_keys=True)
    try:
        person = _prefill(terms, existing_person if isinstance(existing_person, dict) else None)
        if case_id is not None and engine.get_case(case_id)["data"].get("case_closed"):  # a new contact reopens
            engine.reopen_case(case_id, reason="new contact at the front door", actor=user.username)
        result = engine.start(PROCESS, case_id=case_id, actor=user.username,
                              title=None if case_id is not None else terms["name"])
        task = next(t for t in result.ready_tasks if t["element_id"] == CONTACT_TASK)
        engine.claim(task["id"], user.username)
        engine.save_draft(task["id"], {"person": person}, actor=user.username)
    except BaseException:
        _swap(engine, key, starting, {**payload, "state": "new"})  # let them try again
        raise
    case = engine.get_case(result.case_id)
    out = {"case_id": result.case_id, "reference": case["reference"], "instance_id": result.instance_id,
           "task_id": task["id"], "new_person": case_id is None, "repeated": False}
    _swap(engine, key, starting, {**payload, "state": "done", "result": out})
    return out


# ---------------------------------------------------------------------- JSON API
class ContactSearch(BaseModel):
    name: str = Field(default="", max_length=200)
    date_of_birth: str = Field(default="", max_length=20, description="YYYY-MM-DD")
    nhs_number: str = Field(default="", max_length=20)
    postcode: str = Field(default="", max_length=12)


class NewContact(BaseModel):
    intake_token: str = Field(min_length=1, max_length=100)
    case_id: Id | None = None
    new_person: bool = False


def _intake_terms(engine: Any, name: str, dob_iso: str | None, day: str = "", month: str = "", year: str = "",
                  nhs: str = "", postcode: str = "") -> Terms:
    problems = Problems()
    today = engine.now().date()
    terms = Terms(name=clean_name(name, problems, title="Full name"),
                  date_of_birth=(clean_iso_date(dob_iso, problems, today) if dob_iso is not None
                                 else clean_date(day, month, year, problems, today)),
                  nhs_number=clean_nhs(nhs, problems, check_digit=True),
                  postcode=clean_postcode(postcode, problems))
    if not problems.by_field and not terms.name and not terms.nhs_number:
        problems.add("name", "Enter the person's full name")
    problems.raise_if_any()
    return terms


@router.get("/api/people")
def api_people(request: Request, user: Annotated[User, Depends(require_roles(*SEARCH_ROLES))],
               q: str = "", name: str = "", date_of_birth: str = "", nhs_number: str = "",
               postcode: str = "") -> dict[str, Any]:
    engine = request.app.state.engine
    today = engine.now().date()
    if q.strip():
        terms = parse_query(q, today)
    else:
        problems = Problems()
        terms = Terms(clean_name(name, problems), clean_iso_date(date_of_birth, problems, today),
                      clean_nhs(nhs_number, problems), clean_postcode(postcode, problems))
        if not problems.by_field and terms.empty():
            problems.add("q", "Enter a name, date of birth, NHS number or postcode")
        problems.raise_if_any()
    results = find_people(engine, user, terms)
    return {"query": terms.to_dict(), "results": [{k: v for k, v in r.items() if k != "possible_duplicate"}
                                                  for r in results]}


@router.post("/api/contacts/search")
def api_contact_search(body: ContactSearch, request: Request,
                       user: Annotated[User, Depends(require_roles(*INTAKE_ROLES))]) -> dict[str, Any]:
    engine = request.app.state.engine
    terms = _intake_terms(engine, body.name, body.date_of_birth, nhs=body.nhs_number, postcode=body.postcode)
    results = find_people(engine, user, terms, intake=True)
    token = issue_token(engine, user, terms, [r["case_id"] for r in results])
    return {"query": terms.to_dict(), "results": results,
            "possible_duplicates": [r["case_id"] for r in results if r["possible_duplicate"]],
            "intake_token": token}


@router.post("/api/contacts", status_code=201)
def api_new_contact(body: NewContact, request: Request, response: Response,
                    user: Annotated[User, Depends(require_roles(*INTAKE_ROLES))]) -> dict[str, Any]:
    out = record_contact(request.app.state.engine, user, body.intake_token, case_id=body.case_id,
                         new_person=body.new_person)
    if out["repeated"]:
        response.status_code = 200
    return out


# ---------------------------------------------------------------------- pages
def _page_user(request: Request, roles: tuple[str, ...]) -> User:
    return page_kit.page_user(request, *roles, refusal="This page is for " + _role_list(roles) + ".")


def _role_list(roles: tuple[str, ...]) -> str:
    names = [r.replace("_", " ") + "s" for r in roles]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _long(iso: str | None) -> str:
    if not iso:
        return ""
    d = date.fromisoformat(iso)
    return f"{d.day} {d:%B %Y}"


def _show(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "dob_text": _long(r["date_of_birth"]), "why_text": people_search.why_text(r["why"])} for r in rows]


@router.get("/people", response_class=HTMLResponse, include_in_schema=False)
def people_page(request: Request, q: str | None = None) -> Response:
    user = None
    try:
        user = _page_user(request, SEARCH_ROLES)
        engine = request.app.state.engine
        ctx: dict[str, Any] = {"user": user, "q": q or "", "errors": [], "error": None, "results": None,
                               "contact_link": None}
        if q is not None:
            try:
                terms = parse_query(q, engine.now().date())
            except ApiError as exc:
                msg = exc.extra["errors"][0]["message"]
                return page_kit.render(request, "intake_people.html",
                                       {**ctx, "errors": [{"text": msg, "href": "#q"}], "error": msg}, 400)
            ctx["results"] = _show(find_people(engine, user, terms))
            if user.has(*INTAKE_ROLES):
                ctx["contact_link"] = contact_link(q)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page_kit.guard(request, user, exc)
    return page_kit.render(request, "intake_people.html", ctx)


def _intake_form(request: Request, user: User, values: dict[str, str], by_field: dict[str, str] | None = None,
                 status: int = 200) -> Response:
    anchors = {"name": "name", "date_of_birth": "dob-day", "nhs_number": "nhs_number", "postcode": "postcode"}
    return page_kit.render(request, "intake.html", {
        "user": user, "values": values, "field_errors": by_field or {},
        "errors": page_kit.error_summary(by_field or {}, anchors)}, status)


def _form_values(terms: dict[str, str]) -> dict[str, str]:
    """A search's terms as the search form's fields."""
    values = {"name": terms.get("name") or "", "nhs_number": terms.get("nhs_number") or "",
              "postcode": people_search.show_postcode(terms.get("postcode")) or ""}
    if terms.get("date_of_birth"):
        d = date.fromisoformat(terms["date_of_birth"])
        values.update({"dob-day": str(d.day), "dob-month": str(d.month), "dob-year": str(d.year)})
    return {k: v for k, v in values.items() if v}


def contact_link(q: str) -> str:
    """/contacts/new with the Find a person search (its text is already in that page's address)."""
    return "/contacts/new?" + urlencode({"q": q})


@router.get("/contacts/new", response_class=HTMLResponse, include_in_schema=False)
def new_contact_page(request: Request, q: str = "", again: str = "") -> Response:
    """The search form, filled with what was typed before: `again` = the intake token of the search
    being repeated (its terms are kept with the token, so no date of birth or NHS number goes into
    an address), or `q` = a Find a person search."""
    user = None
    try:
        user = _page_user(request, INTAKE_ROLES)
        engine = request.app.state.engine
        values: dict[str, str] = {}
        try:
            if again:
                values = _form_values(_read_token(engine, user, again)[1]["terms"])
            elif q.strip():
                values = _form_values(parse_query(q, engine.now().date()).to_dict())
        except ApiError:
            values = {}  # an expired search or one that cannot be read: an empty form
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc)
    return _intake_form(request, user, values)


@router.post("/contacts/new/search", response_class=HTMLResponse, include_in_schema=False)
async def new_contact_search(request: Request) -> Response:
    form = await page_kit.posted_form(request)
    user = None
    try:
        user = _page_user(request, INTAKE_ROLES)
        page_kit.check_csrf(user, form)
        engine = request.app.state.engine
        values = {k: page_kit.one(form, k)[:200] for k in ("name", "dob-day", "dob-month", "dob-year",
                                                           "nhs_number", "postcode")}
        try:
            terms = _intake_terms(engine, values["name"], None, values["dob-day"], values["dob-month"],
                                  values["dob-year"], values["nhs_number"], values["postcode"])
        except ApiError as exc:
            if exc.status != 422:
                raise
            return _intake_form(request, user, values, {e["field"]: e["message"] for e in exc.extra["errors"]}, 400)
        results = await run_in_threadpool(find_people, engine, user, terms, intake=True)
        token = await run_in_threadpool(issue_token, engine, user, terms, [r["case_id"] for r in results])
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc)
    return page_kit.render(request, "intake_results.html", {
        "user": user, "terms": terms, "dob_text": _long(terms.date_of_birth), "results": _show(results),
        "again": "/contacts/new?" + urlencode({"again": token}),
        "postcode_text": people_search.show_postcode(terms.postcode),
        "duplicates": sum(1 for r in results if r["possible_duplicate"]), "token": token})


@router.post("/contacts/new", response_class=HTMLResponse, include_in_schema=False)
async def new_contact(request: Request) -> Response:
    form = await page_kit.posted_form(request)
    user = None
    try:
        user = _page_user(request, INTAKE_ROLES)
        page_kit.check_csrf(user, form)
        raw_case = page_kit.one(form, "case_id")
        new_person = page_kit.one(form, "new_person") == "yes"
        case_id = to_id(raw_case) if not new_person else None
        if case_id is None and not new_person:
            raise ApiError(422, "invalid", "Choose the person, or say this is a new person.")
        token = page_kit.one(form, "intake_token")
        if case_id is not None and page_kit.one(form, "reopen") != "yes":
            # a closed case (the person died, moved away…) is reopened only once the advisor has said so
            closed = await run_in_threadpool(closed_case_to_confirm, request.app.state.engine, user, token, case_id)
            if closed is not None:
                return page_kit.render(request, "intake_reopen.html", {
                    "user": user, "case": closed, "token": token,
                    "again": "/contacts/new?" + urlencode({"again": token})})
        out = await run_in_threadpool(record_contact, request.app.state.engine, user,
                                      token, case_id=case_id, new_person=new_person)
    except ApiError as exc:
        if exc.status == 422:
            return page_kit.error_page(request, user, 400, "Search for the person again",
                                       exc.message[:1].upper() + exc.message[1:] + ".")
        if exc.status == 409:
            return page_kit.error_page(request, user, 409, "This contact is already being recorded",
                                       "The form was sent twice. The contact task is in your tasks.")
        return page_kit.guard(request, user, exc)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc, not_found="That person was not among your search results. "
                                                            "Search for them again.")
    return page_kit.redirect(f"/tasks/{out['task_id']}")
