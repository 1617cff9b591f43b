"""Case operations: create, read and correct a case record; close, reopen, cancel, suspend, resume.

`CaseOps` is mixed into `Engine` (engine/runtime.py). Creating and correcting the case record is
here; ending work early is engine/lifecycle.py and pausing it engine/suspension.py, which these
methods call. `_check_case` and `_case_saved` are the registry's hooks on every change of a case's
details, used here and by the step machinery (engine/step.py) when a process updates the case.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, literal, select, update

from . import history, lifecycle, pg_batch, suspension
from .driver_sql import Prepared
from .errors import ConflictError, NotFoundError, ValidationError
from .history import Event, case_chain
from .schema import cases, instances
from .step import StepCore, StepResult

# built once: every start of a process for a new case runs them
_CASE_COLUMNS = ("reference", "title", "data", "created_at", "updated_at")
_NEW_CASE = Prepared(insert(cases).returning(cases.c.id), _CASE_COLUMNS)
_NAME_CASE = Prepared(update(cases).where(cases.c.id == bindparam("cid")).values(reference=bindparam("ref")))
#: SQLite: a new case named in its insert. Its id is the one SQLite would give it (an INTEGER PRIMARY KEY
#: without AUTOINCREMENT takes the largest id + 1), taken under BEGIN IMMEDIATE (the only writer), and its
#: reference is spelt from that id as `_create_case` spells it: CASE-000042
_NEXT_CASE = select((func.coalesce(func.max(cases.c.id), 0) + 1).label("n")).subquery()
_NEW_NAMED_CASE = Prepared(insert(cases).from_select(
    ("id", "reference", "title", "data", "created_at", "updated_at"),
    select(_NEXT_CASE.c.n, literal("CASE-") + func.printf("%06d", _NEXT_CASE.c.n),
           *[bindparam(c, type_=cases.c[c].type) for c in _CASE_COLUMNS[1:]])).returning(cases.c.id))


class CaseOps(StepCore):
    """The case record and the case-level operations of `Engine`."""

    # ------------------------------------------------------------------ cases
    def create_case(self, title: str, data: dict[str, Any] | None = None, *, actor: str = "system",
                    reference: str | None = None) -> int:
        history.refuse_unstorable({"title": title, **(data or {})}, "the new case's details")
        with self.db.transaction() as conn:
            self.db.require_initialised(conn)
            now = self.now(conn)
            return self._create_case(conn, now, title, data or {}, actor, reference)

    def _create_case(self, conn: Connection, now: datetime, title: str, data: dict[str, Any], actor: str,
                     reference: str | None, case_id: int | None = None, defer: list[Event] | None = None) -> int:
        """Insert a case; its `case.created` event is appended now, or to `defer` for the caller's step."""
        data = self._check_case(data)
        values = dict(reference=reference, title=title, data=json.dumps(data, sort_keys=True), created_at=now,
                      updated_at=now)
        pg = self.db.is_postgres  # the insert goes with BEGIN, the naming with the next statement (pg_batch)
        if reference is None and case_id is None and not pg:
            cid = _NEW_NAMED_CASE.scalar(conn, values)  # named in its insert
            reference = f"CASE-{cid:06d}"
        else:
            values["reference"] = reference or f"pending-{os.urandom(8).hex()}"
            if case_id is not None:
                values["id"] = case_id
            if pg:
                cid = pg_batch.first(conn, _NEW_CASE.stmt, values).id
            elif case_id is not None:
                cid = conn.execute(insert(cases).returning(cases.c.id), values).scalar_one()
            else:
                cid = _NEW_CASE.scalar(conn, values)
            if reference is None:  # named once its id is known
                reference = f"CASE-{cid:06d}"
                if pg:
                    pg_batch.queue(conn, pg_batch.NAME_CASE, {"cid": cid, "ref": reference})
                else:
                    _NAME_CASE.run(conn, {"cid": cid, "ref": reference})
        self._case_saved(conn, cid)
        created = Event("case.created", {"reference": reference, "title": title, "data": data}, actor=actor)
        if defer is not None:
            defer.append(created)
        else:
            history.append(conn, case_chain(cid), cid, now, [created], lock=self.db.is_postgres)
        return cid

    def get_case(self, case_id: int) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
            if row is None:
                raise NotFoundError(f"no case {case_id}", case=case_id)
            inst = conn.execute(select(instances.c.id, instances.c.process_id, instances.c.status,
                                       instances.c.parent_instance_id, instances.c.started_at,
                                       instances.c.completed_at)
                                .where(instances.c.case_id == case_id).order_by(instances.c.id)).all()
        return {"id": row.id, "reference": row.reference, "title": row.title, "data": json.loads(row.data),
                "instances": [dict(r._mapping) for r in inst]}

    def update_case_record(self, case_id: int, data: dict[str, Any], *, actor: str, reason: str = "",
                           expected: dict[str, Any] | None = None) -> dict[str, Any]:
        """A person changes details on the case record (a correction, the co-ordinating worker...).

        Merges `data` into the case's details (a value of None removes that detail) and appends a
        `case.record_updated` event with what changed, the old values and the reason. `expected`
        (field -> value the user saw) makes a stale edit a conflict instead of overwriting."""
        if not isinstance(data, dict) or not data:
            raise ValidationError("nothing to change: give the details to change as a non-empty object")
        history.refuse_unstorable(data, f"the details of case {case_id}", case=case_id)
        data = self._check_case(data)
        with self.db.transaction() as conn:
            row = conn.execute(self.db.for_update(select(cases.c.data).where(cases.c.id == case_id))).first()
            if row is None:
                raise NotFoundError(f"no case {case_id}", case=case_id)
            now = self.now(conn)
            current = json.loads(row.data)
            for key, seen in (expected or {}).items():
                if current.get(key) != seen:
                    raise ConflictError(f"the case's {key!r} changed since you opened it "
                                        f"(it is now {current.get(key)!r}); reload and try again", case=case_id)
            old = {k: current.get(k) for k in data}
            for k, v in data.items():
                if v is None:
                    current.pop(k, None)
                else:
                    current[k] = v
            conn.execute(update(cases).where(cases.c.id == case_id)
                         .values(data=json.dumps(current, sort_keys=True), updated_at=now))
            self._case_saved(conn, case_id)
            history.append(conn, case_chain(case_id), case_id, now, [Event("case.record_updated", {
                "data": data, "previous": old, "reason": reason}, actor=actor)], lock=self.db.is_postgres)
        return self.get_case(case_id)

    def _check_case(self, changes: dict[str, Any]) -> dict[str, Any]:
        """The registry's checks of details about to be saved (may normalise them or refuse the change)."""
        for check in getattr(self.registry, "case_checks", ()):
            changes = check(changes)
        return changes

    def _case_saved(self, conn: Connection, case_id: int) -> None:
        """The registry's listeners, in the transaction that changed the case (e.g. a search table kept in step)."""
        for listener in getattr(self.registry, "case_listeners", ()):
            listener(conn, case_id)

    # ------------------------------------------------------------------ ending work early (engine/lifecycle.py)
    def cancel_instance(self, instance_id: int, *, reason: str, actor: str,
                        details: dict[str, Any] | None = None) -> dict[str, Any]:
        """End one open instance (and its open children): its tasks and timers are withdrawn with the reason."""
        return lifecycle.cancel_instance(self, instance_id, reason=reason, actor=actor, details=details)

    def close_case(self, case_id: int, *, reason: str, actor: str,
                   details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close a case: every open instance is cancelled with the reason, in one transaction."""
        return lifecycle.close_case(self, case_id, reason=reason, actor=actor, details=details)

    def reopen_case(self, case_id: int, *, reason: str, actor: str) -> dict[str, Any]:
        return lifecycle.reopen_case(self, case_id, reason=reason, actor=actor)

    # ------------------------------------------------------------------ suspend and resume
    def suspend_instance(self, instance_id: int, *, reason: str, actor: str,
                         details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Pause an instance: no timer fires and no task completes until it is resumed (engine/suspension.py)."""
        return suspension.suspend_instance(self, instance_id, reason=reason, actor=actor, details=details)

    def resume_instance(self, instance_id: int, *, actor: str, mode: str = "remaining", reason: str | None = None,
                        details: dict[str, Any] | None = None,
                        then_start: dict[str, Any] | None = None,
                        not_after: dict[str, str] | None = None) -> StepResult:
        """Resume a suspended instance with its timers' remaining time (a timer in `not_after` never moved past
        its instant), or end it (and start another process)."""
        return suspension.resume_instance(self, instance_id, actor=actor, mode=mode, reason=reason, details=details,
                                          then_start=then_start, not_after=not_after)
