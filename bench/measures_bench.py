"""The measures page for a county year (issue 12): every measure, its chart of twelve months, on ~1 M events.

    .venv/bin/python -m bench.measures_bench                       # SQLite
    .venv/bin/python -m bench.measures_bench --pg postgresql://postgres@127.0.0.1:5432/test

Set-up (not measured): the seven cases of tests/test_measures.py's population are driven through the real
diagrams, handlers and forms on the simulated clock (a signposted contact, reablement from the front door,
two people assessed into long-term support, a safeguarding enquiry, a hospital discharge into reablement
with its 91-day follow-up). Their histories (~450 events) are then copied into new cases, each copy moved
by a whole number of days across a year, with its own chain, hash chaining and instance ids, until the
database holds --events events (1 M by default, about 26,000 requests: a county's year). The copies are
written as rows, not run through the engine (which would take hours): the measures read exactly the rows
the engine writes.

Measured, each the best of --repeat runs:
* ``load``: `load_population` from a cold start (two queries, every history parsed, CLD rows derived);
* ``page``: the first measures page once the histories are read — every case's measure events extracted,
  every measure for the year and its chart of 12 months (`api.measures._compute_page`); ``cold_page`` is
  the two together; ``page_cached``: the same page when nothing was written since (as the page reuses it);
* ``page_after_one_new_event``: the page after one case record changed (that case's history read again, every
  measure's events extracted again);
* ``drill_down``: one measure's cases for the year.
Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bench.engine_bench import START, Scratch, dumps
from bench.run import machine
from engine.history import GENESIS, canonical_json, event_hash
from engine.schema import cases, chains, events

ROOT = Path(__file__).resolve().parent.parent


def _shift(at: str, days: int) -> str:
    moved = datetime.fromisoformat(at) + timedelta(days=days)
    return moved.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _shift_data(value: Any, days: int) -> Any:
    """Every YYYY-MM-DD date (and instant) inside form data moved by `days`."""
    if isinstance(value, dict):
        return {k: _shift_data(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift_data(v, days) for v in value]
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-" and value[:4].isdigit():
        try:
            if len(value) == 10:
                return (date.fromisoformat(value) + timedelta(days=days)).isoformat()
            return _shift(value, days)
        except ValueError:
            return value
    return value


def fill(eng: Any, target_events: int) -> dict[str, int]:
    """Copy the driven cases' histories into new cases, spread over a year, until `target_events`."""
    with eng.db.engine.connect() as conn:
        templates = {cid: [dict(r._mapping) for r in conn.execute(
            select(events).where(events.c.case_id == cid).order_by(events.c.seq))]
            for cid in conn.execute(select(cases.c.id)).scalars()}
        template_cases = {r.id: r for r in conn.execute(select(cases))}
        next_case = conn.execute(select(func.max(cases.c.id))).scalar() + 1
        next_instance = conn.execute(select(func.max(events.c.instance_id))).scalar() + 1
        total = conn.execute(select(func.count()).select_from(events)).scalar()
    copies = 0
    while total < target_events:
        case_rows, chain_rows, event_rows = [], [], []
        for template_id, rows in templates.items():
            days = (copies * 7 + template_id * 3) % 330 - 60  # spread over the year (some starting the year before)
            cid, chain = next_case, f"case:{next_case}"
            next_case += 1
            t = template_cases[template_id]
            case_rows.append({"id": cid, "reference": f"CASE-{cid:07d}", "title": t.title, "data": t.data,
                              "created_at": t.created_at + timedelta(days=days),
                              "updated_at": t.updated_at + timedelta(days=days)})
            instances: dict[int, int] = {}
            prev = GENESIS
            for r in rows:
                iid = None
                if r["instance_id"] is not None:
                    iid = instances.setdefault(r["instance_id"], next_instance + len(instances))
                data = _shift_data(json.loads(r["data"]), days)
                for key in ("child_instance_id", "parent_instance_id"):
                    if data.get(key) is not None:
                        data[key] = instances.setdefault(data[key], next_instance + len(instances))
                text = canonical_json(data)
                at = _shift(r["at"], days)
                h = event_hash(prev, chain, r["seq"], r["step"], r["type"], at, r["actor"], iid, text)
                event_rows.append({"chain": chain, "seq": r["seq"], "step": r["step"], "case_id": cid,
                                   "instance_id": iid, "type": r["type"], "at": at, "actor": r["actor"],
                                   "data": text, "prev_hash": prev, "hash": h})
                prev = h
            next_instance += len(instances)
            chain_rows.append({"chain": chain, "seq": rows[-1]["seq"], "hash": prev})
        with eng.db.transaction() as conn:
            conn.execute(insert(cases), case_rows)
            conn.execute(insert(chains), chain_rows)
            conn.execute(insert(events), event_rows)
        total += len(event_rows)
        copies += 1
    with eng.db.engine.connect() as conn:
        return {"cases": conn.execute(select(func.count()).select_from(cases)).scalar(),
                "events": conn.execute(select(func.count()).select_from(events)).scalar(), "copies": copies}


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def run(kind: str, pg_url: str | None, target: int, repeat: int) -> dict[str, Any]:
    from api import measures as page
    from engine.forms import FormLibrary
    from engine.registry import load_registry
    from engine.runtime import Engine
    from handlers import measures as m
    from tests.test_cld import FILES
    from tests.test_measures import drive_county

    db = Scratch(kind, pg_url)
    try:
        eng = Engine(db.url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
        eng.init(simulated_start=START.replace(year=2031, month=3, day=3))
        eng.deploy(FILES)
        drive_county(eng)
        t = time.perf_counter()
        size = fill(eng, target)
        setup_s = time.perf_counter() - t
        year = {"start": date(2031, 4, 1), "end": date(2032, 3, 31), "team": None}

        def cold() -> Any:
            m._LOADED.clear()
            return m.load_population(eng)

        load_s, pop = _best(cold, repeat)
        rss_mb = _rss_mb()  # what the process holds once the histories are read (the population kept)

        def fresh_page() -> Any:  # the first page after the histories are read: every case's events extracted
            pop.cache.clear()
            for view in pop.views.values():
                view.items.clear()
            return page._compute_page(eng, year, _Reader())

        page_s, result = _best(fresh_page, repeat)
        cached_s, _ = _best(lambda: page._compute_page(eng, year, _Reader()), repeat)

        def one_new_event() -> Any:  # a case record changed: one case is read again, the measures worked out again
            eng.update_case_record(some_case, {"bench_touch": time.perf_counter()}, actor="bench", reason="bench")
            return page._compute_page(eng, year, _Reader())

        some_case = next(iter(pop.cases))
        incremental_s, _ = _best(one_new_event, repeat)
        drill_s, (_r, items) = _best(lambda: m.measure_cases(pop, "new_requests", year["start"], year["end"]), repeat)
        requests = sum(p.count for p in next(x["r"] for x in result["results"] if x["r"].key == "new_requests").parts)
        eng.db.dispose()
        return {"database": kind, **size, "setup_s": round(setup_s, 1), "requests_in_year": requests,
                "load_population_s": round(load_s, 2),
                "resident_memory_after_load_mb": rss_mb, "page_after_load_s": round(page_s, 2),
                "page_cached_s": round(cached_s, 2),
                "page_after_one_new_event_s": round(incremental_s, 2), "drill_down_new_requests_s": round(drill_s, 3),
                "drill_down_items": len(items), "cold_page_s": round(load_s + page_s, 2)}
    finally:
        db.close()


def _rss_mb() -> int | None:
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) // 1024


class _Reader:
    """A performance officer (named on no restricted case) for the page's restriction check."""

    username = "performance"
    roles = frozenset({"performance"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", help="PostgreSQL URL (a throwaway schema is made and dropped)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-sqlite", action="store_true")
    args = ap.parse_args()
    results = []
    if not args.skip_sqlite:
        results.append(run("sqlite", None, args.events, args.repeat))
        print(dumps(results[-1]), flush=True)
    if args.pg:
        results.append(run("postgres", args.pg, args.events, args.repeat))
        print(dumps(results[-1]), flush=True)
    report = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "command": "python -m bench.measures_bench " + " ".join(f"--events {args.events}".split()),
              "results": results}
    dest = ROOT / "bench" / "results" / f"measures-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    dest.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
