"""The append-only, hash-chained history.

Every event belongs to a chain: one per case ("case:<id>") and one for the system
("system": deployments, clock moves). Each event stores the hash of the one before it in
its chain, and `chains` holds each chain's head, so an edited, inserted or deleted event —
including one cut off the end — is found by `verify`.

Erasure (engine/erasure.py, docs/security.md "Retention and erasure"): when a case's retention period
has ended, its events' data is overwritten with `ERASED_DATA` (the one change the database triggers
allow, migration 0021) and a `case.erased` event appended to the chain records how many events were
erased and a digest of everything else those rows still hold (number, step, type, time, actor,
instance, previous hash, hash). The chain was verified in full just before; afterwards `verify`
checks an erased event by its links and by that digest instead of recomputing its hash, and reports
data removed without such an event as an alteration. Nothing hashed or signed changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from .driver_sql import Prepared, insert_rows
from .errors import ValidationError
from .schema import cases, chains, events

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"
#: what an erased event's data is overwritten with (an object, so readers' .get() find nothing); the only
#: change to an event the database allows (migration 0021)
ERASED_DATA = '{"_erased":true}'
ERASED_TYPE = "case.erased"


def case_chain(case_id: int) -> str:
    return f"case:{case_id}"


def canonical_json(value: Any) -> str:
    """The one JSON spelling that is hashed and stored: sorted keys, no spaces, UTF-8 kept."""
    return _CANONICAL(value)


def refuse_unstorable(value: Any, what: str, **context: Any) -> None:
    """Refuse data coming in (a start's, a completion's, a message's, a case record's) that the history cannot keep
    as the JSON it is given: a number that is not finite (NaN, Infinity: not JSON, and NaN is never equal to itself,
    so the case would never replay again) or text with an unpaired surrogate (not UTF-8: it cannot be hashed).
    A `ValidationError` names the field (`outcomes/0/score`) and says nothing was saved."""
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        path, v = todo.pop()
        problem = None
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            problem = "is not a finite number (NaN, Infinity, or too large): JSON cannot hold it; give a number or null"
        elif isinstance(v, str) and _SURROGATE.search(v):
            problem = "holds an unpaired surrogate (\\ud800–\\udfff), which is not text: send it as UTF-8"
        elif isinstance(v, dict):
            for k, item in v.items():
                if isinstance(k, str) and _SURROGATE.search(k):
                    problem = f"has a field name {k!r} with an unpaired surrogate, which is not text: send it as UTF-8"
                    break
                todo.append((f"{path}/{k}" if path else str(k), item))
        elif isinstance(v, (list, tuple)):
            todo.extend((f"{path}/{i}" if path else str(i), item) for i, item in enumerate(v))
        if problem is not None:
            field = path or None
            raise ValidationError(f"{what}: {f'{path!r} ' if path else ''}{problem}; nothing was saved",
                                  errors=[{"field": field, "message": problem}], **context)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: what json.dumps with these options builds for every call, built once (the same text: tests/test_history.py)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=_json_default).encode


def iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


# Built once: these run in every step.
_HEADS = (select(chains.c.chain, chains.c.seq, chains.c.hash)
          .where(chains.c.chain.in_(bindparam("chains", expanding=True))).order_by(chains.c.chain))
_HEADS_LOCKED = _HEADS.with_for_update()
_NEW_CHAIN = insert(chains)
_INSERT_EVENTS = insert(events)
_MOVE_HEAD = Prepared(update(chains).where(chains.c.chain == bindparam("c"), chains.c.seq == bindparam("old"))
              .values(seq=bindparam("s"), hash=bindparam("h")))
#: the chains appended to in a connection's current transaction (conn.info; a head read before is stale)
_APPENDED = "carepath_appended"
#: a simulation-mode database's SimulationMode (engine/simulation.py), set in conn.info by engine/db.py
_SIMULATION = "carepath_simulation"


@dataclass
class Event:
    """One thing that happened, before it is stored."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    instance_id: int | None = None
    actor: str = "system"


def event_hash(prev_hash: str, chain: str, seq: int, step: int, type_: str, at: str, actor: str,
               instance_id: int | None, data_json: str) -> str:
    body = canonical_json([chain, seq, step, type_, at, actor, instance_id])
    return hashlib.sha256(f"{prev_hash}\n{body}\n{data_json}".encode()).hexdigest()


def append(conn: Connection, chain: str, case_id: int | None, at: datetime, items: Iterable[Event],
           *, lock: bool) -> list[dict[str, Any]]:
    """Append one step's events to a chain inside the caller's transaction; returns the rows written."""
    return append_many(conn, at, [(chain, case_id, list(items))], lock=lock)


def append_many(conn: Connection, at: datetime, groups: list[tuple[str, int | None, list[Event]]],
                *, lock: bool, known: dict[str, tuple[int, str] | None] | None = None) -> list[dict[str, Any]]:
    """Append several steps' events (each group one step of one chain) with a handful of statements.

    `lock` takes the chain heads with row locks (PostgreSQL), in chain order so two writers never
    wait on each other in a circle; SQLite's BEGIN IMMEDIATE already serializes writers.

    `known`: chain heads the caller read earlier in this transaction (None: the chain has no head yet,
    e.g. the case was created in it), so they are not read again. Used only for a chain nothing was
    appended to since in this transaction; the head is moved only from the value it was read at, and
    a new chain is inserted with its final head, so a wrong guess fails the step instead of forking
    the chain.
    """
    sim = conn.info.get(_SIMULATION)
    if sim is not None:  # engine/simulation.py: a throwaway database, its events unchained
        return sim.append(conn, at, groups)
    plan = plan_many(conn, at, groups, lock=lock, known=known)
    if plan is None:
        return []
    rows, new_chains, moved = plan
    insert_rows(conn, _INSERT_EVENTS, rows)
    if new_chains:  # a new chain is written once, with its head as it now is
        insert_rows(conn, _NEW_CHAIN, new_chains)
    if moved:
        changed = _MOVE_HEAD.run(conn, moved[0]).rowcount if len(moved) == 1 else _MOVE_HEAD.run_many(conn, moved)
        if (len(moved) == 1 or conn.dialect.supports_sane_multi_rowcount) and changed != len(moved):
            raise RuntimeError("a history chain head moved under this transaction; nothing was saved")
    return rows


def plan_many(conn: Connection, at: datetime, groups: list[tuple[str, int | None, list[Event]]], *, lock: bool,
              known: dict[str, tuple[int, str] | None] | None = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """What `append_many` writes, without writing it: (event rows, new chains, head moves), or None.

    The heads are read (or taken from `known`) as `append_many` says; the chains count as appended to
    in this transaction from now on. engine/pg_batch.py sends the writes with the step's COMMIT."""
    groups = [g for g in groups if g[2]]
    if not groups:
        return None
    names = sorted({g[0] for g in groups})
    appended: set[str] = conn.info.setdefault(_APPENDED, set())
    heads: dict[str, tuple[int, str]] = {}
    missing: list[str] = []
    to_read = names
    if known and not lock:
        to_read = []
        for n in names:
            if n in known and n not in appended:
                head = known[n]
                if head is None:
                    missing.append(n)
                else:
                    heads[n] = head
            else:
                to_read.append(n)
    if to_read:
        q = (_HEADS_LOCKED if lock else _HEADS)
        heads.update({r.chain: (r.seq, r.hash) for r in conn.execute(q, {"chains": to_read})})
        missing += [n for n in to_read if n not in heads]
    before = dict(heads)
    heads.update({n: (0, GENESIS) for n in missing})
    at_s = iso(at)
    rows = []
    for chain, case_id, items in groups:
        seq, prev = heads[chain]
        step = seq + 1
        for ev in items:
            seq += 1
            data_json = canonical_json(ev.data)
            h = event_hash(prev, chain, seq, step, ev.type, at_s, ev.actor, ev.instance_id, data_json)
            rows.append(dict(chain=chain, seq=seq, step=step, case_id=case_id, instance_id=ev.instance_id,
                             type=ev.type, at=at_s, actor=ev.actor, data=data_json, prev_hash=prev, hash=h))
            prev = h
        heads[chain] = (seq, prev)
    new_chains = [{"chain": n, "seq": heads[n][0], "hash": heads[n][1]} for n in missing]
    moved = [{"c": n, "s": heads[n][0], "h": heads[n][1], "old": before[n][0]} for n in names if n in before]
    appended.update(names)
    return rows, new_chains, moved


def erased_line(seq: int, step: int, type_: str, at: str, actor: str, instance_id: int | None,
                prev_hash: str, hash_: str) -> bytes:
    """What an erased event still holds, as one line of the digest its `case.erased` event records."""
    return (canonical_json([seq, step, type_, at, actor, instance_id, prev_hash, hash_]) + "\n").encode()


def erasures(conn: Connection, chain: str | None = None) -> list[dict[str, Any]]:
    """The `case.erased` events (of one chain, or all): chain, seq, at, actor and what they record."""
    q = select(events.c.chain, events.c.seq, events.c.at, events.c.actor, events.c.data).where(
        events.c.type == ERASED_TYPE, events.c.chain != SYSTEM_CHAIN)
    if chain is not None:
        q = q.where(events.c.chain == chain)
    out = []
    for r in conn.execute(q.order_by(events.c.chain, events.c.seq)):
        try:
            data = json.loads(r.data)
        except ValueError:
            data = {}
        out.append({"chain": r.chain, "seq": r.seq, "at": r.at, "actor": r.actor,
                    "data": data if isinstance(data, dict) else {}})
    return out


@dataclass
class Finding:
    chain: str
    seq: int | None
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.chain} event #{self.seq}" if self.seq is not None else self.chain
        return f"{where}: {self.problem}"


def verify(conn: Connection, chain: str | None = None) -> tuple[int, list[Finding]]:
    """Check every chain (or one): returns (events checked, findings). No findings means intact."""
    # one chain: read only its head (a council's database holds a head for every case)
    heads = {r.chain: r for r in conn.execute(select(chains).where(chains.c.chain == chain) if chain
                                              else select(chains))}
    chain_names = [chain] if chain else sorted(set(heads) | set(
        conn.execute(select(events.c.chain).distinct()).scalars()))
    findings: list[Finding] = []
    checked = 0
    if not chain:  # every case is created with its case.created event: a case with no chain lost all of it
        known = set(chain_names)
        findings += [Finding(case_chain(cid), None, None, f"case {cid} has no history at all (its chain's events "
                             "and head were deleted)")
                     for cid in conn.execute(select(cases.c.id).order_by(cases.c.id)).scalars()
                     if case_chain(cid) not in known]
    for name in chain_names:
        n, found, _ = verify_chain(conn, name, heads.get(name))
        checked += n
        findings += found
    return checked, findings


def verify_chain(conn: Connection, name: str, head: Any, *, after: tuple[int, str] = (0, GENESIS)
                 ) -> tuple[int, list[Finding], bool]:
    """Check one chain against its recorded head (`head`: a row of `chains`, or None), from its first event
    or only the events after `after` = (seq, hash) — that event taken as given (the heads signer checks
    just what was written since the previous signed head: engine/anchoring.py). Returns (events checked,
    findings, whether an erased event or a case.erased event was met: an erasure's digest covers the
    chain from its first event, so a check begun part way through cannot judge it — check it whole)."""
    after_seq, prev = after
    expected_seq, last_seq = after_seq + 1, after_seq
    findings: list[Finding] = []
    checked = 0
    saw_erasure = False
    # case_id is not hashed, but the chain names it; it decides who may open a case (api/access.py)
    owner = int(name[5:]) if name.startswith("case:") and name[5:].isdigit() else None
    q = select(events).where(events.c.chain == name, events.c.seq > after_seq).order_by(events.c.seq, events.c.id)
    erased, erased_n, erased_first = hashlib.sha256(), 0, None  # erased events not yet attested
    for row in conn.execute(q):
        checked += 1
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                findings.append(Finding(name, expected_seq, None,
                                        f"events #{expected_seq}..#{row.seq - 1} are missing (deleted)"))
            else:
                findings.append(Finding(name, row.seq, row.id, "a second event with this number (inserted)"))
        if row.prev_hash != prev:
            findings.append(Finding(name, row.seq, row.id,
                                    "does not follow the event before it (an event was inserted, "
                                    "deleted or edited before it)"))
        if row.data == ERASED_DATA:  # checked by the digest of the case.erased event that follows
            saw_erasure = True
            erased.update(erased_line(row.seq, row.step, row.type, row.at, row.actor, row.instance_id,
                                      row.prev_hash, row.hash))
            erased_n += 1
            erased_first = row.seq if erased_first is None else erased_first
        else:
            recomputed = event_hash(row.prev_hash, row.chain, row.seq, row.step, row.type, row.at, row.actor,
                                    row.instance_id, row.data)
            if recomputed != row.hash:
                findings.append(Finding(name, row.seq, row.id,
                                        f"{row.type} event was edited after it was written"))
            elif row.type == ERASED_TYPE:
                saw_erasure = True
                findings += _attested(name, row, erased.hexdigest(), erased_n)
                erased, erased_n, erased_first = hashlib.sha256(), 0, None
        if row.case_id != owner:
            findings.append(Finding(name, row.seq, row.id, f"{row.type} event is filed under case {row.case_id} "
                                    f"instead of {owner} (its case_id was changed)"))
        prev, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
    if erased_n:
        findings.append(Finding(name, erased_first, None,
                                f"the data of {erased_n} event(s) from #{erased_first} on was removed without a "
                                "case.erased event recording it"))
    if head is None and not checked and not after_seq:
        findings.append(Finding(name, None, None, "no history at all: the chain has no events and no recorded head "
                                "(deleted, or never written)"))
    elif head is None:
        findings.append(Finding(name, None, None, "chain has events but no recorded head (head removed)"))
    elif head.seq != last_seq or head.hash != prev:
        if head.seq > last_seq:
            findings.append(Finding(name, last_seq + 1, None,
                                    f"events #{last_seq + 1}..#{head.seq} at the end are missing (deleted)"))
        else:
            findings.append(Finding(name, None, None, "the recorded head does not match the last event"))
    return checked, findings, saw_erasure


def _attested(name: str, row: Any, digest: str, count: int) -> list[Finding]:
    """Does this (intact) case.erased event record exactly the erased events before it?"""
    try:
        data = json.loads(row.data)
    except ValueError:
        data = {}
    if not isinstance(data, dict) or data.get("events_erased") != count or data.get("erased_digest") != digest:
        return [Finding(name, row.seq, row.id,
                        "the erased events before this case.erased event are not the ones it records (an erased "
                        "event was altered, or data was removed outside the erasure)")]
    return []
