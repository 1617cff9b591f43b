"""Query plans of the inbox's follow-up and candidate-user reads on PostgreSQL (issue 13, item 4).

Loads the inbox benchmark's data at a fifth of its size (bench/inbox_bench.py: 20,000 open tasks), gives one task
in 20 a follow-up date and one in 100 two candidate users, then prints the plan of the inbox queries that read
them: "follow-up due" (`due=follow_up`), the follow-up order (`sort=follow_up`), "My tasks" (assigned or offered
by name) and the team tab (whose arms include the tasks offered by name). Checks that each reads `tasks` through
an index. Run: `.venv/bin/python -m bench.inbox_follow_up_plan --pg postgresql://postgres@127.0.0.1:5432/test`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import text

from api.app import create_app
from api.demo_users import create_demo_users, demo_password, demo_username
from engine.forms import FormLibrary
from engine.runtime import Engine

from . import inbox_bench as ib
from .engine_bench import Scratch

SCALE = 5  # a fifth of the inbox benchmark


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", required=True)
    args = ap.parse_args(argv)
    ib.N_CASES, ib.N_TASKS, ib.N_EVENTS = ib.N_CASES // SCALE, ib.N_TASKS // SCALE, ib.N_CASES // SCALE * 2
    ib.TEAM_SPLIT = [(team, n // SCALE) for team, n in ib.TEAM_SPLIT]
    db = Scratch("postgres", args.pg)
    eng = Engine(db.url, registry=ib._registry(), forms=FormLibrary({f: {"type": "object"} for f in (
        "reablement_outcome", "overrun", "contact", "screening", "decision")}))
    out: dict[str, Any] = {}
    try:
        eng.init()
        eng.deploy([ib.DIAGRAMS / "three_tasks.bpmn", ib.DIAGRAMS / "deadline.bpmn"])
        tpl = ib._template(eng)
        now = eng.now()
        ib.load(args.pg, db.schema, tpl, now)
        sw, rc = demo_username("social_worker"), demo_username("reablement_coordinator")
        with eng.db.engine.begin() as conn:
            conn.execute(text("UPDATE tasks SET follow_up_at = due_at - interval '3 days' "
                              "WHERE due_at IS NOT NULL AND mod(instance_id, 20) = 3"))
            conn.execute(text("UPDATE tasks SET candidate_users = :cu WHERE mod(instance_id, 100) = 7"),
                         {"cu": json.dumps([sw, rc])})
            conn.execute(text("ANALYZE tasks"))
            out["data"] = dict(conn.execute(text(
                "SELECT count(*) AS tasks, count(follow_up_at) AS with_follow_up, "
                "count(candidate_users) AS offered_by_name FROM tasks")).one()._mapping)
        create_demo_users(eng)
        app = create_app(eng, run_timers=False)
        client = TestClient(app)
        client.post("/api/session", json={"username": sw, "password": demo_password("social_worker")})
        out["plans"] = {}
        for path in ("/api/tasks?due=follow_up", "/api/tasks?sort=follow_up", "/api/tasks?scope=mine",
                     "/api/tasks?scope=team"):
            captured: list[tuple[str, Any]] = []

            def _capture(conn, cursor, statement, parameters, context, executemany,  # noqa: ANN001
                         captured: list[tuple[str, Any]] = captured) -> None:
                if "FROM tasks" in statement and "LIMIT" in statement and not captured:
                    captured.append((statement, parameters))

            sa_event.listen(eng.db.engine, "before_cursor_execute", _capture)
            r = client.get(path)
            sa_event.remove(eng.db.engine, "before_cursor_execute", _capture)
            r.raise_for_status()
            plan = ib.explain(eng, *captured[0])
            out["plans"][path] = {"rows": len(r.json()["tasks"]), "execution_ms": plan["execution_ms"],
                                  "tasks_index_nodes": plan["tasks_index_nodes"],
                                  "seq_scan_on_tasks": "Seq Scan on tasks" in plan["nodes"]}
            print(path, json.dumps(out["plans"][path]), flush=True)
            print("\n".join("    " + line for line in plan["plan_text"]), flush=True)
    finally:
        eng.db.dispose()
        db.close()
    print(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
