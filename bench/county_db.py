"""A county's year of history, written as rows: the driven cases' histories copied into new cases.

Shared by bench/measures_bench.py and bench/cld_bench.py. Each copy is a new case (its own reference, hash chain
and instance ids) whose every date and instant is moved by a whole number of days; the rows are written as the
engine writes them (not run through the engine, which would take hours), so what reads the history reads exactly
what it would read in a real database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from engine.history import GENESIS, canonical_json, event_hash
from engine.schema import cases, chains, events

Templates = dict[int, list[dict[str, Any]]]  # a template case's id -> its history events in order


def shift(at: str, days: int) -> str:
    moved = datetime.fromisoformat(at) + timedelta(days=days)
    return moved.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def shift_data(value: Any, days: int) -> Any:
    """Every YYYY-MM-DD date (and instant) inside form data moved by `days`."""
    if isinstance(value, dict):
        return {k: shift_data(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_data(v, days) for v in value]
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-" and value[:4].isdigit():
        try:
            if len(value) == 10:
                return (date.fromisoformat(value) + timedelta(days=days)).isoformat()
            return shift(value, days)
        except ValueError:
            return value
    return value


def copy_histories(eng: Any, target_events: int, template_ids: list[int] | None,
                   order: Callable[[Templates], list[int]], days: Callable[[int, int, int], int]) -> int:
    """Copy the template cases' histories (`template_ids`; None: every case) into new cases, a round at a time,
    until the database holds `target_events` events; the number of rounds.

    Each round copies the templates `order(templates)` names, in that order (one may be named more than once);
    the n-th copy of a round moves its template `days(round, n, template_id)` days."""
    with eng.db.engine.connect() as conn:
        ids = conn.execute(select(cases.c.id)).scalars().all() if template_ids is None else template_ids
        templates = {cid: [dict(r._mapping) for r in conn.execute(
            select(events).where(events.c.case_id == cid).order_by(events.c.seq))] for cid in ids}
        template_cases = {r.id: r for r in conn.execute(select(cases))}
        next_case = conn.execute(select(func.max(cases.c.id))).scalar() + 1
        next_instance = conn.execute(select(func.max(events.c.instance_id))).scalar() + 1
        total = conn.execute(select(func.count()).select_from(events)).scalar()
    rounds = 0
    while total < target_events:
        case_rows, chain_rows, event_rows = [], [], []
        for n, template_id in enumerate(order(templates)):
            moved = days(rounds, n, template_id)
            cid, chain = next_case, f"case:{next_case}"
            next_case += 1
            t = template_cases[template_id]
            case_rows.append({"id": cid, "reference": f"CASE-{cid:07d}", "title": t.title, "data": t.data,
                              "created_at": t.created_at + timedelta(days=moved),
                              "updated_at": t.updated_at + timedelta(days=moved)})
            instances: dict[int, int] = {}
            prev = GENESIS
            rows = templates[template_id]
            for r in rows:
                iid = None
                if r["instance_id"] is not None:
                    iid = instances.setdefault(r["instance_id"], next_instance + len(instances))
                data = shift_data(json.loads(r["data"]), moved)
                for key in ("child_instance_id", "parent_instance_id"):
                    if data.get(key) is not None:
                        data[key] = instances.setdefault(data[key], next_instance + len(instances))
                body = canonical_json(data)
                at = shift(r["at"], moved)
                h = event_hash(prev, chain, r["seq"], r["step"], r["type"], at, r["actor"], iid, body)
                event_rows.append({"chain": chain, "seq": r["seq"], "step": r["step"], "case_id": cid,
                                   "instance_id": iid, "type": r["type"], "at": at, "actor": r["actor"],
                                   "data": body, "prev_hash": prev, "hash": h})
                prev = h
            next_instance += len(instances)
            chain_rows.append({"chain": chain, "seq": rows[-1]["seq"], "hash": prev})
        with eng.db.transaction() as conn:
            conn.execute(insert(cases), case_rows)
            conn.execute(insert(chains), chain_rows)
            conn.execute(insert(events), event_rows)
        total += len(event_rows)
        rounds += 1
    return rounds
