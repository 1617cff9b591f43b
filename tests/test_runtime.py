"""The engine's steps: starting, completing, timers on the simulated clock, handlers,
incidents and retries, child processes, versions — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import ClockError, ConflictError, NotFoundError, StateError, ValidationError
from engine.forms import FormLibrary
from engine.schema import instances, timers
from tests.conftest import DIAGRAMS, START


def types(engine, case_id):
    return [e["type"] for e in engine.history(case_id)]


def test_start_runs_to_first_user_task_and_routes_it_to_its_team(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks", data={"name": "Harriet Jones"}, actor="advisor1")
    assert res.status == "waiting"
    [task] = eng.list_tasks(case_id=res.case_id)
    assert (task["element_id"], task["name"], task["team"], task["form"]) == (
        "record_contact", "Record contact", "front_door", "contact")
    assert eng.list_tasks(team="front_door")[0]["id"] == task["id"]
    assert eng.list_tasks(team="team_manager") == []
    assert eng.get_case(res.case_id)["title"] == "Harriet Jones"
    assert types(eng, res.case_id) == ["case.created", "instance.started", "task.ready"]


def test_completing_every_task_completes_the_instance_and_keeps_only_its_data(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    for expected, data in [("record_contact", {"reason": "falls"}), ("screen", {"likely_eligible": True}),
                           ("decide", {"route": "reablement"})]:
        [task] = eng.list_tasks(case_id=res.case_id)
        assert task["element_id"] == expected
        step = eng.complete_task(task["id"], data, actor="worker")
    assert step.status == "completed"
    with eng.db.engine.connect() as conn:
        row = conn.execute(select(instances).where(instances.c.id == res.instance_id)).one()
    assert row.state is None  # nothing left to run: the saved workflow is dropped
    assert eng.instance_snapshot(res.instance_id)["data"]["route"] == "reablement"
    completed = [e for e in eng.history(res.case_id) if e["type"] == "task.completed"]
    assert [e["data"]["data"] for e in completed] == [{"reason": "falls"}, {"likely_eligible": True},
                                                      {"route": "reablement"}]
    assert {e["actor"] for e in completed} == {"worker"}
    assert types(eng, res.case_id)[-1] == "instance.completed"


def test_a_task_completed_twice_gets_a_conflict_naming_who_did_it(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    task_id = res.ready_tasks[0]["id"]
    eng.complete_task(task_id, {"reason": "x"}, actor="alice")
    before = eng.history(res.case_id)
    with pytest.raises(ConflictError, match="already completed by alice"):
        eng.complete_task(task_id, {"reason": "y"}, actor="bob")
    assert eng.history(res.case_id) == before


def test_unknown_ids_are_reported_as_not_found(make_engine):
    eng = make_engine("three_tasks.bpmn")
    with pytest.raises(NotFoundError, match="no open task"):
        eng.complete_task("00000000-0000-0000-0000-000000000000", {})
    with pytest.raises(NotFoundError, match="'nope' is not deployed"):
        eng.start("nope")
    with pytest.raises(NotFoundError, match="no case 999"):
        eng.start("three_tasks", case_id=999)
    with pytest.raises(NotFoundError):
        eng.retry(12345)


def test_stale_revision_is_refused_and_nothing_changes(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    task_id = res.ready_tasks[0]["id"]
    opened = eng.get_task(task_id)["revision"]
    eng.claim(task_id, "alice")
    with pytest.raises(ConflictError, match="changed since you opened it"):
        eng.complete_task(task_id, {"reason": "late"}, actor="bob", expected_revision=opened)
    assert eng.get_task(task_id)["assignee"] == "alice"
    with pytest.raises(ConflictError, match="already claimed by alice"):
        eng.claim(task_id, "bob")


def test_form_errors_are_listed_per_field_and_the_task_stays_open(make_engine):
    forms = FormLibrary({"contact": {"type": "object", "required": ["reason", "contact_date"],
                                     "properties": {"reason": {"type": "string", "minLength": 3},
                                                    "contact_date": {"type": "string", "format": "date"}}},
                          "screening": {"type": "object"}, "decision": {"type": "object"}})
    eng = make_engine("three_tasks.bpmn", forms=forms)
    res = eng.start("three_tasks")
    task_id = res.ready_tasks[0]["id"]
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task_id, {"reason": "x"})
    fields = {e["field"] for e in err.value.errors}
    assert fields == {"reason", "contact_date"}
    assert eng.get_task(task_id)["element_id"] == "record_contact"
    eng.complete_task(task_id, {"reason": "falls at home", "contact_date": "2031-03-03"})


def test_boundary_timers_follow_the_simulated_clock(make_engine, calls):
    eng = make_engine("deadline.bpmn")
    res = eng.start("deadline")
    [task] = eng.list_tasks(case_id=res.case_id)
    assert task["due_at"] == START + timedelta(days=35)  # the earliest timer on it: the reminder
    assert eng.advance_clock(timedelta(days=34)) == 0
    assert calls.log == []
    eng.advance_clock(timedelta(days=1))
    assert [c[0] for c in calls.log] == ["notify"]
    assert calls.log[0][1]["at"] == START + timedelta(days=35)  # handler saw the injected clock
    [task] = eng.list_tasks(case_id=res.case_id)
    assert task["element_id"] == "reablement" and task["due_at"] == START + timedelta(days=42)
    eng.advance_clock(timedelta(days=8))
    [task] = eng.list_tasks(case_id=res.case_id)
    assert (task["element_id"], task["team"]) == ("review_overrun", "team_manager")
    fired = [e["data"]["element_id"] for e in eng.history(res.case_id) if e["type"] == "timer.fired"]
    assert fired == ["reminder", "six_weeks"]
    at = {e["data"]["element_id"]: e["at"] for e in eng.history(res.case_id) if e["type"] == "timer.fired"}
    assert at["six_weeks"].startswith((START + timedelta(days=42)).date().isoformat())
    assert eng.now() == START + timedelta(days=43)


def test_advancing_fires_timers_in_due_order_across_cases(make_engine):
    eng = make_engine("deadline.bpmn", "annual_review.bpmn")
    late = eng.start("annual_review", data={"amount": 1})
    early = eng.start("deadline")
    eng.advance_clock(timedelta(days=400))
    fired = []
    for case_id in (late.case_id, early.case_id):
        fired += [(e["at"], e["data"]["element_id"]) for e in eng.history(case_id) if e["type"] == "timer.fired"]
    assert [el for _, el in sorted(fired)] == ["reminder", "six_weeks", "wait_year"]


def test_finishing_before_the_deadline_clears_its_timers(make_engine):
    eng = make_engine("deadline.bpmn")
    res = eng.start("deadline")
    eng.complete_task(res.ready_tasks[0]["id"], {"outcome": "independent"})
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(timers)).all() == []
    assert eng.advance_clock(timedelta(days=60)) == 0
    assert eng.get_case(res.case_id)["instances"][0]["status"] == "completed"


def test_a_real_clock_database_refuses_to_be_advanced(make_engine):
    eng = make_engine("three_tasks.bpmn", simulated=False)
    with pytest.raises(ClockError, match="real clock"):
        eng.advance_clock(timedelta(days=1))


def test_timers_that_fell_due_while_down_fire_at_start_up(db_url, calls):
    from engine.clock import FixedClock
    from engine.runtime import Engine
    from engine.worker import fire_once

    wall = FixedClock(START)
    eng = Engine(db_url, registry=calls.registry(), forms=FormLibrary(), wall_clock=wall)
    eng.init()
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    res = eng.start("deadline")
    eng.db.dispose()
    wall.set(START + timedelta(days=50))  # everything was down for seven weeks
    restarted = Engine(db_url, registry=calls.registry(), forms=FormLibrary(), wall_clock=wall)
    assert fire_once(restarted) == 1
    [task] = restarted.list_tasks(case_id=res.case_id)
    assert task["element_id"] == "review_overrun"
    fired = [e["data"]["element_id"] for e in restarted.history(res.case_id) if e["type"] == "timer.fired"]
    assert fired == ["reminder", "six_weeks"]
    restarted.db.dispose()


def test_service_task_results_drive_the_gateway(make_engine):
    eng = make_engine("budget.bpmn", "annual_review.bpmn")
    small = eng.start("budget", data={"points": 10})
    big = eng.start("budget", data={"points": 60})
    assert [t["element_id"] for t in small.ready_tasks] == ["agree_plan"]
    assert [t["element_id"] for t in big.ready_tasks] == ["approve"]
    called = [e["data"] for e in eng.history(big.case_id) if e["type"] == "handler.called"]
    assert called == [{"element_id": "calculate", "handler": "calculate_budget", "inputs": {"points": 60},
                       "output": {"amount": 24000, "points": 60}}]


def test_a_failing_handler_opens_an_incident_and_retry_resumes(make_engine, calls):
    eng = make_engine("budget.bpmn", "annual_review.bpmn")
    calls.fail_budget = True
    res = eng.start("budget", data={"points": 60})
    assert res.status == "error"
    assert res.incident["handler"] == "calculate_budget"
    assert res.incident["inputs"] == {"points": 60}
    assert "rates table unavailable" in res.incident["message"]
    [inc] = eng.incidents()
    assert inc["element_id"] == "calculate" and inc["instance_id"] == res.instance_id
    assert eng.list_tasks(case_id=res.case_id) == []
    assert "budget" not in eng.instance_snapshot(res.instance_id)["data"]  # nothing half-applied
    calls.fail_budget = False
    again = eng.retry(res.instance_id, actor="admin")
    assert again.status == "waiting"
    assert [t["element_id"] for t in again.ready_tasks] == ["approve"]
    assert eng.incidents() == []
    assert eng.incidents(open_only=False)[0]["resolved_by"] == "admin"
    kinds = types(eng, res.case_id)
    assert kinds.index("handler.failed") < kinds.index("incident.opened") < kinds.index("incident.retried")
    assert kinds.count("handler.called") == 1


def test_retry_refuses_an_instance_that_is_not_in_error(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    with pytest.raises(StateError, match="not in error"):
        eng.retry(res.instance_id)


def test_a_process_starts_its_review_cycle_as_a_new_instance_of_the_same_case(make_engine):
    eng = make_engine("budget.bpmn", "annual_review.bpmn")
    res = eng.start("budget", data={"points": 10})
    step = eng.complete_task(res.ready_tasks[0]["id"], {"agreed": True})
    assert step.status == "completed"
    [child] = step.started_instances
    case = eng.get_case(res.case_id)
    assert [(i["process_id"], i["status"], i["parent_instance_id"]) for i in case["instances"]] == [
        ("budget", "completed", None), ("annual_review", "waiting", res.instance_id)]
    eng.advance_clock(timedelta(days=366))
    [task] = eng.list_tasks(case_id=res.case_id)
    assert task["element_id"] == "review" and task["instance_id"] == child
    eng.complete_task(task["id"], {"needs_changed": False})
    statuses = [i["status"] for i in eng.get_case(res.case_id)["instances"]]
    assert statuses == ["completed", "completed", "waiting"]  # each review is its own small instance


def test_identical_redeploy_is_a_no_op_and_running_instances_keep_their_version(make_engine, tmp_path):
    eng = make_engine("three_tasks.bpmn")
    again = eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
    assert [(r.version, r.created) for r in again] == [(1, False)]
    running = eng.start("three_tasks")
    changed = (DIAGRAMS / "three_tasks.bpmn").read_text().replace('name="Screen"', 'name="Screen the contact"')
    (tmp_path / "three_tasks.bpmn").write_text(changed)
    [v2] = eng.deploy([tmp_path / "three_tasks.bpmn"])
    assert (v2.version, v2.created) == (2, True)
    eng.complete_task(running.ready_tasks[0]["id"], {})
    [task] = eng.list_tasks(case_id=running.case_id)
    assert task["name"] == "Screen"  # still version 1
    fresh = eng.start("three_tasks")
    eng.complete_task(fresh.ready_tasks[0]["id"], {})
    [task] = eng.list_tasks(case_id=fresh.case_id)
    assert task["name"] == "Screen the contact"
    old = eng.start("three_tasks", version=1)
    eng.complete_task(old.ready_tasks[0]["id"], {})
    assert eng.list_tasks(case_id=old.case_id)[0]["name"] == "Screen"


def test_an_uninitialised_database_says_so(tmp_path, calls):
    from engine.runtime import Engine

    eng = Engine(f"sqlite:///{tmp_path / 'empty.db'}", registry=calls.registry(), forms=FormLibrary())
    with pytest.raises(StateError, match="carepath init"):
        eng.start("three_tasks")


def test_completing_a_task_before_the_timer_job_runs_beats_its_passed_deadline(db_url, calls):
    from engine.clock import FixedClock
    from engine.runtime import Engine

    wall = FixedClock(START)
    eng = Engine(db_url, registry=calls.registry(), forms=FormLibrary(), wall_clock=wall)
    eng.init()
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    res = eng.start("deadline")
    wall.set(START + timedelta(days=50))  # both timers are due, but no worker has fired them yet
    step = eng.complete_task(res.ready_tasks[0]["id"], {"outcome": "independent"}, actor="rc1")
    assert step.status == "completed"
    kinds = [e["type"] for e in eng.history(res.case_id)]
    assert "timer.fired" not in kinds and kinds.count("timer.cleared") == 2
    assert calls.log == []  # the reminder never went out
    eng.db.dispose()


def test_a_task_withdrawn_by_its_deadline_says_so_when_someone_tries_to_complete_it(make_engine):
    eng = make_engine("deadline.bpmn")
    res = eng.start("deadline")
    task_id = res.ready_tasks[0]["id"]
    eng.advance_clock(timedelta(days=43))
    with pytest.raises(ConflictError, match="withdrawn"):
        eng.complete_task(task_id, {"outcome": "late"}, actor="rc1")


def test_a_process_keeps_the_persons_details_on_the_case_for_every_later_process(make_engine, calls):
    eng = make_engine("record_person.bpmn", "three_tasks.bpmn")
    res = eng.start("record_person")
    person = {"name": "Peter Clarke", "date_of_birth": "1949-05-02"}
    eng.complete_task(res.ready_tasks[0]["id"], {"person": person}, actor="advisor1")
    assert eng.get_case(res.case_id)["data"] == {"person": person}
    assert calls.log[-1] == ("notify", {"message": "hello Peter Clarke", "at": START})  # seen in the same step
    updated = [e for e in eng.history(res.case_id) if e["type"] == "case.updated"]
    assert [u["data"]["data"] for u in updated] == [{"person": person}]
    later = eng.start("three_tasks", case_id=res.case_id)  # a later process of the same case
    assert later.case_id == res.case_id and eng.get_case(res.case_id)["data"]["person"]["name"] == "Peter Clarke"
    from engine.replay import replay_case

    assert replay_case(eng, res.case_id).ok
