"""Message correlation throughput: N messages to N waiting cases, sent by several processes at once, each
message sent by every process (so N x (workers - 1) duplicates), on SQLite and PostgreSQL.

    python -m bench.messages_bench [--cases 10000] [--workers 2] [--pg postgresql://postgres@127.0.0.1:5432/test]

Reports the time to put N cases waiting (each started by a message start event), the time to deliver the
N x workers messages, how many were delivered and how many refused as duplicates, and checks in the database
that each case received its reply exactly once (docs/performance.md, "Messages").
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

from bench.engine_bench import DIAGRAMS, Scratch, _engine
from engine.schema import events, instances

START = datetime(2031, 1, 6, 9, 0, tzinfo=timezone.utc)


def _send(url: str, case_ids: list[int], seed: int, go: Any, out: Any) -> None:
    eng = _engine(url)
    order = list(case_ids)
    random.Random(seed).shuffle(order)
    counts = {"delivered": 0, "duplicate": 0, "other": 0}
    go.wait()
    for cid in order:
        res = eng.deliver_message("provider_reply", case_id=cid, data={"weekly_cost": cid % 500},
                                  key=f"reply-{cid}", actor="bench")
        counts[res.status if res.status in counts else "other"] += 1
    out.put(counts)
    eng.db.dispose()


def run(kind: str, n: int, workers: int, pg_url: str | None) -> dict[str, Any]:
    db = Scratch(kind, pg_url)
    try:
        eng = _engine(db.url)
        eng.init(simulated_start=START)
        eng.deploy([DIAGRAMS / "message_wait.bpmn"])
        t0 = time.perf_counter()
        case_ids = [eng.deliver_message("referral", data={"ref": i}, key=f"referral-{i}").case_id for i in range(n)]
        t_start = time.perf_counter() - t0
        ctx = mp.get_context("spawn")
        go, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_send, args=(db.url, case_ids, seed, go, out)) for seed in range(workers)]
        for p in procs:
            p.start()
        time.sleep(2.0)  # let every process import and connect before the clock starts
        t0 = time.perf_counter()
        go.set()
        totals = {"delivered": 0, "duplicate": 0, "other": 0}
        for _ in procs:
            for k, v in out.get().items():
                totals[k] += v
        t_deliver = time.perf_counter() - t0
        for p in procs:
            p.join()
        with eng.db.engine.connect() as conn:
            received = conn.execute(select(events.c.case_id, func.count()).where(
                events.c.type == "message.received", events.c.data.like('%"name":"provider_reply"%'))
                .group_by(events.c.case_id)).all()
            completed = conn.execute(select(func.count()).select_from(instances)
                                     .where(instances.c.status == "completed")).scalar_one()
        once = sum(1 for _c, k in received if k == 1)
        twice = sum(1 for _c, k in received if k > 1)
        eng.db.dispose()
        return {"database": kind, "cases": n, "workers": workers, "messages_sent": n * workers,
                "seconds_to_start_waiting_cases": round(t_start, 2),
                "seconds_to_deliver": round(t_deliver, 2),
                "messages_per_second": round(n * workers / t_deliver, 1),
                "delivered": totals["delivered"], "duplicates_refused": totals["duplicate"],
                "other": totals["other"], "cases_replied_once": once, "cases_replied_more_than_once": twice,
                "instances_completed": completed}
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000, help="waiting cases, one message each (default 10000)")
    ap.add_argument("--workers", type=int, default=2, help="processes sending every message (default 2)")
    ap.add_argument("--pg", help="PostgreSQL URL: also run there, e.g. postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--only", choices=("sqlite", "postgresql"), help="run on one database only")
    args = ap.parse_args(argv)
    kinds = [k for k in ("sqlite", "postgresql") if (k == "sqlite" or args.pg) and args.only in (None, k)]
    results = []
    for kind in kinds:
        r = run(kind, args.cases, args.workers, args.pg)
        results.append(r)
        print(json.dumps(r, indent=2))
    bad = [r for r in results if r["cases_replied_more_than_once"] or r["cases_replied_once"] != r["cases"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
