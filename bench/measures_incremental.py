"""The page after one new event, updated in place (``_updated``) against built again (the way before), in one
process on the same database, turn about, so both see the same load on a shared machine.

    .venv/bin/python -m bench.measures_incremental --url sqlite:////path/to/county.db   # a database the
    # measures bench filled (bench/measures_bench.py), its facts kept by a first page

Prints a JSON line: the seconds of each (load_population, then the page), best of --repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from sqlalchemy import func, select

from bench.measures_bench import YEAR, _client, _timed_get
from engine.schema import cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from api.app import create_app
    from engine.runtime import Engine
    from handlers import measures as m

    eng = Engine(args.url)
    client = _client(create_app(eng, run_timers=False))
    t = time.perf_counter()
    _timed_get(client, f"/measures?{YEAR}")
    out: dict = {"load_average_before": os.getloadavg(), "cold_page_s": round(time.perf_counter() - t, 2),
                 "warm_page_s": round(min(_timed_get(client, f"/measures?{YEAR}")[0] for _ in range(2)), 2)}
    with eng.db.engine.connect() as conn:
        case_id = conn.execute(select(func.min(cases.c.id))).scalar()
    floor, share = m.INCREMENTAL_FLOOR, m.INCREMENTAL_MAX
    timings: dict[str, list[tuple[float, float]]] = {"updated": [], "built_again": []}
    for k in range(args.repeat):
        for way in ("updated", "built_again"):
            m.INCREMENTAL_FLOOR, m.INCREMENTAL_MAX = (floor, share) if way == "updated" else (-1, 0.0)
            eng.update_case_record(case_id, {"bench_touch": f"{way}{k}"}, actor="bench", reason="bench")
            t = time.perf_counter()
            m.load_population(eng)
            loaded = time.perf_counter() - t
            timings[way].append((loaded, _timed_get(client, f"/measures?{YEAR}")[0] + loaded))
    for way, got in timings.items():
        out[f"{way}_load_s"] = round(min(g[0] for g in got), 2)
        out[f"{way}_page_s"] = round(min(g[1] for g in got), 2)
    out["load_average_after"] = os.getloadavg()
    eng.db.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
