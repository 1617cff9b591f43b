"""The Client Level Data return for a county year (issue 12): `cld_return` for a year and a quarter on ~1 M events.

    .venv/bin/python -m bench.cld_bench                                   # SQLite, 1 M events (throwaway file)
    .venv/bin/python -m bench.cld_bench --events 60000                    # a quick run
    .venv/bin/python -m bench.cld_bench --db-file /tmp/cld-county.db      # made once, reused by later runs
    .venv/bin/python -m bench.cld_bench --pg postgresql://postgres@127.0.0.1:5432/test [--pg-schema cld_county]

Set-up (not measured): the demo's seven cases (api/demo_cases.py: a contact not yet recorded, a signposting, a
reablement to plan, a reablement under way, an assessment to do, a budget awaiting a manager, a plan signed off)
are driven through the real diagrams, handlers and forms, and the clock is moved on 60 days so their timers fire.
Their histories are then copied into new cases, each copy moved by whole days across the financial year
2031-04-01 to 2032-03-31 (some starting in the two months before), with its own hash chain and instance ids,
until the database holds --events events. The three front-door cases are copied five times as often as the
others, so that 1 M events hold about as many requests as a county's year (26,444, docs/performance.md). The
copies are rows written as the engine writes them (bench/county_db.py, as for bench.measures_bench), not run through
the engine, which would take hours.

With --db-file (SQLite) or --pg-schema (PostgreSQL) the database is kept and a later run with the same name reuses
it (the set-up is skipped when it already holds events).

Measured, each the best of --repeat runs:
* ``year_s`` / ``quarter_s``: `handlers.cld.cld_return` for the financial year and for its third quarter;
* ``csv_s``: `cld_csv_text` of the year's rows; ``quality_s``: `quality_report` of the year's rows and problems;
* ``page_s``: the download page's own work for the year once the return and its report are made
  (`api.cld_returns.report`: the summary, the findings with the cases each user may see); the page as a whole is
  ``year_s + quality_s + page_s`` (and the rendering of its HTML, not measured here);
* ``stored_mb``, ``pack_s``, ``unpack_s``: the year's return as the page keeps it in the database
  (`api.cld_returns.pack`: compressed JSON), its size, and the time to pack it and to read it back.
Each step also gives the benchmark process's CPU time (``*_cpu_s``): the machine is shared, so wall time varies.
Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.county_db import copy_histories
from bench.engine_bench import START, Scratch, dumps
from bench.run import machine
from engine.schema import cases, events

ROOT = Path(__file__).resolve().parent.parent
YEAR = (date(2031, 4, 1), date(2032, 3, 31))
QUARTER = (date(2031, 10, 1), date(2031, 12, 31))
FRONT_DOOR_COPIES = 5  # each front-door template is copied 5 times a round, the others once: requests as a county


class Kept:
    """A database kept between runs: a SQLite file, or a named schema in PostgreSQL."""

    def __init__(self, kind: str, pg_url: str | None, name: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{Path(name).resolve()}"
        else:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as c:
                c.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
            base = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
            self.url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{name}"

    def close(self) -> None:
        pass


def _engine(url: str) -> Any:
    from engine.forms import FormLibrary
    from engine.registry import load_registry
    from engine.runtime import Engine

    return Engine(url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))


def _count(eng: Any) -> int:
    try:
        with eng.db.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(events)).scalar() or 0
    except Exception:  # noqa: BLE001 - no schema yet
        return 0


def seed(eng: Any) -> None:
    """The demo's cases, driven through the engine, and 60 days for their timers."""
    from api.demo_cases import create_demo_cases

    eng.init(simulated_start=START.replace(year=2031, month=4, day=1))
    eng.deploy([ROOT / "processes"], actor="bench")
    create_demo_cases(eng)
    eng.advance_clock(timedelta(days=60))


def fill(eng: Any, target_events: int) -> dict[str, int]:
    """Copy the seeded cases' histories into new cases, spread over the year, until `target_events`."""

    def order(templates: dict[int, list[dict[str, Any]]]) -> list[int]:
        front_door = {cid for cid, rows in templates.items()
                      if any(r["type"] == "instance.started" and '"process_id":"front_door"' in r["data"] for r in rows)
                      and len(rows) > 6}  # the contact not yet recorded is no request
        return [cid for cid in templates for _ in range(FRONT_DOOR_COPIES if cid in front_door else 1)]

    # across the year, some starting before it
    rounds = copy_histories(eng, target_events, None, order,
                            lambda r, n, template_id: (r * 7 + template_id * 3 + n * 11) % 365 - 30)
    return {"rounds": rounds}


CPU: dict[str, float] = {}  # the benchmark process's CPU time of each step's best run (the machine is shared)


def _best(fn: Any, repeat: int, name: str = "") -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t, cpu = time.perf_counter(), time.process_time()
        value = fn()
        wall = time.perf_counter() - t
        if wall < best:
            best, CPU[name] = wall, time.process_time() - cpu
    return best, value


class _Reader:
    """A performance officer named on no restricted case."""

    username = "performance"
    roles = frozenset({"performance"})

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


def run(kind: str, pg_url: str | None, target: int, repeat: int, keep: str | None, profile: bool) -> dict[str, Any]:
    from api import cld_returns
    from handlers import cld
    from handlers.cld_quality import quality_report

    db = Kept(kind, pg_url, keep) if keep else Scratch(kind, pg_url)
    try:
        eng = _engine(db.url)
        setup_s, reused = 0.0, _count(eng) > 0
        if not reused:
            t = time.perf_counter()
            seed(eng)
            fill(eng, target)
            setup_s = time.perf_counter() - t
        with eng.db.engine.connect() as conn:
            size = {"cases": conn.execute(select(func.count()).select_from(cases)).scalar(),
                    "events": conn.execute(select(func.count()).select_from(events)).scalar()}
        year_s, year = _best(lambda: cld.cld_return(eng, *YEAR), repeat, "year")
        quarter_s, quarter = _best(lambda: cld.cld_return(eng, *QUARTER), repeat, "quarter")
        csv_s, text = _best(lambda: cld.cld_csv_text(year), repeat, "csv")
        quality_s, findings = _best(lambda: quality_report(year, year.problems), repeat, "quality")
        adapted = cld_returns.adapt(*YEAR, year)
        page_s, _page = _best(lambda: cld_returns.report(eng, adapted, _Reader()), repeat, "page")
        pack_s, packed = _best(lambda: cld_returns.pack(adapted), repeat, "pack")
        unpack_s, _kept = _best(lambda: cld_returns.unpack(packed), repeat, "unpack")
        out = {"database": kind, **size, "reused_database": reused, "setup_s": round(setup_s, 1),
               "requests_in_year": sum(r["Event_Type"] == "Request" for r in year),
               "rows_in_year": len(year), "rows_in_quarter": len(quarter), "withheld_in_year": len(year.withheld),
               "problems_in_year": len(year.problems), "findings_in_year": len(findings),
               "csv_mb": round(len(text.encode()) / 1e6, 1),
               "year_s": round(year_s, 2), "quarter_s": round(quarter_s, 2), "csv_s": round(csv_s, 2),
               "quality_s": round(quality_s, 2), "page_s": round(page_s, 2),
               "stored_mb": round(len(packed) / 1e6, 2), "pack_s": round(pack_s, 2), "unpack_s": round(unpack_s, 2),
               **{f"{k}_cpu_s": round(v, 2) for k, v in CPU.items()}}
        if profile:
            prof = cProfile.Profile()
            prof.runcall(cld.cld_return, eng, *YEAR)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            print(buf.getvalue())
        eng.db.dispose()
        return out
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", help="PostgreSQL URL (a throwaway schema is made and dropped, unless --pg-schema)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--db-file", help="SQLite file to keep (made if missing, reused if it holds events)")
    ap.add_argument("--pg-schema", help="PostgreSQL schema to keep (made if missing, reused if it holds events)")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top functions for the year's return")
    args = ap.parse_args()
    results = []
    if not args.skip_sqlite:
        results.append(run("sqlite", None, args.events, args.repeat, args.db_file, args.profile))
        print(dumps(results[-1]), flush=True)
    if args.pg:
        results.append(run("postgres", args.pg, args.events, args.repeat, args.pg_schema, args.profile))
        print(dumps(results[-1]), flush=True)
    report = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "command": "python -m bench.cld_bench " + f"--events {args.events} --repeat {args.repeat}"
                         + (" --pg URL" if args.pg else ""), "results": results}
    dest = ROOT / "bench" / "results" / f"cld-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    dest.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
