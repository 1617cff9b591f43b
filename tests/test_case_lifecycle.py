"""Closing a case, ending one process, reopening (issue 10, item 2): engine/lifecycle.py with the real
diagrams, handlers and forms on the simulated clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import NotFoundError, StateError, ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.replay import replay_case
from engine.runtime import Engine
from tests.case_helpers import cld_full
from tests.test_process_assessment_to_review import events, open_tasks, request_review, to_plan

ROOT = Path(__file__).resolve().parent.parent
PROCESS_FILES = [ROOT / "processes" / f"{p}.bpmn" for p in (
    "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment", "support_plan", "review",
    "direct_payment_review")]
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)  # a Monday


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy(PROCESS_FILES)
    yield engine
    engine.db.dispose()


def _timers(eng, cid):
    from sqlalchemy import select

    from engine.schema import timers
    with eng.db.engine.connect() as conn:
        return conn.execute(select(timers.c.element_id).where(timers.c.case_id == cid)).scalars().all()


def _dp_case_with_reviews_pending(eng):
    """A signed-off plan paid by direct payment: the planned review and the scheduled direct payment
    review wait on timers; an unplanned review and a direct payment review on a breach have tasks."""
    cid = to_plan(eng, money_management="direct_payment")
    request_review(eng, cid, "Carer related", "carer", "Daughter can no longer help at weekends")
    eng.start("direct_payment_review", case_id=cid, actor="sw_jane",
              data={"dp_review_trigger": "breach", "dp_review_note": "Payments not spent on care"})
    return cid


def test_closing_a_case_withdraws_every_task_and_timer_and_nothing_fires_after(eng):
    cid = _dp_case_with_reviews_pending(eng)
    assert {t["element_id"] for t in open_tasks(eng, cid)} >= {"review_plan", "review_direct_payment"}
    assert _timers(eng, cid), "the planned reviews wait on timers before the case is closed"
    before = {t["id"] for t in eng.list_tasks(case_id=cid)}  # the finance team's financial assessment too

    out = eng.close_case(cid, reason="died", details={"date_of_death": "2031-03-02"}, actor="tm_tom")

    assert open_tasks(eng, cid) == [] and _timers(eng, cid) == []
    [closed] = events(eng, cid, "case.closed")
    assert closed["data"] == {"reason": "died", "details": {"date_of_death": "2031-03-02"}}
    cancelled = events(eng, cid, "instance.cancelled")
    assert sorted(e["instance_id"] for e in cancelled) == sorted(out["cancelled_instances"])
    assert {w["task_id"] for e in cancelled for w in e["data"]["tasks_withdrawn"]} == before
    assert all(e["data"]["reason"] == "died" for e in cancelled)
    assert any(e["data"]["timers_withdrawn"] for e in cancelled)
    assert all(i["status"] in ("completed", "cancelled") for i in eng.get_case(cid)["instances"])
    assert eng.get_case(cid)["data"]["case_closed"]["reason"] == "died"

    seen = len(eng.history(cid))
    eng.advance_clock(timedelta(days=800))  # past every review and escalation date
    assert len(eng.history(cid)) == seen and open_tasks(eng, cid) == []

    assert replay_case(eng, cid).ok
    checked, findings = eng.verify(cid)
    assert checked and findings == []


def test_closing_ends_the_open_cld_events_with_the_reason_as_outcome(eng):
    cid = _dp_case_with_reviews_pending(eng)
    eng.close_case(cid, reason="moved_away", details={"council": "Southshire"}, actor="tm_tom")
    rows = cld_full(eng, cid)
    service = [r for r in rows if r["event_type"] == "Service"]
    assert service and all(r["event_end"] == "2031-03-03" for r in service)
    assert service[-1]["outcome"] == "NFA – Moved to another LA"
    assert all(r["event_end"] is not None for r in rows)


def test_a_closed_case_refuses_new_work_and_a_new_contact_reopens_it(eng):
    cid = to_plan(eng)
    eng.close_case(cid, reason="declined", actor="tm_tom")
    with pytest.raises(StateError, match="closed"):
        eng.start("review", case_id=cid, data={"review_reason": "Other Reason", "review_requested_by": "person"})
    with pytest.raises(StateError, match="already closed"):
        eng.close_case(cid, reason="died", actor="tm_tom")
    n = len(eng.history(cid))
    eng.reopen_case(cid, reason="new contact", actor="fd_fay")
    [reopened] = events(eng, cid, "case.reopened")
    assert len(eng.history(cid)) == n + 1 and reopened["data"]["closure"]["reason"] == "declined"
    assert "case_closed" not in eng.get_case(cid)["data"]
    request_review(eng, cid, "Other Reason", "person", "Wants support again")
    assert [t["element_id"] for t in open_tasks(eng, cid)] == ["review_plan"]
    assert replay_case(eng, cid).ok


def test_ending_one_process_leaves_the_rest_of_the_case(eng):
    cid = _dp_case_with_reviews_pending(eng)
    dp = [i for i in eng.get_case(cid)["instances"]
          if i["process_id"] == "direct_payment_review" and i["status"] != "completed"]
    breach = max(i["id"] for i in dp)
    eng.cancel_instance(breach, reason="no_longer_needed", details={"note": "raised in error"}, actor="tm_tom")
    assert "review_direct_payment" not in {t["element_id"] for t in open_tasks(eng, cid)}
    assert "review_plan" in {t["element_id"] for t in open_tasks(eng, cid)}
    with pytest.raises(StateError, match="nothing to end"):
        eng.cancel_instance(breach, reason="died", actor="tm_tom")
    assert replay_case(eng, cid).ok


def test_bad_input_is_refused_and_nothing_changes(eng):
    cid = to_plan(eng)
    n = len(eng.history(cid))
    with pytest.raises(NotFoundError):
        eng.close_case(99999, reason="died", actor="tm_tom")
    with pytest.raises(ValidationError, match="reason"):
        eng.close_case(cid, reason=" ", actor="tm_tom")
    with pytest.raises(StateError, match="not closed"):
        eng.reopen_case(cid, reason="x", actor="tm_tom")
    assert len(eng.history(cid)) == n and _timers(eng, cid) and "case_closed" not in eng.get_case(cid)["data"]
