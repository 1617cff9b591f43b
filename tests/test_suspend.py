"""Suspending and resuming a process instance (engine/suspension.py), on the simulated clock.

The reablement diagram (processes/reablement.bpmn) is the example: while 'Deliver reablement'
is open it waits on two timers, the reminder a week before the end (day 35) and the 6-week
limit (day 42). A pause stops both; a resume gives each the time it had left.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import StateError, ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.replay import replay_case
from engine.runtime import Engine
from tests.case_helpers import events, fired, the_task
from tests.conftest import START

ROOT = Path(__file__).resolve().parent.parent
PLAN = {"goals": ["Wash and dress without help"], "setting": "home", "start_type": "planned", "visits_per_day": 2}
PERSON = {"name": "Joan Barker", "age": 78, "address": "4 Mill Lane, Northby"}


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy([ROOT / "processes"])
    yield engine
    engine.db.dispose()


def at9(day):
    """9 a.m. UTC on `day`, as timers are shown."""
    return f"{day}T09:00:00.000000+00:00"


def reablement(eng):
    res = eng.start("reablement", data={"person": PERSON, "age": 78, "reason": "Falls at home",
                                        "from_hospital": False, "discharge_date": None})
    eng.complete_task(the_task(eng, res.case_id, "plan_reablement")["id"], PLAN, actor="coordinator1")
    return res.case_id, res.instance_id


def timer_dues(eng, iid):
    return dict(eng.instance_snapshot(iid)["timers"])


def status(eng, case_id, iid):
    return next(i["status"] for i in eng.get_case(case_id)["instances"] if i["id"] == iid)


def test_no_timer_fires_while_suspended_and_each_keeps_its_remaining_time(eng):
    cid, iid = reablement(eng)
    assert timer_dues(eng, iid) == {"end_reminder": at9("2031-04-07"), "period_ended": at9("2031-04-14")}
    eng.advance_clock(timedelta(days=30))  # 12 days left of the 6 weeks, 5 before the reminder
    out = eng.suspend_instance(iid, reason="Admitted to hospital", actor="worker1", details={"hospital": "Northby"})
    assert out["status"] == "suspended" and status(eng, cid, iid) == "suspended"
    eng.advance_clock(timedelta(days=20))  # past both original due times
    assert fired(eng, cid) == [] and eng.next_due() is None
    assert the_task(eng, cid, "deliver_reablement")  # the task stays on the case, waiting with its process

    eng.resume_instance(iid, actor="worker1", reason="Home again")
    assert status(eng, cid, iid) == "waiting"
    resumed = START + timedelta(days=50)
    assert timer_dues(eng, iid) == {"end_reminder": at9("2031-04-27"),  # resume + 5 days
                                    "period_ended": at9("2031-05-04")}  # resume + 12 days
    assert the_task(eng, cid, "deliver_reablement")["due_at"] == resumed + timedelta(days=5)
    [ev] = events(eng, cid, "instance.resumed")
    assert ev["data"]["timers"] == [
        {"element_id": "end_reminder", "due_before": at9("2031-04-07"), "due_after": at9("2031-04-27")},
        {"element_id": "period_ended", "due_before": at9("2031-04-14"), "due_after": at9("2031-05-04")}]
    assert ev["data"]["suspended_seconds"] == 20 * 86400
    [sus] = events(eng, cid, "instance.suspended")
    assert sus["data"]["details"] == {"hospital": "Northby"} and [t["element_id"] for t in sus["data"]["timers"]] == [
        "end_reminder", "period_ended"]

    eng.advance_clock(to=resumed + timedelta(days=12) - timedelta(minutes=1))
    assert fired(eng, cid) == ["end_reminder"]  # the limit: not a minute early
    eng.advance_clock(timedelta(minutes=1))
    assert fired(eng, cid) == ["end_reminder", "period_ended"]
    assert the_task(eng, cid, "decide_extend_or_end")["team"] == "team_manager"
    assert replay_case(eng, cid).ok, str(replay_case(eng, cid))
    assert eng.verify(cid)[1] == []


def test_a_timer_capped_on_resume_moves_on_but_not_past_its_limit_nor_into_the_past(eng):
    cid, iid = reablement(eng)
    eng.advance_clock(timedelta(days=30))
    eng.suspend_instance(iid, reason="Admitted to hospital", actor="worker1")
    eng.advance_clock(timedelta(days=20))
    for bad, message in [({"period_ended": "soon"}, "must be an ISO 8601 instant"), (["x"], "must be an object")]:
        with pytest.raises(ValidationError, match=message):
            eng.resume_instance(iid, actor="worker1", not_after=bad)
    with pytest.raises(ValidationError, match="for mode 'remaining' only"):
        eng.resume_instance(iid, actor="worker1", mode="end", not_after={"period_ended": "2031-04-30T09:00:00Z"})
    # the limit capped at 30 April (12 days left would be 4 May); the reminder's cap has passed: it is due now
    eng.resume_instance(iid, actor="worker1", not_after={"period_ended": "2031-04-30T09:00:00+00:00",
                                                         "end_reminder": "2031-04-01T09:00:00+00:00"})
    assert timer_dues(eng, iid) == {"end_reminder": at9("2031-04-22"), "period_ended": at9("2031-04-30")}
    assert replay_case(eng, cid).ok, str(replay_case(eng, cid))


def test_a_task_of_a_suspended_process_cannot_be_completed(eng):
    cid, iid = reablement(eng)
    eng.suspend_instance(iid, reason="Admitted to hospital", actor="worker1")
    task = the_task(eng, cid, "deliver_reablement")
    before = len(eng.history(cid))
    with pytest.raises(StateError, match="is suspended; resume it first"):
        eng.complete_task(task["id"], {"outcome": "best_independence_reached", "summary": "Independent"},
                          actor="coordinator1")
    assert len(eng.history(cid)) == before and status(eng, cid, iid) == "suspended"


def test_resume_of_a_process_not_suspended_and_a_second_suspend_are_refused(eng):
    cid, iid = reablement(eng)
    before = (len(eng.history(cid)), timer_dues(eng, iid))
    with pytest.raises(StateError, match="is not suspended .*nothing to resume; nothing was changed"):
        eng.resume_instance(iid, actor="worker1")
    eng.suspend_instance(iid, reason="Admitted to hospital", actor="worker1")
    with pytest.raises(StateError, match="already suspended"):
        eng.suspend_instance(iid, reason="again", actor="worker1")
    with pytest.raises(ValidationError, match="mode must be one of remaining, end"):
        eng.resume_instance(iid, actor="worker1", mode="later")
    with pytest.raises(ValidationError, match="reason is required"):
        eng.suspend_instance(iid, reason=" ", actor="worker1")
    assert len(eng.history(cid)) == before[0] + 1 and timer_dues(eng, iid) == before[1]


def test_a_completed_process_cannot_be_suspended(eng):
    cid, iid = reablement(eng)
    eng.complete_task(the_task(eng, cid, "deliver_reablement")["id"],
                      {"outcome": "best_independence_reached", "summary": "Independent again"}, actor="c1")
    with pytest.raises(StateError, match="completed"):
        eng.suspend_instance(iid, reason="Admitted to hospital", actor="worker1")


def test_ending_on_resume_withdraws_tasks_and_timers_and_starts_the_next_process_in_one_step(eng):
    cid, iid = reablement(eng)
    eng.advance_clock(timedelta(days=21))
    eng.suspend_instance(iid, reason="Admitted to hospital", actor="worker1")
    eng.advance_clock(timedelta(days=10))
    res = eng.resume_instance(iid, actor="worker1", mode="end", reason="Discharged: referred to the hospital team",
                              details={"outcome": "admitted_to_hospital"},
                              then_start={"process_id": "hospital_discharge",
                                          "data": {"person": PERSON, "reason": "Discharge after a fall"}})
    assert res.status == "cancelled" and len(res.started_instances) == 1
    assert status(eng, cid, iid) == "cancelled"
    assert [(t["element_id"], t["team"]) for t in eng.list_tasks(case_id=cid)] == [
        ("respond_to_referral", "hospital_team")]
    types = [e["type"] for e in eng.history(cid) if e["step"] == events(eng, cid, "instance.resumed")[0]["step"]]
    assert types[:4] == ["instance.resumed", "task.left", "timer.cleared", "timer.cleared"]
    assert "instance.ended" in types and "instance.started" in types
    # the chronology (the case page, the replay view and the evidence pack) says who ended it and why
    from api import case_record

    texts = [e["text"] for e in case_record.chronology(case_record.load(eng, cid))]
    assert ("Reablement (short-term support) ended by worker1 instead of resuming: discharged: referred to the "
            "hospital team") in texts, texts
    eng.advance_clock(timedelta(days=60))
    assert [f for f in fired(eng, cid) if f in ("end_reminder", "period_ended")] == []
    report = replay_case(eng, cid)
    assert report.ok, str(report)
    assert eng.verify(cid)[1] == []


def test_the_command_line_suspends_and_resumes_and_names_who_did_it(eng, db_url, capsys):
    from engine.cli import main

    cid, iid = reablement(eng)
    assert main(["suspend", str(iid), "--reason", "Admitted to hospital", "--db", db_url]) != 0
    assert "--as USER" in capsys.readouterr().err
    assert main(["resume", str(iid), "--as", "worker1", "--db", db_url]) != 0
    assert "is not suspended" in capsys.readouterr().err
    assert main(["suspend", str(iid), "--reason", "Admitted to hospital", "--as", "worker1", "--db", db_url]) == 0
    assert "suspended at 2031-03-03" in capsys.readouterr().out
    assert status(eng, cid, iid) == "suspended"
    eng.advance_clock(timedelta(days=2))
    assert main(["resume", str(iid), "--as", "worker1", "--db", db_url]) == 0
    assert status(eng, cid, iid) == "waiting"
    assert [e["actor"] for e in eng.history(cid) if e["type"] in ("instance.suspended", "instance.resumed")] == [
        "worker1", "worker1"]
    assert timer_dues(eng, iid)["period_ended"].startswith("2031-04-16T09:00")


def test_the_inbox_reads_the_processes_paused_now_from_their_own_index(eng):
    """api/tasks.py `suspended_instances` (every inbox page): only the instances paused now, each once,
    read from the partial index `ix_instances_suspended` (migration 0031), not from every pause ever
    written (those of processes since resumed grow year on year: bench/paused_lookup_bench.py)."""
    from sqlalchemy import text

    from api.tasks import suspended_instances

    (_, first), (_, second), (_, third) = reablement(eng), reablement(eng), reablement(eng)
    for iid in (first, second, third):
        eng.suspend_instance(iid, reason="Admitted to hospital", actor="coordinator1")
    eng.resume_instance(second, actor="coordinator1")
    eng.suspend_instance(second, reason="Admitted again", actor="coordinator1")
    eng.resume_instance(third, actor="coordinator1")  # paused once, now running: not paused
    with eng.db.engine.connect() as conn:
        assert suspended_instances(conn) == sorted([first, second])
        query = "SELECT id FROM instances WHERE status = 'suspended'"
        if eng.db.is_postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a table this small would be read whole
            plan = " ".join(r[0] for r in conn.execute(text("EXPLAIN " + query)))
        else:
            plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + query)))
    assert "ix_instances_suspended" in plan, plan
