"""Moving running cases to a new version (engine/instance_migration.py): a dry run and a migration
of 10,000 open cases on SQLite and PostgreSQL (issue 8; goal: dry run < 30 s).

    .venv/bin/python -m bench.migration_bench                      # SQLite
    .venv/bin/python -m bench.migration_bench --pg postgresql://postgres@127.0.0.1:5432/test

Every case waits at a user task with two boundary timers (tests/diagrams/deadline.bpmn). Version
2 adds a task after it and shortens one timer, so the dry run has to compare timers and the move
keeps their due dates (keep_timers) — the usual shape of a change to a running operating model.
Cases are started through the engine (set-up, not measured); the dry run and the move are timed
after the engine's in-memory workflow cache is cleared, as after a restart. Results are printed
and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.engine_bench import START, Scratch, dumps
from bench.run import machine
from engine import instance_migration as im
from engine.registry import HandlerRegistry
from engine.replay import replay_case
from engine.schema import events, instances

ROOT = Path(__file__).resolve().parent.parent
V1 = (ROOT / "tests" / "diagrams" / "deadline.bpmn").read_bytes()
# version 2: a "Check the outcome" task after the reablement task, and the reminder at 4 weeks
V2 = (V1.replace(b'<bpmn:sequenceFlow id="f2" sourceRef="reablement" targetRef="done"/>',
                 b'<bpmn:sequenceFlow id="f2" sourceRef="reablement" targetRef="check"/>'
                 b'<bpmn:sequenceFlow id="f2b" sourceRef="check" targetRef="done"/>')
        .replace(b'<bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>',
                 b'<bpmn:userTask id="check" name="Check the outcome" camunda:formKey="outcome_check" '
                 b'camunda:candidateGroups="reablement"><bpmn:incoming>f2</bpmn:incoming>'
                 b'<bpmn:outgoing>f2b</bpmn:outgoing></bpmn:userTask>'
                 b'<bpmn:endEvent id="done"><bpmn:incoming>f2b</bpmn:incoming></bpmn:endEvent>')
        .replace(b"<bpmn:timeDuration>P35D</bpmn:timeDuration>", b"<bpmn:timeDuration>P28D</bpmn:timeDuration>"))
assert V2.count(b'id="check"') == 1 and b"P28D" in V2


def _registry() -> HandlerRegistry:
    reg = HandlerRegistry()

    @reg.register("notify")
    def notify(ctx: Any, message: str) -> dict[str, str]:
        return {"message": message}

    return reg


def migration_bench(kind: str, n: int, pg_url: str | None, batch: int) -> dict[str, Any]:
    from engine.forms import FormLibrary
    from engine.runtime import Engine

    db = Scratch(kind, pg_url)
    try:
        eng = Engine(db.url, registry=_registry(), forms=FormLibrary())
        eng.init(simulated_start=START)
        eng.deploy(files={"deadline.bpmn": V1})
        t = time.perf_counter()
        for _ in range(n):
            eng.start("deadline")
        setup_s = time.perf_counter() - t
        eng.deploy(files={"deadline.bpmn": V2})
        eng._live.clear()

        t = time.perf_counter()
        refused = im.dry_run(eng, "deadline", 1, 2)  # default: a changed waiting timer is refused
        dry_default_s = time.perf_counter() - t
        t = time.perf_counter()
        plan = im.dry_run(eng, "deadline", 1, 2, keep_timers=True)
        dry_s = time.perf_counter() - t
        t = time.perf_counter()
        impact = im.impact(eng, "deadline", 2)
        impact_s = time.perf_counter() - t

        t = time.perf_counter()
        result = im.migrate(eng, "deadline", 1, 2, actor="bench", reason="benchmark", keep_timers=True,
                            expected_versions=plan.expected_versions(), batch=batch)
        migrate_s = time.perf_counter() - t
        with eng.db.engine.connect() as conn:
            on_v2 = conn.execute(select(func.count()).select_from(instances)
                                 .where(instances.c.process_version_id == plan_version_id(conn))).scalar()
            migrated_events = conn.execute(select(func.count()).select_from(events)
                                           .where(events.c.type == "instance.migrated")).scalar()
        sample = result.moved[len(result.moved) // 2].case_id if result.moved else None
        t = time.perf_counter()
        replay_ok = replay_case(eng, sample).ok if sample is not None else None
        replay_s = time.perf_counter() - t
        eng.db.dispose()
        return {
            "database": kind, "cases": n, "batch": batch, "setup_s": round(setup_s, 1),
            "dry_run_s": round(dry_s, 2), "dry_run_refusing_changed_timers_s": round(dry_default_s, 2),
            "impact_s": round(impact_s, 2), "can_move": len(plan.movable),
            "refused_by_default": len(refused.cases) - len(refused.movable),
            "impact": impact["versions"],
            "migrate_s": round(migrate_s, 1), "moved": len(result.moved), "refused": len(result.refused),
            "ms_per_case_moved": round(1000 * migrate_s / max(1, len(result.moved)), 2),
            "instances_on_v2": on_v2, "instance_migrated_events": migrated_events,
            "replay_of_a_moved_case_ok": replay_ok, "replay_s": round(replay_s, 2),
        }
    finally:
        db.close()


def plan_version_id(conn: Any) -> int:
    from engine.schema import process_versions

    return conn.execute(select(process_versions.c.id).where(process_versions.c.process_id == "deadline",
                                                            process_versions.c.version == 2)).scalar_one()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="open cases to dry-run and move")
    p.add_argument("--batch", type=int, default=100, help="cases read per batch (each moves in its own transaction)")
    p.add_argument("--pg", help="PostgreSQL URL (default: SQLite only)")
    p.add_argument("--only", choices=["sqlite", "postgres"], help="run on one database only")
    args = p.parse_args()
    kinds = [k for k in ("sqlite", "postgres") if (args.only in (None, k)) and (k == "sqlite" or args.pg)]
    out: dict[str, Any] = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                           "command": "python -m bench.migration_bench " + " ".join(
                               f"--{k} {v}" for k, v in (("n", args.n), ("batch", args.batch), ("only", args.only))
                               if v) + (" --pg URL" if args.pg else ""),
                           "runs": []}
    for kind in kinds:
        out["runs"].append(migration_bench(kind, args.n, args.pg, args.batch))
        print(dumps(out["runs"][-1]), flush=True)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    path = results / f"migration-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{'-'.join(kinds)}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"saved {path.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("CAREPATH_HANDLERS", "")
    main()
