"""Decisions (engine/dmn.py): what a business rule task costs, and what looking for a newer decision version
adds to every step.

    .venv/bin/python -m bench.dmn_bench [--starts 300] [--gets 5000] [--postgres URL]

Measured on SQLite (a file) and, with --postgres, on PostgreSQL:

* a start that evaluates one decision (tests/fixtures/dmn/drg.dmn, 'points': COLLECT SUM over two rules) and waits
  at a user task, against the same start evaluating the graph of three decisions ('package' requires 'band' and
  'points'; 'band' requires 'points': COLLECT SUM, then UNIQUE, then FIRST): the median time per start, so the
  difference is the cost of the two decisions evaluated first;
* `SpecCache.get` for a version already built: since decisions are versioned, every get asks for the newest
  decision version id (one indexed MAX), so a new version is picked up by the next step; median microseconds.

Results go to bench/results/dmn-*.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from tests.conftest import START

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "dmn"


def _process(decision: str) -> bytes:
    text = (FIXTURES / "uses_decision.bpmn").read_text()
    return (text.replace("DECISION", decision).replace("BINDING", "")
            .replace('"DECIDE"', f'"decide_{decision}"').encode())


def _engine(url: str) -> Engine:
    eng = Engine(url, registry=HandlerRegistry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy(files={"drg.dmn": (FIXTURES / "drg.dmn").read_bytes(),
                      "points.bpmn": _process("points"), "package.bpmn": _process("package")})
    return eng


def _starts(eng: Engine, process_id: str, data: dict[str, Any], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = eng.start(process_id, data=data)
        times.append(time.perf_counter() - t0)
        assert res.status == "waiting", res.incident
    return statistics.median(times) * 1000


def _gets(eng: Engine, n: int) -> float:
    from sqlalchemy import select

    from engine.schema import process_versions

    with eng.db.engine.connect() as conn:
        vid = conn.execute(select(process_versions.c.id).where(process_versions.c.process_id == "decide_points")
                           ).scalar_one()
        eng.specs.get(conn, vid)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            eng.specs.get(conn, vid)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def run(url: str, label: str, starts: int, gets: int) -> dict[str, Any]:
    eng = _engine(url)
    try:
        _starts(eng, "decide_points", {"needs": 3, "lives_alone": True}, 10)  # warm: specs built, caches filled
        _starts(eng, "decide_package", {"needs": 3, "lives_alone": True}, 10)
        one = _starts(eng, "decide_points", {"needs": 3, "lives_alone": True}, starts)
        three = _starts(eng, "decide_package", {"needs": 3, "lives_alone": True}, starts)
        get_us = _gets(eng, gets)
    finally:
        eng.db.dispose()
    return {"database": label, "starts": starts, "start_one_decision_ms": round(one, 2),
            "start_three_decision_graph_ms": round(three, 2), "spec_cache_get_us": round(get_us, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=300)
    parser.add_argument("--gets", type=int, default=5000)
    parser.add_argument("--postgres", help="a PostgreSQL URL (a fresh database or schema)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run(f"sqlite:///{tmp}/bench.db", "sqlite", args.starts, args.gets))
    if args.postgres:
        results.append(run(args.postgres, "postgresql", args.starts, args.gets))
    out = Path(__file__).parent / "results" / f"dmn-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(json.dumps(r))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
