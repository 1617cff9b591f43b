"""Engine benchmarks: throughput on a 3-user-task process, 10,000 due timers, storage over
10 years of reviews. Run with `make bench` (or `python -m bench.run`); see docs/performance.md.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import cases, events, instances, tasks, timers

HERE = Path(__file__).parent
DIAGRAMS = HERE / "diagrams"
START = datetime(2031, 1, 6, 9, 0, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- databases
class Scratch:
    """A throwaway database: a SQLite file, or a fresh schema in PostgreSQL."""

    def __init__(self, kind: str, pg_url: str | None) -> None:
        self.kind = kind
        self._dir = tempfile.TemporaryDirectory(prefix="carepath-bench-")
        self.schema = None
        if kind == "sqlite":
            self.url = f"sqlite:///{self._dir.name}/bench.db"
        else:
            import psycopg

            assert pg_url, "PostgreSQL benchmarks need --pg URL"
            self.schema = f"bench_{uuid.uuid4().hex[:10]}"
            self._pg = pg_url
            with psycopg.connect(pg_url, autocommit=True) as c:
                c.execute(f'CREATE SCHEMA "{self.schema}"')
            base = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
            self.url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{self.schema}"

    def close(self) -> None:
        if self.schema:
            import psycopg

            with psycopg.connect(self._pg, autocommit=True) as c:
                c.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        self._dir.cleanup()


def _engine(url: str, registry: HandlerRegistry | None = None) -> Engine:
    return Engine(url, registry=registry or HandlerRegistry(), forms=FormLibrary())


class _CommitStamps(Engine):
    """Records when each timer batch committed and how many instances it moved: a timer has fired
    when its transaction commits, so that is when its lag ends."""

    def __init__(self, *a: Any, stamps: list[float], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._stamps = stamps

    def _fire_batch(self, batch: int, *a: Any, **kw: Any) -> tuple[list[int], int]:
        selected, moved = super()._fire_batch(batch, *a, **kw)
        self._stamps.extend([time.perf_counter()] * moved)
        return selected, moved


# ----------------------------------------------------------------------------- (a)-(d) throughput
def _spiff_spec():
    from SpiffWorkflow.camunda.parser import CamundaParser

    parser = CamundaParser()
    parser.add_bpmn_file(str(DIAGRAMS / "three_tasks.bpmn"))
    return parser.get_spec("three_tasks")


def _spiff_run(spec, n: int, roundtrip: bool) -> float:
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG
    from SpiffWorkflow.util.task import TaskState

    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        wf = BpmnWorkflow(spec)
        wf.do_engine_steps()
        for _ in range(3):
            if roundtrip:  # what a durable engine must at least do at each wait state
                wf = serializer.deserialize_json(serializer.serialize_json(wf))
            task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
            task.data.update({"step": i})
            task.run()
            wf.do_engine_steps()
        if roundtrip:
            serializer.deserialize_json(serializer.serialize_json(wf))
        assert wf.completed
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def _carepath_run(url: str, n: int) -> float:
    eng = _engine(url)
    eng.init()  # the real clock, as in production
    eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
    eng.start("three_tasks")  # warm the spec cache and the connection pool
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        res = eng.start("three_tasks", data={"n": i})
        for _ in range(3):
            res = eng.complete_task(res.ready_tasks[0]["id"], {"step": i}, actor="bench")
        assert res.status == "completed"
    rate = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
    eng.db.dispose()
    return rate


def throughput(n: int, pg_url: str | None, repeats: int = 3) -> dict[str, Any]:
    """Instances per second, wall clock and this process's CPU time; the four variants interleaved so
    that drift in a shared machine's speed hits them alike. c/b is also given run by run."""
    spec = _spiff_spec()
    out: dict[str, Any] = {"instances_per_run": n, "repeats": repeats}
    runs: dict[str, list[tuple[float, float]]] = {"a_spiff_memory": [], "b_spiff_json_roundtrip": [],
                                                  "c_carepath_sqlite": [], "d_carepath_postgres": []}
    for _ in range(repeats):
        runs["a_spiff_memory"].append(_spiff_run(spec, n, roundtrip=False))
        runs["b_spiff_json_roundtrip"].append(_spiff_run(spec, n, roundtrip=True))
        for kind, key in (("sqlite", "c_carepath_sqlite"), ("postgres", "d_carepath_postgres")):
            if kind == "postgres" and not pg_url:
                continue
            db = Scratch(kind, pg_url)
            try:
                runs[key].append(_carepath_run(db.url, n))
            finally:
                db.close()
    for key, values in runs.items():
        if values:
            out[key] = {"median_per_s": round(statistics.median(v[0] for v in values), 1),
                        "runs_per_s": [round(v[0], 1) for v in values],
                        "median_per_cpu_s": round(statistics.median(v[1] for v in values), 1)}
    b, c = runs["b_spiff_json_roundtrip"], runs["c_carepath_sqlite"]
    out["c_vs_b_by_run"] = [round(cv[0] / bv[0], 3) for bv, cv in zip(b, c, strict=True)]
    out["c_vs_b"] = round(statistics.median(out["c_vs_b_by_run"]), 3)
    out["c_vs_b_cpu"] = round(out["c_carepath_sqlite"]["median_per_cpu_s"]
                              / out["b_spiff_json_roundtrip"]["median_per_cpu_s"], 3)
    if runs["d_carepath_postgres"]:
        out["d_vs_b"] = round(out["d_carepath_postgres"]["median_per_s"]
                              / out["b_spiff_json_roundtrip"]["median_per_s"], 3)
    return out


# ----------------------------------------------------------------------------- 10,000 due timers
def _timer_registry() -> HandlerRegistry:
    reg = HandlerRegistry()

    @reg.register("stamp")
    def stamp(ctx):  # type: ignore[no-untyped-def]
        return {"at": ctx.now.isoformat()}

    return reg


def _timer_engine(url: str, stamps: list[float]) -> Engine:
    return _CommitStamps(url, registry=_timer_registry(), forms=FormLibrary(), stamps=stamps)


def _bulk_start(eng: Engine, n: int) -> None:
    # starting 10,000 cases one by one is part of the set-up, not of what is measured
    for _ in range(n):
        eng.start("due_timer")


def timers_bench(kind: str, n: int, pg_url: str | None, workers: int) -> dict[str, Any]:
    db = Scratch(kind, pg_url)
    try:
        stamps: list[float] = []
        eng = _timer_engine(db.url, stamps)
        eng.init(simulated_start=START)
        eng.deploy([DIAGRAMS / "due_timer.bpmn"])
        t_setup = time.perf_counter()
        _bulk_start(eng, n)
        setup_s = time.perf_counter() - t_setup
        with eng.db.transaction() as conn:  # every timer is now due at the same instant
            eng._set_clock(conn, START + timedelta(days=1, seconds=1))
        eng._live.clear()  # as after a restart: every workflow is read back from the database
        if workers <= 1:
            t0 = time.perf_counter()
            moved = eng.fire_due_timers(batch=100)
            t_end = time.perf_counter()
        else:
            moved, t0 = _fire_in_processes(db.url, workers, stamps)
            t_end = time.perf_counter()
        elapsed = t_end - t0
        with eng.db.engine.connect() as conn:
            fired = conn.execute(select(func.count()).select_from(events)
                                 .where(events.c.type == "timer.fired")).scalar()
            per_instance = conn.execute(text(
                "SELECT MAX(c) FROM (SELECT instance_id, COUNT(*) AS c FROM events "
                "WHERE type = 'timer.fired' GROUP BY instance_id) s")).scalar()
            left = conn.execute(select(func.count()).select_from(timers)).scalar()
            handler_calls = conn.execute(select(func.count()).select_from(events)
                                         .where(events.c.type == "handler.called")).scalar()
        lags = sorted(s - t0 for s in stamps) if stamps else []
        eng.db.dispose()
        return {
            "database": kind, "timers": n, "worker_processes": workers, "setup_s": round(setup_s, 1),
            "fire_all_s": round(elapsed, 2), "per_s": round(n / elapsed, 1), "instances_moved": moved,
            "timer_fired_events": fired, "max_fires_per_timer": per_instance, "handler_calls": handler_calls,
            "duplicates": fired - n, "timers_left": left,
            "p99_lag_s": round(lags[int(len(lags) * 0.99) - 1], 2) if lags else None,
            "p50_lag_s": round(lags[len(lags) // 2], 2) if lags else None,
        }
    finally:
        db.close()


def _fire_worker(url: str, ready, go, q) -> None:  # type: ignore[no-untyped-def]
    stamps: list[float] = []
    eng = _timer_engine(url, stamps)
    eng.now()  # connect before the start signal: a running worker is already connected
    ready.put(True)
    go.wait()
    q.put((eng.fire_due_timers(batch=100), stamps))


def _fire_in_processes(url: str, workers: int, stamps: list[float]) -> tuple[int, float]:
    """Fire with several worker processes started beforehand; returns (moved, t0 of the start signal)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, q, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_fire_worker, args=(url, ready, go, q)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    t0 = time.perf_counter()  # CLOCK_MONOTONIC: comparable with the workers' stamps
    go.set()
    total = 0
    for _ in procs:
        moved, got = q.get()
        total += moved
        stamps.extend(got)
    for p in procs:
        p.join()
    return total, t0


# ----------------------------------------------------------------------------- storage over 10 years
def _case_bytes(conn, case_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    ev = conn.execute(select(func.count(), func.coalesce(func.sum(func.length(events.c.data)), 0))
                      .where(events.c.case_id == case_id)).one()
    inst = conn.execute(select(func.count(), func.coalesce(func.sum(func.length(instances.c.state)), 0),
                               func.coalesce(func.sum(func.length(instances.c.data)), 0))
                        .where(instances.c.case_id == case_id)).one()
    task_rows = conn.execute(select(func.count()).select_from(tasks).where(tasks.c.case_id == case_id)).scalar()
    case_row = conn.execute(select(func.length(cases.c.data)).where(cases.c.id == case_id)).scalar()
    # an event row also holds hashes, times and ids: about 260 bytes beside its data
    return {"events": ev[0], "event_bytes": int(ev[1]) + 260 * ev[0], "instances": inst[0],
            "live_state_bytes": int(inst[1]), "final_data_bytes": int(inst[2]), "task_rows": task_rows,
            "case_bytes": int(case_row or 0)}


def storage_bench(kind: str, years: int, pg_url: str | None) -> dict[str, Any]:
    db = Scratch(kind, pg_url)
    try:
        eng = _engine(db.url)
        eng.init(simulated_start=START)
        eng.deploy([DIAGRAMS / "annual_review.bpmn"])
        res = eng.start("annual_review", data={"amount": 12000})
        rows = []
        for year in range(1, years + 1):
            eng.advance_clock(timedelta(days=366))
            [task] = eng.list_tasks(case_id=res.case_id)
            eng.complete_task(task["id"], {"needs_changed": False, "notes": "plan still meets needs " * 4},
                              actor="sw")
            with eng.db.engine.connect() as conn:
                b = _case_bytes(conn, res.case_id)
            b["year"] = year
            b["total_bytes"] = b["event_bytes"] + b["live_state_bytes"] + b["final_data_bytes"] + b["case_bytes"]
            rows.append(b)
        growth = [rows[i]["total_bytes"] - rows[i - 1]["total_bytes"] for i in range(1, len(rows))]
        event_growth = [rows[i]["event_bytes"] - rows[i - 1]["event_bytes"] for i in range(1, len(rows))]
        eng.db.dispose()
        return {"database": kind, "years": years, "per_year": rows,
                "growth_per_review_bytes": growth, "event_growth_per_review_bytes": event_growth,
                "live_state_bytes_year1": rows[0]["live_state_bytes"],
                "live_state_bytes_last": rows[-1]["live_state_bytes"]}
    finally:
        db.close()


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
