"""The JSON API (GET /api/measures) and `carepath measures` give the measures page's kept figures
(handlers/measures.py ``kept_results`` / ``page_figures``), and late commits (``CHANGE_LOOKBACK``, ``_gaps``,
docs/measures.md "Speed"): an event committed after a later-numbered one is counted, within the look-back and
beyond it. The population is tests/test_measures.py's driven one."""

from __future__ import annotations

import json
import threading
from datetime import date

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from api.app import create_app
from api.auth import User
from api.demo_users import create_demo_users
from api.measures import _compute_page
from engine.runtime import Engine
from engine.schema import events
from handlers import measures as m
from tests.casework_helpers import api_client
from tests.test_measures import county, drive_county, engine_2031, make_engine_2031  # noqa: F401 - fixtures
from tests.test_measures_facts import from_histories

H2 = (date(2031, 7, 1), date(2031, 12, 31))
PERIODS = ((date(2031, 1, 1), date(2031, 12, 31)), H2)
OFFICER = User(id=0, username="nobody-restricted", display_name="Performance officer",
               roles=frozenset({"performance"}), teams=frozenset())


def shape(key, figure, num, den, parts) -> tuple:
    return key, figure, num, den, tuple(sorted(parts.items()))


def recomputed(eng, start, end) -> list[tuple]:
    """Every measure worked out from every history (no kept facts, no kept figures)."""
    return [shape(r.key, r.figure, r.numerator, r.denominator, {p.key: p.count for p in r.parts})
            for r in m.compute_all(from_histories(eng), start, end)]


def page(eng, start, end) -> list[tuple]:
    got = _compute_page(eng, {"start": start, "end": end, "team": None}, OFFICER)
    return [shape(x["r"].key, x["r"].figure, x["r"].numerator, x["r"].denominator,
                  {p.key: p.count for p in x["r"].parts}) for x in got["results"]]


def api(client, start, end) -> list[tuple]:
    body = client.get(f"/api/measures?from={start}&to={end}")
    assert body.status_code == 200, body.text
    return [shape(x["key"], x["figure"], x["numerator"], x["denominator"], {p["key"]: p["count"] for p in x["parts"]})
            for x in body.json()["measures"]]


def cli(eng, start, end, capsys) -> list[tuple]:
    from carepath.cli import main

    assert main(["measures", "--db", eng.db.url, "--from", str(start), "--to", str(end), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    return [shape(x["key"], x["figure"], x["numerator"], x["denominator"], {p["key"]: p["count"] for p in x["parts"]})
            for x in data["measures"]]


@pytest.fixture
def counted(monkeypatch):
    """How many measures are worked out (``compute`` calls) from here on."""
    calls = []
    real = m.compute

    def compute(key, *a, **k):
        calls.append(key)
        return real(key, *a, **k)

    monkeypatch.setattr(m, "compute", compute)
    return calls


def test_the_page_the_api_and_the_cli_agree_with_a_full_recompute_before_and_after_new_events(
        county, capsys, counted):  # noqa: F811 - the imported fixture
    eng, c = county
    create_demo_users(eng)
    client = api_client(create_app(eng, run_timers=False), "performance")
    m._LOADED.pop(eng, None)
    for start, end in PERIODS:
        want = recomputed(eng, start, end)
        assert api(client, start, end) == want and page(eng, start, end) == want
        assert cli(eng, start, end, capsys) == want
    assert recomputed(eng, *H2)[[k for k in m.MEASURES].index("ascof_3d2")][2:4] == (1, 3)

    # the API after the page (same process, nothing new): the page's kept figures, nothing worked out again
    counted.clear()
    api(client, *H2)
    assert counted == []
    page_results = [r for r, _s in m.page_figures(m.load_population(eng), *H2)]
    assert [id(r) for r in m.kept_results(m.load_population(eng), *H2)] == [id(r) for r in page_results]

    # a new event: its direct payment ends with the case; all three see it, and only what it touched is redone
    eng.close_case(c["dp"], reason="moved_away", details={"council": "Southshire"}, actor="tm")
    counted.clear()
    want = recomputed(eng, *H2)
    assert want[list(m.MEASURES).index("ascof_3d2")][2:4] == (0, 2)
    counted.clear()
    assert api(client, *H2) == want
    assert 0 < len(counted) < len(m.MEASURES)  # only the measures whose inputs changed
    assert page(eng, *H2) == want and cli(eng, *H2, capsys) == want
    for start, end in PERIODS:
        assert api(client, start, end) == page(eng, start, end) == recomputed(eng, start, end)


def test_the_cli_in_a_fresh_process_reads_the_kept_facts_not_the_histories(county, capsys, monkeypatch):  # noqa: F811 - the imported fixture
    eng, _c = county
    m.load_population(eng)  # the facts kept in the database (as the server or any earlier run leaves them)
    worked_out = []
    real = m._work_out
    monkeypatch.setattr(m, "_work_out", lambda e, ids, *a: worked_out.extend(ids) or real(e, ids, *a))
    assert cli(eng, *H2, capsys) == recomputed(eng, *H2)
    assert worked_out == []  # a new Engine, nothing in memory: every case read from measure_facts


# ---------------------------------------------------------------- late commits

def _held_close(eng, case_id):
    """Close `case_id` in a thread whose transaction stops just before it commits (its event ids handed out, not
    yet visible): (thread, reached, release)."""
    reached, release = threading.Event(), threading.Event()
    me: list[threading.Thread] = []

    def before_commit(conn):
        if me and threading.current_thread() is me[0]:
            reached.set()
            assert release.wait(60)

    sa_event.listen(eng.db.engine, "commit", before_commit)
    t = threading.Thread(target=eng.close_case, args=(case_id,),
                         kwargs={"reason": "moved_away", "details": {"council": "Southshire"}, "actor": "tm"})
    me.append(t)
    t.start()
    assert reached.wait(60), "the held transaction never reached its commit"
    return t, release, lambda: sa_event.remove(eng.db.engine, "commit", before_commit)


def _3d2(eng) -> tuple:
    r = next(x["r"] for x in _compute_page(eng, {"start": H2[0], "end": H2[1], "team": None}, OFFICER)["results"]
             if x["r"].key == "ascof_3d2")
    return r.numerator, r.denominator


def _newest(eng, case_id) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(func.max(events.c.id)).where(events.c.case_id == case_id)).scalar()


@pytest.fixture
def pg_county(pg_url):
    """The county on PostgreSQL only: SQLite lets one writer at a time, so an event id is never committed
    after a later one there and the late commit these tests make cannot happen."""
    engine = make_engine_2031(pg_url)
    yield engine, drive_county(engine)
    engine.db.dispose()


@pytest.mark.postgres
def test_an_event_committed_after_a_later_numbered_one_is_counted(pg_county):
    eng, c = pg_county
    m._LOADED.pop(eng, None)
    assert _3d2(eng) == (1, 3)
    thread, release, done = _held_close(eng, c["dp"])
    try:
        eng.update_case_record(c["advice"], {"note": "called again"}, actor="tm", reason="a note")
        assert _3d2(eng) == (1, 3)  # the page has read past the held ids: the close is not committed yet
        seen = m._LOADED[eng].mark[0]
    finally:
        release.set()
        thread.join(60)
        done()
    assert _newest(eng, c["dp"]) < seen  # committed with ids below the newest one the page had read
    assert _3d2(eng) == (0, 2)
    assert page(eng, *H2) == recomputed(eng, *H2)


@pytest.mark.postgres
def test_a_late_commit_older_than_the_look_back_is_found_at_the_next_page_and_by_a_new_process(
        pg_county, monkeypatch):
    from handlers import measures_pages as mp

    eng, c = pg_county
    monkeypatch.setattr(m, "CHANGE_LOOKBACK", 1)  # stands for 10,000 later-numbered events committed meanwhile
    m._LOADED.pop(eng, None)
    assert _3d2(eng) == (1, 3)
    thread, release, done = _held_close(eng, c["dp"])
    try:
        eng.update_case_record(c["advice"], {"note": "called again"}, actor="tm", reason="a note")
        assert _3d2(eng) == (1, 3)  # the close is not committed yet: its ids are gaps below the look-back
        held = m._LOADED[eng]
        assert held.gaps and all(a <= held.mark[0] - m.CHANGE_LOOKBACK for a, _b in held.gaps)
    finally:
        release.set()
        thread.join(60)
        done()
    assert _newest(eng, c["dp"]) <= m._LOADED[eng].mark[0] - m.CHANGE_LOOKBACK  # outside the look-back
    with eng.db.engine.connect() as conn:
        assert m._mark(conn) == m._LOADED[eng].mark  # the mark alone does not move
    # a new process: the page kept at that mark is not shown (an event now holds one of its gaps); worked out
    other = Engine(eng.db.url)
    try:
        assert mp.kept_page(other, *H2, None) is None
        assert page(other, *H2) == recomputed(eng, *H2) and _3d2(other) == (0, 2)
    finally:
        other.db.dispose()
    # this process: the filled gap makes it list every case against what it holds: found with no other event
    assert _3d2(eng) == (0, 2)
    assert page(eng, *H2) == recomputed(eng, *H2)
    with eng.db.engine.connect() as conn:
        assert not m._filled(conn, m._LOADED[eng].gaps)  # the gaps now held are still empty
