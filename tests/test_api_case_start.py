"""Starting a council's own process on a case by its id (issue 14 item 4, api/case_start.py):
a team manager starts it and completes its tasks over HTTP; every other role is refused (403) before
the body is read; unknown case or process 404, bad body 422, a shipped process 422, a closed case
409; nothing is stored on a refusal and the opening is in the access log. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.access import restrict_case
from api.app import create_app
from api.auth import ROLES
from api.demo_users import create_demo_users
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import case_access_log, instances
from tests.casework_helpers import ROOT, START, TM, api_client

THREE = ROOT / "tests" / "diagrams" / "three_tasks.bpmn"


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=HandlerRegistry(), forms=FormLibrary())  # as bench/engine_bench.py
    engine.init(simulated_start=START)
    engine.deploy([THREE])
    create_demo_users(engine)
    yield engine
    engine.db.dispose()


@pytest.fixture
def app(eng):
    return create_app(eng, run_timers=False)


def a_case(eng) -> int:
    return eng.start("three_tasks", actor=TM).case_id


def count_instances(eng) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(instances)).scalar_one()


def test_a_team_manager_starts_the_process_and_completes_its_tasks_over_http(eng, app):
    cid = a_case(eng)
    tm = api_client(app, "team_manager")
    r = tm.post(f"/api/cases/{cid}/processes/three_tasks", json={"data": {"n": 7}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["case_id"] == cid and body["process_id"] == "three_tasks" and body["status"] == "waiting"
    assert [t["element_id"] for t in body["tasks"]] == ["record_contact"]
    fd = api_client(app, "front_door_advisor")
    task = body["tasks"][0]
    for who in (fd, fd, tm):  # contact and screening at the front door, the decision with the manager
        r = who.post(f"/api/tasks/{task['id']}/complete", json={"data": {"step": task["element_id"]}})
        assert r.status_code == 200, r.text
        task = (r.json()["ready_tasks"] or [None])[0]
    assert task is None and r.json()["status"] == "completed"
    with eng.db.engine.connect() as conn:
        inst = conn.execute(select(instances).where(instances.c.id == body["instance_id"])).one()
    assert inst.case_id == cid and inst.status == "completed"
    with eng.db.engine.connect() as conn:
        logged = conn.execute(select(case_access_log.c.action, case_access_log.c.outcome)
                              .where(case_access_log.c.case_id == cid)).all()
    assert ("start_process", "allowed") in [tuple(r) for r in logged]


@pytest.mark.parametrize("role", sorted(set(ROLES) - {"team_manager"}))
def test_every_other_role_is_refused_before_the_body_is_read(eng, app, role):
    cid = a_case(eng)
    before = count_instances(eng)
    c = api_client(app, role)
    for body in ({"data": {"n": 1}}, {"data": "not an object"}, None):
        r = c.post(f"/api/cases/{cid}/processes/three_tasks", json=body)
        assert r.status_code == 403, (role, body, r.text)
    assert count_instances(eng) == before


def test_unknown_case_or_process_bad_body_shipped_process_and_closed_case(eng, app):
    cid = a_case(eng)
    tm = api_client(app, "team_manager")
    before = count_instances(eng)
    r = tm.post("/api/cases/999999/processes/three_tasks", json={"data": {}})
    assert r.status_code == 404 and "999999" in r.json()["message"]
    r = tm.post(f"/api/cases/{cid}/processes/no_such_process", json={"data": {}})
    assert r.status_code == 404 and "no_such_process" in r.json()["message"]
    r = tm.post(f"/api/cases/{cid}/processes/three_tasks", json={"data": "not an object"})
    assert r.status_code == 422 and "data" in r.text
    r = tm.post(f"/api/cases/{cid}/processes/safeguarding", json={"data": {}})
    assert r.status_code == 422 and "its own page" in r.json()["message"]
    assert count_instances(eng) == before
    eng.close_case(cid, reason="declined", details={}, actor=TM)
    before = count_instances(eng)
    r = tm.post(f"/api/cases/{cid}/processes/three_tasks", json={"data": {}})
    assert r.status_code == 409 and "closed" in r.json()["message"]
    assert count_instances(eng) == before


def test_without_the_csrf_header_nothing_starts(eng, app):
    cid = a_case(eng)
    tm = api_client(app, "team_manager")
    before = count_instances(eng)
    r = tm.post(f"/api/cases/{cid}/processes/three_tasks", json={"data": {}}, headers={"X-CSRF-Token": ""})
    assert r.status_code == 403
    assert count_instances(eng) == before


def _logged(eng, cid) -> list[tuple[str, str]]:
    with eng.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(case_access_log.c.action, case_access_log.c.outcome)
                                               .where(case_access_log.c.case_id == cid)
                                               .order_by(case_access_log.c.id))]


def test_every_start_and_every_refusal_is_in_the_access_log_once(eng, app):
    """The opening is logged in the start's own transaction; a start that fails after the case was opened
    (unknown process, closed case) and a refusal are each logged on their own, once (api/case_start.py)."""
    cid = a_case(eng)
    tm = api_client(app, "team_manager")
    assert tm.post(f"/api/cases/{cid}/processes/three_tasks", json={"data": {}}).status_code == 201
    assert _logged(eng, cid) == [("start_process", "allowed")]
    assert tm.post(f"/api/cases/{cid}/processes/no_such_process", json={"data": {}}).status_code == 404
    assert _logged(eng, cid) == [("start_process", "allowed")] * 2
    eng.close_case(cid, reason="declined", details={}, actor=TM)
    assert tm.post(f"/api/cases/{cid}/processes/three_tasks", json={"data": {}}).status_code == 409
    assert _logged(eng, cid) == [("start_process", "allowed")] * 3
    other = a_case(eng)
    restrict_case(eng, other, ["someone-else"])
    before = count_instances(eng)
    r = tm.post(f"/api/cases/{other}/processes/three_tasks", json={"data": {}})
    assert r.status_code == 404 and r.json()["message"] == f"no case {other}"  # as an unknown case
    assert _logged(eng, other) == [("start_process", "refused")]
    assert count_instances(eng) == before


def test_the_start_by_its_id_costs_the_engine_start_and_its_two_access_statements(db_url):
    """The API's checks add to the engine's own start on the case only the restriction read and the access-log
    row, nothing read twice (the case is read once, by the engine); on PostgreSQL the row goes with the step's
    writes: one round trip more, the restriction's (docs/performance.md, "A cheaper HTTP layer, continued")."""
    from collections import Counter

    from api.auth import User
    from api.case_start import StartIn, start
    from tests.test_step_statements import StatementLog, WireLog

    eng = Engine(db_url, registry=HandlerRegistry(), forms=FormLibrary())
    eng.init()  # the real clock, as in production: "now" costs no statement
    eng.deploy([THREE])
    try:
        cid = a_case(eng)
        user = User(1, "tm", "TM", frozenset({"team_manager"}), frozenset({"team_manager"}))
        log = WireLog(eng.db.engine) if eng.db.is_postgres else StatementLog(eng.db.engine)
        for n in range(7):  # caches filled, and psycopg has prepared every statement (after 5 uses)
            eng.start("three_tasks", case_id=cid, data={"n": n}, actor="tm")
            start(eng, user, cid, "three_tasks", StartIn(data={"n": n}))
        log.take()
        eng.start("three_tasks", case_id=cid, data={"n": 8}, actor="tm")
        direct = log.take()
        start(eng, user, cid, "three_tasks", StartIn(data={"n": 9}))
        api = log.take()
        if eng.db.is_postgres:
            (trips_direct, direct), (trips_api, api) = direct, api
            assert trips_api == trips_direct + 1, (direct, api)
        else:
            direct, api = [s for s, _ in direct], [s for s, _ in api]
        assert not Counter(direct) - Counter(api), (direct, api)
        more = sorted((Counter(api) - Counter(direct)).elements())
        assert len(more) == 2 and more[0].startswith("INSERT INTO case_access_log") \
            and more[1].startswith("SELECT restricted_cases.allowed"), more
        assert _logged(eng, cid)[-1] == ("start_process", "allowed")
    finally:
        eng.db.dispose()
