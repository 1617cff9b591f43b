"""Run the benchmarks and print JSON (saved under bench/results/).

    python -m bench.run                       # everything, SQLite and (with --pg) PostgreSQL
    python -m bench.run --only throughput --n 300
    python -m bench.run --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench import engine_bench as eb


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
