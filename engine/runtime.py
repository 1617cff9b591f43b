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
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection, insert, select, update

from . import definitions, history, messages
from .bpmn_parser import Assigned
from .case_ops import CaseOps
from .clock import SystemClock, as_utc, parse_instant
from .db import Database
from .errors import NotFoundError, StateError
from .forms import FormLibrary
from .history import Event, case_chain
from .migrate import upgrade
from .registry import HandlerRegistry, load_registry
from .schema import MAX_ROW_ID, cases, chains, documents, events, incidents, instances, settings, users
from .scripting import CarepathScriptEngine
from .simulation import SimulationMode
from .state import StateCodec
from .step import StepCore, StepResult
from .step_limits import StepLimits
from .task_ops import TaskOps
from .timer_ops import TimerOps
from .workflow_state import _final_data, _snapshot

SCHEMA_VERSION = "1"


class Engine(TaskOps, TimerOps, CaseOps, StepCore):
    """carepath's workflow engine over one database.

    Composed of the step machinery (engine/step.py) and the task, timer and case operations built on
    it (engine/task_ops.py, timer_ops.py, case_ops.py); set-up, the clock, deploying definitions,
    messages, incidents and reading the records are here."""

    LIVE_CACHE_SIZE = 2000

    def __init__(self, db: Database | str | None = None, *, registry: HandlerRegistry | None = None,
                 forms: FormLibrary | None = None, functions: dict[str, Callable[..., Any]] | None = None,
                 wall_clock: Any = None, simulation: SimulationMode | None = None) -> None:
        self.db = db if isinstance(db, Database) else Database(db)
        #: engine/simulation.py: opt-in, only on an in-memory database (no hash chain, the clock in memory)
        self.simulation = simulation
        self._sim_now: datetime | None = None  # simulation mode: the simulated instant
        self._task_listeners: list[Callable[[list[dict[str, Any]], list[str]], None]] = []
        if simulation is not None:
            simulation.check_database(self.db)
            self.db.simulation = simulation
        self.registry = registry if registry is not None else load_registry(
            os.environ.get("CAREPATH_HANDLERS", "handlers"))
        if forms is None:
            forms = FormLibrary.from_folder(os.environ.get("CAREPATH_FORMS", Path.cwd() / "forms"))
        self.forms = forms
        self.codec = StateCodec()
        self.specs = definitions.SpecCache()
        self.specs.hold_newest = simulation is not None  # one process owns a simulation's database
        if registry is None and self.registry.users is None:
            # computed candidate users must be people this database knows, in every process that runs steps
            # (server, worker, command line); a registry given by the caller keeps the caller's choice
            self.registry.users = self.is_user
        self.script_engine = CarepathScriptEngine(self.registry, {**self.registry.functions, **(functions or {})})
        self.step_limits = StepLimits.from_env()  # what one step may run before it waits (engine/step_limits.py)
        self._wall_clock = wall_clock or SystemClock()
        self._replay_outputs: list[dict[str, Any]] | None = None
        # while replaying a step (engine/replay.py): the versions its recorded child processes started on
        self._replay_child_versions: list[tuple[str, int]] | None = None
        self._clock_mode: str | None = None
        # instance id -> (version, workflow) this process saved last; used only while the row still has it
        self._live: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()
        # process id -> latest version row as last read; a start checks it is still the latest as it inserts
        self._latest_versions: dict[str, Any] = {}

    # ------------------------------------------------------------------ set-up and clock
    def is_user(self, name: str) -> bool:
        """Whether `name` is a user's (any name, while the database has no users yet): who may be offered a task."""
        with self.db.engine.connect() as conn:
            if conn.execute(select(users.c.id).limit(1)).first() is None:
                return True
            return conn.execute(select(users.c.id).where(users.c.username == name)).first() is not None

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
        if self._sim_now is not None:  # simulation mode: held in memory (set below, and by advance_clock)
            return self._sim_now
        if conn is None:
            with self.db.engine.connect() as c:
                return self.now(c)
        if self.clock_mode(conn) == "simulated":
            at = parse_instant(self.db.get_setting(conn, "clock_now") or "")
            if self.simulation is not None:
                self._sim_now = at
            return at
        if self.simulation is not None:
            raise StateError("simulation mode needs a simulated clock (Engine.init(simulated_start=...))")
        return as_utc(self._wall_clock.now())

    def now_if_known(self, clock_now: str | None = None) -> datetime | None:
        """`now()` without a statement of its own, or None when it needs one: a simulation's instant (held in
        memory), the real clock once the clock mode has been read, or a simulated clock from its `clock_now`
        setting as the caller read it in its own statement (`clock_now`). The API's session check reads the
        setting with the session (api/auth.py): one statement per request, whatever the clock."""
        if self._sim_now is not None:
            return self._sim_now
        if self.simulation is not None or self._clock_mode is None:
            return None
        if self._clock_mode == "simulated":
            return parse_instant(clock_now) if clock_now else None
        return as_utc(self._wall_clock.now())

    def _set_clock(self, conn: Connection, at: datetime) -> None:
        conn.execute(update(settings).where(settings.c.key == "clock_now").values(value=history.iso(at)))
        if self.simulation is not None:
            self._sim_now = at

    def on_tasks_changed(self, listener: Callable[[list[dict[str, Any]], list[str]], None]) -> None:
        """Call `listener(added, removed)` after each step commits: the task rows it added (as written: id,
        process_id, element_id, form, team, created_at...) and the ids of the tasks it removed, in order."""
        self._task_listeners.append(listener)

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
        self.specs.forget_newest()
        return refs

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
                # every task: the tree's walk for finished states does not look under an unfinished task (a cycle
                # timer's start event, a multi-instance activity), where a failed task can be (_failure_from)
                for t in [t for t in _all_tasks(wf) if t.state == TaskState.ERROR]:
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
            if case_id is not None and (not 0 < case_id <= MAX_ROW_ID or conn.execute(
                    select(cases.c.id).where(cases.c.id == case_id)).first() is None):
                raise NotFoundError(f"no case {case_id}", case=case_id)  # not "no history at all": there is no case
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


# Re-exported: the step machinery's names as they were when it lived here, for the modules that import
# them from engine.runtime (suspension, instance_migration, messages) and code written before the split.
from .step import _Pending as _Pending  # noqa: E402
from .step import _Writes as _Writes  # noqa: E402
from .workflow_state import _all_tasks as _all_tasks  # noqa: E402
from .workflow_state import _derived_events as _derived_events  # noqa: E402
from .workflow_state import _due_timers as _due_timers  # noqa: E402
from .workflow_state import _failure_from as _failure_from  # noqa: E402
from .workflow_state import _fired_timers as _fired_timers  # noqa: E402
from .workflow_state import _task_name as _task_name  # noqa: E402

__all__ = ["Engine", "StepResult"]
