"""The auditors' workbench: find cases, and read the case access log (JSON API and pages).

* Find cases (`GET /api/audit/cases`, `/audit/cases`): auditors and team managers (the roles that
  may open any unrestricted case record) search by case reference, person (name — words in any
  order, partial, case-insensitive —, date of birth, NHS number: the front door's own matching,
  api/intake.py), a date range (cases created, or events recorded, on or between two UK dates —
  both ends included), process, event type and the staff member who acted (an event's actor).
  Event criteria (type, actor and, for "events", the dates) must hold for one and the same event.
  Results are paged, newest case first; every case shown on a page is written to the case access
  log (action `search`, with the page it was shown on). A restricted case is found only by the
  people named on it, whatever their role.
* Access log (`GET /api/audit/access-log`, `/audit/access-log`): who opened, searched, exported or
  was refused which case, when, from which page and why — filtered by user, case reference, action,
  outcome and date range, newest first, paged. Auditors read every entry except those of restricted
  cases they are not named on; anyone named on a restricted case reads that case's entries.

The rules are in docs/security.md ("Auditors").
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, exists, func, insert, or_, select, true

from engine.clock import as_utc
from engine.event_types import CASE_EVENTS
from engine.history import iso
from engine.schema import cases, events, instances, process_versions

from . import intake
from . import page_kit as kit
from .access import entry_outcome, hidden_cases, restricted_map
from .auth import User, case_access_log, current_user
from .case_record import day_and_time, humanise
from .errors import ApiError, forbidden
from .inputs import is_whole

router = APIRouter()

SEARCH_ROLES = ("auditor", "team_manager")
LOG_ROLES = ("auditor",)  # and anyone named on a restricted case (that case's entries)
PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000
PERSON_CANDIDATES = 5_000  # rows a person search may hand to the exact check (a very common name: narrow it)
# every type written into a case's chain (engine/event_types.py), by label: the "Event type" list
EVENT_TYPES = tuple(sorted(CASE_EVENTS, key=lambda t: CASE_EVENTS[t].lower()))
# the access log's actions the code writes; the list offered adds any other action already recorded (an action
# is what the page or route asked for: api/cases.py open_case's callers name theirs)
ACTIONS = ("open", "record", "history", "chronology", "diagram", "letter", "note", "notes", "panel", "coordinator",
           "restriction", "search", "export", "replay", "integrity", "integrity check", "cld_return",
           "break_glass", "subject_access", "subject_access_page", "close", "actions", "correct", "position",
           "letter_send_again", "request", "start_process", "task", "transition", "transition_referral")
OPEN_STATUSES = intake.OPEN_STATUSES
_EVENT_TYPE = re.compile(r"^[a-z_]{1,30}\.[a-z_]{1,30}$")
_WORD = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,63}$")
_REFERENCE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,63}$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


# ---------------------------------------------------------------------- criteria
@dataclass
class Criteria:
    reference: str = ""
    name: str = ""
    date_of_birth: str = ""  # ISO
    nhs_number: str = ""
    date_from: str = ""  # ISO, UK calendar date, included
    date_to: str = ""  # ISO, UK calendar date, included
    dates: str = "created"  # created | events
    process: str = ""
    event_type: str = ""
    actor: str = ""

    def empty(self) -> bool:
        return not any((self.reference, self.name, self.date_of_birth, self.nhs_number, self.date_from,
                        self.date_to, self.process, self.event_type, self.actor))

    def person(self) -> intake.Terms:
        return intake.Terms(name=self.name, date_of_birth=self.date_of_birth, nhs_number=self.nhs_number)


def _one(values: Any, name: str) -> str:
    v = values.get(name)
    if isinstance(v, list):
        v = v[-1] if v else ""
    return str(v or "").strip()


def _date(values: Any, name: str, problems: intake.Problems, label: str, *, past: date | None = None) -> str:
    """An ISO date from `name` (YYYY-MM-DD, the API) or `name-day/-month/-year` (the page's date input)."""
    text = _one(values, name)
    parts = [_one(values, f"{name}-{p}") for p in ("day", "month", "year")]
    if text:
        m = _ISO.fullmatch(text)
        if not m:
            problems.add(name, f"{label} must be a date written as YYYY-MM-DD, for example 2031-04-01")
            return ""
        parts = [m.group(3), m.group(2), m.group(1)]
    if not any(parts):
        return ""
    try:
        if len(parts[2]) != 4:
            raise ValueError
        d = date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        problems.add(name, f"{label} must be a real date, for example 1 4 2031")
        return ""
    if past is not None and d > past:
        problems.add(name, f"{label} must be in the past")
        return ""
    return d.isoformat()


def parse_criteria(values: Any, today: date) -> Criteria:
    """The search criteria from query parameters; 422 naming each field that is not valid."""
    problems = intake.Problems()
    c = Criteria()
    ref = _one(values, "reference").upper()
    if ref and not _REFERENCE.match(ref):
        problems.add("reference", "Case reference must be letters, digits and hyphens, for example CASE-000123")
    else:
        c.reference = ref
    c.name = intake.clean_name(_one(values, "name"), problems)
    dob_key = "date_of_birth" if _one(values, "date_of_birth") else "dob"
    c.date_of_birth = _date(values, dob_key, problems, "Date of birth", past=today)
    c.nhs_number = intake.clean_nhs(_one(values, "nhs_number"), problems)
    c.date_from = _date(values, "from", problems, "The start of the date range")
    c.date_to = _date(values, "to", problems, "The end of the date range")
    if c.date_from and c.date_to and c.date_to < c.date_from:
        problems.add("to", "The end of the date range must be the same as or after its start")
    dates = _one(values, "dates") or "created"
    if dates not in ("created", "events"):
        problems.add("dates", "Choose whether the dates are when the case was created or when events happened")
    c.dates = dates
    process = _one(values, "process")
    if process and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,254}", process):
        problems.add("process", "Process must be a process id, for example front_door")
    else:
        c.process = process
    etype = _one(values, "event_type")
    if etype and not _EVENT_TYPE.match(etype):
        problems.add("event_type", "Event type must be written like task.completed")
    elif etype and etype not in CASE_EVENTS:
        problems.add("event_type", f"There is no event type {etype} in a case's history: choose one from the list")
    else:
        c.event_type = etype
    actor = _one(values, "actor").lower()
    if actor and not _WORD.match(actor):
        problems.add("actor", "Staff member must be a username, for example sam.social-worker")
    else:
        c.actor = actor
    if not problems.by_field and c.empty():
        problems.add("reference", "Enter at least one thing to search by")
    problems.raise_if_any()
    return c


def _page_number(values: Any) -> int:
    text = _one(values, "page") or "1"
    if not is_whole(text) or not 1 <= int(text) <= MAX_PAGE:
        raise ApiError(422, "invalid", f"page must be a whole number from 1 to {MAX_PAGE}",
                       errors=[{"field": "page", "message": f"Page must be a whole number from 1 to {MAX_PAGE}"}])
    return int(text)


def _page_size(values: Any) -> int:
    text = _one(values, "per_page") or str(PAGE_SIZE)
    if not is_whole(text) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise ApiError(422, "invalid", f"per_page must be a whole number from 1 to {MAX_PAGE_SIZE}",
                       errors=[{"field": "per_page", "message": f"Per page must be from 1 to {MAX_PAGE_SIZE}"}])
    return int(text)


def uk_day_bounds(first: str, last: str) -> tuple[datetime | None, datetime | None]:
    """[start, end) in UTC of the UK calendar days `first`..`last` (ISO dates, either may be empty):
    both ends are included."""
    start = end = None
    if first:
        start = datetime.combine(date.fromisoformat(first), time(0), kit.UK).astimezone(timezone.utc)
    if last and date.fromisoformat(last) < date.max:  # 31 December 9999: no end (the day after cannot be written)
        end = datetime.combine(date.fromisoformat(last) + timedelta(days=1), time(0), kit.UK).astimezone(timezone.utc)
    return start, end


# ---------------------------------------------------------------------- the search
def may_search(user: User) -> bool:
    return user.has(*SEARCH_ROLES)


def search_cases(engine: Any, user: User, c: Criteria, *, page: int = 1, per_page: int = PAGE_SIZE,
                 shown_on: str = "/api/audit/cases") -> dict[str, Any]:
    """One page of the cases matching `c` that this user may find (newest first), each logged."""
    if not may_search(user):
        raise forbidden("Finding cases is for auditors and team managers.")
    where: list[Any] = []
    if c.reference:
        where.append(cases.c.reference == c.reference)
    terms = c.person()
    if terms.words:
        where.append(intake._name_cond(terms.name))
    if terms.date_of_birth:
        where.append(intake._dob_cond(terms.date_of_birth))
    if terms.nhs_number:
        where.append(intake._nhs_cond(terms.nhs_number))
    start, end = uk_day_bounds(c.date_from, c.date_to)
    if c.dates == "created":
        if start is not None:
            where.append(cases.c.created_at >= start)
        if end is not None:
            where.append(cases.c.created_at < end)
    if c.process:
        where.append(cases.c.id.in_(select(instances.c.case_id).where(instances.c.process_id == c.process)))
    ev: list[Any] = []
    if c.event_type:
        ev.append(events.c.type == c.event_type)
    if c.actor:
        ev.append(events.c.actor == c.actor)
    if c.dates == "events":
        if start is not None:
            ev.append(events.c.at >= iso(start))
        if end is not None:
            ev.append(events.c.at < iso(end))
    if ev:
        where.append(cases.c.id.in_(select(events.c.case_id).where(events.c.case_id.is_not(None), *ev)))
    with engine.db.engine.connect() as conn:
        hidden = hidden_cases(conn, user)
        if hidden:
            where.append(cases.c.id.not_in(hidden))
        cond = and_(*where)
        person = bool(terms.words or terms.date_of_birth or terms.nhs_number)
        if person:
            # the front door's exact check on the person's own details (a word elsewhere in the record is
            # not a match): the SQL pre-filter's candidates, checked here, then paged
            rows = conn.execute(select(cases.c.id, cases.c.title, cases.c.data).where(cond)
                                .order_by(cases.c.id.desc()).limit(PERSON_CANDIDATES + 1)).all()
            if len(rows) > PERSON_CANDIDATES:  # checking only the newest would hide older cases without a word
                field = "name" if terms.words else "date_of_birth" if terms.date_of_birth else "nhs_number"
                msg = (f"More than {PERSON_CANDIDATES:,} cases have details like these: add more of the name, the "
                       "date of birth, the NHS number, dates or a process to narrow the search")
                raise ApiError(422, "invalid", msg, errors=[{"field": field, "message": msg}])
            ids = [r.id for r in rows if _person_matches(terms, intake._person(json.loads(r.data), r.title))]
            total = len(ids)
            page_ids = ids[(page - 1) * per_page:page * per_page]
        else:
            total = conn.execute(select(func.count()).select_from(cases).where(cond)).scalar_one()
            page_ids = list(conn.execute(select(cases.c.id).where(cond).order_by(cases.c.id.desc())
                                         .offset((page - 1) * per_page).limit(per_page)).scalars())
        results = _describe(conn, page_ids)
    if results:
        with engine.db.transaction() as conn:
            now = engine.now(conn)
            conn.execute(insert(case_access_log), [
                {"case_id": r["case_id"], "user": user.username, "at": now, "action": "search",
                 "page": shown_on[:200], "reason": None, "outcome": "allowed"} for r in results])
    pages = max(1, -(-total // per_page))
    return {"criteria": asdict(c), "page": page, "per_page": per_page, "total": total, "pages": pages,
            "results": results}


def _person_matches(terms: intake.Terms, p: dict[str, Any]) -> bool:
    if terms.words and not intake._name_ok(terms, p["name"]):
        return False
    if terms.date_of_birth and p["date_of_birth"] != terms.date_of_birth:
        return False
    if terms.nhs_number and p["nhs_number"] != terms.nhs_number:
        return False
    return True


def _describe(conn: Any, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    is_open = exists().where(instances.c.case_id == cases.c.id, instances.c.status.in_(OPEN_STATUSES))
    rows = {r.id: r for r in conn.execute(select(cases.c.id, cases.c.reference, cases.c.title, cases.c.data,
                                                 cases.c.created_at, is_open.label("open"))
                                          .where(cases.c.id.in_(ids)))}
    procs: dict[int, set[str]] = {}
    for r in conn.execute(select(instances.c.case_id, instances.c.process_id).where(instances.c.case_id.in_(ids))):
        procs.setdefault(r.case_id, set()).add(r.process_id)
    out = []
    for cid in ids:
        r = rows[cid]
        p = intake._person(json.loads(r.data), r.title)
        out.append({"case_id": r.id, "reference": r.reference, "name": p["name"],
                    "date_of_birth": p["date_of_birth"] or None, "created_at": as_utc(r.created_at).isoformat(),
                    "processes": sorted(procs.get(cid, ())), "open": bool(r.open)})
    return out


def process_names(engine: Any) -> dict[str, str]:
    """Each process id's name, as its newest version calls it (what the search results show)."""
    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(process_versions.c.process_id, process_versions.c.name)
                            .order_by(process_versions.c.process_id, process_versions.c.version))
        return {r.process_id: r.name or r.process_id for r in rows}


def event_label(event_type: str) -> str:
    """An event type in words ("task.completed" → "Task completed")."""
    return humanise(event_type.replace(".", " "))


def process_ids(engine: Any) -> list[str]:
    with engine.db.engine.connect() as conn:
        return sorted(set(conn.execute(select(process_versions.c.process_id).distinct()).scalars()))


# ---------------------------------------------------------------------- the access log
@dataclass
class LogFilter:
    user: str = ""
    reference: str = ""
    action: str = ""
    outcome: str = ""
    date_from: str = ""
    date_to: str = ""


def log_actions(engine: Any) -> list[str]:
    """Every action the access log may hold: the ones the code writes and any other already recorded (an
    action only an older version wrote). The log grows with every case opened, so the actions recorded are
    read once per process (`SELECT DISTINCT`) and after that only from the rows added since (`id >` the last
    row read, by the primary key): the page's list no longer reads the whole log at every visit. A row whose
    id was handed out before the last read but committed after it is not read again; its action is one the
    code writes (in ACTIONS) unless an older version wrote it, and that version's rows are long committed."""
    t = case_access_log
    last, seen = getattr(engine, "_carepath_log_actions", (None, frozenset()))
    with engine.db.engine.connect() as conn:
        top = conn.execute(select(func.max(t.c.id))).scalar() or 0
        if last is None or top > last:
            query = select(t.c.action).distinct().where(t.c.id <= top)
            recorded = conn.execute(query if last is None else query.where(t.c.id > last)).scalars().all()
            seen = seen | {a.removeprefix("refused:") for a in recorded if a}
            engine._carepath_log_actions = (top, seen)
    return sorted(set(ACTIONS) | seen)


def parse_log_filter(values: Any, actions: list[str] | None = None) -> LogFilter:
    problems = intake.Problems()
    f = LogFilter()
    who = _one(values, "user").lower()
    if who and not _WORD.match(who):
        problems.add("user", "User must be a username, for example sam.social-worker")
    else:
        f.user = who
    ref = _one(values, "reference").upper()
    if ref and not _REFERENCE.match(ref):
        problems.add("reference", "Case reference must be letters, digits and hyphens, for example CASE-000123")
    else:
        f.reference = ref
    action = " ".join(_one(values, "action").lower().split())
    if action and not re.fullmatch(r"[a-z_ ]{1,32}", action):
        problems.add("action", "Action must be a word such as open, search or export")
    elif action and actions is not None and action not in actions:
        problems.add("action", f"There is no action \u201c{action}\u201d in the access log: choose one from the list, "
                               "such as open, search or export")
    else:
        f.action = action
    outcome = _one(values, "outcome").lower()
    if outcome and outcome not in ("allowed", "refused"):
        problems.add("outcome", "Outcome must be allowed or refused")
    else:
        f.outcome = outcome
    f.date_from = _date(values, "from", problems, "The start of the date range")
    f.date_to = _date(values, "to", problems, "The end of the date range")
    if f.date_from and f.date_to and f.date_to < f.date_from:
        problems.add("to", "The end of the date range must be the same as or after its start")
    problems.raise_if_any()
    return f


def log_scope(conn: Any, user: User) -> Any:
    """SQL condition on case_access_log: the entries this user may read; None when none at all."""
    restricted = restricted_map(conn)
    named = sorted(cid for cid, allowed in restricted.items() if user.username in allowed)
    hidden = sorted(cid for cid, allowed in restricted.items() if user.username not in allowed)
    if user.has(*LOG_ROLES):
        return case_access_log.c.case_id.not_in(hidden) if hidden else true()
    if named:
        return case_access_log.c.case_id.in_(named)
    return None


def may_read_log(engine: Any, user: User) -> bool:
    with engine.db.engine.connect() as conn:
        return log_scope(conn, user) is not None


def read_log(engine: Any, user: User, f: LogFilter, *, page: int = 1, per_page: int = PAGE_SIZE) -> dict[str, Any]:
    t = case_access_log
    with engine.db.engine.connect() as conn:
        scope = log_scope(conn, user)
        if scope is None:
            raise forbidden("The access log is for auditors, and for the people named on a restricted case.")
        where = [scope]
        if f.user:
            where.append(t.c.user == f.user)
        if f.reference:
            where.append(t.c.case_id.in_(select(cases.c.id).where(cases.c.reference == f.reference)))
        if f.action:
            where.append(or_(t.c.action == f.action, t.c.action == "refused:" + f.action))
        if f.outcome == "refused":
            where.append(or_(t.c.outcome == "refused", t.c.action.like("refused:%")))
        elif f.outcome == "allowed":
            where.append(and_(or_(t.c.outcome.is_(None), t.c.outcome != "refused"),
                              t.c.action.not_like("refused:%")))
        start, end = uk_day_bounds(f.date_from, f.date_to)
        if start is not None:
            where.append(t.c.at >= start)
        if end is not None:
            where.append(t.c.at < end)
        cond = and_(*where)
        total = conn.execute(select(func.count()).select_from(t).where(cond)).scalar_one()
        rows = conn.execute(select(t, cases.c.reference).select_from(t.outerjoin(cases, cases.c.id == t.c.case_id))
                            .where(cond).order_by(t.c.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    entries = []
    for r in rows:
        action, outcome = entry_outcome(r.action, r.outcome)
        entries.append({"id": r.id, "at": as_utc(r.at).isoformat(), "user": r.user, "case_id": r.case_id,
                        "reference": r.reference, "action": action, "outcome": outcome, "page": r.page,
                        "reason": r.reason})
    return {"filter": asdict(f), "page": page, "per_page": per_page, "total": total,
            "pages": max(1, -(-total // per_page)), "entries": entries}


# ---------------------------------------------------------------------- JSON API
@router.get("/api/audit/cases")
def api_search(request: Request, user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
    if not may_search(user):
        raise forbidden("Finding cases is for auditors and team managers.")
    engine = request.app.state.engine
    values = request.query_params
    page, per_page = _page_number(values), _page_size(values)
    c = parse_criteria(values, engine.now().date())
    return search_cases(engine, user, c, page=page, per_page=per_page, shown_on="/api/audit/cases")


@router.get("/api/audit/access-log")
def api_access_log(request: Request, user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
    engine = request.app.state.engine
    values = request.query_params
    page, per_page = _page_number(values), _page_size(values)
    return read_log(engine, user, parse_log_filter(values, log_actions(engine)), page=page, per_page=per_page)


# ---------------------------------------------------------------------- pages
def _paging(path: str, values: Any, page: int, pages: int) -> dict[str, Any]:
    keep = [(k, v) for k, v in values.multi_items() if k != "page" and v != ""]

    def url(n: int) -> str:
        return path + "?" + urlencode(keep + [("page", str(n))])

    return {"page": page, "pages": pages, "prev": url(page - 1) if page > 1 and page <= pages else None,
            "next": url(page + 1) if page < pages else None, "last": url(pages),
            "beyond": page > pages}  # past the last page of results: the page says so and links to the last


def _field_errors(exc: ApiError, anchors: dict[str, str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    by_field = {e["field"]: e["message"] for e in exc.extra.get("errors", [])}
    return by_field, kit.error_summary(by_field, anchors)


def _with_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        r = dict(r)
        if r.get("created_at"):
            r["created_text"] = kit.long_date(datetime.fromisoformat(r["created_at"]))
        if r.get("at"):
            r["at_text"] = day_and_time(datetime.fromisoformat(r["at"]))  # UK time, as on every other page
        if r.get("date_of_birth"):
            d = date.fromisoformat(r["date_of_birth"])
            r["dob_text"] = f"{d.day} {d:%B %Y}"
        out.append(r)
    return out


SEARCH_ANCHORS = {"dob": "dob-day", "date_of_birth": "dob-day", "from": "from-day", "to": "to-day",
                  "dates": "dates", "page": "reference", "per_page": "reference"}


@router.get("/audit/cases", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request) -> Response:
    user = None
    try:
        user = kit.signed_in(request)
        if not may_search(user):
            raise forbidden("Finding cases is for auditors and team managers.")
        engine = request.app.state.engine
        values = request.query_params
        ctx: dict[str, Any] = {"user": user, "v": {k: values.get(k, "") for k in values.keys()},
                               "processes": process_ids(engine), "process_names": process_names(engine),
                               "event_types": [(t, f"{CASE_EVENTS[t]} ({t})") for t in EVENT_TYPES],
                               "field_errors": {}, "errors": [], "result": None}
        if any(k not in ("page", "per_page") for k in values.keys()):  # the form was sent
            try:
                page, per_page = _page_number(values), _page_size(values)
                c = parse_criteria(values, engine.now().date())
                result = search_cases(engine, user, c, page=page, per_page=per_page, shown_on="/audit/cases")
            except ApiError as exc:
                if exc.status != 422:
                    raise
                ctx["field_errors"], ctx["errors"] = _field_errors(exc, SEARCH_ANCHORS)
                return kit.render(request, "audit_cases.html", ctx, 400)
            result["results"] = _with_times(result["results"])
            ctx["result"] = result
            ctx["paging"] = _paging("/audit/cases", values, result["page"], result["pages"])
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    return kit.render(request, "audit_cases.html", ctx,
                      404 if ctx.get("paging", {}).get("beyond") and ctx["result"]["total"] else 200)


LOG_ANCHORS = {"from": "from-day", "to": "to-day", "page": "user", "per_page": "user"}


@router.get("/audit/access-log", response_class=HTMLResponse, include_in_schema=False)
def access_log_page(request: Request) -> Response:
    user = None
    try:
        user = kit.signed_in(request)
        engine = request.app.state.engine
        if not may_read_log(engine, user):
            raise forbidden("The access log is for auditors, and for the people named on a restricted case.")
        values = request.query_params
        ctx: dict[str, Any] = {"user": user, "v": {k: values.get(k, "") for k in values.keys()},
                               "actions": log_actions(engine), "field_errors": {}, "errors": [], "result": None}
        try:
            page, per_page = _page_number(values), _page_size(values)
            f = parse_log_filter(values, ctx["actions"])
        except ApiError as exc:
            if exc.status != 422:
                raise
            ctx["field_errors"], ctx["errors"] = _field_errors(exc, LOG_ANCHORS)
            return kit.render(request, "audit_access_log.html", ctx, 400)
        result = read_log(engine, user, f, page=page, per_page=per_page)
        result["entries"] = _with_times(result["entries"])
        ctx["result"] = result
        ctx["paging"] = _paging("/audit/access-log", values, result["page"], result["pages"])
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc)
    return kit.render(request, "audit_access_log.html", ctx,
                      404 if ctx.get("paging", {}).get("beyond") and ctx["result"]["total"] else 200)


def nav_access_log(request: Request, user: User | None) -> bool:
    """For the header: does this user's navigation show "Access log" (auditors; people named on a
    restricted case)? Cached on the request."""
    if user is None:
        return False
    if user.has(*LOG_ROLES):
        return True
    cached = getattr(request.state, "nav_access_log", None)
    if cached is None:
        cached = may_read_log(request.app.state.engine, user)
        request.state.nav_access_log = cached
    return cached


kit.templates.env.globals["nav_access_log"] = nav_access_log
