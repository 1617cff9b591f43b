"""Replay re-executes a case from its history on the recorded diagram versions, with the
recorded clock readings and handler results, and names the first event that differs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from engine.replay import replay_case
from tests.test_history import _bypass_triggers


def _busy_case(make_engine, calls):
    eng = make_engine("budget.bpmn", "annual_review.bpmn", "deadline.bpmn")
    calls.fail_budget = True
    res = eng.start("budget", data={"points": 60})
    calls.fail_budget = False
    eng.retry(res.instance_id, actor="admin")
    [approve] = eng.list_tasks(case_id=res.case_id)
    eng.claim(approve["id"], "manager1")
    eng.complete_task(approve["id"], {"approved": True}, actor="manager1")
    [plan] = eng.list_tasks(case_id=res.case_id)
    eng.complete_task(plan["id"], {"agreed": True}, actor="sw1")
    eng.advance_clock(timedelta(days=370))
    [review] = eng.list_tasks(case_id=res.case_id)
    eng.complete_task(review["id"], {"needs_changed": False}, actor="sw1")
    eng.start("deadline", case_id=res.case_id)
    eng.advance_clock(timedelta(days=43))
    return eng, res.case_id


def test_replay_of_an_untouched_case_matches(make_engine, calls):
    eng, case_id = _busy_case(make_engine, calls)
    calls.log.clear()
    report = replay_case(eng, case_id)
    assert report.ok, str(report)
    assert report.instances_compared == 4
    assert report.events_replayed == len(eng.history(case_id))
    assert calls.log == []  # handlers are not called again: their recorded results are used


def test_replay_names_the_first_event_whose_recorded_result_was_changed(make_engine, calls):
    eng, case_id = _busy_case(make_engine, calls)
    called = next(e for e in eng.history(case_id) if e["type"] == "handler.called")
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, :old, :new) WHERE id = :id",
                     old='"amount":24000', new='"amount":2400', id=called["id"])
    report = replay_case(eng, case_id)
    assert not report.ok
    # with 2,400 the gateway skips approval: the replay first differs at the next task made ready
    assert report.divergence.seq > called["seq"]
    assert report.divergence.event_type == "task.ready"
    assert "DIVERGES at event #" in str(report)


def test_replay_finds_a_stored_state_changed_outside_the_engine(make_engine, calls):
    eng, case_id = _busy_case(make_engine, calls)
    with eng.db.transaction() as conn:
        conn.execute(text("UPDATE instances SET data = replace(data, :old, :new) "
                          "WHERE case_id = :c AND process_id = 'budget'"),
                     {"c": case_id, "old": '"agreed": true', "new": '"agreed": false'})
    report = replay_case(eng, case_id)
    assert not report.ok and report.divergence.seq is None
    assert "different state than stored" in report.divergence.message


def test_replay_names_the_handler_call_that_no_longer_matches_changed_input(make_engine, calls):
    eng, case_id = _busy_case(make_engine, calls)
    started = next(e for e in eng.history(case_id) if e["type"] == "instance.started")
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, :old, :new) WHERE id = :id",
                     old='"points":60', new='"points":6', id=started["id"])
    report = replay_case(eng, case_id)
    assert not report.ok
    first_handler = next(e for e in eng.history(case_id) if e["type"].startswith("handler."))
    assert report.divergence.seq == first_handler["seq"]
    assert "with {'points': 6}" in report.divergence.message
