"""A CPU bomb beside 1,000 healthy timers (issue 13, item 6): every healthy timer fires, the bomb becomes one
incident, and the timer job is not held up longer than the bomb's CPU budget. Also the per-step cost of
the budget: code run in-process (bounded at sight) against code run in the budgeted child (a fork).

    python -m bench.bomb_bench                    # SQLite
    python -m bench.bomb_bench --pg postgresql://postgres@127.0.0.1:5432/test

Results: docs/performance.md "Script budget"; JSON in bench/results/bomb-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.engine_bench import START, Scratch, _engine
from engine.budget import ScriptBudget, run_budgeted
from engine.expressions import SafeEnvironment
from engine.schema import incidents, instances
from tests.budget_diagrams import CPU_BOMB, HEALTHY_INLINE, HEALTHY_LOOP, timer_then_script

RESULTS = Path(__file__).parent / "results"


def bomb_run(kind: str, healthy: int, pg_url: str | None, workers: int) -> dict[str, Any]:
    """`healthy` cases (half with a script bounded at sight, half with one that runs in the child) and one bomb
    in the middle, all behind a one-day timer; the clock is then moved past it and the timer job runs
    (`advance_clock` with one worker, `fire_due_timers` in `workers` threads each with its own engine)."""
    db = Scratch(kind, pg_url)
    try:
        eng = _engine(db.url)
        eng.init(simulated_start=START)
        eng.deploy(files={"bomb.bpmn": timer_then_script("bomb", CPU_BOMB),
                          "loop.bpmn": timer_then_script("loop", HEALTHY_LOOP),
                          "inline.bpmn": timer_then_script("inline", HEALTHY_INLINE)})
        for i in range(healthy):
            if i == healthy // 2:
                eng.start("bomb")
            eng.start("loop" if i % 2 else "inline")
        budget = eng.script_engine.environment.budget
        t0 = time.perf_counter()
        if workers == 1:
            moved = eng.advance_clock(timedelta(days=2))
        else:
            with eng.db.transaction() as conn:
                eng._set_clock(conn, eng.now(conn) + timedelta(days=2))
            engines = [_engine(db.url) for _ in range(workers)]
            counts = [0] * workers

            def work(i: int) -> None:
                counts[i] = engines[i].fire_due_timers()

            threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            moved = sum(counts) + eng.fire_due_timers()  # anything a stopped batch left for the next run
            for e in engines:
                e.db.dispose()
        seconds = time.perf_counter() - t0
        with eng.db.engine.connect() as conn:
            statuses = dict(conn.execute(select(instances.c.status, func.count()).group_by(instances.c.status)).all())
            incident_rows = conn.execute(select(incidents.c.element_id, incidents.c.message)).all()
        eng.db.dispose()
        return {"db": kind, "workers": workers, "healthy": healthy, "moved": moved, "seconds": round(seconds, 2),
                "completed": statuses.get("completed", 0), "error": statuses.get("error", 0),
                "incidents": [{"element_id": r.element_id, "message": r.message[:160]} for r in incident_rows],
                "budget": {"cpu_seconds": budget.cpu_seconds, "memory_mb": budget.memory_mb,
                           "wall_seconds": budget.wall_seconds}}
    finally:
        db.close()


def step_overhead(n: int = 300) -> dict[str, Any]:
    """Microseconds per run of one small script and one expression: in-process, and through the child."""
    env = SafeEnvironment(budget=ScriptBudget())
    now = datetime(2031, 1, 6, tzinfo=timezone.utc)
    data = {"amount": 12, "status": "open", "items": list(range(20)), "when": now}

    def per(fn: Any, count: int) -> float:
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        return round((time.perf_counter() - t0) / count * 1e6, 1)

    expression = "amount > 5 and status == 'open'"
    return {
        "expression_in_process_us": per(lambda: env.evaluate(expression, dict(data)), n * 10),
        "expression_in_child_us": per(lambda: run_budgeted(lambda: env._evaluate(
            compile("True", "<x>", "eval"), expression, dict(data), None), env.budget, "x"), n),
        "script_in_process_us": per(lambda: env.execute(HEALTHY_INLINE.replace("now()", "when"), dict(data)), n * 10),
        "script_in_child_us": per(lambda: env.execute(HEALTHY_LOOP, dict(data)), n),
        "rss_mb": round(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default=None, help="PostgreSQL URL (a throwaway schema is made in it)")
    p.add_argument("--healthy", type=int, default=1000, help="healthy timer cases beside the bomb (default 1000)")
    p.add_argument("--workers", type=int, default=2, help="timer-job workers for the second run (default 2)")
    args = p.parse_args(argv)
    result: dict[str, Any] = {"machine": {"python": platform.python_version(), "cores": os.cpu_count(),
                                          "load": os.getloadavg()[0]},
                              "overhead": step_overhead(), "runs": []}
    print(json.dumps(result["overhead"]))
    kinds = [("sqlite", None)] + ([("postgres", args.pg)] if args.pg else [])
    for kind, url in kinds:
        for workers in (1, args.workers) if kind == "postgres" else (1,):
            run = bomb_run(kind, args.healthy, url, workers)
            ok = run["completed"] == args.healthy and run["error"] == 1 and len(run["incidents"]) == 1
            run["verdict"] = "all healthy fired, the bomb is one incident" if ok else "FAILED"
            result["runs"].append(run)
            print(json.dumps(run))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bomb-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written {out}")
    return 0 if all(r["verdict"] != "FAILED" for r in result["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
