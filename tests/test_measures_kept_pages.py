"""The measures page's figures kept in the database (handlers/measures_pages.py, `measure_pages`, migration 0017):
a new server process (a new Engine and app on the same database, nothing in memory) shows the page from them
while nothing changed, the same page as one worked out from the cases and the same figures as a full recompute;
after a new event it shows the new figure, never the kept one; restricted cases left out of the CLD-based measures
are counted and named only to the people named for them. The population is tests/test_measures.py's driven one."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from api.access import restrict_case
from api.app import create_app
from api.demo_users import create_demo_users
from api.measures import _compute_page
from engine.runtime import Engine
from engine.schema import measure_facts, measure_pages
from handlers import measures as m
from handlers import measures_pages as mp
from tests.casework_helpers import api_client
from tests.test_measures import county, drive_county, engine_2031, make_engine_2031  # noqa: F401 - fixtures
from tests.test_measures_api_kept import H2, OFFICER, page, recomputed
from tests.test_measures_pages import text

YEAR = (date(2031, 1, 1), date(2031, 12, 31))


def html(eng, start, end, team=None, role="performance") -> str:
    """The measures page as the role's demo user sees it, in an app on `eng` (its CSRF token left out)."""
    client = api_client(create_app(eng, run_timers=False), role)
    got = client.get(f"/measures?from={start}&to={end}" + (f"&team={team}" if team else ""))
    assert got.status_code == 200, got.text
    return re.sub(r'name="csrf_token" value="[^"]*"', "", got.text)


@pytest.fixture
def loads(monkeypatch):
    """How many times a population is read (``load_population``) from here on."""
    calls = []
    real = m.load_population

    def load(engine):
        calls.append(engine)
        return real(engine)

    monkeypatch.setattr(m, "load_population", load)
    return calls


def new_process(eng) -> Engine:
    """What a server started again on the same database has: a new Engine, nothing read yet."""
    return Engine(eng.db.url)


def test_a_new_process_shows_the_kept_figures_the_same_page_as_worked_out_and_a_full_recompute(county, loads):  # noqa: F811
    eng, c = county
    create_demo_users(eng)
    worked_out = {(s, e, t): html(eng, s, e, t) for s, e in (YEAR, H2) for t in (None, "reablement")}
    assert len(loads) == 4
    with eng.db.engine.connect() as conn:
        kept = dict(conn.execute(select(measure_pages.c.key, measure_pages.c.mark)).all())
    assert set(kept) == {mp.page_key(s, e, t) for s, e, t in worked_out}
    assert {json.loads(mark)[0] for mark in kept.values()} == {m._LOADED[eng].mark[0]}

    loads.clear()
    other = new_process(eng)
    try:
        for (s, e, t), want in worked_out.items():
            assert html(other, s, e, t) == want  # every figure, part, month and link the same
        assert page(other, *H2) == recomputed(eng, *H2) and page(other, *YEAR) == recomputed(eng, *YEAR)
        assert loads == []  # no case's facts read, no figure worked out
        assert mp.page(other, *H2, None).from_kept
        # the cases behind a figure are not kept: the drill-down reads the population
        client = api_client(create_app(other, run_timers=False), "performance")
        assert client.get(f"/measures/new_requests/cases?from={H2[0]}&to={H2[1]}").status_code == 200
        assert loads == [other]
    finally:
        other.db.dispose()


def test_after_a_new_event_a_new_process_shows_the_new_figure_never_the_kept_one(county, loads):  # noqa: F811
    eng, c = county
    create_demo_users(eng)
    before = page(eng, *H2)
    assert before == recomputed(eng, *H2)
    assert before[list(m.MEASURES).index("ascof_3d2")][2:4] == (1, 3)
    eng.close_case(c["dp"], reason="moved_away", details={"council": "Southshire"}, actor="tm")  # no page since
    want = recomputed(eng, *H2)
    assert want[list(m.MEASURES).index("ascof_3d2")][2:4] == (0, 2)

    loads.clear()
    other = new_process(eng)
    try:
        assert mp.kept_page(other, *H2, None) is None  # the kept row's mark is not the database's any more
        assert page(other, *H2) == want and loads == [other]
    finally:
        other.db.dispose()
    loads.clear()
    third = new_process(eng)  # the row written again by the process that worked it out: shown as it is
    try:
        assert page(third, *H2) == want and loads == []
        # the old process, which held the population from before, reads the new event itself
        assert page(eng, *H2) == want
        eng.update_case_record(c["advice"], {"note": "called again"}, actor="tm", reason="a note")
        assert mp.kept_page(third, *H2, None) is None  # the row's mark is behind the database's again
        assert page(third, *H2) == recomputed(eng, *H2)
    finally:
        third.db.dispose()


def test_a_kept_page_counts_restricted_cases_and_names_them_only_to_the_people_named(county, loads):  # noqa: F811
    eng, c = county
    create_demo_users(eng)
    m.load_population(eng)  # every case's facts kept; two of them then read as cases whose CLD rows failed
    with eng.db.transaction() as conn:
        for cid in (c["advice"], c["reablement"]):
            text_ = conn.execute(select(measure_facts.c.facts).where(measure_facts.c.case_id == cid)).scalar()
            facts = json.loads(text_)
            facts["error"] = "a value outside the code list"
            conn.execute(measure_facts.update().where(measure_facts.c.case_id == cid).values(facts=json.dumps(facts)))
    restrict_case(eng, c["reablement"], ["social-worker"])
    first = new_process(eng)
    try:
        worked_out = html(first, *YEAR)
    finally:
        first.db.dispose()
    loads.clear()
    other = new_process(eng)
    try:
        shown = html(other, *YEAR)
        assert loads == [] and shown == worked_out
        ref = {cid: eng.get_case(cid)["reference"] for cid in (c["advice"], c["reablement"])}
        seen = text(shown)
        assert "2 cases could not be read" in seen and f"{ref[c['advice']]}: a value outside the code list" in seen
        assert "1 restricted case not listed" in seen and ref[c["reablement"]] not in seen
        got = mp.page(other, *YEAR, None)
        assert got.from_kept and sorted(cid for cid, _r, _w in got.left_out) == sorted(ref)
        # the social worker named on it would see it named (the same kept row, filtered per person)
        worker = replace(OFFICER, username="social-worker")
        named = _compute_page(other, {"start": YEAR[0], "end": YEAR[1], "team": None}, worker)
        assert named["left_out_restricted"] == 0 and len(named["left_out"]) == 2
        assert loads == []
    finally:
        other.db.dispose()


def test_a_kept_page_on_another_basis_or_for_another_period_is_not_shown(county, loads, monkeypatch):  # noqa: F811
    eng, _c = county
    want = page(eng, *H2)
    other = new_process(eng)
    try:
        assert mp.kept_page(other, *H2, "reablement") is None  # no page kept for that team
        assert mp.kept_page(other, *YEAR, None) is None  # nor for that period
        assert mp.kept_page(other, *H2, None) is not None
        monkeypatch.setattr(mp, "_own_hash", lambda: "another release of the page code")
        assert mp.kept_page(other, *H2, None) is None
        assert page(other, *H2) == want == recomputed(eng, *H2) and loads  # worked out, and kept on this basis
    finally:
        other.db.dispose()
    third = new_process(eng)
    try:
        assert mp.kept_page(third, *H2, None) is not None  # the row written again on the new basis
    finally:
        third.db.dispose()


def test_a_page_asked_for_while_the_start_reading_runs_waits_for_it_rather_than_reading_beside_it(
        county, monkeypatch):  # noqa: F811
    import threading

    eng, _c = county
    m.load_population(eng)  # the facts kept; no page kept for the period
    other = new_process(eng)
    listed, warm_in, go, waited = [], threading.Event(), threading.Event(), threading.Event()
    real = m._listed

    def slow_listed(*a, **k):
        listed.append(threading.current_thread().name)
        if threading.current_thread().name == "carepath-measures-warm":
            warm_in.set()
            assert go.wait(60)
        else:
            waited.set()  # read beside the start's reading: what must not happen
        return real(*a, **k)

    monkeypatch.setattr(m, "_listed", slow_listed)
    try:
        warming = m.warm_in_background(other)
        assert warm_in.wait(60)
        real_join = warming.join
        warming.join = lambda *a: (waited.set(), real_join(*a))[1]
        got: list = []
        asker = threading.Thread(target=lambda: got.append(mp.page(other, *H2, None, warming)))
        asker.start()
        assert waited.wait(60)  # the page is waiting for the start's reading (or, wrongly, reading itself)
        go.set()
        asker.join(60)
        assert listed == ["carepath-measures-warm"]  # every case listed once, by the start's reading
        assert not got[0].from_kept
        assert [(r.key, r.figure, r.numerator, r.denominator) for r, _s, _n in got[0].figures] == \
            [x[:4] for x in recomputed(eng, *H2)]
    finally:
        go.set()
        other.db.dispose()


def test_a_bad_filter_in_a_new_process_offers_the_same_quarters_without_reading_the_population(county, loads):  # noqa: F811
    eng, _c = county
    create_demo_users(eng)
    bad = "/measures?from-day=31&from-month=2&from-year=2031&to=2031-12-31"
    m.load_population(eng)  # this process holds the population: the quarters from its latest day
    worked_out = api_client(create_app(eng, run_timers=False), "performance").get(bad)
    assert worked_out.status_code == 400 and "The first day must be a real date" in worked_out.text
    assert mp.latest_day(eng) == m.load_population(eng).last_day
    loads.clear()
    other = new_process(eng)
    try:
        shown = api_client(create_app(other, run_timers=False), "performance").get(bad)
        assert shown.status_code == 400 and loads == []
        options = re.compile(r'<option value="(\d{4}-Q\d)"')
        assert options.findall(shown.text) == options.findall(worked_out.text) and options.findall(shown.text)
        assert mp.latest_day(other) == m.load_population(eng).last_day
    finally:
        other.db.dispose()
