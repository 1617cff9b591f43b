"""User task operations: the work lists, and completing, claiming, assigning and drafting a task.

`TaskOps` is mixed into `Engine` (engine/runtime.py). Completing a task is a step (engine/step.py);
claim, release, assign, delegate, return and save a draft change only the task row and append one
history event (`_task_event`), with an optimistic check of the task's revision.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection, bindparam, select, update

from . import history, pg_batch
from .clock import as_utc
from .driver_sql import Prepared
from .errors import ConflictError, NotFoundError, StateError, ValidationError
from .forms import FormLibrary
from .history import Event, case_chain
from .schema import cases, chains, events, instances, tasks
from .step import _CASE_CHAIN, _CASE_COLUMNS, StepCore, StepResult
from .workflow_state import _missing_output_item, _task_name

# completing a task reads the task, its instance, its case and the case's history head in one query
_TASK_AND_INSTANCE = Prepared(select(instances, *_CASE_COLUMNS, tasks.c.instance_id, tasks.c.form, tasks.c.revision)
                      .join(instances, instances.c.id == tasks.c.instance_id)
                      .join(cases, cases.c.id == instances.c.case_id)
                      .outerjoin(chains, _CASE_CHAIN)  # the case's history head, for the step's events
                      .where(tasks.c.id == bindparam("id")))


class TaskOps(StepCore):
    """The user task operations of `Engine`."""

    forms: FormLibrary  # set by Engine.__init__

    # ------------------------------------------------------------------ user tasks
    def list_tasks(self, *, case_id: int | None = None, team: str | None = None, assignee: str | None = None,
                   process_id: str | None = None, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        q = select(tasks, cases.c.reference, cases.c.title).join(cases, cases.c.id == tasks.c.case_id)
        if case_id is not None:
            q = q.where(tasks.c.case_id == case_id)
        if team is not None:
            q = q.where(tasks.c.team == team)
        if assignee is not None:
            q = q.where(tasks.c.assignee == assignee)
        if process_id is not None:
            q = q.where(tasks.c.process_id == process_id)
        q = q.order_by(tasks.c.due_at.asc().nulls_last(), tasks.c.created_at, tasks.c.id)  # as the indexes
        with self.db.engine.connect() as conn:
            rows = conn.execute(q.limit(limit).offset(offset)).all()
        return [_task_row(r) for r in rows]

    def get_task(self, task_id: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(tasks, cases.c.reference, cases.c.title)
                               .join(cases, cases.c.id == tasks.c.case_id).where(tasks.c.id == task_id)).first()
            if row is None:
                self._raise_task_gone(conn, task_id)
        return _task_row(row)

    def _raise_task_gone(self, conn: Connection, task_id: str) -> None:
        """A task that is not open: say whether it was done (by whom, when), withdrawn, or never existed."""
        if not _is_uuid(task_id):
            raise NotFoundError(f"no open task {task_id}", task=task_id)
        rows = conn.execute(select(events.c.actor, events.c.at, events.c.type).where(
            events.c.type.in_(("task.completed", "task.left")),
            events.c.data.like(f'%"task_id":"{task_id}"%'))).all()
        done = next((r for r in rows if r.type == "task.completed"), None)
        if done is not None:
            raise ConflictError(f"task {task_id} was already completed by {done.actor} at {done.at}; "
                                "nothing was changed", task=task_id, completed_by=done.actor, at=str(done.at))
        if rows:
            raise ConflictError(f"task {task_id} was withdrawn at {rows[0].at} (a deadline passed or the process "
                                "moved on); nothing was changed", task=task_id, withdrawn=True, at=str(rows[0].at))
        raise NotFoundError(f"no open task {task_id}", task=task_id)

    def complete_task(self, task_id: str, data: dict[str, Any] | None = None, *, actor: str = "system",
                      expected_revision: int | None = None,
                      authorise: Callable[[Connection], None] | None = None) -> StepResult:
        """Complete a ready user task with the submitted form data (validated against its form).

        `authorise(conn)`, when given, runs in the step's transaction once the task is found open (the API's
        access checks, api/tasks.py): what it raises ends the step with nothing saved."""
        data = dict(data or {})
        history.refuse_unstorable(data, f"the answers to task {task_id}", task=task_id)
        with self._tx() as conn:
            self.db.require_initialised(conn)
            trow = (pg_batch.first(conn, _TASK_AND_INSTANCE.stmt, {"id": task_id}) if self.db.is_postgres  # with BEGIN
                    else _TASK_AND_INSTANCE.first(conn, {"id": task_id}))
            if trow is None:
                self._raise_task_gone(conn, task_id)
            if authorise is not None:
                authorise(conn)
            if expected_revision is not None and trow.revision != expected_revision:
                raise ConflictError(f"task {task_id} changed since you opened it (it was claimed, assigned or "
                                    "saved by someone else); nothing was saved — reload and try again",
                                    task=task_id)
            if trow.status == "suspended":  # engine/suspension.py: nothing moves until it is resumed
                raise StateError(f"task {task_id} cannot be completed: its process (instance {trow.instance_id}) "
                                 "is suspended; resume it first. Nothing was saved", task=task_id,
                                 instance=trow.instance_id)
            self.forms.validate(trow.form, data, task=task_id)
            now = self.now(conn)
            row, wf = self._load(conn, trow.instance_id, trow)
            try:
                task = wf.get_task_from_id(UUID(task_id))
            except Exception:
                task = None
            if task is None or task.state != TaskState.READY:
                raise ConflictError(f"task {task_id} is no longer waiting to be done; reload the case",
                                    task=task_id)
            self.forms.check_decisions(trow.form, data, task.data, task=task_id)  # "x-decideEach"
            if (item := _missing_output_item(task, data)) is not None:
                raise ValidationError(f"'{_task_name(task)}' ({task.task_spec.bpmn_id}) runs once per item and each "
                                      f"time it is done it must give '{item}' (its output item); nothing was saved",
                                      errors=[{"field": item, "message": f"'{item}' is required"}], task=task_id)
            p = self._pending(now, row, wf)
            p.scope.events.append(Event("task.completed", {
                "task_id": task_id, "element_id": task.task_spec.bpmn_id, "name": _task_name(task),
                "data": data}, instance_id=row.id, actor=actor))

            def apply() -> None:
                task.data.update(data)
                task.run()

            children = self._advance(conn, now, p, actor, apply)
            return self._finish(conn, now, [p] + children, actor)

    def _task_event(self, task_id: str, type_: str, actor: str, changes: dict[str, Any],
                    expected_revision: int | None, check: Callable[[Any], None] | None = None,
                    event_data: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.db.transaction() as conn:
            trow = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
            if trow is None:
                self._raise_task_gone(conn, task_id)
            if expected_revision is not None and trow.revision != expected_revision:
                raise ConflictError(f"task {task_id} changed since you opened it; reload and try again",
                                    task=task_id)
            if check is not None:
                check(trow)
            res = conn.execute(update(tasks).where(tasks.c.id == task_id, tasks.c.revision == trow.revision)
                               .values(revision=trow.revision + 1, **changes))
            if res.rowcount != 1:
                raise ConflictError(f"task {task_id} changed at the same moment; reload and try again", task=task_id)
            now = self.now(conn)
            history.append(conn, case_chain(trow.case_id), trow.case_id, now, [Event(type_, {
                "task_id": task_id, "element_id": trow.element_id, **(changes if event_data is None else event_data)},
                instance_id=trow.instance_id, actor=actor)], lock=self.db.is_postgres)
        return self.get_task(task_id)

    def claim(self, task_id: str, user: str, *, expected_revision: int | None = None) -> dict[str, Any]:
        def check(trow: Any) -> None:
            if trow.assignee and trow.assignee != user:
                raise ConflictError(f"task {task_id} is already claimed by {trow.assignee}", task=task_id)
        return self._task_event(task_id, "task.claimed", user, {"assignee": user, "owner": user},
                                expected_revision, check)

    def release(self, task_id: str, user: str, *, expected_revision: int | None = None) -> dict[str, Any]:
        return self._task_event(task_id, "task.released", user, {"assignee": None, "owner": None}, expected_revision)

    def assign(self, task_id: str, to: str | None, *, actor: str, owner: str | None = None,
               expected_revision: int | None = None) -> dict[str, Any]:
        changes = {"assignee": to}
        if owner is not None:
            changes["owner"] = owner
        return self._task_event(task_id, "task.assigned", actor, changes, expected_revision)

    def delegate(self, task_id: str, to: str, *, actor: str, expected_revision: int | None = None) -> dict[str, Any]:
        """Hand a task to someone else to work on while `actor` stays its owner (delegate-and-return).

        The delegate saves drafts and returns it (`return_task`); the owner completes it."""
        def check(trow: Any) -> None:
            if trow.assignee != actor:
                raise ConflictError(f"only the person working on task {task_id} can delegate it "
                                    f"(it is with {trow.assignee or 'nobody'})", task=task_id)
            if to == actor:
                raise ConflictError("a task cannot be delegated to the person who holds it", task=task_id)
        return self._task_event(task_id, "task.delegated", actor, {"assignee": to, "owner": actor},
                                expected_revision, check)

    def return_task(self, task_id: str, *, actor: str, expected_revision: int | None = None) -> dict[str, Any]:
        """The delegate gives a delegated task back to its owner (with any draft saved on it)."""
        def check(trow: Any) -> None:
            if trow.assignee != actor or not trow.owner or trow.owner == actor or trow.owner != owner:
                raise ConflictError(f"task {task_id} was not delegated to {actor}", task=task_id)
        with self.db.engine.connect() as conn:
            trow = conn.execute(select(tasks.c.owner).where(tasks.c.id == task_id)).first()
        owner = trow.owner if trow is not None else None
        return self._task_event(task_id, "task.returned", actor, {"assignee": owner}, expected_revision, check)

    def save_draft(self, task_id: str, data: dict[str, Any], *, actor: str,
                   expected_revision: int | None = None) -> dict[str, Any]:
        """Keep what `actor` has typed so far on the task; only the person it is assigned to can.

        The draft is not validated and is not in the history (the completion records the data);
        the history notes that a draft was saved, and by whom."""
        if not isinstance(data, dict):
            raise ValidationError("a draft must be an object of field values")
        history.refuse_unstorable(data, f"the draft of task {task_id}", task=task_id)

        def check(trow: Any) -> None:
            if trow.assignee != actor:
                raise ConflictError(f"only the person the task is assigned to can save a draft of task {task_id} "
                                    f"(it is with {trow.assignee or 'nobody'}: claim it first)", task=task_id)
        return self._task_event(task_id, "task.draft_saved", actor, {"draft": json.dumps(data, sort_keys=True)},
                                expected_revision, check, event_data={"fields": sorted(data)})


def _task_row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["candidate_groups"] = json.loads(d["candidate_groups"])
    d["candidate_users"] = json.loads(d["candidate_users"]) if d.get("candidate_users") else []
    if d.get("draft") is not None:
        d["draft"] = json.loads(d["draft"])
    for k in ("created_at", "due_at", "follow_up_at"):
        if d.get(k) is not None:
            d[k] = as_utc(d[k])
    return d


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
        return True
    except ValueError:
        return False
