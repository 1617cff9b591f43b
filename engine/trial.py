"""Trying a draft before it goes live: replay recorded cases against it, and run its example case.

* `replay_against` re-executes one case's recorded life in a process on the draft's files
  instead of the version it ran on: the same start data, the same form answers at the same
  user tasks (by element id), the same handler results and the same clock readings. It also
  re-runs the history on the case's own version, so both paths are read the same way — every
  element reached, gateways and events included — and says whether the draft takes the same
  path, where the two part, or why the case cannot be replayed.
* `run_example` deploys the draft and runs its example case (start data and form answers) to
  its end on a simulated clock, moving the clock to the next timer whenever nothing is ready.

Both run the engine's own code on a throwaway in-memory SQLite database. The real database is
only read (the case's history, the deployed versions a draft calls); nothing is written to it.
Processes a run starts with `start_process` are noted, not run: a trial follows one process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, insert, select

from .clock import as_utc, parse_instant
from .db import Database
from .errors import CarepathError, NotFoundError, ValidationError
from .forms import FormLibrary
from .history import iso
from .instance_migration import replay_migration
from .migrate import upgrade
from .registry import BUILT_IN, HandlerRegistry
from .replay import _copy_definitions
from .runtime import Engine
from .schema import cases, definition_files, deployments, instances, process_versions
from .scripting import CarepathScriptEngine, ChildStart, ReplayMismatch, _jsonable, current_scope

__all__ = ["ExampleResult", "ReplayResult", "check_example", "recent_cases", "replay_against", "run_example"]

EXAMPLE_LIMIT = timedelta(days=731)  # two years of simulated time
EXAMPLE_STEPS = 500
TRIAL_ACTOR = "trial"
_KINDS = {"UserTask": "user task", "ServiceTask": "service task", "ScriptTask": "script task",
          "BusinessRuleTask": "decision", "ExclusiveGateway": "gateway", "InclusiveGateway": "gateway",
          "ParallelGateway": "gateway", "EventBasedGateway": "gateway", "StartEvent": "start event",
          "EndEvent": "end event", "IntermediateCatchEvent": "event", "IntermediateThrowEvent": "event",
          "BoundaryEvent": "boundary event", "CallActivity": "called process", "SubWorkflowTask": "subprocess",
          "TransactionSubprocess": "subprocess", "ManualTask": "user task", "SendTask": "task",
          "ReceiveTask": "task"}


# ---------------------------------------------------------------------- results
@dataclass
class ReplayResult:
    """Whether one case would have taken the same path through the draft."""

    case_id: int
    reference: str
    process_id: str
    outcome: str  # "same" | "differs" | "cannot_replay"
    message: str
    recorded_path: list[dict[str, Any]] = field(default_factory=list)
    draft_path: list[dict[str, Any]] = field(default_factory=list)
    parted: dict[str, Any] | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def same_path(self) -> bool | None:
        return {"same": True, "differs": False}.get(self.outcome)

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "reference": self.reference, "process_id": self.process_id,
                "outcome": self.outcome, "same_path": self.same_path, "message": self.message,
                "reason": self.reason, "parted": self.parted, "recorded_path": self.recorded_path,
                "draft_path": self.draft_path, "notes": self.notes}


@dataclass
class ExampleResult:
    """Where the draft's example case went, and how it ended."""

    process_id: str
    outcome: str  # "completed" | "waiting" | "incident" | "stopped"
    message: str
    started_at: str
    ended_at: str
    path: list[dict[str, Any]] = field(default_factory=list)
    waiting_at: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    started_processes: list[dict[str, Any]] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"process_id": self.process_id, "outcome": self.outcome, "message": self.message,
                "started_at": self.started_at, "ended_at": self.ended_at, "path": self.path,
                "waiting_at": self.waiting_at, "tasks": self.tasks, "started_processes": self.started_processes,
                "incident": self.incident, "errors": self.errors}


class _Stop(Exception):
    """A run cannot go on: `kind` says why (missing element, not ready, form, mismatch)."""

    def __init__(self, kind: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.errors = kind, message, errors or []


# ---------------------------------------------------------------------- the scratch engine
_SCHEMA_LOCK = threading.Lock()
_SCHEMA: sqlite3.Connection | None = None  # an empty, migrated database: copied, not migrated, per run


def _scratch_database() -> Database:
    """A new in-memory database with the schema (copied from one migrated once per process: a run may
    need two for each of twenty cases, and migrating costs a tenth of a second each time)."""
    global _SCHEMA
    db = Database("sqlite://")
    with _SCHEMA_LOCK:
        if _SCHEMA is None:
            first = Database("sqlite://")
            upgrade(first)
            template = sqlite3.connect(":memory:", check_same_thread=False)
            raw = first.engine.raw_connection()
            try:
                raw.driver_connection.backup(template)
            finally:
                raw.close()
                first.dispose()
            _SCHEMA = template
        raw = db.engine.raw_connection()  # the same connection as the engine's in this thread
        try:
            _SCHEMA.backup(raw.driver_connection)
        finally:
            raw.close()
    return db


class _TrialScriptEngine(CarepathScriptEngine):
    """Serves the case's recorded handler results where the run asks for the same call; otherwise
    calls the handler as the product would (a replay of the case's own version must not need to)."""

    def __init__(self, trial: _TrialEngine, registry: HandlerRegistry) -> None:
        super().__init__(registry, dict(registry.functions))
        self.trial = trial

    def call_service(self, task, operation_name: str = "", operation_params=None, **kw):  # type: ignore[override]
        scope = current_scope()
        pool = self.trial.pool_for(scope.instance_id)
        if pool is None or operation_name in BUILT_IN:
            return super().call_service(task, operation_name, operation_params, **kw)
        params = {name: p["value"] if isinstance(p, dict) and "value" in p else p
                  for name, p in (operation_params or {}).items()}
        inputs, element_id = _jsonable(params), task.task_spec.bpmn_id
        for i, rec in enumerate(pool):
            if rec["handler"] == operation_name and rec["element_id"] == element_id and rec["inputs"] == inputs:
                scope.recorded = [pool.pop(i)]
                try:
                    return super().call_service(task, operation_name, operation_params, **kw)
                finally:
                    scope.recorded = None
        if self.trial.strict:
            raise ReplayMismatch(f"the history records no call of handler '{operation_name}' at {element_id} "
                                 f"with {inputs!r}", element=element_id)
        name = task.task_spec.bpmn_name or element_id
        self.trial.fresh_calls.append(f"'{name}' ({element_id}) called handler '{operation_name}' "
                                      "with inputs the case never gave it: its result came from the handler now")
        return super().call_service(task, operation_name, operation_params, **kw)


class _TrialEngine(Engine):
    """The engine on a throwaway in-memory database, noting each instance's path as it goes."""

    def __init__(self, *, registry: HandlerRegistry, forms: FormLibrary, start: datetime) -> None:
        super().__init__(_scratch_database(), registry=registry, forms=forms)
        self.script_engine = _TrialScriptEngine(self, registry)
        self.paths: dict[int, list[dict[str, Any]]] = {}
        self._seen: dict[int, set[str]] = {}
        self.started: list[dict[str, Any]] = []  # processes the run asked to start (not run)
        self.pools: dict[int, list[dict[str, Any]]] = {}  # instance -> recorded handler calls left
        self.starting_pool: list[dict[str, Any]] | None = None
        self.strict = False
        self.fresh_calls: list[str] = []
        self.init(simulated_start=start)

    def pool_for(self, instance_id: int) -> list[dict[str, Any]] | None:
        return self.pools.get(instance_id, self.starting_pool)

    def _advance(self, conn, now, p, actor, apply=None):  # type: ignore[no-untyped-def]
        children = super()._advance(conn, now, p, actor, apply)
        self._note_path(p.instance_id, p.workflow, now)
        return children

    def _start_child(self, conn, now, parent, child: ChildStart, actor):  # type: ignore[no-untyped-def]
        self.started.append({"process_id": child.process_id, "element_id": child.element_id, "at": iso(now)})
        return []

    def _note_path(self, instance_id: int, wf: Any, now: datetime) -> None:
        """Append the elements reached in this step: finished, failed, or user tasks now waiting."""
        seen = self._seen.setdefault(instance_id, set())
        path = self.paths.setdefault(instance_id, [])
        for t in wf.get_tasks():  # depth first: the order the flow reaches them
            spec = t.task_spec
            if spec.bpmn_id is None or str(t.id) in seen:
                continue
            if t.state in (TaskState.COMPLETED, TaskState.ERROR) or (t.state == TaskState.READY and spec.manual):
                seen.add(str(t.id))
                path.append({"element_id": spec.bpmn_id, "name": spec.bpmn_name or spec.bpmn_id, "kind": _kind(spec),
                             "at": iso(now)})

    def start_on(self, case_id: int, version_id: int, data: dict[str, Any], actor: str,
                 pool: list[dict[str, Any]] | None = None) -> int:
        """Start an instance of a given version (not necessarily the latest) for a case."""
        self.starting_pool = pool
        try:
            with self._tx() as conn:
                now = self.now(conn)
                pending = self._start_instance(conn, now, case_id, version_id, data, actor, parent=None)
                iid = self._finish(conn, now, pending, actor).instance_id
        finally:
            self.starting_pool = None
        if pool is not None:
            self.pools[iid] = pool
        return iid

    def status(self, instance_id: int) -> str:
        with self.db.engine.connect() as conn:
            return conn.execute(select(instances.c.status).where(instances.c.id == instance_id)).scalar_one()

    def names(self, version_id: int) -> dict[str, str]:
        """Element id -> name of every element a version's process (and its subprocesses) has."""
        with self.db.engine.connect() as conn:
            loaded = self.specs.get(conn, version_id)
        out: dict[str, str] = {}
        for spec in [loaded.spec, *loaded.subprocess_specs.values()]:
            for ts in spec.task_specs.values():
                if ts.bpmn_id:
                    out.setdefault(ts.bpmn_id, ts.bpmn_name or ts.bpmn_id)
        return out

    def waiting_at(self, instance_id: int, version_id: int) -> list[dict[str, Any]]:
        snap = self.instance_snapshot(instance_id)
        names = self.names(version_id)
        return ([{"element_id": e, "name": names.get(e, e), "kind": "user task"} for e in snap["tasks"]]
                + [{"element_id": e, "name": names.get(e, e), "kind": "timer", "due_at": due}
                   for e, due in snap["timers"]])


def _kind(spec: Any) -> str:
    name = type(spec).__name__
    for cls in type(spec).__mro__:
        if cls.__name__ in _KINDS:
            return _KINDS[cls.__name__]
    return name


@dataclass(frozen=True)
class DeployedRows:
    """The newest version of every process as plain rows: its files, deployments and version rows. Picklable, so
    another process (a simulation's worker) can deploy exactly what a database holds without opening it."""

    files: tuple[dict[str, Any], ...] = ()
    deployments: tuple[dict[str, Any], ...] = ()
    versions: tuple[dict[str, Any], ...] = ()


def deployed_rows(source: Engine, *, draft_names: Collection[str] = ()) -> DeployedRows:
    """Read (only) the newest version of every process on `source`, leaving out files named in `draft_names`."""
    with source.db.engine.connect() as src:
        latest = select(func.max(process_versions.c.id)).group_by(process_versions.c.process_id)
        pvs = src.execute(select(process_versions).where(process_versions.c.id.in_(latest))).all()
        if not pvs:
            return DeployedRows()
        file_ids = sorted({fid for pv in pvs for fid in json.loads(pv.file_ids)})
        files = src.execute(select(definition_files).where(definition_files.c.id.in_(file_ids),
                                                           definition_files.c.name.not_in(list(draft_names)))).all()
        deps = src.execute(select(deployments).where(deployments.c.id.in_({pv.deployment_id for pv in pvs}))).all()
    return DeployedRows(tuple(dict(f._mapping) for f in files), tuple(dict(d._mapping) for d in deps),
                        tuple(dict(pv._mapping) for pv in pvs))


def _copy_deployed(source: Engine | DeployedRows, scratch: Engine, *, replaced: str,
                   draft_names: Collection[str]) -> None:
    """Copy the live version of every process (read-only) so the draft can call them and use their
    decisions. Files named as the draft's are left out (the draft replaces them), and the live version
    of the draft's own process never matches the draft's content, so the draft is always deployed.
    `source` is an engine (read here) or the rows already read from one (`deployed_rows`, which left the
    draft's files out when it read them)."""
    rows = source if isinstance(source, DeployedRows) else deployed_rows(source, draft_names=draft_names)
    if not rows.versions:
        return
    with scratch.db.transaction() as dst:
        for f in rows.files:
            dst.execute(insert(definition_files).values(**f))
        for dep in rows.deployments:
            dst.execute(insert(deployments).values(**dep))
        for pv in rows.versions:
            row = dict(pv)
            if row["process_id"] == replaced:
                row["content_sha256"] = "replaced by the draft under trial"
            dst.execute(insert(process_versions).values(**row))


def _draft_engine(files: Mapping[str, bytes], process_id: str, *, registry: HandlerRegistry, forms: FormLibrary,
                  start: datetime, source: Engine | None) -> tuple[_TrialEngine, int]:
    """A scratch engine with the deployed dependencies and the draft deployed; raises DefinitionError."""
    scratch = _TrialEngine(registry=registry, forms=forms, start=start)
    try:
        if source is not None:
            _copy_deployed(source, scratch, replaced=process_id, draft_names=list(files))
        refs = scratch.deploy(files=dict(files), actor=TRIAL_ACTOR, source="draft under trial")
        ref = next((r for r in refs if r.kind == "process" and r.process_id == process_id), None)
        if ref is None:
            raise NotFoundError(f"the draft's files do not define the process '{process_id}'", process=process_id)
    except Exception:
        scratch.db.dispose()
        raise
    return scratch, ref.id


# ---------------------------------------------------------------------- replaying a case against a draft
def replay_against(engine: Engine, case_id: int, files: Mapping[str, bytes], process_id: str) -> ReplayResult:
    """Would the case's runs of `process_id` have taken the same path through the draft's `files`?

    Raises NotFoundError for an unknown case and DefinitionError when the draft does not deploy."""
    recorded = engine.history(case_id)
    created = next((e for e in recorded if e["type"] == "case.created"), None)
    reference = created["data"].get("reference", f"case {case_id}") if created else f"case {case_id}"
    runs = [e for e in recorded if e["type"] == "instance.started" and e["data"].get("process_id") == process_id]
    result = ReplayResult(case_id, reference, process_id, "cannot_replay", "")
    if created is None or not runs:
        return _cannot(result, f"the case never ran '{process_id}'")
    run_ids = [e["instance_id"] for e in runs]
    start = parse_instant(recorded[0]["at"])
    horizon = max(engine.now(), parse_instant(recorded[-1]["at"]))
    own = _TrialEngine(registry=engine.registry, forms=FormLibrary(), start=start)
    draft = None
    try:
        _copy_definitions(engine, own, recorded)
        own.strict = True
        own_versions = {e["instance_id"]: e["data"]["process_version_id"] for e in runs}
        own_versions.update({e["instance_id"]: e["data"]["to_process_version_id"] for e in recorded
                             if e["type"] == "instance.migrated" and e["instance_id"] in own_versions})
        own_map, own_stop = _drive(own, recorded, run_ids, horizon,
                                   version_of=lambda ev: ev["data"]["process_version_id"], follow_moves=True)
        if own_stop is not None:
            return _cannot(result, f"the case's own history could not be re-run on the version it ran on: "
                                   f"{own_stop.message}")
        draft, draft_vid = _draft_engine(files, process_id, registry=engine.registry, forms=engine.forms,
                                         start=start, source=engine)
        draft_map, stop = _drive(draft, recorded, run_ids, horizon, version_of=lambda _ev: draft_vid)
        result.notes = list(dict.fromkeys(draft.fresh_calls))
        return _compare(result, own, own_map, own_versions, draft, draft_map, run_ids, stop, draft_vid)
    finally:
        own.db.dispose()
        if draft is not None:
            draft.db.dispose()


def _cannot(result: ReplayResult, reason: str) -> ReplayResult:
    result.outcome, result.reason = "cannot_replay", reason
    result.message = f"cannot replay: {reason}"
    return result


def _drive(scratch: _TrialEngine, recorded: list[dict[str, Any]], run_ids: list[int], horizon: datetime,
           *, version_of: Any, follow_moves: bool = False) -> tuple[dict[int, int], _Stop | None]:
    """Feed the recorded inputs of the runs `run_ids` to the scratch engine at their recorded times.

    `follow_moves`: a run moved to another version (instance.migrated) moves in the scratch run too, as
    on the case's own versions; a draft is the version from the start, so its run ignores the moves.
    Returns recorded instance id -> scratch instance id, and why it stopped early (or None)."""
    pools: dict[int, list[dict[str, Any]]] = {iid: [] for iid in run_ids}
    for ev in recorded:
        if ev["type"] in ("handler.called", "handler.failed") and ev["instance_id"] in pools:
            pools[ev["instance_id"]].append(dict(ev["data"], failed=ev["type"] == "handler.failed"))
    mapping: dict[int, int] = {}
    versions: dict[int, int] = {}  # recorded instance -> the scratch version it runs on
    case_id = 0
    try:
        for ev in recorded:
            kind, iid, data = ev["type"], ev["instance_id"], ev["data"]
            at = parse_instant(ev["at"])
            if kind == "case.created":
                case_id = scratch.create_case(data.get("title") or "", data.get("data") or {}, actor=ev["actor"],
                                              reference=data.get("reference"))
                continue
            if not _is_input(kind, iid, data, run_ids):
                continue
            if at > scratch.now():
                scratch.advance_clock(to=at)  # fires what falls due on the way, as the timer job would
            if kind == "instance.started":
                versions[iid] = version_of(ev)
                mapping[iid] = scratch.start_on(case_id, versions[iid], data.get("data") or {}, ev["actor"],
                                                pools[iid])
            elif kind == "task.completed" and iid in mapping:
                _complete(scratch, case_id, mapping[iid], data, ev, versions[iid])
            elif kind == "instance.migrated" and iid in mapping:
                if follow_moves:
                    replay_migration(scratch, mapping[iid], data, actor=ev["actor"])
                    versions[iid] = data["to_process_version_id"]
            elif kind == "incident.retried" and iid in mapping:
                if scratch.status(mapping[iid]) == "error":
                    scratch.retry(mapping[iid], actor=ev["actor"])
            elif kind == "case.record_updated" or kind == "case.updated":
                if isinstance(data.get("data"), dict) and data["data"]:
                    scratch.update_case_record(case_id, data["data"], actor=ev["actor"],
                                               reason=data.get("reason", ""))
        if horizon > scratch.now():
            scratch.advance_clock(to=horizon)
    except _Stop as stop:
        return mapping, stop
    except ReplayMismatch as exc:
        return mapping, _Stop("mismatch", exc.message)
    except CarepathError as exc:
        return mapping, _Stop("error", str(exc))
    return mapping, None


def _is_input(kind: str, iid: int | None, data: dict[str, Any], run_ids: list[int]) -> bool:
    """The events that move the runs being replayed, or change the case details they read."""
    if kind in ("instance.started", "task.completed", "timer.fired", "incident.retried", "instance.migrated"):
        return iid in run_ids
    if kind == "case.record_updated":
        return True
    # details another process put on the case: the runs read them with case()
    return kind == "case.updated" and iid not in run_ids


def _complete(scratch: _TrialEngine, case_id: int, instance_id: int, data: dict[str, Any], ev: dict[str, Any],
              version_id: int) -> None:
    element = data["element_id"]
    name = data.get("name") or element
    ready = [t for t in scratch.list_tasks(case_id=case_id) if t["instance_id"] == instance_id
             and t["element_id"] == element]
    if not ready:
        if element not in scratch.names(version_id):
            raise _Stop("missing", f"the draft has no task '{element}' ('{name}') where the case completed it")
        raise _Stop("not_ready", f"the case completed '{name}' ({element}) on {ev['at'][:10]}, but in the draft "
                                 "it was not waiting to be done then")
    try:
        scratch.complete_task(ready[0]["id"], data.get("data") or {}, actor=ev["actor"])
    except ValidationError as exc:
        detail = "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"]
                           for e in exc.errors) or exc.message
        raise _Stop("form", f"the answers recorded at '{name}' ({element}) do not fit the draft's form "
                            f"'{ready[0]['form']}': {detail}", exc.errors) from None


def _compare(result: ReplayResult, own: _TrialEngine, own_map: dict[int, int], own_versions: dict[int, int],
             draft: _TrialEngine, draft_map: dict[int, int], run_ids: list[int], stop: _Stop | None,
             draft_vid: int) -> ReplayResult:
    several = len(run_ids) > 1
    for n, rid in enumerate(run_ids, start=1):
        rec = [dict(s, run=n) for s in own.paths.get(own_map.get(rid, -1), [])]
        dr = [dict(s, run=n) for s in draft.paths.get(draft_map.get(rid, -1), [])]
        result.recorded_path += rec
        result.draft_path += dr
        if result.parted is None and [s["element_id"] for s in rec] != [s["element_id"] for s in dr]:
            result.parted = _parting(rec, dr, _where(own, own_map.get(rid), own_versions.get(rid)),
                                     _where(draft, draft_map.get(rid), draft_vid))
            if several:
                result.parted["message"] = f"in run {n} of {len(run_ids)}: {result.parted['message']}"
    if stop is not None and stop.kind in ("missing", "form", "mismatch", "error"):
        result.outcome, result.reason = "cannot_replay", stop.message
        result.message = f"cannot replay: {stop.message}"
        if result.parted:
            result.message += f" ({result.parted['message']})"
        return result
    if result.parted is not None:
        result.outcome, result.message = "differs", result.parted["message"]
    elif stop is not None:
        result.outcome, result.reason = "cannot_replay", stop.message
        result.message = f"cannot replay: {stop.message}"
    else:
        result.outcome, result.message = "same", "the draft takes the same path"
    return result


def _q(step: dict[str, Any] | None, other: dict[str, Any] | None = None) -> str:
    if step is None:
        return "the start"
    if other is not None and other["name"] == step["name"] and other["element_id"] != step["element_id"]:
        return f"'{step['name']}' ({step['element_id']})"  # same name, different elements: say which
    return f"'{step['name']}'"


def _where(scratch: _TrialEngine, instance_id: int | None, version_id: int | None) -> str:
    """How a run stands, for a sentence: "ended", "is still at 'X'" or "had not started"."""
    if instance_id is None or version_id is None:
        return "had not started"
    status = scratch.status(instance_id)
    if status == "completed":
        return "ended"
    waiting = [w["name"] for w in scratch.waiting_at(instance_id, version_id) if w["kind"] != "timer"]
    if status == "error":
        inc = next((i for i in scratch.incidents() if i["instance_id"] == instance_id), None)
        return "stopped at an incident" + (f" ({inc['message']})" if inc else "")
    return "is still at " + " and ".join(f"'{n}'" for n in waiting) if waiting else "is waiting for a timer"


def _parting(rec: list[dict[str, Any]], dr: list[dict[str, Any]], own_state: str, draft_state: str) -> dict[str, Any]:
    """Where two paths part: the last element they share, and where each went next."""
    n = 0
    while n < len(rec) and n < len(dr) and rec[n]["element_id"] == dr[n]["element_id"]:
        n += 1
    after = rec[n - 1] if n else None
    went = rec[n] if n < len(rec) else None
    would = dr[n] if n < len(dr) else None
    at = f"at {_q(after)}" if after and after["kind"] == "gateway" else f"after {_q(after)}"
    if went and would:
        msg = f"the draft would have gone to {_q(would, went)} {at} where the case went to {_q(went, would)}"
    elif went:
        msg = f"the draft {_would(draft_state)} where the case went on to {_q(went)}"
    else:
        msg = f"the draft would have gone on to {_q(would)} {at}, where the case {own_state}"
    return {"after": after, "recorded": went, "draft": would, "message": msg}


def _would(state: str) -> str:
    return {"ended": "would have ended", "had not started": "would not have started"}.get(
        state, "would " + state.replace("is still", "still be").replace("is waiting", "be waiting")
        .replace("stopped", "have stopped"))


def recent_cases(engine: Engine, process_id: str, *, limit: int = 20,
                 exclude: Collection[int] = ()) -> list[dict[str, Any]]:
    """The cases that ran `process_id` most recently (newest first): id, reference, when its latest run
    started and that run's status. `exclude`: case ids to leave out (restricted cases)."""
    last = func.max(instances.c.id).label("last")
    q = select(instances.c.case_id, last).where(instances.c.process_id == process_id)
    if exclude:
        q = q.where(instances.c.case_id.not_in(list(exclude)))
    q = q.group_by(instances.c.case_id).order_by(last.desc()).limit(limit)
    with engine.db.engine.connect() as conn:
        lasts = {r.case_id: r.last for r in conn.execute(q)}
        if not lasts:
            return []
        rows = conn.execute(select(instances.c.id, instances.c.case_id, instances.c.status, instances.c.started_at,
                                   cases.c.reference).join(cases, cases.c.id == instances.c.case_id)
                            .where(instances.c.id.in_(list(lasts.values())))).all()
    by_case = {r.case_id: r for r in rows}
    return [{"case_id": cid, "reference": by_case[cid].reference, "status": by_case[cid].status,
             "started_at": as_utc(by_case[cid].started_at)} for cid in lasts if cid in by_case]


# ---------------------------------------------------------------------- the draft's example case
def check_example(example: Any, *, user_tasks: Collection[str] | None = None) -> list[dict[str, str]]:
    """Every problem with an example case, each naming where: {"field": ..., "message": ...}.

    An example is {"start_data": {...}, "answers": {element id: {...} or [{...}, ...]}}: one object
    answers every time the task comes round, a list gives the answers in turn. With `user_tasks`
    (the draft's user task ids), answers for anything else are refused too."""
    if not isinstance(example, dict):
        return [{"field": "", "message": 'the example must be an object: {"start_data": {...}, "answers": {...}}'}]
    errors = [{"field": k, "message": f"'{k}' is not part of an example (only start_data and answers)"}
              for k in example if k not in ("start_data", "answers")]
    if not isinstance(example.get("start_data", {}), dict):
        errors.append({"field": "start_data", "message": "start_data must be an object of the data the process "
                                                         "starts with"})
    answers = example.get("answers", {})
    if not isinstance(answers, dict):
        return errors + [{"field": "answers", "message": "answers must be an object: user task id -> form answers"}]
    for element, value in answers.items():
        where = f"answers/{element}"
        if user_tasks is not None and element not in user_tasks:
            known = ", ".join(sorted(user_tasks)) or "none"
            errors.append({"field": where, "message": f"'{element}' is not a user task of this draft "
                                                      f"(its user tasks: {known})"})
        if isinstance(value, list):
            if not value:
                errors.append({"field": where, "message": "a list of answers needs at least one"})
            errors += [{"field": f"{where}/{i}", "message": "each answer must be an object of form answers"}
                       for i, v in enumerate(value) if not isinstance(v, dict)]
        elif not isinstance(value, dict):
            errors.append({"field": where, "message": "the answers must be an object of form answers (or a list "
                                                      "of them, one for each time the task comes round)"})
    return errors


def run_example(files: Mapping[str, bytes], process_id: str, example: Mapping[str, Any], *, start: datetime,
                registry: HandlerRegistry, forms: FormLibrary, source: Engine | None = None,
                limit: timedelta = EXAMPLE_LIMIT, max_steps: int = EXAMPLE_STEPS) -> ExampleResult:
    """Run the draft's example case to its end on a simulated clock starting at `start`.

    `source`: the real engine, read for the deployed processes and decisions the draft calls.
    Raises ValidationError for a malformed example and DefinitionError when the draft does not deploy."""
    problems = check_example(example)
    if problems:
        raise ValidationError("the example case is not valid", errors=problems)
    answers: dict[str, Any] = dict(example.get("answers") or {})
    start = as_utc(start)
    scratch, vid = _draft_engine(files, process_id, registry=registry, forms=forms, start=start, source=source)
    try:
        case_id = scratch.create_case("Example case", {}, actor=TRIAL_ACTOR)
        iid = scratch.start_on(case_id, vid, dict(example.get("start_data") or {}), TRIAL_ACTOR)
        res = ExampleResult(process_id, "waiting", "", iso(start), iso(start))
        _run(scratch, res, case_id, iid, answers, start + limit, max_steps, limit)
        res.path = scratch.paths.get(iid, [])
        res.started_processes = scratch.started
        res.ended_at = iso(scratch.now())
        if scratch.status(iid) not in ("completed", "error"):
            res.waiting_at = scratch.waiting_at(iid, vid)
        return res
    finally:
        scratch.db.dispose()


def _run(scratch: _TrialEngine, res: ExampleResult, case_id: int, iid: int, answers: dict[str, Any],
         until: datetime, max_steps: int, limit: timedelta) -> None:
    used: dict[str, int] = {}
    for _ in range(max_steps):
        status = scratch.status(iid)
        if status == "completed":
            res.outcome, res.message = "completed", "the example case ran to the end"
            return
        if status == "error":
            inc = next(i for i in scratch.incidents() if i["instance_id"] == iid)
            name = next((s["name"] for s in scratch.paths.get(iid, []) if s["element_id"] == inc["element_id"]),
                        inc["element_id"])
            res.outcome = "incident"
            res.incident = {"element_id": inc["element_id"], "name": name, "handler": inc["handler"],
                            "message": inc["message"]}
            res.message = f"'{name}' ({inc['element_id']}) failed: {inc['message']}"
            return
        ready = [t for t in scratch.list_tasks(case_id=case_id) if t["instance_id"] == iid]
        if ready:
            task = ready[0]
            entry = {"element_id": task["element_id"], "name": task["name"], "team": task["team"],
                     "form": task["form"], "ready_at": iso(as_utc(task["created_at"])), "answers": None,
                     "completed_at": None}
            res.tasks.append(entry)
            answer = _answer(answers, task, used)
            if isinstance(answer, str):
                res.outcome, res.message = "stopped", answer
                return
            try:
                scratch.complete_task(task["id"], answer, actor=TRIAL_ACTOR)
            except ValidationError as exc:
                res.outcome, res.errors = "stopped", exc.errors
                detail = "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"]
                                   for e in exc.errors) or exc.message
                res.message = (f"the example answer for '{task['name']}' ({task['element_id']}) does not fit its "
                               f"form '{task['form']}': {detail}")
                return
            entry["answers"], entry["completed_at"] = answer, iso(scratch.now())
            continue
        nxt = scratch.next_due()
        if nxt is None:
            res.outcome = "waiting"
            res.message = "the example case waits with nothing to move it on (no task to do and no timer set)"
            return
        if nxt > until:
            res.outcome = "waiting"
            res.message = (f"the example case is still waiting after {limit.days} days of simulated time "
                           f"(its next timer falls due on {nxt.date().isoformat()})")
            return
        scratch.advance_clock(to=nxt)
    res.outcome, res.message = "stopped", f"the example case took more than {max_steps} steps: stopped there"


def _answer(answers: dict[str, Any], task: dict[str, Any], used: dict[str, int]) -> dict[str, Any] | str:
    """The answers for this time round the task, or why there are none."""
    element, name = task["element_id"], task["name"]
    n = used.get(element, 0)
    used[element] = n + 1
    given = answers.get(element)
    if given is None:
        if task["form"] is None:
            return {}  # nothing to ask
        return f"no example answer for '{name}' ({element})"
    if isinstance(given, list):
        if n >= len(given):
            return (f"'{name}' ({element}) came round {n + 1} times but the example has "
                    f"{len(given)} answer(s) for it")
        return dict(given[n])
    return dict(given)
