"""What a PostgreSQL step cannot go below on this machine: a round trip, a durable commit, and carepath
with and without the commit's fsync. See docs/performance.md, "One round trip per step on PostgreSQL".

    python -m bench.pg_floor --pg postgresql://postgres@127.0.0.1:5432/test [--n 30 --rounds 8]

Part 1 times, with psycopg directly, `SELECT 1` (a loopback round trip) and `BEGIN; INSERT; COMMIT` with
`synchronous_commit` on and off (the difference is the commit's fsync). Part 2 runs `three_tasks` instances
(start + three completions) on carepath over SQLite (c), PostgreSQL as shipped (d), the same with
`synchronous_commit=off` for its connections (d_off; carepath never does this, it is the measure of the
fsync), and d without the pool's ping (d_noping), in interleaved rounds; each ratio is taken within a round
and reported as median [interquartile range], by wall clock and by this process's CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from urllib.parse import quote

import psycopg

from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine

from .engine_bench import DIAGRAMS


def _quantiles(xs: list[float]) -> str:
    xs = sorted(xs)
    n = len(xs)
    return f"{statistics.median(xs):.3f} [{xs[n // 4]:.3f}-{xs[(3 * n) // 4]:.3f}]"


def latencies(url: str, n: int = 1000) -> dict[str, str]:
    """Median [p10-p90] in microseconds of a round trip and of a small transaction, commit on and off."""
    out = {}
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TEMP TABLE pg_floor (id serial PRIMARY KEY, v text)")
        cur = c.cursor()

        def timed(fn: Callable[[], object]) -> str:
            for _ in range(50):
                fn()
            xs = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                xs.append((time.perf_counter() - t) * 1e6)
            xs.sort()
            return f"{statistics.median(xs):.0f} us [{xs[n // 10]:.0f}-{xs[n * 9 // 10]:.0f}]"

        def commit() -> None:
            with c.transaction():
                cur.execute("INSERT INTO pg_floor (v) VALUES (%s)", ("x" * 200,))

        out["SELECT 1"] = timed(lambda: cur.execute("SELECT 1").fetchone())
        out["BEGIN; INSERT; COMMIT, synchronous_commit=on"] = timed(commit)
        c.execute("SET synchronous_commit = off")
        out["the same, synchronous_commit=off"] = timed(commit)
    return out


def _instance(eng: Engine) -> None:
    res = eng.start("three_tasks", data={"n": 1})
    for _ in range(3):
        res = eng.complete_task(res.ready_tasks[0]["id"], {"reason": "x"}, actor="w")


def ratios(url: str, n: int, rounds: int) -> list[str]:
    schemas: list[str] = []

    def pg(extra: str = "") -> str:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        schemas.append(schema)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
        base = url.replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}{extra}')}"

    tmp = tempfile.TemporaryDirectory(prefix="pg_floor_")
    engines = {"c": f"sqlite:///{tmp.name}/c.db", "d": pg(), "d_off": pg(" -csynchronous_commit=off"),
               "d_noping": pg()}
    live = {k: Engine(u, registry=HandlerRegistry(), forms=FormLibrary()) for k, u in engines.items()}
    live["d_noping"].db.engine.pool._pre_ping = False  # type: ignore[attr-defined]
    try:
        for eng in live.values():
            eng.init()
            eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
        names = list(live)
        wall: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        loads = []
        for r in range(rounds):
            loads.append(os.getloadavg()[0])
            for k in names[r % len(names):] + names[:r % len(names)]:
                for _ in range(5):
                    _instance(live[k])
                t, c0 = time.perf_counter(), time.process_time()
                for _ in range(n):
                    _instance(live[k])
                wall[k].append(n / (time.perf_counter() - t))
                cpu[k].append(n / (time.process_time() - c0))
        lines = [f"load {min(loads):.1f}-{max(loads):.1f}"]
        lines += [f"{k}: {_quantiles(wall[k])} instances/s, {_quantiles(cpu[k])} per CPU-second" for k in names]
        for k in names[1:]:
            lines.append(f"{k}/c wall {_quantiles([a / b for a, b in zip(wall[k], wall['c'], strict=True)])}  "
                         f"CPU {_quantiles([a / b for a, b in zip(cpu[k], cpu['c'], strict=True)])}")
        return lines
    finally:
        for eng in live.values():
            eng.db.dispose()
        tmp.cleanup()
        with psycopg.connect(url, autocommit=True) as c:
            for schema in schemas:
                c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--pg", default=os.environ.get("CAREPATH_TEST_POSTGRES_URL"), required=False)
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--rounds", type=int, default=8)
    args = p.parse_args()
    if not args.pg:
        raise SystemExit("needs --pg URL (or CAREPATH_TEST_POSTGRES_URL)")
    print(f"load {os.getloadavg()[0]:.1f}")
    for k, v in latencies(args.pg).items():
        print(f"{k}: {v}")
    for line in ratios(args.pg, args.n, args.rounds):
        print(line)


if __name__ == "__main__":
    main()
