"""The inbox's lookup of paused processes (api/tasks.py `suspended_instances`) after years of pauses.

Every inbox page asks which process instances are paused now (hospital admissions: their tasks are left out of
the overdue and due-soon counts). Run with `.venv/bin/python -m bench.paused_lookup_bench` (SQLite) or add
`--pg postgresql://postgres@127.0.0.1:5432/test` (a throwaway schema). The rows are loaded in bulk, copied from
one instance the engine wrote: `--instances` (100,000) of which `--paused-now` (20) are paused, `--pauses`
(10,000: a county's few years of admissions during reablement) earlier `instance.suspended` events of
instances since resumed, among `--events` (300,000) history events. It times, median of 50 calls, the lookup
as it was before session 29 (the `instance.suspended` events by their type's index, then those instances by
id) and as it is now (`suspended_instances`: the paused instances by the partial index
`ix_instances_suspended`, migration 0031), and checks both give the same instances.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert, select

from api.tasks import suspended_instances
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import events, instances

from .engine_bench import Scratch

ROOT = Path(__file__).resolve().parent.parent

START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)


def before(conn) -> list[int]:  # noqa: ANN001 - the lookup as session 28 left it
    ever = select(events.c.instance_id).where(events.c.type == "instance.suspended")
    return sorted(conn.execute(select(instances.c.id).where(instances.c.id.in_(ever),
                                                            instances.c.status == "suspended")).scalars())


def load(eng: Engine, n_inst: int, paused_now: int, pauses: int, n_events: int) -> None:
    eng.deploy([ROOT / "tests" / "diagrams" / "three_tasks.bpmn"])
    first = eng.start("three_tasks", title="Template")
    with eng.db.engine.connect() as conn:
        tpl = dict(conn.execute(select(instances).where(instances.c.id == first.instance_id)).one()._mapping)
        ev = dict(conn.execute(select(events).order_by(events.c.id).limit(1)).one()._mapping)
    tpl.pop("id")
    ev.pop("id")
    with eng.db.transaction() as conn:
        for k in range(0, n_inst - 1, 20_000):
            conn.execute(insert(instances), [{**tpl, "status": "suspended" if i < paused_now else "waiting"}
                                             for i in range(k, min(k + 20_000, n_inst - 1))])
        top = conn.execute(select(instances.c.id).order_by(instances.c.id.desc()).limit(1)).scalar()
        seq = 1_000
        for k in range(0, n_events, 20_000):
            rows = []
            for i in range(k, min(k + 20_000, n_events)):
                seq += 1
                paused = i < pauses + paused_now
                iid = (2 + i) if paused else (2 + i % (top - 1))  # pauses spread over distinct instances
                rows.append({**ev, "seq": seq, "instance_id": iid,
                             "type": "instance.suspended" if paused else "task.completed"})
            conn.execute(insert(events), rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="PostgreSQL URL (a throwaway schema is made and dropped)")
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--paused-now", type=int, default=20)
    ap.add_argument("--pauses", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    scratch = Scratch("postgres" if args.pg else "sqlite", args.pg)
    try:
        eng = Engine(scratch.url, registry=HandlerRegistry(), forms=FormLibrary())
        eng.init(simulated_start=START)
        t0 = time.perf_counter()
        load(eng, args.instances, args.paused_now, args.pauses, args.events)
        if eng.db.is_postgres:
            with eng.db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        print(f"{scratch.kind}: loaded in {time.perf_counter() - t0:.0f} s")
        out = {"database": scratch.kind, **{k: getattr(args, k) for k in ("instances", "paused_now", "pauses",
                                                                          "events")}}
        with eng.db.engine.connect() as conn:
            assert before(conn) == suspended_instances(conn) and len(before(conn)) == args.paused_now
            for label, call in (("before", before), ("now", suspended_instances)):
                for _ in range(5):
                    call(conn)
                times = []
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    call(conn)
                    times.append((time.perf_counter() - t0) * 1000)
                out[label] = {"median_ms": round(statistics.median(times), 3),
                              "p95_ms": round(sorted(times)[int(0.95 * len(times)) - 1], 3)}
                print(f"  {label}: median {out[label]['median_ms']} ms, p95 {out[label]['p95_ms']} ms")
        print(json.dumps(out))
        eng.db.dispose()
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
