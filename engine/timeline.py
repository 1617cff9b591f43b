"""A case's history as numbered steps, and where every process instance stood at each step.

A step is one transaction of the case's history chain (the events it wrote share a `step`
number); steps are numbered 1, 2, 3... in order. History events do not name every automatic
element a step ran through (a gateway, a script task, an event), so the state at a step comes
from re-executing the case with the replay machinery (engine/replay.py: a scratch SQLite
database, the recorded diagram versions, the recorded inputs and handler results) and reading
SpiffWorkflow's task tree after each step: the elements completed (in the order they
completed), each sequence flow taken (a task and the nearest element above it in the tree),
the branch a gateway chose, the user tasks ready and the timers waiting.

Re-execution is incremental and cached per case, keyed by the head hash of its chain: asking
for step N replays only the steps not yet replayed, and every step's state is kept, so stepping
back and forth costs a dictionary lookup. A new event on the case changes its head, and the next
request starts again from a fresh replay.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select, update

from . import history, replay
from .bpmn import timer_due
from .clock import parse_instant
from .db import Database
from .errors import NotFoundError
from .forms import FormLibrary
from .registry import HandlerRegistry
from .schema import cases, chains, definition_files, events, instances, process_versions
from .xmlsafe import parse_xml

PAGE = 200
CACHE_SIZE = 8  # cases whose replayed states are kept in memory
CHUNK = 100  # steps the background replay takes at a time between requests
BACKGROUND = True  # after a request, replay the rest of the case on a thread
_REACHED = TaskState.COMPLETED | TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


# ---------------------------------------------------------------------- what a diagram version holds
@dataclass(frozen=True)
class _Diagram:
    """One process version: its label and the sequence flows of its main BPMN file."""

    version_id: int
    process_id: str
    name: str
    version: int
    main_file: str
    flows: dict[tuple[str, str], tuple[str, ...]]  # (source, target) -> sequence flow ids
    gateways: frozenset[str]  # gateways with more than one way out: they choose a branch
    joins: frozenset[str]  # gateways with more than one way in
    names: dict[str, str] = field(default_factory=dict)  # element or flow id -> its name in the diagram
    kinds: dict[str, str] = field(default_factory=dict)  # element id -> its BPMN type (userTask, exclusiveGateway...)


def _diagram(conn: Any, version_id: int) -> _Diagram:
    pv = conn.execute(select(process_versions).where(process_versions.c.id == version_id)).first()
    if pv is None:
        raise NotFoundError(f"no process version {version_id}")
    content = conn.execute(select(definition_files.c.content).where(
        definition_files.c.id.in_(json.loads(pv.file_ids)), definition_files.c.name == pv.main_file)).scalar()
    flows: dict[tuple[str, str], list[str]] = {}
    outgoing: dict[str, int] = {}
    incoming: dict[str, int] = {}
    gateway_ids: set[str] = set()
    names: dict[str, str] = {}
    kinds: dict[str, str] = {}
    if content is not None:
        root = parse_xml(bytes(content), pv.main_file).getroot()
        for el in root.iter():
            if not isinstance(el.tag, str):
                continue
            local = el.tag.rsplit("}", 1)[-1]
            if el.get("id"):
                kinds.setdefault(el.get("id"), local)
                if el.get("name"):
                    names.setdefault(el.get("id"), " ".join(el.get("name").split()))
            if local == "sequenceFlow":
                src, tgt = el.get("sourceRef"), el.get("targetRef")
                if src and tgt and el.get("id"):
                    flows.setdefault((src, tgt), []).append(el.get("id"))
                    outgoing[src] = outgoing.get(src, 0) + 1
                    incoming[tgt] = incoming.get(tgt, 0) + 1
            elif local.endswith("Gateway") and el.get("id"):
                gateway_ids.add(el.get("id"))
    return _Diagram(pv.id, pv.process_id, pv.name, pv.version, pv.main_file,
                    {k: tuple(v) for k, v in flows.items()},
                    frozenset(g for g in gateway_ids if outgoing.get(g, 0) > 1),
                    frozenset(g for g in gateway_ids if incoming.get(g, 0) > 1), names, kinds)


# ---------------------------------------------------------------------- an instance at one step
@dataclass(frozen=True)
class InstanceState:
    instance_id: int
    process_id: str
    process_version_id: int
    version: int
    name: str
    status: str
    parent_instance_id: int | None
    started_by_element: str | None
    completed: tuple[str, ...] = ()  # element ids, in the order they first completed
    flows: tuple[str, ...] = ()  # sequence flow ids taken
    branches: tuple[tuple[str, str, str], ...] = ()  # (gateway, flow, target) chosen
    ready: tuple[str, ...] = ()  # user tasks waiting for someone
    waiting: tuple[tuple[str, str | None], ...] = ()  # (element, due) timers and other waits
    running: tuple[str, ...] = ()  # subprocesses under way
    failed: tuple[str, ...] = ()  # elements stopped by an incident

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "process_id": self.process_id,
                "process_version_id": self.process_version_id, "version": self.version, "name": self.name,
                "status": self.status, "parent_instance_id": self.parent_instance_id,
                "started_by_element": self.started_by_element, "completed": list(self.completed),
                "flows": list(self.flows),
                "branches": [{"gateway": g, "flow": f, "target": t} for g, f, t in self.branches],
                "ready": list(self.ready), "waiting": [{"element_id": e, "due_at": d} for e, d in self.waiting],
                "running": list(self.running), "failed": list(self.failed)}


def _nearest_element(task: Any) -> str | None:
    """The element id of the closest task above this one that is a diagram element."""
    parent = task.parent
    while parent is not None:
        bid = getattr(parent.task_spec, "bpmn_id", None)
        if bid is not None:
            return bid
        parent = parent.parent
    return None


def _read_workflow(wf: Any, d: _Diagram) -> dict[str, Any]:
    """The path and position read from a SpiffWorkflow task tree, against one diagram's flows."""
    done: list[tuple[float, int, str]] = []
    ready: list[str] = []
    waiting: list[tuple[str, str | None]] = []
    running: list[str] = []
    failed: list[str] = []
    taken: set[tuple[str, str]] = set()
    reached: set[str] = set()
    order = 0
    for t in replay_tasks(wf):
        bid = getattr(t.task_spec, "bpmn_id", None)
        if bid is None or not t.state & _REACHED:
            continue
        order += 1
        reached.add(bid)
        st = t.state
        if st == TaskState.COMPLETED:
            done.append((t.last_state_change, order, bid))
        elif st == TaskState.READY:
            ready.append(bid)
        elif st == TaskState.WAITING:
            due = timer_due(t)
            waiting.append((bid, history.iso(due) if due is not None else None))
        elif st == TaskState.STARTED:
            running.append(bid)
        elif st == TaskState.ERROR:
            failed.append(bid)
        src = _nearest_element(t)
        if src is not None and (src, bid) in d.flows:
            taken.add((src, bid))
    completed = list(dict.fromkeys(bid for _at, _o, bid in sorted(done)))
    finished = set(completed)
    # a converging gateway's task hangs under one incoming branch only: the others count when they finished
    for (src, tgt) in d.flows:
        if tgt in d.joins and tgt in reached and src in finished:
            taken.add((src, tgt))
    flows = sorted(f for pair in taken for f in d.flows[pair])
    branches = sorted((src, f, tgt) for (src, tgt) in taken if src in d.gateways for f in d.flows[(src, tgt)])
    return {"completed": tuple(completed), "flows": tuple(flows), "branches": tuple(branches),
            "ready": tuple(dict.fromkeys(ready)), "waiting": tuple(dict.fromkeys(waiting)),
            "running": tuple(dict.fromkeys(running)), "failed": tuple(dict.fromkeys(failed))}


def replay_tasks(wf: Any) -> Any:
    """Every task of the workflow and its subprocesses (the runtime's own order)."""
    yield from wf.tasks.values()
    for sub in wf.subprocesses.values():
        yield from sub.tasks.values()


# ---------------------------------------------------------------------- the steps of one case
_EVENT_COLUMNS = (events.c.id, events.c.seq, events.c.step, events.c.type, events.c.at, events.c.actor,
                  events.c.instance_id, events.c.data)


class _Event(dict):  # type: ignore[type-arg]
    """A history event whose `data` JSON is parsed the first time it is read (most steps never are)."""

    __slots__ = ("raw",)

    def __missing__(self, key: str) -> Any:
        if key != "data":
            raise KeyError(key)
        value = self["data"] = json.loads(self.raw)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key == "data":
            return self["data"]
        return super().get(key, default)


def _events(engine: Any, case_id: int) -> list[dict[str, Any]]:
    """The case's events as engine.history gives them, without the hashes (the integrity check reads those)."""
    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(*_EVENT_COLUMNS).where(events.c.chain == history.case_chain(case_id))
                            .order_by(events.c.seq)).all()
    out = []
    for r in rows:
        ev = _Event(id=r[0], seq=r[1], step=r[2], type=r[3], at=r[4], actor=r[5], instance_id=r[6])
        ev.raw = r[7]
        out.append(ev)
    return out


@dataclass
class Step:
    number: int  # 1, 2, 3... in order
    history_step: int  # the `step` column of its events
    at: str
    actor: str
    events: list[dict[str, Any]]
    instances: dict[int, InstanceState] = field(default_factory=dict)
    case_record: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
    divergence: str | None = None

    def to_dict(self, total: int) -> dict[str, Any]:
        return {"step": self.number, "steps": total, "history_step": self.history_step, "at": self.at,
                "actor": self.actor, "events": [dict(ev, data=ev["data"]) for ev in self.events],
                "instances": [s.to_dict() for _iid, s in sorted(self.instances.items())],
                "case_record": self.case_record, "replayed": self.replayed, "divergence": self.divergence}


_template: Path | None = None
_template_lock = threading.Lock()


def _empty_database() -> Path:
    """An initialised empty scratch database, made once a process and copied for each case (the schema's
    migrations take longer than the replay of a short case)."""
    global _template
    with _template_lock:
        if _template is None or not _template.is_file():
            from .runtime import Engine

            folder = Path(tempfile.mkdtemp(prefix="carepath-timeline-template-"))
            db = Database(f"sqlite:///{folder / 'empty.db'}")
            Engine(db, registry=HandlerRegistry(), forms=FormLibrary()).init(
                simulated_start=parse_instant("2000-01-01T00:00:00+00:00"))
            db.truncate_log()  # one file: nothing left in the write-ahead log
            db.dispose()
            atexit.register(shutil.rmtree, folder, True)
            _template = folder / "empty.db"
        return _template


class _Recorder:
    """Keeps the workflow of every instance a step wrote, as the step left it (before it was saved)."""

    def __init__(self) -> None:
        self.touched: dict[int, Any] = {}


def _scratch_engine_class() -> Any:
    from .runtime import Engine

    class _ScratchEngine(Engine):
        recorder: _Recorder

        def _write_instance(self, conn: Any, now: Any, p: Any, w: Any) -> Any:
            self.recorder.touched[p.instance_id] = p.workflow
            return super()._write_instance(conn, now, p, w)

        def _let_go(self, wf: Any) -> None:
            pass  # the step's path is read from the finished workflow after the step (CaseTimeline._replay)

    return _ScratchEngine


class CaseTimeline:
    """The steps of one case (as its chain stood at `head`), their states filled in as they are asked for."""

    def __init__(self, engine: Any, case_id: int, head: str) -> None:
        self.case_id = case_id
        self.head = head
        self.events = _events(engine, case_id)
        grouped: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        for ev in self.events:
            grouped.setdefault(ev["step"], []).append(ev)
        self.steps = [Step(n, hs, evs[0]["at"], evs[0]["actor"], evs)
                      for n, (hs, evs) in enumerate(grouped.items(), start=1)]
        self.step_of_seq = {ev["seq"]: s.number for s in self.steps for ev in s.events}
        self._started = {ev["instance_id"]: ev["data"] for ev in self.events if ev["type"] == "instance.started"}
        self.version_ids = frozenset(
            {ev["data"]["process_version_id"] for ev in self.events if ev["type"] == "instance.started"}
            | {ev["data"][k] for ev in self.events if ev["type"] == "instance.migrated"
               for k in ("from_process_version_id", "to_process_version_id")})
        self.extras: dict[str, Any] = {}  # what a caller derives from these events once (kept with them)
        self.lock = threading.Lock()
        self._source = engine
        self._done = 0  # steps replayed so far
        self._broken: str | None = None
        self._scratch: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ids = replay._IdMap()
        self._report = replay.ReplayReport(case_id)
        self._diagrams: dict[int, _Diagram] = {}
        self._states: dict[int, InstanceState] = {}  # recorded instance id -> latest state
        self._record: dict[str, Any] = {}
        self._record_json = "{}"
        self._record_dirty = False
        self._worker: threading.Thread | None = None
        self.retired = False

    # -------------------------------------------------------------- replay, a step at a time
    def _open(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="carepath-timeline-")
        path = Path(self._tmp.name) / "timeline.db"
        shutil.copyfile(_empty_database(), path)
        db = Database(f"sqlite:///{path}")
        # no handlers (their recorded outputs are fed back), but the pure expression functions the diagrams
        # call (working days, involvement...), as engine/replay.py gives its scratch engine
        scratch = _scratch_engine_class()(db, registry=HandlerRegistry(), forms=FormLibrary(),
                                          functions=dict(self._source.registry.functions))
        scratch.recorder = _Recorder()
        start = parse_instant(self.events[0]["at"]) if self.events else self._source.now()
        with db.transaction() as conn:
            scratch._set_clock(conn, start)
        replay._copy_definitions(self._source, scratch, self.events)
        self._scratch = scratch

    def continue_in_background(self) -> None:
        """Replay the remaining steps on a thread, a chunk at a time, so a jump to the end is quick later."""
        if not BACKGROUND or self._worker is not None or self._done >= len(self.steps):
            return
        self._worker = threading.Thread(target=self._work, name=f"timeline-case-{self.case_id}", daemon=True)
        self._worker.start()

    def _work(self) -> None:
        while True:
            with self.lock:
                if self.retired or self._done >= len(self.steps):
                    return
                self.ensure(min(len(self.steps), self._done + CHUNK))
            time.sleep(0.001)  # let a waiting request have the lock

    def retire(self) -> None:
        """Out of the cache: stop replaying and remove the scratch database."""
        with self.lock:
            self.retired = True
            self.close()

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.db.dispose()
            self._scratch = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def ensure(self, upto: int) -> None:
        """Replay every step up to `upto` (1-based) not replayed yet."""
        while self._done < upto:
            step = self.steps[self._done]
            self._done += 1
            if self._broken is not None:
                self._carry(step, self._broken)
                continue
            if self._scratch is None:
                self._open()
            try:
                self._replay(step)
            except replay._Diverged as d:
                dv = d.divergence
                self._broken = (f"the replay stopped at event #{dv.seq} ({dv.event_type}): {dv.message}"
                                if dv.seq is not None else f"the replay stopped: {dv.message}")
                self._carry(step, self._broken)
                self.close()
            except Exception as exc:  # noqa: BLE001 - a history the engine cannot re-run is reported, not raised
                self._broken = f"the replay stopped at step {step.number}: {type(exc).__name__}: {exc}"
                self._carry(step, self._broken)
                self.close()
        if self._done >= len(self.steps):
            self.close()

    def _carry(self, step: Step, why: str) -> None:
        step.instances, step.case_record = dict(self._states), self._record
        step.replayed, step.divergence = False, why

    def _replay(self, step: Step) -> None:
        first = step.events[0]
        if first["type"] in replay.BOOKKEEPING_EVENTS:  # who holds a task: the process is as it was
            step.instances, step.case_record, step.replayed = self._states, self._record, True
            return
        replay.refuse_removed_data(step.events)  # before the shortcut below, which would merge nothing
        if first["type"] == "case.record_updated" and len(step.events) == 1:
            # a person's change to the record runs no process: merged here as update_case_record merges
            # it, and written to the scratch database before the next step that runs a process
            merged = dict(self._record)
            for k, v in (first["data"].get("data") or {}).items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            self._record, self._record_dirty = merged, True
            step.instances, step.case_record, step.replayed = self._states, self._record, True
            return
        scratch = self._scratch
        if self._record_dirty:
            self._record_json = json.dumps(self._record, sort_keys=True)
            with scratch.db.transaction() as conn:
                conn.execute(update(cases).where(cases.c.id == self.case_id).values(data=self._record_json))
            self._record_dirty = False
        scratch.recorder.touched = {}
        replay._replay_step(scratch, self.case_id, step.events, self._ids, self._report)
        self._states = dict(self._states)  # earlier steps keep the dict they were given
        back = {new: old for old, new in self._ids.instances.items()}
        named = {ev["instance_id"] for ev in step.events if ev.get("instance_id") is not None}
        with scratch.db.engine.connect() as conn:
            rows = conn.execute(select(instances.c.id, instances.c.process_version_id, instances.c.status,
                                       instances.c.state).where(instances.c.case_id == self.case_id)).all()
            data = conn.execute(select(cases.c.data).where(cases.c.id == self.case_id)).scalar()
            for r in rows:
                if r.process_version_id not in self._diagrams:
                    self._diagrams[r.process_version_id] = _diagram(conn, r.process_version_id)
            for r in rows:
                recorded_id = back.get(r.id)
                if recorded_id is None:
                    continue
                prior = self._states.get(recorded_id)
                wf = scratch.recorder.touched.get(r.id)
                changed = (prior is None or recorded_id in named or prior.status != r.status
                           or prior.process_version_id != r.process_version_id)
                if wf is None and not changed:
                    continue  # not touched by this step
                if wf is None and r.state is not None:  # moved to another version: read what was saved
                    _row, wf = scratch._load(conn, r.id)
                d = self._diagrams[r.process_version_id]
                if wf is not None:
                    path = _read_workflow(wf, d)
                elif prior is not None:  # finished or stopped without a saved tree: keep the path it had
                    path = {k: getattr(prior, k) for k in ("completed", "flows", "branches")}
                else:
                    path = {}
                info = self._started.get(recorded_id, {})
                self._states[recorded_id] = InstanceState(
                    recorded_id, d.process_id, d.version_id, d.version, d.name, r.status,
                    info.get("parent_instance_id"), info.get("started_by_element"), **path)
        if data is not None and data != self._record_json:
            self._record_json, self._record = data, json.loads(data)
        step.instances, step.case_record, step.replayed = self._states, self._record, True

    def diagram(self, version_id: int) -> _Diagram | None:
        return self._diagrams.get(version_id)


# ---------------------------------------------------------------------- the cache and the public calls
_cache: OrderedDict[tuple[str, int], CaseTimeline] = OrderedDict()
_cache_lock = threading.Lock()


def _head(engine: Any, case_id: int) -> str:
    with engine.db.engine.connect() as conn:
        if conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None:
            raise NotFoundError(f"no case {case_id}", case=case_id)
        head = conn.execute(select(chains.c.hash).where(chains.c.chain == history.case_chain(case_id))).scalar()
    return head or history.GENESIS


def timeline(engine: Any, case_id: int) -> CaseTimeline:
    """The case's timeline as its chain stands now (cached while the chain's head is unchanged)."""
    head = _head(engine, case_id)
    key = (engine.db.url, case_id)
    with _cache_lock:
        tl = _cache.get(key)
        if tl is not None and tl.head == head:
            _cache.move_to_end(key)
            return tl
    fresh = CaseTimeline(engine, case_id, head)
    with _cache_lock:
        old = _cache.pop(key, None)
        _cache[key] = fresh
        evicted = [old] if old is not None else []
        while len(_cache) > CACHE_SIZE:
            evicted.append(_cache.popitem(last=False)[1])
    for tl in evicted:
        tl.retire()
    return fresh


def clear_cache() -> None:
    with _cache_lock:
        items = list(_cache.values())
        _cache.clear()
    for tl in items:
        tl.retire()


def case_timeline(engine: Any, case_id: int, *, offset: int = 0, limit: int = PAGE) -> dict[str, Any]:
    """The case's events, `limit` from `offset`, each with the number of the step it belongs to."""
    if offset < 0 or limit < 1:
        raise ValueError("offset must be 0 or more and limit 1 or more")
    tl = timeline(engine, case_id)
    page = [dict(ev, data=ev["data"], step_number=tl.step_of_seq[ev["seq"]]) for ev in tl.events[offset:offset + limit]]
    return {"case_id": case_id, "total_events": len(tl.events), "total_steps": len(tl.steps),
            "offset": offset, "limit": limit, "events": page}


def state_at(engine: Any, case_id: int, step: int) -> dict[str, Any]:
    """Every instance of the case as it stood after step `step` (1 = the first), and the step itself."""
    tl = timeline(engine, case_id)
    if not 1 <= step <= len(tl.steps):
        raise NotFoundError(f"case {case_id} has no step {step}: its steps are numbered 1 to {len(tl.steps)}"
                            if tl.steps else f"case {case_id} has no history to step through", case=case_id)
    with tl.lock:
        tl.ensure(step)
        out = tl.steps[step - 1].to_dict(len(tl.steps))
    tl.continue_in_background()
    return out


def path(engine: Any, case_id: int) -> dict[str, Any]:
    """The final state: the path each instance took on the diagram of the version it ran on."""
    tl = timeline(engine, case_id)
    if not tl.steps:
        return {"step": 0, "steps": 0, "instances": [], "case_record": {}, "events": [], "replayed": True,
                "divergence": None}
    return state_at(engine, case_id, len(tl.steps))


def diagram_of(engine: Any, process_version_id: int) -> tuple[bytes, str]:
    """The main BPMN file of a process version (the diagram an instance ran on) and its name."""
    with engine.db.engine.connect() as conn:
        pv = conn.execute(select(process_versions.c.file_ids, process_versions.c.main_file)
                          .where(process_versions.c.id == process_version_id)).first()
        if pv is None:
            raise NotFoundError(f"no process version {process_version_id}")
        content = conn.execute(select(definition_files.c.content).where(
            definition_files.c.id.in_(json.loads(pv.file_ids)), definition_files.c.name == pv.main_file)).scalar()
    if content is None:
        raise NotFoundError(f"the diagram of process version {process_version_id} is not stored")
    return bytes(content), pv.main_file


__all__ = ["CaseTimeline", "InstanceState", "Step", "case_timeline", "clear_cache", "diagram_of", "path",
           "state_at", "timeline"]
