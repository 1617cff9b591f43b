"""A carer's support is paid from one budget, never two (issue 11, tried as a carer's worker: Susan's support sat
in Peter's budget at £300.00 while her own plan gave her £600.00, and nothing checked). On the simulated clock,
SQLite and PostgreSQL, through the real processes: the conflict stops the carer's plan before sign-off with a
page naming both amounts; a plan that holds her support where Peter's budget has it goes to sign-off; a carer
whose own budget is signed off first is not added to the cared-for person's budget afterwards."""

from __future__ import annotations

import pytest

from handlers.carers import carer_support_paid_once
from tests.casework_helpers import casework_engine
from tests.test_carer_own_budget import peter_and_susan_eligible
from tests.test_carers import PROCESSES, carer_plan, tasks_by_team
from tests.test_process_assessment_to_review import SMALL, calls, complete, ras


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES)


def test_her_own_budget_beside_carer_support_in_his_budget_cannot_go_for_sign_off(eng):
    cid = peter_and_susan_eligible(eng, "moderate")  # her own level: £600.00 a year
    complete(eng, cid, "score_needs", ras({"carer_support_level": "low"}, **SMALL))  # £300.00 for her in his budget
    assert eng.get_case(cid)["data"]["personal_budget"]["carer_support"]["amount"] == "300.00"

    complete(eng, cid, "plan_carer_support", carer_plan(held_by="carer"))
    open_now = tasks_by_team(eng, cid)
    assert ("carer_paid_twice", "social_work") in open_now
    assert not [t for t in open_now if t[0] == "sign_off_carer_plan"]
    [task] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "carer_paid_twice"]
    funding = eng.instance_snapshot(task["instance_id"])["data"]["carer_funding"]
    assert funding["conflict"] is True
    assert funding["message"].startswith(
        "Peter Clarke's personal budget already includes £300.00 a year to support their carer, and this plan "
        "gives Susan Clarke their own budget of £600.00 a year as a carer.")

    # holding it in his budget does not help either: his budget has £300.00 for her, not £600.00
    complete(eng, cid, "carer_paid_twice", {"what_will_change": "Hold it in Peter's budget"})
    complete(eng, cid, "plan_carer_support", carer_plan(held_by="cared_for"))
    assert ("carer_paid_twice", "social_work") in tasks_by_team(eng, cid)
    [task] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "carer_paid_twice"]
    message = eng.instance_snapshot(task["instance_id"])["data"]["carer_funding"]["message"]
    assert "holds Susan Clarke's budget of £600.00 a year in Peter Clarke's personal budget, but that budget " \
           "includes £300.00 a year" in message
    assert not eng.get_case(cid)["data"].get("carer_support_plan")  # nothing signed off, no letter
    assert not calls(eng, cid, "carer_support_plan_letter")


def test_held_where_his_budget_has_it_goes_to_sign_off(eng):
    cid = peter_and_susan_eligible(eng, "moderate")
    complete(eng, cid, "score_needs", ras(**SMALL))  # her assessed £600.00 added to his budget
    complete(eng, cid, "plan_carer_support", carer_plan(held_by="carer"))
    assert ("carer_paid_twice", "social_work") in tasks_by_team(eng, cid)
    complete(eng, cid, "carer_paid_twice", {"what_will_change": "Peter's budget has it"})
    complete(eng, cid, "plan_carer_support", carer_plan(held_by="cared_for"))
    assert ("sign_off_carer_plan", "team_manager") in tasks_by_team(eng, cid)
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    assert eng.get_case(cid)["data"]["carer_support_plan"]["budget"]["funded_by"] == "cared_for_personal_budget"


def test_her_own_budget_signed_off_first_is_not_added_to_his(eng):
    cid = peter_and_susan_eligible(eng, "moderate")
    complete(eng, cid, "plan_carer_support", carer_plan(held_by="carer"))  # no budget of his yet: no conflict
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    complete(eng, cid, "score_needs", ras(**SMALL))
    [his] = calls(eng, cid, "personal_budget")
    assert his["inputs"]["carer_support"] is None
    assert his["output"]["final_amount"] == "17745.45"  # not £18,345.45


@pytest.mark.parametrize(("held_by", "included", "conflict"), [
    ("carer", "0.01", True), ("carer", "0.00", False), ("cared_for", "600.00", False),
    ("cared_for", "599.99", True), ("cared_for", "600.01", True)])
def test_the_boundaries(held_by, included, conflict):
    his = {"carer_support": {"amount": included, "added_to_budget": True}}
    got = carer_support_paid_once(held_by, {"amount": "600.00"}, his, "Susan Clarke", "Peter Clarke", "Peter Clarke")
    assert got["conflict"] is conflict


def test_no_conflict_on_her_own_case_or_before_his_budget_or_when_not_added():
    his = {"carer_support": {"amount": "300.00", "added_to_budget": True}}
    assert not carer_support_paid_once("carer", {"amount": "600.00"}, his, "Susan Clarke", None, "Susan Clarke")[
        "conflict"]
    assert not carer_support_paid_once("carer", {"amount": "600.00"}, None, "Susan Clarke", "Peter Clarke",
                                       "Peter Clarke")["conflict"]
    kept_apart = {"carer_support": {"amount": "300.00", "added_to_budget": False}}
    assert not carer_support_paid_once("carer", {"amount": "600.00"}, kept_apart, "Susan Clarke", "Peter Clarke",
                                       "Peter Clarke")["conflict"]
