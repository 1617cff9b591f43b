"""The published measures (handlers/measures.py, docs/measures.md) against populations whose answers are known.

Two populations:

* cases driven through the real diagrams, handlers and forms on the simulated clock (as tests/test_cld.py
  does): a signposted contact, reablement from the front door, two people assessed into long-term support
  (a direct payment, council-commissioned support), a hospital discharge into reablement with its 91-day
  follow-up and a safeguarding concern taken to its outcome — every measure is checked against values
  worked out by hand from the dates below;
* synthetic history events, built the way the engine writes them, for the boundaries: exactly 28 days,
  42 against 43 days of reablement, the 91st day, a plan superseded before its review, a closed case,
  deadlines passed, and histories the CLD rows cannot be read from.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from handlers import measures as m
from tests.test_cld import (
    FILES,  # noqa: F401 - the diagrams the fixture deploys
    FIRST_REVIEW,
    complete,
    contact,
    discharge,
    discharge_response,
    eng,  # noqa: F401 - pytest fixture
    front_door,
    to_plan,
)
from tests.test_process_front_door_reablement import LIKELY_ELIGIBLE
from tests.test_process_safeguarding_discharge import CONCERN, S42, STRATEGY

YEAR = (date(2031, 1, 1), date(2031, 12, 31))
Q1 = (date(2031, 1, 1), date(2031, 3, 31))
Q2 = (date(2031, 4, 1), date(2031, 6, 30))


def figures(pop, start, end, team=None):
    return {r.key: r for r in m.compute_all(pop, start, end, team)}


def parts(result):
    return {p.key: p.count for p in result.parts if p.count}


@pytest.fixture
def county(eng):
    """The driven population (clock starts Monday 3 March 2031, 09:00 UTC)."""
    c = {}
    c["advice"] = front_door(eng, contact(advice_given="Leaflet on falls prevention"))  # request closed 3 March
    c["reablement"] = front_door(eng, LIKELY_ELIGIBLE)
    complete(eng, c["reablement"], "plan_reablement", {"goals": ["Wash and dress"], "setting": "home",
                                                       "start_type": "planned", "visits_per_day": 2})
    c["dp"] = to_plan(eng, "direct_payment")  # assessed and signed off on 3 March
    c["commissioned"] = to_plan(eng, "council_managed")
    sg = eng.start("safeguarding", data={"person": {"name": "Joan Barker"}, "raised_by": "neighbour"})
    c["safeguarding"] = sg.case_id
    complete(eng, sg.case_id, "record_concern", CONCERN)
    complete(eng, sg.case_id, "triage_decision", S42)
    complete(eng, sg.case_id, "strategy_discussion", STRATEGY)
    complete(eng, sg.case_id, "enquiry", {"findings": "The lodger used her card", "concern_substantiated": "yes"})
    complete(eng, sg.case_id, "record_outcome", {"outcomes_asked": True, "outcomes_achieved": "partially",
                                                 "risk_outcome": "reduced", "plan_review_needed": False})
    c["harriet"] = discharge(eng, discharge_response())  # ready 4 March, discharged 5 March; now 5 March 12:00
    complete(eng, c["harriet"], "plan_reablement", {"goals": ["Walk to the shop"], "setting": "home",
                                                    "start_type": "hospital_discharge", "visits_per_day": 2})
    eng.advance_clock(timedelta(days=18))  # 23 March
    complete(eng, c["reablement"], "deliver_reablement", {"outcome": "best_independence_reached", "summary": "Done"})
    eng.advance_clock(timedelta(days=FIRST_REVIEW - 20))  # 15 April: the first reviews are ready
    complete(eng, c["dp"], "review_plan", {"needs_changed": False, "plan_working": True})
    complete(eng, c["harriet"], "prepare_for_end", {"progress": "on_track_to_end"})  # reminder of 9 April
    complete(eng, c["harriet"], "deliver_reablement", {"outcome": "best_independence_reached", "summary": "Walking"})
    eng.advance_clock(timedelta(days=50))  # 4 June: the 91st day after Harriet's discharge
    complete(eng, c["harriet"], "check_still_at_home", {"at_home": "yes"})
    return eng, c


def test_every_measure_for_the_driven_population(county):
    eng, c = county
    pop = m.load_population(eng)
    assert pop.cld_errors == {}
    ref = pop.reference
    f = figures(pop, *YEAR)

    # STS001: four requests ended (three front door contacts... the two assessed people came straight to an
    # assessment, not through a request): signposting -> I&A; reablement -> short term; Harriet's discharge
    # request -> short term (her reablement)
    new = f["new_requests"]
    assert parts(new) == {"information_advice": 1, "short_term": 2}
    assert new.figure == 3 and {p.key: p.case_ids for p in new.parts if p.count} == {
        "information_advice": [c["advice"]], "short_term": sorted([c["reablement"], c["harriet"]])}
    # ASCOF 2A: both reablement episodes ended with no long-term support after them
    assert (f["ascof_2a"].figure, f["ascof_2a"].numerator, f["ascof_2a"].denominator) == (100.0, 2, 2)
    # ASCOF 2D: Harriet (84) at home on the 91st day (4 June)
    assert (f["ascof_2d"].figure, f["ascof_2d"].numerator, f["ascof_2d"].denominator) == (100.0, 1, 1)
    assert f["ascof_2d"].items[0]["day"] == "2031-06-04"
    # ASCOF 3D on 31 December: two people in community long-term support, one by direct payment
    assert (f["ascof_3d1"].figure, f["ascof_3d1"].numerator, f["ascof_3d1"].denominator) == (50.0, 1, 2)
    assert (f["ascof_3d2"].figure, f["ascof_3d2"].numerator, f["ascof_3d2"].denominator) == (50.0, 1, 2)
    assert parts(f["ascof_3d1"]) == {"direct_payment": 1, "commissioned": 1}
    # two assessments, both done the day they were asked for (0 days)
    assert (f["assessments_28_days"].numerator, f["assessments_28_days"].denominator) == (2, 2)
    assert f["assessments_28_days"].extra["median_days"] == 0
    # first reviews: both plans signed off 3 March, 8 weeks on 28 April; one reviewed on 15 April (43 days)
    first = f["first_reviews"]
    assert (first.figure, first.numerator, first.denominator) == (50.0, 1, 2)
    assert {p.key: p.case_ids for p in first.parts if p.count} == {"on_time": [c["dp"]],
                                                                   "not_done": [c["commissioned"]]}
    # the undone first review is overdue at the end of the year (its escalation fired after 8 weeks)
    assert [i["case_id"] for i in f["overdue_reviews"].items] == [c["commissioned"]]
    # nobody has been in long-term support for 12 months by 31 December 2031 (since March)
    assert f["annual_reviews"].figure is None and f["annual_reviews"].denominator == 0
    # reablement: 3 to 23 March (20 days) and 5 March to 15 April (41 days); neither extended
    reab = f["reablement_lengths"]
    assert parts(reab) == {"within_42": 2} and reab.figure == 30.5 and reab.extra["longest_days"] == 41
    # one discharge, pathway 1, one day from ready (4 March) to discharge (5 March)
    assert parts(f["discharge_pathways"]) == {"pathway_1": 1}
    assert f["discharge_delay"].figure == 1.0 and parts(f["discharge_delay"]) == {"delayed": 1}
    # safeguarding: one concern, a section 42 enquiry, all on time, outcomes asked and partially achieved,
    # risk reduced
    assert (f["safeguarding_enquiries"].numerator, f["safeguarding_enquiries"].denominator) == (1, 1)
    assert f["safeguarding_decision_time"].figure == 100.0 and f["safeguarding_enquiry_time"].figure == 100.0
    assert parts(f["safeguarding_outcomes"]) == {"asked": 1, "partially": 1}
    assert f["safeguarding_risk"].figure == 100.0 and parts(f["safeguarding_risk"]) == {"risk_reduced": 1}
    assert f["dols_timeliness"].figure is None and "no process" in f["dols_timeliness"].not_recorded
    # the direct payment's first review (due after 5 months) has not fallen due in the data
    assert f["direct_payment_reviews"].denominator == 0 and f["direct_payment_reviews"].figure is None
    assert ref(c["dp"]).startswith("CASE-")


def test_the_period_decides_what_counts(county):
    eng, c = county
    pop = m.load_population(eng)
    q1, q2 = figures(pop, *Q1), figures(pop, *Q2)
    assert q1["new_requests"].figure == 3 and q2["new_requests"].figure == 0
    assert parts(q1["reablement_lengths"]) == {"within_42": 1} and parts(q2["reablement_lengths"]) == {"within_42": 1}
    assert q1["ascof_2d"].denominator == 0 and q2["ascof_2d"].numerator == 1
    assert q1["first_reviews"].denominator == 0 and q2["first_reviews"].denominator == 2
    # 3D is a snapshot on the period's last day: both plans were in place on 31 March
    assert q1["ascof_3d1"].denominator == 2
    # a month with nothing in it
    empty = figures(pop, date(2031, 8, 1), date(2031, 8, 31))
    assert empty["new_requests"].figure == 0 and empty["new_requests"].message == "No request ended in this period."
    assert empty["ascof_2a"].figure is None and empty["ascof_2a"].message


def test_a_team_sees_the_work_of_its_own_tasks(county):
    eng, c = county
    pop = m.load_population(eng)
    reablement = figures(pop, *YEAR, team="reablement")
    assert reablement["reablement_lengths"].extra["longest_days"] == 41
    assert reablement["assessments_28_days"].denominator == 0  # social work's
    assert reablement["ascof_2d"].denominator == 1  # the follow-up check is the reablement team's
    hospital = figures(pop, *YEAR, team="hospital_team")
    assert parts(hospital["discharge_pathways"]) == {"pathway_1": 1}
    assert hospital["new_requests"].figure == 1  # Harriet's discharge request; the front door's are not theirs
    assert figures(pop, *YEAR, team="safeguarding")["safeguarding_enquiries"].denominator == 1


def test_over_time_gives_one_figure_a_month(county):
    eng, _c = county
    pop = m.load_population(eng)
    series = m.over_time(pop, "reablement_lengths", *Q1[:1], date(2031, 6, 30))
    assert [s["from"] for s in series] == ["2031-01-01", "2031-02-01", "2031-03-01", "2031-04-01", "2031-05-01",
                                           "2031-06-01"]
    assert [s["count"] for s in series] == [0, 0, 1, 1, 0, 0]
    assert [s["figure"] for s in series][2:4] == [20, 41]


def test_carepath_measures_prints_the_figures_and_refuses_a_backwards_period(county, capsys):
    from engine.cli import main

    eng, c = county
    assert main(["measures", "--db", eng.db.url, "--from", "2031-01-01", "--to", "2031-12-31"]) == 0
    said = capsys.readouterr().out
    assert "ASCOF 2D: people 65+ still at home 91 days after discharge into reablement: 100.0% (1 of 1)" in said
    assert "Deprivation of Liberty Safeguards applications decided in time: not recorded" in said
    assert main(["measures", "--db", eng.db.url, "--from", "2031-04-01", "--to", "2031-03-31"]) == 2
    assert "--to (2031-03-31) is before --from (2031-04-01)" in capsys.readouterr().err
    assert main(["measures", "--db", eng.db.url, "--from", "2031-01-01", "--to", "2031-03-31", "--team", "nobody"]) == 2
    assert "is not a team" in capsys.readouterr().err
    assert main(["measures", "--db", eng.db.url, "--from", "2020-01-01", "--to", "2020-03-31"]) == 0
    assert "No events in this period" in capsys.readouterr().out
    import json

    assert main(["measures", "--db", eng.db.url, "--from", "2031-01-01", "--to", "2031-12-31", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_key = {x["key"]: x for x in data["measures"]}
    assert by_key["ascof_3d2"]["numerator"] == 1 and by_key["ascof_3d2"]["denominator"] == 2
    assert by_key["ascof_3d2"]["cases"] == sorted([eng.get_case(c["dp"])["reference"],
                                                   eng.get_case(c["commissioned"])["reference"]])
    assert by_key["ascof_3d2"]["source"].startswith("ASCOF 3D part 2a")

