"""The engine-throughput yardstick: carepath against SpiffWorkflow on one 3-user-task process, in one
interleaved run, every ratio taken round by round. See docs/performance.md, "Engine throughput".

    python -m bench.yardstick                         # SQLite variants only
    python -m bench.yardstick --pg postgresql://postgres@127.0.0.1:5432/test --rounds 30 --n 50
    make bench-check                                  # run it, then compare the ratios with the baseline

One instance = start + three user-task completions, each with form data. The variants:

  a          SpiffWorkflow in memory: parse once, run, nothing saved
  b          a + the library's full JSON round trip (`serialize_json`/`deserialize_json`, which write and read
             the whole diagram) at each wait state
  b_prime    a + saving only the workflow's state (task tree, data, subprocesses, pending events) as JSON text
             and rebuilding the workflow from that text around the spec objects already held, at each wait
             state: what carepath's storage needs from the library (it keeps each diagram version once)
  c          carepath on SQLite as shipped: WAL, synchronous=NORMAL, the in-process workflow cache on
  c_full     c with `PRAGMA synchronous=FULL` (an fsync at every commit)
  c_nocache  c with the workflow cache off (Engine.LIVE_CACHE_SIZE = 0): every step restores the workflow
             from its stored text, as b_prime does and as a second server process would
  d          carepath on PostgreSQL as shipped (loopback TCP, synchronous_commit as the server has it)

Method: every variant is set up once (its own database for carepath's) and lives through the run. Each
round runs every variant once for `--n` instances, in an order rotated from round to round (ABC.., BC..A,
...); every timed run is preceded by `--warmup` untimed instances of the same variant on the same objects
and database. Rounds are short (about ten seconds on a loaded 2-core machine), so a ratio such as
c/b_prime is computed inside each round, both figures from the same few seconds of the shared machine, and
the report gives its median, min, max and quartiles over the rounds. Absolute rates are kept for reading,
never compared by `bench.check`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import event, select

from bench.engine_bench import DIAGRAMS, Scratch, _engine
from engine.schema import instances

RESULTS = Path(__file__).parent / "results"
RESULT_PREFIX = "yardstick-"
PROCESS = "three_tasks"

SPIFF_VARIANTS = ("a", "b", "b_prime")
SQLITE_VARIANTS = ("c", "c_full", "c_nocache")
PG_VARIANTS = ("d",)
ALL_VARIANTS = SPIFF_VARIANTS + SQLITE_VARIANTS + PG_VARIANTS

#: ratio name -> (numerator, denominator). The first five say how carepath does against the library;
#: b_prime/b says how much of (b) is the diagram; d/c is issue 14's PostgreSQL goal.
RATIOS: dict[str, tuple[str, str]] = {
    "c/b": ("c", "b"),
    "c/b_prime": ("c", "b_prime"),
    "c_full/b_prime": ("c_full", "b_prime"),
    "c_nocache/b_prime": ("c_nocache", "b_prime"),
    "d/b_prime": ("d", "b_prime"),
    "d/c": ("d", "c"),
    "b_prime/b": ("b_prime", "b"),
    "c_full/c": ("c_full", "c"),
    "c_nocache/c": ("c_nocache", "c"),
}


# ----------------------------------------------------------------------------- SpiffWorkflow variants
def _spiff_spec():
    from SpiffWorkflow.camunda.parser import CamundaParser

    parser = CamundaParser()
    parser.add_bpmn_file(str(DIAGRAMS / "three_tasks.bpmn"))
    return parser.get_spec(PROCESS), parser.get_subprocess_specs(PROCESS)


class _StateOnly:
    """b_prime's save and restore, with the library's own converters and JSON encoder, minus the diagram:
    `dump` is BpmnWorkflowConverter.to_dict without `spec`/`subprocess_specs`; `load` is its from_dict
    with the spec objects supplied instead of restored from the text."""

    def __init__(self, serializer, spec, subprocess_specs) -> None:  # type: ignore[no-untyped-def]
        from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

        self.serializer = serializer
        self.registry = serializer.registry
        # the library's workflow converter, as the default configuration registers it (this re-registers the same)
        self.conv = BpmnWorkflowConverter(BpmnWorkflow, self.registry)
        self._base_to_dict = WorkflowConverter.to_dict
        self._workflow_class = BpmnWorkflow
        self.spec, self.subprocess_specs = spec, subprocess_specs

    def dump(self, wf) -> str:  # type: ignore[no-untyped-def]
        self.registry._encoder_mode = True  # as serialize_json: typed values become tagged dicts
        try:
            dct = self._base_to_dict(self.conv, wf)  # data, correlations, last task, tasks, root
            dct["subprocesses"] = self.conv.mapping_to_dict(wf.subprocesses)
            dct["bpmn_events"] = self.registry.convert(wf.bpmn_events)
            return json.dumps(dct, cls=self.serializer._encoder_cls)
        finally:
            self.registry._encoder_mode = False

    def load(self, text: str):  # type: ignore[no-untyped-def]
        dct = json.loads(text, cls=self.serializer.json_decoder_cls)
        wf = self._workflow_class(self.spec, self.subprocess_specs, deserializing=True)
        wf.tasks = self.conv.mapping_from_dict(dct["tasks"], UUID, workflow=wf)
        wf.task_tree = wf.tasks.get(UUID(dct["root"]))
        self.conv.set_default_attributes(wf, dct)
        self.conv.subprocesses_from_dict(dct["subprocesses"], wf)
        wf.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return wf


class SpiffVariant:
    def __init__(self, name: str) -> None:
        from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
        from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG

        self.name = name
        self.spec, self.subprocess_specs = _spiff_spec()
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))
        self.state_only = _StateOnly(self.serializer, self.spec, self.subprocess_specs)
        self.state_bytes: list[int] = []  # length of the text saved at each wait state of the last instance

    def _roundtrip(self, wf):  # type: ignore[no-untyped-def]
        if self.name == "b":
            text = self.serializer.serialize_json(wf)
            self.state_bytes.append(len(text))
            return self.serializer.deserialize_json(text)
        if self.name == "b_prime":
            text = self.state_only.dump(wf)
            self.state_bytes.append(len(text))
            return self.state_only.load(text)
        return wf

    def instance(self, i: int) -> None:
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
        from SpiffWorkflow.util.task import TaskState

        self.state_bytes = []
        wf = BpmnWorkflow(self.spec, self.subprocess_specs)
        wf.do_engine_steps()
        for step in range(3):
            wf = self._roundtrip(wf)  # each wait state is saved and the next step starts from the saved text
            task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
            task.data.update({"step": step, "n": i})
            task.run()
            wf.do_engine_steps()
        self._roundtrip(wf)  # the completed workflow is saved once more
        assert wf.completed

    def settings(self) -> dict[str, Any]:
        return {"saved_state_bytes": self.state_bytes[:3]}

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- carepath variants
def _sqlite_pragma_full(engine) -> None:  # type: ignore[no-untyped-def]
    # registered after the engine's own connect listener, so it runs after (and overrides) synchronous=NORMAL
    @event.listens_for(engine, "connect")
    def _full(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()


class CarepathVariant:
    def __init__(self, name: str, pg_url: str | None) -> None:
        self.name = name
        self.db = Scratch("postgres" if name == "d" else "sqlite", pg_url)
        self.eng = _engine(self.db.url)
        if name == "c_full":
            _sqlite_pragma_full(self.eng.db.engine)
        if name == "c_nocache":
            self.eng.LIVE_CACHE_SIZE = 0  # the instance attribute shadows the class's: nothing is kept
        self.eng.init()  # the real clock, as in production
        self.eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
        self._first_state: int | None = None

    def instance(self, i: int) -> None:
        res = self.eng.start(PROCESS, data={"n": i})
        if self._first_state is None:
            with self.eng.db.engine.connect() as conn:
                self._first_state = len(conn.execute(select(instances.c.state)
                                                     .where(instances.c.id == res.instance_id)).scalar_one())
        for step in range(3):
            res = self.eng.complete_task(res.ready_tasks[0]["id"], {"step": step, "n": i}, actor="bench")
        assert res.status == "completed"

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"live_cache_size": self.eng.LIVE_CACHE_SIZE,
                               "saved_state_bytes_at_first_wait": self._first_state}
        with self.eng.db.engine.connect() as conn:
            if self.eng.db.is_postgres:
                for name in ("synchronous_commit", "fsync", "server_version"):
                    out[name] = conn.exec_driver_sql(f"SHOW {name}").scalar()
            else:
                sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                out["synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, sync)
                out["journal_mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                out["filesystem"] = _filesystem(Path(self.db._dir.name))
        return out

    def close(self) -> None:
        self.eng.db.dispose()
        self.db.close()


def _make(name: str, pg_url: str | None):  # type: ignore[no-untyped-def]
    return SpiffVariant(name) if name in SPIFF_VARIANTS else CarepathVariant(name, pg_url)


# ----------------------------------------------------------------------------- the interleaved run
def _timed(variant, n: int, warmup: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for i in range(warmup):
        variant.instance(-1 - i)
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        variant.instance(i)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / wall, n / cpu


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max and quartiles of one figure over the rounds."""
    vals = sorted(values)
    q = statistics.quantiles(vals, n=4, method="inclusive") if len(vals) > 1 else [vals[0]] * 3
    return {"median": round(statistics.median(vals), 3), "min": round(vals[0], 3), "max": round(vals[-1], 3),
            "q1": round(q[0], 3), "q3": round(q[2], 3), "by_round": [round(v, 3) for v in values]}


def run(n: int, rounds: int, warmup: int, variants: list[str], pg_url: str | None,
        log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    if "d" in variants and not pg_url:
        raise SystemExit("variant d needs --pg URL (or CAREPATH_TEST_POSTGRES_URL)")
    rates: dict[str, list[float]] = {v: [] for v in variants}
    cpu_rates: dict[str, list[float]] = {v: [] for v in variants}
    loads: list[float] = []
    started = time.perf_counter()
    live: dict[str, Any] = {}
    try:
        for name in variants:  # every variant lives through the whole run: one database each
            live[name] = _make(name, pg_url)
        for r in range(rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            loads.append(os.getloadavg()[0])
            for name in order:
                wall, cpu = _timed(live[name], n, warmup)
                rates[name].append(wall)
                cpu_rates[name].append(cpu)
            log(f"round {r + 1}/{rounds} ({order[0]} first, load {loads[-1]:.2f}): "
                + ", ".join(f"{v} {rates[v][-1]:.0f}/s" for v in variants))
        settings = {name: variant.settings() for name, variant in live.items()}
    finally:
        for variant in live.values():
            variant.close()
    ratios = {}
    for label, (num, den) in RATIOS.items():
        if num in rates and den in rates:
            ratios[label] = spread([x / y for x, y in zip(rates[num], rates[den], strict=True)])
            # the same ratio by the benchmark process's CPU time: steadier under load, blind to waits
            # (fsync, PostgreSQL's own work); reported, not checked
            ratios[label]["cpu"] = spread([x / y for x, y in zip(cpu_rates[num], cpu_rates[den], strict=True)])
            ratios[label]["cpu_median"] = ratios[label]["cpu"]["median"]
    return {
        "instances_per_run": n, "rounds": rounds, "warmup_instances_per_run": warmup, "variants": variants,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_1min_by_round": [round(x, 2) for x in loads],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "settings": settings,
        "instances_per_s": {v: spread(rates[v]) for v in variants},
        "instances_per_cpu_s": {v: spread(cpu_rates[v]) for v in variants},
        "ratios": ratios,
    }


# ----------------------------------------------------------------------------- machine and commit
def _filesystem(path: Path) -> str:
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(path.resolve()).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine(pg_url: str | None) -> dict[str, Any]:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    out: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0],
                           "platform": platform.platform(), "sqlite": sqlite3.sqlite_version,
                           "spiffworkflow": version("SpiffWorkflow"), "sqlalchemy": version("SQLAlchemy"),
                           "postgres": None}
    if pg_url:
        import psycopg

        with psycopg.connect(pg_url) as c:
            out["postgres"] = c.execute("SHOW server_version").fetchone()[0]
    return out


def commit() -> dict[str, Any]:
    changed = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"sha": _git("rev-parse", "HEAD") or None, "subject": _git("log", "-1", "--format=%s")[:120],
            "uncommitted_changes": changed}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="timed instances per variant per round (default 50)")
    p.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    p.add_argument("--warmup", type=int, default=10, help="untimed instances before each timed run (default 10)")
    p.add_argument("--variants", default=",".join(ALL_VARIANTS),
                   help=f"comma-separated, from {','.join(ALL_VARIANTS)} (d needs --pg)")
    p.add_argument("--pg", default=os.environ.get("CAREPATH_TEST_POSTGRES_URL"),
                   help="PostgreSQL URL for d (default $CAREPATH_TEST_POSTGRES_URL); without it d is left out")
    p.add_argument("--out", type=Path, help="where to write the JSON (default bench/results/yardstick-<UTC>.json)")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in ALL_VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(ALL_VARIANTS)}")
    if not args.pg and "d" in variants:
        variants.remove("d")
        print("no --pg URL: variant d (PostgreSQL) left out", file=sys.stderr)
    when = datetime.now(timezone.utc)
    result = {"when": when.isoformat(timespec="seconds"), "machine": machine(args.pg), "commit": commit(),
              "command": " ".join(["python -m bench.yardstick", *(argv if argv is not None else sys.argv[1:])])}
    result["throughput"] = run(args.n, args.rounds, args.warmup, variants, args.pg,
                               log=lambda s: print(s, file=sys.stderr, flush=True))
    out = args.out or RESULTS / f"{RESULT_PREFIX}{when:%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for label, s in result["throughput"]["ratios"].items():
        print(f"{label:>18}  median {s['median']:.3f}  min {s['min']:.3f}  max {s['max']:.3f}"
              f"  IQR {s['q1']:.3f}-{s['q3']:.3f}  (by CPU time: median {s['cpu_median']:.3f})")
    print(f"saved {out}")
    return out


if __name__ == "__main__":
    main()
