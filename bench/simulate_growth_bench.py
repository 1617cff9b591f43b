"""Where a simulated year's extra cost comes from (issue 16): the run of bench/simulate_bench.py, reported per 4
simulated weeks — the process's CPU, the engine's steps (`_advance`), user tasks completed, contacts, and the
time spent inside SQLite's COMMIT and executemany — without a profiler (counters and timers only).

    .venv/bin/python bench/simulate_growth_bench.py --days 91
    .venv/bin/python bench/simulate_growth_bench.py --days 365

A contact that costs more later in a run either brings more steps (its case reaches reviews and plans within
the run) or each step costs more (something grows with the run): the columns tell the two apart. Results:
docs/performance.md, "Why a contact costs more as the run goes on".
"""

from __future__ import annotations

import argparse
import sqlite3
import sqlite3.dbapi2
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carepath import simulate  # noqa: E402
from engine import step, task_ops  # noqa: E402

clock = time.process_time
seen: Counter[str] = Counter()  # counts and seconds, cumulative


class _Timed(sqlite3.Connection):
    """sqlite3's connection with its commit and executemany timed (this process only)."""

    def commit(self) -> None:
        t0 = clock()
        super().commit()
        seen["commit s"] += clock() - t0
        seen["commits"] += 1

    def executemany(self, *args: Any) -> Any:  # engine/driver_sql.py calls the connection's own
        t0 = clock()
        try:
            return super().executemany(*args)
        finally:
            seen["executemany s"] += clock() - t0
            seen["executemany"] += 1

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or _TimedCursor)


class _TimedCursor(sqlite3.Cursor):
    def executemany(self, *args: Any) -> Any:
        t0 = clock()
        try:
            return super().executemany(*args)
        finally:
            seen["executemany s"] += clock() - t0
            seen["executemany"] += 1


def _counting(owner: Any, name: str, key: str) -> None:
    fn = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen[key] += 1
        return fn(*args, **kwargs)

    setattr(owner, name, counted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=91)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    connect = sqlite3.connect

    def timed_connect(*a: Any, **k: Any) -> sqlite3.Connection:
        k.setdefault("factory", _Timed)
        return connect(*a, **k)

    sqlite3.connect = sqlite3.dbapi2.connect = timed_connect  # type: ignore[assignment]
    _counting(step.StepCore, "_advance", "steps")
    _counting(step.StepCore, "start", "contacts")
    _counting(task_ops.TaskOps, "complete_task", "completions")
    last: dict[str, Any] = {"cpu": clock(), "seen": Counter()}
    pop = simulate.heapq.heappop

    def heappop(heap: list[Any]) -> Any:  # the simulator's event queue: report at every fourth week's end
        item = pop(heap)
        if len(item) == 4 and item[2] == "week_end" and item[3] % 4 == 0:
            now, d = clock(), Counter(seen)
            d.subtract(last["seen"])
            cpu = now - last["cpu"]
            per_step = cpu / max(d["steps"], 1) * 1000
            print(f"weeks to {item[3]:2d}: CPU {cpu:6.1f} s, {d['steps']:6d} steps ({per_step:4.2f} ms a step), "
                  f"{d['completions']:6d} completions, {d['contacts']:5d} contacts; COMMIT "
                  f"{d['commit s']:5.2f} s ({d['commit s'] / max(d['commits'], 1) * 1e6:6.1f} us each, "
                  f"{d['commits']} of them); executemany {d['executemany s']:5.2f} s "
                  f"({d['executemany s'] / max(d['executemany'], 1) * 1e6:5.1f} us each)", flush=True)
            last["cpu"], last["seen"] = now, Counter(seen)
        return item

    simulate.heapq.heappop = heappop  # type: ignore[assignment]
    c0 = clock()
    out = simulate.simulate(simulate.load_scenario(), days=args.days, seed=args.seed)
    done = sum(t["done"] for t in out["teams"].values())
    print(f"days {args.days}: {out['contacts']} contacts, {done} user tasks completed, {clock() - c0:.1f} s CPU, "
          f"{seen['steps']} steps; COMMIT {seen['commit s']:.2f} s, executemany {seen['executemany s']:.1f} s")


if __name__ == "__main__":
    main()
