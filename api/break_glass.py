"""Break-glass access (issue 15 item 1, docs/security.md "Break-glass access"): in an emergency a casework user
who is not named on a restricted case reads it for a limited time, having said why; the use is shown on the case
and reported to administrators, who review it.

* **Who**: casework roles only (`User.is_worker`: front door advisors, social workers, occupational therapists,
  reablement co-ordinators, finance officers, team managers). Administrators, auditors, process owners and the
  performance role are refused (403, the same answer for every case, so it discloses nothing): none of them
  cares for people in an emergency, and a restriction is meant to keep them out too.
* **What**: reading the case record only — the record page and the read-only JSON routes (`READS`: the case,
  its record, chronology, notes, letters, diagrams and positions). Not its tasks, notes, corrections, actions,
  processes, letters' PDFs, evidence packs, replay or history: acting on a restricted case stays with the people
  named on it, who are accountable for it; someone who must act is named on the restriction by those who may
  restrict it (the privileged-access rules apply). Every page or route read under it is logged in the case access
  log with `reason` "break glass <id>".
* **How long**: `duration` (AuthSettings.break_glass_for, else CAREPATH_BREAK_GLASS_MINUTES, default 240 minutes,
  15 to 1,440), from the engine's clock (`Engine.now`) — a simulated clock moves it. After it the user gets the
  unknown-case 404 again. A use cannot be extended: once over, another use with its own reason.
* **When not**: a case the user may already open (named on it, or an unrestricted case they may open, or a use of
  theirs still running) is a 409; an unrestricted case they may not open is a 422 (it is not secret; they open it
  through their team's tasks); an unknown case a 404; a role that may not, a 403. None of these stores anything
  but a refused row in the access log of a case that exists.
* **Recorded**: each use is a `break_glass` row (append-only), a `case.break_glass` event in the case's own hash
  chain (actor, reason, until) and an access-log row (action `break_glass`); each review a `break_glass_reviews`
  row and a `case.break_glass_reviewed` event. All in one transaction with the row.
"""

from __future__ import annotations

import os
import unicodedata
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from engine import history
from engine.clock import as_utc
from engine.errors import ConflictError, NotFoundError, ValidationError
from engine.history import Event
from engine.schema import break_glass, break_glass_reviews, cases, users

from . import page_kit as kit
from .access import case_access, restriction, write_access
from .auth import User, current_user, require_roles
from .case_record import day_and_time
from .errors import forbidden
from .inputs import BODY_BAD, CONTROL, Id, to_id

router = APIRouter()

ENV = "CAREPATH_BREAK_GLASS_MINUTES"
DEFAULT = timedelta(hours=4)
SHORTEST, LONGEST = timedelta(minutes=15), timedelta(hours=24)
REASON_MIN, REASON_MAX = 10, 500
NOTE_MAX = 500
# what a break-glass use opens: the reads of the case record (api/cases.py `open_case` actions), nothing else
READS = frozenset({"open", "record", "chronology", "notes", "letter", "diagram", "position"})
REVIEWERS = ("administrator",)
ROLE_REFUSAL = ("Break-glass access is for casework roles (front door, social work, occupational therapy, "
                "reablement, finance and team managers) caring for someone in an emergency")


def duration(setting: timedelta | None = None, env: dict[str, str] | None = None) -> timedelta:
    """How long a use lasts: `setting`, else CAREPATH_BREAK_GLASS_MINUTES, else 4 hours; 15 minutes to 24 hours
    (a bad setting is a ValueError naming it, raised when the app is built)."""
    if setting is None:
        raw = ((os.environ if env is None else env).get(ENV) or "").strip()
        if not raw:
            return DEFAULT
        if not (raw.isascii() and raw.isdigit()):
            raise ValueError(f"{ENV} must be a whole number of minutes, not {raw[:20]!r}")
        setting = timedelta(minutes=int(raw))
    if not SHORTEST <= setting <= LONGEST:
        raise ValueError(f"break-glass access must last from 15 minutes to 24 hours ({ENV}), not {setting}")
    return setting


def may_break_glass(user: User) -> bool:
    return user.is_worker


def _visible(text: str) -> str:
    """The text on one line without Unicode format characters (category Cf: zero-width spaces and joiners,
    bidirectional overrides, soft hyphens): they show nothing, so twelve zero-width spaces are no reason, and a
    right-to-left override would make the report read otherwise than what was typed."""
    return " ".join("".join(c for c in (text or "") if unicodedata.category(c) != "Cf").split())


def _reason(text: str) -> str:
    """The reason on one line; 422 naming the field when missing, too short, too long, with control characters
    or with nothing readable (no letter or digit)."""
    reason = _visible(text)
    if BODY_BAD.search(text or ""):
        message = f"Reason {CONTROL}"
    elif not reason:
        message = "Enter why you need to open this case in an emergency"
    elif not any(c.isalnum() for c in reason):
        message = f"Reason must say what the emergency is, in at least {REASON_MIN} characters"
    elif len(reason) < REASON_MIN:
        message = f"Reason must say what the emergency is, in at least {REASON_MIN} characters"
    elif len(reason) > REASON_MAX:
        message = f"Reason must be {REASON_MAX} characters or fewer (it has {len(reason):,})"
    else:
        return reason
    raise ValidationError(f"break glass was not used: {message}", errors=[{"field": "reason", "message": message}])


def case_id_of(conn: Any, case: int | str | None) -> int:
    """The case a request names by number or reference (CASE-000123); 422 when it names none, 404 when unknown."""
    text = str(case if case is not None else "").strip().upper()
    ident = to_id(text.removeprefix("CASE-")) if text else None
    if ident is None:
        message = "Enter the case reference, for example CASE-000123"
        raise ValidationError(f"break glass was not used: {message}", errors=[{"field": "case", "message": message}])
    if conn.execute(select(cases.c.id).where(cases.c.id == ident)).first() is None:
        raise NotFoundError(f"no case {text if text.startswith('CASE-') else ident}", case=ident)
    return ident


_ACTIVE = (select(break_glass).where(break_glass.c.case_id == bindparam("case_id"),
                                     break_glass.c.username == bindparam("username"),
                                     break_glass.c.expires_at > bindparam("now"))
           .order_by(break_glass.c.expires_at.desc()).limit(1))


def active_use(conn: Any, engine: Any, case_id: int, username: str) -> Any:
    """This user's break-glass use of this case that has not expired by the engine's clock, or None."""
    return conn.execute(_ACTIVE, {"case_id": case_id, "username": username, "now": engine.now(conn)}).first()


def reading_use(engine: Any, user: User, case_id: int, action: str) -> Any:
    """The use that lets `user` do the read `action` on this restricted case they are not named on, or None."""
    if action not in READS or not may_break_glass(user):
        return None
    with engine.db.engine.connect() as conn:
        return active_use(conn, engine, case_id, user.username)


def use(engine: Any, user: User, case: int | str | None, reason: str, lasts: timedelta) -> dict[str, Any]:
    """Break the glass: `user` may read the restricted `case` for `lasts`, having said why. See the module."""
    if not may_break_glass(user):
        raise forbidden(ROLE_REFUSAL)
    reason = _reason(reason)
    with engine.db.transaction() as conn:
        case_id = case_id_of(conn, case)
        reference = conn.execute(select(cases.c.reference).where(cases.c.id == case_id)).scalar_one()
        allowed = restriction(conn, case_id)
        now = engine.now(conn)
        refusal: Exception | None = None
        if allowed is None:
            if case_access(conn, user, case_id, None)[0]:
                refusal = ConflictError(f"you can already open {reference}: break-glass access is not needed",
                                        case=case_id)
            else:
                message = (f"{reference} is not restricted: break-glass access is only for restricted cases. You open "
                           "an unrestricted case through your team's tasks; ask a team manager of its team")
                refusal = ValidationError(message, errors=[{"field": "case", "message": message}])
        elif user.username in allowed:
            refusal = ConflictError(f"you are named on {reference}'s restriction and can already open it: "
                                    "break-glass access is not needed", case=case_id)
        else:
            running = active_use(conn, engine, case_id, user.username)
            if running is not None:
                refusal = ConflictError(f"your break-glass access to {reference} lasts until "
                                        f"{day_and_time(running.expires_at)}: open the case record",
                                        case=case_id, until=as_utc(running.expires_at).isoformat())
        if refusal is not None:
            write_access(conn, engine, case_id, user, "break_glass", reason=reason, outcome="refused")
            failed = refusal
        else:
            failed = None
            until = now + lasts
            grant = conn.execute(insert(break_glass).values(case_id=case_id, username=user.username, reason=reason,
                                                            at=now, expires_at=until)
                                 .returning(break_glass.c.id)).scalar_one()
            history.append(conn, history.case_chain(case_id), case_id, now, [Event(
                "case.break_glass", {"grant": grant, "reason": reason, "until": history.iso(until),
                                     "roles": sorted(user.roles)}, actor=user.username)], lock=engine.db.is_postgres)
            write_access(conn, engine, case_id, user, "break_glass", reason=reason)
    if failed is not None:  # the refused row is committed with the transaction above
        raise failed
    return {"id": grant, "case_id": case_id, "reference": reference, "username": user.username, "reason": reason,
            "at": now, "expires_at": until}


# ---------------------------------------------------------------------- shown and reported
def _view(row: Any, now: datetime, names: dict[str, str]) -> dict[str, Any]:
    expires = as_utc(row.expires_at)
    reviewed = row.reviewer is not None
    return {"id": row.id, "case_id": row.case_id, "reference": row.reference, "username": row.username,
            "display_name": names.get(row.username, row.username), "reason": row.reason, "at": as_utc(row.at),
            "expires_at": expires, "active": expires > now,
            "review": ({"reviewer": row.reviewer, "reviewer_name": names.get(row.reviewer, row.reviewer),
                        "at": as_utc(row.reviewed_at), "note": row.note} if reviewed else None)}


def _uses(conn: Any, engine: Any, where: Any = None) -> list[dict[str, Any]]:
    query = (select(break_glass, cases.c.reference, break_glass_reviews.c.reviewer,
                    break_glass_reviews.c.at.label("reviewed_at"), break_glass_reviews.c.note)
             .join(cases, cases.c.id == break_glass.c.case_id)
             .outerjoin(break_glass_reviews, break_glass_reviews.c.grant_id == break_glass.c.id)
             .order_by(break_glass.c.at.desc(), break_glass.c.id.desc()))
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query).all()
    people = {r.username for r in rows} | {r.reviewer for r in rows if r.reviewer}
    names = {r.username: r.display_name for r in conn.execute(
        select(users.c.username, users.c.display_name).where(users.c.username.in_(sorted(people))))} if people else {}
    now = engine.now(conn)
    return [_view(r, now, names) for r in rows]


def on_case(engine: Any, case_id: int) -> list[dict[str, Any]]:
    """Every break-glass use of this case, newest first: what the case record shows everyone who opens it."""
    with engine.db.engine.connect() as conn:
        return _uses(conn, engine, break_glass.c.case_id == case_id)


def report(engine: Any, *, unreviewed_only: bool = False) -> list[dict[str, Any]]:
    """Every break-glass use (newest first), for the administrators' report; with how many uses of the same case
    the same person made (`uses_of_case`: repeated use stands out)."""
    with engine.db.engine.connect() as conn:
        out = _uses(conn, engine, break_glass_reviews.c.grant_id.is_(None) if unreviewed_only else None)
        counts: dict[tuple[int, str], int] = {}
        for r in conn.execute(select(break_glass.c.case_id, break_glass.c.username)):
            counts[(r.case_id, r.username)] = counts.get((r.case_id, r.username), 0) + 1
    for u in out:
        u["uses_of_case"] = counts.get((u["case_id"], u["username"]), 1)
    return out


def waiting_review(engine: Any) -> int:
    """How many uses no administrator has reviewed yet (the home page's notification)."""
    with engine.db.engine.connect() as conn:
        return len(conn.execute(select(break_glass.c.id).outerjoin(
            break_glass_reviews, break_glass_reviews.c.grant_id == break_glass.c.id)
            .where(break_glass_reviews.c.grant_id.is_(None))).all())


def review(engine: Any, reviewer: User, grant_id: int, note: str) -> dict[str, Any]:
    """An administrator marks a use reviewed with a note (required): recorded in the case's history. Not their own
    use (403); once only (409)."""
    if not reviewer.has(*REVIEWERS):
        raise forbidden("only administrators review break-glass uses")
    text = _visible(note or "")
    if BODY_BAD.search(note or ""):
        message = f"Note {CONTROL}"
    elif not text:
        message = "Enter what you found: was the emergency real, and is anything to follow up"
    elif len(text) > NOTE_MAX:
        message = f"Note must be {NOTE_MAX} characters or fewer (it has {len(text):,})"
    else:
        message = ""
    with engine.db.transaction() as conn:
        row = conn.execute(select(break_glass).where(break_glass.c.id == grant_id)).first()
        if row is None:
            raise NotFoundError(f"no break-glass use {grant_id}", grant=grant_id)
        if row.username == reviewer.username:
            raise forbidden("you cannot review your own break-glass use: another administrator must")
        if message:
            raise ValidationError(f"the review was not recorded: {message}",
                                  errors=[{"field": "note", "message": message}])
        done = conn.execute(select(break_glass_reviews.c.reviewer).where(break_glass_reviews.c.grant_id == grant_id)
                            ).first()
        if done is not None:
            raise ConflictError(f"break-glass use {grant_id} was already reviewed by {done.reviewer}", grant=grant_id)
        now = engine.now(conn)
        try:
            with conn.begin_nested():
                conn.execute(insert(break_glass_reviews).values(grant_id=grant_id, reviewer=reviewer.username,
                                                                at=now, note=text))
        except IntegrityError:  # reviewed by someone else a moment ago
            raise ConflictError(f"break-glass use {grant_id} was already reviewed", grant=grant_id) from None
        history.append(conn, history.case_chain(row.case_id), row.case_id, now, [Event(
            "case.break_glass_reviewed", {"grant": grant_id, "note": text, "user": row.username},
            actor=reviewer.username)], lock=engine.db.is_postgres)
    with engine.db.engine.connect() as conn:
        [out] = _uses(conn, engine, break_glass.c.id == grant_id)
    return out


# ---------------------------------------------------------------------- JSON API
Who = Annotated[User, Depends(current_user)]


async def glass_breaker(user: Who) -> User:
    """Casework roles only: checked before the body is read, so a role that may not is refused (403) whatever it
    sent and whichever case it named — the answer discloses nothing about any case."""
    if not may_break_glass(user):
        raise forbidden(ROLE_REFUSAL)
    return user


class BreakGlassIn(BaseModel):
    case: Id | Annotated[str, Field(max_length=64)] = Field(description="the case's number or reference (CASE-000123)")
    reason: str = Field(max_length=REASON_MAX * 2, description="why, in an emergency (10 to 500 characters)")


class ReviewIn(BaseModel):
    note: str = Field(max_length=NOTE_MAX * 2)


def _lasts(request: Request) -> timedelta:
    return request.app.state.break_glass_for


@router.post("/api/break-glass", status_code=201)
def api_break_glass(body: BreakGlassIn, request: Request,
                    user: Annotated[User, Depends(glass_breaker)]) -> dict[str, Any]:
    """Read a restricted case one is not named on, in an emergency, for a limited time (see api/break_glass.py)."""
    case = body.case if isinstance(body.case, str) else str(body.case)
    return use(request.app.state.engine, user, case, body.reason, _lasts(request))


@router.get("/api/admin/break-glass")
def api_report(request: Request, _admin: Annotated[User, Depends(require_roles(*REVIEWERS))]) -> dict[str, Any]:
    return {"uses": report(request.app.state.engine)}


@router.post("/api/admin/break-glass/{grant_id}/review")
def api_review(grant_id: Id, body: ReviewIn, request: Request,
               admin: Annotated[User, Depends(require_roles(*REVIEWERS))]) -> dict[str, Any]:
    return review(request.app.state.engine, admin, grant_id, body.note)


# ---------------------------------------------------------------------- pages
def _breaker(_engine: Any, user: User) -> None:
    if not may_break_glass(user):
        raise forbidden(ROLE_REFUSAL + ".")


def _question(request: Request, user: User, values: dict[str, str], by_field: dict[str, str] | None = None,
              status: int = 200) -> Response:
    return kit.render(request, "break_glass.html", {
        "user": user, "values": values, "field_errors": by_field or {}, "hours": _hours(_lasts(request)),
        "errors": kit.error_summary(by_field or {}, {})}, status)


def _hours(lasts: timedelta) -> str:
    minutes = int(lasts.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} minutes"
    return "1 hour" if minutes == 60 else f"{minutes // 60} hours"


def _form_problems(values: dict[str, str]) -> dict[str, str]:
    """What is wrong with the form as typed, without looking the case up: the confirmation page is the same
    whatever case is named, so that it tells no one which cases exist or are restricted."""
    problems = {}
    text = values["case"].strip().upper()
    if not text or to_id(text.removeprefix("CASE-")) is None:
        problems["case"] = "Enter the case reference, for example CASE-000123"
    try:
        _reason(values["reason"])
    except ValidationError as exc:
        problems["reason"] = exc.errors[0]["message"]
    return problems


@router.get("/break-glass", response_class=HTMLResponse, include_in_schema=False)
def question_page(request: Request) -> Response:
    page = kit.Page(request)
    try:
        user = page.open(_breaker)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page.guard(exc)
    return _question(request, user, {"case": "", "reason": ""})


@router.post("/break-glass", response_class=HTMLResponse, include_in_schema=False)
async def break_glass_post(request: Request) -> Response:
    """The question (case and reason), then the confirmation page that warns it will be reported, then the use."""
    page = kit.Page(request)
    try:
        user = await page.post(_breaker)
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc)
    values = {"case": kit.one(page.form, "case").strip()[:64], "reason": kit.one(page.form, "reason")[:REASON_MAX * 2]}
    problems = _form_problems(values)
    if problems:
        return _question(request, user, values, problems, 400)
    if kit.one(page.form, "confirm") != "yes":
        return kit.render(request, "break_glass_confirm.html", {
            "user": user, "values": values, "reason": " ".join(values["reason"].split()),
            "reference": values["case"].upper(), "hours": _hours(_lasts(request))})
    try:
        done = await run_in_threadpool(use, page.engine, user, values["case"], values["reason"], _lasts(request))
    except ValidationError as exc:
        return _question(request, user, values, {e["field"]: e["message"] for e in exc.errors}, 422)
    except NotFoundError:
        return _question(request, user, values, {"case": f"There is no case {values['case'].upper()}: check the "
                                                          "reference"}, 404)
    except ConflictError as exc:
        message = exc.message[:1].upper() + exc.message[1:]
        return _question(request, user, values, {"case": message}, 409)
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc)
    return kit.redirect(f"/cases/{done['case_id']}")


def _report_page(request: Request, user: User, *, notes: dict[int, str] | None = None,
                 by_field: dict[str, str] | None = None, flash: str = "", status: int = 200) -> Response:
    uses = report(request.app.state.engine)
    for u in uses:
        u["when"], u["until"] = day_and_time(u["at"]), day_and_time(u["expires_at"])
        if u["review"]:
            u["review"]["when"] = day_and_time(u["review"]["at"])
    return kit.render(request, "admin_break_glass.html", {
        "user": user, "uses": uses, "waiting": [u for u in uses if not u["review"]],
        "notes": notes or {}, "field_errors": by_field or {}, "flash": flash,
        "errors": kit.error_summary(by_field or {}, {})}, status)


@router.get("/admin/break-glass", response_class=HTMLResponse, include_in_schema=False)
def report_page(request: Request, reviewed: Id | None = None) -> Response:
    page = kit.Page(request)
    try:
        user = kit.page_user(request, *REVIEWERS)
        page.user = user
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc)
    return _report_page(request, user, flash=f"Break-glass use {reviewed} marked as reviewed" if reviewed else "")


@router.post("/admin/break-glass/{grant_id}", response_class=HTMLResponse, include_in_schema=False)
async def review_post(request: Request, grant_id: Id) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post()
        kit.page_user(request, *REVIEWERS)
        note = kit.one(page.form, "note")[:NOTE_MAX * 2]
        try:
            await run_in_threadpool(review, page.engine, user, grant_id, note)
        except ValidationError as exc:
            return _report_page(request, user, notes={grant_id: note},
                                by_field={f"note-{grant_id}": exc.errors[0]["message"]}, status=400)
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc, not_found="There is no such break-glass use.",
                          conflict_title="This break-glass use was already reviewed")
    return kit.redirect(f"/admin/break-glass?reviewed={grant_id}")
