"""The measures page for a county year (issue 12): every measure and its chart of twelve months, on ~1 M events.

    .venv/bin/python -m bench.measures_bench                       # SQLite
    .venv/bin/python -m bench.measures_bench --pg postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.measures_bench --db-file /tmp/county.db     # kept: a later run reuses it (and its
    .venv/bin/python -m bench.measures_bench --skip-sqlite --pg URL --pg-schema county   # facts if kept)

Set-up (not measured): bench/county.py's templates (a signposted contact, reablement, reablement into a managed
budget, a direct payment, commissioned support, a carer on a direct payment, a safeguarding enquiry, a hospital
discharge with its 91-day follow-up) are driven through the real diagrams, handlers and forms on the simulated
clock. Their histories are then copied into new cases (bench/county.py WEIGHTS copies of each per round, most of
them requests that end at the front door), each copy moved by a whole number of days across a year, with its own
hash chain and instance ids, until the database holds --events events (1 M by default: about 26,400 requests
ending in the year April 2031 to March 2032, the county's volume). The copies are written as rows
(bench/county_db.py), not run through the engine (which would take hours): the measures read exactly the rows
the engine writes.

Measured, each in a new process (so its peak resident memory, ``ru_maxrss``, is its own), the page being
``GET /measures?from=2031-04-01&to=2032-03-31`` through the app (every measure, its chart of 12 months and the
table behind it, as HTML) for the performance role:

* ``first_page_ever``: the first page on a database whose measure facts were never kept (every history read,
  every case's facts worked out and written to measure_facts: once per database, and after a deployment that
  changes the tasks' teams);
* ``cold_page``: the first page after a server starts, the facts kept and the page's figures kept at the database's
  current mark (a new process: one row of measure_pages read, no population; ``cold_page_from_kept_figures``);
* ``warm_page``: the same page again, nothing written since;
* ``first_population_page``: in the same process, which has read no population yet, the page after a new event (the
  kept figures are behind: every case's kept facts read, every figure worked out: a first page after a start when
  an event came since the figures were kept);
* ``page_after_one_new_event``: the page after one case record changed (that case read and worked out again);
* ``drill_down``: the cases behind one figure (the requests of the year, first page of the list).
On PostgreSQL the tables are vacuumed and analysed after the fill and after the first page (``vacuum``), as
autovacuum would have done on a database that grew to a county year.
Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.county_db import copy_histories
from bench.engine_bench import Scratch, dumps
from bench.run import machine
from engine.schema import cases, events

ROOT = Path(__file__).resolve().parent.parent
YEAR = "from=2031-04-01&to=2032-03-31"


def fill(eng: Any, templates_by_name: dict[str, int], target_events: int) -> dict[str, int]:
    """Copy the driven cases' histories into new cases, spread over a year, until `target_events`."""
    from bench.county import WEIGHTS

    order = [templates_by_name[name] for name, weight in WEIGHTS.items() for _ in range(weight)]
    # the copies are numbered across the rounds: the n-th of a round is copy number round * len(order) + n
    rounds = copy_histories(eng, target_events, list(templates_by_name.values()), lambda _templates: order,
                            lambda r, n, _tid: ((r * len(order) + n) * 37) % 330 - 60)  # some the year before
    with eng.db.engine.connect() as conn:
        return {"cases": conn.execute(select(func.count()).select_from(cases)).scalar(),
                "events": conn.execute(select(func.count()).select_from(events)).scalar(), "rounds": rounds}


def vacuum(url: str) -> None:
    """PostgreSQL: what autovacuum does to tables that have grown (the bench's server may run with autovacuum off,
    and a bulk fill is never vacuumed): statistics for the planner, and the visibility map that lets the listing's
    latest event per case (max(events.id) on the (case_id, id) index) read the index alone instead of fetching a
    heap page for each of 44,801 cases (2.7 s of a cold page on an unvacuumed database)."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine

    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE events, cases, chains, measure_facts")
    eng.dispose()


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # kilobytes on Linux


def _client(app: Any) -> Any:
    from fastapi.testclient import TestClient

    from api.demo_users import demo_password, demo_username

    c = TestClient(app)
    r = c.post("/api/session", json={"username": demo_username("performance"),
                                     "password": demo_password("performance")})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def _timed_get(client: Any, url: str, cpu: dict[str, float] | None = None, name: str = "") -> tuple[float, Any]:
    t, c = time.perf_counter(), time.process_time()
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code, r.text[:500])
    if cpu is not None:
        cpu[name] = min(cpu.get(name, 1e9), round(time.process_time() - c, 2))
    return time.perf_counter() - t, r


def phase(name: str, url: str) -> dict[str, Any]:
    """One measured step, in this (new) process. Each timing has its wall time (``*_s``) and the CPU time of this
    process (``*_cpu_s``: the app and, on SQLite, the database's own work; not a PostgreSQL server's)."""
    import os

    from api.app import create_app
    from engine.runtime import Engine
    from handlers import measures as m

    eng = Engine(url)
    app = create_app(eng, run_timers=False)
    client = _client(app)
    cpu: dict[str, float] = {}
    out: dict[str, Any] = {"rss_before_mb": _peak_mb(), "load_before": os.getloadavg()}
    seconds, page = _timed_get(client, f"/measures?{YEAR}", cpu, name)
    out[f"{name}_s"] = round(seconds, 2)
    out[f"{name}_peak_rss_mb"] = _peak_mb()
    if name == "cold_page":
        out["cold_page_from_kept_figures"] = m._LOADED.get(eng) is None  # no population read: measure_pages
        out["warm_page_s"] = round(min(_timed_get(client, f"/measures?{YEAR}", cpu, "warm_page")[0]
                                       for _ in range(3)), 2)
        case_id = eng.db.engine.connect().execute(select(func.min(cases.c.id))).scalar()
        # a new event, then the page in this process, which has read no population yet: every kept row read (what
        # the first page after a start cost before measure_pages, and still costs when an event came since)
        eng.update_case_record(case_id, {"bench_touch": -1}, actor="bench", reason="bench")
        out["first_population_page_s"] = round(_timed_get(client, f"/measures?{YEAR}", cpu,
                                                          "first_population_page")[0], 2)
        after = []
        for k in range(3):
            eng.update_case_record(case_id, {"bench_touch": k}, actor="bench", reason="bench")
            after.append(_timed_get(client, f"/measures?{YEAR}", cpu, "page_after_one_new_event")[0])
        out["page_after_one_new_event_s"] = round(min(after), 2)
        out["drill_down_s"] = round(min(_timed_get(client, f"/measures/new_requests/cases?{YEAR}", cpu,
                                                   "drill_down")[0] for _ in range(3)), 2)
        pop = m.load_population(eng)
        year = (date(2031, 4, 1), date(2032, 3, 31))
        r = m.compute("new_requests", pop, *year)
        out["requests_in_year"] = sum(p.count for p in r.parts)
        out["page_bytes"] = len(page.content)
        out["peak_rss_mb"] = _peak_mb()
        # the next start finds the figures kept for this page at the mark of the last new event
    out.update({f"{k}_cpu_s": v for k, v in cpu.items()})
    out["load_after"] = os.getloadavg()
    eng.db.dispose()
    return out


def _in_child(name: str, url: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.measures_bench", "--phase", name, "--url", url],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(kind: str, pg_url: str | None, target: int, keep: str | None = None, rounds: int = 1) -> dict[str, Any]:
    from api.demo_users import create_demo_users
    from bench import county
    from bench.cld_bench import Kept, _count
    from engine.forms import FormLibrary
    from engine.registry import load_registry
    from engine.runtime import Engine

    db = Kept(kind, pg_url, keep) if keep else Scratch(kind, pg_url)
    try:
        eng = Engine(db.url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
        reused = _count(eng) > 0
        result: dict[str, Any] = {"database": kind, "reused_database": reused}
        if reused:  # a database kept from an earlier run: brought to the migrations' head (measure_pages, 0017)
            from engine.migrate import upgrade

            upgrade(eng.db)
        if not reused:
            eng.init(simulated_start=county.START)
            eng.deploy(county.FILES)
            templates = county.drive(eng)
            create_demo_users(eng)
            t = time.perf_counter()
            result.update(fill(eng, templates, target))
            result["setup_s"] = round(time.perf_counter() - t, 1)
        eng.db.dispose()
        vacuum(db.url)
        with_facts = _facts_kept(db.url)
        if not with_facts:
            result.update(_in_child("first_page_ever", db.url))
            result.pop("rss_before_mb")
            vacuum(db.url)  # the measure_facts rows just written
        for k in range(rounds):
            got = _in_child("cold_page", db.url)
            if k == 0:
                result.update(got)
            else:
                result.setdefault("more_rounds", []).append(got)
        return result
    finally:
        db.close()


def _facts_kept(url: str) -> bool:
    """Whether a kept database already holds measure facts (its first page ever was made by an earlier run)."""
    from sqlalchemy import create_engine

    from engine.schema import measure_facts

    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(measure_facts)).scalar())
    finally:
        eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", help="PostgreSQL URL (a throwaway schema is made and dropped)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--db-file", help="SQLite file to keep (filled if empty, reused if it holds events)")
    ap.add_argument("--pg-schema", help="PostgreSQL schema to keep (filled if empty, reused if it holds events)")
    ap.add_argument("--rounds", type=int, default=1, help="cold_page runs (each in a new process)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)  # one measured step, in a child process
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.url)))
        return
    results = []
    if not args.skip_sqlite:
        results.append(run("sqlite", None, args.events, args.db_file, args.rounds))
        print(dumps(results[-1]), flush=True)
    if args.pg:
        results.append(run("postgres", args.pg, args.events, args.pg_schema, args.rounds))
        print(dumps(results[-1]), flush=True)
    report = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "command": "python -m bench.measures_bench " + " ".join(sys.argv[1:]), "results": results}
    dest = ROOT / "bench" / "results" / f"measures-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    dest.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
