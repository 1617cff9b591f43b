"""What-if comparison benchmark (issue 16 item 3 and 5): what the draft review page's "Simulate this change" runs
(carepath.simulate_compare.compare, default 14 days and 3 seeds), timed with the runs shared among worker processes
and one after the other.

    .venv/bin/python bench/simulate_compare_bench.py                       # 14 days, 3 seeds, 2 workers and 1
    .venv/bin/python bench/simulate_compare_bench.py --days 28 --workers 2  # only the given worker counts
    .venv/bin/python bench/simulate_compare_bench.py --days 365 --seeds 2 --workers 2 --reuse
        # runs kept for reuse: the draft compared (every run made and kept), then a second draft of the same process
        # (the live runs taken as kept, only the draft's made)
    .venv/bin/python bench/simulate_compare_bench.py --days 365 --seeds 2 --workers 2 --reuse --first
        # as the review page asks: with the first results (the comparison of the seeds done so far) given while the
        # other runs go on; prints when each came (`first_s`)
    .venv/bin/python bench/simulate_compare_bench.py --days 365 --seeds 2 --workers 2 --ahead --first
        # as a server does after a deployment (carepath/simulate_ahead.py): the live runs of the period and seeds made
        # ahead at the lowest priority (`ahead_s`), then the draft compared as the review page asks, taking them

A scratch SQLite database gets every file of processes/ deployed and one draft of safeguarding (its triage deadline
an hour after the concern instead of the next working day, as tests/test_simulate_compare.py). Prints, for each
worker count, the wall time, this process's and its children's CPU time, the peak memory of the largest process,
the load average, and that every worker count gave the same comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carepath import forked, simulate, simulate_compare  # noqa: E402
from carepath.simulate_reuse import KeptRuns  # noqa: E402
from engine import definitions, drafts  # noqa: E402
from engine.forms import FormLibrary  # noqa: E402
from engine.registry import load_registry  # noqa: E402
from engine.runtime import Engine  # noqa: E402
from engine.schema import simulation_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_OF_DAY = b'<bpmn:timeDate xsi:type="bpmn:tFormalExpression">triage_due["due"]</bpmn:timeDate>'
AN_HOUR = b'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT1H"</bpmn:timeDuration>'


TWO_HOURS = b'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT2H"</bpmn:timeDuration>'


def second_draft(eng: Engine) -> dict:
    """Another draft of safeguarding: its triage deadline two hours after the concern."""
    with eng.db.engine.connect() as conn:
        files = drafts.version_files(conn, definitions.latest_version(conn, "safeguarding"))
    text = {k: v.decode() for k, v in files.items()}
    text["safeguarding.bpmn"] = files["safeguarding.bpmn"].replace(DEADLINE_OF_DAY, TWO_HOURS).decode()
    d = drafts.create_draft(eng, process_id="safeguarding", files=text, base_version=None, actor="bench")
    return drafts.get_draft(eng, d["id"])


def live_with_draft(path: Path) -> tuple[Engine, dict]:
    eng = Engine(f"sqlite:///{path}", registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    eng.deploy([ROOT / "processes"], note="bench")
    with eng.db.engine.connect() as conn:
        files = drafts.version_files(conn, definitions.latest_version(conn, "safeguarding"))
    text = {k: v.decode() for k, v in files.items()}
    text["safeguarding.bpmn"] = files["safeguarding.bpmn"].replace(DEADLINE_OF_DAY, AN_HOUR).decode()
    d = drafts.create_draft(eng, process_id="safeguarding", files=text, base_version=None, actor="bench")
    return eng, drafts.get_draft(eng, d["id"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="*", default=[2, 1])
    ap.add_argument("--out", metavar="FILE", help="write the figures as JSON here")
    ap.add_argument("--reuse", action="store_true",
                    help="keep runs for reuse (carepath/simulate_reuse.py): for each worker count, the draft with "
                    "nothing kept, then a second draft taking the live runs kept by the first")
    ap.add_argument("--ahead", action="store_true",
                    help="first make the live runs ahead, as a server does after a deployment, then compare the draft "
                    "taking them")
    ap.add_argument("--first", action="store_true",
                    help="ask for the first results, as the review page does, and time them")
    args = ap.parse_args()
    scenario = simulate.load_scenario()
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        eng, draft = live_with_draft(Path(tmp) / "live.db")
        try:
            other = second_draft(eng) if args.reuse else None
            asked = [(n, d, label) for n in args.workers
                     for d, label in ([(draft, "first draft"), (other, "second draft")] if args.reuse
                                      else [(draft, "draft")])]
            if args.ahead:
                from carepath.simulate_ahead import Ahead

                t0 = time.perf_counter()
                ahead = Ahead(eng, simulate.DEFAULT_SCENARIO, [(args.days, args.seeds)])
                made = ahead.pass_once()
                row = {"ahead_runs": made, "ahead_s": round(time.perf_counter() - t0, 1), "made": ahead.made,
                       "load_average": round(os.getloadavg()[0], 2)}
                rows.append(row)
                print(json.dumps(row))
                asked = [(n, draft, "draft, live runs made ahead") for n in args.workers]
            for n, this, label in asked:
                kept = None
                if args.reuse or args.ahead:
                    if label == "first draft":
                        with eng.db.transaction() as conn:
                            conn.execute(simulation_outputs.delete())
                    kept = KeptRuns(eng)
                c0 = time.process_time()
                ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                firsts: list[dict] = []
                first = (lambda o, firsts=firsts, t0=t0: firsts.append(
                    {"seeds_done": o["first_results"]["seeds_done"], "at_s": round(time.perf_counter() - t0, 1)})
                    ) if args.first else None
                out = simulate_compare.compare(scenario, eng, this, seeds=list(range(1, args.seeds + 1)),
                                               days=args.days, workers=n, kept=kept, first=first)
                wall = time.perf_counter() - t0
                # the workers' time reaches this process's children's through the forkserver, once it has ended (the
                # next comparison starts a new one, as a new server's first would: its warm-up is in the next figure)
                forked.stop()
                ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = time.process_time() - c0 + (ch1.ru_utime - ch0.ru_utime) + (ch1.ru_stime - ch0.ru_stime)
                if label == "first draft" or label == "draft":
                    outputs[n] = json.dumps({k: v for k, v in out.items() if k != "reused"}, sort_keys=True,
                                            default=str)
                row = {"workers": n, "draft": label, "reused": out.get("reused"),
                       "days": args.days, "seeds": args.seeds, "runs": 2 * args.seeds,
                       "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "marked": out["marked"],
                       **({"first_s": firsts} if args.first else {}),
                       "contacts": out["contacts"]["live"],
                       "peak_mb": round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024),
                       "load_average": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
                rows.append(row)
                print(json.dumps(row))
        finally:
            eng.db.dispose()
    same = len(set(outputs.values())) == 1 if len(outputs) > 1 else None
    if same is not None:
        print(f"every worker count gave the same comparison: {same}")
    if args.out:
        Path(args.out).write_text(json.dumps({"runs": rows, "same_output": same}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
