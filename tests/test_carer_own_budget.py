"""A carer's own support (issue 11 item 4), end to end on the simulated clock, on SQLite and PostgreSQL: Susan,
eligible as a carer beside Peter's own eligible needs, gets her own support plan and personal budget as a carer
(from her assessment's level), a letter that states it, her own review when it falls due, and the CLD Carer
support Service row with the budget's weekly cost; when her support is paid from Peter's budget, Peter's plan
carries the money and her row reports no cost, so it is never counted twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from handlers import cld
from tests.case_helpers import cld_full
from tests.casework_helpers import casework_engine
from tests.test_carers import PROCESSES, carer_plan, tasks_by_team, timers_set
from tests.test_letters_style import problems
from tests.test_process_assessment_to_review import (
    PETER,
    SMALL,
    assessment,
    calls,
    carer_assessment,
    complete,
    letters,
    plan,
    ras,
)

START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES)


def peter_and_susan_eligible(eng, level: str) -> int:
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs",
             assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True))
    complete(eng, cid, "assess_carer", carer_assessment(level))
    return cid


def test_an_eligible_carer_gets_her_own_plan_budget_letter_review_and_cld_row(eng):
    cid = peter_and_susan_eligible(eng, "moderate")
    # her own budget as a carer, from her level (ras.json carer_support_allocation: moderate = £600.00 a year)
    [budget] = calls(eng, cid, "carer_personal_budget")
    assert (budget["output"]["amount"], budget["output"]["weekly_amount"]) == ("600.00", "11.54")
    assert ("plan_carer_support", "social_work") in tasks_by_team(eng, cid)

    complete(eng, cid, "plan_carer_support", carer_plan(months=6))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    kept = eng.get_case(cid)["data"]["carer_support_plan"]
    assert (kept["carer"], kept["budget"]["funded_by"], kept["first_review"]) == (
        "Susan Clarke", "carers_personal_budget", "2031-09-03")

    [letter] = letters(eng, cid, "carer_support_plan_letter")
    assert "Dear Susan Clarke" in letter
    assert "Your personal budget as a carer is £600.00 a year (£11.54 a week)." in letter
    assert "3 September 2031" in letter
    [written] = calls(eng, cid, "carer_support_plan_letter")
    assert problems(written["output"]["body"], "carers_support_plan", "Susan Clarke") == []
    assert [d["kind"] for d in eng.documents(cid)].count("carers_support_plan") == 1
    assert ("wait_carer_review", "2031-09-03T09:00:00.000000+00:00") in timers_set(eng, cid)

    # her review falls due on the date in her letter, not a minute before
    eng.advance_clock(to=datetime(2031, 9, 3, 8, 59, tzinfo=timezone.utc))
    assert ("review_carer_plan", "social_work") not in tasks_by_team(eng, cid)
    eng.advance_clock(timedelta(minutes=1))
    assert ("review_carer_plan", "social_work") in tasks_by_team(eng, cid)
    complete(eng, cid, "review_carer_plan", {"carer_views": "The sitter has made all the difference",
                                             "outcomes_achieved": "fully", "willing_and_able": "yes",
                                             "next_step": "continue", "reason": "Working well"})

    rows = [r for r in cld_full(eng, cid) if r["client_type"] == "Carer"]
    assert [(r["event_type"], r["outcome"]) for r in rows] == [
        ("Assessment", "Progress to Support Planning / Services"), ("Service", "Provision of service"),
        ("Review", "No change in package")]
    service = rows[1]
    assert (service["service_type"], service["delivery_mechanism"]) == (cld.CARER_DIRECT, cld.DIRECT_PAYMENT)
    assert (service["unit_cost"], service["cost_frequency"], service["planned_units_per_week"]) == (
        "11.54", "Weekly", "1")
    assert (service["event_start"], service["event_end"]) == ("2031-03-03", None)


def test_support_paid_from_the_cared_for_persons_budget_is_costed_once_on_his_plan(eng):
    cid = peter_and_susan_eligible(eng, "high")
    complete(eng, cid, "score_needs", ras(**SMALL))  # £17,745.45 + her £1,200.00 = £18,945.45, £364.34 a week
    complete(eng, cid, "plan_carer_support",
             carer_plan("involving_cared_for", "council_managed", held_by="cared_for", months=12))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    respite = {"label": "Susan has a break every week", "how_met": "A sitter for Peter on Tuesday nights",
               "provider": "Northtown Sitters", "unit": "night", "unit_cost": 23, "units_per_week": 1,
               "delivery": "council_commissioned", "service_component": "home_support"}
    complete(eng, cid, "write_plan", {**plan(), "outcomes": [respite]})
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    services = {r["process_id"]: r for r in cld_full(eng, cid) if r["event_type"] == "Service"}
    assert services["carers_support_plan"]["service_type"] == cld.CARER_VIA_CARED_FOR
    assert services["carers_support_plan"]["unit_cost"] is None  # not counted twice
    assert services["support_plan"]["unit_cost"] == "23.00"
