"""Messages: deliver a message to a case by name (and correlation keys), once.

A message (`Engine.deliver_message`, `POST /api/messages`, `carepath message NAME`) goes to one case:

* to the one open process instance of the case that waits for a message of that name — a receive
  task, an intermediate message catch event, a message boundary event or an event-based gateway
  with a message among its events — whose process data has every correlation key given, with
  the same value (and, when the diagram declares correlation properties, whose SpiffWorkflow
  correlation matches the message's), at any depth (embedded subprocesses, called processes); two such
  instances, or two such receivers in one instance, are ambiguous and the message is refused;
* else it starts every deployed process (latest version) whose start event is a message start event
  of that name, on the case, or on a new case when none is named;
* else it is **kept** for the engine's message time to live (`CAREPATH_MESSAGE_TTL`, ISO 8601, default
  P7D; `P0D` refuses it instead) and delivered by the first step of the case that leaves a receiver
  waiting, until it expires.

Each message is stored once with its idempotency key (given, or the SHA-256 of name, case, correlation
and data): the `messages` table's unique key makes a second delivery — a retry, or two processes at the
same moment — a duplicate that changes nothing. A message that names an unknown case, a name no deployed
process receives, or data that is not a JSON object is refused and nothing is stored.

Delivery is one step and one transaction, recorded in the case's history: `message.received` (an
input, re-applied by replay) then what the process did; `message.kept` (an input: replay keeps it too);
`message.delivered` inside the step that delivered a kept message. Timers of the receiving instance that
fell due before the message are fired first, in their own step: on the injected clock, whichever event
comes first wins an event-based gateway's race.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection, exc, func, insert, select, update

from . import history, lifecycle
from .bpmn_timers import add_duration, literal_problem
from .clock import as_utc, parse_instant
from .errors import ConflictError, NotFoundError, StateError, ValidationError
from .history import Event, case_chain
from .schema import cases, instances, messages, process_versions

DEFAULT_TTL = "P7D"
MAX_NAME = 255


@dataclass
class MessageResult:
    """What became of a message: delivered, started, kept or duplicate (of an earlier one)."""

    status: str
    key: str
    name: str
    case_id: int
    case_reference: str
    instance_ids: list[int] = field(default_factory=list)
    expires_at: datetime | None = None
    steps: list[Any] = field(default_factory=list)  # StepResult of each instance moved
    note: str | None = None  # why a kept message was not delivered, when a receiver of that name waits

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "key": self.key, "name": self.name, "case_id": self.case_id,
                "case_reference": self.case_reference, "instance_ids": self.instance_ids,
                "expires_at": history.iso(self.expires_at) if self.expires_at else None,
                "ready_tasks": [t for s in self.steps for t in s.ready_tasks], "note": self.note}


def message_ttl(value: str | timedelta | None = None) -> timedelta:
    """The time to live of a kept message: `value`, else CAREPATH_MESSAGE_TTL, else P7D."""
    if isinstance(value, timedelta):
        return value
    text = (value or os.environ.get("CAREPATH_MESSAGE_TTL") or DEFAULT_TTL).strip()
    problem = literal_problem("duration", text)
    if problem and text not in ("P0D", "PT0S"):
        raise ValidationError(f"CAREPATH_MESSAGE_TTL: {problem}")
    if text in ("P0D", "PT0S"):
        return timedelta(0)
    start = datetime(2000, 1, 1)
    return add_duration(start, text) - start


# ---------------------------------------------------------------------- reading workflows and specs
def _message_definitions(definition: Any) -> list[Any]:
    if isinstance(definition, MessageEventDefinition):
        return [definition]
    if isinstance(definition, MultipleEventDefinition):
        return [d for d in definition.event_definitions if isinstance(d, MessageEventDefinition)]
    return []


def waiting_names(wf: Any) -> set[str]:
    """The names of the messages a workflow waits for now."""
    return {d.name for t in wf.event_manager.tasks.values() if t.state == TaskState.WAITING
            for d in _message_definitions(getattr(t.task_spec, "event_definition", None))}


def _receivers(wf: Any, name: str, data: dict[str, Any], correlation: dict[str, Any],
               misses: list[str] | None = None) -> list[tuple[Any, Any, Any]]:
    """(task, its message definition, the event to give it) for each waiting task that takes the message.

    Every waiting task of the instance counts, at any depth: the library keeps the waiting event tasks of
    embedded subprocesses and of the processes call activities run in the top workflow's event manager.
    `misses` collects, for a receiver of that name that does not take the message, why (key names only)."""
    found = []
    for task in list(wf.event_manager.tasks.values()):
        if task.state != TaskState.WAITING:
            continue
        for definition in _message_definitions(getattr(task.task_spec, "event_definition", None)):
            if definition.name != name:
                continue
            differ = sorted(k for k, v in correlation.items() if task.data.get(k, _MISSING) != v)
            if differ:
                _miss(misses, task, "its process data has another value (or none) for the correlation key(s) "
                      + ", ".join(repr(k) for k in differ))
                continue
            correlations = {}
            if definition.correlation_properties:
                try:
                    correlations = definition.calculate_correlations(
                        wf.script_engine, definition.correlation_properties, data)
                except Exception:  # noqa: BLE001 - a property the data lacks: this receiver does not match
                    _miss(misses, task, "the message's data lacks the diagram's correlation propert(ies) "
                          + _properties(definition))
                    continue
            event = BpmnEvent(definition, payload=dict(data), correlations=correlations)
            if task.task_spec.catches(task, event):
                found.append((task, definition, event))
                break
            _miss(misses, task, "the diagram correlates it on " + _properties(definition)
                  + " and the message's value differs from the one the process holds")
    return found


def _properties(definition: Any) -> str:
    return ", ".join(repr(p.name) for p in definition.correlation_properties) or "nothing"


def _miss(misses: list[str] | None, task: Any, why: str) -> None:
    if misses is not None:
        misses.append(f"{_where(task)} waits for it, but {why}")


def _where(task: Any) -> str:
    """A waiting task as a modeller finds it: its element id, inside the subprocess or called process that holds it."""
    path = []
    wf, top = task.workflow, task.workflow.top_workflow
    while wf.parent_task_id is not None:
        parent = top.get_task_from_id(wf.parent_task_id)
        path.append(_element(parent))
        wf = parent.workflow
    return f"'{_element(task)}'" + "".join(f" in '{p}'" for p in path)


_MISSING = object()


def _catch(found: list[tuple[Any, Any, Any]]) -> Callable[[], None]:
    def apply() -> None:
        for task, definition, event in found:
            if getattr(definition, "message_var", None) is None and isinstance(event.payload, dict):
                task.set_data(**event.payload)  # no message variable named: the data joins the process data
            task.task_spec.catch(task, event)
            task.task_spec._update(task)
    return apply


def catalogue(engine: Any, conn: Connection) -> dict[str, list[tuple[int, str, bool]]]:
    """message name -> [(process version id, process id, starts the process)] over the latest versions."""
    latest = {}
    for row in conn.execute(select(process_versions.c.id, process_versions.c.process_id, process_versions.c.version)):
        if row.process_id not in latest or row.version > latest[row.process_id][1]:
            latest[row.process_id] = (row.id, row.version)
    key = tuple(sorted(v[0] for v in latest.values()))
    kept = getattr(engine, "_message_catalogue", None)
    if kept is not None and kept[0] == key:
        return kept[1]
    names: dict[str, list[tuple[int, str, bool]]] = {}
    for process_id, (version_id, _v) in sorted(latest.items()):
        loaded = engine.specs.get(conn, version_id)
        specs = [(loaded.spec, True)] + [(s, False) for s in loaded.subprocess_specs.values()]
        seen: dict[str, bool] = {}
        for spec, top in specs:
            for ts in spec.task_specs.values():
                for d in _message_definitions(getattr(ts, "event_definition", None)):
                    starts = top and isinstance(ts, StartEvent)
                    seen[d.name] = seen.get(d.name, False) or starts
        for name, starts in seen.items():
            names.setdefault(name, []).append((version_id, process_id, starts))
    engine._message_catalogue = (key, names)
    return names


# ---------------------------------------------------------------------- delivering
def _check(name: Any, data: Any, correlation: Any, key: Any) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    problems = []
    if not isinstance(name, str) or not name.strip():
        problems.append("name: give the message's name (as in the diagram's <message name=…>)")
    elif len(name) > MAX_NAME:
        problems.append(f"name: at most {MAX_NAME} characters")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"data: must be a JSON object of values (got {type(data).__name__})")
    if correlation is None:
        correlation = {}
    if not isinstance(correlation, dict) or any(not isinstance(k, str) or not k for k in correlation):
        problems.append("correlation: must be a JSON object of key names to values")
    if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > MAX_NAME):
        problems.append(f"key: a non-empty text of at most {MAX_NAME} characters")
    if not problems:
        try:
            json.dumps(data, allow_nan=False)
            json.dumps(correlation, allow_nan=False)
        except (TypeError, ValueError) as err:
            problems.append(f"data: not JSON ({err})")
    if not problems:
        for what, value in (("data", data), ("correlation", correlation), ("name", name), ("key", key)):
            try:
                history.refuse_unstorable(value, what)
            except ValidationError as err:
                problems.append(err.message.removesuffix("; nothing was saved"))
    if problems:
        raise ValidationError("the message is refused; nothing was stored: " + "; ".join(problems))
    return name.strip(), data, correlation, key.strip() if key else None


def derived_key(name: str, case: str, correlation: dict[str, Any], data: dict[str, Any]) -> str:
    """The idempotency key of a message sent without one: the same content is the same message."""
    body = history.canonical_json({"name": name, "case": case, "correlation": correlation, "data": data})
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def deliver(engine: Any, name: str, *, case_id: int | None = None, correlation: dict[str, Any] | None = None,
            data: dict[str, Any] | None = None, key: str | None = None, actor: str = "system",
            ttl: timedelta | None = None, _new_case: tuple[int, str] | None = None,
            _replay: dict[str, Any] | None = None) -> MessageResult:
    """Deliver (or start with, or keep) one message; see the module's description."""
    name, data, correlation, key = _check(name, data, correlation, key)
    ttl = message_ttl(ttl if ttl is not None else getattr(engine, "message_ttl", None))
    try:
        with engine._tx() as conn:
            return _deliver(engine, conn, name, case_id, correlation, data, key, actor, ttl, _new_case, _replay)
    except ConflictError:
        with engine.db.engine.connect() as conn:
            row = conn.execute(select(messages).where(messages.c.key == key)).first() if key else None
        if row is None:
            raise
        return _duplicate(conn_row=row, engine=engine)
    except exc.IntegrityError:
        # another process stored the same key between our check and our insert: it was applied there
        with engine.db.engine.connect() as conn:
            row = conn.execute(select(messages).where(messages.c.key == (key or _key_of(conn, name, case_id,
                                                                                          correlation, data)))).first()
        if row is None:
            raise
        return _duplicate(conn_row=row, engine=engine)


def _key_of(conn: Connection, name: str, case_id: int | None, correlation: dict[str, Any], data: dict[str, Any]) -> str:
    ref = conn.execute(select(cases.c.reference).where(cases.c.id == case_id)).scalar() if case_id else ""
    return derived_key(name, ref or "", correlation, data)


def _duplicate(conn_row: Any, engine: Any) -> MessageResult:
    with engine.db.engine.connect() as conn:
        ref = conn.execute(select(cases.c.reference).where(cases.c.id == conn_row.case_id)).scalar_one()
    return MessageResult("duplicate", conn_row.key, conn_row.name, conn_row.case_id, ref,
                         [conn_row.instance_id] if conn_row.instance_id else [],
                         as_utc(conn_row.expires_at) if conn_row.expires_at else None)


def _deliver(engine: Any, conn: Connection, name: str, case_id: int | None, correlation: dict[str, Any],
             data: dict[str, Any], key: str | None, actor: str, ttl: timedelta,
             new_case: tuple[int, str] | None, replay: dict[str, Any] | None = None) -> MessageResult:
    engine.db.require_initialised(conn)
    now = engine.now(conn)
    reference = ""
    if case_id is not None:
        found = conn.execute(select(cases.c.data, cases.c.reference).where(cases.c.id == case_id)).first()
        if found is None:
            raise NotFoundError(f"no case {case_id}: the message was not delivered and nothing was stored",
                                case=case_id)
        if json.loads(found.data).get(lifecycle.CLOSED_KEY):
            raise StateError(f"case {found.reference} is closed: reopen it before sending it messages; nothing was "
                             "stored", case=case_id)
        reference = found.reference
    key = key or derived_key(name, reference, correlation, data)
    existing = conn.execute(select(messages).where(messages.c.key == key)).first()
    if existing is not None:
        return _duplicate(existing, engine)
    row_values = dict(key=key, name=name, correlation=history.canonical_json(correlation),
                      data=history.canonical_json(data), received_at=now, actor=actor)
    claimed = False
    if case_id is not None:
        # Take the key first: a second delivery of it, even one running at this moment in another process,
        # waits here for this transaction and then finds the key taken (the unique constraint decides).
        if not _claim(conn, dict(row_values, case_id=case_id, status="claimed")):
            return _duplicate(conn.execute(select(messages).where(messages.c.key == key)).one(), engine)
        claimed = True
    if replay is not None and replay["type"] == "message.kept":  # as it was kept then, whatever is deployed now
        return _keep(engine, conn, now, name, case_id, reference, key, correlation, data, actor, ttl, claimed)
    known = catalogue(engine, conn)
    if replay is not None and "process_version_ids" in replay["data"]:  # the versions it started then
        known = {name: [(vid, "", True) for vid in replay["data"]["process_version_ids"]]}
    if name not in known:
        names = ", ".join(sorted(known)) or "none"
        raise NotFoundError(f"no deployed process receives a message named {name!r} (messages known: {names}); "
                            "nothing was stored", message_name=name)
    received = {"name": name, "key": key, "correlation": correlation, "data": data}

    misses: list[str] = []
    if case_id is not None:
        target = _waiting_instance(engine, conn, now, case_id, name, data, correlation, reference, misses)
        if target is not None:
            row, wf, found = target
            p = engine._pending(now, row, wf)
            p.scope.events.append(Event("message.received", dict(received, element_ids=sorted(
                _element(t) for t, _d, _e in found)), instance_id=row.id, actor=actor))
            children = engine._advance(conn, now, p, actor, _catch(found))
            step = engine._finish(conn, now, [p] + children, actor)
            _put(conn, claimed, dict(row_values, case_id=case_id, status="delivered", delivered_at=now,
                                     instance_id=row.id))
            return MessageResult("delivered", key, name, case_id, reference, [row.id], None, [step])

    starters = [(vid, pid) for vid, pid, starts in known[name] if starts]
    if starters:
        lead: list[Event] = []
        if case_id is None:
            title = str(data.get("name") or name)
            if new_case is not None:  # replay: the case the history recorded
                case_id = engine._create_case(conn, now, title, {}, actor, new_case[1], case_id=new_case[0],
                                              defer=lead)
            else:
                case_id = engine._create_case(conn, now, title, {}, actor, None, defer=lead)
            reference = conn.execute(select(cases.c.reference).where(cases.c.id == case_id)).scalar_one()
        lead.append(Event("message.received", dict(received, element_ids=[], process_version_ids=[
            vid for vid, _pid in starters]), actor=actor))
        steps, ids = [], []
        pending_all: list[Any] = []
        for vid, _pid in starters:
            pending_all += _start_with(engine, conn, now, case_id, vid, name, data, actor)
        step = engine._finish(conn, now, pending_all, actor, lead)
        steps.append(step)
        ids = [p.instance_id for p in pending_all]
        _put(conn, claimed, dict(row_values, case_id=case_id, status="delivered", delivered_at=now,
                                 instance_id=ids[0]))
        return MessageResult("started", key, name, case_id, reference, ids, None, steps)

    if case_id is None:
        raise ValidationError(f"no process waits for or starts with message {name!r} without a case: name the case "
                              "(--case); nothing was stored")
    return _keep(engine, conn, now, name, case_id, reference, key, correlation, data, actor, ttl, claimed,
                 "; ".join(misses) or None)


def _claim(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert the message's row unless its key is taken (INSERT … ON CONFLICT DO NOTHING); True if inserted."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = (dialect_insert(messages).values(**values).on_conflict_do_nothing(index_elements=["key"])
            .returning(messages.c.id))
    return conn.execute(stmt).first() is not None


def _put(conn: Connection, claimed: bool, values: dict[str, Any]) -> None:
    """Write the message's row: fill in the one claimed in this transaction, or insert it."""
    if claimed:
        conn.execute(update(messages).where(messages.c.key == values["key"]).values(**values))
    else:
        conn.execute(insert(messages).values(**values))


def _keep(engine: Any, conn: Connection, now: datetime, name: str, case_id: int, reference: str, key: str,
          correlation: dict[str, Any], data: dict[str, Any], actor: str, ttl: timedelta,
          claimed: bool = False, note: str | None = None) -> MessageResult:
    if ttl <= timedelta(0):
        raise StateError(f"nothing in case {reference} waits for message {name!r} now, and messages are not kept "
                         "(CAREPATH_MESSAGE_TTL is P0D); nothing was stored" + (f" ({note})" if note else ""),
                         case=case_id)
    expires = now + ttl
    _put(conn, claimed, dict(key=key, name=name, correlation=history.canonical_json(correlation),
                             data=history.canonical_json(data), received_at=now, actor=actor,
                             case_id=case_id, status="kept", expires_at=expires))
    history.append(conn, case_chain(case_id), case_id, now, [Event("message.kept", {
        "name": name, "key": key, "correlation": correlation, "data": data, "expires_at": history.iso(expires)},
        actor=actor)], lock=engine.db.is_postgres)
    return MessageResult("kept", key, name, case_id, reference, [], expires, note=note)


def _element(task: Any) -> str:
    return task.task_spec.bpmn_id or task.task_spec.name


def _waiting_instance(engine: Any, conn: Connection, now: datetime, case_id: int, name: str, data: dict[str, Any],
                      correlation: dict[str, Any], reference: str,
                      misses: list[str], skip: int | None = None) -> tuple[Any, Any, list[Any]] | None:
    """The one open instance of the case that takes the message (its row, workflow and its one receiver), or None.

    Two instances, or two receivers in one instance (two branches, two items of a multi-instance call activity),
    are ambiguous: refused. `misses` collects the receivers of that name that do not take it, and why. `skip`: an
    instance not to look in (the one that threw the message: SpiffWorkflow already offered it to its receivers).
    An instance with timers due by now fires them first (their own step): what came first wins."""
    from .runtime import _due_timers  # the step machinery lives in runtime

    ids = [iid for iid in conn.execute(select(instances.c.id).where(
        instances.c.case_id == case_id, instances.c.status.in_(("running", "waiting")))
        .order_by(instances.c.id)).scalars() if iid != skip]
    matches = []
    for iid in ids:
        row, wf = engine._load(conn, iid)
        if name not in waiting_names(wf):
            engine._live[iid] = (row.version, wf)
            continue
        if _due_timers(engine._pending(now, row, wf).before, now):
            engine._live[iid] = (row.version, wf)
            engine._fire_instance(conn, now, iid)
            row, wf = engine._load(conn, iid)
            if row.state is None or row.status not in ("running", "waiting"):
                continue
        missed: list[str] = []
        found = _receivers(wf, name, data, correlation, missed)
        misses.extend(f"instance {iid}: {m}" for m in missed)
        if found:
            matches.append((row, wf, found))
        else:
            engine._live[iid] = (row.version, wf)
    if len(matches) > 1:
        listed = ", ".join(str(m[0].id) for m in matches)
        raise StateError(f"{len(matches)} process instances of case {reference} wait for message {name!r} "
                         f"(instances {listed}): give correlation keys that pick one; nothing was stored",
                         case=case_id)
    if matches and len(matches[0][2]) > 1:  # one message has one receiver, as in Camunda and Zeebe
        row, _wf, found = matches[0]
        listed = ", ".join(_where(t) for t, _d, _e in found)
        raise StateError(f"{len(found)} receivers in process instance {row.id} of case {reference} wait for message "
                         f"{name!r} ({listed}): a message goes to one receiver; give correlation keys that pick one "
                         "(a value in that receiver's process data, such as its multi-instance item); nothing was "
                         "stored", case=case_id)
    return matches[0] if matches else None


def _start_with(engine: Any, conn: Connection, now: datetime, case_id: int, version_id: int, name: str,
                data: dict[str, Any], actor: str) -> list[Any]:
    """Start a process whose message start event takes the message, and give it the message."""
    def apply(wf: Any) -> None:
        wf.do_engine_steps()  # up to the message start event, which then waits
        found = _receivers(wf, name, data, {})
        _catch(found)()
    return engine._start_instance(conn, now, case_id, version_id, {}, actor, parent=None, on_start=apply)


def deliver_kept(engine: Any, conn: Connection, now: datetime, p: Any) -> None:
    """Give a step's instance the kept messages it now waits for (called at the end of every step's run)."""
    wf = p.workflow
    names = waiting_names(wf)
    if not names:
        return
    rows = conn.execute(select(messages).where(
        messages.c.case_id == p.case_id, messages.c.status == "kept", messages.c.name.in_(sorted(names)),
        messages.c.expires_at > now).order_by(messages.c.id)).all()
    for r in rows:
        if r.name not in waiting_names(wf):
            continue
        correlation, data = json.loads(r.correlation), json.loads(r.data)
        found = _receivers(wf, r.name, data, correlation)
        if len(found) != 1:  # none, or two receivers: ambiguous, so it stays kept (and expires) as sent
            continue
        taken = conn.execute(update(messages).where(messages.c.id == r.id, messages.c.status == "kept").values(
            status="delivered", delivered_at=now, instance_id=p.instance_id))
        if taken.rowcount != 1:  # another step delivered it first
            continue
        p.scope.events.append(Event("message.delivered", {
            "name": r.name, "key": r.key, "received_at": history.iso(as_utc(r.received_at)),
            "element_ids": sorted(_element(t) for t, _d, _e in found)}, instance_id=p.instance_id))
        _catch(found)()
        wf.refresh_timers()
        wf.do_engine_steps()


# ---------------------------------------------------------------------- messages the diagram throws
#: conn.info key: (the transaction, [(case id, thrower instance id, thrown message, actor)]) still to deliver
_THROWN = "carepath_thrown"
#: deliveries of thrown messages one transaction may make before it is refused: two processes throwing
#: messages at each other for ever would otherwise never end the step
MAX_THROWN = 1000


def _throws_messages(wf: Any) -> bool:
    """Whether any process spec of the workflow has an element that throws a message (kept on the spec: specs
    are built once a version)."""
    spec = wf.spec
    known = getattr(spec, "_carepath_throws", None)
    if known is None:
        specs = [spec, *getattr(wf, "subprocess_specs", {}).values()]
        known = any(isinstance(ts, ThrowingEvent) and _message_definitions(getattr(ts, "event_definition", None))
                    for sp in specs for ts in sp.task_specs.values())
        spec._carepath_throws = known
    return known


def throwers_done(wf: Any) -> frozenset[Any] | None:
    """Before a step: the message throwers that have already run (None for a workflow that throws none, at no
    cost), so that `thrown_in_step` can tell which thrower threw in the step."""
    if not _throws_messages(wf):
        return None
    from .workflow_state import _all_tasks

    return frozenset(t.id for t in _all_tasks(wf) if t.state == TaskState.COMPLETED
                     and isinstance(t.task_spec, ThrowingEvent))


def thrown_in_step(wf: Any, since: int, done_before: frozenset[Any] | None = None) -> list[dict[str, Any]]:
    """The messages the workflow threw since `since` (its `bpmn_events` count then) that nothing in its own
    instance caught, taken out of the workflow: intermediate message throw events, message end events and send
    tasks with no handler. SpiffWorkflow delivers a message to a receiver of the same instance itself (it
    then never reaches this list); one it cannot place it leaves in `bpmn_events` for the engine.

    A message whose definition gives no `spiffworkflow:messagePayload` carries its thrower's data, as BPMN and
    SpiffWorkflow's BPMN module read it, and the thrower's (sub)workflow takes the correlation that data gives,
    so that an answer finds its way back to it (SpiffWorkflow's `correlation.bpmn`: each item of a
    multi-instance subprocess starts a process and waits for its own answer); the spiff dialect alone sends
    nothing then, and a receiver correlating on the data could never take it. `done_before`
    (`throwers_done`) tells the step's throwers from earlier ones."""
    events = wf.bpmn_events
    mine = [e for e in events[since:] if isinstance(e.event_definition, MessageEventDefinition)]
    if not mine:
        return []
    wf.bpmn_events = events[:since] + [e for e in events[since:] if e not in mine]
    fresh: dict[str, list[Any]] = {}
    if any(getattr(e.event_definition, "expression", None) is None and not e.payload for e in mine):
        from .workflow_state import _all_tasks

        for t in _all_tasks(wf):
            if t.state == TaskState.COMPLETED and isinstance(t.task_spec, ThrowingEvent) and (
                    done_before is None or t.id not in done_before):
                for d in _message_definitions(getattr(t.task_spec, "event_definition", None)):
                    fresh.setdefault(d.name, []).append(t)
    thrown = []
    for e in mine:
        definition, payload = e.event_definition, e.payload
        name = definition.name
        if getattr(definition, "expression", None) is None and not payload and fresh.get(name):
            task = fresh[name].pop(0)
            payload = dict(task.data)
            if definition.correlation_properties:
                try:
                    task.workflow.correlations.update(definition.calculate_correlations(
                        wf.script_engine, definition.correlation_properties, payload))
                except Exception:  # noqa: BLE001 - the data lacks a property: the message carries no correlation
                    pass
        thrown.append({"name": name, "data": json.loads(history.canonical_json(payload or {})),
                       "thrown_by": _throwers(wf, name)})
    return thrown


def _throwers(wf: Any, name: str) -> list[str]:
    """The elements that throw a message of that name and have run in the workflow (for the history)."""
    from .workflow_state import _all_tasks

    found = set()
    for t in _all_tasks(wf):
        if t.state == TaskState.COMPLETED and isinstance(t.task_spec, ThrowingEvent) and any(
                d.name == name for d in _message_definitions(getattr(t.task_spec, "event_definition", None))):
            found.add(_element(t))
    return sorted(found)


def _queue(conn: Connection) -> list[tuple[int, int, dict[str, Any], str]]:
    """This transaction's thrown messages still to deliver (a list left by another transaction is dropped)."""
    held = conn.info.get(_THROWN)
    current = conn.get_transaction()
    if held is None or held[0] is not current:
        held = conn.info[_THROWN] = (current, [], [0])
    return held[1]


def queue_thrown(conn: Connection, thrown: list[tuple[int, int, dict[str, Any], str]]) -> None:
    """Keep what a step threw, to deliver once the step is written (`deliver_thrown`)."""
    _queue(conn).extend(thrown)


def forget_thrown(conn: Connection) -> None:
    conn.info.pop(_THROWN, None)


def deliver_thrown(engine: Any, conn: Connection, now: datetime | None = None) -> None:
    """Deliver the messages this transaction's written steps threw, each as `deliver` would deliver a message
    sent to their case: to the one receiver waiting for it in another open instance of the case, else by
    starting the processes whose message start event takes it, on the case; else it is kept (or, with a time
    to live of P0D, refused: the step that threw it is refused and nothing is saved). Each delivery is a step
    of its own in the same transaction, beginning with `message.thrown`; what it throws in turn goes the same
    way."""
    queue = _queue(conn)
    if not queue or conn.info[_THROWN][2][0] < 0:  # nothing, or a delivery below us is draining the queue
        return
    counter = conn.info[_THROWN][2]
    if now is None:
        now = engine.now(conn)
    done = counter[0]
    counter[0] = -1
    try:
        while queue:
            case_id, thrower, message, actor = queue.pop(0)
            done += 1
            if done > MAX_THROWN:
                raise StateError(f"the diagram threw more than {MAX_THROWN} messages in one step (message "
                                 f"{message['name']!r}, thrown by {', '.join(message['thrown_by']) or 'the process'}): "
                                 "processes that answer each other's messages for ever; nothing was saved",
                                 case=case_id)
            _deliver_thrown(engine, conn, now, case_id, thrower, message, actor)
    finally:
        counter[0] = done


def _deliver_thrown(engine: Any, conn: Connection, now: datetime, case_id: int, thrower: int,
                    message: dict[str, Any], actor: str) -> None:
    name, data, by = message["name"], message["data"], message["thrown_by"]
    reference = conn.execute(select(cases.c.reference).where(cases.c.id == case_id)).scalar_one()
    seen = conn.execute(select(func.count()).select_from(messages).where(messages.c.case_id == case_id)).scalar_one()
    key = "thrown:" + hashlib.sha256(history.canonical_json({
        "case": reference, "n": seen, "name": name, "data": data, "by": by, "at": history.iso(now)}).encode()
    ).hexdigest()
    thrown = {"name": name, "key": key, "correlation": {}, "data": data, "thrown_by": by}
    row_values = dict(key=key, name=name, correlation="{}", data=history.canonical_json(data), received_at=now,
                      actor=actor, case_id=case_id)
    misses: list[str] = []
    known = catalogue(engine, conn)
    if name in known:
        target = _waiting_instance(engine, conn, now, case_id, name, data, {}, reference, misses, skip=thrower)
        if target is not None:
            row, wf, found = target
            p = engine._pending(now, row, wf)
            p.scope.events.append(Event("message.thrown", dict(thrown, outcome="delivered", element_ids=sorted(
                _element(t) for t, _d, _e in found)), instance_id=row.id, actor=actor))
            children = engine._advance(conn, now, p, actor, _catch(found))
            engine._finish(conn, now, [p] + children, actor)
            conn.execute(insert(messages).values(**row_values, status="delivered", delivered_at=now,
                                                 instance_id=row.id))
            return
        starters = [vid for vid, _pid, starts in known[name] if starts]
        if starters:
            lead = [Event("message.thrown", dict(thrown, outcome="started", element_ids=[],
                                                 process_version_ids=starters), instance_id=thrower, actor=actor)]
            pending: list[Any] = []
            for vid in starters:
                pending += _start_with(engine, conn, now, case_id, vid, name, data, actor)
            engine._finish(conn, now, pending, actor, lead)
            conn.execute(insert(messages).values(**row_values, status="delivered", delivered_at=now,
                                                 instance_id=pending[0].instance_id))
            return
    ttl = message_ttl(getattr(engine, "message_ttl", None))
    note = "; ".join(misses) or None
    if ttl <= timedelta(0):
        raise StateError(f"nothing in case {reference} waits for message {name!r}, thrown by "
                         f"{', '.join(repr(b) for b in by) or 'the process'}, and messages are not kept "
                         "(CAREPATH_MESSAGE_TTL is P0D); nothing was saved" + (f" ({note})" if note else ""),
                         case=case_id)
    expires = now + ttl
    conn.execute(insert(messages).values(**row_values, status="kept", expires_at=expires))
    history.append(conn, case_chain(case_id), case_id, now, [Event("message.thrown", dict(
        thrown, outcome="kept", element_ids=[], expires_at=history.iso(expires)), instance_id=thrower,
        actor=actor)], lock=engine.db.is_postgres)


def replay_event(engine: Any, case_id: int, ev: dict[str, Any], new_case: dict[str, Any] | None = None) -> None:
    """Re-apply a recorded `message.received` or `message.kept` (engine/replay.py)."""
    d = ev["data"]
    ttl = None
    if ev["type"] == "message.kept":  # kept as long as it was then, whatever this engine's setting
        ttl = parse_instant(d["expires_at"]) - parse_instant(ev["at"])
    deliver(engine, d["name"], case_id=None if new_case is not None else case_id, correlation=d.get("correlation"),
            data=d.get("data"), key=d["key"], actor=ev["actor"], ttl=ttl, _replay=ev,
            _new_case=(case_id, new_case["reference"]) if new_case is not None else None)


def kept_messages(engine: Any, case_id: int) -> list[dict[str, Any]]:
    """A case's messages, oldest first (kept ones with their expiry)."""
    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(messages).where(messages.c.case_id == case_id).order_by(messages.c.id)).all()
    return [dict(r._mapping, correlation=json.loads(r.correlation), data=json.loads(r.data)) for r in rows]


__all__: Iterable[str] = ["MessageResult", "deliver", "deliver_kept", "catalogue", "message_ttl", "replay_event"]


def resolve_case(engine: Any, case: int | str | None) -> int | None:
    """A case named by its number (7) or its reference (CASE-000007); NotFoundError when there is none."""
    if case is None or case == "":
        return None
    text = str(case).strip()
    with engine.db.engine.connect() as conn:
        if text.isdigit():
            found = conn.execute(select(cases.c.id).where(cases.c.id == int(text))).scalar()
        else:
            found = conn.execute(select(cases.c.id).where(cases.c.reference == text.upper())).scalar()
    if found is None:
        raise NotFoundError(f"no case {text}: the message was not delivered and nothing was stored", case=text)
    return int(found)
