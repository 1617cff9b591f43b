"""The Client Level Data return's download page, for the people who send it (issue 12; docs/cld-returns-page.md).

* `GET /returns/cld` — choose the period: one of the last eight quarters (the current one, in progress, first) or
  "another period" with a start and an end date (GOV.UK date inputs). Sent back to the same address (a GET form:
  choosing a period changes nothing), the page checks the period — a date that is not real, an end before the
  start, a period longer than a year, a start in the future: a GOV.UK error summary naming the date — and shows
  the summary of the return for it: its rows by event type, the people it is about, the rows it could not code
  (problems) and any it leaves out (withheld), and a "Download the CSV" link.
* `GET /returns/cld.csv?from=YYYY-MM-DD&to=YYYY-MM-DD` — the return as a CSV attachment named with the council and
  the period. Every download is written to the case access log, one line per case whose person the file is about
  (action `cld_return`, the page path, the period as the reason: no personal data); a bad period is a 422 page
  saying what is wrong.

Who may: `performance` and `team_manager` (`RETURN_ROLES`); everyone else 403, signed out to the sign-in page.

The return itself is `handlers.cld.cld_return` (rewritten to DHSC's specification elsewhere): this page reads it
only through `produce` below, so that a change of its shape (rows, problems, withheld) changes one function.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import insert, select
from starlette.concurrency import run_in_threadpool

from engine.schema import cases
from handlers import cld

from . import page_kit as kit
from .auth import User, case_access_log
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
    if isinstance(out, dict):
        rows, problems, withheld = out.get("rows"), out.get("problems"), out.get("withheld")
    elif hasattr(out, "rows"):
        rows, problems, withheld = out.rows, getattr(out, "problems", None), getattr(out, "withheld", None)
    else:  # handlers.cld.CldReturn: a list of rows carrying .problems and .withheld
        rows, problems, withheld = out, getattr(out, "problems", None), getattr(out, "withheld", None)
    return Return(start, end, list(rows or []), [_issue(p) for p in problems or []],
                  [_issue(w) for w in withheld or []])


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


def add_year(day: date) -> date:
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
    elif end >= add_year(start):
        errors["to"] = "The period must be a year or shorter: choose an end date before " \
                       f"{add_year(start).day} {add_year(start):%B %Y}"
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


@router.get("/returns/cld", response_class=HTMLResponse)
async def return_page(request: Request) -> Response:
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
        result = await run_in_threadpool(produce, engine, *period)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    return kit.render(request, "returns_cld_summary.html", {
        "user": user, "result": result, "summary": summary(result), "header": header(),
        "period": f"{result.start.day} {result.start:%B %Y} to {result.end.day} {result.end:%B %Y}",
        "download": f"/returns/cld.csv?from={result.start.isoformat()}&to={result.end.isoformat()}",
        "filename": filename(result)})


@router.get("/returns/cld.csv")
async def return_csv(request: Request) -> Response:
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
        result = await run_in_threadpool(produce, engine, start, end)
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
