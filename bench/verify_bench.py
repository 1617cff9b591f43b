"""Verifying the history (issue 9): `audit verify` of one case and of 100,000 events, the integrity
check of one case (verify + replay), and `audit verify --against` a signed heads file.

    .venv/bin/python -m bench.verify_bench                      # SQLite
    .venv/bin/python -m bench.verify_bench --pg postgresql://postgres@127.0.0.1:5432/test

Set-up (not measured): one real case run through the engine (tests/diagrams/three_tasks.bpmn:
started, three tasks completed), then --cases chains of --events events each
appended with engine.history.append_many — the same hashing and rows the engine writes, with
task-sized JSON data — so the database holds 100,000 events by default. Each figure is the best
of --repeat runs. Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bench.engine_bench import START, Scratch, dumps
from bench.run import machine
from engine import anchoring, history
from engine.history import Event
from engine.integrity import check_case
from engine.schema import cases as cases_table
from engine.schema import events

ROOT = Path(__file__).resolve().parent.parent
DIAGRAM = ROOT / "tests" / "diagrams" / "three_tasks.bpmn"


def _fill(eng: Any, cases: int, per_case: int) -> None:
    """`cases` chains of `per_case` events in steps of four, 200 chains a transaction (append_many). Each chain is a
    case of its own (a case row, its events filed under it: the verifier checks a case chain's events are)."""
    at = START
    for first in range(0, cases, 200):
        at += timedelta(minutes=1)
        with eng.db.transaction() as conn:
            conn.execute(insert(cases_table), [
                {"id": 1_000_000 + c, "reference": f"BENCH-{c:07d}", "title": "Verify bench", "data": "{}",
                 "created_at": at, "updated_at": at} for c in range(first, min(cases, first + 200))])
        groups = []
        for c in range(first, min(cases, first + 200)):
            chain = f"case:{1_000_000 + c}"
            for s in range(0, per_case, 4):
                groups.append((chain, 1_000_000 + c, [
                    Event("task.completed" if i == 0 else "task.ready",
                          {"element_id": f"task_{s + i}", "name": "Assess the person's needs",
                           "task_id": f"{c:08d}-{s + i:04d}-4000-8000-000000000000",
                           "data": {"outcome": "eligible", "notes": "x" * 80}},
                          instance_id=None, actor="sw1" if i == 0 else "system")
                    for i in range(min(4, per_case - s))]))
        with eng.db.transaction() as conn:
            history.append_many(conn, at, groups, lock=False)


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def verify_bench(kind: str, pg_url: str | None, cases: int, per_case: int, repeat: int) -> dict[str, Any]:
    from engine.forms import FormLibrary
    from engine.registry import HandlerRegistry
    from engine.runtime import Engine

    db = Scratch(kind, pg_url)
    keys = tempfile.TemporaryDirectory(prefix="carepath-bench-keys-")
    try:
        eng = Engine(db.url, registry=HandlerRegistry(), forms=FormLibrary())
        eng.init(simulated_start=START)
        eng.deploy([DIAGRAM])
        res = eng.start("three_tasks", data={"name": "Peter"})
        for answer in ({"reason": "memory loss"}, {"eligible": True}, {"agreed": True}):
            [task] = eng.list_tasks(case_id=res.case_id)
            eng.complete_task(task["id"], answer, actor="sw1")
        t = time.perf_counter()
        _fill(eng, cases, per_case)
        setup_s = time.perf_counter() - t
        with eng.db.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(events)).scalar()
        big = f"case:{1_000_000 + cases // 2}"

        one_real_s, (n_real, f_real) = _best(lambda: eng.verify(res.case_id), repeat)
        with eng.db.engine.connect() as conn:
            one_big_s, (n_big, f_big) = _best(lambda: history.verify(conn, big), repeat)
        all_s, (n_all, f_all) = _best(eng.verify, repeat)
        check_s, checked = _best(lambda: check_case(eng, res.case_id, actor="bench"), repeat)
        key, _pub, _pem = anchoring.generate_keys(Path(keys.name) / "k")
        sign_s, doc = _best(lambda: anchoring.heads_document(eng, anchoring.load_private_key(key)), repeat)
        against_s, f_against = _best(lambda: anchoring.verify_against(eng, doc), repeat)
        eng.db.dispose()
        assert not (f_real or f_big or f_all or f_against) and checked["verified"] and checked["replay_ok"]
        return {
            "database": kind, "events_in_database": total, "chains": cases + 2, "setup_s": round(setup_s, 1),
            "verify_one_real_case_ms": round(1000 * one_real_s, 1), "real_case_events": n_real,
            f"verify_one_case_of_{per_case}_events_ms": round(1000 * one_big_s, 1),
            "verify_all_s": round(all_s, 2), "verify_all_events": n_all,
            "events_per_s": round(n_all / all_s),
            "integrity_check_one_case_ms": round(1000 * check_s, 1),
            "sign_heads_s": round(sign_s, 3), "verify_against_heads_s": round(against_s, 2),
        }
    finally:
        keys.cleanup()
        db.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=1000, help="chains to add")
    p.add_argument("--events", type=int, default=100, help="events in each added chain")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the best is kept)")
    p.add_argument("--pg", help="PostgreSQL URL (default: SQLite only)")
    p.add_argument("--only", choices=["sqlite", "postgres"], help="run on one database only")
    args = p.parse_args()
    kinds = [k for k in ("sqlite", "postgres") if (args.only in (None, k)) and (k == "sqlite" or args.pg)]
    out: dict[str, Any] = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                           "command": "python -m bench.verify_bench " + " ".join(
                               f"--{k} {v}" for k, v in (("cases", args.cases), ("events", args.events),
                                                         ("repeat", args.repeat), ("only", args.only)) if v)
                           + (" --pg URL" if args.pg else ""),
                           "runs": []}
    for kind in kinds:
        out["runs"].append(verify_bench(kind, args.pg, args.cases, args.events, args.repeat))
        print(dumps(out["runs"][-1]), flush=True)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    path = results / f"verify-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{'-'.join(kinds)}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"saved {path.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
