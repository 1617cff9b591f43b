"""HTTP throughput against the engine driven directly (issue 14 item 4), sequential client, one interleaved run.

One instance = the three-task diagram (`bench/diagrams/three_tasks.bpmn`) started on a case and its three
tasks completed, each with form data:

* **engine**: `Engine.start(case_id=…)` + three `Engine.complete_task` in this process;
* **http**: `POST /api/cases/{id}/processes/three_tasks` + three `POST /api/tasks/{id}/complete` sent one
  at a time with httpx over loopback to a server in its own process, signed in as a team manager (the
  session cookie and CSRF header on every request, as a browser sends them). The server is built as
  `carepath serve` builds it (`carepath.server.uvicorn_config`, timers off so nothing else runs).
  `--servers` chooses the uvicorn implementations: `fast` (uvloop + httptools, as `carepath serve` runs
  with `uvicorn[standard]` installed) and/or `plain` (asyncio + h11, what it ran before), and `base`: the
  fast server run from another checkout (`--base DIR`, e.g. a `git worktree` of an earlier commit), for a
  before/after comparison within one interleaved run on the same database.

Each round runs every variant once on the same database (engine, then each server), and the ratio
http/engine is taken round by round; the report gives each round (on stderr), the median and quartiles
of the ratios, the latency of each request (p50/p95, ms; for the engine, one start or completion call)
and the load average. Per CPU second: the engine's instances per CPU second of this process against
HTTP instances per CPU second of the server process (read from /proc; the client's own work is not
counted) — the figure a busy shared machine disturbs least. A warm-up of 20 instances per variant comes first.

    python -m bench.http_bench --db sqlite --n 10 --rounds 30
    python -m bench.http_bench --db postgres --pg-url postgresql://postgres@127.0.0.1:5432/test --n 10 --rounds 30

`--servers floor`: FastAPI on the same uvicorn (uvloop + httptools) with the same four routes answering from memory
(no session, database or engine: `floor_app`). Its CPU per instance is what the framework and server cost alone, so
`ceiling/engine_by_cpu` = engine / (engine + floor), by CPU, is the best ratio any FastAPI server can reach that runs
the engine's step in its process.

`CAREPATH_BENCH_SPLIT=FILE`: each server writes to FILE.<kind> the CPU time (its thread's) of each call of
`Engine.start`, `Engine.complete_task` and the session check it made (`session_on_loop`, on the event loop, and
`session_user`, in a worker thread), and the report gives the same for
the engine's calls made directly (`direct_call_cpu_us`): how much of a request is the engine's step.

`CAREPATH_BENCH_PROFILE=FILE` profiles the (first) server with yappi (all threads; CPU time, or
CAREPATH_BENCH_PROFILE_CLOCK=wall) and writes
the top functions to FILE when it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import create_engine, text

from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine

try:  # the project's dev dependency is httpx2; plain httpx has the same client API
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
DIAGRAM = ROOT / "bench" / "diagrams" / "three_tasks.bpmn"
USER, PASSWORD = "bench-manager", "bench-manager-password-1"
WARM = 20


def _engine(url: str) -> Engine:
    return Engine(url, registry=HandlerRegistry(), forms=FormLibrary())  # as bench/engine_bench.py


# ---------------------------------------------------------------------- the server process
class FloorBody(BaseModel):
    """A start's or a completion's JSON body, as the floor server reads it."""

    data: dict[str, Any] = {}


def floor_app() -> Any:
    """FastAPI with the benchmark's four routes and nothing behind them: no session, no database, no engine; each
    route reads its JSON body into a model and answers with a body shaped as carepath's (the start a task, each
    completion the next until the third). What a request costs the framework and the server alone."""
    from fastapi import FastAPI

    app = FastAPI()
    left: dict[str, int] = {}

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/session")
    def session(body: dict[str, Any]) -> dict[str, str]:
        return {"csrf_token": uuid.uuid4().hex}

    def task(n: int) -> dict[str, Any]:
        tid = str(uuid.uuid4())
        left[tid] = n
        return {"id": tid, "element_id": "task", "name": "Task", "form": None, "team": "front_door"}

    @app.post("/api/cases/{case_id}/processes/{process_id}", status_code=201)
    def start(case_id: int, process_id: str, body: FloorBody) -> dict[str, Any]:
        return {"instance_id": 1, "case_id": case_id, "status": "waiting", "tasks": [task(3)]}

    @app.post("/api/tasks/{task_id}/complete")
    def complete(task_id: str, body: FloorBody) -> dict[str, Any]:
        n = left.pop(task_id, 1) - 1
        ready = [task(n)] if n > 0 else []
        return {"instance_id": 1, "status": "waiting" if ready else "completed", "ready_tasks": ready}

    return app


def serve(url: str, port: int, kind: str) -> None:
    import uvicorn

    from api.app import create_app
    from carepath.server import uvicorn_config

    if kind == "floor":
        uvicorn.Server(uvicorn_config(floor_app(), host="127.0.0.1", port=port, log_level="warning")).run()
        return
    app = create_app(_engine(url), run_timers=False)
    if os.environ.get("CAREPATH_BENCH_SPLIT"):
        split = CallCpu(os.environ["CAREPATH_BENCH_SPLIT"] + f".{kind}")
        split.wrap(app.state.engine, "start")
        split.wrap(app.state.engine, "complete_task")
        split.wrap(app.state.auth, "session_user")  # in a worker thread (PostgreSQL, or when it would wait)
        split.wrap(app.state.auth, "session_on_loop")  # on the event loop (a file SQLite database)
    config = uvicorn_config(app, host="127.0.0.1", port=port, log_level="warning")
    if kind == "plain":
        config.loop, config.http = "asyncio", "h11"
    prof = os.environ.get("CAREPATH_BENCH_PROFILE")
    if not prof:
        uvicorn.Server(config).run()
        return
    import yappi

    class Profiled(uvicorn.Server):  # written at shutdown: uvicorn re-raises SIGTERM once it has shut down
        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            yappi.stop()
            stats = yappi.get_func_stats()
            stats.save(prof + ".pstat", type="pstat")  # for pstats / snakeviz
            with open(prof, "w") as fh:
                for key in ("ttot", "tsub"):
                    stats.sort(key, "desc")
                    fh.write(f"# sorted by {key} (yappi clock, all threads)\n")
                    for f in list(stats)[:45]:
                        fh.write(f"{f.ncall:>8} {f.ttot:9.3f} {f.tsub:9.3f}  {f.module}:{f.lineno} {f.name}\n")

    yappi.set_clock_type(os.environ.get("CAREPATH_BENCH_PROFILE_CLOCK", "cpu"))
    yappi.start()
    Profiled(config).run()


class CallCpu:
    """CPU time (of the calling thread) per call of a few methods, written to `path` every 40 calls."""

    def __init__(self, path: str | None = None) -> None:
        self.path, self.acc, self.lock = path, {}, threading.Lock()

    def wrap(self, obj: Any, name: str) -> None:
        f = getattr(obj, name)

        def timed(*a: Any, **k: Any) -> Any:
            t = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                self.add(name, time.thread_time() - t)
        setattr(obj, name, timed)

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            n, total = self.acc.get(name, (0, 0.0))
            self.acc[name] = (n + 1, total + seconds)
            if self.path and (n + 1) % 40 == 0:
                Path(self.path).write_text(json.dumps(self.summary()))

    def summary(self) -> dict[str, Any]:
        return {k: {"calls": n, "cpu_us": round(1e6 * t / max(n, 1))} for k, (n, t) in self.acc.items()}


DIRECT = CallCpu()


class Server:
    def __init__(self, url: str, kind: str, profile: bool, base: str | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ)
        if not profile:
            env.pop("CAREPATH_BENCH_PROFILE", None)
        root = ROOT
        if kind == "base":
            if not base:
                raise SystemExit("--servers base needs --base DIR (another checkout of carepath)")
            root, kind = Path(base).resolve(), "fast"
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.http_bench", "--serve", url, str(self.port), kind],
                                     cwd=root, env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.1)
        self.client = httpx.Client(base_url=self.base, timeout=30)
        r = self.client.post("/api/session", json={"username": USER, "password": PASSWORD})
        r.raise_for_status()
        self.client.headers["X-CSRF-Token"] = r.json()["csrf_token"]

    def cpu(self) -> float:
        """The server process's CPU seconds so far (user + system, all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)  # uvicorn shuts down cleanly (and the profile is written)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------------- the variants
def run_engine(eng: Engine, case_id: int, n: int, lat: list[float]) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        a, c = time.perf_counter(), time.thread_time()
        res = eng.start("three_tasks", case_id=case_id, data={"n": i}, actor=USER)
        lat.append(time.perf_counter() - a)
        DIRECT.add("start", time.thread_time() - c)
        for _ in range(3):
            a, c = time.perf_counter(), time.thread_time()
            res = eng.complete_task(res.ready_tasks[0]["id"], {"step": i}, actor=USER)
            lat.append(time.perf_counter() - a)
            DIRECT.add("complete_task", time.thread_time() - c)
        assert res.status == "completed"
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def run_http(srv: Server, case_id: int, n: int, lat: list[float]) -> tuple[float, float]:
    """(instances per wall second, per CPU second of the server process)."""
    c = srv.client
    c0, t0 = srv.cpu(), time.perf_counter()
    for i in range(n):
        a = time.perf_counter()
        r = c.post(f"/api/cases/{case_id}/processes/three_tasks", json={"data": {"n": i}})
        lat.append(time.perf_counter() - a)
        assert r.status_code == 201, r.text
        task = r.json()["tasks"][0]["id"]
        for _ in range(3):
            a = time.perf_counter()
            r = c.post(f"/api/tasks/{task}/complete", json={"data": {"step": i}})
            lat.append(time.perf_counter() - a)
            assert r.status_code == 200, r.text
            body = r.json()
            task = body["ready_tasks"][0]["id"] if body["ready_tasks"] else None
        assert body["status"] == "completed"
    return n / (time.perf_counter() - t0), n / max(srv.cpu() - c0, 0.01)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 2)


def bench(url: str, n: int, rounds: int, servers: list[str], base: str | None = None) -> dict[str, Any]:
    from api.auth import create_user

    eng = _engine(url)
    eng.init()  # the real clock, as in production
    eng.deploy([DIAGRAM])
    create_user(eng, USER, PASSWORD, roles=["team_manager"], teams=["front_door", "team_manager"])
    case_id = eng.start("three_tasks", actor=USER).case_id
    srv = {k: Server(url, k, profile=(i == 0), base=base) for i, k in enumerate(servers)}
    try:
        run_engine(eng, case_id, WARM, [])
        for k in servers:
            run_http(srv[k], case_id, WARM, [])
        out: dict[str, Any] = {"rounds": [], "latency_ms": {}}
        lat: dict[str, list[float]] = {"engine": [], **{k: [] for k in servers}}
        for _ in range(rounds):
            row: dict[str, Any] = {"load": round(os.getloadavg()[0], 2)}
            row["engine"], row["engine_cpu"] = (round(x, 1) for x in run_engine(eng, case_id, n, lat["engine"]))
            for k in servers:
                row[k], row[f"{k}_cpu"] = (round(x, 1) for x in run_http(srv[k], case_id, n, lat[k]))
                row[f"{k}/engine"] = round(row[k] / row["engine"], 3)
            out["rounds"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        for k in ["engine", *servers]:
            out["latency_ms"][k] = {"p50": pct(lat[k], 0.5), "p95": pct(lat[k], 0.95), "requests": len(lat[k])}
        for k in servers:
            ratios = [r[f"{k}/engine"] for r in out["rounds"]]
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            cpu = [r[f"{k}_cpu"] for r in out["rounds"]]
            ecpu = [r["engine_cpu"] for r in out["rounds"]]
            out[f"{k}/engine_by_cpu"] = round(sum(cpu) / len(cpu) / (sum(ecpu) / len(ecpu)), 3)
            if k == "floor":  # the best any server on this framework can do: the engine's CPU plus the floor's
                e, f = sum(ecpu) / len(ecpu), sum(cpu) / len(cpu)
                out["ceiling/engine_by_cpu"] = round(1 / (1 / e + 1 / f) / e, 3)
            out[f"{k}/engine"] = {"median": round(statistics.median(ratios), 3), "q1": round(q[0], 3),
                                  "q3": round(q[2], 3), "min": min(ratios), "max": max(ratios),
                                  "p50_request_ratio": round(out["latency_ms"]["engine"]["p50"]
                                                             / out["latency_ms"][k]["p50"], 3)}
        return out
    finally:
        for s in srv.values():
            s.stop()
        eng.db.dispose()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(argv[1], int(argv[2]), argv[3])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--n", type=int, default=10, help="instances per variant per round (small: the pairs are close "
                   "in time, so the load of a shared machine falls on both sides of each ratio)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--servers", default="fast,plain", help="comma-separated: fast (uvloop+httptools), plain, "
                   "base (fast, from the checkout --base), floor (FastAPI and uvicorn alone: the routes answer "
                   "without a session, a database or the engine)")
    p.add_argument("--base", help="another checkout of carepath, for --servers base")
    args = p.parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            report(bench(f"sqlite:///{d}/http.db", args.n, args.rounds, servers, args.base), args, servers)
    else:
        name = f"http_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:  # the result is printed before the database is dropped (a DROP may wait for a checkpoint)
            report(bench(args.pg_url.rsplit("/", 1)[0] + "/" + name, args.n, args.rounds, servers, args.base),
                   args, servers)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0


def report(res: dict[str, Any], args: argparse.Namespace, servers: list[str]) -> None:
    import uvicorn

    res.update({"db": args.db, "n": args.n, "rounds_n": args.rounds, "servers": servers,
                "uvicorn": uvicorn.__version__, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "loadavg_end": os.getloadavg()})
    res["direct_call_cpu_us"] = DIRECT.summary()  # warm-up included, as in the servers' FILE.<kind>
    res["rounds_detail"] = res.pop("rounds")
    from bench.run import RESULTS, machine
    from bench.yardstick import commit

    res["machine"], res["commit"] = machine(), commit()
    out = json.dumps(res, indent=1)
    print(out, flush=True)
    # saved as every benchmark's run is (docs/performance.md names these files)
    dest = RESULTS / f"http-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{args.db}.json"
    dest.write_text(out + "\n")
    print(f"saved to bench/results/{dest.name}", flush=True)

if __name__ == "__main__":
    raise SystemExit(main())
