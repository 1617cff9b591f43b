"""New needs on a case whose work is still open (issue 10 item 4), end to end on the simulated clock (SQLite and
PostgreSQL): a contact while reablement, a needs assessment, a personal budget or a support plan is open on the
case starts no second one; the front door gives the team working it a task "New information on an open case"
with the contact shown. Once that work has ended (and no plan is in effect) a new contact takes its normal route.
The diagrams read the case's open work with the engine's `open_processes()`; a replay of the case reads the
same and matches the history.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from engine import timeline
from engine.errors import ValidationError
from engine.replay import replay_case
from tests.case_helpers import cld_rows, events, instances, the_task
from tests.test_front_door_routes import (
    CRISIS,
    DAY0,
    LIKELY_ELIGIBLE,
    NFA_OTHER,
    SW,
    TO_ASSESSMENT,
    TO_REABLEMENT,
    children,
    contact,
    eng,  # noqa: F401 - the fixture
    front_data,
    front_door,
    tasks,
)

COORDINATOR = "coordinator1"
AGAIN = "She has had two more falls since reablement started and now cannot get to the toilet at night"


def reablement_case(eng):  # noqa: F811
    """Joan: referred to reablement at the front door; reablement planned and being delivered."""
    res, step = front_door(eng, contact(outcomes_unable=LIKELY_ELIGIBLE))
    assert front_data(eng, res)["screening_route"] == "reablement" and front_data(eng, res)["open_work"] == []
    cid = res.case_id
    eng.complete_task(the_task(eng, cid, "plan_reablement")["id"], {
        "goals": ["Wash and dress without help"], "setting": "home", "start_type": "planned", "visits_per_day": 2},
        actor=COORDINATOR)
    assert tasks(eng, cid) == [("deliver_reablement", "reablement")]
    return cid


def process_ids(eng, cid):  # noqa: F811
    return sorted(i["process_id"] for i in eng.get_case(cid)["instances"])


def replays(eng, cid):  # noqa: F811
    report = replay_case(eng, cid)
    assert report.ok, str(report)
    assert report.events_replayed == len(eng.history(cid))
    checked, findings = eng.verify(cid)
    assert checked > 0 and findings == []


def test_new_needs_during_reablement_go_to_the_reablement_team_not_a_second_reablement(eng):  # noqa: F811
    cid = reablement_case(eng)
    eng.advance_clock(timedelta(days=3))
    form = contact(caller_name="Mary Barker", caller_relationship="carer", caller_organisation="", reason=AGAIN,
                   outcomes_unable=LIKELY_ELIGIBLE + ["toilet_needs"], needs=["social_isolation"])
    res, step = front_door(eng, form, case_id=cid)
    data = front_data(eng, res)
    # screened as reablement, as any likely eligible contact, but reablement is open on the case
    assert data["screening_route"] == "reablement"
    assert (data["open_work"], data["open_work_team"]) == (["reablement"], "reablement")
    assert step.status == "waiting" and step.started_instances == []
    assert children(eng, cid, res.instance_id) == {}
    assert process_ids(eng, cid) == ["front_door", "front_door", "reablement"]  # no second reablement
    # the reablement team working the case gets the new information, beside its delivery task
    assert tasks(eng, cid) == [("deliver_reablement", "reablement"), ("inform_reablement", "reablement")]
    task = the_task(eng, cid, "inform_reablement")
    assert (task["name"], task["form"], task["instance_id"]) == (
        "New information on an open case", "open_case_information", res.instance_id)
    assert data["new_information"] == {
        "contact_date": "2031-03-06", "caller": "Mary Barker", "relationship": "carer", "reason": AGAIN,
        "needs": ["social_isolation"], "outcomes_unable": LIKELY_ELIGIBLE + ["toilet_needs"],
        "open_on_the_case": ["reablement"]}
    assert eng.instance_snapshot(res.instance_id)["timers"] == []
    # an answer the form does not allow is refused and nothing changes
    with pytest.raises(ValidationError):
        eng.complete_task(task["id"], {"response": "ignored"}, actor=COORDINATOR)
    assert the_task(eng, cid, "inform_reablement")["id"] == task["id"]
    done = eng.complete_task(task["id"], {"response": "added_to_current_work", "notes": "Night visit added"},
                             actor=COORDINATOR)
    assert done.status == "completed"
    assert [e["data"]["element_id"] for e in events(eng, cid, "task.completed")][-1] == "inform_reablement"
    assert tasks(eng, cid) == [("deliver_reablement", "reablement")]
    assert process_ids(eng, cid) == ["front_door", "front_door", "reablement"]
    # CLD: the first contact progressed to reablement; the second is no new sequel (NFA - Other), from the
    # contact to the day the team took the information; reablement's own Service row is still open
    assert cld_rows(eng, cid) == [("Request", DAY0, DAY0, TO_REABLEMENT), ("Service", DAY0, None, None),
                                  ("Request", "2031-03-06", "2031-03-06", NFA_OTHER)]
    replays(eng, cid)
    # the case's timeline (a replay too) draws the route the second contact took
    second = [i for i in timeline.path(eng, cid)["instances"] if i["process_id"] == "front_door"][1]
    assert {"gateway": "route_gw", "flow": "f_open_work", "target": "open_team_gw"} in second["branches"]
    assert {"gateway": "open_team_gw", "flow": "f_reablement_team", "target": "inform_reablement"} in \
        second["branches"]
    assert "end_informed_reablement" in second["completed"]


def test_new_needs_during_a_needs_assessment_go_to_social_work_not_a_second_assessment(eng):  # noqa: F811
    form = contact(outcomes_unable=LIKELY_ELIGIBLE, reablement_appropriate=False,
                   reablement_not_appropriate_because="long_term_condition")
    res, _ = front_door(eng, form)
    cid = res.case_id
    assert process_ids(eng, cid) == ["front_door", "needs_assessment"]
    res2, step = front_door(eng, dict(form, reason=AGAIN), case_id=cid)
    data = front_data(eng, res2)
    assert data["screening_route"] == "needs_assessment"
    assert (data["open_work"], data["open_work_team"]) == (["needs_assessment"], "social_work")
    assert step.started_instances == []
    assert process_ids(eng, cid) == ["front_door", "front_door", "needs_assessment"]
    assert ("inform_social_work", "social_work") in tasks(eng, cid)
    assert the_task(eng, cid, "inform_social_work")["name"] == "New information on an open case"
    eng.complete_task(the_task(eng, cid, "inform_social_work")["id"], {"response": "no_change_needed"}, actor=SW)
    assert [r[3] for r in cld_rows(eng, cid) if r[0] == "Request"] == [TO_ASSESSMENT, NFA_OTHER]
    replays(eng, cid)


def test_after_reablement_has_ended_a_new_contact_takes_its_normal_route(eng):  # noqa: F811
    cid = reablement_case(eng)
    eng.advance_clock(timedelta(days=21))
    done = eng.complete_task(the_task(eng, cid, "deliver_reablement")["id"],
                             {"outcome": "best_independence_reached", "summary": "Managing at home"})
    assert done.status == "completed"
    assert instances(eng, cid) == [("front_door", "completed"), ("reablement", "completed")]
    res, step = front_door(eng, contact(reason=AGAIN, outcomes_unable=LIKELY_ELIGIBLE), case_id=cid)
    data = front_data(eng, res)
    assert (data["screening_route"], data["open_work"], data["open_work_team"]) == ("reablement", [], "")
    assert list(children(eng, cid, res.instance_id)) == ["reablement"]
    assert process_ids(eng, cid) == ["front_door", "front_door", "reablement", "reablement"]
    assert tasks(eng, cid) == [("plan_reablement", "reablement")]
    replays(eng, cid)


def test_a_crisis_during_reablement_is_still_an_urgent_response_today(eng):  # noqa: F811
    cid = reablement_case(eng)
    res, step = front_door(eng, contact(crisis=True, crisis_detail=CRISIS, outcomes_unable=LIKELY_ELIGIBLE),
                           case_id=cid)
    data = front_data(eng, res)
    assert data["screening_route"] == "urgent_response" and data["open_work"] == ["reablement"]
    assert list(children(eng, cid, res.instance_id)) == ["urgent_response"]
    assert not [t for t in tasks(eng, cid) if t[0].startswith("inform_")]


def test_work_that_is_not_an_assessment_or_plan_does_not_hold_back_reablement(eng):  # noqa: F811
    # equipment open on the case (tier 2) is not reablement, an assessment, a budget or a plan
    res, _ = front_door(eng, contact(outcomes_unable=["toilet_needs"], equipment_asked=["minor_adaptation"],
                                     equipment_needs="Rails by the toilet"))
    cid = res.case_id
    assert process_ids(eng, cid) == ["equipment", "front_door"]
    res2, _ = front_door(eng, contact(outcomes_unable=LIKELY_ELIGIBLE), case_id=cid)
    data = front_data(eng, res2)
    assert (data["screening_route"], data["open_work"]) == ("reablement", [])
    assert list(children(eng, cid, res2.instance_id)) == ["reablement"]



# ---------------------------------------------------------------- the pages: the advisor and the team are told

def test_the_advisor_is_told_who_has_the_new_information_and_the_team_sees_the_contact(db_url):
    from tests.front_door_world import build, username
    from tests.test_front_door_routes_pages import _contact_task, _post
    from tests.test_pages_intake import signin

    eng, app, people = build(db_url)  # noqa: F811
    try:
        cid = people["edith"]
        eng.start("reablement", case_id=cid, actor=COORDINATOR, data={
            "person": {"name": "Edith Clarke", "age": 87}, "age": 87, "reason": "Falls", "from_hospital": False,
            "discharge_date": None, "screening_reason": "Likely eligible"})
        task = _contact_task(eng, cid)
        client, csrf = signin(app, username("front_door_advisor"))
        assert client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf}).status_code == 303
        edith = dict(person_name="Edith Clarke", person_age=87, person_address="4 Mill Lane", person_area="north")
        r = _post(client, csrf, task["id"], contact(**edith, reason=AGAIN, outcomes_unable=LIKELY_ELIGIBLE))
        assert r.status_code == 200 and "Contact recorded" in r.text
        route = re.search(r"Route</dt>\s*<dd[^>]*>(.*?)</dd>", r.text, re.S).group(1).strip()
        assert route == "New information for the reablement team"
        assert ("Already open on the case: reablement. Nothing new was started (screened as reablement first); "
                "the reablement team has the new information") in r.text
        assert sorted(i["process_id"] for i in eng.get_case(cid)["instances"]) == ["front_door", "reablement"]
        # the reablement team's task shows the contact above its question
        inform = the_task(eng, cid, "inform_reablement")
        team, team_csrf = signin(app, username("reablement_coordinator"))
        page = team.get(f"/tasks/{inform['id']}")
        assert page.status_code == 200
        assert "New information on an open case" in page.text and "The new contact" in page.text
        assert AGAIN in page.text and "What are you doing with the new information?" in page.text
        # the front door advisor is not in the team: the task is not theirs to see
        assert client.get(f"/tasks/{inform['id']}").status_code in (403, 404)
        # once the team has taken it, the chronology keeps the outcome as the advisor was shown it
        eng.complete_task(inform["id"], {"response": "added_to_current_work"}, actor=COORDINATOR)
        assert "Screening outcome: new information for the reablement team (Already open on the case: " \
               "reablement." in client.get(f"/cases/{cid}").text
    finally:
        eng.db.dispose()
