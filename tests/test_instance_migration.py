"""Moving running cases to a new version of their process: the dry run says which can move and
why not, each move is one transaction with an `instance.migrated` event, waiting timers keep
their due dates unless recomputed, and replay and the history check still hold afterwards."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import instance_migration as im
from engine.errors import NotFoundError, ValidationError
from engine.replay import replay_case
from engine.schema import events, instances, tasks, timers
from tests.conftest import DIAGRAMS, START

VARIANTS = Path(__file__).parent / "fixtures" / "migration"


def _three_tasks(make_engine, variant: str):
    """three_tasks v1 deployed, then `variant` as v2; returns the engine."""
    eng = make_engine("three_tasks.bpmn")
    return eng, lambda: eng.deploy([VARIANTS / variant])


def _at_screen(eng) -> int:
    case = eng.start("three_tasks").case_id
    [t] = eng.list_tasks(case_id=case)
    eng.complete_task(t["id"], {"contact": "phone"}, actor="advisor")
    return case


def _stored(eng) -> list[tuple]:
    """Everything a refused or failed migration must leave as it was."""
    with eng.db.engine.connect() as conn:
        return [tuple(conn.execute(select(instances.c.id, instances.c.version, instances.c.process_version_id,
                                          instances.c.state).order_by(instances.c.id)).all()),
                tuple(conn.execute(select(tasks.c.id, tasks.c.element_id, tasks.c.revision).order_by(tasks.c.id))),
                tuple(conn.execute(select(timers.c.task_id, timers.c.due_at).order_by(timers.c.task_id))),
                conn.execute(select(func.count()).select_from(events)).scalar()]


def test_a_case_waiting_at_a_task_moves_and_then_runs_the_new_path(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    waiting = eng.start("three_tasks").case_id
    deploy_v2()
    [before] = eng.list_tasks(case_id=waiting)
    before = eng.claim(before["id"], "advisor")

    plan = im.dry_run(eng, "three_tasks", 1, 2)
    [check] = plan.cases
    assert check.can_move and check.reasons == []
    assert check.current[0]["element_id"] == "record_contact" and check.current[0]["to"] == "record_contact"

    result = im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="triage before screening",
                        expected_versions=plan.expected_versions())
    assert [c.moved for c in result.cases] == [True]
    [after] = eng.list_tasks(case_id=waiting)
    assert after["id"] == before["id"] and after["assignee"] == "advisor"  # the same task, still claimed
    assert after["revision"] == before["revision"] + 1  # a form opened before the move is stale
    assert eng.get_case(waiting)["instances"][0]["status"] == "waiting"

    eng.complete_task(after["id"], {"contact": "phone"}, actor="advisor")
    assert [t["element_id"] for t in eng.list_tasks(case_id=waiting)] == ["triage"]  # the new step runs

    moved = [e for e in eng.history(waiting) if e["type"] == "instance.migrated"]
    assert len(moved) == 1 and moved[0]["actor"] == "owner"
    assert moved[0]["data"]["from_version"] == 1 and moved[0]["data"]["to_version"] == 2
    assert moved[0]["data"]["reason"] == "triage before screening"
    assert moved[0]["data"]["elements"] == [{"from": "record_contact", "to": "record_contact"}]
    with eng.db.engine.connect() as conn:  # the system chain says who moved which cases
        system = conn.execute(select(events.c.data).where(events.c.type == "instances.migrated")).scalar_one()
    assert json.loads(system)["moved"] == [eng.get_case(waiting)["reference"]]


def test_a_new_case_starts_on_the_new_version_while_a_refused_one_stays_on_the_old(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_screen_removed.bpmn")
    at_screen = _at_screen(eng)
    at_contact = eng.start("three_tasks").case_id
    deploy_v2()
    untouched = _stored(eng)

    plan = im.dry_run(eng, "three_tasks", 1, 2)
    by_case = {c.case_id: c for c in plan.cases}
    assert by_case[at_contact].can_move
    refused = by_case[at_screen]
    assert not refused.can_move
    assert refused.reasons == ["it is at 'Screen' (screen), which version 2 does not have: map screen to an "
                               "element of version 2 to move it"]
    assert _stored(eng) == untouched  # a dry run changes nothing

    result = im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="screening dropped")
    assert {c.case_id: c.moved for c in result.cases} == {at_contact: True, at_screen: False}
    assert result.refused[0].reasons == refused.reasons
    versions = {i["id"]: i for i in eng.get_case(at_screen)["instances"]}
    with eng.db.engine.connect() as conn:
        on = dict(conn.execute(select(instances.c.case_id, instances.c.process_version_id)).all())
    assert on[at_screen] != on[at_contact]
    assert list(versions.values())[0]["status"] == "waiting"
    [t] = eng.list_tasks(case_id=at_contact)
    eng.complete_task(t["id"], {}, actor="advisor")
    assert [t["element_id"] for t in eng.list_tasks(case_id=at_contact)] == ["decide"]  # v2 skips screening


def test_an_element_whose_kind_changed_is_refused_with_both_kinds_named(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_screen_scripted.bpmn")
    _at_screen(eng)
    deploy_v2()
    [check] = im.dry_run(eng, "three_tasks", 1, 2).cases
    assert check.reasons == ["it is at 'Screen' (screen), a user task in version 1 but a script task (screen) "
                             "in version 2"]
    [check] = im.dry_run(eng, "three_tasks", 1, 2, mapping={"screen": "end"}).cases  # "a end event" it said
    assert check.reasons == ["it is at 'Screen' (screen), a user task in version 1 but an end event (end) "
                             "in version 2"]


def test_a_renamed_element_is_matched_by_its_place_and_takes_the_new_form_and_team(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_screen_renamed.bpmn")
    case = _at_screen(eng)
    deploy_v2()
    plan = im.dry_run(eng, "three_tasks", 1, 2)
    [check] = plan.cases
    assert check.can_move
    assert {"from": "screen", "to": "screen_needs", "how": "matched by its place in the flow"} in plan.moves
    assert "the task 'Screen' (screen) will use the form 'screening_v2' instead of 'screening'" in check.notes
    assert "the task 'Screen' (screen) moves to the team 'team_manager'" in check.notes

    assert im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="screening renamed").cases[0].moved
    [t] = eng.list_tasks(case_id=case)
    assert (t["element_id"], t["name"], t["form"], t["team"]) == ("screen_needs", "Screen needs", "screening_v2",
                                                                 "team_manager")
    eng.complete_task(t["id"], {}, actor="manager")
    assert [t["element_id"] for t in eng.list_tasks(case_id=case)] == ["decide"]
    assert replay_case(eng, case).ok


def test_a_removed_element_moves_with_an_explicit_mapping_to_the_one_that_replaced_it(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_screen_removed.bpmn")
    case = _at_screen(eng)
    deploy_v2()
    plan = im.dry_run(eng, "three_tasks", 1, 2, mapping={"screen": "decide"})
    [check] = plan.cases
    assert check.can_move
    assert {"from": "screen", "to": "decide", "how": "your mapping"} in plan.moves

    result = im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="the manager screens now",
                        mapping={"screen": "decide"})
    assert result.cases[0].moved
    [t] = eng.list_tasks(case_id=case)
    assert (t["element_id"], t["team"]) == ("decide", "team_manager")
    eng.complete_task(t["id"], {}, actor="manager")
    assert eng.get_case(case)["instances"][0]["status"] == "completed"
    [moved] = [e for e in eng.history(case) if e["type"] == "instance.migrated"]
    assert moved["data"]["mapping"] == {"screen": "decide"}
    assert moved["data"]["elements"] == [{"from": "screen", "to": "decide"}]
    assert replay_case(eng, case).ok


def test_a_mapping_naming_a_missing_element_is_refused_before_anything_changes(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_screen_renamed.bpmn")
    _at_screen(eng)
    deploy_v2()
    untouched = _stored(eng)
    with pytest.raises(ValidationError, match="there is no element 'screening' in version 2 of 'three_tasks' "
                                              "to map 'screen' to"):
        im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="x", mapping={"screen": "screening"})
    with pytest.raises(ValidationError, match="there is no element 'nope' in version 1"):
        im.dry_run(eng, "three_tasks", 1, 2, mapping={"nope": "screen_needs"})
    assert _stored(eng) == untouched


@pytest.mark.parametrize("call, error, message", [
    (dict(process_id="no_such"), NotFoundError, "there is no process 'no_such'"),
    (dict(from_version=7), NotFoundError, "process 'three_tasks' has no version 7 \\(its versions are 1 to 2\\)"),
    (dict(to_version=1), ValidationError, "the source and target are both version 1"),
    (dict(from_version=0), ValidationError, "a version is a whole number from 1"),
    (dict(case_ids=["CASE-999999"]), NotFoundError, "no case CASE-999999"),
    (dict(reason="  "), ValidationError, "give a reason"),
    (dict(keep_timers=True, recompute_timers=True), ValidationError, "either to keep"),
])
def test_bad_input_is_a_clear_error_and_nothing_changes(make_engine, call, error, message):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    eng.start("three_tasks")
    deploy_v2()
    untouched = _stored(eng)
    args = dict(process_id="three_tasks", from_version=1, to_version=2, actor="owner", reason="why", **{})
    args.update(call)
    with pytest.raises(error, match=message):
        im.migrate(eng, args.pop("process_id"), args.pop("from_version"), args.pop("to_version"), **args)
    assert _stored(eng) == untouched


def test_a_case_that_changed_since_the_dry_run_is_refused_and_left_as_it_is(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    changed = eng.start("three_tasks").case_id
    steady = eng.start("three_tasks").case_id
    deploy_v2()
    plan = im.dry_run(eng, "three_tasks", 1, 2)
    [t] = eng.list_tasks(case_id=changed)
    eng.complete_task(t["id"], {}, actor="advisor")  # after the dry run
    late = eng.start("three_tasks", version=1).case_id  # not in the dry run at all
    before = _stored(eng)

    result = im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="triage",
                        expected_versions=plan.expected_versions())
    by_case = {c.case_id: c for c in result.cases}
    assert by_case[steady].moved
    ref = eng.get_case(changed)["reference"]
    assert not by_case[changed].moved
    assert by_case[changed].reasons[0].startswith(f"case {ref} changed since the dry run: it was at change 1 "
                                                  "and is now at change 2")
    assert not by_case[late].moved and "was not in the dry run" in by_case[late].reasons[0]
    after = _stored(eng)
    stale_ids = {i["id"] for c in (changed, late) for i in eng.get_case(c)["instances"]}
    assert [r for r in after[0] if r[0] in stale_ids] == [r for r in before[0] if r[0] in stale_ids]
    assert [e["type"] for e in eng.history(changed)][-1] != "instance.migrated"


def test_a_waiting_timer_whose_definition_changed_waits_for_the_owner_to_choose(make_engine):
    eng = make_engine("deadline.bpmn")
    case = eng.start("deadline").case_id
    eng.deploy([VARIANTS / "deadline_four_weeks.bpmn"])
    [check] = im.dry_run(eng, "deadline", 1, 2).cases
    assert not check.can_move
    assert check.reasons == ["the timer '6 weeks' (six_weeks) is waiting (due 14 April 2031 at 09:00 UTC) and its "
                             "definition changed from P42D to P28D: choose to keep its due date or to recompute it"]
    assert check.timers[0]["due_at"] == "2031-04-14T09:00:00.000000+00:00"
    assert not im.migrate(eng, "deadline", 1, 2, actor="owner", reason="x").cases[0].moved
    assert im.dry_run(eng, "deadline", 1, 2, keep_timers=True).cases[0].can_move
    assert im.impact(eng, "deadline", 2)["versions"][0] == {"version": 1, "running": 1, "movable": 0,
                                                           "timers_only": 1}
    assert case


def test_a_kept_timer_fires_at_exactly_its_original_due_time(make_engine):
    eng = make_engine("deadline.bpmn")
    case = eng.start("deadline").case_id
    eng.deploy([VARIANTS / "deadline_four_weeks.bpmn"])
    eng.advance_clock(timedelta(days=1))
    result = im.migrate(eng, "deadline", 1, 2, actor="owner", reason="shorter deadline for new cases",
                        keep_timers=True)
    [moved] = result.cases
    six = next(t for t in moved.timers if t["element_id"] == "six_weeks")
    assert six["due_before"] == six["due_after"] == "2031-04-14T09:00:00.000000+00:00"
    [task] = eng.list_tasks(case_id=case)
    assert task["due_at"] == START + timedelta(days=35)  # the earliest boundary timer, as before

    eng.advance_clock(to=START + timedelta(days=28))  # where a recomputed timer would have fired
    eng.advance_clock(to=START + timedelta(days=42) - timedelta(microseconds=1))
    assert [t["element_id"] for t in eng.list_tasks(case_id=case)] == ["reablement"]
    eng.advance_clock(to=START + timedelta(days=42))
    assert [t["element_id"] for t in eng.list_tasks(case_id=case)] == ["review_overrun"]
    assert replay_case(eng, case).ok
    assert eng.verify() == (len(eng.history(case)) + _system_events(eng), [])


def test_a_recomputed_timer_counts_the_new_duration_from_when_it_started(make_engine):
    eng = make_engine("deadline.bpmn")
    case = eng.start("deadline").case_id
    eng.deploy([VARIANTS / "deadline_four_weeks.bpmn"])
    eng.advance_clock(timedelta(days=1))
    result = im.migrate(eng, "deadline", 1, 2, actor="owner", reason="four weeks", recompute_timers=True)
    six = next(t for t in result.cases[0].timers if t["element_id"] == "six_weeks")
    assert six["due_after"] == "2031-03-31T09:00:00.000000+00:00"  # START + 28 days, not migration day + 28
    reminder = next(t for t in result.cases[0].timers if t["element_id"] == "reminder")
    assert reminder["due_before"] == reminder["due_after"]  # unchanged definition: untouched
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(func.min(timers.c.due_at)).where(timers.c.element_id == "six_weeks")).scalar() \
            .replace(tzinfo=START.tzinfo) == START + timedelta(days=28)
    eng.advance_clock(to=START + timedelta(days=28) - timedelta(microseconds=1))
    assert [t["element_id"] for t in eng.list_tasks(case_id=case)] == ["reablement"]
    eng.advance_clock(to=START + timedelta(days=28))
    assert [t["element_id"] for t in eng.list_tasks(case_id=case)] == ["review_overrun"]
    assert replay_case(eng, case).ok


def _system_events(eng) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events).where(events.c.chain == "system")).scalar()


def test_replay_and_the_history_check_hold_after_a_move(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    case = _at_screen(eng)
    other = eng.start("three_tasks").case_id
    deploy_v2()
    im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="triage")
    for c in (case, other):
        for t in eng.list_tasks(case_id=c):
            eng.complete_task(t["id"], {}, actor="advisor")
    report = replay_case(eng, case)
    assert report.ok, str(report)
    assert replay_case(eng, other).ok
    checked, findings = eng.verify()
    assert findings == [] and checked > 0


def test_replay_notices_a_move_whose_recorded_mapping_was_altered(make_engine):
    from tests.test_history import _bypass_triggers

    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_screen_removed.bpmn")
    case = _at_screen(eng)
    deploy_v2()
    im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="replaced", mapping={"screen": "decide"})
    moved = next(e for e in eng.history(case) if e["type"] == "instance.migrated")
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, :old, :new) WHERE id = :id",
                     old='"mapping":{"screen":"decide"}', new='"mapping":{"screen":"record_contact"}',
                     id=moved["id"])
    report = replay_case(eng, case)
    assert not report.ok
    assert report.divergence.seq == moved["seq"]


def test_only_the_chosen_cases_move_and_a_chosen_case_not_on_the_version_is_said_so(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    first = eng.start("three_tasks").case_id
    second = eng.start("three_tasks").case_id
    deploy_v2()
    third = eng.start("three_tasks").case_id  # on version 2 already
    ref = eng.get_case(first)["reference"]
    result = im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="try one", case_ids=[ref, third])
    by_case = {c.case_id: c for c in result.cases}
    assert set(by_case) == {first, third}
    assert by_case[first].moved
    assert by_case[third].reasons == ["its 'three_tasks' process is waiting on version 2, not open on version 1"]
    assert im.dry_run(eng, "three_tasks", 1, 2).cases[0].case_id == second


def test_impact_of_undeployed_files_counts_cases_per_version(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    _at_screen(eng)
    eng.start("three_tasks")
    deploy_v2()
    eng.start("three_tasks")
    # the draft drops screening: the case at screen cannot move, the ones at record_contact can
    draft = {"three_tasks.bpmn": (VARIANTS / "three_tasks_screen_removed.bpmn").read_bytes()}
    report = im.impact(eng, "three_tasks", draft)
    assert report["target"] == "the draft"
    assert [(v["version"], v["running"], v["movable"]) for v in report["versions"]] == [(1, 2, 1), (2, 1, 1)]
    with eng.db.engine.connect() as conn:  # the review page passes its own connection
        assert im.impact(conn, "three_tasks", 2)["versions"][0]["movable"] == 2


def test_a_case_with_an_open_incident_cannot_move(make_engine, calls):
    eng = make_engine("budget.bpmn")
    calls.fail_budget = True
    res = eng.start("budget", data={"points": 60})
    assert res.status == "error"
    budget = (DIAGRAMS / "budget.bpmn").read_bytes().replace(b"Approve", b"Approve the budget")
    eng.deploy(files={"budget.bpmn": budget})
    [check] = im.dry_run(eng, "budget", 1, 2).cases
    assert check.reasons[0].startswith("it has an open incident")


def test_the_command_line_dry_runs_moves_and_exits_1_when_a_case_could_not_move(make_engine, db_url, capsys):
    from engine.cli import main

    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_screen_removed.bpmn")
    at_screen = _at_screen(eng)
    eng.start("three_tasks")
    deploy_v2()
    ref = eng.get_case(at_screen)["reference"]
    base = ["migrate", "three_tasks", "--from", "1", "--to", "2", "--db", db_url]

    assert main(base + ["--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 open case(s) can move" in out
    assert f"{ref} (at screen): cannot move" in out

    untouched = _stored(eng)
    assert main(base + ["--map", "screen=nowhere", "--as", "owner", "--reason", "x"]) == 1
    assert "there is no element 'nowhere' in version 2" in capsys.readouterr().err
    assert main(base + ["--map", "screen", "--as", "owner", "--reason", "x"]) == 1
    assert "must be OLD=NEW" in capsys.readouterr().err
    assert main(base + ["--map", "screen=decide", "--reason", "x"]) == 1
    assert "--as USER" in capsys.readouterr().err
    assert main(base + ["--map", "screen=decide", "--as", "owner"]) == 1
    assert "give a reason" in capsys.readouterr().err
    assert main(["migrate", "three_tasks", "--from", "2", "--to", "2", "--db", db_url, "--dry-run"]) == 1
    assert "both version 2" in capsys.readouterr().err
    assert _stored(eng) == untouched

    assert main(base + ["--map", "screen=decide", "--as", "owner", "--reason", "renamed", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["moved"], result["refused"]) == (2, 0)
    assert main(["replay", str(at_screen), "--db", db_url]) == 0
    assert main(["audit", "verify", "--db", db_url]) == 0


def test_a_multi_instance_or_called_process_in_progress_cannot_move_until_it_is_done(make_engine):
    eng = make_engine("three_tasks.bpmn")
    eng.deploy([VARIANTS / "visits.bpmn"])
    case = eng.start("visits").case_id
    assert [t["element_id"] for t in eng.list_tasks(case_id=case)] == ["visit", "visit"]
    eng.deploy(files={"visits.bpmn": (VARIANTS / "visits.bpmn").read_bytes().replace(b'"Visit"', b'"Home visit"')})
    [check] = im.dry_run(eng, "visits", 1, 2).cases
    assert check.reasons == ["'Visit' (visit) runs once per item and is part-way through; a case can move only "
                             "before or after a multi-instance activity"]
    for t in eng.list_tasks(case_id=case):
        eng.complete_task(t["id"], {}, actor="worker")
    [check] = im.dry_run(eng, "visits", 1, 2).cases  # now inside the called three_tasks process
    assert check.reasons == ["'Follow up' (follow_up) runs another process that is still in progress; a case "
                             "can move only when no called process or subprocess is running"]
    before = _stored(eng)
    assert not im.migrate(eng, "visits", 1, 2, actor="owner", reason="x").cases[0].moved
    assert _stored(eng)[:3] == before[:3]


def test_the_command_line_moves_cases_and_back_again_when_decisions_are_deployed(make_engine, db_url, capsys):
    """`carepath migrate` runs in a fresh process: its plan and the case it loads must be built from the same
    spec. With a decision deployed (as every council's database has) the first and the later builds of a version
    without business rule tasks used to differ, and every case was refused with a bare KeyError while the dry run
    said it could move; moving back (undoing a move) failed the same way."""
    from engine.cli import main

    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    eng.deploy([Path(__file__).parent / "fixtures" / "care_band.dmn"])
    case = _at_screen(eng)
    deploy_v2()
    ref = eng.get_case(case)["reference"]
    there = ["migrate", "three_tasks", "--from", "1", "--to", "2", "--db", db_url, "--as", "owner", "--json"]
    assert main(there + ["--reason", "triage added"]) == 0, capsys.readouterr().out
    assert json.loads(capsys.readouterr().out)["moved"] == 1
    back = ["migrate", "three_tasks", "--from", "2", "--to", "1", "--db", db_url, "--as", "owner", "--json"]
    assert main(back + ["--dry-run"]) == 0
    assert f'"{ref}"' in capsys.readouterr().out
    assert main(back + ["--reason", "undo: triage is not ready"]) == 0, capsys.readouterr().out
    assert json.loads(capsys.readouterr().out)["moved"] == 1
    moved = [e["data"] for e in eng.history(case) if e["type"] == "instance.migrated"]
    assert [(m["from_version"], m["to_version"]) for m in moved] == [(1, 2), (2, 1)]
    assert main(["replay", str(case), "--db", db_url]) == 0
    assert main(["audit", "verify", "--db", db_url]) == 0


def test_a_move_holds_when_the_version_was_built_again_after_the_dry_run(make_engine):
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    case = _at_screen(eng)
    deploy_v2()
    plan = im.plan_for(eng, "three_tasks", 1, 2)
    from engine.bpmn import _BUILT_SPECS

    # a decision deployed meanwhile, or the caches let the version go: the case is loaded with a new build of it
    _BUILT_SPECS.clear()
    eng.specs._get.cache_clear()
    eng._live.clear()
    [instance] = eng.get_case(case)["instances"]
    result = im.migrate_instance(eng, plan, instance["id"], actor="owner", reason="triage")
    assert result.moved, result.reasons
    [moved] = [e["data"] for e in eng.history(case) if e["type"] == "instance.migrated"]
    assert (moved["from_version"], moved["to_version"]) == (1, 2)


def test_a_moved_case_whose_process_was_started_by_another_still_replays(make_engine, calls):
    """Most council cases run processes started by another (the front door starts reablement): moving one to a
    new version put that version in the replay's database, the replay started the child on it instead of the
    version the history records, and the case no longer matched its history (the auditor's integrity panel
    said "Does not match" for every moved case)."""
    eng = make_engine("budget.bpmn", "annual_review.bpmn")
    res = eng.start("budget", data={"points": 60})
    [approve] = eng.list_tasks(case_id=res.case_id)
    eng.complete_task(approve["id"], {"approved": True}, actor="manager1")
    [plan] = eng.list_tasks(case_id=res.case_id)
    eng.complete_task(plan["id"], {"agreed": True}, actor="sw1")  # starts annual_review: it waits a year
    renamed = (DIAGRAMS / "annual_review.bpmn").read_bytes().replace(b'name="Review support plan"',
                                                                      b'name="Review the support plan"')
    eng.deploy(files={"annual_review.bpmn": renamed})
    result = im.migrate(eng, "annual_review", 1, 2, actor="owner", reason="clearer task name")
    assert [c.moved for c in result.cases] == [True]
    report = replay_case(eng, res.case_id)
    assert report.ok, str(report)
    eng.advance_clock(timedelta(days=370))
    [review] = eng.list_tasks(case_id=res.case_id)
    assert review["name"] == "Review the support plan"
    eng.complete_task(review["id"], {"needs_changed": False}, actor="sw1")  # the next review starts on version 2
    report = replay_case(eng, res.case_id)
    assert report.ok, str(report)


def test_a_task_with_waiting_boundary_timers_cannot_be_mapped_to_a_task_without_them(make_engine):
    """Mapping the task a case waits at onto another task left its boundary timers waiting: the case moved, and
    when the 6-week timer fired it cancelled the other task (which has no such timer) and went on to the overrun
    review. The dry run now refuses, naming the timer, the task it waits on and where it is attached."""
    eng = make_engine("deadline.bpmn")
    case = eng.start("deadline").case_id
    eng.deploy(files={"deadline.bpmn": (DIAGRAMS / "deadline.bpmn").read_bytes().replace(
        b'name="Review overrun"', b'name="Review the overrun"')})
    untouched = _stored(eng)
    [check] = im.dry_run(eng, "deadline", 1, 2, mapping={"reablement": "review_overrun"}).cases
    assert not check.can_move
    assert any(r.startswith("'6 weeks' (six_weeks) waits on 'Deliver reablement' (reablement), which moves to "
                            "'Review the overrun' (review_overrun), but in version 2 it is attached to "
                            "'Deliver reablement' (reablement): it would fire on the wrong step")
               for r in check.reasons)
    result = im.migrate(eng, "deadline", 1, 2, actor="owner", reason="x", mapping={"reablement": "review_overrun"})
    assert not result.cases[0].moved
    assert _stored(eng)[:3] == untouched[:3]  # the case, its task and timers as they were (the run is audited)
    assert im.dry_run(eng, "deadline", 1, 2).cases[0].can_move  # without the mapping the case moves as it is
    assert [t["element_id"] for t in eng.list_tasks(case_id=case)] == ["reablement"]


def test_the_dry_run_says_a_timer_added_to_the_task_a_case_waits_at_will_not_start_for_it(make_engine):
    """An owner adds a 3-week escalation to "Deliver reablement" and moves the cases waiting there: they moved,
    and the new timer never started for them, while the dry run said nothing (timers start when a case reaches
    the task). The dry run now says so for each such case."""
    eng = make_engine("deadline.bpmn")
    eng.start("deadline")
    extra = b"""<bpmn:boundaryEvent id="three_weeks" name="3 weeks" attachedToRef="reablement" cancelActivity="false">
      <bpmn:outgoing>f9</bpmn:outgoing>
      <bpmn:timerEventDefinition id="three_weeks_def">
        <bpmn:timeDuration>P21D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:endEvent id="escalated"><bpmn:incoming>f9</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f9" sourceRef="three_weeks" targetRef="escalated"/>
  </bpmn:process>"""
    eng.deploy(files={"deadline.bpmn": (DIAGRAMS / "deadline.bpmn").read_bytes().replace(b"</bpmn:process>", extra)})
    [check] = im.dry_run(eng, "deadline", 1, 2).cases
    assert check.can_move
    assert check.notes == ["'3 weeks' (three_weeks), attached to 'Deliver reablement' (reablement) in version 2, will "
                           "not start for this case: it starts only when a case reaches the task"]


def test_an_unexpected_failure_is_said_in_words_logged_without_detail_and_changes_nothing(make_engine, monkeypatch,
                                                                                          caplog):
    """A move that failed inside the library showed the owner "it could not be moved (KeyError:
    <SpiffWorkflow.bpmn.specs.control.BpmnStartTask object at 0x7f…>)"."""
    eng, deploy_v2 = _three_tasks(make_engine, "three_tasks_triage_added.bpmn")
    case = _at_screen(eng)
    deploy_v2()
    untouched = _stored(eng)

    class Spec:
        def __repr__(self) -> str:
            return "<SpiffWorkflow.bpmn.specs.control.BpmnStartTask object at 0x7f95fc40a290>"

    def fail(*_args, **_kwargs):
        raise KeyError(Spec())

    monkeypatch.setattr(im, "_rewrite", fail)
    [result] = im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="triage").cases
    assert not result.moved
    [reason] = result.reasons
    assert reason.startswith("it could not be moved because of an unexpected error in the engine (KeyError, logged "
                             "for process instance ") and "nothing was changed" in reason
    assert "object at 0x" not in reason
    assert _stored(eng)[:3] == untouched[:3]
    assert [r.getMessage() for r in caplog.records if r.name == "carepath.migration"] == [
        f"moving instance {result.instance_id} failed: KeyError"]
    assert eng.get_case(case)["instances"][0]["status"] == "waiting"
