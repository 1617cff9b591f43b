"""The evidence pack (api/evidence.py) of a case with 1,000 events (issue 9; goal: < 10 s).

    .venv/bin/python -m bench.evidence_bench                      # SQLite, 1,000 events
    .venv/bin/python -m bench.evidence_bench --events 1000 --pg postgresql://postgres@127.0.0.1:5432/test

The case is the replay benchmark's (bench/replay_view_bench.py `build`): Joan Barker through the
operating model's own diagrams (front door -> reablement -> needs assessment, personal budget,
support plan) with months of work on the assessment task in between, until it has the events asked
for. Set-up is not measured. Measured: the whole export as the auditor (`build_pack`: access check,
the integrity check — verify and replay —, the path on each diagram, the PDF, the zip, the access
log) with the timeline cache empty as after a restart ("cold"), then twice more ("warm": the path
is cached by the case's chain head; the integrity check still replays, as it must); and each part
on its own. Wall-clock times, and CPU time of this process (`_cpu_s`: what the export costs when
the machine is not shared). Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

from bench.engine_bench import Scratch
from bench.run import cold_then_warm, databases, publish


def run(kind: str, n_events: int, pg_url: str | None, repeats: int) -> dict[str, Any]:
    from pypdf import PdfReader

    from api import case_record as cr
    from api import evidence
    from bench.replay_view_bench import build
    from engine import timeline
    from engine.integrity import check_case

    db = Scratch(kind, pg_url)
    try:
        t = time.perf_counter()
        eng, case_id = build(db.url, n_events)
        setup_s = time.perf_counter() - t
        events = len(eng.history(case_id))
        user = evidence.user_named(eng, "auditor")
        reason = "Benchmark: an ombudsman's request for the whole case"

        timeline.clear_cache()
        pack, cold_s, cold_cpu_s, warm_s = cold_then_warm(lambda: evidence.build_pack(eng, case_id, user, reason),
                                                          repeats)

        # the parts, one at a time
        t = time.perf_counter()
        integrity = check_case(eng, case_id, actor="auditor")
        check_s = time.perf_counter() - t
        timeline.clear_cache()
        rec = cr.load(eng, case_id)
        t = time.perf_counter()
        evidence.diagrams(eng, rec)
        path_cold_s = time.perf_counter() - t
        t = time.perf_counter()
        drawings = evidence.diagrams(eng, rec)
        diagrams_warm_s = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        pdf = evidence.render_pdf(eng, rec, integrity=integrity, exporter={"username": "auditor", "name": "Auditor",
                                                                          "roles": ["auditor"]},
                                  reason=reason, exported_at=eng.now(), heads={"case_chain": None,
                                                                               "system_chain": None})
        pdf_s, pdf_cpu_s = time.perf_counter() - t, time.process_time() - c
        pages = len(PdfReader(io.BytesIO(pdf)).pages)
        eng.db.dispose()
        return {"database": kind, "events": events, "instances": len(rec.instances), "drawings": len(drawings),
                "setup_s": round(setup_s, 1), "pack_cold_s": round(cold_s, 2),
                "pack_cold_cpu_s": round(cold_cpu_s, 2),
                "pack_warm_s": None if warm_s is None else round(warm_s, 2),
                "integrity_check_s": round(check_s, 2), "path_cold_s": round(path_cold_s, 2),
                "diagrams_warm_s": round(diagrams_warm_s, 2), "pdf_render_s": round(pdf_s, 2),
                "pdf_render_cpu_s": round(pdf_cpu_s, 2),
                "pdf_pages": pages, "pdf_bytes": len(pack.files["evidence.pdf"]), "zip_bytes": len(pack.content),
                "integrity_passed": bool(integrity["verified"] and integrity["replay_ok"])}
    finally:
        db.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2, help="warm exports after the cold one")
    p.add_argument("--pg", help="also on PostgreSQL at this URL")
    args = p.parse_args()
    results = [run(kind, args.events, url, args.repeats) for kind, url in databases(args.pg)]
    publish("evidence pack", "evidence", results, goal_s=10)


if __name__ == "__main__":
    main()
