"""Tasks and case records through the JSON API: the role x endpoint matrix, team boundaries,
conflicts, form errors, restricted cases and the case access log (docs/security.md)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api.access import access_log, restrict_case
from api.app import create_app
from api.auth import ROLES, create_user
from api.demo_users import create_demo_users, demo_password, demo_username
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import DIAGRAMS, START, Calls

STRICT_CONTACT = {"type": "object", "required": ["name", "reason"],
                  "properties": {"name": {"type": "string", "minLength": 2}, "reason": {"type": "string"}}}


def _forms() -> FormLibrary:
    lib = FormLibrary.from_folder(DIAGRAMS / "forms")
    return FormLibrary({**{n: lib.schema(n) for n in lib.names()}, "contact": STRICT_CONTACT})


def _make(url) -> tuple[Engine, object]:
    """An app on `url` (a folder: a SQLite file in it; a string: that database URL)."""
    url = url if isinstance(url, str) else f"sqlite:///{url / 'api.db'}"
    eng = Engine(url, registry=Calls().registry(), forms=_forms())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "three_tasks.bpmn", DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_demo_users(eng)
    return eng, app


class Session:
    """A signed-in client that sends its CSRF token on state-changing requests."""

    def __init__(self, app, username: str, password: str) -> None:
        self.client = TestClient(app)
        r = self.client.post("/api/session", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, json_body: dict | None = None):
        return self.client.post(url, json=json_body, headers={"X-CSRF-Token": self.csrf})

    def delete(self, url: str):
        return self.client.delete(url, headers={"X-CSRF-Token": self.csrf})


def _as(app, role: str) -> Session:
    return Session(app, demo_username(role), demo_password(role))


def _task(eng: Engine, case_id: int, element: str) -> dict:
    return next(t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element)


# ---------------------------------------------------------------------- the role x endpoint matrix
# (module-scoped: one app a database for its 77 requests; on SQLite and PostgreSQL like the rest of this file)
@pytest.fixture(scope="module")
def world(module_db_url):
    eng, app = _make(module_db_url)
    case = eng.start("three_tasks", title="Matrix case").case_id
    sessions = {role: _as(app, role) for role in ROLES}
    yield eng, app, case, sessions
    eng.db.dispose()


def _fresh_task(eng: Engine, process: str, element: str) -> str:
    return _task(eng, eng.start(process).case_id, element)["id"]


ENDPOINTS = {
    "me": lambda eng, case, s: s.get("/api/me"),
    "list_tasks": lambda eng, case, s: s.get("/api/tasks"),
    "claim_front_door_task": lambda eng, case, s: s.post(
        f"/api/tasks/{_fresh_task(eng, 'three_tasks', 'record_contact')}/claim"),
    "complete_reablement_task": lambda eng, case, s: s.post(
        f"/api/tasks/{_fresh_task(eng, 'deadline', 'reablement')}/complete", {"data": {}}),
    "open_case": lambda eng, case, s: s.get(f"/api/cases/{case}"),
    "case_history": lambda eng, case, s: s.get(f"/api/cases/{case}/history"),
    "measures": lambda eng, case, s: s.get("/api/measures?from=2031-01-01&to=2031-03-31"),
}
WORKERS = {"front_door_advisor", "social_worker", "occupational_therapist", "reablement_coordinator",
           "team_manager", "finance_officer"}
ALLOWED = {
    "me": set(ROLES),
    "list_tasks": WORKERS,
    "claim_front_door_task": {"front_door_advisor"},
    "complete_reablement_task": {"occupational_therapist", "reablement_coordinator"},
    "open_case": {"front_door_advisor", "team_manager", "auditor"},
    "case_history": {"team_manager", "auditor"},
    "measures": {"performance", "team_manager"},
}


class Anonymous:
    def __init__(self, app) -> None:
        self.client = TestClient(app)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, json_body: dict | None = None):
        return self.client.post(url, json=json_body)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_role_endpoint_matrix(world, role, endpoint):
    eng, app, case, sessions = world
    session = Anonymous(app) if role == "anonymous" else sessions[role]
    r = ENDPOINTS[endpoint](eng, case, session)
    expected = 401 if role == "anonymous" else 200 if role in ALLOWED[endpoint] else 403
    assert r.status_code == expected, r.text
    body = r.json()
    if expected != 200:
        assert set(body) >= {"error", "message"} and body["message"]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_sign_out(world, role):
    _eng, app, _case, _sessions = world
    s = _as(app, role)
    assert s.delete("/api/session").status_code == 200
    assert s.get("/api/me").status_code == 401


# ---------------------------------------------------------------------- team boundaries
@pytest.fixture
def env(db_url):
    eng, app = _make(db_url)
    create_user(eng, "fd2", "second-advisor", roles=["front_door_advisor"], teams=["front_door"])
    yield eng, app
    eng.db.dispose()


def test_a_front_door_advisor_sees_only_front_door_tasks_and_cannot_touch_reablement(env):
    eng, app = env
    fd_case = eng.start("three_tasks").case_id
    re_case = eng.start("deadline").case_id
    re_task = _task(eng, re_case, "reablement")["id"]
    fd = _as(app, "front_door_advisor")
    listed = fd.get("/api/tasks").json()["tasks"]
    assert [(t["case_id"], t["element_id"]) for t in listed] == [(fd_case, "record_contact")]
    assert fd.get("/api/tasks?team=reablement").status_code == 403
    for action in ("claim", "release", "complete"):
        r = fd.post(f"/api/tasks/{re_task}/{action}", {"data": {}})
        assert r.status_code == 403 and "reablement" in r.json()["message"], action
    assert fd.get(f"/api/tasks/{re_task}").status_code == 403
    assert fd.get(f"/api/cases/{re_case}").status_code == 403
    assert eng.get_task(re_task)["assignee"] is None
    ot = _as(app, "occupational_therapist")
    assert [t["id"] for t in ot.get("/api/tasks").json()["tasks"]] == [re_task]


def test_scope_mine_team_filter_process_filter_and_paging(env):
    eng, app = env
    cases = [eng.start("three_tasks").case_id for _ in range(3)]
    fd = _as(app, "front_door_advisor")
    first = _task(eng, cases[0], "record_contact")["id"]
    assert fd.get("/api/tasks?scope=mine").json()["tasks"] == []
    assert fd.post(f"/api/tasks/{first}/claim").json()["assignee"] == "front-door-advisor"
    assert [t["id"] for t in fd.get("/api/tasks?scope=mine").json()["tasks"]] == [first]
    assert len(fd.get("/api/tasks?team=front_door&process=three_tasks").json()["tasks"]) == 3
    assert fd.get("/api/tasks?process=deadline").json()["tasks"] == []
    page = fd.get("/api/tasks?limit=2&offset=2").json()
    assert len(page["tasks"]) == 1 and page["limit"] == 2
    assert fd.get("/api/tasks?limit=0").status_code == 422
    assert fd.get("/api/tasks?scope=everyone").status_code == 422


def test_claimed_tasks_only_the_assignee_completes_and_releases(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    tid = _task(eng, case, "record_contact")["id"]
    fd, fd2 = _as(app, "front_door_advisor"), Session(app, "fd2", "second-advisor")
    assert fd.post(f"/api/tasks/{tid}/claim").status_code == 200
    r = fd2.post(f"/api/tasks/{tid}/claim")
    assert r.status_code == 409 and "front-door-advisor" in r.json()["message"]
    r = fd2.post(f"/api/tasks/{tid}/complete", {"data": {"name": "Ann", "reason": "falls"}})
    assert r.status_code == 409 and "front-door-advisor" in r.json()["message"]
    assert fd2.post(f"/api/tasks/{tid}/release").status_code == 403
    released = fd.post(f"/api/tasks/{tid}/release")
    assert released.status_code == 200 and released.json()["assignee"] is None


def test_completing_a_task_someone_else_completed_is_a_409_naming_them(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    tid = _task(eng, case, "record_contact")["id"]
    fd, fd2 = _as(app, "front_door_advisor"), Session(app, "fd2", "second-advisor")
    done = fd.post(f"/api/tasks/{tid}/complete", {"data": {"name": "Ann", "reason": "falls"}, "revision": 0})
    assert done.status_code == 200 and done.json()["case_id"] == case
    r = fd2.post(f"/api/tasks/{tid}/complete", {"data": {"name": "Ann", "reason": "falls"}, "revision": 0})
    assert r.status_code == 409
    assert r.json()["error"] == "conflict" and "completed by front-door-advisor" in r.json()["message"]
    # someone with no access to the case learns nothing about the task
    sw = _as(app, "social_worker")
    assert sw.post(f"/api/tasks/{tid}/complete", {"data": {}}).status_code == 404


def test_a_stale_revision_is_a_409_and_saves_nothing(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    tid = _task(eng, case, "record_contact")["id"]
    fd, fd2 = _as(app, "front_door_advisor"), Session(app, "fd2", "second-advisor")
    assert fd2.post(f"/api/tasks/{tid}/claim", {"revision": 0}).status_code == 200
    assert fd2.post(f"/api/tasks/{tid}/release", {"revision": 1}).status_code == 200
    r = fd.post(f"/api/tasks/{tid}/complete", {"data": {"name": "Ann", "reason": "falls"}, "revision": 0})
    assert r.status_code == 409 and "changed since you opened it" in r.json()["message"]
    assert _task(eng, case, "record_contact")["revision"] == 2


def test_invalid_form_data_is_a_422_with_every_field(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    tid = _task(eng, case, "record_contact")["id"]
    fd = _as(app, "front_door_advisor")
    r = fd.post(f"/api/tasks/{tid}/complete", {"data": {"name": "A"}})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid" and body["message"]
    assert {e["field"] for e in body["errors"]} == {"name", "reason"}
    assert fd.post(f"/api/tasks/{tid}/complete", {"data": "not an object"}).status_code == 422
    assert _task(eng, case, "record_contact")["id"] == tid  # still open


def test_unknown_tasks_and_cases_are_404_json(env):
    _eng, app = env
    fd = _as(app, "front_door_advisor")
    for r in (fd.post("/api/tasks/00000000-0000-4000-8000-000000000000/claim"),
              fd.post("/api/tasks/not-a-uuid/claim"), fd.get("/api/cases/999")):
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert fd.get("/api/cases/abc").status_code == 404  # a path id that is not a number names nothing (api/inputs.py)


def test_a_team_manager_acts_on_team_manager_tasks_after_the_front_door(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    fd, tm = _as(app, "front_door_advisor"), _as(app, "team_manager")
    for element, data in (("record_contact", {"name": "Ann", "reason": "falls"}), ("screen", {})):
        assert fd.post(f"/api/tasks/{_task(eng, case, element)['id']}/complete", {"data": data}).status_code == 200
    decide = _task(eng, case, "decide")["id"]
    assert [t["id"] for t in tm.get("/api/tasks").json()["tasks"]] == [decide]
    assert fd.post(f"/api/tasks/{decide}/complete", {"data": {}}).status_code == 403
    assert tm.post(f"/api/tasks/{decide}/complete", {"data": {}}).json()["status"] == "completed"


# ---------------------------------------------------------------------- case records
def test_opening_a_case_shows_its_tasks_and_documents_and_is_logged(env):
    eng, app = env
    case = eng.start("three_tasks", data={"name": "Ann"}).case_id
    fd = _as(app, "front_door_advisor")
    r = fd.get(f"/api/cases/{case}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == case and body["restricted"] is False and body["documents"] == []
    assert [t["element_id"] for t in body["tasks"]] == ["record_contact"]
    assert _as(app, "finance_officer").get(f"/api/cases/{case}").status_code == 403
    log = access_log(eng, case)
    assert [(e["user"], e["action"]) for e in log] == [("front-door-advisor", "open"),
                                                       ("finance-officer", "refused:open")]
    assert all(e["at"] == START for e in log)
    eng.advance_clock(timedelta(hours=1))
    _as(app, "auditor").get(f"/api/cases/{case}/history")
    assert access_log(eng, case)[-1] == {"case_id": case, "user": "auditor", "at": START + timedelta(hours=1),
                                         "action": "history"}


def test_a_caseworker_keeps_access_to_cases_they_worked_on(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    fd, fd2 = _as(app, "front_door_advisor"), Session(app, "fd2", "second-advisor")
    for element, data in (("record_contact", {"name": "Ann", "reason": "falls"}), ("screen", {})):
        fd.post(f"/api/tasks/{_task(eng, case, element)['id']}/complete", {"data": data})
    assert fd.get(f"/api/cases/{case}").status_code == 200  # history actor
    assert fd2.get(f"/api/cases/{case}").status_code == 403  # never worked on it, no front door task now
    assert fd.get(f"/api/cases/{case}/history").status_code == 403  # history is for managers and auditors


def test_a_restricted_case_opens_only_for_named_people(env):
    eng, app = env
    case = eng.start("three_tasks", title="Restricted").case_id
    other = eng.start("three_tasks").case_id
    restrict_case(eng, case, ["fd2"])
    tid = _task(eng, case, "record_contact")["id"]
    fd, fd2 = _as(app, "front_door_advisor"), Session(app, "fd2", "second-advisor")
    tm, aud = _as(app, "team_manager"), _as(app, "auditor")
    for s in (fd, tm, aud):  # answered as an unknown case: its existence is not disclosed (issue 15 item 7)
        r = s.get(f"/api/cases/{case}")
        assert r.status_code == 404 and r.json() == {"error": "not_found", "message": f"no case {case}", "case": case}
    assert tm.get(f"/api/cases/{case}/history").status_code == 404
    r = fd2.get(f"/api/cases/{case}")
    assert r.status_code == 200 and r.json()["restricted"] is True
    # its tasks are hidden from the rest of the team and refused to them
    assert [t["case_id"] for t in fd.get("/api/tasks").json()["tasks"]] == [other]
    assert {t["case_id"] for t in fd2.get("/api/tasks").json()["tasks"]} == {case, other}
    r = fd.post(f"/api/tasks/{tid}/claim")
    assert r.status_code == 404 and r.json()["message"] == f"no open task {tid}"
    assert fd2.post(f"/api/tasks/{tid}/claim").status_code == 200
    actions = [(e["user"], e["action"]) for e in access_log(eng, case)]
    assert actions == [("front-door-advisor", "refused:open"), ("team-manager", "refused:open"),
                       ("auditor", "refused:open"), ("team-manager", "refused:history"), ("fd2", "open"),
                       ("front-door-advisor", "refused:task")]


def test_documents_are_listed_without_their_bodies(env):
    eng, app = env
    from sqlalchemy import insert

    from engine.schema import documents

    case = eng.start("three_tasks").case_id
    instance = eng.get_case(case)["instances"][0]["id"]
    with eng.db.transaction() as conn:
        conn.execute(insert(documents).values(case_id=case, instance_id=instance, element_id="letter",
                                              handler="letters", kind="letter", title="Welcome letter",
                                              body="Dear Ann, private text", created_at=START))
    r = _as(app, "auditor").get(f"/api/cases/{case}")
    assert [d["title"] for d in r.json()["documents"]] == ["Welcome letter"]
    assert "private text" not in json.dumps(r.json())


# ---------------------------------------------------------------------- inbox filters, sorting, counts
def _ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["tasks"]]


@pytest.fixture
def inbox(env):
    """Reablement tasks on four people with different due dates (deadline.bpmn: due 10 days after start)."""
    eng, app = env
    made = {}
    for title in ("Mrs Edith Clarke", "Mr Arthur Patel", "Ms Iris Okafor"):
        case = eng.start("deadline", title=title).case_id
        made[title] = _task(eng, case, "reablement")
        eng.advance_clock(timedelta(days=3))
    fd_case = eng.start("three_tasks", title="Mr Front Door").case_id
    return eng, app, made, fd_case


def test_inbox_filters_by_person_task_process_and_due(inbox):
    eng, app, made, fd_case = inbox
    ot = _as(app, "occupational_therapist")
    edith, arthur, iris = (made[t]["id"] for t in ("Mrs Edith Clarke", "Mr Arthur Patel", "Ms Iris Okafor"))
    assert _ids(ot.get("/api/tasks?person=arthur")) == [arthur]
    ref = made["Ms Iris Okafor"]["reference"]
    assert _ids(ot.get(f"/api/tasks?person={ref.lower()}")) == [iris]
    assert _ids(ot.get("/api/tasks?person=50%25")) == []  # LIKE wildcards are matched literally
    assert _ids(ot.get("/api/tasks?task=deliver")) == [edith, arthur, iris]
    assert _ids(ot.get("/api/tasks?task=reablement")) == [edith, arthur, iris]  # the element id
    assert _ids(ot.get("/api/tasks?task=nothing-like-this")) == []
    assert _ids(ot.get("/api/tasks?process=three_tasks")) == []
    # due six weeks after each start (3 days apart); now = 41 days after the first start
    eng.advance_clock(to=made["Mrs Edith Clarke"]["due_at"] - timedelta(days=1))
    ot = _as(app, "occupational_therapist")  # sessions end after 8 hours on the engine's clock
    assert _ids(ot.get("/api/tasks?due=soon")) == [edith]
    assert _ids(ot.get("/api/tasks?due=soon&within=5")) == [edith, arthur]
    assert _ids(ot.get("/api/tasks?due=overdue")) == []
    body = ot.get("/api/tasks?within=5").json()
    assert (body["counts"]["total"], body["counts"]["overdue"], body["counts"]["due_soon"]) == (3, 0, 2)
    from sqlalchemy import update

    from engine.schema import tasks
    with eng.db.transaction() as conn:  # a due date already past (as a task without a deadline timer)
        conn.execute(update(tasks).where(tasks.c.id == iris).values(due_at=eng.now() - timedelta(hours=1)))
    assert _ids(ot.get("/api/tasks?due=overdue")) == [iris]
    assert ot.get("/api/tasks").json()["counts"]["overdue"] == 1
    fd = _as(app, "front_door_advisor")
    assert _ids(fd.get("/api/tasks?due=none")) == [_task(eng, fd_case, "record_contact")["id"]]
    assert _ids(ot.get("/api/tasks?due=none")) == []


def test_inbox_sorts_both_ways_and_pages(inbox):
    _eng, app, made, _fd = inbox
    ot = _as(app, "occupational_therapist")
    edith, arthur, iris = (made[t]["id"] for t in ("Mrs Edith Clarke", "Mr Arthur Patel", "Ms Iris Okafor"))
    assert _ids(ot.get("/api/tasks?sort=due")) == [edith, arthur, iris]
    assert _ids(ot.get("/api/tasks?sort=due&order=desc")) == [iris, arthur, edith]
    assert _ids(ot.get("/api/tasks?sort=created&order=desc")) == [iris, arthur, edith]
    assert _ids(ot.get("/api/tasks?sort=person")) == [arthur, edith, iris]  # by title: Mr A, Mrs E, Ms I
    assert _ids(ot.get("/api/tasks?sort=person&order=desc")) == [iris, edith, arthur]
    assert _ids(ot.get("/api/tasks?sort=task&limit=1&offset=1")) == [arthur]
    page = ot.get("/api/tasks?limit=2&offset=2").json()
    assert [t["id"] for t in page["tasks"]] == [iris] and page["counts"]["total"] == 3


def test_inbox_refuses_unknown_and_invalid_values_with_a_422_naming_them(inbox):
    _eng, app, _made, _fd = inbox
    ot = _as(app, "occupational_therapist")
    for query, field in (("due=yesterday", "due"), ("sort=colour", "sort"), ("order=up", "order"),
                         ("within=0", "within"), ("within=abc", "within"), ("scope=all", "scope"),
                         ("team=north_pole", "team"), ("limit=500", "limit"), ("offset=-1", "offset"),
                         ("colour=red", "colour"), ("person=" + "x" * 101, "person")):
        r = ot.get(f"/api/tasks?{query}")
        assert r.status_code == 422, query
        body = r.json()
        assert body["error"] == "invalid" and [e["field"] for e in body["errors"]] == [field], query
        assert body["errors"][0]["message"] in body["message"]
    r = ot.get("/api/tasks?team=front_door")  # a real team, not theirs
    assert r.status_code == 403 and "front_door" in r.json()["message"]


def test_tab_counts_and_the_delegated_by_me_view(inbox):
    eng, app, made, _fd = inbox
    create_user(eng, "ot2", "second-therapist", roles=["occupational_therapist"], teams=["reablement"])
    ot, ot2 = _as(app, "occupational_therapist"), Session(app, "ot2", "second-therapist")
    edith, arthur = made["Mrs Edith Clarke"]["id"], made["Mr Arthur Patel"]["id"]
    counts = ot.get("/api/tasks").json()["counts"]
    assert (counts["team"], counts["mine"], counts["delegated"]) == (3, 0, 0)
    ot.post(f"/api/tasks/{edith}/claim")
    ot.post(f"/api/tasks/{arthur}/claim")
    assert ot.post(f"/api/tasks/{arthur}/delegate", {"to": "ot2"}).status_code == 200
    counts = ot.get("/api/tasks").json()["counts"]
    assert (counts["team"], counts["mine"], counts["delegated"]) == (3, 1, 1)
    assert _ids(ot.get("/api/tasks?scope=delegated")) == [arthur]
    assert _ids(ot.get("/api/tasks?scope=mine")) == [edith]
    mine2 = ot2.get("/api/tasks?scope=mine").json()
    assert [(t["id"], t["delegated_by"]) for t in mine2["tasks"]] == [(arthur, "occupational-therapist")]
    assert mine2["counts"]["mine"] == 1 and mine2["counts"]["delegated"] == 0


def test_a_task_shared_by_several_teams_is_in_each_teams_queue(env):
    eng, app = env
    shared = DIAGRAMS.joinpath("three_tasks.bpmn").read_text().replace(
        'id="three_tasks"', 'id="shared_task"').replace('candidateGroups="front_door">\n      <bpmn:incoming>f1',
                                                         'candidateGroups="front_door, reablement">\n      '
                                                         '<bpmn:incoming>f1')
    eng.deploy(files={"shared_task.bpmn": shared.encode()})
    case = eng.start("shared_task").case_id
    task = _task(eng, case, "record_contact")
    assert task["candidate_groups"] == ["front_door", "reablement"] and task["team"] == "front_door"
    ot, fin = _as(app, "occupational_therapist"), _as(app, "finance_officer")
    assert task["id"] in _ids(ot.get("/api/tasks"))
    assert task["id"] in _ids(ot.get("/api/tasks?team=reablement"))
    assert task["id"] not in _ids(fin.get("/api/tasks"))
    assert ot.get("/api/tasks").json()["counts"]["team"] == 1


# ---------------------------------------------------------------------- assign, delegate, return, draft
@pytest.fixture
def team(env):
    eng, app = env
    create_user(eng, "manager-re", "reablement-manager", roles=["team_manager"], teams=["reablement"])
    create_user(eng, "ot2", "second-therapist", roles=["occupational_therapist"], teams=["reablement"])
    create_user(eng, "gone", "left-the-council", roles=["occupational_therapist"], teams=["reablement"])
    from sqlalchemy import update

    from api.auth import users
    with eng.db.transaction() as conn:
        conn.execute(update(users).where(users.c.username == "gone").values(active=False))
    case = eng.start("deadline", title="Mrs Edith Clarke").case_id
    return eng, app, _task(eng, case, "reablement")["id"]


def test_a_team_manager_assigns_to_an_active_member_of_the_tasks_team(team):
    eng, app, tid = team
    mgr = Session(app, "manager-re", "reablement-manager")
    ot = _as(app, "occupational_therapist")
    for to, says in (("nobody-here", "no user"), ("gone", "not an active user"),
                     ("front-door-advisor", "not in the reablement team")):
        r = mgr.post(f"/api/tasks/{tid}/assign", {"to": to})
        assert r.status_code == 422 and says in r.json()["message"], r.text
    assert ot.post(f"/api/tasks/{tid}/assign", {"to": "ot2"}).status_code == 403  # not a manager
    tm_other = _as(app, "team_manager")  # a manager, but of another team
    assert tm_other.post(f"/api/tasks/{tid}/assign", {"to": "ot2"}).status_code == 403
    r = mgr.post(f"/api/tasks/{tid}/assign", {"to": "ot2", "revision": 0})
    assert r.status_code == 200 and (r.json()["assignee"], r.json()["owner"]) == ("ot2", "ot2")
    assert [t["id"] for t in Session(app, "ot2", "second-therapist").get("/api/tasks?scope=mine").json()["tasks"]] \
        == [tid]
    r = mgr.post(f"/api/tasks/{tid}/assign", {"to": "occupational-therapist", "revision": 0})  # stale
    assert r.status_code == 409
    assert r.json()["changed_by"] == "manager-re" and "manager-re assigned it" in r.json()["message"]
    assert eng.get_task(tid)["assignee"] == "ot2"
    assert [e["actor"] for e in eng.history(eng.get_task(tid)["case_id"]) if e["type"] == "task.assigned"] \
        == ["manager-re"]


def test_delegate_draft_return_and_the_owner_completes(team):
    eng, app, tid = team
    ot, ot2 = _as(app, "occupational_therapist"), Session(app, "ot2", "second-therapist")
    assert ot.post(f"/api/tasks/{tid}/delegate", {"to": "ot2"}).status_code == 403  # claim first
    ot.post(f"/api/tasks/{tid}/claim")
    assert ot.post(f"/api/tasks/{tid}/delegate", {"to": "gone"}).status_code == 422
    assert ot.post(f"/api/tasks/{tid}/delegate", {"to": "occupational-therapist"}).status_code == 422
    r = ot.post(f"/api/tasks/{tid}/delegate", {"to": "ot2"})
    assert r.status_code == 200 and r.json()["delegated_by"] == "occupational-therapist"
    # the delegate may save a draft and return it, not complete, release or re-delegate it
    assert ot2.post(f"/api/tasks/{tid}/complete", {"data": {}}).status_code == 403
    assert ot2.post(f"/api/tasks/{tid}/release").status_code == 403
    assert ot2.post(f"/api/tasks/{tid}/delegate", {"to": "occupational-therapist"}).status_code == 403
    assert ot.post(f"/api/tasks/{tid}/return").status_code == 403  # only the delegate returns
    assert ot.client.put(f"/api/tasks/{tid}/draft", json={"data": {"notes": "x"}},
                         headers={"X-CSRF-Token": ot.csrf}).status_code == 403  # not with them now
    r = ot2.client.put(f"/api/tasks/{tid}/draft", json={"data": {"notes": "Edith walks to the shop"}},
                       headers={"X-CSRF-Token": ot2.csrf})
    assert r.status_code == 200 and r.json()["draft"] == {"notes": "Edith walks to the shop"}
    assert "draft" not in _as(app, "reablement_coordinator").get(f"/api/tasks/{tid}").json()  # not theirs
    back = ot2.post(f"/api/tasks/{tid}/return")
    assert back.status_code == 200 and back.json()["assignee"] == "occupational-therapist"
    assert ot.get(f"/api/tasks/{tid}").json()["draft"] == {"notes": "Edith walks to the shop"}
    assert ot.post(f"/api/tasks/{tid}/complete", {"data": {}}).json()["status"] in ("waiting", "completed")
    kinds = [(e["type"], e["actor"]) for e in eng.history(back.json()["case_id"])
             if e["type"] in ("task.delegated", "task.draft_saved", "task.returned", "task.completed")]
    assert kinds == [("task.delegated", "occupational-therapist"), ("task.draft_saved", "ot2"),
                     ("task.returned", "ot2"), ("task.completed", "occupational-therapist")]


def test_a_draft_with_a_stale_revision_is_a_409_naming_who_changed_it(team):
    eng, app, tid = team
    ot = _as(app, "occupational_therapist")
    mgr = Session(app, "manager-re", "reablement-manager")
    rev = ot.post(f"/api/tasks/{tid}/claim").json()["revision"]
    assert ot.client.put(f"/api/tasks/{tid}/draft", json={"data": "text"},
                         headers={"X-CSRF-Token": ot.csrf}).status_code == 422
    assert ot.client.put(f"/api/tasks/{tid}/draft", json={"data": {}},
                         headers={}).status_code == 403  # no CSRF header
    mgr.post(f"/api/tasks/{tid}/assign", {"to": "occupational-therapist"})  # moves the revision on
    r = ot.client.put(f"/api/tasks/{tid}/draft", json={"data": {"notes": "late"}, "revision": rev},
                      headers={"X-CSRF-Token": ot.csrf})
    assert r.status_code == 409 and r.json()["changed_by"] == "manager-re"
    assert eng.get_task(tid).get("draft") is None
    # release: the assignee or a manager of the team; not a colleague
    ot2 = Session(app, "ot2", "second-therapist")
    assert ot2.post(f"/api/tasks/{tid}/release").status_code == 403
    assert mgr.post(f"/api/tasks/{tid}/release").json()["assignee"] is None


def test_a_queue_of_two_teams_and_own_tasks_pages_in_due_order_with_each_task_once(env):
    """The default inbox reads each team's queue and the user's own tasks from their indexes and merges
    them: every page matches one sort of everything the user may see (soonest first, no due date last)."""
    eng, app = env
    create_user(eng, "both", "works-two-teams", roles=["reablement_coordinator"], teams=["reablement", "front_door"])
    for i in range(4):
        eng.start("deadline", title=f"Reablement {i}")
        eng.advance_clock(timedelta(days=1))
    for i in range(3):
        eng.start("three_tasks", title=f"Front door {i}")
    other = eng.start("three_tasks", title="Someone else's").case_id
    eng.complete_task(_task(eng, other, "record_contact")["id"], {"name": "Jo Bloggs", "reason": "moving on"})
    eng.complete_task(_task(eng, other, "screen")["id"], {})
    [tm] = [t for t in eng.list_tasks() if t["team"] == "team_manager"]
    eng.assign(tm["id"], "both", actor="manager")  # a team_manager task given to them: in their queue too
    [mine_too] = [t for t in eng.list_tasks(team="reablement")][:1]
    eng.assign(mine_too["id"], "both", actor="manager")  # in their team AND theirs: must appear once

    visible = [t for t in eng.list_tasks(limit=1000)
               if t["team"] in ("reablement", "front_door") or t["assignee"] == "both"]
    far = datetime.max.replace(tzinfo=timezone.utc)
    expected = [t["id"] for t in sorted(visible, key=lambda t: (t["due_at"] or far, t["created_at"], t["id"]))]
    s = Session(app, "both", "works-two-teams")
    got = []
    for offset in range(0, len(expected) + 2, 2):
        page = s.get(f"/api/tasks?limit=2&offset={offset}").json()
        assert page["counts"]["total"] == len(expected)
        got += [t["id"] for t in page["tasks"]]
    assert got == expected and len(set(got)) == len(got) == 8  # 4 reablement, 3 front door, 1 given to them
    dated = [i for i in expected if next(t for t in visible if t["id"] == i)["due_at"]]
    backwards = _ids(s.get("/api/tasks?sort=due&order=desc&limit=100"))
    assert backwards[:len(dated)] == dated[::-1] and set(backwards[len(dated):]) == set(expected) - set(dated)


def test_completing_is_refused_on_a_restricted_case_and_outside_the_team_and_saves_nothing(env):
    """The completion's checks run in the engine's transaction (api/tasks.py `complete_task`): each refusal
    is the same answer as before and leaves the task open, at its revision."""
    eng, app = env
    case = eng.start("three_tasks", title="Restricted").case_id
    tid = _task(eng, case, "record_contact")["id"]
    restrict_case(eng, case, ["fd2"])
    fd, fd2 = _as(app, "front_door_advisor"), Session(app, "fd2", "second-advisor")
    # answered as an unknown task: the restricted case's existence is not disclosed (issue 15 item 7)
    r = fd.post(f"/api/tasks/{tid}/complete", {"data": {"name": "Ann", "reason": "falls"}})
    assert r.status_code == 404 and r.json()["message"] == f"no open task {tid}"
    r = _as(app, "social_worker").post(f"/api/tasks/{tid}/complete", {"data": {"name": "Ann", "reason": "falls"}})
    assert r.status_code == 404 and r.json()["message"] == f"no open task {tid}"
    assert _task(eng, case, "record_contact")["revision"] == 0
    other = eng.start("three_tasks").case_id
    oid = _task(eng, other, "record_contact")["id"]
    r = _as(app, "social_worker").post(f"/api/tasks/{oid}/complete", {"data": {"name": "Ann", "reason": "falls"}})
    assert r.status_code == 403 and "front_door" in r.json()["message"]
    assert _task(eng, other, "record_contact")["revision"] == 0
    assert fd.post(f"/api/tasks/{tid}/claim").status_code == 404
    assert fd2.post(f"/api/tasks/{tid}/complete", {"data": {"name": "Ann", "reason": "falls"}}).status_code == 200
