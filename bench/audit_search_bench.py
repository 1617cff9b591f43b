"""The auditors' search and access log (api/audit.py) on 20,000 cases and 500,000 history events (issue 9).

Run with `.venv/bin/python -m bench.audit_search_bench` (SQLite) or add `--pg
postgresql://postgres@127.0.0.1:5432/test` (a throwaway schema). The rows are loaded in bulk (not by
running the engine): each case has a person (name, date of birth, NHS number) and 25 events by 60
staff members, half an hour apart. Each search — by reference, name, created range, staff member,
staff member and event type, events within dates, event type alone (the broadest) — is timed as the
median of 5 calls of `search_cases` (its access log writes included), then the access log view.
`--log-rows N` (default 1,000,000) adds N access-log rows and times the access-log page's list of actions
(`log_actions`): its first call in a process (one `SELECT DISTINCT` over the log) and the next ones (only the
rows added since), against the whole-log `SELECT DISTINCT` every visit used to run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select

from api.audit import ACTIONS, Criteria, LogFilter, log_actions, read_log, search_cases
from api.auth import User, case_access_log
from engine.history import iso
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import cases, events
from handlers.people import fill, fill_search_keys

from .engine_bench import Scratch

START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)
CASES, EVENTS_EACH = 20_000, 25
FIRST = ["Edith", "Arthur", "Mary", "John", "Zoe", "Ahmed", "Priya", "Tom", "Grace", "Lena"]
LAST = ["Clarke", "Smith", "Patel", "Jones", "Brown", "Khan", "Taylor", "Wilson", "Evans", "Hughes"]
TYPES = ["case.created", "task.ready", "task.claimed", "task.completed", "handler.called", "timer.set"]


def load(eng: Engine) -> None:
    rnd = random.Random(1)
    actors = [f"user{i}" for i in range(60)]
    with eng.db.transaction() as conn:
        rows, evs = [], []
        for i in range(1, CASES + 1):
            at = START + timedelta(minutes=30 * i)
            name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}{i % 97}"
            dob = f"19{rnd.randint(20, 80)}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}"
            person = {"name": name, "date_of_birth": dob,
                      "nhs_number": str(rnd.randint(10**9, 10**10 - 1)), "postcode": "NB1 1AA"}
            rows.append({"id": i, "reference": f"CASE-{i:06d}", "title": name, "created_at": at, "updated_at": at,
                         "data": json.dumps({"person": person})})
            for s in range(EVENTS_EACH):
                evs.append({"chain": f"case:{i}", "seq": s + 1, "case_id": i, "instance_id": None,
                            "type": rnd.choice(TYPES), "at": iso(at + timedelta(hours=s)), "actor": rnd.choice(actors),
                            "data": "{}", "step": 1, "prev_hash": "0" * 64, "hash": "0" * 64})
        conn.execute(insert(cases), rows)
        for k in range(0, len(evs), 20_000):
            conn.execute(insert(events), evs[k:k + 20_000])
        fill(conn)  # the people and name-part rows the name search reads (as migrations 0007 and 0008 fill them)
        fill_search_keys(conn)


def action_list(eng: Engine, n: int) -> dict[str, dict[str, float]]:
    """The access-log page's list of actions on a log of `n` more rows: first call, later calls, and the
    whole-log DISTINCT each visit ran before (median of 5 each)."""
    rnd, actors = random.Random(2), [f"user{i}" for i in range(60)]
    with eng.db.transaction() as conn:
        for k in range(0, n, 50_000):
            conn.execute(insert(case_access_log), [
                {"case_id": rnd.randint(1, CASES), "user": rnd.choice(actors), "at": START, "page": "/x",
                 "action": rnd.choice(ACTIONS), "outcome": "allowed"} for _ in range(min(50_000, n - k))])
    out = {}

    def timed(label: str, call: Any, rounds: int = 5) -> None:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1000)
        out[label] = {"median_ms": round(statistics.median(times), 1), "rows": n}
        print(f"  {label} ({n} log rows): median {statistics.median(times):.1f} ms")

    def whole() -> None:
        with eng.db.engine.connect() as conn:
            conn.execute(select(case_access_log.c.action).distinct()).all()

    timed("action list, whole-log DISTINCT (before)", whole)
    timed("action list, first call in a process", lambda: (eng.__dict__.pop("_carepath_log_actions", None),
                                                             log_actions(eng)))
    log_actions(eng)
    timed("action list, later calls", lambda: log_actions(eng))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="PostgreSQL URL (a throwaway schema is made and dropped)")
    ap.add_argument("--log-rows", type=int, default=1_000_000, help="access-log rows for the action list's timing")
    args = ap.parse_args()
    scratch = Scratch("postgres" if args.pg else "sqlite", args.pg)
    try:
        eng = Engine(scratch.url, registry=HandlerRegistry())
        eng.init(simulated_start=START)
        t0 = time.perf_counter()
        load(eng)
        print(f"{scratch.kind}: loaded {CASES} cases, {CASES * EVENTS_EACH} events in {time.perf_counter() - t0:.0f} s")
        auditor = User(1, "auditor", "Auditor", frozenset({"auditor"}), frozenset())
        searches = {
            "reference": Criteria(reference="CASE-012345"),
            "name (two words)": Criteria(name="edith clarke"),
            "name (rare)": Criteria(name="priya khan5"),
            "created in June": Criteria(date_from="2031-06-01", date_to="2031-06-30"),
            "staff member": Criteria(actor="user7"),
            "staff member + event type": Criteria(actor="user7", event_type="task.completed"),
            "events within 5 days by a staff member": Criteria(dates="events", date_from="2031-06-01",
                                                                date_to="2031-06-05", actor="user7"),
            "event type alone, page 50": Criteria(event_type="timer.set"),
        }
        out = {}
        for label, c in searches.items():
            page = 50 if "page 50" in label else 1
            times, total = [], 0
            for _ in range(5):
                t0 = time.perf_counter()
                total = search_cases(eng, auditor, c, page=page)["total"]
                times.append((time.perf_counter() - t0) * 1000)
            out[label] = {"matches": total, "median_ms": round(statistics.median(times), 1)}
            print(f"  {label}: {total} cases, median {statistics.median(times):.0f} ms")
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            total = read_log(eng, auditor, LogFilter(user="auditor"))["total"]
            times.append((time.perf_counter() - t0) * 1000)
        out["access log, one user"] = {"matches": total, "median_ms": round(statistics.median(times), 1)}
        print(f"  access log (one user): {total} entries, median {statistics.median(times):.0f} ms")
        out.update(action_list(eng, args.log_rows))
        print(json.dumps(out))
        eng.db.dispose()
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
