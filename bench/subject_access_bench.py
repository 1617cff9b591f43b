"""The subject access export (api/subject_access.py) of a 10-year case (issue 15).

    .venv/bin/python -m bench.subject_access_bench                 # SQLite, 10 years
    .venv/bin/python -m bench.subject_access_bench --years 10 --pg postgresql://postgres@127.0.0.1:5432/test

The case is Peter Clarke's (tests/test_api_cases.py `build_world`: assessed, a personal budget, a support plan
signed off, the review waiting) carried on for ten years on the simulated clock: a case note every month, a
correction of his phone number every quarter (with a reason), and every review done as it opens (each review
ends with its letter and starts the next one's timer). Set-up is not measured. Measured: the whole export as
the data protection officer — check, collect (the case record, the history in words, decisions, notes,
letters, corrections, the access log), render, and record it in the history and the access log — in each
format, the timeline cache empty as after a restart, then again. Wall-clock and this process's CPU time.
Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import timedelta
from typing import Any

from bench.engine_bench import Scratch
from bench.run import cold_then_warm, databases, publish


def build(url: str, years: int) -> tuple[Any, int]:
    """Peter's case with `years` of reviews, monthly notes and quarterly corrections."""
    from api import cases as case_api
    from api.auth import create_user
    from api.evidence import user_named
    from tests.test_api_cases import PASSWORD, build_world

    eng, cases = build_world(url)
    create_user(eng, "dora", PASSWORD, display_name="Dora Vale", roles=["data_protection"], teams=[])
    peter = cases["peter"]
    sam = user_named(eng, "sam")
    phone = "01632 960100"
    for month in range(12 * years):
        eng.advance_clock(timedelta(days=30))
        for t in eng.list_tasks(case_id=peter):
            if t["element_id"] == "review_plan":
                eng.claim(t["id"], "sam")
                eng.complete_task(t["id"], {"needs_changed": False, "plan_working": True}, actor="sam")
        case_api.add_note(eng, sam, peter, "visit" if month % 2 else "phone_call",
                          f"Month {month + 1}: visited Peter; the morning calls are working and he is eating well")
        if month % 3 == 0:
            seen = (eng.get_case(peter)["data"].get("person") or {}).get("phone")
            new = f"01632 960{(month // 3) % 1000:03d}"
            if new != seen:
                case_api.correct_details(eng, sam, peter, {"phone": new}, {"phone": seen},
                                         f"Peter gave a new number on the visit in month {month + 1}")
                phone = new
    assert phone
    return eng, peter


def run(kind: str, years: int, pg_url: str | None, repeats: int) -> dict[str, Any]:
    from pypdf import PdfReader

    from api import subject_access as sar
    from api.evidence import user_named
    from engine import timeline

    db = Scratch(kind, pg_url)
    try:
        t = time.perf_counter()
        eng, case_id = build(db.url, years)
        setup_s = time.perf_counter() - t
        dora = user_named(eng, "dora")
        reason = "Benchmark: SAR 2041/0001"
        out: dict[str, Any] = {"database": kind, "years": years, "setup_s": round(setup_s, 1)}
        for fmt in ("json", "pdf"):
            timeline.clear_cache()
            (_name, content, found), cold_s, cold_cpu_s, warm_s = cold_then_warm(
                lambda fmt=fmt: sar.export(eng, dora, case_id, reason, fmt), repeats)
            out[f"{fmt}_cold_s"] = round(cold_s, 2)
            out[f"{fmt}_cold_cpu_s"] = round(cold_cpu_s, 2)
            out[f"{fmt}_warm_s"] = None if warm_s is None else round(warm_s, 2)
            out[f"{fmt}_bytes"] = len(content)
            if fmt == "pdf":
                out["pdf_pages"] = len(PdfReader(io.BytesIO(content)).pages)
            case = found.document["cases"][0]
            out.update({"events": len(case["history"]), "notes": len(case["notes"]),
                        "letters": len(case["letters"]), "corrections": len(case["corrections"]),
                        "access_log_rows": len(case["access_log"])})
        eng.db.dispose()
        return out
    finally:
        db.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--years", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1, help="exports after the cold one, per format")
    p.add_argument("--pg", help="also on PostgreSQL at this URL")
    args = p.parse_args()
    results = [run(kind, args.years, url, args.repeats) for kind, url in databases(args.pg)]
    publish("subject access export", "subject-access", results)


if __name__ == "__main__":
    main()
