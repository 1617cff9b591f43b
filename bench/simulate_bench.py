"""What-if simulation benchmark (issue 16): the default scenario (a county year, 26,444 contacts) through
`carepath simulate`'s own code on the in-memory simulated-clock database, timed, with the cProfile top functions.

    .venv/bin/python bench/simulate_bench.py              # the whole year (goal: under 120 s)
    .venv/bin/python bench/simulate_bench.py --days 14    # a fortnight, to see the rate quickly

    .venv/bin/python bench/simulate_bench.py --days 28 --no-profile --full-history   # as live: every event chained
    .venv/bin/python bench/simulate_bench.py --days 365 --no-profile --processes 1   # the year in one process

Without the profiler a run shares its cases between two processes, as `carepath simulate` does on two cores
(docs/simulation.md "One run on both cores"); the CPU printed is both processes'.

Prints the wall time, the process's CPU time (on the shared machine the steadier figure), contacts, user tasks
completed, the rate per contact, the year extrapolated from the rate (when --days is under 365), the peak memory
and the profile's top 25 functions by cumulative time. Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carepath import forked, simulate  # noqa: E402
from carepath.simulate_compare import workers_default  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--out", metavar="FILE", help="also write the run's JSON output here")
    ap.add_argument("--processes", type=int, choices=(1, 2), default=None,
                    help="share the run's cases between this many processes (default: 2 without the profiler, "
                    "as `carepath simulate` runs on two cores; the profiler sees only the first process)")
    ap.add_argument("--full-history", action="store_true",
                    help="keep the whole hash-chained history, as live (not simulation mode)")
    args = ap.parse_args()
    scenario = simulate.load_scenario()
    prof = None if args.no_profile else cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    parts = args.processes or (1 if prof else min(2, workers_default()))  # as `carepath simulate` chooses
    out = simulate.simulate(scenario, days=args.days, seed=args.seed, full_history=args.full_history, parts=parts)
    if prof:
        prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    forked.stop()  # the forkserver and, through it, the second process: their time counted as this one's children's
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += kids.ru_utime + kids.ru_stime  # the second process's and the forkserver's
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, sort_keys=True, default=str), encoding="utf-8")
    done = sum(t["done"] for t in out["teams"].values())
    print(f"days {args.days}, seed {args.seed}: {out['contacts']} contacts, {done} user tasks completed, "
          f"{parts} process(es), {wall:.1f} s wall, {cpu:.1f} s CPU ({cpu / max(out['contacts'], 1) * 1000:.0f} ms "
          "CPU a contact); "
          f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
          + (" (full history)" if args.full_history else ""))
    if args.days < 365 and out["contacts"]:
        print(f"a year of 26,444 contacts at this rate: about {wall / out['contacts'] * 26444:.0f} s wall, "
              f"{cpu / out['contacts'] * 26444:.0f} s CPU")
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
        print(s.getvalue())


if __name__ == "__main__":
    main()
