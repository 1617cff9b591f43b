"""The step machinery: one step, one transaction, for one or more process instances.

A step restores an instance's workflow (`_load`, or the copy this process saved last), applies the
input, lets SpiffWorkflow run until every path waits (`_advance`: timers fired, child processes
started, a failure made an incident), then writes the workflow, the projected task and timer rows,
documents and history events together (`_finish`, `_write_instance`, `_project_*`, gathered in
`_Writes`). A crash anywhere leaves the last committed state.

`StepCore` is the base of `Engine` (engine/runtime.py); the task, timer and case operations
(engine/task_ops.py, timer_ops.py, case_ops.py) are steps built on it. It relies on what
`Engine.__init__` sets (db, registry, codec, specs, script_engine, _live, _latest_versions,
_replay_outputs, _replay_child_versions), on `Engine.now`, and on the case record hooks
`_check_case`/`_case_saved` (engine/case_ops.py).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection, String, bindparam, cast, delete, exists, insert, literal, or_, select, update

from . import definitions, driver_sql, history, lifecycle, messages, pg_batch
from .db import Database
from .driver_sql import Prepared
from .errors import ConflictError, HandlerFailed, NotFoundError, StateError
from .history import Event, case_chain
from .registry import HandlerRegistry
from .schema import cases, chains, documents, incidents, instances, process_versions, tasks, timers
from .scripting import CarepathScriptEngine, ChildStart, ReplayMismatch, StepScope
from .simulation import UNSAVED_STATE
from .state import STATE_FORMAT, StateCodec
from .step_limits import StepCounter, counting, stop_counting
from .task_tree import CarepathWorkflow
from .workflow_state import _derived_events, _failure_from, _final_data, _fired_timers, _snapshot

_DROP_TASKS = delete(tasks).where(tasks.c.id.in_(bindparam("ids", expanding=True)))
_ADD_TASKS = insert(tasks)
_SAVE_INSTANCE = Prepared(update(instances)
                  .where(instances.c.id == bindparam("iid"), instances.c.version == bindparam("expected"))
                  .values(version=instances.c.version + 1, status=bindparam("st"), updated_at=bindparam("now"),
                          state=bindparam("state"), state_format=STATE_FORMAT))
_FINISH_INSTANCE = Prepared(update(instances)
                    .where(instances.c.id == bindparam("iid"), instances.c.version == bindparam("expected"))
                    .values(version=instances.c.version + 1, status=bindparam("st"), updated_at=bindparam("now"),
                            completed_at=bindparam("now"), state=None, data=bindparam("data")))
_MOVE_TASK_DUE = Prepared(update(tasks).where(tasks.c.id == bindparam("tid")).values(due_at=bindparam("due")))
_CLEAR_TIMERS = delete(timers).where(timers.c.instance_id.in_(bindparam("ids", expanding=True)))
#: a stale timer by its instance (the instance's index) and its task: `timers` has no index on task_id, and by task id
#: alone every such delete read the whole table (a county year's simulation, a live database's every timer)
_DROP_TIMERS = delete(timers).where(timers.c.instance_id.in_(bindparam("iids", expanding=True)),
                                    timers.c.task_id.in_(bindparam("ids", expanding=True)))
_DROP_TASK = Prepared(delete(tasks).where(tasks.c.id == bindparam("id")))
#: the columns of a task row a step writes (`_project_tasks`); the others start empty
_TASK_COLUMNS = ("id", "instance_id", "case_id", "process_id", "element_id", "name", "form", "team", "candidate_groups",
                 "lane", "assignee", "created_at", "due_at", "revision", "follow_up_at", "candidate_users")
#: SQLite: a task row that leaves becomes the row of a task that arrives (one statement instead of a DELETE
#: and an INSERT, and only the indexes whose columns change are written); every column is set
_REUSE_TASK = Prepared(update(tasks).where(tasks.c.id == bindparam("old"))
                       .values({**{c: bindparam(f"t_{c}", type_=tasks.c[c].type) for c in _TASK_COLUMNS},
                                **{c.name: None for c in tasks.c if c.name not in _TASK_COLUMNS}}))
_TASKS_THERE = Prepared(select(tasks.c.id).where(tasks.c.id == bindparam("id")))
_CLEAR_TIMER = Prepared(delete(timers).where(timers.c.instance_id == bindparam("id")))
_DROP_TIMER = Prepared(delete(timers).where(timers.c.instance_id == bindparam("iid"),
                                            timers.c.task_id == bindparam("id")))
_ADD_TIMERS = insert(timers)
_ADD_DOCUMENTS = insert(documents)
#: a document filed by a handler (engine/scripting.py `_document`), its id returned for the step's listeners
_FILE_DOCUMENT = Prepared(insert(documents).returning(documents.c.id), column_keys=(
    "handler", "element_id", "kind", "title", "body", "case_id", "instance_id", "created_at"))
_CASE_COLUMNS = (cases.c.data.label("case_data"), cases.c.reference.label("case_reference"),
                 chains.c.seq.label("chain_seq"), chains.c.hash.label("chain_hash"))
#: a case's history chain ("case:<id>", engine/history.py), joined so a step reads its head with its instance
_CASE_CHAIN = chains.c.chain == literal("case:") + cast(cases.c.id, String)
_LOAD = Prepared(select(instances, *_CASE_COLUMNS).join(cases, cases.c.id == instances.c.case_id)
         .outerjoin(chains, _CASE_CHAIN).where(instances.c.id == bindparam("id")))
_CASE_FOR_START = Prepared(select(cases.c.data, cases.c.reference, chains.c.seq.label("chain_seq"),
                          chains.c.hash.label("chain_hash"))
                   .outerjoin(chains, _CASE_CHAIN).where(cases.c.id == bindparam("id")))
_INSTANCE_COLUMNS = ("case_id", "process_version_id", "process_id", "parent_instance_id", "status", "version",
                     "state_format", "state", "started_at", "updated_at")
_NEW_INSTANCE = Prepared(insert(instances).returning(instances.c.id), _INSTANCE_COLUMNS)
#: a start with the latest version cached: inserted only while no newer version of the process exists
_NEW_INSTANCE_IF_LATEST = Prepared(insert(instances).from_select(
    _INSTANCE_COLUMNS,
    select(*[bindparam(c, type_=instances.c[c].type) for c in _INSTANCE_COLUMNS])
    .where(~exists().where(process_versions.c.process_id == bindparam("process_id"),
                           process_versions.c.version > bindparam("latest"))))
    .returning(instances.c.id))

#: simulation mode: a workflow kept in memory written when it leaves the cache (engine/simulation.py)
_KEEP_STATE = Prepared(update(instances)
                       .where(instances.c.id == bindparam("iid"), instances.c.version == bindparam("v"))
                       .values(state=bindparam("state")))
#: the case's details, read under a row lock where the database has them, and written back (`_save_case_data`)
_CASE_DATA = Prepared(select(cases.c.data).where(cases.c.id == bindparam("cid")))
_CASE_DATA_LOCKED = Prepared(_CASE_DATA.stmt.with_for_update())
_SAVE_CASE_DATA = Prepared(update(cases).where(cases.c.id == bindparam("cid"))
                           .values(data=bindparam("d"), updated_at=bindparam("at")))
#: `open_processes()` in scripts (compiled once: an IN list of literals would be expanded at every call)
_OPEN_PROCESSES = Prepared(select(instances.c.process_id).where(
    instances.c.case_id == bindparam("cid"), instances.c.id != bindparam("iid"),
    or_(*(instances.c.status == s for s in lifecycle.OPEN_STATUSES))))


class _NewerVersion(Exception):
    """A start with a cached latest version found a newer one deployed: start again, reading it."""


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
    #: the case chain's head (seq, hash) as read with the instance, None if the chain has none yet; only
    #: when `head_known` (engine/history.py `append_many` then need not read it again)
    head: tuple[int, str] | None = None
    head_known: bool = False


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
        self.drop_timers: list[tuple[int, str]] = []  # (instance id, task id)
        self.clear_timers: list[int] = []
        self.add_timers: list[dict[str, Any]] = []
        self.events: list[tuple[str, int | None, list[Event]]] = []
        self.documents: list[dict[str, Any]] = []
        self.heads: dict[str, tuple[int, str] | None] = {}  # chain heads read with the instances

    def dropped_timers(self) -> dict[str, list[Any]]:
        """The stale timers as one statement's lists: their instances (for the index) and their tasks."""
        return {"iids": sorted({iid for iid, _ in self.drop_timers}), "ids": [tid for _, tid in self.drop_timers]}

    def flush(self, conn: Connection, now: datetime, *, lock: bool) -> None:
        if conn.dialect.name == "postgresql" and not (self.documents and self.filed):
            pg_batch.queue_writes(conn, self, now, lock=lock)  # sent with the COMMIT: one round trip
            return
        for stmt, rows in ((_SAVE_INSTANCE, self.save), (_FINISH_INSTANCE, self.finish)):
            if not rows:
                continue
            if len(rows) == 1:
                changed = stmt.run(conn, rows[0]).rowcount
            elif conn.dialect.supports_sane_multi_rowcount:
                changed = stmt.run_many(conn, rows)
            else:
                changed = sum(stmt.run(conn, r).rowcount for r in rows)
            if changed != len(rows):
                raise ConflictError("this case changed while your change was being made (another request got "
                                    "there first); nothing was saved — reload and try again",
                                    instance=rows[0]["iid"] if len(rows) == 1 else None)
        sqlite = conn.dialect.name == "sqlite"
        # on SQLite a list of ids is an executemany of one fixed statement (IN (?, ?, ...) would be new SQL text
        # for every length); elsewhere one statement with the list
        drop_tasks, add_tasks = self.drop_tasks, self.add_tasks
        told = conn.info.get("carepath_task_changes")  # Engine.on_tasks_changed: told after the commit
        if told is not None and (add_tasks or drop_tasks):
            told.append(([dict(r) for r in add_tasks], list(drop_tasks)))
        if self.add_timers and "carepath_simulation" in conn.info:  # engine/simulation.py: its due floor
            conn.info["carepath_simulation"].timers_written(self.add_timers)
        if sqlite and drop_tasks and add_tasks and all(len(r) == len(_TASK_COLUMNS) for r in add_tasks):
            drop_tasks, add_tasks = _reuse_task_rows(conn, drop_tasks, add_tasks)
        for one, each, ids in ((_DROP_TASK, _DROP_TASKS, drop_tasks), (_CLEAR_TIMER, _CLEAR_TIMERS,
                                self.clear_timers)):
            if ids and sqlite:
                one.run_many(conn, [{"id": i} for i in ids])
            elif ids:
                conn.execute(each, {"ids": ids})
        if self.drop_timers and sqlite:
            _DROP_TIMER.run_many(conn, [{"iid": iid, "id": tid} for iid, tid in self.drop_timers])
        elif self.drop_timers:
            conn.execute(_DROP_TIMERS, self.dropped_timers())
        if add_tasks:
            driver_sql.insert_rows(conn, _ADD_TASKS, add_tasks)
        if self.task_due:
            _MOVE_TASK_DUE.run_many(conn, self.task_due)
        if self.add_timers:
            driver_sql.insert_rows(conn, _ADD_TIMERS, self.add_timers)
        if self.documents and self.filed:
            if sqlite:  # one prepared INSERT … RETURNING a document, straight to the driver
                ids = [_FILE_DOCUMENT.scalar(conn, d) for d in self.documents]
            else:
                ids = conn.execute(_ADD_DOCUMENTS.returning(documents.c.id, sort_by_parameter_order=True),
                                   self.documents).scalars().all()
            filed = [dict(d, id=i) for d, i in zip(self.documents, ids, strict=True)]
            for listener in self.filed:
                listener(conn, filed)
        elif self.documents:
            driver_sql.insert_rows(conn, _ADD_DOCUMENTS, self.documents)
        history.append_many(conn, now, self.events, lock=lock, known=self.heads)


def _reuse_task_rows(conn: Connection, drop: list[str], add: list[dict[str, Any]]
                     ) -> tuple[list[str], list[dict[str, Any]]]:
    """SQLite: rewrite the rows of tasks that left as the rows of tasks that arrived (`_REUSE_TASK`).
    Returns the rows still to delete and to insert: the unpaired ones, and any whose old row was not there."""
    n = min(len(drop), len(add))
    changed = _REUSE_TASK.run_many(conn, [{"old": old, **{f"t_{k}": v for k, v in row.items()}}
                                          for old, row in zip(drop, add, strict=False)])
    rest = add[n:]
    if changed != n:  # a row that should have been there was not: its task is inserted instead
        rest = [r for r in add[:n] if _TASKS_THERE.first(conn, {"id": r["id"]}) is None] + rest
    return drop[n:], rest


def _free_tree(wf: BpmnWorkflow) -> None:
    """Empty a completed workflow's task dictionaries (its own and its subprocesses').

    A task points at its workflow and the workflow at its tasks, so a workflow nobody uses any more is a
    cycle that only Python's cycle collector frees — in a simulation, every finished case's tree, and the
    collector's walks over them were a large part of its 7–9% of the run (docs/performance.md). Emptied, the
    tasks are freed at once by reference counting. Only for a workflow whose instance completed in a
    committed step: nothing reads it again (its final data was written with the step)."""
    for sub in list(wf.subprocesses.values()):
        sub.tasks.clear()
    wf.subprocesses.clear()
    wf.tasks.clear()


class StepCore:
    """Starting an instance and the step that moves any instance: load, advance, write."""

    # set by Engine.__init__ (engine/runtime.py)
    db: Database
    registry: HandlerRegistry
    codec: StateCodec
    specs: definitions.SpecCache
    script_engine: CarepathScriptEngine
    LIVE_CACHE_SIZE: int
    _replay_outputs: list[dict[str, Any]] | None
    _replay_child_versions: list[tuple[str, int]] | None  # (process id, version id) recorded for a replayed step
    _live: OrderedDict[int, tuple[int, BpmnWorkflow]]
    _latest_versions: dict[str, Any]  # process id -> its latest version row, as this process last read it
    simulation: Any  # engine/simulation.py's SimulationMode, or None (the live engine)
    _task_listeners: list[Callable[[list[dict[str, Any]], list[str]], None]]  # Engine.on_tasks_changed

    # ------------------------------------------------------------------ instances
    def start(self, process_id: str, *, case_id: int | None = None, data: dict[str, Any] | None = None,
              actor: str = "system", title: str | None = None, version: int | None = None,
              authorise: Callable[[Connection], None] | None = None) -> StepResult:
        """Start a process (for an existing case, or a new one) and run it until every path waits.

        `authorise(conn)`, when given, runs in the step's transaction (the API's access check and its access-log
        row, api/case_start.py) before anything else is checked, once an existing case is found (an unknown
        `case_id` is a NotFoundError first, so the check need not read the case again): what it raises ends the
        start with nothing saved."""
        data = dict(data or {})
        history.refuse_unstorable(data, f"the start data of {process_id!r}", process=process_id)
        history.refuse_unstorable(title, "the new case's title", process=process_id)
        try:
            return self._start(process_id, case_id, data, actor, title, version, authorise, cached=True)
        except _NewerVersion:  # deployed since it was cached (by another process): read it and start again
            self._latest_versions.pop(process_id, None)
            return self._start(process_id, case_id, data, actor, title, version, authorise, cached=False)

    def _start(self, process_id: str, case_id: int | None, data: dict[str, Any], actor: str, title: str | None,
               version: int | None, authorise: Callable[[Connection], None] | None, *, cached: bool) -> StepResult:
        with self._tx() as conn:
            self.db.require_initialised(conn)
            found = None
            if case_id is not None:  # the case first (with BEGIN on PostgreSQL), then `authorise`
                found = (pg_batch.first(conn, _CASE_FOR_START.stmt, {"id": case_id})
                         if self.db.is_postgres else _CASE_FOR_START.first(conn, {"id": case_id}))
                if found is None:
                    raise NotFoundError(f"no case {case_id}", case=case_id)
            if authorise is not None:
                authorise(conn)
            now = self.now(conn)
            # the latest version, as this process last read it: not read again, but the instance is inserted
            # only if no newer one exists (_NEW_INSTANCE_IF_LATEST), else the start is made again
            pv = self._latest_versions.get(process_id) if version is None and cached else None
            guard = pv.version if pv is not None else None
            if pv is None:
                pv = definitions.resolve_version(conn, process_id, version)
                if version is None:
                    self._latest_versions[process_id] = pv
            lead: list[Event] = []
            if case_id is None:  # a new case and its first process: one step, one transaction
                case_id = self._create_case(conn, now, title or data.get("name") or pv.name, {}, actor, None,
                                            defer=lead)
                case_data: dict[str, Any] = {}
                reference = f"CASE-{case_id:06d}"  # as _create_case names it
                head: tuple[int, str] | None = None  # its history chain starts with this step
            else:
                assert found is not None
                case_data, reference = json.loads(found.data), found.reference
                if case_data.get(lifecycle.CLOSED_KEY):
                    raise StateError(f"case {case_id} is closed: reopen it before starting anything on it",
                                     case=case_id)
                head = (found.chain_seq, found.chain_hash) if found.chain_seq is not None else None
            pending = self._start_instance(conn, now, case_id, pv.id, data, actor, parent=None, case_data=case_data,
                                           case_reference=reference, latest=guard)
            pending[0].head, pending[0].head_known = head, True
            return self._finish(conn, now, pending, actor, lead)

    def _start_instance(self, conn: Connection, now: datetime, case_id: int, version_id: int,
                        data: dict[str, Any], actor: str, parent: int | None,
                        element_id: str | None = None, case_data: dict[str, Any] | None = None,
                        on_start: Callable[[BpmnWorkflow], None] | None = None,
                        case_reference: str | None = None, latest: int | None = None,
                        nesting: int = 0) -> list[_Pending]:
        """`case_data` and `case_reference`: the case's, when the caller holds them (else they are read).
        `latest`: the version number believed latest; a newer one raises _NewerVersion, nothing inserted."""
        loaded = self.specs.get(conn, version_id)
        if loaded.info.get("initiator"):  # camunda:initiator: the process data names who started it
            data = {**data, loaded.info["initiator"]: actor}
        if case_data is None or case_reference is None:
            case_row = conn.execute(select(cases.c.data, cases.c.reference).where(cases.c.id == case_id)).one()
            case_data = json.loads(case_row.data) if case_data is None else case_data
            case_reference = case_row.reference
        values = dict(case_id=case_id, process_version_id=version_id, process_id=loaded.process_id,
                      parent_instance_id=parent, status="running", version=0, state_format=STATE_FORMAT, state=None,
                      started_at=now, updated_at=now)
        if self.db.is_postgres:  # with what is queued before it, in one round trip (engine/pg_batch.py)
            found = pg_batch.first(conn, *((_NEW_INSTANCE.stmt, values) if latest is None
                                           else (_NEW_INSTANCE_IF_LATEST.stmt, dict(values, latest=latest))))
            iid = found.id if found is not None else None
        elif latest is None:
            iid = _NEW_INSTANCE.scalar(conn, values)
        else:
            iid = _NEW_INSTANCE_IF_LATEST.scalar(conn, dict(values, latest=latest))
        if iid is None:
            raise _NewerVersion(loaded.process_id)
        wf = CarepathWorkflow(loaded.spec, loaded.subprocess_specs, script_engine=self.script_engine)
        for t in wf.get_tasks(state=TaskState.READY):
            t.data.update(data)
        scope = self._scope(now, case_id, iid, loaded.process_id, case_data, case_reference)
        scope.nesting = nesting
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
            row = _LOAD.first(conn, {"id": instance_id})
        if row is None:
            raise NotFoundError(f"no process instance {instance_id}", instance=instance_id)
        if row.state is None:
            raise StateError(f"process instance {instance_id} is {row.status}: nothing more can happen in it",
                             instance=instance_id, case=row.case_id)
        loaded = self.specs.get(conn, row.process_version_id)
        cached = self._live.pop(instance_id, None)
        if cached is not None and cached[0] == row.version:
            if "carepath_taken" in conn.info:  # simulation mode: put back should the step fail (see _tx)
                conn.info["carepath_taken"].append((instance_id, cached))
            return row, cached[1]  # exactly what this process saved as that version: no need to restore it
        if row.state == UNSAVED_STATE:
            raise StateError(f"simulation: the workflow of process instance {instance_id} was not kept in memory",
                             instance=instance_id)
        wf = self.codec.load(row.state, loaded.spec, loaded.subprocess_specs)
        wf.script_engine = self.script_engine
        return row, wf

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A step's transaction; the workflows it saved are kept in memory only once it has committed."""
        saved: list[tuple[int, int, BpmnWorkflow, dict[str, Any]]] = []
        finished: list[BpmnWorkflow] = []  # workflows whose instance the step completed
        listeners = self._task_listeners
        changes: list[tuple[list[dict[str, Any]], list[str]]] = []
        taken: list[tuple[int, tuple[int, BpmnWorkflow]]] = []  # simulation mode: workflows taken from memory
        try:
            with self.db.transaction() as conn:
                conn.info["carepath_saved"] = saved
                conn.info["carepath_finished"] = finished
                if listeners:
                    conn.info["carepath_task_changes"] = changes
                if self.simulation is not None:
                    conn.info["carepath_taken"] = taken
                try:
                    yield conn
                    messages.deliver_thrown(self, conn)  # any a batch left (none, as a rule)
                finally:
                    messages.forget_thrown(conn)
                    conn.info.pop("carepath_saved", None)
                    conn.info.pop("carepath_finished", None)
                    conn.info.pop("carepath_task_changes", None)
                    conn.info.pop("carepath_taken", None)
        except BaseException:
            # simulation mode keeps a waiting workflow only in memory (engine/simulation.py): a step refused before
            # it ran (a form's answers, a task no longer open) leaves it as it was
            for iid, entry in taken:
                self._live.setdefault(iid, entry)
            raise
        for wf in finished:  # committed: nothing reads a completed instance's workflow again
            self._let_go(wf)
        for added, removed in changes:  # committed: tell who listens (Engine.on_tasks_changed)
            for listener in listeners:
                listener(added, removed)
        for iid, version, wf, after in saved:
            wf._carepath_after = (version, after)  # type: ignore[attr-defined]  # its snapshot: see _pending
            self._live[iid] = (version, wf)
            self._live.move_to_end(iid)
        evicted = []
        while len(self._live) > self.LIVE_CACHE_SIZE:
            evicted.append(self._live.popitem(last=False))
        if evicted and self.simulation is not None:  # its state was not written with its step: write it now
            with self.db.transaction() as conn:
                _KEEP_STATE.run_many(conn, [{"iid": iid, "v": version, "state": self.codec.dump(wf)}
                                            for iid, (version, wf) in evicted])

    def _let_go(self, wf: BpmnWorkflow) -> None:
        """A completed instance's workflow, after its step committed: its tree freed (`_free_tree`). An engine
        that reads finished workflows after their step (the timeline's replay, engine/timeline.py) keeps them."""
        _free_tree(wf)

    def _advance(self, conn: Connection, now: datetime, p: _Pending, actor: str,
                 apply: Callable[[], None] | None = None) -> list[_Pending]:
        """Run the workflow until it waits; derive events; start child processes. Returns children."""
        case_id, instance_id = p.case_id, p.instance_id  # not `p` itself: the scope would hold its own holder
        p.scope.open_reader = lambda: self._open_processes(conn, case_id, instance_id)
        token = self.script_engine.enter(p.scope)
        counter = StepCounter(self.step_limits)
        counted = counting(counter)
        mark = len(p.scope.events)  # timer events go after the step's input, before what they caused
        thrown_from = len(p.workflow.bpmn_events)  # events left there by older steps are not this step's
        throwers = messages.throwers_done(p.workflow)  # None, at no cost, for a workflow that throws no message
        try:
            try:
                if apply is not None:
                    apply()
                p.workflow.refresh_timers()
                p.workflow.do_engine_steps()
                counter.check_depth()  # work past the depth the library looks at would wait for ever
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
            stop_counting(counted)
            self.script_engine.leave(token)
        p.scope.thrown.extend(messages.thrown_in_step(p.workflow, thrown_from, throwers))
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
        return [r[0] for r in _OPEN_PROCESSES.run(conn, {"cid": case_id, "iid": instance_id}).fetchall()]

    def _start_child(self, conn: Connection, now: datetime, parent: _Pending, child: ChildStart,
                     actor: str) -> list[_Pending]:
        version_id = self._replayed_child_version(child.process_id)
        if version_id is None:
            version_id = definitions.resolve_version(conn, child.process_id).id
        started = self._start_instance(conn, now, parent.case_id, version_id, child.data, actor,
                                       parent=parent.instance_id, element_id=child.element_id,
                                       case_data=parent.scope.case_data, case_reference=parent.scope.case_reference,
                                       nesting=parent.scope.nesting + 1)
        parent.scope.events.append(Event("instance.child_started", {
            "element_id": child.element_id, "process_id": child.process_id, "child_instance_id":
                started[0].instance_id}, instance_id=parent.instance_id))
        return started

    def _replayed_child_version(self, process_id: str) -> int | None:
        """In a replay, the version the recorded step started this child process on (its `instance.started`
        event), not the latest: a later version of it may be in the replay's database, e.g. for a case moved to
        it (engine/instance_migration.py). None outside a replay, or when the step recorded no such start."""
        recorded = self._replay_child_versions
        if not recorded:
            return None
        for i, (pid, version_id) in enumerate(recorded):
            if pid == process_id:
                del recorded[i]
                return version_id
        return None

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
        chain = case_chain(first.case_id)
        if first.head_known and all_events:
            w.heads.setdefault(chain, first.head)
        w.events.append((chain, first.case_id, all_events))
        thrown = [(p.case_id, p.instance_id, m, actor) for p in pending for m in p.scope.thrown]
        if thrown:
            messages.queue_thrown(conn, thrown)
        if writes is None:
            w.flush(conn, now, lock=self.db.is_postgres)
            messages.deliver_thrown(self, conn, now)  # the step is written: what it threw goes to the case
        status = _status(first)
        # copies: the rows stay the workflow's snapshot (see _pending), whatever the caller does with these
        ready = ([dict(r, candidate_groups=list(r["candidate_groups"])) for r in first.after["rows"]]
                 if first.after and status != "completed" else [])
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
        row = (_CASE_DATA_LOCKED if self.db.is_postgres else _CASE_DATA).first(conn, {"cid": case_id})
        if row is None:
            raise NotFoundError(f"case {case_id} is not in the database", case=case_id)
        merged = json.loads(row.data)
        for p in changed:
            merged.update(self._check_case(p.scope.case_updates))
        _SAVE_CASE_DATA.run(conn, {"cid": case_id, "d": json.dumps(merged, sort_keys=True), "at": now})
        self._case_saved(conn, case_id)


    def _write_instance(self, conn: Connection, now: datetime, p: _Pending, w: _Writes) -> dict[str, Any] | None:
        wf = p.workflow
        status = _status(p)
        done = status == "completed"
        params: dict[str, Any] = {"iid": p.instance_id, "expected": p.version, "st": status, "now": now}
        if done:  # simulation mode: nothing reads a finished instance's data (no case record, no replay)
            data = self.codec.data_text(_final_data(wf)) if self.simulation is None else None
            w.finish.append(dict(params, data=data))
            p.scope.events.append(Event("instance.completed", {"process_id": p.process_id},
                                        instance_id=p.instance_id))
        else:  # simulation mode: kept in memory, written only if it leaves memory (`_tx`)
            w.save.append(dict(params, state=self.codec.dump(wf) if self.simulation is None else UNSAVED_STATE))
        w.documents.extend(dict(d, case_id=p.case_id, instance_id=p.instance_id, created_at=now)
                           for d in p.scope.documents)
        if not done and "carepath_saved" in conn.info:
            conn.info["carepath_saved"].append((p.instance_id, p.version + 1, wf, p.after))
        elif done and "carepath_finished" in conn.info:
            conn.info["carepath_finished"].append(wf)
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
        w.drop_timers.extend((p.instance_id, tid) for tid in stale)
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
                created_at=now, due_at=t["due_at"], revision=0, follow_up_at=t.get("follow_up_at"),
                candidate_users=json.dumps(t["candidate_users"]) if t.get("candidate_users") else None) for t in new])
        for t in ready:  # due dates move when a timer is re-set
            if t["id"] in existing and existing[t["id"]]["due_at"] != t["due_at"]:
                w.task_due.append({"tid": t["id"], "due": t["due_at"]})

    def _pending(self, now: datetime, row: Any, wf: BpmnWorkflow) -> _Pending:
        # a workflow this process saved as this version (the workflow cache) comes with the snapshot its step
        # took after it ran: the same task tree, not walked again
        held = getattr(wf, "_carepath_after", None)
        before = held[1] if held is not None and held[0] == row.version else _snapshot(wf)
        p = _Pending(row.id, row.case_id, row.version, row.process_id, wf,
                     self._scope(now, row.case_id, row.id, row.process_id, json.loads(row.case_data),
                                 row.case_reference),
                     before, old_status=row.status)
        _known_head(p, row)
        return p


def _known_head(p: _Pending, row: Any) -> None:
    """Keep the case chain's head read with the instance (rows from `_LOAD` and the like)."""
    seq = getattr(row, "chain_seq", _NO_HEAD)
    if seq is not _NO_HEAD:
        p.head = (seq, row.chain_hash) if seq is not None else None
        p.head_known = True


_NO_HEAD = object()


def _status(p: _Pending) -> str:
    if p.failure is not None:
        return "error"
    if p.workflow.completed:
        return "completed"
    return "waiting"
