"""Case records: opened only by those allowed (api/access.py), every opening logged.

Reading: the record (details, co-ordinating worker, plan and budget), the chronology, notes,
letters, and each process's diagram and position. Writing: case notes (append-only), corrections
to the person's details with a reason, and the co-ordinating worker (team managers only).
The pages (api/case_pages.py) call the same functions, so a page can never do more than the API.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import insert, select

from engine.clock import as_utc
from engine.errors import ConflictError, NotFoundError, ValidationError
from engine.schema import case_notes, documents, users
from handlers import people
from handlers.pension_age import age_on

from . import break_glass
from . import case_record as cr
from .access import RESTRICTED, can_open_case, case_exists, log_access, refusal, restriction
from .auth import OVERSIGHT_ROLES, WORKER_ROLES, User, current_user, get_engine, json_set
from .inputs import Id

router = APIRouter(prefix="/api/cases")
CHRONOLOGY_PAGE = 25
NOTE_MAX = 5000
REASON_MAX = 500
DETAIL_MAX = 500


# ---------------------------------------------------------------------- who may
def open_case(engine: Any, user: User, case_id: int, action: str) -> Any:
    """404 for an unknown case, and for a restricted one this user is not named on (the same answer, logged as
    refused); 403 (logged as refused) when this user may not open it; else log the opening.

    A read of the record (`break_glass.READS`) of a restricted case by someone not named on it is allowed while
    they have a break-glass use of it running (api/break_glass.py): logged with the use's id as its reason, and
    that use returned (None for every other opening)."""
    case_exists(engine, case_id)
    ok, reason = can_open_case(engine, user, case_id)
    if not ok:
        glass = break_glass.reading_use(engine, user, case_id, action) if reason == RESTRICTED else None
        if glass is None:
            log_access(engine, case_id, user, f"refused:{action}")
            raise refusal(case_id, reason)
        log_access(engine, case_id, user, action, reason=f"break glass {glass.id}")
        return glass
    log_access(engine, case_id, user, action)
    return None


def refuse_role(engine: Any, user: User, case_id: int, action: str, message: str) -> Exception:
    """A refusal for the user's role on a case that exists, logged: the 404 of an unknown case when the case is
    restricted and the user not named on it (its existence is not disclosed), else a 403 with `message`."""
    case_exists(engine, case_id)
    log_access(engine, case_id, user, f"refused:{action}")
    with engine.db.engine.connect() as conn:
        allowed = restriction(conn, case_id)
    return refusal(case_id, RESTRICTED if allowed is not None and user.username not in allowed else message)




def may_write(user: User) -> bool:
    """Adding notes and correcting details: casework roles (auditors only read)."""
    return user.is_worker


def may_set_coordinator(user: User) -> bool:
    return user.has("team_manager")


def _writer(engine: Any, user: User, case_id: int, action: str) -> None:
    """May open the case (logged) and does casework; auditors and others get 403 (logged as refused)."""
    if not may_write(user):
        raise refuse_role(engine, user, case_id, action,
                          "your role may read case records but not change them" if user.has(*OVERSIGHT_ROLES)
                          else "your role does not change case records")
    open_case(engine, user, case_id, action)


# ---------------------------------------------------------------------- notes
def add_note(engine: Any, user: User, case_id: int, kind: str, text: str, corrects: int | None = None
             ) -> dict[str, Any]:
    """Append a case note (the table refuses UPDATE and DELETE); a correction names the note it corrects."""
    errors = note_errors(engine, case_id, kind, text, corrects)
    if errors:
        raise ValidationError(f"the note was not added: {'; '.join(e['message'] for e in errors)}", errors=errors,
                              case=case_id)
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        nid = conn.execute(insert(case_notes).values(case_id=case_id, author=user.username, at=now, kind=kind,
                                                     text=text.strip(), corrects=corrects)
                           .returning(case_notes.c.id)).scalar_one()
    return {"id": nid, "case_id": case_id, "author": user.username, "at": now, "kind": kind, "text": text.strip(),
            "corrects": corrects}


#: bidirectional embeddings, overrides and isolates: "Normal \u202egnp.exe" shows as "Normal exe.png"; a note is
#: kept for ever and goes into evidence packs and subject access exports, so it must read as it was typed
_DIRECTION_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible(text: str | None) -> str:
    """The text without white space and Unicode format characters (category Cf), which show nothing."""
    return "".join(c for c in (text or "") if not c.isspace() and unicodedata.category(c) != "Cf")


def note_errors(engine: Any, case_id: int, kind: str, text: str, corrects: int | None) -> list[dict[str, str]]:
    errors = []
    if kind not in cr.NOTE_KINDS:
        errors.append({"field": "kind", "message": "Select what kind of note this is (note, phone call, visit or "
                                                   "correction of an earlier note)"})
    if not _visible(text):  # blank, or only characters that show nothing (zero-width spaces...)
        errors.append({"field": "text", "message": "Enter the note"})
    elif any(c in _DIRECTION_CONTROLS for c in text):
        errors.append({"field": "text", "message": "The note must not contain characters that change the direction "
                                                   "of the text shown (such as U+202E): type the text as it reads"})
    elif len(text) > NOTE_MAX:
        errors.append({"field": "text", "message": f"The note must be {NOTE_MAX:,} characters or fewer "
                                                   f"(it has {len(text):,})"})
    if kind == "correction":
        if corrects is None:
            errors.append({"field": "corrects", "message": "Say which earlier note this corrects"})
        else:
            with engine.db.engine.connect() as conn:
                found = conn.execute(select(case_notes.c.id).where(case_notes.c.id == corrects,
                                                                   case_notes.c.case_id == case_id)).first()
            if found is None:
                errors.append({"field": "corrects", "message": f"There is no note {corrects} on this case to correct"})
    elif corrects is not None and kind in cr.NOTE_KINDS:
        errors.append({"field": "corrects", "message": "Only a correction of an earlier note can name a note it "
                                                       "corrects"})
    return errors


# ---------------------------------------------------------------------- correcting the person's details
_MOD11 = range(10, 1, -1)


def nhs_number_ok(value: str) -> bool:
    """10 digits whose last is the Modulus 11 check digit of the first nine."""
    if not re.fullmatch(r"[0-9]{10}", value):
        return False
    check = 11 - sum(int(d) * w for d, w in zip(value[:9], _MOD11, strict=True)) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(value[9])


def parse_detail(engine: Any, f: cr.PersonField, raw: Any, today: date) -> tuple[Any, str | None]:
    """(value to store — None removes the detail —, error message) for one detail as sent."""
    if isinstance(raw, str):
        raw = raw.strip()
    if raw in (None, "", []):
        return None, (f"Enter {f.title.lower()}" if f.kind == "text" or f.kind == "integer" or f.kind == "date"
                      else f"Select {f.title.lower()}") if f.required else None
    if f.kind == "boolean":
        if isinstance(raw, bool):
            return raw, None
        if str(raw).lower() in ("yes", "true"):
            return True, None
        if str(raw).lower() in ("no", "false"):
            return False, None
        return None, f"Select yes or no for {f.title.lower()}"
    if f.kind == "choice":
        values = [v for v, _ in f.choices]
        if str(raw) not in values:
            return None, f"Select {f.title.lower()} from the list"
        return str(raw), None
    if f.kind == "integer":
        try:
            n = int(str(raw))
        except ValueError:
            return None, f"{f.title} must be a whole number"
        if f.minimum is not None and n < f.minimum:
            return None, f"{f.title} must be {f.minimum} or more"
        if f.maximum is not None and n > f.maximum:
            return None, f"{f.title} must be {f.maximum} or less"
        return n, None
    if f.kind == "date":
        try:
            d = date.fromisoformat(str(raw))
        except ValueError:
            return None, f"{f.title} must be a real date"
        if d > today:
            return None, f"{f.title} must be in the past"
        if d.year < 1880:
            return None, f"{f.title} must be after 1880"
        return d.isoformat(), None
    if isinstance(raw, list):  # an address kept as lines
        lines = [str(x).strip() for x in raw if str(x).strip()]
        if sum(len(x) for x in lines) > DETAIL_MAX:
            return None, f"{f.title} must be {DETAIL_MAX} characters or fewer"
        return lines or None, None
    text = str(raw)
    if len(text) > DETAIL_MAX:
        return None, f"{f.title} must be {DETAIL_MAX} characters or fewer"
    if f.name in people.NAME_FIELDS:  # refused, not cleaned: hidden characters defeat the front door's search
        hidden = people.check_name(text, f.title)
        if hidden:
            return None, hidden
        text = people.nfc_name(text)
        if not text and f.required:
            return None, f"Enter {f.title.lower()}"
    if f.name == "nhs_number":
        text = re.sub(r"\s+", "", text)
        if not re.fullmatch(r"[0-9]{10}", text):
            return None, "NHS number must be 10 digits, like 485 777 3456"
        if not nhs_number_ok(text):
            return None, "NHS number is not valid: check the digits (the last one is a check digit)"
        return text, None
    if f.pattern and not re.search(f.pattern, text):
        return None, f.message or f"{f.title} is not in the right format"
    if f.name == "postcode":
        text = people.normal_postcode(text)
    elif f.name == "gp_practice_code":
        text = people.normal_gp_practice_code(text)
    return text, None


def _born(person: dict[str, Any]) -> date | None:
    """The person's date of birth when it is a real date."""
    try:
        return date.fromisoformat(str(person.get("date_of_birth") or "")[:10])
    except ValueError:
        return None


def correct_details(engine: Any, user: User, case_id: int, changes: dict[str, Any], expected: dict[str, Any],
                    reason: str) -> dict[str, Any]:
    """Correct details of the person with a reason; `expected` holds each changed detail as the user saw it.

    Raises ValidationError (field errors), ConflictError (someone changed one of these details meanwhile)."""
    fields = {f.name: f for f in cr.person_fields(engine)}
    errors = []
    if not isinstance(changes, dict) or not changes:
        raise ValidationError("nothing to change: give at least one detail in `changes`", case=case_id)
    today = engine.now().date()
    clean: dict[str, Any] = {}
    for name, raw in changes.items():
        f = fields.get(name)
        if f is None:
            errors.append({"field": f"changes/{name}", "message": f"'{name}' is not a detail of the person that can "
                                                                  f"be corrected here"})
            continue
        value, err = parse_detail(engine, f, raw, today)
        if err:
            errors.append({"field": f"changes/{name}", "message": err})
        clean[name] = value
        if name not in (expected or {}):
            errors.append({"field": f"expected/{name}", "message": f"give the value of '{name}' you saw (null if it "
                                                                   f"was blank), so a change made meanwhile is not "
                                                                   f"overwritten"})
    reason = (reason or "").strip()
    if not reason:
        errors.append({"field": "reason", "message": "Enter why you are changing this"})
    elif len(reason) > REASON_MAX:
        errors.append({"field": "reason", "message": f"The reason must be {REASON_MAX} characters or fewer"})
    data = engine.get_case(case_id)["data"]
    person = dict(people.person_of(data))  # details at the top level of data made by hand move under `person`
    if not errors and {"date_of_birth", "date_of_death"} & set(clean):
        wrong = people.death_before_birth({**person, **clean})
        if wrong:
            name = "date_of_death" if "date_of_death" in clean else "date_of_birth"
            errors.append({"field": f"changes/{name}", "message": wrong if name == "date_of_death" else
                           f"The date of birth must be on or before the date of death ({person['date_of_death']})"})
    born = _born({**person, **clean})
    if not errors and "age" in clean and "date_of_birth" not in clean and born is not None:
        errors.append({"field": "changes/age", "message": f"The age is worked out from the date of birth "
                                                         f"({cr.long_day(born)}): correct the date of birth instead"})
    if errors:
        raise ValidationError(f"nothing was changed: {'; '.join(e['message'] for e in errors)}", errors=errors,
                              case=case_id)
    for name in clean:
        if person.get(name) != expected.get(name):
            title = fields[name].title
            raise ConflictError(f"someone else changed {title.lower()} since you opened the record (it is now "
                                f"{cr.show_value(fields[name], person.get(name)) or 'blank'}); nothing was saved",
                                case=case_id, field=name)
    new = dict(person)
    for name, value in clean.items():
        if value is None:
            new.pop(name, None)
        else:
            new[name] = value
    if "date_of_birth" in clean and born is not None:
        # the age follows the date of birth (on the engine's clock), as the contact and the hospital referral
        # work it out: screening, the hospital follow-up (65 or over) and charging read it
        new["age"] = age_on(born, engine.now().astimezone(cr.UK).date())
    if new == person:
        return engine.get_case(case_id)
    try:
        return engine.update_case_record(case_id, {"person": new}, actor=user.username, reason=reason,
                                         expected={"person": data.get("person")})
    except ConflictError:
        raise ConflictError("someone else changed the person's details at the same moment; nothing was saved",
                            case=case_id) from None


def casework_users(engine: Any) -> list[dict[str, str]]:
    """Active users with a casework role: who may be a co-ordinating worker."""

    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(users.c.username, users.c.display_name, users.c.roles)
                            .where(users.c.active.is_(True)).order_by(users.c.display_name)).all()
    out = []
    for r in rows:
        roles = json_set(r.roles)
        if roles & WORKER_ROLES:
            out.append({"username": r.username, "display_name": r.display_name,
                        "roles": ", ".join(cr.humanise(x) for x in sorted(roles & WORKER_ROLES))})
    return out


def display_name(engine: Any, username: str) -> str:
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(users.c.display_name).where(users.c.username == username)).first()
    return row.display_name if row is not None else username


def coordinator_check(engine: Any, user: User, case_id: int) -> None:
    """Who may set the co-ordinating worker: a team manager who may open the case (logged either way)."""
    if not may_set_coordinator(user):
        raise refuse_role(engine, user, case_id, "coordinator", "only a team manager can set the co-ordinating worker")
    open_case(engine, user, case_id, "coordinator")


def set_coordinator(engine: Any, user: User, case_id: int, username: str | None, expected: str | None,
                    reason: str = "") -> dict[str, Any]:
    """A team manager names (or removes, with None) the case's co-ordinating worker."""
    coordinator_check(engine, user, case_id)
    if username is not None and username not in {u["username"] for u in casework_users(engine)}:
        raise ValidationError(f"'{username}' is not an active casework user", case=case_id,
                              errors=[{"field": "username", "message": "Select a casework user from the list"}])
    if len(reason or "") > REASON_MAX:
        raise ValidationError("the reason is too long", case=case_id,
                              errors=[{"field": "reason", "message": f"The reason must be {REASON_MAX} characters or "
                                                                     f"fewer"}])
    current = engine.get_case(case_id)["data"].get("coordinating_worker")
    if current != expected:
        shown = display_name(engine, current) if isinstance(current, str) else cr.show_value(None, current)
        raise ConflictError("someone else changed the co-ordinating worker since you opened the record "
                            f"(it is now {shown or 'nobody'}); nothing was saved", case=case_id)
    if current == username:
        return engine.get_case(case_id)
    try:
        return engine.update_case_record(case_id, {"coordinating_worker": username}, actor=user.username,
                                         reason=(reason or "").strip(), expected={"coordinating_worker": expected})
    except ConflictError:
        raise ConflictError("someone else changed the co-ordinating worker at the same moment; nothing was saved",
                            case=case_id) from None


def coordinator_view(rec: cr.Loaded) -> dict[str, Any] | None:
    value = rec.case["data"].get("coordinating_worker")
    if not value:
        return None
    if isinstance(value, str):
        return {"username": value, "name": rec.who(value)}
    if isinstance(value, dict):
        return {"username": value.get("username"), "name": cr.show_value(None, value)}
    return {"username": None, "name": str(value)}


def document(engine: Any, case_id: int, doc_id: int) -> dict[str, Any]:
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(documents).where(documents.c.id == doc_id, documents.c.case_id == case_id)).first()
    if row is None:
        raise NotFoundError(f"case {case_id} has no letter {doc_id}", case=case_id, document=doc_id)
    return dict(row._mapping, created_at=as_utc(row.created_at))


# ---------------------------------------------------------------------- JSON routes
Who = Annotated[User, Depends(current_user)]
Eng = Annotated[Any, Depends(get_engine)]


@router.get("/{case_id}")
def get_case(case_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    glass = open_case(engine, user, case_id, "open")
    case = engine.get_case(case_id)
    # break-glass access reads the record, not the work: no tasks (api/break_glass.py)
    open_tasks = [] if glass is not None else engine.list_tasks(case_id=case_id)
    for t in open_tasks:
        t.pop("draft", None)
    docs = [{k: v for k, v in d.items() if k != "body"} for d in engine.documents(case_id)]
    with engine.db.engine.connect() as conn:
        restricted = restriction(conn, case_id) is not None
    return {**case, "restricted": restricted, "tasks": open_tasks, "documents": docs,
            "break_glass": break_glass_shown(engine, case_id)}


def break_glass_shown(engine: Any, case_id: int) -> list[dict[str, Any]]:
    """The case's break-glass uses as the record shows them to whoever opens it (who, when, why, until when)."""
    return [{k: u[k] for k in ("username", "display_name", "reason", "at", "expires_at", "active")}
            for u in break_glass.on_case(engine, case_id)]


@router.get("/{case_id}/history")
def get_history(case_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    if not user.has(*OVERSIGHT_ROLES):  # refused, and logged as refused, as every other case route is
        raise refuse_role(engine, user, case_id, "history", "only auditors and team managers read a case's history")
    open_case(engine, user, case_id, "history")
    return {"case_id": case_id, "events": engine.history(case_id)}


@router.get("/{case_id}/record")
def get_record(case_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    """The person's details, co-ordinating worker, plan and budget, and where each process stands."""
    glass = open_case(engine, user, case_id, "record")
    writes = may_write(user) and glass is None  # break-glass access only reads (api/break_glass.py)
    rec = cr.load(engine, case_id)
    return {"id": case_id, "reference": rec.case["reference"], "title": rec.case["title"],
            "person": {r["name"]: r["value"] for r in cr.person_rows(engine, rec.person) if r["value"] is not None},
            "coordinating_worker": coordinator_view(rec), **cr.plan_and_budget(rec),
            "processes": [{k: v for k, v in p.items()} for p in cr.positions(rec)],
            "may": {"add_notes": writes, "correct_details": writes,
                    "set_coordinating_worker": may_set_coordinator(user) and glass is None},
            "break_glass": break_glass_shown(engine, case_id),
            "your_break_glass_until": None if glass is None else as_utc(glass.expires_at)}


@router.get("/{case_id}/chronology")
def get_chronology(case_id: Id, user: Who, engine: Eng,
                   page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> dict[str, Any]:
    open_case(engine, user, case_id, "chronology")
    entries = cr.chronology(cr.load(engine, case_id))
    pages = max(1, -(-len(entries) // CHRONOLOGY_PAGE))
    chunk = entries[(page - 1) * CHRONOLOGY_PAGE: page * CHRONOLOGY_PAGE]
    return {"case_id": case_id, "page": page, "pages": pages, "total": len(entries),
            "entries": [{k: v for k, v in e.items() if k != "when"} for e in chunk]}


class NoteIn(BaseModel):
    kind: str = Field(max_length=32)
    text: str = Field(max_length=NOTE_MAX * 2)
    corrects: Id | None = None


@router.get("/{case_id}/notes")
def get_notes(case_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    open_case(engine, user, case_id, "notes")
    rec = cr.load(engine, case_id, with_history=False)
    return {"case_id": case_id, "notes": rec.notes}


@router.post("/{case_id}/notes", status_code=201)
def post_note(case_id: Id, body: NoteIn, user: Who, engine: Eng) -> dict[str, Any]:
    _writer(engine, user, case_id, "note")
    return add_note(engine, user, case_id, body.kind, body.text, body.corrects)


class DetailsIn(BaseModel):
    changes: dict[str, Any]
    expected: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(default="", max_length=REASON_MAX * 2)


@router.post("/{case_id}/details")
def post_details(case_id: Id, body: DetailsIn, user: Who, engine: Eng) -> dict[str, Any]:
    _writer(engine, user, case_id, "correct")
    case = correct_details(engine, user, case_id, body.changes, body.expected, body.reason)
    return {"id": case_id, "person": people.person_of(case["data"])}


class CoordinatorIn(BaseModel):
    username: str | None = Field(default=None, max_length=64)
    expected: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=REASON_MAX * 2)


@router.put("/{case_id}/coordinating-worker")
def put_coordinator(case_id: Id, body: CoordinatorIn, user: Who, engine: Eng) -> dict[str, Any]:
    case = set_coordinator(engine, user, case_id, body.username, body.expected, body.reason)
    return {"id": case_id, "coordinating_worker": case["data"].get("coordinating_worker")}


@router.get("/{case_id}/letters/{doc_id}")
def get_letter(case_id: Id, doc_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    open_case(engine, user, case_id, "letter")
    return document(engine, case_id, doc_id)


@router.get("/{case_id}/instances/{instance_id}/diagram")
def get_diagram(case_id: Id, instance_id: Id, user: Who, engine: Eng) -> Response:
    """The BPMN XML of the version this instance runs on (for the viewer on the case page)."""
    open_case(engine, user, case_id, "diagram")
    xml, _pid = cr.diagram_xml(engine, case_id, instance_id)
    return Response(xml, media_type="application/xml", headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox"})


@router.get("/{case_id}/instances/{instance_id}/position")
def get_position(case_id: Id, instance_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    open_case(engine, user, case_id, "position")
    rec = cr.load(engine, case_id)
    found = [p for p in cr.positions(rec) if p["instance_id"] == instance_id]
    if not found:
        raise NotFoundError(f"case {case_id} has no process instance {instance_id}", case=case_id,
                            instance=instance_id)
    return found[0]
