"""Equipment, telecare and minor adaptations (issue 10 item 4, tier 2; processes/equipment.bpmn), a scenario on
the simulated clock with the real diagrams, handlers and forms, on SQLite and PostgreSQL:

* an occupational therapy assessment (social work and OT team) lists the items with their cost; equipment
  and telecare are free, an adaptation is free up to the free limit (£1,000: the Care and Support (Charging
  and Assessment of Resources) Regulations 2014 reg 3; council.json minor_adaptation_free_limit) — the
  boundary is free, a penny over is not;
* an adaptation over the limit goes to a team manager, and when approved to a financial assessment of what
  the person pays (finance team); refused, the rest is still delivered and the letter gives the reasons;
* the assessment and the delivery have local targets (timescales.json) escalated to the team manager;
  telecare is reviewed after telecare_review_after; the letter says what was provided and what it costs;
  delivery is a CLD Service row (Short Term Support: Ongoing Low Level), open until the case closes;
* started from a case record (api/case_actions.py "equipment"), with roles and named errors.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.app import create_app
from api.demo_users import create_demo_users, demo_username
from engine.errors import ValidationError
from engine.registry import HandlerContext
from engine.replay import replay_case
from handlers import cld, equipment, letters
from tests.case_helpers import cld_full, events, fired, the_task
from tests.casework_helpers import SW, TM, api_client, casework_engine, complete, diagrams, known_case, tasks
from tests.conftest import START  # Monday 3 March 2031

BEN = {"name": "Ben Okafor", "address": ["12 Station Road", "Northtown", "NS3 1BB"], "age": 77,
       "date_of_birth": "1953-06-20"}
BATH_BOARD = {"kind": "equipment", "description": "Bath board and seat", "cost": 65}
PENDANT = {"kind": "telecare", "description": "Pendant alarm with falls detector", "cost": 180}
RAILS = {"kind": "minor_adaptation", "description": "Grab rails and a stair rail", "cost": 1000}  # the limit: free
RAMP = {"kind": "minor_adaptation", "description": "Ramp to the back door", "cost": 1000.01}  # a penny over


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, diagrams("equipment"))


def letter(eng, cid) -> str:
    [body] = [" ".join(e["data"]["output"]["body"].split()) for e in events(eng, cid, "handler.called")
              if e["data"]["handler"] == "equipment_letter"]
    return body


def charges(eng, cid) -> dict:
    [out] = [e["data"]["output"] for e in events(eng, cid, "handler.called")
             if e["data"]["handler"] == "equipment_charges"]
    return out


def request(eng) -> int:
    return eng.start("equipment", data={"person": BEN, "contact_date": "2031-03-03",
                                        "equipment_needs": "Cannot get in the bath; fell on the stairs"}).case_id


def assessed(eng, *items, dfg=False) -> int:
    cid = request(eng)
    complete(eng, cid, "assess_equipment", {"needs_found": "Bathing and the stairs", "items": list(items),
                                            "major_adaptation_referral": dfg}, actor=SW)
    return cid


DELIVERED = {"delivered_on": "2031-03-07", "installed_and_working": True, "shown_how_to_use": True}


def instance_status(eng, cid) -> str:
    [inst] = eng.get_case(cid)["instances"]
    return inst["status"]


# ---------------------------------------------------------------- free items


def test_equipment_telecare_and_an_adaptation_at_the_limit_are_free_and_telecare_is_reviewed(eng):
    cid = request(eng)
    assert tasks(eng, cid) == [("assess_equipment", "social_work")]
    assert the_task(eng, cid, "assess_equipment")["due_at"] == START + timedelta(days=28)
    complete(eng, cid, "assess_equipment", {"needs_found": "Bathing and the stairs",
                                            "items": [BATH_BOARD, PENDANT, RAILS],
                                            "major_adaptation_referral": False}, actor=SW)
    out = charges(eng, cid)
    assert [(i["description"], i["cost"], i["free"]) for i in out["items"]] == [
        ("Bath board and seat", "65.00", True), ("Pendant alarm with falls detector", "180.00", True),
        ("Grab rails and a stair rail", "1000.00", True)]
    assert (out["free_limit"], out["needs_approval"], out["telecare"], out["total_cost"]) == (
        "1000.00", False, True, "1245.00")
    # nothing to approve: straight to delivery, with its own target
    assert tasks(eng, cid) == [("record_delivery", "social_work")]
    assert the_task(eng, cid, "record_delivery")["due_at"] == START + timedelta(days=7)
    eng.advance_clock(timedelta(days=4))
    complete(eng, cid, "record_delivery", DELIVERED, actor=SW)
    body = letter(eng, cid)
    assert "These were delivered and fitted on 7 March 2031" in body
    assert "- Equipment: Bath board and seat (free)" in body
    assert "- Adaptation: Grab rails and a stair rail (free)" in body
    assert "You do not have to pay anything." in body
    assert "check that your telecare works and is still what you need" in body
    assert "Disabled Facilities Grant" not in body
    # the telecare review comes telecare_review_after (6 weeks) after the letter
    due = START + timedelta(days=4 + 42)
    assert [(e["data"]["element_id"], e["data"]["due_at"][:16]) for e in events(eng, cid, "timer.set")][-1] == (
        "telecare_review_due", due.isoformat()[:16])
    assert eng.advance_clock(to=due - timedelta(minutes=1)) == 0
    assert tasks(eng, cid) == []
    eng.advance_clock(timedelta(minutes=1))
    assert tasks(eng, cid) == [("review_telecare", "social_work")]
    complete(eng, cid, "review_telecare", {"working_well": True, "still_needed": True}, actor=SW)
    assert instance_status(eng, cid) == "completed"
    [row] = cld_full(eng, cid)
    assert (row["event_type"], row["event_start"], row["event_end"], row["outcome"]) == (
        "Service", "2031-03-07", None, cld.PROVISION_OF_SERVICE)
    assert (row["service_type"], row["delivery_mechanism"]) == (cld.ST_ONGOING_LOW_LEVEL,
                                                                cld.CASSR_COMMISSIONED_SUPPORT)
    assert replay_case(eng, cid).ok
    assert eng.verify(cid)[1] == []


def test_without_telecare_the_process_ends_with_the_letter_and_a_major_adaptation_is_referred(eng):
    cid = assessed(eng, BATH_BOARD, dfg=True)
    complete(eng, cid, "record_delivery", DELIVERED, actor=SW)
    assert instance_status(eng, cid) == "completed" and tasks(eng, cid) == []
    body = letter(eng, cid)
    assert "Disabled Facilities Grant from your housing authority" in body
    assert "YOUR TELECARE" not in body


# ---------------------------------------------------------------- over the free limit


def test_an_adaptation_a_penny_over_the_limit_needs_a_manager_then_a_financial_assessment(eng):
    cid = assessed(eng, BATH_BOARD, RAMP)
    out = charges(eng, cid)
    assert out["over_limit"] == ["Ramp to the back door"] and out["needs_approval"] is True
    assert [i["free"] for i in out["items"]] == [True, False]
    assert tasks(eng, cid) == [("approve_adaptation", "team_manager")]
    complete(eng, cid, "approve_adaptation", {"adaptation_approved": True,
                                              "approval_reason": "The only safe way in and out of the house."},
             actor=TM)
    assert tasks(eng, cid) == [("financial_assessment", "finance")]
    complete(eng, cid, "financial_assessment", {"contribution": 250}, actor="fin")
    assert tasks(eng, cid) == [("record_delivery", "social_work")]
    complete(eng, cid, "record_delivery", DELIVERED, actor=SW)
    body = letter(eng, cid)
    assert "- Adaptation: Ramp to the back door" in body and "Ramp to the back door (free)" not in body
    assert "We decided to provide it. Our reasons: The only safe way in and out of the house." in body
    # what the process did (the finance team's assessment), and no bill that no step sends
    assert "Our finance team then looked at your finances. They worked out that you pay £250.00 towards it." in body
    assert "bill" not in body and "send you" not in body
    assert "Call us on" in body and "to agree how and when you pay." in body
    assert instance_status(eng, cid) == "completed"


def test_a_refused_adaptation_is_not_delivered_and_the_letter_gives_the_reasons(eng):
    cid = assessed(eng, BATH_BOARD, RAMP)
    complete(eng, cid, "approve_adaptation", {"adaptation_approved": False,
                                              "approval_reason": "A Disabled Facilities Grant covers it."}, actor=TM)
    assert tasks(eng, cid) == [("record_delivery", "social_work")]  # no financial assessment
    complete(eng, cid, "record_delivery", DELIVERED, actor=SW)
    body = letter(eng, cid)
    provided, refused = body.split("What it costs you")
    assert "Bath board and seat (free)" in provided and "Ramp" not in provided
    assert "We have decided not to provide: - Adaptation: Ramp to the back door" in refused
    assert "It costs more than £1,000.00, so it is not a minor adaptation. Our reasons: A Disabled" in refused
    assert "finance" not in [t for _, t in tasks(eng, cid)]


def test_when_the_only_item_is_refused_nothing_is_delivered_and_the_letter_gives_the_decision(eng):
    cid = assessed(eng, RAMP, dfg=True)
    complete(eng, cid, "approve_adaptation", {"adaptation_approved": False,
                                              "approval_reason": "A Disabled Facilities Grant covers it."}, actor=TM)
    assert tasks(eng, cid) == [] and instance_status(eng, cid) == "completed"  # no delivery to record
    body = letter(eng, cid)
    assert "We have not provided any of the items recommended." in body and "delivered and fitted" not in body
    assert "We have decided not to provide: - Adaptation: Ramp to the back door" in body
    assert "Disabled Facilities Grant from your housing authority" in body
    assert cld_full(eng, cid) == []  # nothing delivered: no service


def test_a_council_may_raise_the_free_limit_but_not_lower_it(eng, monkeypatch):
    real = letters.load_council()
    monkeypatch.setattr(letters, "load_council", lambda *a, **k: {**real, "minor_adaptation_free_limit": "1500"})
    cid = assessed(eng, RAMP)
    assert charges(eng, cid)["free_limit"] == "1500.00"
    assert tasks(eng, cid) == [("record_delivery", "social_work")]  # £1,000.01 is free under £1,500
    monkeypatch.setattr(letters, "load_council", lambda *a, **k: {**real, "minor_adaptation_free_limit": "999.99"})
    cid = request(eng)
    res = complete(eng, cid, "assess_equipment", {"needs_found": "Bathing", "items": [RAILS],
                                                  "major_adaptation_referral": False})
    assert "minor_adaptation_free_limit must be at least £1,000 (reg 3(3)), got '999.99'" in res.incident["message"]
    assert tasks(eng, cid) == []


# ---------------------------------------------------------------- targets


def test_the_assessment_target_equal_to_the_setting_escalates_and_the_task_stays_overdue(eng):
    cid = request(eng)
    due = START + timedelta(days=28)
    assert eng.advance_clock(to=due - timedelta(minutes=1)) == 0
    eng.advance_clock(timedelta(minutes=1))
    assert fired(eng, cid) == ["assessment_late"]
    assert tasks(eng, cid) == [("assess_equipment", "social_work"), ("assessment_overdue", "team_manager")]
    assert the_task(eng, cid, "assess_equipment")["due_at"] == due
    complete(eng, cid, "assessment_overdue", {"action_taken": "Allocated to Sam, visit on Friday"}, actor=TM)
    assert tasks(eng, cid) == [("assess_equipment", "social_work")]


def test_the_delivery_target_counts_from_the_assessment_and_escalates(eng):
    cid = request(eng)
    eng.advance_clock(timedelta(days=3))
    complete(eng, cid, "assess_equipment", {"needs_found": "Bathing", "items": [BATH_BOARD],
                                            "major_adaptation_referral": False}, actor=SW)
    due = START + timedelta(days=3 + 7)
    assert the_task(eng, cid, "record_delivery")["due_at"] == due
    eng.advance_clock(to=due)
    assert fired(eng, cid) == ["delivery_late"]
    assert tasks(eng, cid) == [("record_delivery", "social_work"), ("delivery_overdue", "team_manager")]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("items,field", [
    ([], "items"),
    ([{**BATH_BOARD, "cost": -1}], "items/0/cost"),
    ([{**BATH_BOARD, "kind": "stair_lift"}], "items/0/kind"),
    ([BATH_BOARD, {"kind": "telecare", "cost": 10}], "items/1/description"),
])
def test_a_bad_item_is_refused_naming_it_and_nothing_changes(eng, items, field):
    cid = request(eng)
    n = len(eng.history(cid))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "assess_equipment", {"needs_found": "Bathing", "items": items,
                                                "major_adaptation_referral": False})
    assert field in [e["field"] for e in err.value.errors]
    assert len(eng.history(cid)) == n and tasks(eng, cid) == [("assess_equipment", "social_work")]


def test_the_handler_names_the_item_at_fault():
    ctx = HandlerContext(case_id=1, instance_id=1, process_id="equipment", element_id="work_out_charges", now=START)
    for items, message in (
        ([], "items must be a list of at least one recommended item"),
        ([{"kind": "equipment", "description": "Frame", "cost": True}], "items[0].cost must be an amount"),
        ([BATH_BOARD, {"kind": "hoist", "description": "Hoist", "cost": 1}], "items[1].kind must be one of"),
        ([{"kind": "telecare", "description": " ", "cost": 1}], "items[0].description must say what the item is"),
        ([{"kind": "telecare", "description": "Alarm", "cost": "-3"}], "items[0].cost must be an amount in pounds, 0"),
    ):
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            equipment.equipment_charges(ctx, items)
    with pytest.raises(ValueError, match="delivered_on must give the day the items were delivered"):
        equipment.equipment_letter(ctx, BEN, equipment.equipment_charges(ctx, [BATH_BOARD]), None)
    with pytest.raises(ValueError, match="decision.reason must give"):
        equipment.equipment_letter(ctx, BEN, equipment.equipment_charges(ctx, [RAMP]), "2031-03-07",
                                   decision={"approved": True})


# ---------------------------------------------------------------- from a case record


@pytest.fixture
def app(eng):
    eng.deploy(diagrams("needs_assessment", "carers_assessment", "personal_budget", "financial_assessment",
                        "support_plan", "review", "direct_payment_review"))
    create_demo_users(eng)
    return create_app(eng, run_timers=False)


def test_a_social_worker_asks_for_equipment_from_the_case_record_once_at_a_time(eng, app):
    cid = known_case(eng, BEN)
    sw = api_client(app, "social_worker")
    r = sw.post(f"/api/cases/{cid}/actions/equipment", json={"data": {"equipment_needs": "Struggles with the bath"}})
    assert r.status_code == 201, r.text
    assert [(t["element_id"], t["team"]) for t in r.json()["tasks"]] == [("assess_equipment", "social_work")]
    [started] = [e for e in events(eng, cid, "instance.started") if e["data"]["process_id"] == "equipment"]
    assert started["data"]["data"] == {"person": {**BEN, "age": 77}, "contact_date": "2031-03-03",
                                       "equipment_needs": "Struggles with the bath"}
    n = len(eng.history(cid))
    r = sw.post(f"/api/cases/{cid}/actions/equipment", json={"data": {"equipment_needs": "And the stairs"}})
    assert r.status_code == 422 and "already open on this case" in r.json()["message"]
    for bad in ({}, {"equipment_needs": ""}, {"equipment_needs": "x\x00y"}, {"equipment_needs": "x" * 2001}):
        r = sw.post(f"/api/cases/{cid}/actions/equipment", json={"data": bad})
        assert r.status_code == 422 and "equipment_needs" in [(e["field"] or "").rsplit("/", 1)[-1]
                                                           for e in r.json()["errors"]], bad
    advisor = api_client(app, "front_door_advisor")
    assert advisor.post(f"/api/cases/{cid}/actions/equipment",
                        json={"data": {"equipment_needs": "Bath"}}).status_code == 403
    assert len(eng.history(cid)) == n


def test_the_command_line_asks_for_equipment_with_the_same_checks(eng, app, db_url, capsys):
    from carepath.cli import main

    cid = known_case(eng, BEN)
    assert main(["act", "--db", db_url, str(cid), "equipment", "--as", SW, "--data", '{"equipment_needs": ""}']) != 0
    assert "equipment_needs" in capsys.readouterr().err
    assert main(["act", "--db", db_url, str(cid), "equipment", "--as", demo_username("front_door_advisor"),
                 "--data", '{"equipment_needs": "Bath"}']) != 0
    assert "refused" in capsys.readouterr().err
    assert [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "equipment"] == []
    assert main(["act", "--db", db_url, str(cid), "equipment", "--as", SW, "--data",
                 '{"equipment_needs": "Struggles with the bath"}']) == 0
    assert "Assess for equipment and adaptations [social_work]" in capsys.readouterr().out
