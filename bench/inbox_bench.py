"""Caseworkers' inbox with 100,000 open tasks and 1,000,000 history events on PostgreSQL (issue 4).

Run with `.venv/bin/python -m bench.inbox_bench --pg postgresql://postgres@127.0.0.1:5432/test`;
see docs/performance.md. The data is loaded in bulk with INSERT ... SELECT generate_series (not by
running the engine); the rows copy the shape of one real instance, task and event history that
the engine wrote first. A real uvicorn server (as in tests/test_pages_inbox.py) then serves the
inbox page and the task API, measured sequentially with an HTTP client.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from api.app import create_app
from api.demo_users import create_demo_users, demo_password, demo_username
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import events, instances, tasks

from .engine_bench import Scratch

try:  # the project's dev dependency is httpx2; plain httpx has the same client API
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
DIAGRAMS = ROOT / "tests" / "diagrams"
RESULTS = Path(__file__).resolve().parent / "results"

N_CASES = 20_000
N_TASKS = 100_000  # one open task per waiting instance
N_EVENTS = 1_000_000
# Open tasks per team: a realistic skew (reablement and social work carry most of the work).
TEAM_SPLIT = [("social_work", 25_000), ("reablement", 20_000), ("front_door", 15_000), ("hospital_team", 12_000),
              ("safeguarding", 10_000), ("finance", 10_000), ("team_manager", 8_000)]
TASK_NAMES = {"social_work": ("care_act_assessment", "Complete Care Act assessment", "care_assessment"),
              "reablement": ("reablement", "Deliver reablement", "reablement_outcome"),
              "front_door": ("triage", "Triage the contact", "triage"),
              "hospital_team": ("discharge_plan", "Agree discharge plan", "discharge_plan"),
              "safeguarding": ("s42_enquiry", "Section 42 enquiry", "s42_enquiry"),
              "finance": ("financial_assessment", "Financial assessment", "financial_assessment"),
              "team_manager": ("review_overrun", "Review overrun", "overrun")}
EVENT_TYPES = ["task.ready", "task.completed", "task.claimed", "instance.started", "data.changed",
               "task.released", "timer.fired", "instance.waiting"]


# ----------------------------------------------------------------------------- data
def _registry() -> HandlerRegistry:
    reg = HandlerRegistry()

    @reg.register("notify")
    def notify(ctx, message):  # noqa: ANN001, ANN202 - deadline.bpmn's reminder; never fires here
        return {"sent_at": ctx.now.isoformat(), "message": message}

    return reg


def _template(eng: Engine) -> dict[str, Any]:
    """One real instance, task and event history written by the engine, to copy in bulk."""
    res = eng.start("deadline", title="Mrs Edith Clarke", data={
        "person": {"name": "Edith Clarke", "born": "1938-04-02", "nhs_number": "943 476 5919",
                   "address": "14 Mill Lane, Ashford, TN24 8AB", "phone": "01233 555 014"},
        "referral": {"source": "hospital", "reason": "Fall at home, discharged from ward 7 with reablement",
                     "received_on": "2031-01-06"}})
    task = next(t for t in res.ready_tasks if t["element_id"] == "reablement")
    eng.claim(task["id"], "template-user")
    eng.release(task["id"], "template-user")
    with eng.db.engine.connect() as conn:
        inst = conn.execute(select(instances).where(instances.c.id == res.instance_id)).one()._mapping
        trow = conn.execute(select(tasks).where(tasks.c.id == task["id"])).one()._mapping
        evs = [dict(r._mapping) for r in conn.execute(select(events).order_by(events.c.id))]
    return {"state": inst["state"], "state_format": inst["state_format"], "process_id": inst["process_id"],
            "process_version_id": inst["process_version_id"], "task": dict(trow), "events": evs}


LOAD_SQL = {
    # cases: person details ~300 bytes of JSON, as the engine writes them
    "cases": """
        INSERT INTO cases (reference, title, data, created_at, updated_at)
        SELECT 'C-' || lpad(g::text, 7, '0'),
               (ARRAY['Mrs','Mr','Ms','Miss'])[1 + mod(g, 4)] || ' ' ||
               (ARRAY['Edith','Arthur','Margaret','Harold','Joan','Stanley','Iris','Dennis'])[1 + mod(g, 8)] || ' ' ||
               (ARRAY['Clarke','Patel','Jones','Okafor','Smith','Nowak','Hughes','Begum','Walsh'])[1 + mod(g, 9)],
               json_build_object('person', json_build_object('name', 'Person ' || g, 'born',
                    to_char(date '1930-01-01' + mod(g * 7, 20000), 'YYYY-MM-DD'), 'nhs_number',
                    lpad(mod(g * 7919, 1000000000)::text, 10, '9'), 'address', g || ' Mill Lane, Ashford, TN24 8AB',
                    'phone', '01233 ' || lpad(mod(g, 1000000)::text, 6, '0')),
                    'referral', json_build_object('source', 'hospital', 'reason',
                    'Fall at home, discharged from ward 7 with reablement', 'received_on', '2031-01-06'))::text,
               %(now)s - mod(g, 700) * interval '1 day', %(now)s - mod(g, 30) * interval '1 day'
        FROM generate_series(1, %(n_cases)s) g""",
    # instances: one waiting instance per open task, each with a copy of a real saved state
    "instances": """
        INSERT INTO instances (case_id, process_version_id, process_id, status, version, state_format, state,
                               started_at, updated_at)
        SELECT 1 + mod(g - 1, %(n_cases)s), %(pv)s, %(process_id)s, 'waiting', 3, %(state_format)s, %(state)s,
               %(now)s - mod(g, 90) * interval '1 day', %(now)s - mod(g, 10) * interval '1 day'
        FROM generate_series(1, %(n_tasks)s) g""",
    # tasks: team by a skewed split; 1 in 10 without a due date; due dates over now +- 60 days;
    # a third assigned (the demo co-ordinator and social worker get a share of their own team's)
    "tasks": """
        INSERT INTO tasks (id, instance_id, case_id, process_id, element_id, name, form, team,
                           candidate_groups, lane, assignee, owner, created_at, due_at, draft, revision)
        SELECT gen_random_uuid()::text, g, 1 + mod(g - 1, %(n_cases)s), %(process_id)s,
               split_part(nm, '|', 1), split_part(nm, '|', 2), split_part(nm, '|', 3), tm,
               '["' || tm || '"]', NULL,
               CASE WHEN mod(g, 3) <> 0 THEN NULL
                    WHEN tm = 'reablement' AND mod(g, 9) = 0 THEN 'reablement-coordinator'
                    WHEN tm = 'social_work' AND mod(g, 9) = 0 THEN 'social-worker'
                    ELSE 'worker-' || mod(g, 300) END,
               NULL,
               %(now)s - mod(g * 37, 90 * 24) * interval '1 hour',
               CASE WHEN mod(g, 10) = 0 THEN NULL
                    ELSE %(now)s + (mod(g * 7919, 120 * 24) - 60 * 24) * interval '1 hour' END,
               CASE WHEN mod(g, 25) = 0 THEN '{"notes":"draft in progress"}' END,
               mod(g, 3)
        FROM (SELECT g, TEAM_CASE AS tm FROM generate_series(1, %(n_tasks)s) g) s,
             LATERAL (SELECT CASE tm NAME_CASE END AS nm) n""",
    # events: 50 per case, canonical-JSON data of 200-400 bytes, one hash chain per case
    "events": """
        INSERT INTO events (chain, seq, case_id, instance_id, type, at, actor, data, step, prev_hash, hash)
        SELECT 'case:' || cid, seq, cid, 1 + mod(g - 1, %(n_tasks)s),
               (%(types)s::text[])[1 + mod(g, 8)],
               to_char((%(now)s::timestamptz - mod(g, 63072000) * interval '1 second') AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               CASE WHEN mod(g, 4) = 0 THEN 'engine' ELSE 'worker-' || mod(g, 300) END,
               '{"element_id":"care_act_assessment","form":"care_assessment","instance_id":' || g ||
               ',"name":"Complete Care Act assessment","process_id":"deadline","task_id":"' ||
               md5(g::text) || '","team":"social_work","values":{"notes":"' ||
               repeat('Visited and discussed support at home. ', 1 + mod(g, 5)) || '"}}',
               seq, md5((g - 1)::text) || md5((g + 7)::text), md5(g::text) || md5((g + 8)::text)
        FROM (SELECT g, 1 + mod(g - 1, %(n_cases)s) AS cid, 1 + (g - 1) / %(n_cases)s AS seq
              FROM generate_series(1, %(n_events)s) g) s""",
    "chains": """
        INSERT INTO chains (chain, seq, hash)
        SELECT 'case:' || g, %(per_case)s, md5(g::text) || md5(g::text) FROM generate_series(1, %(n_cases)s) g""",
}


def _team_case_sql(splits: list[tuple[str, int]]) -> str:
    parts, lo = [], 0
    for team, n in splits:
        lo += n
        parts.append(f"WHEN g <= {lo} THEN '{team}'")
    return "CASE " + " ".join(parts) + " END"


def load(url_pg: str, schema: str, tpl: dict[str, Any], now: datetime) -> dict[str, float]:
    import psycopg

    timings: dict[str, float] = {}
    names = " ".join(f"WHEN '{t}' THEN '{v[0]}|{v[1]}|{v[2]}'" for t, v in TASK_NAMES.items())
    params = {"now": now, "n_cases": N_CASES, "n_tasks": N_TASKS, "n_events": N_EVENTS,
              "per_case": N_EVENTS // N_CASES, "types": EVENT_TYPES, "pv": tpl["process_version_id"],
              "process_id": tpl["process_id"], "state_format": tpl["state_format"], "state": tpl["state"]}
    with psycopg.connect(url_pg, autocommit=True) as c:
        c.execute(f'SET search_path TO "{schema}"')
        c.execute("TRUNCATE cases, instances, tasks, events, chains, timers, incidents, documents "
                  "RESTART IDENTITY CASCADE")
        for table, sql in LOAD_SQL.items():
            sql = sql.replace("TEAM_CASE", _team_case_sql(TEAM_SPLIT)).replace("NAME_CASE", names)
            t0 = time.perf_counter()
            c.execute(sql, {k: v for k, v in params.items() if f"%({k})s" in sql})
            timings[f"{table}_s"] = time.perf_counter() - t0
            print(f"  {table}: {timings[f'{table}_s']:.1f} s", flush=True)
        t0 = time.perf_counter()
        c.execute("ANALYZE")
        timings["analyze_s"] = time.perf_counter() - t0
    return {k: round(v, 2) for k, v in timings.items()}


# ----------------------------------------------------------------------------- HTTP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a background thread on a free loopback port (as tests/test_pages_inbox.py)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = _free_port()
        self.srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                 lifespan="on"))
        self.thread = threading.Thread(target=self.srv.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.srv.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: Any) -> None:
        self.srv.should_exit = True
        self.thread.join(timeout=10)


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _rows(resp: Any) -> int:
    if resp.headers.get("content-type", "").startswith("application/json"):
        body = resp.json()
        return len(body["tasks"] if "tasks" in body else body["results"])
    body = resp.text.split('<tbody class="govuk-table__body">', 1)
    return body[1].split("</tbody>", 1)[0].count('<tr class="govuk-table__row">') if len(body) == 2 else 0


def measure(client: Any, path: str, warmup: int, n: int) -> dict[str, Any]:
    for _ in range(warmup):
        r = client.get(path)
        r.raise_for_status()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {r.status_code}")
    return {"path": path, "requests": n, "status": r.status_code, "rows": _rows(r), "bytes": len(r.content),
            "p50_ms": round(_pct(times, 0.50), 1), "p95_ms": round(_pct(times, 0.95), 1),
            "p99_ms": round(_pct(times, 0.99), 1), "max_ms": round(max(times), 1),
            "mean_ms": round(statistics.mean(times), 1)}


def sign_in(base: str, role: str) -> Any:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    r = client.post("/api/session", json={"username": demo_username(role), "password": demo_password(role)})
    r.raise_for_status()
    return client


# ----------------------------------------------------------------------------- EXPLAIN
def _plan_facts(plan: dict[str, Any]) -> dict[str, Any]:
    nodes: list[str] = []
    index_nodes: list[str] = []

    def walk(n: dict[str, Any]) -> None:
        label = n["Node Type"] + (f" on {n['Relation Name']}" if "Relation Name" in n else "") + \
            (f" using {n['Index Name']}" if "Index Name" in n else "")
        nodes.append(label)
        if "Index" in n["Node Type"] and n.get("Relation Name") == "tasks":
            index_nodes.append(label)
        for child in n.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return {"execution_ms": plan.get("Execution Time"), "planning_ms": plan.get("Planning Time"),
            "nodes": nodes, "tasks_index_used": bool(index_nodes), "tasks_index_nodes": index_nodes}


def explain(eng: Engine, sql: str, params: Any) -> dict[str, Any]:
    with eng.db.engine.connect() as conn:
        conn.exec_driver_sql(sql, params).all()  # warm
        raw = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).scalar()
        text_plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).scalars().all()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    return {"sql": sql, "params": {k: str(v) for k, v in (params or {}).items()} if isinstance(params, dict)
            else [str(p) for p in params or []], **_plan_facts(plan), "plan_text": text_plan}


# ----------------------------------------------------------------------------- main
def machine(eng: Engine) -> dict[str, Any]:
    with eng.db.engine.connect() as conn:
        pg = conn.execute(text("SELECT version()")).scalar()
        settings = {k: conn.execute(text(f"SHOW {k}")).scalar() for k in
                    ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit")}
        sizes = {t: conn.execute(text(f"SELECT pg_size_pretty(pg_total_relation_size('{t}'))")).scalar()
                 for t in ("cases", "instances", "tasks", "events")}
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpus": os.cpu_count(), "memory_gib": mem, "postgres": pg, "postgres_settings": settings,
            "table_sizes": sizes}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", required=True, help="PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--n", type=int, default=300, help="measured requests per endpoint")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the scratch schema")
    args = ap.parse_args(argv)

    started = datetime.now(timezone.utc)
    db = Scratch("postgres", args.pg)
    eng = Engine(db.url, registry=_registry(), forms=FormLibrary({f: {"type": "object"} for f in (
        "reablement_outcome", "overrun", "contact", "screening", "decision")}))
    out: dict[str, Any] = {"benchmark": "inbox", "started_at": started.isoformat(), "schema": db.schema,
                           "counts": {"cases": N_CASES, "open_tasks": N_TASKS, "events": N_EVENTS},
                           "team_split": dict(TEAM_SPLIT)}
    try:
        eng.init()  # the real clock, as in production
        eng.deploy([DIAGRAMS / "three_tasks.bpmn", DIAGRAMS / "deadline.bpmn"])
        tpl = _template(eng)
        out["template"] = {"state_bytes": len(tpl["state"] or ""), "events_per_instance": len(tpl["events"]),
                           "event_data_bytes": [len(e["data"]) for e in tpl["events"]],
                           "task_row": {k: str(v) for k, v in tpl["task"].items()}}
        now = eng.now()
        t0 = time.perf_counter()
        out["load"] = load(args.pg, db.schema, tpl, now)
        out["load"]["total_s"] = round(time.perf_counter() - t0, 1)
        print("loaded", out["load"], flush=True)

        create_demo_users(eng)
        app = create_app(eng, run_timers=False)
        with eng.db.engine.connect() as conn:
            out["data"] = {
                "open_tasks_by_team": dict(conn.execute(text(
                    "SELECT team, count(*) FROM tasks GROUP BY team ORDER BY 2 DESC")).all()),
                "assigned": conn.execute(text("SELECT count(*) FROM tasks WHERE assignee IS NOT NULL")).scalar(),
                "mine": dict(conn.execute(text("SELECT assignee, count(*) FROM tasks WHERE assignee IN "
                                               "('reablement-coordinator','social-worker') GROUP BY 1")).all()),
                "no_due_date": conn.execute(text("SELECT count(*) FROM tasks WHERE due_at IS NULL")).scalar(),
                "event_data_bytes": [int(x) for x in conn.execute(text(
                    "SELECT min(length(data)), avg(length(data))::int, max(length(data)) FROM events")).one()],
                "instance_state_bytes": conn.execute(text("SELECT avg(length(state))::int FROM instances")).scalar(),
            }

        captured: list[tuple[str, Any]] = []

        def _capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
            if "FROM tasks JOIN cases" in statement and not captured:
                captured.append((statement, parameters))

        endpoints = ["/tasks", "/tasks?view=mine", "/api/tasks?scope=team", "/api/tasks?scope=team&offset=2000",
                     "/tasks?due=overdue&sort=person", "/tasks?view=delegated",
                     "/api/tasks?scope=team&person=smith&task=reablement",
                     # front door search over all 20,000 cases' person details (api/intake.py):
                     # an NHS number; a name every case shares
                     "/people?q=9997760055", "/api/people?q=person"]
        out["results"] = {}
        with Server(app) as base:
            for role in ("reablement_coordinator", "social_worker"):
                client = sign_in(base, role)
                if role == "reablement_coordinator":
                    sa_event.listen(eng.db.engine, "before_cursor_execute", _capture)
                    client.get("/api/tasks?scope=team").raise_for_status()
                    sa_event.remove(eng.db.engine, "before_cursor_execute", _capture)
                out["results"][role] = []
                for path in endpoints:
                    r = measure(client, path, args.warmup, args.n)
                    print(role, r, flush=True)
                    out["results"][role].append(r)
                client.close()
        sql, params = captured[0]
        out["explain_team_api"] = explain(eng, sql, params)
        # the page's own query is the same with LIMIT 21 OFFSET 0
        if isinstance(params, dict):
            page_params = dict(params)
            for k in page_params:
                if k.startswith("param_") and page_params[k] == 50:
                    page_params[k] = 21
            out["explain_team_page"] = explain(eng, sql, page_params)
        print("explain", {k: v for k, v in out["explain_team_api"].items() if k not in ("plan_text", "sql")},
              flush=True)
        out["machine"] = machine(eng)
    finally:
        eng.db.dispose()
        if not args.keep:
            db.close()
    out["finished_at"] = datetime.now(timezone.utc).isoformat()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"inbox-{started:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print("wrote", path)
    return out


if __name__ == "__main__":
    main()
