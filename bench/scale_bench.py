"""Scale-out on one PostgreSQL (issue 14 item 5): 1 against 2 worker processes, 1 against 2 server
processes, and the lag of a single due timer in a running server. See docs/performance.md.

* **timers**: 10,000 cases of `bench/diagrams/due_timer.bpmn` (timer → service task → user task) are
  started once into a template schema, their timers all due; each run copies the template into a fresh
  schema (`INSERT … SELECT`, not timed) and fires every timer with 1 or with 2 worker processes. Each worker
  process is started, connected and waiting beforehand, then runs the timer job as `carepath worker` runs
  it (`engine.worker.fire_once`); the time is from the start signal to the commit of the last batch.
  Checked every run: one `timer.fired` event and one handler call per timer, no timer row left.
* **http**: two server processes (`bench/http_bench.py`'s, built as `carepath serve` builds them, timers
  off) on one database; `--clients` client threads, each signed in with its own session and working on its
  own case, each running the three-task diagram (start + three completions) `--per-client` times. "1
  server": every client talks to server A; "2 servers": clients alternate between A and B.
* **lag**: `carepath serve` on a database on the real clock, timer job on as deployed; `bench/diagrams/
  timer_at.bpmn` waits until the instant in its data. `known`: 50 timers, due 0.15–0.65 s apart, are
  stored before the first falls due; `fresh`: each timer is started (by this process, not the server)
  0.3 s before it falls due. Lag = the time its commit is seen (a 2 ms poll of the timers table) − the
  due time, so the scheduler's polling and waiting count; `wake` = the firing step's clock − the due time.

CPU per process is read from /proc: the worker or server processes, their PostgreSQL backends, every other
postgres process, this process, and the machine's total busy time (the rest is other work on the machine).

    python -m bench.scale_bench --pg postgresql://postgres@127.0.0.1:5432/test               # all, 3 runs
    python -m bench.scale_bench --pg ... --only timers --runs 3 --timers 10000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DIAGRAMS = ROOT / "bench" / "diagrams"
RESULTS = ROOT / "bench" / "results"
START = datetime(2031, 1, 6, 9, 0, tzinfo=timezone.utc)
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- CPU from /proc
def proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_pids() -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if Path(f"/proc/{d}/comm").read_text().strip() == "postgres":
                    out.append(int(d))
            except OSError:
                pass
    return out


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, /proc/stat)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICK


class CpuWatch:
    """CPU seconds over an interval: named processes, the PostgreSQL backends of `apps`, all postgres."""

    def __init__(self, pg_url: str, app_prefix: str, procs: dict[str, list[int]]) -> None:
        self.pg_url, self.prefix, self.procs = pg_url, app_prefix, procs

    def backends(self) -> list[int]:
        import psycopg

        with psycopg.connect(self.pg_url, autocommit=True) as c:
            return [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
                                            (self.prefix + "%",))]

    def sample(self) -> dict[str, float]:
        s: dict[str, float] = {"machine": machine_busy(), "bench": time.process_time()}
        for name, pids in self.procs.items():
            s[name] = sum(proc_cpu(p) or 0.0 for p in pids)
        back = set(self.backends())
        pg = postgres_pids()
        s["pg_backends"] = sum(proc_cpu(p) or 0.0 for p in pg if p in back)
        s["pg_other_sessions"] = sum(proc_cpu(p) or 0.0 for p in pg if p not in back)  # other work's too
        return s

    @staticmethod
    def diff(a: dict[str, float], b: dict[str, float], wall: float) -> dict[str, float]:
        d = {k: round(b[k] - a[k], 2) for k in a}
        known = sum(v for k, v in d.items() if k != "machine")
        d["rest_of_machine"] = round(d["machine"] - known, 2)
        d["cores_busy"] = round(d["machine"] / wall, 2) if wall > 0 else 0.0
        return d


# ---------------------------------------------------------------------- databases
def schema_url(pg_url: str, schema: str, app: str) -> str:
    base = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}&application_name={app}"


def make_schema(pg_url: str, prefix: str) -> str:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{name}"')
    return name


def drop_schema(pg_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _timer_registry() -> Any:
    from engine.registry import HandlerRegistry

    reg = HandlerRegistry()

    @reg.register("stamp")
    def stamp(ctx):  # type: ignore[no-untyped-def]
        return {"at": ctx.now.isoformat()}

    return reg


def _engine(url: str, **kw: Any) -> Any:
    from engine.forms import FormLibrary
    from engine.runtime import Engine

    return Engine(url, registry=kw.pop("registry", None) or _timer_registry(), forms=FormLibrary(), **kw)


def make_template(pg_url: str, n: int) -> tuple[str, float]:
    """A schema with `n` started due_timer cases, the simulated clock past every timer."""
    schema = make_schema(pg_url, "scale_tpl")
    eng = _engine(schema_url(pg_url, schema, "scale-setup"))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "due_timer.bpmn"])
    t0 = time.perf_counter()
    for _ in range(n):
        eng.start("due_timer")
    took = time.perf_counter() - t0
    with eng.db.transaction() as conn:
        eng._set_clock(conn, START + timedelta(days=1, seconds=1))
    eng.db.dispose()
    return schema, took


def clone(pg_url: str, template: str) -> str:
    """A fresh schema holding a copy of the template's rows."""
    import psycopg

    from engine.schema import metadata

    schema = make_schema(pg_url, "scale_run")
    eng = _engine(schema_url(pg_url, schema, "scale-setup"))
    eng.init(simulated_start=START)
    eng.db.dispose()
    tables = [t.name for t in metadata.sorted_tables]
    with psycopg.connect(pg_url) as c:
        c.execute("TRUNCATE " + ", ".join(f'"{schema}"."{t}"' for t in tables) + " CASCADE")
        for t in tables:
            c.execute(f'INSERT INTO "{schema}"."{t}" SELECT * FROM "{template}"."{t}"')
            if "id" in metadata.tables[t].c and metadata.tables[t].c.id.autoincrement is not False:
                seq = c.execute("SELECT pg_get_serial_sequence(%s, 'id')", (f'"{schema}"."{t}"',)).fetchone()[0]
                if seq:
                    c.execute(f'SELECT setval(%s, COALESCE((SELECT max(id) FROM "{schema}"."{t}"), 0) + 1, false)',
                              (seq,))
        c.execute(f'ANALYZE "{schema}".timers')
        c.execute(f'ANALYZE "{schema}".instances')
    return schema


# ---------------------------------------------------------------------- (1) timers: worker processes
def fire_worker(url: str) -> None:
    """A worker process: connect, say ready, wait for the start signal, run the timer job once."""
    from engine.worker import fire_once

    stamps: list[float] = []
    eng = _engine(url)
    fire = eng._fire_batch

    def stamped(*a: Any, **kw: Any) -> Any:
        ids, moved = fire(*a, **kw)
        stamps.extend([time.perf_counter()] * moved)  # committed: the lag of these timers ends here
        return ids, moved

    eng._fire_batch = stamped
    eng.now()  # connected before the start: a running worker is
    print(json.dumps({"ready": os.getpid()}), flush=True)
    sys.stdin.readline()
    c0 = time.process_time()
    moved = fire_once(eng)
    print(json.dumps({"moved": moved, "stamps": stamps, "cpu": time.process_time() - c0}), flush=True)
    sys.stdin.readline()  # stay connected until the bench has read the backends' CPU
    eng.db.dispose()


def timers_run(pg_url: str, template: str, n: int, workers: int, root: Path = ROOT) -> dict[str, Any]:
    """`root`: the checkout whose engine the worker processes run (`--old-root`: the code before a change)."""
    from sqlalchemy import text

    schema = clone(pg_url, template)
    app = f"scale-w{uuid.uuid4().hex[:6]}"
    url = schema_url(pg_url, schema, app)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.scale_bench", "--fire-worker", url], cwd=root,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    try:
        for p in procs:
            assert "ready" in json.loads(p.stdout.readline())
        watch = CpuWatch(pg_url, app, {"workers": [p.pid for p in procs]})
        before = watch.sample()
        load = os.getloadavg()
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [json.loads(p.stdout.readline()) for p in procs]
        t_done = time.perf_counter()
        after = watch.sample()
        for p in procs:
            p.stdin.write("exit\n")
            p.stdin.flush()
            p.wait(60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    stamps = sorted(s for o in outs for s in o["stamps"])
    eng = _engine(url)
    with eng.db.engine.connect() as conn:
        fired = conn.execute(text("SELECT count(*) FROM events WHERE type = 'timer.fired'")).scalar()
        most = conn.execute(text("SELECT coalesce(max(c), 0) FROM (SELECT instance_id, count(*) AS c FROM events "
                                 "WHERE type = 'timer.fired' GROUP BY instance_id) s")).scalar()
        calls = conn.execute(text("SELECT count(*) FROM events WHERE type = 'handler.called'")).scalar()
        left = conn.execute(text("SELECT count(*) FROM timers")).scalar()
    eng.db.dispose()
    drop_schema(pg_url, schema)
    wall = (stamps[-1] - t0) if stamps else t_done - t0
    lags = [s - t0 for s in stamps]
    return {"workers": workers, "timers": n, "fire_all_s": round(wall, 2), "until_all_idle_s": round(t_done - t0, 2),
            "per_s": round(n / wall, 1), "moved_by_worker": [o["moved"] for o in outs],
            "worker_cpu_s": [round(o["cpu"], 2) for o in outs],
            "p50_lag_s": round(lags[len(lags) // 2], 2) if lags else None,
            "p99_lag_s": round(lags[int(len(lags) * 0.99) - 1], 2) if lags else None,
            "timer_fired_events": fired, "max_fired_per_instance": most, "handler_calls": calls,
            "duplicates": fired - n, "timers_left": left, "ok": fired == n and most == 1 and left == 0 and calls == n,
            "cpu_s": CpuWatch.diff(before, after, t_done - t0), "loadavg_before": [round(x, 2) for x in load],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def timers_part(pg_url: str, n: int, runs: int, template: str | None = None,
                old_root: Path | None = None) -> dict[str, Any]:
    """Each run fires a fresh copy with 1 and with 2 worker processes (and, with `old_root`, the same with
    that checkout's engine), the order turned round from run to run. `template`: an existing template
    schema to copy (kept), else one is made (and dropped at the end)."""
    keep = template is not None
    if template is None:
        template, setup = make_template(pg_url, n)
    else:
        setup = 0.0
    codes = {"new": ROOT, **({"old": old_root} if old_root else {})}
    variants = [(code, w) for code in codes for w in (1, 2)]
    out: dict[str, Any] = {"timers": n, "template": template if keep else None, "template_setup_s": round(setup, 1),
                           "old_root": str(old_root) if old_root else None, "runs": []}
    try:
        for r in range(runs):
            order = variants if r % 2 == 0 else variants[::-1]  # interleaved: neither always goes first
            res = {f"{code}_{w}": timers_run(pg_url, template, n, w, codes[code]) for code, w in order}
            row: dict[str, Any] = {"order": [f"{c}_{w}" for c, w in order], **res}
            for code in codes:
                one, two = res[f"{code}_1"], res[f"{code}_2"]
                row[f"{code}_two_vs_one"] = round(one["fire_all_s"] / two["fire_all_s"], 3)
            out["runs"].append(row)
            print(json.dumps({"run": r + 1, **{k: (v["fire_all_s"], v["ok"], v["cpu_s"]["workers"],
                                                 v["cpu_s"]["pg_backends"], v["cpu_s"]["cores_busy"])
                                            for k, v in res.items()},
                              **{k: v for k, v in row.items() if k.endswith("two_vs_one")}}),
                  file=sys.stderr, flush=True)
    finally:
        if not keep:
            drop_schema(pg_url, template)
    for code in codes:
        out[f"{code}_two_vs_one"] = [r[f"{code}_two_vs_one"] for r in out["runs"]]
        for w in (1, 2):
            out[f"{code}_{w}_s"] = [r[f"{code}_{w}"]["fire_all_s"] for r in out["runs"]]
            out[f"{code}_{w}_cpu_ms_per_timer"] = [
                round(1000 * (r[f"{code}_{w}"]["cpu_s"]["workers"] + r[f"{code}_{w}"]["cpu_s"]["pg_backends"]) / n, 3)
                for r in out["runs"]]
    out["all_ok"] = all(v["ok"] for r in out["runs"] for k, v in r.items() if isinstance(v, dict))
    return out


# ---------------------------------------------------------------------- (2) http: server processes
def http_part(pg_url: str, clients: int, per_client: int, runs: int) -> dict[str, Any]:
    from api.auth import create_user
    from bench import http_bench as hb

    schema = make_schema(pg_url, "scale_http")
    app = f"scale-s{uuid.uuid4().hex[:6]}"
    url = schema_url(pg_url, schema, app)
    eng = _engine(url)
    eng.init()
    eng.deploy([hb.DIAGRAM])
    create_user(eng, hb.USER, hb.PASSWORD, roles=["team_manager"], teams=["front_door", "team_manager"])
    cases = [eng.start("three_tasks", actor=hb.USER).case_id for _ in range(clients)]
    servers = [hb.Server(url, "fast", profile=False) for _ in range(2)]

    def session(srv: Any) -> Any:
        c = hb.httpx.Client(base_url=srv.base, timeout=60)
        r = c.post("/api/session", json={"username": hb.USER, "password": hb.PASSWORD})
        r.raise_for_status()
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c

    def one_variant(nserv: int, n: int) -> dict[str, Any]:
        conns = [session(servers[i % nserv]) for i in range(clients)]
        barrier = threading.Barrier(clients + 1)
        errors: list[str] = []

        def work(i: int) -> None:
            c, case_id = conns[i], cases[i]
            barrier.wait()
            try:
                for k in range(n):
                    r = c.post(f"/api/cases/{case_id}/processes/three_tasks", json={"data": {"n": k}})
                    assert r.status_code == 201, r.text
                    task = r.json()["tasks"][0]["id"]
                    for _ in range(3):
                        r = c.post(f"/api/tasks/{task}/complete", json={"data": {"step": k}})
                        assert r.status_code == 200, r.text
                        body = r.json()
                        task = body["ready_tasks"][0]["id"] if body["ready_tasks"] else None
                    assert body["status"] == "completed"
            except Exception as exc:  # noqa: BLE001 - reported with the result
                errors.append(repr(exc)[:300])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        watch = CpuWatch(pg_url, app, {f"server_{k}": [s.proc.pid] for k, s in enumerate(servers)})
        before, load = watch.sample(), os.getloadavg()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        after = watch.sample()
        for c in conns:
            c.close()
        return {"servers": nserv, "clients": clients, "instances": clients * n, "wall_s": round(wall, 2),
                "per_s": round(clients * n / wall, 1), "errors": errors, "cpu_s": CpuWatch.diff(before, after, wall),
                "loadavg_before": [round(x, 2) for x in load]}

    out: dict[str, Any] = {"clients": clients, "per_client": per_client, "runs": []}
    try:
        one_variant(2, 3)  # warm-up: both servers, every client
        for r in range(runs):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            res = {k: one_variant(k, per_client) for k in order}
            row = {"one": res[1], "two": res[2], "two_vs_one": round(res[2]["per_s"] / res[1]["per_s"], 3)}
            out["runs"].append(row)
            print(json.dumps({"http_run": r + 1, "one": res[1]["per_s"], "two": res[2]["per_s"],
                              "ratio": row["two_vs_one"], "cpu_one": res[1]["cpu_s"], "cpu_two": res[2]["cpu_s"]}),
                  file=sys.stderr, flush=True)
    finally:
        for s in servers:
            s.stop()
        eng.db.dispose()
        drop_schema(pg_url, schema)
    out["two_vs_one_median"] = round(statistics.median(r["two_vs_one"] for r in out["runs"]), 3)
    out["all_ok"] = not any(r["one"]["errors"] or r["two"]["errors"] for r in out["runs"])
    return out


# ---------------------------------------------------------------------- (3) lag of a due timer
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _LagSide:
    """One `carepath serve` (timer job on) from a checkout, on its own schema on the real clock."""

    def __init__(self, pg_url: str, root: Path) -> None:
        import psycopg

        self.pg_url = pg_url
        self.schema = make_schema(pg_url, "scale_lag")
        url = schema_url(pg_url, self.schema, "scale-lag")
        self.eng = _engine(url)
        self.eng.init()  # the real clock
        self.eng.deploy([DIAGRAMS / "timer_at.bpmn"])
        port = _free_port()
        self.log = open(f"/tmp/scale-out-lag-server-{port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.srv = subprocess.Popen([sys.executable, "-m", "carepath.cli", "serve", "--db", url, "--port", str(port)],
                                    cwd=root, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not _healthy(port):
            if time.monotonic() > deadline or self.srv.poll() is not None:
                raise RuntimeError("carepath serve did not start")
            time.sleep(0.2)
        time.sleep(1.0)  # the scheduler has made its first scan
        self.poll = psycopg.connect(pg_url, autocommit=True)
        self.poll.execute(f'SET search_path = "{self.schema}"')

    def watch(self, due: dict[int, float], seen: dict[int, float], lock: threading.Lock,
              done: threading.Event) -> None:
        """Until every instance's timer row is gone (or 30 s past its due time): when it went, polled every 2 ms."""
        while True:
            now = time.time()
            with lock:
                waiting = {i for i in due if i not in seen and now < due[i] + 30}
            if not waiting and done.is_set():
                return
            rows = {r[0] for r in self.poll.execute("SELECT instance_id FROM timers WHERE instance_id = ANY(%s)",
                                                    (list(waiting),))} if waiting else set()
            t = time.time()
            with lock:
                for iid in waiting - rows:
                    seen[iid] = t
            time.sleep(0.002)

    def measure(self, mode: str, count: int) -> dict[str, Any]:
        from sqlalchemy import text

        eng, rng = self.eng, random.Random()
        due: dict[int, float] = {}
        seen: dict[int, float] = {}
        lock, done = threading.Lock(), threading.Event()
        watcher = threading.Thread(target=self.watch, args=(due, seen, lock, done))
        if mode == "known":  # every timer is stored before the first falls due
            at = time.time() + 2.0
            for _ in range(count):
                at += rng.uniform(0.15, 0.65)
                due[eng.start("timer_at", data={"due": _iso(at)}).instance_id] = at
            assert min(due.values()) > time.time(), "set-up took longer than the first timer's wait"
            watcher.start()
        else:  # each timer started 0.3 s before it falls due, by this process (not the server)
            watcher.start()
            for _ in range(count):
                at = time.time() + 0.3
                iid = eng.start("timer_at", data={"due": _iso(at)}).instance_id
                with lock:
                    due[iid] = at
                time.sleep(rng.uniform(0.15, 0.65))
        done.set()
        watcher.join()
        with eng.db.engine.connect() as conn:
            steps = {r[0]: r[1] for r in conn.execute(text(
                "SELECT instance_id, at FROM events WHERE type = 'timer.fired'"))}
            twice = conn.execute(text("SELECT count(*) FROM (SELECT instance_id FROM events WHERE type = "
                                      "'timer.fired' GROUP BY instance_id HAVING count(*) > 1) s")).scalar()
        lags = sorted(seen[i] - due[i] for i in due if i in seen)
        wakes = sorted(datetime.fromisoformat(steps[i].replace("Z", "+00:00")).timestamp() - due[i]
                       for i in due if i in steps)
        return {"mode": mode, "timers": count, "not_fired": count - len(lags), "p50_s": _q(lags, 0.5),
                "p99_s": _q(lags, 0.99), "max_s": round(max(lags), 3), "min_s": round(min(lags), 3),
                "wake_p50_s": _q(wakes, 0.5), "wake_p99_s": _q(wakes, 0.99),
                "fired_twice": twice, "loadavg": [round(x, 2) for x in os.getloadavg()]}

    def stop(self) -> None:
        self.srv.send_signal(signal.SIGTERM)
        try:
            self.srv.wait(30)
        except subprocess.TimeoutExpired:
            self.srv.kill()
        self.log.close()
        self.poll.close()
        self.eng.db.dispose()
        drop_schema(self.pg_url, self.schema)


def lag_part(pg_url: str, count: int, runs: int, old_root: Path | None = None) -> dict[str, Any]:
    """`known` and `fresh` in each run, against this checkout's server (and `old_root`'s, interleaved)."""
    codes = {"new": ROOT, **({"old": old_root} if old_root else {})}
    sides: dict[str, _LagSide] = {}
    out: dict[str, Any] = {"runs": []}
    try:
        for code, root in codes.items():
            sides[code] = _LagSide(pg_url, root)
        for r in range(runs):
            for mode in ("known", "fresh"):
                for code in (codes if r % 2 == 0 else list(codes)[::-1]):
                    res = {"code": code, **sides[code].measure(mode, count)}
                    out["runs"].append(res)
                    print(json.dumps({"lag_run": r + 1, **res}), file=sys.stderr, flush=True)
    finally:
        for side in sides.values():
            side.stop()
    for code in codes:
        for mode in ("known", "fresh"):
            rs = [r for r in out["runs"] if r["mode"] == mode and r["code"] == code]
            out[f"{code}_{mode}_p99_s"] = [r["p99_s"] for r in rs]
            out[f"{code}_{mode}_p50_s"] = [r["p50_s"] for r in rs]
    return out


def _healthy(port: int) -> bool:
    from bench import http_bench as hb

    try:
        return hb.httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except hb.httpx.HTTPError:
        return False


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _q(xs: list[float], p: float) -> float:
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 3)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--fire-worker"]:
        fire_worker(argv[1])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--only", action="append", choices=["timers", "http", "lag"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timers", type=int, default=10_000)
    p.add_argument("--template", help="timers: copy this schema left by `--make-template` instead of starting the "
                   "cases again (setting 10,000 cases up takes minutes)")
    p.add_argument("--old-root", type=Path, help="timers and lag: also run the worker processes and the server from "
                   "this checkout (the engine before a change, e.g. `git archive` of it with this file copied "
                   "in), interleaved")
    p.add_argument("--make-template", action="store_true", help="only make a template schema and print its name")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--per-client", type=int, default=15)
    p.add_argument("--lag-timers", type=int, default=50)
    p.add_argument("--out", help="the JSON result (default: bench/results/scale-<time>.json)")
    args = p.parse_args(argv)
    only = args.only or ["timers", "http", "lag"]
    if args.make_template:
        print(make_template(args.pg, args.timers)[0])
        return 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    res: dict[str, Any] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
                           "cores": os.cpu_count(), "loadavg_start": os.getloadavg()}
    if "timers" in only:
        res["timers"] = timers_part(args.pg, args.timers, args.runs, args.template, args.old_root)
    if "http" in only:
        res["http"] = http_part(args.pg, args.clients, args.per_client, args.runs)
    if "lag" in only:
        res["lag"] = lag_part(args.pg, args.lag_timers, args.runs, args.old_root)
    res["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"scale-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in res.items()}, indent=1, default=str)[:6000])
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
