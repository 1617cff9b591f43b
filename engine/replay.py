"""Replay: re-execute a case from its history and check it reaches the stored state.

The replay runs the same engine code against a scratch SQLite database: the recorded
diagram versions are copied in, the clock is set to each step's recorded reading, inputs
(starts, task completions, timers, retries) are applied in order and handlers are not
called — their recorded results are served, after checking they are asked for with the
recorded inputs. Every event the replay produces is compared with the recorded one; the
first difference is reported with the recorded event's number. Finally each instance's
state (status, waiting tasks and timers, data) is compared with the stored one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from . import history, messages
from .clock import parse_instant
from .db import Database
from .definitions import SpecCache
from .errors import CarepathError
from .forms import FormLibrary
from .instance_migration import replay_migration
from .registry import HandlerRegistry
from .schema import decision_versions, definition_files, deployments, events, process_versions
from .scripting import ReplayMismatch

INPUT_EVENTS = {"case.created", "instance.started", "task.completed", "timer.fired", "incident.retried",
                "case.record_updated", "instance.migrated", "instance.cancelled", "case.closed", "case.reopened",
                "instance.suspended", "instance.resumed", "message.received", "message.kept"}
# Events that change who holds a task, not the process: nothing to re-execute.
BOOKKEEPING_EVENTS = {"task.claimed", "task.released", "task.assigned", "task.delegated", "task.returned",
                      "task.draft_saved", "case.restricted", "case.unrestricted",
                      "case.break_glass", "case.break_glass_reviewed",
                      "person.subject_access_exported"}  # who may read it (api/break_glass.py), a SAR export
ERASED_MARK = json.loads(history.ERASED_DATA)  # what erasure leaves of an event's data
_TASK_KEYS = ("task_id",)
_INSTANCE_KEYS = ("parent_instance_id", "child_instance_id")
_IGNORED_KEYS = ("id", "incident_ids")  # incident numbers are local to a database


@dataclass
class Divergence:
    seq: int | None
    event_type: str | None
    expected: Any
    got: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_type": self.event_type, "expected": self.expected, "got": self.got,
                "message": self.message}


@dataclass
class ReplayReport:
    case_id: int
    events_replayed: int = 0
    steps: int = 0
    instances_compared: int = 0
    divergence: Divergence | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.divergence is None

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "ok": self.ok, "events_replayed": self.events_replayed,
                "steps": self.steps, "instances_compared": self.instances_compared,
                "divergence": self.divergence.to_dict() if self.divergence else None, "notes": self.notes}

    def __str__(self) -> str:
        if self.ok:
            return (f"replay of case {self.case_id} matches: {self.steps} steps, {self.events_replayed} events, "
                    f"{self.instances_compared} instance states identical")
        d = self.divergence
        assert d is not None
        where = f"event #{d.seq} ({d.event_type})" if d.seq is not None else "the final state"
        return (f"replay of case {self.case_id} DIVERGES at {where}: {d.message}\n"
                f"  recorded: {json.dumps(d.expected, default=str, sort_keys=True)}\n"
                f"  replayed: {json.dumps(d.got, default=str, sort_keys=True)}")


class _Diverged(Exception):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.message)
        self.divergence = divergence


class _IdMap:
    """Recorded ids (random task uuids, instance numbers) paired with the replay's, in order of appearance."""

    def __init__(self) -> None:
        self.tasks: dict[str, str] = {}
        self.instances: dict[int, int] = {}

    def pair(self, kind: dict, recorded: Any, replayed: Any) -> bool:
        if recorded is None or replayed is None:
            return recorded == replayed
        if recorded in kind:
            return kind[recorded] == replayed
        kind[recorded] = replayed
        return True


def replay_case(engine: Any, case_id: int) -> ReplayReport:
    from .runtime import Engine

    recorded = engine.history(case_id)
    report = ReplayReport(case_id)
    if recorded and recorded[-1]["type"] == history.ERASED_TYPE:  # engine/erasure.py: no inputs left to replay
        report.notes.append(f"the case's data was erased on {recorded[-1]['at']} under the retention rule "
                            f"{recorded[-1]['data'].get('rule')}: there is nothing to replay; its chain is "
                            "checked by `audit verify`")
        return report
    workdir = Path(tempfile.mkdtemp(prefix="carepath-replay-"))
    scratch_db = Database(f"sqlite:///{workdir / 'replay.db'}")
    try:
        start = parse_instant(recorded[0]["at"]) if recorded else engine.now()
        # no handlers (their recorded outputs are fed back), but the same pure expression functions the diagrams
        # call (add_working_days, ...): a script or timer that uses one computes again what it computed then
        scratch = Engine(scratch_db, registry=HandlerRegistry(), forms=FormLibrary(),
                         functions=dict(engine.registry.functions))
        scratch.init(simulated_start=start)
        scratch.specs = SpecCache(now=scratch.now)  # each step evaluates the decisions deployed by its time
        _copy_definitions(engine, scratch, recorded)
        ids = _IdMap()
        steps: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ev in recorded:
            steps[ev["step"]].append(ev)
        try:
            for step in _with_thrown(steps):
                _replay_step(scratch, case_id, step, ids, report)
            _compare_final(engine, scratch, ids, report)
        except _Diverged as d:
            report.divergence = d.divergence
    finally:
        scratch_db.dispose()
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _with_thrown(steps: dict[int, list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The recorded steps in order, a step that delivers a thrown message (it begins with `message.thrown`) joined
    to the one before it: it is no input, but what that step's throw caused in the same transaction
    (engine/messages.py `deliver_thrown`), so replaying that step produces both."""
    joined: list[list[dict[str, Any]]] = []
    for step_no in sorted(steps):
        step = steps[step_no]
        if joined and step[0]["type"] == "message.thrown":
            joined[-1] = joined[-1] + step
        else:
            joined.append(step)
    return joined


def _copy_definitions(engine: Any, scratch: Any, recorded: list[dict[str, Any]]) -> None:
    """Put the recorded diagram versions into the scratch database under their own ids."""
    version_ids = {ev["data"].get("process_version_id") for ev in recorded if ev["type"] == "instance.started"}
    # a case moved to another version (engine/instance_migration.py) needs both versions
    version_ids |= {ev["data"].get(k) for ev in recorded if ev["type"] == "instance.migrated"
                    for k in ("from_process_version_id", "to_process_version_id")}
    version_ids.discard(None)  # an event whose data was removed: its step is refused when it is reached
    if not version_ids:
        return
    with engine.db.engine.connect() as src, scratch.db.transaction() as dst:
        pvs = src.execute(select(process_versions).where(process_versions.c.id.in_(version_ids))).all()
        file_ids = sorted({fid for pv in pvs for fid in json.loads(pv.file_ids)})
        for f in src.execute(select(definition_files).where(definition_files.c.id.in_(file_ids))):
            dst.execute(insert(definition_files).values(**f._mapping))
        for dep in src.execute(select(deployments).where(deployments.c.id.in_({pv.deployment_id for pv in pvs}))):
            dst.execute(insert(deployments).values(**dep._mapping))
        for pv in pvs:
            dst.execute(insert(process_versions).values(**pv._mapping))
        _copy_decisions(src, dst, set(file_ids), {pv.deployment_id for pv in pvs})


def _copy_decisions(src: Any, dst: Any, file_ids: set[int], deployment_ids: set[int]) -> None:
    """Every deployed decision version, with its file and deployment: which one a step used depends on when
    it ran (definitions.SpecCache)."""
    rows = src.execute(select(decision_versions).order_by(decision_versions.c.id)).all()
    for f in src.execute(select(definition_files).where(
            definition_files.c.id.in_({r.file_id for r in rows} - file_ids))):
        dst.execute(insert(definition_files).values(**f._mapping))
    for dep in src.execute(select(deployments).where(
            deployments.c.id.in_({r.deployment_id for r in rows} - deployment_ids))):
        dst.execute(insert(deployments).values(**dep._mapping))
    for row in rows:
        dst.execute(insert(decision_versions).values(**row._mapping))


def _replay_step(scratch: Any, case_id: int, step: list[dict[str, Any]], ids: _IdMap,
                 report: ReplayReport) -> None:
    first = step[0]
    if first["type"] in BOOKKEEPING_EVENTS:
        # nothing to re-execute, but such a step holds nothing else: an input or an outcome slipped
        # in behind a bookkeeping event would otherwise never be compared
        other = next((ev for ev in step if ev["type"] not in BOOKKEEPING_EVENTS), None)
        if other is not None:
            raise _Diverged(Divergence(other["seq"], other["type"], other["data"], None,
                                       f"a '{other['type']}' event in a step of '{first['type']}' bookkeeping: "
                                       "the history was altered"))
        report.events_replayed += len(step)
        return
    refuse_removed_data(step)
    if first["type"] not in INPUT_EVENTS:
        raise _Diverged(Divergence(first["seq"], first["type"], first["data"], None,
                                   f"a step cannot begin with a '{first['type']}' event: the history was altered"))
    at = parse_instant(first["at"])
    with scratch.db.transaction() as conn:
        scratch._set_clock(conn, at)
    scratch._replay_outputs = [dict(ev["data"], failed=ev["type"] == "handler.failed") for ev in step
                               if ev["type"] in ("handler.called", "handler.failed")]
    scratch._replay_child_versions = [
        (ev["data"].get("process_id"), ev["data"].get("process_version_id")) for ev in step
        if ev["type"] == "instance.started" and ev["data"].get("parent_instance_id") is not None
        and isinstance(ev["data"].get("process_version_id"), int)]
    before = _scratch_seq(scratch, case_id)
    try:
        _apply(scratch, case_id, first, ids, step)
    except _Diverged:
        raise
    except ReplayMismatch as exc:
        handler_events = [ev for ev in step if ev["type"] in ("handler.called", "handler.failed")]
        at = handler_events[0] if handler_events else first
        raise _Diverged(Divergence(at["seq"], at["type"], at["data"], None, exc.message)) from None
    except CarepathError as exc:
        raise _Diverged(Divergence(first["seq"], first["type"], first["data"], str(exc),
                                   f"the replay could not apply this event: {exc}")) from None
    except KeyError as exc:  # the event lacks what the engine wrote into it
        missing = f" (it has no '{exc.args[0]}')" if exc.args else ""
        raise _Diverged(Divergence(first["seq"], first["type"], first["data"], None,
                                   f"event #{first['seq']}'s data is not what the engine wrote{missing}, so the "
                                   "case cannot be re-run from there")) from None
    finally:
        scratch._replay_outputs = None
        scratch._replay_child_versions = None
    produced = _events_after(scratch, case_id, before)
    for i, rec in enumerate(step):
        got = produced[i] if i < len(produced) else None
        _compare_event(rec, got, ids)
    if len(produced) > len(step):
        extra = produced[len(step)]
        raise _Diverged(Divergence(step[-1]["seq"], step[-1]["type"], None, _shape(extra),
                                   f"the replay produced an extra '{extra['type']}' event after this one"))
    report.events_replayed += len(step)
    report.steps += 1


def refuse_removed_data(step: list[dict[str, Any]]) -> None:
    """A step whose event holds only the erasure marker cannot be re-run. Erasure under a retention rule
    (engine/erasure.py) marks every event and ends with a case.erased event, which replay_case answers before
    replaying anything; a marker anywhere else means the data was removed by hand in the database."""
    for ev in step:
        if ev["data"] == ERASED_MARK:
            raise _Diverged(Divergence(ev["seq"], ev["type"], ev["data"], None,
                                       f"event #{ev['seq']}'s data was removed, so the case cannot be re-run "
                                       "from there"))


def _events_after(scratch: Any, case_id: int, seq: int) -> list[dict[str, Any]]:
    """The scratch case's events after `seq` (none when the case does not exist): one query a step."""
    with scratch.db.engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.chain == history.case_chain(case_id), events.c.seq > seq)
                            .order_by(events.c.seq)).all()
    return [dict(r._mapping, data=json.loads(r.data)) for r in rows]


def _scratch_seq(scratch: Any, case_id: int) -> int:
    with scratch.db.engine.connect() as conn:
        seq = conn.execute(select(events.c.seq).where(events.c.chain == history.case_chain(case_id))
                           .order_by(events.c.seq.desc()).limit(1)).scalar()
    return seq or 0


def _apply(scratch: Any, case_id: int, ev: dict[str, Any], ids: _IdMap, step: list[dict[str, Any]]) -> None:
    data, kind = ev["data"], ev["type"]
    if kind == "case.created":
        started = [e for e in step[1:2] if e["type"] == "instance.started"]
        if step[1:2] and step[1]["type"] == "message.received":  # a message started it (engine/messages.py)
            messages.replay_event(scratch, case_id, step[1], new_case=data)
            return
        with scratch.db.transaction() as conn:
            now = scratch.now(conn)
            lead: list[Any] = []
            scratch._create_case(conn, now, data["title"], data.get("data") or {}, ev["actor"],
                                 data["reference"], case_id=case_id, defer=lead)
            if not started:  # a case created on its own
                history.append(conn, history.case_chain(case_id), case_id, now, lead, lock=False)
                return
            s = started[0]  # created together with its first process, in one step
            pending = scratch._start_instance(conn, now, case_id, s["data"]["process_version_id"],
                                              s["data"].get("data") or {}, s["actor"], parent=None,
                                              case_data=data.get("data") or {})
            scratch._finish(conn, now, pending, s["actor"], lead)
    elif kind == "instance.started":
        with scratch.db.transaction() as conn:
            now = scratch.now(conn)
            pending = scratch._start_instance(conn, now, case_id, data["process_version_id"], data.get("data") or {},
                                              ev["actor"], parent=None)
            scratch._finish(conn, now, pending, ev["actor"])
    elif kind == "task.completed":
        task_id = ids.tasks.get(data["task_id"])
        if task_id is None:
            raise _Diverged(Divergence(ev["seq"], kind, data, None,
                                       "the history completes a task that the replay never made ready"))
        scratch.complete_task(task_id, data.get("data") or {}, actor=ev["actor"])
    elif kind == "timer.fired":
        iid = ids.instances.get(ev["instance_id"])
        if iid is None:
            raise _Diverged(Divergence(ev["seq"], kind, data, None, "a timer fired in an instance the replay lacks"))
        with scratch.db.transaction() as conn:
            scratch._fire_instance(conn, scratch.now(conn), iid)
    elif kind == "incident.retried":
        iid = ids.instances.get(ev["instance_id"])
        if iid is None:
            raise _Diverged(Divergence(ev["seq"], kind, data, None, "a retry in an instance the replay lacks"))
        scratch.retry(iid, actor=ev["actor"])
    elif kind == "case.record_updated":
        scratch.update_case_record(case_id, data["data"], actor=ev["actor"], reason=data.get("reason", ""))
    elif kind == "case.closed":  # engine/lifecycle.py: the cancellations follow in the same step
        scratch.close_case(case_id, reason=data["reason"], details=data.get("details"), actor=ev["actor"])
    elif kind == "case.reopened":
        scratch.reopen_case(case_id, reason=data["reason"], actor=ev["actor"])
    elif kind == "instance.cancelled":
        iid = ids.instances.get(ev["instance_id"])
        if iid is None:
            raise _Diverged(Divergence(ev["seq"], kind, data, None, "a cancellation of an instance the replay lacks"))
        scratch.cancel_instance(iid, reason=data["reason"], details=data.get("details"), actor=ev["actor"])
    elif kind in ("instance.suspended", "instance.resumed"):  # a pause and its end (engine/suspension.py)
        iid = ids.instances.get(ev["instance_id"])
        if iid is None:
            raise _Diverged(Divergence(ev["seq"], kind, data, None, "a suspend or resume of an instance the replay "
                                       "lacks"))
        if kind == "instance.suspended":
            scratch.suspend_instance(iid, reason=data["reason"], actor=ev["actor"], details=data.get("details"))
        else:
            scratch.resume_instance(iid, actor=ev["actor"], mode=data["mode"], reason=data.get("reason"),
                                    details=data.get("details"), then_start=data.get("then_start"),
                                    not_after=data.get("not_after"))
    elif kind in ("message.received", "message.kept"):  # engine/messages.py: the same message again
        messages.replay_event(scratch, case_id, ev)
    elif kind == "instance.migrated":  # moved to another version: the same move, at the same point
        iid = ids.instances.get(ev["instance_id"])
        if iid is None:
            raise _Diverged(Divergence(ev["seq"], kind, data, None, "a move of an instance the replay lacks"))
        replay_migration(scratch, iid, data, actor=ev["actor"])


def _shape(ev: dict[str, Any] | None) -> Any:
    if ev is None:
        return None
    return {"type": ev["type"], "actor": ev["actor"], "at": ev["at"], "data": ev["data"]}


def _compare_event(rec: dict[str, Any], got: dict[str, Any] | None, ids: _IdMap) -> None:
    def fail(message: str) -> None:
        raise _Diverged(Divergence(rec["seq"], rec["type"], _shape(rec), _shape(got), message))

    if got is None:
        fail("the replay did not produce this event")
        return
    if got["type"] != rec["type"]:
        fail(f"the replay produced a '{got['type']}' event here instead")
    if got["actor"] != rec["actor"] or got["at"] != rec["at"]:
        fail("the replayed event has a different actor or time")
    if not ids.pair(ids.instances, rec["instance_id"], got["instance_id"]):
        fail("the event belongs to a different process instance in the replay")
    if not _same(rec["data"], got["data"], ids):
        fail("the event's content differs")


def _same(a: Any, b: Any, ids: _IdMap) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return False
        for k in a:
            if k in _IGNORED_KEYS:
                continue
            if k in _TASK_KEYS:
                if not ids.pair(ids.tasks, a[k], b[k]):
                    return False
            elif k in _INSTANCE_KEYS:
                if not ids.pair(ids.instances, a[k], b[k]):
                    return False
            elif not _same(a[k], b[k], ids):
                return False
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, ids) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b  # true is not 1, 1 is not 1.0


def _compare_final(engine: Any, scratch: Any, ids: _IdMap, report: ReplayReport) -> None:
    for recorded_iid, replay_iid in sorted(ids.instances.items()):
        stored = engine.instance_snapshot(recorded_iid)
        replayed = scratch.instance_snapshot(replay_iid)
        report.instances_compared += 1
        if stored != replayed:
            raise _Diverged(Divergence(None, None, stored, replayed,
                                       f"instance {recorded_iid} ends in a different state than stored "
                                       "(its stored state was changed outside the engine)"))
    # whether the case is closed, and its last closure, are written only with case.closed / case.reopened: a
    # closing or reopening event deleted from the end (its chain's head moved back with it) leaves the case
    # record saying what its history no longer does
    from .lifecycle import CLOSED_KEY, LAST_CLOSURE_KEY

    stored_data, replayed_data = _case_data(engine, report.case_id), _case_data(scratch, report.case_id)
    for key, what in ((CLOSED_KEY, "whether the case is closed"), (LAST_CLOSURE_KEY, "the case's last closure")):
        if stored_data.get(key) != replayed_data.get(key):
            raise _Diverged(Divergence(None, None, stored_data.get(key), replayed_data.get(key),
                                       f"the case record ends differently from its history: {what} is not what "
                                       "the history gives (a closing or reopening event was removed, or the "
                                       "record was changed outside the engine)"))


def _case_data(engine: Any, case_id: int) -> dict[str, Any]:
    from .schema import cases

    with engine.db.engine.connect() as conn:
        text = conn.execute(select(cases.c.data).where(cases.c.id == case_id)).scalar()
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
