"""The session check's cost and its fallback (issue 14 item 4; docs/performance.md "A cheaper HTTP layer, continued";
docs/security.md "Sessions and cookies").

On a file SQLite database a request with a valid session reads the database once — one SELECT, no BEGIN, no
ROLLBACK — on the event loop (api/auth.py `SessionReader`); the session row is written only when its last use moved
by a minute, or deleted when it has been idle too long. Every statement SQLite runs is recorded through the
driver's trace callback on every connection the engine opens, the check's own included. When the read cannot be
made without waiting, the check runs in a worker thread and answers the same."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.app import create_app
from api.auth import AuthSettings, SessionReader, create_user
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import START

PW = "correct horse battery"


@pytest.fixture
def traced(tmp_path):
    """An engine whose every SQLite connection reports its statements to `seen`, and its app."""
    eng = Engine(f"sqlite:///{tmp_path / 'carepath.db'}", forms=FormLibrary())
    seen: list[str] = []

    @event.listens_for(eng.db.engine, "connect")
    def _trace(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.set_trace_callback(seen.append)

    eng.init(simulated_start=START)
    create_user(eng, "wendy", PW, roles=["social_worker"], teams=["social_work"])
    app = create_app(eng, run_timers=False, auth=AuthSettings())
    yield eng, app, seen
    eng.db.dispose()


def _sign_in(app) -> TestClient:
    c = TestClient(app, client=("192.0.2.80", 50000))
    r = c.post("/api/session", json={"username": "wendy", "password": PW})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def _statements(seen: list[str]) -> list[str]:
    return [" ".join(s.split())[:40] for s in seen if not s.startswith("PRAGMA")]


def test_a_valid_session_is_one_select_and_its_row_is_written_once_a_minute(traced):
    eng, app, seen = traced
    c = _sign_in(app)
    assert c.get("/api/me").status_code == 200  # the event loop's own connection opened
    seen.clear()
    eng.advance_clock(timedelta(seconds=20))
    seen.clear()
    assert c.get("/api/me").status_code == 200
    assert [s.split()[0] for s in _statements(seen)] == ["SELECT"], seen  # no BEGIN, no ROLLBACK, no write
    eng.advance_clock(timedelta(seconds=40))  # a minute since the last write: written now
    seen.clear()
    assert c.get("/api/me").status_code == 200
    words = [s.split()[0] for s in _statements(seen)]
    assert words[0] == "SELECT" and "UPDATE" in words and words[-1] == "COMMIT", seen
    eng.advance_clock(timedelta(minutes=30, seconds=1))  # idle too long: the row is deleted, 401
    seen.clear()
    assert c.get("/api/me").status_code == 401
    assert any(s.startswith("DELETE FROM sessions") for s in _statements(seen)), seen
    seen.clear()
    assert c.get("/api/me").status_code == 401  # no session row: one SELECT, nothing written
    assert [s.split()[0] for s in _statements(seen)] == ["SELECT"], seen


def test_a_check_that_cannot_be_read_at_once_runs_in_a_worker_thread_with_the_same_answers(traced, monkeypatch):
    """A locked or broken connection on the event loop never waits there: the check runs in a worker thread, with
    CSRF, the idle limit and sign-out as before."""
    eng, app, _seen = traced
    c = _sign_in(app)

    def locked(self):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SessionReader, "_driver", locked)
    assert c.get("/api/me").json()["user"]["username"] == "wendy"
    assert c.delete("/api/session", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    eng.advance_clock(timedelta(minutes=30))
    assert c.get("/api/me").status_code == 200  # used at exactly the limit
    eng.advance_clock(timedelta(minutes=30, seconds=1))
    assert c.get("/api/me").status_code == 401
    c = _sign_in(app)
    assert c.delete("/api/session").status_code == 200
    assert c.get("/api/me").status_code == 401


def test_sign_out_and_deactivation_are_seen_at_once_by_the_event_loops_connection(traced):
    """The event loop's connection reads in autocommit: each check sees every commit made before it."""
    from sqlalchemy import update

    from api.auth import users

    eng, app, _seen = traced
    with TestClient(app, client=("192.0.2.81", 50000)) as c:  # one event loop thread: one connection for all
        r = c.post("/api/session", json={"username": "wendy", "password": PW})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        assert c.get("/api/me").status_code == 200
        with eng.db.transaction() as conn:
            conn.execute(update(users).where(users.c.username == "wendy").values(roles=["auditor"]))
        assert c.get("/api/me").json()["user"]["roles"] == ["auditor"]
        with eng.db.transaction() as conn:
            conn.execute(update(users).where(users.c.username == "wendy").values(active=False))
        assert c.get("/api/me").status_code == 401


# ---------------------------------------------------------------------- PostgreSQL (api/auth.py `PgSessionReader`)
@pytest.fixture
def pg_app(pg_url):
    """An engine on PostgreSQL whose connections (the pool's and the session reader's) all carry one application
    name, so that a test can cut exactly them as a restart of PostgreSQL would; its app; a wire trace of the pool."""
    import uuid

    from tests.test_step_statements import WireLog

    name = f"carepath-session-{uuid.uuid4().hex[:8]}"
    eng = Engine(f"{pg_url}&application_name={name}", forms=FormLibrary())
    eng.init(simulated_start=START)
    create_user(eng, "wendy", PW, roles=["social_worker"], teams=["social_work"])
    wire = WireLog(eng.db.engine)
    app = create_app(eng, run_timers=False, auth=AuthSettings())
    yield eng, app, wire, name
    eng.db.dispose()


def _cut(eng, name: str) -> int:
    """Terminate every server process of the app's connections, as a PostgreSQL restart ends them."""
    import psycopg

    from tests.conftest import PG_URL

    with psycopg.connect(PG_URL, autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                                 (name,)).fetchall())


def _reader_pid(app) -> int | None:
    conn = app.state.auth.pg_reader._conn
    return None if conn is None or conn.closed else conn.info.backend_pid


@pytest.mark.postgres
def test_on_postgresql_a_valid_session_is_one_select_on_the_event_loop_and_nothing_through_the_pool(pg_app):
    eng, app, wire, _name = pg_app
    with TestClient(app, client=("192.0.2.82", 50000)) as c:  # one event loop: the reader's connection opens
        r = c.post("/api/session", json={"username": "wendy", "password": PW})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        for _ in range(2):
            assert c.get("/api/me").status_code == 200
        wire.take()
        assert c.get("/api/me").json()["user"]["username"] == "wendy"
        assert wire.take() == (0, [])  # no pre-ping, BEGIN, SELECT or ROLLBACK through the pool
        with eng.db.engine.connect() as conn:  # in autocommit: no transaction left open between checks
            state = conn.exec_driver_sql("SELECT state FROM pg_stat_activity WHERE pid = %(pid)s",
                                         {"pid": _reader_pid(app)}).scalar_one()
        assert state == "idle"
        wire.take()
        assert c.delete("/api/session", headers={"X-CSRF-Token": "wrong"}).status_code == 403
        eng.advance_clock(timedelta(minutes=30, seconds=1))  # the simulated clock read with the session
        assert c.get("/api/me").status_code == 401
        assert any(s.startswith("DELETE FROM sessions") for s in wire.take()[1])  # the write: in a worker thread


@pytest.mark.postgres
def test_on_postgresql_sign_out_role_change_and_deactivation_are_seen_at_once(pg_app):
    from sqlalchemy import update

    from api.auth import users

    eng, app, _wire, _name = pg_app
    with TestClient(app, client=("192.0.2.83", 50000)) as c:
        r = c.post("/api/session", json={"username": "wendy", "password": PW})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        for _ in range(2):
            assert c.get("/api/me").status_code == 200
        assert _reader_pid(app) is not None  # read on the reader's connection from now on
        with eng.db.transaction() as conn:
            conn.execute(update(users).where(users.c.username == "wendy").values(roles=["auditor"]))
        assert c.get("/api/me").json()["user"]["roles"] == ["auditor"]
        assert c.delete("/api/session").status_code == 200  # signed out: the next check finds no session
        assert c.get("/api/me").status_code == 401
        r = c.post("/api/session", json={"username": "wendy", "password": PW})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        assert c.get("/api/me").status_code == 200
        with eng.db.transaction() as conn:
            conn.execute(update(users).where(users.c.username == "wendy").values(active=False))
        assert c.get("/api/me").status_code == 401


@pytest.mark.postgres
def test_on_postgresql_the_session_check_recovers_from_a_restart_without_a_refused_request(pg_app, monkeypatch):
    """The reader's connection has no pre-ping: a read that fails after PostgreSQL ended its connection runs in a
    worker thread through the pool (whose pre-ping reconnects), and a new connection is opened for the next."""
    eng, app, _wire, name = pg_app
    monkeypatch.setattr(type(app.state.auth.pg_reader), "RETRY_AFTER", 0.0)  # a new connection at the next check
    with TestClient(app, client=("192.0.2.84", 50000)) as c:
        r = c.post("/api/session", json={"username": "wendy", "password": PW})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        for _ in range(2):
            assert c.get("/api/me").status_code == 200
        before = _reader_pid(app)
        assert before is not None
        assert _cut(eng, name) >= 2  # the reader's connection and the pool's
        assert c.get("/api/me").json()["user"]["username"] == "wendy"  # answered, through the pool
        assert _reader_pid(app) is None
        assert c.get("/api/me").status_code == 200  # a new connection
        after = _reader_pid(app)
        assert after is not None and after != before
        assert _cut(eng, name) >= 2  # and again, with a write to make on the same request
        assert c.delete("/api/session").status_code == 200
        assert c.get("/api/me").status_code == 401
