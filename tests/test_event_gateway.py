"""Event-based gateways: a timer, a message and a signal race on the injected clock; the first wins and the
others are cancelled — no timer of a lost race fires later, even from a timer row left behind.

Before the fix a timer behind an event-based gateway had no timer row (the gateway holds its events'
definitions, which `timer_due` did not read), so `clock advance` fired nothing and the case waited forever.

A timeCycle on an intermediate catch event — behind a gateway or on its own — or on an interrupting boundary event
is refused at deploy, as Camunda 8 refuses it: the event waits (fires) once. Before, behind a gateway it was never
scheduled (the case waited for ever); on its own it fired at each occurrence without ever moving on (the case
waited for ever after the last); on an interrupting boundary event it fired without interrupting the task.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from engine.clock import FixedClock
from engine.errors import DefinitionError
from engine.replay import replay_case
from engine.schema import events, instances, process_versions, timers
from tests.conftest import START

FIXTURES = Path(__file__).parent / "fixtures" / "messages"


def _engine(make_engine, *files: str, simulated: bool = True):
    eng = make_engine(simulated=simulated)
    eng.deploy([FIXTURES / f for f in (files or ("event_race.bpmn",))])
    return eng


def _open(eng, case_id: int) -> list[str]:
    return sorted(t["element_id"] for t in eng.list_tasks(case_id=case_id))


def _types(eng, case_id: int) -> list[str]:
    return [e["type"] for e in eng.history(case_id)]


def _timer_rows(eng, instance_id: int) -> list[tuple[str, object]]:
    with eng.db.engine.connect() as conn:
        return [(r.element_id, r.due_at) for r in conn.execute(
            select(timers.c.element_id, timers.c.due_at).where(timers.c.instance_id == instance_id))]


def test_a_timer_behind_an_event_based_gateway_is_scheduled_and_fires(make_engine):
    eng = _engine(make_engine)
    res = eng.start("event_race", data={"withdraw_now": False})
    assert _timer_rows(eng, res.instance_id) and _timer_rows(eng, res.instance_id)[0][0] == "two_weeks"
    assert eng.next_due() == START + timedelta(days=14)
    assert eng.advance_clock(timedelta(days=13)) == 0  # not yet: a day early fires nothing
    assert _open(eng, res.case_id) == ["decide"]
    assert eng.advance_clock(timedelta(days=1)) == 1  # exactly when it falls due
    assert _open(eng, res.case_id) == ["chase", "decide"]  # the timer's path, and only it
    fired = [e for e in eng.history(res.case_id) if e["type"] == "timer.fired"]
    assert [(e["data"]["element_id"], e["at"]) for e in fired] == [("two_weeks", "2031-03-17T09:00:00.000000+00:00")]
    assert _timer_rows(eng, res.instance_id) == []
    # the message that lost the race is not applied: nothing waits for it now, so it is kept
    assert eng.deliver_message("provider_reply", case_id=res.case_id).status == "kept"
    assert _open(eng, res.case_id) == ["chase", "decide"]
    assert replay_case(eng, res.case_id).ok


def test_a_message_wins_the_race_and_the_timer_never_fires(make_engine):
    eng = _engine(make_engine)
    res = eng.start("event_race", data={"withdraw_now": False})
    eng.advance_clock(timedelta(days=3))
    out = eng.deliver_message("provider_reply", case_id=res.case_id, data={"weekly_cost": 300})
    assert out.status == "delivered" and out.instance_ids == [res.instance_id]
    assert _open(eng, res.case_id) == ["decide", "review_reply"]
    assert _timer_rows(eng, res.instance_id) == []
    assert "timer.cleared" in _types(eng, res.case_id)
    assert eng.advance_clock(timedelta(days=60)) == 0
    assert "timer.fired" not in _types(eng, res.case_id)
    assert _open(eng, res.case_id) == ["decide", "review_reply"]
    assert replay_case(eng, res.case_id).ok


def test_a_stale_timer_row_of_a_lost_race_fires_nothing_and_changes_nothing(make_engine):
    """The "still due?" guard: a timer row whose timer the workflow no longer waits for (left by a crash, or by
    a worker whose snapshot was older) must not move the instance: no step, no version, no event."""
    eng = _engine(make_engine)
    res = eng.start("event_race", data={"withdraw_now": False})
    with eng.db.engine.connect() as conn:
        [(gateway_task, element, due)] = conn.execute(select(timers.c.task_id, timers.c.element_id,
                                                             timers.c.due_at)).all()
    eng.deliver_message("provider_reply", case_id=res.case_id)
    with eng.db.transaction() as conn:  # the lost timer's row, put back as if it had been left behind
        conn.execute(insert(timers).values(instance_id=res.instance_id, case_id=res.case_id, task_id=gateway_task,
                                           element_id=element, name="Two weeks", attached_to=None, due_at=due))
        version = conn.execute(select(instances.c.version).where(instances.c.id == res.instance_id)).scalar_one()
        n_events = conn.execute(select(func.count()).select_from(events)
                                .where(events.c.case_id == res.case_id)).scalar_one()
    with eng.db.transaction() as conn:  # the clock moves on; the timer job runs (bounded: a broken guard fails)
        eng._set_clock(conn, START + timedelta(days=20))
    assert eng.fire_due_timers(limit=3) == 0
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(instances.c.version).where(instances.c.id == res.instance_id)).scalar_one() \
            == version
        assert conn.execute(select(func.count()).select_from(events)
                            .where(events.c.case_id == res.case_id)).scalar_one() == n_events
    assert _timer_rows(eng, res.instance_id) == []  # the stale row is gone
    assert _open(eng, res.case_id) == ["decide", "review_reply"]
    assert replay_case(eng, res.case_id).ok


def test_a_signal_thrown_by_a_parallel_branch_wins_and_cancels_the_timer(make_engine):
    eng = _engine(make_engine)
    res = eng.start("event_race", data={"withdraw_now": False})
    eng.advance_clock(timedelta(days=5))
    [decide] = eng.list_tasks(case_id=res.case_id)
    eng.complete_task(decide["id"], {"withdraw_now": True}, actor="sw1")
    assert _open(eng, res.case_id) == []
    assert eng.get_case(res.case_id)["instances"][0]["status"] == "completed"
    assert _timer_rows(eng, res.instance_id) == []
    assert eng.advance_clock(timedelta(days=30)) == 0
    assert "timer.fired" not in _types(eng, res.case_id)
    assert replay_case(eng, res.case_id).ok


def test_a_timer_due_before_a_late_message_wins_even_if_the_timer_job_has_not_run(make_engine):
    """On the real clock the timer job may lag: a message arriving after the timer fell due must not win."""
    eng = _engine(make_engine, simulated=False)
    wall = FixedClock(START)
    eng._wall_clock = wall
    res = eng.start("event_race", data={"withdraw_now": False})
    wall.set(START + timedelta(days=15))  # the timer fell due yesterday; no timer job has run
    out = eng.deliver_message("provider_reply", case_id=res.case_id, data={"weekly_cost": 300})
    assert out.status == "kept"  # the gateway had already taken the timer's path
    assert _open(eng, res.case_id) == ["chase", "decide"]
    types = _types(eng, res.case_id)
    assert types.index("timer.fired") < types.index("message.kept")
    assert replay_case(eng, res.case_id).ok


def test_two_timers_behind_one_gateway_keep_their_own_due_times_and_the_earlier_wins(make_engine):
    eng = _engine(make_engine, "two_timers.bpmn")
    res = eng.start("two_timers")
    assert _timer_rows(eng, res.instance_id)[0][0] == "one_week"
    assert eng.next_due() == START + timedelta(days=7)
    assert eng.advance_clock(timedelta(days=40)) == 1
    assert _open(eng, res.case_id) == ["remind"]  # only the one-week path; four weeks was cancelled
    assert [e["data"]["element_id"] for e in eng.history(res.case_id) if e["type"] == "timer.fired"] == ["one_week"]
    assert replay_case(eng, res.case_id).ok


def test_a_message_before_both_timers_wins_over_them(make_engine):
    eng = _engine(make_engine, "two_timers.bpmn")
    res = eng.start("two_timers")
    eng.advance_clock(timedelta(days=6))
    assert eng.deliver_message("assessment_done", case_id=res.case_id).status == "delivered"
    assert eng.get_case(res.case_id)["instances"][0]["status"] == "completed"
    assert eng.advance_clock(timedelta(days=40)) == 0
    assert "timer.fired" not in _types(eng, res.case_id)


def test_a_paused_gateway_keeps_the_time_its_timer_had_left(make_engine):
    eng = _engine(make_engine)
    res = eng.start("event_race", data={"withdraw_now": False})
    eng.advance_clock(timedelta(days=10))  # 4 days left
    eng.suspend_instance(res.instance_id, reason="in hospital", actor="sw1")
    eng.advance_clock(timedelta(days=30))
    eng.resume_instance(res.instance_id, actor="sw1")
    assert eng.next_due() == START + timedelta(days=44)
    assert eng.advance_clock(timedelta(days=3)) == 0
    assert eng.advance_clock(timedelta(days=1)) == 1
    assert _open(eng, res.case_id) == ["chase", "decide"]
    assert replay_case(eng, res.case_id).ok


CYCLE_REFUSED = "is an intermediate catch event, which waits once: a timeCycle (a repeating timer) is refused here"


def test_a_time_cycle_on_an_intermediate_catch_event_is_refused_at_deploy_naming_file_element_and_line(make_engine):
    eng = make_engine()
    with pytest.raises(DefinitionError) as caught:
        eng.deploy([FIXTURES / "cycle_timers.bpmn"])
    found = {(p.file, p.element_id, p.line): p.message for p in caught.value.problems}
    assert sorted(found) == [("cycle_timers.bpmn", "every_few_days", 32), ("cycle_timers.bpmn", "mondays", 24),
                             ("cycle_timers.bpmn", "visit_late", 41), ("cycle_timers.bpmn", "weekly", 10)]
    assert found[("cycle_timers.bpmn", "weekly", 10)] == (  # behind the event-based gateway; its name on one line
        f"timer 'Every week' {CYCLE_REFUSED}, as in Camunda 8; write its first occurrence as a timeDuration: P7D")
    assert found[("cycle_timers.bpmn", "mondays", 24)].endswith(  # on its own, a cycle from a date
        "write its first occurrence as a timeDate: 2031-03-10T09:00:00Z")
    assert "write the first occurrence as a timeDuration (e.g. P7D) or a timeDate" in \
        found[("cycle_timers.bpmn", "every_few_days", 32)]  # an expression: no literal to suggest
    assert found[("cycle_timers.bpmn", "visit_late", 41)] == (  # it fired and left the task open, never interrupting
        "timer 'Visit late' is an interrupting boundary event, which fires once: a timeCycle (a repeating timer) is "
        "refused here, as in Camunda 8; write its first occurrence as a timeDuration: P7D (or make it "
        'non-interrupting, cancelActivity="false", to repeat)')
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(process_versions)).scalar_one() == 0


def test_the_timers_the_refusal_suggests_fire_on_clock_advance(make_engine):
    """Written as the refusal says, the same diagrams deploy and their timers fire at the cycle's first occurrence,
    behind the gateway (the race takes the timer) and on their own (the instance moves on)."""
    text = (FIXTURES / "cycle_timers.bpmn").read_text(encoding="utf-8")
    for cycle, instead in (("<bpmn:timeCycle>R3/P7D</bpmn:timeCycle>", "<bpmn:timeDuration>P7D</bpmn:timeDuration>"),
                           ("<bpmn:timeCycle>R/2031-03-10T09:00:00Z/P1W</bpmn:timeCycle>",
                            "<bpmn:timeDate>2031-03-10T09:00:00Z</bpmn:timeDate>"),
                           ('<bpmn:timeCycle>"R/P%dD" % days</bpmn:timeCycle>',
                            '<bpmn:timeDuration>"P%dD" % days</bpmn:timeDuration>'),
                           ("<bpmn:timeCycle>R2/P7D</bpmn:timeCycle>", "<bpmn:timeDuration>P7D</bpmn:timeDuration>")):
        assert cycle in text
        text = text.replace(cycle, instead)
    eng = make_engine()
    eng.deploy(files={"cycle_timers.bpmn": text.encode("utf-8")})
    race = eng.start("cycle_gw")
    plain = eng.start("cycle_plain")
    few = eng.start("cycle_expr", data={"days": 7})
    visit = eng.start("cycle_boundary")
    assert eng.next_due() == START + timedelta(days=7)
    assert eng.advance_clock(timedelta(days=6)) == 0
    assert eng.advance_clock(timedelta(days=1)) == 4
    assert _open(eng, visit.case_id) == []  # the boundary timer interrupted the visit
    for res, element in ((race, "weekly"), (plain, "mondays"), (few, "every_few_days"), (visit, "visit_late")):
        assert eng.get_case(res.case_id)["instances"][0]["status"] == "completed"
        assert [e["data"]["element_id"] for e in eng.history(res.case_id) if e["type"] == "timer.fired"] == [element]
    assert eng.deliver_message("assessment_done", case_id=race.case_id).status == "kept"  # it lost the race
