"""Trying a draft (engine/trial.py): recorded cases replayed against it report the same path, where
the paths part, or why a case cannot be replayed; the draft's example case runs to its end on a
simulated clock; and the real database is only read."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from engine.errors import DefinitionError, ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import metadata
from engine.trial import check_example, recent_cases, replay_against, run_example
from tests.conftest import DIAGRAMS, START

ROOT = Path(__file__).resolve().parent.parent
BUDGET = (DIAGRAMS / "budget.bpmn").read_bytes()
DEADLINE = (DIAGRAMS / "deadline.bpmn").read_bytes()
PATH_THROUGH_APPROVAL = ["start", "calculate", "over_threshold", "approve", "agree_plan", "start_reviews", "end"]


def _budget_case(eng, points: int, *, approve: bool = True) -> int:
    res = eng.start("budget", data={"points": points}, actor="sw1")
    for task in eng.list_tasks(case_id=res.case_id):
        if task["element_id"] == "approve":
            eng.complete_task(task["id"], {"approved": approve}, actor="manager1")
    [plan] = [t for t in eng.list_tasks(case_id=res.case_id) if t["element_id"] == "agree_plan"]
    eng.complete_task(plan["id"], {"agreed": True}, actor="sw1")
    return res.case_id


@pytest.fixture
def live(make_engine, calls):
    """Three budget cases (two over the approval threshold, one under), one with a handler that failed
    first, and a reablement case whose 5-week reminder and 6-week deadline both fired."""
    eng = make_engine("budget.bpmn", "annual_review.bpmn", "deadline.bpmn")
    calls.fail_budget = True
    failed = eng.start("budget", data={"points": 60})
    calls.fail_budget = False
    eng.retry(failed.instance_id, actor="admin")
    [approve] = eng.list_tasks(case_id=failed.case_id)
    eng.complete_task(approve["id"], {"approved": True}, actor="manager1")
    [plan] = eng.list_tasks(case_id=failed.case_id)
    eng.complete_task(plan["id"], {"agreed": True}, actor="sw1")
    big = _budget_case(eng, 70)
    small = _budget_case(eng, 10)
    reablement = eng.start("deadline", actor="advisor1").case_id
    eng.advance_clock(timedelta(days=43))
    return eng, {"failed_first": failed.case_id, "big": big, "small": small, "reablement": reablement}


def _ids(path):
    return [s["element_id"] for s in path]


def test_a_draft_identical_to_the_live_version_replays_every_case_as_the_same_path(live, calls):
    eng, cases = live
    calls.log.clear()
    for key in ("failed_first", "big", "small"):
        result = replay_against(eng, cases[key], {"budget.bpmn": BUDGET}, "budget")
        assert result.outcome == "same" and result.same_path is True, result.message
        assert result.draft_path == result.recorded_path
    assert _ids(replay_against(eng, cases["big"], {"budget.bpmn": BUDGET}, "budget").recorded_path) == \
        PATH_THROUGH_APPROVAL
    small = replay_against(eng, cases["small"], {"budget.bpmn": BUDGET}, "budget")
    assert _ids(small.recorded_path) == ["start", "calculate", "over_threshold", "agree_plan", "start_reviews", "end"]
    reablement = replay_against(eng, cases["reablement"], {"deadline.bpmn": DEADLINE}, "deadline")
    assert reablement.same_path is True
    assert {"reminder", "notify", "six_weeks", "review_overrun"} <= set(_ids(reablement.draft_path))
    assert calls.log == []  # the recorded handler results were used, no handler was called again


def test_a_changed_gateway_condition_is_reported_at_that_gateway_naming_both_branches(live):
    eng, cases = live
    draft = BUDGET.replace(b"budget[\"amount\"] &gt; 20000", b"budget[\"amount\"] &gt; 25000")
    assert draft != BUDGET
    big = replay_against(eng, cases["big"], {"budget.bpmn": draft}, "budget")  # 28,000: still above
    assert big.same_path is True
    result = replay_against(eng, cases["failed_first"], {"budget.bpmn": draft}, "budget")  # 24,000: now below
    assert result.outcome == "differs" and result.same_path is False
    assert result.message == ("the draft would have gone to 'Agree support plan' at 'Above approval threshold?' "
                              "where the case went to 'Approve budget'")
    assert result.parted["after"]["element_id"] == "over_threshold"
    assert result.parted["recorded"]["element_id"] == "approve"
    assert result.parted["draft"]["element_id"] == "agree_plan"
    assert _ids(result.recorded_path) == PATH_THROUGH_APPROVAL
    assert _ids(result.draft_path) == ["start", "calculate", "over_threshold", "agree_plan"]
    small = replay_against(eng, cases["small"], {"budget.bpmn": draft}, "budget")
    assert small.same_path is True


def test_a_draft_without_a_task_the_case_completed_cannot_replay_it_and_says_why(live):
    eng, cases = live
    tree = etree.fromstring(BUDGET)
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
    [approve] = tree.xpath("//bpmn:userTask[@id='approve']", namespaces=ns)
    approve.getparent().remove(approve)
    [f_yes] = tree.xpath("//bpmn:sequenceFlow[@id='f_yes']", namespaces=ns)
    f_yes.set("targetRef", "agree_plan")
    [f3] = tree.xpath("//bpmn:sequenceFlow[@id='f3']", namespaces=ns)
    f3.getparent().remove(f3)
    for node in tree.xpath("//bpmn:incoming[text()='f3']", namespaces=ns):
        node.text = "f_yes"
    draft = etree.tostring(tree)
    result = replay_against(eng, cases["big"], {"budget.bpmn": draft}, "budget")
    assert result.outcome == "cannot_replay" and result.same_path is None
    assert result.reason == "the draft has no task 'approve' ('Approve budget') where the case completed it"
    assert "at 'Above approval threshold?'" in result.message  # and where the paths part
    # a case that never reached the task replays on it
    assert replay_against(eng, cases["small"], {"budget.bpmn": draft}, "budget").same_path is True


def test_a_shorter_deadline_in_the_draft_fires_before_the_case_moved_on(live):
    eng, cases = live
    result = replay_against(eng, cases["reablement"], {"deadline.bpmn": DEADLINE.replace(b"P42D", b"P21D")},
                            "deadline")
    assert result.same_path is False
    assert result.message == ("the draft would have gone to '6 weeks' after 'Deliver reablement' where the case "
                              "went to 'Reminder at 5 weeks'")
    # a longer one has not fallen due yet (the clock reads day 43): the draft still waits at the task
    longer = replay_against(eng, cases["reablement"], {"deadline.bpmn": DEADLINE.replace(b"P42D", b"P60D")},
                            "deadline")
    assert longer.message == "the draft would still be at 'Deliver reablement' where the case went on to '6 weeks'"


def test_recorded_answers_that_do_not_fit_the_drafts_form_cannot_be_replayed(make_engine):
    forms = FormLibrary({"approval": {"type": "object", "properties": {"approved": {"type": "boolean"}}},
                         "approval_v2": {"type": "object", "required": ["approved", "reason"],
                                         "properties": {"approved": {"type": "boolean"},
                                                        "reason": {"type": "string"}}},
                         "plan": {"type": "object"}, "review": {"type": "object"}})
    eng = make_engine("budget.bpmn", "annual_review.bpmn", forms=forms)
    case_id = _budget_case(eng, 60)
    draft = BUDGET.replace(b'camunda:formKey="approval"', b'camunda:formKey="approval_v2"')
    result = replay_against(eng, case_id, {"budget.bpmn": draft}, "budget")
    assert result.outcome == "cannot_replay"
    assert result.reason == ("the answers recorded at 'Approve budget' (approve) do not fit the draft's form "
                             "'approval_v2': reason: 'reason' is required")


def test_a_case_that_never_ran_the_process_and_a_draft_that_does_not_deploy(live):
    eng, cases = live
    result = replay_against(eng, cases["reablement"], {"budget.bpmn": BUDGET}, "budget")
    assert result.outcome == "cannot_replay" and result.reason == "the case never ran 'budget'"
    with pytest.raises(DefinitionError) as err:
        replay_against(eng, cases["big"], {"budget.bpmn": BUDGET.replace(b'camunda:topic="calculate_budget"',
                                                                          b'camunda:topic="no_such_handler"')},
                       "budget")
    assert "no_such_handler" in str(err.value)


def _everything(eng):
    """Every row of every table, in order: what 'unchanged' means."""
    out = {}
    with eng.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def test_trials_leave_the_real_database_unchanged(live, calls):
    eng, cases = live
    before = _everything(eng)
    heads, counts = eng.chain_heads(), {k: len(eng.history(c)) for k, c in cases.items()}
    draft = BUDGET.replace(b"&gt; 20000", b"&gt; 25000")
    for case_id in cases.values():
        replay_against(eng, case_id, {"budget.bpmn": draft}, "budget")
    run_example({"budget.bpmn": draft}, "budget",
                {"start_data": {"points": 80}, "answers": {"approve": {"approved": True}, "agree_plan": {}}},
                start=START, registry=calls.registry(), forms=eng.forms, source=eng)
    assert eng.chain_heads() == heads
    assert {k: len(eng.history(c)) for k, c in cases.items()} == counts
    assert _everything(eng) == before


def test_recent_cases_are_newest_first_and_leave_out_the_excluded(live):
    eng, cases = live
    recent = recent_cases(eng, "budget")
    assert [r["case_id"] for r in recent] == [cases["small"], cases["big"], cases["failed_first"]]
    assert recent[0]["reference"] == eng.get_case(cases["small"])["reference"]
    assert recent[0]["status"] == "completed"
    assert [r["case_id"] for r in recent_cases(eng, "budget", limit=1)] == [cases["small"]]
    assert [r["case_id"] for r in recent_cases(eng, "budget", exclude=[cases["small"]])] == \
        [cases["big"], cases["failed_first"]]
    assert recent_cases(eng, "no_such_process") == []


# ---------------------------------------------------------------------- the example case
FRONT_DOOR_FILES = [ROOT / "processes" / "front_door.bpmn", ROOT / "processes" / "screening.dmn",
                    ROOT / "processes" / "reablement.bpmn", ROOT / "processes" / "hospital_follow_up.bpmn",
                    ROOT / "processes" / "safeguarding.bpmn",
                    ROOT / "tests" / "diagrams_stage1" / "needs_assessment_stub.bpmn"]
KYLE = {
    "caller": {"name": "Sam Okafor", "relationship": "gp_or_social_prescriber",
               "organisation": "GP social prescribing"},
    "reason": "Anxiety and insomnia, lives alone, finding it hard to get out",
    "person": {"name": "Kyle Morgan", "age": 34, "address": "Flat 2, 9 Station Road, Northby", "area": "north",
               "lives_alone": True},
    "needs": ["mental_wellbeing", "transport", "physical_activity", "finances_benefits"],
    "outcomes_unable": [], "safeguarding_concern": False, "crisis": False, "consents_to_referral": True,
    "from_hospital": False,
}
CALLED_BACK = {"reached": True, "services_right": "yes", "further_help": "none"}
SIGNPOSTED = ["contact_received", "record_contact", "screen_contact",
              "carer_gw", "carer_merge", "safeguarding_gw", "concern_merge", "route_gw", "signpost_merge",
              "search_directory", "record_signposting", "wait_for_call_back", "signposting_call_back", "end_signposted"]


@pytest.fixture
def council(db_url):
    """The real front door and what it calls, deployed with the real handlers and forms."""
    library = FormLibrary.from_folder(ROOT / "forms")
    forms = FormLibrary({**{n: library.schema(n) for n in library.names()},
                         "needs_assessment_stub": {"type": "object"}})
    eng = Engine(db_url, registry=load_registry("handlers"), forms=forms)
    eng.init(simulated_start=START)
    eng.deploy(FRONT_DOOR_FILES)
    yield eng
    eng.db.dispose()


def _front_door_draft():
    return {"front_door.bpmn": (ROOT / "processes" / "front_door.bpmn").read_bytes()}


def _flows(bpmn: bytes) -> set[tuple[str, str]]:
    tree = etree.fromstring(bpmn)
    flows = tree.xpath("//*[local-name()='sequenceFlow']")
    return {(f.get("sourceRef"), f.get("targetRef")) for f in flows}


def test_the_front_door_example_runs_across_the_call_back_timer_to_the_end(council):
    files = _front_door_draft()
    result = run_example(files, "front_door", {"start_data": {}, "answers": {
        "record_contact": KYLE, "signposting_call_back": CALLED_BACK}}, start=START,
        registry=council.registry, forms=council.forms, source=council)
    assert result.outcome == "completed", result.message
    assert _ids(result.path) == SIGNPOSTED
    # the path is a walk along the diagram's own sequence flows
    assert set(zip(SIGNPOSTED, SIGNPOSTED[1:], strict=False)) <= _flows(files["front_door.bpmn"])
    assert [s["name"] for s in result.path][:3] == ["Contact received", "Record the contact", "Screen the contact"]
    # the call back falls due 14 days later, on the simulated clock
    timer = next(s for s in result.path if s["element_id"] == "wait_for_call_back")
    assert timer["at"].startswith("2031-03-17")
    assert result.ended_at.startswith("2031-03-17")
    assert [(t["element_id"], t["team"], t["form"]) for t in result.tasks] == [
        ("record_contact", "front_door", "contact"), ("signposting_call_back", "front_door", "signposting_call_back")]
    assert result.tasks[1]["ready_at"].startswith("2031-03-17") and result.tasks[1]["answers"] == CALLED_BACK
    assert result.waiting_at == [] and result.incident is None


def test_an_example_that_starts_another_process_notes_it_and_follows_its_own_path(council):
    likely_eligible = dict(KYLE, needs=[], outcomes_unable=["personal_hygiene", "being_appropriately_clothed",
                                                            "using_the_home_safely"])
    result = run_example(_front_door_draft(), "front_door", {"answers": {"record_contact": likely_eligible}},
                         start=START, registry=council.registry, forms=council.forms, source=council)
    assert result.outcome == "completed"
    assert _ids(result.path)[-2:] == ["start_reablement", "end_referred_reablement"]
    assert [p["process_id"] for p in result.started_processes] == ["reablement"]


def test_an_example_without_an_answer_stops_naming_the_task(council):
    result = run_example(_front_door_draft(), "front_door", {"start_data": {}, "answers": {"record_contact": KYLE}},
                         start=START, registry=council.registry, forms=council.forms, source=council)
    assert result.outcome == "stopped"
    assert result.message == "no example answer for 'Call back: was the signposting right?' (signposting_call_back)"
    assert _ids(result.path)[-1] == "signposting_call_back"  # it got that far: across the timer
    assert [w["element_id"] for w in result.waiting_at] == ["signposting_call_back"]


def test_an_example_answer_that_does_not_fit_its_form_is_refused_like_a_submission(council):
    bad = dict(KYLE, person=dict(KYLE["person"], age="thirty-four"))
    result = run_example(_front_door_draft(), "front_door", {"answers": {"record_contact": bad}}, start=START,
                         registry=council.registry, forms=council.forms, source=council)
    assert result.outcome == "stopped"
    assert result.message.startswith("the example answer for 'Record the contact' (record_contact) does not fit "
                                     "its form 'contact': person/age:")
    assert [e["field"] for e in result.errors] == ["person/age"]
    assert _ids(result.path) == ["contact_received", "record_contact"]


def test_an_example_stops_at_its_simulated_time_limit_naming_the_next_timer(make_engine, calls):
    eng = make_engine("annual_review.bpmn")
    files = {"annual_review.bpmn": (DIAGRAMS / "annual_review.bpmn").read_bytes()}
    result = run_example(files, "annual_review", {"start_data": {"amount": 100}, "answers": {}}, start=START,
                         registry=calls.registry(), forms=FormLibrary(), source=eng, limit=timedelta(days=100))
    assert result.outcome == "waiting"
    assert result.message == ("the example case is still waiting after 100 days of simulated time (its next timer "
                              "falls due on 2032-03-03)")
    assert [(w["element_id"], w["kind"]) for w in result.waiting_at] == [("wait_year", "timer")]


def test_answers_given_as_a_list_are_used_in_turn(make_engine, calls):
    eng = make_engine("annual_review.bpmn")
    files = {"annual_review.bpmn": (DIAGRAMS / "annual_review.bpmn").read_bytes()}
    result = run_example(files, "annual_review", {"start_data": {"amount": 100},
                                                  "answers": {"review": [{"needs_changed": False}]}},
                         start=START, registry=calls.registry(), forms=FormLibrary(), source=eng)
    assert result.outcome == "completed", result.message
    assert _ids(result.path) == ["start", "wait_year", "review", "next_review", "end"]
    assert result.path[0]["at"].startswith("2031-03-03")
    assert [p["process_id"] for p in result.started_processes] == ["annual_review"]  # noted, not run
    review = next(s for s in result.path if s["element_id"] == "review")
    assert review["at"].startswith("2032-03-03")  # a year on, on the simulated clock


def test_the_example_itself_is_checked_naming_what_is_wrong():
    assert check_example({"start_data": {}, "answers": {}}) == []
    assert check_example([]) == [{"field": "", "message": 'the example must be an object: '
                                                          '{"start_data": {...}, "answers": {...}}'}]
    errors = check_example({"start_data": [], "answers": {"a": "yes", "b": [], "c": [{}, 3]}, "extra": 1},
                           user_tasks={"a", "b", "c"})
    assert errors == [
        {"field": "extra", "message": "'extra' is not part of an example (only start_data and answers)"},
        {"field": "start_data", "message": "start_data must be an object of the data the process starts with"},
        {"field": "answers/a", "message": "the answers must be an object of form answers (or a list of them, one "
                                          "for each time the task comes round)"},
        {"field": "answers/b", "message": "a list of answers needs at least one"},
        {"field": "answers/c/1", "message": "each answer must be an object of form answers"}]
    assert check_example({"answers": {"zz": {}}}, user_tasks={"record_contact"}) == [
        {"field": "answers/zz", "message": "'zz' is not a user task of this draft (its user tasks: record_contact)"}]
    with pytest.raises(ValidationError) as err:
        run_example({}, "x", {"answers": 1}, start=START, registry=None, forms=FormLibrary())  # type: ignore[arg-type]
    assert err.value.errors[0]["field"] == "answers"


def test_a_handler_asked_with_other_inputs_is_called_and_the_result_says_so(live, calls):
    eng, cases = live
    draft = BUDGET.replace(b'<camunda:inputParameter name="points">points</camunda:inputParameter>',
                           b'<camunda:inputParameter name="points">points * 2</camunda:inputParameter>')
    assert draft != BUDGET
    calls.log.clear()
    result = replay_against(eng, cases["small"], {"budget.bpmn": draft}, "budget")  # 10 points -> 20: 8,000
    assert calls.log == [("calculate_budget", {"points": 20})]
    assert result.same_path is True
    assert result.notes == ["'Calculate budget' (calculate) called handler 'calculate_budget' with inputs the case "
                            "never gave it: its result came from the handler now"]


def test_a_case_moved_to_another_version_is_re_run_with_the_same_move(make_engine):
    from engine import instance_migration

    eng = make_engine("deadline.bpmn")
    case_id = eng.start("deadline", actor="advisor1").case_id
    v2 = DEADLINE.replace(b'name="Review overrun"', b'name="Review the overrun"')
    eng.deploy(files={"deadline.bpmn": v2})
    moved = instance_migration.migrate(eng, "deadline", 1, 2, actor="owner", reason="clearer name")
    assert [c.moved for c in moved.cases] == [True]
    eng.advance_clock(timedelta(days=43))
    result = replay_against(eng, case_id, {"deadline.bpmn": v2}, "deadline")
    assert result.same_path is True, result.message
    assert result.recorded_path[-1]["name"] == "Review the overrun"  # reached after the move, on version 2
    on_v1 = replay_against(eng, case_id, {"deadline.bpmn": DEADLINE}, "deadline")
    assert on_v1.same_path is True and on_v1.draft_path[-1]["name"] == "Review overrun"


def test_a_draft_that_fails_where_the_case_went_on_says_so_with_the_failure(live):
    eng, cases = live
    draft = BUDGET.replace(b'budget["amount"] &gt; 20000', b'budget["amount"] &gt; approval_limit')
    result = replay_against(eng, cases["big"], {"budget.bpmn": draft}, "budget")
    assert result.outcome == "differs"
    assert result.message.startswith("the draft would have stopped at an incident (")
    assert "approval_limit" in result.message
    assert result.message.endswith("where the case went on to 'Approve budget'")


def test_files_that_do_not_define_the_process_are_refused(live, calls):
    eng, cases = live
    from engine.errors import NotFoundError

    with pytest.raises(NotFoundError, match="the draft's files do not define the process 'budget'"):
        replay_against(eng, cases["big"], {"deadline.bpmn": DEADLINE}, "budget")
    with pytest.raises(NotFoundError, match="do not define the process 'budget'"):
        run_example({"deadline.bpmn": DEADLINE}, "budget", {"answers": {}}, start=START, registry=calls.registry(),
                    forms=FormLibrary(), source=eng)
