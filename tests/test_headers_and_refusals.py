"""Issue 15 item 7, generated from the app's route table so that a new route cannot escape:

* every response carries `X-Content-Type-Options: nosniff`, and every one that holds or may hold personal
  data `Cache-Control: no-store` (api/security_headers.py);
* every case-scoped route (a `{case_id}`/`{case_ref}` in its path, or a task's) answers a user who is not named
  on a restricted case exactly as it answers an unknown id — 404, same body — and writes exactly one refused
  row to that case's access log (api/access.py `refusal`, api/cases.py `open_case`);
* a refused history request is logged;
* a deactivated user's old session is refused on a page and on the API, whichever way the account was
  deactivated (the admin API, the admin page, `carepath user deactivate`, a direct update of the users table);
* the API description is not published unless the setting is on, and then only to signed-in users; FastAPI's
  CDN-loading /docs and /redoc are never served.

On SQLite and PostgreSQL (the `db_url` fixture), on the two real cases of tests/test_api_cases.py.
"""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from api.access import restrict_case
from api.app import create_app
from api.auth import create_user
from engine.schema import case_access_log, restricted_cases, users
from tests.test_api_cases import PASSWORD, USERS, build_world
from tests.test_auditor_read_only import all_routes

UNKNOWN = 987654  # no such case in the world
# responses that set their own caching: front-end files and a process version's diagram (no personal data)
# well-formed bodies for the routes whose body is checked before who may (a 422 is no refusal)
BODIES = {("POST", "/api/cases/{case_id}/close"): {"reason": "died"},
          ("POST", "/api/cases/{case_id}/details"): {"changes": {}},
          ("POST", "/api/cases/{case_id}/notes"): {"kind": "note", "text": "A note"},
          ("POST", "/api/cases/{case_id}/subject-access"): {"reason": "SAR 2031/1"},
          ("POST", "/api/tasks/{task_id}/assign"): {"to": "rosa"},
          ("POST", "/api/tasks/{task_id}/delegate"): {"to": "rosa"},
          ("PUT", "/api/tasks/{task_id}/draft"): {"data": {}}}
SIGN_OUT = {("DELETE", "/api/session"), ("POST", "/sign-out")}
OWN_CACHING = ("/static/{name}", "/favicon.ico", "/cases/{case_ref}/replay/diagrams/{version_ref}")


# the roles tests/test_api_cases.py's world has no user for (its USERS), so that every role walks every route
MORE_USERS = {"ada": ("Ada Admin", ["administrator"], []),
              "otis": ("Otis Turner", ["occupational_therapist"], ["reablement"]),
              "fiona": ("Fiona Banks", ["finance_officer"], ["finance"]),
              "pearl": ("Pearl Stats", ["performance"], [])}


@pytest.fixture(scope="module")
def world(module_db_url):
    """One world a module and database (build_world deploys every process and runs two cases: 1-5 s).

    The tests leave it as they found it: a restriction is lifted, a deactivated user reactivated; the route walk,
    whose requests may change things, runs last (the end of this file)."""
    eng, cases = build_world(module_db_url)
    for username, (name, roles, teams) in MORE_USERS.items():
        create_user(eng, username, PASSWORD, display_name=name, roles=roles, teams=teams)
    app = create_app(eng, run_timers=False)
    yield eng, app, cases
    eng.db.dispose()


@pytest.fixture
def lifted(world):
    """Lifts whatever restriction a test put on Joan's case."""
    eng, _app, cases = world
    yield
    with eng.db.transaction() as conn:
        conn.execute(delete(restricted_cases).where(restricted_cases.c.case_id == cases["joan"]))


@pytest.fixture
def reactivated(world):
    """Gives Rosa her account back after a test deactivated it."""
    eng, _app, _cases = world
    yield
    with eng.db.transaction() as conn:
        conn.execute(update(users).where(users.c.username == "rosa").values(active=True))


def signed_in(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, raise_server_exceptions=False)
    r = client.post("/api/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    return client, token


def routes(app):
    """(method, path template) of every route the app serves (the included routers' ones flattened), HEAD left
    out; signing out last (it ends the session the others are asked with)."""
    out = set()
    for route in all_routes(app):
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                out.add((method, route.path))
    return sorted(out, key=lambda mp: (mp in SIGN_OUT, mp))


def send(client: TestClient, token: str, method: str, path: str, body: dict | None = None):
    """A request as a browser or an API client would send it: JSON to /api/, a form with its token to pages."""
    if path.startswith("/api/"):
        return client.request(method, path, json=(body or {}) if method != "GET" else None)
    headers = {"Accept": "text/html"}
    if method == "GET":
        return client.get(path, headers=headers, follow_redirects=False)
    return client.request(method, path, data={"csrf_token": token}, headers=headers, follow_redirects=False)


def fill(template: str, values: dict[str, str]) -> str:
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no test value for a parameter of {template}: add it here"
    return path


# ---------------------------------------------------------------------- restricted cases look unknown
def refused_rows(eng, case_id: int, username: str) -> tuple[int, int]:
    """(all rows, refused rows) in the case's access log for this user."""
    with eng.db.engine.connect() as conn:
        base = select(func.count()).select_from(case_access_log).where(
            case_access_log.c.case_id == case_id, case_access_log.c.user == username)
        total = conn.execute(base).scalar_one()
        refused = conn.execute(base.where((case_access_log.c.outcome == "refused")
                                          | case_access_log.c.action.like("refused:%"))).scalar_one()
    return total, refused


def normalised(r, path: str, ident: str) -> str:
    """The body with the id and the path asked for taken out (they differ by design between the two requests)."""
    text = r.text.replace(path, "PATH")
    for pattern in (f"no case {ident}", f'"case":{ident}', f"no open task {ident}", f'"task":"{ident}"'):
        text = text.replace(pattern, pattern.replace(ident, "ID"))
    return text


def case_scoped(app):
    return [(m, p) for m, p in routes(app) if "{case_id}" in p or "{case_ref}" in p or "{task_id}" in p]


@pytest.mark.parametrize("who", ["rosa", "audrey"])  # a worker who worked on the case; an auditor (oversight)
def test_a_restricted_case_answers_as_an_unknown_one_on_every_case_route_and_each_refusal_is_logged(world, who,
                                                                                                   lifted):
    eng, app, cases = world
    joan = cases["joan"]
    tasks = eng.list_tasks(case_id=joan)
    assert tasks, "Joan's case has an open task"
    instance = tasks[0]["instance_id"]
    restrict_case(eng, joan, ["mary"])
    client, token = signed_in(app, who)
    others = {"doc_id": "1", "request_id": "1", "grant_id": "1", "instance_id": str(instance),
              "action": "review", "name": "name",
              "which": "admission", "process_id": "not_shipped_process", "section_id": "1", "version_ref": "1"}
    seen = 0
    for method, template in case_scoped(app):
        if "{task_id}" in template:
            ids = (tasks[0]["id"], str(uuid.uuid4()))
        else:
            ids = (str(joan), str(UNKNOWN))
        answers = []
        for ident in ids:
            values = {**others, "case_id": ident, "case_ref": ident, "task_id": ident}
            path = fill(template, {k: v for k, v in values.items() if "{" + k + "}" in template})
            before = refused_rows(eng, joan, who)
            r = send(client, token, method, path, BODIES.get((method, template)))
            after = refused_rows(eng, joan, who)
            answers.append((r.status_code, normalised(r, path, ident)))
            if ident == ids[0]:
                assert after == (before[0] + 1, before[1] + 1), (method, template, r.status_code, before, after)
            else:
                assert after == before, (method, template)
        assert answers[0] == answers[1], (method, template, answers)
        status, body = answers[0]
        # 404; or a refusal of the user's role made before the case is looked at (the same for every id)
        assert status == 404 or (status == 403 and "restricted" not in body), (method, template, answers[0])
        if method == "GET" and template.startswith("/api/cases/{case_id}") and not template.endswith("restriction"):
            assert status == 404, (method, template)
        seen += 1
    assert seen >= 40  # the case routes, the case pages and the task routes


def test_the_people_named_on_a_restriction_still_open_it(world, lifted):
    eng, app, cases = world
    joan = cases["joan"]
    restrict_case(eng, joan, ["mary", "rosa"])
    for who in ("mary", "rosa"):
        client, _token = signed_in(app, who)
        assert client.get(f"/api/cases/{joan}/record").status_code == 200, who
    mary, _token = signed_in(app, "mary")
    assert mary.get(f"/api/cases/{joan}/history").status_code == 200


def test_a_refused_history_request_is_logged(world):
    eng, app, cases = world
    joan = cases["joan"]
    rosa, _token = signed_in(app, "rosa")  # may open the record, may not read the raw history
    before = refused_rows(eng, joan, "rosa")
    r = rosa.get(f"/api/cases/{joan}/history")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert refused_rows(eng, joan, "rosa") == (before[0] + 1, before[1] + 1)
    assert rosa.get(f"/api/cases/{UNKNOWN}/history").status_code == 404


@pytest.mark.parametrize("bad", ["\u00b2", "0", str(2**63), "9" * 25, "CASE-x"])
def test_an_address_whose_case_id_is_no_id_is_a_404_and_nothing_fails_behind_it(world, bad, caplog):
    """The access log's backstop reads the case id of a refused request by `Id`'s rule (api/inputs.py `to_id`): a
    superscript digit, 0 or an id past 2^63 - 1 names no case — no refused row, and no failure logged after the
    404 has gone (a superscript two is a digit to `str.isdigit`, not to `int`)."""
    eng, app, cases = world
    rosa, _token = signed_in(app, "rosa")
    caplog.set_level("ERROR", logger="carepath")
    for path in (f"/cases/{bad}", f"/api/cases/{bad}", f"/cases/{bad}/replay"):
        assert rosa.get(path, headers={"Accept": "text/html"}).status_code in (400, 404), path
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


# ---------------------------------------------------------------------- deactivated users
def _deactivate_admin_api(eng, app):
    ada, _token = signed_in(app, "ada")
    r = ada.patch("/api/admin/users/rosa", json={"active": False})
    assert r.status_code == 200, r.text


def _deactivate_admin_page(eng, app):
    ada, token = signed_in(app, "ada")
    r = ada.post("/admin/users/rosa", data={"csrf_token": token, "action": "deactivate"},
                 headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code in (200, 303), r.text


def _deactivate_on_the_command_line(eng, app):
    from carepath.cli import main

    assert main(["user", "deactivate", "rosa", "--as", "ada", "--db", eng.db.url]) == 0
    assert main(["user", "deactivate", "mary", "--as", "sam", "--db", eng.db.url]) != 0  # administrators only


def _deactivate_in_the_database(eng, app):
    with eng.db.transaction() as conn:  # as a database administrator or a script would: the sessions stay
        conn.execute(update(users).where(users.c.username == "rosa").values(active=False))


@pytest.mark.parametrize("deactivate", [_deactivate_admin_api, _deactivate_admin_page, _deactivate_on_the_command_line,
                                        _deactivate_in_the_database])
def test_a_deactivated_users_session_is_refused_however_they_were_deactivated(world, deactivate, reactivated):
    eng, app, cases = world
    joan = cases["joan"]
    rosa, _token = signed_in(app, "rosa")
    assert rosa.get(f"/api/cases/{joan}/record").status_code == 200
    assert rosa.get("/tasks", headers={"Accept": "text/html"}, follow_redirects=False).status_code == 200
    deactivate(eng, app)
    r = rosa.get(f"/api/cases/{joan}/record")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert rosa.get("/api/me").status_code == 401
    r = rosa.get("/tasks", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"
    r = rosa.get(f"/cases/{joan}", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"


def _reactivate_admin_api(eng, app):
    ada, _token = signed_in(app, "ada")
    r = ada.patch("/api/admin/users/rosa", json={"active": True})
    assert r.status_code == 200 and r.json()["active"] is True, r.text


def _reactivate_admin_page(eng, app):
    ada, token = signed_in(app, "ada")
    r = ada.post("/admin/users/rosa", data={"csrf_token": token, "action": "reactivate"},
                 headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _reactivate_on_the_command_line(eng, app):
    from carepath.cli import main

    assert main(["user", "reactivate", "rosa", "--as", "ada", "--db", eng.db.url]) == 0


@pytest.mark.parametrize("reactivate", [_reactivate_admin_api, _reactivate_admin_page,
                                        _reactivate_on_the_command_line])
def test_a_session_from_before_a_deactivation_never_comes_back(world, reactivate, reactivated):
    """A deactivation that left the sessions in place (a direct database update: the admin page, the API and
    `carepath user deactivate` end them) is undone by reactivating: the old session stays refused, and Rosa
    signs in again."""
    eng, app, cases = world
    joan = cases["joan"]
    rosa, _token = signed_in(app, "rosa")
    _deactivate_in_the_database(eng, app)
    assert rosa.get("/api/me").status_code == 401
    reactivate(eng, app)
    r = rosa.get(f"/api/cases/{joan}/record")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    r = rosa.get("/tasks", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"
    again, _token = signed_in(app, "rosa")
    assert again.get(f"/api/cases/{joan}/record").status_code == 200


# ---------------------------------------------------------------------- the API description
def test_no_cdn_docs_and_the_description_only_when_on_and_signed_in(world, monkeypatch):
    eng, _app, _cases = world
    monkeypatch.delenv("CAREPATH_API_DOCS", raising=False)
    off = create_app(eng, run_timers=False)
    on = create_app(eng, run_timers=False, api_docs=True)
    for app in (off, on):
        anonymous = TestClient(app)
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert anonymous.get(path).status_code == 404, path
    client, _token = signed_in(off, "audrey")
    assert client.get("/api/openapi.json").status_code == 404
    assert TestClient(on).get("/api/openapi.json").status_code == 401
    client, _token = signed_in(on, "audrey")
    r = client.get("/api/openapi.json")
    assert r.status_code == 200 and "/api/cases/{case_id}" in r.json()["paths"]
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    monkeypatch.setenv("CAREPATH_API_DOCS", "1")
    client, _token = signed_in(create_app(eng, run_timers=False), "audrey")
    assert client.get("/api/openapi.json").status_code == 200


# ---------------------------------------------------------------------- every role on every route (runs last)
VALUES = {"doc_id": "1", "request_id": "1", "grant_id": "1", "instance_id": "1", "action": "review", "name": "name",
          "which": "admission", "process_id": "review", "draft_id": "1", "username": "rosa", "measure": "ASCOF-2A",
          "section_id": "1", "version_ref": "1", "path": "x", "version": "1", "file_name": "x",
          "simulation_id": "123456789"}


def walk(app, client, token, values) -> dict[tuple[str, str], object]:
    """Every route asked once by this client (signing out last): {(method, template): response}."""
    answers = {}
    for method, template in routes(app):
        path = fill(template.replace("{name}", "app.css") if template == "/static/{name}" else template,
                    {k: v for k, v in values.items() if "{" + k + "}" in template})
        answers[(method, template)] = send(client, token, method, path)
    return answers


def assert_headers(who, answers) -> None:
    for (method, template), r in answers.items():
        assert r.headers.get("x-content-type-options") == "nosniff", (who, method, template, r.status_code)
        cache = r.headers.get("cache-control")
        if template in OWN_CACHING and r.status_code == 200:
            assert cache in ("public, max-age=3600", "private, max-age=3600"), (method, template, cache)
        else:
            assert cache == "no-store", (who, method, template, r.status_code, cache)
        assert r.status_code < 500, (who, method, template, r.status_code, r.text[:300])


def values_for(eng, cases) -> dict[str, str]:
    joan = cases["joan"]
    [task] = eng.list_tasks(case_id=joan)[:1]
    return {**VALUES, "case_id": str(joan), "case_ref": str(joan), "task_id": task["id"]}


def test_a_signed_out_client_and_a_deactivated_users_session_get_the_same_on_every_route(world):
    """Generated from the route table: the session of a user deactivated by a direct update of the users table
    (no admin page or command saw it) gets, route by route, exactly what a signed-out client gets — 401 from
    the API, a redirect to the sign-in page from the pages — and every answer carries nosniff and no-store."""
    eng, app, cases = world
    values = values_for(eng, cases)
    create_user(eng, "dora", PASSWORD, display_name="Dora Gone", roles=["reablement_coordinator"],
                teams=["reablement"])
    dora, dora_token = signed_in(app, "dora")
    assert dora.get("/api/me").status_code == 200
    with eng.db.transaction() as conn:
        conn.execute(update(users).where(users.c.username == "dora").values(active=False))

    signed_out = walk(app, TestClient(app, raise_server_exceptions=False), "", values)
    deactivated = walk(app, dora, dora_token, values)
    assert_headers(None, signed_out)
    assert_headers("dora", deactivated)
    for (method, template), r in signed_out.items():
        d = deactivated[(method, template)]
        assert (d.status_code, d.headers.get("location")) == (r.status_code, r.headers.get("location")), (
            method, template, d.status_code, r.status_code)
    refused = {(m, t) for (m, t), r in signed_out.items()
               if r.status_code == 401 or (r.status_code == 303 and r.headers["location"] == "/sign-in")}
    public = sorted(set(signed_out) - refused)
    assert len(public) < 12, public  # the sign-in page, the health check, front-end files...
    for mt in refused:
        if mt[1].startswith("/api/"):
            assert deactivated[mt].status_code == 401 and deactivated[mt].json()["error"] == "unauthenticated", mt
    assert len(signed_out) > 150


def test_a_password_an_administrator_chose_opens_only_its_change_on_every_route(world):
    """Generated from the route table: an account whose password an administrator chose (api/admin.py; its
    owner must choose their own, api/own_password.py) gets, on every route a signed-out client is refused, 403
    `password_change_required` from the API and a redirect to /account/password from the pages — but for
    changing the password, who they are (`GET /api/me`) and signing out."""
    eng, app, cases = world
    values = values_for(eng, cases)
    ada, _token = signed_in(app, "ada")
    r = ada.post("/api/admin/users", json={"username": "pol", "display_name": "Pol Owner", "password": PASSWORD,
                                           "roles": ["process_owner"], "teams": []})
    assert r.status_code == 201 and r.json()["password_change_due"] is True, r.text
    signed_out = walk(app, TestClient(app, raise_server_exceptions=False), "", values)
    due = walk(app, *signed_in(app, "pol"), values)
    assert_headers("pol", due)
    open_to_them = {("PUT", "/api/session/password"), ("GET", "/api/me"), ("DELETE", "/api/session"),
                    ("GET", "/account/password"), ("POST", "/account/password"), ("POST", "/sign-out")}
    seen = set()
    for (method, template), r in signed_out.items():
        if not (r.status_code == 401 or (r.status_code == 303 and r.headers["location"] == "/sign-in")):
            continue  # open to anyone (the sign-in page, the health check, front-end files)
        if template.startswith("/sign-in/"):
            continue  # the steps of signing in (the code, the identity provider): no session needed or read
        d = due[(method, template)]
        if (method, template) in open_to_them:
            seen.add((method, template))
            assert d.status_code not in (401, 403) and d.headers.get("location") != "/account/password", (
                method, template, d.status_code)
        elif template.startswith("/api/"):
            assert d.status_code == 403 and d.json()["error"] == "password_change_required", (
                method, template, d.status_code, d.text[:200])
        else:
            assert (d.status_code, d.headers.get("location")) == (303, "/account/password"), (
                method, template, d.status_code, d.headers.get("location"))
    assert seen == open_to_them


@pytest.mark.parametrize("username", [*USERS, *MORE_USERS])  # one user of each role
def test_every_role_on_every_route_gets_nosniff_no_store_no_500_and_is_not_told_to_sign_in(world, username):
    """The role x route matrix, generated from the route table (a new route cannot escape it): a user of each
    role asks every route once, signing out last. What each role may do is tested route by route elsewhere
    (tests/test_api_tasks.py::test_role_endpoint_matrix, tests/test_auditor_read_only.py, the pages' tests)."""
    eng, app, cases = world
    answers = walk(app, *signed_in(app, username), values_for(eng, cases))
    assert_headers(username, answers)
    for (method, template), r in answers.items():
        if (method, template) not in SIGN_OUT:
            assert r.status_code != 401, (username, method, template, r.text[:300])
    assert len(answers) > 150
