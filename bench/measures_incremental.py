"""The measures page for a county year on a database the measures bench filled, step by step in one process, with
the process's CPU time beside the wall time (the machine is shared: wall time measures the load as much as the
code; CPU time much less so), and optionally where the time goes (cProfile).

    .venv/bin/python -m bench.measures_incremental --url sqlite:////tmp/measpage-county.db
    .venv/bin/python -m bench.measures_incremental --url 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dmeaspage_county'
    # either made and kept by: .venv/bin/python -m bench.measures_bench --db-file /tmp/measpage-county.db
    #   (or --skip-sqlite --pg postgresql://postgres@127.0.0.1:5432/test --pg-schema measpage_county)

Steps, each through the app as the performance role (``GET /measures?from=2031-04-01&to=2032-03-31``):

* ``start``: the first page in this process (the kept facts read, every figure worked out; or, when the page's
  figures kept in measure_pages are current, those: ``start_from_kept_figures``, and then the population is read
  apart, ``population_s``, and its page, ``population_page_s``, so that the steps below time what they did
  before);
* ``again``: the same page, nothing written since;
* ``after_<kind>``: the page after one new event of each kind (``--kinds``; ``record``: a case record changed,
  the cheapest event; ``carer``: the same on a case with a carer's support (its facts worked out again; who
  counts as a carer is unchanged); ``close``: a case with a carer's support and long-term support closed, which changes
  ASCOF 3D, 3D(1b)/(2b) and the reviews: each time another case, so the database is changed for good), the
  event written between pages and not timed;
* ``built_again`` (with ``--compare``): the page after one new event with the incremental path turned off (the
  population built again from every case's kept facts), as a check of what the incremental path saves.
Each is the best of --repeat (the first page once). Prints one JSON line; --profile FILE writes cProfile's top
functions of one page after a new event (and of the first page) to FILE.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from typing import Any

from sqlalchemy import func, select

from bench.measures_bench import YEAR, _client
from engine.schema import cases, measure_facts


def _page(client: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of one page."""
    t, c = time.perf_counter(), time.process_time()
    r = client.get(f"/measures?{YEAR}")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return time.perf_counter() - t, time.process_time() - c


def _carer_cases(eng: Any) -> list[int]:
    """Cases whose kept facts hold a carer's support (`carers_3d`), the first 50."""
    with eng.db.engine.connect() as conn:
        return list(conn.execute(select(measure_facts.c.case_id).where(
            measure_facts.c.facts.like('%"carers_3d":[[%')).order_by(measure_facts.c.case_id).limit(50)).scalars())


def _close_one(eng: Any, candidates: list[int]) -> int:
    """Close the first of `candidates` still open (taken off the list): a carer's support ends, and with it the
    case's long-term support and reviews (3D, 3D(1b)/(2b), reviews change)."""
    from engine.errors import StateError

    while candidates:
        case_id = candidates.pop(0)
        try:
            eng.close_case(case_id, reason="moved_away", details={"council": "Southshire"}, actor="bench")
            return case_id
        except StateError:
            continue  # closed by an earlier run
    raise RuntimeError("no open case with a carer's support left to close")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kinds", default="record,carer,close")
    ap.add_argument("--compare", action="store_true", help="also time the page after a new event built again")
    ap.add_argument("--profile", help="write cProfile's top functions of the first page and of a page after a "
                                      "new event to this file")
    args = ap.parse_args()
    from api.app import create_app
    from engine.runtime import Engine
    from handlers import measures as m

    eng = Engine(args.url)
    client = _client(create_app(eng, run_timers=False))
    out: dict[str, Any] = {"load_average_before": os.getloadavg()}
    profiles: list[str] = []
    on: list[cProfile.Profile] = []  # the profiler of the page being profiled, if any
    if args.profile:  # the page's work runs in the server's threads: profile the two calls that make it
        import api.measures as pages

        def profiled(fn: Any) -> Any:
            def run(*a: Any, **kw: Any) -> Any:
                return on[0].runcall(fn, *a, **kw) if on else fn(*a, **kw)
            return run
        pages._compute_page = profiled(pages._compute_page)
        pages.kit.render = profiled(pages.kit.render)

    def timed(label: str, profile: bool = False) -> tuple[float, float]:
        if args.profile and profile:
            on.append(cProfile.Profile(time.thread_time))  # CPU of the thread doing the work
        got = _page(client)
        if on:
            buf = io.StringIO()
            pstats.Stats(on.pop(), stream=buf).sort_stats("cumulative").print_stats(60)
            profiles.append(f"==== {label}: {got[0]:.2f} s wall, {got[1]:.2f} s CPU\n{buf.getvalue()}")
        return got

    wall, cpu = timed("start", True)
    out["start_s"], out["start_cpu_s"] = round(wall, 2), round(cpu, 2)
    out["start_from_kept_figures"] = m._LOADED.get(eng) is None  # measure_pages current: no population read
    if out["start_from_kept_figures"]:  # the population read, as the first page would have, for what follows
        t, c = time.perf_counter(), time.process_time()
        m.load_population(eng)
        out["population_s"], out["population_cpu_s"] = (round(time.perf_counter() - t, 2),
                                                         round(time.process_time() - c, 2))
        wall, cpu = _page(client)  # the figures worked out from it (the population held: no kept page shown)
        out["population_page_s"], out["population_page_cpu_s"] = round(wall, 2), round(cpu, 2)
    again = [_page(client) for _ in range(args.repeat)]
    out["again_s"], out["again_cpu_s"] = round(min(a[0] for a in again), 2), round(min(a[1] for a in again), 2)
    with eng.db.engine.connect() as conn:
        first_case = conn.execute(select(func.min(cases.c.id))).scalar()
    carers = _carer_cases(eng)
    targets = {"record": first_case, "carer": carers[0]}
    closable = carers[1:]  # the "carer" case stays open
    floor, share = m.INCREMENTAL_FLOOR, m.INCREMENTAL_MAX
    ways = ["updated", "built_again"] if args.compare else ["updated"]
    for kind in args.kinds.split(","):
        case_id = targets.get(kind)
        for way in ways:
            m.INCREMENTAL_FLOOR, m.INCREMENTAL_MAX = (floor, share) if way == "updated" else (-1, 0.0)
            got = []
            for k in range(args.repeat):
                if kind == "close":
                    _close_one(eng, closable)
                else:
                    eng.update_case_record(case_id, {"bench_touch": f"{kind}{way}{k}"}, actor="bench",
                                           reason="bench")
                got.append(timed(f"after {kind} ({way})", k == 0 and way == "updated"))
            name = f"after_{kind}" if way == "updated" else f"after_{kind}_built_again"
            out[f"{name}_s"] = round(min(g[0] for g in got), 2)
            out[f"{name}_cpu_s"] = round(min(g[1] for g in got), 2)
    m.INCREMENTAL_FLOOR, m.INCREMENTAL_MAX = floor, share
    out["load_average_after"] = os.getloadavg()
    eng.db.dispose()
    if args.profile:
        with open(args.profile, "w") as f:
            f.write("\n".join(profiles))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
