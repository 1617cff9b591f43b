"""The Client Level Data return's download page, for the people who send it (issue 12; docs/cld-returns-page.md).

* `GET /returns/cld` — choose the period: one of the last eight quarters (the current one, in progress, first) or
  "another period" with a start and an end date (GOV.UK date inputs). Sent back to the same address (a GET form),
  the page checks the period — a date that is not real, an end before the start, a period longer than a year, a
  start in the future: a GOV.UK error summary naming the date — and asks for the return: it is prepared in the
  background and kept in the database (`ask`, `prepared_returns`), so until it is ready the page says "Your return
  is being prepared" with a link to check again (a script follows it when scripts run, `/returns/cld/status`);
  then it shows the summary of the return: its rows by event type, the people it is about, the data-quality
  report (`handlers.cld_quality`: each finding with the case to fix, errors first; restricted cases counted,
  listed only to the people named on them), the rows it leaves out (withheld), and a "Download the CSV" link
  carrying the return's version.
* `GET /returns/cld.csv?from=YYYY-MM-DD&to=YYYY-MM-DD` — the return as a CSV attachment named with the council and
  the period. Every download is written to the case access log, one line per case whose person the file is about
  (action `cld_return`, the page path, the period as the reason: no personal data); a bad period is a 422 page
  saying what is wrong. With `version`, the file is the rows the summary reported (the prepared return, from any
  server process), the waiting page while it is being prepared, or a 409 page when it is no longer kept and the
  cases have changed since.

Who may: `performance` and `team_manager` (`RETURN_ROLES`); everyone else 403, signed out to the sign-in page.

The return itself is `handlers.cld.cld_return` (rewritten to DHSC's specification elsewhere): this page reads it
only through `produce` below, so that a change of its shape (rows, problems, withheld) changes one function.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import tempfile
import threading
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from engine.schema import cases, events, prepared_returns
from handlers import cld, cld_quality

from . import page_kit as kit
from .access import restricted_map
from .auth import OVERSIGHT_ROLES, User, case_access_log
from .errors import forbidden

router = APIRouter(include_in_schema=False)

RETURN_ROLES = ("performance", "team_manager")
COUNCIL = "Northshire"  # the council in the file's name when the return names no LA code (base.html's council)
QUARTERS_SHOWN = 8
LOG_ACTION = "cld_return"
_REFERENCE = re.compile(r"CASE-\d+")


# ---------------------------------------------------------------------- the return, through one adapter
@dataclass
class Return:
    """What the page shows and the CSV holds, whatever shape `handlers.cld.cld_return` answers in."""

    start: date
    end: date
    rows: list[dict[str, Any]]
    problems: list[dict[str, Any]] = field(default_factory=list)  # rows it could not code: {"message", "case"?}
    withheld: list[dict[str, Any]] = field(default_factory=list)  # rows left out of the file: {"message", "case"?}
    error: str | None = None  # the return could not be produced at all (the history holds a value it cannot code)
    findings: list[dict[str, Any]] = field(default_factory=list)  # handlers.cld_quality's report, errors first


def header() -> list[str]:
    """The CSV's column names, as `handlers.cld` declares them (`CLD_FIELDS`; before it, the `CSV_HEADERS`)."""
    fields = getattr(cld, "CLD_FIELDS", None)
    if fields:
        return [str(f) for f in fields]
    return [cld.CSV_HEADERS[c] for c in cld.CSV_HEADERS]


def _issue(item: Any) -> dict[str, Any]:
    """A problem or withheld row as {message, case}: a text, or a dict with a message and maybe the case."""
    if isinstance(item, dict):
        message = (item.get("message") or item.get("problem") or item.get("reason") or item.get("why")
                   or item.get("check") or "")
        if item.get("field"):  # handlers.cld's problems: the field and the value to correct, then why
            value = "" if item.get("value") is None else f" {item['value']!r}"
            message = f"{item['field']}{value}: {message}"
        case = item.get("case_reference") or item.get("case") or item.get("reference") or item.get("local_person_id")
        return {**item, "message": str(message), "case": None if case is None else str(case)}
    text = str(item)
    found = _REFERENCE.search(text)
    return {"message": text, "case": found.group(0) if found else None}


def produce(engine: Any, start: date, end: date) -> Return:
    """The return for [start, end] (inclusive). Reads `cld_return`'s answer in either shape: a list of rows, or an
    object or dict with `rows`, `problems` and `withheld`. A history the return cannot code is `error`, not a 500."""
    try:
        out = cld.cld_return(engine, start, end)
    except cld.CldDataError as exc:
        return Return(start, end, [], error=str(exc))
    return adapt(start, end, out)


def adapt(start: date, end: date, out: Any) -> Return:
    """`cld_return`'s answer as a Return, with its data-quality report (`handlers.cld_quality.quality_report`)."""
    if isinstance(out, dict):
        rows, problems, withheld = out.get("rows"), out.get("problems"), out.get("withheld")
    elif hasattr(out, "rows"):
        rows, problems, withheld = out.rows, getattr(out, "problems", None), getattr(out, "withheld", None)
    else:  # handlers.cld.CldReturn: a list of rows carrying .problems and .withheld
        rows, problems, withheld = out, getattr(out, "problems", None), getattr(out, "withheld", None)
    rows = list(rows or [])
    raw = [p if isinstance(p, dict) else {"why": str(p), "case_reference": _issue(p)["case"]} for p in problems or []]
    findings = cld_quality.quality_report(rows, [{**p, "why": p.get("why") or p.get("message") or ""} for p in raw])
    return Return(start, end, rows, [_issue(p) for p in problems or []], [_issue(w) for w in withheld or []],
                  findings=findings)


def _value(row: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if row.get(k) not in (None, ""):
            return row[k]
    return None


def event_type(row: dict[str, Any]) -> str:
    return str(_value(row, "Event_Type", "event_type") or "Not given")


def person_id(row: dict[str, Any]) -> Any:
    return _value(row, "LA_Person_Unique_Identifier", "local_person_id")


def csv_bytes(result: Return) -> bytes:
    """The file `carepath cld` writes for the same rows (`handlers.cld.write_cld_csv`), as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cld.csv"
        cld.write_cld_csv(result.rows, path)
        return path.read_bytes()


def filename(result: Return) -> str:
    la = next((str(r[k]) for r in result.rows for k in ("LA_Code", "la_code") if r.get(k)), None) or COUNCIL
    la = re.sub(r"[^A-Za-z0-9]+", "-", la).strip("-") or COUNCIL
    return f"CLD-{la}-{result.start.isoformat()}-to-{result.end.isoformat()}.csv"


def summary(result: Return) -> dict[str, Any]:
    order = {t: i for i, t in enumerate(cld.EVENT_TYPES)}
    by_type = Counter(event_type(r) for r in result.rows)
    people = {person_id(r) for r in result.rows if person_id(r) is not None}
    return {"by_type": sorted(by_type.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])),
            "rows": len(result.rows), "people": len(people)}


# ---------------------------------------------------------------------- the data-quality report, for one user
CHECK_TITLES = {  # handlers.cld_quality.CHECKS, in words (DHSC's own check in brackets where it has one)
    "not_coded": "Value with no code in the specification",
    "missing_mandatory": "Mandatory field blank (Failed: Blank (Mandatory))",
    "invalid_value": "Value not in the list (Failed: Invalid)",
    "end_before_start": "Event ends before it starts",
    "out_of_order": "Date outside the period or after death",
    "service_without_delivery_mechanism": "Service without a delivery mechanism",
    "overlapping_events": "Events that overlap",
    "no_nhs_number": "Person without an NHS number",
}
SHOWN_PER_CHECK = 100  # a county's year can have thousands of one warning: each check lists its first 100


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def report(engine: Any, result: Return, user: Any) -> dict[str, Any]:
    """What the summary page shows `user`: the counts by event type, the findings (errors first) with the case to
    fix, the rows left out. Every finding is counted; a finding or left-out row on a restricted case the user is not
    named on is counted, not listed (api/measures.py's drill-down does the same). A case reference links to the case
    record when the user may open it: team managers any unrestricted case, anyone the restricted cases naming them."""
    refs = {f["case_reference"] for f in result.findings if f.get("case_reference")}
    refs |= {w["case"] for w in result.withheld if w.get("case")}
    with engine.db.engine.connect() as conn:
        query = select(cases.c.reference, cases.c.id)
        if len(refs) <= 500:  # a county's report names tens of thousands: one pass over the cases, not a huge IN
            query = query.where(cases.c.reference.in_(sorted(refs)))
        ids = {r.reference: r.id for r in conn.execute(query) if r.reference in refs} if refs else {}
        restricted = restricted_map(conn) if ids else {}
    may_open_any = user.has(*OVERSIGHT_ROLES)
    hidden_cases: set[str] = set()

    def case(ref: str | None) -> dict[str, Any] | None:
        """{reference, link} for a case the user may see listed; None when hidden (the reference is remembered)."""
        if not ref:
            return {"reference": None, "link": None}
        cid = ids.get(ref)
        allowed = restricted.get(cid) if cid is not None else None
        if allowed is not None and user.username not in allowed:
            hidden_cases.add(ref)
            return None
        may_open = cid is not None and (allowed is not None or may_open_any)
        return {"reference": ref, "link": f"/cases/{cid}" if may_open else None}

    errors = sum(f["severity"] == cld_quality.ERROR for f in result.findings)
    warnings = len(result.findings) - errors
    groups: list[dict[str, Any]] = []
    hidden_findings = 0
    for f in result.findings:
        shown = case(f.get("case_reference"))
        if shown is None:
            hidden_findings += 1
            continue
        if not groups or (groups[-1]["check"], groups[-1]["severity"]) != (f["check"], f["severity"]):
            groups.append({"check": f["check"], "severity": f["severity"], "count": 0, "items": [],
                           "title": CHECK_TITLES.get(f["check"], f["check"].replace("_", " ").capitalize())})
        group = groups[-1]
        group["count"] += 1
        if len(group["items"]) < SHOWN_PER_CHECK:
            group["items"].append({**f, "case": shown})
    hidden_in_findings = set(hidden_cases)
    withheld, hidden_withheld = [], 0
    for w in result.withheld:
        shown = case(w.get("case"))
        if shown is None:
            hidden_withheld += 1
        else:
            withheld.append({**w, "shown": shown})
    if errors or warnings:
        headline = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    else:
        headline = "No problems found: the return is ready to send"
    return {"summary": summary(result), "errors": errors, "warnings": warnings, "headline": headline,
            "error_groups": [g for g in groups if g["severity"] == cld_quality.ERROR],
            "warning_groups": [g for g in groups if g["severity"] != cld_quality.ERROR],
            "hidden_findings": hidden_findings, "hidden_finding_cases": len(hidden_in_findings),
            "withheld": withheld, "hidden_withheld": hidden_withheld,
            "shown_per_check": SHOWN_PER_CHECK}


# ---------------------------------------------------------------------- once per request, the same rows in the file
def version(engine: Any) -> str:
    """What the return is made from, in a few characters: the latest history event, the number of cases and the
    latest change to a case record, and the council's LA code. The same version gives the same return."""
    with engine.db.engine.connect() as conn:
        last_event = conn.execute(select(func.max(events.c.id))).scalar() or 0
        n_cases, changed = conn.execute(select(func.count(), func.max(cases.c.updated_at)).select_from(cases)).one()
    raw = f"{last_event}|{n_cases}|{changed}|{cld.la_code_setting() or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- prepared in the background, kept in the db
KIND = "cld"
KEEP = 6  # the newest prepared returns kept (a county year's is a few MB compressed); older ones are deleted
STALE = timedelta(minutes=30)  # a preparation still unfinished after this is taken as lost (its process stopped)
PREPARING, READY, FAILED = "preparing", "ready", "failed"
log = logging.getLogger("carepath.returns")


def _key(start: date, end: date, ver: str) -> Any:
    t = prepared_returns.c
    return and_(t.kind == KIND, t.period_start == start.isoformat(), t.period_end == end.isoformat(), t.version == ver)


def _plain(value: Any) -> Any:
    """A value of a row as JSON keeps it: dates as the text the CSV writes for them (str), anything else as text."""
    return str(value)


def pack(result: Return) -> bytes:
    """The return as stored: its rows, problems, withheld rows, error and findings, compressed JSON."""
    body = {"start": result.start.isoformat(), "end": result.end.isoformat(), "rows": result.rows,
            "problems": result.problems, "withheld": result.withheld, "error": result.error,
            "findings": result.findings}
    return zlib.compress(json.dumps(body, default=_plain, separators=(",", ":")).encode(), 6)


def unpack(body: bytes) -> Return:
    raw = json.loads(zlib.decompress(body))
    return Return(date.fromisoformat(raw["start"]), date.fromisoformat(raw["end"]), raw["rows"], raw["problems"],
                  raw["withheld"], raw["error"], raw["findings"])


@dataclass
class Prepared:
    """A return of one period and version as the database holds it."""

    status: str  # preparing, ready or failed
    version: str
    started_at: Any
    result: Return | None = None  # when ready
    failure: str | None = None  # when failed: the error's type


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def lookup(engine: Any, start: date, end: date, ver: str) -> Prepared | None:
    t = prepared_returns.c
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(t.status, t.version, t.started_at, t.body, t.failure)
                           .where(_key(start, end, ver))).first()
    if row is None:
        return None
    result = unpack(row.body) if row.status == READY and row.body is not None else None
    return Prepared(row.status, row.version, _utc(row.started_at), result, row.failure)


def preparing_now(engine: Any, start: date, end: date) -> str | None:
    """The version of the period's return some process is preparing now (not stale), the newest; None if none."""
    t = prepared_returns.c
    with engine.db.engine.connect() as conn:
        now = engine.now(conn)
        rows = conn.execute(select(t.version, t.started_at).where(
            t.kind == KIND, t.period_start == start.isoformat(), t.period_end == end.isoformat(),
            t.status == PREPARING).order_by(t.started_at.desc())).all()
    fresh = [r.version for r in rows if now - _utc(r.started_at) < STALE]
    return fresh[0] if fresh else None


def claim(engine: Any, start: date, end: date, ver: str) -> bool:
    """Take the preparation of this return for this process: True when no process has it (none began it, it failed,
    or its preparation is stale). Safe between processes: a new row is inserted once (the primary key), an old one
    is taken by a compare-and-set on its status and start time."""
    t = prepared_returns.c
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        row = conn.execute(select(t.status, t.started_at).where(_key(start, end, ver))).first()
        if row is None:
            taken = None
        elif row.status == READY or (row.status == PREPARING and now - _utc(row.started_at) < STALE):
            return False
        else:
            taken = conn.execute(update(prepared_returns).where(
                _key(start, end, ver), t.status == row.status, t.started_at == row.started_at).values(
                status=PREPARING, started_at=now, finished_at=None, body=None, failure=None)).rowcount == 1
    if taken is not None:
        return taken
    try:
        with engine.db.transaction() as conn:
            conn.execute(insert(prepared_returns).values(
                kind=KIND, period_start=start.isoformat(), period_end=end.isoformat(), version=ver,
                status=PREPARING, started_at=engine.now(conn)))
    except IntegrityError:  # another process inserted it first: it prepares it
        return False
    return True


def prepare(engine: Any, start: date, end: date, ver: str) -> None:
    """Make the return claimed by `claim` and store it ready (or failed, with the error's type only: a message may
    name a case). Then delete all but the newest KEEP finished returns."""
    t = prepared_returns.c
    try:
        body, values = pack(produce(engine, start, end)), {"status": READY}
    except Exception as exc:  # noqa: BLE001 - kept as a failure the page shows; the next visit tries again
        log.error("the CLD return could not be prepared: %s", type(exc).__name__)
        body, values = None, {"status": FAILED, "failure": type(exc).__name__[:200]}
    with engine.db.transaction() as conn:
        conn.execute(update(prepared_returns).where(_key(start, end, ver), t.status == PREPARING)
                     .values(body=body, finished_at=engine.now(conn), **values))
        done = conn.execute(select(t.period_start, t.period_end, t.version).where(
            t.kind == KIND, t.status != PREPARING).order_by(t.started_at.desc(), t.version)).all()
        for old in done[KEEP:]:
            conn.execute(delete(prepared_returns).where(
                t.kind == KIND, t.period_start == old.period_start, t.period_end == old.period_end,
                t.version == old.version, t.status != PREPARING))


def start_preparing(engine: Any, start: date, end: date, ver: str) -> None:
    """Prepare the return in a background thread of this process (the request does not wait for it)."""
    threading.Thread(target=prepare, args=(engine, start, end, ver), name="carepath-cld-return", daemon=True).start()


def ask(engine: Any, start: date, end: date, ver: str | None = None) -> Prepared:
    """The period's return: at version `ver` when given (the one a waiting page follows), else at the database's
    current version, or the one being prepared now if a process is already at it. Starts preparing it when no
    process has it; never waits for it."""
    found = lookup(engine, start, end, ver) if ver else None
    if found is None:  # none asked, or the one asked is no longer kept (or never was): the return as things are now
        ver = preparing_now(engine, start, end) or version(engine)
        found = lookup(engine, start, end, ver)
    if found is not None and (found.status == READY or
                              (found.status == PREPARING and engine.now() - found.started_at < STALE)):
        return found
    if found is not None and found.status == FAILED:
        return found  # shown with a way to try again (`retry`)
    if claim(engine, start, end, ver):
        start_preparing(engine, start, end, ver)
    return lookup(engine, start, end, ver) or Prepared(PREPARING, ver, engine.now())


def retry(engine: Any, start: date, end: date, ver: str) -> None:
    """Prepare a failed return again (the page's "Try again")."""
    if claim(engine, start, end, ver):
        start_preparing(engine, start, end, ver)


# ---------------------------------------------------------------------- periods
@dataclass
class Quarter:
    key: str  # "2031-Q1": the first quarter (April to June) of the financial year 2031 to 2032
    start: date
    end: date
    in_progress: bool

    @property
    def label(self) -> str:
        fy = self.key[:4]
        span = f"{self.start:%B} to {self.end:%B} {self.end.year}"
        return f"{span} (quarter {self.key[-1]} of {fy} to {int(fy) + 1}){' – in progress' if self.in_progress else ''}"


def quarter_of(day: date) -> Quarter:
    """The financial-year quarter (April–June is quarter 1) holding `day`."""
    start = date(day.year, (day.month - 1) // 3 * 3 + 1, 1)  # financial quarters are calendar quarters
    nxt = date(start.year + 1, 1, 1) if start.month == 10 else date(start.year, start.month + 3, 1)
    fy = start.year if start.month >= 4 else start.year - 1
    number = ((start.month - 4) % 12) // 3 + 1
    return Quarter(f"{fy}-Q{number}", start, nxt - timedelta(days=1), False)


def last_quarters(today: date, n: int = QUARTERS_SHOWN) -> list[Quarter]:
    """The quarter holding `today` (in progress) and the n-1 before it, newest first."""
    out = []
    q = quarter_of(today)
    q.in_progress = True
    for _ in range(n):
        out.append(q)
        q = quarter_of(q.start - timedelta(days=1))
    return out


def add_year(day: date) -> date | None:
    """The same day a year later (28 February after 29 February); None in the last year a date can have (9999,
    a mistyped year: every end date is then within the year)."""
    if day.year == date.max.year:
        return None
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def check_period(start: date, end: date, today: date) -> dict[str, str]:
    """Errors by field ("from", "to") for a period the return cannot be made for; {} when it can."""
    errors: dict[str, str] = {}
    if start > today:
        errors["from"] = "The start date must be today or in the past"
    if end < start:
        errors["to"] = "The end date must be the same as or after the start date"
    elif (limit := add_year(start)) is not None and end >= limit:
        errors["to"] = f"The period must be a year or shorter: choose an end date before {limit.day} {limit:%B %Y}"
    return errors


def _iso(value: str) -> date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value or ""):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _typed_date(params: Any, prefix: str, what: str, errors: dict[str, str]) -> date | None:
    d, m, y = (str(params.get(f"{prefix}-{p}") or "").strip() for p in ("day", "month", "year"))
    if not (d or m or y):
        errors[prefix] = f"Enter the {what}"
        return None
    missing = [name for name, v in (("day", d), ("month", m), ("year", y)) if not v]
    if missing:
        errors[prefix] = f"The {what} must include a {' and '.join(missing)}"
        return None
    try:
        if len(y) != 4:
            raise ValueError
        return date(int(y), int(m), int(d))
    except ValueError:
        errors[prefix] = f"The {what} must be a real date, for example 1 4 2031"
        return None


def chosen_period(params: Any, today: date) -> tuple[tuple[date, date] | None, dict[str, str]]:
    """The period the form sent (a quarter's key, or `other` with two dates), and errors by field."""
    choice = str(params.get("period") or "")
    quarters = {q.key: q for q in last_quarters(today)}
    if choice in quarters:
        return (quarters[choice].start, quarters[choice].end), {}
    if choice != "other":
        return None, {"period": "Select the quarter, or another period"}
    errors: dict[str, str] = {}
    start = _typed_date(params, "from", "start date", errors)
    end = _typed_date(params, "to", "end date", errors)
    if start and end:
        errors.update(check_period(start, end, today))
    return ((start, end) if not errors else None), errors


# ---------------------------------------------------------------------- who may, and the access log
def may_send(user: User) -> bool:
    return user.has(*RETURN_ROLES)


def _check(user: User) -> None:
    if not may_send(user):
        raise forbidden("Only the people who send the statutory returns (performance) and team managers can "
                        "see the Client Level Data return")


def log_download(engine: Any, user: User, result: Return, page: str) -> int:
    """One access-log line per case the file is about (people and the carers' cared-for people); returns how many.
    A row's case is its `case_id`, or the case reference its person ids start with (`CASE-000001`, a carer's
    `CASE-000001-C1`). The reason is the period; nothing about the people."""
    refs, direct = set(), set()
    for r in result.rows:
        if isinstance(r.get("case_id"), int):  # a row that names its case (the return may add it)
            direct.add(r["case_id"])
        for key in ("LA_Person_Unique_Identifier", "local_person_id", "Cared_For_Person_ID", "cared_for_person_id",
                    "case_reference"):
            found = _REFERENCE.match(str(r.get(key) or ""))
            if found:
                refs.add(found.group(0))
    with engine.db.transaction() as conn:
        found = set(conn.execute(select(cases.c.id).where(cases.c.reference.in_(sorted(refs)))).scalars()) \
            if refs else set()
        ids = sorted(found | direct)
        now = engine.now(conn)
        reason = f"Client Level Data return {result.start.isoformat()} to {result.end.isoformat()}"
        if ids:
            conn.execute(insert(case_access_log), [
                {"case_id": cid, "user": user.username, "at": now, "action": LOG_ACTION, "page": page[:200],
                 "reason": reason, "outcome": "allowed"} for cid in ids])
    return len(ids)


# ---------------------------------------------------------------------- pages
def _choose(request: Request, user: User, today: date, params: Any, errors: dict[str, str]) -> Response:
    anchors = {"period": "period", "from": "from-day", "to": "to-day"}
    return kit.render(request, "returns_cld.html", {
        "user": user, "quarters": last_quarters(today), "values": params, "errors_by": errors,
        "errors": kit.error_summary(errors, anchors)}, 422 if errors else 200)


_VERSION = re.compile(r"[0-9a-f]{16}")
CHECK_EVERY_S = 5  # how often the waiting page's script asks whether the return is ready (no script: a link)


def _asked_version(params: Any) -> str | None:
    asked = str(params.get("version") or "")
    return asked if _VERSION.fullmatch(asked) else None


def _page_link(params: Any, ver: str, **extra: str) -> str:
    """The report page's address for the same choice of period, at version `ver`."""
    kept = [(k, v) for k, v in params.multi_items() if k not in ("version", "again")]
    return "/returns/cld?" + urlencode(kept + [("version", ver)] + list(extra.items()))


def _report_link(start: date, end: date) -> str:
    return (f"/returns/cld?period=other&from-day={start.day}&from-month={start.month}&from-year={start.year}"
            f"&to-day={end.day}&to-month={end.month}&to-year={end.year}")


@router.get("/returns/cld", response_class=HTMLResponse)
async def return_page(request: Request) -> Response:
    """The period's report: prepared in the background (api.cld_returns.ask), the page says so and offers a link
    to check (followed by a script every few seconds when scripts run) until it is ready."""
    user = None
    try:
        user = kit.signed_in(request)
        _check(user)
        engine = request.app.state.engine
        today = engine.now().date()
        params = request.query_params
        if "period" not in params:
            return _choose(request, user, today, {}, {})
        period, errors = chosen_period(params, today)
        if errors:
            return _choose(request, user, today, params, errors)
        asked = _asked_version(params)
        if asked and params.get("again"):
            await run_in_threadpool(retry, engine, *period, asked)
        state = await run_in_threadpool(ask, engine, *period, asked)
        words = _period_words(*period)
        if state.status != READY:
            failed = state.status == FAILED
            return kit.render(request, "returns_cld_preparing.html", {
                "user": user, "period": words, "failed": failed,
                "check_link": _page_link(params, state.version),
                "again_link": _page_link(params, state.version, again="1"),
                "status_link": f"/returns/cld/status?from={period[0].isoformat()}&to={period[1].isoformat()}"
                               f"&version={state.version}",
                "check_every_s": CHECK_EVERY_S})
        result = state.result
        page = await run_in_threadpool(report, engine, result, user)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    return kit.render(request, "returns_cld_summary.html", {
        "user": user, "result": result, "summary": page["summary"], "report": page, "header": header(),
        "period": words, "prepared_at": state.started_at,
        "download": f"/returns/cld.csv?from={result.start.isoformat()}&to={result.end.isoformat()}"
                    f"&version={state.version}",
        "filename": filename(result)})


@router.get("/returns/cld/status")
async def return_status(request: Request) -> Response:
    """Whether the return of a period and version is ready: {"status": "preparing" | "ready" | "failed" |
    "unknown"}, for the waiting page's script. Nothing about the return itself."""
    user = None
    try:
        user = kit.signed_in(request)
        _check(user)
        engine = request.app.state.engine
        start, end = _iso(request.query_params.get("from", "")), _iso(request.query_params.get("to", ""))
        asked = _asked_version(request.query_params)
        found = await run_in_threadpool(lookup, engine, start, end, asked) if start and end and asked else None
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    return kit.with_headers(JSONResponse({"status": found.status if found else "unknown"}))


def _period_words(start: date, end: date) -> str:
    return f"{start.day} {start:%B %Y} to {end.day} {end:%B %Y}"


@router.get("/returns/cld.csv")
async def return_csv(request: Request) -> Response:
    """With `version` (the report page's link): the rows the report showed, from any server process; the return
    still being prepared sends the user to its waiting page; a version no longer current is a 409. Without: the
    return as things are now (kept if ready, else made for this request)."""
    user = None
    try:
        user = kit.signed_in(request)
        _check(user)
        engine = request.app.state.engine
        start, end = _iso(request.query_params.get("from", "")), _iso(request.query_params.get("to", ""))
        if start is None or end is None:
            return kit.error_page(request, user, 422, "Sorry, there is a problem",
                                  "The period must be given as from=YYYY-MM-DD and to=YYYY-MM-DD, for example "
                                  "from=2031-04-01&to=2031-06-30. Choose it on the Client Level Data return page.")
        errors = check_period(start, end, engine.now().date())
        if errors:
            return kit.error_page(request, user, 422, "Sorry, there is a problem", " ".join(errors.values()) + ".")
        asked = request.query_params.get("version")
        if asked:
            found = await run_in_threadpool(lookup, engine, start, end, asked) if _VERSION.fullmatch(asked) else None
            if found is not None and found.status != READY:  # not ready yet (or failed): its page says which
                return kit.redirect(f"{_report_link(start, end)}&version={asked}")
            if found is None:
                now = await run_in_threadpool(version, engine)
                if asked != now:
                    return kit.render(request, "returns_cld_changed.html", {
                        "user": user, "period": _period_words(start, end),
                        "report_link": _report_link(start, end)}, 409)
                return kit.redirect(_report_link(start, end))  # current, but not kept: the page prepares it
            result = found.result
        else:
            now = await run_in_threadpool(version, engine)
            found = await run_in_threadpool(lookup, engine, start, end, now)
            result = found.result if found is not None and found.status == READY else \
                await run_in_threadpool(produce, engine, start, end)
        if result.error:
            return kit.error_page(request, user, 422, "The return cannot be made for this period", result.error)
        body = await run_in_threadpool(csv_bytes, result)
        await run_in_threadpool(log_download, engine, user, result, request.url.path)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    resp = Response(body, media_type="text/csv; charset=utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename(result)}"'
    return kit.with_headers(resp)


def read_csv(body: bytes) -> list[list[str]]:
    """The CSV as rows of cells (for tests and checks)."""
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))
