"""The published measures (handlers/measures.py, docs/measures.md) against populations whose answers are known.

Two populations:

* cases driven through the real diagrams, handlers and forms on the simulated clock (as tests/test_cld.py
  does): a signposted contact, reablement from the front door, two people assessed into long-term support
  (a direct payment, council-commissioned support), reablement after which needs remain and a managed
  personal budget follows, a hospital discharge into reablement with its 91-day follow-up and a
  safeguarding concern taken to its outcome — every measure is checked against values
  worked out by hand from the dates below;
* synthetic history events, built the way the engine writes them, for the boundaries: exactly 28 days,
  42 against 43 days of reablement, the 91st day, a plan superseded before its review, a closed case,
  deadlines passed, and histories the CLD rows cannot be read from.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bench.county import in_reablement, needs_remain_to_managed_budget, safeguarding_to_outcome
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers import measures as m
from tests.conftest import START
from tests.test_cld import (
    FILES,
    FIRST_REVIEW,
    ROOT,
    complete,
    contact,
    discharge,
    discharge_response,
    front_door,
    to_plan,
)
from tests.test_process_assessment_to_review import SMALL, assessment, ras
from tests.test_process_safeguarding_discharge import CONCERN

YEAR = (date(2031, 1, 1), date(2031, 12, 31))
Q1 = (date(2031, 1, 1), date(2031, 3, 31))
Q2 = (date(2031, 4, 1), date(2031, 6, 30))


def figures(pop, start, end, team=None):
    return {r.key: r for r in m.compute_all(pop, start, end, team)}


def parts(result):
    return {p.key: p.count for p in result.parts if p.count}


def make_engine_2031(url: str) -> Engine:
    """The real diagrams, handlers and forms on a simulated clock from Monday 3 March 2031, 09:00 UTC."""
    engine = Engine(url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy(FILES)
    return engine


@pytest.fixture
def engine_2031(db_url):
    engine = make_engine_2031(db_url)
    yield engine
    engine.db.dispose()


@pytest.fixture
def county(engine_2031):
    """The driven population (clock starts Monday 3 March 2031, 09:00 UTC)."""
    return engine_2031, drive_county(engine_2031)


def drive_county(eng) -> dict[str, int]:
    """Drive the population's cases through the processes (bench/measures_bench.py reuses it); their ids."""
    c = {}
    c["advice"] = front_door(eng, contact(advice_given="Leaflet on falls prevention"))  # request closed 3 March
    c["reablement"] = in_reablement(eng, "Wash and dress", 2)
    c["long_term"] = in_reablement(eng, "Make a meal", 1)
    c["dp"] = to_plan(eng, "direct_payment")  # assessed and signed off on 3 March
    c["commissioned"] = to_plan(eng, "council_managed")
    c["safeguarding"] = safeguarding_to_outcome(eng, CONCERN)  # this file's concern names the lodger
    c["harriet"] = discharge(eng, discharge_response())  # ready 4 March, discharged 5 March; now 5 March 12:00
    complete(eng, c["harriet"], "plan_reablement", {"goals": ["Walk to the shop"], "setting": "home",
                                                    "start_type": "hospital_discharge", "visits_per_day": 2})
    eng.advance_clock(timedelta(days=18))  # 23 March
    complete(eng, c["reablement"], "deliver_reablement", {"outcome": "best_independence_reached", "summary": "Done"})
    # needs remain after 20 days: assessed the same day (the request for assessment), a managed account
    needs_remain_to_managed_budget(eng, c["long_term"], assessment("personal_hygiene", "managing_nutrition",
                                                                   "using_home_safely"), ras(**SMALL))
    eng.advance_clock(timedelta(days=FIRST_REVIEW - 20))  # 15 April: the first reviews are ready
    complete(eng, c["dp"], "review_plan", {"needs_changed": False, "plan_working": True})
    complete(eng, c["harriet"], "prepare_for_end", {"progress": "on_track_to_end"})  # reminder of 9 April
    complete(eng, c["harriet"], "deliver_reablement", {"outcome": "best_independence_reached", "summary": "Walking"})
    eng.advance_clock(timedelta(days=50))  # 4 June: the 91st day after Harriet's discharge
    complete(eng, c["harriet"], "check_still_at_home", {"at_home": "yes"})
    return c


def test_every_measure_for_the_driven_population(county):
    eng, c = county
    pop = m.load_population(eng)
    assert pop.cld_errors == {}
    ref = pop.reference
    f = figures(pop, *YEAR)

    # STS001: four requests ended (the two people assessed straight away came without a request):
    # signposting -> I&A; the three that led to reablement -> short term (ST-Max ranks first in DHSC's
    # order, above the long-term support that followed one of them)
    new = f["new_requests"]
    assert parts(new) == {"information_advice": 1, "short_term": 3}
    assert new.figure == 4 and {p.key: p.case_ids for p in new.parts if p.count} == {
        "information_advice": [c["advice"]], "short_term": sorted([c["reablement"], c["harriet"], c["long_term"]])}
    # ASCOF 2A: three reablement episodes ended; one was followed by long-term support
    assert (f["ascof_2a"].figure, f["ascof_2a"].numerator, f["ascof_2a"].denominator) == (66.7, 2, 3)
    assert {p.key: p.case_ids for p in f["ascof_2a"].parts if p.count} == {
        "no_long_term": sorted([c["reablement"], c["harriet"]]), "long_term": [c["long_term"]]}
    # ASCOF 2D: Harriet (84) at home on the 91st day (4 June)
    assert (f["ascof_2d"].figure, f["ascof_2d"].numerator, f["ascof_2d"].denominator) == (100.0, 1, 1)
    assert f["ascof_2d"].items[0]["day"] == "2031-06-04"
    # ASCOF 3D on 31 December: three people in community long-term support: a direct payment, a managed
    # account and a budget the council manages (both CLD "CASSR managed personal budget": self-directed
    # support, handlers/cld.py DELIVERY_BY_MONEY_MANAGEMENT)
    assert (f["ascof_3d1"].figure, f["ascof_3d1"].numerator, f["ascof_3d1"].denominator) == (100.0, 3, 3)
    assert (f["ascof_3d2"].figure, f["ascof_3d2"].numerator, f["ascof_3d2"].denominator) == (33.3, 1, 3)
    assert {p.key: p.case_ids for p in f["ascof_3d1"].parts if p.count} == {
        "direct_payment": [c["dp"]], "managed_budget": sorted([c["long_term"], c["commissioned"]])}
    # three assessments, each done the day it was asked for (0 days): after reablement, the request for
    # assessment is the day reablement referred on (23 March), not the first contact (3 March)
    assert (f["assessments_28_days"].numerator, f["assessments_28_days"].denominator) == (3, 3)
    assert [i["days"] for i in f["assessments_28_days"].items] == [0, 0, 0]
    # first reviews: two plans signed off 3 March (8 weeks on 28 April), one reviewed on 15 April (43 days);
    # one signed off 23 March (8 weeks on 18 May), not reviewed
    first = f["first_reviews"]
    assert (first.figure, first.numerator, first.denominator) == (33.3, 1, 3)
    assert {p.key: p.case_ids for p in first.parts if p.count} == {
        "on_time": [c["dp"]], "not_done": sorted([c["commissioned"], c["long_term"]])}
    # the undone first reviews are overdue at the end of the year (their escalation fired after 8 weeks)
    assert sorted(i["case_id"] for i in f["overdue_reviews"].items) == sorted([c["commissioned"], c["long_term"]])
    # nobody has been in long-term support for 12 months by 31 December 2031 (since March)
    assert f["annual_reviews"].figure is None and f["annual_reviews"].denominator == 0
    # reablement: 3 to 23 March twice (20 days) and 5 March to 15 April (41 days); none extended
    reab = f["reablement_lengths"]
    assert parts(reab) == {"within_42": 3} and reab.figure == 20 and reab.extra["longest_days"] == 41
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
    assert q1["new_requests"].figure == 4 and q2["new_requests"].figure == 0
    assert parts(q1["reablement_lengths"]) == {"within_42": 2} and parts(q2["reablement_lengths"]) == {"within_42": 1}
    assert q1["ascof_2d"].denominator == 0 and q2["ascof_2d"].numerator == 1
    assert q1["first_reviews"].denominator == 0 and q2["first_reviews"].denominator == 3
    # 3D is a snapshot on the period's last day: the three plans were in place on 31 March
    assert q1["ascof_3d1"].denominator == 3
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
    assert [s["count"] for s in series] == [0, 0, 2, 1, 0, 0]
    assert [s["figure"] for s in series][2:4] == [20, 41]


def test_carepath_measures_prints_the_figures_and_refuses_a_backwards_period(county, capsys):
    from carepath.cli import main

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
    assert by_key["ascof_3d2"]["numerator"] == 1 and by_key["ascof_3d2"]["denominator"] == 3
    assert by_key["ascof_3d2"]["cases"] == sorted(eng.get_case(c[k])["reference"]
                                                  for k in ("dp", "commissioned", "long_term"))
    assert by_key["ascof_3d2"]["source"].startswith("ASCOF 3D part 2a")



def test_a_case_closed_mid_period_leaves_the_snapshot_measures_from_its_closure(county):
    eng, c = county
    eng.advance_clock(timedelta(days=72))  # 15 August
    eng.close_case(c["commissioned"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
    pop = m.load_population(eng)
    q2, q3 = figures(pop, *Q2), figures(pop, date(2031, 7, 1), date(2031, 9, 30))
    assert (q2["ascof_3d1"].numerator, q2["ascof_3d1"].denominator) == (3, 3)  # in support on 30 June
    assert (q3["ascof_3d1"].numerator, q3["ascof_3d1"].denominator) == (2, 2)  # gone by 30 September
    assert sorted(i["case_id"] for i in q2["overdue_reviews"].items) == sorted([c["commissioned"], c["long_term"]])
    assert [i["case_id"] for i in q3["overdue_reviews"].items] == [c["long_term"]]  # its review went with the case
    # what happened before the closure still counts in its own period
    assert q2["first_reviews"].denominator == 3


# ---------------------------------------------------------------- synthetic histories: the boundaries

TEAMS = {("needs_assessment", "assess_needs"): frozenset({"social_work"}),
         ("reablement", "plan_reablement"): frozenset({"reablement"}),
         ("reablement", "decide_extend_or_end"): frozenset({"team_manager"}),
         ("hospital_follow_up", "check_still_at_home"): frozenset({"reablement"})}


def at(day: str, hour: int = 10) -> str:
    return f"{day}T{hour:02d}:00:00.000000+00:00"


class History:
    """Histories written the way the engine writes them: one chain per case, instances inside it."""

    def __init__(self) -> None:
        self.cases: dict[int, list[dict]] = {}
        self.next_instance = 100

    def instance(self, case_id: int, process: str, started: str, data: dict | None = None, *steps,
                 completed: str | None = None, parent: int | None = None) -> int:
        iid = self.next_instance = self.next_instance + 1
        events = self.cases.setdefault(case_id, [])
        rows = [("instance.started", started, {"process_id": process, "data": data or {},
                                               "parent_instance_id": parent})]
        rows += list(steps)
        if completed:
            rows.append(("instance.completed", completed, {"process_id": process}))
        for kind, when, payload in rows:
            events.append({"seq": len(events) + 1, "case_id": case_id, "instance_id": iid, "type": kind,
                           "at": when, "actor": "worker", "data": payload})
        return iid

    def population(self) -> m.Population:
        cases = [{"id": cid, "reference": f"CASE-{cid:06d}", "data": {}} for cid in self.cases]
        return m.build_population(cases, self.cases, TEAMS)


def ready(element: str, when: str) -> tuple:
    return ("task.ready", when, {"element_id": element})


def done(element: str, when: str, data: dict | None = None) -> tuple:
    return ("task.completed", when, {"element_id": element, "data": data or {}})


def fired(element: str, when: str) -> tuple:
    return ("timer.fired", when, {"element_id": element})


def test_an_assessment_done_on_the_28th_day_is_within_28_days_and_the_29th_is_not():
    h = History()
    for case_id, finished in ((1, "2031-03-29"), (2, "2031-03-30")):
        h.instance(case_id, "needs_assessment", at("2031-03-02"), {"contact_date": "2031-03-01"},
                   ready("assess_needs", at("2031-03-02")), done("assess_needs", at(finished)),
                   completed=at(finished))
    # asked for on 1 March, still not assessed: not counted until it is completed
    h.instance(3, "needs_assessment", at("2031-03-02"), {"contact_date": "2031-03-01"},
               ready("assess_needs", at("2031-03-02")))
    r = m.compute("assessments_28_days", h.population(), date(2031, 3, 1), date(2031, 3, 31))
    assert (r.numerator, r.denominator, r.figure) == (1, 2, 50.0)
    assert {p.key: p.case_ids for p in r.parts} == {"within_28": [1], "over_28": [2]}
    assert [i["days"] for i in r.items] == [28, 29]
    # the team filter: the assessment tasks are social work's
    assert m.compute("assessments_28_days", h.population(), date(2031, 3, 1), date(2031, 3, 31),
                     "reablement").denominator == 0


def test_reablement_of_42_days_is_within_six_weeks_43_is_not_and_a_managers_extension_is_counted():
    h = History()
    for case_id, end, decision in ((1, "2031-04-12", None), (2, "2031-04-13", None), (3, "2031-04-26", "extend")):
        steps = [ready("plan_reablement", at("2031-02-28")), done("plan_reablement", at("2031-03-01"))]
        if decision:
            steps += [ready("decide_extend_or_end", at("2031-04-12")),
                      done("decide_extend_or_end", at("2031-04-12"), {"decision": "extend", "reason": "Stairs",
                                                                      "extension_days": 14})]
        h.instance(case_id, "reablement", at("2031-02-28"), {}, *steps, completed=at(end))
    r = m.compute("reablement_lengths", h.population(), date(2031, 4, 1), date(2031, 4, 30))
    assert [i["days"] for i in r.items] == [42, 43, 56]
    assert {p.key: p.case_ids for p in r.parts} == {"within_42": [1], "over_42": [2, 3], "extended": [3]}
    assert (r.figure, r.extra["mean_days"], r.extra["longest_days"]) == (43, 47.0, 56)
    # the manager's decision does not make the episode the team manager's: it stays the reablement team's
    assert m.compute("reablement_lengths", h.population(), date(2031, 4, 1), date(2031, 4, 30),
                     "reablement").parts[2].count == 1


def test_the_91st_day_after_discharge_puts_the_follow_up_in_its_period():
    h = History()
    answers = {1: {"at_home": "yes"}, 2: {"at_home": "no", "where_now": "care_home"}, 3: None}
    for case_id, answer in answers.items():
        steps = [("handler.called", at("2031-03-01"), {"handler": "local_settings",
                                                       "output": {"hospital_follow_up_after_discharge": "P91D"}})]
        if answer:
            steps += [ready("check_still_at_home", at("2031-05-31")),
                      done("check_still_at_home", at("2031-05-31"), answer)]
        h.instance(case_id, "hospital_follow_up", at("2031-04-20"), {"discharge_date": "2031-03-01", "age": 80},
                   *steps, completed=at("2031-05-31") if answer else None)
    # a council that set its follow-up at 90 days does not give the 91-day figure
    h.instance(4, "hospital_follow_up", at("2031-04-20"), {"discharge_date": "2031-03-01"},
               ("handler.called", at("2031-03-01"), {"handler": "local_settings",
                                                    "output": {"hospital_follow_up_after_discharge": "P90D"}}),
               done("check_still_at_home", at("2031-05-30"), {"at_home": "yes"}), completed=at("2031-05-30"))
    pop = h.population()
    # 1 March + 91 days = 31 May
    assert m.compute("ascof_2d", pop, date(2031, 5, 1), date(2031, 5, 30)).items == []
    r = m.compute("ascof_2d", pop, date(2031, 5, 31), date(2031, 6, 30))
    assert (r.numerator, r.denominator, r.figure) == (1, 2, 50.0)
    assert {p.key: p.case_ids for p in r.parts} == {"at_home": [1], "not_at_home": [2], "not_yet_checked": [3],
                                                    "not_at_91_days": [4]}
    assert r.extra["left_out"] == {"not_yet_checked": 1, "not_at_91_days": 1}


def _reablement_ends(eng, cid):
    complete(eng, cid, "plan_reablement", {"goals": ["Make a hot meal"], "setting": "home", "start_type": "planned",
                                           "visits_per_day": 1})
    eng.advance_clock(timedelta(days=10))
    complete(eng, cid, "deliver_reablement", {"outcome": "best_independence_reached", "summary": "Reablement ended"})


def _born(born, **changes):
    """A contact form giving the person's date of birth (the age is then worked out from it, not asked)."""
    form = contact(person_date_of_birth=born, **changes)
    del form["person"]["age"]
    return form


def _in_2d(eng, cid, day91):
    """The case's parts in ASCOF 2D for the month holding its 91st day after discharge, and its follow-ups."""
    r = m.compute("ascof_2d", m.load_population(eng), date(day91.year, day91.month, 1), day91)
    follow_ups = [i for i in eng.get_case(cid)["instances"] if i["process_id"] == "hospital_follow_up"]
    return sorted(p.key for p in r.parts if cid in p.case_ids), len(follow_ups)


@pytest.mark.parametrize("born, in_2d", [
    ("1966-03-10", ["not_yet_checked"]),  # 64 at the referral (3 March 2031), 65 on the day they leave (10 March)
    ("1966-03-11", []),  # 65 the day after they leave: not in ASCOF 2D
])
def test_the_91_day_follow_up_is_for_people_65_or_over_on_the_day_they_leave_hospital(engine_2031, born, in_2d):
    from api import case_actions

    eng = engine_2031
    cid = front_door(eng, _born(born, advice_given="Leaflet on falls"))
    # the referral as the case's "Refer a hospital discharge" action makes it (the age on the day of the referral)
    process_id, data, errors = case_actions.start_data(eng, eng.get_case(cid), "hospital_discharge",
                                                       {"reason": "Fall at home", "ward": "Ward 7"})
    assert (errors, data["person"]["age"]) == ({}, 64)
    eng.start(process_id, case_id=cid, data=data, actor="hospital-social-worker")
    complete(eng, cid, "respond_to_referral", discharge_response())
    eng.advance_clock(timedelta(days=7))
    complete(eng, cid, "record_discharge", {"discharge_ready_date": "2031-03-10", "discharge_date": "2031-03-10",
                                            "delay_reason": "none"})
    _reablement_ends(eng, cid)
    # 10 March + 91 days = 9 June 2031
    assert _in_2d(eng, cid, date(2031, 6, 9)) == (in_2d, len(in_2d))


@pytest.mark.parametrize("born, in_2d", [
    ("1966-03-01", ["not_yet_checked"]),  # 65 on the day they left hospital (1 March), and at the contact
    ("1966-03-02", []),  # 65 at the contact (3 March) but 64 on the day they left (1 March): not in ASCOF 2D
])
def test_a_front_door_contact_after_leaving_hospital_follows_up_by_the_age_on_the_discharge_day(engine_2031, born,
                                                                                                 in_2d):
    eng = engine_2031
    cid = front_door(eng, _born(born, outcomes_unable=["personal_hygiene", "being_appropriately_clothed",
                                                       "using_the_home_safely"], from_hospital=True,
                                discharge_date="2031-03-01"))
    _reablement_ends(eng, cid)
    # 1 March + 91 days = 31 May 2031
    assert _in_2d(eng, cid, date(2031, 5, 31)) == (in_2d, len(in_2d))


@pytest.mark.parametrize("days_on, reason, details, part, detail", [
    # died three weeks after leaving hospital: not at home on the 91st day (31 May), in the denominator only
    (20, "died", {"date_of_death": "2031-03-20"}, "not_at_home", "not at home (died on 2031-03-20, before the 91st"),
    (20, "moved_away", {"council": "Southshire"}, "not_at_home", "not at home (moved to another council; case closed "
                                                                 "2031-03-23)"),
    # closed for another reason, or a death after the 91st day: where they were that day is not known
    (20, "declined", None, "not_yet_checked", "the case was closed (declined) on 2031-03-23 before it was"),
    (99, "died", {"date_of_death": "2031-06-05"}, "not_yet_checked", "the case was closed (died) on 2031-06-10"),
])
def test_a_follow_up_ended_by_the_cases_closure_counts_a_death_or_a_move_as_not_at_home(engine_2031, days_on, reason,
                                                                                          details, part, detail):
    eng = engine_2031
    cid = front_door(eng, contact(outcomes_unable=["personal_hygiene", "being_appropriately_clothed",
                                                   "using_the_home_safely"], from_hospital=True,
                                  discharge_date="2031-03-01", person_age=80))
    _reablement_ends(eng, cid)  # 13 March: the 91-day follow-up is waiting for 31 May
    eng.advance_clock(timedelta(days=days_on - 10))
    eng.close_case(cid, reason=reason, details=details, actor="tm_tom")
    r = m.compute("ascof_2d", m.load_population(eng), date(2031, 5, 1), date(2031, 5, 31))
    assert {p.key: p.case_ids for p in r.parts if p.case_ids} == {part: [cid]}
    assert (r.numerator, r.denominator) == ((0, 1) if part == "not_at_home" else (0, 0))
    assert detail in r.items[0]["detail"]


@pytest.mark.parametrize("days_on, part", [
    (17, "ended"),  # died on 20 March, before the first review was due: no review to do, left out
    (56, "ended"),  # closed on the 8-week point itself (28 April): the review was not yet late
    (63, "not_done"),  # closed a week after the 8-week point with no review: it was missed, and counts
])
def test_a_plan_whose_support_ended_before_its_first_review_was_due_is_left_out(engine_2031, days_on, part):
    eng = engine_2031
    cid = to_plan(eng, "direct_payment")  # signed off on 3 March: 8 weeks on 28 April
    eng.advance_clock(timedelta(days=days_on))
    died = (date(2031, 3, 3) + timedelta(days=days_on)).isoformat()
    eng.close_case(cid, reason="died", details={"date_of_death": died}, actor="tm_tom")
    r = m.compute("first_reviews", m.load_population(eng), date(2031, 4, 1), date(2031, 4, 30))
    assert {p.key: p.case_ids for p in r.parts if p.case_ids} == {part: [cid]}
    assert (r.numerator, r.denominator) == ((0, 0) if part == "ended" else (0, 1))


def test_a_person_65_or_over_who_died_or_moved_before_the_91st_day_counts_as_not_at_home():
    """ASCOF 2D counts someone who has died or moved away by the 91st day in the denominator (not at home). Their
    case was closed, so the follow-up was withdrawn unrecorded — or never scheduled, when the case closed during
    reablement: they were left out as 'not yet recorded', or not seen at all, and the figure rose."""
    h = History()
    settings_read = ("handler.called", at("2031-03-01"), {"handler": "local_settings",
                                                          "output": {"hospital_follow_up_after_discharge": "P91D"}})
    discharge = {"discharge_date": "2031-03-01", "age": 80}  # the 91st day: 31 May 2031

    def closed(reason, day):
        return ("instance.cancelled", at(day), {"process_id": "x", "reason": reason, "details": {}})

    h.instance(1, "hospital_follow_up", at("2031-04-20"), discharge, settings_read, closed("died", "2031-05-10"))
    h.instance(2, "hospital_follow_up", at("2031-04-20"), discharge, settings_read,
               closed("moved_away", "2031-05-31"))  # on the 91st day itself
    h.instance(3, "hospital_follow_up", at("2031-04-20"), discharge, settings_read,
               closed("moved_away", "2031-06-01"))  # the day after: where they were on the day is not known
    h.instance(4, "hospital_follow_up", at("2031-04-20"), discharge, settings_read, closed("declined", "2031-05-10"))
    h.instance(5, "hospital_follow_up", at("2031-04-20"), discharge, settings_read,
               ready("check_still_at_home", at("2031-05-31")),
               done("check_still_at_home", at("2031-05-31"), {"at_home": "yes"}), completed=at("2031-05-31"))
    during = {"from_hospital": True, "discharge_date": "2031-03-01"}
    h.instance(6, "reablement", at("2031-03-01"), {**during, "age": 65}, closed("died", "2031-03-20"))  # 65 exactly
    h.instance(7, "reablement", at("2031-03-01"), {**during, "age": 64}, closed("died", "2031-03-20"))  # under 65
    h.instance(8, "reablement", at("2031-03-01"), {**during, "age": 80, "from_hospital": False},
               closed("died", "2031-03-20"))  # not from hospital
    r = m.compute("ascof_2d", h.population(), date(2031, 5, 31), date(2031, 6, 30))
    assert {p.key: p.case_ids for p in r.parts if p.case_ids} == {"at_home": [5], "not_at_home": [1, 2, 6],
                                                                  "not_yet_checked": [3, 4]}
    assert (r.numerator, r.denominator) == (1, 4)
    assert [i["detail"] for i in r.items if i["case_id"] in (1, 6)] == [
        "discharged 2031-03-01, 91st day 2031-05-31: not at home (died on 2031-05-10, before the 91st day)",
        "discharged 2031-03-01, 91st day 2031-05-31: not at home (died (case closed 2031-03-20) during reablement)"]


def test_a_first_review_on_day_56_is_within_eight_weeks_and_day_57_is_late():
    h = History()
    for case_id, reviewed in ((1, "2031-04-26"), (2, "2031-04-27"), (3, None), (4, "superseded")):
        plan = h.instance(case_id, "support_plan", at("2031-02-20"), {},
                          done("sign_off_plan", at("2031-03-01"), {"signed_off": True}))
        if reviewed == "superseded":  # a newer plan: the review ends at its due date without a task
            h.instance(case_id, "review", at("2031-03-01"), {"first": True}, completed=at("2031-04-12"),
                       parent=plan)
        elif reviewed:
            h.instance(case_id, "review", at("2031-03-01"), {"first": True}, ready("review_plan", at("2031-04-12")),
                       done("review_plan", at(reviewed), {"needs_changed": False}), completed=at(reviewed), parent=plan)
        else:
            h.instance(case_id, "review", at("2031-03-01"), {"first": True}, ready("review_plan", at("2031-04-12")),
                       fired("review_overdue_timer", at("2031-04-26", 17)), parent=plan)
    pop = h.population()
    r = m.compute("first_reviews", pop, date(2031, 4, 1), date(2031, 4, 30))  # 1 March + 56 days = 26 April
    assert {p.key: p.case_ids for p in r.parts} == {"on_time": [1], "late": [2], "not_done": [3], "superseded": [4],
                                                    "ended": []}
    assert (r.numerator, r.denominator) == (1, 3)
    # the undone review is overdue from the day its escalation fired, and not before
    assert m.compute("overdue_reviews", pop, date(2031, 4, 1), date(2031, 4, 25)).figure == 0
    overdue = m.compute("overdue_reviews", pop, date(2031, 4, 1), date(2031, 4, 26))
    assert overdue.figure == 1 and overdue.case_ids == [3]


def test_direct_payment_reviews_on_the_limit_day_count_and_one_not_yet_due_is_left_out():
    h = History()
    limit = ("timer.set", at("2031-08-01"), {"element_id": "dp_review_overdue_timer",
                                            "due_at": "2031-09-01T17:00:00.000000+00:00"})
    h.instance(1, "direct_payment_review", at("2031-03-01"), {}, limit,
               done("review_direct_payment", at("2031-09-01", 16)))
    h.instance(2, "direct_payment_review", at("2031-03-01"), {}, limit, done("review_direct_payment", at("2031-09-02")))
    h.instance(3, "direct_payment_review", at("2031-03-01"), {}, limit)  # never done
    h.instance(4, "review", at("2031-09-20"), {})  # the data runs to 20 September
    h.instance(5, "direct_payment_review", at("2031-03-01"), {},
               ("timer.set", at("2031-08-01"), {"element_id": "dp_review_overdue_timer",
                                                "due_at": "2031-09-25T17:00:00.000000+00:00"}))
    # the case closed before the limit (a death on 20 August, recorded on the 25th): no review to do, left out;
    # closed after the limit with no review (10 September): the review was missed, and is late
    h.instance(6, "direct_payment_review", at("2031-03-01"), {}, limit,
               ("instance.cancelled", at("2031-08-25"), {"process_id": "direct_payment_review", "reason": "died",
                                                         "details": {"date_of_death": "2031-08-20"}}))
    h.instance(7, "direct_payment_review", at("2031-03-01"), {}, limit,
               ("instance.cancelled", at("2031-09-10"), {"process_id": "direct_payment_review",
                                                         "reason": "moved_away", "details": {"council": "S"}}))
    r = m.compute("direct_payment_reviews", h.population(), date(2031, 9, 1), date(2031, 9, 30))
    assert {p.key: p.case_ids for p in r.parts} == {"on_time": [1], "late": [2, 3, 7], "not_yet_due": [5],
                                                    "ended": [6]}
    assert (r.numerator, r.denominator, r.figure) == (1, 4, 25.0)
    assert next(i for i in r.items if i["case_id"] == 6)["detail"].endswith(
        "the direct payment ended (died) on 2031-08-20, before the limit")


def test_safeguarding_deadlines_passed_make_a_decision_or_enquiry_late():
    h = History()
    h.instance(1, "safeguarding", at("2031-03-03"), {"concern_date": "2031-03-03"},
               done("triage_decision", at("2031-03-04"), {"decision": "other_enquiry"}),
               done("enquiry", at("2031-03-20")))
    h.instance(2, "safeguarding", at("2031-03-03"), {"concern_date": "2031-03-02"},
               fired("decision_overdue", at("2031-03-04", 17)),
               done("triage_decision", at("2031-03-05"), {"decision": "s42_enquiry"}),
               fired("enquiry_overdue", at("2031-04-02", 17)), done("enquiry", at("2031-04-03")))
    h.instance(3, "safeguarding", at("2031-03-31"), {},
               done("triage_decision", at("2031-04-01"), {"decision": "no_further_action_with_advice"}))
    h.instance(4, "safeguarding", at("2031-03-31"), {})  # no decision yet
    pop = h.population()
    march = date(2031, 3, 1), date(2031, 3, 31)
    conv = m.compute("safeguarding_enquiries", pop, *march)
    assert {p.key: p.case_ids for p in conv.parts if p.count} == {
        "s42_enquiry": [2], "other_enquiry": [1], "no_further_action": [3], "no_decision_yet": [4]}
    assert (conv.numerator, conv.denominator, conv.figure) == (2, 3, 66.7)
    decisions = m.compute("safeguarding_decision_time", pop, *march)
    assert {p.key: p.case_ids for p in decisions.parts} == {"on_time": [1], "late": [2]}
    assert m.compute("safeguarding_enquiry_time", pop, date(2031, 3, 1), date(2031, 4, 30)).figure == 50.0


def test_a_history_the_cld_rows_cannot_be_read_from_is_listed_not_guessed():
    h = History()
    h.instance(1, "review", at("2031-05-01"), {"review_reason": "Hospital admission"},
               ready("review_plan", at("2031-05-01")), done("review_plan", at("2031-05-06"), {"needs_changed": False}),
               completed=at("2031-05-06"))
    pop = h.population()
    assert list(pop.cld_errors) == [1] and "'Hospital admission'" in pop.cld_errors[1]
    assert m.compute("new_requests", pop, *YEAR).items == []


def test_bad_input_is_a_clear_error():
    pop = History().population()
    with pytest.raises(m.MeasureError, match=r"ends \(2031-03-31\) before it starts \(2031-04-01\)"):
        m.compute("ascof_2a", pop, date(2031, 4, 1), date(2031, 3, 31))
    with pytest.raises(m.MeasureError, match="there is no measure 'ascof_9z'"):
        m.compute("ascof_9z", pop, *YEAR)
    with pytest.raises(m.MeasureError, match="has no part 'nope'"):
        m.measure_cases(pop, "ascof_2a", *YEAR, part="nope")
    empty = {r.key: r for r in m.compute_all(pop, *YEAR)}
    assert empty["new_requests"].figure == 0 and empty["ascof_2d"].figure is None
    assert empty["ascof_2d"].message == "No 91-day follow-up fell in this period."


def test_every_measure_has_a_definition_and_a_source_written_in_the_docs():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "measures.md").read_text(encoding="utf-8")
    for key, measure in m.MEASURES.items():
        assert measure.definition and measure.source, key
        assert f"`{key}`" in doc, key


def test_after_a_new_event_only_its_case_is_read_again_and_the_figures_match_a_full_read(county):
    eng, c = county
    first = m.load_population(eng)
    assert m.load_population(eng) is first  # nothing written since: the same population
    eng.close_case(c["dp"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
    again = m.load_population(eng)
    assert again is not first and again.instances[next(iter(first.instances))] is not None
    unchanged = next(i for i in first.instances.values() if i.case_id == c["advice"])
    assert again.instances[unchanged.id] is unchanged  # another case's history was not read again
    m._LOADED.clear()
    full = m.load_population(eng)
    for start, end in (YEAR, Q2, (date(2031, 7, 1), date(2031, 12, 31))):
        assert [r.as_dict() for r in m.compute_all(again, start, end)] == \
            [r.as_dict() for r in m.compute_all(full, start, end)]
    assert figures(again, date(2031, 7, 1), date(2031, 12, 31))["ascof_3d2"].denominator == 2


@pytest.mark.parametrize("counts_from, days", [("request_for_assessment", 28), ("first_contact", 58)])
def test_after_reablement_the_28_days_count_from_where_the_council_counts_its_target(counts_from, days):
    h = History()
    settings = ("handler.called", at("2031-03-03"), {"handler": "local_settings", "element_id": "contact",
                                                   "output": {"assessment_target_from": counts_from}})
    # first contact 1 February; reablement referred on 3 March; assessed 31 March
    h.instance(1, "needs_assessment", at("2031-03-03"), {"contact_date": "2031-02-01", "reablement_outcome":
                                                         "needs_remain"}, settings,
               done("assess_needs", at("2031-03-31")), completed=at("2031-03-31"))
    r = m.compute("assessments_28_days", h.population(), date(2031, 3, 1), date(2031, 3, 31))
    assert [i["days"] for i in r.items] == [days]
    assert r.numerator == (1 if days <= 28 else 0)


def test_the_settings_the_measures_read_survive_the_loading_that_skips_the_rest():
    raw = ('{"element_id":"contact","handler":"local_settings","inputs":{},"output":{"assessment_target_days":28,'
           '"assessment_target_from":"first_contact","hospital_follow_up_after_discharge":"P90D","x":"y"}}')
    assert m._event_data("handler.called", raw) == {
        "handler": "local_settings", "element_id": "contact",
        "output": {"assessment_target_from": "first_contact", "hospital_follow_up_after_discharge": "P90D"}}
    letter = '{"element_id":"write_letter","handler":"eligibility_letter","inputs":{"person":{"name":"A"}},"output":{}}'
    assert m._event_data("handler.called", letter) == {"handler": "eligibility_letter", "element_id": "write_letter",
                                                       "output": {}}
    other = '{"element_id":"decide","handler":"adult_eligibility","output":{"eligible":true}}'
    assert m._event_data("handler.called", other)["output"] == {"eligible": True}


# ---------------------------------------------------------------- CLD rows: the snapshot measures

def service(iid, start, end, mechanism="CASSR Commissioned support", kind="Long Term Support: Community",
            client="Service User"):
    return {"event_type": "Service", "event_start": start, "event_end": end, "service_type": kind,
            "delivery_mechanism": mechanism, "outcome": None, "client_type": client, "instance_id": iid}


def review(iid, end):
    return {"event_type": "Review", "event_start": end, "event_end": end, "service_type": None,
            "delivery_mechanism": None, "outcome": "No change in package", "client_type": "Service User",
            "instance_id": iid}


def rows_population(rows_by_case: dict[int, list[dict]]) -> m.Population:
    cases = {cid: {"id": cid, "reference": f"CASE-{cid:06d}", "data": {}} for cid in rows_by_case}
    return m.Population(cases, {}, rows_by_case, {}, "2031-12-31")


def test_annual_reviews_count_people_in_support_for_twelve_months_reviewed_in_the_twelve_months_to_the_day():
    pop = rows_population({
        1: [service(1, "2030-06-30", None), review(2, "2030-07-01")],  # 365 days in support; reviewed in the year
        2: [service(3, "2030-06-30", None), review(4, "2030-06-30")],  # its review is 365 days before: too old
        3: [service(5, "2030-07-01", None)],  # 364 days in support: not yet counted
        # one plan replaced by the next: in support since the first
        4: [service(6, "2030-01-01", "2030-09-01"), service(7, "2030-09-01", None, "Direct Payment")],
        5: [service(8, "2029-01-01", "2031-05-01")],  # support ended before the day
    })
    r = m.compute("annual_reviews", pop, date(2031, 4, 1), date(2031, 6, 30))
    assert {p.key: p.case_ids for p in r.parts} == {"reviewed": [1], "not_reviewed": [2, 4]}
    assert (r.numerator, r.denominator) == (1, 3)
    assert next(i for i in r.items if i["case_id"] == 4)["detail"].startswith("long-term support since 2030-01-01")


@pytest.mark.parametrize("day, year_before", [
    ("2032-03-31", "2031-03-31"),  # the year to 31 March 2032 holds 29 February 2032: 366 days, still 12 months
    ("2031-03-31", "2030-03-31"),  # a common year: 365 days
    ("2032-02-29", "2031-02-28"),  # 29 February: the year before ends on the last day of February
])
def test_twelve_months_are_calendar_months_in_a_leap_year_too(day, year_before):
    before = date.fromisoformat(year_before)
    after = (before + timedelta(days=1)).isoformat()
    pop = rows_population({
        1: [service(1, year_before, None), review(2, after)],  # reviewed on the first day of the 12 months
        2: [service(3, year_before, None), review(4, year_before)],  # reviewed 12 months and a day ago: too old
        3: [service(5, after, None)],  # in support for 12 months less a day: not yet counted
    })
    r = m.compute("annual_reviews", pop, date.fromisoformat(day), date.fromisoformat(day))
    assert {p.key: p.case_ids for p in r.parts} == {"reviewed": [1], "not_reviewed": [2]}
    assert (r.numerator, r.denominator) == (1, 2)


def test_ascof_3d_counts_each_person_once_by_dhscs_order_and_only_community_support():
    pop = rows_population({
        1: [service(1, "2031-01-01", None), service(2, "2031-02-01", None, "Direct Payment")],  # both: direct payment
        2: [service(3, "2031-01-01", None, "CASSR Managed Personal Budget")],
        3: [service(4, "2031-01-01", None, None, "Long Term Support: Residential Care")],  # not community
        4: [service(5, "2031-01-01", None, "Direct Payment", "Carer Support: Direct to Carer", "Carer")],
        5: [service(6, "2031-01-01", "2031-03-30", "Direct Payment")],  # ended the day before
        6: [service(7, "2031-01-01", "2031-03-31", "Direct Payment")],  # ends on the day: still counted
    })
    one, two = (m.compute(k, pop, date(2031, 1, 1), date(2031, 3, 31)) for k in ("ascof_3d1", "ascof_3d2"))
    assert {p.key: p.case_ids for p in one.parts} == {"direct_payment": [1, 6], "managed_budget": [2],
                                                      "commissioned": []}
    assert (one.numerator, one.denominator, one.figure) == (3, 3, 100.0)
    assert (two.numerator, two.denominator, two.figure) == (2, 3, 66.7)
