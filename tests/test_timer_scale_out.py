"""Several timer workers on one database (issue 14, scale-out): how a worker claims due timers, that a
batch which moved nothing does not end a run, and how the timer job paces itself (the next due time in
the database, a timer stored in this process, a timer announced by another process on PostgreSQL).

Each test asserts what happened, never how long it took; a wait on a running scheduler is a liveness
check with a deadline far below the job's interval, so only the pacing under test can make it pass."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine.clock import FixedClock
from engine.forms import FormLibrary
from engine.runtime import Engine
from engine.schema import timers
from engine.worker import background_scheduler
from tests.conftest import DIAGRAMS, START

LONG = 600  # the timer job's interval in these tests: a run that depends on it never comes in time


def _due_at(eng: Engine, hours_from_now: list[float]) -> list[int]:
    """Instances of timer_at.bpmn, each waiting until `now + hours`."""
    now = eng.now()
    return [eng.start("timer_at", data={"due": (now + timedelta(hours=h)).isoformat()}).instance_id
            for h in hours_from_now]


def _fired(eng: Engine) -> dict[int, int]:
    """instance id -> its timer.fired events."""
    out: dict[int, int] = {}
    with eng.db.engine.connect() as conn:
        from engine.schema import events

        for iid in conn.execute(select(events.c.instance_id).where(events.c.type == "timer.fired")).scalars():
            out[iid] = out.get(iid, 0) + 1
    return out


def _move_clock(eng: Engine, by: timedelta) -> None:
    with eng.db.transaction() as conn:
        eng._set_clock(conn, eng.now(conn) + by)


def test_the_claim_takes_the_longest_overdue_first(make_engine):
    eng = make_engine("timer_at.bpmn")
    late, middle, early = _due_at(eng, [30, 20, 10])  # started in this order: ids ascend, due times descend
    _move_clock(eng, timedelta(days=2))
    with eng.db.transaction() as conn:
        claimed = list(conn.execute(eng.claim_due(eng.now(conn), 2)).scalars())
    assert claimed == [early, middle]


def test_a_batch_that_moved_nothing_does_not_end_the_run(make_engine):
    """The first batch takes an instance whose timer row is stale (as when another worker fired it between
    our snapshot and our lock): it moves nothing, and the run goes on to fire the timer that is due."""
    eng = make_engine("deadline.bpmn", "timer_at.bpmn")
    stale = eng.start("deadline").instance_id
    [due] = _due_at(eng, [12])
    with eng.db.transaction() as conn:
        conn.execute(update(timers).where(timers.c.instance_id == stale).values(due_at=START))
    _move_clock(eng, timedelta(days=1))
    assert eng.fire_due_timers(batch=1) == 1
    assert _fired(eng) == {due: 1}


@pytest.mark.postgres
def test_two_workers_on_postgresql_fire_one_batch_each_none_twice_none_skipped(pg_url, calls):
    """Worker A holds its batch (mid-step, rows locked) while worker B claims: B takes the next due instances
    at once instead of waiting for A's rows, both batches commit, and every timer has fired exactly once."""
    eng = Engine(pg_url, registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    cases = [eng.start("deadline").case_id for _ in range(6)]
    _move_clock(eng, timedelta(days=36))  # every reminder is due
    a = Engine(pg_url, registry=calls.registry(), forms=FormLibrary())
    b = Engine(pg_url, registry=calls.registry(), forms=FormLibrary())
    holding, release = threading.Event(), threading.Event()
    fire = a._fire_instance

    def fire_after_b(*args, **kw):  # A's first step waits, inside its transaction, until B has done its batch
        if not holding.is_set():
            holding.set()
            release.wait(120)
        return fire(*args, **kw)

    a._fire_instance = fire_after_b  # type: ignore[method-assign]
    result: list[tuple[list[int], int]] = []
    worker_a = threading.Thread(target=lambda: result.append(a._fire_batch(3)))
    worker_a.start()
    try:
        assert holding.wait(120), "worker A never started its batch"
        ids_b, moved_b = b._fire_batch(3)  # returns while A still holds its rows: SKIP LOCKED, no waiting
    finally:
        release.set()
        worker_a.join(120)
    [(ids_a, moved_a)] = result
    assert len(ids_a) == len(ids_b) == 3 and not set(ids_a) & set(ids_b)
    assert moved_a == moved_b == 3
    assert eng.fire_due_timers() == 0  # nothing skipped: no due timer is left
    for case_id in cases:
        fired = [e["data"]["element_id"] for e in eng.history(case_id) if e["type"] == "timer.fired"]
        assert fired == ["reminder"]
    assert len([c for c in calls.log if c[0] == "notify"]) == 6
    for e in (a, b, eng):
        e.db.dispose()


def test_a_step_tells_the_timer_job_of_the_timers_it_stored(make_engine):
    eng = make_engine("deadline.bpmn")
    heard: list = []
    eng.on_timer_stored(heard.append)
    eng.start("deadline")
    assert heard == [START + timedelta(days=35)]  # the earliest of its timers (the reminder, not the 6 weeks)


def _real_clock_engine(url: str, calls, wall: FixedClock) -> Engine:
    eng = Engine(url, registry=calls.registry(), forms=FormLibrary(), wall_clock=wall)
    eng.init()  # the real clock (here a FixedClock standing in for it)
    eng.deploy([DIAGRAMS / "timer_at.bpmn"])
    return eng


def _wait_for_task(eng: Engine, case_id: int) -> list[str]:
    deadline = time.monotonic() + 60  # liveness only: the job's interval is LONG
    names: list[str] = []
    while time.monotonic() < deadline:
        names = [t["element_id"] for t in eng.list_tasks(case_id=case_id)]
        if names:
            break
        time.sleep(0.05)
    return names


def test_the_timer_job_runs_when_the_next_timer_falls_due_not_after_its_interval(db_url, calls):
    wall = FixedClock(START)
    eng = _real_clock_engine(db_url, calls, wall)
    sched = background_scheduler(eng, interval=LONG)
    sched.start()
    try:
        case_id = eng.start("timer_at", data={"due": (START + timedelta(seconds=1)).isoformat()}).case_id
        wall.set(START + timedelta(seconds=5))
        assert _wait_for_task(eng, case_id) == ["follow_up"]
    finally:
        sched.shutdown(wait=True)
    eng.db.dispose()


@pytest.mark.postgres
def test_a_timer_announced_by_another_process_wakes_the_timer_job(pg_url, calls, caplog):
    """The step runs on another engine (as in another server process): only PostgreSQL's NOTIFY tells this
    scheduler, which would otherwise look again only after its interval."""
    wall = FixedClock(START)
    eng = _real_clock_engine(pg_url, calls, wall)
    sched = background_scheduler(eng, interval=LONG)
    [pace] = sched.paces
    sched.start()
    other = Engine(pg_url, registry=calls.registry(), forms=FormLibrary(), wall_clock=wall)
    try:
        assert pace.listening.wait(60), "the timer job never started listening"
        case_id = other.start("timer_at", data={"due": (START + timedelta(seconds=1)).isoformat()}).case_id
        wall.set(START + timedelta(seconds=5))
        assert _wait_for_task(eng, case_id) == ["follow_up"], (  # what the job logged, should it ever fail
            pace.planned, pace.retry, [r.getMessage() for r in caplog.records if r.name.startswith("carepath")])
        assert _fired(eng) == {eng.list_tasks(case_id=case_id)[0]["instance_id"]: 1}
    finally:
        sched.shutdown(wait=True)
        other.db.dispose()
    eng.db.dispose()


def test_the_timer_job_goes_on_after_a_failed_run(make_engine, monkeypatch):
    """A run that fails (say the database is away for a moment) is logged; the loop runs again."""
    from engine.worker import TimerPace

    eng = make_engine("deadline.bpmn")
    runs: list[int] = []

    def fire(**_kw):
        runs.append(1)
        if len(runs) == 1:
            raise OSError("connection refused")
        pace.stop()
        return 0

    monkeypatch.setattr(eng, "fire_due_timers", fire)
    pace = TimerPace(eng, interval=0)
    pace.run()  # returns once the second run has stopped the loop
    assert len(runs) == 2


def test_a_scheduler_started_long_after_it_was_built_still_runs_the_timer_job(make_engine, calls, monkeypatch):
    """The job starts once, when the scheduler starts; a slow start-up (the app's) must not make APScheduler
    skip it as misfired, or no timer would ever fire in that process."""
    from engine import clock

    eng = make_engine("deadline.bpmn")
    eng.start("deadline")
    _move_clock(eng, timedelta(days=36))  # the reminder is due (the database's simulated clock)
    hour_ago = clock.SystemClock().now() - timedelta(hours=1)
    monkeypatch.setattr(clock.SystemClock, "now", lambda self: hour_ago)  # the job was planned an hour ago
    sched = background_scheduler(eng, interval=LONG)
    monkeypatch.undo()
    sched.start()
    try:
        deadline = time.monotonic() + 60  # liveness only
        while not calls.log and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sched.shutdown(wait=True)
    assert [c[0] for c in calls.log] == ["notify"]


def test_due_timers_left_unfired_are_tried_again_soon_then_less_often(make_engine, monkeypatch):
    """A run that leaves due timers unfired (a step failed, another process held the case) looks again after
    half a second, then twice as long each time up to the interval, not after a whole interval (a passing
    fault would hold the timer that long) and not at once (a lasting one would spin); a run that fires
    starts the count again."""
    from engine.worker import TimerPace

    eng = make_engine("deadline.bpmn")
    eng.start("deadline")
    _move_clock(eng, timedelta(days=36))  # the reminder is due
    pace = TimerPace(eng, interval=3)
    assert [pace.next_delay(moved=0)[1] for _ in range(5)] == [0.5, 1.0, 2.0, 3, 3]
    assert pace.next_delay(moved=1)[1] == 0  # it moved something and more is due: at once
    assert pace.next_delay(moved=0)[1] == 0.5
    assert eng.fire_due_timers() == 1
    now, delay = pace.next_delay(moved=0)  # the next timer (the six weeks) is a week away: the interval
    assert delay == 3 and pace.retry == 0.5
    monkeypatch.setattr(eng, "next_due", lambda: (_ for _ in ()).throw(OSError("database away")))
    assert [pace.next_delay(moved=0)[1] for _ in range(3)] == [0.5, 1.0, 2.0]


_THROWER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="thrower_defs" targetNamespace="http://carepath.test">
  <bpmn:message id="m_ping" name="ping"/>
  <bpmn:process id="thrower" name="Pings nobody when due" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="Until due">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="wait_def"><bpmn:timeDate xsi:type="bpmn:tFormalExpression">due</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateThrowEvent id="send" name="Ping">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:messageEventDefinition id="send_def" messageRef="m_ping"/>
    </bpmn:intermediateThrowEvent>
    <bpmn:userTask id="follow_up" name="Follow up" camunda:formKey="follow_up" camunda:candidateGroups="front_door">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="send"/>
    <bpmn:sequenceFlow id="f3" sourceRef="send" targetRef="follow_up"/>
    <bpmn:sequenceFlow id="f4" sourceRef="follow_up" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.parametrize("batch", [50, 2])
def test_a_timer_step_that_fails_does_not_hold_back_the_other_cases_timers(make_engine, caplog, batch):
    """The longest overdue timer's step is refused (its thrown message has no receiver and messages are not
    kept): before, the whole batch was undone with it and, heading every claim, it stopped every other case's
    timer for good. Now the others fire (their tasks appear), the failing case is left exactly as it was for the
    next run, the error is still raised once, and the log names the instance, not the case's data."""
    from engine.errors import StateError

    eng = make_engine("timer_at.bpmn")
    eng.deploy(files={"thrower.bpmn": _THROWER.encode()})
    eng.message_ttl = timedelta(0)
    now = eng.now()
    stuck = eng.start("thrower", title="Pinger", data={"due": (now + timedelta(hours=1)).isoformat()})
    others = _due_at(eng, [2, 3, 4])
    stuck_events = len(eng.history(stuck.case_id))
    _move_clock(eng, timedelta(days=1))
    with caplog.at_level("ERROR", logger="carepath.timers"):
        with pytest.raises(StateError, match="waits for message 'ping'"):
            eng.fire_due_timers(batch=batch)
    assert _fired(eng) == {iid: 1 for iid in others}
    assert sorted(t["instance_id"] for t in eng.list_tasks() if t["name"] == "Follow up") == others
    assert len(eng.history(stuck.case_id)) == stuck_events  # nothing of the refused step was kept
    assert f"the timer step of process instance {stuck.instance_id} failed (StateError)" in caplog.text
    assert "Pinger" not in caplog.text
    # the next run tries it again (and only it): still refused, nothing fires twice
    with pytest.raises(StateError):
        eng.fire_due_timers(batch=batch)
    assert _fired(eng) == {iid: 1 for iid in others}
    # a receiver's messages kept again: the step goes through on the next run
    eng.message_ttl = timedelta(days=7)
    assert eng.fire_due_timers(batch=batch) == 1
    assert _fired(eng) == {**{iid: 1 for iid in others}, stuck.instance_id: 1}
    from engine.replay import replay_case

    assert replay_case(eng, stuck.case_id).ok and eng.verify()[1] == []  # the refused runs left no trace
