"""Integrity tests strong enough to catch a broken implementation (issue 9).

Each test here fails against a deliberately broken copy of the history or the replay that the
rest of the suite lets through:
(a) an event hash computed without the previous event's hash — the fixed-answer hashes, the hashes
    recomputed from the documented form, and the forged event whose next link is rewritten;
(b) `verify` that skips the newest event's hash — the edit to the newest event;
(c) a replay that treats every leaf value as equal — the edit to a value no gateway reads;
(d) a replay that ignores a replayed event's actor and time — the altered actor and time.
The hash's form is the one docs/engine.md "History" documents; it is computed here with hashlib
on its own, not with engine.history.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select, text

from engine import history
from engine.replay import replay_case
from engine.schema import chains
from tests.front_door_world import build
from tests.test_history import _bypass_triggers


def _canonical(value) -> str:  # docs/engine.md: sorted keys, no spaces, UTF-8 kept
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _documented_hash(prev: str, chain: str, seq: int, step: int, type_: str, at: str, actor: str,
                     instance_id, data_json: str) -> str:
    body = _canonical([chain, seq, step, type_, at, actor, instance_id])
    return hashlib.sha256(f"{prev}\n{body}\n{data_json}".encode("utf-8")).hexdigest()


KNOWN = dict(chain="case:7", seq=3, step=2, type_="task.completed", at="2031-03-03T09:00:00.000000+00:00",
             actor="advisor1", instance_id=12,
             data_json=_canonical({"data": {"reason": "memory loss — Zoë"}, "element_id": "record_contact"}))


def _case(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks", data={"name": "Peter"})
    eng.complete_task(res.ready_tasks[0]["id"], {"reason": "memory loss"}, actor="advisor1")
    return eng, res.case_id


def _event(eng, case_id: int, seq: int) -> dict:
    return next(e for e in eng.history(case_id) if e["seq"] == seq)


# ---------------------------------------------------------------------- (a) the hash and its link
def test_the_hash_of_known_inputs_is_a_fixed_answer():
    # worked out once from the documented form (docs/engine.md "History")
    assert history.event_hash(history.GENESIS, **KNOWN) == \
        "a2d3a7207b65e079e32f56da55e5e235356e352e981227200daf6f494bc96354"
    assert history.event_hash("ab" * 32, **KNOWN) == \
        "343bea4f8e9a5da5f28f265c8b556db56cb8aa5e58e55e321c46663e412d78f6"
    assert history.canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'


def test_every_stored_hash_is_the_documented_hash_over_the_previous_one(make_engine):
    eng, case_id = _case(make_engine)
    rows = eng.history(case_id)
    prev = history.GENESIS
    for r in rows:
        assert r["prev_hash"] == prev, r["seq"]
        assert r["hash"] == _documented_hash(prev, r["chain"], r["seq"], r["step"], r["type"], r["at"], r["actor"],
                                             r["instance_id"], _canonical(r["data"])), r["seq"]
        prev = r["hash"]
    with eng.db.engine.connect() as conn:
        head = conn.execute(select(chains).where(chains.c.chain == f"case:{case_id}")).one()
    assert (head.seq, head.hash) == (rows[-1]["seq"], rows[-1]["hash"])


def test_a_forged_event_with_its_own_hash_recomputed_and_only_the_next_link_rewritten_is_found(make_engine):
    eng, case_id = _case(make_engine)
    forged = _event(eng, case_id, 4)  # task.completed: the answers given
    data = _canonical({**forged["data"], "data": {"reason": "no concerns"}})
    new_hash = history.event_hash(forged["prev_hash"], forged["chain"], forged["seq"], forged["step"], forged["type"],
                                  forged["at"], forged["actor"], forged["instance_id"], data)
    _bypass_triggers(eng, "UPDATE events SET data = :d, hash = :h WHERE id = :id", d=data, h=new_hash,
                     id=forged["id"])
    with eng.db.transaction() as conn:  # the next event now links to the forgery; its own hash is left as it was
        conn.execute(text("UPDATE events SET prev_hash = :h WHERE chain = :c AND seq = 5"),
                     {"h": new_hash, "c": f"case:{case_id}"})
    _, findings = eng.verify(case_id)
    assert [(f.chain, f.seq) for f in findings] == [(f"case:{case_id}", 5)]
    assert "edited" in findings[0].problem
    assert eng.verify()[1] == findings  # the whole-database verify says the same


# ---------------------------------------------------------------------- (b) the newest event
@pytest.mark.parametrize("sql", [
    "UPDATE events SET data = replace(data, 'Screen', 'Skipped') WHERE chain = :c AND seq = :s",
    "UPDATE events SET actor = 'intruder' WHERE chain = :c AND seq = :s",
    "UPDATE events SET at = replace(at, '09:00:00', '08:59:59') WHERE chain = :c AND seq = :s",
])
def test_an_edit_to_the_newest_event_is_found(make_engine, sql):
    eng, case_id = _case(make_engine)
    newest = eng.history(case_id)[-1]
    _bypass_triggers(eng, sql, c=f"case:{case_id}", s=newest["seq"])
    _, findings = eng.verify(case_id)
    assert [(f.seq, f.event_id) for f in findings] == [(newest["seq"], newest["id"])]
    assert f"case:{case_id} event #{newest['seq']}: task.ready event was edited" in str(findings[0])


def test_the_newest_system_event_is_checked_too(make_engine):
    eng, _case_id = _case(make_engine)
    with eng.db.engine.connect() as conn:
        head = conn.execute(select(chains).where(chains.c.chain == history.SYSTEM_CHAIN)).one()
    _bypass_triggers(eng, "UPDATE events SET actor = 'intruder' WHERE chain = 'system' AND seq = :s", s=head.seq)
    _, findings = eng.verify()
    assert [(f.chain, f.seq) for f in findings] == [("system", head.seq)]


# ---------------------------------------------------------------------- (c), (d) replay compares every value
def _replay_names(eng, case_id: int, seq: int, message: str) -> None:
    report = replay_case(eng, case_id)
    assert not report.ok, "the replay did not notice the edit"
    assert report.divergence.seq == seq, str(report)
    assert message in report.divergence.message
    assert f"DIVERGES at event #{seq}" in str(report)


def test_replay_names_an_edited_value_that_no_gateway_reads(make_engine):
    eng, case_id = _case(make_engine)
    ready = _event(eng, case_id, 6)
    assert ready["type"] == "task.ready" and ready["data"]["name"] == "Screen"
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, '\"Screen\"', '\"Screening\"') WHERE id = :id",
                     id=ready["id"])
    _replay_names(eng, case_id, 6, "content differs")


def test_replay_names_an_edited_number_deep_in_the_data(make_engine, calls):
    from tests.test_replay import _busy_case

    eng, case_id = _busy_case(make_engine, calls)
    done = next(e for e in eng.history(case_id) if e["type"] == "incident.opened")
    assert done["data"]["inputs"] == {"points": 60}
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, :old, :new) WHERE id = :id",
                     old='"points":60', new='"points":61', id=done["id"])
    assert _event(eng, case_id, done["seq"])["data"] != done["data"]
    _replay_names(eng, case_id, done["seq"], "content differs")


def test_replay_names_an_event_whose_actor_was_altered(make_engine):
    eng, case_id = _case(make_engine)
    left = _event(eng, case_id, 5)
    assert left["type"] == "task.left" and left["actor"] == "system"
    _bypass_triggers(eng, "UPDATE events SET actor = 'advisor1' WHERE id = :id", id=left["id"])
    _replay_names(eng, case_id, 5, "different actor or time")


def test_replay_names_an_event_whose_time_was_altered(make_engine):
    eng, case_id = _case(make_engine)
    ready = _event(eng, case_id, 6)
    later = ready["at"].replace("09:00:00.000000", "09:00:00.000001")
    _bypass_triggers(eng, "UPDATE events SET at = :at WHERE id = :id", at=later, id=ready["id"])
    _replay_names(eng, case_id, 6, "different actor or time")


# ---------------------------------------------------------------------- restriction is bookkeeping
@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    yield eng, app, people
    eng.db.dispose()


def test_a_restricted_then_unrestricted_case_replays(world):
    """Replaces a test that skipped itself exactly when replay treated case.restricted as an input."""
    from tests.front_door_world import as_role, username

    eng, app, p = world
    admin = as_role(app, "administrator")
    r = admin.send("PUT", f"/api/cases/{p['edith']}/restriction",
                   {"usernames": [username("front_door_advisor")], "reason": "Her son works here"})
    assert r.status_code == 200, r.text
    assert admin.send("DELETE", f"/api/cases/{p['edith']}/restriction", {"reason": "Reviewed"}).status_code == 200
    types = [e["type"] for e in eng.history(p["edith"])]
    assert "case.restricted" in types and "case.unrestricted" in types
    report = replay_case(eng, p["edith"])
    assert report.ok, str(report)
    assert report.events_replayed == len(types)


def test_replay_names_an_event_slipped_into_a_bookkeeping_step(make_engine):
    eng, case_id = _case(make_engine)
    [task] = eng.list_tasks(case_id=case_id)
    eng.claim(task["id"], "advisor1")
    eng.complete_task(task["id"], {"outcome": "done"}, actor="advisor1")
    claimed = next(e for e in eng.history(case_id) if e["type"] == "task.claimed")
    completed = next(e for e in eng.history(case_id) if e["seq"] == claimed["seq"] + 1)
    assert completed["type"] == "task.completed" and completed["step"] != claimed["step"]
    _bypass_triggers(eng, "UPDATE events SET step = :s WHERE id = :id", s=claimed["step"], id=completed["id"])
    _replay_names(eng, case_id, completed["seq"], "bookkeeping")


def test_replay_tells_a_whole_number_from_a_decimal(make_engine, calls):
    from tests.test_replay import _busy_case

    eng, case_id = _busy_case(make_engine, calls)
    child = next(e for e in eng.history(case_id)
                 if e["type"] == "instance.started" and e["data"]["parent_instance_id"] is not None)
    assert child["data"]["data"] == {"amount": 24000}  # passed on by the parent, not an input
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, :old, :new) WHERE id = :id",
                     old='"amount":24000', new='"amount":24000.0', id=child["id"])
    _replay_names(eng, case_id, child["seq"], "content differs")


def test_an_event_refiled_under_another_case_is_found(make_engine):
    """case_id is not part of the hash, but it decides who may open a case: verify checks it against the chain."""
    eng, case_id = _case(make_engine)
    other = eng.start("three_tasks", data={"name": "Someone else"}).case_id
    completed = _event(eng, case_id, 4)
    _bypass_triggers(eng, "UPDATE events SET case_id = :o WHERE id = :id", o=other, id=completed["id"])
    _, findings = eng.verify()
    assert [(f.chain, f.seq) for f in findings] == [(f"case:{case_id}", 4)]
    assert f"filed under case {other} instead of {case_id}" in findings[0].problem


def test_a_reopening_deleted_from_the_end_with_the_head_moved_back_is_found_by_the_replay(make_engine):
    """The newest event deleted and its chain's head moved back with it, as a careful tamperer would: the chain
    verifies against itself and no instance changes (a reopening touches only the case record), so the replay
    said "matches"; only a signed heads file newer than the event could tell. The case record still says the
    case is open: the replay now compares whether the case is closed, and its last closure, with its history."""
    eng, case_id = _case(make_engine)
    eng.close_case(case_id, reason="moved_away", actor="manager1")
    eng.reopen_case(case_id, reason="Came back to the county", actor="manager1")
    assert replay_case(eng, case_id).ok
    reopened = eng.history(case_id)[-1]
    assert reopened["type"] == "case.reopened"
    before = _event(eng, case_id, reopened["seq"] - 1)
    _bypass_triggers(eng, "DELETE FROM events WHERE id = :id", id=reopened["id"])
    with eng.db.transaction() as conn:
        conn.execute(text("UPDATE chains SET seq = :s, hash = :h WHERE chain = :c"),
                     {"s": before["seq"], "h": before["hash"], "c": f"case:{case_id}"})
    assert eng.verify(case_id)[1] == []
    report = replay_case(eng, case_id)
    assert not report.ok, "the replay did not notice the deleted reopening"
    assert report.divergence.seq is None
    assert "the case record ends differently from its history: whether the case is closed" in \
        report.divergence.message
