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
