"""Retention: which closed cases have been kept as long as the council's rules say, and erasing them on approval.

The rules are configuration (processes/config/retention.json, the council's records manager's to set): each has an
id, a name, the cases it applies to ("*" or a list of process ids any of which ran on the case) and a period in
whole years after the case's closure. A case falls under every rule that applies; the longest period wins, so a
narrower rule can only keep a record longer.

`list_due` (a background job, daily) adds to `retention_reviews` every closed case whose period has ended on the
engine's clock; an administrator approves each erasure on /admin/retention (api/retention.py) or holds it (a legal
hold, a complaint, a request from the person): a held case is not listed again until released. `erase` erases the
case through engine/erasure.py and, in the same transaction, what this application's own tables hold about the
person: the people search rows, case notes' text and access log reasons (the one change their triggers allow,
migration 0021), letters' PDFs, measures' cached facts. docs/security.md, "Retention and erasure".
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from engine import erasure, lifecycle
from engine.errors import NotFoundError, StateError, ValidationError
from engine.history import SYSTEM_CHAIN, Event, append
from engine.registry import HandlerRegistry
from engine.schema import (
    break_glass,
    break_glass_reviews,
    case_access_log,
    case_notes,
    cases,
    instances,
    letter_sends,
    measure_facts,
    people,
    person_name_keys,
    person_name_slips,
    retention_reviews,
)

from .config_files import cached, read_json
from .people import check_name

CONFIG = Path(__file__).resolve().parent.parent / "processes" / "config" / "retention.json"
JOB_SECONDS = 24 * 3600.0
MAX_YEARS = 150


class RetentionConfigError(ValueError):
    """The retention configuration cannot be used; the message names the file, the rule and the field."""


def load_rules(path: Path = CONFIG) -> list[dict[str, Any]]:
    """The rules, checked: a clear error naming what is wrong and where (nothing is listed with bad rules)."""
    return cached(path, _load)


def _load(path: Path) -> list[dict[str, Any]]:
    where = str(path)
    doc = read_json(path, "the retention rules file", RetentionConfigError)
    rules = doc.get("rules") if isinstance(doc, dict) else None
    if not isinstance(rules, list) or not rules:
        raise RetentionConfigError(f"{where}: needs \"rules\", a list of at least one rule")
    seen: set[str] = set()
    out = []
    for i, rule in enumerate(rules, 1):
        at = f"{where}: rule {i}"
        if not isinstance(rule, dict):
            raise RetentionConfigError(f"{at} must be an object")
        rid = rule.get("id")
        if not isinstance(rid, str) or not rid.strip() or len(rid) > 64:
            raise RetentionConfigError(f"{at}: \"id\" must be a name of 1 to 64 characters")
        at = f"{where}: rule {i} ({rid})"
        if rid in seen:
            raise RetentionConfigError(f"{at}: the id is used by an earlier rule")
        seen.add(rid)
        if not isinstance(rule.get("name"), str) or not rule["name"].strip():
            raise RetentionConfigError(f"{at}: \"name\" must say what records it covers")
        years = rule.get("years_after_closure")
        if isinstance(years, bool) or not isinstance(years, int) or not 1 <= years <= MAX_YEARS:
            raise RetentionConfigError(f"{at}: \"years_after_closure\" must be a whole number of years from 1 to "
                                       f"{MAX_YEARS}, not {years!r}")
        applies = rule.get("applies_to")
        if applies != "*" and (not isinstance(applies, list) or not applies
                               or not all(isinstance(p, str) and p for p in applies)):
            raise RetentionConfigError(f"{at}: \"applies_to\" must be \"*\" or a list of process ids")
        out.append({"id": rid, "name": rule["name"].strip(), "applies_to": applies, "years": years})
    return out


def add_years(day: date, years: int) -> date:
    """The same day `years` later; 29 February becomes 1 March (never a day early)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def rule_for(rules: list[dict[str, Any]], processes: set[str]) -> dict[str, Any] | None:
    """The applicable rule with the longest period (None: no rule applies — the case is kept)."""
    fits = [r for r in rules if r["applies_to"] == "*" or processes & set(r["applies_to"])]
    return max(fits, key=lambda r: r["years"], default=None)


def _closed_on(closure: dict[str, Any]) -> date:
    return datetime.fromisoformat(closure["at"]).date()


def list_due(engine: Any, *, path: Path = CONFIG) -> list[int]:
    """Add every closed case whose retention period has ended (engine clock) to the review list; returns the
    case ids added. Cases already listed, held or erased are left as they are."""
    rules = load_rules(path)
    today = engine.now().date()
    added = []
    with engine.db.engine.connect() as conn:
        listed = set(conn.execute(select(retention_reviews.c.case_id)).scalars())
        closed_q = select(cases.c.id, cases.c.data).where(cases.c.data.like(f'%"{lifecycle.CLOSED_KEY}"%'))
        closed = conn.execute(closed_q.order_by(cases.c.id)).all()
        ran: dict[int, set[str]] = {}  # the processes run on each closed case, in one query
        for cid, pid in conn.execute(select(instances.c.case_id, instances.c.process_id).where(
                instances.c.case_id.in_(closed_q.with_only_columns(cases.c.id).scalar_subquery())).distinct()):
            ran.setdefault(cid, set()).add(pid)
        found = []
        for row in closed:
            if row.id in listed:
                continue
            closure = lifecycle.closure(json.loads(row.data))
            if not closure or not closure.get("at"):
                continue
            rule = rule_for(rules, ran.get(row.id, set()))
            if rule is None:
                continue
            due_on = add_years(_closed_on(closure), rule["years"])
            if due_on <= today:
                found.append((row.id, rule, closure["at"], due_on))
    if not found:
        return []
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        for cid, rule, closed_at, due_on in found:
            if conn.execute(select(retention_reviews.c.case_id).where(retention_reviews.c.case_id == cid)).first():
                continue  # another process listed it meanwhile
            conn.execute(insert(retention_reviews).values(case_id=cid, rule=rule["id"], closed_at=closed_at,
                                                          due_on=due_on.isoformat(), status="due", listed_at=now))
            added.append(cid)
        if added:
            append(conn, SYSTEM_CHAIN, None, now, [Event("retention.listed", {"case_ids": added})],
                   lock=engine.db.is_postgres)
    return added


def reviews(engine: Any, *, status: str | None = None) -> list[dict[str, Any]]:
    """The review list (with each case's reference and rule name), oldest due first."""
    names = {r["id"]: r["name"] for r in load_rules()}
    q = (select(retention_reviews, cases.c.reference).join(cases, cases.c.id == retention_reviews.c.case_id)
         .order_by(retention_reviews.c.due_on, retention_reviews.c.case_id))
    if status:
        q = q.where(retention_reviews.c.status == status)
    with engine.db.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [{**dict(r._mapping), "rule_name": names.get(r.rule, r.rule)} for r in rows]


def review(engine: Any, case_id: int) -> dict[str, Any]:
    found = [r for r in reviews(engine) if r["case_id"] == case_id]
    if not found:
        raise NotFoundError(f"case {case_id} is not on the retention list", case=case_id)
    return found[0]


def _claim(conn: Connection, engine: Any, case_id: int, want: str) -> Any:
    row = conn.execute(engine.db.for_update(select(retention_reviews).where(
        retention_reviews.c.case_id == case_id))).first()
    if row is None:
        raise NotFoundError(f"case {case_id} is not on the retention list", case=case_id)
    if row.status != want:
        raise StateError(f"case {case_id} is {row.status} on the retention list, not {want}: nothing was changed",
                         case=case_id)
    return row


def hold(engine: Any, case_id: int, *, actor: str, reason: str) -> None:
    """Keep a due case (legal hold, complaint, the person's request): not erased until released."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("a reason is required", errors=[{"field": "reason", "message": "Say why it is held"}])
    problem = check_name(reason, "Reason", noun="reason")  # what keeps a record past its period: readable
    if problem is None and not any(c.isalnum() for c in reason):
        problem = "Say why it is held, in words"
    if problem:
        raise ValidationError(problem, errors=[{"field": "reason", "message": problem}])
    with engine.db.transaction() as conn:
        _claim(conn, engine, case_id, "due")
        now = engine.now(conn)
        conn.execute(update(retention_reviews).where(retention_reviews.c.case_id == case_id).values(
            status="held", decided_by=actor, decided_at=now, note=reason[:500]))
        append(conn, SYSTEM_CHAIN, None, now, [Event("retention.held", {"case_id": case_id, "reason": reason[:500]},
                                                     actor=actor)], lock=engine.db.is_postgres)


def release(engine: Any, case_id: int, *, actor: str) -> None:
    """End a hold: the case is due again."""
    with engine.db.transaction() as conn:
        _claim(conn, engine, case_id, "held")
        now = engine.now(conn)
        conn.execute(update(retention_reviews).where(retention_reviews.c.case_id == case_id).values(
            status="due", decided_by=actor, decided_at=now, note=None))
        append(conn, SYSTEM_CHAIN, None, now, [Event("retention.released", {"case_id": case_id}, actor=actor)],
               lock=engine.db.is_postgres)


def _erase_own(conn: Connection, case_id: int) -> None:
    """What this application's tables hold about the person, in the erasure's transaction."""
    for table in (person_name_slips, person_name_keys, people, measure_facts):
        conn.execute(delete(table).where(table.c.case_id == case_id))
    conn.execute(update(case_notes).where(case_notes.c.case_id == case_id).values(text=erasure.TEXT_MARK))
    conn.execute(update(case_access_log).where(case_access_log.c.case_id == case_id,
                                               case_access_log.c.reason.is_not(None))
                 .values(reason=erasure.TEXT_MARK))
    conn.execute(update(letter_sends).where(letter_sends.c.case_id == case_id).values(pdf=None))
    # a break-glass use's reason and its review's note are free text about the person (api/break_glass.py)
    conn.execute(update(break_glass).where(break_glass.c.case_id == case_id).values(reason=erasure.TEXT_MARK))
    conn.execute(update(break_glass_reviews).where(break_glass_reviews.c.grant_id.in_(
        select(break_glass.c.id).where(break_glass.c.case_id == case_id))).values(note=erasure.TEXT_MARK))


def erase(engine: Any, case_id: int, *, actor: str, path: Path = CONFIG) -> dict[str, Any]:
    """Erase a due case on an administrator's approval. Refused unless the case is on the list as due and its
    rule's period has ended on the engine's clock today (checked again: the rules may have changed)."""
    rules = {r["id"]: r for r in load_rules(path)}
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(retention_reviews).where(retention_reviews.c.case_id == case_id)).first()
        data = conn.execute(select(cases.c.data).where(cases.c.id == case_id)).scalar()
        procs = set(conn.execute(select(instances.c.process_id).where(instances.c.case_id == case_id)
                                 .distinct()).scalars())
    if row is None or data is None:
        raise NotFoundError(f"case {case_id} is not on the retention list", case=case_id)
    if row.status != "due":
        raise StateError(f"case {case_id} is {row.status} on the retention list: only a due case can be erased",
                         case=case_id)
    closure = lifecycle.closure(json.loads(data))
    rule = rule_for(list(rules.values()), procs)
    if not closure or rule is None:
        raise StateError(f"case {case_id} is no longer closed or no rule applies to it: it cannot be erased",
                         case=case_id)
    due_on = add_years(_closed_on(closure), rule["years"])
    if engine.now().date() < due_on:
        raise StateError(f"case {case_id}'s retention period ({rule['name']}, {rule['years']} years after closure) "
                         f"ends on {due_on.isoformat()}: it cannot be erased before then", case=case_id)
    def also(conn: Connection, cid: int) -> None:
        _claim(conn, engine, cid, "due")  # held meanwhile: the whole erasure rolls back
        _erase_own(conn, cid)
        conn.execute(update(retention_reviews).where(retention_reviews.c.case_id == cid).values(
            status="erased", rule=rule["id"], decided_by=actor, decided_at=engine.now(conn), note=None))

    return erasure.erase_case(engine, case_id, actor=actor, rule=rule["id"], also=also)


def register(registry: HandlerRegistry) -> None:
    registry.every("retention-due", list_due, JOB_SECONDS)
