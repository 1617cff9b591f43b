"""Sign-in, sessions, cookies, CSRF, lock-out and sign-out of the JSON API (docs/security.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from api.app import create_app
from api.auth import COOKIE, SIGN_IN_FAILED, case_access_log, create_user, users
from api.demo_users import create_demo_users, demo_password, demo_username
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import DIAGRAMS, START


@pytest.fixture
def env(db_url, calls):
    eng = Engine(db_url, registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "three_tasks.bpmn", DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_demo_users(eng)
    yield eng, app
    eng.db.dispose()


def _sign_in(client: TestClient, role: str, password: str | None = None):
    return client.post("/api/session", json={"username": demo_username(role),
                                             "password": password or demo_password(role)})


def test_sign_in_returns_user_and_csrf_token_and_sets_a_strict_http_only_cookie(env):
    _eng, app = env
    client = TestClient(app)
    r = _sign_in(client, "front_door_advisor")
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == {"username": "front-door-advisor", "display_name": "Demo front door advisor",
                            "roles": ["front_door_advisor"], "teams": ["front_door"]}
    assert len(body["csrf_token"]) >= 32
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http in tests; https below
    me = client.get("/api/me").json()
    assert me["user"]["username"] == "front-door-advisor" and me["csrf_token"] == body["csrf_token"]


def test_the_cookie_is_secure_over_https(env):
    _eng, app = env
    client = TestClient(app, base_url="https://testserver")
    r = _sign_in(client, "auditor")
    assert r.status_code == 200 and "Secure" in r.headers["set-cookie"]
    assert client.get("/api/me").status_code == 200


def test_passwords_are_stored_as_argon2id_hashes(env):
    eng, _app = env
    with eng.db.engine.connect() as conn:
        hashes = list(conn.execute(select(users.c.password_hash)).scalars())
    assert len(hashes) == 16 and all(h.startswith("$argon2id$") for h in hashes)  # 11 roles + 5 extra
    assert not any("demo-" in h for h in hashes)


def test_without_a_session_everything_but_health_and_sign_in_is_401_json(env):
    _eng, app = env
    client = TestClient(app)
    assert client.get("/api/health").status_code == 200
    for method, url in [("GET", "/api/me"), ("GET", "/api/tasks"), ("GET", "/api/cases/1"),
                        ("DELETE", "/api/session"), ("POST", "/api/tasks/x/claim")]:
        r = client.request(method, url)
        assert r.status_code == 401, (method, url)
        assert r.json()["error"] == "unauthenticated" and r.json()["message"]
    client.cookies.set(COOKIE, "forged-token")
    assert client.get("/api/me").status_code == 401


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(env):
    _eng, app = env
    client = TestClient(app)
    wrong = _sign_in(client, "social_worker", "not-the-password")
    unknown = client.post("/api/session", json={"username": "nobody", "password": "whatever-123"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "sign_in_failed", "message": SIGN_IN_FAILED}
    assert COOKIE not in client.cookies
    assert client.post("/api/session", json={"username": "x"}).status_code == 422


def test_five_failures_make_that_address_wait_a_minute_the_same_for_an_unknown_user(env):
    """Lock-out is per (account, address) with back-off now (tests/test_sign_in_controls.py has the rest)."""
    eng, app = env
    client = TestClient(app)
    for _ in range(5):
        assert _sign_in(client, "social_worker", "wrong-password").status_code == 401
        assert client.post("/api/session", json={"username": "nobody", "password": "wrong-password"}
                           ).status_code == 401
    waiting = _sign_in(client, "social_worker")  # the right password, but the back-off runs
    unknown = client.post("/api/session", json={"username": "nobody", "password": "wrong-password"})
    assert waiting.status_code == unknown.status_code == 429
    assert waiting.json() == unknown.json()  # nothing says whether the account exists
    assert waiting.json()["error"] == "too_many_attempts" and "try again in 1 minute" in waiting.json()["message"]
    assert waiting.headers["retry-after"] == "61"
    eng.advance_clock(timedelta(minutes=1))
    assert _sign_in(client, "social_worker").status_code == 200
    with eng.db.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == "social-worker")).one()
    assert row.failed_attempts == 0


def test_a_successful_sign_in_resets_the_failure_count(env):
    _eng, app = env
    client = TestClient(app)
    for _ in range(4):
        _sign_in(client, "auditor", "wrong-password")
    assert _sign_in(client, "auditor").status_code == 200
    for _ in range(4):
        _sign_in(client, "auditor", "wrong-password")
    assert _sign_in(client, "auditor").status_code == 200  # 4 + 4 failures, never 5 in a row


def test_sign_out_needs_csrf_and_then_ends_the_session(env):
    _eng, app = env
    client = TestClient(app)
    csrf = _sign_in(client, "team_manager").json()["csrf_token"]
    token = client.cookies.get(COOKIE)
    r = client.delete("/api/session")
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    assert client.get("/api/me").status_code == 200  # nothing changed
    assert client.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/me").status_code == 401
    replay = TestClient(app)
    replay.cookies.set(COOKIE, token)
    assert replay.get("/api/me").status_code == 401  # the old cookie opens nothing


def test_signing_in_again_replaces_the_session(env):
    _eng, app = env
    client = TestClient(app)
    _sign_in(client, "auditor")
    first = client.cookies.get(COOKIE)
    _sign_in(client, "auditor")
    assert client.cookies.get(COOKIE) != first
    stale = TestClient(app)
    stale.cookies.set(COOKIE, first)
    assert stale.get("/api/me").status_code == 401


def test_sessions_expire_after_eight_hours_of_the_injected_clock(env):
    eng, app = env
    client = TestClient(app)
    _sign_in(client, "auditor")
    for _ in range(7 * 3 + 2):  # used every 20 minutes (never idle): 7 h 40 min
        eng.advance_clock(timedelta(minutes=20))
        assert client.get("/api/me").status_code == 200
    eng.advance_clock(timedelta(minutes=19))  # 7 h 59 min
    assert client.get("/api/me").status_code == 200
    eng.advance_clock(timedelta(minutes=1))  # 8 hours however busy: the absolute limit stays
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize("header", [None, "", "wrong-token"])
def test_a_task_action_without_the_right_csrf_token_is_refused_and_changes_nothing(env, header):
    eng, app = env
    case = eng.start("three_tasks").case_id
    task = eng.list_tasks(case_id=case)[0]
    client = TestClient(app)
    _sign_in(client, "front_door_advisor")
    headers = {} if header is None else {"X-CSRF-Token": header}
    for action in ("claim", "release", "complete"):
        r = client.post(f"/api/tasks/{task['id']}/{action}", json={"data": {}}, headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "csrf", action
    after = eng.get_task(task["id"])
    assert after["assignee"] is None and after["revision"] == task["revision"]


def test_another_users_csrf_token_does_not_work(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    tid = eng.list_tasks(case_id=case)[0]["id"]
    mine, other = TestClient(app), TestClient(app)
    _sign_in(mine, "front_door_advisor")
    other_csrf = _sign_in(other, "team_manager").json()["csrf_token"]
    assert mine.post(f"/api/tasks/{tid}/claim", headers={"X-CSRF-Token": other_csrf}).status_code == 403


def test_create_user_refuses_unknown_roles_teams_and_short_passwords(env):
    eng, _app = env
    with pytest.raises(ValueError, match="unknown"):
        create_user(eng, "someone", "long-enough-pw", roles=["wizard"])
    with pytest.raises(ValueError, match="unknown"):
        create_user(eng, "someone", "long-enough-pw", teams=["moon_base"])
    with pytest.raises(ValueError, match="8 characters"):
        create_user(eng, "someone", "short", roles=["auditor"])
    with pytest.raises(ValueError, match="username"):
        create_user(eng, "Bad Name", "long-enough-pw")


def test_demo_users_are_created_once(env):
    eng, _app = env
    assert create_demo_users(eng) == []


def test_the_case_access_log_is_append_only(env):
    eng, app = env
    case = eng.start("three_tasks").case_id
    client = TestClient(app)
    _sign_in(client, "auditor")
    assert client.get(f"/api/cases/{case}").status_code == 200
    for stmt in ("UPDATE case_access_log SET action = 'edited'", "DELETE FROM case_access_log"):
        with pytest.raises(Exception, match="append-only"):
            with eng.db.transaction() as conn:
                conn.execute(text(stmt))
    with eng.db.engine.connect() as conn:
        assert [r.user for r in conn.execute(select(case_access_log))] == ["auditor"]


def test_the_production_hasher_uses_argon2_defaults():
    """Outside the tests (conftest swaps in a cheap hasher) passwords use argon2-cffi's default cost."""
    import json
    import subprocess
    import sys

    from argon2 import PasswordHasher

    code = ("import json, api.auth as a; h = a._hasher; "
            "print(json.dumps([h.time_cost, h.memory_cost, h.parallelism, h.type.name]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    defaults = PasswordHasher()
    assert json.loads(out.stdout) == [defaults.time_cost, defaults.memory_cost, defaults.parallelism, "ID"]
    assert defaults.memory_cost >= 19 * 1024  # OWASP's minimum for argon2id
