"""Erasing a closed case when its retention period has ended, keeping the history's integrity.

Generic: the engine does not decide what is personal in a case. Everything the case holds that could describe
the person is erased — every event's data in the case's chain, the case record's details and title, its process
instances' saved data and state, open tasks and timers, incident inputs, documents' titles and bodies, messages
delivered to it — and the caller (handlers/retention.py) erases what its own tables hold in the same transaction
(`also`). What stays is the shape of the history: which events happened, when, by which member of staff, in which
process instance, and their hashes, so the chain still verifies (engine/history.py) and every signed heads file
(engine/anchoring.py) still matches.

The chain is verified in full first (an altered history is not erased: its evidence would go with it); the events'
data is overwritten with `history.ERASED_DATA` — the one change the database's triggers allow (migration 0021) —
and a `case.erased` event records the rule, who approved it, how many events were erased and the digest of what
those rows still hold. A `retention.case_erased` event in the system chain says the same without the digest.

On SQLite the transaction runs with `secure_delete` on and the write-ahead log is truncated afterwards, so the old
text is not left in free pages of the database file; PostgreSQL keeps the old row versions until VACUUM
(docs/security.md, "Retention and erasure").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, select, update

from . import history, lifecycle
from .errors import NotFoundError, StateError
from .history import Event, case_chain
from .schema import cases, documents, events, incidents, instances, messages, tasks, timers

ERASED_KEY = "case_erased"
ERASED_TITLE = "Erased case"
TEXT_MARK = "[erased]"


def erased(case_data: dict[str, Any]) -> dict[str, Any] | None:
    """The erasure ({at, rule, by, events_erased}) of an erased case's record, else None."""
    value = case_data.get(ERASED_KEY)
    return value if isinstance(value, dict) else None


def erase_case(engine: Any, case_id: int, *, actor: str, rule: str, note: str = "",
               also: Callable[[Connection, int], None] | None = None) -> dict[str, Any]:
    """Erase a closed case's data (see the module's docstring); one transaction. Returns {case_id, rule,
    events_erased, at, by}. Refuses an open or already erased case, and a case whose history does not verify."""
    db = engine.db
    with db.transaction() as conn:
        db.require_initialised(conn)
        if not db.is_postgres:  # overwritten text is zeroed in the file, not left in free space
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        row = conn.execute(db.for_update(select(cases.c.id, cases.c.data).where(cases.c.id == case_id))).first()
        if row is None:
            raise NotFoundError(f"no case {case_id}", case=case_id)
        data = json.loads(row.data)
        if erased(data):
            raise StateError(f"case {case_id} was already erased", case=case_id)
        closure = lifecycle.closure(data)
        if not closure:
            raise StateError(f"case {case_id} is open: only a closed case can be erased", case=case_id)
        chain = case_chain(case_id)
        _, findings = history.verify(conn, chain)
        if findings:
            raise StateError(f"case {case_id}'s history does not verify ({findings[0]}); nothing was erased — "
                             "investigate the alteration first", case=case_id)
        digest, count = hashlib.sha256(), 0
        for ev in conn.execute(select(events.c.seq, events.c.step, events.c.type, events.c.at, events.c.actor,
                                      events.c.instance_id, events.c.prev_hash, events.c.hash)
                               .where(events.c.chain == chain).order_by(events.c.seq)):
            digest.update(history.erased_line(ev.seq, ev.step, ev.type, ev.at, ev.actor, ev.instance_id,
                                              ev.prev_hash, ev.hash))
            count += 1
        conn.execute(update(events).where(events.c.chain == chain).values(data=history.ERASED_DATA))
        now = engine.now(conn)
        at = history.iso(now)
        record = {"at": at, "rule": rule, "by": actor, "events_erased": count, "closed_at": closure.get("at")}
        conn.execute(update(cases).where(cases.c.id == case_id).values(
            title=ERASED_TITLE, data=json.dumps({ERASED_KEY: record}, sort_keys=True), updated_at=now))
        conn.execute(update(instances).where(instances.c.case_id == case_id).values(state=None, data=None))
        conn.execute(delete(tasks).where(tasks.c.case_id == case_id))
        conn.execute(delete(timers).where(timers.c.case_id == case_id))
        conn.execute(update(incidents).where(incidents.c.case_id == case_id).values(message=TEXT_MARK, inputs="{}"))
        conn.execute(update(documents).where(documents.c.case_id == case_id).values(title=TEXT_MARK, body=""))
        conn.execute(update(messages).where(messages.c.case_id == case_id).values(correlation="{}", data="{}"))
        if also is not None:
            also(conn, case_id)
        history.append_many(conn, now, [
            (chain, case_id, [Event(history.ERASED_TYPE, {
                "rule": rule, "approved_by": actor, "note": note, "closed_at": closure.get("at"),
                "events_erased": count, "erased_digest": digest.hexdigest()}, actor=actor)]),
            (history.SYSTEM_CHAIN, None, [Event("retention.case_erased", {
                "case_id": case_id, "rule": rule, "events_erased": count}, actor=actor)]),
        ], lock=db.is_postgres)
        if not db.is_postgres:
            conn.exec_driver_sql("PRAGMA secure_delete=OFF")
    if not db.is_postgres:  # the old pages' copies in the write-ahead log go too (best effort: readers may hold it)
        db.truncate_log()
    return {"case_id": case_id, "rule": rule, "events_erased": count, "at": at, "by": actor}


def erased_chains(engine: Any, case_id: int | None = None) -> dict[str, dict[str, Any]]:
    """{chain: {seq, at, by, rule, events_erased}} for each erased case chain (or one case's)."""
    with engine.db.engine.connect() as conn:
        found = history.erasures(conn, case_chain(case_id) if case_id is not None else None)
    return {e["chain"]: {"seq": e["seq"], "at": e["at"], "by": e["actor"], "rule": e["data"].get("rule"),
                         "events_erased": e["data"].get("events_erased")} for e in found}
