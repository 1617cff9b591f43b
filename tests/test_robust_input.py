"""Crafted input is refused with a 4xx, never a server error (issue 15 item 5; api/inputs.py, docs/security.md
"Input"): ids out of range, control characters in text, non-standard JSON numbers, oversized bodies — and
schemathesis against the OpenAPI description, signed in, with zero server errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import typing
from typing import Annotated, Any, get_args, get_origin

import pytest
from annotated_types import Ge, Gt, Le, Lt
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.app import create_app
from api.auth import COOKIE
from api.demo_users import create_demo_users, demo_password, demo_username
from api.inputs import JSON_LIMIT, MAX_ID, SIGN_IN_LIMIT, Id, leaf_routes
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import DIAGRAMS, START, Calls

BAD_IDS = (2**63, 2**64, -1, 0)


def _make(url: str) -> tuple[Engine, FastAPI, int]:
    eng = Engine(url, registry=Calls().registry(), forms=FormLibrary.from_folder(DIAGRAMS / "forms"))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "three_tasks.bpmn", DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_demo_users(eng)
    case_id = eng.start("three_tasks", title="Input case").case_id
    return eng, app, case_id


class Session:
    """A signed-in client that sends its CSRF token (header for JSON, field for forms)."""

    def __init__(self, app: FastAPI, role: str) -> None:
        self.client = TestClient(app)
        r = self.client.post("/api/session", json={"username": demo_username(role), "password": demo_password(role)})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        self.cookie = self.client.cookies[COOKIE]

    def request(self, method: str, url: str, **kw: Any):
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kw)


@pytest.fixture(scope="module")
def shared(module_db_url):
    """One app a module and database (deploying, the demo users and the app take most of a test's time)."""
    eng, app, _case_id = _make(module_db_url)
    yield eng, app
    eng.db.dispose()


@pytest.fixture
def world(shared):
    """The shared app and a case of this test's own: what a test stores (a note, a draft) no other test sees."""
    eng, app = shared
    return eng, app, eng.start("three_tasks", title="Input case").case_id


def _notes(eng: Engine, case_id: int) -> list:
    from api import case_record as cr

    return cr.load(eng, case_id, with_history=False).notes


# ---------------------------------------------------------------------- every integer a route takes is bounded
def _unbounded(tp: Any, metadata: tuple = (), seen: set | None = None) -> bool:
    """Whether `tp` (with the constraints in `metadata`) lets through an integer outside 0..2^63 − 1."""
    seen = set() if seen is None else seen
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return _unbounded(base, tuple(metadata) + tuple(meta), seen)
    if tp is int:
        low = [m.ge for m in metadata if isinstance(m, Ge)] + [m.gt + 1 for m in metadata if isinstance(m, Gt)]
        high = [m.le for m in metadata if isinstance(m, Le)] + [m.lt - 1 for m in metadata if isinstance(m, Lt)]
        return not (low and high and min(low) >= 0 and max(high) <= MAX_ID)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp in seen:
            return False
        seen.add(tp)
        return any(_unbounded(f.annotation, tuple(f.metadata), seen) for f in tp.model_fields.values())
    union = get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None))
    return any(_unbounded(a, metadata if union else (), seen) for a in get_args(tp))


def unchecked_ints(app: FastAPI) -> list[str]:
    """Every route parameter (path, query, body, at any depth) that takes an unbounded integer."""

    def params(dep: Any) -> list[tuple[str, Any]]:
        out = [(k, p) for k, ps in (("path", dep.path_params), ("query", dep.query_params),
                                   ("body", dep.body_params)) for p in ps]
        for sub in dep.dependencies:
            out += params(sub)
        return out

    found = []
    for route, path in leaf_routes(app):
        for kind, p in params(route.dependant) if hasattr(route, "dependant") else ():
            if _unbounded(p.field_info.annotation, tuple(p.field_info.metadata)):
                found.append(f"{sorted(route.methods)} {path}: {kind} {p.name}")
    return found


def test_no_route_takes_an_unbounded_integer(tmp_path):
    _eng, app, _case = _make(f"sqlite:///{tmp_path / 'ids.db'}")
    assert unchecked_ints(app) == []


class _Ids(BaseModel):
    case_ids: list[int]
    fine: Id | None = None


def test_the_route_check_finds_a_bare_int_in_a_path_a_query_and_a_body():
    app = FastAPI()

    @app.get("/x/{case_id}")
    def bare(case_id: int, page: int = 1) -> None: ...

    @app.post("/y/{case_id}")
    def checked(case_id: Id, body: _Ids) -> None: ...

    assert unchecked_ints(app) == ["['GET'] /x/{case_id}: path case_id", "['GET'] /x/{case_id}: query page",
                                   "['POST'] /y/{case_id}: body body"]


# ---------------------------------------------------------------------- ids out of range: 404 on every route
def _id_routes(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    out = []
    for route, path in leaf_routes(app):
        if not hasattr(route, "dependant"):
            continue
        ints = [p.name for p in route.dependant.path_params if p.field_info.annotation is int]
        for method in sorted(route.methods):
            if ints:
                out.append((method, path, ints))
    return out


ID_ROLES = ("team_manager", "process_owner", "administrator", "social_worker", "auditor")


def test_every_id_in_a_path_out_of_range_is_a_404(world):
    """As each role: a 404, or the route's role refusal (403, before any id is read) — never anything else,
    and a 404 for at least one role that may use the route."""
    _eng, app, _case = world
    sessions = {role: Session(app, role) for role in ID_ROLES}
    routes = _id_routes(app)
    assert len(routes) > 60  # generated from the route table: a new route is in it
    failures = []
    for method, path, ints in routes:
        for bad in BAD_IDS:
            url = re.sub(r"\{(\w+)\}", lambda m, bad=bad, ints=ints: str(bad) if m.group(1) in ints else
                         {"which": "admission"}.get(m.group(1), "x"), path)
            seen = {}
            for role, user in sessions.items():
                r = user.request(method, url, json={} if method in ("POST", "PUT", "PATCH", "DELETE") else None)
                seen[role] = (r.status_code, r.json().get("error"))
            if set(seen.values()) - {(404, "not_found"), (403, "forbidden")} or (404, "not_found") not in \
                    seen.values():
                failures.append((method, url, seen))
    assert failures == []
    page = sessions["team_manager"].request("GET", f"/cases/{2**63}", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "Page not found" in page.text  # a page: the GOV.UK 404 page


def test_ids_out_of_range_in_a_body_or_a_query_are_422(world):
    eng, app, case_id = world
    manager = Session(app, "team_manager")
    for bad in (2**63, -1):
        r = manager.request("POST", f"/api/cases/{case_id}/notes",
                            json={"kind": "correction", "text": "Wrong date", "corrects": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "corrects", r.text
        r = manager.request("POST", "/api/contacts", json={"intake_token": "t", "case_id": bad})
        assert r.status_code == 422, r.text
        r = manager.request("GET", f"/api/cases/{case_id}/chronology?page={bad}")
        assert r.status_code == 422, r.text
    assert _notes(eng, case_id) == []
    form = manager.request("POST", f"/cases/{case_id}/notes", headers={"Accept": "text/html"},
                           data={"csrf_token": manager.csrf, "kind": "correction", "text": "x", "corrects": str(2**64)})
    assert form.status_code == 400 and "Select the note this corrects" in form.text
    assert _notes(eng, case_id) == []


# ---------------------------------------------------------------------- control characters
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f\x00", "\ud800", "\x7f", "\x85", "\x9b"])  # DEL, C1 NEL, CSI
def test_a_note_with_a_control_character_is_422_and_nothing_is_stored(world, char):
    eng, app, case_id = world
    manager = Session(app, "team_manager")
    r = manager.request("POST", f"/api/cases/{case_id}/notes", headers={"Content-Type": "application/json"},
                        content=json.dumps({"kind": "note", "text": f"Visited{char}today"}))  # escaped: \\u0000
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "text", "message": r.json()["errors"][0]["message"]}]
    assert "Text must not contain control characters" in r.json()["errors"][0]["message"]
    assert _notes(eng, case_id) == []
    ok = manager.request("POST", f"/api/cases/{case_id}/notes", json={"kind": "note", "text": "Line one\r\n\tTwo"})
    assert ok.status_code == 201, ok.text  # tab, CR and LF are text
    assert [n["text"] for n in _notes(eng, case_id)] == ["Line one\r\n\tTwo"]


def test_a_search_or_an_intake_field_with_nul_is_422(world):
    _eng, app, _case = world
    manager = Session(app, "team_manager")
    r = manager.request("GET", "/api/people", params={"q": "Ann\x00Smith"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "q", r.text
    r = manager.request("GET", "/api/people", params={"postcode": "NS1\r\n1AA"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "postcode", r.text
    r = manager.request("POST", "/api/contacts/search", json={"name": "Ann\u0000 Smith", "postcode": "NS1 1AA"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name", r.text
    r = manager.request("POST", "/api/contacts/search", json={"name": "Ann Smith", "postcode": "NS1 1AA"})
    assert r.status_code == 200, r.text
    assert manager.request("GET", "/api/tasks/a%00b").status_code == 404  # a path: nothing is there


def test_a_page_form_with_nul_gets_an_error_summary_not_json(world):
    eng, app, case_id = world
    manager = Session(app, "team_manager")
    html = {"Accept": "text/html"}
    r = manager.request("POST", f"/cases/{case_id}/notes", headers=html,
                        data={"csrf_token": manager.csrf, "kind": "note", "text": "Visited\x00today"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert 'class="govuk-error-summary"' in r.text and "Note contains a character that cannot be kept" in r.text
    assert _notes(eng, case_id) == []
    r = manager.request("GET", "/people", headers=html, params={"q": "Ann\x00"})
    assert r.status_code == 422 and 'class="govuk-error-summary"' in r.text
    assert "Name, date of birth, NHS number or postcode contains a character" in r.text  # its label, not "q"
    r = manager.request("GET", f"/cases/{case_id}", headers=html, params={"page": str(2**63)})
    assert r.status_code == 422 and 'class="govuk-error-summary"' in r.text


# ---------------------------------------------------------------------- strict JSON
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_refused_and_not_stored(world, number):
    eng, app, case_id = world
    task = next(t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == "record_contact")
    eng.claim(task["id"], demo_username("front_door_advisor"))
    advisor = Session(app, "front_door_advisor")
    body = '{"data": {"name": "Ann", "hours": %s}}' % number
    r = advisor.request("PUT", f"/api/tasks/{task['id']}/draft", content=body,
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert eng.get_task(task["id"]).get("draft") is None
    ok = advisor.request("PUT", f"/api/tasks/{task['id']}/draft", content=body.replace(number, "7.5"),
                         headers={"Content-Type": "application/json"})
    assert ok.status_code == 200 and eng.get_task(task["id"])["draft"] == {"name": "Ann", "hours": 7.5}


def test_json_that_python_alone_would_misread_is_422_not_400_or_500(world):
    _eng, app, case_id = world
    manager = Session(app, "team_manager")
    for body in (b'{"kind": "note", "text": "a"', b"\xff\xfe{}", b"[" * 100_000, b'{"kind": 1' + b"0" * 5000 + b"}"):
        r = manager.request("POST", f"/api/cases/{case_id}/notes", content=body,
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (body[:20], r.status_code, r.text[:200])


# ---------------------------------------------------------------------- body size, enforced while reading
def _asgi_post(app: FastAPI, path: str, total: int, *, content_length: bool, chunk: int = 64 * 1024,
               content_type: bytes = b"application/json") -> tuple[int, int]:
    """POST `total` bytes to `path` straight through ASGI from a generator; (status, bytes the app consumed)."""
    consumed = 0
    status = 0

    async def run() -> None:
        nonlocal consumed, status
        sent = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent, consumed
            if sent >= total:
                return {"type": "http.disconnect"}
            n = min(chunk, total - sent)
            sent += n
            consumed = sent
            return {"type": "http.request", "body": b"x" * n, "more_body": sent < total}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        headers = [(b"content-type", content_type), (b"host", b"testserver")]
        headers += [(b"content-length", str(total).encode())] if content_length else \
            [(b"transfer-encoding", b"chunked")]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
        await app(scope, receive, send)

    # in a thread of its own: a browser test in this worker may have left an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()
    return status, consumed


def test_a_20_mb_sign_in_gets_413_before_it_is_read(tmp_path):
    eng, app, _case = _make(f"sqlite:///{tmp_path / 'size.db'}")
    twenty_mb = 20 * 1024 * 1024
    for path, kind in (("/api/session", b"application/json"), ("/sign-in", b"application/x-www-form-urlencoded")):
        status, consumed = _asgi_post(app, path, twenty_mb, content_length=False, content_type=kind)
        assert status == 413 and consumed <= SIGN_IN_LIMIT + 64 * 1024, (path, consumed)  # counted, then stopped
        status, consumed = _asgi_post(app, path, twenty_mb, content_length=True, content_type=kind)
        assert status == 413 and consumed == 0, (path, consumed)  # Content-Length checked first: nothing read
    # the JSON API's limit is larger, a diagram's larger still; under them the route answers (401: signed out)
    status, consumed = _asgi_post(app, "/api/cases/1/notes", JSON_LIMIT + 1, content_length=False)
    assert status == 413 and consumed <= JSON_LIMIT + 64 * 1024
    status, consumed = _asgi_post(app, "/api/cases/1/notes", 100 * 1024, content_length=True)
    assert status == 422 and consumed == 100 * 1024  # read in full, then refused as not JSON
    status, _ = _asgi_post(app, "/api/modeller/validate", 2 * JSON_LIMIT, content_length=True)
    assert status == 422  # a diagram route takes 2 MB (not JSON: refused after reading)
    eng.db.dispose()


# ---------------------------------------------------------------------- schemathesis, signed in
def _documented(op: Any) -> set[str]:
    return {str(code) for code in op.definition.raw.get("responses", {})}


def _fuzz(op: Any, user: Session, failures: list) -> None:
    """A few generated requests to `op` (the same ones every run), each answer's status noted if it is a server
    error or not one the description documents."""
    from hypothesis import HealthCheck, Phase, given, settings

    documented = _documented(op)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        r = case.call(headers={"X-CSRF-Token": user.csrf}, cookies={COOKIE: user.cookie})
        if r.status_code >= 500 or str(r.status_code) not in documented:
            failures.append((op.method.upper(), case.formatted_path, r.status_code, r.text[:200]))

    run()


EXAMPLES = 6  # per operation and role: about 70 operations, so the two runs take about a minute


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["team_manager", "social_worker"])
def test_schemathesis_finds_no_server_error_and_only_documented_statuses(tmp_path, role):
    import schemathesis  # the dev extras (pyproject.toml)

    eng, app, _case = _make(f"sqlite:///{tmp_path / 'schemathesis.db'}")
    user = Session(app, role)
    # the description is not published by default (docs/security.md "API description"): taken from the app
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app  # requests go to the app in-process, as `from_asgi` would send them
    failures: list[tuple[str, str, int, str]] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/session":
            continue  # signing in and out: not what this run is about (tests/test_api_auth.py)
        operations += 1
        _fuzz(op, user, failures)
    assert operations > 50
    assert failures == []
    assert user.request("GET", "/api/me").status_code == 200  # still signed in: the run was signed in throughout
    eng.db.dispose()


def test_every_api_route_documents_its_refusals(tmp_path):
    _eng, app, _case = _make(f"sqlite:///{tmp_path / 'doc.db'}")
    spec = app.openapi()  # what /api/openapi.json serves when a council turns it on (signed in only)
    missing = [(m, p) for p, ops in spec["paths"].items() for m, op in ops.items() if p != "/api/health"
               and not {"401", "403", "404", "409", "422"} <= set(op["responses"])]
    assert missing == []
    assert json.dumps(spec)  # the description itself is valid JSON (no NaN)


# ---------------------------------------------------------------------- notes: invisible text, double submission
@pytest.mark.parametrize(("text", "said"), [
    ("\u200b\u200b\u200b", "Enter the note"),  # zero-width spaces: stored, it showed as an empty note
    (" \u2060\u00ad\n", "Enter the note"),
    ("Normal \u202egnp.exe text", "must not contain characters that change the direction"),  # shown reversed
    ("Visited \u2067family\u2069 today", "must not contain characters that change the direction"),
])
def test_a_note_that_shows_nothing_or_reads_otherwise_than_typed_is_refused(world, text, said):
    eng, app, case_id = world
    manager = Session(app, "team_manager")
    r = manager.request("POST", f"/api/cases/{case_id}/notes", json={"kind": "note", "text": text})
    [error] = r.json()["errors"]
    assert r.status_code == 422 and error["field"] == "text" and said in error["message"]
    form = manager.request("POST", f"/cases/{case_id}/notes", headers={"Accept": "text/html"},
                           data={"csrf_token": manager.csrf, "kind": "note", "text": text, "action_token": "t"})
    assert form.status_code == 400 and said in form.text and 'class="govuk-error-summary"' in form.text
    assert _notes(eng, case_id) == []
    # a joiner inside an emoji, or a right-to-left name as typed, is text
    typed = "Met \U0001f469\u200d\U0001f467 and \u05d3\u05e0\u05d4"
    ok = manager.request("POST", f"/api/cases/{case_id}/notes", json={"kind": "note", "text": typed})
    assert ok.status_code == 201, ok.text


def test_a_note_form_sent_twice_adds_one_note(world):
    # a double click, or the form sent again from the browser's history: notes can never be deleted
    eng, app, case_id = world
    manager = Session(app, "team_manager")
    html = {"Accept": "text/html"}
    page = manager.request("GET", f"/cases/{case_id}/notes/new", headers=html).text
    token = re.search(r'name="action_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": manager.csrf, "kind": "note", "text": "Phoned the daughter", "action_token": token}
    first = manager.request("POST", f"/cases/{case_id}/notes", headers=html, data=form, follow_redirects=False)
    second = manager.request("POST", f"/cases/{case_id}/notes", headers=html, data=form, follow_redirects=False)
    assert first.headers["location"] == f"/cases/{case_id}?saved=note#notes"
    assert second.headers["location"] == f"/cases/{case_id}?saved=already"
    assert [n["text"] for n in _notes(eng, case_id)] == ["Phoned the daughter"]
    # a refused form is shown again with a new token, which still adds the note once
    bad = manager.request("POST", f"/cases/{case_id}/notes", headers=html,
                          data={**form, "text": " ", "action_token": token})
    fresh = re.search(r'name="action_token" value="([^"]+)"', bad.text).group(1)
    assert bad.status_code == 400 and fresh != token
    again = manager.request("POST", f"/cases/{case_id}/notes", headers=html, follow_redirects=False,
                            data={**form, "text": "Visited", "action_token": fresh})
    assert again.headers["location"] == f"/cases/{case_id}?saved=note#notes"
    # a form without its token (not from the note page) is not acted on
    none = manager.request("POST", f"/cases/{case_id}/notes", headers=html,
                           data={"csrf_token": manager.csrf, "kind": "note", "text": "Elsewhere"})
    assert none.status_code == 400 and "The form was damaged" in none.text
    assert [n["text"] for n in _notes(eng, case_id)] == ["Phoned the daughter", "Visited"]
