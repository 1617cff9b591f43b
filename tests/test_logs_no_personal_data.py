"""The server's logs hold no personal data (issue 15, item 4; api/request_log.py, docs/security.md "Logs").

The app is run as it is served — uvicorn with `carepath serve`'s settings, in this process with a capturing
handler on the root, `uvicorn.access`, `uvicorn.error` and carepath's loggers, and as a real `carepath serve`
process whose standard output and error are read — through a people search with a name, NHS number, date
of birth and postcode in the query string, the one-box search page, an intake of a new person, a case
note, a note the database refuses (a trigger the test adds: a real database error whose statement carries
the note, which no input check turns into a 422), and refusals. None of the distinctive values appears
anywhere in the logs, and the logs still say which route answered with which status, so the test cannot
pass by logging nothing.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select, text

from api.request_log import ID_PARAMS, NAME_PARAMS, REDACTED_PARAMS, loggable_path, statement_shape
from engine.schema import case_access_log
from tests.front_door_world import PASSWORD, build, username

ROOT = Path(__file__).resolve().parent.parent

NAME = "Perpetua Quillfeather"
NHS = "7382915646"  # a valid NHS number (modulus 11)
DOB = "1938-11-23"
POSTCODE = "QX9 7ZP"
NOTE = "Perpetua said her neighbour Ottoline Brackenbury helps with the shopping on Tuesdays"
REFUSED_NOTE = "Mr Thistlewaite at 17 Marigold Crescent reports the gas was left on"
MARKER = "Thistlewaite"  # the test's trigger refuses a note with this word
# every spelling a value could be logged in: as typed, URL-encoded, spaced, without spaces, the date as shown
NEVER = ["Perpetua", "Quillfeather", NHS, "738 291 5646", DOB, "23/11/1938", "23 November 1938", "QX9",
         "7ZP", "QX97ZP", "Ottoline", "Brackenbury", "Tuesdays", MARKER, "Marigold", "gas was left"]


# ---------------------------------------------------------------------- the requests
class Client:
    """A signed-in browser-less client of a running server (urllib: nothing of its own is logged)."""

    def __init__(self, base: str, user: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        status, body = self.call("POST", "/api/session", {"username": user, "password": PASSWORD})
        assert status == 200, body
        self.csrf = body["csrf_token"]

    def call(self, method: str, path: str, body: dict | None = None, *, html: bool = False):
        headers = {"Accept": "text/html" if html else "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if method != "GET" and getattr(self, "csrf", None):
            headers["X-CSRF-Token"] = self.csrf
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        if html:
            return status, raw.decode()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()


def exercise(base: str, edith: int) -> object:
    """Everything the logs are checked after; returns the answer to the note the database refused."""
    advisor = Client(base, username("front_door_advisor"))
    query = urllib.parse.urlencode({"name": NAME, "date_of_birth": DOB, "nhs_number": NHS, "postcode": POSTCODE})
    status, body = advisor.call("GET", f"/api/people?{query}")
    assert status == 200, body
    status, page = advisor.call("GET", "/people?" + urllib.parse.urlencode({"q": f"{NAME} 23/11/1938 {POSTCODE}"}),
                                html=True)
    assert status == 200, page[:300]
    # the intake of a new person: the search, then the contact recorded with what was typed
    status, found = advisor.call("POST", "/api/contacts/search", {"name": NAME, "date_of_birth": DOB,
                                                                  "nhs_number": NHS, "postcode": POSTCODE})
    assert status == 200, found
    status, contact = advisor.call("POST", "/api/contacts", {"intake_token": found["intake_token"],
                                                             "new_person": True})
    assert status == 201, contact
    # a case note, and one the database refuses
    status, note = advisor.call("POST", f"/api/cases/{edith}/notes", {"kind": "note", "text": NOTE})
    assert status == 201, note
    status, failed = advisor.call("POST", f"/api/cases/{edith}/notes", {"kind": "note", "text": REFUSED_NOTE})
    assert status == 500, failed
    # refusals: a people search by a role that may not search, a case note read by someone not on the case
    auditor = Client(base, username("auditor"))
    status, _ = auditor.call("GET", f"/api/people?{query}")
    assert status == 403
    status, _ = Client(base, username("social_worker")).call("GET", f"/api/cases/{edith}/notes")
    assert status == 403
    # a person's details in a path no route has
    status, _ = advisor.call("GET", f"/api/people/{urllib.parse.quote(NAME)}/{NHS}")
    assert status == 404
    return failed


def check_logs(logs: str, edith: int, failed: object) -> None:
    lowered = logs.lower()
    found = [v for v in NEVER if v.lower() in lowered]
    assert not found, f"personal data in the logs: {found}\n{logs}"
    assert "?" not in "".join(re.findall(r'"(?:GET|POST|PUT|DELETE) [^"]*"', logs)), logs
    # and the logs still say what happened
    for line in ['"GET /api/people" 200', '"GET /people" 200', '"POST /api/contacts/search" 200',
                 '"POST /api/contacts" 201', f'"POST /api/cases/{edith}/notes" 201',
                 f'"POST /api/cases/{edith}/notes" 500', '"GET /api/people" 403',
                 f'"GET /api/cases/{edith}/notes" 403', '"GET /api/people/{redacted}/{redacted}" 404']:
        assert line in logs, f"{line} not in\n{logs}"
    # the 500 names the request, and the log line of its error says what failed, where, without values
    assert isinstance(failed, dict) and failed["error"] == "server_error", failed
    request_id = failed["request_id"]
    assert request_id in failed["message"]
    error = next(ln for ln in logs.splitlines() if request_id in ln and "failed:" in ln)
    assert f'"POST /api/cases/{edith}/notes" failed: sqlalchemy.exc.' in error
    assert "INSERT INTO case_notes (case_id, author, at, kind, text, corrects) VALUES" in error
    assert "api/cases.py" in logs  # where it failed, by code line
    assert re.search(rf'{request_id} "POST /api/cases/{edith}/notes" 500 [0-9.]+ms', logs)


def check_refusals_recorded(eng, edith: int) -> None:
    """Refusals keep being logged with who, what and where (the case access log), with no personal data."""
    with eng.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(case_access_log)).all()]
    refused = [r for r in rows if r["outcome"] == "refused"]
    assert {(r["case_id"], r["user"], r["action"], r["page"]) for r in refused} == {
        (edith, username("social_worker"), "notes", f"/api/cases/{edith}/notes")}
    shown = repr(rows).lower()
    assert not [v for v in NEVER if v.lower() in shown]


def refuse_marked_notes(eng) -> None:
    """A database trigger that refuses a note with MARKER: the database errs with the note in the statement."""
    with eng.db.engine.begin() as conn:
        if eng.db.is_postgres:
            conn.execute(text(f"""CREATE FUNCTION test_refuse_note() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF position('{MARKER}' in NEW.text) > 0 THEN RAISE EXCEPTION 'refused by the test'; END IF;
                RETURN NEW; END $$"""))
            conn.execute(text("CREATE TRIGGER test_refuse_note BEFORE INSERT ON case_notes FOR EACH ROW "
                              "EXECUTE FUNCTION test_refuse_note()"))
        else:
            conn.execute(text(f"CREATE TRIGGER test_refuse_note BEFORE INSERT ON case_notes "
                              f"WHEN instr(NEW.text, '{MARKER}') > 0 BEGIN SELECT RAISE(ABORT, 'refused by the test'); "
                              f"END"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- in this process
class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with any traceback, as a log file would have it


LOGGERS = ["", "uvicorn", "uvicorn.access", "uvicorn.error", "carepath", "carepath.access"]


@pytest.fixture
def restore_logging():
    """uvicorn's set-up (dictConfig) changes these loggers for the whole process: put them back after."""
    kept = {n: (lg.handlers[:], lg.level, lg.propagate, lg.disabled, lg.filters[:])
            for n in LOGGERS for lg in [logging.getLogger(n)]}
    yield
    for n, (handlers, level, propagate, disabled, filters) in kept.items():
        lg = logging.getLogger(n)
        lg.handlers[:], lg.filters[:] = handlers, filters
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled


def test_logs_of_a_served_app_hold_no_personal_data(db_url, restore_logging):
    import uvicorn

    from carepath.server import uvicorn_config

    eng, app, ppl = build(db_url)
    refuse_marked_notes(eng)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port))  # configures the loggers
    capture = Capture()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(capture)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            thread.join(0.05)
        assert server.started
        out = exercise(f"http://127.0.0.1:{port}", ppl["edith"])
    finally:
        server.should_exit = True
        thread.join(30)
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(capture)
    check_logs("\n".join(capture.lines), ppl["edith"], out)
    check_refusals_recorded(eng, ppl["edith"])
    eng.db.dispose()


# ---------------------------------------------------------------------- `carepath serve`
def test_logs_of_carepath_serve_hold_no_personal_data(db_url, tmp_path):
    eng, _app, ppl = build(db_url)
    refuse_marked_notes(eng)
    eng.db.dispose()
    port = free_port()
    # the live simulation runs it makes ahead (carepath/simulate_ahead.py): one of a day, not a year's three
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CAREPATH_SIMULATION_AHEAD": "1x1"}
    env.pop("CAREPATH_DATABASE_URL", None)
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "carepath.cli", "serve", "--db", db_url, "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out_file, stderr=err_file)
        try:
            base = f"http://127.0.0.1:{port}"
            while proc.poll() is None:  # until it answers (or stops)
                try:
                    with urllib.request.urlopen(base + "/api/health", timeout=5):
                        break
                except (urllib.error.URLError, ConnectionError):
                    threading.Event().wait(0.1)
            assert proc.poll() is None, err_path.read_text()
            out = exercise(base, ppl["edith"])
        finally:
            proc.terminate()
            proc.wait(60)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    check_logs(stdout + "\n" + stderr, ppl["edith"], out)
    assert '"GET /api/people" 200' in stdout  # the access lines go where uvicorn's went
    assert "failed: sqlalchemy.exc." in stderr and "Exception in ASGI application" not in stderr
    check_refusals_recorded(eng, ppl["edith"])
    eng.db.dispose()


# ---------------------------------------------------------------------- the parts
def test_every_route_parameter_is_decided():
    """Each path parameter of every route is an id, a configured name, or written by its name: a new route's
    new parameter fails here until it is put in one of api/request_log.py's lists."""
    from api.app import create_app
    from engine.runtime import Engine

    app = create_app(Engine("sqlite://"), run_timers=False)
    params = set()
    for route in app.router.routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for ctx in contexts:
            params.update(re.findall(r"{([A-Za-z_][A-Za-z0-9_]*)", getattr(ctx, "path", "") or ""))
    assert params and params <= ID_PARAMS | NAME_PARAMS | REDACTED_PARAMS, params - (
        ID_PARAMS | NAME_PARAMS | REDACTED_PARAMS)


class _Route:
    def __init__(self, path: str) -> None:
        self.path = path


@pytest.mark.parametrize("template, params, logged", [
    ("/api/cases/{case_id}/notes", {"case_id": "12"}, "/api/cases/12/notes"),
    ("/api/cases/{case_id}/notes", {"case_id": NHS}, "/api/cases/{case_id}/notes"),  # 10 digits: not an id
    ("/api/admin/users/{username}", {"username": "amira.khan"}, "/api/admin/users/{username}"),
    ("/processes/{process_id}", {"process_id": "front_door"}, "/processes/front_door"),
    ("/static/{name}", {"name": "Perpetua Quillfeather"}, "/static/{name}"),
    # a plain word that is a person's detail: an NHS number, a date of birth, a postcode without its space
    ("/api/processes/{process_id}/versions/{version}/files", {"process_id": NHS, "version": "1"},
     "/api/processes/{process_id}/versions/1/files"),
    ("/processes/{process_id}", {"process_id": "1938-11-23"}, "/processes/{process_id}"),
    ("/processes/{process_id}", {"process_id": "23.11.1938"}, "/processes/{process_id}"),
    ("/processes/forms/{name}/preview", {"name": "ns11aa"}, "/processes/forms/{name}/preview"),
    ("/processes/forms/{name}/preview", {"name": "01632960555"}, "/processes/forms/{name}/preview"),
    ("/api/processes/drafts/{draft_id}/files/{name}", {"draft_id": "4", "name": "needs_assessment_v2.bpmn"},
     "/api/processes/drafts/4/files/needs_assessment_v2.bpmn"),
    ("/cases/{case_id}/instances/{instance_id}/hospital-{which}", {"case_id": "3", "instance_id": "4",
                                                                   "which": "admission"},
     "/cases/3/instances/4/hospital-admission"),
    ("/new/{something}", {"something": "x"}, "/new/{something}"),  # a parameter no list names
])
def test_logged_path_keeps_ids_and_hides_the_rest(template, params, logged):
    assert loggable_path({"route": _Route(template), "path_params": params, "path": "/x"}) == logged


def test_statement_shape_has_no_literals():
    sql = "SELECT * FROM people WHERE name = 'Perpetua O''Quill' AND nhs = 7382915646 AND x = :x AND t2.c = ?"
    assert statement_shape(sql) == "SELECT * FROM people WHERE name = ? AND nhs = ? AND x = :x AND t2.c = ?"


def test_a_database_error_names_no_value(db_url):
    """engine/db.py builds every engine with hide_parameters: an error's text (which anything may log)
    has the statement but not the note it was inserting."""
    from sqlalchemy.exc import DBAPIError

    from engine.runtime import Engine

    eng = Engine(db_url)
    eng.init()
    refuse_marked_notes(eng)
    with pytest.raises(DBAPIError) as caught, eng.db.transaction() as conn:
        conn.execute(text("INSERT INTO case_notes (case_id, author, at, kind, text) VALUES (:c, :a, :t, :k, :x)"),
                     {"c": 1, "a": "someone", "t": "2031-03-03T09:00:00+00:00", "k": "note", "x": REFUSED_NOTE})
    assert "INSERT INTO case_notes" in str(caught.value) and "parameters hidden" in str(caught.value)
    assert MARKER not in str(caught.value) and "Marigold" not in str(caught.value)
    eng.db.dispose()


def test_a_timer_run_that_fails_is_logged_by_type_only(caplog):
    from engine.worker import fire_once

    class Failing:
        def fire_due_timers(self):
            raise RuntimeError(f"could not move the case of {NAME}")

    with caplog.at_level(logging.INFO, logger="carepath.timers"):
        assert fire_once(Failing()) == 0
    assert "firing timers failed: RuntimeError" in caplog.text and "Quillfeather" not in caplog.text


@pytest.mark.parametrize("path, logged", [
    # a date of birth written with slashes is three short numbers: each was kept, so the whole date was logged
    ("/people/17/02/1941", "/people/{redacted}/{redacted}/{redacted}"),
    ("/api/tasks/Peter Clarke 01/02/1950", "/api/tasks/{redacted}/{redacted}/{redacted}"),
    ("/api/people/01632/960/555", "/api/people/{redacted}/{redacted}/{redacted}"),  # a telephone number in parts
    ("/api/cases/12/nothing-here", "/api/cases/12/{redacted}"),  # an id standing alone is kept
    ("/api/cases/12/notes/3/x", "/api/cases/12/notes/3/{redacted}"),
])
def test_a_path_no_route_matched_hides_numbers_beside_numbers(path, logged):
    """A path no route matched keeps route words and ids standing alone; numbers beside numbers (a date
    17/02/1941, a telephone number in parts) are hidden, in carepath's line and uvicorn's alike."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from engine.runtime import Engine

    app = create_app(Engine("sqlite://"), run_timers=False)
    TestClient(app).get("/api/health")  # the route words known
    assert loggable_path({"route": None, "path_params": {}, "path": path, "app": app}) == logged
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", path + "?q=x", "1.1", 404), None)
    for f in logging.getLogger("uvicorn.access").filters:
        f.filter(record)
    assert record.getMessage() == f'127.0.0.1:5000 - "GET {logged} HTTP/1.1" 404'


def test_uvicorn_access_line_if_turned_on_has_no_query():
    """Under another server set-up with uvicorn's access log on, its line loses the query string and any
    segment that is not a route word or a short number (the filter api/request_log.py puts on it)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from engine.runtime import Engine

    TestClient(create_app(Engine("sqlite://"), run_timers=False)).get("/api/health")  # the route words known
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/api/people/{NAME}?name={NAME}&nhs_number={NHS}",
                                "1.1", 200), None)
    for f in logging.getLogger("uvicorn.access").filters:
        f.filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /api/people/{redacted} HTTP/1.1" 200'
