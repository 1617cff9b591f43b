"""Suspending and resuming a process instance: a pause in which nothing happens to it.

A suspended instance keeps its workflow, its task rows and its timer rows, but no timer fires
(the timer job and `advance_clock` take only running or waiting instances) and none of its tasks
can be completed. Resuming it either

* gives every waiting timer the time it had left when the pause began
  (new due = resume time + (old due - suspend time)), so a 6-week limit with 3 weeks left
  falls 3 weeks after the resume; or
* ends it there (status `cancelled`: its tasks are withdrawn and its timers cleared) and, if
  asked, starts another process for the case in the same step.

Each is one step and one transaction with its own history events (`instance.suspended`,
`instance.resumed`, and `instance.ended` when it ends), which replay re-applies. When the pause
began is read from the history (the instance's last `instance.suspended` event), so nothing
new is stored on the instance but its status.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from . import definitions
from .bpmn_timers import CycleTimerEventDefinition, parse_date, timer_due
from .clock import parse_instant
from .errors import StateError, ValidationError
from .history import Event, case_chain, iso
from .schema import events

if TYPE_CHECKING:
    from .runtime import Engine, StepResult

SUSPENDED = "suspended"
ENDED = "cancelled"
RESUME_MODES = ("remaining", "end")
_ACTIVE = ("running", "waiting")
_MAX_TEXT = 500


def _text(value: Any, what: str, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"{what} is required: say why the process is paused")
    if len(value) > _MAX_TEXT:
        raise ValidationError(f"{what} is too long ({len(value)} characters; at most {_MAX_TEXT})")
    return value.strip()


def _details(details: Any) -> dict[str, Any]:
    if details is None:
        return {}
    if not isinstance(details, dict) or not all(isinstance(k, str) for k in details):
        raise ValidationError("details must be an object of named values (e.g. the hospital and the date)")
    return details


def _timers(wf: Any) -> list[tuple[Any, datetime]]:
    from .runtime import _all_tasks

    return [(t, due) for t in _all_tasks(wf) if (due := timer_due(t)) is not None]


def _move_timer(task: Any, due: datetime) -> None:
    """Set a waiting timer's due instant in the task's internal data (the library's shape kept)."""
    value = task._get_internal_data("event_value")
    if any(k.startswith("event_value:") for k in task.internal_data):
        # an event-based gateway's timers (engine/bpmn_timers.py): each moves by the same amount
        shift = due - timer_due(task)
        for k, v in list(task.internal_data.items()):
            if k.startswith("event_value:") and isinstance(v, str):
                task.internal_data[k] = (parse_date(v) + shift).isoformat()
        return
    if isinstance(task.task_spec.event_definition, CycleTimerEventDefinition):
        task._set_internal_data(event_value=dict(value, next=due.isoformat()))
    else:
        task._set_internal_data(event_value=due.isoformat())


def suspended_since(conn: Connection, case_id: int, instance_id: int) -> datetime:
    """When the instance's current pause began: its last `instance.suspended` event."""
    at = conn.execute(select(events.c.at).where(
        events.c.chain == case_chain(case_id), events.c.instance_id == instance_id,
        events.c.type == "instance.suspended").order_by(events.c.seq.desc()).limit(1)).scalar()
    if at is None:
        raise StateError(f"process instance {instance_id} is suspended but its history has no "
                         "'instance.suspended' event", instance=instance_id, case=case_id)
    return parse_instant(at)


def suspend_instance(engine: Engine, instance_id: int, *, reason: str, actor: str,
                     details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pause a running instance: its timers stop and its tasks cannot be completed until it is resumed."""
    from .runtime import _snapshot, _Writes

    reason = _text(reason, "the reason", required=True)
    details = _details(details)
    with engine._tx() as conn:
        engine.db.require_initialised(conn)
        row, wf = engine._load(conn, instance_id)
        if row.status == SUSPENDED:
            since = suspended_since(conn, row.case_id, instance_id)
            raise StateError(f"process instance {instance_id} is already suspended (since {iso(since)}); "
                             "nothing was changed", instance=instance_id, case=row.case_id)
        if row.status not in _ACTIVE:
            raise StateError(f"process instance {instance_id} is {row.status}: only a running process can be "
                             "suspended; nothing was changed", instance=instance_id, case=row.case_id)
        now = engine.now(conn)
        snap = _snapshot(wf)
        timers = sorted(({"element_id": t["element_id"], "due_at": t["due_at"]} for t in snap["timers"].values()),
                        key=lambda t: (t["due_at"], t["element_id"]))
        w = _Writes(getattr(engine.registry, "document_listeners", ()))
        w.save.append({"iid": row.id, "expected": row.version, "st": SUSPENDED, "now": now,
                       "state": engine.codec.dump(wf)})
        w.events.append((case_chain(row.case_id), row.case_id, [Event("instance.suspended", {
            "process_id": row.process_id, "reason": reason, "details": details, "timers": timers},
            instance_id=row.id, actor=actor)]))
        w.flush(conn, now, lock=engine.db.is_postgres)
    return {"instance_id": instance_id, "case_id": row.case_id, "status": SUSPENDED, "suspended_at": iso(now),
            "timers": timers}


def _limits(not_after: Any) -> dict[str, datetime]:
    if not_after is None:
        return {}
    if not isinstance(not_after, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in not_after.items()):
        raise ValidationError("not_after must be an object of timer element ids and ISO 8601 instants")
    limits = {}
    for element, text in not_after.items():
        try:
            limits[element] = parse_instant(text)
        except ValueError:
            raise ValidationError(f"not_after for {element!r} must be an ISO 8601 instant, got "
                                  f"{text!r}") from None
    return limits


def resume_instance(engine: Engine, instance_id: int, *, actor: str, mode: str = "remaining",
                    reason: str | None = None, details: dict[str, Any] | None = None,
                    then_start: dict[str, Any] | None = None,
                    not_after: dict[str, str] | None = None) -> StepResult:
    """Resume a suspended instance with its timers' remaining time (`mode="remaining"`), or end it
    (`mode="end"`) and, with `then_start` ({"process_id", "data", optional "version"}), start another
    process for the case in the same step. `not_after` ({timer element id: ISO instant}) caps a timer's
    moved date: the pause moves it on, but never past that instant (nor before the resume, when the
    instant has passed) — a date the pause must not carry past a limit."""
    from .runtime import StepResult, _derived_events, _final_data, _snapshot, _Writes

    if mode not in RESUME_MODES:
        raise ValidationError(f"mode must be one of {', '.join(RESUME_MODES)}, got {mode!r}")
    limits = _limits(not_after)
    if limits and mode != "remaining":
        raise ValidationError("not_after caps the moved timers: it is for mode 'remaining' only")
    reason = _text(reason, "the reason", required=False)
    details = _details(details)
    if then_start is not None and mode != "end":
        raise ValidationError("another process can be started only when the suspended one ends (mode 'end')")
    if then_start is not None and (not isinstance(then_start, dict) or not isinstance(then_start.get("process_id"), str)
                                   or not isinstance(then_start.get("data", {}), dict)):
        raise ValidationError("then_start must name a process_id (and may give its start data as an object)")
    with engine._tx() as conn:
        engine.db.require_initialised(conn)
        row, wf = engine._load(conn, instance_id)
        if row.status != SUSPENDED:
            raise StateError(f"process instance {instance_id} is not suspended (it is {row.status}): there is "
                             "nothing to resume; nothing was changed", instance=instance_id, case=row.case_id)
        now = engine.now(conn)
        since = suspended_since(conn, row.case_id, instance_id)
        p = engine._pending(now, row, wf)
        moved = []
        if mode == "remaining":
            for task, due in _timers(wf):
                new_due = now + max(due - since, timedelta(0))
                limit = limits.get(task.task_spec.bpmn_id)
                if limit is not None:
                    new_due = min(new_due, max(limit, now))
                _move_timer(task, new_due)
                moved.append({"element_id": task.task_spec.bpmn_id, "due_before": iso(due), "due_after": iso(new_due)})
        else:
            moved = [{"element_id": task.task_spec.bpmn_id, "due_before": iso(due), "due_after": None}
                     for task, due in _timers(wf)]
        moved.sort(key=lambda t: (t["due_before"], t["element_id"]))
        start = None
        if then_start is not None:
            pv = definitions.resolve_version(conn, then_start["process_id"], then_start.get("version"))
            start = {"process_id": pv.process_id, "version": pv.version, "data": then_start.get("data") or {}}
        resumed = Event("instance.resumed", {
            "process_id": row.process_id, "mode": mode, "reason": reason, "details": details,
            "suspended_at": iso(since), "suspended_seconds": int((now - since).total_seconds()),
            "timers": moved, "then_start": start, **({"not_after": not_after} if limits else {})},
            instance_id=row.id, actor=actor)
        if mode == "remaining":
            p.scope.events.append(resumed)
            p.after = _snapshot(wf)
            p.scope.events.extend(_derived_events(p.before, p.after, row.id))
            return engine._finish(conn, now, [p], actor)
        # end: the instance stops here, its tasks withdrawn and its timers cleared
        empty = {"tasks": {}, "timers": {}, "rows": [], "timer_rows": []}
        ended = [resumed, *_derived_events(p.before, empty, row.id),
                 Event("instance.ended", {"process_id": row.process_id, "reason": reason or "ended on resume",
                                          "outcome": details.get("outcome")}, instance_id=row.id, actor=actor)]
        w = _Writes(getattr(engine.registry, "document_listeners", ()))
        w.finish.append({"iid": row.id, "expected": row.version, "st": ENDED, "now": now,
                         "data": engine.codec.data_text(_final_data(wf))})
        w.drop_tasks.extend(t["id"] for t in p.before["rows"])
        w.clear_timers.append(row.id)
        if start is None:
            w.events.append((case_chain(row.case_id), row.case_id, ended))
            w.flush(conn, now, lock=engine.db.is_postgres)
            return StepResult(row.id, row.case_id, ENDED, events=len(ended))
        w.flush(conn, now, lock=engine.db.is_postgres)  # rows only: the events go with the new process's step
        pv = definitions.resolve_version(conn, start["process_id"], start["version"])
        pending = engine._start_instance(conn, now, row.case_id, pv.id, dict(start["data"]), actor, parent=None)
        res = engine._finish(conn, now, pending, actor, lead=ended)
        return StepResult(row.id, row.case_id, ENDED, res.ready_tasks, res.incident,
                          [res.instance_id, *res.started_instances], res.events)


__all__ = ["ENDED", "RESUME_MODES", "SUSPENDED", "resume_instance", "suspend_instance", "suspended_since"]
