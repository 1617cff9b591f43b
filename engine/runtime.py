"""The engine: cases, process instances and the steps that move them.

Every change is one *step* and one database transaction: restore the workflow, apply the
input (start, task completion, timer, retry), let SpiffWorkflow run until every path waits,
then write the workflow, the projected task and timer rows and the history events
together. A crash anywhere leaves the last committed state.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from . import definitions, history, lifecycle, messages, suspension
from .bpmn import timer_due
from .bpmn_parser import ASSIGNMENT_KEY, Assigned
from .bpmn_timers import parse_date, waiting_timer
from .clock import SystemClock, as_utc, parse_instant
from .db import Database
from .errors import ClockError, ConflictError, HandlerFailed, NotFoundError, StateError, ValidationError
from .forms import FormLibrary
from .history import Event, case_chain
from .migrate import upgrade
from .registry import HandlerRegistry, load_registry
from .schema import cases, chains, documents, events, incidents, instances, settings, tasks, timers
from .scripting import CarepathScriptEngine, ChildStart, ReplayMismatch, StepScope
from .state import STATE_FORMAT, StateCodec

SCHEMA_VERSION = "1"
_DROP_TASKS = delete(tasks).where(tasks.c.id.in_(bindparam("ids", expanding=True)))
_ADD_TASKS = insert(tasks)
_SAVE_INSTANCE = (update(instances)
                  .where(instances.c.id == bindparam("iid"), instances.c.version == bindparam("expected"))
                  .values(version=instances.c.version + 1, status=bindparam("st"), updated_at=bindparam("now"),
                          state=bindparam("state"), state_format=STATE_FORMAT))
_FINISH_INSTANCE = (update(instances)
                    .where(instances.c.id == bindparam("iid"), instances.c.version == bindparam("expected"))
                    .values(version=instances.c.version + 1, status=bindparam("st"), updated_at=bindparam("now"),
                            completed_at=bindparam("now"), state=None, data=bindparam("data")))
_MOVE_TASK_DUE = update(tasks).where(tasks.c.id == bindparam("tid")).values(due_at=bindparam("due"))
_CLEAR_TIMERS = delete(timers).where(timers.c.instance_id.in_(bindparam("ids", expanding=True)))
_DROP_TIMERS = delete(timers).where(timers.c.task_id.in_(bindparam("ids", expanding=True)))
_ADD_TIMERS = insert(timers)
_ADD_DOCUMENTS = insert(documents)
_CASE_COLUMNS = (cases.c.data.label("case_data"), cases.c.reference.label("case_reference"))
_LOAD = (select(instances, *_CASE_COLUMNS).join(cases, cases.c.id == instances.c.case_id)
         .where(instances.c.id == bindparam("id")))
_LOAD_MANY = (select(instances, *_CASE_COLUMNS).join(cases, cases.c.id == instances.c.case_id)
              .where(instances.c.id.in_(bindparam("ids", expanding=True))))
# completing a task reads the task, its instance and its case in one query
_TASK_AND_INSTANCE = (select(instances, *_CASE_COLUMNS, tasks.c.instance_id, tasks.c.form, tasks.c.revision)
                      .join(instances, instances.c.id == tasks.c.instance_id)
                      .join(cases, cases.c.id == instances.c.case_id)
                      .where(tasks.c.id == bindparam("id")))


@dataclass
class StepResult:
    """What a step did, for the caller (API, CLI, tests)."""

    instance_id: int
    case_id: int
    status: str
    ready_tasks: list[dict[str, Any]] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    started_instances: list[int] = field(default_factory=list)
    events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "case_id": self.case_id, "status": self.status,
                "ready_tasks": self.ready_tasks, "incident": self.incident,
                "started_instances": self.started_instances, "events": self.events}


@dataclass
class _Pending:
    """A step's outcome for one instance, before it is written."""

    instance_id: int
    case_id: int
    version: int  # as loaded (0: inserted in this transaction); the save checks it is still so
    process_id: str
    workflow: BpmnWorkflow
    scope: StepScope
    before: dict[str, Any]  # snapshot as loaded: equals the task and timer rows stored for it
    old_status: str | None = None
    after: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None


class _Writes:
    """The rows one transaction writes, gathered so that many instances cost a few statements."""

    def __init__(self, filed: Sequence[Callable[[Connection, list[dict[str, Any]]], None]] = ()) -> None:
        #: the registry's document listeners: told of the documents filed, with their ids, in this transaction
        self.filed = tuple(filed)
        self.save: list[dict[str, Any]] = []
        self.finish: list[dict[str, Any]] = []
        self.drop_tasks: list[str] = []
        self.add_tasks: list[dict[str, Any]] = []
        self.task_due: list[dict[str, Any]] = []
        self.drop_timers: list[str] = []
        self.clear_timers: list[int] = []
        self.add_timers: list[dict[str, Any]] = []
        self.events: list[tuple[str, int | None, list[Event]]] = []
        self.documents: list[dict[str, Any]] = []

    def flush(self, conn: Connection, now: datetime, *, lock: bool) -> None:
        for stmt, rows in ((_SAVE_INSTANCE, self.save), (_FINISH_INSTANCE, self.finish)):
            if not rows:
                continue
            if len(rows) == 1 or not conn.dialect.supports_sane_multi_rowcount:
                changed = sum(conn.execute(stmt, r).rowcount for r in rows)
            else:
                changed = conn.execute(stmt, rows).rowcount
            if changed != len(rows):
                raise ConflictError("this case changed while your change was being made (another request got "
                                    "there first); nothing was saved — reload and try again",
                                    instance=rows[0]["iid"] if len(rows) == 1 else None)
        if self.drop_tasks:
            conn.execute(_DROP_TASKS, {"ids": self.drop_tasks})
        if self.add_tasks:
            conn.execute(_ADD_TASKS, self.add_tasks)
        if self.task_due:
            conn.execute(_MOVE_TASK_DUE, self.task_due)
        if self.clear_timers:
            conn.execute(_CLEAR_TIMERS, {"ids": self.clear_timers})
        if self.drop_timers:
            conn.execute(_DROP_TIMERS, {"ids": self.drop_timers})
        if self.add_timers:
            conn.execute(_ADD_TIMERS, self.add_timers)
        if self.documents and self.filed:
            ids = conn.execute(_ADD_DOCUMENTS.returning(documents.c.id, sort_by_parameter_order=True),
                               self.documents).scalars().all()
            filed = [dict(d, id=i) for d, i in zip(self.documents, ids, strict=True)]
            for listener in self.filed:
                listener(conn, filed)
        elif self.documents:
            conn.execute(_ADD_DOCUMENTS, self.documents)
        history.append_many(conn, now, self.events, lock=lock)


class Engine:
    """carepath's workflow engine over one database."""

    LIVE_CACHE_SIZE = 2000

    def __init__(self, db: Database | str | None = None, *, registry: HandlerRegistry | None = None,
                 forms: FormLibrary | None = None, functions: dict[str, Callable[..., Any]] | None = None,
                 wall_clock: Any = None) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        self.registry = registry if registry is not None else load_registry(
            os.environ.get("CAREPATH_HANDLERS", "handlers"))
        if forms is None:
            forms = FormLibrary.from_folder(os.environ.get("CAREPATH_FORMS", Path.cwd() / "forms"))
        self.forms = forms
        self.codec = StateCodec()
        self.specs = definitions.SpecCache()
        self.script_engine = CarepathScriptEngine(self.registry, {**self.registry.functions, **(functions or {})})
        self._wall_clock = wall_clock or SystemClock()
        self._replay_outputs: list[dict[str, Any]] | None = None
        self._clock_mode: str | None = None
        # instance id -> (version, workflow) this process saved last; used only while the row still has it
        self._live: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()

    # ------------------------------------------------------------------ set-up and clock
    def init(self, *, simulated_start: datetime | None = None) -> None:
        """Create or upgrade the schema; a new database gets the real or a simulated clock."""
        upgrade(self.db)
        with self.db.transaction() as conn:
            if self.db.get_setting(conn, "schema") is not None:
                return
            mode = "simulated" if simulated_start is not None else "real"
            rows = [{"key": "schema", "value": SCHEMA_VERSION}, {"key": "clock_mode", "value": mode}]
            if simulated_start is not None:
                rows.append({"key": "clock_now", "value": history.iso(as_utc(simulated_start))})
            conn.execute(insert(settings), rows)

    def clock_mode(self, conn: Connection | None = None) -> str:
        if self._clock_mode is not None:  # fixed when the database was created
            return self._clock_mode
        if conn is None:
            with self.db.engine.connect() as c:
                return self.clock_mode(c)
        self.db.require_initialised(conn)
        self._clock_mode = self.db.get_setting(conn, "clock_mode") or "real"
        return self._clock_mode

    def now(self, conn: Connection | None = None) -> datetime:
        if conn is None:
            with self.db.engine.connect() as c:
                return self.now(c)
        if self.clock_mode(conn) == "simulated":
            return parse_instant(self.db.get_setting(conn, "clock_now") or "")
        return as_utc(self._wall_clock.now())

    def _set_clock(self, conn: Connection, at: datetime) -> None:
        conn.execute(update(settings).where(settings.c.key == "clock_now").values(value=history.iso(at)))

    # ------------------------------------------------------------------ definitions
    def definition_checks(self) -> dict[str, Any]:
        """What a diagram is checked against wherever it is deployed or checked (deploy, the workbench's
        drafts and modeller): the registered handlers with their required parameters, the form library,
        and the teams that exist (when the handler package names them)."""
        return {"handlers": self.registry.required_parameters(), "forms": self.forms.names() or None,
                "teams": self.registry.teams}

    def deploy(self, paths: Iterable[str | Path] | None = None, *, files: dict[str, bytes] | None = None,
               actor: str = "system", source: str | None = None, note: str | None = None,
               author: str | None = None, strict: bool = False) -> list[definitions.VersionRef]:
        """Deploy a folder, files or in-memory files; identical content is a no-op.

        Layout lint warnings (engine.lint) do not stop a deploy unless `strict`; lint errors do.

        Recorded with `note` and `author` (default: the actor) and the actor as approver, as
        `carepath deploy --as USER --note TEXT` and the workbench's approval do (engine/drafts.py).
        """
        if files is None:
            paths = list(paths or [])
            files = definitions.read_sources(paths)
            source = source or ", ".join(str(p) for p in paths)
        with self.db.transaction() as conn:
            self.db.require_initialised(conn)
            now = self.now(conn)
            refs, evs = definitions.deploy(conn, files, now=now, actor=actor, source=source or "upload",
                                           change_note=note, author=author or actor, approver=actor,
                                           strict=strict, **self.definition_checks())
            history.append(conn, history.SYSTEM_CHAIN, None, now, evs, lock=self.db.is_postgres)
        return refs

    # ------------------------------------------------------------------ cases
    def create_case(self, title: str, data: dict[str, Any] | None = None, *, actor: str = "system",
                    reference: str | None = None) -> int:
        with self.db.transaction() as conn:
            self.db.require_initialised(conn)
            now = self.now(conn)
            return self._create_case(conn, now, title, data or {}, actor, reference)

    def _create_case(self, conn: Connection, now: datetime, title: str, data: dict[str, Any], actor: str,
                     reference: str | None, case_id: int | None = None, defer: list[Event] | None = None) -> int:
        """Insert a case; its `case.created` event is appended now, or to `defer` for the caller's step."""
        data = self._check_case(data)
        values = dict(reference=reference or f"pending-{os.urandom(8).hex()}", title=title,
                      data=json.dumps(data, sort_keys=True), created_at=now, updated_at=now)
        if case_id is not None:
            values["id"] = case_id
        cid = conn.execute(insert(cases).values(**values).returning(cases.c.id)).scalar_one()
        if reference is None:
            reference = f"CASE-{cid:06d}"
            conn.execute(update(cases).where(cases.c.id == cid).values(reference=reference))
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

    # ------------------------------------------------------------------ instances
    def start(self, process_id: str, *, case_id: int | None = None, data: dict[str, Any] | None = None,
              actor: str = "system", title: str | None = None, version: int | None = None) -> StepResult:
        """Start a process (for an existing case, or a new one) and run it until every path waits."""
        data = dict(data or {})
        with self._tx() as conn:
            self.db.require_initialised(conn)
            now = self.now(conn)
            pv = definitions.resolve_version(conn, process_id, version)
            lead: list[Event] = []
            case_data: dict[str, Any] | None = None
            if case_id is None:  # a new case and its first process: one step, one transaction
                case_id = self._create_case(conn, now, title or data.get("name") or pv.name, {}, actor, None,
                                            defer=lead)
                case_data = {}
            else:
                found = conn.execute(select(cases.c.data).where(cases.c.id == case_id)).first()
                if found is None:
                    raise NotFoundError(f"no case {case_id}", case=case_id)
                if json.loads(found.data).get(lifecycle.CLOSED_KEY):
                    raise StateError(f"case {case_id} is closed: reopen it before starting anything on it",
                                     case=case_id)
            pending = self._start_instance(conn, now, case_id, pv.id, data, actor, parent=None, case_data=case_data)
            return self._finish(conn, now, pending, actor, lead)

    def _start_instance(self, conn: Connection, now: datetime, case_id: int, version_id: int,
                        data: dict[str, Any], actor: str, parent: int | None,
                        element_id: str | None = None, case_data: dict[str, Any] | None = None,
                        on_start: Callable[[BpmnWorkflow], None] | None = None) -> list[_Pending]:
        loaded = self.specs.get(conn, version_id)
        case_row = conn.execute(select(cases.c.data, cases.c.reference).where(cases.c.id == case_id)).one()
        if case_data is None:
            case_data = json.loads(case_row.data)
        iid = conn.execute(insert(instances).values(
            case_id=case_id, process_version_id=version_id, process_id=loaded.process_id,
            parent_instance_id=parent, status="running", version=0, state_format=STATE_FORMAT, state=None,
            started_at=now, updated_at=now).returning(instances.c.id)).scalar_one()
        wf = BpmnWorkflow(loaded.spec, loaded.subprocess_specs, script_engine=self.script_engine)
        for t in wf.get_tasks(state=TaskState.READY):
            t.data.update(data)
        scope = self._scope(now, case_id, iid, loaded.process_id, case_data, case_row.reference)
        scope.events.append(Event("instance.started", {
            "process_id": loaded.process_id, "version": loaded.version, "process_version_id": version_id,
            "data": data, "parent_instance_id": parent, "started_by_element": element_id}, instance_id=iid,
            actor=actor))
        p = _Pending(iid, case_id, 0, loaded.process_id, wf, scope, _snapshot(wf))
        return [p] + self._advance(conn, now, p, actor, (lambda: on_start(wf)) if on_start is not None else None)

    def _scope(self, now: datetime, case_id: int, instance_id: int, process_id: str,
               case_data: dict[str, Any], case_reference: str) -> StepScope:
        scope = StepScope(now=now, case_id=case_id, instance_id=instance_id, process_id=process_id,
                          case_data=case_data, case_reference=case_reference)
        if self._replay_outputs is not None:
            scope.recorded = self._replay_outputs
        return scope

    def _load(self, conn: Connection, instance_id: int, row: Any = None) -> tuple[Any, BpmnWorkflow]:
        if row is None:
            row = conn.execute(_LOAD, {"id": instance_id}).first()
        if row is None:
            raise NotFoundError(f"no process instance {instance_id}", instance=instance_id)
        if row.state is None:
            raise StateError(f"process instance {instance_id} is {row.status}: nothing more can happen in it",
                             instance=instance_id, case=row.case_id)
        loaded = self.specs.get(conn, row.process_version_id)
        cached = self._live.pop(instance_id, None)
        if cached is not None and cached[0] == row.version:
            return row, cached[1]  # exactly what this process saved as that version: no need to restore it
        wf = self.codec.load(row.state, loaded.spec, loaded.subprocess_specs)
        wf.script_engine = self.script_engine
        return row, wf

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A step's transaction; the workflows it saved are kept in memory only once it has committed."""
        saved: list[tuple[int, int, BpmnWorkflow]] = []
        with self.db.transaction() as conn:
            conn.info["carepath_saved"] = saved
            try:
                yield conn
            finally:
                conn.info.pop("carepath_saved", None)
        for iid, version, wf in saved:
            self._live[iid] = (version, wf)
            self._live.move_to_end(iid)
        while len(self._live) > self.LIVE_CACHE_SIZE:
            self._live.popitem(last=False)

    def _advance(self, conn: Connection, now: datetime, p: _Pending, actor: str,
                 apply: Callable[[], None] | None = None) -> list[_Pending]:
        """Run the workflow until it waits; derive events; start child processes. Returns children."""
        p.scope.open_reader = lambda: self._open_processes(conn, p.case_id, p.instance_id)
        token = self.script_engine.enter(p.scope)
        mark = len(p.scope.events)  # timer events go after the step's input, before what they caused
        try:
            try:
                if apply is not None:
                    apply()
                p.workflow.refresh_timers()
                p.workflow.do_engine_steps()
                messages.deliver_kept(self, conn, now, p)  # a kept message for a receiver now waiting
            except ReplayMismatch:
                raise  # a replay that differs from its history is not an incident of the case
            except Exception as exc:  # any failure inside the diagram becomes an incident
                p.failure = p.scope.failure or _failure_from(p.workflow, exc)
                if isinstance(exc, HandlerFailed):
                    p.scope.events.append(Event("handler.failed", {
                        k: p.failure[k] for k in ("element_id", "handler", "inputs", "message")},
                        instance_id=p.instance_id))
        finally:
            self.script_engine.leave(token)
        p.scope.events[mark:mark] = [Event("timer.fired", t, instance_id=p.instance_id)
                                     for t in _fired_timers(p.before, p.workflow, now)]
        p.after = _snapshot(p.workflow)
        p.scope.events.extend(_derived_events(p.before, p.after, p.instance_id))
        children: list[_Pending] = []
        for child in p.scope.children:
            children += self._start_child(conn, now, p, child, actor)
        return children

    @staticmethod
    def _open_processes(conn: Connection, case_id: int, instance_id: int) -> list[str]:
        """`open_processes()` in scripts: the case's other open instances, read in the step's transaction."""
        return list(conn.execute(select(instances.c.process_id).where(
            instances.c.case_id == case_id, instances.c.id != instance_id,
            instances.c.status.in_(lifecycle.OPEN_STATUSES))).scalars())

    def _start_child(self, conn: Connection, now: datetime, parent: _Pending, child: ChildStart,
                     actor: str) -> list[_Pending]:
        pv = definitions.resolve_version(conn, child.process_id)
        started = self._start_instance(conn, now, parent.case_id, pv.id, child.data, actor,
                                       parent=parent.instance_id, element_id=child.element_id,
                                       case_data=parent.scope.case_data)
        parent.scope.events.append(Event("instance.child_started", {
            "element_id": child.element_id, "process_id": child.process_id, "child_instance_id":
                started[0].instance_id}, instance_id=parent.instance_id))
        return started

    def _finish(self, conn: Connection, now: datetime, pending: list[_Pending], actor: str,
                lead: list[Event] | None = None, writes: _Writes | None = None) -> StepResult:
        """Write every touched instance, its task and timer rows, incidents and events.

        With `writes` the rows are only gathered (the caller flushes a whole batch at once).
        """
        w = writes if writes is not None else _Writes(getattr(self.registry, "document_listeners", ()))
        all_events: list[Event] = list(lead or [])
        incident = None
        for p in pending:
            inc = self._write_instance(conn, now, p, w)
            incident = incident or inc
            all_events.extend(p.scope.events)
        first = pending[0]
        self._save_case_data(conn, now, pending)
        w.events.append((case_chain(first.case_id), first.case_id, all_events))
        if writes is None:
            w.flush(conn, now, lock=self.db.is_postgres)
        status = _status(first)
        ready = list(first.after["rows"]) if first.after and status != "completed" else []
        return StepResult(first.instance_id, first.case_id, status, ready, incident,
                          [p.instance_id for p in pending[1:]], len(all_events))

    def _save_case_data(self, conn: Connection, now: datetime, pending: list[_Pending]) -> None:
        """Details a process merged into the case record (update_case) are written with the step."""
        changed = [p for p in pending if p.scope.case_updates]
        if not changed:
            return
        case_id = changed[0].case_id
        # read under a row lock and merge only what this step changed, so a concurrent update of
        # other details is kept
        old = conn.execute(self.db.for_update(select(cases.c.data).where(cases.c.id == case_id))).scalar_one()
        merged = json.loads(old)
        for p in changed:
            merged.update(self._check_case(p.scope.case_updates))
        conn.execute(update(cases).where(cases.c.id == case_id)
                     .values(data=json.dumps(merged, sort_keys=True), updated_at=now))
        self._case_saved(conn, case_id)

    def _check_case(self, changes: dict[str, Any]) -> dict[str, Any]:
        """The registry's checks of details about to be saved (may normalise them or refuse the change)."""
        for check in getattr(self.registry, "case_checks", ()):
            changes = check(changes)
        return changes

    def _case_saved(self, conn: Connection, case_id: int) -> None:
        """The registry's listeners, in the transaction that changed the case (e.g. a search table kept in step)."""
        for listener in getattr(self.registry, "case_listeners", ()):
            listener(conn, case_id)

    def _write_instance(self, conn: Connection, now: datetime, p: _Pending, w: _Writes) -> dict[str, Any] | None:
        wf = p.workflow
        status = _status(p)
        done = status == "completed"
        params: dict[str, Any] = {"iid": p.instance_id, "expected": p.version, "st": status, "now": now}
        if done:
            data = json.dumps(self.codec.convert_data(_final_data(wf)), sort_keys=True)
            w.finish.append(dict(params, data=data))
            p.scope.events.append(Event("instance.completed", {"process_id": p.process_id},
                                        instance_id=p.instance_id))
        else:
            w.save.append(dict(params, state=self.codec.dump(wf)))
        w.documents.extend(dict(d, case_id=p.case_id, instance_id=p.instance_id, created_at=now)
                           for d in p.scope.documents)
        if not done and "carepath_saved" in conn.info:
            conn.info["carepath_saved"].append((p.instance_id, p.version + 1, wf))
        assert p.after is not None
        self._project_tasks(now, p, [] if done else p.after["rows"], w)
        self._project_timers(p, [] if done or status == "error" else p.after["timer_rows"],
                             full="error" in (status, p.old_status), w=w)
        if p.failure is None:
            return None
        inc_id = conn.execute(insert(incidents).values(
            instance_id=p.instance_id, case_id=p.case_id, task_id=p.failure.get("task_id"),
            element_id=p.failure.get("element_id"), handler=p.failure.get("handler"),
            message=p.failure["message"], inputs=json.dumps(p.failure.get("inputs") or {}, sort_keys=True),
            created_at=now).returning(incidents.c.id)).scalar_one()
        incident = {"id": inc_id, **{k: p.failure.get(k) for k in ("element_id", "handler", "message", "inputs")}}
        p.scope.events.append(Event("incident.opened", incident, instance_id=p.instance_id))
        return incident

    def _project_timers(self, p: _Pending, rows: list[dict[str, Any]], *, full: bool, w: _Writes) -> None:
        """Timer rows follow the workflow; only what changed is written (an instance in error has none)."""
        old = {} if full else {t["task_id"]: t["due_at"] for t in p.before["timer_rows"]}
        new = {t["task_id"]: t for t in rows}
        stale = [tid for tid, due in old.items() if tid not in new or new[tid]["due_at"] != due]
        if full:
            w.clear_timers.append(p.instance_id)
        w.drop_timers.extend(stale)
        w.add_timers.extend(dict(instance_id=p.instance_id, case_id=p.case_id, **t) for tid, t in new.items()
                            if tid not in old or tid in stale)

    def _project_tasks(self, now: datetime, p: _Pending, ready: list[dict[str, Any]], w: _Writes) -> None:
        existing = {t["id"]: t for t in p.before["rows"]}
        keep = {t["id"] for t in ready}
        w.drop_tasks.extend(sorted(set(existing) - keep))
        new = [t for t in ready if t["id"] not in existing]
        if new:
            w.add_tasks.extend([dict(
                id=t["id"], instance_id=p.instance_id, case_id=p.case_id, process_id=p.process_id,
                element_id=t["element_id"], name=t["name"], form=t["form"], team=t["team"],
                candidate_groups=json.dumps(t["candidate_groups"]), lane=t["lane"], assignee=t.get("assignee"),
                created_at=now, due_at=t["due_at"], revision=0) for t in new])
        for t in ready:  # due dates move when a timer is re-set
            if t["id"] in existing and existing[t["id"]]["due_at"] != t["due_at"]:
                w.task_due.append({"tid": t["id"], "due": t["due_at"]})

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
                      expected_revision: int | None = None) -> StepResult:
        """Complete a ready user task with the submitted form data (validated against its form)."""
        data = dict(data or {})
        with self._tx() as conn:
            self.db.require_initialised(conn)
            trow = conn.execute(_TASK_AND_INSTANCE, {"id": task_id}).first()
            if trow is None:
                self._raise_task_gone(conn, task_id)
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
            p = self._pending(now, row, wf)
            p.scope.events.append(Event("task.completed", {
                "task_id": task_id, "element_id": task.task_spec.bpmn_id, "name": _task_name(task),
                "data": data}, instance_id=row.id, actor=actor))

            def apply() -> None:
                task.data.update(data)
                task.run()

            children = self._advance(conn, now, p, actor, apply)
            return self._finish(conn, now, [p] + children, actor)

    def _pending(self, now: datetime, row: Any, wf: BpmnWorkflow) -> _Pending:
        return _Pending(row.id, row.case_id, row.version, row.process_id, wf,
                        self._scope(now, row.case_id, row.id, row.process_id, json.loads(row.case_data),
                                    row.case_reference),
                        _snapshot(wf), old_status=row.status)

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

        def check(trow: Any) -> None:
            if trow.assignee != actor:
                raise ConflictError(f"only the person the task is assigned to can save a draft of task {task_id} "
                                    f"(it is with {trow.assignee or 'nobody'}: claim it first)", task=task_id)
        return self._task_event(task_id, "task.draft_saved", actor, {"draft": json.dumps(data, sort_keys=True)},
                                expected_revision, check, event_data={"fields": sorted(data)})

    # ------------------------------------------------------------------ suspend and resume
    def suspend_instance(self, instance_id: int, *, reason: str, actor: str,
                         details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Pause an instance: no timer fires and no task completes until it is resumed (engine/suspension.py)."""
        return suspension.suspend_instance(self, instance_id, reason=reason, actor=actor, details=details)

    def resume_instance(self, instance_id: int, *, actor: str, mode: str = "remaining", reason: str | None = None,
                        details: dict[str, Any] | None = None,
                        then_start: dict[str, Any] | None = None) -> StepResult:
        """Resume a suspended instance with its timers' remaining time, or end it (and start another process)."""
        return suspension.resume_instance(self, instance_id, actor=actor, mode=mode, reason=reason, details=details,
                                          then_start=then_start)

    # ------------------------------------------------------------------ timers
    def fire_due_timers(self, *, batch: int = 50, limit: int | None = None) -> int:
        """Fire every timer due by now, each exactly once; returns how many instances moved."""
        moved, taken = 0, set()
        while limit is None or moved < limit:
            ids, n = self._fire_batch(batch)
            moved += n
            if not ids or n == 0 or taken.intersection(ids):
                # n == 0: every instance taken had nothing due after all (rows healed in _fire_instance); an
                # instance taken twice still had due rows after its step. Going on would take the same rows
                # again if they disagree with their workflows: stop (the next run tries again), never spin
                return moved
            taken.update(ids)
        return moved

    def claim_due(self, now: datetime, batch: int) -> Any:
        """The timer job's claim: up to `batch` running or waiting instances with a timer due by `now`,
        locked and skipping those another worker holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL)."""
        due = select(timers.c.instance_id).where(timers.c.due_at <= now)
        q = (select(instances.c.id).where(instances.c.id.in_(due), instances.c.status.in_(("running", "waiting")))
             .order_by(instances.c.id).limit(batch))
        return self.db.for_update(q, skip_locked=True)

    def _fire_batch(self, batch: int) -> tuple[list[int], int]:
        """One transaction over up to `batch` instances with due timers: (instances taken, instances moved)."""
        with self._tx() as conn:
            now = self.now(conn)
            ids = list(conn.execute(self.claim_due(now, batch)).scalars())
            # The rows are locked (PostgreSQL) or the database is ours alone (SQLite's BEGIN IMMEDIATE),
            # so no other step can change these instances before the batch commits.
            w = _Writes(getattr(self.registry, "document_listeners", ()))
            rows = {r.id: r for r in conn.execute(_LOAD_MANY, {"ids": ids})} if ids else {}
            moved = sum(self._fire_instance(conn, now, iid, w, rows.get(iid)) for iid in ids)
            w.flush(conn, now, lock=self.db.is_postgres)
            return ids, moved

    def _fire_instance(self, conn: Connection, now: datetime, instance_id: int, w: _Writes | None = None,
                       row: Any = None) -> bool:
        """Fire what is due in one instance; False when nothing was (its rows were already out of date)."""
        row, wf = self._load(conn, instance_id, row)
        p = self._pending(now, row, wf)
        if not _due_timers(p.before, now):
            # Another worker fired it between our query's snapshot and our row lock (PostgreSQL's
            # READ COMMITTED): write nothing, only bring the timer rows back in line with the workflow.
            heal = w if w is not None else _Writes(getattr(self.registry, "document_listeners", ()))
            self._project_timers(p, p.before["timer_rows"], full=True, w=heal)
            if w is None:
                heal.flush(conn, now, lock=self.db.is_postgres)
            self._live[instance_id] = (row.version, wf)
            return False
        children = self._advance(conn, now, p, "system")
        self._finish(conn, now, [p] + children, "system", writes=w)
        return True

    def next_due(self) -> datetime | None:
        with self.db.engine.connect() as conn:
            q = (select(func.min(timers.c.due_at)).join(instances, instances.c.id == timers.c.instance_id)
                 .where(instances.c.status.in_(("running", "waiting"))))
            value = conn.execute(q).scalar()
        return as_utc(value) if value is not None else None

    def advance_clock(self, by: timedelta | None = None, *, to: datetime | None = None,
                      actor: str = "system") -> int:
        """Move a simulated clock forward, firing everything that falls due on the way, in order."""
        with self.db.transaction() as conn:
            if self.clock_mode(conn) != "simulated":
                raise ClockError("this database runs on the real clock; only a database created with a "
                                 "simulated clock (carepath init --simulated) can be advanced")
            start = self.now(conn)
        target = as_utc(to) if to is not None else start + (by or timedelta(0))
        if target < start:
            raise ClockError(f"the clock cannot go back (it is {start.isoformat()}, asked for {target.isoformat()})")
        moved, last, repeats = 0, None, 0
        while True:
            nxt = self.next_due()
            if nxt is None or nxt > target:
                break
            repeats = repeats + 1 if nxt == last else 0
            if repeats >= _MAX_SAME_INSTANT:
                raise ClockError(f"advancing the clock stopped: timers kept falling due at {nxt.isoformat()} "
                                 f"{_MAX_SAME_INSTANT} times over without the clock moving on (the clock is "
                                 f"left at {nxt.isoformat()})")
            last = nxt
            with self.db.transaction() as conn:
                self._set_clock(conn, max(nxt, self.now(conn)))
            n = self.fire_due_timers()
            moved += n
            if n == 0:  # due rows that cannot fire (e.g. an instance in error) must not spin forever
                break
        with self.db.transaction() as conn:
            self._set_clock(conn, target)
            history.append(conn, history.SYSTEM_CHAIN, None, target, [Event("clock.advanced", {
                "from": history.iso(start), "to": history.iso(target), "instances_moved": moved}, actor=actor)],
                lock=self.db.is_postgres)
        return moved

    # ------------------------------------------------------------------ messages (engine/messages.py)
    #: how long a message nothing waits for is kept (ISO 8601 text or timedelta; None: CAREPATH_MESSAGE_TTL or P7D)
    message_ttl: Any = None

    def deliver_message(self, name: str, *, case_id: int | None = None, correlation: dict[str, Any] | None = None,
                        data: dict[str, Any] | None = None, key: str | None = None,
                        actor: str = "system") -> messages.MessageResult:
        """Deliver a message by name to a case (its waiting receiver, a message start event, or kept), once."""
        return messages.deliver(self, name, case_id=case_id, correlation=correlation, data=data, key=key,
                                actor=actor)

    # ------------------------------------------------------------------ incidents
    def incidents(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        q = select(incidents).order_by(incidents.c.id)
        if open_only:
            q = q.where(incidents.c.resolved_at.is_(None))
        with self.db.engine.connect() as conn:
            return [dict(r._mapping, inputs=json.loads(r.inputs)) for r in conn.execute(q)]

    def retry(self, instance_id: int, *, actor: str = "system") -> StepResult:
        """Re-run what failed in an instance in error (the failed handler, gateway or script)."""
        with self._tx() as conn:
            row, wf = self._load(conn, instance_id)
            if row.status != "error":
                raise StateError(f"process instance {instance_id} is {row.status}, not in error: nothing to retry",
                                 instance=instance_id)
            now = self.now(conn)
            open_ids = list(conn.execute(select(incidents.c.id).where(
                incidents.c.instance_id == instance_id, incidents.c.resolved_at.is_(None))).scalars())
            conn.execute(update(incidents).where(incidents.c.id.in_(open_ids)).values(resolved_at=now,
                                                                                      resolved_by=actor))
            p = self._pending(now, row, wf)
            p.scope.events.append(Event("incident.retried", {"incident_ids": open_ids}, instance_id=instance_id,
                                        actor=actor))

            def apply() -> None:
                for t in wf.get_tasks(state=TaskState.ERROR):
                    t._set_state(TaskState.READY)
                    if isinstance(t.task_spec, Assigned):  # a user task whose assignment failed: evaluate it again
                        t.task_spec.assign(t)

            children = self._advance(conn, now, p, actor, apply)
            return self._finish(conn, now, [p] + children, actor)

    # ------------------------------------------------------------------ history
    def history(self, case_id: int) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            if conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None:
                raise NotFoundError(f"no case {case_id}", case=case_id)
            rows = conn.execute(select(events).where(events.c.chain == case_chain(case_id))
                                .order_by(events.c.seq)).all()
        return [dict(r._mapping, data=json.loads(r.data)) for r in rows]

    def verify(self, case_id: int | None = None) -> tuple[int, list[history.Finding]]:
        with self.db.engine.connect() as conn:
            return history.verify(conn, case_chain(case_id) if case_id is not None else None)

    def documents(self, case_id: int) -> list[dict[str, Any]]:
        """The documents (letters) filed on a case, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(documents).where(documents.c.case_id == case_id)
                                .order_by(documents.c.id)).all()
        return [dict(r._mapping, created_at=as_utc(r.created_at)) for r in rows]

    def chain_heads(self) -> dict[str, dict[str, Any]]:
        """Each history chain's last event number and hash, to be recorded outside the database."""
        with self.db.engine.connect() as conn:
            return {r.chain: {"seq": r.seq, "hash": r.hash} for r in conn.execute(select(chains))}

    def instance_snapshot(self, instance_id: int) -> dict[str, Any]:
        """What replay compares: status, waiting user tasks and timers, and the data."""
        with self.db.engine.connect() as conn:
            row = conn.execute(select(instances).where(instances.c.id == instance_id)).first()
            if row is None:
                raise NotFoundError(f"no process instance {instance_id}", instance=instance_id)
            if row.state is None:
                return {"status": row.status, "tasks": [], "timers": [], "data": json.loads(row.data or "{}")}
            loaded = self.specs.get(conn, row.process_version_id)
        wf = self.codec.load(row.state, loaded.spec, loaded.subprocess_specs)
        snap = _snapshot(wf)
        return {"status": row.status,
                "tasks": sorted(t["element_id"] for t in snap["tasks"].values()),
                "timers": sorted((t["element_id"], t["due_at"]) for t in snap["timers"].values()),
                "data": self.codec.convert_data(_final_data(wf))}


# ---------------------------------------------------------------------- workflow reading helpers
def _task_name(task: Any) -> str:
    spec = task.task_spec
    return getattr(spec, "bpmn_name", None) or getattr(spec, "description", None) or spec.bpmn_id or spec.name


def _extensions(task: Any) -> dict[str, Any]:
    return getattr(task.task_spec, "extensions", None) or {}


def _all_tasks(wf: BpmnWorkflow) -> Iterator[Any]:
    """Every task of the workflow and its subprocesses, in creation order (the same on restore and replay).

    Straight from the task dictionaries: SpiffWorkflow's tree iterator costs more than the step's SQL.
    """
    yield from wf.tasks.values()
    for sub in wf.subprocesses.values():
        yield from sub.tasks.values()


def _snapshot(wf: BpmnWorkflow) -> dict[str, Any]:
    """One pass over the task tree: ready user tasks and waiting timers, as events and as rows."""
    ready: list[Any] = []
    waiting: list[tuple[Any, datetime]] = []
    fired: list[tuple[Any, datetime]] = []
    timer_specs: dict[Any, Any] = {}
    for t in _all_tasks(wf):
        if t.state == TaskState.READY:
            if t.task_spec.manual:
                ready.append(t)
        elif t.state == TaskState.COMPLETED:
            due = _fired_boundary_due(t)
            if due is not None:
                fired.append((t, due))
        else:
            found = waiting_timer(t)  # a timer event, or the first due of an event-based gateway's timers
            if found is not None:
                waiting.append((t, found[1]))
                timer_specs[t.id] = found[0]
    # a user task's due date: the earliest timer on its boundary (deadline or escalation); once
    # every one has fired (a non-interrupting escalation), the last that fired: it stays overdue
    due_by_parent: dict[Any, datetime] = {}
    for t, due in waiting:
        if t.parent is not None:
            key = t.parent.id
            due_by_parent[key] = min(due, due_by_parent.get(key, due))
    passed: dict[Any, datetime] = {}
    for t, due in fired:
        passed[t.parent.id] = max(due, passed.get(t.parent.id, due))
    for key, due in passed.items():
        due_by_parent.setdefault(key, due)
    rows, tasks_ = [], {}
    for task in ready:
        ext = _extensions(task)
        lane = getattr(task.task_spec, "lane", None)
        assigned = task._get_internal_data(ASSIGNMENT_KEY) or {}  # the diagram's assignee, groups, due date
        groups = list(assigned.get("candidate_groups") or ext.get("candidate_groups") or ([lane] if lane else []))
        tid, element, name = str(task.id), task.task_spec.bpmn_id, _task_name(task)
        tasks_[tid] = {"task_id": tid, "element_id": element, "name": name}
        if assigned.get("assignee"):  # the diagram gave it to someone: the history says so
            tasks_[tid]["assignee"] = assigned["assignee"]
        rows.append({"id": tid, "element_id": element, "name": name, "form": ext.get("form"),
                     "team": groups[0] if groups else None, "candidate_groups": groups, "lane": lane,
                     "assignee": assigned.get("assignee"),
                     "due_at": parse_date(assigned["due_at"]) if assigned.get("due_at") else
                     due_by_parent.get(task.parent.id) if task.parent is not None else None})
    timers_, timer_rows = {}, []
    for t, due in waiting:
        tid, spec = str(t.id), timer_specs[t.id]
        name = getattr(spec, "bpmn_name", None) or spec.bpmn_id if spec is not t.task_spec else _task_name(t)
        timers_[tid] = {"task_id": tid, "element_id": spec.bpmn_id, "due_at": history.iso(due)}
        timer_rows.append({"task_id": tid, "element_id": spec.bpmn_id, "name": name,
                           "attached_to": _attached_to(t), "due_at": due})
    return {"tasks": tasks_, "timers": timers_, "rows": rows, "timer_rows": timer_rows}


def _fired_boundary_due(task: Any) -> datetime | None:
    """When a boundary timer that has fired (and left its task running) fell due; else None."""
    parent = task.parent
    if parent is None or "BoundaryEventSplit" not in type(parent.task_spec).__name__:
        return None
    if not isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
        return None
    value = task._get_internal_data("event_value")
    if value is None or isinstance(value, dict):  # not started, or a cycle: no single due date
        return None
    return parse_date(str(value))


def _attached_to(task: Any) -> str | None:
    parent = task.parent
    if parent is None or "BoundaryEventSplit" not in type(parent.task_spec).__name__:
        return None
    main = [c for c in parent.children if c is not task and timer_due(c) is None
            and "Boundary" not in type(c.task_spec).__name__]
    return main[0].task_spec.bpmn_id if main else None


#: `advance_clock` gives up when the next due instant stays the same this many rounds (a timer re-armed at
#: its own instant, or rows that disagree with their workflows): a clear error instead of a hang
_MAX_SAME_INSTANT = 100


def _due_timers(before: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The timers of a snapshot that are due by `now`, in due order."""
    cutoff = history.iso(now)
    return sorted((t for t in before["timers"].values() if t["due_at"] <= cutoff),
                  key=lambda t: (t["due_at"], t["element_id"]))


def _fired_timers(before: dict[str, Any], wf: BpmnWorkflow, now: datetime) -> list[dict[str, Any]]:
    """The timers that were due at the start of the step and fired in it (in due order).

    Any step fires what is due — not only the timer job's — so a completion that comes after
    an unfired deadline records the deadline first. A timer whose task was finished first
    (its boundary cancelled) did not fire.
    """
    due = _due_timers(before, now)
    if not due:
        return []
    live = {str(t.id): t for t in _all_tasks(wf)}
    fired = []
    for t in due:
        task = live.get(t["task_id"])
        if task is None or task.state == TaskState.CANCELLED:
            continue
        if task.state == TaskState.WAITING and history.iso(timer_due(task) or now) == t["due_at"]:
            continue  # still waiting for the same moment: it did not fire
        fired.append({"task_id": t["task_id"], "element_id": t["element_id"], "due_at": t["due_at"]})
    return fired


def _derived_events(before: dict[str, Any], after: dict[str, Any], instance_id: int) -> list[Event]:
    evs: list[Event] = []
    for tid, t in before["tasks"].items():
        if tid not in after["tasks"]:
            evs.append(Event("task.left", t, instance_id=instance_id))
    for tid, t in after["tasks"].items():
        if tid not in before["tasks"]:
            evs.append(Event("task.ready", t, instance_id=instance_id))
    for tid, t in before["timers"].items():
        if tid not in after["timers"]:
            evs.append(Event("timer.cleared", t, instance_id=instance_id))
    for tid, t in after["timers"].items():
        if before["timers"].get(tid, {}).get("due_at") != t["due_at"]:
            evs.append(Event("timer.set", t, instance_id=instance_id))
    return evs


def _final_data(wf: BpmnWorkflow) -> dict[str, Any]:
    data: dict[str, Any] = {}
    last = wf.last_task
    if last is not None:
        data.update(last.data)
    data.update(wf.data)
    return data


def _failure_from(wf: BpmnWorkflow, exc: Exception) -> dict[str, Any]:
    failed = wf.get_tasks(state=TaskState.ERROR)
    task = failed[0] if failed else None
    return {"handler": None, "element_id": task.task_spec.bpmn_id if task is not None else None,
            "task_id": str(task.id) if task is not None else None, "inputs": {},
            "message": f"{type(exc).__name__}: {exc}"}


def _status(p: _Pending) -> str:
    if p.failure is not None:
        return "error"
    if p.workflow.completed:
        return "completed"
    return "waiting"


def _task_row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["candidate_groups"] = json.loads(d["candidate_groups"])
    if d.get("draft") is not None:
        d["draft"] = json.loads(d["draft"])
    for k in ("created_at", "due_at"):
        if d.get(k) is not None:
            d[k] = as_utc(d[k])
    return d


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
        return True
    except ValueError:
        return False


__all__ = ["Engine", "StepResult"]
