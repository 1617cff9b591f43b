"""The history is append-only and hash-chained: `audit verify` finds any edited, inserted or
deleted event, and the database itself refuses updates and deletes."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.cli import main


def _case_with_history(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks", data={"name": "Peter"})
    eng.complete_task(res.ready_tasks[0]["id"], {"reason": "memory loss"}, actor="advisor1")
    return eng, res.case_id


def _bypass_triggers(eng, sql: str, **params) -> None:
    """What a tamperer with database access could do: drop the guard, then edit."""
    with eng.db.transaction() as conn:
        if eng.db.is_postgres:
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        else:
            conn.execute(text("DROP TRIGGER events_no_update"))
            conn.execute(text("DROP TRIGGER events_no_delete"))
        conn.execute(text(sql), params)


def test_an_untouched_history_verifies(make_engine):
    eng, case_id = _case_with_history(make_engine)
    checked, findings = eng.verify()
    assert findings == [] and checked == len(eng.history(case_id)) + 1  # + the deployment event


def test_the_database_refuses_to_change_or_delete_events(make_engine):
    eng, case_id = _case_with_history(make_engine)
    for sql in ("UPDATE events SET actor = 'someone else'", "DELETE FROM events WHERE seq = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            with eng.db.transaction() as conn:
                conn.execute(text(sql))
    assert eng.verify()[1] == []


def test_an_edited_event_is_found(make_engine):
    eng, case_id = _case_with_history(make_engine)
    edited = next(e for e in eng.history(case_id) if e["type"] == "task.completed")
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, 'memory loss', 'no concerns') WHERE id = :id",
                     id=edited["id"])
    _, findings = eng.verify()
    assert [(f.chain, f.seq) for f in findings] == [(f"case:{case_id}", edited["seq"])]
    assert "edited" in findings[0].problem


def test_a_deleted_event_is_found(make_engine):
    eng, case_id = _case_with_history(make_engine)
    _bypass_triggers(eng, "DELETE FROM events WHERE chain = :c AND seq = 3", c=f"case:{case_id}")
    _, findings = eng.verify(case_id)
    assert any("#3" in str(f) and "missing" in f.problem for f in findings)


def test_events_cut_off_the_end_are_found(make_engine):
    eng, case_id = _case_with_history(make_engine)
    last = eng.history(case_id)[-1]["seq"]
    _bypass_triggers(eng, "DELETE FROM events WHERE chain = :c AND seq = :s", c=f"case:{case_id}", s=last)
    _, findings = eng.verify(case_id)
    assert any("at the end are missing" in f.problem for f in findings)


def test_an_inserted_event_is_found(make_engine):
    eng, case_id = _case_with_history(make_engine)
    ev = eng.history(case_id)[1]
    _bypass_triggers(eng, "UPDATE events SET seq = seq + 100 WHERE chain = :c AND seq >= 2", c=f"case:{case_id}")
    with eng.db.transaction() as conn:  # a forged event slipped in as #2, with a plausible-looking hash
        conn.execute(text(
            "INSERT INTO events (chain, seq, step, case_id, instance_id, type, at, actor, data, prev_hash, hash) "
            "VALUES (:c, 2, 2, :case, NULL, 'case.note', :at, 'intruder', '{}', :prev, :h)"),
            dict(c=f"case:{case_id}", case=case_id, at=ev["at"], prev=ev["prev_hash"], h="f" * 64))
    _, findings = eng.verify(case_id)
    assert findings and findings[0].seq == 2


def test_cli_audit_verify_exits_non_zero_when_altered(make_engine, capsys):
    eng, case_id = _case_with_history(make_engine)
    assert main(["audit", "verify", "--db", eng.db.url]) == 0
    assert "intact" in capsys.readouterr().out
    _bypass_triggers(eng, "UPDATE events SET actor = 'someone else' WHERE chain = :c AND seq = 1",
                     c=f"case:{case_id}")
    assert main(["audit", "verify", "--db", eng.db.url]) == 1
    out = capsys.readouterr().out
    assert "ALTERED" in out and f"case:{case_id} event #1" in out


def test_event_data_with_the_characters_an_array_literal_escapes_is_stored_exactly(make_engine):
    """PostgreSQL gets a step's events as arrays (engine/pg_batch.py, sent in binary); quotes, backslashes, braces,
    commas, NULL-looking words and non-ASCII text come back as they went in, and the chain verifies."""
    eng = make_engine("three_tasks.bpmn")
    odd = {"text": 'a "quoted" {brace}, back\\slash\\\\ NULL null \u00e9\u2028\U0001F600 \t tab', "empty": "",
           "list": ["{", "}", ",", '"', "\\", None]}
    res = eng.start("three_tasks", data={"odd": odd})
    eng.complete_task(res.ready_tasks[0]["id"], {"reason": odd["text"]})
    started = [e for e in eng.history(res.case_id) if e["type"] == "instance.started"]
    assert started and started[0]["data"]["data"]["odd"] == odd
    completed = [e for e in eng.history(res.case_id) if e["type"] == "task.completed"]
    assert completed and completed[0]["data"]["data"]["reason"] == odd["text"]
    assert eng.verify(res.case_id)[1] == []


def test_a_case_whose_whole_history_was_deleted_is_found(make_engine, capsys):
    """A tamperer deletes every event of a case and its chain's head, leaving the case, its instance and its
    tasks: each chain left verifies, but the case has no history — `audit verify` said "intact"."""
    eng, case_id = _case_with_history(make_engine)
    other = eng.start("three_tasks", data={"name": "Jo"}).case_id
    _bypass_triggers(eng, "DELETE FROM events WHERE chain = :c", c=f"case:{case_id}")
    with eng.db.transaction() as conn:
        conn.execute(text("DELETE FROM chains WHERE chain = :c"), {"c": f"case:{case_id}"})
    _, findings = eng.verify()
    assert [(f.chain, f.problem) for f in findings] == [
        (f"case:{case_id}", f"case {case_id} has no history at all (its chain's events and head were deleted)")]
    _, findings = eng.verify(case_id)
    assert [f.problem for f in findings] == [
        "no history at all: the chain has no events and no recorded head (deleted, or never written)"]
    assert eng.verify(other)[1] == []
    assert main(["audit", "verify", "--db", eng.db.url]) == 1
    assert f"case {case_id} has no history at all" in capsys.readouterr().out
