"""Messages the diagram throws itself — intermediate message throw events, message end events and send tasks with
no handler (engine/messages.py, "messages the diagram throws"): delivered as `carepath message` delivers one sent
to the case. Before, they went nowhere without a word: a receiver in another instance waited for ever, a message
boundary never interrupted, a message start event never started (findings 13, item 3).

Each path on SQLite and PostgreSQL: caught in the same instance (SpiffWorkflow's own delivery, kept), another
instance of the case, a message start event, an interrupting boundary, and no receiver (kept, then taken; or,
with a time to live of P0D, the throwing step refused with nothing saved).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import StateError
from engine.replay import replay_case
from engine.schema import messages

FIXTURES = Path(__file__).parent / "fixtures" / "messages"


@pytest.fixture
def eng(make_engine):
    e = make_engine()
    e.deploy([FIXTURES / "thrown.bpmn"])
    return e


def _statuses(e, case_id) -> dict[str, str]:
    return {i["process_id"]: i["status"] for i in e.get_case(case_id)["instances"]}


def _thrown(e, case_id) -> list[dict]:
    return [ev for ev in e.history(case_id) if ev["type"] == "message.thrown"]


def _rows(e, case_id) -> list[tuple[str, str]]:
    with e.db.engine.connect() as conn:
        return [(r.name, r.status) for r in conn.execute(
            select(messages).where(messages.c.case_id == case_id).order_by(messages.c.id))]


def _complete(e, case_id, element_id, data=None):
    [task] = [t for t in e.list_tasks(case_id=case_id) if t["element_id"] == element_id]
    return e.complete_task(task["id"], data or {}, actor="broker1")


def test_a_message_thrown_and_caught_in_one_instance_is_delivered_there_by_the_library(eng):
    r = eng.start("same_instance", title="One")
    assert r.status == "completed"
    assert _thrown(eng, r.case_id) == [] and _rows(eng, r.case_id) == []  # never left the instance
    assert replay_case(eng, r.case_id).ok


def test_a_send_task_and_a_message_end_event_reach_a_receive_task_and_a_message_start_event_of_the_case(eng):
    waiting = eng.start("waiter", title="Quote")
    sender = eng.start("sender", case_id=waiting.case_id)
    assert _statuses(eng, waiting.case_id) == {"waiter": "waiting", "sender": "waiting"}
    _complete(eng, waiting.case_id, "se_price", {"weekly_cost": 420})
    statuses = _statuses(eng, waiting.case_id)
    assert statuses == {"waiter": "completed", "sender": "completed", "follow_up": "waiting"}
    assert eng.instance_snapshot(waiting.instance_id)["data"]["weekly_cost"] == 420  # the message's data joined
    [ready, done] = _thrown(eng, waiting.case_id)
    assert ready["data"]["outcome"] == "delivered" and ready["data"]["thrown_by"] == ["se_send"]
    assert ready["data"]["data"] == {"weekly_cost": 420}  # the send task's spiffworkflow:messagePayload
    assert ready["data"]["element_ids"] == ["wa_receive"] and ready["instance_id"] == waiting.instance_id
    assert done["data"]["outcome"] == "started" and done["data"]["thrown_by"] == ["se_end"]
    assert done["instance_id"] == sender.instance_id
    assert _rows(eng, waiting.case_id) == [("quote_ready", "delivered"), ("quote_done", "delivered")]
    [check] = eng.list_tasks(case_id=waiting.case_id)
    assert check["element_id"] == "fu_check"
    assert eng.instance_snapshot(check["instance_id"])["data"]["quoted"] == 420
    eng.complete_task(check["id"], {}, actor="broker1")
    assert set(_statuses(eng, waiting.case_id).values()) == {"completed"}
    assert eng.verify(waiting.case_id)[1] == []
    report = replay_case(eng, waiting.case_id)
    assert report.ok, str(report)


def test_a_thrown_message_interrupts_a_task_through_its_message_boundary_event(eng):
    work = eng.start("worker", title="Work")
    assert [t["element_id"] for t in eng.list_tasks(case_id=work.case_id)] == ["wo_work"]
    eng.start("stopper", case_id=work.case_id)
    assert eng.list_tasks(case_id=work.case_id) == []  # "Do the work" was interrupted
    assert set(_statuses(eng, work.case_id).values()) == {"completed"}
    [ev] = _thrown(eng, work.case_id)
    assert ev["data"]["element_ids"] == ["wo_stop"] and ev["data"]["thrown_by"] == ["st_stop"]
    types = [e["type"] for e in eng.history(work.case_id)]
    assert "task.left" in types[types.index("message.thrown"):]
    assert replay_case(eng, work.case_id).ok


def test_a_thrown_message_nothing_receives_is_kept_and_taken_by_the_first_receiver_that_waits(eng):
    shout = eng.start("shouter", title="Shout")
    assert shout.status == "completed"
    [ev] = _thrown(eng, shout.case_id)
    assert ev["data"]["outcome"] == "kept" and ev["data"]["expires_at"]
    assert _rows(eng, shout.case_id) == [("nobody_listens", "kept")]
    heard = eng.start("listener", case_id=shout.case_id)
    assert heard.status == "completed"  # the kept message was delivered in its first step
    assert _rows(eng, shout.case_id) == [("nobody_listens", "delivered")]
    assert "message.delivered" in [e["type"] for e in eng.history(shout.case_id)]
    report = replay_case(eng, shout.case_id)
    assert report.ok, str(report)


def test_without_a_time_to_live_a_thrown_message_nothing_receives_refuses_the_step_and_nothing_is_saved(eng):
    eng.message_ttl = timedelta(0)
    work = eng.start("worker", title="Work")
    before = eng.history(work.case_id)
    with pytest.raises(StateError, match=r"waits for message 'nobody_listens', thrown by 'sh_shout'.*P0D"):
        eng.start("shouter", case_id=work.case_id)
    assert eng.history(work.case_id) == before and _rows(eng, work.case_id) == []
    assert _statuses(eng, work.case_id) == {"worker": "waiting"}
