"""Run the benchmarks and print JSON (saved under bench/results/).

    python -m bench.run                       # everything, SQLite and (with --pg) PostgreSQL
    python -m bench.run --only throughput --n 300
    python -m bench.run --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from bench import engine_bench as eb

T = TypeVar("T")
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except Exception:
        pass
    pg = ""
    try:
        pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    except Exception:
        pass
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu,
            "cores": str(os.cpu_count()), "postgres_client": pg}


def databases(pg_url: str | None) -> Iterator[tuple[str, str | None]]:
    """The databases a benchmark runs on: SQLite, then PostgreSQL at `pg_url` when one is given."""
    yield "sqlite", None
    if pg_url:
        yield "postgres", pg_url


def cold_then_warm(work: Callable[[], T], repeats: int) -> tuple[T, float, float, float | None]:
    """`work()` once (cold: the caller has emptied its caches), timed by wall clock and by this process's CPU
    time, then `repeats` times more: (the first result, cold seconds, cold CPU seconds, the median of the
    warm runs' seconds or None)."""
    t, c = time.perf_counter(), time.process_time()
    result = work()
    cold_s, cold_cpu_s = time.perf_counter() - t, time.process_time() - c
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        work()
        warm.append(time.perf_counter() - t)
    return result, cold_s, cold_cpu_s, statistics.median(warm) if warm else None


def publish(benchmark: str, prefix: str, results: list[dict[str, Any]], **extra: Any) -> Path:
    """Print a benchmark's results with the machine and its load average, and save them as
    bench/results/<prefix>-<UTC time>.json."""
    out = {"benchmark": benchmark, **extra, "machine": machine(),
           "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "results": results}
    text = json.dumps(out, indent=2)
    print(text)
    dest = RESULTS / f"{prefix}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    dest.write_text(text + "\n")
    print(f"saved to {dest.relative_to(RESULTS.parent.parent)}")
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", choices=["throughput", "timers", "storage"], action="append")
    p.add_argument("--n", type=int, default=300, help="instances per throughput run")
    p.add_argument("--timers", type=int, default=10_000)
    p.add_argument("--years", type=int, default=10)
    p.add_argument("--pg", default=os.environ.get("CAREPATH_TEST_POSTGRES_URL"))
    args = p.parse_args()
    only = set(args.only or ["throughput", "timers", "storage"])
    result: dict = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                    "command": " ".join(["python -m bench.run", *sys.argv[1:]])}
    if "throughput" in only:
        result["throughput"] = eb.throughput(args.n, args.pg)
        print(eb.dumps(result["throughput"]), flush=True)
    if "timers" in only:
        result["timers"] = [eb.timers_bench("sqlite", args.timers, None, 1)]
        print(eb.dumps(result["timers"][-1]), flush=True)
        if args.pg:
            for workers in (1, 2):
                result["timers"].append(eb.timers_bench("postgres", args.timers, args.pg, workers))
                print(eb.dumps(result["timers"][-1]), flush=True)
    if "storage" in only:
        result["storage"] = [eb.storage_bench("sqlite", args.years, None)]
        if args.pg:
            result["storage"].append(eb.storage_bench("postgres", args.years, args.pg))
        for s in result["storage"]:
            print(eb.dumps({k: v for k, v in s.items() if k != "per_year"}), flush=True)
    out = Path(__file__).parent / "results" / f"engine-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    out.write_text(eb.dumps(result))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
