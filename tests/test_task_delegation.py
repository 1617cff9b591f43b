"""Delegate-and-return and saved drafts on a user task (engine level; the inbox uses these)."""

from __future__ import annotations

import pytest

from engine.errors import ConflictError, ValidationError
from engine.replay import replay_case


def _first_task(eng, case_id):
    [task] = eng.list_tasks(case_id=case_id)
    return task


def test_a_delegated_task_goes_to_the_delegate_and_comes_back_to_its_owner_with_the_draft(make_engine):
    eng = make_engine("three_tasks.bpmn")
    case = eng.start("three_tasks", data={"name": "Harriet Jones"}, actor="advisor1").case_id
    task = _first_task(eng, case)
    eng.claim(task["id"], "sam")
    delegated = eng.delegate(task["id"], "priya", actor="sam")
    assert (delegated["assignee"], delegated["owner"]) == ("priya", "sam")
    eng.save_draft(task["id"], {"notes": "spoke to her daughter"}, actor="priya")
    back = eng.return_task(task["id"], actor="priya")
    assert (back["assignee"], back["owner"]) == ("sam", "sam")
    assert back["draft"] == {"notes": "spoke to her daughter"}
    kinds = [(e["type"], e["actor"]) for e in eng.history(case) if e["type"].startswith("task.")
             and e["type"] not in ("task.ready",)]
    assert kinds == [("task.claimed", "sam"), ("task.delegated", "sam"), ("task.draft_saved", "priya"),
                     ("task.returned", "priya")]
    # the draft's content is not written into the append-only history, only that one was saved
    [saved] = [e for e in eng.history(case) if e["type"] == "task.draft_saved"]
    assert saved["data"]["fields"] == ["notes"] and "spoke" not in str(saved["data"])
    eng.complete_task(task["id"], {}, actor="sam")
    assert replay_case(eng, case).ok


def test_only_the_holder_can_delegate_and_only_the_delegate_can_return(make_engine):
    eng = make_engine("three_tasks.bpmn")
    case = eng.start("three_tasks", actor="advisor1").case_id
    task = _first_task(eng, case)
    with pytest.raises(ConflictError, match="nobody"):
        eng.delegate(task["id"], "priya", actor="sam")
    eng.claim(task["id"], "sam")
    with pytest.raises(ConflictError, match="with sam"):
        eng.delegate(task["id"], "priya", actor="jo")
    with pytest.raises(ConflictError, match="was not delegated to sam"):
        eng.return_task(task["id"], actor="sam")
    eng.delegate(task["id"], "priya", actor="sam")
    with pytest.raises(ConflictError, match="was not delegated to jo"):
        eng.return_task(task["id"], actor="jo")
    assert _first_task(eng, case)["assignee"] == "priya"


def test_a_draft_can_only_be_saved_by_the_assignee_and_must_be_an_object(make_engine):
    eng = make_engine("three_tasks.bpmn")
    case = eng.start("three_tasks", actor="advisor1").case_id
    task = _first_task(eng, case)
    with pytest.raises(ConflictError, match="claim it first"):
        eng.save_draft(task["id"], {"a": 1}, actor="sam")
    eng.claim(task["id"], "sam")
    with pytest.raises(ValidationError, match="object"):
        eng.save_draft(task["id"], ["a"], actor="sam")
    stale = _first_task(eng, case)["revision"]
    eng.save_draft(task["id"], {"a": 1}, actor="sam", expected_revision=stale)
    with pytest.raises(ConflictError, match="changed since you opened it"):
        eng.save_draft(task["id"], {"a": 2}, actor="sam", expected_revision=stale)
    assert _first_task(eng, case)["draft"] == {"a": 1}


def test_a_person_corrects_the_case_record_with_a_reason_and_replay_still_matches(make_engine):
    eng = make_engine("three_tasks.bpmn")
    case = eng.start("three_tasks", data={"name": "Harriet Jones"}, actor="advisor1").case_id
    eng.update_case_record(case, {"date_of_birth": "1941-05-02"}, actor="advisor1", reason="told at first contact")
    updated = eng.update_case_record(case, {"coordinating_worker": "sam", "date_of_birth": "1941-05-12"},
                                     actor="manager", reason="allocated; date of birth corrected from NHS record",
                                     expected={"date_of_birth": "1941-05-02"})
    assert updated["data"]["coordinating_worker"] == "sam" and updated["data"]["date_of_birth"] == "1941-05-12"
    [last] = [e for e in eng.history(case) if e["type"] == "case.record_updated"][-1:]
    assert last["data"]["previous"] == {"coordinating_worker": None, "date_of_birth": "1941-05-02"}
    assert last["actor"] == "manager"
    with pytest.raises(ConflictError, match="date_of_birth"):
        eng.update_case_record(case, {"date_of_birth": "1999-01-01"}, actor="x",
                               expected={"date_of_birth": "1941-05-02"})
    assert eng.get_case(case)["data"]["date_of_birth"] == "1941-05-12"
    with pytest.raises(ValidationError):
        eng.update_case_record(case, {}, actor="x")
    [task] = eng.list_tasks(case_id=case)
    eng.complete_task(task["id"], {}, actor="advisor1")
    assert replay_case(eng, case).ok
