"""The measures' kept per-case facts (measure_facts, handlers/measures.py load_population) and ASCOF 3D's age
bands and carers' parts (docs/measures.md).

* Kept facts give the same figures as a full recompute from every history, before and after new events, in
  this process and in another one (another Engine on the same database: its own in-process cache), and a case
  changed after the facts were kept is reflected; a slow writer never replaces later facts with earlier ones.
* ASCOF 3D by age band and 3D(1b)/(2b) on synthetic CLD rows whose answers are worked out by hand, with the
  boundaries: DHSC's age proxy on and around the 65th and 18th birthday, the first and last day of the period,
  a death before it, a carer on two cases, a delivery mechanism not recorded.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from engine.runtime import Engine
from engine.schema import events, measure_facts
from handlers import measures as m
from tests.test_measures import Q2, YEAR, county, engine_2031  # noqa: F401 - pytest fixtures and periods


@pytest.fixture
def driven(county):  # noqa: F811 - the imported fixture
    return county


PERIODS = (YEAR, Q2, (date(2031, 7, 1), date(2031, 12, 31)), (date(2031, 3, 3), date(2031, 3, 3)))


def from_histories(eng) -> m.Population:
    """The figures' inputs worked out from every history, without the kept facts (what the page did before)."""
    with eng.db.engine.connect() as conn:
        teams = m.task_teams_of(conn)
        case_list, histories = m._read_cases(conn, None)
    return m.build_population(case_list, histories, teams)


def all_figures(pop) -> list:
    out = []
    for start, end in PERIODS:
        out += [(r.as_dict(), r.items) for r in m.compute_all(pop, start, end)]  # the items: the drill-down
        out += [m.over_time(pop, key, start, end) for key in ("ascof_3d1", "ascof_3d1b", "direct_payment_reviews")]
    return out


def kept(eng) -> dict[int, tuple[int, str]]:
    with eng.db.engine.connect() as conn:
        return {r.case_id: (r.last_event_id, r.basis) for r in conn.execute(select(measure_facts))}


def latest_event(eng, case_id) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(events.c.id).where(events.c.case_id == case_id)
                            .order_by(events.c.id.desc()).limit(1)).scalar()


def test_kept_facts_give_the_figures_of_a_full_recompute_before_and_after_new_events(driven):
    eng, c = driven
    m._LOADED.pop(eng, None)
    first = m.load_population(eng)
    rows = kept(eng)
    assert set(rows) == set(first.cases) and all(event_id == latest_event(eng, cid)
                                                 for cid, (event_id, _b) in rows.items())
    assert all(v.rows is None for v in first.views.values())  # the page holds facts, not histories
    assert all_figures(first) == all_figures(from_histories(eng))

    # a case changed after the facts were kept: its direct payment ends with the case, in this process ...
    before = m.compute("ascof_3d2", first, date(2031, 7, 1), date(2031, 12, 31))
    assert (before.numerator, before.denominator) == (1, 3)
    eng.close_case(c["dp"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
    eng.update_case_record(c["advice"], {"note": "called again"}, actor="tm", reason="a note")
    again = m.load_population(eng)
    after = m.compute("ascof_3d2", again, date(2031, 7, 1), date(2031, 12, 31))
    assert (after.numerator, after.denominator) == (0, 2) and c["dp"] not in after.case_ids
    assert again.views[c["long_term"]] is first.views[c["long_term"]]  # an unchanged case is not read again
    assert kept(eng)[c["dp"]][0] == latest_event(eng, c["dp"]) > rows[c["dp"]][0]
    assert all_figures(again) == all_figures(from_histories(eng))

    # ... and in another process (another engine on the same database): the kept facts, not the histories
    other = Engine(eng.db.url)
    try:
        elsewhere = m.load_population(other)
        assert all_figures(elsewhere) == all_figures(again)
        # this process writes a new event; the other one works the case out again from the database
        eng.close_case(c["commissioned"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
        assert m.load_population(eng) is not again
        later = m.load_population(other)
        assert c["commissioned"] not in m.compute("ascof_3d1", later, date(2031, 7, 1), date(2031, 12, 31)).case_ids
        assert all_figures(later) == all_figures(from_histories(eng))
    finally:
        other.db.dispose()


def test_a_slow_writer_never_replaces_later_facts_and_a_stale_or_foreign_row_is_worked_out_again(driven):
    eng, c = driven
    m._LOADED.pop(eng, None)
    m.load_population(eng)
    event_id, basis = kept(eng)[c["dp"]]
    # another process that read the case before its latest event writes its (earlier) facts late: refused
    m._write_facts(eng, [{"case_id": c["dp"], "last_event_id": event_id - 1, "basis": basis, "facts": "{}"}])
    with eng.db.engine.connect() as conn:
        row = conn.execute(select(measure_facts).where(measure_facts.c.case_id == c["dp"])).one()
    assert row.last_event_id == event_id and json.loads(row.facts)["items"]
    # a row behind its case's history (an event another process wrote, its facts not yet kept) and a row made on
    # another basis (a deployment that changed the teams) are both worked out again, not trusted
    with eng.db.transaction() as conn:
        conn.execute(update(measure_facts).where(measure_facts.c.case_id == c["dp"])
                     .values(last_event_id=event_id - 1, facts='{"broken": true}'))
        conn.execute(update(measure_facts).where(measure_facts.c.case_id == c["harriet"]).values(basis="old"))
    m._LOADED.pop(eng, None)
    pop = m.load_population(eng)
    assert kept(eng)[c["dp"]] == (event_id, basis) and kept(eng)[c["harriet"]][1] == basis
    assert all_figures(pop) == all_figures(from_histories(eng))


# ---------------------------------------------------------------- ASCOF 3D by age band (synthetic CLD rows)

def service(iid, start, end, mechanism="CASSR Commissioned support", kind="Long Term Support: Community",
            client="Service User", born=None, died=None, **more):
    year, month = born or (None, None)
    return {"event_type": "Service", "event_start": start, "event_end": end, "service_type": kind,
            "delivery_mechanism": mechanism, "outcome": None, "client_type": client, "instance_id": iid,
            "birth_year": year, "birth_month": month, "date_of_death": died, **more}


def rows_population(rows_by_case):
    cases = {cid: {"id": cid, "reference": f"CASE-{cid:06d}", "data": {}} for cid in rows_by_case}
    return m.Population(cases, {}, rows_by_case, {}, "2031-12-31")


def figure(pop, key, start, end):
    r = m.compute(key, pop, start, end)
    return r.numerator, r.denominator, {p.key: p.case_ids for p in r.parts if p.case_ids}


def test_dhscs_age_proxy_counts_from_the_first_of_the_birth_month_in_days_over_365_25():
    born = [1966, 4]  # 1 April 1966 (any day in April 1966 is read as the 1st: CLD holds the month and year)
    assert m.dhsc_age(born, "2031-03-31") == 64  # 23,740 days / 365.25 = 64.997
    assert m.dhsc_age(born, "2031-04-01") == 64  # the 65th birthday: 23,741 / 365.25 = 64.9993, still 64
    assert m.dhsc_age(born, "2031-04-02") == 65  # 23,742 / 365.25 = 65.002
    assert m.dhsc_age([2013, 4], "2031-04-01") == 17 and m.dhsc_age([2013, 4], "2031-04-02") == 18
    assert m.dhsc_age(None, "2031-04-01") is None


def test_ascof_3d_by_age_band_on_the_periods_last_day_with_the_boundaries():
    pop = rows_population({
        1: [service(1, "2030-01-01", None, "Direct Payment", born=(1966, 4))],  # 64 on 1 Apr, 65 on 2 Apr 2031
        2: [service(2, "2030-01-01", None, "CASSR Managed Personal Budget", born=(1950, 7))],  # 80: 65 and over
        3: [service(3, "2030-01-01", None, born=(1990, 1))],  # 41, commissioned: 18 to 64
        4: [service(4, "2030-01-01", None, "Direct Payment")],  # no birth recorded: the total only
        5: [service(5, "2030-01-01", None, "Direct Payment", born=(2013, 4))],  # 17 on 1 Apr, 18 on 2 Apr 2031
        6: [service(6, "2030-01-01", None, "Direct Payment", born=(1940, 1), died="2031-03-31")],  # died before
        7: [service(7, "2030-01-01", None, "Direct Payment", born=(1940, 1), died="2031-04-01")],  # dies on the day
        8: [service(8, "2030-01-01", None, "Direct Payment", "Long Term Support: Residential Care",
                    born=(1940, 1))],  # not community
    })
    on_1_april = (date(2031, 1, 1), date(2031, 4, 1))
    # 1 April 2031: case 1 is 64, case 5 is 17 (in no figure), case 6 died the day before
    assert figure(pop, "ascof_3d1", *on_1_april) == (4, 5, {"direct_payment": [1, 4, 7], "managed_budget": [2],
                                                            "commissioned": [3]})
    assert figure(pop, "ascof_3d1_18_64", *on_1_april) == (1, 2, {"direct_payment": [1], "commissioned": [3]})
    assert figure(pop, "ascof_3d2_18_64", *on_1_april) == (1, 2, {"direct_payment": [1], "commissioned": [3]})
    assert figure(pop, "ascof_3d1_65_over", *on_1_april) == (2, 2, {"direct_payment": [7], "managed_budget": [2]})
    assert figure(pop, "ascof_3d2_65_over", *on_1_april) == (1, 2, {"direct_payment": [7], "managed_budget": [2]})
    # a day later case 1 is 65 and case 5 is 18; case 7 has died
    on_2_april = (date(2031, 1, 1), date(2031, 4, 2))
    assert figure(pop, "ascof_3d1_18_64", *on_2_april) == (1, 2, {"direct_payment": [5], "commissioned": [3]})
    assert figure(pop, "ascof_3d1_65_over", *on_2_april) == (2, 2, {"direct_payment": [1], "managed_budget": [2]})
    assert figure(pop, "ascof_3d1", *on_2_april) == (4, 5, {"direct_payment": [1, 4, 5], "managed_budget": [2],
                                                            "commissioned": [3]})
    detail = m.compute("ascof_3d1_65_over", pop, *on_2_april).items
    assert [i["detail"] for i in detail if i["case_id"] == 1] == [
        "Long Term Support: Community from 2030-01-01: Direct Payment; aged 65 on 2031-04-02"]


# ---------------------------------------------------------------- ASCOF 3D(1b)/(2b): carers, in year

def carer(iid, start, end, mechanism, who, born=None, died=None, component=None):
    return service(iid, start, end, mechanism, "Carer Support: Direct to Carer", "Carer", born, died,
                   local_person_id=who, nhs_number=None, service_component=component)


def test_ascof_3d_carers_in_year_each_carer_once_by_dhscs_order():
    pop = rows_population({
        # a carer on two cases (the same person id): a commissioned service and a direct payment: counted once,
        # as a direct payment, on the case of the direct payment
        1: [carer(1, "2031-01-01", None, "CASSR Commissioned support", "C-1", (1976, 9)),
            service(2, "2030-01-01", None)],  # the person cared for, a service user: not a carer
        2: [carer(3, "2031-06-01", "2031-08-01", "Direct Payment", "C-1", (1976, 9))],
        3: [carer(4, "2031-04-01", "2031-04-01", "CASSR Managed Personal Budget", "C-3", (1960, 1))],  # 72: 65+
        4: [carer(5, "2030-01-01", "2031-03-31", "CASSR Commissioned support", "C-4")],  # ends before the period
        5: [carer(6, "2032-04-01", None, "Direct Payment", "C-5", (1976, 9))],  # starts on the day after it
        6: [carer(7, "2031-01-01", None, None, "C-6", (1980, 1))],  # no delivery mechanism: left out, listed
        7: [carer(8, "2031-01-01", None, "CASSR Commissioned support", "C-7", (1950, 1), died="2031-03-31")],
        8: [carer(9, "2031-01-01", None, "CASSR Commissioned support", "C-8", (1950, 1), died="2031-04-01")],
        9: [carer(10, "2031-01-01", None, "CASSR Commissioned support", "C-9", (2015, 1))],  # 17: in no figure
        10: [carer(11, "2031-01-01", None, "CASSR Managed Personal Budget", "C-10", None, None, "Direct Payment")],
        11: [carer(12, "2031-01-01", None, "Direct Payment", "C-11", (1980, 1))],
    })
    pop.cld_rows[11][0]["service_type"] = "Carer Support: Support involving the person cared-for"  # not direct
    year = (date(2031, 4, 1), date(2032, 3, 31))
    # in the year: C-1 (direct payment, case 2), C-3 (the first day), C-6 (left out), C-8 (died in the year),
    # C-10 (the service component is a direct payment, no birth: the total only)
    assert figure(pop, "ascof_3d1b", *year) == (3, 4, {"direct_payment": [2, 10], "managed_budget": [3],
                                                       "commissioned": [8], "unknown_mechanism": [6]})
    assert figure(pop, "ascof_3d2b", *year) == (2, 4, {"direct_payment": [2, 10], "managed_budget": [3],
                                                       "commissioned": [8], "unknown_mechanism": [6]})
    # ages on 31 March 2032: C-1 55 and C-6 52 (18 to 64); C-3 72 and C-8 82 (65 and over)
    assert figure(pop, "ascof_3d1b_18_64", *year) == (1, 1, {"direct_payment": [2], "unknown_mechanism": [6]})
    assert figure(pop, "ascof_3d2b_18_64", *year) == (1, 1, {"direct_payment": [2], "unknown_mechanism": [6]})
    assert figure(pop, "ascof_3d1b_65_over", *year) == (1, 2, {"managed_budget": [3], "commissioned": [8]})
    assert figure(pop, "ascof_3d2b_65_over", *year) == (0, 2, {"managed_budget": [3], "commissioned": [8]})
    # the year before: C-1's commissioned service only (the direct payment starts later), C-4 ends on its last day
    before = (date(2030, 4, 1), date(2031, 3, 31))
    assert figure(pop, "ascof_3d1b", *before)[2] == {
        "commissioned": [1, 4, 7, 8], "unknown_mechanism": [6], "direct_payment": [10]}
    # the cases behind a part, as for every measure
    result, items = m.measure_cases(pop, "ascof_3d1b", *year, part="unknown_mechanism")
    assert [i["case_id"] for i in items] == [6] and result.extra["left_out"] == {"unknown_mechanism": 1}
    assert items[0]["detail"] == "carer's support from 2031-01-01: no delivery mechanism"


def test_when_the_facts_cannot_be_written_the_page_still_has_the_right_figures(driven, monkeypatch, caplog):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    eng, c = driven
    m._LOADED.pop(eng, None)

    def busy(engine, rows):
        raise OperationalError("INSERT INTO measure_facts", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(m, "_write_facts", busy)
    pop = m.load_population(eng)
    assert kept(eng) == {}  # nothing kept: the next page works the cases out again
    assert all_figures(pop) == all_figures(from_histories(eng))
    assert "measure facts of" in caplog.text and "OperationalError" in caplog.text
    assert "CASE-" not in caplog.text  # no case named in the log


def test_the_server_reads_the_measures_facts_once_in_the_background_when_it_starts(driven):
    from fastapi.testclient import TestClient

    from api.app import create_app

    eng, c = driven
    m._LOADED.pop(eng, None)
    quiet = create_app(eng, run_timers=False)  # warming is asked for, not a default
    with TestClient(quiet):
        assert not hasattr(quiet.state, "measures_warming") and eng not in m._LOADED
    app = create_app(eng, run_timers=False, warm_measures=True)  # as `carepath serve` makes it
    with TestClient(app):
        app.state.measures_warming.join()  # waits for the reading, however long it takes; asserts no duration
        assert eng in m._LOADED and set(kept(eng)) == set(m._LOADED[eng].population.cases)


def test_a_release_that_changes_the_derivation_makes_every_kept_row_stale(driven, monkeypatch):
    eng, c = driven
    m._LOADED.pop(eng, None)
    m.load_population(eng)
    before = kept(eng)
    monkeypatch.setattr(m, "_code_hash", lambda: "a release that derives a CLD row differently")
    m._LOADED.pop(eng, None)
    pop = m.load_population(eng)
    after = kept(eng)
    assert set(after) == set(before)
    assert all(after[cid][1] != before[cid][1] and after[cid][0] == before[cid][0] for cid in after)
    assert all_figures(pop) == all_figures(from_histories(eng))


# ---------------------------------------------------------------- new events: only their cases read again

def page_figures(pop) -> list:
    """What the measures page and its drill-downs read: every measure for the year and a quarter (figures, parts,
    the items behind them) and every measure's months, which fill the kept day-ordered lists and snapshots."""
    out = all_figures(pop)
    for key in m.MEASURES:
        out.append(m.over_time(pop, key, *YEAR))
    return out


def fresh(pop) -> m.Population:
    """A population built from the same per-case views with nothing worked out yet (what a start does)."""
    return m.population_of(dict(sorted(pop.views.items())))


def spy_updates(monkeypatch) -> list:
    """The populations ``_updated`` made in place of a full build (None when it declined)."""
    made: list = []
    real = m._updated

    def spy(old, views):
        got = real(old, views)
        made.append(got)
        return got
    monkeypatch.setattr(m, "_updated", spy)
    return made


def test_new_events_update_only_their_cases_and_give_the_figures_of_a_full_recompute(driven, monkeypatch):
    from tests.test_measures import complete

    eng, c = driven
    m._LOADED.pop(eng, None)
    made = spy_updates(monkeypatch)
    first = m.load_population(eng)
    before = page_figures(first)  # every kept list and snapshot worked out, as after the first page
    q2 = (date(2031, 4, 1), date(2031, 6, 30))
    was = m.compute("first_reviews", first, *q2)
    assert c["commissioned"] in next(p for p in was.parts if p.key == "not_done").case_ids
    overdue = m.compute("overdue_reviews", first, *YEAR)
    assert c["commissioned"] in overdue.case_ids

    # a case moving between parts (its first review done late: from "not reviewed" to "after 8 weeks") and out
    # of a snapshot (no longer overdue on the year's last day); a case leaving a period (its direct payment ends
    # with the case: no longer in 3D on 31 December)
    complete(eng, c["commissioned"], "review_plan", {"needs_changed": False, "plan_working": True})
    eng.close_case(c["dp"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
    again = m.load_population(eng)
    assert made and made[-1] is again  # updated in place of a full build ...
    assert again.views[c["long_term"]] is first.views[c["long_term"]]  # ... with the unchanged cases as they were
    days, dated = again.cache["dated:items:first_reviews"]
    assert days == sorted(days) and dated is not first.cache["dated:items:first_reviews"][1]
    now = m.compute("first_reviews", again, *q2)
    parts = {p.key: p.case_ids for p in now.parts}
    assert c["commissioned"] in parts["late"] and c["commissioned"] not in parts["not_done"]
    assert c["commissioned"] not in m.compute("overdue_reviews", again, *YEAR).case_ids
    assert c["dp"] not in m.compute("ascof_3d2", again, date(2031, 7, 1), date(2031, 12, 31)).case_ids
    assert page_figures(again) == page_figures(fresh(again)) == page_figures(from_histories(eng))
    assert page_figures(first) == before  # the population other requests may still be reading is untouched
    carers = [k for k in first.cache if k.startswith("carers_in:")]
    assert carers and all(again.cache[k] is first.cache[k] for k in carers)  # no carer changed: kept as it was

    # another process on the same database, its lists kept from an earlier page: this process's events make
    # their cases stale there too (the database says so), and it updates them in the same way
    other = Engine(eng.db.url)
    try:
        elsewhere = m.load_population(other)
        page_figures(elsewhere)
        eng.update_case_record(c["advice"], {"note": "called again"}, actor="tm", reason="a note")
        eng.close_case(c["commissioned"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
        later = m.load_population(other)
        assert made[-1] is later and later.views[c["harriet"]] is elsewhere.views[c["harriet"]]
        assert c["commissioned"] not in m.compute("ascof_3d1", later, date(2031, 7, 1), date(2031, 12, 31)).case_ids
        assert page_figures(later) == page_figures(fresh(later)) == page_figures(from_histories(eng))
        # and this process, which wrote them, reads the facts the other one kept
        assert page_figures(m.load_population(eng)) == page_figures(later)
    finally:
        other.db.dispose()


def test_many_changed_cases_are_read_by_a_full_build(driven, monkeypatch):
    eng, c = driven
    m._LOADED.pop(eng, None)
    made = spy_updates(monkeypatch)
    page_figures(m.load_population(eng))
    monkeypatch.setattr(m, "INCREMENTAL_MAX", 0.0)  # one changed case is already too many
    monkeypatch.setattr(m, "INCREMENTAL_FLOOR", 0)
    eng.update_case_record(c["advice"], {"note": "called again"}, actor="tm", reason="a note")
    eng.update_case_record(c["dp"], {"note": "called again"}, actor="tm", reason="a note")
    pop = m.load_population(eng)
    assert made == [None] and page_figures(pop) == page_figures(from_histories(eng))


def test_a_new_case_is_placed_among_the_others(driven, monkeypatch):
    from tests.test_measures import contact, front_door

    eng, c = driven
    m._LOADED.pop(eng, None)
    made = spy_updates(monkeypatch)
    page_figures(m.load_population(eng))
    added = front_door(eng, contact(advice_given="Leaflet on falls prevention"))
    pop = m.load_population(eng)
    assert made[-1] is pop and added in pop.views and list(pop.views) == sorted(pop.views)
    assert page_figures(pop) == page_figures(from_histories(eng))


def carer_facts(case_id: int, end: str | None, mechanism: str = "direct_payment") -> m.CaseView:
    """A case from kept facts holding one carer's support direct to the carer (NHS 1, born January 1970)."""
    rank = {"direct_payment": 1, "commissioned": 3}[mechanism]
    text = json.dumps({"last_at": "2031-06-01T10:00:00+00:00", "error": None, "items": {
        "instances": "", "carers_3d": [["NHS1", "2031-05-01", end, rank, None, [1970, 1], {
            "i": case_id * 10, "d": "2031-05-01", "p": mechanism, "t": "", "x": f"carer's support, case {case_id}"}]]}})
    return m.view_from_facts({"id": case_id, "reference": f"CASE-{case_id}"}, text, case_id * 100)


def test_a_changed_carers_support_is_counted_again_across_cases():
    views = {1: carer_facts(1, None), 2: carer_facts(2, None, "commissioned"), 3: carer_facts(3, "2031-05-02")}
    old = m.population_of(views)
    jul, may = (date(2031, 7, 1), date(2031, 9, 30)), (date(2031, 5, 1), date(2031, 5, 31))
    assert [m.compute("ascof_3d2b", old, *p).numerator for p in (jul, may)] == [1, 1]
    # the carer's direct payment (case 1) ends in May: in July the same carer counts by case 2's commissioned support
    changed = {1: carer_facts(1, "2031-05-20")}
    new = m._updated(old, changed)
    assert new is not None and new is not old
    full = m.population_of({**views, **changed})
    for p in (jul, may):
        for key in ("ascof_3d1b", "ascof_3d2b", "ascof_3d2b_65_over", "ascof_3d2b_18_64"):
            got, want = m.compute(key, new, *p), m.compute(key, full, *p)
            assert (got.as_dict(), got.items) == (want.as_dict(), want.items)
    assert m.compute("ascof_3d2b", new, *jul).numerator == 0 and m.compute("ascof_3d2b", new, *may).numerator == 1


def shown(got: list) -> list:
    """What the page shows of each measure: its figures, parts, the items behind them and its months."""
    return [(r.as_dict(), r.items, series) for r, series in got]


def recomputed(eng, period) -> list:
    """The page's figures from every history, with nothing kept (a full recompute)."""
    pop = from_histories(eng)
    return shown([(m.compute(key, pop, *period), [] if measure.not_recorded else m.over_time(pop, key, *period))
                  for key, measure in m.MEASURES.items()])


def test_the_page_after_new_events_of_every_kind_gives_the_figures_of_a_full_recompute(driven, monkeypatch):
    """Each kind of event that changes a measure (a carer's support planned, a task completed, timers fired and
    the latest day moving on, a case closed, a new case, a case record changed): the page's figures, worked out
    again only for the measures whose inputs changed, equal a full recompute from every history; the others are
    the page's own, kept."""
    from bench import county as bc
    from tests.test_measures import complete, contact, front_door

    eng, c = driven
    m._LOADED.pop(eng, None)
    made = spy_updates(monkeypatch)
    quarter = (date(2031, 10, 1), date(2031, 12, 31))
    pop = m.load_population(eng)
    pages = {p: m.page_figures(pop, *p) for p in (YEAR, quarter)}
    listed: list = []
    real_listed = m._listed
    monkeypatch.setattr(m, "_listed", lambda *a: listed.append(a) or real_listed(*a))
    index = {key: n for n, key in enumerate(m.MEASURES)}

    def step(expect_new: set[str] | None = None) -> m.Population:
        nonlocal pop, pages
        now = m.load_population(eng)
        assert made[-1] is now and not listed  # updated in place, from the events since the last page
        carers = [k for k in pop.cache if k.startswith(("carers_per:", "carers_in:", "carers_by_who"))]
        assert carers and all(k in now.cache for k in carers)  # each period's carers updated, not dropped
        again = {p: m.page_figures(now, *p) for p in pages}
        for p, got in again.items():
            assert shown(got) == recomputed(eng, p), p
        if expect_new is not None:  # only the measures whose inputs changed are worked out again
            worked = {key for key in m.MEASURES if again[YEAR][index[key]][0] is not pages[YEAR][index[key]][0]}
            assert worked == expect_new
        pop, pages = now, again
        return now

    # a carer's support direct to the carer, by direct payment: a new case counted in 3D(1b)/(2b)
    assert m.compute("ascof_3d2b", pop, *YEAR).numerator == 0
    carer = bc.to_plan(eng, "council_managed", carer=True)
    step()
    complete(eng, carer, "assess_carer", bc.carer_assessment())
    complete(eng, carer, "plan_carer_support", bc.CARER_PLAN)
    complete(eng, carer, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    step()
    assert m.compute("ascof_3d2b", pop, *YEAR).numerator == 1
    # a task completed: the first review, late (a case moves between parts)
    complete(eng, c["commissioned"], "review_plan", {"needs_changed": False, "plan_working": True})
    step()
    # a case record changed in a way no measure reads: every figure is the page's own, not worked out again
    eng.update_case_record(c["advice"], {"note": "called again"}, actor="tm", reason="a note")
    step(expect_new=set())
    # timers fire as the clock moves on (reviews fall overdue; the latest day in the data moves)
    eng.advance_clock(timedelta(days=120))
    step()
    # a case closed: the carer's support ends with it, and in the quarter after it the carer no longer counts
    eng.close_case(carer, reason="moved_away", details={"council": "Southshire"}, actor="tm")
    step()
    assert m.compute("ascof_3d2b", pop, *quarter).numerator == 1  # support until 2 October
    assert m.compute("ascof_3d2b", pop, date(2032, 1, 1), date(2032, 3, 31)).numerator == 0
    # a new case at the front door
    front_door(eng, contact(advice_given="Leaflet on falls prevention"))
    step()
