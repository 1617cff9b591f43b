"""Checking one case's history: is its hash chain intact, and does a replay reach what is stored?

`check_case` runs `history.verify` on the case's chain and `replay.replay_case`, then records the
result as an `integrity.checked` event in the system chain (who checked, which case, the result and
the first event found wrong), so a check is itself part of the history and cannot be quietly
forgotten. `last_check` reads the newest such event back.

A history that an attacker edited directly in the database (triggers dropped) is reported, never
raised: data that no longer parses, an event the replay cannot apply — each becomes a finding that
names the event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from . import history
from .errors import NotFoundError
from .history import Event
from .schema import cases, events

CHECKED = "integrity.checked"
_MAX_FINDINGS = 20  # kept in the event; the count is kept too


def check_case(engine: Any, case_id: int, *, actor: str, heads_dir: str | Path | None = None,
               public_key: str | Path | None = None) -> dict[str, Any]:
    """Verify the case's chain and replay it, and compare it with every signed heads file in `heads_dir`
    (checked with `public_key`: engine/anchoring.anchor_case); record and return the result.

    Returns {case_id, verified, events_checked, verify_findings: [str], verify_first_event,
    replay_ok, replay_divergence: str | None, replay_divergence_event, first_bad_event,
    anchor: {status, message, file, signed_at, key_id}, passed, checked_at (ISO 8601), checked_by}.
    A case whose signed head was rewritten fails even when its chain verifies against itself.
    """
    from .anchoring import anchor_case

    with engine.db.engine.connect() as conn:
        if conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None:
            raise NotFoundError(f"no case {case_id}", case=case_id)
    checked, findings = engine.verify(case_id)
    if checked == 0 and not findings:  # every case is created by an event: none at all means the chain was removed
        findings.append(history.Finding(history.case_chain(case_id), None, None,
                                        "the case has no history at all: its events and head were deleted"))
    verify_first = min((f.seq for f in findings if f.seq is not None), default=None)
    replay_ok, divergence, divergence_seq = _replay(engine, case_id)
    anchor = anchor_case(engine, case_id, heads_dir, public_key)
    if anchor["status"] == "anchored":  # say what was compared: the signed heads; the events before them
        anchor["message"] += (f"; and the hash chain verifies up to it, so events #1 to #{anchor['seq']} are the "
                              "ones signed" if not findings else
                              "; only the signed heads were compared: the hash chain does not verify, so other "
                              "events may have been altered (see Hash chain)")
    # the hash chain names the altered event itself; a replay can only diverge where its consequence shows
    # (an event deleted at the end: at the event before it), so it names the first bad event only alone
    bad = [verify_first] if verify_first is not None else [divergence_seq] if divergence_seq is not None else []
    result = {
        "case_id": case_id,
        "verified": not findings,
        "events_checked": checked,
        "verify_findings": [str(f) for f in findings],
        "verify_first_event": verify_first,
        "replay_ok": replay_ok,
        "replay_divergence": divergence,
        "replay_divergence_event": divergence_seq,
        "first_bad_event": min(bad) if bad else None,
        "anchor": anchor,
        "passed": not findings and replay_ok and anchor["status"] != "altered",
    }
    data = {**result, "result": "passed" if result["passed"] else "failed",
            "findings_count": len(findings), "verify_findings": result["verify_findings"][:_MAX_FINDINGS]}
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        history.append(conn, history.SYSTEM_CHAIN, None, now, [Event(CHECKED, data, actor=actor)],
                       lock=engine.db.is_postgres)
    return {**result, "checked_at": history.iso(now), "checked_by": actor}


def _replay(engine: Any, case_id: int) -> tuple[bool, str | None, int | None]:
    from .replay import replay_case

    try:
        report = replay_case(engine, case_id)
    except Exception as exc:  # noqa: BLE001 - a history too damaged to replay is a finding, not a crash
        return False, f"the history could not be replayed: {type(exc).__name__}: {exc}"[:500], None
    if report.ok:
        return True, None, None
    d = report.divergence
    assert d is not None
    where = f"event #{d.seq} ({d.event_type})" if d.seq is not None else "the final state"
    return False, f"diverges at {where}: {d.message}", d.seq


def last_check(engine: Any, case_id: int) -> dict[str, Any] | None:
    """The newest recorded check of this case (as `check_case` returned it), or None."""
    pattern = f'%"case_id":{int(case_id)},%'  # canonical JSON: sorted keys, more follow case_id
    q = (select(events)
         .where(events.c.chain == history.SYSTEM_CHAIN, events.c.type == CHECKED, events.c.data.like(pattern))
         .order_by(events.c.seq.desc()))
    with engine.db.engine.connect() as conn:
        for row in conn.execute(q):
            try:
                data = json.loads(row.data)
            except ValueError:
                continue
            if data.get("case_id") != case_id:
                continue
            data.pop("result", None)
            data.pop("findings_count", None)
            if engine.simulation is None and not _check_record_holds(conn, row):
                return _untrusted_check(case_id, row)
            return {**data, "checked_at": row.at, "checked_by": row.actor}
    return None


def _check_record_holds(conn: Any, row: Any) -> bool:
    """Whether the stored check (a system event) is as it was written: its hash recomputes from its content,
    and the next event (or, for the newest, the chain's head) still links to that hash. The panel shows the
    last check without running it, so a failed check edited to read "passed" must not be believed."""
    from .schema import chains

    if history.event_hash(row.prev_hash, row.chain, row.seq, row.step, row.type, row.at, row.actor,
                          row.instance_id, row.data) != row.hash:
        return False
    nxt = conn.execute(select(events.c.prev_hash).where(events.c.chain == row.chain, events.c.seq == row.seq + 1)
                       ).scalar()
    if nxt is not None:
        return bool(nxt == row.hash)
    head = conn.execute(select(chains.c.seq, chains.c.hash).where(chains.c.chain == row.chain)).first()
    return head is not None and (head.seq, head.hash) == (row.seq, row.hash)


def _untrusted_check(case_id: int, row: Any) -> dict[str, Any]:
    why = (f"the record of the last check (system event #{row.seq}) was altered after it was written, so its "
           "result cannot be believed: press Check now")
    return {"case_id": case_id, "passed": False, "verified": False, "events_checked": 0,
            "verify_findings": [f"{history.SYSTEM_CHAIN} event #{row.seq}, the record of the last check, was altered "
                                "after it was written, so the result it records cannot be believed: press Check now"],
            "verify_first_event": None,
            "replay_ok": False, "replay_divergence": why, "replay_divergence_event": None,
            "first_bad_event": None, "anchor": {}, "record_altered": row.seq,
            "checked_at": row.at, "checked_by": row.actor}
