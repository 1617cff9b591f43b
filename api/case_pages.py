"""The person's case record as pages: details, co-ordinating worker, plan and budget, where each
process stands (with its diagram), letters, case notes and the chronology; and the panel shown
beside a task form (`case_panel`).

Every page and action goes through the API's own functions (api/cases.py: `open_case`, which
checks api/access.py and logs the opening; `add_note`, `correct_details`, `set_coordinator`), so a
page can never show or do more than the API. Every POST carries the session's CSRF token in a
hidden field (page_kit.csrf_ok).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.errors import ConflictError, ValidationError
from handlers.people import person_of

from . import break_glass, case_actions, letters_pdf, suspend
from . import case_record as cr
from . import cases as api
from . import page_kit as kit
from .auth import User
from .errors import ApiError
from .inputs import Id, PageNo, to_id
from .integrity import panel as integrity_panel

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
NOT_FOUND = "There is no case record at this address."
SAVED = {"note": "Case note added", "details": "The person's details were changed",
         "coordinator": "Co-ordinating worker changed", "closed": "The case was closed",
         "ended": "The process was ended",
         "already": "That form was already sent: it was acted on once",
         **{f"action_{a}": f"{t}: done" for a, t in case_actions.ACTION_TITLES.items()},
         "admission": "Hospital admission recorded: the process is paused", "discharge": "Discharge recorded",
         "transition": "Referral from children's services recorded: social work decides whether to assess"}


def _guard(request: Request, user: User | None, exc: Exception) -> Response:
    return kit.guard(request, user, exc, not_found=NOT_FOUND, conflict_title="This case record has changed")


def _damaged(request: Request, user: User | None) -> Response:
    """The page for a form whose hidden `expected` value does not parse (nothing was changed)."""
    return kit.error_page(request, user, 400, "Sorry, there is a problem",
                          "The form was damaged. Go back to the case record and try again.")


def _conflict(exc: ConflictError, then: str) -> str:
    """The engine's conflict message as a sentence, then what the form kept."""
    msg = str(exc)
    return msg[:1].upper() + msg[1:] + ". " + then


# ---------------------------------------------------------------------- the case page
def erased_case(engine: Any, case_id: int) -> dict[str, Any] | None:
    """{reference, erasure} when the case was erased under a retention rule, else None."""
    from sqlalchemy import select

    from engine.erasure import erased
    from engine.schema import cases

    with engine.db.engine.connect() as conn:
        row = conn.execute(select(cases.c.reference, cases.c.data).where(cases.c.id == case_id)).first()
    done = erased(json.loads(row.data)) if row is not None else None
    return None if done is None else {"reference": row.reference, "erasure": done}


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: Id, page: PageNo = 1, saved: str = "") -> Response:
    opening = kit.Page(request)  # (`page` is the chronology's page number)
    try:
        user = opening.open()
        engine = opening.engine
        glass = api.open_case(engine, user, case_id, "open")  # a break-glass use only reads (api/break_glass.py)
        gone = erased_case(engine, case_id)
        if gone is not None:  # engine/erasure.py: nothing of the person is left to show
            return kit.render(request, "case_erased.html", {"user": user, **gone})
        rec = cr.load(engine, case_id)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return _guard(request, opening.user, exc)
    entries = cr.chronology(rec)
    pages = max(1, -(-len(entries) // PAGE_SIZE))
    page = max(1, min(page, pages))
    positions = cr.positions(rec)
    notes = [{**n, "label": cr.NOTE_KINDS.get(n["kind"], cr.humanise(n["kind"])), "when": cr.day_and_time(n["at"]),
              "who": rec.who(n["author"])} for n in reversed(rec.notes)]
    sent = letters_pdf.delivery(engine, case_id)
    letters = [{**d, "when": cr.long_day(d["created_at"]), "delivery": sent.get(d["id"])}
               for d in reversed(rec.documents)]
    name = rec.person.get("name") or rec.case["title"]
    return kit.render(request, "case.html", {
        "user": user, "case": rec.case, "name": name, "rows": cr.person_rows(engine, rec.person),
        "has_person": bool(rec.person), "coordinator": api.coordinator_view(rec),
        "may_write": api.may_write(user) and not glass, "may_coordinate": api.may_set_coordinator(user) and not glass,
        "actions": [] if glass else case_actions.available(user, rec.case, engine.now().date()),
        "may_end": case_actions.may_close(user) and not glass,
        "glass": glass_view(glass), "glass_uses": glass_uses(engine, case_id),
        "closure": case_actions.closure_view(rec.case),
        "suspendable": suspend.SUSPENDABLE,
        "pb": cr.plan_and_budget(rec), "positions": positions,
        "open_positions": [p for p in positions if p["status"] != "completed"],
        "letters": letters, "notes": notes, "entries": entries[(page - 1) * PAGE_SIZE: page * PAGE_SIZE],
        "page": page, "pages": pages, "total": len(entries), "saved": SAVED.get(saved, ""),
        "integrity": integrity_panel(engine, case_id)})


def glass_view(glass: Any) -> dict[str, Any] | None:
    """The viewer's own break-glass use this page was opened through, for the banner (None: ordinary access)."""
    return None if glass is None else {"id": glass.id, "until": cr.day_and_time(glass.expires_at)}


def glass_uses(engine: Any, case_id: int) -> list[dict[str, Any]]:
    """Every break-glass use of the case, for the banner everyone who opens it sees."""
    return [{**u, "when": cr.day_and_time(u["at"]), "until": cr.day_and_time(u["expires_at"])}
            for u in break_glass.on_case(engine, case_id)]


# ---------------------------------------------------------------------- letters
@router.get("/cases/{case_id}/letters/{doc_id}", response_class=HTMLResponse)
def letter_page(request: Request, case_id: Id, doc_id: Id, saved: str = "") -> Response:
    page = kit.Page(request)
    try:
        user = page.open()
        engine = page.engine
        glass = api.open_case(engine, user, case_id, "letter")
        doc = api.document(engine, case_id, doc_id)
        case = engine.get_case(case_id)
        sent = letters_pdf.delivery(engine, case_id).get(doc_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, page.user, exc)
    return kit.render(request, "case_letter.html", {"user": user, "case": case, "doc": doc, "delivery": sent,
                                                    "may_write": api.may_write(user) and not glass,
                                                    "glass": glass_view(glass), "saved": saved == "again",
                                                    "when": cr.day_and_time(doc["created_at"])})


# ---------------------------------------------------------------------- notes
def _note_page(request: Request, user: User, case: dict[str, Any], notes: list[dict[str, Any]], *,
               kind: str = "note", text: str = "", corrects: str = "", errors: list[dict[str, str]] | None = None,
               status: int = 200) -> Response:
    errs = {e["field"]: e["message"] for e in errors or []}
    summary = [{"text": e["message"], "href": {"kind": "#kind-0", "text": "#note-text",
                                               "corrects": "#corrects"}.get(e["field"])} for e in errors or []]
    choices = [{"value": n["id"], "text": f"Note {n['id']} ({cr.day_and_time(n['at'])}): {n['text'][:80]}"}
               for n in reversed(notes)]
    return kit.render(request, "case_note.html", {
        "user": user, "case": case, "kinds": list(cr.NOTE_KINDS.items()), "kind": kind, "text": text,
        "corrects": corrects, "choices": choices, "errors": summary, "err": errs,
        # sent once: a double click or a form sent again from the browser's history adds no second note (a note
        # can never be deleted)
        "token": case_actions.issue_token(request.app.state.engine, user, case["id"], "note")}, status)


@router.get("/cases/{case_id}/notes/new", response_class=HTMLResponse)
def new_note(request: Request, case_id: Id, corrects: Id | None = None) -> Response:
    page = kit.Page(request)
    try:
        user = page.open(api._writer, case_id, "note")  # 404, or 403 (logged) for read-only roles
        rec = cr.load(page.engine, case_id, with_history=False)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, page.user, exc)
    return _note_page(request, user, rec.case, rec.notes, kind="correction" if corrects else "note",
                      corrects=str(corrects or ""))


@router.post("/cases/{case_id}/notes", response_class=HTMLResponse)
async def post_note(request: Request, case_id: Id) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post(api._writer, case_id, "note")
    except Exception as exc:  # noqa: BLE001
        return _guard(request, page.user, exc)
    engine, form = page.engine, page.form
    kind, text, corrects = kit.one(form, "kind"), kit.one(form, "text"), kit.one(form, "corrects").strip()
    ref: int | None = to_id(corrects)
    try:
        if corrects and ref is None:
            raise ValidationError("bad note", errors=[{"field": "corrects",
                                                       "message": "Select the note this corrects"}])
        if kind != "correction":
            ref = None  # the list of notes only matters for a correction
        errors = await run_in_threadpool(api.note_errors, engine, case_id, kind, text, ref)
        if errors:
            raise ValidationError("bad note", errors=errors)
        sent = kit.one(form, "action_token")
        if not sent:
            return _damaged(request, user)
        if not await run_in_threadpool(case_actions.use_token, engine, user, case_id, "note", sent):
            return kit.redirect(f"/cases/{case_id}?saved=already")  # a second click: the first one added it
        await run_in_threadpool(api.add_note, engine, user, case_id, kind, text, ref)
    except ValidationError as exc:
        rec = cr.load(engine, case_id, with_history=False)
        return _note_page(request, user, rec.case, rec.notes, kind=kind, text=text, corrects=corrects,
                          errors=exc.errors or [{"field": None, "message": str(exc)}], status=400)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    return kit.redirect(f"/cases/{case_id}?saved=note#notes")


# ---------------------------------------------------------------------- correcting a detail
def _field(engine: Any, name: str) -> cr.PersonField:
    for f in cr.person_fields(engine):
        if f.name == name:
            return f
    raise ApiError(404, "not_found", "The person has no detail with that name to change.")


def _detail_page(request: Request, user: User, case: dict[str, Any], f: cr.PersonField, *, seen: Any,
                 typed: dict[str, str], reason: str = "", errors: dict[str, str] | None = None,
                 conflict: str | None = None, status: int = 200) -> Response:
    errors = errors or {}
    first = {"date": "#value-day", "choice": "#value-0", "boolean": "#value-0"}.get(f.kind, "#value")
    if f.kind == "choice" and len(f.choices) > 8:
        first = "#value"
    summary = [{"text": errors[k], "href": first if k == "value" else "#reason"} for k in ("value", "reason")
               if k in errors]
    current = cr.show_value(f, seen)
    return kit.render(request, "case_detail.html", {
        "user": user, "case": case, "f": f, "seen_json": json.dumps(seen), "current": current, "typed": typed,
        "reason": reason, "errors": summary, "err": errors, "conflict": conflict,
        "use_select": f.kind == "choice" and len(f.choices) > 8, "multiline": isinstance(seen, list)}, status)


def _typed_from(f: cr.PersonField, value: Any) -> dict[str, str]:
    if value is None:
        return {"value": "", "day": "", "month": "", "year": ""}
    if f.kind == "date":
        try:
            d = date.fromisoformat(str(value))
            return {"value": "", "day": str(d.day), "month": str(d.month), "year": str(d.year)}
        except ValueError:
            return {"value": "", "day": "", "month": "", "year": ""}
    if f.kind == "boolean":
        return {"value": "yes" if value else "no"}
    if isinstance(value, list):
        return {"value": "\n".join(str(x) for x in value)}
    return {"value": str(value)}


@router.get("/cases/{case_id}/details/{name}", response_class=HTMLResponse)
def detail_form(request: Request, case_id: Id, name: str) -> Response:
    page = kit.Page(request)
    try:
        user = page.open(api._writer, case_id, "correct")
        engine = page.engine
        f = _field(engine, name)
        case = engine.get_case(case_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, page.user, exc)
    seen = person_of(case["data"]).get(name)
    return _detail_page(request, user, case, f, seen=seen, typed=_typed_from(f, seen))


@router.post("/cases/{case_id}/details/{name}", response_class=HTMLResponse)
async def detail_post(request: Request, case_id: Id, name: str) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post(api._writer, case_id, "correct")
        engine, form = page.engine, page.form
        f = _field(engine, name)
        case = engine.get_case(case_id)
        seen = json.loads(kit.one(form, "expected") or "null")
    except json.JSONDecodeError:
        return _damaged(request, page.user)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, page.user, exc)
    typed = {k: kit.one(form, k) for k in ("value", "day", "month", "year")}
    reason = kit.one(form, "reason")
    errors: dict[str, str] = {}
    if f.kind == "date":
        parts = [typed["day"].strip(), typed["month"].strip(), typed["year"].strip()]
        if not any(parts):
            raw: Any = ""
        elif not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
            raw, errors["value"] = None, f"{f.title} must be a real date, for example 27 3 1948"
        else:
            try:
                raw = date(int(parts[2]), int(parts[1]), int(parts[0])).isoformat()
            except ValueError:
                raw, errors["value"] = None, f"{f.title} must be a real date"
    elif isinstance(seen, list):
        raw = [line for line in typed["value"].splitlines() if line.strip()]
    else:
        raw = typed["value"]
    if errors and not reason.strip():
        errors["reason"] = "Enter why you are changing this"
    if not errors:
        try:
            await run_in_threadpool(api.correct_details, engine, user, case_id, {name: raw}, {name: seen}, reason)
        except ValidationError as exc:
            for e in exc.errors or []:
                key = "reason" if e.get("field") == "reason" else "value"
                errors.setdefault(key, e["message"])
            if not errors:
                errors["value"] = str(exc)
        except ConflictError as exc:
            fresh = engine.get_case(case_id)
            now_seen = person_of(fresh["data"]).get(name)
            return _detail_page(request, user, fresh, f, seen=now_seen, typed=typed, reason=reason,
                                conflict=_conflict(exc, "What you typed is still below: check the current value "
                                                   "and save again if it still needs changing."), status=409)
        except Exception as exc:  # noqa: BLE001
            return _guard(request, user, exc)
    if errors:
        return _detail_page(request, user, case, f, seen=seen, typed=typed, reason=reason, errors=errors, status=400)
    return kit.redirect(f"/cases/{case_id}?saved=details#details")


# ---------------------------------------------------------------------- co-ordinating worker
def _coordinator_page(request: Request, user: User, case: dict[str, Any], people: list[dict[str, str]], *,
                      chosen: str, reason: str = "", error: str | None = None, conflict: str | None = None,
                      status: int = 200) -> Response:
    current = case["data"].get("coordinating_worker")
    return kit.render(request, "case_coordinator.html", {
        "user": user, "case": case, "people": people, "chosen": chosen, "reason": reason,
        "seen_json": json.dumps(current), "current": next((p["display_name"] for p in people
                                                            if p["username"] == current), cr.show_value(None, current)),
        "errors": [{"text": error, "href": "#username"}] if error else [], "error": error, "conflict": conflict},
        status)


def _coordinating(_engine: Any, user: User) -> None:
    if not api.may_set_coordinator(user):
        raise ApiError(403, "forbidden", "Only a team manager can set the co-ordinating worker.")


@router.get("/cases/{case_id}/coordinating-worker", response_class=HTMLResponse)
def coordinator_form(request: Request, case_id: Id) -> Response:
    page = kit.Page(request)
    try:
        user = page.open(_coordinating)
        engine = page.engine
        api.open_case(engine, user, case_id, "coordinator")
        case = engine.get_case(case_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, page.user, exc)
    current = case["data"].get("coordinating_worker")
    return _coordinator_page(request, user, case, api.casework_users(engine),
                             chosen=current if isinstance(current, str) else "")


@router.post("/cases/{case_id}/coordinating-worker", response_class=HTMLResponse)
async def coordinator_post(request: Request, case_id: Id) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post()
        engine, form = page.engine, page.form
        seen = json.loads(kit.one(form, "expected") or "null")
    except json.JSONDecodeError:
        return _damaged(request, page.user)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, page.user, exc)
    chosen, reason = kit.one(form, "username"), kit.one(form, "reason")
    try:
        if not chosen:  # who may comes before what was sent: the form shows the case
            await run_in_threadpool(api.coordinator_check, engine, user, case_id)
            raise ValidationError("choose", errors=[{"field": "username", "message": "Select the co-ordinating "
                                                                                  "worker"}])
        await run_in_threadpool(api.set_coordinator, engine, user, case_id, chosen, seen, reason)
    except ValidationError as exc:
        case = engine.get_case(case_id)
        msg = (exc.errors or [{"message": str(exc)}])[0]["message"]
        return _coordinator_page(request, user, case, api.casework_users(engine), chosen=chosen, reason=reason,
                                 error=msg, status=400)
    except ConflictError as exc:
        case = engine.get_case(case_id)
        return _coordinator_page(request, user, case, api.casework_users(engine), chosen=chosen, reason=reason,
                                 conflict=_conflict(exc, "Your choice is still selected below: save again if it "
                                                    "is still right."), status=409)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    return kit.redirect(f"/cases/{case_id}?saved=coordinator#details")


# ---------------------------------------------------------------------- the panel beside a task form
def case_panel(engine: Any, user: User, case_id: int) -> dict[str, Any] | None:
    """Who the person is, the last few chronology entries and the case's letters, for `_case_panel.html`.

    Opening it is logged as `panel`; None (and a logged refusal) when the user may not open the case."""
    try:
        api.open_case(engine, user, case_id, "panel")
    except ApiError:
        return None
    rec = cr.load(engine, case_id)
    rows = [r for r in cr.person_rows(engine, rec.person)
            if r["name"] in ("date_of_birth", "age", "nhs_number", "address", "postcode", "phone") and r["text"]]
    return {"case_id": case_id, "reference": rec.case["reference"],
            "name": rec.person.get("name") or rec.case["title"], "rows": rows,
            "coordinator": api.coordinator_view(rec), "plan_worker": cr.signed_off_plan_worker(rec),
            "recent": cr.chronology(rec)[:cr.PANEL_ENTRIES],
            "letters": [{"id": d["id"], "title": d["title"], "when": cr.long_day(d["created_at"]),
                         "url": f"/cases/{case_id}/letters/{d['id']}"} for d in reversed(rec.documents)][:5],
            "url": f"/cases/{quote(str(case_id))}"}
