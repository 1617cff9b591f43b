"""engine/timeline.py: a case's history as numbered steps and where every instance stood at each.

The main case runs through the operating model's own diagrams and handlers (processes/,
handlers/): a front door contact goes to reablement, reablement ends with needs remaining,
the needs assessment finds the person eligible, the personal budget is worked out, the plan
is written and signed off, and the review waits. Smaller cases on tests/diagrams/ cover
incidents and a move to another version.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from api.demo_cases import _assessment, _contact, _plan, _ras
from engine import instance_migration as im
from engine import timeline
from engine.errors import NotFoundError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from tests.conftest import START
from tests.test_history import _bypass_triggers

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = Path(__file__).parent / "fixtures" / "migration"
JOURNEY = ["front_door", "reablement", "needs_assessment", "personal_budget", "financial_assessment", "support_plan",
           "review"]


def journey_engine(db_url: str) -> Engine:
    eng = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init(simulated_start=START)
    eng.deploy([ROOT / "processes"])
    return eng


def drive_journey(eng: Engine) -> int:
    """Front door -> reablement -> needs assessment -> personal budget -> plan signed off; returns the case id."""
    def complete(case_id: int, element: str, data: dict, actor: str) -> None:
        [task] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element]
        eng.claim(task["id"], actor)
        eng.complete_task(task["id"], data, actor=actor)

    case_id = eng.start("front_door", actor="front-door-advisor", title="Joan Barker").case_id
    complete(case_id, "record_contact", _contact(
        "Joan Barker", 78, "4 Mill Lane, Northby", "Falls at home since her husband died",
        outcomes_unable=["personal_hygiene", "being_appropriately_clothed", "using_the_home_safely"]),
        "front-door-advisor")
    complete(case_id, "plan_reablement", {"goals": ["Wash and dress without help"], "setting": "home",
                                          "start_type": "planned", "visits_per_day": 2}, "reablement-coordinator")
    eng.advance_clock(timedelta(days=20))
    complete(case_id, "deliver_reablement", {"outcome": "needs_remain", "summary": "Needs help with meals"},
             "reablement-coordinator")
    complete(case_id, "assess_needs", _assessment("Joan Barker", "personal_hygiene", "managing_nutrition",
                                                  "using_home_safely"), "social-worker")
    complete(case_id, "score_needs", _ras(personal_care="moderate", nutrition="low"), "social-worker")
    complete(case_id, "write_plan", _plan("Demo social worker"), "social-worker")
    complete(case_id, "sign_off_plan", {"signed_off": True}, "team-manager")
    return case_id


@pytest.fixture
def journey(db_url):
    eng = journey_engine(db_url)
    case_id = drive_journey(eng)
    yield eng, case_id
    timeline.clear_cache()
    eng.db.dispose()


def _all_states(eng, case_id):
    total = timeline.case_timeline(eng, case_id)["total_steps"]
    return [timeline.state_at(eng, case_id, n) for n in range(1, total + 1)]


def _by_process(state):
    return {i["process_id"]: i for i in state["instances"]}


# ---------------------------------------------------------------------- the journey
def test_the_path_grows_step_by_step_on_each_diagram_of_a_front_door_to_plan_case(journey):
    eng, case_id = journey
    states = _all_states(eng, case_id)
    assert all(s["replayed"] and s["divergence"] is None for s in states)
    # each process appears at the step that started it and keeps its place after
    first_seen = {}
    for s in states:
        for pid in _by_process(s):
            first_seen.setdefault(pid, s["step"])
    assert sorted(first_seen, key=first_seen.get) == JOURNEY
    # on every diagram the path only grows, and grows at the steps that touched that instance
    for pid in JOURNEY:
        sizes = [len(_by_process(s)[pid]["completed"]) for s in states if pid in _by_process(s)]
        flows = [len(_by_process(s)[pid]["flows"]) for s in states if pid in _by_process(s)]
        assert sizes == sorted(sizes) and flows == sorted(flows), pid
        if pid not in ("review", "financial_assessment"):  # these only start, and wait (a date, the finance team)
            assert sizes[-1] > sizes[0], pid
    final = _by_process(states[-1])
    assert [final[p]["status"] for p in JOURNEY] == ["completed"] * 4 + ["waiting", "completed", "waiting"]
    # what a person did, in the order they did it, among the automatic steps around it
    fd = final["front_door"]["completed"]
    assert fd.index("record_contact") < fd.index("screen_contact") < fd.index("route_gw") < fd.index(
        "start_reablement")
    # a claim changes nobody's path: the state after it is the state before it
    claim_steps = [s for s in states if [e["type"] for e in s["events"]] == ["task.claimed"]]
    assert claim_steps
    for s in claim_steps:
        before = states[s["step"] - 2]
        assert s["instances"] == before["instances"]


def test_automatic_steps_and_gateway_branches_are_on_the_path(journey):
    eng, case_id = journey
    final = _by_process(timeline.path(eng, case_id))
    fd = final["front_door"]
    # service tasks, script tasks, gateways and events that no history event names
    assert {"contact_received", "start_reablement", "screen_contact", "route_gw",
            "end_referred_reablement"} <= set(fd["completed"])
    assert sorted(fd["branches"], key=lambda b: b["gateway"]) == [
        {"gateway": "carer_gw", "flow": "f_no_carer", "target": "carer_merge"},  # no carer asks for support
        {"gateway": "route_gw", "flow": "f_reablement", "target": "start_reablement"},
        {"gateway": "safeguarding_gw", "flow": "f_no_concern", "target": "concern_merge"}]  # no concern
    assert "f_reablement" in fd["flows"]
    reab = final["reablement"]
    assert {"flow": "f_needs_remain", "gateway": "needs_gw", "target": "start_needs_assessment"} in reab["branches"]
    assert {"flow": "f_not_from_hospital", "gateway": "hospital_gw", "target": "hospital_merge"} in reab["branches"]
    # a branch not chosen is not on the path
    assert not any(b["gateway"] == "needs_gw" and b["flow"] != "f_needs_remain" for b in reab["branches"])
    budget = final["personal_budget"]
    assert {b["flow"] for b in budget["branches"]} == {"f_no_approval", "f_no_impact"}
    assert "calculate_budget" in budget["completed"] and "write_budget_letter" in budget["completed"]
    # each flow taken joins two finished (or current) elements of its own diagram
    assert len(fd["flows"]) == len(set(fd["flows"])) >= 6


def test_a_child_process_is_its_own_instance_started_from_its_parents_element(journey):
    eng, case_id = journey
    final = _by_process(timeline.path(eng, case_id))
    assert final["front_door"]["parent_instance_id"] is None
    chain = [(p, final[p]["parent_instance_id"], final[p]["started_by_element"]) for p in JOURNEY[1:]]
    assert chain == [
        ("reablement", final["front_door"]["instance_id"], "start_reablement"),
        ("needs_assessment", final["reablement"]["instance_id"], "start_needs_assessment"),
        ("personal_budget", final["needs_assessment"]["instance_id"], "start_personal_budget"),
        ("financial_assessment", final["needs_assessment"]["instance_id"], "start_financial_assessment"),
        ("support_plan", final["personal_budget"]["instance_id"], "start_support_plan"),
        ("review", final["support_plan"]["instance_id"], "start_review")]
    # each on the diagram of its own process
    assert len({final[p]["process_version_id"] for p in JOURNEY}) == len(JOURNEY)
    # the step that started reablement is the front door's record_contact completion
    states = _all_states(eng, case_id)
    first = next(s for s in states if "reablement" in _by_process(s))
    assert any(e["type"] == "instance.child_started" and e["data"]["child_instance_id"] ==
               final["reablement"]["instance_id"] for e in first["events"])
    assert _by_process(first)["reablement"]["ready"] == ["plan_reablement"]


def test_where_the_case_stood_ready_tasks_and_waiting_timers(journey):
    eng, case_id = journey
    states = _all_states(eng, case_id)
    planned = next(s for s in states if any(e["type"] == "task.completed" and
                                            e["data"].get("data", {}).get("visits_per_day") for e in s["events"]))
    reab = _by_process(planned)["reablement"]
    assert reab["ready"] == ["deliver_reablement"]
    assert {w["element_id"] for w in reab["waiting"]} == {"end_reminder", "period_ended"}
    assert all(w["due_at"] for w in reab["waiting"])
    final = _by_process(states[-1])
    assert final["review"]["ready"] == [] and [w["element_id"] for w in final["review"]["waiting"]] == [
        "wait_for_review"]
    assert final["support_plan"]["ready"] == [] and final["support_plan"]["waiting"] == []


def test_the_case_record_as_it_was_at_each_step(journey):
    eng, case_id = journey
    states = _all_states(eng, case_id)
    assert "person" not in states[0]["case_record"]  # nobody recorded yet
    recorded = next(s for s in states if s["case_record"].get("person"))
    assert recorded["case_record"]["person"]["name"] == "Joan Barker"
    assert "plan" not in recorded["case_record"]
    assert states[-1]["case_record"] == eng.get_case(case_id)["data"]


def test_events_are_paged_with_the_number_of_their_step(journey):
    eng, case_id = journey
    events = eng.history(case_id)
    first = timeline.case_timeline(eng, case_id, offset=0, limit=10)
    rest = timeline.case_timeline(eng, case_id, offset=10, limit=500)
    assert first["total_events"] == len(events) and len(first["events"]) == 10
    assert [e["seq"] for e in first["events"] + rest["events"]] == [e["seq"] for e in events]
    numbers = [e["step_number"] for e in first["events"] + rest["events"]]
    assert numbers[0] == 1 and numbers[-1] == first["total_steps"]
    assert numbers == sorted(numbers) and set(numbers) == set(range(1, first["total_steps"] + 1))
    # every event of a step carries the step's number, and only that step's events do
    step_of = {e["seq"]: e["step_number"] for e in first["events"] + rest["events"]}
    for n in (1, 3, first["total_steps"]):
        assert [e["seq"] for e in timeline.state_at(eng, case_id, n)["events"]] == [
            seq for seq, number in step_of.items() if number == n]
    with pytest.raises(ValueError):
        timeline.case_timeline(eng, case_id, offset=-1)


def test_an_unknown_case_or_a_step_out_of_range_is_refused_and_nothing_changes(journey):
    eng, case_id = journey
    heads = eng.chain_heads()
    total = timeline.case_timeline(eng, case_id)["total_steps"]
    for bad in (0, -1, total + 1):
        with pytest.raises(NotFoundError, match=f"no step {bad}: its steps are numbered 1 to {total}"):
            timeline.state_at(eng, case_id, bad)
    with pytest.raises(NotFoundError, match="no case 9999"):
        timeline.state_at(eng, 9999, 1)
    with pytest.raises(NotFoundError):
        timeline.path(eng, 9999)
    assert eng.chain_heads() == heads


def test_states_are_kept_until_the_case_changes(journey):
    eng, case_id = journey
    tl = timeline.timeline(eng, case_id)
    timeline.state_at(eng, case_id, 5)
    assert timeline.timeline(eng, case_id) is tl  # same head: the replayed steps are reused
    eng.advance_clock(timedelta(days=60))  # the review falls due: new events on the case
    fresh = timeline.timeline(eng, case_id)
    assert fresh is not tl and len(fresh.steps) > len(tl.steps)
    final = _by_process(timeline.path(eng, case_id))
    assert "wait_for_review" in final["review"]["completed"]


def test_path_is_the_state_after_the_last_step(journey):
    eng, case_id = journey
    total = timeline.case_timeline(eng, case_id)["total_steps"]
    assert timeline.path(eng, case_id) == timeline.state_at(eng, case_id, total)


# ---------------------------------------------------------------------- incidents, moves, tampering
def test_an_incident_shows_the_stopped_element_until_it_is_retried(make_engine, calls):
    eng = make_engine("budget.bpmn")
    calls.fail_budget = True
    res = eng.start("budget", data={"points": 60})
    calls.fail_budget = False
    eng.retry(res.instance_id, actor="admin")
    try:
        stopped, retried = _all_states(eng, res.case_id)
        [inst] = stopped["instances"]
        assert inst["status"] == "error" and inst["failed"]
        assert any(e["type"] == "incident.opened" for e in stopped["events"])
        [after] = retried["instances"]
        assert after["status"] != "error" and after["failed"] == []
        assert set(inst["failed"]) <= set(after["completed"])
    finally:
        timeline.clear_cache()


def test_a_moved_case_is_on_the_new_version_from_the_step_that_moved_it(make_engine):
    eng = make_engine("three_tasks.bpmn")
    case_id = eng.start("three_tasks").case_id
    eng.deploy([VARIANTS / "three_tasks_triage_added.bpmn"])
    plan = im.dry_run(eng, "three_tasks", 1, 2)
    im.migrate(eng, "three_tasks", 1, 2, actor="owner", reason="triage before screening",
               expected_versions=plan.expected_versions())
    [task] = eng.list_tasks(case_id=case_id)
    eng.complete_task(task["id"], {"contact": "phone"}, actor="advisor")
    try:
        states = _all_states(eng, case_id)
        moved = next(s for s in states if any(e["type"] == "instance.migrated" for e in s["events"]))
        assert [e["type"] for e in moved["events"]][0] == "instance.migrated"
        before = states[moved["step"] - 2]
        [b], [m] = before["instances"], moved["instances"]
        assert b["version"] == 1 and m["version"] == 2
        assert b["process_version_id"] != m["process_version_id"]
        assert m["ready"] == ["record_contact"]
        [last] = states[-1]["instances"]
        assert last["version"] == 2 and last["ready"] == ["triage"]  # the new version's step runs
        assert "record_contact" in last["completed"]
        tl = timeline.timeline(eng, case_id)
        assert {b["process_version_id"], m["process_version_id"]} <= tl.version_ids
        assert "triage" in tl.diagram(m["process_version_id"]).names
        assert "triage" not in tl.diagram(b["process_version_id"]).names
    finally:
        timeline.clear_cache()


def test_a_history_that_no_longer_replays_says_where_the_replay_stopped(make_engine, calls):
    eng = make_engine("budget.bpmn")
    res = eng.start("budget", data={"points": 60})
    [approve] = eng.list_tasks(case_id=res.case_id)
    eng.complete_task(approve["id"], {"approved": True}, actor="manager1")
    called = next(e for e in eng.history(res.case_id) if e["type"] == "handler.called")
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, :old, :new) WHERE id = :id",
                     old='"amount":24000', new='"amount":2400', id=called["id"])
    try:
        states = _all_states(eng, res.case_id)
        assert states[0]["replayed"] is False
        assert "the replay stopped at event #" in states[0]["divergence"]
        assert all(s["divergence"] == states[0]["divergence"] for s in states)
    finally:
        timeline.clear_cache()


def test_a_state_is_plain_json_with_every_events_data(journey):
    import json

    eng, case_id = journey
    state = timeline.state_at(eng, case_id, 2)
    recorded = {e["seq"]: e for e in eng.history(case_id)}
    assert [e["data"] for e in json.loads(json.dumps(state))["events"]] == [
        recorded[e["seq"]]["data"] for e in state["events"]]
    page = timeline.case_timeline(eng, case_id, offset=0, limit=5)
    assert [e["data"] for e in json.loads(json.dumps(page))["events"]] == [
        recorded[e["seq"]]["data"] for e in page["events"]]


def test_each_step_is_replayed_once_and_the_rest_of_the_case_in_the_background(journey, monkeypatch):
    eng, case_id = journey
    timeline.clear_cache()
    from engine import replay

    calls = []
    real = replay._replay_step
    monkeypatch.setattr(replay, "_replay_step", lambda *a, **k: (calls.append(a[2][0]["seq"]), real(*a, **k)))
    total = timeline.case_timeline(eng, case_id)["total_steps"]
    monkeypatch.setattr(timeline, "BACKGROUND", False)
    timeline.state_at(eng, case_id, 3)
    tl = timeline.timeline(eng, case_id)
    # only as far as asked, and a claim runs nothing
    assert calls == [s.events[0]["seq"] for s in tl.steps[:3] if s.events[0]["type"] != "task.claimed"]
    replayed_so_far = len(calls)
    timeline.state_at(eng, case_id, 1)  # back, and forward again: nothing is re-run
    timeline.state_at(eng, case_id, 3)
    assert len(calls) == replayed_so_far
    monkeypatch.setattr(timeline, "BACKGROUND", True)
    timeline.state_at(eng, case_id, 2)  # nothing new to replay; the rest goes on a thread
    assert timeline.timeline(eng, case_id) is tl
    tl._worker.join(timeout=60)
    done = len(calls)
    assert done > replayed_so_far
    for n in range(1, total + 1):  # every step is now a lookup
        timeline.state_at(eng, case_id, n)
    assert len(calls) == done
    assert len(set(calls)) == len(calls)  # no step was replayed twice
