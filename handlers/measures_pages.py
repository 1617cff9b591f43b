"""The measures page's figures kept in the database, for the first page in a new server process (docs/measures.md,
"Speed": "The page's figures kept in the database").

A process that has worked out the page for a period and team (``handlers.measures.page_figures``) writes its
figures to `measure_pages` (migration 0017), one row per period and team, with the **mark** of the population they
were worked out from (``handlers.measures._mark``: the latest event id, the events among the last
``CHANGE_LOOKBACK`` ids, the number of cases and the latest deployment) and the **basis** (the measure facts' basis,
which holds the code of handlers/measures.py and handlers/cld.py and the teams of the deployed tasks, and this
module's own code). A process that holds no population yet (just started, or one that never read the measures)
asks the database for the current mark and shows the row when both the mark and the basis are the current ones
and, on PostgreSQL, no event has since taken an id the population had found missing below the look-back
(``handlers.measures._gaps``: a transaction that committed after later-numbered ones):
no case's facts are read and no figure is worked out. When they differ (an event, a case or a deployment since),
the row is not used: the page is worked out as before (``load_population``), and the row written again.

What is kept is what the page shows: each measure's figure, numerator and denominator, message, extra figures,
the number of events behind it, its parts' counts and shares, and its months; and the cases whose CLD rows could
not be derived (id, reference, why), filtered at each request by who may see them, as the page does (a restricted
case is counted, and named only to the people named for it). The cases behind a figure are not kept: the
drill-down and the JSON API read the population. Nothing here reads a clock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.exc import DBAPIError

from engine.collector import fewer_collections
from handlers import measures as m

log = logging.getLogger("carepath.measures")

PAGES_VERSION = "1"  # change it when what a kept page holds changes


@functools.lru_cache(maxsize=1)
def _own_hash() -> str:
    from pathlib import Path

    return hashlib.sha256(Path(__file__).resolve().read_bytes()).hexdigest()


def page_basis(facts_basis: str) -> str:
    """The basis of a kept page: the measure facts' basis (``handlers.measures.facts_basis``: the facts' version,
    the code deriving them and the measures, the deployed tasks' teams) and this module's version and code."""
    return hashlib.sha256(f"{PAGES_VERSION}:{_own_hash()}:{facts_basis}".encode()).hexdigest()


def page_key(start: date, end: date, team: str | None) -> str:
    return f"{start.isoformat()}:{end.isoformat()}:{team or ''}"


@dataclass
class PageFigures:
    """A page's figures: (result, months, number of events behind it) per measure, in the order of ``MEASURES``;
    the cases whose CLD rows could not be derived (case id, reference, why); the UK day of the latest event."""

    figures: list[tuple[m.Result, list[dict], int]]
    left_out: list[tuple[int, str, str]]
    last_day: str | None
    from_kept: bool = False  # shown from `measure_pages` (no population read)


def from_population(population: m.Population, start: date, end: date, team: str | None) -> PageFigures:
    figures = [(r, series, len(r.items)) for r, series in m.page_figures(population, start, end, team)]
    left_out = [(cid, population.reference(cid), why) for cid, why in sorted(population.cld_errors.items())]
    return PageFigures(figures, left_out, population.last_day)


def page_payload(page: PageFigures) -> dict[str, Any]:
    measures = []
    for r, series, n_items in page.figures:
        measures.append({"key": r.key, "figure": r.figure, "numerator": r.numerator, "denominator": r.denominator,
                         "message": r.message, "not_recorded": r.not_recorded, "extra": r.extra, "items": n_items,
                         "parts": [[p.key, p.label, p.count, p.share] for p in r.parts], "series": series})
    return {"measures": measures, "left_out": [list(x) for x in page.left_out], "last_day": page.last_day}


def _from_payload(data: dict[str, Any]) -> PageFigures | None:
    if [x["key"] for x in data["measures"]] != list(m.MEASURES):
        return None
    figures = []
    for x in data["measures"]:
        measure = m.MEASURES[x["key"]]
        parts = [m.Part(k, label, count, share, []) for k, label, count, share in x["parts"]]
        r = m.Result(x["key"], measure.title, measure.unit, x["figure"], x["numerator"], x["denominator"], [], [],
                     parts, x["message"], x["not_recorded"], x["extra"])
        figures.append((r, x["series"], x["items"]))
    return PageFigures(figures, [(cid, ref, why) for cid, ref, why in data["left_out"]], data["last_day"],
                       from_kept=True)


def _current(conn: Any) -> tuple[str, str]:
    """(the mark as kept, the basis) the database is at now."""
    teams = m.task_teams_of(conn)
    return json.dumps(list(m._mark(conn))), page_basis(m.facts_basis(teams))


def kept_page(engine: Any, start: date, end: date, team: str | None) -> PageFigures | None:
    """The page's figures from `measure_pages` when this process holds no population and the row's mark and basis
    are the database's current ones; else None (the page is worked out from the population)."""
    from sqlalchemy import select

    from engine.schema import measure_pages

    if m._LOADED.get(engine) is not None:  # a population held: its own check is as quick, and it is kept up to date
        return None
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(measure_pages.c.mark, measure_pages.c.basis, measure_pages.c.figures)
                           .where(measure_pages.c.key == page_key(start, end, team))).first()
        if row is None:
            return None
        mark, basis = _current(conn)
        if row.mark != mark or row.basis != basis:
            return None
        data = json.loads(row.figures)
        if m._filled(conn, tuple(tuple(g) for g in data["gaps"])):
            return None  # an event committed since below the look-back, in an id the page's population had not seen
    return _from_payload(data)


def keep_page(engine: Any, population: m.Population, start: date, end: date, team: str | None,
              page: PageFigures) -> bool:
    """Write the page's figures with the mark its population was read at (once per population, period and team);
    False when not written (the population is no longer this process's latest, or the database refused)."""
    from engine.schema import measure_pages

    key = page_key(start, end, team)
    done = f"kept_page:{key}"
    if population.cache.get(done):
        return False
    loaded = m._LOADED.get(engine)
    if loaded is None or loaded.population is not population:
        return False  # another thread read newer events meanwhile: its mark is not this population's
    row = {"key": key, "mark": json.dumps(list(loaded.mark)), "basis": page_basis(loaded.basis),
           "figures": json.dumps({**page_payload(page), "gaps": loaded.gaps}, separators=(",", ":"))}
    if engine.db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(measure_pages)
    stmt = stmt.on_conflict_do_update(index_elements=[measure_pages.c.key], set_={
        "mark": stmt.excluded.mark, "basis": stmt.excluded.basis, "figures": stmt.excluded.figures})
    try:
        with engine.db.transaction() as conn:
            conn.execute(stmt, [row])
    except DBAPIError as exc:  # busy or read-only: the page is right anyway; a later one keeps it
        log.warning("measures page not kept: %s", type(exc.orig).__name__)
        return False
    population.cache[done] = True
    return True


def latest_day(engine: Any) -> str | None:
    """The UK day of the latest event of any case (``Population.last_day``: the quarters the page offers end there
    when it is later than today): from the population this process holds, else from the index on the events'
    instants (no population read for a page with a bad filter)."""
    from sqlalchemy import select

    from engine.schema import events

    if m._LOADED.get(engine) is not None:
        return m.load_population(engine).last_day
    with engine.db.engine.connect() as conn:
        at = conn.execute(select(events.c.at).where(events.c.case_id.is_not(None))
                          .order_by(events.c.at.desc()).limit(1)).scalar()
    return m.uk_day(at)


@fewer_collections()  # one block for the reading and the figures: the collector runs again once, not twice
def page(engine: Any, start: date, end: date, team: str | None, warming: Any = None) -> PageFigures:
    """The measures page's figures for the period and team: from `measure_pages` when they are current and this
    process holds no population (``kept_page``), else from the population (waiting for the reading started at the
    server's start, `warming`, rather than reading the facts a second time beside it), kept for the next start."""
    m.check_period(start, end)
    got = kept_page(engine, start, end, team)
    if got is not None:
        return got
    if warming is not None and warming.is_alive():
        warming.join()
    population = m.load_population(engine)
    got = from_population(population, start, end, team)
    keep_page(engine, population, start, end, team, got)
    return got
