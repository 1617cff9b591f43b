"""Subject access (UK GDPR Art. 15, 20) and the rectification trail (Art. 16) of one person.

A person is the person of a case (`cases.data["person"]`, copied to the `people` table for the front
door's search). The same person may have more than one case — a new referral years later, a duplicate
the front door did not catch —, so the export covers the case asked about and every other case whose
person has the same NHS number (`person_cases`). Nothing else joins cases: two records without an NHS
number in common are treated as two people (the officer can run a second export).

For each case the export holds: the case record as kept (the person's details and everything the
processes recorded), its history in words (the evidence pack's chronology, api/evidence.py, which reads
it through `engine.history` like the case page), the decisions, the case notes, every letter as sent,
the corrections made to the person's details or notes ("Corrections to your record", `corrections`)
and the case access log entries (who opened the record, when, and from which page: the recipients of
Art. 15(1)(c) inside the council). Two formats: a PDF (WeasyPrint, `templates/subject_access_pdf.html`)
and a JSON document (`FORMAT`, version `VERSION`, described in docs/security.md).

Who may (docs/security.md "Subject access and rectification"): only the `data_protection` role
(`SAR_ROLES`), restricted cases included — the export is for the person themselves. Everyone else is
refused with 403 (404 for a restricted case they are not named on, as everywhere else), and the refusal
is in the access log. Each export is a `person.subject_access_exported` event on every case it covers
(in the case's own hash chain) and a `subject_access` row in each case's access log with the request's
reference, in one transaction. The officer reviews the export for other people's information (case
notes may name family, neighbours, staff) before it is released: the page says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from engine import history
from engine.clock import as_utc, parse_instant
from engine.errors import ValidationError
from engine.history import Event
from engine.schema import case_access_log, cases, people
from handlers.people import person_of

from . import case_record as cr
from . import page_kit as kit
from .access import RESTRICTED, can_open_case, case_exists, log_access, refusal, restriction, write_access
from .auth import User, current_user, get_engine
from .errors import forbidden
from .evidence import case_id_of, checked_reason, evidence_chronology, find_case, pdf_of, user_named
from .inputs import Id

router = APIRouter()
pages = APIRouter(include_in_schema=False)

SAR_ROLES = ("data_protection",)
FORMAT, VERSION = "carepath.subject-access", 1
EVENT = "person.subject_access_exported"
ACTION = "subject_access"  # its rows in the case access log
MAX_REASON = 500
REASON_EMPTY = "Enter the request's reference or why you are exporting this person's information"
REASON_LONG = f"The request's reference must be {MAX_REASON} characters or fewer"
FORMATS = ("pdf", "json")
REFUSED = "only a data protection officer may export everything held about a person"
THIRD_PARTY = ("Case notes, letters, the answers to forms and the history may mention other people (family, "
               "carers, neighbours, staff, whoever made a referral or is alleged to have caused harm). The data "
               "protection officer reviews this export and removes or redacts other people's information that "
               "the person is not entitled to before it is released (UK GDPR Art. 15(4); "
               "Data Protection Act 2018 Sch. 2 para. 16).")


def may_run(user: User) -> bool:
    return user.has(*SAR_ROLES)


kit.templates.env.globals["may_subject_access"] = may_run


# ---------------------------------------------------------------------- who may
def check_sar(engine: Any, user: User, case_id: int, *, page: str | None = None) -> None:
    """404 for an unknown case; otherwise refused (logged) unless the user holds a role that runs subject access
    requests — 404 to someone not named on a restricted case (its existence is not disclosed), else 403."""
    case_exists(engine, case_id)
    if may_run(user):
        return
    _ok, why = can_open_case(engine, user, case_id)
    log_access(engine, case_id, user, ACTION, page=page, outcome="refused")
    raise refusal(case_id, why) if why == RESTRICTED else forbidden(REFUSED)


def clean_reason(reason: str | None) -> str:
    return checked_reason(" ".join((reason or "").split()), MAX_REASON, REASON_EMPTY, REASON_LONG)  # one line


def person_cases(engine: Any, case_id: int) -> list[int]:
    """The case asked about and every other case whose person has the same NHS number, oldest first."""
    with engine.db.engine.connect() as conn:
        nhs = conn.execute(select(people.c.nhs_number).where(people.c.case_id == case_id)).scalar()
        ids = {case_id}
        if nhs:
            ids |= set(conn.execute(select(people.c.case_id).where(people.c.nhs_number == nhs)).scalars())
    return sorted(ids)


# ---------------------------------------------------------------------- what is held
def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = parse_instant(value)
    return as_utc(value).isoformat(timespec="seconds")


def corrections(rec: cr.Loaded) -> list[dict[str, Any]]:
    """The rectification trail of one case, oldest first: every change to a detail of the person that was
    already recorded (what was recorded, what it became, when, by whom, why) and every note corrected by a
    later one. Read from the history: a correction on the record page or through the API is a
    `case.record_updated` event with the previous values and the reason; a process's form that records the
    person's details again is a `case.updated` event, whose previous values are those the history held before
    (its "why" is the task it was made at)."""
    out: list[dict[str, Any]] = []
    person: dict[str, Any] = {}
    completed_by: dict[Any, str] = {}  # step -> who completed the task that step ran (a form's changes are theirs)
    for e in rec.history:
        data = e.get("data") or {}
        t = e["type"]
        if t == "task.completed":
            completed_by[e.get("step")] = e["actor"]
        if t == "case.created":  # the details under `person`, or at the top level of data made by hand
            person = dict(person_of(data.get("data") or {}))
            continue
        if t not in ("case.record_updated", "case.updated") or "person" not in (data.get("data") or {}):
            continue
        new = data["data"]["person"] if isinstance(data["data"]["person"], dict) else {}
        if t == "case.record_updated":
            prev = (data.get("previous") or {}).get("person")
            # none under `person` before: the details the record held at its top level, if any (person_of)
            before = prev if isinstance(prev, dict) else person
            why = data.get("reason") or ""
            by = e["actor"]
        else:
            before = person
            by = completed_by.get(e.get("step"), e["actor"])
            ver = rec.versions.get(e.get("instance_id"))
            why = f"recorded again at the task “{ver.element_name(data.get('element_id')) if ver else 'a task'}”"
        for name in sorted(set(before) | set(new)):
            old, value = before.get(name), new.get(name)
            if old == value or (t == "case.updated" and old in (None, "")):
                continue  # a detail told for the first time is not a correction
            out.append({"kind": "detail", "at": _iso(e["at"]), "when": cr.day_and_time(e["at"]),
                        "by": by, "by_name": rec.who(by), "detail": name,
                        "title": rec.titles.get(name) or cr.humanise(name),
                        "recorded": old, "corrected_to": value, "recorded_text": cr.show_value(None, old),
                        "corrected_to_text": cr.show_value(None, value), "reason": why, "event_seq": e["seq"]})
        person = dict(new)
    notes = {n["id"]: n for n in rec.notes}
    for n in rec.notes:
        if n.get("corrects") and n["corrects"] in notes:
            old = notes[n["corrects"]]
            out.append({"kind": "note", "at": _iso(n["at"]), "when": cr.day_and_time(n["at"]), "by": n["author"],
                        "by_name": rec.who(n["author"]), "detail": f"note {old['id']}",
                        "title": f"Case note {old['id']}",
                        "recorded": old["text"], "corrected_to": n["text"], "recorded_text": old["text"],
                        "corrected_to_text": n["text"], "reason": f"correction recorded as note {n['id']}",
                        "note_id": n["id"]})
    out.sort(key=lambda c: c["at"] or "")
    return out


# the processes whose forms are about someone other than the case's person (the carer), unless that carer is
# the case's own person (a carer who came forward for themselves): handlers/cld.py reads them the same way
ABOUT_THE_CARER = frozenset({"carers_assessment", "carers_support_plan"})
EMPTY = (None, "", [], {})


def _properties(schema: Any) -> dict[str, Any]:
    """A form's (or one of its objects') questions by name, with those its conditional parts add (allOf, anyOf,
    oneOf, then, else), first title found kept."""
    found: dict[str, Any] = {}
    if not isinstance(schema, dict):
        return found
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict):
            found.setdefault(name, prop)
    for part in [*(schema.get("allOf") or []), *(schema.get("anyOf") or []), *(schema.get("oneOf") or []),
                 schema.get("then"), schema.get("else")]:
        for name, prop in _properties(part).items():
            found.setdefault(name, prop)
    return found


def _answer_text(prop: dict[str, Any], value: Any) -> str:
    """One plain answer as a person reads it: Yes or No, an option by the form's name for it, a day, money."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        return ", ".join(_answer_text(items, v) for v in value if v not in EMPTY)
    codes = prop.get("enum") if isinstance(prop.get("enum"), list) else None
    if codes is not None and value in codes:
        names = prop.get("x-enumNames") or prop.get("enumNames") or []
        i = codes.index(value)
        return str(names[i]) if i < len(names) else cr.humanise(str(value))
    if prop.get("x-money") is True and isinstance(value, (int, float)) and not isinstance(value, bool):
        return cr.money(value)
    if prop.get("format") == "date" and isinstance(value, str):
        return cr.long_day(value)
    return str(value)


def answer_rows(schema: Any, answers: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    """A form's answers as rows to read, in the form's order (then any answer the form no longer asks): each
    question by the form's own title (else its name in words) with the answer in words; an object's or a
    list's parts follow their heading one level deeper. Unanswered questions are left out."""
    props = _properties(schema)
    extra = schema.get("additionalProperties") if isinstance(schema, dict) else None
    rows: list[dict[str, Any]] = []
    for key in [k for k in props if k in answers] + [k for k in answers if k not in props]:
        value = answers[key]
        if value in EMPTY:
            continue
        prop = props.get(key) or (extra if isinstance(extra, dict) else {})
        title = str(prop.get("title") or cr.humanise(key))
        if isinstance(value, dict):
            rows.append({"title": title, "text": "", "depth": depth})
            rows += answer_rows(prop, value, depth + 1)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
            for n, item in enumerate(value, 1):
                heading = f"{title} ({n} of {len(value)})" if len(value) > 1 else title
                if isinstance(item, dict):
                    rows.append({"title": heading, "text": "", "depth": depth})
                    rows += answer_rows(items, item, depth + 1)
                elif item not in EMPTY:
                    rows.append({"title": heading, "text": _answer_text(items, item), "depth": depth})
        else:
            rows.append({"title": title, "text": _answer_text(prop, value), "depth": depth})
    return rows


def form_answers(engine: Any, rec: cr.Loaded, only: set[Any] | None = None) -> list[dict[str, Any]]:
    """Every form completed on the case, oldest first, with its answers as recorded in the history (each
    `task.completed` event's data: the assessment, the scoring, the plan...) and as rows to read, labelled with
    the form's own titles (forms/*.json). An erased case's events hold no answers: nothing comes back. A form of
    a carer's process on someone else's case is marked `about_someone_else` (the carer's own information) for
    the officer's review. `only`: the forms of these process instances alone, which are about the person asked
    about (a carer's processes on the record of the person they care for, `carer_records`)."""
    own = " ".join(str(rec.person.get("name") or rec.case["title"] or "").split()).casefold()
    about_other: set[Any] = set()
    schemas: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    for e in rec.history:
        data = e.get("data") or {}
        if e["type"] == "instance.started" and data.get("process_id") in ABOUT_THE_CARER:
            who = ((data.get("data") or {}).get("person") or {})
            name = " ".join(str(who.get("name") or "").split()).casefold() if isinstance(who, dict) else ""
            if name != own:
                about_other.add(e.get("instance_id"))
        if e["type"] != "task.completed" or (only is not None and e.get("instance_id") not in only):
            continue
        answers = data.get("data")
        if not isinstance(answers, dict) or not answers:
            continue
        ver = rec.versions.get(e.get("instance_id"))
        element_id = data.get("element_id")
        form = (ver.element(element_id).get("form") if ver and element_id else None) or None
        if form and form not in schemas:
            try:
                schemas[form] = engine.forms.schema(form)
            except Exception:  # noqa: BLE001 - a form no longer in the library: the answers by their names
                schemas[form] = {}
        schema = (schemas.get(form) or {}) if form else {}
        task = data.get("name") or (ver.element_name(element_id) if ver else cr.humanise(element_id or ""))
        out.append({"event_seq": e["seq"], "at": _iso(e["at"]), "when": cr.day_and_time(e["at"]),
                    "by": e["actor"], "by_name": rec.who(e["actor"]), "task": task,
                    "process": ver.name if ver else None, "form": form, "form_title": schema.get("title"),
                    "about_someone_else": only is None and e.get("instance_id") in about_other,
                    "answers": answers, "rows": answer_rows(schema, answers)})
    return out


def carer_instances(engine: Any, refs: set[str], own: set[int]) -> dict[int, dict[Any, dict[str, Any]]]:
    """The person as a carer on other people's records: {case id: {instance id: the carer's start data}} of every
    carer's process (`ABOUT_THE_CARER`) started on a case not theirs that names one of their cases (`refs`) as the
    carer's own case reference (the carer's assessment action's "Carer's own case reference"). An erased case's
    events hold no data, so it is never found."""
    if not refs:
        return {}
    from sqlalchemy import or_

    from engine.schema import events

    from .access import escape_like
    found: dict[int, dict[Any, dict[str, Any]]] = {}
    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(events.c.case_id, events.c.instance_id, events.c.data).where(
            events.c.type == "instance.started", events.c.case_id.is_not(None), events.c.case_id.not_in(own),
            or_(*[events.c.data.like('%"' + escape_like(r) + '"%', escape="\\") for r in sorted(refs)]))
            .order_by(events.c.case_id, events.c.seq)).all()
    for row in rows:
        data = json.loads(row.data)
        start = data.get("data") if isinstance(data, dict) else None
        who = start.get("person") if isinstance(start, dict) else None
        if data.get("process_id") in ABOUT_THE_CARER and isinstance(who, dict) and who.get("case_reference") in refs:
            found.setdefault(row.case_id, {})[row.instance_id] = start
    return found


def carer_records(engine: Any, found: dict[int, dict[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """What is held about the person as a carer on the records of the people they care for: for each such case,
    its reference, who is cared for and the carer's details as recorded there (the carer's processes' start
    data), and the forms of those processes only — never the rest of that person's record."""
    out = []
    for case_id, starts in sorted(found.items()):
        rec = cr.load(engine, case_id)
        first = next(iter(starts.values()))
        out.append({"case_id": case_id, "case_reference": rec.case["reference"],
                    "cared_for": first.get("cared_for") or None,
                    "recorded_as": {k: v for k, v in (first.get("person") or {}).items()},
                    "forms": form_answers(engine, rec, only=set(starts))})
    return out


def _access_log(engine: Any, case_id: int, rec: cr.Loaded) -> list[dict[str, Any]]:
    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(case_access_log).where(case_access_log.c.case_id == case_id)
                            .order_by(case_access_log.c.id)).all()
    return [{"at": _iso(r.at), "when": cr.day_and_time(r.at), "user": r.user, "name": rec.who(r.user),
             "action": r.action, "page": r.page, "outcome": r.outcome or "allowed", "reason": r.reason}
            for r in rows]


def _case(engine: Any, case_id: int) -> dict[str, Any]:
    from .letters_pdf import delivery

    rec = cr.load(engine, case_id)
    with engine.db.engine.connect() as conn:
        restricted = restriction(conn, case_id) is not None
    sent = delivery(engine, case_id)
    chronology = evidence_chronology(rec)  # every event in words, oldest first (the evidence pack's)
    decisions = [e for e in cr.chronology(rec) if e["kind"] == "decision"]
    return {
        "id": case_id, "reference": rec.case["reference"], "opened_at": _iso(rec.case["created_at"]),
        "opened": cr.long_day(rec.case["created_at"]),
        "restricted": restricted,
        "person": [{"detail": r["name"], "title": r["title"], "value": r["value"], "text": r["text"]}
                   for r in cr.person_rows(engine, rec.person) if r["value"] not in (None, "")],
        "record": rec.case["data"],
        "history": [{"seq": e["seq"], "at": _iso(h["at"]), "when": e["when"], "by": h["actor"], "by_name": e["who"],
                     "what": e["text"], "type": e["type"]} for e, h in zip(chronology, rec.history, strict=True)],
        "decisions": [{"at": _iso(d["at"]), "when": d["when"], "by_name": d["who"], "what": d["text"]}
                      for d in reversed(decisions)],
        "forms": form_answers(engine, rec),
        "notes": [{"id": n["id"], "at": _iso(n["at"]), "when": cr.day_and_time(n["at"]), "by": n["author"],
                   "by_name": rec.who(n["author"]), "kind": n["kind"],
                   "label": cr.NOTE_KINDS.get(n["kind"], cr.humanise(n["kind"])), "text": n["text"],
                   "corrects": n.get("corrects")} for n in rec.notes],
        "letters": [{"id": d["id"], "title": d["title"], "kind": d["kind"], "at": _iso(d["created_at"]),
                     "when": cr.day_and_time(d["created_at"]), "body": d["body"],
                     "delivery": (sent.get(d["id"]) or {}).get("text")} for d in rec.documents],
        "corrections": corrections(rec),
        "access_log": _access_log(engine, case_id, rec),
    }


@dataclass
class Export:
    case_ids: list[int]
    document: dict[str, Any]  # the JSON export (`FORMAT`)


def collect(engine: Any, user: User, case_id: int, reason: str) -> Export:
    """Everything held about the person of `case_id` (no access check, nothing logged: `export` does both)."""
    ids = person_cases(engine, case_id)
    found = [_case(engine, cid) for cid in ids]
    asked = next(c for c in found if c["id"] == case_id)
    name = next((p["value"] for p in asked["person"] if p["detail"] == "name"), None)
    as_carer = carer_records(engine, carer_instances(engine, {c["reference"] for c in found}, set(ids)))
    return Export(ids + [c["case_id"] for c in as_carer], {
        "format": FORMAT, "version": VERSION, "exported_at": _iso(engine.now()),
        "exported_by": {"username": user.username, "name": user.display_name},
        "request": reason, "person": {"name": name, "case_asked_about": asked["reference"],
                                      "details": asked["person"]},
        "third_party_information": THIRD_PARTY,
        "how_cases_were_found": ("the case asked about and every case whose person has the same NHS number; as a "
                                 "carer, every carer's assessment or support plan on another person's record that "
                                 "names one of those cases as the carer's own"),
        "cases": found, "as_a_carer": as_carer})


def record(engine: Any, user: User, case_ids: list[int], fmt: str, reason: str, page: str | None) -> None:
    """The export in each case's history and access log, in one transaction."""
    refs = []
    with engine.db.engine.connect() as conn:
        refs = [r.reference for r in conn.execute(select(cases.c.reference).where(cases.c.id.in_(case_ids))
                                                  .order_by(cases.c.id))]
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        for cid in case_ids:
            history.append(conn, history.case_chain(cid), cid, now, [Event(EVENT, {"format": fmt, "cases": refs},
                                                                           actor=user.username)],
                           lock=engine.db.is_postgres)
            write_access(conn, engine, cid, user, ACTION, page=page, reason=reason)


def export(engine: Any, user: User, case_id: int, reason: str, fmt: str, *, page: str | None = None
           ) -> tuple[str, bytes, Export]:
    """Check, collect, render and record one export: (file name, content, what it holds)."""
    check_sar(engine, user, case_id, page=page)
    reason = clean_reason(reason)
    if fmt not in FORMATS:
        raise ValidationError("choose pdf or json", errors=[{"field": "format", "message": "Choose PDF or JSON"}])
    found = collect(engine, user, case_id, reason)
    stamp = f"{as_utc(engine.now()):%Y%m%d}"
    ref = re.sub(r"[^A-Za-z0-9-]+", "-", found.document["person"]["case_asked_about"]).strip("-")
    if fmt == "json":
        content = (json.dumps(found.document, indent=2, ensure_ascii=False, default=str) + "\n").encode()
    else:
        content = render_pdf(found.document)
    record(engine, user, found.case_ids, fmt, reason, page)
    return f"subject-access-{ref}-{stamp}.{fmt}", content, found


# ---------------------------------------------------------------------- the PDF
def render_pdf(document: dict[str, Any]) -> bytes:
    return pdf_of("subject_access_pdf.html", doc=document, exported=cr.day_and_time(document["exported_at"]))


# ---------------------------------------------------------------------- the command line
def export_to_dir(engine: Any, person: str, username: str, reason: str, out: str) -> list[str]:
    """`carepath subject-access --person ID --out DIR --as USER --reason TEXT`: the PDF and the JSON file in DIR
    (PERSON is the id or reference of one of the person's cases)."""
    from pathlib import Path

    user = user_named(engine, username, "a data protection officer")
    case_id = case_id_of(engine, person)
    check_sar(engine, user, case_id, page="carepath subject-access")  # refused before any file is made
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        name, content, _ = export(engine, user, case_id, reason, fmt, page="carepath subject-access")
        (target / name).write_bytes(content)
        written.append(str(target / name))
    return written


# ---------------------------------------------------------------------- JSON API
class SarIn(BaseModel):
    reason: str = Field(max_length=MAX_REASON * 2, description="the request's reference, or why it is exported")


@router.post("/api/cases/{case_id}/subject-access")
def api_export(case_id: Id, body: SarIn, user: Annotated[User, Depends(current_user)],
               engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    """Everything held about the person of this case, and of their other cases (same NHS number), as the
    versioned JSON export (data protection officers only; recorded in each case's history and access log)."""
    _name, _content, found = export(engine, user, case_id, body.reason, "json",
                                    page=f"/api/cases/{case_id}/subject-access")
    return found.document


# ---------------------------------------------------------------------- the pages
PAGE_ACTION = "subject_access_page"  # the access log's action for an opening of a person's request page
NOT_FOUND = "There is no case record at this address."


def _summary(engine: Any, case_id: int) -> dict[str, Any]:
    ids = person_cases(engine, case_id)
    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(cases.c.id, cases.c.reference, cases.c.created_at, people.c.name)
                            .outerjoin(people, people.c.case_id == cases.c.id).where(cases.c.id.in_(ids))
                            .order_by(cases.c.id)).all()
    asked = next(r for r in rows if r.id == case_id)
    caring = carer_instances(engine, {r.reference for r in rows}, set(ids))
    with engine.db.engine.connect() as conn:
        refs = dict(conn.execute(select(cases.c.id, cases.c.reference).where(cases.c.id.in_(list(caring)))).all())
    return {"id": case_id, "reference": asked.reference, "name": asked.name or "",
            "cases": [{"reference": r.reference, "opened": cr.long_day(r.created_at)} for r in rows],
            "as_a_carer": [{"reference": refs[cid], "cared_for": next(iter(starts.values())).get("cared_for") or ""}
                           for cid, starts in sorted(caring.items())]}


def _form(request: Request, user: User, summary: dict[str, Any], *, reason: str = "", error: str = "",
          status: int = 200) -> Response:
    return kit.render(request, "subject_access.html", {
        "user": user, "p": summary, "reason": reason, "error": error, "max_reason": MAX_REASON,
        "errors": [{"text": error, "href": "#reason"}] if error else [], "third_party": THIRD_PARTY}, status)


@pages.get("/subject-access", response_class=HTMLResponse)
def find_page(request: Request, reference: str | None = None) -> Response:
    """Data protection officers start here: the reference (or number) of one of the person's cases."""
    page = kit.Page(request)
    try:
        user = page.open()
        if not may_run(user):
            raise forbidden("This page is for data protection officers.")
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc)
    error, status = "", 200
    if reference is not None:
        text = reference.strip().upper()[:64]
        case_id = find_case(page.engine, text) if text else None
        if case_id is not None:
            return kit.redirect(f"/cases/{case_id}/subject-access")
        error, status = (f"There is no case {text}: check the reference", 404) if text else \
            ("Enter the reference of one of the person's cases", 400)
    return kit.render(request, "subject_access_find.html", {
        "user": user, "reference": (reference or "")[:64], "error": error,
        "errors": [{"text": error, "href": "#reference"}] if error else []}, status)


@pages.get("/cases/{case_id}/subject-access", response_class=HTMLResponse)
def sar_page(request: Request, case_id: Id) -> Response:
    page = kit.Page(request)
    try:
        where = f"/cases/{case_id}/subject-access"
        user = page.open(check_sar, case_id, page=where)
        summary = _summary(page.engine, case_id)
        # the page names the person (a restricted case's too): each opening is in the case's access log, so a
        # run through every case's page to read who carepath holds shows there, and in the person's export
        log_access(page.engine, case_id, user, PAGE_ACTION, page=where)
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc, not_found=NOT_FOUND)
    return _form(request, user, summary)


@pages.post("/cases/{case_id}/subject-access")
async def sar_post(request: Request, case_id: Id) -> Response:
    opening = kit.Page(request)
    where = f"/cases/{case_id}/subject-access"
    try:
        user = await opening.post(check_sar, case_id, page=where)
        engine = opening.engine
        reason, fmt = kit.one(opening.form, "reason"), kit.one(opening.form, "format")
        try:
            name, content, _ = await run_in_threadpool(export, engine, user, case_id, reason, fmt, page=where)
        except ValidationError as exc:
            summary = await run_in_threadpool(_summary, engine, case_id)
            return _form(request, user, summary, reason=reason, error=exc.errors[0]["message"], status=400)
    except Exception as exc:  # noqa: BLE001
        return opening.guard(exc, not_found=NOT_FOUND)
    return kit.attachment(content, "application/pdf" if fmt == "pdf" else "application/json", name)


def exported_sentence(data: dict[str, Any], who: str) -> str:
    """The chronology's words for a `person.subject_access_exported` event."""
    covered = ", ".join(str(r) for r in data.get("cases") or [])
    fmt = str(data.get("format") or "").upper()
    return f"Subject access export ({fmt}) made by {who}" + (f", covering {covered}" if covered else "")
