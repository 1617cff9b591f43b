"""The measures page and its drill-down (docs/measures.md): for the `performance` role and team managers.

* ``GET /measures`` — every measure for a period (a quarter, or from/to dates) and optionally a team:
  the figure, its parts (each a link to its cases), a chart over the period's months (server-rendered
  SVG with a text alternative) and the table behind the chart, always present.
* ``GET /api/measures?from=&to=[&team=]`` — the same figures as JSON (as ``carepath measures --json``),
  with case ids; 422 naming the parameter for a bad filter.
* ``GET /measures/{measure}/cases`` — the events behind a figure or one of its parts, with their cases.
  A restricted case is counted in every figure but listed only to the people named for it; the others
  read "N restricted cases not listed". Case references link to the case record only for users who may
  open it (team managers; the performance role has no case access).

Bad filters (a day that is not a date, from after to, an unknown team, measure or part) are a 400 page
with an error summary naming the field, never a 500. Nothing here writes anything.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from handlers import measures as m
from handlers import measures_pages

from . import page_kit as kit
from .access import MEASURES_ROLES, may_read_measures, restricted_map
from .auth import OVERSIGHT_ROLES, User, current_user
from .errors import ApiError, forbidden

router = APIRouter(include_in_schema=False)

ROLES = tuple(sorted(MEASURES_ROLES))
PAGE_SIZE = 100


def _allowed(user: User) -> None:
    if not may_read_measures(user):
        raise forbidden("The measures are for the performance team and team managers.")


class FilterError(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def _quarter(text: str) -> tuple[date, date]:
    """'2031-Q2' -> (1 April 2031, 30 June 2031): calendar quarters."""
    year, _, q = text.partition("-Q")
    y, n = int(year), int(q)
    if not 1 <= n <= 4 or not 1900 < y < 3000:
        raise ValueError(text)
    first = date(y, 3 * n - 2, 1)
    last = date(y + (n == 4), 1 if n == 4 else 3 * n + 1, 1)
    return first, date.fromordinal(last.toordinal() - 1)


def quarter_label(key: str) -> str:
    """'2031-Q1' -> 'January to March 2031 (quarter 4 of 2030 to 2031)': the months, and the quarter of the financial
    year as the Client Level Data return page names it (April to June is quarter 1), so '2031 quarter 1' is never
    read as the financial year's first quarter."""
    first, last = _quarter(key)
    fy = first.year if first.month >= 4 else first.year - 1
    return f"{first:%B} to {last:%B %Y} (quarter {(first.month - 4) % 12 // 3 + 1} of {fy} to {fy + 1})"


def quarter_of(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


FIRST_YEAR, LAST_YEAR = 1901, 2999  # as the quarters (_quarter): a year outside is a typing slip, and the chart's
# months and the snapshots' year before would run off the calendar (year 1 or 9999: a 500 before)


def _date_from(values: Any, name: str, errors: dict[str, str], label: str) -> tuple[date | None, dict[str, str]]:
    """A day from the GOV.UK date input `name` (name-day, -month, -year) or an ISO `name` parameter."""
    parts = {p: (values.get(f"{name}-{p}") or "").strip() for p in ("day", "month", "year")}
    if any(parts.values()):
        try:
            day = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
        except ValueError:
            errors[name] = f"{label} must be a real date, for example 1 4 2031"
            return None, parts
        return _in_years(day, name, errors, label), parts
    iso = (values.get(name) or "").strip()
    if iso:
        try:
            day = date.fromisoformat(iso)
        except ValueError:
            errors[name] = f"{label} must be a date like 2031-04-01"
            return None, {"day": "", "month": "", "year": ""}
        return _in_years(day, name, errors, label), {"day": str(day.day), "month": str(day.month),
                                                     "year": str(day.year)}
    return None, parts


def _in_years(day: date, name: str, errors: dict[str, str], label: str) -> date | None:
    if FIRST_YEAR <= day.year <= LAST_YEAR:
        return day
    errors[name] = f"{label} must be in a year from {FIRST_YEAR} to {LAST_YEAR}, for example 1 4 2031"
    return None


def read_filters(values: Any, default_day: date) -> dict[str, Any]:
    """The period and team asked for; FilterError (field -> message) when they cannot be used."""
    errors: dict[str, str] = {}
    quarter = (values.get("quarter") or "").strip()
    start, from_parts = _date_from(values, "from", errors, "The first day")
    end, to_parts = _date_from(values, "to", errors, "The last day")
    team = (values.get("team") or "").strip()
    if team and team not in m.TEAM_CHOICES:
        errors["team"] = f"Choose a team from the list ({team[:40]!r} is not one)"
    by_dates = start is not None or end is not None
    if not by_dates and not errors:
        quarter = quarter or quarter_of(default_day)
        try:
            start, end = _quarter(quarter)
        except ValueError:
            errors["quarter"] = "Choose a quarter from the list"
    elif not errors and (start is None) != (end is None):
        errors["from" if start is None else "to"] = "Enter both the first and the last day, or choose a quarter"
    if not errors and end < start:  # type: ignore[operator]
        errors["to"] = "The last day must be the same as or after the first day"
    if errors:
        raise FilterError(errors)
    return {"start": start, "end": end, "team": team or None, "quarter": "" if by_dates else quarter,
            "from_parts": from_parts, "to_parts": to_parts}


ANCHORS = {"from": "from-day", "to": "to-day", "quarter": "quarter", "team": "team"}


def _query(f: dict[str, Any], **more: Any) -> str:
    q = {"from": f["start"].isoformat(), "to": f["end"].isoformat()}
    if f["team"]:
        q["team"] = f["team"]
    q.update({k: v for k, v in more.items() if v not in (None, "")})
    return urlencode(q)


def _quarters(last_day: str | None, default_day: date, chosen: str = "") -> list[str]:
    """The twelve quarters up to today's (or the data's latest, if later), with the one chosen."""
    last = max(default_day, date.fromisoformat(last_day) if last_day else default_day)
    y, q = last.year, (last.month - 1) // 3 + 1
    out = []
    for _ in range(12):
        out.append(f"{y}-Q{q}")
        y, q = (y - 1, 4) if q == 1 else (y, q - 1)
    if chosen and chosen not in out:
        out.append(chosen)
    return out


def _long(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _show(value: Any, unit: str) -> str:
    if value is None:
        return "none"
    if unit == "%":
        return f"{value:g}%"
    if unit == "days":
        return f"{value:g} days" if value != 1 else "1 day"
    return f"{value:,}"


def chart(series: list[dict], unit: str, title: str, chart_id: str) -> dict[str, Any]:
    """A bar chart of the figure in each month (or quarter), as SVG shapes, and its text alternative."""
    width, height, top, bottom, left = 640, 220, 20, 40, 48
    values = [s["figure"] for s in series]
    known = [v for v in values if v is not None]
    peak = 100 if unit == "%" else max([1, *known])
    if unit != "%":
        peak = 10 ** math.ceil(math.log10(peak)) if peak > 10 else 10 if peak > 5 else max(peak, 5)
    slot = (width - left) / max(len(series), 1)
    bars = []
    for i, s in enumerate(series):
        v = s["figure"]
        h = 0 if v is None else (height - top - bottom) * (v / peak if peak else 0)
        x = left + i * slot + slot * 0.15
        label = date.fromisoformat(s["from"]).strftime("%b %Y") if s["from"][8:] == "01" or i == 0 else s["from"]
        bars.append({"x": round(x, 1), "y": round(height - bottom - h, 1), "w": round(slot * 0.7, 1),
                     "h": round(h, 1), "value": "–" if v is None else _show(v, unit), "label": label,
                     "cx": round(x + slot * 0.35, 1)})
    described = "; ".join(f"{b['label']}: {b['value']}" for b in bars)
    return {"id": chart_id, "width": width, "height": height, "base": height - bottom, "left": left,
            "peak": _show(peak, unit), "top": top, "bars": bars,
            "alt": f"{title}, by period. {described}." if bars else f"{title}: no periods."}


def _compute_page(engine: Any, f: dict[str, Any], user: User, warming: Any = None) -> dict[str, Any]:
    """The page's figures (handlers/measures_pages.py: from the figures kept in the database when they are current
    and this process holds no population, else worked out from the population) and what this user may read."""
    page = measures_pages.page(engine, f["start"], f["end"], f["team"], warming)
    with engine.db.engine.connect() as conn:
        hidden = {c for c, allowed in restricted_map(conn).items() if user.username not in allowed}
    out = []
    for (key, measure), (r, kept, n_items) in zip(m.MEASURES.items(), page.figures, strict=True):
        series = [{**s, "shown": "–" if s["figure"] is None else _show(s["figure"], measure.unit)} for s in kept]
        out.append({"r": r, "m": measure, "figure": None if r.figure is None else _show(r.figure, measure.unit),
                    "series": series, "chart": chart(series, measure.unit, measure.title, f"chart-{key}"),
                    "n_items": n_items, "cases_link": f"/measures/{key}/cases?{_query(f)}",
                    "part_links": {p.key: f"/measures/{key}/cases?{_query(f, part=p.key)}" for p in r.parts}})
    return {"results": out, "last_day": page.last_day,
            "left_out": [(ref, why) for c, ref, why in page.left_out if c not in hidden],
            "left_out_restricted": sum(1 for c, _ref, _why in page.left_out if c in hidden)}


@router.get("/measures", response_class=HTMLResponse)
async def measures_page(request: Request) -> Response:
    user = None
    try:
        user = kit.signed_in(request)
        _allowed(user)
        engine = request.app.state.engine
        today = engine.now().date()
        ctx: dict[str, Any] = {"user": user, "teams": m.TEAM_CHOICES, "errors": [], "field_errors": {}}
        try:
            f = read_filters(request.query_params, today)
        except FilterError as exc:
            last_day = await run_in_threadpool(measures_pages.latest_day, engine)
            v = request.query_params
            ctx.update(field_errors=exc.errors, errors=kit.error_summary(exc.errors, ANCHORS),
                       quarters=_quarters(last_day, today), quarter_label=quarter_label, results=None,
                       f={"quarter": v.get("quarter", ""), "team": v.get("team", ""),
                          "from_parts": {p: v.get(f"from-{p}", "") for p in ("day", "month", "year")},
                          "to_parts": {p: v.get(f"to-{p}", "") for p in ("day", "month", "year")}})
            return kit.render(request, "measures.html", ctx, 400)
        page = await run_in_threadpool(_compute_page, engine, f, user,
                                       getattr(request.app.state, "measures_warming", None))
        ctx.update(f=f, quarters=_quarters(page["last_day"], today, f["quarter"]), quarter_label=quarter_label,
                   results=page["results"],
                   left_out=page["left_out"], left_out_restricted=page["left_out_restricted"],
                   period=f"{_long(f['start'])} to {_long(f['end'])}",
                   any_items=any(x["n_items"] for x in page["results"]))
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    return kit.render(request, "measures.html", ctx)


@router.get("/measures/{measure}/cases", response_class=HTMLResponse)
async def measure_cases_page(request: Request, measure: str) -> Response:
    user = None
    try:
        user = kit.signed_in(request)
        _allowed(user)
        engine = request.app.state.engine
        if measure not in m.MEASURES:
            raise ApiError(404, "not_found", f"There is no measure {measure[:60]!r}.")
        try:
            f = read_filters(request.query_params, engine.now().date())
            part = (request.query_params.get("part") or "").strip() or None
            population = await run_in_threadpool(m.load_population, engine)
            result, items = m.measure_cases(population, measure, f["start"], f["end"], f["team"], part)
        except FilterError as exc:
            raise ApiError(400, "bad_filter", "; ".join(exc.errors.values())) from None
        except m.MeasureError as exc:
            raise ApiError(400, "bad_filter", str(exc)[:1].upper() + str(exc)[1:]) from None
        with engine.db.engine.connect() as conn:
            restricted = restricted_map(conn)
        may_open_any = bool(user.roles & OVERSIGHT_ROLES)
        shown, hidden = [], set()
        for i in items:
            allowed = restricted.get(i["case_id"])
            if allowed is not None and user.username not in allowed:
                hidden.add(i["case_id"])
                continue
            shown.append({**i, "reference": population.reference(i["case_id"]),
                          "link": may_open_any or (allowed is not None and user.username in allowed)})
        try:
            page_no = max(1, int(request.query_params.get("page") or 1))
        except ValueError:
            raise ApiError(400, "bad_filter", "The page number must be a whole number") from None
        pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
        page_no = min(page_no, pages)
        label = next((p.label for p in result.parts if p.key == part), None)
        ctx = {"user": user, "m": m.MEASURES[measure], "r": result, "part": part, "part_label": label,
               "rows": shown[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE], "shown": len(shown),
               "total": len(items), "cases": len({i["case_id"] for i in items}), "hidden": len(hidden),
               "page": page_no, "pages": pages, "f": f,
               "period": f"{_long(f['start'])} to {_long(f['end'])}", "last_day": _long(f["end"]),
               "back": f"/measures?{_query(f)}#measure-{measure}",
               "page_link": lambda n: f"/measures/{measure}/cases?{_query(f, part=part, page=n)}"}
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found="There is no measure at this address.")
    return kit.render(request, "measure_cases.html", ctx)


@router.get("/api/measures", include_in_schema=True)
def measures_api(request: Request, user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
    """Every measure for a period (default: the current quarter) as JSON; restricted cases' ids are left out
    of the lists for users not named for them (they stay in the counts)."""
    _allowed(user)
    engine = request.app.state.engine
    try:
        f = read_filters(request.query_params, engine.now().date())
    except FilterError as exc:
        raise ApiError(422, "validation_error", "; ".join(exc.errors.values()),
                       errors=[{"field": k, "message": v} for k, v in exc.errors.items()]) from None
    population = m.load_population(engine)
    with engine.db.engine.connect() as conn:
        restricted = restricted_map(conn)
    hidden = {c for c, allowed in restricted.items() if user.username not in allowed}

    def listed(ids: list[int]) -> dict[str, Any]:
        return {"case_ids": [c for c in ids if c not in hidden], "restricted_not_listed": len(set(ids) & hidden)}

    out = []
    for r in m.kept_results(population, f["start"], f["end"], f["team"]):
        d = r.as_dict()
        d.update(listed(d.pop("case_ids")))
        for p in d["parts"]:
            p.update(listed(p.pop("case_ids")))
        d["definition"], d["source"] = m.MEASURES[r.key].definition, m.MEASURES[r.key].source
        out.append(d)
    return {"from": f["start"].isoformat(), "to": f["end"].isoformat(), "team": f["team"], "measures": out,
            "cases_left_out": len(population.cld_errors)}
