"""Auditors read everything they are allowed to and change nothing (issue 9).

Every route of the application that takes a state-changing method (POST, PUT, PATCH, DELETE) is
found by walking `app.routes` — a route added later is tried too — and called as a signed-in
auditor with a valid CSRF token and plausible ids (a real case with an open task, a real draft, a
real user). Each must answer 403, and nothing stored may change: every row of every table is
compared before and after, except the case access log (refusals are logged there) and the
sign-in sessions.

The exceptions are listed below with the reason each is open to auditors; they too may change
nothing but the tables named with them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.drafts import create_draft
from engine.schema import documents, metadata, tasks
from tests.front_door_world import PASSWORD, ROOT, build

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
NOT_COMPARED = {"case_access_log", "sessions"}  # appended to by every refusal / by signing in

# (method, path) -> (why auditors may call it, tables it may add to; None: not called here at all)
OPEN_TO_AUDITORS: dict[tuple[str, str], tuple[str, set[str] | None]] = {
    ("POST", "/api/session"): ("signing in (tested in test_api_auth.py)", None),
    ("DELETE", "/api/session"): ("signing out ends the session this test uses", None),
    ("POST", "/sign-in"): ("signing in (tested in test_pages_inbox.py)", None),
    ("POST", "/sign-out"): ("signing out ends the session this test uses", None),
    ("POST", "/api/session/code"): ("the second step of signing in (tests/test_sign_in_controls.py)", None),
    ("POST", "/sign-in/code"): ("the second step of signing in (tests/test_sign_in_controls.py)", None),
    ("POST", "/api/me/mfa"): ("setting up two-step verification on one's own account: only their own row of users",
                              {"users"}),
    ("POST", "/api/me/mfa/confirm"): ("switching on one's own two-step verification (with a right code)", {"users"}),
    ("POST", "/account/mfa"): ("the page that sets up one's own two-step verification", {"users"}),
    ("PUT", "/api/session/password"): ("changing one's own password (tests/test_own_password.py): only their own row "
                                       "of users, an audit event in the system chain, the back-off counts",
                                       {"users", "events", "chains", "sign_in_throttle"}),
    ("POST", "/account/password"): ("the page that changes one's own password", {"users", "events", "chains",
                                                                               "sign_in_throttle"}),
    ("POST", "/cases/{case_id}/integrity/check"): (
        "integrity 'Check now' only records that a check was made (an integrity.checked event in the "
        "system chain, whose head moves): docs/security.md", {"events", "chains"}),
    ("POST", "/cases/{case_id}/evidence"): (
        "an evidence export only reads the case and logs the export in the case access log; the integrity "
        "check in the pack is recorded in the system chain", {"events", "chains"}),
    ("POST", "/api/processes/drafts/{draft_id}/trial/replay"): (
        "a draft's trial runs on a throwaway in-memory database (api/trial.py)", set()),
    ("POST", "/api/processes/drafts/{draft_id}/trial/example"): (
        "a draft's trial runs on a throwaway in-memory database (api/trial.py)", set()),
    ("POST", "/processes/drafts/{draft_id}/trial"): (
        "a draft's trial runs on a throwaway in-memory database (api/trial.py)", set()),
    ("POST", "/api/processes/{process_id}/migrations/dry-run"): (
        "a migration dry run only reports which cases could move (api/migrations.py)", set()),
    ("POST", "/processes/{process_id}/migrate/check"): (
        "a migration dry run only reports which cases could move (api/migrations.py)", set()),
}
# well-formed bodies, so that the answer is about who is asking, not about a missing field
JSON_BODIES: dict[str, dict] = {
    "/api/cases/{case_id}/notes": {"kind": "note", "text": "A plausible note"},
    "/api/cases/{case_id}/details": {"changes": {"postcode": "NB4 2QT"}, "expected": {"postcode": "NB4 2QS"}},
    "/api/cases/{case_id}/coordinating-worker": {"username": "social-worker"},
    "/api/processes/{process_id}/migrations/dry-run": {"from_version": 1, "to_version": 1},
    "/api/processes/{process_id}/migrations": {"from_version": 1, "to_version": 1, "case_ids": [1]},
    "/api/cases/{case_id}/actions/{action}": {"data": {"concern": "A plausible concern", "raised_by": "A neighbour",
                                                       "urgent": "no"}},
    "/api/cases/{case_id}/close": {"reason": "declined"},
    "/api/cases/{case_id}/subject-access": {"reason": "SAR 2026/123"},
    # a wrong current password (422, counted as a failed sign-in): the next call still signs in with PASSWORD
    "/api/session/password": {"current_password": "not the auditor's password", "new_password": "lantern orbit kettle"},
}
FORM = {"reason": "An investigation", "username": "social-worker", "kind": "note", "text": "A plausible note",
        "expected": "null"}


def all_routes(app):
    """Every route, the included routers' ones flattened (FastAPI 0.165 nests them)."""
    def walk(routes):
        for r in routes:
            if hasattr(r, "effective_route_contexts"):
                yield from r.effective_route_contexts()
            elif hasattr(r, "routes") and not hasattr(r, "methods"):
                yield from walk(r.routes)
            else:
                yield r
    return list(walk(app.routes))


def state_changing(app) -> list[tuple[str, str]]:
    out = set()
    for r in all_routes(app):
        for m in set(getattr(r, "methods", None) or ()) & UNSAFE:
            out.add((m, r.path))
    return sorted(out)


def snapshot(eng) -> dict[str, list[tuple]]:
    """Every row of every table (but the access log and sessions), in a stable order."""
    out = {}
    with eng.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in NOT_COMPARED:
                continue
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted((tuple(map(repr, row)) for row in rows))
    return out


@pytest.fixture
def world(db_url):
    eng, app, p = build(db_url)
    with eng.db.engine.connect() as conn:
        task_id = conn.execute(select(tasks.c.id).where(tasks.c.case_id == p["edith"])).scalars().first()
        instance_id = conn.execute(select(tasks.c.instance_id).where(tasks.c.case_id == p["edith"])).scalars().first()
        doc_id = conn.execute(select(documents.c.id).order_by(documents.c.id)).scalars().first()
    # a real role change waiting for a second administrator (api/admin.py), for /admin/role-requests/{request_id}
    from api.admin import change
    from engine.schema import role_requests
    from tests.test_api_admin import tm_user

    change(eng, tm_user(eng, "administrator"), "administrator", roles=["administrator", "auditor"])
    with eng.db.engine.connect() as conn:
        request_id = conn.execute(select(role_requests.c.id)).scalar_one()
    # a real break-glass use waiting for review (api/break_glass.py), for /admin/break-glass/{grant_id}
    from datetime import timedelta

    from api.access import restrict_case
    from api.break_glass import use

    restrict_case(eng, p["zoe"], ["team-manager"])
    grant_id = use(eng, tm_user(eng, "social-worker"), p["zoe"], "A plausible emergency", timedelta(hours=4))["id"]
    bpmn = (ROOT / "processes" / "front_door.bpmn").read_text()
    draft = create_draft(eng, process_id="front_door", files={"front_door.bpmn": bpmn}, base_version=None,
                         actor="process-owner", note="A plausible draft")
    ids = {"case_id": str(p["edith"]), "task_id": task_id, "draft_id": str(draft["id"]),
           "process_id": "front_door", "username": "social-worker", "name": "person",
           "instance_id": str(instance_id), "which": "admission", "action": "safeguarding",
           "section_id": "about", "doc_id": str(doc_id or 1), "request_id": str(request_id),
           "grant_id": str(grant_id)}
    yield eng, app, ids
    eng.db.dispose()


def fill(path: str, ids: dict[str, str]) -> str:
    for key, value in ids.items():
        path = path.replace("{" + key + "}", value)
    assert "{" not in path, f"no plausible value for a parameter of {path}: add one to `ids`"
    return path


def call_as_auditor(app, method: str, route: str, ids: dict[str, str]):
    path = fill(route, ids)
    client = TestClient(app)
    r = client.post("/api/session", json={"username": "auditor", "password": PASSWORD})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    if path.startswith("/api/"):
        return client.request(method, path, json=JSON_BODIES.get(route, {}), headers={"X-CSRF-Token": csrf})
    # the pages' forms send the token as a field; an upload is a multipart form with a file
    if route.endswith("/upload"):
        bpmn = (ROOT / "processes" / "front_door.bpmn").read_bytes()
        return client.request(method, path, data={"csrf_token": csrf, "note": "A plausible upload"},
                              files={"file": ("front_door.bpmn", bpmn, "application/xml")},
                              headers={"Accept": "text/html"})
    return client.request(method, path, data={**FORM, "csrf_token": csrf}, headers={"Accept": "text/html"})


def test_the_routes_are_found_and_the_exceptions_still_exist(world):
    _eng, app, _ids = world
    routes = state_changing(app)
    assert len(routes) > 30 and ("POST", "/api/tasks/{task_id}/complete") in routes
    missing = [r for r in OPEN_TO_AUDITORS if r not in routes]
    assert missing == [], f"exceptions for routes that no longer exist: {missing}"


def test_an_auditor_is_refused_every_state_changing_route_and_nothing_changes(world):
    eng, app, ids = world
    before = snapshot(eng)
    wrong = []
    for method, path in state_changing(app):
        if (method, path) in OPEN_TO_AUDITORS:
            continue
        r = call_as_auditor(app, method, path, ids)
        if r.status_code != 403:
            wrong.append(f"{method} {path}: {r.status_code} {r.text[:120]}")
    assert wrong == [], "\n".join(wrong)
    after = snapshot(eng)
    assert [t for t in before if before[t] != after[t]] == []


def test_the_routes_open_to_auditors_change_only_what_they_say(world):
    eng, app, ids = world
    for (method, path), (_why, may_add) in OPEN_TO_AUDITORS.items():
        if may_add is None:
            continue
        before = snapshot(eng)
        r = call_as_auditor(app, method, path, ids)
        assert r.status_code < 500, (path, r.status_code, r.text[:200])
        after = snapshot(eng)
        changed = {t for t in before if before[t] != after[t]}
        assert changed <= may_add, (path, changed)
        if "events" in changed:  # history is only ever added to
            assert set(before["events"]) < set(after["events"]), path
        if "chains" in changed:  # only the system chain's head moved
            assert [r for r in before["chains"] if "'system'" not in r] == [
                r for r in after["chains"] if "'system'" not in r], path
