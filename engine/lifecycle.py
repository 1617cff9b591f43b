"""Ending work early: cancel a process instance, close a case, reopen it.

Generic operations: the engine knows that a case can be closed and an instance cancelled, with a
reason code and details given by the caller; what the codes mean (a death, a move to another
council...) is the caller's business (the web app's case actions, the CLD report).

Each operation is one transaction and one history step:

- ``instance.cancelled`` (an instance and its open child instances): every waiting task and timer of
  the instance is withdrawn (their rows deleted and listed in the event), the instance ends with status
  ``cancelled``; nothing of it can happen any more.
- ``case.closed``, followed by an ``instance.cancelled`` for each open instance of the case; the case
  record keeps ``case_closed`` ({reason, details, at, by}); nothing can be started on a closed case.
- ``case.reopened``: the closure moves to ``last_closure``; the case can be started on again.

Replay re-executes the three as inputs (engine/replay.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from . import history
from .clock import as_utc
from .errors import ConflictError, NotFoundError, StateError, ValidationError
from .history import Event, case_chain
from .schema import cases, instances, tasks, timers

OPEN_STATUSES = ("running", "waiting", "error", "suspended")  # suspended: engine/suspension.py
CLOSED_KEY = "case_closed"
LAST_CLOSURE_KEY = "last_closure"


def _check_reason(reason: Any, details: Any) -> dict[str, Any]:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("a reason is required", errors=[{"field": "reason", "message": "Give the reason"}])
    if details is not None and not isinstance(details, dict):
        raise ValidationError("details must be an object",
                              errors=[{"field": "details", "message": "Details must be an object"}])
    return dict(details or {})


def _cancel(conn: Connection, now: datetime, instance_id: int, reason: str, details: dict[str, Any],
            actor: str, out: list[Event]) -> list[int]:
    """Cancel one open instance and its open children (deepest last); returns the ids cancelled."""
    row = conn.execute(select(instances.c.id, instances.c.status, instances.c.process_id, instances.c.version)
                       .where(instances.c.id == instance_id)).first()
    if row is None or row.status not in OPEN_STATUSES:
        return []
    task_rows = conn.execute(select(tasks.c.id, tasks.c.element_id, tasks.c.name, tasks.c.team)
                             .where(tasks.c.instance_id == instance_id).order_by(tasks.c.element_id, tasks.c.id)).all()
    timer_rows = conn.execute(select(timers.c.task_id, timers.c.element_id, timers.c.due_at)
                              .where(timers.c.instance_id == instance_id)
                              .order_by(timers.c.element_id, timers.c.task_id)).all()
    conn.execute(delete(tasks).where(tasks.c.instance_id == instance_id))
    conn.execute(delete(timers).where(timers.c.instance_id == instance_id))
    changed = conn.execute(update(instances).where(instances.c.id == instance_id,
                                                   instances.c.version == row.version)
                           .values(status="cancelled", state=None, version=row.version + 1, updated_at=now,
                                   completed_at=now)).rowcount
    if changed != 1:
        raise ConflictError("this case changed while it was being closed; nothing was saved — try again",
                            instance=instance_id)
    out.append(Event("instance.cancelled", {
        "process_id": row.process_id, "reason": reason, "details": details,
        "tasks_withdrawn": [{"task_id": t.id, "element_id": t.element_id, "name": t.name, "team": t.team}
                            for t in task_rows],
        "timers_withdrawn": [{"task_id": t.task_id, "element_id": t.element_id,
                              "due_at": history.iso(as_utc(t.due_at))}
                             for t in timer_rows]}, instance_id=instance_id, actor=actor))
    done = [instance_id]
    children = conn.execute(select(instances.c.id).where(instances.c.parent_instance_id == instance_id,
                                                         instances.c.status.in_(OPEN_STATUSES))
                            .order_by(instances.c.id)).scalars().all()
    for child in children:
        done += _cancel(conn, now, child, reason, details, actor, out)
    return done


def _case_row(conn: Connection, db: Any, case_id: int) -> Any:
    row = conn.execute(db.for_update(select(cases.c.id, cases.c.data).where(cases.c.id == case_id))).first()
    if row is None:
        raise NotFoundError(f"no case {case_id}", case=case_id)
    return row


def cancel_instance(engine: Any, instance_id: int, *, reason: str, actor: str,
                    details: dict[str, Any] | None = None) -> dict[str, Any]:
    details = _check_reason(reason, details)
    with engine.db.transaction() as conn:
        engine.db.require_initialised(conn)
        row = conn.execute(select(instances.c.case_id, instances.c.status).where(instances.c.id == instance_id)).first()
        if row is None:
            raise NotFoundError(f"no process instance {instance_id}", instance=instance_id)
        _case_row(conn, engine.db, row.case_id)  # one change of a case at a time
        if row.status not in OPEN_STATUSES:
            raise StateError(f"process instance {instance_id} is {row.status}: there is nothing to end",
                             instance=instance_id, case=row.case_id)
        now = engine.now(conn)
        evs: list[Event] = []
        done = _cancel(conn, now, instance_id, reason.strip(), details, actor, evs)
        history.append(conn, case_chain(row.case_id), row.case_id, now, evs, lock=engine.db.is_postgres)
    _forget(engine, done)
    return {"case_id": row.case_id, "cancelled_instances": done, "events": len(evs)}


def close_case(engine: Any, case_id: int, *, reason: str, actor: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    details = _check_reason(reason, details)
    reason = reason.strip()
    with engine.db.transaction() as conn:
        engine.db.require_initialised(conn)
        row = _case_row(conn, engine.db, case_id)
        data = json.loads(row.data)
        if data.get(CLOSED_KEY):
            raise StateError(f"case {case_id} is already closed ({data[CLOSED_KEY].get('reason')})", case=case_id)
        now = engine.now(conn)
        evs: list[Event] = [Event("case.closed", {"reason": reason, "details": details}, actor=actor)]
        open_ids = conn.execute(select(instances.c.id).where(instances.c.case_id == case_id,
                                                             instances.c.status.in_(OPEN_STATUSES))
                                .order_by(instances.c.id)).scalars().all()
        done: list[int] = []
        for iid in open_ids:
            if iid not in done:
                done += _cancel(conn, now, iid, reason, details, actor, evs)
        data[CLOSED_KEY] = {"reason": reason, "details": details, "at": history.iso(now), "by": actor}
        conn.execute(update(cases).where(cases.c.id == case_id)
                     .values(data=json.dumps(data, sort_keys=True), updated_at=now))
        history.append(conn, case_chain(case_id), case_id, now, evs, lock=engine.db.is_postgres)
    _forget(engine, done)
    return {"case_id": case_id, "cancelled_instances": done, "events": len(evs)}


def reopen_case(engine: Any, case_id: int, *, reason: str, actor: str) -> dict[str, Any]:
    _check_reason(reason, None)
    with engine.db.transaction() as conn:
        engine.db.require_initialised(conn)
        row = _case_row(conn, engine.db, case_id)
        data = json.loads(row.data)
        closure = data.pop(CLOSED_KEY, None)
        if not closure:
            raise StateError(f"case {case_id} is not closed", case=case_id)
        data[LAST_CLOSURE_KEY] = closure
        now = engine.now(conn)
        conn.execute(update(cases).where(cases.c.id == case_id)
                     .values(data=json.dumps(data, sort_keys=True), updated_at=now))
        history.append(conn, case_chain(case_id), case_id, now, [Event("case.reopened", {
            "reason": reason.strip(), "closure": closure}, actor=actor)], lock=engine.db.is_postgres)
    return {"case_id": case_id}


def closure(case_data: dict[str, Any]) -> dict[str, Any] | None:
    """The case's closure ({reason, details, at, by}) while it is closed, else None."""
    return case_data.get(CLOSED_KEY) or None


def _forget(engine: Any, instance_ids: list[int]) -> None:
    for iid in instance_ids:
        engine._live.pop(iid, None)
