"""User administration and case restriction through the JSON API (api/admin.py): the role matrix,
validation, unknown ids, the administrator's self-lock-out refusals, sessions ending, and the audit."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.access import can_open_case
from api.auth import RESERVED_USERNAMES, ROLES, AuthStore, create_user, users
from api.errors import ApiError
from engine.history import SYSTEM_CHAIN
from engine.schema import events
from tests.front_door_world import PASSWORD, Api, as_role, build


@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    yield eng, app, people
    eng.db.dispose()


def _audit(eng) -> list[dict]:
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.chain == SYSTEM_CHAIN, events.c.type.like("user.%"))
                            .order_by(events.c.seq)).all()
    return [{"type": r.type, "actor": r.actor, "data": json.loads(r.data)} for r in rows]


NEW = {"username": "j.smith", "display_name": "Jo Smith", "password": "a long password", "roles": ["social_worker"],
       "teams": ["social_work", "safeguarding"]}


def test_only_administrators_manage_users(world):
    _eng, app, _p = world
    calls = [("GET", "/api/admin/users", None), ("POST", "/api/admin/users", NEW),
             ("GET", "/api/admin/users/social-worker", None),
             ("PATCH", "/api/admin/users/social-worker", {"display_name": "X"}),
             ("POST", "/api/admin/users/social-worker/unlock", None),
             ("PUT", "/api/admin/users/social-worker/password", {"password": "another password"})]
    for role in ROLES:
        if role == "administrator":
            continue
        s = as_role(app, role)
        for method, url, body in calls:
            assert s.send(method, url, body).status_code == 403, (role, method, url)
    anon = TestClient(app)
    for method, url, body in calls:
        assert anon.request(method, url, json=body).status_code == 401, (method, url)
    admin = as_role(app, "administrator")
    for method, url, body in calls:  # 202: waits for a second administrator (tests/test_privileged_access.py)
        assert admin.send(method, url, body).status_code in (200, 201, 202), (method, url)
    # CSRF still applies to administrators
    assert admin.client.patch("/api/admin/users/social-worker", json={"display_name": "Y"}).status_code == 403


def test_list_shows_roles_teams_active_and_locked(world):
    eng, app, _p = world
    store = AuthStore(eng)
    for _ in range(5):
        with pytest.raises(ApiError):
            store.sign_in("finance-officer", "wrong password")
    r = as_role(app, "administrator").get("/api/admin/users")
    assert r.status_code == 200
    rows = {u["username"]: u for u in r.json()["users"]}
    assert set(rows) == {role.replace("_", "-") for role in ROLES}
    assert rows["front-door-advisor"]["roles"] == ["front_door_advisor"]
    assert rows["front-door-advisor"]["teams"] == ["front_door"]
    assert rows["finance-officer"]["locked"] is True and rows["social-worker"]["locked"] is False
    assert all(u["active"] for u in rows.values())
    assert "password_hash" not in r.text and "argon2" not in r.text
    assert r.json()["roles"] == list(ROLES)


def test_create_a_user_who_can_then_sign_in(world):
    eng, app, _p = world
    admin = as_role(app, "administrator")
    # a role that opens no case record: the account can be used at once
    r = admin.post("/api/admin/users", {**NEW, "username": "P.Owner", "roles": ["process_owner"], "teams": []})
    assert r.status_code == 201 and r.json()["pending_request"] is None, r.text
    # the administrator chose its password: its owner holds no role until they have chosen their own
    owner = Api(app, "p.owner", "a long password")
    assert owner.get("/api/me").json()["user"] == {"username": "p.owner", "display_name": "Jo Smith", "roles": [],
                                                   "teams": [], "password_change_due": True}
    assert owner.send("PUT", "/api/session/password", {"current_password": "a long password",
                                                       "new_password": "p.owner's lantern orbit"}).status_code == 200
    assert owner.get("/api/me").json()["user"]["roles"] == ["process_owner"]
    # a casework role: kept deactivated, with no role, until a second administrator approves it
    r = admin.post("/api/admin/users", {**NEW, "username": "J.Smith"})
    assert r.status_code == 202, r.text
    assert (r.json()["username"], r.json()["roles"], r.json()["teams"]) == ("j.smith", [], [])
    assert r.json()["active"] is False
    rid = r.json()["pending_request"]["id"]
    assert r.json()["pending_request"]["adds"] == ["social_worker"]
    assert TestClient(app).post("/api/session", json={"username": "j.smith", "password": "a long password"}
                                ).status_code == 401
    create_user(eng, "admin2", PASSWORD, display_name="Second Admin", roles=["administrator"])  # by the operator
    r = Api(app, "admin2").post(f"/api/admin/role-requests/{rid}/approve", {"reason": "New starter"})
    assert r.status_code == 200 and r.json()["kind"] == "account", r.text
    smith = Api(app, "j.smith", "a long password")
    assert smith.get("/api/me").json()["user"]["password_change_due"] is True
    assert smith.send("PUT", "/api/session/password", {"current_password": "a long password",
                                                       "new_password": "j.smith's lantern orbit"}).status_code == 200
    me = smith.get("/api/me").json()["user"]
    assert (me["roles"], me["teams"]) == (["social_worker"], ["safeguarding", "social_work"])
    trail = [(a["type"], a["actor"], a["data"]) for a in _audit(eng) if a["data"]["username"] == "j.smith"]
    assert [t[:2] for t in trail] == [("user.created", "administrator"), ("user.account_requested", "administrator"),
                                      ("user.account_approved", "admin2"), ("user.changed", "admin2"),
                                      ("user.password_changed", "j.smith")]
    assert trail[0][2] == {"username": "j.smith", "display_name": "Jo Smith", "roles": [], "teams": [],
                           "active": False}
    assert trail[3][2]["changes"] == {"roles": {"from": [], "to": ["social_worker"]},
                                      "teams": {"from": [], "to": ["safeguarding", "social_work"]},
                                      "active": {"from": False, "to": True}}
    assert "a long password" not in json.dumps(_audit(eng)) and "argon2" not in json.dumps(_audit(eng))
    again = admin.post("/api/admin/users", NEW)
    assert again.status_code == 422 and again.json()["errors"] == [
        {"field": "username", "message": "There is already a user called j.smith"}]


@pytest.mark.parametrize("changes,fields", [
    ({"username": "x"}, ["username"]),
    ({"username": "has space"}, ["username"]),
    ({"display_name": "   "}, ["display_name"]),
    ({"password": "short"}, ["password"]),
    ({"password": "j.smith"}, ["password"]),
    ({"roles": []}, ["roles"]),
    ({"roles": ["wizard"], "teams": ["narnia"]}, ["roles", "teams"]),
    # the history's names for what no person did: the account's actions would read as the system's
    ({"username": "System", "roles": ["process_owner"], "teams": []}, ["username"]),
    ({"username": "cli", "roles": ["process_owner"], "teams": []}, ["username"]),
    ({"username": "oidc", "roles": ["process_owner"], "teams": []}, ["username"]),
    # the name every page, history and export shows for who acted: nothing hidden or reordered, something to read
    ({"display_name": "Ann \u202eenoj", "roles": ["process_owner"], "teams": []}, ["display_name"]),
    ({"display_name": "\u200b\u200b\u200b", "roles": ["process_owner"], "teams": []}, ["display_name"]),
    ({"display_name": "...", "roles": ["process_owner"], "teams": []}, ["display_name"]),
])
def test_create_user_validation(world, changes, fields):
    eng, app, _p = world
    r = as_role(app, "administrator").post("/api/admin/users", {**NEW, **changes})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == fields
    assert _audit(eng) == []
    if changes.get("username", "").lower() in RESERVED_USERNAMES:
        assert "kept for what carepath records as done by no person" in r.json()["errors"][0]["message"]
        with pytest.raises(ValueError, match="kept for what carepath records as done by no person"):
            create_user(eng, changes["username"].lower(), PASSWORD, roles=["process_owner"])  # the operator's way
        with eng.db.engine.connect() as conn:
            assert conn.execute(select(users.c.id).where(users.c.username == changes["username"].lower())).first() \
                is None


def test_change_roles_and_teams_applies_on_the_next_request(world):
    eng, app, _p = world
    worker = as_role(app, "social_worker")
    assert worker.get("/api/people", params={"q": "clarke"}).status_code == 200
    admin = as_role(app, "administrator")
    # taking access away applies at once (giving it waits for a second administrator: test_privileged_access.py)
    r = admin.send("PATCH", "/api/admin/users/social-worker", {"roles": ["process_owner"], "teams": []})
    assert r.status_code == 200 and r.json()["roles"] == ["process_owner"] and r.json()["teams"] == []
    assert worker.get("/api/people", params={"q": "clarke"}).status_code == 403
    assert _audit(eng)[-1] == {"type": "user.changed", "actor": "administrator", "data": {
        "username": "social-worker", "changes": {"roles": {"from": ["social_worker"], "to": ["process_owner"]},
                                                 "teams": {"from": ["social_work"], "to": []}}}}
    bad = admin.send("PATCH", "/api/admin/users/social-worker", {"teams": ["narnia"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "teams"


def test_deactivated_user_cannot_sign_in_and_their_session_ends(world):
    eng, app, _p = world
    worker = as_role(app, "social_worker")
    admin = as_role(app, "administrator")
    assert admin.send("PATCH", "/api/admin/users/social-worker", {"active": False}).json()["active"] is False
    assert worker.get("/api/me").status_code == 401
    assert TestClient(app).post("/api/session", json={"username": "social-worker",
                                                      "password": PASSWORD}).status_code == 401
    assert admin.send("PATCH", "/api/admin/users/social-worker", {"active": True}).json()["active"] is True
    assert Api(app, "social-worker").get("/api/me").status_code == 200
    assert [a["data"]["changes"] for a in _audit(eng)] == [{"active": {"from": True, "to": False}},
                                                           {"active": {"from": False, "to": True}}]


def test_an_administrator_cannot_lock_themselves_out(world):
    eng, app, _p = world
    admin = as_role(app, "administrator")
    r = admin.send("PATCH", "/api/admin/users/administrator", {"roles": ["auditor"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "roles"
    r = admin.send("PATCH", "/api/admin/users/administrator", {"active": False})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "active"
    assert admin.get("/api/me").json()["user"]["roles"] == ["administrator"]
    # adding a role that opens no case to themselves is fine (one that does waits for a second administrator:
    # tests/test_privileged_access.py)
    r = admin.send("PATCH", "/api/admin/users/administrator", {"roles": ["administrator", "process_owner"]})
    assert r.status_code == 200 and r.json()["roles"] == ["administrator", "process_owner"]
    # another administrator may take the role away
    create_user(eng, "second.admin", NEW["password"], roles=["administrator"])
    other = Api(app, "second.admin", NEW["password"])
    r = other.send("PATCH", "/api/admin/users/administrator", {"roles": ["process_owner"]})
    assert r.status_code == 200 and r.json()["roles"] == ["process_owner"]
    assert admin.get("/api/admin/users").status_code == 403


def test_unlock_and_set_password(world):
    eng, app, _p = world
    store = AuthStore(eng)
    worker = as_role(app, "finance_officer")
    for _ in range(5):
        with pytest.raises(ApiError):
            store.sign_in("finance-officer", "wrong password")
    admin = as_role(app, "administrator")
    assert admin.get("/api/admin/users/finance-officer").json()["locked"] is True
    r = admin.post("/api/admin/users/finance-officer/unlock")
    assert r.status_code == 200 and r.json()["locked"] is False
    assert worker.get("/api/me").status_code == 200  # unlocking keeps the session
    r = admin.send("PUT", "/api/admin/users/finance-officer/password", {"password": "short"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password"
    # an account that opens case records: the new password waits for a second administrator
    r = admin.send("PUT", "/api/admin/users/finance-officer/password", {"password": "a brand new password"})
    assert r.status_code == 202 and r.json()["pending_request"]["kind"] == "password", r.text
    assert worker.get("/api/me").status_code == 200  # nothing changed yet
    create_user(eng, "admin2", PASSWORD, display_name="Second Admin", roles=["administrator"])
    rid = r.json()["pending_request"]["id"]
    assert Api(app, "admin2").post(f"/api/admin/role-requests/{rid}/approve").status_code == 200
    assert worker.get("/api/me").status_code == 401  # a new password ends their sessions
    assert TestClient(app).post("/api/session", json={"username": "finance-officer",
                                                      "password": PASSWORD}).status_code == 401
    assert Api(app, "finance-officer", "a brand new password").get("/api/me").status_code == 200
    # an account that opens none: at once
    owner = as_role(app, "process_owner")
    r = admin.send("PUT", "/api/admin/users/process-owner/password", {"password": "another brand new password"})
    assert r.status_code == 200 and r.json()["pending_request"] is None
    assert owner.get("/api/me").status_code == 401
    types = [(a["type"], a["actor"], a["data"]["username"]) for a in _audit(eng)]
    assert types == [("user.unlocked", "administrator", "finance-officer"),
                     ("user.password_change_requested", "administrator", "finance-officer"),
                     ("user.password_change_approved", "admin2", "finance-officer"),
                     ("user.password_set", "admin2", "finance-officer"),
                     ("user.password_set", "administrator", "process-owner")]
    assert _audit(eng)[3]["data"]["set_by"] == "administrator"
    assert "a brand new password" not in json.dumps(_audit(eng)) and "argon2" not in json.dumps(_audit(eng))
    from engine.schema import role_requests

    with eng.db.engine.connect() as conn:  # the hash kept while it waited is gone once decided
        assert conn.execute(select(role_requests.c.password_hash)).scalars().all() == [None]


def test_unknown_users_are_404(world):
    _eng, app, _p = world
    admin = as_role(app, "administrator")
    for method, url, body in [("GET", "/api/admin/users/nobody", None),
                              ("PATCH", "/api/admin/users/nobody", {"display_name": "X"}),
                              ("POST", "/api/admin/users/nobody/unlock", None),
                              ("PUT", "/api/admin/users/nobody/password", {"password": "long enough pw"})]:
        r = admin.send(method, url, body)
        assert r.status_code == 404 and r.json()["error"] == "not_found", (method, url)


# ---------------------------------------------------------------------- case restriction
# front-door-advisor: in the team of Edith's open task (restricting must keep someone who works the case)
RESTRICT = {"usernames": ["front-door-advisor"], "reason": "The person is a member of staff"}


def test_restriction_role_matrix(world):
    eng, app, p = world
    case = p["edward"]
    for role in ROLES:
        s = as_role(app, role)
        allowed = role in ("administrator", "team_manager")
        assert s.get(f"/api/cases/{case}/restriction").status_code == (200 if allowed else 403), role
        if not allowed:
            assert s.send("PUT", f"/api/cases/{case}/restriction", RESTRICT).status_code == 403, role
            assert s.send("DELETE", f"/api/cases/{case}/restriction", {"reason": "x"}).status_code == 403, role
    assert TestClient(app).put(f"/api/cases/{case}/restriction", json=RESTRICT).status_code == 401


def test_restrict_and_lift_a_case(world):
    eng, app, p = world
    case = p["edith"]
    tm = as_role(app, "team_manager")
    r = tm.send("PUT", f"/api/cases/{case}/restriction",
                {**RESTRICT, "usernames": ["front-door-advisor", "team-manager"]})
    assert r.status_code == 200, r.text
    assert r.json()["allowed"] == ["front-door-advisor", "team-manager"] and r.json()["restricted"] is True
    auditor = as_role(app, "auditor")
    assert auditor.get(f"/api/cases/{case}").status_code == 404  # not named: answered as an unknown case
    assert tm.get(f"/api/cases/{case}").status_code == 200
    ev = [e for e in eng.history(case) if e["type"] == "case.restricted"]
    assert [(e["actor"], e["data"]["allowed"], e["data"]["reason"]) for e in ev] == [
        ("team-manager", ["front-door-advisor", "team-manager"], "The person is a member of staff")]
    r = tm.send("DELETE", f"/api/cases/{case}/restriction", {"reason": "No longer needed"})
    assert r.status_code == 200 and r.json()["restricted"] is False
    assert auditor.get(f"/api/cases/{case}").status_code == 200
    assert [e["data"]["reason"] for e in eng.history(case) if e["type"] == "case.unrestricted"] == [
        "No longer needed"]
    assert tm.send("DELETE", f"/api/cases/{case}/restriction", {"reason": "again"}).status_code == 404
    # an auditor reading the chronology (the replay view and the evidence pack use its words) sees who restricted
    # the case to whom and why, and who lifted it and why: it said only "Case restricted", "Case unrestricted"
    texts = [e["text"] for e in auditor.get(f"/api/cases/{case}/chronology").json()["entries"]]
    assert texts[:2] == ["Restriction lifted by Test team manager: no longer needed",
                         "Case restricted by Test team manager to Test front door advisor, Test team manager: "
                         "the person is a member of staff"], texts[:2]


def test_team_manager_not_named_cannot_see_or_change_the_restriction(world):
    eng, app, p = world
    admin = as_role(app, "administrator")
    case = p["edith"]
    assert admin.send("PUT", f"/api/cases/{case}/restriction", RESTRICT).status_code == 200
    tm = as_role(app, "team_manager")
    # not named on it: answered as an unknown case (its existence is not disclosed)
    assert tm.get(f"/api/cases/{case}/restriction").status_code == 404
    assert tm.send("PUT", f"/api/cases/{case}/restriction", {**RESTRICT, "usernames": ["team-manager"]}
                   ).status_code == 404
    assert tm.send("DELETE", f"/api/cases/{case}/restriction", {"reason": "mine now"}).status_code == 404
    assert can_open_case(eng, tm_user(eng, "team-manager"), case)[0] is False
    # the administrator can always lift it (so a case is never lost)
    assert admin.send("DELETE", f"/api/cases/{case}/restriction", {"reason": "Reviewed"}).status_code == 200


def tm_user(eng, name):
    from api.auth import _user, users

    with eng.db.engine.connect() as conn:
        return _user(conn.execute(select(users).where(users.c.username == name)).one())


@pytest.mark.parametrize("body,field", [
    ({"usernames": [], "reason": "x"}, "usernames"),
    ({"usernames": ["nobody-at-all"], "reason": "x"}, "usernames"),
    ({"usernames": ["social-worker"], "reason": "  "}, "reason"),
    ({"usernames": "social-worker", "reason": "x"}, "usernames"),
    # the reason is the audit record of a privileged act: nothing invisible, nothing reordered, something to read
    ({"usernames": ["social-worker"], "reason": "\u202e\u200b\u200b"}, "reason"),
    ({"usernames": ["social-worker"], "reason": "Staff \u202eevitaler"}, "reason"),
    ({"usernames": ["social-worker"], "reason": "..."}, "reason"),
])
def test_restriction_validation(world, body, field):
    eng, app, p = world
    r = as_role(app, "administrator").send("PUT", f"/api/cases/{p['edith']}/restriction", body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert not [e for e in eng.history(p["edith"]) if e["type"] == "case.restricted"]


def test_lifting_a_restriction_needs_a_reason_that_can_be_read(world):
    eng, app, p = world
    admin = as_role(app, "administrator")
    assert admin.send("PUT", f"/api/cases/{p['edith']}/restriction", RESTRICT).status_code == 200
    for reason in ("\u200b\u200b\u200b", "Done \u202eeno", "--"):
        r = admin.send("DELETE", f"/api/cases/{p['edith']}/restriction", {"reason": reason})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["reason"], r.text
    assert not [e for e in eng.history(p["edith"]) if e["type"] == "case.unrestricted"]
    assert admin.send("DELETE", f"/api/cases/{p['edith']}/restriction", {"reason": "No longer needed"}
                      ).status_code == 200


def test_a_deactivated_user_cannot_be_named(world):
    eng, app, p = world
    admin = as_role(app, "administrator")
    admin.send("PATCH", "/api/admin/users/front-door-advisor", {"active": False})
    r = admin.send("PUT", f"/api/cases/{p['edith']}/restriction", RESTRICT)
    assert r.status_code == 422 and "deactivated" in r.json()["errors"][0]["message"]


def test_restricting_an_unknown_case_is_404(world):
    _eng, app, _p = world
    admin = as_role(app, "administrator")
    assert admin.get("/api/cases/999999/restriction").status_code == 404
    assert admin.send("PUT", "/api/cases/999999/restriction", RESTRICT).status_code == 404
    assert admin.send("DELETE", "/api/cases/999999/restriction", {"reason": "x"}).status_code == 404


# (the replay of a restricted then unrestricted case: tests/test_integrity_strength.py)
